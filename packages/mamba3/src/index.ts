/**
 * @statespace/mamba3: the Mamba-3 layer of state-spaces/mamba (`mamba_ssm/modules/mamba3.py`; Lahoti et al. 2026)
 * in WGSL: trapezoidal discretisation, data-dependent A (floored), RMS-normed B and C with learned biases, the rotary
 * "complex" state, the optional output norm and MIMO; a scan kernel for prefill (chunks of tokens through workgroup
 * memory, the state in registers) that is also the fused one-dispatch decode step, and the mixer.
 *
 * @example
 * ```ts
 * import { Runtime } from '@statespace/core';
 * import { Mamba3Mixer } from '@statespace/mamba3';
 * const rt = await Runtime.create();
 * const mixer = new Mamba3Mixer(rt, config, weightsOfLayer); // mamba_ssm's names (in_proj.weight, dt_bias, B_bias, ...)
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state); // x (1, seqlen, d_model)
 * ```
 * @packageDocumentation
 */
export { MAMBA3_TOKENS_PER_DISPATCH, type Mamba3Config, type Mamba3Dims, mamba3Dims, mamba3RopeAngles } from './mamba3-shape.js';
export {
  MAMBA3_LANES,
  MAMBA3_ROWS,
  type Mamba3Params,
  type Mamba3ScanAttrs,
  createMamba3ScanKernel,
  mamba3Scan,
  mamba3ScanTiling,
  mamba3StateStride,
  mamba3Tiles,
} from './mamba3-scan.js';
export { createMamba3OutNormKernel, mamba3OutNorm } from './mamba3-out-norm.js';
export { type Mamba3Init, mamba3InitWeights } from './mamba3-init.js';
export { Mamba3Mixer, Mamba3State } from './mamba3-mixer.js';
