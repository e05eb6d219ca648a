// The operator console (GET /console): sign in, see the conversations that
// wait for a person and those operators own, open one (its history, then
// every message live, both ways), take it over, answer, and hand it back.
// It speaks docs/protocol.md, "The operator console": the page's own
// websocket at /console/ws, and nothing of anyone else's. Everything shown
// of a conversation goes in as text, never as markup.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var el = {
    signin: $('signin'), form: $('signin-form'), name: $('name'), password: $('password'),
    signinError: $('signin-error'), app: $('app'), me: $('me'), conn: $('conn'), signout: $('signout'),
    search: $('search'), searchUser: $('search-user'), waiting: $('waiting'), owned: $('owned'),
    waitingCount: $('waiting-count'), ownedCount: $('owned-count'), conversation: $('conversation'),
    empty: $('empty'), open: $('open'), title: $('conv-title'), state: $('conv-state'), take: $('take'),
    release: $('release'), earlier: $('earlier'), list: $('messages'), typing: $('typing'),
    error: $('conv-error'), composer: $('composer'), text: $('text'), send: $('send'),
  };
  var me = null;
  var ws = null;
  var retry = 0;
  var queue = { waiting: [], owned: [] };
  var clock = 0; // the server's clock less ours, from the queue's "now"
  var current = null; // the user open
  var before = null; // the next page of history ends before this bot message
  var seen = {}; // what is shown of the open conversation, by key
  var typingTimer = null;
  var typingSent = 0;

  // --- signing in and out ---
  function showSignin(message) {
    el.app.hidden = true;
    el.signin.hidden = false;
    el.signinError.textContent = message || '';
    el.name.focus();
  }
  el.form.addEventListener('submit', function (e) {
    e.preventDefault();
    el.signinError.textContent = '';
    fetch('/console/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: el.name.value.trim(), password: el.password.value }),
    }).then(function (r) {
      el.password.value = '';
      if (r.ok) return r.json().then(function (b) { start(b.operator); });
      if (r.status === 429) return showSignin('Too many failed sign-ins. Wait a minute, then try again.');
      showSignin('Wrong name or password.');
    }, function () { showSignin('The server cannot be reached.'); });
  });
  el.signout.addEventListener('click', function () {
    fetch('/console/logout', { method: 'POST' }).finally(function () {
      me = null;
      if (ws) ws.close();
      showSignin('Signed out.');
    });
  });

  // --- the websocket ---
  function start(name) {
    me = name;
    el.me.textContent = name;
    el.signin.hidden = true;
    el.app.hidden = false;
    connect();
  }
  function setConn(text) { el.conn.textContent = text; }
  function send(obj) {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj));
  }
  function connect() {
    if (!me) return;
    setConn('connecting…');
    var sock = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/console/ws');
    ws = sock;
    sock.onopen = function () {
      retry = 0;
      setConn('online');
      if (current) openConversation(current, true);
    };
    sock.onmessage = function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f && typeof f === 'object') onFrame(f);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      if (!me) return;
      setConn('offline: reconnecting…');
      // Signed out meanwhile (the sign-in expired)? Then sign in again.
      fetch('/console/me').then(function (r) {
        if (r.status === 401) { me = null; showSignin('Your sign-in has ended. Sign in again.'); return; }
        setTimeout(connect, Math.min(10000, 500 * Math.pow(2, retry++)));
      }, function () { setTimeout(connect, Math.min(10000, 500 * Math.pow(2, retry++))); });
    };
  }

  // --- the lists ---
  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }
  function now() { return Date.now() + clock; }
  function entryOf(user) {
    var all = queue.waiting.concat(queue.owned);
    for (var i = 0; i < all.length; i++) if (all[i].user === user) return all[i];
    return null;
  }
  function item(e, owned) {
    var li = document.createElement('li');
    var b = document.createElement('button');
    b.type = 'button';
    b.className = 'item' + (e.user === current ? ' current' : '');
    if (e.user === current) b.setAttribute('aria-current', 'true');
    var who = document.createElement('span');
    who.className = 'user';
    who.textContent = e.user;
    var meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = owned
      ? (e.operator === me ? 'yours' : e.operator) + ' · waited ' + ago((e.owned || now()) - e.since)
      : 'waiting ' + ago(now() - e.since) + (e.reason ? ' · ' + e.reason : '');
    b.appendChild(who);
    b.appendChild(meta);
    b.addEventListener('click', function () { openConversation(e.user); });
    li.appendChild(b);
    return li;
  }
  function renderLists() {
    [['waiting', false], ['owned', true]].forEach(function (p) {
      var list = el[p[0]];
      var focused = list.contains(document.activeElement) ? document.activeElement.querySelector('.user') : null;
      var focusUser = focused ? focused.textContent : null;
      list.textContent = '';
      queue[p[0]].forEach(function (e) {
        var li = item(e, p[1]);
        list.appendChild(li);
        if (e.user === focusUser) li.firstChild.focus();
      });
      if (!queue[p[0]].length) {
        var none = document.createElement('li');
        none.className = 'none';
        none.textContent = p[1] ? 'Nobody is owned.' : 'Nobody waits.';
        list.appendChild(none);
      }
      el[p[0] + 'Count'].textContent = String(queue[p[0]].length);
    });
    renderState();
  }
  setInterval(renderLists, 15000); // how long each has waited

  // --- the open conversation ---
  function renderState() {
    if (!current) return;
    var e = entryOf(current);
    var mine = !!(e && e.operator === me);
    if (!e) el.state.textContent = 'With the bot';
    else if (!e.operator) el.state.textContent = 'Waiting for a person for ' + ago(now() - e.since) + (e.reason ? ' (' + e.reason + ')' : '');
    else if (mine) el.state.textContent = 'You have this conversation';
    else el.state.textContent = e.operator + ' has this conversation';
    el.take.disabled = mine || !!(e && e.operator);
    el.take.hidden = mine;
    el.release.hidden = !e || (!!e.operator && !mine);
    el.text.disabled = !mine;
    el.send.disabled = !mine;
    el.text.placeholder = mine ? 'Type your answer' : 'Take the conversation over to answer';
  }
  function openConversation(user, again) {
    if (!again && current && current !== user) send({ type: 'close', user: current });
    current = user;
    before = null;
    seen = {};
    el.list.textContent = '';
    el.error.textContent = '';
    el.typing.hidden = true;
    el.empty.hidden = true;
    el.open.hidden = false;
    el.earlier.hidden = true;
    el.title.textContent = user;
    renderLists();
    send({ type: 'open', user: user });
    if (!again) el.conversation.focus();
  }
  function keyOf(m) {
    if (m.type === 'message' && typeof m.seq === 'number') return 's' + m.seq;
    return 'r' + m.ts + ':' + (m.mid || m.text);
  }
  function row(m) {
    var li = document.createElement('li');
    var mine = m.type === 'message_received';
    var person = typeof m.operator === 'string' && m.operator;
    li.className = 'msg ' + (mine ? 'user' : person ? 'operator' : 'bot') + (m.handoff ? ' notice' : '');
    var from = document.createElement('span');
    from.className = 'from';
    from.textContent = mine ? 'User' : person ? m.operator + (m.operator === me ? ' (you)' : '') : 'Bot';
    var text = document.createElement('div');
    text.className = 'text';
    text.textContent = typeof m.text === 'string' ? m.text : m.files ? '[file]' : '[' + m.type + ']';
    var time = document.createElement('time');
    if (typeof m.ts === 'number') {
      time.dateTime = new Date(m.ts).toISOString();
      time.textContent = new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    }
    li.appendChild(from);
    li.appendChild(text);
    li.appendChild(time);
    return li;
  }
  function atBottom() { return el.list.scrollHeight - el.list.scrollTop - el.list.clientHeight < 40; }
  function addLive(m) {
    var k = keyOf(m);
    if (seen[k]) return;
    seen[k] = true;
    var stick = atBottom();
    el.list.appendChild(row(m));
    if (stick) el.list.scrollTop = el.list.scrollHeight;
  }
  function addPage(f) {
    var records = Array.isArray(f.records) ? f.records : [];
    var first = el.list.firstChild;
    var paging = before !== null;
    records.forEach(function (m) {
      if (!m || typeof m !== 'object') return;
      var k = keyOf(m);
      if (seen[k]) return;
      seen[k] = true;
      el.list.insertBefore(row(m), first);
    });
    before = f.before;
    el.earlier.hidden = !f.more;
    if (!paging) el.list.scrollTop = el.list.scrollHeight;
  }
  el.earlier.addEventListener('click', function () {
    if (current && before !== null) send({ type: 'history', user: current, before: before });
  });
  el.take.addEventListener('click', function () {
    el.error.textContent = '';
    send({ type: 'take', user: current });
  });
  el.release.addEventListener('click', function () {
    el.error.textContent = '';
    send({ type: 'release', user: current });
  });
  el.composer.addEventListener('submit', function (e) {
    e.preventDefault();
    var text = el.text.value.trim();
    if (!text || !current) return;
    send({ type: 'send', user: current, text: text });
    el.text.value = '';
    typingSent = 0;
  });
  el.text.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      el.composer.requestSubmit();
    }
  });
  el.text.addEventListener('input', function () {
    var t = Date.now();
    if (!current || !el.text.value || t - typingSent < 3000) return;
    typingSent = t;
    send({ type: 'typing', user: current });
  });
  el.search.addEventListener('submit', function (e) {
    e.preventDefault();
    var user = el.searchUser.value.trim();
    if (user) openConversation(user);
  });

  var ERRORS = {
    taken: function (f) { return 'Already taken by ' + (f.operator || 'another operator') + '.'; },
    not_owner: function () { return 'Take the conversation over first.'; },
    not_in_handoff: function () { return 'The bot has this conversation already.'; },
    unavailable: function () { return 'The server cannot do that right now. Try again.'; },
  };
  function onFrame(f) {
    switch (f.type) {
    case 'hello':
      return;
    case 'queue':
      queue = { waiting: Array.isArray(f.waiting) ? f.waiting : [], owned: Array.isArray(f.owned) ? f.owned : [] };
      if (typeof f.now === 'number') clock = f.now - Date.now();
      renderLists();
      return;
    case 'history':
      if (f.user === current && !f.error) addPage(f);
      return;
    case 'message':
    case 'message_received':
      if (f.user !== current) return;
      if (f.type === 'message_received') el.typing.hidden = true;
      addLive(f);
      return;
    case 'typing':
      if (f.user !== current) return;
      el.typing.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { el.typing.hidden = true; }, 6000);
      return;
    case 'taken':
      if (f.user === current) { renderState(); el.text.focus(); }
      return;
    case 'released':
      if (f.user === current) renderState();
      return;
    case 'moved':
      // Another node of the cluster serves the user now: open it there.
      if (f.user === current) openConversation(current, true);
      return;
    case 'error':
      var say = ERRORS[f.code];
      if (f.user === undefined || f.user === current) el.error.textContent = say ? say(f) : 'That did not work (' + f.code + ').';
      return;
    }
  }

  fetch('/console/me').then(function (r) {
    if (r.ok) return r.json().then(function (b) { start(b.operator); });
    showSignin();
  }, function () { showSignin('The server cannot be reached.'); });
})();
