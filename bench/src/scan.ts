/**
 * GPU time of Mamba-1's selective scan at mamba-130m's shape (d_inner 1536, d_state 16) by prompt
 * length and number of time segments (1: the one-pass scan; G: a summary pass and a scan pass),
 * to fit `scanSegments`' rule. Back-to-back runs in one submit, best of 3.
 *   node --conditions=@statespace/source --import tsx src/scan.ts [--lengths 512,4096] [--batch 1]
 */
import { parseArgs } from 'node:util';
import { Runtime } from '@statespace/core';
import { createSelectiveScanKernel, scanCarryFloats, scanSegments } from '@statespace/scan-wgsl';
import { type Steps, secondsPerRun } from './matmul.js';

const { values } = parseArgs({ options: { lengths: { type: 'string' }, batch: { type: 'string' }, segments: { type: 'string' } } });
const rt = await Runtime.create();
const D = 1536;
const N = 16;
const batch = Number(values.batch ?? 1);
const segmentCounts = (values.segments ?? '1,2,3,4,6,8,12,16,24,32,48,64').split(',').map(Number);
console.log(`adapter ${rt.adapterName}; selective scan d_inner ${D}, d_state ${N}, batch ${batch}; µs per scan (x 24 layers = mamba-130m's prefill)`);
for (const L of (values.lengths ?? '512,4096').split(',').map(Number)) {
  const rnd = (n: number, scale: number, shift = 0) => Float32Array.from({ length: n }, (_, i) => shift + scale * Math.sin(i * 0.37 + 1));
  const x = rt.upload(rnd(batch * L * D, 1), [batch, L, D]);
  const dt = rt.upload(rnd(batch * L * D, 0.5), [batch, L, D]);
  const z = rt.upload(rnd(batch * L * D, 1), [batch, L, D]);
  const bc = rt.upload(rnd(batch * L * 2 * N, 1), [batch, L, 2 * N]);
  const aLog = rt.upload(rnd(D * N, 1, 1), [D, N]);
  const Dskip = rt.upload(rnd(D, 1), [D]);
  const bias = rt.upload(rnd(D, 1, -4), [D]);
  const state = rt.zeros([batch, D, N]);
  const attrs = { dtSoftplus: true, aLogDtype: 'f32', dDtype: 'f32', dtBiasDtype: 'f32', gate: true } as const;
  const shape = { batch, seqlen: L, dInner: D, dState: N, tStart: 0, tCount: L, bcStride: 2 * N, bOffset: 0, cOffset: N };
  const line: string[] = [];
  for (const G0 of segmentCounts) {
    const segmentLength = Math.ceil(L / G0);
    const G = Math.ceil(L / segmentLength);
    if (G0 > 1 && G < 2) continue;
    let steps: Steps;
    if (G === 1) steps = [{ kernel: createSelectiveScanKernel(shape, attrs), tensors: [x, dt, z, bc, aLog, Dskip, bias, state] }];
    else {
      const carry = rt.empty([scanCarryFloats(G, batch, D, N)]);
      const seg = { ...shape, segments: G, segmentLength };
      steps = [
        { kernel: createSelectiveScanKernel(seg, { ...attrs, segmented: 'summary' }), tensors: [x, dt, bc, aLog, bias, state, carry] },
        { kernel: createSelectiveScanKernel(seg, { ...attrs, segmented: 'scan' }), tensors: [x, dt, z, bc, aLog, Dskip, bias, carry] },
      ];
    }
    const us = (await secondsPerRun(rt, steps, 30)) * 1e6;
    line.push(`G ${G}: ${us.toFixed(1)}`);
  }
  console.log(`L ${L} (rule picks ${scanSegments(rt, { batch, dInner: D, dState: N, steps: L })}): ${line.join(', ')}`);
}
rt.destroy();
process.exit(0);
