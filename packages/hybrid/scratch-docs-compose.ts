import { Runtime } from '@statespace/core';
import { type HybridComposition, Session, composeModel, composeSpec, modelWeights, patternFromRatio, patternOf, HybridModel, randomWeights } from '@statespace/hybrid';

const runtime = await Runtime.create();

// --- pattern sample
const nemotronish = composeModel(runtime, {
  pattern: 'M-M-M*-M-M-M*-',
  hiddenSize: 64,
  vocabSize: 512,
  mamba2: { numHeads: 4, headDim: 32, stateSize: 16, chunkSize: 64 },
  attention: { numHeads: 4, numKeyValueHeads: 2 },
  mlp: { intermediateSize: 128 },
}, { seed: 1 });
console.log(patternOf(nemotronish.spec), nemotronish.spec.blocks.length);
console.log(modelWeights(composeSpec({ pattern: 'MA', hiddenSize: 64, vocabSize: 512, mlp: { intermediateSize: 128 } })).map((w) => `${w.name} [${w.shape}]${w.f32 ? ' f32' : ''}`).join('\n'));
nemotronish.dispose();

// own weights
const spec = composeSpec({ pattern: 'MMAM', hiddenSize: 64, vocabSize: 512 });
const weights = randomWeights(runtime, spec, { seed: 7 }); // or your own tensors under the same names
const own = new HybridModel(runtime, spec, weights);
console.log('own', patternOf(own.spec));
own.dispose();

// --- comparison sample
const mixes: Record<string, { attention: number; ssm: number }> = {
  'pure Mamba-2 (0:1)': { attention: 0, ssm: 1 },
  '1:7': { attention: 1, ssm: 7 },
  '1:3': { attention: 1, ssm: 3 },
  '1:1': { attention: 1, ssm: 1 },
  'pure attention': { attention: 1, ssm: 0 },
};
for (const [name, ratio] of Object.entries(mixes)) {
  const composition: HybridComposition = {
    ratio,
    layers: 8,
    hiddenSize: 64,
    vocabSize: 512,
    mamba2: { numHeads: 2, headDim: 64, stateSize: 16 },
    attention: { numHeads: 1 },
  };
  const model = composeModel(runtime, composition, { seed: 1 });
  const session = new Session(model);
  await session.prefill(Array.from({ length: 64 }, (_, i) => i % 512)); // 64 tokens of context
  await session.step(1); // warm-up: compiles the decode pipelines
  const t0 = performance.now();
  for (let i = 0; i < 8; i++) await session.step((i * 31) % 512);
  const msPerToken = (performance.now() - t0) / 8;
  const { ssm, conv, kv } = session.memory();
  console.log(`${name.padEnd(20)} ${patternOf(model.spec)}  ${msPerToken.toFixed(1)} ms/token  state ${((ssm + conv + kv) / 1024).toFixed(0)} KiB (kv ${(kv / 1024).toFixed(0)} KiB)`);
  session.dispose();
  model.dispose();
}
runtime.destroy();
