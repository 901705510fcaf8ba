/**
 * The state of an S4D layer at the start of each chunk of Q tokens, for the chunked prefill ({@link s4dPrefill}):
 * a two-level scan of the ZOH recurrence x ← exp(dt·A)·x + (exp(dt·A) − 1)/A·u (S4D paper section 2), the same
 * split of a linear recurrence into chunks as Mamba-2's chunked SSD (Dao & Gu 2024, section 6), with a diagonal A:
 *
 *   1. chunk-local end states, all chunks in parallel (one thread per (b, c, h, n)), from a zero state:
 *        s[b, c, h, n] = Σ_{j < len_c} exp(dt·A)^(len_c − 1 − j) · (exp(dt·A) − 1)/A · u[b, c·Q + j, h]
 *      (Horner's rule, as the recurrence); len_c = min(Q, L − c·Q)
 *   2. a short sequential pass over the chunks (one thread per (b, h, n), ⌈L/Q⌉ steps):
 *        x_c = state at chunk c's start;  x_{c+1} = exp(dt·A·len_c)·x_c + s[c];  state ← x_chunks
 *      which overwrites s with the starting states x_c and leaves the state after all L tokens in `state`.
 *
 * O(L·H·N) work, an intermediate of (B, ⌈L/Q⌉, H, modes, 2): N/(2Q)·2 floats per token and channel.
 *
 * Shape glossary (packages/core/README.md, and s4d-params.ts): B batch, L seqlen, H channels, modes = N/2,
 * Q chunk length, chunks = ⌈L/Q⌉.
 */
import { type KernelDescriptor, type Runtime, StatespaceError, type Tensor, type TensorLike, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, assertArg, assertShape, linearDispatch, memoWgsl, wgslBindings } from '@statespace/core';
import { S4D_PARAM_BINDINGS, type S4DParams, WGSL_S4D_COMPLEX, s4dSizes } from './s4d-params.js';

const THREADS = 64;
const layout = { B: 'u32', L: 'u32', H: 'u32', modes: 'u32', Q: 'u32', chunks: 'u32' } as const satisfies UniformLayout;

type ChunkShape = { B: number; L: number; H: number; modes: number; Q: number };

function uniformsOf(shape: ChunkShape) {
  return { ...shape, chunks: Math.ceil(shape.L / shape.Q) };
}

/**
 * Builds pass 1: each chunk's end state from a zero start, one thread per (b, c, h, n).
 *
 * @example
 * ```ts
 * const kernel = createS4DChunkStatesKernel({ B: 2, L: 775, H: 24, modes: 32, Q: 256 }); // 4 chunks
 * console.log(kernel.dispatch); // [96, 1, 1]
 * ```
 */
export function createS4DChunkStatesKernel(shape: ChunkShape): KernelDescriptor {
  const bindings = [
    { name: 'uIn', type: 'f32', access: 'read' }, // (B, L, H)
    ...S4D_PARAM_BINDINGS,
    { name: 'S', type: 'f32', access: 'read_write' }, // (B, chunks, H, modes, 2)
  ] as const;
  const wgsl = memoWgsl('s4d_chunk_states', '', () => `${wgslBindings(layout, bindings)}
${WGSL_S4D_COMPLEX}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.B * u.chunks * u.H * u.modes) { return; }
  let n = i % u.modes;
  let h = (i / u.modes) % u.H;
  let c = (i / (u.modes * u.H)) % u.chunks;
  let b = i / (u.modes * u.H * u.chunks);
  let a = s4d_a_(h, n);
  let dta = s4d_dta_(h, n);
  let dA = cexp_(dta.x, dta.y);
  let dB = cdiv_(cexpm1_(dta.x, dta.y), a);
  let t1 = min(u.L, (c + 1u) * u.Q);
  var x = vec2<f32>(0.0, 0.0);
  for (var t = c * u.Q; t < t1; t++) { x = cmul_(dA, x) + dB * uIn[(b * u.L + t) * u.H + h]; }
  S[i * 2u] = x.x;
  S[i * 2u + 1u] = x.y;
}`);
  const uniforms = uniformsOf(shape);
  return {
    name: 's4d_chunk_states',
    cacheKey: '',
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch((shape.B * uniforms.chunks * shape.H * shape.modes) / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms,
  };
}

/**
 * Builds pass 2: the sequential pass over the chunks, one thread per (b, h, n); turns the end states into the
 * starting states and advances `state` over all L tokens.
 *
 * @example
 * ```ts
 * const kernel = createS4DChunkScanKernel({ B: 2, L: 775, H: 24, modes: 32, Q: 256 });
 * console.log(kernel.dispatch); // [24, 1, 1]
 * ```
 */
export function createS4DChunkScanKernel(shape: ChunkShape): KernelDescriptor {
  const bindings = [
    ...S4D_PARAM_BINDINGS,
    { name: 'S', type: 'f32', access: 'read_write' }, // (B, chunks, H, modes, 2)
    { name: 'state', type: 'f32', access: 'read_write' }, // (B, H, modes, 2)
  ] as const;
  const wgsl = memoWgsl('s4d_chunk_scan', '', () => `${wgslBindings(layout, bindings)}
${WGSL_S4D_COMPLEX}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.B * u.H * u.modes) { return; }
  let hn = i % (u.H * u.modes);
  let h = hn / u.modes;
  let n = hn % u.modes;
  let b = i / (u.H * u.modes);
  let dta = s4d_dta_(h, n);
  var x = vec2<f32>(state[i * 2u], state[i * 2u + 1u]);
  for (var c = 0u; c < u.chunks; c++) {
    let len = f32(min(u.Q, u.L - c * u.Q));
    let si = ((b * u.chunks + c) * u.H * u.modes + hn) * 2u;
    let s = vec2<f32>(S[si], S[si + 1u]);
    S[si] = x.x;
    S[si + 1u] = x.y;
    x = cmul_(cexp_(dta.x * len, dta.y * len), x) + s;
  }
  state[i * 2u] = x.x;
  state[i * 2u + 1u] = x.y;
}`);
  return {
    name: 's4d_chunk_scan',
    cacheKey: '',
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch((shape.B * shape.H * shape.modes) / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: uniformsOf(shape),
  };
}

/**
 * The state at the start of each chunk of `chunk` tokens of u (B, L, H), continuing from `state` (B, H, modes, 2),
 * which is advanced in place over all L tokens (as {@link s4dAdvanceState} would).
 *
 * @returns the starting states (B, ⌈L/chunk⌉, H, modes, 2); chunk 0's is the incoming `state`.
 * @throws StatespaceError `S4D_BIDIRECTIONAL` for a two-direction C, `SHAPE_MISMATCH` / `DTYPE_MISMATCH` for bad
 * inputs, `INVALID_ARGUMENT` for a chunk that is not a positive integer.
 * @example
 * ```ts
 * const starts = s4dChunkStates(rt, u, params, state, 256); // u (B, 775, H) -> (B, 4, H, modes, 2)
 * const y0 = s4dStateOutput(rt, params, starts, 775, 256);  // every chunk's response to its starting state
 * ```
 */
export function s4dChunkStates(runtime: Runtime, u: TensorLike, params: S4DParams, state: TensorLike, chunk: number): Tensor {
  const op = 's4dChunkStates';
  const { H, modes, channels } = s4dSizes(op, params);
  if (channels !== 1) throw new StatespaceError('S4D_BIDIRECTIONAL', `${op}: a bidirectional S4D layer has no state to continue from`);
  assertArg(Number.isInteger(chunk) && chunk >= 1, op, `chunk=${chunk} must be a positive integer`);
  if (u.shape.length !== 3 || u.shape[2] !== H) throw new StatespaceError('SHAPE_MISMATCH', `${op}: u has shape [${u.shape.join(',')}], expected [batch, seqlen, channels=${H}]`);
  const [B, L] = u.shape;
  assertShape(op, 'state', state.shape, { batch: B, channels: H, modes, complex: 2 });
  for (const [name, t] of [['u', u], ['state', state]] as const) {
    if (t.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${name} must be f32, got ${t.dtype}`);
  }
  const shape = { B, L, H, modes, Q: chunk };
  const S = runtime.empty([B, Math.ceil(L / chunk), H, modes, 2], 'f32', 's4d.chunkStates');
  runtime.run(createS4DChunkStatesKernel(shape), [u, params.logDt, params.logAReal, params.AImag, S]);
  runtime.run(createS4DChunkScanKernel(shape), [params.logDt, params.logAReal, params.AImag, S, state]);
  return S;
}
