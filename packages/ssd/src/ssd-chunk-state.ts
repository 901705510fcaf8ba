/**
 * SSD step 2: each chunk's end state from a zero start (the B terms of the
 * low-rank off-diagonal blocks, Mamba-2 paper section 6):
 *
 *   states[b, c, h, p, n] = Σ_{l in chunk c} x[l, h, p] · dt[l, h] · exp(cs[last] − cs[l]) · B[l, g(h), n]
 *
 * Shape glossary (see ssd-shape.ts): b batch, L tokens, H heads, P head dim, N d_state,
 * G groups (g(h) = h / (H / G)), Q chunk length, nC chunks.
 * It is a (P × Q)·(Q × N) matmul per (b, c, h): 64 × 64 output tiles, 16-token
 * slices of x (pre-scaled by the decay) and B staged in workgroup memory (8 KB),
 * 256 threads each accumulating a 4 × 4 block.
 */
import {
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  assertShape,
  linearDispatch,
  wgslBindings,
} from '@statespace/core';
import { type SsdOperand, type SsdShape, numChunks, resolveOperand, validateSsdShape } from './ssd-shape.js';
import { WGSL_TILE_ACCUMULATE, TILE, TILE_K } from './tile.js';

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
  bOffset: 'u32',
  bStride: 'u32',
  tilesP: 'u32',
  tilesN: 'u32',
} as const satisfies UniformLayout;

/**
 * Builds the chunk-state kernel (see the file comment).
 *
 * @example
 * ```ts
 * const kernel = createSsdChunkStateKernel(shape, { offset: 0, stride: H * P }, { offset: 0, stride: G * N });
 * ```
 */
export function createSsdChunkStateKernel(shape: SsdShape, x: { offset: number; stride: number }, B: { offset: number; stride: number }): KernelDescriptor {
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (b, L) rows of (H, P) at xOffset + row·xStride
    { name: 'Bm', type: 'f32', access: 'read' }, // (b, L) rows of (G, N) at bOffset + row·bStride
    { name: 'dt', type: 'f32', access: 'read' }, // (b, H, L)
    { name: 'dACs', type: 'f32', access: 'read' }, // (b, H, L)
    { name: 'states', type: 'f32', access: 'read_write' }, // (b, nC, H, P, N)
  ] as const;
  const wgsl = `${wgslBindings(layout, bindings)}
const TS = ${TILE}u;
const TK = ${TILE_K}u;
var<workgroup> As: array<f32, ${TILE * TILE_K}>; // (TK tokens, TS) slice of x·dt·decay, [k][p]
var<workgroup> Bs: array<f32, ${TILE * TILE_K}>; // (TK tokens, TS) slice of B, [k][n]
@compute @workgroup_size(16, 16, 1)
fn main(${WGSL_BUILTINS}) {
  let wg = ${WGSL_LINEAR_WORKGROUP};
  let tiles = u.tilesP * u.tilesN;
  if (wg >= u.batch * u.nC * u.H * tiles) { return; }
  let tile = wg % tiles;
  let bch = wg / tiles;
  let h = bch % u.H;
  let bc = bch / u.H;
  let c = bc % u.nC;
  let b = bc / u.nC;
  let g = h / (u.H / u.G);
  let p0 = (tile / u.tilesN) * TS;
  let n0 = (tile % u.tilesN) * TS;
  let l0 = c * u.Q;
  let Qc = min(u.Q, u.L - l0);
  let hb = (b * u.H + h) * u.L + l0;
  let last = dACs[hb + Qc - 1u];
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < Qc; k0 += TK) {
    for (var r = 0u; r < 4u; r++) {
      let idx = li + r * 256u;
      let kk = idx / TS;
      let col = idx % TS;
      let k = k0 + kk;
      var xv = 0.0;
      var bv = 0.0;
      if (k < Qc) {
        let row = b * u.L + l0 + k;
        let p = p0 + col;
        if (p < u.P) { xv = x[u.xOffset + row * u.xStride + h * u.P + p] * dt[hb + k] * exp(last - dACs[hb + k]); }
        let n = n0 + col;
        if (n < u.N) { bv = Bm[u.bOffset + row * u.bStride + g * u.N + n]; }
      }
      As[kk * TS + col] = xv;
      Bs[kk * TS + col] = bv;
    }
    workgroupBarrier();
    ${WGSL_TILE_ACCUMULATE}
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let p = p0 + lid.y + 16u * i;
    if (p >= u.P) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x + 16u * j;
      if (n < u.N) { states[(bch * u.P + p) * u.N + n] = acc[i * 4u + j]; }
    }
  }
}`;
  const tilesP = Math.ceil(shape.headDim / TILE);
  const tilesN = Math.ceil(shape.dState / TILE);
  const nC = numChunks(shape);
  return {
    name: 'ssd_chunk_state',
    cacheKey: 'f32',
    wgsl,
    workgroupSize: [16, 16, 1],
    dispatch: linearDispatch(shape.batch * nC * shape.heads * tilesP * tilesN),
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
      bOffset: B.offset,
      bStride: B.stride,
      tilesP,
      tilesN,
    },
  };
}

/**
 * Step 2 of chunked SSD: the end state of every chunk from a zero start, (b, nC, H, P, N).
 *
 * @example
 * ```ts
 * const states = ssdChunkState(rt, x, B, dt, dACumsum, shape);
 * ```
 */
export function ssdChunkState(runtime: Runtime, x: SsdOperand, B: SsdOperand, dt: TensorLike, dACumsum: TensorLike, shape: SsdShape): Tensor {
  const op = 'ssdChunkState';
  validateSsdShape(op, shape);
  const { batch: b, seqlen: L, heads: H, headDim: P, dState: N, groups: G } = shape;
  const xo = resolveOperand(op, 'x', x, b * L, H * P, { batch: b, seqlen: L, heads: H, headDim: P });
  const bo = resolveOperand(op, 'B', B, b * L, G * N, { batch: b, seqlen: L, groups: G, dState: N });
  assertShape(op, 'dt', dt.shape, { batch: b, heads: H, seqlen: L });
  assertShape(op, 'dACumsum', dACumsum.shape, { batch: b, heads: H, seqlen: L });
  const states = runtime.empty([b, numChunks(shape), H, P, N], 'f32', 'ssd.states');
  runtime.run(createSsdChunkStateKernel(shape, xo, bo), [xo.tensor, bo.tensor, dt, dACumsum, states]);
  return states;
}

/**
 * CPU reference of step 2 for contiguous x (b, L, H, P), B (b, L, G, N) and
 * dt, cs (b, H, L) from {@link ssdChunkCumsumReference}. Returns (b, nC, H, P, N).
 *
 * @example
 * ```ts
 * const { dt, dACumsum } = ssdChunkCumsumReference(dtRaw, A, dtBias, shape);
 * const states = ssdChunkStateReference(x, B, dt, dACumsum, shape); // (b, nC, H, P, N)
 * ```
 */
export function ssdChunkStateReference(x: Float32Array, B: Float32Array, dt: Float32Array, cs: Float32Array, shape: SsdShape): Float32Array {
  const { batch: nb, seqlen: L, heads: H, headDim: P, dState: N, groups: G, chunkSize: Q } = shape;
  const nC = numChunks(shape);
  const out = new Float32Array(nb * nC * H * P * N);
  const acc = new Float64Array(P * N);
  for (let b = 0; b < nb; b++) {
    for (let c = 0; c < nC; c++) {
      const l0 = c * Q;
      const l1 = Math.min(L, l0 + Q);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / G));
        const hb = (b * H + h) * L;
        const last = cs[hb + l1 - 1];
        acc.fill(0);
        for (let l = l0; l < l1; l++) {
          const w = dt[hb + l] * Math.exp(last - cs[hb + l]);
          for (let p = 0; p < P; p++) {
            const xv = x[((b * L + l) * H + h) * P + p] * w;
            for (let n = 0; n < N; n++) acc[p * N + n] += xv * B[((b * L + l) * G + g) * N + n];
          }
        }
        out.set(acc, ((b * nC + c) * H + h) * P * N);
      }
    }
  }
  return out;
}
