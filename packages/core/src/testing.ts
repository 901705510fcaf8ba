/**
 * Helpers for kernel tests in every statespace package: a shared runtime that
 * poisons new buffers with NaN, seeded random data, and error measures.
 * Imported as `@statespace/core/testing`.
 */
import { seededRandom } from './random.js';
import { Runtime } from './runtime.js';

let shared: Promise<Runtime> | undefined;

/**
 * One runtime per test process, with buffer poisoning on. Fails (never skips)
 * when no adapter can be found, so CI cannot pass without running the GPU tests.
 *
 * @example
 * ```ts
 * import { getTestRuntime } from '@statespace/core/testing';
 * const rt = await getTestRuntime(); // every new buffer starts as NaN
 * ```
 */
export function getTestRuntime(): Promise<Runtime> {
  shared ??= Runtime.create({ poison: true });
  return shared;
}

/**
 * A small deterministic PRNG (mulberry32).
 *
 * @example
 * ```ts
 * const random = rng(1);
 * random(); // 0.627..., the same for the same seed
 * ```
 */
export function rng(seed: number): () => number {
  return seededRandom(seed);
}

/**
 * `n` normally distributed values (Box-Muller) times `scale`.
 *
 * @example
 * ```ts
 * const x = randn(37 * 19, 1);      // seed 1, std 1
 * const w = randn(19 * 19, 2, 0.1); // seed 2, std 0.1
 * ```
 */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * scale;
  }
  return out;
}

/**
 * `n` uniform values in [lo, hi).
 *
 * @example
 * ```ts
 * const dt = randu(64, 3, 0.001, 0.1);
 * ```
 */
export function randu(n: number, seed: number, lo = 0, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/**
 * The largest |y − ref| of each of M rows of N relative to that row's largest |ref| (the row's
 * scale), worst over the rows; NaN anywhere (or a length that is not M·N) gives Infinity, so a
 * poisoned element fails. With `absoluteAbove`, a row's scale is capped there: rows whose values
 * reach it are measured absolutely (e.g. 1 for per-token layer outputs of very different sizes).
 *
 * @example
 * ```ts
 * expect(worstRowError(await rt.readFloat(y), matmulReference(x, w, M, N, K), M, N)).toBeLessThan(1e-5);
 * expect(worstRowError(out, torchOut, out.length / H, H, { absoluteAbove: 1 })).toBeLessThan(1e-4);
 * ```
 */
export function worstRowError(y: ArrayLike<number>, ref: ArrayLike<number>, M: number, N: number, options: { absoluteAbove?: number } = {}): number {
  if (y.length !== M * N || ref.length !== M * N) return Infinity;
  const cap = options.absoluteAbove ?? Infinity;
  let worst = 0;
  for (let m = 0; m < M; m++) {
    let scale = 1e-30;
    let err = 0;
    for (let n = 0; n < N; n++) {
      scale = Math.max(scale, Math.abs(ref[m * N + n]));
      const d = Math.abs(y[m * N + n] - ref[m * N + n]);
      err = Number.isNaN(d) ? Infinity : Math.max(err, d);
    }
    worst = Math.max(worst, err / Math.min(cap, scale));
  }
  return worst;
}

/**
 * ‖a − b‖ / ‖b‖ (NaN anywhere gives Infinity, so a poisoned element fails).
 *
 * @example
 * ```ts
 * expect(relError(await rt.read(y), myOpReference(x, 37, 19))).toBeLessThan(1e-5);
 * ```
 */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i] - expected[i];
    if (!Number.isFinite(actual[i]) && actual[i] !== expected[i]) return Infinity;
    num += d * d;
    den += expected[i] * expected[i];
  }
  if (den === 0) return Math.sqrt(num);
  return Math.sqrt(num / den);
}

/**
 * Largest |a − b| (Infinity if any value is NaN).
 *
 * @example
 * ```ts
 * maxAbsError([1, 2], [1, 2.5]); // 0.5
 * ```
 */
export function maxAbsError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let m = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (Number.isNaN(d)) return Infinity;
    m = Math.max(m, d);
  }
  return m;
}

/**
 * Runs `fn` and lists the kernels it dispatched through `runtime.run`, as `name/buffers` (the kernel's
 * name and how many tensors it bound), for tests that check which path a layer took.
 *
 * @example
 * ```ts
 * const { result: y, kernels } = recordKernels(rt, () => mlp.forward(x));
 * expect(kernels[0]).toBe('matmul_tiled_rb/4');
 * ```
 */
export function recordKernels<T>(runtime: Runtime, fn: () => T): { result: T; kernels: string[] } {
  const kernels: string[] = [];
  const run = runtime.run;
  runtime.run = (kernel, tensors) => {
    kernels.push(`${kernel.name}/${tensors.length}`);
    run.call(runtime, kernel, tensors);
  };
  try {
    return { result: fn(), kernels };
  } finally {
    runtime.run = run;
  }
}

/**
 * Runs `fn` with the runtime's `info` as a GPU adapter's (`isSoftware` false), so that a software adapter
 * takes the paths GPUs take (the tiled matmul in prompts, with the default profile's tiles), then restores it.
 *
 * @example
 * ```ts
 * const y = await asGpuAdapter(rt, () => mlp.forward(x)); // the fused gate/up product on SwiftShader too
 * ```
 */
export async function asGpuAdapter<T>(runtime: Runtime, fn: () => T | Promise<T>): Promise<T> {
  const info = runtime.info;
  (runtime as { info: typeof info }).info = { ...info, isSoftware: false };
  try {
    return await fn();
  } finally {
    (runtime as { info: typeof info }).info = info;
  }
}
