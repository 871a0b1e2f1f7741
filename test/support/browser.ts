import { chromium, type Browser } from 'playwright-core';
import { fileURLToPath } from 'node:url';

/** Debian's Chromium: the browser tests drive it through playwright-core (no downloaded browser). */
export const CHROMIUM = '/usr/bin/chromium';

/** Why a browser test is skipped on a machine without it. */
export const SKIP_REASON = `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`;

/** Where the browser tests leave their screenshots (gitignored). */
export const SCREENSHOTS = fileURLToPath(new URL('../screenshots/', import.meta.url));

// Headless, without a sandbox (tests run as root in CI), and quiet: nothing it would fetch on its own.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];

/** A headless Chromium for one test file. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}
