/**
 * A per-layer KV cache that grows in pages and never reallocates.
 *
 * Shape glossary:
 *   B  batch     Hkv  key/value heads     D  head_dim     P  tokens per page (256)
 *   run  a contiguous pair of buffers k, v (B, capacity, Hkv, D) holding a span of absolute positions
 *
 * Tokens live in pages of P tokens. Pages are allocated in runs: a new run
 * holds as many pages as the cache already has (so the run count grows with
 * log(length)), capped at `maxRunPages`, and at least what the current append
 * needs (a long prompt gets one run). Growth allocates a new run and copies
 * nothing. The attention kernels bind one run's k and v at a time (5 storage
 * buffers in all) and carry the online-softmax state across runs, so the
 * number of dispatches grows with the number of runs, not pages.
 */
import {
  type MixerState,
  type Runtime,
  type StateMemory,
  type Tensor,
  type TensorLike,
  StatespaceError,
  assertArg,
  packState,
  unpackState,
} from '@statespace/core';
import { type FlashAttentionOptions, type KVRun, attendRuns } from './flash-attention.js';
import { applyRope } from './rope.js';
import { DECODE_CHUNK } from './flash-decoding.js';

/** Page and run sizes of a {@link KVCacheState}. */
export interface KVCacheOptions {
  /** Tokens per page (default 256). */
  pageSize?: number;
  /** Largest run of pages allocated at once for decode growth (default 32 pages). */
  maxRunPages?: number;
}

/** Layout of the cached keys and values. */
export interface KVCacheShape {
  batch: number;
  numKeyValueHeads: number;
  headDim: number;
}

/** How {@link KVCacheState.append} transforms the keys on their way in. */
export interface KVAppendOptions {
  /** RoPE cos/sin table (P, R) and the table row of the first appended token. */
  rope?: { table: TensorLike; position: number };
  /** Per-head RMSNorm of the keys before RoPE (Qwen3 k_norm). */
  kNorm?: { weight: TensorLike; eps: number; unitOffset?: boolean };
}

interface Run {
  k: Tensor;
  v: Tensor;
  start: number;
  capacity: number;
}

/**
 * The KV cache of one attention layer: the {@link MixerState} of an
 * {@link AttentionMixer}.
 *
 * @example
 * ```ts
 * const cache = new KVCacheState(rt, { batch: 1, numKeyValueHeads: 2, headDim: 64 });
 * cache.append(k, v);                 // k, v (1, L, 2, 64)
 * const o = cache.attend(q);          // q (1, L, H, 64), causal over everything cached
 * console.log(cache.length, cache.memory().kv);
 * ```
 */
export class KVCacheState implements MixerState {
  readonly batch: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly pageSize: number;
  readonly maxRunPages: number;
  private readonly runtime: Runtime;
  private runs: Run[] = [];
  private tokens = 0;
  /** Rows of the RoPE table the last append used, and the sliding window of the last attend (decode signature). */
  private ropeRows = 0;
  private window = 0;

  constructor(runtime: Runtime, shape: KVCacheShape, options: KVCacheOptions = {}) {
    const op = 'KVCacheState';
    for (const [k, v] of Object.entries(shape)) assertArg(Number.isInteger(v) && v > 0, op, `${k} must be a positive integer, got ${v}`);
    this.runtime = runtime;
    this.batch = shape.batch;
    this.numKeyValueHeads = shape.numKeyValueHeads;
    this.headDim = shape.headDim;
    this.pageSize = options.pageSize ?? 256;
    this.maxRunPages = options.maxRunPages ?? 32;
    assertArg(Number.isInteger(this.pageSize) && this.pageSize > 0, op, `pageSize must be a positive integer, got ${this.pageSize}`);
    assertArg(Number.isInteger(this.maxRunPages) && this.maxRunPages > 0, op, `maxRunPages must be a positive integer, got ${this.maxRunPages}`);
  }

  /** Tokens cached (per sequence). */
  get length(): number {
    return this.tokens;
  }

  /** Tokens the allocated pages can hold. */
  get capacity(): number {
    return this.runs.reduce((s, r) => s + r.capacity, 0);
  }

  /** Pages allocated. */
  get pages(): number {
    return this.capacity / this.pageSize;
  }

  /** Number of page runs (buffers pairs) allocated. */
  get runCount(): number {
    return this.runs.length;
  }

  private rowFloats(): number {
    return this.numKeyValueHeads * this.headDim;
  }

  private allocRun(pages: number): void {
    const capacity = pages * this.pageSize;
    const shape = [this.batch, capacity, this.numKeyValueHeads, this.headDim];
    const start = this.capacity;
    this.runs.push({ k: this.runtime.empty(shape, 'f32', 'kvcache.k'), v: this.runtime.empty(shape, 'f32', 'kvcache.v'), start, capacity });
  }

  /** Allocates pages so that `tokens` more fit; existing pages are never moved. */
  reserve(tokens: number): void {
    const need = this.tokens + tokens - this.capacity;
    if (need <= 0) return;
    const needPages = Math.ceil(need / this.pageSize);
    const grow = Math.min(this.maxRunPages, Math.max(1, this.pages));
    this.allocRun(Math.max(needPages, grow));
  }

  /** The runs holding tokens, with their valid lengths (for {@link attendRuns}). */
  kvRuns(): KVRun[] {
    const out: KVRun[] = [];
    for (const r of this.runs) {
      const length = Math.min(r.capacity, this.tokens - r.start);
      if (length > 0) out.push({ k: r.k, v: r.v, start: r.start, length });
    }
    return out;
  }

  /**
   * Appends k and v (B, L, Hkv, ≥D: the first D features of each row are
   * taken) after the cached tokens, rotating (and normalising) the keys on the way in.
   */
  append(k: TensorLike, v: TensorLike, options: KVAppendOptions = {}): void {
    const op = 'KVCacheState.append';
    const { batch: B, numKeyValueHeads: Hkv, headDim: D } = this;
    for (const [name, t] of [['k', k], ['v', v]] as const) {
      if (t.shape.length !== 4 || t.shape[0] !== B || t.shape[2] !== Hkv || t.shape[3] < D || t.dtype !== 'f32') {
        throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${name} has shape [${t.shape.join(',')}] (${t.dtype}), expected f32 [batch=${B}, tokens, kv_heads=${Hkv}, head_dim=${D}]`);
      }
    }
    const L = k.shape[1];
    assertArg(v.shape[1] === L, op, `k holds ${L} tokens, v ${v.shape[1]}`);
    this.ropeRows = options.rope ? options.rope.table.shape[0] - options.rope.position + this.tokens : 0;
    this.reserve(L);
    const first = this.tokens;
    for (const r of this.runs) {
      const a = Math.max(first, r.start);
      const e = Math.min(first + L, r.start + r.capacity);
      if (a >= e) continue;
      const common = { headDim: D, outToken: a - r.start, firstToken: a - first, count: e - a };
      applyRope(this.runtime, k, {
        ...common,
        out: r.k,
        table: options.rope?.table,
        position: options.rope?.position ?? 0,
        norm: options.kNorm,
      });
      applyRope(this.runtime, v, { ...common, out: r.v });
    }
    this.tokens += L;
  }

  /**
   * Causal attention of q (B, Lq, H, D) (the last Lq cached tokens' queries)
   * over everything cached. Returns (B, Lq, H, D), or `outShape` of the same size.
   */
  attend(q: TensorLike, options: FlashAttentionOptions = {}): Tensor {
    const Lq = q.shape[1];
    this.window = options.slidingWindow ?? 0;
    assertArg(Lq <= this.tokens, 'KVCacheState.attend', `${Lq} queries but only ${this.tokens} tokens cached: append their keys first`);
    return attendRuns(this.runtime, q, this.kvRuns(), this.tokens - Lq, options);
  }

  /**
   * What decides the commands of the next one-token step: the run the token goes to, the
   * flash-decoding chunks of every run (which grow every 256 tokens and move with a sliding
   * window) and whether the RoPE table still covers the position. Steps with the same
   * signature differ only in positions, by one per token.
   */
  decodeSignature(): string {
    const p = this.tokens;
    if (p + 1 > this.capacity) return `grow:${this.runs.length}`;
    const lo = this.window > 0 ? Math.max(0, p + 1 - this.window) : 0;
    let sig = `${this.runs.length}:${this.capacity}:${this.ropeRows > p ? 1 : 0}`;
    for (const r of this.runs) {
      const a = Math.max(lo, r.start);
      const e = Math.min(p + 1, r.start + r.capacity);
      sig += a >= e ? ':-' : `:${Math.floor((a - r.start) / DECODE_CHUNK)}-${Math.ceil((e - r.start) / DECODE_CHUNK)}${p >= r.start && p < r.start + r.capacity ? '*' : ''}`;
    }
    return sig;
  }

  /** @internal A replayed decode plan appended `tokens` tokens on the GPU: count them. */
  advanceReplayed(tokens: number): void {
    this.tokens += tokens;
  }

  /** Forgets the tokens after the first `length` (pages stay allocated). */
  truncate(length: number): void {
    assertArg(Number.isInteger(length) && length >= 0 && length <= this.tokens, 'KVCacheState.truncate', `length must be an integer in [0, ${this.tokens}], got ${length}`);
    this.tokens = length;
  }

  memory(): StateMemory {
    let kv = 0;
    for (const r of this.runs) kv += r.k.byteSize + r.v.byteSize;
    return { ssm: 0, conv: 0, kv };
  }

  clone(): KVCacheState {
    const shape = { batch: this.batch, numKeyValueHeads: this.numKeyValueHeads, headDim: this.headDim };
    const c = new KVCacheState(this.runtime, shape, { pageSize: this.pageSize, maxRunPages: this.maxRunPages });
    for (const r of this.runs) {
      c.allocRun(r.capacity / this.pageSize);
      const n = c.runs[c.runs.length - 1];
      this.runtime.copy(r.k, n.k, r.k.byteSize);
      this.runtime.copy(r.v, n.v, r.v.byteSize);
    }
    c.tokens = this.tokens;
    return c;
  }

  /** Forgets every token and frees the pages. */
  reset(): void {
    for (const r of this.runs) {
      r.k.dispose();
      r.v.dispose();
    }
    this.runs = [];
    this.tokens = 0;
  }

  /** Serialises the cached tokens compactly: length, then K and V as (B, length, Hkv, D) f32. */
  async save(): Promise<Uint8Array> {
    const row = this.rowFloats();
    const L = this.tokens;
    const K = new Float32Array(this.batch * L * row);
    const V = new Float32Array(this.batch * L * row);
    for (const r of this.kvRuns()) {
      const kd = await this.runtime.readFloat(r.k);
      const vd = await this.runtime.readFloat(r.v);
      const cap = r.k.shape[1];
      for (let b = 0; b < this.batch; b++) {
        K.set(kd.subarray(b * cap * row, (b * cap + r.length) * row), (b * L + r.start) * row);
        V.set(vd.subarray(b * cap * row, (b * cap + r.length) * row), (b * L + r.start) * row);
      }
    }
    return packState(L, [K.buffer, V.buffer]);
  }

  /** Restores what {@link save} wrote (same batch, heads and head_dim). */
  load(bytes: Uint8Array): void {
    const { length: L, parts } = unpackState(bytes);
    const row = this.rowFloats();
    const want = this.batch * L * row * 4;
    if (parts.length !== 2 || parts[0].byteLength !== want || parts[1].byteLength !== want) {
      throw new StatespaceError('STATE_MISMATCH', `KVCacheState.load: expected K and V of ${want} bytes each for batch ${this.batch}, ${L} tokens, ${this.numKeyValueHeads} kv heads x ${this.headDim}`);
    }
    const K = new Float32Array(parts[0].slice().buffer);
    const V = new Float32Array(parts[1].slice().buffer);
    this.reset();
    this.reserve(L);
    for (const r of this.runs) {
      const kd = new Float32Array(r.k.size);
      const vd = new Float32Array(r.v.size);
      const n = Math.max(0, Math.min(r.capacity, L - r.start));
      for (let b = 0; b < this.batch; b++) {
        kd.set(K.subarray((b * L + r.start) * row, (b * L + r.start + n) * row), b * r.capacity * row);
        vd.set(V.subarray((b * L + r.start) * row, (b * L + r.start + n) * row), b * r.capacity * row);
      }
      this.runtime.write(r.k, kd);
      this.runtime.write(r.v, vd);
    }
    this.tokens = L;
  }

  dispose(): void {
    this.reset();
  }
}
