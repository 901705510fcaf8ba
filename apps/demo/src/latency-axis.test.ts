import { describe, expect, it } from 'vitest';
import { latencyAxis } from './latency-axis.js';

describe('latencyAxis', () => {
  it('ends the axis where the data end, not at the next power of ten', () => {
    // The software-adapter defaults: uPlot's own log range drew these to 1,000.
    expect(latencyAxis([16, 64, 128])).toEqual({ distr: 3, log: 2, range: [16, 128] });
    expect(latencyAxis([128, 512, 1024, 2048])).toEqual({ distr: 3, log: 2, range: [128, 2048] });
  });
  it('stays linear for a narrow span or two points, and pads a single point', () => {
    expect(latencyAxis([8, 24])).toEqual({ distr: 1, log: 10, range: [8, 24] });
    expect(latencyAxis([64, 128, 256])).toEqual({ distr: 1, log: 10, range: [64, 256] });
    expect(latencyAxis([6])).toEqual({ distr: 1, log: 10, range: [5, 7] });
    expect(latencyAxis([])).toEqual({ distr: 1, log: 10, range: [0, 1] });
  });
});
