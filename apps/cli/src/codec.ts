/** Adapter from @statespace/tokenizer to the CLI's {@link TextCodec}. Filled in once the tokenizer package lands. */
import type { TokenizerFiles } from '@statespace/checkpoint';
import { StatespaceError } from '@statespace/core';
import type { TextCodec } from './commands.js';

export async function codecFromFiles(_files: TokenizerFiles): Promise<TextCodec> {
  throw new StatespaceError('TOKENIZER_MISSING', 'text prompts need @statespace/tokenizer');
}
