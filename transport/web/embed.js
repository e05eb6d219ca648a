// Puts the chat on any site with one tag:
//   <script src="https://chat.example.com/embed.js" async
//           data-title="Help" data-color="#2563eb" data-position="right"></script>
// A floating button opens the chat, an iframe of the chat server's own page,
// so the conversation runs on the chat server's origin whatever the host page.
// Options (all optional):
//   data-title      the chat's heading and the button's label    (Chat)
//   data-color      the accent colour, #RGB or #RRGGBB           (#2563eb)
//   data-position   right or left                                (right)
//   data-open       "true" opens the chat at once
//   data-transport  auto, websocket or webhook (see app.js)      (auto)
//   data-user, data-token
//                   a signed identity for a logged-in user: the site's backend
//                   computes the token (see the README); it reaches the chat
//                   in the iframe's fragment, never in a request
// The host page may also call window.anywhereChat.open() / .close() / .toggle().
(function () {
  'use strict';
  var me = document.currentScript;
  if (!me || window.anywhereChat) return;
  var origin = new URL(me.src, location.href).origin;
  var attr = function (name) { return me.getAttribute('data-' + name); };
  var title = attr('title') || 'Chat';
  var color = attr('color') || '#2563eb';
  if (!/^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$/.test(color)) color = '#2563eb';
  var side = attr('position') === 'left' ? 'left' : 'right';
  var transport = /^(auto|websocket|webhook)$/.test(attr('transport') || '') ? attr('transport') : 'auto';

  var ICON_OPEN = '<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true"><path fill="currentColor" ' +
    'd="M12 3C6.5 3 2 6.9 2 11.7c0 2.6 1.3 4.9 3.4 6.5L4.6 21a.6.6 0 00.8.7l3.6-1.7c.9.2 1.9.4 3 .4 5.5 0 10-3.9 ' +
    '10-8.7S17.5 3 12 3z"/></svg>';
  var ICON_CLOSE = '<svg viewBox="0 0 24 24" width="24" height="24" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18" ' +
    'stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/></svg>';

  var button = document.createElement('button');
  button.type = 'button';
  button.className = 'anywhere-launcher';
  button.setAttribute('aria-haspopup', 'dialog');
  button.style.cssText = 'position:fixed;bottom:20px;' + side + ':20px;width:58px;height:58px;border-radius:50%;' +
    'border:0;cursor:pointer;z-index:2147483000;box-shadow:0 6px 18px rgba(0,0,0,.28);background:' + color + ';' +
    'color:#fff;padding:0;display:grid;place-items:center';

  var frame = null;
  function setButton(isOpen) {
    button.innerHTML = isOpen ? ICON_CLOSE : ICON_OPEN;
    button.setAttribute('aria-expanded', isOpen ? 'true' : 'false');
    button.setAttribute('aria-label', (isOpen ? 'Close ' : 'Open ') + title);
  }
  function isOpen() {
    return !!frame && !frame.hidden;
  }
  function open() {
    if (!frame) {
      var query = '?embed=1&title=' + encodeURIComponent(title) + '&color=' + encodeURIComponent(color) +
        '&transport=' + transport;
      var fragment = '';
      if (attr('user')) {
        fragment = '#user=' + encodeURIComponent(attr('user')) +
          (attr('token') ? '&token=' + encodeURIComponent(attr('token')) : '');
      }
      frame = document.createElement('iframe');
      frame.title = title;
      frame.className = 'anywhere-frame';
      frame.src = origin + '/' + query + fragment;
      frame.setAttribute('role', 'dialog');
      document.body.appendChild(frame);
    }
    // On a small screen the chat takes the whole screen; its own close
    // button (inside the iframe) brings the page back.
    var small = window.innerWidth < 480;
    frame.style.cssText = 'position:fixed;z-index:2147483001;border:0;background:transparent;color-scheme:normal;' +
      (small ? 'top:0;left:0;width:100%;height:100%;' :
        'bottom:90px;' + side + ':20px;width:380px;height:600px;max-height:calc(100vh - 110px);' +
        'border-radius:14px;box-shadow:0 10px 34px rgba(0,0,0,.3);');
    frame.hidden = false;
    setButton(true);
    try {
      frame.focus();
    } catch (e) { /* focus is a courtesy */ }
  }
  function close() {
    if (!isOpen()) return;
    frame.hidden = true;
    setButton(false);
    button.focus();
  }
  function toggle() {
    if (isOpen()) close(); else open();
  }

  setButton(false);
  button.addEventListener('click', toggle);
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && isOpen()) close();
  });
  // The chat's own close button (embedded layout) asks through postMessage;
  // only the chat's origin is listened to.
  window.addEventListener('message', function (e) {
    if (e.origin === origin && e.data && e.data.anywhere === 'close') close();
  });
  window.anywhereChat = { open: open, close: close, toggle: toggle };
  function mount() {
    document.body.appendChild(button);
    if (attr('open') === 'true') open();
  }
  if (document.body) mount(); else document.addEventListener('DOMContentLoaded', mount);
})();
