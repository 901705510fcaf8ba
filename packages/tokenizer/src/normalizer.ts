/** tokenizer.json `normalizer` section, with the semantics of tokenizers' `normalizers/*.rs`. */
import { compilePattern } from './pattern.js';
import { checkNesting, expectArray, expectObject, expectString, unsupported, type JsonObject } from './json.js';

/** Maps a string to its normalized form. */
export type Normalizer = (text: string) => string;

/** Builds the normalizer described by a tokenizer.json `normalizer` value (null: none). */
export function createNormalizer(value: unknown, where = 'tokenizer.json normalizer', depth = 0): Normalizer | null {
  if (value === null || value === undefined) return null;
  checkNesting(depth, where);
  const config: JsonObject = expectObject(value, where);
  const type = config.type;
  switch (type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (text) => text.normalize(type);
    case 'Sequence': {
      const steps = expectArray(config.normalizers, `${where}.normalizers`)
        .map((child, i) => createNormalizer(child, `${where}.normalizers[${i}]`, depth + 1))
        .filter((step): step is Normalizer => step !== null);
      return (text) => steps.reduce((acc, step) => step(acc), text);
    }
    case 'Replace': {
      const regex = compilePattern(config.pattern, `${where}.pattern`);
      const content = expectString(config.content, `${where}.content`);
      return (text) => text.replace(regex, () => content);
    }
    case 'Prepend': {
      const prepend = expectString(config.prepend, `${where}.prepend`);
      // tokenizers' Prepend leaves an empty string empty.
      return (text) => (text.length === 0 ? text : prepend + text);
    }
    default:
      return unsupported(where, `normalizer type ${JSON.stringify(type)} is not supported (supported: NFC, NFD, NFKC, NFKD, Replace, Prepend, Sequence)`);
  }
}
