/**
 * Initial values of an S4D layer's weights, as state-spaces/s4 initialises them: log dt uniform in
 * [log dt_min, log dt_max), C a standard complex normal, Re(A) = −1/2, and Im(A) from
 *
 *   S4D-Lin  Im(A_n) = π·n                          (S4D paper section 4; `models/s4/s4d.py`)
 *   S4D-Inv  Im(A_n) = (N/π)·(N/(2n+1) − 1)         (S4D paper section 4; `src/models/sequence/kernels/dplr.py` 'inv')
 *
 * for n = 0..N/2−1; D a standard normal; the output Conv1d(H, 2H, 1) uniform in ±1/√H (PyTorch's default).
 * Seeded by a small PRNG of its own, not PyTorch's: the values differ, the distributions do not.
 *
 * Shape glossary (packages/core/README.md, and s4d-params.ts): H channels, N d_state, modes = N/2.
 */
import { StatespaceError, seededRandom } from '@statespace/core';

/** How an S4D layer's weights are initialised. */
export interface S4DInit {
  /** Channels H. */
  hiddenSize: number;
  /** d_state N (even): N/2 complex modes. */
  stateSize: number;
  /** 'lin' (S4D-Lin, default) or 'inv' (S4D-Inv). */
  init?: 'lin' | 'inv';
  /** Smallest step size (default 0.001). */
  dtMin?: number;
  /** Largest step size (default 0.1). */
  dtMax?: number;
  /** A second C for the reversed direction. */
  bidirectional?: boolean;
}

/**
 * Im(A) of mode n under S4D-Lin or S4D-Inv, for d_state N.
 *
 * @example
 * ```ts
 * s4dImagInit('lin', 64, 3); // 3π
 * s4dImagInit('inv', 64, 0); // (64/π)·63
 * ```
 */
export function s4dImagInit(init: 'lin' | 'inv', N: number, n: number): number {
  return init === 'lin' ? Math.PI * n : (N / Math.PI) * (N / (2 * n + 1) - 1);
}

/**
 * Seeded initial values of every weight of an S4D layer, by name relative to the layer (state-spaces/s4's names).
 *
 * @throws StatespaceError `INVALID_CONFIG` for an odd or non-positive d_state, or dt bounds that are not 0 < dtMin ≤ dtMax.
 * @example
 * ```ts
 * const values = s4dInitWeights({ hiddenSize: 24, stateSize: 64, init: 'inv' }, 1);
 * values['kernel.A_imag']; // Float32Array (24·32)
 * ```
 */
export function s4dInitWeights(config: S4DInit, seed: number): Record<string, Float32Array> {
  const { hiddenSize: H, stateSize: N } = config;
  const dtMin = config.dtMin ?? 0.001;
  const dtMax = config.dtMax ?? 0.1;
  if (!(Number.isInteger(N) && N >= 2 && N % 2 === 0)) throw new StatespaceError('INVALID_CONFIG', `s4dInitWeights: stateSize=${N} must be a positive even integer (N/2 complex modes)`);
  if (!(dtMin > 0 && dtMax >= dtMin)) throw new StatespaceError('INVALID_CONFIG', `s4dInitWeights: dtMin=${dtMin}, dtMax=${dtMax} must satisfy 0 < dtMin ≤ dtMax`);
  const modes = N / 2;
  const channels = config.bidirectional ? 2 : 1;
  const uniform = seededRandom((seed * 2654435761 + 1) >>> 0 || 1);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12))) * Math.cos(2 * Math.PI * uniform());
  const fill = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));
  const bound = 1 / Math.sqrt(H);
  return {
    D: fill(H, normal),
    'kernel.log_dt': fill(H, () => Math.log(dtMin) + uniform() * (Math.log(dtMax) - Math.log(dtMin))),
    'kernel.C': fill(channels * H * modes * 2, () => normal() * Math.SQRT1_2),
    'kernel.log_A_real': fill(H * modes, () => Math.log(0.5)),
    'kernel.A_imag': fill(H * modes, (i) => s4dImagInit(config.init ?? 'lin', N, i % modes)),
    'output_linear.0.weight': fill(2 * H * H, () => (2 * uniform() - 1) * bound),
    'output_linear.0.bias': fill(2 * H, () => (2 * uniform() - 1) * bound),
  };
}
