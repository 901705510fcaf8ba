/**
 * Dense matmul throughput through WebGPU: TFLOP/s of the basic 64×64 tiled kernel and of every
 * register-blocked tile config (`createTiledMatmulKernel`) on llama-350m's prefill shapes and its
 * lm_head, against the FP32 peak measured by a probe of long independent FMA chains.
 *
 *   pnpm exec esbuild bench/src/matmul.ts --bundle --platform=node --format=esm --external:webgpu --conditions=@statespace/source --outfile=/tmp/matmul.mjs
 *   node /tmp/matmul.mjs [--quick] [--dtype f32,f16] [--tokens 4096]   (the script must be named matmul.mjs / matmul.ts)
 *
 * Timing: the repetitions are recorded first, then submitted at once; the clock runs from the
 * submit to `onSubmittedWorkDone`, with enough repetitions for ~25 ms of GPU work (best of 3).
 * Shapes (the core glossary): y (M, N) = x (M, K) · Wᵀ, W (N, K).
 */
import { parseArgs } from 'node:util';
import {
  type DType,
  type KernelDescriptor,
  Runtime,
  TILED_MATMUL_CONFIGS,
  TILED_MATMUL_UNROLLED,
  type Tensor,
  type TiledMatmulConfig,
  type TiledMatmulTile,
  chooseTiledMatmul,
  createSplitKReduceKernel,
  createMatmulKernel,
  createTiledMatmulKernel,
  tiledMatmulProfile,
  wgslBindings,
} from '@statespace/core';
import { relError } from '@statespace/core/testing';
import type { HybridComposition } from '@statespace/hybrid';

/** One matmul of a model's prefill, `count` times per forward pass. */
export interface MatmulShape {
  name: string;
  M: number;
  N: number;
  K: number;
  count: number;
}

const now = () => performance.now();
/** TFLOP/s for a table (software adapters: GFLOP/s, see {@link unitFor}). */
let unit = { name: 'TFLOP/s', scale: 1 };
const fmt = (t: number) => {
  const v = t * unit.scale;
  return v >= 10 ? v.toFixed(1) : v.toFixed(2);
};
/** GFLOP/s when the adapter's peak is below 1 TFLOP/s (SwiftShader). */
function unitFor(peak: number): { name: string; scale: number } {
  return peak < 1 ? { name: 'GFLOP/s', scale: 1000 } : { name: 'TFLOP/s', scale: 1 };
}

/**
 * The matmuls of one prefill forward pass of `tokens` tokens through a composition's layers
 * (attention q/k/v/o, GLU gate/up/down, Mamba-2 and Mamba-1 projections; as `composeModel` builds them),
 * equal shapes merged. Other mixers' projections (DeltaNet, S4D) are left out.
 *
 * @example
 * ```ts
 * prefillMatmulShapes(BENCH_MODELS[3].composition, 4096); // llama-350m: q/o, k/v, gate/up, down
 * ```
 */
export function prefillMatmulShapes(c: HybridComposition, tokens: number): MatmulShape[] {
  const D = c.hiddenSize;
  const letters = [...(c.pattern ?? '')];
  const n = (re: RegExp) => letters.filter((l) => re.test(l)).length;
  const list: Omit<MatmulShape, 'M'>[] = [];
  const attn = n(/[AS*]/);
  if (attn) {
    const a = c.attention ?? { numHeads: D / 64 };
    const hd = a.headDim ?? D / a.numHeads;
    const q = a.numHeads * hd;
    const kv = (a.numKeyValueHeads ?? a.numHeads) * hd;
    list.push({ name: 'attn q', N: q, K: D, count: attn }, { name: 'attn k/v', N: kv, K: D, count: 2 * attn }, { name: 'attn o', N: D, K: q, count: attn });
  }
  const glu = c.mlp ? letters.length : n(/-/); // composeModel gives every block a GLU when mlp is set, else only '-' blocks
  if (glu) {
    const I = c.mlp?.intermediateSize ?? 4 * D;
    list.push({ name: 'mlp gate/up', N: I, K: D, count: 2 * glu }, { name: 'mlp down', N: D, K: I, count: glu });
  }
  const m2 = n(/M/);
  if (m2) {
    const { numHeads: H, headDim: P, stateSize: S, nGroups = 1 } = c.mamba2 ?? { numHeads: (2 * D) / 64, headDim: 64, stateSize: 128 };
    list.push({ name: 'mamba2 in_proj', N: 2 * H * P + 2 * nGroups * S + H, K: D, count: m2 }, { name: 'mamba2 out_proj', N: D, K: H * P, count: m2 });
  }
  const m1 = n(/m/);
  if (m1) {
    const E = (c.mamba1?.expand ?? 2) * D;
    const S = c.mamba1?.stateSize ?? 16;
    const R = Math.ceil(D / 16);
    list.push(
      { name: 'mamba1 in_proj', N: 2 * E, K: D, count: m1 },
      { name: 'mamba1 x_proj', N: R + 2 * S, K: E, count: m1 },
      { name: 'mamba1 dt_proj', N: E, K: R, count: m1 },
      { name: 'mamba1 out_proj', N: D, K: E, count: m1 },
    );
  }
  const merged = new Map<string, MatmulShape>();
  for (const s of list) {
    const key = `${s.N}x${s.K}`;
    const prev = merged.get(key);
    if (prev) {
      prev.count += s.count;
      prev.name += ` + ${s.name}`;
    } else merged.set(key, { ...s, M: tokens });
  }
  return [...merged.values()];
}

/** Deterministic values in [-1, 1) (an LCG), for benchmark inputs. */
export function fill(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

/** Dispatches that make one run of what is timed (a split-K matmul is two). */
export type Steps = readonly { kernel: KernelDescriptor; tensors: Tensor[] }[];

/** GPU time of `reps` back-to-back calls of `run`, one submit (ms). */
async function timeReps(rt: Runtime, run: () => void, reps: number): Promise<number> {
  for (let i = 0; i < reps; i++) run();
  const t0 = now();
  await rt.sync();
  return now() - t0;
}

/**
 * Seconds per call of `run` (which records dispatches: a kernel, or a whole op with its allocations): warm-up
 * (compile), a calibration, then the best of `samples` timed batches of ~`targetMs`, submits held back.
 */
export async function secondsPerCall(rt: Runtime, run: () => void, targetMs: number, samples = 3): Promise<number> {
  const every = rt.submitEvery;
  rt.submitEvery = 0;
  try {
    await timeReps(rt, run, 1);
    const probe = await timeReps(rt, run, 2);
    const reps = Math.max(2, Math.min(1000, Math.ceil(targetMs / Math.max(probe / 2, 1e-3))));
    let best = Infinity;
    for (let i = 0; i < samples; i++) best = Math.min(best, (await timeReps(rt, run, reps)) / reps);
    return best / 1000;
  } finally {
    rt.submitEvery = every;
  }
}

/** Seconds per run of `steps`: {@link secondsPerCall} of recording them all. */
export async function secondsPerRun(rt: Runtime, steps: Steps, targetMs: number, samples = 3): Promise<number> {
  return secondsPerCall(rt, () => { for (const s of steps) rt.run(s.kernel, s.tensors); }, targetMs, samples);
}

let peakMemo: number | undefined;

/**
 * Measured FP32 peak (TFLOP/s): 256-thread workgroups, each thread 8 independent vec4 FMA chains
 * of `trips` × 4 steps, enough workgroups to fill any GPU several times over.
 *
 * @example
 * ```ts
 * console.log(`${(await measureFp32Peak(rt)).toFixed(1)} TFLOP/s`);
 * ```
 */
export async function measureFp32Peak(rt: Runtime, quick = false): Promise<number> {
  if (peakMemo !== undefined) return peakMemo;
  const chains = 8;
  const workgroups = quick ? 16 : 4224;
  const trips = quick ? 16 : 1024;
  const uniformLayout = { trips: 'u32', mul: 'f32', add: 'f32' } as const;
  const bindings = [{ name: 'o', type: 'f32', access: 'read_write' }] as const;
  const names = Array.from({ length: chains }, (_, i) => `a${i}`);
  const step = names.map((a) => `${a} = fma(${a}, m, c);`).join(' ');
  const kernel: KernelDescriptor = {
    name: 'bench_fp32_peak',
    cacheKey: `${chains}`,
    wgsl: `${wgslBindings(uniformLayout, bindings)}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  ${names.map((a, i) => `var ${a} = vec4<f32>(f32(g.x & 255u) * 1e-3 + ${i}.0);`).join('\n  ')}
  let m = vec4<f32>(u.mul);
  let c = vec4<f32>(u.add);
  for (var i = 0u; i < u.trips; i++) {
    ${step}
    ${step}
    ${step}
    ${step}
  }
  o[g.x] = dot(${names.join(' + ')}, vec4<f32>(1.0));
}`,
    workgroupSize: [256, 1, 1],
    dispatch: [workgroups, 1, 1],
    bindings,
    uniformLayout,
    uniforms: { trips, mul: 0.999, add: 1e-4 },
  };
  const out = rt.empty([workgroups * 256], 'f32', 'bench.peak');
  const s = await secondsPerRun(rt, [{ kernel, tensors: [out] }], quick ? 5 : 25);
  out.dispose();
  const flops = workgroups * 256 * trips * 4 * chains * 4 * 2;
  peakMemo = flops / s / 1e12;
  return peakMemo;
}

/** A row of the table: TFLOP/s per kernel, the adapter's choice, and the largest error against the basic kernel. */
export interface MatmulRow {
  shape: MatmulShape;
  tflops: Record<string, number>;
  chosen: string;
  maxRelError: number;
}

const TILES = Object.keys(TILED_MATMUL_CONFIGS) as TiledMatmulTile[];

function tileName(c: TiledMatmulConfig): string {
  return TILES.find((t) => TILED_MATMUL_CONFIGS[t] === c || TILED_MATMUL_UNROLLED[t] === c) ?? `${c.tileM}x${c.tileN}`;
}

/** A table tile as this adapter's profile runs it (unrolled or not). */
function tileConfig(rt: Runtime, t: TiledMatmulTile): TiledMatmulConfig {
  return tiledMatmulProfile(rt.info).unrollK ? TILED_MATMUL_UNROLLED[t] : TILED_MATMUL_CONFIGS[t];
}

/**
 * Times every kernel on one shape (x (M, K), W (N, K) stored as `dtype`): 'basic' and each tile of
 * `tiles` (default: all of the table; ['chosen'] times only the adapter's choice).
 *
 * @example
 * ```ts
 * const row = await benchMatmulShape(rt, { name: 'q', M: 4096, N: 1024, K: 1024, count: 1 }, 'f32');
 * ```
 */
export async function benchMatmulShape(rt: Runtime, shape: MatmulShape, dtype: DType, options: { tiles?: (TiledMatmulTile | 'basic' | 'chosen')[]; targetMs?: number; check?: boolean } = {}): Promise<MatmulRow> {
  const { M, N, K } = shape;
  const x = rt.upload(fill(M * K, 1), [M, K], 'f32', 'bench.x');
  const w = rt.upload(fill(N * K, 2), [N, K], dtype, 'bench.w');
  const y = rt.empty([M, N], 'f32', 'bench.y');
  // what matmul() runs: the chosen tile, with K in slices and a reduce where it splits
  const choice = chooseTiledMatmul({ M, N, K }, rt);
  const chosen = `${tileName(choice.config)}${choice.splitK > 1 ? `/k${choice.splitK}` : ''}`;
  const part = choice.splitK > 1 ? rt.empty([choice.splitK, M, N], 'f32', 'bench.partials') : null;
  const wanted = options.tiles ?? ['basic', ...TILES, 'chosen'];
  const flops = 2 * M * N * K;
  const tflops: Record<string, number> = {};
  let reference: Float32Array | undefined;
  let maxRelError = 0;
  for (const t of wanted) {
    const name = t === 'chosen' ? chosen : t;
    if (name in tflops) continue;
    const steps =
      name === 'basic'
        ? [{ kernel: createMatmulKernel({ M, N, K }, { weightDtype: dtype, gemv: false, tile: 'basic' }), tensors: [x, w, y] }]
        : t === 'chosen' && part
          ? [
              { kernel: createTiledMatmulKernel({ M, N, K }, choice.config, { weightDtype: dtype, splitK: choice.splitK }), tensors: [x, w, part] },
              { kernel: createSplitKReduceKernel({ M, N, S: choice.splitK }), tensors: [part, y] },
            ]
          : [{ kernel: createTiledMatmulKernel({ M, N, K }, tileConfig(rt, name as TiledMatmulTile), { weightDtype: dtype }), tensors: [x, w, y] }];
    tflops[name] = flops / (await secondsPerRun(rt, steps, options.targetMs ?? 25)) / 1e12;
    if (options.check ?? true) {
      rt.clear(y); // a kernel that skipped outputs shows as a relative error near 1
      for (const s of steps) rt.run(s.kernel, s.tensors);
      const out = (await rt.read(y)) as Float32Array;
      if (!reference) reference = out;
      else maxRelError = Math.max(maxRelError, relError(out, reference));
    }
  }
  x.dispose();
  w.dispose();
  y.dispose();
  part?.dispose();
  return { shape, tflops, chosen, maxRelError };
}

/**
 * One line for `bench/src/run.ts`: TFLOP/s of a model's prefill matmuls at `tokens` tokens with the
 * tiles this adapter chooses, FLOP-weighted over one forward pass, and its share of the FP32 peak.
 *
 * @example
 * ```ts
 * console.log(await prefillMatmulLine(rt, m.composition, 4096, 'f32'));
 * ```
 */
export async function prefillMatmulLine(rt: Runtime, composition: HybridComposition, tokens: number, dtype: DType, quick = false): Promise<string> {
  const peak = await measureFp32Peak(rt, quick);
  unit = unitFor(peak);
  let flops = 0;
  let seconds = 0;
  const parts: string[] = [];
  for (const shape of prefillMatmulShapes(composition, tokens)) {
    const row = await benchMatmulShape(rt, shape, dtype, { tiles: ['chosen'], targetMs: quick ? 2 : 10, check: false });
    const t = row.tflops[row.chosen];
    const f = 2 * shape.M * shape.N * shape.K * shape.count;
    flops += f;
    seconds += f / (t * 1e12);
    parts.push(`${shape.name} ${fmt(t)} (${row.chosen})`);
  }
  const all = flops / seconds / 1e12;
  return `  prefill matmuls at ${tokens} tokens: ${fmt(all)} ${unit.name} over the forward pass = ${((100 * all) / peak).toFixed(0)}% of the measured FP32 peak ${fmt(peak)}; ${parts.join(', ')}`;
}

/** llama-350m's prefill matmuls at `tokens` tokens and its lm_head at 512 rows. */
function llamaShapes(tokens: number, quick: boolean): MatmulShape[] {
  if (quick) {
    return [
      { name: 'q/o', M: 130, N: 96, K: 64, count: 2 },
      { name: 'k/v', M: 130, N: 24, K: 64, count: 2 },
      { name: 'gate/up', M: 130, N: 176, K: 64, count: 2 },
      { name: 'down', M: 130, N: 64, K: 176, count: 1 },
      { name: 'lm_head', M: 32, N: 1000, K: 64, count: 0 },
    ];
  }
  return [
    { name: 'q/o', M: tokens, N: 1024, K: 1024, count: 2 },
    { name: 'k/v', M: tokens, N: 256, K: 1024, count: 2 },
    { name: 'gate/up', M: tokens, N: 2816, K: 1024, count: 2 },
    { name: 'down', M: tokens, N: 1024, K: 2816, count: 1 },
    { name: 'lm_head', M: 512, N: 50280, K: 1024, count: 0 },
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, dtype: { type: 'string' }, tokens: { type: 'string' } } });
  const quick = !!values.quick;
  const dtypes = (values.dtype ?? (quick ? 'f32' : 'f32,f16')).split(',') as DType[];
  const tokens = Number(values.tokens ?? 4096);
  const t0 = now();
  const rt = await Runtime.create();
  const peak = await measureFp32Peak(rt, quick);
  unit = unitFor(peak);
  const profile = tiledMatmulProfile(rt.info);
  console.log(`adapter ${rt.adapterName} (tile profile '${profile.name}'); measured FP32 peak ${fmt(peak)} ${unit.name}${quick ? '; quick mode (tiny shapes)' : ''}`);
  const cols = ['basic', ...TILES];
  const pad = (s: string, n: number) => s.padStart(n);
  for (const dtype of dtypes) {
    console.log(`\nW ${dtype}, ${unit.name} (llama-350m prefill at ${tokens} tokens; lm_head at 512 rows)`);
    console.log(`${'shape'.padEnd(8)} ${pad('M', 5)} ${pad('N', 6)} ${pad('K', 5)} |${cols.map((c) => pad(c, 8)).join('')} | ${'chosen'.padEnd(8)} ${pad('% peak', 6)} ${pad('x basic', 7)} ${pad('rel err', 8)}`);
    let flops = 0;
    let basicS = 0;
    let chosenS = 0;
    const bestS: Record<string, number> = {};
    for (const shape of llamaShapes(tokens, quick)) {
      const row = await benchMatmulShape(rt, shape, dtype, { targetMs: quick ? 2 : 25 });
      const c = row.tflops[row.chosen];
      console.log(
        `${shape.name.padEnd(8)} ${pad(String(shape.M), 5)} ${pad(String(shape.N), 6)} ${pad(String(shape.K), 5)} |${cols.map((k) => pad(fmt(row.tflops[k]), 8)).join('')} | ${row.chosen.padEnd(8)} ${pad(((100 * c) / peak).toFixed(0) + '%', 6)} ${pad((c / row.tflops.basic).toFixed(2) + 'x', 7)} ${pad(row.maxRelError.toExponential(1), 8)}`,
      );
      const f = 2 * shape.M * shape.N * shape.K * shape.count;
      flops += f;
      basicS += f / (row.tflops.basic * 1e12);
      chosenS += f / (c * 1e12);
      for (const k of TILES) bestS[k] = (bestS[k] ?? 0) + f / (row.tflops[k] * 1e12);
    }
    const chosen = flops / chosenS / 1e12;
    console.log(
      `one llama-350m layer (q, k, v, o, gate, up, down): basic ${fmt(flops / basicS / 1e12)}, chosen tiles ${fmt(chosen)} ${unit.name} = ${((100 * chosen) / peak).toFixed(0)}% of the measured FP32 peak (${((flops / chosenS / 1e12) / (flops / basicS / 1e12)).toFixed(2)}x); one tile for all: ${TILES.map((k) => `${k} ${fmt(flops / bestS[k] / 1e12)}`).join(', ')}`,
    );
  }
  console.log(`\n${((now() - t0) / 1000).toFixed(1)} s`);
  rt.destroy();
}

// Runs as its own entry (the bundle keeps this file's name, or tsx runs it); run.ts imports the functions only.
// A bundle's import.meta.url is the bundle's, so the entry is recognised by the script's name.
if (/(^|\/)matmul\.(m?js|ts)$/.test(process.argv[1] ?? '')) {
  await main();
  process.exit(0);
}
