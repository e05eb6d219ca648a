// The hand-over of a user whose home moves while a turn is under way. A
// bridge bot takes its time over a message; meanwhile a node joins and
// becomes the user's home. The old home finishes the turn, writes it, and
// closes the socket with 1012; the client comes back and sends the message
// again (it was never acknowledged); the new home waits for the old one to
// let go before it reads the user's history, so it replays the old home's
// answer to the client, finds the message's mid, and acknowledges it as a
// duplicate: the bot is asked once, and its answer is shown once (without
// the wait, it would be numbered below what the new home showed, and never
// shown).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startNats, sharedStore, startNode, waitMembers, homeOf, Client, sleep } = require('./lib');

test('a join while the old home is in the middle of a slow turn: asked once, answered once', async (t) => {
  const asked = [];
  const bot = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', async () => {
      const msg = JSON.parse(body);
      asked.push(msg);
      if (msg.type === 'message' && msg.text === 'slow one') await sleep(4000);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(msg.type === 'message' ? [{ text: `answer to ${msg.text}` }] : [{ text: 'hi' }]));
    });
  });
  await new Promise((r) => bot.listen(0, '127.0.0.1', r));
  const botUrl = `http://127.0.0.1:${bot.address().port}/`;
  const nats = await startNats(1);
  const store = sharedStore();
  const args = { args: ['--bot-url', botUrl] };
  const nodes = [];
  try {
    nodes.push(await startNode(nats, store, 'node-a', args));
    nodes.push(await startNode(nats, store, 'node-b', args));
    await waitMembers(nodes, 2);
    // a user served by node-a now and by node-d once it joins
    let user;
    for (let i = 0; ; i++) {
      user = `mover-${i}`;
      if (homeOf(user, ['node-a', 'node-b']) === 'node-a' && homeOf(user, ['node-a', 'node-b', 'node-d']) === 'node-d') break;
    }
    const c = await Client.open(nodes[1].port);
    c.send({ type: 'hello', user });
    const [session] = await c.waitFor((f) => f.type === 'session');
    await c.waitFor((f) => f.type === 'message' && f.text === 'hi');
    c.send({ type: 'message', user, text: 'slow one', mid: 'slow-1' });
    await sleep(300); // the bot has it
    nodes.push(await startNode(nats, store, 'node-d', args));
    // the old home closes the socket once its turn is over (or at once, when
    // the socket's node sees the move first): either way the client comes
    // back and sends the message again with its mid, as it was never acked
    await c.closed;
    const again = await Client.open(nodes[0].port);
    again.send({ type: 'reconnect', user, token: session.token, last_seq: Math.max(0, ...c.messages().map((f) => f.seq)) });
    // the greeting waits for the old home to finish its turn: one turn at a time per user
    await again.waitFor((f) => f.type === 'session', 1, 15000);
    again.send({ type: 'message', user, text: 'slow one', mid: 'slow-1' });
    await again.waitFor((f) => f.type === 'ack' && f.mid === 'slow-1', 1, 10000);
    again.send({ type: 'message', user, text: 'next', mid: 'next-1' });
    await again.waitFor((f) => f.type === 'message' && f.text === 'answer to next', 1, 10000);
    const answers = [...c.messages(), ...again.messages()].filter((f) => f.text === 'answer to slow one');
    const seqs = new Set(answers.map((f) => f.seq));
    assert.equal(asked.filter((m) => m.text === 'slow one').length, 1, 'the bot is asked once');
    assert.equal(seqs.size, 1, `the answer reaches the client, under one seq: ${[...seqs]}`);
    const next = again.messages().find((f) => f.text === 'answer to next');
    assert.ok([...seqs].every((s) => s < next.seq), 'numbered in order');
    const fences = Number(/^anywhere_cluster_fences_total (\d+)$/m.exec(await (await fetch(`${nodes[2].url}/metrics`)).text())[1]);
    assert.ok(fences >= 1, 'the new home waited for the old one');
    t.diagnostic(`answers to the slow message shown: ${answers.length}; ack of the resend: ${JSON.stringify(again.frames.find((f) => f.type === 'ack' && f.mid === 'slow-1'))}`);
    await again.close();
  } finally {
    for (const n of nodes) assert.equal((await n.stop()).code, 0, n.log());
    await nats.stop();
    store.remove();
    bot.close();
  }
});
