/**
 * Decode's matrix-vector kernels in a dependent chain, as a decode step runs them: GPU time per
 * dispatch of the fused norm + gemv (general and eager variants) and of the plain vec4 gemv on
 * the bench models' decode shapes, the share of the streaming-read bandwidth each reaches, and the
 * cost of a trivial dispatch in the same chain (the floor any kernel pays for its barrier and launch).
 *
 *   pnpm exec esbuild bench/src/gemv.ts --bundle --platform=node --format=esm --external:webgpu --conditions=@statespace/source --outfile=/tmp/gemv.mjs
 *   node /tmp/gemv.mjs [--quick] [--dtype f32,bf16,q8]   (the script must be named gemv.mjs / gemv.ts)
 *
 * Timing: `reps` dispatches are recorded into one pass (each writes y, which the next one's
 * barrier waits on, like consecutive kernels of a decode step), then submitted at once; the clock
 * runs from the submit to `onSubmittedWorkDone` (best of 3). Shapes: the core glossary, y (M, N) = x̂ (M, K) · Wᵀ.
 */
import { parseArgs } from 'node:util';
import { type DType, type KernelDescriptor, type NormGemvKind, Runtime, type Tensor, createGemvVec4Kernel, normGemv, wgslBindings } from '@statespace/core';

const now = () => performance.now();

/** One decode gemv shape of a bench model. */
export interface DecodeGemvShape {
  name: string;
  kind: NormGemvKind | 'plain';
  M: number;
  N: number;
  K: number;
  /** Row counts of stacked weights (q, k, v), summing to N. */
  stack?: number[];
  glu?: boolean;
}

/** The decode gemvs of mamba2-130m, mamba-130m and llama-350m at batch 1. */
export const DECODE_GEMV_SHAPES: DecodeGemvShape[] = [
  { name: 'mamba2 in_proj', kind: 'add_rms', M: 1, N: 3352, K: 768 },
  { name: 'mamba2 out_proj', kind: 'gated_rms', M: 1, N: 768, K: 1536 },
  { name: 'lm_head 768', kind: 'add_rms', M: 1, N: 50280, K: 768 },
  { name: 'mamba in_proj', kind: 'add_rms', M: 1, N: 3072, K: 768 },
  { name: 'mamba out_proj', kind: 'plain', M: 1, N: 768, K: 1536 },
  { name: 'llama qkv', kind: 'add_rms', M: 1, N: 1536, K: 1024, stack: [1024, 256, 256] },
  { name: 'llama gate/up', kind: 'add_rms', M: 1, N: 2816, K: 1024, glu: true },
  { name: 'llama down', kind: 'plain', M: 1, N: 1024, K: 2816 },
  { name: 'llama o_proj', kind: 'plain', M: 1, N: 1024, K: 1024 },
  { name: 'mamba2 in_proj b2', kind: 'add_rms', M: 2, N: 3352, K: 768 },
];

function fill(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2147483648 - 1) * scale;
  }
  return out;
}

/** Best-of-3 ms per dispatch of `record` repeated `reps` times in one submit. */
async function perDispatch(rt: Runtime, record: () => void, reps: number): Promise<number> {
  const every = rt.submitEvery;
  rt.submitEvery = 0;
  try {
    record();
    await rt.sync();
    let best = Infinity;
    for (let s = 0; s < 3; s++) {
      for (let i = 0; i < reps; i++) record();
      const t0 = now();
      await rt.sync();
      best = Math.min(best, (now() - t0) / reps);
    }
    return best;
  } finally {
    rt.submitEvery = every;
  }
}

/** A kernel that does nearly nothing: `workgroups` workgroups of 64 threads, one writes y[0]. */
function trivialKernel(workgroups: number): KernelDescriptor {
  const layout = { n: 'u32' } as const;
  const bindings = [{ name: 'y', type: 'f32', access: 'read_write' }] as const;
  return {
    name: 'trivial',
    cacheKey: `trivial`,
    wgsl: `${wgslBindings(layout, bindings)}
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  if (li == 0u && wid.x == 0u) { y[0] = y[0] + f32(u.n); }
}`,
    workgroupSize: [64, 1, 1],
    dispatch: [workgroups, 1, 1],
    bindings,
    uniformLayout: layout,
    uniforms: { n: 1 },
  };
}

/** Streaming-read bandwidth (GB/s) of a vec4 kernel over `bytes` (within the default 256 MiB buffer limit), 1,056 workgroups of 256 threads. */
async function streamingRead(rt: Runtime, bytes: number): Promise<number> {
  const layout = { n4: 'u32' } as const;
  const bindings = [
    { name: 'a', type: 'vec4<f32>', access: 'read' },
    { name: 'o', type: 'f32', access: 'read_write' },
  ] as const;
  const wgs = 1056;
  const kernel: KernelDescriptor = {
    name: 'stream_read',
    cacheKey: 'stream_read',
    wgsl: `${wgslBindings(layout, bindings)}
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var acc = vec4<f32>(0.0);
  let stride = nwg.x * 256u;
  for (var i = gid.x; i < u.n4; i += stride) { acc += a[i]; }
  o[gid.x] = acc.x + acc.y + acc.z + acc.w; // every thread writes its sum, so no load can be dropped
}`,
    workgroupSize: [256, 1, 1],
    dispatch: [wgs, 1, 1],
    bindings,
    uniformLayout: layout,
    uniforms: { n4: bytes / 16 },
  };
  const a = rt.zeros([bytes / 4]);
  const o = rt.zeros([wgs * 256]);
  const ms = await perDispatch(rt, () => rt.run(kernel, [a, o]), 20);
  a.dispose();
  o.dispose();
  return bytes / (ms * 1e-3) / 1e9;
}

/** Bytes of a weight (N, K) at a dtype. */
function weightBytes(N: number, K: number, dtype: DType): number {
  return dtype === 'q8' ? (N * K * 9) / 8 : dtype === 'f32' ? N * K * 4 : N * K * 2;
}

/** ms per dispatch of one shape's kernel (general or eager variant) in a chain of `reps`. */
export async function timeDecodeGemv(rt: Runtime, s: DecodeGemvShape, dtype: DType, eager: boolean, reps: number): Promise<number> {
  const { M, N, K } = s;
  const keep: Tensor[] = [];
  const up = (n: number, shape: number[], seed: number, dt: DType = 'f32') => {
    const t = rt.upload(fill(n, seed, 0.5), shape, dt);
    keep.push(t);
    return t;
  };
  const y = rt.empty([M, N]);
  keep.push(y);
  let record: () => void;
  if (s.kind === 'plain') {
    const x = up(M * K, [M, K], 1);
    const w = up(N * K, [N, K], 2, dtype);
    const kernel = createGemvVec4Kernel({ M, N, K }, dtype, false, { eager });
    record = () => rt.run(kernel, [x, w, y]);
  } else {
    const x = up(M * K, [M, K], 1);
    const branch = up(M * K, [M, K], 3);
    const sum = rt.empty([M, K]);
    keep.push(sum);
    const z = up(M * K, [M, K], 4);
    const nw = up(K, [K], 5);
    const rows = s.stack ?? [N];
    const [w, ...stack] = rows.map((n, i) => up(n * K, [n, K], 6 + i, dtype));
    const upW = s.glu ? up(N * K, [N, K], 9, dtype) : undefined;
    record = () =>
      void normGemv(rt, {
        kind: s.kind as NormGemvKind,
        x,
        branch: s.kind === 'add_rms' ? branch : undefined,
        sum: s.kind === 'add_rms' ? sum : undefined,
        z: s.kind === 'add_rms' ? undefined : z,
        normWeight: nw,
        eps: 1e-5,
        weight: w,
        stack: stack.length ? stack : undefined,
        glu: upW ? { up: upW, act: 'silu' } : undefined,
        out: y,
        eager,
      });
  }
  const ms = await perDispatch(rt, record, reps);
  for (const t of keep) t.dispose();
  return ms;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, dtype: { type: 'string' }, reps: { type: 'string' } } });
  const quick = !!values.quick;
  const dtypes = (values.dtype ?? 'f32,bf16,q8').split(',') as DType[];
  const reps = Number(values.reps ?? (quick ? 4 : 200));
  const rt = await Runtime.create();
  rt.fastKernels = true;
  const t0 = now();
  const bw = await streamingRead(rt, quick ? 1 << 22 : 1 << 28);
  console.log(`adapter ${rt.adapterName}; streaming read ${bw.toFixed(0)} GB/s; ${reps} dispatches per chain`);
  for (const wgs of [1, 420, 4096]) {
    const tk = trivialKernel(wgs);
    const y = rt.zeros([1]);
    const ms = await perDispatch(rt, () => rt.run(tk, [y]), reps);
    // host cost: recording `reps` dispatches (rt.run: cached pipeline and bind group), then the submit
    const every = rt.submitEvery;
    rt.submitEvery = 0;
    const t0r = now();
    for (let i = 0; i < reps; i++) rt.run(tk, [y]);
    const t1r = now();
    rt.flush();
    const t2r = now();
    await rt.sync();
    rt.submitEvery = every;
    y.dispose();
    console.log(`trivial kernel, ${wgs} workgroups of 64: ${(ms * 1000).toFixed(2)} us per dispatch in the chain (GPU, from submit); host ${((1000 * (t1r - t0r)) / reps).toFixed(2)} us to record + ${((1000 * (t2r - t1r)) / reps).toFixed(2)} us to submit, per dispatch`);
  }
  for (const dtype of dtypes) {
    console.log(`\nW ${dtype}: us per dispatch (GB/s of weights, % of streaming read)`);
    console.log(`${'shape'.padEnd(20)} ${'kind'.padEnd(9)} ${'M'.padStart(2)} ${'N'.padStart(6)} ${'K'.padStart(5)} | ${'general'.padStart(22)} | ${'eager'.padStart(22)} | eager/general`);
    for (const s of DECODE_GEMV_SHAPES) {
      if (quick && s.N > 4096) continue;
      const bytes = weightBytes(s.N, s.K, dtype) * (s.glu ? 2 : 1);
      const cell = (ms: number) => `${(ms * 1000).toFixed(2).padStart(7)} (${(bytes / (ms * 1e-3) / 1e9).toFixed(0).padStart(5)}, ${((100 * bytes) / (ms * 1e-3) / 1e9 / bw).toFixed(0).padStart(3)}%)`;
      const general = await timeDecodeGemv(rt, s, dtype, false, reps);
      const eager = await timeDecodeGemv(rt, s, dtype, true, reps);
      console.log(`${s.name.padEnd(20)} ${s.kind.padEnd(9)} ${String(s.M).padStart(2)} ${String(s.N).padStart(6)} ${String(s.K).padStart(5)} | ${cell(general).padStart(22)} | ${cell(eager).padStart(22)} | ${(eager / general).toFixed(2)}`);
    }
  }
  console.log(`\n${((now() - t0) / 1000).toFixed(1)} s`);
  rt.destroy();
}

// Runs as its own entry (the bundle keeps this file's name, or tsx runs it).
if (/(^|\/)gemv\.(m?js|ts)$/.test(process.argv[1] ?? '')) {
  await main();
  process.exit(0);
}
