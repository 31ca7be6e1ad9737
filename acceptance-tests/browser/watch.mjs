// Browser check of the instructor's side: headless Debian chromium (playwright-core) opens a
// student's URL and, in a second context with the instructor's credential, that session's watch
// view; measures how long the student's typed text takes to show there; checks that the watch
// view refuses a missing or wrong credential (401) and cannot type unless take-over is on; then
// opens the class page and reads its rows. Terminal text comes from xterm.js's buffer
// (`term.buffer.active`), the class page's from its table.
//
// Run inside the rig's netns:
//   acceptance-tests/rig.sh exec node acceptance-tests/browser/watch.mjs CASE.json OUTDIR
// CASE.json: {"username": "prof", "password": "...",
//             "students": [{"name": "ann", "url": "http://lab-x.lab.localhost:8080",
//                           "watch_url": ".../watch/", "takeover": false, "shell": true}],
//             "class_url": "http://class.lab.localhost:8080"}
//   shell: the student's terminal reaches a shell (a VM); without one, take-over is checked on
//   the tty's echo alone.
// Prints one JSON line per check; exits 1 if any failed.

import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import { launchChromium } from './common.mjs';

const [caseFile, outDir] = process.argv.slice(2);
if (!caseFile || !outDir) {
  console.error('usage: node watch.mjs CASE.json OUTDIR');
  process.exit(2);
}
const spec = JSON.parse(readFileSync(caseFile, 'utf8'));
const timeoutMs = Number(process.env.LAB_BROWSER_TIMEOUT_S || 180) * 1000;
mkdirSync(outDir, { recursive: true });
const credentials = { username: spec.username, password: spec.password };

const readBuffer = () => {
  const buffer = window.term.buffer.active;
  const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
  return lines.join('\n');
};
// Whether `text` is on the screen, wrapped lines joined.
const bufferHas = (page, text, timeout) =>
  page.waitForFunction((t) => {
    const b = window.term.buffer.active;
    let joined = '';
    for (let i = 0; i < b.length; i++) {
      const line = b.getLine(i);
      joined += (line?.isWrapped ? '' : '\n') + (line?.translateToString(true) ?? '');
    }
    return joined.includes(t);
  }, text, { timeout, polling: 20 });
// Without a shell, the reconnect loop's message interleaves with what is typed: wait for a fresh
// one, then type in the quiet of its backoff.
const count = (page, text) => page.evaluate((t) => {
  const b = window.term.buffer.active;
  let n = 0;
  for (let i = 0; i < b.length; i++) if ((b.getLine(i)?.translateToString(true) ?? '').includes(t)) n++;
  return n;
}, text);
async function quietMoment(page) {
  const before = await count(page, 'Reconnecting in');
  await page.waitForFunction(([t, n]) => {
    const b = window.term.buffer.active;
    let m = 0;
    for (let i = 0; i < b.length; i++) if ((b.getLine(i)?.translateToString(true) ?? '').includes(t)) m++;
    return m > n;
  }, ['Reconnecting in', before], { timeout: 30000, polling: 20 });
}

// The status of GET `url`, as a browser would get it: `*.localhost` is the loopback (Chromium
// knows that, Node's resolver does not), the Host header the URL's.
function statusWith(url, creds) {
  const u = new URL(url);
  const headers = { Host: u.host };
  if (creds) headers.Authorization = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
  const host = u.hostname.endsWith('.localhost') ? '127.0.0.1' : u.hostname;
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port: u.port || 80, path: u.pathname + u.search, headers, timeout: 10000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within 10 s`)));
    req.on('error', reject);
  });
}

// Opens `url` until xterm.js is up (and, with `prompt`, a shell prompt shows).
async function openTerminal(page, url, prompt) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await page.goto(url, { timeout: 10000 });
      await page.waitForFunction(() => typeof window.term?.buffer?.active !== 'undefined', null, { timeout: 10000 });
      if (prompt) {
        await page.waitForFunction(() => {
          const b = window.term.buffer.active;
          for (let i = b.length - 1; i >= 0; i--) {
            const line = b.getLine(i)?.translateToString(true) ?? '';
            if (line.trim() !== '') return /[$#]\s*$/.test(line);
          }
          return false;
        }, null, { timeout: Math.max(1000, Math.min(30000, deadline - Date.now())) });
      }
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${url}: no terminal within ${timeoutMs / 1000}s: ${e.message}`);
      await page.waitForTimeout(1000);
    }
  }
}

async function checkStudent(browser, s) {
  const result = { check: 'watch', name: s.name, takeover: s.takeover };
  const studentCtx = await browser.newContext({ viewport: { width: 900, height: 420 } });
  const watchCtx = await browser.newContext({ viewport: { width: 900, height: 420 }, httpCredentials: credentials });
  const student = await studentCtx.newPage();
  const watch = await watchCtx.newPage();
  try {
    result.no_credential_status = await statusWith(s.watch_url, undefined);
    result.wrong_credential_status = await statusWith(s.watch_url, { ...credentials, password: `${spec.password}-wrong` });
    result.credential_status = await statusWith(s.watch_url, credentials);
    if (result.no_credential_status !== 401 || result.wrong_credential_status !== 401) {
      throw new Error(`watch without the right credential: ${result.no_credential_status}/${result.wrong_credential_status}`);
    }
    if (result.credential_status !== 200) throw new Error(`watch with the credential: ${result.credential_status}`);

    // The student first (their session starts with their first connection), then the watcher.
    await openTerminal(student, s.url, s.shell);
    await openTerminal(watch, s.watch_url, false);
    const marker = `typed-${s.name}-${Date.now() % 100000}`;
    await student.click('.xterm');
    if (!s.shell) await quietMoment(student);
    // Typed, not run: the watch view must show the keystrokes themselves.
    await student.keyboard.type(`echo ${marker}`);
    const typed = Date.now();
    await bufferHas(watch, marker, 10000);
    result.watch_latency_s = (Date.now() - typed) / 1000;
    await student.keyboard.press('Enter');

    // The watcher types; it must reach the student's screen only with take-over.
    const intruder = `from-watch-${s.name}-${Date.now() % 100000}`;
    await watch.click('.xterm');
    if (!s.shell) await quietMoment(student);
    await watch.keyboard.type(intruder);
    const reached = await bufferHas(student, intruder, 3000).then(() => true, () => false);
    result.watch_typed_reached_student = reached;
    if (reached !== s.takeover) {
      throw new Error(s.takeover ? 'take-over: the watcher could not type' : 'read-only watch: the watcher typed');
    }
    result.watch_screenshot = join(outDir, `watch-${s.name}.png`);
    await watch.screenshot({ path: result.watch_screenshot });
    result.ok = true;
  } catch (e) {
    result.ok = false;
    result.error = String(e.message || e).split('\n')[0];
    for (const [name, page] of [['student', student], ['watch', watch]]) {
      try {
        result[`${name}_tail`] = (await page.evaluate(readBuffer)).trimEnd().split('\n').slice(-4);
      } catch {
        // no terminal on that page
      }
      await page.screenshot({ path: join(outDir, `watch-${s.name}-${name}-failed.png`) }).catch(() => {});
    }
  } finally {
    await studentCtx.close();
    await watchCtx.close();
  }
  return result;
}

async function checkClassPage(browser) {
  const result = { check: 'class_page', url: spec.class_url };
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 360 }, httpCredentials: credentials });
  const page = await ctx.newPage();
  try {
    result.no_credential_status = await statusWith(spec.class_url, undefined);
    if (result.no_credential_status !== 401) throw new Error(`class page without credential: ${result.no_credential_status}`);
    await page.goto(spec.class_url, { timeout: 10000 });
    // Two refreshes: the second proves it keeps itself current.
    await page.waitForFunction(() => (window.classLoaded || 0) >= 2, null, { timeout: 30000 });
    result.rows = await page.$$eval('#students tr', (rows) =>
      rows.map((r) => Object.fromEntries(
        ['student', 'url', 'vm', 'expires', 'activity', 'clients', 'watch'].map((k, i) => [k, r.cells[i].innerText.trim()]),
      )).concat([]));
    result.watch_links = await page.$$eval('#students tr td:last-child a', (as) => as.map((a) => a.href));
    result.screenshot = join(outDir, 'class-page.png');
    await page.screenshot({ path: result.screenshot, fullPage: true });
    result.ok = true;
  } catch (e) {
    result.ok = false;
    result.error = String(e.message || e).split('\n')[0];
    await page.screenshot({ path: join(outDir, 'class-page-failed.png') }).catch(() => {});
  } finally {
    await ctx.close();
  }
  return result;
}

const browser = await launchChromium();
let failed = 0;
try {
  const results = [];
  for (const s of spec.students) results.push(await checkStudent(browser, s));
  if (spec.class_url) results.push(await checkClassPage(browser));
  for (const r of results) {
    console.log(JSON.stringify(r));
    if (!r.ok) failed++;
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
