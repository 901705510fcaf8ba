#!/usr/bin/env node
// Mutation run: applies each named mutant (one source edit) in turn, runs the tests most likely to
// catch it, restores the file, and prints which mutants the tests killed and which survived.
//
//   node scripts/mutation/run.mjs                 every mutant, on this checkout
//   node scripts/mutation/run.mjs --root /tmp/wt  on another checkout (a git worktree of an older commit)
//   node scripts/mutation/run.mjs --only rope-sign,ssd-decode-exp2   some mutants
//   node scripts/mutation/run.mjs --list          the mutants and the tests each one runs
//   node scripts/mutation/run.mjs --json out.json also write the results as JSON
//   node scripts/mutation/run.mjs --verbose       print the test output of each killed mutant
//   node scripts/mutation/run.mjs --baseline      first run every test set unmutated (a failing set judges nothing)
//
// Each file is restored in a finally block and on SIGINT/SIGTERM; a mutant whose text is not found
// in its file is reported as `missing` (the code moved) and counts as neither killed nor survived.
// Not part of `pnpm test`: a full run takes 15-25 minutes on a 2-core machine with SwiftShader.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

// Test sets: [package dir, vitest args]. A mutant runs its sets in order and stops at the first failure.
const T = {
  ops: ['packages/core', ['src/ops/ops.test.ts']],
  normGemv: ['packages/core', ['src/ops/norm-gemv.test.ts']],
  ssd: ['packages/ssd', ['src/ssd.test.ts']],
  mamba2Mixer: ['packages/ssd', ['src/mamba2-mixer.test.ts']],
  scan: ['packages/scan-wgsl', ['src/selective-scan.test.ts']],
  conv: ['packages/scan-wgsl', ['src/causal-conv1d.test.ts']],
  attention: ['packages/attention', ['src/flash-attention.test.ts']],
  rope: ['packages/attention', ['src/rope.test.ts']],
  longPrompt: ['packages/scan-wgsl', ['src/long-prompt.test.ts']],
  sampling: ['packages/hybrid', ['src/sampling.test.ts']],
  sampleTokens: ['packages/core', ['src/ops/sample-tokens.test.ts']],
  sessionDistribution: ['packages/hybrid', ['src/session.test.ts', '-t', 'top-p distribution']],
  sessionFork: ['packages/hybrid', ['src/session.test.ts', '-t', 'fork gives']],
  bench: ['apps/demo', ['src/bench.test.ts']],
  chat: ['apps/cli', ['src/cli.test.ts', '-t', 'statespace chat answers']],
  /** Whole-model parity with transformers on some fixtures (fixtures.test.ts, filtered by name). */
  parity: (...names) => ['packages/hybrid', ['src/fixtures.test.ts', '-t', `^(${names.join('|')}) matches`]],
  /** The fused decode kernels inside models (decode-engine.test.ts, filtered by name). */
  fused: (...names) => ['packages/hybrid', ['src/decode-engine.test.ts', '-t', `fused decode kernels.*(${names.map((n) => `${n}:`).join('|')})`]],
};

/**
 * The mutants: `find` is replaced by `replace` in `file` (every occurrence with `all`, else the
 * only one). `find` may list alternatives (the same code before and after a refactor) with one
 * `replace` each; the first found is used. Operator flips in the WGSL kernels and in hybrid's forward.
 */
export const MUTANTS = [
  // core ops
  { name: 'softmax-max-to-min', file: 'packages/core/src/ops/softmax.ts', find: '{ m = max(m, x[base + j] * u.invTemp); }', replace: '{ m = min(m, x[base + j] * u.invTemp); }', tests: [T.ops] },
  { name: 'silu-sign', file: 'packages/core/src/ops/elementwise.ts', find: 'fn silu_(x: f32) -> f32 { return x / (1.0 + exp(-x)); }', replace: 'fn silu_(x: f32) -> f32 { return x / (1.0 + exp(x)); }', tests: [T.ops] },
  { name: 'softplus-threshold-2', file: 'packages/core/src/ops/elementwise.ts', find: 'x, x > 20.0); }', replace: 'x, x > 2.0); }', tests: [T.ops] },
  { name: 'rmsnorm-eps-x100', file: 'packages/core/src/ops/norm.ts', find: 'let inv = inverseSqrt(wgSum(s, li) / f32(u.G) + u.eps);', replace: 'let inv = inverseSqrt(wgSum(s, li) / f32(u.G) + 100.0 * u.eps);', tests: [T.ops, T.parity('mamba2', 'llama')] },
  { name: 'layernorm-mean-dropped', file: 'packages/core/src/ops/norm.ts', find: 'let d = x[base + j] - mean; v += d * d;', replace: 'let d = x[base + j]; v += d * d;', tests: [T.ops] },
  { name: 'matmul-k-from-1', file: 'packages/core/src/ops/matmul.ts', find: 'for (var k = 0u; k < u.K; k++) { acc += x[m * u.K + k]', replace: 'for (var k = 1u; k < u.K; k++) { acc += x[m * u.K + k]', tests: [T.ops] },
  { name: 'gemv-vec4-tail-dropped', file: 'packages/core/src/ops/matmul.ts', find: '      for (; k < KW; k += LANES) {\n        let w0 = w[row + k];', replace: '      for (; k + LANES < KW; k += LANES) {\n        let w0 = w[row + k];', tests: [T.ops, T.fused('llama_awkward', 'mamba1_awkward')] },
  { name: 'gemv-vec4-reduction-short', file: 'packages/core/src/ops/matmul.ts', find: '    for (var s = LANES / 2u; s > 0u; s >>= 1u) {\n      if (lid.x < s) {\n        for (var j = 0u; j < mc; j++)', replace: '    for (var s = LANES / 2u; s > 1u; s >>= 1u) {\n      if (lid.x < s) {\n        for (var j = 0u; j < mc; j++)', tests: [T.ops] },
  { name: 'add-rmsnorm-residual-minus', file: 'packages/core/src/ops/add-rms-norm.ts', find: 'let v = h[base + j] + u.alpha * b[base + j];', replace: 'let v = h[base + j] - u.alpha * b[base + j];', tests: [T.ops, T.parity('mamba1', 'llama')] },
  { name: 'embedding-scale-dropped', file: 'packages/core/src/ops/embedding.ts', find: 'y[i] = loadT(u32(id) * u.D + d) * u.scale;', replace: 'y[i] = loadT(u32(id) * u.D + d);', tests: [T.ops, T.parity('granitemoehybrid')] },
  { name: 'norm-gemv-reduction-short', file: 'packages/core/src/ops/norm-gemv.ts', find: 'for (var st = LANES / 2u; st > 0u; st >>= 1u) {', replace: 'for (var st = LANES / 2u; st > 1u; st >>= 1u) {', tests: [T.normGemv] },
  { name: 'norm-gemv-branch-minus', file: 'packages/core/src/ops/norm-gemv.ts', find: "' v += u.alpha * b[i];", replace: "' v -= u.alpha * b[i];", tests: [T.normGemv] },
  // Mamba-1 kernels
  { name: 'scan-decay-exp2', file: 'packages/scan-wgsl/src/selective-scan.ts', find: 'h[s] = exp(d * A[s]) * h[s] + dx * bS[k];', replace: 'h[s] = exp2(d * A[s]) * h[s] + dx * bS[k];', tests: [T.scan] },
  { name: 'scan-D-skip-minus', file: 'packages/scan-wgsl/src/selective-scan.ts', find: "'out += loadD(ch) * xS[i];'", replace: "'out -= loadD(ch) * xS[i];'", tests: [T.scan] },
  { name: 'scan-softplus-branch', file: 'packages/scan-wgsl/src/selective-scan.ts', find: 'if (v > 0.0) { return v + log1p_unit(exp(-v)); }', replace: 'if (v > 0.0) { return v; }', tests: [T.scan] },
  { name: 'conv-tap-off-by-one', file: 'packages/scan-wgsl/src/causal-conv1d.ts', find: '    for (var j = 0u; j < K; j++) { acc += wt[j] * win[j]; }', replace: '    for (var j = 1u; j < K; j++) { acc += wt[j] * win[j]; }', tests: [T.conv] },
  { name: 'conv-state-shift', file: 'packages/scan-wgsl/src/causal-conv1d.ts', find: '    for (var j = 0u; j < KM1; j++) { win[j] = win[j + 1u]; }', replace: '    for (var j = 1u; j < KM1; j++) { win[j] = win[j + 1u]; }', tests: [T.conv] },
  // Mamba-2 (SSD) kernels
  { name: 'ssd-decode-exp2', file: 'packages/ssd/src/ssd-decode.ts', find: 'let dA = exp(dtv * -exp(loadALog(h)));', replace: 'let dA = exp2(dtv * -exp(loadALog(h)));', all: true, tests: [T.ssd] },
  { name: 'ssd-state-passing-minus', file: 'packages/ssd/src/ssd-state-passing.ts', find: 'run = exp(dACs[bh * u.L + last]) * run + s;', replace: 'run = exp(dACs[bh * u.L + last]) * run - s;', tests: [T.ssd] },
  { name: 'ssd-scan-diagonal-dropped', file: 'packages/ssd/src/ssd-chunk-scan.ts', find: 'if (i < Qc && s <= i) {', replace: 'if (i < Qc && s < i) {', tests: [T.ssd] },
  { name: 'ssd-scan-between-decay-x2', file: 'packages/ssd/src/ssd-chunk-scan.ts', find: 'if (qi < Qc) { e = exp(dACs[hb + qi]); }', replace: 'if (qi < Qc) { e = exp(2.0 * dACs[hb + qi]); }', tests: [T.ssd] },
  { name: 'ssd-cumsum-pad-valid', file: 'packages/ssd/src/ssd-chunk-cumsum.ts', find: 'let valid = li < u.Q && l < u.L;', replace: 'let valid = li < u.Q && l <= u.L;', tests: [T.ssd, T.mamba2Mixer] },
  // attention
  { name: 'flash-causal-peeks-ahead', file: 'packages/attention/src/flash-attention.ts', find: '(t4 <= vec4<u32>(qpos))', replace: '(t4 <= vec4<u32>(qpos + 1u))', tests: [T.attention] },
  { name: 'flash-alpha-inverted', file: 'packages/attention/src/flash-attention.ts', find: 'let alpha = exp(m - mNew);', replace: 'let alpha = exp(mNew - m);', tests: [T.attention] },
  { name: 'flash-l-rescale-dropped', file: 'packages/attention/src/flash-attention.ts', find: 'l = l * alpha + rs;', replace: 'l = l + rs;', tests: [T.attention] },
  { name: 'flash-window-off-by-one', file: 'packages/attention/src/flash-attention.ts', find: '(vec4<u32>(qpos) - t4 < vec4<u32>(u.window))', replace: '(vec4<u32>(qpos) - t4 <= vec4<u32>(u.window))', tests: [T.attention] },
  { name: 'decoding-window-off-by-one', file: 'packages/attention/src/flash-decoding.ts', find: 'kStart = max(kStart, u.qpos + 1u - u.window); }', replace: 'kStart = max(kStart, u.qpos - u.window); }', all: true, tests: [T.attention] },
  { name: 'decoding-combine-max-to-min', file: 'packages/attention/src/flash-decoding.ts', find: '{ mx = max(mx, pml[(row * u.N + c) * 2u]); }', replace: '{ mx = min(mx, pml[(row * u.N + c) * 2u]); }', tests: [T.attention] },
  { name: 'rope-rotate-half-sign', file: 'packages/attention/src/rope.ts', find: 'let rot = select(1.0, -1.0, d < half) * nx(src, partner, inv);', replace: 'let rot = select(-1.0, 1.0, d < half) * nx(src, partner, inv);', tests: [T.rope, T.parity('llama')] },
  { name: 'rope-table-sin-negated', file: 'packages/attention/src/rope.ts', find: 'out[p * R + half + j] = Math.sin(angle) * attentionFactor;', replace: 'out[p * R + half + j] = -Math.sin(angle) * attentionFactor;', tests: [T.rope, T.parity('llama')] },
  { name: 'head-norm-eps-x100', file: 'packages/attention/src/rope.ts', find: 'inv = inverseSqrt(red[0] / f32(u.D) + u.eps);', replace: 'inv = inverseSqrt(red[0] / f32(u.D) + 100.0 * u.eps);', tests: [T.rope] },
  // hybrid forward
  { name: 'logits-scaling-inverted', file: 'packages/hybrid/src/model.ts', find: "unary(this.runtime, out, 'scale', { alpha: 1 / this.spec.logitsScaling })", replace: "unary(this.runtime, out, 'scale', { alpha: this.spec.logitsScaling })", tests: [T.parity('granitemoehybrid')] },
  { name: 'embedding-multiplier-dropped', file: 'packages/hybrid/src/model.ts', find: '{ scale: this.spec.embeddingMultiplier ?? 1 }', replace: '{ scale: 1 }', tests: [T.parity('granitemoehybrid')] },
  { name: 'residual-multiplier-dropped', file: 'packages/hybrid/src/model.ts', find: "b = unary(rt, branch, 'scale', { alpha: multiplier });", replace: "b = unary(rt, branch, 'scale', { alpha: 1 });", tests: [T.parity('granitemoehybrid', 'granitemoehybrid_moe')] },
  // places the old assertions did not look at (a run, but not its values)
  { name: 'ssd-bmm-reads-past-chunk', file: 'packages/ssd/src/ssd-bmm.ts', find: 'if (i < Qc) { cv = Cm[', replace: 'if (i < u.Q) { cv = Cm[', tests: [T.ssd] },
  { name: 'long-prompt-chunk-offset', file: 'packages/scan-wgsl/src/mamba1-mixer.ts', find: 'rt.copy(xt, part, n * rowBytes, (b * L + t0) * rowBytes, b * n * rowBytes);', replace: 'rt.copy(xt, part, n * rowBytes, b * L * rowBytes, b * n * rowBytes);', tests: [T.longPrompt] },
  { name: 'bench-state-conv-in-ssm', file: 'apps/demo/src/bench.ts', find: 'stateBytes: { ssm: memory.ssm, conv: memory.conv, kv: memory.kv },', replace: 'stateBytes: { ssm: memory.ssm + memory.conv, conv: memory.conv, kv: memory.kv },', tests: [T.bench] },
  { name: 'chat-drops-first-token', file: 'apps/cli/src/text-commands.ts', find: 'const fresh = hasTemplate ? all.slice(fed) : all;', replace: 'const fresh = hasTemplate ? all.slice(fed) : all.slice(1);', tests: [T.chat] },
  { name: 'top-p-keeps-one-more', file: 'packages/hybrid/src/sampling.ts', find: "while (keep < probs.length && (keep === 0 || acc < options.topP)) acc += probs[keep++];", replace: "while (keep < probs.length && (keep === 0 || acc <= options.topP + 0.05)) acc += probs[keep++];", tests: [T.sampling, T.sessionDistribution, T.sessionFork] },
  { name: 'gpu-top-p-wider', file: 'packages/core/src/ops/sample-tokens.ts', find: 'low = max(low, radixSelect(base, low, u.topP * zk, true, li));', replace: 'low = max(low, radixSelect(base, low, min(1.0, u.topP + 0.05) * zk, true, li));', tests: [T.sampleTokens, T.sessionDistribution] },
  { name: 'moe-renormalise-flipped', file: 'packages/hybrid/src/channel.ts', find: ['moeRouting(rt, logits, spec.topK, { renormalize: spec.normTopK })', 'moeRouting(rt, logits, this.spec.topK, { renormalize: this.spec.normTopK })'], replace: ['moeRouting(rt, logits, spec.topK, { renormalize: !spec.normTopK })', 'moeRouting(rt, logits, this.spec.topK, { renormalize: !this.spec.normTopK })'], tests: [T.parity('granitemoehybrid_moe', 'qwen3_next', 'jamba')] },
];

function parseArgs(argv) {
  const a = { root: resolve(here, '../..'), only: null, list: false, json: null, timeout: 600 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--root') a.root = resolve(argv[++i]);
    else if (k === '--only') a.only = new Set(argv[++i].split(','));
    else if (k === '--list') a.list = true;
    else if (k === '--json') a.json = argv[++i];
    else if (k === '--timeout') a.timeout = Number(argv[++i]);
    else if (k === '--verbose') a.verbose = true;
    else if (k === '--baseline') a.baseline = true;
    else throw new Error(`mutation run: unknown argument ${k}`);
  }
  return a;
}

/** Runs one vitest invocation; resolves to 'pass', 'fail' or 'timeout'. */
function runTests(root, [dir, args], timeoutS) {
  return new Promise((done) => {
    const child = spawn('pnpm', ['exec', 'vitest', 'run', ...args, '--bail=1', '--reporter=dot'], {
      cwd: join(root, dir),
      env: { ...process.env, CI: 'true', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    current = child;
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      done({ result: 'timeout', out });
    }, timeoutS * 1000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      current = null;
      done({ result: code === 0 ? 'pass' : 'fail', out });
    });
  });
}

let current = null;
const originals = new Map(); // path -> original text, while a mutant is applied

function restoreAll() {
  for (const [path, text] of originals) writeFileSync(path, text);
  originals.clear();
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    restoreAll();
    if (current) try { process.kill(-current.pid, 'SIGKILL'); } catch { /* gone */ }
    process.exit(130);
  });
}
process.on('exit', restoreAll);

function describeTests(tests) {
  return tests.map(([dir, args]) => `${dir.split('/').pop()}:${args.filter((x) => x.endsWith('.ts')).map((x) => x.replace('src/', '')).join(',')}${args.includes('-t') ? `[${args[args.indexOf('-t') + 1]}]` : ''}`).join(' + ');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const mutants = MUTANTS.filter((m) => !opts.only || opts.only.has(m.name));
  if (opts.list) {
    for (const m of mutants) console.log(`${m.name.padEnd(30)} ${m.file.padEnd(48)} ${describeTests(m.tests)}`);
    return;
  }
  const rows = [];
  const t0 = Date.now();
  // With --baseline, every test set is first run unmutated: a set that fails as it is cannot kill
  // anything, and the mutants it would have judged are reported as such.
  const broken = new Set();
  if (opts.baseline) {
    const sets = new Map();
    for (const m of mutants) for (const set of m.tests) sets.set(JSON.stringify(set), set);
    for (const [key, set] of sets) {
      const r = await runTests(opts.root, set, opts.timeout);
      console.log(`baseline ${describeTests([set])}: ${r.result}`);
      if (r.result !== 'pass') broken.add(key);
    }
  }
  for (const m of mutants) {
    const path = join(opts.root, m.file);
    const text = readFileSync(path, 'utf8');
    const finds = [m.find].flat();
    const at = Math.max(0, finds.findIndex((f) => text.includes(f)));
    const find = finds[at];
    const replace = [m.replace].flat()[at];
    const count = text.split(find).length - 1;
    const row = { name: m.name, file: m.file, result: 'missing', by: '', seconds: 0 };
    if (count === 0 || (count > 1 && !m.all)) {
      row.result = count === 0 ? 'missing' : `ambiguous (${count})`;
      rows.push(row);
      console.log(`${m.name}: ${row.result}`);
      continue;
    }
    const start = Date.now();
    originals.set(path, text);
    try {
      writeFileSync(path, m.all ? text.split(find).join(replace) : text.replace(find, replace));
      row.result = 'survived';
      for (const set of m.tests) {
        if (broken.has(JSON.stringify(set))) {
          row.result = 'untested (baseline fails)';
          row.by = describeTests([set]);
          break;
        }
        const r = await runTests(opts.root, set, opts.timeout);
        if (r.result !== 'pass') {
          row.result = r.result === 'timeout' ? 'killed (timeout)' : 'killed';
          row.by = describeTests([set]);
          // the first failing test, to tell a real catch from a crash
          row.detail = (/FAIL\s+(.*)/.exec(r.out)?.[1] ?? r.out.trim().split('\n').slice(-3).join(' ')).replace(/\x1b\[[0-9;]*m/g, '').slice(0, 200);
          if (opts.verbose) console.log(r.out);
          break;
        }
      }
    } finally {
      writeFileSync(path, text);
      originals.delete(path);
    }
    row.seconds = Math.round((Date.now() - start) / 1000);
    rows.push(row);
    console.log(`${m.name}: ${row.result}${row.by ? ` by ${row.by}` : ''} (${row.seconds} s)${row.detail ? `\n    ${row.detail}` : ''}`);
  }
  const killed = rows.filter((r) => r.result.startsWith('killed')).length;
  const survived = rows.filter((r) => r.result === 'survived').length;
  console.log('\n| mutant | file | result | caught by | s |\n| --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.name} | ${r.file} | ${r.result} | ${r.by} | ${r.seconds} |`);
  console.log(`\n${rows.length} mutants: ${killed} killed, ${survived} survived, ${rows.length - killed - survived} not applied; ${Math.round((Date.now() - t0) / 60000)} min`);
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ root: opts.root, killed, survived, rows }, null, 1));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    restoreAll();
    console.error(err);
    process.exit(1);
  });
}
