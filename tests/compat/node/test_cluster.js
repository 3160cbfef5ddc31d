// test_cluster.js - issue 17's cluster, end to end: a local etcd on free
// loopback ports in a temporary data dir and three ringmq nodes, each with
// its own temporary --dir, all stopped by PID and removed at the end.
//   node test_cluster.js RINGMQ_SERVER_BINARY
// Checks slot coverage, MOVED and CROSSSLOT from every node, CLUSTER
// SLOTS/SHARDS/NODES/INFO/MYID, real cluster clients (ioredis Cluster and
// node-redis 4 createCluster) doing spublish/ssubscribe, and failures: a
// node killed with -9 (its slots answer -CLUSTERDOWN within 10 s and come
// back after it restarts), a node partitioned from etcd by cutting the TCP
// proxy it reaches etcd through (it refuses its slots before etcd expires
// its lease, and no other node serves them), and etcd itself stopped and
// restarted on its data (the nodes keep their slots). etcd, the nodes
// (server.js's Server) and the RESP parser come from cluster_util.js.
// Exits 77 (skipped) only when there is no etcd binary.
'use strict';
const { spawnSync } = require('child_process');
const net = require('net');
const path = require('path');

const bin = process.argv[2];
const { sleep, assert } = require('./server');
const {
  SCALE, skipWithoutEtcd, post, stopProc, startEtcd, clusterNode: node, cleanup, killAll,
  encode, parse, waitFor,
} = require('./cluster_util');

// A cluster node: server.js's Server with the cluster flags, its own
// temporary --dir (removed by close()).
function clusterNode(etcdUrl, name) {
  return node(bin, etcdUrl, name, {
    threads: 1,
    // --fsync always: an acknowledged PUBLISH survives the kill -9 below
    args: ['--cluster-expect', '3', '--fsync', 'always'],
  });
}

// A TCP proxy on a free loopback port to 127.0.0.1:target, which the test
// can cut (every connection closed, new ones refused) and join again: a
// node's partition from etcd.
class Proxy {
  constructor(target) {
    this.target = target;
    this.port = 0;
    this.socks = new Set();
    this.server = null;
  }

  listen() {
    this.server = net.createServer((c) => {
      const u = net.connect(this.target, '127.0.0.1');
      this.socks.add(c);
      this.socks.add(u);
      c.pipe(u);
      u.pipe(c);
      const end = () => { c.destroy(); u.destroy(); this.socks.delete(c); this.socks.delete(u); };
      c.on('error', end);
      u.on('error', end);
      c.on('close', end);
      u.on('close', end);
    });
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolve();
      });
    });
  }

  cut() {
    const srv = this.server;
    this.server = null;
    for (const s of this.socks) s.destroy();
    this.socks.clear();
    return new Promise((resolve) => (srv ? srv.close(() => resolve()) : resolve()));
  }
}

// --- a raw RESP client: one request, its whole reply ---

function cmd(port, ...args) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => { s.destroy(); reject(new Error(`${args[0]}: no reply`)); }, 5000 * SCALE);
    s.on('connect', () => s.write(encode(args)));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parse(buf, 0);
      if (r) { clearTimeout(t); s.destroy(); resolve(r[0]); }
    });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

// Sends every command of cmds on one connection at once (pipelined) and
// resolves with their replies, in order.
function pipeline(port, cmds) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let off = 0;
    const out = [];
    const t = setTimeout(() => { s.destroy(); reject(new Error(`pipeline: ${out.length} of ${cmds.length} replies`)); }, 10000 * SCALE);
    s.on('connect', () => s.write(Buffer.concat(cmds.map((c) => encode(c)))));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (let r; out.length < cmds.length && (r = parse(buf, off));) {
        out.push(r[0]);
        off = r[1];
      }
      if (out.length === cmds.length) { clearTimeout(t); s.destroy(); resolve(out); }
    });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

// slot -> port of its owner, from CLUSTER SLOTS
function ownerPorts(slots) {
  const owner = new Array(16384).fill(0);
  for (const [a, b, [, port]] of slots) for (let s = a; s <= b; s++) owner[s] = port;
  return owner;
}

// --- the cases ---

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS ${name}`);
    passed++;
  } catch (e) {
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    failed++;
  }
}

async function main() {
  skipWithoutEtcd();
  const etcd = await startEtcd('cluster');
  const name = `t${process.pid}`;
  // the third node reaches etcd through a proxy the partition case cuts
  const proxy = new Proxy(etcd.port);
  await proxy.listen();
  const nodes = [clusterNode(etcd.url, name), clusterNode(etcd.url, name),
    clusterNode(`http://127.0.0.1:${proxy.port}`, name)];
  let owner = null;
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const ports = nodes.map((n) => n.port);

    await check('cluster.starts: every node says cluster_state:ok', async () => {
      for (const p of ports) {
        await waitFor(`node ${p} ok`, 10000, async () => /cluster_state:ok/.test(await cmd(p, 'CLUSTER', 'INFO')));
      }
    });

    let slots;
    await check('cluster.coverage: CLUSTER SLOTS covers 16384 slots once, over 3 nodes, the same on every node', async () => {
      slots = await cmd(ports[0], 'CLUSTER', 'SLOTS');
      const seen = new Array(16384).fill(0);
      const ids = new Set();
      for (const [a, b, [host, port, id]] of slots) {
        assert(host === '127.0.0.1' && ports.includes(port), `node ${host}:${port}`);
        ids.add(id);
        for (let s = a; s <= b; s++) seen[s]++;
      }
      assert(seen.every((n) => n === 1), 'each slot exactly once');
      assert(ids.size === 3, `3 nodes own slots, got ${ids.size}`);
      for (const p of ports.slice(1)) {
        assert(JSON.stringify(await cmd(p, 'CLUSTER', 'SLOTS')) === JSON.stringify(slots), `same map on ${p}`);
      }
      const myids = await Promise.all(ports.map((p) => cmd(p, 'CLUSTER', 'MYID')));
      assert(new Set(myids).size === 3 && myids.every((id) => ids.has(id) && /^[0-9a-f]{40}$/.test(id)), `MYID ${myids}`);
      const shards = await cmd(ports[1], 'CLUSTER', 'SHARDS');
      assert(shards.length === 3, 'three shards');
      let total = 0;
      for (const sh of shards) {
        assert(sh[0] === 'slots' && sh[2] === 'nodes', `shard layout ${JSON.stringify(sh).slice(0, 200)}`);
        for (let i = 0; i < sh[1].length; i += 2) total += sh[1][i + 1] - sh[1][i] + 1;
        assert(sh[3][0].includes('health') && sh[3][0][sh[3][0].indexOf('health') + 1] === 'online', 'online');
      }
      assert(total === 16384, `SHARDS slots ${total}`);
      const nodesText = await cmd(ports[2], 'CLUSTER', 'NODES');
      const lines = nodesText.trim().split('\n');
      assert(lines.length === 3 && lines.filter((l) => l.includes('myself')).length === 1, nodesText);
      assert(await cmd(ports[0], 'CLUSTER', 'KEYSLOT', 'foo') === 12182, 'KEYSLOT foo');
      // key positions for clients that read them from COMMAND
      const info = await cmd(ports[0], 'COMMAND', 'INFO', 'spublish', 'ssubscribe', 'ping', 'nosuch');
      assert(JSON.stringify(info[0].slice(0, 6)) === JSON.stringify(['spublish', 3, [], 1, 1, 1]), JSON.stringify(info[0]));
      assert(JSON.stringify(info[1].slice(0, 6)) === JSON.stringify(['ssubscribe', -2, ['pubsub'], 1, -1, 1]), JSON.stringify(info[1]));
      assert(info[2][3] === 0 && info[3] === null, JSON.stringify(info.slice(2)));
      const all = await cmd(ports[0], 'COMMAND');
      assert(all.length === await cmd(ports[0], 'COMMAND', 'COUNT') && all.length > 40, `COMMAND: ${all.length}`);
    });

    const owners = ownerPorts(slots || await cmd(ports[0], 'CLUSTER', 'SLOTS'));
    owner = owners[12182];
    await check('cluster.moved: every node but the owner answers MOVED for foo; the owner serves it', async () => {
      assert(await cmd(owner, 'CREATE', 'foo') === 'OK', 'CREATE foo on its owner');
      for (const p of ports) {
        const r = await cmd(p, 'PUBLISH', 'foo', 'x');
        if (p === owner) {
          assert(typeof r === 'number' && r >= 1, `owner publishes: ${JSON.stringify(r)}`);
        } else {
          assert(r && r.err === `MOVED 12182 127.0.0.1:${owner}`, `node ${p}: ${JSON.stringify(r)}`);
          const c = await cmd(p, 'CREATE', 'foo');
          assert(c && c.err === `MOVED 12182 127.0.0.1:${owner}`, `CREATE on ${p}: ${JSON.stringify(c)}`);
        }
      }
    });

    await check('cluster.crossslot: topics of two slots in one request, from every node', async () => {
      for (const p of ports) {
        const r = await cmd(p, 'SSUBSCRIBE', 'foo', 'bar');
        assert(r && r.err === "CROSSSLOT Keys in request don't hash to the same slot", `node ${p}: ${JSON.stringify(r)}`);
        const r2 = await cmd(p, 'SUBSCRIBE', '{x}a', '{y}b');
        assert(r2 && /^CROSSSLOT/.test(r2.err), `SUBSCRIBE on ${p}: ${JSON.stringify(r2)}`);
      }
    });

    await check('cluster.slotimport_names: SLOTIMPORT refuses a topic name no CREATE would take (a 300-byte one overflowed a definition)', async () => {
      for (const name of ['x'.repeat(300), 'a b']) {
        const r = await cmd(ports[0], 'SLOTIMPORT', 'TOPIC', name, '1048576', 'reject', 'disk', '0', '1');
        assert(r && /invalid topic name/.test(r.err), `SLOTIMPORT TOPIC: ${JSON.stringify(r)}`);
      }
      assert(await cmd(ports[0], 'PING') === 'PONG', 'the node still answers');
    });

    // topics owned by each node, for the clients
    const topics = [];
    for (const p of ports) {
      for (let i = 0; ; i++) {
        const t = `{n${i}}topic`;
        const s = await cmd(p, 'CLUSTER', 'KEYSLOT', t);
        if (owners[s] === p) { topics.push(t); break; }
      }
    }

    await check('cluster.ioredis: ioredis Cluster creates, ssubscribes and spublishes on every node', async () => {
      const { Cluster } = require('ioredis');
      const opts = { enableOfflineQueue: true, redisOptions: { connectTimeout: 3000 } };
      const pub = new Cluster([{ host: '127.0.0.1', port: ports[0] }], opts);
      // shardedSubscribers: one subscriber connection per node, each
      // SSUBSCRIBE sent to its slot's owner (ioredis's default is a single
      // subscriber connection, which gets MOVED for other nodes' slots,
      // against Redis as here)
      const sub = new Cluster([{ host: '127.0.0.1', port: ports[1] }],
        { ...opts, shardedSubscribers: true });
      try {
        for (const t of topics) assert(await pub.call('CREATE', t) === 'OK', `CREATE ${t}`);
        const got = [];
        sub.on('smessage', (ch, msg) => got.push(`${ch}=${msg}`));
        for (const t of topics) await sub.ssubscribe(t);
        for (const t of topics) {
          const seq = await pub.spublish(t, `hello ${t}`);
          assert(seq === 1, `spublish ${t} -> ${seq}`);
        }
        // PUBLISH has no key for ioredis: it follows the MOVED
        assert(await pub.publish(topics[2], 'plain') === 2, 'publish through MOVED');
        await waitFor('smessages', 5000, async () => got.length === 4);
        for (const t of topics) assert(got.includes(`${t}=hello ${t}`), `got ${got}`);
        assert(got.includes(`${topics[2]}=plain`), `got ${got}`);
      } finally {
        pub.disconnect();
        sub.disconnect();
      }
    });

    await check('cluster.node_redis: node-redis 4 createCluster sPublish/sSubscribe', async () => {
      const { createCluster } = require('redis4');
      const c = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${ports[2]}` }] });
      c.on('error', () => {});
      await c.connect();
      try {
        const got = [];
        for (const t of topics) await c.sSubscribe(t, (msg, ch) => got.push(`${ch}=${msg}`));
        for (const t of topics) await c.sPublish(t, `nr ${t}`);
        await waitFor('node-redis messages', 5000, async () => got.length === 3);
        for (const t of topics) assert(got.includes(`${t}=nr ${t}`), `got ${got}`);
      } finally {
        await c.disconnect();
      }
    });

    await check('cluster.cli: ringmq-cluster status, move of an empty slot, a slot with topics refused with --empty-only', async () => {
      const tool = path.join(path.dirname(bin), 'ringmq-cluster');
      const run = (...args) => spawnSync(tool, ['--etcd', etcd.url, '--name', name, ...args],
        { encoding: 'utf8', timeout: 30000 * SCALE });
      const st = run('status');
      assert(st.status === 0, `status: ${st.stderr}`);
      assert(st.stdout.split('\n').filter((l) => / live /.test(l)).length === 3, st.stdout);
      // an empty slot: moved, then served by its new owner
      const key = 'move-me';
      const slot = await cmd(ports[0], 'CLUSTER', 'KEYSLOT', key);
      const used = await Promise.all(topics.map((t) => cmd(ports[0], 'CLUSTER', 'KEYSLOT', t)));
      assert(slot !== 12182 && !used.includes(slot), 'a slot no other case uses');
      const from = owners[slot];
      const to = ports.find((p) => p !== from);
      const mv = run('move', `${slot}`, `127.0.0.1:${to}`);
      assert(mv.status === 0 && /moved 1 slots/.test(mv.stdout), `move: ${mv.stdout} ${mv.stderr}`);
      await waitFor('new owner', 5000, async () => {
        const r = await cmd(from, 'CREATE', key);
        return !!(r && r.err === `MOVED ${slot} 127.0.0.1:${to}`);
      });
      // each node applies the map on its own (it reads etcd every 200 ms):
      // the new owner may take a moment longer than the old one
      await waitFor('CREATE on the new owner', 5000, async () => (await cmd(to, 'CREATE', key)) === 'OK');
      // foo's slot holds a topic: refused, the map unchanged
      const before = JSON.stringify(await cmd(ports[0], 'CLUSTER', 'SLOTS'));
      const no = run('--empty-only', 'move', '12182', `127.0.0.1:${ports.find((p) => p !== owner)}`);
      assert(no.status === 1 && /slot 12182 holds 1 topics/.test(no.stderr) && /refused/.test(no.stderr),
        `refusal: ${no.status} ${no.stderr}`);
      // the slot with move-me now holds a topic too: it cannot go back
      const back = run('--empty-only', 'move', `${slot}`, `127.0.0.1:${from}`);
      assert(back.status === 1, `move back refused: ${back.stderr}`);
      await sleep(500);
      assert(JSON.stringify(await cmd(ports[0], 'CLUSTER', 'SLOTS')) === before, 'map unchanged');
      const sl = await cmd(to, 'CLUSTER', 'SLOT-STATS', 'SLOTSRANGE', String(slot), String(slot));
      assert(JSON.stringify(sl) === JSON.stringify([[slot, ['key-count', 1]]]), JSON.stringify(sl));
    });

    await check('cluster.failure: a node killed -9 -> its slots CLUSTERDOWN within 10 s, back after restart with every acknowledged message', async () => {
      const victim = nodes.find((n) => n.port === owner);
      const other = ports.find((p) => p !== owner);
      // 300 publishes acknowledged under --fsync always, then kill -9 at once
      const N = 300;
      const acks = await pipeline(owner, Array.from({ length: N }, (_, i) => ['PUBLISH', 'foo', `k${i}`]));
      assert(acks.every((a, i) => typeof a === 'number' && (i === 0 || a === acks[i - 1] + 1)),
        `acknowledgements: ${JSON.stringify(acks.slice(0, 5))}...`);
      const last = acks[N - 1];
      const t0 = Date.now();
      await victim.kill9();
      await waitFor('CLUSTERDOWN', 10000, async () => {
        const r = await cmd(other, 'PUBLISH', 'foo', 'y');
        return !!(r && r.err && /^CLUSTERDOWN/.test(r.err));
      });
      console.log(`  slots down ${Date.now() - t0} ms after kill -9`);
      const info = await cmd(other, 'CLUSTER', 'INFO');
      assert(/cluster_state:fail/.test(info) && /cluster_slots_fail:[1-9]/.test(info), info);
      // the other nodes' slots are still served
      const mine = topics[ports.indexOf(other)];
      assert(typeof await cmd(other, 'PUBLISH', mine, 'z') === 'number', 'other slots served');
      const t1 = Date.now();
      await victim.start(); // same port and --dir: same node id, its topics recovered
      await waitFor('back', 10000, async () => {
        const r = await cmd(other, 'PUBLISH', 'foo', 'y');
        return !!(r && r.err === `MOVED 12182 127.0.0.1:${owner}`);
      });
      const r = await cmd(owner, 'PUBLISH', 'foo', 'back');
      assert(r === last + 1, `foo kept every acknowledged message: next ${JSON.stringify(r)}, last acknowledged ${last}`);
      // and their payloads, in order (a durable subscriber from the first)
      const [reg, ds, pulled] = await pipeline(owner, [['REGISTER', 'SUBSCRIBER', 'after-kill'],
        ['DSUBSCRIBE', 'foo', 'FROM', String(acks[0])], ['PULL', 'foo', 'COUNT', String(N)]]);
      assert(reg === 'OK' && Array.isArray(ds), `REGISTER/DSUBSCRIBE: ${JSON.stringify([reg, ds])}`);
      assert(Array.isArray(pulled) && pulled.length === N, `PULL: ${JSON.stringify(pulled).slice(0, 200)}`);
      pulled.forEach((m, i) => assert(Array.isArray(m) && Number(m[0]) === acks[i] && m[1] === `k${i}`,
        `message ${i}: ${JSON.stringify(m)}`));
      console.log(`  slots back ${Date.now() - t1} ms after restart`);
    });

    await check('cluster.partition: a node cut from etcd stops serving its slots before etcd expires its lease, then comes back', async () => {
      const p = nodes[2].port;
      const t = topics[2];
      const slot = await cmd(p, 'CLUSTER', 'KEYSLOT', t);
      const others = ports.filter((q) => q !== p);
      const id = await cmd(p, 'CLUSTER', 'MYID');
      const key = Buffer.from(`/ringmq/${name}/nodes/${id}`).toString('base64');
      const leased = async () => ((await post(etcd.port, '/v3/kv/range', { key })).kvs || []).length > 0;
      await waitFor('served before the cut', 10000, async () => typeof await cmd(p, 'PUBLISH', t, 'a') === 'number');
      assert(await leased(), 'its key is in etcd');
      const t0 = Date.now();
      await proxy.cut();
      try {
      let fencedAt = 0;
      let expiredAt = 0;
      let lastServed = 0;
      let servedAfterFence = false;
      const deadline = t0 + 15000 * SCALE;
      while ((!fencedAt || !expiredAt) && Date.now() < deadline) {
        const [r, gone, ...o] = await Promise.all([
          cmd(p, 'PUBLISH', t, 'b').catch((e) => ({ err: e.message })),
          leased().then((x) => !x, () => false),
          ...others.map((q) => cmd(q, 'PUBLISH', t, 'b').catch((e) => ({ err: e.message })))]);
        const now = Date.now() - t0;
        if (typeof r === 'number') {
          lastServed = now;
          if (fencedAt) servedAfterFence = true;
        } else if (!fencedAt && r && /^CLUSTERDOWN/.test(r.err)) {
          fencedAt = now;
        }
        if (gone && !expiredAt) expiredAt = now;
        // never a second owner: the others redirect to it or say it is down
        for (const x of o) assert(x && x.err && /^(MOVED|CLUSTERDOWN)/.test(x.err), `another node served slot ${slot}: ${JSON.stringify(x)}`);
        await sleep(50);
      }
      console.log(`  partitioned node: last served ${lastServed} ms after the cut, refused from ${fencedAt} ms; etcd dropped its key at ${expiredAt} ms`);
      assert(fencedAt > 0, 'the partitioned node stopped serving its slots');
      assert(expiredAt > 0, 'etcd expired its lease');
      assert(!servedAfterFence, 'it served again while cut off');
      assert(fencedAt < expiredAt, `refused (${fencedAt} ms) before the lease expired (${expiredAt} ms)`);
      const info = await cmd(p, 'CLUSTER', 'INFO');
      assert(/cluster_state:fail/.test(info), `partitioned node's CLUSTER INFO: ${info}`);
      } finally {
        await proxy.listen();
      }
      const t1 = Date.now();
      await waitFor('serves again', 10000, async () => typeof await cmd(p, 'PUBLISH', t, 'c') === 'number');
      for (const q of others) {
        await waitFor(`node ${q} routes to it again`, 10000, async () => {
          const r = await cmd(q, 'PUBLISH', t, 'd');
          return !!(r && r.err === `MOVED ${slot} 127.0.0.1:${p}`);
        });
      }
      console.log(`  back ${Date.now() - t1} ms after the proxy reopened`);
    });

    await check('cluster.etcd_restart: etcd stopped and restarted on its data, the nodes keep their slots and serve', async () => {
      const before = JSON.stringify(await cmd(ports[0], 'CLUSTER', 'SLOTS'));
      for (const [i, p] of ports.entries()) {
        await waitFor(`node ${p} ok`, 10000, async () => /cluster_state:ok/.test(await cmd(p, 'CLUSTER', 'INFO')));
        assert(typeof await cmd(p, 'PUBLISH', topics[i], 'e0') === 'number', `node ${p} serves`);
      }
      const t0 = Date.now();
      await stopProc(etcd.proc);
      await sleep(1000);
      // etcd down for a second: the nodes still serve (they fence only
      // after 4 s without a lease renewal)
      for (const [i, p] of ports.entries()) {
        assert(typeof await cmd(p, 'PUBLISH', topics[i], 'e1') === 'number', `node ${p} serves with etcd down`);
      }
      await sleep(1000);
      await etcd.restart(0);
      console.log(`  etcd down for ${Date.now() - t0} ms`);
      for (const [i, p] of ports.entries()) {
        await waitFor(`node ${p} serves after the restart`, 15000, async () => typeof await cmd(p, 'PUBLISH', topics[i], 'e2') === 'number'
          && /cluster_state:ok/.test(await cmd(p, 'CLUSTER', 'INFO')));
      }
      console.log(`  every node ok ${Date.now() - t0} ms after etcd stopped`);
      for (const p of ports) {
        assert(JSON.stringify(await cmd(p, 'CLUSTER', 'SLOTS')) === before, `same slot map on ${p}`);
      }
    });

    await check('cluster.stop: every node stops cleanly on SIGTERM', async () => {
      for (const n of nodes) {
        const code = await n.stop();
        assert(code === 0, `exit status ${code}: ${n.log}`);
      }
    });
  } finally {
    await proxy.cut();
    await cleanup(etcd);
  }
  console.log(`cluster: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL cluster: ${e && e.stack ? e.stack : e}`);
  killAll();
  process.exit(1);
});
