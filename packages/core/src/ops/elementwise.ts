/**
 * Elementwise ops: unary activations and binary arithmetic with row broadcast.
 *
 * Shape glossary:
 *   n  elements of the output     m  elements of b (b is repeated every m elements; m divides n)
 */
import { StatespaceError } from '../errors.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';

/** Unary ops. `gelu` is the exact erf form; `gelu_tanh` the tanh approximation; `relu2` is relu(x)². */
export type UnaryOp = 'silu' | 'gelu' | 'gelu_tanh' | 'softplus' | 'relu' | 'relu2' | 'exp' | 'neg' | 'sigmoid' | 'scale';
/** Binary ops; `silu_mul` is silu(a)·b (SwiGLU). */
export type BinaryOp = 'add' | 'mul' | 'sub' | 'silu_mul';

const THREADS = 256;
const unaryLayout = { n: 'u32', alpha: 'f32' } as const satisfies UniformLayout;
const binaryLayout = { n: 'u32', m: 'u32' } as const satisfies UniformLayout;

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), WGSL has no erf builtin.
const WGSL_ACTIVATIONS = `
fn erf_(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
  return select(-y, y, x >= 0.0);
}
fn silu_(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
fn softplus_(x: f32) -> f32 { return select(log(1.0 + exp(x)), x, x > 20.0); }
fn gelu_(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_(x * 0.7071067811865476)); }
fn gelu_tanh_(x: f32) -> f32 { return 0.5 * x * (1.0 + tanh(clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0))); }
fn sigmoid_(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
`;

/**
 * WGSL of the activation helpers (`silu_`, `softplus_`, `gelu_`, `gelu_tanh_`, `sigmoid_`, `erf_`), for fused kernels elsewhere.
 *
 * @example
 * ```ts
 * const wgsl = `${wgslActivations()}\n... y[i] = silu_(x[i]) * z[i]; ...`;
 * ```
 */
export function wgslActivations(): string {
  return WGSL_ACTIVATIONS;
}

const unaryExpr: Record<UnaryOp, string> = {
  silu: 'silu_(v)',
  gelu: 'gelu_(v)',
  gelu_tanh: 'gelu_tanh_(v)',
  softplus: 'softplus_(v)',
  relu: 'max(v, 0.0)',
  relu2: 'max(v, 0.0) * max(v, 0.0)',
  exp: 'exp(v)',
  neg: '-v',
  sigmoid: 'sigmoid_(v)',
  scale: 'v * u.alpha',
};

const binaryExpr: Record<BinaryOp, string> = {
  add: 'av + bv',
  mul: 'av * bv',
  sub: 'av - bv',
  silu_mul: 'silu_(av) * bv',
};

/**
 * Builds a unary elementwise kernel over n elements.
 *
 * @example
 * ```ts
 * const kernel = createUnaryKernel(1000, 'silu'); // pure: no GPU needed
 * rt.run(kernel, [x, y]);
 * ```
 */
export function createUnaryKernel(n: number, op: UnaryOp): KernelDescriptor {
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (n)
    { name: 'y', type: 'f32', access: 'read_write' }, // (n)
  ] as const;
  const wgsl = memoWgsl(`unary_${op}`, op, () => `${wgslBindings(unaryLayout, bindings)}
${WGSL_ACTIVATIONS}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.n) { return; }
  let v = x[i];
  y[i] = ${unaryExpr[op]};
}`);
  return { name: `unary_${op}`, cacheKey: op, wgsl, workgroupSize: [THREADS, 1, 1], dispatch: linearDispatch(n / THREADS), bindings, uniformLayout: unaryLayout, uniforms: { n, alpha: 1 } };
}

/**
 * Builds a binary elementwise kernel: y[i] = a[i] op b[i % m].
 *
 * @example
 * ```ts
 * const kernel = createBinaryKernel(6 * 64, 64, 'add'); // a (6, 64) + b (64) broadcast over rows
 * ```
 */
export function createBinaryKernel(n: number, m: number, op: BinaryOp): KernelDescriptor {
  const bindings = [
    { name: 'a', type: 'f32', access: 'read' }, // (n)
    { name: 'b', type: 'f32', access: 'read' }, // (m)
    { name: 'y', type: 'f32', access: 'read_write' }, // (n)
  ] as const;
  const wgsl = memoWgsl(`binary_${op}`, op, () => `${wgslBindings(binaryLayout, bindings)}
${WGSL_ACTIVATIONS}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.n) { return; }
  let av = a[i];
  let bv = b[i % u.m];
  y[i] = ${binaryExpr[op]};
}`);
  return { name: `binary_${op}`, cacheKey: op, wgsl, workgroupSize: [THREADS, 1, 1], dispatch: linearDispatch(n / THREADS), bindings, uniformLayout: binaryLayout, uniforms: { n, m } };
}

/**
 * Applies a unary op elementwise (`alpha` is the factor of `scale`).
 * @example
 * ```ts
 * const h = unary(rt, x, 'silu');
 * ```
 */
export function unary(runtime: Runtime, x: TensorLike, op: UnaryOp, options: { alpha?: number; out?: TensorLike } = {}): Tensor {
  const y = options.out ?? runtime.empty(x.shape, 'f32', `${op}.y`);
  if (y.size !== x.size) throw new StatespaceError('SHAPE_MISMATCH', `${op}: out has ${y.size} elements, expected ${x.size}`);
  const k = createUnaryKernel(x.size, op);
  runtime.run({ ...k, uniforms: { n: x.size, alpha: options.alpha ?? 1 } }, [x, y]);
  return (options.out as Tensor) ?? y;
}

/**
 * y = a op b, with b repeated along a when b has fewer elements (b.size must divide a.size).
 * @example
 * ```ts
 * const h = binary(rt, x, residual, 'add');
 * ```
 */
export function binary(runtime: Runtime, a: TensorLike, b: TensorLike, op: BinaryOp, options: { out?: TensorLike } = {}): Tensor {
  if (b.size === 0 || a.size % b.size !== 0) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: b has shape [${b.shape.join(',')}], which does not broadcast over a [${a.shape.join(',')}]`);
  }
  const y = options.out ?? runtime.empty(a.shape, 'f32', `${op}.y`);
  if (y.size !== a.size) throw new StatespaceError('SHAPE_MISMATCH', `${op}: out has ${y.size} elements, expected ${a.size}`);
  runtime.run(createBinaryKernel(a.size, b.size, op), [a, b, y]);
  return (options.out as Tensor) ?? y;
}

/**
 * CPU references of the unary ops.
 *
 * @example
 * ```ts
 * unaryReference('silu', 1); // 0.7310585786300049
 * unaryReference('scale', 3, 0.5); // 1.5
 * ```
 */
export function unaryReference(op: UnaryOp, v: number, alpha = 1): number {
  switch (op) {
    case 'silu':
      return v / (1 + Math.exp(-v));
    case 'gelu':
      return 0.5 * v * (1 + erfReference(v / Math.SQRT2));
    case 'gelu_tanh':
      return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    case 'softplus':
      return v > 20 ? v : Math.log1p(Math.exp(v));
    case 'relu':
      return Math.max(v, 0);
    case 'relu2':
      return Math.max(v, 0) ** 2;
    case 'exp':
      return Math.exp(v);
    case 'neg':
      return -v;
    case 'sigmoid':
      return 1 / (1 + Math.exp(-v));
    case 'scale':
      return v * alpha;
  }
}

/**
 * CPU references of the binary ops.
 *
 * @example
 * ```ts
 * binaryReference('silu_mul', 1, 2); // 1.4621171572600098
 * ```
 */
export function binaryReference(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add':
      return a + b;
    case 'mul':
      return a * b;
    case 'sub':
      return a - b;
    case 'silu_mul':
      return (a / (1 + Math.exp(-a))) * b;
  }
}

/**
 * erf to double precision (W. J. Cody's rational approximations are overkill here; a 1e-12 series/continued fraction is enough for tests).
 *
 * @example
 * ```ts
 * erfReference(0.5); // 0.5204998778130465
 * ```
 */
export function erfReference(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax < 3) {
    // Maclaurin series
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 80; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // continued fraction for erfc
    let f = 0;
    for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  }
  return x < 0 ? -r : r;
}
