/**
 * Reading the committed Mamba-3 fixtures (fixtures/mamba3, made by tools/fixtures/make_mamba3_fixtures.py) in
 * this package's tests: a minimal float32 safetensors reader and the fixture's config as a {@link Mamba3Config}.
 * Not exported.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Mamba3Config } from './mamba3-shape.js';

const BESIDE = fileURLToPath(new URL('../../../fixtures/mamba3/', import.meta.url));
/** Folder of the Mamba-3 fixtures (beside the sources, or from the repository root when bundled). */
export const MAMBA3_FIXTURES = existsSync(BESIDE) ? BESIDE : `${process.cwd()}/fixtures/mamba3/`;

/** The fixtures, by folder name. */
export const MAMBA3_FIXTURE_NAMES = ['siso-rope-half', 'siso-rope-full-norm', 'mimo-r4', 'mimo-r2-norm'] as const;

/** A float32 safetensors file: tensors by name. */
export function readSafetensors(path: string): Record<string, { shape: number[]; data: Float32Array }> {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`${path}: ${name} is ${t.dtype}, expected F32`);
    const [a, b] = t.data_offsets;
    const copy = new Uint8Array(bytes.subarray(8 + n + a, 8 + n + b));
    out[name] = { shape: t.shape, data: new Float32Array(copy.buffer) };
  }
  return out;
}

/** A fixture: its config.json, weights and reference.json. */
export interface Mamba3Fixture {
  json: { d_model: number; n_layer: number; vocab_size: number; ssm_cfg: Record<string, unknown> };
  config: Mamba3Config;
  weights: Record<string, { shape: number[]; data: Float32Array }>;
  ref: {
    input_ids: number[];
    greedy_new_tokens: number[];
    logits_first: number[];
    logits_last: number[];
    logits_argmax: number[];
    logits_rows_sample: Record<string, number[]>;
    layer0_mixer_input: number[][];
    layer0_mixer_output: number[][];
    vocab_size: number;
  };
}

/** Reads one fixture; its ssm_cfg becomes a {@link Mamba3Config} as mamba3.py's defaults fill it. */
export function readMamba3Fixture(name: string): Mamba3Fixture {
  const dir = `${MAMBA3_FIXTURES}${name}/`;
  const json = JSON.parse(readFileSync(`${dir}config.json`, 'utf8')) as Mamba3Fixture['json'];
  const s = json.ssm_cfg as Record<string, number | boolean>;
  const expand = (s.expand as number) ?? 2;
  const headDim = (s.headdim as number) ?? 64;
  const config: Mamba3Config = {
    hiddenSize: json.d_model,
    numHeads: (expand * json.d_model) / headDim,
    headDim,
    stateSize: (s.d_state as number) ?? 128,
    nGroups: (s.ngroups as number) ?? 1,
    ropeFraction: ((s.rope_fraction as number) ?? 0.5) as 0.5 | 1,
    aFloor: (s.A_floor as number) ?? 1e-4,
    mimo: !!s.is_mimo,
    mimoRank: s.is_mimo ? ((s.mimo_rank as number) ?? 4) : undefined,
    outProjNorm: !!s.is_outproj_norm,
  };
  return { json, config, weights: readSafetensors(`${dir}model.safetensors`), ref: JSON.parse(readFileSync(`${dir}reference.json`, 'utf8')) };
}

/** The weights of layer `i`'s mixer, relative to the mixer (`backbone.layers.i.mixer.` stripped). */
export function mixerWeights(f: Mamba3Fixture, i: number): Record<string, { shape: number[]; data: Float32Array }> {
  const prefix = `backbone.layers.${i}.mixer.`;
  return Object.fromEntries(Object.entries(f.weights).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
}
