// Browser check of lab_console type = "vnc": headless Debian chromium (playwright-core) opens the
// graphical console's URL (the bridge redirects it to noVNC's vnc.html, which connects at once),
// waits for noVNC to be connected, presses Enter on the canvas so the guest's tty1 prints a fresh
// login prompt, and saves two pictures: a screenshot of the page (vnc.png) and the canvas's own
// pixels, inverted and doubled for OCR (vnc-ocr.png; the test reads the text with tesseract). It also
// measures how much of the canvas is not background (a blank or black display is ~0) and checks that
// the path without the token, with a wrong one, and the WebSocket path with a wrong one are refused (404).
//
// Run inside the rig's netns: acceptance-tests/rig.sh exec node acceptance-tests/browser/vnc.mjs URL OUTDIR
// Prints one JSON line; exits 1 if the check failed. Env: LAB_BROWSER_TIMEOUT_S (default 120).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, statusOf } from './common.mjs';

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error('usage: node vnc.mjs URL OUTDIR');
  process.exit(2);
}
const timeoutMs = Number(process.env.LAB_BROWSER_TIMEOUT_S || 120) * 1000;
mkdirSync(outDir, { recursive: true });

// In the page: the fraction of canvas pixels that differ from the top-left one, and an inverted,
// 2x, greyscale PNG of the canvas (dark text on white: what OCR reads best).
const readCanvas = () => {
  const canvas = document.querySelector('#noVNC_container canvas') || document.querySelector('canvas');
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  const data = ctx.getImageData(0, 0, width, height).data;
  let differing = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) differing++;
  }
  const out = document.createElement('canvas');
  out.width = width * 2;
  out.height = height * 2;
  const o = out.getContext('2d');
  o.filter = 'invert(1) grayscale(1)';
  o.imageSmoothingEnabled = false;
  o.drawImage(canvas, 0, 0, out.width, out.height);
  return { width, height, nonblank_fraction: differing / (width * height), png: out.toDataURL('image/png') };
};

const t0 = Date.now();
const result = { ok: false };
const browser = await launchChromium();
try {
  const context = await browser.newContext({ viewport: { width: 1024, height: 600 } });
  const page = await context.newPage();
  const response = await page.goto(url, { timeout: 20000 });
  result.http_status = response?.status();
  result.landed_on_novnc = new URL(page.url()).pathname.endsWith('/vnc.html');
  await page.waitForFunction(() => document.documentElement.classList.contains('noVNC_connected'), null, {
    timeout: timeoutMs,
  });
  result.connected_s = (Date.now() - t0) / 1000;
  result.status_text = (await page.textContent('#noVNC_status').catch(() => ''))?.trim();
  const deadline = Date.now() + timeoutMs;
  let canvas;
  for (;;) {
    await page.click('#noVNC_container canvas, canvas');
    await page.keyboard.press('Enter');
    await page.waitForTimeout(1500);
    canvas = await page.evaluate(readCanvas);
    if (canvas.nonblank_fraction > 0.005 || Date.now() > deadline) break;
  }
  result.canvas = { width: canvas.width, height: canvas.height, nonblank_fraction: canvas.nonblank_fraction };
  result.screenshot = join(outDir, 'vnc.png');
  await page.screenshot({ path: result.screenshot });
  result.ocr_image = join(outDir, 'vnc-ocr.png');
  writeFileSync(result.ocr_image, Buffer.from(canvas.png.split(',')[1], 'base64'));
  const base = new URL(url);
  result.no_token_status = await statusOf(context, `${base.origin}/vnc/`);
  result.wrong_token_status = await statusOf(context, `${base.origin}/vnc/${'0'.repeat(32)}/vnc.html`);
  result.wrong_token_socket_status = await statusOf(context, `${base.origin}/vnc/${'0'.repeat(32)}/websockify`);
  result.ok = true;
} catch (e) {
  result.error = String(e.message || e).split('\n')[0];
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
