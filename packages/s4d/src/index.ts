/**
 * @statespace/s4d: S4D, the diagonal linear time-invariant state space model (Gu, Gupta, Goel & Ré 2022), in
 * WGSL: the Vandermonde kernel, a chunked long convolution for prefill (O(L·Q)), the complex recurrence for decode, and the
 * layer of state-spaces/s4 `models/s4/s4d.py` as a sequence mixer.
 *
 * @example
 * ```ts
 * import { Runtime } from '@statespace/core';
 * import { S4DMixer } from '@statespace/s4d';
 * const rt = await Runtime.create();
 * const mixer = new S4DMixer(rt, { hiddenSize: 24, stateSize: 64 }, weightsOfLayer); // state-spaces/s4's names
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state); // x (1, seqlen, 24)
 * ```
 * @packageDocumentation
 */
export { type S4DParams, type S4DSizes, S4D_PARAM_BINDINGS, WGSL_S4D_COMPLEX, s4dSizes } from './s4d-params.js';
export { createS4DVandermondeKernel, s4dKernel } from './s4d-kernel.js';
export { type S4DConvAttrs, S4D_CONV_TILE, createS4DConvKernel, s4dConv } from './s4d-conv.js';
export { type S4DStepAttrs, createS4DRecurrenceKernel, s4dAdvanceState, s4dStep } from './s4d-step.js';
export { createS4DStateOutputKernel, s4dStateOutput } from './s4d-state-output.js';
export { createS4DChunkScanKernel, createS4DChunkStatesKernel, s4dChunkStates } from './s4d-chunk-states.js';
export { type S4DPrefillAttrs, S4D_PREFILL_CHUNK, s4dPrefill } from './s4d-prefill.js';
export { createSigmoidGluKernel, sigmoidGlu } from './sigmoid-glu.js';
export { type S4DInit, s4dImagInit, s4dInitWeights } from './s4d-init.js';
export { type S4DConfig, S4DMixer, S4DState } from './s4d-mixer.js';
