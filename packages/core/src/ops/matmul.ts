/**
 * Matrix multiplication y = x · Wᵀ + b (W stored as a Hugging Face Linear
 * weight, (N, K)), or y = x · W with `transposeB: false` (W stored (K, N)).
 *
 * Shape glossary:
 *   M  rows of x (tokens)        K  input features        N  output features
 *
 * Two kernels: a register-blocked tiled matmul for prefill (matmul-tiled.ts: 128×128 or
 * smaller tiles by adapter and shape, 16-byte loads, double-buffered K-tiles in workgroup
 * memory), and a matrix-vector kernel (one workgroup per output feature, a tree reduction
 * over K) for M ≤ 8, the decode case. The first 64×64 tiled kernel stays as `tile: 'basic'`,
 * the benchmark's baseline.
 */
import { type DType, wgslLoadFloat, wgslLoadQ8x16, wgslStorageType } from '../dtype.js';
import { StatespaceError, assertArg } from '../errors.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { type TiledMatmulConfig, chooseTiledMatmul, chooseTiledMatmulConfig, createSplitKReduceKernel, createTiledMatmulKernel } from './matmul-tiled.js';

/** Attributes of a matmul. */
export interface MatmulAttrs {
  /** W is stored (N, K) as in `nn.Linear` (default true). */
  transposeB?: boolean;
  /** Storage type of W ('f32', 'f16', 'bf16' or 'q8'). */
  weightDtype?: DType;
  /** A bias of length N is added. */
  bias?: boolean;
  /** Force the matrix-vector path (default: when M ≤ 4). */
  gemv?: boolean;
  /**
   * One thread per output element, no workgroup memory or barriers. CPU
   * implementations of WebGPU (SwiftShader) run barriers very slowly, so this
   * is the default there; GPUs get the tiled and reduction kernels.
   */
  simple?: boolean;
  /**
   * Blocking of the tiled (prefill) kernel: a {@link TiledMatmulConfig}, or 'basic' for the first
   * 64×64 kernel (scalar loads, single-buffered; kept as a baseline). Default: chosen by
   * `chooseTiledMatmulConfig` for an unknown adapter. One kernel, never split-K: `matmul` chooses tile and
   * slices for its runtime's adapter (`chooseTiledMatmul`) and runs the split-K reduce where it splits.
   */
  tile?: TiledMatmulConfig | 'basic';
}

const TILE = 64;
/** Output rows per workgroup of the vec4 gemv: many rows (8 x 32 lanes) for wide N, fewer rows and more lanes for narrow N. */
const VEC_WIDE = { lanes: 32, rows: 8 } as const;
const VEC_NARROW = { lanes: 128, rows: 2 } as const;
/** Rows of x one pass of the vec4 gemv handles (a batch of up to 8 decode tokens reads W once). */
const VEC_MAX_M = 8;
const TILE_K = 16;
const GEMV_ROWS = 8;
const GEMV_MAX_M = 4;
const layout = { M: 'u32', N: 'u32', K: 'u32' } as const satisfies UniformLayout;

/** Widest batch of the eager vec4 gemv, and the most 16-byte registers (weight words and x words) a lane holds. */
const EAGER_GEMV_MAX_M = 2;
const EAGER_GEMV_MAX_REGS = 24;

/** WGSL of the eager vec4 gemv (see {@link createGemvVec4Kernel}): same bindings, uniforms and dispatch; `head` holds the bindings and the weight unpacking (`un`, `loadW16*`). */
function eagerGemvWgsl(M: number, K: number, wDtype: DType, bias: boolean, lanes: number, rows: number, head: string): string {
  const q8 = wDtype === 'q8';
  const packed = wDtype !== 'f32' && !q8;
  const width = gemvVecWidth(wDtype);
  const KW = K / width;
  const K4 = K / 4;
  const WL = Math.ceil(KW / lanes);
  const xPer = width / 4; // x vec4s per weight word
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const tail = KW % lanes !== 0;
  const lane = (j: number) => (tail ? `min(lid.x + ${j * lanes}u, ${KW - 1}u)` : `lid.x + ${j * lanes}u`);
  const loads = range(WL)
    .map((j) => (q8 ? `wv[${j}] = loadW16Word(nr * ${K}u + 16u * (${lane(j)})); ws[${j}] = loadW16Scale(nr * ${K}u + 16u * (${lane(j)}));` : `wv[${j}] = w[nr * ${KW}u + ${lane(j)}];`))
    .join('\n  ');
  const xLoads = range(M)
    .flatMap((m) => range(WL).flatMap((j) => range(xPer).map((q) => `xv[${(m * WL + j) * xPer + q}] = x[${m * K4}u + ${xPer}u * (${lane(j)}) + ${q}u];`)))
    .join('\n  ');
  const term = (m: number, j: number) => {
    const xi = (q: number) => `xv[${(m * WL + j) * xPer + q}]`;
    const t = q8
      ? `{ let q = loadW16Dequant(wv[${j}], ws[${j}]); a += dot(q[0], ${xi(0)}) + dot(q[1], ${xi(1)}) + dot(q[2], ${xi(2)}) + dot(q[3], ${xi(3)}); }`
      : packed
        ? `{ let p = wv[${j}]; a += dot(vec4<f32>(un(p.x), un(p.y)), ${xi(0)}) + dot(vec4<f32>(un(p.z), un(p.w)), ${xi(1)}); }`
        : `a += dot(wv[${j}], ${xi(0)});`;
    return tail && j === WL - 1 ? `if (lid.x + ${j * lanes}u < ${KW}u) { ${t} }` : t;
  };
  return `${head}
const LANES = ${lanes}u;
const ROWS = ${rows}u;
const T = ${lanes * rows}u;
var<workgroup> part: array<f32, ${lanes * rows * M}>;
@compute @workgroup_size(${lanes}, ${rows}, 1)
fn main(${WGSL_BUILTINS}) {
  let n = ${WGSL_LINEAR_WORKGROUP} * ROWS + lid.y;
  let nr = min(n, u.N - 1u);
  var wv: array<${q8 || packed ? 'vec4<u32>' : 'vec4<f32>'}, ${WL}>;
  ${q8 ? `var ws: array<f32, ${WL}>;` : ''}
  var xv: array<vec4<f32>, ${M * WL * xPer}>;
  ${loads}
  ${xLoads}
  ${range(M).map((m) => `{ var a = 0.0;\n    ${range(WL).map((j) => term(m, j)).join('\n    ')}\n    part[${m}u * T + li] = a; }`).join('\n  ')}
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { ${range(M).map((m) => `part[${m}u * T + li] += part[${m}u * T + li + s];`).join(' ')} }
    workgroupBarrier();
  }
  if (lid.x < ${M}u && n < u.N) { y[lid.x * u.N + n] = part[lid.x * T + lid.y * LANES]${bias ? ' + bias[n]' : ''}; }
}`;
}

/**
 * Matrix-vector product for decode, y (M ≤ 8, N) = x · Wᵀ + b, reading W in 16-byte words
 * (4 f32, 8 packed f16/bf16 or 16 q8 weights per load, the q8 group's scale from the block's
 * scale word) with four independent loads in flight per lane, `lanes` lanes per output row
 * striding over K, and a tree reduction of the lanes in workgroup memory. Needs K a multiple
 * of 4 (f32), 8 (16-bit) or 16 (q8: {@link gemvVecWidth}).
 *
 * @example
 * ```ts
 * const k = createGemvVec4Kernel({ M: 1, N: 50280, K: 768 }, 'f16', false);
 * ```
 */
export function createGemvVec4Kernel(shape: { M: number; N: number; K: number }, wDtype: DType, bias: boolean, options: { eager?: boolean } = {}): KernelDescriptor {
  const q8 = wDtype === 'q8';
  const packed = wDtype !== 'f32' && !q8;
  if (shape.K % gemvVecWidth(wDtype) !== 0) {
    throw new StatespaceError('SHAPE_MISMATCH', `createGemvVec4Kernel: K=${shape.K} must be a multiple of ${gemvVecWidth(wDtype)} for ${wDtype} weights`);
  }
  const { lanes, rows } = shape.N >= 4096 ? VEC_WIDE : VEC_NARROW;
  const bindings = [
    { name: 'x', type: 'vec4<f32>', access: 'read' }, // (M, K/4)
    { name: 'w', type: packed || q8 ? 'vec4<u32>' : 'vec4<f32>', access: 'read' }, // (N, K/4) f32, (N, K/8) packed pairs or q8 blocks (9 words per 128 weights)
    ...(bias ? [{ name: 'bias', type: 'f32', access: 'read' } as const] : []), // (N)
    { name: 'y', type: 'f32', access: 'read_write' }, // (M, N)
  ] as const;
  const KW = shape.K / gemvVecWidth(wDtype);
  // Eager (M ≤ 2, few words per lane): M and K compiled in, every weight word and x word of a lane
  // loaded at the start in straight-line code, so a workgroup waits for one memory round trip.
  const WL = Math.ceil(KW / lanes);
  const fits = shape.M <= EAGER_GEMV_MAX_M && WL * (1 + (shape.M * gemvVecWidth(wDtype)) / 4) <= EAGER_GEMV_MAX_REGS;
  assertArg(!options.eager || fits, 'createGemvVec4Kernel', `the eager variant does not take M=${shape.M}, K=${shape.K} (${wDtype})`);
  const eager = options.eager ?? fits;
  const cacheKey = `vec4|${wDtype}|${bias ? 'b' : ''}|${lanes}x${rows}${eager ? `|e${shape.M}x${shape.K}` : ''}`;
  const unpack = wDtype === 'f16' ? 'unpack2x16float(p)' : 'vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u))';
  const weightFns = () => `${packed ? `fn un(p: u32) -> vec2<f32> { return ${unpack}; }` : ''}
${q8 ? wgslLoadQ8x16('loadW16', 'w') : ''}`;
  if (eager) {
    return {
      name: 'matmul_gemv_vec4',
      cacheKey,
      wgsl: memoWgsl('matmul_gemv_vec4', cacheKey, () => eagerGemvWgsl(shape.M, shape.K, wDtype, bias, lanes, rows, `${wgslBindings(layout, bindings)}
${weightFns()}`)),
      workgroupSize: [lanes, rows, 1],
      dispatch: linearDispatch(shape.N / rows),
      bindings,
      uniformLayout: layout,
      uniforms: { M: shape.M, N: shape.N, K: shape.K },
    };
  }
  // With M ≤ 8 the rows of x are compiled in and the loop over them unrolled: a loop bound read
  // from a uniform indexes the accumulators dynamically, which puts them in local memory (seen on
  // the H200: 139 us per in_proj at batch 8 against 46 at batch 1).
  const unrolled = shape.M <= VEC_MAX_M;
  const forRows = (body: (j: string) => string) =>
    unrolled ? Array.from({ length: shape.M }, (_, j) => body(`${j}u`)).join(' ') : `for (var j = 0u; j < mc; j++) { ${body('j')} }`;
  // q8: k counts 16-weight words of the row; `wv` is the word's dequantised mat4x4 (4 x vec4s).
  const useQ8 = (wv: string, k: string) =>
    `{ ${forRows((j) => `{ let xb = (m0 + ${j}) * K4 + 4u * (${k}); acc[${j}] += dot(${wv}[0], x[xb]) + dot(${wv}[1], x[xb + 1u]) + dot(${wv}[2], x[xb + 2u]) + dot(${wv}[3], x[xb + 3u]); }`)} }`;
  // One step of the K loop for load `wv` at vec index `k` (16-bit: two x vec4s per word vec4).
  const use = (wv: string, k: string) =>
    q8
      ? useQ8(wv, k)
      : packed
      ? `{ let a = vec4<f32>(un(${wv}.x), un(${wv}.y)); let b = vec4<f32>(un(${wv}.z), un(${wv}.w));
          ${forRows((j) => `{ let xb = (m0 + ${j}) * K4 + 2u * (${k}); acc[${j}] += dot(a, x[xb]) + dot(b, x[xb + 1u]); }`)} }`
      : `{ ${forRows((j) => `acc[${j}] += dot(${wv}, x[(m0 + ${j}) * K4 + ${k}]);`)} }`;
  const key = unrolled ? `${cacheKey}|u${shape.M}` : cacheKey;
  const wgsl = memoWgsl('matmul_gemv_vec4', key, () => `${wgslBindings(layout, bindings)}
const LANES = ${lanes}u;
const ROWS = ${rows}u;
const MAXM = ${VEC_MAX_M}u;
var<workgroup> part: array<f32, ${lanes * rows * VEC_MAX_M}>;
${weightFns()}
@compute @workgroup_size(${lanes}, ${rows}, 1)
fn main(${WGSL_BUILTINS}) {
  let n = ${WGSL_LINEAR_WORKGROUP} * ROWS + lid.y;
  let K4 = u.K / 4u;
  let KW = ${q8 ? 'u.K / 16u' : packed ? 'u.K / 8u' : 'K4'}; // 16-byte words (of weights) per row of W
  let T = LANES * ROWS;
  for (var m0 = 0u; m0 < u.M; m0 += MAXM) {
    let mc = min(MAXM, u.M - m0);
    var acc = array<f32, ${VEC_MAX_M}>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    if (n < u.N) {
      let row = ${q8 ? 'n * u.K' : 'n * KW'};
      var k = lid.x;
      for (; k + 3u * LANES < KW; k += 4u * LANES) {
        let w0 = ${q8 ? 'loadW16(row + 16u * k)' : 'w[row + k]'};
        let w1 = ${q8 ? 'loadW16(row + 16u * (k + LANES))' : 'w[row + k + LANES]'};
        let w2 = ${q8 ? 'loadW16(row + 16u * (k + 2u * LANES))' : 'w[row + k + 2u * LANES]'};
        let w3 = ${q8 ? 'loadW16(row + 16u * (k + 3u * LANES))' : 'w[row + k + 3u * LANES]'};
        ${use('w0', 'k')}
        ${use('w1', 'k + LANES')}
        ${use('w2', 'k + 2u * LANES')}
        ${use('w3', 'k + 3u * LANES')}
      }
      for (; k < KW; k += LANES) {
        let w0 = ${q8 ? 'loadW16(row + 16u * k)' : 'w[row + k]'};
        ${use('w0', 'k')}
      }
    }
    ${forRows((j) => `part[${j} * T + li] = acc[${j}];`)}
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
      if (lid.x < s) {
        ${forRows((j) => `part[${j} * T + li] += part[${j} * T + li + s];`)}
      }
      workgroupBarrier();
    }
    if (lid.x < mc && n < u.N) { y[(m0 + lid.x) * u.N + n] = part[lid.x * T + lid.y * LANES]${bias ? ' + bias[n]' : ''}; }
    workgroupBarrier();
  }
}`);
  return { name: 'matmul_gemv_vec4', cacheKey: key, wgsl, workgroupSize: [lanes, rows, 1], dispatch: linearDispatch(shape.N / rows), bindings, uniformLayout: layout, uniforms: { M: shape.M, N: shape.N, K: shape.K } };
}

/**
 * Weights per 16-byte load of the vec4 gemv for a W dtype: the K the fast decode path needs a
 * multiple of (4 for f32, 8 for packed 16-bit, 16 for q8); other K take the element-load gemv.
 *
 * @example
 * ```ts
 * gemvVecWidth('q8'); // 16
 * ```
 */
export function gemvVecWidth(wDtype: DType): number {
  return wDtype === 'f32' ? 4 : wDtype === 'q8' ? 16 : 8;
}

/**
 * Builds the matmul kernel for x (M, K) and W ((N, K) or (K, N)).
 *
 * @example
 * ```ts
 * const kernel = createMatmulKernel({ M: 1, N: 4, K: 8 }, { weightDtype: 'f16' }); // M ≤ 4: the gemv path
 * console.log(kernel.name, kernel.dispatch);
 * ```
 */
export function createMatmulKernel(shape: { M: number; N: number; K: number }, attrs: MatmulAttrs = {}): KernelDescriptor {
  const transposeB = attrs.transposeB ?? true;
  const wDtype = attrs.weightDtype ?? 'f32';
  const bias = attrs.bias ?? false;
  const gemv = attrs.gemv ?? shape.M <= VEC_MAX_M;
  if (gemv && transposeB && !attrs.simple && shape.K % gemvVecWidth(wDtype) === 0) {
    return createGemvVec4Kernel(shape, wDtype, bias);
  }
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (M, K)
    { name: 'w', type: wgslStorageType(wDtype), access: 'read' }, // (N, K) or (K, N)
    ...(bias ? [{ name: 'bias', type: 'f32', access: 'read' } as const] : []), // (N)
    { name: 'y', type: 'f32', access: 'read_write' }, // (M, N)
  ] as const;
  const wIndex = transposeB ? (n: string, k: string) => `${n} * u.K + ${k}` : (n: string, k: string) => `${k} * u.N + ${n}`;
  const head = wgslBindings(layout, bindings) + '\n' + wgslLoadFloat('loadW', 'w', wDtype) + '\n';
  const addBias = bias ? ' + bias[n]' : '';
  const cacheKey = `${attrs.simple ? 'simple' : gemv ? 'gemv' : 'tiled'}|${transposeB ? 'nk' : 'kn'}|${wDtype}|${bias ? 'b' : ''}`;
  const uniforms = { M: shape.M, N: shape.N, K: shape.K };
  if (attrs.simple || (gemv && !transposeB)) {
    const wgsl = memoWgsl('matmul', cacheKey, () => `${head}
@compute @workgroup_size(64)
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * 64u + li;
  if (i >= u.M * u.N) { return; }
  let m = i / u.N;
  let n = i % u.N;
  var acc = 0.0;
  for (var k = 0u; k < u.K; k++) { acc += x[m * u.K + k] * loadW(${wIndex('n', 'k')}); }
  y[i] = acc${addBias};
}`);
    return { name: 'matmul_simple', cacheKey, wgsl, workgroupSize: [64, 1, 1], dispatch: linearDispatch((shape.M * shape.N) / 64), bindings, uniformLayout: layout, uniforms };
  }
  if (gemv && transposeB) {
    // 8 output rows per workgroup, 32 lanes per row striding over K (coalesced reads of W's rows),
    // up to 4 rows of x at a time; one reduction over the lanes for all 4 accumulators.
    const wgsl = memoWgsl('matmul', cacheKey, () => `${head}
const LANES = 32u;
const ROWS = ${GEMV_ROWS}u;
const MAXM = ${GEMV_MAX_M}u;
var<workgroup> part: array<f32, ${32 * GEMV_ROWS * GEMV_MAX_M}>;
@compute @workgroup_size(32, ${GEMV_ROWS}, 1)
fn main(${WGSL_BUILTINS}) {
  let n = ${WGSL_LINEAR_WORKGROUP} * ROWS + lid.y;
  let T = LANES * ROWS;
  for (var m0 = 0u; m0 < u.M; m0 += MAXM) {
    var acc = array<f32, ${GEMV_MAX_M}>(0.0, 0.0, 0.0, 0.0);
    if (n < u.N) {
      let row = n * u.K;
      var k = lid.x;
      // two independent chains per accumulator for memory-level parallelism
      for (; k + LANES < u.K; k += 2u * LANES) {
        let w0 = loadW(row + k);
        let w1 = loadW(row + k + LANES);
        for (var j = 0u; j < MAXM; j++) {
          if (m0 + j < u.M) { let xb = (m0 + j) * u.K + k; acc[j] += x[xb] * w0 + x[xb + LANES] * w1; }
        }
      }
      if (k < u.K) {
        let w0 = loadW(row + k);
        for (var j = 0u; j < MAXM; j++) {
          if (m0 + j < u.M) { acc[j] += x[(m0 + j) * u.K + k] * w0; }
        }
      }
    }
    for (var j = 0u; j < MAXM; j++) { part[j * T + li] = acc[j]; }
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
      if (lid.x < s) {
        for (var j = 0u; j < MAXM; j++) { part[j * T + li] += part[j * T + li + s]; }
      }
      workgroupBarrier();
    }
    if (lid.x < MAXM && n < u.N && m0 + lid.x < u.M) { y[(m0 + lid.x) * u.N + n] = part[lid.x * T + lid.y * LANES]${addBias}; }
    workgroupBarrier();
  }
}`);
    return { name: 'matmul_gemv', cacheKey, wgsl, workgroupSize: [32, GEMV_ROWS, 1], dispatch: linearDispatch(shape.N / GEMV_ROWS), bindings, uniformLayout: layout, uniforms };
  }
  if (attrs.tile !== 'basic') {
    return createTiledMatmulKernel(shape, attrs.tile ?? chooseTiledMatmulConfig(shape), { transposeB, weightDtype: wDtype, bias });
  }
  const loadB = transposeB
    ? `let nn = idx / TK; let kk = idx % TK;`
    : `let nn = idx % TS; let kk = idx / TS;`;
  const wgsl = memoWgsl('matmul', cacheKey, () => `${head}
const TS = ${TILE}u;
const TK = ${TILE_K}u;
var<workgroup> As: array<f32, ${TILE * TILE_K}>; // (TK, TS) tile of x, transposed
var<workgroup> Bs: array<f32, ${TILE * TILE_K}>; // (TK, TS) tile of W
@compute @workgroup_size(16, 16, 1)
fn main(${WGSL_BUILTINS}) {
  let row0 = wid.y * TS;
  let col0 = wid.x * TS;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < u.K; k0 += TK) {
    for (var i = 0u; i < 4u; i++) {
      let idx = li + i * 256u;
      let mm = idx / TK; let ka = idx % TK;
      let gm = row0 + mm; let gka = k0 + ka;
      var av = 0.0;
      if (gm < u.M && gka < u.K) { av = x[gm * u.K + gka]; }
      As[ka * TS + mm] = av;
      ${loadB}
      let gn = col0 + nn; let gkb = k0 + kk;
      var bv = 0.0;
      if (gn < u.N && gkb < u.K) { bv = loadW(${wIndex('gn', 'gkb')}); }
      Bs[kk * TS + nn] = bv;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = As[k * TS + lid.y + 16u * i]; b[i] = Bs[k * TS + lid.x + 16u * i]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = row0 + lid.y + 16u * i;
    if (m >= u.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = col0 + lid.x + 16u * j;
      if (n < u.N) { y[m * u.N + n] = acc[i * 4u + j]${addBias}; }
    }
  }
}`);
  return {
    name: 'matmul_tiled',
    cacheKey,
    wgsl,
    workgroupSize: [16, 16, 1],
    dispatch: [Math.ceil(shape.N / TILE), Math.ceil(shape.M / TILE), 1],
    bindings,
    uniformLayout: layout,
    uniforms,
  };
}

/**
 * Whether {@link matmul} (without options) runs the tiled kernel for M rows on this runtime: on GPUs
 * (software adapters take the plain loop, their barriers being slow) for more than the gemv's rows.
 * Fused products built on the tiled kernel (e.g. `gluMatmul`) follow the same rule.
 *
 * @example
 * ```ts
 * usesTiledMatmul(rt, 512); // true on a GPU, false on SwiftShader
 * ```
 */
export function usesTiledMatmul(runtime: Runtime, M: number): boolean {
  return !runtime.info.isSoftware && M > VEC_MAX_M;
}

/**
 * y = x · Wᵀ + b for x (..., K) and W (N, K); leading dims of x are flattened into M.
 *
 * @example
 * ```ts
 * const y = matmul(rt, x, layer.weight, { bias: layer.bias }); // (tokens, out_features)
 * ```
 */
export function matmul(
  runtime: Runtime,
  x: TensorLike,
  w: TensorLike,
  options: { bias?: TensorLike; transposeB?: boolean; out?: Tensor; gemv?: boolean; simple?: boolean; splitK?: number } = {},
): Tensor {
  const transposeB = options.transposeB ?? true;
  assertArg(w.shape.length === 2, 'matmul', `W must be 2-D, got [${w.shape.join(',')}]`);
  assertArg(x.dtype === 'f32', 'matmul', `x must be f32, got ${x.dtype}`);
  const K = x.shape[x.shape.length - 1];
  const [N, wK] = transposeB ? [w.shape[0], w.shape[1]] : [w.shape[1], w.shape[0]];
  if (wK !== K) {
    throw new StatespaceError('SHAPE_MISMATCH', `matmul: W has shape [${w.shape.join(',')}], expected ${transposeB ? `[N, K=${K}]` : `[K=${K}, N]`} for x [${x.shape.join(',')}]`);
  }
  const M = x.size / K;
  if (options.bias && options.bias.size !== N) {
    throw new StatespaceError('SHAPE_MISMATCH', `matmul: bias has shape [${options.bias.shape.join(',')}], expected [N=${N}]`);
  }
  const outShape = [...x.shape.slice(0, -1), N];
  const y = options.out ?? runtime.empty(outShape, 'f32', 'matmul.y');
  assertArg(y.size === M * N, 'matmul', `out has ${y.size} elements, expected ${M * N}`);
  // Software adapters take the plain loop (their barriers are slow), except for decode-sized products
  // when fastKernels asks for the fast variants (tests run the gemv inside the models that way).
  // `splitK` forces the tiled kernel in that many K slices (tests, benchmarks); otherwise the adapter's table decides.
  const forced = options.splitK;
  assertArg(forced === undefined || (Number.isInteger(forced) && forced >= 1), 'matmul', `splitK must be a positive integer, got ${forced}`);
  const simple = options.simple ?? (forced === undefined && options.gemv === undefined && runtime.info.isSoftware && !(runtime.fastKernels && M <= VEC_MAX_M));
  const choice = simple || (options.gemv ?? (forced === undefined && M <= VEC_MAX_M)) ? undefined : chooseTiledMatmul({ M, N, K }, runtime);
  // (without options, the tiled kernel runs exactly where usesTiledMatmul says)
  const tile = choice?.config;
  const S = tile ? (forced ?? choice.splitK) : 1;
  if (tile && S > 1) {
    // Too few tiles to fill the GPU: K in S slices (partial products), then one pass sums them (+ bias).
    const part = runtime.empty([S, M, N], 'f32', 'matmul.partials');
    runtime.run(createTiledMatmulKernel({ M, N, K }, tile, { transposeB, weightDtype: w.dtype, splitK: S }), [x, w, part]);
    runtime.run(createSplitKReduceKernel({ M, N, S }, { bias: !!options.bias }), options.bias ? [part, options.bias, y] : [part, y]);
    part.dispose();
    return y;
  }
  const kernel = createMatmulKernel({ M, N, K }, { transposeB, weightDtype: w.dtype, bias: !!options.bias, gemv: options.gemv, simple, tile });
  runtime.run(kernel, options.bias ? [x, w, options.bias, y] : [x, w, y]);
  return y;
}

/**
 * CPU reference: y = x · Wᵀ + b (or x · W when `transposeB` is false), accumulated in f64.
 *
 * @example
 * ```ts
 * matmulReference(new Float32Array([1, 2, 3, 4, 5, 6]), new Float32Array([1, 0, 0, 0, 1, 0]), 2, 2, 3); // [1, 2, 4, 5]
 * ```
 */
export function matmulReference(
  x: Float32Array,
  w: Float32Array,
  M: number,
  N: number,
  K: number,
  bias?: Float32Array,
  transposeB = true,
): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * (transposeB ? w[n * K + k] : w[k * N + n]);
      y[m * N + n] = s;
    }
  }
  return y;
}
