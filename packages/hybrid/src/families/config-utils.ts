/** Small config readings several families share. */
import type { ConfigReader } from '@statespace/checkpoint';

/** An integer key that may also be a list (eos_token_id): all of its values, or undefined when absent. */
export function intList(c: ConfigReader, key: string): number[] | undefined {
  if (!c.has(key)) return undefined;
  return Array.isArray(c.raw(key)) ? c.intArray(key) : [c.int(key)];
}

/** The first value of {@link intList}. */
export function firstInt(c: ConfigReader, key: string): number | undefined {
  return intList(c, key)?.[0];
}
