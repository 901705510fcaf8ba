// SentencePiece-style BPE with byte fallback (Llama 2 legacy and Metaspace variants), and Qwen 3.
import { describe, expect, it } from 'vitest';
import { describeReference } from './reference-suite.js';
import { MANIFEST } from './test-fixtures.js';

const NAMES = ['llama2', 'llama2-metaspace', 'qwen3'];
describeReference(NAMES);

describe('reference coverage', () => {
  it('tests every tokenizer of fixtures/inputs/manifest.json', () => {
    const covered = [...NAMES, 'neox', 'neox-digits', 'neox-split', 'llama3'].sort(); // + reference-byte-level.test.ts
    expect(MANIFEST.map((e) => e.name).sort()).toEqual(covered);
  });
});
