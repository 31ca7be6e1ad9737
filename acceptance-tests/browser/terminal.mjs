// Browser check of lab_terminal: headless Debian chromium (driven by playwright-core, no browser
// download) opens each student's terminal URL, waits for the VM's shell prompt, types `hostname`,
// and finds the VM's own hostname in the xterm.js buffer (`term.buffer.active`, not pixels).
// Saves one screenshot per student; checks that a wrong credential gets HTTP 401.
//
// Run inside the rig's netns (terminal URLs are private addresses):
//   acceptance-tests/rig.sh exec node acceptance-tests/browser/terminal.mjs CASES.json OUTDIR
// CASES.json: [{"name": "ann", "url": "http://127.0.0.1:8001", "expect": "vm-ann",
//               "username": "ann", "password": "...", "forbid": ["vm-bob"]}]
//             (username/password optional; forbid: text that must not be on this screen)
// Env: LAB_T0_MS (epoch ms to measure "time to prompt" from, e.g. terraform apply start),
//      LAB_BROWSER_TIMEOUT_S (per student, default 180),
//      LAB_HOST_RESOLVER_RULES (chromium's --host-resolver-rules, e.g. "MAP lab-x.lab.test 10.77.1.2":
//      each session hostname at its host's gateway, as DNS would resolve it).
// Prints one JSON line per student; exits 1 if any student's check failed.

import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, request } from 'playwright-core';

const [casesFile, outDir] = process.argv.slice(2);
if (!casesFile || !outDir) {
  console.error('usage: node terminal.mjs CASES.json OUTDIR');
  process.exit(2);
}
const cases = JSON.parse(readFileSync(casesFile, 'utf8'));
const t0 = Number(process.env.LAB_T0_MS || Date.now());
const timeoutMs = Number(process.env.LAB_BROWSER_TIMEOUT_S || 180) * 1000;
mkdirSync(outDir, { recursive: true });

// Runs in the page: the whole terminal buffer as text, one line per row.
const readBuffer = () => {
  const buffer = window.term.buffer.active;
  const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
  return lines.join('\n');
};

async function statusWith(url, credentials) {
  const ctx = await request.newContext(credentials ? { httpCredentials: credentials } : {});
  try {
    return (await ctx.get(url, { failOnStatusCode: false })).status();
  } finally {
    await ctx.dispose();
  }
}

async function checkStudent(browser, c) {
  const result = { name: c.name, url: c.url };
  const credentials = c.username ? { username: c.username, password: c.password } : undefined;
  const context = await browser.newContext({
    viewport: { width: 900, height: 480 },
    ...(credentials ? { httpCredentials: credentials } : {}),
  });
  const page = await context.newPage();
  try {
    // ttyd may still be starting or the VM still booting: retry the page until the prompt shows.
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const response = await page.goto(c.url, { timeout: 10000 });
        result.http_status = response?.status();
        await page.waitForFunction(() => typeof window.term?.buffer?.active !== 'undefined', null, { timeout: 10000 });
        // A shell prompt: the last non-empty line ends with `$ ` or `# `.
        await page.waitForFunction(
          () => {
            const buffer = window.term.buffer.active;
            for (let i = buffer.length - 1; i >= 0; i--) {
              const line = buffer.getLine(i)?.translateToString(true) ?? '';
              if (line.trim() !== '') return /[$#]\s*$/.test(line);
            }
            return false;
          },
          null,
          { timeout: Math.max(1000, Math.min(30000, deadline - Date.now())) },
        );
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`no prompt within ${timeoutMs / 1000}s: ${e.message}`);
        await page.waitForTimeout(1000);
      }
    }
    result.prompt_s = (Date.now() - t0) / 1000;

    await page.click('.xterm');
    await page.keyboard.type('hostname');
    await page.keyboard.press('Enter');
    await page.waitForFunction(
      (expect) => {
        const buffer = window.term.buffer.active;
        for (let i = 0; i < buffer.length; i++) {
          if ((buffer.getLine(i)?.translateToString(true) ?? '').trim() === expect) return true;
        }
        return false;
      },
      c.expect,
      { timeout: 20000 },
    );
    result.hostname_s = (Date.now() - t0) / 1000;
    result.hostname_found = true;
    // Another student's VM name on this screen would mean a wrong route.
    const screen = await page.evaluate(readBuffer);
    result.foreign_found = (c.forbid || []).filter((other) => screen.includes(other));
    if (result.foreign_found.length) throw new Error(`another student's VM on this screen: ${result.foreign_found}`);
    result.buffer_tail = (await page.evaluate(readBuffer)).trimEnd().split('\n').slice(-3);
    result.screenshot = join(outDir, `${c.name}.png`);
    await page.screenshot({ path: result.screenshot });

    if (credentials) {
      result.wrong_credential_status = await statusWith(c.url, { username: c.username, password: `${c.password}-wrong` });
      result.no_credential_status = await statusWith(c.url, undefined);
      if (result.wrong_credential_status !== 401 || result.no_credential_status !== 401) {
        throw new Error(`expected 401 without the right credential, got ${result.wrong_credential_status}/${result.no_credential_status}`);
      }
    }
    result.ok = true;
  } catch (e) {
    result.ok = false;
    result.error = String(e.message || e).split('\n')[0];
    try {
      result.buffer_tail = (await page.evaluate(readBuffer)).trimEnd().split('\n').slice(-5);
    } catch {
      // no terminal on the page
    }
    await page.screenshot({ path: join(outDir, `${c.name}-failed.png`) }).catch(() => {});
  } finally {
    await context.close();
  }
  return result;
}

const browser = await chromium.launch({
  executablePath: process.env.LAB_CHROMIUM || '/usr/bin/chromium',
  // Root in a container-less rig: chromium's sandbox needs user namespaces we don't set up.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    ...(process.env.LAB_HOST_RESOLVER_RULES ? [`--host-resolver-rules=${process.env.LAB_HOST_RESOLVER_RULES}`] : []),
  ],
});
let failed = 0;
try {
  // All students at once, like a class opening their links together.
  const results = await Promise.all(cases.map((c) => checkStudent(browser, c)));
  for (const r of results) {
    console.log(JSON.stringify(r));
    if (!r.ok) failed++;
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
