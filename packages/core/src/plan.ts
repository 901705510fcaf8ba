/**
 * Captured command plans: what one decode token records (pipelines, bind groups, uniform
 * contents, workgroup counts, buffer copies), kept so the token can be recorded again with
 * no kernel factory, allocation, string building or bind-group creation on the way.
 * (The anchor is onnxruntime-web's `captureBegin` / `replay` in `jsep/backend-webgpu.ts`.)
 *
 * Two captures of consecutive tokens with the same structure differ only in a few uniform
 * words (a query position, a KV length, a RoPE row), each by the same integer step per token.
 * {@link CapturedPlan.continueFrom} finds those words; each later replay advances them by
 * their step and writes them with one `writeBuffer`.
 */
import { StatespaceError } from './errors.js';
import type { Tensor } from './tensor.js';

/** One recorded command. */
export type PlanCommand =
  | {
      readonly kind: 'dispatch';
      readonly name: string;
      readonly pipeline: GPUComputePipeline;
      /** Its buffers, and its uniform block at a fixed offset of the plan's uniform buffer (no dynamic offset: cheaper to record). */
      readonly bindGroup: GPUBindGroup;
      readonly x: number;
      readonly y: number;
      readonly z: number;
      /** Pipeline, dispatch size and bound buffers, for comparing two captures. */
      readonly key: string;
    }
  | { readonly kind: 'copy'; readonly src: GPUBuffer; readonly srcOffset: number; readonly dst: GPUBuffer; readonly dstOffset: number; readonly bytes: number; readonly key: string }
  | { readonly kind: 'clear'; readonly buffer: GPUBuffer; readonly bytes: number; readonly key: string };

/** Options of {@link Runtime.beginCapture}. */
export interface CaptureOptions {
  /**
   * The plan of the previous token: its buffers are handed to this capture in the order it
   * took them, so the same kernels bind the same buffers and the two can be compared.
   * That plan is spent afterwards (dispose it; it must not be replayed).
   */
  continues?: CapturedPlan;
}

/** What the runtime hands a {@link CapturedPlan}. */
export interface CapturedPlanParts {
  commands: PlanCommand[];
  uniformBuffer: GPUBuffer;
  uniforms: Uint32Array;
  types: Uint8Array;
  arena: GPUBuffer[];
  output: Tensor | null;
  tainted: string | null;
}

/** The part of the runtime a plan needs. */
export interface PlanOwner {
  readonly device: GPUDevice;
  returnToPool(buffer: GPUBuffer): void;
  untrack(buffer: GPUBuffer): void;
  /** Submits what is recorded (a destroyed buffer must not sit in an unsubmitted command buffer). */
  flush(): void;
}

const WORD_F32 = 2;

/**
 * A recorded sequence of GPU commands, made by {@link Runtime.beginCapture} /
 * {@link Runtime.endCapture} and recorded again by {@link Runtime.replay}.
 *
 * @example
 * ```ts
 * rt.beginCapture();
 * const y = step(x);                       // kernels record into the capture
 * const plan = rt.endCapture(y);
 * rt.beginCapture({ continues: plan });
 * const next = rt.endCapture(step(x));     // the next token, same buffers
 * if (next.continueFrom(plan) === null) {  // only integer uniforms moved, by a fixed step
 *   next.advance();
 *   rt.replay(next);                       // the token after
 * }
 * plan.dispose();
 * ```
 */
export class CapturedPlan {
  /** The commands, in order. */
  readonly commands: readonly PlanCommand[];
  /** The tensor every replay writes (the capture's result), or null. */
  readonly output: Tensor | null;
  /** Why the capture cannot be replayed (a write or read happened inside it), or null. */
  readonly tainted: string | null;
  private readonly owner: PlanOwner;
  private readonly uniformBuffer: GPUBuffer;
  private readonly uniforms: Uint32Array;
  private readonly base: Uint32Array;
  private readonly types: Uint8Array;
  private arena: GPUBuffer[];
  private dynamicWords = new Uint32Array(0);
  private dynamicSteps = new Int32Array(0);
  private lo = 0;
  private hi = 0;
  private steps = 0;
  private state: 'live' | 'spent' | 'disposed' = 'live';

  constructor(owner: PlanOwner, parts: CapturedPlanParts) {
    this.owner = owner;
    this.commands = parts.commands;
    this.uniformBuffer = parts.uniformBuffer;
    this.uniforms = parts.uniforms;
    this.base = parts.uniforms.slice();
    this.types = parts.types;
    this.arena = parts.arena;
    this.output = parts.output;
    this.tainted = parts.tainted;
  }

  /** Number of dispatches (and copies) one replay records. */
  get size(): number {
    return this.commands.length;
  }

  /** Whether replays rewrite uniform words (positions that move every token). */
  get hasDynamicUniforms(): boolean {
    return this.dynamicWords.length > 0;
  }

  /** Replays made since the capture (advanced with {@link advance}). */
  get replays(): number {
    return this.steps;
  }

  /**
   * Compares this capture with the capture of the token before it (`previous`). Returns
   * null when this plan can be replayed for the tokens after it (the same commands on the
   * same buffers, only integer uniform words changed, each by a step then applied per
   * replay), or the reason it cannot.
   */
  continueFrom(previous: CapturedPlan): string | null {
    if (this.tainted) return this.tainted;
    if (previous.tainted) return previous.tainted;
    if (previous.commands.length !== this.commands.length) return `${previous.commands.length} commands, then ${this.commands.length}`;
    for (let i = 0; i < this.commands.length; i++) {
      if (previous.commands[i].key !== this.commands[i].key) return `command ${i} changed: ${previous.commands[i].key} -> ${this.commands[i].key}`;
    }
    if (previous.base.length !== this.base.length) return 'uniform blocks changed size';
    const words: number[] = [];
    const steps: number[] = [];
    for (let w = 0; w < this.base.length; w++) {
      if (previous.base[w] === this.base[w]) continue;
      if (this.types[w] === WORD_F32) return `float uniform word ${w} changed between tokens`;
      words.push(w);
      steps.push((this.base[w] - previous.base[w]) | 0);
    }
    this.dynamicWords = Uint32Array.from(words);
    this.dynamicSteps = Int32Array.from(steps);
    this.lo = words.length ? words[0] : 0;
    this.hi = words.length ? words[words.length - 1] + 1 : 0;
    return null;
  }

  /**
   * Moves the dynamic uniform words `tokens` tokens on (default one; call before each
   * {@link Runtime.replay}). More than one skips positions the state advanced outside the plan.
   */
  advance(tokens = 1): void {
    this.checkLive('advance');
    if (!Number.isInteger(tokens)) throw new StatespaceError('INVALID_ARGUMENT', `CapturedPlan.advance: tokens must be an integer, got ${tokens}`);
    this.steps += tokens;
    const n = this.steps;
    const words = this.dynamicWords;
    for (let i = 0; i < words.length; i++) {
      const w = words[i];
      this.uniforms[w] = (this.base[w] + n * this.dynamicSteps[i]) >>> 0;
    }
  }

  /** @internal Writes the dynamic words (the runtime calls it from {@link Runtime.replay}). */
  writeUniforms(): void {
    this.checkLive('replay');
    if (this.hi === 0) return;
    this.owner.device.queue.writeBuffer(this.uniformBuffer, this.lo * 4, this.uniforms.buffer, this.uniforms.byteOffset + this.lo * 4, (this.hi - this.lo) * 4);
  }

  /** @internal Hands the arena to the capture that continues this one; the plan is spent. */
  takeBuffers(): GPUBuffer[] {
    this.checkLive('continue');
    this.state = 'spent';
    const out = this.arena;
    this.arena = [];
    if (this.output) this.owner.untrack(this.output.buffer);
    return out;
  }

  private checkLive(what: string): void {
    if (this.state !== 'live') throw new StatespaceError('INVALID_STATE', `CapturedPlan: cannot ${what} a plan that is ${this.state}`);
  }

  /** Gives the plan's buffers back to the runtime's pool. Its output tensor must not be used afterwards. */
  dispose(): void {
    if (this.state === 'disposed') return;
    if (this.state === 'live' && this.output) this.owner.untrack(this.output.buffer);
    for (const b of this.arena) this.owner.returnToPool(b);
    this.arena = [];
    // This plan's last recording may not be submitted yet; destroy() waits only for submitted work.
    this.owner.flush();
    this.uniformBuffer.destroy();
    this.state = 'disposed';
  }
}
