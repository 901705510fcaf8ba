/**
 * A per-layer KV cache that grows in pages, in a few long runs.
 *
 * Shape glossary:
 *   B  batch     Hkv  key/value heads     D  head_dim     P  tokens per page (256)
 *   run  a contiguous pair of buffers k, v (B, capacity, Hkv, D) holding a span of absolute positions
 *
 * Tokens live in pages of P tokens. Pages are allocated in runs of up to
 * `maxRunPages` pages (more where one append needs more: a long prompt gets one
 * run). While the last run is shorter than that, growth moves it into a run
 * twice its size (one copy of its tokens, so each token is copied about once in
 * all); once it is full, growth adds a new run and copies nothing. A decode
 * that starts from a short prompt therefore reads one run up to maxRunPages · P
 * tokens (8,192 by default), and one more per maxRunPages · P after that. The
 * attention kernels bind one or two runs' k and v at a time and carry the
 * online-softmax state across runs, so the number of dispatches grows with the
 * number of runs, not pages: a run per doubling cost a decode token one more
 * flash-decoding dispatch per layer every two doublings.
 *
 * With `window` W (a sliding-window layer) the cache is a ring: two runs of
 * C = ⌈(W−1)/P⌉·P + P tokens each, allocated once, whose absolute start
 * positions leapfrog (when the writer passes the end of the newer run, the
 * older one is reused at start + 2C). The kernels still see contiguous runs at
 * absolute positions and the window mask hides what is stale, so memory stays
 * 2C rows per sequence however long the context grows. A prompt chunk longer
 * than C − W + 1 is appended and attended in pieces of that size
 * ({@link KVCacheState.appendAndAttend}).
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
import { type AttentionOptions, type FlashAttentionOptions, type KVRun, attendRuns } from './flash-attention.js';
import { applyRope } from './rope.js';
import { canDecodeQkv, decodeQkv, decodeQkvPacked } from './decode-qkv.js';

/** A per-head RMSNorm of the queries (Qwen3 q_norm). */
type QueryNorm = { weight: TensorLike; eps: number; unitOffset?: boolean };
import { DECODE_CHUNK, type FlashDecodingPartials, flashDecodingPartials, flashDecodingPartialsFresh } from './flash-decoding.js';

/** Page and run sizes of a {@link KVCacheState}. */
export interface KVCacheOptions {
  /** Tokens per page (default 256). */
  pageSize?: number;
  /** Largest run of pages allocated at once for decode growth (default 32 pages). */
  maxRunPages?: number;
  /**
   * Sliding window W (tokens a query sees, itself included): the cache becomes a ring that
   * holds about 2W tokens and never grows. Absent or 0: a growing cache that keeps every token.
   */
  window?: number;
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
  private attendWindow = 0;
  /** Ring mode: the window W the cache is bounded by (0 for a growing cache). */
  readonly window: number;
  /** Ring mode: tokens per run (C). */
  private readonly ringCapacity: number;
  /** Ring mode: the shortest length truncate can go back to (older positions were overwritten). */
  private floor = 0;

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
    this.window = options.window ?? 0;
    assertArg(Number.isInteger(this.window) && this.window >= 0, op, `window must be a non-negative integer, got ${this.window}`);
    this.ringCapacity = this.window > 0 ? (Math.ceil((this.window - 1) / this.pageSize) + 1) * this.pageSize : 0;
  }

  /** True for a ring bounded by a sliding window (old tokens are overwritten). */
  get overwrites(): boolean {
    return this.window > 0;
  }

  /** The most tokens one {@link append} takes (ring mode: C − W + 1; unbounded otherwise). */
  get maxAppend(): number {
    return this.window > 0 ? this.ringCapacity - this.window + 1 : Infinity;
  }

  private options(): KVCacheOptions {
    return { pageSize: this.pageSize, maxRunPages: this.maxRunPages, window: this.window };
  }

  /** Ring mode: the run with the highest start. */
  private newest(): Run {
    return this.runs[0].start > this.runs[1].start ? this.runs[0] : this.runs[1];
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
    const start = this.runs.length ? this.runs[this.runs.length - 1].start + this.runs[this.runs.length - 1].capacity : 0;
    this.runs.push({ ...this.runBuffers(capacity), start, capacity });
  }

  /** k and v buffers (B, capacity, Hkv, D) of one run. */
  private runBuffers(capacity: number): { k: Tensor; v: Tensor } {
    const shape = [this.batch, capacity, this.numKeyValueHeads, this.headDim];
    return { k: this.runtime.empty(shape, 'f32', 'kvcache.k'), v: this.runtime.empty(shape, 'f32', 'kvcache.v') };
  }

  /**
   * Allocates pages so that `tokens` more fit. Full runs (maxRunPages pages or more) are never
   * moved; a shorter last run is moved into a larger one.
   */
  reserve(tokens: number): void {
    if (this.window > 0) {
      assertArg(tokens <= this.maxAppend, 'KVCacheState.reserve', `a ring cache of window ${this.window} takes at most ${this.maxAppend} tokens at once, got ${tokens}`);
      if (this.runs.length === 0) {
        this.allocRun(this.ringCapacity / this.pageSize);
        this.allocRun(this.ringCapacity / this.pageSize);
      }
      // Leapfrog: the older run's tokens are all outside the window of the tokens to come.
      const newest = this.newest();
      if (this.tokens + tokens > newest.start + newest.capacity) {
        const older = newest === this.runs[0] ? this.runs[1] : this.runs[0];
        older.start = newest.start + newest.capacity;
        this.floor = older.start;
      }
      return;
    }
    const need = this.tokens + tokens - this.capacity;
    if (need <= 0) return;
    const needPages = Math.ceil(need / this.pageSize);
    const last = this.runs[this.runs.length - 1];
    if (last && last.capacity < this.maxRunPages * this.pageSize) {
      const lastPages = last.capacity / this.pageSize;
      this.moveRun(last, Math.max(lastPages + needPages, Math.min(this.maxRunPages, 2 * lastPages)));
      return;
    }
    this.allocRun(Math.max(needPages, this.runs.length ? this.maxRunPages : 1));
  }

  /** Moves a run's tokens into new buffers of `pages` pages (the old ones are freed). */
  private moveRun(run: Run, pages: number): void {
    const capacity = pages * this.pageSize;
    const { k, v } = this.runBuffers(capacity);
    const row = this.rowFloats() * 4;
    const valid = Math.min(run.capacity, Math.max(0, this.tokens - run.start));
    for (let b = 0; valid > 0 && b < this.batch; b++) {
      this.runtime.copy(run.k, k, valid * row, b * run.capacity * row, b * capacity * row);
      this.runtime.copy(run.v, v, valid * row, b * run.capacity * row, b * capacity * row);
    }
    run.k.dispose();
    run.v.dispose();
    run.k = k;
    run.v = v;
    run.capacity = capacity;
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
    this.appendRange(k, v, options, 0, k.shape[1]);
  }

  /**
   * One decode token (k and v of 1 token): its keys and values into their cache slot and its
   * queries q (B, 1, H, ≥D) rotated (and normalised with `qNorm`), in one fused dispatch
   * ({@link decodeQkv}). Returns the rotated queries (B, 1, H, D), or null when the fused
   * kernel does not take these inputs (then rotate q and {@link append} as usual).
   *
   * @example
   * ```ts
   * const qh = cache.appendDecodeToken(q, k, v, { rope }) ?? fallback();
   * const o = cache.attend(qh);
   * ```
   */
  appendDecodeToken(q: TensorLike, k: TensorLike, v: TensorLike, options: KVAppendOptions = {}, qNorm?: QueryNorm): Tensor | null {
    if (k.shape[1] !== 1 || !canDecodeQkv(this.runtime, { qNorm, kNorm: options.kNorm, rope: options.rope })) return null;
    this.checkAppend(k, v);
    return this.decodeToken(options, (cache) => decodeQkv(this.runtime, { q, k, v, headDim: this.headDim, rope: options.rope, qNorm, kNorm: options.kNorm, cache }));
  }

  /**
   * {@link appendDecodeToken} for q, k and v side by side in one buffer qkv (B, 1, H·D + 2·Hkv·D), as
   * a stacked q/k/v projection writes them ({@link decodeQkvPacked}). Check {@link canDecodeQkv} first.
   *
   * @example
   * ```ts
   * const qh = cache.appendDecodeTokenPacked(qkv, 16, { rope }); // (B, 1, 16, D)
   * ```
   */
  appendDecodeTokenPacked(qkv: TensorLike, numHeads: number, options: KVAppendOptions = {}, qNorm?: QueryNorm): Tensor {
    assertArg(qkv.size === this.batch * (numHeads + 2 * this.numKeyValueHeads) * this.headDim, 'KVCacheState.appendDecodeTokenPacked', `qkv has shape [${qkv.shape.join(',')}], expected [batch=${this.batch}, 1, ${(numHeads + 2 * this.numKeyValueHeads) * this.headDim}]`);
    return this.decodeToken(options, (cache) =>
      decodeQkvPacked(this.runtime, { qkv, numHeads, numKeyValueHeads: this.numKeyValueHeads, headDim: this.headDim, rope: options.rope, qNorm, kNorm: options.kNorm, cache }),
    );
  }

  /**
   * The decode token from its stacked q/k/v projection qkv (B, 1, H·D + 2·Hkv·D), unrotated, straight into
   * flash decoding's pass 1 ({@link flashDecodingPartialsFresh}): the kernel rotates the queries and writes
   * the token's rotated key and its value into its cache row, so the token needs no {@link appendDecodeTokenPacked}
   * dispatch. No key norm (check {@link fitsFreshDecode} first). Returns the partials a consumer combines.
   *
   * @example
   * ```ts
   * const parts = cache.attendDecodeTokenPacked(qkv, 16, { rope }); // then normGemv kind 'combine'
   * ```
   */
  attendDecodeTokenPacked(qkv: TensorLike, numHeads: number, options: Pick<KVAppendOptions, 'rope'>, attend: AttentionOptions = {}): FlashDecodingPartials {
    const op = 'KVCacheState.attendDecodeTokenPacked';
    assertArg(qkv.size === this.batch * (numHeads + 2 * this.numKeyValueHeads) * this.headDim, op, `qkv has shape [${qkv.shape.join(',')}], expected [batch=${this.batch}, 1, ${(numHeads + 2 * this.numKeyValueHeads) * this.headDim}]`);
    this.setAttendWindow(op, attend.slidingWindow);
    const rope = options.rope;
    this.ropeRows = rope ? rope.table.shape[0] - rope.position + this.tokens : 0;
    this.reserve(1);
    const p = this.tokens;
    this.tokens += 1;
    return flashDecodingPartialsFresh(this.runtime, qkv, this.kvRuns(), p, { ...attend, H: numHeads, Hkv: this.numKeyValueHeads, D: this.headDim, rope });
  }

  /** Records the window an attend uses (decode signature); a ring cache takes only its own window. */
  private setAttendWindow(op: string, slidingWindow: number | undefined): void {
    this.attendWindow = slidingWindow ?? 0;
    if (this.window > 0 && this.attendWindow !== this.window) {
      throw new StatespaceError('INVALID_ARGUMENT', `${op}: a ring cache of window ${this.window} cannot attend with slidingWindow ${this.attendWindow}`);
    }
  }

  /** Reserves the slot of one decode token, lets `write` fill it (and make the queries), counts the token. */
  private decodeToken(options: KVAppendOptions, write: (cache: { k: TensorLike; v: TensorLike; slot: number }) => Tensor): Tensor {
    const rope = options.rope;
    this.ropeRows = rope ? rope.table.shape[0] - rope.position + this.tokens : 0;
    this.reserve(1);
    const p = this.tokens;
    const run = this.runs.find((r) => p >= r.start && p < r.start + r.capacity)!;
    const qh = write({ k: run.k, v: run.v, slot: p - run.start });
    this.tokens += 1;
    return qh;
  }

  private checkAppend(k: TensorLike, v: TensorLike): void {
    const op = 'KVCacheState.append';
    const { batch: B, numKeyValueHeads: Hkv, headDim: D } = this;
    for (const [name, t] of [['k', k], ['v', v]] as const) {
      if (t.shape.length !== 4 || t.shape[0] !== B || t.shape[2] !== Hkv || t.shape[3] < D || t.dtype !== 'f32') {
        throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${name} has shape [${t.shape.join(',')}] (${t.dtype}), expected f32 [batch=${B}, tokens, kv_heads=${Hkv}, head_dim=${D}]`);
      }
    }
    assertArg(v.shape[1] === k.shape[1], op, `k holds ${k.shape[1]} tokens, v ${v.shape[1]}`);
  }

  private appendRange(k: TensorLike, v: TensorLike, options: KVAppendOptions, from: number, L: number): void {
    const { headDim: D } = this;
    this.checkAppend(k, v);
    this.ropeRows = options.rope ? options.rope.table.shape[0] - options.rope.position + this.tokens - from : 0;
    this.reserve(L);
    const first = this.tokens;
    for (const r of this.runs) {
      const a = Math.max(first, r.start);
      const e = Math.min(first + L, r.start + r.capacity);
      if (a >= e) continue;
      const common = { headDim: D, outToken: a - r.start, firstToken: a - first + from, count: e - a };
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
    this.setAttendWindow('KVCacheState.attend', options.slidingWindow);
    assertArg(Lq <= this.tokens, 'KVCacheState.attend', `${Lq} queries but only ${this.tokens} tokens cached: append their keys first`);
    return attendRuns(this.runtime, q, this.kvRuns(), this.tokens - Lq, options);
  }

  /**
   * Flash decoding's pass 1 for the last token's queries q (B, 1, H, D) over everything cached:
   * the partials a consumer combines itself ({@link flashDecodingPartials}); null when no key is visible.
   *
   * @example
   * ```ts
   * const parts = cache.attendPartials(qh); // then normGemv({ kind: 'combine', x: parts.po, z: parts.pml, ... })
   * ```
   */
  attendPartials(q: TensorLike, options: AttentionOptions = {}): FlashDecodingPartials | null {
    assertArg(q.shape.length === 4 && q.shape[0] === this.batch && q.shape[1] === 1 && q.shape[3] === this.headDim, 'KVCacheState.attendPartials', `q has shape [${q.shape.join(',')}], expected [batch=${this.batch}, 1, heads, head_dim=${this.headDim}]`);
    this.setAttendWindow('KVCacheState.attendPartials', options.slidingWindow);
    assertArg(this.tokens >= 1, 'KVCacheState.attendPartials', 'no token cached: append its key first');
    return flashDecodingPartials(this.runtime, q, this.kvRuns(), this.tokens - 1, { ...options, Hkv: this.numKeyValueHeads });
  }

  /**
   * {@link append} then {@link attend} for the L appended tokens' queries q (B, L, H, D). A ring
   * cache takes a chunk longer than {@link maxAppend} in pieces, so that every piece's window is
   * still held; the result is the same as one append and attend of a growing cache.
   *
   * @example
   * ```ts
   * const o = cache.appendAndAttend(q, k, v, { rope }, { slidingWindow: 512 }); // (B, L, H, D)
   * ```
   */
  appendAndAttend(q: TensorLike, k: TensorLike, v: TensorLike, appendOptions: KVAppendOptions = {}, attendOptions: FlashAttentionOptions = {}): Tensor {
    const L = k.shape[1];
    const piece = this.maxAppend;
    if (L <= piece) {
      this.append(k, v, appendOptions);
      return this.attend(q, attendOptions);
    }
    const [B, Lq, H, D] = q.shape;
    assertArg(q.shape.length === 4 && Lq === L, 'KVCacheState.appendAndAttend', `q has shape [${q.shape.join(',')}], expected [batch, ${L}, heads, head_dim]`);
    const out = this.runtime.empty(attendOptions.outShape ?? [B, L, H, D], 'f32', 'attention.out');
    const row = H * D * 4;
    for (let i = 0; i < L; i += piece) {
      const l = Math.min(piece, L - i);
      this.appendRange(k, v, appendOptions, i, l);
      const qp = this.runtime.empty([B, l, H, D], 'f32', 'attention.qPiece');
      for (let b = 0; b < B; b++) this.runtime.copy(q, qp, l * row, (b * L + i) * row, b * l * row);
      const o = this.attend(qp, { ...attendOptions, outShape: undefined });
      for (let b = 0; b < B; b++) this.runtime.copy(o, out, l * row, b * l * row, (b * L + i) * row);
      qp.dispose();
      o.dispose();
    }
    return out;
  }

  /**
   * What decides the commands of the next one-token step: the run the token goes to, the
   * flash-decoding chunks of every run (which grow every 256 tokens and move with a sliding
   * window) and whether the RoPE table still covers the position. Steps with the same
   * signature differ only in positions, by one per token.
   */
  decodeSignature(): string {
    const p = this.tokens;
    if (this.window > 0) {
      // A leapfrog moves a run's start (a uniform that does not step per token): a new plan.
      if (this.runs.length === 0 || p + 1 > this.newest().start + this.ringCapacity) return `ring-leap:${p}`;
    } else if (p + 1 > this.capacity) return `grow:${this.runs.length}:${this.capacity}`;
    const lo = this.attendWindow > 0 ? Math.max(0, p + 1 - this.attendWindow) : 0;
    let sig = `${this.runs.length}:${this.capacity}:${this.ropeRows > p ? 1 : 0}`;
    for (const r of this.runs) {
      if (this.window > 0) sig += `@${r.start}`;
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
    if (length < this.floor) {
      throw new StatespaceError('KV_OVERWRITTEN', `KVCacheState.truncate: a ring cache of window ${this.window} overwrote the tokens before ${this.floor}; cannot go back to ${length} (clone it to come back later)`);
    }
    this.tokens = length;
  }

  memory(): StateMemory {
    let kv = 0;
    for (const r of this.runs) kv += r.k.byteSize + r.v.byteSize;
    return { ssm: 0, conv: 0, kv };
  }

  clone(): KVCacheState {
    const shape = { batch: this.batch, numKeyValueHeads: this.numKeyValueHeads, headDim: this.headDim };
    const c = new KVCacheState(this.runtime, shape, this.options());
    for (const r of this.runs) {
      c.allocRun(r.capacity / this.pageSize);
      const n = c.runs[c.runs.length - 1];
      n.start = r.start;
      this.runtime.copy(r.k, n.k, r.k.byteSize);
      this.runtime.copy(r.v, n.v, r.v.byteSize);
    }
    c.tokens = this.tokens;
    c.floor = this.floor;
    c.ropeRows = this.ropeRows;
    c.attendWindow = this.attendWindow;
    return c;
  }

  /**
   * Becomes a copy of `other` (a ring cache of the same shape and window), reusing this cache's
   * buffers: how {@link ModelState} rolls a ring back to a checkpoint.
   */
  copyFrom(other: MixerState): void {
    const o = other as KVCacheState;
    if (!(o instanceof KVCacheState) || this.window === 0 || o.window !== this.window || o.pageSize !== this.pageSize || o.batch !== this.batch || o.numKeyValueHeads !== this.numKeyValueHeads || o.headDim !== this.headDim) {
      throw new StatespaceError('STATE_MISMATCH', 'KVCacheState.copyFrom: expected a ring KV cache of the same batch, heads, head_dim, page size and window');
    }
    if (o.runs.length === 0) {
      this.reset();
      return;
    }
    if (this.runs.length === 0) this.reserve(0);
    o.runs.forEach((r, i) => {
      this.runs[i].start = r.start;
      this.runtime.copy(r.k, this.runs[i].k, r.k.byteSize);
      this.runtime.copy(r.v, this.runs[i].v, r.v.byteSize);
    });
    this.tokens = o.tokens;
    this.floor = o.floor;
    this.ropeRows = o.ropeRows;
    this.attendWindow = o.attendWindow;
  }

  /** Forgets every token and frees the pages. */
  reset(): void {
    for (const r of this.runs) {
      r.k.dispose();
      r.v.dispose();
    }
    this.runs = [];
    this.tokens = 0;
    this.floor = 0;
  }

  /**
   * Serialises the cached tokens compactly: length, then K and V as (B, n, Hkv, D) f32 of the
   * last n tokens. A growing cache keeps all of them (n = length); a ring keeps the W − 1 that
   * the next token's window sees, and a third part with the first position kept.
   */
  async save(): Promise<Uint8Array> {
    const row = this.rowFloats();
    const L = this.tokens;
    const first = this.window > 0 ? Math.max(0, L - this.window + 1) : 0;
    const n = L - first;
    const K = new Float32Array(this.batch * n * row);
    const V = new Float32Array(this.batch * n * row);
    for (const r of this.kvRuns()) {
      const a = Math.max(first, r.start);
      const e = r.start + r.length;
      if (a >= e) continue;
      const kd = await this.runtime.readFloat(r.k);
      const vd = await this.runtime.readFloat(r.v);
      const cap = r.k.shape[1];
      for (let b = 0; b < this.batch; b++) {
        K.set(kd.subarray((b * cap + a - r.start) * row, (b * cap + e - r.start) * row), (b * n + a - first) * row);
        V.set(vd.subarray((b * cap + a - r.start) * row, (b * cap + e - r.start) * row), (b * n + a - first) * row);
      }
    }
    return packState(L, this.window > 0 ? [K.buffer, V.buffer, Int32Array.of(first).buffer] : [K.buffer, V.buffer]);
  }

  /** Restores what {@link save} wrote (same batch, heads and head_dim). */
  load(bytes: Uint8Array): void {
    const { length: L, parts } = unpackState(bytes);
    const row = this.rowFloats();
    const ringPart = parts.length === 3 && parts[2].byteLength === 4 ? new Int32Array(parts[2].slice().buffer)[0] : null;
    const first = ringPart ?? 0;
    const want = this.batch * (L - first) * row * 4;
    if ((parts.length !== 2 && ringPart === null) || first < 0 || first > L || parts[0].byteLength !== want || parts[1].byteLength !== want) {
      throw new StatespaceError('STATE_MISMATCH', `KVCacheState.load: expected K and V of ${want} bytes each for batch ${this.batch}, ${L - first} tokens, ${this.numKeyValueHeads} kv heads x ${this.headDim}`);
    }
    const K = new Float32Array(parts[0].slice().buffer);
    const V = new Float32Array(parts[1].slice().buffer);
    if (this.window > 0) {
      this.loadRing(L, first, K, V);
      return;
    }
    if (first !== 0) {
      throw new StatespaceError('STATE_MISMATCH', `KVCacheState.load: the bytes hold only tokens ${first}..${L - 1} (a ring cache's); a growing cache needs all ${L}`);
    }
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

  /** Ring mode: places tokens [first, L) of K, V (B, L − first, Hkv, D) so that the window of position L is held. */
  private loadRing(L: number, first: number, K: Float32Array, V: Float32Array): void {
    const row = this.rowFloats();
    const n = L - first;
    const keep = Math.max(first, L - this.window + 1);
    this.reset();
    this.reserve(0);
    const C = this.ringCapacity;
    const S = C * Math.max(1, Math.ceil(L / C) - 1);
    this.runs[0].start = S - C;
    this.runs[1].start = S;
    for (const r of this.runs) {
      const kd = new Float32Array(r.k.size);
      const vd = new Float32Array(r.v.size);
      const a = Math.max(keep, r.start);
      const e = Math.min(L, r.start + C);
      for (let b = 0; a < e && b < this.batch; b++) {
        kd.set(K.subarray((b * n + a - first) * row, (b * n + e - first) * row), (b * C + a - r.start) * row);
        vd.set(V.subarray((b * n + a - first) * row, (b * n + e - first) * row), (b * C + a - r.start) * row);
      }
      this.runtime.write(r.k, kd);
      this.runtime.write(r.v, vd);
    }
    this.tokens = L;
    this.floor = keep === 0 ? 0 : L;
  }

  dispose(): void {
    this.reset();
  }
}
