/**
 * SSD step 3: the short recurrence between chunks (the A terms of the off-diagonal
 * blocks, Mamba-2 paper section 6):
 *
 *   S_{-1} = initial state (or 0)
 *   S_c    = exp(cs[last of chunk c]) · S_{c−1} + states_c
 *
 * `states` is overwritten in place with the state entering each chunk (S_{c−1}),
 * which step 5 reads, and `state` ends holding the final state S_{nC−1}.
 *
 * Shape glossary (see ssd-shape.ts): b batch, L tokens, H heads, P head dim, N d_state, nC chunks.
 * One thread per (b, h, p, n) element walks the chunks in order; neighbouring
 * threads read neighbouring n, so every chunk's load is coalesced.
 */
import {
  type KernelDescriptor,
  type Runtime,
  type TensorLike,
  type UniformLayout,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  assertShape,
  linearDispatch,
  wgslBindings,
} from '@statespace/core';
import { type SsdShape, numChunks, validateSsdShape } from './ssd-shape.js';

const THREADS = 256;
const layout = { batch: 'u32', L: 'u32', H: 'u32', PN: 'u32', Q: 'u32', nC: 'u32', hasInitial: 'u32' } as const satisfies UniformLayout;

/**
 * Builds the state-passing kernel (see the file comment).
 *
 * @example
 * ```ts
 * const kernel = createSsdStatePassingKernel(shape, false); // start from a zero state
 * ```
 */
export function createSsdStatePassingKernel(shape: SsdShape, hasInitial: boolean): KernelDescriptor {
  const bindings = [
    { name: 'dACs', type: 'f32', access: 'read' }, // (b, H, L)
    { name: 'states', type: 'f32', access: 'read_write' }, // (b, nC, H, P, N): chunk end states in, entering states out
    { name: 'state', type: 'f32', access: 'read_write' }, // (b, H, P, N): initial state in (when hasInitial), final state out
  ] as const;
  const wgsl = `${wgslBindings(layout, bindings)}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.batch * u.H * u.PN) { return; }
  let bh = i / u.PN;
  let e = i % u.PN;
  let h = bh % u.H;
  let b = bh / u.H;
  var run = 0.0;
  if (u.hasInitial == 1u) { run = state[i]; }
  for (var c = 0u; c < u.nC; c++) {
    let idx = ((b * u.nC + c) * u.H + h) * u.PN + e;
    let s = states[idx];
    states[idx] = run;
    let last = min((c + 1u) * u.Q, u.L) - 1u;
    run = exp(dACs[bh * u.L + last]) * run + s;
  }
  state[i] = run;
}`;
  const n = shape.batch * shape.heads * shape.headDim * shape.dState;
  return {
    name: 'ssd_state_passing',
    cacheKey: 'f32',
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch(n / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: {
      batch: shape.batch,
      L: shape.seqlen,
      H: shape.heads,
      PN: shape.headDim * shape.dState,
      Q: shape.chunkSize,
      nC: numChunks(shape),
      hasInitial: hasInitial ? 1 : 0,
    },
  };
}

/**
 * Step 3 of chunked SSD. Rewrites `states` (b, nC, H, P, N) in place into the
 * state entering each chunk and leaves the final state in `state` (b, H, P, N),
 * which is read first as the initial state when `hasInitial` is true.
 *
 * @example
 * ```ts
 * const state = rt.zeros([b, H, P, N]);
 * ssdStatePassing(rt, states, dACumsum, state, shape, { hasInitial: false });
 * ```
 */
export function ssdStatePassing(runtime: Runtime, states: TensorLike, dACumsum: TensorLike, state: TensorLike, shape: SsdShape, options: { hasInitial: boolean }): void {
  const op = 'ssdStatePassing';
  validateSsdShape(op, shape);
  const { batch: b, seqlen: L, heads: H, headDim: P, dState: N } = shape;
  assertShape(op, 'states', states.shape, { batch: b, chunks: numChunks(shape), heads: H, headDim: P, dState: N });
  assertShape(op, 'dACumsum', dACumsum.shape, { batch: b, heads: H, seqlen: L });
  assertShape(op, 'state', state.shape, { batch: b, heads: H, headDim: P, dState: N });
  runtime.run(createSsdStatePassingKernel(shape, options.hasInitial), [dACumsum, states, state]);
}

/**
 * CPU reference of step 3. Returns the states entering each chunk (b, nC, H, P, N)
 * and the final state (b, H, P, N).
 *
 * @example
 * ```ts
 * const { entering, final } = ssdStatePassingReference(states, dACumsum, undefined, shape); // no initial state
 * ```
 */
export function ssdStatePassingReference(
  states: Float32Array,
  cs: Float32Array,
  initial: Float32Array | undefined,
  shape: SsdShape,
): { entering: Float32Array; final: Float32Array } {
  const { batch: nb, seqlen: L, heads: H, headDim: P, dState: N, chunkSize: Q } = shape;
  const nC = numChunks(shape);
  const PN = P * N;
  const entering = new Float32Array(states.length);
  const final = new Float32Array(nb * H * PN);
  for (let b = 0; b < nb; b++) {
    for (let h = 0; h < H; h++) {
      const run = new Float64Array(PN);
      if (initial) for (let e = 0; e < PN; e++) run[e] = initial[(b * H + h) * PN + e];
      for (let c = 0; c < nC; c++) {
        const base = ((b * nC + c) * H + h) * PN;
        const decay = Math.exp(cs[(b * H + h) * L + Math.min((c + 1) * Q, L) - 1]);
        for (let e = 0; e < PN; e++) {
          entering[base + e] = run[e];
          run[e] = decay * run[e] + states[base + e];
        }
      }
      final.set(run, (b * H + h) * PN);
    }
  }
  return { entering, final };
}
