"""tls_py_client.py - drives ringmq-server's TLS port with redis-py
(python3-redis) and ssl=True, as a Python user would. Run by test_tls.c:

    /usr/bin/python3 tls_py_client.py PORT CA-FILE [CERT-FILE KEY-FILE]

The server's certificate is verified against CA-FILE, host name included
(127.0.0.1 is in its subjectAltName); CERT-FILE and KEY-FILE, when given,
are the client's certificate (mutual TLS). Prints "REDIS-PY TLS OK" and
exits 0 when every check passed; otherwise an AssertionError (or a redis
error) ends it with a traceback and status 1. Talks to 127.0.0.1 only;
every socket operation has a timeout.
"""
import sys
import time

import redis


def connect(port, ca, cert, key):
    return redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca,
                       ssl_cert_reqs="required", ssl_check_hostname=True,
                       ssl_certfile=cert, ssl_keyfile=key, socket_timeout=5,
                       socket_connect_timeout=5, single_connection_client=True)


def main():
    port = int(sys.argv[1])
    ca = sys.argv[2]
    cert = sys.argv[3] if len(sys.argv) > 4 else None
    key = sys.argv[4] if len(sys.argv) > 4 else None
    r = connect(port, ca, cert, key)
    assert r.ping() is True
    try:
        assert r.execute_command("CREATE", "pytls") in (b"OK", True)
    except redis.ResponseError as e:  # the second run, with a certificate
        assert str(e).startswith("EXISTS"), e

    info = r.info("server")
    assert info["tls_port"] == port, info
    me = r.execute_command("CLIENT", "INFO").decode()
    assert " tls=TLSv1." in me, me

    p = connect(port, ca, cert, key).pubsub()
    p.subscribe("pytls")
    m = p.get_message(timeout=5)
    assert m == {"type": "subscribe", "pattern": None, "channel": b"pytls", "data": 1}, m

    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    payloads = [b"hello %d" % i for i in range(200)] + [big]
    first = None
    for i, pl in enumerate(payloads):
        seq = r.publish("pytls", pl)
        first = seq if first is None else first
        assert seq == first + i, (i, seq, first)
    got = []
    deadline = time.time() + 20
    while len(got) < len(payloads) and time.time() < deadline:
        m = p.get_message(timeout=1)
        if m is not None:
            got.append(m)
    assert len(got) == len(payloads), "received %d of %d" % (len(got), len(payloads))
    for i, m in enumerate(got):
        assert m["type"] == "message" and m["data"] == payloads[i], (i, m["type"])
    p.close()
    r.close()
    print("REDIS-PY TLS OK")


if __name__ == "__main__":
    main()
