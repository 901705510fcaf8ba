/**
 * Composing custom hybrids: a model from a layer pattern (`MMMAMMMM`, or
 * Nemotron-H's `M-*M` notation) or from a ratio plus a placement rule, at any
 * size, with seeded random weights or weights you supply. The benchmarks and the
 * demo compare 0:1, 1:7, 1:3, 1:1 and pure attention at the same size this way.
 */
import { type DType, type Runtime, StatespaceError } from '@statespace/core';
import { type Mamba3Config, mamba3InitWeights } from '@statespace/mamba3';
import { type S4DInit, s4dInitWeights } from '@statespace/s4d';
import { HybridModel } from './model.js';
import type { BlockSpec, MixerSpec, ModelSpec } from './spec.js';
import { randomWeights } from './weights.js';

/** Sizes and settings of a composed hybrid. */
export interface HybridComposition {
  /**
   * One character per layer: `M` Mamba-2, `m` Mamba-1, `A` or `*` attention,
   * `S` sliding-window attention (window `attention.slidingWindow`), `D` Gated DeltaNet,
   * `L` S4D (the linear time-invariant diagonal SSM, settings in `s4d`), `3` Mamba-3 (settings in `mamba3`), `-` MLP only. Every layer except `-` also gets the MLP when `mlp` is set. Give either
   * `pattern` or `ratio`.
   *
   * @example
   * ```ts
   * // Samba-like: Mamba, sliding-window attention, each followed by an MLP
   * composeSpec({ pattern: 'mSmS', hiddenSize: 256, vocabSize: 1000, attention: { numHeads: 4, slidingWindow: 128 }, mlp: { intermediateSize: 512 } });
   * ```
   */
  pattern?: string;
  /**
   * Per-layer sliding windows of attention layers, by layer index (0-based): a number gives that
   * layer a window, null makes it full attention. Overrides `attention.slidingWindow`; an index
   * that is not an attention layer is refused.
   *
   * @example
   * ```ts
   * { pattern: 'MAMAMA', slidingWindows: { 1: 256, 3: 1024 } } // layer 5 stays full attention
   * ```
   */
  slidingWindows?: Record<number, number | null>;
  /** attention : SSM layers, e.g. `{ attention: 1, ssm: 7 }`, repeated to fill `layers`. */
  ratio?: { attention: number; ssm: number };
  /** Number of layers when composing from a ratio. */
  layers?: number;
  /** Which SSM a ratio uses: 'mamba2' (default) or 'mamba1'. */
  ssm?: 'mamba2' | 'mamba1';
  /** Width of the residual stream. */
  hiddenSize: number;
  /** Rows of the embedding table and the LM head. */
  vocabSize: number;
  /** Mamba-2 layers (default: 2·hidden/64 heads of 64, state 128, 1 group, chunk 256, conv 4). */
  mamba2?: { numHeads: number; headDim: number; stateSize: number; nGroups?: number; chunkSize?: number; convKernel?: number };
  /** Mamba-1 layers (default: state 16, expand 2, conv 4). */
  mamba1?: { stateSize: number; expand?: number; convKernel?: number };
  /**
   * Attention layers (default: hidden/64 heads, as many KV heads, head dim hidden/heads, RoPE theta 10000).
   * `slidingWindow` is the window of `S` layers (tokens a query sees, itself included); a layer with a
   * window keeps a ring KV cache of about 2·window tokens that never grows (`boundedCache: false`
   * keeps a growing one instead); `kvPageSize` is the KV cache's page size (default 256).
   */
  attention?: { numHeads: number; numKeyValueHeads?: number; headDim?: number; ropeTheta?: number; slidingWindow?: number; boundedCache?: boolean; kvPageSize?: number };
  /** Gated DeltaNet layers (default: hidden/128 key heads, hidden/64 value heads, head dims 128). */
  deltanet?: { numKeyHeads: number; numValueHeads: number; headKDim: number; headVDim: number };
  /**
   * S4D layers (`L`; default: d_state 64, S4D-Lin, dt in [0.001, 0.1], causal). `bidirectional` layers read the
   * whole sequence at once: such a model prefills but refuses to decode (`S4D_BIDIRECTIONAL`).
   *
   * @example
   * ```ts
   * composeModel(rt, { pattern: 'LALL', hiddenSize: 256, vocabSize: 1000, s4d: { stateSize: 64, init: 'inv' }, mlp: { intermediateSize: 512 } });
   * ```
   */
  s4d?: { stateSize: number; init?: 'lin' | 'inv'; dtMin?: number; dtMax?: number; bidirectional?: boolean };
  /**
   * Mamba-3 layers (`3`; default: 2·hidden/64 heads of 64, d_state 128, 1 group, rope_fraction 0.5, A_floor 1e-4,
   * SISO, no output norm). `mimoRank` makes them MIMO of that rank.
   *
   * @example
   * ```ts
   * composeModel(rt, { pattern: '33A3', hiddenSize: 256, vocabSize: 1000, mamba3: { numHeads: 8, headDim: 64, stateSize: 64, mimoRank: 4 } });
   * ```
   */
  mamba3?: { numHeads: number; headDim: number; stateSize: number; nGroups?: number; ropeFraction?: 0.5 | 1; aFloor?: number; mimoRank?: number; outProjNorm?: boolean };
  /** A SwiGLU MLP after each mixer. */
  mlp?: { intermediateSize: number };
  /** The LM head is the embedding table (default true). */
  tieWordEmbeddings?: boolean;
  /** RMSNorm epsilon (default 1e-5). */
  normEps?: number;
}

/**
 * The layer pattern for a ratio: in every period of attention + ssm layers the
 * attention layers are spread evenly and never first (Jamba's ablations put
 * attention mid-period; a leading attention layer hurts).
 *
 * @example
 * ```ts
 * patternFromRatio({ attention: 1, ssm: 7 }, 8); // 'MMMMAMMM'
 * patternFromRatio({ attention: 1, ssm: 3 }, 8); // 'MMAMMMAM'
 * ```
 */
export function patternFromRatio(ratio: { attention: number; ssm: number }, layers: number, ssmChar = 'M'): string {
  const { attention: a, ssm: s } = ratio;
  if (!Number.isInteger(a) || !Number.isInteger(s) || a < 0 || s < 0 || a + s === 0) {
    throw new StatespaceError('INVALID_ARGUMENT', `patternFromRatio: ratio ${a}:${s} must be two non-negative integers, not both zero`);
  }
  const period = a + s;
  const inPeriod = Array.from({ length: period }, () => ssmChar);
  if (s === 0) inPeriod.fill('A');
  else for (let k = 0; k < a; k++) inPeriod[Math.floor(((k + 1) * period) / (a + 1))] = 'A';
  let out = '';
  while (out.length < layers) out += inPeriod.join('');
  return out.slice(0, layers);
}

/**
 * The {@link ModelSpec} of a composition (tensor names `layers.{i}.mixer.*`, `embed.weight`, ...).
 *
 * @throws StatespaceError `INVALID_ARGUMENT` without a pattern or ratio, or for an unknown pattern character.
 * @example
 * ```ts
 * const spec = composeSpec({ pattern: 'M-M*-', hiddenSize: 256, vocabSize: 4096, mlp: { intermediateSize: 512 } });
 * const model = new HybridModel(rt, spec, myWeights); // or composeModel(...) for random weights
 * ```
 */
export function composeSpec(c: HybridComposition): ModelSpec {
  const pattern = c.pattern ?? (c.ratio ? patternFromRatio(c.ratio, c.layers ?? c.ratio.attention + c.ratio.ssm, c.ssm === 'mamba1' ? 'm' : 'M') : undefined);
  if (!pattern) throw new StatespaceError('INVALID_ARGUMENT', 'composeSpec: give a pattern or a ratio');
  const D = c.hiddenSize;
  const eps = c.normEps ?? 1e-5;
  for (const key of Object.keys(c.slidingWindows ?? {})) {
    const ch = pattern[Number(key)];
    if (ch !== 'A' && ch !== '*' && ch !== 'S') {
      throw new StatespaceError('INVALID_ARGUMENT', `composeSpec: slidingWindows names layer ${key}, which is ${ch === undefined ? 'not in the pattern' : `'${ch}', not attention`}`);
    }
  }
  const blocks: BlockSpec[] = [...pattern].map((ch, i) => {
    const p = `layers.${i}.`;
    let mixer: MixerSpec | undefined;
    if (ch === 'M') {
      const m = c.mamba2 ?? { numHeads: (2 * D) / 64, headDim: 64, stateSize: 128 };
      mixer = {
        kind: 'mamba2',
        prefix: `${p}mixer.`,
        config: { hiddenSize: D, numHeads: m.numHeads, headDim: m.headDim, stateSize: m.stateSize, nGroups: m.nGroups ?? 1, convKernel: m.convKernel ?? 4, chunkSize: m.chunkSize ?? 256, useConvBias: true, useBias: false, timeStepLimit: [0, Infinity], normEps: eps },
      };
    } else if (ch === 'm') {
      const m = c.mamba1 ?? { stateSize: 16 };
      mixer = {
        kind: 'mamba1',
        prefix: `${p}mixer.`,
        config: { hiddenSize: D, intermediateSize: (m.expand ?? 2) * D, stateSize: m.stateSize, convKernel: m.convKernel ?? 4, timeStepRank: Math.ceil(D / 16), useBias: false, useConvBias: true, bcdtNorm: 'none', normEps: eps },
      };
    } else if (ch === 'A' || ch === '*' || ch === 'S') {
      const a = c.attention ?? { numHeads: D / 64 };
      const headDim = a.headDim ?? D / a.numHeads;
      if (ch === 'S' && !(Number.isInteger(a.slidingWindow) && a.slidingWindow! > 0) && !(i in (c.slidingWindows ?? {}))) {
        throw new StatespaceError('INVALID_ARGUMENT', `composeSpec: layer ${i} is 'S' (sliding-window attention); set attention.slidingWindow to a positive integer, got ${a.slidingWindow}`);
      }
      const window = c.slidingWindows && i in c.slidingWindows ? c.slidingWindows[i] : ch === 'S' ? a.slidingWindow : null;
      if (window != null && !(Number.isInteger(window) && window > 0)) {
        throw new StatespaceError('INVALID_ARGUMENT', `composeSpec: the sliding window of layer ${i} must be a positive integer or null, got ${window}`);
      }
      mixer = {
        kind: 'attention',
        prefix: `${p}mixer.`,
        config: {
          hiddenSize: D,
          numHeads: a.numHeads,
          numKeyValueHeads: a.numKeyValueHeads ?? a.numHeads,
          headDim,
          rope: { theta: a.ropeTheta ?? 10000, rotaryDim: headDim },
          ...(window != null ? { slidingWindow: window } : {}),
          ...(a.boundedCache === false ? { boundedCache: false } : {}),
          ...(a.kvPageSize ? { cache: { pageSize: a.kvPageSize } } : {}),
        },
      };
    } else if (ch === 'D') {
      const d = c.deltanet ?? { numKeyHeads: D / 128, numValueHeads: D / 64, headKDim: 128, headVDim: 128 };
      mixer = { kind: 'gated_deltanet', prefix: `${p}mixer.`, config: { hiddenSize: D, ...d, convKernel: 4, normEps: eps } };
    } else if (ch === 'L') {
      const s = c.s4d ?? { stateSize: 64 };
      mixer = {
        kind: 's4d',
        prefix: `${p}mixer.`,
        config: { hiddenSize: D, stateSize: s.stateSize, init: s.init ?? 'lin', dtMin: s.dtMin ?? 0.001, dtMax: s.dtMax ?? 0.1, bidirectional: s.bidirectional ?? false },
      };
    } else if (ch === '3') {
      const m = c.mamba3 ?? { numHeads: (2 * D) / 64, headDim: 64, stateSize: 128 };
      const config: Mamba3Config = {
        hiddenSize: D,
        numHeads: m.numHeads,
        headDim: m.headDim,
        stateSize: m.stateSize,
        nGroups: m.nGroups ?? 1,
        ropeFraction: m.ropeFraction ?? 0.5,
        aFloor: m.aFloor ?? 1e-4,
        mimo: m.mimoRank !== undefined,
        ...(m.mimoRank !== undefined ? { mimoRank: m.mimoRank } : {}),
        outProjNorm: m.outProjNorm ?? false,
        normEps: 1e-5,
      };
      mixer = { kind: 'mamba3', prefix: `${p}mixer.`, config: { ...config } };
    } else if (ch !== '-') {
      throw new StatespaceError('INVALID_ARGUMENT', `composeSpec: layer ${i} is '${ch}'; use M, m, 3, A, *, S, D, L or -`);
    }
    const mlp = c.mlp;
    return {
      label: ch,
      mixers: mixer ? [mixer] : [],
      mixerNorm: mixer ? { kind: 'rms', weight: `${p}norm.weight`, eps } : undefined,
      ...(mlp || ch === '-'
        ? {
            channelNorm: { kind: 'rms' as const, weight: `${p}mlp_norm.weight`, eps },
            channel: { kind: 'glu' as const, prefix: `${p}mlp.`, names: { gate: 'gate_proj.weight', up: 'up_proj.weight', down: 'down_proj.weight' }, intermediate: mlp?.intermediateSize ?? 4 * D },
          }
        : {}),
    };
  });
  return {
    architecture: 'ComposedHybrid',
    vocabSize: c.vocabSize,
    hiddenSize: D,
    embedding: 'embed.weight',
    blocks,
    finalNorm: { kind: 'rms', weight: 'norm_f.weight', eps },
    lmHead: c.tieWordEmbeddings === false ? 'lm_head.weight' : 'embed.weight',
  };
}

/**
 * Builds a composed hybrid with seeded random weights.
 *
 * @example
 * ```ts
 * const model = composeModel(rt, { ratio: { attention: 1, ssm: 7 }, layers: 8, hiddenSize: 256, vocabSize: 1000 }, { seed: 1 });
 * console.log(patternOf(model.spec)); // 'MMMMAMMM'
 * ```
 */
export function composeModel(runtime: Runtime, composition: HybridComposition, options: { seed?: number; dtype?: DType } = {}): HybridModel {
  const spec = composeSpec(composition);
  const weights = randomWeights(runtime, spec, options);
  // S4D layers start from S4D-Lin / S4D-Inv and log-uniform dt, Mamba-3 layers from mamba3.py's init
  // (randomWeights' generic init knows nothing of them)
  spec.blocks.forEach((block, i) => {
    for (const m of block.mixers) {
      if (m.kind !== 's4d' && m.kind !== 'mamba3') continue;
      const seed = (options.seed ?? 0) * 1009 + i + 1;
      const init = m.kind === 's4d' ? s4dInitWeights(m.config as unknown as S4DInit, seed) : mamba3InitWeights(m.config as unknown as Mamba3Config, seed);
      for (const [name, values] of Object.entries(init)) {
        const old = weights[m.prefix + name];
        weights[m.prefix + name] = runtime.upload(values, old.shape, old.dtype, m.prefix + name);
        old.dispose();
      }
    }
  });
  const model = new HybridModel(runtime, spec, weights);
  model.fingerprint = `random:${options.seed ?? 0}:${options.dtype ?? 'f32'}`;
  return model;
}
