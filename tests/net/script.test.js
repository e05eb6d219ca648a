// Script bots over both channels, and the start-time check of a wrong script.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startServer, Client, post } = require('./lib');

const EXAMPLES = path.join(__dirname, '..', '..', 'examples');

test('the booking example runs a whole conversation over websocket and over /botkit/receive', async () => {
  const srv = await startServer(['--script', path.join(EXAMPLES, 'booking.json')]);
  const c = await Client.open(srv.port);
  const say = async (text, want) => {
    const before = c.messages().length;
    c.send({ type: 'message', user: 'k1', text });
    const got = await c.waitFor((f) => f.type === 'message', before + 1);
    assert.equal(got[got.length - 1].text, want);
  };
  c.send({ type: 'hello', user: 'k1' });
  await c.waitFor((f) => f.type === 'message');
  await say('book', 'What name should the booking be under?');
  await say('Kim', 'For how many people, Kim?');
  await say('3', 'Lunch or dinner?');
  await say('lunch', 'A table for 3 at lunch, under Kim. Shall I book it?');
  await say('yes', 'Booked! See you soon, Kim.');
  await c.close();
  const hook = async (text) => (await post(srv.port, '/botkit/receive', { type: 'message', user: 'k2', text })).json.text;
  assert.equal(await hook('book'), 'What name should the booking be under?');
  assert.equal(await hook('Lee'), 'For how many people, Lee?');
  assert.equal(await hook('many'), 'Please answer with a number from 1 to 99.');
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a wrong script stops the server at start with exit 2, naming the file and the place', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-script-'));
  const file = path.join(dir, 'bad.json');
  fs.writeFileSync(file, JSON.stringify({ triggers: [{ keyword: 'x', say: { text: 'hi', typing: 'slow' } }] }));
  const r = spawnSync(process.env.ANYWHERE_BIN, ['--script', file, '--port', '0', '--data-dir', dir], { timeout: 10000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr.toString(), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: at triggers\\[0\\]\\.say\\.typing: "typing" must be milliseconds`));
  fs.writeFileSync(file, '{"triggers": [\n  {"exact": "a" "say": "b"}\n]}');
  const r2 = spawnSync(process.env.ANYWHERE_BIN, ['--script', file, '--port', '0', '--data-dir', dir], { timeout: 10000 });
  assert.equal(r2.status, 2);
  assert.match(r2.stderr.toString(), /bad\.json: at line 2, column \d+: not valid JSON/);
  fs.rmSync(dir, { recursive: true, force: true });
});
