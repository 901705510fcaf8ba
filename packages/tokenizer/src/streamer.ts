/**
 * Streaming detokenization: ids arrive one at a time (or a few at a time) during generation and
 * text leaves as soon as it is final.
 *
 * The method is tokenizers' `DecodeStream` (text-generation-inference's incremental decoding):
 * keep a small window of ids, decode it, and emit what it adds beyond the decode of its first
 * part (the "prefix"). Decoding a window rather than a single id keeps what one id cannot know
 * alone: the space that a SentencePiece `▁` stands for, which the decoder strips at the start of
 * a text, and UTF-8 characters split across tokens. Text is held back while it can still change:
 * - when it ends in U+FFFD (a multi-byte character still incomplete, e.g. byte-level BPE);
 * - while the last token (skipped special tokens aside) is a ByteFallback byte token "<0xAB>":
 *   the ByteFallback decoder decodes a whole run of byte tokens at once, as its UTF-8 text or, if
 *   the run is not valid UTF-8, as one U+FFFD per byte, so one more byte can turn characters that
 *   were already complete into U+FFFDs ("<0x70>" is "p", "<0x70><0xB7>" is "��"). The run is
 *   emitted once a token that is not a byte ends it (or at `end()`).
 * The window only ever starts right after emitted text, so it never starts inside a byte run.
 * Concatenating every emitted chunk gives `tokenizer.decode(allIds)` (tested on every reference
 * fixture). Emitted text is never retracted: if a later decode contradicts it, the stream throws
 * `STREAM_DIVERGED`.
 */
import { byteFallbackByte } from './decoder.js';
import { TokenizerError } from './errors.js';
import type { Tokenizer } from './tokenizer.js';

/** Options of {@link TextStreamer}. */
export interface TextStreamerOptions {
  /** Leave out special tokens, as `decode(ids, { skipSpecialTokens: true })`. Default false. */
  skipSpecialTokens?: boolean;
  /** Ignore the first `put()` of each stream (the prompt), as transformers' `skip_prompt`. Default false. */
  skipPrompt?: boolean;
  /** Called with each chunk of final text, and once with `done = true` by `end()` (transformers' `on_finalized_text`). */
  onText?: (text: string, done: boolean) => void;
}

const REPLACEMENT = '\ufffd';

/**
 * Text held back for more than this many ids (a U+FFFD that never completes, ids that decode to
 * nothing) is emitted as it stands: a UTF-8 character needs at most 4 bytes, so no real stream
 * waits this long, and without the bound every id of a hostile stream would decode the whole
 * growing window (quadratic work).
 */
const MAX_PENDING_IDS = 64;

/**
 * Turns a stream of token ids into a stream of text chunks, like transformers' `TextStreamer`
 * but emitting as soon as the text is final rather than word by word.
 *
 * @example
 * ```ts
 * const streamer = new TextStreamer(tokenizer, { skipSpecialTokens: true, onText: (t) => process.stdout.write(t) });
 * for (const id of generatedIds) streamer.put(id);
 * streamer.end();
 * ```
 */
export class TextStreamer {
  private readonly tokenizer: Tokenizer;
  private readonly skipSpecialTokens: boolean;
  private readonly skipPrompt: boolean;
  private readonly onText?: (text: string, done: boolean) => void;
  /** Every id of the current stream. */
  private allIds: number[] = [];
  /** The window is `allIds[windowStart..]`; it starts right after text that was emitted. */
  private windowStart = 0;
  /** The text of `allIds[0..emittedEnd]` has been emitted in full. */
  private emittedEnd = 0;
  /** decode(allIds[windowStart..emittedEnd]): what the window's decode starts with. */
  private prefix = '';
  /** The last id that is not skipped is a ByteFallback byte token: its run may still change. */
  private inByteRun = false;
  private emitted = '';
  private promptPending: boolean;
  /** Ids that are neither skipped nor in a byte run, put since text was last emitted. */
  private pending = 0;

  constructor(tokenizer: Tokenizer, options: TextStreamerOptions = {}) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = options.skipSpecialTokens ?? false;
    this.skipPrompt = options.skipPrompt ?? false;
    this.onText = options.onText;
    this.promptPending = this.skipPrompt;
  }

  /** All text emitted since the stream started. */
  get text(): string {
    return this.emitted;
  }

  /**
   * Adds one id or several; returns the text that became final ('' when none did yet).
   *
   * @throws TokenizerError `TOKEN_ID_OUT_OF_RANGE` for an id outside the vocabulary.
   */
  put(ids: number | ArrayLike<number>): string {
    const batch: ArrayLike<number> = typeof ids === 'number' ? [ids] : ids;
    if (batch === null || typeof batch !== 'object' || !Number.isSafeInteger(batch.length) || batch.length < 0) {
      throw new TokenizerError('INVALID_ARGUMENT', `TextStreamer.put: expected a token id or an array of ids, got ${ids === null ? 'null' : typeof ids}`);
    }
    // Validates every id before any state changes (stops at the first bad one).
    const tokens: string[][] = [];
    for (let i = 0; i < batch.length; i++) tokens.push(this.tokenizer.idsToTokens([batch[i]], 'TextStreamer.put', this.skipSpecialTokens));
    if (this.promptPending) {
      this.promptPending = false;
      return '';
    }
    let out = '';
    for (let i = 0; i < batch.length; i++) out += this.step(batch[i], tokens[i]);
    if (out.length > 0) this.onText?.(out, false);
    return out;
  }

  /** Flushes what is left (including a trailing U+FFFD that will never complete), resets the stream and returns the flushed text. */
  end(): string {
    let out = '';
    if (this.allIds.length > this.emittedEnd) {
      const text = this.decode(this.allIds.slice(this.windowStart));
      if (text.startsWith(this.prefix)) {
        out = text.slice(this.prefix.length);
        this.emitted += out;
      } else out = this.recover(true);
    }
    this.allIds = [];
    this.windowStart = 0;
    this.emittedEnd = 0;
    this.prefix = '';
    this.inByteRun = false;
    this.pending = 0;
    this.promptPending = this.skipPrompt;
    this.onText?.(out, true);
    return out;
  }

  private decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skipSpecialTokens: this.skipSpecialTokens });
  }

  /** One step of tokenizers' `step_decode_stream`, holding open byte-fallback runs. `tokens`: the id's token, or none if skipped. */
  private step(id: number, tokens: string[]): string {
    this.allIds.push(id);
    // A skipped id adds no text: the window's decode is what it was, so there is nothing to do.
    if (tokens.length === 0) return '';
    this.inByteRun = this.tokenizer.decodesByteFallback && byteFallbackByte(tokens[0]) !== null;
    if (this.inByteRun) return '';
    this.pending++;
    const force = this.pending > MAX_PENDING_IDS;
    const text = this.decode(this.allIds.slice(this.windowStart));
    if (!force && (text.length <= this.prefix.length || text.endsWith(REPLACEMENT))) return '';
    if (!text.startsWith(this.prefix)) return this.recover(force);
    const chunk = text.slice(this.prefix.length);
    this.pending = 0;
    // Slide the window: it now starts with the ids of the chunk just emitted (their context).
    this.windowStart = this.emittedEnd;
    this.emittedEnd = this.allIds.length;
    this.prefix = this.decode(this.allIds.slice(this.windowStart));
    this.emitted += chunk;
    return chunk;
  }

  /**
   * The window's decode disagrees with its prefix (a decoder that is not local): fall back to
   * decoding everything, emit what it adds to the text already emitted, and restart the window
   * at the last id that is not skipped (never inside a byte run: none is open here).
   */
  private recover(final: boolean): string {
    const full = this.decode(this.allIds);
    if (!full.startsWith(this.emitted)) {
      throw new TokenizerError(
        'STREAM_DIVERGED',
        `TextStreamer: decoding the ids so far gives ${JSON.stringify(full.slice(-40))}, which does not continue the text already emitted`,
      );
    }
    if (!final && full.endsWith(REPLACEMENT)) return '';
    const chunk = full.slice(this.emitted.length);
    this.emitted += chunk;
    this.pending = 0;
    let start = this.allIds.length - 1;
    while (start > 0 && this.tokenizer.idsToTokens([this.allIds[start]], 'TextStreamer', this.skipSpecialTokens).length === 0) start--;
    this.windowStart = start;
    this.emittedEnd = this.allIds.length;
    this.prefix = this.decode(this.allIds.slice(start));
    return chunk;
  }
}

/**
 * A {@link TextStreamer} that is also an async iterable of its chunks (transformers'
 * `TextIteratorStreamer`): the generation loop calls `put` / `end`, a consumer iterates.
 *
 * @example
 * ```ts
 * const streamer = new TextIteratorStreamer(tokenizer, { skipSpecialTokens: true });
 * const printing = (async () => { for await (const chunk of streamer) process.stdout.write(chunk); })();
 * for (const id of generatedIds) streamer.put(id);
 * streamer.end();
 * await printing;
 * ```
 */
export class TextIteratorStreamer extends TextStreamer implements AsyncIterable<string> {
  private readonly queue: Array<string | null> = [];
  private waiting: ((value: IteratorResult<string>) => void) | null = null;

  constructor(tokenizer: Tokenizer, options: Omit<TextStreamerOptions, 'onText'> = {}) {
    super(tokenizer, {
      ...options,
      onText: (text, done) => {
        if (text.length > 0) this.push(text);
        if (done) this.push(null);
      },
    });
  }

  private push(item: string | null): void {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve(item === null ? { value: undefined, done: true } : { value: item, done: false });
    } else this.queue.push(item);
  }

  /** Text chunks as they become final; ends after {@link TextStreamer.end}. */
  [Symbol.asyncIterator](): AsyncIterator<string> {
    return {
      next: () => {
        if (this.queue.length > 0) {
          const item = this.queue.shift() as string | null;
          return Promise.resolve(item === null ? { value: undefined, done: true } : { value: item, done: false });
        }
        return new Promise((resolve) => (this.waiting = resolve));
      },
    };
  }
}
