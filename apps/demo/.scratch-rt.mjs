import { chromium } from 'playwright-core';
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--disable-background-networking', ...(process.argv.slice(2))] });
const page = await browser.newPage();
await page.goto(`http://127.0.0.1:4317/`);
const r = await page.evaluate(async () => {
  const a = await navigator.gpu.requestAdapter(); const d = await a.requestDevice();
  const src = d.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const dst = d.createBuffer({ size: 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const out = [];
  for (let i = 0; i < 8; i++) {
    const t = performance.now();
    const e = d.createCommandEncoder(); e.copyBufferToBuffer(src, 0, dst, 0, 256); d.queue.submit([e.finish()]);
    await dst.mapAsync(GPUMapMode.READ); dst.unmap();
    out.push(performance.now() - t);
  }
  const t2 = performance.now();
  for (let i = 0; i < 8; i++) { d.queue.submit([]); await d.queue.onSubmittedWorkDone(); }
  out.push('wd', (performance.now() - t2) / 8);
  return out;
});
console.log(r.map((x) => typeof x === 'number' ? x.toFixed(1) : x).join(' '));
await browser.close();
