/**
 * @statespace/tokenizer: Hugging Face tokenizer.json tokenizers (byte-level BPE, SentencePiece-style
 * BPE with byte fallback), streaming detokenization and chat templates, in Node and the browser.
 *
 * @example
 * ```ts
 * import { loadTokenizer, TextStreamer } from '@statespace/tokenizer';
 * const tokenizer = await loadTokenizer('./Qwen3-0.6B');
 * const ids = tokenizer.encodeChat([{ role: 'user', content: 'Hi!' }], { addGenerationPrompt: true });
 * const streamer = new TextStreamer(tokenizer, { skipSpecialTokens: true, onText: (t) => process.stdout.write(t) });
 * ```
 */
export { Tokenizer, cleanUpTokenization } from './tokenizer.js';
export type { AddedToken, EncodeOptions, DecodeOptions, SpecialToken, ChatTemplates, TokenizerInit } from './tokenizer.js';
export { loadTokenizer, MAX_TOKENIZER_FILE_BYTES } from './load.js';
export type { TokenizerSource, TokenizerFiles, JsonInput, LoadTokenizerOptions } from './load.js';
export { TextStreamer, TextIteratorStreamer } from './streamer.js';
export type { TextStreamerOptions } from './streamer.js';
export { applyChatTemplate, selectChatTemplate } from './chat-template.js';
export type { ChatMessage, ChatTemplateOptions } from './chat-template.js';
export { TokenizerError } from './errors.js';
export type { TokenizerErrorCode } from './errors.js';
export type { JsonObject } from './json.js';
