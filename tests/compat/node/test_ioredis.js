// test_ioredis.js - ringmq's compatibility cases for ioredis (pinned in
// package-lock.json): node test_ioredis.js SERVER_BINARY
'use strict';
const Redis = require('ioredis');
const { runCases, sleep, waiter, assert } = require('./server');

const bin = process.argv[2];
const opts = (srv, extra = {}) => ({ host: '127.0.0.1', port: srv.port, lazyConnect: false, ...extra });

async function subscriber(srv, w) {
  const s = new Redis(opts(srv));
  s.on('message', (ch, msg) => w.push(['message', ch, msg]));
  s.on('error', () => {}); // reconnects are expected in the restart case
  s.on('pmessage', (pat, ch, msg) => w.push(['pmessage', pat, ch, msg]));
  return s;
}

const cases = [
  ['publish_and_subscribe', async (srv) => {
    const r = new Redis(opts(srv));
    await r.call('CREATE', 'news');
    const w = waiter();
    const s = await subscriber(srv, w);
    await s.subscribe('news');
    await r.publish('news', 'hello');
    const m = await w.next();
    assert(m[1] === 'news' && m[2] === 'hello', JSON.stringify(m));
    s.disconnect(); r.disconnect();
  }],
  ['binary_payloads', async (srv) => {
    const r = new Redis(opts(srv));
    await r.call('CREATE', 'bin');
    const s = new Redis(opts(srv));
    const w = waiter();
    s.on('messageBuffer', (ch, msg) => w.push(msg));
    await s.subscribe('bin');
    const payload = Buffer.concat([Buffer.from([0, 1, 2, 13, 10, 255]), Buffer.from('end')]);
    await r.publish('bin', payload);
    const got = await w.next();
    assert(Buffer.compare(got, payload) === 0, got.toString('hex'));
    s.disconnect(); r.disconnect();
  }],
  ['pipeline', async (srv) => {
    const r = new Redis(opts(srv));
    await r.call('CREATE', 'pl');
    const p = r.pipeline();
    for (let i = 0; i < 100; i++) p.publish('pl', `m${i}`);
    p.ping();
    const out = await p.exec();
    assert(out.length === 101 && out[99][1] === 100 && out[100][1] === 'PONG', JSON.stringify(out.slice(-2)));
    r.disconnect();
  }],
  ['transaction', async (srv) => {
    // multi().exec(): MULTI/EXEC, all in order, or none when a command
    // cannot be queued (EXECABORT).
    const r = new Redis(opts(srv));
    await r.call('CREATE', 'tx');
    const out = await r.multi().publish('tx', 'a').publish('tx', 'b').ping().exec();
    assert(JSON.stringify(out) === '[[null,1],[null,2],[null,"PONG"]]', JSON.stringify(out));
    let aborted = false;
    try {
      await r.multi().publish('tx', 'c').call('NOSUCHCOMMAND').exec();
    } catch (e) {
      aborted = /EXECABORT/.test(String(e));
    }
    assert(aborted, 'EXEC of a transaction with an unknown command was not aborted');
    assert(await r.publish('tx', 'd') === 3, 'the aborted transaction published');
    r.disconnect();
  }],
  ['info_parsed_on_connect_and_by_info', async (srv) => {
    const r = new Redis(opts(srv));
    for (let i = 0; i < 200; i++) await r.call('CREATE', `t:${i},x`);
    const info = await r.info();
    assert(info.length < 4096, `default INFO is ${info.length} bytes`);
    const kv = Object.fromEntries(info.split('\r\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
    for (const k of ['used_memory', 'used_memory_human', 'blocked_clients', 'total_commands_processed', 'instantaneous_ops_per_sec', 'connected_clients', 'loading', 'rejected_connections', 'pubsub_channels', 'pubsub_patterns']) assert(k in kv, k);
    const topics = await r.info('topics');
    assert(topics.includes('\r\ntopic_t%3A7%2Cx:msgs_in=0,'), topics.slice(0, 300));
    r.disconnect();
  }],
  ['client_info', async (srv) => {
    const r = new Redis(opts(srv));
    const ci = await r.client('INFO');
    for (const f of ['id=', ' addr=', ' laddr=', ' argv-mem=', ' tot-mem=', ' resp=']) assert(ci.includes(f), f);
    assert(/ resp=[23] /.test(ci), ci);
    r.disconnect();
  }],
  ['pattern_subscriptions', async (srv) => {
    const r = new Redis(opts(srv));
    await r.call('CREATE', 'foo');
    const w = waiter();
    const s = await subscriber(srv, w);
    await s.subscribe('foo');
    await s.psubscribe('f*', 'late.*');
    await r.publish('foo', 'both');
    const got = [await w.next(), await w.next()].map((m) => m[0]).sort();
    assert(JSON.stringify(got) === '["message","pmessage"]', JSON.stringify(got));
    await r.call('CREATE', 'late.x');
    let m = null;
    for (let i = 0; i < 100 && !m; i++) {
      await r.publish('late.x', 'later');
      m = await w.next(100).catch(() => null);
    }
    assert(m && m[0] === 'pmessage' && m[1] === 'late.*' && m[2] === 'late.x', JSON.stringify(m));
    s.disconnect(); r.disconnect();
  }],
  ['pubsub_introspection', async (srv) => {
    const r = new Redis(opts(srv));
    await r.call('CREATE', 'a.1');
    const s = new Redis(opts(srv));
    await s.subscribe('a.1');
    await s.psubscribe('a.*');
    assert(JSON.stringify(await r.pubsub('CHANNELS')) === '["a.1"]', 'CHANNELS');
    assert(JSON.stringify(await r.pubsub('NUMSUB', 'a.1')) === '["a.1",1]', 'NUMSUB');
    assert(await r.pubsub('NUMPAT') === 1, 'NUMPAT');
    s.disconnect(); r.disconnect();
  }],
  ['durable_pull_generic_command', async (srv) => {
    // A durable subscriber through call(): REGISTER, DSUBSCRIBE and PULL
    // each get exactly one reply and none switches ioredis into
    // subscriber mode (the old durable SUBSCRIBE threw inside ioredis).
    const r = new Redis(opts(srv));
    await r.call('CREATE', 'jobs');
    const d = new Redis(opts(srv));
    assert(await d.call('REGISTER', 'SUBSCRIBER', 'w1') === 'OK', 'REGISTER');
    const sub = await d.call('DSUBSCRIBE', 'jobs');
    assert(Array.isArray(sub) && sub.length === 1, JSON.stringify(sub));
    await r.publish('jobs', 'j1');
    await r.publish('jobs', 'j2');
    const got = await d.call('PULL', 'jobs', 'COUNT', '10');
    assert(JSON.stringify(got.map((m) => String(m[1]))) === '["j1","j2"]', JSON.stringify(got));
    assert(await d.ping() === 'PONG', 'PING after PULL');
    d.disconnect(); r.disconnect();
  }],
  ['resubscribe_after_restart', async (srv) => {
    const r = new Redis(opts(srv, { maxRetriesPerRequest: null }));
    r.on('error', () => {});
    await r.call('CREATE', 'kept');
    const w = waiter();
    const s = await subscriber(srv, w);
    await s.subscribe('kept');
    await srv.restart(false); // clients reconnect while it loads
    let m = null;
    for (let i = 0; i < 300 && !m; i++) {
      await r.publish('kept', 'after').catch(() => {});
      m = await w.next(100).catch(() => null);
    }
    assert(m && m[2] === 'after', 'no message after the restart');
    s.disconnect(); r.disconnect();
  }],
];

runCases(`ioredis ${require('ioredis/package.json').version}`, bin, cases);
