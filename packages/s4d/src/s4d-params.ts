/**
 * The parameters of a diagonal SSM layer (S4D, Gu, Gupta, Goel & Ré 2022, "On the Parameterization and
 * Initialization of Diagonal State Space Models"), their checks, and the WGSL that turns them into the
 * zero-order-hold discretization every S4D kernel uses.
 *
 * Shape glossary (packages/core/README.md): B batch, L seqlen, H channels (d_model), N d_state; an S4D layer
 * holds N/2 complex modes (each conjugate pair folded into 2·Re), written `modes` below, each stored as (re, im).
 * channels 1, or 2 when bidirectional (the second C reads the sequence backwards).
 *
 *   dt = exp(log_dt)                         (H)
 *   A  = −exp(log_A_real) + i·A_imag         (H, modes)
 *   dA = exp(dt·A),  dB = (exp(dt·A) − 1)/A  ZOH; B is folded into C as in state-spaces/s4 `models/s4/s4d.py`
 */
import { StatespaceError, type TensorLike } from '@statespace/core';

/** The GPU tensors of one S4D layer's SSM, named as in state-spaces/s4's `S4DKernel`. */
export interface S4DParams {
  /** (H): log of the step size (`kernel.log_dt`). */
  logDt: TensorLike;
  /** (H, modes): log of −Re(A) (`kernel.log_A_real`). */
  logAReal: TensorLike;
  /** (H, modes): Im(A) (`kernel.A_imag`). */
  AImag: TensorLike;
  /** (H, modes, 2) or, bidirectional, (2, H, modes, 2): C as (re, im) pairs (`kernel.C`). */
  C: TensorLike;
}

/** Sizes read from an {@link S4DParams}. */
export interface S4DSizes {
  /** Channels H. */
  H: number;
  /** Complex modes (d_state / 2). */
  modes: number;
  /** 1, or 2 when C has a second (backward) direction. */
  channels: 1 | 2;
}

/**
 * Checks an {@link S4DParams}' shapes against each other and returns its sizes.
 *
 * @throws StatespaceError `SHAPE_MISMATCH` naming the tensor and the expected shape, `DTYPE_MISMATCH` for non-f32 tensors.
 * @example
 * ```ts
 * const { H, modes, channels } = s4dSizes('s4dStep', params); // e.g. 24, 32, 1
 * ```
 */
export function s4dSizes(op: string, params: S4DParams): S4DSizes {
  const H = params.logDt.shape[0];
  const modes = params.AImag.shape[1];
  const expect = (name: string, t: TensorLike, shape: Record<string, number>) => {
    const want = Object.values(shape);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      const described = Object.entries(shape).map(([k, v]) => `${k}=${v}`).join(', ');
      throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${name} has shape [${t.shape.join(',')}], expected [${described}]`);
    }
    if (t.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${name} must be f32, got ${t.dtype}`);
  };
  expect('logDt', params.logDt, { H });
  if (params.AImag.shape.length !== 2) throw new StatespaceError('SHAPE_MISMATCH', `${op}: AImag has shape [${params.AImag.shape.join(',')}], expected [H=${H}, modes]`);
  expect('AImag', params.AImag, { H, modes });
  expect('logAReal', params.logAReal, { H, modes });
  const channels = params.C.shape.length === 4 ? 2 : 1;
  if (channels === 2) expect('C', params.C, { channels: 2, H, modes, complex: 2 });
  else expect('C', params.C, { H, modes, complex: 2 });
  return { H, modes, channels };
}

/**
 * WGSL helpers shared by the S4D kernels, written out rather than left to the builtins: WGSL only bounds sin/cos
 * to 2^-11 absolute error on [−π, π] (SwiftShader is about that loose), and ZOH's (exp(dt·A) − 1)/A divides that
 * error by dt·|A|, as small as 5e-4.
 * - `sincos_(x)`: (sin x, cos x), x reduced by π/2 in three parts (Cody–Waite; dt·Im(A)·l reaches the tens of
 *   thousands: S4D-Inv puts Im(A) near N²/π), then Taylor polynomials on [−π/4, π/4] (error below 1e-8).
 * - `cexp_(re, im)`: exp of a complex number; `cexpm1_(re, im)`: exp(z) − 1 without the cancellation near 0.
 * - `cmul_`, `cdiv_`: complex product and quotient of vec2 (re, im).
 * - `s4d_a_(h, n)`, `s4d_dta_(h, n)`: A and dt·A of channel h, mode n, from `logDt`, `logAReal`, `AImag`
 *   (bindings the kernel declares) and `u.modes`.
 */
export const WGSL_S4D_COMPLEX = `
fn sincos_(x: f32) -> vec2<f32> {
  let q = round(x * 0.6366197723675814);
  let r = ((x - q * 1.5703125) - q * 4.8382679233327508e-4) - q * 2.5632829192545614e-12;
  let r2 = r * r;
  let s = r * (1.0 + r2 * (-1.6666666666666666e-1 + r2 * (8.333333333333333e-3 + r2 * (-1.984126984126984e-4 + r2 * 2.7557319223985893e-6))));
  let c = 1.0 + r2 * (-0.5 + r2 * (4.1666666666666664e-2 + r2 * (-1.388888888888889e-3 + r2 * (2.48015873015873e-5 + r2 * -2.755731922398589e-7))));
  switch (i32(q) & 3) {
    case 0: { return vec2<f32>(s, c); }
    case 1: { return vec2<f32>(c, -s); }
    case 2: { return vec2<f32>(-s, -c); }
    default: { return vec2<f32>(-c, s); }
  }
}
fn expm1_(x: f32) -> f32 {
  if (abs(x) >= 0.35) { return exp(x) - 1.0; }
  return x * (1.0 + x * (0.5 + x * (1.6666666666666666e-1 + x * (4.1666666666666664e-2 + x * (8.333333333333333e-3 + x * (1.388888888888889e-3 + x * (1.984126984126984e-4 + x * 2.48015873015873e-5)))))));
}
fn cexp_(re: f32, im: f32) -> vec2<f32> {
  let sc = sincos_(im);
  return exp(re) * vec2<f32>(sc.y, sc.x);
}
fn cexpm1_(re: f32, im: f32) -> vec2<f32> {
  let sc = sincos_(im);
  let half = sincos_(0.5 * im).x;
  return vec2<f32>(expm1_(re) * sc.y - 2.0 * half * half, exp(re) * sc.x);
}
fn cmul_(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> { return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
fn cdiv_(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let d = b.x * b.x + b.y * b.y;
  return vec2<f32>(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y) / d;
}
fn s4d_a_(h: u32, n: u32) -> vec2<f32> { return vec2<f32>(-exp(logAReal[h * u.modes + n]), AImag[h * u.modes + n]); }
fn s4d_dta_(h: u32, n: u32) -> vec2<f32> { return s4d_a_(h, n) * exp(logDt[h]); }
`;

/** The bindings {@link WGSL_S4D_COMPLEX}'s `s4d_dta_` reads, in the order the S4D kernels declare them first. */
export const S4D_PARAM_BINDINGS = [
  { name: 'logDt', type: 'f32', access: 'read' }, // (H)
  { name: 'logAReal', type: 'f32', access: 'read' }, // (H, modes)
  { name: 'AImag', type: 'f32', access: 'read' }, // (H, modes)
] as const;
