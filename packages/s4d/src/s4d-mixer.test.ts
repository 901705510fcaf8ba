import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Runtime, StatespaceError, type Tensor } from '@statespace/core';
import { getTestRuntime, randn, relError, worstRowError } from '@statespace/core/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { s4dInitWeights } from './s4d-init.js';
import { type S4DConfig, S4DMixer } from './s4d-mixer.js';
import { s4dKernel } from './s4d-kernel.js';
import { s4dLayerReference } from './testing.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await getTestRuntime();
});

function weightsOf(config: S4DConfig, values: Record<string, Float32Array>): Record<string, Tensor> {
  return Object.fromEntries(S4DMixer.expectedWeights(config).map((s) => [s.name, rt.upload(values[s.name], s.shape, 'f32', s.name)]));
}

function hostOf(config: S4DConfig, v: Record<string, Float32Array>) {
  const H = config.hiddenSize;
  return {
    p: { logDt: v['kernel.log_dt'], logAReal: v['kernel.log_A_real'], AImag: v['kernel.A_imag'], C: v['kernel.C'], H, modes: config.stateSize / 2, channels: config.bidirectional ? (2 as const) : (1 as const) },
    w: { D: v.D, W: v['output_linear.0.weight'], bias: v['output_linear.0.bias'] },
  };
}

/** Rows t0..t1 of x (B, L, H). */
/** Worst error of a token's H outputs: relative when the token's largest value is below 1, absolute otherwise. */
const rowError = (actual: ArrayLike<number>, expected: ArrayLike<number>, H: number) => worstRowError(actual, expected, expected.length / H, H, { absoluteAbove: 1 });

function rows(x: Float32Array, B: number, L: number, H: number, t0: number, t1: number): Float32Array {
  const out = new Float32Array(B * (t1 - t0) * H);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * L + t0) * H, (b * L + t1) * H), b * (t1 - t0) * H);
  return out;
}

describe('S4DMixer', () => {
  const B = 2;
  const L = 37;
  for (const config of [
    { hiddenSize: 5, stateSize: 10, init: 'lin' },
    { hiddenSize: 24, stateSize: 64, init: 'inv', dtMin: 0.01, dtMax: 0.2 },
  ] as S4DConfig[]) {
    const label = `H ${config.hiddenSize}, N ${config.stateSize}, ${config.init}`;
    const values = s4dInitWeights(config, 3);
    const x = randn(B * L * config.hiddenSize, 4);

    it(`prefill (conv and recurrent) == the f64 layer reference: ${label}`, async () => {
      const H = config.hiddenSize;
      const { p, w } = hostOf(config, values);
      const want = s4dLayerReference(x, p, w, B, L);
      for (const prefill of ['conv', 'recurrent'] as const) {
        const mixer = new S4DMixer(rt, { ...config, prefill }, weightsOf(config, values));
        const state = mixer.createState(B);
        const y = mixer.forward(rt.upload(x, [B, L, H]), state);
        expect(y.shape).toEqual([B, L, H]);
        expect(relError(await rt.readFloat(y), want)).toBeLessThan(2e-5);
        expect(state.length).toBe(L);
      }
    });

    it(`prefill of chunks from a state == token by token == one prefill: ${label}`, async () => {
      const H = config.hiddenSize;
      const mixer = new S4DMixer(rt, config, weightsOf(config, values));
      const whole = await rt.readFloat(mixer.forward(rt.upload(x, [B, L, H]), mixer.createState(B)));
      // 20 tokens, one decode step, then 16 more from the state (the state's response added to the conv)
      const state = mixer.createState(B);
      const parts: Array<[number, number]> = [[0, 20], [20, 21], [21, 37]];
      for (const [t0, t1] of parts) {
        const y = await rt.readFloat(mixer.forward(rt.upload(rows(x, B, L, H, t0, t1), [B, t1 - t0, H]), state));
        expect(relError(y, rows(whole, B, L, H, t0, t1))).toBeLessThan(2e-5);
      }
      // token by token from the start
      const stepState = mixer.createState(B);
      for (let t = 0; t < 12; t++) {
        const y = await rt.readFloat(mixer.forward(rt.upload(rows(x, B, L, H, t, t + 1), [B, 1, H]), stepState));
        expect(relError(y, rows(whole, B, L, H, t, t + 1))).toBeLessThan(2e-5);
      }
      // a saved and reloaded state continues alike
      const copy = mixer.createState(B);
      copy.load(await stepState.save());
      const next = rt.upload(rows(x, B, L, H, 12, 13), [B, 1, H]);
      expect(relError(await rt.readFloat(mixer.forward(next, copy)), rows(whole, B, L, H, 12, 13))).toBeLessThan(2e-5);
      expect(stepState.memory()).toEqual({ ssm: B * H * (config.stateSize / 2) * 2 * 4, conv: 0, kv: 0 });
    });
  }

  it('chunked prefill (prefillChunk 16: 37 tokens in 3 chunks) == the f64 layer reference; its state == the state after token-by-token decode', async () => {
    const config: S4DConfig = { hiddenSize: 5, stateSize: 10, init: 'inv', prefillChunk: 16 };
    const values = s4dInitWeights(config, 8);
    const x = randn(B * L * 5, 9);
    const { p, w } = hostOf(config, values);
    const mixer = new S4DMixer(rt, config, weightsOf(config, values));
    const state = mixer.createState(B);
    const whole = await rt.readFloat(mixer.forward(rt.upload(x, [B, L, 5]), state));
    expect(relError(whole, s4dLayerReference(x, p, w, B, L))).toBeLessThan(2e-5);
    const stepState = mixer.createState(B);
    for (let t = 0; t < L; t++) {
      const y = await rt.readFloat(mixer.forward(rt.upload(rows(x, B, L, 5, t, t + 1), [B, 1, 5]), stepState));
      expect(relError(y, rows(whole, B, L, 5, t, t + 1)), `token ${t}`).toBeLessThan(2e-5);
    }
    expect(relError(await rt.readFloat(state.ssm), await rt.readFloat(stepState.ssm))).toBeLessThan(2e-5);
    // 3 tokens, then 34 from that state through 3 chunks (the first chunk starts from a non-zero state)
    const split = mixer.createState(B);
    mixer.forward(rt.upload(rows(x, B, L, 5, 0, 3), [B, 3, 5]), split);
    const rest = await rt.readFloat(mixer.forward(rt.upload(rows(x, B, L, 5, 3, L), [B, L - 3, 5]), split));
    expect(relError(rest, rows(whole, B, L, 5, 3, L))).toBeLessThan(2e-5);
    expect(relError(await rt.readFloat(split.ssm), await rt.readFloat(stepState.ssm))).toBeLessThan(2e-5);
    expect(() => new S4DMixer(rt, { ...config, prefillChunk: 20 }, weightsOf(config, values))).toThrowError(/prefillChunk=20 must be a positive multiple of 16/);
  });

  it('bidirectional: prefill == the f64 reference; a further call is refused with S4D_BIDIRECTIONAL', async () => {
    const config: S4DConfig = { hiddenSize: 5, stateSize: 10, bidirectional: true };
    const values = s4dInitWeights(config, 5);
    const x = randn(B * L * 5, 6);
    const { p, w } = hostOf(config, values);
    const mixer = new S4DMixer(rt, config, weightsOf(config, values));
    const state = mixer.createState(B);
    const y = mixer.forward(rt.upload(x, [B, L, 5]), state);
    expect(relError(await rt.readFloat(y), s4dLayerReference(x, p, w, B, L))).toBeLessThan(2e-5);
    let code: string | undefined;
    try {
      mixer.forward(rt.zeros([B, 1, 5]), state);
    } catch (e) {
      code = StatespaceError.is(e) ? e.code : undefined;
    }
    expect(code).toBe('S4D_BIDIRECTIONAL');
  });

  it('names a missing or misshapen weight', () => {
    const config: S4DConfig = { hiddenSize: 5, stateSize: 10 };
    const w = weightsOf(config, s4dInitWeights(config, 1));
    expect(() => new S4DMixer(rt, config, { ...w, 'kernel.C': rt.zeros([5, 4, 2]) })).toThrowError(/kernel\.C has shape \[5,4,2\], expected \[5,5,2\]/);
    const { D: _, ...noD } = w;
    expect(() => new S4DMixer(rt, config, noD)).toThrowError(/weight D \[5\] is missing/);
  });
});

// ---- parity with the PyTorch S4D of tools/fixtures/make_s4d_fixtures.py (fixtures/s4d, recorded on an H200) ----

const fixtureDir = join(dirname(fileURLToPath(import.meta.url)), '../../../fixtures/s4d');

/** A float32 safetensors file: tensors by name and the metadata. */
function readSafetensors(path: string): { tensors: Record<string, { shape: number[]; data: Float32Array }>; metadata: Record<string, string> } {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const t = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const start = bytes.byteOffset + 8 + n;
    tensors[name] = { shape: t.shape, data: new Float32Array(bytes.buffer.slice(start + t.data_offsets[0], start + t.data_offsets[1])) };
  }
  return { tensors, metadata: header.__metadata__ as Record<string, string> };
}

describe('parity with the PyTorch S4D (fixtures/s4d)', () => {
  for (const name of ['s4d_lin', 's4d_inv', 's4d_bidirectional']) {
    it(`${name}: kernels and the 2-layer stack, convolution (one pass and chunked) and recurrent modes, within 1e-4`, async () => {
      const { tensors, metadata } = readSafetensors(join(fixtureDir, `${name}.safetensors`));
      const meta = JSON.parse(metadata.config) as { H: number; N: number; B: number; L: number; layers: Array<{ init: 'lin' | 'inv'; bidirectional: boolean }> };
      const { H, N, B, L } = meta;
      // 'chunked': prefillChunk 16, so the 37 tokens run through 3 chunks (and 'chunked split''s last 17 through 2,
      // from a non-zero state); the others with the default chunk, a single direct convolution at L 37
      type Mode = 'conv' | 'recurrent' | 'split' | 'chunked' | 'chunked split';
      const modes: Mode[] = meta.layers[0].bidirectional ? ['conv'] : ['conv', 'recurrent', 'split', 'chunked', 'chunked split'];
      for (const mode of modes) {
        let h = rt.upload(tensors.input.data, [B, L, H]);
        for (let i = 0; i < meta.layers.length; i++) {
          const config: S4DConfig = {
            hiddenSize: H,
            stateSize: N,
            bidirectional: meta.layers[i].bidirectional,
            prefill: mode === 'recurrent' ? 'recurrent' : 'conv',
            prefillChunk: mode.startsWith('chunked') ? 16 : undefined,
          };
          const weights = Object.fromEntries(S4DMixer.expectedWeights(config).map((s) => [s.name, rt.upload(tensors[`layers.${i}.${s.name}`].data, s.shape)]));
          const mixer = new S4DMixer(rt, config, weights);
          if (mode === 'conv') {
            // the kernel K: torch's (channels, H, L), ours (channels, L, H)
            const K = await rt.readFloat(s4dKernel(rt, { logDt: weights['kernel.log_dt'], logAReal: weights['kernel.log_A_real'], AImag: weights['kernel.A_imag'], C: weights['kernel.C'] }, L));
            const ref = tensors[`layers.${i}.kernel`];
            const c = ref.shape[0];
            const want = new Float32Array(c * L * H);
            for (let ch = 0; ch < c; ch++) for (let hh = 0; hh < H; hh++) for (let l = 0; l < L; l++) want[(ch * L + l) * H + hh] = ref.data[(ch * H + hh) * L + l];
            expect(relError(K, want), `layer ${i} kernel`).toBeLessThan(1e-5);
          }
          const state = mixer.createState(B);
          let y: Tensor;
          if (mode === 'split' || mode === 'chunked split') {
            // 17 tokens by convolution, 3 single steps, the rest by convolution from the state
            const host = await rt.readFloat(h);
            const out = new Float32Array(B * L * H);
            for (const [t0, t1] of [[0, 17], [17, 18], [18, 19], [19, 20], [20, L]] as const) {
              const part = await rt.readFloat(mixer.forward(rt.upload(rows(host, B, L, H, t0, t1), [B, t1 - t0, H]), state));
              for (let b = 0; b < B; b++) out.set(part.subarray(b * (t1 - t0) * H, (b + 1) * (t1 - t0) * H), (b * L + t0) * H);
            }
            y = rt.upload(out, [B, L, H]);
          } else {
            y = mixer.forward(h, state);
          }
          const got = await rt.readFloat(y);
          expect(rowError(got, tensors[`layers.${i}.output`].data, H), `${mode} layer ${i}`).toBeLessThan(1e-4);
          const next = new Float32Array(await rt.readFloat(h));
          for (let j = 0; j < next.length; j++) next[j] += got[j];
          h = rt.upload(next, [B, L, H]);
        }
        expect(rowError(await rt.readFloat(h), tensors.output.data, H), `${mode} stack`).toBeLessThan(1e-4);
      }
    });
  }
});
