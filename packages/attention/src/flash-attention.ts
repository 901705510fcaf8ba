/**
 * Causal attention with online softmax, FlashAttention-2 algorithm 1
 * (Dao, 2023): each workgroup owns a tile of queries, streams the keys and
 * values in tiles of Bc through workgroup memory, and keeps the running row
 * max m, row sum l and the unnormalised output O in registers. The L × L
 * score matrix never exists in global memory; only a tile of it lives in
 * workgroup memory.
 *
 * Shape glossary:
 *   B  batch           Lq  queries              H  query heads        Hkv  key/value heads (H % Hkv = 0)
 *   D  head_dim        Lk  keys in a buffer     G  query heads per key/value head (H / Hkv)
 *   Br, Bc  query-row / key tile                Dc  head_dim chunk (32, simple kernel)     Dp  D rounded up to 32 (tiled kernel)
 *
 * Two kernels compute the same thing:
 * - the tiled kernel ({@link createTiledFlashAttentionKernel}): a tile row is
 *   a (query, head) pair of the G heads that share one key/value head, so one
 *   K/V tile load serves all of them (GQA); Br = 64, 32 or 16 rows by what
 *   fits the workgroup memory, Bc = 32 keys, 2·Br threads, each owning a
 *   4 × 4 block of the score tile and 4 rows × Dp/8 features of O in
 *   registers (register tiling as in a GEMM micro-kernel, Q·Kᵀ and P·V read
 *   as vec4 from workgroup memory). Key tiles above the diagonal (or outside
 *   the window) are never visited and only the tiles the diagonal or the
 *   window edge crosses pay for the mask. Needs D % 4 = 0 and D ≤ 128.
 * - the simple kernel ({@link createFlashAttentionKernel}): Br = Bc = 32, one
 *   head per workgroup, head_dim in chunks of 32: any D up to 256. The
 *   fallback for what the tiled one does not take, and the default on
 *   software adapters (see {@link attendRuns}).
 *
 * Keys may live in several buffers ("runs" of KV cache pages, see kv-cache.ts):
 * the kernel runs once per run, carrying (O, m, l) between runs in global
 * memory (O in the output, m and l in a (B, Lq, H, 2) side buffer), which is
 * the same recurrence across runs as across tiles. Query i sits at absolute
 * position queryOffset + i and sees keys at positions ≤ queryOffset + i, and
 * within the sliding window (q − k < window) when one is set.
 *
 * Scores follow transformers' eager_attention_forward: s = q·k · scale, then
 * an optional logit soft-cap s = cap · tanh(s / cap) (Gemma-2), then softmax
 * in float32; GQA maps query head h to key/value head h / (H / Hkv) (repeat_kv).
 */
import {
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  StatespaceError,
  WGSL_BUILTINS,
  assertArg,
  wgslBindings,
} from '@statespace/core';
import { flashDecoding } from './flash-decoding.js';

/** Query tile (rows per workgroup). */
export const FLASH_BR = 32;
/** Key tile. */
export const FLASH_BC = 32;
/** Head-dim chunk staged in workgroup memory at a time. */
const DC = 32;
const THREADS = 256;
const TPR = THREADS / FLASH_BR; // threads per query row
/** Largest head_dim the kernels take. */
export const MAX_HEAD_DIM = 256;

/** Masking and scaling shared by every attention kernel. */
export interface AttentionOptions {
  /** Multiplies q·k (default head_dim^-0.5). */
  scale?: number;
  /** Logit soft-cap: s = cap · tanh(s / cap) after scaling (off when absent or 0). */
  softcap?: number;
  /** Sliding window: query at position p sees keys at positions > p − window (off when absent or 0). */
  slidingWindow?: number;
}

/** A contiguous buffer of keys and values (B, capacity, Hkv, D) holding absolute positions start .. start + length − 1. */
export interface KVRun {
  k: TensorLike;
  v: TensorLike;
  /** Absolute position of row 0. */
  start: number;
  /** Valid rows. */
  length: number;
}

const prefillLayout = {
  Lq: 'u32', H: 'u32', Hkv: 'u32', qOffset: 'u32', segStart: 'u32', segLen: 'u32', segCap: 'u32', window: 'u32',
  scale: 'f32', softcap: 'f32', first: 'u32', last: 'u32',
} as const satisfies UniformLayout;

const tiledLayout = { ...prefillLayout, D4: 'u32' } as const satisfies UniformLayout;

/** Sizes of one prefill dispatch (one KV run). */
export interface FlashAttentionShape {
  B: number;
  Lq: number;
  H: number;
  Hkv: number;
  D: number;
  /** Absolute position of query 0. */
  qOffset: number;
  /** The run: absolute position of its row 0, valid rows, rows per batch in the buffer. */
  segStart: number;
  segLen: number;
  segCap: number;
  /** First run of the pass (initialise O, m, l) / last run (normalise O by l). */
  first: boolean;
  last: boolean;
}

/**
 * Builds the tiled prefill kernel for one KV run. head_dim is a compile-time
 * constant (it sizes the per-thread output registers); everything else is a uniform.
 *
 * @example
 * ```ts
 * const k = createFlashAttentionKernel({ B: 1, Lq: 100, H: 8, Hkv: 2, D: 64, qOffset: 0, segStart: 0, segLen: 100, segCap: 100, first: true, last: true });
 * console.log(k.dispatch); // [4, 8, 1]
 * ```
 */
export function createFlashAttentionKernel(shape: FlashAttentionShape, options: AttentionOptions = {}): KernelDescriptor {
  const { D } = shape;
  const ND = Math.ceil(D / DC);
  const bindings = [
    { name: 'q', type: 'f32', access: 'read' }, // (B, Lq, H, D)
    { name: 'k', type: 'f32', access: 'read' }, // (B, segCap, Hkv, D)
    { name: 'v', type: 'f32', access: 'read' }, // (B, segCap, Hkv, D)
    { name: 'out', type: 'f32', access: 'read_write' }, // (B, Lq, H, D)
    { name: 'ml', type: 'f32', access: 'read_write' }, // (B, Lq, H, 2): running max and sum between runs
  ] as const;
  const chunks = Array.from({ length: ND }, (_, c) => c);
  const lanes = [0, 1, 2, 3];
  // Per-thread registers are vec4s named per chunk and unrolled here, so no private array is indexed
  // dynamically (some compilers lower that to memory).
  const perChunk = (f: (c: number) => string) => chunks.map(f).join('\n');
  const kvLoad = (buf: 'k' | 'v', c: number, dst: string) => `
      for (var i = 0u; i < ${(FLASH_BC * DC) / THREADS}u; i++) {
        let idx = li + NT * i;
        let t = kt + idx / DC;
        let d = ${c}u * DC + idx % DC;
        var x = 0.0;
        if (t < kHi && d < D) { x = ${buf}[((b * u.segCap + t - u.segStart) * u.Hkv + hk) * D + d]; }
        ${dst}[idx] = x;
      }`;
  const wgsl = `${wgslBindings(prefillLayout, bindings)}
const BR = ${FLASH_BR}u;
const BC = ${FLASH_BC}u;
const DC = ${DC}u;
const NT = ${THREADS}u;
const TPR = ${TPR}u;
const D = ${D}u;
const SENT = -3.0e38;
var<workgroup> qs: array<f32, ${FLASH_BR * DC}>; // (Br, Dc) query chunk
var<workgroup> ks: array<f32, ${FLASH_BC * DC}>; // (Bc, Dc) key chunk, then value chunk
var<workgroup> ps: array<f32, ${FLASH_BR * FLASH_BC}>; // (Br, Bc) probabilities of the tile
var<workgroup> pmax: array<f32, ${THREADS}>; // (Br, TPR) per-thread partial row max
var<workgroup> psum: array<f32, ${THREADS}>; // (Br, TPR) per-thread partial row sum
fn loadQ(c: u32, li: u32, b: u32, h: u32, q0: u32) {
  for (var i = 0u; i < ${(FLASH_BR * DC) / THREADS}u; i++) {
    let idx = li + NT * i;
    let qr = q0 + idx / DC;
    let d = c * DC + idx % DC;
    var qv = 0.0;
    if (qr < u.Lq && d < D) { qv = q[((b * u.Lq + qr) * u.H + h) * D + d]; }
    qs[idx] = qv;
  }
}
fn feat(c: u32, g: u32, j: u32) -> u32 { return c * DC + g + TPR * j; }
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let h = wid.y;
  let b = wid.z;
  let q0 = wid.x * BR;
  if (q0 >= u.Lq) { return; }
  let r = li / TPR;
  let g = li % TPR;
  let row = q0 + r;
  let rowOk = row < u.Lq;
  let qpos = u.qOffset + row;
  let hk = h / (u.H / u.Hkv);
  let orow = (b * u.Lq + row) * u.H + h;
  var m = SENT;
  var l = 0.0;
  // o<c>[j]: this thread's output feature c*Dc + g + TPR*j of its query row.
${perChunk((c) => `  var o${c} = vec4<f32>(0.0, 0.0, 0.0, 0.0);`)}
  if (u.first == 0u && rowOk) {
    m = ml[orow * 2u];
    l = ml[orow * 2u + 1u];
${perChunk((c) => lanes.map((j) => `    if (feat(${c}u, g, ${j}u) < D) { o${c}[${j}] = out[orow * D + feat(${c}u, g, ${j}u)]; }`).join('\n'))}
  }
  // Keys this tile of queries can see inside the run, in absolute positions.
  let kHi = min(u.segStart + u.segLen, u.qOffset + min(q0 + BR, u.Lq));
  var kLo = u.segStart;
  let firstPos = u.qOffset + q0 + 1u;
  if (u.window > 0u && firstPos > u.window) { kLo = max(kLo, firstPos - u.window); }
  ${ND === 1 ? 'loadQ(0u, li, b, h, q0); // head_dim fits one chunk: the query tile stays resident' : ''}
  for (var kt = kLo; kt < kHi; kt += BC) {
    // S = Q Kᵀ over head_dim chunks; lane j of sacc is key kt + g + TPR*j.
    var sacc = vec4<f32>(0.0, 0.0, 0.0, 0.0);
${perChunk((c) => `    {
      ${ND === 1 ? '' : `loadQ(${c}u, li, b, h, q0);`}${kvLoad('k', c, 'ks')}
      workgroupBarrier();
      for (var dd = 0u; dd < DC; dd++) {
        let kc = vec4<f32>(ks[g * DC + dd], ks[(g + TPR) * DC + dd], ks[(g + 2u * TPR) * DC + dd], ks[(g + 3u * TPR) * DC + dd]);
        sacc += qs[r * DC + dd] * kc;
      }
      workgroupBarrier();
    }`)}
    // Online softmax: the tile's row max from the TPR threads of the row, rescale, probabilities.
    sacc *= u.scale;
    if (u.softcap > 0.0) { sacc = u.softcap * tanh(clamp(sacc / u.softcap, vec4<f32>(-15.0), vec4<f32>(15.0))); }
    let t4 = vec4<u32>(kt + g, kt + g + TPR, kt + g + 2u * TPR, kt + g + 3u * TPR);
    var ok = (t4 < vec4<u32>(kHi)) & (t4 <= vec4<u32>(qpos)) & vec4<bool>(rowOk);
    if (u.window > 0u) { ok = ok & (vec4<u32>(qpos) - t4 < vec4<u32>(u.window)); }
    sacc = select(vec4<f32>(SENT), sacc, ok);
    pmax[li] = max(max(sacc.x, sacc.y), max(sacc.z, sacc.w));
    workgroupBarrier();
    var mt = SENT;
    for (var j = 0u; j < TPR; j++) { mt = max(mt, pmax[r * TPR + j]); }
    let mNew = max(m, mt);
    let alpha = exp(m - mNew);
    let p4 = select(vec4<f32>(0.0), exp(sacc - vec4<f32>(mNew)), ok);
${lanes.map((j) => `    ps[r * BC + g + ${j}u * TPR] = p4[${j}];`).join('\n')}
    psum[li] = p4.x + p4.y + p4.z + p4.w;
    m = mNew;
${perChunk((c) => `    o${c} *= alpha;`)}
    // O += P V over head_dim chunks (the first barrier also publishes ps and psum).
${perChunk((c) => `    {${kvLoad('v', c, 'ks')}
      workgroupBarrier();
      ${c === 0 ? `var rs = 0.0;
      for (var j = 0u; j < TPR; j++) { rs += psum[r * TPR + j]; }
      l = l * alpha + rs;` : ''}
      var acc = vec4<f32>(0.0, 0.0, 0.0, 0.0);
      for (var c2 = 0u; c2 < BC; c2++) {
        acc += ps[r * BC + c2] * vec4<f32>(ks[c2 * DC + g], ks[c2 * DC + g + TPR], ks[c2 * DC + g + 2u * TPR], ks[c2 * DC + g + 3u * TPR]);
      }
      o${c} += acc;
      workgroupBarrier();
    }`)}
  }
  if (!rowOk) { return; }
  let inv = select(1.0, select(0.0, 1.0 / l, l > 0.0), u.last == 1u);
${perChunk((c) => lanes.map((j) => `  if (feat(${c}u, g, ${j}u) < D) { out[orow * D + feat(${c}u, g, ${j}u)] = o${c}[${j}] * inv; }`).join('\n'))}
  if (u.last == 0u && g == 0u) {
    ml[orow * 2u] = m;
    ml[orow * 2u + 1u] = l;
  }
}`;
  return {
    name: 'flash_attention',
    cacheKey: `d${D}`,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: [Math.ceil(shape.Lq / FLASH_BR), shape.H, shape.B],
    bindings,
    uniformLayout: prefillLayout,
    uniforms: prefillUniforms(shape, options),
  };
}

function prefillUniforms(shape: FlashAttentionShape, options: AttentionOptions): Record<keyof typeof prefillLayout, number> {
  return {
    Lq: shape.Lq, H: shape.H, Hkv: shape.Hkv, qOffset: shape.qOffset, segStart: shape.segStart, segLen: shape.segLen, segCap: shape.segCap,
    window: options.slidingWindow ?? 0, scale: options.scale ?? 1 / Math.sqrt(shape.D), softcap: options.softcap ?? 0,
    first: shape.first ? 1 : 0, last: shape.last ? 1 : 0,
  };
}

/** Key tile of the tiled kernel. */
export const TILED_BC = 32;
/** Threads along a score-tile row (each owns 4 keys): Bc / 4. */
const TX = TILED_BC / 4;
/** Query-row tiles the tiled kernel tries, largest first. */
const TILED_ROWS = [64, 32, 16] as const;
/** Largest head_dim the tiled kernel takes (O is 4 rows × D/8 features per thread). */
export const TILED_MAX_HEAD_DIM = 128;

/** Workgroup memory of the tiled kernel in bytes: Q (Br, Dp), K or V (Bc, Dp), P (Br, Bc). */
function tiledBytes(rows: number, D: number): number {
  const DP = Math.ceil(D / 32) * 32;
  return 4 * (rows * DP + TILED_BC * DP + rows * TILED_BC);
}

/**
 * The query-row tile Br the tiled kernel uses for head_dim D and G query heads
 * per key/value head on a device with these limits, or null when it does not
 * apply (D % 4 ≠ 0, D > 128, G > 64, or no tile fits): the largest of 64, 32,
 * 16 rows whose Q, K/V and P tiles fit the workgroup memory. 64 rows at D ≤ 64
 * take 32 KiB; D = 128 takes 32 rows (36 KiB) or 16 (26 KiB).
 *
 * @example
 * ```ts
 * tiledFlashRows(64, 4, rt.limits); // 64 (16 queries × 4 heads per workgroup)
 * tiledFlashRows(128, 1, { maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 256 }); // 16
 * ```
 */
export function tiledFlashRows(
  D: number,
  G: number,
  limits: { readonly maxComputeWorkgroupStorageSize: number; readonly maxComputeInvocationsPerWorkgroup: number },
): number | null {
  if (D % 4 !== 0 || D < 4 || D > TILED_MAX_HEAD_DIM) return null;
  for (const rows of TILED_ROWS) {
    if (G <= rows && tiledBytes(rows, D) <= limits.maxComputeWorkgroupStorageSize && 2 * rows <= limits.maxComputeInvocationsPerWorkgroup) return rows;
  }
  return null;
}

/**
 * Builds the register-tiled prefill kernel for one KV run (see the file
 * header): `rows` = Br (query, head) pairs per workgroup, from
 * {@link tiledFlashRows}. A workgroup takes ⌊Br / G⌋ consecutive queries of
 * the G query heads of one key/value head. Dp (head_dim rounded up to 32)
 * and Br are compile-time constants; everything else, head_dim included, is a uniform.
 *
 * @example
 * ```ts
 * const k = createTiledFlashAttentionKernel({ B: 1, Lq: 4096, H: 16, Hkv: 4, D: 64, qOffset: 0, segStart: 0, segLen: 4096, segCap: 4096, first: true, last: true }, {}, 64);
 * console.log(k.dispatch); // [256, 4, 1]: 16 queries × 4 heads per workgroup
 * ```
 */
export function createTiledFlashAttentionKernel(shape: FlashAttentionShape, options: AttentionOptions, rows: number): KernelDescriptor {
  const { D } = shape;
  const G = shape.H / shape.Hkv;
  if (D % 4 !== 0 || D > TILED_MAX_HEAD_DIM || !TILED_ROWS.includes(rows as 64) || G > rows || !Number.isInteger(G)) {
    throw new StatespaceError('INVALID_ARGUMENT', `tiled flash attention: head_dim ${D} (needs a multiple of 4 up to ${TILED_MAX_HEAD_DIM}), ${G} heads per KV head, ${rows} rows (64, 32 or 16, at least G)`);
  }
  const BR = rows;
  const NT = 2 * BR; // (Br/4) x (Bc/4) threads
  const DP = Math.ceil(D / 32) * 32;
  const DP4 = DP / 4;
  const NK = DP / 32; // vec4s of O per row per thread: features 4·(tx + 8k)
  const bindings = [
    { name: 'q', type: 'vec4<f32>', access: 'read' }, // (B, Lq, H, D/4)
    { name: 'k', type: 'vec4<f32>', access: 'read' }, // (B, segCap, Hkv, D/4)
    { name: 'v', type: 'vec4<f32>', access: 'read' }, // (B, segCap, Hkv, D/4)
    { name: 'out', type: 'vec4<f32>', access: 'read_write' }, // (B, Lq, H, D/4)
    { name: 'ml', type: 'f32', access: 'read_write' }, // (B, Lq, H, 2): running max (log2 units) and sum between runs
  ] as const;
  const I = [0, 1, 2, 3];
  const K = Array.from({ length: NK }, (_, k) => k);
  const each = (xs: number[], f: (x: number) => string, sep = '\n') => xs.map(f).join(sep);
  const comp = ['x', 'y', 'z', 'w'];
  const sum4 = (v: string) => `(${v}.x + ${v}.y + ${v}.z + ${v}.w)`;
  const max4 = (v: string) => `max(max(${v}.x, ${v}.y), max(${v}.z, ${v}.w))`;
  const kvLoad = (buf: 'k' | 'v') => `fn load_${buf}(kt: u32, kHi: u32, b: u32, hk: u32, li: u32) {
  for (var i = 0u; i < ${(TILED_BC * DP4) / NT}u; i++) {
    let s = li + NT * i;
    let c = s / DP4;
    let d4 = s % DP4;
    let t = kt + c;
    var x = vec4<f32>(0.0);
    if (t < kHi && d4 < u.D4) { x = ${buf}[((b * u.segCap + t - u.segStart) * u.Hkv + hk) * u.D4 + d4]; }
    ${buf === 'k' ? 'kvs[c * DP4 + (d4 ^ ((c >> 2u) & 7u))] = x; // swizzled: the 8 key rows a quarter-warp reads sit in 8 bank groups' : 'kvs[c * DP4 + d4] = x;'}
  }
}`;
  const wgsl = `${wgslBindings(tiledLayout, bindings)}
const BR = ${BR}u;
const BC = ${TILED_BC}u;
const TX = ${TX}u;
const NT = ${NT}u;
const DP4 = ${DP4}u;
const SENT = -3.0e38;
const LOG2E = 1.4426950408889634;
var<workgroup> qs: array<vec4<f32>, ${BR * DP4}>; // (Br, Dp/4) query rows (query, head), pre-scaled
var<workgroup> kvs: array<vec4<f32>, ${TILED_BC * DP4}>; // (Bc, Dp/4) key tile (swizzled), then value tile
var<workgroup> ps: array<vec4<f32>, ${(BR * TILED_BC) / 4}>; // (Br, Bc/4) probabilities; before them the row-max partials (NT vec4)
${kvLoad('k')}
${kvLoad('v')}
@compute @workgroup_size(${NT})
fn main(${WGSL_BUILTINS}) {
  let hk = wid.y;
  let b = wid.z;
  let G = u.H / u.Hkv;
  let QT = BR / G; // queries per workgroup
  let q0 = wid.x * QT;
  if (q0 >= u.Lq) { return; }
  let qEnd = min(q0 + QT, u.Lq);
  let ty = li / TX;
  let tx = li % TX;
  // Scores in log2 units: s2 = log2(e) · s, so that p = exp2(s2 − m2). With a soft-cap, Q carries
  // scale / cap and the cap is applied after the dot product.
  let capL = u.softcap * LOG2E;
  let qmul = select(u.scale * LOG2E, u.scale / u.softcap, u.softcap > 0.0);
  for (var i = 0u; i < ${(BR * DP4) / NT}u; i++) {
    let s = li + NT * i;
    let r = s / DP4;
    let d4 = s % DP4;
    let qi = q0 + r / G;
    var x = vec4<f32>(0.0);
    if (r < QT * G && qi < u.Lq && d4 < u.D4) { x = q[((b * u.Lq + qi) * u.H + hk * G + r % G) * u.D4 + d4] * qmul; }
    qs[s] = x;
  }
  // This thread's rows ty*4 + i: query q0 + row / G of head hk*G + row % G.
${each(I, (i) => `  let row${i} = ty * 4u + ${i}u;
  let ok${i} = row${i} < QT * G && q0 + row${i} / G < u.Lq;
  let qp${i} = u.qOffset + q0 + row${i} / G;
  let orow${i} = (b * u.Lq + q0 + row${i} / G) * u.H + hk * G + row${i} % G;`)}
  var m = vec4<f32>(SENT);
  var lp = vec4<f32>(0.0); // partial row sums over this thread's keys
${each(I, (i) => each(K, (k) => `  var o${i}_${k} = vec4<f32>(0.0);`))}
  if (u.first == 0u) {
${each(I, (i) => `    if (ok${i}) {
      m[${i}] = ml[orow${i} * 2u];
      if (tx == 0u) { lp[${i}] = ml[orow${i} * 2u + 1u]; }
${each(K, (k) => `      if (tx + ${8 * k}u < u.D4) { o${i}_${k} = out[orow${i} * u.D4 + tx + ${8 * k}u]; }`)}
    }`)}
  }
  // Keys this tile of queries can see inside the run, in absolute positions; tiles past the
  // last query's diagonal (and before the first query's window) are never visited.
  let qposMin = u.qOffset + q0;
  let qposMax = u.qOffset + qEnd - 1u;
  let kHi = min(u.segStart + u.segLen, qposMax + 1u);
  var kLo = u.segStart;
  if (u.window > 0u && qposMin + 1u > u.window) { kLo = max(kLo, qposMin + 1u - u.window); }
  for (var kt = kLo; kt < kHi; kt += BC) {
    workgroupBarrier(); // the previous tile's reads of kvs and ps are done (and qs is written)
    load_k(kt, kHi, b, hk, li);
    workgroupBarrier();
    // S = Q Kᵀ: s<i>[j] is row ty*4+i against key kt + tx*4 + j.
${each(I, (i) => `    var s${i} = vec4<f32>(0.0);`)}
    for (var d4 = 0u; d4 < DP4; d4++) {
      let kd = d4 ^ tx;
${each(I, (j) => `      let k${j} = kvs[(tx * 4u + ${j}u) * DP4 + kd];`)}
${each(I, (i) => `      let q${i} = qs[row${i} * DP4 + d4];
      s${i} += vec4<f32>(dot(q${i}, k0), dot(q${i}, k1), dot(q${i}, k2), dot(q${i}, k3));`)}
    }
    if (u.softcap > 0.0) {
${each(I, (i) => `      s${i} = capL * tanh(clamp(s${i}, vec4<f32>(-15.0), vec4<f32>(15.0)));`)}
    }
    // Only tiles that the diagonal, the run's end or the window edge crosses are masked.
    let full = kt + BC <= kHi && kt + BC <= qposMin + 1u && (u.window == 0u || qposMax < kt + u.window);
    let t4 = vec4<u32>(kt + tx * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
${each(I, (i) => `    var vis${i} = vec4<bool>(true);`)}
    if (!full) {
${each(I, (i) => `      vis${i} = (t4 < vec4<u32>(kHi)) & (t4 <= vec4<u32>(qp${i}));
      if (u.window > 0u) { vis${i} = vis${i} & (vec4<u32>(qp${i}) - t4 < vec4<u32>(u.window)); }
      s${i} = select(vec4<f32>(SENT), s${i}, vis${i});`)}
    }
    // Online softmax: the tile's row max over the 8 threads of a row, through ps.
    ps[li] = vec4<f32>(${each(I, (i) => max4(`s${i}`), ', ')});
    workgroupBarrier(); // the key tile is consumed and the partial maxima are visible
    load_v(kt, kHi, b, hk, li);
    var mt = ps[ty * TX];
    for (var t = 1u; t < TX; t++) { mt = max(mt, ps[ty * TX + t]); }
    let mNew = max(m, mt);
    let alpha = exp2(m - mNew);
    m = mNew;
${each(I, (i) => `    let p${i} = select(vec4<f32>(0.0), exp2(s${i} - vec4<f32>(mNew[${i}])), vis${i});`)}
    lp = lp * alpha + vec4<f32>(${each(I, (i) => sum4(`p${i}`), ', ')});
${each(I, (i) => each(K, (k) => `    o${i}_${k} *= alpha[${i}];`))}
    workgroupBarrier(); // the partial maxima are read before P overwrites them
${each(I, (i) => `    ps[row${i} * TX + tx] = p${i};`)}
    workgroupBarrier(); // P and the value tile are visible
    // O += P V: four keys per step, the probabilities read as vec4.
    for (var c4 = 0u; c4 < TX; c4++) {
${each(I, (i) => `      let pv${i} = ps[row${i} * TX + c4];`)}
${each(I, (e) => `      {
${each(K, (k) => `        let v${k} = kvs[(c4 * 4u + ${e}u) * DP4 + tx + ${8 * k}u];`)}
${each(I, (i) => each(K, (k) => `        o${i}_${k} += pv${i}.${comp[e]} * v${k};`))}
      }`)}
    }
  }
  // Row sums: the 8 partials of each row, through ps.
  workgroupBarrier();
  ps[li] = lp;
  workgroupBarrier();
  var l = ps[ty * TX];
  for (var t = 1u; t < TX; t++) { l += ps[ty * TX + t]; }
${each(I, (i) => `  if (ok${i}) {
    let inv = select(1.0, select(0.0, 1.0 / l[${i}], l[${i}] > 0.0), u.last == 1u);
${each(K, (k) => `    if (tx + ${8 * k}u < u.D4) { out[orow${i} * u.D4 + tx + ${8 * k}u] = o${i}_${k} * inv; }`)}
    if (u.last == 0u && tx == 0u) {
      ml[orow${i} * 2u] = m[${i}];
      ml[orow${i} * 2u + 1u] = l[${i}];
    }
  }`)}
}`;
  const QT = Math.floor(BR / G);
  return {
    name: 'flash_attention_tiled',
    cacheKey: `dp${DP}r${BR}`,
    wgsl,
    workgroupSize: [NT, 1, 1],
    dispatch: [Math.ceil(shape.Lq / QT), shape.Hkv, shape.B],
    bindings,
    uniformLayout: tiledLayout,
    uniforms: { ...prefillUniforms(shape, options), D4: D / 4 },
  };
}

/** Options of {@link attendRuns} and {@link flashAttention}. */
export interface FlashAttentionOptions extends AttentionOptions {
  /** Absolute position of query 0 (default: keys − queries, i.e. the queries are the last tokens). */
  queryOffset?: number;
  /** 'decode' (flash-decoding, one query only), 'prefill' (tiled), or 'auto' (decode when there is one query). */
  path?: 'auto' | 'prefill' | 'decode';
  /** Shape of the returned tensor (default (B, Lq, H, D)); same element count, e.g. (B, Lq, H·D) for o_proj. */
  outShape?: readonly number[];
  /**
   * Prefill kernel: 'tiled' (register-tiled, GQA heads share K/V tiles; D % 4 = 0, D ≤ 128),
   * 'simple' (any D up to 256), or 'auto' (default): tiled where it applies, except on a software
   * adapter without `runtime.fastKernels`, where the simple one is faster.
   */
  prefillKernel?: 'auto' | 'tiled' | 'simple';
}

/**
 * Attention of q (B, Lq, H, D) over keys and values held in `runs` (each
 * (B, capacity, Hkv, D), together covering positions 0 .. queryOffset + Lq − 1).
 * Returns (B, Lq, H, D), the layout o_proj reads. Used by the KV cache.
 *
 * @example
 * ```ts
 * const o = attendRuns(rt, q, cache.kvRuns(), cache.length - q.shape[1], { slidingWindow: 4096 });
 * ```
 */
export function attendRuns(runtime: Runtime, q: TensorLike, runs: readonly KVRun[], queryOffset: number, options: FlashAttentionOptions = {}): Tensor {
  const op = 'attention';
  assertArg(q.shape.length === 4, op, `q must be (batch, seqlen, heads, head_dim), got [${q.shape.join(',')}]`);
  const [B, Lq, H, D] = q.shape;
  assertArg(q.dtype === 'f32', op, `q must be f32, got ${q.dtype}`);
  assertArg(D >= 1 && D <= MAX_HEAD_DIM, op, `head_dim ${D} is outside 1..${MAX_HEAD_DIM}`);
  assertArg(runs.length > 0, op, 'no key/value runs given');
  const Hkv = runs[0].k.shape[2];
  for (const run of runs) {
    for (const [name, t] of [['k', run.k], ['v', run.v]] as const) {
      if (t.shape.length !== 4 || t.shape[0] !== B || t.shape[2] !== Hkv || t.shape[3] !== D || t.dtype !== 'f32') {
        throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${name} has shape [${t.shape.join(',')}] (${t.dtype}), expected f32 [batch=${B}, tokens, kv_heads=${Hkv}, head_dim=${D}]`);
      }
    }
    assertArg(run.length <= run.k.shape[1] && run.v.shape[1] === run.k.shape[1], op, `a run holds ${run.length} tokens in buffers of ${run.k.shape[1]} / ${run.v.shape[1]} rows`);
  }
  assertArg(Hkv >= 1 && H % Hkv === 0, op, `query heads ${H} must be a multiple of key/value heads ${Hkv}`);
  assertArg(Number.isInteger(queryOffset) && queryOffset >= 0, op, `queryOffset must be a non-negative integer, got ${queryOffset}`);
  const window = options.slidingWindow ?? 0;
  assertArg(Number.isInteger(window) && window >= 0, op, `slidingWindow must be a non-negative integer, got ${window}`);
  const path = options.path ?? 'auto';
  assertArg(path !== 'decode' || Lq === 1, op, `the decode path takes one query, got ${Lq}`);
  const outShape = options.outShape ?? [B, Lq, H, D];
  assertArg(outShape.reduce((a, b) => a * b, 1) === B * Lq * H * D, op, `outShape [${outShape.join(',')}] does not hold ${B}x${Lq}x${H}x${D} values`);
  if (Lq === 0) return runtime.empty(outShape, 'f32', 'attention.out');
  if (path === 'decode' || (path === 'auto' && Lq === 1)) {
    return flashDecoding(runtime, q, runs, queryOffset, { ...options, Hkv, outShape });
  }
  const lo = window > 0 ? Math.max(0, queryOffset + 1 - window) : 0;
  const hi = queryOffset + Lq;
  const visible = runs.filter((r) => Math.max(lo, r.start) < Math.min(hi, r.start + r.length));
  const out = runtime.empty(outShape, 'f32', 'attention.out');
  if (visible.length === 0) {
    runtime.clear(out);
    return out;
  }
  const rows = prefillRows(runtime, op, options.prefillKernel ?? 'auto', B, Lq, H, Hkv, D);
  const ml = visible.length > 1 ? runtime.empty([B, Lq, H, 2], 'f32', 'attention.ml') : runtime.empty([1], 'f32', 'attention.ml');
  visible.forEach((run, i) => {
    const shape = { B, Lq, H, Hkv, D, qOffset: queryOffset, segStart: run.start, segLen: run.length, segCap: run.k.shape[1], first: i === 0, last: i === visible.length - 1 };
    const kernel = rows ? createTiledFlashAttentionKernel(shape, options, rows) : createFlashAttentionKernel(shape, options);
    runtime.run(kernel, [q, run.k, run.v, out, ml]);
  });
  ml.dispose();
  return out;
}

/** Query-row tile of the tiled kernel for this call, or null for the simple kernel. */
function prefillRows(runtime: Runtime, op: string, choice: 'auto' | 'tiled' | 'simple', B: number, Lq: number, H: number, Hkv: number, D: number): number | null {
  const G = H / Hkv;
  let rows = choice === 'simple' ? null : tiledFlashRows(D, G, runtime.limits);
  if (rows !== null && Math.ceil(Lq / Math.floor(rows / G)) > 65535) rows = null;
  if (choice === 'tiled' && rows === null) {
    throw new StatespaceError('INVALID_ARGUMENT', `${op}: the tiled prefill kernel does not take head_dim ${D} with ${G} query heads per KV head and ${Lq} queries (needs head_dim % 4 = 0, ≤ ${TILED_MAX_HEAD_DIM}, ≤ 64 heads per KV head, and a tile in ${runtime.limits.maxComputeWorkgroupStorageSize} bytes of workgroup memory)`);
  }
  if (choice === 'auto' && runtime.info.isSoftware && !runtime.fastKernels) rows = null;
  if (rows === null) {
    assertArg(Math.ceil(Lq / FLASH_BR) <= 65535 && H <= 65535 && B <= 65535, op, `${Lq} queries x ${H} heads x ${B} batch exceed the dispatch limits`);
  } else {
    assertArg(Hkv <= 65535 && B <= 65535, op, `${Hkv} key/value heads x ${B} batch exceed the dispatch limits`);
  }
  return rows;
}

/**
 * Causal attention of q (B, Lq, H, D) over k, v (B, Lk, Hkv, D), with GQA
 * (Hkv divides H), an optional sliding window and logit soft-cap. Query i sits
 * at position queryOffset + i (default Lk − Lq) and sees keys ≤ that position.
 * Returns (B, Lq, H, D). One query takes the flash-decoding path.
 *
 * @example
 * ```ts
 * const o = flashAttention(rt, q, k, v, { scale: 0.125, slidingWindow: 4096 }); // (B, L, H, D)
 * ```
 */
export function flashAttention(runtime: Runtime, q: TensorLike, k: TensorLike, v: TensorLike, options: FlashAttentionOptions = {}): Tensor {
  assertArg(k.shape.length === 4, 'flashAttention', `k must be (batch, keys, kv_heads, head_dim), got [${k.shape.join(',')}]`);
  const Lk = k.shape[1];
  const Lq = q.shape[1];
  const queryOffset = options.queryOffset ?? Lk - Lq;
  assertArg(queryOffset >= 0 && queryOffset + Lq <= Lk, 'flashAttention', `queries at positions ${queryOffset}..${queryOffset + Lq - 1} need keys up to there; ${Lk} keys given`);
  if (v.shape.join(',') !== k.shape.join(',')) {
    throw new StatespaceError('SHAPE_MISMATCH', `flashAttention: v has shape [${v.shape.join(',')}], expected [${k.shape.join(',')}] like k`);
  }
  return attendRuns(runtime, q, [{ k, v, start: 0, length: Lk }], queryOffset, options);
}

/**
 * CPU reference: transformers' eager_attention_forward with repeat_kv and a
 * causal (and sliding-window) mask, in float64. q (B, Lq, H, D), k and v
 * (B, Lk, Hkv, D); returns (B, Lq, H, D).
 *
 * @example
 * ```ts
 * const o = attentionReference(q, k, v, { B: 1, Lq: 5, Lk: 5, H: 4, Hkv: 2, D: 16 }, { softcap: 50 });
 * ```
 */
export function attentionReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  shape: { B: number; Lq: number; Lk: number; H: number; Hkv: number; D: number },
  options: AttentionOptions & { queryOffset?: number } = {},
): Float32Array {
  const { B, Lq, Lk, H, Hkv, D } = shape;
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const offset = options.queryOffset ?? Lk - Lq;
  const window = options.slidingWindow ?? 0;
  const cap = options.softcap ?? 0;
  const out = new Float32Array(B * Lq * H * D);
  const s = new Float64Array(Lk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv));
      for (let i = 0; i < Lq; i++) {
        const pos = offset + i;
        const qb = ((b * Lq + i) * H + h) * D;
        let mx = -Infinity;
        for (let j = 0; j < Lk; j++) {
          const visible = j <= pos && (window === 0 || pos - j < window);
          if (!visible) {
            s[j] = -Infinity;
            continue;
          }
          const kb = ((b * Lk + j) * Hkv + hk) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qb + d] * k[kb + d];
          let x = dot * scale;
          if (cap > 0) x = cap * Math.tanh(x / cap);
          s[j] = x;
          mx = Math.max(mx, x);
        }
        let sum = 0;
        for (let j = 0; j < Lk; j++) {
          s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - mx);
          sum += s[j];
        }
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < Lk; j++) if (s[j] !== 0) acc += s[j] * v[((b * Lk + j) * Hkv + hk) * D + d];
          out[qb + d] = sum > 0 ? acc / sum : 0;
        }
      }
    }
  }
  return out;
}
