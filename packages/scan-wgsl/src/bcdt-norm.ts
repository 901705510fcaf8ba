/**
 * Splits Mamba-1's x_proj output into the time-step input of dt_proj and the B, C
 * columns, applying the RMS norms some variants put on dt, B and C:
 *   - FalconMamba: `rms_forward` without weight, x · rsqrt(mean(x²) + mixer_rms_eps)
 *     (transformers `models/falcon_mamba`, `FalconMambaMixer.slow_forward`);
 *   - Jamba: `JambaRMSNorm` with weights dt_layernorm, b_layernorm, c_layernorm and
 *     eps rms_norm_eps, w · (x · rsqrt(mean(x²) + eps)) (`JambaMambaMixer.slow_forward`).
 *
 * Shape glossary:
 *   M  rows (batch · seqlen)     R  time_step_rank     N  d_state
 *   x_proj output xdbl: (M, R + 2N) = [time_step | B | C]
 *
 * One thread per (row, segment). The time-step segment is written (normalised or
 * not) to a contiguous (M, R) tensor for dt_proj's matmul; B and C are normalised in
 * place in xdbl, where the scan reads them.
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
  linearDispatch,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
  memoWgsl,
} from '@statespace/core';

/** Which norms the mixer applies to dt, B and C. */
export type BcdtNormKind = 'none' | 'unweighted' | 'weighted';

const THREADS = 64;
const layout = { M: 'u32', R: 'u32', N: 'u32', eps: 'f32' } as const satisfies UniformLayout;

/**
 * Builds the split / norm kernel. `weightDtypes` (dt, B, C) only for 'weighted'.
 * @example
 * ```ts
 * const k = createBcdtNormKernel({ rows: 37, rank: 4, dState: 8 }, { kind: 'unweighted' });
 * rt.run({ ...k, uniforms: { ...k.uniforms, eps: 1e-6 } }, [xdbl, ts]);
 * ```
 */
export function createBcdtNormKernel(shape: { rows: number; rank: number; dState: number }, attrs: { kind: BcdtNormKind; weightDtypes?: [DType, DType, DType] }): KernelDescriptor {
  const kind = attrs.kind;
  const weighted = kind === 'weighted';
  const wd = attrs.weightDtypes ?? ['f32', 'f32', 'f32'];
  const bindings = [
    { name: 'xdbl', type: 'f32', access: 'read_write' }, // (M, R + 2N)
    { name: 'ts', type: 'f32', access: 'read_write' }, // (M, R)
    ...(weighted
      ? ([
          { name: 'w_dt', type: wgslStorageType(wd[0]), access: 'read' }, // (R)
          { name: 'w_b', type: wgslStorageType(wd[1]), access: 'read' }, // (N)
          { name: 'w_c', type: wgslStorageType(wd[2]), access: 'read' }, // (N)
        ] as const)
      : []),
  ] as const;
  const segments = kind === 'none' ? 1 : 3;
  const weightFns = weighted ? [wgslLoadFloat('loadWdt', 'w_dt', wd[0]), wgslLoadFloat('loadWb', 'w_b', wd[1]), wgslLoadFloat('loadWc', 'w_c', wd[2])].join('\n') : '';
  const scale = (fn: string) => (weighted ? ` * ${fn}(k)` : '');
  const norm = kind !== 'none';
  const wgsl = memoWgsl(`bcdt_norm_${kind}`, `${kind}|${weighted ? wd.join(',') : ''}`, () => `${wgslBindings(layout, bindings)}
${weightFns}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.M * ${segments}u) { return; }
  let row = i / ${segments}u;
  let seg = i % ${segments}u;
  let W = u.R + 2u * u.N;
  var start = 0u;
  var len = u.R;
  if (seg == 1u) { start = u.R; len = u.N; }
  if (seg == 2u) { start = u.R + u.N; len = u.N; }
  let base = row * W + start;
  var inv = 1.0;
  ${
    norm
      ? `var ss = 0.0;
  for (var k = 0u; k < len; k++) { let v = xdbl[base + k]; ss += v * v; }
  inv = inverseSqrt(ss / f32(len) + u.eps);`
      : ''
  }
  if (seg == 0u) {
    for (var k = 0u; k < len; k++) { ts[row * u.R + k] = xdbl[base + k] * inv${scale('loadWdt')}; }
  } else if (seg == 1u) {
    for (var k = 0u; k < len; k++) { xdbl[base + k] = xdbl[base + k] * inv${scale('loadWb')}; }
  } else {
    for (var k = 0u; k < len; k++) { xdbl[base + k] = xdbl[base + k] * inv${scale('loadWc')}; }
  }
}`);
  return {
    name: `bcdt_norm_${kind}`,
    cacheKey: `${kind}|${weighted ? wd.join(',') : ''}`,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch((shape.rows * segments) / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: { M: shape.rows, R: shape.rank, N: shape.dState, eps: 0 },
  };
}

/** Options of {@link bcdtNorm}. */
export interface BcdtNormOptions {
  rank: number;
  dState: number;
  kind: BcdtNormKind;
  /** eps inside the square root (FalconMamba's mixer_rms_eps, Jamba's rms_norm_eps). */
  eps?: number;
  /** Jamba's dt_layernorm, b_layernorm and c_layernorm weights ('weighted' only). */
  weights?: { dt: TensorLike; B: TensorLike; C: TensorLike };
}

/**
 * Takes x_proj's output xdbl (..., R + 2N), returns the time-step part (..., R)
 * as a new contiguous tensor and, unless `kind` is 'none', RMS-normalises the
 * time step, B and C (B and C in place in xdbl; its time-step columns are left as they were).
 *
 * @example
 * ```ts
 * const xdbl = matmul(rt, xc, mixer.x_proj.weight);                      // (b, L, R + 2N)
 * const ts = bcdtNorm(rt, xdbl, { rank: R, dState: N, kind: 'unweighted', eps: 1e-6 }); // (b, L, R)
 * const dt = matmul(rt, ts, mixer.dt_proj.weight);                       // (b, L, d_inner)
 * ```
 */
export function bcdtNorm(runtime: Runtime, xdbl: TensorLike, options: BcdtNormOptions): Tensor {
  const { rank: R, dState: N, kind } = options;
  const W = xdbl.shape[xdbl.shape.length - 1];
  if (W !== R + 2 * N) throw new StatespaceError('SHAPE_MISMATCH', `bcdtNorm: xdbl has shape [${xdbl.shape.join(',')}], expected [..., R + 2N = ${R + 2 * N}]`);
  if (xdbl.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `bcdtNorm: xdbl must be f32, got ${xdbl.dtype}`);
  const rows = xdbl.size / W;
  const ts = runtime.empty([...xdbl.shape.slice(0, -1), R], 'f32', 'bcdtNorm.ts');
  if (rows === 0) return ts;
  let weights: TensorLike[] = [];
  if (kind === 'weighted') {
    const w = options.weights;
    if (!w) throw new StatespaceError('INVALID_ARGUMENT', 'bcdtNorm: the weighted norm needs weights dt, B and C');
    const check = (name: string, t: TensorLike, n: number) => {
      if (t.size !== n || t.shape.length !== 1) throw new StatespaceError('SHAPE_MISMATCH', `bcdtNorm: ${name} weight has shape [${t.shape.join(',')}], expected [${n}]`);
    };
    check('dt', w.dt, R);
    check('B', w.B, N);
    check('C', w.C, N);
    weights = [w.dt, w.B, w.C];
  }
  const k = createBcdtNormKernel({ rows, rank: R, dState: N }, { kind, weightDtypes: kind === 'weighted' ? [weights[0].dtype, weights[1].dtype, weights[2].dtype] : undefined });
  runtime.run({ ...k, uniforms: { ...k.uniforms, eps: options.eps ?? 1e-6 } }, [xdbl, ts, ...weights]);
  return ts;
}

/**
 * CPU reference of {@link bcdtNorm}: returns the time-step part and the new xdbl (B and C
 * normalised, the time-step columns as they were; the input is not modified).
 *
 * @example
 * ```ts
 * const { ts, xdbl: normed } = bcdtNormReference(xdbl, rows, { rank: 4, dState: 8, kind: 'unweighted', eps: 1e-6 });
 * ```
 */
export function bcdtNormReference(
  xdbl: Float32Array,
  rows: number,
  options: { rank: number; dState: number; kind: BcdtNormKind; eps?: number; weights?: { dt: Float32Array; B: Float32Array; C: Float32Array } },
): { ts: Float32Array; xdbl: Float32Array } {
  const { rank: R, dState: N, kind } = options;
  const eps = options.eps ?? 1e-6;
  const W = R + 2 * N;
  const out = Float32Array.from(xdbl);
  const ts = new Float32Array(rows * R);
  const segs: [number, number, Float32Array | undefined][] = [
    [0, R, options.weights?.dt],
    [R, N, options.weights?.B],
    [R + N, N, options.weights?.C],
  ];
  for (let r = 0; r < rows; r++) {
    for (const [start, len, w] of segs) {
      let inv = 1;
      if (kind !== 'none') {
        let ss = 0;
        for (let k = 0; k < len; k++) ss += xdbl[r * W + start + k] ** 2;
        inv = 1 / Math.sqrt(ss / len + eps);
      }
      for (let k = 0; k < len; k++) {
        const v = xdbl[r * W + start + k] * inv * (kind === 'weighted' && w ? w[k] : 1);
        if (start === 0) ts[r * R + k] = v;
        else out[r * W + start + k] = v;
      }
    }
  }
  return { ts, xdbl: out };
}
