/**
 * Finding a WebGPU adapter in the browser (`navigator.gpu`) or in Node (the
 * `webgpu` npm package, Dawn). On a Linux machine without a GPU, Dawn can use
 * SwiftShader, the software Vulkan driver that Debian's `chromium` package ships.
 */
import { StatespaceError } from './errors.js';

/** Where SwiftShader's Vulkan driver manifest lives once Debian's `chromium` is installed. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** Options for {@link requestDevice}. */
export interface RequestDeviceOptions {
  /** Prefer a discrete GPU (default) or a low-power one. */
  powerPreference?: GPUPowerPreference;
  /** Use an existing `GPU` object instead of `navigator.gpu` or Dawn. */
  gpu?: GPU;
  /** Extra features to request when the adapter has them (`shader-f16`, `subgroups` and `timestamp-query` are requested automatically). */
  optionalFeatures?: GPUFeatureName[];
  /** Ask for the software adapter even when a GPU is present (Node only). */
  forceSoftware?: boolean;
}

/** A device together with what statespace learnt about its adapter. */
export interface DeviceInfo {
  /** The WebGPU device every kernel runs on. */
  device: GPUDevice;
  /** The adapter it came from. */
  adapter: GPUAdapter;
  /** Short human-readable adapter name, e.g. `nvidia-h100-80gb-hbm3` or `swiftshader`. */
  adapterName: string;
  /** Vendor / architecture / description as reported by the adapter. */
  adapterInfo: { vendor: string; architecture: string; device: string; description: string };
  /** Optional features the device was created with (kernels compute in f32 whatever `shaderF16` says). */
  features: { shaderF16: boolean; subgroups: boolean; timestampQuery: boolean };
  /** True when the adapter is a CPU implementation (SwiftShader, llvmpipe). */
  isSoftware: boolean;
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

let nodeGpu: GPU | undefined;

async function fileExists(path: string): Promise<boolean> {
  try {
    const fs = await import(/* @vite-ignore */ ['node', 'fs'].join(':'));
    return fs.existsSync(path);
  } catch {
    return false;
  }
}

async function loadNodeGpu(forceSoftware: boolean): Promise<GPU> {
  if (nodeGpu) return nodeGpu;
  const env = process.env;
  // The Vulkan loader reads these when Dawn creates its instance, so they must be set first.
  env.XDG_RUNTIME_DIR ??= (await import(/* @vite-ignore */ ['node', 'os'].join(':'))).tmpdir();
  if (!env.VK_DRIVER_FILES && !env.VK_ICD_FILENAMES && (await fileExists(SWIFTSHADER_ICD))) {
    if (forceSoftware) env.VK_DRIVER_FILES = SWIFTSHADER_ICD;
    // Added beside the system's drivers, so a real GPU still wins when there is one.
    else if (!env.VK_ADD_DRIVER_FILES) env.VK_ADD_DRIVER_FILES = SWIFTSHADER_ICD;
    // Mesa's lavapipe lacks a feature Dawn requires: probing it only prints a three-line
    // "shaderUniform*ArrayDynamicIndexing required" warning on every run. With SwiftShader loaded
    // there is a software adapter anyway, so the loader skips lavapipe unless the user chose drivers.
    const swiftShaderLoaded = !!env.VK_DRIVER_FILES || !!env.VK_ADD_DRIVER_FILES?.split(':').includes(SWIFTSHADER_ICD);
    if (swiftShaderLoaded && !env.VK_LOADER_DRIVERS_SELECT && !env.VK_LOADER_DRIVERS_DISABLE) env.VK_LOADER_DRIVERS_DISABLE = '*lvp_icd*';
  }
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    const name = 'webgpu';
    mod = await import(/* @vite-ignore */ name);
  } catch (cause) {
    throw new StatespaceError(
      'NO_WEBGPU',
      'WebGPU for Node is missing: install the `webgpu` npm package (Dawn), e.g. `pnpm add webgpu`.',
      { cause },
    );
  }
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  // Dawn's own switches for diagnosis, e.g. STATESPACE_DAWN_FLAGS="disable-dawn-features=timestamp_quantization"
  // for unrounded GPU timestamps in the profiler.
  const flags = (env.STATESPACE_DAWN_FLAGS ?? '').split(/\s+/).filter(Boolean);
  nodeGpu = mod.create(flags);
  return nodeGpu;
}

function noAdapterMessage(): string {
  if (!isNode) {
    return 'No WebGPU adapter: this browser has WebGPU switched off or no supported GPU. Use a recent Chrome, Edge or Safari, or enable WebGPU in the browser settings.';
  }
  return [
    'No WebGPU adapter found by Dawn.',
    'On Linux without a GPU, install a software Vulkan driver: `apt-get install -y chromium libvulkan1` (SwiftShader),',
    `then run again (statespace adds ${SWIFTSHADER_ICD} to VK_ADD_DRIVER_FILES by itself).`,
    'With a GPU, make sure its Vulkan driver and libvulkan1 are installed.',
  ].join(' ');
}

/**
 * Requests a WebGPU device with the adapter's full buffer limits and the
 * optional features statespace can use.
 *
 * @throws StatespaceError `NO_WEBGPU` when WebGPU is unavailable, `NO_ADAPTER` when no adapter can be found.
 * @example
 * ```ts
 * const { device, adapterName } = await requestDevice();
 * console.log(`running on ${adapterName}`);
 * ```
 */
export async function requestDevice(options: RequestDeviceOptions = {}): Promise<DeviceInfo> {
  let gpu = options.gpu;
  if (!gpu) {
    const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (nav?.gpu) gpu = nav.gpu;
    else if (isNode) gpu = await loadNodeGpu(!!options.forceSoftware);
    else throw new StatespaceError('NO_WEBGPU', 'WebGPU is not available here (navigator.gpu is undefined). ' + noAdapterMessage());
  }
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) throw new StatespaceError('NO_ADAPTER', noAdapterMessage());

  const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query', ...(options.optionalFeatures ?? [])];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const lim = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxBufferSize: lim.maxBufferSize,
    maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
    maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: lim.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: lim.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: lim.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
  };
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'statespace' });
  const info = adapter.info;
  const adapterInfo = {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
  };
  const text = `${adapterInfo.vendor} ${adapterInfo.architecture} ${adapterInfo.device} ${adapterInfo.description}`.toLowerCase();
  const isSoftware = /swiftshader|llvmpipe|lavapipe|software/.test(text) || (info as { isFallbackAdapter?: boolean })?.isFallbackAdapter === true;
  const adapterName = (adapterInfo.description || adapterInfo.device || adapterInfo.architecture || adapterInfo.vendor || 'unknown')
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  return {
    device,
    adapter,
    adapterName: isSoftware && text.includes('swiftshader') ? 'swiftshader' : adapterName,
    adapterInfo,
    features: {
      shaderF16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups'),
      timestampQuery: device.features.has('timestamp-query'),
    },
    isSoftware,
  };
}
