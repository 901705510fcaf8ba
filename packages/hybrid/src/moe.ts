/**
 * Mixture-of-experts routing on the GPU, with no host round trip.
 *
 * Shape glossary:
 *   T  tokens     E  experts     k  experts per token     D  features
 *
 * `moeRouting` turns router logits (T, E) into a dense weight matrix (T, E):
 * softmax over experts, keep the top k (ties to the lower index), zero the rest,
 * optionally renormalise the kept weights to sum to one (Qwen3-Next's
 * norm_topk_prob, Granite's top-k-then-softmax). `moeGroupedRouting` is the
 * sigmoid router of DeepSeek-V3 / Nemotron-H (group-limited greedy routing,
 * DeepSeek-V3 report section 2.1.2 with the auxiliary-loss-free bias):
 *   s = sigmoid(logits)                         (T, E)
 *   c = s + correction_bias                     choice scores; groups of S = E / G experts
 *   a group scores the sum of its two best c; the topkGroup best groups are kept
 *   the top k of c inside the kept groups are routed, weighted by s (not c),
 *   renormalised to sum to one when asked, times routed_scaling_factor.
 * `moeAccumulate` adds w[:, e] · h to y, so the layer is a sum over experts of
 * weighted expert outputs.
 *
 * Shape glossary (grouped routing): G  expert groups (n_group)   S  experts per group
 */
import {
  type KernelDescriptor,
  type Runtime,
  StatespaceError,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  linearDispatch,
  wgslBindings,
} from '@statespace/core';

const MAX_EXPERTS = 512;
/** Expert groups the grouped router handles (the kept groups are a 32-bit mask). */
export const MOE_MAX_GROUPS = 32;
const routingLayout = { T: 'u32', E: 'u32', k: 'u32', renorm: 'u32' } as const satisfies UniformLayout;
const groupedLayout = { T: 'u32', E: 'u32', k: 'u32', G: 'u32', topkGroup: 'u32', renorm: 'u32', scale: 'f32' } as const satisfies UniformLayout;
const accLayout = { T: 'u32', E: 'u32', D: 'u32', e: 'u32' } as const satisfies UniformLayout;

/**
 * Builds the routing kernel (one thread per token; E ≤ 512): softmax over the
 * router logits, the top k kept, the rest zeroed.
 *
 * @example
 * ```ts
 * const kernel = createMoeRoutingKernel({ T: 7, E: 8, k: 2 }); // pure: no GPU needed
 * console.log(kernel.wgsl, kernel.dispatch);
 * ```
 */
export function createMoeRoutingKernel(shape: { T: number; E: number; k: number }): KernelDescriptor {
  const bindings = [
    { name: 'logits', type: 'f32', access: 'read' }, // (T, E)
    { name: 'w', type: 'f32', access: 'read_write' }, // (T, E)
  ] as const;
  const wgsl = `${wgslBindings(routingLayout, bindings)}
@compute @workgroup_size(64)
fn main(${WGSL_BUILTINS}) {
  let t = ${WGSL_LINEAR_WORKGROUP} * 64u + li;
  if (t >= u.T) { return; }
  let base = t * u.E;
  var m = -3.4e38;
  for (var e = 0u; e < u.E; e++) { m = max(m, logits[base + e]); }
  var s = 0.0;
  for (var e = 0u; e < u.E; e++) { s += exp(logits[base + e] - m); }
  for (var e = 0u; e < u.E; e++) { w[base + e] = 0.0; }
  var prevV = 3.4e38; var prevI = 0u; var kept = 0.0;
  for (var r = 0u; r < u.k; r++) {
    var bv = -3.4e38; var bi = 0xffffffffu;
    for (var e = 0u; e < u.E; e++) {
      let v = logits[base + e];
      let after = r == 0u || v < prevV || (v == prevV && e > prevI);
      if (after && (bi == 0xffffffffu || v > bv)) { bv = v; bi = e; }
    }
    prevV = bv; prevI = bi;
    let p = exp(bv - m) / s;
    w[base + bi] = p;
    kept += p;
  }
  if (u.renorm == 1u) {
    for (var e = 0u; e < u.E; e++) { w[base + e] = w[base + e] / kept; }
  }
}`;
  return { name: 'moe_routing', cacheKey: '', wgsl, workgroupSize: [64, 1, 1], dispatch: linearDispatch(shape.T / 64), bindings, uniformLayout: routingLayout, uniforms: { ...shape, renorm: 0 } };
}

/**
 * Builds the kernel y += w[:, e] · h.
 *
 * @example
 * ```ts
 * const kernel = createMoeAccumulateKernel({ T: 7, E: 8, D: 64 });
 * rt.run({ ...kernel, uniforms: { ...kernel.uniforms, e: 3 } }, [routing, expertOut, y]);
 * ```
 */
export function createMoeAccumulateKernel(shape: { T: number; E: number; D: number }): KernelDescriptor {
  const bindings = [
    { name: 'w', type: 'f32', access: 'read' }, // (T, E)
    { name: 'h', type: 'f32', access: 'read' }, // (T, D)
    { name: 'y', type: 'f32', access: 'read_write' }, // (T, D)
  ] as const;
  const wgsl = `${wgslBindings(accLayout, bindings)}
@compute @workgroup_size(256)
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * 256u + li;
  if (i >= u.T * u.D) { return; }
  let t = i / u.D;
  y[i] = y[i] + w[t * u.E + u.e] * h[i];
}`;
  return { name: 'moe_accumulate', cacheKey: '', wgsl, workgroupSize: [256, 1, 1], dispatch: linearDispatch((shape.T * shape.D) / 256), bindings, uniformLayout: accLayout, uniforms: { ...shape, e: 0 } };
}

/**
 * Dense routing weights (T, E) from router logits (T, E).
 * @example
 * ```ts
 * const w = moeRouting(rt, routerLogits, 2, { renormalize: true });
 * ```
 */
export function moeRouting(runtime: Runtime, logits: TensorLike, k: number, options: { renormalize?: boolean } = {}): Tensor {
  const E = logits.shape[logits.shape.length - 1];
  if (E > MAX_EXPERTS || k < 1 || k > E) throw new StatespaceError('INVALID_ARGUMENT', `moeRouting: k=${k} experts of E=${E} (at most ${MAX_EXPERTS})`);
  const T = logits.size / E;
  const w = runtime.empty([T, E], 'f32', 'moe.weights');
  const kernel = createMoeRoutingKernel({ T, E, k });
  runtime.run({ ...kernel, uniforms: { ...kernel.uniforms, renorm: options.renormalize ? 1 : 0 } }, [logits, w]);
  return w;
}

/**
 * y += w[:, e] · h (records the dispatch).
 *
 * @example
 * ```ts
 * const w = moeRouting(rt, routerLogits, 2);          // (T, E)
 * moeAccumulate(rt, w, 3, expert3.forward(x), y);     // y (T, D) += w[:, 3] · expert 3's output
 * ```
 */
export function moeAccumulate(runtime: Runtime, w: TensorLike, e: number, h: TensorLike, y: TensorLike): void {
  const [T, E] = w.shape;
  const D = h.size / T;
  const kernel = createMoeAccumulateKernel({ T, E, D });
  runtime.run({ ...kernel, uniforms: { ...kernel.uniforms, e } }, [w, h, y]);
}

/**
 * CPU reference of {@link moeRouting}.
 *
 * @example
 * ```ts
 * const w = moeRoutingReference(new Float32Array([0, 1, 2, 3]), 4, 2, true); // [0, 0, 0.269, 0.731]
 * ```
 */
export function moeRoutingReference(logits: Float32Array, E: number, k: number, renormalize: boolean): Float32Array {
  const T = logits.length / E;
  const w = new Float32Array(T * E);
  for (let t = 0; t < T; t++) {
    const row = Array.from(logits.subarray(t * E, (t + 1) * E));
    const m = Math.max(...row);
    const s = row.reduce((a, v) => a + Math.exp(v - m), 0);
    const order = row.map((_, e) => e).sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
    let kept = 0;
    for (const e of order) kept += Math.exp(row[e] - m) / s;
    for (const e of order) w[t * E + e] = Math.exp(row[e] - m) / s / (renormalize ? kept : 1);
  }
  return w;
}

/** Settings of {@link moeGroupedRouting} (Nemotron-H / DeepSeek-V3 names in parentheses). */
export interface MoeGroupedRoutingOptions {
  /** Experts routed per token (num_experts_per_tok). */
  k: number;
  /** Expert groups G (n_group); E must be a multiple of G with at least 2 experts per group. */
  nGroup: number;
  /** Groups kept per token (topk_group). */
  topkGroup: number;
  /** Divide the kept weights by their sum (norm_topk_prob). */
  renormalize: boolean;
  /** Multiplies the final weights (routed_scaling_factor). */
  scale: number;
}

/**
 * Builds the grouped sigmoid routing kernel (one thread per token; E ≤ 512, G ≤ 32).
 *
 * @example
 * ```ts
 * const kernel = createMoeGroupedRoutingKernel({ T: 7, E: 16, k: 3, G: 4, topkGroup: 2 }); // pure: no GPU needed
 * console.log(kernel.wgsl);
 * ```
 */
export function createMoeGroupedRoutingKernel(shape: { T: number; E: number; k: number; G: number; topkGroup: number }): KernelDescriptor {
  const bindings = [
    { name: 'logits', type: 'f32', access: 'read' }, // (T, E)
    { name: 'bias', type: 'f32', access: 'read' }, // (E)
    { name: 'w', type: 'f32', access: 'read_write' }, // (T, E)
  ] as const;
  const wgsl = `${wgslBindings(groupedLayout, bindings)}
fn score(i: u32) -> f32 { return 1.0 / (1.0 + exp(-logits[i])); }
@compute @workgroup_size(64)
fn main(${WGSL_BUILTINS}) {
  let t = ${WGSL_LINEAR_WORKGROUP} * 64u + li;
  if (t >= u.T) { return; }
  let base = t * u.E;
  let S = u.E / u.G;
  for (var e = 0u; e < u.E; e++) { w[base + e] = 0.0; }
  // the topkGroup groups with the largest sum of their two best choice scores (ties to the lower group)
  var kept = 0u;
  for (var r = 0u; r < u.topkGroup; r++) {
    var bg = 0xffffffffu; var bs = -3.4e38;
    for (var g = 0u; g < u.G; g++) {
      if ((kept & (1u << g)) != 0u) { continue; }
      var m1 = -3.4e38; var m2 = -3.4e38;
      for (var j = 0u; j < S; j++) {
        let c = score(base + g * S + j) + bias[g * S + j];
        if (c > m1) { m2 = m1; m1 = c; } else if (c > m2) { m2 = c; }
      }
      if (bg == 0xffffffffu || m1 + m2 > bs) { bs = m1 + m2; bg = g; }
    }
    kept = kept | (1u << bg);
  }
  // the top k choice scores inside the kept groups (ties to the lower index), weighted by the plain score
  var prevV = 3.4e38; var prevI = 0u; var sum = 0.0;
  for (var r = 0u; r < u.k; r++) {
    var bv = -3.4e38; var bi = 0xffffffffu;
    for (var e = 0u; e < u.E; e++) {
      if ((kept & (1u << (e / S))) == 0u) { continue; }
      let v = score(base + e) + bias[e];
      let after = r == 0u || v < prevV || (v == prevV && e > prevI);
      if (after && (bi == 0xffffffffu || v > bv)) { bv = v; bi = e; }
    }
    prevV = bv; prevI = bi;
    let p = score(base + bi);
    w[base + bi] = p;
    sum += p;
  }
  var f = u.scale;
  if (u.renorm == 1u) { f = u.scale / (sum + 1e-20); }
  for (var e = 0u; e < u.E; e++) { w[base + e] = w[base + e] * f; }
}`;
  return {
    name: 'moe_grouped_routing',
    cacheKey: '',
    wgsl,
    workgroupSize: [64, 1, 1],
    dispatch: linearDispatch(shape.T / 64),
    bindings,
    uniformLayout: groupedLayout,
    uniforms: { ...shape, renorm: 0, scale: 1 },
  };
}

function checkGrouped(E: number, biasSize: number, o: MoeGroupedRoutingOptions): void {
  const op = 'moeGroupedRouting';
  const bad = (m: string) => new StatespaceError('INVALID_ARGUMENT', `${op}: ${m}`);
  if (E > MAX_EXPERTS) throw bad(`E=${E} experts (at most ${MAX_EXPERTS})`);
  if (biasSize !== E) throw bad(`correction bias has ${biasSize} entries, expected [E=${E}]`);
  if (!Number.isInteger(o.nGroup) || o.nGroup < 1 || o.nGroup > MOE_MAX_GROUPS || E % o.nGroup !== 0 || E / o.nGroup < 2) {
    throw bad(`nGroup=${o.nGroup} must divide E=${E} into groups of at least 2 experts (at most ${MOE_MAX_GROUPS} groups)`);
  }
  if (!Number.isInteger(o.topkGroup) || o.topkGroup < 1 || o.topkGroup > o.nGroup) throw bad(`topkGroup=${o.topkGroup} must be in [1, nGroup=${o.nGroup}]`);
  if (!Number.isInteger(o.k) || o.k < 1 || o.k > o.topkGroup * (E / o.nGroup)) {
    throw bad(`k=${o.k} must be in [1, topkGroup · E / nGroup = ${o.topkGroup * (E / o.nGroup)}]`);
  }
}

/**
 * Dense routing weights (T, E) of the grouped sigmoid router from router logits (T, E) and
 * the correction bias (E) (see the module comment).
 *
 * @throws StatespaceError `INVALID_ARGUMENT` for groups that do not divide E, k beyond the kept groups' experts.
 * @example
 * ```ts
 * const w = moeGroupedRouting(rt, routerLogits, correctionBias, { k: 6, nGroup: 1, topkGroup: 1, renormalize: true, scale: 2.5 });
 * ```
 */
export function moeGroupedRouting(runtime: Runtime, logits: TensorLike, bias: TensorLike, options: MoeGroupedRoutingOptions): Tensor {
  const E = logits.shape[logits.shape.length - 1];
  checkGrouped(E, bias.size, options);
  const T = logits.size / E;
  const w = runtime.empty([T, E], 'f32', 'moe.weights');
  const kernel = createMoeGroupedRoutingKernel({ T, E, k: options.k, G: options.nGroup, topkGroup: options.topkGroup });
  runtime.run({ ...kernel, uniforms: { ...kernel.uniforms, renorm: options.renormalize ? 1 : 0, scale: options.scale } }, [logits, bias, w]);
  return w;
}

/**
 * CPU reference of {@link moeGroupedRouting}, written after transformers' NemotronHTopkRouter.
 *
 * @example
 * ```ts
 * const w = moeGroupedRoutingReference(logits, bias, 16, { k: 3, nGroup: 4, topkGroup: 2, renormalize: true, scale: 2.5 });
 * ```
 */
export function moeGroupedRoutingReference(logits: Float32Array, bias: Float32Array, E: number, o: MoeGroupedRoutingOptions): Float32Array {
  checkGrouped(E, bias.length, o);
  const T = logits.length / E;
  const S = E / o.nGroup;
  const w = new Float32Array(T * E);
  for (let t = 0; t < T; t++) {
    const s = Array.from(logits.subarray(t * E, (t + 1) * E), (v) => 1 / (1 + Math.exp(-v)));
    const c = s.map((v, e) => v + bias[e]);
    const groupScore = Array.from({ length: o.nGroup }, (_, g) => {
      const top = c.slice(g * S, (g + 1) * S).sort((a, b) => b - a);
      return top[0] + top[1];
    });
    const groups = new Set(groupScore.map((_, g) => g).sort((a, b) => groupScore[b] - groupScore[a] || a - b).slice(0, o.topkGroup));
    const chosen = c.map((_, e) => e).filter((e) => groups.has(Math.floor(e / S))).sort((a, b) => c[b] - c[a] || a - b).slice(0, o.k);
    const sum = chosen.reduce((a, e) => a + s[e], 0);
    for (const e of chosen) w[t * E + e] = (s[e] * o.scale) / (o.renormalize ? sum + 1e-20 : 1);
  }
  return w;
}
