/**
 * The long tokenizer fuzz run, by hand (minutes):
 *
 *   node --conditions=@statespace/source --import tsx packages/tokenizer/scripts/fuzz-long.ts [--cases 1000] [--seed 1]
 *
 * Mutates the neox and llama2 fixtures' tokenizer.json; every case must end in a typed
 * TokenizerError or in what the checks of src/fuzz-support.ts compute, within 10 s. Also
 * measures encode time per MB on hostile strings. Exits 1 on any bad outcome.
 */
import { parseArgs } from 'node:util';
import { checkTokenizer, mutateTokenizer, seeded } from '../src/fuzz-support.js';
import { entryFiles, fixtureTokenizer } from '../src/test-fixtures.js';

const { values } = parseArgs({ options: { cases: { type: 'string', default: '1000' }, seed: { type: 'string', default: '1' }, 'skip-throughput': { type: 'boolean', default: false } } });
const random = seeded(Number(values.seed));
const bases = ['neox', 'llama2'].map((name) => ({ name, json: entryFiles(name).tokenizer }));
const outcomes: Record<string, number> = {};
const codes: Record<string, number> = {};
const labels: Record<string, number> = {};
const failures: string[] = [];
let slowest = 0;
for (let i = 0; i < Number(values.cases); i++) {
  const base = bases[i % 4 === 3 ? 1 : 0];
  const { input, label } = mutateTokenizer(base.json, random);
  labels[label] = (labels[label] ?? 0) + 1;
  const result = await checkTokenizer(input, random, 10_000);
  const outcome = result.outcome === 'slow' ? 'hang' : result.outcome;
  outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  if (result.code) codes[result.code] = (codes[result.code] ?? 0) + 1;
  slowest = Math.max(slowest, result.ms);
  if (!['agree', 'typed'].includes(result.outcome) && failures.length < 20) failures.push(`${base.name} ${i} (${label}): ${outcome}: ${result.detail?.slice(0, 400)}`);
}

// Throughput on hostile strings (ms per MB of input), on the unmodified tokenizers.
const throughput: Record<string, Record<string, number>> = {};
if (!values['skip-throughput']) {
  const strings: Record<string, string> = {
    'mixed text': 'The quick brown fox, 1234 jumps! Ünïcödé 中文 '.repeat(25_000),
    'spaces': ' '.repeat(1_000_000),
    'one letter': 'a'.repeat(1_000_000),
    'digits': '7'.repeat(1_000_000),
    'punctuation': '!?'.repeat(500_000),
    'newlines+spaces': ' \n'.repeat(500_000),
  };
  for (const name of ['neox', 'llama2']) {
    const tokenizer = fixtureTokenizer(name);
    throughput[name] = {};
    for (const [label, text] of Object.entries(strings)) {
      const sample = text.slice(0, 200_000); // 200 KB of each, scaled to ms per MB
      const t0 = performance.now();
      tokenizer.encode(sample);
      throughput[name][label] = Math.round(((performance.now() - t0) * 1e6) / new TextEncoder().encode(sample).length);
    }
  }
}
console.log(JSON.stringify({ cases: Number(values.cases), outcomes, codes, mutations: labels, slowestMs: Math.round(slowest), encodeMsPerMB: throughput, failures, peakRssMB: Math.round(process.memoryUsage().rss / 1e6) }, null, 2));
process.exit(failures.length > 0 ? 1 : 0);
