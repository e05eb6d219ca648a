// The websocket channel with the demo bot: greetings, replies, typing, seq,
// tokens, and who sees which message.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, Client } = require('./lib');

let srv;
test.before(async () => { srv = await startServer(['--bot', 'demo']); });
test.after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, srv.log()); });

test('hello gets the new-user greeting and a session frame with a token', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'alice', channel: 'socket', user_profile: null });
  const [session] = await c.waitFor((f) => f.type === 'session');
  assert.equal(session.user, 'alice');
  assert.match(session.token, /^[0-9a-f]{64}$/);
  const [m] = await c.waitFor((f) => f.type === 'message');
  assert.match(m.text, /^Hello! I am the anywhere demo bot/);
  assert.equal(m.user, 'alice');
  assert.equal(m.seq, 1);
  assert.deepEqual(m.quick_replies.map((q) => q.payload), ['help', 'sequence', 'ask my name']);
  assert.ok(c.frames.indexOf(session) < c.frames.indexOf(m), 'session frame comes first');
  await c.close();
});

test('welcome_back gets the returning greeting, message gets a reply, seq goes up by one', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'bob' });
  const [session] = await c.waitFor((f) => f.type === 'session');
  await c.waitFor((f) => f.type === 'message');
  await c.close();

  const d = await Client.open(srv.port);
  d.send({ type: 'welcome_back', user: 'bob', token: session.token });
  const [wb] = await d.waitFor((f) => f.type === 'message');
  assert.match(wb.text, /^Welcome back/);
  d.send({ type: 'message', user: 'bob', text: 'ping pong' });
  const msgs = await d.waitFor((f) => f.type === 'message', 2);
  assert.equal(msgs[1].text, 'You said: ping pong');
  assert.equal(msgs[1].seq, msgs[0].seq + 1);
  assert.equal(wb.seq, 2, 'numbering continues from the first socket');
  await d.close();
});

test('typing precedes each message of a typed sequence', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'carol' });
  await c.waitFor((f) => f.type === 'message');
  c.send({ type: 'message', user: 'carol', text: 'show me a sequence please' });
  await c.waitFor((f) => f.type === 'message', 4, 8000);
  const tail = c.frames.slice(c.frames.findIndex((f) => f.type === 'message') + 1);
  assert.deepEqual(tail.map((f) => f.type), ['typing', 'message', 'typing', 'message', 'typing', 'message']);
  const seqs = tail.filter((f) => f.type === 'message').map((f) => f.seq);
  assert.deepEqual(seqs, [2, 3, 4]);
  assert.equal(tail[5].files[0].url, '/logo.svg');
  await c.close();
});

test('ask waits for the answer and remembers it', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'dave' });
  await c.waitFor((f) => f.type === 'message');
  c.send({ type: 'message', user: 'dave', text: 'ask my name' });
  await c.waitFor((f) => f.type === 'message' && f.text === 'What is your name?');
  c.send({ type: 'message', user: 'dave', text: 'Dave' });
  await c.waitFor((f) => f.type === 'message' && f.text === 'Nice to meet you, Dave!');
  c.send({ type: 'message', user: 'dave', text: 'Dave' });
  await c.waitFor((f) => f.type === 'message' && f.text === 'You said: Dave');
  await c.close();
});

test('two sockets of one user both get every reply; another user gets none of them', async () => {
  const a = await Client.open(srv.port);
  a.send({ type: 'hello', user: 'erin' });
  const [session] = await a.waitFor((f) => f.type === 'session');
  await a.waitFor((f) => f.type === 'message');
  const b = await Client.open(srv.port);
  b.send({ type: 'welcome_back', user: 'erin', token: session.token });
  await b.waitFor((f) => f.type === 'message');
  const other = await Client.open(srv.port);
  other.send({ type: 'hello', user: 'frank' });
  await other.waitFor((f) => f.type === 'message');

  a.send({ type: 'message', user: 'erin', text: 'from tab a' });
  b.send({ type: 'message', user: 'erin', text: 'from tab b' });
  for (const c of [a, b]) {
    await c.waitFor((f) => f.type === 'message' && f.text === 'You said: from tab a');
    await c.waitFor((f) => f.type === 'message' && f.text === 'You said: from tab b');
  }
  other.send({ type: 'message', user: 'frank', text: 'mine' });
  await other.waitFor((f) => f.text === 'You said: mine');
  assert.ok(other.frames.every((f) => f.user === undefined || f.user === 'frank'), JSON.stringify(other.frames));
  assert.ok(a.frames.every((f) => f.user === undefined || f.user === 'erin'));
  await Promise.all([a.close(), b.close(), other.close()]);
});

test('a socket without the token does not see the other tabs of a known user', async () => {
  const a = await Client.open(srv.port);
  a.send({ type: 'hello', user: 'gina' });
  await a.waitFor((f) => f.type === 'message');
  const intruder = await Client.open(srv.port);
  intruder.send({ type: 'hello', user: 'gina' });
  const [s] = await intruder.waitFor((f) => f.type === 'session');
  assert.equal(s.token, undefined, 'no token for a user id that is already known');
  a.send({ type: 'message', user: 'gina', text: 'secret plans' });
  await a.waitFor((f) => f.text === 'You said: secret plans');
  intruder.send({ type: 'message', user: 'gina', text: 'hi' });
  await intruder.waitFor((f) => f.text === 'You said: hi');
  assert.ok(!intruder.frames.some((f) => f.text === 'You said: secret plans'), 'no leak to the intruder');
  const bad = await Client.open(srv.port);
  bad.send({ type: 'hello', user: 'gina', token: 'f'.repeat(64) });
  const [err] = await bad.waitFor((f) => f.type === 'error');
  assert.equal(err.code, 'unauthorized');
  await Promise.all([a.close(), intruder.close(), bad.close()]);
});

test('reconnect with last_seq and the token gets what was missed, once, in order', async () => {
  const a = await Client.open(srv.port);
  a.send({ type: 'hello', user: 'hank' });
  const [session] = await a.waitFor((f) => f.type === 'session');
  await a.waitFor((f) => f.type === 'message');
  const b = await Client.open(srv.port);
  b.send({ type: 'reconnect', user: 'hank', token: session.token, last_seq: 1 });
  await b.waitFor((f) => f.type === 'message' && /back online/.test(f.text));
  a.send({ type: 'message', user: 'hank', text: 'one' });
  a.send({ type: 'message', user: 'hank', text: 'two' });
  await a.waitFor((f) => f.text === 'You said: two');
  await b.waitFor((f) => f.text === 'You said: two');
  await b.close();
  const c = await Client.open(srv.port);
  c.send({ type: 'reconnect', user: 'hank', token: session.token, last_seq: 2 });
  const got = await c.waitFor((f) => f.type === 'message', 3);
  assert.deepEqual(got.map((f) => f.text), ['You said: one', 'You said: two', 'You are back online. Nothing was lost.']);
  assert.deepEqual(got.map((f) => f.seq), [3, 4, 5]);
  await Promise.all([a.close(), c.close()]);
});

test('a session with no socket left is freed after --session-idle, and comes back intact', async () => {
  const s2 = await startServer(['--bot', 'echo', '--session-idle', '300']);
  const health = async () => (await (await fetch(`${s2.url}/healthz`)).json());
  const c = await Client.open(s2.port);
  c.send({ type: 'hello', user: 'idle-1' });
  const [s] = await c.waitFor((f) => f.type === 'session');
  c.send({ type: 'message', user: 'idle-1', text: 'before' });
  await c.waitFor((f) => f.text === 'before');
  assert.equal((await health()).sessions, 1);
  await c.close();
  let h;
  for (let i = 0; i < 40; i++) {
    h = await health();
    if (h.sessions === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(h.sessions, 0, 'the idle session was freed');
  assert.equal(h.websockets, 0);
  const d = await Client.open(s2.port);
  d.send({ type: 'welcome_back', user: 'idle-1', token: s.token });
  const [s3] = await d.waitFor((f) => f.type === 'session');
  assert.equal(s3.seq, 1, 'numbering continues from the store');
  d.send({ type: 'message', user: 'idle-1', text: 'after' });
  const [m] = await d.waitFor((f) => f.text === 'after');
  assert.equal(m.seq, 2);
  await d.close();
  assert.equal((await s2.stop()).code, 0, s2.log());
});

test('a second server on a port in use refuses to start, and the first keeps every user', async () => {
  // With SO_REUSEPORT listeners, a second process could otherwise join the
  // port and silently take a share of the connections with its own store.
  const { spawnSync } = require('node:child_process');
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-test-'));
  const second = spawnSync(process.env.ANYWHERE_BIN, ['--port', String(srv.port), '--data-dir', dir, '--bot', 'echo'],
    { encoding: 'utf8', timeout: 10000 });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(second.status, 1, second.stderr);
  assert.match(second.stderr, /cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
  // every new connection still reaches the first server (the demo bot)
  for (let i = 0; i < 8; i++) {
    const c = await Client.open(srv.port);
    c.send({ type: 'hello', user: `port-${i}` });
    const [m] = await c.waitFor((f) => f.type === 'message');
    assert.match(m.text, /demo bot/);
    await c.close();
  }
});
