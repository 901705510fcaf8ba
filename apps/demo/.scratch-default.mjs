import { chromium } from 'playwright-core';
const t0 = Date.now();
const T = () => ((Date.now() - t0) / 1000).toFixed(1);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--disable-background-networking'] });
const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
page.on('console', (m) => m.type() === 'error' && console.log(T(), 'console', m.type(), m.text().slice(0, 300)));
page.on('pageerror', (e) => console.log(T(), 'pageerror', e));
await page.goto(`http://127.0.0.1:4317/`);
await page.waitForFunction(() => window.__statespaceDemo?.gpu !== 'starting');
await page.getByTestId('load-default').click();
await page.waitForFunction(() => !!window.__statespaceDemo?.model || !document.querySelector('[data-testid=model-error]')?.hasAttribute('hidden'), null, { timeout: 120000 });
console.log(T(), 'loaded', await page.evaluate(() => JSON.stringify(window.__statespaceDemo.model)), await page.getByTestId('model-error').innerText().catch(() => ''));
await page.getByTestId('max-new-tokens').fill(process.argv[2] ?? '24');
await page.getByTestId('prompt').fill('And God said');
await page.getByTestId('send').click();
for (let i = 0; i < 100; i++) {
  await new Promise((r) => setTimeout(r, 3000));
  const s = await page.evaluate(() => ({ turns: window.__statespaceDemo.turns.length, status: document.querySelector('[data-testid=chat-status]').textContent, reply: document.querySelector('[data-testid=reply]')?.textContent, err: document.querySelector('[data-testid=chat-error]')?.textContent }));
  console.log(T(), JSON.stringify(s));
  if (s.turns > 0 || s.err) break;
}
await page.getByTestId('prompt').fill(' Then');
await page.getByTestId('max-new-tokens').fill('8');
await page.getByTestId('send').click();
await page.waitForFunction(() => window.__statespaceDemo.turns.length > 1 || document.querySelector('[data-testid=chat-error]')?.textContent, null, { timeout: 200000 });
console.log(T(), await page.getByTestId('chat-status').innerText());
await page.screenshot({ path: '/tmp/default.png', fullPage: true });
await browser.close();
