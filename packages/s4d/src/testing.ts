/**
 * CPU references of the S4D kernels and layer (sequential, f64), for tests: `@statespace/s4d/testing`.
 *
 * @example
 * ```ts
 * import { s4dRecurrenceReference } from '@statespace/s4d/testing';
 * const { y, state } = s4dRecurrenceReference(u, host, 1, 37);
 * ```
 * @packageDocumentation
 */
export {
  type S4DHostParams,
  type S4DReferenceAttrs,
  s4dConvReference,
  s4dKernelReference,
  s4dLayerReference,
  s4dRecurrenceReference,
  s4dStateOutputReference,
} from './s4d-reference.js';
export { randomS4DHostParams, uploadS4DParams } from './s4d-random-params.js';
