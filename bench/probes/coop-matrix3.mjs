// Probe 3: a staged f16 subgroup-matrix matmul with f32 accuracy (hi/lo split, 3 products), next K-tile prefetched
// into registers, double-buffered workgroup tiles (one barrier per K-tile), optional row padding, optional split-K.
// Y[s] (M, N) = X (M, K/S slice s) . W (N, K/S slice s)^T.   usage: VARIANT=i node coop-matrix3.mjs [dawn flags...]
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const T = 16;
const variants = [[2, 2, 2, 2, 32, 8, 1], [2, 2, 2, 2, 32, 0, 1], [1, 2, 2, 2, 32, 8, 1], [2, 2, 2, 2, 32, 8, 4], [4, 2, 2, 2, 32, 0, 1], [2, 2, 2, 4, 32, 0, 1], [1, 2, 2, 2, 32, 8, 2], [1, 2, 2, 2, 32, 8, 4]]
  .map(([SGM, SGN, TM, TN, BK, PAD, KS]) => ({ SGM, SGN, TM, TN, BK, PAD, KS }));
const only = process.env.VARIANT === undefined ? null : Number(process.env.VARIANT);
if (only === null) { console.log(variants.length); process.exit(0); }
const V = variants[only];
function kernel({ SGM, SGN, TM, TN, BK, PAD, KS }) {
  const BM = SGM * TM * T, BN = SGN * TN * T, threads = SGM * SGN * 32, V4 = BK / 4, LD = BK + PAD;
  const NX = (BM * V4) / threads, NW = (BN * V4) / threads, HX = BM * LD, HW = BN * LD;
  const L = [`enable f16;\nenable chromium_experimental_subgroup_matrix;\ndiagnostic(off, chromium.subgroup_matrix_uniformity);\nstruct P { M: u32, N: u32, K: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> X: array<vec4<f32>>;\n@group(0) @binding(1) var<storage, read> W: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;\n@group(0) @binding(3) var<uniform> p: P;
var<workgroup> xh: array<f16, ${2 * HX}>;\nvar<workgroup> xl: array<f16, ${2 * HX}>;\nvar<workgroup> wh: array<f16, ${2 * HW}>;\nvar<workgroup> wl: array<f16, ${2 * HW}>;
fn hi4(v: vec4<f32>) -> vec4<f32> { return bitcast<vec4<f32>>(bitcast<vec4<u32>>(v) & vec4<u32>(0xffffe000u)); }
@compute @workgroup_size(${threads}) fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let bm = wg.x * ${BM}u; let bn = wg.y * ${BN}u; let sm = (sg / ${SGN}u) * ${TM * T}u; let sn = (sg % ${SGN}u) * ${TN * T}u;
  let K4 = p.K / 4u; let kper = p.K / ${KS}u; let kbeg = wg.z * kper; let nt = kper / ${BK}u;`];
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) L.push(`  var c${i}${j} = subgroup_matrix_result<f32, ${T}, ${T}>();`);
  const rc = (i, thr) => `(li + ${i * thr}u)`;
  const load = (k) => { const o = []; for (let i = 0; i < NX; i++) o.push(`px${i} = X[(bm + ${rc(i, threads)} / ${V4}u) * K4 + (${k}) / 4u + ${rc(i, threads)} % ${V4}u];`); for (let i = 0; i < NW; i++) o.push(`pw${i} = W[(bn + ${rc(i, threads)} / ${V4}u) * K4 + (${k}) / 4u + ${rc(i, threads)} % ${V4}u];`); return o; };
  const store = (buf) => { const o = []; for (const [n, arr, hoff, cnt] of [['px', 'x', HX, NX], ['pw', 'w', HW, NW]]) for (let i = 0; i < cnt; i++) {
    o.push(`{ let e = ${rc(i, threads)}; let o = ${buf} * ${hoff}u + (e / ${V4}u) * ${LD}u + (e % ${V4}u) * 4u; let v = ${n}${i}; let h = hi4(v); let a = vec4<f16>(h); let b = vec4<f16>(v - h);`);
    o.push(`  ${arr}h[o] = a.x; ${arr}h[o + 1u] = a.y; ${arr}h[o + 2u] = a.z; ${arr}h[o + 3u] = a.w; ${arr}l[o] = b.x; ${arr}l[o + 1u] = b.y; ${arr}l[o + 2u] = b.z; ${arr}l[o + 3u] = b.w; }`); } return o; };
  for (let i = 0; i < NX; i++) L.push(`  var px${i}: vec4<f32>;`); for (let i = 0; i < NW; i++) L.push(`  var pw${i}: vec4<f32>;`);
  L.push(...load('kbeg').map((s) => '  ' + s), ...store('0u').map((s) => '  ' + s), '  workgroupBarrier();');
  L.push('  for (var t = 0u; t < nt; t++) {', '    let cur = t & 1u; let nxt = cur ^ 1u; let more = t + 1u < nt;');
  L.push('    if (more) {', ...load(`kbeg + (t + 1u) * ${BK}u`).map((s) => '      ' + s), '    }');
  for (let kk = 0; kk < BK; kk += T) {
    for (let i = 0; i < TM; i++) for (const [n, a] of [['a', 'xh'], ['al', 'xl']]) L.push(`    let ${n}${i}_${kk} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${T}, ${T}>, row_major>(&${a}, cur * ${HX}u + (sm + ${i * T}u) * ${LD}u + ${kk}u, ${LD}u);`);
    for (let j = 0; j < TN; j++) for (const [n, a] of [['b', 'wh'], ['bl', 'wl']]) L.push(`    let ${n}${j}_${kk} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${T}, ${T}>, col_major>(&${a}, cur * ${HW}u + (sn + ${j * T}u) * ${LD}u + ${kk}u, ${LD}u);`);
    for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) L.push(`    c${i}${j} = subgroupMatrixMultiplyAccumulate(al${i}_${kk}, b${j}_${kk}, c${i}${j});`, `    c${i}${j} = subgroupMatrixMultiplyAccumulate(a${i}_${kk}, bl${j}_${kk}, c${i}${j});`, `    c${i}${j} = subgroupMatrixMultiplyAccumulate(a${i}_${kk}, b${j}_${kk}, c${i}${j});`);
  }
  L.push('    if (more) {', ...store('nxt').map((s) => '      ' + s), '    }', '    workgroupBarrier();', '  }');
  L.push('  let yo = wg.z * p.M * p.N;');
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) L.push(`  subgroupMatrixStore<row_major>(&Y, yo + (bm + sm + ${i * T}u) * p.N + bn + sn + ${j * T}u, c${i}${j}, p.N);`);
  L.push('}');
  return { code: L.join('\n'), BM, BN, bytes: 2 * 2 * 2 * (HX + HW) };
}
const K0 = kernel(V);
if (process.env.DUMP) { console.log(K0.code, '\n//', K0.bytes, 'bytes'); process.exit(0); }
const gpu = create(process.argv.slice(2));
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
const lim = adapter.limits;
const device = await adapter.requestDevice({ requiredFeatures: ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'], requiredLimits: { maxBufferSize: lim.maxBufferSize, maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize, maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize } });
device.lost.then((i) => console.log(JSON.stringify({ lost: i.reason, message: i.message })));
device.onuncapturederror = (e) => console.log(JSON.stringify({ uncaptured: String(e.error?.message ?? e).slice(0, 400) }));
const q = device.queue;
device.pushErrorScope('validation');
const pipe = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: K0.code }), entryPoint: 'main' } });
const cerr = await device.popErrorScope();
if (cerr) { console.log(JSON.stringify({ ...V, compileError: cerr.message.slice(0, 1500) })); process.exit(0); }
function rnd(n, seed) { const a = new Float32Array(n); let s = seed >>> 0; for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = (s / 2 ** 32 - 0.5) * 2; } return a; }
const S = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const bX = device.createBuffer({ size: 4096 * 2816 * 4, usage: S }), bW = device.createBuffer({ size: 5632 * 1024 * 4, usage: S }), bY = device.createBuffer({ size: 4096 * 5632 * 4 * V.KS, usage: S });
const uni = device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const bg = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [bX, bW, bY, uni].map((b, i) => ({ binding: i, resource: { buffer: b } })) });
const rec = (M, N, reps) => { const e = device.createCommandEncoder(); const pass = e.beginComputePass(); pass.setPipeline(pipe); pass.setBindGroup(0, bg); for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(M / K0.BM, N / K0.BN, V.KS); pass.end(); q.submit([e.finish()]); };
{
  const M = 256, N = 256, K = 640, x = rnd(M * K, 1), w = rnd(N * K, 2);
  q.writeBuffer(bX, 0, x); q.writeBuffer(bW, 0, w); q.writeBuffer(uni, 0, new Uint32Array([M, N, K, 0]));
  rec(M, N, 1);
  const n = M * N * V.KS, rb = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const e = device.createCommandEncoder(); e.copyBufferToBuffer(bY, 0, rb, 0, n * 4); q.submit([e.finish()]); await rb.mapAsync(GPUMapMode.READ);
  const y = new Float32Array(rb.getMappedRange().slice(0)); rb.unmap();
  let err = 0;
  for (let m = 0; m < M; m++) for (let c = 0; c < N; c++) { let s = 0; for (let k = 0; k < K; k++) s += x[m * K + k] * w[c * K + k]; let g = 0; for (let z = 0; z < V.KS; z++) g += y[z * M * N + m * N + c]; err = Math.max(err, Number.isFinite(g) ? Math.abs(g - s) : Infinity); }
  console.log(JSON.stringify({ what: 'accuracy', ...V, M, N, K, maxAbsErr: +err.toExponential(2), bytes: K0.bytes }));
}
for (const [M, N, K] of [[512, 1024, 1024], [512, 5632, 1024], [512, 1024, 2816], [4096, 5632, 1024], [4096, 1024, 2816]]) {
  if (M % K0.BM || N % K0.BN || K % (V.KS * V.BK)) continue;
  q.writeBuffer(bX, 0, rnd(M * K, 3)); q.writeBuffer(bW, 0, rnd(N * K, 4)); q.writeBuffer(uni, 0, new Uint32Array([M, N, K, 0]));
  rec(M, N, 3); await q.onSubmittedWorkDone();
  const reps = M >= 4096 ? 10 : 40, t0 = performance.now(); rec(M, N, reps); await q.onSubmittedWorkDone();
  const ms = (performance.now() - t0) / reps;
  console.log(JSON.stringify({ what: 'speed', M, N, K, ...V, us: +(ms * 1000).toFixed(1), TFLOPs: +((2 * M * N * K) / ms / 1e9).toFixed(1) }));
}
console.log(JSON.stringify({ done: only }));
process.exit(0);
