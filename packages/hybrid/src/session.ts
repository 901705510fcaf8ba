/**
 * The generation session: what a user calls. It owns one model state (SSM
 * states, conv states, KV caches) for a batch of independent sequences and
 * exposes prefill / step / streaming generate, and the state as a first-class
 * object: snapshot, restore, reset, fork and serialisation to bytes.
 */
import { type Runtime, StatespaceError, type StateMemory, type Tensor, type TokenSamplingParams, argmax } from '@statespace/core';
import { DecodeEngine, type DecodeEngineStats, GpuSampler } from './decode-engine.js';
import type { HybridModel, ModelState } from './model.js';
import { fnv1a } from './hash.js';
import { type SamplingOptions, argmaxHost, samplerSettings } from './sampling.js';

/** Options of {@link Session.generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to produce (default 64). */
  maxNewTokens?: number;
  /** Token ids that end generation (default: the model's eos ids); the stop token is yielded. */
  stopTokens?: readonly number[];
  /** Ignore the model's eos tokens (produce exactly maxNewTokens unless stopTokens say otherwise). */
  ignoreEos?: boolean;
  /** Cancels generation between tokens. */
  signal?: AbortSignal;
  /**
   * Decoding keeps this many tokens in flight (default 3; 1 waits for each token): each step
   * picks its token on the GPU (argmax, or the sampler for temperature, top-k, top-p and the
   * repetition penalty) and the next step is recorded before the host has read it. A stop
   * token or cancellation wastes at most the tokens in flight: the state is rolled back to
   * the tokens actually returned.
   */
  inFlight?: number;
  /** Prompt tokens per forward pass (default: the session's {@link SessionOptions.prefillChunk}). */
  prefillChunk?: number;
  /** Called after each forward pass of the prompt (see {@link PrefillOptions.onProgress}). */
  onProgress?: (progress: PrefillProgress) => void;
}

/** Progress of a prompt fed in passes: `done` of `total` tokens (per sequence) are in the state. */
export interface PrefillProgress {
  done: number;
  total: number;
}

/** Options of {@link Session.prefill}. */
export interface PrefillOptions {
  /**
   * Prompt tokens per forward pass (default: the session's {@link SessionOptions.prefillChunk});
   * 0 runs the whole prompt in one pass.
   */
  prefillChunk?: number;
  /** Called after each forward pass with the tokens fed so far, in order; the last call has done = total. */
  onProgress?: (progress: PrefillProgress) => void;
}

/** Options of the {@link Session} constructor. */
export interface SessionOptions {
  /** Independent sequences run together (default 1). */
  batch?: number;
  /**
   * Prompt tokens per forward pass (default {@link DEFAULT_PREFILL_CHUNK}; 0 = the whole prompt
   * in one pass). A long prompt runs as passes of this many tokens, each continuing from the
   * state the previous one left (SSM and conv states, KV caches), so activations stay
   * O(chunk) however long the prompt: nothing of size prompt × d_inner or prompt² exists at once.
   */
  prefillChunk?: number;
}

/** Tokens per prefill pass when {@link SessionOptions.prefillChunk} is not given. */
export const DEFAULT_PREFILL_CHUNK = 8192;

function checkChunk(op: string, chunk: unknown): number {
  if (!(typeof chunk === 'number' && Number.isInteger(chunk) && chunk >= 0)) {
    throw new StatespaceError('INVALID_ARGUMENT', `${op}: prefillChunk must be an integer >= 0 (0 = one pass), got ${String(chunk)}`);
  }
  return chunk;
}

/** A random 32-bit seed (crypto where available), the default of {@link SamplingOptions.seed}. */
function randomSeed(): number {
  const c = (globalThis as { crypto?: { getRandomValues?(a: Uint32Array): Uint32Array } }).crypto;
  if (c?.getRandomValues) return c.getRandomValues(new Uint32Array(1))[0];
  return Math.floor(Math.random() * 2 ** 32);
}

function invalid(option: string, allowed: string, value: unknown): never {
  throw new StatespaceError('INVALID_ARGUMENT', `Session.generate: ${option} must be ${allowed}, got ${String(value)}`);
}

/** Checks every generate option at the boundary. */
function validateGenerateOptions(o: GenerateOptions): void {
  const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (o.maxNewTokens !== undefined && !(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 1)) invalid('maxNewTokens', 'a positive integer', o.maxNewTokens);
  if (o.temperature !== undefined && !(isNum(o.temperature) && o.temperature >= 0)) invalid('temperature', 'a finite number >= 0', o.temperature);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) invalid('topK', 'an integer >= 0', o.topK);
  if (o.topP !== undefined && !(isNum(o.topP) && o.topP > 0 && o.topP <= 1)) invalid('topP', 'a number in (0, 1]', o.topP);
  if (o.repetitionPenalty !== undefined && !(isNum(o.repetitionPenalty) && o.repetitionPenalty > 0)) invalid('repetitionPenalty', 'a finite number > 0', o.repetitionPenalty);
  if (o.seed !== undefined && !(Number.isInteger(o.seed) && o.seed >= 0 && o.seed < 2 ** 32)) invalid('seed', 'an integer in [0, 2^32)', o.seed);
  if (o.inFlight !== undefined && !(Number.isInteger(o.inFlight) && o.inFlight >= 1 && o.inFlight <= 8)) invalid('inFlight', 'an integer in [1, 8]', o.inFlight);
  if (o.stopTokens !== undefined && (!Array.isArray(o.stopTokens) || o.stopTokens.some((t) => !Number.isInteger(t) || t < 0))) invalid('stopTokens', 'an array of token ids', o.stopTokens);
  if (o.signal !== undefined && (typeof o.signal !== 'object' || o.signal === null || typeof o.signal.aborted !== 'boolean')) invalid('signal', 'an AbortSignal', o.signal);
  if (o.prefillChunk !== undefined) checkChunk('Session.generate', o.prefillChunk);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') invalid('onProgress', 'a function', o.onProgress);
}

/** Memory a session holds, in bytes. */
export interface SessionMemory extends StateMemory {
  /** Bytes of the model's weights (shared by every session of the model). */
  weights: number;
  /** weights + ssm + conv + kv. */
  total: number;
}

/** A restorable copy of a session's state (GPU buffers; dispose when no longer needed). */
export interface SessionSnapshot {
  /** A GPU copy of every layer's state. */
  readonly state: ModelState;
  /** The last logits of each sequence, if any. */
  readonly logits: Float32Array[] | null;
  /** Every token fed so far, per sequence. */
  readonly history: number[][];
  /** Tokens generated but not yet fed to the model (see {@link Session.unconsumed}). */
  readonly unconsumed: number[] | null;
  /** Frees the snapshot's GPU buffers (the session is not affected). */
  dispose(): void;
}

const MAGIC = 0x32535353; // "SSS2" little-endian
const BLOB_VERSION = 2;



/**
 * A conversation (or a batch of them) with a model.
 *
 * @example
 * ```ts
 * const session = new Session(model);
 * for await (const token of session.generate([3, 1, 4], { maxNewTokens: 16 })) process.stdout.write(`${token} `);
 * const saved = session.snapshot();
 * session.reset();
 * session.restore(saved); // continue exactly where we were
 * ```
 */
export class Session {
  /** Number of independent sequences this session runs (default 1). */
  readonly batch: number;
  private state: ModelState;
  private lastLogits: Float32Array[] | null = null;
  private history: number[][];
  private disposed = false;
  /** Prompt tokens per forward pass of prefill and generate (0 = one pass). */
  readonly prefillChunk: number;

  /**
   * Starts from an empty state. Several sessions can share one model.
   *
   * @param model - A loaded ({@link loadModel}) or composed ({@link composeModel}) model.
   * @param options - `batch`: independent sequences run together (default 1); `prefillChunk`:
   *   prompt tokens per forward pass (default {@link DEFAULT_PREFILL_CHUNK}, 0 = one pass).
   */
  constructor(
    /** The model this session runs. */
    readonly model: HybridModel,
    options: SessionOptions = {},
  ) {
    this.batch = options.batch ?? 1;
    if (!Number.isInteger(this.batch) || this.batch < 1) throw new StatespaceError('INVALID_ARGUMENT', `Session: batch must be a positive integer, got ${options.batch}`);
    this.prefillChunk = checkChunk('Session', options.prefillChunk ?? DEFAULT_PREFILL_CHUNK);
    this.state = model.createState(this.batch);
    this.history = Array.from({ length: this.batch }, () => []);
  }

  private get runtime(): Runtime {
    return this.model.runtime;
  }

  /** Tokens consumed so far (per sequence): during greedy generation, the tokens before the one last returned. */
  get length(): number {
    return this.state.length - this.ahead;
  }

  // Steps recorded past the tokens returned so far (greedy generation with tokens in flight).
  private ahead = 0;

  private check(): void {
    if (this.disposed) throw new StatespaceError('DESTROYED', 'this Session was disposed');
  }

  private toBatch(ids: readonly number[] | readonly (readonly number[])[]): number[][] {
    if (!Array.isArray(ids)) throw new StatespaceError('INVALID_ARGUMENT', `Session: token ids must be an array of integers (or one array per sequence), got ${typeof ids}`);
    const nested = ids.length > 0 && Array.isArray(ids[0]);
    const given = (nested ? ids : [ids]) as unknown[];
    const rows = given.map((r) => {
      if (!Array.isArray(r)) throw new StatespaceError('INVALID_ARGUMENT', 'Session: every sequence must be an array of token ids');
      return [...r] as unknown[];
    });
    if (rows.length !== this.batch) throw new StatespaceError('SHAPE_MISMATCH', `Session: ${rows.length} sequences given for a batch of ${this.batch}`);
    const T = rows[0].length;
    if (T === 0) throw new StatespaceError('INVALID_ARGUMENT', 'Session: a prompt needs at least one token');
    const V = this.model.spec.vocabSize;
    for (const r of rows) {
      if (r.length !== T) throw new StatespaceError('SHAPE_MISMATCH', 'Session: every sequence of a batch must have the same length');
      for (const id of r) {
        if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= V) throw new StatespaceError('TOKEN_OUT_OF_RANGE', `Session: token id ${String(id)} is outside the vocabulary [0, ${V})`);
      }
    }
    return rows as number[][];
  }

  /** Puts the tokens the last generate call produced but did not feed in front of `rows` (or alone). */
  private takeCarried(rows: number[][] | null): number[][] | null {
    const carried = this.feedAfterGenerate;
    if (!carried) return rows;
    this.feedAfterGenerate = null;
    return carried.map((t, b) => [t, ...(rows?.[b] ?? [])]);
  }

  /** Runs tokens through the model; returns the logits tensor (batch, T or 1, vocab), recorded but not read. */
  private run(rows: number[][], which: 'all' | 'last'): Tensor {
    this.check();
    const rt = this.runtime;
    const T = rows[0].length;
    const ids = rt.upload(Int32Array.from(rows.flat()), [this.batch, T], 'i32', 'ids');
    const logits = this.model.forward(ids, this.state, which);
    ids.dispose();
    rows.forEach((r, b) => this.history[b].push(...r));
    return logits;
  }

  /**
   * Feeds a prompt in forward passes of `chunk` tokens (0: one pass), each continuing from the
   * state the previous one left; only the last pass computes logits (batch, 1, vocab), returned
   * recorded but not read. Each pass but the last is waited for, which bounds the work in
   * flight to one pass and lets `onProgress` report tokens the GPU has actually fed.
   */
  private async runPrompt(rows: number[][], chunk: number, onProgress?: (progress: PrefillProgress) => void): Promise<Tensor> {
    const T = rows[0].length;
    const step = chunk > 0 ? chunk : T;
    for (let done = 0; done < T; done += step) {
      const end = Math.min(T, done + step);
      const part = end - done === T ? rows : rows.map((r) => r.slice(done, end));
      const logits = this.run(part, 'last');
      if (end === T) {
        onProgress?.({ done: end, total: T });
        return logits;
      }
      logits.dispose();
      await this.runtime.sync();
      onProgress?.({ done: end, total: T });
    }
    throw new StatespaceError('INVALID_ARGUMENT', 'Session: a prompt needs at least one token');
  }

  /** Reads the last logits (batch, 1, vocab) into lastLogits; `keep` leaves the tensor (the decode engine owns it). */
  private async readLast(logits: Tensor, keep = false): Promise<Float32Array[]> {
    const V = this.model.spec.vocabSize;
    const all = await this.runtime.readFloat(logits);
    if (!keep) logits.dispose();
    this.lastLogits = Array.from({ length: this.batch }, (_, b) => all.slice(b * V, (b + 1) * V));
    return this.lastLogits;
  }

  /**
   * Feeds a prompt (one sequence, or one per batch entry) and returns the logits
   * of the last position of each sequence. Continues from the current state. A
   * prompt longer than `prefillChunk` runs in passes of that many tokens (the
   * same logits as one pass, activations bounded by the chunk).
   *
   * @example
   * ```ts
   * const session = new Session(model, { prefillChunk: 4096 });
   * const [logits] = await session.prefill(longPrompt, { onProgress: ({ done, total }) => console.log(`${done}/${total}`) });
   * ```
   */
  async prefill(ids: readonly number[] | readonly (readonly number[])[], options: PrefillOptions = {}): Promise<Float32Array[]> {
    const chunk = checkChunk('Session.prefill', options.prefillChunk ?? this.prefillChunk);
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new StatespaceError('INVALID_ARGUMENT', 'Session.prefill: onProgress must be a function');
    const rows = this.takeCarried(this.toBatch(ids))!;
    return this.readLast(await this.runPrompt(rows, chunk, options.onProgress));
  }

  /** Feeds one token per sequence (decode step) and returns the next logits. */
  async step(tokens: number | readonly number[]): Promise<Float32Array[]> {
    this.check();
    const t = typeof tokens === 'number' ? [tokens] : tokens;
    if (!Array.isArray(t)) throw new StatespaceError('INVALID_ARGUMENT', `Session.step: expected a token id or one per sequence, got ${typeof tokens}`);
    const rows = this.takeCarried(this.toBatch(t.map((x) => [x])))!;
    if (rows[0].length > 1) return this.readLast(this.run(rows, 'last'));
    const engine = this.decodeEngine();
    this.runtime.write(engine.ids, Int32Array.from(rows.map((r) => r[0])));
    const logits = engine.step('logits');
    rows.forEach((r, b) => this.history[b].push(...r));
    return this.readLast(logits, true);
  }

  /** Logits at every position of a prompt (batch, T, vocab) as one array per sequence, (T × vocab) row-major. */
  async logitsAll(ids: readonly number[] | readonly (readonly number[])[]): Promise<Float32Array[]> {
    const given = this.toBatch(ids);
    const rows = this.takeCarried(given)!;
    const T = rows[0].length;
    const skip = T - given[0].length; // a carried token's logits are not asked for
    const V = this.model.spec.vocabSize;
    const logits = this.run(rows, 'all');
    const all = await this.runtime.readFloat(logits);
    logits.dispose();
    this.lastLogits = rows.map((_, b) => all.slice((b * T + T - 1) * V, (b * T + T) * V));
    return rows.map((_, b) => all.slice((b * T + skip) * V, (b + 1) * T * V));
  }

  /**
   * Streams new tokens for one sequence (batch 1): prefill `prompt` (if given,
   * continuing the state), then decode until a stop token, maxNewTokens or the signal.
   */
  async *generate(prompt: readonly number[] | null, options: GenerateOptions = {}): AsyncGenerator<number, void, undefined> {
    if (this.batch !== 1) throw new StatespaceError('INVALID_ARGUMENT', 'Session.generate streams one sequence; use generateBatch for batch > 1');
    for await (const tokens of this.generateBatch(prompt ? [prompt] : null, options)) yield tokens[0];
  }

  /** Like {@link generate} for every sequence of the batch at once; yields one token per sequence per step. */
  async *generateBatch(prompts: readonly (readonly number[])[] | null, options: GenerateOptions = {}): AsyncGenerator<number[], void, undefined> {
    this.check();
    validateGenerateOptions(options);
    const max = options.maxNewTokens ?? 64;
    const stops = new Set(options.stopTokens ?? (options.ignoreEos ? [] : (this.model.spec.eosTokenIds ?? [])));
    const greedy = (options.greedy || !options.temperature) && (options.repetitionPenalty ?? 1) === 1;
    // Tokens the previous generate call produced but did not feed come first.
    const input = this.takeCarried(prompts ? this.toBatch(prompts) : null);
    if (!input && !this.lastLogits) throw new StatespaceError('INVALID_ARGUMENT', 'Session.generate: no prompt given and nothing prefilled yet');
    const sampling = greedy
      ? null
      : { ...samplerSettings(options), seed: options.seed ?? randomSeed() };
    yield* this.generateOnDevice(input, max, stops, options, sampling);
  }

  /** The decode engine of the current state (made on first use, dropped when the state is replaced). */
  private decodeEngine(): DecodeEngine {
    if (!this.engine) this.engine = new DecodeEngine(this.model, this.state, { usePlans: this.usePlans });
    return this.engine;
  }

  private dropEngine(): void {
    this.engine?.dispose();
    this.engine = null;
  }

  /**
   * Capture and replay decode steps (default true). False records every step through the
   * kernels, which is the reference the plan path is tested against.
   */
  get usePlans(): boolean {
    return this.plansOn;
  }

  set usePlans(on: boolean) {
    this.plansOn = on;
    if (this.engine) this.engine.usePlans = on;
  }

  /** Counters of the decode engine: replayed, captured and eager steps, dispatches per replay. */
  decodeStats(): DecodeEngineStats | null {
    return this.engine ? { ...this.engine.stats } : null;
  }

  private async readIds(t: Tensor): Promise<number[]> {
    return Array.from(new Int32Array(await this.runtime.readBytes(t.buffer, this.batch * 4)));
  }

  /** Decoding with each token chosen on the GPU (argmax or a sampler) and several steps in flight. */
  private async *generateOnDevice(
    input: number[][] | null,
    max: number,
    stops: Set<number>,
    options: GenerateOptions,
    sampling: TokenSamplingParams | null,
  ): AsyncGenerator<number[], void, undefined> {
    const rt = this.runtime;
    const engine = this.decodeEngine();
    const depth = options.inFlight ?? 3;
    const chosen: Promise<number[]>[] = [];
    let logits = input ? await this.runPrompt(input, options.prefillChunk ?? this.prefillChunk, options.onProgress) : null;
    // A sampler is made after the prompt is fed, so its repetition penalty sees the prompt.
    const select = sampling ? new GpuSampler(rt, this.batch, this.model.spec.vocabSize, sampling, this.history) : ('argmax' as const);
    try {
      if (!logits && select !== 'argmax') {
        // Continuing from host logits (after prefill or step): the sampler draws from them on the GPU too.
        const V = this.model.spec.vocabSize;
        const host = new Float32Array(this.batch * V);
        this.lastLogits!.forEach((r, b) => host.set(r.subarray(0, V), b * V));
        logits = rt.upload(host, [this.batch, V], 'f32', 'decode.lastLogits');
      }
      if (logits) {
        const first = rt.empty([this.batch, 1], 'i32', 'decode.first');
        if (select === 'argmax') argmax(rt, logits, { out: first });
        else select.choose(logits, first);
        logits.dispose();
        rt.copy(first, engine.ids, this.batch * 4);
        chosen.push(this.readIds(first));
        first.dispose();
      } else {
        const ids = this.lastLogits!.map((row) => argmaxHost(row));
        rt.write(engine.ids, Int32Array.from(ids));
        chosen.push(Promise.resolve(ids));
      }
      this.lastLogits = null;
      yield* this.decodeInFlight(engine, select, chosen, depth, max, stops, options);
    } finally {
      if (select !== 'argmax') select.dispose();
    }
  }

  private async *decodeInFlight(
    engine: DecodeEngine,
    select: 'argmax' | GpuSampler,
    chosen: Promise<number[]>[],
    depth: number,
    max: number,
    stops: Set<number>,
    options: GenerateOptions,
  ): AsyncGenerator<number[], void, undefined> {
    // Steps fed past the tokens returned are undone at a stop or a cancellation.
    const mark = depth > 1 ? this.state.checkpoint() : null;
    let settled = false;
    const finish = (fed: number, carried: number[] | null) => {
      settled = true;
      this.settle(mark, emitted, submitted, fed, carried);
    };
    const emitted: number[][] = [];
    let submitted = 0; // decode steps recorded; step j feeds token j-1
    const done = new Array(this.batch).fill(false);
    try {
      for (let i = 0; i < max; i++) {
        while (submitted < max - 1 && chosen.length < depth) {
          const out = engine.step(select);
          submitted++;
          chosen.push(this.readIds(out));
        }
        const next = await chosen.shift()!;
        if (options.signal?.aborted) {
          finish(emitted.length, null);
          return;
        }
        emitted.push(next);
        this.ahead = submitted - i;
        yield next;
        this.ahead = 0;
        next.forEach((t, b) => {
          if (stops.has(t)) done[b] = true;
        });
        if (done.every(Boolean) || i === max - 1) {
          finish(i, next);
          return;
        }
        if (options.signal?.aborted) {
          finish(i + 1, null);
          return;
        }
      }
    } finally {
      this.ahead = 0;
      // The caller stopped iterating (break): the last token returned is carried, like a stop token.
      if (!settled && emitted.length > 0) finish(emitted.length - 1, emitted[emitted.length - 1]);
      // Reads still in flight resolve on their own; nothing waits for them.
      for (const p of chosen) p.catch(() => undefined);
      mark?.dispose();
    }
  }

  /**
   * Leaves the state having consumed exactly the first `fed` emitted tokens (rolling back
   * steps recorded past them) and `carried` as the tokens the next call feeds first.
   */
  private settle(mark: ReturnType<ModelState['checkpoint']> | null, emitted: number[][], submitted: number, fed: number, carried: number[] | null): void {
    if (submitted > fed) {
      if (!mark) throw new StatespaceError('INTERNAL', 'Session: steps in flight past a stop without a checkpoint');
      this.dropEngine();
      this.state.rollback(mark);
      if (fed > 0) {
        const rows = Array.from({ length: this.batch }, (_, b) => emitted.slice(0, fed).map((t) => t[b]));
        const ids = this.runtime.upload(Int32Array.from(rows.flat()), [this.batch, fed], 'i32', 'ids');
        this.model.forward(ids, this.state, 'last').dispose();
        ids.dispose();
      }
    }
    for (let k = 0; k < fed; k++) emitted[k].forEach((t, b) => this.history[b].push(t));
    this.feedAfterGenerate = carried;
  }

  // Tokens produced by the last generate call that the state has not consumed yet.
  private feedAfterGenerate: number[] | null = null;
  private engine: DecodeEngine | null = null;
  private plansOn = true;

  /**
   * Tokens the last generate call produced but did not feed back yet (its final
   * token). The next prefill, step, logitsAll or generate feeds them first, so
   * the text continues where it stopped.
   */
  get unconsumed(): number[] | null {
    return this.feedAfterGenerate;
  }

  /** An independent copy of the state (GPU copies; no host round trip for SSM states). */
  snapshot(): SessionSnapshot {
    this.check();
    const state = this.state.clone();
    const logits = this.lastLogits ? this.lastLogits.map((r) => r.slice()) : null;
    const unconsumed = this.feedAfterGenerate ? [...this.feedAfterGenerate] : null;
    return { state, logits, history: this.history.map((h) => [...h]), unconsumed, dispose: () => state.dispose() };
  }

  /** Makes the session continue from a snapshot (the snapshot stays usable). */
  restore(snapshot: SessionSnapshot): void {
    this.check();
    if (snapshot.state.batch !== this.batch) throw new StatespaceError('SHAPE_MISMATCH', `restore: snapshot has batch ${snapshot.state.batch}, session has ${this.batch}`);
    this.dropEngine();
    this.state.dispose();
    this.state = snapshot.state.clone();
    this.lastLogits = snapshot.logits ? snapshot.logits.map((r) => r.slice()) : null;
    this.history = snapshot.history.map((h) => [...h]);
    this.feedAfterGenerate = snapshot.unconsumed ? [...snapshot.unconsumed] : null;
  }

  /** Forgets everything: back to an empty context. */
  reset(): void {
    this.check();
    this.dropEngine();
    this.state.reset();
    this.lastLogits = null;
    this.history = this.history.map(() => []);
    this.feedAfterGenerate = null;
  }

  /** A second, independent session that starts from this one's current state. */
  fork(): Session {
    this.check();
    const s = new Session(this.model, { batch: this.batch, prefillChunk: this.prefillChunk });
    s.state.dispose();
    s.state = this.state.clone();
    s.lastLogits = this.lastLogits ? this.lastLogits.map((r) => r.slice()) : null;
    s.feedAfterGenerate = this.feedAfterGenerate ? [...this.feedAfterGenerate] : null;
    s.history = this.history.map((h) => [...h]);
    return s;
  }

  /**
   * Serialises the whole state (every layer's SSM/conv state or KV cache, the last logits and
   * the history) to bytes: format 2, "SSS2" + version + a JSON header naming the model (its
   * architecture and a hash of its spec and state layout) + the layers + an FNV-1a checksum.
   */
  async save(): Promise<Uint8Array> {
    this.check();
    const logits = this.lastLogits;
    const layers = await Promise.all(this.state.layers.map((s) => s.save()));
    const header = new TextEncoder().encode(
      JSON.stringify({
        batch: this.batch, length: this.state.length, history: this.history, unconsumed: this.feedAfterGenerate, vocab: this.model.spec.vocabSize,
        layers: layers.map((l) => l.byteLength), logits: !!logits, architecture: this.model.spec.architecture, model: this.modelIdentity(),
      }),
    );
    const V = this.model.spec.vocabSize;
    const body = 12 + header.byteLength + layers.reduce((a, l) => a + l.byteLength, 0) + (logits ? this.batch * V * 4 : 0);
    const out = new Uint8Array(body + 4);
    const view = new DataView(out.buffer);
    view.setUint32(0, MAGIC, true);
    view.setUint32(4, BLOB_VERSION, true);
    view.setUint32(8, header.byteLength, true);
    out.set(header, 12);
    let o = 12 + header.byteLength;
    for (const l of layers) {
      out.set(l, o);
      o += l.byteLength;
    }
    if (logits) for (const r of logits) (out.set(new Uint8Array(r.buffer, r.byteOffset, r.byteLength), o), (o += r.byteLength));
    view.setUint32(body, fnv1a(out.subarray(0, body)), true);
    return out;
  }

  /** A hash of what a saved state must match: the model's spec and every layer's state layout. */
  private modelIdentity(): string {
    const layout = this.state.layers.map((l) => {
      const m = l.memory();
      return `${l.constructor.name}:${m.ssm}:${m.conv}`;
    });
    const text = JSON.stringify({ spec: this.model.spec, weights: this.model.fingerprint, layout, batch: this.batch });
    return fnv1a(new TextEncoder().encode(text)).toString(16).padStart(8, '0');
  }

  /**
   * Restores what {@link save} wrote for the same model and batch. Anything else (another
   * model, a truncated or altered blob, an older format) is refused with `STATE_INVALID`
   * and the session is left as it was.
   */
  load(bytes: Uint8Array): void {
    this.check();
    const bad = (why: string): never => {
      throw new StatespaceError('STATE_INVALID', `Session.load: ${why}`);
    };
    if (!(bytes instanceof Uint8Array)) bad('expected the Uint8Array that save() returned');
    if (bytes.byteLength < 16) bad('these bytes are not a saved statespace session (too short)');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0, true) !== MAGIC) bad('these bytes are not a saved statespace session (no SSS2 magic)');
    const version = view.getUint32(4, true);
    if (version !== BLOB_VERSION) bad(`format version ${version} is not supported (this build reads version ${BLOB_VERSION}); save the session again`);
    const body = bytes.byteLength - 4;
    if (view.getUint32(body, true) !== fnv1a(bytes.subarray(0, body))) bad('checksum mismatch: the blob is truncated or corrupted');
    const n = view.getUint32(8, true);
    if (12 + n > body) bad('header length runs past the end');
    let meta: { batch: number; length: number; history: number[][]; unconsumed: number[] | null; vocab: number; layers: number[]; logits: boolean; architecture: string; model: string };
    try {
      meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(12, 12 + n)));
    } catch (cause) {
      throw new StatespaceError('STATE_INVALID', 'Session.load: corrupt session header', { cause });
    }
    const V = this.model.spec.vocabSize;
    const isIds = (a: unknown, len?: number): a is number[] => Array.isArray(a) && (len === undefined || a.length === len) && a.every((t) => Number.isInteger(t) && t >= 0 && t < V);
    if (typeof meta !== 'object' || meta === null) bad('corrupt session header');
    if (meta.model !== this.modelIdentity() || meta.batch !== this.batch || meta.vocab !== V) {
      bad(`saved for another model or batch (${String(meta.architecture)}, batch ${String(meta.batch)}), not this ${this.model.spec.architecture} session of batch ${this.batch}`);
    }
    if (!Array.isArray(meta.layers) || meta.layers.length !== this.state.layers.length || !meta.layers.every((l) => Number.isInteger(l) && l >= 0)) bad('layer table does not match the model');
    if (!Number.isInteger(meta.length) || meta.length < 0) bad('bad length');
    if (!Array.isArray(meta.history) || meta.history.length !== this.batch || !meta.history.every((h) => isIds(h))) bad('bad history');
    if (meta.unconsumed !== null && meta.unconsumed !== undefined && !isIds(meta.unconsumed, this.batch)) bad('bad unconsumed tokens');
    const logitBytes = meta.logits === true ? this.batch * V * 4 : 0;
    if (12 + n + meta.layers.reduce((a, l) => a + l, 0) + logitBytes !== body) bad('the layer sizes do not add up to the blob');
    // Load into a fresh state; the session's own state is replaced only when every layer took its part.
    const fresh = this.model.createState(this.batch);
    try {
      let o = 12 + n;
      meta.layers.forEach((len, i) => {
        fresh.layers[i].load(bytes.slice(o, o + len));
        if (fresh.layers[i].length !== meta.length) bad(`layer ${i} holds ${fresh.layers[i].length} tokens, the session ${meta.length}`);
        o += len;
      });
      fresh.length = meta.length;
      this.dropEngine();
      this.state.dispose();
      this.state = fresh;
      this.history = meta.history.map((h) => [...h]);
      this.lastLogits = meta.logits === true ? Array.from({ length: this.batch }, (_, b) => new Float32Array(bytes.slice(o + b * V * 4, o + (b + 1) * V * 4).buffer)) : null;
      this.feedAfterGenerate = meta.unconsumed ? [...meta.unconsumed] : null;
    } catch (err) {
      if (fresh !== this.state) fresh.dispose();
      if (StatespaceError.is(err)) throw err;
      throw new StatespaceError('STATE_INVALID', `Session.load: ${String(err)}`, { cause: err });
    }
  }

  /** Bytes held by weights, SSM states, conv states and KV caches. */
  memory(): SessionMemory {
    const s = this.state.memory();
    const weights = this.model.weightBytes();
    return { ...s, weights, total: weights + s.ssm + s.conv + s.kv };
  }

  /** Frees the session's state (the model stays). */
  dispose(): void {
    if (this.disposed) return;
    this.dropEngine();
    this.state.dispose();
    this.disposed = true;
  }
}
