/**
 * WGSL of passes over a row with several loads in flight: each trip declares the values of
 * `unroll` entries before any of them is used, so a thread waits one memory round trip per trip
 * instead of one per entry (a rolled loop's body uses its load at once). Used by the argmax, whose
 * one workgroup per row walks a whole vocabulary, and the sampler's slices of a row.
 *
 * SwiftShader's shader compile time grows steeply with the unrolled code (an argmax: 0.5 s at 16
 * loads, 12 s at 24, minutes at 32), and CI runs every kernel there: keep `unroll` at 16 or less.
 */

/** What a pass does per entry: `loads(t, j)` declares slot t's values at index expression j (clamped into the row); `body(t)` uses them for entry `j`, which is in the row. */
export interface PassSlots {
  unroll: number;
  loads: (t: number, j: string) => string;
  body: (t: number) => string;
}

const slots = (n: number) => Array.from({ length: n }, (_, t) => t);

/** Entries `start`, `start + stride`, ... below `end` (all WGSL u32 expressions; `end` >= 1). */
export function stridedPassWgsl(p: PassSlots & { start: string; stride: string; end: string }): string {
  const { unroll: U, start, stride, end } = p;
  return `for (var j0 = ${start}; j0 < ${end}; j0 += ${U}u * ${stride}) {
      ${slots(U).map((t) => p.loads(t, `min(j0 + ${t}u * ${stride}, ${end} - 1u)`)).join('\n      ')}
      ${slots(U).map((t) => `{ let j = j0 + ${t}u * ${stride}; if (j < ${end}) { ${p.body(t)} } }`).join('\n      ')}
    }`;
}

/** Entries `from` .. `to` − 1 one after another; `more` (a WGSL bool) may end the pass early. */
export function blockPassWgsl(p: PassSlots & { from: string; to: string; more?: string }): string {
  const { unroll: U, from, to } = p;
  return `for (var jb = ${from}; jb < ${to} && ${p.more ?? 'true'}; jb += ${U}u) {
      ${slots(U).map((t) => p.loads(t, `min(jb + ${t}u, ${to} - 1u)`)).join('\n      ')}
      ${slots(U).map((t) => `{ let j = jb + ${t}u; if (j < ${to}) { ${p.body(t)} } }`).join('\n      ')}
    }`;
}
