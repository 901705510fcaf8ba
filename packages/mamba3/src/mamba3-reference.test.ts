/**
 * The CPU reference against mamba_ssm's Mamba3 module (fixtures/mamba3, tools/fixtures/make_mamba3_fixtures.py):
 * layer 0's mixer output from its recorded input, and the whole MambaLMHeadModel stack (embedding, RMSNorm
 * pre-norms with the residual, the mixers, norm_f, lm_head) on the host: logits within 1e-4 (tightened relative
 * to the row when its largest |logit| is below 1), argmax at every position, 16 greedy tokens decoded one step at a
 * time from the carried state.
 */
import { describe, expect, it } from 'vitest';
import { MAMBA3_FIXTURE_NAMES, type Mamba3Fixture, mixerWeights, readMamba3Fixture } from './fixtures.js';
import { type Mamba3HostState, mamba3MixerReference } from './mamba3-reference.js';

const EPS = 1e-5;

function rmsRows(x: Float64Array, w: ArrayLike<number>, D: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let t = 0; t < x.length / D; t++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[t * D + i] ** 2;
    const inv = 1 / Math.sqrt(ss / D + EPS);
    for (let i = 0; i < D; i++) out[t * D + i] = x[t * D + i] * inv * w[i];
  }
  return out;
}

/** The host model over `ids` from per-layer states (updated in place); returns the real-vocabulary logits (L, V). */
function hostModel(f: Mamba3Fixture, ids: number[], states: (Mamba3HostState | undefined)[]): Float64Array {
  const D = f.json.d_model;
  const V = f.ref.vocab_size;
  const L = ids.length;
  const emb = f.weights['backbone.embedding.weight'].data;
  const h = new Float64Array(L * D);
  ids.forEach((id, t) => h.set(emb.subarray(id * D, (id + 1) * D), t * D));
  const res = new Float64Array(L * D);
  let hidden: Float64Array = h;
  for (let i = 0; i < f.json.n_layer; i++) {
    for (let j = 0; j < res.length; j++) res[j] += hidden[j];
    const u = rmsRows(res, f.weights[`backbone.layers.${i}.norm.weight`].data, D);
    const w = Object.fromEntries(Object.entries(mixerWeights(f, i)).map(([k, v]) => [k, v.data]));
    const { out, state } = mamba3MixerReference(u, w, f.config, 1, L, states[i]);
    states[i] = state;
    hidden = out;
  }
  for (let j = 0; j < res.length; j++) res[j] += hidden[j];
  const x = rmsRows(res, f.weights['backbone.norm_f.weight'].data, D);
  const head = f.weights['lm_head.weight'].data;
  const logits = new Float64Array(L * V);
  for (let t = 0; t < L; t++) for (let v = 0; v < V; v++) {
    let s = 0;
    for (let k = 0; k < D; k++) s += x[t * D + k] * head[v * D + k];
    logits[t * V + v] = s;
  }
  return logits;
}

const argmax = (row: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
};
const bound = (row: ArrayLike<number>) => 1e-4 * Math.min(1, Math.max(...Array.from(row, Math.abs)));

describe.each(MAMBA3_FIXTURE_NAMES)('mamba3 CPU reference vs mamba_ssm: %s', (name) => {
  const f = readMamba3Fixture(name);

  it('layer 0 mixer output from its recorded input within 1e-4', () => {
    const D = f.json.d_model;
    const u = f.ref.layer0_mixer_input.flat();
    const w = Object.fromEntries(Object.entries(mixerWeights(f, 0)).map(([k, v]) => [k, v.data]));
    const { out } = mamba3MixerReference(u, w, f.config, 1, u.length / D);
    const want = f.ref.layer0_mixer_output.flat();
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(out[i] - want[i]));
    expect(worst).toBeLessThan(1e-4);
  });

  it('model logits within 1e-4, argmax everywhere, 16 greedy tokens', () => {
    const V = f.ref.vocab_size;
    const ids = f.ref.input_ids;
    const states: (Mamba3HostState | undefined)[] = [];
    const logits = hostModel(f, ids, states);
    const rows = new Map<number, number[]>([[0, f.ref.logits_first], [ids.length - 1, f.ref.logits_last]]);
    for (const [k, v] of Object.entries(f.ref.logits_rows_sample)) rows.set(Number(k), v);
    for (const [t, want] of rows) {
      const got = logits.subarray(t * V, (t + 1) * V);
      let worst = 0;
      for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      expect(worst, `row ${t}`).toBeLessThan(bound(want));
    }
    expect(ids.map((_, t) => argmax(logits.subarray(t * V, (t + 1) * V)))).toEqual(f.ref.logits_argmax);
    const tokens: number[] = [];
    let next = argmax(logits.subarray((ids.length - 1) * V, ids.length * V));
    for (let i = 0; i < 16; i++) {
      tokens.push(next);
      next = argmax(hostModel(f, [next], states));
    }
    expect(tokens).toEqual(f.ref.greedy_new_tokens);
  });
});
