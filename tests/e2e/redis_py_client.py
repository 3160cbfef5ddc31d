"""redis_py_client.py - drives ringmq-server with redis-py (python3-redis),
the client library users reach for first. Run by test_tools.c:

    /usr/bin/python3 redis_py_client.py PORT

Prints "REDIS-PY OK" and exits 0 when every check passed; otherwise an
AssertionError (or a redis error) ends it with a traceback and status 1.
Talks to 127.0.0.1 only; every socket operation has a timeout.
"""
import sys
import time

import redis


def main():
    port = int(sys.argv[1])
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5,
                    socket_connect_timeout=5, single_connection_client=True)
    assert r.ping() is True
    assert r.execute_command("CREATE", "news") in (b"OK", True)
    try:
        r.execute_command("CREATE", "news")
        raise AssertionError("CREATE of an existing topic succeeded")
    except redis.ResponseError as e:
        assert str(e).startswith("EXISTS"), e

    # live pub/sub through redis-py's PubSub object
    p = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5,
                    socket_connect_timeout=5).pubsub()
    p.subscribe("news")
    m = p.get_message(timeout=5)
    assert m == {"type": "subscribe", "pattern": None, "channel": b"news", "data": 1}, m

    n = 200
    for i in range(n):
        seq = r.publish("news", b"hello %d" % i)
        assert seq == i + 1, (i, seq)
    got = []
    deadline = time.time() + 10
    while len(got) < n and time.time() < deadline:
        m = p.get_message(timeout=1)
        if m is not None:
            got.append(m)
    assert len(got) == n, "received %d of %d messages" % (len(got), n)
    for i, m in enumerate(got):
        assert m == {"type": "message", "pattern": None, "channel": b"news",
                     "data": b"hello %d" % i}, (i, m)

    # binary payload through the push path
    blob = bytes(range(256)) + b"\r\n\x00"
    r.publish("news", blob)
    m = p.get_message(timeout=5)
    assert m is not None and m["data"] == blob, m

    # subscribing to a topic that does not exist is an error
    try:
        p.subscribe("no-such-topic")
        m = p.get_message(timeout=5)
        raise AssertionError("SUBSCRIBE to a missing topic gave %r" % (m,))
    except redis.ResponseError as e:
        assert str(e).startswith("NOTOPIC"), e

    # one missing topic among others: one error, nothing subscribed, and the
    # connection's replies stay in step (issue 14)
    assert r.execute_command("CREATE", "other") in (b"OK", True)
    try:
        p.subscribe("other", "no-such-topic")
        m = p.get_message(timeout=5)
        raise AssertionError("SUBSCRIBE with a missing topic gave %r" % (m,))
    except redis.ResponseError as e:
        assert str(e).startswith("NOTOPIC"), e
    r.publish("other", "not subscribed")
    r.publish("news", "still in step")
    m = p.get_message(timeout=5)
    assert m["channel"] == b"news" and m["data"] == b"still in step", m

    # DELETE of a subscribed topic: a message on __ringmq__:deleted
    assert r.execute_command("CREATE", "doomed") in (b"OK", True)
    p.subscribe("doomed")
    m = p.get_message(timeout=5)
    assert m == {"type": "subscribe", "pattern": None, "channel": b"doomed", "data": 2}, m
    assert r.execute_command("DELETE", "doomed") in (b"OK", True)
    m = p.get_message(timeout=5)
    assert m == {"type": "message", "pattern": None, "channel": b"__ringmq__:deleted",
                 "data": b"doomed"}, m
    p.unsubscribe("doomed")
    m = p.get_message(timeout=5)
    assert m == {"type": "unsubscribe", "pattern": None, "channel": b"doomed", "data": 1}, m

    p.unsubscribe("news")
    m = p.get_message(timeout=5)
    assert m == {"type": "unsubscribe", "pattern": None, "channel": b"news", "data": 0}, m
    p.close()

    # MULTI/EXEC: redis-py's default pipeline() is a transaction
    base = r.publish("news", "before")
    pipe = r.pipeline()
    pipe.publish("news", "t1")
    pipe.publish("other", "t2")
    pipe.execute_command("PUBLISH", "news", "t3")
    assert pipe.execute() == [base + 1, 2, base + 2]
    pipe = r.pipeline()
    pipe.publish("news", "never")
    pipe.execute_command("NO-SUCH-COMMAND")
    try:
        pipe.execute()
        raise AssertionError("EXEC after a queuing error succeeded")
    except redis.ResponseError:
        pass
    assert r.publish("news", "after") == base + 3  # "never" was not stored
    n = base + 2  # the MPUBLISH below stores n + 2 .. n + 4

    # durable subscriber + PULL with execute_command
    d = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5,
                    socket_connect_timeout=5, single_connection_client=True)
    assert d.execute_command("REGISTER", "SUBSCRIBER", "py-worker") in (b"OK", True)
    # DSUBSCRIBE: one reply per request, so later replies stay in step
    ds = d.execute_command("DSUBSCRIBE", "news", "other")
    assert [x[0] for x in ds] == [b"news", b"other"], ds
    assert d.ping() is True
    last = r.execute_command("MPUBLISH", "news", b"a", b"b", b"c")
    assert last == n + 4, last
    pulled = d.execute_command("PULL", "news", "COUNT", "10")
    assert pulled == [[n + 2, b"a"], [n + 3, b"b"], [n + 4, b"c"]], pulled
    assert d.execute_command("PULL", "news", "BLOCK", "100") == []

    info = r.info()
    assert info["messages_in"] == n + 4 + 2, info  # and 2 to "other"
    assert info["redis_version"], info
    d.close()
    r.close()
    print("REDIS-PY OK")


if __name__ == "__main__":
    main()
