/**
 * The decode engine: one decode step (embedding, every layer, the final norm, the lm head
 * and, for greedy decoding, the argmax that feeds the next step) captured once and replayed
 * every token. Per token the host only re-records the captured encoder calls and, where an
 * attention layer's positions move, rewrites those few uniform words with one writeBuffer.
 *
 * A plan is valid while the model state's decode signature stays the same (see
 * {@link MixerState.decodeSignature}): two consecutive captures under one signature are
 * compared, and when they differ only in integer uniforms the second is replayed with
 * those words stepped per token. A new KV page run, a flash-decoding chunk boundary, a
 * sliding window that moves a chunk, or a RoPE table that grows changes the signature and
 * triggers a recapture (two steps recorded as usual).
 */
import {
  type CapturedPlan,
  type Runtime,
  StatespaceError,
  type Tensor,
  type TensorLike,
  type TokenSamplerBuffers,
  type TokenSamplingParams,
  argmax,
  createTokenSamplerBuffers,
  sampleTokens,
} from '@statespace/core';
import type { HybridModel, ModelState } from './model.js';

let samplerIds = 0;

/**
 * Tokens sampled on the GPU for one run of decode steps: the settings, the tokens seen (for
 * the repetition penalty) and the draw counter of the random stream. Draw i of row b uses
 * `samplerUniform(seed, i, b)`; a replayed plan steps the counter in its uniforms.
 *
 * @example
 * ```ts
 * const sampler = new GpuSampler(rt, 1, vocab, { temperature: 0.8, topK: 0, topP: 0.95, penalty: 1, seed: 7 }, [prompt]);
 * const chosen = engine.step(sampler); // (1, 1) i32, also written to engine.ids
 * ```
 */
export class GpuSampler {
  /** Part of the decode signature: a plan binds this sampler's buffers. */
  readonly key: string;
  /** Draws made so far (the next draw's step). */
  draws = 0;
  private readonly buffers: TokenSamplerBuffers;

  constructor(
    private readonly runtime: Runtime,
    /** Rows (sequences). */
    readonly batch: number,
    /** Vocabulary entries a token is drawn from. */
    readonly vocab: number,
    /** Settings, fixed for the sampler's life. */
    readonly params: TokenSamplingParams,
    history: readonly (readonly number[])[] = [],
  ) {
    this.key = `sample#${++samplerIds}`;
    this.buffers = createTokenSamplerBuffers(runtime, batch, vocab, params.penalty !== 1 ? history : []);
  }

  /** Draws one token per row of `logits` into `out` (batch) i32. */
  choose(logits: TensorLike, out: TensorLike): void {
    sampleTokens(this.runtime, logits, out, this.buffers, this.params, this.draws, this.vocab);
    this.draws++;
  }

  /** Frees the sampler's buffers. */
  dispose(): void {
    for (const t of Object.values(this.buffers)) t.dispose();
  }
}

/** What a decode step returns: logits, or ids chosen on the GPU (argmax or a {@link GpuSampler}). */
export type DecodeSelection = 'argmax' | 'logits' | GpuSampler;

/** Counters of a {@link DecodeEngine} (for tests and the bench). */
export interface DecodeEngineStats {
  /** Steps recorded by a replayed plan. */
  replays: number;
  /** Steps recorded through the kernels while capturing. */
  captures: number;
  /** Steps recorded eagerly (no capture). */
  eager: number;
  /** Dispatches and copies one replay records (0 before the first plan). */
  planSize: number;
  /** Why the last capture could not become a plan, if it could not. */
  lastRefusal: string | null;
  /** Host milliseconds spent recording steps (replays, captures and eager steps together). */
  hostMs: number;
}

/**
 * Runs decode steps of one {@link ModelState}: the input ids (batch, 1) live in {@link ids};
 * with `argmax` selection each step writes its chosen ids there itself, so steps can be
 * recorded back to back without the host reading anything in between.
 *
 * @example
 * ```ts
 * const engine = new DecodeEngine(model, state);
 * rt.write(engine.ids, Int32Array.from([firstToken]));
 * for (let i = 0; i < 256; i++) {
 *   const chosen = engine.step('argmax');        // (batch, 1) i32, valid until the next step
 *   tokens.push(rt.read(chosen));                // in flight: resolved when the GPU gets there
 * }
 * engine.dispose();
 * ```
 */
export class DecodeEngine {
  /** The ids every step reads: (batch, 1) i32. */
  readonly ids: Tensor;
  /** Counters. */
  readonly stats: DecodeEngineStats = { replays: 0, captures: 0, eager: 0, planSize: 0, lastRefusal: null, hostMs: 0 };
  /** Capture and replay (default true; false records every step eagerly, the reference path). */
  usePlans: boolean;
  private readonly runtime: Runtime;
  private plan: CapturedPlan | null = null;
  private planKey = '';
  private ready = false;
  // The state length the plan's next replay is for (the state can move outside the engine).
  private planNext = -1;
  private eagerOut: Tensor | null = null;
  private refusals = 0;
  private cooldown = 0;
  private disposed = false;

  constructor(
    /** The model. */
    readonly model: HybridModel,
    /** The state the steps advance (the engine must be dropped when the state is replaced or reset). */
    readonly state: ModelState,
    options: { usePlans?: boolean } = {},
  ) {
    this.runtime = model.runtime;
    this.ids = this.runtime.zeros([state.batch, 1], 'i32', 'decode.ids');
    this.usePlans = options.usePlans ?? true;
  }

  private signature(select: DecodeSelection): string | null {
    let sig = typeof select === 'string' ? select : select.key;
    for (const layer of this.state.layers) {
      if (!layer.decodeSignature || !layer.advanceReplayed) return null;
      sig += `;${layer.decodeSignature()}`;
    }
    return sig;
  }

  private record(select: DecodeSelection): Tensor {
    const rt = this.runtime;
    const logits = this.model.forward(this.ids, this.state, 'last');
    if (select === 'logits') return logits;
    const chosen = rt.empty([this.state.batch, 1], 'i32', 'decode.chosen');
    if (select === 'argmax') argmax(rt, logits, { out: chosen });
    else select.choose(logits, chosen);
    logits.dispose();
    rt.copy(chosen, this.ids, this.state.batch * 4);
    return chosen;
  }

  /**
   * Records one decode step of every sequence from {@link ids}: returns logits (batch, 1, vocab)
   * or, with `argmax` or a {@link GpuSampler}, the chosen ids (batch, 1) i32, which are also
   * written to {@link ids}.
   * The tensor belongs to the engine and stays valid until the next step.
   */
  step(select: DecodeSelection): Tensor {
    const t0 = performance.now();
    try {
      return this.record1(select);
    } finally {
      this.stats.hostMs += performance.now() - t0;
    }
  }

  private record1(select: DecodeSelection): Tensor {
    if (this.disposed) throw new StatespaceError('DESTROYED', 'DecodeEngine: disposed');
    const rt = this.runtime;
    this.eagerOut?.dispose();
    this.eagerOut = null;
    const key = this.usePlans && this.cooldown === 0 ? this.signature(select) : null;
    // Tokens fed outside the engine since the last step (a carried token, a prefill) move the
    // positions: an argmax or logits plan skips them; a sampler's draw counter would move too.
    const skipped = this.state.length - this.planNext;
    if (key !== null && this.plan && this.ready && key === this.planKey && (skipped === 0 || typeof select === 'string')) {
      this.plan.advance(1 + skipped);
      rt.replay(this.plan);
      for (const layer of this.state.layers) layer.advanceReplayed!(1);
      if (typeof select !== 'string') select.draws++; // the plan stepped the draw in its uniforms
      this.state.length += 1;
      this.planNext = this.state.length;
      this.stats.replays++;
      return this.plan.output!;
    }
    if (key === null) {
      if (this.cooldown > 0) this.cooldown--;
      this.dropPlan();
      this.stats.eager++;
      this.eagerOut = this.record(select);
      return this.eagerOut;
    }
    // Capture: continue the previous capture if it was made under the same signature, for the token before.
    const previous = this.plan && !this.ready && this.planKey === key && skipped === 0 ? this.plan : null;
    if (!previous) this.dropPlan();
    rt.beginCapture({ continues: previous ?? undefined });
    let out: Tensor;
    try {
      out = this.record(select);
    } catch (err) {
      rt.endCapture().dispose();
      previous?.dispose();
      this.plan = null;
      throw err;
    }
    const plan = rt.endCapture(out);
    this.planNext = this.state.length;
    this.stats.captures++;
    let refusal: string | null = plan.tainted;
    if (previous) {
      refusal = plan.continueFrom(previous);
      previous.dispose();
    }
    this.plan = plan;
    this.planKey = key;
    this.ready = previous !== null && refusal === null;
    this.stats.lastRefusal = refusal;
    if (this.ready) {
      this.refusals = 0;
      this.stats.planSize = plan.size;
    } else if (refusal !== null && ++this.refusals >= 3) {
      // Steps that never repeat (a RoPE table rebuilt every token, say): stop trying for a while.
      this.refusals = 0;
      this.cooldown = 64; // the next step drops the plan (its output is returned now)
    }
    return out;
  }

  private dropPlan(): void {
    this.plan?.dispose();
    this.plan = null;
    this.ready = false;
  }

  /** Frees the plan, the ids and the last output. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.dropPlan();
    this.eagerOut?.dispose();
    this.eagerOut = null;
    this.ids.dispose();
  }
}
