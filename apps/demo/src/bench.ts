/**
 * The hybrid-ratio benchmark: one model size, four layer mixes (pure Mamba-2,
 * 1 attention : 7 Mamba-2, 1:3, pure attention) with seeded random weights,
 * decode time per token measured at a few context lengths on this GPU.
 */
import type { Runtime } from '@statespace/core';
import { type HybridComposition, Session, composeModel, patternFromRatio } from '@statespace/hybrid';

/** A layer mix to compare. */
export interface RatioChoice {
  id: string;
  label: string;
  ratio: { attention: number; ssm: number };
}

/** The mixes the playground offers. */
export const RATIOS: readonly RatioChoice[] = [
  { id: 'mamba2', label: 'pure Mamba-2', ratio: { attention: 0, ssm: 1 } },
  { id: '1:7', label: '1:7 (attention:Mamba-2)', ratio: { attention: 1, ssm: 7 } },
  { id: '1:3', label: '1:3', ratio: { attention: 1, ssm: 3 } },
  { id: 'attention', label: 'pure attention', ratio: { attention: 1, ssm: 0 } },
];

/** A model size of the playground. */
export interface SizeChoice {
  id: string;
  label: string;
  hiddenSize: number;
  layers: number;
  vocabSize: number;
  stateSize: number;
}

/** Sizes offered: tiny enough for a software adapter, up to a small LM for a real GPU. */
export const SIZES: readonly SizeChoice[] = [
  { id: 'tiny', label: 'tiny: d=64, 8 layers', hiddenSize: 64, layers: 8, vocabSize: 512, stateSize: 16 },
  { id: 'small', label: 'small: d=256, 8 layers', hiddenSize: 256, layers: 8, vocabSize: 4096, stateSize: 64 },
  { id: 'medium', label: 'medium: d=768, 12 layers', hiddenSize: 768, layers: 12, vocabSize: 16384, stateSize: 128 },
  { id: 'large', label: 'large: d=1536, 24 layers', hiddenSize: 1536, layers: 24, vocabSize: 32768, stateSize: 128 },
];

/** The composition of a size and a mix: Mamba-2 with 64-wide heads (expand 2), attention with 64-wide heads, no MLP. */
export function compositionOf(size: SizeChoice, ratio: RatioChoice): HybridComposition {
  const D = size.hiddenSize;
  return {
    ratio: ratio.ratio,
    layers: size.layers,
    hiddenSize: D,
    vocabSize: size.vocabSize,
    mamba2: { numHeads: (2 * D) / 64, headDim: 64, stateSize: size.stateSize },
    attention: { numHeads: D / 64 },
  };
}

/** The layer pattern a size and a mix give, e.g. `MMMMAMMM`. */
export function patternOfChoice(size: SizeChoice, ratio: RatioChoice): string {
  return patternFromRatio(ratio.ratio, size.layers);
}

/** One measured point. */
export interface BenchPoint {
  /** Tokens in the state when the decode steps ran. */
  context: number;
  /** Median wall time of one decode step (forward of one token + reading its logits). */
  msPerToken: number;
  /** Prefill speed of the chunk that brought the context here. */
  prefillTokensPerSecond: number;
  /** State bytes at this context. */
  stateBytes: { ssm: number; conv: number; kv: number };
}

/** Options of {@link benchmarkDecode}. */
export interface BenchOptions {
  /** Decode steps timed per context length (after one untimed step). Default 8. */
  steps?: number;
  /** Longest prompt fed in one prefill call (longer contexts are fed in pieces). Default 1024. */
  prefillChunk?: number;
  signal?: AbortSignal;
  onPoint?: (point: BenchPoint) => void;
  seed?: number;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function randomIds(count: number, vocab: number, seed: number): number[] {
  let a = seed >>> 0;
  return Array.from({ length: count }, () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a % vocab;
  });
}

/**
 * Builds the model, grows its context through `contexts` (ascending) and
 * times decode steps at each; frees the model at the end.
 *
 * @example
 * ```ts
 * const points = await benchmarkDecode(runtime, compositionOf(SIZES[0], RATIOS[1]), [64, 256]);
 * ```
 */
export async function benchmarkDecode(runtime: Runtime, composition: HybridComposition, contexts: readonly number[], options: BenchOptions = {}): Promise<BenchPoint[]> {
  const steps = Math.max(1, options.steps ?? 8);
  const chunk = Math.max(1, options.prefillChunk ?? 1024);
  const V = composition.vocabSize;
  const model = composeModel(runtime, composition, { seed: options.seed ?? 1 });
  const session = new Session(model);
  const points: BenchPoint[] = [];
  try {
    // Compile every pipeline once (prefill and decode shapes) before timing anything.
    await session.prefill(randomIds(3, V, 7));
    await session.step(1);
    session.reset();
    let seed = 11;
    for (const target of [...contexts].sort((a, b) => a - b)) {
      if (options.signal?.aborted) break;
      const need = target - steps - 1 - session.length;
      const t0 = performance.now();
      let fed = 0;
      while (fed < need) {
        const n = Math.min(chunk, need - fed);
        await session.prefill(randomIds(n, V, seed++));
        fed += n;
      }
      const prefillMs = performance.now() - t0;
      if (session.length === 0) await session.prefill([0]);
      await session.step(2); // untimed: the first decode after a prefill may set things up
      const times: number[] = [];
      for (let i = 0; i < steps; i++) {
        if (options.signal?.aborted) break;
        const t = performance.now();
        await session.step((i * 31 + 5) % V);
        times.push(performance.now() - t);
      }
      if (times.length === 0) break;
      const memory = session.memory();
      const point: BenchPoint = {
        context: session.length,
        msPerToken: median(times),
        prefillTokensPerSecond: fed > 0 ? fed / (prefillMs / 1000) : NaN,
        stateBytes: { ssm: memory.ssm, conv: memory.conv, kv: memory.kv },
      };
      points.push(point);
      options.onPoint?.(point);
    }
    return points;
  } finally {
    session.dispose();
    model.dispose();
  }
}
