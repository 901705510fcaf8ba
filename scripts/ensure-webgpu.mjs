#!/usr/bin/env node
// Makes sure Node can find a WebGPU adapter before tests or the demo run.
// On a CPU-only Debian machine it installs SwiftShader (Debian's `chromium`
// package ships it) and the Vulkan loader, when it runs as root; otherwise it
// says what to install. Never skips: no adapter means a non-zero exit.
import { execSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const root = fileURLToPath(new URL('..', import.meta.url));

function probe() {
  let webgpuEntry;
  try {
    webgpuEntry = createRequire(`${root}packages/core/package.json`).resolve('webgpu');
  } catch {
    return { ok: false, why: 'the `webgpu` npm package is not installed (run `pnpm install` first)' };
  }
  const code = `
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    if (!process.env.VK_DRIVER_FILES && require('fs').existsSync(${JSON.stringify(SWIFTSHADER_ICD)})) process.env.VK_ADD_DRIVER_FILES ??= ${JSON.stringify(SWIFTSHADER_ICD)};
    import(${JSON.stringify(`file://${webgpuEntry}`)}).then(async ({ create, globals }) => {
      Object.assign(globalThis, globals);
      const a = await create([]).requestAdapter({ powerPreference: 'high-performance' });
      console.log(a ? 'ADAPTER ' + (a.info.description || a.info.vendor || 'unknown') : 'NONE');
      process.exit(0);
    }).catch((e) => { console.log('NONE ' + e.message); process.exit(0); });`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 120_000 });
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('ADAPTER') || l.startsWith('NONE')) ?? 'NONE';
  return line.startsWith('ADAPTER') ? { ok: true, name: line.slice(8) } : { ok: false, why: 'Dawn found no WebGPU adapter' };
}

let r = probe();
if (!r.ok && r.why.includes('not installed')) {
  console.error(`statespace: ${r.why}`);
  process.exit(1);
}
if (!r.ok) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = existsSync('/usr/bin/apt-get');
  if (isRoot && hasApt && !existsSync(SWIFTSHADER_ICD)) {
    console.log('statespace: no WebGPU adapter; installing SwiftShader (Debian chromium) and the Vulkan loader...');
    execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libvulkan1 >/dev/null', { stdio: 'inherit' });
  } else if (isRoot && hasApt) {
    execSync('DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvulkan1 >/dev/null', { stdio: 'inherit' });
  }
  r = probe();
}
if (!r.ok) {
  console.error(
    'statespace: no WebGPU adapter. On Linux without a GPU install SwiftShader and the Vulkan loader ' +
      '(`apt-get install -y chromium libvulkan1`, as root); with a GPU install its Vulkan driver.',
  );
  process.exit(1);
}
console.log(`statespace: WebGPU adapter: ${r.name}`);
