/**
 * What recording one compute dispatch costs the host through Dawn's Node binding, call by call:
 * pipeline + bind group with a dynamic uniform offset + dispatch (what a replayed plan records),
 * the same with a static bind group, without the setPipeline, the dispatch alone; then encoder
 * finish and submit; then bind groups of 1, 4 and 8 storage buffers. Raw WebGPU, no statespace runtime.
 *   node --conditions=@statespace/source --import tsx src/dispatch-cost.ts [--n 2000]
 */
import { parseArgs } from 'node:util';
import { Runtime } from '@statespace/core';

const { values } = parseArgs({ options: { n: { type: 'string' } } });
const n = Number(values.n ?? 2000);
const rt = await Runtime.create();
const device = rt.device;
const code = `@group(0) @binding(0) var<uniform> u: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(local_invocation_index) li: u32) { if (li == 0u) { y[0] += u.x; } }`;
const layout = device.createBindGroupLayout({
  entries: [
    { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
    { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
  ],
});
const layoutStatic = device.createBindGroupLayout({
  entries: [
    { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
    { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
  ],
});
const module = device.createShaderModule({ code });
const mk = (l: GPUBindGroupLayout) => Array.from({ length: 8 }, () => device.createComputePipeline({ layout: device.createPipelineLayout({ bindGroupLayouts: [l] }), compute: { module, entryPoint: 'main' } }));
const pipes = mk(layout);
const pipesStatic = mk(layoutStatic);
const ub = device.createBuffer({ size: 256 * 256, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const sb = device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE });
const bg = device.createBindGroup({ layout, entries: [{ binding: 0, resource: { buffer: ub, size: 16 } }, { binding: 1, resource: { buffer: sb } }] });
const bgs = Array.from({ length: 256 }, (_, i) => device.createBindGroup({ layout: layoutStatic, entries: [{ binding: 0, resource: { buffer: ub, offset: 256 * i, size: 16 } }, { binding: 1, resource: { buffer: sb } }] }));
const offsets = Array.from({ length: 256 }, (_, i) => new Uint32Array([256 * i]));
// The same static bind group with k storage buffers bound (the kernel reads one): what each bound buffer adds.
const wide = (k: number) => {
  const l = device.createBindGroupLayout({
    entries: [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } }, ...Array.from({ length: k }, (_, j) => ({ binding: j + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: (j === 0 ? 'storage' : 'read-only-storage') as GPUBufferBindingType } }))],
  });
  const p = Array.from({ length: 8 }, () => device.createComputePipeline({ layout: device.createPipelineLayout({ bindGroupLayouts: [l] }), compute: { module, entryPoint: 'main' } }));
  const bufs = Array.from({ length: k - 1 }, () => device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE }));
  const g = Array.from({ length: 256 }, (_, i) => device.createBindGroup({ layout: l, entries: [{ binding: 0, resource: { buffer: ub, offset: 256 * i, size: 16 } }, { binding: 1, resource: { buffer: sb } }, ...bufs.map((b, j) => ({ binding: j + 2, resource: { buffer: b } }))] }));
  return [`pipeline + bind group (static, ${k} storage buffers) + dispatch`, (pass: GPUComputePassEncoder, i: number) => { pass.setPipeline(p[i & 7]); pass.setBindGroup(0, g[i & 255]); pass.dispatchWorkgroups(1); }] as [string, Rec];
};
type Rec = (pass: GPUComputePassEncoder, i: number) => void;
const variants: [string, Rec][] = [
  ['pipeline + bind group (dynamic offset, typed) + dispatch', (p, i) => { p.setPipeline(pipes[i & 7]); p.setBindGroup(0, bg, offsets[i & 255], 0, 1); p.dispatchWorkgroups(1); }],
  ['pipeline + bind group (dynamic offset, array) + dispatch', (p, i) => { p.setPipeline(pipes[i & 7]); p.setBindGroup(0, bg, [256 * (i & 255)]); p.dispatchWorkgroups(1); }],
  ['pipeline + bind group (static) + dispatch', (p, i) => { p.setPipeline(pipesStatic[i & 7]); p.setBindGroup(0, bgs[i & 255]); p.dispatchWorkgroups(1); }],
  ['bind group (static) + dispatch, one pipeline', (p, i) => { if (i === 0) p.setPipeline(pipesStatic[0]); p.setBindGroup(0, bgs[i & 255]); p.dispatchWorkgroups(1); }],
  ['dispatch only', (p, i) => { if (i === 0) { p.setPipeline(pipesStatic[0]); p.setBindGroup(0, bgs[0]); } p.dispatchWorkgroups(1); }],
  wide(1),
  wide(4),
  wide(8),
];
for (let round = 0; round < 2; round++) {
  for (const [name, rec] of variants) {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) rec(pass, i);
    const t1 = performance.now();
    pass.end();
    const cb = enc.finish();
    const t2 = performance.now();
    device.queue.submit([cb]);
    const t3 = performance.now();
    await device.queue.onSubmittedWorkDone();
    const t4 = performance.now();
    if (round === 1) {
      const us = (a: number, b: number) => ((1000 * (b - a)) / n).toFixed(2);
      console.log(`${name.padEnd(60)} record ${us(t0, t1)} us, finish ${us(t1, t2)}, submit ${us(t2, t3)}, GPU done ${us(t3, t4)} (per dispatch)`);
    }
  }
}
process.exit(0);
