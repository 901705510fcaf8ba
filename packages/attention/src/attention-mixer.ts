/**
 * The attention sequence mixer: transformers 5.17 LlamaAttention
 * (q/k/v projections, apply_rotary_pos_emb, repeat_kv, eager_attention_forward,
 * o_proj) with the switches the hybrid families need: no RoPE (Jamba,
 * Nemotron-H), partial rotary, scaled RoPE, Qwen3-style q_norm / k_norm,
 * Qwen3-Next's output gate, Granite's attention_multiplier, Falcon-H1's
 * key_multiplier, Zamba2's wider input and custom scale, sliding window and
 * logit soft-cap.
 *
 * Shape glossary:
 *   B  batch     L  tokens in this call     E  input features (hidden_size, or Zamba2's 2·hidden)
 *   H  query heads     Hkv  key/value heads     D  head_dim     N  hidden_size (output)
 */
import {
  type LayerWeights,
  type Runtime,
  type SequenceMixer,
  type Tensor,
  type TensorLike,
  type WeightSpec,
  StatespaceError,
  TensorView,
  assertArg,
  matmul,
  matmulReference,
  linear,
  PendingNorm,
  canNormGemv,
  normGemv,
  stackedMatmul,
} from '@statespace/core';
import { type FlashDecodingPartials, GQA_MAX_SLOTS, createDecodeCombineKernel, fitsFreshDecode } from './flash-decoding.js';
import { canDecodeQkv } from './decode-qkv.js';
import { MAX_HEAD_DIM, attentionReference } from './flash-attention.js';
import { type KVCacheOptions, KVCacheState } from './kv-cache.js';
import { type RopeConfig, applyRope, ropeIsDynamic, ropeReference, ropeTable } from './rope.js';
import { sigmoidGate } from './sigmoid-gate.js';

/**
 * Most flash-decoding partial slots whose combine runs in o_proj's prologue (16, the most a split GQA
 * pass 1 makes): every o_proj workgroup recombines all H·D outputs, so beyond 16 slots (4k tokens of
 * 256-key chunks) a combine dispatch is cheaper. Measured on the H200 (bench/NOTES.md 6t): 16 slots in
 * the prologue beat a combine dispatch + o_proj at 3k tokens.
 */
export const FUSED_COMBINE_CHUNKS = GQA_MAX_SLOTS;

/** Configuration of an {@link AttentionMixer}. */
export interface AttentionMixerConfig {
  /** Output features of o_proj (the model's hidden_size). */
  hiddenSize: number;
  /** Input features of q/k/v_proj (default hiddenSize; Zamba2's shared block takes 2·hidden_size). */
  inputSize?: number;
  numHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  /** RoPE settings, or null for no positional rotation (Jamba, Nemotron-H). */
  rope: RopeConfig | null;
  /** Multiplies q·k (default headDim^-0.5). */
  scale?: number;
  /** Granite's attention_multiplier: replaces the scale. */
  attentionMultiplier?: number;
  /** Falcon-H1's key_multiplier: keys are multiplied by it (folded into the scale). */
  keyMultiplier?: number;
  /** Sliding window (tokens a query sees, itself included); absent, null or 0 for full causal attention. */
  slidingWindow?: number | null;
  /** Logit soft-cap (Gemma-2); absent, null or 0 for none. */
  softcap?: number | null;
  /** q/k/v_proj have biases. */
  qkvBias?: boolean;
  /** o_proj has a bias. */
  oBias?: boolean;
  /** Per-head RMSNorm of q and k before RoPE (Qwen3: q_norm.weight, k_norm.weight); unitOffset scales by (1 + w) (Qwen3-Next). */
  qkNorm?: { eps: number; unitOffset?: boolean } | null;
  /** Qwen3-Next: q_proj emits [query | gate] per head and the output is multiplied by sigmoid(gate). */
  outputGate?: boolean;
  /** Page sizes of the KV cache. */
  cache?: KVCacheOptions;
  /**
   * With a sliding window, keep only the window in a ring KV cache (default true: memory bounded
   * by ~2·slidingWindow tokens). false keeps every token in a growing cache (the same outputs).
   */
  boundedCache?: boolean;
}

interface ResolvedConfig {
  E: number;
  N: number;
  H: number;
  Hkv: number;
  D: number;
  scale: number;
  window: number;
  softcap: number;
}

function resolve(config: AttentionMixerConfig): ResolvedConfig {
  const op = 'AttentionMixer';
  const { hiddenSize, numHeads, numKeyValueHeads, headDim } = config;
  for (const [k, v] of Object.entries({ hiddenSize, numHeads, numKeyValueHeads, headDim, inputSize: config.inputSize ?? hiddenSize })) {
    assertArg(Number.isInteger(v) && v > 0, op, `${k} must be a positive integer, got ${v}`);
  }
  assertArg(numHeads % numKeyValueHeads === 0, op, `numHeads ${numHeads} must be a multiple of numKeyValueHeads ${numKeyValueHeads}`);
  assertArg(headDim <= MAX_HEAD_DIM, op, `headDim ${headDim} exceeds ${MAX_HEAD_DIM}`);
  if (config.rope) {
    const R = config.rope.rotaryDim;
    assertArg(Number.isInteger(R) && R > 0 && R % 2 === 0 && R <= headDim, op, `rope.rotaryDim ${R} must be even and in 2..headDim=${headDim}`);
  }
  const window = config.slidingWindow ?? 0;
  assertArg(Number.isInteger(window) && window >= 0, op, `slidingWindow must be a non-negative integer, got ${window}`);
  const base = config.attentionMultiplier ?? config.scale ?? 1 / Math.sqrt(headDim);
  return {
    E: config.inputSize ?? hiddenSize,
    N: hiddenSize,
    H: numHeads,
    Hkv: numKeyValueHeads,
    D: headDim,
    scale: base * (config.keyMultiplier ?? 1),
    window,
    softcap: config.softcap ?? 0,
  };
}

function reshaped(t: TensorLike, shape: number[]): TensorLike {
  return t instanceof TensorView ? t.base.reshape(shape) : t.reshape(shape);
}

/** The positions' cos/sin tables, shared by every layer with the same RoPE on one runtime. */
// Tables only grow; an outgrown table is kept (not disposed) because a captured decode plan of another
// session may still bind it. Doubling keeps all tables of a config under twice the largest.
const ropeTables = new WeakMap<Runtime, Map<string, { table: Tensor; rows: number; retired: Tensor[] }>>();
const TABLE_GRANULE = 256;

/**
 * Attention as a {@link SequenceMixer}: forward(x (B, L, E), cache) → (B, L, N),
 * appending L tokens to the cache (positions continue from cache.length).
 *
 * @example
 * ```ts
 * const attn = new AttentionMixer(rt, {
 *   hiddenSize: 64, numHeads: 4, numKeyValueHeads: 4, headDim: 16, rope: { theta: 10000, rotaryDim: 16 },
 * }, weights); // weights: q_proj.weight, k_proj.weight, v_proj.weight, o_proj.weight
 * const cache = attn.createState(1);
 * const y = attn.forward(prompt, cache);   // (1, L, 64)
 * const y1 = attn.forward(next, cache);    // (1, 1, 64), flash-decoding over the cache
 * ```
 */
export class AttentionMixer implements SequenceMixer<KVCacheState> {
  readonly kind = 'attention';
  readonly fusesInputNorm = true;
  readonly config: AttentionMixerConfig;
  private readonly runtime: Runtime;
  private readonly weights: LayerWeights;
  private readonly dims: ResolvedConfig;

  constructor(runtime: Runtime, config: AttentionMixerConfig, weights: LayerWeights) {
    this.runtime = runtime;
    this.config = config;
    this.dims = resolve(config);
    for (const spec of AttentionMixer.expectedWeights(config)) {
      const w = weights[spec.name];
      if (!w) throw new StatespaceError('MISSING_WEIGHT', `AttentionMixer: weight '${spec.name}' [${spec.shape.join(',')}] is missing`);
      if (w.shape.join(',') !== spec.shape.join(',')) {
        throw new StatespaceError('SHAPE_MISMATCH', `AttentionMixer: ${spec.name} has shape [${w.shape.join(',')}], expected [${spec.shape.join(',')}]`);
      }
      if (spec.dtype && w.dtype !== spec.dtype) throw new StatespaceError('DTYPE_MISMATCH', `AttentionMixer: ${spec.name} must be ${spec.dtype}, got ${w.dtype}`);
    }
    this.weights = weights;
  }

  /**
   * The weights the layer reads, named as in transformers relative to the
   * layer (`model.layers.0.self_attn.` + name).
   */
  static expectedWeights(config: AttentionMixerConfig): WeightSpec[] {
    const { E, N, H, Hkv, D } = resolve(config);
    const qOut = H * D * (config.outputGate ? 2 : 1);
    const specs: WeightSpec[] = [
      { name: 'q_proj.weight', shape: [qOut, E] },
      { name: 'k_proj.weight', shape: [Hkv * D, E] },
      { name: 'v_proj.weight', shape: [Hkv * D, E] },
      { name: 'o_proj.weight', shape: [N, H * D] },
    ];
    if (config.qkvBias) {
      specs.push({ name: 'q_proj.bias', shape: [qOut], dtype: 'f32' }, { name: 'k_proj.bias', shape: [Hkv * D], dtype: 'f32' }, { name: 'v_proj.bias', shape: [Hkv * D], dtype: 'f32' });
    }
    if (config.oBias) specs.push({ name: 'o_proj.bias', shape: [N], dtype: 'f32' });
    if (config.qkNorm) specs.push({ name: 'q_norm.weight', shape: [D] }, { name: 'k_norm.weight', shape: [D] });
    return specs;
  }

  /**
   * An empty KV cache for `batch` sequences: with a sliding window, a ring bounded by the window
   * (about 2·slidingWindow tokens, never growing); otherwise a growing paged cache.
   */
  createState(batch: number): KVCacheState {
    const ring = this.dims.window > 0 && this.config.boundedCache !== false;
    const cache = { ...this.config.cache, window: ring ? this.dims.window : 0 };
    return new KVCacheState(this.runtime, { batch, numKeyValueHeads: this.dims.Hkv, headDim: this.dims.D }, cache);
  }

  forward(x: Tensor | PendingNorm, state: KVCacheState): Tensor {
    const { E } = this.dims;
    if (x.shape.length !== 3 || x.shape[0] !== state.batch || x.shape[2] !== E) {
      throw new StatespaceError('SHAPE_MISMATCH', `AttentionMixer: x has shape [${x.shape.join(',')}], expected [batch=${state.batch}, seqlen, features=${E}]`);
    }
    const w = this.weights;
    const rt = this.runtime;
    const fast = this.decodeStacked(x, state);
    if (fast) return fast;
    // Prefill: q, k and v in one tiled dispatch where it runs (GPUs, more than decode rows; no biases)
    const stacked = x instanceof PendingNorm || w['q_proj.bias'] || w['k_proj.bias'] || w['v_proj.bias'] ? null : stackedMatmul(rt, x, [w['q_proj.weight'], w['k_proj.weight'], w['v_proj.weight']]);
    const [q, k, v] = stacked ?? [
      linear(rt, x, w['q_proj.weight'], { bias: w['q_proj.bias'] }),
      linear(rt, x, w['k_proj.weight'], { bias: w['k_proj.bias'] }),
      linear(rt, x, w['v_proj.weight'], { bias: w['v_proj.bias'] }),
    ];
    const o = this.attend(q, k, v, state);
    q.dispose();
    k.dispose();
    v.dispose();
    const y = matmul(rt, o, w['o_proj.weight'], { bias: w['o_proj.bias'] });
    o.dispose();
    return y;
  }

  /**
   * A decode token with the fast kernels: norm + q, k, v projections in one stacked dispatch, rope and
   * the cache write in one more, flash decoding's pass 1, then its pass 2 inside o_proj's prologue (up to
   * {@link FUSED_COMBINE_CHUNKS} partial slots; a combine dispatch and o_proj beyond): the layer's output (B, 1, E);
   * null where that does not apply (prefill, no pending norm, biases, the output gate, shapes the stacked
   * kernel does not take).
   */
  private decodeStacked(x: Tensor | PendingNorm, state: KVCacheState): Tensor | null {
    const w = this.weights;
    const rt = this.runtime;
    if (!(x instanceof PendingNorm) || x.shape[1] !== 1 || !rt.fastKernels || this.config.outputGate) return null;
    if (w['q_proj.bias'] || w['k_proj.bias'] || w['v_proj.bias']) return null;
    const { H, D } = this.dims;
    const norm = this.config.qkNorm;
    const qNorm = norm ? { weight: w['q_norm.weight'], eps: norm.eps, unitOffset: norm.unitOffset } : undefined;
    const kNorm = norm ? { weight: w['k_norm.weight'], eps: norm.eps, unitOffset: norm.unitOffset } : undefined;
    const rope = this.ropeRows(state.length, 1);
    const release = () => {
      if (rope?.temporary) rope.table.dispose();
    };
    const qkv = canDecodeQkv(rt, { qNorm, kNorm, rope: rope ?? undefined }) ? x.fusedStack([w['q_proj.weight'], w['k_proj.weight'], w['v_proj.weight']]) : null;
    if (!qkv) {
      release();
      return null;
    }
    const B = x.shape[0];
    const oW = w['o_proj.weight'];
    const attend = { scale: this.dims.scale, softcap: this.dims.softcap, slidingWindow: this.dims.window };
    let parts: FlashDecodingPartials | null;
    if (!norm && fitsFreshDecode(rt, { H, Hkv: this.dims.Hkv, D, R: rope ? rope.table.shape[1] : 0 })) {
      // rope and the cache write inside flash decoding's pass 1 (one dispatch fewer)
      parts = state.attendDecodeTokenPacked(qkv, H, { rope: rope ?? undefined }, attend);
    } else {
      const qh = state.appendDecodeTokenPacked(qkv, H, { rope: rope ?? undefined, kNorm }, qNorm);
      parts = state.attendPartials(qh, attend);
      qh.dispose();
    }
    qkv.dispose();
    release();
    let y: Tensor;
    if (!parts) {
      const o = rt.zeros([B, 1, H * D]);
      y = matmul(rt, o, oW, { bias: w['o_proj.bias'] });
      o.dispose();
    } else if (parts.chunks <= FUSED_COMBINE_CHUNKS && canNormGemv(rt, B, H * D, oW)) {
      y = normGemv(rt, { kind: 'combine', x: parts.po, z: parts.pml, combine: { heads: H, headDim: D, chunks: parts.chunks }, weight: oW, bias: w['o_proj.bias'] });
    } else {
      const o = rt.empty([B, 1, H * D], 'f32', 'attention.o');
      rt.run(createDecodeCombineKernel({ B, H, D, N: parts.chunks }), [parts.po, parts.pml, o]);
      y = matmul(rt, o, oW, { bias: w['o_proj.bias'] });
      o.dispose();
    }
    parts?.po.dispose();
    parts?.pml.dispose();
    return y;
  }

  /**
   * The layer between the projections, for assemblers that compute q, k, v
   * themselves (e.g. Zamba2's per-invocation LoRA): q (B, L, H·D, or H·2D with
   * the output gate), k and v (B, L, Hkv·D) → (B, L, H·D), the input of o_proj.
   * Applies q/k norms and RoPE, appends k and v to the cache, attends, gates.
   */
  attend(q: TensorLike, k: TensorLike, v: TensorLike, state: KVCacheState): Tensor {
    const { H, Hkv, D } = this.dims;
    const [B, L] = q.shape;
    const gate = !!this.config.outputGate;
    const qRow = gate ? 2 * D : D;
    if (q.shape.length !== 3 || q.shape[2] !== H * qRow || B !== state.batch) {
      throw new StatespaceError('SHAPE_MISMATCH', `AttentionMixer.attend: q has shape [${q.shape.join(',')}], expected [batch=${state.batch}, seqlen, ${H * qRow}]`);
    }
    for (const [name, t] of [['k', k], ['v', v]] as const) {
      if (t.shape.length !== 3 || t.shape[0] !== B || t.shape[1] !== L || t.shape[2] !== Hkv * D) {
        throw new StatespaceError('SHAPE_MISMATCH', `AttentionMixer.attend: ${name} has shape [${t.shape.join(',')}], expected [batch=${B}, seqlen=${L}, ${Hkv * D}]`);
      }
    }
    const rt = this.runtime;
    const start = state.length;
    const rope = this.ropeRows(start, L);
    const norm = this.config.qkNorm;
    const qNorm = norm ? { weight: this.weights['q_norm.weight'], eps: norm.eps, unitOffset: norm.unitOffset } : undefined;
    const kNorm = norm ? { weight: this.weights['k_norm.weight'], eps: norm.eps, unitOffset: norm.unitOffset } : undefined;
    const q4 = reshaped(q, [B, L, H, qRow]);
    const k4 = reshaped(k, [B, L, Hkv, D]);
    const v4 = reshaped(v, [B, L, Hkv, D]);
    const appendOptions = { rope: rope ?? undefined, kNorm };
    const opts = { scale: this.dims.scale, softcap: this.dims.softcap, slidingWindow: this.dims.window };
    // Decode: rope(q), rope(k) into the cache and the copy of v in one dispatch where the kernel takes them.
    const fusedQ = L === 1 && rt.fastKernels ? state.appendDecodeToken(q4, k4, v4, appendOptions, qNorm) : null;
    const qh = fusedQ ?? applyRope(rt, q4, { table: rope?.table, position: rope?.position, headDim: D, norm: qNorm });
    const attendFor = (options: typeof opts & { outShape?: number[] }) => (fusedQ ? state.attend(qh, options) : state.appendAndAttend(qh, k4, v4, appendOptions, options));
    let o: Tensor;
    if (gate) {
      const raw = attendFor(opts);
      o = sigmoidGate(rt, raw, q);
      raw.dispose();
    } else {
      o = attendFor({ ...opts, outShape: [B, L, H * D] });
    }
    if (rope?.temporary) rope.table.dispose();
    qh.dispose();
    return o;
  }

  /** A cos/sin table covering positions start .. start+L−1 and the row of `start` in it. */
  private ropeRows(start: number, L: number): { table: Tensor; position: number; temporary: boolean } | null {
    const rope = this.config.rope;
    if (!rope) return null;
    const R = rope.rotaryDim;
    const end = start + L;
    if (ropeIsDynamic(rope) && end > (rope.maxPositionEmbeddings ?? Infinity)) {
      // transformers recomputes inv_freq from max(position_ids) + 1 of the call.
      const table = this.runtime.upload(ropeTable(rope, start, L, end), [L, R], 'f32', 'rope.table');
      return { table, position: 0, temporary: true };
    }
    let perRuntime = ropeTables.get(this.runtime);
    if (!perRuntime) ropeTables.set(this.runtime, (perRuntime = new Map()));
    const key = JSON.stringify(rope);
    let entry = perRuntime.get(key);
    if (!entry || entry.rows < end) {
      const rows = Math.ceil(Math.max(end, 2 * (entry?.rows ?? 0)) / TABLE_GRANULE) * TABLE_GRANULE;
      const retired = entry ? [...entry.retired, entry.table] : [];
      entry = { table: this.runtime.upload(ropeTable(rope, 0, rows), [rows, R], 'f32', 'rope.table'), rows, retired };
      perRuntime.set(key, entry);
    }
    return { table: entry.table, position: start, temporary: false };
  }
}

/**
 * CPU reference of the whole layer on a fresh cache: x (B, L, E) → (B, L, N),
 * in the order of transformers' LlamaAttention / Qwen3NextAttention. Weights
 * are f32 arrays keyed like {@link AttentionMixer.expectedWeights}.
 *
 * @example
 * ```ts
 * const y = attentionMixerReference(config, hostWeights, x, 1, 7); // (1, 7, hiddenSize)
 * ```
 */
export function attentionMixerReference(config: AttentionMixerConfig, weights: Readonly<Record<string, Float32Array>>, x: Float32Array, B: number, L: number): Float32Array {
  const { E, N, H, Hkv, D, scale, window, softcap } = resolve(config);
  const M = B * L;
  const gate = !!config.outputGate;
  const qRow = gate ? 2 * D : D;
  const qp = matmulReference(x, weights['q_proj.weight'], M, H * qRow, E, weights['q_proj.bias']);
  const kp = matmulReference(x, weights['k_proj.weight'], M, Hkv * D, E, weights['k_proj.bias']);
  const vp = matmulReference(x, weights['v_proj.weight'], M, Hkv * D, E, weights['v_proj.bias']);
  const q = new Float32Array(M * H * D);
  for (let r = 0; r < M * H; r++) q.set(qp.subarray(r * qRow, r * qRow + D), r * D);
  const table = config.rope ? ropeTable(config.rope, 0, L, L) : null;
  const R = config.rope?.rotaryDim ?? 0;
  const n = config.qkNorm;
  const rot = (t: Float32Array, heads: number, w?: Float32Array) => {
    const out = new Float32Array(t.length);
    for (let b = 0; b < B; b++) {
      const part = ropeReference(t.subarray(b * L * heads * D, (b + 1) * L * heads * D), { B: 1, L, H: heads, D }, table, R, n && w ? { weight: w, eps: n.eps, unitOffset: n.unitOffset } : undefined);
      out.set(part, b * L * heads * D);
    }
    return out;
  };
  const qr = rot(q, H, weights['q_norm.weight']);
  const kr = rot(kp, Hkv, weights['k_norm.weight']);
  const o = attentionReference(qr, kr, vp, { B, Lq: L, Lk: L, H, Hkv, D }, { scale, softcap, slidingWindow: window });
  if (gate) {
    for (let r = 0; r < M * H; r++) {
      for (let d = 0; d < D; d++) o[r * D + d] *= 1 / (1 + Math.exp(-qp[r * qRow + D + d]));
    }
  }
  return matmulReference(o, weights['o_proj.weight'], M, N, H * D, weights['o_proj.bias']);
}
