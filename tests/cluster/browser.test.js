// The bundled chat page in Chromium, through nginx (round robin, no
// stickiness) in front of three nodes: the user's home node is killed with
// SIGKILL while the page is open, and the conversation goes on, with nothing
// shown twice and nothing lost. A screenshot is kept with the other test
// artifacts.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { startNats, sharedStore, startNode, waitMembers, startNginx, homeOf, killServer } = require('./lib');
const { launch, transcript } = require('../browser/lib');

const GREETING = 'Hello! I am the anywhere demo bot. Type help to see what I can do.';
const ids = ['node-a', 'node-b', 'node-c'];

async function waitText(page, text, timeout = 20000) {
  await page.waitForFunction((t) => Array.from(document.querySelectorAll('#messages .msg .text'))
    .some((e) => e.textContent === t), text, { timeout });
}

async function send(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

test('the page through nginx: the user\'s home killed, the chat goes on, nothing shown twice', async (t) => {
  const nats = await startNats(3);
  const store = sharedStore();
  const nodes = [];
  for (const id of ids) nodes.push(await startNode(nats, store, id, { args: ['--bot', 'demo'] }));
  await waitMembers(nodes, 3);
  const lb = await startNginx(nodes.map((n) => n.port));
  const browser = await launch();
  try {
    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const sent = [];
    page.on('websocket', (ws) => ws.on('framesent', (f) => { try { sent.push(JSON.parse(f.payload)); } catch (e) { /* not ours */ } }));
    await page.goto(`${lb.url}/`);
    await waitText(page, GREETING);
    await page.waitForSelector('body[data-status="online"]');
    await send(page, 'before the kill');
    await waitText(page, 'You said: before the kill');

    const user = sent.find((f) => f.type === 'hello').user;
    const home = nodes.find((n) => n.id === homeOf(user, ids));
    await killServer(home);
    t.diagnostic(`user ${user}: home ${home.id} killed`);
    await send(page, 'typed after the kill');
    await waitText(page, 'You said: typed after the kill', 30000);
    await page.waitForSelector('body[data-status="online"]', { timeout: 30000 });
    await send(page, 'and once more');
    await waitText(page, 'You said: and once more');

    const lines = await transcript(page);
    for (const line of [`bot: ${GREETING}`, 'me: before the kill', 'bot: You said: before the kill',
      'me: typed after the kill', 'bot: You said: typed after the kill', 'me: and once more', 'bot: You said: and once more']) {
      assert.equal(lines.filter((x) => x === line).length, 1, `${line} once in ${JSON.stringify(lines)}`);
    }
    // the bot greets each reconnect (one per socket the kill closed); nothing else repeats
    const rest = lines.filter((x) => !/^bot: You are back online/.test(x));
    assert.equal(new Set(rest).size, rest.length, `nothing twice: ${JSON.stringify(lines)}`);
    const mids = sent.filter((f) => f.type === 'message' && f.text === 'typed after the kill').map((f) => f.mid);
    assert.ok(mids.length >= 1 && new Set(mids).size === 1, 'sent again with the same mid, if at all');
    await page.screenshot({ path: path.join(__dirname, '..', 'artifacts', 'cluster-chat.png') });
    await context.close();
  } finally {
    await browser.close();
    await lb.stop();
    for (const n of nodes) if (n !== undefined) n.proc.kill('SIGKILL');
    await nats.stop();
    store.remove();
  }
});
