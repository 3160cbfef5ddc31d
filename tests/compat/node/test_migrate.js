// test_migrate.js - issue 17's live slot migration, end to end: a local
// etcd and three ringmq nodes, then a fourth, each with its own temporary
// --dir, all stopped by PID and removed at the end.
//   node test_migrate.js RINGMQ_SERVER_BINARY
// While publishers (plain connections that follow -MOVED, -ASK with
// ASKING, and retry -TRYAGAIN) and durable subscribers (auto-acknowledge,
// PULL) run, slots holding topics move to the new node
// (ringmq-cluster --live move), the map is rebalanced over four nodes and
// the new node is drained back to three. Then every acknowledged message
// must have reached every durable subscriber exactly once, in order, with
// the sequence number its publisher was given; a live SSUBSCRIBE subscriber
// gets a sunsubscribe push when its topic moves and subscribes again at
// the new owner. A slot with 100,000 retained messages is moved too and
// the time taken and the time publishes were held are printed (measured,
// not asserted). etcd, the nodes (server.js's Server) and the RESP parser
// come from cluster_util.js. Exits 77 (skipped) only when there is no etcd
// binary.
'use strict';
const { spawn } = require('child_process');
const net = require('net');
const path = require('path');

const bin = process.argv[2];
const tool = path.join(path.dirname(bin), 'ringmq-cluster');
const { sleep, assert } = require('./server');
const {
  SCALE, children, skipWithoutEtcd, startEtcd, clusterNode, cleanup, encode, parse, waitFor,
} = require('./cluster_util');

// A node: threads 2 and log level info (the failure report below prints
// its warnings and slot lines), its own temporary --dir.
function newNode(etcdUrl, name, extra) {
  return clusterNode(bin, etcdUrl, name, {
    threads: 2, logLevel: 'info', startMs: 30000 * SCALE, tmpPrefix: 'ringmq-migrate-node-', args: extra,
  });
}

// A persistent connection: replies in order to the requests; in `sub`
// mode every frame goes to onFrame instead.
class Conn {
  constructor(port, sub = false) {
    this.port = port;
    this.sub = sub;
    this.q = [];
    this.buf = Buffer.alloc(0);
    this.onFrame = null;
    this.closed = false;
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.setNoDelay(true);
    this.sock.on('data', (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      let i = 0;
      for (;;) {
        const r = parse(this.buf, i);
        if (!r) break;
        i = r[1];
        if (this.sub) { if (this.onFrame) this.onFrame(r[0]); } else if (this.q.length) this.q.shift().resolve(r[0]);
      }
      this.buf = this.buf.slice(i);
    });
    const fail = (e) => {
      this.closed = true;
      for (const w of this.q.splice(0)) w.reject(e || new Error('closed'));
    };
    this.sock.on('error', fail);
    this.sock.on('close', () => fail(new Error(`connection to ${port} closed`)));
  }

  // sends every request of reqs in one write; resolves with their replies
  many(reqs) {
    if (this.closed) return Promise.reject(new Error('closed'));
    const ps = reqs.map(() => new Promise((resolve, reject) => this.q.push({ resolve, reject })));
    this.sock.write(Buffer.concat(reqs.map(encode)));
    return Promise.all(ps);
  }

  async send(...args) { return (await this.many([args]))[0]; }

  write(...args) { this.sock.write(encode(args)); }

  close() { this.closed = true; this.sock.destroy(); }
}

// --- routing as a Redis Cluster client does it ---

const stats = { moved: 0, ask: 0, tryagain: 0, down: 0 };

function redirectOf(r) {
  if (!r || typeof r !== 'object' || typeof r.err !== 'string') return null;
  const m = /^(MOVED|ASK) (\d+) [^:]+:(\d+)$/.exec(r.err);
  if (m) return { kind: m[1], slot: Number(m[2]), port: Number(m[3]) };
  if (/^TRYAGAIN/.test(r.err)) return { kind: 'TRYAGAIN' };
  if (/^CLUSTERDOWN/.test(r.err)) return { kind: 'CLUSTERDOWN' };
  return null;
}

class Router {
  constructor(port) {
    this.start = port;
    this.conns = new Map();
    this.owner = new Map(); // topic -> port
  }

  conn(port) {
    let c = this.conns.get(port);
    if (!c || c.closed) {
      c = new Conn(port);
      this.conns.set(port, c);
    }
    return c;
  }

  // the reply of args (about topic) from the node that serves it
  async call(topic, ...args) {
    let port = this.owner.get(topic) || this.start;
    for (let tries = 0; tries < 2000; tries++) {
      let r = await this.conn(port).send(...args);
      let red = redirectOf(r);
      if (red && red.kind === 'ASK') {
        stats.ask++;
        r = (await this.conn(red.port).many([['ASKING'], args]))[1];
        red = redirectOf(r);
        if (!red) return r;
      }
      if (!red) return r;
      if (red.kind === 'MOVED') {
        stats.moved++;
        port = red.port;
        this.owner.set(topic, port);
        // nodes that disagree bounce the request between them until the
        // one behind applies the new map (it polls etcd): give it time
        if (tries >= 10) await sleep(5);
      } else {
        if (red.kind === 'TRYAGAIN') stats.tryagain++;
        else if (red.kind === 'CLUSTERDOWN') stats.down++;
        await sleep(5);
      }
    }
    throw new Error(`${args[0]} ${topic}: no node would serve it`);
  }

  close() { for (const c of this.conns.values()) c.close(); }
}

// A durable subscriber over a cluster: one registered connection per node
// (a second REGISTER of the name on one node would take it over).
class Durable {
  constructor(name, port, topics, block) {
    this.name = name;
    this.block = block; // PULL ... BLOCK ms: parked PULLs meet the moves too
    this.start = port;
    this.topics = topics;
    this.conns = new Map();
    this.owner = new Map();
    this.got = new Map(topics.map((t) => [t, []]));
    this.redirects = 0;
  }

  async conn(port) {
    let c = this.conns.get(port);
    if (!c || c.closed) {
      c = new Conn(port);
      this.conns.set(port, c);
      const r = await c.send('REGISTER', 'SUBSCRIBER', this.name);
      assert(r === 'OK', `REGISTER on ${port}: ${JSON.stringify(r)}`);
    }
    return c;
  }

  async subscribe() {
    for (const t of this.topics) {
      for (let tries = 0; ; tries++) {
        const port = this.owner.get(t) || this.start;
        const r = await (await this.conn(port)).send('DSUBSCRIBE', t, 'FROM', 'first');
        const red = redirectOf(r);
        if (red && red.kind === 'MOVED') { this.owner.set(t, red.port); continue; }
        assert(Array.isArray(r), `DSUBSCRIBE ${t}: ${JSON.stringify(r)}`);
        this.owner.set(t, port);
        break;
      }
    }
  }

  // one PULL per topic; the number of messages received
  async round() {
    let n = 0;
    for (const t of this.topics) {
      const port = this.owner.get(t);
      const c = await this.conn(port);
      const r = await c.send('PULL', t, 'COUNT', '500', ...(this.block ? ['BLOCK', String(this.block)] : []));
      const red = redirectOf(r);
      if (red) {
        this.redirects++;
        if (red.kind === 'MOVED') {
          this.owner.set(t, red.port);
          // on the new owner: the subscription moved with the topic,
          // at its position (DSUBSCRIBE keeps an existing one)
          const d = await (await this.conn(red.port)).send('DSUBSCRIBE', t);
          if (!Array.isArray(d)) this.owner.set(t, port); // not there yet: again later
        }
        continue;
      }
      assert(Array.isArray(r), `PULL ${t} on ${port}: ${JSON.stringify(r)}`);
      for (const [seq, payload] of r) this.got.get(t).push([seq, payload]);
      n += r.length;
    }
    return n;
  }

  close() { for (const c of this.conns.values()) c.close(); }
}

function runTool(etcd, name, ...args) {
  return new Promise((resolve) => {
    const p = spawn(tool, ['--etcd', etcd.url, '--name', name, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(p);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => process.kill(p.pid, 'SIGKILL'), 60000 * SCALE);
    p.on('exit', (code) => { clearTimeout(t); children.delete(p); resolve({ code, out, err }); });
  });
}

function figures(out) {
  const lines = [];
  for (const m of out.matchAll(/slot (\d+): \S+ -> \S+: .* messages (\d+) durable (\d+) ms (\d+) frozen_us (\d+)/g)) {
    lines.push({ slot: Number(m[1]), msgs: Number(m[2]), dsubs: Number(m[3]), ms: Number(m[4]), frozen_us: Number(m[5]) });
  }
  return lines;
}

// CRC16/XMODEM of the {tag} or the whole name, mod 16384 (Redis Cluster)
function keyslot(key) {
  let k = key;
  const a = k.indexOf('{');
  if (a >= 0) {
    const b = k.indexOf('}', a + 1);
    if (b > a + 1) k = k.slice(a + 1, b);
  }
  let crc = 0;
  for (const ch of Buffer.from(k)) {
    crc ^= ch << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

async function main() {
  skipWithoutEtcd();
  const etcd = await startEtcd('migrate');
  const name = `m${process.pid}`;
  const nodes = [0, 1, 2].map(() => newNode(etcd.url, name, ['--cluster-expect', '3']));
  let failed = 0;
  const routers = [];
  const durables = [];
  let sub = null;
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const ports = nodes.map((n) => n.port);
    await waitFor('slot map', 15000, async () => {
      const infos = await Promise.all(ports.map((p) => new Conn(p).send('CLUSTER', 'INFO')));
      return infos.every((i) => typeof i === 'string' && /cluster_state:ok/.test(i));
    });
    // six topics in six slots (disk and memory, one drop-oldest), and a
    // bulk one for the figures
    const admin = new Router(ports[0]);
    routers.push(admin);
    const topics = ['mig.a', 'mig.b', 'mig.c', 'mig.d', 'mig.e', 'mig.f'];
    const opts = [['STORAGE', 'disk'], ['STORAGE', 'memory'], ['STORAGE', 'disk', 'ONFULL', 'drop-oldest'],
      ['STORAGE', 'memory'], ['STORAGE', 'disk'], ['STORAGE', 'memory']];
    for (let i = 0; i < topics.length; i++) {
      const r = await admin.call(topics[i], 'CREATE', topics[i], ...opts[i]);
      assert(r === 'OK', `CREATE ${topics[i]}: ${JSON.stringify(r)}`);
    }
    const bulk = 'mig.bulk';
    assert(await admin.call(bulk, 'CREATE', bulk, 'CAPACITY', String(256 << 20), 'STORAGE', 'disk') === 'OK', 'CREATE bulk');
    const BULK_N = 100000;
    const pay = 'x'.repeat(100);
    for (let i = 0; i < BULK_N; i += 1000) {
      const r = await admin.call(bulk, 'MPUBLISH', bulk, ...new Array(1000).fill(pay));
      assert(typeof r === 'number', `MPUBLISH: ${JSON.stringify(r)}`);
    }

    // durable subscribers from the first message on
    for (const [dn, block] of [['d1', 0], ['d2', 5]]) {
      const d = new Durable(dn, ports[0], topics, block);
      await d.subscribe();
      durables.push(d);
    }
    // a live sharded subscriber of mig.a
    const live = { topic: 'mig.a', sunsub: 0, resub: 0, after: 0, port: admin.owner.get('mig.a') || ports[0] };
    const liveSubscribe = async () => {
      for (let tries = 0; tries < 400; tries++) {
        const c = new Conn(live.port, true);
        const first = new Promise((resolve) => { c.onFrame = resolve; });
        c.write('SSUBSCRIBE', live.topic);
        const r = await first;
        const red = redirectOf(r);
        if (!red) {
          assert(Array.isArray(r) && r[0] === 'ssubscribe', JSON.stringify(r));
          c.onFrame = (f) => {
            if (Array.isArray(f) && f[0] === 'smessage') {
              if (live.resub) live.after++;
            } else if (Array.isArray(f) && f[0] === 'sunsubscribe' && f[1] === live.topic) {
              live.sunsub++;
              assert(f[2] === 0, `sunsubscribe count ${JSON.stringify(f)}`);
              c.close();
              liveSubscribe().then(() => { live.resub++; }, (e) => { live.error = e; });
            }
          };
          sub = c;
          return;
        }
        c.close();
        if (red.kind === 'MOVED') live.port = red.port;
        await sleep(20);
      }
      throw new Error('cannot subscribe again');
    };
    await liveSubscribe();

    // load: two publishers, round robin over the topics, one request at a
    // time each; what was acknowledged, per topic, by sequence number
    const acked = new Map(topics.map((t) => [t, []]));
    let running = true;
    const pubs = [0, 1].map(async (k) => {
      const r = new Router(ports[k]);
      routers.push(r);
      let i = 0;
      while (running) {
        const t = topics[i % topics.length];
        const payload = `p${k}-${i}`;
        const seq = await r.call(t, 'SPUBLISH', t, payload);
        assert(typeof seq === 'number', `SPUBLISH ${t}: ${JSON.stringify(seq)}`);
        acked.get(t).push([seq, payload]);
        i++;
        if (i % 50 === 0) await sleep(1);
      }
    });
    let pulling = true;
    const pullers = durables.map(async (d) => {
      while (pulling) if ((await d.round()) === 0) await sleep(5);
    });
    // A loop that fails stops the others and is reported where it is
    // awaited (below); without a handler now, its rejection would end the
    // process before the finally below stops etcd and the nodes.
    for (const p of [...pubs, ...pullers]) p.catch(() => { running = false; pulling = false; });

    await sleep(1000);
    // a fourth node, then slots with topics moved to it live, under load
    const n4 = newNode(etcd.url, name, []);
    nodes.push(n4);
    await n4.start();
    await waitFor('node 4 live', 10000, async () => /connected/.test(await new Conn(ports[0]).send('CLUSTER', 'NODES')) &&
      (await new Conn(ports[0]).send('CLUSTER', 'NODES')).split('\n').filter((l) => l.trim()).length === 4);
    const all = [];
    for (const t of [...topics, bulk]) {
      const mv = await runTool(etcd, name, '--live', 'move', String(keyslot(t)), `127.0.0.1:${n4.port}`);
      assert(mv.code === 0, `move ${t}: ${mv.out} ${mv.err}`);
      all.push(...figures(mv.out));
    }
    const big = all.find((f) => f.slot === keyslot(bulk));
    assert(big && big.msgs >= BULK_N, `bulk figures: ${JSON.stringify(all)}`);
    console.log(`  slot with ${big.msgs} messages (${big.msgs * 100 / 1e6} MB payload, disk): ${big.ms} ms, publishes held ${big.frozen_us} us`);
    const small = all.filter((f) => f.slot !== keyslot(bulk));
    console.log(`  slots under load: ${small.map((f) => `${f.msgs} msgs ${f.ms} ms held ${f.frozen_us} us`).join('; ')}`);
    await sleep(500);
    // the whole map over four nodes, then the fourth drained
    const rb = await runTool(etcd, name, '--live', 'rebalance');
    assert(rb.code === 0, `rebalance: ${rb.out} ${rb.err}`);
    await sleep(500);
    const dr = await runTool(etcd, name, 'drain', `127.0.0.1:${n4.port}`);
    assert(dr.code === 0, `drain: ${dr.out} ${dr.err}`);
    assert(figures(dr.out).length >= topics.length, `drain moved the topics back: ${dr.out}`);
    await sleep(500);
    running = false;
    await Promise.all(pubs);
    // every acknowledged message, once, in order, to every durable subscriber
    const want = new Map([...acked].map(([t, v]) => [t, v.slice().sort((x, y) => x[0] - y[0])]));
    await waitFor('durable subscribers caught up', 20000, async () => durables.every((d) => topics.every((t) => d.got.get(t).length >= want.get(t).length)));
    pulling = false;
    await Promise.all(pullers);
    let total = 0;
    for (const d of durables) {
      for (const t of topics) {
        const got = d.got.get(t);
        const w = want.get(t);
        for (let i = 1; i < got.length; i++) assert(got[i][0] > got[i - 1][0], `${d.name} ${t}: order at ${i}: ${got[i - 1][0]} then ${got[i][0]}`);
        assert(got.length === w.length, `${d.name} ${t}: ${got.length} delivered, ${w.length} acknowledged`);
        for (let i = 0; i < w.length; i++) {
          assert(got[i][0] === w[i][0] && got[i][1] === w[i][1],
            `${d.name} ${t} #${i}: got ${JSON.stringify(got[i])}, acknowledged ${JSON.stringify(w[i])}`);
        }
        total += got.length;
      }
    }
    console.log(`  ${total / durables.length} messages per durable subscriber, all exactly once in order; ` +
      `client saw MOVED ${stats.moved}, ASK ${stats.ask}, TRYAGAIN ${stats.tryagain}, CLUSTERDOWN ${stats.down}`);
    // the live subscriber: told twice (to node 4, and back), subscribed again, still receiving
    if (live.error) throw live.error;
    await waitFor('live re-subscribed', 5000, async () => live.resub === live.sunsub);
    assert(live.sunsub >= 2, `sunsubscribe pushes: ${live.sunsub}`);
    const before = live.after;
    await admin.call('mig.a', 'SPUBLISH', 'mig.a', 'last');
    await waitFor('live message after re-subscribing', 5000, async () => live.after > before);
    console.log(`PASS migrate.live: ${live.sunsub} sunsubscribe pushes, re-subscribed each time`);

    // a target that dies in the middle: the source keeps its data, serving
    const seqBefore = await admin.call(bulk, 'PUBLISH', bulk, 'before');
    assert(typeof seqBefore === 'number', `PUBLISH bulk: ${JSON.stringify(seqBefore)}`);
    const src = admin.owner.get(bulk) || ports[0];
    const n4id = await new Conn(n4.port).send('CLUSTER', 'MYID');
    process.kill(n4.proc.pid, 'SIGSTOP'); // it accepts, then never answers
    const sc = new Conn(src);
    const st = await sc.send('SLOTMIGRATE', String(keyslot(bulk)), n4id);
    assert(st === 'OK', `SLOTMIGRATE: ${JSON.stringify(st)}`);
    await sleep(300);
    await n4.kill9(); // its connections reset: the source's copy fails at once
    let status = '';
    await waitFor('the move fails', 15000, async () => {
      status = await sc.send('SLOTMIGRATE', 'STATUS');
      return /^err /.test(status);
    });
    const seqAfter = await new Conn(src).send('PUBLISH', bulk, 'after');
    assert(seqAfter === seqBefore + 1, `the source still serves the slot: ${JSON.stringify(seqAfter)} after ${seqBefore}`);
    const ti = await new Conn(src).send('INFO', 'topics');
    assert(new RegExp(`topic_mig\\.bulk:.*first_seq=1,next_seq=${seqBefore + 2},`).test(ti), `bulk intact: ${ti}`);
    sc.close();
    console.log(`PASS migrate.abort: target killed mid-copy -> ${status}; the source kept and serves its data`);
    console.log('PASS migrate.durable: every acknowledged message exactly once, in order, across move, rebalance and drain');
  } catch (e) {
    console.log(`FAIL migrate: ${e && e.stack ? e.stack : e}`);
    for (const n of nodes) {
      const lines = n.log.split('\n').filter((l) => /warn|error|slot/.test(l)).slice(-15);
      if (lines.length) console.log(`  node ${n.port}:\n    ${lines.join('\n    ')}`);
    }
    failed++;
  } finally {
    if (sub) sub.close();
    for (const r of routers) r.close();
    for (const d of durables) d.close();
    await cleanup(etcd);
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.log(`FAIL ${e.stack || e}`); process.exit(1); });
