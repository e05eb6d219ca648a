// An operator's side for the tests: an operators file written by the binary,
// a sign-in, and a console's websocket with every frame it got.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const WebSocket = require('ws');
const { sleep } = require('./lib');

const PASSWORDS = { ann: 'ann secret words', bob: 'bob secret words' };

// A data folder with an operators file of ann and bob, written by the binary.
function dataDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-handoff-'));
  for (const [name, password] of Object.entries(PASSWORDS)) {
    const r = spawnSync(process.env.ANYWHERE_BIN, ['operator', 'add', name, '--operators', path.join(dir, 'ops')],
      { input: password + '\n' });
    assert.equal(r.status, 0, String(r.stderr));
  }
  return dir;
}

async function signIn(srv, name, password = PASSWORDS[name], headers = {}) {
  const r = await fetch(`${srv.url}/console/login`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ name, password }),
  });
  const cookie = r.headers.get('set-cookie');
  return { status: r.status, setCookie: cookie, cookie: cookie ? cookie.split(';')[0] : null };
}

// An operator's console: its websocket, every frame it got, and a wait.
class Console {
  static async open(srv, cookie, headers = {}) {
    const c = new Console();
    c.frames = [];
    c.waiters = [];
    c.ws = new WebSocket(`ws://127.0.0.1:${srv.port}/console/ws`, { headers: { cookie, ...headers } });
    c.closed = new Promise((resolve) => c.ws.on('close', resolve));
    c.ws.on('message', (d) => {
      c.frames.push(JSON.parse(d.toString()));
      c.waiters = c.waiters.filter((w) => !w());
    });
    await new Promise((resolve, reject) => {
      c.ws.once('open', resolve);
      c.ws.once('error', reject);
      c.ws.once('unexpected-response', (req, res) => reject(new Error(`refused: ${res.statusCode}`)));
    });
    return c;
  }
  send(obj) { this.ws.send(JSON.stringify(obj)); }
  waitFor(pred, ms = 5000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const f = this.frames.find(pred);
        if (f) { clearTimeout(timer); resolve(f); return true; }
        return false;
      };
      const timer = setTimeout(() => reject(new Error('timed out; got ' + JSON.stringify(this.frames))), ms);
      if (!check()) this.waiters.push(check);
    });
  }
  // The newest list of the desk, once it satisfies `pred`.
  async queue(pred, ms = 5000) {
    const end = Date.now() + ms;
    for (;;) {
      const q = [...this.frames].reverse().find((f) => f.type === 'queue');
      if (q && pred(q)) return q;
      if (Date.now() > end) throw new Error('queue never matched; last ' + JSON.stringify(q));
      await sleep(20);
    }
  }
  close() { this.ws.close(); return this.closed; }
}

// Refusal of a websocket handshake: the status it was answered with.
function refusedStatus(srv, headers) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/console/ws`, { headers });
    ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); req.destroy(); });
    ws.on('open', () => { ws.close(); reject(new Error('the handshake was accepted')); });
    ws.on('error', () => {});
  });
}

module.exports = { PASSWORDS, dataDir, signIn, Console, refusedStatus };
