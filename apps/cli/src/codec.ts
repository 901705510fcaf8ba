/** Adapter from @statespace/tokenizer to the CLI's {@link TextCodec}. */
import type { TokenizerFiles } from '@statespace/checkpoint';
import { type JsonInput, type Tokenizer, TextStreamer, loadTokenizer } from '@statespace/tokenizer';
import type { TextCodec } from './commands.js';

/** A codec over a model folder's tokenizer files. */
export async function codecFromFiles(files: TokenizerFiles): Promise<TextCodec & { tokenizer: Tokenizer }> {
  const tokenizer = await loadTokenizer({ tokenizer: files.tokenizer as JsonInput, config: (files.tokenizerConfig as JsonInput) ?? null, specialTokensMap: (files.specialTokensMap as JsonInput) ?? null });
  return {
    tokenizer,
    encode: (text) => tokenizer.encode(text),
    decode: (ids) => tokenizer.decode(ids),
    streamer() {
      const s = new TextStreamer(tokenizer);
      return { push: (id) => s.put(id), end: () => s.end() };
    },
  };
}
