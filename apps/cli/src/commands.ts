/**
 * The `statespace` commands. Each takes parsed flags and an {@link CliIO}; the
 * binary in cli.ts only dispatches, so tests run the same code in process.
 */
import { type LoadProgress } from '@statespace/checkpoint';
import { Runtime, StatespaceError } from '@statespace/core';
import { type LoadedModel, Session, loadModel, patternOf, readModelSpec } from '@statespace/hybrid';
import { type Mamba3Config, mamba3Dims, mamba3StateStride } from '@statespace/mamba3';
import { parseIds } from './args.js';
import { samplingFlags } from './sampling-flags.js';
import type { CliIO } from './io.js';

/** Flags shared by the model commands. */
export interface ModelFlags {
  /** `--dtype`: weight storage, `f32` (default), `f16`, `bf16`, `q8` (int8 with per-32 scales) or `keep`. */
  dtype?: string;
  /** `--json`: one JSON object on stdout instead of text. */
  json?: boolean;
}

let runtimePromise: Promise<Runtime> | undefined;
/**
 * One runtime per process (the adapter core finds: a GPU, or SwiftShader on a CPU-only machine).
 *
 * @example
 * ```ts
 * const rt = await getRuntime(); // the same Runtime on every call
 * console.log(rt.adapterName);
 * ```
 */
export function getRuntime(): Promise<Runtime> {
  runtimePromise ??= Runtime.create();
  return runtimePromise;
}

/**
 * Destroys the process's runtime, if one was created, so that its Dawn device no longer holds the
 * event loop; the next {@link getRuntime} creates a fresh one. The binary calls it before it ends.
 *
 * @example
 * ```ts
 * const status = await main(['inspect', './fixtures/hf-tiny/jamba'], processIO);
 * await releaseRuntime();
 * process.exitCode = status; // Node exits once stdout and stderr are written
 * ```
 */
export async function releaseRuntime(): Promise<void> {
  const pending = runtimePromise;
  runtimePromise = undefined;
  if (!pending) return;
  const rt = await pending.catch(() => undefined);
  rt?.destroy();
}

function progressBar(io: CliIO, label: string): (p: LoadProgress) => void {
  let last = -1;
  return (p) => {
    if (!io.isTTY) return;
    const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
    if (pct === last) return;
    last = pct;
    const width = 30;
    const fill = Math.round((pct / 100) * width);
    io.err(`\r${label} [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${pct}%${pct === 100 ? '\n' : ''}`);
  };
}

/**
 * Loads a model folder with the CLI's conventions (f32 by default, progress on a TTY).
 *
 * @example
 * ```ts
 * const { model, family } = await openCliModel('./fixtures/hf-tiny/bamba', { dtype: 'f16' }, processIO);
 * ```
 */
export async function openCliModel(dir: string, flags: ModelFlags, io: CliIO): Promise<LoadedModel> {
  if (!dir) throw new StatespaceError('CLI_USAGE', 'missing <modelDir>');
  const rt = await getRuntime();
  const dtype = (flags.dtype ?? 'f32') as 'f32' | 'f16' | 'bf16' | 'q8' | 'keep';
  if (!['f32', 'f16', 'bf16', 'q8', 'keep'].includes(dtype)) throw new StatespaceError('CLI_USAGE', `--dtype must be f32, f16, bf16, q8 or keep, got ${flags.dtype}`);
  return loadModel(rt, dir, { weightDtype: dtype, onProgress: progressBar(io, 'loading') });
}

/**
 * `statespace logits <modelDir> --ids 3,1,4 [--positions all|0,5,-1] --json`: logits of the given positions
 * (negative counts from the end) as `{ positions, logits }`, or each position's argmax without `--json`.
 *
 * @example
 * ```ts
 * const io = { out: (t: string) => process.stdout.write(t), err: (t: string) => process.stderr.write(t), isTTY: false };
 * await logitsCommand('./fixtures/hf-tiny/mamba2', { ids: '3,1,4,1', positions: '0,-1', json: true }, io);
 * ```
 */
export async function logitsCommand(dir: string, flags: ModelFlags & { ids?: string; positions?: string }, io: CliIO): Promise<void> {
  const ids = parseIds(flags.ids, '--ids');
  const { model } = await openCliModel(dir, flags, io);
  const session = new Session(model);
  const [all] = await session.logitsAll(ids);
  const V = model.spec.vocabSize;
  const T = ids.length;
  let positions: number[];
  if (!flags.positions || flags.positions === 'all') positions = Array.from({ length: T }, (_, i) => i);
  else {
    positions = flags.positions.split(',').map((s) => {
      const n = Number(s.trim());
      if (!Number.isInteger(n) || n >= T || n < -T) throw new StatespaceError('CLI_USAGE', `--positions: ${s} is outside the prompt of ${T} tokens`);
      return n < 0 ? T + n : n;
    });
  }
  const logits = positions.map((p) => Array.from(all.subarray(p * V, (p + 1) * V)));
  if (flags.json) io.out(`${JSON.stringify({ positions, logits })}\n`);
  else for (const [i, p] of positions.entries()) io.out(`position ${p}: argmax ${logits[i].indexOf(Math.max(...logits[i]))}\n`);
  session.dispose();
  model.dispose();
}

/** Flags of `statespace generate`. */
export interface GenerateFlags extends ModelFlags {
  /** `--ids 3,1,4`: the prompt as token ids. */
  ids?: string;
  /** `--prompt "text"`: the prompt as text (needs the folder's tokenizer.json). */
  prompt?: string;
  /** `--max-new-tokens N`. */
  'max-new-tokens'?: string;
  /** `--greedy`: always the most likely token (also when no temperature is given). */
  greedy?: boolean;
  /** `--temperature T`. */
  temperature?: string;
  /** `--top-k K`. */
  'top-k'?: string;
  /** `--top-p P`. */
  'top-p'?: string;
  /** `--repetition-penalty R`. */
  'repetition-penalty'?: string;
  /** `--seed S`: the sampler's seed (default: a random one, reported on stderr and in `--json`). */
  seed?: string;
  /** `--ignore-eos`: produce exactly max-new-tokens. */
  'ignore-eos'?: boolean;
}

/**
 * `statespace generate <modelDir> --ids 3,1,4 --max-new-tokens 16 --greedy --json`: new tokens after a prompt
 * (`--ids`, or `--prompt` text when the folder has a tokenizer). With `--json` it prints `{ tokens }` and runs
 * past EOS to `--max-new-tokens`, as the fixtures' reference tokens do; a sampled run adds the `seed` it used.
 *
 * @example
 * ```ts
 * const io = { out: (t: string) => process.stdout.write(t), err: (t: string) => process.stderr.write(t), isTTY: false };
 * await generateCommand('./fixtures/hf-tiny/bamba', { ids: '3,1,4', 'max-new-tokens': '8', greedy: true, json: true }, io);
 * // {"tokens":[...8 ids]}
 * ```
 */
export async function generateCommand(dir: string, flags: GenerateFlags, io: CliIO): Promise<void> {
  const options = samplingFlags(flags, 16);
  // The fixtures' reference tokens come from generate(min_new_tokens=max) without eos: --json keeps going past eos unless asked.
  options.ignoreEos = flags['ignore-eos'] ?? !!flags.json;
  const loaded = await openCliModel(dir, flags, io);
  const { model } = loaded;
  let tokenizer: TextCodec | undefined;
  let ids: number[];
  if (flags.prompt !== undefined) {
    tokenizer = await loadCodec(loaded);
    ids = tokenizer.encode(flags.prompt);
  } else ids = parseIds(flags.ids, '--ids');
  const session = new Session(model);
  const tokens: number[] = [];
  const stream = tokenizer?.streamer();
  const t0 = performance.now();
  let tFirst = 0;
  for await (const t of session.generate(ids, options)) {
    if (!tFirst) tFirst = performance.now();
    tokens.push(t);
    if (!flags.json && stream) io.out(stream.push(t));
  }
  const t1 = performance.now();
  if (flags.json) io.out(`${JSON.stringify(options.sampled ? { tokens, seed: options.seed } : { tokens })}\n`);
  else {
    if (stream) io.out(`${stream.end()}\n`);
    else io.out(`${tokens.join(' ')}\n`);
    const decodeRate = tokens.length > 1 ? ((tokens.length - 1) * 1000) / (t1 - tFirst) : 0;
    io.err(`${ids.length} prompt tokens in ${(tFirst - t0).toFixed(0)} ms, ${tokens.length} new tokens, ${decodeRate.toFixed(1)} tok/s decode${options.sampled ? `; seed ${options.seed}` : ''}\n`);
  }
  session.dispose();
  model.dispose();
}

/** Minimal text codec the CLI needs from @statespace/tokenizer. */
export interface TextCodec {
  /** Token ids of a text (with the tokenizer's special tokens). */
  encode(text: string): number[];
  /** Text of token ids. */
  decode(ids: number[]): string;
  /** A streaming detokenizer: `push(id)` returns the text that became final, `end()` the rest. */
  streamer(): { push(id: number): string; end(): string };
}

/**
 * Loads the tokenizer of a model folder (throws TOKENIZER_MISSING when there is none, ending with `instead`:
 * what the user can do without one).
 *
 * @example
 * ```ts
 * const loaded = await openCliModel('./models/default', {}, processIO);
 * const codec = await loadCodec(loaded);
 * const ids = codec.encode('And the LORD said');
 * ```
 */
export async function loadCodec(loaded: LoadedModel, instead = 'pass --ids instead of --prompt'): Promise<TextCodec> {
  const files = await loaded.folder.tokenizer();
  if (!files.tokenizer) throw new StatespaceError('TOKENIZER_MISSING', `${loaded.folder.name} has no tokenizer.json; ${instead}`);
  const { codecFromFiles } = await import('./codec.js');
  return codecFromFiles(files);
}

/**
 * `statespace inspect <modelDir>`: architecture, layer pattern, parameter counts by kind and weight bytes,
 * from config.json alone (no weights are read).
 *
 * @example
 * ```ts
 * const io = { out: (t: string) => process.stdout.write(t), err: (t: string) => process.stderr.write(t), isTTY: false };
 * await inspectCommand('./fixtures/hf-tiny/jamba', { json: true }, io); // {"architecture":"JambaForCausalLM","pattern":"MMMA",...}
 * ```
 */
export async function inspectCommand(dir: string, flags: ModelFlags, io: CliIO): Promise<void> {
  const { spec, family, config } = await readModelSpec(dir);
  const { modelWeights } = await import('@statespace/hybrid');
  const weights = modelWeights(spec);
  const byKind: Record<string, number> = {};
  for (const w of weights) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    const kind = w.name === spec.embedding || w.name === spec.lmHead ? 'embedding' : /mixer\.(experts|shared_experts|gate|fc[12]_latent_proj)\./.test(w.name) ? 'mlp' : /mixer|mamba|self_attn|linear_attn|\.conv\./.test(w.name) ? 'mixer' : /mlp|feed_forward|experts/.test(w.name) ? 'mlp' : 'norm';
    byKind[kind] = (byKind[kind] ?? 0) + n;
  }
  const params = Object.values(byKind).reduce((a, b) => a + b, 0);
  // State per sequence: SSM and conv states are fixed; each attention layer adds K and V per token (f32).
  let fixedStateBytes = 0;
  let kvBytesPerToken = 0;
  for (const b of spec.blocks) {
    for (const m of b.mixers) {
      const c = m.config as Record<string, number>;
      if (m.kind === 'attention') kvBytesPerToken += 2 * c.numKeyValueHeads * c.headDim * 4;
      else if (m.kind === 'mamba1') fixedStateBytes += 4 * c.intermediateSize * (c.stateSize + c.convKernel - 1);
      else if (m.kind === 'mamba2') fixedStateBytes += 4 * (c.numHeads * c.headDim * c.stateSize + (c.numHeads * c.headDim + 2 * c.nGroups * c.stateSize) * (c.convKernel - 1));
      else if (m.kind === 'gated_deltanet') fixedStateBytes += 4 * (c.numValueHeads * c.headKDim * c.headVDim + (2 * c.numKeyHeads * c.headKDim + c.numValueHeads * c.headVDim) * (c.convKernel - 1));
      else if (m.kind === 'short_conv') fixedStateBytes += 4 * c.hiddenSize * (c.convKernel - 1); // LFM2: the last k-1 gated inputs
      else if (m.kind === 'mamba3') fixedStateBytes += 4 * c.numHeads * mamba3StateStride(mamba3Dims(m.config as unknown as Mamba3Config)); // S, k/v of the last token, angles
    }
    if (b.sharedBlock) {
      const a = b.sharedBlock.attention as Record<string, number>;
      kvBytesPerToken += 2 * a.numKeyValueHeads * a.headDim * 4; // Zamba2: each application site keeps its own cache
    }
  }
  // What each layer holds: sequence mixers and feed-forward kinds by count, and the MoE routing of the first MoE layer.
  const mixerCounts: Record<string, number> = {};
  const channelCounts: Record<string, number> = {};
  for (const b of spec.blocks) {
    for (const m of b.mixers) mixerCounts[m.kind] = (mixerCounts[m.kind] ?? 0) + 1;
    if (b.channel) {
      const k = b.channel.kind === 'moe' ? `moe_${b.channel.expertKind ?? 'glu'}` : b.channel.kind;
      channelCounts[k] = (channelCounts[k] ?? 0) + 1;
    }
  }
  const moeSpec = spec.blocks.map((b) => b.channel).find((ch) => ch?.kind === 'moe');
  const moe =
    moeSpec?.kind === 'moe'
      ? {
          experts: moeSpec.numExperts,
          topK: moeSpec.topK,
          router: moeSpec.routing ? 'sigmoid_grouped' : 'softmax',
          ...(moeSpec.routing ? { groups: moeSpec.routing.nGroup, groupsKept: moeSpec.routing.topkGroup, scale: moeSpec.routing.scale } : {}),
          normTopK: moeSpec.normTopK,
          sharedExpert: !!moeSpec.shared,
          ...(moeSpec.latent ? { latentSize: moeSpec.latent.size } : {}),
        }
      : undefined;
  // Mamba-3 layers: SISO or MIMO of which rank, the rotary share, the output norm (from the first such layer)
  const m3 = spec.blocks.flatMap((b) => b.mixers).find((m) => m.kind === 'mamba3')?.config as unknown as Mamba3Config | undefined;
  const mamba3 = m3
    ? { mimo: m3.mimo, rank: mamba3Dims(m3).rank, ropeFraction: m3.ropeFraction, rotaryAngles: mamba3Dims(m3).angles, heads: m3.numHeads, headDim: m3.headDim, stateSize: m3.stateSize, groups: m3.nGroups, aFloor: m3.aFloor, outProjNorm: m3.outProjNorm }
    : undefined;
  const memoryByContext = Object.fromEntries([1024, 8192, 32768, 131072].map((L) => [L, { stateBytes: fixedStateBytes + kvBytesPerToken * L }]));
  // mamba_ssm's MambaLMHeadModel has no model_type; its checkpoint pads the vocabulary (statespace returns vocab_size logits).
  const mambaSsm = family.architecture === 'MambaLMHeadModel';
  const multiple = mambaSsm ? config.optional.positiveInt('pad_vocab_size_multiple', 8) : 1;
  const info = {
    architecture: family.architecture,
    modelType: config.optional.string('model_type') ?? (mambaSsm ? 'mamba_ssm' : undefined),
    ...(mambaSsm ? { ssmLayer: config.optional.object('ssm_cfg')?.optional.string('layer', 'Mamba1') ?? 'Mamba1', paddedVocabSize: Math.ceil(spec.vocabSize / multiple) * multiple } : {}),
    pattern: patternOf(spec),
    layers: spec.blocks.length,
    hiddenSize: spec.hiddenSize,
    vocabSize: spec.vocabSize,
    mixers: mixerCounts,
    channels: channelCounts,
    ...(moe ? { moe } : {}),
    ...(mamba3 ? { mamba3 } : {}),
    parameters: params,
    parametersByKind: byKind,
    dtypeOnDisk: config.optional.string('dtype') ?? config.optional.string('torch_dtype'),
    weightBytes: { f32: params * 4, f16: params * 2 },
    stateBytesFixed: fixedStateBytes,
    kvBytesPerToken,
    memoryByContext,
  };
  if (flags.json) io.out(`${JSON.stringify(info)}\n`);
  else {
    io.out(`${info.architecture}  (${info.modelType})\n`);
    const padded = info.paddedVocabSize !== undefined && info.paddedVocabSize !== info.vocabSize ? ` (padded to ${info.paddedVocabSize} in the checkpoint; the padded rows are not loaded)` : '';
    io.out(`layers ${info.layers}, hidden ${info.hiddenSize}, vocab ${info.vocabSize}${padded}\n`);
    if (info.ssmLayer) io.out(`mamba_ssm format, ssm_cfg.layer ${info.ssmLayer}\n`);
    io.out(`pattern ${info.pattern}\n`);
    const counts = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} x${v}`).join(', ');
    io.out(`mixers: ${counts(mixerCounts) || 'none'}; feed-forward: ${counts(channelCounts) || 'none'}\n`);
    if (moe) {
      const route = moe.router === 'sigmoid_grouped' ? `sigmoid scores + correction bias, ${moe.groupsKept} of ${moe.groups} groups, scale ${moe.scale}` : 'softmax';
      io.out(`moe: ${moe.experts} experts, top ${moe.topK} (${route}${moe.normTopK ? ', renormalised' : ''})${moe.sharedExpert ? ', shared expert' : ''}${moe.latentSize ? `, latent ${moe.latentSize}` : ''}\n`);
    }
    if (mamba3) {
      const kind = mamba3.mimo ? `MIMO rank ${mamba3.rank}` : 'SISO';
      io.out(`mamba3: ${kind}, ${mamba3.heads} heads x ${mamba3.headDim}, d_state ${mamba3.stateSize}, ${mamba3.groups} group${mamba3.groups > 1 ? 's' : ''}, rope_fraction ${mamba3.ropeFraction} (${mamba3.rotaryAngles} angles), A_floor ${mamba3.aFloor}${mamba3.outProjNorm ? ', output norm' : ''}; trapezoidal discretisation\n`);
    }
    io.out(`parameters ${(params / 1e6).toFixed(2)}M: ${Object.entries(byKind).map(([k, v]) => `${k} ${(v / 1e6).toFixed(2)}M`).join(', ')}\n`);
    io.out(`weights ${(params * 4 / 2 ** 20).toFixed(1)} MiB in f32, ${(params * 2 / 2 ** 20).toFixed(1)} MiB in f16\n`);
    io.out(`state per sequence: ${(fixedStateBytes / 2 ** 10).toFixed(0)} KiB fixed (SSM + conv) + ${(kvBytesPerToken / 2 ** 10).toFixed(1)} KiB per token (KV cache)\n`);
    for (const [L, m] of Object.entries(memoryByContext)) io.out(`  at ${L} tokens: ${(m.stateBytes / 2 ** 20).toFixed(1)} MiB of state\n`);
  }
}
