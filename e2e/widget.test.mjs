// Browser test of the tidechat chat widget (crates/tidechat-api/assets/widget.js), run with plain
// node: `node widget.test.mjs` (or ./run.sh, which installs what it needs first).
//
// Environment:
//   TIDECHAT_URL      the server's base URL, e.g. http://127.0.0.1:8080 (serves /widget.js and the APIs)
//   TIDECHAT_API_KEY  an admin API key of the site's organization (operator calls use it as a Bearer)
//   SITE_KEY          the site's public key (sk_…) that the page embeds
//   SITE_ID           the site's id, for /v1/sites/{SITE_ID}/conversations
//   PAGE_URL          optional: a page that already embeds the widget; otherwise this script serves
//                     page.html itself on http://localhost:PAGE_PORT/ (PAGE_PORT default 4455, 0 = any
//                     free port), which must be an allowed origin of the site
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   SCREENSHOT=1      save a screenshot of the open widget to docs/widget.png
//   E2E_CORE_ONLY=1   skip the extra checks (email form, image upload, keyboard, reload + history)
//   E2E_TIMEOUT_MS    how long to wait for each thing to appear (default 30000)
//   --mock            run against the bundled in-memory mock server (mock-server.mjs) instead
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const MOCK_MODE = process.argv.includes('--mock') || process.env.TIDECHAT_MOCK === '1';
const CORE_ONLY = process.env.E2E_CORE_ONLY === '1';
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS || 30000);
const QUESTION = 'How do I reset my password?';
const OPERATOR_REPLY = 'Hi, this is Sam from support.';

let mock = null;
if (MOCK_MODE) {
  const { startMock } = await import('./mock-server.mjs');
  mock = await startMock();
  Object.assign(process.env, { TIDECHAT_URL: mock.url, TIDECHAT_API_KEY: mock.apiKey, SITE_KEY: mock.siteKey, SITE_ID: mock.siteId });
  if (!process.env.PAGE_PORT) process.env.PAGE_PORT = '0';
}

const missing = ['TIDECHAT_URL', 'TIDECHAT_API_KEY', 'SITE_KEY', 'SITE_ID'].filter((k) => !process.env[k]);
if (missing.length) {
  console.error(`widget e2e: missing environment: ${missing.join(', ')}.\n` +
    'Set TIDECHAT_URL, TIDECHAT_API_KEY, SITE_KEY and SITE_ID (and PAGE_URL or PAGE_PORT), or pass --mock.');
  process.exit(2);
}
const BASE = process.env.TIDECHAT_URL.replace(/\/+$/, '');
const { TIDECHAT_API_KEY: API_KEY, SITE_KEY, SITE_ID } = process.env;

// ------------------------------------------------------------------ helpers

// The operator's side of the API: throws with the status and body on anything but 2xx.
async function api(method, path, body) {
  const res = await fetch(BASE + path, {
    method,
    headers: { Authorization: `Bearer ${API_KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status}: ${text.slice(0, 500)}`);
  try { return JSON.parse(text); } catch { throw new Error(`${method} ${path} → ${res.status}: not JSON: ${text.slice(0, 200)}`); }
}

// Retries `fn` until it returns something truthy; the last error or value explains a timeout.
async function eventually(what, fn, timeout = TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) { last = e; }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function servePage() {
  const template = await readFile(new URL('./page.html', import.meta.url), 'utf8');
  const html = template.replaceAll('{{SITE_KEY}}', esc(SITE_KEY)).replaceAll('{{WIDGET_SRC}}', esc(`${BASE}/widget.js`));
  const server = http.createServer((req, res) => {
    if (req.url === '/' || req.url.startsWith('/?')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(html);
    } else if (req.url === '/favicon.ico') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  const port = Number(process.env.PAGE_PORT ?? 4455);
  await new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`cannot serve the test page on port ${port}: ${e.message} (set PAGE_PORT)`)));
    server.listen(port, '127.0.0.1', resolve);
  });
  return { server, url: `http://localhost:${server.address().port}/` };
}

// ------------------------------------------------------------------ the run

let browser, page, pageServer, pageUrl, widget, dialog;
let sessionId, conversationId;
const pageErrors = [];
let broken = null; // the first failed step: later steps are skipped, not failed again

function step(name, fn, { extra = false } = {}) {
  test(name, async (t) => {
    if (broken) return t.skip(`an earlier step failed: ${broken}`);
    if (extra && CORE_ONLY) return t.skip('E2E_CORE_ONLY=1');
    try {
      await fn(t);
    } catch (e) {
      broken = name;
      if (page && !page.isClosed()) {
        const log = await widget.evaluate((w) => w.shadowRoot.querySelector('.log')?.innerText).catch(() => null);
        if (log != null) console.error(`--- the widget's message log at the failure:\n${log}\n---`);
      }
      throw e;
    }
  });
}

before(async () => {
  const res = await fetch(`${BASE}/widget.js`).catch((e) => { throw new Error(`cannot reach ${BASE}/widget.js: ${e.cause?.message || e.message}`); });
  assert.equal(res.status, 200, `GET ${BASE}/widget.js answered ${res.status}`);
  if (process.env.PAGE_URL) pageUrl = process.env.PAGE_URL;
  else ({ server: pageServer, url: pageUrl } = await servePage());
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error(`[browser ${m.type()}] ${m.text()}`); });
  widget = page.locator('tidechat-widget');
  dialog = widget.getByRole('dialog');
});

after(async () => {
  await browser?.close();
  pageServer?.close();
  await mock?.close();
});

step('the page loads the widget and the launcher opens an accessible dialog', async () => {
  await page.goto(pageUrl);
  const launcher = widget.getByRole('button', { name: /open chat/i });
  await launcher.waitFor();
  assert.equal(await launcher.getAttribute('aria-expanded'), 'false');
  await launcher.click();
  await dialog.waitFor();
  assert.ok(await dialog.getAttribute('aria-label'), 'the dialog has an aria-label');
  assert.equal(await widget.locator('[role="log"]').getAttribute('aria-live'), 'polite');
  const input = dialog.getByRole('textbox', { name: 'Message' });
  await eventually('the message box to have focus', () => input.evaluate((el) => el.getRootNode().activeElement === el));
  sessionId = await widget.evaluate((w) => w.sessionId);
  assert.match(sessionId, /^sess_[0-9a-f]{32}$/, 'a session id is kept');
  const stored = await page.evaluate((k) => localStorage.getItem(`tidechat:${k}`), SITE_KEY);
  assert.ok(stored && stored.includes(sessionId), 'the session id is in localStorage');
});

step('the visitor asks a question and the answer streams in', async () => {
  const input = dialog.getByRole('textbox', { name: 'Message' });
  await input.fill(QUESTION);
  await input.press('Enter');
  await dialog.locator('[data-role="user"]', { hasText: QUESTION }).waitFor();
  const answer = dialog.locator('[data-role="assistant"]', { hasText: 'reset link' });
  await answer.waitFor();
  await eventually('the answer to finish streaming', async () => (await answer.getAttribute('aria-busy')) === null);
  assert.equal(await input.inputValue(), '', 'the message box is cleared after sending');
  conversationId = await widget.evaluate((w) => w.conversationId);
});

step('the visitor leaves an email address', async () => {
  const email = dialog.getByRole('textbox', { name: /email/i });
  if (!(await email.isVisible())) return; // the site does not ask for one
  await email.fill('visitor@example.com');
  await email.press('Enter');
  await dialog.locator('[data-role="notice"]', { hasText: /follow up by email/i }).waitFor();
}, { extra: true });

step('an operator finds the conversation, takes it over and replies', async () => {
  const conv = await eventually(`the conversation of ${sessionId} in GET /v1/sites/${SITE_ID}/conversations`, async () => {
    const list = await api('GET', `/v1/sites/${encodeURIComponent(SITE_ID)}/conversations`);
    assert.ok(Array.isArray(list.items), `expected {items: [...]}, got ${JSON.stringify(list).slice(0, 300)}`);
    return list.items.find((c) => c.sessionId === sessionId || (conversationId && c.conversationId === conversationId));
  });
  if (conversationId) assert.equal(conv.conversationId, conversationId, 'the stream\'s done.meta.conversation_id names the same conversation');
  conversationId = conv.conversationId;
  const path = `/v1/sites/${encodeURIComponent(SITE_ID)}/conversations/${encodeURIComponent(conversationId)}`;
  await api('POST', `${path}/takeover`);
  await api('POST', `${path}/reply`, { content: OPERATOR_REPLY });
});

step('the visitor sees the operator\'s reply and the mode notice', async () => {
  await dialog.locator('[data-role="operator"]', { hasText: 'Sam from support' }).waitFor();
  await dialog.locator('[data-role="notice"]', { hasText: /chatting with a person/i }).waitFor();
});

step('the visitor sends an image while the operator has the chat', async () => {
  // A small PNG drawn by the browser itself.
  const dataUrl = await page.evaluate(() => {
    const c = Object.assign(document.createElement('canvas'), { width: 160, height: 100 });
    const g = c.getContext('2d');
    g.fillStyle = '#0f766e'; g.fillRect(0, 0, 160, 100);
    g.fillStyle = '#fff'; g.font = 'bold 22px sans-serif'; g.fillText('screenshot', 20, 58);
    return c.toDataURL('image/png');
  });
  await widget.locator('input[type="file"]').setInputFiles({
    name: 'screenshot.png', mimeType: 'image/png', buffer: Buffer.from(dataUrl.split(',')[1], 'base64'),
  });
  const img = dialog.locator('[data-role="user"] img');
  await img.waitFor();
  await eventually('the uploaded image to load', () => img.evaluate((i) => i.complete && i.naturalWidth > 0));
  await widget.locator('.status', { hasText: /person will reply/i }).waitFor();
}, { extra: true });

step('the visitor rates the chat 5 stars and the rating is stored', async () => {
  const star = dialog.getByRole('button', { name: 'Rate 5 out of 5' });
  await star.click();
  const comment = dialog.getByRole('textbox', { name: /anything to add/i });
  await comment.waitFor();
  await comment.fill('Quick and friendly, thanks!');
  await comment.press('Enter');
  await dialog.getByRole('status').filter({ hasText: /thanks for your feedback/i }).waitFor();
  const path = `/v1/sites/${encodeURIComponent(SITE_ID)}/conversations/${encodeURIComponent(conversationId)}`;
  await eventually(`rating 5 in GET ${path}`, async () => {
    const conv = await api('GET', path);
    const rating = typeof conv.rating === 'object' && conv.rating ? conv.rating.score : conv.rating;
    return rating === 5 || { rating: conv.rating };
  }, 10000);
});

step('screenshot of the open widget (SCREENSHOT=1)', async (t) => {
  if (process.env.SCREENSHOT !== '1') return t.skip('SCREENSHOT is not 1');
  const file = new URL('../docs/widget.png', import.meta.url);
  await mkdir(new URL('.', file), { recursive: true });
  await page.mouse.move(0, 0);
  await writeFile(file, await page.screenshot());
  console.log(`screenshot saved to ${file.pathname}`);
});

step('Escape closes the dialog and gives focus back to the launcher', async () => {
  await dialog.getByRole('textbox', { name: 'Message' }).focus();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  const launcher = widget.getByRole('button', { name: /open chat/i });
  assert.equal(await launcher.getAttribute('aria-expanded'), 'false');
  assert.ok(await launcher.evaluate((el) => el.getRootNode().activeElement === el), 'the launcher has focus');
}, { extra: true });

step('after a reload the conversation continues from the history', async () => {
  await page.reload();
  await widget.getByRole('button', { name: /open chat/i }).click();
  await dialog.locator('[data-role="user"]', { hasText: QUESTION }).waitFor();
  await dialog.locator('[data-role="operator"]', { hasText: 'Sam from support' }).waitFor();
  assert.equal(await widget.evaluate((w) => w.sessionId), sessionId, 'the same session id after the reload');
  await page.waitForTimeout(3500); // one operator-messages poll: the history's messages are not shown twice
  assert.equal(await dialog.locator('[data-role="operator"]').count(), 1, 'the operator\'s reply is shown once');
}, { extra: true });

step('no uncaught error reached the page', async () => {
  assert.deepEqual(pageErrors, []);
});
