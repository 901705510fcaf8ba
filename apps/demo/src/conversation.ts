/**
 * A conversation with a model, without the DOM: it owns the Session (the
 * state the model carries from turn to turn), decides how much of each new
 * turn must be fed (only what the state has not seen yet), streams tokens and
 * text, and measures prefill and decode speed.
 */
import { type GenerateOptions, type HybridModel, Session, type SessionMemory } from '@statespace/hybrid';
import type { ChatMessage } from '@statespace/tokenizer';
import { type TextCodec, startsWith } from './text.js';

/** Chat (with the tokenizer's chat template) or plain completion (continue the text). */
export type ConversationMode = 'chat' | 'completion';

/** Sampling settings of one turn. */
export interface TurnOptions {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  seed?: number;
  /** Do not stop at EOS. */
  ignoreEos?: boolean;
  signal?: AbortSignal;
}

/** What a turn reports while it runs. */
export type TurnEvent =
  | { type: 'prompt'; promptTokens: number; reusedTokens: number; reencoded: boolean }
  | { type: 'prefill'; tokens: number; ms: number; memory: SessionMemory; context: number }
  | { type: 'token'; id: number; text: string; index: number; memory: SessionMemory; context: number; decodeTokensPerSecond: number }
  | { type: 'done'; result: TurnResult };

/** Summary of a finished (or stopped) turn. */
export interface TurnResult {
  ids: number[];
  text: string;
  prefillTokens: number;
  prefillMs: number;
  /** Tokens per second over the prompt (NaN when nothing was fed). */
  prefillTokensPerSecond: number;
  decodeTokens: number;
  decodeMs: number;
  decodeTokensPerSecond: number;
  stopped: boolean;
}

const now = () => performance.now();

/**
 * One conversation with one model.
 *
 * @example
 * ```ts
 * const chat = new Conversation(model, text);
 * for await (const event of chat.send('Hello', { maxNewTokens: 32, temperature: 0 })) if (event.type === 'token') out.textContent += event.text;
 * chat.clear(); // forget everything the state carries
 * ```
 */
export class Conversation {
  readonly session: Session;
  /** Chat messages so far (chat mode). */
  readonly messages: ChatMessage[] = [];
  /** Every id the state has seen or will see first thing next turn (the last generated token is fed at the next turn). */
  private context: number[] = [];
  private busy = false;

  constructor(
    readonly model: HybridModel,
    readonly text: TextCodec,
    public mode: ConversationMode = text.hasChatTemplate ? 'chat' : 'completion',
  ) {
    this.session = new Session(model);
  }

  /** Tokens the model state carries now. */
  get contextLength(): number {
    return this.session.length;
  }

  /** The ids of the context so far. */
  get contextIds(): readonly number[] {
    return this.context;
  }

  /** Bytes of weights, SSM states, conv states and KV caches. */
  memory(): SessionMemory {
    return this.session.memory();
  }

  /** Forgets everything: the model state goes back to zeros, the KV caches to empty. */
  clear(): void {
    if (this.busy) throw new Error('clear: a turn is still running (stop it first)');
    this.session.reset();
    this.context = [];
    this.messages.length = 0;
  }

  /** The ids to feed for this input, and how many ids of the state are kept. */
  private plan(input: string): { prompt: number[]; reused: number; reencoded: boolean } {
    if (this.mode === 'chat') {
      const full = this.text.encodeChat([...this.messages, { role: 'user', content: input }]);
      // Keep the state when the new rendering extends what it has seen; otherwise start over.
      if (this.context.length > 0 && startsWith(full, this.context) && full.length > this.context.length) {
        return { prompt: full.slice(this.context.length), reused: this.context.length, reencoded: false };
      }
      const reencoded = this.context.length > 0;
      if (reencoded) {
        this.session.reset();
        this.context = [];
      }
      return { prompt: full, reused: 0, reencoded };
    }
    return { prompt: this.text.encodeCompletion(input, this.context.length === 0), reused: this.context.length, reencoded: false };
  }

  /**
   * Runs one turn: feeds the new part of the prompt and streams the reply.
   * Stop it with `options.signal`; the state then holds everything up to the last token shown.
   */
  async *send(input: string, options: TurnOptions): AsyncGenerator<TurnEvent, TurnResult, undefined> {
    if (this.busy) throw new Error('send: a turn is already running');
    this.busy = true;
    try {
      const { prompt, reused, reencoded } = this.plan(input);
      if (prompt.length === 0 && this.contextLength === 0) throw new Error('send: nothing to feed (empty prompt)');
      yield { type: 'prompt', promptTokens: prompt.length, reusedTokens: reused, reencoded };
      const userMessage: ChatMessage = { role: 'user', content: input };
      const before = this.session.length;
      const stream = this.text.stream();
      const generate: GenerateOptions = {
        maxNewTokens: options.maxNewTokens,
        temperature: options.temperature > 0 ? options.temperature : undefined,
        greedy: !(options.temperature > 0),
        topK: options.topK,
        topP: options.topP,
        repetitionPenalty: options.repetitionPenalty,
        seed: options.seed,
        signal: options.signal,
        ignoreEos: options.ignoreEos,
        stopTokens: options.ignoreEos ? [] : [...new Set([...(this.model.spec.eosTokenIds ?? []), ...this.text.extraStopIds])],
      };
      const ids: number[] = [];
      let text = '';
      const t0 = now();
      let tFirst = NaN;
      let tLast = NaN;
      let prefillTokens = 0;
      for await (const id of this.session.generate(prompt.length > 0 ? prompt : null, generate)) {
        const t = now();
        if (ids.length === 0) {
          tFirst = t;
          prefillTokens = this.session.length - before;
          this.context.push(...prompt);
          yield { type: 'prefill', tokens: prefillTokens, ms: t - t0, memory: this.memory(), context: this.session.length };
        }
        tLast = t;
        ids.push(id);
        this.context.push(id);
        const chunk = stream.put(id);
        text += chunk;
        const rate = ids.length > 1 ? (ids.length - 1) / ((tLast - tFirst) / 1000) : NaN;
        yield { type: 'token', id, text: chunk, index: ids.length - 1, memory: this.memory(), context: this.session.length, decodeTokensPerSecond: rate };
      }
      // Stopped before the first token: the prompt was fed all the same.
      if (ids.length === 0) this.context.push(...prompt);
      const tail = stream.end();
      text += tail;
      if (tail) yield { type: 'token', id: -1, text: tail, index: ids.length, memory: this.memory(), context: this.session.length, decodeTokensPerSecond: NaN };
      if (this.mode === 'chat') this.messages.push(userMessage, { role: 'assistant', content: this.text.decode(ids) });
      const prefillMs = tFirst - t0;
      const decodeMs = tLast - tFirst;
      const result: TurnResult = {
        ids,
        text,
        prefillTokens,
        prefillMs,
        prefillTokensPerSecond: prefillTokens > 0 ? prefillTokens / (prefillMs / 1000) : NaN,
        decodeTokens: Math.max(0, ids.length - 1),
        decodeMs,
        decodeTokensPerSecond: ids.length > 1 ? (ids.length - 1) / (decodeMs / 1000) : NaN,
        stopped: !!options.signal?.aborted,
      };
      yield { type: 'done', result };
      return result;
    } finally {
      this.busy = false;
    }
  }

  /** Frees the session's state (the model stays loaded). */
  dispose(): void {
    this.session.dispose();
  }
}
