/**
 * The layer scheduler: builds every block of a {@link ModelSpec} from weights
 * and runs the stack. Buffers come from the runtime's pool (activations of one
 * layer are reused by the next); each token's dispatches are recorded into one
 * command buffer and submitted once, when its logits are read.
 */
import {
  type LayerWeights,
  type MixerState,
  type Runtime,
  type SequenceMixer,
  type StateMemory,
  StatespaceError,
  type Tensor,
  type TensorLike,
  addRmsNorm,
  binary,
  embedding,
  layerNorm,
  matmul,
  PendingNorm,
  rmsNorm,
  unary,
} from '@statespace/core';
import type { KVCacheState } from '@statespace/attention';
import { fnv1a } from './hash.js';
import { type ChannelMixer, createChannelMixer, sub } from './channel.js';
import { mixerFactories } from './mixers.js';
import type { BlockSpec, ModelSpec, NormSpec } from './spec.js';
import { Zamba2SharedBlock } from './zamba2-block.js';

interface BuiltBlock {
  spec: BlockSpec;
  mixers: SequenceMixer[];
  channel?: ChannelMixer;
  /** Zamba2's shared transformer block at this layer (its KV cache is the block's first state). */
  sharedBlock?: Zamba2SharedBlock;
  /** Index of this block's first state in {@link ModelState.layers}. */
  stateOffset: number;
}

/**
 * The per-sequence state of a whole model: one entry per sequence mixer (and per shared-block site), in order.
 * A {@link Session} owns one; use it directly only with {@link HybridModel.forward}.
 *
 * @example
 * ```ts
 * const state = model.createState(1);
 * model.forward(rt.upload(new Int32Array([3, 1, 4]), [1, 3], 'i32'), state).dispose();
 * console.log(state.length, state.memory()); // 3 { ssm, conv, kv }
 * const copy = state.clone();
 * ```
 */
export class ModelState {
  constructor(
    /** Number of independent sequences. */
    readonly batch: number,
    /** The state of each sequence mixer, in layer order. */
    readonly layers: MixerState[],
    /** Tokens consumed so far. */
    public length = 0,
  ) {}

  /** Bytes held by the states, summed by kind. */
  memory(): StateMemory {
    const m: StateMemory = { ssm: 0, conv: 0, kv: 0 };
    for (const s of this.layers) {
      const x = s.memory();
      m.ssm += x.ssm;
      m.conv += x.conv;
      m.kv += x.kv;
    }
    return m;
  }

  /** An independent deep copy. */
  clone(): ModelState {
    return new ModelState(this.batch, this.layers.map((s) => s.clone()), this.length);
  }

  /**
   * A mark to come back to with {@link rollback}: a GPU copy of every recurrent state and of every
   * sliding-window ring KV cache (it overwrites old tokens), and the length of every growing KV
   * cache (tokens after the mark are simply forgotten there).
   */
  checkpoint(): ModelStateCheckpoint {
    const layers = this.layers.map((s) => (s.truncate && !s.overwrites ? { length: s.length, copy: null } : { length: s.length, copy: s.clone() }));
    return { length: this.length, layers, dispose: () => layers.forEach((l) => l.copy?.dispose()) };
  }

  /** Returns to a {@link checkpoint} of this state (the checkpoint stays usable). */
  rollback(mark: ModelStateCheckpoint): void {
    this.layers.forEach((s, i) => {
      const m = mark.layers[i];
      if (m.copy) {
        const target = s as MixerState & { copyFrom?(o: MixerState): void };
        if (!target.copyFrom) throw new StatespaceError('UNSUPPORTED', `ModelState.rollback: layer ${i} state cannot be copied into`);
        target.copyFrom(m.copy);
      } else s.truncate!(m.length);
    });
    this.length = mark.length;
  }

  /** Back to the empty state: SSM and conv states zeroed, KV caches emptied. */
  reset(): void {
    for (const s of this.layers) s.reset();
    this.length = 0;
  }

  /** Frees every layer's GPU buffers. */
  dispose(): void {
    for (const s of this.layers) s.dispose();
  }
}

/** What {@link ModelState.checkpoint} returns. */
export interface ModelStateCheckpoint {
  /** Tokens consumed at the mark. */
  readonly length: number;
  /** Per layer: its length, and a copy of a recurrent state (null for a KV cache). */
  readonly layers: readonly { length: number; copy: MixerState | null }[];
  /** Frees the copies. */
  dispose(): void;
}

/** Which logits {@link HybridModel.forward} returns. */
export type LogitsSelection = 'all' | 'last';

/**
 * A causal LM assembled from a spec and weights.
 *
 * @example
 * ```ts
 * const model = new HybridModel(rt, spec, weights);
 * const state = model.createState(1);
 * const logits = model.forward(rt.upload(new Int32Array([3, 1, 4]), [1, 3]), state, 'last'); // (1, 1, vocab)
 * ```
 */
export class HybridModel {
  /** The built layers, in order (scheduler internals). @internal */
  readonly blocks: BuiltBlock[];
  private readonly w: LayerWeights;
  /** Some block reads the original embeddings (Zamba2). */
  private readonly keepsEmbeddings: boolean;

  constructor(
    /** The runtime the weights live on. */
    readonly runtime: Runtime,
    /** The layer stack and tensor names. */
    readonly spec: ModelSpec,
    weights: LayerWeights,
  ) {
    this.w = weights;
    for (const n of [spec.embedding, spec.lmHead, spec.finalNorm.weight]) {
      if (!weights[n]) throw new StatespaceError('MISSING_WEIGHT', `model: weight ${n} is missing`);
    }
    let offset = 0;
    this.blocks = spec.blocks.map((b) => {
      const block: BuiltBlock = {
        spec: b,
        mixers: b.mixers.map((m) => mixerFactories[m.kind].create(runtime, m.config, sub(weights, m.prefix))),
        channel: b.channel ? createChannelMixer(runtime, b.channel, weights) : undefined,
        sharedBlock: b.sharedBlock ? new Zamba2SharedBlock(runtime, b.sharedBlock, spec.hiddenSize, weights) : undefined,
        stateOffset: offset,
      };
      offset += b.mixers.length + (b.sharedBlock ? 1 : 0);
      return block;
    });
    this.keepsEmbeddings = this.blocks.some((b) => b.sharedBlock);
  }

  /**
   * What tells these weights from others of the same spec, for saved sessions: set by
   * {@link loadModel} (a hash of a sample of the weights' bytes) and {@link composeModel}
   * (its seed and dtype); '' for a model built by hand (then only the spec identifies it).
   */
  fingerprint = '';

  /** Hashes the first 256 bytes of up to 32 weights (sorted by name) read back from the GPU. */
  async computeFingerprint(): Promise<string> {
    let h: number | undefined;
    for (const n of Object.keys(this.w).sort().slice(0, 32)) {
      const t = this.w[n];
      h = fnv1a(new TextEncoder().encode(`${n}:${t.shape.join('x')}:${t.dtype}`), h);
      h = fnv1a(new Uint8Array(await this.runtime.readBytes(t.buffer, Math.min(256, t.byteSize))), h);
    }
    return (h ?? 0).toString(16).padStart(8, '0');
  }

  /** Bytes of all weights on the GPU. */
  weightBytes(): number {
    let n = 0;
    for (const t of Object.values(this.w)) n += t.byteSize;
    return n;
  }

  /** A zeroed state for `batch` independent sequences. */
  createState(batch = 1): ModelState {
    return new ModelState(
      batch,
      this.blocks.flatMap((b) => [...(b.sharedBlock ? [b.sharedBlock.createState(batch)] : []), ...b.mixers.map((m) => m.createState(batch))]),
    );
  }

  private norm(x: TensorLike, n: NormSpec): Tensor {
    const w = this.w[n.weight];
    if (n.kind === 'layer') return layerNorm(this.runtime, x, w, this.w[n.weight.replace(/weight$/, 'bias')], n.eps);
    return rmsNorm(this.runtime, x, w, n.eps, { unitOffset: n.kind === 'rms_unit' });
  }

  /** h + multiplier · branch; disposes branch and h (unless h is `keep`). */
  private residual(h: Tensor, branch: Tensor, multiplier: number | undefined, keep?: Tensor): Tensor {
    const rt = this.runtime;
    let b = branch;
    if (multiplier !== undefined && multiplier !== 1) {
      b = unary(rt, branch, 'scale', { alpha: multiplier });
      branch.dispose();
    }
    const out = binary(rt, h, b, 'add');
    b.dispose();
    if (h !== keep) h.dispose();
    return out;
  }

  /**
   * Runs ids (batch, seqlen) through the stack, continuing from `state`, and
   * returns logits (batch, seqlen, vocab) or, with `last`, (batch, 1, vocab).
   * Records dispatches only; read the result to run them.
   */
  forward(ids: TensorLike, state: ModelState, logits: LogitsSelection = 'last'): Tensor {
    const rt = this.runtime;
    const [batch, T] = ids.shape;
    if (ids.shape.length !== 2 || batch !== state.batch) {
      throw new StatespaceError('SHAPE_MISMATCH', `forward: ids have shape [${ids.shape.join(',')}], expected [batch=${state.batch}, seqlen]`);
    }
    const D = this.spec.hiddenSize;
    let h = embedding(rt, ids, this.w[this.spec.embedding], { scale: this.spec.embeddingMultiplier ?? 1 });
    const emb = this.keepsEmbeddings ? h : undefined;
    // A branch output waiting to be added to the residual stream: the add is fused into the
    // RMSNorm that follows it (one dispatch instead of two per block boundary).
    let pending: { branch: Tensor; mult: number } | null = null;
    const settle = () => {
      if (!pending) return;
      h = this.residual(h, pending.branch, pending.mult, emb);
      pending = null;
    };
    // One-token steps hand the residual add + RMSNorm to the layer that consumes it, which
    // fuses it into its input projections (PendingNorm): no dispatch of its own.
    const fuseNorms = T === 1 && batch <= 8 && this.fuseNorms;
    const pendingNormOf = (n: NormSpec): PendingNorm | null => {
      if (!fuseNorms || n.kind === 'layer') return null;
      const weight = this.w[n.weight];
      const unitOffset = n.kind === 'rms_unit';
      if (!pending) return new PendingNorm(rt, { h, weight, eps: n.eps, unitOffset });
      const oldH = h;
      const branch = pending.branch;
      const sum = rt.empty(h.shape, 'f32', 'residual');
      const pn = new PendingNorm(rt, {
        h: oldH, branch, alpha: pending.mult, sum, weight, eps: n.eps, unitOffset,
        release: () => {
          branch.dispose();
          if (oldH !== emb) oldH.dispose();
        },
      });
      h = sum;
      pending = null;
      return pn;
    };
    const normOf = (n: NormSpec): Tensor => {
      if (pending && n.kind !== 'layer') {
        const { sum, normed } = addRmsNorm(rt, h, pending.branch, this.w[n.weight], n.eps, { alpha: pending.mult, unitOffset: n.kind === 'rms_unit' });
        pending.branch.dispose();
        if (h !== emb) h.dispose();
        h = sum;
        pending = null;
        return normed;
      }
      settle();
      return this.norm(h, n);
    };
    this.blocks.forEach((block) => {
      const s = block.spec;
      const single = block.mixers.length === 1 && !block.sharedBlock ? block.mixers[0] : null;
      if (single?.fusesInputNorm && s.mixerNorm && s.mixerNorm.kind !== 'layer' && fuseNorms && (s.mixers[0].inMultiplier ?? 1) === 1) {
        const pn = pendingNormOf(s.mixerNorm)!;
        // The mixer takes the pending norm in place of a tensor (SequenceMixer.fusesInputNorm).
        let m = single.forward(pn as unknown as Tensor, state.layers[block.stateOffset]);
        pn.dispose();
        const ms = s.mixers[0];
        if (ms.outMultiplier !== undefined && ms.outMultiplier !== 1) {
          const scaled = unary(rt, m, 'scale', { alpha: ms.outMultiplier });
          m.dispose();
          m = scaled;
        }
        pending = { branch: m, mult: s.residualMultiplier ?? 1 };
      } else if (block.mixers.length) {
        // Zamba2: the shared block's output joins the mixer's input, not the residual.
        let input = h;
        let n: Tensor;
        if (block.sharedBlock) {
          settle();
          const t = block.sharedBlock.forward(h, emb!, state.layers[block.stateOffset] as KVCacheState);
          input = binary(rt, h, t, 'add');
          t.dispose();
          n = s.mixerNorm ? this.norm(input, s.mixerNorm) : input;
        } else if (s.mixerNorm) {
          n = normOf(s.mixerNorm);
          input = h;
        } else {
          settle();
          input = n = h;
        }
        const first = block.stateOffset + (block.sharedBlock ? 1 : 0);
        let sum: Tensor | undefined;
        block.mixers.forEach((mixer, j) => {
          const ms = s.mixers[j];
          const scaledIn = ms.inMultiplier !== undefined && ms.inMultiplier !== 1 ? unary(rt, n, 'scale', { alpha: ms.inMultiplier }) : n;
          let m = mixer.forward(scaledIn as Tensor, state.layers[first + j]);
          if (scaledIn !== n) scaledIn.dispose();
          if (ms.outMultiplier !== undefined && ms.outMultiplier !== 1) {
            const scaled = unary(rt, m, 'scale', { alpha: ms.outMultiplier });
            m.dispose();
            m = scaled;
          }
          if (sum) {
            const t = binary(rt, sum, m, 'add');
            sum.dispose();
            m.dispose();
            sum = t;
          } else sum = m;
        });
        if (n !== input) n.dispose();
        if (input !== h) input.dispose();
        pending = { branch: sum!, mult: s.residualMultiplier ?? 1 };
      }
      if (block.channel) {
        if (s.channelNorm && block.channel.fusesInputNorm && fuseNorms && s.channelNorm.kind !== 'layer') {
          const pn = pendingNormOf(s.channelNorm)!;
          const c = block.channel.forward(pn as unknown as Tensor);
          pn.dispose();
          pending = { branch: c, mult: s.residualMultiplier ?? 1 };
          return;
        }
        let n: Tensor;
        if (s.channelNorm) n = normOf(s.channelNorm);
        else {
          settle();
          n = h;
        }
        const c = block.channel.forward(n);
        if (n !== h) n.dispose();
        pending = { branch: c, mult: s.residualMultiplier ?? 1 };
      }
    });
    state.length += T;
    let normed: Tensor;
    if (logits === 'last' && T > 1) {
      settle();
      const last = rt.empty([batch, 1, D], 'f32', 'last_hidden');
      for (let b = 0; b < batch; b++) rt.copy(h, last, D * 4, ((b * T + T - 1) * D) * 4, b * D * 4);
      if (h !== emb) h.dispose();
      h = last;
      normed = this.norm(h, this.spec.finalNorm);
    } else {
      const pn = pendingNormOf(this.spec.finalNorm);
      if (pn) {
        const out = pn.matmul(this.w[this.spec.lmHead]);
        pn.dispose();
        if (h !== emb) h.dispose();
        if (emb) emb.dispose();
        return this.scaleLogits(out);
      }
      normed = normOf(this.spec.finalNorm);
    }
    if (h !== emb) h.dispose();
    if (emb) emb.dispose();

    const out = matmul(rt, normed, this.w[this.spec.lmHead]);
    normed.dispose();
    return this.scaleLogits(out);
  }

  private scaleLogits(out: Tensor): Tensor {
    if (this.spec.logitsScaling && this.spec.logitsScaling !== 1) {
      const scaled = unary(this.runtime, out, 'scale', { alpha: 1 / this.spec.logitsScaling });
      out.dispose();
      return scaled;
    }
    return out;
  }

  /**
   * Fuse each one-token step's residual add + RMSNorm into the projections that consume it
   * (default true; false runs them as their own kernels, the reference for tests).
   */
  fuseNorms = true;

  /** Frees every weight and what the mixers allocated themselves. */
  dispose(): void {
    for (const b of this.blocks) for (const m of b.mixers) m.dispose?.();
    for (const t of Object.values(this.w)) t.dispose();
  }
}
