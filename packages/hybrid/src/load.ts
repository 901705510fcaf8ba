/**
 * Loading a Hugging Face model folder (path, URL or browser Files) into a
 * {@link HybridModel}: config -> family -> spec, an expected-weights check that
 * reports every missing, mis-shaped or unused tensor at once, then upload.
 */
import { type Checkpoint, type ConfigReader, type LoadProgress, type ModelFolder, type ModelSource, checkWeights, loadWeights, openModel } from '@statespace/checkpoint';
import { Q8_BLOCK, type Runtime, StatespaceError, type Tensor } from '@statespace/core';
import { type Family, familyOf } from './families/index.js';
import { HybridModel } from './model.js';
import type { ModelSpec } from './spec.js';
import { modelWeights } from './weights.js';

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /**
   * Storage of weight matrices: 'f32' (default), 'f16', 'bf16', 'q8' (int8 with one scale per 32
   * weights, quantised while loading) or 'keep' (as in the file). SSM parameters, conv kernels,
   * norms and biases stay f32.
   */
  weightDtype?: 'f32' | 'f16' | 'bf16' | 'q8' | 'keep';
  /** Called after each tensor (and each chunk of a large one) is uploaded. */
  onProgress?: (progress: LoadProgress) => void;
}

/** What {@link loadModel} returns. */
export interface LoadedModel {
  /** The model, weights on the GPU; give it to a {@link Session}. */
  model: HybridModel;
  /** Its layer stack and tensor names. */
  spec: ModelSpec;
  /** The family chosen from config.json. */
  family: Family;
  /** config.json, typed. */
  config: ConfigReader;
  /** The folder it came from (read the tokenizer files with `folder.tokenizer()`). */
  folder: ModelFolder;
}

/**
 * Builds the spec of a model folder without loading weights (for `statespace inspect`).
 *
 * @throws StatespaceError `UNKNOWN_ARCHITECTURE`, checkpoint errors for a missing or invalid config.json.
 * @example
 * ```ts
 * const { spec, family } = await readModelSpec('./fixtures/hf-tiny/jamba');
 * console.log(family.architecture, patternOf(spec)); // JambaForCausalLM MMMA
 * ```
 */
export async function readModelSpec(source: ModelSource | ModelFolder): Promise<{ spec: ModelSpec; family: Family; config: ConfigReader; folder: ModelFolder }> {
  const folder = typeof source === 'object' && source !== null && 'config' in source && typeof (source as ModelFolder).config === 'function' ? (source as ModelFolder) : await openModel(source as ModelSource);
  const config = await folder.config();
  const family = familyOf(config);
  return { spec: family.spec(config), family, config, folder };
}

/**
 * Loads a model folder onto the GPU.
 *
 * @throws StatespaceError `UNKNOWN_ARCHITECTURE`, checkpoint errors (corrupt files, missing or mis-shaped tensors).
 * @example
 * ```ts
 * const rt = await Runtime.create();
 * const { model } = await loadModel(rt, './fixtures/hf-tiny/mamba2');
 * const session = new Session(model);
 * ```
 */
export async function loadModel(runtime: Runtime, source: ModelSource | ModelFolder, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const { spec, family, config, folder } = await readModelSpec(source);
  const file: Checkpoint = await folder.weights();
  const checkpoint = family.checkpoint ? family.checkpoint(config, file) : file;
  try {
    const splits = family.splits?.(config) ?? [];
    const expected = modelWeights(spec);
    const splitTargets = new Map<string, { source: string; index: number }>();
    for (const s of splits) for (let e = 0; e < s.count; e++) splitTargets.set(s.target.replace('{e}', String(e)), { source: s.source, index: e });
    const declared = expected.filter((w) => !splitTargets.has(w.name)).map((w) => ({ name: w.name, shape: w.shape }));
    for (const s of splits) {
      const first = expected.find((w) => w.name === s.target.replace('{e}', '0'));
      if (first) declared.push({ name: s.source, shape: [s.count, ...first.shape] });
    }
    const tiedHead = spec.lmHead === spec.embedding;
    await checkWeights(checkpoint, declared, { ignoreUnused: (n) => (tiedHead && n === 'lm_head.weight') || /rotary_emb\.inv_freq$/.test(n) });

    const f32Names = new Set(expected.filter((w) => w.f32).map((w) => w.name));
    const choice = options.weightDtype ?? 'f32';
    // q8 only for matrices (2-D, or the 3-D expert stacks split into 2-D experts below): a 1-D weight no f32Names caught stays f32
    const splitSources = new Set(splits.map((s) => s.source));
    const dtypeOf = (name: string, shape: readonly number[]): typeof choice => {
      if (f32Names.has(name)) return 'f32';
      if (choice === 'q8' && shape.length !== 2 && !splitSources.has(name)) return 'f32';
      return choice;
    };
    const scaled = new Map<string, { factor: number; rows?: [number, number] }[]>();
    for (const s of spec.weightScales ?? []) scaled.set(s.name, [...(scaled.get(s.name) ?? []), s]);
    const loaded = await loadWeights(runtime, checkpoint, {
      names: declared.map((d) => d.name).filter((n) => !scaled.has(n)),
      dtype: (info) => dtypeOf(info.name, info.shape),
      onProgress: options.onProgress,
    });
    const weights: Record<string, Tensor> = Object.fromEntries(loaded);
    // muP factors folded into rows of a weight: done on the host, then uploaded.
    for (const [name, scales] of scaled) {
      const info = await checkpoint.info(name);
      const data = await checkpoint.readFloat32(name);
      const cols = info.shape.slice(1).reduce((a, b) => a * b, 1);
      for (const s of scales) {
        const [r0, r1] = s.rows ?? [0, info.shape[0]];
        for (let i = r0 * cols; i < r1 * cols; i++) data[i] *= s.factor;
      }
      const dtype = dtypeOf(name, info.shape);
      weights[name] = runtime.upload(data, [...info.shape], dtype === 'keep' ? 'f32' : dtype, name);
    }
    // 3-D expert tensors split into per-expert 2-D tensors with GPU copies.
    for (const s of splits) {
      const src = weights[s.source];
      if (!src) continue;
      const per = src.shape.slice(1);
      const bytes = src.byteSize / s.count;
      if (src.dtype === 'q8' && per.reduce((a, b) => a * b, 1) % Q8_BLOCK !== 0) {
        throw new StatespaceError('DTYPE_MISMATCH', `loadModel: ${s.source} splits into experts of ${per.join('x')} weights, not whole q8 blocks of ${Q8_BLOCK}; load it with another weightDtype`);
      }
      for (let e = 0; e < s.count; e++) {
        const t = runtime.empty(per, src.dtype, s.target.replace('{e}', String(e)));
        runtime.copy(src, t, bytes, e * bytes, 0);
        weights[s.target.replace('{e}', String(e))] = t;
      }
      runtime.flush();
      src.dispose();
      delete weights[s.source];
    }
    const model = new HybridModel(runtime, spec, weights);
    model.fingerprint = await model.computeFingerprint();
    return { model, spec, family, config, folder };
  } finally {
    await checkpoint.close();
  }
}
