/**
 * End to end in headless Chromium on WebGPU: builds the demo with Vite, serves
 * it (plus the tiny transformers fixtures at /fixtures/), loads a fixture model
 * through the page, generates 16 greedy tokens by driving the UI and checks them
 * against transformers' own `greedy_new_tokens`. Fails (never skips) when
 * Chromium or WebGPU is missing. Screenshots go to apps/demo/test-results/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright-core';
import { type PreviewServer, build, preview } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveFolders } from '../serve-folder';

const demoRoot = fileURLToPath(new URL('..', import.meta.url));
const fixtures = fileURLToPath(new URL('../../../fixtures/hf-tiny/', import.meta.url));
const results = join(demoRoot, 'test-results');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

interface Reference {
  input_ids: number[];
  greedy_new_tokens: number[];
}
const reference = (family: string): Reference => JSON.parse(readFileSync(join(fixtures, family, 'reference.json'), 'utf8'));

let outDir: string;
let server: PreviewServer;
let origin: string;
let browser: Browser;
const pageErrors: string[] = [];

// Set up once; a failure (no Chromium, a build error) is rethrown by every test so each one
// fails with the cause instead of being reported as skipped.
let setupError: unknown;

beforeAll(async () => {
  try {
    mkdirSync(results, { recursive: true });
    outDir = mkdtempSync(join(tmpdir(), 'statespace-demo-'));
    const fixtureMount = serveFolders([{ prefix: '/fixtures/', dir: fixtures }]);
    await build({ root: demoRoot, configFile: join(demoRoot, 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true, sourcemap: false } });
    server = await preview({
      root: demoRoot,
      configFile: join(demoRoot, 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir },
      preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
      plugins: [fixtureMount],
    });
    const address = server.httpServer.address() as AddressInfo;
    origin = `http://127.0.0.1:${address.port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--disable-background-networking'],
    });
  } catch (error) {
    setupError = error;
  }
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

async function open(path: string, init?: () => void): Promise<Page> {
  if (setupError) throw setupError;
  const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  if (init) await page.addInitScript(init);
  await page.goto(origin + path);
  // The page says whether WebGPU works; a missing adapter fails here with its message.
  await page.waitForFunction(() => window.__statespaceDemo?.gpu !== 'starting', null, { timeout: 30_000 });
  return page;
}

async function expectGpu(page: Page): Promise<void> {
  const state = await page.evaluate(() => ({ gpu: window.__statespaceDemo.gpu, error: window.__statespaceDemo.gpuError }));
  expect(state.gpu, `WebGPU is not available in Chromium: ${JSON.stringify(state.error)}`).toBe('ready');
}

/** Waits until the model is loaded or its error shows; returns the error text if any. */
async function waitForModel(page: Page): Promise<string | null> {
  await page.waitForFunction(() => !!window.__statespaceDemo.model || !document.querySelector('[data-testid=model-error]')?.hasAttribute('hidden'), null, { timeout: 60_000 });
  const box = page.getByTestId('model-error');
  return (await box.isVisible()) ? await box.innerText() : null;
}

async function greedyTurn(page: Page, ids: number[], maxNewTokens: number): Promise<number[]> {
  await page.getByTestId('temperature').fill('0');
  await page.getByTestId('max-new-tokens').fill(String(maxNewTokens));
  await page.getByTestId('prompt').fill(ids.join(' '));
  const before = await page.evaluate(() => window.__statespaceDemo.turns.length);
  await page.getByTestId('send').click();
  await page.waitForFunction(
    (n) => window.__statespaceDemo.turns.length > n || !document.querySelector('[data-testid=chat-error]')?.hasAttribute('hidden'),
    before,
    { timeout: 120_000 },
  );
  const error = page.getByTestId('chat-error');
  if (await error.isVisible()) throw new Error(`generation failed in the page: ${await error.innerText()}`);
  return page.evaluate(() => window.__statespaceDemo.turns[window.__statespaceDemo.turns.length - 1].ids);
}

describe('statespace demo in headless Chromium (WebGPU)', () => {
  // One page for the generation and the playground: pipelines compiled for the first are reused by the second.
  let page: Page;

  it('loads the mamba2 fixture and generates transformers’ 16 greedy tokens through the UI', async () => {
    page = await open('/?model=/fixtures/mamba2/');
    await expectGpu(page);
    expect(await waitForModel(page)).toBeNull();
    expect(await page.getByTestId('load-progress').getAttribute('data-done')).toBe('true');

    const ref = reference('mamba2');
    const tokens = await greedyTurn(page, ref.input_ids, 16);
    expect(tokens).toEqual(ref.greedy_new_tokens);
    expect(await page.getByTestId('generated-ids').innerText()).toBe(ref.greedy_new_tokens.join(' '));

    // The state panel shows what the model carries: the prompt and every generated token but the last (fed next turn).
    expect(await page.getByTestId('context-length').innerText()).toBe(String(ref.input_ids.length + 15));
    expect(await page.getByTestId('mem-ssm').innerText()).not.toMatch(/^(0 B|–)$/);
    expect(await page.getByTestId('mem-kv').innerText()).toBe('0 B');
    expect(Number(await page.getByTestId('decode-rate').innerText())).toBeGreaterThan(0);
    await page.screenshot({ path: join(results, 'demo-mamba2.png'), fullPage: true });

    await page.getByTestId('clear-state').click();
    expect(await page.getByTestId('context-length').innerText()).toBe('0');
  });

  it('runs the hybrid-ratio playground (1:7 at the tiny size) and plots it', async () => {
    expect(page, 'the first test opens the page').toBeDefined();
    await page.getByTestId('bench-size').selectOption('tiny');
    await page.getByTestId('bench-contexts').fill(process.env.STATESPACE_E2E_FULL ? '8, 24' : '6');
    await page.getByTestId('bench-steps').fill('1');
    const mixes = process.env.STATESPACE_E2E_FULL ? ['mamba2', '1:7', '1:3', 'attention'] : ['1:7'];
    for (const box of await page.locator('#playground-card input[type=checkbox]').all()) await box.setChecked(mixes.includes(await box.inputValue()));
    await page.getByTestId('bench-run').click();
    await page.waitForFunction(() => document.querySelector('[data-testid=bench-status]')?.getAttribute('data-done') === 'true', null, { timeout: 120_000 });
    const rows = await page.locator('[data-testid=bench-table] tbody tr').evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent ?? '')));
    const patterns = { mamba2: 'MMMMMMMM', '1:7': 'MMMMAMMM', '1:3': 'MMAMMMAM', attention: 'AAAAAAAA' } as Record<string, string>;
    expect(rows.map((r) => r[1])).toEqual(mixes.map((m) => patterns[m]));
    for (const row of rows) expect(Number(row[2])).toBeGreaterThan(0);
    // The 1:7 mix holds both kinds of state.
    expect(rows[mixes.indexOf('1:7')].at(-1)).toMatch(/KiB SSM\+conv · .*KiB KV/);
    // uPlot draws one series per mix plus the x series.
    expect(await page.locator('[data-testid=bench-chart] .u-legend .u-series').count()).toBe(mixes.length + 1);
    await page.screenshot({ path: join(results, 'demo-playground.png'), fullPage: true });
    await page.close();
  });

  it('a hybrid (bamba: Mamba-2 + attention) matches too, and its KV cache shows', async () => {
    const bamba = await open('/?model=/fixtures/bamba/');
    await expectGpu(bamba);
    expect(await waitForModel(bamba)).toBeNull();
    const ref = reference('bamba');
    expect(await greedyTurn(bamba, ref.input_ids, 16)).toEqual(ref.greedy_new_tokens);
    expect(await bamba.getByTestId('mem-kv').innerText()).not.toMatch(/^(0 B|–)$/);
    await bamba.screenshot({ path: join(results, 'demo-bamba.png'), fullPage: true });
    await bamba.close();
  });

  it('shows the error code and message for a model folder that does not load', async () => {
    const bad = await open('/?model=/fixtures/no-such-model/');
    await expectGpu(bad);
    const error = await waitForModel(bad);
    expect(error).toContain('CHECKPOINT_FILE_NOT_FOUND');
    expect(error).toContain('config.json');
    await bad.screenshot({ path: join(results, 'demo-load-error.png') });
    await bad.close();
  });

  it('says plainly when the browser has no WebGPU', async () => {
    const none = await open('/', () => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    });
    expect(await none.evaluate(() => window.__statespaceDemo.gpu)).toBe('no-gpu');
    const notice = await none.getByTestId('gpu-error').innerText();
    expect(notice).toContain('NO_WEBGPU');
    expect(notice).toMatch(/navigator\.gpu/);
    expect(await none.getByTestId('load-default').isDisabled()).toBe(true);
    await none.screenshot({ path: join(results, 'demo-no-webgpu.png') });
    await none.close();
  });

  afterAll(() => {
    expect(pageErrors, 'uncaught errors in the page').toEqual([]);
  });
});
