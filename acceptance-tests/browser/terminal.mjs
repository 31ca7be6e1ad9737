// Browser check of lab_terminal: headless Debian chromium (driven by playwright-core, no browser
// download) opens each student's terminal URL, waits for the VM's shell prompt, types `hostname`,
// and finds the VM's own hostname in the xterm.js buffer (`term.buffer.active`, not pixels).
// Saves one screenshot per student; checks that a wrong credential gets HTTP 401. Then runs the
// case's `steps`, if any, in order (each fails the case when its text does not show within 30 s, or
// the step's `timeout_s`). With `"no_prompt": true` the case only opens the terminal (its VM is down)
// and goes straight to the steps:
//   {"type": "cmd"}          types cmd and Enter into the current page
//   {"line": "text"}         waits for a line of the current page that is exactly text (trimmed)
//   {"match": "regex"}       waits for the current page's buffer to match regex
//   {"reopen": true}         closes the page (as a closed tab) and opens the URL again in a new one
//   {"second": true}         opens the URL in a second page; later line/match steps look there too
//   {"close_second": true}   closes the second page
//   {"copy": "word"}         double-clicks the word on the screen (as a student selects it) and waits
//                            until the clipboard holds it (ttyd copies a selection)
//   {"paste": "text"}        puts text on the clipboard and presses Ctrl+Shift+V into the terminal
//   {"hold": "name"}         writes OUTDIR/<case>.<name>.holding and waits (up to 5 min) for
//                            OUTDIR/<case>.<name>.release: the test looks at the world meanwhile
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

import { readFileSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
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

// Opens `url` in `page` and waits until xterm.js is there and shows something.
async function openTerminal(page, url) {
  await page.goto(url, { timeout: 10000 });
  await page.waitForFunction(() => typeof window.term?.buffer?.active !== 'undefined', null, { timeout: 10000 });
}

// Waits until `test` (a line or a regex) holds for `page`'s buffer.
async function waitForText(page, step) {
  await page.waitForFunction(
    ({ line, match }) => {
      const buffer = window.term.buffer.active;
      const lines = [];
      for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
      if (line !== undefined) return lines.some((l) => l.trim() === line);
      return new RegExp(match).test(lines.join('\n'));
    },
    { line: step.line, match: step.match },
    { timeout: (step.timeout_s ?? 30) * 1000 },
  );
}

// Double-clicks the middle of the first visible occurrence of `word` in the terminal's cells.
async function doubleClickWord(page, word) {
  const at = await page.evaluate((word) => {
    const term = window.term;
    const buffer = term.buffer.active;
    for (let row = 0; row < term.rows; row++) {
      const col = (buffer.getLine(buffer.viewportY + row)?.translateToString(true) ?? '').indexOf(word);
      if (col >= 0) {
        const screen = document.querySelector('.xterm-screen').getBoundingClientRect();
        const [cw, ch] = [screen.width / term.cols, screen.height / term.rows];
        return { x: screen.left + (col + word.length / 2) * cw, y: screen.top + (row + 0.5) * ch };
      }
    }
    return null;
  }, word);
  if (!at) throw new Error(`"${word}" is not on the screen`);
  await page.mouse.dblclick(at.x, at.y);
}

async function runSteps(context, page, c, result) {
  let second;
  result.steps = [];
  for (const step of c.steps) {
    const started = Date.now();
    const where = second ?? page;
    if (step.type !== undefined) {
      await page.click('.xterm');
      await page.keyboard.type(step.type);
      await page.keyboard.press('Enter');
    } else if (step.line !== undefined || step.match !== undefined) {
      await waitForText(page, step);
      if (second) await waitForText(second, step);
    } else if (step.copy !== undefined) {
      await doubleClickWord(page, step.copy);
      await page.waitForFunction(async (word) => (await navigator.clipboard.readText()) === word, step.copy, {
        timeout: 10000,
        polling: 200,
      });
    } else if (step.paste !== undefined) {
      await page.evaluate((text) => navigator.clipboard.writeText(text), step.paste);
      await page.click('.xterm');
      await page.keyboard.press('Control+Shift+V');
    } else if (step.reopen) {
      await page.close();
      page = await context.newPage();
      await openTerminal(page, c.url);
    } else if (step.second) {
      second = await context.newPage();
      await openTerminal(second, c.url);
    } else if (step.close_second) {
      await second?.close();
      second = undefined;
    } else if (step.hold) {
      const base = join(outDir, `${c.name}.${step.hold}`);
      writeFileSync(`${base}.holding`, '');
      const deadline = Date.now() + 300000;
      while (!existsSync(`${base}.release`)) {
        if (Date.now() > deadline) throw new Error(`step ${JSON.stringify(step)}: no release within 5 min`);
        await where.waitForTimeout(200);
      }
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
    result.steps.push({ ...step, s: (Date.now() - started) / 1000 });
  }
  await second?.close();
  return page;
}

// Waits for the VM's prompt (retrying the page while ttyd starts or the VM boots), types
// `hostname` and finds the VM's own name (and no other student's) on the screen.
async function checkPromptAndHostname(page, c, result) {
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
}

async function checkStudent(browser, c) {
  const result = { name: c.name, url: c.url };
  const credentials = c.username ? { username: c.username, password: c.password } : undefined;
  const context = await browser.newContext({
    viewport: { width: 900, height: 480 },
    ...(credentials ? { httpCredentials: credentials } : {}),
  });
  // The clipboard steps read and write it as the page would. Chromium grants it only to a secure
  // context (https, or http on `*.localhost`), so only cases with such steps ask.
  if ((c.steps || []).some((step) => step.copy !== undefined || step.paste !== undefined)) {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(c.url).origin });
  }
  let page = await context.newPage();
  try {
    if (c.no_prompt) {
      // The VM is expected to be down: only the terminal (ttyd and its session) must answer.
      await openTerminal(page, c.url);
    } else {
      await checkPromptAndHostname(page, c, result);
    }

    if (c.steps) {
      try {
        page = await runSteps(context, page, c, result);
      } catch (e) {
        throw new Error(`after steps ${JSON.stringify(result.steps)}: ${e.message}`);
      }
      result.steps_screenshot = join(outDir, `${c.name}-steps.png`);
      await page.screenshot({ path: result.steps_screenshot });
    }

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
