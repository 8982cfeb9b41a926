/*! tidechat widget: <tidechat-widget site-key="sk_…" [api-base="https://host"] [lang="en"]>
 * Dependency-free Web Component, served by tidechat at GET /widget.js. Embed with:
 *   <tidechat-widget site-key="sk_…"></tidechat-widget>
 *   <script src="https://host/widget.js" async></script>
 * (or <script src="https://host/widget.js" data-site-key="sk_…" async>, which adds the element itself).
 * Every error is shown inside the widget; nothing is thrown to the host page. */
(function () {
  'use strict';
  if (typeof window === 'undefined' || !window.customElements || customElements.get('tidechat-widget')) return;

  // The default API base is the origin this script was loaded from (read now: currentScript is
  // only set while the script first runs).
  var script = document.currentScript;
  var SCRIPT_ORIGIN = location.origin;
  try { if (script && script.src) SCRIPT_ORIGIN = new URL(script.src, location.href).origin; } catch (e) { /* keep page origin */ }

  var POLL_MS = 3000;
  var T = {
    title: 'Chat',
    open: 'Open chat',
    close: 'Close chat',
    unread: function (n) { return n + ' new message' + (n === 1 ? '' : 's'); },
    message: 'Message',
    placeholder: 'Type your message…',
    send: 'Send',
    attach: 'Attach an image',
    you: 'You',
    assistant: 'Assistant',
    operator: 'Support',
    typing: 'Typing…',
    retry: 'Retry',
    notSent: 'Not sent.',
    waiting: 'Sent. A person will reply here.',
    interrupted: 'The reply was interrupted.',
    toPerson: "You're now chatting with a person.",
    toAi: "You're chatting with the assistant again.",
    blocked: "Sorry, you can't send messages in this chat.",
    rate: 'Rate this chat',
    star: function (n) { return 'Rate ' + n + ' out of 5'; },
    comment: 'Anything to add? (optional)',
    skip: 'Skip',
    thanks: 'Thanks for your feedback!',
    email: 'Your email (optional), so we can follow up',
    save: 'Save',
    dismiss: 'Dismiss',
    emailSaved: "Thanks, we'll follow up by email if needed.",
    uploading: 'Uploading image…',
    notImage: 'Please choose an image file.',
    uploadFailed: "The image couldn't be uploaded.",
    image: 'Image',
    network: "Couldn't reach the chat service. Check your connection and try again.",
    busy: "You're sending messages too quickly. Please wait a moment.",
    generic: 'Something went wrong. Please try again.',
    offline: 'Connection problem, retrying…'
  };

  var ICON = function (d) {
    return '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false" fill="none" stroke="currentColor" ' +
      'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="' + d + '"/></svg>';
  };
  var I_CHAT = ICON('M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z');
  var I_X = ICON('M18 6 6 18M6 6l12 12');
  var I_CLIP = ICON('m21.4 11.1-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5');
  var I_SEND = ICON('M22 2 11 13M22 2l-7 20-4-9-9-4z');

  var CSS = [
    ':host{all:initial}',
    ':host([hidden]){display:none}',
    '*,*::before,*::after{box-sizing:border-box}',
    '[hidden]{display:none!important}',
    '.root{--tc-primary:#2563eb;--tc-on-primary:#fff;--tc-bg:#fff;--tc-text:#1f2937;',
    '  --tc-soft:#f1f3f5;--tc-soft:color-mix(in srgb,var(--tc-text) 7%,var(--tc-bg));',
    '  --tc-line:rgba(0,0,0,.14);--tc-line:color-mix(in srgb,var(--tc-text) 18%,transparent);',
    '  position:fixed;right:20px;bottom:20px;z-index:2147483000;display:flex;flex-direction:column;align-items:flex-end;',
    '  gap:12px;pointer-events:none;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--tc-text)}',
    '.root>*{pointer-events:auto}',
    '.sr{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}',
    'button{font:inherit;color:inherit;cursor:pointer}',
    'button:disabled{cursor:default;opacity:.5}',
    ':focus-visible{outline:2px solid var(--tc-primary);outline-offset:2px}',
    'svg{width:20px;height:20px;display:block}',
    '.launcher{position:relative;width:56px;height:56px;border:0;border-radius:50%;display:grid;place-items:center;',
    '  background:var(--tc-primary);color:var(--tc-on-primary);box-shadow:0 4px 16px rgba(0,0,0,.25)}',
    '.launcher svg{width:26px;height:26px}',
    '.launcher .x,.launcher.open .chat{display:none}.launcher.open .x{display:block}',
    '.badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;',
    '  background:#dc2626;color:#fff;font-size:12px;font-weight:600;line-height:20px;text-align:center}',
    '.panel{width:370px;height:min(600px,calc(100vh - 110px));display:flex;flex-direction:column;overflow:hidden;',
    '  background:var(--tc-bg);color:var(--tc-text);border-radius:14px;box-shadow:0 12px 40px rgba(0,0,0,.25)}',
    'header{display:flex;align-items:center;gap:8px;padding:10px 10px 10px 16px;background:var(--tc-primary);color:var(--tc-on-primary)}',
    'h2{flex:1;margin:0;font-size:16px;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}',
    '.icon{flex:none;width:36px;height:36px;padding:0;border:0;border-radius:8px;background:transparent;display:grid;place-items:center}',
    '.icon:hover:not(:disabled){background:var(--tc-soft)}header .icon:hover{background:rgba(255,255,255,.18)}',
    '.log{flex:1;overflow-y:auto;overscroll-behavior:contain;padding:16px;display:flex;flex-direction:column;gap:8px}',
    '.msg{max-width:85%;padding:8px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere}',
    '.msg.user{align-self:flex-end;background:var(--tc-primary);color:var(--tc-on-primary);border-bottom-right-radius:4px}',
    '.msg.assistant,.msg.operator{align-self:flex-start;background:var(--tc-soft);border-bottom-left-radius:4px}',
    '.msg.operator{border-left:3px solid var(--tc-primary)}',
    '.msg a{color:inherit}',
    '.msg img{display:block;max-width:100%;max-height:240px;border-radius:8px}',
    '.who{display:block;font-size:12px;font-weight:600;opacity:.75}',
    '.typing::after{content:"";display:inline-block;width:1.2em;text-align:left;animation:tc-dots 1.2s steps(4) infinite}',
    '@keyframes tc-dots{0%{content:""}25%{content:"."}50%{content:".."}75%{content:"..."}}',
    '.status{align-self:flex-end;margin-top:-4px;font-size:12px;opacity:.75}',
    '.status.error{color:#b91c1c;opacity:1}',
    '.status button{border:0;background:none;padding:0 0 0 6px;text-decoration:underline;color:inherit}',
    '.note{align-self:center;max-width:90%;margin:0;padding:2px 8px;text-align:center;font-size:13px;opacity:.8}',
    '.note.error{color:#b91c1c;opacity:1}',
    '.bar{padding:8px 16px;border-top:1px solid var(--tc-line);font-size:13px}',
    '.bar label,.bar p{display:block;margin:0}',
    '.row{display:flex;gap:6px;align-items:center;margin-top:4px}',
    'input,textarea{flex:1;min-width:0;font:inherit;color:var(--tc-text);background:var(--tc-bg);border:1px solid var(--tc-line);border-radius:8px;padding:6px 8px}',
    '.btn{border:0;border-radius:8px;padding:6px 12px;background:var(--tc-primary);color:var(--tc-on-primary)}',
    '.btn.ghost{background:transparent;color:inherit}',
    '.rate{display:flex;align-items:center;gap:8px}',
    '.stars{display:flex}',
    '.stars button{border:0;background:none;padding:0 2px;font-size:22px;line-height:1;color:#9ca3af}',
    '.stars button.on,.stars:hover button:not(:disabled){color:#f59e0b}',
    '.stars button:hover~button:not(:disabled){color:#9ca3af}',
    '.composer{display:flex;align-items:flex-end;gap:6px;padding:10px;border-top:1px solid var(--tc-line)}',
    'textarea{resize:none;max-height:120px;padding:8px 10px;border-radius:10px;line-height:1.4}',
    '.send{background:var(--tc-primary);color:var(--tc-on-primary)}',
    '.send:hover:not(:disabled){background:var(--tc-primary);filter:brightness(1.1)}',
    '@media (max-width:480px){.root{right:12px;left:12px;bottom:12px}.panel{width:100%;height:calc(100vh - 96px)}}',
    '@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}'
  ].join('\n');

  var HTML =
    '<div class="root">' +
    '<div class="panel" id="panel" role="dialog" aria-modal="false" aria-label="' + T.title + '" hidden>' +
    '<header><h2 id="title">' + T.title + '</h2>' +
    '<button type="button" class="icon close" aria-label="' + T.close + '">' + I_X + '</button></header>' +
    '<form class="bar email" hidden novalidate><label for="email">' + T.email + '</label><div class="row">' +
    '<input id="email" type="email" autocomplete="email" maxlength="254" required>' +
    '<button type="submit" class="btn">' + T.save + '</button>' +
    '<button type="button" class="icon dismiss" aria-label="' + T.dismiss + '">' + I_X + '</button></div></form>' +
    '<div class="log" role="log" aria-live="polite" aria-relevant="additions text" aria-label="Messages"><span class="mark" hidden></span></div>' +
    '<div class="bar rating" hidden>' +
    '<div class="rate" role="group" aria-labelledby="rate-label"><span id="rate-label">' + T.rate + '</span><span class="stars"></span></div>' +
    '<form class="comment" hidden><label for="comment">' + T.comment + '</label><div class="row">' +
    '<input id="comment" maxlength="2000"><button type="submit" class="btn">' + T.send + '</button>' +
    '<button type="button" class="btn ghost skip">' + T.skip + '</button></div></form>' +
    '<p class="rate-msg" role="status"></p></div>' +
    '<form class="composer">' +
    '<button type="button" class="icon attach" aria-label="' + T.attach + '">' + I_CLIP + '</button>' +
    '<input class="file" type="file" accept="image/*" hidden tabindex="-1">' +
    '<label for="input" class="sr">' + T.message + '</label>' +
    '<textarea id="input" rows="1" maxlength="4000" placeholder="' + T.placeholder + '"></textarea>' +
    '<button type="submit" class="icon send" aria-label="' + T.send + '">' + I_SEND + '</button></form>' +
    '</div>' +
    '<button type="button" class="launcher" aria-label="' + T.open + '" aria-expanded="false" aria-controls="panel" aria-haspopup="dialog">' +
    '<span class="chat">' + I_CHAT + '</span><span class="x">' + I_X + '</span><span class="badge" aria-hidden="true" hidden></span></button>' +
    '</div>';

  // ---------------------------------------------------------------- helpers

  function hex(n) {
    var a = new Uint8Array(n);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }

  function uuid() {
    if (crypto.randomUUID) { try { return crypto.randomUUID(); } catch (e) { /* insecure context */ } }
    var h = hex(16).split('');
    h[12] = '4';
    h[16] = (8 | (parseInt(h[16], 16) & 3)).toString(16);
    h = h.join('');
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-');
  }

  function ChatError(message) { this.message = message; }

  // A readable sentence from a failed response: server sentences are shown, bare codes are not.
  function errorText(status, data) {
    if (status === 429) return T.busy;
    var e = data && (data.message || data.error);
    var msg = typeof e === 'string' ? e : (e && e.message);
    if (msg && /\s/.test(msg)) return msg;
    return T.generic;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function validColor(v) {
    var css = window.CSS; // (the name CSS is this file's style sheet)
    return typeof v === 'string' && v.length < 64 && !!css && !!css.supports && css.supports('color', v);
  }

  // Black or white text on a background colour (hex only; anything else keeps white).
  function onColor(c) {
    var m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(c || '');
    if (!m) return '#fff';
    var h = m[1].length === 3 ? m[1].replace(/./g, '$&$&') : m[1];
    var lin = function (i) {
      var v = parseInt(h.substr(i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    var l = 0.2126 * lin(0) + 0.7152 * lin(2) + 0.0722 * lin(4);
    return l > 0.4 ? '#111' : '#fff';
  }

  var IMAGE_MD = /^!\[([^\]]*)\]\((\S+?)\)$/;
  var URL_RE = /(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/;

  // Reads a server-sent-event body. Each `data:` line holding a whole JSON object is handled at
  // once (so a stream without blank separators still works); other data lines are joined until
  // the blank line that ends the event, as SSE specifies. `[DONE]` and comments are ignored.
  async function readSSE(res, onEvent) {
    var pending = [];
    function handle(data) {
      data = data.trim();
      if (!data || data === '[DONE]') return true;
      var ev;
      try { ev = JSON.parse(data); } catch (e) { return false; }
      if (ev && typeof ev === 'object') onEvent(ev);
      return true;
    }
    function line(l) {
      if (l.charAt(l.length - 1) === '\r') l = l.slice(0, -1);
      if (l === '') { if (pending.length) handle(pending.join('\n')); pending = []; return; }
      if (l.slice(0, 5) !== 'data:') return; // comments, event:, id:, retry:
      var v = l.slice(5);
      if (v.charAt(0) === ' ') v = v.slice(1);
      if (!pending.length && handle(v)) return;
      pending.push(v);
    }
    if (!res.body || !res.body.getReader) {
      (await res.text()).split('\n').forEach(line);
      line('');
      return;
    }
    var reader = res.body.getReader();
    var dec = new TextDecoder();
    var buf = '';
    for (;;) {
      var r = await reader.read();
      if (r.done) break;
      buf += dec.decode(r.value, { stream: true });
      var lines = buf.split('\n');
      buf = lines.pop();
      lines.forEach(line);
    }
    buf += dec.decode();
    if (buf) line(buf);
    line('');
  }

  // ---------------------------------------------------------------- the element

  class TidechatWidget extends HTMLElement {
    static get observedAttributes() { return ['site-key']; }

    constructor() {
      super();
      var root = this.attachShadow({ mode: 'open' });
      root.innerHTML = '<style>' + CSS + '</style>' + HTML;
      var $ = function (s) { return root.querySelector(s); };
      this.$ = {
        root: $('.root'), launcher: $('.launcher'), badge: $('.badge'), panel: $('.panel'), title: $('h2'),
        close: $('.close'), log: $('.log'), mark: $('.mark'), email: $('.email'), emailInput: $('#email'),
        dismiss: $('.dismiss'), rating: $('.rating'), stars: $('.stars'), comment: $('.comment'),
        commentInput: $('#comment'), skip: $('.skip'), rateMsg: $('.rate-msg'), composer: $('.composer'),
        input: $('#input'), send: $('.send'), attach: $('.attach'), file: $('.file')
      };
      for (var n = 1; n <= 5; n++) {
        var b = el('button', '', '★');
        b.type = 'button';
        b.value = n;
        b.setAttribute('aria-label', T.star(n));
        b.setAttribute('aria-pressed', 'false');
        this.$.stars.appendChild(b);
      }
      this._bind();
      this._timers = [];
      this._reset();
    }

    get siteKey() { return (this.getAttribute('site-key') || '').trim(); }
    get apiBase() { return (this.getAttribute('api-base') || SCRIPT_ORIGIN).replace(/\/+$/, ''); }
    get lang() { return this.getAttribute('lang') || document.documentElement.lang || 'en'; }
    get sessionId() { return this._state.session_id; }
    get conversationId() { return this._state.conversation_id || null; }

    connectedCallback() { this._start(); }

    disconnectedCallback() { this._stop(); }

    attributeChangedCallback(name, old, val) {
      if (old === val || !this._started) return;
      this._stop();
      this._reset();
      this._start();
    }

    // ------------------------------------------------------------ lifecycle

    _reset() {
      var $ = this.$;
      this._started = false;
      this._open = false;
      this._mode = null;
      this._sending = false;
      this._blocked = false;
      this._blockChecked = false;
      this._history = null; // promise of the first successful history load
      this._replied = false;
      this._seen = new Set();
      this._unread = 0;
      this._pollFailures = 0;
      this._greeting = null;
      this._state = {};
      while ($.mark.previousSibling) $.log.removeChild($.mark.previousSibling);
      while ($.mark.nextSibling) $.log.removeChild($.mark.nextSibling);
      $.panel.hidden = true;
      $.rating.hidden = true;
      $.email.hidden = true;
      this._setUnread(0);
      this._syncComposer();
    }

    _start() {
      if (this._started || !this.isConnected) return;
      if (!this.siteKey) { console.warn('tidechat-widget: the site-key attribute is missing'); return; }
      this._started = true;
      this._state = this._load();
      if (!this._state.session_id) { this._state.session_id = 'sess_' + hex(16); this._save(); }
      this._loadConfig();
      this._loadProactive();
      if (this._open) this._onOpen();
    }

    _stop() {
      this._stopPolling();
      this._timers.forEach(clearTimeout);
      this._timers = [];
      this._started = false;
    }

    // Per-site-key state in localStorage (falls back to memory where storage is unavailable).
    _key() { return 'tidechat:' + this.siteKey; }

    _load() {
      try { return JSON.parse(localStorage.getItem(this._key())) || {}; } catch (e) { return {}; }
    }

    _save() {
      try { localStorage.setItem(this._key(), JSON.stringify(this._state)); } catch (e) { /* memory only */ }
    }

    // ------------------------------------------------------------ events

    _bind() {
      var $ = this.$;
      var self = this;
      $.launcher.addEventListener('click', function () { self._open ? self.close() : self.open(); });
      $.close.addEventListener('click', function () { self.close(); });
      $.root.addEventListener('keydown', function (e) {
        if (e.key === 'Escape' && self._open) { e.preventDefault(); e.stopPropagation(); self.close(); }
      });
      $.input.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
          e.preventDefault();
          self._submit();
        }
      });
      $.input.addEventListener('input', function () { self._grow(); });
      $.composer.addEventListener('submit', function (e) { e.preventDefault(); self._submit(); });
      $.attach.addEventListener('click', function () { $.file.click(); });
      $.file.addEventListener('change', function () {
        var f = $.file.files && $.file.files[0];
        $.file.value = '';
        if (f) self._upload(f);
      });
      $.stars.addEventListener('click', function (e) {
        var b = e.target.closest('button');
        if (b && !b.disabled) self._rate(+b.value);
      });
      $.comment.addEventListener('submit', function (e) { e.preventDefault(); self._sendComment(); });
      $.skip.addEventListener('click', function () { self._ratingDone(); });
      $.email.addEventListener('submit', function (e) { e.preventDefault(); self._sendEmail(); });
      $.dismiss.addEventListener('click', function () {
        $.email.hidden = true;
        self._state.email_dismissed = true;
        self._save();
        $.input.focus();
      });
    }

    open() {
      if (this._open) return;
      this._open = true;
      var $ = this.$;
      $.panel.hidden = false;
      $.launcher.classList.add('open');
      $.launcher.setAttribute('aria-expanded', 'true');
      $.launcher.setAttribute('aria-label', T.close);
      this._setUnread(0);
      this._scroll();
      (this._blocked ? $.close : $.input).focus();
      this._onOpen();
    }

    close() {
      if (!this._open) return;
      this._open = false;
      var $ = this.$;
      var hadFocus = this.shadowRoot.activeElement && $.panel.contains(this.shadowRoot.activeElement);
      $.panel.hidden = true;
      $.launcher.classList.remove('open');
      $.launcher.setAttribute('aria-expanded', 'false');
      this._setUnread(this._unread);
      this._stopPolling();
      if (hadFocus || this.shadowRoot.activeElement === $.launcher || !this.shadowRoot.activeElement) $.launcher.focus();
    }

    _onOpen() {
      if (!this._started) return;
      this._loadHistory();
      this._checkBlock();
      this._startPolling();
    }

    // ------------------------------------------------------------ HTTP

    async _request(path, opts) {
      opts = opts || {};
      var url = new URL(this.apiBase + path);
      var q = opts.query || {};
      Object.keys(q).forEach(function (k) { if (q[k] != null) url.searchParams.set(k, q[k]); });
      var init = { method: opts.method || 'GET', credentials: 'omit', headers: {} };
      if (opts.json) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(opts.json);
      } else if (opts.form) {
        init.body = opts.form;
      }
      try { return await fetch(url.href, init); } catch (e) { throw new ChatError(T.network); }
    }

    async _call(path, opts) {
      var res = await this._request(path, opts);
      var data = null;
      try { data = await res.json(); } catch (e) { /* not JSON */ }
      if (!res.ok || !data || data.success === false) throw new ChatError(errorText(res.status, data));
      return data;
    }

    _ids() { return { site_key: this.siteKey, session_id: this.sessionId }; }

    // ------------------------------------------------------------ loading

    async _loadConfig() {
      var $ = this.$;
      try {
        var d = await this._call('/api/v1/chat/config', { query: { site_key: this.siteKey } });
        if (typeof d.name === 'string' && d.name.trim()) {
          $.title.textContent = d.name;
          $.panel.setAttribute('aria-label', d.name);
        }
        var c = d.colors || {};
        var st = $.root.style;
        if (validColor(c.primary)) { st.setProperty('--tc-primary', c.primary); st.setProperty('--tc-on-primary', onColor(c.primary)); }
        if (validColor(c.background)) st.setProperty('--tc-bg', c.background);
        if (validColor(c.text)) st.setProperty('--tc-text', c.text);
        if (typeof d.greeting === 'string' && d.greeting.trim() && !this._greeting) {
          this._greeting = this._bubble('assistant', d.greeting, { before: $.log.firstChild });
          this._greeting.dataset.greeting = '';
        }
        if (d.ask_email && !this._state.email && !this._state.email_dismissed) $.email.hidden = false;
      } catch (e) {
        this._note(e.message, true);
      }
    }

    _loadHistory() {
      var self = this;
      if (this._history) return this._history;
      var p = this._call('/api/v1/chat/history', { query: this._ids() }).then(function (d) {
        (Array.isArray(d.messages) ? d.messages : []).forEach(function (m) {
          if (!m || typeof m.content !== 'string' || self._isSeen(m.id)) return;
          var role = m.role === 'user' || m.role === 'operator' ? m.role : 'assistant';
          self._bubble(role, m.content, { before: self.$.mark, time: m.created_at });
          if (role !== 'user') self._replied = true;
        });
        self._maybeShowRating();
        self._scroll();
      }, function (e) {
        self._history = null; // try again on the next open or send
        self._note(e.message, true);
      });
      this._history = p;
      return p;
    }

    async _checkBlock() {
      if (this._blockChecked) return;
      this._blockChecked = true;
      try {
        var d = await this._call('/api/v1/chat/block-status', { query: this._ids() });
        if (d.blocked) this._setBlocked(typeof d.message === 'string' && d.message ? d.message : T.blocked);
      } catch (e) {
        this._blockChecked = false; // not fatal: the server refuses blocked visitors anyway
      }
    }

    _setBlocked(text) {
      if (this._blocked) return;
      this._blocked = true;
      this._note(text, true);
      this._syncComposer();
      this.$.email.hidden = true;
    }

    async _loadProactive() {
      var self = this;
      try {
        var d = await this._call('/api/v1/chat/pending-proactive', {
          query: { site_key: this.siteKey, session_id: this.sessionId, url: location.href }
        });
        (Array.isArray(d.messages) ? d.messages : []).forEach(function (m) {
          if (!m || typeof m.content !== 'string') return;
          var delay = Math.min(Math.max(Number(m.delay_seconds) || 0, 0), 86400) * 1000;
          self._timers.push(setTimeout(function () {
            if (self._isSeen(m.id)) return;
            self._bubble('assistant', m.content);
            if (!self._open) self._setUnread(self._unread + 1);
          }, delay));
        });
      } catch (e) {
        /* proactive messages are optional; stay quiet */
      }
    }

    // ------------------------------------------------------------ operator polling

    _startPolling() {
      if (this._pollTimer) return;
      var self = this;
      this._poll();
      this._pollTimer = setInterval(function () { self._poll(); }, POLL_MS);
    }

    _stopPolling() {
      clearInterval(this._pollTimer);
      this._pollTimer = null;
    }

    async _poll() {
      if (this._polling || document.hidden || !this._started) return;
      this._polling = true;
      var self = this;
      try {
        var d = await this._call('/api/v1/chat/operator-messages', { query: this._ids() });
        if (this._pollFailures >= 3 && this._offlineNote) { this._offlineNote.remove(); this._offlineNote = null; }
        this._pollFailures = 0;
        if (d.mode) this._setMode(d.mode); // the notice goes before the operator's first message
        (Array.isArray(d.messages) ? d.messages : []).forEach(function (m) {
          if (!m || typeof m.content !== 'string' || self._isSeen(m.id)) return;
          self._bubble('operator', m.content, { time: m.created_at });
          self._replied = true;
          if (!self._open) self._setUnread(self._unread + 1);
        });
        this._maybeShowRating();
      } catch (e) {
        if (++this._pollFailures === 3) this._offlineNote = this._note(T.offline, true);
      } finally {
        this._polling = false;
      }
    }

    _setMode(mode) {
      if ((mode !== 'ai' && mode !== 'operator') || mode === this._mode) return;
      var first = this._mode == null;
      this._mode = mode;
      if (first && mode === 'ai') return;
      this._note(mode === 'operator' ? T.toPerson : T.toAi).dataset.mode = mode;
    }

    // ------------------------------------------------------------ sending

    _submit() {
      var text = this.$.input.value.trim();
      if (!text || this._sending || this._blocked) return;
      this.$.input.value = '';
      this._grow();
      this._send(text);
    }

    // Streams one turn. `retry` = {id, user, reply} resends with the same message_id.
    async _send(text, retry) {
      if (this._sending || this._blocked) return;
      retry = retry || {};
      this._sending = true;
      this._syncComposer();
      var self = this;
      var id = retry.id || uuid();
      var user = retry.user || this._bubble('user', text);
      if (retry.reply) retry.reply.remove();
      this._clearStatus(user);
      if (this._history) await this._history;
      else await this._loadHistory();

      var reply = this._bubble('assistant', '');
      var body = reply.querySelector('.body');
      body.classList.add('typing');
      body.textContent = T.typing;
      reply.setAttribute('aria-busy', 'true');
      var acc = '';
      var done = null;
      var failure = null;
      var render = function () {
        body.classList.remove('typing');
        self._setContent(body, acc);
        self._scroll();
      };
      try {
        var res = await this._request('/api/v1/chat/stream', {
          method: 'POST',
          json: { site_key: this.siteKey, session_id: this.sessionId, message: text, lang: this.lang, message_id: id }
        });
        if (!res.ok) {
          var data = null;
          try { data = await res.json(); } catch (e) { /* not JSON */ }
          if (res.status === 403 && data && (data.blocked || data.error === 'blocked')) {
            this._setBlocked(T.blocked);
          }
          throw new ChatError(errorText(res.status, data));
        }
        await readSSE(res, function (ev) {
          if (ev.type === 'chunk' && typeof ev.content === 'string') { acc += ev.content; render(); }
          else if (ev.type === 'replace' && typeof ev.content === 'string') { acc = ev.content; render(); }
          else if (ev.type === 'error') failure = errorText(0, ev);
          else if (ev.type === 'done') done = ev.meta || {};
        });
      } catch (e) {
        failure = e instanceof ChatError ? e.message : T.network;
      }
      reply.removeAttribute('aria-busy');
      if (done && typeof done.conversation_id === 'string') {
        this._state.conversation_id = done.conversation_id;
        this._save();
      }
      if (done && done.mode) this._setMode(done.mode);

      if (acc && (done || !failure)) {
        // A whole reply, or text that the stream cut off without an error: keep it.
        if (!done) this._status(user, T.interrupted);
        this._replied = true;
        this._maybeShowRating();
      } else if (done && !failure) {
        reply.remove(); // operator mode: no reply from the assistant, the operator answers by polling
        this._status(user, T.waiting);
      } else {
        if (!acc) reply.remove();
        var st = this._status(user, failure || T.interrupted + ' ' + T.notSent, true);
        var again = el('button', '', T.retry);
        again.type = 'button';
        again.addEventListener('click', function () {
          self._send(text, { id: id, user: user, reply: acc ? reply : null });
        });
        st.appendChild(again);
      }
      this._sending = false;
      this._syncComposer();
      this._scroll();
    }

    async _upload(file) {
      if (this._sending || this._blocked) return;
      if (!/^image\//.test(file.type)) { this._note(T.notImage, true); return; }
      var user = this._bubble('user', T.uploading);
      user.setAttribute('aria-busy', 'true');
      this._sending = true; // no other send while the image uploads
      this._syncComposer();
      var form = new FormData();
      form.append('site_key', this.siteKey);
      form.append('session_id', this.sessionId);
      form.append('image', file, file.name || 'image');
      try {
        var d = await this._call('/api/v1/chat/upload-image', { method: 'POST', form: form });
        if (typeof d.url !== 'string' || !this._safeUrl(d.url)) throw new ChatError(T.generic);
        var md = '![image](' + d.url + ')';
        user.removeAttribute('aria-busy');
        this._setContent(user.querySelector('.body'), md);
        this._sending = false;
        this._send(md, { user: user });
      } catch (e) {
        this._sending = false;
        this._syncComposer();
        user.remove();
        this._note(T.uploadFailed + ' ' + e.message, true);
      }
    }

    // ------------------------------------------------------------ rating and email

    _maybeShowRating() {
      if (this._replied && !this._state.rated && this.$.rating.hidden && !this._ratingFinished) this.$.rating.hidden = false;
    }

    async _rate(score) {
      var $ = this.$;
      var stars = $.stars.querySelectorAll('button');
      stars.forEach(function (b) { b.disabled = true; });
      $.rateMsg.textContent = '';
      try {
        await this._call('/api/v1/chat/rate', { method: 'POST', json: { site_key: this.siteKey, session_id: this.sessionId, score: score } });
        this._state.rated = score;
        this._save();
        stars.forEach(function (b) {
          b.classList.toggle('on', +b.value <= score);
          b.setAttribute('aria-pressed', String(+b.value === score));
        });
        $.comment.hidden = false;
        $.commentInput.focus();
      } catch (e) {
        stars.forEach(function (b) { b.disabled = false; });
        $.rateMsg.textContent = e.message;
      }
    }

    async _sendComment() {
      var $ = this.$;
      var comment = $.commentInput.value.trim();
      if (!comment) { this._ratingDone(); return; }
      var buttons = $.comment.querySelectorAll('button');
      buttons.forEach(function (b) { b.disabled = true; });
      try {
        await this._call('/api/v1/chat/rate/comment', {
          method: 'POST', json: { site_key: this.siteKey, session_id: this.sessionId, comment: comment }
        });
        this._ratingDone();
      } catch (e) {
        $.rateMsg.textContent = e.message;
      }
      buttons.forEach(function (b) { b.disabled = false; });
    }

    _ratingDone() {
      var $ = this.$;
      this._ratingFinished = true;
      $.comment.hidden = true;
      $.rating.querySelector('.rate').hidden = true;
      $.rateMsg.textContent = T.thanks;
      $.input.focus();
    }

    async _sendEmail() {
      var $ = this.$;
      var email = $.emailInput.value.trim();
      if (!email || !$.emailInput.checkValidity()) {
        $.emailInput.setAttribute('aria-invalid', 'true');
        $.emailInput.focus();
        return;
      }
      $.emailInput.removeAttribute('aria-invalid');
      try {
        await this._call('/api/v1/chat/email', { method: 'POST', json: { site_key: this.siteKey, session_id: this.sessionId, email: email } });
        this._state.email = true;
        this._save();
        $.email.hidden = true;
        this._note(T.emailSaved);
        $.input.focus();
      } catch (e) {
        this._note(e.message, true);
      }
    }

    // ------------------------------------------------------------ rendering

    _isSeen(id) {
      if (id == null) return false;
      if (this._seen.has(String(id))) return true;
      this._seen.add(String(id));
      return false;
    }

    _bubble(role, content, opts) {
      opts = opts || {};
      var who = { user: T.you, assistant: T.assistant, operator: T.operator }[role];
      var m = el('div', 'msg ' + role);
      m.dataset.role = role;
      m.appendChild(el('span', role === 'operator' ? 'who' : 'sr', who + (role === 'operator' ? '' : ': ')));
      if (role === 'operator') m.firstChild.appendChild(el('span', 'sr', ': '));
      var body = el('div', 'body');
      m.appendChild(body);
      this._setContent(body, content);
      if (opts.time) {
        var t = new Date(opts.time);
        if (!isNaN(t)) m.title = t.toLocaleString();
      }
      this.$.log.insertBefore(m, opts.before || null);
      if (!opts.before) this._scroll();
      return m;
    }

    _note(text, error) {
      var n = el('p', 'note' + (error ? ' error' : ''), text);
      n.dataset.role = 'notice';
      this.$.log.appendChild(n);
      this._scroll();
      return n;
    }

    _status(msg, text, error) {
      this._clearStatus(msg);
      var s = el('div', 'status' + (error ? ' error' : ''), text);
      msg.after(s);
      msg._status = s;
      return s;
    }

    _clearStatus(msg) {
      if (msg._status) msg._status.remove();
      msg._status = null;
    }

    _safeUrl(u) {
      try {
        var url = new URL(u, this.apiBase + '/');
        return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
      } catch (e) { return null; }
    }

    // Text with clickable links; a message that is only `![alt](url)` is shown as the image.
    _setContent(body, text) {
      body.textContent = '';
      var img = IMAGE_MD.exec(text.trim());
      var src = img && this._safeUrl(img[2]);
      if (src) {
        var a = el('a');
        a.href = src;
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
        var i = el('img');
        i.src = src;
        i.alt = img[1] && img[1] !== 'image' ? img[1] : T.image;
        i.loading = 'lazy';
        i.addEventListener('load', this._scroll.bind(this));
        a.appendChild(i);
        body.appendChild(a);
        return;
      }
      text.split(URL_RE).forEach(function (part, k) {
        if (k % 2) {
          var link = el('a', '', part);
          link.href = part;
          link.target = '_blank';
          link.rel = 'noopener noreferrer';
          body.appendChild(link);
        } else if (part) {
          body.appendChild(document.createTextNode(part));
        }
      });
    }

    _scroll() {
      var log = this.$.log;
      log.scrollTop = log.scrollHeight;
    }

    _grow() {
      var t = this.$.input;
      t.style.height = 'auto';
      t.style.height = Math.min(t.scrollHeight + 2, 120) + 'px';
    }

    _syncComposer() {
      var $ = this.$;
      $.input.disabled = this._blocked;
      $.send.disabled = this._blocked || this._sending;
      $.attach.disabled = this._blocked || this._sending;
    }

    _setUnread(n) {
      var $ = this.$;
      this._unread = n;
      $.badge.hidden = !n || this._open;
      $.badge.textContent = n > 9 ? '9+' : String(n);
      if (!this._open) $.launcher.setAttribute('aria-label', n ? T.open + ', ' + T.unread(n) : T.open);
    }
  }

  customElements.define('tidechat-widget', TidechatWidget);

  // <script src=".../widget.js" data-site-key="sk_…"> adds the element by itself.
  var key = script && script.getAttribute('data-site-key');
  if (key) {
    var add = function () {
      if (document.querySelector('tidechat-widget[site-key="' + key.replace(/["\\]/g, '') + '"]')) return;
      var w = document.createElement('tidechat-widget');
      w.setAttribute('site-key', key);
      ['api-base', 'lang'].forEach(function (a) {
        var v = script.getAttribute('data-' + a);
        if (v) w.setAttribute(a, v);
      });
      document.body.appendChild(w);
    };
    if (document.body) add(); else document.addEventListener('DOMContentLoaded', add);
  }
})();
