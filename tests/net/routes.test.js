// The route table: each route gets exactly the checks its row states, in the
// seam's order (path, CORS, method, API key, body, parse, user token), and
// paths are matched as h2o 2.2 does, by prefix at a "/" in table order.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startServer, post } = require('./lib');

// A request with any method, headers and body; plain http so that HEAD and
// OPTIONS go out exactly as written.
function request(port, method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function errorsTotal(port, code) {
  const text = (await request(port, 'GET', '/metrics')).text;
  return Number(new RegExp(`^anywhere_errors_total\\{code="${code}"\\} (\\d+)$`, 'm').exec(text)[1]);
}

let srv;
const key = 'route-key';
test.before(async () => {
  srv = await startServer(['--bot', 'echo', '--api-key', key, '--max-message', '1000', '--admin-listen', '127.0.0.1:0']);
});
test.after(async () => { assert.equal((await srv.stop()).code, 0, srv.log()); });

test('a path takes its row and the row\'s subpaths, never a longer name', async () => {
  assert.equal((await request(srv.port, 'GET', '/healthz/x')).status, 200);
  assert.equal((await request(srv.port, 'GET', '/healthz?probe=1')).status, 200);
  assert.equal((await request(srv.port, 'GET', '/healthzx')).status, 404, 'the chat page has no such file');
  assert.equal((await request(srv.port, 'GET', '/api/send/x')).status, 405, '/api/send takes it: POST only');
  assert.equal((await request(srv.port, 'GET', '/api/sendx')).status, 404);
});

test('browser routes answer preflights with their own methods; other routes do not', async () => {
  const origin = `http://127.0.0.1:${srv.port}`;
  for (const [path, methods] of [['/botkit/receive', 'POST, OPTIONS'], ['/api/messages', 'POST, OPTIONS'],
    ['/botkit/history', 'POST, OPTIONS'], ['/api/history', 'GET, OPTIONS']]) {
    const r = await request(srv.port, 'OPTIONS', path, { headers: { origin } });
    assert.equal(r.status, 204, path);
    assert.equal(r.headers['access-control-allow-methods'], methods, path);
    assert.equal(r.headers['access-control-allow-origin'], origin, path);
    const evil = await request(srv.port, 'OPTIONS', path, { headers: { origin: 'http://evil.example' } });
    assert.equal(evil.status, 403, path);
  }
  assert.equal((await request(srv.port, 'OPTIONS', '/api/send', { headers: { origin } })).status, 405);
  // not a browser route: an Origin is neither checked nor answered
  const r = await request(srv.port, 'GET', '/healthz', { headers: { origin: 'http://evil.example' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], undefined);
});

test('each route takes only its methods; the files take HEAD, and a missing file is 404 first', async () => {
  for (const [method, path] of [['GET', '/botkit/receive'], ['HEAD', '/api/messages'], ['PUT', '/botkit/history'],
    ['POST', '/api/history'], ['DELETE', '/api/send'], ['POST', '/'], ['PUT', '/app.js']]) {
    assert.equal((await request(srv.port, method, path)).status, 405, `${method} ${path}`);
  }
  const head = await request(srv.port, 'HEAD', '/');
  assert.equal(head.status, 200);
  assert.equal(head.text, '');
  assert.equal((await request(srv.port, 'POST', '/nope.txt')).status, 404);
  assert.equal((await request(srv.port, 'DELETE', '/healthz')).status, 200, 'the main /healthz takes any method');
});

test('the API key is checked before the body; a refused request is counted', async () => {
  const auth = { authorization: `Bearer ${key}` };
  const unauthorized = await errorsTotal(srv.port, 'unauthorized');
  let r = await post(srv.port, '/api/send', 'x'.repeat(2000), { authorization: 'Bearer wrong' });
  assert.equal(r.status, 401);
  assert.equal(r.json.code, 'unauthorized');
  assert.equal(await errorsTotal(srv.port, 'unauthorized'), unauthorized + 1);
  const tooLarge = await errorsTotal(srv.port, 'too_large');
  r = await post(srv.port, '/api/send', 'x'.repeat(2000), auth);
  assert.equal(r.status, 413);
  assert.equal(r.json.code, 'too_large');
  assert.equal(await errorsTotal(srv.port, 'too_large'), tooLarge + 1);
  r = await post(srv.port, '/api/send', { user: 'nobody-yet', text: 'hi' }, auth);
  assert.equal(r.status, 202);
});

test('history routes refuse in the history shape; the token is checked after the body is read', async () => {
  let r = await post(srv.port, '/botkit/history', 'x'.repeat(2000));
  assert.equal(r.status, 413);
  assert.deepEqual(r.json, { success: false, error: 'the message is over the size limit', code: 'too_large' });
  r = await post(srv.port, '/botkit/history', 'not json');
  assert.equal(r.status, 400);
  assert.equal(r.json.code, 'bad_json');
  r = await post(srv.port, '/botkit/history', { user: 'h1', token: 'wrong' });
  assert.equal(r.status, 401);
  assert.deepEqual(r.json, { success: false, error: 'a valid token for this user is required', code: 'unauthorized' });
  r = await request(srv.port, 'GET', '/api/history?user=h1', { headers: { authorization: 'Bearer wrong' } });
  assert.equal(r.status, 401);
  r = await request(srv.port, 'GET', '/api/history?limit=0');
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.text).success, false);
});

test('webhook routes refuse in the error frame shape', async () => {
  let r = await post(srv.port, '/botkit/receive', 'x'.repeat(2000));
  assert.equal(r.status, 413);
  assert.deepEqual(r.json, { type: 'error', code: 'too_large', message: 'the message is over the size limit' });
  r = await post(srv.port, '/api/messages', { type: 'message' });
  assert.equal(r.status, 400);
  assert.equal(r.json.code, 'bad_message');
});

test('without an API key /api/send does not exist, for any method', async () => {
  const other = await startServer(['--bot', 'echo']);
  for (const method of ['GET', 'POST', 'OPTIONS']) {
    assert.equal((await request(other.port, method, '/api/send')).status, 404, method);
  }
  assert.equal((await other.stop()).code, 0, other.log());
});

test('the admin address serves its two paths exactly, GET only', async () => {
  assert.equal((await request(srv.adminPort, 'GET', '/healthz')).status, 200);
  assert.equal((await request(srv.adminPort, 'GET', '/metrics?x=1')).status, 200);
  assert.equal((await request(srv.adminPort, 'HEAD', '/healthz')).status, 405);
  assert.equal((await request(srv.adminPort, 'POST', '/healthz/x')).status, 404, 'the path before the method');
  assert.equal((await request(srv.adminPort, 'GET', '/api/send')).status, 404);
});
