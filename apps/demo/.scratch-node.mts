import { Runtime } from '@statespace/core';
import { loadModel, Session } from '@statespace/hybrid';
const rt = await Runtime.create();
console.log(rt.adapterName);
const { model } = await loadModel(rt, '/work/main/fixtures/hf-tiny/mamba2');
const s = new Session(model);
const ids = [126, 94, 274, 286, 12, 120, 195, 147, 76, 224, 278, 248, 101, 266, 206, 225, 296, 101, 215, 101, 303, 148, 208, 128, 53, 67, 228, 217, 17, 208, 55, 139, 109, 64, 92, 225, 137];
let t = performance.now();
const out: number[] = [];
for await (const id of s.generate(ids, { maxNewTokens: 16 })) { out.push(id); console.log(id, (performance.now() - t).toFixed(0), rt.pipelineCount, rt.dispatchCount); t = performance.now(); }
