import * as s from '@statespace/ssd';
import { randn, randu, relError } from '@statespace/core/testing';
const shape = { batch: 1, seqlen: 7, heads: 2, headDim: 4, dState: 3, groups: 1, chunkSize: 4 };
const { batch: b, seqlen: L, heads: H, headDim: P, dState: N, groups: G } = shape;
const x = randn(b * L * H * P, 1), dtRaw = randn(b * L * H, 2), A = Float32Array.from([-1, -0.5]), dtBias = randu(H, 3, -4, -2);
const B = randn(b * L * G * N, 4), C = randn(b * L * G * N, 5), D = Float32Array.from([1, 1]);
const { dt, dACumsum } = s.ssdChunkCumsumReference(dtRaw, A, dtBias, shape);
const states = s.ssdChunkStateReference(x, B, dt, dACumsum, shape);
const { entering, final } = s.ssdStatePassingReference(states, dACumsum, undefined, shape);
const cb = s.ssdBmmReference(C, B, shape);
const y = s.ssdChunkScanReference(x, C, dt, dACumsum, cb, entering, D, shape);
const r = s.ssdRecurrentReference({ x, dt: dtRaw, A, B, C, dtBias, D }, shape);
const q = s.ssdQuadraticReference({ x, dt: dtRaw, A, B, C, dtBias, D }, shape);
console.log(relError(y, r.y), relError(final, r.state), relError(q, r.y));
console.log(s.numChunks(shape), s.finiteLimit([0, Infinity]), s.ssdDtReference(0, 0));
const step = s.ssdDecodeStepReference({ x: x.slice(0, H * P), dt: dtRaw.slice(0, H), A, B: B.slice(0, G * N), C: C.slice(0, G * N), dtBias, D, state: new Float32Array(b * H * P * N) }, { batch: 1, heads: H, headDim: P, dState: N, groups: G });
console.log(relError(step.y, r.y.slice(0, H * P)));
const k = s.createSsdChunkCumsumKernel(shape, { offset: 0, stride: H }); console.log(k.name, k.dispatch);
try { s.validateSsdShape('ssd', { ...shape, chunkSize: 512 }); } catch (e) { console.log((e as Error).message); }
