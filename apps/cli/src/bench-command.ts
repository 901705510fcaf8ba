/**
 * `statespace bench`: prefill and decode speed of a model folder, or of a
 * composed hybrid with random weights, on the adapter found. (The full suite,
 * side by side with transformers, is `pnpm bench` / bench/gpu.sh.)
 */
import { StatespaceError } from '@statespace/core';
import { type HybridModel, Session, composeModel, patternOf } from '@statespace/hybrid';
import { parseCount } from './args.js';
import { getRuntime, openCliModel } from './commands.js';
import type { CliIO } from './io.js';

export interface BenchFlags {
  pattern?: string;
  hidden?: string;
  vocab?: string;
  prompt?: string;
  steps?: string;
  dtype?: string;
  json?: boolean;
}

/** `statespace bench [<modelDir> | --pattern MMMAMMMM --hidden 256] [--prompt 512] [--steps 32]` */
export async function benchCommand(dir: string | undefined, flags: BenchFlags, io: CliIO): Promise<void> {
  const rt = await getRuntime();
  let model: HybridModel;
  if (dir) model = (await openCliModel(dir, flags, io)).model;
  else {
    if (!flags.pattern) throw new StatespaceError('CLI_USAGE', 'give a <modelDir> or --pattern (e.g. MMMAMMMM)');
    const hidden = parseCount(flags.hidden, '--hidden', 256);
    model = composeModel(rt, { pattern: flags.pattern, hiddenSize: hidden, vocabSize: parseCount(flags.vocab, '--vocab', 4096), mamba2: { numHeads: Math.max(1, (2 * hidden) / 64), headDim: 64, stateSize: 64, chunkSize: 64 }, attention: { numHeads: Math.max(1, hidden / 64) }, mlp: { intermediateSize: 2 * hidden } }, { seed: 1, dtype: (flags.dtype ?? 'f32') as 'f32' });
  }
  const L = parseCount(flags.prompt, '--prompt', 256);
  const steps = parseCount(flags.steps, '--steps', 16);
  const V = model.spec.vocabSize;
  const ids = Array.from({ length: L }, (_, i) => (i * 7919) % V);
  const warm = new Session(model);
  await warm.prefill(ids.slice(0, Math.min(8, L)));
  await warm.step(1);
  warm.dispose();
  const s = new Session(model);
  const t0 = performance.now();
  await s.prefill(ids);
  const t1 = performance.now();
  for (let i = 0; i < steps; i++) await s.step(i % V);
  const t2 = performance.now();
  const result = {
    adapter: rt.adapterName,
    model: model.spec.architecture,
    pattern: patternOf(model.spec),
    promptTokens: L,
    prefillTokS: (L * 1000) / (t1 - t0),
    decodeTokS: (steps * 1000) / (t2 - t1),
    decodeMsPerToken: (t2 - t1) / steps,
    memory: s.memory(),
  };
  if (flags.json) io.out(`${JSON.stringify(result)}\n`);
  else {
    io.out(`${result.model} ${result.pattern} on ${result.adapter}\n`);
    io.out(`prefill ${L} tokens: ${result.prefillTokS.toFixed(1)} tok/s\n`);
    io.out(`decode ${steps} tokens: ${result.decodeTokS.toFixed(1)} tok/s (${result.decodeMsPerToken.toFixed(2)} ms/token)\n`);
    const m = result.memory;
    io.out(`memory: weights ${(m.weights / 2 ** 20).toFixed(1)} MiB, ssm ${(m.ssm / 2 ** 10).toFixed(0)} KiB, conv ${(m.conv / 2 ** 10).toFixed(0)} KiB, kv ${(m.kv / 2 ** 10).toFixed(0)} KiB\n`);
  }
  s.dispose();
  model.dispose();
}
