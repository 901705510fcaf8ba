// Host-side cost of recording one decode step (no GPU wait): how many dispatches and how long the JS takes.
import { Runtime } from '@statespace/core';
import { composeModel } from '@statespace/hybrid';

const rt = await Runtime.create();
const pattern = process.argv[2] ?? 'mmmmmmmmmmmmmmmmmmmmmmmm';
const model = composeModel(rt, { pattern, hiddenSize: 64, vocabSize: 128, mamba1: { stateSize: 16 }, mamba2: { numHeads: 2, headDim: 64, stateSize: 16, chunkSize: 16 }, attention: { numHeads: 2 } });
const state = model.createState(1);
const ids = rt.upload(new Int32Array([1]), [1, 1], 'i32');
for (let i = 0; i < 3; i++) (model.forward(ids, state, 'last')).dispose();
await rt.sync();
const N = Number(process.env.N ?? 50);
const d0 = rt.dispatchCount;
const p0 = rt.pipelineCount;
const t0 = performance.now();
for (let i = 0; i < N; i++) {
  model.forward(ids, state, 'last').dispose();
  rt.flush();
}
const t1 = performance.now();
console.log(`${pattern.length} layers: ${((rt.dispatchCount - d0) / N).toFixed(0)} dispatches/step, recording ${((t1 - t0) / N).toFixed(2)} ms/step, ${(((t1 - t0) / (rt.dispatchCount - d0)) * 1000).toFixed(1)} us/dispatch, ${rt.pipelineCount - p0} pipelines compiled while timing`);
await rt.sync();
process.exit(0);
