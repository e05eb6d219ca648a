// A person takes a conversation over from the bot, in a real Chromium: the
// user's chat page in one browser context and the operator's console in
// another, against the real server. The user asks for an agent, the
// conversation appears in the console's waiting list, the operator takes it
// over, both write and see each other type, the user's second tab sees the
// operator's messages too, and the operator hands it back to the bot. The
// console is also used with the keyboard alone. Screenshots of the console
// (and of the chat page while a person answers) go to tests/artifacts.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startServer } = require('../net/lib');
const { launch } = require('./lib');

const ARTIFACTS = path.join(__dirname, '..', 'artifacts');
const JOINED = 'You are now talking with a person.';
const ENDED = 'You are back with the bot.';

let srv, browser, dataDir;
test.before(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-handoff-'));
  const ops = path.join(dataDir, 'operators');
  for (const [name, password] of [['ann', 'ann password'], ['bob', 'bob password']]) {
    const r = spawnSync(process.env.ANYWHERE_BIN, ['operator', 'add', name, '--operators', ops],
      { input: password + '\n' });
    assert.equal(r.status, 0, String(r.stderr));
  }
  srv = await startServer(['--bot', 'demo', '--operators', ops], { dataDir });
  browser = await launch();
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});
test.after(async () => {
  await browser.close();
  assert.equal((await srv.stop()).code, 0, srv.log());
  fs.rmSync(dataDir, { recursive: true, force: true });
});

// A page that records its script errors and refused resources (a CSP
// violation shows as a console error).
async function page(context, url) {
  const p = await context.newPage();
  p.errors = [];
  p.on('pageerror', (e) => p.errors.push(e.message));
  p.on('console', (m) => { if (m.type() === 'error' && !/401/.test(m.text())) p.errors.push(m.text()); });
  p.response = await p.goto(url);
  return p;
}

async function waitText(p, selector, text, timeout = 10000) {
  await p.waitForFunction(([s, t]) => Array.from(document.querySelectorAll(s)).some((e) => e.textContent === t),
    [selector, text], { timeout });
}

async function signIn(p, name, password) {
  await p.waitForSelector('#signin:not([hidden])');
  await p.fill('#name', name);
  await p.fill('#password', password);
  await p.press('#password', 'Enter');
  await p.waitForSelector('#app:not([hidden])');
  await waitText(p, '#conn', 'online');
}

test('the user asks for an agent, an operator takes over, both chat and type, then the bot is back', async () => {
  const userContext = await browser.browser.newContext({ viewport: { width: 1000, height: 760 } });
  const chat = await page(userContext, `${srv.url}/`);
  await waitText(chat, '#messages .msg .text', 'Hello! I am the anywhere demo bot. Type help to see what I can do.');
  const tab2 = await page(userContext, `${srv.url}/`);
  await waitText(tab2, '#messages .msg .text', 'Welcome back! Nice to see you again.');
  const user = await chat.evaluate(() => localStorage.getItem('anywhere:user'));

  const opContext = await browser.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const consolePage = await page(opContext, `${srv.url}/console`);
  assert.equal(consolePage.response.status(), 401, 'the console page asks for a sign-in');
  await signIn(consolePage, 'ann', 'ann password');
  await waitText(consolePage, '#waiting .none', 'Nobody waits.');

  await chat.fill('#text', 'I would like to talk to an agent');
  await chat.press('#text', 'Enter');
  await waitText(chat, '#messages .msg .text', 'I will get a person for you. Someone will be with you shortly.');
  // the desk changed before the bot's answer went out: the list has it by now, give or take a frame
  await consolePage.waitForFunction((u) => Array.from(document.querySelectorAll('#waiting .item .user'))
    .some((e) => e.textContent === u), user, { timeout: 1000 });
  assert.match(await consolePage.textContent('#waiting .item .meta'), /waiting \d+ s · asked for a person/);

  await consolePage.click(`#waiting .item`);
  await waitText(consolePage, '#messages .msg .text', 'I would like to talk to an agent');
  assert.match(await consolePage.textContent('#conv-state'), /^Waiting for a person for \d+ s \(asked for a person\)$/);
  assert.equal(await consolePage.isDisabled('#text'), true, 'no answer before taking it over');
  await consolePage.screenshot({ path: path.join(ARTIFACTS, 'console-waiting.png') });
  await consolePage.click('#take');
  await waitText(consolePage, '#conv-state', 'You have this conversation');
  await waitText(chat, '#messages .msg .text', JOINED);
  assert.equal(await chat.textContent('#messages .msg.person .from'), 'ann');

  // the operator types: the user sees someone typing, then the message, in both tabs
  await consolePage.type('#text', 'Hello, I am Ann. How can I help?');
  await chat.waitForSelector('#typing:not([hidden])');
  assert.equal(await chat.textContent('#typing .sr'), 'ann is typing');
  await consolePage.press('#text', 'Enter');
  for (const p of [chat, tab2]) {
    await waitText(p, '#messages .msg.person .text', 'Hello, I am Ann. How can I help?');
  }
  const said = await chat.$$eval('#messages .msg.person', (els) => els.map((e) =>
    `${e.querySelector('.from').textContent}: ${e.querySelector('.text').textContent}`));
  assert.deepEqual(said, [`ann: ${JOINED}`, 'ann: Hello, I am Ann. How can I help?']);

  // the user types: the operator sees it, and the message; the bot says nothing
  await chat.type('#text', 'My order did not arrive');
  await consolePage.waitForSelector('#typing:not([hidden])');
  await chat.press('#text', 'Enter');
  await waitText(consolePage, '#messages .msg.user .text', 'My order did not arrive');
  await consolePage.fill('#text', 'Let me look into it.');
  await consolePage.press('#text', 'Enter');
  await waitText(chat, '#messages .msg .text', 'Let me look into it.');
  const botSaid = await chat.$$eval('#messages .msg.bot:not(.person) .text', (els) => els.map((e) => e.textContent));
  assert.ok(!botSaid.some((t) => /You said: My order/.test(t)), 'the bot did not hear the user meanwhile');
  await consolePage.screenshot({ path: path.join(ARTIFACTS, 'console-desktop.png') });
  await chat.screenshot({ path: path.join(ARTIFACTS, 'chat-handoff.png') });
  await consolePage.setViewportSize({ width: 820, height: 1180 });
  await consolePage.screenshot({ path: path.join(ARTIFACTS, 'console-tablet.png') });
  await consolePage.setViewportSize({ width: 1280, height: 800 });

  // hand back: the bot hears handoff_end and answers the next message again
  await consolePage.click('#release');
  await waitText(consolePage, '#conv-state', 'With the bot');
  await waitText(chat, '#messages .msg .text', ENDED);
  await waitText(chat, '#messages .msg .text', 'I am back. Anything else I can do? Type help to see what I can do.');
  await chat.fill('#text', 'are you there?');
  await chat.press('#text', 'Enter');
  await waitText(chat, '#messages .msg .text', 'You said: are you there?');
  await waitText(tab2, '#messages .msg .text', 'You said: are you there?');
  await waitText(consolePage, '#messages .msg.bot .text', 'You said: are you there?');
  await waitText(consolePage, '#owned .none', 'Nobody is owned.');

  for (const p of [chat, tab2, consolePage]) assert.deepEqual(p.errors, []);
  await userContext.close();
  await opContext.close();
});

test('keyboard only: sign in, open the waiting conversation, take it over, answer, hand it back', async () => {
  const userContext = await browser.browser.newContext();
  const chat = await page(userContext, `${srv.url}/`);
  await waitText(chat, '#messages .msg .text', 'Hello! I am the anywhere demo bot. Type help to see what I can do.');
  await chat.fill('#text', 'a human please');
  await chat.press('#text', 'Enter');
  await waitText(chat, '#messages .msg .text', 'I will get a person for you. Someone will be with you shortly.');

  const opContext = await browser.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await page(opContext, `${srv.url}/console`);
  await p.waitForSelector('#signin:not([hidden])');
  await p.keyboard.type('bob'); // the name field has the focus
  await p.keyboard.press('Tab');
  await p.keyboard.type('bob password');
  await p.keyboard.press('Enter');
  await p.waitForSelector('#app:not([hidden])');
  await p.waitForSelector('#waiting .item');
  // Tab from the top of the app to the waiting conversation
  await p.focus('#search-user');
  await p.keyboard.press('Tab'); // Open
  await p.keyboard.press('Tab'); // the first waiting conversation
  assert.equal(await p.evaluate(() => document.activeElement.classList.contains('item')), true);
  await p.keyboard.press('Enter');
  await p.waitForSelector('#open:not([hidden])');
  await p.keyboard.press('Tab'); // from the conversation to its first control
  assert.equal(await p.evaluate(() => document.activeElement.id), 'take');
  await p.keyboard.press('Enter');
  await waitText(p, '#conv-state', 'You have this conversation');
  assert.equal(await p.evaluate(() => document.activeElement.id), 'text', 'the composer has the focus once taken');
  await p.keyboard.type('Hi, Bob here.');
  await p.keyboard.press('Enter');
  await waitText(chat, '#messages .msg.person .text', 'Hi, Bob here.');
  await p.focus('#release');
  await p.keyboard.press('Enter');
  await waitText(chat, '#messages .msg .text', ENDED);
  for (const x of [chat, p]) assert.deepEqual(x.errors, []);
  await userContext.close();
  await opContext.close();
});
