/**
 * The contract between kernel packages (scan-wgsl, ssd, attention, ...) and the
 * model assembly in @statespace/hybrid: a sequence mixer owns its weights and
 * turns (batch, seqlen, d_model) activations into the same shape, carrying a
 * state between calls (an SSM's fixed-size state, an attention layer's KV cache).
 */
import { type DType, isFloatWeightDType } from './dtype.js';
import { StatespaceError } from './errors.js';
import type { Tensor } from './tensor.js';
import type { PendingNorm } from './ops/norm-gemv.js';

/** Bytes a state holds on the GPU, by kind (so fixed SSM state vs growing KV cache is visible). */
export interface StateMemory {
  /** SSM (recurrent) states: fixed size whatever the context length. */
  ssm: number;
  /** Conv states (the last k−1 inputs of each causal conv): fixed size. */
  conv: number;
  /** KV caches: grow with the context. */
  kv: number;
}

/** Per-layer state carried between forward calls. Two states never share GPU buffers. */
export interface MixerState {
  /** Number of independent sequences. */
  readonly batch: number;
  /** Tokens consumed so far (the same for every sequence of the batch). */
  readonly length: number;
  /** GPU bytes held now. */
  memory(): StateMemory;
  /** A deep, independent copy (recorded on the runtime; no host round trip). */
  clone(): MixerState;
  /** Back to the empty state (length 0). */
  reset(): void;
  /** Serialises the state (and its length) to bytes. */
  save(): Promise<Uint8Array>;
  /** Restores what {@link save} wrote for a state of the same layer configuration and batch. */
  load(bytes: Uint8Array): void;
  /** Frees the state's GPU buffers. */
  dispose(): void;
  /**
   * What decides which commands the next one-token forward records (kernels, buffers,
   * workgroup counts): two steps with the same signature differ only in integer positions
   * that move by a fixed step per token, so a captured decode plan can be replayed.
   * '' when every step is alike (an SSM state). Without it a state is never replayed.
   */
  decodeSignature?(): string;
  /** A replayed decode plan consumed `tokens` tokens on the GPU: update the host-side bookkeeping. */
  advanceReplayed?(tokens: number): void;
  /** Forgets the tokens after the first `length` (KV caches); recurrent states cannot and leave it out. */
  truncate?(length: number): void;
  /**
   * True when the state overwrites old tokens (a sliding-window ring KV cache): {@link truncate}
   * cannot go back past them, so a checkpoint copies such a state instead of marking its length.
   */
  readonly overwrites?: boolean;
}

/** Name, shape and (optional) dtype of a weight a layer expects, relative to the layer's prefix. */
export interface WeightSpec {
  /** Name relative to the layer's prefix, e.g. `in_proj.weight`. */
  name: string;
  /** Shape in the checkpoint's (HF) layout. */
  shape: number[];
  /** Kept only when the layer needs this exact dtype (e.g. f32 for A_log). */
  dtype?: 'f32';
}

/** Weights handed to a layer, keyed by names relative to the layer's prefix (e.g. `in_proj.weight`). */
export type LayerWeights = Readonly<Record<string, Tensor>>;

/**
 * Checks a layer's weights against its specs: each present (MISSING_WEIGHT), of the spec's shape
 * (SHAPE_MISMATCH), and of the spec's dtype where it names one, else of a dtype `accepts` takes
 * (DTYPE_MISMATCH; default: a float weight type, q8 included).
 *
 * @example
 * ```ts
 * checkLayerWeights('S4DMixer', S4DMixer.expectedWeights(config), weights, (d) => d === 'f32' || d === 'f16' || d === 'bf16');
 * ```
 */
export function checkLayerWeights(op: string, specs: readonly WeightSpec[], weights: LayerWeights, accepts: (dtype: DType) => boolean = isFloatWeightDType): void {
  for (const spec of specs) {
    const w = weights[spec.name];
    if (!w) throw new StatespaceError('MISSING_WEIGHT', `${op}: weight ${spec.name} [${spec.shape.join(',')}] is missing`);
    if (w.shape.length !== spec.shape.length || w.shape.some((d, i) => d !== spec.shape[i])) {
      throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${spec.name} has shape [${w.shape.join(',')}], expected [${spec.shape.join(',')}]`);
    }
    if (spec.dtype ? w.dtype !== spec.dtype : !accepts(w.dtype)) {
      throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${spec.name} is ${w.dtype}, expected ${spec.dtype ?? 'a float weight type'}`);
    }
  }
}

/**
 * A sequence mixer: Mamba-1, Mamba-2 (SSD), attention, Gated DeltaNet, ...
 *
 * @example
 * ```ts
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state);      // prefill: x (1, 37, d_model)
 * const y1 = mixer.forward(x1, state);    // decode: x1 (1, 1, d_model), continues from the prompt
 * ```
 */
export interface SequenceMixer<S extends MixerState = MixerState> {
  /** The mixer's kind, e.g. `mamba2` or `attention`. */
  readonly kind: string;
  /** A zeroed state for `batch` sequences. */
  createState(batch: number): S;
  /**
   * Runs the mixer on x (batch, seqlen, d_model) starting from `state` and
   * leaves the final state in `state`. seqlen 1 takes the decode path.
   * Returns a new tensor (batch, seqlen, d_model); x is not modified.
   */
  forward(x: Tensor, state: S): Tensor;
  /**
   * True when {@link forward} also takes a {@link PendingNorm} (the block's residual add +
   * RMSNorm, not run yet) for one-token steps, fusing the norm into its input projections.
   */
  readonly fusesInputNorm?: boolean;
  /** Frees what the mixer allocated itself (packed weights); the model calls it when disposed. */
  dispose?(): void;
}

/**
 * Writes a length and tensors' bytes in order (helper for {@link MixerState.save}).
 *
 * @example
 * ```ts
 * const bytes = packState(state.length, [(await rt.readFloat(conv)).buffer, (await rt.readFloat(ssm)).buffer]);
 * ```
 */
export function packState(length: number, parts: readonly ArrayBuffer[]): Uint8Array {
  const total = 8 + parts.reduce((s, p) => s + 8 + p.byteLength, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setFloat64(0, length, true);
  let o = 8;
  for (const p of parts) {
    view.setFloat64(o, p.byteLength, true);
    out.set(new Uint8Array(p), o + 8);
    o += 8 + p.byteLength;
  }
  return out;
}

/**
 * Reads what {@link packState} wrote.
 *
 * @example
 * ```ts
 * const { length, parts } = unpackState(bytes); // parts[i]: the bytes of the i-th tensor
 * ```
 */
export function unpackState(bytes: Uint8Array): { length: number; parts: Uint8Array[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getFloat64(0, true);
  const parts: Uint8Array[] = [];
  let o = 8;
  while (o < bytes.byteLength) {
    const n = view.getFloat64(o, true);
    parts.push(bytes.subarray(o + 8, o + 8 + n));
    o += 8 + n;
  }
  return { length, parts };
}

/**
 * Checks a mixer's input: x (batch, seqlen, hidden) f32, and a state of the same batch; throws
 * SHAPE_MISMATCH or DTYPE_MISMATCH naming `op`. Returns [batch, seqlen].
 *
 * @example
 * ```ts
 * const [B, L] = checkMixerInput('S4DMixer.forward', x, 768, state.batch);
 * ```
 */
export function checkMixerInput(op: string, x: Tensor, hidden: number, stateBatch: number): [number, number] {
  if (x.shape.length !== 3 || x.shape[2] !== hidden) throw new StatespaceError('SHAPE_MISMATCH', `${op}: x has shape [${x.shape.join(',')}], expected [batch, seqlen, hidden=${hidden}]`);
  if (x.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: x must be f32, got ${x.dtype}`);
  const [B, L] = x.shape;
  if (stateBatch !== B) throw new StatespaceError('SHAPE_MISMATCH', `${op}: state holds batch ${stateBatch}, x has batch ${B}`);
  return [B, L];
}
