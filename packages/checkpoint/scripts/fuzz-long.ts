/**
 * The long fuzz run, by hand (minutes):
 *
 *   node --expose-gc --conditions=@statespace/source --import tsx packages/checkpoint/scripts/fuzz-long.ts [--single 10000] [--sharded 2000] [--blowups 200] [--seed 1]
 *
 * Every case must end in a typed CheckpointError or in exactly what the
 * independent validator (src/fuzz-support.ts) computes. Counts every outcome,
 * the slowest case, and the memory an open costs on the "blow-up" headers
 * (measured after a GC, as a multiple of the file's size). Exits 1 on any bad
 * outcome (untyped throw, wrong-but-silent, false refusal, read outside the
 * folder, hang).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type CaseResult,
  blowUp,
  checkFolder,
  checkSingle,
  mutateSafetensors,
  releaseFifos,
  seedFiles,
  seeded,
  withTimeout,
  writeOutsideFile,
  writeShardedFolder,
} from '../src/fuzz-support.js';
import { openSafetensors } from '../src/safetensors.js';
import { bufferSource } from '../src/sources.js';

const { values } = parseArgs({
  options: { single: { type: 'string', default: '10000' }, sharded: { type: 'string', default: '2000' }, blowups: { type: 'string', default: '200' }, seed: { type: 'string', default: '1' } },
});
const HANG_MS = 10_000;
const BAD = new Set(['untyped', 'wrong-silent', 'false-refusal', 'outside-read', 'hang']);
const gc = (globalThis as { gc?: () => void }).gc;

interface Tally {
  cases: number;
  outcomes: Record<string, number>;
  codes: Record<string, number>;
  slowestMs: number;
  failures: string[];
}
const tally = (): Tally => ({ cases: 0, outcomes: {}, codes: {}, slowestMs: 0, failures: [] });
function record(t: Tally, result: CaseResult | 'hang', wallMs: number, label: string): void {
  // The package's own time when known (the validator's is left out), else the case's wall time.
  const ms = result !== 'hang' && result.ms !== undefined ? result.ms : wallMs;
  const outcome = result === 'hang' || ms > HANG_MS ? 'hang' : result.outcome;
  t.cases++;
  t.outcomes[outcome] = (t.outcomes[outcome] ?? 0) + 1;
  if (result !== 'hang' && result.code) t.codes[result.code] = (t.codes[result.code] ?? 0) + 1;
  t.slowestMs = Math.max(t.slowestMs, ms);
  if (BAD.has(outcome) && t.failures.length < 20) t.failures.push(`${label}: ${outcome}: ${result === 'hang' ? '' : (result.detail ?? '').slice(0, 400)}`);
}

const seed = Number(values.seed);
const report: Record<string, unknown> = {};
let peakRss = 0;
const sampleRss = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss));

// 1. single files
{
  const seeds = seedFiles();
  const random = seeded(seed);
  const t = tally();
  for (let i = 0; i < Number(values.single); i++) {
    const bytes = mutateSafetensors(seeds[i % seeds.length], random);
    const t0 = performance.now();
    const result = await withTimeout(checkSingle(bytes), 6 * HANG_MS); // a safety net: the verdict uses the package's own time
    record(t, result, performance.now() - t0, `single ${i} (${Buffer.from(bytes.subarray(0, 600)).toString('base64')})`);
    if (i % 500 === 0) sampleRss();
  }
  report.single = t;
}

// 2. blow-up headers: time and memory per open
{
  const random = seeded(seed + 1);
  const t = tally();
  let worstRatio = 0;
  let worstLabel = '';
  let slowestOpenMs = 0;
  for (let i = 0; i < Number(values.blowups); i++) {
    const bytes = blowUp(random);
    const t0 = performance.now();
    const result = await withTimeout(checkSingle(bytes), 6 * HANG_MS); // a safety net: the verdict uses the package's own time
    record(t, result, performance.now() - t0, `blowup ${i}`);
    if (gc) {
      // What an open keeps alive: heap + buffers after a GC, with the opened file still referenced.
      gc();
      const before = process.memoryUsage();
      const o0 = performance.now();
      const opened = await openSafetensors(bufferSource(bytes)).catch(() => undefined);
      slowestOpenMs = Math.max(slowestOpenMs, performance.now() - o0);
      gc();
      const after = process.memoryUsage();
      const kept = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
      const ratio = kept / bytes.length;
      if (ratio > worstRatio && bytes.length > 100_000) {
        worstRatio = ratio;
        worstLabel = `${bytes.length} bytes, ${opened ? opened.tensors.size + ' tensors' : 'refused'}, kept ${(kept / 1e6).toFixed(1)} MB`;
      }
      void opened?.names();
    }
    sampleRss();
  }
  report.blowups = { ...t, worstMemoryPerFileByte: Number(worstRatio.toFixed(2)), worstMemoryCase: worstLabel, slowestOpenMs: Math.round(slowestOpenMs), measured: Boolean(gc) };
}

// 3. sharded folders
{
  const work = mkdtempSync(join(tmpdir(), 'statespace-fuzz-long-'));
  const outside = join(work, 'outside.safetensors');
  writeOutsideFile(outside);
  const random = seeded(seed + 2);
  const t = tally();
  const labels: Record<string, number> = {};
  try {
    for (let i = 0; i < Number(values.sharded); i++) {
      const dir = join(work, `case-${i}`);
      mkdirSync(dir);
      const label = writeShardedFolder(dir, outside, random);
      for (const part of label.split('+')) labels[part] = (labels[part] ?? 0) + 1;
      const t0 = performance.now();
      const result = await withTimeout(checkFolder(dir), HANG_MS);
      if (result === 'hang') {
        const names = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json'];
        releaseFifos([...names.map((n) => join(dir, n)), `${outside}.fifo`]);
      }
      record(t, result, performance.now() - t0, `sharded ${i} (${label})`);
      rmSync(dir, { recursive: true, force: true });
      if (i % 200 === 0) sampleRss();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  report.sharded = { ...t, mutations: labels };
}

report.peakRssMB = Math.round(peakRss / 1e6);
console.log(JSON.stringify(report, null, 2));
const bad = ['single', 'blowups', 'sharded'].some((k) => (report[k] as Tally).failures.length > 0);
process.exit(bad ? 1 : 0);
