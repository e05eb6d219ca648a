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
const { startServer, Client, historyPages, killServer } = require('./lib');

const USERS = Number(process.env.CRASH_USERS || 200);
const MESSAGES = Number(process.env.CRASH_MESSAGES || 50);
const ROUNDS = Number(process.env.CRASH_ROUNDS || 3);
// Messages a websocket user has sent and not yet seen acknowledged, at most:
// enough that a kill finds several of them in flight.
const WINDOW = 8;
// Nothing at all received for this long: the server is stuck, and the test
// says so instead of waiting for ctest's timeout.
const STALL_MS = 60000;

const textOf = (user, i) => `${user} says ${i}`;
const midOf = (i) => `m${i}`;

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

// What the users have done between them: the counts to report, the broken
// promises found, and a way to wait until something holds.
class Progress {
  constructor() {
    this.acked = 0;
    this.killedAt = [];
    this.activity = 0;
    this.waiters = [];
    this.problems = new Map();
    this.counts = {
      sent: 0, resent: 0, duplicates: 0, shown: 0,
      skipped: 0, jumps: 0, ackedLost: 0, shownLost: 0, neverEchoed: 0,
    };
  }
  ack() {
    this.acked++;
  }
  // Something was received: wake whoever waits for it.
  poke() {
    this.activity++;
    this.waiters = this.waiters.filter((w) => !w());
  }
  problem(kind, detail) {
    if (!this.problems.has(kind)) this.problems.set(kind, []);
    this.problems.get(kind).push(detail);
  }
  // Resolves once `cond()` holds; rejects when nothing was received for
  // STALL_MS meanwhile.
  until(cond, what) {
    return new Promise((resolve, reject) => {
      let timer;
      let seen = this.activity;
      const w = () => {
        if (!cond()) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      const arm = () => {
        timer = setTimeout(() => {
          if (this.activity !== seen) {
            seen = this.activity;
            arm();
            return;
          }
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`${what}: nothing received for ${STALL_MS} ms`));
        }, STALL_MS);
      };
      if (w()) return;
      arm();
      this.waiters.push(w);
    });
  }
}

// One user: its messages 0..MESSAGES-1, and in the last round a closing one
// (index MESSAGES) sent once all the others are acknowledged, whose echo
// says that everything before it has come back.
class User {
  constructor(id) {
    this.id = id;
    this.token = null;
    this.last = 0; // the highest seq shown
    this.next = 0; // the next message never sent
    this.pending = []; // sent and not acknowledged, in the order sent
    this.retried = new Set(); // sent more than once
    this.acked = new Set();
    this.seqs = new Map(); // seq -> text of every bot message received
    this.shown = []; // seqs shown, in order
    this.echoes = new Map(); // text -> the seqs it came back under
    this.c = null;
  }

  // A bot message received. A client shows it only when its seq is above the
  // last one shown, so the seqs shown always increase; a message below that
  // must be one already shown (over websockets a replay may repeat one),
  // else the client would hide it for ever.
  receive(seq, text, pr, replays) {
    const known = this.seqs.get(seq);
    if (known === undefined) this.seqs.set(seq, text);
    else if (known !== text) pr.problem('renumbered', `${this.id}: seq ${seq} was "${known}", then "${text}"`);
    if (!this.echoes.has(text)) this.echoes.set(text, new Set());
    const under = this.echoes.get(text).add(seq);
    if (under.size === 2) pr.problem('doubled', `${this.id}: "${text}" came back as seq ${[...under].join(' and ')}`);
    if (seq <= this.last) {
      if (known === undefined || !replays) {
        pr.problem('hidden', `${this.id}: seq ${seq} ("${text}") arrived after seq ${this.last} had been shown`);
      }
      return;
    }
    this.last = seq;
    this.shown.push(seq);
    pr.counts.shown++;
  }

  // The answer to message `i`: it was taken.
  taken(i, pr, duplicate) {
    const at = this.pending.indexOf(i);
    if (at < 0) {
      pr.problem('ack', `${this.id}: ${midOf(i)} acknowledged while not waiting for it`);
      return;
    }
    if (duplicate && !this.retried.has(i)) pr.problem('ack', `${this.id}: ${midOf(i)}, sent once, taken as a duplicate`);
    this.pending.splice(at, 1);
    this.acked.add(i);
    if (i < MESSAGES) pr.ack();
    if (duplicate) pr.counts.duplicates++;
  }

  finished() {
    return this.next === MESSAGES && this.pending.length === 0;
  }

  closed() {
    return this.echoes.has(textOf(this.id, MESSAGES));
  }

  /* Websockets. */

  async connect(port, pr, last) {
    const c = await Client.open(port);
    c.send(this.token === null ? { type: 'hello', user: this.id }
      : { type: 'reconnect', user: this.id, token: this.token, last_seq: this.last });
    const [s] = await c.waitFor((f) => f.type === 'session', 1, STALL_MS);
    if (this.token === null) {
      assert.match(s.token || '', /^[0-9a-f]{64}$/, `${this.id} is issued its token`);
      this.token = s.token;
    }
    this.c = c;
    // Every frame the client receives counts, those that arrive on a socket
    // of a killed server as well.
    const drain = () => {
      for (const f of c.frames.splice(0)) this.frame(f, pr, last);
      pr.poke();
    };
    c.ws.on('message', drain);
    drain();
    // Again what was not acknowledged, in order, before anything new.
    for (const i of this.pending) {
      this.send(i);
      this.retried.add(i);
      pr.counts.resent++;
    }
    this.fill(pr, last);
  }

  send(i) {
    this.c.send({ type: 'message', user: this.id, token: this.token, text: textOf(this.id, i), mid: midOf(i) });
  }

  // Sends new messages while the window has room and the socket is open;
  // in the last round, the closing one once all the others are acknowledged.
  fill(pr, last) {
    const open = () => this.c !== null && this.c.ws.readyState === 1;
    while (open() && this.pending.length < WINDOW && this.next < MESSAGES) this.sendNew(pr);
    if (last && open() && this.next === MESSAGES && this.pending.length === 0) this.sendNew(pr);
  }

  sendNew(pr) {
    const i = this.next++;
    this.pending.push(i);
    this.send(i);
    if (i < MESSAGES) pr.counts.sent++;
  }

  frame(f, pr, last) {
    if (f.type === 'ack') {
      const i = /^m\d+$/.test(f.mid) ? Number(f.mid.slice(1)) : -1;
      if (f.user !== this.id || i < 0 || i > MESSAGES) pr.problem('ack', `${this.id}: ${JSON.stringify(f)}`);
      else this.taken(i, pr, f.duplicate === true);
      this.fill(pr, last);
    } else if (f.type === 'message') {
      this.receive(f.seq, f.text, pr, true);
    } else if (f.type === 'error') {
      pr.problem('refused', `${this.id}: ${JSON.stringify(f)}`);
    }
  }

  /* Webhooks: one request at a time, as a page does. */

  async hello(port) {
    const res = await fetch(`http://127.0.0.1:${port}/api/messages`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'hello', user: this.id }),
    });
    assert.equal(res.status, 200);
    await res.text();
    this.token = res.headers.get('x-anywhere-token');
    assert.match(this.token || '', /^[0-9a-f]{64}$/, `${this.id} is issued its token`);
  }

  // Sends until every message is acknowledged, or until a request fails
  // because the server is gone: that one is sent again after the restart.
  async post(port, pr) {
    for (;;) {
      if (this.pending.length === 0) {
        if (this.next === MESSAGES) return;
        this.pending.push(this.next++);
        pr.counts.sent++;
      }
      const i = this.pending[0];
      const mid = midOf(i);
      let res;
      let body;
      try {
        res = await fetch(`http://127.0.0.1:${port}/api/messages`, {
          method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'message', user: this.id, token: this.token, text: textOf(this.id, i), mid }),
        });
        body = await res.text();
      } catch (e) {
        this.retried.add(i);
        pr.counts.resent++;
        return;
      }
      if (res.status !== 200) {
        pr.problem('refused', `${this.id}: ${mid} answered ${res.status} ${body}`);
        return;
      }
      if (res.headers.get('x-anywhere-ack') !== mid) {
        pr.problem('ack', `${this.id}: ${mid} answered with X-Anywhere-Ack ${res.headers.get('x-anywhere-ack')}`);
      }
      const replies = JSON.parse(body);
      // A duplicate is answered with nothing: its replies went out the first
      // time (to a client that never got them) and are in history.
      this.taken(i, pr, replies.length === 0);
      for (const r of replies) this.receive(r.seq, r.text, pr, false);
      pr.poke();
    }
  }
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

// Compares each user's history with what it saw: a seq names one message
// there too, nothing is stored twice, and with durable delivery nothing
// acknowledged or shown is missing and every message is there exactly once.
async function checkHistory(srv, users, pr, durable, echoesShown) {
  for (const u of users) {
    const hist = await historyPages(srv.port, u.id, u.token);
    const bots = hist.filter((e) => e.type === 'message');
    const said = hist.filter((e) => e.type === 'message_received');
    const count = (entries) => entries.reduce((m, e) => m.set(e.text, (m.get(e.text) || 0) + 1), new Map());
    const stored = count(said);
    const echoed = count(bots);
    const seqs = new Set();
    let prev = 0;
    for (const e of bots) {
      if (e.seq <= prev) pr.problem('history order', `${u.id}: seq ${e.seq} stored after ${prev}`);
      if (e.seq > prev + 1) {
        pr.counts.skipped += e.seq - prev - 1;
        pr.counts.jumps++;
      }
      prev = Math.max(prev, e.seq);
      seqs.add(e.seq);
      const shown = u.seqs.get(e.seq);
      if (shown !== undefined && shown !== e.text) {
        pr.problem('renumbered', `${u.id}: seq ${e.seq} is "${e.text}" in history, the client got "${shown}"`);
      }
    }
    for (const [text, n] of stored) if (n > 1) pr.problem('stored twice', `${u.id}: "${text}" ${n} times`);
    for (const [text, n] of echoed) if (n > 1) pr.problem('doubled', `${u.id}: "${text}" answered ${n} times in history`);
    // The echo bot answers every message at once: the two are one group.
    for (const text of stored.keys()) if (!echoed.has(text)) pr.problem('kept alone', `${u.id}: "${text}" without its reply`);
    for (const text of echoed.keys()) if (!stored.has(text)) pr.problem('kept alone', `${u.id}: a reply to "${text}" without it`);
    for (const seq of u.shown) {
      if (seqs.has(seq)) continue;
      pr.counts.shownLost++;
      if (durable) pr.problem('lost', `${u.id}: seq ${seq} ("${u.seqs.get(seq)}") was shown and is not in history`);
    }
    for (const i of u.acked) {
      if (stored.has(textOf(u.id, i))) continue;
      pr.counts.ackedLost++;
      if (durable) pr.problem('lost', `${u.id}: ${midOf(i)} was acknowledged and is not in history`);
    }
    for (let i = 0; i < MESSAGES; i++) {
      const text = textOf(u.id, i);
      if (!u.echoes.has(text)) pr.counts.neverEchoed++;
      if (!durable) continue;
      if (stored.get(text) !== 1 || echoed.get(text) !== 1) {
        pr.problem('not once', `${u.id}: "${text}" stored ${stored.get(text) || 0} times, answered ${echoed.get(text) || 0}`);
      }
      if (echoesShown && !u.echoes.has(text)) pr.problem('not once', `${u.id}: "${text}" never came back`);
    }
  }
}

const PROMISES = [
  ['renumbered', 'a seq names one message, before and after a crash'],
  ['hidden', 'no bot message arrives below the last seq shown, where the client would hide it'],
  ['doubled', 'no message reaches the bot twice'],
  ['stored twice', 'no message is stored twice'],
  ['history order', 'history numbers bot messages in increasing order'],
  ['kept alone', 'a message and the reply its bot gives at once are kept together or not at all'],
  ['ack', 'every acknowledgement names a message the client is waiting for'],
  ['refused', 'no message is refused'],
  ['lost', 'with durable delivery nothing acknowledged or shown is lost'],
  ['not once', 'with durable delivery every message reaches the bot exactly once'],
];

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
