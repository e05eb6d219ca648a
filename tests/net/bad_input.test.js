// Bad websocket input gets its documented answer, and neither the same
// connection (where it stays open) nor any other client is disturbed.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, Client } = require('./lib');

let srv, bystander;
test.before(async () => {
  srv = await startServer(['--bot', 'echo', '--max-message', '4096']);
  bystander = await Client.open(srv.port);
  bystander.send({ type: 'hello', user: 'bystander' });
});
test.after(async () => {
  // After all the abuse, the bystander still chats.
  bystander.send({ type: 'message', user: 'bystander', text: 'still here?' });
  await bystander.waitFor((f) => f.text === 'still here?');
  await bystander.close();
  const r = await srv.stop();
  assert.equal(r.code, 0, srv.log());
});

async function stillWorks(c, user) {
  const text = 'works ' + Math.random();
  c.send({ type: 'message', user, text });
  await c.waitFor((f) => f.type === 'message' && f.text === text);
}

test('bad_json and bad_message get error frames and the socket keeps working', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'b1' });
  const bad = [
    ['{nope', 'bad_json'], ['"a string"', 'bad_json'], ['{"type":"message","user":"b1"}{}', 'bad_json'],
    ['{"user":"b1"}', 'bad_message'], ['{"type":"message","user":""}', 'bad_message'],
    ['{"type":"message","user":"b1","last_seq":"x"}', 'bad_message'],
  ];
  for (const [frame, code] of bad) {
    const before = c.frames.filter((f) => f.type === 'error').length;
    c.send(frame);
    const errs = await c.waitFor((f) => f.type === 'error', before + 1);
    assert.equal(errs[before].code, code, frame);
    assert.ok(errs[before].message.length > 0);
  }
  await stillWorks(c, 'b1');
  await c.close();
});

test('invalid UTF-8 in a text frame fails the connection with 1007 (RFC 6455 8.1)', async () => {
  const c = await Client.open(srv.port);
  const frame = Buffer.concat([Buffer.from('{"type":"message","user":"b2","text":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
  c.ws.send(frame, { binary: false });
  assert.equal(await c.closed, 1007);
  assert.equal(c.messages().length, 0);
});

test('repeated bad_json offenders are closed with 1007 after their error frames', async () => {
  const c = await Client.open(srv.port);
  for (let i = 0; i < 10; i++) c.send('garbage');
  assert.equal(await c.closed, 1007);
  const errs = c.frames.filter((f) => f.type === 'error');
  assert.equal(errs.length, 5);
  assert.ok(errs.every((f) => f.code === 'bad_json'));
});

test('a frame over the size limit closes the socket with 1009', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'message', user: 'b3', text: 'z'.repeat(5000) });
  assert.equal(await c.closed, 1009);
});

test('a binary frame closes the socket with 1003', async () => {
  const c = await Client.open(srv.port);
  c.ws.send(Buffer.from('{"type":"hello","user":"b4"}'), { binary: true });
  assert.equal(await c.closed, 1003);
});

test('a frame for a second user on one socket is refused; the first user goes on', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'b5' });
  await c.waitFor((f) => f.type === 'session');
  c.send({ type: 'message', user: 'someone-else', text: 'hi' });
  const [err] = await c.waitFor((f) => f.type === 'error');
  assert.equal(err.code, 'unauthorized');
  await stillWorks(c, 'b5');
  assert.ok(!c.frames.some((f) => f.user === 'someone-else'));
  await c.close();
});
