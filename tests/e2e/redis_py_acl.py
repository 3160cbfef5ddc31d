"""redis_py_acl.py - ringmq's AUTH and ACL through redis-py's own helpers
(auth, acl_setuser, acl_getuser, acl_whoami, acl_log, acl_deluser) and its
exceptions. Run by test_acl.c against a server started with
--requirepass adm:

    /usr/bin/python3 redis_py_acl.py PORT

Prints "redis-py acl ok" and exits 0 when every check passed; otherwise an
AssertionError (or a redis error) ends it with a traceback and status 1.
Talks to 127.0.0.1 only; every socket operation has a timeout.
"""
import sys

import redis


def conn(port, **kw):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5,
                       socket_connect_timeout=5, single_connection_client=True,
                       **kw)


def main():
    port = int(sys.argv[1])
    anon = conn(port)
    try:
        anon.ping()
        raise AssertionError("PING without AUTH succeeded")
    except redis.AuthenticationError as e:
        assert "Authentication required" in str(e), e
    try:
        anon.auth("wrong")
        raise AssertionError("AUTH with a wrong password succeeded")
    except (redis.AuthenticationError, redis.ResponseError) as e:
        assert "invalid username-password pair" in str(e), e
    assert anon.auth("adm") in (True, b"OK")
    assert anon.acl_whoami() in (b"default", "default")

    admin = conn(port, password="adm")
    assert admin.acl_setuser("dave", enabled=True, passwords=["+pd"],
                             commands=["+@publish", "+@connection"],
                             channels=["news.*"]) is True
    u = admin.acl_getuser("dave")
    assert u["enabled"] is True, u
    assert "+@publish" in u["categories"], u
    assert u["channels"] == [b"&news.*"] or u["channels"] == ["&news.*"], u
    assert len(u["passwords"]) == 1 and len(u["passwords"][0]) == 64, u
    assert admin.execute_command("CREATE", "news.x") in (b"OK", True)
    assert admin.execute_command("CREATE", "sports") in (b"OK", True)

    dave = conn(port, username="dave", password="pd")
    assert dave.acl_whoami() in (b"dave", "dave")
    assert dave.publish("news.x", "hello") == 1
    try:
        dave.publish("sports", "x")
        raise AssertionError("PUBLISH outside dave's topics succeeded")
    except redis.exceptions.NoPermissionError as e:
        assert "sports" in str(e), e
    try:
        dave.execute_command("DELETE", "news.x")
        raise AssertionError("DELETE without @topicadmin succeeded")
    except redis.exceptions.NoPermissionError as e:
        assert "'delete' command" in str(e), e
    try:
        conn(port, username="dave", password="nope").ping()
        raise AssertionError("a wrong password was accepted")
    except (redis.AuthenticationError, redis.ResponseError) as e:
        assert "WRONGPASS" in str(e), e
        pass

    log = admin.acl_log()
    reasons = [e["reason"] for e in log]
    assert b"command" in reasons or "command" in reasons, log
    assert b"channel" in reasons or "channel" in reasons, log
    assert isinstance(log[0]["age-seconds"], float), log[0]
    assert admin.acl_log_reset() is True
    assert admin.acl_log() == []
    assert admin.acl_deluser("dave") == 1
    assert admin.acl_getuser("dave") is None
    info = admin.info("stats")
    assert info["acl_access_denied_auth"] >= 2, info
    print("redis-py acl ok")


if __name__ == "__main__":
    main()
