/**
 * mamba_ssm's own checkpoint format (MambaLMHeadModel: config.json of MambaConfig keys,
 * pytorch_model.bin, padded vocabulary) against transformers 5.17's outputs for the
 * same function (fixtures/mamba-ssm, made by tools/fixtures/make_mamba_ssm_fixtures.py):
 * logits within 1e-4, argmax at every position, 16 greedy tokens through Session.
 */
import { type ModelFiles, configReader, openModel } from '@statespace/checkpoint';
import { Runtime, StatespaceError } from '@statespace/core';
import { maxAbsError } from '@statespace/core/testing';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMambaSsmConfig, mambaSsmSpec, mambaSsmViews, parseMambaSsmConfig } from './families/mamba-ssm.js';
import { familyOf } from './families/index.js';
import { type LoadedModel, loadModel, readModelSpec } from './load.js';
import { argmaxHost } from './sampling.js';
import { Session } from './session.js';
import { patternOf } from './spec.js';
import { type Reference, parityBound, referenceRows } from './testing/fixtures.js';

const rt = await Runtime.create();
const DIR = fileURLToPath(new URL('../../../fixtures/mamba-ssm/', import.meta.url));
const ref = (name: string) => JSON.parse(readFileSync(`${DIR}${name}/reference.json`, 'utf8')) as Reference & { padded_logits_argmax: number[]; vocab_size: number };

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

/** The folder with one weights file hidden, to load the other one. */
async function without(name: string, hidden: string): Promise<ModelFiles> {
  const files = (await openModel(`${DIR}${name}`)).files;
  return { ...files, exists: async (f) => f !== hidden && (await files.exists(f)), source: (f) => (f === hidden ? files.source('absent-on-purpose') : files.source(f)) };
}

const CASES: { name: string; pattern: string; source?: () => Promise<ModelFiles | string> }[] = [
  { name: 'mamba1', pattern: 'MM', source: () => without('mamba1', 'model.safetensors') }, // pytorch_model.bin
  { name: 'mamba1', pattern: 'MM' }, // model.safetensors (preferred when present)
  { name: 'mamba2', pattern: 'MM' },
  { name: 'hybrid', pattern: 'MAM' },
];

describe.each(CASES)('mamba_ssm $name ($pattern)', ({ name, pattern, source }) => {
  const r = ref(name);
  let loaded: LoadedModel;
  beforeAll(async () => {
    loaded = await loadModel(rt, (await source?.()) ?? `${DIR}${name}`);
  });
  afterAll(() => loaded.model.dispose());

  it('loads as MambaLMHeadModel with the real vocabulary', () => {
    expect(loaded.family.architecture).toBe('MambaLMHeadModel');
    expect(patternOf(loaded.spec)).toBe(pattern);
    expect(loaded.spec.vocabSize).toBe(331);
  });

  it('logits within 1e-4 and argmax at every position; never a padded id', async () => {
    const session = new Session(loaded.model);
    const [all] = await session.logitsAll(r.input_ids);
    const V = loaded.spec.vocabSize;
    expect(all.length).toBe(r.input_ids.length * V);
    for (const [pos, row] of referenceRows(r)) {
      expect(maxAbsError(all.subarray(pos * V, (pos + 1) * V), row), `position ${pos}`).toBeLessThan(parityBound(row));
    }
    const argmax = r.input_ids.map((_, t) => argmaxHost(all.subarray(t * V, (t + 1) * V)));
    expect(argmax).toEqual(r.logits_argmax);
    // the fixture's padded rows would win the argmax over mamba_ssm's 336 logits almost everywhere
    expect(r.padded_logits_argmax.filter((id) => id >= 331).length).toBeGreaterThan(30);
    session.dispose();
  });

  it('16 greedy tokens equal transformers generate()', async () => {
    const s = new Session(loaded.model);
    expect(await collect(s.generate(r.input_ids, { maxNewTokens: 16, greedy: true, ignoreEos: true }))).toEqual(r.greedy_new_tokens);
    s.dispose();
  });

  it('prefill and token-by-token agree', async () => {
    const a = new Session(loaded.model);
    const [prefill] = await a.prefill(r.input_ids);
    const b = new Session(loaded.model);
    for (const id of r.input_ids.slice(0, 9)) await b.step(id);
    const [rest] = await b.prefill(r.input_ids.slice(9));
    expect(maxAbsError(rest, prefill)).toBeLessThan(1e-4);
    a.dispose();
    b.dispose();
  });
});

describe('mamba_ssm config.json', () => {
  const cfg = (json: Record<string, unknown>) => configReader({ d_model: 64, n_layer: 2, vocab_size: 100, ...json }, 'config.json');
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      if (StatespaceError.is(e)) return `${e.code}: ${e.message}`;
      throw e;
    }
    return 'ok';
  };

  it('is recognised without model_type, and only then', async () => {
    expect(isMambaSsmConfig(cfg({}))).toBe(true);
    expect(familyOf(cfg({})).architecture).toBe('MambaLMHeadModel');
    expect(isMambaSsmConfig(configReader({ model_type: 'mamba', hidden_size: 64 }, 'c'))).toBe(false);
    const { family, spec } = await readModelSpec(`${DIR}hybrid`);
    expect(family.architecture).toBe('MambaLMHeadModel');
    expect(spec.blocks[1].mixers[0].kind).toBe('attention');
    expect(spec.blocks[0].channel).toMatchObject({ kind: 'glu', intermediate: 128 });
  });

  it('takes mamba_ssm defaults: Mamba1, rms_norm, tied head, vocab padded to 8, dt_rank auto', () => {
    const c = parseMambaSsmConfig(cfg({}));
    expect(c).toMatchObject({ vocabSize: 100, paddedVocabSize: 104, rmsNorm: true, tieEmbeddings: true, dIntermediate: 0 });
    expect(c.ssm).toMatchObject({ layer: 'Mamba1', dState: 16, dConv: 4, expand: 2, dtRank: 4 });
    const spec = mambaSsmSpec(c);
    expect(spec.lmHead).toBe(spec.embedding);
    expect(mambaSsmViews(c)['backbone.embedding.weight']).toEqual({ source: 'backbone.embedding.weight', rows: [0, 100] });
  });

  it('maps Mamba2 options: grouped gated norm, norm_before_gate, rmsnorm false, dt_limit; LayerNorm blocks; GatedMLP rounding', () => {
    const c = parseMambaSsmConfig(cfg({ rms_norm: false, d_intermediate: 200, ssm_cfg: { layer: 'Mamba2', headdim: 32, ngroups: 2, norm_before_gate: true, dt_limit: [0.01, 1] } }));
    const spec = mambaSsmSpec(c);
    expect(spec.blocks[0].mixers[0].config).toMatchObject({ numHeads: 4, nGroups: 2, normGroupSize: 64, normBeforeGate: true, timeStepLimit: [0.01, 1], stateSize: 128, chunkSize: 256 });
    expect(spec.blocks[0].mixerNorm).toEqual({ kind: 'layer', weight: 'backbone.layers.0.norm.weight', eps: 1e-5 });
    expect(spec.blocks[0].channel).toMatchObject({ intermediate: 256 }); // GatedMLP's multiple_of=128
    const noNorm = mambaSsmSpec(parseMambaSsmConfig(cfg({ ssm_cfg: { layer: 'Mamba2', headdim: 32, rmsnorm: false } })));
    expect(noNorm.blocks[0].mixers[0].config).toMatchObject({ gatedNorm: false });
  });

  it('maps MHA: in_proj rows to q, k, v (with biases by default), out_proj to o_proj, rotary', () => {
    const c = parseMambaSsmConfig(cfg({ attn_layer_idx: [1], attn_cfg: { num_heads: 4, num_heads_kv: 2, causal: true, rotary_emb_dim: 8, softmax_scale: 0.5 } }));
    const views = mambaSsmViews(c);
    expect(views['backbone.layers.1.mixer.q_proj.weight']).toEqual({ source: 'backbone.layers.1.mixer.in_proj.weight', rows: [0, 64] });
    expect(views['backbone.layers.1.mixer.k_proj.weight']).toEqual({ source: 'backbone.layers.1.mixer.in_proj.weight', rows: [64, 96] });
    expect(views['backbone.layers.1.mixer.v_proj.bias']).toEqual({ source: 'backbone.layers.1.mixer.in_proj.bias', rows: [96, 128] });
    expect(views['backbone.layers.1.mixer.o_proj.bias']).toEqual({ source: 'backbone.layers.1.mixer.out_proj.bias' });
    expect(mambaSsmSpec(c).blocks[1].mixers[0].config).toMatchObject({ numHeads: 4, numKeyValueHeads: 2, headDim: 16, rope: { theta: 10000, rotaryDim: 8 }, scale: 0.5, qkvBias: true, oBias: true });
  });

  it('reads configs shaped like state-spaces/mamba-130m and mamba2-130m; refuses an attention conv (mamba2attn-2.7b)', () => {
    // like state-spaces/mamba-130m's config.json (the 2023 format: no layer, no tie_embeddings, no d_intermediate)
    const m1 = mambaSsmSpec(parseMambaSsmConfig(configReader({ d_model: 768, n_layer: 24, vocab_size: 50277, ssm_cfg: {}, rms_norm: true, residual_in_fp32: true, fused_add_norm: true, pad_vocab_size_multiple: 8 }, 'c')));
    expect(m1.blocks).toHaveLength(24);
    expect(m1.blocks[0].mixers[0]).toMatchObject({ kind: 'mamba1', config: { intermediateSize: 1536, stateSize: 16, timeStepRank: 48 } });
    expect(m1.vocabSize).toBe(50277);
    // state-spaces/mamba2-130m
    const m2c = parseMambaSsmConfig(configReader({ d_model: 768, d_intermediate: 0, n_layer: 24, vocab_size: 50277, ssm_cfg: { layer: 'Mamba2' }, attn_layer_idx: [], attn_cfg: {}, rms_norm: true, residual_in_fp32: true, fused_add_norm: true, pad_vocab_size_multiple: 16, tie_embeddings: true }, 'c'));
    expect(m2c.paddedVocabSize).toBe(50288);
    expect(mambaSsmSpec(m2c).blocks[0].mixers[0].config).toMatchObject({ numHeads: 24, headDim: 64, stateSize: 128, nGroups: 1, normGroupSize: 1536, chunkSize: 256 });
    // a config shaped like state-spaces/mamba2attn-2.7b's: MHA layers with a causal conv over q, k, v (d_conv 4), which no mixer here runs
    const attn = { d_model: 2560, d_intermediate: 0, n_layer: 64, vocab_size: 50277, ssm_cfg: { layer: 'Mamba2' }, attn_layer_idx: [9, 18, 27, 36, 45, 56], attn_cfg: { causal: true, d_conv: 4, head_dim: 128, num_heads: 30, out_proj_bias: false, qkv_proj_bias: false, rotary_emb_dim: 64 }, rms_norm: true, residual_in_fp32: true, fused_add_norm: true, pad_vocab_size_multiple: 16, tie_embeddings: true };
    expect(code(() => parseMambaSsmConfig(configReader(attn, 'c')))).toMatch(/^UNSUPPORTED_CONFIG: .*attn_cfg\.d_conv/);
  });

  it('refuses what it cannot run with UNSUPPORTED_CONFIG naming the key', () => {
    const refusals: [Record<string, unknown>, string][] = [
      [{ ssm_cfg: { layer: 'Mamba4' } }, 'ssm_cfg.layer'],
      [{ ssm_cfg: { layer: 'Mamba3', rope_fraction: 0.25 } }, 'ssm_cfg.rope_fraction'],
      [{ ssm_cfg: { layer: 'Mamba3', headdim: 7 } }, 'ssm_cfg.headdim'],
      [{ ssm_cfg: { layer: 'Mamba3', is_mimo: true, mimo_rnk: 2 } }, 'ssm_cfg.mimo_rnk'],
      [{ ssm_cfg: { layer: 'Mamba2', d_ssm: 64 } }, 'ssm_cfg.d_ssm'],
      [{ ssm_cfg: { layer: 'Mamba2', D_has_hdim: true } }, 'ssm_cfg.D_has_hdim'],
      [{ ssm_cfg: { layer: 'Mamba1', some_new_option: 1 } }, 'ssm_cfg.some_new_option'],
      [{ attn_layer_idx: [0], attn_cfg: { num_heads: 4 } }, 'attn_cfg.causal'],
      [{ attn_layer_idx: [0], attn_cfg: { num_heads: 4, causal: true, d_conv: 4 } }, 'attn_cfg.d_conv'],
      [{ attn_layer_idx: [0], attn_cfg: { num_heads: 4, causal: true, mlp_dim: 256 } }, 'attn_cfg.mlp_dim'],
      [{ attn_layer_idx: [0], attn_cfg: { num_heads: 4, causal: true, rotary_emb_dim: 8, rotary_emb_interleaved: true } }, 'attn_cfg.rotary_emb_interleaved'],
      [{ attn_layer_idx: [5], attn_cfg: { num_heads: 4, causal: true } }, 'attn_layer_idx'],
      [{ fused_add_norm: false, d_intermediate: 128 }, 'fused_add_norm'],
    ];
    for (const [json, key] of refusals) expect(code(() => parseMambaSsmConfig(cfg(json))), key).toMatch(new RegExp(`^UNSUPPORTED_CONFIG: .*${key.replace('.', '\\.')}`));
    expect(code(() => parseMambaSsmConfig(cfg({ fused_add_norm: false })))).toBe('ok'); // without an MLP both paths agree
  });
});
