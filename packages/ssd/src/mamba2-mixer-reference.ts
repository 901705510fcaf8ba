/**
 * CPU reference of the whole Mamba-2 mixer, written after transformers 5.17
 * `Mamba2Mixer.torch_forward` (plus the family variants of the gated norm), with the
 * SSD done by the sequential recurrence. Plain loops, f64 accumulation.
 *
 * Shape glossary: b batch, L tokens, I = H·P, H heads, P head dim, N d_state, G groups, k conv kernel.
 */
import type { Mamba2MixerConfig } from './mamba2-mixer.js';
import { ssdRecurrentReference } from './ssd.js';

/** A Mamba-2 layer state on the host: conv (b, conv_dim, k-1), ssm (b, H, P, N). */
export interface Mamba2ReferenceState {
  conv: Float32Array;
  ssm: Float32Array;
}

const silu = (v: number) => v / (1 + Math.exp(-v));

function linear(x: Float32Array, w: Float32Array, bias: Float32Array | undefined, rows: number, out: number, inp: number): Float32Array {
  const y = new Float32Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < inp; i++) s += x[r * inp + i] * w[o * inp + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

/**
 * Runs the mixer on x (b, L, hidden) from `state` (zeros when omitted). `weights` are
 * f32 arrays keyed like {@link Mamba2Mixer.expectedWeights}. Returns the output
 * (b, L, hidden) and the new state.
 *
 * @example
 * ```ts
 * const { y, state } = mamba2MixerReference(config, weights, x, 1, 7);
 * ```
 */
export function mamba2MixerReference(
  config: Mamba2MixerConfig,
  weights: Readonly<Record<string, Float32Array>>,
  x: Float32Array,
  batch: number,
  seqlen: number,
  state?: Mamba2ReferenceState,
): { y: Float32Array; state: Mamba2ReferenceState } {
  const H = config.numHeads;
  const P = config.headDim;
  const N = config.stateSize;
  const G = config.nGroups;
  const K = config.convKernel;
  const I = H * P;
  const dMlp = config.dMlp ?? 0;
  const convDim = I + 2 * G * N;
  const proj = 2 * dMlp + I + convDim + H;
  const hidden = config.hiddenSize;
  const rows = batch * seqlen;
  const L = seqlen;

  // 1. in_proj and the split [d_mlp, d_mlp, z, xBC, dt]
  const zxbcdt = linear(x, weights['in_proj.weight'], config.useBias ? weights['in_proj.bias'] : undefined, rows, proj, hidden);
  const col = (r: number, c: number) => zxbcdt[r * proj + c];

  // 2. depthwise causal conv over xBC with the rolling state, then the activation
  const convState = state?.conv ?? new Float32Array(batch * convDim * (K - 1));
  const newConv = new Float32Array(batch * convDim * (K - 1));
  const xbc = new Float32Array(rows * convDim);
  const cw = weights['conv1d.weight'];
  const cb = config.useConvBias ? weights['conv1d.bias'] : undefined;
  const act = (config.convActivation ?? 'silu') === 'silu';
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < convDim; c++) {
      const hist: number[] = [];
      for (let j = 0; j < K - 1; j++) hist.push(convState[(b * convDim + c) * (K - 1) + j]);
      for (let t = 0; t < L; t++) hist.push(col(b * L + t, 2 * dMlp + I + c));
      for (let t = 0; t < L; t++) {
        let s = cb ? cb[c] : 0;
        for (let j = 0; j < K; j++) s += cw[c * K + j] * hist[t + j];
        xbc[(b * L + t) * convDim + c] = act ? silu(s) : s;
      }
      for (let j = 0; j < K - 1; j++) newConv[(b * convDim + c) * (K - 1) + j] = hist[L + j];
    }
  }

  // 3. SSD by the recurrence
  const xs = new Float32Array(rows * I);
  const Bs = new Float32Array(rows * G * N);
  const Cs = new Float32Array(rows * G * N);
  const dts = new Float32Array(rows * H);
  for (let r = 0; r < rows; r++) {
    xs.set(xbc.subarray(r * convDim, r * convDim + I), r * I);
    Bs.set(xbc.subarray(r * convDim + I, r * convDim + I + G * N), r * G * N);
    Cs.set(xbc.subarray(r * convDim + I + G * N, (r + 1) * convDim), r * G * N);
    for (let h = 0; h < H; h++) dts[r * H + h] = col(r, 2 * dMlp + I + convDim + h);
  }
  const A = weights.A_log.map((v) => -Math.exp(v));
  const ssd = ssdRecurrentReference(
    { x: xs, dt: dts, A, B: Bs, C: Cs, dtBias: weights.dt_bias, D: weights.D, initialState: state?.ssm },
    { batch, seqlen, heads: H, headDim: P, dState: N, groups: G, chunkSize: 1 },
    { dtLimit: config.timeStepLimit },
  );

  // 4. gated RMSNorm variants
  const gsize = config.normGroupSize ?? I;
  const gated = config.gatedNorm ?? true;
  const w = weights['norm.weight'];
  const normed = new Float32Array(rows * I);
  for (let r = 0; r < rows; r++) {
    const z = (i: number) => col(r, 2 * dMlp + i);
    const y = (i: number) => ssd.y[r * I + i];
    if (!gated) {
      for (let i = 0; i < I; i++) normed[r * I + i] = y(i) * silu(z(i));
      continue;
    }
    for (let g0 = 0; g0 < I; g0 += gsize) {
      const h = new Float64Array(gsize);
      for (let j = 0; j < gsize; j++) h[j] = config.normBeforeGate ? y(g0 + j) : y(g0 + j) * silu(z(g0 + j));
      let ss = 0;
      for (let j = 0; j < gsize; j++) ss += h[j] * h[j];
      const inv = 1 / Math.sqrt(ss / gsize + config.normEps);
      for (let j = 0; j < gsize; j++) {
        const v = h[j] * inv * w[g0 + j];
        normed[r * I + g0 + j] = config.normBeforeGate ? v * silu(z(g0 + j)) : v;
      }
    }
  }

  // 5. out_proj
  const outBias = (config.outProjBias ?? config.useBias) ? weights['out_proj.bias'] : undefined;
  const y = linear(normed, weights['out_proj.weight'], outBias, rows, hidden, I);
  return { y, state: { conv: newConv, ssm: ssd.state } };
}
