/**
 * @statespace/checkpoint: load Hugging Face checkpoints (safetensors,
 * pytorch_model.bin, either one sharded behind an index, config.json,
 * tokenizer files) from a path, a URL or browser Files, safely, straight into
 * statespace GPU tensors.
 *
 * @example
 * ```ts
 * import { Runtime } from '@statespace/core';
 * import { openModel, loadWeights } from '@statespace/checkpoint';
 * const runtime = await Runtime.create();
 * const model = await openModel('./mamba2-tiny');
 * const config = await model.config();
 * const weights = await loadWeights(runtime, await model.weights(), { dtype: 'f16' });
 * ```
 * @packageDocumentation
 */
export { CheckpointError, type CheckpointErrorCode, type CheckpointErrorLocation } from './errors.js';
export {
  SAFETENSORS_DTYPES,
  type SafetensorsDType,
  type HostArray,
  isSafetensorsDType,
  isFloatDType,
  dtypeByteSize,
  viewAs,
  toFloat32,
  f8E4M3ToF32,
  f8E5M2ToF32,
} from './dtypes.js';
export {
  type ByteSource,
  type ByteSourceInput,
  type UrlSourceOptions,
  bufferSource,
  blobSource,
  fileSource,
  urlSource,
  toByteSource,
  isPlainFileName,
} from './sources.js';
export {
  MAX_HEADER_BYTES,
  MAX_TENSORS,
  MAX_RANK,
  type TensorInfo,
  type SafetensorsHeader,
  type HostTensor,
  type Checkpoint,
  type TensorFile,
  SafetensorsFile,
  parseSafetensorsHeader,
  openSafetensors,
} from './safetensors.js';
export { type SafetensorsIndex, type ShardOpener, ShardedCheckpoint, parseSafetensorsIndex, openShardedCheckpoint, openShardedTorchCheckpoint } from './sharded-checkpoint.js';
export { type TensorToWrite, writeSafetensors } from './write-safetensors.js';
export { TorchCheckpoint, openTorchCheckpoint } from './torch-checkpoint.js';
export { MAX_PICKLE_BYTES, type PickleValue, type PickledStorage, type PickledTensor, type AllowedGlobal, readPickle } from './pickle-reader.js';
export { MAX_ZIP_ENTRIES, type ZipEntry, type ZipDirectory, readZipDirectory, zipEntryDataOffset } from './zip-reader.js';
export { type TensorView, viewCheckpoint } from './view-checkpoint.js';
export { type ConfigKey, type ConfigReader, type OptionalConfigReader, configReader, parseJson } from './config-reader.js';
export {
  type ExpectedTensor,
  type WeightMismatch,
  type WeightsReport,
  type CheckWeightsOptions,
  WeightsMismatchError,
  compareWeights,
  checkWeights,
} from './check-weights.js';
export { type ModelFiles, type ModelSource, type TokenizerFiles, ModelFolder, openModel } from './open-model.js';
export {
  type FloatDType,
  type DTypeChoice,
  type UploadOptions,
  type LoadProgress,
  type LoadWeightsOptions,
  gpuDType,
  uploadTensor,
  loadWeights,
} from './load-weights.js';
