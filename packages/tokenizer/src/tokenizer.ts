/**
 * A Hugging Face `tokenizer.json` tokenizer whose `encode` / `decode` match the Rust
 * `tokenizers` library (the one transformers' fast tokenizers wrap).
 *
 * Pipeline of `encode` (tokenizers' `TokenizerImpl::encode_single_sequence`):
 *   1. split the raw text on added tokens with `normalized: false` (leftmost-longest),
 *   2. normalize every other piece, then split it on added tokens with `normalized: true`,
 *   3. pre-tokenize each remaining piece into words,
 *   4. BPE each word (the BPE model of @huggingface/tokenizers),
 *   5. post-process (TemplateProcessing adds BOS/EOS) when `addSpecialTokens`.
 * `decode`: ids -> token strings (added tokens first), optionally drop special ones, run the
 * decoder chain, join.
 */
import { BPE } from '@huggingface/tokenizers';
import { TokenizerError } from './errors.js';
import { type MergeRanks, bpeMerge, mergeRanks } from './bpe-merge.js';
import { createNormalizer, type Normalizer } from './normalizer.js';
import { createPreTokenizer, type PreTokenizer } from './pre-tokenizer.js';
import { createDecoder, decoderHasByteFallback, type Decoder } from './decoder.js';
import { createPostProcessor, type PostProcessor } from './post-processor.js';
import {
  describe,
  expectArray,
  expectId,
  expectObject,
  expectString,
  invalid,
  isObject,
  optionalBoolean,
  unsupported,
  type JsonObject,
} from './json.js';
import { applyChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';

/** One entry of tokenizer.json `added_tokens`. */
export interface AddedToken {
  /** Its id in the vocabulary. */
  readonly id: number;
  /** Its text, e.g. `<|im_start|>`. */
  readonly content: string;
  /** Special tokens are dropped by `decode(ids, { skipSpecialTokens: true })`. */
  readonly special: boolean;
  /** Matched after normalization (true) or on the raw text (false). */
  readonly normalized: boolean;
  /** Swallows the whitespace on its left. */
  readonly lstrip: boolean;
  /** Swallows the whitespace on its right. */
  readonly rstrip: boolean;
}

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Run the post-processor (adds BOS/EOS for Llama-style templates). Default true, as in tokenizers and transformers. */
  addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Leave out added tokens marked `special`. Default false. */
  skipSpecialTokens?: boolean;
  /**
   * Apply transformers' `clean_up_tokenization` (" ." -> ".", " n't" -> "n't", ...). Default false:
   * the Rust tokenizers library never does; transformers does when tokenizer_config.json's
   * `clean_up_tokenization_spaces` is true (see {@link Tokenizer.cleanUpTokenizationSpaces}).
   */
  cleanUpTokenizationSpaces?: boolean;
}

/** A special token from tokenizer_config.json with its id (undefined when the vocabulary lacks it). */
export interface SpecialToken {
  /** The token's text, e.g. `</s>`. */
  readonly content: string;
  /** Its id, or undefined when the vocabulary lacks it. */
  readonly id: number | undefined;
}

/** Named chat templates, as tokenizer_config.json may hold them (`[{ name, template }]`). */
export type ChatTemplates = string | Readonly<Record<string, string>>;

/** Extra inputs of the {@link Tokenizer} constructor. */
export interface TokenizerInit {
  /** A chat template that replaces tokenizer_config.json's (the contents of `chat_template.jinja`). */
  chatTemplate?: string | null;
  /** special_tokens_map.json: fallback for bos/eos/unk/pad when tokenizer_config.json lacks them. */
  specialTokensMap?: unknown;
}

interface TrieNode {
  children: Map<string, TrieNode>;
  token?: AddedToken;
}

interface Segment {
  text: string;
  start: number;
  token?: AddedToken;
}

const WHITESPACE = /\p{White_Space}/u;

/** Words this long or longer are merged by {@link bpeMerge} (the model caches shorter ones). */
const LONG_WORD = 256;

/**
 * transformers' `clean_up_tokenization`: removes the space before punctuation and English contractions.
 *
 * @example
 * ```ts
 * cleanUpTokenization("Hello , world . I 'm here"); // "Hello, world. I'm here"
 * ```
 */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

/**
 * A tokenizer built from the parsed contents of `tokenizer.json` (and optionally
 * `tokenizer_config.json`). Use {@link loadTokenizer} to read the files.
 *
 * @example
 * ```ts
 * const tokenizer = new Tokenizer(JSON.parse(tokenizerJsonText), JSON.parse(configText));
 * const ids = tokenizer.encode('Hello world');
 * tokenizer.decode(ids, { skipSpecialTokens: true }); // 'Hello world'
 * ```
 */
export class Tokenizer {
  /** The parsed tokenizer_config.json (an empty object when there was none). */
  readonly config: Readonly<JsonObject>;
  /** Every added token, by id. */
  readonly addedTokens: ReadonlyMap<number, AddedToken>;
  /** BOS / EOS / UNK / PAD from tokenizer_config.json (or special_tokens_map.json). */
  readonly bosToken: SpecialToken | undefined;
  /** End-of-sequence token (stop generation when it is produced). */
  readonly eosToken: SpecialToken | undefined;
  /** Token for unknown input, if the model has one. */
  readonly unkToken: SpecialToken | undefined;
  /** Padding token, if the model has one. */
  readonly padToken: SpecialToken | undefined;
  /** tokenizer_config.json `add_bos_token` / `add_eos_token` (informative: encode() follows tokenizer.json's post-processor, as tokenizers does). */
  readonly addBosToken: boolean | undefined;
  /** tokenizer_config.json `add_eos_token` (informative, like {@link addBosToken}). */
  readonly addEosToken: boolean | undefined;
  /** tokenizer_config.json `clean_up_tokenization_spaces` (transformers' default: true). */
  readonly cleanUpTokenizationSpaces: boolean;
  /** The chat template(s), or null when neither tokenizer_config.json nor chat_template.jinja has one. */
  readonly chatTemplate: ChatTemplates | null;

  /** The BPE model of @huggingface/tokenizers: a callable object, words -> token strings (fuse_unk applied). */
  private readonly bpe: (words: string[]) => string[];
  private readonly vocab: Map<string, number>;
  private readonly idToTokenTable: (string | undefined)[];
  private readonly normalizer: Normalizer | null;
  private readonly preTokenizer: PreTokenizer | null;
  private readonly postProcessor: PostProcessor | null;
  private readonly decoder: Decoder | null;
  /**
   * @internal Whether the decoder has a ByteFallback step: a run of consecutive "<0xAB>" tokens then
   * decodes as one unit (its UTF-8 text, or one U+FFFD per byte if invalid), so the streamers hold a
   * run until a token that is not a byte ends it.
   */
  readonly decodesByteFallback: boolean;
  private readonly rawTrie: TrieNode;
  private readonly normalizedTrie: TrieNode;
  private readonly addedByContent = new Map<string, AddedToken>();
  /** Contents of the special added tokens: tokenizers skips a token by its text, whatever its id. */
  private readonly specialContents = new Set<string>();

  /**
   * @param tokenizerJson parsed tokenizer.json
   * @param tokenizerConfig parsed tokenizer_config.json (optional)
   * @throws TokenizerError `TOKENIZER_INVALID` for malformed input, `TOKENIZER_UNSUPPORTED` for
   *   components this package does not implement (it never guesses).
   */
  constructor(tokenizerJson: unknown, tokenizerConfig: unknown = {}, init: TokenizerInit = {}) {
    // Every field is checked by name below; this guard turns anything a hostile file still trips
    // inside a dependency (a TypeError, a RangeError) into the package's typed error.
    try {
      const json = expectObject(tokenizerJson, 'tokenizer.json');
      const config = tokenizerConfig === null || tokenizerConfig === undefined ? {} : expectObject(tokenizerConfig, 'tokenizer_config.json');
      this.config = config;

      const { model, vocab } = createModel(json.model);
      this.bpe = model as unknown as (words: string[]) => string[];
      this.vocab = vocab;
      this.idToTokenTable = [];
      for (const [token, id] of vocab) this.idToTokenTable[id] = token;

      const added = new Map<number, AddedToken>();
      for (const [i, entry] of expectArray(json.added_tokens ?? [], 'tokenizer.json added_tokens').entries()) {
        const token = parseAddedToken(entry, `tokenizer.json added_tokens[${i}]`);
        added.set(token.id, token);
        this.addedByContent.set(token.content, token);
        if (token.special) this.specialContents.add(token.content);
        this.idToTokenTable[token.id] = token.content;
      }
      this.addedTokens = added;

      this.normalizer = createNormalizer(json.normalizer);
      this.preTokenizer = createPreTokenizer(json.pre_tokenizer);
      this.postProcessor = createPostProcessor(json.post_processor);
      this.decoder = createDecoder(json.decoder);
      this.decodesByteFallback = decoderHasByteFallback(json.decoder);
      if (json.truncation !== undefined && json.truncation !== null) {
        unsupported('tokenizer.json truncation', 'truncation is not supported; set it to null');
      }

      this.rawTrie = { children: new Map() };
      this.normalizedTrie = { children: new Map() };
      for (const token of added.values()) {
        if (token.content.length === 0) continue;
        if (token.normalized) insert(this.normalizedTrie, this.normalizer ? this.normalizer(token.content) : token.content, token);
        else insert(this.rawTrie, token.content, token);
      }

      const specialsMap = isObject(init.specialTokensMap) ? init.specialTokensMap : {};
      const special = (key: string): SpecialToken | undefined => {
        const content = specialTokenContent(config[key] ?? specialsMap[key], `tokenizer_config.json ${key}`);
        return content === undefined ? undefined : { content, id: this.tokenToId(content) };
      };
      this.bosToken = special('bos_token');
      this.eosToken = special('eos_token');
      this.unkToken = special('unk_token');
      this.padToken = special('pad_token');
      this.addBosToken = config.add_bos_token === undefined ? undefined : optionalBoolean(config.add_bos_token, 'tokenizer_config.json add_bos_token', false);
      this.addEosToken = config.add_eos_token === undefined ? undefined : optionalBoolean(config.add_eos_token, 'tokenizer_config.json add_eos_token', false);
      this.cleanUpTokenizationSpaces = optionalBoolean(config.clean_up_tokenization_spaces, 'tokenizer_config.json clean_up_tokenization_spaces', true);
      this.chatTemplate = init.chatTemplate ?? parseChatTemplates(config.chat_template);
    } catch (error) {
      if (TokenizerError.is(error)) throw error;
      throw new TokenizerError('TOKENIZER_INVALID', `tokenizer.json: cannot be built (${(error as Error)?.message ?? String(error)})`, { cause: error });
    }
  }

  /** Number of ids: one more than the largest id of the vocabulary or of the added tokens. */
  get vocabSize(): number {
    return this.idToTokenTable.length;
  }

  /**
   * Encodes text to ids, exactly as tokenizers' `Tokenizer.encode(text, add_special_tokens).ids`.
   *
   * @example
   * ```ts
   * tokenizer.encode('Hello world');                              // with BOS for Llama-style tokenizers
   * tokenizer.encode('<|im_start|>user', { addSpecialTokens: false });
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') {
      throw new TokenizerError('INVALID_ARGUMENT', `encode: text must be a string, got ${describe(text)}`);
    }
    const ids: number[] = [];
    for (const segment of splitOnAddedTokens(text, this.rawTrie)) {
      if (segment.token) {
        ids.push(segment.token.id);
        continue;
      }
      const normalized = this.normalizer ? this.normalizer(segment.text) : segment.text;
      for (const part of splitOnAddedTokens(normalized, this.normalizedTrie)) {
        if (part.token) ids.push(part.token.id);
        else this.encodeWords(part.text, segment.start === 0 && part.start === 0, ids);
      }
    }
    const addSpecialTokens = options.addSpecialTokens ?? true;
    return addSpecialTokens && this.postProcessor ? this.postProcessor(ids) : ids;
  }

  /**
   * The token strings of `encode(text, { addSpecialTokens: false })`.
   *
   * @example
   * ```ts
   * tokenizer.tokenize('Hello world'); // ['Hello', 'Ġworld'] for a byte-level BPE
   * ```
   */
  tokenize(text: string): string[] {
    return this.encode(text, { addSpecialTokens: false }).map((id) => this.idToTokenTable[id] as string);
  }

  private encodeWords(text: string, atStart: boolean, out: number[]): void {
    if (text.length === 0) return;
    const words = this.preTokenizer ? this.preTokenizer([{ text, atStart }]) : [{ text, atStart }];
    for (const word of words) {
      if (word.text.length === 0) continue;
      for (const token of this.bpe([word.text])) {
        const id = this.vocab.get(token);
        if (id !== undefined) out.push(id);
      }
    }
  }

  /**
   * Decodes ids to text, exactly as tokenizers' `Tokenizer.decode(ids, skip_special_tokens)`,
   * except that an id outside the vocabulary is an error (tokenizers silently drops it).
   *
   * @throws TokenizerError `TOKEN_ID_OUT_OF_RANGE` naming the id and its position.
   * @example
   * ```ts
   * tokenizer.decode([1, 15043, 3186]);                               // '<s> Hello world' (Llama 2)
   * tokenizer.decode([1, 15043, 3186], { skipSpecialTokens: true });  // 'Hello world'
   * ```
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const tokens = this.idsToTokens(ids, 'decode', options.skipSpecialTokens ?? false);
    const text = this.decoder ? this.decoder(tokens).join('') : tokens.join(' ');
    return options.cleanUpTokenizationSpaces ? cleanUpTokenization(text) : text;
  }

  /** @internal ids -> token strings with validation (shared by decode and the streamers). */
  idsToTokens(ids: ArrayLike<number>, op: string, skipSpecialTokens: boolean): string[] {
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
      throw new TokenizerError('INVALID_ARGUMENT', `${op}: ids must be an array of token ids, got ${describe(ids)}`);
    }
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const token = Number.isInteger(id) && id >= 0 ? this.idToTokenTable[id] : undefined;
      if (token === undefined) {
        throw new TokenizerError(
          'TOKEN_ID_OUT_OF_RANGE',
          `${op}: ids[${i}] = ${String(id)} is not a token id of this vocabulary (ids are integers in [0, ${this.vocabSize - 1}] that name a token)`,
        );
      }
      if (skipSpecialTokens && this.specialContents.has(token)) continue;
      tokens.push(token);
    }
    return tokens;
  }

  /**
   * The token string of an id (added tokens first), or undefined.
   *
   * @example
   * ```ts
   * tokenizer.idToToken(tokenizer.eosToken!.id!); // '</s>'
   * ```
   */
  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.idToTokenTable[id] : undefined;
  }

  /**
   * The id of a token string (added tokens first), or undefined.
   *
   * @example
   * ```ts
   * tokenizer.tokenToId('<|im_end|>'); // 151645 for Qwen
   * ```
   */
  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.vocab.get(token);
  }

  /**
   * Renders a conversation with the tokenizer's chat template, as transformers'
   * `apply_chat_template(messages, tokenize=False, ...)` does.
   *
   * @example
   * ```ts
   * const prompt = tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi!' }], { addGenerationPrompt: true });
   * ```
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    return applyChatTemplate(this, messages, options);
  }

  /**
   * `applyChatTemplate` followed by `encode(text, { addSpecialTokens: false })`, as transformers'
   * `apply_chat_template(messages, tokenize=True)` does (the template writes BOS itself).
   *
   * @example
   * ```ts
   * const ids = tokenizer.encodeChat([{ role: 'user', content: 'Hi!' }], { addGenerationPrompt: true });
   * ```
   */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }
}

function createModel(value: unknown): { model: BPE; vocab: Map<string, number> } {
  const where = 'tokenizer.json model';
  const config = expectObject(value, where);
  const type = config.type ?? (Array.isArray(config.merges) ? 'BPE' : undefined);
  if (type !== 'BPE') {
    unsupported(`${where}.type`, `model type ${JSON.stringify(type)} is not supported (supported: BPE)`);
  }
  const vocabObject = expectObject(config.vocab, `${where}.vocab`);
  for (const token in vocabObject) expectId(vocabObject[token], `${where}.vocab[${JSON.stringify(token)}]`);
  const merges = expectArray(config.merges ?? [], `${where}.merges`);
  const pairFormat = merges.length > 0 && Array.isArray(merges[0]);
  for (let i = 0; i < merges.length; i++) {
    const merge = merges[i];
    const ok = pairFormat
      ? Array.isArray(merge) && merge.length === 2 && typeof merge[0] === 'string' && typeof merge[1] === 'string'
      : typeof merge === 'string' && merge.indexOf(' ') > -1 && merge.indexOf(' ') === merge.lastIndexOf(' ');
    if (!ok) invalid(`${where}.merges[${i}]`, `expected ${pairFormat ? '["a", "b"]' : '"a b"'} like merges[0], got ${JSON.stringify(merge)}`);
  }
  const dropout = config.dropout;
  if (dropout !== undefined && dropout !== null && dropout !== 0) unsupported(`${where}.dropout`, 'BPE dropout is not supported');
  for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    const affix = config[key];
    if (affix !== undefined && affix !== null && affix !== '') unsupported(`${where}.${key}`, `a non-empty ${key} is not supported`);
  }
  const unkToken = config.unk_token === undefined || config.unk_token === null ? null : expectString(config.unk_token, `${where}.unk_token`);
  const model = new BPE({
    type: 'BPE',
    vocab: vocabObject as Record<string, number>,
    merges,
    unk_token: unkToken,
    byte_fallback: optionalBoolean(config.byte_fallback, `${where}.byte_fallback`, false),
    fuse_unk: optionalBoolean(config.fuse_unk, `${where}.fuse_unk`, false),
    ignore_merges: optionalBoolean(config.ignore_merges, `${where}.ignore_merges`, false),
  } as unknown as ConstructorParameters<typeof BPE>[0]);
  // The model's own token -> id map and split merges (built once).
  const { tokens_to_ids: vocab, merges: pairs } = model as unknown as { tokens_to_ids: Map<string, number>; merges: [string, string][] };
  // Long words (the model caches none of 256 characters or more) go to a flat-array merge with the
  // same result: the model's own bpe() takes tens of seconds on a megabyte-long word.
  const internals = model as unknown as { bpe: (token: string) => string[] };
  const shortWords = internals.bpe.bind(model);
  let ranks: MergeRanks | undefined;
  internals.bpe = (token: string) => {
    if (token.length < LONG_WORD) return shortWords(token);
    ranks ??= mergeRanks(pairs);
    return bpeMerge(token, ranks);
  };
  for (let i = 0; i < pairs.length; i++) {
    const [a, b] = pairs[i];
    for (const token of [a, b, a + b]) {
      if (!vocab.has(token)) invalid(`${where}.merges[${i}]`, `${JSON.stringify(token)} of merge ${JSON.stringify(merges[i])} is not in the vocabulary`);
    }
  }
  return { model, vocab };
}

function parseAddedToken(value: unknown, where: string): AddedToken {
  const entry = expectObject(value, where);
  const special = optionalBoolean(entry.special, `${where}.special`, false);
  if (optionalBoolean(entry.single_word, `${where}.single_word`, false)) {
    unsupported(`${where}.single_word`, 'added tokens with single_word: true are not supported');
  }
  return {
    id: expectId(entry.id, `${where}.id`),
    content: expectString(entry.content, `${where}.content`),
    special,
    normalized: optionalBoolean(entry.normalized, `${where}.normalized`, !special),
    lstrip: optionalBoolean(entry.lstrip, `${where}.lstrip`, false),
    rstrip: optionalBoolean(entry.rstrip, `${where}.rstrip`, false),
  };
}

function specialTokenContent(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  return expectString(expectObject(value, where).content, `${where}.content`);
}

function parseChatTemplates(value: unknown): ChatTemplates | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  const where = 'tokenizer_config.json chat_template';
  const named: Record<string, string> = {};
  for (const [i, entry] of expectArray(value, where).entries()) {
    const item = expectObject(entry, `${where}[${i}]`);
    named[expectString(item.name, `${where}[${i}].name`)] = expectString(item.template, `${where}[${i}].template`);
  }
  return named;
}

function insert(root: TrieNode, text: string, token: AddedToken): void {
  let node = root;
  for (const unit of text) {
    let next = node.children.get(unit);
    if (!next) node.children.set(unit, (next = { children: new Map() }));
    node = next;
  }
  node.token ??= token;
}

/**
 * tokenizers' `AddedVocabulary::find_matches`: leftmost-longest matches of the added tokens
 * (Aho-Corasick, MatchKind::LeftmostLongest), widened over whitespace for lstrip / rstrip.
 */
function splitOnAddedTokens(text: string, trie: TrieNode): Segment[] {
  if (trie.children.size === 0 || text.length === 0) return [{ text, start: 0 }];
  const segments: Segment[] = [];
  let done = 0; // end of the last emitted segment
  let i = 0;
  while (i < text.length) {
    let node: TrieNode | undefined = trie;
    let match: { end: number; token: AddedToken } | undefined;
    let j = i;
    while (j < text.length) {
      const cp = text.codePointAt(j) as number;
      const ch = String.fromCodePoint(cp);
      node = node.children.get(ch);
      if (!node) break;
      j += ch.length;
      if (node.token) match = { end: j, token: node.token };
    }
    if (!match) {
      i += text.codePointAt(i)! > 0xffff ? 2 : 1;
      continue;
    }
    let start = i;
    let stop = match.end;
    if (match.token.lstrip) {
      while (start > done && WHITESPACE.test(charBefore(text, start))) start -= charBefore(text, start).length;
    }
    if (match.token.rstrip) {
      while (stop < text.length && WHITESPACE.test(String.fromCodePoint(text.codePointAt(stop)!))) stop += text.codePointAt(stop)! > 0xffff ? 2 : 1;
    }
    if (done < start) segments.push({ text: text.slice(done, start), start: done });
    segments.push({ text: text.slice(start, stop), start, token: match.token });
    done = stop;
    i = Math.max(match.end, stop);
  }
  if (done < text.length) segments.push({ text: text.slice(done), start: done });
  return segments;
}

function charBefore(text: string, index: number): string {
  const low = text.charCodeAt(index - 1);
  if (index >= 2 && low >= 0xdc00 && low <= 0xdfff) {
    const high = text.charCodeAt(index - 2);
    if (high >= 0xd800 && high <= 0xdbff) return text.slice(index - 2, index);
  }
  return text.slice(index - 1, index);
}
