/** `statespace inspect` on the families of issue 21: LFM2, Nemotron-H with MoE layers, Falcon-H1 with mamba_rms_norm. */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from './main.js';

const FIXTURES = fileURLToPath(new URL('../../../fixtures/hf-tiny/', import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += t), err: (t) => (err += t), isTTY: false });
  return { code, out, err };
}

describe('inspect describes the newer families', () => {
  it('lfm2: short convs and attention, their fixed and per-token state', async () => {
    const r = await cli('inspect', `${FIXTURES}lfm2`, '--json');
    expect(r.code, r.err).toBe(0);
    const info = JSON.parse(r.out);
    expect(info).toMatchObject({ architecture: 'Lfm2ForCausalLM', modelType: 'lfm2', pattern: 'CCACA', mixers: { short_conv: 3, attention: 2 }, channels: { glu: 5 } });
    expect(info.stateBytesFixed).toBe(3 * 64 * 2 * 4); // 3 conv layers: (hidden 64, k-1 = 2) f32
    expect(info.kvBytesPerToken).toBe(2 * 2 * 2 * 16 * 4); // 2 attention layers, K and V of 2 heads x 16
    // every weight counted once: the same total as the checkpoint's parameters (tied head)
    expect(info.parameters).toBe(311552);
    const text = await cli('inspect', `${FIXTURES}lfm2`);
    expect(text.out).toContain('mixers: short_conv x3, attention x2; feed-forward: glu x5');
  });

  it('nemotron_h with MoE layers: the router, groups, shared expert and latent size', async () => {
    const r = await cli('inspect', `${FIXTURES}nemotron_h_moe`, '--json');
    expect(r.code, r.err).toBe(0);
    const info = JSON.parse(r.out);
    expect(info).toMatchObject({ pattern: 'ME*-E', channels: { moe_relu2: 2, relu2: 1 }, moe: { experts: 16, topK: 3, router: 'sigmoid_grouped', groups: 4, groupsKept: 2, scale: 2.5, normTopK: true, sharedExpert: true } });
    expect(info.parameters).toBe(241624 + 2 * 16); // transformers' parameters plus the two routers' correction-bias buffers
    const latent = JSON.parse((await cli('inspect', `${FIXTURES}nemotron_h_moe_latent`, '--json')).out);
    expect(latent.moe).toMatchObject({ experts: 8, topK: 2, latentSize: 32, normTopK: false });
    const text = await cli('inspect', `${FIXTURES}nemotron_h_moe`);
    expect(text.out).toContain('moe: 16 experts, top 3 (sigmoid scores + correction bias, 2 of 4 groups, scale 2.5, renormalised), shared expert');
  });

  it('falcon_h1 with mamba_rms_norm and projectors_bias loads its spec', async () => {
    const info = JSON.parse((await cli('inspect', `${FIXTURES}falcon_h1_rmsnorm`, '--json')).out);
    expect(info).toMatchObject({ architecture: 'FalconH1ForCausalLM', pattern: 'PPP', mixers: { mamba2: 3, attention: 3 } });
    expect(info.parameters).toBe(224648);
  });
});
