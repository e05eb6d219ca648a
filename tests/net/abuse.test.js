// Bad input, systematically, at a running server: thousands of malformed
// frames and requests from the fuzz corpus and generated, while a
// well-behaved client chats. It must get every reply, in order; the server
// must stay up and must not grow without bound.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const crypto = require('node:crypto');
const { startServer, Client, post, sleep, rawWebsocket, rawFrame, rssKb } = require('./lib');

const CORPUS = path.join(__dirname, '..', 'fuzz', 'corpus', 'message');

function generated() {
  const out = fs.readdirSync(CORPUS).map((f) => fs.readFileSync(path.join(CORPUS, f)));
  const good = Buffer.from('{"type":"message","user":"abuser","text":"hello there"}');
  for (let i = 1; i < good.length; i += 3) out.push(good.subarray(0, i)); // truncated
  out.push(Buffer.from('['.repeat(5000) + ']'.repeat(5000)));           // deep nesting
  out.push(Buffer.from('{"type":"message","user":"a","n":' + '9'.repeat(4000) + '}')); // huge number
  out.push(Buffer.from([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d]));  // overlong UTF-8
  out.push(Buffer.from('{"type":"message","user":"' + 'u'.repeat(300) + '"}'));
  out.push(Buffer.from('{"type":"message","user":"a","text":"\\ud800"}'));
  for (let i = 0; i < 50; i++) out.push(crypto.randomBytes(1 + (i * 37) % 700));
  return out;
}

// One abusive websocket session: some frames, then whatever the server does.
async function abuseSocket(port, frames) {
  let sock;
  try { sock = await rawWebsocket(port); } catch (e) { return; }
  sock.on('error', () => {});
  sock.on('data', () => {});
  for (const f of frames) { if (!sock.destroyed) sock.write(f); }
  await sleep(5);
  sock.destroy();
}

function badHttp(port, text) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(text));
    s.on('data', () => {});
    s.on('error', resolve);
    s.on('close', resolve);
    setTimeout(() => { s.destroy(); resolve(); }, 2000);
  });
}

test('thousands of malformed frames and requests: the good client gets every reply, the server stays bounded', async () => {
  const srv = await startServer(['--bot', 'echo', '--max-message', '8192', '--rate', '0']);
  const good = await Client.open(srv.port);
  good.send({ type: 'hello', user: 'good' });
  await good.waitFor((f) => f.type === 'session');
  let sent = 0, stop = false;
  const chatting = (async () => {
    while (!stop) {
      const text = `good ${sent}`;
      good.send({ type: 'message', user: 'good', text });
      await good.waitFor((f) => f.text === text, 1, 10000);
      sent++;
    }
  })();
  const rssBefore = rssKb(srv.proc.pid);
  const bodies = generated();
  let abuses = 0;
  // At least 6 rounds, and on until the good client has had 20 round trips
  // under abuse (a slowed build runs the rounds faster than it chats), but
  // never more than 100: a client starved by the abuse fails below.
  for (let round = 0; round < 100 && (round < 6 || sent <= 20); round++) {
    const work = [];
    // text frames with every malformed body, on sockets that are then dropped
    for (let i = 0; i < bodies.length; i += 10) {
      work.push(abuseSocket(srv.port, bodies.slice(i, i + 10).map((b) => rawFrame(1, b))));
    }
    // frames out of place: binary, unmasked, reserved bits, fragmented or oversized control frames,
    // a continuation with nothing to continue, a lying length
    work.push(abuseSocket(srv.port, [rawFrame(2, Buffer.from('bin'))]));
    work.push(abuseSocket(srv.port, [rawFrame(1, Buffer.from('{}'), { masked: false })]));
    work.push(abuseSocket(srv.port, [rawFrame(1, Buffer.from('{}'), { rsv: 7 })]));
    work.push(abuseSocket(srv.port, [rawFrame(9, Buffer.from('p'), { fin: false })]));
    work.push(abuseSocket(srv.port, [rawFrame(9, Buffer.alloc(200))]));
    work.push(abuseSocket(srv.port, [rawFrame(0, Buffer.from('cont'))]));
    work.push(abuseSocket(srv.port, [rawFrame(1, Buffer.from('{"a"'), { fin: false }), rawFrame(1, Buffer.from('x'))]));
    work.push(abuseSocket(srv.port, [Buffer.from([0x81, 0xff, 0, 0, 0, 0, 255, 255, 255, 255, 1, 2, 3, 4])]));
    work.push(abuseSocket(srv.port, [rawFrame(1, Buffer.alloc(20000, 0x61))]));
    // webhook and history bodies
    for (const b of bodies) {
      work.push(post(srv.port, '/botkit/receive', b).catch(() => {}));
      work.push(post(srv.port, '/botkit/history', b).catch(() => {}));
    }
    // broken HTTP itself
    work.push(badHttp(srv.port, 'GET / HTTP/1.1\r\nHost: x\r\n' + 'X-Big: ' + 'h'.repeat(100000) + '\r\n\r\n'));
    work.push(badHttp(srv.port, 'POST /api/messages HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{"type"'));
    work.push(badHttp(srv.port, 'BLAH\r\n\r\n'));
    work.push(badHttp(srv.port, 'GET /api/history?user=%ZZ&limit=-1 HTTP/1.1\r\nHost: x\r\n\r\n'));
    work.push(badHttp(srv.port, 'POST /api/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'));
    abuses += work.length;
    await Promise.all(work);
  }
  stop = true;
  await chatting;
  assert.ok(abuses > 1000, `${abuses} abusive frames and requests`);
  assert.ok(sent > 20, `the good client chatted throughout (${sent} round trips)`);
  const replies = good.messages().map((m) => m.text);
  assert.deepEqual(replies, Array.from({ length: sent }, (_, i) => `good ${i}`), 'every reply, in order, once');
  await sleep(500);
  const rssAfter = rssKb(srv.proc.pid);
  assert.ok(rssAfter - rssBefore < 64 * 1024, `resident memory grew by ${rssAfter - rssBefore} kB`);
  const h = await fetch(`${srv.url}/healthz`);
  assert.equal(h.status, 200);
  await good.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
});
