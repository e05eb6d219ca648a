// The chat page. It speaks the Botkit Anywhere protocol to the server that
// served it, over a websocket to the page's own origin, or over the webhook
// channel (POST /api/messages) where websockets are unavailable.
//
// Options, in the page's query string (embed.js sets them for the iframe):
//   title=TEXT        the heading and the document title
//   color=#RRGGBB     the accent colour
//   transport=auto    websocket, falling back to the webhook channel when a
//                     websocket cannot be opened but HTTP works (the default);
//                     `websocket` never falls back; `webhook` never tries one
//   embed=1           laid out for an iframe, with a close button that asks
//                     the host page (embed.js) to close it
// and in its fragment, so that they never reach a server log:
//   #user=ID&token=HEX   a site's own signed identity for its logged-in user
//
// The user's id lives in the botkit_guid cookie, as with Botkit's client, so
// both clients share users (and in localStorage, for iframes where a cookie
// cannot be kept); the identity token lives in localStorage. History is shown
// on load, a reconnect asks for what was missed with last_seq, and a bot
// message is never shown twice (its seq is remembered).
//
// Every message the person sends carries a random `mid` and stays pending,
// shown as "sending…", until the server acknowledges it (an `ack` frame, or
// over the webhook channel the 2xx answer to its POST, which names it in
// X-Anywhere-Ack); pending ones are kept in localStorage too, so a reload
// shows them again and sends them. After each greeting the page sends every
// pending message again, in the order they were typed, before anything new;
// the server takes a repeated `mid` once, and the page shows each of its
// messages once (by `mid`, including in history). What is typed while the
// connection is down is simply pending. Bot text is rendered from a small
// markdown subset into DOM nodes, never as HTML.
(function () {
  'use strict';

  var HISTORY_LIMIT = 50;
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  var POLL_MS = 4000; // webhook channel: how often to look for pushed messages
  var RATE_RETRY_MS = 1500; // a message refused as rate_limited is sent again after this

  var params = new URLSearchParams(location.search);
  var hash = new URLSearchParams(location.hash.slice(1));
  var el = {
    list: document.getElementById('messages'),
    form: document.getElementById('composer'),
    input: document.getElementById('text'),
    send: document.getElementById('send'),
    typing: document.getElementById('typing'),
    status: document.getElementById('status'),
    title: document.getElementById('title'),
    close: document.getElementById('close'),
  };

  // --- options ---
  var title = params.get('title');
  if (title) {
    el.title.textContent = title;
    document.title = title;
  }
  var color = params.get('color');
  if (color && /^#?[0-9a-fA-F]{3,8}$/.test(color)) {
    document.documentElement.style.setProperty('--me', color.charAt(0) === '#' ? color : '#' + color);
  }
  var transport = params.get('transport') || 'auto';
  if (params.get('webhook') === '1') transport = 'webhook';
  if (params.get('embed') === '1') {
    document.body.classList.add('embedded');
    el.close.hidden = false;
    var askClose = function () { window.parent.postMessage({ anywhere: 'close' }, '*'); };
    el.close.addEventListener('click', askClose);
    document.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') askClose();
    });
  }

  // --- identity ---
  var storage = (function () {
    try {
      var s = window.localStorage;
      s.setItem('anywhere:probe', '1');
      s.removeItem('anywhere:probe');
      return s;
    } catch (e) {
      var mem = {};
      return {
        getItem: function (k) { return Object.prototype.hasOwnProperty.call(mem, k) ? mem[k] : null; },
        setItem: function (k, v) { mem[k] = String(v); },
        removeItem: function (k) { delete mem[k]; },
      };
    }
  })();
  function readCookie(name) {
    var m = document.cookie.match(new RegExp('(?:^|; )' + name + '=([^;]*)'));
    return m ? decodeURIComponent(m[1]) : null;
  }
  function newId() {
    var a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }
  var user = hash.get('user') || readCookie('botkit_guid') || storage.getItem('anywhere:user');
  var returning = !!user;
  if (!user) user = newId();
  var secure = location.protocol === 'https:' ? '; SameSite=None; Secure' : '; SameSite=Lax';
  document.cookie = 'botkit_guid=' + encodeURIComponent(user) + '; max-age=31536000; path=/' + secure;
  storage.setItem('anywhere:user', user);
  var tokenKey = 'anywhere:token:' + user;
  if (hash.get('token')) storage.setItem(tokenKey, hash.get('token'));
  if (hash.get('user') || hash.get('token')) history.replaceState(null, '', location.pathname + location.search);
  function token() { return storage.getItem(tokenKey); }
  function setToken(t) {
    if (t) storage.setItem(tokenKey, t);
    else storage.removeItem(tokenKey);
  }

  // --- rendering, safely: text nodes and a few elements, never HTML ---
  function safeUrl(u) {
    if (typeof u !== 'string' || u === '') return null;
    try {
      var url = new URL(u, location.href);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (e) {
      return null;
    }
  }
  function link(href, text, className) {
    var a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    if (className) a.className = className;
    return a;
  }
  // **bold**, *italic*, `code`, [text](http…) and bare http(s) links.
  var INLINE = /(\*\*([^*]+)\*\*)|(\*([^*\s][^*]*)\*)|(`([^`]+)`)|(\[([^\]]+)\]\(([^)\s]+)\))|(https?:\/\/[^\s<]+[^\s<.,;:!?)'"])/;
  function renderText(parent, text) {
    var rest = typeof text === 'string' ? text : text == null ? '' : String(text);
    while (rest.length) {
      var m = INLINE.exec(rest);
      if (!m) {
        parent.appendChild(document.createTextNode(rest));
        break;
      }
      if (m.index) parent.appendChild(document.createTextNode(rest.slice(0, m.index)));
      var node, href;
      if (m[1]) {
        node = document.createElement('strong');
        node.textContent = m[2];
      } else if (m[3]) {
        node = document.createElement('em');
        node.textContent = m[4];
      } else if (m[5]) {
        node = document.createElement('code');
        node.textContent = m[6];
      } else if (m[7]) {
        href = safeUrl(m[9]);
        node = href ? link(href, m[8]) : document.createTextNode(m[0]);
      } else {
        href = safeUrl(m[10]);
        node = href ? link(href, m[10]) : document.createTextNode(m[0]);
      }
      parent.appendChild(node);
      rest = rest.slice(m.index + m[0].length);
    }
  }
  function atBottom() {
    return el.list.scrollHeight - el.list.scrollTop - el.list.clientHeight < 80;
  }
  function scrollDown() {
    el.list.scrollTop = el.list.scrollHeight;
  }
  function timeOf(ts) {
    var d = new Date(typeof ts === 'number' ? ts : Date.now());
    return d.toLocaleString([], { hour: '2-digit', minute: '2-digit', day: 'numeric', month: 'short' });
  }
  // Adds a message to the list; `who` is 'me', 'bot' or 'notice'.
  function addMessage(msg, who) {
    var stick = atBottom();
    var li = document.createElement('li');
    li.className = 'msg ' + who;
    var body = document.createElement('div');
    body.className = 'text';
    if (who === 'bot') renderText(body, msg.text);
    else body.textContent = msg.text == null ? '' : String(msg.text);
    var label = document.createElement('span');
    label.className = 'sr';
    label.textContent = who === 'me' ? 'You: ' : who === 'bot' ? 'Bot: ' : '';
    var person = who === 'bot' && typeof msg.operator === 'string' && msg.operator ? msg.operator : null;
    if (person) {
      // A person of the site's answers (a handoff): their name stands above what they say.
      li.className += ' person' + (msg.handoff ? ' handoff' : '');
      label.className = 'from';
      label.textContent = person;
      label.setAttribute('aria-label', person + ' (a person): ');
    }
    li.appendChild(label);
    li.appendChild(body);
    if (who !== 'notice') li.title = timeOf(msg.ts);
    if (who === 'bot') decorate(li, msg);
    el.list.appendChild(li);
    if (stick || who === 'me') scrollDown();
    return li;
  }
  function clearQuickReplies() {
    Array.prototype.forEach.call(el.list.querySelectorAll('.quick'), function (q) { q.remove(); });
  }
  function decorate(li, msg) {
    (Array.isArray(msg.files) ? msg.files : []).forEach(function (f) {
      var href = safeUrl(f && f.url);
      if (!href) return;
      if (f.image) {
        var img = document.createElement('img');
        img.src = href;
        img.alt = typeof f.name === 'string' ? f.name : 'image';
        img.loading = 'lazy';
        img.addEventListener('load', function () { if (atBottom()) scrollDown(); });
        li.appendChild(img);
      } else {
        var name = typeof f.name === 'string' && f.name ? f.name : decodeURIComponent(href.split('/').pop() || href);
        li.appendChild(link(href, name, 'file'));
      }
    });
    var open = safeUrl(msg.open_link);
    if (open) {
      li.appendChild(link(open, typeof msg.link_title === 'string' && msg.link_title ? msg.link_title : 'Open', 'button'));
    }
    var quick = Array.isArray(msg.quick_replies) ? msg.quick_replies : [];
    quick = quick.filter(function (q) { return q && (typeof q.title === 'string' || typeof q.payload === 'string'); });
    if (quick.length) {
      clearQuickReplies();
      var box = document.createElement('div');
      box.className = 'quick';
      box.setAttribute('role', 'group');
      box.setAttribute('aria-label', 'Suggested replies');
      quick.forEach(function (q) {
        var b = document.createElement('button');
        var label = typeof q.title === 'string' ? q.title : q.payload;
        b.type = 'button';
        b.textContent = label;
        b.addEventListener('click', function () {
          clearQuickReplies();
          say(typeof q.payload === 'string' && q.payload ? q.payload : label, label);
          el.input.focus();
        });
        box.appendChild(b);
      });
      li.appendChild(box);
    }
  }
  function notice(text) {
    addMessage({ text: text }, 'notice');
  }

  // --- what the server sends ---
  var shown = {}; // seq -> true: each bot message is shown once
  var highest = 0; // the highest seq this page has shown: its last_seq
  var typingTimer = null;
  var typingLabel = el.typing.querySelector('.sr');
  function showTyping(who) {
    var stick = atBottom();
    typingLabel.textContent = who ? who + ' is typing' : 'The bot is typing';
    el.typing.hidden = false;
    if (stick) scrollDown();
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, 10000);
  }
  function hideTyping() {
    clearTimeout(typingTimer);
    el.typing.hidden = true;
  }
  // Shows a bot message unless it was shown already; `live` is false for
  // history, whose navigation and input settings are of the past.
  function showBot(msg, live) {
    var seq = typeof msg.seq === 'number' ? msg.seq : 0;
    if (seq) {
      if (shown[seq]) return false;
      shown[seq] = true;
      if (seq > highest) highest = seq;
    }
    addMessage(msg, 'bot');
    if (msg.handoff === 'joined' || (typeof msg.operator === 'string' && msg.operator && msg.handoff !== 'ended')) {
      personHere = msg.operator;
    } else if (msg.handoff === 'ended' || (live && !msg.operator)) {
      personHere = null;
    }
    if (live) {
      setInputDisabled(!!msg.disable_input);
      var go = safeUrl(msg.goto_link);
      if (go) location.href = go;
    }
    return true;
  }
  var ERRORS = {
    rate_limited: 'You are sending messages too quickly. That one was not sent; wait a moment and try again.',
    too_large: 'That message is too long to send.',
    bad_message: 'That message could not be sent.',
    bad_json: 'That message could not be sent.',
    unavailable: 'The chat is having trouble right now. Please try again shortly.',
  };
  function onFrame(msg) {
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
    case 'session':
      awaitingGreeting = false;
      if (typeof msg.token === 'string' && msg.token) setToken(msg.token);
      if (typeof msg.seq === 'number' && msg.seq < highest) {
        // The server's numbering is behind what this page showed (history it
        // could not keep): numbers above its own will be new messages.
        Object.keys(shown).forEach(function (k) { if (Number(k) > msg.seq) delete shown[k]; });
        highest = msg.seq;
      }
      return;
    case 'typing':
      showTyping(typeof msg.operator === 'string' ? msg.operator : null);
      return;
    case 'ack':
      if (typeof msg.mid === 'string') acked(msg.mid);
      return;
    case 'error':
      if (msg.code === 'unauthorized' && awaitingGreeting && token() && socket && socket.readyState === 1) {
        // The token we held is not valid here (a new secret, another user):
        // forget it and greet again as a user without one. The messages sent
        // with the old token are refused too; they go again after this greeting.
        setToken(null);
        socket.send(JSON.stringify(greeting(lastGreeting)));
        resendPending();
        return;
      }
      var p = typeof msg.mid === 'string' ? findPending(msg.mid) : null;
      if (p) {
        // Not taken. Too fast: again in a moment. Refused while the server
        // stops or while the page greets again: it goes after the next
        // greeting. Anything else: it never will be.
        if (msg.code === 'rate_limited') resendLater(p);
        else if (msg.code !== 'unavailable' && msg.code !== 'unauthorized') failed(p, msg.code);
        return;
      }
      notice(ERRORS[msg.code] || (typeof msg.message === 'string' ? msg.message : 'Something went wrong.'));
      return;
    case 'message':
      hideTyping();
      awaitingGreeting = false;
      showBot(msg, true);
      return;
    }
  }

  // --- what the person sends ---
  var everGreeted = false;
  var awaitingGreeting = false;
  var lastGreeting = null;
  function envelope(obj) {
    obj.user = user;
    obj.channel = channel === 'webhook' ? 'webhook' : 'websocket';
    var t = token();
    if (t) obj.token = t;
    return obj;
  }
  function greeting(type) {
    var g = { type: type || (everGreeted ? 'reconnect' : returning ? 'welcome_back' : 'hello') };
    lastGreeting = g.type;
    // What this page has shown is what it asks to be brought up to date from;
    // a page that could not read its history asks for nothing it cannot place.
    if (everGreeted || historyLoaded) g.last_seq = highest;
    everGreeted = true;
    awaitingGreeting = true;
    return envelope(g);
  }
  function say(text, label) {
    if (!text) return;
    var p = { mid: newId(), text: text, label: label || text, ts: Date.now() };
    showPending(p);
    pending.push(p);
    keep(p);
    transmit(p);
  }

  // --- messages on their way: pending until the server acknowledges them ---
  // `pending` holds this page's unacknowledged messages ({mid, text, label,
  // ts, li, retry}) in the order they were typed; localStorage holds the same
  // under the user's key, for a reload. Other tabs of the user share that key,
  // so each tab adds and removes only its own entries, never writes the list
  // from memory; a tab that loads while another has messages on their way
  // shows and sends them too, and the server takes each `mid` once.
  var pending = [];
  var shownMids = {}; // mid -> true: each of the person's messages is shown once
  var pendingKey = 'anywhere:pending:' + user;
  function storedPending() {
    try {
      var list = JSON.parse(storage.getItem(pendingKey) || '[]');
      return Array.isArray(list) ? list : [];
    } catch (e) {
      return [];
    }
  }
  function storePending(list) {
    try {
      if (list.length) storage.setItem(pendingKey, JSON.stringify(list));
      else storage.removeItem(pendingKey);
    } catch (e) {
      // Storage full or refused: the message is still pending in memory.
    }
  }
  function keep(p) {
    var list = storedPending();
    if (list.some(function (x) { return x && x.mid === p.mid; })) return;
    list.push({ mid: p.mid, text: p.text, label: p.label, ts: p.ts });
    storePending(list);
  }
  function forget(mid) {
    storePending(storedPending().filter(function (x) { return x && x.mid !== mid; }));
  }
  function findPending(mid) {
    for (var i = 0; i < pending.length; i++) if (pending[i].mid === mid) return pending[i];
    return null;
  }
  function dropPending(p) {
    clearTimeout(p.retry);
    pending.splice(pending.indexOf(p), 1);
    forget(p.mid);
  }
  // Shows where one of the person's messages is, in words (and a tick), not
  // only by its look: 'pending', 'sent' or 'failed'.
  function setState(li, state) {
    li.classList.remove('pending', 'sent', 'failed');
    li.classList.add(state);
    var s = li.querySelector('.state');
    if (!s) {
      s = document.createElement('span');
      s.className = 'state';
      li.appendChild(s);
    }
    s.textContent = '';
    if (state === 'sent') {
      var tick = document.createElement('span');
      tick.setAttribute('aria-hidden', 'true');
      tick.textContent = '✓';
      var word = document.createElement('span');
      word.className = 'sr';
      word.textContent = 'sent';
      s.appendChild(tick);
      s.appendChild(word);
    } else {
      s.textContent = state === 'pending' ? 'sending…' : 'not sent';
    }
  }
  function showPending(p) {
    p.li = addMessage({ text: p.label, ts: p.ts }, 'me');
    p.li.dataset.mid = p.mid;
    setState(p.li, 'pending');
    shownMids[p.mid] = true;
  }
  // The pending messages a reload left in storage, after the history: one the
  // history holds was taken already (its ack was lost) and is not shown again.
  function restorePending() {
    storedPending().forEach(function (x) {
      if (!x || typeof x.mid !== 'string' || typeof x.text !== 'string') return;
      if (shownMids[x.mid]) {
        if (!findPending(x.mid)) forget(x.mid);
        return;
      }
      var p = { mid: x.mid, text: x.text, label: typeof x.label === 'string' ? x.label : x.text, ts: x.ts };
      showPending(p);
      pending.push(p);
    });
  }
  function acked(mid) {
    var p = findPending(mid);
    if (!p) return;
    dropPending(p);
    setState(p.li, 'sent');
  }
  // Refused for good (bad_message, too_large): sending it again cannot help.
  function failed(p, code) {
    dropPending(p);
    setState(p.li, 'failed');
    notice(ERRORS[code] || 'That message could not be sent.');
  }
  // The server closed the socket (1009) over a message too large for it,
  // without saying which: the largest pending one, which would only close the
  // next socket too. Were another one too large as well, the next close
  // drops it.
  function dropLargest() {
    var largest = null;
    pending.forEach(function (p) {
      if (!largest || new Blob([p.text]).size > new Blob([largest.text]).size) largest = p;
    });
    if (largest) failed(largest, 'too_large');
  }
  function transmit(p) {
    if (channel === 'webhook') return pumpWebhook();
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify(envelope({ type: 'message', text: p.text, mid: p.mid })));
    }
    // Otherwise it goes after the next greeting, with the others.
  }
  // After a greeting: everything not yet acknowledged, in order.
  function resendPending() {
    pending.forEach(function (p) {
      clearTimeout(p.retry);
      p.retry = null;
    });
    if (channel === 'webhook') return pumpWebhook();
    pending.forEach(transmit);
  }
  function resendLater(p) {
    clearTimeout(p.retry);
    p.retry = setTimeout(function () {
      p.retry = null;
      if (findPending(p.mid)) transmit(p);
    }, RATE_RETRY_MS);
  }
  function setInputDisabled(off) {
    el.input.disabled = off;
    el.send.disabled = off;
    el.input.placeholder = off ? 'Choose one of the replies above' : 'Type a message…';
  }

  // --- the connection ---
  var channel = transport === 'webhook' || !window.WebSocket ? 'webhook' : 'websocket';
  var online = false;
  var socket = null;
  var failures = 0; // connection attempts that failed in a row
  var retryTimer = null;
  function setStatus(s) {
    el.status.textContent = s;
    document.body.dataset.status = s;
  }
  function showStatus() {
    if (navigator.onLine === false) setStatus('offline');
    else setStatus(online ? 'online' : everGreeted ? 'reconnecting…' : 'connecting…');
  }
  function setOnline(up) {
    online = up;
    if (up) failures = 0;
    showStatus();
  }
  // Exponential backoff with jitter, capped; it never gives up.
  function retryLater(fn) {
    failures++;
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, Math.min(failures - 1, 10)));
    clearTimeout(retryTimer);
    retryTimer = setTimeout(fn, ceiling / 2 + Math.random() * ceiling / 2);
  }
  function connect() {
    clearTimeout(retryTimer);
    if (channel === 'webhook') return startWebhook();
    setOnline(false);
    var opened = false;
    var ws;
    try {
      ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/');
    } catch (e) {
      return fallBackOrRetry();
    }
    socket = ws;
    ws.onopen = function () {
      opened = true;
      setOnline(true);
      ws.send(JSON.stringify(greeting()));
      resendPending();
    };
    ws.onmessage = function (ev) {
      if (typeof ev.data !== 'string') return;
      var msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      onFrame(msg);
    };
    ws.onclose = function (ev) {
      if (socket !== ws) return;
      socket = null;
      hideTyping();
      setOnline(false);
      if (ev.code === 1009) dropLargest();
      if (opened) failures = 0;
      if (!opened && !everGreeted) return fallBackOrRetry();
      retryLater(connect);
    };
  }
  // A websocket that never opened: if plain HTTP reaches the server (a proxy
  // that does not pass websockets), move to the webhook channel; if not, the
  // server is away, so keep trying.
  function fallBackOrRetry() {
    if (transport !== 'auto' || failures < 2) return retryLater(connect);
    fetch('/healthz', { cache: 'no-store' }).then(function (r) {
      if (!r.ok && r.status !== 503) throw new Error('down');
      channel = 'webhook';
      connect();
    }).catch(function () { retryLater(connect); });
  }

  // The webhook channel: every turn is a POST whose answer carries its
  // replies; messages pushed later (timers, other tabs, the send API) are
  // picked up from the history. Pending messages go one POST at a time, in
  // order: the next only once the server has answered the one before.
  var pollTimer = null;
  var webhookBusy = false; // a message's POST, or its wait to be sent again, is under way
  function startWebhook() {
    setOnline(false);
    webhookGreet();
  }
  // Resolves with the answer ({status, ok, body, ack}); rejects when the
  // server could not be reached.
  function postWebhook(frame) {
    return fetch('/api/messages', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(frame),
    }).then(function (r) {
      var t = r.headers.get('x-anywhere-token');
      if (t) setToken(t);
      if (r.status === 401 && frame.token) {
        setToken(null);
        delete frame.token;
        return postWebhook(frame);
      }
      return r.json().catch(function () { return null; }).then(function (body) {
        return { status: r.status, ok: r.ok, body: body, ack: r.headers.get('x-anywhere-ack') };
      });
    });
  }
  function showReplies(body) {
    (Array.isArray(body) ? body : [body]).forEach(onFrame);
  }
  function webhookGreet() {
    postWebhook(greeting()).then(function (a) {
      if (a.ok) showReplies(a.body);
      else onFrame(a.body && a.body.type === 'error' ? a.body : { type: 'error', code: 'unavailable' });
      setOnline(true);
      schedulePoll();
      resendPending();
    }, function () {
      setOnline(false);
      retryLater(webhookGreet);
    });
  }
  function pumpWebhook() {
    if (channel !== 'webhook' || !online || webhookBusy || !pending.length) return;
    var p = pending[0];
    var later = function (wait) {
      webhookBusy = true;
      wait(function () {
        webhookBusy = false;
        pumpWebhook();
      });
    };
    webhookBusy = true;
    postWebhook(envelope({ type: 'message', text: p.text, mid: p.mid })).then(function (a) {
      webhookBusy = false;
      if (a.ok) {
        // Taken: X-Anywhere-Ack names it (a duplicate's body is [], its
        // replies went out the first time). A 2xx without the header is an
        // answered turn all the same, so it is not sent again either.
        failures = 0;
        acked(p.mid);
        showReplies(a.body);
        schedulePoll();
        return pumpWebhook();
      }
      if (a.status === 429) return later(function (fn) { setTimeout(fn, RATE_RETRY_MS); });
      if (a.status >= 500) return later(retryLater);
      failed(p, (a.body && a.body.code) || (a.status === 413 ? 'too_large' : 'bad_message'));
      pumpWebhook();
    }, function () {
      // Not reached: greet again once the server answers, then send it again.
      webhookBusy = false;
      setOnline(false);
      retryLater(webhookGreet);
    });
  }
  function schedulePoll() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(function () {
      if (document.visibilityState === 'hidden' || !online) return schedulePoll();
      loadHistory(true).then(schedulePoll);
    }, POLL_MS);
  }

  // --- history ---
  var historyLoaded = false;
  // Shows the stored conversation (on load), or only the bot messages this
  // page has not shown (`onlyNew`, the webhook channel's poll).
  function loadHistory(onlyNew) {
    var t = token();
    if (!t) return Promise.resolve();
    return fetch('/botkit/history', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: user, token: t, limit: onlyNew ? 100 : HISTORY_LIMIT }),
    }).then(function (r) {
      if (r.status === 401) setToken(null);
      return r.ok ? r.json() : null;
    }).then(function (h) {
      if (!h || !h.success || !Array.isArray(h.history)) return;
      var last = null;
      h.history.forEach(function (m) {
        if (!m || typeof m !== 'object') return;
        if (m.type === 'message_received') {
          var mid = typeof m.mid === 'string' ? m.mid : null;
          // In the history, it was taken, whether or not its ack came.
          if (mid) acked(mid);
          if (!onlyNew && !(mid && shownMids[mid])) {
            addMessage(m, 'me');
            if (mid) shownMids[mid] = true;
          }
          last = m;
        } else if (showBot(m, false) || !onlyNew) {
          last = m;
        }
      });
      // Old suggestions stay on offer only if the bot spoke last.
      if (!onlyNew && (!last || last.type === 'message_received')) clearQuickReplies();
      if (!onlyNew && last && last.type !== 'message_received') setInputDisabled(!!last.disable_input);
      if (!onlyNew) historyLoaded = true;
      if (!onlyNew && h.history.length) scrollDown();
    }).catch(function () {});
  }

  // --- typing, while a person answers ---
  // A person of the site sees the user typing (a bot has no use for it): a
  // `typing` event at most every few seconds while the user types.
  var personHere = null;
  var typingSent = 0;
  el.input.addEventListener('input', function () {
    if (!personHere || channel !== 'websocket' || !socket || socket.readyState !== 1 || !el.input.value) return;
    var now = Date.now();
    if (now - typingSent < 3000) return;
    typingSent = now;
    socket.send(JSON.stringify(envelope({ type: 'typing' })));
  });

  // --- the page ---
  el.form.addEventListener('submit', function (e) {
    e.preventDefault();
    var text = el.input.value.trim();
    if (!text) return;
    el.input.value = '';
    clearQuickReplies();
    say(text);
  });
  window.addEventListener('offline', showStatus);
  window.addEventListener('online', function () {
    showStatus();
    if (!online) {
      failures = 0;
      clearTimeout(retryTimer);
      if (channel === 'websocket' && !socket) connect();
      else if (channel === 'webhook') webhookGreet();
    }
  });
  document.addEventListener('visibilitychange', function () {
    // A page coming back to the front retries at once instead of waiting out its backoff.
    if (document.visibilityState === 'visible' && !online && channel === 'websocket' && !socket) connect();
  });
  setStatus('connecting…');
  loadHistory(false).then(restorePending).then(connect);
})();
