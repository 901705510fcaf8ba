/**
 * The hybrid-ratio benchmark: one model size, six layer mixes (pure Mamba-2,
 * 1 attention : 7 Mamba-2, 1:3, pure attention, pure S4D, 1 attention : 7 S4D)
 * with seeded random weights, decode time per token measured at a few context
 * lengths on this GPU.
 */
import type { Runtime } from '@statespace/core';
import { type HybridComposition, Session, composeModel, patternFromRatio } from '@statespace/hybrid';

/** A layer mix to compare. */
export interface RatioChoice {
  id: string;
  label: string;
  ratio: { attention: number; ssm: number };
  /** The SSM layers, as composeModel's pattern letter: `M` Mamba-2 (default) or `L` S4D. */
  ssm?: 'M' | 'L';
}

/** The mixes the playground offers. */
export const RATIOS: readonly RatioChoice[] = [
  { id: 'mamba2', label: 'pure Mamba-2', ratio: { attention: 0, ssm: 1 } },
  { id: '1:7', label: '1:7 (attention:Mamba-2)', ratio: { attention: 1, ssm: 7 } },
  { id: '1:3', label: '1:3', ratio: { attention: 1, ssm: 3 } },
  { id: 'attention', label: 'pure attention', ratio: { attention: 1, ssm: 0 } },
  { id: 's4d', label: 'pure S4D', ratio: { attention: 0, ssm: 1 }, ssm: 'L' },
  { id: 's4d-1:7', label: '1:7 (attention:S4D)', ratio: { attention: 1, ssm: 7 }, ssm: 'L' },
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

/**
 * The composition of a size and a mix: Mamba-2 with 64-wide heads (expand 2), S4D (S4D-Lin, causal) with the
 * size's state size as d_state, attention with 64-wide heads, no MLP.
 */
export function compositionOf(size: SizeChoice, ratio: RatioChoice): HybridComposition {
  const D = size.hiddenSize;
  return {
    pattern: patternOfChoice(size, ratio),
    hiddenSize: D,
    vocabSize: size.vocabSize,
    mamba2: { numHeads: (2 * D) / 64, headDim: 64, stateSize: size.stateSize },
    s4d: { stateSize: size.stateSize },
    attention: { numHeads: D / 64 },
  };
}

/** The layer pattern a size and a mix give, e.g. `MMMMAMMM` or `LLLLALLL`. */
export function patternOfChoice(size: SizeChoice, ratio: RatioChoice): string {
  return patternFromRatio(ratio.ratio, size.layers, ratio.ssm ?? 'M');
}

/** One measured point. */
export interface BenchPoint {
  /** Tokens in the state when the decode steps ran. */
  context: number;
  /** Median wall time of one decode step (forward of one token + reading its logits). */
  msPerToken: number;
  /** Fastest and slowest timed step: the spread around the median. */
  msMin: number;
  msMax: number;
  /** Decode steps timed for this point. */
  steps: number;
  /** Prefill speed of the chunk that brought the context here. */
  prefillTokensPerSecond: number;
  /** State bytes at this context. */
  stateBytes: { ssm: number; conv: number; kv: number };
}

/** Options of {@link benchmarkDecode}. */
export interface BenchOptions {
  /** Decode steps timed per context length (after one untimed step). Default {@link DEFAULT_STEPS}. */
  steps?: number;
  /** Longest prompt fed in one prefill call (longer contexts are fed in pieces). Default 1024. */
  prefillChunk?: number;
  signal?: AbortSignal;
  onPoint?: (point: BenchPoint) => void;
  seed?: number;
}

/** Decode steps timed per point by default: enough that one slow step does not move the median. */
export const DEFAULT_STEPS = 16;

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
  const steps = Math.max(1, options.steps ?? DEFAULT_STEPS);
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
        msMin: Math.min(...times),
        msMax: Math.max(...times),
        steps: times.length,
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

/** One mix's measured points, as the playground holds them. */
export interface BenchRow {
  label: string;
  pattern: string;
  points: readonly BenchPoint[];
}

/**
 * What the finished benchmark can honestly say. "Attention layers pay for
 * context" is claimed only when every mix with attention got slower from the
 * shortest to the longest context by more than the spread of its steps;
 * otherwise the text says the differences are timing noise.
 *
 * @example
 * ```ts
 * status.textContent = benchVerdict(rows);
 * ```
 */
export function benchVerdict(rows: readonly BenchRow[]): string {
  const spread = 'Each figure is the median of the timed steps; the range under it runs from the fastest to the slowest step.';
  const withAttention = rows.filter((r) => r.pattern.includes('A'));
  if (rows.every((r) => r.points.length === 0)) return 'No points were measured.';
  if (withAttention.length === 0) return `${spread} Lower is faster.`;
  const grows = withAttention.every((r) => {
    if (r.points.length < 2) return false;
    const first = r.points[0];
    const last = r.points[r.points.length - 1];
    const noise = Math.max(first.msMax - first.msMin, last.msMax - last.msMin);
    return last.context > first.context && last.msPerToken - first.msPerToken > noise;
  });
  if (!grows) {
    return `${spread} Here the change with context is within that spread (timing noise), so these figures do not show how the mixes scale: try a larger size, longer contexts or more timed steps.`;
  }
  return `${spread} Lower is faster; attention layers pay for every token of context at each step, Mamba-2 layers do not.`;
}
