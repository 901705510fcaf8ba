/**
 * The package's typed error.
 *
 * `@statespace/tokenizer` does not depend on `@statespace/core`, so it carries its own small
 * error class; it sets the same `Symbol.for('statespace.error')` marker as core's
 * `StatespaceError`, so `StatespaceError.is(error)` recognises it too.
 */
const marker = Symbol.for('statespace.error');

/** Stable codes of {@link TokenizerError}. */
export type TokenizerErrorCode =
  /** tokenizer.json / tokenizer_config.json is not valid JSON or lacks a required field. */
  | 'TOKENIZER_INVALID'
  /** tokenizer.json uses a component or option this package does not implement. */
  | 'TOKENIZER_UNSUPPORTED'
  /** A file or URL could not be read. */
  | 'TOKENIZER_LOAD_FAILED'
  /** decode() got an id that is not in the vocabulary. */
  | 'TOKEN_ID_OUT_OF_RANGE'
  /** A public method got an argument of the wrong type or value. */
  | 'INVALID_ARGUMENT'
  /** applyChatTemplate() found no chat template. */
  | 'CHAT_TEMPLATE_MISSING'
  /** The chat template does not parse, or failed while rendering. */
  | 'CHAT_TEMPLATE_INVALID'
  /** The chat template called `raise_exception(message)`. */
  | 'CHAT_TEMPLATE_EXCEPTION'
  /** A streamer saw text that contradicts what it already emitted (it never retracts text). */
  | 'STREAM_DIVERGED';

/**
 * Error thrown on purpose by `@statespace/tokenizer`, with a stable {@link TokenizerErrorCode}.
 *
 * @example
 * ```ts
 * try { tokenizer.decode([999_999_999]); } catch (e) {
 *   if (TokenizerError.is(e) && e.code === 'TOKEN_ID_OUT_OF_RANGE') console.error(e.message);
 * }
 * ```
 */
export class TokenizerError extends Error {
  private readonly [marker] = true;
  /** A stable, machine-readable code such as `TOKEN_ID_OUT_OF_RANGE`. */
  readonly code: TokenizerErrorCode;

  constructor(code: TokenizerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenizerError';
    this.code = code;
  }

  /** True for any statespace error (this class or core's `StatespaceError`), even from another copy of the package. */
  static is(error: unknown): error is TokenizerError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}
