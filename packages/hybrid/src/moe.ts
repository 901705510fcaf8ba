/**
 * Mixture-of-experts routing on the GPU, with no host round trip.
 *
 * Shape glossary:
 *   T  tokens     E  experts     k  experts per token     D  features
 *
 * `moeRouting` turns router logits (T, E) into a dense weight matrix (T, E):
 * softmax over experts, keep the top k (ties to the lower index), zero the rest,
 * optionally renormalise the kept weights to sum to one (Qwen3-Next's
 * norm_topk_prob, Granite's top-k-then-softmax). `moeAccumulate` adds
 * w[:, e] · h to y, so the layer is a sum over experts of weighted expert outputs.
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
const routingLayout = { T: 'u32', E: 'u32', k: 'u32', renorm: 'u32' } as const satisfies UniformLayout;
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
