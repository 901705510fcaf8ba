/**
 * Zamba2's shared transformer block at one hybrid layer (transformers 5.17
 * Zamba2HybridLayer → Zamba2AttentionDecoderLayer → Zamba2Attention / Zamba2MLP):
 *
 *   x = input_layernorm(concat(h, e))                      (B, L, 2D)
 *   q = q_proj(x) + Bq(Aq(x)),  k, v likewise              per-site LoRA adapters
 *   a = o_proj(attention(q, k, v))                         RoPE, scale (head_dim / 2)^-1/2
 *   m = pre_ff_layernorm(a)
 *   f = down_proj(act(g) · u), [g | u] = gate_up_proj(m) + Bgu(Agu(m))
 *   t = linear(f)                                          per-site projection
 *
 * No residual inside the block: the scheduler adds t to the Mamba layer's input.
 *
 * Shape glossary:
 *   B  batch     L  tokens     D  hidden_size     E  2·D (attention input)     I  MLP intermediate     r  adapter rank
 */
import { AttentionMixer, type AttentionMixerConfig, type KVCacheState } from '@statespace/attention';
import { type LayerWeights, type Runtime, StatespaceError, type Tensor, binary, glu, matmul, rmsNorm } from '@statespace/core';
import { sub } from './channel.js';
import { concatLastDim } from './concat.js';
import type { SharedBlockSpec } from './spec.js';

/** A weight of the shared block, by full name; `f32` marks norms and biases. */
export interface SharedBlockWeight {
  name: string;
  shape: number[];
  f32: boolean;
}

/**
 * One application site of Zamba2's shared transformer block. Sites sharing a
 * block share its weight tensors; each has its own adapters, `linear` and KV cache.
 *
 * @example
 * ```ts
 * const site = new Zamba2SharedBlock(rt, spec.blocks[1].sharedBlock!, 64, weights);
 * const cache = site.createState(1);
 * const t = site.forward(hidden, embeddings, cache); // (1, L, 64), added to the Mamba layer's input
 * ```
 */
export class Zamba2SharedBlock {
  readonly attention: AttentionMixer;
  private readonly w: Record<string, Tensor> = {};

  constructor(
    private readonly runtime: Runtime,
    readonly spec: SharedBlockSpec,
    readonly hiddenSize: number,
    weights: LayerWeights,
  ) {
    for (const { name, shape } of Zamba2SharedBlock.expectedWeights(spec, hiddenSize)) {
      const t = weights[name];
      if (!t) throw new StatespaceError('MISSING_WEIGHT', `Zamba2SharedBlock: weight ${name} [${shape.join(',')}] is missing`);
      if (t.shape.join(',') !== shape.join(',')) throw new StatespaceError('SHAPE_MISMATCH', `Zamba2SharedBlock: ${name} has shape [${t.shape.join(',')}], expected [${shape.join(',')}]`);
      this.w[name] = t;
    }
    this.attention = new AttentionMixer(runtime, spec.attention as unknown as AttentionMixerConfig, sub(weights, `${spec.prefix}self_attn.`));
  }

  /** Full names and shapes of the weights one site reads (shared ones are the same names at every site of a block). */
  static expectedWeights(spec: SharedBlockSpec, hidden: number): SharedBlockWeight[] {
    const p = spec.prefix;
    const a = spec.attention as unknown as AttentionMixerConfig;
    const E = a.inputSize ?? a.hiddenSize;
    const r = spec.adapterRank;
    const I = spec.intermediate;
    const out: SharedBlockWeight[] = [{ name: `${p}input_layernorm.weight`, shape: [E], f32: true }];
    for (const w of AttentionMixer.expectedWeights(a)) out.push({ name: `${p}self_attn.${w.name}`, shape: w.shape, f32: w.shape.length === 1 });
    if (spec.qkvAdapters) {
      const rows = { q: a.numHeads * a.headDim, k: a.numKeyValueHeads * a.headDim, v: a.numKeyValueHeads * a.headDim };
      for (const [x, n] of Object.entries(rows)) {
        out.push({ name: `${p}self_attn.linear_${x}_adapter_list.${spec.adapter}.0.weight`, shape: [r, E], f32: false });
        out.push({ name: `${p}self_attn.linear_${x}_adapter_list.${spec.adapter}.1.weight`, shape: [n, r], f32: false });
      }
    }
    out.push({ name: `${p}pre_ff_layernorm.weight`, shape: [hidden], f32: true });
    out.push({ name: `${p}feed_forward.gate_up_proj.weight`, shape: [2 * I, hidden], f32: false });
    if (spec.mlpBias) out.push({ name: `${p}feed_forward.gate_up_proj.bias`, shape: [2 * I], f32: true });
    out.push({ name: `${p}feed_forward.down_proj.weight`, shape: [hidden, I], f32: false });
    if (spec.mlpBias) out.push({ name: `${p}feed_forward.down_proj.bias`, shape: [hidden], f32: true });
    out.push({ name: `${p}feed_forward.gate_up_proj_adapter_list.${spec.adapter}.0.weight`, shape: [r, hidden], f32: false });
    out.push({ name: `${p}feed_forward.gate_up_proj_adapter_list.${spec.adapter}.1.weight`, shape: [2 * I, r], f32: false });
    out.push({ name: spec.linear, shape: [hidden, hidden], f32: false });
    return out;
  }

  /** An empty KV cache for this site. */
  createState(batch: number): KVCacheState {
    return this.attention.createState(batch);
  }

  /** base + B(A(x)) for the adapter `<list>.<site>.{0,1}.weight`; disposes base. */
  private adapt(base: Tensor, x: Tensor, list: string): Tensor {
    const rt = this.runtime;
    const name = `${list}.${this.spec.adapter}`;
    const down = matmul(rt, x, this.w[`${name}.0.weight`]);
    const up = matmul(rt, down, this.w[`${name}.1.weight`]);
    down.dispose();
    const y = binary(rt, base, up, 'add');
    base.dispose();
    up.dispose();
    return y;
  }

  /** h and e (B, L, D) → this site's contribution (B, L, D); appends L tokens to `cache`. */
  forward(h: Tensor, e: Tensor, cache: KVCacheState): Tensor {
    const rt = this.runtime;
    const p = this.spec.prefix;
    const w = this.w;
    const cat = concatLastDim(rt, h, e);
    const x = rmsNorm(rt, cat, w[`${p}input_layernorm.weight`], this.spec.eps);
    cat.dispose();
    const attn = `${p}self_attn.`;
    let q = matmul(rt, x, w[`${attn}q_proj.weight`]);
    let k = matmul(rt, x, w[`${attn}k_proj.weight`]);
    let v = matmul(rt, x, w[`${attn}v_proj.weight`]);
    if (this.spec.qkvAdapters) {
      q = this.adapt(q, x, `${attn}linear_q_adapter_list`);
      k = this.adapt(k, x, `${attn}linear_k_adapter_list`);
      v = this.adapt(v, x, `${attn}linear_v_adapter_list`);
    }
    x.dispose();
    const o = this.attention.attend(q, k, v, cache);
    q.dispose();
    k.dispose();
    v.dispose();
    const a = matmul(rt, o, w[`${attn}o_proj.weight`]);
    o.dispose();
    const m = rmsNorm(rt, a, w[`${p}pre_ff_layernorm.weight`], this.spec.eps);
    a.dispose();
    const ff = `${p}feed_forward.`;
    let gu = matmul(rt, m, w[`${ff}gate_up_proj.weight`], { bias: w[`${ff}gate_up_proj.bias`] });
    gu = this.adapt(gu, m, `${ff}gate_up_proj_adapter_list`);
    m.dispose();
    const g = glu(rt, gu, this.spec.act);
    gu.dispose();
    const f = matmul(rt, g, w[`${ff}down_proj.weight`], { bias: w[`${ff}down_proj.bias`] });
    g.dispose();
    const t = matmul(rt, f, w[this.spec.linear]);
    f.dispose();
    return t;
  }
}
