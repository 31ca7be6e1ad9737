// Browser check of lab_console: headless Debian chromium (playwright-core) opens the console URL,
// presses Enter until the guest's serial login prompt (`login:`) is in the xterm.js buffer
// (`term.buffer.active`, not pixels), saves a screenshot, and checks that the console path without
// the token, and with a wrong one, is refused (HTTP 404).
//
// Run inside the rig's netns: acceptance-tests/rig.sh exec node acceptance-tests/browser/console.mjs URL OUTDIR
// Prints one JSON line; exits 1 if the check failed. Env: LAB_BROWSER_TIMEOUT_S (default 120).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, statusOf } from './common.mjs';

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error('usage: node console.mjs URL OUTDIR');
  process.exit(2);
}
const timeoutMs = Number(process.env.LAB_BROWSER_TIMEOUT_S || 120) * 1000;
mkdirSync(outDir, { recursive: true });

const readBuffer = () => {
  const buffer = window.term.buffer.active;
  const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
  return lines.join('\n');
};

const t0 = Date.now();
const result = { ok: false };
const browser = await launchChromium();
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 480 } });
  const page = await context.newPage();
  const response = await page.goto(url, { timeout: 20000 });
  result.http_status = response?.status();
  await page.waitForFunction(() => typeof window.term?.buffer?.active !== 'undefined', null, { timeout: 20000 });
  await page.click('.xterm');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await page.keyboard.press('Enter');
    try {
      await page.waitForFunction(() => /login:\s*$/m.test(
        (() => { const b = window.term.buffer.active; const l = []; for (let i = 0; i < b.length; i++) l.push(b.getLine(i)?.translateToString(true) ?? ''); return l.join('\n'); })()),
        null, { timeout: 3000 });
      break;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`no login prompt within ${timeoutMs / 1000}s`);
    }
  }
  result.login_prompt_s = (Date.now() - t0) / 1000;
  result.buffer_tail = (await page.evaluate(readBuffer)).trimEnd().split('\n').slice(-3);
  result.screenshot = join(outDir, 'console.png');
  await page.screenshot({ path: result.screenshot });
  const base = new URL(url);
  result.no_token_status = await statusOf(context, `${base.origin}/console/`);
  result.wrong_token_status = await statusOf(context, `${base.origin}/console/${'0'.repeat(32)}/`);
  if (result.no_token_status !== 404 || result.wrong_token_status !== 404) {
    throw new Error(`expected 404 without the token, got ${result.no_token_status}/${result.wrong_token_status}`);
  }
  result.ok = true;
} catch (e) {
  result.error = String(e.message || e).split('\n')[0];
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
