/**
 * The Mamba-3 layer of state-spaces/mamba (`mamba_ssm/modules/mamba3.py`, `Mamba3.forward` and `Mamba3.step`) as a
 * {@link SequenceMixer}:
 *
 *   zxbcdt = in_proj(u)                               (B, L, W): [z, x, B, C, dd_dt, dd_A, trap, angles]
 *   y = mamba3Scan(zxbcdt, state)                     trapezoidal recurrence with the rotary state; L = 1: the fused
 *                                                     decode step (one dispatch)
 *   y = mamba3OutNorm(y, z)                           only with is_outproj_norm (SISO and MIMO)
 *   out = out_proj(y)
 *
 * A decode token takes 3 dispatches (in_proj, the step, out_proj), 4 with the output norm.
 *
 * Shape glossary (mamba3-shape.ts): B batch, L seqlen, D d_model, H heads, P head dim, I = H·P, N d_state,
 * G groups, rank (MIMO rank; 1 for SISO), angles (rotary angles, num_rope_angles), W in_proj width.
 */
import {
  type LayerWeights,
  type Runtime,
  type SequenceMixer,
  type Tensor,
  type WeightSpec,
  RecurrentState,
  checkLayerWeights,
  checkMixerInput,
  assertArg,
  matmul,
} from '@statespace/core';
import { mamba3OutNorm } from './mamba3-out-norm.js';
import { type Mamba3Params, mamba3Scan, mamba3StateStride } from './mamba3-scan.js';
import { MAMBA3_TOKENS_PER_DISPATCH, type Mamba3Config, type Mamba3Dims, mamba3Dims } from './mamba3-shape.js';

/**
 * State of a Mamba-3 layer: (B, H, {@link mamba3StateStride}) f32 in `ssm` (S, v_prev, and each P-tile's
 * k_prev and θ: mamba3.py's ssm_state, v_state, k_state, angle_dt_state); no conv window (`conv` is empty).
 *
 * @example
 * ```ts
 * const state = mixer.createState(1);
 * mixer.forward(prompt, state);
 * const fork = state.clone();
 * ```
 */
export class Mamba3State extends RecurrentState {}

/**
 * A Mamba-3 layer, SISO or MIMO, weights keyed by mamba_ssm's names relative to the mixer
 * (`backbone.layers.N.mixer.` stripped): `in_proj.weight`, `dt_bias`, `B_bias`, `C_bias`, `B_norm.weight`,
 * `C_norm.weight`, `D`, `out_proj.weight`, and `mimo_x` / `mimo_z` / `mimo_o` (MIMO), `norm.weight` (output norm).
 *
 * @example
 * ```ts
 * const config = { hiddenSize: 40, numHeads: 5, headDim: 16, stateSize: 16, nGroups: 1, ropeFraction: 0.5, aFloor: 1e-4, mimo: false, outProjNorm: false } as const;
 * const mixer = new Mamba3Mixer(rt, config, weights); // e.g. uploads of mamba3InitWeights(config, 1)
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state);   // x (1, L, 40): prefill
 * const y1 = mixer.forward(x1, state); // x1 (1, 1, 40): the fused decode step
 * ```
 */
export class Mamba3Mixer implements SequenceMixer<Mamba3State> {
  readonly kind = 'mamba3';
  readonly config: Mamba3Config;
  private readonly runtime: Runtime;
  private readonly w: LayerWeights;
  private readonly d: Mamba3Dims;
  private readonly params: Mamba3Params;

  constructor(runtime: Runtime, config: Mamba3Config, weights: LayerWeights) {
    const op = 'Mamba3Mixer';
    this.d = mamba3Dims(config);
    const T = config.tokensPerDispatch;
    assertArg(T === undefined || (Number.isInteger(T) && T >= 1), op, `tokensPerDispatch=${T} must be a positive integer`);
    checkLayerWeights(op, Mamba3Mixer.expectedWeights(config), weights);
    this.runtime = runtime;
    this.config = config;
    this.w = weights;
    const { H, rank, N, P } = this.d;
    this.params = {
      dtBias: weights['dt_bias'],
      bBias: weights['B_bias'].reshape([H, rank, N]),
      cBias: weights['C_bias'].reshape([H, rank, N]),
      bNorm: weights['B_norm.weight'],
      cNorm: weights['C_norm.weight'],
      D: weights['D'],
      mimoX: config.mimo ? weights['mimo_x'].reshape([H, rank, P]) : undefined,
      mimoZ: config.mimo ? weights['mimo_z'].reshape([H, rank, P]) : undefined,
      mimoO: config.mimo ? weights['mimo_o'].reshape([H, rank, P]) : undefined,
      aFloor: config.aFloor,
    };
  }

  /**
   * The weights a layer of this configuration needs (mamba_ssm's names and shapes).
   *
   * @example
   * ```ts
   * Mamba3Mixer.expectedWeights(config).map((w) => w.name); // ['in_proj.weight', 'dt_bias', 'B_bias', ...]
   * ```
   */
  static expectedWeights(config: Mamba3Config): WeightSpec[] {
    const d = mamba3Dims(config);
    const specs: WeightSpec[] = [
      { name: 'in_proj.weight', shape: [d.W, d.D] },
      { name: 'dt_bias', shape: [d.H], dtype: 'f32' },
      { name: 'B_bias', shape: [d.H, d.rank, d.N], dtype: 'f32' },
      { name: 'C_bias', shape: [d.H, d.rank, d.N], dtype: 'f32' },
      { name: 'B_norm.weight', shape: [d.N], dtype: 'f32' },
      { name: 'C_norm.weight', shape: [d.N], dtype: 'f32' },
      { name: 'D', shape: [d.H], dtype: 'f32' },
    ];
    if (config.mimo) for (const name of ['mimo_x', 'mimo_z', 'mimo_o']) specs.push({ name, shape: [d.H, d.rank, d.P], dtype: 'f32' });
    if (config.outProjNorm) specs.push({ name: 'norm.weight', shape: [d.I], dtype: 'f32' });
    specs.push({ name: 'out_proj.weight', shape: [d.D, d.I] });
    return specs;
  }

  createState(batch: number): Mamba3State {
    assertArg(Number.isInteger(batch) && batch >= 1, 'Mamba3Mixer.createState', `batch=${batch} must be a positive integer`);
    return new Mamba3State(this.runtime, batch, { conv: [batch, 0], ssm: [batch, this.d.H, mamba3StateStride(this.d)] }, 'mamba3');
  }

  forward(x: Tensor, state: Mamba3State): Tensor {
    const op = 'Mamba3Mixer.forward';
    const rt = this.runtime;
    const D = this.d.D;
    const [B, L] = checkMixerInput(op, x, D, state.batch);
    if (L === 0) return rt.empty([B, 0, D], 'f32', 'mamba3.out');
    const zxbcdt = matmul(rt, x, this.w['in_proj.weight']);
    const norm = this.config.outProjNorm;
    const y = mamba3Scan(rt, zxbcdt, this.params, this.d, state.ssm, {
      mimo: this.config.mimo,
      perRank: norm,
      tokensPerDispatch: this.config.tokensPerDispatch ?? MAMBA3_TOKENS_PER_DISPATCH,
    });
    let pre = y;
    if (norm) {
      pre = mamba3OutNorm(rt, y, zxbcdt, this.w['norm.weight'], this.d, this.config.mimo ? { mimoZ: this.params.mimoZ!, mimoO: this.params.mimoO! } : undefined);
      y.dispose();
    }
    const out = matmul(rt, pre, this.w['out_proj.weight']);
    pre.dispose();
    zxbcdt.dispose();
    state.advance(L);
    return out;
  }
}
