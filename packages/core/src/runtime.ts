/**
 * The kernel runtime: compiles and caches pipelines by a kernel's `cacheKey`
 * (never by runtime sizes), records dispatches into one command encoder until
 * {@link Runtime.flush}, pools buffers, and uploads / reads back tensors.
 */
import { type DeviceInfo, type RequestDeviceOptions, requestDevice } from './device.js';
import { type DType, dequantizeQ8, f16ToF32, f32To16, quantizeQ8, storageBytes } from './dtype.js';
import { StatespaceError } from './errors.js';
import { type KernelDescriptor, packUniforms, uniformByteSize } from './kernel.js';
import { Tensor, type TensorLike, numel, validateShape } from './tensor.js';
import { type PlanCommand, CapturedPlan, type CaptureOptions } from './plan.js';

/** Options for {@link Runtime.create}. */
export interface RuntimeOptions extends RequestDeviceOptions {
  /** Print each kernel's WGSL the first time it is compiled (also `STATESPACE_DEBUG_WGSL=1`). */
  debugWgsl?: boolean;
  /** Fill every newly handed-out buffer with NaN bits, so a kernel that skips an output element is caught (tests). */
  poison?: boolean;
}

/** Bytes of GPU memory the runtime holds. */
export interface MemoryStats {
  /** Bytes in buffers handed out as live tensors now. */
  liveBytes: number;
  /** Highest `liveBytes` since creation or the last {@link Runtime.resetPeak}. */
  peakLiveBytes: number;
  /** Bytes held by the pool for reuse (allocated, not live). */
  pooledBytes: number;
  /** Largest single buffer ever allocated. */
  largestBufferBytes: number;
}

/** Host arrays the runtime uploads and reads. */
export type TypedData = Float32Array | Int32Array | Uint32Array | Uint16Array;

const UNIFORM_SLOT = 256;
const UNIFORM_SLOTS = 2048;
const WORD_U32 = 0;
const WORD_I32 = 1;
const WORD_F32 = 2;
const WORD_UNUSED = 255;

/** A compiled kernel: its pipeline (uniforms at a dynamic offset), and for captured plans the same module with them at a fixed one. */
interface CompiledKernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  uniformSize: number;
  module: GPUShaderModule;
  fixed: { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout } | null;
}

interface CaptureState {
  commands: PlanCommand[];
  uniformBuffer: GPUBuffer;
  staging: ArrayBuffer;
  /** Per uniform word: WORD_U32, WORD_I32, WORD_F32 or WORD_UNUSED. */
  types: Uint8Array;
  slot: number;
  /** Every buffer the capture took (its arena). */
  owned: Set<GPUBuffer>;
  /** Arena buffers released during the capture, by size. */
  free: Map<number, GPUBuffer[]>;
  /** Buffers of the capture this one continues, by size, in the order that one took them. */
  inherited: Map<number, GPUBuffer[]>;
  /** Acquisition order. */
  order: GPUBuffer[];
  /** Commands already encoded (a write or read inside the capture runs what came before it). */
  executed: number;
  /** Why this capture cannot be replayed, if it cannot. */
  tainted: string | null;
}

function bucketSize(bytes: number): number {
  const n = Math.max(16, bytes);
  if (n <= 4096) return Math.ceil(n / 256) * 256;
  const p = 2 ** Math.floor(Math.log2(n));
  const step = p / 8;
  return Math.ceil(n / step) * step;
}

function envFlag(name: string): boolean {
  return typeof process !== 'undefined' && process.env?.[name] === '1';
}

/**
 * Owns a device and runs kernels on it.
 *
 * @example
 * ```ts
 * import { Runtime, matmul } from '@statespace/core';
 * const rt = await Runtime.create();
 * const x = rt.upload(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * const w = rt.upload(new Float32Array([1, 0, 0, 0, 1, 0]), [2, 3]);
 * const y = matmul(rt, x, w); // x @ w^T, shape [2, 2]
 * console.log(await rt.read(y)); // Float32Array [1, 2, 4, 5]
 * ```
 */
export class Runtime {
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /** What {@link requestDevice} learnt about the adapter (name, features, software or not). */
  readonly info: DeviceInfo;
  /** Print WGSL of each kernel as it is compiled. */
  debugWgsl: boolean;
  /** Fill each buffer handed out by {@link empty} with NaN bits (0xffffffff). */
  poison: boolean;
  /**
   * Submit after this many recorded dispatches (0: only on flush/read). A few
   * submits per decoded token let the GPU start on the first layers while the
   * host is still recording the last ones; 0 keeps one command buffer per flush.
   */
  submitEvery = 0;
  /**
   * After the GPU ran dry (a {@link sync}, or a read that waited for the last submit), the first
   * submit comes after this many dispatches and each next one after twice as many, up to
   * {@link submitEvery}: the GPU starts on a prompt's first kernels while the host records the
   * rest. 0: every submit waits for {@link submitEvery} dispatches.
   */
  submitFirst = 0;
  /** Dispatches the next submit waits for (ramps from {@link submitFirst} to {@link submitEvery}). */
  private submitAfter = 0;
  /**
   * Use the kernels GPUs run: the fused decode kernels (norm + gemv in one dispatch) and the
   * time-segmented prefill scans. On by default on GPUs; off on software adapters, where their
   * workgroup barriers cost more than the dispatches they save. Tests turn it on there to check
   * those paths.
   */
  fastKernels: boolean;

  private readonly pipelines = new Map<string, CompiledKernel>();
  // Bind groups are reused when the same buffers are bound again (steady-state decode binds the
  // same pooled buffers every token); the uniform block is bound with a dynamic offset.
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** The pipeline last set on {@link pass} (null until one is set; reset when the pass ends). */
  private passPipeline: GPUComputePipeline | null = null;
  private readonly uniformBuffer: GPUBuffer;
  private readonly uniformStaging = new ArrayBuffer(UNIFORM_SLOT * UNIFORM_SLOTS);
  private readonly uniformView = new DataView(this.uniformStaging);
  private uniformSlot = 0;
  private pendingDispatches = 0;
  private errors: string[] = [];
  private lost: string | null = null;
  private stats: MemoryStats = { liveBytes: 0, peakLiveBytes: 0, pooledBytes: 0, largestBufferBytes: 0 };
  private destroyed = false;
  // Limits read once: `device.limits` is a getter that crosses into Dawn on every read.
  /** Device limits kernels choose variants by (read once). */
  readonly limits: { readonly maxComputeWorkgroupStorageSize: number; readonly maxStorageBufferBindingSize: number; readonly maxComputeInvocationsPerWorkgroup: number; readonly maxStorageBuffersPerShaderStage: number };
  private readonly maxBufferSize: number;
  private readonly maxWorkgroupsPerDim: number;
  /** The capture in progress, if any (see {@link beginCapture}). */
  private capture: CaptureState | null = null;
  /** MAP_READ staging buffers by size, reused across reads (a decode loop reads every token). */
  private readonly staging = new Map<number, GPUBuffer[]>();
  /** GPU time per kernel name (ms) when profiling is on; see {@link startProfiling}. */
  private profile: { querySet: GPUQuerySet; resolve: GPUBuffer; names: string[]; capacity: number; totals: Map<string, { ms: number; count: number }>; pending: Promise<void>[] } | null = null;
  /** GPU time of every compute pass when pass timing is on; see {@link startPassTiming}. */
  private passTiming: { querySet: GPUQuerySet; resolve: GPUBuffer; count: number; capacity: number; ms: number; passes: number; pending: Promise<void>[] } | null = null;
  /** Number of dispatches recorded since creation (for tests and benchmarks). */
  dispatchCount = 0;
  /** Number of queue submits since creation. */
  submitCount = 0;

  constructor(info: DeviceInfo, options: { debugWgsl?: boolean; poison?: boolean } = {}) {
    this.info = info;
    this.poison = options.poison ?? false;
    // Measured on the H100: a decode step of ~200 dispatches ran 14.1 ms as one submit and 7.9-8.8 ms
    // submitted every 32-128 dispatches (bench/NOTES.md). Software adapters gain nothing from it.
    this.submitEvery = info.isSoftware ? 0 : 64;
    // The GPU idles until the first submit: at ~20 us of host per eagerly recorded dispatch, 64 of them
    // are ~1.3 ms of a 10 ms prefill (bench/NOTES.md 7f).
    this.submitFirst = info.isSoftware ? 0 : 8;
    this.submitAfter = this.submitFirst;
    this.fastKernels = !info.isSoftware;
    this.device = info.device;
    this.maxBufferSize = this.device.limits.maxBufferSize;
    this.maxWorkgroupsPerDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    this.limits = {
      maxComputeWorkgroupStorageSize: this.device.limits.maxComputeWorkgroupStorageSize,
      maxStorageBufferBindingSize: this.device.limits.maxStorageBufferBindingSize,
      maxComputeInvocationsPerWorkgroup: this.device.limits.maxComputeInvocationsPerWorkgroup,
      maxStorageBuffersPerShaderStage: this.device.limits.maxStorageBuffersPerShaderStage,
    };
    this.debugWgsl = options.debugWgsl ?? envFlag('STATESPACE_DEBUG_WGSL');
    this.uniformBuffer = this.device.createBuffer({
      label: 'statespace.uniforms',
      size: UNIFORM_SLOT * UNIFORM_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.device.addEventListener?.('uncapturederror', (ev: Event) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.errors.push(err?.message ?? String(err));
    });
    void this.device.lost?.then((l) => {
      if (!this.destroyed) this.lost = l.message || l.reason || 'device lost';
    });
  }

  /**
   * Requests a device (see {@link requestDevice}) and wraps it in a runtime.
   * @throws StatespaceError `NO_WEBGPU` / `NO_ADAPTER` when no adapter is found.
   */
  static async create(options: RuntimeOptions = {}): Promise<Runtime> {
    const info = await requestDevice(options);
    return new Runtime(info, { debugWgsl: options.debugWgsl, poison: options.poison });
  }

  /** Short adapter name, e.g. `swiftshader` or `nvidia-h100-80gb-hbm3`. */
  get adapterName(): string {
    return this.info.adapterName;
  }

  // ---------------------------------------------------------------- buffers

  private acquire(bytes: number, label: string): GPUBuffer {
    this.checkAlive();
    const max = this.maxBufferSize;
    if (bytes > max) {
      throw new StatespaceError('BUFFER_TOO_LARGE', `${label}: ${bytes} bytes exceeds this device's maxBufferSize of ${max} bytes`);
    }
    const size = Math.min(bucketSize(bytes), Math.max(bytes, Math.floor(max / 4) * 4));
    const cap = this.capture;
    if (cap) {
      // A capture takes its temporaries from its own arena: first what it released itself, then the
      // buffers of the capture it continues (in the same order, so the same kernels bind the same buffers).
      const buffer = cap.free.get(size)?.pop() ?? cap.inherited.get(size)?.shift() ?? this.takeFromPool(size, label);
      cap.owned.add(buffer);
      cap.order.push(buffer);
      this.stats.liveBytes += size;
      this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
      return buffer;
    }
    const buffer = this.takeFromPool(size, label);
    this.stats.liveBytes += size;
    this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
    return buffer;
  }

  private takeFromPool(size: number, label: string): GPUBuffer {
    const free = this.pool.get(size);
    let buffer = free?.pop();
    if (buffer) {
      this.stats.pooledBytes -= size;
    } else {
      buffer = this.device.createBuffer({
        label,
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.sizes.set(buffer, size);
      this.stats.largestBufferBytes = Math.max(this.stats.largestBufferBytes, size);
    }
    return buffer;
  }

  /** @internal Called by {@link Tensor.dispose}. */
  releaseBuffer(buffer: GPUBuffer): void {
    const size = this.sizes.get(buffer) ?? buffer.size;
    this.stats.liveBytes -= size;
    if (this.destroyed) return;
    const cap = this.capture;
    if (cap?.owned.has(buffer)) {
      let free = cap.free.get(size);
      if (!free) cap.free.set(size, (free = []));
      free.push(buffer);
      return;
    }
    this.returnToPool(buffer, size);
  }

  /** @internal Lowers the live-byte count for a buffer a plan hands back without a tensor's dispose. */
  untrack(buffer: GPUBuffer): void {
    this.stats.liveBytes -= this.sizes.get(buffer) ?? buffer.size;
  }

  /** @internal Puts a buffer no tensor holds back into the pool (plans give their arenas back this way). */
  returnToPool(buffer: GPUBuffer, size = this.sizes.get(buffer) ?? buffer.size): void {
    if (this.destroyed) return;
    let list = this.pool.get(size);
    if (!list) this.pool.set(size, (list = []));
    list.push(buffer);
    this.stats.pooledBytes += size;
  }

  /** Frees every pooled (not live) buffer. */
  trimPool(): void {
    this.bindGroups.clear();
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.stats.pooledBytes = 0;
  }

  /** Memory held now and at peak. */
  memory(): MemoryStats {
    return { ...this.stats };
  }

  /** Starts a new peak measurement from the current live bytes. */
  resetPeak(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
    this.stats.largestBufferBytes = 0;
  }

  /** An uninitialised tensor (contents are whatever the pooled buffer held). */
  empty(shape: readonly number[], dtype: DType = 'f32', label = 'tensor'): Tensor {
    validateShape(shape, label);
    const bytes = storageBytes(dtype, numel(shape));
    const t = new Tensor(this, this.acquire(bytes, label), shape, dtype, label);
    if (this.poison && bytes > 0) {
      if (this.encoder) this.flush();
      this.device.queue.writeBuffer(t.buffer, 0, new Uint32Array(bytes / 4).fill(0xffffffff));
    }
    return t;
  }

  /** A tensor filled with zeros. */
  zeros(shape: readonly number[], dtype: DType = 'f32', label = 'zeros'): Tensor {
    const t = this.empty(shape, dtype, label);
    this.clear(t);
    return t;
  }

  /**
   * Uploads host data into a new tensor. Float32Array data given with dtype
   * 'f16' or 'bf16' is converted; Uint16Array data is taken as 16-bit words already.
   * Float32Array data given with 'q8' is quantised ({@link quantizeQ8}); a Uint32Array for a
   * q8 tensor is taken as its packed words already (`storageBytes('q8', n) / 4` of them).
   */
  upload(data: TypedData | readonly number[], shape: readonly number[], dtype?: DType, label = 'upload'): Tensor {
    const arr: TypedData = Array.isArray(data) ? new Float32Array(data as number[]) : (data as TypedData);
    const dt: DType = dtype ?? (arr instanceof Int32Array ? 'i32' : arr instanceof Uint32Array ? 'u32' : arr instanceof Uint16Array ? 'f16' : 'f32');
    if (arr.length !== numel(shape) && !(dt === 'q8' && arr instanceof Uint32Array && arr.length === storageBytes('q8', numel(shape)) / 4)) {
      throw new StatespaceError('SHAPE_MISMATCH', `upload ${label}: ${arr.length} values cannot fill shape [${shape.join(',')}]`);
    }
    const t = this.empty(shape, dt, label);
    this.write(t, arr);
    return t;
  }

  /** Overwrites a tensor's contents from host data (same conversions as {@link upload}). */
  write(t: TensorLike, data: TypedData): void {
    let bytes: ArrayBufferView;
    if ((t.dtype === 'f16' || t.dtype === 'bf16') && data instanceof Float32Array) bytes = f32To16(data, t.dtype);
    else if (t.dtype === 'q8' && data instanceof Float32Array) bytes = quantizeQ8(data);
    else bytes = data;
    if (t.dtype === 'q8' && !(data instanceof Float32Array || data instanceof Uint32Array)) {
      throw new StatespaceError('DTYPE_MISMATCH', `write ${t.label}: a q8 tensor takes f32 values (quantised here) or its packed u32 words, got ${data.constructor.name}`);
    }
    const packedQ8 = t.dtype === 'q8' && data instanceof Uint32Array;
    if (packedQ8 ? data.length !== storageBytes('q8', t.size) / 4 : data.length !== t.size) {
      throw new StatespaceError('SHAPE_MISMATCH', `write ${t.label}: ${data.length} values for ${t.size} elements`);
    }
    // writeBuffer runs before commands not yet submitted: submit them first so a reused buffer is not clobbered.
    if (this.capture) {
      // A write inside a capture (a table that grew, say) is not part of the plan: this capture is not replayable.
      this.capture.tainted ??= `${t.label} was written during the capture`;
      this.materializeCapture();
    }
    if (this.pendingDispatches > 0 || this.encoder) this.flush();
    const padded = bytes.byteLength % 4 === 0 ? bytes : copyPadded(bytes);
    this.device.queue.writeBuffer(t.buffer, 0, padded.buffer, padded.byteOffset, padded.byteLength);
  }

  /** Reads a tensor back: f32/f16/bf16 as Float32Array, q8 dequantised to a Float32Array, i32 as Int32Array, u32 as Uint32Array. */
  async read(t: TensorLike): Promise<Float32Array | Int32Array | Uint32Array> {
    const raw = await this.readBytes(t.buffer, t.byteSize);
    const n = t.size;
    switch (t.dtype) {
      case 'f32':
        return new Float32Array(raw, 0, n);
      case 'i32':
        return new Int32Array(raw, 0, n);
      case 'u32':
        return new Uint32Array(raw, 0, n);
      case 'q8':
        return dequantizeQ8(new Uint32Array(raw, 0, t.byteSize / 4), n);
      default:
        return f16ToF32(new Uint16Array(raw, 0, n), t.dtype);
    }
  }

  /** Reads a float tensor back as Float32Array. */
  async readFloat(t: TensorLike): Promise<Float32Array> {
    const r = await this.read(t);
    return r instanceof Float32Array ? r : Float32Array.from(r);
  }

  /** Reads `bytes` bytes from the start of a buffer. */
  async readBytes(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.checkAlive();
    if (this.capture) {
      this.capture.tainted ??= 'a buffer was read back during the capture';
      this.materializeCapture();
    }
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    // The copy is recorded and submitted before the first await, so several reads can be in flight
    // (each with its own staging buffer) while the host records the next token.
    const bucket = size <= 4096 ? Math.ceil(size / 256) * 256 : size;
    const staging = this.staging.get(bucket)?.pop() ?? this.device.createBuffer({ label: 'statespace.readback', size: bucket, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.getEncoder().copyBufferToBuffer(buffer, 0, staging, 0, size);
    this.flush();
    const submits = this.submitCount;
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
      this.queueDrained(submits);
      const out = staging.getMappedRange(0, size).slice(0);
      staging.unmap();
      let list = this.staging.get(bucket);
      if (!list) this.staging.set(bucket, (list = []));
      if (list.length < 8) list.push(staging);
      else staging.destroy();
      return out;
    } catch (cause) {
      staging.destroy();
      this.throwErrors();
      throw new StatespaceError('DEVICE_LOST', `reading ${bytes} bytes back from the GPU failed: ${String(cause)}`, { cause });
    } finally {
      this.throwErrors();
    }
  }


  // ---------------------------------------------------------------- capture and replay

  /**
   * Starts capturing: until {@link endCapture}, {@link run}, {@link copy} and {@link clear}
   * record commands into a {@link CapturedPlan} instead of the encoder, and tensors made
   * meanwhile come from the plan's own arena. The plan can then be replayed token after
   * token with no kernel factory, bind-group creation, allocation or validation on the way.
   *
   * @example
   * ```ts
   * rt.beginCapture();
   * const y = unary(rt, x, 'silu');
   * const plan = rt.endCapture(y); // runs it once; y is the plan's output
   * rt.replay(plan);               // runs it again: the same dispatches, the same buffers
   * ```
   */
  beginCapture(options: CaptureOptions = {}): void {
    this.checkAlive();
    if (this.capture) throw new StatespaceError('INVALID_STATE', 'beginCapture: a capture is already in progress');
    this.flush();
    const inherited = new Map<number, GPUBuffer[]>();
    if (options.continues) {
      for (const b of options.continues.takeBuffers()) {
        const size = this.sizes.get(b) ?? b.size;
        let list = inherited.get(size);
        if (!list) inherited.set(size, (list = []));
        list.push(b);
      }
    }
    this.capture = {
      commands: [],
      uniformBuffer: this.device.createBuffer({ label: 'statespace.plan.uniforms', size: UNIFORM_SLOT * UNIFORM_SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }),
      staging: new ArrayBuffer(UNIFORM_SLOT * UNIFORM_SLOTS),
      types: new Uint8Array((UNIFORM_SLOT * UNIFORM_SLOTS) / 4).fill(WORD_UNUSED),
      slot: 0,
      owned: new Set(),
      free: new Map(),
      inherited,
      order: [],
      executed: 0,
      tainted: null,
    };
  }

  /** True while a capture is in progress. */
  get capturing(): boolean {
    return this.capture !== null;
  }

  /**
   * Ends the capture, records its commands (they run at the next flush, like any others)
   * and returns the plan. `output` (a tensor made during the capture) is kept by the plan
   * and written by every replay; other tensors still alive keep their buffers.
   */
  endCapture(output?: Tensor): CapturedPlan {
    const cap = this.capture;
    if (!cap) throw new StatespaceError('INVALID_STATE', 'endCapture: no capture in progress');
    this.materializeCapture();
    this.capture = null;
    // Buffers still held by tensors other than the output escape the arena: their tensors own them now.
    const arena: GPUBuffer[] = [];
    const seen = new Set<GPUBuffer>();
    const freeNow = new Set<GPUBuffer>();
    for (const list of cap.free.values()) for (const b of list) freeNow.add(b);
    for (const b of cap.order) {
      if (seen.has(b)) continue;
      seen.add(b);
      if (freeNow.has(b) || b === output?.buffer) arena.push(b);
    }
    // Inherited buffers this capture did not use go back to the pool.
    for (const list of cap.inherited.values()) for (const b of list) this.returnToPool(b);
    const words = cap.slot * (UNIFORM_SLOT / 4);
    return new CapturedPlan(this, {
      commands: cap.commands,
      uniformBuffer: cap.uniformBuffer,
      uniforms: new Uint32Array(cap.staging, 0, words).slice(),
      types: cap.types.slice(0, words),
      arena,
      output: output ?? null,
      tainted: cap.tainted,
    });
  }

  /**
   * Records a captured plan again. `patch` words (from {@link CapturedPlan.advance})
   * were already written; nothing else is computed on the host.
   */
  replay(plan: CapturedPlan): void {
    this.checkAlive();
    if (this.capture) throw new StatespaceError('INVALID_STATE', 'replay: cannot replay inside a capture');
    if (plan.hasDynamicUniforms) {
      // The previous replay may still sit unsubmitted in the encoder: it must read its own uniforms.
      this.flush();
      plan.writeUniforms();
    }
    this.encodeCommands(plan.commands, 0, plan.commands.length);
  }

  private encodeCommands(commands: readonly PlanCommand[], from: number, to: number): void {
    for (let i = from; i < to; i++) {
      const c = commands[i];
      if (c.kind === 'dispatch') {
        const pass = this.usePipeline(c.pipeline);
        pass.setBindGroup(0, c.bindGroup);
        pass.dispatchWorkgroups(c.x, c.y, c.z);
        this.dispatchCount++;
      } else {
        this.endPass();
        if (c.kind === 'copy') this.getEncoder().copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.bytes);
        else this.getEncoder().clearBuffer(c.buffer, 0, c.bytes);
      }
      if (++this.pendingDispatches >= this.submitThreshold() && this.submitEvery > 0) this.flush();
    }
  }

  /** Runs what the capture recorded so far (a write or read inside a capture needs it done first). */
  private materializeCapture(): void {
    const cap = this.capture!;
    if (cap.executed === cap.commands.length) return;
    this.device.queue.writeBuffer(cap.uniformBuffer, 0, cap.staging, 0, Math.max(1, cap.slot) * UNIFORM_SLOT);
    this.encodeCommands(cap.commands, cap.executed, cap.commands.length);
    cap.executed = cap.commands.length;
  }

  private captureDispatch(kernel: KernelDescriptor, tensors: readonly TensorLike[], pipeline: GPUComputePipeline, layout: GPUBindGroupLayout, uniformSize: number): void {
    const cap = this.capture!;
    const slots = Math.ceil(uniformSize / UNIFORM_SLOT);
    if (cap.slot + slots > UNIFORM_SLOTS) {
      // More dispatches than one plan holds: run what was captured, keep going eagerly-captured.
      cap.tainted = `more than ${UNIFORM_SLOTS} dispatches`;
      this.materializeCapture();
      cap.commands.length = 0;
      cap.executed = 0;
      cap.slot = 0;
      cap.uniformBuffer = this.device.createBuffer({ label: 'statespace.plan.uniforms', size: UNIFORM_SLOT * UNIFORM_SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    }
    const offset = cap.slot * UNIFORM_SLOT;
    packUniforms(kernel.uniformLayout, kernel.uniforms, new DataView(cap.staging), offset);
    let w = offset / 4;
    for (const t of Object.values(kernel.uniformLayout)) cap.types[w++] = t === 'u32' ? WORD_U32 : t === 'i32' ? WORD_I32 : WORD_F32;
    cap.slot += slots;
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: cap.uniformBuffer, offset, size: uniformSize } }];
    let key = `${kernel.name}|${kernel.cacheKey}|${kernel.dispatch.join('x')}`;
    tensors.forEach((t, i) => {
      entries.push({ binding: i + 1, resource: { buffer: t.buffer, offset: 0, size: Math.max(4, t.byteSize) } });
      key += `|${this.bufferId(t.buffer)}:${t.byteSize}`;
    });
    const bindGroup = this.device.createBindGroup({ label: kernel.name, layout, entries });
    const [x, y, z] = kernel.dispatch;
    cap.commands.push({ kind: 'dispatch', name: kernel.name, pipeline, bindGroup, x, y, z, key });
  }

  // ---------------------------------------------------------------- recording

  /** A new compute pass on the current encoder (with timestamps at its ends while pass timing is on). */
  private beginPass(): GPUComputePassEncoder {
    const pt = this.passTiming;
    if (!pt) return this.getEncoder().beginComputePass({ label: 'statespace.pass' });
    if (pt.count >= pt.capacity) this.flush();
    const i = pt.count++;
    return this.getEncoder().beginComputePass({ label: 'statespace.pass', timestampWrites: { querySet: pt.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
  }

  /**
   * The open pass (begun if none) with `pipeline` set; a pass keeps its pipeline between
   * dispatches, so it is set only when it changes (the sampler's levels run one in a row).
   */
  private usePipeline(pipeline: GPUComputePipeline): GPUComputePassEncoder {
    if (!this.pass) this.pass = this.beginPass();
    if (pipeline !== this.passPipeline) {
      this.pass.setPipeline(pipeline);
      this.passPipeline = pipeline;
    }
    return this.pass;
  }

  private getEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'statespace.batch' });
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
      this.passPipeline = null;
    }
  }

  private layoutFor(kernel: KernelDescriptor, dynamicUniforms: boolean): GPUBindGroupLayout {
    const key = `${dynamicUniforms ? 'd' : 'f'}${kernel.bindings.map((b) => (b.access === 'read' ? 'r' : 'w')).join('')}`;
    let layout = this.layouts.get(key);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: dynamicUniforms } }];
      kernel.bindings.forEach((b, i) =>
        entries.push({ binding: i + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' } }),
      );
      layout = this.device.createBindGroupLayout({ label: `statespace.layout.${key}`, entries });
      this.layouts.set(key, layout);
    }
    return layout;
  }

  private compiled(kernel: KernelDescriptor): CompiledKernel {
    const key = `${kernel.name}|${kernel.cacheKey}`;
    let p = this.pipelines.get(key);
    if (!p) {
      if (this.debugWgsl) console.error(`// ---- ${kernel.name} [${kernel.cacheKey}]\n${kernel.wgsl}`);
      const module = this.device.createShaderModule({ label: kernel.name, code: kernel.wgsl });
      const layout = this.layoutFor(kernel, true);
      p = { pipeline: this.createPipeline(kernel.name, module, layout), layout, uniformSize: uniformByteSize(kernel.uniformLayout), module, fixed: null };
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * The kernel's pipeline with its uniform block bound at a fixed offset (no dynamic offset):
   * what captured plans bind, since Dawn records a bind group without dynamic offsets ~1.7 us
   * faster per dispatch (`bench/results/h200-dispatch-cost.log`: 4.75 against 6.44 us).
   */
  private compiledFixed(kernel: KernelDescriptor, c: CompiledKernel): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout } {
    if (!c.fixed) {
      const layout = this.layoutFor(kernel, false);
      c.fixed = { pipeline: this.createPipeline(`${kernel.name}.plan`, c.module, layout), layout };
    }
    return c.fixed;
  }

  private createPipeline(label: string, module: GPUShaderModule, layout: GPUBindGroupLayout): GPUComputePipeline {
    return this.device.createComputePipeline({ label, layout: this.device.createPipelineLayout({ label, bindGroupLayouts: [layout] }), compute: { module, entryPoint: 'main' } });
  }

  /** Compiles (or fetches from the cache) the pipeline of a kernel. */
  pipeline(kernel: KernelDescriptor): GPUComputePipeline {
    return this.compiled(kernel).pipeline;
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  /** Number of distinct compiled pipelines (pipelines are cached by kernel name + cacheKey). */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  /**
   * Records one dispatch of `kernel` with `tensors` bound in the kernel's
   * binding order. Nothing runs until {@link flush} (or a read).
   */
  run(kernel: KernelDescriptor, tensors: readonly TensorLike[]): void {
    this.checkAlive();
    if (tensors.length !== kernel.bindings.length) {
      throw new StatespaceError('INVALID_ARGUMENT', `${kernel.name}: ${tensors.length} buffers given, the kernel binds ${kernel.bindings.length} (${kernel.bindings.map((b) => b.name).join(', ')})`);
    }
    const [x, y, z] = kernel.dispatch;
    if (x === 0 || y === 0 || z === 0) return;
    const maxDim = this.maxWorkgroupsPerDim;
    if (x > maxDim || y > maxDim || z > maxDim) {
      throw new StatespaceError('INVALID_ARGUMENT', `${kernel.name}: dispatch [${x},${y},${z}] exceeds ${maxDim} workgroups per dimension`);
    }
    const compiled = this.compiled(kernel);
    const { pipeline, layout, uniformSize } = compiled;
    if (this.capture) {
      const fixed = this.compiledFixed(kernel, compiled);
      this.captureDispatch(kernel, tensors, fixed.pipeline, fixed.layout, uniformSize);
      return;
    }
    const slots = Math.ceil(uniformSize / UNIFORM_SLOT);
    if (this.uniformSlot + slots > UNIFORM_SLOTS) this.flush();
    const offset = this.uniformSlot * UNIFORM_SLOT;
    packUniforms(kernel.uniformLayout, kernel.uniforms, this.uniformView, offset);
    this.uniformSlot += slots;
    let key = `${kernel.name}|${kernel.cacheKey}`;
    for (const t of tensors) key += `|${this.bufferId(t.buffer)}:${t.byteSize}`;
    let bindGroup = this.bindGroups.get(key);
    if (!bindGroup) {
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.uniformBuffer, offset: 0, size: uniformSize } }];
      tensors.forEach((t, i) => {
        entries.push({ binding: i + 1, resource: { buffer: t.buffer, offset: 0, size: Math.max(4, t.byteSize) } });
      });
      bindGroup = this.device.createBindGroup({ label: kernel.name, layout, entries });
      if (this.bindGroups.size > 16384) this.bindGroups.clear();
      this.bindGroups.set(key, bindGroup);
    }
    const prof = this.profile;
    if (prof) {
      // One pass per dispatch, with GPU timestamps at its start and end.
      this.endPass();
      if (prof.names.length >= prof.capacity) this.flush();
      const i = prof.names.length;
      prof.names.push(kernel.name);
      this.pass = this.getEncoder().beginComputePass({ label: kernel.name, timestampWrites: { querySet: prof.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
    }
    const pass = this.usePipeline(pipeline);
    pass.setBindGroup(0, bindGroup, [offset]);
    pass.dispatchWorkgroups(x, y, z);
    if (prof) this.endPass();
    this.pendingDispatches++;
    this.dispatchCount++;
    if (this.submitEvery > 0 && this.pendingDispatches >= this.submitThreshold()) this.flush();
  }

  /** Dispatches after which the pending ones are submitted (the ramp of {@link submitFirst}). */
  private submitThreshold(): number {
    return this.submitAfter > 0 ? Math.min(this.submitAfter, this.submitEvery) : this.submitEvery;
  }

  /** The GPU has run everything submitted: the next submits ramp up from {@link submitFirst} again. */
  private queueDrained(submitsBefore: number): void {
    if (this.submitCount === submitsBefore) this.submitAfter = this.submitFirst;
  }

  /** Records a buffer copy (`bytes` from `src` at `srcOffset` into `dst` at `dstOffset`). */
  copy(src: TensorLike, dst: TensorLike, bytes = Math.min(src.byteSize, dst.byteSize), srcOffset = 0, dstOffset = 0): void {
    this.checkAlive();
    if (srcOffset + bytes > src.buffer.size || dstOffset + bytes > dst.buffer.size || bytes % 4 || srcOffset % 4 || dstOffset % 4) {
      throw new StatespaceError('INVALID_ARGUMENT', `copy ${src.label} -> ${dst.label}: ${bytes} bytes at ${srcOffset} -> ${dstOffset} is out of range or not 4-byte aligned`);
    }
    if (bytes === 0) return;
    if (this.capture) {
      this.capture.commands.push({ kind: 'copy', src: src.buffer, srcOffset, dst: dst.buffer, dstOffset, bytes, key: `copy|${this.bufferId(src.buffer)}:${srcOffset}|${this.bufferId(dst.buffer)}:${dstOffset}|${bytes}` });
      return;
    }
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src.buffer, srcOffset, dst.buffer, dstOffset, bytes);
    this.pendingDispatches++;
  }

  /** Records zero-filling of a tensor. */
  clear(t: TensorLike): void {
    this.checkAlive();
    const bytes = Math.ceil(t.byteSize / 4) * 4;
    if (this.capture) {
      this.capture.commands.push({ kind: 'clear', buffer: t.buffer, bytes, key: `clear|${this.bufferId(t.buffer)}:${bytes}` });
      return;
    }
    this.endPass();
    this.getEncoder().clearBuffer(t.buffer, 0, bytes);
    this.pendingDispatches++;
  }

  /** Submits everything recorded so far in one command buffer. */
  flush(): void {
    this.checkAlive();
    if (!this.encoder) return;
    this.endPass();
    if (this.uniformSlot > 0) {
      this.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformStaging, 0, this.uniformSlot * UNIFORM_SLOT);
    }
    const prof = this.profile;
    let readback: GPUBuffer | null = null;
    let names: string[] = [];
    if (prof && prof.names.length) {
      names = prof.names;
      prof.names = [];
      this.encoder.resolveQuerySet(prof.querySet, 0, 2 * names.length, prof.resolve, 0);
      readback = this.device.createBuffer({ size: 16 * names.length, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      this.encoder.copyBufferToBuffer(prof.resolve, 0, readback, 0, 16 * names.length);
    }
    const pt = this.passTiming;
    let passReadback: GPUBuffer | null = null;
    let passes = 0;
    if (pt && pt.count) {
      passes = pt.count;
      pt.count = 0;
      this.encoder.resolveQuerySet(pt.querySet, 0, 2 * passes, pt.resolve, 0);
      passReadback = this.device.createBuffer({ size: 16 * passes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      this.encoder.copyBufferToBuffer(pt.resolve, 0, passReadback, 0, 16 * passes);
    }
    this.device.queue.submit([this.encoder.finish({ label: 'statespace.batch' })]);
    if (pt && passReadback) {
      const rb = passReadback;
      pt.pending.push(
        rb.mapAsync(GPUMapMode.READ).then(() => {
          const t = new BigInt64Array(rb.getMappedRange());
          for (let i = 0; i < passes; i++) pt.ms += Number(t[2 * i + 1] - t[2 * i]) / 1e6;
          pt.passes += passes;
          rb.unmap();
          rb.destroy();
        }),
      );
    }
    if (prof && readback) {
      const rb = readback;
      prof.pending.push(
        rb.mapAsync(GPUMapMode.READ).then(() => {
          const t = new BigInt64Array(rb.getMappedRange());
          names.forEach((n, i) => {
            const e = prof.totals.get(n) ?? { ms: 0, count: 0 };
            e.ms += Number(t[2 * i + 1] - t[2 * i]) / 1e6;
            e.count++;
            prof.totals.set(n, e);
          });
          rb.unmap();
          rb.destroy();
        }),
      );
    }
    this.submitCount++;
    if (this.submitAfter > 0) this.submitAfter = this.submitAfter * 2 >= this.submitEvery ? 0 : this.submitAfter * 2;
    this.encoder = null;
    this.uniformSlot = 0;
    this.pendingDispatches = 0;
  }

  /** Flushes and waits until the GPU has finished all submitted work; throws any GPU error seen. */
  async sync(): Promise<void> {
    this.flush();
    const submits = this.submitCount;
    await this.device.queue.onSubmittedWorkDone();
    this.queueDrained(submits);
    this.throwErrors();
  }

  private throwErrors(): void {
    if (this.lost) throw new StatespaceError('DEVICE_LOST', `WebGPU device lost: ${this.lost}`);
    if (this.errors.length) {
      const msg = this.errors.join('\n');
      this.errors = [];
      throw new StatespaceError('GPU_VALIDATION', `WebGPU reported an error: ${msg}`);
    }
  }

  private checkAlive(): void {
    if (this.destroyed) throw new StatespaceError('DESTROYED', 'this Runtime was destroyed');
    if (this.lost) throw new StatespaceError('DEVICE_LOST', `WebGPU device lost: ${this.lost}`);
  }

  /**
   * Starts timing every dispatch on the GPU with timestamp queries (needs the
   * adapter's `timestamp-query` feature). Each dispatch gets its own pass while
   * profiling, so totals include no batching effects; use it to rank kernels.
   */
  startProfiling(capacity = 2048): void {
    if (!this.info.features.timestampQuery) throw new StatespaceError('UNSUPPORTED', 'profiling needs the timestamp-query feature, which this adapter lacks');
    checkQueryCapacity('startProfiling', capacity);
    this.flush();
    this.profile = {
      querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * capacity }),
      resolve: this.device.createBuffer({ size: 16 * capacity, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
      names: [],
      capacity,
      totals: new Map(),
      pending: [],
    };
  }

  /** Stops profiling and returns GPU milliseconds and dispatch counts per kernel name, largest first. */
  async stopProfiling(): Promise<{ name: string; ms: number; count: number }[]> {
    const prof = this.profile;
    if (!prof) return [];
    this.flush();
    await Promise.all(prof.pending);
    this.profile = null;
    prof.querySet.destroy();
    prof.resolve.destroy();
    return [...prof.totals.entries()].map(([name, v]) => ({ name, ...v })).sort((a, b) => b.ms - a.ms);
  }

  /**
   * Starts adding up the GPU time of every compute pass (timestamp queries at each pass's ends,
   * the passes left as they are, unlike {@link startProfiling}): with {@link stopPassTiming}, the
   * GPU time of a stretch of work, to set against its host time. Needs `timestamp-query`.
   */
  startPassTiming(capacity = 1024): void {
    if (!this.info.features.timestampQuery) throw new StatespaceError('UNSUPPORTED', 'pass timing needs the timestamp-query feature, which this adapter lacks');
    if (this.passTiming) throw new StatespaceError('INVALID_STATE', 'startPassTiming: pass timing is on already');
    checkQueryCapacity('startPassTiming', capacity);
    this.flush();
    this.passTiming = {
      querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * capacity }),
      resolve: this.device.createBuffer({ size: 16 * capacity, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
      count: 0,
      capacity,
      ms: 0,
      passes: 0,
      pending: [],
    };
  }

  /** Stops pass timing: GPU milliseconds inside compute passes since {@link startPassTiming}, and the passes timed. */
  async stopPassTiming(): Promise<{ ms: number; passes: number }> {
    const pt = this.passTiming;
    if (!pt) return { ms: 0, passes: 0 };
    this.flush();
    this.passTiming = null;
    await Promise.all(pt.pending);
    pt.querySet.destroy();
    pt.resolve.destroy();
    return { ms: pt.ms, passes: pt.passes };
  }

  /** Destroys the device and every buffer. */
  destroy(): void {
    if (this.destroyed) return;
    this.trimPool();
    for (const list of this.staging.values()) for (const b of list) b.destroy();
    this.staging.clear();
    this.destroyed = true;
    this.uniformBuffer.destroy();
    this.device.destroy();
  }
}

/** WebGPU caps a query set at 4096 queries: two timestamps per timed pass. */
function checkQueryCapacity(op: string, capacity: number): void {
  if (!Number.isInteger(capacity) || capacity < 1 || 2 * capacity > 4096) {
    throw new StatespaceError('INVALID_ARGUMENT', `${op}: capacity ${capacity} must be an integer from 1 to 2048 (two timestamps each, at most 4096 per query set)`);
  }
}

function copyPadded(bytes: ArrayBufferView): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return out;
}
