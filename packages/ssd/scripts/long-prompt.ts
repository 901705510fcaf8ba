/**
 * One Mamba-2 layer of a 130M-class shape (d_model 768, 24 heads of 64, d_state 128,
 * n_groups 1, conv 4, chunk 256) over a long random prompt: prints the prefill time,
 * peak GPU memory (rt.memory()), a decode step's time, and checks the result is finite
 * and that a run with another pass length agrees (prefill passes carry the state).
 *
 * Run from packages/ssd:
 *   node --conditions=@statespace/source --import tsx scripts/long-prompt.ts [tokens=65536] [f32|bf16]
 */
import { Runtime, type Tensor } from '@statespace/core';
import { randn, randu, relError } from '@statespace/core/testing';
import { Mamba2Mixer, type Mamba2MixerConfig } from '../src/index.js';

const tokens = Number(process.argv[2] ?? 65536);
const dtype = (process.argv[3] ?? 'f32') as 'f32' | 'bf16';
const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

const config: Mamba2MixerConfig = {
  hiddenSize: 768,
  numHeads: 24,
  headDim: 64,
  stateSize: 128,
  nGroups: 1,
  convKernel: 4,
  chunkSize: 256,
  useConvBias: true,
  useBias: false,
  timeStepLimit: [0, Infinity],
  normEps: 1e-5,
};

const rt = await Runtime.create();
console.log(`adapter: ${rt.adapterName}; maxStorageBufferBindingSize ${MiB(rt.device.limits.maxStorageBufferBindingSize)}, maxBufferSize ${MiB(rt.device.limits.maxBufferSize)}`);

const weights: Record<string, Tensor> = {};
Mamba2Mixer.expectedWeights(config).forEach((spec, i) => {
  const n = spec.shape.reduce((a, v) => a * v, 1);
  let data: Float32Array;
  if (spec.name === 'A_log') data = randu(n, i, 0, Math.log(16));
  else if (spec.name === 'dt_bias') data = randn(n, i, 0.5).map((v) => v - 3);
  else if (spec.name === 'norm.weight' || spec.name === 'D') data = randn(n, i, 0.1).map((v) => v + 1);
  else data = randn(n, i, 1 / Math.sqrt(spec.shape[spec.shape.length - 1]));
  weights[spec.name] = rt.upload(data, spec.shape, spec.shape.length > 1 ? dtype : 'f32', spec.name);
});

const mixer = new Mamba2Mixer(rt, config, weights);
const d = config.hiddenSize;

// Warm-up: compile every pipeline on a short prompt and a decode step.
{
  const s = mixer.createState(1);
  mixer.forward(rt.upload(randn(600 * d, 1), [1, 600, d]), s).dispose();
  mixer.forward(rt.upload(randn(d, 2), [1, 1, d]), s).dispose();
  await rt.sync();
  s.dispose();
}

console.log(`prompt: ${tokens} tokens, weights ${dtype}`);
const x = rt.upload(randn(tokens * d, 3), [1, tokens, d], 'f32', 'prompt');
await rt.sync();
rt.trimPool();
rt.resetPeak();
const before = rt.memory();
const state = mixer.createState(1);
const t0 = performance.now();
const y = mixer.forward(x, state);
await rt.sync();
const t1 = performance.now();
const mem = rt.memory();
console.log(`prefill: ${(t1 - t0).toFixed(1)} ms (${((tokens / (t1 - t0)) * 1000).toFixed(0)} tokens/s)`);
console.log(
  `memory: live before ${MiB(before.liveBytes)} (weights + prompt), peak ${MiB(mem.peakLiveBytes)}, ` +
    `peak above before ${MiB(mem.peakLiveBytes - before.liveBytes)}, largest buffer ${MiB(mem.largestBufferBytes)}, output ${MiB(y.byteSize)}`,
);

const out = (await rt.read(y)) as Float32Array;
let finite = true;
let sumSq = 0;
for (const v of out) {
  if (!Number.isFinite(v)) finite = false;
  sumSq += v * v;
}
console.log(`output finite: ${finite}, rms ${Math.sqrt(sumSq / out.length).toFixed(4)}`);

// Decode after the long prompt.
const x1 = rt.upload(randn(d, 4), [1, 1, d]);
const steps = 50;
await rt.sync();
const t2 = performance.now();
for (let i = 0; i < steps; i++) mixer.forward(x1, state).dispose();
await rt.sync();
const t3 = performance.now();
console.log(`decode: ${((t3 - t2) / steps).toFixed(3)} ms per token (${steps} steps, one submit)`);

// Consistency: another pass length gives the same output (up to rounding).
const other = new Mamba2Mixer(rt, { ...config, maxTokensPerPass: 4096 }, weights);
const s2 = other.createState(1);
const y2 = (await rt.read(other.forward(x, s2))) as Float32Array;
console.log(`passes of 4096 tokens vs default: rel. error ${relError(y2, out).toExponential(2)}`);
rt.destroy();
