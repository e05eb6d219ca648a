// deploy/ as shipped: nginx accepts the site file as it is, systemd finds
// nothing wrong in the units, and deploy/three-nodes/run.sh brings up three
// NATS servers, three nodes and nginx that chat as one server through the
// balancer, round robin, and stops every process it started on SIGINT.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { freePort, sleep } = require('./lib');

const DEPLOY = path.resolve(__dirname, '../../deploy');
const BIN = process.env.ANYWHERE_BIN;

function tmpdir(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `anywhere-${name}-`));
}

test('nginx accepts deploy/nginx/anywhere.conf as it is', () => {
  const dir = tmpdir('nginx-t');
  try {
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, `pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events {}
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${path.join(DEPLOY, 'nginx/anywhere.conf')};
}
`);
    const r = spawnSync('nginx', ['-t', '-q', '-e', `${dir}/error.log`, '-p', dir, '-c', conf], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('systemd-analyze verify finds nothing wrong in the units', (t) => {
  if (spawnSync('systemd-analyze', ['--version']).status !== 0) {
    t.skip('systemd-analyze is not installed');
    return;
  }
  const dir = tmpdir('units');
  try {
    // the binary where the units expect it is not installed here
    for (const [from, to] of [['anywhere.service', 'anywhere.service'], ['anywhere@.service', 'anywhere@1.service']]) {
      const unit = fs.readFileSync(path.join(DEPLOY, from), 'utf8').replaceAll('/usr/local/bin/anywhere', BIN);
      fs.writeFileSync(path.join(dir, to), unit);
      const r = spawnSync('systemd-analyze', ['verify', path.join(dir, to)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${from}: ${r.stderr}`);
      assert.equal(r.stderr.trim(), '', `${from}: ${r.stderr}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// Every process under `pid` now, with its start time (a pid may be reused).
function descendants(pid) {
  const procs = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.push({ pid: Number(d), ppid: Number(f[1]), start: f[19], comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch { /* gone meanwhile */ }
  }
  const out = [];
  for (let parents = new Set([pid]); parents.size;) {
    const kids = procs.filter((p) => parents.has(p.ppid));
    out.push(...kids);
    parents = new Set(kids.map((p) => p.pid));
  }
  return out;
}

function stillThere(p) {
  try {
    const stat = fs.readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] === p.start;
  } catch {
    return false;
  }
}

// A websocket through the balancer as the chat page opens it, with the
// page's Origin; resolves once open, or with the refusal's status.
function openSocket(port, origin) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { origin });
    const frames = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    ws.once('open', () => resolve({ ws, frames }));
    ws.once('unexpected-response', (req, res) => resolve({ status: res.statusCode }));
    ws.once('error', reject);
  });
}

// Resolves with `value` after `ms`, without holding the process up.
function later(ms, value) {
  return new Promise((resolve) => setTimeout(resolve, ms, value).unref());
}

async function until(what, pred, ms = 5000) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (pred()) return;
  assert.fail(`timed out waiting for ${what}`);
}

test('three-nodes/run.sh: one server through nginx, and nothing left once stopped', async (t) => {
  const ports = [];
  for (let i = 0; i < 10; i++) ports.push(await freePort());
  const env = {
    ...process.env,
    ANYWHERE_BIN: BIN,
    LB_PORT: String(ports[0]),
    NODE_PORTS: ports.slice(1, 4).join(' '),
    NATS_PORTS: ports.slice(4, 7).join(' '),
    NATS_ROUTE_PORTS: ports.slice(7, 10).join(' '),
    ANYWHERE_OPTS: '--io-threads 1 --workers 1',
  };
  const run = spawn('bash', [path.join(DEPLOY, 'three-nodes/run.sh')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  run.stdout.on('data', (d) => { out += d; });
  run.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => run.on('exit', (code, signal) => resolve({ code, signal })));
  let started = [];
  t.after(async () => {
    // a failure half way: stop what is left
    if (run.exitCode === null && run.signalCode === null) run.kill('SIGTERM');
    await Promise.race([exited, later(45000)]);
    for (const p of started) if (stillThere(p)) process.kill(p.pid, 'SIGKILL');
  });

  await Promise.race([
    until('run.sh to be ready', () => /Ctrl-C stops everything/.test(out), 90000),
    exited.then((r) => assert.fail(`run.sh exited ${JSON.stringify(r)}:\n${out}`)),
  ]);
  const lb = `http://127.0.0.1:${ports[0]}`;
  assert.match(out, new RegExp(`at ${lb}/`));
  const folder = /files +(\S+)/.exec(out)[1];
  assert.ok(fs.existsSync(folder));
  started = descendants(run.pid);
  const names = started.map((p) => p.comm).sort();
  assert.equal(names.filter((n) => n === 'anywhere').length, 3, names.join(' '));
  assert.equal(names.filter((n) => n === 'nats-server').length, 3, names.join(' '));
  assert.ok(names.filter((n) => n === 'nginx').length >= 2, names.join(' '));

  // round robin: three answers in a row come from the three nodes, each
  // counting three members
  const seen = new Set();
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${lb}/healthz`);
    assert.equal(res.status, 200);
    const h = await res.json();
    assert.equal(h.cluster.members, 3, JSON.stringify(h));
    seen.add(h.cluster.node);
  }
  assert.deepEqual([...seen].sort(), ['node-1', 'node-2', 'node-3']);

  const page = await fetch(`${lb}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<html/i);
  assert.equal((await fetch(`${lb}/metrics`)).status, 404, 'metrics are scraped from each node, not through the balancer');
  const big = await fetch(`${lb}/botkit/receive`, { method: 'POST', body: 'x'.repeat(65537), headers: { 'content-type': 'application/json' } });
  assert.equal(big.status, 413);

  // the page's own origin passes the nodes' Origin check through nginx;
  // another site's does not
  const other = await openSocket(ports[0], 'http://elsewhere.example');
  assert.equal(other.status, 403);
  const { ws, frames, status } = await openSocket(ports[0], lb);
  assert.ok(ws, `the page's own websocket was refused: ${status} (is Host passed with its port?)`);
  const user = 'deploy-check';
  ws.send(JSON.stringify({ type: 'hello', user }));
  await until('the greeting', () => frames.some((f) => f.type === 'message'));
  assert.match(frames.find((f) => f.type === 'message').text, /demo bot/);
  ws.send(JSON.stringify({ type: 'message', user, text: 'through nginx', mid: 'd-1' }));
  await until('the answer', () => frames.some((f) => f.type === 'message' && f.text === 'You said: through nginx'));
  assert.ok(frames.some((f) => f.type === 'ack' && f.mid === 'd-1'));
  const closed = new Promise((resolve) => ws.on('close', resolve));
  ws.close();
  await closed;

  // Ctrl-C
  run.kill('SIGINT');
  const r = await Promise.race([exited, later(60000, 'still running')]);
  assert.deepEqual(r, { code: 130, signal: null }, out);
  await until('every process run.sh started to exit', () => !started.some(stillThere), 2000)
    .catch(() => assert.fail(`left running: ${JSON.stringify(started.filter(stillThere))}`));
  assert.equal(fs.existsSync(folder), false, 'the temporary folder is removed');
});
