/**
 * @statespace/scan-wgsl: fused Mamba-1 selective scan and causal conv1d kernels in WGSL,
 * the Mamba-1 (S6) mixer layer built from them, and LFM2's gated short conv (kernel and mixer).
 *
 * @example
 * ```ts
 * import { Runtime } from '@statespace/core';
 * import { causalConv1d } from '@statespace/scan-wgsl';
 * const rt = await Runtime.create();
 * const state = rt.zeros([1, 8, 3]);
 * const y = causalConv1d(rt, rt.zeros([1, 5, 8]), rt.zeros([8, 1, 4]), undefined, state, { activation: 'silu' });
 * ```
 * @packageDocumentation
 */
export { type ColumnSlice, columns, copyColumns, createCopyColumnsKernel } from './columns.js';
export {
  CONV_SEQUENTIAL_MAX_SEQLEN,
  type CausalConv1dAttrs,
  type CausalConv1dDims,
  type CausalConv1dMode,
  type CausalConv1dOptions,
  type CausalConv1dShape,
  type ConvActivation,
  causalConv1d,
  causalConv1dReference,
  createCausalConv1dKernel,
} from './causal-conv1d.js';
export {
  SCAN_MAX_SEGMENTS,
  SCAN_MAX_STATE,
  SCAN_MIN_SEGMENT,
  SCAN_STEPS_PER_DISPATCH,
  SCAN_TARGET_WORKGROUPS,
  SCAN_THREADS,
  type ScanTiling,
  type SelectiveScanAttrs,
  type SelectiveScanHostInputs,
  type SelectiveScanInputs,
  type SelectiveScanOptions,
  type SelectiveScanShape,
  WGSL_SOFTPLUS,
  createSelectiveScanKernel,
  scanCarryFloats,
  scanSegments,
  scanTiling,
  selectiveScan,
  selectiveScanReference,
  softplusReference,
} from './selective-scan.js';
export { type BcdtNormKind, type BcdtNormOptions, bcdtNorm, bcdtNormReference, createBcdtNormKernel } from './bcdt-norm.js';
export { type Mamba1DecodeWeights, createPackColumnsKernel, decodeParamStride, packMamba1DecodeParams } from './mamba1-decode-params.js';
export { type ConvXProjAttrs, type ConvXProjInputs, convXProj, convXProjReference, createConvXProjKernel } from './conv-x-proj.js';
export {
  DT_SCAN_MAX_ROW,
  type DtScanStepAttrs,
  type DtScanStepHostInputs,
  type DtScanStepInputs,
  type DtScanStepOptions,
  createDtScanStepKernel,
  dtScanStep,
  dtScanStepReference,
} from './dt-scan-step.js';
export { type Mamba1Config, type Mamba1HostState, Mamba1Mixer, Mamba1State, mamba1MixerReference } from './mamba1-mixer.js';
export {
  type GatedShortConvAttrs,
  type GatedShortConvShape,
  createGatedShortConvKernel,
  gatedShortConv,
  gatedShortConvReference,
} from './gated-short-conv.js';
export { type ShortConvConfig, ShortConvMixer, ShortConvState, shortConvMixerReference } from './short-conv-mixer.js';
