import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PendingNorm, type Tensor, binary, matmul, rmsNorm, roundTo } from '@statespace/core';
import { getTestRuntime, randn, randu, relError } from '@statespace/core/testing';
import { Mamba2Mixer, type Mamba2MixerConfig } from './mamba2-mixer.js';
import { mamba2MixerReference } from './mamba2-mixer-reference.js';

const rt = await getTestRuntime();
const fixtures = fileURLToPath(new URL('../../../fixtures/hf-tiny/', import.meta.url));

/** Minimal safetensors reader for the fixtures (F32 / BF16 / F16 to f32). */
function readSafetensors(path: string): Record<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = buf.subarray(base + t.data_offsets[0], base + t.data_offsets[1]);
    const copy = new Uint8Array(bytes).buffer;
    let data: Float32Array;
    if (t.dtype === 'F32') data = new Float32Array(copy);
    else if (t.dtype === 'BF16') data = Float32Array.from(new Uint16Array(copy), (v) => new Float32Array(new Uint32Array([v << 16]).buffer)[0]);
    else throw new Error(`fixture dtype ${t.dtype} not handled by the test reader`);
    out[name] = { shape: t.shape, data };
  }
  return out;
}

function loadLayer(tensors: Record<string, { shape: number[]; data: Float32Array }>, prefix: string) {
  const host: Record<string, Float32Array> = {};
  const gpu: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (!name.startsWith(prefix)) continue;
    const key = name.slice(prefix.length);
    host[key] = t.data;
    gpu[key] = rt.upload(t.data, t.shape);
  }
  return { host, gpu };
}

function mamba2FixtureConfig(): Mamba2MixerConfig {
  const c = JSON.parse(readFileSync(`${fixtures}mamba2/config.json`, 'utf8'));
  return {
    hiddenSize: c.hidden_size,
    numHeads: c.num_heads,
    headDim: c.head_dim,
    stateSize: c.state_size,
    nGroups: c.n_groups,
    convKernel: c.conv_kernel,
    chunkSize: c.chunk_size,
    useConvBias: c.use_conv_bias,
    useBias: c.use_bias,
    timeStepLimit: [0, Infinity],
    normEps: c.layer_norm_epsilon,
  };
}

/** Reassembles per-token outputs (L of (b, 1, d)) into (b, L, d). */
function interleave(steps: Float32Array[], b: number, d: number): Float32Array {
  const L = steps.length;
  const out = new Float32Array(b * L * d);
  steps.forEach((s, l) => {
    for (let bi = 0; bi < b; bi++) out.set(s.subarray(bi * d, (bi + 1) * d), (bi * L + l) * d);
  });
  return out;
}

describe('Mamba2Mixer on the tiny transformers checkpoint', () => {
  const config = mamba2FixtureConfig();
  const tensors = readSafetensors(`${fixtures}mamba2/model.safetensors`);
  const { host, gpu } = loadLayer(tensors, 'backbone.layers.0.mixer.');

  it('lists the weights transformers has', () => {
    const names = Mamba2Mixer.expectedWeights(config).map((s) => s.name).sort();
    expect(names).toEqual(Object.keys(host).sort());
    for (const s of Mamba2Mixer.expectedWeights(config)) expect(tensors[`backbone.layers.0.mixer.${s.name}`].shape).toEqual(s.shape);
  });

  for (const [b, L] of [[1, 37], [2, 33]] as [number, number][]) {
    it(`forward matches the CPU mixer (batch ${b}, ${L} tokens), then decodes`, async () => {
      const mixer = new Mamba2Mixer(rt, config, gpu);
      const x = randn(b * L * config.hiddenSize, 40 + b);
      const state = mixer.createState(b);
      const y = mixer.forward(rt.upload(x, [b, L, config.hiddenSize]), state);
      const ref = mamba2MixerReference(config, host, x, b, L);
      expect(y.shape).toEqual([b, L, config.hiddenSize]);
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-4);
      expect(relError(await rt.read(state.ssm), ref.state.ssm)).toBeLessThan(1e-4);
      expect(relError(await rt.read(state.conv), ref.state.conv)).toBeLessThan(1e-5);
      expect(state.length).toBe(L);
      // one decode step continues from the prompt
      const x1 = randn(b * config.hiddenSize, 50 + b);
      const y1 = mixer.forward(rt.upload(x1, [b, 1, config.hiddenSize]), state);
      const ref1 = mamba2MixerReference(config, host, x1, b, 1, ref.state);
      expect(relError(await rt.read(y1), ref1.y)).toBeLessThan(1e-4);
      expect(relError(await rt.read(state.ssm), ref1.state.ssm)).toBeLessThan(1e-4);
      expect(state.length).toBe(L + 1);
    });
  }

  it('fast decode: norm + in_proj + conv in one dispatch, 3 per step, equal to the CPU mixer over 4 tokens', async () => {
    const before = rt.fastKernels;
    rt.fastKernels = true;
    try {
      const b = 2;
      const d = config.hiddenSize;
      const mixer = new Mamba2Mixer(rt, config, gpu);
      const normWeight = randu(d, 70, 0.5, 1.5);
      const state = mixer.createState(b);
      let refState: ReturnType<typeof mamba2MixerReference>['state'] | undefined;
      for (let t = 0; t < 4; t++) {
        const h = randn(b * d, 71 + t);
        const normed = await rt.read(rmsNorm(rt, rt.upload(h, [b, 1, d]), rt.upload(normWeight, [d]), 1e-5));
        const pn = new PendingNorm(rt, { h: rt.upload(h, [b, 1, d]), weight: rt.upload(normWeight, [d]), eps: 1e-5 });
        const d0 = rt.dispatchCount;
        const y = mixer.forward(pn, state);
        expect(rt.dispatchCount - d0).toBe(3); // norm + in_proj + conv, the SSD step, gated norm + out_proj
        pn.dispose();
        const ref = mamba2MixerReference(config, host, normed as Float32Array, b, 1, refState);
        refState = ref.state;
        expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-4);
        expect(relError(await rt.read(state.conv), ref.state.conv)).toBeLessThan(1e-5);
        expect(relError(await rt.read(state.ssm), ref.state.ssm)).toBeLessThan(1e-4);
      }
    } finally {
      rt.fastKernels = before;
    }
  });

  it('prefill and token-by-token decode agree (outputs and final states)', async () => {
    const b = 2;
    const L = 21;
    const d = config.hiddenSize;
    const mixer = new Mamba2Mixer(rt, config, gpu);
    const x = randn(b * L * d, 61);
    const sPre = mixer.createState(b);
    const yPre = await rt.read(mixer.forward(rt.upload(x, [b, L, d]), sPre));
    const sStep = mixer.createState(b);
    const steps: Float32Array[] = [];
    for (let l = 0; l < L; l++) {
      const xt = new Float32Array(b * d);
      for (let bi = 0; bi < b; bi++) xt.set(x.subarray((bi * L + l) * d, (bi * L + l + 1) * d), bi * d);
      steps.push((await rt.read(mixer.forward(rt.upload(xt, [b, 1, d]), sStep))) as Float32Array);
    }
    expect(relError(interleave(steps, b, d), yPre)).toBeLessThan(1e-4);
    expect(relError(await rt.read(sStep.ssm), await rt.read(sPre.ssm))).toBeLessThan(1e-4);
    expect(relError(await rt.read(sStep.conv), await rt.read(sPre.conv))).toBeLessThan(1e-6);
    // a prompt fed in two prefills (13 + 8 tokens) continues the state exactly
    const sTwo = mixer.createState(b);
    const first = new Float32Array(b * 13 * d);
    const second = new Float32Array(b * 8 * d);
    for (let bi = 0; bi < b; bi++) {
      first.set(x.subarray(bi * L * d, (bi * L + 13) * d), bi * 13 * d);
      second.set(x.subarray((bi * L + 13) * d, (bi + 1) * L * d), bi * 8 * d);
    }
    mixer.forward(rt.upload(first, [b, 13, d]), sTwo);
    const y2 = await rt.read(mixer.forward(rt.upload(second, [b, 8, d]), sTwo));
    const tail = new Float32Array(b * 8 * d);
    for (let bi = 0; bi < b; bi++) tail.set(yPre.subarray((bi * L + 13) * d, (bi + 1) * L * d), bi * 8 * d);
    expect(relError(y2, tail)).toBeLessThan(1e-4);
    expect(relError(await rt.read(sTwo.ssm), await rt.read(sPre.ssm))).toBeLessThan(1e-4);
  });

  it('the whole Mamba2ForCausalLM built from the mixer reproduces transformers’ logits', async () => {
    const c = JSON.parse(readFileSync(`${fixtures}mamba2/config.json`, 'utf8'));
    const ref = JSON.parse(readFileSync(`${fixtures}mamba2/reference.json`, 'utf8'));
    const ids: number[] = ref.input_ids;
    const L = ids.length;
    const d = config.hiddenSize;
    const emb = tensors['backbone.embeddings.weight'];
    const h0 = new Float32Array(L * d);
    ids.forEach((id, t) => h0.set(emb.data.subarray(id * d, (id + 1) * d), t * d));
    let h = rt.upload(h0, [1, L, d]);
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const layer = loadLayer(tensors, `backbone.layers.${i}.mixer.`);
      const mixer = new Mamba2Mixer(rt, config, layer.gpu);
      const normW = rt.upload(tensors[`backbone.layers.${i}.norm.weight`].data, [d]);
      const m = mixer.forward(rmsNorm(rt, h, normW, c.layer_norm_epsilon), mixer.createState(1));
      h = binary(rt, h, m, 'add');
    }
    const hf = rmsNorm(rt, h, rt.upload(tensors['backbone.norm_f.weight'].data, [d]), c.layer_norm_epsilon);
    const logits = (await rt.read(matmul(rt, hf, rt.upload(emb.data, emb.shape)))) as Float32Array;
    const V = c.vocab_size;
    expect(relError(logits.subarray((L - 1) * V), ref.logits_last)).toBeLessThan(1e-4);
    expect(relError(logits.subarray(0, V), ref.logits_first)).toBeLessThan(1e-4);
    for (const [row, values] of Object.entries(ref.logits_rows_sample as Record<string, number[]>)) {
      expect(relError(logits.subarray(Number(row) * V, Number(row) * V + values.length), values)).toBeLessThan(1e-4);
    }
    const argmax = Array.from({ length: L }, (_, t) => {
      const r = logits.subarray(t * V, (t + 1) * V);
      return r.indexOf(Math.max(...r));
    });
    expect(argmax).toEqual(ref.logits_argmax);
  });
});

describe('Mamba2Mixer on the Bamba and Zamba2 checkpoints', () => {
  for (const family of ['bamba', 'zamba2'] as const) {
    it(`${family} layer 0`, async () => {
      const c = JSON.parse(readFileSync(`${fixtures}${family}/config.json`, 'utf8'));
      const tensors = readSafetensors(`${fixtures}${family}/model.safetensors`);
      const { host, gpu } = loadLayer(tensors, 'model.layers.0.mamba.');
      const heads = family === 'bamba' ? c.mamba_n_heads : c.n_mamba_heads;
      const headDim = family === 'bamba' ? c.mamba_d_head : c.mamba_headdim;
      const groups = family === 'bamba' ? c.mamba_n_groups : c.mamba_ngroups;
      const config: Mamba2MixerConfig = {
        hiddenSize: c.hidden_size,
        numHeads: heads,
        headDim,
        stateSize: c.mamba_d_state,
        nGroups: groups,
        convKernel: c.mamba_d_conv,
        chunkSize: family === 'bamba' ? c.mamba_chunk_size : c.chunk_size,
        useConvBias: family === 'bamba' ? c.mamba_conv_bias : true,
        useBias: family === 'bamba' ? c.mamba_proj_bias : c.add_bias_linear,
        timeStepLimit: family === 'bamba' ? [0, Infinity] : [c.time_step_min, Infinity],
        normEps: family === 'bamba' ? c.rms_norm_eps : 1e-5,
        normGroupSize: family === 'bamba' ? undefined : (heads * headDim) / groups,
      };
      const mixer = new Mamba2Mixer(rt, config, gpu);
      const x = randn(2 * 21 * c.hidden_size, 71);
      const state = mixer.createState(2);
      const y = mixer.forward(rt.upload(x, [2, 21, c.hidden_size]), state);
      const ref = mamba2MixerReference(config, host, x, 2, 21);
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-4);
      expect(relError(await rt.read(state.ssm), ref.state.ssm)).toBeLessThan(1e-4);
    });
  }
});

/** Random weights for a config (scaled so activations stay O(1)). */
function randomWeights(config: Mamba2MixerConfig, seed: number, dtype: 'f32' | 'bf16' = 'f32') {
  const host: Record<string, Float32Array> = {};
  const gpu: Record<string, Tensor> = {};
  Mamba2Mixer.expectedWeights(config).forEach((spec, i) => {
    const n = spec.shape.reduce((a, v) => a * v, 1);
    let data: Float32Array;
    if (spec.name === 'A_log') data = randu(n, seed + i, 0, Math.log(8));
    else if (spec.name === 'dt_bias') data = randn(n, seed + i, 0.5).map((v) => v - 2);
    else if (spec.name === 'norm.weight') data = randn(n, seed + i, 0.2).map((v) => v + 1);
    else if (spec.name.endsWith('.weight')) data = randn(n, seed + i, 1 / Math.sqrt(spec.shape[spec.shape.length - 1]));
    else data = randn(n, seed + i, 0.3);
    const wd = spec.dtype === 'f32' || spec.name.endsWith('bias') || spec.shape.length === 1 ? 'f32' : dtype;
    host[spec.name] = roundTo(data, wd);
    gpu[spec.name] = rt.upload(data, spec.shape, wd);
  });
  return { host, gpu };
}

describe('Mamba2Mixer variants (random weights)', () => {
  const base: Mamba2MixerConfig = {
    hiddenSize: 40,
    numHeads: 4,
    headDim: 8,
    stateSize: 12,
    nGroups: 2,
    convKernel: 4,
    chunkSize: 16,
    useConvBias: true,
    useBias: true,
    timeStepLimit: [0.001, 0.5],
    normEps: 1e-6,
  };
  const variants: [string, Partial<Mamba2MixerConfig>][] = [
    ['Mamba2/Bamba whole-vector gated norm, biases, dt limit', {}],
    ['Nemotron-H/Zamba2 per-group norm, 4 groups', { nGroups: 4, normGroupSize: 8, useBias: false, timeStepLimit: [0.001, Infinity] }],
    ['Falcon-H1 norm before gate, out_proj bias only', { normBeforeGate: true, normGroupSize: 16, useBias: false, outProjBias: true }],
    ['Falcon-H1 without the norm', { gatedNorm: false, chunkSize: 64 }],
    ['d_mlp columns dropped, no conv bias, no conv activation', { dMlp: 6, useConvBias: false, convActivation: 'none' }],
    ['prompt split into passes of 16 tokens', { maxTokensPerPass: 16, nGroups: 1 }],
  ];
  for (const [label, over] of variants) {
    it(label, async () => {
      const config = { ...base, ...over };
      const { host, gpu } = randomWeights(config, 90);
      const mixer = new Mamba2Mixer(rt, config, gpu);
      const b = 2;
      const L = 41;
      const x = randn(b * L * config.hiddenSize, 91);
      const state = mixer.createState(b);
      const y = mixer.forward(rt.upload(x, [b, L, config.hiddenSize]), state);
      const ref = mamba2MixerReference(config, host, x, b, L);
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-4);
      expect(relError(await rt.read(state.ssm), ref.state.ssm)).toBeLessThan(1e-4);
      expect(relError(await rt.read(state.conv), ref.state.conv)).toBeLessThan(1e-5);
      const x1 = randn(b * config.hiddenSize, 92);
      const y1 = mixer.forward(rt.upload(x1, [b, 1, config.hiddenSize]), state);
      const ref1 = mamba2MixerReference(config, host, x1, b, 1, ref.state);
      expect(relError(await rt.read(y1), ref1.y)).toBeLessThan(1e-4);
    });
  }

  it('bf16 projection and conv weights', async () => {
    const { host, gpu } = randomWeights(base, 95, 'bf16');
    const mixer = new Mamba2Mixer(rt, base, gpu);
    const x = randn(19 * base.hiddenSize, 96);
    const state = mixer.createState(1);
    const y = mixer.forward(rt.upload(x, [1, 19, base.hiddenSize]), state);
    expect(relError(await rt.read(y), mamba2MixerReference(base, host, x, 1, 19).y)).toBeLessThan(1e-4);
  });

  it('state clone, reset, save and load', async () => {
    const { gpu } = randomWeights(base, 97);
    const mixer = new Mamba2Mixer(rt, base, gpu);
    const d = base.hiddenSize;
    const state = mixer.createState(1);
    mixer.forward(rt.upload(randn(9 * d, 98), [1, 9, d]), state);
    const fork = state.clone();
    const bytes = await state.save();
    const x1 = rt.upload(randn(d, 99), [1, 1, d]);
    const a = await rt.read(mixer.forward(x1, state));
    const b = await rt.read(mixer.forward(x1, fork));
    expect(relError(b, a)).toBe(0);
    expect(fork.length).toBe(10);
    const restored = mixer.createState(1);
    restored.load(bytes);
    expect(restored.length).toBe(9);
    expect(relError(await rt.read(mixer.forward(x1, restored)), a)).toBe(0);
    const mem = state.memory();
    expect(mem).toEqual({ ssm: 4 * 8 * 12 * 4, conv: (32 + 2 * 2 * 12) * 3 * 4, kv: 0 });
    state.reset();
    expect(state.length).toBe(0);
    expect(Array.from(await rt.read(state.ssm)).every((v) => v === 0)).toBe(true);
    expect(() => restored.load(bytes.subarray(0, 20))).toThrow(/Mamba2State.load/);
  });

  it('rejects missing or misshapen weights and bad inputs', () => {
    const { gpu } = randomWeights(base, 100);
    const { D: _drop, ...missing } = gpu;
    expect(() => new Mamba2Mixer(rt, base, missing)).toThrow(/weight D \[4\] is missing/);
    expect(() => new Mamba2Mixer(rt, base, { ...gpu, 'out_proj.weight': rt.zeros([40, 31]) })).toThrow(/out_proj.weight has shape \[40,31\], expected \[40,32\]/);
    expect(() => new Mamba2Mixer(rt, { ...base, normGroupSize: 5 }, gpu)).toThrow(/normGroupSize=5/);
    const mixer = new Mamba2Mixer(rt, base, gpu);
    expect(() => mixer.forward(rt.zeros([2, 3, 40]), mixer.createState(1))).toThrow(/x has shape \[2,3,40\], expected \[batch=1, seqlen, hidden=40\]/);
  });
});
