/**
 * Commands that work with text: tokenize / detokenize, run (stream a
 * continuation), chat (interactive, with the chat template and session state
 * commands), start (the README's main job with the embedded default model).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { fileURLToPath } from 'node:url';
import { StatespaceError } from '@statespace/core';
import { type HybridModel, Session } from '@statespace/hybrid';
import { type Tokenizer, loadTokenizer } from '@statespace/tokenizer';
import { parseIds } from './args.js';
import { type SamplingChoice, samplingFlags } from './sampling-flags.js';
import { type GenerateFlags, getRuntime, loadCodec, openCliModel } from './commands.js';
import type { CliIO } from './io.js';

/**
 * The folder of the default model: the `@statespace/default-model` package the CLI depends on, found
 * by Node's resolution from wherever the CLI is installed (a project, `npx`, a global install).
 *
 * @example
 * ```ts
 * const dir = await defaultModelDir(); // .../node_modules/@statespace/default-model/model/
 * ```
 */
export async function defaultModelDir(): Promise<string> {
  let url: URL;
  try {
    ({ defaultModelUrl: url } = await import('@statespace/default-model'));
  } catch (cause) {
    throw new StatespaceError('DEFAULT_MODEL_MISSING', 'the default model package is not installed: npm install @statespace/default-model', { cause });
  }
  const dir = fileURLToPath(url);
  if (!existsSync(`${dir}config.json`)) {
    throw new StatespaceError('DEFAULT_MODEL_MISSING', `@statespace/default-model has no model files at ${dir} (in the repository, build it: pnpm turbo run build --filter=@statespace/default-model)`);
  }
  return dir;
}

async function tokenizerAt(path: string): Promise<Tokenizer> {
  if (!path) throw new StatespaceError('CLI_USAGE', 'missing <tokenizer.json or model dir>');
  return loadTokenizer(path);
}

/** `statespace tokenize <tokenizer.json|dir> --text "..." [--json]` */
export async function tokenizeCommand(path: string, flags: { text?: string; json?: boolean; 'no-special'?: boolean }, io: CliIO): Promise<void> {
  if (flags.text === undefined) throw new StatespaceError('CLI_USAGE', '--text is required');
  const tok = await tokenizerAt(path);
  const ids = tok.encode(flags.text, { addSpecialTokens: !flags['no-special'] });
  io.out(flags.json ? `${JSON.stringify({ ids })}\n` : `${ids.join(',')}\n`);
}

/** `statespace detokenize <tokenizer.json|dir> --ids 1,2,3 [--json]` */
export async function detokenizeCommand(path: string, flags: { ids?: string; json?: boolean; 'skip-special'?: boolean }, io: CliIO): Promise<void> {
  const ids = parseIds(flags.ids, '--ids');
  const tok = await tokenizerAt(path);
  const text = tok.decode(ids, { skipSpecialTokens: !!flags['skip-special'] });
  io.out(flags.json ? `${JSON.stringify({ text })}\n` : `${text}\n`);
}

/**
 * Runs the generation once on a throwaway session (the prompt, capped, and two new tokens) so that
 * the timed run reports prefill and decode speed without the shaders' compilation. Returns its ms.
 */
async function warmUp(model: HybridModel, ids: readonly number[], options: SamplingChoice): Promise<number> {
  const t0 = performance.now();
  const warm = new Session(model);
  for await (const _ of warm.generate(ids.slice(0, 128), { ...options, maxNewTokens: 2, ignoreEos: true, seed: 0 }));
  warm.dispose();
  return performance.now() - t0;
}

/** Streams a continuation of `prompt` and reports prefill and decode speed on stderr. */
async function streamContinuation(dir: string, prompt: string, flags: GenerateFlags, io: CliIO): Promise<void> {
  const options = samplingFlags(flags, 128);
  const t0 = performance.now();
  const loaded = await openCliModel(dir, flags, io);
  const rt = await getRuntime();
  const codec = await loadCodec(loaded);
  const ids = codec.encode(prompt);
  if (!ids.length) throw new StatespaceError('CLI_USAGE', 'the prompt encodes to no tokens');
  const tLoad = performance.now();
  io.err(`model ${loaded.family.architecture} from ${loaded.folder.name} on ${rt.adapterName}, loaded in ${(tLoad - t0).toFixed(0)} ms\n`);
  const compileMs = await warmUp(loaded.model, ids, options);
  const session = new Session(loaded.model);
  const stream = codec.streamer();
  io.out(prompt);
  let tFirst = 0;
  let n = 0;
  const tStart = performance.now();
  for await (const t of session.generate(ids, options)) {
    if (!tFirst) tFirst = performance.now();
    n++;
    io.out(stream.push(t));
  }
  io.out(`${stream.end()}\n`);
  const tEnd = performance.now();
  const decode = n > 1 ? ((n - 1) * 1000) / (tEnd - tFirst) : 0;
  const seed = options.sampled ? `; seed ${options.seed} (--seed ${options.seed} repeats this run)` : '';
  io.err(`shaders compiled in a ${compileMs.toFixed(0)} ms warm-up; prefill ${ids.length} tokens: ${(((ids.length * 1000) / (tFirst - tStart)) || 0).toFixed(1)} tok/s; decode ${n} tokens: ${decode.toFixed(1)} tok/s${seed}\n`);
  session.dispose();
  loaded.model.dispose();
}

/** `statespace run <modelDir> --prompt "..."` */
export async function runCommand(dir: string, flags: GenerateFlags, io: CliIO): Promise<void> {
  if (flags.prompt === undefined) throw new StatespaceError('CLI_USAGE', '--prompt is required');
  await streamContinuation(dir, flags.prompt, flags, io);
}

/** `statespace start`: the README's main job, a streamed continuation with the embedded default model. */
export async function startCommand(flags: GenerateFlags, io: CliIO): Promise<void> {
  await streamContinuation(await defaultModelDir(), flags.prompt ?? 'And the LORD said unto Moses,', { 'max-new-tokens': '64', temperature: '0.7', 'top-p': '0.9', ...flags }, io);
}

/** `statespace chat <modelDir>`: interactive; /reset, /save FILE, /load FILE, /quit. */
export async function chatCommand(dir: string, flags: GenerateFlags, io: CliIO, input: NodeJS.ReadableStream = process.stdin): Promise<void> {
  const options = samplingFlags(flags, 128);
  const loaded = await openCliModel(dir, flags, io);
  const codec = await loadCodec(loaded, 'chat needs one to read your lines (generate --ids works without)');
  const tok = (codec as unknown as { tokenizer: Tokenizer }).tokenizer;
  const hasTemplate = !!tok.chatTemplate;
  const session = new Session(loaded.model);
  const history: { role: 'user' | 'assistant'; content: string }[] = [];
  let fed = 0; // tokens of the rendered conversation already in the state
  const seed = options.sampled ? `, seed ${options.seed}` : '';
  io.err(`chatting with ${loaded.family.architecture}${hasTemplate ? '' : ' (no chat template: plain continuation)'}${seed}; /reset, /save FILE, /load FILE, /quit\n`);
  const rl = createInterface({ input, terminal: false });
  for await (const line of rl) {
    const text = line.trim();
    if (!text) continue;
    if (text === '/quit' || text === '/exit') break;
    if (text === '/reset') {
      session.reset();
      history.length = 0;
      fed = 0;
      io.err('state cleared\n');
      continue;
    }
    if (text.startsWith('/save ') || text.startsWith('/load ')) {
      const file = text.slice(6).trim();
      // A file that cannot be read or written ends the command, not the conversation.
      try {
        if (text.startsWith('/save ')) {
          await writeFile(file, await session.save());
          io.err(`saved ${session.length} tokens of state\n`);
        } else {
          session.load(new Uint8Array(await readFile(file)));
          fed = session.length;
          io.err(`loaded ${session.length} tokens of state\n`);
        }
      } catch (error) {
        const e = error as { code?: string; message?: string };
        io.err(`${text.slice(1, 5)} ${file}: ${e?.message ?? String(error)} [${StatespaceError.is(error) ? error.code : (e?.code ?? 'INTERNAL')}]\n`);
      }
      continue;
    }
    history.push({ role: 'user', content: text });
    // Only the new part of the conversation is fed: the state already holds the rest.
    const all = hasTemplate ? tok.encodeChat(history, { addGenerationPrompt: true }) : codec.encode(text);
    const fresh = hasTemplate ? all.slice(fed) : all;
    const stream = codec.streamer();
    const out: number[] = [];
    for await (const t of session.generate(fresh, options)) {
      out.push(t);
      io.out(stream.push(t));
    }
    io.out(`${stream.end()}\n`);
    history.push({ role: 'assistant', content: codec.decode(out) });
    fed = session.length;
  }
  session.dispose();
  loaded.model.dispose();
}
