// The chat page: speaks the Botkit Anywhere protocol over a websocket to the
// server that served it, keeps the user's id in the botkit_guid cookie (as
// Botkit's own client does) and the identity token in localStorage, and on a
// reconnect asks for what it missed with last_seq. Bot text is shown as text,
// never as HTML.
(function () {
  'use strict';
  var list = document.getElementById('messages');
  var form = document.getElementById('composer');
  var input = document.getElementById('text');
  var typing = document.getElementById('typing');
  var status = document.getElementById('status');
  var socket = null, retries = 0, everConnected = false;

  function cookie(name) {
    var m = document.cookie.match(new RegExp('(?:^|; )' + name + '=([^;]*)'));
    return m ? decodeURIComponent(m[1]) : null;
  }
  function guid() {
    var a = new Uint8Array(16); crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }
  var user = cookie('botkit_guid');
  var returning = !!user;
  if (!user) {
    user = guid();
    document.cookie = 'botkit_guid=' + user + '; max-age=31536000; path=/; SameSite=Lax';
  }
  var store = window.localStorage;
  var key = 'anywhere:' + user;
  function token() { return store.getItem(key + ':token'); }
  function lastSeq() { return parseInt(store.getItem(key + ':seq') || '0', 10); }
  function setLastSeq(seq) { if (seq > lastSeq()) store.setItem(key + ':seq', String(seq)); }
  var shown = {};

  function add(text, mine, msg) {
    var li = document.createElement('li');
    li.className = 'msg' + (mine ? ' me' : '');
    li.textContent = text || '';
    if (msg) decorate(li, msg);
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
    return li;
  }
  function safeUrl(u) {
    try { var url = new URL(u, location.href); return /^https?:$/.test(url.protocol) ? url.href : null; }
    catch (e) { return null; }
  }
  function decorate(li, msg) {
    (msg.files || []).forEach(function (f) {
      var href = safeUrl(f.url); if (!href) return;
      if (f.image) { var img = document.createElement('img'); img.src = href; img.alt = ''; li.appendChild(img); }
      else { var a = document.createElement('a'); a.href = href; a.textContent = href; a.className = 'link'; li.appendChild(a); }
    });
    if (msg.open_link && safeUrl(msg.open_link)) {
      var a = document.createElement('a'); a.className = 'link'; a.target = '_blank'; a.rel = 'noopener';
      a.href = safeUrl(msg.open_link); a.textContent = msg.link_title || msg.open_link; li.appendChild(a);
    }
    if (msg.quick_replies && msg.quick_replies.length) {
      var box = document.createElement('div'); box.className = 'quick';
      msg.quick_replies.forEach(function (q) {
        var b = document.createElement('button'); b.type = 'button'; b.textContent = q.title;
        b.addEventListener('click', function () { say(q.payload, q.title); box.remove(); });
        box.appendChild(b);
      });
      li.appendChild(box);
    }
  }
  function send(obj) {
    obj.user = user; obj.channel = 'websocket';
    if (socket && socket.readyState === 1) socket.send(JSON.stringify(obj));
  }
  function say(text, label) {
    if (!text) return;
    add(label || text, true);
    send({ type: 'message', text: text });
  }
  function onMessage(ev) {
    var msg; try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.type === 'session') {
      if (msg.token) store.setItem(key + ':token', msg.token);
      return;
    }
    if (msg.type === 'typing') { typing.hidden = false; list.scrollTop = list.scrollHeight; return; }
    if (msg.type === 'error') { add('⚠ ' + msg.message, false); return; }
    if (msg.type === 'message') {
      typing.hidden = true;
      if (msg.seq) { if (shown[msg.seq]) return; shown[msg.seq] = true; setLastSeq(msg.seq); }
      add(msg.text, false, msg);
    }
  }
  function connect() {
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
    socket = new WebSocket(url);
    status.textContent = everConnected ? 'reconnecting…' : 'connecting…';
    socket.onopen = function () {
      retries = 0; status.textContent = 'online';
      var hello = { type: everConnected ? 'reconnect' : (returning ? 'welcome_back' : 'hello') };
      if (token()) hello.token = token();
      if (everConnected || returning) hello.last_seq = lastSeq();
      everConnected = true;
      send(hello);
    };
    socket.onmessage = onMessage;
    socket.onclose = function () {
      typing.hidden = true;
      status.textContent = navigator.onLine ? 'reconnecting…' : 'offline';
      var delay = Math.min(30000, 500 * Math.pow(2, retries++)) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }
  form.addEventListener('submit', function (e) {
    e.preventDefault(); var t = input.value.trim(); input.value = ''; say(t);
  });
  window.addEventListener('offline', function () { status.textContent = 'offline'; });
  connect();
})();
