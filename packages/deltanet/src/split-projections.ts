/**
 * Reorders Qwen3NextGatedDeltaNet's input projections and computes its gates, in one kernel
 * (transformers' `fix_query_key_value_ordering` plus the β and g lines of `forward`).
 *
 * Shape glossary:
 *   N   tokens (batch · seqlen)        Hk, Hv  key / value heads, r = Hv / Hk value heads per key head
 *   dk, dv  head dims                  P = Hk·(2·dk + 2·r·dv) = 2·Hk·dk + 2·Hv·dv
 *
 * in_proj_qkvz's output is grouped by key head: for each key head, [q (dk) | k (dk) | v (r·dv) | z (r·dv)].
 * in_proj_ba's output likewise: for each key head, [b (r) | a (r)]. The kernel writes
 *   qkv  (N, 2·Hk·dk + Hv·dv) = [q of all heads | k of all heads | v of all heads], the conv's channel order
 *   z    (N, Hv·dv)
 *   g    (N, Hv) = −exp(A_log) · softplus(a + dt_bias)
 *   beta (N, Hv) = sigmoid(b)
 * One thread per element of qkvz, then one per (token, value head) for the gates.
 */
import {
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  StatespaceError,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  assertArg,
  assertShape,
  linearDispatch,
  wgslActivations,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
  type DType,
  memoWgsl,
} from '@statespace/core';

/** Head sizes of a Gated DeltaNet layer. */
export interface GatedDeltaNetHeads {
  numKeyHeads: number;
  numValueHeads: number;
  headKDim: number;
  headVDim: number;
}

const THREADS = 256;
const layout = { N: 'u32', Hk: 'u32', r: 'u32', dk: 'u32', dv: 'u32' } as const satisfies UniformLayout;

/**
 * Builds the split-and-gate kernel. Bindings: qkvz (N, P), ba (N, 2·Hv), A_log (Hv), dt_bias (Hv),
 * qkv (N, 2·Hk·dk + Hv·dv), z (N, Hv·dv), g (N, Hv), beta (N, Hv).
 *
 * @example
 * ```ts
 * const kernel = createSplitProjectionsKernel(N, heads, { aLogDtype: 'f32', dtBiasDtype: 'bf16' });
 * ```
 */
export function createSplitProjectionsKernel(
  tokens: number,
  heads: GatedDeltaNetHeads,
  attrs: { aLogDtype?: DType; dtBiasDtype?: DType } = {},
): KernelDescriptor {
  const aDtype = attrs.aLogDtype ?? 'f32';
  const dtDtype = attrs.dtBiasDtype ?? 'f32';
  const bindings = [
    { name: 'qkvz', type: 'f32', access: 'read' }, // (N, P)
    { name: 'ba', type: 'f32', access: 'read' }, // (N, 2·Hv)
    { name: 'aLog', type: wgslStorageType(aDtype), access: 'read' }, // (Hv)
    { name: 'dtBias', type: wgslStorageType(dtDtype), access: 'read' }, // (Hv)
    { name: 'qkv', type: 'f32', access: 'read_write' }, // (N, 2·Hk·dk + Hv·dv)
    { name: 'z', type: 'f32', access: 'read_write' }, // (N, Hv·dv)
    { name: 'g', type: 'f32', access: 'read_write' }, // (N, Hv)
    { name: 'beta', type: 'f32', access: 'read_write' }, // (N, Hv)
  ] as const;
  const wgsl = memoWgsl('gated_deltanet_split_projections', `${aDtype}|${dtDtype}`, () => `${wgslBindings(layout, bindings)}
${wgslLoadFloat('loadALog', 'aLog', aDtype)}
${wgslLoadFloat('loadDtBias', 'dtBias', dtDtype)}
${wgslActivations()}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let e = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  let Hv = u.Hk * u.r;
  let keyDim = u.Hk * u.dk;
  let rdv = u.r * u.dv;
  let group = 2u * u.dk + 2u * rdv;
  let P = u.Hk * group;
  let convDim = 2u * keyDim + Hv * u.dv;
  if (e < u.N * P) {
    let n = e / P;
    let p = e % P;
    let hk = p / group;
    let o = p % group;
    let val = qkvz[e];
    if (o < u.dk) {
      qkv[n * convDim + hk * u.dk + o] = val;
    } else if (o < 2u * u.dk) {
      qkv[n * convDim + keyDim + hk * u.dk + (o - u.dk)] = val;
    } else if (o < 2u * u.dk + rdv) {
      qkv[n * convDim + 2u * keyDim + hk * rdv + (o - 2u * u.dk)] = val;
    } else {
      z[n * Hv * u.dv + hk * rdv + (o - 2u * u.dk - rdv)] = val;
    }
    return;
  }
  let e2 = e - u.N * P;
  if (e2 >= u.N * Hv) { return; }
  let n = e2 / Hv;
  let h = e2 % Hv;
  let hk = h / u.r;
  let i = h % u.r;
  let bv = ba[n * 2u * Hv + hk * 2u * u.r + i];
  let av = ba[n * 2u * Hv + hk * 2u * u.r + u.r + i];
  beta[e2] = sigmoid_(bv);
  g[e2] = -exp(loadALog(h)) * softplus_(av + loadDtBias(h));
}`);
  const { numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv } = heads;
  const P = 2 * Hk * dk + 2 * Hv * dv;
  return {
    name: 'gated_deltanet_split_projections',
    cacheKey: `${aDtype}|${dtDtype}`,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch(Math.ceil((tokens * (P + Hv)) / THREADS)),
    bindings,
    uniformLayout: layout,
    uniforms: { N: tokens, Hk, r: Hv / Hk, dk, dv },
  };
}

/** What {@link splitProjections} returns; all f32, leading dims those of qkvz. */
export interface SplitProjections {
  /** (..., 2·Hk·dk + Hv·dv): [q | k | v], the causal conv's input. */
  qkv: Tensor;
  /** (..., Hv·dv): the output gate. */
  z: Tensor;
  /** (..., Hv): log decay −exp(A_log)·softplus(a + dt_bias). */
  g: Tensor;
  /** (..., Hv): sigmoid(b). */
  beta: Tensor;
}

/**
 * Splits in_proj_qkvz's and in_proj_ba's outputs into the conv input, the output gate and the
 * decay and write gates (transformers' `fix_query_key_value_ordering` and gate formulas).
 *
 * @param qkvz (..., 2·Hk·dk + 2·Hv·dv) f32
 * @param ba (..., 2·Hv) f32
 * @param aLog (Hv), `A_log`
 * @param dtBias (Hv), `dt_bias`
 * @example
 * ```ts
 * const { qkv, z, g, beta } = splitProjections(rt, qkvz, ba, w['A_log'], w['dt_bias'], heads);
 * ```
 */
export function splitProjections(
  runtime: Runtime,
  qkvz: TensorLike,
  ba: TensorLike,
  aLog: TensorLike,
  dtBias: TensorLike,
  heads: GatedDeltaNetHeads,
): SplitProjections {
  const op = 'splitProjections';
  const { numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv } = heads;
  assertArg(Hk > 0 && Hv % Hk === 0, op, `numValueHeads=${Hv} must be a multiple of numKeyHeads=${Hk}`);
  const P = 2 * Hk * dk + 2 * Hv * dv;
  const lead = qkvz.shape.slice(0, -1);
  if (qkvz.dtype !== 'f32' || ba.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: qkvz and ba must be f32`);
  if (qkvz.shape[qkvz.shape.length - 1] !== P) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: qkvz has shape [${qkvz.shape.join(',')}], expected [..., 2*Hk*dk+2*Hv*dv=${P}]`);
  }
  const N = qkvz.size / P;
  if (ba.size !== N * 2 * Hv || ba.shape[ba.shape.length - 1] !== 2 * Hv) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: ba has shape [${ba.shape.join(',')}], expected [${[...lead, `2*Hv=${2 * Hv}`].join(', ')}]`);
  }
  assertShape(op, 'A_log', aLog.shape, { num_v_heads: Hv });
  assertShape(op, 'dt_bias', dtBias.shape, { num_v_heads: Hv });
  const out: SplitProjections = {
    qkv: runtime.empty([...lead, 2 * Hk * dk + Hv * dv], 'f32', `${op}.qkv`),
    z: runtime.empty([...lead, Hv * dv], 'f32', `${op}.z`),
    g: runtime.empty([...lead, Hv], 'f32', `${op}.g`),
    beta: runtime.empty([...lead, Hv], 'f32', `${op}.beta`),
  };
  if (N > 0) {
    const kernel = createSplitProjectionsKernel(N, heads, { aLogDtype: aLog.dtype, dtBiasDtype: dtBias.dtype });
    runtime.run(kernel, [qkvz, ba, aLog, dtBias, out.qkv, out.z, out.g, out.beta]);
  }
  return out;
}

/** Softplus as torch computes it (threshold 20). */
function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

/**
 * CPU reference of {@link splitProjections} over N tokens.
 *
 * @example
 * ```ts
 * const { qkv, z, g, beta } = splitProjectionsReference(qkvz, ba, aLog, dtBias, N, heads);
 * ```
 */
export function splitProjectionsReference(
  qkvz: Float32Array,
  ba: Float32Array,
  aLog: Float32Array,
  dtBias: Float32Array,
  tokens: number,
  heads: GatedDeltaNetHeads,
): { qkv: Float32Array; z: Float32Array; g: Float32Array; beta: Float32Array } {
  const { numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv } = heads;
  const r = Hv / Hk;
  const group = 2 * dk + 2 * r * dv;
  const P = Hk * group;
  const convDim = 2 * Hk * dk + Hv * dv;
  const qkv = new Float32Array(tokens * convDim);
  const z = new Float32Array(tokens * Hv * dv);
  const g = new Float32Array(tokens * Hv);
  const beta = new Float32Array(tokens * Hv);
  for (let n = 0; n < tokens; n++) {
    for (let hk = 0; hk < Hk; hk++) {
      const src = n * P + hk * group;
      for (let i = 0; i < dk; i++) {
        qkv[n * convDim + hk * dk + i] = qkvz[src + i];
        qkv[n * convDim + Hk * dk + hk * dk + i] = qkvz[src + dk + i];
      }
      for (let j = 0; j < r * dv; j++) {
        qkv[n * convDim + 2 * Hk * dk + hk * r * dv + j] = qkvz[src + 2 * dk + j];
        z[n * Hv * dv + hk * r * dv + j] = qkvz[src + 2 * dk + r * dv + j];
      }
      for (let i = 0; i < r; i++) {
        const h = hk * r + i;
        const b = ba[n * 2 * Hv + hk * 2 * r + i];
        const a = ba[n * 2 * Hv + hk * 2 * r + r + i];
        beta[n * Hv + h] = 1 / (1 + Math.exp(-b));
        g[n * Hv + h] = -Math.exp(aLog[h]) * softplus(a + dtBias[h]);
      }
    }
  }
  return { qkv, z, g, beta };
}
