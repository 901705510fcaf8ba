import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PendingNorm, type Runtime, type Tensor, type TensorLike, binary, embedding, matmul, rmsNorm, roundTo } from '@statespace/core';
import { getTestRuntime, randn, recordKernels, relError } from '@statespace/core/testing';
import { type Mamba1Config, Mamba1Mixer, Mamba1State, mamba1MixerReference } from './mamba1-mixer.js';

const rt = await getTestRuntime();
const fixtures = fileURLToPath(new URL('../../../fixtures/hf-tiny/', import.meta.url));

/** Minimal safetensors reader for the f32 test fixtures (the checkpoint package has the real one). */
function readSafetensors(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = readFileSync(path);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`fixture tensor ${name} is ${t.dtype}, this reader only takes F32`);
    const [a, b] = t.data_offsets;
    const raw = bytes.subarray(8 + headerLen + a, 8 + headerLen + b);
    out.set(name, { shape: t.shape, data: new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)) });
  }
  return out;
}

function fixture(family: string) {
  return {
    tensors: readSafetensors(`${fixtures}${family}/model.safetensors`),
    config: JSON.parse(readFileSync(`${fixtures}${family}/config.json`, 'utf8')) as Record<string, number | boolean | string>,
    reference: JSON.parse(readFileSync(`${fixtures}${family}/reference.json`, 'utf8')) as { input_ids: number[]; logits_first: number[]; logits_last: number[] },
  };
}

/** Host and GPU weights of one mixer, keyed relative to `prefix`. */
function layerWeights(tensors: Map<string, { shape: number[]; data: Float32Array }>, prefix: string, dtype: 'f32' | 'f16' | 'bf16' = 'f32') {
  const host: Record<string, Float32Array> = {};
  const gpu: Record<string, Tensor> = {};
  for (const [name, t] of tensors) {
    if (!name.startsWith(prefix)) continue;
    const key = name.slice(prefix.length);
    const keepF32 = key === 'A_log';
    host[key] = keepF32 || dtype === 'f32' ? t.data : roundTo(t.data, dtype);
    gpu[key] = rt.upload(t.data, t.shape, keepF32 ? 'f32' : dtype);
  }
  return { host, gpu };
}

function mambaConfig(c: Record<string, number | boolean | string>, falcon: boolean): Mamba1Config {
  return {
    hiddenSize: c.hidden_size as number,
    intermediateSize: c.intermediate_size as number,
    stateSize: c.state_size as number,
    convKernel: c.conv_kernel as number,
    timeStepRank: c.time_step_rank as number,
    useBias: c.use_bias as boolean,
    useConvBias: c.use_conv_bias as boolean,
    bcdtNorm: falcon ? 'unweighted' : 'none',
    normEps: falcon ? (c.mixer_rms_eps as number) : (c.layer_norm_epsilon as number),
  };
}

function jambaConfig(c: Record<string, number | boolean | string>): Mamba1Config {
  const H = c.hidden_size as number;
  return {
    hiddenSize: H,
    intermediateSize: (c.mamba_expand as number) * H,
    stateSize: c.mamba_d_state as number,
    convKernel: c.mamba_d_conv as number,
    timeStepRank: c.mamba_dt_rank as number,
    useBias: c.mamba_proj_bias as boolean,
    useConvBias: c.mamba_conv_bias as boolean,
    bcdtNorm: 'weighted',
    normEps: c.rms_norm_eps as number,
  };
}

const mamba = fixture('mamba1');
const falcon = fixture('falcon_mamba');
const jamba = fixture('jamba');

const variants = [
  { name: 'Mamba', config: mambaConfig(mamba.config, false), tensors: mamba.tensors, prefix: 'backbone.layers.0.mixer.' },
  { name: 'FalconMamba', config: mambaConfig(falcon.config, true), tensors: falcon.tensors, prefix: 'backbone.layers.0.mixer.' },
  { name: 'Jamba', config: jambaConfig(jamba.config), tensors: jamba.tensors, prefix: 'model.layers.0.mamba.' },
];

function sliceTokens(x: Float32Array, batch: number, L: number, width: number, t0: number, t1: number): Float32Array {
  const out = new Float32Array(batch * (t1 - t0) * width);
  for (let b = 0; b < batch; b++) out.set(x.subarray((b * L + t0) * width, (b * L + t1) * width), b * (t1 - t0) * width);
  return out;
}

describe('Mamba1Mixer on the transformers fixtures (layer 0)', () => {
  for (const v of variants) {
    it(`${v.name}: forward matches the CPU reference of the whole mixer, batch 1 and 2`, async () => {
      const { host, gpu } = layerWeights(v.tensors, v.prefix);
      const mixer = new Mamba1Mixer(rt, v.config, gpu);
      for (const [batch, L] of [[1, 37], [2, 13]]) {
        const x = randn(batch * L * v.config.hiddenSize, batch * 100 + L);
        const state = mixer.createState(batch);
        const y = mixer.forward(rt.upload(x, [batch, L, v.config.hiddenSize]), state);
        const ref = mamba1MixerReference(v.config, host, x, batch, L);
        expect(y.shape).toEqual([batch, L, v.config.hiddenSize]);
        expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
        expect(relError(await rt.read(state.ssm), ref.state.ssm)).toBeLessThan(1e-5);
        expect(relError(await rt.read(state.conv), ref.state.conv)).toBeLessThan(1e-6);
        expect(state.length).toBe(L);
      }
    });
  }

  it('prefill then token-by-token decode gives the outputs and final state of one prefill', async () => {
    const v = variants[1];
    const { gpu } = layerWeights(v.tensors, v.prefix);
    const mixer = new Mamba1Mixer(rt, v.config, gpu);
    const [batch, L, P, H] = [2, 14, 9, v.config.hiddenSize];
    const x = randn(batch * L * H, 77);
    const full = mixer.createState(batch);
    const yFull = await rt.readFloat(mixer.forward(rt.upload(x, [batch, L, H]), full));

    const state = mixer.createState(batch);
    const got = new Float32Array(batch * L * H);
    const put = (y: Float32Array, t0: number, t1: number) => {
      for (let b = 0; b < batch; b++) got.set(y.subarray(b * (t1 - t0) * H, (b + 1) * (t1 - t0) * H), (b * L + t0) * H);
    };
    put(await rt.readFloat(mixer.forward(rt.upload(sliceTokens(x, batch, L, H, 0, P), [batch, P, H]), state)), 0, P);
    for (let t = P; t < L; t++) put(await rt.readFloat(mixer.forward(rt.upload(sliceTokens(x, batch, L, H, t, t + 1), [batch, 1, H]), state)), t, t + 1);
    expect(relError(got, yFull)).toBeLessThan(1e-5);
    expect(relError(await rt.read(state.ssm), await rt.read(full.ssm))).toBeLessThan(1e-5);
    expect(relError(await rt.read(state.conv), await rt.read(full.conv))).toBeLessThan(1e-6);
    expect(state.length).toBe(L);
  });

  it('a prefill split into chunks (prefillChunk) equals one pass, batch 2', async () => {
    const v = variants[0];
    const { gpu } = layerWeights(v.tensors, v.prefix);
    const H = v.config.hiddenSize;
    const x = rt.upload(randn(2 * 23 * H, 5), [2, 23, H]);
    const one = new Mamba1Mixer(rt, v.config, gpu);
    const chunked = new Mamba1Mixer(rt, { ...v.config, prefillChunk: 5 }, gpu);
    const s1 = one.createState(2);
    const s2 = chunked.createState(2);
    const y1 = await rt.read(one.forward(x, s1));
    const y2 = await rt.read(chunked.forward(x, s2));
    expect(relError(y2, y1)).toBeLessThan(1e-6);
    expect(relError(await rt.read(s2.ssm), await rt.read(s1.ssm))).toBeLessThan(1e-6);
    expect(s2.length).toBe(23);
  });

  it('bf16 and f16 weights agree with the reference on the rounded weights', async () => {
    const v = variants[2];
    for (const dtype of ['bf16', 'f16'] as const) {
      const { host, gpu } = layerWeights(v.tensors, v.prefix, dtype);
      const mixer = new Mamba1Mixer(rt, v.config, gpu);
      const x = randn(11 * v.config.hiddenSize, 3);
      const y = mixer.forward(rt.upload(x, [1, 11, v.config.hiddenSize]), mixer.createState(1));
      expect(relError(await rt.read(y), mamba1MixerReference(v.config, host, x, 1, 11).y)).toBeLessThan(1e-5);
    }
  });
});

/** Runs `body` with the fused decode kernels on (software adapters leave them off by default). */
async function withFastKernels<T>(body: () => Promise<T>): Promise<T> {
  const was = rt.fastKernels;
  rt.fastKernels = true;
  try {
    return await body();
  } finally {
    rt.fastKernels = was;
  }
}

describe('Mamba1Mixer decode in 4 dispatches (fastKernels)', () => {
  // SwiftShader runs the fused kernels' barriers slowly: f32 for every variant, 16-bit weights for Jamba's.
  for (const [v, dtype] of [[variants[0], 'f32'], [variants[1], 'f32'], [variants[2], 'f32'], [variants[2], 'bf16'], [variants[0], 'f16']] as const) {
    {
      it(`${v.name} ${dtype}: prompt then 4 fused steps equal the CPU reference step by step, batch 1 and 2`, async () => {
        await withFastKernels(async () => {
          const { host, gpu } = layerWeights(v.tensors, v.prefix, dtype);
          const mixer = new Mamba1Mixer(rt, v.config, gpu);
          const H = v.config.hiddenSize;
          for (const batch of [1, 2]) {
            const P = 3;
            const prompt = randn(batch * P * H, 40 + batch);
            const state = mixer.createState(batch);
            mixer.forward(rt.upload(prompt, [batch, P, H]), state).dispose();
            let ref = mamba1MixerReference(v.config, host, prompt, batch, P);
            for (let t = 0; t < 4; t++) {
              const x = randn(batch * H, 50 + 10 * batch + t);
              const d0 = rt.dispatchCount;
              const y = mixer.forward(rt.upload(x, [batch, 1, H]), state);
              expect(rt.dispatchCount - d0).toBe(4);
              ref = mamba1MixerReference(v.config, host, x, batch, 1, ref.state);
              expect(relError(await rt.readFloat(y), ref.y)).toBeLessThan(1e-5);
              y.dispose();
            }
            expect(relError(await rt.readFloat(state.ssm), ref.state.ssm)).toBeLessThan(1e-5);
            expect(relError(await rt.readFloat(state.conv), ref.state.conv)).toBeLessThan(1e-6);
            expect(state.length).toBe(P + 4);
            state.dispose();
          }
          mixer.dispose();
        });
      });
    }
  }

  // The block norm pending (residual add + RMSNorm): in_proj takes the norm in its prologue and the
  // causal conv in its epilogue, so x_proj and the scan step read the convolved x.
  for (const [v, dtype] of [[variants[0], 'f32'], [variants[1], 'f32'], [variants[2], 'f32'], [variants[2], 'bf16']] as const) {
    it(`${v.name} ${dtype}: steps fed by a pending norm run the conv in in_proj's epilogue, 4 dispatches, and equal norm then the reference, batch 1 and 2`, async () => {
      await withFastKernels(async () => {
        const { host, gpu } = layerWeights(v.tensors, v.prefix, dtype);
        const mixer = new Mamba1Mixer(rt, v.config, gpu);
        const H = v.config.hiddenSize;
        const ln = randu1(H, 92);
        const lnT = rt.upload(ln, [H]);
        for (const batch of [1, 2]) {
          const P = 3;
          const prompt = randn(batch * P * H, 70 + batch);
          const state = mixer.createState(batch);
          mixer.forward(rt.upload(prompt, [batch, P, H]), state).dispose();
          let ref = mamba1MixerReference(v.config, host, prompt, batch, P);
          for (let t = 0; t < 4; t++) {
            const h = randn(batch * H, 80 + 10 * batch + t);
            const b = randn(batch * H, 81 + 10 * batch + t, 0.5);
            const sum = rt.empty([batch, 1, H]);
            const pending = new PendingNorm(rt, { h: rt.upload(h, [batch, 1, H]), branch: rt.upload(b, [batch, 1, H]), sum, weight: lnT, eps: 1e-5 });
            const { result: y, kernels: ran } = recordKernels(rt, () => mixer.forward(pending as unknown as Tensor, state));
            pending.dispose();
            expect(ran.length).toBe(4);
            expect(ran.slice(1, 3)).toEqual(['mamba1_conv_x_proj/3', 'mamba1_dt_scan_step/6']); // no conv recomputed, no state roll
            const s = Float32Array.from(h, (hv, i) => hv + b[i]);
            expect(relError(await rt.readFloat(sum), s)).toBeLessThan(1e-6);
            ref = mamba1MixerReference(v.config, host, rmsNormRows(s, ln, 1e-5, batch), batch, 1, ref.state);
            expect(relError(await rt.readFloat(y), ref.y)).toBeLessThan(1e-5);
            y.dispose();
            sum.dispose();
          }
          expect(relError(await rt.readFloat(state.ssm), ref.state.ssm)).toBeLessThan(1e-5);
          expect(relError(await rt.readFloat(state.conv), ref.state.conv)).toBeLessThan(1e-5);
          expect(state.length).toBe(P + 4);
          state.dispose();
        }
        mixer.dispose();
      });
    });
  }

  it('without fastKernels a step keeps the 7-dispatch path', async () => {
    const v = variants[0];
    const { gpu } = layerWeights(v.tensors, v.prefix);
    const was = rt.fastKernels; // on by default on a GPU (the kernel tests run there too)
    rt.fastKernels = false;
    try {
      const mixer = new Mamba1Mixer(rt, v.config, gpu);
      const state = mixer.createState(1);
      const d0 = rt.dispatchCount;
      mixer.forward(rt.zeros([1, 1, v.config.hiddenSize]), state).dispose();
      expect(rt.dispatchCount - d0).toBe(7); // in_proj, conv, x_proj, bcdtNorm (the time-step copy), dt_proj, scan, out_proj
    } finally {
      rt.fastKernels = was;
    }
  });
});

/** x / sqrt(mean(x²) + eps) · w per row of width w.length, in f64. */
function rmsNormRows(x: Float32Array, w: Float32Array, eps: number, rows: number): Float32Array {
  const H = w.length;
  const out = new Float32Array(rows * H);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[r * H + i] ** 2;
    const inv = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) out[r * H + i] = x[r * H + i] * inv * w[i];
  }
  return out;
}

function randu1(n: number, seed: number): Float32Array {
  return Float32Array.from(randn(n, seed, 0.2), (v) => 1 + v);
}

describe('Mamba1State', () => {
  it('clone is independent, save/load round-trips, reset zeroes', async () => {
    const v = variants[0];
    const { gpu } = layerWeights(v.tensors, v.prefix);
    const mixer = new Mamba1Mixer(rt, v.config, gpu);
    const H = v.config.hiddenSize;
    const state = mixer.createState(1);
    mixer.forward(rt.upload(randn(6 * H, 1), [1, 6, H]), state);
    const copy = state.clone();
    const saved = await state.save();
    const next = rt.upload(randn(2 * H, 2), [1, 2, H]);
    const a = await rt.read(mixer.forward(next, state));
    const b = await rt.read(mixer.forward(next, copy));
    expect(relError(b, a)).toBe(0);
    expect(copy.length).toBe(8);

    const restored = mixer.createState(1);
    restored.load(saved);
    expect(restored.length).toBe(6);
    expect(relError(await rt.read(mixer.forward(next, restored)), a)).toBe(0);
    expect(state.memory()).toEqual({ ssm: 128 * 16 * 4, conv: 128 * 3 * 4, kv: 0 });

    state.reset();
    expect(state.length).toBe(0);
    expect(Array.from(await rt.read(state.ssm)).every((x) => x === 0)).toBe(true);
    expect(Array.from(await rt.read(state.conv)).every((x) => x === 0)).toBe(true);
    expect(() => mixer.createState(2).load(saved)).toThrow(/saved state holds parts/);
    expect(state).toBeInstanceOf(Mamba1State);
  });
});

describe('Mamba1Mixer construction', () => {
  it('lists the expected weights and rejects a missing or misshapen one', () => {
    const v = variants[2];
    const specs = Mamba1Mixer.expectedWeights(v.config);
    expect(specs.map((s) => s.name)).toEqual([
      'in_proj.weight',
      'conv1d.weight',
      'conv1d.bias',
      'x_proj.weight',
      'dt_proj.weight',
      'dt_proj.bias',
      'A_log',
      'D',
      'out_proj.weight',
      'dt_layernorm.weight',
      'b_layernorm.weight',
      'c_layernorm.weight',
    ]);
    expect(specs.find((s) => s.name === 'x_proj.weight')!.shape).toEqual([4 + 16, 128]);
    const { gpu } = layerWeights(v.tensors, v.prefix);
    const { ['b_layernorm.weight']: _dropped, ...missing } = gpu;
    expect(() => new Mamba1Mixer(rt, v.config, missing)).toThrow(/b_layernorm.weight \[8\] is missing/);
    expect(() => new Mamba1Mixer(rt, v.config, { ...gpu, D: rt.zeros([127]) })).toThrow(/D has shape \[127\], expected \[128\]/);
    const mixer = new Mamba1Mixer(rt, v.config, gpu);
    expect(() => mixer.forward(rt.zeros([1, 3, 63]), mixer.createState(1))).toThrow(/expected \[batch, seqlen, hidden=64\]/);
  });
});

/** Embeddings, norm + mixer + residual blocks, norm_f and the tied LM head: transformers' MambaForCausalLM. */
function mambaLogits(runtime: Runtime, f: ReturnType<typeof fixture>, falconVariant: boolean): Tensor {
  const c = f.config;
  const config = mambaConfig(c, falconVariant);
  const ids = f.reference.input_ids;
  const table = f.tensors.get('backbone.embeddings.weight')!;
  const eps = c.layer_norm_epsilon as number;
  let h: TensorLike = embedding(runtime, runtime.upload(Int32Array.from(ids), [ids.length]), runtime.upload(table.data, table.shape)).reshape([1, ids.length, config.hiddenSize]);
  for (let i = 0; i < (c.num_hidden_layers as number); i++) {
    const p = `backbone.layers.${i}.`;
    const norm = f.tensors.get(`${p}norm.weight`)!;
    const mixer = new Mamba1Mixer(runtime, config, layerWeights(f.tensors, `${p}mixer.`).gpu);
    const m = mixer.forward(rmsNorm(runtime, h, runtime.upload(norm.data, norm.shape), eps), mixer.createState(1));
    h = binary(runtime, h, m, 'add');
  }
  const normF = f.tensors.get('backbone.norm_f.weight')!;
  return matmul(runtime, rmsNorm(runtime, h, runtime.upload(normF.data, normF.shape), eps), runtime.upload(table.data, table.shape));
}

describe('whole-model parity with transformers 5.17 (reference logits)', () => {
  for (const [name, f, isFalcon] of [
    ['mamba1', mamba, false],
    ['falcon_mamba', falcon, true],
  ] as const) {
    it(`${name}: logits of the first and last prompt token`, async () => {
      const logits = await rt.readFloat(mambaLogits(rt, f, isFalcon));
      const V = f.reference.logits_last.length;
      const T = f.reference.input_ids.length;
      expect(relError(logits.subarray(0, V), f.reference.logits_first)).toBeLessThan(1e-5);
      expect(relError(logits.subarray((T - 1) * V, T * V), f.reference.logits_last)).toBeLessThan(1e-5);
    });
  }
});
