// A headless Debian chromium driven by playwright-core for the console tests: reads one
// JSON command a line on stdin, answers one JSON line on stdout ({"ok": ...} or
// {"error": "..."}). Commands:
//   {"goto": url}                       load a page; answers its main's text
//   {"waitFor": text, "timeout": ms}    wait (no reload) until the page shows text
//   {"text": selector}                  the text of every match
//   {"fill": selector, "value": v}      type into a field
//   {"click": selector}                 click and wait for the navigation it starts
//   {"screenshot": path}                a PNG of the whole page
//   {"url": true}                       the page's address
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await (await browser.newContext({ viewport: { width: 1600, height: 1000 } })).newPage();
const answer = (value) => process.stdout.write(JSON.stringify(value) + '\n');

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    const command = JSON.parse(line);
    if (command.goto !== undefined) {
      await page.goto(command.goto, { waitUntil: 'load' });
      answer({ ok: await page.innerText('body') });
    } else if (command.waitFor !== undefined) {
      const started = Date.now();
      await page.waitForFunction((text) => document.body.innerText.includes(text),
        command.waitFor, { timeout: command.timeout ?? 5000, polling: 50 });
      answer({ ok: Date.now() - started });
    } else if (command.text !== undefined) {
      // innerText, or an SVG element's textContent (SVG has no innerText).
      answer({ ok: await page.locator(command.text).evaluateAll((els) => els.map((e) => e.innerText ?? e.textContent)) });
    } else if (command.fill !== undefined) {
      await page.fill(command.fill, command.value);
      answer({ ok: true });
    } else if (command.click !== undefined) {
      await Promise.all([page.waitForLoadState('load'), page.click(command.click)]);
      await page.waitForLoadState('load');
      answer({ ok: await page.innerText('body') });
    } else if (command.screenshot !== undefined) {
      await page.screenshot({ path: command.screenshot, fullPage: true });
      answer({ ok: command.screenshot });
    } else if (command.url !== undefined) {
      answer({ ok: page.url() });
    } else {
      answer({ error: `unknown command ${line}` });
    }
  } catch (err) {
    answer({ error: String(err && err.message || err) });
  }
}
await browser.close();
