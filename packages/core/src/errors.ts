/**
 * Typed errors shared by every statespace package.
 *
 * Errors carry a stable `code` and are recognised across duplicated package
 * copies through a `Symbol.for` marker rather than `instanceof`
 * (the pattern vercel/ai uses in `ai-sdk-error.ts`).
 */
const marker = Symbol.for('statespace.error');

/** Stable error codes raised by @statespace/core. Other packages add their own strings. */
export type CoreErrorCode =
  | 'NO_WEBGPU'
  | 'NO_ADAPTER'
  | 'DEVICE_LOST'
  | 'SHAPE_MISMATCH'
  | 'DTYPE_MISMATCH'
  | 'INVALID_ARGUMENT'
  | 'BUFFER_TOO_LARGE'
  | 'SHADER_COMPILE'
  | 'DESTROYED';

/**
 * Base class of every error statespace throws on purpose.
 *
 * @example
 * ```ts
 * try { await requestDevice(); } catch (e) {
 *   if (StatespaceError.is(e) && e.code === 'NO_ADAPTER') console.error(e.message);
 * }
 * ```
 */
export class StatespaceError extends Error {
  private readonly [marker] = true;
  /** A stable, machine-readable code such as `NO_ADAPTER` or `SAFETENSORS_TRUNCATED`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StatespaceError';
    this.code = code;
  }

  /** True for any statespace error, even one thrown by another copy of the package. */
  static is(error: unknown): error is StatespaceError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

/**
 * Throws a `SHAPE_MISMATCH` error naming the input and the expected shape unless `actual` equals `expected`.
 *
 * @example
 * ```ts
 * assertShape('myOp', 'x', x.shape, { batch: 2, d: 4 });
 * // x of shape [2, 3] throws: "myOp: x has shape [2,3], expected [batch=2, d=4]"
 * ```
 */
export function assertShape(op: string, input: string, actual: readonly number[], expected: Record<string, number>): void {
  const want = Object.values(expected);
  if (actual.length === want.length && actual.every((d, i) => d === want[i])) return;
  const described = Object.entries(expected)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${input} has shape [${actual.join(',')}], expected [${described}]`);
}

/**
 * Throws `INVALID_ARGUMENT` with the given message unless `condition` holds.
 *
 * @example
 * ```ts
 * assertArg(k <= D, 'topK', `k must be at most ${D}, got ${k}`); // "topK: k must be at most ..."
 * ```
 */
export function assertArg(condition: unknown, op: string, message: string): asserts condition {
  if (!condition) throw new StatespaceError('INVALID_ARGUMENT', `${op}: ${message}`);
}
