/**
 * The kernel abstraction: a kernel is a pure function from shapes and
 * attributes to a descriptor (WGSL, workgroup size, dispatch size, uniform
 * values). It needs no GPU, so its WGSL can be generated and checked anywhere;
 * the {@link Runtime} compiles it once per `cacheKey` and runs it.
 * (Modelled on onnxruntime-web's ProgramInfo and tfjs-backend-webgpu's WebGPUProgram.)
 */
import { StatespaceError } from './errors.js';

/** Scalar types allowed in a kernel's uniform block. */
export type UniformType = 'u32' | 'i32' | 'f32';

/** A uniform block's layout: field name -> scalar type, in declaration order. */
export type UniformLayout = Readonly<Record<string, UniformType>>;

/** A storage buffer a kernel binds, in binding order (binding 0 is the uniform block). */
export interface BindingDecl {
  /** WGSL variable name. */
  readonly name: string;
  /** WGSL element type of the `array<...>` (f32, u32, i32, or their vec4 for 16-byte loads). */
  readonly type: 'f32' | 'u32' | 'i32' | 'vec4<f32>' | 'vec4<u32>';
  /** `read` for inputs, `read_write` for outputs. */
  readonly access: 'read' | 'read_write';
}

/** What a kernel factory returns. */
export interface KernelDescriptor {
  /** Human-readable kernel name; labels every GPU object made for it. */
  readonly name: string;
  /** Everything that changes the compiled code, and nothing that changes per run. */
  readonly cacheKey: string;
  /** Complete WGSL module with entry point `main`. */
  readonly wgsl: string;
  /** `@workgroup_size` of `main` (x, y, z); the WGSL must use the same numbers. */
  readonly workgroupSize: readonly [number, number, number];
  /** Workgroup counts (x, y, z). */
  readonly dispatch: readonly [number, number, number];
  /** Storage buffers in binding order (1..n); {@link Runtime.run} binds its tensors in this order. */
  readonly bindings: readonly BindingDecl[];
  /** Fields of the uniform block (binding 0), read in WGSL as `u.<name>`. */
  readonly uniformLayout: UniformLayout;
  /** Per-run values of the uniform block. */
  readonly uniforms: Readonly<Record<string, number>>;
}

/** Largest workgroup count allowed in one dispatch dimension by default WebGPU limits. */
export const MAX_WORKGROUPS_PER_DIM = 65535;

/**
 * WGSL declarations for a kernel's uniform struct (`Params`, bound as `u`) and
 * its storage buffers, in the binding order the runtime uses.
 *
 * @example
 * ```ts
 * const wgsl = wgslBindings({ n: 'u32' }, [
 *   { name: 'x', type: 'f32', access: 'read' },
 *   { name: 'y', type: 'f32', access: 'read_write' },
 * ]);
 * // struct Params { n: u32, }; var<uniform> u: Params at binding 0, x at binding 1, y at binding 2
 * ```
 */
export function wgslBindings(layout: UniformLayout, bindings: readonly BindingDecl[]): string {
  const fields = Object.entries(layout).map(([k, t]) => `  ${k}: ${t},`);
  const lines = [`struct Params {`, ...(fields.length ? fields : ['  _unused: u32,']), `};`, `@group(0) @binding(0) var<uniform> u: Params;`];
  bindings.forEach((b, i) => {
    const access = b.access === 'read' ? 'read' : 'read_write';
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${access}> ${b.name}: array<${b.type}>;`);
  });
  return lines.join('\n');
}

/**
 * Byte size of a uniform block (each field is 4 bytes; rounded up to 16).
 *
 * @example
 * ```ts
 * uniformByteSize({ n: 'u32', eps: 'f32' }); // 16
 * uniformByteSize({ a: 'u32', b: 'u32', c: 'u32', d: 'u32', e: 'f32' }); // 32
 * ```
 */
export function uniformByteSize(layout: UniformLayout): number {
  return Math.max(16, Math.ceil((Object.keys(layout).length * 4) / 16) * 16);
}

/**
 * Writes uniform `values` laid out as `layout` into `target` at byte `offset`.
 *
 * @example
 * ```ts
 * const view = new DataView(new ArrayBuffer(16));
 * packUniforms({ n: 'u32', eps: 'f32' }, { n: 37, eps: 1e-5 }, view, 0);
 * ```
 */
export function packUniforms(layout: UniformLayout, values: Readonly<Record<string, number>>, target: DataView, offset: number): void {
  let o = offset;
  for (const [k, t] of Object.entries(layout)) {
    const v = values[k];
    if (v === undefined || Number.isNaN(v) && t !== 'f32') {
      throw new StatespaceError('INVALID_ARGUMENT', `uniform ${k} (${t}) has no value`);
    }
    if (t === 'u32') target.setUint32(o, v >>> 0, true);
    else if (t === 'i32') target.setInt32(o, v | 0, true);
    else target.setFloat32(o, v, true);
    o += 4;
  }
}

/**
 * Splits a 1-D count of workgroups over x and y so neither exceeds the
 * per-dimension limit. Shaders recover the linear index with {@link WGSL_LINEAR_WORKGROUP}.
 *
 * @example
 * ```ts
 * linearDispatch(10);      // [10, 1, 1]
 * linearDispatch(100_000); // [50000, 2, 1]
 * ```
 */
export function linearDispatch(workgroups: number, maxPerDim = MAX_WORKGROUPS_PER_DIM): [number, number, number] {
  const n = Math.max(1, Math.ceil(workgroups));
  if (n <= maxPerDim) return [n, 1, 1];
  const y = Math.ceil(n / maxPerDim);
  return [Math.ceil(n / y), y, 1];
}

/** WGSL expression for the linear workgroup index of a {@link linearDispatch} (needs `wid` and `nwg` builtins). */
export const WGSL_LINEAR_WORKGROUP = '(wid.x + wid.y * nwg.x)';

/** Standard entry-point builtins: local id `lid`, workgroup id `wid`, workgroup count `nwg`, local index `li`. */
export const WGSL_BUILTINS =
  '@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32';

/**
 * Compiles sizes into a kernel's WGSL: every `u.<name>` of `sizes` (u32 uniform fields) becomes the
 * literal, so loops over them get constant trip counts the shader compiler unrolls, and their loads
 * issue together instead of one trip at a time. The fields stay in the uniform block (unread); the
 * kernel's cache key must then include the sizes.
 *
 * @example
 * ```ts
 * wgslCompileSizes('for (var i = li; i < u.D; i += 64u) {}', { D: 768 }); // 'for (var i = li; i < 768u; i += 64u) {}'
 * ```
 */
export function wgslCompileSizes(wgsl: string, sizes: Readonly<Record<string, number>>): string {
  return wgsl.replace(/\bu\.([A-Za-z_][A-Za-z0-9_]*)\b/g, (m, name: string) => {
    const v = sizes[name];
    if (v === undefined) return m;
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new StatespaceError('INVALID_ARGUMENT', `wgslCompileSizes: ${name}=${v} is not a u32`);
    return `${v}u`;
  });
}

const wgslMemo = new Map<string, string>();

/**
 * Builds a kernel's WGSL once per (name, cacheKey) and reuses the string:
 * factories run on every dispatch (hundreds per decoded token), so the template
 * work is done only the first time a variant is seen.
 *
 * @example
 * ```ts
 * const wgsl = memoWgsl('my_op', cacheKey, () => `${wgslBindings(layout, bindings)}\n@compute ...`);
 * ```
 */
export function memoWgsl(name: string, cacheKey: string, build: () => string): string {
  const key = `${name}|${cacheKey}`;
  let s = wgslMemo.get(key);
  if (s === undefined) wgslMemo.set(key, (s = build()));
  return s;
}
