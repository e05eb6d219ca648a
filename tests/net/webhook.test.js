// The webhook channel: /botkit/receive answers one message object (Botkit's
// legacy client), /api/messages an array (Botkit 4's client), and bad bodies
// get their documented errors without disturbing anything.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, Client, post } = require('./lib');

let srv;
test.before(async () => { srv = await startServer(['--bot', 'demo', '--max-message', '2048']); });
test.after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, srv.log()); });

test('/botkit/receive answers one message object, for hello and for message', async () => {
  let r = await post(srv.port, '/botkit/receive', { type: 'hello', user: 'w1', channel: 'webhook' });
  assert.equal(r.status, 200);
  assert.equal(r.json.type, 'message');
  assert.match(r.json.text, /^Hello!/);
  assert.equal(r.json.user, 'w1');
  assert.equal(r.json.seq, 1);
  r = await post(srv.port, '/botkit/receive', { type: 'message', text: 'hi', user: 'w1', channel: 'webhook' });
  assert.equal(r.status, 200);
  assert.ok(!Array.isArray(r.json));
  assert.equal(r.json.text, 'You said: hi');
  assert.equal(r.json.seq, 2);
});

test('/botkit/receive answers the first reply of a multi-message turn; {} for none', async () => {
  let r = await post(srv.port, '/botkit/receive', { type: 'message', text: 'sequence', user: 'w2' });
  assert.equal(r.json.text, 'This is the first of three messages.');
  r = await post(srv.port, '/botkit/receive', { type: 'custom_event', user: 'w2' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, {});
});

test('/api/messages answers an array of every reply of the turn', async () => {
  let r = await post(srv.port, '/api/messages', { type: 'message', text: 'sequence', user: 'w3', channel: 'webhook' });
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(r.json));
  assert.deepEqual(r.json.map((m) => m.seq), [1, 2, 3]);
  assert.equal(r.json[2].files[0].image, true);
  r = await post(srv.port, '/api/messages', { type: 'hello', user: 'w4' });
  assert.equal(r.json.length, 1);
  assert.match(r.json[0].text, /^Hello!/);
  r = await post(srv.port, '/api/messages', { type: 'custom_event', user: 'w4' });
  assert.deepEqual(r.json, []);
});

test('webhook replies of a user also reach that user\'s verified sockets', async () => {
  const c = await Client.open(srv.port);
  c.send({ type: 'hello', user: 'w5' });
  await c.waitFor((f) => f.type === 'message');
  await post(srv.port, '/api/messages', { type: 'message', text: 'over http', user: 'w5' });
  await c.waitFor((f) => f.text === 'You said: over http');
  await c.close();
});

test('a new user greeting over a webhook gets its identity token in a header, once', async () => {
  const greet = (route) => fetch(`${srv.url}${route}`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'hello', user: 'wtok', channel: 'webhook' }),
  });
  let res = await greet('/api/messages');
  assert.equal(res.status, 200);
  const token = res.headers.get('x-anywhere-token');
  assert.match(token, /^[0-9a-f]{64}$/);
  assert.ok(Array.isArray(await res.json()), 'the body keeps the shape Botkit expects');
  // The token opens this user's history, and is not handed out a second time.
  const h = await post(srv.port, '/botkit/history', { user: 'wtok', token });
  assert.equal(h.status, 200);
  assert.equal(h.json.history[0].seq, 1);
  res = await greet('/botkit/receive');
  assert.equal(res.headers.get('x-anywhere-token'), null);
  assert.equal((await res.json()).type, 'message');
});

test('bad bodies get 400 / 413 with an error code, and change nothing', async () => {
  const cases = [
    ['not json', 400, 'bad_json'],
    ['[1,2]', 400, 'bad_json'],
    ['{"type":"message","user":"x"', 400, 'bad_json'],
    [Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), 400, 'bad_json'],
    ['[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]', 400, 'bad_json'],
    ['{"type":"message"}', 400, 'bad_message'],
    ['{"user":"x","text":"hi"}', 400, 'bad_message'],
    ['{"type":"","user":"x"}', 400, 'bad_message'],
    ['{"type":"message","user":7}', 400, 'bad_message'],
    ['{"type":"message","user":"x","text":{"a":1}}', 400, 'bad_message'],
    [JSON.stringify({ type: 'message', user: 'u'.repeat(257) }), 400, 'bad_message'],
    [JSON.stringify({ type: 'message', user: 'x', text: 'y'.repeat(3000) }), 413, 'too_large'],
  ];
  for (const [body, status, code] of cases) {
    for (const route of ['/botkit/receive', '/api/messages']) {
      const r = await post(srv.port, route, body);
      assert.equal(r.status, status, `${route} ${String(body).slice(0, 40)}: ${r.text}`);
      assert.equal(r.json.code, code, `${route} ${String(body).slice(0, 40)}`);
    }
  }
  // Nothing was created for the refused users: user x has never been greeted.
  const r = await post(srv.port, '/api/messages', { type: 'hello', user: 'x' });
  assert.equal(r.json[0].seq, 1);
  const h = await fetch(`${srv.url}/healthz`);
  assert.equal((await h.json()).status, 'ok');
});

test('GET on a webhook route is refused; the chat page and its files are served', async () => {
  let r = await fetch(`${srv.url}/botkit/receive`);
  assert.equal(r.status, 405);
  r = await fetch(`${srv.url}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/html/);
  assert.match(await r.text(), /<script src="\/app.js">/);
  r = await fetch(`${srv.url}/app.js`);
  assert.match(r.headers.get('content-type'), /javascript/);
  r = await fetch(`${srv.url}/nope.txt`);
  assert.equal(r.status, 404);
});
