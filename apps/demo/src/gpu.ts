/**
 * Finding WebGPU in the browser and saying plainly what is missing: no
 * `navigator.gpu` (browser or flag), no adapter, or an adapter below the
 * limits statespace's kernels need. Optional features (shader-f16, subgroups,
 * timestamp-query) are reported but never required.
 */
import { Runtime, StatespaceError } from '@statespace/core';

/** Limits every statespace kernel stays within (see docs/guides/writing-a-kernel.md). */
export const REQUIRED_LIMITS = {
  maxStorageBuffersPerShaderStage: 8,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeWorkgroupsPerDimension: 65535,
} as const;

/** Optional adapter features and what their absence means for the demo. */
export const OPTIONAL_FEATURES: Record<string, string> = {
  'shader-f16': 'f16 arithmetic in shaders (statespace computes in f32 anyway; f16 weight storage still works)',
  subgroups: 'subgroup operations (faster reductions where used)',
  'timestamp-query': 'GPU timestamps (timings here use the wall clock)',
};

/** What {@link openGpu} found. */
export interface GpuReport {
  runtime: Runtime;
  /** e.g. `swiftshader` or `nvidia-geforce-rtx-4090`. */
  adapterName: string;
  isSoftware: boolean;
  /** Optional features the adapter lacks, with what that means. */
  missingFeatures: { feature: string; meaning: string }[];
  maxBufferBytes: number;
}

/**
 * Checks the browser and the adapter, then creates the runtime.
 *
 * @throws StatespaceError `NO_WEBGPU` (no navigator.gpu), `NO_ADAPTER`, `ADAPTER_LIMITS` (too small for the kernels).
 */
export async function openGpu(gpu: GPU | undefined = (navigator as Navigator & { gpu?: GPU }).gpu): Promise<GpuReport> {
  if (!gpu) {
    const insecure = typeof window !== 'undefined' && !window.isSecureContext;
    throw new StatespaceError(
      'NO_WEBGPU',
      insecure
        ? 'WebGPU needs a secure context: open this page over https:// or from localhost / 127.0.0.1.'
        : 'This browser has no WebGPU (navigator.gpu is undefined). Use a recent Chrome or Edge (113+), Safari 26+ or Firefox 141+ on Windows, or enable WebGPU in the browser flags (chrome://flags/#enable-unsafe-webgpu on Linux).',
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new StatespaceError(
      'NO_ADAPTER',
      'WebGPU is present but gave no adapter: the GPU may be blocklisted or hardware acceleration switched off (see chrome://gpu).',
    );
  }
  const short = Object.entries(REQUIRED_LIMITS)
    .filter(([name, need]) => (adapter.limits[name as keyof GPUSupportedLimits] as number) < need)
    .map(([name, need]) => `${name} is ${adapter.limits[name as keyof GPUSupportedLimits]}, needs ${need}`);
  if (short.length > 0) {
    throw new StatespaceError('ADAPTER_LIMITS', `This GPU adapter is below what statespace's kernels need: ${short.join('; ')}.`);
  }
  const missingFeatures = Object.entries(OPTIONAL_FEATURES)
    .filter(([feature]) => !adapter.features.has(feature as GPUFeatureName))
    .map(([feature, meaning]) => ({ feature, meaning }));
  const runtime = await Runtime.create({ gpu });
  return {
    runtime,
    adapterName: runtime.adapterName,
    isSoftware: runtime.info.isSoftware,
    missingFeatures,
    maxBufferBytes: adapter.limits.maxStorageBufferBindingSize,
  };
}
