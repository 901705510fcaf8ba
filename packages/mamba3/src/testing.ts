/**
 * CPU references of the Mamba-3 kernels and layer (sequential, f64), for tests: `@statespace/mamba3/testing`.
 *
 * @example
 * ```ts
 * import { mamba3MixerReference } from '@statespace/mamba3/testing';
 * const { out, state } = mamba3MixerReference(u, weights, config, 1, 37);
 * ```
 * @packageDocumentation
 */
export {
  type Mamba3HostParams,
  type Mamba3HostState,
  mamba3HostParams,
  mamba3MixerReference,
  mamba3OutNormReference,
  mamba3ScanReference,
  mamba3ZeroHostState,
  packMamba3State,
  unpackMamba3State,
} from './mamba3-reference.js';
