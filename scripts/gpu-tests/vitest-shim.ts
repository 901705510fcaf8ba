/**
 * A minimal stand-in for vitest's describe/it/expect, so the kernel test files
 * can be bundled with esbuild and run on the GPU machine, which has Node but no
 * npm packages. Supports the matchers the kernel tests use; anything else throws.
 */
type Fn = () => unknown | Promise<unknown>;
interface Case {
  name: string;
  fn: Fn;
}
const cases: Case[] = [];
const prefix: string[] = [];
const afters: Fn[] = [];
const befores: Fn[] = [];

export function describe(name: string, fn: () => void): void {
  prefix.push(name);
  fn();
  prefix.pop();
}
describe.each = (rows: unknown[]) => (name: string, fn: (...a: unknown[]) => void) => {
  for (const r of rows) describe(name.replace('%s', String(r)), () => fn(...(Array.isArray(r) ? r : [r])));
};
export function it(name: string, fn: Fn): void {
  cases.push({ name: [...prefix, name].join(' > '), fn });
}
it.each = (rows: unknown[]) => (name: string, fn: (...a: unknown[]) => unknown) => {
  for (const r of rows) it(name.replace('%s', String(r)), () => fn(...(Array.isArray(r) ? r : [r])));
};
it.runIf = (c: boolean) => (c ? it : () => {});
it.skipIf = (c: boolean) => (c ? () => {} : it);
export const test = it;
export const beforeAll = (fn: Fn) => befores.push(fn);
export const afterAll = (fn: Fn) => afters.push(fn);
export const beforeEach = () => {};
export const afterEach = () => {};
export const vi = {};

function fail(msg: string): never {
  throw new Error(msg);
}
function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
// vitest's toMatchObject: every property of `expected` (recursively) is in `actual`; arrays match element by element.
function matchesObject(actual: unknown, expected: unknown): boolean {
  if (isContaining(expected)) return matchesObject(actual, expected.objectContaining);
  if (expected === null || typeof expected !== 'object') return Object.is(actual, expected) || deepEqual(actual, expected);
  if (actual === null || typeof actual !== 'object') return false;
  if (Array.isArray(expected)) return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => matchesObject(actual[i], e));
  return Object.entries(expected).every(([k, e]) => matchesObject((actual as Record<string, unknown>)[k], e));
}
// vitest's expect.objectContaining(e): an asymmetric matcher, here a tagged object.
type Containing = { objectContaining: unknown; [containingTag]: true };
const containingTag = Symbol('objectContaining');
function isContaining(e: unknown): e is Containing {
  return typeof e === 'object' && e !== null && containingTag in e;
}
/** Whether a thrown error satisfies toThrow's argument: a message pattern, an error class or expect.objectContaining. */
function errorMatches(err: unknown, r: unknown): boolean {
  if (r === undefined) return true;
  const msg = (err as Error)?.message ?? String(err);
  if (typeof r === 'string') return msg.includes(r);
  if (r instanceof RegExp) return r.test(msg);
  if (typeof r === 'function') return err instanceof (r as new () => unknown);
  return matchesObject(err, r);
}
function matchers(actual: unknown, negate: boolean, label?: string) {
  const check = (ok: boolean, msg: string) => {
    if (ok === negate) fail(`${label ? `${label}: ` : ''}${negate ? 'not ' : ''}${msg}`);
  };
  const a = actual as number;
  return {
    toBe: (e: unknown) => check(Object.is(actual, e), `expected ${String(actual)} to be ${String(e)}`),
    toEqual: (e: unknown) => check(deepEqual(actual, e), `expected ${JSON.stringify(actual)?.slice(0, 200)} to equal ${JSON.stringify(e)?.slice(0, 200)}`),
    toStrictEqual: (e: unknown) => check(deepEqual(actual, e), 'expected strict equality'),
    toMatchObject: (e: unknown) => check(matchesObject(actual, e), `expected ${JSON.stringify(actual)?.slice(0, 200)} to match ${JSON.stringify(e)?.slice(0, 200)}`),
    toBeLessThan: (e: number) => check(a < e, `expected ${a} < ${e}`),
    toBeLessThanOrEqual: (e: number) => check(a <= e, `expected ${a} <= ${e}`),
    toBeGreaterThan: (e: number) => check(a > e, `expected ${a} > ${e}`),
    toBeGreaterThanOrEqual: (e: number) => check(a >= e, `expected ${a} >= ${e}`),
    toBeCloseTo: (e: number, d = 2) => check(Math.abs(a - e) < 10 ** -d / 2, `expected ${a} close to ${e}`),
    toBeTruthy: () => check(!!actual, `expected ${String(actual)} truthy`),
    toBeFalsy: () => check(!actual, `expected ${String(actual)} falsy`),
    toBeDefined: () => check(actual !== undefined, 'expected defined'),
    toBeUndefined: () => check(actual === undefined, 'expected undefined'),
    toBeNull: () => check(actual === null, 'expected null'),
    toBeNaN: () => check(Number.isNaN(actual), 'expected NaN'),
    toBeInstanceOf: (c: new (...a: never[]) => unknown) => check(actual instanceof c, 'expected instance'),
    toHaveLength: (n: number) => check((actual as { length: number }).length === n, `expected length ${n}`),
    toContain: (x: unknown) => check((actual as { includes(v: unknown): boolean }).includes(x), `expected to contain ${String(x)}`),
    toMatch: (r: RegExp | string) => check(typeof r === 'string' ? String(actual).includes(r) : r.test(String(actual)), `expected ${String(actual).slice(0, 200)} to match ${String(r)}`),
    toSatisfy: (f: (v: unknown) => boolean) => check(f(actual), 'expected to satisfy predicate'),
    toThrow: (r?: unknown) => throws(actual, r, check),
    toThrowError: (r?: unknown) => throws(actual, r, check),
  };
}
function throws(actual: unknown, r: unknown, check: (ok: boolean, msg: string) => void): void {
  let threw = false;
  let err: unknown;
  try {
    (actual as () => unknown)();
  } catch (e) {
    threw = true;
    err = e;
  }
  const msg = threw ? ((err as Error)?.message ?? String(err)) : 'no error';
  check(threw && errorMatches(err, r), `expected to throw ${isContaining(r) ? JSON.stringify(r.objectContaining) : String(r ?? '')}, got ${msg}`);
}
export function expect(actual: unknown, label?: string) {
  const m = matchers(actual, false, label);
  const rejects = new Proxy({}, {
    get: (_t, key: string) => async (...args: unknown[]) => {
      try {
        await (actual as Promise<unknown>);
      } catch (e) {
        const r = args[0];
        if (key === 'toThrow' || key === 'toThrowError') {
          const msg = (e as Error)?.message ?? String(e);
          if (!errorMatches(e, r)) fail(`rejected with ${msg}, expected ${isContaining(r) ? JSON.stringify(r.objectContaining) : String(r)}`);
          return;
        }
        return (matchers(e, false, label) as Record<string, (...a: unknown[]) => void>)[key](...args);
      }
      fail('expected a rejection');
    },
  });
  return { ...m, not: matchers(actual, true, label), rejects, resolves: m };
}
expect.objectContaining = (e: unknown): Containing => ({ objectContaining: e, [containingTag]: true });

/** Runs every registered case; prints one line each and a closing `N passed, N failed` line. */
export async function runAll(file: string): Promise<{ passed: number; failed: number }> {
  let passed = 0;
  let failed = 0;
  for (const b of befores) await b();
  for (const c of cases) {
    const t0 = performance.now();
    try {
      await c.fn();
      passed++;
      console.log(`  ok   ${c.name} (${(performance.now() - t0).toFixed(0)} ms)`);
    } catch (e) {
      failed++;
      console.log(`  FAIL ${c.name}: ${(e as Error)?.message ?? e}`);
    }
  }
  for (const a of afters) await a();
  console.log(`${file}: ${passed} passed, ${failed} failed`);
  cases.length = 0;
  befores.length = 0;
  afters.length = 0;
  return { passed, failed };
}
