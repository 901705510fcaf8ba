// Probe: does Dawn (webgpu npm) expose shader-f16 and subgroup matrices (tensor cores) on this adapter, and how
// fast is an f16 subgroup-matrix matmul (one pass, and the three-pass hi/lo split that keeps f32 accuracy)?
// usage: node coop-matrix.mjs [dawn flags...]
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const only = process.env.VARIANT === undefined ? null : Number(process.env.VARIANT);
const flags = process.argv.slice(2);
const gpu = create(flags);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
const info = adapter.info || {};
const feats = [...adapter.features].sort();
const cfgs = info.subgroupMatrixConfigs ? [...info.subgroupMatrixConfigs].map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K })) : null;
console.log(JSON.stringify({ flags, adapter: `${info.vendor} ${info.architecture} ${info.description}`, features: feats, subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize, subgroupMatrixConfigs: cfgs }));
const SM = 'chromium-experimental-subgroup-matrix';
if (!feats.includes(SM) || !feats.includes('shader-f16')) { console.log(JSON.stringify({ skip: 'no subgroup matrix or no shader-f16' })); process.exit(0); }
const lim = adapter.limits;
const device = await adapter.requestDevice({ requiredFeatures: ['shader-f16', 'subgroups', SM], requiredLimits: { maxBufferSize: lim.maxBufferSize, maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize, maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize } });
device.addEventListener?.('uncapturederror', (e) => console.log(JSON.stringify({ uncaptured: String(e.error?.message ?? e) })));
const q = device.queue;
const hasCfg = (m, n, k) => cfgs.some((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === m && c.N === n && c.K === k);
// Y (M, N) = X (M, K) . W (N, K)^T, f32 in memory; f16 (hi, lo) tiles in workgroup memory.
function kernel({ BM, BN, SGM, SGN, split, T }) {
  const BK = 32, nsg = SGM * SGN, threads = nsg * 32;
  const TM = BM / SGM / T, TN = BN / SGN / T; // result tiles per subgroup
  const accs = [], body = [], stores = [];
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) accs.push(`var acc${i}_${j} = subgroup_matrix_result<f32, ${T}, ${T}>();`);
  for (let i = 0; i < TM; i++) body.push(`let a${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${T}, ${T}>, row_major>(&xh, (sm + ${i * T}u) * BK + kk, BK);` + (split > 1 ? `\n      let al${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${T}, ${T}>, row_major>(&xl, (sm + ${i * T}u) * BK + kk, BK);` : ''));
  for (let j = 0; j < TN; j++) body.push(`let b${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${T}, ${T}>, col_major>(&wh, (sn + ${j * T}u) * BK + kk, BK);` + (split > 1 ? `\n      let bl${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${T}, ${T}>, col_major>(&wl, (sn + ${j * T}u) * BK + kk, BK);` : ''));
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) {
    if (split > 1) body.push(`acc${i}_${j} = subgroupMatrixMultiplyAccumulate(al${i}, b${j}, acc${i}_${j});`, `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, bl${j}, acc${i}_${j});`);
    body.push(`acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc${i}_${j});`);
    stores.push(`subgroupMatrixStore<row_major>(&Y, (m0 + sm + ${i * T}u) * p.N + n0 + sn + ${j * T}u, acc${i}_${j}, p.N);`);
  }
  const xl = split > 1;
  const loads = (src, rows, base, hi, lo) => `for (var i = 0u; i < ${(rows * BK) / 4 / threads}u; i++) {
      let idx = li + i * ${threads}u; let r = idx / 8u; let c = (idx % 8u) * 4u;
      let v = ${src}[((${base} + r) * p.K + k0 + c) / 4u];
      let h = vec4<f16>(v);
      ${hi}[r * BK + c] = h.x; ${hi}[r * BK + c + 1u] = h.y; ${hi}[r * BK + c + 2u] = h.z; ${hi}[r * BK + c + 3u] = h.w;
      ${xl ? `let l = vec4<f16>(v - vec4<f32>(h));
      ${lo}[r * BK + c] = l.x; ${lo}[r * BK + c + 1u] = l.y; ${lo}[r * BK + c + 2u] = l.z; ${lo}[r * BK + c + 3u] = l.w;` : ''}
    }`;
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
struct P { M: u32, N: u32, K: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> W: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
const BK = ${BK}u;
var<workgroup> xh: array<f16, ${BM * BK}>;
var<workgroup> wh: array<f16, ${BN * BK}>;
${xl ? `var<workgroup> xl: array<f16, ${BM * BK}>;\nvar<workgroup> wl: array<f16, ${BN * BK}>;` : ''}
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let m0 = wg.x * ${BM}u; let n0 = wg.y * ${BN}u;
  let sm = (sg / ${SGN}u) * ${BM / SGM}u; let sn = (sg % ${SGN}u) * ${BN / SGN}u;
  ${accs.join('\n  ')}
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    ${loads('X', BM, 'm0', 'xh', 'xl')}
    ${loads('W', BN, 'n0', 'wh', 'wl')}
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk += ${T}u) {
      ${body.join('\n      ')}
    }
    workgroupBarrier();
  }
  ${stores.join('\n  ')}
}`;
}
function rnd(n, seed) { const a = new Float32Array(n); let s = seed >>> 0; for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = (s / 2 ** 32 - 0.5) * 2; } return a; }
function buf(data, usage) { const b = device.createBuffer({ size: data.byteLength, usage: usage | GPUBufferUsage.COPY_DST }); q.writeBuffer(b, 0, data); return b; }
const pipes = new Map();
async function pipeline(cfg) {
  const key = JSON.stringify(cfg);
  if (!pipes.has(key)) {
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: kernel(cfg) });
    const ci = await module.getCompilationInfo();
    const msgs = ci.messages.filter((m) => m.type === 'error').map((m) => m.message);
    let pipe = null;
    console.log(JSON.stringify({ compiling: cfg }));
    try { pipe = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } }); } catch (e) { msgs.push(String(e.message ?? e)); }
    const err = await device.popErrorScope();
    if (err) msgs.push(err.message);
    if (msgs.length) console.log(JSON.stringify({ cfg, compileErrors: msgs.slice(0, 3).map((s) => s.slice(0, 600)) }));
    pipes.set(key, msgs.length ? null : pipe);
  }
  return pipes.get(key);
}
async function run(cfg, M, N, K, x, w, reps) {
  const pipe = await pipeline(cfg); if (!pipe) return null;
  const X = buf(x, GPUBufferUsage.STORAGE), Wb = buf(w, GPUBufferUsage.STORAGE);
  const Y = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const U = buf(new Uint32Array([M, N, K, 0]), GPUBufferUsage.UNIFORM);
  const bg = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [X, Wb, Y, U].map((b, i) => ({ binding: i, resource: { buffer: b } })) });
  const go = (n) => { const e = device.createCommandEncoder(); const pass = e.beginComputePass(); pass.setPipeline(pipe); pass.setBindGroup(0, bg); for (let r = 0; r < n; r++) pass.dispatchWorkgroups(M / cfg.BM, N / cfg.BN); pass.end(); q.submit([e.finish()]); };
  go(2); await q.onSubmittedWorkDone();
  let ms = null;
  if (reps) { const t0 = performance.now(); go(reps); await q.onSubmittedWorkDone(); ms = (performance.now() - t0) / reps; }
  let y = null;
  if (!reps) { const rb = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }); const e = device.createCommandEncoder(); e.copyBufferToBuffer(Y, 0, rb, 0, M * N * 4); q.submit([e.finish()]); await rb.mapAsync(GPUMapMode.READ); y = new Float32Array(rb.getMappedRange().slice(0)); rb.unmap(); }
  for (const b of [X, Wb, Y, U]) b.destroy();
  return { ms, y };
}
const T = hasCfg(16, 16, 16) ? 16 : hasCfg(8, 8, 8) ? 8 : 0;
if (!T) { console.log(JSON.stringify({ skip: 'no square f16->f32 config' })); process.exit(0); }
const allVariants = [
  { BM: 64, BN: 64, SGM: 2, SGN: 2, T }, { BM: 128, BN: 128, SGM: 4, SGN: 2, T }, { BM: 128, BN: 64, SGM: 4, SGN: 1, T },
];
const variants = only === null ? allVariants : [allVariants[only]];
{ // accuracy on 256 x 256 x 320, against f64
  const M = 256, N = 256, K = 320, x = rnd(M * K, 1), w = rnd(N * K, 2);
  const ref = new Float64Array(M * N), f32 = new Float32Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) { let s = 0, t = 0; for (let k = 0; k < K; k++) { s += x[m * K + k] * w[n * K + k]; t = Math.fround(t + Math.fround(x[m * K + k] * w[n * K + k])); } ref[m * N + n] = s; f32[m * N + n] = t; }
  const err = (y) => { let e = 0, mx = 0; for (let i = 0; i < y.length; i++) { e = Math.max(e, Math.abs(y[i] - ref[i])); mx = Math.max(mx, Math.abs(ref[i])); } return { maxAbsErr: +e.toExponential(2), maxAbs: +mx.toFixed(2), nan: y.some((v) => !Number.isFinite(v)) }; };
  console.log(JSON.stringify({ what: 'accuracy', M, N, K, cpuF32: err(f32) }));
  for (const v of variants) for (const split of [1, 3]) { const r = await run({ ...v, split }, M, N, K, x, w, 0); if (r) console.log(JSON.stringify({ what: 'accuracy', ...v, split, ...err(r.y) })); }
}
for (const [M, N, K] of [[512, 1024, 1024], [512, 2816, 1024], [512, 5632, 1024], [4096, 1024, 1024], [4096, 5632, 1024], [4096, 1024, 2816]]) {
  const x = rnd(M * K, 3), w = rnd(N * K, 4);
  for (const v of variants) for (const split of [1, 3]) {
    if (M % v.BM || N % v.BN) continue;
    const r = await run({ ...v, split }, M, N, K, x, w, M >= 4096 ? 20 : 50);
    if (r) console.log(JSON.stringify({ what: 'speed', M, N, K, ...v, split, us: +(r.ms * 1000).toFixed(1), TFLOPs: +((2 * M * N * K) / r.ms / 1e9).toFixed(1) }));
  }
}
process.exit(0);
