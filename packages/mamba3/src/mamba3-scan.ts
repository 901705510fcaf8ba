/**
 * The Mamba-3 scan: from in_proj's output to the mixer's pre-out_proj output, for prefill (any number of tokens)
 * and as the fused one-dispatch decode step (one token: gates, B/C norms, rotation, recurrence, gating and the
 * MIMO down-projection in a single kernel).
 *
 * Per token and head (Mamba-3 paper: the trapezoidal rule of section 3, MIMO of section 4; the exact formulas are in
 * mamba3-reference.ts):
 *   α = exp(A·Δ), β = (1 − λ)·Δ·α, γ = λ·Δ;  θ ← θ + π·tanh(angles)·Δ
 *   S ← α·S + β·Σ_r v_{t−1,r} ⊗ k_{t−1,r} + γ·Σ_r v_r ⊗ k_r,   y_r = S·q_r + D·v_r
 *
 * Work split: one workgroup per (P-tile of ROWS rows, head, batch row); LANES threads share a row of S, each holding
 * ⌈N / LANES⌉ of its entries in registers for the whole call. Tokens go through in chunks of Q: per chunk the
 * workgroup computes the gates, the RMS of B and C, the running angles (a serial cumsum over Q tokens by `angles`
 * threads) and the biased, rotated q_r and k_r of all Q tokens into workgroup memory, then every thread runs the
 * Q recurrence steps on its registers without a barrier, leaving its partial dot products y_r in workgroup memory;
 * one more barrier and the chunk's outputs are reduced over the lanes, gated and written. Four barriers per chunk.
 *
 * State layout (per batch row and head), f32:
 *   [S (P, N) | v_prev (rank, P) | per P-tile: k_prev (rank, N), θ (angles)]
 * Every P-tile keeps its own copy of k_prev and θ (identical values): the tiles of one dispatch run in no set
 * order, so a shared copy would be read by one tile after another had overwritten it.
 *
 * Shape glossary (mamba3-shape.ts): B batch, L seqlen, H heads, P head dim, I = H·P, N d_state, G groups,
 * rank (MIMO rank), angles (rotary angles), W in_proj width, Q tokens per chunk. Kernel-local: LANES threads per
 * row of S, ROWS rows per workgroup, NE = ⌈N / LANES⌉ state entries per thread.
 */
import {
  type KernelDescriptor,
  type Runtime,
  StatespaceError,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  WGSL_BUILTINS,
  assertArg,
  memoWgsl,
  wgslActivations,
  wgslBindings,
} from '@statespace/core';
import type { Mamba3Dims } from './mamba3-shape.js';

/** Threads sharing one row of S. */
export const MAMBA3_LANES = 8;
/** Rows of S per workgroup. */
export const MAMBA3_ROWS = 16;
const THREADS = MAMBA3_LANES * MAMBA3_ROWS;
/** Workgroup memory the scan may use, in f32 words (WebGPU's default limit is 16 KiB). */
const WORDS = 4096;

const layout = {
  B: 'u32',
  L: 'u32',
  t0: 'u32',
  nt: 'u32',
  H: 'u32',
  P: 'u32',
  I: 'u32',
  N: 'u32',
  G: 'u32',
  angles: 'u32',
  W: 'u32',
  xOff: 'u32',
  bOff: 'u32',
  cOff: 'u32',
  dtOff: 'u32',
  aOff: 'u32',
  trapOff: 'u32',
  angOff: 'u32',
  stride: 'u32',
  aFloor: 'f32',
  eps: 'f32',
} as const satisfies UniformLayout;

/**
 * P-tiles of a head (workgroups along x): ⌈P / {@link MAMBA3_ROWS}⌉.
 *
 * @example
 * ```ts
 * mamba3Tiles({ P: 64 }); // 4
 * ```
 */
export function mamba3Tiles(d: Pick<Mamba3Dims, 'P'>): number {
  return Math.ceil(d.P / MAMBA3_ROWS);
}

/**
 * f32 words of one (batch row, head) of the state: S (P·N), v_prev (rank·P), and per P-tile k_prev (rank·N) and θ (angles).
 *
 * @example
 * ```ts
 * const state = rt.zeros([1, d.H, mamba3StateStride(d)]);
 * ```
 */
export function mamba3StateStride(d: Pick<Mamba3Dims, 'P' | 'N' | 'rank' | 'angles'>): number {
  return d.P * d.N + d.rank * d.P + mamba3Tiles(d) * (d.rank * d.N + d.angles);
}

/**
 * Compile-time sizes of the scan for a layer: NE, Q (tokens per chunk: 16, fewer when rank·N is large), and the
 * words of workgroup memory they take.
 *
 * @example
 * ```ts
 * mamba3ScanTiling({ N: 128, rank: 4 }); // { NE: 16, Q: 2, words: 3736 }
 * ```
 */
export function mamba3ScanTiling(d: Pick<Mamba3Dims, 'N' | 'rank'>): { NE: number; Q: number; words: number } {
  const NE = Math.ceil(d.N / MAMBA3_LANES);
  const NMAX = NE * MAMBA3_LANES;
  const SMAX = Math.max(1, NMAX / 2);
  const words = (tq: number) => 2 * tq * d.rank * NMAX + d.rank * NMAX + tq * d.rank * THREADS + tq * SMAX + 4 * tq + 2 * tq * d.rank;
  let Q = 16;
  while (Q > 1 && words(Q) > WORDS) Q--;
  return { NE, Q, words: words(Q) };
}

/** Options of the scan kernel that change its code. */
export interface Mamba3ScanAttrs {
  /** MIMO: mimo_x / mimo_z / mimo_o bindings and the halves rotation (i, i + N/2); else SISO's pairs (2i, 2i+1). */
  mimo: boolean;
  /**
   * true: y (B, L, rank, I) of S·q_r + D·v_r, ungated (what the output norm reads); false: y (B, L, I) gated by
   * silu(z·mimo_z) and summed over r with mimo_o.
   */
  perRank: boolean;
}

/**
 * Builds the scan kernel for `nt` tokens starting at token `t0` of buffers of L tokens.
 *
 * @throws StatespaceError `UNSUPPORTED_CONFIG` when d_state > 256 or d_state·rank needs more workgroup memory than
 *   WebGPU's default 16 KiB.
 * @example
 * ```ts
 * const kernel = createMamba3ScanKernel(d, { B: 1, L: 37, t0: 0, nt: 37 }, { aFloor: 1e-4 }, { mimo: false, perRank: false });
 * ```
 */
export function createMamba3ScanKernel(
  d: Mamba3Dims,
  shape: { B: number; L: number; t0: number; nt: number },
  values: { aFloor: number },
  attrs: Mamba3ScanAttrs,
): KernelDescriptor {
  if (d.N > 256) throw new StatespaceError('UNSUPPORTED_CONFIG', `mamba3Scan: d_state=${d.N} is above 256, the most the scan keeps per row of threads`);
  const { NE, Q, words } = mamba3ScanTiling(d);
  if (words > WORDS) {
    throw new StatespaceError('UNSUPPORTED_CONFIG', `mamba3Scan: d_state=${d.N} with rank ${d.rank} needs ${words * 4} bytes of workgroup memory (limit ${WORDS * 4})`);
  }
  const { mimo, perRank } = attrs;
  const rank = d.rank;
  const NMAX = NE * MAMBA3_LANES;
  const SMAX = Math.max(1, NMAX / 2);
  const bindings = [
    { name: 'zx', type: 'f32', access: 'read' }, // (B, L, W) in_proj output
    { name: 'dtBias', type: 'f32', access: 'read' }, // (H)
    { name: 'bBias', type: 'f32', access: 'read' }, // (H, rank, N)
    { name: 'cBias', type: 'f32', access: 'read' }, // (H, rank, N)
    { name: 'bNorm', type: 'f32', access: 'read' }, // (N)
    { name: 'cNorm', type: 'f32', access: 'read' }, // (N)
    { name: 'Dskip', type: 'f32', access: 'read' }, // (H)
    ...(mimo ? [{ name: 'mimoX', type: 'f32', access: 'read' } as const] : []), // (H, rank, P)
    ...(mimo && !perRank ? [{ name: 'mimoZ', type: 'f32', access: 'read' } as const, { name: 'mimoO', type: 'f32', access: 'read' } as const] : []), // (H, rank, P)
    { name: 'state', type: 'f32', access: 'read_write' }, // (B, H, stride)
    { name: 'y', type: 'f32', access: 'read_write' }, // (B, L, rank, I) perRank, else (B, L, I)
  ] as const;
  const cacheKey = `NE${NE}_rank${rank}_Q${Q}_${mimo ? 'mimo' : 'siso'}_${perRank ? 'rank' : 'sum'}`;
  const wgsl = memoWgsl('mamba3_scan', cacheKey, () => scanWgsl(bindings, { NE, rank, Q, NMAX, SMAX }, attrs));
  return {
    name: 'mamba3_scan',
    cacheKey,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: [mamba3Tiles(d), d.H, shape.B],
    bindings,
    uniformLayout: layout,
    uniforms: {
      B: shape.B,
      L: shape.L,
      t0: shape.t0,
      nt: shape.nt,
      H: d.H,
      P: d.P,
      I: d.I,
      N: d.N,
      G: d.G,
      angles: d.angles,
      W: d.W,
      xOff: d.xOff,
      bOff: d.bOff,
      cOff: d.cOff,
      dtOff: d.dtOff,
      aOff: d.aOff,
      trapOff: d.trapOff,
      angOff: d.angOff,
      stride: mamba3StateStride(d),
      aFloor: values.aFloor,
      eps: d.eps,
    },
  };
}

/** The scan's WGSL (built once per cache key). */
function scanWgsl(
  bindings: KernelDescriptor['bindings'],
  k: { NE: number; rank: number; Q: number; NMAX: number; SMAX: number },
  attrs: Mamba3ScanAttrs,
): string {
  const { NE, rank, Q, NMAX, SMAX } = k;
  const { mimo, perRank } = attrs;
  const mx = (idx: string) => (mimo ? ` * mimoX[(h * rank + r) * u.P + ${idx}]` : '');
  const pairing = mimo
    ? `let halfN = u.N / 2u;
      if (n < halfN && n < u.angles) { pa = n; pb = n + halfN; si = n; rot = true; }
      else if (n >= halfN && n - halfN < u.angles) { pa = n - halfN; pb = n; si = n - halfN; rot = true; }`
    : `if (n < 2u * u.angles) { pa = n & ~1u; pb = pa + 1u; si = n / 2u; rot = true; }`;
  const outBody = perRank
    ? `          y[((b * u.L + t) * rank + r) * u.I + h * u.P + pp] = yr;`
    : `          out += ${mimo ? 'mimoO[(h * rank + r) * u.P + pp] * ' : ''}yr * silu_(zv${mimo ? ' * mimoZ[(h * rank + r) * u.P + pp]' : ''});`;
  return `${wgslBindings(layout, bindings)}
${wgslActivations()}
const LANES = ${MAMBA3_LANES}u;
const ROWS = ${MAMBA3_ROWS}u;
const NE = ${NE}u;
const rank = ${rank}u;
const Q = ${Q}u;
const NMAX = ${NMAX}u;
const SMAX = ${SMAX}u;
const PI = 3.141592653589793;
const TWO_PI = 6.283185307179586;

// sin and cos to ~1 ulp (WGSL only bounds its builtins' error to 2^-11 on [−π, π], and SwiftShader's are
// about that): Cody–Waite reduction by π/2 in two parts, then Taylor polynomials on [−π/4, π/4].
fn sincos_(x: f32) -> vec2<f32> {
  let k = round(x * 0.6366197723675814);
  let r = (x - k * 1.5707963705062866) + k * 4.371139000186243e-8;
  let r2 = r * r;
  let sn = r + r * r2 * (-0.16666666666666666 + r2 * (0.008333333333333333 + r2 * (-0.0001984126984126984 + r2 * 2.7557319223985893e-6)));
  let cs = 1.0 + r2 * (-0.5 + r2 * (0.041666666666666664 + r2 * (-0.001388888888888889 + r2 * 2.48015873015873e-5)));
  let q = i32(k) & 3;
  if (q == 0) { return vec2<f32>(sn, cs); }
  if (q == 1) { return vec2<f32>(cs, -sn); }
  if (q == 2) { return vec2<f32>(-sn, -cs); }
  return vec2<f32>(-cs, sn);
}

var<workgroup> qS: array<f32, ${Q * rank * NMAX}>;       // (Q, rank, N) rotated q = C
var<workgroup> kS: array<f32, ${Q * rank * NMAX}>;       // (Q, rank, N) rotated k = B
var<workgroup> kPrevS: array<f32, ${rank * NMAX}>;        // (rank, N) k of the token before the chunk
var<workgroup> redS: array<f32, ${Q * rank * THREADS}>;  // (Q, rank, ROWS, LANES) partial S·q_r
var<workgroup> thS: array<f32, ${Q * SMAX}>;          // (Q, angles) θ
var<workgroup> gateS: array<f32, ${4 * Q}>;           // (Q, 4) α, β, γ, Δ
var<workgroup> invS: array<f32, ${2 * Q * rank}>;        // (Q, rank, 2) 1 / rms of B and C

@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let row = li / LANES;
  let lane = li % LANES;
  let tile = wid.x;
  let h = wid.y;
  let b = wid.z;
  let p = tile * ROWS + row;
  let live = p < u.P;
  let g = h / (u.H / u.G);
  let sb = (b * u.H + h) * u.stride;
  let tb = sb + u.P * u.N + rank * u.P + tile * (rank * u.N + u.angles);
  var s: array<f32, NE>;
  var vPrev: array<f32, rank>;
  if (live) {
    for (var i = 0u; i < NE; i++) {
      let n = lane + i * LANES;
      s[i] = select(0.0, state[sb + p * u.N + min(n, u.N - 1u)], n < u.N);
    }
    for (var r = 0u; r < rank; r++) { vPrev[r] = state[sb + u.P * u.N + r * u.P + p]; }
  }
  for (var j = li; j < rank * u.N; j += ${THREADS}u) { kPrevS[(j / u.N) * NMAX + j % u.N] = state[tb + j]; }
  var theta = 0.0;
  if (li < u.angles) { theta = state[tb + rank * u.N + li]; }
  let dSkip = Dskip[h];
  for (var c0 = 0u; c0 < u.nt; c0 += Q) {
    let ntc = min(Q, u.nt - c0);
    let base = (b * u.L + u.t0 + c0) * u.W;
    if (li < ntc) {
      let rb = base + li * u.W;
      let dt = softplus_(zx[rb + u.dtOff + h] + dtBias[h]);
      let A = min(-softplus_(zx[rb + u.aOff + h]), -u.aFloor);
      let lam = sigmoid_(zx[rb + u.trapOff + h]);
      let alpha = exp(A * dt);
      gateS[li * 4u] = alpha;
      gateS[li * 4u + 1u] = (1.0 - lam) * dt * alpha;
      gateS[li * 4u + 2u] = lam * dt;
      gateS[li * 4u + 3u] = dt;
    }
    for (var j = li; j < ntc * rank * 2u; j += ${THREADS}u) {
      let tau = j / (rank * 2u);
      let r = (j % (rank * 2u)) / 2u;
      let off = base + tau * u.W + select(u.bOff, u.cOff, j % 2u == 1u) + (r * u.G + g) * u.N;
      var ss = 0.0;
      for (var n = 0u; n < u.N; n++) { let v = zx[off + n]; ss += v * v; }
      invS[j] = inverseSqrt(ss / f32(u.N) + u.eps);
    }
    workgroupBarrier();
    if (li < u.angles) {
      for (var tau = 0u; tau < ntc; tau++) {
        theta += PI * tanh(clamp(zx[base + tau * u.W + u.angOff + li], -15.0, 15.0)) * gateS[tau * 4u + 3u];
        theta -= TWO_PI * floor(theta / TWO_PI);
        thS[tau * SMAX + li] = theta;
      }
    }
    workgroupBarrier();
    for (var j = li; j < ntc * rank * u.N; j += ${THREADS}u) {
      let tau = j / (rank * u.N);
      let r = (j % (rank * u.N)) / u.N;
      let n = j % u.N;
      var pa = n;
      var pb = n;
      var si = 0u;
      var rot = false;
      ${pairing}
      let rb = base + tau * u.W;
      let gi = (r * u.G + g) * u.N;
      let hi = (h * rank + r) * u.N;
      let invB = invS[(tau * rank + r) * 2u];
      let invC = invS[(tau * rank + r) * 2u + 1u];
      let kA = zx[rb + u.bOff + gi + pa] * invB * bNorm[pa] + bBias[hi + pa];
      let qA = zx[rb + u.cOff + gi + pa] * invC * cNorm[pa] + cBias[hi + pa];
      var kv = kA;
      var qv = qA;
      if (rot) {
        let kB = zx[rb + u.bOff + gi + pb] * invB * bNorm[pb] + bBias[hi + pb];
        let qB = zx[rb + u.cOff + gi + pb] * invC * cNorm[pb] + cBias[hi + pb];
        let th = thS[tau * SMAX + si];
        let sc = sincos_(th);
        let cs = sc.y;
        let sn = sc.x;
        if (n == pa) {
          kv = kA * cs - kB * sn;
          qv = qA * cs - qB * sn;
        } else {
          kv = kA * sn + kB * cs;
          qv = qA * sn + qB * cs;
        }
      }
      kS[(tau * rank + r) * NMAX + n] = kv;
      qS[(tau * rank + r) * NMAX + n] = qv;
    }
    workgroupBarrier();
    if (live) {
      for (var tau = 0u; tau < ntc; tau++) {
        let al = gateS[tau * 4u];
        let be = gateS[tau * 4u + 1u];
        let ga = gateS[tau * 4u + 2u];
        let xv = zx[base + tau * u.W + u.xOff + h * u.P + p];
        var v: array<f32, rank>;
        var acc: array<f32, rank>;
        for (var r = 0u; r < rank; r++) {
          v[r] = xv${mx('p')};
          acc[r] = 0.0;
        }
        for (var i = 0u; i < NE; i++) {
          let n = lane + i * LANES;
          if (n < u.N) {
            var upd = 0.0;
            for (var r = 0u; r < rank; r++) {
              var kp = kPrevS[r * NMAX + n];
              if (tau > 0u) { kp = kS[((tau - 1u) * rank + r) * NMAX + n]; }
              upd += be * vPrev[r] * kp + ga * v[r] * kS[(tau * rank + r) * NMAX + n];
            }
            s[i] = al * s[i] + upd;
            for (var r = 0u; r < rank; r++) { acc[r] += s[i] * qS[(tau * rank + r) * NMAX + n]; }
          }
        }
        for (var r = 0u; r < rank; r++) { redS[((tau * rank + r) * ROWS + row) * LANES + lane] = acc[r]; }
        vPrev = v;
      }
    }
    workgroupBarrier();
    for (var j = li; j < ntc * ROWS; j += ${THREADS}u) {
      let tau = j / ROWS;
      let rr = j % ROWS;
      let pp = tile * ROWS + rr;
      if (pp < u.P) {
        let t = u.t0 + c0 + tau;
        let rb = base + tau * u.W;
        let xv = zx[rb + u.xOff + h * u.P + pp];
        ${perRank ? '' : 'let zv = zx[rb + h * u.P + pp];\n        var out = 0.0;'}
        for (var r = 0u; r < rank; r++) {
          var yr = dSkip * xv${mx('pp')};
          for (var l = 0u; l < LANES; l++) { yr += redS[((tau * rank + r) * ROWS + rr) * LANES + l]; }
${outBody}
        }
        ${perRank ? '' : 'y[(b * u.L + t) * u.I + h * u.P + pp] = out;'}
      }
    }
    for (var j = li; j < rank * u.N; j += ${THREADS}u) {
      let r = j / u.N;
      kPrevS[r * NMAX + j % u.N] = kS[((ntc - 1u) * rank + r) * NMAX + j % u.N];
    }
    workgroupBarrier();
  }
  if (live) {
    for (var i = 0u; i < NE; i++) {
      let n = lane + i * LANES;
      if (n < u.N) { state[sb + p * u.N + n] = s[i]; }
    }
    if (lane == 0u) {
      for (var r = 0u; r < rank; r++) { state[sb + u.P * u.N + r * u.P + p] = vPrev[r]; }
    }
  }
  for (var j = li; j < rank * u.N; j += ${THREADS}u) { state[tb + j] = kPrevS[(j / u.N) * NMAX + j % u.N]; }
  if (li < u.angles) { state[tb + rank * u.N + li] = theta; }
}`;
}

/** The GPU parameters of a Mamba-3 layer the scan reads (mamba_ssm's names in the comments). */
export interface Mamba3Params {
  /** (H) dt_bias */
  dtBias: TensorLike;
  /** (H, rank, N) B_bias, C_bias */
  bBias: TensorLike;
  cBias: TensorLike;
  /** (N) B_norm.weight, C_norm.weight */
  bNorm: TensorLike;
  cNorm: TensorLike;
  /** (H) D */
  D: TensorLike;
  /** (H, rank, P) mimo_x, mimo_z, mimo_o: MIMO only */
  mimoX?: TensorLike;
  mimoZ?: TensorLike;
  mimoO?: TensorLike;
  aFloor: number;
}

function checkF32(op: string, name: string, t: TensorLike, shape: Record<string, number>): void {
  const want = Object.values(shape);
  if (t.shape.length !== want.length || t.shape.some((v, i) => v !== want[i])) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${name} has shape [${t.shape.join(',')}], expected [${Object.entries(shape).map(([k, v]) => `${k}=${v}`).join(', ')}]`);
  }
  if (t.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${name} must be f32, got ${t.dtype}`);
}

/**
 * Runs the scan over zxbcdt (B, L, W) from `state` (B, H, {@link mamba3StateStride}), updating the state in place;
 * L = 1 is the fused decode step. Longer inputs run in dispatches of at most `tokensPerDispatch` tokens.
 *
 * @returns y: (B, L, rank, I) when `perRank`, else (B, L, I).
 * @throws StatespaceError `SHAPE_MISMATCH` / `DTYPE_MISMATCH` naming the input, `UNSUPPORTED_CONFIG` as
 *   {@link createMamba3ScanKernel}.
 * @example
 * ```ts
 * const state = rt.zeros([1, d.H, mamba3StateStride(d)]);
 * const y = mamba3Scan(rt, zxbcdt, params, d, state, { mimo: false, perRank: false }); // (1, L, I)
 * ```
 */
export function mamba3Scan(
  runtime: Runtime,
  zxbcdt: TensorLike,
  params: Mamba3Params,
  d: Mamba3Dims,
  state: TensorLike,
  attrs: Mamba3ScanAttrs & { tokensPerDispatch?: number; out?: Tensor },
): Tensor {
  const op = 'mamba3Scan';
  if (zxbcdt.shape.length !== 3 || zxbcdt.shape[2] !== d.W) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: zxbcdt has shape [${zxbcdt.shape.join(',')}], expected [batch, seqlen, W=${d.W}]`);
  }
  if (zxbcdt.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: zxbcdt must be f32, got ${zxbcdt.dtype}`);
  const [B, L] = zxbcdt.shape;
  const { H, rank, N, P } = d;
  checkF32(op, 'dtBias', params.dtBias, { H });
  checkF32(op, 'bBias', params.bBias, { H, rank, N });
  checkF32(op, 'cBias', params.cBias, { H, rank, N });
  checkF32(op, 'bNorm', params.bNorm, { N });
  checkF32(op, 'cNorm', params.cNorm, { N });
  checkF32(op, 'D', params.D, { H });
  const mimoWeights: TensorLike[] = [];
  if (attrs.mimo) {
    const names = attrs.perRank ? (['mimoX'] as const) : (['mimoX', 'mimoZ', 'mimoO'] as const);
    for (const name of names) {
      const t = params[name];
      if (!t) throw new StatespaceError('MISSING_WEIGHT', `${op}: MIMO needs ${name} (H=${H}, rank=${rank}, P=${P})`);
      checkF32(op, name, t, { H, rank, P });
      mimoWeights.push(t);
    }
  }
  checkF32(op, 'state', state, { batch: B, H, stride: mamba3StateStride(d) });
  const perDispatch = attrs.tokensPerDispatch ?? L;
  assertArg(Number.isInteger(perDispatch) && perDispatch >= 1, op, `tokensPerDispatch must be a positive integer, got ${perDispatch}`);
  const yShape = attrs.perRank ? [B, L, rank, d.I] : [B, L, d.I];
  const y = attrs.out ?? runtime.empty(yShape, 'f32', 'mamba3.scan.y');
  if (y.shape.length !== yShape.length || y.shape.some((v, i) => v !== yShape[i])) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: out has shape [${y.shape.join(',')}], expected [${yShape.join(',')}]`);
  }
  const inputs = [zxbcdt, params.dtBias, params.bBias, params.cBias, params.bNorm, params.cNorm, params.D, ...mimoWeights, state, y];
  for (let t0 = 0; t0 < L; t0 += perDispatch) {
    runtime.run(createMamba3ScanKernel(d, { B, L, t0, nt: Math.min(perDispatch, L - t0) }, { aFloor: params.aFloor }, attrs), inputs);
  }
  return y;
}
