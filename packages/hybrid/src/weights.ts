/**
 * The weights a {@link ModelSpec} declares (names, shapes, which must stay f32)
 * and seeded random initialisation at those shapes, for composed hybrids and benchmarks.
 */
import { type DType, type Runtime, type Tensor, type WeightSpec } from '@statespace/core';
import { channelWeightShapes } from './channel.js';
import { mixerFactories } from './mixers.js';
import type { ModelSpec, NormSpec } from './spec.js';
import { Zamba2SharedBlock } from './zamba2-block.js';

/** One weight of a model, by full name. */
export interface ModelWeightSpec {
  /** Full tensor name, as in the checkpoint. */
  name: string;
  /** Shape, HF layout (Linear weights are (out, in)). */
  shape: number[];
  /** Must stay f32 (SSM parameters, conv kernels, norms). */
  f32: boolean;
  /** What initialises it randomly. */
  init: 'normal' | 'ones' | 'zeros' | 'a_log' | 'dt_bias' | 'a_log_scalar';
}

function normWeights(n: NormSpec | undefined, D: number): ModelWeightSpec[] {
  if (!n) return [];
  const out: ModelWeightSpec[] = [{ name: n.weight, shape: [D], f32: true, init: n.kind === 'rms_unit' ? 'zeros' : 'ones' }];
  if (n.kind === 'layer') out.push({ name: n.weight.replace(/weight$/, 'bias'), shape: [D], f32: true, init: 'zeros' });
  return out;
}

function initFor(w: WeightSpec): ModelWeightSpec['init'] {
  const n = w.name;
  if (n.endsWith('A_log')) return w.shape.length === 1 ? 'a_log_scalar' : 'a_log';
  if (n.endsWith('dt_bias') || n === 'dt_proj.bias') return 'dt_bias';
  if (n === 'D' || /norm\.weight$|layernorm\.weight$/.test(n)) return 'ones';
  if (n.endsWith('.bias')) return 'zeros';
  return 'normal';
}

/**
 * Every weight a spec declares, deduplicated (tied heads, shared blocks), in order.
 *
 * @example
 * ```ts
 * const spec = composeSpec({ pattern: 'MA', hiddenSize: 64, vocabSize: 512 });
 * for (const w of modelWeights(spec)) console.log(w.name, w.shape, w.f32); // embed.weight [512, 64] false, ...
 * ```
 */
export function modelWeights(spec: ModelSpec): ModelWeightSpec[] {
  const D = spec.hiddenSize;
  const out: ModelWeightSpec[] = [{ name: spec.embedding, shape: [spec.vocabSize, D], f32: false, init: 'normal' }];
  for (const b of spec.blocks) {
    if (b.sharedBlock) {
      for (const w of Zamba2SharedBlock.expectedWeights(b.sharedBlock, D)) {
        out.push({ ...w, init: w.f32 ? (/norm\.weight$/.test(w.name) ? 'ones' : 'zeros') : 'normal' });
      }
    }
    out.push(...normWeights(b.mixerNorm, D));
    for (const m of b.mixers) {
      for (const w of mixerFactories[m.kind].expectedWeights(m.config)) {
        const matrix = w.shape.length === 2 && w.dtype !== 'f32' && !w.name.endsWith('A_log');
        out.push({ name: m.prefix + w.name, shape: w.shape, f32: !matrix, init: initFor(w) });
      }
    }
    out.push(...normWeights(b.channelNorm, D));
    if (b.channel) for (const w of channelWeightShapes(b.channel, D)) out.push({ ...w, f32: w.f32 ?? false, init: w.f32 ? 'zeros' : 'normal' });
  }
  out.push(...normWeights(spec.finalNorm, D));
  out.push({ name: spec.lmHead, shape: [spec.vocabSize, D], f32: false, init: 'normal' });
  const seen = new Set<string>();
  return out.filter((w) => (seen.has(w.name) ? false : (seen.add(w.name), true)));
}

/** A fast seeded PRNG (xorshift128+ reduced to 32-bit floats) for large random weights. */
function normalFill(out: Float32Array, seed: number, std: number): void {
  let s0 = (seed * 2654435761) >>> 0 || 1;
  let s1 = (seed ^ 0x9e3779b9) >>> 0 || 2;
  const next = () => {
    let x = s0;
    const y = s1;
    s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    s1 = x >>> 0;
    return ((s0 + s1) >>> 0) / 4294967296;
  };
  for (let i = 0; i < out.length; i += 2) {
    const u = Math.max(next(), 1e-12);
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(t);
  }
}

/**
 * Host values of a randomly initialised weight (the init schemes of the Mamba papers, std 0.02 elsewhere).
 *
 * @example
 * ```ts
 * randomWeightValues({ name: 'layers.0.mixer.A_log', shape: [4, 3], f32: true, init: 'a_log' }, 1);
 * // log(1), log(2), log(3) in every row (S4D-real: A = -(1..N))
 * ```
 */
export function randomWeightValues(w: ModelWeightSpec, seed: number): Float32Array {
  const n = w.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  switch (w.init) {
    case 'ones':
      return out.fill(1);
    case 'zeros':
      return out;
    case 'a_log': {
      // S4D-real: A[c, s] = -(s + 1)
      const S = w.shape[1];
      for (let i = 0; i < n; i++) out[i] = Math.log((i % S) + 1);
      return out;
    }
    case 'a_log_scalar':
      for (let i = 0; i < n; i++) out[i] = Math.log(1 + (15 * i) / Math.max(1, n - 1));
      return out;
    case 'dt_bias':
      // inverse softplus of dt spread log-uniformly over [0.001, 0.1]
      for (let i = 0; i < n; i++) {
        const dt = Math.exp(Math.log(0.001) + (Math.log(0.1) - Math.log(0.001)) * ((i * 0.618034) % 1));
        out[i] = dt + Math.log(-Math.expm1(-dt));
      }
      return out;
    default:
      normalFill(out, seed, 0.02);
      return out;
  }
}

/**
 * Uploads seeded random weights for every weight of `spec`; matrices go in
 * `dtype` (f32, f16 or bf16), SSM parameters and norms stay f32.
 *
 * @example
 * ```ts
 * const spec = composeSpec({ ratio: { attention: 1, ssm: 3 }, layers: 8, hiddenSize: 256, vocabSize: 4096 });
 * const model = new HybridModel(rt, spec, randomWeights(rt, spec, { seed: 1, dtype: 'f16' }));
 * ```
 */
export function randomWeights(runtime: Runtime, spec: ModelSpec, options: { seed?: number; dtype?: DType } = {}): Record<string, Tensor> {
  const seed = options.seed ?? 0;
  const out: Record<string, Tensor> = {};
  modelWeights(spec).forEach((w, i) => {
    out[w.name] = runtime.upload(randomWeightValues(w, seed * 100003 + i + 1), w.shape, w.f32 ? 'f32' : (options.dtype ?? 'f32'), w.name);
  });
  return out;
}
