/**
 * A norm fused into the matrix-vector product that consumes it, for decode (M ≤ 8 rows):
 * every workgroup builds the normalised input rows in workgroup memory from the residual
 * stream (or from a Mamba-2 gate), then computes its output rows of y = x̂ · Wᵀ + b. The
 * norm never goes through global memory and costs no dispatch of its own; each workgroup
 * rereads the M·K inputs (a few KiB, from cache) instead.
 *
 * Shape glossary (the project glossary, packages/core/README.md):
 *   M  rows (tokens)   K  input features   N  output features   G  features per norm group
 *
 * Prologues (`kind`):
 *   add_rms     s = h + α·b (b optional); x̂ = s / rms(s) · w (or · (1 + w)); workgroup 0 also writes s
 *   gated_rms   x̂ = rmsnorm_G(y · silu(z)) · w          (MambaRMSNormGated, Mamba-2 paper section 7)
 *   rms_gate    x̂ = rmsnorm_G(y) · w · silu(z)          (Falcon-H1 norm_before_gate)
 *   gate        x̂ = y · silu(z)                          (no norm)
 *   combine     x̂ = flash decoding's pass 2 of the (O, m, l) partials of every (row, head) (no norm):
 *               o = Σₙ Oₙ e^(mₙ − M) / Σₙ lₙ e^(mₙ − M), M = maxₙ mₙ, so attention's o_proj needs no combine dispatch
 * z is read from columns of a wider tensor (offset, row stride), so the gate of a Mamba-2
 * in_proj output needs no copy.
 *
 * Epilogue `conv` (Mamba-2 decode): the output rows n = convStart .. convStart + C − 1 are the
 * channels of a depthwise causal conv of width k with a rolling state (M, C, k−1). A conv at one
 * token touches only its own channel, so the thread that finishes row n also runs channel
 * c = n − convStart: y = act(Σⱼ w[c, j]·state[c, j] + w[c, k−1]·x̂W[n] + b[c]), and rolls the state.
 * That removes the conv's own dispatch (and its barrier) from every decode step.
 */
import { type DType, wgslLoadFloat, wgslLoadQ8x16, wgslStorageType } from '../dtype.js';
import { assertArg } from '../errors.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { createAddRmsNormKernel } from './add-rms-norm.js';
import { gemvVecWidth, matmul } from './matmul.js';
import { rmsNorm } from './norm.js';
import { wgslActivations } from './elementwise.js';

/** The norm in front of a {@link normGemv}. */
export type NormGemvKind = 'add_rms' | 'gated_rms' | 'rms_gate' | 'gate' | 'combine';

const THREADS = 256;
/** Most (row, group) pairs one workgroup normalises. */
const MAX_R = 8;
const MAX_M = 8;
/** Widest batch {@link canNormGemv} accepts (the kernel itself handles up to MAX_M rows). */
const FUSE_MAX_M = 2;
const CAPS = [1024, 2048, 4096, 8192];

const layout = {
  M: 'u32', N: 'u32', K: 'u32', G: 'u32', NG: 'u32', eps: 'f32', alpha: 'f32', zOff: 'u32', zStride: 'u32', writeSum: 'u32',
  convStart: 'u32', convC: 'u32', N1: 'u32', N2: 'u32', cH: 'u32', cD: 'u32', cN: 'u32',
} as const satisfies UniformLayout;

/** Static choices of the causal conv epilogue of a {@link createNormGemvKernel}. */
export interface NormGemvConvAttrs {
  /** Taps k (the conv kernel width, ≥ 2). */
  taps: number;
  /** Storage type of the conv weight (C, k). */
  weightDtype: DType;
  /** Storage type of the conv bias, or null without one. */
  biasDtype: DType | null;
  activation: 'silu' | 'none';
}

/** Static choices of a {@link createNormGemvKernel}. */
export interface NormGemvAttrs {
  kind: NormGemvKind;
  /** Storage type of W. */
  weightDtype: DType;
  /** Storage type of the norm weight (absent for `gate`). */
  normDtype?: DType;
  /** add_rms: a branch b is added (else s = h). */
  branch?: boolean;
  /** RMSNorm scale (1 + w) (Gemma-style, `rms_unit`). */
  unitOffset?: boolean;
  bias?: boolean;
  /** Floats of workgroup memory for the M·K inputs (from {@link normGemvCapacity}). */
  capacity: number;
  /** A second weight W₂ (same shape): y = act(x̂·Wᵀ) · (x̂·W₂ᵀ), a gated MLP's gate and up in one pass. */
  glu?: 'silu' | 'gelu' | 'gelu_tanh';
  /** A causal conv over output rows convStart .. convStart + C − 1 (see the file comment). */
  conv?: NormGemvConvAttrs;
  /** Weights stacked along N (2 or 3: e.g. q, k and v projections of one input): rows of W, then W₂, then W₃. */
  stack?: 2 | 3;
  /** The eager variant (every global load issued before the first barrier, sizes compiled in): default when {@link eagerNormGemvFits}. */
  eager?: boolean;
  /** combine: the partials' heads, head_dim and chunks (the eager variant compiles them in). */
  combine?: { heads: number; headDim: number; chunks: number };
}

/**
 * Output rows per workgroup of a fused norm + gemv over N rows (a stacked weight's row counts
 * must be multiples of it, so that no workgroup straddles two weights).
 *
 * @example
 * ```ts
 * normGemvRows(1536); // 4
 * ```
 */
export function normGemvRows(N: number): number {
  return N >= 2048 ? 8 : 4;
}

/**
 * Workgroup memory for `M·K` inputs, or 0 when the fused kernel does not apply (too wide
 * for the device's workgroup storage, or K not a multiple of the 16-byte word).
 *
 * @example
 * ```ts
 * normGemvCapacity(1, 768, 'f32', 16384); // 1024
 * ```
 */
export function normGemvCapacity(M: number, K: number, weightDtype: DType, storageLimit: number): number {
  if (M < 1 || M > MAX_M || K % gemvVecWidth(weightDtype) !== 0) return 0;
  const cap = CAPS.find((c) => c >= M * K);
  if (cap === undefined || (cap + THREADS * MAX_R) * 4 > storageLimit) return 0;
  return cap;
}

/**
 * Builds the fused norm + gemv kernel.
 *
 * @example
 * ```ts
 * const k = createNormGemvKernel({ M: 1, N: 3352, K: 768, G: 768 }, { kind: 'add_rms', weightDtype: 'f32', normDtype: 'f32', branch: true, capacity: 1024 });
 * ```
 */
export function createNormGemvKernel(shape: { M: number; N: number; K: number; G: number }, attrs: NormGemvAttrs): KernelDescriptor {
  const { kind, weightDtype, capacity, conv } = attrs;
  assertArg(!conv || (conv.taps >= 2 && !attrs.glu), 'createNormGemvKernel', 'the conv epilogue needs at least 2 taps and no glu');
  const packed = weightDtype !== 'f32';
  // q8 weights are bound as vec4<u32> words too, 16 weights each; the scale comes from the block's scale word (dtype.ts)
  const q8 = weightDtype === 'q8';
  const norm = kind !== 'gate' && kind !== 'combine';
  // Every workgroup pays the prologue (reading and normalising M·K inputs), so it takes many
  // rows: 8 rows of 32 lanes, or 4 of 64 when N is too small to fill the GPU with 8-row groups.
  const rows = normGemvRows(shape.N);
  const stack = attrs.stack ?? 1;
  assertArg(stack === 1 || (!attrs.glu && !attrs.bias && !conv), 'createNormGemvKernel', 'stacked weights take no glu, bias or conv');
  const lanes = THREADS / rows;
  const bindings = [
    ...(kind === 'add_rms'
      ? [
          { name: 'h', type: 'f32', access: 'read' } as const, // (M, K) residual stream
          ...(attrs.branch ? [{ name: 'b', type: 'f32', access: 'read' } as const] : []), // (M, K) branch
        ]
      : kind === 'combine'
        ? [
            { name: 'po', type: 'f32', access: 'read' } as const, // (M, cH, cN, cD) partial unnormalised outputs
            { name: 'pml', type: 'f32', access: 'read' } as const, // (M, cH, cN, 2) partial max and sum
          ]
      : [
          { name: 'yv', type: 'f32', access: 'read' } as const, // (M, K)
          { name: 'z', type: 'f32', access: 'read' } as const, // (M, zStride), the gate at columns zOff..zOff+K
        ]),
    ...(norm ? [{ name: 'nw', type: wgslStorageType(attrs.normDtype ?? 'f32'), access: 'read' } as const] : []), // (K)
    ...(kind === 'add_rms' && attrs.branch ? [{ name: 's', type: 'f32', access: 'read_write' } as const] : []), // (M, K) new residual
    { name: 'w', type: packed ? 'vec4<u32>' : 'vec4<f32>', access: 'read' }, // (N, K/4) or (N, K/8)
    ...(attrs.glu ? [{ name: 'w2', type: packed ? 'vec4<u32>' : 'vec4<f32>', access: 'read' } as const] : []), // (N, K/4) or (N, K/8)
    ...(stack >= 2 ? [{ name: 'wb', type: packed ? 'vec4<u32>' : 'vec4<f32>', access: 'read' } as const] : []), // (N2, K/4) or (N2, K/8)
    ...(stack >= 3 ? [{ name: 'wc', type: packed ? 'vec4<u32>' : 'vec4<f32>', access: 'read' } as const] : []), // (N − N1 − N2, K/4 or K/8)
    ...(attrs.bias ? [{ name: 'bias', type: 'f32', access: 'read' } as const] : []), // (N)
    { name: 'y', type: 'f32', access: 'read_write' }, // (M, N)
    ...(conv
      ? [
          { name: 'cw', type: wgslStorageType(conv.weightDtype), access: 'read' } as const, // (C, k)
          ...(conv.biasDtype ? [{ name: 'cb', type: wgslStorageType(conv.biasDtype), access: 'read' } as const] : []), // (C)
          { name: 'cs', type: 'f32', access: 'read_write' } as const, // (M, C, k-1) rolling conv state
        ]
      : []),
  ] as const;
  const glu = attrs.glu;
  const convKey = conv ? `c${conv.taps}${conv.weightDtype}${conv.biasDtype ?? ''}${conv.activation}` : '';
  const eager = attrs.eager ?? eagerNormGemvFits(shape, attrs);
  assertArg(!eager || eagerNormGemvFits(shape, attrs), 'createNormGemvKernel', `the eager variant does not take M=${shape.M}, N=${shape.N}, K=${shape.K}, G=${shape.G} (${kind}, ${weightDtype})`);
  const cacheKey = `${kind}|${weightDtype}|${attrs.normDtype ?? ''}|${attrs.branch ? 1 : 0}|${attrs.unitOffset ? 1 : 0}|${attrs.bias ? 1 : 0}|${capacity}|${rows}|${glu ?? ''}|${convKey}|${stack}${eager ? `|e${shape.M}x${shape.K}x${shape.G}${attrs.combine ? `c${attrs.combine.heads}x${attrs.combine.headDim}x${attrs.combine.chunks}` : ''}` : ''}`;
  const silu = (v: string) => `(${v} / (1.0 + exp(-${v})))`;
  const zAt = 'z[u.zOff + (i / u.K) * u.zStride + i % u.K]';
  const load =
    kind === 'add_rms'
      ? `var v = h[i];${attrs.branch ? ' v += u.alpha * b[i]; if (u.writeSum == 1u && wg == 0u) { s[i] = v; }' : ''}`
      : kind === 'combine'
        ? `let cr = (i / u.K) * u.cH + (i % u.K) / u.cD; // the (row, head) of element i
    let cd = (i % u.K) % u.cD;
    var mx = -3.0e38;
    for (var c = 0u; c < u.cN; c++) { mx = max(mx, pml[(cr * u.cN + c) * 2u]); }
    var total = 0.0;
    for (var c = 0u; c < u.cN; c++) { total += pml[(cr * u.cN + c) * 2u + 1u] * exp(pml[(cr * u.cN + c) * 2u] - mx); }
    var acc = 0.0;
    for (var c = 0u; c < u.cN; c++) { acc += po[(cr * u.cN + c) * u.cD + cd] * exp(pml[(cr * u.cN + c) * 2u] - mx); }
    let v = acc * select(0.0, 1.0 / total, total > 0.0);`
      : kind === 'rms_gate'
        ? 'let v = yv[i];'
        : `let zz = ${zAt}; let v = yv[i] * ${silu('zz')};`;
  const scale = attrs.unitOffset ? '(1.0 + loadNW(c))' : 'loadNW(c)';
  const unpack = weightDtype === 'f16' ? 'unpack2x16float(p)' : 'vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u))';
  const xAt = (e: string) => `vec4<f32>(xs[${e}], xs[${e} + 1u], xs[${e} + 2u], xs[${e} + 3u])`;
  const use = (wv: string, k: string, acc = 'acc') =>
    q8
      ? `{ for (var j = 0u; j < u.M; j++) { let e = j * u.K + 16u * (${k}); ${acc}[j] += dot(${wv}[0], ${xAt('e')}) + dot(${wv}[1], ${xAt('e + 4u')}) + dot(${wv}[2], ${xAt('e + 8u')}) + dot(${wv}[3], ${xAt('e + 12u')}); } }`
      : packed
      ? `{ let a = vec4<f32>(un(${wv}.x), un(${wv}.y)); let c2 = vec4<f32>(un(${wv}.z), un(${wv}.w));
          for (var j = 0u; j < u.M; j++) { let e = j * u.K + 8u * (${k}); ${acc}[j] += dot(a, ${xAt('e')}) + dot(c2, ${xAt('e + 4u')}); } }`
      : `{ for (var j = 0u; j < u.M; j++) { let e = j * u.K + 4u * (${k}); ${acc}[j] += dot(${wv}, ${xAt('e')}); } }`;
  // q8: word k of a row is its elements 16·(row + k) .. + 15 (KW = K / 16 words per row)
  const wordAt = (b: string, k: string) => (q8 ? `${b}Q8(16u * (row + ${k}))` : `${b}[row + ${k}]`);
  const step = (k: string, i: string, wb = 'w') => `let w${i} = ${wordAt(wb, k)};${glu ? ` let v${i} = ${wordAt('w2', k)};` : ''}
      ${use(`w${i}`, k)}${glu ? `
      ${use(`v${i}`, k, 'acc2')}` : ''}`;
  // One output row's dot products: 16-byte weight words, two independent chains per lane.
  const rowLoop = (r: string, wb: string) => `let row = (${r}) * KW;
    var k = lid.x;
    for (; k + LANES < KW; k += 2u * LANES) {
      ${step('k', '0', wb)}
      ${step('k + LANES', '1', wb)}
    }
    for (; k < KW; k += LANES) {
      ${step('k', '0', wb)}
    }`;
  // built inside the memo (only on a cache miss)
  const head = () => `${wgslBindings(layout, bindings)}
${norm ? wgslLoadFloat('loadNW', 'nw', attrs.normDtype ?? 'f32') : ''}
${packed && !q8 ? `fn un(p: u32) -> vec2<f32> { return ${unpack}; }` : ''}
${q8 ? ['w', 'w2', 'wb', 'wc'].filter((b) => bindings.some((d) => d.name === b)).map((b) => wgslLoadQ8x16(`${b}Q8`, b)).join('\n') : ''}
${glu ? wgslActivations() : ''}
${conv ? `${wgslLoadFloat('loadCW', 'cw', conv.weightDtype)}
${conv.biasDtype ? wgslLoadFloat('loadCB', 'cb', conv.biasDtype) : ''}
const KT = ${conv.taps}u;
// Channel c of the causal conv at one token: its k−1 previous inputs from the state, then the new one;
// the state rolls by one (only this thread touches channel c of row m).
fn convChannel(m: u32, c: u32, xv: f32) -> f32 {
  let sb = (m * u.convC + c) * (KT - 1u);
  var acc = ${conv.biasDtype ? 'loadCB(c)' : '0.0'} + loadCW(c * KT + KT - 1u) * xv;
  var prev = xv;
  for (var j = KT - 1u; j > 0u; j--) {
    let old = cs[sb + j - 1u];
    acc += loadCW(c * KT + j - 1u) * old;
    cs[sb + j - 1u] = prev;
    prev = old;
  }
  return ${conv.activation === 'silu' ? silu('acc') : 'acc'};
}` : ''}`;
  const wgsl = memoWgsl('norm_gemv', cacheKey, () =>
    eager
      ? eagerNormGemvWgsl(shape, attrs, bindings.map((b) => b.name), rows, lanes, head())
      : `${head()}
const LANES = ${lanes}u;
const ROWS = ${rows}u;
const T = ${THREADS}u;
var<workgroup> xs: array<f32, ${capacity}>;   // (M, K) the normalised inputs
var<workgroup> part: array<f32, ${THREADS * MAX_R}>; // (R, T) partial sums
@compute @workgroup_size(${lanes}, ${rows}, 1)
fn main(${WGSL_BUILTINS}) {
  let wg = ${WGSL_LINEAR_WORKGROUP};
  let MK = u.M * u.K;
  for (var i = li; i < MK; i += T) {
    ${load}
    xs[i] = v;
  }
  workgroupBarrier();
${norm ? `  // Sums of squares of every (row, group): one partial per thread each, then one tree over all.
  let R = u.M * u.NG;
  for (var r = 0u; r < R; r++) {
    let base = (r / u.NG) * u.K + (r % u.NG) * u.G;
    var acc = 0.0;
    for (var j = li; j < u.G; j += T) { let v = xs[base + j]; acc += v * v; }
    part[r * T + li] = acc;
  }
  workgroupBarrier();
  for (var st = T / 2u; st > 0u; st >>= 1u) {
    if (li < st) { for (var r = 0u; r < R; r++) { part[r * T + li] += part[r * T + li + st]; } }
    workgroupBarrier();
  }
  for (var i = li; i < MK; i += T) {
    let c = i % u.K;
    let inv = inverseSqrt(part[((i / u.K) * u.NG + c / u.G) * T] / f32(u.G) + u.eps);
    ${kind === 'rms_gate' ? `let zz = ${zAt}; xs[i] = xs[i] * inv * ${scale} * ${silu('zz')};` : `xs[i] = xs[i] * inv * ${scale};`}
  }
  workgroupBarrier();` : ''}
  let n = wg * ROWS + lid.y;
  var acc = array<f32, ${MAX_M}>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  ${glu ? `var acc2 = array<f32, ${MAX_M}>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);` : ''}
  if (n < u.N) {
    let KW = ${q8 ? 'u.K / 16u' : packed ? 'u.K / 8u' : 'u.K / 4u'};
    ${stack === 1 ? rowLoop('n', 'w') : `if (n < u.N1) {
      ${rowLoop('n', 'w')}
    } else ${stack === 2 ? '' : `if (n < u.N1 + u.N2) {
      ${rowLoop('n - u.N1', 'wb')}
    } else `}{
      ${stack === 2 ? rowLoop('n - u.N1', 'wb') : rowLoop('n - u.N1 - u.N2', 'wc')}
    }`}
  }
  // ${glu ? 'gate sums in rows 0..M-1 of part, up sums in rows M..2M-1' : 'one row of partial sums per token'}
  for (var j = 0u; j < u.M; j++) { part[j * T + li] = acc[j];${glu ? ' part[(u.M + j) * T + li] = acc2[j];' : ''} }
  workgroupBarrier();
  let R2 = ${glu ? '2u * u.M' : 'u.M'};
  for (var st = LANES / 2u; st > 0u; st >>= 1u) {
    if (lid.x < st) { for (var j = 0u; j < R2; j++) { part[j * T + li] += part[j * T + li + st]; } }
    workgroupBarrier();
  }
  if (lid.x < u.M && n < u.N) {
    let g = part[lid.x * T + lid.y * LANES]${attrs.bias ? ' + bias[n]' : ''};
    ${glu ? `let up = part[(u.M + lid.x) * T + lid.y * LANES];
    y[lid.x * u.N + n] = ${glu}_(g) * up;` : conv ? `if (n >= u.convStart && n < u.convStart + u.convC) { y[lid.x * u.N + n] = convChannel(lid.x, n - u.convStart, g); } else { y[lid.x * u.N + n] = g; }` : 'y[lid.x * u.N + n] = g;'}
  }
}`,
  );
  return {
    name: 'norm_gemv',
    cacheKey,
    wgsl,
    workgroupSize: [lanes, rows, 1],
    dispatch: linearDispatch(shape.N / rows),
    bindings,
    uniformLayout: layout,
    uniforms: { M: shape.M, N: shape.N, K: shape.K, G: shape.G, NG: shape.K / shape.G, eps: 0, alpha: 1, zOff: 0, zStride: shape.K, writeSum: 0, convStart: 0, convC: 0, N1: shape.N, N2: 0, cH: 1, cD: shape.K, cN: 1 },
  };
}

/** Most 16-byte weight words per lane (per weight) the eager kernel keeps in registers. */
const EAGER_MAX_WORDS = 16;
/** Most vec4 input groups per thread the eager kernel keeps in registers. */
const EAGER_MAX_GROUPS = 4;
/** Partials one thread of the eager kernel's first reduction level adds (16 x 16 = 256 threads). */
const SUM_SPAN = 16;
/** Most (input group, chunk) partials per thread of the eager combine prologue. */
const EAGER_MAX_COMBINE = 16;

/**
 * Whether the eager variant of {@link createNormGemvKernel} takes this shape: every global load
 * of a thread (its weight words, its inputs, the norm weight) fits in registers and is issued at
 * the start, before the first barrier, so a workgroup waits for one memory round trip instead of
 * one per loop trip (the loops of the general kernel run over uniforms and stay rolled).
 */
export function eagerNormGemvFits(shape: { M: number; N: number; K: number; G: number }, attrs: Pick<NormGemvAttrs, 'kind' | 'weightDtype' | 'glu' | 'combine'>): boolean {
  if (shape.G % 4 !== 0 || shape.K % 4 !== 0) return false;
  const lanes = THREADS / normGemvRows(shape.N);
  const words = shape.K / gemvVecWidth(attrs.weightDtype);
  const perLane = Math.ceil(words / lanes) * (attrs.glu ? 2 : 1);
  const groups = Math.ceil((shape.M * shape.K) / 4 / THREADS);
  // combine: each input group holds one partial vec4 per chunk in registers
  const cmb = attrs.combine;
  if (attrs.kind === 'combine' && (!cmb || cmb.headDim % 4 !== 0 || groups * cmb.chunks > EAGER_MAX_COMBINE)) return false;
  return perLane <= EAGER_MAX_WORDS && groups <= EAGER_MAX_GROUPS && shape.M <= MAX_M;
}

/** The eager norm + gemv's WGSL (see {@link eagerNormGemvFits}); same bindings, uniforms and dispatch as the general kernel. */
function eagerNormGemvWgsl(
  shape: { M: number; K: number; G: number },
  attrs: NormGemvAttrs,
  names: readonly string[],
  rows: number,
  lanes: number,
  head: string,
): string {
  const { kind, weightDtype, capacity, conv, glu } = attrs;
  const { M, K, G } = shape;
  const NG = K / G;
  const R = kind === 'gate' || kind === 'combine' ? 0 : M * NG;
  const K4 = K / 4;
  const MK4 = M * K4;
  const q8 = weightDtype === 'q8';
  const packed = weightDtype !== 'f32';
  const KW = K / gemvVecWidth(weightDtype);
  const WL = Math.ceil(KW / lanes);
  const EV = Math.ceil(MK4 / THREADS);
  const stack = attrs.stack ?? 1;
  const wordType = packed ? 'vec4<u32>' : 'vec4<f32>';
  const silu = (v: string) => `(${v} / (vec4<f32>(1.0) + exp(-${v})))`;
  const silu1 = (v: string) => `(${v} / (1.0 + exp(-${v})))`;
  const v4 = (f: (j: number) => string) => `vec4<f32>(${[0, 1, 2, 3].map(f).join(', ')})`;
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const lane = (j: number) => (KW % lanes === 0 ? `lid.x + ${j * lanes}u` : `min(lid.x + ${j * lanes}u, ${KW - 1}u)`);
  // weight words of one row of buffer b (row index r in b), into wv / ws (q8 scales) or wv2 / ws2 (glu's up)
  const loads = (b: string, r: string, dst = 'wv', sc = 'ws') =>
    range(WL)
      .map((j) =>
        q8
          ? `${dst}[${j}] = ${b}Q8Word(${r} * ${K}u + 16u * (${lane(j)})); ${sc}[${j}] = ${b}Q8Scale(${r} * ${K}u + 16u * (${lane(j)}));`
          : `${dst}[${j}] = ${b}[${r} * ${KW}u + ${lane(j)}];`,
      )
      .join('\n    ');
  const weightLoads =
    stack === 1
      ? `${loads('w', 'nr')}${glu ? `\n    ${loads('w2', 'nr', 'wv2', 'ws2')}` : ''}`
      : `if (nr < u.N1) {
    ${loads('w', 'nr')}
  } else ${stack === 2 ? '' : `if (nr < u.N1 + u.N2) {
    ${loads('wb', '(nr - u.N1)')}
  } else `}{
    ${stack === 2 ? loads('wb', '(nr - u.N1)') : loads('wc', '(nr - u.N1 - u.N2)')}
  }`;
  const has = (n: string) => names.includes(n);
  // the thread's input groups: group g = li + t·T holds elements 4g .. 4g + 3 of (M, K), one row, one norm group
  const zAt = (t: number) => v4((j) => `z[u.zOff + (e${t} / ${K}u) * u.zStride + e${t} % ${K}u + ${j}u]`);
  const inputs = range(EV)
    .map((t) => {
      const g = `li + ${t * THREADS}u`;
      const valid = MK4 % THREADS === 0 || (t + 1) * THREADS <= MK4 ? 'true' : `${g} < ${MK4}u`;
      const lines = [`let ok${t} = ${valid};`, `let g${t} = min(${g}, ${MK4 - 1}u);`, `let e${t} = 4u * g${t};`, `let c${t} = e${t} % ${K}u;`];
      if (kind === 'combine') {
        // flash decoding's pass 2 for the 4 elements of this group (one row, one head): every chunk's
        // (m, l) and partial O loaded at once, then o = Σ O_c e^(m_c − M) / Σ l_c e^(m_c − M)
        const { heads: cH, headDim: cD, chunks: cN } = attrs.combine!;
        lines.push(`let rh${t} = (e${t} / ${K}u) * ${cH}u + c${t} / ${cD}u;`, `let cd${t} = c${t} % ${cD}u;`);
        const cs = range(cN);
        for (const c of cs) {
          lines.push(`let m${t}_${c} = pml[(rh${t} * ${cN}u + ${c}u) * 2u]; let l${t}_${c} = pml[(rh${t} * ${cN}u + ${c}u) * 2u + 1u]; let o${t}_${c} = ${v4((j) => `po[(rh${t} * ${cN}u + ${c}u) * ${cD}u + cd${t} + ${j}u]`)};`);
        }
        lines.push(`let mx${t} = ${cs.slice(1).reduce((a, c) => `max(${a}, m${t}_${c})`, `m${t}_0`)};`);
        lines.push(`let tot${t} = ${cs.map((c) => `l${t}_${c} * exp(m${t}_${c} - mx${t})`).join(' + ')};`);
        lines.push(`let v${t} = (${cs.map((c) => `o${t}_${c} * exp(m${t}_${c} - mx${t})`).join(' + ')}) * select(0.0, 1.0 / tot${t}, tot${t} > 0.0);`);
      } else if (kind === 'add_rms') {
        lines.push(`var v${t} = ${v4((j) => `h[e${t} + ${j}u]`)};`);
        if (has('b')) lines.push(`v${t} += u.alpha * ${v4((j) => `b[e${t} + ${j}u]`)};`);
      } else if (kind === 'rms_gate') {
        lines.push(`let v${t} = ${v4((j) => `yv[e${t} + ${j}u]`)};`, `let z${t} = ${zAt(t)};`);
      } else {
        lines.push(`let z${t} = ${zAt(t)};`, `let v${t} = ${v4((j) => `yv[e${t} + ${j}u]`)} * ${silu(`z${t}`)};`);
      }
      if (kind !== 'gate' && kind !== 'combine') {
        lines.push(`let nw${t} = ${v4((j) => (attrs.unitOffset ? `1.0 + loadNW(c${t} + ${j}u)` : `loadNW(c${t} + ${j}u)`))};`);
        lines.push(`let r${t} = (g${t} / ${K4}u) * ${NG}u + c${t} / ${G}u;`);
      }
      return lines.join('\n  ');
    })
    .join('\n  ');
  const writeSum = has('s')
    ? range(EV)
        .map((t) => `if (u.writeSum == 1u && wg == 0u && ok${t}) { ${range(4).map((j) => `s[e${t} + ${j}u] = v${t}[${j}];`).join(' ')} }`)
        .join('\n  ')
    : '';
  const norm =
    kind === 'gate' || kind === 'combine'
      ? range(EV).map((t) => `if (ok${t}) { xs[g${t}] = v${t}; }`).join('\n  ')
      : `var ss = array<f32, ${R}>(${range(R).map(() => '0.0').join(', ')});
  ${range(EV)
    .map((t) => range(R).map((r) => `ss[${r}] += select(0.0, dot(v${t}, v${t}), ok${t} && r${t} == ${r}u);`).join(' '))
    .join('\n  ')}
  ${range(R).map((r) => `part[${r * THREADS}u + li] = ss[${r}];`).join(' ')}
  // two levels (two barriers, not a tree's eight): thread j < ${THREADS / SUM_SPAN} adds partials ${SUM_SPAN}j .. ${SUM_SPAN}j + ${SUM_SPAN - 1} into the first, then each thread adds those
  workgroupBarrier();
  if (li < ${THREADS / SUM_SPAN}u) { ${range(R).map((r) => `{ var s = 0.0; for (var j = 0u; j < ${SUM_SPAN}u; j++) { s += part[${r * THREADS}u + ${SUM_SPAN}u * li + j]; } part[${r * THREADS}u + ${SUM_SPAN}u * li] = s; }`).join(' ')} }
  workgroupBarrier();
  ${range(EV)
    .map((t) => `if (ok${t}) { var ssq = 0.0; for (var j = 0u; j < ${THREADS / SUM_SPAN}u; j++) { ssq += part[r${t} * ${THREADS}u + ${SUM_SPAN}u * j]; } let inv = inverseSqrt(ssq / ${G}.0 + u.eps); xs[g${t}] = v${t} * inv * nw${t}${kind === 'rms_gate' ? ` * ${silu(`z${t}`)}` : ''}; }`)
    .join('\n  ')}`;
  // word j of the lane against row m of xs
  const dot = (src: string, sc: string, j: number, m: number) => {
    const k = lane(j);
    if (q8) return `{ let q = wQ8Dequant(${src}[${j}], ${sc}[${j}]); let b = ${m * K4}u + 4u * (${k}); a += dot(q[0], xs[b]) + dot(q[1], xs[b + 1u]) + dot(q[2], xs[b + 2u]) + dot(q[3], xs[b + 3u]); }`;
    if (packed) return `{ let p = ${src}[${j}]; let b = ${m * K4}u + 2u * (${k}); a += dot(vec4<f32>(un(p.x), un(p.y)), xs[b]) + dot(vec4<f32>(un(p.z), un(p.w)), xs[b + 1u]); }`;
    return `a += dot(${src}[${j}], xs[${m * K4}u + ${k}]);`;
  };
  const tail = KW % lanes !== 0;
  const dots = (src: string, sc: string, acc: string) =>
    range(M)
      .map(
        (m) => `{ var a = 0.0;
    ${range(WL)
      .map((j) => (tail && j === WL - 1 ? `if (lid.x + ${j * lanes}u < ${KW}u) { ${dot(src, sc, j, m)} }` : dot(src, sc, j, m)))
      .join('\n    ')}
    ${acc}[${m}] = a; }`,
      )
      .join('\n  ');
  const R2 = glu ? 2 * M : M;
  const epilogue = glu
    ? `y[lid.x * u.N + n] = ${glu}_(g) * up;`
    : conv
      ? `if (n >= u.convStart && n < u.convStart + u.convC) { y[lid.x * u.N + n] = convChannel(lid.x, n - u.convStart, g); } else { y[lid.x * u.N + n] = g; }`
      : 'y[lid.x * u.N + n] = g;';
  return `${head}
const LANES = ${lanes}u;
const ROWS = ${rows}u;
const T = ${THREADS}u;
var<workgroup> xs: array<vec4<f32>, ${capacity / 4}>; // (M, K/4) the normalised inputs
var<workgroup> part: array<f32, ${THREADS * MAX_R}>;   // (R, T) partial sums
@compute @workgroup_size(${lanes}, ${rows}, 1)
fn main(${WGSL_BUILTINS}) {
  let wg = ${WGSL_LINEAR_WORKGROUP};
  let n = wg * ROWS + lid.y;
  let nr = min(n, u.N - 1u);
  // 1. every global load first: the row's weight words (they do not depend on the input), then the inputs
  var wv: array<${wordType}, ${WL}>;
  ${q8 ? `var ws: array<f32, ${WL}>;` : ''}
  ${glu ? `var wv2: array<${wordType}, ${WL}>;${q8 ? ` var ws2: array<f32, ${WL}>;` : ''}` : ''}
  ${weightLoads}
  ${inputs}
  ${writeSum}
  // 2. the norm of every (row, group), the normalised inputs into workgroup memory
  ${norm}
  workgroupBarrier();
  // 3. the row's dot products from registers and workgroup memory, then the lanes' tree
  var acc = array<f32, ${M}>();
  ${glu ? `var acc2 = array<f32, ${M}>();` : ''}
  ${dots('wv', 'ws', 'acc')}
  ${glu ? dots('wv2', 'ws2', 'acc2') : ''}
  ${range(M).map((m) => `part[${m * THREADS}u + li] = acc[${m}];${glu ? ` part[${(M + m) * THREADS}u + li] = acc2[${m}];` : ''}`).join(' ')}
  // the lanes' sums in two levels (two barriers): lane j < LANES / 8 adds lanes 8j .. 8j + 7, the writer the LANES / 8 of those
  workgroupBarrier();
  let lane8 = lid.y * LANES + 8u * lid.x;
  if (lid.x < ${lanes / 8}u) { ${range(R2).map((j) => `{ var s = 0.0; for (var i = 0u; i < 8u; i++) { s += part[${j * THREADS}u + lane8 + i]; } part[${j * THREADS}u + lane8] = s; }`).join(' ')} }
  workgroupBarrier();
  if (lid.x < ${M}u && n < u.N) {
    var g = 0.0;
    ${glu ? 'var up = 0.0;' : ''}
    for (var i = 0u; i < ${lanes / 8}u; i++) {
      g += part[lid.x * T + lid.y * LANES + 8u * i];
      ${glu ? `up += part[(${M}u + lid.x) * T + lid.y * LANES + 8u * i];` : ''}
    }
    ${attrs.bias ? 'g += bias[n];' : ''}
    ${epilogue}
  }
}`;
}

/** Inputs of a {@link normGemv}. */
export interface NormGemvInputs {
  kind: NormGemvKind;
  /** add_rms: the residual stream h (M, K); the others: y (M, K). */
  x: TensorLike;
  /** add_rms: the branch added to h (optional). */
  branch?: TensorLike;
  /** add_rms with a branch: where s = h + α·b goes (written by one workgroup; leave out when already written). */
  sum?: TensorLike;
  /** The gate z: a tensor whose rows hold z at columns `zOffset .. zOffset + K` (row stride = its last dim). */
  z?: TensorLike;
  zOffset?: number;
  /** Norm weight (K) (absent for `gate`). */
  normWeight?: TensorLike;
  eps?: number;
  alpha?: number;
  unitOffset?: boolean;
  /** Features per norm group (default K). */
  groupSize?: number;
  /** W (N, K) as nn.Linear stores it, f32 or packed 16-bit. */
  weight: TensorLike;
  bias?: TensorLike;
  out?: Tensor;
  /** The sum was written already (by an earlier consumer of the same norm): only read h and b. */
  sumWritten?: boolean;
  /** A gated MLP: y = act(x̂·Wᵀ) · (x̂·upᵀ) (no bias). */
  glu?: { up: TensorLike; act: 'silu' | 'gelu' | 'gelu_tanh' };
  /** A causal conv epilogue over output rows `start .. start + C − 1` (Mamba-2's xBC at decode). */
  conv?: NormGemvConv;
  /** More weights (N₂, K), (N₃, K) like W, stacked after W's rows in y (e.g. k and v after q); no bias, glu or conv. */
  stack?: readonly TensorLike[];
  /** combine: the partials' sizes; `x` is O (M, heads, chunks, headDim) and `z` is (m, l) (M, heads, chunks, 2); K = heads · headDim. */
  combine?: { heads: number; headDim: number; chunks: number };
  /** Force the eager variant on or off (tests and benchmarks; default: eager where it fits). */
  eager?: boolean;
}

/** The causal conv a {@link normGemv} runs on some of its output rows, one token per row of x. */
export interface NormGemvConv {
  /** Depthwise conv weight (C, k) or (C, 1, k) as nn.Conv1d stores it. */
  weight: TensorLike;
  bias?: TensorLike;
  /** Rolling state (M, C, k−1): the previous k−1 inputs of each channel, oldest first; updated in place. */
  state: TensorLike;
  /** First output row of the conv's channels. */
  start: number;
  activation: 'silu' | 'none';
}

/**
 * Whether {@link normGemv} can take x (M, K) with this weight on this runtime.
 *
 * @example
 * ```ts
 * if (canNormGemv(rt, 1, 768, w)) normGemv(rt, { kind: 'add_rms', x: h, branch, sum, normWeight, eps, weight: w });
 * ```
 */
export function canNormGemv(runtime: Runtime, M: number, K: number, weight: TensorLike, groups = 1): boolean {
  if (!runtime.fastKernels) return false;
  // Measured on the H200: at batch 8 every workgroup normalising 8 rows costs more than the
  // norm dispatch it saves (mamba2-130m batch 8: 3,749 -> 1,805 tok/s); the fused kernel serves
  // batch 1 and 2, wider batches take the norm kernel and the vec4 gemv.
  if (M > FUSE_MAX_M) return false;
  return fitsNormGemv(runtime, M, K, weight, groups);
}

/** Whether the fused kernel can hold x (M, K) at all (the limits of the kernel, not the policy of {@link canNormGemv}). */
function fitsNormGemv(runtime: Runtime, M: number, K: number, weight: TensorLike, groups: number): boolean {
  if (weight.shape.length !== 2 || weight.shape[1] !== K || M * groups > MAX_R) return false;
  if (weight.dtype !== 'f32' && weight.dtype !== 'f16' && weight.dtype !== 'bf16' && weight.dtype !== 'q8') return false;
  return normGemvCapacity(M, K, weight.dtype, runtime.limits.maxComputeWorkgroupStorageSize) > 0;
}

/**
 * Norm + matrix-vector product in one dispatch: y (M, N) = norm(x) · Wᵀ + b (see the file
 * comment for the norms). Check {@link canNormGemv} first.
 *
 * @example
 * ```ts
 * const zxbcdt = normGemv(rt, { kind: 'add_rms', x: h, branch: mixerOut, sum: hNext, normWeight: ln, eps: 1e-5, weight: inProj });
 * ```
 */
export function normGemv(runtime: Runtime, inputs: NormGemvInputs): Tensor {
  const { kind, x, weight } = inputs;
  const cmb = inputs.combine;
  assertArg((kind === 'combine') === !!cmb, 'normGemv', 'combine takes the partials\' sizes (and only it does)');
  const K = cmb ? cmb.heads * cmb.headDim : x.shape[x.shape.length - 1];
  const M = cmb ? x.size / (cmb.heads * cmb.chunks * cmb.headDim) : x.size / K;
  if (cmb) {
    assertArg(Number.isInteger(M) && M >= 1 && !!inputs.z && inputs.z.size === M * cmb.heads * cmb.chunks * 2, 'normGemv', `combine partials [${x.shape.join(',')}] and [${inputs.z?.shape.join(',')}] do not hold (rows, ${cmb.heads}, ${cmb.chunks}, ${cmb.headDim}) and (rows, ${cmb.heads}, ${cmb.chunks}, 2)`);
  }
  const stacked = inputs.stack ?? [];
  const N = weight.shape[0] + stacked.reduce((a, w) => a + w.shape[0], 0);
  const G = inputs.groupSize ?? K;
  if (stacked.length) {
    assertArg(stacked.length <= 2 && !inputs.bias && !inputs.glu && !inputs.conv, 'normGemv', 'stack takes one or two more weights, without bias, glu or conv');
    const rows = normGemvRows(N);
    for (const [i, w] of [weight, ...stacked].entries()) {
      assertArg(w.shape.length === 2 && w.shape[1] === K && w.dtype === weight.dtype, 'normGemv', `stacked weight ${i} [${w.shape.join(',')}] (${w.dtype}) must be (rows, K=${K}) like W (${weight.dtype})`);
      assertArg(i === stacked.length || w.shape[0] % rows === 0, 'normGemv', `stacked weight ${i} has ${w.shape[0]} rows, not a multiple of the ${rows} rows per workgroup`);
    }
  }
  assertArg(K % G === 0, 'normGemv', `groupSize ${G} must divide K=${K}`);
  assertArg(fitsNormGemv(runtime, M, K, weight, K / G), 'normGemv', `x (${M}, ${K}) with W [${weight.shape.join(',')}] (${weight.dtype}) does not fit the fused kernel`);
  const capacity = normGemvCapacity(M, K, weight.dtype, runtime.limits.maxComputeWorkgroupStorageSize);
  const glu = inputs.glu;
  assertArg(!glu || (M <= MAX_R / 2 && !inputs.bias && glu.up.dtype === weight.dtype && glu.up.shape.join() === weight.shape.join()), 'normGemv', 'glu needs an up weight like W, no bias and at most 4 rows');
  const conv = inputs.conv;
  const C = conv ? conv.state.shape[1] : 0;
  if (conv) {
    const taps = conv.state.shape[2] + 1;
    assertArg(conv.state.shape.length === 3 && conv.state.shape[0] === M && taps >= 2, 'normGemv', `conv state has shape [${conv.state.shape.join(',')}], expected [M=${M}, channels, k-1]`);
    assertArg(conv.weight.size === C * taps && (!conv.bias || conv.bias.size === C), 'normGemv', `conv weight [${conv.weight.shape.join(',')}] must hold (C=${C}, k=${taps})${conv.bias ? `, bias [${conv.bias.shape.join(',')}] (C)` : ''}`);
    assertArg(Number.isInteger(conv.start) && conv.start >= 0 && conv.start + C <= N, 'normGemv', `conv rows [${conv.start}, ${conv.start + C}) exceed N=${N}`);
  }
  const k = createNormGemvKernel({ M, N, K, G }, {
    kind, weightDtype: weight.dtype, normDtype: inputs.normWeight?.dtype, branch: !!inputs.branch, unitOffset: inputs.unitOffset, bias: !!inputs.bias, capacity, glu: glu?.act,
    conv: conv ? { taps: conv.state.shape[2] + 1, weightDtype: conv.weight.dtype, biasDtype: conv.bias?.dtype ?? null, activation: conv.activation } : undefined,
    stack: stacked.length ? ((stacked.length + 1) as 2 | 3) : undefined,
    eager: inputs.eager,
    combine: cmb,
  });
  assertArg(k.bindings.length <= runtime.limits.maxStorageBuffersPerShaderStage, 'normGemv', `${k.bindings.length} storage buffers exceed the device's ${runtime.limits.maxStorageBuffersPerShaderStage}`);
  const y = inputs.out ?? runtime.empty(cmb ? [M, 1, N] : [...x.shape.slice(0, -1), N], 'f32', 'normGemv.y');
  const z = inputs.z;
  const uniforms = {
    ...k.uniforms,
    eps: inputs.eps ?? 0,
    alpha: inputs.alpha ?? 1,
    zOff: inputs.zOffset ?? 0,
    zStride: z ? z.shape[z.shape.length - 1] : K,
    writeSum: inputs.sum && !inputs.sumWritten ? 1 : 0,
    convStart: conv?.start ?? 0,
    convC: C,
    N1: weight.shape[0],
    N2: stacked[0]?.shape[0] ?? 0,
    cH: cmb?.heads ?? 1,
    cD: cmb?.headDim ?? K,
    cN: cmb?.chunks ?? 1,
  };
  const tensors: TensorLike[] = [];
  if (kind === 'add_rms') {
    assertArg(!inputs.branch || !!inputs.sum, 'normGemv', 'add_rms with a branch needs the tensor the sum h + α·b goes to');
    tensors.push(x);
    if (inputs.branch) tensors.push(inputs.branch);
  } else {
    assertArg(!!z, 'normGemv', `${kind} needs the gate z`);
    tensors.push(x, z!);
  }
  if (kind !== 'gate' && kind !== 'combine') tensors.push(inputs.normWeight!);
  if (kind === 'add_rms' && inputs.branch) tensors.push(inputs.sum!);
  tensors.push(weight);
  if (glu) tensors.push(glu.up);
  tensors.push(...stacked);
  if (inputs.bias) tensors.push(inputs.bias);
  tensors.push(y);
  if (conv) {
    tensors.push(conv.weight);
    if (conv.bias) tensors.push(conv.bias);
    tensors.push(conv.state);
  }
  runtime.run({ ...k, uniforms }, tensors);
  return y;
}

/**
 * CPU reference of {@link normGemv}: the norm in a plain loop (float64), then x̂ · Wᵀ + b.
 * Returns y and, for add_rms, the sum s.
 *
 * @example
 * ```ts
 * const { y } = normGemvReference({ kind: 'gate', M: 1, K: 4, N: 2, x, z, zOffset: 0, zStride: 4, weight: w });
 * ```
 */
export function normGemvReference(a: {
  kind: NormGemvKind;
  M: number;
  K: number;
  N: number;
  x: Float32Array;
  branch?: Float32Array;
  alpha?: number;
  z?: Float32Array;
  zOffset?: number;
  zStride?: number;
  normWeight?: Float32Array;
  eps?: number;
  unitOffset?: boolean;
  groupSize?: number;
  weight: Float32Array;
  bias?: Float32Array;
  /** The conv epilogue: weight (C, k), bias (C), state (M, C, k−1) (updated in place), first row, activation. */
  conv?: { weight: Float32Array; bias?: Float32Array; state: Float32Array; taps: number; start: number; activation: 'silu' | 'none' };
  /** combine: x holds O (M, heads, chunks, headDim), z holds (m, l) (M, heads, chunks, 2). */
  combine?: { heads: number; headDim: number; chunks: number };
}): { y: Float32Array; sum: Float32Array } {
  const { kind, M, K, N } = a;
  if (kind === 'combine') {
    // flash decoding's pass 2 in float64, then the product
    const { heads: H, headDim: D, chunks: C } = a.combine!;
    const o = new Float64Array(M * K);
    for (let r = 0; r < M * H; r++) {
      let mx = -Infinity;
      for (let c = 0; c < C; c++) mx = Math.max(mx, a.z![(r * C + c) * 2]);
      let total = 0;
      for (let c = 0; c < C; c++) total += a.z![(r * C + c) * 2 + 1] * Math.exp(a.z![(r * C + c) * 2] - mx);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let c = 0; c < C; c++) acc += a.x[(r * C + c) * D + d] * Math.exp(a.z![(r * C + c) * 2] - mx);
        o[r * D + d] = total > 0 ? acc / total : 0;
      }
    }
    const y = new Float32Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = a.bias ? a.bias[n] : 0;
        for (let k = 0; k < K; k++) acc += o[m * K + k] * a.weight[n * K + k];
        y[m * N + n] = acc;
      }
    }
    return { y, sum: new Float32Array(0) };
  }
  const G = a.groupSize ?? K;
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const sum = new Float32Array(M * K);
  const xh = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    for (let c = 0; c < K; c++) {
      const i = m * K + c;
      const zz = a.z ? a.z[(a.zOffset ?? 0) + m * (a.zStride ?? K) + c] : 0;
      if (kind === 'add_rms') {
        sum[i] = a.x[i] + (a.branch ? (a.alpha ?? 1) * a.branch[i] : 0);
        xh[i] = sum[i];
      } else xh[i] = kind === 'rms_gate' ? a.x[i] : a.x[i] * silu(zz);
    }
    if (kind === 'gate') continue;
    for (let g = 0; g < K / G; g++) {
      let ss = 0;
      for (let c = g * G; c < (g + 1) * G; c++) ss += xh[m * K + c] ** 2;
      const inv = 1 / Math.sqrt(ss / G + (a.eps ?? 0));
      for (let c = g * G; c < (g + 1) * G; c++) {
        const w = a.normWeight![c];
        let v = xh[m * K + c] * inv * (a.unitOffset ? 1 + w : w);
        if (kind === 'rms_gate') v *= silu(a.z![(a.zOffset ?? 0) + m * (a.zStride ?? K) + c]);
        xh[m * K + c] = v;
      }
    }
  }
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = a.bias ? a.bias[n] : 0;
      for (let k = 0; k < K; k++) acc += xh[m * K + k] * a.weight[n * K + k];
      y[m * N + n] = acc;
    }
  }
  const cv = a.conv;
  if (cv) {
    // causal_conv1d_update at one token per row (transformers' Mamba-2 torch_forward, seq_len 1)
    const kt = cv.taps;
    const C = cv.weight.length / kt;
    for (let m = 0; m < M; m++) {
      for (let c = 0; c < C; c++) {
        const s = cv.state.subarray((m * C + c) * (kt - 1), (m * C + c + 1) * (kt - 1));
        const window = [...s, y[m * N + cv.start + c]];
        let acc = cv.bias ? cv.bias[c] : 0;
        for (let j = 0; j < kt; j++) acc += cv.weight[c * kt + j] * window[j];
        s.set(window.slice(1));
        y[m * N + cv.start + c] = cv.activation === 'silu' ? silu(acc) : acc;
      }
    }
  }
  return { y, sum };
}

/** What a {@link PendingNorm} normalises: s = h + α·b (b optional), then RMSNorm(s) · w. */
export interface PendingNormSpec {
  /** The residual stream (M, K). */
  h: Tensor;
  /** The branch to add (optional). */
  branch?: Tensor;
  alpha?: number;
  /** Where s goes (needed with a branch). */
  sum?: Tensor;
  weight: TensorLike;
  eps: number;
  unitOffset?: boolean;
  /** Called once when the norm is done with h and b (the owner frees them there). */
  release?: () => void;
}

/**
 * A residual add + RMSNorm not run yet, handed to the layer that consumes it: each of its
 * projections becomes one fused {@link normGemv} (the first also writes the sum), and only
 * a consumer that needs the normalised tensor itself makes it ({@link tensor}).
 *
 * @example
 * ```ts
 * const pn = new PendingNorm(rt, { h, branch, sum, weight: ln, eps: 1e-5 });
 * const zxbcdt = pn.matmul(inProj);   // norm + in_proj in one dispatch
 * pn.dispose();                       // the sum is written, h and b released
 * ```
 */
export class PendingNorm {
  /** Shape of h and of the normalised tensor. */
  readonly shape: readonly number[];
  /** The normalised tensor's element type. */
  readonly dtype = 'f32' as const;
  private normed: Tensor | null = null;
  private sumWritten: boolean;
  private done = false;

  constructor(
    private readonly runtime: Runtime,
    /** What is normalised. */
    readonly spec: PendingNormSpec,
  ) {
    this.shape = spec.h.shape;
    this.sumWritten = !spec.branch;
  }

  /** y = norm(x) · Wᵀ + b: one fused dispatch when the shapes fit, else the norm then a matmul. */
  matmul(weight: TensorLike, options: { bias?: TensorLike; out?: Tensor } = {}): Tensor {
    return this.fused(weight, options) ?? matmul(this.runtime, this.tensor(), weight, options);
  }

  /**
   * act(norm(x)·gateᵀ) · (norm(x)·upᵀ), a gated MLP's first half, in one fused dispatch; null
   * when the shapes do not fit it (then take {@link matmul} for gate and up).
   */
  fusedGlu(gate: TensorLike, up: TensorLike, act: 'silu' | 'gelu' | 'gelu_tanh'): Tensor | null {
    if (up.dtype !== gate.dtype || up.shape.join() !== gate.shape.join() || this.spec.h.size / this.shape[this.shape.length - 1] > MAX_R / 2) return null;
    return this.fused(gate, { glu: { up, act } });
  }

  /**
   * norm(x)·Wᵀ + b with a causal conv run on output rows `conv.start ..` (one token per row), in
   * one fused dispatch; null when the shapes or the device's storage-buffer limit do not fit it.
   */
  fusedConv(weight: TensorLike, conv: NormGemvConv, options: { bias?: TensorLike; out?: Tensor } = {}): Tensor | null {
    const buffers = 2 + (this.spec.branch ? 2 : 0) + 2 + (options.bias ? 1 : 0) + 2 + (conv.bias ? 1 : 0); // h, nw, [b, s], w, y, [bias], cw, cs, [cb]
    if (buffers > this.runtime.limits.maxStorageBuffersPerShaderStage || conv.state.shape[0] !== this.spec.h.size / this.shape[this.shape.length - 1]) return null;
    return this.fused(weight, { ...options, conv });
  }

  /**
   * norm(x)·[W₁; W₂; W₃]ᵀ, projections of one input with their outputs side by side in one row
   * (e.g. q, k and v: (M, N₁ + N₂ + N₃)), in one fused dispatch; null when the shapes do not fit
   * it (row counts not multiples of the rows per workgroup, unlike dtypes, biases elsewhere).
   */
  fusedStack(weights: readonly TensorLike[]): Tensor | null {
    const [first, ...rest] = weights;
    if (!first || rest.length < 1 || rest.length > 2) return null;
    const K = this.shape[this.shape.length - 1];
    const rows = normGemvRows(weights.reduce((a, w) => a + w.shape[0], 0));
    const buffers = 2 + (this.spec.branch ? 2 : 0) + weights.length + 1;
    if (buffers > this.runtime.limits.maxStorageBuffersPerShaderStage) return null;
    if (weights.some((w, i) => w.shape.length !== 2 || w.shape[1] !== K || w.dtype !== first.dtype || (i < weights.length - 1 && w.shape[0] % rows !== 0))) return null;
    return this.fused(first, { stack: rest });
  }

  private fused(weight: TensorLike, extra: Pick<NormGemvInputs, 'bias' | 'out' | 'glu' | 'conv' | 'stack'>): Tensor | null {
    const K = this.shape[this.shape.length - 1];
    if (this.normed || weight.shape.length !== 2 || !canNormGemv(this.runtime, this.spec.h.size / K, K, weight)) return null;
    const { h, branch, alpha, sum, weight: normWeight, eps, unitOffset } = this.spec;
    const y = normGemv(this.runtime, { kind: 'add_rms', x: h, branch, alpha, sum, sumWritten: this.sumWritten, normWeight, eps, unitOffset, weight, ...extra });
    this.sumWritten = true;
    return y;
  }

  /** The normalised tensor (M, K), made on first use and freed by {@link dispose}. */
  tensor(): Tensor {
    if (this.normed) return this.normed;
    const rt = this.runtime;
    const { h, branch, sum, weight, eps, unitOffset, alpha } = this.spec;
    if (branch && !this.sumWritten) {
      const k = createAddRmsNormKernel({ rows: h.size / this.shape[this.shape.length - 1], D: this.shape[this.shape.length - 1] }, { weightDtype: weight.dtype, unitOffset });
      this.normed = rt.empty(h.shape, 'f32', 'pendingNorm.y');
      rt.run({ ...k, uniforms: { ...k.uniforms, eps, alpha: alpha ?? 1 } }, [h, branch, weight, sum!, this.normed]);
      this.sumWritten = true;
    } else {
      this.normed = rmsNorm(rt, branch ? sum! : h, weight, eps, { unitOffset });
    }
    return this.normed;
  }

  /** Makes sure the sum is written, then frees the normalised tensor and releases h and b. */
  dispose(): void {
    if (this.done) return;
    if (!this.sumWritten) this.tensor();
    this.done = true;
    this.normed?.dispose();
    this.normed = null;
    this.spec.release?.();
  }
}

/**
 * x · Wᵀ + b for a tensor or a {@link PendingNorm} (whose norm is then fused into the product).
 *
 * @example
 * ```ts
 * const q = linear(rt, x, w['q_proj.weight'], { bias: w['q_proj.bias'] }); // x: Tensor | PendingNorm
 * ```
 */
export function linear(runtime: Runtime, x: TensorLike | PendingNorm, weight: TensorLike, options: { bias?: TensorLike; out?: Tensor } = {}): Tensor {
  return x instanceof PendingNorm ? x.matmul(weight, options) : matmul(runtime, x, weight, options);
}

/** The tensor behind a tensor or a {@link PendingNorm} (the norm is run if it was pending). */
export function normedTensor<T extends TensorLike>(x: T | PendingNorm): T | Tensor {
  return x instanceof PendingNorm ? x.tensor() : x;
}
