// The bundled chat page in a real Chromium against the real server: what a
// person sees and does, including losing the connection, several tabs, the
// webhook fallback, hostile text and the embed snippet on another site.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const net = require('node:net');
const { startServer, sleep, lockDatabase } = require('../net/lib');
const { launch, transcript } = require('./lib');

const ARTIFACTS = path.join(__dirname, '..', 'artifacts');
const GREETING = 'Hello! I am the anywhere demo bot. Type help to see what I can do.';
const WELCOME = 'Welcome back! Nice to see you again.';
const HELP = 'Here is what I can do. Pick one, or type anything and I will echo it.';

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

let srv, browser, port, dataDir;
test.before(async () => {
  port = await freePort();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-browser-'));
  srv = await startServer(['--bot', 'demo', '--port', String(port)], { dataDir });
  browser = await launch();
});
test.after(async () => {
  await browser.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dataDir, { recursive: true, force: true });
});

// A page of a fresh person (own cookies and storage), or of the person of
// `like` (another tab of the same user in the same browser).
async function freshContext() {
  return browser.browser.newContext({ viewport: { width: 1280, height: 800 } });
}

// Opens the chat (of the shared server, or of the one on `at`) and records
// every websocket frame it sends.
async function openChat(context, query = '', at = port) {
  const page = await context.newPage();
  page.sent = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => {
    try {
      page.sent.push(JSON.parse(f.payload));
    } catch (e) { /* not ours */ }
  }));
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(`http://127.0.0.1:${at}/${query}`);
  return page;
}

async function waitText(page, text, count = 1, timeout = 10000) {
  await page.waitForFunction(([t, n]) => Array.from(document.querySelectorAll('#messages .msg .text'))
    .filter((e) => e.textContent === t).length >= n, [text, count], { timeout });
}

async function send(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

function count(lines, line) {
  return lines.filter((x) => x === line).length;
}

// The person's message `text` as the page shows it: its state ('pending',
// 'sent' or 'failed'), the words of that state, and its mid.
async function mine(page, text) {
  return page.$$eval('#messages .msg.me', (els, t) => els.filter((e) => e.querySelector('.text').textContent === t)
    .map((e) => ({
      state: ['pending', 'sent', 'failed'].find((c) => e.classList.contains(c)),
      words: e.querySelector('.state') ? e.querySelector('.state').textContent : '',
      mid: e.dataset.mid,
    })), text);
}

async function waitState(page, text, state, timeout = 10000) {
  await page.waitForFunction(([t, s]) => Array.from(document.querySelectorAll(`#messages .msg.me.${s} .text`))
    .some((e) => e.textContent === t), [text, state], { timeout });
}

// What the page keeps in localStorage as not yet acknowledged.
async function stored(page) {
  return page.evaluate(() => {
    const key = Object.keys(localStorage).find((k) => k.startsWith('anywhere:pending:'));
    return key ? JSON.parse(localStorage.getItem(key)) : [];
  });
}

test('the greeting appears, a typed message gets its reply, a quick reply sends its payload', async () => {
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  assert.equal(await page.textContent('#messages .msg.bot strong'), 'help', 'light markdown: bold');
  assert.equal(page.sent[0].type, 'hello', 'a first visit says hello');
  await page.waitForSelector('body[data-status="online"]');

  await page.click('.quick button:has-text("Show me a sequence")');
  await waitText(page, 'This is the first of three messages.');
  const clicked = page.sent.filter((f) => f.type === 'message').pop();
  assert.equal(clicked.text, 'sequence', 'the payload is sent, not the title');
  assert.equal(await page.$$eval('.quick', (q) => q.length), 0, 'answered suggestions go away');

  await send(page, 'good morning');
  await waitText(page, 'You said: good morning');
  assert.deepEqual((await transcript(page)).filter((x) => x.startsWith('me:')), ['me: Show me a sequence',
    'me: good morning']);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('keyboard only: tab to a quick reply, press Enter, and the reply comes', async () => {
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');
  // The message input has the focus; the suggestions come before it.
  assert.equal(await page.evaluate(() => document.activeElement.id), 'text');
  await page.keyboard.press('Shift+Tab');
  for (let i = 0; i < 6; i++) {
    if (await page.evaluate(() => document.activeElement.textContent) === 'Help') break;
    await page.keyboard.press('Shift+Tab');
  }
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Help');
  await page.keyboard.press('Enter');
  await waitText(page, HELP);
  assert.equal(await page.getAttribute('.msg .button', 'href'), 'https://github.com/howdyai/botkit');
  assert.equal(await page.getAttribute('#messages', 'aria-live'), 'polite', 'screen readers hear new messages');
  await context.close();
});

test('the typing indicator appears, then goes with the message', async () => {
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  await send(page, 'sequence please');
  await page.waitForSelector('#typing:not([hidden])', { timeout: 5000 });
  await waitText(page, 'This is the first of three messages.');
  await waitText(page, 'And this is the last one, with a picture.');
  await page.waitForSelector('#typing[hidden]', { state: 'attached', timeout: 5000 });
  assert.equal(await page.getAttribute('#messages .msg:last-child img', 'src'), `http://127.0.0.1:${port}/logo.svg`);
  await context.close();
});

test('hostile text shows as text and runs nothing, live and from history', async () => {
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
  const link = '[click me](javascript:window.__pwned=3)';
  await send(page, evil);
  await waitText(page, `You said: ${evil}`);
  await send(page, link);
  await waitText(page, `You said: ${link}`);
  const check = async () => {
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.$$eval('#messages img[src="x"], #messages script', (e) => e.length), 0);
    assert.equal(await page.$$eval('#messages a[href^="javascript"]', (e) => e.length), 0);
  };
  await sleep(300);
  await check();
  await page.reload();
  await waitText(page, `You said: ${evil}`);
  await sleep(300);
  await check();
  await context.close();
});

test('a reload says welcome_back with its token and last_seq, and shows the history once', async () => {
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  await send(page, 'remember me');
  await waitText(page, 'You said: remember me');
  await page.reload();
  page.sent.length = 0;
  await waitText(page, WELCOME);
  const greet = page.sent[0];
  assert.equal(greet.type, 'welcome_back');
  assert.match(greet.token, /^[0-9a-f]{64}$/);
  assert.equal(greet.last_seq, 2, 'it asks for what came after the history it shows');
  const t = await transcript(page);
  assert.deepEqual(t, [`bot: ${GREETING}`, 'me: remember me', 'bot: You said: remember me', `bot: ${WELCOME}`]);
  await context.close();
});

test('two tabs of one user both show a reply', async () => {
  const context = await freshContext();
  const a = await openChat(context);
  await waitText(a, GREETING);
  const b = await openChat(context);
  await waitText(b, WELCOME);
  await send(a, 'seen by both');
  await waitText(a, 'You said: seen by both');
  await waitText(b, 'You said: seen by both');
  assert.equal(count(await transcript(b), 'bot: You said: seen by both'), 1);
  await context.close();
});

test('messages the bot sent while this tab was away appear in it once each when it returns', async () => {
  const context = await freshContext();
  let away = false;
  let current = null;
  const page = await context.newPage();
  // Everything this tab's websocket does goes through here, so the test can
  // cut it and keep it cut while the other tab chats.
  await page.routeWebSocket(/.*/, (ws) => {
    if (away) {
      ws.close({ code: 1006 });
      return;
    }
    current = ws;
    ws.connectToServer();
  });
  await page.goto(`http://127.0.0.1:${port}/`);
  await waitText(page, GREETING);
  const other = await openChat(context);
  await waitText(other, WELCOME);

  away = true;
  await current.close({ code: 1001 });
  await page.waitForSelector('body[data-status="reconnecting…"]', { timeout: 5000 });
  await send(other, 'count to five');
  await waitText(other, 'Five.');
  await send(page, 'typed while away');
  away = false;

  await waitText(page, 'Five.', 1, 40000);
  await waitText(page, 'You said: typed while away', 1, 10000);
  await sleep(500);
  const t = await transcript(page);
  for (const w of ['I will count to five, slowly, even if you leave.', 'One.', 'Two.', 'Three.', 'Four.', 'Five.']) {
    assert.equal(count(t, `bot: ${w}`), 1, `${w} once`);
  }
  assert.ok(t.indexOf('bot: One.') < t.indexOf('bot: Five.'), 'in order');
  await context.close();
});

test('a closed page that comes back shows what happened meanwhile, once', async () => {
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  await send(page, 'count to five');
  await waitText(page, 'I will count to five, slowly, even if you leave.');
  await page.close(); // away while the bot counts
  await sleep(2500);
  const back = await openChat(context);
  await waitText(back, 'Five.');
  await waitText(back, WELCOME);
  await sleep(300);
  const t = await transcript(back);
  for (const w of ['One.', 'Two.', 'Three.', 'Four.', 'Five.']) assert.equal(count(t, `bot: ${w}`), 1, `${w} once`);
  await context.close();
});

test('the browser going offline shows it, and the chat comes back by itself', async () => {
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');
  await context.setOffline(true);
  await page.waitForSelector('body[data-status="offline"]', { timeout: 5000 });
  await context.setOffline(false);
  await page.waitForSelector('body[data-status="online"]', { timeout: 40000 });
  await send(page, 'still here');
  await waitText(page, 'You said: still here');
  await context.close();
});

test('a server restart: the page shows reconnecting, comes back by itself, shows nothing twice', async () => {
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');
  await send(page, 'before the restart');
  await waitText(page, 'You said: before the restart');
  assert.equal((await srv.stop()).code, 0);
  await page.waitForSelector('body[data-status="reconnecting…"]', { timeout: 5000 });
  await send(page, 'typed during the restart');
  srv = await startServer(['--bot', 'demo', '--port', String(port)], { dataDir });
  await page.waitForSelector('body[data-status="online"]', { timeout: 40000 });
  await waitText(page, 'You are back online. Nothing was lost.');
  await waitText(page, 'You said: typed during the restart');
  await send(page, 'after the restart');
  await waitText(page, 'You said: after the restart');
  const t = await transcript(page);
  assert.deepEqual(t, [`bot: ${GREETING}`, 'me: before the restart', 'bot: You said: before the restart',
    'me: typed during the restart', 'bot: You are back online. Nothing was lost.',
    'bot: You said: typed during the restart', 'me: after the restart', 'bot: You said: after the restart']);
  const seqs = page.sent.filter((f) => f.type === 'reconnect');
  assert.equal(seqs.length, 1);
  assert.equal(seqs[0].last_seq, 2);
  await context.close();
});

test('a message shows sending… until its ack, then a tick, and leaves nothing in localStorage', async () => {
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');
  await send(page, 'acknowledge me');
  await waitText(page, 'You said: acknowledge me');
  await waitState(page, 'acknowledge me', 'sent');
  const [m] = await mine(page, 'acknowledge me');
  assert.equal(m.words, '✓sent', 'said in words for screen readers, a tick for the eye');
  const frame = page.sent.find((f) => f.type === 'message' && f.text === 'acknowledge me');
  assert.match(frame.mid, /^[0-9a-f]{32}$/);
  assert.equal(frame.mid, m.mid);
  assert.deepEqual(await stored(page), []);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('killed by SIGKILL before the ack: after the restart the message shows once, sent, and its answer once', async (t) => {
  // The server holds each ack until its message is durable; with the database
  // locked by another process nothing becomes durable, so the page's message
  // is taken but never acknowledged when the server is killed. The lock goes,
  // the server starts again on the same data and port, and the page sends the
  // message again after its greeting.
  const crashPort = await freePort();
  const crashDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-browser-crash-'));
  const args = ['--bot', 'demo', '--port', String(crashPort), '--durable-delivery'];
  let server = await startServer(args, { dataDir: crashDir });
  let lock = null;
  t.after(async () => {
    if (lock) await lock.release();
    await server.stop();
    fs.rmSync(crashDir, { recursive: true, force: true });
  });
  const context = await freshContext();
  const page = await openChat(context, '', crashPort);
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');

  lock = await lockDatabase(path.join(crashDir, 'anywhere.db'));
  await send(page, 'through the crash');
  await page.waitForFunction(() => document.querySelector('#messages .msg.me.pending'));
  for (const end = Date.now() + 5000; !page.sent.some((f) => f.text === 'through the crash');) {
    assert.ok(Date.now() < end, 'the message went out');
    await sleep(20);
  }
  await sleep(500);
  const [before] = await mine(page, 'through the crash');
  assert.equal(before.state, 'pending', 'no ack while the store takes no writes');
  assert.equal(before.words, 'sending…');
  assert.equal((await stored(page)).length, 1);
  server.proc.kill('SIGKILL');
  assert.equal((await server.exited).signal, 'SIGKILL');
  await lock.release();
  lock = null;
  await page.waitForSelector('body[data-status="reconnecting…"]', { timeout: 5000 });

  server = await startServer(args, { dataDir: crashDir });
  await page.waitForSelector('body[data-status="online"]', { timeout: 40000 });
  await waitText(page, 'You said: through the crash', 1, 20000);
  await waitState(page, 'through the crash', 'sent');
  await sleep(500);
  const lines = await transcript(page);
  assert.equal(count(lines, 'me: through the crash'), 1, lines.join('\n'));
  assert.equal(count(lines, 'bot: You said: through the crash'), 1, lines.join('\n'));
  const sent = page.sent.filter((f) => f.text === 'through the crash');
  assert.ok(sent.length >= 2, 'sent again after the restart');
  assert.ok(sent.every((f) => f.mid === before.mid), 'with the same mid');
  const greet = page.sent.findLastIndex((f) => f.type === 'reconnect');
  assert.ok(greet >= 0 && greet < page.sent.lastIndexOf(sent.at(-1)), 'after the greeting');
  assert.deepEqual(await stored(page), []);
  await context.close();
  assert.equal((await server.stop()).code, 0, server.log());
});

test('a reload while messages are pending keeps them, shows each once and sends each once', async () => {
  const context = await freshContext();
  const page = await context.newPage();
  // Every websocket of this page goes through here: `cut` decides what is
  // kept from the server ('messages') or from the page ('acks').
  let cut = null;
  const reached = []; // the message frames that reached the server
  const sent = []; // every message frame the page sent
  await page.routeWebSocket(/.*/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      const f = JSON.parse(m);
      if (f.type === 'message') {
        sent.push(f);
        if (cut === 'messages') return;
        reached.push(f);
      }
      server.send(m);
    });
    server.onMessage((m) => {
      if (cut === 'acks' && JSON.parse(m).type === 'ack') return;
      ws.send(m);
    });
  });
  await page.goto(`http://127.0.0.1:${port}/`);
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');

  cut = 'acks'; // taken by the server, but the page never hears so
  await send(page, 'taken, its ack lost');
  await waitText(page, 'You said: taken, its ack lost');
  cut = 'messages'; // never reaches the server
  await send(page, 'lost on the way');
  await page.waitForFunction(() => document.querySelectorAll('#messages .msg.me.pending').length === 2);
  assert.deepEqual((await stored(page)).map((x) => x.text), ['taken, its ack lost', 'lost on the way']);
  const lost = sent.find((f) => f.text === 'lost on the way').mid;

  cut = null;
  sent.length = 0;
  await page.reload();
  await waitText(page, 'You said: lost on the way');
  await waitState(page, 'lost on the way', 'sent');
  await waitText(page, WELCOME);
  await sleep(500);
  assert.deepEqual(await transcript(page), [`bot: ${GREETING}`, 'me: taken, its ack lost',
    'bot: You said: taken, its ack lost', 'me: lost on the way', `bot: ${WELCOME}`, 'bot: You said: lost on the way']);
  assert.deepEqual(sent.map((f) => f.mid), [lost], 'only the one the server never had is sent again, once');
  assert.equal(reached.filter((f) => f.mid === lost).length, 1);
  assert.deepEqual(await stored(page), []);
  await context.close();
});

test('messages refused as rate_limited are sent again a moment later, each answered once', async (t) => {
  const limited = await startServer(['--bot', 'demo', '--rate', '1', '--burst', '2']);
  t.after(() => limited.stop());
  const context = await freshContext();
  const page = await openChat(context, '', limited.port);
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');
  const words = ['one', 'two', 'three', 'four'];
  for (const w of words) await send(page, w);
  for (const w of words) await waitText(page, `You said: ${w}`, 1, 20000);
  for (const w of words) await waitState(page, w, 'sent');
  await sleep(500);
  const lines = await transcript(page);
  for (const w of words) {
    assert.equal(count(lines, `me: ${w}`), 1, lines.join('\n'));
    assert.equal(count(lines, `bot: You said: ${w}`), 1, lines.join('\n'));
  }
  assert.ok(page.sent.filter((f) => f.type === 'message').length > words.length, 'some were refused and sent again');
  assert.equal(await page.$$eval('#messages .msg.notice', (e) => e.length), 0, 'nothing for the person to do');
  await context.close();
});

test('a message too large for the server is marked not sent, and not sent again on every reconnect', async (t) => {
  const small = await startServer(['--bot', 'demo', '--max-message', '1024']);
  t.after(() => small.stop());
  const context = await freshContext();
  const page = await openChat(context, '', small.port);
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');
  const big = 'x'.repeat(2000);
  await send(page, big);
  await waitState(page, big, 'failed');
  const [m] = await mine(page, big);
  assert.equal(m.words, 'not sent');
  await waitText(page, 'That message is too long to send.');
  await page.waitForSelector('body[data-status="online"]', { timeout: 20000 });
  await send(page, 'a short one');
  await waitText(page, 'You said: a short one');
  await waitState(page, 'a short one', 'sent');
  assert.equal(page.sent.filter((f) => f.text === big).length, 1, 'sent once, never again');
  assert.deepEqual(await stored(page), []);
  await context.close();
});

test('the webhook channel, chosen in the options: replies, a token, history, and pushed messages', async () => {
  const context = await freshContext();
  const page = await openChat(context, '?transport=webhook');
  await waitText(page, GREETING);
  assert.equal(page.sent.length, 0, 'no websocket at all');
  await send(page, 'over http');
  await waitText(page, 'You said: over http');
  await send(page, 'count to five');
  await waitText(page, 'Five.', 1, 20000); // later messages arrive by polling
  await page.reload();
  await waitText(page, 'You said: over http'); // history: the webhook greeting gave it a token
  await waitText(page, WELCOME);
  const t = await transcript(page);
  assert.equal(count(t, 'bot: Five.'), 1);
  await context.close();
});

test('the webhook channel sends a message again after a network error and a 503, and shows it once', async () => {
  const context = await freshContext();
  const page = await openChat(context, '?transport=webhook');
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');
  const posts = [];
  const acks = [];
  await page.route('**/api/messages', async (route) => {
    const body = route.request().postDataJSON();
    if (body.type !== 'message') return route.continue();
    posts.push(body);
    if (posts.length === 1) return route.abort('connectionreset');
    if (posts.length === 2) {
      return route.fulfill({ status: 503, contentType: 'application/json',
        body: JSON.stringify({ type: 'error', code: 'unavailable', mid: body.mid }) });
    }
    const res = await route.fetch();
    acks.push(res.headers()['x-anywhere-ack']);
    return route.fulfill({ response: res });
  });
  await send(page, 'over a bad line');
  await waitText(page, 'You said: over a bad line', 1, 20000);
  await waitState(page, 'over a bad line', 'sent');
  await sleep(300);
  assert.equal(posts.length, 3);
  assert.ok(posts.every((p) => p.mid === posts[0].mid && p.text === 'over a bad line'), 'one mid throughout');
  assert.deepEqual(acks, [posts[0].mid], 'the answer that got through names it');
  const lines = await transcript(page);
  assert.equal(count(lines, 'me: over a bad line'), 1);
  assert.equal(count(lines, 'bot: You said: over a bad line'), 1);
  assert.deepEqual(await stored(page), []);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('websockets blocked on the way: the page falls back to the webhook channel by itself', async () => {
  const context = await freshContext();
  await context.routeWebSocket(/.*/, (ws) => ws.close({ code: 1006 }));
  const page = await openChat(context);
  await waitText(page, GREETING, 1, 20000);
  await page.waitForSelector('body[data-status="online"]');
  await send(page, 'no socket here');
  await waitText(page, 'You said: no socket here');
  await context.close();
});

test('the embed snippet on a page from another port opens the chat, and closes it', async () => {
  const host = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>Shop</title><h1>A shop</h1><p>Things for sale.</p>
      <script src="http://127.0.0.1:${port}/embed.js" data-title="Shop help" data-color="#0e9384"></script>`);
  });
  await new Promise((r) => host.listen(0, '127.0.0.1', r));
  const context = await freshContext();
  try {
    await embedded(context, host.address().port);
  } finally {
    await context.close();
    await new Promise((r) => host.close(r));
  }
});

async function embedded(context, hostPort) {
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${hostPort}/`);
  await page.click('button.anywhere-launcher');
  const frame = await (await page.waitForSelector('iframe.anywhere-frame')).contentFrame();
  await frame.waitForSelector('#messages .msg.bot', { timeout: 10000 });
  assert.equal(await frame.textContent('#title'), 'Shop help');
  assert.equal(await page.getAttribute('button.anywhere-launcher', 'aria-expanded'), 'true');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'embed.png') });
  await frame.click('#close'); // the chat's own close button
  await page.waitForSelector('iframe.anywhere-frame', { state: 'hidden' });
  assert.equal(await page.getAttribute('button.anywhere-launcher', 'aria-expanded'), 'false');
  await page.click('button.anywhere-launcher');
  await page.waitForSelector('iframe.anywhere-frame', { state: 'visible' });
  await page.keyboard.press('Escape'); // the focus is in the chat: it asks the host page to close
  await page.waitForSelector('iframe.anywhere-frame', { state: 'hidden' });
  assert.equal(await page.getAttribute('button.anywhere-launcher', 'aria-expanded'), 'false');
}

test('screenshots of the chat, desktop and phone, light and dark', async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const context = await freshContext();
  const page = await openChat(context);
  await waitText(page, GREETING);
  await page.waitForSelector('body[data-status="online"]');
  await send(page, 'help');
  await waitText(page, HELP);
  await send(page, 'sequence');
  await waitText(page, 'And this is the last one, with a picture.');
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-desktop.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-phone.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-phone-dark.png') });
  for (const f of ['chat-desktop.png', 'chat-phone.png', 'chat-phone-dark.png']) {
    assert.ok(fs.statSync(path.join(ARTIFACTS, f)).size > 1000, f);
  }
  // Nothing on a phone screen is wider than the screen.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
  await context.close();
});
