/**
 * mamba_ssm's own checkpoint format: `MambaLMHeadModel` (state-spaces/mamba
 * `mamba_ssm/models/mixer_seq_simple.py`, `config_mamba.py`), as the
 * state-spaces/mamba-* and mamba2-* checkpoints ship it. A `config.json` of
 * `MambaConfig` keys (no `model_type`) and weights named
 *
 *   backbone.embedding.weight                  (padded_vocab, d_model)
 *   backbone.layers.N.norm.weight [.bias]      the mixer's pre-norm (RMSNorm, or LayerNorm when rms_norm is false)
 *   backbone.layers.N.mixer.*                  Mamba (mamba_simple.py), Mamba2 (mamba2.py), Mamba3 (mamba3.py) or MHA (mha.py)
 *   backbone.layers.N.norm2.weight, mlp.fc1.weight, mlp.fc2.weight   GatedMLP (mlp.py) when d_intermediate > 0
 *   backbone.norm_f.weight, lm_head.weight     (lm_head tied to the embedding when tie_embeddings)
 *
 * Block (modules/block.py, the fused_add_norm path): h += mixer(norm(h)); h += mlp(norm2(h)).
 * The norms' eps is 1e-5 (MixerModel's norm_epsilon, not in the config); Mamba2's gated
 * RMSNorm has eps 1e-5 and groups of d_ssm / ngroups features.
 *
 * Mapped onto the existing mixers through a {@link viewCheckpoint} (no copies):
 * MHA's fused `in_proj` (q, k, v rows) becomes q_proj / k_proj / v_proj and
 * `out_proj` o_proj; GatedMLP's `fc1` = [y, gate] becomes up / gate; the padded
 * vocabulary is cut to `vocab_size` rows.
 *
 * Vocabulary: mamba_ssm pads the embedding and lm_head to a multiple of
 * `pad_vocab_size_multiple` and returns padded logits. statespace exposes the
 * `vocab_size` real logits only (the spec's vocabSize; the padded rows are never
 * uploaded), so logits, argmax and sampling can never produce a padded id, and
 * token ids at or past `vocab_size` are refused as input like any out-of-range id.
 */
import { type Checkpoint, type ConfigReader, type TensorView, configReader, viewCheckpoint } from '@statespace/checkpoint';
import { StatespaceError } from '@statespace/core';
import type { BlockSpec, MixerSpec, ModelSpec, NormSpec } from '../spec.js';

/** mamba_ssm's norm epsilon (MixerModel's `norm_epsilon`, and the gated RMSNorm's in Mamba2): not in config.json. */
const EPS = 1e-5;

/** Keys of `ssm_cfg` that only initialise parameters or pick kernels: they do not change what a checkpoint computes. */
const MAMBA1_INERT = ['dt_min', 'dt_max', 'dt_init', 'dt_scale', 'dt_init_floor', 'use_fast_path', 'layer_idx'];
const MAMBA2_INERT = ['conv_init', 'A_init_range', 'dt_min', 'dt_max', 'dt_init_floor', 'use_mem_eff_path', 'layer_idx', 'process_group', 'sequence_parallel'];
const MAMBA1_KEYS = ['layer', 'd_state', 'd_conv', 'expand', 'dt_rank', 'conv_bias', 'bias', ...MAMBA1_INERT];
const MAMBA2_KEYS = ['layer', 'd_state', 'd_conv', 'expand', 'headdim', 'd_ssm', 'ngroups', 'D_has_hdim', 'rmsnorm', 'norm_before_gate', 'dt_limit', 'bias', 'conv_bias', 'chunk_size', ...MAMBA2_INERT];
const MAMBA3_INERT = ['dt_min', 'dt_max', 'dt_init_floor', 'chunk_size', 'dropout', 'layer_idx', 'n_layer'];
const MAMBA3_KEYS = ['layer', 'd_state', 'expand', 'headdim', 'ngroups', 'rope_fraction', 'A_floor', 'is_outproj_norm', 'is_mimo', 'mimo_rank', ...MAMBA3_INERT];
const ATTN_KEYS = ['num_heads', 'num_heads_kv', 'head_dim', 'mlp_dim', 'qkv_proj_bias', 'out_proj_bias', 'softmax_scale', 'causal', 'd_conv', 'rotary_emb_dim', 'rotary_emb_base', 'rotary_emb_interleaved', 'layer_idx'];

/** The Mamba-1 layer of `ssm_cfg.layer: "Mamba1"` (mamba_simple.Mamba). */
export interface MambaSsmMamba1 {
  layer: 'Mamba1';
  dState: number;
  dConv: number;
  expand: number;
  dtRank: number;
  convBias: boolean;
  bias: boolean;
}

/** The Mamba-2 layer of `ssm_cfg.layer: "Mamba2"` (mamba2.Mamba2). */
export interface MambaSsmMamba2 {
  layer: 'Mamba2';
  dState: number;
  dConv: number;
  expand: number;
  headdim: number;
  ngroups: number;
  rmsnorm: boolean;
  normBeforeGate: boolean;
  dtLimit: [number, number];
  bias: boolean;
  convBias: boolean;
  chunkSize: number;
}

/** The Mamba-3 layer of `ssm_cfg.layer: "Mamba3"` (mamba3.Mamba3). */
export interface MambaSsmMamba3 {
  layer: 'Mamba3';
  dState: number;
  /** d_inner = int(expand·d_model) */
  dInner: number;
  headdim: number;
  ngroups: number;
  ropeFraction: 0.5 | 1;
  aFloor: number;
  outProjNorm: boolean;
  mimo: boolean;
  /** R: 1 unless is_mimo */
  mimoRank: number;
}

/** The attention layer of `attn_cfg` (mha.MHA). */
export interface MambaSsmAttention {
  numHeads: number;
  numHeadsKv: number;
  headDim: number;
  qkvProjBias: boolean;
  outProjBias: boolean;
  softmaxScale?: number;
  rotaryEmbDim: number;
  rotaryEmbBase: number;
}

/** A `MambaConfig` (config_mamba.py) with mamba_ssm's defaults. */
export interface MambaSsmConfig {
  dModel: number;
  nLayer: number;
  /** GatedMLP hidden size after mamba_ssm's rounding up to a multiple of 128 (0: no MLP). */
  dIntermediate: number;
  /** The real vocabulary: the logits statespace returns. */
  vocabSize: number;
  /** Rows of the embedding and lm_head in the checkpoint (vocab_size rounded up to pad_vocab_size_multiple). */
  paddedVocabSize: number;
  ssm: MambaSsmMamba1 | MambaSsmMamba2 | MambaSsmMamba3;
  attnLayerIdx: number[];
  attn?: MambaSsmAttention;
  rmsNorm: boolean;
  tieEmbeddings: boolean;
}

function unsupported(c: ConfigReader, key: string, why: string): StatespaceError {
  return new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: mamba_ssm ${key} ${why}`);
}

function checkKeys(c: ConfigReader, section: ConfigReader, name: string, known: string[]): void {
  for (const key of Object.keys(section.json)) {
    if (!known.includes(key) && section.json[key] !== null) throw unsupported(c, `${name}.${key}`, 'is not an option statespace knows; refusing rather than ignoring it');
  }
}

/**
 * True for a mamba_ssm `MambaConfig` (`d_model` and `n_layer`, no `model_type`).
 *
 * @example
 * ```ts
 * isMambaSsmConfig(await (await openModel('fixtures/mamba-ssm/mamba2')).config()); // true
 * ```
 */
export function isMambaSsmConfig(c: ConfigReader): boolean {
  return !c.has('model_type') && c.has('d_model') && c.has('n_layer');
}

/**
 * Reads a mamba_ssm `config.json`, with `MambaConfig`'s defaults.
 *
 * @throws StatespaceError `UNSUPPORTED_CONFIG` naming the key: an `ssm_cfg.layer` other than
 *   Mamba1 / Mamba2 / Mamba3, options that change the function and have no mixer here
 *   (`d_ssm` < d_inner, `D_has_hdim`, MHA `d_conv` / `mlp_dim` / interleaved rotary /
 *   non-causal), `fused_add_norm: false` with an MLP, unknown options.
 * @example
 * ```ts
 * const cfg = parseMambaSsmConfig(await (await openModel('fixtures/mamba-ssm/hybrid')).config());
 * console.log(cfg.ssm.layer, cfg.attnLayerIdx, cfg.vocabSize, cfg.paddedVocabSize); // Mamba2 [1] 331 336
 * ```
 */
export function parseMambaSsmConfig(c: ConfigReader): MambaSsmConfig {
  const dModel = c.positiveInt('d_model');
  const nLayer = c.positiveInt('n_layer');
  const vocabSize = c.optional.positiveInt('vocab_size', 50277);
  const multiple = c.optional.positiveInt('pad_vocab_size_multiple', 8);
  const dIntermediateRaw = c.optional.nonNegativeInt('d_intermediate', 0);
  const dIntermediate = Math.ceil(dIntermediateRaw / 128) * 128;
  const fusedAddNorm = c.optional.bool('fused_add_norm', true);
  if (!fusedAddNorm && dIntermediate > 0) {
    // block.py's unfused path feeds the MLP the mixer output without norm2 (and norm2's output to the residual): not the model the fused path trains.
    throw unsupported(c, 'fused_add_norm', 'false with d_intermediate > 0 is not supported (mamba_ssm\'s unfused Block applies norm2 to the residual, not to the MLP input)');
  }
  if (c.optional.bool('bidirectional', false)) throw unsupported(c, 'bidirectional', 'true is not supported (a causal LM only)');
  c.optional.bool('residual_in_fp32', true); // statespace keeps the residual in f32 anyway

  const s = c.optional.object('ssm_cfg') ?? configReader({}, c.file);
  const layer = s.optional.string('layer', 'Mamba1');
  let ssm: MambaSsmMamba1 | MambaSsmMamba2 | MambaSsmMamba3;
  if (layer === 'Mamba1') {
    checkKeys(c, s, 'ssm_cfg', MAMBA1_KEYS);
    const rank = s.raw('dt_rank');
    ssm = {
      layer,
      dState: s.optional.positiveInt('d_state', 16),
      dConv: s.optional.positiveInt('d_conv', 4),
      expand: s.optional.positiveInt('expand', 2),
      dtRank: rank === undefined || rank === null || rank === 'auto' ? Math.ceil(dModel / 16) : s.positiveInt('dt_rank'),
      convBias: s.optional.bool('conv_bias', true),
      bias: s.optional.bool('bias', false),
    };
  } else if (layer === 'Mamba2') {
    checkKeys(c, s, 'ssm_cfg', MAMBA2_KEYS);
    const expand = s.optional.positiveInt('expand', 2);
    const headdim = s.optional.positiveInt('headdim', 64);
    const ngroups = s.optional.positiveInt('ngroups', 1);
    const dInner = expand * dModel;
    if (s.has('d_ssm') && s.positiveInt('d_ssm') !== dInner) throw unsupported(c, 'ssm_cfg.d_ssm', `${s.int('d_ssm')} (below d_inner = ${dInner}: the extra gated MLP inside the mixer) is not supported`);
    if (s.optional.bool('D_has_hdim', false)) throw unsupported(c, 'ssm_cfg.D_has_hdim', 'true (a D per channel) is not supported');
    if (dInner % headdim !== 0) throw unsupported(c, 'ssm_cfg.headdim', `${headdim} does not divide d_inner = ${dInner}`);
    if ((dInner / headdim) % ngroups !== 0 || dInner % ngroups !== 0) throw unsupported(c, 'ssm_cfg.ngroups', `${ngroups} does not divide the ${dInner / headdim} heads`);
    const limit = s.optional.numberArray('dt_limit', 2);
    ssm = {
      layer,
      dState: s.optional.positiveInt('d_state', 128),
      dConv: s.optional.positiveInt('d_conv', 4),
      expand,
      headdim,
      ngroups,
      rmsnorm: s.optional.bool('rmsnorm', true),
      normBeforeGate: s.optional.bool('norm_before_gate', false),
      dtLimit: limit ? [limit[0], limit[1]] : [0, Infinity],
      bias: s.optional.bool('bias', false),
      convBias: s.optional.bool('conv_bias', true),
      chunkSize: s.optional.positiveInt('chunk_size', 256),
    };
  } else if (layer === 'Mamba3') {
    checkKeys(c, s, 'ssm_cfg', MAMBA3_KEYS);
    const dInner = Math.floor(s.optional.positiveNumber('expand', 2) * dModel);
    const headdim = s.optional.positiveInt('headdim', 64);
    const ngroups = s.optional.positiveInt('ngroups', 1);
    if (dInner % headdim !== 0) throw unsupported(c, 'ssm_cfg.headdim', `${headdim} does not divide d_inner = ${dInner}`);
    if ((dInner / headdim) % ngroups !== 0) throw unsupported(c, 'ssm_cfg.ngroups', `${ngroups} does not divide the ${dInner / headdim} heads`);
    const rope = s.optional.positiveNumber('rope_fraction', 0.5);
    if (rope !== 0.5 && rope !== 1) throw unsupported(c, 'ssm_cfg.rope_fraction', `${rope} is not 0.5 or 1 (mamba3.py asserts one of them)`);
    const floor = s.raw('A_floor') ?? 1e-4;
    if (typeof floor !== 'number' || !(floor >= 0)) throw unsupported(c, 'ssm_cfg.A_floor', `${JSON.stringify(floor)} is not a non-negative number`);
    const mimo = s.optional.bool('is_mimo', false);
    ssm = {
      layer,
      dState: s.optional.positiveInt('d_state', 128),
      dInner,
      headdim,
      ngroups,
      ropeFraction: rope,
      aFloor: floor,
      outProjNorm: s.optional.bool('is_outproj_norm', false),
      mimo,
      mimoRank: mimo ? s.optional.positiveInt('mimo_rank', 4) : 1,
    };
  } else {
    throw unsupported(c, 'ssm_cfg.layer', `${JSON.stringify(layer)} is not supported (Mamba1, Mamba2 and Mamba3 are)`);
  }

  const attnLayerIdx = c.optional.intArray('attn_layer_idx') ?? [];
  for (const i of attnLayerIdx) if (i < 0 || i >= nLayer) throw unsupported(c, 'attn_layer_idx', `names layer ${i} of ${nLayer}`);
  let attn: MambaSsmAttention | undefined;
  if (attnLayerIdx.length > 0) {
    const a = c.object('attn_cfg');
    checkKeys(c, a, 'attn_cfg', ATTN_KEYS);
    const numHeads = a.positiveInt('num_heads');
    if (!a.optional.bool('causal', false)) throw unsupported(c, 'attn_cfg.causal', 'false (bidirectional attention) is not supported in a causal LM');
    if (a.optional.nonNegativeInt('d_conv', 0) > 0) throw unsupported(c, 'attn_cfg.d_conv', '> 0 (a causal conv on q, k, v) is not supported');
    if (a.optional.nonNegativeInt('mlp_dim', 0) > 0) throw unsupported(c, 'attn_cfg.mlp_dim', '> 0 (a gated MLP fused into the attention projections) is not supported');
    if (a.optional.bool('rotary_emb_interleaved', false)) throw unsupported(c, 'attn_cfg.rotary_emb_interleaved', 'true (GPT-J style pairs) is not supported');
    const headDim = a.optional.positiveInt('head_dim', dModel / numHeads);
    attn = {
      numHeads,
      numHeadsKv: a.optional.positiveInt('num_heads_kv', numHeads),
      headDim,
      qkvProjBias: a.optional.bool('qkv_proj_bias', true),
      outProjBias: a.optional.bool('out_proj_bias', true),
      softmaxScale: a.has('softmax_scale') ? a.positiveNumber('softmax_scale') : undefined,
      rotaryEmbDim: a.optional.nonNegativeInt('rotary_emb_dim', 0),
      rotaryEmbBase: a.optional.positiveNumber('rotary_emb_base', 10000),
    };
    if (!Number.isInteger(headDim)) throw unsupported(c, 'attn_cfg.num_heads', `${numHeads} does not divide d_model = ${dModel} (give head_dim)`);
  }
  return {
    dModel,
    nLayer,
    dIntermediate,
    vocabSize,
    paddedVocabSize: vocabSize % multiple === 0 ? vocabSize : vocabSize + multiple - (vocabSize % multiple),
    ssm,
    attnLayerIdx,
    attn,
    rmsNorm: c.optional.bool('rms_norm', true),
    tieEmbeddings: c.optional.bool('tie_embeddings', true),
  };
}

function norm(cfg: MambaSsmConfig, weight: string): NormSpec {
  return { kind: cfg.rmsNorm ? 'rms' : 'layer', weight, eps: EPS };
}

function ssmMixer(cfg: MambaSsmConfig, prefix: string): MixerSpec {
  const s = cfg.ssm;
  if (s.layer === 'Mamba3') {
    return {
      kind: 'mamba3',
      prefix,
      config: {
        hiddenSize: cfg.dModel,
        numHeads: s.dInner / s.headdim,
        headDim: s.headdim,
        stateSize: s.dState,
        nGroups: s.ngroups,
        ropeFraction: s.ropeFraction,
        aFloor: s.aFloor,
        mimo: s.mimo,
        ...(s.mimo ? { mimoRank: s.mimoRank } : {}),
        outProjNorm: s.outProjNorm,
        normEps: EPS,
      },
    };
  }
  const dInner = s.expand * cfg.dModel;
  if (s.layer === 'Mamba1') {
    return {
      kind: 'mamba1',
      prefix,
      config: { hiddenSize: cfg.dModel, intermediateSize: dInner, stateSize: s.dState, convKernel: s.dConv, timeStepRank: s.dtRank, useBias: s.bias, useConvBias: s.convBias, bcdtNorm: 'none', normEps: EPS },
    };
  }
  return {
    kind: 'mamba2',
    prefix,
    config: {
      hiddenSize: cfg.dModel,
      numHeads: dInner / s.headdim,
      headDim: s.headdim,
      stateSize: s.dState,
      nGroups: s.ngroups,
      convKernel: s.dConv,
      chunkSize: s.chunkSize,
      useConvBias: s.convBias,
      useBias: s.bias,
      timeStepLimit: s.dtLimit,
      normEps: EPS,
      normGroupSize: dInner / s.ngroups,
      ...(s.rmsnorm ? {} : { gatedNorm: false }),
      ...(s.normBeforeGate ? { normBeforeGate: true } : {}),
    },
  };
}

function attentionMixer(cfg: MambaSsmConfig, prefix: string): MixerSpec {
  const a = cfg.attn!;
  return {
    kind: 'attention',
    prefix,
    config: {
      hiddenSize: cfg.dModel,
      numHeads: a.numHeads,
      numKeyValueHeads: a.numHeadsKv,
      headDim: a.headDim,
      rope: a.rotaryEmbDim > 0 ? { theta: a.rotaryEmbBase, rotaryDim: a.rotaryEmbDim } : null,
      ...(a.softmaxScale !== undefined ? { scale: a.softmaxScale } : {}),
      qkvBias: a.qkvProjBias,
      oBias: a.outProjBias,
    },
  };
}

/**
 * The layer stack of a mamba_ssm model, with statespace's names for the
 * viewed tensors (see {@link mambaSsmViews}).
 *
 * @example
 * ```ts
 * const spec = mambaSsmSpec(parseMambaSsmConfig(config));
 * patternOf(spec); // 'MAM' for fixtures/mamba-ssm/hybrid
 * ```
 */
export function mambaSsmSpec(cfg: MambaSsmConfig, architecture = 'MambaLMHeadModel'): ModelSpec {
  const attn = new Set(cfg.attnLayerIdx);
  const blocks: BlockSpec[] = [];
  for (let i = 0; i < cfg.nLayer; i++) {
    const p = `backbone.layers.${i}.`;
    const block: BlockSpec = {
      label: attn.has(i) ? 'A' : 'M',
      mixerNorm: norm(cfg, `${p}norm.weight`),
      mixers: [attn.has(i) ? attentionMixer(cfg, `${p}mixer.`) : ssmMixer(cfg, `${p}mixer.`)],
    };
    if (cfg.dIntermediate > 0) {
      block.channelNorm = norm(cfg, `${p}norm2.weight`);
      block.channel = { kind: 'glu', prefix: `${p}mlp.`, names: { gate: 'gate.weight', up: 'up.weight', down: 'fc2.weight' }, act: 'silu', intermediate: cfg.dIntermediate };
    }
    blocks.push(block);
  }
  return {
    architecture,
    vocabSize: cfg.vocabSize,
    hiddenSize: cfg.dModel,
    embedding: 'backbone.embedding.weight',
    blocks,
    finalNorm: norm(cfg, 'backbone.norm_f.weight'),
    lmHead: cfg.tieEmbeddings ? 'backbone.embedding.weight' : 'lm_head.weight',
  };
}

/**
 * The tensors statespace reads, as views of mamba_ssm's: the vocabulary cut to
 * `vocab_size` rows, MHA's `in_proj` split into q / k / v and `out_proj` as
 * o_proj, GatedMLP's `fc1` = [y, gate] split into up / gate.
 *
 * @example
 * ```ts
 * const views = mambaSsmViews(cfg);
 * views['backbone.layers.1.mixer.k_proj.weight']; // { source: 'backbone.layers.1.mixer.in_proj.weight', rows: [32, 48] }
 * ```
 */
export function mambaSsmViews(cfg: MambaSsmConfig): Record<string, TensorView> {
  const v: Record<string, TensorView> = { 'backbone.embedding.weight': { source: 'backbone.embedding.weight', rows: [0, cfg.vocabSize] } };
  if (!cfg.tieEmbeddings) v['lm_head.weight'] = { source: 'lm_head.weight', rows: [0, cfg.vocabSize] };
  const attn = new Set(cfg.attnLayerIdx);
  for (let i = 0; i < cfg.nLayer; i++) {
    const p = `backbone.layers.${i}.`;
    if (attn.has(i)) {
      const a = cfg.attn!;
      const q = a.numHeads * a.headDim;
      const kv = a.numHeadsKv * a.headDim;
      const parts: [string, [number, number]][] = [['q_proj', [0, q]], ['k_proj', [q, q + kv]], ['v_proj', [q + kv, q + 2 * kv]]];
      for (const [name, rows] of parts) {
        v[`${p}mixer.${name}.weight`] = { source: `${p}mixer.in_proj.weight`, rows };
        if (a.qkvProjBias) v[`${p}mixer.${name}.bias`] = { source: `${p}mixer.in_proj.bias`, rows };
      }
      v[`${p}mixer.o_proj.weight`] = { source: `${p}mixer.out_proj.weight` };
      if (a.outProjBias) v[`${p}mixer.o_proj.bias`] = { source: `${p}mixer.out_proj.bias` };
    }
    if (cfg.dIntermediate > 0) {
      const I = cfg.dIntermediate;
      v[`${p}mlp.up.weight`] = { source: `${p}mlp.fc1.weight`, rows: [0, I] };
      v[`${p}mlp.gate.weight`] = { source: `${p}mlp.fc1.weight`, rows: [I, 2 * I] };
    }
  }
  return v;
}

/**
 * A mamba_ssm checkpoint seen with statespace's tensor names (views, no copies).
 *
 * @example
 * ```ts
 * const checkpoint = mambaSsmCheckpoint(config, await folder.weights());
 * ```
 */
export function mambaSsmCheckpoint(c: ConfigReader, checkpoint: Checkpoint): Checkpoint {
  return viewCheckpoint(checkpoint, mambaSsmViews(parseMambaSsmConfig(c)));
}
