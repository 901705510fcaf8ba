/**
 * The Mamba-2 mixer layer (transformers 5.17 `Mamba2Mixer.torch_forward`), configurable
 * for every family that uses it: Mamba2ForCausalLM, Bamba, Granite 4.0 hybrid
 * (GraniteMoeHybrid), Nemotron-H, Falcon-H1 and Zamba2.
 *
 *   zxbcdt = in_proj(h)                                   (b, L, 2·d_mlp + I + conv_dim + H)
 *   [_, _, z, xBC, Δ] = split(zxbcdt, [d_mlp, d_mlp, I, conv_dim, H])
 *   xBC = silu(causal_conv1d(xBC))                        conv_dim = I + 2·G·N, rolling conv state
 *   [x, B, C] = split(xBC, [I, G·N, G·N])
 *   y = SSD(x, Δ, A = -exp(A_log), B, C, D, dt_bias, time_step_limit)   (chunked prefill or decode step)
 *   y = gated_rms_norm(y, z)                               (variants below)
 *   out = out_proj(y)
 *
 * Shape glossary: b batch, L tokens, I = H·P intermediate size, H heads, P head dim,
 * N d_state, G groups, k conv kernel, Q chunk length.
 *
 * Gated norm variants (`gatedNorm`, `normGroupSize`, `normBeforeGate`):
 *   Mamba2 / Bamba / GraniteMoeHybrid: x·silu(z), RMS over all I features (MambaRMSNormGated).
 *   Nemotron-H / Zamba2: the same with groups of I / n_groups features (Zamba2RMSNormGated).
 *   Falcon-H1: groups of I / n_groups, optionally norm-then-gate (mamba_norm_before_gate), or
 *   no norm at all (mamba_rms_norm false): y·silu(z).
 */
import {
  type LayerWeights,
  type Runtime,
  type SequenceMixer,
  type Tensor,
  type TensorLike,
  type WeightSpec,
  StatespaceError,
  assertArg,
  binary,
  canNormGemv,
  createNormKernel,
  gatedRmsNorm,
  linear,
  matmul,
  normGemv,
  normedTensor,
  PendingNorm,
  RecurrentState,
} from '@statespace/core';
import { causalConv1d, columns, copyColumns } from '@statespace/scan-wgsl';
import { ssdChunked } from './ssd.js';
import { ssdDecodeStep } from './ssd-decode.js';
import { SSD_MAX_CHUNK, type SsdShape } from './ssd-shape.js';

/**
 * Configuration of a {@link Mamba2Mixer}, covering every family that uses the layer.
 *
 * Family settings (transformers config names):
 * - Mamba2: defaults; `normEps` = layer_norm_epsilon.
 * - Bamba, GraniteMoeHybrid: mamba_* sizes, `useBias` = mamba_proj_bias, `useConvBias` = mamba_conv_bias, `normEps` = rms_norm_eps.
 * - Nemotron-H: `normGroupSize` = I / n_groups, `normEps` = layer_norm_epsilon, `convActivation` from mamba_hidden_act;
 *   its torch path clamps dt to [time_step_min, ∞): `timeStepLimit: [time_step_min, Infinity]`.
 * - Zamba2: `normGroupSize` = I / mamba_ngroups, `normEps` = 1e-5 (hard-coded there), `useConvBias` true,
 *   `useBias` = add_bias_linear, `timeStepLimit: [time_step_min, Infinity]` (as its torch path).
 * - Falcon-H1: `normGroupSize` = I / mamba_n_groups, `normBeforeGate` = mamba_norm_before_gate,
 *   `gatedNorm` = mamba_rms_norm, `useBias` = mamba_proj_bias, `outProjBias` = projectors_bias.
 *   Its µP scalings (ssm_in_multiplier on the input, the five ssm_multipliers on the z/x/B/C/Δ
 *   columns of in_proj's output, ssm_out_multiplier on the output) are plain scalings of
 *   in_proj's input/output rows and of the output: fold them into in_proj.weight (and bias)
 *   and apply ssm_out_multiplier outside the mixer.
 */
export interface Mamba2MixerConfig {
  hiddenSize: number;
  /** H */
  numHeads: number;
  /** P */
  headDim: number;
  /** N (d_state) */
  stateSize: number;
  /** G: B and C are shared by groups of H / G heads. */
  nGroups: number;
  /** k, the conv kernel width. */
  convKernel: number;
  /** Q for the chunked prefill (default 256; values above 256 use 256: results do not depend on it beyond rounding). */
  chunkSize?: number;
  useConvBias: boolean;
  /** in_proj and out_proj have biases. */
  useBias: boolean;
  /** out_proj has a bias (default `useBias`; Falcon-H1's projectors_bias). */
  outProjBias?: boolean;
  /** dt is clamped to [min, max] after the softplus (default [0, Infinity]). */
  timeStepLimit?: readonly [number, number];
  /** Epsilon of the gated RMSNorm. */
  normEps: number;
  /** Apply the (gated) RMSNorm with `norm.weight` (default true). False: y·silu(z) and no norm weight. */
  gatedNorm?: boolean;
  /** Features per RMS group (default I = numHeads·headDim, the whole vector). */
  normGroupSize?: number;
  /** Normalise y first, then multiply by silu(z) (Falcon-H1's norm_before_gate; default false). */
  normBeforeGate?: boolean;
  /** Activation after the conv (default 'silu'). */
  convActivation?: 'silu' | 'none';
  /** Width of each of the two leading in_proj blocks transformers splits off and drops (default 0). */
  dMlp?: number;
  /**
   * Tokens per prefill pass: longer prompts run in passes that carry the state, which
   * bounds the size of every intermediate buffer (default: as many as keep each under 128 MiB).
   */
  maxTokensPerPass?: number;
}

interface Dims {
  H: number;
  P: number;
  N: number;
  G: number;
  K: number;
  I: number;
  convDim: number;
  proj: number;
  dMlp: number;
  zStart: number;
  xbcStart: number;
  dtStart: number;
  chunk: number;
}

function dims(config: Mamba2MixerConfig): Dims {
  const H = config.numHeads;
  const P = config.headDim;
  const N = config.stateSize;
  const G = config.nGroups;
  const K = config.convKernel;
  const dMlp = config.dMlp ?? 0;
  const I = H * P;
  const convDim = I + 2 * G * N;
  const proj = 2 * dMlp + I + convDim + H;
  const chunk = Math.min(config.chunkSize ?? SSD_MAX_CHUNK, SSD_MAX_CHUNK);
  return { H, P, N, G, K, I, convDim, proj, dMlp, zStart: 2 * dMlp, xbcStart: 2 * dMlp + I, dtStart: 2 * dMlp + I + convDim, chunk };
}

function validateConfig(config: Mamba2MixerConfig): Dims {
  const op = 'Mamba2Mixer';
  for (const k of ['hiddenSize', 'numHeads', 'headDim', 'stateSize', 'nGroups', 'convKernel'] as const) {
    assertArg(Number.isInteger(config[k]) && config[k] >= 1, op, `config.${k} must be a positive integer, got ${config[k]}`);
  }
  const d = dims(config);
  assertArg(d.H % d.G === 0, op, `numHeads=${d.H} must be a multiple of nGroups=${d.G}`);
  assertArg(d.K >= 2, op, `convKernel must be at least 2, got ${d.K}`);
  assertArg(Number.isInteger(d.chunk) && d.chunk >= 1, op, `chunkSize must be a positive integer, got ${config.chunkSize}`);
  assertArg(Number.isInteger(d.dMlp) && d.dMlp >= 0, op, `dMlp must be a non-negative integer, got ${config.dMlp}`);
  const G = config.normGroupSize ?? d.I;
  assertArg(Number.isInteger(G) && G >= 1 && d.I % G === 0, op, `normGroupSize=${G} must divide the intermediate size ${d.I}`);
  const act = config.convActivation ?? 'silu';
  assertArg(act === 'silu' || act === 'none', op, `convActivation must be 'silu' or 'none', got ${String(act)}`);
  return d;
}

/**
 * A Mamba-2 layer's state: the rolling conv state (b, conv_dim, k-1) and the SSM state
 * (b, H, P, N), both f32, plus the number of tokens consumed.
 *
 * @example
 * ```ts
 * const state = mixer.createState(1);
 * mixer.forward(prompt, state);
 * const fork = state.clone();          // branch the conversation
 * const bytes = await state.save();    // and persist it
 * ```
 */
export class Mamba2State extends RecurrentState {}

/**
 * The Mamba-2 mixer: in_proj, causal conv over xBC, SSD (chunked prefill for more
 * than one token, the fused decode step for one), gated RMSNorm, out_proj.
 * Weights are keyed by transformers' names relative to the mixer
 * (`backbone.layers.0.mixer.` stripped); see {@link Mamba2Mixer.expectedWeights}.
 *
 * @example
 * ```ts
 * const config = { hiddenSize: 768, numHeads: 24, headDim: 64, stateSize: 128, nGroups: 1, convKernel: 4,
 *   chunkSize: 256, useConvBias: true, useBias: false, normEps: 1e-5 };
 * const mixer = new Mamba2Mixer(rt, config, weights);
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state);        // prefill, x (1, L, 768)
 * const y1 = mixer.forward(x1, state);      // decode, x1 (1, 1, 768)
 * ```
 */
export class Mamba2Mixer implements SequenceMixer<Mamba2State> {
  readonly kind = 'mamba2';
  readonly fusesInputNorm = true;
  readonly config: Mamba2MixerConfig;
  private readonly runtime: Runtime;
  private readonly w: LayerWeights;
  private readonly d: Dims;

  constructor(runtime: Runtime, config: Mamba2MixerConfig, weights: LayerWeights) {
    this.runtime = runtime;
    this.config = config;
    this.d = validateConfig(config);
    for (const spec of Mamba2Mixer.expectedWeights(config)) {
      const t = weights[spec.name];
      if (!t) throw new StatespaceError('MISSING_WEIGHT', `Mamba2Mixer: weight ${spec.name} [${spec.shape.join(',')}] is missing`);
      const convAlt = spec.name === 'conv1d.weight' && t.shape.length === 2 && t.shape[0] === spec.shape[0] && t.shape[1] === spec.shape[2];
      if (!convAlt && (t.shape.length !== spec.shape.length || t.shape.some((v, i) => v !== spec.shape[i]))) {
        throw new StatespaceError('SHAPE_MISMATCH', `Mamba2Mixer: ${spec.name} has shape [${t.shape.join(',')}], expected [${spec.shape.join(',')}]`);
      }
      const floatOk = t.dtype === 'f32' || t.dtype === 'f16' || t.dtype === 'bf16' || t.dtype === 'q8';
      if (!floatOk || (spec.name.endsWith('proj.bias') && t.dtype !== 'f32')) {
        throw new StatespaceError('DTYPE_MISMATCH', `Mamba2Mixer: ${spec.name} is ${t.dtype}, expected ${spec.name.endsWith('proj.bias') ? 'f32' : 'a float type'}`);
      }
    }
    this.w = weights;
  }

  /**
   * The weights the layer needs, relative to the mixer's prefix, with transformers' names and shapes.
   *
   * @example
   * ```ts
   * Mamba2Mixer.expectedWeights(config).map((s) => `backbone.layers.0.mixer.${s.name}`);
   * ```
   */
  static expectedWeights(config: Mamba2MixerConfig): WeightSpec[] {
    const d = validateConfig(config);
    const specs: WeightSpec[] = [{ name: 'in_proj.weight', shape: [d.proj, config.hiddenSize] }];
    if (config.useBias) specs.push({ name: 'in_proj.bias', shape: [d.proj], dtype: 'f32' });
    specs.push({ name: 'conv1d.weight', shape: [d.convDim, 1, d.K] });
    if (config.useConvBias) specs.push({ name: 'conv1d.bias', shape: [d.convDim] });
    specs.push({ name: 'dt_bias', shape: [d.H] }, { name: 'A_log', shape: [d.H], dtype: 'f32' }, { name: 'D', shape: [d.H] });
    if (config.gatedNorm ?? true) specs.push({ name: 'norm.weight', shape: [d.I] });
    specs.push({ name: 'out_proj.weight', shape: [config.hiddenSize, d.I] });
    if (config.outProjBias ?? config.useBias) specs.push({ name: 'out_proj.bias', shape: [config.hiddenSize], dtype: 'f32' });
    return specs;
  }

  createState(batch: number): Mamba2State {
    assertArg(Number.isInteger(batch) && batch >= 1, 'Mamba2Mixer.createState', `batch must be a positive integer, got ${batch}`);
    const { convDim, K, H, P, N } = this.d;
    return new Mamba2State(this.runtime, batch, { conv: [batch, convDim, K - 1], ssm: [batch, H, P, N] }, 'mamba2');
  }

  forward(input: Tensor | PendingNorm, state: Mamba2State): Tensor {
    const op = 'Mamba2Mixer.forward';
    const x = input;
    const hidden = this.config.hiddenSize;
    if (x.shape.length !== 3 || x.shape[0] !== state.batch || x.shape[2] !== hidden) {
      throw new StatespaceError('SHAPE_MISMATCH', `${op}: x has shape [${x.shape.join(',')}], expected [batch=${state.batch}, seqlen, hidden=${hidden}]`);
    }
    assertArg(x.dtype === 'f32', op, `x must be f32, got ${x.dtype}`);
    const [b, L] = x.shape;
    const rt = this.runtime;
    const y = rt.empty([b, L, hidden], 'f32', 'mamba2.out');
    if (L === 0) return y;
    if (L === 1) {
      this.step(x, state, y);
    } else {
      const x = normedTensor(input);
      const S = this.tokensPerPass(b);
      if (S >= L) {
        this.prefill(x, state, y);
      } else {
        const rowBytes = hidden * 4;
        for (let t0 = 0; t0 < L; t0 += S) {
          const n = Math.min(S, L - t0);
          const xs = rt.empty([b, n, hidden], 'f32', 'mamba2.segment');
          const ys = rt.empty([b, n, hidden], 'f32', 'mamba2.segmentOut');
          for (let bi = 0; bi < b; bi++) rt.copy(x, xs, n * rowBytes, (bi * L + t0) * rowBytes, bi * n * rowBytes);
          if (n === 1) this.step(xs, state, ys);
          else this.prefill(xs, state, ys);
          for (let bi = 0; bi < b; bi++) rt.copy(ys, y, n * rowBytes, bi * n * rowBytes, (bi * L + t0) * rowBytes);
          xs.dispose();
          ys.dispose();
        }
      }
    }
    state.advance(L);
    return y;
  }

  /** Tokens per prefill pass: every intermediate stays under 128 MiB (or the device's binding limit). */
  private tokensPerPass(batch: number): number {
    if (this.config.maxTokensPerPass !== undefined) {
      assertArg(Number.isInteger(this.config.maxTokensPerPass) && this.config.maxTokensPerPass >= 1, 'Mamba2Mixer', `maxTokensPerPass must be a positive integer, got ${this.config.maxTokensPerPass}`);
      return this.config.maxTokensPerPass;
    }
    const { proj, H, P, N, G, chunk } = this.d;
    const limit = Math.min(128 * 2 ** 20, this.runtime.device.limits.maxStorageBufferBindingSize);
    // Widest per-token buffer: in_proj's output, the chunk states (H·P·N per chunk) or CB (G·Q per token).
    const perToken = 4 * batch * Math.max(proj, this.config.hiddenSize, Math.ceil((H * P * N) / chunk), G * chunk);
    const tokens = Math.floor(limit / perToken);
    return Math.max(chunk, Math.floor(tokens / chunk) * chunk);
  }

  private ssdShape(batch: number, seqlen: number): SsdShape {
    const { H, P, N, G, chunk } = this.d;
    return { batch, seqlen, heads: H, headDim: P, dState: N, groups: G, chunkSize: chunk };
  }

  /** in_proj and the causal conv; returns zxbcdt (b, L, proj) and the activated xBC (b, L, conv_dim). */
  private project(x: TensorLike | PendingNorm, state: Mamba2State): { zxbcdt: Tensor; xbc: Tensor } {
    const rt = this.runtime;
    const { convDim, xbcStart } = this.d;
    const zxbcdt = linear(rt, x, this.w['in_proj.weight'], { bias: this.w['in_proj.bias'] });
    const xbc = causalConv1d(rt, columns(zxbcdt, xbcStart, convDim), this.w['conv1d.weight'], this.w['conv1d.bias'], state.conv, {
      activation: this.config.convActivation ?? 'silu',
    });
    return { zxbcdt, xbc };
  }

  /** Gated norm of y (b, L, I) with z from zxbcdt, then out_proj into `out`. */
  private finish(y: Tensor, zxbcdt: Tensor, out: Tensor): void {
    const rt = this.runtime;
    const { I, zStart } = this.d;
    const [b, L] = zxbcdt.shape;
    const yFlat = y.reshape([b, L, I]);
    const gated = this.config.gatedNorm ?? true;
    const group = this.config.normGroupSize ?? I;
    const outW = this.w['out_proj.weight'];
    if (canNormGemv(rt, b * L, I, outW, gated ? I / group : 1)) {
      // Decode: the gate, the norm and out_proj in one dispatch, z read in place from in_proj's output.
      normGemv(rt, {
        kind: !gated ? 'gate' : this.config.normBeforeGate ? 'rms_gate' : 'gated_rms',
        x: yFlat,
        z: zxbcdt,
        zOffset: zStart,
        normWeight: gated ? this.w['norm.weight'] : undefined,
        eps: this.config.normEps,
        groupSize: group,
        weight: outW,
        bias: this.w['out_proj.bias'],
        out,
      });
      return;
    }
    let normed: Tensor;
    if (gated && !this.config.normBeforeGate) {
      // z read in place from zxbcdt (no copy of its columns)
      normed = gatedRmsNorm(rt, yFlat, zxbcdt, this.w['norm.weight'], this.config.normEps, { groupSize: group, zOffset: zStart, zStride: this.d.proj });
    } else {
      const z = copyColumns(rt, columns(zxbcdt, zStart, I));
      if (!gated) {
        normed = binary(rt, z, yFlat, 'silu_mul');
      } else {
        const n = rt.empty([b, L, I], 'f32', 'mamba2.norm');
        const k = createNormKernel({ rows: b * L, D: I, G: group }, { kind: 'rms', weightDtype: this.w['norm.weight'].dtype });
        rt.run({ ...k, uniforms: { ...k.uniforms, eps: this.config.normEps } }, [yFlat, this.w['norm.weight'], n]);
        normed = binary(rt, z, n, 'silu_mul');
        n.dispose();
      }
      z.dispose();
    }
    matmul(rt, normed, this.w['out_proj.weight'], { bias: this.w['out_proj.bias'], out });
    normed.dispose();
  }

  private prefill(x: TensorLike, state: Mamba2State, out: Tensor): void {
    const rt = this.runtime;
    const { I, G, N, convDim, proj, dtStart } = this.d;
    const [b, L] = x.shape;
    const { zxbcdt, xbc } = this.project(x, state);
    const { y } = ssdChunked(
      rt,
      {
        x: { tensor: xbc, offset: 0, stride: convDim },
        B: { tensor: xbc, offset: I, stride: convDim },
        C: { tensor: xbc, offset: I + G * N, stride: convDim },
        dt: { tensor: zxbcdt, offset: dtStart, stride: proj },
        aLog: this.w.A_log,
        dtBias: this.w.dt_bias,
        D: this.w.D,
        state: state.ssm,
      },
      this.ssdShape(b, L),
      { dtLimit: this.config.timeStepLimit },
    );
    xbc.dispose();
    this.finish(y, zxbcdt, out);
    for (const t of [y, zxbcdt]) t.dispose();
  }

  private step(x: TensorLike | PendingNorm, state: Mamba2State, out: Tensor): void {
    const rt = this.runtime;
    const { I, G, N, H, P, convDim, proj, dtStart, xbcStart } = this.d;
    const b = x.shape[0];
    // Fast path: the conv runs in in_proj's epilogue (norm + in_proj + conv in one dispatch) and
    // leaves the activated xBC in place in zxbcdt; else in_proj, then the conv kernel.
    const fused = this.fusedProject(x, state);
    const { zxbcdt, xbc } = fused ? { zxbcdt: fused, xbc: fused } : this.project(x, state);
    const [xb, stride] = fused ? [xbcStart, proj] : [0, convDim];
    const y = ssdDecodeStep(
      rt,
      {
        x: { tensor: xbc, offset: xb, stride },
        B: { tensor: xbc, offset: xb + I, stride },
        C: { tensor: xbc, offset: xb + I + G * N, stride },
        dt: { tensor: zxbcdt, offset: dtStart, stride: proj },
        aLog: this.w.A_log,
        dtBias: this.w.dt_bias,
        D: this.w.D,
        state: state.ssm,
      },
      { batch: b, heads: H, headDim: P, dState: N, groups: G },
      { dtLimit: this.config.timeStepLimit },
    );
    if (!fused) xbc.dispose();
    this.finish(y, zxbcdt, out);
    for (const t of [y, zxbcdt]) t.dispose();
  }

  /** norm + in_proj + the causal conv of xBC as one fused dispatch at one token per sequence, or null. */
  private fusedProject(x: TensorLike | PendingNorm, state: Mamba2State): Tensor | null {
    if (!(x instanceof PendingNorm) || !this.runtime.fastKernels) return null;
    return x.fusedConv(
      this.w['in_proj.weight'],
      { weight: this.w['conv1d.weight'], bias: this.w['conv1d.bias'], state: state.conv, start: this.d.xbcStart, activation: this.config.convActivation ?? 'silu' },
      { bias: this.w['in_proj.bias'] },
    );
  }

}
