/**
 * Long-prompt check: one Mamba-1 mixer of mamba-130m shape (d_model 768, d_inner 1536,
 * d_state 16, dt rank 48, conv 4) with random weights runs a 65,536-token prompt, then
 * a few decode steps; prints wall time and peak GPU memory.
 *
 * Run from the repository root:
 *   node --conditions=@statespace/source --import tsx packages/scan-wgsl/scripts/long-prompt.ts
 * Options: --tokens N (65536)  --chunk N (prefill chunk, 8192)  --dtype f32|f16|bf16 (weights, f32)
 *          --batch N (1)  --decode N (32)  --scan-only (time the selective scan kernel alone too)
 */
import { Runtime, type Tensor, type DType } from '@statespace/core';
import { randn, randu } from '@statespace/core/testing';
import { type Mamba1Config, Mamba1Mixer, selectiveScan } from '../src/index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const tokens = Number(arg('tokens', '65536'));
const chunk = Number(arg('chunk', '8192'));
const batch = Number(arg('batch', '1'));
const decodeSteps = Number(arg('decode', '32'));
const dtype = arg('dtype', 'f32') as DType;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

const config: Mamba1Config = {
  hiddenSize: 768,
  intermediateSize: 1536,
  stateSize: 16,
  convKernel: 4,
  timeStepRank: 48,
  useBias: false,
  useConvBias: true,
  normEps: 1e-5,
  prefillChunk: chunk,
};

const rt = await Runtime.create();
console.log(`adapter: ${rt.adapterName}; prompt ${tokens} tokens x batch ${batch}; weights ${dtype}; prefill chunk ${chunk}`);

const weights: Record<string, Tensor> = {};
let seed = 1;
for (const spec of Mamba1Mixer.expectedWeights(config)) {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const fanIn = spec.shape[spec.shape.length - 1];
  const data =
    spec.name === 'A_log'
      ? Float32Array.from({ length: n }, (_, i) => Math.log(1 + (i % config.stateSize)))
      : spec.name === 'dt_proj.bias'
        ? randu(n, seed++, -6.9, -2.3)
        : spec.name === 'D'
          ? new Float32Array(n).fill(1)
          : randn(n, seed++, 1 / Math.sqrt(fanIn));
  weights[spec.name] = rt.upload(data, spec.shape, spec.dtype ?? dtype);
}
const mixer = new Mamba1Mixer(rt, config, weights);
const H = config.hiddenSize;

// warm-up: compile every pipeline (prefill and decode paths) before timing
{
  const s = mixer.createState(batch);
  mixer.forward(rt.upload(randn(batch * 64 * H, 7), [batch, 64, H]), s).dispose();
  mixer.forward(rt.upload(randn(batch * H, 8), [batch, 1, H]), s).dispose();
  s.dispose();
  await rt.sync();
}

const x = rt.upload(randn(batch * tokens * H, 9), [batch, tokens, H]);
const state = mixer.createState(batch);
await rt.sync();
const before = rt.memory();
rt.resetPeak();
let t0 = performance.now();
const y = mixer.forward(x, state);
await rt.sync();
const prefillMs = performance.now() - t0;
const after = rt.memory();
const out = await rt.readFloat(y);
let finite = true;
for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i])) { finite = false; break; }
console.log(`prefill: ${prefillMs.toFixed(1)} ms (${((batch * tokens) / (prefillMs / 1000)).toFixed(0)} tokens/s), output finite: ${finite}`);
console.log(`memory: weights+state+input live before ${mib(before.liveBytes)}; peak during prefill ${mib(after.peakLiveBytes)} (+${mib(after.peakLiveBytes - before.liveBytes)}); largest buffer ${mib(after.largestBufferBytes)}`);
console.log(`state: ${JSON.stringify(state.memory())} bytes, length ${state.length}`);
y.dispose();

if (decodeSteps > 0) {
  const step = rt.upload(randn(batch * H, 10), [batch, 1, H]);
  t0 = performance.now();
  for (let i = 0; i < decodeSteps; i++) mixer.forward(step, state).dispose();
  await rt.sync();
  console.log(`decode: ${((performance.now() - t0) / decodeSteps).toFixed(3)} ms/token over ${decodeSteps} steps (one mixer, submit included)`);
}

if (process.argv.includes('--scan-only')) {
  const D = config.intermediateSize;
  const N = config.stateSize;
  const L = Math.min(tokens, chunk);
  const inputs = {
    x: rt.upload(randn(batch * L * D, 11), [batch, L, D]),
    dt: rt.upload(randn(batch * L * D, 12, 0.5), [batch, L, D]),
    aLog: weights['A_log'],
    B: rt.upload(randn(batch * L * N, 13), [batch, L, N]),
    C: rt.upload(randn(batch * L * N, 14), [batch, L, N]),
    D: weights['D'],
    z: rt.upload(randn(batch * L * D, 15), [batch, L, D]),
    dtBias: weights['dt_proj.bias'],
    state: rt.zeros([batch, D, N]),
  };
  selectiveScan(rt, inputs, { inPlace: false }).dispose();
  await rt.sync();
  t0 = performance.now();
  const reps = 5;
  for (let i = 0; i < reps; i++) selectiveScan(rt, inputs).dispose();
  await rt.sync();
  const ms = (performance.now() - t0) / reps;
  console.log(`selective scan alone: ${L} tokens x ${D} channels x d_state ${N}: ${ms.toFixed(2)} ms (${((batch * L) / (ms / 1000)).toFixed(0)} tokens/s)`);
}
rt.destroy();
