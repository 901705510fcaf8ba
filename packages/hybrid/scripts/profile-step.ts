// Times prefill and decode steps of a fixture model and, where the adapter has
// timestamp queries, ranks kernels by GPU time.  node --conditions=@statespace/source --import tsx scripts/profile-step.ts mamba2
import { Runtime } from '@statespace/core';
import { Session, loadModel } from '@statespace/hybrid';

const name = process.argv[2] ?? 'mamba2';
const rt = await Runtime.create();
const { model } = await loadModel(rt, name.includes("/") ? name : new URL(`../../../fixtures/hf-tiny/${name}`, import.meta.url).pathname);
const s = new Session(model);
let t = performance.now();
await s.prefill([1, 2, 3, 4, 5]);
console.log(`${rt.adapterName}: prefill ms`, (performance.now() - t).toFixed(0));
for (let i = 0; i < 3; i++) {
  const d0 = rt.dispatchCount;
  const s0 = rt.submitCount;
  t = performance.now();
  await s.step(7);
  console.log('step ms', (performance.now() - t).toFixed(0), 'dispatches', rt.dispatchCount - d0, 'submits', rt.submitCount - s0);
}
if (rt.info.features.timestampQuery) {
  rt.startProfiling();
  await s.step(7);
  for (const k of await rt.stopProfiling()) console.log(`${k.name.padEnd(32)} ${k.ms.toFixed(3)} ms  x${k.count}`);
} else console.log('no timestamp-query on this adapter');
process.exit(0);
