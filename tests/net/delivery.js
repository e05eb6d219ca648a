// The client side of the delivery tests (crash.test.js here, and the
// cluster's failover test): users that send numbered messages with `mid`s,
// resend what was not acknowledged after a reconnect, and record every bot
// message they get, and the checks of what they saw against the promises of
// docs/protocol.md (Delivery) and against history.
'use strict';
const assert = require('node:assert/strict');
const { Client, historyPages } = require('./lib');

// Messages a websocket user has sent and not yet seen acknowledged, at most:
// enough that a kill finds several of them in flight.
const WINDOW = 8;
// Nothing at all received for this long: the server is stuck, and the test
// says so instead of waiting for ctest's timeout.
const STALL_MS = Number(process.env.STALL_MS || 60000);
// How many messages each user sends: set once by the test (setMessages).
let MESSAGES = 50;
function setMessages(n) { MESSAGES = n; }

const textOf = (user, i) => `${user} says ${i}`;
const midOf = (i) => `m${i}`;

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

  // How many messages each user sends (setMessages).
  get messages() {
    return MESSAGES;
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
    // A greeting that is refused (a node stopping), or whose socket closes
    // first, is tried again on another socket by the caller.
    let s;
    try {
      [s] = await Promise.race([
        c.waitFor((f) => f.type === 'session' || f.type === 'error', 1, STALL_MS),
        c.closed.then(() => { throw new Error(`${this.id}: the socket closed before the session frame`); }),
      ]);
    } finally {
      if (!s || s.type !== 'session') c.ws.terminate();
    }
    if (s.type !== 'session') throw new Error(`${this.id}: greeting refused: ${JSON.stringify(s)}`);
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

module.exports = { Progress, User, checkHistory, PROMISES, setMessages, textOf, midOf, STALL_MS, WINDOW };
