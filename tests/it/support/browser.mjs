// Drives real headless Chromium through the /-/cli/auth page with playwright-core:
//   node browser.mjs URL USER PASSWORD approve|deny SCREENSHOT
// Prints one JSON line: {"result": <text of #result>, "title": ...}.
import { launchChromium } from './chromium.mjs';

const [url, user, password, decision, screenshot] = process.argv.slice(2);
const browser = await launchChromium();
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
