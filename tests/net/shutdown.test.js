// SIGTERM under load: the server stops accepting, finishes the turns in
// flight, closes websockets with 1001 and exits 0 within a few seconds.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, Client, post, sleep } = require('./lib');

test('SIGTERM under load exits 0 promptly and closes sockets with 1001', async () => {
  const srv = await startServer(['--bot', 'demo']);
  const clients = await Promise.all(Array.from({ length: 50 }, () => Client.open(srv.port)));
  let sending = true;
  const loops = clients.map(async (c, i) => {
    c.send({ type: 'hello', user: `sd-${i}` });
    let n = 0;
    while (sending && c.ws.readyState === 1) {
      c.send({ type: 'message', user: `sd-${i}`, text: i % 5 === 0 ? 'sequence' : `m${n++}` });
      await sleep(5);
    }
  });
  const hooks = Array.from({ length: 10 }, async (_, i) => {
    while (sending) {
      await post(srv.port, '/api/messages', { type: 'message', user: `sdw-${i}`, text: 'x' }).catch(() => {});
    }
  });
  await sleep(500);
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const { code } = await srv.exited;
  const took = Date.now() - t0;
  sending = false;
  assert.equal(code, 0, srv.log());
  assert.ok(took < 8000, `took ${took} ms`);
  const codes = await Promise.all(clients.map((c) => c.closed));
  assert.ok(codes.every((x) => x === 1001 || x === 1006), JSON.stringify(codes));
  assert.ok(codes.filter((x) => x === 1001).length >= 45, JSON.stringify(codes));
  // A typed sequence that was under way was finished, not cut: every client
  // that asked for one got all three parts or none had started.
  for (let i = 0; i < clients.length; i += 5) {
    const texts = clients[i].messages().map((m) => m.text);
    const firsts = texts.filter((t) => t === 'This is the first of three messages.').length;
    const lasts = texts.filter((t) => t === 'And this is the last one, with a picture.').length;
    assert.equal(firsts, lasts, `client ${i}: ${firsts} sequences started, ${lasts} finished`);
  }
  await Promise.all([...loops, ...hooks]);
});
