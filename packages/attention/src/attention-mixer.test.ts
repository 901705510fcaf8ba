import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PendingNorm, type Tensor, rmsNorm, roundTo, usesTiledMatmul } from '@statespace/core';
import { asGpuAdapter, getTestRuntime, randn, recordKernels, relError } from '@statespace/core/testing';
import { AttentionMixer, type AttentionMixerConfig, attentionMixerReference } from './attention-mixer.js';

const rt = await getTestRuntime();
const fixtures = fileURLToPath(new URL('../../../fixtures/hf-tiny/', import.meta.url));

/** A minimal safetensors reader (F32 only): 8-byte header length, JSON header, raw data. */
function readSafetensors(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`${name}: ${t.dtype} is not handled by this test reader`);
    const bytes = buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    out.set(name, { shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) });
  }
  return out;
}

function layerWeights(family: string, prefix: string): Record<string, { shape: number[]; data: Float32Array }> {
  const all = readSafetensors(`${fixtures}${family}/model.safetensors`);
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of all) if (name.startsWith(prefix) && !name.slice(prefix.length).includes('adapter')) out[name.slice(prefix.length)] = t;
  return out;
}

function hfConfig(family: string): Record<string, any> {
  return JSON.parse(readFileSync(`${fixtures}${family}/config.json`, 'utf8'));
}

function upload(host: Record<string, { shape: number[]; data: Float32Array }>, dtype: 'f32' | 'bf16' = 'f32'): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(host)) out[k] = rt.upload(t.data, t.shape, k.endsWith('.bias') ? 'f32' : dtype, k);
  return out;
}

function hostOf(host: Record<string, { shape: number[]; data: Float32Array }>, dtype: 'f32' | 'bf16' = 'f32'): Record<string, Float32Array> {
  return Object.fromEntries(Object.entries(host).map(([k, t]) => [k, k.endsWith('.bias') ? t.data : roundTo(t.data, dtype)]));
}

/** Prefill vs the CPU reference, then the same tokens fed as a 7-token prompt + single tokens must give the same outputs. */
async function checkLayer(config: AttentionMixerConfig, host: Record<string, { shape: number[]; data: Float32Array }>, B: number, L: number, dtype: 'f32' | 'bf16' = 'f32') {
  const E = config.inputSize ?? config.hiddenSize;
  const N = config.hiddenSize;
  const mixer = new AttentionMixer(rt, config, upload(host, dtype));
  const x = randn(B * L * E, L + E);
  const state = mixer.createState(B);
  const y = await rt.read(mixer.forward(rt.upload(x, [B, L, E]), state));
  expect(state.length).toBe(L);
  const ref = attentionMixerReference(config, hostOf(host, dtype), x, B, L);
  expect(relError(y, ref)).toBeLessThan(1e-5);

  const inc = mixer.createState(B);
  const got = new Float32Array(B * L * N);
  const steps: [number, number][] = [[0, Math.min(7, L)]];
  for (let t = Math.min(7, L); t < L; t++) steps.push([t, 1]);
  for (const [t0, n] of steps) {
    const xs = new Float32Array(B * n * E);
    for (let b = 0; b < B; b++) xs.set(x.subarray((b * L + t0) * E, (b * L + t0 + n) * E), b * n * E);
    const ys = await rt.read(mixer.forward(rt.upload(xs, [B, n, E]), inc));
    for (let b = 0; b < B; b++) got.set(ys.subarray(b * n * N, (b + 1) * n * N), (b * L + t0) * N);
  }
  expect(relError(got, y)).toBeLessThan(1e-5);
  if (inc.overwrites) expect(inc.memory().kv).toBe(state.memory().kv); // a ring: the same bytes after a prefill or L decode steps
  else expect(inc.memory().kv).toBeGreaterThanOrEqual(2 * B * L * config.numKeyValueHeads * config.headDim * 4);
  return mixer;
}

describe('AttentionMixer on transformers checkpoints', () => {
  it('Llama layer 0 (model.layers.0.self_attn.*): prefill matches the CPU reference, decode matches prefill', async () => {
    const c = hfConfig('llama');
    const config: AttentionMixerConfig = {
      hiddenSize: c.hidden_size,
      numHeads: c.num_attention_heads,
      numKeyValueHeads: c.num_key_value_heads,
      headDim: c.head_dim,
      rope: { theta: c.rope_parameters.rope_theta, rotaryDim: c.head_dim },
      qkvBias: c.attention_bias,
      oBias: c.attention_bias,
    };
    const host = layerWeights('llama', 'model.layers.0.self_attn.');
    expect(Object.keys(host).sort()).toEqual(AttentionMixer.expectedWeights(config).map((s) => s.name).sort());
    await checkLayer(config, host, 2, 23);
  });
  it('Qwen3-Next gated attention (layer 3): output gate, (1+w) q/k norms, partial rotary 1/4, GQA 2:1', async () => {
    const c = hfConfig('qwen3_next');
    const config: AttentionMixerConfig = {
      hiddenSize: c.hidden_size,
      numHeads: c.num_attention_heads,
      numKeyValueHeads: c.num_key_value_heads,
      headDim: c.head_dim,
      rope: { theta: 10000, rotaryDim: c.head_dim * c.partial_rotary_factor },
      qkNorm: { eps: c.rms_norm_eps, unitOffset: true },
      outputGate: true,
    };
    const host = layerWeights('qwen3_next', 'model.layers.3.self_attn.');
    // the fixture's norm weights are zeros (init); perturb them so the norm weights matter
    for (const k of ['q_norm.weight', 'k_norm.weight']) host[k] = { shape: host[k].shape, data: randn(16, k.length, 0.3) };
    await checkLayer(config, host, 1, 12);
  });
  it("Zamba2's shared attention: input 2·hidden, scale (head_dim/2)^-0.5", async () => {
    const c = hfConfig('zamba2');
    const config: AttentionMixerConfig = {
      hiddenSize: c.hidden_size,
      inputSize: 2 * c.hidden_size,
      numHeads: c.num_attention_heads,
      numKeyValueHeads: c.num_key_value_heads,
      headDim: c.attention_head_dim,
      rope: { theta: 10000, rotaryDim: c.attention_head_dim },
      scale: (c.attention_head_dim / 2) ** -0.5,
    };
    await checkLayer(config, layerWeights('zamba2', 'model.layers.1.shared_transformer.self_attn.'), 1, 9);
  });
  it('Jamba attention: no RoPE', async () => {
    const c = hfConfig('jamba');
    const config: AttentionMixerConfig = { hiddenSize: 64, numHeads: c.num_attention_heads, numKeyValueHeads: c.num_key_value_heads, headDim: 16, rope: null };
    await checkLayer(config, layerWeights('jamba', 'model.layers.3.self_attn.'), 2, 10);
  });
});

function randomWeights(config: AttentionMixerConfig, seed: number): Record<string, { shape: number[]; data: Float32Array }> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  AttentionMixer.expectedWeights(config).forEach((s, i) => {
    out[s.name] = { shape: s.shape, data: randn(s.shape.reduce((a, b) => a * b, 1), seed + i, s.name.includes('norm') ? 0.3 : 0.15) };
  });
  return out;
}

describe('AttentionMixer options', () => {
  const base = { hiddenSize: 48, numHeads: 6, numKeyValueHeads: 2, headDim: 32 };
  const cases: [string, AttentionMixerConfig, number, number][] = [
    ['biases, sliding window 5, soft-cap, Granite attention_multiplier', { ...base, rope: { theta: 10000, rotaryDim: 32 }, qkvBias: true, oBias: true, slidingWindow: 5, softcap: 3, attentionMultiplier: 0.05 }, 2, 21],
    ['sliding window 4 in a ring of 4-token pages: a 30-token prompt in pieces of 5, 23 decode steps (3 leapfrogs)', { ...base, rope: { theta: 10000, rotaryDim: 32 }, slidingWindow: 4, cache: { pageSize: 4 } }, 2, 30],
    ['Falcon-H1 key_multiplier, llama3 RoPE, partial rotary 1/2 (Bamba-style)', {
      ...base, keyMultiplier: 0.7,
      rope: { theta: 500000, rotaryDim: 16, scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } },
    }, 1, 17],
    ['yarn RoPE, Qwen3 q/k norm (plain w), multi-query', {
      ...base, numKeyValueHeads: 1,
      rope: { theta: 10000, rotaryDim: 32, scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32 } },
      qkNorm: { eps: 1e-6 },
    }, 2, 12],
  ];
  for (const [name, config, B, L] of cases) {
    it(name, async () => {
      await checkLayer(config, randomWeights(config, L), B, L);
    });
  }
  // The fast decode path: norm + q/k/v in one stacked dispatch, flash decoding's pass 1 (one or two runs), its
  // combine inside o_proj; rope and the cache write inside pass 1 for GQA (3 dispatches a token), in a dispatch of
  // their own with q/k norms or one query head per KV head (4); values as the reference.
  for (const [name, config, dispatches] of [
    ['fast decode, GQA 6:2, partial rotary', { ...base, rope: { theta: 10000, rotaryDim: 16 } }, 3],
    ['fast decode, GQA 6:2, partial rotary, a ring of window 5', { ...base, rope: { theta: 10000, rotaryDim: 8 }, slidingWindow: 5, cache: { pageSize: 4 } }, 3],
    ['fast decode, Qwen3 q/k norm (1 + w), multi-query, a ring of window 5', { ...base, numKeyValueHeads: 1, rope: { theta: 10000, rotaryDim: 32 }, qkNorm: { eps: 1e-6, unitOffset: true }, slidingWindow: 5, cache: { pageSize: 4 } }, 4],
  ] as [string, AttentionMixerConfig, number][]) {
    it(`${name}: ${dispatches} dispatches per token, equal to the reference`, async () => {
      const before = rt.fastKernels;
      rt.fastKernels = true;
      try {
        const B = 2, P = 7, steps = 4, E = base.hiddenSize;
        const host = randomWeights(config, 9);
        const mixer = new AttentionMixer(rt, config, upload(host));
        const state = mixer.createState(B);
        const prompt = randn(B * P * E, 11);
        mixer.forward(rt.upload(prompt, [B, P, E]), state).dispose();
        const normWeight = randn(E, 12, 0.3);
        const all = new Float32Array(B * (P + steps) * E);
        for (let b = 0; b < B; b++) all.set(prompt.subarray(b * P * E, (b + 1) * P * E), b * (P + steps) * E);
        const got: Float32Array[] = [];
        for (let t = 0; t < steps; t++) {
          const h = randn(B * E, 20 + t);
          const normed = (await rt.read(rmsNorm(rt, rt.upload(h, [B, 1, E]), rt.upload(normWeight, [E]), 1e-5))) as Float32Array;
          for (let b = 0; b < B; b++) all.set(normed.subarray(b * E, (b + 1) * E), (b * (P + steps) + P + t) * E);
          const pn = new PendingNorm(rt, { h: rt.upload(h, [B, 1, E]), weight: rt.upload(normWeight, [E]), eps: 1e-5 });
          const d0 = rt.dispatchCount;
          const y = mixer.forward(pn, state);
          expect(rt.dispatchCount - d0).toBe(dispatches);
          pn.dispose();
          got.push((await rt.read(y)) as Float32Array);
        }
        const ref = attentionMixerReference(config, hostOf(host), all, B, P + steps);
        for (let t = 0; t < steps; t++) {
          for (let b = 0; b < B; b++) {
            const at = (b * (P + steps) + P + t) * E;
            expect(relError(got[t].subarray(b * E, (b + 1) * E), ref.subarray(at, at + E)), `step ${t} sequence ${b}`).toBeLessThan(1e-5);
          }
        }
      } finally {
        rt.fastKernels = before;
      }
    });
  }
  it('prefill of a 40-token prompt: q, k, v in one stacked tiled dispatch exactly where the tiled matmul runs', async () => {
    const config: AttentionMixerConfig = { ...base, rope: { theta: 10000, rotaryDim: 32 } };
    const [B, L, E] = [1, 40, base.hiddenSize];
    const host = randomWeights(config, 13);
    const mixer = new AttentionMixer(rt, config, upload(host));
    const x = randn(B * L * E, 14);
    const ref = attentionMixerReference(config, hostOf(host), x, B, L);
    // then, on a software adapter, as a GPU adapter would make the call (asGpuAdapter), so that SwiftShader runs
    // the stacked path of the layer too (the cheapest tiles there: the default profile's 32x64)
    const prefill = async () => {
      expect(usesTiledMatmul(rt, B * L)).toBe(!rt.info.isSoftware);
      const xT = rt.upload(x, [B, L, E]);
      const { result: y, kernels: ran } = recordKernels(rt, () => mixer.forward(xT, mixer.createState(B)));
      // x, q/k/v weights, q/k/v; or, split over K, x, the weights and the partials, then their reduce into q, k, v
      const stacked = ran.filter((n) => n.startsWith('matmul_tiled_stack') || n.startsWith('matmul_splitk_reduce_stack'));
      if (usesTiledMatmul(rt, B * L)) {
        expect(stacked[0]).toMatch(/^matmul_tiled_stack\/(7|5)$/);
        expect(ran.filter((n) => n.startsWith('matmul_tiled_rb')).length, 'o_proj alone').toBeLessThanOrEqual(1);
      } else {
        expect(stacked).toEqual([]);
      }
      expect(relError(await rt.read(y), ref)).toBeLessThan(1e-5);
      y.dispose();
    };
    await prefill();
    if (rt.info.isSoftware) await asGpuAdapter(rt, prefill);
  });
  it('createState: a ring KV cache exactly when the layer has a sliding window (unless boundedCache is false)', () => {
    const config = { ...base, rope: null };
    const w = upload(randomWeights(config, 1));
    expect(new AttentionMixer(rt, config, w).createState(1).overwrites).toBe(false);
    const ring = new AttentionMixer(rt, { ...config, slidingWindow: 300 }, w).createState(1);
    // runs of C = ceil(299 / 256)·256 + 256 = 768 tokens; a piece of C - W + 1
    expect([ring.overwrites, ring.window, ring.maxAppend]).toEqual([true, 300, 3 * 256 - 300 + 1]);
    expect(new AttentionMixer(rt, { ...config, slidingWindow: 300, boundedCache: false }, w).createState(1).overwrites).toBe(false);
  });
  it('bf16 weights', async () => {
    const config: AttentionMixerConfig = { ...base, rope: { theta: 10000, rotaryDim: 32 }, qkNorm: { eps: 1e-6, unitOffset: true }, outputGate: true };
    await checkLayer(config, randomWeights(config, 3), 1, 9, 'bf16');
  });
  it('dynamic RoPE past max_position_embeddings (frequencies from the call length)', async () => {
    const config: AttentionMixerConfig = { ...base, rope: { theta: 10000, rotaryDim: 32, maxPositionEmbeddings: 8, scaling: { rope_type: 'dynamic', factor: 2 } } };
    const mixer = new AttentionMixer(rt, config, upload(randomWeights(config, 5)));
    const x = randn(20 * 48, 4);
    const y = await rt.read(mixer.forward(rt.upload(x, [1, 20, 48]), mixer.createState(1)));
    expect(relError(y, attentionMixerReference(config, hostOf(randomWeights(config, 5)), x, 1, 20))).toBeLessThan(1e-5);
  });
  it('state clone and save/load continue generation identically', async () => {
    const config: AttentionMixerConfig = { ...base, rope: { theta: 10000, rotaryDim: 32 } };
    const mixer = new AttentionMixer(rt, config, upload(randomWeights(config, 7)));
    const state = mixer.createState(2);
    mixer.forward(rt.upload(randn(2 * 11 * 48, 1), [2, 11, 48]), state);
    const clone = state.clone();
    const restored = mixer.createState(2);
    restored.load(await state.save());
    const next = rt.upload(randn(2 * 48, 2), [2, 1, 48]);
    const a = await rt.read(mixer.forward(next, state));
    const b = await rt.read(mixer.forward(next, clone));
    const c = await rt.read(mixer.forward(next, restored));
    expect(relError(b, a)).toBeLessThan(1e-6);
    expect(relError(c, a)).toBeLessThan(1e-6);
    expect(restored.length).toBe(12);
    state.reset();
    expect(state.length).toBe(0);
  });
  it('names a missing or misshapen weight', () => {
    const config: AttentionMixerConfig = { ...base, rope: null, qkvBias: true };
    const w = upload(randomWeights(config, 1));
    const { ['k_proj.bias']: _, ...missing } = w;
    expect(() => new AttentionMixer(rt, config, missing)).toThrow(/'k_proj.bias' \[64\] is missing/);
    expect(() => new AttentionMixer(rt, config, { ...w, 'o_proj.weight': w['q_proj.weight'] })).toThrow(/o_proj.weight has shape \[192,48\], expected \[48,192\]/);
    const mixer = new AttentionMixer(rt, config, w);
    expect(() => mixer.forward(rt.upload(randn(40, 1), [1, 1, 40]), mixer.createState(1))).toThrow(/expected \[batch=1, seqlen, features=48\]/);
  });
});
