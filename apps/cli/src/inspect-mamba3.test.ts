/** `statespace inspect` and `statespace generate` on Mamba-3 checkpoints in mamba_ssm's format (fixtures/mamba3). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from './main.js';

const DIR = fileURLToPath(new URL('../../../fixtures/mamba3/', import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += t), err: (t) => (err += t), isTTY: false });
  return { code, out, err };
}

describe('Mamba-3 folders through the CLI', () => {
  it('inspect describes the Mamba-3 layers: SISO / MIMO rank, rotary share, output norm, state size', async () => {
    const r = await cli('inspect', `${DIR}mimo-r4`, '--json');
    expect(r.code, r.err).toBe(0);
    const info = JSON.parse(r.out);
    expect(info).toMatchObject({ architecture: 'MambaLMHeadModel', modelType: 'mamba_ssm', ssmLayer: 'Mamba3', pattern: 'MM', layers: 2, hiddenSize: 36, vocabSize: 203, paddedVocabSize: 208, mixers: { mamba3: 2 } });
    expect(info.mamba3).toEqual({ mimo: true, rank: 4, ropeFraction: 0.5, rotaryAngles: 3, heads: 6, headDim: 12, stateSize: 12, groups: 2, aFloor: 0.4, outProjNorm: false });
    // per layer and head: S (12·12), v_prev (4·12), and one P-tile's k_prev (4·12) and 3 angles, in f32
    expect(info.stateBytesFixed).toBe(2 * 4 * 6 * (144 + 48 + 48 + 3));
    expect(info.kvBytesPerToken).toBe(0);
    const text = await cli('inspect', `${DIR}siso-rope-full-norm`);
    expect(text.out).toContain('ssm_cfg.layer Mamba3');
    expect(text.out).toContain('mamba3: SISO, 7 heads x 16, d_state 16, 1 group, rope_fraction 1 (8 angles), A_floor 0.0001, output norm');
  });

  it('generate gives the fixture greedy tokens', async () => {
    const ref = JSON.parse(readFileSync(`${DIR}siso-rope-half/reference.json`, 'utf8'));
    const r = await cli('generate', `${DIR}siso-rope-half`, '--ids', ref.input_ids.join(','), '--max-new-tokens', '16', '--greedy', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).tokens).toEqual(ref.greedy_new_tokens);
  });
});
