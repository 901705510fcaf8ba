import { chromium } from 'playwright-core';
const t0 = Date.now();
const T = () => ((Date.now() - t0) / 1000).toFixed(1);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--disable-background-networking'] });
const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
page.on('console', (m) => console.log(T(), 'console', m.type(), m.text().slice(0, 300)));
page.on('pageerror', (e) => console.log(T(), 'pageerror', e));
const model = process.argv[2] ?? 'mamba2';
await page.goto(`http://127.0.0.1:4317/?model=/fixtures/${model}/`);
await page.waitForFunction(() => !!window.__statespaceDemo?.model || window.__statespaceDemo?.gpu === 'no-gpu', null, { timeout: 60000 });
console.log(T(), 'loaded', await page.evaluate(() => JSON.stringify(window.__statespaceDemo)));
await page.getByTestId('temperature').fill('0');
await page.getByTestId('max-new-tokens').fill('16');
await page.getByTestId('prompt').fill(process.argv[3] ?? '126 94 274 286 12 120 195 147 76 224 278 248 101 266 206 225 296 101 215 101 303 148 208 128 53 67 228 217 17 208 55 139 109 64 92 225 137');
await page.getByTestId('send').click();
for (let i = 0; i < 60; i++) {
  await new Promise((r) => setTimeout(r, 2000));
  const s = await page.evaluate(() => ({ turns: window.__statespaceDemo.turns.length, status: document.querySelector('[data-testid=chat-status]').textContent, ids: document.querySelector('[data-testid=reply]')?.textContent }));
  console.log(T(), JSON.stringify(s));
  if (s.turns > 0) break;
}
await page.screenshot({ path: '/tmp/probe.png', fullPage: true });
await browser.close();
