/**
 * What a dispatch costs the GPU when it depends on the one before, against a grid-wide barrier
 * inside one persistent dispatch: the floor under a decode token's GPU time, which is a chain of
 * ~76-150 small dependent dispatches. Raw WebGPU, GPU time from timestamps at the ends of one pass.
 *   chain/1wg     N dispatches of 1 workgroup, each reading and writing one buffer (Dawn puts a barrier between each)
 *   chain/132wg   the same with 132 workgroups of 256 threads (one per SM on an H200)
 *   free/132wg    N dispatches writing N different buffers (no hazard, so no barrier)
 *   grid/G        one dispatch of G workgroups crossing N grid barriers (an atomic counter and a
 *                 generation word; needs every workgroup resident at once, which WebGPU does not
 *                 promise); each phase checks what a neighbour wrote in the phase before
 *   gemv/R        N dependent dispatches of a 768 x R f32 matrix-vector product (4 B per weight)
 *   node --conditions=@statespace/source --import tsx src/dispatch-chain.ts [--n 1000]
 */
import { parseArgs } from 'node:util';
import { Runtime } from '@statespace/core';

const { values } = parseArgs({ options: { n: { type: 'string' }, grid: { type: 'string' } } });
const n = Number(values.n ?? 1000);
const rt = await Runtime.create();
const device = rt.device;
if (!device.features.has('timestamp-query')) throw new Error('dispatch-chain needs timestamp-query');
const qs = device.createQuerySet({ type: 'timestamp', count: 2 });
const qbuf = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
const qread = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });

const storage = (size: number) => device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
const pipeline = (code: string) => device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
const group = (p: GPUComputePipeline, bufs: GPUBuffer[]) => device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: bufs.map((buffer, binding) => ({ binding, resource: { buffer } })) });

/** GPU microseconds of one pass that records `rec`, divided by `per`. */
async function timed(rec: (pass: GPUComputePassEncoder) => void, per: number): Promise<number> {
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
  rec(pass);
  pass.end();
  enc.resolveQuerySet(qs, 0, 2, qbuf, 0);
  enc.copyBufferToBuffer(qbuf, 0, qread, 0, 16);
  device.queue.submit([enc.finish()]);
  await qread.mapAsync(GPUMapMode.READ);
  const t = new BigUint64Array(qread.getMappedRange().slice(0));
  qread.unmap();
  return Number(t[1] - t[0]) / 1000 / per;
}

const tiny = pipeline(`@group(0) @binding(0) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  if (li == 0u) { y[wg.x] = y[wg.x] + 1u; }
}`);
const shared = storage(4096);
const tinyGroup = group(tiny, [shared]);
const own = Array.from({ length: 64 }, () => storage(4096));
const ownGroups = own.map((b) => group(tiny, [b]));

const gridCode = (g: number) => `@group(0) @binding(0) var<storage, read_write> bar: array<atomic<u32>, 2>;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> errors: atomic<u32>;
var<workgroup> gen: u32;
fn grid_sync(li: u32) {
  storageBarrier();
  workgroupBarrier();
  if (li == 0u) {
    let g0 = atomicLoad(&bar[1]);
    if (atomicAdd(&bar[0], 1u) == ${g}u - 1u) {
      atomicStore(&bar[0], 0u);
      atomicAdd(&bar[1], 1u);
    } else {
      loop { if (atomicLoad(&bar[1]) != g0) { break; } }
    }
  }
  workgroupBarrier();
  storageBarrier();
}
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  for (var k = 0u; k < ${n}u; k++) {
    if (li == 0u) { data[wg.x] = k + 1u; }
    grid_sync(li);
    if (li == 0u && data[(wg.x + 1u) % ${g}u] < k + 1u) { atomicAdd(&errors, 1u); }
    grid_sync(li);
  }
}`;

const gemvCode = (rows: number) => `@group(0) @binding(0) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
var<workgroup> part: array<f32, 256>;
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  // 4 rows per workgroup, 64 lanes per row over 768 columns (192 vec4, 3 per lane).
  let row = wg.x * 4u + li / 64u;
  let lane = li % 64u;
  var acc = 0.0;
  for (var j = 0u; j < 3u; j++) {
    let c = lane + 64u * j;
    let wv = w[row * 192u + c];
    acc += dot(wv, vec4<f32>(x[4u * c], x[4u * c + 1u], x[4u * c + 2u], x[4u * c + 3u]));
  }
  part[li] = acc;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lane < s) { part[li] += part[li + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && row < 768u) { x[768u + row % 768u] = part[li]; }
}`;

const results: Record<string, number[]> = {};
const note = (k: string, v: number) => (results[k] ??= []).push(v);
for (let round = 0; round < 4; round++) {
  const warm = round === 0;
  const r1 = await timed((p) => { p.setPipeline(tiny); p.setBindGroup(0, tinyGroup); for (let i = 0; i < n; i++) p.dispatchWorkgroups(1); }, n);
  const r132 = await timed((p) => { p.setPipeline(tiny); p.setBindGroup(0, tinyGroup); for (let i = 0; i < n; i++) p.dispatchWorkgroups(132); }, n);
  const free = await timed((p) => { p.setPipeline(tiny); for (let i = 0; i < n; i++) { p.setBindGroup(0, ownGroups[i % 64]); p.dispatchWorkgroups(132); } }, n);
  if (!warm) { note('chain/1wg', r1); note('chain/132wg', r132); note('free/132wg (64 buffers in turn)', free); }
  for (const rows of [768, 3072]) {
    const p = pipeline(gemvCode(rows));
    const w = storage(768 * rows * 4);
    const x = storage(2 * 768 * 4);
    const gr = group(p, [w, x]);
    const t = await timed((pass) => { pass.setPipeline(p); pass.setBindGroup(0, gr); for (let i = 0; i < n; i++) pass.dispatchWorkgroups(rows / 4); }, n);
    if (!warm) note(`gemv/${rows} (${((768 * rows * 4) / 1e6).toFixed(1)} MB)`, t);
    w.destroy();
  }
}
const grids = (values.grid ?? '1,32,132,264').split(',').map(Number);
for (const g of grids) {
  const p = pipeline(gridCode(g));
  const bar = storage(256);
  const data = storage(4 * g);
  const err = storage(256);
  const gr = group(p, [bar, data, err]);
  for (let round = 0; round < 3; round++) {
    const t = await timed((pass) => { pass.setPipeline(p); pass.setBindGroup(0, gr); pass.dispatchWorkgroups(g); }, 2 * n);
    const rb = device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(err, 0, rb, 0, 4);
    device.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ);
    const errors = new Uint32Array(rb.getMappedRange())[0];
    rb.unmap();
    if (round > 0) note(`grid/${g}`, t);
    if (round === 2) console.log(`grid/${g}: ${errors} neighbour reads that saw a stale phase, of ${3 * n * g}`);
  }
}
console.log(`GPU time per dispatch (or per grid barrier), N = ${n}, microseconds, runs after a warm-up:`);
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(40)} ${v.map((x) => x.toFixed(2)).join('  ')}`);
process.exit(0);
