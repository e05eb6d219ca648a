// Hostile websocket clients, one way of abusing the transport per test:
// each runs while a well-behaved client chats (it must keep getting its
// replies), bounds the server's memory per hostile socket, and checks that
// the server closed the hostile sockets the way the protocol says.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, Client, sleep, rawWebsocket, rawFrame, rssKb, metric } = require('./lib');

// Waits for the writable side of `sock` to drain, or for it to close.
function drained(sock) {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

// Writes `chunk` over and over until the server closes the socket.
async function writeForever(sock, chunk) {
  while (!sock.destroyed) {
    if (!sock.write(chunk)) await drained(sock);
  }
}

// Runs `attack(sock, i)` on `sockets` raw websockets while a client chats
// with the echo bot, until the server has closed every hostile socket. The
// server's resident memory is sampled throughout: the attack stops, and the
// test fails, as soon as it grows more than `kbPerSocket` per hostile socket
// over its baseline, so that a server growing without bound fails fast
// instead of eating the machine. Returns the good client's round trips
// during the attack, and the growth per hostile socket at its peak and once
// the sockets are closed.
async function underAttack(srv, { sockets, attack, kbPerSocket, ms = 60000 }) {
  const good = await Client.open(srv.port);
  good.send({ type: 'hello', user: 'good' });
  await good.waitFor((f) => f.type === 'session');
  let trips = 0;
  let stop = false;
  const chatting = (async () => {
    while (!stop) {
      const text = `good ${trips}`;
      good.send({ type: 'message', user: 'good', text });
      await good.waitFor((f) => f.text === text, 1, 20000);
      trips++;
    }
  })();
  await sleep(200);
  const base = rssKb(srv.proc.pid);
  const hostile = [];
  for (let i = 0; i < sockets; i++) {
    const s = await rawWebsocket(srv.port);
    s.on('error', () => {});
    hostile.push(s);
  }
  let open = sockets;
  let allClosed = false;
  for (const s of hostile) s.once('close', () => { allClosed = --open === 0; });
  const tripsBefore = trips;
  hostile.forEach((s, i) => attack(s, i));
  let peak = base;
  for (const end = Date.now() + ms; !allClosed && Date.now() < end;) {
    peak = Math.max(peak, rssKb(srv.proc.pid));
    if ((peak - base) / sockets > kbPerSocket) break;
    await sleep(20);
  }
  const tripsDuring = trips - tripsBefore;
  const closedByServer = allClosed;
  for (const s of hostile) s.destroy();
  await sleep(20 * 10);
  stop = true;
  await chatting;
  await sleep(500);
  const after = rssKb(srv.proc.pid);
  const replies = good.messages().map((m) => m.text);
  assert.deepEqual(replies, Array.from({ length: trips }, (_, i) => `good ${i}`), 'every reply, in order, once');
  await good.close();
  return {
    closedByServer,
    tripsDuring,
    peakKbPerSocket: Math.round((peak - base) / sockets),
    afterKbPerSocket: Math.round((after - base) / sockets),
  };
}

function checkAttack(t, r, kbPerSocket) {
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.peakKbPerSocket <= kbPerSocket, `the server grew ${r.peakKbPerSocket} kB per hostile socket`);
  assert.ok(r.closedByServer, 'the server closed every hostile socket');
  assert.ok(r.tripsDuring >= 3, `the good client chatted during the attack (${r.tripsDuring} round trips)`);
  assert.ok(r.afterKbPerSocket <= kbPerSocket, `${r.afterKbPerSocket} kB per hostile socket left once closed`);
}

test('pings whose pongs are never read: closed with 1008 past --max-outbox, memory bounded', async (t) => {
  const outbox = 256 * 1024;
  const srv = await startServer(['--bot', 'echo', '--rate', '0', '--max-outbox', String(outbox)]);
  const empty = Buffer.concat(Array.from({ length: 1000 }, () => rawFrame(9, Buffer.alloc(0))));
  const full = Buffer.concat(Array.from({ length: 100 }, () => rawFrame(9, Buffer.alloc(125, 0x70))));
  // the pongs (a copy of each ping's payload) cost the server at most the
  // outbox, once in the buffer being filled and once in the one being written
  const kbPerSocket = (4 * outbox) / 1024 + 256;
  const r = await underAttack(srv, {
    sockets: 16,
    kbPerSocket,
    attack: (s, i) => {
      s.pause(); // never reads a pong
      writeForever(s, i % 2 === 0 ? empty : full);
    },
  });
  checkAttack(t, r, kbPerSocket);
  assert.equal(await metric(srv.port, 'anywhere_sockets_closed_abuse_total{reason="unread_control"}'), 16);
  assert.equal(await metric(srv.port, 'anywhere_sockets_closed_slow_total'), 0);
  assert.equal((await srv.stop()).code, 0, srv.log());
});
