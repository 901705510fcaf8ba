/**
 * BPE merges of one long word in O(n log n) with small constants, for words the model's own
 * `bpe()` (of @huggingface/tokenizers) would take seconds on (a megabyte of "a" or of spaces is a
 * single word for some pre-tokenizers).
 *
 * The algorithm is the one of tokenizers' `Word::merge_all` and of the model's `bpe()`: repeatedly
 * merge the adjacent pair of lowest rank, the leftmost first among equal ranks (the position of a
 * symbol is the index of its first character in the word). Symbols live in flat arrays; a heap of
 * (rank, position) entries, each stamped with its symbol's version, replaces the linked node
 * objects: an entry is stale once its symbol merged or its right neighbour changed.
 */

/** Pair ranks: left token -> right token -> rank (the last of duplicate merges wins, as in the model). */
export type MergeRanks = Map<string, Map<string, number>>;

/** Builds {@link MergeRanks} from the model's `[left, right]` merges. */
export function mergeRanks(merges: readonly (readonly [string, string])[]): MergeRanks {
  const ranks: MergeRanks = new Map();
  for (let i = 0; i < merges.length; i++) {
    const [left, right] = merges[i];
    let row = ranks.get(left);
    if (!row) ranks.set(left, (row = new Map()));
    row.set(right, i);
  }
  return ranks;
}

const POSITION_SPAN = 2 ** 32;

/**
 * The BPE tokens of `word` (before vocabulary lookup), equal to the model's `bpe(word)`.
 *
 * @example
 * ```ts
 * bpeMerge('aaaa', mergeRanks([['a', 'a'], ['aa', 'aa']])); // ['aaaa']
 * ```
 */
export function bpeMerge(word: string, ranks: MergeRanks): string[] {
  const symbols = Array.from(word);
  const n = symbols.length;
  if (n <= 1) return symbols;
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const version = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // A binary min-heap of keys rank * 2^32 + position (exact in a double), with the symbol's version alongside.
  let keys = new Float64Array(Math.max(16, n));
  let stamps = new Int32Array(keys.length);
  let size = 0;
  const push = (position: number) => {
    const right = next[position];
    const rank = ranks.get(symbols[position])?.get(symbols[right]);
    if (rank === undefined) return;
    if (size === keys.length) {
      const grownKeys = new Float64Array(size * 2);
      grownKeys.set(keys);
      keys = grownKeys;
      const grownStamps = new Int32Array(size * 2);
      grownStamps.set(stamps);
      stamps = grownStamps;
    }
    const key = rank * POSITION_SPAN + position;
    const stamp = version[position];
    let i = size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (keys[parent] <= key) break;
      keys[i] = keys[parent];
      stamps[i] = stamps[parent];
      i = parent;
    }
    keys[i] = key;
    stamps[i] = stamp;
  };
  const pop = (): [number, number] => {
    const top: [number, number] = [keys[0], stamps[0]];
    const key = keys[--size];
    const stamp = stamps[size];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && keys[child + 1] < keys[child]) child++;
      if (keys[child] >= key) break;
      keys[i] = keys[child];
      stamps[i] = stamps[child];
      i = child;
    }
    keys[i] = key;
    stamps[i] = stamp;
    return top;
  };

  for (let i = 0; i + 1 < n; i++) push(i);
  while (size > 0) {
    const [key, stamp] = pop();
    const position = key % POSITION_SPAN;
    if (!alive[position] || version[position] !== stamp || next[position] === -1) continue;
    const right = next[position];
    symbols[position] += symbols[right];
    alive[right] = 0;
    next[position] = next[right];
    if (next[position] !== -1) prev[next[position]] = position;
    version[position]++;
    const left = prev[position];
    if (left !== -1) {
      version[left]++;
      push(left);
    }
    if (next[position] !== -1) push(position);
  }
  const out: string[] = [];
  for (let i = 0; i !== -1; i = next[i]) out.push(symbols[i]);
  return out;
}
