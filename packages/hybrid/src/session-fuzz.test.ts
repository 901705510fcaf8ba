/**
 * Seeded fuzz of what a Session takes from outside: saved blobs (bit flips, truncations,
 * splices, extensions, other models' blobs) and hostile token ids and options. Every case
 * must end in a typed error (a StatespaceError code) and leave the session as it was, or,
 * for the unaltered blob, load exactly. `STATESPACE_FUZZ_CASES` runs more cases by hand.
 */
import { Runtime, StatespaceError } from '@statespace/core';
import { maxAbsError, rng } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { composeModel } from './compose.js';
import { Session } from './session.js';

const rt = await Runtime.create();
const CASES = Number(process.env.STATESPACE_FUZZ_CASES ?? 1000);

function outcome(f: () => unknown): string {
  try {
    f();
    return 'accepted';
  } catch (err) {
    return StatespaceError.is(err) ? err.code : `untyped ${String(err)}`;
  }
}

describe('Session fuzz', () => {
  it(`${CASES} mutated session blobs: each refused with STATE_INVALID, the session untouched`, async () => {
    const model = composeModel(rt, { pattern: 'MA', hiddenSize: 32, vocabSize: 41, mamba2: { numHeads: 2, headDim: 32, stateSize: 8 }, attention: { numHeads: 2, headDim: 16 } }, { seed: 2 });
    const other = composeModel(rt, { pattern: 'MA', hiddenSize: 32, vocabSize: 41, mamba2: { numHeads: 2, headDim: 32, stateSize: 8 }, attention: { numHeads: 2, headDim: 16 } }, { seed: 3 });
    const s = new Session(model);
    await s.prefill([3, 1, 4, 1, 5, 9, 2, 6]);
    const blob = await s.save();
    const foreign = await (async () => {
      const o = new Session(composeModel(rt, { pattern: 'MM', hiddenSize: 32, vocabSize: 41, mamba2: { numHeads: 2, headDim: 32, stateSize: 8 } }, { seed: 4 }));
      await o.prefill([1, 2]);
      return o.save();
    })();
    const victim = new Session(model);
    const [before] = await victim.prefill([7, 7, 2]);
    const random = rng(11);
    const pick = (n: number) => Math.floor(random() * n);
    const counts: Record<string, number> = {};
    for (let c = 0; c < CASES; c++) {
      let m: Uint8Array;
      switch (c % 6) {
        case 0: // flip 1-8 random bits
          m = blob.slice();
          for (let k = 0, n = 1 + pick(8); k < n; k++) m[pick(m.length)] ^= 1 << pick(8);
          break;
        case 1: // truncate
          m = blob.slice(0, pick(blob.length));
          break;
        case 2: // extend with junk
          m = new Uint8Array(blob.length + 1 + pick(64));
          m.set(blob);
          for (let i = blob.length; i < m.length; i++) m[i] = pick(256);
          break;
        case 3: // splice a foreign blob's bytes in
          m = blob.slice();
          m.set(foreign.subarray(0, Math.min(foreign.length, 1 + pick(m.length - 1))), pick(16));
          break;
        case 4: // random bytes with the magic
          m = new Uint8Array(16 + pick(4096)).map(() => pick(256));
          m.set(blob.subarray(0, 8));
          break;
        default: // duplicate a region (shifts everything after it)
          {
            const a = pick(blob.length);
            const len = 1 + pick(32);
            m = new Uint8Array(blob.length + len);
            m.set(blob.subarray(0, a));
            m.set(blob.subarray(a, a + len), a);
            m.set(blob.subarray(a), a + Math.min(len, blob.length - a));
          }
      }
      const r = outcome(() => victim.load(m));
      counts[r] = (counts[r] ?? 0) + 1;
    }
    expect(outcome(() => victim.load(foreign))).toBe('STATE_INVALID');
    const otherSession = new Session(other);
    expect(outcome(() => otherSession.load(blob))).toBe('STATE_INVALID'); // same shapes, different weights: still refused
    expect(counts).toEqual({ STATE_INVALID: CASES });
    // The victim is as it was.
    expect(victim.length).toBe(3);
    const [next] = await victim.step(5);
    const fresh = new Session(model);
    const [want] = await fresh.prefill([7, 7, 2, 5]);
    expect(maxAbsError(next, want)).toBeLessThan(1e-5);
    expect(before.length).toBe(41);
    victim.load(blob);
    expect(victim.length).toBe(8);
    for (const x of [s, victim, fresh, otherSession]) x.dispose();
    model.dispose();
    other.dispose();
  });

  it('hostile ids and options: a typed error every time, nothing consumed', async () => {
    const model = composeModel(rt, { pattern: 'M', hiddenSize: 32, vocabSize: 41, mamba2: { numHeads: 2, headDim: 32, stateSize: 8 } }, { seed: 5 });
    const s = new Session(model);
    const badIds: unknown[] = [[], [NaN], [-1], [41], [1.5], [2 ** 40], ['3'], [null], [[1, 2], [3]], [Infinity], undefined, null, 'abc', [{}]];
    for (const ids of badIds) {
      for (const call of [() => s.prefill(ids as number[]), () => s.logitsAll(ids as number[]), () => s.step(ids as number[])]) {
        let code = 'accepted';
        try {
          await call();
        } catch (err) {
          code = StatespaceError.is(err) ? err.code : `untyped ${String(err)}`;
        }
        expect(code, JSON.stringify(ids)).toMatch(/^(INVALID_ARGUMENT|TOKEN_OUT_OF_RANGE|SHAPE_MISMATCH)$/);
      }
    }
    const badOptions: Record<string, unknown>[] = [
      { temperature: -0.1 }, { temperature: Infinity }, { temperature: '1' }, { topP: 1.5 }, { topP: -1 }, { topK: -2 }, { maxNewTokens: -1 }, { maxNewTokens: Infinity },
      { seed: 1.2 }, { seed: 2 ** 33 }, { repetitionPenalty: NaN }, { inFlight: 9 }, { stopTokens: [-1] }, { stopTokens: 'x' }, { signal: {} },
    ];
    for (const o of badOptions) {
      let code = 'accepted';
      try {
        for await (const _ of s.generate([1, 2], o as never)) void _;
      } catch (err) {
        code = StatespaceError.is(err) ? err.code : `untyped ${String(err)}`;
      }
      expect(code, JSON.stringify(o)).toBe('INVALID_ARGUMENT');
    }
    expect(s.length).toBe(0);
    s.dispose();
    model.dispose();
  });
});
