/**
 * The statespace demo page: finds WebGPU, then wires the model, chat, state,
 * speed and playground cards. One GPU job at a time (load, generation or
 * benchmark). `?model=<url>` loads a model folder on open.
 */
import './style.css';
import type { TurnResult } from './conversation.js';
import { chatPanels } from './chat-panel.js';
import { h } from './dom.js';
import { describeError, showError } from './errors.js';
import { type GpuReport, openGpu } from './gpu.js';
import { type DemoModel, loadDemoModel } from './loader.js';
import { modelPanel } from './model-panel.js';
import { playgroundPanel } from './playground-panel.js';

/** What the page exposes for tests and the console (`window.__statespaceDemo`). */
export interface DemoHandle {
  /** 'starting' until WebGPU is checked, then 'ready' or 'no-gpu'. */
  gpu: 'starting' | 'ready' | 'no-gpu';
  gpuError?: { code?: string; message: string };
  adapterName?: string;
  model?: { name: string; architecture: string; pattern: string; vocabSize: number };
  /** Results of finished turns, oldest first. */
  turns: TurnResult[];
}

declare global {
  interface Window {
    __statespaceDemo: DemoHandle;
  }
}

const handle: DemoHandle = { gpu: 'starting', turns: [] };
window.__statespaceDemo = handle;

let gpu: GpuReport | null = null;
// Settles when the WebGPU check is over (with the report, or null without WebGPU):
// a load asked for while the check runs (a drop, Enter in the URL field) waits for it.
let gpuChecked: (report: GpuReport | null) => void = () => {};
const gpuReady = new Promise<GpuReport | null>((resolve) => (gpuChecked = resolve));
let current: DemoModel | null = null;
let job: string | null = null;

const acquire = (name: string) => {
  if (job) return false;
  job = name;
  return true;
};
const release = () => {
  job = null;
};

const gpuBadge = h('div', { class: 'gpu-badge', 'data-testid': 'gpu-status' }, 'Checking WebGPU…');
const gpuNotice = h('div', { class: 'notice', hidden: true, role: 'alert', 'data-testid': 'gpu-error' });

const chat = chatPanels({ acquire, release, onTurn: (r) => handle.turns.push(r) });

const models = modelPanel({
  busy: () => job !== null,
  load: async (source, weightDtype, onProgress, onStage) => {
    if (!gpu) onStage('waiting for the WebGPU check');
    const report = gpu ?? (await gpuReady);
    if (!report) throw new Error('WebGPU is not available (see the message at the top of the page)');
    if (!acquire('load')) throw new Error('the GPU is busy');
    try {
      // Free the previous model first: two large models may not fit together.
      chat.setModel(null);
      current?.model.dispose();
      current = null;
      handle.model = undefined;
      report.runtime.trimPool();
      const demo = await loadDemoModel(report.runtime, source, { weightDtype, onProgress, onStage });
      current = demo;
      handle.model = { name: demo.name, architecture: demo.architecture, pattern: demo.pattern, vocabSize: demo.spec.vocabSize };
      chat.setModel(demo);
      return demo;
    } finally {
      release();
    }
  },
});

const playground = playgroundPanel({ runtime: () => gpu?.runtime ?? null, acquire, release, isSoftware: () => !!gpu?.isSoftware });

const app = document.getElementById('app') as HTMLElement;
app.replaceChildren(
  h(
    'header',
    {},
    h('div', {}, h('h1', {}, 'statespace'), h('p', { class: 'tagline' }, 'Mamba, Mamba-2, attention and hybrids on WebGPU, in this tab.')),
    gpuBadge,
  ),
  gpuNotice,
  h(
    'main',
    { class: 'grid' },
    h('div', { class: 'col' }, models.card, chat.chatCard),
    h('div', { class: 'col' }, chat.stateCard, chat.speedCard),
    playground.card,
  ),
  h(
    'footer',
    {},
    'Weights stream from the folder you give (HTTP Range requests or local files); nothing leaves this machine. ',
    h('a', { href: 'https://github.com/huggingface/transformers', rel: 'noreferrer' }, 'Hugging Face'),
    '-layout folders: config.json, model.safetensors (or an index and shards), tokenizer.json.',
  ),
);

async function start(): Promise<void> {
  try {
    gpu = await openGpu();
    handle.gpu = 'ready';
    handle.adapterName = gpu.adapterName;
    gpuBadge.classList.add('ok');
    gpuBadge.replaceChildren(h('strong', {}, 'WebGPU'), ` ${gpu.adapterName}`);
    if (gpu.isSoftware) gpuBadge.append(h('span', { class: 'chip warn', title: 'A CPU implementation of WebGPU: everything runs, slowly' }, 'software adapter'));
    if (gpu.missingFeatures.length > 0) {
      gpuBadge.title = `Optional features missing:\n${gpu.missingFeatures.map((f) => `• ${f.feature}: ${f.meaning}`).join('\n')}`;
      gpuBadge.append(h('span', { class: 'chip', title: gpuBadge.title }, `${gpu.missingFeatures.length} optional feature${gpu.missingFeatures.length > 1 ? 's' : ''} missing`));
    }
    gpu.runtime.device.lost.then((info) => {
      if (info.reason === 'destroyed') return;
      handle.gpu = 'no-gpu';
      handle.gpuError = { code: 'DEVICE_LOST', message: info.message };
      showError(gpuNotice, Object.assign(new Error(`The GPU device was lost (${info.message || info.reason}). Reload the page.`), { name: 'DeviceLost' }));
    });
    playground.adaptDefaults();
    models.setEnabled(true);
    playground.setEnabled(true);
    gpuChecked(gpu);
  } catch (error) {
    handle.gpu = 'no-gpu';
    handle.gpuError = describeError(error);
    gpuBadge.classList.add('bad');
    gpuBadge.textContent = 'No WebGPU';
    showError(gpuNotice, error, 'WebGPU is not available');
    models.setEnabled(false);
    playground.setEnabled(false);
    gpuChecked(null);
    return;
  }
  const params = new URLSearchParams(location.search);
  const model = params.get('model');
  if (model) await models.loadUrl(model);
}

void start();
