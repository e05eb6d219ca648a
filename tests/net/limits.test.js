// Hardening: rate limits, connection caps, keepalive, slow readers, origins
// and CORS, metrics and TLS. Each starts its own server with small limits.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const net = require('node:net');
const { startServer, Client, post, sleep, WebSocket, rawWebsocket, frame } = require('./lib');

async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : NaN;
}

test('over the rate: rate_limited, the message is dropped and not stored', async () => {
  const srv = await startServer(['--bot', 'echo', '--rate', '2', '--burst', '5']);
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'rl' });
  const [s] = await c.waitFor((f) => f.type === 'session');
  for (let i = 0; i < 12; i++) c.send({ type: 'message', user: 'rl', text: `m${i}` });
  const errs = await c.waitFor((f) => f.type === 'error', 8);
  assert.ok(errs.every((e) => e.code === 'rate_limited'));
  // The webhook right away, while the bucket is empty: at 2 a second it
  // holds a token again 500 ms later, which a slow (sanitizer) run reached
  // when this came after the checks below.
  const r = await post(srv.port, '/api/messages', { type: 'message', user: 'rl', text: 'x' });
  assert.equal(r.status, 429);
  assert.equal(r.json.code, 'rate_limited');
  await sleep(300);
  const replies = c.messages().map((m) => m.text);
  assert.deepEqual(replies, ['m0', 'm1', 'm2', 'm3'], 'the burst of 5 less the hello');
  const h = await post(srv.port, '/botkit/history', { user: 'rl', token: s.token, limit: 100 });
  assert.equal(h.json.history.filter((e) => e.type === 'message_received').length, 4);
  await sleep(600); // the bucket refills
  c.send({ type: 'message', user: 'rl', text: 'later' });
  await c.waitFor((f) => f.text === 'later');
  assert.ok(await metric(srv.port, 'anywhere_rate_limited_total') >= 9);
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('connections over the per-address cap are refused; the others go on', async () => {
  const srv = await startServer(['--bot', 'echo', '--max-connections-per-ip', '3']);
  const ok = await Promise.all([0, 1, 2].map(() => Client.open(srv.port)));
  const extra = new WebSocket(`ws://127.0.0.1:${srv.port}/`);
  const outcome = await new Promise((resolve) => {
    extra.on('open', () => resolve('open'));
    extra.on('error', () => resolve('refused'));
    extra.on('close', () => resolve('refused'));
  });
  assert.equal(outcome, 'refused');
  ok[0].send({ type: 'message', user: 'cap', text: 'still fine' });
  await ok[0].waitFor((f) => f.text === 'still fine');
  await Promise.all(ok.map((c) => c.close())); /* /metrics itself needs a connection below the cap */
  await sleep(100);
  assert.ok(await metric(srv.port, 'anywhere_connections_refused_total') >= 1);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

// Opens a connection that the server may refuse: 'open' or 'refused'.
function tryWebsocket(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  return new Promise((resolve) => {
    ws.on('open', () => resolve({ outcome: 'open', ws }));
    ws.on('error', () => resolve({ outcome: 'refused', ws }));
    ws.on('close', () => resolve({ outcome: 'refused', ws }));
  });
}

test('connections over the total cap are refused cleanly; the open ones go on', async () => {
  const srv = await startServer(['--bot', 'echo', '--max-connections', '3']);
  const ok = await Promise.all([0, 1, 2].map(() => Client.open(srv.port)));
  ok.forEach((c, i) => c.send({ type: 'hello', user: `total-${i}` }));
  await Promise.all(ok.map((c) => c.waitFor((f) => f.type === 'session')));
  const t0 = Date.now();
  const extra = await tryWebsocket(srv.port);
  assert.equal(extra.outcome, 'refused');
  assert.ok(Date.now() - t0 < 3000, 'refused at once, not left hanging until --http-timeout (10 s)');
  // plain HTTP over the cap is refused the same way: closed, no answer
  const http = await rawConnection(srv.port);
  http.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`);
  assert.ok(await Promise.race([http.closedAt, sleep(2000).then(() => 0)]) !== 0, 'closed at once');
  assert.equal(http.received, '');
  for (const [i, c] of ok.entries()) {
    c.send({ type: 'message', user: `total-${i}`, text: `still fine ${i}` });
    await c.waitFor((f) => f.text === `still fine ${i}`);
  }
  // the cap counts open connections: one closed, one more gets in
  await ok[0].close();
  await sleep(100);
  const again = await Client.open(srv.port);
  again.send({ type: 'hello', user: 'total-again' });
  await again.waitFor((f) => f.type === 'session');
  await Promise.all([again, ok[1], ok[2]].map((c) => c.close()));
  await sleep(100);
  assert.ok(await metric(srv.port, 'anywhere_connections_refused_total') >= 2);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

// One keep-alive GET /healthz on a fresh connection, held open afterwards:
// 'answered' with the answer, or 'refused' when the server closed the
// connection without one.
function heldHealthz(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    });
    let received = '';
    sock.on('data', (d) => {
      received += d;
      if (/\r\n\r\n\{.*\}$/s.test(received)) resolve({ outcome: 'answered', text: received, sock });
    });
    sock.on('error', () => {});
    sock.on('close', () => resolve({ outcome: received === '' ? 'refused' : 'cut', text: received, sock }));
  });
}

// A request on its own connection, closed after the answer (nothing is left
// open to count against a cap): { status, text }, or null when refused.
function adminRequest(port, path, method = 'GET') {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', () => resolve(null));
    });
    req.on('error', () => resolve(null));
    req.end();
  });
}

test('with --max-connections reached, the admin listener still serves /healthz and /metrics, within its own cap', async () => {
  const srv = await startServer(['--bot', 'echo', '--max-connections', '3', '--max-connections-per-ip', '3',
    '--admin-listen', '127.0.0.1:0', '--http-timeout', '60000']);
  assert.ok(srv.adminPort > 0 && srv.adminPort !== srv.port, srv.log());
  const ok = await Promise.all([0, 1, 2].map(() => Client.open(srv.port)));
  ok.forEach((c, i) => c.send({ type: 'hello', user: `admin-${i}` }));
  await Promise.all(ok.map((c) => c.waitFor((f) => f.type === 'session')));
  // the main address is full: its /healthz is refused like everything else
  const main = await rawConnection(srv.port);
  main.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`);
  assert.ok(await Promise.race([main.closedAt, sleep(5000).then(() => 0)]) !== 0, 'closed at once');
  assert.equal(main.received, '');
  // The admin address answers, from the same client address, up to its own
  // cap of 64 open connections and no further. Nothing else has connected
  // to it yet, so exactly 64 of these get in.
  const held = await Promise.all(Array.from({ length: 72 }, () => heldHealthz(srv.adminPort)));
  const answered = held.filter((h) => h.outcome === 'answered');
  assert.equal(answered.length, 64, held.map((h) => h.outcome).join(' '));
  assert.equal(held.filter((h) => h.outcome === 'refused').length, 8);
  for (const h of answered) {
    assert.match(h.text, /^HTTP\/1.1 200/);
    assert.match(h.text, /"status":"ok".*"websockets":3/);
  }
  assert.equal((await heldHealthz(srv.adminPort)).outcome, 'refused', 'the cap still holds');
  // meanwhile the chat goes on, and the admin connections count against
  // neither cap of the main address: one closed, one more gets in
  ok[1].send({ type: 'message', user: 'admin-1', text: 'still chatting' });
  await ok[1].waitFor((f) => f.text === 'still chatting');
  await ok[0].close();
  let again = null;
  for (let i = 0; i < 50 && again === null; i++) {
    const t = await tryWebsocket(srv.port);
    if (t.outcome === 'open') again = t.ws;
    else await sleep(100); // until the server has seen the close
  }
  assert.ok(again !== null, 'a new websocket got in next to 64 admin connections');
  again.close();
  for (const h of held) h.sock.destroy();
  // once they are closed, the admin address takes connections again
  let scrape = null;
  for (let i = 0; i < 50 && scrape === null; i++) {
    scrape = await adminRequest(srv.adminPort, '/metrics');
    if (scrape === null) await sleep(100);
  }
  assert.ok(scrape !== null, 'the admin address took a connection again');
  assert.equal(scrape.status, 200);
  const value = (name) => Number((new RegExp(`^${name} (\\d+)$`, 'm').exec(scrape.text) || [])[1]);
  assert.ok(value('anywhere_connections') >= 2 && value('anywhere_connections') <= 3, scrape.text);
  assert.ok(value('anywhere_connections_refused_total') >= 1, 'the refusal of the main /healthz');
  assert.ok(value('anywhere_admin_connections_refused_total') >= 9, scrape.text);
  assert.equal(value('anywhere_admin_connections'), 1, 'the scrape itself');
  // nothing but GET /healthz and GET /metrics
  for (const [path, method] of [['/', 'GET'], ['/index.html', 'GET'], ['/healthz/x', 'GET'],
    ['/api/messages', 'POST'], ['/botkit/history', 'POST']]) {
    const r = await adminRequest(srv.adminPort, path, method);
    assert.equal(r && r.status, 404, `${method} ${path}`);
  }
  assert.equal((await adminRequest(srv.adminPort, '/metrics', 'POST')).status, 405);
  assert.equal((await adminRequest(srv.adminPort, '/healthz?probe=1')).status, 200);
  const upgrade = await new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.adminPort}/`);
    ws.on('open', () => { ws.close(); resolve('open'); });
    ws.on('unexpected-response', (req, res) => resolve(res.statusCode));
    ws.on('error', () => resolve('error'));
  });
  assert.equal(upgrade, 404, 'no websocket on the admin address');
  await Promise.all([ok[1], ok[2]].map((c) => c.close()));
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('an admin address in use stops the start with exit code 1', async () => {
  const { spawnSync } = require('node:child_process');
  const taken = net.createServer();
  await new Promise((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const srv = await startServer(['--bot', 'echo']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-test-'));
  // a port anything listens on, and the main port of a running server
  for (const port of [taken.address().port, srv.port]) {
    const second = spawnSync(process.env.ANYWHERE_BIN,
      ['--port', '0', '--data-dir', dir, '--bot', 'echo', '--admin-listen', `127.0.0.1:${port}`],
      { encoding: 'utf8', timeout: 10000 });
    assert.equal(second.status, 1, second.stderr);
    assert.match(second.stderr,
      new RegExp(`cannot listen on the admin address 127\\.0\\.0\\.1:${port}: Address already in use`));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  taken.close();
  // the running server was not disturbed
  const c = await Client.open(srv.port);
  c.send({ type: 'message', user: 'undisturbed', text: 'here' });
  await c.waitFor((f) => f.text === 'here');
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

// A raw TCP connection that records when the server closed it.
function rawConnection(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => resolve(sock));
    sock.received = '';
    sock.on('data', (d) => { sock.received += d; });
    sock.closedAt = new Promise((r) => sock.on('close', () => r(Date.now())));
    sock.on('error', () => {});
    sock.once('error', reject);
  });
}

test('--http-timeout closes an idle keep-alive connection and a slow header sender', async () => {
  const timeout = 500;
  const srv = await startServer(['--bot', 'echo', '--http-timeout', String(timeout)]);
  // idle after one request on a keep-alive connection
  const idle = await rawConnection(srv.port);
  idle.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nConnection: keep-alive\r\n\r\n`);
  for (let i = 0; i < 50 && !/\r\n\r\n/.test(idle.received); i++) await sleep(20);
  assert.match(idle.received, /^HTTP\/1.1 200/);
  const idleFrom = Date.now();
  // a request whose headers come one byte at a time and never end
  const slow = await rawConnection(srv.port);
  const slowFrom = Date.now();
  slow.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
  const drip = setInterval(() => { if (!slow.destroyed) slow.write('a'); }, 50);
  // a live connection is not affected meanwhile
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'ht' });
  await c.waitFor((f) => f.type === 'session');
  const [idleAt, slowAt] = await Promise.race([
    Promise.all([idle.closedAt, slow.closedAt]),
    sleep(timeout * 8).then(() => [NaN, NaN]),
  ]);
  clearInterval(drip);
  assert.ok(idleAt - idleFrom >= timeout * 0.8 && idleAt - idleFrom < timeout * 4,
    `the idle connection was closed after ${idleAt - idleFrom} ms`);
  assert.ok(slowAt - slowFrom >= timeout * 0.8 && slowAt - slowFrom < timeout * 4,
    `the slow header sender was closed after ${slowAt - slowFrom} ms`);
  assert.doesNotMatch(slow.received, /^HTTP\/1.1 200/, 'the slow request was never served');
  c.send({ type: 'message', user: 'ht', text: 'still here' });
  await c.waitFor((f) => f.text === 'still here');
  idle.destroy();
  slow.destroy();
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a socket that never answers pings is closed; a live one stays', async () => {
  const srv = await startServer(['--bot', 'echo', '--ping-interval', '300']);
  const live = await Client.open(srv.port); // ws answers pings by itself
  live.send({ type: 'hello', user: 'alive' });
  const dead = await rawWebsocket(srv.port);
  dead.pause(); // never reads: never answers
  const closed = new Promise((resolve) => dead.on('close', resolve));
  dead.resume();
  dead.on('data', () => {}); // reads, but never answers the ping
  await Promise.race([closed, sleep(3000).then(() => assert.fail('the silent socket was not closed'))]);
  await sleep(700);
  live.send({ type: 'message', user: 'alive', text: 'still here' });
  await live.waitFor((f) => f.text === 'still here');
  assert.ok(await metric(srv.port, 'anywhere_sockets_closed_idle_total') >= 1);
  await live.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a reader that does not keep up is closed once its outbox is full; its messages stay recoverable', async () => {
  const key = 'k';
  const srv = await startServer(['--bot', 'echo', '--max-outbox', '65536', '--api-key', key, '--rate', '0']);
  const first = await Client.open(srv.port);
  first.send({ type: 'hello', user: 'slow' });
  const [s] = await first.waitFor((f) => f.type === 'session');
  await first.close();
  const sock = await rawWebsocket(srv.port);
  sock.write(frame({ type: 'welcome_back', user: 'slow', token: s.token }));
  await sleep(100);
  sock.pause(); // stop reading: the kernel buffers fill, then our outbox
  const text = 'x'.repeat(16000);
  const t0 = Date.now();
  for (let i = 0; i < 900 && Date.now() - t0 < 20000; i += 30) {
    if ((await metric(srv.port, 'anywhere_sockets_closed_slow_total')) !== 0) break;
    await Promise.all(Array.from({ length: 30 }, () =>
      post(srv.port, '/api/send', { user: 'slow', text }, { authorization: `Bearer ${key}` })));
  }
  assert.equal(await metric(srv.port, 'anywhere_sockets_closed_slow_total'), 1);
  sock.destroy();
  const again = await Client.open(srv.port);
  again.send({ type: 'reconnect', user: 'slow', token: s.token, last_seq: 0 });
  const got = await again.waitFor((f) => f.type === 'message', 100);
  assert.deepEqual(got.map((f) => f.seq), Array.from({ length: got.length }, (_, i) => i + 1),
    'every message the slow socket lost comes back, in order');
  await again.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('pages from other origins are refused unless allowed; allowed ones get CORS answers', async () => {
  const srv = await startServer(['--bot', 'echo', '--allowed-origin', 'http://good.example']);
  const tryWs = (origin) => new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/`, { origin });
    ws.on('open', () => { ws.close(); resolve('open'); });
    ws.on('unexpected-response', (req, res) => resolve(res.statusCode));
    ws.on('error', () => resolve('error'));
  });
  assert.equal(await tryWs('http://evil.example'), 403);
  assert.equal(await tryWs('http://good.example'), 'open');
  assert.equal(await tryWs(`http://127.0.0.1:${srv.port}`), 'open');
  let r = await post(srv.port, '/api/messages', { type: 'message', user: 'o1', text: 'x' }, { origin: 'http://evil.example' });
  assert.equal(r.status, 403);
  const res = await fetch(`${srv.url}/api/messages`, {
    method: 'OPTIONS',
    headers: { origin: 'http://good.example', 'access-control-request-method': 'POST' },
  });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), 'http://good.example');
  assert.match(res.headers.get('access-control-allow-methods'), /POST/);
  r = await fetch(`${srv.url}/api/messages`, {
    method: 'POST', headers: { origin: 'http://good.example', 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'message', user: 'o1', text: 'x' }),
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://good.example');
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('metrics count what happened, and healthz says the store is reachable', async () => {
  const srv = await startServer(['--bot', 'echo']);
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'm1' });
  c.send({ type: 'message', user: 'm1', text: 'a' });
  c.send('not json');
  await c.waitFor((f) => f.type === 'error');
  await c.waitFor((f) => f.text === 'a');
  await post(srv.port, '/api/messages', { type: 'message', user: 'm2', text: 'b' });
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(text, /^anywhere_messages_in_total\{channel="websocket"\} 2$/m);
  assert.match(text, /^anywhere_messages_in_total\{channel="webhook"\} 1$/m);
  assert.match(text, /^anywhere_messages_out_total\{channel="websocket"\} 1$/m);
  assert.match(text, /^anywhere_errors_total\{code="bad_json"\} 1$/m);
  assert.match(text, /^anywhere_websockets 1$/m);
  assert.match(text, /^anywhere_sessions 2$/m);
  assert.match(text, /^# TYPE anywhere_store_write_ms histogram$/m);
  assert.match(text, /^anywhere_store_up 1$/m);
  const h = await fetch(`${srv.url}/healthz`);
  assert.equal(h.status, 200);
  assert.deepEqual(await h.json(), { status: 'ok', store: 'ok', sessions: 2, websockets: 1 });
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('TLS: HTTPS and wss:// on the same port with a self-signed certificate', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-tls-'));
  const cert = path.join(dir, 'cert.pem'), key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  const srv = await startServer(['--bot', 'echo', '--tls-cert', cert, '--tls-key', key]);
  const body = await new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: srv.port, path: '/api/messages', method: 'POST',
      rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let d = '';
      res.on('data', (x) => { d += x; });
      res.on('end', () => resolve(d));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ type: 'message', user: 't1', text: 'over tls' }));
  });
  assert.equal(JSON.parse(body)[0].text, 'over tls');
  const ws = new WebSocket(`wss://127.0.0.1:${srv.port}/`, { rejectUnauthorized: false });
  const reply = await new Promise((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'message', user: 't2', text: 'wss works' })));
    ws.on('message', (d) => { const f = JSON.parse(d.toString()); if (f.type === 'message') resolve(f); });
    ws.on('error', reject);
  });
  assert.equal(reply.text, 'wss works');
  ws.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('logs: one JSON object per line, notable events only, never the text of a message', async () => {
  const srv = await startServer(['--bot', 'echo', '--log-format', 'json', '--log-level', 'debug']);
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'logged' });
  c.send({ type: 'message', user: 'logged', text: 'very secret words' });
  await c.waitFor((f) => f.text === 'very secret words');
  await c.close();
  await sleep(100);
  assert.equal((await srv.stop()).code, 0, srv.log());
  const lines = srv.log().trim().split('\n');
  const events = lines.map((l) => {
    try { return JSON.parse(l); } catch (e) { assert.fail(`a log line is not JSON (${e.message}): ${l}\n${srv.log()}`); }
  });
  for (const e of events) {
    assert.match(e.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['error', 'warn', 'info', 'debug'].includes(e.level));
  }
  const names = events.map((e) => e.event);
  for (const want of ['store', 'listening', 'ws_open', 'ws_close', 'stopping', 'stopped']) assert.ok(names.includes(want), want);
  assert.ok(!srv.log().includes('very secret words'), 'message text is never logged');
  const quiet = await startServer(['--bot', 'echo', '--log-level', 'warn']);
  assert.equal((await quiet.stop()).code, 0);
  assert.doesNotMatch(quiet.log(), /stopping|stopped/, 'info lines are dropped at warn');
});
