'use strict';
// What the cluster tests share: NATS servers, anywhere nodes joined to them,
// and nginx in front, all on free ports of 127.0.0.1, started by the tests
// and stopped by them (or killed once the file is done, see ../net/lib.js).
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const lib = require('../net/lib.js');

const { sleep } = lib;
const SECRET = 'cluster-test-secret-0123456789abcdef';

const children = new Set();
require('node:test').after(() => {
  setTimeout(() => { for (const p of children) p.kill('SIGKILL'); }, 30000).unref();
});

// A port nobody listens on now (the kernel's pick, released at once).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function waitPort(port, ms = 10000) {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tryOnce = () => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(); });
      c.once('error', () => {
        c.destroy();
        if (Date.now() > end) reject(new Error(`nothing listens on ${port}`));
        else setTimeout(tryOnce, 50);
      });
    };
    tryOnce();
  });
}

function track(proc) {
  children.add(proc);
  let log = '';
  proc.stdout?.on('data', (d) => { log += d; });
  proc.stderr?.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
    children.delete(proc);
    resolve({ code, signal });
  }));
  return { log: () => log, exited };
}

// One nats-server of a cluster of `routes` (the cluster ports of the others),
// with `extra` flags.
async function startNatsServer(port, clusterPort, routes, extra = []) {
  const args = ['-a', '127.0.0.1', '-p', String(port), '--cluster', `nats://127.0.0.1:${clusterPort}`,
    '--cluster_name', 'aw-test', ...extra];
  if (routes.length) args.push('--routes', routes.map((p) => `nats://127.0.0.1:${p}`).join(','));
  const proc = spawn('nats-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const t = track(proc);
  await waitPort(port);
  return {
    port, clusterPort, proc, ...t,
    url: `nats://127.0.0.1:${port}`,
    async stop() { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM'); return t.exited; },
    async kill() { proc.kill('SIGKILL'); return t.exited; },
  };
}

// A NATS cluster of `n` servers on loopback ports, each started with
// `extra` flags. restart(i) starts server i again on its ports.
async function startNats(n = 3, extra = []) {
  const ports = [], cports = [];
  for (let i = 0; i < n; i++) { ports.push(await freePort()); cports.push(await freePort()); }
  const servers = [];
  for (let i = 0; i < n; i++) servers.push(await startNatsServer(ports[i], cports[i], cports.filter((_, j) => j !== i), extra));
  const nats = {
    servers,
    urls: ports.map((p) => `nats://127.0.0.1:${p}`).join(','),
    async restart(i) {
      servers[i] = await startNatsServer(ports[i], cports[i], cports.filter((_, j) => j !== i), extra);
      return servers[i];
    },
    async stop() { await Promise.all(servers.map((s) => s.stop())); },
  };
  // routes between the servers take a moment to form
  await sleep(n > 1 ? 500 : 0);
  return nats;
}

// A shared folder with the SQLite file every node of the test uses.
function sharedStore() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-cluster-'));
  return { dir, uri: `sqlite:${path.join(dir, 'history.db')}`, remove() { fs.rmSync(dir, { recursive: true, force: true }); } };
}

// An anywhere node of the cluster. `opts.args` adds flags; `opts.dataDir`
// keeps a node's folder across a restart.
async function startNode(nats, store, id, opts = {}) {
  const args = ['--nats', nats.urls, '--node-id', id, '--secret', SECRET, '--store', store.uri,
    '--session-idle', '60000', ...(opts.args || [])];
  const srv = await lib.startServer(args, { dataDir: opts.dataDir });
  srv.id = id;
  return srv;
}

// Resolves once every node is connected to NATS and its /healthz counts `n`
// members.
async function waitMembers(nodes, n, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const counts = await Promise.all(nodes.map(async (s) => {
      try {
        const { cluster } = await (await fetch(`${s.url}/healthz`)).json();
        return cluster.nats === 'connected' ? cluster.members : -1;
      } catch { return -1; }
    }));
    if (counts.every((c) => c === n)) return;
    if (Date.now() > end) throw new Error(`members: ${JSON.stringify(counts)}, waiting for ${n}`);
    await sleep(100);
  }
}

// A cluster for one test file: `servers` NATS servers, one node of each id
// with `args`, sharing one SQLite file, all members. stop() stops the nodes
// still running (each must exit 0 when `clean`), then NATS, and removes the
// store.
async function startCluster(ids, args, servers = 1, clean = true) {
  const nats = await startNats(servers);
  const store = sharedStore();
  const nodes = [];
  for (const id of ids) nodes.push(await startNode(nats, store, id, { args }));
  await waitMembers(nodes, ids.length);
  return {
    nats, store, nodes,
    async stop() {
      for (const n of nodes) {
        if (n.proc.exitCode !== null || n.proc.signalCode !== null) continue;
        const r = await n.stop();
        if (clean) assert.equal(r.code, 0, n.log());
      }
      await nats.stop();
      store.remove();
    },
  };
}

// 64-bit FNV-1a and MurmurHash3's finaliser, as cluster/cluster.c hashes.
function fnv(buf, h = 0xcbf29ce484222325n) {
  for (const b of buf) { h ^= BigInt(b); h = (h * 0x100000001b3n) & 0xffffffffffffffffn; }
  return h;
}
function mix(x) {
  const M = 0xffffffffffffffffn;
  x ^= x >> 33n; x = (x * 0xff51afd7ed558ccdn) & M;
  x ^= x >> 33n; x = (x * 0xc4ceb9fe1a85ec53n) & M;
  x ^= x >> 33n;
  return x;
}
// Rendezvous hashing as cluster/cluster.c does it: the node with the highest score.
function homeOf(user, ids) {
  const uh = fnv(Buffer.from(user));
  let best = null, score = -1n;
  for (const id of ids) {
    const s = mix(uh ^ mix(fnv(Buffer.from(id))));
    if (s > score) { score = s; best = id; }
  }
  return best;
}

// A user id whose home is `id` among `ids`.
function userHomedOn(id, ids, prefix = 'u') {
  for (let i = 0; ; i++) {
    const u = `${prefix}-${i}`;
    if (homeOf(u, ids) === id) return u;
  }
}

// nginx in front of `ports` as a plain round-robin load balancer (no
// stickiness), websockets proxied; resolves with its port.
async function startNginx(ports) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anywhere-nginx-'));
  const port = await freePort();
  const conf = `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream anywhere { ${ports.map((p) => `server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join(' ')} }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://anywhere;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_read_timeout 3600s;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_connect_timeout 1s;
    }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const proc = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const t = track(proc);
  await waitPort(port);
  return {
    port, proc, ...t,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await t.exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { ...lib, SECRET, freePort, startNats, sharedStore, startNode, waitMembers, startCluster, homeOf, userHomedOn, startNginx };
