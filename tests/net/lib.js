// Test helpers: start the real server binary on an ephemeral port of
// 127.0.0.1 with a fresh data folder, and drive it with real websocket and
// HTTP clients. Everything started here is stopped by the test that started it.
'use strict';
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const net = require('node:net');
const crypto = require('node:crypto');

const BIN = process.env.ANYWHERE_BIN;
if (!BIN) throw new Error('ANYWHERE_BIN is not set (run the tests through ctest)');

// Servers still running. A test that fails before it stops its server (or
// its fake bot, or its lock holder) would otherwise leave a handle that keeps
// this file's process alive until ctest's timeout (minutes of nothing, then a
// report that hides the real failure). Once every test of the file is done,
// servers still running 30 s later are killed, and if anything else still
// holds the file up a second later, it exits. This hook may run before the
// file's own `after` hooks, which stop their servers cleanly and check how
// they exited, hence the delay; the timers are unref'd, so they never hold a
// finished file up.
const running = new Set();
require('node:test').after(() => {
  setTimeout(() => {
    for (const proc of running) proc.kill('SIGKILL');
    setTimeout(() => process.exit(), 1000).unref();
  }, 30000).unref();
});

async function startServer(args = [], opts = {}) {
  const ownDir = !opts.dataDir;
  const dir = opts.dataDir || fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-test-'));
  const argv = ['--port', '0', '--data-dir', dir, '--io-threads', '2', '--workers', '2', ...args];
  const proc = spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  running.add(proc);
  proc.on('exit', (code, signal) => {
    running.delete(proc);
    // The MongoDB driver keeps counters in /dev/shm/mongoc-PID and removes
    // the file at a clean exit only: a killed server leaves it behind, and a
    // later process given the same pid then warns on stderr, outside the
    // log's format.
    if (signal) fs.rmSync(`/dev/shm/mongoc-${proc.pid}`, { force: true });
  });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + log)), 10000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /listening on https?:\/\/[^:]+:(\d+)\//.exec(log);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${log}`)); });
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
    if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
    resolve({ code, signal });
  }));
  // With --admin-listen, its port is printed on the line after the main one.
  let adminPort = null;
  if (args.includes('--admin-listen')) {
    const adminRe = /admin listening on http:\/\/\S+:(\d+)\//;
    for (const end = Date.now() + 5000; !adminRe.test(log) && Date.now() < end;) await sleep(20);
    const m = adminRe.exec(log);
    if (!m) throw new Error('the admin port was not printed:\n' + log);
    adminPort = Number(m[1]);
  }
  return {
    port, adminPort, proc, dir, exited,
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    // Resolves once the log matches `re`: the server's stderr arrives on its
    // own pipe, so a line written before an HTTP answer may be read after it.
    async waitForLog(re, ms = 5000) {
      for (const end = Date.now() + ms; !re.test(log) && Date.now() < end;) await sleep(20);
      assert.match(log, re);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

// A websocket client that records every frame and can wait for one.
class Client {
  constructor(port) {
    this.frames = [];
    this.waiters = [];
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    this.closed = new Promise((resolve) => this.ws.on('close', (code) => resolve(code)));
    this.ws.on('message', (data, isBinary) => {
      const f = JSON.parse(data.toString());
      this.frames.push(f);
      this.waiters = this.waiters.filter((w) => !w.check());
    });
    this.ws.on('error', () => {});
  }
  static async open(port) {
    const c = new Client(port);
    await new Promise((resolve, reject) => { c.ws.once('open', resolve); c.ws.once('error', reject); });
    return c;
  }
  send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }
  // Resolves with the frames matching `pred` once there are `count` of them.
  waitFor(pred, count = 1, ms = 5000) {
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          const got = this.frames.filter(pred);
          if (got.length >= count) { clearTimeout(w.timer); resolve(got); return true; }
          return false;
        },
      };
      if (w.check()) return;
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out waiting for ${count} frame(s); got ${JSON.stringify(this.frames)}`));
      }, ms);
      this.waiters.push(w);
    });
  }
  messages() { return this.frames.filter((f) => f.type === 'message'); }
  close() { this.ws.close(); return this.closed; }
}

async function post(port, route, body, headers = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* left null */ }
  return { status: res.status, json, text };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A websocket client that completes the handshake and then never reads nor
// answers anything: a dead or very slow peer.
function rawWebsocket(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    sock.once('data', (d) => { if (!/^HTTP\/1.1 101/.test(d.toString())) reject(new Error('no upgrade: ' + d)); else resolve(sock); });
    sock.on('error', reject);
  });
}

// A masked client text frame.
function frame(obj) {
  const payload = Buffer.from(JSON.stringify(obj));
  const mask = crypto.randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

// A raw client frame: any opcode and flags, masked as a client must (or not).
function rawFrame(opcode, payload, { fin = true, rsv = 0, masked = true } = {}) {
  const len = payload.length;
  const b0 = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  let head;
  if (len < 126) head = Buffer.from([b0, (masked ? 0x80 : 0) | len]);
  else if (len < 65536) head = Buffer.from([b0, (masked ? 0x80 : 0) | 126, len >> 8, len & 255]);
  else { head = Buffer.alloc(10); head[0] = b0; head[1] = (masked ? 0x80 : 0) | 127; head.writeBigUInt64BE(BigInt(len), 2); }
  if (!masked) return Buffer.concat([head, payload]);
  const mask = crypto.randomBytes(4);
  return Buffer.concat([head, mask, Buffer.from(payload.map((x, i) => x ^ mask[i % 4]))]);
}

// The server's resident memory, in kB.
function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// One sample of /metrics: `name` is the metric with its labels, if any
// ('anywhere_errors_total{code="too_large"}').
async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : NaN;
}

// Holds an exclusive lock on an SQLite database from another process (a
// store that cannot be written) until `release` is called.
function lockDatabase(file) {
  const py = spawn('/usr/bin/python3', ['-c', `
import sqlite3, sys
db = sqlite3.connect(${JSON.stringify(file)}, isolation_level=None, timeout=10)
db.execute('BEGIN EXCLUSIVE')
print('locked', flush=True)
sys.stdin.read()
db.execute('ROLLBACK')
`], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve) => py.stdout.once('data', () => resolve({
    release: () => new Promise((r) => { py.on('exit', r); py.stdin.end(); }),
  })));
}

module.exports = {
  lockDatabase, startServer, Client, post, sleep, WebSocket, rawWebsocket, frame, rawFrame, rssKb, metric,
};

// A user's whole history through GET /api/history, page by page, oldest
// first.
async function historyPages(port, user, token, limit = 100) {
  const all = [];
  let query = '';
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/api/history?user=${encodeURIComponent(user)}&limit=${limit}${query}`,
      { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, `the history of ${user}`);
    const page = await res.json();
    all.unshift(...page.history);
    if (!page.more) return all;
    query = `&before=${page.before}`;
  }
}

// Kills a server started by startServer with SIGKILL, as a crash would, and
// resolves once it is gone.
async function killServer(srv) {
  srv.proc.kill('SIGKILL');
  const end = await srv.exited;
  assert.equal(end.signal, 'SIGKILL', 'the server died of the kill, not before it:\n' + srv.log());
}

Object.assign(module.exports, { historyPages, killServer });
