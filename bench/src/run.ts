/**
 * `pnpm bench`: decode and prefill throughput, per-token decode time against
 * context length, peak GPU memory and state/KV bytes for the benchmark models,
 * on whatever WebGPU adapter core finds. Prints a table and writes JSON (and,
 * with --chart, the decode-vs-context SVG).
 *
 *   pnpm bench [--quick] [--models mamba2-130m,llama-350m] [--dtype f32|f16|bf16|q8] [--out file.json] [--chart file.svg]
 *   pnpm bench --prefill-only [--prefill 512,1024]   (prefill tok/s and the matmul line, no decode)
 *   pnpm bench --moonshot [--moonshot-length 1048576] [--chunk 8192]   (one long prompt in passes, bench/src/moonshot.ts)
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Runtime, type Tensor } from '@statespace/core';
import { Session, composeModel } from '@statespace/hybrid';
import { lineChartSvg } from './chart.js';
import { prefillMatmulLine } from './matmul.js';
import { BENCH_MODELS, type BenchModel, CHART_MODELS } from './models.js';
import { attentionFlops } from './attention-flops.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    models: { type: 'string' },
    dtype: { type: 'string' },
    out: { type: 'string' },
    chart: { type: 'string' },
    'chart-only': { type: 'boolean' },
    prefill: { type: 'string' },
    'prefill-only': { type: 'boolean' },
    contexts: { type: 'string' },
    moonshot: { type: 'boolean' },
    'moonshot-length': { type: 'string' },
    chunk: { type: 'string' },
  },
});
const quick = !!values.quick;
const dtype = (values.dtype ?? 'f32') as 'f32' | 'f16' | 'bf16' | 'q8';
if (!['f32', 'f16', 'bf16', 'q8'].includes(dtype)) throw new Error(`--dtype must be f32, f16, bf16 or q8, got ${values.dtype}`);
const prefillLengths = (values.prefill ?? (quick ? '64,256' : '512,4096,32768')).split(',').map(Number);
const prefillOnly = !!values['prefill-only'];
const contexts = prefillOnly ? [] : (values.contexts ?? (quick ? '64,256' : '1024,8192,32768')).split(',').map(Number);

const rt = await Runtime.create();
const now = () => performance.now();
if (values.moonshot) {
  // A line of its own: one long prompt in passes (bench/src/moonshot.ts).
  const { moonshot } = await import('./moonshot.js');
  const r = await moonshot(rt, { length: Number(values['moonshot-length'] ?? 1048576), chunk: Number(values.chunk ?? 8192) });
  if (values.out) writeFileSync(values.out, JSON.stringify({ adapter: rt.adapterName, moonshot: r, date: new Date().toISOString() }, null, 1));
  rt.destroy();
  process.exit(0);
}

function randomIds(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => ((s = (s * 1664525 + 1013904223) >>> 0) % vocab));
}

/**
 * The decode floor's bandwidth: a vec4 streaming-read kernel (each thread sums a strided
 * slice, one partial per thread written), timed over 1 GiB. A copy moves each byte twice
 * and runs at well under the card's read rate through Dawn, so it is not the ceiling.
 */
async function measureReadBandwidth(): Promise<number> {
  const n = quick ? 4 << 20 : 256 << 20; // floats
  const src = rt.zeros([n]);
  const workgroups = 1056;
  const out = rt.empty([workgroups * 256]);
  const kernel = {
    name: 'bench_stream_read',
    cacheKey: '',
    wgsl: `@group(0) @binding(0) var<uniform> u: vec4<u32>;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let n = u.x; let stride = nw.x * 256u; var s = vec4<f32>(0.0); var i = g.x;
  loop { if (i >= n) { break; } s += a[i]; i += stride; }
  o[g.x] = s.x + s.y + s.z + s.w;
}`,
    workgroupSize: [256, 1, 1] as const,
    dispatch: [workgroups, 1, 1] as const,
    bindings: [{ name: 'a', type: 'f32', access: 'read' }, { name: 'o', type: 'f32', access: 'read_write' }] as const,
    uniformLayout: { n: 'u32' } as const,
    uniforms: { n: n / 4 },
  };
  rt.run(kernel, [src, out]);
  await rt.sync();
  const reps = quick ? 3 : 20;
  const t0 = now();
  for (let i = 0; i < reps; i++) rt.run(kernel, [src, out]);
  await rt.sync();
  const s = (now() - t0) / 1000;
  src.dispose();
  out.dispose();
  return (4 * n * reps) / s;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

interface Result {
  model: string;
  dtype: string;
  weightBytes: number;
  decodeTokS: number;
  decodeTokSBatch8: number;
  /** Batch 1 with temperature 0.7 and top-p 0.9 (the CLI's and demo's default), tokens drawn on the GPU. */
  decodeTokSSampled: number;
  prefillTokS: Record<number, number>;
  prefillPeakBytes: Record<number, number>;
  /** Wall ms of each measured prefill run (the figure is their median). */
  prefillRunsMs: Record<number, number[]>;
  /** GPU time inside the compute passes of one more prefill run (ms), where the adapter has timestamps. */
  prefillGpuMs: Record<number, number>;
  decodeMsAtContext: Record<number, number>;
  stateBytesAtContext: Record<number, { ssm: number; conv: number; kv: number }>;
  floorTokS: number;
  /** Every decode run's tok/s (batch 1), of which decodeTokS is the median. */
  decodeRuns: number[];
  /** Host ms spent recording a token (batch 1), and the wall ms per token. */
  hostMsPerToken: number;
  wallMsPerToken: number;
  /** GPU ms per token inside compute passes (timestamp queries; absent without the feature). */
  gpuMsPerToken?: number;
  /** Dispatches and copies one replayed decode step records. */
  dispatchesPerToken: number;
}

const GREEDY = { greedy: true } as const;
const SAMPLED = { temperature: 0.7, topP: 0.9, seed: 1 } as const;

async function decodeRate(session: Session, steps: number, sampling: { greedy?: boolean; temperature?: number; topP?: number; seed?: number } = GREEDY): Promise<{ tokS: number; hostMs: number }> {
  let t0 = 0;
  let n = 0;
  let host0 = 0;
  for await (const _ of session.generateBatch(null, { ...sampling, maxNewTokens: steps + 2, ignoreEos: true })) {
    if (n === 1) {
      t0 = now(); // the first token came from the prefill, the second paid for the captures
      host0 = session.decodeStats()?.hostMs ?? 0;
    }
    n++;
  }
  const wall = now() - t0;
  const host = (session.decodeStats()?.hostMs ?? 0) - host0;
  return { tokS: ((n - 2) * 1000) / wall, hostMs: host / (n - 2) };
}

async function benchModel(m: BenchModel, bandwidth: number): Promise<Result> {
  const model = composeModel(rt, m.composition, { seed: 1, dtype });
  await rt.sync();
  const V = m.composition.vocabSize;
  const r: Result = { model: m.name, dtype, weightBytes: model.weightBytes(), decodeTokS: 0, decodeTokSBatch8: 0, decodeTokSSampled: 0, prefillTokS: {}, prefillPeakBytes: {}, prefillRunsMs: {}, prefillGpuMs: {}, decodeMsAtContext: {}, stateBytesAtContext: {}, floorTokS: 0, decodeRuns: [], hostMsPerToken: 0, wallMsPerToken: 0, dispatchesPerToken: 0 };
  r.floorTokS = bandwidth / r.weightBytes; // decode reads each weight once per token
  const steps = quick ? 16 : 256;
  const runs = quick ? 2 : 5;
  // decode, batch 1 (median of several runs) and 8
  if (!prefillOnly) {
    const s = new Session(model);
    await s.prefill(randomIds(16, V, 1));
    const host: number[] = [];
    // an untimed run first: the plan's capture and the pipelines' first use stay out of the medians
    await decodeRate(s, quick ? 4 : 64);
    for (let i = 0; i < runs; i++) {
      const d = await decodeRate(s, steps);
      r.decodeRuns.push(d.tokS);
      host.push(d.hostMs);
    }
    r.decodeTokS = median(r.decodeRuns);
    r.hostMsPerToken = median(host);
    r.wallMsPerToken = 1000 / r.decodeTokS;
    r.dispatchesPerToken = s.decodeStats()?.planSize ?? 0;
    if (rt.info.features.timestampQuery) {
      // GPU time inside the compute passes of one more run (timestamps at the passes' ends)
      rt.startPassTiming();
      await decodeRate(s, steps);
      r.gpuMsPerToken = (await rt.stopPassTiming()).ms / (steps + 2);
    }
    s.dispose();
    // sampled decode from the same 16-token prompt in a new session, so that it runs at the greedy runs' contexts
    // (continuing the session would sample at 1,650-3,000 tokens, where attention layers read twice the KV)
    const sampled: number[] = [];
    const ss = new Session(model);
    await ss.prefill(randomIds(16, V, 1));
    await decodeRate(ss, quick ? 4 : 64, SAMPLED);
    for (let i = 0; i < runs; i++) sampled.push((await decodeRate(ss, steps, SAMPLED)).tokS);
    r.decodeTokSSampled = median(sampled);
    ss.dispose();
    const s8 = new Session(model, { batch: 8 });
    await s8.prefill(Array.from({ length: 8 }, (_, b) => randomIds(16, V, 10 + b)));
    const b8: number[] = [];
    await decodeRate(s8, quick ? 4 : 32);
    for (let i = 0; i < runs; i++) b8.push(8 * (await decodeRate(s8, quick ? 8 : 128)).tokS);
    r.decodeTokSBatch8 = median(b8);
    s8.dispose();
  }
  // prefill: a warm-up run at the measured length (kernels choose tiles by shape, so a shorter one
  // would leave the measured runs compiling pipelines), then the median of several runs. The GPU's
  // clocks fall when it idles and take ~200 ms of load to climb back (seen on the H200: a 512-token
  // prefill at 48 ms right after a 2 s pause, 12 ms once busy), so one run after a pause measures the
  // power state, not the kernels; transformers is measured the same way (bench/torch_baseline.py).
  for (const L of prefillLengths) {
    // one warm-up run (it compiles), then more for at least 300 ms of load: after the model's upload (or
    // --prefill-only's start) the GPU idles, and one 10 ms prefill at 512 tokens does not bring its clocks up
    // (NOTES §7e)
    let warmStart = -1;
    do {
      const warm = new Session(model);
      await warm.prefill(randomIds(L, V, 2));
      warm.dispose();
      if (warmStart < 0) warmStart = now();
    } while (now() - warmStart < 300);
    const times: number[] = [];
    const reps = L >= 32768 ? 3 : 5;
    for (let i = 0; i < reps; i++) {
      rt.resetPeak();
      const before = rt.memory().liveBytes;
      const s = new Session(model);
      const t0 = now();
      await s.prefill(randomIds(L, V, 3 + i));
      times.push(now() - t0);
      if (i === 0) r.prefillPeakBytes[L] = rt.memory().peakLiveBytes - before;
      s.dispose();
    }
    r.prefillTokS[L] = (L * 1000) / median(times);
    r.prefillRunsMs[L] = times;
    if (rt.info.features.timestampQuery) {
      // where the wall time goes: a prefill whose host outruns the GPU has GPU time well under its wall time
      const s = new Session(model);
      rt.startPassTiming();
      await s.prefill(randomIds(L, V, 9));
      r.prefillGpuMs[L] = (await rt.stopPassTiming()).ms;
      s.dispose();
    }
  }
  // decode time per token at context C
  for (const C of contexts) {
    const s = new Session(model);
    await s.prefill(randomIds(C, V, 4));
    const rates: number[] = [];
    for (let i = 0; i < (quick ? 1 : 5); i++) rates.push((await decodeRate(s, quick ? 8 : 64)).tokS);
    r.decodeMsAtContext[C] = 1000 / median(rates);
    r.stateBytesAtContext[C] = (({ ssm, conv, kv }) => ({ ssm, conv, kv }))(s.memory());
    s.dispose();
  }
  model.dispose();
  rt.trimPool();
  return r;
}

const fmt = (x: number, d = 1) => (x >= 100 ? x.toFixed(0) : x.toFixed(d));
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

const bandwidth = await measureReadBandwidth();
console.log(`adapter ${rt.adapterName}; streaming-read bandwidth ${(bandwidth / 1e9).toFixed(0)} GB/s; weights ${dtype}${quick ? '; quick mode' : ''}`);
const wanted = values.models?.split(',');
const results: Result[] = [];
if (!values['chart-only']) {
  for (const m of BENCH_MODELS.filter((x) => !wanted || wanted.includes(x.name))) {
    const r = await benchModel(m, bandwidth);
    results.push(r);
    const prefillLine = `  prefill ${prefillLengths.map((L) => `${L}: ${fmt(r.prefillTokS[L])} tok/s${attentionFlops(m.composition, L) ? ` (attention ≥ ${((attentionFlops(m.composition, L) * r.prefillTokS[L]) / L / 1e12).toFixed(1)} TFLOP/s)` : ''}, ${r.prefillGpuMs[L] !== undefined ? `GPU ${r.prefillGpuMs[L].toFixed(1)} of ${median(r.prefillRunsMs[L]).toFixed(1)} ms, ` : ''}peak ${mib(r.prefillPeakBytes[L])}`).join('; ')}`;
    if (prefillOnly) console.log(`${r.model}:\n${prefillLine}`);
    else console.log(
      [
        `${r.model}: decode ${fmt(r.decodeTokS)} tok/s (runs ${r.decodeRuns.map((x) => fmt(x)).join(', ')}; batch 8: ${fmt(r.decodeTokSBatch8)} tok/s), floor ${fmt(r.floorTokS)} tok/s -> ${((100 * r.decodeTokS) / r.floorTokS).toFixed(0)}% of the weight-bytes floor`,
        `  sampled (temperature 0.7, top-p 0.9, on the GPU): ${fmt(r.decodeTokSSampled)} tok/s`,
        `  per token: wall ${r.wallMsPerToken.toFixed(3)} ms, host recording ${r.hostMsPerToken.toFixed(3)} ms, GPU in passes ${r.gpuMsPerToken?.toFixed(3) ?? '-'} ms, ${r.dispatchesPerToken} dispatches+copies per replay`,
        prefillLine,
        `  decode ms/token at context ${contexts.map((C) => `${C}: ${r.decodeMsAtContext[C].toFixed(2)} (ssm ${mib(r.stateBytesAtContext[C].ssm)}, kv ${mib(r.stateBytesAtContext[C].kv)})`).join('; ')}`,
      ].join('\n'),
    );
    console.log(await prefillMatmulLine(rt, m.composition, Math.min(4096, Math.max(...prefillLengths)), dtype, quick));
  }
}
let chart: { name: string; points: [number, number][] }[] | undefined;
if (values.chart) {
  chart = [];
  for (const m of CHART_MODELS) {
    const model = composeModel(rt, m.composition, { seed: 1, dtype });
    const points: [number, number][] = [];
    for (const C of contexts) {
      const s = new Session(model);
      await s.prefill(randomIds(C, m.composition.vocabSize, 5));
      points.push([C, 1000 / (await decodeRate(s, quick ? 8 : 64)).tokS]);
      s.dispose();
    }
    model.dispose();
    rt.trimPool();
    chart.push({ name: m.name, points });
    console.log(`chart ${m.name}: ${points.map(([c, ms]) => `${c}: ${ms.toFixed(2)} ms`).join(', ')}`);
  }
  writeFileSync(values.chart, lineChartSvg('Decode time per token vs context', 'context length (tokens)', 'ms per token', chart, `${rt.adapterName}, 8 layers of width 768, random weights (${dtype})`));
}
const out = { adapter: rt.adapterName, bandwidthBytesPerS: bandwidth, dtype, quick, prefillLengths, contexts, results, chart, date: new Date().toISOString() };
if (values.out) writeFileSync(values.out, JSON.stringify(out, null, 1));
else console.log(JSON.stringify(out));
rt.destroy();
process.exit(0);
