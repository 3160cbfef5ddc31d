// cluster_util.js - what test_cluster.js and test_migrate.js share: a local
// etcd on free loopback ports in a temporary data dir, cluster nodes
// started through server.js's Server, the raw RESP encoder and parser, and
// the bookkeeping that stops (by PID) and removes everything they started.
// Everything listens on and connects to 127.0.0.1 only.
'use strict';
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const { Server, sleep } = require('./server');

const SCALE = Math.max(1, Number(process.env.RINGMQ_TEST_TIME_SCALE || 1));
const ETCD = process.env.ETCD_BIN || 'etcd';

// what the tests started: stopped and removed by cleanup() / killAll()
const children = new Set(); // child processes (etcd, tools)
const dirs = new Set(); // temporary directories
const servers = new Set(); // cluster nodes (Server)

// Exits 77 (skipped) when there is no etcd binary.
function skipWithoutEtcd() {
  if (spawnSync(ETCD, ['--version']).error) {
    console.log('SKIP cluster: no etcd binary (scripts/setup.sh installs etcd-server)');
    process.exit(77);
  }
}

function tmpdir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.add(d);
  return d;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// POSTs body as JSON to etcd's HTTP gateway on 127.0.0.1:port.
function post(port, p, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', timeout: 1000 },
      (res) => {
        let b = '';
        res.on('data', (d) => { b += d; });
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(b)) : reject(new Error(b))));
      });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(JSON.stringify(body));
  });
}

// Stops a child process by its PID (SIGTERM, or sig; SIGKILL after 20 s);
// resolves with its exit code.
function stopProc(proc, sig = 'SIGTERM') {
  return new Promise((resolve) => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      children.delete(proc);
      return resolve(proc ? proc.exitCode : null);
    }
    const t = setTimeout(() => process.kill(proc.pid, 'SIGKILL'), 20000 * SCALE);
    proc.once('exit', (code) => { clearTimeout(t); children.delete(proc); resolve(code); });
    process.kill(proc.pid, sig);
  });
}

// Runs etcd on cport/pport with its data in dir; resolves once it answers.
async function runEtcd(dir, cport, pport) {
  const peer = `http://127.0.0.1:${pport}`;
  const proc = spawn(ETCD, ['--name', 'default', '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', `http://127.0.0.1:${cport}`,
    '--advertise-client-urls', `http://127.0.0.1:${cport}`,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `default=${peer}`, '--log-level', 'error'],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  let err = '';
  proc.on('error', (e) => { err += `${e}`; });
  proc.stderr.on('data', (d) => { err += d; });
  const deadline = Date.now() + 10000 * SCALE;
  while (Date.now() < deadline && proc.exitCode === null) {
    try {
      await post(cport, '/v3/kv/range', { key: Buffer.from('x').toString('base64') });
      return proc;
    } catch (e) {
      await sleep(100);
    }
  }
  await stopProc(proc);
  console.log(`etcd did not start on ${cport}: ${err.slice(-500)}`);
  return null;
}

// A local etcd (three tries, on free ports; its data dir named after
// label): { proc, dir, port, pport, url, restart(downMs) }.
async function startEtcd(label) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = tmpdir(`ringmq-${label}-etcd-`);
    const cport = await freePort();
    const pport = await freePort();
    const proc = await runEtcd(dir, cport, pport);
    if (proc) {
      const e = { proc, dir, port: cport, pport, url: `http://127.0.0.1:${cport}` };
      // stops it and starts it again on the same ports and data
      e.restart = async (downMs) => {
        await stopProc(e.proc); // no-op when stopped already
        await sleep(downMs);
        e.proc = await runEtcd(dir, cport, pport);
        if (!e.proc) throw new Error('etcd did not restart');
      };
      return e;
    }
  }
  throw new Error('cannot start etcd');
}

// A cluster node of cluster `name` on etcd at etcdUrl: server.js's Server
// with the cluster flags before opts.args, its own temporary --dir
// (removed by close() or cleanup()); opts as Server's.
function clusterNode(bin, etcdUrl, name, opts = {}) {
  const srv = new Server(bin, {
    tmpPrefix: 'ringmq-cluster-node-',
    ...opts,
    args: ['--cluster-etcd', etcdUrl, '--cluster-name', name, ...(opts.args || [])],
  });
  servers.add(srv);
  return srv;
}

// Stops (by PID) and removes everything started through this module:
// the nodes (closed), etcd, other children (SIGKILL), the directories.
async function cleanup(etcd) {
  for (const n of servers) await n.close();
  if (etcd) await stopProc(etcd.proc);
  for (const p of children) await stopProc(p, 'SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}

// The same at once, for a test that gives up.
function killAll() {
  for (const p of children) try { process.kill(p.pid, 'SIGKILL'); } catch (_) { /* gone */ }
  for (const n of servers) {
    if (n.proc) try { process.kill(n.proc.pid, 'SIGKILL'); } catch (_) { /* gone */ }
    fs.rmSync(n.dir, { recursive: true, force: true });
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}

// --- RESP ---

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

// Parses one RESP2 reply at buf[i..]; returns [value, next] or null when
// incomplete. Errors come back as { err: 'text' }.
function parse(buf, i) {
  if (i >= buf.length) return null;
  const nl = buf.indexOf('\r\n', i);
  if (nl < 0) return null;
  const line = buf.slice(i + 1, nl).toString();
  const t = String.fromCharCode(buf[i]);
  if (t === '+') return [line, nl + 2];
  if (t === '-') return [{ err: line }, nl + 2];
  if (t === ':') return [Number(line), nl + 2];
  if (t === '$') {
    const n = Number(line);
    if (n < 0) return [null, nl + 2];
    if (buf.length < nl + 2 + n + 2) return null;
    return [buf.slice(nl + 2, nl + 2 + n).toString(), nl + 4 + n];
  }
  if (t === '*') {
    const n = Number(line);
    if (n < 0) return [null, nl + 2];
    const out = [];
    let j = nl + 2;
    for (let k = 0; k < n; k++) {
      const r = parse(buf, j);
      if (!r) return null;
      out.push(r[0]);
      j = r[1];
    }
    return [out, j];
  }
  throw new Error(`bad reply byte ${t}`);
}

// Calls fn every 100 ms until it returns true (a throw counts as not yet);
// throws when ms (times SCALE) have passed.
async function waitFor(what, ms, fn) {
  const deadline = Date.now() + ms * SCALE;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last === true) return;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms * SCALE} ms (last: ${JSON.stringify(last)})`);
}

module.exports = {
  SCALE, children, skipWithoutEtcd, post, stopProc, startEtcd, clusterNode, cleanup, killAll,
  encode, parse, waitFor,
};
