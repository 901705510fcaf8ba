/**
 * The fixed-size state of a recurrent mixer (Mamba-1, Mamba-2, Gated DeltaNet):
 * the last k-1 inputs of its causal conv and its SSM / delta-rule state, both
 * f32 on the GPU. Its size never depends on how many tokens were consumed.
 */
import { StatespaceError } from './errors.js';
import { type MixerState, type StateMemory, packState, unpackState } from './layer.js';
import type { Runtime } from './runtime.js';
import type { Tensor } from './tensor.js';

/**
 * Conv state + SSM state with clone, reset and save/load. Mixer packages
 * subclass it by name (`class Mamba2State extends RecurrentState {}`).
 *
 * @example
 * ```ts
 * const state = new RecurrentState(rt, 1, { conv: [1, 1536, 3], ssm: [1, 1536, 16] }, 'mamba1');
 * const copy = state.clone();       // independent GPU copies
 * const bytes = await state.save(); // later: other.load(bytes)
 * ```
 */
export class RecurrentState implements MixerState {
  readonly batch: number;
  /** (batch, channels, k-1): the last k-1 inputs of the causal conv. */
  readonly conv: Tensor;
  /** The recurrent state, e.g. (batch, d_inner, d_state) or (batch, heads, head_dim, d_state). */
  readonly ssm: Tensor;
  private tokens = 0;

  constructor(
    protected readonly runtime: Runtime,
    batch: number,
    shapes: { conv: readonly number[]; ssm: readonly number[] },
    /** Prefix of the GPU buffer labels. */
    readonly label: string,
  ) {
    this.batch = batch;
    this.conv = runtime.zeros(shapes.conv, 'f32', `${label}.convState`);
    this.ssm = runtime.zeros(shapes.ssm, 'f32', `${label}.ssmState`);
  }

  get length(): number {
    return this.tokens;
  }

  /** @internal Called by the mixer after a forward of `n` tokens. */
  advance(n: number): void {
    this.tokens += n;
  }

  /** Every decode step of a recurrent state records the same commands. */
  decodeSignature(): string {
    return '';
  }

  /** @internal A replayed decode plan advanced the state by `tokens` tokens on the GPU. */
  advanceReplayed(tokens: number): void {
    this.tokens += tokens;
  }

  /** Overwrites this state with `other`'s (same shapes), recorded on the GPU. */
  copyFrom(other: RecurrentState): void {
    if (this.conv.byteSize) this.runtime.copy(other.conv, this.conv, this.conv.byteSize);
    if (this.ssm.byteSize) this.runtime.copy(other.ssm, this.ssm, this.ssm.byteSize);
    this.tokens = other.tokens;
  }

  memory(): StateMemory {
    return { ssm: this.ssm.byteSize, conv: this.conv.byteSize, kv: 0 };
  }

  /** An independent copy of the same class (GPU buffer copies, no host round trip). */
  clone(): this {
    const Ctor = this.constructor as new (runtime: Runtime, batch: number, shapes: { conv: readonly number[]; ssm: readonly number[] }, label: string) => this;
    const copy = new Ctor(this.runtime, this.batch, { conv: this.conv.shape, ssm: this.ssm.shape }, this.label);
    if (this.conv.byteSize) this.runtime.copy(this.conv, copy.conv, this.conv.byteSize);
    if (this.ssm.byteSize) this.runtime.copy(this.ssm, copy.ssm, this.ssm.byteSize);
    copy.tokens = this.tokens;
    return copy;
  }

  reset(): void {
    this.runtime.clear(this.conv);
    this.runtime.clear(this.ssm);
    this.tokens = 0;
  }

  async save(): Promise<Uint8Array> {
    const conv = this.conv.byteSize ? await this.runtime.readBytes(this.conv.buffer, this.conv.byteSize) : new ArrayBuffer(0);
    const ssm = this.ssm.byteSize ? await this.runtime.readBytes(this.ssm.buffer, this.ssm.byteSize) : new ArrayBuffer(0);
    return packState(this.tokens, [conv, ssm]);
  }

  load(bytes: Uint8Array): void {
    const { length, parts } = unpackState(bytes);
    if (parts.length !== 2 || parts[0].byteLength !== this.conv.byteSize || parts[1].byteLength !== this.ssm.byteSize) {
      throw new StatespaceError(
        'STATE_MISMATCH',
        `${this.constructor.name}.load: the saved state holds parts of [${parts.map((p) => p.byteLength).join(', ')}] bytes, this one needs a conv state of ${this.conv.byteSize} and an SSM state of ${this.ssm.byteSize} bytes (same layer config and batch)`,
      );
    }
    if (parts[0].byteLength) this.runtime.write(this.conv, new Float32Array(parts[0].slice().buffer));
    if (parts[1].byteLength) this.runtime.write(this.ssm, new Float32Array(parts[1].slice().buffer));
    this.tokens = length;
  }

  dispose(): void {
    this.conv.dispose();
    this.ssm.dispose();
  }
}
