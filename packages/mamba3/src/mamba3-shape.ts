/**
 * Sizes of a Mamba-3 layer (state-spaces/mamba `mamba_ssm/modules/mamba3.py`, Lahoti et al. 2026, "Mamba-3:
 * Improved Sequence Modeling using State Space Principles") and the column layout of its in_proj output.
 *
 * Shape glossary (packages/core/README.md): B batch, L seqlen, D d_model, H heads, P head dim, I = H·P,
 * N d_state, G groups (B and C shared by H / G heads), rank (MIMO rank, 1 for SISO), angles (rotary
 * angles, num_rope_angles), W in_proj width: a row of in_proj's output.
 *
 *   in_proj(u) = [z (I), x (I), B (rank·G·N), C (rank·G·N), dd_dt (H), dd_A (H), trap (H), angles (angles)]   W columns
 *
 * B and C are laid out `(r g n)` as mamba3.py's rearrange reads them.
 */
import { StatespaceError, assertArg } from '@statespace/core';

/** Configuration of a Mamba-3 layer (mamba3.py's `Mamba3.__init__` options that change what it computes). */
export interface Mamba3Config {
  /** D (d_model). */
  hiddenSize: number;
  /** H = expand·d_model / headdim. */
  numHeads: number;
  /** P (headdim). */
  headDim: number;
  /** N (d_state). */
  stateSize: number;
  /** G (ngroups): B and C are shared by groups of H / G heads. */
  nGroups: number;
  /** 0.5 or 1: the share of d_state that rotates (mamba3.py's `rope_fraction`). */
  ropeFraction: 0.5 | 1;
  /** A is clamped to at most −aFloor (mamba3.py's `A_floor`, default 1e-4). */
  aFloor: number;
  /** MIMO (`is_mimo`): rank-rank up/down projections mimo_x, mimo_z, mimo_o, and the halves rotation pairing. */
  mimo: boolean;
  /** rank (`mimo_rank`) when `mimo`; SISO layers have rank 1. */
  mimoRank?: number;
  /** `is_outproj_norm`: a grouped RMSNorm (groups of P, norm before the silu(z) gate) before out_proj. */
  outProjNorm: boolean;
  /** Epsilon of the B/C norms and the output norm (mamba3.py hard-codes 1e-5). */
  normEps?: number;
  /**
   * Tokens per scan dispatch (default {@link MAMBA3_TOKENS_PER_DISPATCH}): a longer prompt runs in several
   * dispatches that carry the state, so no dispatch runs for long.
   */
  tokensPerDispatch?: number;
}

/** Default tokens per scan dispatch (see {@link Mamba3Config.tokensPerDispatch}). */
export const MAMBA3_TOKENS_PER_DISPATCH = 1024;

/** Sizes derived from a {@link Mamba3Config}. */
export interface Mamba3Dims {
  D: number;
  H: number;
  P: number;
  I: number;
  N: number;
  G: number;
  rank: number;
  angles: number;
  /** in_proj width. */
  W: number;
  /** Column offsets of in_proj's output. */
  xOff: number;
  bOff: number;
  cOff: number;
  dtOff: number;
  aOff: number;
  trapOff: number;
  angOff: number;
  /** Rotation pairs (2i, 2i+1) for SISO, (i, i + N/2) for MIMO. */
  pairwise: boolean;
  eps: number;
}

/**
 * The number of rotary angles (`angles`): mamba3.py's `int(d_state·rope_fraction)` made even, halved.
 *
 * @example
 * ```ts
 * mamba3RopeAngles(16, 0.5); // 4
 * mamba3RopeAngles(12, 1); // 6
 * ```
 */
export function mamba3RopeAngles(N: number, ropeFraction: number): number {
  let split = Math.floor(N * ropeFraction);
  if (split % 2 !== 0) split -= 1;
  return split / 2;
}

/**
 * Validates a {@link Mamba3Config} and derives its sizes and column offsets.
 *
 * @throws StatespaceError `INVALID_ARGUMENT` naming the option (non-positive sizes, H not a multiple of G,
 *   rope_fraction other than 0.5 / 1, no rotary angle, an odd d_state with MIMO's halves rotation).
 * @example
 * ```ts
 * const d = mamba3Dims({ hiddenSize: 40, numHeads: 5, headDim: 16, stateSize: 16, nGroups: 1, ropeFraction: 0.5, aFloor: 1e-4, mimo: false, outProjNorm: false });
 * d.W; // 211 = 2·80 + 2·16 + 3·5 + 4
 * ```
 */
export function mamba3Dims(config: Mamba3Config): Mamba3Dims {
  const op = 'Mamba3';
  for (const k of ['hiddenSize', 'numHeads', 'headDim', 'stateSize', 'nGroups'] as const) {
    assertArg(Number.isInteger(config[k]) && config[k] >= 1, op, `config.${k} must be a positive integer, got ${config[k]}`);
  }
  const rank = config.mimo ? (config.mimoRank ?? 4) : 1;
  assertArg(Number.isInteger(rank) && rank >= 1, op, `config.mimoRank must be a positive integer, got ${config.mimoRank}`);
  assertArg(config.ropeFraction === 0.5 || config.ropeFraction === 1, op, `config.ropeFraction must be 0.5 or 1 (mamba3.py's rope_fraction), got ${config.ropeFraction}`);
  assertArg(Number.isFinite(config.aFloor) && config.aFloor >= 0, op, `config.aFloor must be a non-negative number, got ${config.aFloor}`);
  const { hiddenSize: D, numHeads: H, headDim: P, stateSize: N, nGroups: G } = config;
  assertArg(H % G === 0, op, `numHeads=${H} must be a multiple of nGroups=${G}`);
  const angles = mamba3RopeAngles(N, config.ropeFraction);
  assertArg(angles >= 1, op, `stateSize=${N} with ropeFraction ${config.ropeFraction} leaves no rotary angle (mamba3.py asserts num_rope_angles > 0)`);
  if (config.mimo && N % 2 !== 0) {
    throw new StatespaceError('INVALID_ARGUMENT', `${op}: stateSize=${N} must be even for MIMO (its rotation pairs entry i with i + N/2)`);
  }
  const I = H * P;
  const bc = rank * G * N;
  const xOff = I;
  const bOff = 2 * I;
  const cOff = bOff + bc;
  const dtOff = cOff + bc;
  return {
    D,
    H,
    P,
    I,
    N,
    G,
    rank,
    angles,
    W: dtOff + 3 * H + angles,
    xOff,
    bOff,
    cOff,
    dtOff,
    aOff: dtOff + H,
    trapOff: dtOff + 2 * H,
    angOff: dtOff + 3 * H,
    pairwise: !config.mimo,
    eps: config.normEps ?? 1e-5,
  };
}
