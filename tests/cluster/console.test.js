// The operator console across the nodes of a cluster: three nodes on one
// NATS server and one SQLite file. An operator's console on one node lists,
// takes and serves a user homed on another node, whose tabs are on a third;
// every node's console shows the same list; a sign-in made by one node holds
// on the others until the operator signs out at any; ownership outlives the
// console (it moves to another node within the grace period); the user's home killed
// moves the conversation, and the console goes on with it at the new home;
// the grace period ends only when the owner has no console on any node; a
// node cut off from NATS has the others read what changed there meanwhile.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startCluster, startNats, sharedStore, startNode, waitMembers, userHomedOn, homeOf, Client, post, killServer, sleep,
  metric } = require('./lib');
const { dataDir, signIn, Console } = require('../net/operators');

const ids = ['node-a', 'node-b', 'node-c'];
const GRACE_MS = 1500;
let cluster, ops, nodes;

test.before(async () => {
  ops = dataDir();
  cluster = await startCluster(ids, ['--operators', path.join(ops, 'ops'), '--handoff-grace', String(GRACE_MS)]);
  nodes = cluster.nodes;
});

test.after(async () => {
  await cluster.stop();
  fs.rmSync(ops, { recursive: true, force: true });
});

// A user's tab: a new user is greeted by the bot; one coming back while a
// person has the conversation is not (the bot does not hear it).
async function greet(node, user, token) {
  const c = await Client.open(node.port);
  c.send(token ? { type: 'welcome_back', user, token } : { type: 'hello', user });
  const [s] = await c.waitFor((f) => f.type === 'session');
  if (!token) await c.waitFor((f) => f.type === 'message');
  c.token = s.token;
  return c;
}

async function operator(node, name) {
  return Console.open(node, (await signIn(node, name)).cookie);
}

const ownedBy = (user, op) => (q) => q.owned.some((e) => e.user === user && e.operator === op);

test('a console on any node serves a user homed on another; ownership outlives the console and the home', async () => {
  const [a, b, c] = nodes;
  const user = userHomedOn('node-b', ids, 'desk');
  const annCookie = (await signIn(a, 'ann')).cookie;
  const ann = await Console.open(a, annCookie);
  const bob = await operator(c, 'bob');
  // the user's tab is on node-c, its home node-b, the console on node-a
  const u = await greet(c, user);
  u.send({ type: 'message', user, text: 'I want an agent' });
  await u.waitFor((f) => f.type === 'message' && /get a person/.test(f.text));
  for (const k of [ann, bob]) await k.queue((q) => q.waiting.some((e) => e.user === user));

  ann.send({ type: 'open', user });
  const page = await ann.waitFor((f) => f.type === 'history' && f.user === user);
  assert.ok(page.records.some((r) => r.text === 'I want an agent'), 'the page comes from the home');
  ann.send({ type: 'take', user });
  await ann.waitFor((f) => f.type === 'taken' && f.user === user && f.operator === 'ann');
  await bob.queue(ownedBy(user, 'ann'));
  const [joined] = await u.waitFor((f) => f.type === 'message' && f.handoff === 'joined');
  assert.equal(joined.operator, 'ann');

  ann.send({ type: 'typing', user });
  const [typing] = await u.waitFor((f) => f.type === 'typing');
  assert.equal(typing.operator, 'ann');
  ann.send({ type: 'send', user, text: 'ann from node-a' });
  const [said] = await u.waitFor((f) => f.type === 'message' && f.text === 'ann from node-a');
  assert.equal(said.operator, 'ann');
  assert.equal(said.seq, joined.seq + 1);
  u.send({ type: 'typing', user });
  await ann.waitFor((f) => f.type === 'typing' && f.user === user);
  u.send({ type: 'message', user, text: 'the user answers', mid: 'm-1' });
  await ann.waitFor((f) => f.type === 'message_received' && f.text === 'the user answers');

  // one owner, whichever node asks
  bob.send({ type: 'take', user });
  const refused = await bob.waitFor((f) => f.type === 'error' && f.code === 'taken');
  assert.equal(refused.operator, 'ann');

  // ann's console moves to node-c, with the sign-in node-a made: past the
  // grace period, the conversation is still hers
  await ann.close();
  const ann2 = await Console.open(c, annCookie);
  await sleep(GRACE_MS + 1500);
  await ann2.queue(ownedBy(user, 'ann'));
  await bob.queue(ownedBy(user, 'ann'));
  ann2.send({ type: 'open', user });
  await ann2.waitFor((f) => f.type === 'history' && f.user === user);
  ann2.send({ type: 'send', user, text: 'ann from node-c' });
  await u.waitFor((f) => f.type === 'message' && f.text === 'ann from node-c' && f.operator === 'ann');

  // the home killed: the console hears the conversation moved, opens it again at the new home
  await killServer(b);
  await waitMembers([a, c], 2);
  await ann2.waitFor((f) => f.type === 'moved' && f.user === user, 10000);
  const pages = ann2.frames.filter((f) => f.type === 'history').length;
  ann2.send({ type: 'open', user });
  await ann2.waitFor(() => ann2.frames.filter((f) => f.type === 'history' && f.user === user).length > pages);
  await ann2.queue(ownedBy(user, 'ann'));
  await u.closed; // its socket on node-c was attached to the dead home
  const u2 = await greet(a, user, u.token);
  ann2.send({ type: 'send', user, text: 'ann after the move' });
  await u2.waitFor((f) => f.type === 'message' && f.text === 'ann after the move' && f.operator === 'ann');
  u2.send({ type: 'message', user, text: 'still talking to ann', mid: 'm-2' });
  await ann2.waitFor((f) => f.type === 'message_received' && f.text === 'still talking to ann');

  // handed back from node-c's console: the bot answers again
  ann2.send({ type: 'release', user });
  await ann2.waitFor((f) => f.type === 'released' && f.user === user);
  await u2.waitFor((f) => f.type === 'message' && f.handoff === 'ended');
  u2.send({ type: 'message', user, text: 'hello bot' });
  await u2.waitFor((f) => f.type === 'message' && f.text === 'You said: hello bot');
  for (const k of [ann2, bob]) await k.queue((q) => q.owned.length === 0 && q.waiting.length === 0);
  await u2.close();
  await ann2.close();
  await bob.close();

  // signed out at node-c: the sign-in no longer opens anything on any node
  const me = (n) => fetch(`${n.url}/console/me`, { headers: { cookie: annCookie } }).then((r) => r.status);
  assert.equal(await me(a), 200);
  const out = await fetch(`${c.url}/console/logout`, { method: 'POST', headers: { cookie: annCookie } });
  assert.equal(out.status, 200);
  for (const n of [a, c]) {
    for (const end = Date.now() + 5000; (await me(n)) !== 401; await sleep(50)) {
      assert.ok(Date.now() < end, `${n.id} refuses the sign-in once ann signed out`);
    }
  }
});

test('the grace period ends only when the owner has no console on any node', async () => {
  const [a, , c] = nodes;
  const live = ['node-a', 'node-c'];
  const user = userHomedOn('node-a', live, 'grace');
  assert.equal(homeOf(user, live), 'node-a');
  const u = await greet(c, user);
  u.send({ type: 'message', user, text: 'a human please' });
  await u.waitFor((f) => f.type === 'message' && /get a person/.test(f.text));
  // ann takes it from node-c and keeps a console on node-a
  const annC = await operator(c, 'ann');
  const annA = await operator(a, 'ann');
  await annC.queue((q) => q.waiting.some((e) => e.user === user));
  annC.send({ type: 'take', user });
  await annC.waitFor((f) => f.type === 'taken' && f.user === user);
  const bob = await operator(c, 'bob');
  await bob.queue(ownedBy(user, 'ann'));
  // her console on node-c closes: node-a's keeps the conversation hers
  await annC.close();
  await sleep(GRACE_MS + 1500);
  await bob.queue(ownedBy(user, 'ann'));
  // her last console closes: after the grace period it waits again, on every node's list
  await annA.close();
  const q = await bob.queue((x) => x.waiting.some((e) => e.user === user), GRACE_MS + 8000);
  assert.ok(!q.owned.some((e) => e.user === user));
  assert.equal(await metric(a.port, 'anywhere_handoff_waiting'), 1);
  assert.equal(await metric(c.port, 'anywhere_handoff_waiting'), 1);
  await bob.close();
  await u.close();
});

test('a node cut off from NATS has the others read, once it is back, what changed at its desk meanwhile', async () => {
  // each node knows one NATS server only, which tells it of no other
  const pair = await startNats(2, ['--no_advertise']);
  const shared = sharedStore();
  const key = { authorization: 'Bearer cut-off-key' };
  const args = { args: ['--api-key', 'cut-off-key'] };
  const x = await startNode({ urls: pair.servers[0].url }, shared, 'node-x', args);
  const y = await startNode({ urls: pair.servers[1].url }, shared, 'node-y', args);
  try {
    await waitMembers([x, y], 2);
    const user = userHomedOn('node-x', ['node-x', 'node-y'], 'cut');
    await pair.servers[0].stop();
    for (const end = Date.now() + 10000; (await fetch(`${x.url}/healthz`)).status !== 503; await sleep(100)) {
      assert.ok(Date.now() < end, 'node-x is cut off');
    }
    assert.equal((await post(x.port, '/api/handoff', { user, reason: 'while cut off' }, key)).status, 202);
    for (const end = Date.now() + 5000; (await metric(x.port, 'anywhere_handoff_waiting')) !== 1; await sleep(50)) {
      assert.ok(Date.now() < end, 'queued at its home, node-x');
    }
    assert.equal(await metric(y.port, 'anywhere_handoff_waiting'), 0, 'node-y cannot hear it');
    await pair.restart(0);
    await waitMembers([x, y], 2, 20000);
    for (const end = Date.now() + 10000; (await metric(y.port, 'anywhere_handoff_waiting')) !== 1; await sleep(100)) {
      assert.ok(Date.now() < end, 'node-y lists the user who asked while node-x was cut off');
    }
  } finally {
    for (const n of [x, y]) assert.equal((await n.stop()).code, 0, n.log());
    await pair.stop();
    shared.remove();
  }
});
