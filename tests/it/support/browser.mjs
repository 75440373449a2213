// Drives real headless Chromium through the /cli/auth page with playwright-core:
//   node browser.mjs URL USER PASSWORD approve|deny SCREENSHOT
// Prints one JSON line: {"result": <text of #result>, "title": ...}.
import { createRequire } from 'node:module';

const require = createRequire(process.env.PLAYWRIGHT_DIR + '/');
const { chromium } = require('playwright-core');

const [url, user, password, decision, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  if (await page.locator('#sign-in').count()) {
    await page.fill('#username', user);
    await page.fill('#password', password);
    await page.click('#sign-in');
  }
  await page.waitForSelector(`#${decision}`, { timeout: 15000 });
  const shown = await page.locator('#user-code').textContent();
  await page.click(`#${decision}`);
  await page.waitForSelector('#result', { timeout: 15000 });
  const result = await page.locator('#result').textContent();
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ result: result.trim(), code: shown.trim() }));
} finally {
  await browser.close();
}
