import { describe, expect, it } from 'vitest';
import { sampleToken, seededRandom } from './sampling.js';

describe('sampling', () => {
  const logits = Float32Array.from([0.1, 2, 1.9, -1, 0.5]);
  it('greedy picks the argmax, repetition penalty can move it', () => {
    expect(sampleToken(logits, { greedy: true }, [], seededRandom(1))).toBe(1);
    expect(sampleToken(logits, { greedy: true, repetitionPenalty: 1.2 }, [1], seededRandom(1))).toBe(2);
  });
  it('top-k 1 is greedy whatever the temperature; top-k 2 stays inside the top two', () => {
    expect(sampleToken(logits, { temperature: 10, topK: 1 }, [], seededRandom(3))).toBe(1);
    const r = seededRandom(4);
    for (let i = 0; i < 200; i++) expect([1, 2]).toContain(sampleToken(logits, { temperature: 3, topK: 2 }, [], r));
  });
  it('top-p keeps the smallest set above p', () => {
    const r = seededRandom(5);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(sampleToken(logits, { temperature: 1, topP: 0.5 }, [], r));
    expect([...seen].sort()).toEqual([1, 2]);
  });
  it('the same seed gives the same draws; frequencies follow the softmax', () => {
    const draw = (seed: number) => Array.from({ length: 50 }, ((r) => () => sampleToken(logits, { temperature: 1 }, [], r))(seededRandom(seed)));
    expect(draw(9)).toEqual(draw(9));
    const r = seededRandom(11);
    const counts = new Array(5).fill(0);
    for (let i = 0; i < 20000; i++) counts[sampleToken(logits, { temperature: 1 }, [], r)]++;
    const z = Array.from(logits, Math.exp).reduce((a, b) => a + b, 0);
    for (let j = 0; j < 5; j++) expect(Math.abs(counts[j] / 20000 - Math.exp(logits[j]) / z)).toBeLessThan(0.015);
  });
});
