// The widget's edge states, against stubbed responses (no tidechat server needed): blocked visitor,
// moderation `replace`, stream `error`, retry with the same message_id, operator mode, proactive
// badge, Shift+Enter, a config that fails. Run: `node widget-states.test.mjs` (CHROMIUM as in
// widget.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const API = 'http://tidechat.test';
const PAGE = 'http://shop.test/';
const WIDGET = await readFile(new URL('../crates/tidechat-api/assets/widget.js', import.meta.url), 'utf8');
const HTML = `<!doctype html><html lang="en"><body><h1>Shop</h1>
<tidechat-widget site-key="sk_test"></tidechat-widget><script src="${API}/widget.js" async></script></body></html>`;

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(() => browser?.close());

const sse = (...events) => events.map((e) => (typeof e === 'string' ? e : `data: ${JSON.stringify(e)}\n\n`)).join('');
const ok = (body) => ({ status: 200, contentType: 'application/json', body: JSON.stringify({ success: true, ...body }) });

// A page whose API answers come from `handlers[route]` (a function of the request, or a response).
async function open(handlers = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  const errors = [];
  const calls = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const defaults = {
    config: ok({ name: 'Shop help', greeting: 'Hello!', colors: { primary: '#7c3aed' }, ask_email: false }),
    history: ok({ messages: [] }),
    'block-status': ok({ blocked: false }),
    'pending-proactive': ok({ messages: [] }),
    'operator-messages': ok({ messages: [], mode: 'ai' }),
    stream: { status: 200, contentType: 'text/event-stream', body: sse({ type: 'chunk', content: 'Hi.' }, { type: 'done', meta: { conversation_id: 'c1' } }) },
  };
  await context.route('**/*', async (route) => {
    const req = route.request();
    const url = new URL(req.url());
    const cors = { 'Access-Control-Allow-Origin': 'http://shop.test', 'Access-Control-Allow-Headers': 'Content-Type' };
    if (req.url() === PAGE) return route.fulfill({ contentType: 'text/html', body: HTML });
    if (url.origin !== API) return route.fulfill({ status: 404, body: '' });
    if (url.pathname === '/widget.js') return route.fulfill({ contentType: 'application/javascript', body: WIDGET });
    if (req.method() === 'OPTIONS') return route.fulfill({ status: 204, headers: cors });
    const name = url.pathname.replace('/api/v1/chat/', '');
    calls.push({ name, query: Object.fromEntries(url.searchParams), body: req.postData() && JSON.parse(req.postData()) });
    let h = handlers[name] ?? defaults[name] ?? ok({});
    if (typeof h === 'function') h = await h(req, calls.filter((c) => c.name === name).length);
    return route.fulfill({ ...h, headers: { ...cors, ...(h.headers || {}) } });
  });
  await page.goto(PAGE);
  const widget = page.locator('tidechat-widget');
  const dialog = widget.getByRole('dialog');
  const input = dialog.getByRole('textbox', { name: 'Message' });
  return { page, widget, dialog, input, errors, calls, close: () => context.close() };
}

test('a blocked visitor sees the refusal and cannot type', async () => {
  const w = await open({ 'block-status': ok({ blocked: true }) });
  await w.widget.getByRole('button', { name: 'Open chat' }).click();
  await w.dialog.locator('[data-role="notice"]', { hasText: "can't send messages" }).waitFor();
  assert.ok(await w.input.isDisabled());
  assert.ok(await w.dialog.getByRole('button', { name: 'Send' }).isDisabled());
  assert.deepEqual(w.errors, []);
  await w.close();
});

test('config: title, dialog label, greeting and colours', async () => {
  const w = await open();
  await w.widget.getByRole('button', { name: 'Open chat' }).click();
  await w.dialog.locator('[data-role="assistant"]', { hasText: 'Hello!' }).waitFor();
  assert.equal(await w.dialog.getAttribute('aria-label'), 'Shop help');
  assert.equal(await w.dialog.getByRole('heading').textContent(), 'Shop help');
  const bg = await w.widget.locator('header').evaluate((h) => getComputedStyle(h).backgroundColor);
  assert.equal(bg, 'rgb(124, 58, 237)');
  // the session id and the API base come from the embed
  const q = w.calls.find((c) => c.name === 'history').query;
  assert.equal(q.site_key, 'sk_test');
  assert.match(q.session_id, /^sess_[0-9a-f]{32}$/);
  await w.close();
});

test('a SSE body with CRLF, comments, event names and a moderation replace', async () => {
  const body = ': keep-alive\r\n\r\nevent: message\r\ndata: {"type":"chunk","content":"Buy "}\r\n\r\n' +
    'data: {"type":"chunk",\r\ndata: "content":"pills!"}\r\n\r\n' + // one event on two data lines
    'data: {"type":"replace","content":"[removed by moderation]"}\n\ndata: {"type":"done","meta":{}}\n\ndata: [DONE]\n\n';
  const w = await open({ stream: { status: 200, contentType: 'text/event-stream', body } });
  await w.widget.getByRole('button', { name: 'Open chat' }).click();
  await w.input.fill('hello');
  await w.input.press('Enter');
  const reply = w.dialog.locator('[data-role="assistant"]').last();
  await reply.filter({ hasText: '[removed by moderation]' }).waitFor();
  assert.ok(!(await reply.textContent()).includes('pills'));
  const sent = w.calls.find((c) => c.name === 'stream').body;
  assert.deepEqual(Object.keys(sent).sort(), ['lang', 'message', 'message_id', 'session_id', 'site_key']);
  assert.equal(sent.lang, 'en');
  assert.equal(sent.message, 'hello');
  await w.dialog.getByRole('group', { name: 'Rate this chat' }).waitFor(); // shown after a reply
  await w.close();
});

test('a failed send shows the error inline; Retry resends with the same message_id', async () => {
  const w = await open({
    stream: (req, n) => (n === 1
      ? { status: 200, contentType: 'text/event-stream', body: sse({ type: 'error', message: 'The assistant is unavailable right now.' }) }
      : n === 2 ? { status: 500, contentType: 'application/json', body: '{"success":false,"error":"internal_error"}' }
        : { status: 200, contentType: 'text/event-stream', body: sse({ type: 'chunk', content: 'Back again.' }, { type: 'done', meta: {} }) }),
  });
  await w.widget.getByRole('button', { name: 'Open chat' }).click();
  await w.input.fill('anyone there?');
  await w.input.press('Enter');
  await w.widget.locator('.status.error', { hasText: 'The assistant is unavailable right now.' }).waitFor();
  await w.dialog.getByRole('button', { name: 'Retry' }).click();
  await w.widget.locator('.status.error', { hasText: 'Something went wrong' }).waitFor();
  await w.dialog.getByRole('button', { name: 'Retry' }).click();
  await w.dialog.locator('[data-role="assistant"]', { hasText: 'Back again.' }).waitFor();
  const ids = w.calls.filter((c) => c.name === 'stream').map((c) => c.body.message_id);
  assert.equal(ids.length, 3);
  assert.equal(new Set(ids).size, 1, 'the retry reuses the message_id');
  assert.equal(await w.dialog.locator('[data-role="user"]').count(), 1, 'no duplicate user bubble');
  assert.equal(await w.widget.locator('.status').count(), 0);
  assert.deepEqual(w.errors, []);
  await w.close();
});

test('operator mode: the message waits for a person, whose replies arrive by polling', async () => {
  let delivered = false;
  const w = await open({
    stream: { status: 200, contentType: 'text/event-stream', body: sse({ type: 'done', meta: { conversation_id: 'c9', mode: 'operator' } }) },
    'operator-messages': () => {
      const messages = delivered ? [] : [{ id: 'op1', content: 'Sam here.', created_at: new Date().toISOString() }];
      delivered = true;
      return ok({ messages, mode: 'operator' });
    },
  });
  await w.widget.getByRole('button', { name: 'Open chat' }).click();
  await w.dialog.locator('[data-role="operator"]', { hasText: 'Sam here.' }).waitFor();
  await w.dialog.locator('[data-role="notice"]', { hasText: "You're now chatting with a person" }).waitFor();
  await w.input.fill('my order is late');
  await w.input.press('Enter');
  await w.widget.locator('.status', { hasText: 'A person will reply here' }).waitFor();
  assert.equal(await w.dialog.locator('[data-role="assistant"]:not([data-greeting])').count(), 0);
  assert.equal(await w.widget.evaluate((el) => el.conversationId), 'c9');
  await w.page.waitForTimeout(3300);
  assert.equal(await w.dialog.locator('[data-role="notice"]').count(), 1, 'one notice per mode change');
  assert.equal(await w.dialog.locator('[data-role="operator"]').count(), 1);
  await w.close();
});

test('a proactive message badges the closed launcher', async () => {
  const w = await open({ 'pending-proactive': ok({ messages: [{ id: 'p1', content: 'Free shipping today!', delay_seconds: 0.2 }] }) });
  const launcher = w.widget.getByRole('button', { name: 'Open chat, 1 new message' });
  await launcher.waitFor();
  assert.equal(await w.widget.locator('.badge').textContent(), '1');
  assert.equal(new URL(w.calls.find((c) => c.name === 'pending-proactive').query.url).href, PAGE);
  await launcher.click();
  await w.dialog.locator('[data-role="assistant"]', { hasText: 'Free shipping today!' }).waitFor();
  assert.ok(await w.widget.locator('.badge').isHidden());
  await w.close();
});

test('Shift+Enter makes a new line; Enter sends both lines', async () => {
  const w = await open();
  await w.widget.getByRole('button', { name: 'Open chat' }).click();
  await w.input.type('line one');
  await w.input.press('Shift+Enter');
  await w.input.type('line two');
  assert.equal(await w.input.inputValue(), 'line one\nline two');
  await w.input.press('Enter');
  await w.dialog.locator('[data-role="assistant"]', { hasText: 'Hi.' }).waitFor();
  assert.equal(w.calls.find((c) => c.name === 'stream').body.message, 'line one\nline two');
  await w.close();
});

test('a failing config and history are shown inline; the chat still works', async () => {
  const down = { status: 503, contentType: 'text/plain', body: 'upstream down' };
  const w = await open({ config: down, history: (req, n) => (n === 1 ? down : ok({ messages: [] })) });
  await w.widget.getByRole('button', { name: 'Open chat' }).click();
  await w.dialog.locator('.note.error').first().waitFor();
  assert.equal(await w.dialog.getAttribute('aria-label'), 'Chat');
  await w.input.fill('still there?');
  await w.input.press('Enter'); // retries the history first, then sends
  await w.dialog.locator('[data-role="assistant"]', { hasText: 'Hi.' }).waitFor();
  assert.deepEqual(w.errors, []);
  await w.close();
});
