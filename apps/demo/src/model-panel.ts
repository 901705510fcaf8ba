/**
 * The "Model" card: the default model, a URL, picked files or a folder, or a
 * drop; a progress bar while weights stream in; what was loaded.
 */
import type { LoadProgress } from '@statespace/checkpoint';
import { h, formatBytes } from './dom.js';
import { clearError, showError } from './errors.js';
import type { DemoModel, DemoSource, WeightDtype } from './loader.js';

/** What the panel asks of the app. */
export interface ModelPanelHost {
  /** Loads a model; resolves when it is ready (or throws). */
  load(source: DemoSource, weightDtype: WeightDtype, progress: (p: LoadProgress) => void, stage: (s: string) => void): Promise<DemoModel>;
  /** Whether another GPU job runs now. */
  busy(): boolean;
}

/** The repo's default model, served beside the app. */
export const DEFAULT_MODEL_URL = 'models/default/';

/** Files of a dropped folder (its direct children) or the dropped files themselves. */
async function droppedFiles(transfer: DataTransfer): Promise<File[]> {
  const entries = Array.from(transfer.items)
    .map((item) => item.webkitGetAsEntry?.())
    .filter((e): e is FileSystemEntry => !!e);
  if (entries.length === 0) return Array.from(transfer.files);
  const fileOf = (entry: FileSystemFileEntry) => new Promise<File>((resolve, reject) => entry.file(resolve, reject));
  const out: File[] = [];
  for (const entry of entries) {
    if (entry.isFile) out.push(await fileOf(entry as FileSystemFileEntry));
    else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries returns the listing in batches until an empty one.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) if (child.isFile) out.push(await fileOf(child as FileSystemFileEntry));
      }
    }
  }
  return out;
}

/** Builds the card; returns it and a `loadUrl` for the `?model=` query parameter. */
export function modelPanel(host: ModelPanelHost): { card: HTMLElement; loadUrl: (url: string) => Promise<DemoModel | null>; setEnabled: (on: boolean) => void } {
  const url = h('input', { type: 'text', id: 'model-url', 'data-testid': 'model-url', placeholder: 'https://huggingface.co/<org>/<repo>/resolve/main/  or  models/default/', spellcheck: 'false' });
  const dtype = h(
    'select',
    { id: 'weight-dtype', title: 'How weight matrices are stored on the GPU' },
    h('option', { value: 'f32' }, 'f32 weights'),
    h('option', { value: 'f16' }, 'f16 weights (half the memory)'),
    h('option', { value: 'keep' }, 'weights as stored in the file'),
  );
  const filesInput = h('input', { type: 'file', multiple: true, hidden: true, 'data-testid': 'model-files' });
  const folderInput = h('input', { type: 'file', multiple: true, hidden: true, webkitdirectory: true });
  const progress = h('progress', { max: 1, value: 0, 'data-testid': 'load-progress' });
  const progressText = h('span', { class: 'muted' }, 'No model loaded.');
  const info = h('div', { class: 'model-info', 'data-testid': 'model-info' });
  const errorBox = h('div', { class: 'error', hidden: true, role: 'alert', 'data-testid': 'model-error' });
  const buttons: HTMLButtonElement[] = [];
  // Off until the app has found WebGPU (setEnabled): a load before that could only fail.
  let enabled = false;

  const run = async (source: DemoSource): Promise<DemoModel | null> => {
    if (host.busy()) {
      showError(errorBox, new Error('the GPU is busy (generation or benchmark running): stop it first'));
      return null;
    }
    clearError(errorBox);
    info.replaceChildren();
    progress.value = 0;
    progress.removeAttribute('data-done');
    progressText.textContent = 'Opening…';
    for (const b of buttons) b.disabled = true;
    try {
      const demo = await host.load(
        source,
        dtype.value as WeightDtype,
        (p) => {
          progress.value = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 1;
          progressText.textContent = `${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)} · tensor ${p.tensorsDone}/${p.tensorsTotal} · ${p.tensor}`;
        },
        (stage) => (progressText.textContent = `${stage[0].toUpperCase()}${stage.slice(1)}…`),
      );
      progress.value = 1;
      progress.dataset.done = 'true';
      progressText.textContent = `Loaded in ${(demo.loadMs / 1000).toFixed(1)} s from ${demo.name}`;
      const layers = demo.spec.blocks.length;
      info.append(
        h('span', { class: 'chip' }, demo.architecture),
        h('span', { class: 'chip', title: 'M = Mamba-2, m = Mamba-1, A/* = attention, D = DeltaNet, - = MLP only' }, `layers ${demo.pattern || '–'} (${layers})`),
        h('span', { class: 'chip' }, `vocab ${demo.spec.vocabSize}`),
        h('span', { class: 'chip' }, `d ${demo.spec.hiddenSize}`),
        h('span', { class: 'chip' }, `weights ${formatBytes(demo.model.weightBytes())}`),
        h('span', { class: demo.text.hasTokenizer ? 'chip' : 'chip warn' }, demo.text.hasTokenizer ? (demo.text.hasChatTemplate ? 'tokenizer + chat template' : 'tokenizer, no chat template') : 'no tokenizer: type token ids'),
      );
      if (demo.tokenizerWarning) info.append(h('div', { class: 'warn-text' }, `tokenizer.json could not be used (${demo.tokenizerWarning}); the model runs on token ids.`));
      return demo;
    } catch (error) {
      progressText.textContent = 'Loading failed.';
      showError(errorBox, error, 'Loading the model failed');
      return null;
    } finally {
      for (const b of buttons) b.disabled = !enabled;
    }
  };

  const loadUrl = (value: string) => {
    url.value = value;
    return run({ kind: 'url', url: value });
  };
  const button = (label: string, onclick: () => void, attrs: Record<string, string> = {}) => {
    const b = h('button', { type: 'button', onclick, disabled: !enabled, ...attrs }, label);
    buttons.push(b);
    return b;
  };

  filesInput.addEventListener('change', () => {
    if (filesInput.files?.length) void run({ kind: 'files', files: Array.from(filesInput.files) });
    filesInput.value = '';
  });
  folderInput.addEventListener('change', () => {
    if (folderInput.files?.length) void run({ kind: 'files', files: Array.from(folderInput.files) });
    folderInput.value = '';
  });

  const drop = h(
    'div',
    { class: 'drop', 'data-testid': 'drop-zone' },
    h('strong', {}, 'Drop a model folder'),
    ' or its files here (config.json, *.safetensors, tokenizer.json…)',
  );
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (!e.dataTransfer) return;
    void droppedFiles(e.dataTransfer)
      .then((files) => run({ kind: 'files', files }))
      .catch((error) => showError(errorBox, error, 'Reading the dropped files failed'));
  });

  url.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && url.value.trim()) void loadUrl(url.value);
  });

  const card = h(
    'section',
    { class: 'card', id: 'model-card' },
    h('h2', {}, 'Model'),
    h(
      'div',
      { class: 'row' },
      button('Load default model', () => void loadUrl(DEFAULT_MODEL_URL), { class: 'primary', 'data-testid': 'load-default' }),
      h('span', { class: 'muted small' }, 'the repo’s models/default/, served with this page'),
    ),
    h('div', { class: 'row' }, url, button('Load URL', () => url.value.trim() && void loadUrl(url.value), { 'data-testid': 'load-url' })),
    h('div', { class: 'row' }, button('Choose files…', () => filesInput.click()), button('Choose folder…', () => folderInput.click()), dtype, filesInput, folderInput),
    drop,
    h('div', { class: 'progress-row' }, progress, progressText),
    info,
    errorBox,
  );
  return {
    card,
    loadUrl,
    setEnabled: (on) => {
      enabled = on;
      for (const b of buttons) b.disabled = !on;
    },
  };
}
