/**
 * Choosing the next token on the GPU: repetition penalty, greedy or temperature
 * sampling with top-k and top-p (nucleus), and a counter-based random number, in a few
 * dispatches, so a decode step can feed its own token to the next without the host reading
 * anything in between.
 *
 * Shape glossary (packages/core/README.md):
 *   M  rows (sequences)     D  row stride of the logits     V  vocabulary entries used (V <= D)
 *   S  slices of a row (1,024 entries each, one workgroup of 128 threads per slice and row)
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
 * most-significant-digit radix select (4 bits per level, 8 levels) finds the largest key
 * whose tail count (top-k) or tail probability mass (top-p) reaches the target.
 *
 * A row is split into slices so that a 50,280-entry vocabulary is read by ~50 workgroups at
 * once, each with all its loads in flight, instead of streamed through one SM (one workgroup
 * per row took ~0.2 ms a token on an H200). Each radix level is a dispatch: every workgroup
 * sums all slices' 16-bin histograms of the level before (the same sums, in the same order,
 * in every workgroup), takes the digit, and writes its slice's histogram of this level. The
 * records and the draw's state alternate between two parities, so a dispatch never reads
 * what another workgroup of the same dispatch writes.
 */
import { StatespaceError } from '../errors.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, memoWgsl, wgslBindings } from '../kernel.js';
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

/** Entries of a row one workgroup takes (a slice), threads per workgroup, entries per thread (all loads in flight). */
const SLICE = 1024;
const ST = 128;
const SU = SLICE / ST;
/** u32 words per slice record: 16 digit bins, the kept mass, the slice's largest key and its index. */
const REC = 32;
/** Radix levels of 4 bits: 16 bins, 8 levels over a 32-bit key. */
const LEVELS = 8;
/** State words per row and parity: prefix, above (f32), low, goal (f32), done, chosen. */
const STATE = 8;

const PHASE = { max: 0, weights: 1, level: 2, end: 3, pick: 4 } as const;
const SELECT = { none: 0, count: 1, mass: 2 } as const;

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

const slicePass = (loads: PassSlots['loads'], body: PassSlots['body']) => stridedPassWgsl({ unroll: SU, start: 'a + li', stride: 'RT', end: 'e', loads, body });

/** One dispatch of the sampler: which phase, and for the radix phases the level and the selects. */
export interface SamplerDispatch {
  phase: (typeof PHASE)[keyof typeof PHASE];
  level: number;
  sel: (typeof SELECT)[keyof typeof SELECT];
  next: (typeof SELECT)[keyof typeof SELECT];
}

/**
 * The dispatches one draw runs, in order: the slices' maxima; the keys and weights (and the
 * first select's level-0 histogram); per select (top-k on counts, then top-p on the mass of
 * what top-k kept) levels 1..7 and an end that fixes its cut; the pick. 11 for top-p alone,
 * 19 with top-k too, 3 for plain temperature sampling.
 */
export function samplerDispatches(params: Pick<TokenSamplingParams, 'temperature' | 'topK' | 'topP'>, V: number): SamplerDispatch[] {
  const selects: SamplerDispatch['sel'][] = [];
  if (params.temperature > 0 && params.topK > 0 && params.topK < V) selects.push(SELECT.count);
  if (params.temperature > 0 && params.topP < 1) selects.push(SELECT.mass);
  const out: SamplerDispatch[] = [{ phase: PHASE.max, level: 0, sel: SELECT.none, next: SELECT.none }];
  out.push({ phase: PHASE.weights, level: 0, sel: selects[0] ?? SELECT.none, next: SELECT.none });
  selects.forEach((sel, i) => {
    for (let level = 1; level < LEVELS; level++) out.push({ phase: PHASE.level, level, sel, next: SELECT.none });
    out.push({ phase: PHASE.end, level: LEVELS, sel, next: selects[i + 1] ?? SELECT.none });
  });
  out.push({ phase: PHASE.pick, level: 0, sel: SELECT.none, next: SELECT.none });
  return out;
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
  S: 'u32',
  phase: 'u32',
  level: 'u32',
  sel: 'u32',
  next: 'u32',
  pin: 'u32',
} as const satisfies UniformLayout;

const bindings = [
  { name: 'x', type: 'f32', access: 'read' }, // (M, D)
  { name: 'presence', type: 'u32', access: 'read_write' }, // (M, V)
  { name: 'keys', type: 'u32', access: 'read_write' }, // (M, V) scratch
  { name: 'w', type: 'f32', access: 'read_write' }, // (M, V) scratch: unnormalised probabilities
  { name: 'ids', type: 'i32', access: 'read_write' }, // (M)
  { name: 'part', type: 'u32', access: 'read_write' }, // (M, 2, S, REC) slice records, two parities
  { name: 'st', type: 'u32', access: 'read_write' }, // (M, 2, STATE) the draw's state, two parities
] as const;

function samplerWgsl(): string {
  return `${wgslBindings(layout, bindings)}
const RT = ${ST}u;
const SLICE = ${SLICE}u;
const REC = ${REC}u;
const NONE = 0xffffffffu;
var<workgroup> hist: array<f32, ${16 * ST}>;
var<workgroup> red: array<f32, ${ST}>;
var<workgroup> tmp: array<f32, ${ST + 8}>;
var<workgroup> folded: array<f32, 17>;
var<workgroup> redK: array<u32, ${ST}>;
var<workgroup> redI: array<u32, ${ST}>;
var<workgroup> shU: array<u32, 4>;
var<workgroup> stw: array<u32, ${STATE}>;
var<workgroup> shF: array<f32, 2>;
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
fn stAt(r: u32, p: u32) -> u32 { return (r * 2u + p) * ${STATE}u; }
fn recAt(r: u32, p: u32, s: u32) -> u32 { return ((r * 2u + p) * u.S + s) * REC; }
// Sums, over the workgroup's threads, the 16 columns hist[c * RT + t] and red[t] into folded[0..16]
// (two levels: 8 threads add 16 partials each, then one thread the 8).
fn reduce17(li: u32) {
  workgroupBarrier();
  let c = li / 8u;
  let q = li % 8u;
  var t = 0.0;
  for (var i = 0u; i < 16u; i++) { t += hist[c * RT + q * 16u + i]; }
  tmp[li] = t;
  if (li < 8u) {
    var e = 0.0;
    for (var i = 0u; i < 16u; i++) { e += red[li * 16u + i]; }
    tmp[RT + li] = e;
  }
  workgroupBarrier();
  if (li < 17u) {
    var f = 0.0;
    let at = select(li * 8u, RT, li == 16u);
    for (var i = 0u; i < 8u; i++) { f += tmp[at + i]; }
    folded[li] = f;
  }
  workgroupBarrier();
}
// This thread's 16 bins and kept mass into the columns reduce17 sums.
fn binsOf(li: u32, b: array<vec4<f32>, 4>, extra: f32) {
  for (var i = 0u; i < 4u; i++) {
    hist[(4u * i) * RT + li] = b[i].x; hist[(4u * i + 1u) * RT + li] = b[i].y;
    hist[(4u * i + 2u) * RT + li] = b[i].z; hist[(4u * i + 3u) * RT + li] = b[i].w;
  }
  red[li] = extra;
}
fn addBin(b: ptr<function, array<vec4<f32>, 4>>, d: u32, a: f32) {
  let dv = vec4<u32>(d);
  (*b)[0] += select(vec4<f32>(0.0), vec4<f32>(a), dv == vec4<u32>(0u, 1u, 2u, 3u));
  (*b)[1] += select(vec4<f32>(0.0), vec4<f32>(a), dv == vec4<u32>(4u, 5u, 6u, 7u));
  (*b)[2] += select(vec4<f32>(0.0), vec4<f32>(a), dv == vec4<u32>(8u, 9u, 10u, 11u));
  (*b)[3] += select(vec4<f32>(0.0), vec4<f32>(a), dv == vec4<u32>(12u, 13u, 14u, 15u));
}
// The workgroup's bins and kept mass summed into slice s's record of parity pout.
fn storeRecord(r: u32, s: u32, pout: u32, b: array<vec4<f32>, 4>, extra: f32, li: u32) {
  binsOf(li, b, extra);
  reduce17(li);
  if (li < 17u) { part[recAt(r, pout, s) + li] = bitcast<u32>(folded[li]); }
}
// The first largest (key, index) of the threads' candidates into redK[0], redI[0] (index NONE: no candidate).
fn firstLargest(bk: u32, bi: u32, li: u32) {
  redK[li] = bk; redI[li] = bi;
  workgroupBarrier();
  for (var h = RT / 2u; h > 0u; h >>= 1u) {
    if (li < h) {
      let ok = redK[li + h]; let oi = redI[li + h];
      if (oi != NONE && (redI[li] == NONE || ok > redK[li] || (ok == redK[li] && oi < redI[li]))) { redK[li] = ok; redI[li] = oi; }
    }
    workgroupBarrier();
  }
}
fn hiMaskOf(level: u32) -> u32 {
  return select(~((1u << (32u - 4u * level)) - 1u), 0u, level == 0u);
}
// This slice's histogram for radix level 'level' (0..7): the 16 bins of digit (k >> shift) & 15 over keys >= low
// whose bits above the digit match prefix (counts, or weights with mass), and the weight of every key >= low.
// Keys and weights are read back from the scratch rows.
fn sliceHistogram(r: u32, s: u32, a: u32, e: u32, level: u32, low: u32, prefix: u32, mass: bool, pout: u32, li: u32) {
  let shift = 28u - 4u * level;
  let hiMask = hiMaskOf(level);
  let base = r * u.V;
  var b = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  var extra = 0.0;
  ${slicePass(
    (t, j) => `let k${t} = keys[base + ${j}]; let w${t} = w[base + ${j}];`,
    (t) => `if (k${t} >= low && k${t} != 0u) {
        extra += w${t};
        if ((k${t} & hiMask) == (prefix & hiMask)) { addBin(&b, (k${t} >> shift) & 15u, select(1.0, w${t}, mass)); }
      }`,
  )}
  storeRecord(r, s, pout, b, extra, li);
}
// Every slice's record of parity pin summed (bins and kept mass) into folded; the same order in every workgroup.
fn foldRecords(r: u32, pin: u32, li: u32) {
  var b = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  var extra = 0.0;
  for (var s = li; s < u.S; s += RT) {
    let o = recAt(r, pin, s);
    for (var i = 0u; i < 4u; i++) {
      b[i] += vec4<f32>(bitcast<f32>(part[o + 4u * i]), bitcast<f32>(part[o + 4u * i + 1u]), bitcast<f32>(part[o + 4u * i + 2u]), bitcast<f32>(part[o + 4u * i + 3u]));
    }
    extra += bitcast<f32>(part[o + 16u]);
  }
  binsOf(li, b, extra);
  reduce17(li);
}
// The inclusive scan of v over the workgroup's threads (Hillis-Steele, log2(RT) steps); the total is left in red[RT - 1].
fn scanThreads(v: f32, li: u32) -> f32 {
  var incl = v;
  workgroupBarrier();
  red[li] = incl;
  workgroupBarrier();
  for (var off = 1u; off < RT; off <<= 1u) {
    let o = select(0.0, red[select(0u, li - off, li >= off)], li >= off);
    workgroupBarrier();
    incl += o;
    red[li] = incl;
    workgroupBarrier();
  }
  return incl;
}
// The first thread with mass m whose inclusive sum passes goal, or the last thread with mass where rounding ran past the end.
fn ownerOf(m: f32, incl: f32, goal: f32, li: u32) -> u32 {
  if (li == 0u) { atomicStore(&ownerA, NONE); atomicStore(&lastA, 0u); }
  workgroupBarrier();
  if (m > 0.0) {
    atomicMax(&lastA, li);
    if (goal < incl) { atomicMin(&ownerA, li); }
  }
  workgroupBarrier();
  let first = atomicLoad(&ownerA);
  return select(first, atomicLoad(&lastA), first == NONE);
}
fn writeState(r: u32, p: u32, prefix: u32, above: f32, low: u32, goal: f32, done: u32, chosen: u32) {
  let o = stAt(r, p);
  st[o] = prefix; st[o + 1u] = bitcast<u32>(above); st[o + 2u] = low; st[o + 3u] = bitcast<u32>(goal);
  st[o + 4u] = done; st[o + 5u] = chosen;
}
@compute @workgroup_size(${ST})
fn main(${WGSL_BUILTINS}) {
  let s = wid.x;
  let r = wid.y;
  if (r >= u.rows) { return; }
  let a = s * SLICE;
  let e = min(u.V, a + SLICE);
  let base = r * u.V;
  let pin = u.pin;
  let pout = 1u - u.pin;
  if (u.phase == ${PHASE.max}u) {
    // the slice's largest penalised logit (first index on ties), by key
    var bk = 0u;
    var bi = NONE;
    ${slicePass(
      (t, j) => `let y${t} = penalised(r, ${j});`,
      (t) => `let k = keyOf(y${t}); if (k != 0u && (bi == NONE || k > bk)) { bk = k; bi = j; }`,
    )}
    firstLargest(bk, bi, li);
    if (li == 0u) { let o = recAt(r, pout, s); part[o + 17u] = redK[0]; part[o + 18u] = redI[0]; }
    return;
  }
  // the draw's state from the dispatch before (the maxima's dispatch leaves none)
  let so = stAt(r, pin);
  if (li < ${STATE}u) { stw[li] = st[so + li]; }
  let done = workgroupUniformLoad(&stw[4]) != 0u && u.phase != ${PHASE.weights}u;
  if (u.phase == ${PHASE.pick}u) {
    var chosen = stw[5];
    if (!done) {
      // 1. the kept mass of each slice, this thread's run of slices, an inclusive scan over the threads
      let q = (u.S + RT - 1u) / RT;
      let s0 = min(u.S, li * q);
      let s1 = min(u.S, s0 + q);
      var m = 0.0;
      for (var t = s0; t < s1; t++) { m += bitcast<f32>(part[recAt(r, pin, t) + 16u]); }
      let incl = scanThreads(m, li);
      let goal = uniform01(u.seed, u.step, r) * red[RT - 1u];
      if (li == ownerOf(m, incl, goal, li)) {
        // the slice where the running mass passes the draw (or the last with mass)
        var acc = incl - m;
        var sl = s0;
        var lastMass = s0;
        var found = false;
        for (var t = s0; t < s1 && !found; t++) {
          let ms = bitcast<f32>(part[recAt(r, pin, t) + 16u]);
          if (ms > 0.0) {
            lastMass = t;
            if (acc + ms > goal) { sl = t; found = true; } else { acc += ms; }
          }
        }
        if (!found) { sl = lastMass; acc -= bitcast<f32>(part[recAt(r, pin, lastMass) + 16u]); }
        shU[0] = sl;
        shF[0] = goal - acc;
      }
      workgroupBarrier();
      // 2. inside that slice: this thread's 8 entries, a scan, the owner's walk
      let sl = workgroupUniformLoad(&shU[0]);
      let goal2 = shF[0];
      let low = stw[2];
      let j0 = min(u.V, sl * SLICE + li * ${SU}u);
      let j1 = min(u.V, j0 + ${SU}u);
      var sm = 0.0;
      ${blockPassWgsl({
        unroll: SU,
        from: 'j0',
        to: 'j1',
        loads: (t, j) => `let k${t} = keys[base + ${j}]; let w${t} = w[base + ${j}];`,
        body: (t) => `if (k${t} >= low && k${t} != 0u) { sm += w${t}; }`,
      })}
      let inc2 = scanThreads(sm, li);
      if (li == ownerOf(sm, inc2, goal2, li)) {
        var acc = inc2 - sm;
        var pick = NONE;
        var lastKept = j0;
        ${blockPassWgsl({
          unroll: SU,
          from: 'j0',
          to: 'j1',
          more: 'pick == NONE',
          loads: (t, j) => `let k${t} = keys[base + ${j}]; let w${t} = w[base + ${j}];`,
          body: (t) => `if (pick == NONE && k${t} >= low && k${t} != 0u) { acc += w${t}; lastKept = j; if (acc > goal2) { pick = j; } }`,
        })}
        shU[1] = select(pick, lastKept, pick == NONE);
      }
      workgroupBarrier();
      chosen = shU[1];
    }
    if (li == 0u) {
      ids[r] = i32(chosen);
      if (u.penalty != 1.0) { presence[base + chosen] = 1u; }
    }
    return;
  }
  if (done) {
    // decided already (greedy, or every logit NaN): pass the state on
    if (s == 0u && li < ${STATE}u) { st[stAt(r, pout) + li] = stw[li]; }
    return;
  }
  if (u.phase == ${PHASE.weights}u) {
    // the row's largest key from the slices' maxima (slices in index order: the first index wins ties)
    var bk = 0u;
    var bi = NONE;
    for (var t = li; t < u.S; t += RT) {
      let o = recAt(r, pin, t);
      let k = part[o + 17u]; let i = part[o + 18u];
      if (i != NONE && (bi == NONE || k > bk)) { bk = k; bi = i; }
    }
    firstLargest(bk, bi, li);
    let maxKey = redK[0];
    let argmaxIndex = workgroupUniformLoad(&redI[0]);
    if (!(u.temperature > 0.0) || argmaxIndex == NONE) {
      if (s == 0u && li == 0u) { writeState(r, pout, 0u, 0.0, 1u, 0.0, 1u, select(argmaxIndex, 0u, argmaxIndex == NONE)); }
      return;
    }
    // keys and unnormalised probabilities exp((y - max) / T) of the slice, then the first select's level 0
    let m = valueOf(maxKey);
    let mass = u.sel == ${SELECT.mass}u;
    var b = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var extra = 0.0;
    ${slicePass(
      (t, j) => `let y${t} = penalised(r, ${j});`,
      (t) => `let k = keyOf(y${t}); let wt = select(exp((y${t} - m) / u.temperature), 0.0, k == 0u);
      keys[base + j] = k; w[base + j] = wt;
      if (k != 0u) { extra += wt; addBin(&b, k >> 28u, select(1.0, wt, mass)); }`,
    )}
    storeRecord(r, s, pout, b, extra, li);
    if (s == 0u && li == 0u) { writeState(r, pout, 0u, 0.0, 1u, f32(u.topK), 0u, 0u); }
    return;
  }
  // a radix phase: the digit of the level before from every slice's bins, then this level's bins
  var prefix = stw[0];
  let above = bitcast<f32>(stw[1]);
  var low = stw[2];
  var goal = bitcast<f32>(stw[3]);
  foldRecords(r, pin, li);
  if (u.level == 1u && u.sel == ${SELECT.mass}u) { goal = u.topP * folded[16]; }
  if (li == 0u) {
    var acc = above;
    var digit = 0u;
    for (var d = 15i; d >= 0; d--) {
      let c = folded[u32(d)];
      if (acc + c >= goal) { digit = u32(d); break; }
      acc += c;
    }
    shU[0] = prefix | (digit << (28u - 4u * (u.level - 1u)));
    shF[0] = acc;
  }
  workgroupBarrier();
  prefix = shU[0];
  var newAbove = shF[0];
  if (u.phase == ${PHASE.level}u) {
    if (s == 0u && li == 0u) { writeState(r, pout, prefix, newAbove, low, goal, 0u, 0u); }
    sliceHistogram(r, s, a, e, u.level, low, prefix, u.sel == ${SELECT.mass}u, pout, li);
    return;
  }
  // the end of a select: its cut, then the next select's level 0 (or the kept mass alone)
  low = max(low, prefix);
  if (s == 0u && li == 0u) { writeState(r, pout, 0u, 0.0, low, 0.0, 0u, 0u); }
  sliceHistogram(r, s, a, e, 0u, low, 0u, u.next == ${SELECT.mass}u, pout, li);
}`;
}

/**
 * Builds one dispatch of the sampler: a workgroup of 128 threads per slice of 1,024 entries
 * and row (the pick: one per row). Bindings: logits (M, D) f32, presence (M, V) u32 (tokens
 * seen, for the penalty; the chosen token is marked), keys and weights (M, V) scratch, ids (M)
 * i32 out, records (M, 2, S, 32) u32 and state (M, 2, 8) u32 scratch ({@link TokenSamplerBuffers}).
 *
 * @example
 * ```ts
 * const params = { temperature: 0.7, topK: 0, topP: 0.9, penalty: 1, seed: 1 };
 * const kernels = samplerDispatches(params, 50280).map((d, i) => createSampleTokensKernel({ rows: 1, D: 50280, V: 50280 }, params, 0, d, i));
 * ```
 */
export function createSampleTokensKernel(shape: { rows: number; D: number; V: number }, params: TokenSamplingParams, step: number, d: SamplerDispatch, index: number): KernelDescriptor {
  const S = Math.ceil(shape.V / SLICE);
  return {
    name: 'sample_tokens',
    cacheKey: '',
    wgsl: memoWgsl('sample_tokens', 'sliced', samplerWgsl),
    workgroupSize: [ST, 1, 1],
    dispatch: [d.phase === PHASE.pick ? 1 : S, shape.rows, 1],
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
      S,
      phase: d.phase,
      level: d.level,
      sel: d.sel,
      next: d.next,
      pin: (index + 1) % 2,
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
  /** (M, 2, ⌈V / 1024⌉, 32) u32 scratch: the slices' records. */
  records: Tensor;
  /** (M, 2, 8) u32 scratch: the draw's state between dispatches. */
  state: Tensor;
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
    records: runtime.empty([rows, 2, Math.ceil(V / SLICE), REC], 'u32', 'sampler.records'),
    state: runtime.empty([rows, 2, STATE], 'u32', 'sampler.state'),
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
  if (rows > 65535) throw new StatespaceError('INVALID_ARGUMENT', `sampleTokens: at most 65,535 rows at once, got ${rows}`);
  const S = Math.ceil(V / SLICE);
  const sizes = [['presence', buffers.presence, rows * V], ['keys', buffers.keys, rows * V], ['weights', buffers.weights, rows * V], ['records', buffers.records, rows * 2 * S * REC], ['state', buffers.state, rows * 2 * STATE]] as const;
  for (const [name, t, want] of sizes) {
    if (t.size !== want) throw new StatespaceError('SHAPE_MISMATCH', `sampleTokens: ${name} holds ${t.size} values, expected ${want} for rows=${rows} x vocab=${V} (createTokenSamplerBuffers)`);
  }
  checkParams(params);
  const tensors = [logits, buffers.presence, buffers.keys, buffers.weights, out, buffers.records, buffers.state];
  samplerDispatches(params, V).forEach((d, i) => runtime.run(createSampleTokensKernel({ rows, D, V }, params, step, d, i), tensors));
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
