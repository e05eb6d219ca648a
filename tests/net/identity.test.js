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
  assert.equal((await post(s2.port, '/botkit/receive', { type: 'message', user: 'open1', text: 'b' })).json.seq, 2);

  const back = await Client.open(s2.port);
  back.send({ type: 'welcome_back', user: 'pv1', token });
  const [bs] = await back.waitFor((f) => f.type === 'session');
  assert.equal(bs.seq, 1);
  assert.equal((await say(back, 'pv1', 'still mine', { token })).seq, 2);
  const h = await post(s2.port, '/botkit/history', { user: 'pv1', token, limit: 100 });
  assert.deepEqual(h.json.history.map((e) => e.text), ['mine', 'mine', 'still mine', 'still mine']);
  await back.close();
  assert.equal((await s2.stop()).code, 0, s2.log());
});
