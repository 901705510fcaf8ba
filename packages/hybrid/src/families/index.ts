/**
 * The architecture families statespace runs, keyed by config.json's
 * `model_type`. Each family is one small module: typed config with
 * transformers' defaults, layer pattern and tensor-name map (a {@link ModelSpec}).
 */
import type { Checkpoint, ConfigReader } from '@statespace/checkpoint';
import { StatespaceError } from '@statespace/core';
import type { ModelSpec } from '../spec.js';
import { falconH1Spec } from './falcon-h1.js';
import { jambaSpec, parseJambaConfig } from './jamba.js';
import { lfm2Spec } from './lfm2.js';
import { llamaSpec, parseLlamaConfig } from './llama.js';
import { mambaSpec, parseMambaConfig } from './mamba.js';
import { mamba2Spec, parseMamba2Config } from './mamba2.js';
import { isMambaSsmConfig, mambaSsmCheckpoint, mambaSsmSpec, parseMambaSsmConfig } from './mamba-ssm.js';
import { bambaSpec, granitePrepareNames, graniteSpec, nemotronHSpec } from './mamba2-hybrids.js';
import { qwen3NextSpec } from './qwen3-next.js';
import { parseZamba2Config, zamba2Spec } from './zamba2.js';

/** A supported family. */
export interface Family {
  /** config.json `model_type` values. */
  modelTypes: string[];
  /** The Hugging Face class name. */
  architecture: string;
  /** Builds the model spec from a config. */
  spec(c: ConfigReader): ModelSpec;
  /** 3-D tensors to split along their first dimension into per-expert tensors before use. */
  splits?(c: ConfigReader): { source: string; target: string; count: number }[];
  /** Recognises a config without `model_type` (mamba_ssm's MambaConfig). */
  matches?(c: ConfigReader): boolean;
  /** The checkpoint as the spec names it (renamed / row-sliced views of the file's tensors). */
  checkpoint?(c: ConfigReader, checkpoint: Checkpoint): Checkpoint;
}

/** Every supported family. */
export const families: Family[] = [
  { modelTypes: ['mamba_ssm'], architecture: 'MambaLMHeadModel', matches: isMambaSsmConfig, spec: (c) => mambaSsmSpec(parseMambaSsmConfig(c)), checkpoint: mambaSsmCheckpoint },
  { modelTypes: ['mamba'], architecture: 'MambaForCausalLM', spec: (c) => mambaSpec(parseMambaConfig(c), 'MambaForCausalLM') },
  { modelTypes: ['falcon_mamba'], architecture: 'FalconMambaForCausalLM', spec: (c) => mambaSpec(parseMambaConfig(c), 'FalconMambaForCausalLM') },
  { modelTypes: ['mamba2'], architecture: 'Mamba2ForCausalLM', spec: (c) => mamba2Spec(parseMamba2Config(c), 'Mamba2ForCausalLM') },
  { modelTypes: ['llama'], architecture: 'LlamaForCausalLM', spec: (c) => llamaSpec(parseLlamaConfig(c), 'LlamaForCausalLM') },
  { modelTypes: ['jamba'], architecture: 'JambaForCausalLM', spec: (c) => jambaSpec(parseJambaConfig(c), 'JambaForCausalLM') },
  { modelTypes: ['bamba'], architecture: 'BambaForCausalLM', spec: (c) => bambaSpec(c, 'BambaForCausalLM') },
  { modelTypes: ['granitemoehybrid'], architecture: 'GraniteMoeHybridForCausalLM', spec: (c) => graniteSpec(c, 'GraniteMoeHybridForCausalLM'), splits: granitePrepareNames },
  { modelTypes: ['nemotron_h'], architecture: 'NemotronHForCausalLM', spec: (c) => nemotronHSpec(c, 'NemotronHForCausalLM') },
  { modelTypes: ['falcon_h1'], architecture: 'FalconH1ForCausalLM', spec: (c) => falconH1Spec(c, 'FalconH1ForCausalLM') },
  { modelTypes: ['qwen3_next'], architecture: 'Qwen3NextForCausalLM', spec: (c) => qwen3NextSpec(c, 'Qwen3NextForCausalLM') },
  { modelTypes: ['zamba2'], architecture: 'Zamba2ForCausalLM', spec: (c) => zamba2Spec(parseZamba2Config(c), 'Zamba2ForCausalLM') },
  { modelTypes: ['lfm2'], architecture: 'Lfm2ForCausalLM', spec: (c) => lfm2Spec(c, 'Lfm2ForCausalLM') },
];

/**
 * The family of a config, or an `UNKNOWN_ARCHITECTURE` error that lists the supported ones.
 *
 * @example
 * ```ts
 * const config = await (await openModel('./fixtures/hf-tiny/bamba')).config();
 * const family = familyOf(config); // { modelTypes: ['bamba'], architecture: 'BambaForCausalLM', ... }
 * const spec = family.spec(config);
 * ```
 */
export function familyOf(c: ConfigReader): Family {
  const type = c.optional.string('model_type');
  const archs = c.optional.stringArray('architectures') ?? [];
  const f = families.find((x) => x.matches?.(c) || (type && x.modelTypes.includes(type)) || archs.includes(x.architecture));
  if (!f) {
    throw new StatespaceError(
      'UNKNOWN_ARCHITECTURE',
      `${c.file}: model_type ${JSON.stringify(type)} (architectures ${JSON.stringify(archs)}) is not supported; statespace runs ${families.map((x) => x.modelTypes[0]).join(', ')}`,
    );
  }
  return f;
}
