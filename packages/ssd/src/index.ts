/**
 * @statespace/ssd: Mamba-2 state space duality (chunked SSD) on WebGPU, the
 * decode step, and the Mamba-2 mixer layer used by Mamba2ForCausalLM and the
 * hybrids (Bamba, Granite 4.0 hybrid, Nemotron-H, Falcon-H1, Zamba2).
 *
 * @example
 * ```ts
 * import { Runtime } from '@statespace/core';
 * import { Mamba2Mixer } from '@statespace/ssd';
 * const rt = await Runtime.create();
 * const mixer = new Mamba2Mixer(rt, config, weights);
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state); // x (1, seqlen, hidden)
 * ```
 * @packageDocumentation
 */
export {
  F32_MAX,
  SSD_MAX_CHUNK,
  type SsdDtAttrs,
  type SsdOperand,
  type SsdShape,
  type SsdStridedOperand,
  WGSL_SOFTPLUS_DT,
  checkPerHead,
  finiteLimit,
  numChunks,
  resolveOperand,
  validateSsdShape,
} from './ssd-shape.js';
export { type SsdChunkCumsumAttrs, createSsdChunkCumsumKernel, ssdChunkCumsum, ssdChunkCumsumReference, ssdDtReference } from './ssd-chunk-cumsum.js';
export { createSsdChunkStateKernel, ssdChunkState, ssdChunkStateReference } from './ssd-chunk-state.js';
export { createSsdStatePassingKernel, ssdStatePassing, ssdStatePassingReference } from './ssd-state-passing.js';
export { createSsdBmmKernel, ssdBmm, ssdBmmReference } from './ssd-bmm.js';
export { createSsdChunkScanKernel, ssdChunkScan, ssdChunkScanReference } from './ssd-chunk-scan.js';
export { type SsdInputs, type SsdReferenceInputs, ssdChunked, ssdQuadraticReference, ssdRecurrentReference } from './ssd.js';
export { type SsdStepInputs, type SsdStepShape, type Strided, createSsdDecodeKernel, ssdDecodeStep, ssdDecodeStepReference } from './ssd-decode.js';
export { Mamba2Mixer, type Mamba2MixerConfig, Mamba2State } from './mamba2-mixer.js';
export { type Mamba2ReferenceState, mamba2MixerReference } from './mamba2-mixer-reference.js';
