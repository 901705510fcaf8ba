/**
 * Decode attention, flash-decoding style (Dao et al., "Flash-Decoding for
 * long-context inference", 2023): one query per (batch, head) against a long
 * KV cache. The cache is split along its length into chunks of C keys; pass 1
 * gives every chunk its own workgroup, which writes a partial result
 * (unnormalised O, its max m and sum l); pass 2 combines the chunks of each
 * (batch, head) with the log-sum-exp rescaling of the online softmax.
 *
 * Shape glossary:
 *   B  batch     H  query heads     Hkv  key/value heads     D  head_dim (≤ 256)
 *   C  keys per chunk (256)         N  chunks over all KV runs
 */
import {
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  assertArg,
  linearDispatch,
  wgslBindings,
  wgslRowReduce,
  memoWgsl,
} from '@statespace/core';
import type { AttentionOptions, KVRun } from './flash-attention.js';

/** Keys per flash-decoding chunk (one per thread of a workgroup). */
export const DECODE_CHUNK = 256;
/** Largest head_dim of the GQA pass-1 kernel (its queries sit in workgroup memory). */
const MAX_DECODE_D = 256;
const COMBINE_THREADS = 64;
/** Loads a thread of the GQA pass 1 issues together (its key words, its value rows). */
const LOAD_BATCH = 16;

const decodeLayout = {
  H: 'u32', Hkv: 'u32', D: 'u32', qpos: 'u32', segStart: 'u32', segLen: 'u32', segCap: 'u32', window: 'u32',
  scale: 'f32', softcap: 'f32', chunkLo: 'u32', chunkBase: 'u32', N: 'u32',
} as const satisfies UniformLayout;

/** Sizes of one pass-1 dispatch (chunks chunkLo .. chunkLo + chunks − 1 of one KV run). */
export interface FlashDecodeShape {
  B: number;
  H: number;
  Hkv: number;
  D: number;
  /** Absolute position of the query. */
  qpos: number;
  segStart: number;
  segLen: number;
  segCap: number;
  /** First chunk of the run to process, how many, and the partial slot of the first. */
  chunkLo: number;
  chunks: number;
  chunkBase: number;
  /** Chunks in all (over every run): the partial slots, times the splits of a GQA pass 1 ({@link gqaLayout}). */
  N: number;
}

/**
 * Builds pass 1: each workgroup scores its C keys (one per thread) and writes (O, m, l) of its chunk.
 * @example
 * ```ts
 * const k = createFlashDecodeKernel({ B: 1, H: 8, Hkv: 2, D: 64, qpos: 999, segStart: 0, segLen: 1000, segCap: 1024, chunkLo: 0, chunks: 4, chunkBase: 0, N: 4 });
 * ```
 */
export function createFlashDecodeKernel(shape: FlashDecodeShape, options: AttentionOptions = {}): KernelDescriptor {
  const bindings = [
    { name: 'q', type: 'f32', access: 'read' }, // (B, 1, H, D)
    { name: 'k', type: 'f32', access: 'read' }, // (B, segCap, Hkv, D)
    { name: 'v', type: 'f32', access: 'read' }, // (B, segCap, Hkv, D)
    { name: 'po', type: 'f32', access: 'read_write' }, // (B, H, N, D) partial unnormalised outputs
    { name: 'pml', type: 'f32', access: 'read_write' }, // (B, H, N, 2) partial max and sum
  ] as const;
  const wgsl = memoWgsl('flash_decode', 'g', () => `${wgslBindings(decodeLayout, bindings)}
${wgslRowReduce()}
const C = ${DECODE_CHUNK}u;
const SENT = -3.0e38;
var<workgroup> qv: array<f32, ${DECODE_CHUNK}>; // (D) the query
var<workgroup> ps: array<f32, ${DECODE_CHUNK}>; // (C) probabilities
@compute @workgroup_size(${DECODE_CHUNK})
fn main(${WGSL_BUILTINS}) {
  let ci = wid.x;
  let h = wid.y;
  let b = wid.z;
  let hk = h / (u.H / u.Hkv);
  let chunkStart = u.segStart + (u.chunkLo + ci) * C;
  let kEnd = min(min(chunkStart + C, u.segStart + u.segLen), u.qpos + 1u);
  var kStart = chunkStart;
  if (u.window > 0u && u.qpos + 1u > u.window) { kStart = max(kStart, u.qpos + 1u - u.window); }
  for (var d = li; d < u.D; d += C) { qv[d] = q[(b * u.H + h) * u.D + d]; }
  workgroupBarrier();
  let t = chunkStart + li;
  let ok = t >= kStart && t < kEnd;
  var s = SENT;
  if (ok) {
    let kb = ((b * u.segCap + t - u.segStart) * u.Hkv + hk) * u.D;
    var dot = 0.0;
    for (var d = 0u; d < u.D; d++) { dot += qv[d] * k[kb + d]; }
    s = dot * u.scale;
    if (u.softcap > 0.0) { s = u.softcap * tanh(clamp(s / u.softcap, -15.0, 15.0)); }
  }
  let m = wgMax(s, li);
  var p = 0.0;
  if (ok) { p = exp(s - m); }
  let l = wgSum(p, li);
  ps[li] = p;
  workgroupBarrier();
  let slot = (b * u.H + h) * u.N + u.chunkBase + ci;
  // P·V: the C threads form G = C / D groups; group g sums keys g, g + G, ... for feature d,
  // so each thread runs C / G iterations instead of C; the groups' sums meet in the reduction's
  // workgroup array red (ROW_THREADS = C entries), free again after wgSum's last barrier.
  let G = max(1u, C / u.D);
  let g = li / u.D;
  let d = li % u.D;
  var acc = 0.0;
  if (g < G) {
    for (var c = kStart + g; c < kEnd; c += G) {
      acc += ps[c - chunkStart] * v[((b * u.segCap + c - u.segStart) * u.Hkv + hk) * u.D + d];
    }
  }
  red[li] = acc;
  workgroupBarrier();
  if (li < u.D) {
    var sum = 0.0;
    for (var j = 0u; j < G; j++) { sum += red[j * u.D + li]; }
    po[slot * u.D + li] = sum;
  }
  if (li == 0u) {
    pml[slot * 2u] = m;
    pml[slot * 2u + 1u] = l;
  }
}`);
  return { ...decodeRunData(shape, options), cacheKey: 'g', wgsl, bindings };
}

/** What both pass-1 kernels share: name, workgroup, dispatch (chunks, H, B) and uniforms. */
function decodeRunData(shape: FlashDecodeShape, options: AttentionOptions) {
  return {
    name: 'flash_decode',
    workgroupSize: [DECODE_CHUNK, 1, 1] as const,
    dispatch: [shape.chunks, shape.H, shape.B] as const,
    uniformLayout: decodeLayout,
    uniforms: {
      H: shape.H, Hkv: shape.Hkv, D: shape.D, qpos: shape.qpos, segStart: shape.segStart, segLen: shape.segLen, segCap: shape.segCap,
      window: options.slidingWindow ?? 0, scale: options.scale ?? 1 / Math.sqrt(shape.D), softcap: options.softcap ?? 0,
      chunkLo: shape.chunkLo, chunkBase: shape.chunkBase, N: shape.N,
    },
  };
}

/** Uniform and buffer names of one KV run inside a pass-1 kernel. */
interface RunNames { k: string; v: string; segStart: string; segLen: string; segCap: string; chunkLo: string; chunkBase: string }
const RUN0: RunNames = { k: 'k', v: 'v', segStart: 'u.segStart', segLen: 'u.segLen', segCap: 'u.segCap', chunkLo: 'u.chunkLo', chunkBase: 'u.chunkBase' };
const RUN1: RunNames = { k: 'k1', v: 'v1', segStart: 'u.segStart1', segLen: 'u.segLen1', segCap: 'u.segCap1', chunkLo: 'u.chunkLo1', chunkBase: 'u.chunkBase1' };

/** The vec4 pass-1 body for chunk `ci` of run `r` (one workgroup's work). */
function vec4Pass1Body(r: RunNames, ci: string): string {
  return `let ci = ${ci};
  let h = wid.y;
  let b = wid.z;
  let hk = h / (u.H / u.Hkv);
  let D4 = u.D / 4u;
  let chunkStart = ${r.segStart} + (${r.chunkLo} + ci) * C;
  let kEnd = min(min(chunkStart + C, ${r.segStart} + ${r.segLen}), u.qpos + 1u);
  var kStart = chunkStart;
  if (u.window > 0u && u.qpos + 1u > u.window) { kStart = max(kStart, u.qpos + 1u - u.window); }
  let qb = (b * u.H + h) * u.D;
  for (var d = li; d < D4; d += C) { qv[d] = vec4<f32>(q[qb + 4u * d], q[qb + 4u * d + 1u], q[qb + 4u * d + 2u], q[qb + 4u * d + 3u]); }
  workgroupBarrier();
  let t = chunkStart + li;
  let ok = t >= kStart && t < kEnd;
  var s = SENT;
  if (ok) {
    let kb = ((b * ${r.segCap} + t - ${r.segStart}) * u.Hkv + hk) * D4;
    var acc4 = vec4<f32>(0.0);
    for (var d = 0u; d < D4; d++) { acc4 += qv[d] * ${r.k}[kb + d]; }
    // four running sums (features d ≡ 0..3 mod 4) added at the end: another rounding order than the scalar kernel's
    s = (acc4.x + acc4.y + acc4.z + acc4.w) * u.scale;
    if (u.softcap > 0.0) { s = u.softcap * tanh(clamp(s / u.softcap, -15.0, 15.0)); }
  }
  let m = wgMax(s, li);
  var p = 0.0;
  if (ok) { p = exp(s - m); }
  let l = wgSum(p, li);
  ps[li] = p;
  workgroupBarrier();
  let slot = (b * u.H + h) * u.N + ${r.chunkBase} + ci;
  let G = max(1u, C / D4);
  let g = li / D4;
  let d = li % D4;
  var acc = vec4<f32>(0.0);
  if (g < G) {
    for (var c = kStart + g; c < kEnd; c += G) {
      acc += ps[c - chunkStart] * ${r.v}[((b * ${r.segCap} + c - ${r.segStart}) * u.Hkv + hk) * D4 + d];
    }
  }
  pv[li] = acc;
  workgroupBarrier();
  if (li < D4) {
    var sum = vec4<f32>(0.0);
    for (var j = 0u; j < G; j++) { sum += pv[j * D4 + li]; }
    let o = slot * u.D + 4u * li;
    po[o] = sum.x;
    po[o + 1u] = sum.y;
    po[o + 2u] = sum.z;
    po[o + 3u] = sum.w;
  }
  if (li == 0u) {
    pml[slot * 2u] = m;
    pml[slot * 2u + 1u] = l;
  }
`;
}

/** Bindings, constants and workgroup arrays of the vec4 pass-1 kernels. */
function vec4Pass1Head(bindings: Parameters<typeof wgslBindings>[1], layout: UniformLayout = decodeLayout): string {
  return `${wgslBindings(layout, bindings)}
${wgslRowReduce()}
const C = ${DECODE_CHUNK}u;
const SENT = -3.0e38;
var<workgroup> qv: array<vec4<f32>, ${DECODE_CHUNK / 4}>; // (D/4) the query
var<workgroup> ps: array<f32, ${DECODE_CHUNK}>; // (C) probabilities
var<workgroup> pv: array<vec4<f32>, ${DECODE_CHUNK}>; // (G, D/4) the groups' P·V sums
`;
}

/**
 * Pass 1 with 16-byte loads, for head_dim a multiple of 4: a thread's dot product over its key
 * reads D/4 vec4 words instead of D floats, and P·V runs C / (D/4) groups of D/4 threads, each
 * thread owning four features of the output; the serial chains (the latency a workgroup waits
 * on) are four times shorter than {@link createFlashDecodeKernel}'s.
 *
 * @example
 * ```ts
 * const k = createFlashDecodeVec4Kernel({ B: 1, H: 16, Hkv: 16, D: 64, qpos: 999, segStart: 0, segLen: 1000, segCap: 1024, chunkLo: 0, chunks: 4, chunkBase: 0, N: 4 });
 * ```
 */
export function createFlashDecodeVec4Kernel(shape: FlashDecodeShape, options: AttentionOptions = {}): KernelDescriptor {
  assertArg(shape.D % 4 === 0, 'createFlashDecodeVec4Kernel', `head_dim ${shape.D} must be a multiple of 4`);
  const bindings = [
    { name: 'q', type: 'f32', access: 'read' }, // (B, 1, H, D)
    { name: 'k', type: 'vec4<f32>', access: 'read' }, // (B, segCap, Hkv, D/4)
    { name: 'v', type: 'vec4<f32>', access: 'read' }, // (B, segCap, Hkv, D/4)
    { name: 'po', type: 'f32', access: 'read_write' }, // (B, H, N, D)
    { name: 'pml', type: 'f32', access: 'read_write' }, // (B, H, N, 2)
  ] as const;
  const wgsl = memoWgsl('flash_decode', 'v4', () => `${vec4Pass1Head(bindings)}
@compute @workgroup_size(${DECODE_CHUNK})
fn main(${WGSL_BUILTINS}) {
  ${vec4Pass1Body(RUN0, 'wid.x')}
}`);
  return { ...decodeRunData(shape, options), cacheKey: 'v4', wgsl, bindings };
}

const pairLayout = {
  ...decodeLayout, segStart1: 'u32', segLen1: 'u32', segCap1: 'u32', chunkLo1: 'u32', chunkBase1: 'u32', chunks0: 'u32',
} as const satisfies UniformLayout;

/** Most query heads per KV head that {@link createFlashDecodeGqaKernel} serves (one vec4 lane each). */
export const DECODE_GQA_MAX = 4;

/**
 * How a GQA pass-1 workgroup is laid out: each 256-key chunk split into `splits` sub-chunks of
 * `threads` keys (one workgroup, one key per thread, each writing its own partial slot), and the
 * P·V sums of `headsPerRound` query heads reduced per round of workgroup memory.
 */
export interface GqaLayout { splits: number; threads: number; headsPerRound: number }

/** Workgroup memory of a GQA pass 1 (16-byte words: qv, ps, red, pv). */
const gqaWords = (G: number, D: number, T: number, hpr: number) => (G * D) / 4 + T + T + Math.max(LOAD_BATCH, hpr * T);

/**
 * The layout of a GQA pass 1 over N chunks: a cache's chunks split in 4 (64 threads each) up to 1,024
 * keys and in 2 up to 2,048, as far as the partial slots (N · splits) stay within {@link GQA_MAX_SLOTS},
 * so a cache of a few hundred keys still runs 4 workgroups per KV head instead of one. A split grows
 * further when the head's workgroup memory would not fit WebGPU's default 16 KiB.
 */
export function gqaLayout(N: number, G: number, D: number): GqaLayout {
  let splits = N * 4 <= GQA_MAX_SLOTS ? 4 : N * 2 <= GQA_MAX_SLOTS ? 2 : 1;
  while (splits < DECODE_CHUNK / 64 && gqaWords(G, D, DECODE_CHUNK / splits, 1) * 16 > GQA_STORAGE) splits *= 2;
  const threads = DECODE_CHUNK / splits;
  let headsPerRound = G;
  while (headsPerRound > 1 && (G % headsPerRound !== 0 || gqaWords(G, D, threads, headsPerRound) * 16 > GQA_STORAGE)) headsPerRound--;
  return { splits, threads, headsPerRound };
}

/**
 * Most partial slots a split GQA pass 1 makes: as many as attention's o_proj recombines in its
 * prologue (`FUSED_COMBINE_CHUNKS` is this constant); more take a combine dispatch of their own.
 */
export const GQA_MAX_SLOTS = 16;

/** Workgroup memory a GQA pass 1 may take (WebGPU's default maxComputeWorkgroupStorageSize). */
const GQA_STORAGE = 16384;

/**
 * The GQA pass-1 body for chunk `ci` of run `r`: one workgroup per (sub-chunk, KV head, batch) scores its
 * T keys against the G query heads that share the KV head, so each key and value row is read once for
 * G heads instead of G times. The G heads ride in the lanes of vec4 values (G ≤ 4): one reduction for
 * all of them. The max and the sum of the softmax reduce together in two levels (8 keys per thread, then
 * the T/8 partial pairs): two barriers instead of a tree's 2·log2(T).
 */
function gqaPass1Body(r: RunNames, ci: string, G: number, D: number, fresh: boolean, lay: GqaLayout): string {
  const lanes = ['x', 'y', 'z', 'w'].slice(0, G);
  const D4 = D / 4;
  const { splits: S, threads: T, headsPerRound: HPR } = lay;
  const range = (n: number, from = 0) => Array.from({ length: n - from }, (_, i) => from + i);
  // the partial slot of query head h of this (row, sub-chunk)
  const slot = (h: string) => `((b * u.H + ${h}) * u.N + slotBase)`;
  // The key's D/4 words in batches of up to LOAD_BATCH, each batch's loads issued together (straight-line
  // code: a rolled loop waits for every load before it issues the next).
  const kWords = (bi: number) => range(Math.min(D4, (bi + 1) * LOAD_BATCH), bi * LOAD_BATCH);
  // With the fresh token, the first batch is loaded before the barrier that makes its row visible: the
  // thread of that key takes those words from workgroup memory instead (pv, free until P·V).
  const kLoads = (bi: number) => kWords(bi).map((d) => `${fresh && bi === 0 ? 'var' : 'let'} kw${d} = ${r.k}[kb + ${d}u];`).join(' ');
  const freshWords = fresh ? `if (freshHere && t == u.qpos) { ${kWords(0).map((d) => `kw${d} = pv[${d}u];`).join(' ')} }\n    ` : '';
  const kFmas = (bi: number) => kWords(bi).map((d) => range(G).map((g) => `acc[${g}] += qv[${g * D4 + d}u] * kw${d};`).join(' ')).join('\n    ');
  const kBatches = range(Math.ceil(D4 / LOAD_BATCH)).map((bi) => (bi === 0 ? `${freshWords}${kFmas(0)}` : `${kLoads(bi)}\n    ${kFmas(bi)}`));
  // P·V: GP groups of D/4 threads; each group takes every GP-th key of the sub-chunk (T / GP of them),
  // the loads of a batch issued together at clamped rows (a key past the sub-chunk's end has p = 0).
  const GP = Math.max(1, Math.floor(T / D4));
  const perGroup = Math.ceil(T / GP);
  const vBatches = range(Math.ceil(perGroup / LOAD_BATCH)).map((bi) => {
    const js = range(Math.min(perGroup, (bi + 1) * LOAD_BATCH), bi * LOAD_BATCH);
    return `${js.map((j) => `let cj${j} = min(kStart + grp + ${j * GP}u, kLast); let vw${j} = ${r.v}[((b * ${r.segCap} + cj${j} - ${r.segStart}) * u.Hkv + hk) * D4 + d];`).join('\n      ')}
      ${js.map((j) => `{ let pc = select(vec4<f32>(0.0), ps[cj${j} - chunkStart], kStart + grp + ${j * GP}u < kEnd); ${lanes.map((l, g) => `o[${g}] += pc.${l} * vw${j};`).join(' ')} }`).join('\n      ')}`;
  });
  // the P·V sums of HPR heads per round: every group's sums into pv, then one thread per (head, word) adds the GP groups
  const rounds = range(G / HPR).map((rd) => `${rd > 0 ? 'workgroupBarrier();\n  ' : ''}${range(HPR).map((hh) => `pv[${hh * T}u + li] = o[${rd * HPR + hh}];`).join(' ')}
  workgroupBarrier();
  for (var i = li; i < ${HPR * D4}u; i += T) {
    let hh = i / D4;
    let w = i % D4;
    var sum = vec4<f32>(0.0);
    for (var j = 0u; j < ${GP}u; j++) { sum += pv[hh * T + j * D4 + w]; }
    let at = (${slot(`hk * GQ + ${rd * HPR}u + hh`)} * u.D) + 4u * w;
    po[at] = sum.x;
    po[at + 1u] = sum.y;
    po[at + 2u] = sum.z;
    po[at + 3u] = sum.w;
  }`).join('\n  ');
  return `let ci = (${ci}) / ${S}u;
  let hk = wid.y;
  let b = wid.z;
  let chunkStart = ${r.segStart} + (${r.chunkLo} + ci) * C + ((${ci}) % ${S}u) * T;
  let kEnd = min(min(chunkStart + T, ${r.segStart} + ${r.segLen}), u.qpos + 1u);
  var kStart = chunkStart;
  if (u.window > 0u && u.qpos + 1u > u.window) { kStart = max(kStart, u.qpos + 1u - u.window); }
  // partial slot of (row, head): every sub-chunk has its own
  let slotBase = (${r.chunkBase} + ci) * ${S}u + (${ci}) % ${S}u;
  ${S > 1 ? `if (kEnd <= kStart) {
    // a sub-chunk with no visible key (past the cache's end or before the window): an empty partial
    for (var i = li; i < GQ * D4; i += T) {
      let at = ${slot('hk * GQ + i / D4')} * u.D + 4u * (i % D4);
      po[at] = 0.0; po[at + 1u] = 0.0; po[at + 2u] = 0.0; po[at + 3u] = 0.0;
    }
    if (li < GQ) { let sl = ${slot('hk * GQ + li')}; pml[sl * 2u] = SENT; pml[sl * 2u + 1u] = 0.0; }
    return;
  }` : ''}
  let t = chunkStart + li;
  let ok = t >= kStart && t < kEnd;
  // this thread's key row (clamped into the sub-chunk, so its loads are unconditional)
  let kb = ((b * ${r.segCap} + min(t, max(kEnd, chunkStart + 1u) - 1u) - ${r.segStart}) * u.Hkv + hk) * D4;
  ${kLoads(0)}
  ${fresh
    ? `// the G query heads of this KV head rotated from the projection's output, (G, D/4)
  for (var i = li; i < GQ * D4; i += T) { qv[i] = rotated(b * u.W + (hk * GQ + i / D4) * u.D, i % D4); }
  // the workgroup whose sub-chunk holds the token's position writes its rotated key and its value into the cache
  let freshHere = u.qpos >= kStart && u.qpos < kEnd;
  if (freshHere && li < D4) {
    let kbase = b * u.W + (u.H + hk) * u.D;
    let kr = rotated(kbase, li);
    let row = ((b * ${r.segCap} + u.qpos - ${r.segStart}) * u.Hkv + hk) * D4 + li;
    ${r.k}[row] = kr;
    ${r.v}[row] = raw4(kbase + u.Hkv * u.D, li);
    if (li < ${LOAD_BATCH}u) { pv[li] = kr; }
  }
  storageBarrier(); // the row is visible to this workgroup's later loads (its values, the key's later words)`
    : `// the G query heads of this KV head, (G, D/4)
  for (var i = li; i < GQ * D4; i += T) {
    let qb = (b * u.H + hk * GQ + i / D4) * u.D + 4u * (i % D4);
    qv[i] = vec4<f32>(q[qb], q[qb + 1u], q[qb + 2u], q[qb + 3u]);
  }`}
  workgroupBarrier();
  var s = vec4<f32>(SENT);
  {
    var acc = array<vec4<f32>, ${G}>();
    ${kBatches.join('\n    ')}
    if (ok) {
      ${lanes.map((l, g) => `s.${l} = (acc[${g}].x + acc[${g}].y + acc[${g}].z + acc[${g}].w) * u.scale;`).join('\n      ')}
      if (u.softcap > 0.0) { s = u.softcap * tanh(clamp(s / u.softcap, vec4<f32>(-15.0), vec4<f32>(15.0))); }
    }
  }
  // softmax max and sum in two levels: thread j < T/8 takes keys 8j .. 8j + 7 (its max and its sum
  // relative to it, into red[8j], red[8j + 1]); then every thread takes the max of the T/8 maxima, and
  // the G writers of (m, l) at the end the sum
  red[li] = s;
  workgroupBarrier();
  if (li < ${T / 8}u) {
    var m8 = red[8u * li];
    for (var j = 1u; j < 8u; j++) { m8 = max(m8, red[8u * li + j]); }
    var l8 = vec4<f32>(0.0);
    for (var j = 0u; j < 8u; j++) { let x = red[8u * li + j]; l8 += select(vec4<f32>(0.0), exp(x - m8), x > vec4<f32>(SENT)); }
    red[8u * li] = m8;
    red[8u * li + 1u] = l8;
  }
  workgroupBarrier();
  var m = red[0];
  for (var j = 1u; j < ${T / 8}u; j++) { m = max(m, red[8u * j]); }
  var p = vec4<f32>(0.0);
  if (ok) { p = exp(s - m); }
  ps[li] = p;
  workgroupBarrier();
  let grp = li / D4;
  let d = li % D4;
  var o = array<vec4<f32>, ${G}>();
  if (grp < ${GP}u) {
    let kLast = kEnd - 1u;
    ${vBatches.join('\n    ')}
  }
  ${rounds}
  if (li < GQ) {
    // the sum only where it is written (red is not touched after the reduction)
    var l = 0.0;
    for (var j = 0u; j < ${T / 8}u; j++) { l += red[8u * j + 1u][li] * exp(red[8u * j][li] - m[li]); }
    let sl = ${slot('hk * GQ + li')};
    pml[sl * 2u] = m[li];
    pml[sl * 2u + 1u] = l;
  }
`;
}

/** Bindings, constants and workgroup arrays of the GQA pass-1 kernels (G query heads per workgroup). */
function gqaPass1Head(bindings: Parameters<typeof wgslBindings>[1], layout: UniformLayout, G: number, D: number, lay: GqaLayout, fresh?: FreshToken): string {
  // RoPE (rotate_half, as decode_qkv.ts) on word w of a head row at base of qkv; R features rotated, R % 8 == 0.
  const R = fresh?.R ?? 0;
  const rotate = fresh
    ? `fn raw4(base: u32, w: u32) -> vec4<f32> { let o = base + 4u * w; return vec4<f32>(qkv[o], qkv[o + 1u], qkv[o + 2u], qkv[o + 3u]); }
fn rotated(base: u32, w: u32) -> vec4<f32> {
  let x = raw4(base, w);
  ${R > 0 ? `if (w < ${R / 4}u) {
    let hw = ${R / 8}u;
    let j = u.posRow * ${R}u + 4u * (w % hw);
    let c = vec4<f32>(table[j], table[j + 1u], table[j + 2u], table[j + 3u]);
    let sn = vec4<f32>(table[j + ${R / 2}u], table[j + ${R / 2 + 1}u], table[j + ${R / 2 + 2}u], table[j + ${R / 2 + 3}u]);
    if (w < hw) { return x * c - raw4(base, w + hw) * sn; }
    return x * c + raw4(base, w - hw) * sn;
  }` : ''}
  return x;
}`
    : '';
  const T = lay.threads;
  return `${wgslBindings(layout, bindings)}
${rotate}
const C = ${DECODE_CHUNK}u;
const T = ${T}u; // keys of a sub-chunk = threads of a workgroup
const GQ = ${G}u;
const D4 = ${D / 4}u; // head_dim / 4, compiled in (the loads above are straight-line code)
const SENT = -3.0e38;
var<workgroup> qv: array<vec4<f32>, ${(G * D) / 4}>; // (G, D/4) the queries
var<workgroup> ps: array<vec4<f32>, ${T}>; // (T) probabilities, one lane per head
var<workgroup> red: array<vec4<f32>, ${T}>; // the softmax's scores, then its (max, sum) pairs
var<workgroup> pv: array<vec4<f32>, ${Math.max(LOAD_BATCH, lay.headsPerRound * T)}>; // (heads of a round, groups, D/4) P·V sums
`;
}

/**
 * Pass 1 with the query heads of one KV head in one workgroup (GQA, 2 ≤ H/Hkv ≤ {@link DECODE_GQA_MAX},
 * head_dim a multiple of 4 and at most 256): K and V are read once per KV head instead of once per query
 * head. Over one KV run, or two when `second` is given (7 storage buffers).
 *
 * @example
 * ```ts
 * const k = createFlashDecodeGqaKernel({ B: 1, H: 16, Hkv: 4, D: 64, qpos: 999, segStart: 0, segLen: 1000, segCap: 1024, chunkLo: 0, chunks: 4, chunkBase: 0, N: 4 });
 * console.log(k.dispatch); // [16, 4, 1]: 4 chunks split in 4 (gqaLayout), KV heads, batch
 * ```
 */
export function createFlashDecodeGqaKernel(shape: FlashDecodeShape, options: AttentionOptions = {}, second?: FlashDecodeRun, fresh?: FreshToken): KernelDescriptor {
  const G = shape.H / shape.Hkv;
  assertArg(Number.isInteger(G) && G >= 2 && G <= DECODE_GQA_MAX && shape.D % 4 === 0 && shape.D <= MAX_DECODE_D, 'createFlashDecodeGqaKernel', `needs 2..${DECODE_GQA_MAX} query heads per KV head and head_dim a multiple of 4 up to ${MAX_DECODE_D}, got H=${shape.H}, Hkv=${shape.Hkv}, D=${shape.D}`);
  if (fresh) assertArg(fresh.R >= 0 && fresh.R % 8 === 0 && fresh.R <= shape.D, 'createFlashDecodeGqaKernel', `the fresh token's rotary dim ${fresh.R} must be a multiple of 8 up to head_dim ${shape.D}`);
  // With the fresh token the kernel writes its row into whichever run holds it: the runs are read_write.
  const kv = fresh ? 'read_write' : 'read';
  const bindings = [
    ...(fresh
      ? [
          { name: 'qkv', type: 'f32', access: 'read' } as const, // (B, 1, H·D + 2·Hkv·D) the stacked projection
          ...(fresh.R > 0 ? [{ name: 'table', type: 'f32', access: 'read' } as const] : []), // (P, R) cos | sin
        ]
      : [{ name: 'q', type: 'f32', access: 'read' } as const]), // (B, 1, H, D)
    { name: 'k', type: 'vec4<f32>', access: kv }, // (B, segCap, Hkv, D/4)
    { name: 'v', type: 'vec4<f32>', access: kv }, // (B, segCap, Hkv, D/4)
    ...(second
      ? [
          { name: 'k1', type: 'vec4<f32>', access: kv } as const, // (B, segCap1, Hkv, D/4)
          { name: 'v1', type: 'vec4<f32>', access: kv } as const, // (B, segCap1, Hkv, D/4)
        ]
      : []),
    { name: 'po', type: 'f32', access: 'read_write' }, // (B, H, N, D)
    { name: 'pml', type: 'f32', access: 'read_write' }, // (B, H, N, 2)
  ] as const;
  const layout = { ...(second ? pairLayout : decodeLayout), ...(fresh ? freshLayout : {}) };
  const lay = gqaLayout(shape.N, G, shape.D);
  const S = lay.splits;
  const cacheKey = `gqa${G}${second ? 'pair' : ''}|d${shape.D}|s${S}${fresh ? `|fresh${fresh.R}` : ''}`;
  const f = !!fresh;
  const wgsl = memoWgsl('flash_decode', cacheKey, () => `${gqaPass1Head(bindings, layout, G, shape.D, lay, fresh)}
@compute @workgroup_size(${lay.threads})
fn main(${WGSL_BUILTINS}) {
  ${second ? `if (wid.x < u.chunks0) {
    ${gqaPass1Body(RUN0, 'wid.x', G, shape.D, f, lay)}
  } else {
    ${gqaPass1Body(RUN1, 'wid.x - u.chunks0', G, shape.D, f, lay)}
  }` : gqaPass1Body(RUN0, 'wid.x', G, shape.D, f, lay)}
}`);
  const run = decodeRunData(shape, options);
  return {
    ...run,
    cacheKey,
    wgsl,
    bindings,
    workgroupSize: [lay.threads, 1, 1],
    // one workgroup per (sub-chunk, KV head, batch); the partial slots are the chunks' times their splits
    dispatch: [(shape.chunks + (second?.chunks ?? 0)) * S, shape.Hkv, shape.B],
    uniformLayout: layout,
    uniforms: {
      ...run.uniforms,
      N: shape.N * S,
      ...(second ? { segStart1: second.segStart, segLen1: second.segLen, segCap1: second.segCap, chunkLo1: second.chunkLo, chunkBase1: second.chunkBase, chunks0: shape.chunks * S } : {}),
      ...(fresh ? { W: shape.H * shape.D + 2 * shape.Hkv * shape.D, posRow: fresh.posRow } : {}),
    },
  };
}

/**
 * The decode token itself, for a GQA pass 1 that also does decode_qkv's work ({@link createFlashDecodeGqaKernel}
 * with `fresh`): q, k and v are read unrotated from the stacked projection's output (qkv); every workgroup
 * rotates its own query heads, and the workgroup whose chunk holds the token's position rotates its key and
 * writes key and value into the cache row of that position (the run's row `qpos − segStart`), so the token
 * needs no dispatch of its own before attention.
 */
export interface FreshToken {
  /** Rotary dim (a multiple of 8; 0: no rotation). */
  R: number;
  /** Row of the cos/sin table for the token's position. */
  posRow: number;
}

const freshLayout = { W: 'u32', posRow: 'u32' } as const satisfies UniformLayout;

/** The second KV run of a {@link createFlashDecodePairKernel} dispatch. */
export type FlashDecodeRun = Pick<FlashDecodeShape, 'segStart' | 'segLen' | 'segCap' | 'chunkLo' | 'chunks' | 'chunkBase'>;

/**
 * Pass 1 over two KV runs in one dispatch (7 storage buffers, within WebGPU's default 8): the
 * first `shape.chunks` workgroups of each (batch, head) take chunks of the first run, the rest
 * chunks of `second`. A paged cache usually holds its tokens in two or more runs, so this halves
 * the pass-1 dispatches (and their barriers) of a decode step. head_dim a multiple of 4.
 *
 * @example
 * ```ts
 * const k = createFlashDecodePairKernel(
 *   { B: 1, H: 16, Hkv: 4, D: 64, qpos: 700, segStart: 0, segLen: 512, segCap: 512, chunkLo: 0, chunks: 2, chunkBase: 0, N: 4 },
 *   { segStart: 512, segLen: 189, segCap: 512, chunkLo: 0, chunks: 1, chunkBase: 2 },
 * );
 * console.log(k.dispatch); // [3, 16, 1]
 * ```
 */
export function createFlashDecodePairKernel(shape: FlashDecodeShape, second: FlashDecodeRun, options: AttentionOptions = {}): KernelDescriptor {
  assertArg(shape.D % 4 === 0, 'createFlashDecodePairKernel', `head_dim ${shape.D} must be a multiple of 4`);
  const bindings = [
    { name: 'q', type: 'f32', access: 'read' }, // (B, 1, H, D)
    { name: 'k', type: 'vec4<f32>', access: 'read' }, // (B, segCap, Hkv, D/4) run 0
    { name: 'v', type: 'vec4<f32>', access: 'read' }, // (B, segCap, Hkv, D/4)
    { name: 'k1', type: 'vec4<f32>', access: 'read' }, // (B, segCap1, Hkv, D/4) run 1
    { name: 'v1', type: 'vec4<f32>', access: 'read' }, // (B, segCap1, Hkv, D/4)
    { name: 'po', type: 'f32', access: 'read_write' }, // (B, H, N, D)
    { name: 'pml', type: 'f32', access: 'read_write' }, // (B, H, N, 2)
  ] as const;
  const wgsl = memoWgsl('flash_decode', 'pair', () => `${vec4Pass1Head(bindings, pairLayout)}
@compute @workgroup_size(${DECODE_CHUNK})
fn main(${WGSL_BUILTINS}) {
  if (wid.x < u.chunks0) {
    ${vec4Pass1Body(RUN0, 'wid.x')}
  } else {
    ${vec4Pass1Body(RUN1, 'wid.x - u.chunks0')}
  }
}`);
  const run = decodeRunData(shape, options);
  return {
    ...run,
    cacheKey: 'pair',
    wgsl,
    bindings,
    dispatch: [shape.chunks + second.chunks, shape.H, shape.B],
    uniformLayout: pairLayout,
    uniforms: {
      ...run.uniforms,
      segStart1: second.segStart, segLen1: second.segLen, segCap1: second.segCap, chunkLo1: second.chunkLo, chunkBase1: second.chunkBase, chunks0: shape.chunks,
    },
  };
}

const combineLayout = { rows: 'u32', D: 'u32', N: 'u32' } as const satisfies UniformLayout;

/**
 * Builds pass 2: per (batch, head), O = Σ O_c e^(m_c − M) / Σ l_c e^(m_c − M) with M = max m_c.
 * @example
 * ```ts
 * const k = createDecodeCombineKernel({ B: 1, H: 8, D: 64, N: 4 });
 * ```
 */
export function createDecodeCombineKernel(shape: { B: number; H: number; D: number; N: number }): KernelDescriptor {
  const bindings = [
    { name: 'po', type: 'f32', access: 'read' }, // (B, H, N, D)
    { name: 'pml', type: 'f32', access: 'read' }, // (B, H, N, 2)
    { name: 'out', type: 'f32', access: 'read_write' }, // (B, 1, H, D)
  ] as const;
  const wgsl = memoWgsl('flash_decode_combine', '', () => `${wgslBindings(combineLayout, bindings)}
const WG = ${COMBINE_THREADS}u;
@compute @workgroup_size(${COMBINE_THREADS})
fn main(${WGSL_BUILTINS}) {
  let row = ${WGSL_LINEAR_WORKGROUP};
  if (row >= u.rows) { return; }
  var mx = -3.0e38;
  for (var c = 0u; c < u.N; c++) { mx = max(mx, pml[(row * u.N + c) * 2u]); }
  var total = 0.0;
  for (var c = 0u; c < u.N; c++) { total += pml[(row * u.N + c) * 2u + 1u] * exp(pml[(row * u.N + c) * 2u] - mx); }
  let inv = select(0.0, 1.0 / total, total > 0.0);
  for (var d = li; d < u.D; d += WG) {
    var acc = 0.0;
    for (var c = 0u; c < u.N; c++) { acc += po[(row * u.N + c) * u.D + d] * exp(pml[(row * u.N + c) * 2u] - mx); }
    out[row * u.D + d] = acc * inv;
  }
}`);
  return {
    name: 'flash_decode_combine',
    cacheKey: '',
    wgsl,
    workgroupSize: [COMBINE_THREADS, 1, 1],
    dispatch: linearDispatch(shape.B * shape.H),
    bindings,
    uniformLayout: combineLayout,
    uniforms: { rows: shape.B * shape.H, D: shape.D, N: shape.N },
  };
}

/**
 * Flash-decoding of one query per sequence, q (B, 1, H, D) at absolute
 * position `qpos`, against keys and values held in `runs` (positions
 * 0 .. qpos). Returns (B, 1, H, D). Called by {@link flashAttention} and the
 * KV cache; validation happens there.
 *
 * @example
 * ```ts
 * const o = flashDecoding(rt, q1, cache.kvRuns(), cache.length - 1, { Hkv: 2 }); // q1 (B, 1, H, D)
 * ```
 */
export function flashDecoding(runtime: Runtime, q: TensorLike, runs: readonly KVRun[], qpos: number, options: AttentionOptions & { Hkv: number; outShape?: readonly number[]; gqa?: boolean }): Tensor {
  const [B, , H, D] = q.shape;
  const parts = flashDecodingPartials(runtime, q, runs, qpos, options);
  const out = runtime.empty(options.outShape ?? [B, 1, H, D], 'f32', 'flashDecoding.out');
  if (!parts) {
    runtime.clear(out);
    return out;
  }
  runtime.run(createDecodeCombineKernel({ B, H, D, N: parts.chunks }), [parts.po, parts.pml, out]);
  parts.po.dispose();
  parts.pml.dispose();
  return out;
}

/** Flash decoding's pass-1 results: unnormalised O (B, H, N, D) and (m, l) (B, H, N, 2) of N partial slots (chunks, or sub-chunks of a GQA pass 1). */
export interface FlashDecodingPartials {
  po: Tensor;
  pml: Tensor;
  chunks: number;
}

/**
 * Pass 1 of {@link flashDecoding} alone: the partials its pass 2 combines, for a consumer that
 * combines them itself (attention's o_proj: `normGemv` kind 'combine'). Null when no key is visible
 * (the output is then zero). The caller disposes po and pml.
 *
 * @example
 * ```ts
 * const parts = flashDecodingPartials(rt, q1, cache.kvRuns(), cache.length - 1, { Hkv: 2 });
 * ```
 */
export function flashDecodingPartials(runtime: Runtime, q: TensorLike, runs: readonly KVRun[], qpos: number, options: AttentionOptions & { Hkv: number; gqa?: boolean }): FlashDecodingPartials | null {
  const [B, one, H, D] = q.shape;
  assertArg(one === 1, 'flashDecoding', `q must hold one token per sequence, got ${one}`);
  const { plan, N } = planChunks(runs, qpos, options.slidingWindow ?? 0);
  if (N === 0) return null;
  const vec4 = D % 4 === 0;
  // GQA: one workgroup per KV head serves its query heads (K and V read once for all of them).
  const gqa = vec4 && fitsGqa(H, options.Hkv, D) && options.gqa !== false;
  // GQA pass 1 splits short caches' chunks: one partial slot per sub-chunk
  const slots = gqa ? N * gqaLayout(N, H / options.Hkv, D).splits : N;
  const po = runtime.empty([B, H, slots, D], 'f32', 'flashDecoding.partialO');
  const pml = runtime.empty([B, H, slots, 2], 'f32', 'flashDecoding.partialML');
  const build = vec4 ? createFlashDecodeVec4Kernel : createFlashDecodeKernel;
  // With 16-byte loads, runs go two per dispatch; an odd one out takes the one-run kernel.
  for (let i = 0; i < plan.length; i += vec4 ? 2 : 1) {
    const p = plan[i];
    const shape = { B, H, Hkv: options.Hkv, D, qpos, N, ...shapeOf(p) };
    const next = vec4 ? plan[i + 1] : undefined;
    const second = next ? shapeOf(next) : undefined;
    const tensors = next ? [q, p.run.k, p.run.v, next.run.k, next.run.v, po, pml] : [q, p.run.k, p.run.v, po, pml];
    if (gqa) runtime.run(createFlashDecodeGqaKernel(shape, options, second), tensors);
    else if (second) runtime.run(createFlashDecodePairKernel(shape, second, options), tensors);
    else runtime.run(build(shape, options), tensors);
  }
  return { po, pml, chunks: slots };
}

/** The chunks of every KV run that the query at qpos sees (within the window), numbered over all runs. */
function planChunks(runs: readonly KVRun[], qpos: number, window: number): { plan: ChunkPlan[]; N: number } {
  const lo = window > 0 ? Math.max(0, qpos + 1 - window) : 0;
  const hi = qpos + 1;
  const plan: ChunkPlan[] = [];
  let N = 0;
  for (const run of runs) {
    const a = Math.max(lo, run.start);
    const e = Math.min(hi, run.start + run.length);
    if (a >= e) continue;
    const chunkLo = Math.floor((a - run.start) / DECODE_CHUNK);
    const chunkHi = Math.ceil((e - run.start) / DECODE_CHUNK);
    plan.push({ run, chunkLo, chunks: chunkHi - chunkLo, base: N });
    N += chunkHi - chunkLo;
  }
  return { plan, N };
}

interface ChunkPlan { run: KVRun; chunkLo: number; chunks: number; base: number }

const shapeOf = (p: ChunkPlan) => ({ segStart: p.run.start, segLen: p.run.length, segCap: p.run.k.shape[1], chunkLo: p.chunkLo, chunks: p.chunks, chunkBase: p.base });

function fitsGqa(H: number, Hkv: number, D: number): boolean {
  const G = H / Hkv;
  return D % 4 === 0 && D <= MAX_DECODE_D && Number.isInteger(G) && G >= 2 && G <= DECODE_GQA_MAX;
}

/**
 * Whether {@link flashDecodingPartialsFresh} takes a layer of these sizes on this runtime: GQA with
 * 2..{@link DECODE_GQA_MAX} query heads per KV head, head_dim a multiple of 4 up to 256, a rotary dim that
 * is a multiple of 8 (or none), and the storage buffers within the device's limit.
 *
 * @example
 * ```ts
 * if (fitsFreshDecode(rt, { H: 16, Hkv: 4, D: 64, R: 64 })) parts = cache.attendDecodeTokenPacked(qkv, 16, { rope });
 * ```
 */
export function fitsFreshDecode(runtime: Runtime, dims: { H: number; Hkv: number; D: number; R: number }): boolean {
  return fitsGqa(dims.H, dims.Hkv, dims.D) && dims.R % 8 === 0 && dims.R <= dims.D && 7 + (dims.R > 0 ? 1 : 0) <= runtime.limits.maxStorageBuffersPerShaderStage;
}

/**
 * {@link flashDecodingPartials} for the decode token straight from its stacked q/k/v projection qkv
 * (B, 1, H·D + 2·Hkv·D), unrotated: the pass-1 kernels rotate the queries themselves, and the one that
 * holds position qpos writes the token's rotated key and its value into that position's cache row (the
 * rows of `runs`, which must hold position qpos). It replaces decode_qkv's dispatch: one fewer per layer.
 * Check {@link fitsFreshDecode} first.
 *
 * @example
 * ```ts
 * const parts = flashDecodingPartialsFresh(rt, qkv, runs, pos, { H: 16, Hkv: 4, D: 64, rope: { table, position: pos } });
 * ```
 */
export function flashDecodingPartialsFresh(
  runtime: Runtime,
  qkv: TensorLike,
  runs: readonly KVRun[],
  qpos: number,
  options: AttentionOptions & { H: number; Hkv: number; D: number; rope?: { table: TensorLike; position: number } },
): FlashDecodingPartials {
  const op = 'flashDecodingPartialsFresh';
  const { H, Hkv, D, rope } = options;
  const R = rope ? rope.table.shape[1] : 0;
  assertArg(fitsFreshDecode(runtime, { H, Hkv, D, R }), op, `needs GQA (2..${DECODE_GQA_MAX} query heads per KV head), head_dim a multiple of 4 up to ${MAX_DECODE_D} and a rotary dim that is a multiple of 8, got H=${H}, Hkv=${Hkv}, D=${D}, R=${R}`);
  const W = H * D + 2 * Hkv * D;
  assertArg(qkv.shape[qkv.shape.length - 1] === W && qkv.size % W === 0, op, `qkv has shape [${qkv.shape.join(',')}], expected [B, 1, ${H}·${D} + 2·${Hkv}·${D} = ${W}]`);
  const B = qkv.size / W;
  if (rope) assertArg(rope.position >= 0 && rope.position < rope.table.shape[0], op, `position ${rope.position} is outside the table's ${rope.table.shape[0]} rows`);
  const { plan, N } = planChunks(runs, qpos, options.slidingWindow ?? 0);
  const home = plan.find((p) => qpos >= p.run.start && qpos < p.run.start + p.run.length);
  assertArg(home !== undefined, op, `no KV run holds position ${qpos}: reserve its row first`);
  for (const p of plan) assertArg(p.run.k.shape[0] === B && p.run.k.shape[2] === Hkv && p.run.k.shape[3] === D, op, `a KV run has shape [${p.run.k.shape.join(',')}], expected [B=${B}, T, Hkv=${Hkv}, D=${D}]`);
  const slots = N * gqaLayout(N, H / Hkv, D).splits;
  const po = runtime.empty([B, H, slots, D], 'f32', 'flashDecoding.partialO');
  const pml = runtime.empty([B, H, slots, 2], 'f32', 'flashDecoding.partialML');
  const fresh = { R, posRow: rope?.position ?? 0 };
  const head = rope ? [qkv, rope.table] : [qkv];
  for (let i = 0; i < plan.length; i += 2) {
    const p = plan[i];
    const next = plan[i + 1];
    const shape = { B, H, Hkv, D, qpos, N, ...shapeOf(p) };
    const tensors = next ? [...head, p.run.k, p.run.v, next.run.k, next.run.v, po, pml] : [...head, p.run.k, p.run.v, po, pml];
    runtime.run(createFlashDecodeGqaKernel(shape, options, next ? shapeOf(next) : undefined, fresh), tensors);
  }
  return { po, pml, chunks: slots };
}
