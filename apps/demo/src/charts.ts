/**
 * The two uPlot charts: state memory (SSM states, conv states, KV caches) as the
 * context grows, and the playground's decode time per token vs context length.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { formatBytes, formatNumber } from './dom.js';
import { latencyAxis } from './latency-axis.js';

const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2'];

function widthOf(el: HTMLElement): number {
  return Math.max(260, Math.floor(el.clientWidth || el.getBoundingClientRect().width || 480));
}

/** Keeps a chart as wide as its container. */
function follow(container: HTMLElement, plot: uPlot, height: number): void {
  const observer = new ResizeObserver(() => plot.setSize({ width: widthOf(container), height }));
  observer.observe(container);
}

/**
 * Memory held by the model state vs context length (one point per token).
 *
 * @example
 * ```ts
 * const chart = new MemoryChart(div);
 * chart.add(37, { ssm: 65536, conv: 4096, kv: 0 });
 * ```
 */
export class MemoryChart {
  private readonly plot: uPlot;
  private readonly data: [number[], number[], number[], number[]] = [[], [], [], []];
  private pending = false;

  constructor(private readonly container: HTMLElement) {
    const height = 220;
    const bytesAxis = { values: (_u: uPlot, ticks: number[]) => ticks.map((t) => formatBytes(t)), size: 70 };
    this.plot = new uPlot(
      {
        width: widthOf(container),
        height,
        scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, Math.max(1024, max * 1.1)] } },
        axes: [{ label: 'context length (tokens)' }, bytesAxis],
        series: [
          { label: 'context' },
          { label: 'SSM states', stroke: COLORS[0], width: 2, fill: 'rgba(37,99,235,0.08)', value: (_u, v) => (v == null ? '–' : formatBytes(v)) },
          { label: 'KV caches', stroke: COLORS[1], width: 2, fill: 'rgba(220,38,38,0.08)', value: (_u, v) => (v == null ? '–' : formatBytes(v)) },
          { label: 'conv states', stroke: COLORS[2], width: 1.5, dash: [5, 4], value: (_u, v) => (v == null ? '–' : formatBytes(v)) },
        ],
        legend: { live: true },
      },
      this.data,
      container,
    );
    follow(container, this.plot, height);
  }

  /** Adds a point (a later point at the same or a smaller context replaces the tail). */
  add(context: number, memory: { ssm: number; kv: number; conv: number }): void {
    const [x, ssm, kv, conv] = this.data;
    while (x.length > 0 && x[x.length - 1] >= context) {
      x.pop();
      ssm.pop();
      kv.pop();
      conv.pop();
    }
    x.push(context);
    ssm.push(memory.ssm);
    kv.push(memory.kv);
    conv.push(memory.conv);
    // One redraw per frame however fast tokens come.
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        this.plot.setData(this.data);
      });
    }
  }

  /** Forgets every point. */
  clear(): void {
    for (const s of this.data) s.length = 0;
    this.plot.setData(this.data);
  }

  get points(): number {
    return this.data[0].length;
  }
}

/** One curve of the playground chart. */
export interface LatencySeries {
  label: string;
  points: { context: number; msPerToken: number }[];
}

/**
 * Decode time per token vs context length, one curve per hybrid ratio.
 *
 * @example
 * ```ts
 * const chart = new LatencyChart(div);
 * chart.show([{ label: 'pure Mamba-2', points: [{ context: 64, msPerToken: 3.1 }] }]);
 * ```
 */
export class LatencyChart {
  private plot: uPlot | null = null;
  private readonly height = 260;

  constructor(private readonly container: HTMLElement) {
    new ResizeObserver(() => this.plot?.setSize({ width: widthOf(container), height: this.height })).observe(container);
  }

  /** Redraws with these curves (missing points are gaps). */
  show(series: readonly LatencySeries[]): void {
    const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.context)))].sort((a, b) => a - b);
    const axis = latencyAxis(xs);
    const data: (number | null)[][] = [xs, ...series.map((s) => xs.map((x) => s.points.find((p) => p.context === x)?.msPerToken ?? null))];
    this.plot?.destroy();
    this.container.replaceChildren();
    this.plot = new uPlot(
      {
        width: widthOf(this.container),
        height: this.height,
        // The x axis ends where the data end (uPlot's log auto-range would round 128 up to 1,000).
        // What uPlot actually drew, for the e2e test.
        hooks: {
          draw: [
            (u) => {
              this.container.dataset.xMin = String(u.scales.x.min);
              this.container.dataset.xMax = String(u.scales.x.max);
            },
          ],
        },
        scales: { x: { time: false, distr: axis.distr, log: axis.log, range: () => axis.range }, y: { range: (_u, _min, max) => [0, Math.max(0.1, (max ?? 1) * 1.15)] } },
        axes: [
          { label: 'context length (tokens)' },
          { label: 'decode ms / token', values: (_u, ticks) => ticks.map((t) => formatNumber(t)), size: 60 },
        ],
        series: [
          { label: 'context' },
          ...series.map((s, i) => ({
            label: s.label,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            points: { show: true, size: 6 },
            spanGaps: true,
            value: (_u: uPlot, v: number | null) => (v == null ? '–' : `${formatNumber(v)} ms`),
          })),
        ],
      },
      data as uPlot.AlignedData,
      this.container,
    );
  }
}
