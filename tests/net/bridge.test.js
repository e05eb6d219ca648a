// Bots in other languages: the --bot-url bridge (a real HTTP bot server
// started here), its signature, per-user ordering and failure modes, and the
// proactive POST /api/send.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const crypto = require('node:crypto');
const { startServer, Client, post, sleep } = require('./lib');

const SECRET = 'bridge-test-secret';
const KEY = 'api-key-for-tests';

// A bot server: answers by the text it gets, and records what it saw.
function startBot() {
  const seen = [];
  const busy = {}; // requests in flight per user
  let maxBusy = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', async () => {
      const sig = req.headers['x-anywhere-signature'];
      const want = 'sha256=' + crypto.createHmac('sha256', SECRET).update(body).digest('hex');
      const msg = JSON.parse(body);
      seen.push({ msg, verified: sig === want });
      busy[msg.user] = (busy[msg.user] || 0) + 1;
      maxBusy = Math.max(maxBusy, busy[msg.user]);
      const text = msg.text || '';
      let answer;
      if (msg.type === 'hello') answer = [{ text: 'Hi from the bridge' }];
      else if (text === 'several') answer = [{ text: 'one' }, { text: 'two', quick_replies: [{ title: 'A', payload: 'a' }], custom: { k: 1 } }];
      else if (text.startsWith('slow:')) { await sleep(Number(text.slice(5))); answer = [{ text: 'slow done' }]; }
      else if (text === 'garbage') answer = 'this is not json';
      else if (text === 'empty') answer = [];
      else if (text.startsWith('order:')) { await sleep(Math.floor(Math.random() * 40)); answer = [{ text }]; }
      else answer = [{ text: `bridge heard: ${text}` }];
      busy[msg.user]--;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(typeof answer === 'string' ? answer : JSON.stringify(answer));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}/bot`, seen, maxBusy: () => maxBusy,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  })));
}

let bot, srv;
test.before(async () => {
  bot = await startBot();
  srv = await startServer(['--bot-url', bot.url, '--secret', SECRET, '--bot-timeout', '1000', '--api-key', KEY]);
});
test.after(async () => {
  assert.equal((await srv.stop()).code, 0, srv.log());
  await bot.close();
});

test('the bot\'s answers arrive over websocket and both webhooks, as the same messages', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'b1' });
  const [hi] = await c.waitFor((f) => f.type === 'message');
  assert.equal(hi.text, 'Hi from the bridge');
  assert.equal(hi.seq, 1);
  c.send({ type: 'message', user: 'b1', text: 'several' });
  const got = await c.waitFor((f) => f.type === 'message', 3);
  assert.deepEqual(got.slice(1).map((f) => f.text), ['one', 'two']);
  assert.deepEqual(got[2].quick_replies, [{ title: 'A', payload: 'a' }]);
  assert.deepEqual(got[2].custom, { k: 1 }, 'other fields pass through');
  assert.deepEqual(got.map((f) => f.seq), [1, 2, 3]);
  await c.close();
  let r = await post(srv.port, '/botkit/receive', { type: 'message', user: 'b2', text: 'several' });
  assert.equal(r.json.text, 'one');
  r = await post(srv.port, '/api/messages', { type: 'message', user: 'b2', text: 'several' });
  assert.deepEqual(r.json.map((m) => m.text), ['one', 'two']);
  r = await post(srv.port, '/api/messages', { type: 'message', user: 'b2', text: 'empty' });
  assert.deepEqual(r.json, []);
  const last = bot.seen[bot.seen.length - 1];
  assert.equal(last.msg.user, 'b2');
  assert.equal(last.msg.type, 'message');
  assert.equal(typeof last.msg.ts, 'number');
  assert.ok(bot.seen.every((s) => s.verified), 'every request carries a valid signature');
  assert.ok(bot.seen.every((s) => s.msg.token === undefined), 'tokens never reach the bot');
});

test('the bot is told when a speaker named a protected user without its token', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'g1' });
  const [s] = await c.waitFor((f) => f.type === 'session');
  await c.waitFor((f) => f.type === 'message');
  c.send({ type: 'message', user: 'g1', text: 'proved', token: s.token });
  await c.waitFor((f) => f.text === 'bridge heard: proved');
  // A client's own "guest" field is not believed either way.
  const r = await post(srv.port, '/botkit/receive', { type: 'message', user: 'g1', text: 'unproved', guest: false });
  assert.equal(r.json.text, 'bridge heard: unproved');
  assert.equal(r.json.seq, undefined);
  const proved = bot.seen.find((x) => x.msg.text === 'proved').msg;
  const unproved = bot.seen.find((x) => x.msg.text === 'unproved').msg;
  assert.equal(proved.guest, undefined);
  assert.equal(unproved.guest, true);
  await c.close();
});

test('a user\'s messages reach the bot one at a time, in order, while users run in parallel', async () => {
  const users = ['o1', 'o2', 'o3', 'o4'];
  const clients = await Promise.all(users.map(() => Client.open(srv.port)));
  await Promise.all(clients.map(async (c, i) => {
    for (let j = 0; j < 10; j++) c.send({ type: 'message', user: users[i], text: `order:${users[i]}:${j}` });
    const got = await c.waitFor((f) => f.type === 'message', 10, 10000);
    assert.deepEqual(got.map((f) => f.text), Array.from({ length: 10 }, (_, j) => `order:${users[i]}:${j}`));
  }));
  assert.equal(bot.maxBusy(), 1, 'never two requests of one user at once');
  for (const u of users) {
    const texts = bot.seen.filter((s) => s.msg.user === u).map((s) => s.msg.text);
    assert.deepEqual(texts, Array.from({ length: 10 }, (_, j) => `order:${u}:${j}`));
  }
  await Promise.all(clients.map((c) => c.close()));
});

test('a slow bot or one answering garbage gets the fallback; the chat goes on', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'message', user: 'f1', text: 'slow:1500' });
  const [fb] = await c.waitFor((f) => f.type === 'message');
  assert.match(fb.text, /^Sorry, I cannot answer right now/);
  c.send({ type: 'message', user: 'f1', text: 'garbage' });
  await c.waitFor((f) => f.type === 'message', 2);
  assert.match(c.messages()[1].text, /^Sorry/);
  c.send({ type: 'message', user: 'f1', text: 'fine again' });
  await c.waitFor((f) => f.text === 'bridge heard: fine again');
  await c.close();
});

test('a bot that is down: fallback, or nothing when the fallback is empty', async () => {
  const down = 'http://127.0.0.1:9/nobody-listens';
  const s1 = await startServer(['--bot-url', down, '--secret', SECRET]);
  let r = await post(s1.port, '/api/messages', { type: 'message', user: 'd1', text: 'anyone?' });
  assert.equal(r.status, 200);
  assert.equal(r.json.length, 1);
  assert.match(r.json[0].text, /^Sorry/);
  assert.equal((await s1.stop()).code, 0, s1.log());
  const s2 = await startServer(['--bot-url', down, '--secret', SECRET, '--bot-fallback', '']);
  r = await post(s2.port, '/api/messages', { type: 'message', user: 'd1', text: 'anyone?' });
  assert.deepEqual(r.json, []);
  await s2.waitForLog(/the bot at --bot-url failed/);
  assert.equal((await s2.stop()).code, 0, s2.log());
});

test('POST /api/send reaches every verified socket of an online user, and an offline user on return', async () => {
  const a = await Client.open(srv.port);
  a.send({ type: 'hello', user: 'p1' });
  const [s] = await a.waitFor((f) => f.type === 'session');
  await a.waitFor((f) => f.type === 'message');
  const b = await Client.open(srv.port);
  b.send({ type: 'welcome_back', user: 'p1', token: s.token });
  await b.waitFor((f) => f.type === 'message');
  const auth = { authorization: `Bearer ${KEY}` };
  let r = await post(srv.port, '/api/send', { user: 'p1', text: 'news for you', quick_replies: [{ title: 'OK', payload: 'ok' }] }, auth);
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { seq: 3, sockets: 2 });
  for (const c of [a, b]) {
    const [m] = await c.waitFor((f) => f.text === 'news for you');
    assert.equal(m.seq, 3);
    assert.equal(m.quick_replies[0].payload, 'ok');
  }
  await a.close();
  await b.close();
  // the server has seen both sockets go (the client's close may finish first)
  for (let i = 0; i < 200 && (await (await fetch(`${srv.url}/healthz`)).json()).websockets !== 0; i++) await sleep(10);
  r = await post(srv.port, '/api/send', { user: 'p1', text: 'while you were away' }, auth);
  assert.deepEqual(r.json, { seq: 4, sockets: 0 });
  const c = await Client.open(srv.port);
  c.send({ type: 'reconnect', user: 'p1', token: s.token, last_seq: 3 });
  const [missed] = await c.waitFor((f) => f.text === 'while you were away');
  assert.equal(missed.seq, 4);
  await c.close();
  r = await post(srv.port, '/api/send', { user: 'p1', text: 'x' }, { authorization: 'Bearer wrong' });
  assert.equal(r.status, 401);
  r = await post(srv.port, '/api/send', { user: 'p1', text: 'x' });
  assert.equal(r.status, 401);
  r = await post(srv.port, '/api/send', { text: 'no user' }, auth);
  assert.equal(r.status, 400);
  r = await post(srv.port, '/api/send', { user: 'p1', quick_replies: 'nope' }, auth);
  assert.equal(r.status, 400);
  const other = await startServer(['--bot', 'echo']);
  r = await post(other.port, '/api/send', { user: 'p1', text: 'x' }, auth);
  assert.equal(r.status, 404, 'off without an API key');
  assert.equal((await other.stop()).code, 0);
});
