/**
 * The packages as a user gets them: `pnpm pack` of the CLI and every workspace package it needs
 * (pnpm rewrites `workspace:^` into real versions; npm pack would not), `npm install` of the tarballs
 * into a fresh project outside the monorepo, then that project's own tsc and the installed binary.
 *
 * Offline: the third-party dependencies (webgpu, the Dawn binaries, 130 MB; @webgpu/types; the
 * Hugging Face tokenizer and template packages) are linked from this checkout's node_modules instead of
 * downloaded, so npm never needs the registry. Needs the packages built (turbo's test depends on build).
 */
import { execFile } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

interface Manifest {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  bin?: Record<string, string>;
}
const readManifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

/** Workspace package folders by name. */
function workspacePackages(): Map<string, string> {
  const byName = new Map<string, string>();
  for (const group of ['packages', 'apps']) {
    for (const entry of readdirSync(join(ROOT, group), { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = join(ROOT, group, entry.name);
      try {
        byName.set(readManifest(dir).name, dir);
      } catch {
        // a folder without package.json is no package
      }
    }
  }
  return byName;
}

/** `@statespace/cli` and every workspace package it depends on, directly or not. */
function cliClosure(): Map<string, string> {
  const all = workspacePackages();
  const closure = new Map<string, string>();
  const visit = (name: string) => {
    const dir = all.get(name);
    if (!dir || closure.has(name)) return;
    closure.set(name, dir);
    for (const dep of Object.keys(readManifest(dir).dependencies ?? {})) visit(dep);
  };
  visit('@statespace/cli');
  return closure;
}

const CONSUMER = `import { Runtime, requestDevice } from '@statespace/core';
import { Session, loadModel } from '@statespace/hybrid';
import { main } from '@statespace/cli';
import { defaultModelUrl } from '@statespace/default-model';
import { loadTokenizer } from '@statespace/tokenizer';

const runtime = await Runtime.create();
const device: GPUDevice = runtime.device;
const { device: other } = await requestDevice({ powerPreference: 'low-power' });
const buffer: GPUBuffer = other.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE });
// @ts-expect-error a GPUDevice is no number: this line fails the check if the WebGPU types became \`any\`
const wrong: number = device;
const { model } = await loadModel(runtime, defaultModelUrl.pathname);
const session = new Session(model);
const status: number = await main(['--help'], { out: () => {}, err: () => {}, isTTY: false });
const tokenizer = await loadTokenizer(\`\${defaultModelUrl.pathname}tokenizer.json\`);
console.log(buffer.size, wrong, session.length, status, tokenizer.encode('In the beginning'));
`;

const PAGE_HTML = `<!doctype html><html><body><pre id="out"></pre><script type="module" src="./page.ts"></script></body></html>`;
const PAGE_TS = `import { Runtime } from '@statespace/core';
import { Session, loadModel } from '@statespace/hybrid';

const out = document.getElementById('out')!;
try {
  const ids = new URLSearchParams(location.search).get('ids')!.split(',').map(Number);
  const runtime = await Runtime.create();
  const { model } = await loadModel(runtime, new URL('my-mamba2/', location.href).href);
  const tokens: number[] = [];
  for await (const t of new Session(model).generate(ids, { maxNewTokens: 8, greedy: true, ignoreEos: true })) tokens.push(t);
  out.dataset.tokens = tokens.join(',');
} catch (error) {
  out.dataset.error = String((error as Error)?.stack ?? error);
}
`;

const MIME: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json' };

/** A static server for a folder, with the HTTP Range requests the checkpoint loader needs. */
function serveStatic(root: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^([/\\.])+/, '');
    const file = join(root, path || 'index.html');
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    const type = MIME[extname(file)] ?? 'application/octet-stream';
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      res.writeHead(206, { 'content-type': type, 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
      createReadStream(file, { start, end }).pipe(res);
    } else {
      res.writeHead(200, { 'content-type': type, 'content-length': size, 'accept-ranges': 'bytes' });
      createReadStream(file).pipe(res);
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('the packed packages installed with npm into a fresh project', () => {
  let work: string;
  let project: string;
  const packed = new Map<string, Manifest>();

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'statespace-pack-'));
    const tarballs = join(work, 'tarballs');
    project = join(work, 'project');
    mkdirSync(tarballs);
    mkdirSync(project);
    const closure = cliClosure();
    await Promise.all([...closure.values()].map((dir) => run('pnpm', ['pack', '--pack-destination', tarballs], { cwd: dir })));
    const dependencies: Record<string, string> = {};
    const external = new Map<string, string>();
    for (const file of readdirSync(tarballs)) {
      const { stdout } = await run('tar', ['-xzOf', join(tarballs, file), 'package/package.json']);
      const manifest: Manifest = JSON.parse(stdout);
      packed.set(manifest.name, manifest);
      dependencies[manifest.name] = `file:${join(tarballs, file)}`;
      const from = closure.get(manifest.name)!;
      for (const dep of Object.keys(manifest.dependencies ?? {})) {
        if (closure.has(dep) || external.has(dep)) continue;
        // pnpm links each package's dependencies beside it; a hoisted install keeps them at the root
        const local = [join(from, 'node_modules', dep), join(ROOT, 'node_modules', dep)].find((d) => existsSync(d));
        expect(local, `${dep}, a dependency of ${manifest.name}, is installed in this checkout`).toBeDefined();
        external.set(dep, realpathSync(local!));
      }
    }
    // npm links a `file:` folder and leaves it alone (no install scripts with --ignore-scripts).
    for (const [dep, dir] of external) dependencies[dep] = `file:${dir}`;
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies }, null, 2));
    await run('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: project });
    // two consumers: our own, and the README's "Use it" example with the folder it names
    writeFileSync(join(project, 'index.ts'), CONSUMER);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    writeFileSync(join(project, 'use-it.ts'), /## Use it[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? '');
    cpSync(join(ROOT, 'fixtures/hf-tiny/mamba2'), join(project, 'my-mamba2'), { recursive: true });
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the tarballs name real versions of each other, and core depends on @webgpu/types', () => {
    expect([...packed.keys()].sort()).toEqual([...cliClosure().keys()].sort());
    for (const manifest of packed.values()) {
      for (const [dep, spec] of Object.entries(manifest.dependencies ?? {})) expect(spec, `${manifest.name} -> ${dep}`).not.toMatch(/^workspace:/);
    }
    expect(packed.get('@statespace/core')?.dependencies?.['@webgpu/types']).toMatch(/^\^0\.1\./);
    expect(packed.get('@statespace/cli')?.dependencies?.['@statespace/default-model']).toBe(`^${packed.get('@statespace/default-model')?.version}`);
  });

  it('tsc --noEmit, moduleResolution node16 and bundler, skipLibCheck off, type-checks a consumer and the README example', async () => {
    const check = async (resolution: 'Node16' | 'Bundler') => {
      const config = {
        compilerOptions: {
          target: 'ES2022',
          module: resolution === 'Node16' ? 'Node16' : 'ESNext',
          moduleResolution: resolution,
          lib: ['ES2022', 'DOM'],
          // no `types` entry for @webgpu/types: the published .d.ts must bring it in themselves
          types: [],
          strict: true,
          skipLibCheck: false,
          noEmit: true,
        },
        files: ['index.ts', 'use-it.ts'],
      };
      writeFileSync(join(project, `tsconfig.${resolution}.json`), JSON.stringify(config));
      const result = await run(process.execPath, [TSC, '-p', `tsconfig.${resolution}.json`], { cwd: project }).catch((e: { stdout: string }) => e);
      return `${resolution}: ${result.stdout}`;
    };
    // side by side: tsc is single-threaded
    expect(await Promise.all([check('Node16'), check('Bundler')])).toEqual(['Node16: ', 'Bundler: ']);
  }, 60_000);

  it("the README's \"Use it\" example runs in Node against the installed packages", async () => {
    expect(readFileSync(join(project, 'use-it.ts'), 'utf8'), 'README.md has a ```ts block under "## Use it"').toContain("loadModel(runtime, './my-mamba2')");
    // the tsc tests above type-check it; here it is only emitted, to run
    const config = { compilerOptions: { target: 'ES2022', module: 'Node16', moduleResolution: 'Node16', outDir: 'out' }, files: ['use-it.ts'] };
    writeFileSync(join(project, 'tsconfig.use-it.json'), JSON.stringify(config));
    const compiled = await run(process.execPath, [TSC, '-p', 'tsconfig.use-it.json', '--noCheck'], { cwd: project }).catch((e: { stdout: string }) => e);
    expect(compiled.stdout).toBe('');
    // it ends by itself (no runtime.destroy() in the example): a hang is a failure, not a pass
    const { stdout } = await run(process.execPath, ['out/use-it.js'], { cwd: project, timeout: 50_000 });
    const tokens = stdout.trim().split('\n').map(Number);
    expect(tokens.length).toBeGreaterThan(0);
    expect(tokens.length).toBeLessThanOrEqual(32);
    const vocab = JSON.parse(readFileSync(join(project, 'my-mamba2/config.json'), 'utf8')).vocab_size;
    for (const t of tokens) expect(Number.isInteger(t) && t >= 0 && t < vocab, `token ${t}`).toBe(true);
  }, 60_000);

  it('a Vite-built page using the installed packages generates transformers\' greedy tokens in headless Chromium', async () => {
    writeFileSync(join(project, 'index.html'), PAGE_HTML);
    writeFileSync(join(project, 'page.ts'), PAGE_TS);
    const outDir = join(project, 'dist');
    await build({ root: project, configFile: false, logLevel: 'error', build: { outDir, emptyOutDir: true, target: 'es2022' } });
    cpSync(join(project, 'my-mamba2'), join(outDir, 'my-mamba2'), { recursive: true });
    // the bundle has no Node built-ins and no Dawn in it: the browser build must not pull them in
    const bundle = readdirSync(join(outDir, 'assets')).map((f) => readFileSync(join(outDir, 'assets', f), 'utf8')).join('\n');
    expect(bundle).not.toMatch(/dawn\.node/);
    const server = await serveStatic(outDir);
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--disable-background-networking'],
    });
    try {
      const ref = JSON.parse(readFileSync(join(ROOT, 'fixtures/hf-tiny/mamba2/reference.json'), 'utf8'));
      const page = await browser.newPage();
      const { port } = server.address() as AddressInfo;
      await page.goto(`http://127.0.0.1:${port}/index.html?ids=${ref.input_ids.join(',')}`);
      await page.waitForFunction(() => { const d = document.getElementById('out')?.dataset; return !!(d?.tokens || d?.error); }, null, { timeout: 50_000 });
      const result = await page.evaluate(() => ({ ...document.getElementById('out')!.dataset }));
      expect(result.error).toBeUndefined();
      expect(result.tokens!.split(',').map(Number)).toEqual(ref.greedy_new_tokens.slice(0, 8));
    } finally {
      await browser.close();
      server.close();
    }
  }, 60_000);

  it('statespace start, run from the installed binary, speaks with the installed default model', async () => {
    const reference = JSON.parse(readFileSync(join(ROOT, 'models/default/reference.json'), 'utf8'));
    const prompt = reference.prompts.find((p: { prompt: string }) => p.prompt === 'And the LORD said unto Moses,');
    const bin = join(project, 'node_modules/.bin/statespace');
    const { stdout, stderr } = await run(bin, ['start', '--max-new-tokens', '4', '--greedy'], { cwd: project });
    expect(stderr).toContain(join(project, 'node_modules/@statespace/default-model/model/'));
    const text = stdout.trimEnd();
    // the first 4 greedy tokens of transformers' continuation: " Go, return unto"
    expect(text.length).toBeGreaterThan(prompt.prompt.length + 8);
    expect(`${prompt.prompt}${prompt.greedy_text}`.startsWith(text)).toBe(true);
  }, 60_000);
});
