// NATS failing under a cluster. One server of a three-server NATS cluster
// killed with SIGKILL under load: the nodes fail over to the others and chat
// goes on, every message answered once. Every NATS server stopped: users
// whose home is the node they reached keep chatting, the others get
// `unavailable` at once (never a hang), /healthz says so, and a handoff at a
// local home is not heard by the other nodes; NATS back: the nodes hear each
// other again, chat through any node works again, and every node's desk
// lists the handoff.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, waitMembers, userHomedOn, Client, post, sleep, metric } = require('./lib');
const { Progress, checkHistory, PROMISES, setMessages } = require('../net/delivery');
const { ClusterUser } = require('./users');

const USERS = Number(process.env.FAILOVER_USERS || 60) / 2;
const MESSAGES = 60;
setMessages(MESSAGES);
const ids = ['node-a', 'node-b', 'node-c'];
const API_KEY = 'outage-api-key';

let cluster, nats, nodes;
test.before(async () => {
  cluster = await startCluster(ids, ['--bot', 'echo', '--rate', '0', '--durable-delivery', '--api-key', API_KEY], 3);
  ({ nats, nodes } = cluster);
});

test.after(() => cluster.stop());

test(`a NATS server killed under load: ${USERS} users x ${MESSAGES} messages, every one answered once`, async (t) => {
  const pr = new Progress();
  const users = Array.from({ length: USERS }, (_, k) => new ClusterUser(`nk-${k}`, pr, 10));
  let finished = false;
  const pick = () => nodes[Math.floor(Math.random() * nodes.length)];
  const running = users.map((u) => u.run(pick, () => finished));
  await pr.until(() => users.every((u) => u.token !== null), 'every user greeted');
  await pr.until(() => pr.acked >= (USERS * MESSAGES) / 3, 'a third acknowledged');
  // the server the first node is connected to: its node fails over
  const { server } = (await (await fetch(`${nodes[0].url}/healthz`)).json()).cluster;
  const victim = nats.servers.findIndex((s) => s.url === server);
  assert.ok(victim >= 0, server);
  await nats.servers[victim].kill();
  const killedAt = pr.acked;
  await pr.until(() => users.every((u) => u.closed()), 'every closing message back');
  finished = true;
  await Promise.all(users.map((u) => u.c && u.c.close()));
  await Promise.all(running);
  await checkHistory(pick(), users, pr, true, true);
  const reconnects = users.reduce((s, u) => s + u.reconnects, 0);
  t.diagnostic(`NATS server killed after ${killedAt} acknowledgements; ${pr.counts.sent} messages, ${reconnects} ` +
    `reconnects, ${pr.counts.resent} sent again; lost: ${pr.counts.ackedLost} acknowledged, ${pr.counts.shownLost} shown`);
  for (const [kind, promise] of PROMISES) {
    const found = pr.problems.get(kind) || [];
    assert.deepEqual(found.slice(0, 10), [], `${promise} (${found.length} found)`);
  }
  for (const end = Date.now() + 10000; ;) {
    const h = await (await fetch(`${nodes[0].url}/healthz`)).json();
    if (h.cluster.nats === 'connected' && h.cluster.server !== server) break;
    assert.ok(Date.now() < end, JSON.stringify(h));
    await sleep(100);
  }
  await nats.restart(victim);
});

async function greet(node, user, token) {
  const c = await Client.open(node.port);
  c.send(token ? { type: 'welcome_back', user, token } : { type: 'hello', user });
  const [f] = await c.waitFor((x) => x.type === 'session' || x.type === 'error');
  return { c, f };
}

test('every NATS server gone: local homes chat on, the others are refused at once; NATS back: all recovers', async () => {
  const node = nodes[0];
  const here = userHomedOn('node-a', ids, 'local');
  const away = userHomedOn('node-b', ids, 'away');
  const h = await greet(node, here);
  const a = await greet(node, away);
  assert.equal(h.f.type, 'session');
  assert.equal(a.f.type, 'session');

  await nats.stop();
  for (const end = Date.now() + 10000; ;) {
    const res = await fetch(`${node.url}/healthz`);
    const body = await res.json();
    if (res.status === 503 && body.cluster.nats === 'disconnected') break;
    assert.ok(Date.now() < end, `healthz still says ${JSON.stringify(body)}`);
    await sleep(100);
  }
  // the socket of the user homed elsewhere was closed: its frames could be lost
  assert.equal(await a.c.closed, 1012);
  h.c.send({ type: 'message', user: here, text: 'still here?', mid: 'x1' });
  await h.c.waitFor((f) => f.type === 'message' && f.text === 'still here?');
  const started = Date.now();
  const again = await greet(node, away, a.c.frames.find((f) => f.type === 'session').token);
  assert.equal(again.f.type, 'error');
  assert.equal(again.f.code, 'unavailable');
  assert.ok(Date.now() - started < 2000, 'refused at once');
  await again.c.close();
  // a local home asks for a person meanwhile: the other nodes' desks cannot hear it now
  const auth = { authorization: `Bearer ${API_KEY}` };
  assert.equal((await post(node.port, '/api/handoff', { user: here, reason: 'while cut off' }, auth)).status, 202);
  for (const end = Date.now() + 5000; (await metric(node.port, 'anywhere_handoff_waiting')) !== 1; await sleep(50)) {
    assert.ok(Date.now() < end, 'queued at the home');
  }
  assert.equal(await metric(nodes[1].port, 'anywhere_handoff_waiting'), 0);

  for (let i = 0; i < nats.servers.length; i++) await nats.restart(i);
  await waitMembers(nodes, 3, 20000);
  const health = await fetch(`${node.url}/healthz`);
  assert.equal(health.status, 200);
  // what the home changed while cut off reaches every desk once NATS is back
  for (const n of nodes) {
    for (const end = Date.now() + 10000; (await metric(n.port, 'anywhere_handoff_waiting')) !== 1; await sleep(100)) {
      assert.ok(Date.now() < end, `${n.id} lists the user who asked while cut off`);
    }
  }
  const back = await greet(node, away, a.c.frames.find((f) => f.type === 'session').token);
  assert.equal(back.f.type, 'session');
  back.c.send({ type: 'message', user: away, text: 'and now?', mid: 'y1' });
  await back.c.waitFor((f) => f.type === 'message' && f.text === 'and now?');
  await back.c.close();
  await h.c.close();
  const metrics = await (await fetch(`${node.url}/metrics`)).text();
  assert.ok(Number(/^anywhere_nats_reconnects_total (\d+)$/m.exec(metrics)[1]) >= 1, metrics);
});
