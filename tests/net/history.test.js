// History in a real SQLite file: both directions in order, the two history
// APIs with their tokens, paging to the beginning, recovery from the store
// after a reconnect, and numbering that survives a restart.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, Client, post, sleep, lockDatabase } = require('./lib');

async function history(port, body) { return post(port, '/botkit/history', body); }
async function page(port, user, token, query = '') {
  const res = await fetch(`http://127.0.0.1:${port}/api/history?user=${encodeURIComponent(user)}${query}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.status, json: await res.json() };
}

async function greet(port, user, extra = {}) {
  const c = await Client.open(port);
  c.send({ type: 'hello', user, ...extra });
  const [s] = await c.waitFor((f) => f.type === 'session');
  await c.waitFor((f) => f.type === 'message');
  return { c, token: s.token || extra.token };
}

test('both directions are kept in order; the Botkit history API needs the token', async () => {
  const srv = await startServer(['--bot', 'demo']);
  const { c, token } = await greet(srv.port, 'h1');
  for (let i = 0; i < 12; i++) {
    c.send({ type: 'message', user: 'h1', text: `m${i}`, custom: { i } });
    await c.waitFor((f) => f.text === `You said: m${i}`);
  }
  let r = await history(srv.port, { user: 'h1', token });
  assert.equal(r.status, 200);
  assert.equal(r.json.success, true);
  assert.equal(r.json.history.length, 10, 'default 10');
  r = await history(srv.port, { user: 'h1', token, limit: 100 });
  const h = r.json.history;
  assert.equal(h.length, 25, 'greeting + 12 x (message, reply)');
  assert.equal(h[0].type, 'message');
  assert.match(h[0].text, /^Hello!/);
  for (let i = 0; i < 12; i++) {
    assert.equal(h[1 + 2 * i].type, 'message_received');
    assert.equal(h[1 + 2 * i].text, `m${i}`);
    assert.deepEqual(h[1 + 2 * i].custom, { i });
    assert.equal(h[1 + 2 * i].token, undefined, 'tokens are never stored');
    assert.equal(h[2 + 2 * i].type, 'message');
    assert.equal(h[2 + 2 * i].text, `You said: m${i}`);
    assert.equal(h[2 + 2 * i].seq, i + 2);
  }
  assert.ok(h.every((e) => e.user === 'h1' && typeof e.ts === 'number'));
  r = await history(srv.port, { user: 'h1', token, limit: 3 });
  assert.deepEqual(r.json.history.map((e) => e.text), ['You said: m10', 'm11', 'You said: m11']);

  const other = await greet(srv.port, 'h2');
  for (const [body, why] of [
    [{ user: 'h1' }, 'no token'],
    [{ user: 'h1', token: 'f'.repeat(64) }, 'wrong token'],
    [{ user: 'h1', token: other.token }, 'another user\'s token'],
  ]) {
    r = await history(srv.port, body);
    assert.equal(r.status, 401, why);
    assert.equal(r.json.success, false);
    assert.equal(r.json.code, 'unauthorized');
  }
  r = await history(srv.port, { token });
  assert.equal(r.status, 400);
  r = await history(srv.port, { user: 'h1', token, limit: 1000 });
  assert.equal(r.status, 400);
  await c.close();
  await other.c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('GET /api/history pages back to the beginning with no gap and no repeat', async () => {
  const srv = await startServer(['--bot', 'echo']);
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'p1' });
  const [s] = await c.waitFor((f) => f.type === 'session');
  // Several messages in a row before a reply makes groups that pages must not split.
  for (let i = 0; i < 30; i++) c.send({ type: 'message', user: 'p1', text: `t${i}` });
  await c.waitFor((f) => f.type === 'message', 30);
  let r = await page(srv.port, 'p1', null);
  assert.equal(r.status, 401);
  r = await page(srv.port, 'p1', 'a'.repeat(64));
  assert.equal(r.status, 401);
  const seen = [];
  let query = '&limit=7', pages = 0;
  for (;;) {
    r = await page(srv.port, 'p1', s.token, query);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    seen.unshift(...r.json.history);
    pages++;
    if (!r.json.more) break;
    query = `&limit=7&before=${r.json.before}`;
    assert.ok(pages < 50);
  }
  assert.equal(seen.length, 60);
  const texts = seen.map((e) => `${e.type}:${e.text}`);
  const want = [];
  for (let i = 0; i < 30; i++) want.push(`message_received:t${i}`, `message:t${i}`);
  // The person's messages and the bot's replies interleave as they happened;
  // each text appears exactly once in each direction.
  assert.deepEqual([...texts].sort(), [...want].sort());
  const botSeqs = seen.filter((e) => e.type === 'message').map((e) => e.seq);
  assert.deepEqual(botSeqs, Array.from({ length: 30 }, (_, i) => i + 1));
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a client that returns with last_seq gets exactly what it missed, from the store', async () => {
  // --recent 1: memory keeps one message, so the rest must come from SQLite.
  const srv = await startServer(['--bot', 'demo', '--recent', '1']);
  const { c, token } = await greet(srv.port, 'r1');
  c.send({ type: 'message', user: 'r1', text: 'count to five' });
  const [ack] = await c.waitFor((f) => /count to five/.test(f.text || ''));
  await c.close();
  await sleep(2500); // the five messages are sent while the client is away
  const d = await Client.open(srv.port);
  d.send({ type: 'reconnect', user: 'r1', token, last_seq: ack.seq });
  const got = await d.waitFor((f) => f.type === 'message', 6);
  assert.deepEqual(got.slice(0, 5).map((f) => f.text), ['One.', 'Two.', 'Three.', 'Four.', 'Five.']);
  assert.deepEqual(got.slice(0, 5).map((f) => f.seq), [3, 4, 5, 6, 7].map((x) => x + ack.seq - 2));
  assert.match(got[5].text, /back online/);
  assert.equal(got[5].seq, ack.seq + 6);
  await sleep(200);
  assert.equal(d.messages().length, 6, 'nothing twice');
  // Without the token, nothing is replayed.
  const e = await Client.open(srv.port);
  e.send({ type: 'reconnect', user: 'r1', last_seq: 0 });
  await e.waitFor((f) => f.type === 'message');
  await sleep(200);
  assert.equal(e.messages().length, 1);
  await Promise.all([d.close(), e.close()]);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('after a restart, history and seq numbering continue', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-restart-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  let srv = await startServer(['--bot', 'echo'], { dataDir });
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'rs' });
  const [s] = await c.waitFor((f) => f.type === 'session');
  for (let i = 0; i < 5; i++) c.send({ type: 'message', user: 'rs', text: `a${i}` });
  await c.waitFor((f) => f.type === 'message', 5);
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  assert.ok(fs.existsSync(path.join(dataDir, 'anywhere.db')));

  srv = await startServer(['--bot', 'echo'], { dataDir });
  const d = await Client.open(srv.port);
  d.send({ type: 'welcome_back', user: 'rs', token: s.token });
  const [s2] = await d.waitFor((f) => f.type === 'session');
  // Numbers up to the block the stopped server reserved (1..64) may have
  // been handed out: numbering goes on above it, never below.
  assert.equal(s2.seq, 64, 'the session frame says where numbering stands');
  d.send({ type: 'message', user: 'rs', text: 'after' });
  const [m] = await d.waitFor((f) => f.text === 'after');
  assert.equal(m.seq, 65);
  const r = await history(srv.port, { user: 'rs', token: s.token, limit: 100 });
  assert.deepEqual(r.json.history.map((e) => e.text),
    ['a0', 'a0', 'a1', 'a1', 'a2', 'a2', 'a3', 'a3', 'a4', 'a4', 'after', 'after']);
  // A brand-new-looking hello for a user with history gets no token.
  const e = await Client.open(srv.port);
  e.send({ type: 'hello', user: 'rs' });
  const [s3] = await e.waitFor((f) => f.type === 'session');
  assert.equal(s3.token, undefined);
  await Promise.all([d.close(), e.close()]);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('SIGTERM under load: every message the server accepted is in the store, with its reply', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-term-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  // No rate limit: every message is accepted until the server stops reading.
  let srv = await startServer(['--bot', 'echo', '--rate', '0'], { dataDir });
  const users = Array.from({ length: 40 }, (_, i) => `term-${i}`);
  const clients = await Promise.all(users.map(() => Client.open(srv.port)));
  const tokens = {};
  await Promise.all(clients.map(async (c, i) => {
    c.send({ type: 'hello', user: users[i] });
    tokens[users[i]] = (await c.waitFor((f) => f.type === 'session'))[0].token;
  }));
  const sent = users.map(() => 0);
  let go = true;
  const loops = clients.map(async (c, i) => {
    while (go && c.ws.readyState === 1) {
      c.send({ type: 'message', user: users[i], text: `x${sent[i]++}` });
      await sleep(2);
    }
  });
  // Stop it under load: once 1,000 replies have come back (however fast
  // this build runs), with the clients still sending.
  const seenAll = () => clients.reduce((n, c) => n + c.messages().length, 0);
  for (const end = Date.now() + 60000; seenAll() < 1000 && Date.now() < end;) await sleep(20);
  srv.proc.kill('SIGTERM');
  assert.equal((await srv.exited).code, 0, srv.log());
  go = false;
  await Promise.all(loops);

  srv = await startServer(['--bot', 'echo'], { dataDir });
  let accepted = 0;
  for (let i = 0; i < users.length; i++) {
    const u = users[i];
    const errors = clients[i].frames.filter((f) => f.type === 'error');
    // What came once the sessions took nothing more was refused as
    // `unavailable` (to be sent again), never silently, and is not stored.
    assert.ok(errors.every((e) => e.code === 'unavailable'), `${u}: refused only as unavailable`);
    const seen = clients[i].messages().map((m) => m.text);
    const stored = [];
    let query = '&limit=100';
    for (;;) {
      const r = await page(srv.port, u, tokens[u], query);
      stored.unshift(...r.json.history);
      if (!r.json.more) break;
      query = `&limit=100&before=${r.json.before}`;
    }
    const replies = stored.filter((e) => e.type === 'message').map((e) => e.text);
    const received = stored.filter((e) => e.type === 'message_received').map((e) => e.text);
    // The server reads a socket's messages in order and stops reading at
    // SIGTERM, so what it accepted is x0..xK for some K: stored, in order,
    // with no gap, each once, and each with its reply stored too (a turn
    // accepted is finished). Every reply a client saw was accepted, so K is
    // at least the last one seen.
    assert.deepEqual(received, received.map((_, k) => `x${k}`), `${u}: accepted messages stored in order`);
    assert.deepEqual(replies, received, `${u}: every accepted message answered and the answer stored`);
    assert.ok(received.length + errors.length <= sent[i]);
    assert.deepEqual(seen, received.slice(0, seen.length), `${u}: every reply seen is stored`);
    accepted += received.length;
  }
  assert.ok(accepted >= 1000, `${accepted} messages accepted: under load`);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('SIGTERM while turns wait for the history: they are answered and stored, not dropped', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-term-'));
  // Each write attempt against the locked file blocks the history thread for
  // --store-timeout, so the last-seq reads of new users wait behind it.
  let srv = await startServer(['--bot', 'echo', '--rate', '0', '--store-timeout', '1500'], { dataDir });
  let lock = null;
  t.after(() => { lock?.release(); srv.proc.kill('SIGKILL'); fs.rmSync(dataDir, { recursive: true, force: true }); });
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'tw-0' });
  await c.waitFor((f) => f.type === 'session');
  lock = await lockDatabase(path.join(dataDir, 'anywhere.db'));
  c.send({ type: 'message', user: 'tw-0', text: 'blocks a write' });
  await c.waitFor((f) => f.text === 'blocks a write');
  await sleep(100); // the write has started and waits for the lock
  const hooks = Array.from({ length: 5 }, (_, i) =>
    post(srv.port, '/api/messages', { type: 'message', user: `tw-${i + 1}`, text: `hook ${i}`, channel: 'webhook' })
      .catch((e) => ({ status: 0, text: String(e.cause || e) })));
  await sleep(100);
  srv.proc.kill('SIGTERM');
  await sleep(800);
  await lock.release();
  lock = null;
  const answers = await Promise.all(hooks);
  assert.equal((await srv.exited).code, 0, srv.log());
  for (let i = 0; i < 5; i++) {
    assert.equal(answers[i].status, 200, answers[i].text);
    assert.deepEqual(answers[i].json.map((m) => m.text), [`hook ${i}`]);
  }
  srv = await startServer(['--bot', 'echo', '--history-auth', 'off'], { dataDir });
  for (let i = 0; i < 5; i++) {
    const r = await post(srv.port, '/botkit/history', { user: `tw-${i + 1}` });
    assert.deepEqual(r.json.history.map((e) => `${e.type}:${e.text}`), [`message_received:hook ${i}`, `message:hook ${i}`]);
  }
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});
