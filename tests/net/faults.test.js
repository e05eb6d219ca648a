// Store outages with SQLite: another process holds the database's write
// lock, or the database file becomes unwritable. Chat goes on, for users the
// server already holds and for new ones alike; history waits in the bounded
// queue and the history API and healthz answer 503; when the store returns,
// everything held is written, once, with seqs that never repeat. When the
// queue bound is reached, new history is refused, logged and counted.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startServer, Client, post, sleep, lockDatabase } = require('./lib');

// Makes the database unwritable: the file, its WAL and its folder read-only.
// The server keeps its descriptors open and may run as root, and neither
// cares about mode bits; so where the kernel allows it (root, ext4 and the
// like) the file and its WAL are also made immutable, which refuses writes
// through descriptors already open, as a full or read-only disk does.
function unwritable(file) {
  const dir = path.dirname(file);
  const files = [file, `${file}-wal`].filter((f) => fs.existsSync(f));
  for (const f of files) fs.chmodSync(f, 0o444);
  fs.chmodSync(dir, 0o555);
  const immutable = spawnSync('chattr', ['+i', ...files]).status === 0;
  return Promise.resolve({
    immutable,
    release: async () => {
      if (immutable) spawnSync('chattr', ['-i', ...files]);
      fs.chmodSync(dir, 0o700);
      for (const f of files) fs.chmodSync(f, 0o644);
    },
  });
}

async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : NaN;
}

async function bothApis(port, user, token) {
  const r = await post(port, '/botkit/history', { user, token, limit: 100 });
  assert.equal(r.status, 200);
  return r.json.history;
}

// One outage, start to end: `outage` starts it and returns { release }.
async function throughOutage(outage, { expectDown = true } = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-fault-'));
  const srv = await startServer(['--bot', 'echo', '--store-timeout', '100', '--history-queue', '60'], { dataDir });
  let o = null;
  try {
    return await chatThrough(srv, dataDir, outage, expectDown, (x) => { o = x; });
  } finally {
    if (o !== null) await o.release();
    srv.proc.kill('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function chatThrough(srv, dataDir, outage, expectDown, started) {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'f1' });
  const [s] = await c.waitFor((f) => f.type === 'session');
  c.send({ type: 'message', user: 'f1', text: 'before' });
  await c.waitFor((f) => f.text === 'before');
  await sleep(100);
  const o = await outage(path.join(dataDir, 'anywhere.db'));
  started(o);
  for (let i = 0; i < 10; i++) {
    c.send({ type: 'message', user: 'f1', text: `during ${i}` });
    await c.waitFor((f) => f.text === `during ${i}`); // chat keeps working
  }
  // A user the server has never seen: its first turn must not wait for the
  // store to take writes (a session numbers from its last seq, which must be
  // read, not written).
  const t0 = Date.now();
  const n = await Client.open(srv.port);
  n.send({ type: 'hello', user: 'new-1' });
  const [ns] = await n.waitFor((f) => f.type === 'session', 1, 2000);
  assert.equal(ns.seq, 0);
  // Its token is issued only once its identity claim is durable: while the
  // store takes no writes, the greeting goes on without it (after
  // --store-timeout), and the token follows in a session frame of its own.
  if (expectDown) assert.equal(ns.token, undefined, 'no token before the claim is durable');
  const tokens = () => n.frames.filter((f) => f.type === 'session' && f.token).map((f) => f.token);
  for (let i = 0; i < 3; i++) {
    n.send({ type: 'message', user: 'new-1', text: `new ${i}` });
    await n.waitFor((f) => f.text === `new ${i}`, 1, 2000);
  }
  assert.ok(Date.now() - t0 < 3000, `a new user waited ${Date.now() - t0} ms`);
  await sleep(300);
  if (expectDown) {
    const r = await post(srv.port, '/botkit/history', { user: 'f1', token: s.token });
    assert.equal(r.status, 503);
    assert.equal(r.json.code, 'unavailable');
    const h = await fetch(`${srv.url}/healthz`);
    assert.equal(h.status, 503);
    assert.equal((await h.json()).store, 'unreachable');
    assert.equal(await metric(srv.port, 'anywhere_store_up'), 0);
    assert.ok(await metric(srv.port, 'anywhere_history_queue') >= 20);
    await srv.waitForLog(/store_down/);
  }
  await o.release();
  started(null);
  for (let i = 0; i < 100 && (await fetch(`${srv.url}/healthz`)).status !== 200; i++) await sleep(100);
  assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  for (let i = 0; i < 100 && tokens().length === 0; i++) await sleep(50);
  assert.equal(tokens().length, 1, 'the new user\'s token, once');
  // after the outage the new user's numbering goes on where it was
  n.send({ type: 'message', user: 'new-1', text: 'after' });
  await n.waitFor((f) => f.text === 'after');
  const seen = n.messages().map((m) => m.seq);
  assert.deepEqual(seen, seen.map((_, i) => i + 1), 'seqs 1, 2, 3, ... as the client saw them');
  for (let i = 0; i < 100 && (await metric(srv.port, 'anywhere_history_queue')) !== 0; i++) await sleep(50);
  const texts = (await bothApis(srv.port, 'f1', s.token)).map((e) => `${e.type}:${e.text}`);
  for (let i = 0; i < 10; i++) {
    assert.ok(texts.includes(`message_received:during ${i}`), `during ${i} kept`);
    assert.ok(texts.includes(`message:during ${i}`), `reply to during ${i} kept`);
  }
  assert.equal(new Set(texts).size, texts.length, 'nothing twice');
  const nh = await bothApis(srv.port, 'new-1', tokens()[0]);
  assert.deepEqual(nh.map((e) => `${e.type}:${e.text}`),
    ['message_received:new 0', 'message:new 0', 'message_received:new 1', 'message:new 1',
      'message_received:new 2', 'message:new 2', 'message_received:after', 'message:after']);
  assert.deepEqual(nh.filter((e) => e.type === 'message').map((e) => e.seq), seen, 'stored as sent, once');
  if (expectDown) await srv.waitForLog(/store_up/);
  await Promise.all([c.close(), n.close()]);
  assert.equal((await srv.stop()).code, 0, srv.log());
}

test('a locked SQLite database: chat goes on for old and new users, nothing acknowledged is lost', async () => {
  await throughOutage(lockDatabase);
});

test('an unwritable SQLite database: chat goes on for old and new users, nothing acknowledged is lost', async (t) => {
  // Without the immutable flag (not root, or a file system without it) the
  // server's open descriptors still write: no outage, but the rest holds.
  const canRefuse = process.getuid() === 0 && spawnSync('chattr', ['--help']).error === undefined;
  await throughOutage(unwritable, { expectDown: canRefuse });
  if (!canRefuse) t.diagnostic('writes were never refused here: only the chat and the numbering were checked');
});

test('a full history queue refuses new history, says so once, and the chat goes on', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-fault-'));
  const srv = await startServer(['--bot', 'echo', '--rate', '0', '--store-timeout', '100', '--history-queue', '40'],
    { dataDir });
  t.after(() => { srv.proc.kill('SIGKILL'); fs.rmSync(dataDir, { recursive: true, force: true }); });
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'f1' });
  await c.waitFor((f) => f.type === 'session');
  const lock = await lockDatabase(path.join(dataDir, 'anywhere.db'));
  try {
    for (let i = 0; i < 60; i++) {
      c.send({ type: 'message', user: 'f1', text: `overflow ${i}` });
      await c.waitFor((f) => f.text === `overflow ${i}`);
    }
    assert.ok(await metric(srv.port, 'anywhere_history_refused_total') > 0);
    assert.equal(srv.log().match(/history_full/g).length, 1, 'said once');
  } finally {
    await lock.release();
  }
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('the history queue is bounded in bytes too: big messages are refused past it, the chat goes on', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-fault-'));
  const bound = 1 << 20;
  const srv = await startServer(['--bot', 'echo', '--rate', '0', '--store-timeout', '100',
    '--history-queue-bytes', String(bound)], { dataDir });
  t.after(() => { srv.proc.kill('SIGKILL'); fs.rmSync(dataDir, { recursive: true, force: true }); });
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'big' });
  await c.waitFor((f) => f.type === 'session');
  const lock = await lockDatabase(path.join(dataDir, 'anywhere.db'));
  const big = 'x'.repeat(60000); // kept twice: the message and its echo
  try {
    for (let i = 0; i < 30; i++) {
      c.send({ type: 'message', user: 'big', text: `${i} ${big}` });
      await c.waitFor((f) => f.text === `${i} ${big}`);
    }
    const held = await metric(srv.port, 'anywhere_history_queue_bytes');
    const queued = await metric(srv.port, 'anywhere_history_queue');
    const refused = await metric(srv.port, 'anywhere_history_refused_total');
    assert.ok(held <= bound && held > bound * 0.8, `${held} bytes held`);
    assert.ok(queued < 40, `the byte bound refused, not the count (${queued} held)`);
    assert.ok(refused >= 40, `${refused} refused`);
    assert.equal(srv.log().match(/history_full/g).length, 1, 'said once');
  } finally {
    await lock.release();
  }
  for (let i = 0; i < 100 && (await metric(srv.port, 'anywhere_history_queue_bytes')) !== 0; i++) await sleep(50);
  assert.equal(await metric(srv.port, 'anywhere_history_queue_bytes'), 0);
  await srv.waitForLog(/history_room/);
  // with room again, history is kept again
  c.send({ type: 'message', user: 'big', text: 'small' });
  await c.waitFor((f) => f.text === 'small');
  for (let i = 0; i < 100 && (await metric(srv.port, 'anywhere_history_queue')) !== 0; i++) await sleep(50);
  const r = await post(srv.port, '/botkit/history', { user: 'big', token: c.frames[0].token, limit: 2 });
  assert.deepEqual(r.json.history.map((e) => e.text), ['small', 'small']);
  await c.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('SIGTERM while the store is down loses nothing: the journal is written back at the next start', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-fault-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const args = ['--bot', 'echo', '--rate', '0', '--store-timeout', '100'];
  const s1 = await startServer(args, { dataDir });
  const c = await Client.open(s1.port);
  c.send({ type: 'hello', user: 'jr' });
  const [s] = await c.waitFor((f) => f.type === 'session');
  c.send({ type: 'message', user: 'jr', text: 'before', token: s.token });
  await c.waitFor((f) => f.text === 'before');
  for (let i = 0; i < 100 && (await metric(s1.port, 'anywhere_history_queue')) !== 0; i++) await sleep(20);
  const lock = await lockDatabase(path.join(dataDir, 'anywhere.db'));
  let released = false;
  t.after(() => { if (!released) return lock.release(); });
  const sent = 200;
  for (let i = 0; i < sent; i++) c.send({ type: 'message', user: 'jr', text: `held ${i}`, token: s.token });
  await c.waitFor((f) => f.text === `held ${sent - 1}`);
  const shown = c.messages().map((m) => m.seq);
  assert.ok(await metric(s1.port, 'anywhere_history_queue') >= 2 * sent, 'the records are held');
  assert.equal((await s1.stop()).code, 0, s1.log());
  assert.match(s1.log(), /history_journal: the store did not take \d+ record\(s\) before the stop/);
  assert.ok(fs.existsSync(path.join(dataDir, 'history.journal')));
  await lock.release();
  released = true;

  const s2 = await startServer(args, { dataDir });
  t.after(() => s2.stop());
  assert.match(s2.log(), /history_journal: \d+ record\(s\) the store did not take at the last stop: writing them/);
  await s2.waitForLog(/are in the store now/);
  assert.ok(!fs.existsSync(path.join(dataDir, 'history.journal')), 'the journal is removed once written');
  const h = await post(s2.port, '/botkit/history', { user: 'jr', token: s.token, limit: 100 });
  assert.equal(h.status, 200);
  const r = await fetch(`${s2.url}/api/history?user=jr&limit=100`, { headers: { authorization: `Bearer ${s.token}` } });
  let all = [];
  for (let page = await r.json(), n = 0; n < 20; n++) {
    all = page.history.concat(all);
    if (!page.more) break;
    page = await (await fetch(`${s2.url}/api/history?user=jr&limit=100&before=${page.before}`,
      { headers: { authorization: `Bearer ${s.token}` } })).json();
  }
  const bot = all.filter((e) => e.type === 'message').map((e) => e.seq);
  assert.deepEqual(bot, shown, 'every bot message the client was shown is in history, once');
  const mine = all.filter((e) => e.type === 'message_received').map((e) => e.text);
  assert.deepEqual(mine, ['before', ...Array.from({ length: sent }, (_, i) => `held ${i}`)]);
  // numbering goes on above what the journal held, and above every block
  // reserved before the stop (the last one made while the store was down)
  const c2 = await Client.open(s2.port);
  c2.send({ type: 'welcome_back', user: 'jr', token: s.token });
  const [s2s] = await c2.waitFor((f) => f.type === 'session');
  assert.ok(s2s.seq >= shown[shown.length - 1], `${s2s.seq} after ${shown[shown.length - 1]}`);
  assert.equal(s2s.seq % 64, 0, 'the top of a reserved block');
  await c2.close();
  await c.closed;
  assert.equal((await s2.stop()).code, 0, s2.log());
});
