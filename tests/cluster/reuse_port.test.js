// Several nodes of one machine on one port: with --nats, --reuse-port lets
// them share it and the kernel spreads the connections; without a cluster, a
// second server on a port in use still refuses to start, and --reuse-port
// alone is refused, as is a cluster without a shared secret.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const { startNats, sharedStore, startNode, waitMembers, freePort, Client, startServer, sleep } = require('./lib');

// A free port below the kernel's ephemeral range: no process of the machine
// is handed it by a bind to port 0 or an outgoing connection while the test
// runs (a port from freePort can be, between its check and the nodes' bind,
// and then joins the port's group of listeners and takes a share of the
// connections).
async function portOutsideEphemeralRange() {
  const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  for (let i = 0; i < 50; i++) {
    const port = 10000 + Math.floor(Math.random() * (low - 10000));
    const free = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  return freePort();
}

test('two nodes share a port; a server outside the cluster still cannot take it', async () => {
  const nats = await startNats(1);
  const store = sharedStore();
  const port = await portOutsideEphemeralRange();
  const args = { args: ['--port', String(port), '--reuse-port'] };
  const a = await startNode(nats, store, 'node-a', args);
  const b = await startNode(nats, store, 'node-b', args);
  try {
    assert.equal(a.port, port);
    assert.equal(b.port, port);
    await waitMembers([a, b], 2);
    const clients = [];
    for (let i = 0; i < 24; i++) clients.push(await Client.open(port));
    const open = async (n) => (await (await fetch(`${n.url}/healthz`)).json()).websockets;
    // each node counts a websocket once its loop has taken it: wait for all
    let na, nb;
    for (const end = Date.now() + 10000; ; await sleep(50)) {
      [na, nb] = [await open(a), await open(b)];
      if (na + nb === 24 || Date.now() > end) break;
    }
    assert.ok(na > 0 && nb > 0, `the kernel spread them: ${na} and ${nb}, of 24`);
    await Promise.all(clients.map((c) => c.close()));

    await assert.rejects(startServer(['--port', String(port)]), /exited 1[\s\S]*cannot listen/);
    const alone = spawnSync(process.env.ANYWHERE_BIN, ['--port', String(port), '--reuse-port'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(alone.status, 2);
    assert.match(alone.stderr, /--reuse-port.*need --nats/);
    // every node must issue the same tokens: a cluster without a shared secret is refused
    const env = { ...process.env };
    delete env.ANYWHERE_SECRET;
    const nosecret = spawnSync(process.env.ANYWHERE_BIN, ['--port', '0', '--nats', nats.urls], { encoding: 'utf8', timeout: 10000, env });
    assert.equal(nosecret.status, 2);
    assert.match(nosecret.stderr, /same identity secret/);
  } finally {
    assert.equal((await a.stop()).code, 0, a.log());
    assert.equal((await b.stop()).code, 0, b.log());
    await nats.stop();
    store.remove();
  }
});
