/* test_proto.c - e2e suite proto: malformed requests get one error
 * reply, then the connection is closed; other clients are not affected.
 *
 * Every test starts its own server and ends by stopping it with SIGTERM
 * and asserting exit status 0 (srv_test.h: SRV_TEST and the checks).
 *
 * Run one test: tests/e2e/test_proto -j1 --filter 'proto/malformed'
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdlib.h>

#include "srv_test.h"

struct bad_frame {
	char name[32];
	char wire[64];
	size_t len;
	char err[64]; /* the error reply must start with this */
	int replies;  /* well-formed replies before the error */
};

#define FRAME(n, w, e, k)                 \
	{                                 \
		n, w, sizeof(w) - 1, e, k \
	}

ParameterizedTestParameters(proto, malformed)
{
	static struct bad_frame p[] = {
		FRAME("bad multibulk length", "*abc\r\n",
		      "ERR Protocol error: invalid multibulk length", 0),
		FRAME("huge multibulk length", "*99999999999999999999\r\n",
		      "ERR Protocol error: invalid multibulk length", 0),
		FRAME("bad bulk length", "*2\r\n$4\r\nECHO\r\n$x\r\n",
		      "ERR Protocol error: invalid bulk length", 0),
		FRAME("negative bulk length", "*1\r\n$-1\r\n",
		      "ERR Protocol error: invalid bulk length", 0),
		FRAME("bulk over max payload", "*2\r\n$4\r\nECHO\r\n$2000000\r\n",
		      "ERR Protocol error: bulk length exceeds", 0),
		FRAME("missing CRLF after bulk", "*1\r\n$4\r\nPINGxx",
		      "ERR Protocol error: bulk string not terminated by CRLF", 0),
		FRAME("CR without LF after bulk", "*1\r\n$4\r\nPING\rx",
		      "ERR Protocol error: bulk string not terminated by CRLF", 0),
		FRAME("dollar expected (int)", "*1\r\n:4\r\n", "ERR Protocol error: expected '$'",
		      0),
		FRAME("dollar expected (simple)", "*2\r\n$4\r\nECHO\r\n+hi\r\n",
		      "ERR Protocol error: expected '$'", 0),
		FRAME("unbalanced quotes", "ECHO \"abc\r\n",
		      "ERR Protocol error: unbalanced quotes", 0),
		FRAME("text after a quote", "ECHO \"abc\"def\r\n",
		      "ERR Protocol error: unbalanced quotes", 0),
		FRAME("after good requests", "PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n",
		      "ERR Protocol error: invalid multibulk length", 2),
	};
	return cr_make_param_array(struct bad_frame, p, sizeof(p) / sizeof(p[0]));
}

ParameterizedTest(struct bad_frame *f, proto, malformed, .fini = teardown,
		  .timeout = E2E_TEST_TIMEOUT(30.0))
{
	start_server((const char *const[]){ "--threads", "2", NULL });
	struct e2e_client *other = CONN(), *c = CONN();
	IS_OK(R(other, "CREATE", "t"));
	IS_PUSH3(R(other, "SUBSCRIBE", "t"), "subscribe", "t", 1);
	PING_OK(c);
	SEND(c, f->wire, f->len);
	for (int i = 0; i < f->replies; i++) {
		struct e2e_reply *r = RD(c);
		cr_assert(r->type == E2E_STATUS, "%s: reply %d: %s", f->name, i, e2e_reply_str(r));
		e2e_reply_free(r);
	}
	struct e2e_reply *r = e2e_read(c);
	cr_assert_not_null(r, "%s: no error reply: %s", f->name, e2e_last_error());
	cr_assert(r->type == E2E_ERROR && strncmp(r->str, f->err, strlen(f->err)) == 0,
		  "%s: expected -%s..., got %s", f->name, f->err, e2e_reply_str(r));
	e2e_reply_free(r);
	size_t junk = 0;
	cr_assert(e2e_wait_eof(c, 3000, &junk),
		  "%s: connection not closed after the protocol error", f->name);
	cr_assert_eq(junk, 0, "%s: %zu bytes after the error reply", f->name, junk);
	e2e_close(c);
	/* the other client still works, including its subscription */
	struct e2e_client *p = CONN();
	IS_INT(R(p, "PUBLISH", "t", "ok"), 1);
	IS_MSGSTR(RD(other), "t", "ok");
	struct e2e_reply *pong = R(other, "PING");
	cr_assert(pong->type == E2E_ARRAY && pong->n == 2, "%s", e2e_reply_str(pong));
	e2e_reply_free(pong);
	cr_assert_eq(INFO(p, "protocol_errors"), 1);
	e2e_close(p);
	e2e_close(other);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* An inline request larger than the inline limit without a newline is a
 * protocol error too (the server must not buffer it forever). */
SRV_TEST(proto, inline_too_long)
{
	struct e2e_client *c = CONN(), *other = CONN();
	size_t n = 70 * 1024;
	char *junk = malloc(n);
	cr_assert_not_null(junk);
	memset(junk, 'a', n);
	SEND(c, junk, n);
	free(junk);
	IS_ERR(RD(c), "ERR Protocol error");
	size_t rest = 0;
	cr_assert(e2e_wait_eof(c, 3000, &rest));
	PING_OK(other);
	e2e_close(c);
	e2e_close(other);
}

/* A client that closes mid-request or right after sending is harmless. */
SRV_TEST(proto, abrupt_disconnects)
{
	struct e2e_client *keep = CONN();
	IS_OK(R(keep, "CREATE", "t"));
	for (int i = 0; i < 20; i++) {
		struct e2e_client *c = CONN();
		if (i % 2)
			SENDS(c,
			      "*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$10\r\nabc"); /* half a request */
		else
			SENDS(c,
			      "*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$1\r\nx\r\n"); /* reply never read */
		e2e_close(c);
	}
	PING_OK(keep);
	/* only the 10 complete PUBLISHes happened */
	EVENTUALLY(e2e_info_topic_field(keep, "t", "msgs_in") == 10, 2000);
	cr_assert_eq(TINFO(keep, "t", "msgs_in"), 10);
	EVENTUALLY(e2e_info_field(keep, "connected_clients") == 1, 2000);
	cr_assert_eq(INFO(keep, "connected_clients"), 1);
	e2e_close(keep);
}
