/** FLOPs of causal attention in a bench model's prefill. */
import type { HybridComposition } from '@statespace/hybrid';

/**
 * FLOPs of causal attention over an L-token prefill: per full-attention layer
 * Q·Kᵀ and P·V, 2 · 2 · H · D · L² / 2 (the causal half); sliding-window
 * layers count their window's keys.
 *
 * @example
 * ```ts
 * attentionFlops(llama.composition, 32768); // 24 layers x 2 x 16 x 64 x 32768^2 ≈ 5.3e13
 * ```
 */
export function attentionFlops(c: HybridComposition, L: number): number {
  const a = c.attention;
  const pattern = c.pattern ?? '';
  if (!a) return 0;
  const H = a.numHeads;
  const D = a.headDim ?? c.hiddenSize / H;
  let total = 0;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch !== 'A' && ch !== '*' && ch !== 'S') continue;
    const w = c.slidingWindows && i in c.slidingWindows ? c.slidingWindows[i] : ch === 'S' ? a.slidingWindow : null;
    const pairs = w ? Math.min(L, w) * L - (Math.min(L, w) * (Math.min(L, w) - 1)) / 2 : (L * (L + 1)) / 2;
    total += 4 * H * D * pairs;
  }
  return total;
}
