import { Runtime, StatespaceError } from '@statespace/core';
import { loadModel, Session, composeModel, patternOf, patternFromRatio, readModelSpec } from '@statespace/hybrid';
import { openModel } from '@statespace/checkpoint';

const runtime = await Runtime.create();
console.log('adapter', runtime.adapterName);
const { model, spec, family } = await loadModel(runtime, '../../fixtures/hf-tiny/bamba', {
  weightDtype: 'f16',
  onProgress: (p) => console.log(`${p.tensorsDone}/${p.tensorsTotal} ${p.tensor} ${Math.round((100 * p.bytesDone) / p.bytesTotal)}%`),
});
console.log(spec.architecture, family.modelTypes, patternOf(spec));
const session = new Session(model);
const out: number[] = [];
for await (const token of session.generate([3, 1, 4], { maxNewTokens: 8, greedy: true })) out.push(token);
console.log('greedy', out, 'unconsumed', session.unconsumed, 'length', session.length);
console.log('memory', session.memory());

// snapshot / restore
const saved = session.snapshot();
const a: number[] = [];
for await (const t of session.generate([5, 9], { maxNewTokens: 4 })) a.push(t);
session.restore(saved);
const b: number[] = [];
for await (const t of session.generate([5, 9], { maxNewTokens: 4 })) b.push(t);
console.log('restore equal', JSON.stringify(a) === JSON.stringify(b));
saved.dispose();

// fork
const f = session.fork();
const fl = await f.step(7);
const sl = await session.step(7);
console.log('fork equal logits', fl[0].every((v, i) => v === sl[0][i]));
f.dispose();

// save / load
const bytes = await session.save();
const other = new Session(model);
other.load(bytes);
const x1 = await other.step(11);
const x2 = await session.step(11);
console.log('save/load equal', x1[0].every((v, i) => v === x2[0][i]), bytes.byteLength);
other.dispose();

// reset
session.reset();
console.log('after reset', session.length, session.memory());

// prefill + sampling
const logits = await session.prefill([3, 1, 4, 1, 5]);
console.log('prefill logits', logits.length, logits[0].length);
const s: number[] = [];
for await (const t of session.generate(null, { maxNewTokens: 5, temperature: 0.8, topP: 0.95, topK: 40, seed: 1 })) s.push(t);
console.log('sampled', s);

// errors
try { await loadModel(runtime, '../../fixtures/hf-tiny/nope'); } catch (e) { console.log('err', StatespaceError.is(e) && e.code, (e as Error).message); }

const folder = await openModel('../../fixtures/hf-tiny/jamba');
const r = await readModelSpec(folder);
console.log('jamba pattern', patternOf(r.spec));

console.log(patternFromRatio({ attention: 1, ssm: 7 }, 8), patternFromRatio({ attention: 1, ssm: 3 }, 8), patternFromRatio({ attention: 1, ssm: 1 }, 8), patternFromRatio({ attention: 0, ssm: 1 }, 8), patternFromRatio({ attention: 1, ssm: 0 }, 8));
const hybrid = composeModel(runtime, { ratio: { attention: 1, ssm: 7 }, layers: 8, hiddenSize: 128, vocabSize: 256 }, { seed: 1 });
console.log(patternOf(hybrid.spec));
const hs = new Session(hybrid);
await hs.prefill(Array.from({ length: 16 }, (_, i) => i));
console.log('composed mem', hs.memory());
model.dispose();
runtime.destroy();
process.exit(0);
