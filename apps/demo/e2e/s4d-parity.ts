/**
 * Test page of e2e/demo.test.ts, built only by that test (vite.config.ts builds index.html alone, so none of
 * this ships): runs a stack of S4D layers from one of fixtures/s4d's state-spaces/s4 reference files on the
 * page's WebGPU device, through the same path a composed model's `L` layers take (mixerFactories.s4d builds
 * @statespace/s4d's S4DMixer; @statespace/checkpoint reads the file by HTTP ranges). The test compares what
 * it returns with the PyTorch reference.
 */
import { openSafetensors, uploadTensor } from '@statespace/checkpoint';
import type { SequenceMixer, Tensor } from '@statespace/core';
import { mixerFactories } from '@statespace/hybrid';
import { openGpu } from '../src/gpu.js';

/** What {@link S4DParityPage.run} returns. */
export interface S4DParityRun {
  adapterName: string;
  /** Batch, tokens of the reference input, channels. */
  B: number;
  L: number;
  H: number;
  /** Each layer's output (B, T, H) over the tokens the segments covered (T of them), row-major. */
  layers: number[][];
  /** The stack's output: the input plus every layer's output (the fixture's residual stack). */
  output: number[];
  /** Wall time of the forward calls and their read-backs. */
  ms: number;
}

/** `window.__s4dParity`. */
export interface S4DParityPage {
  /** 'ready' once WebGPU is open, 'failed' (with `error`) if it is not. */
  status: 'starting' | 'ready' | 'failed';
  error?: string;
  /**
   * Feeds the fixture's input through its layers in `segments` (consecutive token ranges [t0, t1) from 0): each
   * segment is one forward call per layer on the state the earlier ones left, so [[0, L]] is one convolution-mode
   * prefill and a segment of one token is one recurrent decode step.
   */
  run(url: string, segments: Array<[number, number]>, options?: { prefillChunk?: number }): Promise<S4DParityRun>;
}

declare global {
  interface Window {
    __s4dParity: S4DParityPage;
  }
}

/** Rows t0..t1 of x (B, L, H). */
function rows(x: Float32Array, B: number, L: number, H: number, t0: number, t1: number): Float32Array {
  const out = new Float32Array(B * (t1 - t0) * H);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * L + t0) * H, (b * L + t1) * H), b * (t1 - t0) * H);
  return out;
}

const gpu = openGpu();

const page: S4DParityPage = {
  status: 'starting',
  async run(url, segments, options = {}) {
    const { runtime: rt, adapterName } = await gpu;
    const file = await openSafetensors(new URL(url, location.href).href);
    const meta = JSON.parse(file.metadata.config) as { H: number; N: number; B: number; L: number; layers: Array<{ init: 'lin' | 'inv'; bidirectional: boolean }> };
    const { H, N, B, L } = meta;
    const input = await file.readFloat32('input');
    const owned: Tensor[] = [];
    const mixers: SequenceMixer[] = [];
    try {
      for (const [i, layer] of meta.layers.entries()) {
        const config = { hiddenSize: H, stateSize: N, init: layer.init, bidirectional: layer.bidirectional, ...(options.prefillChunk ? { prefillChunk: options.prefillChunk } : {}) };
        const weights: Record<string, Tensor> = {};
        for (const spec of mixerFactories.s4d.expectedWeights(config)) owned.push((weights[spec.name] = await uploadTensor(rt, file, `layers.${i}.${spec.name}`)));
        mixers.push(mixerFactories.s4d.create(rt, config, weights));
      }
      const states = mixers.map((m) => m.createState(B));
      const T = segments.at(-1)![1];
      const layers = mixers.map(() => new Float32Array(B * T * H));
      const output = new Float32Array(B * T * H);
      const t = performance.now();
      let next = 0;
      for (const [t0, t1] of segments) {
        if (t0 !== next || t1 <= t0 || t1 > L) throw new Error(`segment [${t0}, ${t1}) does not follow ${next} within ${L} tokens`);
        next = t1;
        const h = rows(input, B, L, H, t0, t1);
        for (const [i, mixer] of mixers.entries()) {
          const x = rt.upload(h, [B, t1 - t0, H]);
          const y = mixer.forward(x, states[i]);
          const got = await rt.readFloat(y);
          x.dispose();
          y.dispose();
          for (let b = 0; b < B; b++) layers[i].set(got.subarray(b * (t1 - t0) * H, (b + 1) * (t1 - t0) * H), (b * T + t0) * H);
          for (let j = 0; j < h.length; j++) h[j] += got[j];
        }
        for (let b = 0; b < B; b++) output.set(h.subarray(b * (t1 - t0) * H, (b + 1) * (t1 - t0) * H), (b * T + t0) * H);
      }
      const ms = performance.now() - t;
      for (const s of states) s.dispose();
      return { adapterName, B, L, H, layers: layers.map((l) => Array.from(l)), output: Array.from(output), ms };
    } finally {
      for (const m of mixers) m.dispose?.();
      for (const w of owned) w.dispose();
      await file.close();
    }
  },
};
window.__s4dParity = page;
gpu.then(
  () => (page.status = 'ready'),
  (error: unknown) => {
    page.status = 'failed';
    page.error = String(error);
  },
);
