// CPU time of one long prefill on the test adapter: node --conditions=@statespace/source --import tsx packages/attention/bench/prefill-bench.ts [L]
import { Runtime } from '@statespace/core';
import { randn } from '@statespace/core/testing';
import { KVCacheState } from '../src/index.js';
const rt = await Runtime.create();
const L = Number(process.argv[2] ?? 2048), D = 32;
const cache = new KVCacheState(rt, { batch: 1, numKeyValueHeads: 1, headDim: D });
const kv = rt.upload(randn(L * D, 1), [1, L, 1, D]);
cache.append(kv, kv);
const q = rt.upload(randn(L * D, 2), [1, L, 1, D]);
await rt.read(cache.attend(rt.upload(randn(32 * D, 2), [1, 32, 1, D])));
const t0 = performance.now(); const c0 = process.cpuUsage();
await rt.read(cache.attend(q));
const c = process.cpuUsage(c0);
console.log(L, 'wall', (performance.now() - t0).toFixed(0), 'ms cpu', ((c.user + c.system) / 1000).toFixed(0), 'ms');
process.exit(0);
