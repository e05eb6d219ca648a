// Users for the cluster tests: the delivery tests' users (../net/delivery.js)
// that come back through a random live node when their socket closes, and
// send again what an `unavailable` error left unacknowledged.
'use strict';
const { sleep } = require('./lib');
const { User, WINDOW } = require('../net/delivery');

// A user of the cluster: when its socket closes, it comes back through
// another live node; an `unavailable` error (a node that was leaving, or cut
// off) makes it send the message it names again.
class ClusterUser extends User {
  constructor(id, pr, rate) {
    super(id);
    this.rate = rate;
    this.pr = pr;
    this.unavailable = 0;
    this.reconnects = 0;
    this.nextAt = 0;
    this.timer = null;
  }
  // Sends as the base class does, but one new message per 1/rate s at most:
  // the rest wait for a timer.
  fill(pr, last) {
    const open = () => this.c !== null && this.c.ws.readyState === 1;
    const room = () => (this.pending.length < WINDOW && this.next < this.messages) ||
      (last && this.next === this.messages && this.pending.length === 0);
    if (!open() || !room() || this.timer !== null) return;
    const now = Date.now();
    if (now < this.nextAt) {
      this.timer = setTimeout(() => { this.timer = null; this.fill(pr, last); }, this.nextAt - now);
      return;
    }
    this.nextAt = now + 1000 / this.rate;
    this.sendNew(pr);
    this.fill(pr, last);
  }
  frame(f, pr, last) {
    if (f.type === 'error' && f.code === 'unavailable') {
      // the message named was not taken: it goes again, unless it was
      // acknowledged meanwhile (sent again on another socket)
      this.unavailable++;
      const i = /^m\d+$/.test(f.mid || '') ? Number(f.mid.slice(1)) : -1;
      setTimeout(() => {
        if (i < 0 || !this.pending.includes(i) || this.c === null || this.c.ws.readyState !== 1) return;
        this.send(i);
        this.retried.add(i);
        pr.counts.resent++;
      }, 300);
      return;
    }
    super.frame(f, pr, last);
  }
  async run(pick, done) {
    while (!done()) {
      const node = pick();
      try {
        await this.connect(node.port, this.pr, true);
      } catch (e) {
        await sleep(200);
        continue;
      }
      await this.c.closed;
      if (done()) return;
      this.c = null;
      this.reconnects++;
      await sleep(50 + Math.random() * 250);
    }
  }
}

module.exports = { ClusterUser };
