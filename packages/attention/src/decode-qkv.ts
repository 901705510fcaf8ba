/**
 * One decode token's q, k and v on their way into attention, in one dispatch: the query
 * heads rotated (RoPE, rotate_half, after an optional per-head RMSNorm) into the query
 * buffer, the key heads rotated (and normalised) into their slot of a KV cache run, the
 * value heads copied into theirs. Unfused that is three dispatches (rope(q), rope(k) into
 * the cache, a strided copy of v), each with its barrier; this kernel gives every head of
 * every kind its own workgroup, so the three happen side by side.
 *
 * Shape glossary (packages/core/README.md; rope.ts):
 *   B  batch     H  query heads     Hkv  key/value heads     D  head_dim     R  rotary dim (R ≤ D, even)
 *   Sq, Sk, Sv  row strides per head of q, k and v (≥ D: q may interleave [query | gate])
 *   T  tokens a cache run holds (its capacity)     P  positions in the cos/sin table
 *
 * The rotation is transformers' `apply_rotary_pos_emb`; see rope.ts for the table.
 */
import {
  type DType,
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  assertArg,
  linearDispatch,
  memoWgsl,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
} from '@statespace/core';

const THREADS = 64;
const layout = {
  H: 'u32', Hkv: 'u32', D: 'u32', R: 'u32', Sq: 'u32', Sk: 'u32', Sv: 'u32', T: 'u32', slot: 'u32', posRow: 'u32', rows: 'u32', qEps: 'f32', kEps: 'f32',
  qOff: 'u32', kOff: 'u32', vOff: 'u32', qB: 'u32', kB: 'u32', vB: 'u32',
} as const satisfies UniformLayout;

/** Static choices of {@link createDecodeQkvKernel}. */
export interface DecodeQkvAttrs {
  rope: boolean;
  /** Per-head RMSNorm of q and of k (Qwen3 q_norm / k_norm): both or neither. */
  norm?: { weightDtype: DType; unitOffset?: boolean };
}

/** Sizes of one {@link createDecodeQkvKernel} dispatch. */
export interface DecodeQkvShape {
  B: number;
  H: number;
  Hkv: number;
  D: number;
  R: number;
  Sq: number;
  Sk: number;
  Sv: number;
  /** The cache run's capacity and the row the token goes to. */
  T: number;
  slot: number;
  /** Table row of the token's position. */
  posRow: number;
  /** Where q, k and v start in their buffers and their row stride per sequence (default 0 and heads · stride). */
  offsets?: { q: number; k: number; v: number };
  batchStrides?: { q: number; k: number; v: number };
}

/**
 * Builds the fused decode q/k/v kernel: B·(H + 2·Hkv) workgroups of 64 threads over D.
 *
 * @example
 * ```ts
 * const k = createDecodeQkvKernel({ B: 1, H: 16, Hkv: 4, D: 64, R: 64, Sq: 64, Sk: 64, Sv: 64, T: 512, slot: 300, posRow: 300 }, { rope: true });
 * console.log(k.dispatch); // [24, 1, 1]
 * ```
 */
export function createDecodeQkvKernel(shape: DecodeQkvShape, attrs: DecodeQkvAttrs): KernelDescriptor {
  const norm = attrs.norm;
  const bindings = [
    { name: 'q', type: 'f32', access: 'read' }, // (B, 1, H, Sq)
    { name: 'k', type: 'f32', access: 'read' }, // (B, 1, Hkv, Sk)
    { name: 'v', type: 'f32', access: 'read' }, // (B, 1, Hkv, Sv)
    ...(attrs.rope ? [{ name: 'table', type: 'f32', access: 'read' } as const] : []), // (P, R)
    ...(norm
      ? [
          { name: 'qw', type: wgslStorageType(norm.weightDtype), access: 'read' } as const, // (D)
          { name: 'kw', type: wgslStorageType(norm.weightDtype), access: 'read' } as const, // (D)
        ]
      : []),
    { name: 'qh', type: 'f32', access: 'read_write' }, // (B, 1, H, D)
    { name: 'kc', type: 'f32', access: 'read_write' }, // (B, T, Hkv, D) the run's keys
    { name: 'vc', type: 'f32', access: 'read_write' }, // (B, T, Hkv, D) the run's values
  ] as const;
  const cacheKey = `${attrs.rope ? 'r' : ''}|${norm ? `n${norm.weightDtype}${norm.unitOffset ? 'u' : ''}` : ''}`;
  const scale = (w: string) => (norm?.unitOffset ? `(1.0 + ${w})` : w);
  const wgsl = memoWgsl('decode_qkv', cacheKey, () => `${wgslBindings(layout, bindings)}
${norm ? `${wgslLoadFloat('loadQW', 'qw', norm.weightDtype)}\n${wgslLoadFloat('loadKW', 'kw', norm.weightDtype)}` : ''}
const WG = ${THREADS}u;
var<workgroup> red: array<f32, ${THREADS}>;
// kind 0: a query head, 1: a key head, 2: a value head (uniform per workgroup)
fn src(kind: u32, base: u32, d: u32) -> f32 {
  if (kind == 0u) { return q[base + d]; }
  if (kind == 1u) { return k[base + d]; }
  return v[base + d];
}
fn normed(kind: u32, base: u32, d: u32, inv: f32) -> f32 {
  ${norm ? `if (kind == 0u) { return q[base + d] * inv * ${scale('loadQW(d)')}; }
  if (kind == 1u) { return k[base + d] * inv * ${scale('loadKW(d)')}; }` : ''}
  return src(kind, base, d);
}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let row = ${WGSL_LINEAR_WORKGROUP};
  if (row >= u.rows) { return; }
  let heads = u.H + 2u * u.Hkv;
  let b = row / heads;
  let s = row % heads;
  var kind = 0u;
  var h = s;
  var base = u.qOff + b * u.qB + s * u.Sq;
  if (s >= u.H + u.Hkv) { kind = 2u; h = s - u.H - u.Hkv; base = u.vOff + b * u.vB + h * u.Sv; }
  else if (s >= u.H) { kind = 1u; h = s - u.H; base = u.kOff + b * u.kB + h * u.Sk; }
  var inv = 1.0;
  ${norm ? `var ss = 0.0;
  for (var d = li; d < u.D; d += WG) { let x = src(kind, base, d); ss += x * x; }
  red[li] = ss;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (li < st) { red[li] += red[li + st]; }
    workgroupBarrier();
  }
  inv = inverseSqrt(red[0] / f32(u.D) + select(u.qEps, u.kEps, kind == 1u));` : ''}
  ${attrs.rope ? `let half = u.R / 2u;
  let trow = u.posRow * u.R;` : ''}
  let dst = select((b * u.H + h) * u.D, ((b * u.T + u.slot) * u.Hkv + h) * u.D, kind != 0u);
  for (var d = li; d < u.D; d += WG) {
    var x = normed(kind, base, d, inv);
    ${attrs.rope ? `if (kind != 2u && d < u.R) {
      let j = d % half;
      let partner = select(d - half, d + half, d < half);
      let rot = select(1.0, -1.0, d < half) * normed(kind, base, partner, inv);
      x = x * table[trow + j] + rot * table[trow + half + j];
    }` : ''}
    if (kind == 0u) { qh[dst + d] = x; } else if (kind == 1u) { kc[dst + d] = x; } else { vc[dst + d] = x; }
  }
}`);
  return {
    name: 'decode_qkv',
    cacheKey,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch(shape.B * (shape.H + 2 * shape.Hkv)),
    bindings,
    uniformLayout: layout,
    uniforms: {
      H: shape.H, Hkv: shape.Hkv, D: shape.D, R: shape.R, Sq: shape.Sq, Sk: shape.Sk, Sv: shape.Sv, T: shape.T, slot: shape.slot, posRow: shape.posRow,
      rows: shape.B * (shape.H + 2 * shape.Hkv), qEps: 0, kEps: 0,
      qOff: shape.offsets?.q ?? 0, kOff: shape.offsets?.k ?? 0, vOff: shape.offsets?.v ?? 0,
      qB: shape.batchStrides?.q ?? shape.H * shape.Sq, kB: shape.batchStrides?.k ?? shape.Hkv * shape.Sk, vB: shape.batchStrides?.v ?? shape.Hkv * shape.Sv,
    },
  };
}

/** Inputs of {@link decodeQkv}. */
export interface DecodeQkvInputs {
  /** Queries (B, 1, H, Sq): the first D features of each head row are the query. */
  q: TensorLike;
  /** Keys and values (B, 1, Hkv, ≥D). */
  k: TensorLike;
  v: TensorLike;
  headDim: number;
  /** cos/sin table (P, R) and the row of the token's position; absent: no rotation. */
  rope?: { table: TensorLike; position: number };
  /** Per-head RMSNorm of q and k before the rotation. */
  qNorm?: { weight: TensorLike; eps: number; unitOffset?: boolean };
  kNorm?: { weight: TensorLike; eps: number; unitOffset?: boolean };
  /** The cache run (B, T, Hkv, D) and the row the token goes to. */
  cache: { k: TensorLike; v: TensorLike; slot: number };
}

/**
 * Whether {@link decodeQkv} takes these inputs on this runtime (q and k norms both or neither,
 * 16-bit norm weights alike, and the storage buffers within the device's limit).
 *
 * @example
 * ```ts
 * if (canDecodeQkv(rt, { qNorm, kNorm })) qh = decodeQkv(rt, inputs);
 * ```
 */
export function canDecodeQkv(runtime: Runtime, inputs: Pick<DecodeQkvInputs, 'qNorm' | 'kNorm' | 'rope'>): boolean {
  const { qNorm, kNorm } = inputs;
  if (!qNorm !== !kNorm || (qNorm && kNorm && (qNorm.weight.dtype !== kNorm.weight.dtype || !!qNorm.unitOffset !== !!kNorm.unitOffset))) return false;
  return 6 + (inputs.rope ? 1 : 0) + (qNorm ? 2 : 0) <= runtime.limits.maxStorageBuffersPerShaderStage;
}

/**
 * RoPE (and q/k norms) for one decode token's queries, keys and values, the keys and values
 * written into their cache slot, in one dispatch. Returns the rotated queries (B, 1, H, D).
 *
 * @example
 * ```ts
 * const qh = decodeQkv(rt, { q, k, v, headDim: 64, rope: { table, position: 300 }, cache: { k: run.k, v: run.v, slot: 44 } });
 * ```
 */
export function decodeQkv(runtime: Runtime, inputs: DecodeQkvInputs): Tensor {
  const op = 'decodeQkv';
  const { q, k, v, headDim: D } = inputs;
  assertArg(q.shape.length === 4 && q.shape[1] === 1 && q.shape[3] >= D, op, `q has shape [${q.shape.join(',')}], expected [B, 1, H, ≥${D}]`);
  const [B, , H, Sq] = q.shape;
  const Hkv = k.shape[2];
  for (const [name, t] of [['k', k], ['v', v]] as const) {
    assertArg(t.shape.length === 4 && t.shape[0] === B && t.shape[1] === 1 && t.shape[2] === Hkv && t.shape[3] >= D, op, `${name} has shape [${t.shape.join(',')}], expected [B=${B}, 1, Hkv=${Hkv}, ≥${D}]`);
  }
  return runDecodeQkv(runtime, op, inputs, [q, k, v], { B, H, Hkv, Sq, Sk: k.shape[3], Sv: v.shape[3] });
}

/** Inputs of {@link decodeQkvPacked}: q, k and v side by side in one row, as one stacked projection writes them. */
export interface DecodeQkvPackedInputs extends Omit<DecodeQkvInputs, 'q' | 'k' | 'v'> {
  /** (B, 1, H·Sq + 2·Hkv·D): H query rows of Sq (≥ D: [query | gate] rows), then Hkv key rows, then Hkv value rows of D. */
  qkv: TensorLike;
  numHeads: number;
  numKeyValueHeads: number;
  /** Query row stride per head (default D). */
  queryStride?: number;
}

/**
 * {@link decodeQkv} reading q, k and v from one buffer (the output of a q/k/v projection stacked
 * into one fused norm + gemv), so the three need no copies or separate projections.
 *
 * @example
 * ```ts
 * const qkv = pending.fusedStack([wq, wk, wv]); // (1, 1, H·D + 2·Hkv·D)
 * const qh = decodeQkvPacked(rt, { qkv, numHeads: 16, numKeyValueHeads: 4, headDim: 64, rope, cache });
 * ```
 */
export function decodeQkvPacked(runtime: Runtime, inputs: DecodeQkvPackedInputs): Tensor {
  const op = 'decodeQkvPacked';
  const { qkv, numHeads: H, numKeyValueHeads: Hkv, headDim: D } = inputs;
  const Sq = inputs.queryStride ?? D;
  const W = H * Sq + 2 * Hkv * D;
  assertArg(Sq >= D && qkv.shape[qkv.shape.length - 1] === W && qkv.size % W === 0 && qkv.size / W === inputs.cache.k.shape[0], op, `qkv has shape [${qkv.shape.join(',')}], expected [B, 1, ${H}·${Sq} + 2·${Hkv}·${D} = ${W}]`);
  const B = qkv.size / W;
  return runDecodeQkv(runtime, op, inputs, [qkv, qkv, qkv], {
    B, H, Hkv, Sq, Sk: D, Sv: D, offsets: { q: 0, k: H * Sq, v: H * Sq + Hkv * D }, batchStrides: { q: W, k: W, v: W },
  });
}

/** Checks the cache, rope and norms of either entry point, then records the kernel. */
function runDecodeQkv(
  runtime: Runtime,
  op: string,
  inputs: Omit<DecodeQkvInputs, 'q' | 'k' | 'v'>,
  sources: readonly [TensorLike, TensorLike, TensorLike],
  layout: Pick<DecodeQkvShape, 'B' | 'H' | 'Hkv' | 'Sq' | 'Sk' | 'Sv' | 'offsets' | 'batchStrides'>,
): Tensor {
  const { headDim: D, rope, qNorm, kNorm, cache } = inputs;
  const { B, H, Hkv } = layout;
  for (const [name, t] of [['cache k', cache.k], ['cache v', cache.v]] as const) {
    assertArg(t.shape.length === 4 && t.shape[0] === B && t.shape[2] === Hkv && t.shape[3] === D, op, `${name} has shape [${t.shape.join(',')}], expected [B=${B}, T, Hkv=${Hkv}, D=${D}]`);
  }
  const T = cache.k.shape[1];
  assertArg(Number.isInteger(cache.slot) && cache.slot >= 0 && cache.slot < T, op, `slot ${cache.slot} is outside the run's ${T} rows`);
  assertArg(canDecodeQkv(runtime, inputs), op, 'q and k norms must come together with alike weights, within the storage-buffer limit');
  const R = rope ? rope.table.shape[1] : 0;
  if (rope) {
    assertArg(R % 2 === 0 && R > 0 && R <= D, op, `rotary dim ${R} must be even and at most head_dim ${D}`);
    assertArg(rope.position >= 0 && rope.position < rope.table.shape[0], op, `position ${rope.position} is outside the table's ${rope.table.shape[0]} rows`);
  }
  for (const n of [qNorm, kNorm]) if (n) assertArg(n.weight.size === D, op, `norm weight has shape [${n.weight.shape.join(',')}], expected [D=${D}]`);
  const kernel = createDecodeQkvKernel(
    { ...layout, D, R, T, slot: cache.slot, posRow: rope?.position ?? 0 },
    { rope: !!rope, norm: qNorm ? { weightDtype: qNorm.weight.dtype, unitOffset: qNorm.unitOffset } : undefined },
  );
  const qh = runtime.empty([B, 1, H, D], 'f32', 'decodeQkv.q');
  const tensors: TensorLike[] = [...sources];
  if (rope) tensors.push(rope.table);
  if (qNorm && kNorm) tensors.push(qNorm.weight, kNorm.weight);
  tensors.push(qh, cache.k, cache.v);
  runtime.run({ ...kernel, uniforms: { ...kernel.uniforms, qEps: qNorm?.eps ?? 0, kEps: kNorm?.eps ?? 0 } }, tensors);
  return qh;
}
