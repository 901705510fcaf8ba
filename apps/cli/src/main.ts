/**
 * `statespace <command>`: dispatch, --help for every command, and errors as one
 * readable line with the typed error's code and a non-zero exit status.
 */
import { parseArgs } from 'node:util';
import { StatespaceError } from '@statespace/core';
import { generateCommand, inspectCommand, logitsCommand } from './commands.js';
import { benchCommand } from './bench-command.js';
import { chatCommand, detokenizeCommand, runCommand, startCommand, tokenizeCommand } from './text-commands.js';
import type { CliIO } from './io.js';

/** One `statespace` command: help text, flags and what it runs. */
export interface CommandDef {
  summary: string;
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>;
  run(positionals: string[], values: Record<string, unknown>, io: CliIO): Promise<void>;
}

const modelOptions = { dtype: { type: 'string' as const }, json: { type: 'boolean' as const } };
const samplingOptions = {
  'max-new-tokens': { type: 'string' as const },
  greedy: { type: 'boolean' as const },
  temperature: { type: 'string' as const },
  'top-k': { type: 'string' as const },
  'top-p': { type: 'string' as const },
  'repetition-penalty': { type: 'string' as const },
  seed: { type: 'string' as const },
  'ignore-eos': { type: 'boolean' as const },
};

/** Every command, with its flags and help text. Extra commands register here. */
export const commands: Record<string, CommandDef> = {
  logits: {
    summary: 'print logits of a prompt given as token ids',
    usage: 'statespace logits <modelDir> --ids 3,1,4,1 [--positions all|0,5,-1] [--dtype f32|f16|bf16|q8|keep] [--json]',
    options: { ...modelOptions, ids: { type: 'string' }, positions: { type: 'string' } },
    run: (p, v, io) => logitsCommand(p[0], v, io),
  },
  generate: {
    summary: 'generate tokens after a prompt (ids, or text with a tokenizer)',
    usage: 'statespace generate <modelDir> (--ids 3,1,4 | --prompt "text") [--max-new-tokens 16] [--greedy | --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1] [--repetition-penalty 1.1] [--json]',
    options: { ...modelOptions, ...samplingOptions, ids: { type: 'string' }, prompt: { type: 'string' } },
    run: (p, v, io) => generateCommand(p[0], v, io),
  },
  run: {
    summary: 'stream a continuation of a text prompt, with a loading bar and tokens/s',
    usage: 'statespace run <modelDir> --prompt "text" [--max-new-tokens 128] [--temperature 0.8 --top-p 0.95 --seed 1] [--dtype f16]',
    options: { ...modelOptions, ...samplingOptions, prompt: { type: 'string' } },
    run: (p, v, io) => runCommand(p[0], v, io),
  },
  chat: {
    summary: 'interactive chat (chat template when the model has one; /reset, /save FILE, /load FILE, /quit)',
    usage: 'statespace chat <modelDir> [--temperature 0.7 --top-p 0.9] [--max-new-tokens 256]',
    options: { ...modelOptions, ...samplingOptions },
    run: (p, v, io) => chatCommand(p[0], v, io),
  },
  start: {
    summary: 'generate with the embedded default model (the README\'s main job)',
    usage: 'statespace start [--prompt "text"] [--max-new-tokens 64]',
    options: { ...modelOptions, ...samplingOptions, prompt: { type: 'string' } },
    run: (_p, v, io) => startCommand(v, io),
  },
  tokenize: {
    summary: 'token ids of a text',
    usage: 'statespace tokenize <tokenizer.json | modelDir> --text "..." [--no-special] [--json]',
    options: { json: { type: 'boolean' }, text: { type: 'string' }, 'no-special': { type: 'boolean' } },
    run: (p, v, io) => tokenizeCommand(p[0], v, io),
  },
  detokenize: {
    summary: 'text of token ids',
    usage: 'statespace detokenize <tokenizer.json | modelDir> --ids 1,2,3 [--skip-special] [--json]',
    options: { json: { type: 'boolean' }, ids: { type: 'string' }, 'skip-special': { type: 'boolean' } },
    run: (p, v, io) => detokenizeCommand(p[0], v, io),
  },
  bench: {
    summary: 'prefill and decode speed of a model folder or a composed hybrid on this adapter',
    usage: 'statespace bench [<modelDir> | --pattern MMMAMMMM [--hidden 256 --vocab 4096]] [--prompt 256] [--steps 16] [--dtype f32|f16] [--json]',
    options: { ...modelOptions, pattern: { type: 'string' }, hidden: { type: 'string' }, vocab: { type: 'string' }, prompt: { type: 'string' }, steps: { type: 'string' } },
    run: (p, v, io) => benchCommand(p[0], v, io),
  },
  inspect: {
    summary: 'show architecture, layer pattern, parameters and memory of a model folder',
    usage: 'statespace inspect <modelDir> [--json]',
    options: { json: { type: 'boolean' } },
    run: (p, v, io) => inspectCommand(p[0], v, io),
  },
};

/**
 * `--positions -1`, `--temperature -0.5`: parseArgs reads a value that starts with `-` as an option of
 * its own and stops; a negative number after an option that takes a value is that option's value.
 */
function joinNegativeValues(args: string[], options: CommandDef['options']): string[] {
  const takesValue = new Set<string>();
  for (const [name, o] of Object.entries(options)) {
    if (o.type !== 'string') continue;
    takesValue.add(`--${name}`);
    if (o.short) takesValue.add(`-${o.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1];
    if (takesValue.has(args[i]) && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${args[i]}=${next}`);
      i++;
    } else out.push(args[i]);
  }
  return out;
}

function helpText(): string {
  const lines = ['statespace: state space and hybrid language models on WebGPU', '', 'usage: statespace <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  lines.push('', 'statespace <command> --help shows a command\'s options.');
  return `${lines.join('\n')}\n`;
}

/**
 * Runs one command line; returns the exit status (0 ok, 1 error, 2 usage error or a flag out of range).
 * Errors are written to `io.err` as one line ending in the error's code, e.g. `[CHECKPOINT_FILE_NOT_FOUND]`.
 *
 * @example
 * ```ts
 * import { main, processIO } from '@statespace/cli';
 * const status = await main(['inspect', './fixtures/hf-tiny/bamba', '--json'], processIO);
 * process.exitCode = status;
 * ```
 */
export async function main(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(helpText());
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    io.err(`statespace: unknown command "${name}" [CLI_USAGE]\n${helpText()}`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({ args: joinNegativeValues(rest, cmd.options), options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    if (values.help) {
      io.out(`${cmd.summary}\n\nusage: ${cmd.usage}\n`);
      return 0;
    }
    await cmd.run(positionals, values, io);
    return 0;
  } catch (error) {
    if (StatespaceError.is(error)) {
      io.err(`statespace ${name}: ${error.message} [${error.code}]\n`);
      return error.code === 'CLI_USAGE' || error.code === 'INVALID_ARGUMENT' ? 2 : 1;
    }
    const e = error as { code?: string; message?: string };
    if (typeof e?.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) {
      io.err(`statespace ${name}: ${e.message} [CLI_USAGE]\nusage: ${cmd.usage}\n`);
      return 2;
    }
    io.err(`statespace ${name}: unexpected error: ${e?.message ?? String(error)} [INTERNAL]\n`);
    if (process.env.STATESPACE_DEBUG) io.err(`${(error as Error)?.stack}\n`);
    return 1;
  }
}
