import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ModelFiles, openModel } from '@statespace/checkpoint';
import { getTestRuntime } from '@statespace/core/testing';
import { type HybridModel, Session, composeModel, loadModel } from '@statespace/hybrid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Conversation, type TurnEvent } from './conversation.js';
import { TextCodec } from './text.js';

const neox = new URL('../../../packages/tokenizer/fixtures/inputs/neox/', import.meta.url);
const fixtures = new URL('../../../fixtures/', import.meta.url);
const VOCAB = 974; // the neox fixture tokenizer's ids

async function collect(turn: AsyncGenerator<TurnEvent, unknown, undefined>): Promise<TurnEvent[]> {
  const events: TurnEvent[] = [];
  for await (const e of turn) events.push(e);
  return events;
}

let model: HybridModel;

beforeAll(async () => {
  const rt = await getTestRuntime();
  // One Mamba-2 layer and one attention layer: both kinds of state.
  model = composeModel(rt, { pattern: 'MA', hiddenSize: 64, vocabSize: VOCAB, mamba2: { numHeads: 2, headDim: 64, stateSize: 16, chunkSize: 16 }, attention: { numHeads: 2 } }, { seed: 5 });
});
afterAll(() => model?.dispose());

describe('Conversation (completion, token ids)', () => {
  it('carries the state between turns: two turns give what one pass over the same ids gives', async () => {
    const chat = new Conversation(model, TextCodec.idsOnly(VOCAB));
    expect(chat.mode).toBe('completion');
    const first = await collect(chat.send('5 17 300 2', { maxNewTokens: 4, temperature: 0, ignoreEos: true }));
    const done1 = first.at(-1);
    expect(done1?.type).toBe('done');
    const ids1 = done1?.type === 'done' ? done1.result.ids : [];
    expect(ids1).toHaveLength(4);
    // The last generated token is fed at the start of the next turn.
    expect(chat.contextLength).toBe(4 + 3);
    expect(chat.contextIds).toEqual([5, 17, 300, 2, ...ids1]);

    const second = await collect(chat.send('42 7', { maxNewTokens: 3, temperature: 0, ignoreEos: true }));
    const prompt = second.find((e) => e.type === 'prompt');
    expect(prompt).toMatchObject({ promptTokens: 2, reusedTokens: 8 });
    const prefill = second.find((e) => e.type === 'prefill');
    expect(prefill).toMatchObject({ tokens: 3 }); // the carried token + the two new ids
    const ids2 = second.at(-1)?.type === 'done' ? (second.at(-1) as Extract<TurnEvent, { type: 'done' }>).result.ids : [];

    // The same ids through a fresh session in one go.
    const fresh = new Session(model);
    const oneGo: number[] = [];
    for await (const t of fresh.generate([5, 17, 300, 2, ...ids1, 42, 7], { maxNewTokens: 3, greedy: true, ignoreEos: true })) oneGo.push(t);
    fresh.dispose();
    expect(ids2).toEqual(oneGo);

    // Memory events report the state as it grows; the KV cache is there, the SSM state too.
    const token = second.find((e) => e.type === 'token');
    expect(token?.type === 'token' && token.memory.kv > 0 && token.memory.ssm > 0).toBe(true);

    chat.clear();
    expect(chat.contextLength).toBe(0);
    expect(chat.contextIds).toEqual([]);
    const again = await collect(chat.send('5 17 300 2', { maxNewTokens: 4, temperature: 0, ignoreEos: true }));
    expect(again.at(-1)?.type === 'done' && (again.at(-1) as Extract<TurnEvent, { type: 'done' }>).result.ids).toEqual(ids1);
    chat.dispose();
  });

  it('stops when asked and keeps the state consistent with what was shown', async () => {
    const chat = new Conversation(model, TextCodec.idsOnly(VOCAB));
    const abort = new AbortController();
    const ids: number[] = [];
    for await (const e of chat.send('1 2 3', { maxNewTokens: 50, temperature: 0.8, seed: 3, ignoreEos: true, signal: abort.signal })) {
      if (e.type === 'token') {
        ids.push(e.id);
        if (ids.length === 3) abort.abort();
      }
      if (e.type === 'done') expect(e.result.stopped).toBe(true);
    }
    expect(ids).toHaveLength(3);
    expect(chat.contextIds).toEqual([1, 2, 3, ...ids]);
    expect(chat.contextLength).toBe(6); // a stopped turn has fed every token shown
    chat.dispose();
  });
});

describe('Conversation (chat template)', () => {
  it('feeds only the new part of the conversation when the rendering extends the state', async () => {
    const files: Record<string, string> = {
      'tokenizer.json': readFileSync(new URL('tokenizer.json', neox), 'utf8'),
      'tokenizer_config.json': readFileSync(new URL('tokenizer_config.json', neox), 'utf8'),
    };
    const memory: ModelFiles = {
      name: 'memory',
      source: () => {
        throw new Error('unused');
      },
      exists: async (n) => n in files,
      readText: async (n) => {
        if (!(n in files)) throw Object.assign(new Error(`${n} missing`), { code: 'CHECKPOINT_FILE_NOT_FOUND', [Symbol.for('statespace.error')]: true });
        return files[n];
      },
    };
    const text = await TextCodec.fromFolder(await openModel(memory), VOCAB);
    const chat = new Conversation(model, text);
    expect(chat.mode).toBe('chat');
    const first = await collect(chat.send('Hi', { maxNewTokens: 3, temperature: 0, ignoreEos: true }));
    expect(first[0]).toMatchObject({ type: 'prompt', reusedTokens: 0, promptTokens: text.encodeChat([{ role: 'user', content: 'Hi' }]).length });
    expect(chat.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    const before = chat.contextIds.length;
    const second = await collect(chat.send('And then?', { maxNewTokens: 2, temperature: 0, ignoreEos: true }));
    const prompt = second[0];
    if (prompt.type !== 'prompt') throw new Error('the first event is the prompt');
    // Either the new rendering extends what the state saw (feed the rest) or it does not (start over); never both.
    if (prompt.reencoded) expect(prompt.reusedTokens).toBe(0);
    else expect(prompt.reusedTokens).toBe(before);
    const full = text.encodeChat(chat.messages.slice(0, 3));
    expect(chat.contextIds.slice(0, full.length)).toEqual(full);
    chat.dispose();
  });
});

// The demo's greedy turn (temperature 0) is transformers' greedy only with the repetition penalty off: the
// chat panel's default of 1.1 stays a logits processor at temperature 0 (as in transformers' generate), and it
// moves these two fixtures off their greedy_new_tokens, Nemotron-H MoE at the 8th token (a 2e-2 margin) and
// Mamba-3 at the first (its token 68 is in the prompt). That, not Chromium, was the e2e test's divergence.
describe.each([
  { name: 'hf-tiny/nemotron_h_moe', parts: 7 },
  { name: 'mamba3/siso-rope-half', parts: 0 },
])('Conversation on the $name fixture', ({ name, parts }) => {
  it('a temperature-0 turn gives the reference greedy tokens with the penalty off, and parts from them at 1.1', async () => {
    const dir = new URL(`${name}/`, fixtures);
    const ref = JSON.parse(readFileSync(new URL('reference.json', dir), 'utf8')) as { input_ids: number[]; greedy_new_tokens: number[] };
    const { model: loaded, spec } = await loadModel(await getTestRuntime(), fileURLToPath(dir));
    const turn = async (repetitionPenalty?: number): Promise<number[]> => {
      const chat = new Conversation(loaded, TextCodec.idsOnly(spec.vocabSize));
      const done = (await collect(chat.send(ref.input_ids.join(' '), { maxNewTokens: 8, temperature: 0, repetitionPenalty, ignoreEos: true }))).at(-1);
      chat.dispose();
      return done?.type === 'done' ? done.result.ids : [];
    };
    try {
      const expected = ref.greedy_new_tokens.slice(0, 8);
      expect(await turn()).toEqual(expected);
      const penalised = await turn(1.1);
      expect(penalised.slice(0, parts)).toEqual(expected.slice(0, parts));
      expect(penalised[parts]).not.toBe(expected[parts]);
    } finally {
      loaded.dispose();
    }
  });
});
