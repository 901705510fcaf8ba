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
export * from './s4d-params.js';
export * from './s4d-kernel.js';
export * from './s4d-conv.js';
export * from './s4d-step.js';
export * from './s4d-state-output.js';
export * from './s4d-chunk-states.js';
export * from './s4d-prefill.js';
export * from './sigmoid-glu.js';
export * from './s4d-init.js';
export * from './s4d-mixer.js';
