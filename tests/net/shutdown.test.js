// SIGTERM under load: the server stops accepting, finishes the turns in
// flight, closes websockets with 1001 and exits 0 within a few seconds.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startServer, Client, post, sleep } = require('./lib');

test('SIGTERM under load exits 0 promptly and closes sockets with 1001', async () => {
  const srv = await startServer(['--bot', 'demo']);
  const clients = await Promise.all(Array.from({ length: 50 }, () => Client.open(srv.port)));
  let sending = true;
  const loops = clients.map(async (c, i) => {
    c.send({ type: 'hello', user: `sd-${i}` });
    let n = 0;
    while (sending && c.ws.readyState === 1) {
      c.send({ type: 'message', user: `sd-${i}`, text: i % 5 === 0 ? 'sequence' : `m${n++}` });
      await sleep(5);
    }
  });
  const hooks = Array.from({ length: 10 }, async (_, i) => {
    while (sending) {
      await post(srv.port, '/api/messages', { type: 'message', user: `sdw-${i}`, text: 'x' }).catch(() => {});
    }
  });
  await sleep(500);
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const { code } = await srv.exited;
  const took = Date.now() - t0;
  sending = false;
  assert.equal(code, 0, srv.log());
  assert.ok(took < 8000, `took ${took} ms`);
  const codes = await Promise.all(clients.map((c) => c.closed));
  assert.ok(codes.every((x) => x === 1001 || x === 1006), JSON.stringify(codes));
  assert.ok(codes.filter((x) => x === 1001).length >= 45, JSON.stringify(codes));
  // A typed sequence that was under way was finished, not cut: every client
  // that asked for one got all three parts or none had started.
  for (let i = 0; i < clients.length; i += 5) {
    const texts = clients[i].messages().map((m) => m.text);
    const firsts = texts.filter((t) => t === 'This is the first of three messages.').length;
    const lasts = texts.filter((t) => t === 'And this is the last one, with a picture.').length;
    assert.equal(firsts, lasts, `client ${i}: ${firsts} sequences started, ${lasts} finished`);
  }
  await Promise.all([...loops, ...hooks]);
});

// A bot over --bot-url that answers each message with its text, and takes
// `slowMs` over the text "slow".
function startBot(slowMs) {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', async () => {
      const msg = JSON.parse(body);
      if (msg.text === 'slow') await sleep(slowMs);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(msg.text ? [{ text: msg.text }] : []));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}/bot`,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  })));
}

// POST /botkit/receive on a kept-alive connection (the listener is closed at
// SIGTERM; a connection opened before goes on until the server stops).
function receive(agent, port, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: '127.0.0.1', port, method: 'POST', path: '/botkit/receive',
      headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function until(cond, ms) {
  for (const end = Date.now() + ms; !cond() && Date.now() < end;) await sleep(5);
  return cond();
}

test('messages that arrive between SIGTERM and the 1001 close get a reply or `unavailable`, never silence', async (t) => {
  // A turn in flight at SIGTERM is finished before the sockets are closed:
  // a slow one holds that window open for a second and a half.
  const bot = await startBot(1500);
  const srv = await startServer(['--bot-url', bot.url, '--rate', '0', '--bot-timeout', '5000']);
  const slow = await Client.open(srv.port);
  slow.send({ type: 'message', user: 'sd-slow', text: 'slow' });
  const c = await Client.open(srv.port);
  let closed = null;
  c.closed.then((code) => { closed = code; });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  assert.equal((await receive(agent, srv.port, { type: 'message', user: 'sd-hook', text: 'hi' })).status, 200);

  // One message at a time, each waiting for its reply or error: the answer
  // to a message is told apart without ids.
  let sent = 0;
  const answers = () => c.frames.filter((f) => f.type === 'error' || /^m\d+$/.test(f.text)).length;
  const chatting = (async () => {
    while (closed === null) {
      c.send({ type: 'message', user: 'sd-steady', text: `m${sent}` });
      sent++;
      await until(() => answers() >= sent || closed !== null, 10000);
    }
  })();
  const hooks = [];
  const hooking = (async () => {
    for (;;) {
      try {
        hooks.push(await receive(agent, srv.port, { type: 'message', user: 'sd-hook', text: `h${hooks.length}` }));
        await sleep(5);
      } catch (e) {
        return; // the server is gone
      }
    }
  })();
  await until(() => answers() >= 5, 5000);
  srv.proc.kill('SIGTERM');
  const { code } = await srv.exited;
  await Promise.all([chatting, hooking]);
  agent.destroy();
  await bot.close();
  assert.equal(code, 0, srv.log());
  assert.equal(closed, 1001);
  assert.deepEqual(slow.messages().map((m) => m.text), ['slow'], 'the turn in flight was finished');

  const errors = c.frames.filter((f) => f.type === 'error');
  const replies = c.messages().map((m) => m.text);
  t.diagnostic(JSON.stringify({ sent, replies: replies.length, unavailable: errors.length, hooks: hooks.length, hooks503: hooks.filter((h) => h.status === 503).length }));
  assert.ok(errors.every((e) => e.code === 'unavailable'), JSON.stringify(errors));
  assert.ok(errors.length >= 1, `messages during the stop were answered (${sent} sent, ${replies.length} replies)`);
  assert.deepEqual(replies, Array.from({ length: replies.length }, (_, i) => `m${i}`), 'replies in order');
  // Only the message under way when the 1001 close came may have had no
  // answer: the close tells the client to send it again.
  assert.ok(sent - replies.length - errors.length <= 1,
    `${sent} sent, ${replies.length} replies, ${errors.length} unavailable`);

  assert.ok(hooks.length >= 2);
  const statuses = hooks.map((h) => h.status);
  const first503 = statuses.indexOf(503);
  assert.ok(first503 > 0, JSON.stringify(statuses));
  assert.ok(statuses.slice(0, first503).every((s) => s === 200), JSON.stringify(statuses));
  assert.ok(hooks.slice(first503).every((h) => h.status === 503 && h.json.code === 'unavailable'), JSON.stringify(hooks));
});
