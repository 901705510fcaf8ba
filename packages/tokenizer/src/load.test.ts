import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from './load.js';
import type { Tokenizer } from './tokenizer.js';
import { INPUTS_DIR } from './test-fixtures.js';

const dir = join(INPUTS_DIR, 'neox');
const tokenizerText = readFileSync(join(dir, 'tokenizer.json'), 'utf8');
const configText = readFileSync(join(dir, 'tokenizer_config.json'), 'utf8');

/** The loaded tokenizer works and has the config of the neox fixture. */
function expectNeox(tokenizer: Tokenizer, withConfig = true) {
  expect(tokenizer.decode(tokenizer.encode('Hello world'))).toBe('Hello world');
  expect(tokenizer.tokenize('Hello world')).toEqual(['Hello', 'Ġworld']);
  if (withConfig) {
    expect(tokenizer.eosToken).toEqual({ content: '<|endoftext|>', id: tokenizer.tokenToId('<|endoftext|>') });
    expect(tokenizer.padToken?.content).toBe('<|padding|>');
    expect(typeof tokenizer.chatTemplate).toBe('string');
  }
}

describe('loadTokenizer', () => {
  it('reads a Node directory', async () => expectNeox(await loadTokenizer(dir)));

  it('reads a tokenizer.json path and the config beside it', async () => expectNeox(await loadTokenizer(join(dir, 'tokenizer.json'))));

  it('reads a file: URL', async () => expectNeox(await loadTokenizer(pathToFileURL(join(dir, 'tokenizer.json')))));

  it('reads a single Blob (tokenizer.json only) and a list of Files matched by name', async () => {
    expectNeox(await loadTokenizer(new Blob([tokenizerText])), false);
    const files = [new File([configText], 'tokenizer_config.json'), new File([tokenizerText], 'tokenizer.json'), new File(['{{ "J" }}'], 'chat_template.jinja')];
    const tokenizer = await loadTokenizer(files);
    expectNeox(tokenizer);
    expect(tokenizer.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('J'); // chat_template.jinja wins, as in transformers
  });

  it('takes parsed JSON, text or bytes', async () => {
    expectNeox(await loadTokenizer({ tokenizer: JSON.parse(tokenizerText), config: JSON.parse(configText) }));
    expectNeox(await loadTokenizer({ tokenizer: tokenizerText, config: new TextEncoder().encode(configText) }));
  });

  it('fetches a directory URL with the given fetch; a 404 means the optional file is absent', async () => {
    const requested: string[] = [];
    const fetch = (async (url: URL) => {
      requested.push(String(url));
      const name = String(url).split('/').pop();
      if (name === 'tokenizer.json') return new Response(tokenizerText);
      if (name === 'tokenizer_config.json') return new Response(configText);
      return new Response('not found', { status: 404 });
    }) as unknown as typeof globalThis.fetch;
    expectNeox(await loadTokenizer(new URL('https://example.invalid/models/neox/'), { fetch }));
    expect(requested).toContain('https://example.invalid/models/neox/tokenizer.json');
    expect(requested).toContain('https://example.invalid/models/neox/tokenizer_config.json');
  });

  it('reports unreadable sources as TOKENIZER_LOAD_FAILED', async () => {
    await expect(loadTokenizer(join(dir, 'no-such-dir'))).rejects.toMatchObject({ code: 'TOKENIZER_LOAD_FAILED' });
    await expect(loadTokenizer(INPUTS_DIR)).rejects.toMatchObject({ code: 'TOKENIZER_LOAD_FAILED' }); // no tokenizer.json there
    const failing = (async () => new Response('boom', { status: 500, statusText: 'Internal Server Error' })) as unknown as typeof globalThis.fetch;
    await expect(loadTokenizer('https://example.invalid/tokenizer.json', { fetch: failing })).rejects.toMatchObject({
      code: 'TOKENIZER_LOAD_FAILED',
      message: expect.stringContaining('500'),
    });
    await expect(loadTokenizer([new File(['{}'], 'vocab.json')])).rejects.toMatchObject({ code: 'TOKENIZER_LOAD_FAILED' });
    await expect(loadTokenizer(42 as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  describe('over HTTP with the global fetch (a server on 127.0.0.1)', () => {
    let server: Server;
    let base: string;
    beforeAll(async () => {
      server = createServer((request, response) => {
        const name = (request.url ?? '').split('/').pop();
        if (name === 'tokenizer.json') response.end(tokenizerText);
        else if (name === 'tokenizer_config.json') response.end(configText);
        else response.writeHead(404).end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address() as { port: number };
      base = `http://127.0.0.1:${address.port}/neox/`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('loads from a directory URL string', async () => expectNeox(await loadTokenizer(base)));
  });
});
