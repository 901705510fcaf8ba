/** tokenizer.json `post_processor` section (tokenizers' `processors/*.rs`), reduced to what it does to ids. */
import { checkNesting, expectArray, expectId, expectObject, expectString, invalid, unsupported, type JsonObject } from './json.js';

/** Adds the special tokens of a single-sequence template around `ids`. */
export type PostProcessor = (ids: number[]) => number[];

/** Builds the post-processor of a tokenizer.json `post_processor` value (null: none). */
export function createPostProcessor(value: unknown, where = 'tokenizer.json post_processor', depth = 0): PostProcessor | null {
  if (value === null || value === undefined) return null;
  checkNesting(depth, where);
  const config: JsonObject = expectObject(value, where);
  const type = config.type;
  switch (type) {
    case 'ByteLevel':
      return (ids) => ids; // only trims offsets
    case 'Sequence': {
      const steps = expectArray(config.processors, `${where}.processors`)
        .map((child, i) => createPostProcessor(child, `${where}.processors[${i}]`, depth + 1))
        .filter((step): step is PostProcessor => step !== null);
      return (ids) => steps.reduce((acc, step) => step(acc), ids);
    }
    case 'TemplateProcessing': {
      const specials = expectObject(config.special_tokens ?? {}, `${where}.special_tokens`);
      const specialIds = new Map<string, number[]>();
      for (const [name, entry] of Object.entries(specials)) {
        const ids = expectArray(expectObject(entry, `${where}.special_tokens.${name}`).ids, `${where}.special_tokens.${name}.ids`);
        specialIds.set(name, ids.map((id, i) => expectId(id, `${where}.special_tokens.${name}.ids[${i}]`)));
      }
      const pieces: Array<{ special: number[] } | { sequence: true }> = expectArray(config.single, `${where}.single`).map((item, i) => {
        const piece = expectObject(item, `${where}.single[${i}]`);
        if (piece.SpecialToken !== undefined) {
          const name = expectString(expectObject(piece.SpecialToken, `${where}.single[${i}].SpecialToken`).id, `${where}.single[${i}].SpecialToken.id`);
          const ids = specialIds.get(name);
          if (!ids) invalid(`${where}.single[${i}]`, `special token ${JSON.stringify(name)} is missing from special_tokens`);
          return { special: ids };
        }
        if (piece.Sequence !== undefined) {
          const id = expectObject(piece.Sequence, `${where}.single[${i}].Sequence`).id;
          if (id !== 'A') invalid(`${where}.single[${i}]`, `a single-sequence template can only use sequence A, got ${JSON.stringify(id)}`);
          return { sequence: true as const };
        }
        return invalid(`${where}.single[${i}]`, 'expected { SpecialToken } or { Sequence }');
      });
      return (ids) => pieces.flatMap((piece) => ('special' in piece ? piece.special : ids));
    }
    default:
      return unsupported(where, `post-processor type ${JSON.stringify(type)} is not supported (supported: TemplateProcessing, ByteLevel, Sequence)`);
  }
}
