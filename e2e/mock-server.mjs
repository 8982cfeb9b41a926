// A small in-memory stand-in for the tidechat endpoints the widget and its browser test use.
// It follows the widget's API contract (see README section in widget.test.mjs) so the widget can
// be developed and its test run without the Rust server: `node widget.test.mjs --mock`, or
// `node mock-server.mjs` to poke at it by hand (prints its URL and keys).
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';

const WIDGET = new URL('../crates/tidechat-api/assets/widget.js', import.meta.url);

export const MOCK = { siteId: 'site_mock', siteKey: 'sk_mock_public', apiKey: 'tc_mock_admin_key' };
const FAQ_ANSWER = 'To reset your password, open the sign-in page and choose "Forgot password". ' +
  "We'll email you a reset link that works for 30 minutes.";

const id = (p) => p + randomBytes(8).toString('hex');
const now = () => new Date().toISOString();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startMock({ port = 0, host = '127.0.0.1', chunkDelayMs = 40 } = {}) {
  const convs = new Map(); // session_id -> conversation
  const uploads = new Map();

  const conv = (sid, create) => {
    let c = convs.get(sid);
    if (!c && create) {
      c = { conversationId: id('conv_'), sessionId: sid, mode: 'ai', messages: [], outbox: [], rating: null,
        ratingComment: null, email: null, createdAt: now(), updatedAt: now(), messageIds: new Set() };
      convs.set(sid, c);
    }
    return c;
  };
  const byConvId = (cid) => [...convs.values()].find((c) => c.conversationId === cid);
  const summary = (c) => ({ conversationId: c.conversationId, sessionId: c.sessionId, mode: c.mode, rating: c.rating,
    messageCount: c.messages.length, createdAt: c.createdAt, updatedAt: c.updatedAt });

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://mock');
    const origin = req.headers.origin;
    const cors = origin ? { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' } : {};
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...cors, ...headers });
      res.end(JSON.stringify(body));
    };
    const body = async () => {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      return Buffer.concat(chunks);
    };
    const json = async () => { try { return JSON.parse((await body()).toString('utf8')); } catch { return null; } };
    try {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { ...cors, 'Access-Control-Allow-Methods': 'GET, POST', 'Access-Control-Allow-Headers': 'Content-Type',
          'Access-Control-Max-Age': '600' });
        return res.end();
      }
      const p = url.pathname;
      if (p === '/widget.js') {
        res.writeHead(200, { 'Content-Type': 'application/javascript; charset=utf-8', 'Cache-Control': 'no-cache' });
        return res.end(await readFile(WIDGET));
      }
      if (p.startsWith('/uploads/')) {
        const u = uploads.get(p.slice(9));
        if (!u) return send(404, { success: false, error: 'not_found' });
        res.writeHead(200, { 'Content-Type': u.type, ...cors });
        return res.end(u.data);
      }

      // ---- the widget surface: /api/v1/chat/*
      if (p.startsWith('/api/v1/chat/')) {
        const route = p.slice('/api/v1/chat/'.length);
        const q = Object.fromEntries(url.searchParams);
        let b = {};
        if (req.method === 'POST' && route !== 'upload-image') b = (await json()) || {};
        const siteKey = q.site_key ?? b.site_key;
        const sid = q.session_id ?? b.session_id;
        if (route !== 'upload-image' && siteKey !== MOCK.siteKey) return send(404, { success: false, error: 'Unknown site key.' });
        switch (`${req.method} ${route}`) {
          case 'GET config':
            return send(200, { success: true, name: 'Acme Support', greeting: 'Hi! Ask me anything about your Acme account.',
              colors: { primary: '#0f766e', background: '#ffffff', text: '#1f2937' }, ask_email: true });
          case 'GET history': {
            const c = conv(sid);
            return send(200, { success: true, messages: c ? c.messages.map(({ id, role, content, created_at }) => ({ id, role, content, created_at })) : [] });
          }
          case 'GET block-status':
            return send(200, { success: true, blocked: false });
          case 'GET pending-proactive':
            return send(200, { success: true, messages: conv(sid) ? [] : [{ id: 'pro_1', content: 'Need a hand? We are here.', delay_seconds: 1 }] });
          case 'GET operator-messages': {
            const c = conv(sid);
            if (!c) return send(200, { success: true, messages: [], mode: 'ai' });
            const out = c.outbox.splice(0);
            return send(200, { success: true, messages: out.map(({ id, content, created_at }) => ({ id, content, created_at })), mode: c.mode });
          }
          case 'POST stream': {
            if (typeof b.message !== 'string' || !b.message.trim() || !/^sess_/.test(sid || '')) {
              return send(400, { success: false, error: 'A message and a session are required.' });
            }
            const c = conv(sid, true);
            res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', ...cors });
            const ev = (o) => res.write(`data: ${JSON.stringify(o)}\n\n`);
            if (!c.messageIds.has(b.message_id)) {
              c.messageIds.add(b.message_id);
              c.messages.push({ id: id('msg_'), role: 'user', content: b.message, created_at: now() });
            }
            c.updatedAt = now();
            if (c.mode === 'operator') {
              ev({ type: 'done', meta: { conversation_id: c.conversationId, mode: 'operator' } });
              return res.end();
            }
            const answer = /password/i.test(b.message) ? FAQ_ANSWER
              : /^!\[image\]/.test(b.message) ? 'Thanks, I can see your image.' : "Sorry, I don't know that yet.";
            for (const word of answer.match(/\S+\s*/g)) { ev({ type: 'chunk', content: word }); await sleep(chunkDelayMs); }
            c.messages.push({ id: id('msg_'), role: 'assistant', content: answer, created_at: now() });
            ev({ type: 'done', meta: { conversation_id: c.conversationId, mode: 'ai' } });
            return res.end();
          }
          case 'POST rate': {
            const c = conv(sid);
            if (!c) return send(404, { success: false, error: 'There is no conversation to rate yet.' });
            if (!Number.isInteger(b.score) || b.score < 1 || b.score > 5) return send(422, { success: false, error: 'invalid_score' });
            c.rating = b.score;
            return send(200, { success: true });
          }
          case 'POST rate/comment': {
            const c = conv(sid);
            if (!c || !c.rating) return send(409, { success: false, error: 'Rate the chat first.' });
            c.ratingComment = String(b.comment || '').slice(0, 2000);
            return send(200, { success: true });
          }
          case 'POST email': {
            const c = conv(sid, true);
            if (!/^[^@\s]+@[^@\s]+$/.test(b.email || '')) return send(422, { success: false, error: 'That email address looks wrong.' });
            c.email = b.email;
            return send(200, { success: true });
          }
          case 'POST upload-image': {
            const raw = await body();
            const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(req.headers['content-type'] || '');
            if (!boundary) return send(400, { success: false, error: 'Expected multipart form data.' });
            const parts = raw.toString('latin1').split('--' + (boundary[1] || boundary[2]));
            const fields = {};
            let image = null;
            for (const part of parts) {
              const m = /^\r\n([\s\S]*?)\r\n\r\n([\s\S]*)\r\n$/.exec(part);
              if (!m) continue;
              const name = /name="([^"]+)"/.exec(m[1])?.[1];
              const type = /content-type:\s*([^\r\n]+)/i.exec(m[1])?.[1];
              if (name === 'image') image = { type: type || 'application/octet-stream', data: Buffer.from(m[2], 'latin1') };
              else if (name) fields[name] = m[2];
            }
            if (fields.site_key !== MOCK.siteKey || !fields.session_id || !image || !/^image\//.test(image.type)) {
              return send(422, { success: false, error: 'Send site_key, session_id and an image.' });
            }
            const key = id('img_');
            uploads.set(key, image);
            return send(200, { success: true, url: `http://${req.headers.host}/uploads/${key}` });
          }
          default:
            return send(404, { success: false, error: 'not_found' });
        }
      }

      // ---- the operator side: /v1/sites/{SITE_ID}/conversations
      const m = /^\/v1\/sites\/([^/]+)\/conversations(?:\/([^/]+)(?:\/(takeover|reply|release))?)?$/.exec(p);
      if (m) {
        if (req.headers.authorization !== `Bearer ${MOCK.apiKey}`) return send(401, { error: { code: 'unauthenticated', message: 'missing or invalid API key' } });
        if (m[1] !== MOCK.siteId) return send(404, { error: { code: 'not_found', message: 'site not found' } });
        if (!m[2] && req.method === 'GET') {
          const items = [...convs.values()].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt)).map(summary);
          return send(200, { items });
        }
        const c = byConvId(m[2]);
        if (!c) return send(404, { error: { code: 'not_found', message: 'conversation not found' } });
        if (!m[3] && req.method === 'GET') {
          return send(200, { ...summary(c), ratingComment: c.ratingComment, email: c.email,
            messages: c.messages.map(({ id, role, content, created_at }) => ({ id, role, content, createdAt: created_at })) });
        }
        if (m[3] === 'takeover' && req.method === 'POST') { c.mode = 'operator'; return send(200, summary(c)); }
        if (m[3] === 'release' && req.method === 'POST') { c.mode = 'ai'; return send(200, summary(c)); }
        if (m[3] === 'reply' && req.method === 'POST') {
          const b = await json();
          if (!b || typeof b.content !== 'string' || !b.content.trim()) return send(422, { error: { code: 'validation_error', message: 'content is required' } });
          const msg = { id: id('msg_'), role: 'operator', content: b.content, created_at: now() };
          c.messages.push(msg);
          c.outbox.push(msg);
          c.updatedAt = now();
          return send(201, { id: msg.id, role: 'operator', content: msg.content, createdAt: msg.created_at });
        }
      }
      send(404, { error: { code: 'not_found', message: 'no such route' } });
    } catch (e) {
      if (!res.headersSent) send(500, { success: false, error: String(e) });
      else res.end();
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const url = `http://${host}:${server.address().port}`;
  return { url, ...MOCK, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const m = await startMock({ port: Number(process.env.PORT || 0) });
  console.log(`mock tidechat on ${m.url}\n  TIDECHAT_URL=${m.url} TIDECHAT_API_KEY=${m.apiKey} SITE_KEY=${m.siteKey} SITE_ID=${m.siteId}`);
}
