// 200 concurrent clients each send 20 messages to the echo bot and get
// exactly their 20 replies, in order, with consecutive seq numbers.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, Client } = require('./lib');

test('200 clients x 20 messages: every reply, in order, to its own client', async () => {
  const srv = await startServer(['--bot', 'echo']);
  const clients = await Promise.all(Array.from({ length: 200 }, () => Client.open(srv.port)));
  await Promise.all(clients.map(async (c, i) => {
    const user = `load-${i}`;
    c.send({ type: 'hello', user });
    await c.waitFor((f) => f.type === 'session');
    for (let j = 0; j < 20; j++) c.send({ type: 'message', user, text: `${user}:${j}` });
    const got = await c.waitFor((f) => f.type === 'message', 20, 30000);
    assert.deepEqual(got.map((f) => f.text), Array.from({ length: 20 }, (_, j) => `${user}:${j}`));
    assert.deepEqual(got.map((f) => f.seq), Array.from({ length: 20 }, (_, j) => j + 1));
    assert.ok(got.every((f) => f.user === user));
  }));
  await new Promise((r) => setTimeout(r, 200));
  for (const c of clients) assert.equal(c.messages().length, 20, 'no extra replies');
  await Promise.all(clients.map((c) => c.close()));
  const r = await srv.stop();
  assert.equal(r.code, 0, srv.log());
});
