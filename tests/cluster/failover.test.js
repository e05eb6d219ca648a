// The delivery guarantees across a cluster's changes, under load: users send
// numbered messages with `mid`s to the echo bot through random nodes of three
// while one node is killed with SIGKILL, a fourth joins, the killed one comes
// back, and another leaves with SIGTERM. A socket closed under a user (its
// node died, or closed it with 1012 because the user's home moved) comes back
// through a random live node with its token and `last_seq`, and sends again
// what was not acknowledged. With --durable-delivery it proves for every user
// what one server promises (tests/net/delivery.js): a seq names one message
// and only increases, no message reaches the bot twice or is stored twice,
// every message is answered exactly once, nothing acknowledged or shown is
// lost. The counts are printed.
// FAILOVER_USERS, FAILOVER_MESSAGES and FAILOVER_RATE set the size (60 users,
// 100 messages each, 8 a second).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startNats, sharedStore, startNode, waitMembers, killServer } = require('./lib');
const { Progress, checkHistory, PROMISES, setMessages } = require('../net/delivery');
const { ClusterUser } = require('./users');

const USERS = Number(process.env.FAILOVER_USERS || 60);
const MESSAGES = Number(process.env.FAILOVER_MESSAGES || 100);
// Messages a user sends per second at most: the run lasts long enough for
// every change to happen under load.
const RATE = Number(process.env.FAILOVER_RATE || 8);
setMessages(MESSAGES);

test(`${USERS} users x ${MESSAGES} messages through a node killed, a join, a return and a leave`, async (t) => {
  const nats = await startNats(3);
  const store = sharedStore();
  const args = { args: ['--bot', 'echo', '--rate', '0', '--durable-delivery'] };
  const live = new Map();
  const all = [];
  const start = async (id) => {
    const n = await startNode(nats, store, id, args);
    live.set(id, n);
    all.push(n);
    return n;
  };
  try {
    for (const id of ['node-a', 'node-b', 'node-c']) await start(id);
    await waitMembers([...live.values()], 3);
    const pr = new Progress();
    const users = Array.from({ length: USERS }, (_, k) => new ClusterUser(`fo-${k}`, pr, RATE));
    let finished = false;
    const pick = () => { const l = [...live.values()]; return l[Math.floor(Math.random() * l.length)]; };
    const running = users.map((u) => u.run(pick, () => finished));
    const total = USERS * MESSAGES;
    const at = (share) => pr.until(() => pr.acked >= total * share || users.every((u) => u.finished()), `${share * 100}% acknowledged`);
    const events = [];

    // every user has its token before the first change: an id's token is
    // issued once, ever, and one lost with a killed node is not issued again
    await pr.until(() => users.every((u) => u.token !== null), 'every user greeted');
    await at(0.2);
    const b = live.get('node-b');
    live.delete('node-b');
    await killServer(b);
    events.push(`node-b killed at ${pr.acked}`);

    await at(0.4);
    await start('node-d');
    events.push(`node-d joined at ${pr.acked}`);

    await at(0.6);
    await start('node-b');
    events.push(`node-b back at ${pr.acked}`);

    await at(0.8);
    const c = live.get('node-c');
    live.delete('node-c');
    const left = await c.stop();
    assert.equal(left.code, 0, c.log());
    events.push(`node-c left at ${pr.acked}`);

    await pr.until(() => users.every((u) => u.closed()), 'every closing message back').catch((e) => {
      const stuck = users.filter((u) => !u.closed()).slice(0, 5).map((u) => `${u.id}: next ${u.next}, ` +
        `waiting for ${u.pending.join(',')}, last seq ${u.last}, socket ${u.c ? u.c.ws.readyState : 'none'}`);
      throw new Error(`${e.message}; ${events.join('; ')}; stuck: ${stuck.join('; ')}`);
    });
    finished = true;
    await Promise.all(users.map((u) => u.c && u.c.close()));
    await Promise.all(running);

    await checkHistory(pick(), users, pr, true, true);
    const n = pr.counts;
    const unavailable = users.reduce((s, u) => s + u.unavailable, 0);
    const reconnects = users.reduce((s, u) => s + u.reconnects, 0);
    t.diagnostic(`${events.join('; ')}; ${n.sent} messages, ${reconnects} reconnects, ${n.resent} sent again, ` +
      `${n.duplicates} acknowledged as duplicates, ${unavailable} unavailable; ${n.shown} bot messages shown; ` +
      `${n.jumps} seq jumps skipping ${n.skipped} numbers; lost: ${n.ackedLost} acknowledged, ${n.shownLost} shown`);
    for (const [kind, promise] of PROMISES) {
      const found = pr.problems.get(kind) || [];
      assert.deepEqual(found.slice(0, 10), [], `${promise} (${found.length} found)`);
    }
    for (const node of live.values()) {
      const r = await node.stop();
      assert.equal(r.code, 0, node.log());
    }
  } finally {
    for (const node of all) node.proc.kill('SIGKILL');
    await nats.stop();
    store.remove();
  }
});
