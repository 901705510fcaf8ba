/** Reading the committed transformers fixtures (tests only). */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Folder of the tiny Hugging Face fixtures, relative to the repository root. */
// Beside the sources; from the repository root when the tests run bundled (scripts/gpu-tests).
const BESIDE = fileURLToPath(new URL('../../../../fixtures/hf-tiny/', import.meta.url));
export const FIXTURES = existsSync(BESIDE) ? BESIDE : `${process.cwd()}/fixtures/hf-tiny/`;

/** transformers' reference outputs for one fixture. */
export interface Reference {
  input_ids: number[];
  greedy_new_tokens: number[];
  logits_first: number[];
  logits_last: number[];
  logits_argmax: number[];
  logits_rows_sample: Record<string, number[]>;
}

export function fixtureDir(name: string): string {
  return `${FIXTURES}${name}`;
}

export function reference(name: string): Reference {
  return JSON.parse(readFileSync(`${FIXTURES}${name}/reference.json`, 'utf8')) as Reference;
}

/** Rows of reference logits by position. */
export function referenceRows(ref: Reference): Map<number, number[]> {
  const rows = new Map<number, number[]>([
    [0, ref.logits_first],
    [ref.input_ids.length - 1, ref.logits_last],
  ]);
  for (const [k, v] of Object.entries(ref.logits_rows_sample)) rows.set(Number(k), v);
  return rows;
}

/**
 * The logit bound of the parity tests for one reference row: 1e-4 absolute, tightened to
 * 1e-4 relative to the row's largest |logit| when that is below 1 (Granite's logits_scaling
 * makes its logits ~0.2, where an absolute 1e-4 would let a flipped MoE renormalisation through).
 */
export function parityBound(row: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < row.length; i++) m = Math.max(m, Math.abs(row[i]));
  return 1e-4 * Math.min(1, m);
}
