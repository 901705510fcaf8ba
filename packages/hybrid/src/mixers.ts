/**
 * The sequence mixers the scheduler can place in a block, one entry per mixer
 * class of the kernel packages (LFM2's short conv lives in @statespace/scan-wgsl).
 * Each entry builds the package's mixer class from weights relative to the mixer's
 * prefix and lists the weights it expects.
 */
import type { LayerWeights, Runtime, SequenceMixer, Tensor, WeightSpec } from '@statespace/core';
import { AttentionMixer } from '@statespace/attention';
import { GatedDeltaNetMixer } from '@statespace/deltanet';
import { Mamba1Mixer, ShortConvMixer } from '@statespace/scan-wgsl';
import { Mamba3Mixer } from '@statespace/mamba3';
import { S4DMixer } from '@statespace/s4d';
import { Mamba2Mixer } from '@statespace/ssd';
import type { MixerKind } from './spec.js';

/** How to build one kind of mixer. */
export interface MixerFactory {
  /** Builds the mixer from its config and its weights (names relative to the mixer's prefix). */
  create(runtime: Runtime, config: Record<string, unknown>, weights: LayerWeights): SequenceMixer;
  /** Names (relative to the prefix), shapes and dtypes of the weights the mixer needs. */
  expectedWeights(config: Record<string, unknown>): WeightSpec[];
}

// The kernel packages type their configs precisely; the scheduler passes what the family module built.
type AnyConfig = never;

/** The config's `weightNames` (mixer name → checkpoint name), if any (see {@link MixerSpec.config}). */
function renames(config: Record<string, unknown>): Record<string, string> | undefined {
  return config.weightNames as Record<string, string> | undefined;
}

/** A factory whose weights may be named differently in the checkpoint (the config's `weightNames`). */
function renaming(factory: MixerFactory): MixerFactory {
  return {
    create: (rt, c, w) => {
      const names = renames(c);
      if (!names) return factory.create(rt, c, w);
      const mapped: Record<string, Tensor> = { ...w };
      for (const [own, theirs] of Object.entries(names)) if (w[theirs]) mapped[own] = w[theirs];
      return factory.create(rt, c, mapped);
    },
    expectedWeights: (c) => {
      const names = renames(c);
      return factory.expectedWeights(c).map((spec) => (names?.[spec.name] ? { ...spec, name: names[spec.name] } : spec));
    },
  };
}

/** Mixer factories by kind. */
export const mixerFactories: Record<MixerKind, MixerFactory> = {
  mamba1: renaming({
    create: (rt, c, w) => new Mamba1Mixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => Mamba1Mixer.expectedWeights(c as AnyConfig),
  }),
  mamba2: renaming({
    create: (rt, c, w) => new Mamba2Mixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => Mamba2Mixer.expectedWeights(c as AnyConfig),
  }),
  mamba3: renaming({
    create: (rt, c, w) => new Mamba3Mixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => Mamba3Mixer.expectedWeights(c as AnyConfig),
  }),
  attention: renaming({
    create: (rt, c, w) => new AttentionMixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => AttentionMixer.expectedWeights(c as AnyConfig),
  }),
  gated_deltanet: renaming({
    create: (rt, c, w) => new GatedDeltaNetMixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => GatedDeltaNetMixer.expectedWeights(c as AnyConfig),
  }),
  short_conv: renaming({
    create: (rt, c, w) => new ShortConvMixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => ShortConvMixer.expectedWeights(c as AnyConfig),
  }),
  s4d: renaming({
    create: (rt, c, w) => new S4DMixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => S4DMixer.expectedWeights(c as AnyConfig),
  }),
};
