/**
 * Sharded checkpoints: `model.safetensors.index.json` maps each tensor name to
 * the shard file holding it (`{"metadata": {...}, "weight_map": {name: file}}`).
 * Shards are opened lazily, the first time one of their tensors is asked for.
 */
import { CheckpointError, where } from './errors.js';
import { type Checkpoint, type HostTensor, type SafetensorsFile, type TensorInfo, openSafetensors } from './safetensors.js';
import { type ByteSource, isPlainFileName } from './sources.js';

/** A parsed `model.safetensors.index.json`. */
export interface SafetensorsIndex {
  /** The index's `metadata` object (e.g. `total_size`). */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Tensor name -> shard file name (relative to the index). */
  readonly weightMap: ReadonlyMap<string, string>;
  /** The distinct shard file names, in first-use order. */
  readonly shards: readonly string[];
}

/** The largest index text accepted (real ones are a few MB). */
const MAX_INDEX_CHARS = 100_000_000;

/** The most distinct shard files one index may name. */
const MAX_SHARDS = 65_536;

/** The most entries one `weight_map` may hold. */
const MAX_WEIGHT_MAP_ENTRIES = 4 * 262_144;

/**
 * Parses and validates a `model.safetensors.index.json` (given as text or as
 * parsed JSON).
 *
 * @throws CheckpointError `CHECKPOINT_INDEX_INVALID` when it is not JSON, has no
 *   `weight_map` object of strings, or names a shard outside its folder.
 *
 * @example
 * ```ts
 * const index = parseSafetensorsIndex(await fs.readFile('model.safetensors.index.json', 'utf8'), 'model.safetensors.index.json');
 * console.log(index.shards); // ['model-00001-of-00002.safetensors', ...]
 * ```
 */
export function parseSafetensorsIndex(input: string | unknown, file: string): SafetensorsIndex {
  let json: unknown = input;
  if (typeof input === 'string') {
    if (input.length > MAX_INDEX_CHARS) {
      throw new CheckpointError('CHECKPOINT_INDEX_INVALID', `${file}: ${input.length} characters is too large for an index (the limit is ${MAX_INDEX_CHARS})`, { file });
    }
    try {
      json = JSON.parse(input);
    } catch (cause) {
      throw new CheckpointError('CHECKPOINT_INDEX_INVALID', `${file}: not valid JSON: ${(cause as Error).message}`, { file, cause });
    }
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError('CHECKPOINT_INDEX_INVALID', `${file}: not a JSON object`, { file });
  }
  const { weight_map: map, metadata } = json as Record<string, unknown>;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new CheckpointError('CHECKPOINT_INDEX_INVALID', `${file}: "weight_map" is missing or not an object`, { file });
  }
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  const seen = new Set<string>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string') {
      throw new CheckpointError('CHECKPOINT_INDEX_INVALID', `${file}: weight_map["${name}"] is not a file name`, { file, tensor: name });
    }
    if (!isPlainFileName(shard)) {
      throw new CheckpointError('CHECKPOINT_INDEX_INVALID', `${file}: weight_map["${name}"] = ${JSON.stringify(shard.slice(0, 300))} is not a plain file name in the folder of the index (no separators, no "..")`, { file, tensor: name });
    }
    if (weightMap.size >= MAX_WEIGHT_MAP_ENTRIES) {
      throw new CheckpointError('CHECKPOINT_INDEX_INVALID', `${file}: weight_map holds more than ${MAX_WEIGHT_MAP_ENTRIES} entries`, { file });
    }
    if (!seen.has(shard)) {
      if (seen.size >= MAX_SHARDS) throw new CheckpointError('CHECKPOINT_INDEX_INVALID', `${file}: weight_map names more than ${MAX_SHARDS} shard files`, { file });
      seen.add(shard);
      shards.push(shard);
    }
    weightMap.set(name, shard);
  }
  const meta = typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata) ? (metadata as Record<string, unknown>) : {};
  return { metadata: meta, weightMap, shards };
}

/**
 * A checkpoint split over several safetensors shards. Open it with
 * {@link openShardedCheckpoint} or through {@link openModel}.
 *
 * @example
 * ```ts
 * const checkpoint = await (await openModel('./llama-3b')).weights(); // a ShardedCheckpoint
 * const w = await checkpoint.readFloat32('model.norm.weight');        // opens one shard only
 * ```
 */
export class ShardedCheckpoint implements Checkpoint {
  readonly name: string;
  /** The parsed index: which shard holds which tensor. */
  readonly index: SafetensorsIndex;
  private readonly resolve: (shard: string) => ByteSource;
  private readonly opened = new Map<string, Promise<SafetensorsFile>>();

  /**
   * @param index   the parsed index
   * @param resolve gives the byte source of a shard file named in the index
   * @param name    the index file's name, for messages
   */
  constructor(index: SafetensorsIndex, resolve: (shard: string) => ByteSource, name: string) {
    this.index = index;
    this.resolve = resolve;
    this.name = name;
  }

  get metadata(): Readonly<Record<string, unknown>> {
    return this.index.metadata;
  }

  names(): string[] {
    return [...this.index.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.index.weightMap.has(name);
  }

  /** Opens (once) the shard file `shard`. Throws `CHECKPOINT_SHARD_MISSING` when it cannot be found. */
  shard(shard: string, forTensor?: string): Promise<SafetensorsFile> {
    let file = this.opened.get(shard);
    if (!file) {
      file = (async () => {
        const source = this.resolve(shard);
        try {
          return await openSafetensors(source);
        } catch (error) {
          if (CheckpointError.isCheckpointError(error) && error.code === 'CHECKPOINT_FILE_NOT_FOUND') {
            const needed = forTensor === undefined ? '' : ` (it should hold "${forTensor}")`;
            throw new CheckpointError('CHECKPOINT_SHARD_MISSING', `${this.name}: shard "${shard}" is missing${needed}`, { file: source.name, tensor: forTensor, cause: error });
          }
          throw error;
        }
      })();
      this.opened.set(shard, file);
      // A failed open is not cached: the next call tries again.
      file.catch(() => this.opened.delete(shard));
    }
    return file;
  }

  async fileOf(name: string): Promise<SafetensorsFile> {
    const shard = this.index.weightMap.get(name);
    if (shard === undefined) throw new CheckpointError('CHECKPOINT_TENSOR_NOT_FOUND', `${where(this.name, name)} is not in the weight_map`, { file: this.name, tensor: name });
    const file = await this.shard(shard, name);
    if (!file.has(name)) {
      throw new CheckpointError('CHECKPOINT_INDEX_MISMATCH', `${this.name}: the weight_map puts "${name}" in "${shard}", which does not hold it`, { file: shard, tensor: name });
    }
    return file;
  }

  async info(name: string): Promise<TensorInfo> {
    return (await this.fileOf(name)).tensor(name);
  }

  async infos(): Promise<TensorInfo[]> {
    // A few shards at a time: an index naming thousands of shards must not open thousands of files at once.
    const shards = this.index.shards;
    for (let i = 0; i < shards.length; i += 8) await Promise.all(shards.slice(i, i + 8).map((s) => this.shard(s)));
    const out: TensorInfo[] = [];
    for (const name of this.index.weightMap.keys()) out.push(await this.info(name));
    return out;
  }

  async readBytes(name: string): Promise<Uint8Array> {
    return (await this.fileOf(name)).readBytes(name);
  }

  async read(name: string): Promise<HostTensor> {
    return (await this.fileOf(name)).read(name);
  }

  async readFloat32(name: string): Promise<Float32Array> {
    return (await this.fileOf(name)).readFloat32(name);
  }

  async close(): Promise<void> {
    const files = [...this.opened.values()];
    this.opened.clear();
    await Promise.all(files.map((f) => f.then((s) => s.close(), () => {})));
  }
}

/**
 * Opens a sharded checkpoint from its index. No shard is opened until one of
 * its tensors is asked for.
 *
 * @example
 * ```ts
 * const base = './llama';
 * const checkpoint = openShardedCheckpoint(
 *   await fs.readFile(`${base}/model.safetensors.index.json`, 'utf8'),
 *   (shard) => fileSource(`${base}/${shard}`),
 *   'model.safetensors.index.json',
 * );
 * ```
 */
export function openShardedCheckpoint(index: string | unknown, resolve: (shard: string) => ByteSource, name = 'model.safetensors.index.json'): ShardedCheckpoint {
  return new ShardedCheckpoint(parseSafetensorsIndex(index, name), resolve, name);
}
