/**
 * Channel mixers (feed-forward layers): gated MLPs (SwiGLU and friends, with
 * separate or fused gate/up weights), relu² MLP (Nemotron-H) and mixture of
 * experts with an optional, optionally gated, shared expert (Jamba, Granite, Qwen3-Next).
 */
import { type LayerWeights, PendingNorm, type Runtime, StatespaceError, type Tensor, binary, glu, linear, matmul, unary } from '@statespace/core';
import type { ChannelSpec, GluNames } from './spec.js';
import { moeAccumulate, moeRouting } from './moe.js';

/** A feed-forward layer: (..., D) -> (..., D). */
export interface ChannelMixer {
  /** Runs the layer on `x` (..., D) and returns a new tensor (..., D); records dispatches only. */
  forward(x: Tensor): Tensor;
  /** True when {@link forward} also takes a {@link PendingNorm} for one-token steps (see SequenceMixer.fusesInputNorm). */
  readonly fusesInputNorm?: boolean;
}

function need(weights: LayerWeights, name: string, where: string): Tensor {
  const t = weights[name];
  if (!t) throw new StatespaceError('MISSING_WEIGHT', `${where}: weight ${name} is missing`);
  return t;
}

/**
 * down(act(gate(x)) · up(x)), with gate/up separate or fused into one weight.
 *
 * @example
 * ```ts
 * const names = { gate: 'gate_proj.weight', up: 'up_proj.weight', down: 'down_proj.weight' };
 * const mlp = new GluMlp(rt, sub(weights, 'model.layers.0.mlp.'), names); // SwiGLU
 * const y = mlp.forward(x); // x (1, L, D) -> y (1, L, D)
 * ```
 */
export class GluMlp implements ChannelMixer {
  private readonly gate?: Tensor;
  private readonly up?: Tensor;
  private readonly gateUp?: Tensor;
  private readonly down: Tensor;
  constructor(
    private readonly runtime: Runtime,
    weights: LayerWeights,
    names: GluNames,
    private readonly act: 'silu' | 'gelu' | 'gelu_tanh' = 'silu',
    where = 'mlp',
  ) {
    if (names.gateUp) this.gateUp = need(weights, names.gateUp, where);
    else {
      this.gate = need(weights, names.gate ?? 'gate_proj.weight', where);
      this.up = need(weights, names.up ?? 'up_proj.weight', where);
    }
    this.down = need(weights, names.down, where);
  }
  readonly fusesInputNorm = true;
  forward(x: Tensor | PendingNorm): Tensor {
    const rt = this.runtime;
    let h: Tensor;
    if (this.gateUp) {
      const a = linear(rt, x, this.gateUp);
      h = glu(rt, a, this.act);
      a.dispose();
    } else {
      const fused = x instanceof PendingNorm ? x.fusedGlu(this.gate!, this.up!, this.act) : null;
      if (fused) h = fused;
      else h = this.gatedProduct(linear(rt, x, this.gate!), linear(rt, x, this.up!));
    }
    const y = matmul(rt, h, this.down);
    h.dispose();
    return y;
  }

  /** act(g) · u; disposes g and u. */
  private gatedProduct(g: Tensor, u: Tensor): Tensor {
    const rt = this.runtime;
    let h: Tensor;
    if (this.act === 'silu') h = binary(rt, g, u, 'silu_mul');
    else {
      const a = unary(rt, g, this.act);
      h = binary(rt, a, u, 'mul');
      a.dispose();
    }
    g.dispose();
    u.dispose();
    return h;
  }
}

/**
 * down(relu(up(x))²) (Nemotron-H).
 *
 * @example
 * ```ts
 * const mlp = new Relu2Mlp(rt, sub(weights, 'backbone.layers.1.mixer.')); // up_proj.weight, down_proj.weight
 * const y = mlp.forward(x); // (1, L, D)
 * ```
 */
export class Relu2Mlp implements ChannelMixer {
  constructor(
    private readonly runtime: Runtime,
    private readonly weights: LayerWeights,
    where = 'mlp',
  ) {
    for (const n of ['up_proj.weight', 'down_proj.weight']) need(weights, n, where);
  }
  forward(x: Tensor): Tensor {
    const rt = this.runtime;
    const u = matmul(rt, x, this.weights['up_proj.weight']);
    const h = unary(rt, u, 'relu2');
    u.dispose();
    const y = matmul(rt, h, this.weights['down_proj.weight']);
    h.dispose();
    return y;
  }
}

function expertNames(names: GluNames, e: number): GluNames {
  const r = (s?: string) => s?.replace('{e}', String(e));
  return { gate: r(names.gate), up: r(names.up), gateUp: r(names.gateUp), down: r(names.down)! };
}

/**
 * Top-k mixture of experts, each a gated MLP, plus an optional shared expert
 * (sigmoid-gated in Qwen3-Next). Experts run densely over all tokens and are
 * mixed with routing weights that are zero outside each token's top k: no host
 * round trip, exact, and cheap for the small expert counts of these hybrids.
 *
 * @example
 * ```ts
 * // spec: a { kind: 'moe' } ChannelSpec (from a family module); names are relative to spec.prefix
 * const moe = new MoeLayer(rt, sub(weights, spec.prefix), spec);
 * const y = moe.forward(x); // (1, L, D)
 * ```
 */
export class MoeLayer implements ChannelMixer {
  private readonly experts: GluMlp[];
  private readonly shared?: GluMlp;
  constructor(
    private readonly runtime: Runtime,
    private readonly weights: LayerWeights,
    private readonly spec: Extract<ChannelSpec, { kind: 'moe' }>,
  ) {
    need(weights, spec.router, spec.prefix);
    this.experts = Array.from({ length: spec.numExperts }, (_, e) => new GluMlp(runtime, weights, expertNames(spec.expert, e), 'silu', `${spec.prefix} expert ${e}`));
    if (spec.shared) this.shared = new GluMlp(runtime, weights, spec.shared.names, 'silu', `${spec.prefix} shared expert`);
  }
  forward(x: Tensor): Tensor {
    const rt = this.runtime;
    const D = x.shape[x.shape.length - 1];
    const T = x.size / D;
    const flat = x.reshape([T, D]);
    const logits = matmul(rt, flat, this.weights[this.spec.router]);
    const w = moeRouting(rt, logits, this.spec.topK, { renormalize: this.spec.normTopK });
    logits.dispose();
    const y = rt.zeros(x.shape, 'f32', 'moe.y');
    this.experts.forEach((expert, e) => {
      const h = expert.forward(x);
      moeAccumulate(rt, w, e, h, y);
      h.dispose();
    });
    w.dispose();
    if (!this.shared) return y;
    const h = this.shared.forward(x);
    const gateName = this.spec.shared?.gate;
    if (gateName) {
      const gl = matmul(rt, flat, need(this.weights, gateName, this.spec.prefix)); // (T, 1)
      const gs = unary(rt, gl, 'sigmoid');
      gl.dispose();
      moeAccumulate(rt, gs.reshape([T, 1]), 0, h, y); // y += sigmoid(gate) · shared(x)
      gs.dispose();
      h.dispose();
      return y;
    }
    const out = binary(rt, y, h, 'add');
    y.dispose();
    h.dispose();
    return out;
  }
}

/**
 * The weights under `prefix`, with the prefix removed from their names.
 *
 * @example
 * ```ts
 * sub({ 'model.norm.weight': norm, 'lm_head.weight': head }, 'model.'); // { 'norm.weight': norm }
 * ```
 */
export function sub(weights: LayerWeights, prefix: string): LayerWeights {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(weights)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}

/**
 * Builds the channel mixer a spec describes from the model's weights
 * (full names: the spec's prefix is applied here).
 *
 * @example
 * ```ts
 * const mlp = createChannelMixer(rt, { kind: 'relu2', prefix: 'layers.1.mlp.', intermediate: 256 }, weights);
 * const y = mlp.forward(x);
 * ```
 */
export function createChannelMixer(runtime: Runtime, spec: ChannelSpec, weights: LayerWeights): ChannelMixer {
  const w = sub(weights, spec.prefix);
  switch (spec.kind) {
    case 'glu':
      return new GluMlp(runtime, w, spec.names, spec.act ?? 'silu', spec.prefix);
    case 'relu2':
      return new Relu2Mlp(runtime, w, spec.prefix);
    case 'moe':
      return new MoeLayer(runtime, w, spec);
  }
}

function gluShapes(prefix: string, names: GluNames, hidden: number, i: number): { name: string; shape: number[] }[] {
  const out = names.gateUp
    ? [{ name: prefix + names.gateUp, shape: [2 * i, hidden] }]
    : [
        { name: prefix + (names.gate ?? 'gate_proj.weight'), shape: [i, hidden] },
        { name: prefix + (names.up ?? 'up_proj.weight'), shape: [i, hidden] },
      ];
  out.push({ name: prefix + names.down, shape: [hidden, i] });
  return out;
}

/**
 * Full names and shapes of the weights a channel mixer expects.
 *
 * @example
 * ```ts
 * channelWeightShapes({ kind: 'relu2', prefix: 'layers.1.mlp.', intermediate: 256 }, 64);
 * // [{ name: 'layers.1.mlp.up_proj.weight', shape: [256, 64] }, { name: 'layers.1.mlp.down_proj.weight', shape: [64, 256] }]
 * ```
 */
export function channelWeightShapes(spec: ChannelSpec, hidden: number): { name: string; shape: number[] }[] {
  switch (spec.kind) {
    case 'glu':
      return gluShapes(spec.prefix, spec.names, hidden, spec.intermediate);
    case 'relu2':
      return [
        { name: `${spec.prefix}up_proj.weight`, shape: [spec.intermediate, hidden] },
        { name: `${spec.prefix}down_proj.weight`, shape: [hidden, spec.intermediate] },
      ];
    case 'moe': {
      const out = [{ name: `${spec.prefix}${spec.router}`, shape: [spec.numExperts, hidden] }];
      for (let e = 0; e < spec.numExperts; e++) out.push(...gluShapes(spec.prefix, expertNames(spec.expert, e), hidden, spec.intermediate));
      if (spec.shared) {
        out.push(...gluShapes(spec.prefix, spec.shared.names, hidden, spec.shared.intermediate));
        if (spec.shared.gate) out.push({ name: `${spec.prefix}${spec.shared.gate}`, shape: [1, hidden] });
      }
      return out;
    }
  }
}
