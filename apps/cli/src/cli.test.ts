/**
 * The command line contract, run in process through `main` (the binary only
 * dispatches to it), plus one spawn of the real binary. Every family's fixture
 * must match transformers through `statespace logits` and `statespace generate`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { main } from './main.js';
import { chatCommand } from './text-commands.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURES = `${ROOT}fixtures/hf-tiny/`;
const AWKWARD = ['mamba1_awkward', 'mamba2_awkward', 'llama_awkward', 'granitemoehybrid_awkward']; // vocab 331, hidden 56-80 (fixtures/README.md)
const FAMILIES = ['mamba1', 'falcon_mamba', 'mamba2', 'llama', 'jamba', 'bamba', 'granitemoehybrid', 'granitemoehybrid_moe', 'nemotron_h', 'falcon_h1', 'qwen3_next', 'zamba2', ...AWKWARD];

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += t), err: (t) => (err += t), isTTY: false });
  return { code, out, err };
}

describe.each(FAMILIES)('%s through the CLI', (name) => {
  const ref = JSON.parse(readFileSync(`${FIXTURES}${name}/reference.json`, 'utf8'));
  it('statespace logits matches transformers within 1e-4 at the recorded positions', async () => {
    const positions = [0, ...Object.keys(ref.logits_rows_sample).map(Number), -1];
    const r = await cli('logits', `${FIXTURES}${name}`, '--ids', ref.input_ids.join(','), '--positions', positions.join(','), '--json');
    expect(r.code, r.err).toBe(0);
    const json = JSON.parse(r.out);
    expect(json.positions).toEqual(positions.map((p: number) => (p < 0 ? ref.input_ids.length + p : p)));
    const expected = [ref.logits_first, ...Object.values(ref.logits_rows_sample), ref.logits_last] as number[][];
    json.logits.forEach((row: number[], i: number) => {
      const err = Math.max(...row.map((v, j) => Math.abs(v - expected[i][j])));
      expect(err, `position ${json.positions[i]}`).toBeLessThan(1e-4);
    });
  });
  it('statespace generate --greedy gives the 16 reference tokens', async () => {
    const r = await cli('generate', `${FIXTURES}${name}`, '--ids', ref.input_ids.join(','), '--max-new-tokens', '16', '--greedy', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).tokens).toEqual(ref.greedy_new_tokens);
  });
});

describe('text commands', () => {
  const dflt = `${ROOT}models/default`;
  const model = JSON.parse(readFileSync(`${dflt}/reference.json`, 'utf8'));
  it('tokenize and detokenize round-trip with the default model tokenizer', async () => {
    const r = await cli('tokenize', dflt, '--text', 'In the beginning God created the heaven and the earth.', '--json');
    expect(r.code, r.err).toBe(0);
    const { ids } = JSON.parse(r.out);
    expect(ids.length).toBeGreaterThan(3);
    const d = await cli('detokenize', dflt, '--ids', ids.join(','), '--json');
    expect(JSON.parse(d.out).text).toBe('In the beginning God created the heaven and the earth.');
  });
  it('the default model reproduces transformers greedy continuation', async () => {
    const p = model.prompts?.[0] ?? model[0];
    const ids: number[] = p.input_ids;
    const want: number[] = (p.greedy_new_tokens as number[]).slice(0, 8);
    const r = await cli('generate', dflt, '--ids', ids.join(','), '--max-new-tokens', '8', '--greedy', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).tokens).toEqual(want);
  });
  // The second recorded prompt and the text of transformers' first greedy tokens for it.
  const moses = model.prompts[1] as { prompt: string; input_ids: number[]; greedy_new_tokens: number[] };
  const textOf = async (ids: number[]) => JSON.parse((await cli('detokenize', dflt, '--ids', ids.join(','), '--json')).out).text as string;
  it('the recorded prompt tokenizes to transformers ids', async () => {
    const r = await cli('tokenize', dflt, '--text', moses.prompt, '--json');
    expect(JSON.parse(r.out).ids).toEqual(moses.input_ids);
  });
  it('statespace chat answers each line, and /save, /reset and /load manage the state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ss-chat-'));
    let out = '';
    let err = '';
    const input = Readable.from([`${moses.prompt}\n`, `/save ${dir}/s.bin\n`, '/reset\n', `/load ${dir}/s.bin\n`, '/quit\n']);
    await chatCommand(dflt, { 'max-new-tokens': '3', greedy: true }, { out: (t) => (out += t), err: (t) => (err += t), isTTY: false }, input);
    // no chat template: a plain continuation, transformers' 3 greedy tokens
    expect(out).toBe(`${await textOf(moses.greedy_new_tokens.slice(0, 3))}\n`);
    expect(err).toMatch(/saved (\d+) tokens of state/);
    expect(err).toMatch(/state cleared/);
    const saved = Number(/saved (\d+) tokens/.exec(err)![1]);
    expect(err).toContain(`loaded ${saved} tokens of state`);
  });
  it('statespace run streams text and reports tokens/s', async () => {
    const r = await cli('run', dflt, '--prompt', moses.prompt, '--max-new-tokens', '4', '--greedy');
    expect(r.code, r.err).toBe(0);
    expect(r.out.trimEnd()).toBe(moses.prompt + (await textOf(moses.greedy_new_tokens.slice(0, 4))));
    expect(r.err).toMatch(/decode 4 tokens: [\d.]+ tok\/s/);
    // the shaders compile in a warm-up, so prefill tok/s measures the prefill alone
    expect(r.err).toMatch(/shaders compiled in a \d+ ms warm-up; prefill \d+ tokens: [\d.]+ tok\/s/);
  });
  it('chat goes on after /load of a missing file, and answers the next line', async () => {
    let out = '';
    let err = '';
    const input = Readable.from(['/load /nonexistent/state.bin\n', `${moses.prompt}\n`, '/quit\n']);
    await chatCommand(dflt, { 'max-new-tokens': '3', greedy: true }, { out: (t) => (out += t), err: (t) => (err += t), isTTY: false }, input);
    expect(err).toMatch(/load \/nonexistent\/state\.bin: .*no such file.*\[ENOENT\]/);
    // the failed load left a fresh state: the answer is the plain continuation
    expect(out).toBe(`${await textOf(moses.greedy_new_tokens.slice(0, 3))}\n`);
  });
  it('chat on a model without a tokenizer says what works instead', async () => {
    const r = await cli('chat', `${FIXTURES}mamba2`);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/has no tokenizer\.json; chat needs one.*generate --ids works without.*\[TOKENIZER_MISSING\]/);
  });
});

describe('sampling seeds', () => {
  const ref = JSON.parse(readFileSync(`${FIXTURES}mamba2/reference.json`, 'utf8'));
  const sample = (...extra: string[]) => cli('generate', `${FIXTURES}mamba2`, '--ids', ref.input_ids.join(','), '--max-new-tokens', '12', '--temperature', '1.5', '--json', ...extra);
  it('--seed N repeats a sampled run exactly and is echoed in --json', async () => {
    const a = await sample('--seed', '42');
    const b = await sample('--seed', '42');
    expect(a.code, a.err).toBe(0);
    expect(JSON.parse(a.out)).toEqual(JSON.parse(b.out));
    expect(JSON.parse(a.out).seed).toBe(42);
    const tokens: number[] = JSON.parse(a.out).tokens;
    expect(tokens).toHaveLength(12);
    expect(tokens.every((t) => Number.isInteger(t) && t >= 0 && t < ref.logits_last.length)).toBe(true);
    // at temperature 1.5 the run is not the greedy one, and another seed draws other tokens
    expect(tokens).not.toEqual(ref.greedy_new_tokens.slice(0, 12));
    expect(JSON.parse((await sample('--seed', '43')).out).tokens).not.toEqual(tokens);
  });
  it('without --seed each run draws its own seed, and that seed repeats the run', async () => {
    const runs = [JSON.parse((await sample()).out), JSON.parse((await sample()).out)];
    expect(runs[0].seed).not.toBe(runs[1].seed);
    for (const r of runs) expect(JSON.parse((await sample('--seed', String(r.seed))).out).tokens).toEqual(r.tokens);
  });
});

describe('errors', () => {
  it('--top-p 5 is an INVALID_ARGUMENT with exit status 2, before any model loads', async () => {
    const r = await cli('generate', '/nonexistent/model', '--ids', '1,2', '--temperature', '0.8', '--top-p', '5');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--top-p must be in \(0, 1\].*got 5 \[INVALID_ARGUMENT\]/);
  });
  it('negative numbers are values: --positions -1 is the last position', async () => {
    const ref = JSON.parse(readFileSync(`${FIXTURES}mamba2/reference.json`, 'utf8'));
    const r = await cli('logits', `${FIXTURES}mamba2`, '--ids', ref.input_ids.join(','), '--positions', '-1', '--json');
    expect(r.code, r.err).toBe(0);
    const json = JSON.parse(r.out);
    expect(json.positions).toEqual([ref.input_ids.length - 1]);
    expect(Math.max(...json.logits[0].map((v: number, j: number) => Math.abs(v - ref.logits_last[j])))).toBeLessThan(1e-4);
  });
  it('a missing flag is a usage error with exit status 2', async () => {
    const r = await cli('logits', `${FIXTURES}mamba2`, '--json');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--ids needs a comma-separated list.*\[CLI_USAGE\]/);
  });
  it('an unknown architecture names itself and what is supported', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ss-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }));
    const r = await cli('inspect', dir);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/model_type "gpt2".*not supported.*mamba2.*\[UNKNOWN_ARCHITECTURE\]/);
  });
  it('a missing model folder is one readable line with a code', async () => {
    const r = await cli('generate', '/nonexistent/model', '--ids', '1,2');
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/\[CHECKPOINT_FILE_NOT_FOUND\]/);
  });
  it('bench measures a composed hybrid and reports state by kind', async () => {
    const r = await cli('bench', '--pattern', 'MMAM', '--hidden', '64', '--vocab', '97', '--prompt', '16', '--steps', '2', '--json');
    expect(r.code, r.err).toBe(0);
    const b = JSON.parse(r.out);
    expect(b.pattern).toBe('MMAM');
    expect(b.decodeTokS).toBeGreaterThan(0);
    expect(b.memory.kv).toBeGreaterThan(0);
    expect(b.memory.ssm).toBeGreaterThan(0);
  });
  it('inspect describes a hybrid', async () => {
    const r = await cli('inspect', `${FIXTURES}jamba`, '--json');
    expect(r.code, r.err).toBe(0);
    const info = JSON.parse(r.out);
    expect(info.pattern).toBe('MMMA');
    expect(info.architecture).toBe('JambaForCausalLM');
    // one attention layer of 4 KV heads x 16: K and V in f32 per token
    expect(info.kvBytesPerToken).toBe(2 * 4 * 16 * 4);
    expect(info.memoryByContext[8192].stateBytes).toBe(info.stateBytesFixed + 8192 * info.kvBytesPerToken);
  });
});

describe('the statespace binary', () => {
  it('runs as a separate process: --help, then generate --json', () => {
    const run = (args: string[]) => spawnSync(process.execPath, ['--conditions=@statespace/source', '--import', 'tsx', `${ROOT}apps/cli/src/cli.ts`, ...args], { encoding: 'utf8', cwd: ROOT, timeout: 240_000 });
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/logits.*\n.*generate/s);
    const ref = JSON.parse(readFileSync(`${FIXTURES}mamba2/reference.json`, 'utf8'));
    const gen = run(['generate', `${FIXTURES}mamba2`, '--ids', ref.input_ids.join(','), '--max-new-tokens', '16', '--greedy', '--json']);
    expect(gen.status, gen.stderr).toBe(0);
    expect(JSON.parse(gen.stdout).tokens).toEqual(ref.greedy_new_tokens);
  });
});
