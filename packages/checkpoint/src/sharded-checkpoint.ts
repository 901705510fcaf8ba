/**
 * Sharded checkpoints: `model.safetensors.index.json` (safetensors shards) or
 * `pytorch_model.bin.index.json` (`torch.save` shards) maps each tensor name to
 * the shard file holding it (`{"metadata": {...}, "weight_map": {name: file}}`;
 * both indexes have this one shape). Shards are opened lazily, the first time
 * one of their tensors is asked for.
 */
import { CheckpointError, where } from './errors.js';
import { type Checkpoint, type HostTensor, type SafetensorsFile, type TensorInfo, openSafetensors } from './safetensors.js';
import { type ByteSource, isPlainFileName } from './sources.js';
import { type TorchCheckpoint, openTorchCheckpoint } from './torch-checkpoint.js';

/** A parsed `model.safetensors.index.json` or `pytorch_model.bin.index.json` (the same JSON shape). */
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
 * Parses and validates a `model.safetensors.index.json` or a
 * `pytorch_model.bin.index.json` (given as text or as parsed JSON).
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
 * Opens one shard file of a {@link ShardedCheckpoint}: {@link openSafetensors},
 * {@link openTorchCheckpoint}, or a reader of your own.
 *
 * @example
 * ```ts
 * const open: ShardOpener<TorchCheckpoint> = (source) => openTorchCheckpoint(source);
 * const checkpoint = new ShardedCheckpoint(parseSafetensorsIndex(text, 'pytorch_model.bin.index.json'), (shard) => fileSource(`./model/${shard}`), 'pytorch_model.bin.index.json', open);
 * ```
 */
export type ShardOpener<F extends Checkpoint> = (source: ByteSource) => Promise<F>;

/**
 * A checkpoint split over several shards: safetensors files (the default,
 * `F` = {@link SafetensorsFile}) or `torch.save` files (`F` = {@link TorchCheckpoint},
 * see {@link openShardedTorchCheckpoint}). Open it with {@link openShardedCheckpoint},
 * {@link openShardedTorchCheckpoint} or through {@link openModel}.
 *
 * A shard is opened the first time one of its tensors is asked for; when it
 * opens, every tensor it holds is checked against the index: one that the
 * `weight_map` puts in another shard is refused (`CHECKPOINT_DUPLICATE_TENSOR`),
 * since which copy is meant would be a guess.
 *
 * @example
 * ```ts
 * const checkpoint = await (await openModel('./llama-3b')).weights(); // a ShardedCheckpoint
 * const w = await checkpoint.readFloat32('model.norm.weight');        // opens one shard only
 * ```
 */
export class ShardedCheckpoint<F extends Checkpoint = SafetensorsFile> implements Checkpoint {
  readonly name: string;
  /** The parsed index: which shard holds which tensor. */
  readonly index: SafetensorsIndex;
  private readonly resolve: (shard: string) => ByteSource;
  private readonly open: ShardOpener<F>;
  private readonly opened = new Map<string, Promise<F>>();

  /**
   * @param index   the parsed index
   * @param resolve gives the byte source of a shard file named in the index
   * @param name    the index file's name, for messages
   * @param open    opens one shard (default: {@link openSafetensors})
   */
  constructor(index: SafetensorsIndex, resolve: (shard: string) => ByteSource, name: string, open: ShardOpener<F> = openSafetensors as unknown as ShardOpener<F>) {
    this.index = index;
    this.resolve = resolve;
    this.name = name;
    this.open = open;
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

  /**
   * Opens (once) the shard file `shard`. Throws `CHECKPOINT_SHARD_MISSING` when
   * it cannot be found, `CHECKPOINT_DUPLICATE_TENSOR` when it holds a tensor the
   * index puts in another shard, and the shard reader's own errors
   * (`SAFETENSORS_*`, `TORCH_INVALID`, `UNSAFE_PICKLE`, ...) when it is malformed.
   */
  shard(shard: string, forTensor?: string): Promise<F> {
    let file = this.opened.get(shard);
    if (!file) {
      file = (async () => {
        const source = this.resolve(shard);
        let opened: F;
        try {
          opened = await this.open(source);
        } catch (error) {
          if (CheckpointError.isCheckpointError(error) && error.code === 'CHECKPOINT_FILE_NOT_FOUND') {
            const needed = forTensor === undefined ? '' : ` (it should hold "${forTensor}")`;
            throw new CheckpointError('CHECKPOINT_SHARD_MISSING', `${this.name}: shard "${shard}" is missing${needed}`, { file: source.name, tensor: forTensor, cause: error });
          }
          throw error;
        }
        const weightMap = this.index.weightMap;
        for (const held of opened.names()) {
          const home = weightMap.get(held);
          if (home !== undefined && home !== shard) {
            await opened.close().catch(() => {});
            throw new CheckpointError(
              'CHECKPOINT_DUPLICATE_TENSOR',
              `${this.name}: tensor "${held}" is in shard "${shard}" too, but the weight_map puts it in "${home}"; a tensor must be in one shard only`,
              { file: source.name, tensor: held },
            );
          }
        }
        return opened;
      })();
      this.opened.set(shard, file);
      // A failed open is not cached: the next call tries again.
      file.catch(() => this.opened.delete(shard));
    }
    return file;
  }

  /** The opened shard that holds `name`, checked to hold it. */
  private async holder(name: string): Promise<F> {
    const shard = this.index.weightMap.get(name);
    if (shard === undefined) throw new CheckpointError('CHECKPOINT_TENSOR_NOT_FOUND', `${where(this.name, name)} is not in the weight_map`, { file: this.name, tensor: name });
    const file = await this.shard(shard, name);
    if (!file.has(name)) {
      throw new CheckpointError('CHECKPOINT_INDEX_MISMATCH', `${this.name}: the weight_map puts "${name}" in "${shard}", which does not hold it`, { file: shard, tensor: name });
    }
    return file;
  }

  async fileOf(name: string): Promise<Awaited<ReturnType<F['fileOf']>>> {
    return (await this.holder(name)).fileOf(name) as Awaited<ReturnType<F['fileOf']>>;
  }

  async info(name: string): Promise<TensorInfo> {
    return (await this.holder(name)).info(name);
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
    return (await this.holder(name)).readBytes(name);
  }

  async read(name: string): Promise<HostTensor> {
    return (await this.holder(name)).read(name);
  }

  async readFloat32(name: string): Promise<Float32Array> {
    return (await this.holder(name)).readFloat32(name);
  }

  async close(): Promise<void> {
    const files = [...this.opened.values()];
    this.opened.clear();
    await Promise.all(files.map((f) => f.then((s) => s.close(), () => {})));
  }
}

/**
 * Opens a sharded safetensors checkpoint from its index. No shard is opened
 * until one of its tensors is asked for.
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

/**
 * Opens a sharded PyTorch checkpoint from its `pytorch_model.bin.index.json`:
 * each shard (`pytorch_model-00001-of-00002.bin`, ...) is a `torch.save` file,
 * read by the same restricted zip + pickle reader as {@link openTorchCheckpoint}
 * (no code runs; anything but tensor storages is refused with `UNSAFE_PICKLE`).
 * No shard is opened until one of its tensors is asked for. Prefer
 * {@link openModel}, which also keeps shard names inside the model folder.
 *
 * @example
 * ```ts
 * const base = './mamba-2.8b';
 * const checkpoint = openShardedTorchCheckpoint(
 *   await fs.readFile(`${base}/pytorch_model.bin.index.json`, 'utf8'),
 *   (shard) => fileSource(`${base}/${shard}`), // the index has been checked: plain file names only
 * );
 * const w = await checkpoint.readFloat32('backbone.norm_f.weight'); // opens one shard only
 * await checkpoint.close();
 * ```
 */
export function openShardedTorchCheckpoint(index: string | unknown, resolve: (shard: string) => ByteSource, name = 'pytorch_model.bin.index.json'): ShardedCheckpoint<TorchCheckpoint> {
  return new ShardedCheckpoint<TorchCheckpoint>(parseSafetensorsIndex(index, name), resolve, name, (source) => openTorchCheckpoint(source));
}
