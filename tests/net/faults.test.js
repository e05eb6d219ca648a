// Store outages with SQLite: another process holds the database's write lock.
// Chat goes on, history waits in the bounded queue and the history API and
// healthz answer 503; when the lock goes, everything held is written. When
// the queue bound is reached, new history is refused, logged and counted.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startServer, Client, post, sleep } = require('./lib');

// Holds an exclusive lock on the database until its stdin closes.
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

async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : NaN;
}

test('a locked SQLite database: chat goes on, history waits, nothing acknowledged is lost', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-fault-'));
  const srv = await startServer(['--bot', 'echo', '--store-timeout', '100', '--history-queue', '40'], { dataDir });
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'f1' });
  const [s] = await c.waitFor((f) => f.type === 'session');
  c.send({ type: 'message', user: 'f1', text: 'before' });
  await c.waitFor((f) => f.text === 'before');
  await sleep(100);
  const lock = await lockDatabase(path.join(dataDir, 'anywhere.db'));
  for (let i = 0; i < 10; i++) {
    c.send({ type: 'message', user: 'f1', text: `during ${i}` });
    await c.waitFor((f) => f.text === `during ${i}`); // chat keeps working
  }
  await sleep(300);
  let r = await post(srv.port, '/botkit/history', { user: 'f1', token: s.token });
  assert.equal(r.status, 503);
  assert.equal(r.json.code, 'unavailable');
  let h = await fetch(`${srv.url}/healthz`);
  assert.equal(h.status, 503);
  assert.equal((await h.json()).store, 'unreachable');
  assert.equal(await metric(srv.port, 'anywhere_store_up'), 0);
  assert.ok(await metric(srv.port, 'anywhere_history_queue') >= 20);
  // fill the bounded queue: new history is refused, the chat still answers
  for (let i = 0; i < 15; i++) {
    c.send({ type: 'message', user: 'f1', text: `overflow ${i}` });
    await c.waitFor((f) => f.text === `overflow ${i}`);
  }
  assert.ok(await metric(srv.port, 'anywhere_history_refused_total') > 0);
  assert.match(srv.log(), /history_full: the history queue is full/);
  assert.match(srv.log(), /store_down/);
  await lock.release();
  for (let i = 0; i < 100 && (await fetch(`${srv.url}/healthz`)).status !== 200; i++) await sleep(100);
  h = await fetch(`${srv.url}/healthz`);
  assert.equal(h.status, 200);
  r = await post(srv.port, '/botkit/history', { user: 'f1', token: s.token, limit: 100 });
  assert.equal(r.status, 200);
  const texts = r.json.history.map((e) => `${e.type}:${e.text}`);
  for (let i = 0; i < 10; i++) {
    assert.ok(texts.includes(`message_received:during ${i}`), `during ${i} kept`);
    assert.ok(texts.includes(`message:during ${i}`), `reply to during ${i} kept`);
  }
  assert.equal(new Set(texts).size, texts.length, 'nothing twice');
  assert.match(srv.log(), /store_up/);
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dataDir, { recursive: true, force: true });
});
