// The bundled chat page and the operator console in Chromium, through nginx
// (round robin, no stickiness) in front of three nodes. The user's home node
// is killed with SIGKILL while the page is open, and the conversation goes
// on, with nothing shown twice and nothing lost. An operator signs in to the
// console through nginx (every request may reach another node), takes over a
// user homed on any node, and goes on serving them when their home is
// killed. Screenshots are kept with the other test artifacts.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startNats, sharedStore, startNode, waitMembers, startCluster, startNginx, homeOf, killServer } = require('./lib');
const { launch, transcript } = require('../browser/lib');
const { dataDir, PASSWORDS } = require('../net/operators');

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

async function waitIn(page, selector, text, timeout = 20000) {
  await page.waitForFunction(([sel, t]) => Array.from(document.querySelectorAll(sel)).some((e) => e.textContent === t),
    [selector, text], { timeout });
}

test('the console through nginx: an operator serves a user homed anywhere, through the home killed', async (t) => {
  const ops = dataDir();
  const cluster = await startCluster(ids, ['--bot', 'demo', '--operators', path.join(ops, 'ops')]);
  const lb = await startNginx(cluster.nodes.map((n) => n.port));
  const browser = await launch();
  try {
    const errors = [];
    const watch = (p) => {
      p.on('pageerror', (e) => errors.push(e.message));
      p.on('console', (m) => { if (m.type() === 'error' && !/401|WebSocket/.test(m.text())) errors.push(m.text()); });
      return p;
    };
    const userContext = await browser.browser.newContext({ viewport: { width: 1000, height: 760 } });
    const chat = watch(await userContext.newPage());
    const sent = [];
    chat.on('websocket', (ws) => ws.on('framesent', (f) => { try { sent.push(JSON.parse(f.payload)); } catch (e) { /* not ours */ } }));
    await chat.goto(`${lb.url}/`);
    await waitText(chat, GREETING);
    const user = sent.find((f) => f.type === 'hello').user;
    await send(chat, 'I would like to talk to an agent');
    await waitIn(chat, '#messages .msg .text', 'I will get a person for you. Someone will be with you shortly.');

    // signed in through nginx: the page, its files, the sign-in and the socket reach any node
    const opContext = await browser.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const consolePage = watch(await opContext.newPage());
    await consolePage.goto(`${lb.url}/console`);
    await consolePage.waitForSelector('#signin:not([hidden])');
    await consolePage.fill('#name', 'ann');
    await consolePage.fill('#password', PASSWORDS.ann);
    await consolePage.press('#password', 'Enter');
    await consolePage.waitForSelector('#app:not([hidden])');
    await waitIn(consolePage, '#conn', 'online');
    for (let i = 0; i < 6; i++) { // a reload reaches each node in turn: each knows the sign-in
      await consolePage.reload();
      await consolePage.waitForSelector('#app:not([hidden])');
    }
    await waitIn(consolePage, '#conn', 'online');
    await consolePage.waitForFunction((u) => Array.from(document.querySelectorAll('#waiting .item .user'))
      .some((e) => e.textContent === u), user, { timeout: 20000 });
    await consolePage.click('#waiting .item');
    await waitIn(consolePage, '#messages .msg .text', 'I would like to talk to an agent');
    await consolePage.click('#take');
    await waitIn(consolePage, '#conv-state', 'You have this conversation');
    await waitIn(chat, '#messages .msg .text', 'You are now talking with a person.');
    await consolePage.fill('#text', 'Ann here, from any node.');
    await consolePage.press('#text', 'Enter');
    await waitIn(chat, '#messages .msg.person .text', 'Ann here, from any node.');
    await send(chat, 'thanks, before the kill');
    await waitIn(consolePage, '#messages .msg.user .text', 'thanks, before the kill');

    // the user's home killed: the console opens the conversation at the new home and goes on
    const home = cluster.nodes.find((n) => n.id === homeOf(user, ids));
    await killServer(home);
    t.diagnostic(`user ${user}: home ${home.id} killed`);
    await send(chat, 'still there after the kill?');
    await waitIn(consolePage, '#messages .msg.user .text', 'still there after the kill?', 40000);
    await waitIn(consolePage, '#conv-state', 'You have this conversation', 20000);
    await consolePage.fill('#text', 'Still here.');
    await consolePage.press('#text', 'Enter');
    await waitIn(chat, '#messages .msg.person .text', 'Still here.', 30000);
    await consolePage.screenshot({ path: path.join(__dirname, '..', 'artifacts', 'cluster-console.png') });

    await consolePage.click('#release');
    await waitIn(consolePage, '#conv-state', 'With the bot');
    await waitIn(chat, '#messages .msg .text', 'You are back with the bot.');
    await send(chat, 'and the bot?');
    await waitText(chat, 'You said: and the bot?');
    const lines = await transcript(chat);
    for (const line of ['me: still there after the kill?', 'me: and the bot?']) {
      assert.equal(lines.filter((x) => x === line).length, 1, `${line} once in ${JSON.stringify(lines)}`);
    }
    assert.deepEqual(errors, []);
    await userContext.close();
    await opContext.close();
  } finally {
    await browser.close();
    await lb.stop();
    await cluster.stop();
    fs.rmSync(ops, { recursive: true, force: true });
  }
});
