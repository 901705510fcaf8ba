/**
 * A restricted pickle reader for `torch.save` state dicts. It is not a pickle
 * VM that calls things: it knows a fixed list of opcodes (the data-only ones of
 * protocols 2-5, Python's `pickletools` names) and a fixed list of globals,
 * each mapped to a pure function written here that returns plain data:
 *
 *   collections.OrderedDict              -> an empty dict
 *   torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter -> a {@link PickledTensor}
 *   torch.FloatStorage, HalfStorage, ... -> a storage type, only inside a persistent id
 *
 * Anything else (another GLOBAL or STACK_GLOBAL, REDUCE of a value that is not
 * one of those functions, BUILD on anything but a dict, INST / OBJ / NEWOBJ /
 * EXT*, text PERSID...) is refused with `UNSAFE_PICKLE` before it could do
 * anything: no code runs. Every opcode consumes at least one byte and does
 * O(1) work (marks are kept on a stack, as CPython's `metastack`), so reading
 * is linear in the pickle's size.
 */
import type { SafetensorsDType } from './dtypes.js';
import { CheckpointError } from './errors.js';

/** A storage named by a persistent id `('storage', torch.XStorage, key, location, numel)`. */
export interface PickledStorage {
  readonly kind: 'storage';
  /** Element type of the storage. */
  readonly dtype: SafetensorsDType;
  /** The archive member `data/<key>` that holds its bytes. */
  readonly key: string;
  /** Where it lived when saved (`cpu`, `cuda:0`): ignored. */
  readonly location: string;
  /** Elements in the storage. */
  readonly numel: number;
}

/** A tensor: a strided view of a storage. */
export interface PickledTensor {
  readonly kind: 'tensor';
  readonly storage: PickledStorage;
  /** First element, in elements from the start of the storage. */
  readonly offset: number;
  readonly shape: readonly number[];
  /** In elements. */
  readonly stride: readonly number[];
}

/** Values the reader builds. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | { readonly kind: 'tuple'; readonly items: PickleValue[] }
  | { readonly kind: 'list'; readonly items: PickleValue[] }
  | { readonly kind: 'dict'; readonly keys: PickleValue[]; readonly values: PickleValue[] }
  | { readonly kind: 'global'; readonly name: AllowedGlobal }
  | PickledStorage
  | PickledTensor;

/** Storage classes and their element types. */
const STORAGES: Record<string, SafetensorsDType> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.DoubleStorage': 'F64',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
  'torch.ShortStorage': 'I16',
  'torch.CharStorage': 'I8',
  'torch.ByteStorage': 'U8',
  'torch.BoolStorage': 'BOOL',
};

const CALLABLES = ['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor', 'torch._utils._rebuild_parameter'] as const;

/** The globals a tensor state dict needs, and nothing else. */
export type AllowedGlobal = (typeof CALLABLES)[number] | keyof typeof STORAGES;

/** Globals that are real PyTorch types but not data: named in the message so the refusal is clear. */
const KNOWN_UNSUPPORTED = /^torch\.(Complex\w*Storage|Q\w*Storage|\w*Storage|UntypedStorage|Size|device|dtype|float\w*|int\w*)$/;

/** The limit on a pickle's size (a state dict's pickle is ~200 bytes per tensor). */
export const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

/** Opcode byte -> pickletools name, for the ones this reader accepts. */
const OPCODE_NAMES: Record<number, string> = {
  0x80: 'PROTO', 0x95: 'FRAME', 0x2e: 'STOP', 0x28: 'MARK', 0x29: 'EMPTY_TUPLE', 0x74: 'TUPLE', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x5d: 'EMPTY_LIST', 0x61: 'APPEND', 0x65: 'APPENDS', 0x6c: 'LIST', 0x7d: 'EMPTY_DICT', 0x64: 'DICT', 0x73: 'SETITEM',
  0x75: 'SETITEMS', 0x58: 'BINUNICODE', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x4a: 'BININT', 0x4b: 'BININT1', 0x4d: 'BININT2',
  0x8a: 'LONG1', 0x4e: 'NONE', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x47: 'BINFLOAT', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT', 0x94: 'MEMOIZE',
  0x68: 'BINGET', 0x6a: 'LONG_BINGET', 0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL', 0x51: 'BINPERSID', 0x52: 'REDUCE', 0x62: 'BUILD',
  0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP',
};

/** Names of the opcodes refused on sight (so the message says what was asked for). */
const REFUSED_NAMES: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x50: 'PERSID', 0x49: 'INT',
  0x4c: 'LONG', 0x8b: 'LONG4', 0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x46: 'FLOAT', 0x67: 'GET',
  0x70: 'PUT', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES', 0x8e: 'BINBYTES8', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
  0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
};

function describe(v: PickleValue): string {
  if (v === null) return 'None';
  if (typeof v !== 'object') return typeof v === 'string' ? `the string ${JSON.stringify(v.slice(0, 40))}` : `${typeof v} ${String(v)}`;
  return v.kind === 'global' ? v.name : `a ${v.kind}`;
}

/**
 * Reads a `torch.save` pickle (`archive/data.pkl`) into plain data.
 *
 * @param bytes the pickle
 * @param file  name for messages
 * @throws CheckpointError `UNSAFE_PICKLE` for any global, callable or opcode
 *   outside the allow-list; `TORCH_INVALID` for a malformed pickle (truncated,
 *   stack underflow, missing memo entry, wrong argument kinds); `TORCH_UNSUPPORTED`
 *   for storage types it does not read (complex, quantized).
 * @example
 * ```ts
 * const value = readPickle(await source.read(at, size), 'pytorch_model.bin');
 * if (typeof value === 'object' && value?.kind === 'dict') console.log(value.keys); // tensor names
 * ```
 */
export function readPickle(bytes: Uint8Array, file: string): PickleValue {
  const unsafe = (message: string) => new CheckpointError('UNSAFE_PICKLE', `${file}: pickle ${message}; only tensor state dicts are read, and no pickled code runs`, { file });
  const bad = (at: number, message: string) => new CheckpointError('TORCH_INVALID', `${file}: pickle byte ${at}: ${message}`, { file });
  if (bytes.byteLength > MAX_PICKLE_BYTES) throw bad(0, `${bytes.byteLength} bytes is over the ${MAX_PICKLE_BYTES}-byte limit`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength;
  const text = new TextDecoder('utf-8', { fatal: true });
  let stack: PickleValue[] = [];
  const marks: PickleValue[][] = [];
  const memo = new Map<number, PickleValue>();
  let p = 0;
  let op = 0;
  let opAt = 0;

  const need = (count: number) => {
    if (p + count > n) throw bad(opAt, `${OPCODE_NAMES[op] ?? op} needs ${count} more bytes, the pickle ends (truncated)`);
  };
  const pop = (): PickleValue => {
    if (stack.length === 0) throw bad(opAt, `${OPCODE_NAMES[op]} on an empty stack`);
    return stack.pop()!;
  };
  const top = (): PickleValue => {
    if (stack.length === 0) throw bad(opAt, `${OPCODE_NAMES[op]} on an empty stack`);
    return stack[stack.length - 1];
  };
  const popMark = (): PickleValue[] => {
    const items = stack;
    const previous = marks.pop();
    if (!previous) throw bad(opAt, `${OPCODE_NAMES[op]} without a MARK`);
    stack = previous;
    return items;
  };
  const decode = (start: number, length: number): string => {
    try {
      return text.decode(bytes.subarray(start, start + length));
    } catch (cause) {
      throw new CheckpointError('TORCH_INVALID', `${file}: pickle byte ${opAt}: a string that is not UTF-8`, { file, cause });
    }
  };
  const global = (module: string, name: string): PickleValue => {
    const full = `${module}.${name}`;
    if ((CALLABLES as readonly string[]).includes(full) || Object.prototype.hasOwnProperty.call(STORAGES, full)) return { kind: 'global', name: full as AllowedGlobal };
    if (KNOWN_UNSUPPORTED.test(full)) {
      throw new CheckpointError('TORCH_UNSUPPORTED', `${file}: pickle names ${full}, which this reader does not handle (it reads ${Object.keys(STORAGES).join(', ')})`, { file });
    }
    throw unsafe(`asks for the global ${JSON.stringify(full.slice(0, 120))}`);
  };
  const int = (v: PickleValue, what: string): number => {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
    throw bad(opAt, `${what} must be a non-negative integer, got ${describe(v)}`);
  };
  const ints = (v: PickleValue, what: string): number[] => {
    if (typeof v !== 'object' || v === null || v.kind !== 'tuple') throw bad(opAt, `${what} must be a tuple of integers, got ${describe(v)}`);
    if (v.items.length > 64) throw bad(opAt, `${what} has ${v.items.length} dimensions (the limit is 64)`);
    return v.items.map((x) => int(x, what));
  };
  const tensorOf = (storage: PickleValue, offset: PickleValue, size: PickleValue, stride: PickleValue): PickledTensor => {
    if (typeof storage !== 'object' || storage === null || storage.kind !== 'storage') throw bad(opAt, `a tensor's storage must be a persistent storage id, got ${describe(storage)}`);
    const shape = ints(size, 'a tensor size');
    const strides = ints(stride, 'a tensor stride');
    if (strides.length !== shape.length) throw bad(opAt, `a tensor of size (${shape}) has strides (${strides})`);
    return { kind: 'tensor', storage, offset: int(offset, 'a storage offset'), shape, stride: strides };
  };
  const call = (fn: PickleValue, args: PickleValue): PickleValue => {
    if (typeof fn !== 'object' || fn === null || fn.kind !== 'global' || !(CALLABLES as readonly string[]).includes(fn.name)) throw unsafe(`calls ${describe(fn)} (REDUCE)`);
    if (typeof args !== 'object' || args === null || args.kind !== 'tuple') throw bad(opAt, `REDUCE arguments must be a tuple, got ${describe(args)}`);
    const a = args.items;
    switch (fn.name) {
      case 'collections.OrderedDict':
        if (a.length !== 0) throw unsafe('calls collections.OrderedDict with arguments');
        return { kind: 'dict', keys: [], values: [] };
      case 'torch._utils._rebuild_tensor_v2':
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (a.length < 6 || a.length > 7) throw bad(opAt, `_rebuild_tensor_v2 takes 6 or 7 arguments, got ${a.length}`);
        return tensorOf(a[0], a[1], a[2], a[3]);
      case 'torch._utils._rebuild_tensor':
        if (a.length !== 4) throw bad(opAt, `_rebuild_tensor takes 4 arguments, got ${a.length}`);
        return tensorOf(a[0], a[1], a[2], a[3]);
      default: {
        // _rebuild_parameter(data, requires_grad, backward_hooks)
        const data = a[0];
        if (a.length !== 3 || typeof data !== 'object' || data === null || data.kind !== 'tensor') throw bad(opAt, '_rebuild_parameter takes (tensor, requires_grad, backward_hooks)');
        return data;
      }
    }
  };
  const persistent = (pid: PickleValue): PickledStorage => {
    if (typeof pid !== 'object' || pid === null || pid.kind !== 'tuple' || pid.items[0] !== 'storage' || pid.items.length !== 5) {
      throw unsafe(`uses a persistent id that is not a tensor storage (${describe(pid)})`);
    }
    const [, type, key, location, numel] = pid.items;
    if (typeof type !== 'object' || type === null || type.kind !== 'global' || !Object.prototype.hasOwnProperty.call(STORAGES, type.name)) {
      throw bad(opAt, `a storage id names ${describe(type)}, not a storage type`);
    }
    if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(key) || key === '.' || key === '..') throw bad(opAt, `a storage key must be a short plain name, got ${describe(key)}`);
    if (typeof location !== 'string') throw bad(opAt, `a storage location must be a string, got ${describe(location)}`);
    return { kind: 'storage', dtype: STORAGES[type.name], key, location, numel: int(numel, 'a storage size') };
  };
  const setItems = (dict: PickleValue, items: PickleValue[]) => {
    if (typeof dict !== 'object' || dict === null || dict.kind !== 'dict') throw bad(opAt, `SETITEM(S) on ${describe(dict)}, not a dict`);
    if (items.length % 2 !== 0) throw bad(opAt, 'SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) {
      dict.keys.push(items[i]);
      dict.values.push(items[i + 1]);
    }
  };
  const append = (list: PickleValue, items: PickleValue[]) => {
    if (typeof list !== 'object' || list === null || list.kind !== 'list') throw bad(opAt, `APPEND(S) on ${describe(list)}, not a list`);
    list.items.push(...items);
  };

  if (n === 0) throw bad(0, 'the pickle is empty');
  for (;;) {
    if (p >= n) throw bad(p, 'the pickle ends without STOP (truncated)');
    opAt = p;
    op = bytes[p++];
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (bytes[p] < 2 || bytes[p] > 5) throw bad(opAt, `pickle protocol ${bytes[p]} (2 to 5 are read)`);
        p += 1;
        break;
      case 0x95: // FRAME: a length hint only
        need(8);
        p += 8;
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length !== 0) throw bad(opAt, `STOP with ${stack.length} values on the stack and ${marks.length} open marks`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x29:
        stack.push({ kind: 'tuple', items: [] });
        break;
      case 0x74: {
        // TUPLE (popMark replaces `stack`: take the items first)
        const items = popMark();
        stack.push({ kind: 'tuple', items });
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        const k = op - 0x84;
        if (stack.length < k) throw bad(opAt, `${OPCODE_NAMES[op]} needs ${k} values on the stack`);
        stack.push({ kind: 'tuple', items: stack.splice(stack.length - k, k) });
        break;
      }
      case 0x5d:
        stack.push({ kind: 'list', items: [] });
        break;
      case 0x6c: {
        const items = popMark();
        stack.push({ kind: 'list', items });
        break;
      }
      case 0x61: {
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x7d:
        stack.push({ kind: 'dict', keys: [], values: [] });
        break;
      case 0x64: {
        const dict: PickleValue = { kind: 'dict', keys: [], values: [] };
        setItems(dict, popMark());
        stack.push(dict);
        break;
      }
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x58:
      case 0x8c:
      case 0x8d: {
        const width = op === 0x8c ? 1 : op === 0x58 ? 4 : 8;
        need(width);
        const length = width === 1 ? bytes[p] : width === 4 ? view.getUint32(p, true) : view.getUint32(p, true) + view.getUint32(p + 4, true) * 2 ** 32;
        p += width;
        need(length);
        stack.push(decode(p, length));
        p += length;
        break;
      }
      case 0x4a:
        need(4);
        stack.push(view.getInt32(p, true));
        p += 4;
        break;
      case 0x4b:
        need(1);
        stack.push(bytes[p]);
        p += 1;
        break;
      case 0x4d:
        need(2);
        stack.push(view.getUint16(p, true));
        p += 2;
        break;
      case 0x8a: {
        // LONG1: a little-endian two's complement integer of n <= 8 bytes
        need(1);
        const length = bytes[p++];
        if (length > 8) throw bad(opAt, `LONG1 of ${length} bytes (at most 8 are read)`);
        need(length);
        let value = 0n;
        for (let i = length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[p + i]);
        if (length > 0 && bytes[p + length - 1] & 0x80) value -= 1n << BigInt(8 * length);
        p += length;
        stack.push(value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value);
        break;
      }
      case 0x4e:
        stack.push(null);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x47:
        need(8);
        stack.push(view.getFloat64(p, false));
        p += 8;
        break;
      case 0x71:
      case 0x72: {
        const width = op === 0x71 ? 1 : 4;
        need(width);
        memo.set(width === 1 ? bytes[p] : view.getUint32(p, true), top());
        p += width;
        break;
      }
      case 0x94:
        memo.set(memo.size, top());
        break;
      case 0x68:
      case 0x6a: {
        const width = op === 0x68 ? 1 : 4;
        need(width);
        const index = width === 1 ? bytes[p] : view.getUint32(p, true);
        p += width;
        if (!memo.has(index)) throw bad(opAt, `memo entry ${index} was never stored`);
        stack.push(memo.get(index)!);
        break;
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const end1 = bytes.indexOf(0x0a, p);
        const end2 = end1 < 0 ? -1 : bytes.indexOf(0x0a, end1 + 1);
        if (end1 < 0 || end2 < 0 || end2 - p > 512) throw bad(opAt, 'GLOBAL without two newline-terminated names (truncated)');
        const module = decode(p, end1 - p);
        const name = decode(end1 + 1, end2 - end1 - 1);
        p = end2 + 1;
        stack.push(global(module, name));
        break;
      }
      case 0x93: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw unsafe('uses STACK_GLOBAL with names that are not strings');
        stack.push(global(module, name));
        break;
      }
      case 0x51:
        stack.push(persistent(pop()));
        break;
      case 0x52: {
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x62: {
        // BUILD: only a dict's attribute state (a state dict's `_metadata`), which is dropped.
        const state = pop();
        const target = top();
        if (typeof target !== 'object' || target === null || target.kind !== 'dict') throw unsafe(`sets the state of ${describe(target)} (BUILD)`);
        if (state !== null && (typeof state !== 'object' || (state.kind !== 'dict' && state.kind !== 'tuple'))) throw bad(opAt, `BUILD with ${describe(state)}`);
        break;
      }
      case 0x30:
        if (stack.length > 0) stack.pop();
        else popMark();
        break;
      case 0x31:
        popMark();
        break;
      case 0x32:
        stack.push(top());
        break;
      default: {
        const name = REFUSED_NAMES[op];
        if (name) throw unsafe(`uses the opcode ${name} (0x${op.toString(16)}), which a tensor state dict never needs`);
        throw bad(opAt, `unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }
}
