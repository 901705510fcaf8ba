/**
 * The "Hybrid ratio playground" card: pick a size and the mixes, run the decode
 * benchmark on this GPU, plot decode time per token vs context for each.
 */
import type { Runtime } from '@statespace/core';
import { type BenchPoint, DEFAULT_STEPS, RATIOS, SIZES, benchVerdict, benchmarkDecode, compositionOf, patternOfChoice } from './bench.js';
import { LatencyChart, type LatencySeries } from './charts.js';
import { formatBytes, formatNumber, h } from './dom.js';
import { clearError, showError } from './errors.js';

/** What the playground asks of the app. */
export interface PlaygroundHost {
  runtime(): Runtime | null;
  acquire(job: string): boolean;
  release(): void;
  /** Whether the adapter is a CPU implementation (smaller defaults). */
  isSoftware(): boolean;
}

/** Parses "64, 256 1024" into sorted distinct positive integers. */
export function parseContexts(text: string): number[] {
  const values = text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number);
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 1 || v > 131072)) throw new Error(`context lengths must be integers in [1, 131072], got "${text}"`);
  return [...new Set(values)].sort((a, b) => a - b);
}

/** Builds the card. */
export function playgroundPanel(host: PlaygroundHost): { card: HTMLElement; adaptDefaults: () => void; setEnabled: (on: boolean) => void } {
  const size = h('select', { 'data-testid': 'bench-size' }, ...SIZES.map((s) => h('option', { value: s.id }, s.label)));
  const contexts = h('input', { type: 'text', 'data-testid': 'bench-contexts', value: '128, 512, 1024, 2048', spellcheck: 'false' });
  const steps = h('input', { type: 'number', 'data-testid': 'bench-steps', value: DEFAULT_STEPS, min: 1, max: 256 });
  const boxes = RATIOS.map((r) => ({ ratio: r, box: h('input', { type: 'checkbox', checked: true, value: r.id }) }));
  // Disabled until WebGPU is found (main.ts calls setEnabled).
  const run = h('button', { type: 'button', class: 'primary', 'data-testid': 'bench-run', disabled: true, title: 'Needs WebGPU' }, 'Run benchmark');
  let enabled = false;
  const stop = h('button', { type: 'button', disabled: true }, 'Stop');
  const status = h('div', { class: 'status muted', 'data-testid': 'bench-status' }, 'Random weights, same size for every mix; decode = one token through every layer plus reading its logits.');
  const chartBox = h('div', { class: 'chart empty', 'data-testid': 'bench-chart' }, 'Run the benchmark to plot decode time per token against context length.');
  const table = h('table', { class: 'results', 'data-testid': 'bench-table' });
  const errorBox = h('div', { class: 'error', hidden: true, role: 'alert' });
  const chart = new LatencyChart(chartBox);
  let abort: AbortController | null = null;

  const patterns = h('div', { class: 'small muted mono' });
  const showPatterns = () => {
    const s = SIZES.find((x) => x.id === size.value) ?? SIZES[0];
    patterns.textContent = RATIOS.map((r) => `${r.label}: ${patternOfChoice(s, r)}`).join('   ·   ');
  };
  size.addEventListener('change', showPatterns);
  showPatterns();

  const renderTable = (rows: { label: string; pattern: string; points: BenchPoint[] }[], lengths: number[]) => {
    table.replaceChildren(
      h('thead', {}, h('tr', {}, h('th', {}, 'mix'), h('th', {}, 'layers'), ...lengths.map((l) => h('th', { class: 'num' }, `ms/token @ ${l}`)), h('th', { class: 'num' }, 'state at longest'))),
      h(
        'tbody',
        {},
        ...rows.map((r) => {
          const last = r.points[r.points.length - 1];
          return h(
            'tr',
            {},
            h('td', {}, r.label),
            h('td', { class: 'mono' }, r.pattern),
            ...lengths.map((_, i) => {
              const p = r.points[i];
              if (!p) return h('td', { class: 'num' }, '…');
              // The median, with the fastest and slowest step under it: tiny models time within noise.
              return h('td', { class: 'num', title: `median of ${p.steps} steps` }, h('span', { class: 'median' }, formatNumber(p.msPerToken)), h('div', { class: 'spread' }, `${formatNumber(p.msMin)}–${formatNumber(p.msMax)}`));
            }),
            h('td', { class: 'num' }, last ? `${formatBytes(last.stateBytes.ssm + last.stateBytes.conv)} SSM+conv · ${formatBytes(last.stateBytes.kv)} KV` : '…'),
          );
        }),
      ),
    );
  };

  run.addEventListener('click', async () => {
    const runtime = host.runtime();
    clearError(errorBox);
    if (!runtime) {
      showError(errorBox, new Error('no WebGPU device (see the message at the top)'));
      return;
    }
    let lengths: number[];
    try {
      lengths = parseContexts(contexts.value);
    } catch (error) {
      showError(errorBox, error);
      return;
    }
    const chosen = boxes.filter((b) => b.box.checked).map((b) => b.ratio);
    if (chosen.length === 0) {
      showError(errorBox, new Error('pick at least one mix'));
      return;
    }
    if (!host.acquire('benchmark')) {
      showError(errorBox, new Error('the GPU is busy (generation or a load is running): stop it first'));
      return;
    }
    const s = SIZES.find((x) => x.id === size.value) ?? SIZES[0];
    abort = new AbortController();
    run.disabled = true;
    stop.disabled = false;
    delete status.dataset.done;
    const rows = chosen.map((r) => ({ label: r.label, pattern: patternOfChoice(s, r), points: [] as BenchPoint[] }));
    const draw = () => {
      chart.show(rows.map((r): LatencySeries => ({ label: r.label, points: r.points.map((p) => ({ context: p.context, msPerToken: p.msPerToken })) })));
      renderTable(rows, lengths);
    };
    chartBox.classList.remove('empty');
    draw();
    try {
      for (const [i, ratio] of chosen.entries()) {
        if (abort.signal.aborted) break;
        status.textContent = `Running ${ratio.label} (${rows[i].pattern}) at ${s.label}…`;
        await benchmarkDecode(runtime, compositionOf(s, ratio), lengths, {
          steps: Math.max(1, Math.floor(Number(steps.value) || DEFAULT_STEPS)),
          signal: abort.signal,
          onPoint: (p) => {
            rows[i].points.push(p);
            draw();
            status.textContent = `${ratio.label}: ${formatNumber(p.msPerToken)} ms/token at ${p.context} tokens`;
          },
        });
      }
      status.textContent = abort.signal.aborted ? 'Stopped.' : `Done on ${runtime.adapterName}. ${benchVerdict(rows)}`;
      status.dataset.done = 'true';
    } catch (error) {
      showError(errorBox, error, 'The benchmark failed');
      status.textContent = 'Failed.';
    } finally {
      abort = null;
      run.disabled = !enabled;
      stop.disabled = true;
      host.release();
    }
  });
  stop.addEventListener('click', () => abort?.abort());

  const card = h(
    'section',
    { class: 'card wide', id: 'playground-card' },
    h('h2', {}, 'Hybrid ratio playground'),
    h('p', { class: 'small muted' }, 'Same size, six layer mixes of Mamba-2, S4D and attention with random weights (composeModel). Measures decode time per token at a few context lengths on your GPU.'),
    h(
      'div',
      { class: 'row wrap' },
      h('label', { class: 'field' }, h('span', {}, 'size'), size),
      h('label', { class: 'field grow' }, h('span', {}, 'context lengths'), contexts),
      h('label', { class: 'field' }, h('span', {}, 'timed steps'), steps),
      ...boxes.map((b) => h('label', { class: 'field check' }, b.box, h('span', {}, b.ratio.label))),
    ),
    patterns,
    h('div', { class: 'row' }, run, stop),
    status,
    chartBox,
    table,
    errorBox,
  );

  return {
    card,
    setEnabled: (on) => {
      enabled = on;
      run.disabled = !on || abort !== null;
      run.title = on ? '' : 'Needs WebGPU';
    },
    // A software adapter (SwiftShader) is ~100x slower than a GPU: start small there.
    adaptDefaults: () => {
      if (host.isSoftware()) {
        size.value = 'tiny';
        contexts.value = '32, 64, 128';
        steps.value = '16';
        showPatterns();
      } else {
        size.value = 'small';
        showPatterns();
      }
    },
  };
}
