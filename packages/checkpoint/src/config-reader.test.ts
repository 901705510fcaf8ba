import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ConfigReader, configReader, parseJson } from './config-reader.js';
import { FAMILIES, FIXTURES } from './test-helpers.js';

const reader = (json: unknown) => configReader(json, 'config.json');

function thrown(fn: () => unknown): { code: string; key?: string; file?: string; message: string } {
  try {
    fn();
  } catch (error) {
    return error as { code: string; key?: string; file?: string; message: string };
  }
  throw new Error('expected an error');
}

describe('configReader', () => {
  it('reads every fixture config, including transformers 5 {"__float__": "Infinity"}', async () => {
    for (const family of FAMILIES) {
      const c = configReader(parseJson(await readFile(join(FIXTURES, family, 'config.json'), 'utf8'), 'config.json'));
      expect(c.positiveInt('hidden_size')).toBe(64);
      expect(c.positiveInt('vocab_size')).toBe(320);
      expect(c.stringArray('architectures')[0]).toMatch(/ForCausalLM$/);
      expect(c.optional.bool('tie_word_embeddings', false)).toEqual(expect.any(Boolean));
    }
    const mamba2 = configReader(JSON.parse(await readFile(join(FIXTURES, 'mamba2', 'config.json'), 'utf8')));
    expect(mamba2.numberArray('time_step_limit', 2)).toEqual([0, Infinity]);
    expect(mamba2.number('layer_norm_epsilon')).toBe(1e-5);
    expect(mamba2.enum('hidden_act', ['silu', 'gelu'], 'gelu')).toBe('silu');
  });

  it('required getters check type and range and name key and file', () => {
    const c = reader({ a: 3, b: -2, f: 1.5, s: 'x', t: true, n: null, arr: [1, 2.5], inf: { __float__: '-Infinity' } });
    expect(c.int('a')).toBe(3);
    expect(c.number('f')).toBe(1.5);
    expect(c.number('inf')).toBe(-Infinity);
    expect(c.string('s')).toBe('x');
    expect(c.bool('t')).toBe(true);
    expect(c.nonNegativeInt('a')).toBe(3);
    const cases: [() => unknown, string, string, RegExp][] = [
      [() => c.int('missing'), 'CONFIG_MISSING_KEY', 'missing', /config\.json: required key "missing" is missing/],
      [() => c.int('n'), 'CONFIG_MISSING_KEY', 'n', /"n" is null/],
      [() => c.int('f'), 'CONFIG_INVALID_VALUE', 'f', /config\.json: "f" must be an integer, got 1\.5/],
      [() => c.positiveInt('b'), 'CONFIG_INVALID_VALUE', 'b', /"b" must be a positive integer, got -2/],
      [() => c.nonNegativeInt('b'), 'CONFIG_INVALID_VALUE', 'b', /non-negative/],
      [() => c.positiveNumber('b'), 'CONFIG_INVALID_VALUE', 'b', /positive number/],
      [() => c.string('a'), 'CONFIG_INVALID_VALUE', 'a', /"a" must be a string, got 3/],
      [() => c.bool('s'), 'CONFIG_INVALID_VALUE', 's', /true or false, got "x"/],
      [() => c.number('s'), 'CONFIG_INVALID_VALUE', 's', /must be a number/],
      [() => c.enum('s', ['silu', 'gelu']), 'CONFIG_INVALID_VALUE', 's', /must be one of "silu", "gelu", got "x"/],
      [() => c.enum('missing', ['silu']), 'CONFIG_MISSING_KEY', 'missing', /required/],
      [() => c.intArray('arr'), 'CONFIG_INVALID_VALUE', 'arr', /element 1 is 2\.5/],
      [() => c.numberArray('arr', 3), 'CONFIG_INVALID_VALUE', 'arr', /must hold 3 values, got 2/],
      [() => c.intArray('a'), 'CONFIG_INVALID_VALUE', 'a', /must be an array/],
      [() => c.object('a'), 'CONFIG_INVALID_VALUE', 'a', /must be an object/],
    ];
    for (const [fn, code, key, message] of cases) {
      const error = thrown(fn);
      expect(error).toMatchObject({ code, key, file: 'config.json' });
      expect(error.message).toMatch(message);
    }
  });

  it('optional getters give the fallback for absent and null keys and still check present ones', () => {
    const c = reader({ eps: 1e-6, n: null, act: 'gelu', bad: 'x' });
    expect(c.optional.number('eps', 1e-5)).toBe(1e-6);
    expect(c.optional.number('rms_norm_eps', 1e-5)).toBe(1e-5);
    expect(c.optional.number('n', 7)).toBe(7);
    expect(c.optional.int('nope')).toBeUndefined();
    expect(c.optional.intArray('nope', 3)).toBeUndefined();
    expect(c.optional.object('nope')).toBeUndefined();
    expect(c.enum('missing', ['silu', 'gelu'], 'silu')).toBe('silu');
    expect(c.enum('act', ['silu', 'gelu'], 'silu')).toBe('gelu');
    expect(thrown(() => c.optional.positiveInt('bad', 3))).toMatchObject({ code: 'CONFIG_INVALID_VALUE', key: 'bad' });
  });

  it('alternative spellings: the first present key wins; errors name them all', () => {
    const c = reader({ n_layer: 4 });
    expect(c.positiveInt(['num_hidden_layers', 'n_layer'])).toBe(4);
    expect(c.has(['num_hidden_layers', 'n_layer'])).toBe(true);
    expect(thrown(() => c.int(['d_model', 'hidden_size'])).message).toMatch(/required key "d_model" or "hidden_size" is missing/);
  });

  it('nested objects report dotted keys', () => {
    const c = reader({ rope_scaling: { rope_type: 'yarn', factor: 'big' } });
    const rope: ConfigReader = c.object('rope_scaling');
    expect(rope.string('rope_type')).toBe('yarn');
    expect(thrown(() => rope.number('factor'))).toMatchObject({ code: 'CONFIG_INVALID_VALUE', key: 'rope_scaling.factor', file: 'config.json' });
    expect(thrown(() => configReader([1], 'x.json'))).toMatchObject({ code: 'CONFIG_INVALID_VALUE', file: 'x.json' });
  });

  it('parseJson accepts the bare NaN / Infinity Python writes, but not inside strings, and rejects broken JSON', () => {
    const c = reader(parseJson('{"time_step_limit": [0.0, Infinity], "x": -Infinity, "y": NaN, "s": "Infinity"}', 'config.json'));
    expect(c.numberArray('time_step_limit')).toEqual([0, Infinity]);
    expect(c.number('x')).toBe(-Infinity);
    expect(c.number('y')).toBeNaN();
    expect(c.string('s')).toBe('Infinity');
    expect(thrown(() => parseJson('{"a": }', 'config.json'))).toMatchObject({ code: 'CONFIG_INVALID_JSON', file: 'config.json' });
  });
});
