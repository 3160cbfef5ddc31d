// server.js - starts and stops a ringmq-server for the Node.js cases: its
// own temporary --dir, a port the kernel picked (read from the startup
// line), stopped by its PID; restart() keeps the directory and the port.
// Options: args (more flags, e.g. the cluster's), threads (default 2),
// logLevel (default warn), startMs (how long start() waits for the startup
// line, default 30000), tmpPrefix; the server's stderr is kept in .log.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

class Server {
  constructor(bin, opts = {}) {
    this.bin = bin;
    this.args = opts.args || [];
    this.threads = opts.threads || 2;
    this.logLevel = opts.logLevel || 'warn';
    this.startMs = opts.startMs || 30000;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), opts.tmpPrefix || 'ringmq-compat-'));
    this.port = 0;
    this.proc = null;
    this.log = '';
  }

  start(waitReady = true) {
    const proc = spawn(this.bin, ['--port', String(this.port), '--dir', this.dir,
      '--threads', String(this.threads), '--log-level', this.logLevel, ...this.args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.log = '';
    proc.on('error', (e) => { this.log += `${e}`; });
    proc.stderr.on('data', (d) => { this.log += d; });
    let buf = '';
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('ringmq-server did not start')), this.startMs);
      const onData = (d) => {
        buf += d.toString();
        const m = /Server started on [^:]+:(\d+)/.exec(buf);
        if (m) {
          this.port = Number(m[1]);
          proc.stdout.off('data', onData);
          proc.stdout.resume();
          clearTimeout(t);
          if (waitReady) resolve();
        }
      };
      proc.stdout.on('data', onData);
      proc.on('exit', (code, sig) => {
        clearTimeout(t);
        reject(new Error(`ringmq-server exited (${code}, ${sig}): ${this.log.slice(-500)}`));
      });
      if (!waitReady && this.port) { clearTimeout(t); resolve(); }
    });
  }

  // Stops the server by its PID (SIGTERM, or sig); resolves with its exit
  // code (null when killed by a signal, or not running).
  async stop(sig = 'SIGTERM') {
    const proc = this.proc;
    this.proc = null;
    if (!proc) return null;
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
    return new Promise((resolve) => {
      const t = setTimeout(() => proc.kill('SIGKILL'), 20000);
      proc.removeAllListeners('exit');
      proc.on('exit', (code) => { clearTimeout(t); resolve(code); });
      process.kill(proc.pid, sig);
    });
  }

  async kill9() { return this.stop('SIGKILL'); }

  async restart(waitReady = true) {
    await this.stop();
    const p = this.start(waitReady);
    p.catch(() => {});
    if (waitReady) await p;
  }

  async close() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// Runs each case on a fresh server; prints PASS/FAIL lines and a summary
// "<label>: n passed, m failed"; exit status 1 if any failed.
async function runCases(label, bin, cases) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const [name, fn] of cases) {
    const srv = new Server(bin);
    try {
      await srv.start();
      if (await withTimeout(fn(srv), 60000, name) === 'skip') {
        console.log(`SKIP ${name}`);
        skipped++;
      } else {
        console.log(`PASS ${name}`);
        passed++;
      }
    } catch (e) {
      console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
      failed++;
    } finally {
      await srv.close();
    }
  }
  console.log(`${label}: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed ? 1 : 0);
}

function withTimeout(p, ms, name) {
  let t;
  return Promise.race([p, new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`${name}: timed out after ${ms} ms`)), ms);
  })]).finally(() => clearTimeout(t));
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Resolves with the first value push() receives.
function waiter() {
  const q = [];
  const w = [];
  return {
    push(v) { if (w.length) w.shift()(v); else q.push(v); },
    next(ms = 5000) {
      if (q.length) return Promise.resolve(q.shift());
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          w.splice(w.indexOf(done), 1); // a later value stays queued
          reject(new Error(`no message within ${ms} ms`));
        }, ms);
        const done = (v) => { clearTimeout(t); resolve(v); };
        w.push(done);
      });
    },
  };
}

function assert(cond, msg) { if (!cond) throw new Error(`assertion failed: ${msg}`); }

module.exports = { Server, runCases, sleep, waiter, assert };
