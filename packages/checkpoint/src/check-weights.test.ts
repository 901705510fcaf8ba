import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ExpectedTensor, WeightsMismatchError, checkWeights, compareWeights } from './check-weights.js';
import { type ConfigReader, configReader } from './config-reader.js';
import { openSafetensors } from './safetensors.js';
import { FIXTURES } from './test-helpers.js';

/** The tensors of Mamba2ForCausalLM (transformers modeling_mamba2.py), derived from config.json. */
function mamba2Weights(c: ConfigReader): ExpectedTensor[] {
  const d = c.positiveInt('hidden_size');
  const inner = c.positiveInt('expand') * d;
  const heads = c.positiveInt('num_heads');
  const groupState = c.positiveInt('n_groups') * c.positiveInt('state_size');
  const conv = inner + 2 * groupState;
  const out: ExpectedTensor[] = [{ name: 'backbone.embeddings.weight', shape: [c.positiveInt('vocab_size'), d], dtype: ['F32', 'BF16', 'F16'] }];
  for (let i = 0; i < c.positiveInt('num_hidden_layers'); i++) {
    const p = `backbone.layers.${i}`;
    out.push(
      { name: `${p}.norm.weight`, shape: [d] },
      { name: `${p}.mixer.A_log`, shape: [heads], dtype: 'F32' },
      { name: `${p}.mixer.D`, shape: [heads] },
      { name: `${p}.mixer.dt_bias`, shape: [heads] },
      { name: `${p}.mixer.conv1d.weight`, shape: [conv, 1, c.positiveInt('conv_kernel')] },
      { name: `${p}.mixer.conv1d.bias`, shape: [conv] },
      { name: `${p}.mixer.in_proj.weight`, shape: [2 * inner + 2 * groupState + heads, d] },
      { name: `${p}.mixer.norm.weight`, shape: [inner] },
      { name: `${p}.mixer.out_proj.weight`, shape: [d, inner] },
    );
  }
  out.push({ name: 'backbone.norm_f.weight', shape: [d] }, { name: 'lm_head.weight', shape: [-1, d], optional: true });
  return out;
}

const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

async function fixture() {
  const config = JSON.parse(await readFile(join(FIXTURES, 'mamba2', 'config.json'), 'utf8'));
  const checkpoint = await openSafetensors(join(FIXTURES, 'mamba2', 'model.safetensors'));
  opened.push(checkpoint);
  return { config, checkpoint };
}

describe('checkWeights', () => {
  it('passes when the checkpoint matches the weights derived from config.json', async () => {
    const { config, checkpoint } = await fixture();
    const found = await checkWeights(checkpoint, mamba2Weights(configReader(config)));
    expect(found.size).toBe(20);
    expect(found.get('backbone.norm_f.weight')?.shape).toEqual([64]);
  });

  it('a config that disagrees with the tensors reports every shape mismatch with its file, in one error', async () => {
    const { config, checkpoint } = await fixture();
    const wrong = mamba2Weights(configReader({ ...config, state_size: 16 }));
    const error = await checkWeights(checkpoint, wrong).then(
      () => {
        throw new Error('expected a WeightsMismatchError');
      },
      (e: unknown) => e as WeightsMismatchError,
    );
    expect(error).toBeInstanceOf(WeightsMismatchError);
    expect(error.code).toBe('CHECKPOINT_WEIGHTS_MISMATCH');
    // conv1d weight and bias and in_proj, in both layers
    expect(error.report.shapeMismatches.map((m) => m.name).sort()).toEqual(
      [0, 1].flatMap((i) => [`backbone.layers.${i}.mixer.conv1d.bias`, `backbone.layers.${i}.mixer.conv1d.weight`, `backbone.layers.${i}.mixer.in_proj.weight`]).sort(),
    );
    expect(error.message).toContain(`${checkpoint.name}: backbone.layers.0.mixer.in_proj.weight has shape [328,64], expected [296,64]`);
    expect(error.report.missing).toEqual([]);
    expect(error.report.unused).toEqual([]);
  });

  it('reports missing, unused, shape and dtype problems together', async () => {
    const { config, checkpoint } = await fixture();
    const expected = mamba2Weights(configReader({ ...config, num_hidden_layers: 3 })).filter((t) => t.name !== 'backbone.layers.0.norm.weight');
    expected.push({ name: 'backbone.norm_f.weight', shape: [64], dtype: 'BF16' });
    const error = await checkWeights(checkpoint, expected).then(
      () => {
        throw new Error('expected a WeightsMismatchError');
      },
      (e: unknown) => e as WeightsMismatchError,
    );
    expect(error.report.missing.map((t) => t.name)).toHaveLength(9);
    expect(error.report.missing.every((t) => t.name.startsWith('backbone.layers.2.'))).toBe(true);
    expect(error.report.unused.map((t) => t.name)).toEqual(['backbone.layers.0.norm.weight']);
    expect(error.report.dtypeMismatches).toEqual([{ name: 'backbone.norm_f.weight', file: checkpoint.name, expected: 'BF16', actual: 'F32' }]);
    expect(error.message).toMatch(/9 missing:\n\s+backbone\.layers\.2\./);
    expect(error.message).toMatch(/1 unused:\n.*backbone\.layers\.0\.norm\.weight \[64\]/);
    expect(error.message).toMatch(/1 with the wrong dtype/);
    expect(error.tensor).toBe('backbone.layers.2.norm.weight');
  });

  it('ignoreUnused accepts everything, a pattern or a predicate', async () => {
    const { checkpoint } = await fixture();
    const infos = await checkpoint.infos();
    const only = [{ name: 'backbone.norm_f.weight', shape: [64] }];
    expect(compareWeights(infos, only).unused.length).toBe(19);
    expect(compareWeights(infos, only, { ignoreUnused: true }).unused.length).toBe(0);
    expect(compareWeights(infos, only, { ignoreUnused: /layers\.1\./ }).unused.length).toBe(10);
    expect(compareWeights(infos, only, { ignoreUnused: (n) => n.endsWith('.D') }).unused.length).toBe(17);
    await expect(checkWeights(infos, only, { ignoreUnused: true })).resolves.toBeInstanceOf(Map);
  });
});
