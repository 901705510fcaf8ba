/**
 * SSD step 5: the output of every chunk (Mamba-2 paper section 6, "chunk scan"):
 *
 *   y[l, h, p] = exp(cs[l]) · Σ_n C[l, g, n] · S_prev[c, h, p, n]                         (between chunks)
 *              + Σ_{s ≤ l, s in chunk} CB[l, s] · exp(cs[l] − cs[s]) · dt[s] · x[s, h, p]   (within the chunk)
 *              + D[h] · x[l, h, p]
 *
 * Shape glossary (see ssd-shape.ts): b batch, L tokens, H heads, P head dim, N d_state,
 * G groups (g = h / (H / G)), Q chunk length, nC chunks; S_prev is step 3's entering state.
 * One workgroup per (b, chunk, h, 64-token tile, 64-wide P tile): two tiled matmuls
 * into the same 4 × 4 register block per thread, first over N (C · S_prevᵀ, then
 * scaled by exp(cs)), then over the causal tokens of the chunk (the masked
 * semiseparable block built on the fly while staging it in workgroup memory).
 */
import {
  type DType,
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  assertArg,
  assertShape,
  linearDispatch,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
} from '@statespace/core';
import { type SsdOperand, type SsdShape, checkPerHead, numChunks, resolveOperand, validateSsdShape } from './ssd-shape.js';
import { TILE, TILE_K, WGSL_TILE_ACCUMULATE } from './tile.js';

const layout = {
  batch: 'u32',
  L: 'u32',
  H: 'u32',
  P: 'u32',
  N: 'u32',
  G: 'u32',
  Q: 'u32',
  nC: 'u32',
  xOffset: 'u32',
  xStride: 'u32',
  cOffset: 'u32',
  cStride: 'u32',
  tilesQ: 'u32',
  tilesP: 'u32',
} as const satisfies UniformLayout;

/**
 * Builds the chunk-scan kernel (see the file comment). `dDtype` null: no D skip.
 *
 * @example
 * ```ts
 * const kernel = createSsdChunkScanKernel(shape, { offset: 0, stride: H * P }, { offset: 0, stride: G * N }, { dDtype: 'f32' });
 * ```
 */
export function createSsdChunkScanKernel(
  shape: SsdShape,
  x: { offset: number; stride: number },
  C: { offset: number; stride: number },
  attrs: { dDtype?: DType | null } = {},
): KernelDescriptor {
  const dDtype = attrs.dDtype === undefined ? 'f32' : attrs.dDtype;
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (b, L) rows of (H, P) at xOffset + row·xStride
    { name: 'Cm', type: 'f32', access: 'read' }, // (b, L) rows of (G, N) at cOffset + row·cStride
    { name: 'dt', type: 'f32', access: 'read' }, // (b, H, L)
    { name: 'dACs', type: 'f32', access: 'read' }, // (b, H, L)
    { name: 'cb', type: 'f32', access: 'read' }, // (b, nC, G, Q, Q)
    { name: 'states', type: 'f32', access: 'read' }, // (b, nC, H, P, N): state entering each chunk
    ...(dDtype ? [{ name: 'Dp', type: wgslStorageType(dDtype), access: 'read' } as const] : []), // (H)
    { name: 'y', type: 'f32', access: 'read_write' }, // (b, L, H, P)
  ] as const;
  const wgsl = `${wgslBindings(layout, bindings)}
${dDtype ? wgslLoadFloat('loadD', 'Dp', dDtype) : 'fn loadD(i: u32) -> f32 { return 0.0; }'}
const TS = ${TILE}u;
const TK = ${TILE_K}u;
var<workgroup> As: array<f32, ${TILE * TILE_K}>; // [k][i]: C over N, then the masked block over tokens
var<workgroup> Bs: array<f32, ${TILE * TILE_K}>; // [k][p]: S_prev over N, then x over tokens
@compute @workgroup_size(16, 16, 1)
fn main(${WGSL_BUILTINS}) {
  let wg = ${WGSL_LINEAR_WORKGROUP};
  let tiles = u.tilesQ * u.tilesP;
  if (wg >= u.batch * u.nC * u.H * tiles) { return; }
  let tile = wg % tiles;
  let bch = wg / tiles;
  let h = bch % u.H;
  let bc = bch / u.H;
  let c = bc % u.nC;
  let b = bc / u.nC;
  let g = h / (u.H / u.G);
  let i0 = (tile / u.tilesP) * TS;
  let p0 = (tile % u.tilesP) * TS;
  let l0 = c * u.Q;
  let Qc = min(u.Q, u.L - l0);
  if (i0 >= Qc) { return; }
  let hb = (b * u.H + h) * u.L + l0;
  let cbBase = ((b * u.nC + c) * u.G + g) * u.Q;
  var acc: array<f32, 16>;
  // Between chunks: C · S_prevᵀ over N.
  for (var n0 = 0u; n0 < u.N; n0 += TK) {
    for (var r = 0u; r < 4u; r++) {
      let idx = li + r * 256u;
      let kk = idx % TK;
      let rc = idx / TK;
      let n = n0 + kk;
      var cv = 0.0;
      var sv = 0.0;
      if (n < u.N) {
        let i = i0 + rc;
        if (i < Qc) { cv = Cm[u.cOffset + (b * u.L + l0 + i) * u.cStride + g * u.N + n]; }
        let p = p0 + rc;
        if (p < u.P) { sv = states[(bch * u.P + p) * u.N + n]; }
      }
      As[kk * TS + rc] = cv;
      Bs[kk * TS + rc] = sv;
    }
    workgroupBarrier();
    ${WGSL_TILE_ACCUMULATE}
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let qi = i0 + lid.y + 16u * i;
    var e = 0.0;
    if (qi < Qc) { e = exp(dACs[hb + qi]); }
    for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] *= e; }
  }
  // Within the chunk: the causal block M[i, s] = CB[i, s] · exp(cs[i] − cs[s]) · dt[s], times x.
  let sEnd = min(i0 + TS, Qc);
  for (var s0 = 0u; s0 < sEnd; s0 += TK) {
    for (var r = 0u; r < 4u; r++) {
      let idx = li + r * 256u;
      let kk = idx % TK;
      let ii = idx / TK;
      let i = i0 + ii;
      let s = s0 + kk;
      var m = 0.0;
      if (i < Qc && s <= i) { m = cb[(cbBase + i) * u.Q + s] * exp(dACs[hb + i] - dACs[hb + s]) * dt[hb + s]; }
      As[kk * TS + ii] = m;
      let sx = s0 + idx / TS;
      let p = p0 + idx % TS;
      var xv = 0.0;
      if (sx < Qc && p < u.P) { xv = x[u.xOffset + (b * u.L + l0 + sx) * u.xStride + h * u.P + p]; }
      Bs[idx] = xv;
    }
    workgroupBarrier();
    ${WGSL_TILE_ACCUMULATE}
    workgroupBarrier();
  }
  let dh = loadD(h);
  for (var i = 0u; i < 4u; i++) {
    let qi = i0 + lid.y + 16u * i;
    if (qi >= Qc) { continue; }
    let row = b * u.L + l0 + qi;
    for (var j = 0u; j < 4u; j++) {
      let p = p0 + lid.x + 16u * j;
      if (p < u.P) {
        let xv = x[u.xOffset + row * u.xStride + h * u.P + p];
        y[(row * u.H + h) * u.P + p] = acc[i * 4u + j] + dh * xv;
      }
    }
  }
}`;
  const tilesQ = Math.ceil(shape.chunkSize / TILE);
  const tilesP = Math.ceil(shape.headDim / TILE);
  const nC = numChunks(shape);
  return {
    name: 'ssd_chunk_scan',
    cacheKey: dDtype ?? 'noD',
    wgsl,
    workgroupSize: [16, 16, 1],
    dispatch: linearDispatch(shape.batch * nC * shape.heads * tilesQ * tilesP),
    bindings,
    uniformLayout: layout,
    uniforms: {
      batch: shape.batch,
      L: shape.seqlen,
      H: shape.heads,
      P: shape.headDim,
      N: shape.dState,
      G: shape.groups,
      Q: shape.chunkSize,
      nC,
      xOffset: x.offset,
      xStride: x.stride,
      cOffset: C.offset,
      cStride: C.stride,
      tilesQ,
      tilesP,
    },
  };
}

/**
 * Step 5 of chunked SSD: y (b, L, H, P) from x, C, the processed dt and its chunk
 * cumsum, CB (step 4) and the states entering each chunk (step 3), plus the D skip.
 *
 * @example
 * ```ts
 * const y = ssdChunkScan(rt, x, C, dt, dACumsum, cb, states, D, shape);
 * ```
 */
export function ssdChunkScan(
  runtime: Runtime,
  x: SsdOperand,
  C: SsdOperand,
  dt: TensorLike,
  dACumsum: TensorLike,
  cb: TensorLike,
  states: TensorLike,
  D: TensorLike | undefined,
  shape: SsdShape,
  options: { out?: Tensor } = {},
): Tensor {
  const op = 'ssdChunkScan';
  validateSsdShape(op, shape);
  const { batch: b, seqlen: L, heads: H, headDim: P, dState: N, groups: G, chunkSize: Q } = shape;
  const nC = numChunks(shape);
  const xo = resolveOperand(op, 'x', x, b * L, H * P, { batch: b, seqlen: L, heads: H, headDim: P });
  const co = resolveOperand(op, 'C', C, b * L, G * N, { batch: b, seqlen: L, groups: G, dState: N });
  assertShape(op, 'dt', dt.shape, { batch: b, heads: H, seqlen: L });
  assertShape(op, 'dACumsum', dACumsum.shape, { batch: b, heads: H, seqlen: L });
  assertShape(op, 'cb', cb.shape, { batch: b, chunks: nC, groups: G, chunkSize: Q, chunkSize2: Q });
  assertShape(op, 'states', states.shape, { batch: b, chunks: nC, heads: H, headDim: P, dState: N });
  if (D) checkPerHead(op, 'D', D, H);
  const y = options.out ?? runtime.empty([b, L, H, P], 'f32', 'ssd.y');
  assertArg(y.size === b * L * H * P, op, `out has ${y.size} elements, expected ${b * L * H * P}`);
  const kernel = createSsdChunkScanKernel(shape, xo, co, { dDtype: D ? D.dtype : null });
  runtime.run(kernel, D ? [xo.tensor, co.tensor, dt, dACumsum, cb, states, D, y] : [xo.tensor, co.tensor, dt, dACumsum, cb, states, y]);
  return y;
}

/**
 * CPU reference of step 5 for contiguous x (b, L, H, P), C (b, L, G, N), dt and cs
 * (b, H, L), cb (b, nC, G, Q, Q) and the entering states (b, nC, H, P, N). Returns (b, L, H, P).
 *
 * @example
 * ```ts
 * const y = ssdChunkScanReference(x, C, dt, dACumsum, cb, entering, D, shape); // steps 1-4 in ssdChunkCumsumReference's example
 * ```
 */
export function ssdChunkScanReference(
  x: Float32Array,
  C: Float32Array,
  dt: Float32Array,
  cs: Float32Array,
  cb: Float32Array,
  entering: Float32Array,
  D: Float32Array | undefined,
  shape: SsdShape,
): Float32Array {
  const { batch: nb, seqlen: L, heads: H, headDim: P, dState: N, groups: G, chunkSize: Q } = shape;
  const nC = numChunks(shape);
  const y = new Float32Array(nb * L * H * P);
  for (let b = 0; b < nb; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      const hb = (b * H + h) * L;
      for (let l = 0; l < L; l++) {
        const c = Math.floor(l / Q);
        const l0 = c * Q;
        const i = l - l0;
        const sBase = ((b * nC + c) * H + h) * P * N;
        const cbBase = ((b * nC + c) * G + g) * Q * Q;
        const decay = Math.exp(cs[hb + l]);
        for (let p = 0; p < P; p++) {
          let off = 0;
          for (let n = 0; n < N; n++) off += C[((b * L + l) * G + g) * N + n] * entering[sBase + p * N + n];
          let diag = 0;
          for (let s = 0; s <= i; s++) {
            diag += cb[cbBase + i * Q + s] * Math.exp(cs[hb + l] - cs[hb + l0 + s]) * dt[hb + l0 + s] * x[((b * L + l0 + s) * H + h) * P + p];
          }
          const xv = x[((b * L + l) * H + h) * P + p];
          y[((b * L + l) * H + h) * P + p] = decay * off + diag + (D ? D[h] * xv : 0);
        }
      }
    }
  }
  return y;
}
