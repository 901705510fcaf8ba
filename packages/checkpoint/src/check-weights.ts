/**
 * The "expected weights" check: what a model declares against what a
 * checkpoint holds. Every problem is collected first and reported in one error.
 */
import type { SafetensorsDType } from './dtypes.js';
import { CheckpointError } from './errors.js';
import type { Checkpoint, TensorInfo } from './safetensors.js';

/**
 * One tensor a model expects. A `-1` in `shape` accepts any size in that
 * dimension; `dtype` (one or several) is checked when given; an `optional`
 * tensor may be absent (e.g. `lm_head.weight` with tied embeddings).
 */
export interface ExpectedTensor {
  /** Full tensor name. */
  readonly name: string;
  /** Expected shape; -1 accepts any size in that dimension. */
  readonly shape: readonly number[];
  /** Accepted dtype(s); unchecked when absent. */
  readonly dtype?: SafetensorsDType | readonly SafetensorsDType[];
  /** The tensor may be absent. */
  readonly optional?: boolean;
}

/** A tensor whose shape or dtype differs from the model's declaration. */
export interface WeightMismatch {
  /** Tensor name. */
  readonly name: string;
  /** The file holding it. */
  readonly file: string;
  /** What the model declares, e.g. `[64,128]` or `F32`. */
  readonly expected: string;
  /** What the checkpoint holds. */
  readonly actual: string;
}

/** Everything {@link compareWeights} found. */
export interface WeightsReport {
  /** Required tensors the checkpoint lacks. */
  readonly missing: readonly ExpectedTensor[];
  /** Tensors present with another shape. */
  readonly shapeMismatches: readonly WeightMismatch[];
  /** Tensors present with a dtype the model does not accept. */
  readonly dtypeMismatches: readonly WeightMismatch[];
  /** Tensors of the checkpoint the model does not use (after `ignoreUnused`). */
  readonly unused: readonly TensorInfo[];
}

/** Options of {@link compareWeights} / {@link checkWeights}. */
export interface CheckWeightsOptions {
  /**
   * Tensors allowed to be left unused: `true` for all, a pattern, or a
   * predicate (e.g. rotary `inv_freq` buffers some checkpoints carry).
   */
  ignoreUnused?: boolean | RegExp | ((name: string) => boolean);
}

/**
 * Raised by {@link checkWeights}: the full {@link WeightsReport} is on `report`,
 * and the message lists every problem.
 *
 * @example
 * ```ts
 * try { await checkWeights(checkpoint, expected); }
 * catch (e) { if (e instanceof WeightsMismatchError) console.error(e.report.missing.map((t) => t.name)); }
 * ```
 */
export class WeightsMismatchError extends CheckpointError {
  /** Every difference found (the message lists them too). */
  readonly report: WeightsReport;
  constructor(message: string, report: WeightsReport, file: string) {
    const first = report.missing[0]?.name ?? report.shapeMismatches[0]?.name ?? report.dtypeMismatches[0]?.name ?? report.unused[0]?.name;
    super('CHECKPOINT_WEIGHTS_MISMATCH', message, { file, tensor: first });
    this.name = 'WeightsMismatchError';
    this.report = report;
  }
}

function shapeMatches(expected: readonly number[], actual: readonly number[]): boolean {
  return expected.length === actual.length && expected.every((d, i) => d === -1 || d === actual[i]);
}

/**
 * Compares declared tensors with a checkpoint's tensors and returns every
 * difference (no throw).
 *
 * @example
 * ```ts
 * const report = compareWeights(await checkpoint.infos(), [{ name: 'norm.weight', shape: [64] }]);
 * console.log(report.missing.length, report.unused.map((t) => t.name));
 * ```
 */
export function compareWeights(actual: readonly TensorInfo[], expected: readonly ExpectedTensor[], options: CheckWeightsOptions = {}): WeightsReport {
  const byName = new Map(actual.map((t) => [t.name, t]));
  const used = new Set<string>();
  const missing: ExpectedTensor[] = [];
  const shapeMismatches: WeightMismatch[] = [];
  const dtypeMismatches: WeightMismatch[] = [];
  for (const want of expected) {
    const have = byName.get(want.name);
    if (!have) {
      if (!want.optional) missing.push(want);
      continue;
    }
    used.add(want.name);
    if (!shapeMatches(want.shape, have.shape)) {
      shapeMismatches.push({ name: want.name, file: have.file, expected: `[${want.shape.map((d) => (d === -1 ? '*' : d)).join(',')}]`, actual: `[${have.shape.join(',')}]` });
    }
    if (want.dtype !== undefined) {
      const allowed: readonly SafetensorsDType[] = typeof want.dtype === 'string' ? [want.dtype] : want.dtype;
      if (!allowed.includes(have.dtype)) dtypeMismatches.push({ name: want.name, file: have.file, expected: allowed.join(' | '), actual: have.dtype });
    }
  }
  const ignore = options.ignoreUnused;
  const ignored = (name: string) => (ignore === true ? true : ignore instanceof RegExp ? ignore.test(name) : typeof ignore === 'function' ? ignore(name) : false);
  const unused = actual.filter((t) => !used.has(t.name) && !ignored(t.name));
  return { missing, shapeMismatches, dtypeMismatches, unused };
}

function listed<T>(items: readonly T[], show: (item: T) => string, limit = 20): string {
  const lines = items.slice(0, limit).map((item) => `    ${show(item)}`);
  if (items.length > limit) lines.push(`    ... and ${items.length - limit} more`);
  return lines.join('\n');
}

/**
 * Checks that a checkpoint holds exactly the tensors a model declares, with
 * the declared shapes (and dtypes). Returns the tensors by name when they
 * match; otherwise throws one {@link WeightsMismatchError}
 * (`CHECKPOINT_WEIGHTS_MISMATCH`) listing every missing tensor, every shape or
 * dtype mismatch (with its file) and every unused tensor.
 *
 * @example
 * ```ts
 * const c = configReader(await model.readJson('config.json'));
 * const d = c.positiveInt('hidden_size');
 * await checkWeights(checkpoint, [
 *   { name: 'backbone.embeddings.weight', shape: [c.positiveInt('vocab_size'), d] },
 *   { name: 'backbone.norm_f.weight', shape: [d] },
 *   { name: 'lm_head.weight', shape: [-1, d], optional: true },
 * ]);
 * ```
 */
export async function checkWeights(
  checkpoint: Checkpoint | readonly TensorInfo[],
  expected: readonly ExpectedTensor[],
  options: CheckWeightsOptions = {},
): Promise<Map<string, TensorInfo>> {
  const infos = Array.isArray(checkpoint) ? (checkpoint as readonly TensorInfo[]) : await (checkpoint as Checkpoint).infos();
  const name = Array.isArray(checkpoint) ? (infos[0]?.file ?? 'checkpoint') : (checkpoint as Checkpoint).name;
  const report = compareWeights(infos, expected, options);
  const { missing, shapeMismatches, dtypeMismatches, unused } = report;
  if (missing.length + shapeMismatches.length + dtypeMismatches.length + unused.length === 0) {
    return new Map(infos.map((t) => [t.name, t]));
  }
  const parts: string[] = [];
  if (missing.length) parts.push(`  ${missing.length} missing:\n${listed(missing, (t) => `${t.name} [${t.shape.join(',')}]`)}`);
  if (shapeMismatches.length) {
    parts.push(`  ${shapeMismatches.length} with the wrong shape:\n${listed(shapeMismatches, (m) => `${m.file}: ${m.name} has shape ${m.actual}, expected ${m.expected}`)}`);
  }
  if (dtypeMismatches.length) {
    parts.push(`  ${dtypeMismatches.length} with the wrong dtype:\n${listed(dtypeMismatches, (m) => `${m.file}: ${m.name} is ${m.actual}, expected ${m.expected}`)}`);
  }
  if (unused.length) parts.push(`  ${unused.length} unused:\n${listed(unused, (t) => `${t.file}: ${t.name} [${t.shape.join(',')}]`)}`);
  throw new WeightsMismatchError(`${name}: the checkpoint does not match the model's weights\n${parts.join('\n')}`, report, name);
}
