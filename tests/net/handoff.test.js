// Handing a conversation over to a person, over the wire: the console's
// security (sign-in, cookie, cross-site and foreign-origin refusals, the
// brake on wrong passwords, no mixing of operator sessions and user tokens),
// the audit log, two operators racing for one conversation, a restart (and a
// kill) in the middle of a handoff, the grace period of an operator who
// leaves, POST /api/handoff, the example bridge bot that asks for a person,
// and the metrics.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startServer, Client, post, sleep, metric } = require('./lib');
const { PASSWORDS, dataDir, signIn, Console, refusedStatus } = require('./operators');

const KEY = 'handoff-api-key';

async function start(dir, extra = []) {
  return startServer(['--operators', path.join(dir, 'ops'), '--api-key', KEY, ...extra], { dataDir: dir });
}

async function greet(srv, user) {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user });
  const [s] = await c.waitFor((f) => f.type === 'session');
  await c.waitFor((f) => f.type === 'message');
  c.token = s.token;
  return c;
}

test('without an operator\'s sign-in, or from another site, the console and its routes refuse', async () => {
  const dir = dataDir();
  const srv = await start(dir);
  const evil = { origin: 'http://evil.example' };
  for (const [method, route] of [['GET', '/console'], ['GET', '/console/me'], ['POST', '/console/logout'],
    ['GET', '/console/ws']]) {
    const r = await fetch(srv.url + route, { method });
    assert.equal(r.status, 401, `${method} ${route} without a sign-in`);
    const x = await fetch(srv.url + route, { method, headers: evil });
    assert.equal(x.status, 403, `${method} ${route} from another site`);
    const y = await fetch(srv.url + route, { method, headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(y.status, 403, `${method} ${route} that the browser calls cross-site`);
  }
  assert.equal((await signIn(srv, 'ann', PASSWORDS.ann, evil)).status, 403, 'a sign-in from another site');
  assert.equal(await refusedStatus(srv, {}), 401, 'the websocket without a sign-in');

  const ann = await signIn(srv, 'ann');
  assert.equal(ann.status, 200);
  assert.match(ann.setCookie, /HttpOnly/);
  assert.match(ann.setCookie, /SameSite=Strict/);
  assert.match(ann.setCookie, /Path=\/console/);
  const page = await fetch(`${srv.url}/console`, { headers: { cookie: ann.cookie } });
  assert.equal(page.status, 200);
  const csp = page.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(await page.text(), /<script>|style="|https?:\/\/(?!127)/, 'nothing inline, nothing from elsewhere');
  assert.equal((await fetch(`${srv.url}/console/me`, { headers: { cookie: ann.cookie, ...evil } })).status, 403);
  assert.equal(await refusedStatus(srv, { cookie: ann.cookie, origin: 'http://evil.example' }), 403,
    'the websocket from a foreign Origin, signed in or not');
  const own = await Console.open(srv, ann.cookie, { origin: srv.url });
  await own.waitFor((f) => f.type === 'hello' && f.operator === 'ann');
  await own.close();
  assert.equal((await fetch(`${srv.url}/console.html`)).status, 404, 'the console page is not a file of the chat');

  // signed out: the cookie no longer opens anything
  const out = await fetch(`${srv.url}/console/logout`, { method: 'POST', headers: { cookie: ann.cookie } });
  assert.equal(out.status, 200);
  assert.equal((await fetch(`${srv.url}/console/me`, { headers: { cookie: ann.cookie } })).status, 401);
  await srv.waitForLog(/audit: operator ann signed out/);
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an operator session is no user token, and a user token no operator session', async () => {
  const dir = dataDir();
  const srv = await start(dir);
  const u = await greet(srv, 'tokuser');
  const ann = await signIn(srv, 'ann');
  const sessionId = ann.cookie.split('=')[1];
  // the cookie as the user's token: refused on the socket and by the history routes
  const c = await Client.open(srv.port);
  c.send({ type: 'welcome_back', user: 'tokuser', token: sessionId });
  const [err] = await c.waitFor((f) => f.type === 'error');
  assert.equal(err.code, 'unauthorized');
  const h = await fetch(`${srv.url}/api/history?user=tokuser`, { headers: { authorization: `Bearer ${sessionId}` } });
  assert.equal(h.status, 401);
  // the user's token as the console's cookie
  const me = await fetch(`${srv.url}/console/me`, { headers: { cookie: `aw_operator=${u.token}` } });
  assert.equal(me.status, 401);
  assert.equal(await refusedStatus(srv, { cookie: `aw_operator=${u.token}` }), 401);
  await c.close();
  await u.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('wrong passwords are refused, logged, and after five the address must wait', async () => {
  const dir = dataDir();
  const srv = await start(dir);
  assert.equal((await signIn(srv, 'ann', 'not it')).status, 401);
  assert.equal((await signIn(srv, 'nobody', 'x')).status, 401);
  assert.equal((await signIn(srv, 'a b', 'x')).status, 401);
  await srv.waitForLog(/console_sign_in_failed: a failed operator sign-in as ann from 127\.0\.0\.1/);
  assert.doesNotMatch(srv.log(), /not it/, 'a password is never logged');
  for (let i = 0; i < 2; i++) assert.equal((await signIn(srv, 'bob', 'wrong')).status, 401);
  const r = await signIn(srv, 'ann'); // the right one, but too late
  assert.equal(r.status, 429);
  assert.equal(r.cookie, null);
  await srv.waitForLog(/console_sign_in_throttled/);
  assert.equal((await srv.stop()).code, 0, srv.log());

  // the console is off without --operators
  const plain = await startServer([]);
  assert.equal((await fetch(`${plain.url}/console`)).status, 404);
  assert.equal((await plain.stop()).code, 0);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a handoff from start to end: queue, take, messages both ways, hand back; audited without text', async () => {
  const dir = dataDir();
  const srv = await start(dir);
  const ann = await Console.open(srv, (await signIn(srv, 'ann')).cookie);
  await ann.queue((q) => q.waiting.length === 0);
  const u = await greet(srv, 'flow');
  const tab2 = await Client.open(srv.port);
  tab2.send({ type: 'welcome_back', user: 'flow', token: u.token });
  await tab2.waitFor((f) => f.type === 'message');
  u.send({ type: 'message', user: 'flow', text: 'I want an agent' });
  await u.waitFor((f) => f.type === 'message' && /get a person/.test(f.text));
  const q = await ann.queue((x) => x.waiting.some((e) => e.user === 'flow'));
  assert.equal(q.waiting[0].reason, 'asked for a person');
  assert.ok(q.waiting[0].since <= q.now);

  ann.send({ type: 'open', user: 'flow' });
  const page = await ann.waitFor((f) => f.type === 'history' && f.user === 'flow');
  assert.deepEqual(page.records.map((r) => r.text).slice(-2), ['I want an agent',
    'I will get a person for you. Someone will be with you shortly.']);
  assert.ok(!page.records.some((r) => r.type === 'handoff'), 'the handoff record is not history');
  ann.send({ type: 'take', user: 'flow' });
  await ann.waitFor((f) => f.type === 'taken' && f.user === 'flow' && f.operator === 'ann');
  await ann.queue((x) => x.waiting.length === 0 && x.owned.some((e) => e.user === 'flow' && e.operator === 'ann'));
  const [joined] = await u.waitFor((f) => f.type === 'message' && f.handoff === 'joined');
  assert.equal(joined.operator, 'ann');

  ann.send({ type: 'typing', user: 'flow' });
  const [typing] = await u.waitFor((f) => f.type === 'typing');
  assert.equal(typing.operator, 'ann');
  ann.send({ type: 'send', user: 'flow', text: 'secret words of ann' });
  for (const c of [u, tab2]) {
    const [m] = await c.waitFor((f) => f.type === 'message' && f.text === 'secret words of ann');
    assert.equal(m.operator, 'ann');
    assert.equal(m.seq, joined.seq + 1, 'the next seq of the user');
  }
  u.send({ type: 'typing', user: 'flow' });
  await ann.waitFor((f) => f.type === 'typing' && f.user === 'flow');
  u.send({ type: 'message', user: 'flow', text: 'private words of the user', mid: 'm-1' });
  await u.waitFor((f) => f.type === 'ack' && f.mid === 'm-1');
  await ann.waitFor((f) => f.type === 'message_received' && f.text === 'private words of the user');
  await sleep(200);
  assert.ok(!u.messages().some((m) => /You said: private/.test(m.text)), 'the bot did not answer');

  // stored with the operator's name, and shown so in history
  const h = await fetch(`${srv.url}/api/history?user=flow&limit=20`, { headers: { authorization: `Bearer ${u.token}` } });
  const stored = (await h.json()).history;
  assert.ok(stored.some((m) => m.text === 'secret words of ann' && m.operator === 'ann'));
  assert.ok(!stored.some((m) => m.type === 'handoff'));

  // bob may not send nor hand back what ann owns
  const bob = await Console.open(srv, (await signIn(srv, 'bob')).cookie);
  bob.send({ type: 'send', user: 'flow', text: 'bob butts in' });
  await bob.waitFor((f) => f.type === 'error' && f.code === 'not_owner');
  bob.send({ type: 'release', user: 'flow' });
  const e = await bob.waitFor((f) => f.type === 'error' && f.code === 'taken');
  assert.equal(e.operator, 'ann');

  ann.send({ type: 'release', user: 'flow' });
  await ann.waitFor((f) => f.type === 'released' && f.user === 'flow');
  await u.waitFor((f) => f.type === 'message' && f.handoff === 'ended');
  await u.waitFor((f) => f.type === 'message' && /^I am back/.test(f.text));
  u.send({ type: 'message', user: 'flow', text: 'hello bot' });
  await u.waitFor((f) => f.type === 'message' && f.text === 'You said: hello bot');
  await ann.queue((x) => x.owned.length === 0 && x.waiting.length === 0);

  assert.equal(await metric(srv.port, 'anywhere_handoffs_requested_total'), 1);
  assert.equal(await metric(srv.port, 'anywhere_handoffs_taken_total'), 1);
  assert.equal(await metric(srv.port, 'anywhere_handoffs_released_total'), 1);
  assert.equal(await metric(srv.port, 'anywhere_handoff_first_answer_seconds_count'), 1);
  assert.equal(await metric(srv.port, 'anywhere_handoff_waiting'), 0);
  await srv.waitForLog(/audit: operator ann took over \(user flow\)/);
  await srv.waitForLog(/audit: operator ann sent a message \(user flow\)/);
  await srv.waitForLog(/audit: operator ann handed back to the bot \(user flow\)/);
  await srv.waitForLog(/audit: operator ann opened the conversation \(user flow\)/);
  assert.doesNotMatch(srv.log(), /secret words of ann|private words/, 'no message text in the log');
  for (const c of [u, tab2]) await c.close();
  await ann.close();
  await bob.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('two operators race to take the same conversations: exactly one wins each, the other sees it taken', async () => {
  const dir = dataDir();
  const srv = await start(dir);
  const ann = await Console.open(srv, (await signIn(srv, 'ann')).cookie);
  const bob = await Console.open(srv, (await signIn(srv, 'bob')).cookie);
  const users = Array.from({ length: 12 }, (_, i) => `race${i}`);
  for (const user of users) {
    const r = await post(srv.port, '/api/handoff', { user, reason: 'race' }, { authorization: `Bearer ${KEY}` });
    assert.equal(r.status, 202);
  }
  await ann.queue((q) => q.waiting.length === users.length);
  for (const user of users) { // both at once, in either order
    const first = user.endsWith('1') ? bob : ann, second = first === ann ? bob : ann;
    first.send({ type: 'take', user });
    second.send({ type: 'take', user });
  }
  for (const user of users) {
    const answers = await Promise.all([ann, bob].map((c) => c.waitFor((f) => f.user === user &&
      (f.type === 'taken' || (f.type === 'error' && f.code === 'taken')))));
    const winners = answers.filter((f) => f.type === 'taken');
    assert.equal(winners.length, 1, `one winner for ${user}: ${JSON.stringify(answers)}`);
    const loser = answers.find((f) => f.type === 'error');
    assert.equal(loser.operator, winners[0].operator, 'the loser is told who has it');
  }
  const q = await ann.queue((x) => x.owned.length === users.length);
  assert.equal(q.waiting.length, 0);
  await ann.close();
  await bob.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a restart, and a kill, in the middle of a handoff: still waiting, still owned, from the store', async () => {
  const dir = dataDir();
  let srv = await start(dir);
  const u = await greet(srv, 'waiter');
  u.send({ type: 'message', user: 'waiter', text: 'a person please' });
  await u.waitFor((f) => f.type === 'message' && /get a person/.test(f.text));
  const owned = await greet(srv, 'owned');
  await u.close();
  let ann = await Console.open(srv, (await signIn(srv, 'ann')).cookie);
  ann.send({ type: 'take', user: 'owned' });
  await ann.waitFor((f) => f.type === 'taken' && f.user === 'owned');
  await owned.waitFor((f) => f.type === 'message' && f.handoff === 'joined');
  await owned.close();
  await ann.close();
  assert.equal((await srv.stop()).code, 0, srv.log());

  srv = await start(dir);
  await srv.waitForLog(/1 conversation\(s\) wait for a person, 1 owned by one/);
  ann = await Console.open(srv, (await signIn(srv, 'ann')).cookie);
  const q = await ann.queue(() => true);
  assert.deepEqual(q.waiting.map((e) => [e.user, e.reason]), [['waiter', 'asked for a person']]);
  assert.deepEqual(q.owned.map((e) => [e.user, e.operator]), [['owned', 'ann']]);
  // the bot still does not hear the owned user; ann, back within the grace period, still answers
  const back = await Client.open(srv.port);
  back.send({ type: 'welcome_back', user: 'owned', token: owned.token });
  await back.waitFor((f) => f.type === 'session');
  back.send({ type: 'message', user: 'owned', text: 'still there?' });
  ann.send({ type: 'open', user: 'owned' });
  // in the page if the session had kept it before the console watched, else live: once either way
  await ann.waitFor((f) => (f.type === 'message_received' && f.text === 'still there?') ||
    (f.type === 'history' && f.records.some((r) => r.text === 'still there?')));
  await sleep(100);
  assert.equal(ann.frames.filter((f) => (f.type === 'message_received' && f.text === 'still there?') ||
    (f.type === 'history' && f.records.some((r) => r.text === 'still there?'))).length, 1);
  ann.send({ type: 'send', user: 'owned', text: 'yes, still me' });
  await back.waitFor((f) => f.type === 'message' && f.text === 'yes, still me' && f.operator === 'ann');
  assert.ok(!back.messages().some((m) => /^(Welcome back|You said)/.test(m.text)), 'the bot stayed out');
  // a kill once the store has it: the same after the start
  ann.send({ type: 'take', user: 'waiter' });
  await ann.waitFor((f) => f.type === 'taken' && f.user === 'waiter');
  for (const end = Date.now() + 5000; await metric(srv.port, 'anywhere_history_queue') !== 0 && Date.now() < end;) {
    await sleep(20);
  }
  srv.proc.kill('SIGKILL');
  await srv.exited;
  await back.closed;
  srv = await start(dir);
  ann = await Console.open(srv, (await signIn(srv, 'ann')).cookie);
  const k = await ann.queue(() => true);
  assert.deepEqual(k.owned.map((e) => e.user).sort(), ['owned', 'waiter']);
  assert.equal(k.waiting.length, 0);
  await ann.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an operator away past the grace period: the conversation waits again; back in time, it stays theirs', async () => {
  const dir = dataDir();
  const srv = await start(dir, ['--handoff-grace', '400']);
  const bob = await Console.open(srv, (await signIn(srv, 'bob')).cookie);
  const annCookie = (await signIn(srv, 'ann')).cookie;
  let ann = await Console.open(srv, annCookie);
  ann.send({ type: 'take', user: 'graceful' });
  await ann.waitFor((f) => f.type === 'taken');
  await ann.close();
  ann = await Console.open(srv, annCookie); // back within the grace period
  await sleep(800);
  let q = await bob.queue(() => true);
  assert.deepEqual(q.owned.map((e) => [e.user, e.operator]), [['graceful', 'ann']]);
  await ann.close(); // and gone for good
  q = await bob.queue((x) => x.waiting.some((e) => e.user === 'graceful'));
  assert.equal(q.owned.length, 0);
  await srv.waitForLog(/audit: operator ann was away past the grace period/);
  await bob.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('POST /api/handoff puts a user in the queue and hands them back; it needs the API key', async () => {
  const dir = dataDir();
  const srv = await start(dir);
  const ann = await Console.open(srv, (await signIn(srv, 'ann')).cookie);
  assert.equal((await post(srv.port, '/api/handoff', { user: 'apiuser' })).status, 401);
  const auth = { authorization: `Bearer ${KEY}` };
  assert.equal((await post(srv.port, '/api/handoff', { user: 'apiuser', action: 'dance' }, auth)).status, 400);
  assert.equal((await post(srv.port, '/api/handoff', '{"user":', auth)).status, 400);
  assert.equal((await post(srv.port, '/api/handoff', { user: 'apiuser', reason: 'VIP' }, auth)).status, 202);
  const q = await ann.queue((x) => x.waiting.some((e) => e.user === 'apiuser'));
  assert.equal(q.waiting[0].reason, 'VIP');
  assert.equal((await post(srv.port, '/api/handoff', { user: 'apiuser', action: 'release' }, auth)).status, 202);
  await ann.queue((x) => x.waiting.length === 0);
  await srv.waitForLog(/audit: operator \(api\) handed back to the bot \(user apiuser\)/);
  // a push may not ask for a person: that is this route's
  assert.equal((await post(srv.port, '/api/send', { user: 'apiuser', type: 'handoff' }, auth)).status, 400);
  await ann.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a bot behind the bridge (examples/handoff_bot.js) asks for a person, and hears handoff_end', async () => {
  const secret = 'bridge-handoff-secret';
  const bot = spawn(process.execPath, [path.join(__dirname, '..', '..', 'examples', 'handoff_bot.js'), '0'],
    { env: { ...process.env, ANYWHERE_SECRET: secret }, stdio: ['ignore', 'pipe', 'inherit'] });
  const botUrl = await new Promise((resolve, reject) => {
    bot.stdout.on('data', (d) => { const m = /on (http:\S+)/.exec(String(d)); if (m) resolve(m[1]); });
    bot.on('exit', (code) => reject(new Error(`the example bot exited ${code}`)));
  });
  const dir = dataDir();
  const srv = await start(dir, ['--bot-url', botUrl, '--secret', secret]);
  const ann = await Console.open(srv, (await signIn(srv, 'ann')).cookie);
  const u = await greet(srv, 'bridged');
  u.send({ type: 'message', user: 'bridged', text: 'I want a refund' });
  await u.waitFor((f) => f.type === 'message' && f.text === 'I am sorry. A colleague will take this over.');
  const q = await ann.queue((x) => x.waiting.some((e) => e.user === 'bridged'));
  assert.equal(q.waiting[0].reason, 'unhappy user');
  u.send({ type: 'message', user: 'bridged', text: 'hello?' });
  ann.send({ type: 'open', user: 'bridged' });
  ann.send({ type: 'take', user: 'bridged' });
  await ann.waitFor((f) => f.type === 'taken');
  ann.send({ type: 'release', user: 'bridged' });
  const [back] = await u.waitFor((f) => f.type === 'message' && /^Thanks for your patience/.test(f.text));
  assert.equal(back.text, 'Thanks for your patience with ann. Anything else?');
  assert.ok(!u.messages().some((m) => /About "hello\?"/.test(m.text)), 'the bot did not get the message meanwhile');
  u.send({ type: 'message', user: 'bridged', text: 'where is it' });
  await u.waitFor((f) => f.type === 'message' && f.text === 'About "where is it": your order is on its way.');
  await u.close();
  await ann.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  bot.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});
