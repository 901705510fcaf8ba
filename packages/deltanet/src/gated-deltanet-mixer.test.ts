import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Tensor, roundTo } from '@statespace/core';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { type GatedDeltaNetConfig, GatedDeltaNetMixer } from './gated-deltanet-mixer.js';
import { gatedDeltaNetReference } from './gated-deltanet-reference.js';

const rt = await getTestRuntime();
const fixtureDir = fileURLToPath(new URL('../../../fixtures/hf-tiny/qwen3_next/', import.meta.url));

/** Minimal safetensors reader for the test (F32 / F16 / BF16 tensors only). */
function readSafetensors(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + headerLen;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [start, end] = info.data_offsets;
    const raw = bytes.subarray(base + start, base + end);
    const copy = new Uint8Array(raw); // aligned copy
    let data: Float32Array;
    if (info.dtype === 'F32') data = new Float32Array(copy.buffer);
    else if (info.dtype === 'BF16') {
      const h = new Uint16Array(copy.buffer);
      data = new Float32Array(h.length);
      new Uint32Array(data.buffer).set(Array.from(h, (x) => x << 16));
    } else throw new Error(`test reader: ${name} has unsupported dtype ${info.dtype}`);
    out.set(name, { shape: info.shape, data });
  }
  return out;
}

const hfConfig = JSON.parse(readFileSync(`${fixtureDir}config.json`, 'utf8')) as Record<string, unknown>;
const tensors = readSafetensors(`${fixtureDir}model.safetensors`);

function layerWeights(layer: number): Record<string, { shape: number[]; data: Float32Array }> {
  const prefix = `model.layers.${layer}.linear_attn.`;
  const w: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of tensors) if (name.startsWith(prefix)) w[name.slice(prefix.length)] = t;
  return w;
}

function upload(host: Record<string, { shape: number[]; data: Float32Array }>, dtype: 'f32' | 'bf16' = 'f32'): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(host)) out[name] = rt.upload(t.data, t.shape, dtype, name);
  return out;
}

function hostData(host: Record<string, { shape: number[]; data: Float32Array }>, dtype: 'f32' | 'bf16' = 'f32'): Record<string, Float32Array> {
  return Object.fromEntries(Object.entries(host).map(([k, t]) => [k, roundTo(t.data, dtype)]));
}

/** Tokens [t0, t1) of every sequence of x (B, L, D). */
function sliceTokens(x: Float32Array, B: number, L: number, D: number, t0: number, t1: number): Float32Array {
  const out = new Float32Array(B * (t1 - t0) * D);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * L + t0) * D, (b * L + t1) * D), b * (t1 - t0) * D);
  return out;
}

describe('GatedDeltaNetMixer on the hf-tiny Qwen3-Next checkpoint', () => {
  const config = GatedDeltaNetMixer.configFromHf(hfConfig);
  const D = config.hiddenSize;

  it('reads the layer configuration and finds every expected weight', () => {
    expect(config).toEqual({ hiddenSize: 64, numKeyHeads: 2, numValueHeads: 4, headKDim: 16, headVDim: 16, convKernel: 4, normEps: 1e-6 });
    const w = layerWeights(0);
    for (const spec of GatedDeltaNetMixer.expectedWeights(config)) expect(w[spec.name]?.shape).toEqual(spec.shape);
  });

  for (const { layer, B, L, chunkSize } of [
    { layer: 0, B: 1, L: 37, chunkSize: 64 },
    { layer: 0, B: 2, L: 70, chunkSize: 16 },
    { layer: 2, B: 2, L: 33, chunkSize: 32 },
  ]) {
    it(`layer ${layer} forward matches the CPU reference of the transformers layer (B=${B}, L=${L}, C=${chunkSize})`, async () => {
      const host = layerWeights(layer);
      const mixer = new GatedDeltaNetMixer(rt, { ...config, chunkSize }, upload(host));
      const x = randn(B * L * D, 1000 + layer + L);
      const ref = gatedDeltaNetReference(x, hostData(host), config, B, L);
      const state = mixer.createState(B);
      const y = mixer.forward(rt.upload(x, [B, L, D]), state);
      expect(y.shape).toEqual([B, L, D]);
      expect(relError(await rt.readFloat(y), ref.y)).toBeLessThan(1e-4);
      expect(relError(await rt.readFloat(state.ssm), ref.state.ssm)).toBeLessThan(1e-4);
      expect(relError(await rt.readFloat(state.conv), ref.state.conv)).toBeLessThan(1e-6);
      expect(state.length).toBe(L);
      state.dispose();
    });
  }

  it('prefill equals token-by-token decode, and a split prefill equals one prefill', async () => {
    const B = 2;
    const L = 24;
    const host = layerWeights(1);
    const mixer = new GatedDeltaNetMixer(rt, { ...config, chunkSize: 16 }, upload(host));
    const x = randn(B * L * D, 77);
    const full = mixer.createState(B);
    const yFull = await rt.readFloat(mixer.forward(rt.upload(x, [B, L, D]), full));

    const stepwise = mixer.createState(B);
    const yStep = new Float32Array(B * L * D);
    // record every step first, read back at the end (one sync instead of one per token)
    const outs: Tensor[] = [];
    for (let t = 0; t < L; t++) outs.push(mixer.forward(rt.upload(sliceTokens(x, B, L, D, t, t + 1), [B, 1, D]), stepwise));
    for (let t = 0; t < L; t++) {
      const yt = await rt.readFloat(outs[t]);
      for (let b = 0; b < B; b++) yStep.set(yt.subarray(b * D, (b + 1) * D), (b * L + t) * D);
    }
    expect(relError(yStep, yFull)).toBeLessThan(1e-4);
    expect(relError(await rt.readFloat(stepwise.ssm), await rt.readFloat(full.ssm))).toBeLessThan(1e-4);
    expect(relError(await rt.readFloat(stepwise.conv), await rt.readFloat(full.conv))).toBeLessThan(1e-6);

    const split = mixer.createState(B);
    const P = 17;
    const y1 = await rt.readFloat(mixer.forward(rt.upload(sliceTokens(x, B, L, D, 0, P), [B, P, D]), split));
    const y2 = await rt.readFloat(mixer.forward(rt.upload(sliceTokens(x, B, L, D, P, L), [B, L - P, D]), split));
    expect(relError(y1, sliceTokens(yFull, B, L, D, 0, P))).toBeLessThan(1e-4);
    expect(relError(y2, sliceTokens(yFull, B, L, D, P, L))).toBeLessThan(1e-4);
    expect(split.length).toBe(L);
  });

  it('runs bf16 weights (the reference sees the same rounded weights)', async () => {
    const B = 1;
    const L = 19;
    const host = layerWeights(0);
    const mixer = new GatedDeltaNetMixer(rt, config, upload(host, 'bf16'));
    const x = randn(B * L * D, 5);
    const ref = gatedDeltaNetReference(x, hostData(host, 'bf16'), config, B, L);
    const y = mixer.forward(rt.upload(x, [B, L, D]), mixer.createState(B));
    expect(relError(await rt.readFloat(y), ref.y)).toBeLessThan(1e-4);
  });

  it('state: clone is independent, save/load round-trips, reset empties', async () => {
    const B = 1;
    const host = layerWeights(0);
    const mixer = new GatedDeltaNetMixer(rt, config, upload(host));
    const state = mixer.createState(B);
    mixer.forward(rt.upload(randn(9 * D, 3), [B, 9, D]), state);
    const saved = await state.save();
    const fork = state.clone();
    const next = rt.upload(randn(D, 4), [B, 1, D]);
    const a = await rt.readFloat(mixer.forward(next, state));
    const b = await rt.readFloat(mixer.forward(next, fork));
    expect(relError(b, a)).toBeLessThan(1e-6);
    expect(fork.length).toBe(10);
    const restored = mixer.createState(B);
    restored.load(saved);
    expect(restored.length).toBe(9);
    const c = await rt.readFloat(mixer.forward(next, restored));
    expect(relError(c, a)).toBeLessThan(1e-6);
    expect(state.memory()).toEqual({ ssm: 4 * 16 * 16 * 4, conv: 128 * 3 * 4, kv: 0 });
    state.reset();
    expect(state.length).toBe(0);
    expect(Array.from(await rt.readFloat(state.ssm)).every((v) => v === 0)).toBe(true);
    expect(() => mixer.createState(2).load(saved)).toThrow(/same layer config and batch/);
  });

  it('rejects missing or misshapen weights and wrong inputs', () => {
    const w = upload(layerWeights(0));
    const { A_log: _unused, ...missing } = w;
    expect(() => new GatedDeltaNetMixer(rt, config, missing)).toThrow(/A_log \[4\] is missing/);
    const bad: GatedDeltaNetConfig = { ...config, headVDim: 8 };
    expect(() => new GatedDeltaNetMixer(rt, bad, w)).toThrow(/in_proj_qkvz.weight has shape \[192,64\], expected \[128,64\]/);
    const mixer = new GatedDeltaNetMixer(rt, config, w);
    expect(() => mixer.forward(rt.zeros([1, 3, 63]), mixer.createState(1))).toThrow(/expected \[batch, seqlen, hidden=64\]/);
    expect(() => mixer.forward(rt.zeros([2, 3, 64]), mixer.createState(1))).toThrow(/state holds batch 1/);
  });
});
