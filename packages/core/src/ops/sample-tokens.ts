/**
 * Choosing the next token on the GPU: repetition penalty, greedy or temperature
 * sampling with top-k and top-p (nucleus), and a counter-based random number, in one
 * dispatch (one workgroup per row), so a decode step can feed its own token to the next
 * without the host reading anything in between.
 *
 * Shape glossary (packages/core/README.md):
 *   M  rows (sequences)     D  row stride of the logits     V  vocabulary entries used (V <= D)
 *
 * The rules, which {@link sampleTokenReference} states as a plain loop:
 * - repetition penalty as transformers' RepetitionPenaltyLogitsProcessor (divide positive
 *   logits of tokens already seen, multiply negative ones); NaN logits are never chosen;
 * - temperature 0: the first index of the largest penalised logit (torch.argmax);
 * - top-k as transformers' TopKLogitsWarper: keep every logit >= the k-th largest (ties kept);
 * - top-p as TopPLogitsWarper, applied after top-k: keep a token when the probability of the
 *   kept tokens strictly more likely than it is below p (ties at the cut are kept together);
 * - the token is the first kept index (in vocabulary order) at which the running sum of kept
 *   probabilities passes u times their total, u = {@link samplerUniform}(seed, step, row).
 *
 * Thresholds are found without sorting: logits map to order-preserving u32 keys, and a
 * most-significant-digit radix select (3 bits per level, 11 levels) finds the largest key
 * whose tail count (top-k) or tail probability mass (top-p) reaches the target.
 */
import { StatespaceError } from '../errors.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { type PassSlots, blockPassWgsl, stridedPassWgsl } from './wgsl-passes.js';

/** Sampling settings the GPU sampler takes (all fixed for a run of tokens). */
export interface TokenSamplingParams {
  /** 0 (or less): greedy. */
  temperature: number;
  /** Keep the k most likely tokens (0: all). */
  topK: number;
  /** Nucleus mass in (0, 1] (1: all). */
  topP: number;
  /** Repetition penalty (1: off). */
  penalty: number;
  /** Seed of the random stream. */
  seed: number;
}

const layout = {
  rows: 'u32',
  D: 'u32',
  V: 'u32',
  topK: 'u32',
  temperature: 'f32',
  topP: 'f32',
  penalty: 'f32',
  seed: 'u32',
  step: 'u32',
} as const satisfies UniformLayout;

const BINS = 8;

// WGSL of the counter-based generator, mirrored by pcgHash / samplerUniform below.
const WGSL_RANDOM = `
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
fn uniform01(seed: u32, step: u32, row: u32) -> f32 {
  return f32(pcg(pcg(pcg(seed) ^ step) ^ row) >> 8u) / 16777216.0;
}`;

/** Loads a thread of the sampler has in flight in each pass over the vocabulary (wgsl-passes.ts): 8, as it has six such passes. */
const SAMPLER_UNROLL = 8;
const stridedPass = (loads: PassSlots['loads'], body: PassSlots['body']) => stridedPassWgsl({ unroll: SAMPLER_UNROLL, start: 'li', stride: 'RT', end: 'u.V', loads, body });
const blockPass = (loads: PassSlots['loads'], body: PassSlots['body'], more?: string) => blockPassWgsl({ unroll: SAMPLER_UNROLL, from: 'j0', to: 'j1', more, loads, body });

/**
 * Builds the sampler kernel: one workgroup per row.
 * Bindings: logits (M, D) f32, presence (M, V) u32 (tokens seen, for the penalty; the chosen
 * token is marked), keys and weights (M, V) scratch, ids (M) i32 out.
 *
 * @example
 * ```ts
 * const kernel = createSampleTokensKernel({ rows: 1, D: 50280, V: 50280 }, { temperature: 0.7, topK: 0, topP: 0.9, penalty: 1, seed: 1 }, 0);
 * ```
 */
export function createSampleTokensKernel(shape: { rows: number; D: number; V: number }, params: TokenSamplingParams, step: number, threads: 256 | 1024 = 256): KernelDescriptor {
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (M, D)
    { name: 'presence', type: 'u32', access: 'read_write' }, // (M, V)
    { name: 'keys', type: 'u32', access: 'read_write' }, // (M, V) scratch
    { name: 'w', type: 'f32', access: 'read_write' }, // (M, V) scratch: unnormalised probabilities
    { name: 'ids', type: 'i32', access: 'read_write' }, // (M)
  ] as const;
  const wgsl = memoWgsl('sample_tokens', `${threads}`, () => `${wgslBindings(layout, bindings)}
const RT = ${threads}u;
const BINS = ${BINS}u;
var<workgroup> bins: array<f32, ${BINS * threads}>;
var<workgroup> redK: array<u32, ${threads}>;
var<workgroup> redI: array<u32, ${threads}>;
var<workgroup> found: array<u32, 2>;
var<workgroup> foundF: array<f32, 2>;
var<workgroup> ownerA: atomic<u32>;
var<workgroup> lastA: atomic<u32>;
${WGSL_RANDOM}
// Order-preserving key of a float (larger float, larger key); NaN -> 0 (never kept). NaN is
// found from its bits: shader compilers may fold v != v away.
fn keyOf(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
fn valueOf(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}
fn penalised(r: u32, j: u32) -> f32 {
  var v = x[r * u.D + j];
  if (u.penalty != 1.0 && presence[r * u.V + j] != 0u) { v = select(v * u.penalty, v / u.penalty, v > 0.0); }
  return v;
}
fn sumAll(v: f32, li: u32) -> f32 {
  bins[li] = v;
  workgroupBarrier();
  for (var s = RT / 2u; s > 0u; s >>= 1u) {
    if (li < s) { bins[li] += bins[li + s]; }
    workgroupBarrier();
  }
  let t = bins[0];
  workgroupBarrier();
  return t;
}
// Largest key t >= low whose tail (keys >= t, >= low) reaches goal: count (mass false) or
// weight sum (mass true). MSD radix select, 3 bits a level (the last level 2 bits).
fn radixSelect(base: u32, low: u32, goal: f32, mass: bool, li: u32) -> u32 {
  var prefix = 0u;
  var above = 0.0;
  for (var level = 0u; level < 11u; level++) {
    let shift = select(29u - 3u * level, 0u, level == 10u);
    let width = select(3u, 2u, level == 10u);
    let hiMask = select(~((1u << ((shift + width) & 31u)) - 1u), 0u, shift + width >= 32u);
    // Eight bins in two vec4 registers, filled by comparison: a private array indexed by the
    // digit would live in local memory, one read-modify-write per element.
    var lo4 = vec4<f32>(0.0);
    var hi4 = vec4<f32>(0.0);
    ${stridedPass(
      (t, j) => `let k${t} = keys[base + ${j}]; let w${t} = w[base + ${j}];`,
      (t) => `let k = k${t};
      if (k >= low && k != 0u && (k & hiMask) == (prefix & hiMask)) {
        let d = (k >> shift) & ((1u << width) - 1u);
        let a = select(1.0, w${t}, mass);
        lo4 += select(vec4<f32>(0.0), vec4<f32>(a), vec4<u32>(d) == vec4<u32>(0u, 1u, 2u, 3u));
        hi4 += select(vec4<f32>(0.0), vec4<f32>(a), vec4<u32>(d) == vec4<u32>(4u, 5u, 6u, 7u));
      }`,
    )}
    bins[li] = lo4.x; bins[RT + li] = lo4.y; bins[2u * RT + li] = lo4.z; bins[3u * RT + li] = lo4.w;
    bins[4u * RT + li] = hi4.x; bins[5u * RT + li] = hi4.y; bins[6u * RT + li] = hi4.z; bins[7u * RT + li] = hi4.w;
    workgroupBarrier();
    for (var s = RT / 2u; s > 0u; s >>= 1u) {
      if (li < s) {
        for (var d = 0u; d < BINS; d++) { bins[d * RT + li] += bins[d * RT + li + s]; }
      }
      workgroupBarrier();
    }
    if (li == 0u) {
      var acc = above;
      var digit = 0u;
      for (var d = i32((1u << width) - 1u); d >= 0; d--) {
        let c = bins[u32(d) * RT];
        if (acc + c >= goal) { digit = u32(d); break; }
        acc += c;
      }
      found[0] = prefix | (digit << shift);
      foundF[0] = acc;
    }
    workgroupBarrier();
    prefix = found[0];
    above = foundF[0];
    workgroupBarrier();
  }
  return prefix;
}
@compute @workgroup_size(${threads})
fn main(${WGSL_BUILTINS}) {
  let r = ${WGSL_LINEAR_WORKGROUP};
  if (r >= u.rows) { return; }
  let base = r * u.V;
  // 1. the largest penalised logit (first index on ties), by key
  var bk = 0u;
  var bi = 0xffffffffu;
  ${stridedPass(
    (t, j) => `let y${t} = penalised(r, ${j});`,
    (t) => `let k = keyOf(y${t}); if (k != 0u && (bi == 0xffffffffu || k > bk)) { bk = k; bi = j; }`,
  )}
  redK[li] = bk; redI[li] = bi;
  workgroupBarrier();
  for (var s = RT / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      let ok = redK[li + s]; let oi = redI[li + s];
      if (oi != 0xffffffffu && (redI[li] == 0xffffffffu || ok > redK[li] || (ok == redK[li] && oi < redI[li]))) { redK[li] = ok; redI[li] = oi; }
    }
    workgroupBarrier();
  }
  let maxKey = redK[0];
  let argmaxIndex = workgroupUniformLoad(&redI[0]);
  var chosen = select(argmaxIndex, 0u, argmaxIndex == 0xffffffffu);
  if (u.temperature > 0.0 && argmaxIndex != 0xffffffffu) {
    // 2. keys and unnormalised probabilities exp((y - max) / T)
    let m = valueOf(maxKey);
    ${stridedPass(
      (t, j) => `let y${t} = penalised(r, ${j});`,
      (t) => `let k = keyOf(y${t}); keys[base + j] = k; w[base + j] = select(exp((y${t} - m) / u.temperature), 0.0, k == 0u);`,
    )}
    storageBarrier();
    workgroupBarrier();
    // 3. thresholds: top-k on counts, then top-p on the mass of what top-k kept
    var low = 1u;
    if (u.topK > 0u && u.topK < u.V) { low = max(low, radixSelect(base, 1u, f32(u.topK), false, li)); }
    if (u.topP < 1.0) {
      var z = 0.0;
      ${stridedPass(
        (t, j) => `let k${t} = keys[base + ${j}]; let w${t} = w[base + ${j}];`,
        (t) => `if (k${t} >= low) { z += w${t}; }`,
      )}
      let zk = sumAll(z, li);
      low = max(low, radixSelect(base, low, u.topP * zk, true, li));
    }
    // 4. the kept mass of this thread's contiguous block, an exclusive scan over the blocks
    let B = (u.V + RT - 1u) / RT;
    let j0 = min(u.V, li * B);
    let j1 = min(u.V, j0 + B);
    var s = 0.0;
    ${blockPass(
      (t, j) => `let k${t} = keys[base + ${j}]; let w${t} = w[base + ${j}];`,
      (t) => `if (k${t} >= low) { s += w${t}; }`,
    )}
    // the blocks' inclusive scan in log2(RT) steps (Hillis-Steele), then the first block whose
    // running mass passes the draw (or, if rounding ran past the end, the last block with mass)
    if (li == 0u) { atomicStore(&ownerA, 0xffffffffu); atomicStore(&lastA, 0u); }
    var incl = s;
    bins[li] = incl;
    workgroupBarrier();
    for (var off = 1u; off < RT; off <<= 1u) {
      let o = select(0.0, bins[select(0u, li - off, li >= off)], li >= off);
      workgroupBarrier();
      incl += o;
      bins[li] = incl;
      workgroupBarrier();
    }
    let goal = uniform01(u.seed, u.step, r) * bins[RT - 1u];
    if (s > 0.0) {
      atomicMax(&lastA, li);
      if (goal < incl) { atomicMin(&ownerA, li); }
    }
    workgroupBarrier();
    let firstOwner = atomicLoad(&ownerA);
    if (li == 0u) {
      found[1] = select(firstOwner, atomicLoad(&lastA), firstOwner == 0xffffffffu);
      foundF[1] = goal;
    }
    bins[RT + li] = select(0.0, bins[select(0u, li - 1u, li > 0u)], li > 0u); // the exclusive scan: where the owner starts
    workgroupBarrier();
    // 5. the owner of the crossing walks its block (the last kept index if rounding ran past the end)
    if (li == found[1]) {
      let goal = foundF[1];
      var acc = bins[RT + li];
      var pick = 0xffffffffu;
      var lastKept = j0;
      ${blockPass(
        (t, j) => `let k${t} = keys[base + ${j}]; let w${t} = w[base + ${j}];`,
        (t) => `if (pick == 0xffffffffu && k${t} >= low) { acc += w${t}; lastKept = j; if (acc > goal) { pick = j; } }`,
        'pick == 0xffffffffu',
      )}
      found[0] = select(pick, lastKept, pick == 0xffffffffu);
    }
    workgroupBarrier();
    chosen = found[0];
  }
  if (li == 0u) {
    ids[r] = i32(chosen);
    if (u.penalty != 1.0) { presence[base + chosen] = 1u; }
  }
}`);
  return {
    name: 'sample_tokens',
    cacheKey: `${threads}`,
    wgsl,
    workgroupSize: [threads, 1, 1],
    dispatch: linearDispatch(shape.rows),
    bindings,
    uniformLayout: layout,
    uniforms: {
      rows: shape.rows,
      D: shape.D,
      V: shape.V,
      topK: params.topK,
      temperature: params.temperature,
      topP: params.topP,
      penalty: params.penalty,
      seed: params.seed >>> 0,
      step: step >>> 0,
    },
  };
}

/** Buffers one run of {@link sampleTokens} needs, kept by the caller across tokens. */
export interface TokenSamplerBuffers {
  /** (M, V) u32: 1 where the token was seen (repetition penalty); the sampler marks what it picks. */
  presence: Tensor;
  /** (M, V) u32 scratch. */
  keys: Tensor;
  /** (M, V) f32 scratch. */
  weights: Tensor;
}

/**
 * Allocates {@link TokenSamplerBuffers}; `history` (one list of token ids per row) marks the
 * tokens the repetition penalty starts from.
 *
 * @example
 * ```ts
 * const buffers = createTokenSamplerBuffers(rt, 1, 50280, [promptIds]);
 * ```
 */
export function createTokenSamplerBuffers(runtime: Runtime, rows: number, V: number, history: readonly (readonly number[])[] = []): TokenSamplerBuffers {
  const seen = new Uint32Array(rows * V);
  history.forEach((ids, r) => {
    for (const id of ids) if (Number.isInteger(id) && id >= 0 && id < V) seen[r * V + id] = 1;
  });
  return {
    presence: runtime.upload(seen, [rows, V], 'u32', 'sampler.presence'),
    keys: runtime.empty([rows, V], 'u32', 'sampler.keys'),
    weights: runtime.empty([rows, V], 'f32', 'sampler.weights'),
  };
}

/**
 * Chooses one token per row of `logits` (M, D) (or (M, 1, D)) on the GPU and writes it to
 * `out` (M) i32. `vocab` (default D) limits the choice to the first entries of each row.
 *
 * @example
 * ```ts
 * sampleTokens(rt, logits, out, buffers, { temperature: 0.8, topK: 40, topP: 0.95, penalty: 1.1, seed: 7 }, step);
 * ```
 */
export function sampleTokens(runtime: Runtime, logits: TensorLike, out: TensorLike, buffers: TokenSamplerBuffers, params: TokenSamplingParams, step: number, vocab?: number): void {
  const D = logits.shape[logits.shape.length - 1];
  const rows = logits.size / D;
  const V = vocab ?? D;
  if (!(Number.isInteger(V) && V >= 1 && V <= D)) throw new StatespaceError('INVALID_ARGUMENT', `sampleTokens: vocab ${V} must be an integer in [1, ${D}]`);
  if (logits.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `sampleTokens: logits must be f32, got ${logits.dtype}`);
  if (out.size !== rows || out.dtype !== 'i32') throw new StatespaceError('SHAPE_MISMATCH', `sampleTokens: out must hold ${rows} i32 ids, got ${out.size} ${out.dtype}`);
  for (const [name, t] of [['presence', buffers.presence], ['keys', buffers.keys], ['weights', buffers.weights]] as const) {
    if (t.size !== rows * V) throw new StatespaceError('SHAPE_MISMATCH', `sampleTokens: ${name} holds ${t.size} values, expected rows=${rows} x vocab=${V}`);
  }
  checkParams(params);
  runtime.run(createSampleTokensKernel({ rows, D, V }, params, step, samplerThreads(runtime)), [logits, buffers.presence, buffers.keys, buffers.weights, out]);
}

/**
 * Threads of the sampler's workgroup on this device: 1,024 where the adapter allows it (each
 * pass over the vocabulary is then four times shorter), else 256.
 */
export function samplerThreads(runtime: Runtime): 256 | 1024 {
  const l = runtime.limits;
  return l.maxComputeInvocationsPerWorkgroup >= 1024 && l.maxComputeWorkgroupStorageSize >= (BINS + 2) * 1024 * 4 + 64 ? 1024 : 256;
}

function checkParams(p: TokenSamplingParams): void {
  const bad = (what: string, v: unknown) => {
    throw new StatespaceError('INVALID_ARGUMENT', `sampleTokens: ${what}, got ${String(v)}`);
  };
  if (!Number.isFinite(p.temperature)) bad('temperature must be finite', p.temperature);
  if (!(Number.isInteger(p.topK) && p.topK >= 0)) bad('topK must be an integer >= 0', p.topK);
  if (!(p.topP > 0 && p.topP <= 1)) bad('topP must be in (0, 1]', p.topP);
  if (!(Number.isFinite(p.penalty) && p.penalty > 0)) bad('penalty must be a finite number > 0', p.penalty);
  if (!(Number.isInteger(p.seed) && p.seed >= 0 && p.seed < 2 ** 32)) bad('seed must be an integer in [0, 2^32)', p.seed);
}

/** The 32-bit PCG hash the sampler's random stream is built from (as the WGSL `pcg`). */
export function pcgHash(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/**
 * The uniform number in [0, 1) the sampler draws for (seed, step, row): 24 bits of a PCG
 * hash chain, identical on the GPU and here.
 *
 * @example
 * ```ts
 * samplerUniform(7, 0, 0); // the first draw of seed 7
 * ```
 */
export function samplerUniform(seed: number, step: number, row: number): number {
  return (pcgHash((pcgHash((pcgHash(seed) ^ step) >>> 0) ^ row) >>> 0) >>> 8) / 16777216;
}

/**
 * The sampler's rules as a plain loop over one row (f64): the token chosen for the uniform
 * number `u`, and the margin (relative to the kept mass) by which `u`, the top-p cut and
 * the top-k cut are away from a decision boundary; below ~1e-5 the GPU's f32 sums may decide
 * differently.
 *
 * @example
 * ```ts
 * const { token } = sampleTokenReference(row, { temperature: 0.7, topK: 0, topP: 0.9, penalty: 1, seed: 1 }, new Set(), samplerUniform(1, 0, 0));
 * ```
 */
export function sampleTokenReference(logits: ArrayLike<number>, params: Omit<TokenSamplingParams, 'seed'>, seen: ReadonlySet<number>, u: number): { token: number; margin: number } {
  const V = logits.length;
  const y = new Float64Array(V);
  for (let j = 0; j < V; j++) {
    let v = Math.fround(logits[j]);
    if (params.penalty !== 1 && seen.has(j)) v = Math.fround(v > 0 ? v / params.penalty : v * params.penalty);
    y[j] = v;
  }
  let best = -1;
  for (let j = 0; j < V; j++) if (!Number.isNaN(y[j]) && (best < 0 || y[j] > y[best])) best = j;
  if (best < 0) return { token: 0, margin: Infinity };
  if (!(params.temperature > 0)) return { token: best, margin: Infinity };
  const m = y[best];
  const e = Array.from(y, (v) => (Number.isNaN(v) ? 0 : Math.exp((v - m) / params.temperature)));
  const valid = Array.from({ length: V }, (_, j) => j).filter((j) => !Number.isNaN(y[j]));
  const desc = [...valid].sort((a, b) => y[b] - y[a] || a - b);
  let cut = -Infinity;
  let margin = Infinity;
  if (params.topK > 0 && params.topK < V) cut = y[desc[Math.min(params.topK, desc.length) - 1]];
  if (params.topP < 1) {
    const kept = desc.filter((j) => y[j] >= cut);
    const zk = kept.reduce((a, j) => a + e[j], 0);
    const target = params.topP * zk;
    let acc = 0;
    for (let i = 0; i < kept.length; ) {
      // every token tied at this value goes in together
      let k = i;
      let group = 0;
      while (k < kept.length && y[kept[k]] === y[kept[i]]) group += e[kept[k++]];
      const before = acc;
      acc += group;
      if (acc >= target || k === kept.length) {
        cut = Math.max(cut, y[kept[i]]);
        margin = Math.min(margin, Math.abs(acc - target) / zk, Math.abs(target - before) / zk);
        break;
      }
      i = k;
    }
  }
  let total = 0;
  for (let j = 0; j < V; j++) if (y[j] >= cut) total += e[j];
  const target = u * total;
  let acc = 0;
  let token = -1;
  let last = -1;
  for (let j = 0; j < V; j++) {
    if (!(y[j] >= cut)) continue;
    last = j;
    const before = acc;
    acc += e[j];
    if (acc > target) {
      token = j;
      margin = Math.min(margin, (acc - target) / total, (target - before) / total);
      break;
    }
  }
  return { token: token < 0 ? last : token, margin };
}
