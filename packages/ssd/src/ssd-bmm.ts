/**
 * SSD step 4: C·Bᵀ inside each chunk, per group (the "attention-like" matrix of
 * the diagonal blocks, Mamba-2 paper section 6):
 *
 *   CB[b, c, g, i, j] = Σ_n C[c·Q + i, g, n] · B[c·Q + j, g, n]       for j ≤ i (the causal part)
 *
 * Shape glossary (see ssd-shape.ts): b batch, L tokens, G groups, N d_state, Q chunk length, nC chunks.
 * 64 × 64 output tiles of the (Q × Q) matrix; tiles wholly above the diagonal are
 * skipped (never read by step 5), elements above the diagonal inside a diagonal
 * tile are written but never read. 16-wide slices of C and B in workgroup memory.
 */
import {
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type UniformLayout,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  linearDispatch,
  wgslBindings,
} from '@statespace/core';
import { type SsdOperand, type SsdShape, numChunks, resolveOperand, validateSsdShape } from './ssd-shape.js';
import { TILE, TILE_K, WGSL_TILE_ACCUMULATE } from './tile.js';

const layout = {
  batch: 'u32',
  L: 'u32',
  G: 'u32',
  N: 'u32',
  Q: 'u32',
  nC: 'u32',
  cOffset: 'u32',
  cStride: 'u32',
  bOffset: 'u32',
  bStride: 'u32',
  tilesQ: 'u32',
} as const satisfies UniformLayout;

/**
 * Builds the C·Bᵀ kernel (see the file comment).
 *
 * @example
 * ```ts
 * const kernel = createSsdBmmKernel(shape, { offset: 0, stride: G * N }, { offset: 0, stride: G * N }); // contiguous C and B
 * ```
 */
export function createSsdBmmKernel(shape: SsdShape, C: { offset: number; stride: number }, B: { offset: number; stride: number }): KernelDescriptor {
  const bindings = [
    { name: 'Cm', type: 'f32', access: 'read' }, // (b, L) rows of (G, N) at cOffset + row·cStride
    { name: 'Bm', type: 'f32', access: 'read' }, // (b, L) rows of (G, N) at bOffset + row·bStride
    { name: 'cb', type: 'f32', access: 'read_write' }, // (b, nC, G, Q, Q)
  ] as const;
  const wgsl = `${wgslBindings(layout, bindings)}
const TS = ${TILE}u;
const TK = ${TILE_K}u;
var<workgroup> As: array<f32, ${TILE * TILE_K}>; // [n][i] slice of C
var<workgroup> Bs: array<f32, ${TILE * TILE_K}>; // [n][j] slice of B
@compute @workgroup_size(16, 16, 1)
fn main(${WGSL_BUILTINS}) {
  let wg = ${WGSL_LINEAR_WORKGROUP};
  let tiles = u.tilesQ * u.tilesQ;
  if (wg >= u.batch * u.nC * u.G * tiles) { return; }
  let tile = wg % tiles;
  let bcg = wg / tiles;
  let g = bcg % u.G;
  let bc = bcg / u.G;
  let c = bc % u.nC;
  let b = bc / u.nC;
  let i0 = (tile / u.tilesQ) * TS;
  let j0 = (tile % u.tilesQ) * TS;
  let l0 = c * u.Q;
  let Qc = min(u.Q, u.L - l0);
  if (j0 > i0 || i0 >= Qc) { return; }
  var acc: array<f32, 16>;
  for (var n0 = 0u; n0 < u.N; n0 += TK) {
    for (var r = 0u; r < 4u; r++) {
      let idx = li + r * 256u;
      let kk = idx % TK;
      let rc = idx / TK;
      let n = n0 + kk;
      var cv = 0.0;
      var bv = 0.0;
      if (n < u.N) {
        let i = i0 + rc;
        if (i < Qc) { cv = Cm[u.cOffset + (b * u.L + l0 + i) * u.cStride + g * u.N + n]; }
        let j = j0 + rc;
        if (j < Qc) { bv = Bm[u.bOffset + (b * u.L + l0 + j) * u.bStride + g * u.N + n]; }
      }
      As[kk * TS + rc] = cv;
      Bs[kk * TS + rc] = bv;
    }
    workgroupBarrier();
    ${WGSL_TILE_ACCUMULATE}
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let qi = i0 + lid.y + 16u * i;
    if (qi >= u.Q) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let qj = j0 + lid.x + 16u * j;
      if (qj < u.Q) { cb[(bcg * u.Q + qi) * u.Q + qj] = acc[i * 4u + j]; }
    }
  }
}`;
  const tilesQ = Math.ceil(shape.chunkSize / TILE);
  const nC = numChunks(shape);
  return {
    name: 'ssd_bmm',
    cacheKey: 'f32',
    wgsl,
    workgroupSize: [16, 16, 1],
    dispatch: linearDispatch(shape.batch * nC * shape.groups * tilesQ * tilesQ),
    bindings,
    uniformLayout: layout,
    uniforms: {
      batch: shape.batch,
      L: shape.seqlen,
      G: shape.groups,
      N: shape.dState,
      Q: shape.chunkSize,
      nC,
      cOffset: C.offset,
      cStride: C.stride,
      bOffset: B.offset,
      bStride: B.stride,
      tilesQ,
    },
  };
}

/**
 * Step 4 of chunked SSD: CB = C·Bᵀ per chunk and group, (b, nC, G, Q, Q); only the
 * lower triangle (j ≤ i, both inside the sequence) is defined.
 *
 * @example
 * ```ts
 * const cb = ssdBmm(rt, C, B, shape);
 * ```
 */
export function ssdBmm(runtime: Runtime, C: SsdOperand, B: SsdOperand, shape: SsdShape): Tensor {
  const op = 'ssdBmm';
  validateSsdShape(op, shape);
  const { batch: b, seqlen: L, dState: N, groups: G, chunkSize: Q } = shape;
  const co = resolveOperand(op, 'C', C, b * L, G * N, { batch: b, seqlen: L, groups: G, dState: N });
  const bo = resolveOperand(op, 'B', B, b * L, G * N, { batch: b, seqlen: L, groups: G, dState: N });
  const cb = runtime.empty([b, numChunks(shape), G, Q, Q], 'f32', 'ssd.cb');
  runtime.run(createSsdBmmKernel(shape, co, bo), [co.tensor, bo.tensor, cb]);
  return cb;
}

/**
 * CPU reference of step 4 for contiguous C, B (b, L, G, N). Returns (b, nC, G, Q, Q)
 * with the causal part (j ≤ i < valid length) filled and zeros elsewhere.
 *
 * @example
 * ```ts
 * const cb = ssdBmmReference(C, B, shape); // (b, nC, G, Q, Q)
 * ```
 */
export function ssdBmmReference(C: Float32Array, B: Float32Array, shape: SsdShape): Float32Array {
  const { batch: nb, seqlen: L, dState: N, groups: G, chunkSize: Q } = shape;
  const nC = numChunks(shape);
  const out = new Float32Array(nb * nC * G * Q * Q);
  for (let b = 0; b < nb; b++) {
    for (let c = 0; c < nC; c++) {
      const l0 = c * Q;
      const Qc = Math.min(Q, L - l0);
      for (let g = 0; g < G; g++) {
        const base = ((b * nC + c) * G + g) * Q * Q;
        for (let i = 0; i < Qc; i++) {
          for (let j = 0; j <= i; j++) {
            let s = 0;
            for (let n = 0; n < N; n++) s += C[((b * L + l0 + i) * G + g) * N + n] * B[((b * L + l0 + j) * G + g) * N + n];
            out[base + i * Q + j] = s;
          }
        }
      }
    }
  }
  return out;
}
