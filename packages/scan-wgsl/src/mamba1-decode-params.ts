/**
 * The small per-channel weights of a Mamba-1 layer packed into one f32 buffer for the fused decode
 * kernels ({@link convXProj}, {@link dtScanStep}). WebGPU guarantees only 8 storage buffers per
 * kernel; the fused scan step would need 11 to 14 with every weight bound on its own, so the
 * vectors it reads per channel share one binding. Packed once when the mixer is built (f16 and
 * bf16 widen to f32 exactly), never per token.
 *
 * Shape glossary (packages/core/README.md):
 *   D  d_inner (channels)   N  d_state   R  time_step_rank   k  conv_kernel
 *   PS = k + 3 + N floats per channel
 *
 * Layout, (D, PS) then a tail:
 *   [c·PS + j]          conv1d.weight[c, j], j < k
 *   [c·PS + k]          conv1d.bias[c] (0 without a bias)
 *   [c·PS + k + 1]      dt_proj.bias[c]
 *   [c·PS + k + 2]      D[c]
 *   [c·PS + k + 3 + n]  A_log[c, n]
 *   [D·PS + i]          Jamba's dt / b / c layernorm weights, (R + 2N), 'weighted' only
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
  memoWgsl,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
} from '@statespace/core';

/** Floats per channel in the packed buffer: conv taps, conv bias, dt bias, D, A_log row. */
export function decodeParamStride(kernelSize: number, dState: number): number {
  return kernelSize + 3 + dState;
}

/** The weights {@link packMamba1DecodeParams} packs, transformers' names in brackets. */
export interface Mamba1DecodeWeights {
  /** (D, 1, k) or (D, k) [conv1d.weight] */
  convWeight: TensorLike;
  /** (D) [conv1d.bias], optional */
  convBias?: TensorLike;
  /** (D) [dt_proj.bias] */
  dtBias: TensorLike;
  /** (D) [D] */
  D: TensorLike;
  /** (D, N) [A_log] */
  aLog: TensorLike;
  /** Jamba's [dt_layernorm.weight] (R), [b_layernorm.weight] (N), [c_layernorm.weight] (N) */
  norms?: { dt: TensorLike; B: TensorLike; C: TensorLike };
}

const THREADS = 64;
const layout = { rows: 'u32', cols: 'u32', dstOffset: 'u32', dstStride: 'u32' } as const satisfies UniformLayout;

/**
 * Copies a (rows, cols) float tensor of any storage type into f32 columns of a wider buffer:
 * dst[dstOffset + r·dstStride + c] = src[r, c].
 * @example
 * ```ts
 * const k = createPackColumnsKernel({ rows: 128, cols: 4, dstOffset: 0, dstStride: 23 }, 'bf16');
 * ```
 */
export function createPackColumnsKernel(shape: { rows: number; cols: number; dstOffset: number; dstStride: number }, srcDtype: DType): KernelDescriptor {
  const bindings = [
    { name: 'src', type: wgslStorageType(srcDtype), access: 'read' }, // (rows, cols)
    { name: 'dst', type: 'f32', access: 'read_write' }, // (rows, dstStride) from dstOffset
  ] as const;
  const wgsl = memoWgsl('pack_columns', srcDtype, () => `${wgslBindings(layout, bindings)}
${wgslLoadFloat('loadSrc', 'src', srcDtype)}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.rows * u.cols) { return; }
  dst[u.dstOffset + (i / u.cols) * u.dstStride + i % u.cols] = loadSrc(i);
}`);
  return {
    name: 'pack_columns',
    cacheKey: srcDtype,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch((shape.rows * shape.cols) / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: { ...shape },
  };
}

/**
 * Packs a Mamba-1 layer's per-channel weights (and Jamba's norm weights) into one f32 tensor
 * laid out as the file comment says. Runs a few small copy kernels; call it once per layer.
 *
 * @example
 * ```ts
 * const params = packMamba1DecodeParams(rt, { convWeight: w['conv1d.weight'], convBias: w['conv1d.bias'], dtBias: w['dt_proj.bias'], D: w['D'], aLog: w['A_log'] });
 * ```
 */
export function packMamba1DecodeParams(runtime: Runtime, weights: Mamba1DecodeWeights): Tensor {
  const { convWeight, convBias, dtBias, D: skip, aLog, norms } = weights;
  const D = convWeight.shape[0];
  const k = convWeight.shape[convWeight.shape.length - 1];
  if (aLog.shape.length !== 2 || aLog.shape[0] !== D) {
    throw new StatespaceError('SHAPE_MISMATCH', `packMamba1DecodeParams: A_log has shape [${aLog.shape.join(',')}], expected [d_inner=${D}, d_state]`);
  }
  const N = aLog.shape[1];
  for (const [name, t] of [['conv bias', convBias], ['dt bias', dtBias], ['D', skip]] as const) {
    if (t && t.size !== D) throw new StatespaceError('SHAPE_MISMATCH', `packMamba1DecodeParams: ${name} has shape [${t.shape.join(',')}], expected [d_inner=${D}]`);
  }
  if (convWeight.size !== D * k) throw new StatespaceError('SHAPE_MISMATCH', `packMamba1DecodeParams: conv weight has shape [${convWeight.shape.join(',')}], expected [d_inner, 1, k]`);
  const PS = decodeParamStride(k, N);
  const tail = norms ? norms.dt.size + norms.B.size + norms.C.size : 0;
  const params = runtime.zeros([D * PS + tail], 'f32', 'mamba1.decodeParams');
  const put = (src: TensorLike, rows: number, cols: number, dstOffset: number, dstStride: number) => {
    runtime.run(createPackColumnsKernel({ rows, cols, dstOffset, dstStride }, src.dtype), [src, params]);
  };
  put(convWeight, D, k, 0, PS);
  if (convBias) put(convBias, D, 1, k, PS);
  put(dtBias, D, 1, k + 1, PS);
  put(skip, D, 1, k + 2, PS);
  put(aLog, D, N, k + 3, PS);
  if (norms) {
    put(norms.dt, 1, norms.dt.size, D * PS, 0);
    put(norms.B, 1, norms.B.size, D * PS + norms.dt.size, 0);
    put(norms.C, 1, norms.C.size, D * PS + norms.dt.size + norms.B.size, 0);
  }
  return params;
}
