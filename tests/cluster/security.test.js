// The cluster's traffic is not a back door. NATS's own password keeps out a
// node that does not know it; and on the cluster's subjects, a message that
// is not signed with the cluster's key, or is signed but comes from a node
// that is not a member, or speaks for a socket its sender does not hold, is
// dropped and counted, and changes nothing. The forged messages are sent by a
// raw NATS client written here, on the wire protocol.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const { spawn } = require('node:child_process');
const { freePort, sharedStore, startNode, waitMembers, userHomedOn, Client, sleep, SECRET, metric } = require('./lib');

const USER = 'aw', PASS = 'cluster-pass-0123';
let natsProc, natsPort, store, nodes;
const ids = ['node-a', 'node-b', 'node-c'];

// A NATS client on the text protocol: enough to publish and subscribe.
class RawNats {
  static async connect(port, creds = {}) {
    const r = new RawNats();
    r.sock = net.connect(port, '127.0.0.1');
    r.buf = Buffer.alloc(0);
    r.msgs = [];
    r.sock.on('data', (d) => { r.buf = Buffer.concat([r.buf, d]); r.parse(); });
    await new Promise((resolve, reject) => { r.sock.once('connect', resolve); r.sock.once('error', reject); });
    r.sock.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...creds })}\r\nPING\r\n`);
    for (const end = Date.now() + 5000; !r.ponged; await sleep(10)) assert.ok(Date.now() < end, 'no PONG from NATS');
    return r;
  }
  parse() {
    for (;;) {
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.buf.subarray(0, eol).toString();
      if (line.startsWith('MSG ')) {
        const parts = line.split(' ');
        const n = Number(parts[parts.length - 1]);
        if (this.buf.length < eol + 2 + n + 2) return;
        this.msgs.push({ subject: parts[1], data: this.buf.subarray(eol + 2, eol + 2 + n) });
        this.buf = this.buf.subarray(eol + 2 + n + 2);
        continue;
      }
      if (line === 'PING') this.sock.write('PONG\r\n');
      if (line === 'PONG') this.ponged = true;
      this.buf = this.buf.subarray(eol + 2);
    }
  }
  sub(subject) { this.sock.write(`SUB ${subject} 1\r\n`); }
  pub(subject, data) {
    this.sock.write(`PUB ${subject} ${data.length}\r\n`);
    this.sock.write(data);
    this.sock.write('\r\n');
  }
  close() { this.sock.destroy(); }
}

// A message signed as cluster/wire.h says, with the cluster's key.
function signed(subject, line, user = '', body = '', secret = SECRET) {
  const key = crypto.createHmac('sha256', secret).update('anywhere cluster anywhere').digest();
  const subkey = crypto.createHmac('sha256', key).update(subject).digest();
  const rest = Buffer.concat([Buffer.from(`${line} ${Buffer.byteLength(user)}\n`), Buffer.from(user), Buffer.from(body)]);
  return Buffer.concat([crypto.createHmac('sha256', subkey).update(rest).digest(), rest]);
}

const dropped = async (node, reason) => {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  return Number(new RegExp(`^anywhere_cluster_dropped_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)[1]);
};

test.before(async () => {
  natsPort = await freePort();
  natsProc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '--user', USER, '--pass', PASS], { stdio: 'ignore' });
  for (const end = Date.now() + 5000; ; await sleep(50)) {
    try { (await RawNats.connect(natsPort, { user: USER, pass: PASS })).close(); break; } catch (e) { assert.ok(Date.now() < end, String(e)); }
  }
  store = sharedStore();
  const nats = { urls: `nats://${USER}:${PASS}@127.0.0.1:${natsPort}` };
  nodes = [];
  for (const id of ids) nodes.push(await startNode(nats, store, id));
  await waitMembers(nodes, 3);
});

test.after(async () => {
  for (const n of nodes) {
    const r = await n.stop();
    assert.equal(r.code, 0, n.log());
  }
  natsProc.kill('SIGTERM');
  store.remove();
});

test('a node with the wrong NATS password stays out, and its /healthz says so; the URL\'s password is never shown', async () => {
  const bad = await startNode({ urls: `nats://${USER}:wrong@127.0.0.1:${natsPort}` }, store, 'node-x');
  await sleep(1500);
  const res = await fetch(`${bad.url}/healthz`);
  assert.equal(res.status, 503);
  const body = await res.json();
  assert.equal(body.cluster.nats, 'disconnected');
  for (const n of nodes) assert.equal((await (await fetch(`${n.url}/healthz`)).json()).cluster.members, 3);
  const health = await (await fetch(`${nodes[0].url}/healthz`)).text();
  assert.equal((await bad.stop()).code, 0, bad.log());
  assert.doesNotMatch(health + nodes[0].log() + bad.log(), new RegExp(PASS));
});

test('forged and stranger messages are dropped and counted, and change nothing', async () => {
  const raw = await RawNats.connect(natsPort, { user: USER, pass: PASS });
  const victim = userHomedOn('node-a', ids, 'victim');
  const subject = 'anywhere.node.node-a';
  const before = { bad: await dropped(nodes[0], 'bad'), stranger: await dropped(nodes[0], 'stranger'),
    badB: await dropped(nodes[1], 'bad') };
  const sessions = (await (await fetch(`${nodes[0].url}/healthz`)).json()).sessions;
  const hello = JSON.stringify({ type: 'hello', user: victim });

  raw.pub(subject, Buffer.from('not a cluster message at all'));
  raw.pub(subject, signed(subject, 'in node-b 1 7 0 0', victim, hello, 'another secret')); // wrong key
  raw.pub('anywhere.node.node-b', signed(subject, 'in node-b 1 7 0 0', victim, hello)); // replayed to node-b
  raw.pub(subject, signed(subject, 'in intruder 1 7 0 0', victim, hello)); // a node that is not a member
  raw.pub(subject, signed(subject, 'hb node-b 1 1 0 0')); // an incarnation of node-b that is not the live one
  for (const end = Date.now() + 5000; ;) {
    const now = { bad: await dropped(nodes[0], 'bad'), stranger: await dropped(nodes[0], 'stranger'),
      badB: await dropped(nodes[1], 'bad') };
    if (now.bad >= before.bad + 2 && now.stranger >= before.stranger + 2 && now.badB >= before.badB + 1) break;
    assert.ok(Date.now() < end, `dropped: ${JSON.stringify(now)}, before ${JSON.stringify(before)}`);
    await sleep(50);
  }
  assert.equal((await (await fetch(`${nodes[0].url}/healthz`)).json()).sessions, sessions, 'no session was made');

  // A member's signature does not let it speak for a socket it does not
  // hold: frames for node-a's sockets from node-b, whose user lives on
  // node-c, are dropped.
  raw.sub('anywhere.members');
  for (const end = Date.now() + 5000; !raw.msgs.some((m) => / node-b /.test(m.data.subarray(32, 80).toString())); await sleep(50)) {
    assert.ok(Date.now() < end, 'no heartbeat of node-b');
  }
  const hb = raw.msgs.find((m) => / node-b /.test(m.data.subarray(32, 80).toString())).data.subarray(32).toString();
  const inc = hb.split(' ')[2];
  const away = userHomedOn('node-c', ids, 'away');
  const c = await Client.open(nodes[0].port);
  c.send({ type: 'hello', user: away });
  await c.waitFor((f) => f.type === 'session');
  const strangers = await dropped(nodes[0], 'stranger'), late = await dropped(nodes[0], 'late');
  const forged = JSON.stringify({ type: 'message', text: 'forged', user: away, seq: 999 });
  for (let id = 1; id <= 50; id++) raw.pub(subject, signed(subject, `fr node-b ${inc} ${id} 0 0`, '', forged));
  // every one is dropped: the socket attached to node-c as a stranger's,
  // the ids of no socket as late
  for (const end = Date.now() + 5000; ; await sleep(50)) {
    const s2 = await dropped(nodes[0], 'stranger'), l2 = await dropped(nodes[0], 'late');
    if (s2 - strangers + l2 - late >= 50 && s2 > strangers) break;
    assert.ok(Date.now() < end, `the forged frames were not all counted: ${s2 - strangers} strangers, ${l2 - late} late`);
  }
  c.send({ type: 'message', user: away, text: 'real', mid: 'r1' });
  await c.waitFor((f) => f.type === 'message' && /real/.test(f.text));
  assert.ok(!c.frames.some((f) => f.text === 'forged'), 'no forged frame reached the socket');
  await c.close();
  raw.close();
});
