// Three nodes on a three-server NATS cluster, sharing one SQLite file: a
// user's tabs on different nodes, turns and pushes and history reads at
// nodes that are not the user's home, all as on one server.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, userHomedOn, Client, post, historyPages, sleep } = require('./lib');

const API_KEY = 'cluster-api-key';
let cluster, nodes;
const ids = ['node-a', 'node-b', 'node-c'];

test.before(async () => {
  cluster = await startCluster(ids, ['--bot', 'demo', '--api-key', API_KEY], 3);
  nodes = cluster.nodes;
});

test.after(() => cluster.stop());

async function greet(node, user, token) {
  const c = await Client.open(node.port);
  c.send(token ? { type: 'welcome_back', user, token } : { type: 'hello', user });
  const frames = await c.waitFor((f) => f.type === 'message');
  const session = c.frames.find((f) => f.type === 'session');
  return { c, token: session ? session.token : token, greeting: frames[0] };
}

test('two tabs on two nodes that are not the home both get every bot message, with the same seqs', async () => {
  const user = userHomedOn('node-a', ids, 'tabs');
  const one = await greet(nodes[1], user);
  assert.match(one.token, /^[0-9a-f]{64}$/, 'the token comes back through the home');
  const two = await greet(nodes[2], user, one.token);
  for (let i = 0; i < 5; i++) {
    one.c.send({ type: 'message', user, text: `m${i}`, mid: `tabs-${i}` });
    await one.c.waitFor((f) => f.type === 'message' && f.text === `You said: m${i}`);
    await two.c.waitFor((f) => f.type === 'message' && f.text === `You said: m${i}`);
  }
  const seqs = (c) => c.messages().filter((f) => /^You said/.test(f.text)).map((f) => f.seq);
  assert.deepEqual(seqs(one.c), seqs(two.c));
  assert.equal(new Set(seqs(one.c)).size, 5);
  assert.deepEqual(one.c.frames.filter((f) => f.type === 'ack').map((f) => f.mid), [0, 1, 2, 3, 4].map((i) => `tabs-${i}`));
  await one.c.close();
  await two.c.close();
});

test('a webhook turn, a push and history reads at nodes that are not the home', async () => {
  const user = userHomedOn('node-c', ids, 'hook');
  const tab = await greet(nodes[0], user);
  const res = await post(nodes[1].port, '/botkit/receive', { type: 'message', user, text: 'over http', token: tab.token, mid: 'hook-1' });
  assert.equal(res.status, 200);
  assert.equal(res.json.text, 'You said: over http');
  await tab.c.waitFor((f) => f.type === 'message' && f.text === 'You said: over http');

  const push = await post(nodes[0].port, '/api/send', { user, text: 'from the site' }, { authorization: `Bearer ${API_KEY}` });
  assert.equal(push.status, 202);
  assert.equal(push.json.sockets, 1);
  const [pushed] = await tab.c.waitFor((f) => f.type === 'message' && f.text === 'from the site');
  assert.equal(pushed.seq, push.json.seq);

  // read at once, at the node that is neither home nor the tab's
  const all = await historyPages(nodes[1].port, user, tab.token);
  const texts = all.map((r) => r.text);
  assert.ok(texts.includes('over http') && texts.includes('You said: over http') && texts.includes('from the site'), JSON.stringify(texts));
  const bk = await post(nodes[0].port, '/botkit/history', { user, token: tab.token });
  assert.equal(bk.status, 200);
  assert.equal(bk.json.history.length, all.length);
  const denied = await post(nodes[1].port, '/botkit/history', { user, token: '0'.repeat(64) });
  assert.equal(denied.status, 401, 'the node that holds the request checks the token');
  await tab.c.close();
});

test('a user is served by its home: only messages for users homed elsewhere are forwarded', async () => {
  const forwarded = async (n) => Number(/^anywhere_cluster_forwarded_total\{direction="out"\} (\d+)$/m
    .exec(await (await fetch(`${n.url}/metrics`)).text())[1]);
  for (const [i, id] of ids.entries()) {
    const here = userHomedOn(id, ids, 'here');
    const before = await forwarded(nodes[i]);
    const t = await greet(nodes[i], here);
    t.c.send({ type: 'message', user: here, text: 'hi' });
    await t.c.waitFor((f) => f.type === 'message' && f.text === 'You said: hi');
    assert.equal(await forwarded(nodes[i]), before, `${here} is served by ${id} itself`);
    const away = userHomedOn(ids[(i + 1) % 3], ids, 'away');
    const a = await greet(nodes[i], away);
    assert.equal(await forwarded(nodes[i]), before + 1, `${away} is served by ${ids[(i + 1) % 3]}`);
    await t.c.close();
    await a.c.close();
  }
});

test('POST /api/handoff at a node that is not the home queues the user at its home, and hands it back', async () => {
  const user = userHomedOn('node-b', ids, 'handoff');
  const auth = { authorization: `Bearer ${API_KEY}` };
  const waiting = async (n) => Number(/^anywhere_handoff_waiting (\d+)$/m.exec(await (await fetch(`${n.url}/metrics`)).text())[1]);
  const homes = async (n) => Number(/^anywhere_cluster_homes (\d+)$/m.exec(await (await fetch(`${n.url}/metrics`)).text())[1]);
  const before = await homes(nodes[0]);
  assert.equal((await post(nodes[0].port, '/api/handoff', { user, reason: 'from another node' }, auth)).status, 202);
  // queued at the home, and listed by every node's desk
  for (const n of nodes) for (const end = Date.now() + 5000; (await waiting(n)) !== 1; await sleep(50)) assert.ok(Date.now() < end, `listed by ${n.id}`);
  assert.ok(await homes(nodes[0]) <= before, 'no session made where the request arrived');
  assert.equal((await post(nodes[2].port, '/api/handoff', { user, action: 'release' }, auth)).status, 202);
  for (const n of nodes) for (const end = Date.now() + 5000; (await waiting(n)) !== 0; await sleep(50)) assert.ok(Date.now() < end, 'handed back');
});

test('metrics and health count the members and the messages forwarded', async () => {
  const health = await (await fetch(`${nodes[0].url}/healthz`)).json();
  assert.equal(health.status, 'ok');
  assert.equal(health.cluster.node, 'node-a');
  assert.equal(health.cluster.nats, 'connected');
  assert.equal(health.cluster.members, 3);
  assert.match(health.cluster.server, /^nats:\/\/127\.0\.0\.1:\d+$/);
  const text = await (await fetch(`${nodes[1].url}/metrics`)).text();
  assert.match(text, /^anywhere_cluster_members 3$/m);
  assert.match(text, /^anywhere_nats_connected 1$/m);
  const out = Number(/^anywhere_cluster_forwarded_total\{direction="out"\} (\d+)$/m.exec(text)[1]);
  assert.ok(out > 0, text);
});
