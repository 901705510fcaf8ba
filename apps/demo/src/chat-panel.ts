/**
 * The "Chat" card (streamed replies, sampling settings, stop, clear state) and
 * the "State" and "Speed" cards beside it: what the model carries from one turn
 * to the next (SSM states, conv states, KV caches, context length), charted as
 * the context grows, and prefill / decode tokens per second.
 */
import type { SessionMemory } from '@statespace/hybrid';
import { MemoryChart } from './charts.js';
import { type ConversationMode, Conversation, type TurnResult } from './conversation.js';
import { formatBytes, formatNumber, h, numberOf } from './dom.js';
import { clearError, showError } from './errors.js';
import type { DemoModel } from './loader.js';

/** What the chat asks of the app. */
export interface ChatHost {
  /** Takes the GPU for a job; false when another job holds it. */
  acquire(job: string): boolean;
  release(): void;
  /** Called after each turn (the e2e test reads it through window.__statespaceDemo). */
  onTurn(result: TurnResult): void;
}

function stat(label: string, testid: string): { el: HTMLElement; value: HTMLElement } {
  const value = h('div', { class: 'stat-value', 'data-testid': testid }, '–');
  return { el: h('div', { class: 'stat' }, value, h('div', { class: 'stat-label' }, label)), value };
}

/** Builds the three cards; `setModel` swaps the model they talk to. */
export function chatPanels(host: ChatHost): { chatCard: HTMLElement; stateCard: HTMLElement; speedCard: HTMLElement; setModel: (demo: DemoModel | null) => void } {
  let conversation: Conversation | null = null;
  let abort: AbortController | null = null;

  // ------------------------------------------------------------ chat card
  const modeChat = h('input', { type: 'radio', name: 'mode', value: 'chat', id: 'mode-chat' });
  const modeCompletion = h('input', { type: 'radio', name: 'mode', value: 'completion', id: 'mode-completion', checked: true });
  const transcript = h('div', { class: 'transcript', 'data-testid': 'transcript', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Load a model to start.'));
  const prompt = h('textarea', { id: 'prompt', 'data-testid': 'prompt', rows: 3, placeholder: 'Load a model first', disabled: true });
  const send = h('button', { type: 'button', class: 'primary', 'data-testid': 'send', disabled: true }, 'Send');
  const stop = h('button', { type: 'button', 'data-testid': 'stop', disabled: true }, 'Stop');
  const clear = h('button', { type: 'button', class: 'danger', 'data-testid': 'clear-state', disabled: true, title: 'Reset the SSM states and empty the KV caches: the model forgets the conversation' }, 'Clear state');
  const status = h('div', { class: 'status muted', 'data-testid': 'chat-status' });
  const errorBox = h('div', { class: 'error', hidden: true, role: 'alert', 'data-testid': 'chat-error' });
  const lastIds = h('code', { class: 'ids', 'data-testid': 'generated-ids' });

  const num = (id: string, value: number, attrs: Record<string, string | number> = {}) => h('input', { type: 'number', id, 'data-testid': id, value, ...attrs });
  const maxNew = num('max-new-tokens', 64, { min: 1, max: 4096, step: 1 });
  const temperature = num('temperature', 0.7, { min: 0, max: 5, step: 0.05 });
  const topK = num('top-k', 40, { min: 0, step: 1 });
  const topP = num('top-p', 0.95, { min: 0, max: 1, step: 0.01 });
  const repetition = num('repetition-penalty', 1.1, { min: 0.5, max: 3, step: 0.01 });
  const seed = num('seed', 0, { min: 0, step: 1 });
  const ignoreEos = h('input', { type: 'checkbox', id: 'ignore-eos' });
  const field = (label: string, input: HTMLElement, hint?: string) => h('label', { class: 'field', title: hint }, h('span', {}, label), input);

  const sampling = h(
    'div',
    { class: 'sampling' },
    field('max new tokens', maxNew),
    field('temperature', temperature, '0 = greedy (argmax on the GPU, after the repetition penalty)'),
    field('top-k', topK, '0 = off'),
    field('top-p', topP, '1 = off'),
    field('repetition penalty', repetition, '1 = off'),
    field('seed', seed),
    h('label', { class: 'field check' }, ignoreEos, h('span', {}, 'ignore EOS')),
  );

  const chatCard = h(
    'section',
    { class: 'card', id: 'chat-card' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Chat'), h('div', { class: 'segmented' }, modeChat, h('label', { for: 'mode-chat' }, 'Chat'), modeCompletion, h('label', { for: 'mode-completion' }, 'Completion'))),
    transcript,
    prompt,
    h('div', { class: 'row actions' }, send, stop, clear, h('span', { class: 'muted small' }, 'Ctrl+Enter sends')),
    status,
    sampling,
    h('div', { class: 'small muted' }, 'Last reply as ids: ', lastIds),
    errorBox,
  );

  // ------------------------------------------------------------ state card
  const context = stat('tokens in context', 'context-length');
  const ssm = stat('SSM states', 'mem-ssm');
  const conv = stat('conv states', 'mem-conv');
  const kv = stat('KV caches', 'mem-kv');
  const weights = h('strong', { 'data-testid': 'mem-weights' }, '–');
  const total = h('strong', { 'data-testid': 'mem-total' }, '–');
  const chartBox = h('div', { class: 'chart', 'data-testid': 'memory-chart' });
  const stateCard = h(
    'section',
    { class: 'card', id: 'state-card' },
    h('h2', {}, 'State carried to the next turn'),
    h('div', { class: 'stats four' }, context.el, ssm.el, conv.el, kv.el),
    h('p', { class: 'small' }, 'State in all: ', total, ' · weights (not state): ', weights),
    h('p', { class: 'small muted' }, 'Mamba layers carry a fixed-size state whatever the context; attention layers carry a KV cache that grows with every token. “Clear state” zeroes the one and empties the other.'),
    chartBox,
  );
  const chart = new MemoryChart(chartBox);

  // ------------------------------------------------------------ speed card
  const prefillRate = stat('prefill tokens/s', 'prefill-rate');
  const decodeRate = stat('decode tokens/s', 'decode-rate');
  const msPerToken = stat('ms / decoded token', 'ms-per-token');
  const turnTokens = stat('tokens this turn', 'turn-tokens');
  const speedCard = h('section', { class: 'card', id: 'speed-card' }, h('h2', {}, 'Speed'), h('div', { class: 'stats' }, prefillRate.el, decodeRate.el, msPerToken.el, turnTokens.el));

  // ------------------------------------------------------------ behaviour
  const showMemory = (memory: SessionMemory, length: number) => {
    context.value.textContent = String(length);
    ssm.value.textContent = formatBytes(memory.ssm);
    conv.value.textContent = formatBytes(memory.conv);
    kv.value.textContent = formatBytes(memory.kv);
    weights.textContent = formatBytes(memory.weights);
    total.textContent = formatBytes(memory.ssm + memory.conv + memory.kv);
  };

  const setRunning = (running: boolean) => {
    const ready = !!conversation;
    send.disabled = running || !ready;
    prompt.disabled = !ready;
    clear.disabled = running || !ready;
    stop.disabled = !running;
    modeChat.disabled = running || !conversation?.text.hasChatTemplate;
    modeCompletion.disabled = running || !ready;
  };

  const placeholder = () => {
    if (!conversation) return 'Load a model first';
    if (!conversation.text.hasTokenizer) return 'Token ids, e.g. 126 94 274 286 (this model has no tokenizer.json)';
    return conversation.mode === 'chat' ? 'Message the model…' : 'Text to continue…';
  };

  const resetSpeed = () => {
    for (const s of [prefillRate, decodeRate, msPerToken, turnTokens]) s.value.textContent = '–';
  };

  const resetView = (note: string) => {
    resetSpeed();
    transcript.replaceChildren(h('p', { class: 'muted' }, note));
    chart.clear();
    if (conversation) {
      showMemory(conversation.memory(), conversation.contextLength);
      chart.add(0, conversation.memory());
    }
    lastIds.textContent = '';
  };

  const setMode = (mode: ConversationMode) => {
    if (!conversation || conversation.mode === mode) return;
    conversation.clear();
    conversation.mode = mode;
    prompt.placeholder = placeholder();
    resetView(`Switched to ${mode}: the state was cleared.`);
  };
  modeChat.addEventListener('change', () => setMode('chat'));
  modeCompletion.addEventListener('change', () => setMode('completion'));

  const turn = async () => {
    if (!conversation) return;
    const input = prompt.value;
    if (!input.trim()) return;
    if (!host.acquire('chat')) {
      showError(errorBox, new Error('the GPU is busy (a benchmark or a load is running)'));
      return;
    }
    clearError(errorBox);
    abort = new AbortController();
    setRunning(true);
    if (transcript.querySelector('p.muted')) transcript.replaceChildren();
    // A later turn gets a rule above it: in completion mode the parts are inline and would run together.
    else if (transcript.childElementCount > 0) transcript.append(h('div', { class: 'turn-sep', role: 'separator', 'data-testid': 'turn-separator' }));
    const userEl = h('div', { class: conversation.mode === 'chat' ? 'msg user' : 'doc prompt-part', 'data-testid': 'turn-prompt' }, input);
    const replyEl = h('div', { class: conversation.mode === 'chat' ? 'msg assistant' : 'doc reply-part', 'data-testid': 'reply' });
    const cursor = h('span', { class: 'cursor' });
    replyEl.append(cursor);
    // Ids models show ids: keep the reply's first id apart from the prompt's last.
    if (conversation.mode === 'completion' && !conversation.text.hasTokenizer) cursor.before(' ');
    transcript.append(userEl, replyEl);
    transcript.scrollTop = transcript.scrollHeight;
    const ids: number[] = [];
    try {
      const options = {
        maxNewTokens: Math.max(1, Math.floor(numberOf(maxNew, 64))),
        temperature: Math.max(0, numberOf(temperature, 0)),
        topK: Math.floor(numberOf(topK, 0)) || undefined,
        topP: numberOf(topP, 1) < 1 ? numberOf(topP, 1) : undefined,
        repetitionPenalty: numberOf(repetition, 1) !== 1 ? numberOf(repetition, 1) : undefined,
        seed: Math.floor(numberOf(seed, 0)),
        ignoreEos: ignoreEos.checked,
        signal: abort.signal,
      };
      for await (const event of conversation.send(input, options)) {
        if (event.type === 'prompt') {
          prompt.value = '';
          status.textContent = `Prefilling ${event.promptTokens} new tokens${event.reusedTokens ? ` (the state already holds ${event.reusedTokens})` : ''}${event.reencoded ? ' — the conversation re-encoded differently, so the state was rebuilt' : ''}…`;
        } else if (event.type === 'prefill') {
          prefillRate.value.textContent = formatNumber(event.tokens / (event.ms / 1000));
          showMemory(event.memory, event.context);
          chart.add(event.context, event.memory);
          status.textContent = `Prefilled ${event.tokens} tokens in ${formatNumber(event.ms, 'ms')}; generating…`;
        } else if (event.type === 'token') {
          if (event.id >= 0) ids.push(event.id);
          if (event.text) cursor.before(event.text);
          if (Number.isFinite(event.decodeTokensPerSecond)) {
            decodeRate.value.textContent = formatNumber(event.decodeTokensPerSecond);
            msPerToken.value.textContent = formatNumber(1000 / event.decodeTokensPerSecond);
          }
          turnTokens.value.textContent = String(ids.length);
          showMemory(event.memory, event.context);
          chart.add(event.context, event.memory);
          transcript.scrollTop = transcript.scrollHeight;
        } else {
          const r = event.result;
          lastIds.textContent = r.ids.join(' ');
          replyEl.dataset.ids = r.ids.join(',');
          prefillRate.value.textContent = formatNumber(r.prefillTokensPerSecond);
          decodeRate.value.textContent = formatNumber(r.decodeTokensPerSecond);
          msPerToken.value.textContent = formatNumber(r.decodeTokens > 0 ? r.decodeMs / r.decodeTokens : NaN);
          turnTokens.value.textContent = String(r.ids.length);
          status.textContent = `${r.stopped ? 'Stopped' : 'Done'}: ${r.ids.length} tokens; prefill ${formatNumber(r.prefillTokensPerSecond, 'tok/s')}, decode ${formatNumber(r.decodeTokensPerSecond, 'tok/s')}. Context now ${conversation.contextLength} tokens.`;
          status.dataset.done = 'true';
          host.onTurn(r);
        }
      }
      if (ids.length === 0) cursor.before(h('em', { class: 'muted' }, '(no tokens)'));
    } catch (error) {
      showError(errorBox, error, 'Generation failed');
      status.textContent = 'Generation failed.';
    } finally {
      cursor.remove();
      abort = null;
      host.release();
      setRunning(false);
    }
  };

  send.addEventListener('click', () => {
    delete status.dataset.done;
    void turn();
  });
  prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      send.click();
    }
  });
  stop.addEventListener('click', () => abort?.abort());
  clear.addEventListener('click', () => {
    if (!conversation) return;
    conversation.clear();
    resetView('State cleared: the model remembers nothing of the conversation.');
    status.textContent = 'State cleared.';
  });

  const setModel = (demo: DemoModel | null) => {
    abort?.abort();
    conversation?.dispose();
    conversation = demo ? new Conversation(demo.model, demo.text) : null;
    if (conversation) {
      modeChat.checked = conversation.mode === 'chat';
      modeCompletion.checked = conversation.mode === 'completion';
    }
    prompt.placeholder = placeholder();
    resetView(demo ? (demo.text.hasTokenizer ? `Ready: ${demo.architecture}. Say something.` : 'Ready. This model has no tokenizer.json: type token ids, the reply shows ids.') : 'Load a model to start.');
    setRunning(false);
  };

  return { chatCard, stateCard, speedCard, setModel };
}
