/**
 * S4D's long convolution (the prefill / "convolution mode" of an LTI SSM, S4D paper section 2):
 *
 *   y[b, t, h] = act( Σ_{s ≤ t} K[0, t−s, h]·u[b, s, h]  (+ Σ_{s > t} K[1, s−t−1, h]·u[b, s, h] when bidirectional)
 *                     + D[h]·u[b, t, h] + add[b, t, h] )
 *
 * computed directly in 16×16 tiles (16 channels × 16 time steps per workgroup; u and K go through workgroup
 * memory 16 inputs at a time), not by FFT: WGSL has no FFT, an FFT convolution needs O(L) complex buffers per
 * channel, and the direct sum is exact in the order PyTorch's f32 FFT only approximates.
 *
 * `chunk` Q makes the causal half block-diagonal: an output sums only over the inputs of its own chunk of Q tokens
 * (Σ_{chunk start ≤ s ≤ t}), O(L·Q) work and only Q taps of K read instead of O(L²) and L taps. That is the
 * in-chunk half of the chunked prefill ({@link s4dPrefill}); the earlier chunks enter through the state
 * (`add`, or the accumulated y of {@link createS4DConvKernel}'s `accumulate`). The two-sided (bidirectional)
 * convolution cannot be chunked this way (its backward half needs the future) and always sums over all of L. The bidirectional term is state-spaces/s4 `FFTConv`'s two-sided kernel
 * (pad(k0, (0, L)) + pad(k1.flip(−1), (L, 0)) with an FFT of 2L): the backward half sees strictly later inputs.
 * `add` is where a non-zero starting state enters (see {@link s4dStateOutput}), before the activation.
 *
 * Shape glossary (packages/core/README.md): B batch, L seqlen, H channels, Lk kernel rows (≥ L).
 */
import { type KernelDescriptor, type Runtime, StatespaceError, type Tensor, type TensorLike, type UniformLayout, assertArg, assertShape, memoWgsl, wgslActivations, wgslBindings } from '@statespace/core';

/** Options of {@link s4dConv}. */
export interface S4DConvAttrs {
  /** (H): skip connection D·u, added before the activation. */
  D?: TensorLike;
  /** (B, L, H): added before the activation (the starting state's response). */
  add?: TensorLike;
  /** 'gelu' (exact erf, S4D's `nn.GELU()`) or 'none' (default). */
  activation?: 'gelu' | 'none';
  /**
   * Q, a multiple of {@link S4D_CONV_TILE}: sum the causal half only within chunks of Q tokens (then K needs only
   * min(L, Q) rows). Default: the whole sequence. Refused for a bidirectional (two-channel) K.
   */
  chunk?: number;
}

/** Tile edge: channels and time steps per workgroup, and inputs per pass through workgroup memory. */
export const S4D_CONV_TILE = 16;
const T = S4D_CONV_TILE;
const layout = { B: 'u32', L: 'u32', H: 'u32', Lk: 'u32', Q: 'u32' } as const satisfies UniformLayout;

/**
 * Builds the tiled causal (or two-sided) convolution kernel. `Q` (a multiple of the tile; default L rounded up to
 * it) limits the causal half to chunks of Q tokens; `accumulate` adds y's previous contents (a state's response
 * written there first) before the activation, so no separate `add` buffer of (B, L, H) is needed.
 *
 * @example
 * ```ts
 * const kernel = createS4DConvKernel({ B: 2, L: 37, H: 24, Lk: 37 }, { skip: true, add: false, bidirectional: false, activation: 'gelu' });
 * console.log(kernel.dispatch); // [2, 3, 2]
 * ```
 */
export function createS4DConvKernel(
  shape: { B: number; L: number; H: number; Lk: number; Q?: number },
  attrs: { skip: boolean; add: boolean; bidirectional: boolean; activation: 'gelu' | 'none'; accumulate?: boolean },
): KernelDescriptor {
  const bindings = [
    { name: 'uIn', type: 'f32', access: 'read' }, // (B, L, H)
    { name: 'K', type: 'f32', access: 'read' }, // (channels, Lk, H)
    ...(attrs.skip ? [{ name: 'D', type: 'f32', access: 'read' } as const] : []), // (H)
    ...(attrs.add ? [{ name: 'addIn', type: 'f32', access: 'read' } as const] : []), // (B, L, H)
    { name: 'y', type: 'f32', access: 'read_write' }, // (B, L, H)
  ] as const;
  const cacheKey = `${attrs.skip ? 'D' : ''}${attrs.add ? 'add' : ''}${attrs.accumulate ? 'acc' : ''}${attrs.bidirectional ? 'bi' : ''}_${attrs.activation}`;
  const wgsl = memoWgsl('s4d_conv', cacheKey, () => `${wgslBindings(layout, bindings)}
${wgslActivations()}
var<workgroup> uT: array<f32, ${T * T}>;      // (s, h) of one input tile
var<workgroup> kT: array<f32, ${2 * T * T}>;  // (lag − first lag, h): the 2T−1 lags one tile pair needs
@compute @workgroup_size(${T}, ${T}, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let hl = lid.x;
  let tl = lid.y;
  let h = wid.x * ${T}u + hl;
  let t0 = wid.y * ${T}u;
  let t = t0 + tl;
  let b = wid.z;
  let hOk = h < u.H;
  var acc = 0.0;
  // causal half: input tiles of t's chunk (Q a multiple of ${T}, so no tile straddles two), s0 ≤ t0;
  // lag t − s spans t0 − s0 − ${T - 1} ..= t0 − s0 + ${T - 1}
  for (var sc = (t0 / u.Q) * (u.Q / ${T}u); sc <= wid.y; sc++) {
    let s0 = sc * ${T}u;
    var uv = 0.0;
    if (hOk && s0 + tl < u.L) { uv = uIn[(b * u.L + s0 + tl) * u.H + h]; }
    uT[tl * ${T}u + hl] = uv;
    for (var j = tl; j < ${2 * T - 1}u; j += ${T}u) {
      let lag = i32(t0) - i32(s0) - ${T - 1} + i32(j);
      var kv = 0.0;
      if (hOk && lag >= 0 && lag < i32(u.Lk)) { kv = K[u32(lag) * u.H + h]; }
      kT[j * ${T}u + hl] = kv;
    }
    workgroupBarrier();
    for (var i = 0u; i < ${T}u; i++) { acc += kT[(tl + ${T - 1}u - i) * ${T}u + hl] * uT[i * ${T}u + hl]; }
    workgroupBarrier();
  }
${
  attrs.bidirectional
    ? `  // backward half: input tiles s0 ≥ t0; lag s − t − 1 spans s0 − t0 − ${T} ..= s0 − t0 + ${T - 2}
  let tiles = (u.L + ${T - 1}u) / ${T}u;
  for (var sc = wid.y; sc < tiles; sc++) {
    let s0 = sc * ${T}u;
    var uv = 0.0;
    if (hOk && s0 + tl < u.L) { uv = uIn[(b * u.L + s0 + tl) * u.H + h]; }
    uT[tl * ${T}u + hl] = uv;
    for (var j = tl; j < ${2 * T - 1}u; j += ${T}u) {
      let lag = i32(s0) - i32(t0) - ${T} + i32(j);
      var kv = 0.0;
      if (hOk && lag >= 0 && lag < i32(u.Lk)) { kv = K[(u.Lk + u32(lag)) * u.H + h]; }
      kT[j * ${T}u + hl] = kv;
    }
    workgroupBarrier();
    for (var i = 0u; i < ${T}u; i++) { acc += kT[(i + ${T - 1}u - tl) * ${T}u + hl] * uT[i * ${T}u + hl]; }
    workgroupBarrier();
  }
`
    : ''
}  if (!hOk || t >= u.L) { return; }
  let o = (b * u.L + t) * u.H + h;
  var v = acc;
${attrs.skip ? '  v += D[h] * uIn[o];\n' : ''}${attrs.add ? '  v += addIn[o];\n' : ''}${attrs.accumulate ? '  v += y[o];\n' : ''}  y[o] = ${attrs.activation === 'gelu' ? 'gelu_(v)' : 'v'};
}`);
  return {
    name: 's4d_conv',
    cacheKey,
    wgsl,
    workgroupSize: [T, T, 1],
    dispatch: [Math.ceil(shape.H / T), Math.ceil(shape.L / T), shape.B],
    bindings,
    uniformLayout: layout,
    uniforms: { B: shape.B, L: shape.L, H: shape.H, Lk: shape.Lk, Q: shape.Q ?? Math.ceil(shape.L / T) * T },
  };
}

/**
 * Convolves u (B, L, H) with an S4D kernel K (channels, Lk, H), Lk ≥ L (only its first L rows are read): causal with
 * one channel, two-sided (state-spaces/s4's bidirectional `FFTConv`) with two. With `chunk` Q, causal only, each
 * output sums over its own chunk of Q tokens and Lk ≥ min(L, Q) suffices: O(L·Q) instead of O(L²).
 *
 * @throws StatespaceError `SHAPE_MISMATCH` naming the input and the expected shape, `DTYPE_MISMATCH` for non-f32
 * inputs, `INVALID_ARGUMENT` for a chunk that is not a positive multiple of 16, `S4D_BIDIRECTIONAL` for a chunked
 * two-sided convolution.
 * @example
 * ```ts
 * const K = s4dKernel(rt, params, 37);                                     // (1, 37, H)
 * const y = s4dConv(rt, u, K, { D: params.D, activation: 'gelu' });        // u (B, 37, H) -> (B, 37, H)
 * const yChunks = s4dConv(rt, u, K16, { chunk: 16 });                      // K16 (1, 16, H): chunks of 16 tokens
 * ```
 */
export function s4dConv(runtime: Runtime, u: TensorLike, K: TensorLike, attrs: S4DConvAttrs = {}): Tensor {
  const op = 's4dConv';
  if (u.shape.length !== 3) throw new StatespaceError('SHAPE_MISMATCH', `${op}: u has shape [${u.shape.join(',')}], expected [batch, seqlen, channels]`);
  const [B, L, H] = u.shape;
  const { chunk } = attrs;
  if (chunk !== undefined) {
    assertArg(Number.isInteger(chunk) && chunk >= T && chunk % T === 0, op, `chunk=${chunk} must be a positive multiple of ${T}`);
    if (K.shape[0] === 2) throw new StatespaceError('S4D_BIDIRECTIONAL', `${op}: a two-sided (bidirectional) convolution cannot be chunked: its backward half needs the later chunks`);
  }
  const rows = chunk === undefined ? L : Math.min(L, chunk);
  if (K.shape.length !== 3 || (K.shape[0] !== 1 && K.shape[0] !== 2) || K.shape[1] < rows || K.shape[2] !== H) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: K has shape [${K.shape.join(',')}], expected [channels=1 or 2, kernel rows ≥ ${rows}, channels=${H}]`);
  }
  if (attrs.D) assertShape(op, 'D', attrs.D.shape, { channels: H });
  if (attrs.add) assertShape(op, 'add', attrs.add.shape, { batch: B, seqlen: L, channels: H });
  for (const [name, t] of [['u', u], ['K', K], ['D', attrs.D], ['add', attrs.add]] as const) {
    if (t && t.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${name} must be f32, got ${t.dtype}`);
  }
  const y = runtime.empty([B, L, H], 'f32', 's4d.conv.y');
  const kernel = createS4DConvKernel(
    { B, L, H, Lk: K.shape[1], Q: chunk },
    { skip: !!attrs.D, add: !!attrs.add, bidirectional: K.shape[0] === 2, activation: attrs.activation ?? 'none' },
  );
  runtime.run(kernel, [u, K, ...(attrs.D ? [attrs.D] : []), ...(attrs.add ? [attrs.add] : []), y]);
  return y;
}
