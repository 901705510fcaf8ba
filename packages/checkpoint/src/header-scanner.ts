/**
 * A single-pass reader of the JSON text of a safetensors header, written for
 * hostile input: linear time in the header length, no recursion, and nothing
 * allocated that the text does not already pay for (no generic JSON tree is
 * built; values the format does not use are checked for syntax and skipped).
 *
 * It reads exactly the shape the format defines (spec: github.com/huggingface/safetensors,
 * "Format"): one object whose members are `"__metadata__": {str: str}` or
 * `"<tensor>": {"dtype": str, "shape": [int...], "data_offsets": [int, int], ...}`.
 * Integers are plain decimal literals (`0` or `[1-9][0-9]*`): a sign, a
 * fraction or an exponent is not an integer here, whatever its value.
 *
 * @internal
 */

/** One tensor entry as written; fields that are absent or of the wrong kind are reported by kind. */
export interface RawTensorEntry {
  readonly name: string;
  /** The dtype string, or why there is none. */
  readonly dtype: string | { missing: true } | { wrongKind: true };
  /** The dimensions, or why they are unusable. */
  readonly shape: number[] | { missing: true } | { wrongKind: true } | { tooManyDims: true };
  /** `[begin, end]`, or why they are unusable. */
  readonly offsets: [number, number] | { missing: true } | { wrongKind: true };
}

/** What went wrong while scanning; `kind` picks the error code. */
export interface ScanProblem {
  readonly kind: 'syntax' | 'duplicate' | 'entry' | 'metadata' | 'tooMany';
  readonly message: string;
  /** The tensor (top-level key) concerned. */
  readonly tensor?: string;
  /** For a duplicate: the repeated key. */
  readonly key?: string;
}

/** The scan of a whole header: its metadata and entries, or the first problem met. */
export type ScanResult =
  | { ok: true; metadata: Record<string, string>; entries: RawTensorEntry[] }
  | { ok: false; problem: ScanProblem };

/** Limits that bound the work and memory a header can ask for. */
export interface ScanLimits {
  /** The most tensor entries one header may hold. */
  readonly maxTensors: number;
  /** The most dimensions one tensor may have. */
  readonly maxRank: number;
}

class Stop {
  constructor(readonly problem: ScanProblem) {}
}

const WS_SPACE = 0x20;
const WS_TAB = 0x09;
const WS_LF = 0x0a;
const WS_CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * Scans the header text. The first character must be `{` (the format allows
 * trailing spaces as padding, nothing before the object).
 *
 * @internal
 */
export function scanHeader(text: string, limits: ScanLimits): ScanResult {
  const scanner = new Scanner(text, limits);
  try {
    return scanner.run();
  } catch (error) {
    if (error instanceof Stop) return { ok: false, problem: error.problem };
    throw error;
  }
}

class Scanner {
  private i = 0;
  /** The first semantic problem: kept while the rest is checked for syntax, so broken JSON always reads as broken JSON. */
  private problem: ScanProblem | undefined;

  constructor(
    private readonly text: string,
    private readonly limits: ScanLimits,
  ) {}

  run(): ScanResult {
    const { text } = this;
    if (text.charCodeAt(0) !== 0x7b) this.syntax(`does not start with "{" (starts with ${JSON.stringify(text.slice(0, 16))})`);
    this.i = 1;
    const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
    const entries: RawTensorEntry[] = [];
    const names = new Set<string>();
    this.ws();
    if (this.peek() === 0x7d) this.i++;
    else {
      for (;;) {
        this.ws();
        const name = this.string();
        this.ws();
        this.expect(0x3a, '":"');
        this.ws();
        if (!this.problem && names.has(name)) this.fail({ kind: 'duplicate', message: `tensor "${name}" appears twice in the header`, tensor: name, key: name });
        if (!this.problem) names.add(name);
        if (name === '__metadata__') this.metadata(metadata);
        else {
          const entry = this.entry(name);
          if (entry && !this.problem) {
            if (entries.length >= this.limits.maxTensors) {
              this.fail({ kind: 'tooMany', message: `holds more than ${this.limits.maxTensors} tensors` });
            } else entries.push(entry);
          }
        }
        this.ws();
        const c = this.peek();
        if (c === 0x2c) this.i++;
        else if (c === 0x7d) {
          this.i++;
          break;
        } else this.syntax('expected "," or "}" after a member');
      }
    }
    // Padding: JSON whitespace only.
    this.ws();
    if (this.i !== text.length) this.syntax('has text after the closing "}"');
    if (this.problem) return { ok: false, problem: this.problem };
    return { ok: true, metadata, entries };
  }

  private fail(problem: ScanProblem): void {
    this.problem ??= problem;
  }

  private syntax(message: string): never {
    throw new Stop({ kind: 'syntax', message: `is not valid JSON: ${message} at character ${this.i}` });
  }

  private peek(): number {
    return this.i < this.text.length ? this.text.charCodeAt(this.i) : -1;
  }

  private ws(): void {
    const { text } = this;
    for (;;) {
      const c = text.charCodeAt(this.i);
      if (c === WS_SPACE || c === WS_TAB || c === WS_LF || c === WS_CR) this.i++;
      else return;
    }
  }

  private expect(code: number, what: string): void {
    if (this.peek() !== code) this.syntax(`expected ${what}`);
    this.i++;
  }

  /** A JSON string, decoded. Escapes are decoded by JSON.parse on the (already checked) literal alone: linear. */
  private string(): string {
    const { text } = this;
    if (this.peek() !== QUOTE) this.syntax('expected a string');
    const start = this.i;
    let escaped = false;
    for (this.i++; ; this.i++) {
      if (this.i >= text.length) this.syntax('unterminated string');
      const c = text.charCodeAt(this.i);
      if (c === QUOTE) break;
      if (c < 0x20) this.syntax('control character in a string');
      if (c === BACKSLASH) {
        escaped = true;
        const e = text.charCodeAt(this.i + 1);
        if (e === 0x75 /* u */) {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(this.i + 2, this.i + 6))) this.syntax('bad \\u escape');
          this.i += 5;
        } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) this.i++;
        else this.syntax('bad escape');
      }
    }
    this.i++;
    return escaped ? (JSON.parse(text.slice(start, this.i)) as string) : text.slice(start + 1, this.i - 1);
  }

  /** A JSON number literal; returns its value when it is a plain non-negative decimal integer within 2^53, else undefined. */
  private number(): number | undefined {
    const { text } = this;
    const start = this.i;
    let plain = true;
    if (this.peek() === 0x2d) {
      plain = false;
      this.i++;
    }
    const c = this.peek();
    if (c === 0x30) this.i++;
    else if (c >= 0x31 && c <= 0x39) while (isDigit(this.peek())) this.i++;
    else this.syntax('bad number');
    if (this.peek() === 0x2e) {
      plain = false;
      this.i++;
      if (!isDigit(this.peek())) this.syntax('bad number');
      while (isDigit(this.peek())) this.i++;
    }
    if (this.peek() === 0x65 || this.peek() === 0x45) {
      plain = false;
      this.i++;
      if (this.peek() === 0x2b || this.peek() === 0x2d) this.i++;
      if (!isDigit(this.peek())) this.syntax('bad number');
      while (isDigit(this.peek())) this.i++;
    }
    if (!plain || this.i - start > 16) return undefined;
    const value = Number(text.slice(start, this.i));
    return Number.isSafeInteger(value) ? value : undefined;
  }

  /** Checks and skips any JSON value, iteratively (no recursion, whatever the nesting). */
  private skipValue(): void {
    const stack: number[] = []; // 0x7d for an open object, 0x5d for an open array
    for (;;) {
      this.ws();
      const c = this.peek();
      if (c === 0x7b || c === 0x5b) {
        this.i++;
        this.ws();
        const close = c === 0x7b ? 0x7d : 0x5d;
        if (this.peek() === close) this.i++;
        else {
          stack.push(close);
          if (close === 0x7d) this.memberKey();
          continue;
        }
      } else if (c === QUOTE) this.string();
      else if (c === 0x2d || isDigit(c)) this.number();
      else if (this.text.startsWith('true', this.i)) this.i += 4;
      else if (this.text.startsWith('false', this.i)) this.i += 5;
      else if (this.text.startsWith('null', this.i)) this.i += 4;
      else this.syntax('expected a value');
      // After a value: close containers or move on to the next element.
      for (;;) {
        if (stack.length === 0) return;
        this.ws();
        const top = stack[stack.length - 1];
        const d = this.peek();
        if (d === top) {
          this.i++;
          stack.pop();
          continue;
        }
        if (d !== 0x2c) this.syntax(`expected "," or "${String.fromCharCode(top)}"`);
        this.i++;
        if (top === 0x7d) this.memberKey();
        break;
      }
    }
  }

  private memberKey(): void {
    this.ws();
    this.string();
    this.ws();
    this.expect(0x3a, '":"');
  }

  /** An object's members, calling `member(key)` with the position at the value (which it must consume). */
  private members(member: (key: string) => void): void {
    this.expect(0x7b, '"{"');
    this.ws();
    if (this.peek() === 0x7d) {
      this.i++;
      return;
    }
    for (;;) {
      this.ws();
      const key = this.string();
      this.ws();
      this.expect(0x3a, '":"');
      this.ws();
      member(key);
      this.ws();
      const c = this.peek();
      if (c === 0x2c) this.i++;
      else if (c === 0x7d) {
        this.i++;
        return;
      } else this.syntax('expected "," or "}"');
    }
  }

  private metadata(out: Record<string, string>): void {
    if (this.peek() !== 0x7b) {
      this.fail({ kind: 'metadata', message: '"__metadata__" must be an object of strings' });
      this.skipValue();
      return;
    }
    const seen = new Set<string>();
    this.members((key) => {
      if (seen.has(key)) this.fail({ kind: 'duplicate', message: `key "${key}" appears twice in entry "__metadata__"`, tensor: '__metadata__', key });
      seen.add(key);
      if (this.peek() === QUOTE) {
        const value = this.string();
        if (!this.problem) out[key] = value;
      } else {
        this.fail({ kind: 'metadata', message: '"__metadata__" must be an object of strings' });
        this.skipValue();
      }
    });
  }

  private entry(name: string): RawTensorEntry | undefined {
    if (this.peek() !== 0x7b) {
      this.fail({ kind: 'entry', message: 'entry is not an object', tensor: name });
      this.skipValue();
      return undefined;
    }
    let dtype: RawTensorEntry['dtype'] = { missing: true };
    let shape: RawTensorEntry['shape'] = { missing: true };
    let offsets: RawTensorEntry['offsets'] = { missing: true };
    const seen: string[] = []; // the known keys met so far (three at most)
    this.members((key) => {
      if (seen.includes(key)) {
        this.fail({ kind: 'duplicate', message: `key "${key}" appears twice in entry "${name}"`, tensor: name, key });
        this.skipValue();
        return;
      }
      if (key === 'dtype') {
        seen.push(key);
        if (this.peek() === QUOTE) dtype = this.string();
        else {
          dtype = { wrongKind: true };
          this.skipValue();
        }
      } else if (key === 'shape') {
        seen.push(key);
        shape = this.integers(this.limits.maxRank);
      } else if (key === 'data_offsets') {
        seen.push(key);
        const values = this.integers(2);
        offsets = Array.isArray(values) && values.length === 2 ? [values[0], values[1]] : { wrongKind: true };
      } else {
        // Keys the format does not define are ignored, as the reference implementation does.
        this.skipValue();
      }
    });
    return { name, dtype, shape, offsets };
  }

  /** An array of plain non-negative integers (at most `max` of them), or why not. */
  private integers(max: number): number[] | { wrongKind: true } | { tooManyDims: true } {
    if (this.peek() !== 0x5b) {
      this.skipValue();
      return { wrongKind: true };
    }
    const start = this.i;
    this.i++;
    const values: number[] = [];
    this.ws();
    if (this.peek() === 0x5d) {
      this.i++;
      return values;
    }
    for (;;) {
      this.ws();
      const c = this.peek();
      if (!(c === 0x2d || isDigit(c))) {
        this.i = start;
        this.skipValue();
        return { wrongKind: true };
      }
      const value = this.number();
      if (value === undefined) {
        this.i = start;
        this.skipValue();
        return { wrongKind: true };
      }
      if (values.length >= max) {
        this.i = start;
        this.skipValue();
        return max === 2 ? { wrongKind: true } : { tooManyDims: true };
      }
      values.push(value);
      this.ws();
      const d = this.peek();
      if (d === 0x2c) this.i++;
      else if (d === 0x5d) {
        this.i++;
        return values;
      } else this.syntax('expected "," or "]"');
    }
  }
}
