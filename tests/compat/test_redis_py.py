"""test_redis_py.py - ringmq's compatibility cases for redis-py (Debian's
python3-redis), run by ctest (compat.redis_py):

    /usr/bin/python3 test_redis_py.py SERVER_BINARY

Each case starts from a fresh server (its own --dir and port, stopped by
PID), names the behaviour it checks and prints "PASS name" or
"FAIL name: why"; the exit status is 1 if any failed. The last line,
"redis-py VERSION: n passed, m failed", feeds the README's table.
"""
import asyncio
import sys
import threading
import time
import traceback

import redis
import redis.asyncio as aioredis

from ringmq_server import Server

BIN = sys.argv[1]
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def client(srv, **kw):
    return redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=10,
                       socket_connect_timeout=10, **kw)


def get_message(p, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        m = p.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if m:
            return m
    raise AssertionError("no message within %.1fs" % timeout)


@case
def publish_and_subscribe(srv):
    r = client(srv)
    r.execute_command("CREATE", "news")
    p = client(srv).pubsub()
    p.subscribe("news")
    assert p.get_message(timeout=5)["type"] == "subscribe"
    r.publish("news", "hello")
    m = get_message(p)
    assert m["type"] == "message" and m["channel"] == b"news" and m["data"] == b"hello", m


@case
def binary_payloads(srv):
    r = client(srv)
    r.execute_command("CREATE", "bin")
    p = client(srv).pubsub()
    p.subscribe("bin")
    p.get_message(timeout=5)
    payload = bytes(range(256)) + b"\r\n\x00end"
    r.publish("bin", payload)
    assert get_message(p)["data"] == payload


@case
def pipeline_without_transaction(srv):
    r = client(srv)
    r.execute_command("CREATE", "pl")
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.publish("pl", "m%d" % i)
    pipe.ping()
    out = pipe.execute()
    assert out[:100] == list(range(1, 101)) and out[100] is True, out[-3:]


@case
def transaction_default_pipeline(srv):
    # redis-py's default pipeline() is MULTI/EXEC: all of it runs, in order,
    # or (a command that cannot be queued) none of it.
    r = client(srv)
    r.execute_command("CREATE", "tx")
    pipe = r.pipeline()
    pipe.publish("tx", "a")
    pipe.publish("tx", "b")
    pipe.ping()
    assert pipe.execute() == [1, 2, True]
    pipe = r.pipeline()
    pipe.publish("tx", "c")
    pipe.execute_command("NOSUCHCOMMAND")
    try:
        pipe.execute()
        raise AssertionError("EXEC ran a transaction with an unknown command")
    except redis.exceptions.ResponseError:
        pass
    assert r.publish("tx", "d") == 3, "the aborted transaction published"


@case
def connection_pool_threads(srv):
    pool = redis.ConnectionPool(host="127.0.0.1", port=srv.port, max_connections=8,
                                socket_timeout=10)
    r = redis.Redis(connection_pool=pool)
    r.execute_command("CREATE", "pool")
    errors = []

    def worker():
        try:
            for _ in range(50):
                r.publish("pool", "x")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert r.execute_command("INFO", "topics").get("topic_pool", {}).get("msgs_in") == 400


@case
def asyncio_client(srv):
    async def run():
        r = aioredis.Redis(host="127.0.0.1", port=srv.port)
        await r.execute_command("CREATE", "aio")
        p = r.pubsub()
        await p.subscribe("aio")
        await p.get_message(timeout=5)
        await r.publish("aio", "async")
        end = time.time() + 5
        while time.time() < end:
            m = await p.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if m:
                assert m["data"] == b"async", m
                break
        else:
            raise AssertionError("no message")
        await p.close()
        await r.close()
    asyncio.run(run())


@case
def info_parsed(srv):
    r = client(srv)
    r.execute_command("CREATE", "odd:name,with=signs")
    info = r.info()
    for k in ("used_memory", "blocked_clients", "total_commands_processed",
              "instantaneous_ops_per_sec", "connected_clients", "loading",
              "rejected_connections", "pubsub_channels", "pubsub_patterns"):
        assert isinstance(info[k], int), (k, info.get(k))
    assert info["used_memory_human"].endswith(("B", "K", "M", "G")), info["used_memory_human"]
    assert info["db0"]["keys"] == 1, info.get("db0")
    assert not any(k.startswith("topic_") for k in info), "topic listing in default INFO"
    topics = r.info("topics")
    line = topics["topic_odd%3Aname%2Cwith%3Dsigns"]
    assert line["msgs_in"] == 0 and line["onfull"] == "reject", line


@case
def client_info(srv):
    r = client(srv)
    ci = r.client_info()
    for k in ("id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub",
              "psub", "multi", "qbuf", "qbuf-free", "argv-mem", "multi-mem", "obl", "oll",
              "omem", "tot-mem", "events", "cmd", "user"):
        assert k in ci, (k, ci)
    assert ci["argv-mem"] == 0 and ci["db"] == 0, ci


@case
def pattern_subscriptions(srv):
    r = client(srv)
    r.execute_command("CREATE", "foo")
    p = client(srv).pubsub()
    p.subscribe("foo")
    p.psubscribe("f*", "late.*")
    for _ in range(3):
        assert p.get_message(timeout=5)["type"] in ("subscribe", "psubscribe")
    r.publish("foo", "both")
    got = sorted((m["type"], m["data"]) for m in (get_message(p), get_message(p)))
    assert got == [("message", b"both"), ("pmessage", b"both")], got
    r.execute_command("CREATE", "late.x")  # created after PSUBSCRIBE
    end = time.time() + 5
    while True:
        r.publish("late.x", "later")
        m = p.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if m:
            assert m["type"] == "pmessage" and m["pattern"] == b"late.*" and \
                m["channel"] == b"late.x", m
            break
        assert time.time() < end, "no pmessage for a topic created later"


@case
def pubsub_introspection(srv):
    r = client(srv)
    r.execute_command("CREATE", "a.1")
    p = client(srv).pubsub()
    p.subscribe("a.1")
    p.psubscribe("a.*")
    p.get_message(timeout=5)
    p.get_message(timeout=5)
    assert r.pubsub_channels() == [b"a.1"], r.pubsub_channels()
    assert r.pubsub_numsub("a.1", "none") == [(b"a.1", 1), (b"none", 0)]
    assert r.pubsub_numpat() == 1


@case
def durable_pull_generic_command(srv):
    # The durable commands (REGISTER SUBSCRIBER, DSUBSCRIBE, PULL) through
    # execute_command: one reply each, so ping() after them is in step.
    r = client(srv)
    r.execute_command("CREATE", "jobs")
    r.execute_command("CREATE", "other")
    d = client(srv, single_connection_client=True)
    assert d.execute_command("REGISTER", "SUBSCRIBER", "w1") in (b"OK", True)
    d.execute_command("DSUBSCRIBE", "jobs", "other")
    r.publish("jobs", "j1")
    r.publish("jobs", "j2")
    got = d.execute_command("PULL", "jobs", "COUNT", "10")
    assert [m[1] for m in got] == [b"j1", b"j2"], got
    assert d.ping() is True


@case
def resubscribe_after_restart(srv):
    r = client(srv)
    r.execute_command("CREATE", "durable.topic")
    p = client(srv).pubsub()
    p.subscribe("durable.topic")
    p.get_message(timeout=5)
    srv.restart(wait_ready=False)  # clients reconnect while it loads
    # redis-py's PubSub raises ConnectionError once; the next get_message
    # reconnects and subscribes again (on_connect)
    end = time.time() + 30
    got = None
    while time.time() < end and got is None:
        try:
            m = p.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if m and m["type"] == "message":
                got = m
                break
        except redis.ConnectionError:
            time.sleep(0.1)
            continue
        try:
            client(srv).publish("durable.topic", "after")
        except (redis.ConnectionError, redis.BusyLoadingError):
            time.sleep(0.1)
    assert got and got["data"] == b"after", got


def main():
    passed = failed = 0
    for fn in CASES:
        srv = Server(BIN)
        try:
            fn(srv)
            print("PASS %s" % fn.__name__)
            passed += 1
        except Exception as e:  # noqa: BLE001 - reported, then counted
            print("FAIL %s: %r" % (fn.__name__, e))
            traceback.print_exc()
            failed += 1
        finally:
            srv.close()
        sys.stdout.flush()
    print("redis-py %s: %d passed, %d failed" % (redis.__version__, passed, failed))
    sys.exit(1 if failed else 0)


main()
