// What the browser checks share: Debian's chromium launched headless the rig's way, and the
// HTTP status of one navigation.
import { chromium } from 'playwright-core';

// Root in a container-less rig: chromium's sandbox needs user namespaces the rig does not set up.
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.LAB_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

// The status of a navigation to `u` in a page of its own (chromium resolves *.localhost itself;
// node's resolver does not).
export async function statusOf(context, u) {
  const page = await context.newPage();
  try {
    return (await page.goto(u, { timeout: 20000 }))?.status();
  } finally {
    await page.close();
  }
}
