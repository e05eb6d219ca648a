// Crash tests of the delivery guarantees (docs/protocol.md, Delivery). Users
// send messages with `mid`s to the echo bot while the server is killed with
// SIGKILL at random moments and restarted on the same data folder; each user
// then comes back with its token (over websockets, with its `last_seq`) and
// sends again, with the same `mid`, what was not acknowledged. Over
// websockets and over webhooks, with and without --durable-delivery, it
// proves for every user: a `seq` names one message and only ever increases,
// so no bot message is renumbered or hidden below one already shown; no
// message reaches the bot twice or is stored twice; a message is kept with
// the reply its bot gave at once, or neither is. With --durable-delivery
// it also proves that every message reaches the bot exactly once and that
// every bot message a client showed is in history afterwards. Without the
// flag a crash may lose the last flush window: that is counted and printed,
// not asserted.
// CRASH_USERS, CRASH_MESSAGES and CRASH_ROUNDS set the size (200 users, 50
// messages each, 3 kills mid-stream per run, each followed by one soon after
// the restart); ctest makes them smaller under sanitizers.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, killServer } = require('./lib');
const { Progress, User, checkHistory, PROMISES, setMessages } = require('./delivery');

const USERS = Number(process.env.CRASH_USERS || 200);
const MESSAGES = Number(process.env.CRASH_MESSAGES || 50);
const ROUNDS = Number(process.env.CRASH_ROUNDS || 3);
setMessages(MESSAGES);

// When each round kills the server, as a number of acknowledged messages
// given the number so far: ROUNDS kills mid-stream, each at random within its
// own slice of 10%..90% of all messages, and after each one a kill soon after
// the restart, once up to half as many more as there are users have been
// acknowledged: the sessions have just been loaded again then, and their
// first replies wait for a seq reservation.
function killPlan() {
  const total = USERS * MESSAGES;
  const width = 0.8 / ROUNDS;
  const plan = [];
  for (let k = 0; k < ROUNDS; k++) {
    plan.push(() => Math.floor(total * (0.1 + width * (k + Math.random()))));
    plan.push((acked) => acked + 1 + Math.floor((Math.random() * USERS) / 2));
  }
  return plan;
}

// Kills the server once `killAt` messages are acknowledged (or every user
// has nothing more to send before its closing message).
async function killWhen(srv, users, pr, killAt) {
  await pr.until(() => pr.acked >= killAt || users.every((u) => u.finished()), `waiting for ${killAt} acknowledgements`);
  await killServer(srv);
  pr.killedAt.push(pr.acked);
}

async function websocketRound(srv, users, pr, killAt) {
  const last = killAt === null;
  await Promise.all(users.map((u) => u.connect(srv.port, pr, last)));
  if (!last) {
    await killWhen(srv, users, pr, killAt);
    await Promise.all(users.map((u) => u.c.closed));
    return;
  }
  await pr.until(() => users.every((u) => u.closed()), 'waiting for every closing message to come back');
  await Promise.all(users.map((u) => u.c.close()));
}

async function webhookRound(srv, users, pr, killAt) {
  if (users[0].token === null) await Promise.all(users.map((u) => u.hello(srv.port)));
  const posting = Promise.all(users.map((u) => u.post(srv.port, pr)));
  if (killAt !== null) {
    await killWhen(srv, users, pr, killAt);
  }
  await posting;
}

async function crashRun(t, channel, durable) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-crash-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const args = ['--bot', 'echo', '--rate', '0', ...(durable ? ['--durable-delivery'] : [])];
  const users = Array.from({ length: USERS }, (_, k) => new User(`${channel}${durable ? '-durable' : ''}-${k}`));
  const pr = new Progress();
  const plan = killPlan();
  let srv = null;
  try {
    for (let round = 0; round <= plan.length; round++) {
      srv = await startServer(args, { dataDir });
      const killAt = round < plan.length ? plan[round](pr.acked) : null;
      if (channel === 'websocket') await websocketRound(srv, users, pr, killAt);
      else await webhookRound(srv, users, pr, killAt);
    }
    await checkHistory(srv, users, pr, durable, channel === 'websocket');
    const n = pr.counts;
    t.diagnostic(`${channel}${durable ? ' --durable-delivery' : ''}: ${pr.killedAt.length} rounds killed (after ` +
      `${pr.killedAt.join(', ')} acknowledgements); ${USERS} users, ${n.sent} messages, ${n.resent} sent again, ` +
      `${n.duplicates} acknowledged as duplicates; ${n.shown} bot messages shown; ${n.jumps} seq jumps ` +
      `skipping ${n.skipped} numbers; lost: ${n.ackedLost} acknowledged, ${n.shownLost} shown; ` +
      `${n.neverEchoed} never came back to the client`);
    for (const [kind, promise] of PROMISES) {
      const found = pr.problems.get(kind) || [];
      assert.deepEqual(found.slice(0, 10), [], `${promise} (${found.length} found)`);
    }
    assert.equal((await srv.stop()).code, 0, srv.log());
  } finally {
    if (srv !== null) srv.proc.kill('SIGKILL');
  }
}

const size = `${USERS} users x ${MESSAGES} messages, killed ${2 * ROUNDS} times`;
test(`websockets, ${size}: no seq renumbered or hidden, no message twice`, (t) => crashRun(t, 'websocket', false));
test(`websockets with --durable-delivery, ${size}: every message once, nothing shown lost`,
  (t) => crashRun(t, 'websocket', true));
test(`webhooks, ${size}: no seq renumbered or decreasing, no message twice`, (t) => crashRun(t, 'webhook', false));
test(`webhooks with --durable-delivery, ${size}: every message once, nothing answered lost`,
  (t) => crashRun(t, 'webhook', true));
