/**
 * The output gate of Qwen3-Next's gated attention: q_proj emits, per head,
 * [query (D) | gate (D)]; the attention output is multiplied by sigmoid(gate)
 * before o_proj (transformers Qwen3NextAttention: `attn_output * torch.sigmoid(gate)`).
 *
 * Shape glossary:
 *   B  batch     L  tokens     H  heads     D  head_dim
 */
import {
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  StatespaceError,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  linearDispatch,
  wgslBindings,
  memoWgsl,
} from '@statespace/core';

const THREADS = 256;
const layout = { n: 'u32', D: 'u32' } as const satisfies UniformLayout;

/**
 * Builds y = o · sigmoid(gate), the gate read from the second half of each (token, head) row of qg.
 * @example
 * ```ts
 * const k = createSigmoidGateKernel(2 * 4 * 16, 16);
 * ```
 */
export function createSigmoidGateKernel(n: number, D: number): KernelDescriptor {
  const bindings = [
    { name: 'o', type: 'f32', access: 'read' }, // (B, L, H, D)
    { name: 'qg', type: 'f32', access: 'read' }, // (B, L, H, 2D) = [query | gate]
    { name: 'y', type: 'f32', access: 'read_write' }, // (B, L, H·D)
  ] as const;
  const wgsl = memoWgsl('sigmoid_gate', '', () => `${wgslBindings(layout, bindings)}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.n) { return; }
  let gate = qg[(i / u.D) * 2u * u.D + u.D + i % u.D];
  y[i] = o[i] * (1.0 / (1.0 + exp(-gate)));
}`);
  return { name: 'sigmoid_gate', cacheKey: '', wgsl, workgroupSize: [THREADS, 1, 1], dispatch: linearDispatch(Math.ceil(n / THREADS)), bindings, uniformLayout: layout, uniforms: { n, D } };
}

/**
 * y = o · sigmoid(gate) for o (B, L, H, D) and qg (B, L, H·2D) whose rows
 * interleave [query | gate] per head. Returns (B, L, H·D).
 *
 * @example
 * ```ts
 * const gated = sigmoidGate(rt, attnOut, qProjOut); // Qwen3-Next
 * ```
 */
export function sigmoidGate(runtime: Runtime, o: TensorLike, qg: TensorLike): Tensor {
  const [B, L, H, D] = o.shape;
  if (o.shape.length !== 4 || qg.size !== 2 * o.size || qg.shape[0] !== B || qg.shape[1] !== L) {
    throw new StatespaceError('SHAPE_MISMATCH', `sigmoidGate: qg has shape [${qg.shape.join(',')}], expected [batch=${B}, seqlen=${L}, ${H}x2x${D}] for o [${o.shape.join(',')}]`);
  }
  const y = runtime.empty([B, L, H * D], 'f32', 'sigmoidGate.y');
  runtime.run(createSigmoidGateKernel(o.size, D), [o, qg, y]);
  return y;
}
