// Why the first prefill after trimPool is slow: host recording vs GPU, bind groups vs buffers.
import { Runtime } from '@statespace/core';
import { Session, composeModel } from '@statespace/hybrid';
import { BENCH_MODELS } from './models.js';
const rt = await Runtime.create();
const now = () => performance.now();
const ids = (L: number, V: number, s: number) => Array.from({ length: L }, (_, i) => (i * 7919 + s * 13) % V);
const L = Number(process.env.L ?? 512);
for (const name of (process.env.MODELS ?? 'mamba-130m,llama-350m').split(',')) {
  const m = BENCH_MODELS.find((x) => x.name === name)!;
  const model = composeModel(rt, m.composition, { seed: 1 });
  const V = m.composition.vocabSize;
  const one = async (tag: string) => {
    const st = model.createState(1);
    const t = rt.upload(Int32Array.from(ids(L, V, 9)), [1, L], 'i32');
    await rt.sync();
    const d0 = rt.dispatchCount;
    const t0 = now();
    const lg = model.forward(t, st, 'last');
    const host = now() - t0;
    rt.flush();
    await rt.read(lg);
    const all = now() - t0;
    lg.dispose(); t.dispose(); st.dispose();
    return `${tag} ${host.toFixed(1)}/${all.toFixed(1)}`;
  };
  const row: string[] = [];
  for (let i = 0; i < 4; i++) row.push(await one(`w${i}`));
  console.log(`${name} L=${L} host/total ms, warm: ${row.join(', ')}`);
  for (const variant of ['trimPool', 'bindGroups only', 'pool only (bind groups kept)', 'sleep 2s']) {
    const r: string[] = [];
    if (variant === 'trimPool') rt.trimPool();
    else if (variant === 'bindGroups only') (rt as any).bindGroups.clear();
    else if (variant === 'sleep 2s') await new Promise((res) => setTimeout(res, 2000));
    else { const pool = (rt as any).pool as Map<number, GPUBuffer[]>; for (const l of pool.values()) for (const b of l) b.destroy(); pool.clear(); (rt as any).stats.pooledBytes = 0; }
    for (let i = 0; i < 4; i++) r.push(await one(`r${i}`));
    console.log(`  after ${variant}: ${r.join(', ')}`);
  }
  // raw Dawn costs: create + first use of buffers
  const sizes = [65536, 1 << 20, 8 << 20];
  for (const sz of sizes) {
    const t0 = now();
    const bufs = Array.from({ length: 64 }, () => rt.device.createBuffer({ size: sz, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST }));
    const tc = now() - t0;
    const enc = rt.device.createCommandEncoder();
    for (let i = 1; i < bufs.length; i++) enc.copyBufferToBuffer(bufs[i - 1], 0, bufs[i], 0, 256);
    rt.device.queue.submit([enc.finish()]);
    await rt.device.queue.onSubmittedWorkDone();
    console.log(`  64 buffers of ${sz} B: create ${tc.toFixed(2)} ms, first use ${(now() - t0 - tc).toFixed(2)} ms`);
    for (const b of bufs) b.destroy();
  }
  model.dispose(); rt.trimPool();
}
process.exit(0);
