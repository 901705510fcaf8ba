/**
 * The Mamba-1 (S6) mixer: transformers' `MambaMixer` (and FalconMamba's and Jamba's
 * variants with RMS norms on dt, B and C) on the fused kernels of this package.
 *
 * Shape glossary:
 *   b  batch      L  seqlen      H  hidden_size      D  intermediate_size (d_inner)
 *   N  state_size (d_state)      R  time_step_rank   k  conv_kernel
 *
 *   xz   = in_proj(u)                          (b, L, 2D)   x = xz[..., :D], z = xz[..., D:]
 *   xc   = silu(causal_conv1d(x))              (b, L, D)    conv state (b, D, k-1)
 *   xdbl = x_proj(xc)                          (b, L, R + 2N) = [time_step | B | C]
 *          (+ RMS norms on time_step, B, C for FalconMamba / Jamba)
 *   dt   = dt_proj.weight · time_step          (b, L, D)    dt_proj.bias + softplus in the scan
 *   y    = selective_scan(xc, dt, A_log, B, C, D, z)        ssm state (b, D, N)
 *   out  = out_proj(y)                         (b, L, H)
 *
 * Long prompts run in chunks of `prefillChunk` tokens (the conv and ssm states carry
 * across chunks exactly as across calls), so the working memory beyond the input and
 * output stays bounded by the chunk size.
 *
 * A decode step (seqlen 1) with `runtime.fastKernels` takes 4 dispatches instead of 7:
 * norm + in_proj, {@link convXProj} (conv + x_proj), {@link dtScanStep} (bcdt norms, dt_proj,
 * softplus, conv state roll, scan step, D skip, z gate) and out_proj. Where the block norm is pending
 * and the device binds enough storage buffers, the conv runs in norm + in_proj's epilogue instead
 * (it rolls the conv state there), and the next two kernels read the convolved x.
 */
import {
  type LayerWeights,
  type Runtime,
  type SequenceMixer,
  type Tensor,
  type WeightSpec,
  StatespaceError,
  isFloatWeightDType,
  linear,
  matmul,
  matmulReference,
  normedTensor,
  PendingNorm,
  RecurrentState,
} from '@statespace/core';
import { type BcdtNormKind, bcdtNorm, bcdtNormReference } from './bcdt-norm.js';
import { causalConv1d, causalConv1dReference } from './causal-conv1d.js';
import { columns } from './columns.js';
import { convXProj } from './conv-x-proj.js';
import { DT_SCAN_MAX_ROW, dtScanStep } from './dt-scan-step.js';
import { packMamba1DecodeParams } from './mamba1-decode-params.js';
import { SCAN_MAX_STATE, selectiveScan, selectiveScanReference } from './selective-scan.js';

/** Configuration of a {@link Mamba1Mixer}, in transformers' terms. */
export interface Mamba1Config {
  /** d_model (hidden_size). */
  hiddenSize: number;
  /** d_inner (intermediate_size; Jamba: mamba_expand · hidden_size). */
  intermediateSize: number;
  /** d_state (state_size; Jamba: mamba_d_state). */
  stateSize: number;
  /** conv_kernel (Jamba: mamba_d_conv). */
  convKernel: number;
  /** time_step_rank (Jamba: mamba_dt_rank). */
  timeStepRank: number;
  /** in_proj and out_proj have biases (use_bias; Jamba: mamba_proj_bias). */
  useBias: boolean;
  /** conv1d has a bias (use_conv_bias; Jamba: mamba_conv_bias). */
  useConvBias: boolean;
  /** RMS norms on dt, B, C: 'none' (Mamba), 'unweighted' (FalconMamba), 'weighted' (Jamba). */
  bcdtNorm?: BcdtNormKind;
  /** eps of those norms (FalconMamba: mixer_rms_eps; Jamba: rms_norm_eps). */
  normEps: number;
  /** Tokens per prefill chunk (default 8192). */
  prefillChunk?: number;
}

const DEFAULT_PREFILL_CHUNK = 8192;

function dims(config: Mamba1Config) {
  return {
    H: config.hiddenSize,
    D: config.intermediateSize,
    N: config.stateSize,
    k: config.convKernel,
    R: config.timeStepRank,
  };
}

/**
 * Conv and ssm state of one Mamba-1 layer for `batch` sequences.
 *
 * @example
 * ```ts
 * const state = mixer.createState(1);
 * mixer.forward(prompt, state);
 * const copy = state.clone();           // branch the generation
 * const bytes = await state.save();     // and restore it later with state.load(bytes)
 * ```
 */
export class Mamba1State extends RecurrentState {}

/**
 * A Mamba-1 mixer layer (Mamba, FalconMamba, Jamba's Mamba layers).
 * Weights are keyed by transformers' names relative to the mixer (`in_proj.weight`,
 * `conv1d.weight`, ..., see {@link Mamba1Mixer.expectedWeights}); projections may be
 * f32, f16 or bf16.
 *
 * @example
 * ```ts
 * const mixer = new Mamba1Mixer(rt, { hiddenSize: 768, intermediateSize: 1536, stateSize: 16, convKernel: 4,
 *   timeStepRank: 48, useBias: false, useConvBias: true, normEps: 1e-5 }, weights);
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state);        // x (1, L, 768) prefill
 * const y1 = mixer.forward(x1, state);      // x1 (1, 1, 768) decode step
 * ```
 */
export class Mamba1Mixer implements SequenceMixer<Mamba1State> {
  readonly kind = 'mamba1';
  readonly fusesInputNorm = true;
  readonly config: Readonly<Mamba1Config>;
  private readonly runtime: Runtime;
  private readonly w: LayerWeights;
  /** The per-channel weights packed for the fused decode kernels (made once, when first needed). */
  private decodeParams: Tensor | null = null;

  /** The weights a mixer of this configuration needs, relative to the mixer's prefix. */
  static expectedWeights(config: Mamba1Config): WeightSpec[] {
    const { H, D, N, k, R } = dims(config);
    const specs: WeightSpec[] = [
      { name: 'in_proj.weight', shape: [2 * D, H] },
      ...(config.useBias ? [{ name: 'in_proj.bias', shape: [2 * D] }] : []),
      { name: 'conv1d.weight', shape: [D, 1, k] },
      ...(config.useConvBias ? [{ name: 'conv1d.bias', shape: [D] }] : []),
      { name: 'x_proj.weight', shape: [R + 2 * N, D] },
      { name: 'dt_proj.weight', shape: [D, R] },
      { name: 'dt_proj.bias', shape: [D] },
      { name: 'A_log', shape: [D, N], dtype: 'f32' as const },
      { name: 'D', shape: [D] },
      { name: 'out_proj.weight', shape: [H, D] },
      ...(config.useBias ? [{ name: 'out_proj.bias', shape: [H] }] : []),
    ];
    if (config.bcdtNorm === 'weighted') {
      specs.push({ name: 'dt_layernorm.weight', shape: [R] }, { name: 'b_layernorm.weight', shape: [N] }, { name: 'c_layernorm.weight', shape: [N] });
    }
    return specs;
  }

  constructor(runtime: Runtime, config: Mamba1Config, weights: LayerWeights) {
    const { N, k } = dims(config);
    if (!(N >= 1 && N <= SCAN_MAX_STATE)) throw new StatespaceError('INVALID_ARGUMENT', `Mamba1Mixer: stateSize ${N} is outside [1, ${SCAN_MAX_STATE}]`);
    if (!(k >= 1 && k <= 64)) throw new StatespaceError('INVALID_ARGUMENT', `Mamba1Mixer: convKernel ${k} is outside [1, 64]`);
    for (const spec of Mamba1Mixer.expectedWeights(config)) {
      const t = weights[spec.name];
      if (!t) throw new StatespaceError('MISSING_WEIGHT', `Mamba1Mixer: weight ${spec.name} [${spec.shape.join(',')}] is missing`);
      const same = (s: readonly number[]) => s.length === t.shape.length && s.every((d, i) => d === t.shape[i]);
      const ok = same(spec.shape) || (spec.name === 'conv1d.weight' && same([spec.shape[0], spec.shape[2]]));
      if (!ok) throw new StatespaceError('SHAPE_MISMATCH', `Mamba1Mixer: ${spec.name} has shape [${t.shape.join(',')}], expected [${spec.shape.join(',')}]`);
      if (!isFloatWeightDType(t.dtype)) throw new StatespaceError('DTYPE_MISMATCH', `Mamba1Mixer: ${spec.name} is ${t.dtype}, expected a float type`);
    }
    this.runtime = runtime;
    this.config = { ...config };
    this.w = weights;
    // Packed here rather than at the first step, so that the step a decode plan captures holds
    // only the 4 dispatches of a token (a runtime that turns fastKernels on later packs then).
    if (runtime.fastKernels && this.fusedDecodeFits()) this.packedParams();
  }

  /** Whether the 4-dispatch decode step applies to this configuration. */
  private fusedDecodeFits(): boolean {
    const { N, k, R } = dims(this.config);
    return k >= 2 && R + 2 * N <= DT_SCAN_MAX_ROW;
  }

  private packedParams(): Tensor {
    if (this.decodeParams) return this.decodeParams;
    const w = this.w;
    const weighted = this.config.bcdtNorm === 'weighted';
    this.decodeParams = packMamba1DecodeParams(this.runtime, {
      convWeight: w['conv1d.weight'],
      convBias: this.config.useConvBias ? w['conv1d.bias'] : undefined,
      dtBias: w['dt_proj.bias'],
      D: w['D'],
      aLog: w['A_log'],
      norms: weighted ? { dt: w['dt_layernorm.weight'], B: w['b_layernorm.weight'], C: w['c_layernorm.weight'] } : undefined,
    });
    return this.decodeParams;
  }

  /** Frees what the mixer made for itself (the packed decode weights); the weights it was given stay. */
  dispose(): void {
    this.decodeParams?.dispose();
    this.decodeParams = null;
  }

  createState(batch: number): Mamba1State {
    const { D, N, k } = dims(this.config);
    return new Mamba1State(this.runtime, batch, { conv: [batch, D, k - 1], ssm: [batch, D, N] }, 'mamba1');
  }

  forward(input: Tensor | PendingNorm, state: Mamba1State): Tensor {
    const x = input;
    const { H } = dims(this.config);
    if (x.shape.length !== 3 || x.shape[2] !== H) {
      throw new StatespaceError('SHAPE_MISMATCH', `Mamba1Mixer.forward: x has shape [${x.shape.join(',')}], expected [batch, seqlen, hidden=${H}]`);
    }
    if (x.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `Mamba1Mixer.forward: x must be f32, got ${x.dtype}`);
    const [batch, L] = x.shape;
    if (state.batch !== batch) throw new StatespaceError('SHAPE_MISMATCH', `Mamba1Mixer.forward: the state holds ${state.batch} sequences, x has batch ${batch}`);
    const chunk = Math.max(1, Math.floor(this.config.prefillChunk ?? DEFAULT_PREFILL_CHUNK));
    if (L <= chunk) return this.forwardChunk(L === 1 ? input : normedTensor(input), state);
    const xt = normedTensor(input);

    const rt = this.runtime;
    const out = rt.empty([batch, L, H], 'f32', 'mamba1.out');
    const rowBytes = H * 4;
    for (let t0 = 0; t0 < L; t0 += chunk) {
      const n = Math.min(chunk, L - t0);
      const part = rt.empty([batch, n, H], 'f32', 'mamba1.chunk');
      for (let b = 0; b < batch; b++) rt.copy(xt, part, n * rowBytes, (b * L + t0) * rowBytes, b * n * rowBytes);
      const y = this.forwardChunk(part, state);
      for (let b = 0; b < batch; b++) rt.copy(y, out, n * rowBytes, b * n * rowBytes, (b * L + t0) * rowBytes);
      part.dispose();
      y.dispose();
    }
    return out;
  }

  private forwardChunk(x: Tensor | PendingNorm, state: Mamba1State): Tensor {
    const rt = this.runtime;
    const w = this.w;
    const { D, N, R } = dims(this.config);
    const L = x.shape[1];
    const fusedStep = L === 1 && rt.fastKernels && this.fusedDecodeFits();
    if (fusedStep && x instanceof PendingNorm) {
      // norm + in_proj with the causal conv of x in its epilogue (x half of xz = silu(conv(x)), state rolled)
      const conv = { weight: w['conv1d.weight'], bias: this.config.useConvBias ? w['conv1d.bias'] : undefined, state: state.conv, start: 0, activation: 'silu' as const };
      const xzc = x.fusedConv(w['in_proj.weight'], conv, { bias: w['in_proj.bias'] });
      if (xzc) return this.decodeStep(xzc, state, true);
    }
    const xz = linear(rt, x, w['in_proj.weight'], { bias: w['in_proj.bias'] }); // (b, L, 2D)
    if (fusedStep) return this.decodeStep(xz, state, false);
    const xc = causalConv1d(rt, columns(xz, 0, D), w['conv1d.weight'], w['conv1d.bias'], state.conv, { activation: 'silu' }); // (b, L, D)
    const xdbl = matmul(rt, xc, w['x_proj.weight']); // (b, L, R + 2N)
    const kind = this.config.bcdtNorm ?? 'none';
    const ts = bcdtNorm(rt, xdbl, {
      rank: R,
      dState: N,
      kind,
      eps: this.config.normEps,
      weights: kind === 'weighted' ? { dt: w['dt_layernorm.weight'], B: w['b_layernorm.weight'], C: w['c_layernorm.weight'] } : undefined,
    }); // (b, L, R)
    const dt = matmul(rt, ts, w['dt_proj.weight']); // (b, L, D), bias added in the scan
    const y = selectiveScan(
      rt,
      { x: xc, dt, aLog: w['A_log'], B: columns(xdbl, R, N), C: columns(xdbl, R + N, N), D: w['D'], z: columns(xz, D, D), dtBias: w['dt_proj.bias'], state: state.ssm },
      { inPlace: true },
    );
    const out = matmul(rt, y, w['out_proj.weight'], { bias: w['out_proj.bias'] }); // (b, L, H)
    xz.dispose();
    xdbl.dispose();
    ts.dispose();
    dt.dispose();
    y.dispose();
    state.advance(L);
    return out;
  }

  /**
   * The rest of a fused decode step after in_proj: 3 dispatches. `convolved`: the conv already ran in
   * in_proj's epilogue (xz's x half is silu(conv(x)), the conv state rolled). Disposes xz.
   */
  private decodeStep(xz: Tensor, state: Mamba1State, convolved: boolean): Tensor {
    const rt = this.runtime;
    const w = this.w;
    const { D, N, k } = dims(this.config);
    const params = this.packedParams();
    const x = columns(xz, 0, D);
    const xdbl = convolved
      ? convXProj(rt, { x, weight: w['x_proj.weight'], dState: N, convolved: true })
      : convXProj(rt, { x, params, convState: state.conv, weight: w['x_proj.weight'], dState: N }); // (b, 1, R + 2N)
    const y = dtScanStep(
      rt,
      { xz, xdbl, dtWeight: w['dt_proj.weight'], params, ...(convolved ? { kernelSize: k } : { convState: state.conv }), ssmState: state.ssm },
      { kind: this.config.bcdtNorm ?? 'none', eps: this.config.normEps },
    ); // (b, 1, D)
    const out = matmul(rt, y, w['out_proj.weight'], { bias: w['out_proj.bias'] }); // (b, 1, H)
    xz.dispose();
    xdbl.dispose();
    y.dispose();
    state.advance(1);
    return out;
  }
}

/** Host state of {@link mamba1MixerReference}. */
export interface Mamba1HostState {
  /** (batch, d_inner, d_state) */
  ssm: Float32Array;
  /** (batch, d_inner, k-1) */
  conv: Float32Array;
}

/**
 * CPU reference of the whole mixer (transformers' `slow_forward` step by step) on host
 * weights keyed like {@link Mamba1Mixer.expectedWeights} (f32 values).
 * Returns the output (batch, seqlen, hidden) and the final state.
 *
 * @example
 * ```ts
 * const { y, state } = mamba1MixerReference(config, hostWeights, x, 1, 37);
 * ```
 */
export function mamba1MixerReference(
  config: Mamba1Config,
  weights: Readonly<Record<string, Float32Array>>,
  x: Float32Array,
  batch: number,
  seqlen: number,
  initial?: Mamba1HostState,
): { y: Float32Array; state: Mamba1HostState } {
  const { H, D, N, k, R } = dims(config);
  const M = batch * seqlen;
  const xz = matmulReference(x, weights['in_proj.weight'], M, 2 * D, H, config.useBias ? weights['in_proj.bias'] : undefined);
  const xs = new Float32Array(M * D);
  const z = new Float32Array(M * D);
  for (let r = 0; r < M; r++) {
    xs.set(xz.subarray(r * 2 * D, r * 2 * D + D), r * D);
    z.set(xz.subarray(r * 2 * D + D, (r + 1) * 2 * D), r * D);
  }
  const conv = causalConv1dReference(xs, weights['conv1d.weight'], config.useConvBias ? weights['conv1d.bias'] : undefined, initial?.conv ?? new Float32Array(batch * D * (k - 1)), {
    batch,
    seqlen,
    channels: D,
    kernelSize: k,
    activation: 'silu',
  });
  const xdbl0 = matmulReference(conv.y, weights['x_proj.weight'], M, R + 2 * N, D);
  const kind = config.bcdtNorm ?? 'none';
  const { ts, xdbl } = bcdtNormReference(xdbl0, M, {
    rank: R,
    dState: N,
    kind,
    eps: config.normEps,
    weights: kind === 'weighted' ? { dt: weights['dt_layernorm.weight'], B: weights['b_layernorm.weight'], C: weights['c_layernorm.weight'] } : undefined,
  });
  const dt = matmulReference(ts, weights['dt_proj.weight'], M, D, R);
  const B = new Float32Array(M * N);
  const C = new Float32Array(M * N);
  for (let r = 0; r < M; r++) {
    B.set(xdbl.subarray(r * (R + 2 * N) + R, r * (R + 2 * N) + R + N), r * N);
    C.set(xdbl.subarray(r * (R + 2 * N) + R + N, (r + 1) * (R + 2 * N)), r * N);
  }
  const scan = selectiveScanReference(
    { x: conv.y, dt, aLog: weights['A_log'], B, C, D: weights['D'], z, dtBias: weights['dt_proj.bias'], state: initial?.ssm },
    { batch, seqlen, dInner: D, dState: N },
  );
  const y = matmulReference(scan.y, weights['out_proj.weight'], M, H, D, config.useBias ? weights['out_proj.bias'] : undefined);
  return { y, state: { ssm: scan.state, conv: conv.state } };
}
