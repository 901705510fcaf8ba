/**
 * The one error type this package throws on purpose. Every code names what
 * went wrong; `file`, `tensor` and `key` say where.
 */
import { StatespaceError } from '@statespace/core';

/** Stable error codes raised by @statespace/checkpoint. */
export type CheckpointErrorCode =
  /** The file ends before its header or a tensor's bytes (also: a tensor's offsets run past the data section). */
  | 'SAFETENSORS_TRUNCATED'
  /** The header length is over the 100,000,000-byte limit of the format. */
  | 'SAFETENSORS_HEADER_TOO_LARGE'
  /** The header is not UTF-8, not JSON, or not a JSON object; or `__metadata__` is not a string map. */
  | 'SAFETENSORS_HEADER_INVALID'
  /** A tensor entry lacks `dtype` / `shape` / `data_offsets` or holds values of the wrong kind. */
  | 'SAFETENSORS_INVALID_TENSOR'
  /** A dtype string this package does not know. */
  | 'SAFETENSORS_UNKNOWN_DTYPE'
  /** Offsets reversed, overlapping, leaving holes, or trailing bytes no tensor covers. */
  | 'SAFETENSORS_INVALID_OFFSETS'
  /** A tensor's byte span differs from shape x dtype size. */
  | 'SAFETENSORS_SIZE_MISMATCH'
  /** The same tensor name (or the same key inside an entry) appears twice in the header. */
  | 'SAFETENSORS_DUPLICATE_TENSOR'
  /** The header holds more than `MAX_TENSORS` tensors. */
  | 'SAFETENSORS_TOO_MANY_TENSORS'
  /** `model.safetensors.index.json` or `pytorch_model.bin.index.json` is not JSON, has no `weight_map`, is too large, or names a shard that is not a plain file name. */
  | 'CHECKPOINT_INDEX_INVALID'
  /** A shard named in the index cannot be found. */
  | 'CHECKPOINT_SHARD_MISSING'
  /** The index says a tensor lives in a shard that does not hold it. */
  | 'CHECKPOINT_INDEX_MISMATCH'
  /** A shard holds a tensor that the index puts in another shard (the tensor is in two shards, or in one the index does not name for it). */
  | 'CHECKPOINT_DUPLICATE_TENSOR'
  /** A file (config.json, a checkpoint, ...) cannot be found. */
  | 'CHECKPOINT_FILE_NOT_FOUND'
  /** A file name that is not a plain name inside the model folder, or a path (symlink) that resolves outside it. */
  | 'CHECKPOINT_OUTSIDE_FOLDER'
  /** A tensor name that is not in the checkpoint. */
  | 'CHECKPOINT_TENSOR_NOT_FOUND'
  /** An HTTP request failed or returned an unexpected status or length. */
  | 'CHECKPOINT_HTTP'
  /** The server ignored the `Range` header (it must answer 206). */
  | 'CHECKPOINT_RANGE_UNSUPPORTED'
  /** Reading a file failed for another reason (permissions, I/O, not a regular file, a short read from a source). */
  | 'CHECKPOINT_IO'
  /** A dtype that cannot be uploaded to the GPU, or a conversion that is not offered. */
  | 'CHECKPOINT_UNSUPPORTED_DTYPE'
  /** A conversion to f16 turned finite values into infinities. */
  | 'CHECKPOINT_CONVERSION_OVERFLOW'
  /** The checkpoint's tensors do not match what the model declares (missing / shape / dtype / unused). */
  | 'CHECKPOINT_WEIGHTS_MISMATCH'
  /** The source was closed. */
  | 'CHECKPOINT_CLOSED'
  /** A file that should be JSON (config.json, tokenizer.json, ...) is not. */
  | 'CONFIG_INVALID_JSON'
  /** A required config key is absent (or null). */
  | 'CONFIG_MISSING_KEY'
  /** A config value has the wrong type or is out of range. */
  | 'CONFIG_INVALID_VALUE'
  /** A `pytorch_model.bin` that is not a well-formed PyTorch zip archive or pickle (truncated, bad offsets, stack or memo errors, values of the wrong kind). */
  | 'TORCH_INVALID'
  /** A pickle asks for something a tensor state dict never needs (a global or callable outside the allow-list, an opcode that builds objects): refused, nothing runs. */
  | 'UNSAFE_PICKLE'
  /** A `torch.save` file in the legacy (PyTorch < 1.6, non-zip) format. */
  | 'TORCH_LEGACY_FORMAT'
  /** A `torch.save` file written on a big-endian machine (`byteorder` is `big`). */
  | 'TORCH_BIG_ENDIAN'
  /** Valid PyTorch content this reader does not handle (compressed or encrypted entries, complex or quantized storages, a value that is not a tensor). */
  | 'TORCH_UNSUPPORTED';

/** Where an error happened. */
export interface CheckpointErrorLocation {
  /** The file (path, URL or name) being read. */
  file?: string;
  /** The tensor concerned. */
  tensor?: string;
  /** The config key concerned (dotted for nested keys). */
  key?: string;
  /** The underlying error (an I/O error, a JSON SyntaxError, ...). */
  cause?: unknown;
}

/**
 * A typed error raised for bad or missing checkpoint input. The message names
 * the file and the tensor or key; the same facts are on `file`, `tensor` and `key`.
 *
 * @example
 * ```ts
 * try { await openSafetensors(fileSource('model.safetensors')); }
 * catch (e) {
 *   if (CheckpointError.isCheckpointError(e) && e.code === 'SAFETENSORS_TRUNCATED') console.error(e.file, e.message);
 * }
 * ```
 */
export class CheckpointError extends StatespaceError {
  declare readonly code: CheckpointErrorCode;
  /** The file (path, URL or name) being read. */
  readonly file?: string;
  /** The tensor concerned. */
  readonly tensor?: string;
  /** The config key concerned (dotted for nested keys). */
  readonly key?: string;

  constructor(code: CheckpointErrorCode, message: string, where: CheckpointErrorLocation = {}) {
    super(code, message, where.cause === undefined ? undefined : { cause: where.cause });
    this.name = 'CheckpointError';
    if (where.file !== undefined) this.file = where.file;
    if (where.tensor !== undefined) this.tensor = where.tensor;
    if (where.key !== undefined) this.key = where.key;
  }

  /** True for a checkpoint error (any statespace error whose code is one of {@link CheckpointErrorCode}), even from another package copy. */
  static isCheckpointError(error: unknown): error is CheckpointError {
    return StatespaceError.is(error) && CHECKPOINT_CODES.has(error.code);
  }
}

const CHECKPOINT_CODES: ReadonlySet<string> = new Set<CheckpointErrorCode>([
  'SAFETENSORS_TRUNCATED',
  'SAFETENSORS_HEADER_TOO_LARGE',
  'SAFETENSORS_HEADER_INVALID',
  'SAFETENSORS_INVALID_TENSOR',
  'SAFETENSORS_UNKNOWN_DTYPE',
  'SAFETENSORS_INVALID_OFFSETS',
  'SAFETENSORS_SIZE_MISMATCH',
  'SAFETENSORS_DUPLICATE_TENSOR',
  'SAFETENSORS_TOO_MANY_TENSORS',
  'CHECKPOINT_INDEX_INVALID',
  'CHECKPOINT_SHARD_MISSING',
  'CHECKPOINT_INDEX_MISMATCH',
  'CHECKPOINT_DUPLICATE_TENSOR',
  'CHECKPOINT_FILE_NOT_FOUND',
  'CHECKPOINT_OUTSIDE_FOLDER',
  'CHECKPOINT_TENSOR_NOT_FOUND',
  'CHECKPOINT_HTTP',
  'CHECKPOINT_RANGE_UNSUPPORTED',
  'CHECKPOINT_IO',
  'CHECKPOINT_UNSUPPORTED_DTYPE',
  'CHECKPOINT_CONVERSION_OVERFLOW',
  'CHECKPOINT_WEIGHTS_MISMATCH',
  'CHECKPOINT_CLOSED',
  'CONFIG_INVALID_JSON',
  'CONFIG_MISSING_KEY',
  'CONFIG_INVALID_VALUE',
  'TORCH_INVALID',
  'UNSAFE_PICKLE',
  'TORCH_LEGACY_FORMAT',
  'TORCH_BIG_ENDIAN',
  'TORCH_UNSUPPORTED',
]);

/** Formats a tensor location as `file: tensor "name"` for messages. */
export function where(file: string, tensor?: string): string {
  return tensor === undefined ? file : `${file}: tensor "${tensor}"`;
}
