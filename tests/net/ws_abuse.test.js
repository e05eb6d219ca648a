// Hostile websocket clients, one way of abusing the transport per test. The
// floods and stalls run while a well-behaved client chats (it must keep
// getting its replies), bound the server's memory per hostile socket, and
// check that the server closed the hostile sockets the way the protocol says;
// the protocol violations check the answer RFC 6455 asks for.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const { startServer, Client, sleep, rawWebsocket, rawFrame, rssKb, metric } = require('./lib');

// Memory bounds hold for a plain build; a sanitizer build (AW_RSS_CHECK=0)
// still runs every attack and checks everything else.
const RSS_CHECK = process.env.AW_RSS_CHECK !== '0';

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

// Runs `attack(sock, i)` on `sockets` raw websockets at once while a client
// chats with the echo bot, and waits until every one of them has ended: the
// server closed it, or its attack resolved to 'done'. That is a wave. Waves go on until the good client has had `minTrips` round
// trips under attack (at most `maxWaves`). The server's resident memory is
// sampled throughout: the attack stops, and the test fails, as soon as it
// grows more than `kbPerSocket` per hostile socket of a wave over its
// baseline, so that a server growing without bound fails fast instead of
// eating the machine. Returns the number of waves, the good client's round
// trips under attack, and the growth per hostile socket at its peak and once
// the sockets are closed. `pace` (ms) spaces the good client's messages, for
// a server with a rate limit.
async function underAttack(srv, { sockets, attack, kbPerSocket, ms = 30000, minTrips = 5, maxWaves = 10, pace = 0 }) {
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
      if (pace) await sleep(pace);
    }
  })();
  await sleep(200);
  const base = rssKb(srv.proc.pid);
  let peak = base;
  let waves = 0;
  let tripsDuring = 0;
  let ended = true;
  const over = () => RSS_CHECK && (peak - base) / sockets > kbPerSocket;
  while (ended && !over() && waves < maxWaves && (waves === 0 || tripsDuring < minTrips)) {
    const hostile = [];
    for (let i = 0; i < sockets; i++) {
      const s = await rawWebsocket(srv.port);
      s.on('error', () => {});
      hostile.push(s);
    }
    let open = sockets;
    const tripsBefore = trips;
    hostile.forEach((s, i) => {
      let counted = false;
      const end = () => {
        if (!counted) open--;
        counted = true;
      };
      s.once('close', end);
      Promise.resolve(attack(s, waves * sockets + i)).then((r) => { if (r === 'done') end(); });
    });
    waves++;
    for (const end = Date.now() + ms; open !== 0 && Date.now() < end && !over();) {
      peak = Math.max(peak, rssKb(srv.proc.pid));
      await sleep(20);
    }
    tripsDuring += trips - tripsBefore;
    ended = open === 0;
    for (const s of hostile) s.destroy();
  }
  stop = true;
  await chatting;
  await sleep(500);
  const after = rssKb(srv.proc.pid);
  const replies = good.messages().map((m) => m.text);
  assert.deepEqual(replies, Array.from({ length: trips }, (_, i) => `good ${i}`), 'every reply, in order, once');
  await good.close();
  return {
    waves,
    ended,
    tripsDuring,
    peakKbPerSocket: Math.round((peak - base) / sockets),
    afterKbPerSocket: Math.round((after - base) / sockets),
  };
}

function checkAttack(t, r, kbPerSocket) {
  t.diagnostic(JSON.stringify(r));
  if (RSS_CHECK) assert.ok(r.peakKbPerSocket <= kbPerSocket, `the server grew ${r.peakKbPerSocket} kB per hostile socket`);
  assert.ok(r.ended, 'every hostile socket was closed by the server (or was done)');
  assert.ok(r.tripsDuring >= 5, `the good client chatted during the attack (${r.tripsDuring} round trips)`);
  if (RSS_CHECK) assert.ok(r.afterKbPerSocket <= kbPerSocket, `${r.afterKbPerSocket} kB per hostile socket left once closed`);
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
  assert.equal(await metric(srv.port, 'anywhere_sockets_closed_abuse_total{reason="unread_control"}'), 16 * r.waves);
  assert.equal(await metric(srv.port, 'anywhere_sockets_closed_slow_total'), 0);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

// Parses what the server sends on a raw socket: `closeCode` resolves with
// the code of its close frame (1005 for none in it), or null when the
// connection ends without a close frame.
function serverFrames(sock) {
  let buf = Buffer.alloc(0);
  const frames = [];
  let closeCode;
  const closed = new Promise((resolve) => { closeCode = resolve; });
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2) {
      let len = buf[1] & 127;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) break;
        len = buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buf.length < 10) break;
        len = Number(buf.readBigUInt64BE(2));
        at = 10;
      }
      if (buf.length < at + len) break;
      const f = { opcode: buf[0] & 15, payload: buf.subarray(at, at + len) };
      frames.push(f);
      buf = buf.subarray(at + len);
      if (f.opcode === 8) closeCode(len >= 2 ? f.payload.readUInt16BE(0) : 1005);
    }
  });
  sock.on('close', () => closeCode(null));
  return { frames, closeCode: closed };
}

test('a message in one-byte fragments that never ends: closed with 1008 after 256 frames, memory bounded', async (t) => {
  const srv = await startServer(['--bot', 'echo', '--rate', '0']);
  // up to the limit, a fragmented message is a message like any other
  const ok = await rawWebsocket(srv.port);
  const okFrames = serverFrames(ok);
  const text = JSON.stringify({ type: 'message', user: 'frag', text: 'in pieces' });
  const pieces = Array.from({ length: 256 }, (_, i) => text.slice((i * text.length) / 256, ((i + 1) * text.length) / 256));
  ok.write(Buffer.concat(pieces.map((p, i) => rawFrame(i === 0 ? 1 : 0, Buffer.from(p), { fin: i === 255 }))));
  for (let i = 0; i < 500 && !okFrames.frames.some((f) => /in pieces/.test(f.payload)); i++) await sleep(10);
  assert.ok(okFrames.frames.some((f) => /"text":"in pieces"/.test(f.payload)), 'the 256-frame message was answered');
  ok.destroy();

  const codes = [];
  const first = rawFrame(1, Buffer.from('{'), { fin: false });
  // 10,000 held about 900 kB a socket, as long as the socket stayed open
  const rest = Buffer.concat(Array.from({ length: 9999 }, () => rawFrame(0, Buffer.from(' '), { fin: false })));
  const kbPerSocket = 256;
  const r = await underAttack(srv, {
    sockets: 50,
    kbPerSocket,
    attack: (s) => {
      serverFrames(s).closeCode.then((c) => codes.push(c));
      s.write(first);
      s.write(rest);
    },
  });
  checkAttack(t, r, kbPerSocket);
  assert.deepEqual(codes, Array(50 * r.waves).fill(1008));
  assert.equal(await metric(srv.port, 'anywhere_sockets_closed_abuse_total{reason="fragments"}'), 50 * r.waves);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a message or frame left unfinished: closed with 1008 after --http-timeout, memory bounded', async (t) => {
  const srv = await startServer(['--bot', 'echo', '--rate', '0', '--http-timeout', '1000']);
  const codes = [];
  // Each keeps sending, a byte at a time, so that the socket never looks idle.
  const trickle = async (s, bytes) => {
    for (let i = 0; i < bytes.length && !s.destroyed; i++) {
      s.write(bytes.subarray(i, i + 1));
      await sleep(100);
    }
  };
  const kbPerSocket = 256;
  const r = await underAttack(srv, {
    sockets: 30,
    kbPerSocket,
    ms: 15000,
    attack: (s, i) => {
      serverFrames(s).closeCode.then((c) => codes.push(c));
      const big = rawFrame(1, Buffer.alloc(60000, 0x20));
      if (i % 3 === 0) {
        trickle(s, big); // a large frame, declared at once and sent slowly
      } else if (i % 3 === 1) {
        // a message whose first fragment came, then pings but no more of it
        s.write(rawFrame(1, Buffer.from('{"type":'), { fin: false }));
        trickle(s, Buffer.concat(Array.from({ length: 300 }, () => rawFrame(9, Buffer.alloc(0)))));
      } else {
        trickle(s, Buffer.concat([rawFrame(9, Buffer.alloc(0)), big.subarray(0, 3)]).subarray(0, 8));
      }
    },
  });
  checkAttack(t, r, kbPerSocket);
  assert.deepEqual(codes, Array(30 * r.waves).fill(1008));
  assert.equal(await metric(srv.port, 'anywhere_sockets_closed_abuse_total{reason="stalled"}'), 30 * r.waves);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a client that sends faster than its session takes: its socket waits, nothing is lost, memory bounded', async (t) => {
  // The default rate limit answers most of the flood with rate_limited: one
  // answer for every message, and nothing kept in the history.
  const srv = await startServer(['--bot', 'echo']);
  const messages = 20000;
  const answered = [];
  const kbPerSocket = 1024;
  const r = await underAttack(srv, {
    sockets: 10,
    kbPerSocket,
    pace: 60, // under the rate limit of 20 a second
    attack: async (s, i) => {
      const user = `flood-${i}`;
      const { frames } = serverFrames(s);
      const chunk = Buffer.concat(Array.from({ length: 1000 },
        (_, j) => rawFrame(1, Buffer.from(JSON.stringify({ type: 'message', user, text: `f${j}` })))));
      for (let k = 0; k < messages / 1000 && !s.destroyed; k++) {
        if (!s.write(chunk)) await drained(s);
      }
      for (const end = Date.now() + 60000; frames.length < messages && !s.destroyed && Date.now() < end;) await sleep(20);
      answered.push(frames.filter((f) => f.opcode === 1).length);
      return 'done';
    },
  });
  checkAttack(t, r, kbPerSocket);
  assert.deepEqual(answered, Array(10 * r.waves).fill(messages), 'every message was answered, none dropped');
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('messages wslay refuses are counted: over --max-message as too_large (1009), not UTF-8 as bad_json (1007)', async () => {
  const srv = await startServer(['--bot', 'echo', '--rate', '0', '--max-message', '1024']);
  const refused = async (frames) => {
    const s = await rawWebsocket(srv.port);
    const { closeCode } = serverFrames(s);
    s.on('error', () => {});
    for (const f of frames) s.write(f);
    const code = await closeCode;
    s.destroy();
    return code;
  };
  const before = await metric(srv.port, 'anywhere_errors_total{code="bad_json"}');
  assert.equal(await refused([rawFrame(1, Buffer.alloc(2000, 0x20))]), 1009);
  assert.equal(await refused([rawFrame(1, Buffer.alloc(600, 0x20), { fin: false }), rawFrame(0, Buffer.alloc(600, 0x20))]), 1009);
  assert.equal(await refused([rawFrame(1, Buffer.from([0x7b, 0xc0, 0xaf, 0x7d]))]), 1007);
  assert.equal(await metric(srv.port, 'anywhere_errors_total{code="too_large"}'), 2);
  assert.equal(await metric(srv.port, 'anywhere_errors_total{code="bad_json"}'), before + 1);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a close frame with a one-byte body is a protocol error: answered with 1002', async () => {
  const srv = await startServer(['--bot', 'echo']);
  const close = async (body) => {
    const s = await rawWebsocket(srv.port);
    const { closeCode } = serverFrames(s);
    s.on('error', () => {});
    s.write(rawFrame(8, body));
    const code = await closeCode;
    s.destroy();
    return code;
  };
  assert.equal(await close(Buffer.from([0x03])), 1002);
  assert.equal(await close(Buffer.from([0x03, 0xe8])), 1000, 'a well-formed close is echoed');
  assert.equal(await close(Buffer.alloc(0)), 1005, 'an empty close is answered with an empty one');
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('frames that break RFC 6455 are answered with 1002 before the connection ends', async () => {
  const srv = await startServer(['--bot', 'echo']);
  const bad = {
    'a control frame over 125 bytes': rawFrame(9, Buffer.alloc(200)),
    'a fragmented ping': rawFrame(9, Buffer.from('p'), { fin: false }),
    'a 16-bit length under 126': Buffer.from([0x81, 0x80 | 126, 0, 5, 1, 2, 3, 4, 1, 2, 3, 4, 5]),
    'a 64-bit length under 65536': Buffer.from([0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 1, 2, 3, 4, 5]),
    'a 64-bit length with its top bit set': Buffer.from([0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4]),
    'an unmasked frame': rawFrame(1, Buffer.from('{}'), { masked: false }),
    'reserved bits': rawFrame(1, Buffer.from('{}'), { rsv: 4 }),
    'a reserved opcode': rawFrame(3, Buffer.from('x')),
    'a continuation of nothing': rawFrame(0, Buffer.from('x')),
    'a new message inside a fragmented one': Buffer.concat([rawFrame(1, Buffer.from('{'), { fin: false }), rawFrame(1, Buffer.from('x'))]),
    'a close code that may not be sent': rawFrame(8, Buffer.from([0x03, 0xed])),
  };
  for (const [what, bytes] of Object.entries(bad)) {
    const s = await rawWebsocket(srv.port);
    const { closeCode } = serverFrames(s);
    s.on('error', () => {});
    s.write(bytes);
    assert.equal(await closeCode, 1002, what);
    await new Promise((resolve) => { if (s.destroyed) resolve(); else s.on('close', resolve); });
  }
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a websocket handshake for a version other than 13 is refused with 426 and the version spoken', async () => {
  const srv = await startServer(['--bot', 'echo']);
  const handshake = (version) => new Promise((resolve, reject) => {
    const s = net.connect(srv.port, '127.0.0.1', () => {
      s.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n` +
        (version === null ? '' : `Sec-WebSocket-Version: ${version}\r\n`) + '\r\n');
    });
    let head = '';
    s.on('data', (d) => {
      head += d;
      if (head.includes('\r\n\r\n')) {
        s.destroy();
        resolve(head.slice(0, head.indexOf('\r\n\r\n')));
      }
    });
    s.on('error', reject);
  });
  for (const version of ['8', '14', '13, 8', null]) {
    const head = await handshake(version);
    assert.match(head, /^HTTP\/1\.1 426 /, `version ${version}: ${head}`);
    assert.match(head, /\r\nsec-websocket-version: 13(\r\n|$)/i, head);
  }
  assert.match(await handshake('13'), /^HTTP\/1\.1 101 /);
  assert.equal((await srv.stop()).code, 0, srv.log());
});
