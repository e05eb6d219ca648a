// A user id alone unlocks nothing: once a client has proved a user's token,
// anyone who merely knows the id talks with the bot as a guest, apart from
// that user's conversation, variables, history and sockets. Clients that
// never send tokens (Botkit's own) stay trusted by id until then.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, Client, post, sleep } = require('./lib');

let srv;
test.before(async () => { srv = await startServer(['--bot', 'demo', '--rate', '0']); });
test.after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, srv.log()); });

async function say(c, user, text, extra = {}) {
  const before = c.messages().length;
  c.send({ type: 'message', user, text, ...extra });
  await c.waitFor((f) => f.type === 'message', before + 1);
  return c.messages()[before];
}

test('someone who knows a protected user id gets none of that user\'s conversation', async () => {
  // The user: a new id, its token, and a conversation that set a variable.
  const victim = await Client.open(srv.port);
  victim.send({ type: 'hello', user: 'v1' });
  const [session] = await victim.waitFor((f) => f.type === 'session');
  const token = session.token;
  await victim.waitFor((f) => f.type === 'message');
  await say(victim, 'v1', 'ask my name', { token });
  assert.equal((await say(victim, 'v1', 'Alice Secret', { token })).text, 'Nice to meet you, Alice Secret!');
  await say(victim, 'v1', 'ask my name', { token }); // a question left open

  // The intruder: the same id, no token, on a socket of its own.
  const intruder = await Client.open(srv.port);
  intruder.send({ type: 'welcome_back', user: 'v1' });
  const [s2] = await intruder.waitFor((f) => f.type === 'session');
  assert.equal(s2.token, undefined);
  assert.equal(s2.seq, 0, 'not even how far the user\'s numbering has gone');
  const [welcome] = await intruder.waitFor((f) => f.type === 'message');
  assert.equal(welcome.text, 'Welcome back! Nice to see you again.', 'the user\'s variables are not used');
  const reply = await say(intruder, 'v1', 'dinner');
  assert.equal(reply.text, 'You said: dinner', 'the user\'s open question does not take the intruder\'s answer');
  assert.equal(reply.seq, undefined, 'a guest\'s replies are not numbered in the user\'s stream');

  // Over a webhook, the same.
  const r = await post(srv.port, '/botkit/receive', { type: 'message', user: 'v1', text: 'dinner' });
  assert.equal(r.status, 200);
  assert.equal(r.json.text, 'You said: dinner');
  assert.equal(r.json.seq, undefined);

  // The user's own conversation is untouched: its question still waits, its
  // sockets saw nothing of the intruder, and its history holds nothing of it.
  await sleep(200);
  assert.ok(!victim.frames.some((f) => f.text === 'You said: dinner' || f.text === 'Welcome back! Nice to see you again.'));
  assert.equal((await say(victim, 'v1', 'Bob', { token })).text, 'Nice to meet you, Bob!');
  const h = await post(srv.port, '/botkit/history', { user: 'v1', token, limit: 100 });
  assert.equal(h.status, 200);
  assert.ok(!h.json.history.some((e) => /dinner/.test(e.text || '')), JSON.stringify(h.json.history));
  const seqs = h.json.history.filter((e) => e.type === 'message').map((e) => e.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'the user\'s numbering has no gaps');
  await intruder.close();
  await victim.close();
});

test('a client that never sends a token is trusted by id until someone proves it', async () => {
  // Botkit's own client: hello, then messages, never a token.
  const r1 = await post(srv.port, '/botkit/receive', { type: 'hello', user: 'old1' });
  assert.equal(r1.json.seq, 1);
  await post(srv.port, '/botkit/receive', { type: 'message', user: 'old1', text: 'ask my name' });
  const r2 = await post(srv.port, '/botkit/receive', { type: 'message', user: 'old1', text: 'Carol' });
  assert.equal(r2.json.text, 'Nice to meet you, Carol!', 'one conversation across requests');
  assert.equal(r2.json.seq, 3);
  // Its next visit, a socket that names the id without a token: the same conversation.
  const c = await Client.open(srv.port);
  c.send({ type: 'welcome_back', user: 'old1' });
  const [m] = await c.waitFor((f) => f.type === 'message');
  assert.equal(m.text, 'Welcome back, Carol! Nice to see you again.');
  assert.equal(m.seq, 4);
  await c.close();
});

test('a later reply reaches the socket that asked for it, even without a token', async () => {
  await post(srv.port, '/botkit/receive', { type: 'hello', user: 'old2' });
  const c = await Client.open(srv.port);
  c.send({ type: 'welcome_back', user: 'old2' }); // no token: an unproven socket
  await c.waitFor((f) => f.type === 'message');
  c.send({ type: 'message', user: 'old2', text: 'count to five' });
  const got = await c.waitFor((f) => f.text === 'Five.', 1, 8000);
  assert.equal(got.length, 1);
  assert.deepEqual(c.messages().slice(-5).map((f) => f.text), ['One.', 'Two.', 'Three.', 'Four.', 'Five.']);
  await c.close();
});

test('protection outlives a restart: after one, the id alone is still a guest', async (t) => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-protect-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  let s1 = await startServer(['--bot', 'echo', '--rate', '0'], { dataDir });
  const victim = await Client.open(s1.port);
  victim.send({ type: 'hello', user: 'pv1' });
  const [session] = await victim.waitFor((f) => f.type === 'session');
  const token = session.token;
  assert.equal((await say(victim, 'pv1', 'mine', { token })).seq, 1);
  await victim.close();
  // A user that never proved anything, for contrast: trusted by id before and after.
  assert.equal((await post(s1.port, '/botkit/receive', { type: 'message', user: 'open1', text: 'a' })).json.seq, 1);
  assert.equal((await s1.stop()).code, 0, s1.log());

  const s2 = await startServer(['--bot', 'echo', '--rate', '0'], { dataDir });
  t.after(() => s2.stop());
  const intruder = await Client.open(s2.port);
  intruder.send({ type: 'welcome_back', user: 'pv1' });
  const [is] = await intruder.waitFor((f) => f.type === 'session');
  assert.equal(is.seq, 0, 'the restarted server knows the id is protected before the first turn');
  const reply = await say(intruder, 'pv1', 'let me in');
  assert.equal(reply.seq, undefined, 'a guest');
  const hook = await post(s2.port, '/botkit/receive', { type: 'message', user: 'pv1', text: 'me too' });
  assert.equal(hook.json.seq, undefined, 'a guest over the webhook too');
  await intruder.close();
  // numbering goes on above the block the stopped server reserved (1..64)
  assert.equal((await post(s2.port, '/botkit/receive', { type: 'message', user: 'open1', text: 'b' })).json.seq, 65);

  const back = await Client.open(s2.port);
  back.send({ type: 'welcome_back', user: 'pv1', token });
  const [bs] = await back.waitFor((f) => f.type === 'session');
  assert.equal(bs.seq, 64);
  assert.equal((await say(back, 'pv1', 'still mine', { token })).seq, 65);
  const h = await post(s2.port, '/botkit/history', { user: 'pv1', token, limit: 100 });
  assert.deepEqual(h.json.history.map((e) => e.text), ['mine', 'mine', 'still mine', 'still mine']);
  await back.close();
  assert.equal((await s2.stop()).code, 0, s2.log());
});

// A token is HMAC(secret, id): the same every time it is computed. An id is
// issued its token once, ever: the claim that says so is in the store before
// the token leaves, so no later greeting of the id gets it, whether the
// user's session was freed, the server restarted, or it was killed the
// moment the token went out.
test('an id is issued its token once: not again after its session is freed, a restart or kill -9', async (t) => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-claim-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  // The echo bot answers a greeting with nothing: the first turn stores no message.
  const args = ['--bot', 'echo', '--rate', '0', '--session-idle', '100'];
  const greet = async (port, user, token) => {
    const c = await Client.open(port);
    c.send({ type: 'hello', user, last_seq: 0, ...(token ? { token } : {}) });
    const [s] = await c.waitFor((f) => f.type === 'session');
    return { c, s };
  };
  const hook = async (port, user) => {
    const res = await fetch(`http://127.0.0.1:${port}/botkit/receive`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'hello', user }),
    });
    assert.equal(res.status, 200);
    await res.text();
    return res.headers.get('x-anywhere-token');
  };
  const sessions = async (port) => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(/^anywhere_sessions (\d+)/m.exec(text)[1]);
  };
  const reaped = async (port) => {
    for (let i = 0; i < 200 && await sessions(port) !== 0; i++) await sleep(25);
    assert.equal(await sessions(port), 0, 'the sessions were freed');
  };

  let s1 = await startServer(args, { dataDir });
  // Session freed, websocket.
  const first = await greet(s1.port, 'claim-ws');
  assert.match(first.s.token, /^[0-9a-f]{64}$/);
  await first.c.close();
  // Session freed, webhook.
  assert.match(await hook(s1.port, 'claim-hook'), /^[0-9a-f]{64}$/);
  await reaped(s1.port);
  const again = await greet(s1.port, 'claim-ws');
  assert.equal(again.s.token, undefined, 'a freed session does not make the id new again');
  await again.c.close();
  assert.equal(await hook(s1.port, 'claim-hook'), null, 'nor over the webhook');
  // Graceful restart.
  const beforeStop = await greet(s1.port, 'claim-term');
  assert.match(beforeStop.s.token, /^[0-9a-f]{64}$/);
  await beforeStop.c.close();
  assert.equal((await s1.stop()).code, 0, s1.log());

  let s2 = await startServer(args, { dataDir });
  for (const user of ['claim-ws', 'claim-term']) {
    const g = await greet(s2.port, user);
    assert.equal(g.s.token, undefined, `${user}: not after a restart`);
    await g.c.close();
  }
  assert.equal(await hook(s2.port, 'claim-hook'), null);
  // kill -9 the moment the token has been sent.
  const killed = await greet(s2.port, 'claim-kill');
  s2.proc.kill('SIGKILL');
  const token = killed.s.token;
  assert.match(token, /^[0-9a-f]{64}$/);
  assert.equal((await s2.exited).signal, 'SIGKILL');

  const s3 = await startServer(args, { dataDir });
  t.after(() => s3.stop());
  const stranger = await greet(s3.port, 'claim-kill');
  assert.equal(stranger.s.token, undefined, 'not after kill -9 either');
  // The stranger is not verified: it sees none of the user's messages.
  const owner = await greet(s3.port, 'claim-kill', token);
  assert.equal(owner.s.token, token, 'the owner proves it and is welcome');
  owner.c.send({ type: 'message', user: 'claim-kill', text: 'private', token });
  await owner.c.waitFor((f) => f.type === 'message' && f.text === 'private');
  await sleep(100);
  assert.ok(!stranger.c.frames.some((f) => f.text === 'private'), JSON.stringify(stranger.c.frames));
  await stranger.c.close();
  await owner.c.close();
  assert.equal((await s3.stop()).code, 0, s3.log());
});
