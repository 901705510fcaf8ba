/**
 * The built binary writing into a real pipe whose reader is slow: every byte must arrive, and the
 * process must end by itself with the command's status. (A pipe buffers 64 KiB; the rest is written
 * asynchronously, so exiting as soon as the command returns used to cut the output there.)
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = `${ROOT}apps/cli/dist/cli.js`;

/**
 * Runs `statespace ARGS | (sleep 1; cat)` in a shell: stdout is an OS pipe (64 KiB of buffer) whose
 * reader starts a second late, so most of the output is still waiting when the command returns.
 * (Node's own child stdio is a socketpair with a larger buffer, too lenient for this.)
 */
function runIntoSlowPipe(args: string[]): Promise<{ code: number; out: Buffer; err: string }> {
  return new Promise((resolve, reject) => {
    const script = '{ "$0" "$@"; echo "statespace exit status $?" >&2; } | { sleep 1; exec cat; }';
    const child = spawn('sh', ['-c', script, process.execPath, BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STATESPACE_DEBUG: '1' } });
    const chunks: Buffer[] = [];
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', reject);
    child.on('close', () => {
      const status = /statespace exit status (\d+)/.exec(err);
      resolve({ code: status ? Number(status[1]) : -1, out: Buffer.concat(chunks), err });
    });
  });
}

describe('statespace into a slow pipe', () => {
  it('the binary is built (pnpm turbo run build --filter=@statespace/cli...)', () => {
    expect(existsSync(BIN), BIN).toBe(true);
  });

  it('tokenize --json over 64 KiB arrives whole', async () => {
    const text = 'In the beginning God created the heaven and the earth. '.repeat(2000);
    const r = await runIntoSlowPipe(['tokenize', `${ROOT}models/default`, '--text', text, '--json']);
    expect(r.code, r.err).toBe(0);
    expect(r.out.length).toBeGreaterThan(80 * 1024);
    const { ids } = JSON.parse(r.out.toString('utf8'));
    // 11 tokens a sentence with this tokenizer, plus whatever special tokens it adds
    expect(ids.length).toBeGreaterThanOrEqual(2000 * 11);
  }, 60_000);

  it('logits --positions all --json (a GPU command) arrives whole with exit status 0', async () => {
    const ref = JSON.parse(readFileSync(`${ROOT}fixtures/hf-tiny/mamba2/reference.json`, 'utf8'));
    const ids: number[] = [...ref.input_ids, ...ref.input_ids, ...ref.input_ids];
    const r = await runIntoSlowPipe(['logits', `${ROOT}fixtures/hf-tiny/mamba2`, '--ids', ids.join(','), '--positions', 'all', '--json']);
    expect(r.code, r.err).toBe(0);
    expect(r.out.length).toBeGreaterThan(100 * 1024);
    const json = JSON.parse(r.out.toString('utf8'));
    expect(json.positions).toEqual(ids.map((_, i) => i));
    expect(json.logits).toHaveLength(ids.length);
    expect(json.logits[0][0]).toBeCloseTo(ref.logits_first[0], 2);
    // the process ended by itself once the output was written (the destroyed device holds nothing)
    expect(r.err).not.toMatch(/event loop was still busy/);
    // the lavapipe adapter Dawn cannot use is no longer probed (its warning took three lines of stderr)
    expect(r.err).not.toMatch(/ArrayDynamicIndexing/);
  }, 90_000);
});
