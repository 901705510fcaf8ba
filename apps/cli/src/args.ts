/** Small argument helpers shared by the commands. */
import { StatespaceError } from '@statespace/core';

/** Parses `3,1,4` into ids; throws a CLI error naming the flag. */
export function parseIds(text: string | undefined, flag: string): number[] {
  if (text === undefined || text.trim() === '') throw new StatespaceError('CLI_USAGE', `${flag} needs a comma-separated list of token ids, e.g. ${flag} 3,1,4`);
  return text.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 0) throw new StatespaceError('CLI_USAGE', `${flag}: "${s}" is not a token id`);
    return n;
  });
}

/** Parses a non-negative integer flag. */
export function parseCount(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new StatespaceError('CLI_USAGE', `${flag}: "${text}" is not a non-negative integer`);
  return n;
}

/** Parses a number flag. */
export function parseNumber(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new StatespaceError('CLI_USAGE', `${flag}: "${text}" is not a number`);
  return n;
}
