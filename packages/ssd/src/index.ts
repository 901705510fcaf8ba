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
export * from './ssd-shape.js';
export * from './ssd-chunk-cumsum.js';
export * from './ssd-chunk-state.js';
export * from './ssd-state-passing.js';
export * from './ssd-bmm.js';
export * from './ssd-chunk-scan.js';
export * from './ssd.js';
export * from './ssd-decode.js';
export * from './mamba2-mixer.js';
export * from './mamba2-mixer-reference.js';
