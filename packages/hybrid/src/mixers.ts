/**
 * The sequence mixers the scheduler can place in a block, one entry per kernel
 * package. Each entry builds the package's mixer class from weights relative to
 * the mixer's prefix and lists the weights it expects.
 */
import type { LayerWeights, Runtime, SequenceMixer, WeightSpec } from '@statespace/core';
import { AttentionMixer } from '@statespace/attention';
import { GatedDeltaNetMixer } from '@statespace/deltanet';
import { Mamba1Mixer } from '@statespace/scan-wgsl';
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

/** Mixer factories by kind. */
export const mixerFactories: Record<MixerKind, MixerFactory> = {
  mamba1: {
    create: (rt, c, w) => new Mamba1Mixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => Mamba1Mixer.expectedWeights(c as AnyConfig),
  },
  mamba2: {
    create: (rt, c, w) => new Mamba2Mixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => Mamba2Mixer.expectedWeights(c as AnyConfig),
  },
  attention: {
    create: (rt, c, w) => new AttentionMixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => AttentionMixer.expectedWeights(c as AnyConfig),
  },
  gated_deltanet: {
    create: (rt, c, w) => new GatedDeltaNetMixer(rt, c as AnyConfig, w),
    expectedWeights: (c) => GatedDeltaNetMixer.expectedWeights(c as AnyConfig),
  },
};
