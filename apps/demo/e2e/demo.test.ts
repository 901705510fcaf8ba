/**
 * End to end in headless Chromium on WebGPU: builds the demo with Vite, serves
 * it (plus the tiny transformers fixtures at /fixtures/, the Mamba-3 ones at
 * /mamba3/ and the S4D ones at /s4d/), loads a fixture model through the page, generates 16 greedy tokens
 * by driving the UI and checks them against transformers' own `greedy_new_tokens`; runs an S4D stack on the
 * page's device against state-spaces/s4's outputs (the test page e2e/s4d-parity.html, built here only). Fails
 * (never skips) when Chromium or WebGPU is missing. Screenshots go to apps/demo/test-results/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSafetensors } from '@statespace/checkpoint';
import { worstRowError } from '@statespace/core/testing';
import { type Browser, type Page, chromium } from 'playwright-core';
import { type PreviewServer, build, preview } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveFolders } from '../serve-folder';

const demoRoot = fileURLToPath(new URL('..', import.meta.url));
const fixtures = fileURLToPath(new URL('../../../fixtures/hf-tiny/', import.meta.url));
const mamba3Fixtures = fileURLToPath(new URL('../../../fixtures/mamba3/', import.meta.url));
const s4dFixtures = fileURLToPath(new URL('../../../fixtures/s4d/', import.meta.url));
const results = join(demoRoot, 'test-results');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

interface Reference {
  input_ids: number[];
  greedy_new_tokens: number[];
}
/** A fixture's reference outputs; `dir` is the fixture's folder on disk (fixtures/hf-tiny/ by default). */
const reference = (family: string, dir = fixtures): Reference => JSON.parse(readFileSync(join(dir, family, 'reference.json'), 'utf8'));

let outDir: string;
let server: PreviewServer;
let origin: string;
let browser: Browser;
const pageErrors: string[] = [];
/** Responses of 400 and above, per page: each one is an error line in the browser console. */
const failedRequests = new Map<Page, string[]>();

// Set up once; a failure (no Chromium, a build error) is rethrown by every test so each one
// fails with the cause instead of being reported as skipped.
let setupError: unknown;

beforeAll(async () => {
  try {
    mkdirSync(results, { recursive: true });
    outDir = mkdtempSync(join(tmpdir(), 'statespace-demo-'));
    const fixtureMount = serveFolders([
      { prefix: '/fixtures/', dir: fixtures },
      { prefix: '/mamba3/', dir: mamba3Fixtures },
      { prefix: '/s4d/', dir: s4dFixtures },
    ]);
    // The demo plus the S4D test page (the shipped build, vite.config.ts's, has index.html alone).
    const input = { index: join(demoRoot, 'index.html'), s4dParity: join(demoRoot, 'e2e/s4d-parity.html') };
    await build({ root: demoRoot, configFile: join(demoRoot, 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true, sourcemap: false, rollupOptions: { input } } });
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

async function newPage(init?: () => void): Promise<Page> {
  if (setupError) throw setupError;
  const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  const failed: string[] = [];
  failedRequests.set(page, failed);
  page.on('response', (response) => {
    if (response.status() >= 400) failed.push(`${response.status()} ${response.request().method()} ${new URL(response.url()).pathname}`);
  });
  if (init) await page.addInitScript(init);
  return page;
}

async function open(path: string, init?: () => void): Promise<Page> {
  const page = await newPage(init);
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

/**
 * One turn through the UI. The repetition penalty is set to 1 (off): the panel's default of 1.1 still applies at
 * temperature 0, and transformers' greedy_new_tokens were made without it (it moved Nemotron-H MoE's 8th token
 * and Mamba-3's first here, in Node as much as in Chromium).
 */
async function greedyTurn(page: Page, ids: number[], maxNewTokens: number, sampling: { temperature: number; topK: number; seed: number } = { temperature: 0, topK: 0, seed: 1 }): Promise<number[]> {
  await page.getByTestId('temperature').fill(String(sampling.temperature));
  await page.getByTestId('top-k').fill(String(sampling.topK));
  await page.getByTestId('repetition-penalty').fill('1');
  await page.getByTestId('seed').fill(String(sampling.seed));
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
    // 2 Mamba-2 layers of 8 heads x 16 x state 32 in f32.
    expect(await page.getByTestId('mem-ssm').innerText()).toBe('32.0 KiB');
    expect(await page.getByTestId('mem-kv').innerText()).toBe('0 B');
    expect(Number(await page.getByTestId('decode-rate').innerText())).toBeGreaterThan(0);
    // The fixture has no tokenizer files: the loader knew from the folder listing and asked for none (no 404s in the console).
    expect(failedRequests.get(page)).toEqual([]);

    // A second turn continues the text below a separator, not glued onto the first reply.
    const second = ref.input_ids.slice(0, 3);
    const tokens2 = await greedyTurn(page, second, 4);
    expect(tokens2).toHaveLength(4);
    expect(await page.getByTestId('turn-separator').count()).toBe(1);
    expect(await page.getByTestId('turn-prompt').allInnerTexts()).toEqual([ref.input_ids.join(' '), second.join(' ')]);
    const lines = (await page.getByTestId('transcript').innerText()).split('\n').map((l) => l.trim()).filter(Boolean);
    expect(lines).toEqual([`${ref.input_ids.join(' ')} ${ref.greedy_new_tokens.join(' ')}`, `${second.join(' ')} ${tokens2.join(' ')}`]);
    await page.screenshot({ path: join(results, 'demo-mamba2.png'), fullPage: true });

    await page.getByTestId('clear-state').click();
    expect(await page.getByTestId('context-length').innerText()).toBe('0');
    // No speed figures left over from before the clear.
    for (const id of ['prefill-rate', 'decode-rate', 'ms-per-token', 'turn-tokens']) expect(await page.getByTestId(id).innerText(), id).toBe('–');

    // Sampling runs on the GPU in the page too: at top-k 1 only the most likely token survives, so a hot
    // temperature must still give transformers' greedy tokens (the sampler's threshold, draw and feed-back).
    expect(await greedyTurn(page, ref.input_ids, 16, { temperature: 3, topK: 1, seed: 5 })).toEqual(ref.greedy_new_tokens);
    await page.getByTestId('clear-state').click();
    await page.getByTestId('top-k').fill('0');
    expect(await page.getByTestId('context-length').innerText()).toBe('0');
  });

  it('runs the hybrid-ratio playground (1:7 at the tiny size) and plots it', async () => {
    // The first test leaves its page open, on the mamba2 model, with the state cleared.
    expect(await page.evaluate(() => window.__statespaceDemo.model?.architecture)).toBe('mamba2');
    expect(await page.getByTestId('context-length').innerText()).toBe('0');
    await page.getByTestId('bench-size').selectOption('tiny');
    // Three lengths spanning 8x: the chart goes logarithmic, and its axis must still end at the last one.
    const contexts = process.env.STATESPACE_E2E_FULL ? [8, 24, 64] : [6, 12, 48];
    await page.getByTestId('bench-contexts').fill(contexts.join(', '));
    await page.getByTestId('bench-steps').fill('1');
    const mixes = process.env.STATESPACE_E2E_FULL ? ['mamba2', '1:7', '1:3', 'attention', 's4d', 's4d-1:7'] : ['1:7'];
    for (const box of await page.locator('#playground-card input[type=checkbox]').all()) await box.setChecked(mixes.includes(await box.inputValue()));
    await page.getByTestId('bench-run').click();
    await page.waitForFunction(() => document.querySelector('[data-testid=bench-status]')?.getAttribute('data-done') === 'true', null, { timeout: 120_000 });
    // Each timing cell: the median, and the fastest–slowest step under it.
    const rows = await page.locator('[data-testid=bench-table] tbody tr').evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.querySelector('.median')?.textContent ?? td.textContent ?? '')));
    const spreads = await page.locator('[data-testid=bench-table] tbody td .spread').allInnerTexts();
    expect(spreads).toHaveLength(mixes.length * contexts.length);
    for (const [i, spread] of spreads.entries()) {
      const [lo, hi] = spread.split('–').map(Number);
      const median = Number(rows[Math.floor(i / contexts.length)][2 + (i % contexts.length)]);
      expect(lo).toBeLessThanOrEqual(median);
      expect(hi).toBeGreaterThanOrEqual(median);
    }
    const chartBox = page.getByTestId('bench-chart');
    expect([Number(await chartBox.getAttribute('data-x-min')), Number(await chartBox.getAttribute('data-x-max'))]).toEqual([contexts[0], contexts.at(-1)]);
    expect(await page.getByTestId('bench-status').innerText()).toContain('median of the timed steps');
    const patterns = { mamba2: 'MMMMMMMM', '1:7': 'MMMMAMMM', '1:3': 'MMAMMMAM', attention: 'AAAAAAAA', s4d: 'LLLLLLLL', 's4d-1:7': 'LLLLALLL' } as Record<string, string>;
    expect(rows.map((r) => r[1])).toEqual(mixes.map((m) => patterns[m]));
    for (const row of rows) for (let i = 0; i < contexts.length; i++) expect(Number(row[2 + i])).toBeGreaterThan(0);
    // The 1:7 mix holds both kinds of state: 7 Mamba-2 layers (2 heads x 64 x state 16, conv 160 x 3) and one
    // 256-token page of K and V (1 head x 64), all f32: 57344 + 13440 B and 131072 B.
    expect(rows[mixes.indexOf('1:7')].at(-1)).toBe('69.1 KiB SSM+conv · 128 KiB KV');
    // Pure S4D: 8 layers of 64 channels x 8 complex modes (d_state 16) in f32, no conv window, no KV cache.
    if (mixes.includes('s4d')) expect(rows[mixes.indexOf('s4d')].at(-1)).toBe('32.0 KiB SSM+conv · 0 B KV');
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
    // One attention layer, 4 KV heads x 16, one 256-token page of K and V in f32.
    expect(await bamba.getByTestId('mem-kv').innerText()).toBe('128 KiB');
    await bamba.screenshot({ path: join(results, 'demo-bamba.png'), fullPage: true });
    await bamba.close();
  });

  // Families of issue 21 in the page: LFM2's short convolutions, Falcon-H1's mamba_rms_norm, Nemotron-H's routed
  // experts (MoE layers 'E') and Mamba-3 from mamba_ssm's checkpoint format (fixtures/mamba3/, served at /mamba3/).
  it('LFM2, Falcon-H1 (mamba_rms_norm), Nemotron-H MoE and Mamba-3 load in the page and give their references\' greedy tokens', async () => {
    const cases = [
      { path: '/fixtures/lfm2/', ref: reference('lfm2') },
      { path: '/fixtures/falcon_h1_rmsnorm/', ref: reference('falcon_h1_rmsnorm') },
      { path: '/fixtures/nemotron_h_moe/', ref: reference('nemotron_h_moe') },
      { path: '/mamba3/siso-rope-half/', ref: reference('siso-rope-half', mamba3Fixtures) },
    ];
    for (const { path, ref } of cases) {
      const page = await open(`/?model=${path}`);
      await expectGpu(page);
      expect(await waitForModel(page), path).toBeNull();
      expect(await greedyTurn(page, ref.input_ids, 8), path).toEqual(ref.greedy_new_tokens.slice(0, 8));
      await page.close();
    }
  });

  // S4D (issue 21) has no Hugging Face checkpoint to chat with: its reference is state-spaces/s4's PyTorch layer
  // (fixtures/s4d/s4d_lin: 2 layers, H 24, d_state 64, S4D-Lin, batch 2 x 37 tokens), run here on the page's WebGPU
  // device by the test page e2e/s4d-parity.html (built for this test only).
  it('S4D on the page\'s WebGPU device matches state-spaces/s4: convolution-mode prefill (one pass and chunked), and decode token by token from a prefilled state', async () => {
    const page = await newPage();
    await page.goto(`${origin}/e2e/s4d-parity.html`);
    await page.waitForFunction(() => window.__s4dParity && window.__s4dParity.status !== 'starting', null, { timeout: 30_000 });
    expect(await page.evaluate(() => window.__s4dParity.error ?? window.__s4dParity.status)).toBe('ready');
    const ref = await openSafetensors(join(s4dFixtures, 's4d_lin.safetensors'));
    const H = 24;
    const L = 37;
    const want = { layers: [await ref.readFloat32('layers.0.output'), await ref.readFloat32('layers.1.output')], output: await ref.readFloat32('output') };
    await ref.close();
    /** Rows t0..t1 of (2, L, H). */
    const rows = (x: ArrayLike<number>, t0: number, t1: number) => [0, 1].flatMap((b) => Array.from(x).slice((b * L + t0) * H, (b * L + t1) * H));
    /** Worst error of a token's H outputs, relative below 1 and absolute above (as packages/s4d's parity test). */
    const rowError = (actual: ArrayLike<number>, expected: ArrayLike<number>) => worstRowError(actual, expected, expected.length / H, H, { absoluteAbove: 1 });

    // One convolution-mode call of all 37 tokens per layer.
    const prefill = await page.evaluate((n) => window.__s4dParity.run('/s4d/s4d_lin.safetensors', [[0, n]]), L);
    expect(prefill.adapterName).toBeTruthy();
    expect([prefill.B, prefill.L, prefill.H]).toEqual([2, L, H]);
    for (const i of [0, 1]) expect(rowError(prefill.layers[i], want.layers[i]), `prefill layer ${i}`).toBeLessThan(1e-4);
    expect(rowError(prefill.output, want.output), 'prefill stack').toBeLessThan(1e-4);
    // The path of prompts longer than a chunk (256 tokens by default): chunks of 16 here, 37 tokens in 3.
    const chunked = await page.evaluate((n) => window.__s4dParity.run('/s4d/s4d_lin.safetensors', [[0, n]], { prefillChunk: 16 }), L);
    for (const i of [0, 1]) expect(rowError(chunked.layers[i], want.layers[i]), `chunked prefill layer ${i}`).toBeLessThan(1e-4);

    // As a chat runs it: 3 decode steps from the empty state, a prompt of 26 tokens by convolution from that state,
    // then 8 decode steps (the recurrence) from the state the convolution left.
    const segments: Array<[number, number]> = [[0, 1], [1, 2], [2, 3], [3, 29]];
    for (let t = 29; t < L; t++) segments.push([t, t + 1]);
    const decode = await page.evaluate((s) => window.__s4dParity.run('/s4d/s4d_lin.safetensors', s), segments);
    for (const [t0, t1] of segments) {
      for (const i of [0, 1]) {
        const got = rows(decode.layers[i], t0, t1);
        expect(rowError(got, rows(want.layers[i], t0, t1)), `tokens ${t0}..${t1} layer ${i} against torch`).toBeLessThan(1e-4);
        expect(rowError(got, rows(prefill.layers[i], t0, t1)), `tokens ${t0}..${t1} layer ${i} against the one-pass convolution`).toBeLessThan(2e-5);
      }
      expect(rowError(rows(decode.output, t0, t1), rows(want.output, t0, t1)), `tokens ${t0}..${t1} stack`).toBeLessThan(1e-4);
    }
    expect(failedRequests.get(page)).toEqual([]);
    await page.close();
  });

  it('keeps loading off while WebGPU is checked, and a load asked for then waits for the check', async () => {
    // Hold the adapter back for 3 s: the window in which a user could click before the check ends.
    const page = await newPage(() => {
      const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
      if (!gpu) return;
      const request = gpu.requestAdapter.bind(gpu);
      gpu.requestAdapter = (options) => new Promise((resolve) => setTimeout(resolve, 3000)).then(() => request(options));
    });
    await page.goto(`${origin}/`);
    expect(await page.evaluate(() => window.__statespaceDemo.gpu)).toBe('starting');
    expect(await page.getByTestId('gpu-status').innerText()).toBe('Checking WebGPU…');
    expect(await page.getByTestId('load-default').isDisabled()).toBe(true);
    expect(await page.getByTestId('load-url').isDisabled()).toBe(true);
    expect(await page.getByTestId('bench-run').isDisabled()).toBe(true);
    // Enter in the URL field is not a button: it starts a load now, which must wait for WebGPU rather than fail.
    await page.getByTestId('model-url').fill('/fixtures/mamba2/');
    await page.getByTestId('model-url').press('Enter');
    expect(await waitForModel(page)).toBeNull();
    await expectGpu(page);
    expect(await page.getByTestId('gpu-status').getAttribute('class')).toContain('ok');
    expect(await page.getByTestId('gpu-error').isHidden()).toBe(true);
    expect(await page.getByTestId('load-default').isEnabled()).toBe(true);
    expect(await page.getByTestId('bench-run').isEnabled()).toBe(true);
    expect(await page.evaluate(() => window.__statespaceDemo.model?.architecture)).toBe('mamba2');
    await page.close();
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
    expect(await none.getByTestId('bench-run').isDisabled()).toBe(true);
    await none.screenshot({ path: join(results, 'demo-no-webgpu.png') });
    await none.close();
  });

  afterAll(() => {
    expect(pageErrors, 'uncaught errors in the page').toEqual([]);
  });
});
