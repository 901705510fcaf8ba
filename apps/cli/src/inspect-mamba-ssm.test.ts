/** `statespace inspect` and `statespace generate` on mamba_ssm-format folders (fixtures/mamba-ssm). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from './main.js';

const DIR = fileURLToPath(new URL('../../../fixtures/mamba-ssm/', import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += t), err: (t) => (err += t), isTTY: false });
  return { code, out, err };
}

describe('mamba_ssm folders through the CLI', () => {
  it('inspect describes the format, the layer kind, the pattern and the padded vocabulary', async () => {
    const r = await cli('inspect', `${DIR}hybrid`, '--json');
    expect(r.code, r.err).toBe(0);
    const info = JSON.parse(r.out);
    expect(info).toMatchObject({ architecture: 'MambaLMHeadModel', modelType: 'mamba_ssm', ssmLayer: 'Mamba2', pattern: 'MAM', layers: 3, hiddenSize: 32, vocabSize: 331, paddedVocabSize: 336 });
    expect(info.kvBytesPerToken).toBe(2 * 2 * 8 * 4); // one MHA layer, 2 KV heads of 8
    const text = await cli('inspect', `${DIR}mamba1`);
    expect(text.out).toContain('MambaLMHeadModel  (mamba_ssm)');
    expect(text.out).toContain('vocab 331 (padded to 336 in the checkpoint');
    expect(text.out).toContain('ssm_cfg.layer Mamba1');
  });

  it('generate from a pytorch_model.bin gives transformers greedy tokens', async () => {
    const ref = JSON.parse(readFileSync(`${DIR}mamba2/reference.json`, 'utf8'));
    const r = await cli('generate', `${DIR}mamba2`, '--ids', ref.input_ids.join(','), '--max-new-tokens', '16', '--greedy', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).tokens).toEqual(ref.greedy_new_tokens);
  });
});
