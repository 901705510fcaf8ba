/**
 * Rotary position embeddings as transformers 5.17 applies them
 * (`modeling_rope_utils.py` for the frequencies, `apply_rotary_pos_emb` with
 * `rotate_half` for the rotation), fused with the optional per-head RMSNorm
 * of Qwen3-style q_norm / k_norm, and with a strided read and a scattered
 * write so one kernel also splits Qwen3-Next's [query | gate] projection and
 * writes keys straight into a KV cache page run.
 *
 * Shape glossary:
 *   B  batch                 L  tokens in the input          H  heads
 *   D  head_dim              R  rotary dim (R ≤ D, even)     S  input row stride per head (≥ D)
 *   T  tokens in the output buffer (the input's L, or a cache run's capacity)
 *   P  positions in the cos/sin table
 *
 * Frequencies are computed on the CPU in float64 with the float32 roundings
 * torch performs, and cos/sin in float64, into a table (P, R): per position,
 * R/2 cosines then R/2 sines, times the attention factor (yarn). A GPU cos of
 * a large angle is not accurate enough to match to 1e-5.
 */
import {
  type DType,
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  StatespaceError,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  assertArg,
  linearDispatch,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
  memoWgsl,
} from '@statespace/core';

/**
 * RoPE scaling in transformers' own words: the `rope_parameters` (or legacy
 * `rope_scaling`) dict of a config.json, snake_case keys as written there.
 */
export interface RopeScaling {
  /** 'default' | 'linear' | 'dynamic' | 'yarn' | 'llama3' (legacy key `type` is read too). */
  rope_type?: string;
  type?: string;
  factor?: number;
  original_max_position_embeddings?: number;
  /** llama3 */
  low_freq_factor?: number;
  high_freq_factor?: number;
  /** yarn */
  beta_fast?: number;
  beta_slow?: number;
  attention_factor?: number;
  mscale?: number;
  mscale_all_dim?: number;
  truncate?: boolean;
  [key: string]: unknown;
}

/** RoPE settings of an attention layer. */
export interface RopeConfig {
  /** rope_theta (base). */
  theta: number;
  /** Rotated features per head: head_dim × partial_rotary_factor (even). */
  rotaryDim: number;
  /** rope_type and its parameters; absent or rope_type 'default' for plain RoPE. */
  scaling?: RopeScaling | Record<string, unknown>;
  /** The config's max_position_embeddings (needed by 'dynamic', and by 'yarn' without a factor). */
  maxPositionEmbeddings?: number;
}

const f32 = Math.fround;

function ropeType(config: RopeConfig): string {
  const s = config.scaling as RopeScaling | undefined;
  return String(s?.rope_type ?? s?.type ?? 'default');
}

function num(s: RopeScaling, key: string, op: string): number {
  const v = s[key];
  if (typeof v !== 'number') throw new StatespaceError('INVALID_ARGUMENT', `${op}: rope scaling needs a numeric '${key}'`);
  return v;
}

/** base ** (2i / dim) for i < dim/2, in float32 as torch computes it. */
function defaultInvFreq(base: number, dim: number): Float64Array {
  const out = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f32(1 / f32(base ** f32((2 * i) / dim)));
  return out;
}

/**
 * The inverse frequencies (R/2) and the attention factor that multiplies cos
 * and sin, for a sequence of `seqLen` tokens (only 'dynamic' looks at it).
 * Follows `ROPE_INIT_FUNCTIONS` of transformers 5.17.
 *
 * @example
 * ```ts
 * const { invFreq, attentionFactor } = ropeFrequencies({ theta: 10000, rotaryDim: 64 });
 * ```
 */
export function ropeFrequencies(config: RopeConfig, seqLen?: number): { invFreq: Float64Array; attentionFactor: number } {
  const dim = config.rotaryDim;
  const op = 'ropeFrequencies';
  assertArg(Number.isInteger(dim) && dim >= 2 && dim % 2 === 0, op, `rotaryDim must be a positive even integer, got ${dim}`);
  assertArg(config.theta > 0, op, `theta must be positive, got ${config.theta}`);
  const type = ropeType(config);
  const s = (config.scaling ?? {}) as RopeScaling;
  const base = config.theta;
  switch (type) {
    case 'default':
      return { invFreq: defaultInvFreq(base, dim), attentionFactor: 1 };
    case 'linear': {
      const factor = num(s, 'factor', op);
      return { invFreq: defaultInvFreq(base, dim).map((v) => f32(v / factor)), attentionFactor: 1 };
    }
    case 'dynamic': {
      const factor = num(s, 'factor', op);
      const maxPos = config.maxPositionEmbeddings;
      if (maxPos === undefined) throw new StatespaceError('INVALID_ARGUMENT', `${op}: 'dynamic' RoPE needs maxPositionEmbeddings`);
      const len = Math.max(seqLen ?? maxPos, maxPos);
      const scaledBase = base * ((factor * len) / maxPos - (factor - 1)) ** (dim / (dim - 2));
      return { invFreq: defaultInvFreq(scaledBase, dim), attentionFactor: 1 };
    }
    case 'llama3': {
      const factor = num(s, 'factor', op);
      const low = num(s, 'low_freq_factor', op);
      const high = num(s, 'high_freq_factor', op);
      const oldLen = num(s, 'original_max_position_embeddings', op);
      const lowWavelen = oldLen / low;
      const highWavelen = oldLen / high;
      const inv = defaultInvFreq(base, dim).map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highWavelen) return f;
        if (wavelen > lowWavelen) return f32(f / factor);
        const smooth = (oldLen / wavelen - low) / (high - low);
        return f32((1 - smooth) * (f / factor) + smooth * f);
      });
      return { invFreq: inv, attentionFactor: 1 };
    }
    case 'yarn': {
      const original = typeof s.original_max_position_embeddings === 'number' ? s.original_max_position_embeddings : config.maxPositionEmbeddings;
      if (original === undefined) throw new StatespaceError('INVALID_ARGUMENT', `${op}: 'yarn' RoPE needs original_max_position_embeddings or maxPositionEmbeddings`);
      let factor = typeof s.factor === 'number' ? s.factor : undefined;
      if (factor === undefined) {
        if (config.maxPositionEmbeddings === undefined) throw new StatespaceError('INVALID_ARGUMENT', `${op}: 'yarn' RoPE needs a factor`);
        factor = config.maxPositionEmbeddings / original;
      }
      const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      let attentionFactor = typeof s.attention_factor === 'number' ? s.attention_factor : undefined;
      if (attentionFactor === undefined) {
        const mscale = s.mscale as number | undefined;
        const mscaleAllDim = s.mscale_all_dim as number | undefined;
        attentionFactor = mscale && mscaleAllDim ? getMscale(factor, mscale) / getMscale(factor, mscaleAllDim) : getMscale(factor);
      }
      const betaFast = (s.beta_fast as number | undefined) || 32;
      const betaSlow = (s.beta_slow as number | undefined) || 1;
      const correctionDim = (rot: number) => (dim * Math.log(original / (rot * 2 * Math.PI))) / (2 * Math.log(base));
      const truncate = s.truncate ?? true;
      let lo = correctionDim(betaFast);
      let hi = correctionDim(betaSlow);
      if (truncate) {
        lo = Math.floor(lo);
        hi = Math.ceil(hi);
      }
      lo = Math.max(lo, 0);
      hi = Math.min(hi, dim - 1);
      if (lo === hi) hi += 0.001;
      const inv = new Float64Array(dim / 2);
      for (let i = 0; i < dim / 2; i++) {
        const posFreq = f32(base ** f32((2 * i) / dim));
        const extrapolation = f32(1 / posFreq);
        const interpolation = f32(1 / f32(factor * posFreq));
        const ramp = Math.min(1, Math.max(0, f32((i - lo) / (hi - lo))));
        const extrapolationFactor = f32(1 - ramp);
        inv[i] = f32(interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor);
      }
      return { invFreq: inv, attentionFactor };
    }
    default:
      throw new StatespaceError('UNSUPPORTED', `${op}: rope_type '${type}' is not supported (default, linear, dynamic, llama3, yarn are)`);
  }
}

/**
 * True when the frequencies depend on the sequence length ('dynamic' past max_position_embeddings).
 * @example
 * ```ts
 * if (ropeIsDynamic(cfg)) console.log('frequencies follow the sequence length');
 * ```
 */
export function ropeIsDynamic(config: RopeConfig): boolean {
  return ropeType(config) === 'dynamic';
}

/**
 * The cos/sin table (count, R) for positions start .. start+count-1: per row
 * R/2 cosines then R/2 sines, times the attention factor. `seqLen` is passed
 * to 'dynamic' RoPE (transformers uses max(position_ids) + 1 of the call).
 *
 * @example
 * ```ts
 * const table = ropeTable({ theta: 10000, rotaryDim: 16 }, 0, 37); // Float32Array(37 * 16)
 * ```
 */
export function ropeTable(config: RopeConfig, start: number, count: number, seqLen?: number): Float32Array {
  const { invFreq, attentionFactor } = ropeFrequencies(config, seqLen);
  const half = invFreq.length;
  const R = 2 * half;
  const out = new Float32Array(count * R);
  for (let p = 0; p < count; p++) {
    const pos = start + p;
    for (let j = 0; j < half; j++) {
      // torch: freqs = inv_freq(f32) @ position(f32), one rounded product; cos/sin of that float.
      const angle = f32(invFreq[j] * f32(pos));
      out[p * R + j] = Math.cos(angle) * attentionFactor;
      out[p * R + half + j] = Math.sin(angle) * attentionFactor;
    }
  }
  return out;
}

// ------------------------------------------------------------------ kernel

/** Attributes that change the compiled rope kernel. */
export interface RopeKernelAttrs {
  /** Rotate the first R features (false: a strided copy, e.g. values into the cache). */
  rope: boolean;
  /** Per-head RMSNorm before the rotation (Qwen3 q_norm / k_norm). */
  norm?: { weightDtype?: DType; unitOffset?: boolean };
}

/** Sizes of one rope dispatch. */
export interface RopeShape {
  B: number;
  /** Tokens in x. */
  L: number;
  H: number;
  D: number;
  /** Rotary dim (ignored without rope). */
  R: number;
  /** x's row stride per (token, head); D unless the rows interleave [query | gate]. */
  inStride: number;
  /** Offset of the D features inside an input row. */
  inOffset: number;
  /** Tokens in y (per batch); token l0 + i of x goes to row t0 + i of y. */
  T: number;
  t0: number;
  l0: number;
  /** Tokens processed. */
  n: number;
  /** Table row of token l0. */
  posRow: number;
}

const ROPE_THREADS = 64;
const ropeLayout = {
  L: 'u32', H: 'u32', D: 'u32', R: 'u32', inStride: 'u32', inOffset: 'u32', T: 'u32', t0: 'u32', l0: 'u32', n: 'u32', posRow: 'u32', rows: 'u32', eps: 'f32',
} as const satisfies UniformLayout;

/**
 * Builds the fused (RMSNorm →) RoPE → scatter kernel: one workgroup per
 * (batch, token, head) row, threads over features.
 *
 * @example
 * ```ts
 * const k = createRopeKernel({ B: 1, L: 8, H: 4, D: 64, R: 64, inStride: 64, inOffset: 0, T: 8, t0: 0, l0: 0, n: 8, posRow: 0 }, { rope: true });
 * console.log(k.wgsl);
 * ```
 */
export function createRopeKernel(shape: RopeShape, attrs: RopeKernelAttrs): KernelDescriptor {
  const norm = attrs.norm;
  const wDtype = norm?.weightDtype ?? 'f32';
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (B, L, H, S)
    ...(attrs.rope ? [{ name: 'table', type: 'f32', access: 'read' } as const] : []), // (P, R)
    ...(norm ? [{ name: 'w', type: wgslStorageType(wDtype), access: 'read' } as const] : []), // (D)
    { name: 'y', type: 'f32', access: 'read_write' }, // (B, T, H, D)
  ] as const;
  const scale = norm?.unitOffset ? '(1.0 + loadW(i))' : 'loadW(i)';
  const nx = norm ? `x[src + i] * inv * ${scale}` : 'x[src + i]';
  const wgsl = memoWgsl(attrs.rope ? (norm ? 'rope_norm' : 'rope') : norm ? 'head_norm' : 'head_copy', `${attrs.rope ? 'r' : ''}|${norm ? `n${wDtype}${norm.unitOffset ? 'u' : ''}` : ''}`, () => `${wgslBindings(ropeLayout, bindings)}
${norm ? wgslLoadFloat('loadW', 'w', wDtype) : ''}
const WG = ${ROPE_THREADS}u;
var<workgroup> red: array<f32, ${ROPE_THREADS}>;
fn nx(src: u32, i: u32, inv: f32) -> f32 { return ${nx}; }
@compute @workgroup_size(${ROPE_THREADS})
fn main(${WGSL_BUILTINS}) {
  let row = ${WGSL_LINEAR_WORKGROUP};
  if (row >= u.rows) { return; }
  let h = row % u.H;
  let i = (row / u.H) % u.n;
  let b = row / (u.H * u.n);
  let src = ((b * u.L + u.l0 + i) * u.H + h) * u.inStride + u.inOffset;
  let dst = ((b * u.T + u.t0 + i) * u.H + h) * u.D;
  var inv = 1.0;
  ${norm ? `var ss = 0.0;
  for (var d = li; d < u.D; d += WG) { let v = x[src + d]; ss += v * v; }
  red[li] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  inv = inverseSqrt(red[0] / f32(u.D) + u.eps);` : ''}
  ${attrs.rope ? `let half = u.R / 2u;
  let trow = (u.posRow + i) * u.R;` : ''}
  for (var d = li; d < u.D; d += WG) {
    var v = nx(src, d, inv);
    ${attrs.rope ? `if (d < u.R) {
      let j = d % half;
      let c = table[trow + j];
      let sn = table[trow + half + j];
      // rotate_half: (-x2, x1)
      let partner = select(d - half, d + half, d < half);
      let rot = select(1.0, -1.0, d < half) * nx(src, partner, inv);
      v = v * c + rot * sn;
    }` : ''}
    y[dst + d] = v;
  }
}`);
  return {
    name: attrs.rope ? (norm ? 'rope_norm' : 'rope') : norm ? 'head_norm' : 'head_copy',
    cacheKey: `${attrs.rope ? 'r' : ''}|${norm ? `n${wDtype}${norm.unitOffset ? 'u' : ''}` : ''}`,
    wgsl,
    workgroupSize: [ROPE_THREADS, 1, 1],
    dispatch: linearDispatch(shape.B * shape.n * shape.H),
    bindings,
    uniformLayout: ropeLayout,
    uniforms: { ...shape, rows: shape.B * shape.n * shape.H, eps: 0 },
  };
}

/** Options of {@link applyRope}. */
export interface ApplyRopeOptions {
  /** cos/sin table (P, R) from {@link ropeTable}; omit for no rotation. */
  table?: TensorLike;
  /** Table row of token 0 of x (default 0). */
  position?: number;
  /** Rotary dim R (default: the table's second dimension). */
  rotaryDim?: number;
  /** Head dim D (default: x's last dim). */
  headDim?: number;
  /** Offset of the D features inside x's rows (x's last dim may be wider, e.g. [query | gate]). */
  inOffset?: number;
  /** RMSNorm each head before rotating (weight (D)). */
  norm?: { weight: TensorLike; eps: number; unitOffset?: boolean };
  /** Write into this tensor (B, T, H, D) at token row `outToken` instead of a new (B, L, H, D). */
  out?: TensorLike;
  outToken?: number;
  /** Process only tokens [firstToken, firstToken + count) of x. */
  firstToken?: number;
  count?: number;
}

/**
 * Applies RoPE (rotate_half convention, partial when R < D) to x (B, L, H, S),
 * optionally after a per-head RMSNorm, returning (B, L, H, D) or writing into
 * `options.out`.
 *
 * @example
 * ```ts
 * const table = rt.upload(ropeTable(cfg, 0, 64), [64, cfg.rotaryDim]);
 * const qRot = applyRope(rt, q, { table, position: 5 }); // q (B, L, H, D) at positions 5..5+L-1
 * ```
 */
export function applyRope(runtime: Runtime, x: TensorLike, options: ApplyRopeOptions = {}): Tensor {
  const op = 'applyRope';
  assertArg(x.shape.length === 4, op, `x must be (batch, seqlen, heads, row), got [${x.shape.join(',')}]`);
  assertArg(x.dtype === 'f32', op, `x must be f32, got ${x.dtype}`);
  const [B, L, H, S] = x.shape;
  const inStride = S;
  const D = options.headDim ?? S;
  const inOffset = options.inOffset ?? 0;
  assertArg(inOffset + D <= S, op, `features [${inOffset}, ${inOffset + D}) exceed the row of ${S}`);
  const table = options.table;
  const R = table ? (options.rotaryDim ?? table.shape[1]) : 0;
  if (table) {
    assertArg(table.shape.length === 2 && table.shape[1] === R, op, `table has shape [${table.shape.join(',')}], expected [positions, R=${R}]`);
    assertArg(R % 2 === 0 && R <= D && R > 0, op, `rotary dim ${R} must be even and at most head_dim ${D}`);
  }
  const l0 = options.firstToken ?? 0;
  const n = options.count ?? L - l0;
  assertArg(l0 >= 0 && n >= 0 && l0 + n <= L, op, `tokens [${l0}, ${l0 + n}) are outside x's ${L}`);
  const position = options.position ?? 0;
  if (table) assertArg(position + l0 + n <= table.shape[0], op, `positions up to ${position + l0 + n} exceed the table's ${table.shape[0]} rows`);
  const out = options.out;
  const outToken = options.outToken ?? 0;
  let T = L;
  if (out) {
    assertArg(out.shape.length === 4 && out.shape[0] === B && out.shape[2] === H && out.shape[3] === D, op, `out has shape [${out.shape.join(',')}], expected [B=${B}, T, H=${H}, D=${D}]`);
    T = out.shape[1];
    assertArg(outToken + n <= T, op, `rows [${outToken}, ${outToken + n}) exceed out's ${T} tokens`);
  }
  if (options.norm) {
    assertArg(options.norm.weight.size === D, op, `norm weight has shape [${options.norm.weight.shape.join(',')}], expected [D=${D}]`);
  }
  const y = out ?? runtime.empty([B, L, H, D], 'f32', 'rope.y');
  const kernel = createRopeKernel(
    { B, L, H, D, R, inStride, inOffset, T, t0: out ? outToken : l0, l0, n, posRow: position + l0 },
    { rope: !!table, norm: options.norm ? { weightDtype: options.norm.weight.dtype, unitOffset: options.norm.unitOffset } : undefined },
  );
  const tensors: TensorLike[] = [x];
  if (table) tensors.push(table);
  if (options.norm) tensors.push(options.norm.weight);
  tensors.push(y);
  runtime.run({ ...kernel, uniforms: { ...kernel.uniforms, eps: options.norm?.eps ?? 0 } }, tensors);
  return y as Tensor;
}

/**
 * CPU reference: transformers' apply_rotary_pos_emb (partial rotary keeps
 * features R.. unchanged) on x (B, L, H, D) at positions start.., after an
 * optional per-head RMSNorm (x / sqrt(mean(x²) + eps) · w, or · (1 + w)).
 *
 * @example
 * ```ts
 * const y = ropeReference(x, { B: 1, L: 8, H: 4, D: 64 }, ropeTable(cfg, 0, 8), 64);
 * ```
 */
export function ropeReference(
  x: Float32Array,
  shape: { B: number; L: number; H: number; D: number },
  table: Float32Array | null,
  R: number,
  norm?: { weight: Float32Array; eps: number; unitOffset?: boolean },
): Float32Array {
  const { B, L, H, D } = shape;
  const y = new Float32Array(B * L * H * D);
  const h = new Float64Array(D);
  const half = R / 2;
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      for (let hh = 0; hh < H; hh++) {
        const base = ((b * L + l) * H + hh) * D;
        let inv = 1;
        if (norm) {
          let ss = 0;
          for (let d = 0; d < D; d++) ss += x[base + d] * x[base + d];
          inv = 1 / Math.sqrt(ss / D + norm.eps);
        }
        for (let d = 0; d < D; d++) h[d] = norm ? x[base + d] * inv * (norm.unitOffset ? 1 + norm.weight[d] : norm.weight[d]) : x[base + d];
        for (let d = 0; d < D; d++) {
          if (table && d < R) {
            const j = d % half;
            const c = table[l * R + j];
            const s = table[l * R + half + j];
            const rot = d < half ? -h[d + half] : h[d - half];
            y[base + d] = h[d] * c + rot * s;
          } else {
            y[base + d] = h[d];
          }
        }
      }
    }
  }
  return y;
}
