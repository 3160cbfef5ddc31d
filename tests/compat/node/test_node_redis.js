// test_node_redis.js - ringmq's compatibility cases for node-redis:
//   node test_node_redis.js SERVER_BINARY redis4   node-redis 4 (npm alias)
//   node test_node_redis.js SERVER_BINARY redis    current node-redis
// Versions pinned in package-lock.json.
'use strict';
const { runCases, waiter, assert } = require('./server');

const bin = process.argv[2];
const mod = process.argv[3];
const { createClient } = require(mod);
const version = require(`${mod}/package.json`).version;

async function client(srv) {
  const o = { socket: { host: '127.0.0.1', port: srv.port, reconnectStrategy: () => 100 } };
  // node-redis 5 and later send HELLO 3 by default: tested as it comes.
  const c = createClient(o);
  c.on('error', () => {}); // reconnects are expected in the restart case
  await c.connect();
  return c;
}

const cases = [
  ['publish_and_subscribe', async (srv) => {
    const r = await client(srv);
    await r.sendCommand(['CREATE', 'news']);
    const s = await client(srv);
    const w = waiter();
    await s.subscribe('news', (msg, ch) => w.push([ch, msg]));
    await r.publish('news', 'hello');
    const m = await w.next();
    assert(m[0] === 'news' && m[1] === 'hello', JSON.stringify(m));
    await s.disconnect(); await r.disconnect();
  }],
  ['binary_payloads', async (srv) => {
    const r = await client(srv);
    await r.sendCommand(['CREATE', 'bin']);
    const s = await client(srv);
    const w = waiter();
    await s.subscribe('bin', (msg) => w.push(msg), true);
    const payload = Buffer.concat([Buffer.from([0, 1, 2, 13, 10, 255]), Buffer.from('end')]);
    await r.publish('bin', payload);
    const got = await w.next();
    assert(Buffer.compare(got, payload) === 0, got.toString('hex'));
    await s.disconnect(); await r.disconnect();
  }],
  ['pipeline_auto', async (srv) => {
    const r = await client(srv);
    await r.sendCommand(['CREATE', 'pl']);
    const out = await Promise.all(Array.from({ length: 100 }, (_, i) => r.publish('pl', `m${i}`)));
    assert(out[99] === 100, JSON.stringify(out.slice(-2)));
    await r.disconnect();
  }],
  ['transaction', async (srv) => {
    // multi().exec(): MULTI/EXEC, all in order, or none when a command
    // cannot be queued (EXECABORT).
    const r = await client(srv);
    await r.sendCommand(['CREATE', 'tx']);
    const out = await r.multi().publish('tx', 'a').publish('tx', 'b').ping().exec();
    assert(JSON.stringify(out) === '[1,2,"PONG"]', JSON.stringify(out));
    let aborted = false;
    try {
      await r.multi().publish('tx', 'c').addCommand(['NOSUCHCOMMAND']).exec();
    } catch (e) {
      aborted = /EXECABORT|NOSUCHCOMMAND|unknown command/i.test(String(e));
    }
    assert(aborted, 'EXEC of a transaction with an unknown command was not aborted');
    assert(await r.publish('tx', 'd') === 3, 'the aborted transaction published');
    await r.disconnect();
  }],
  ['info_parsed', async (srv) => {
    const r = await client(srv);
    for (let i = 0; i < 200; i++) await r.sendCommand(['CREATE', `t:${i},x`]);
    const info = await r.info();
    assert(info.length < 4096, `default INFO is ${info.length} bytes`);
    for (const k of ['used_memory', 'used_memory_human', 'blocked_clients', 'total_commands_processed', 'instantaneous_ops_per_sec', 'connected_clients', 'loading', 'rejected_connections', 'pubsub_channels', 'pubsub_patterns']) assert(info.includes(`\r\n${k}:`), k);
    const topics = await r.info('topics');
    assert(topics.includes('\r\ntopic_t%3A7%2Cx:msgs_in=0,'), topics.slice(0, 300));
    await r.disconnect();
  }],
  ['client_info', async (srv) => {
    const r = await client(srv);
    const ci = await r.clientInfo();
    for (const f of ['id', 'addr', 'laddr', 'fd', 'name', 'age', 'idle', 'flags', 'db', 'sub', 'psub', 'multi', 'qbuf', 'qbufFree', 'argvMem', 'obl', 'oll', 'omem', 'totMem', 'events', 'cmd', 'user']) assert(f in ci, `${f} in ${JSON.stringify(ci)}`);
    await r.disconnect();
  }],
  ['pattern_subscriptions', async (srv) => {
    const r = await client(srv);
    await r.sendCommand(['CREATE', 'foo']);
    const s = await client(srv);
    const w = waiter();
    await s.subscribe('foo', (msg) => w.push(['message', msg]));
    await s.pSubscribe('f*', (msg, ch) => w.push(['pmessage', ch, msg]));
    await s.pSubscribe('late.*', (msg, ch) => w.push(['pmessage', ch, msg]));
    await r.publish('foo', 'both');
    const got = [await w.next(), await w.next()].map((m) => m[0]).sort();
    assert(JSON.stringify(got) === '["message","pmessage"]', JSON.stringify(got));
    await r.sendCommand(['CREATE', 'late.x']);
    let m = null;
    for (let i = 0; i < 100 && !m; i++) {
      await r.publish('late.x', 'later');
      m = await w.next(100).catch(() => null);
    }
    assert(m && m[1] === 'late.x' && m[2] === 'later', JSON.stringify(m));
    await s.disconnect(); await r.disconnect();
  }],
  ['pubsub_introspection', async (srv) => {
    const r = await client(srv);
    await r.sendCommand(['CREATE', 'a.1']);
    const s = await client(srv);
    await s.subscribe('a.1', () => {});
    await s.pSubscribe('a.*', () => {});
    assert(JSON.stringify(await r.pubSubChannels()) === '["a.1"]', 'CHANNELS');
    const ns = await r.pubSubNumSub(['a.1']);
    assert(JSON.stringify(ns) === '{"a.1":1}', JSON.stringify(ns));
    assert(await r.pubSubNumPat() === 1, 'NUMPAT');
    await s.disconnect(); await r.disconnect();
  }],
  ['durable_pull_generic_command', async (srv) => {
    // A durable subscriber through the generic command call: REGISTER,
    // DSUBSCRIBE and PULL each get exactly one reply, so the replies after
    // them stay in step (the old durable SUBSCRIBE crashed node-redis 4).
    const r = await client(srv);
    await r.sendCommand(['CREATE', 'jobs']);
    const d = await client(srv);
    assert(await d.sendCommand(['REGISTER', 'SUBSCRIBER', 'w1']) === 'OK', 'REGISTER');
    const sub = await d.sendCommand(['DSUBSCRIBE', 'jobs']);
    assert(Array.isArray(sub) && sub.length === 1, JSON.stringify(sub));
    await r.publish('jobs', 'j1');
    await r.publish('jobs', 'j2');
    const got = await d.sendCommand(['PULL', 'jobs', 'COUNT', '10']);
    assert(JSON.stringify(got.map((m) => String(m[1]))) === '["j1","j2"]', JSON.stringify(got));
    assert(await d.ping() === 'PONG', 'PING after PULL');
    await d.disconnect(); await r.disconnect();
  }],
  ['resubscribe_after_restart', async (srv) => {
    const r = await client(srv);
    await r.sendCommand(['CREATE', 'kept']);
    const s = await client(srv);
    const w = waiter();
    await s.subscribe('kept', (msg) => w.push(msg));
    await srv.restart(false); // clients reconnect while it loads
    let m = null;
    for (let i = 0; i < 300 && !m; i++) {
      await r.publish('kept', 'after').catch(() => {});
      m = await w.next(100).catch(() => null);
    }
    assert(m === 'after', 'no message after the restart');
    await s.disconnect(); await r.disconnect();
  }],
];

runCases(`node-redis ${version}`, bin, cases);
