/**
 * Channel mixers (feed-forward layers): gated MLPs (SwiGLU and friends, with
 * separate or fused gate/up weights), relu² MLP (Nemotron-H) and mixture of
 * experts with an optional, optionally gated, shared expert (Jamba, Granite, Qwen3-Next),
 * Nemotron-H's relu² experts behind a grouped sigmoid router, optionally in a latent width.
 */
import { type LayerWeights, PendingNorm, type Runtime, StatespaceError, type Tensor, binary, glu, gluMatmul, linear, matmul, unary } from '@statespace/core';
import type { ChannelSpec, GluNames } from './spec.js';
import { moeAccumulate, moeGroupedRouting, moeRouting } from './moe.js';

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
    // prefill: gate, up and act·mul in one tiled product where the tiled kernel runs
    const tiled = x instanceof PendingNorm ? null : gluMatmul(rt, x, this.gateUp ? { gateUp: this.gateUp } : { gate: this.gate!, up: this.up! }, this.act);
    if (tiled) h = tiled;
    else if (this.gateUp) {
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
 * down(relu(up(x))²) (Nemotron-H's MLP layers, its routed and shared experts).
 *
 * @example
 * ```ts
 * const mlp = new Relu2Mlp(rt, sub(weights, 'backbone.layers.1.mixer.')); // up_proj.weight, down_proj.weight
 * const y = mlp.forward(x); // (1, L, D)
 * ```
 */
export class Relu2Mlp implements ChannelMixer {
  private readonly up: Tensor;
  private readonly down: Tensor;
  constructor(
    private readonly runtime: Runtime,
    weights: LayerWeights,
    where = 'mlp',
    /** Weight names relative to `weights` (default `up_proj.weight`, `down_proj.weight`). */
    names: { up?: string; down?: string } = {},
  ) {
    this.up = need(weights, names.up ?? 'up_proj.weight', where);
    this.down = need(weights, names.down ?? 'down_proj.weight', where);
  }
  forward(x: Tensor): Tensor {
    const rt = this.runtime;
    const u = matmul(rt, x, this.up);
    const h = unary(rt, u, 'relu2');
    u.dispose();
    const y = matmul(rt, h, this.down);
    h.dispose();
    return y;
  }
}

function expertNames(names: GluNames, e: number): GluNames {
  const r = (s?: string) => s?.replace('{e}', String(e));
  return { gate: r(names.gate), up: r(names.up), gateUp: r(names.gateUp), down: r(names.down)! };
}

/**
 * Top-k mixture of experts, each a gated or relu² MLP, plus an optional shared expert
 * (sigmoid-gated in Qwen3-Next). Experts run densely over all tokens and are
 * mixed with routing weights that are zero outside each token's top k: no host
 * round trip, exact, and cheap for the small expert counts of these hybrids.
 * The router is softmax-then-top-k, or Nemotron-H's grouped sigmoid router with a
 * correction bias ({@link moeGroupedRouting}); Nemotron-H's latent MoE runs the routed
 * experts between a down and an up projection.
 *
 * @example
 * ```ts
 * // spec: a { kind: 'moe' } ChannelSpec (from a family module); names are relative to spec.prefix
 * const moe = new MoeLayer(rt, sub(weights, spec.prefix), spec);
 * const y = moe.forward(x); // (1, L, D)
 * ```
 */
export class MoeLayer implements ChannelMixer {
  private readonly experts: ChannelMixer[];
  private readonly shared?: ChannelMixer;
  constructor(
    private readonly runtime: Runtime,
    private readonly weights: LayerWeights,
    private readonly spec: Extract<ChannelSpec, { kind: 'moe' }>,
  ) {
    need(weights, spec.router, spec.prefix);
    if (spec.routing) need(weights, spec.routing.correctionBias, spec.prefix);
    if (spec.latent) for (const n of [spec.latent.down, spec.latent.up]) need(weights, n, spec.prefix);
    const mlp = (kind: 'glu' | 'relu2' | undefined, names: GluNames, where: string): ChannelMixer =>
      kind === 'relu2' ? new Relu2Mlp(runtime, weights, where, { up: names.up, down: names.down }) : new GluMlp(runtime, weights, names, 'silu', where);
    this.experts = Array.from({ length: spec.numExperts }, (_, e) => mlp(spec.expertKind, expertNames(spec.expert, e), `${spec.prefix} expert ${e}`));
    if (spec.shared) this.shared = mlp(spec.shared.kind, spec.shared.names, `${spec.prefix} shared expert`);
  }
  forward(x: Tensor): Tensor {
    const rt = this.runtime;
    const spec = this.spec;
    const D = x.shape[x.shape.length - 1];
    const T = x.size / D;
    const flat = x.reshape([T, D]);
    const logits = matmul(rt, flat, this.weights[spec.router]);
    const w = spec.routing
      ? moeGroupedRouting(rt, logits, this.weights[spec.routing.correctionBias], { k: spec.topK, nGroup: spec.routing.nGroup, topkGroup: spec.routing.topkGroup, renormalize: spec.normTopK, scale: spec.routing.scale })
      : moeRouting(rt, logits, spec.topK, { renormalize: spec.normTopK });
    logits.dispose();
    const xe = spec.latent ? matmul(rt, x, this.weights[spec.latent.down]) : x; // (..., latent) or x
    let y = rt.zeros(xe.shape, 'f32', 'moe.y');
    this.experts.forEach((expert, e) => {
      const h = expert.forward(xe);
      moeAccumulate(rt, w, e, h, y);
      h.dispose();
    });
    w.dispose();
    if (spec.latent) {
      const up = matmul(rt, y, this.weights[spec.latent.up]);
      y.dispose();
      (xe as Tensor).dispose();
      y = up;
    }
    if (!this.shared) return y;
    const h = this.shared.forward(x);
    const gateName = spec.shared?.gate;
    if (gateName) {
      const gl = matmul(rt, flat, need(this.weights, gateName, spec.prefix)); // (T, 1)
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

function relu2Shapes(prefix: string, names: { up?: string; down?: string }, hidden: number, i: number): { name: string; shape: number[] }[] {
  return [
    { name: prefix + (names.up ?? 'up_proj.weight'), shape: [i, hidden] },
    { name: prefix + (names.down ?? 'down_proj.weight'), shape: [hidden, i] },
  ];
}

/**
 * Full names and shapes of the weights a channel mixer expects (`f32` marks the ones kept in f32).
 *
 * @example
 * ```ts
 * channelWeightShapes({ kind: 'relu2', prefix: 'layers.1.mlp.', intermediate: 256 }, 64);
 * // [{ name: 'layers.1.mlp.up_proj.weight', shape: [256, 64] }, { name: 'layers.1.mlp.down_proj.weight', shape: [64, 256] }]
 * ```
 */
export function channelWeightShapes(spec: ChannelSpec, hidden: number): { name: string; shape: number[]; f32?: boolean }[] {
  switch (spec.kind) {
    case 'glu':
      return gluShapes(spec.prefix, spec.names, hidden, spec.intermediate);
    case 'relu2':
      return relu2Shapes(spec.prefix, {}, hidden, spec.intermediate);
    case 'moe': {
      const out: { name: string; shape: number[]; f32?: boolean }[] = [{ name: `${spec.prefix}${spec.router}`, shape: [spec.numExperts, hidden] }];
      if (spec.routing) out.push({ name: `${spec.prefix}${spec.routing.correctionBias}`, shape: [spec.numExperts], f32: true });
      const width = spec.latent?.size ?? hidden;
      if (spec.latent) out.push({ name: `${spec.prefix}${spec.latent.down}`, shape: [width, hidden] }, { name: `${spec.prefix}${spec.latent.up}`, shape: [hidden, width] });
      for (let e = 0; e < spec.numExperts; e++) {
        const names = expertNames(spec.expert, e);
        out.push(...(spec.expertKind === 'relu2' ? relu2Shapes(spec.prefix, names, width, spec.intermediate) : gluShapes(spec.prefix, names, width, spec.intermediate)));
      }
      if (spec.shared) {
        const sh = spec.shared;
        out.push(...(sh.kind === 'relu2' ? relu2Shapes(spec.prefix, sh.names, hidden, sh.intermediate) : gluShapes(spec.prefix, sh.names, hidden, sh.intermediate)));
        if (sh.gate) out.push({ name: `${spec.prefix}${sh.gate}`, shape: [1, hidden] });
      }
      return out;
    }
  }
}
