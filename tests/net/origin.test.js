// Same-origin, as a browser sees it: a server listening on loopback does not
// take a page from a name that merely resolves to 127.0.0.1 (DNS rebinding)
// for its own, while its own loopback names keep working.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startServer } = require('./lib');

// A browser-like request: the Host it used and the page's Origin.
function request(port, host, origin) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ type: 'message', user: 'r1', text: 'hi' });
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path: '/botkit/receive',
      headers: { host, origin, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(body);
  });
}

test('a rebound name is not the origin of a loopback server; loopback names are', async () => {
  const srv = await startServer(['--bot', 'echo']);
  try {
    const p = srv.port;
    assert.equal(await request(p, `evil.example:${p}`, `http://evil.example:${p}`), 403);
    assert.equal(await request(p, `127.0.0.1:${p}`, `http://127.0.0.1:${p}`), 200);
    assert.equal(await request(p, `localhost:${p}`, `http://localhost:${p}`), 200);
    assert.equal(await request(p, `127.0.0.1:${p}`, `http://evil.example:${p}`), 403);
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});
