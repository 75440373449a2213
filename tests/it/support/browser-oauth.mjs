// Drives real headless Chromium through an OAuth sign-in from the /-/cli/auth page:
//   node browser-oauth.mjs URL PROVIDER LOGIN approve|deny SCREENSHOT
// Clicks "Sign in with PROVIDER", completes oidc-provider's development login (LOGIN, any
// password) and consent if they appear, and back on Packr either approves or denies, or reports
// the sign-in failure page. Prints one JSON line:
//   {"signedInAs", "result", "error", "status"}.
import { launchChromium } from './chromium.mjs';

const [url, provider, login, decision, screenshot] = process.argv.slice(2);
const packr = new URL(url).origin;
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  let status = 0;
  page.on('response', (response) => {
    if (response.request().isNavigationRequest() && response.frame() === page.mainFrame()) {
      status = response.status();
    }
  });
  await page.goto(url);
  await Promise.all([page.waitForNavigation(), page.click(`#sign-in-${provider}`)]);
  // At the provider: the login form, then the consent form, then back to Packr.
  for (let step = 0; step < 5 && new URL(page.url()).origin !== packr; step++) {
    if (await page.locator('input[name=login]').count()) {
      await page.fill('input[name=login]', login);
      await page.fill('input[name=password]', 'any password');
    }
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  }
  const out = { signedInAs: '', result: '', error: '', status };
  if (await page.locator('#oauth-error').count()) {
    out.error = (await page.locator('#oauth-error').textContent()).trim();
  } else {
    out.signedInAs = (await page.locator('#signed-in-as').textContent()).trim();
    await page.click(`#${decision}`);
    await page.waitForSelector('#result', { timeout: 15000 });
    out.result = (await page.locator('#result').textContent()).trim();
  }
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
