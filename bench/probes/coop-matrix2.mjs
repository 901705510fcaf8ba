// Probe 2: f16 subgroup-matrix matmul variants on this adapter. Y (M, N) = X (M, K) . W (N, K)^T.
// hi/lo split: v = hi + lo with hi = v's top 11 mantissa bits (exact in f16), lo = f16(v - hi); the product keeps
// xh.wh + xl.wh + xh.wl (split 3) or xh.wh (split 1).
// kinds: "direct" (fragments loaded straight from pre-split f16 buffers), "staged" (f32 tiles split into workgroup memory).
// usage: VARIANT=i node coop-matrix2.mjs [dawn flags...]   (no VARIANT: list the variants)
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const T = 16;
const HDR = `enable f16;\nenable chromium_experimental_subgroup_matrix;\ndiagnostic(off, chromium.subgroup_matrix_uniformity);\nstruct P { M: u32, N: u32, K: u32, pad: u32 }\n`;
const variants = [];
for (const [SGM, SGN, TM, TN] of [[2, 2, 2, 2], [2, 2, 4, 2], [2, 2, 2, 4], [2, 2, 4, 4], [4, 1, 2, 4], [1, 4, 4, 2]]) variants.push({ kind: 'direct', SGM, SGN, TM, TN });
for (const [SGM, SGN, TM, TN, BK] of [[2, 2, 2, 2, 32], [4, 2, 2, 4, 32], [2, 2, 2, 4, 64], [2, 2, 4, 4, 32]]) variants.push({ kind: 'staged', SGM, SGN, TM, TN, BK });
const only = process.env.VARIANT === undefined ? null : Number(process.env.VARIANT);
if (only === null) { console.log(variants.length); process.exit(0); }
const V = variants[only];
if (process.env.DUMP) { console.log((V.kind === 'direct' ? directKernel(V, 3) : stagedKernel(V, 3)).code); process.exit(0); }
const gpu = create(process.argv.slice(2));
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
const SM = 'chromium-experimental-subgroup-matrix';
const lim = adapter.limits;
const device = await adapter.requestDevice({ requiredFeatures: ['shader-f16', 'subgroups', SM], requiredLimits: { maxBufferSize: lim.maxBufferSize, maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize, maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize } });
device.lost.then((i) => console.log(JSON.stringify({ lost: i.reason, message: i.message })));
device.onuncapturederror = (e) => console.log(JSON.stringify({ uncaptured: String(e.error?.message ?? e).slice(0, 400) }));
const q = device.queue;
const SPLIT_WGSL = `enable f16;
@group(0) @binding(0) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> H: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read_write> L: array<vec4<f16>>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * 256u;
  if (i >= arrayLength(&X)) { return; }
  let v = X[i];
  let hi = bitcast<vec4<f32>>(bitcast<vec4<u32>>(v) & vec4<u32>(0xffffe000u));
  H[i] = vec4<f16>(hi); L[i] = vec4<f16>(v - hi);
}`;
function directKernel({ SGM, SGN, TM, TN }, split) {
  const BM = SGM * TM * T, BN = SGN * TN * T, threads = SGM * SGN * 32;
  const L = [];
  L.push(HDR + `@group(0) @binding(0) var<storage, read> XH: array<f16>;\n@group(0) @binding(1) var<storage, read> XL: array<f16>;\n@group(0) @binding(2) var<storage, read> WH: array<f16>;\n@group(0) @binding(3) var<storage, read> WL: array<f16>;\n@group(0) @binding(4) var<storage, read_write> Y: array<f32>;\n@group(0) @binding(5) var<uniform> p: P;`);
  L.push(`@compute @workgroup_size(${threads}) fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32) {`);
  L.push(`  let m0 = wg.x * ${BM}u + (sg / ${SGN}u) * ${TM * T}u; let n0 = wg.y * ${BN}u + (sg % ${SGN}u) * ${TN * T}u; let K = p.K;`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) L.push(`  var c${i}${j} = subgroup_matrix_result<f32, ${T}, ${T}>();`);
  L.push(`  for (var k = 0u; k < K; k += ${T}u) {`);
  for (let i = 0; i < TM; i++) { L.push(`    let a${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${T}, ${T}>, row_major>(&XH, (m0 + ${i * T}u) * K + k, K);`); if (split > 1) L.push(`    let al${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${T}, ${T}>, row_major>(&XL, (m0 + ${i * T}u) * K + k, K);`); }
  for (let j = 0; j < TN; j++) { L.push(`    let b${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${T}, ${T}>, col_major>(&WH, (n0 + ${j * T}u) * K + k, K);`); if (split > 1) L.push(`    let bl${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${T}, ${T}>, col_major>(&WL, (n0 + ${j * T}u) * K + k, K);`); }
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) { if (split > 1) L.push(`    c${i}${j} = subgroupMatrixMultiplyAccumulate(al${i}, b${j}, c${i}${j});`, `    c${i}${j} = subgroupMatrixMultiplyAccumulate(a${i}, bl${j}, c${i}${j});`); L.push(`    c${i}${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i}${j});`); }
  L.push('  }');
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) L.push(`  subgroupMatrixStore<row_major>(&Y, (m0 + ${i * T}u) * p.N + n0 + ${j * T}u, c${i}${j}, p.N);`);
  L.push('}');
  return { code: L.join('\n'), BM, BN };
}
function stagedKernel({ SGM, SGN, TM, TN, BK }, split) {
  const BM = SGM * TM * T, BN = SGN * TN * T, threads = SGM * SGN * 32, V4 = BK / 4;
  const L = [HDR + `@group(0) @binding(0) var<storage, read> X: array<vec4<f32>>;\n@group(0) @binding(1) var<storage, read> W: array<vec4<f32>>;\n@group(0) @binding(2) var<storage, read_write> Y: array<f32>;\n@group(0) @binding(3) var<uniform> p: P;`];
  for (const n of ['xh', 'xl']) if (n === 'xh' || split > 1) L.push(`var<workgroup> ${n}: array<f16, ${BM * BK}>;`);
  for (const n of ['wh', 'wl']) if (n === 'wh' || split > 1) L.push(`var<workgroup> ${n}: array<f16, ${BN * BK}>;`);
  L.push(`fn put(h: ptr<workgroup, array<f16, ${BM * BK}>>, o: u32, v: vec4<f16>) { (*h)[o] = v.x; (*h)[o + 1u] = v.y; (*h)[o + 2u] = v.z; (*h)[o + 3u] = v.w; }`);
  if (BN !== BM) L.push(`fn putw(h: ptr<workgroup, array<f16, ${BN * BK}>>, o: u32, v: vec4<f16>) { (*h)[o] = v.x; (*h)[o + 1u] = v.y; (*h)[o + 2u] = v.z; (*h)[o + 3u] = v.w; }`);
  const pw = BN !== BM ? 'putw' : 'put';
  L.push(`@compute @workgroup_size(${threads}) fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {`);
  L.push(`  let bm = wg.x * ${BM}u; let bn = wg.y * ${BN}u; let sm = (sg / ${SGN}u) * ${TM * T}u; let sn = (sg % ${SGN}u) * ${TN * T}u; let K4 = p.K / 4u;`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) L.push(`  var c${i}${j} = subgroup_matrix_result<f32, ${T}, ${T}>();`);
  L.push(`  for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {`);
  for (const [src, rows, base, h, l, fn] of [['X', BM, 'bm', 'xh', 'xl', 'put'], ['W', BN, 'bn', 'wh', 'wl', pw]]) {
    L.push(`    for (var i = 0u; i < ${(rows * V4) / threads}u; i++) { let e = li + i * ${threads}u; let r = e / ${V4}u; let c = e % ${V4}u;`);
    L.push(`      let v = ${src}[(${base} + r) * K4 + k0 / 4u + c]; let hi = bitcast<vec4<f32>>(bitcast<vec4<u32>>(v) & vec4<u32>(0xffffe000u));`);
    L.push(`      ${fn}(&${h}, r * ${BK}u + c * 4u, vec4<f16>(hi));` + (split > 1 ? ` ${fn}(&${l}, r * ${BK}u + c * 4u, vec4<f16>(v - hi));` : '') + ' }');
  }
  L.push('    workgroupBarrier();');
  L.push(`    for (var kk = 0u; kk < ${BK}u; kk += ${T}u) {`);
  for (let i = 0; i < TM; i++) { L.push(`      let a${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${T}, ${T}>, row_major>(&xh, (sm + ${i * T}u) * ${BK}u + kk, ${BK}u);`); if (split > 1) L.push(`      let al${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${T}, ${T}>, row_major>(&xl, (sm + ${i * T}u) * ${BK}u + kk, ${BK}u);`); }
  for (let j = 0; j < TN; j++) { L.push(`      let b${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${T}, ${T}>, col_major>(&wh, (sn + ${j * T}u) * ${BK}u + kk, ${BK}u);`); if (split > 1) L.push(`      let bl${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${T}, ${T}>, col_major>(&wl, (sn + ${j * T}u) * ${BK}u + kk, ${BK}u);`); }
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) { if (split > 1) L.push(`      c${i}${j} = subgroupMatrixMultiplyAccumulate(al${i}, b${j}, c${i}${j});`, `      c${i}${j} = subgroupMatrixMultiplyAccumulate(a${i}, bl${j}, c${i}${j});`); L.push(`      c${i}${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i}${j});`); }
  L.push('    }', '    workgroupBarrier();', '  }');
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) L.push(`  subgroupMatrixStore<row_major>(&Y, (bm + sm + ${i * T}u) * p.N + bn + sn + ${j * T}u, c${i}${j}, p.N);`);
  L.push('}');
  return { code: L.join('\n'), BM, BN };
}
function compile(code, tag) {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code });
  const pipe = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  return device.popErrorScope().then((err) => { if (err) { console.log(JSON.stringify({ tag, compileError: err.message.slice(0, 800) })); return null; } return pipe; });
}
function rnd(n, seed) { const a = new Float32Array(n); let s = seed >>> 0; for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = (s / 2 ** 32 - 0.5) * 2; } return a; }
const MAXX = 4096 * 2816, MAXW = 5632 * 1024, MAXY = 4096 * 5632;
const S = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const bX = device.createBuffer({ size: MAXX * 4, usage: S }), bW = device.createBuffer({ size: MAXW * 4, usage: S }), bY = device.createBuffer({ size: MAXY * 4, usage: S });
const bXH = device.createBuffer({ size: MAXX * 2, usage: S }), bXL = device.createBuffer({ size: MAXX * 2, usage: S }), bWH = device.createBuffer({ size: MAXW * 2, usage: S }), bWL = device.createBuffer({ size: MAXW * 2, usage: S });
const uniforms = device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const splitPipe = await compile(SPLIT_WGSL, 'split');
const bind = (pipe, bufs, sizes) => device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: bufs.map((b, i) => ({ binding: i, resource: sizes?.[i] ? { buffer: b, size: sizes[i] } : { buffer: b } })) });
function splitInto(src, n, hi, lo) { // records in its own pass
  const bg = bind(splitPipe, [src, hi, lo], [n * 4, n * 2, n * 2]);
  const e = device.createCommandEncoder(); const pass = e.beginComputePass(); pass.setPipeline(splitPipe); pass.setBindGroup(0, bg);
  const wgs = Math.ceil(n / 4 / 256); pass.dispatchWorkgroups(Math.min(wgs, 65535), Math.ceil(wgs / 65535)); pass.end(); return e.finish();
}
async function readY(n) { const rb = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }); const e = device.createCommandEncoder(); e.copyBufferToBuffer(bY, 0, rb, 0, n * 4); q.submit([e.finish()]); await rb.mapAsync(GPUMapMode.READ); const y = new Float32Array(rb.getMappedRange().slice(0)); rb.unmap(); return y; }
const pipes = {};
for (const split of [1, 3]) { const k = V.kind === 'direct' ? directKernel(V, split) : stagedKernel(V, split); pipes[split] = { ...k, pipe: await compile(k.code, `${V.kind} split ${split}`) }; }
function record(split, M, N, K, reps, e) {
  const { pipe, BM, BN } = pipes[split];
  const bg = V.kind === 'direct' ? bind(pipe, [bXH, bXL, bWH, bWL, bY, uniforms]) : bind(pipe, [bX, bW, bY, uniforms]);
  const pass = e.beginComputePass(); pass.setPipeline(pipe); pass.setBindGroup(0, bg);
  for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(M / BM, N / BN);
  pass.end();
}
async function setShape(M, N, K, x, w) {
  q.writeBuffer(bX, 0, x); q.writeBuffer(bW, 0, w); q.writeBuffer(uniforms, 0, new Uint32Array([M, N, K, 0]));
  q.submit([splitInto(bX, M * K, bXH, bXL), splitInto(bW, N * K, bWH, bWL)]); await q.onSubmittedWorkDone();
}
{ // accuracy
  const M = 256, N = 256, K = 320, x = rnd(M * K, 1), w = rnd(N * K, 2);
  const ref = new Float64Array(M * N); let f32err = 0;
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) { let s = 0, t = 0; for (let k = 0; k < K; k++) { s += x[m * K + k] * w[n * K + k]; t = Math.fround(t + Math.fround(x[m * K + k] * w[n * K + k])); } ref[m * N + n] = s; f32err = Math.max(f32err, Math.abs(t - s)); }
  await setShape(M, N, K, x, w);
  for (const split of [1, 3]) {
    if (!pipes[split].pipe) continue;
    const e = device.createCommandEncoder(); record(split, M, N, K, 1, e); q.submit([e.finish()]);
    const y = await readY(M * N); let err = 0; for (let i = 0; i < y.length; i++) err = Math.max(err, Math.abs(y[i] - ref[i]) || (Number.isFinite(y[i]) ? 0 : Infinity));
    console.log(JSON.stringify({ what: 'accuracy', ...V, split, maxAbsErr: +err.toExponential(2), cpuF32Err: +f32err.toExponential(2) }));
  }
}
for (const [M, N, K] of [[512, 1024, 1024], [512, 2816, 1024], [512, 5632, 1024], [4096, 5632, 1024], [4096, 1024, 2816]]) {
  await setShape(M, N, K, rnd(M * K, 3), rnd(N * K, 4));
  const reps = M >= 4096 ? 10 : 40;
  for (const split of [1, 3]) {
    if (!pipes[split].pipe || M % pipes[split].BM || N % pipes[split].BN) continue;
    let e = device.createCommandEncoder(); record(split, M, N, K, 2, e); q.submit([e.finish()]); await q.onSubmittedWorkDone();
    const t0 = performance.now(); e = device.createCommandEncoder(); record(split, M, N, K, reps, e); q.submit([e.finish()]); await q.onSubmittedWorkDone();
    const ms = (performance.now() - t0) / reps;
    console.log(JSON.stringify({ what: 'speed', M, N, K, ...V, split, us: +(ms * 1000).toFixed(1), TFLOPs: +((2 * M * N * K) / ms / 1e9).toFixed(1) }));
  }
  if (V.kind === 'direct' && only === 0) { // the split kernel's own cost on X
    const t0 = performance.now(); q.submit(Array.from({ length: 20 }, () => splitInto(bX, M * K, bXH, bXL))); await q.onSubmittedWorkDone();
    console.log(JSON.stringify({ what: 'split-x', M, K, us: +(((performance.now() - t0) / 20) * 1000).toFixed(1) }));
  }
}
console.log(JSON.stringify({ done: only }));
await new Promise((r) => setTimeout(r, 100));
process.exit(0);
