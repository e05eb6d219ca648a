// A bounded soak: hundreds of users connect, chat, drop without warning and
// come back, some with two tabs. At the end every bot message reached its
// user (live or recovered with last_seq), the history holds every message
// once, and the server's memory is back near where it started.
// SOAK_SECONDS sets the length (60 by default; longer by hand).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startServer, Client, sleep } = require('./lib');

const SECONDS = Number(process.env.SOAK_SECONDS || 60);
const USERS = Number(process.env.SOAK_USERS || 200);
// Under a sanitizer the resident size says nothing about our memory: the
// runtime keeps shadow memory for every page ever touched, and ASan holds
// freed blocks in quarantine. ctest turns the check off there (LeakSanitizer
// checks leaks in the ASan run instead).
const RSS_CHECK = process.env.SOAK_RSS_CHECK !== '0';

function rssKb(pid) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

async function pages(port, user, token) {
  const all = [];
  let query = '&limit=100';
  for (;;) {
    const r = await fetch(`http://127.0.0.1:${port}/api/history?user=${user}${query}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const j = await r.json();
    all.unshift(...j.history);
    if (!j.more) return all;
    query = `&limit=100&before=${j.before}`;
  }
}

// One user's life: sessions of a few messages, ended by a clean close or a
// dropped socket, sometimes with a second tab.
async function live(port, user, until, state) {
  const seen = state.seen;
  const open = async () => {
    const c = await Client.open(port);
    c.send(state.token ? { type: 'reconnect', user, token: state.token, last_seq: state.last }
      : { type: 'hello', user });
    const [s] = await c.waitFor((f) => f.type === 'session', 1, 15000);
    if (s.token) state.token = s.token;
    const drain = () => {
      for (const f of c.frames.splice(0)) {
        if (f.type === 'message') { seen.add(f.seq); state.last = Math.max(state.last, f.seq); }
      }
    };
    drain();
    c.ws.on('message', drain);
    return c;
  };
  while (Date.now() < until) {
    const tabs = [await open()];
    if (Math.random() < 0.2) tabs.push(await open());
    const n = 1 + Math.floor(Math.random() * 5);
    for (let i = 0; i < n; i++) {
      const tab = tabs[Math.floor(Math.random() * tabs.length)];
      tab.send({ type: 'message', user, text: `${user}:${state.sent++}` });
      await sleep(20 + Math.random() * 80);
    }
    await sleep(Math.random() * 200);
    for (const t of tabs) {
      if (Math.random() < 0.5) t.ws.terminate(); // dropped, no close handshake
      else await t.close();
    }
    await sleep(Math.random() * 300);
  }
  // come back once more and collect whatever was missed
  const last = await open();
  await sleep(500);
  await last.close();
}

test(`soak: ${USERS} users for ${SECONDS}s, connecting, chatting, dropping and returning`, { timeout: (SECONDS + 240) * 1000 }, async () => {
  const srv = await startServer(['--bot', 'echo', '--rate', '0', '--session-idle', '1000']);
  const warm = await Client.open(srv.port);
  warm.send({ type: 'hello', user: 'warmup' });
  await warm.waitFor((f) => f.type === 'session');
  await warm.close();
  await sleep(200);
  const rssStart = rssKb(srv.proc.pid);
  const until = Date.now() + SECONDS * 1000;
  const states = Array.from({ length: USERS }, () => ({ token: null, last: 0, sent: 0, seen: new Set() }));
  await Promise.all(states.map((st, i) => live(srv.port, `soak${i}`, until, st)));
  let total = 0;
  for (let i = 0; i < USERS; i++) {
    const st = states[i];
    const hist = await pages(srv.port, `soak${i}`, st.token);
    const bots = hist.filter((e) => e.type === 'message').map((e) => e.seq);
    const person = hist.filter((e) => e.type === 'message_received').map((e) => e.text);
    assert.deepEqual(bots, Array.from({ length: bots.length }, (_, k) => k + 1), `soak${i}: every seq once, in order`);
    assert.equal(new Set(person).size, person.length, `soak${i}: no message stored twice`);
    for (let k = 1; k <= bots.length; k++) assert.ok(st.seen.has(k), `soak${i}: bot message ${k} never reached the user`);
    assert.equal(bots.length, person.length, `soak${i}: one reply per stored message`);
    total += bots.length;
  }
  assert.ok(total > USERS * 3, `${total} messages in all`);
  // idle sessions are freed: memory comes back near where it started
  await sleep(3000);
  const health = await (await fetch(`${srv.url}/healthz`)).json();
  assert.equal(health.websockets, 0);
  assert.equal(health.sessions, 0, 'every idle session was freed');
  const rssEnd = rssKb(srv.proc.pid);
  if (RSS_CHECK) assert.ok(rssEnd - rssStart < 48 * 1024, `resident memory ${rssStart} kB at the start, ${rssEnd} kB at the end`);
  assert.equal((await srv.stop()).code, 0, srv.log());
});
