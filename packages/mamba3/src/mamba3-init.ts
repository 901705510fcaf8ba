/**
 * Initial values of a Mamba-3 layer as mamba3.py's `Mamba3.__init__` draws them, for composed models with random
 * weights: dt_bias the inverse softplus of a log-uniform dt in [dt_min, dt_max] (floored at dt_init_floor),
 * B_bias = C_bias = 1, the norms 1, D = 1, mimo_x = mimo_o = 1/rank, mimo_z = 1, and in_proj / out_proj as
 * nn.Linear's default (uniform in ±1/√fan_in).
 */
import { seededRandom } from '@statespace/core';
import { type Mamba3Config, mamba3Dims } from './mamba3-shape.js';

/** dt range of the dt_bias init (mamba3.py's defaults). */
export interface Mamba3Init {
  dtMin?: number;
  dtMax?: number;
  dtInitFloor?: number;
}

/**
 * Seeded initial weights of one layer, keyed by mamba_ssm's names (see `Mamba3Mixer.expectedWeights`).
 *
 * @example
 * ```ts
 * const values = mamba3InitWeights(config, 1);
 * const weights = Object.fromEntries(Mamba3Mixer.expectedWeights(config).map((s) => [s.name, rt.upload(values[s.name], s.shape)]));
 * ```
 */
export function mamba3InitWeights(config: Mamba3Config & Mamba3Init, seed: number): Record<string, Float32Array> {
  const d = mamba3Dims(config);
  const random = seededRandom(seed);
  const { dtMin = 0.001, dtMax = 0.1, dtInitFloor = 1e-4 } = config;
  const linear = (rows: number, cols: number) => Float32Array.from({ length: rows * cols }, () => (2 * random() - 1) / Math.sqrt(cols));
  const fill = (n: number, v: number) => new Float32Array(n).fill(v);
  const dtBias = Float32Array.from({ length: d.H }, () => {
    const dt = Math.max(dtInitFloor, Math.exp(random() * (Math.log(dtMax) - Math.log(dtMin)) + Math.log(dtMin)));
    return dt + Math.log(-Math.expm1(-dt));
  });
  const w: Record<string, Float32Array> = {
    'in_proj.weight': linear(d.W, d.D),
    dt_bias: dtBias,
    B_bias: fill(d.H * d.rank * d.N, 1),
    C_bias: fill(d.H * d.rank * d.N, 1),
    'B_norm.weight': fill(d.N, 1),
    'C_norm.weight': fill(d.N, 1),
    D: fill(d.H, 1),
    'out_proj.weight': linear(d.D, d.I),
  };
  if (config.mimo) {
    w['mimo_x'] = fill(d.H * d.rank * d.P, 1 / d.rank);
    w['mimo_z'] = fill(d.H * d.rank * d.P, 1);
    w['mimo_o'] = fill(d.H * d.rank * d.P, 1 / d.rank);
  }
  if (config.outProjNorm) w['norm.weight'] = fill(d.I, 1);
  return w;
}
