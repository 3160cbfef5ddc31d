#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: corpus/fuzz_resp and
corpus/fuzz_cmd (each file is one seed; the names say what it is).

    python3 tests/fuzz/make_seeds.py        # rewrites both directories

Input formats: see the comments at the top of fuzz_resp.c and fuzz_cmd.c.
Seeds are small, valid or deliberately wrong requests: the fuzzer mutates
them and keeps what reaches new code (in its scratch copy, not here)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def b(x):
    return x.encode() if isinstance(x, str) else x


def cmd(*args):
    """One request as a RESP array of bulk strings."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = b(a)
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def write(dirname, seeds):
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (d, len(seeds)))


# --- fuzz_resp: a control byte, then the stream. Control byte bits 0-1:
# limits (0 the server's, 1 test_resp's 1024/16/256, 2 tiny 8/3/12, 3 edges
# 0/1/1); bits 2-3: reads of up to 3, 8, 64 or 1024 bytes; bits 4-6: the
# argv capacity - 1 the streaming reader starts with.
RESP = {
    "frame_ping": b"0" + cmd("PING"),
    "frame_publish": b"0" + cmd("PUBLISH", "t", "hello"),
    "frame_binary_payload": b"4" + cmd("PUBLISH", "t", b"a\0b\r\nc\xff"),
    "frame_empty_bulk": b"0" + cmd("ECHO", ""),
    "pipeline_three": b"8" + cmd("CREATE", "t") + cmd("PUBLISH", "t", "x") + cmd("PULL", "t", "COUNT", "10"),
    "pipeline_mixed_inline": b"<PING\r\n" + cmd("ECHO", "hi") + b"publish t x\n",
    "empty_requests": b"0*0\r\n*-1\r\n\r\n\n   \r\n",
    "inline_ping": b"0PING\r\n",
    "inline_lf_only": b"0PING\n",
    "inline_quotes": b"0  publish   t  \"a b\\r\\n\\x41\"\r\n",
    "inline_single_quotes": b"0echo 'it\\'s' 'x y'\r\n",
    "inline_escapes": b"0echo \"\\n\\r\\t\\b\\a\\\\\\\"\\x7a\\xZZ\\q\"\r\n",
    "inline_tabs": b"0\tPUBLISH\tt\tx\t\r\n",
    "need_argv_frame": b"\x00" + cmd("MPUBLISH", "t", "a", "b", "c", "d", "e"),
    "need_argv_inline": b"\x00mpublish t a b c d e\r\n",
    # regression: a retry after NEED_ARGV unescaped the line a second time
    "need_argv_inline_escapes": b"\x00echo a b \"\\x41\" \"x\\ny\"\r\n",
    "argc_at_max_args": b"1" + cmd(*["a"] * 16),
    "argc_over_max_args": b"1*17\r\n",
    "argc_claim_huge": b"0*1048576\r\n",
    "argc_claim_over": b"0*1048577\r\n",
    "claimed_not_sent": b"0*1\r\n$1000\r\n0123456789",
    "bulk_at_max": b"2" + cmd("12345678"),
    "bulk_over_max": b"2*1\r\n$9\r\n123456789\r\n",
    "bulk_edges_zero": b"3*1\r\n$0\r\n\r\n*1\r\n$1\r\nx\r\n",
    "inline_at_max": b"2abcdefghijk\r\n",
    "inline_over_max": b"2abcdefghijklm\r\n",
    "digits_18": b"0*1\r\n$999999999999999999\r\n",
    "digits_19": b"0*1\r\n$9999999999999999999\r\n",
    "digits_minus_zero": b"0*-0\r\n*1\r\n$-0\r\n\r\n",
    "digits_plus": b"0*+1\r\n",
    "bad_multibulk": b"0*abc\r\n",
    "bad_cr_no_lf": b"0*1\rX",
    "bad_expected_dollar": b"0*2\r\n$1\r\na\r\n:1\r\n",
    "bad_negative_bulk": b"0*1\r\n$-5\r\n",
    "bad_empty_length": b"0*1\r\n$\r\n",
    "bad_not_crlf": b"0*1\r\n$3\r\nabcXY",
    "bad_unbalanced_double": b"0echo \"abc\r\n",
    "bad_unbalanced_single": b"0echo 'it''s'\r\n",
    "bad_quote_then_text": b"0echo \"a\"b\r\n",
    "after_error_ignored": b"0*x\r\n" + cmd("PING"),
}


# --- fuzz_cmd: what clients send, with directives after a NUL byte:
# \0 0..3 switch client, \0 . read boundary, \0 h half-close, \0 c close,
# \0 s / \0 g stop / resume reading replies, \0 w 1.5 s pass.
def to(k):
    return b"\0" + str(k).encode()


SPLIT, HALF, CLOSE, DEAF, HEAR, WAIT = b"\0.", b"\0h", b"\0c", b"\0s", b"\0g", b"\0w"

CMD = {
    # topics
    "create": cmd("CREATE", "t"),
    "create_options": cmd("CREATE", "t", "CAPACITY", "1K", "ONFULL", "drop-oldest") + cmd("INFO", "topics"),
    "create_exists": cmd("CREATE", "t") + cmd("CREATE", "t"),
    "create_bad": cmd("CREATE") + cmd("CREATE", "") + cmd("CREATE", "a b") + cmd("CREATE", "t", "CAPACITY")
    + cmd("CREATE", "t", "ONFULL", "maybe") + cmd("CREATE", "t", "COLOUR", "red") + cmd("CREATE", "x" * 256),
    "create_capacity_edges": cmd("CREATE", "a", "CAPACITY", "1023") + cmd("CREATE", "b", "CAPACITY", "1024")
    + cmd("CREATE", "c", "CAPACITY", "1T") + cmd("CREATE", "d", "CAPACITY", "1099511627777")
    + cmd("CREATE", "e", "CAPACITY", "18446744073709551615") + cmd("CREATE", "f", "CAPACITY", "18446744073709551616")
    + cmd("CREATE", "g", "CAPACITY", "-1") + cmd("CREATE", "h", "CAPACITY", "1G") + cmd("TOPICS"),
    "delete": cmd("CREATE", "t") + cmd("DELETE", "t") + cmd("DELETE", "t") + cmd("DELETE") + cmd("DELETE", "a", "b"),
    "topics": cmd("CREATE", "b") + cmd("CREATE", "a") + cmd("TOPICS") + cmd("TOPICS", "x"),
    # publishing
    "publish": cmd("CREATE", "t") + cmd("PUBLISH", "t", "hello") + cmd("PUBLISH", "t", ""),
    "publish_bad": cmd("PUBLISH", "nope", "x") + cmd("PUBLISH", "t") + cmd("PUBLISH", "t", "x", "y"),
    "publish_binary": cmd("CREATE", "t") + cmd("PUBLISH", "t", b"\0\r\n\xff*1\r\n"),
    "publish_until_full": cmd("CREATE", "t", "CAPACITY", "1024") + cmd("REGISTER", "SUBSCRIBER", "s")
    + cmd("DSUBSCRIBE", "t") + cmd("MPUBLISH", "t", *(["x" * 100] * 12)) + cmd("PULL", "t") + cmd("INFO", "topics"),
    "mpublish": cmd("CREATE", "t") + cmd("MPUBLISH", "t", "a", "b", "c") + cmd("MPUBLISH", "t")
    + cmd("MPUBLISH", "nope", "a"),
    "payload_too_big": cmd("CREATE", "t") + b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$1025\r\n" + b"x" * 1025 + b"\r\n",
    "payload_larger_than_capacity": cmd("CREATE", "t", "CAPACITY", "1024") + cmd("PUBLISH", "t", "x" * 1000),
    "register": cmd("REGISTER", "PUBLISHER") + cmd("REGISTER", "PUBLISHER", "p") + cmd("REGISTER", "SUBSCRIBER", "s")
    + cmd("REGISTER") + cmd("REGISTER", "PUBLISHER", "a", "b") + cmd("REGISTER", "SUBSCRIBER")
    + cmd("REGISTER", "SUBSCRIBER", "bad name") + cmd("REGISTER", "OTHER", "x"),
    # durable subscribers
    "durable_pull": cmd("CREATE", "t") + to(1) + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t")
    + to(0) + cmd("MPUBLISH", "t", "a", "b", "c") + to(1) + cmd("PULL", "t") + cmd("PULL", "t", "COUNT", "2")
    + cmd("DUNSUBSCRIBE", "t") + cmd("PULL", "t"),
    "durable_pull_args": cmd("CREATE", "t") + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t")
    + cmd("PULL", "t", "COUNT", "0") + cmd("PULL", "t", "COUNT", "100000") + cmd("PULL", "t", "COUNT", "100001")
    + cmd("PULL", "t", "BLOCK", "31536000001") + cmd("PULL", "t", "COUNT") + cmd("PULL", "t", "SIZE", "1")
    + cmd("PULL", "t", "COUNT", "-1") + cmd("PULL") + cmd("PULL", "u"),
    "durable_pull_unregistered": cmd("CREATE", "t") + cmd("PULL", "t"),
    "durable_block_then_publish": cmd("CREATE", "t") + to(1) + cmd("REGISTER", "SUBSCRIBER", "s")
    + cmd("DSUBSCRIBE", "t") + cmd("PULL", "t", "BLOCK", "0") + cmd("PING") + to(0) + cmd("PUBLISH", "t", "x"),
    "durable_block_times_out": cmd("CREATE", "t") + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t")
    + cmd("PULL", "t", "BLOCK", "1") + WAIT + cmd("PING"),
    "durable_block_then_delete": cmd("CREATE", "t") + to(1) + cmd("REGISTER", "SUBSCRIBER", "s")
    + cmd("DSUBSCRIBE", "t") + cmd("PULL", "t", "BLOCK", "0") + to(0) + cmd("DELETE", "t"),
    "durable_block_then_close": cmd("CREATE", "t") + to(1) + cmd("REGISTER", "SUBSCRIBER", "s")
    + cmd("DSUBSCRIBE", "t") + cmd("PULL", "t", "BLOCK", "0") + CLOSE + to(0) + cmd("PUBLISH", "t", "x"),
    "durable_block_silent": cmd("CREATE", "t") + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t")
    + cmd("CLIENT", "REPLY", "SKIP") + cmd("PULL", "t", "BLOCK", "1") + WAIT + cmd("PING"),
    "durable_takeover": cmd("CREATE", "t") + to(1) + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t")
    + to(2) + cmd("REGISTER", "SUBSCRIBER", "s") + to(1) + cmd("PULL", "t") + cmd("DSUBSCRIBE", "t")
    + cmd("DUNSUBSCRIBE", "t") + to(2) + cmd("PULL", "t"),
    "durable_resume": cmd("CREATE", "t") + to(1) + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t")
    + CLOSE + to(0) + cmd("PUBLISH", "t", "x") + to(1) + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("PULL", "t"),
    "durable_unsubscribe_all": cmd("CREATE", "a") + cmd("CREATE", "b") + cmd("REGISTER", "SUBSCRIBER", "s")
    + cmd("DSUBSCRIBE", "a", "b", "nope") + cmd("DUNSUBSCRIBE") + cmd("DUNSUBSCRIBE"),
    "durable_topic_recreated": cmd("CREATE", "t") + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t")
    + cmd("DELETE", "t") + cmd("CREATE", "t") + cmd("PULL", "t") + cmd("DSUBSCRIBE", "t") + cmd("PULL", "t"),
    "drop_oldest_lag": cmd("CREATE", "t", "CAPACITY", "1024", "ONFULL", "drop-oldest")
    + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t") + cmd("MPUBLISH", "t", *(["y" * 200] * 20))
    + cmd("INFO", "subscribers") + cmd("PULL", "t"),
    # live subscribers
    "live_subscribe": cmd("CREATE", "t") + to(1) + cmd("SUBSCRIBE", "t") + to(0) + cmd("PUBLISH", "t", "hi")
    + to(1) + cmd("PING") + cmd("PING", "x") + cmd("UNSUBSCRIBE", "t") + cmd("UNSUBSCRIBE"),
    "live_subscribe_same_worker": cmd("CREATE", "t") + to(2) + cmd("SUBSCRIBE", "t", "t") + to(0)
    + cmd("MPUBLISH", "t", "a", "b"),
    "live_submode_rejects": cmd("CREATE", "t") + cmd("SUBSCRIBE", "t") + cmd("PUBLISH", "t", "x")
    + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("RESET") + cmd("PUBLISH", "t", "x"),
    "live_subscribe_missing": cmd("SUBSCRIBE", "nope", "") + cmd("UNSUBSCRIBE", "nope"),
    "live_topic_deleted": cmd("CREATE", "t") + to(1) + cmd("SUBSCRIBE", "t") + to(0) + cmd("PUBLISH", "t", "x")
    + cmd("DELETE", "t") + cmd("CREATE", "t") + to(1) + cmd("SUBSCRIBE", "t"),
    "live_slow_subscriber": cmd("CREATE", "t", "CAPACITY", "1024", "ONFULL", "drop-oldest") + to(1) + DEAF
    + cmd("SUBSCRIBE", "t") + to(0) + cmd("PUBLISH", "t", "z" * 900) * 24 + to(1) + HEAR,
    "live_backlog_then_read": cmd("CREATE", "t") + to(1) + DEAF + cmd("SUBSCRIBE", "t") + to(0)
    + cmd("PUBLISH", "t", "m" * 900) * 12 + to(1) + cmd("PING") + HEAR + cmd("PING"),
    # connection and reply modes
    "client": cmd("CLIENT", "SETNAME", "me") + cmd("CLIENT", "GETNAME") + cmd("CLIENT", "ID") + cmd("CLIENT", "INFO")
    + cmd("CLIENT", "SETINFO", "lib-name", "x") + cmd("CLIENT") + cmd("CLIENT", "KILL"),
    "client_reply_modes": cmd("CLIENT", "REPLY", "OFF") + cmd("PING") + cmd("CLIENT", "REPLY", "ON") + cmd("PING")
    + cmd("CLIENT", "REPLY", "SKIP") + cmd("PING") + cmd("PING") + cmd("CLIENT", "REPLY", "MAYBE"),
    "client_reply_off_pipeline": cmd("CREATE", "t") + cmd("CLIENT", "REPLY", "OFF")
    + b"".join(cmd("PUBLISH", "t", str(i)) for i in range(50)) + cmd("CLIENT", "REPLY", "ON") + cmd("INFO", "stats"),
    "config": cmd("CONFIG", "GET", "save") + cmd("CONFIG", "GET", "*") + cmd("CONFIG", "GET", "appendonly", "nope")
    + cmd("CONFIG", "RESETSTAT") + cmd("CONFIG", "SET", "a", "b") + cmd("CONFIG"),
    "resp3_live": cmd("CREATE", "t") + to(1) + cmd("HELLO", "3") + cmd("SUBSCRIBE", "t", "__ringmq__:deleted")
    + to(0) + cmd("PUBLISH", "t", "x") * 3 + cmd("DELETE", "t") + to(1) + cmd("PING") + cmd("CONFIG", "GET", "*")
    + cmd("UNSUBSCRIBE") + cmd("HELLO", "2"),
    "multi_exec": cmd("CREATE", "t") + cmd("MULTI") + cmd("PUBLISH", "t", "a") + cmd("MULTI") + cmd("TOPICS")
    + cmd("INFO", "topics") + cmd("EXEC") + cmd("MULTI") + cmd("PUBLISH", "t") + cmd("EXEC") + cmd("DISCARD")
    + cmd("MULTI") + cmd("SUBSCRIBE", "t") + cmd("WATCH", "t") + cmd("DISCARD") + cmd("UNWATCH")
    + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("MULTI") + cmd("DSUBSCRIBE", "t") + cmd("PULL", "t", "BLOCK", "0")
    + cmd("DUNSUBSCRIBE") + cmd("EXEC"),
    "hello": cmd("HELLO") + cmd("HELLO", "2") + cmd("HELLO", "3") + cmd("HELLO", "x")
    + cmd("HELLO", "2", "SETNAME", "n", "AUTH", "u", "p") + cmd("HELLO", "2", "AUTH", "u"),
    "info": cmd("CREATE", "t") + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t") + cmd("INFO")
    + cmd("INFO", "server", "clients") + cmd("INFO", "everything") + cmd("STATS") + cmd("INFO", "nothing"),
    "misc": cmd("PING") + cmd("PING", "a", "b") + cmd("ECHO", "e") + cmd("ECHO") + cmd("SELECT", "0")
    + cmd("SELECT", "1") + cmd("COMMAND") + cmd("COMMAND", "COUNT") + cmd("COMMAND", "DOCS") + cmd("FLUSHALL")
    + cmd("X" * 200, "a"),
    "quit": cmd("PING") + cmd("QUIT") + cmd("PING"),
    "reset": cmd("CREATE", "t") + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t") + cmd("RESET")
    + cmd("SUBSCRIBE", "t") + cmd("RESET"),
    "inline_commands": b"create t\r\npublish t \"a b\\n\"\r\nPING\nTOPICS\r\n\r\nquit\r\n",
    "inline_many_args_escapes": b"mpublish t " + b"a " * 70 + b"\"\\x41\"\r\n",
    # framing, splits, protocol errors
    "split_frames": cmd("CREATE", "t")[:5] + SPLIT + cmd("CREATE", "t")[5:] + SPLIT + cmd("PUBLISH", "t", "xy")[:-1]
    + SPLIT + b"\n",
    "protocol_error": cmd("PING") + b"*1\r\n$x\r\n" + cmd("PING"),
    "protocol_error_then_more": b"*2\r\n$4\r\nECHO\r\n:5\r\n" + SPLIT + b"junk" * 100,
    # an incomplete request over max_query (2 * 1024 + 4096 bytes in fuzz_cmd)
    "request_too_large": b"*10\r\n" + (b"$1000\r\n" + b"x" * 1000 + b"\r\n") * 7,
    "request_too_large_while_parked": cmd("CREATE", "t") + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("DSUBSCRIBE", "t")
    + cmd("PULL", "t", "BLOCK", "0") + SPLIT + cmd("ECHO", "x" * 1000) * 7,
    "deaf_pause": cmd("CREATE", "t") + DEAF + cmd("INFO", "everything") * 40 + HEAR + cmd("PING"),
    "long_names": cmd("CREATE", "T" * 255) + cmd("REGISTER", "SUBSCRIBER", "S" * 255) + cmd("DSUBSCRIBE", "T" * 255)
    + cmd("INFO") + cmd("CLIENT", "INFO") + cmd("PULL", "T" * 255),
    "register_roles": cmd("REGISTER", "PUBLISHER") + cmd("REGISTER", "SUBSCRIBER", "s") + to(1)
    + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("REGISTER", "SUBSCRIBER", "u") + cmd("REGISTER", "PUBLISHER")
    + cmd("REGISTER", "SUBSCRIBER", "s"),
    "live_gone_with_backlog": cmd("CREATE", "t") + to(1) + DEAF + cmd("SUBSCRIBE", "t") + to(0)
    + cmd("PUBLISH", "t", "d" * 1000) * 8 + cmd("DELETE", "t") + cmd("CREATE", "t") + to(1) + cmd("SUBSCRIBE", "t")
    + HEAR + cmd("PING"),
    "quit_while_subscribed": cmd("CREATE", "t") + to(1) + cmd("SUBSCRIBE", "t") + cmd("QUIT") + to(0)
    + cmd("PUBLISH", "t", "x") + to(1) + cmd("PING"),
    "half_close": cmd("CREATE", "t") + HALF + cmd("PING"),
    "frame_timeout": cmd("PING") + b"*2\r\n$4\r\nECHO\r\n$5\r\nab" + WAIT + cmd("PING"),
    # regression: the timeout's error was sent straight to the socket, in
    # the middle of a reply whose first part was there already
    "frame_timeout_with_replies_pending": DEAF + cmd("INFO") * 8 + b"*2\r\n$4\r\nECHO\r\n$5\r\nab" + HEAR + WAIT,
    "subscriber_ttl": cmd("CREATE", "t") + to(1) + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("SUBSCRIBE", "t") + CLOSE
    + to(0) + cmd("MPUBLISH", "t", "a", "b") + WAIT + cmd("INFO", "subscribers") + WAIT + cmd("INFO", "subscribers")
    + to(1) + cmd("REGISTER", "SUBSCRIBER", "s") + cmd("PULL", "t"),
    "argc_claim_huge": b"*1048576\r\n",
    "deaf_pipeline": DEAF + cmd("ECHO", "e" * 200) * 40,
    "nul_bytes": cmd("CREATE", "t") + b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$2\r\n\0\0\0\0\r\n",
}


def own_names(name, data):
    """fuzz_cmd keeps its broker across inputs: give each seed its own topic
    "t" and subscriber "s", so that a seed still does what it says when an
    earlier input left a topic "t" behind (with another capacity, say)."""
    for old, new in ((b"t", b"t." + name.encode()), (b"s", b"s." + name.encode())):
        data = data.replace(b"$1\r\n%s\r\n" % old, b"$%d\r\n%s\r\n" % (len(new), new))
    return data


if __name__ == "__main__":
    write("fuzz_resp", RESP)
    write("fuzz_cmd", {name: own_names(name, data) for name, data in CMD.items()})
    sys.exit(0)
