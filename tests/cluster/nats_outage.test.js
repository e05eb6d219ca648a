// NATS failing under a cluster. One server of a three-server NATS cluster
// killed with SIGKILL under load: the nodes fail over to the others and chat
// goes on, every message answered once. Every NATS server stopped: users
// whose home is the node they reached keep chatting, the others get
// `unavailable` at once (never a hang), /healthz says so; NATS back: the
// nodes hear each other again and chat through any node works again.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, waitMembers, userHomedOn, Client, sleep } = require('./lib');
const { Progress, checkHistory, PROMISES, setMessages } = require('../net/delivery');
const { ClusterUser } = require('./users');

const USERS = Number(process.env.FAILOVER_USERS || 60) / 2;
const MESSAGES = 60;
setMessages(MESSAGES);
const ids = ['node-a', 'node-b', 'node-c'];

let cluster, nats, nodes;
test.before(async () => {
  cluster = await startCluster(ids, ['--bot', 'echo', '--rate', '0', '--durable-delivery'], 3);
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

  for (let i = 0; i < nats.servers.length; i++) await nats.restart(i);
  await waitMembers(nodes, 3, 20000);
  const health = await fetch(`${node.url}/healthz`);
  assert.equal(health.status, 200);
  const back = await greet(node, away, a.c.frames.find((f) => f.type === 'session').token);
  assert.equal(back.f.type, 'session');
  back.c.send({ type: 'message', user: away, text: 'and now?', mid: 'y1' });
  await back.c.waitFor((f) => f.type === 'message' && f.text === 'and now?');
  await back.c.close();
  await h.c.close();
  const metrics = await (await fetch(`${node.url}/metrics`)).text();
  assert.ok(Number(/^anywhere_nats_reconnects_total (\d+)$/m.exec(metrics)[1]) >= 1, metrics);
});
