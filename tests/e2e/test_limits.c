/* test_limits.c - e2e suite limits: --max-payload, --max-clients,
 * --default-capacity, --threads, many connections, requests too large.
 *
 * Every test starts its own server and ends by stopping it with SIGTERM
 * and asserting exit status 0 (srv_test.h: SRV_TEST and the checks).
 *
 * Run one test: tests/e2e/test_limits -j1 --filter 'limits/max_payload'
 */
#include <stdio.h>
#include <stdlib.h>

#include "srv_test.h"

SRV_TEST(limits, max_payload, "--max-payload", "1024")
{
	struct e2e_client *c = CONN(), *other = CONN();
	PING_OK(other);
	IS_OK(R(c, "CREATE", "t"));
	static char pl[1025];
	memset(pl, 'p', sizeof(pl));
	const char *argv[] = { "PUBLISH", "t", pl };
	size_t lens[] = { 7, 1, 1024 };
	SBIN(c, 3, argv, lens);
	IS_INT(RD(c), 1);
	lens[2] = 1025;
	SBIN(c, 3, argv, lens);
	IS_ERR(RD(c), "ERR Protocol error");
	IS_EOF(c);
	PING_OK(other);
	IS_INT(R(other, "PUBLISH", "t", "small"), 2);
	cr_assert_eq(INFO(other, "max_payload"), 1024);
	cr_assert_eq(INFO(other, "protocol_errors"), 1);
	e2e_close(c);
	e2e_close(other);
}

/* A client that sends a whole payload far over the limit still reads the
 * error: the server answers from the header, then lingers (discarding the
 * rest) instead of closing with unread input, which would reset the
 * connection and could destroy the reply. Repeated to catch the race. */
SRV_TEST(limits, oversized_payload_error_arrives, "--max-payload", "1024")
{
	enum { BIG = 2 << 20 };
	char *big = malloc(BIG);
	cr_assert_not_null(big);
	memset(big, 'o', BIG);
	const char *argv[] = { "PUBLISH", "t", big };
	size_t lens[] = { 7, 1, BIG };
	int got = 0;
	for (int i = 0; i < 5; i++) {
		struct e2e_client *c = CONN();
		if (e2e_send_cmdv(c, 3, argv, lens) == 0) {
			struct e2e_reply *r = e2e_read(c);
			if (r && r->type == E2E_ERROR && strstr(r->str, "ERR Protocol error"))
				got++;
		}
		e2e_close(c);
	}
	free(big);
	cr_assert_eq(got, 5, "only %d of 5 clients read the error reply", got);
	struct e2e_client *q = CONN();
	PING_OK(q);
	cr_assert_eq(INFO(q, "protocol_errors"), 5);
	e2e_close(q);
}

SRV_TEST(limits, max_clients, "--max-clients", "2")
{
	struct e2e_client *a = CONN(), *b = CONN();
	PING_OK(a);
	PING_OK(b);
	struct e2e_client *c = CONN(); /* the kernel accepts; the server refuses */
	struct e2e_reply *r = RD(c);
	IS_ERR(r, "ERR max clients reached");
	IS_EOF(c);
	e2e_close(c);
	PING_OK(a);
	PING_OK(b);
	cr_assert_eq(INFO(a, "rejected_connections"), 1);
	cr_assert_eq(INFO(a, "connected_clients"), 2);
	/* a slot frees when a client leaves */
	e2e_close(b);
	bool in = false;
	for (int tries = 0; tries < 100 && !in; tries++) {
		struct e2e_client *d = CONN();
		SCMD(d, "PING");
		struct e2e_reply *x = RD(d);
		in = x->type == E2E_STATUS && strcmp(x->str, "PONG") == 0;
		if (!in) {
			cr_assert(x->type == E2E_ERROR && strstr(x->str, "max clients"), "%s",
				  e2e_reply_str(x));
			e2e_sleep_ms(20);
		}
		e2e_reply_free(x);
		e2e_close(d);
	}
	cr_assert(in, "no slot after a client disconnected");
	e2e_close(a);
}

SRV_TEST(limits, default_capacity, "--default-capacity", "4K")
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "t"));
	IS_OK(R(c, "CREATE", "u", "CAPACITY", "8K"));
	cr_assert_eq(TINFO(c, "t", "capacity"), 4096);
	cr_assert_eq(TINFO(c, "u", "capacity"), 8192);
	/* a message larger than a topic's capacity is refused, not a crash */
	static char pl[5000];
	memset(pl, 'q', sizeof(pl));
	const char *argv[] = { "PUBLISH", "t", pl };
	size_t lens[] = { 7, 1, sizeof(pl) };
	SBIN(c, 3, argv, lens);
	IS_ERR(RD(c), "ERR message of 5000 bytes is larger than the topic's capacity");
	IS_INT(R(c, "PUBLISH", "t", "fits"), 1);
	e2e_close(c);
}

SRV_TEST(limits, single_thread, "--threads", "1")
{
	struct e2e_client *p = CONN(), *s = CONN();
	cr_assert_eq(INFO(p, "threads"), 1);
	IS_OK(R(p, "CREATE", "t"));
	IS_PUSH3(R(s, "SUBSCRIBE", "t"), "subscribe", "t", 1);
	PUBLISH_N(p, "t", 1, 100, "m%lld", 1);
	for (int i = 1; i <= 100; i++) {
		char want[16];
		snprintf(want, sizeof(want), "m%d", i);
		IS_MSGSTR(RD(s), "t", want);
	}
	e2e_close(s);
	e2e_close(p);
}

/* Hundreds of clients at once, spread over the workers. */
SRV_TEST(limits, many_connections)
{
	enum { N = 300 };
	struct e2e_client *c[N];
	for (int i = 0; i < N; i++)
		c[i] = CONN();
	for (int i = 0; i < N; i++)
		SCMD(c[i], "ECHO", "hi");
	for (int i = 0; i < N; i++)
		IS_BULKSTR(RD(c[i]), "hi");
	cr_assert_eq(INFO(c[0], "connected_clients"), N);
	cr_assert_eq(INFO(c[0], "total_connections_received"), N);
	for (int i = 1; i < N; i++)
		e2e_close(c[i]);
	EVENTUALLY(e2e_info_field(c[0], "connected_clients") == 1, 3000);
	cr_assert_eq(INFO(c[0], "connected_clients"), 1);
	e2e_close(c[0]);
}

/* An incomplete request that outgrows the input limit (2 x max payload +
 * 16 MiB) is refused instead of being buffered without end. */
SRV_TEST(limits, request_too_large, "--max-payload", "1024")
{
	struct e2e_client *c = CONN(), *other = CONN();
	PING_OK(other);
	/* 20,000 arguments of 1 KiB announced as 100,000: ~20 MiB, never complete */
	struct e2e_wbuf b = { 0 };
	static char pl[1024];
	memset(pl, 'L', sizeof(pl));
	const char *argv[20000];
	size_t lens[20000];
	for (int i = 0; i < 20000; i++) {
		argv[i] = pl;
		lens[i] = sizeof(pl);
	}
	e2e_wbuf_cmdv(&b, 20000, argv, lens);
	size_t hdr = (size_t)(strstr(b.p, "\r\n") + 2 - b.p); /* "*20000\r\n" */
	SENDS(c, "*100000\r\n");
	/* the server may close before all of it is sent: a send error is fine */
	(void)e2e_send(c, b.p + hdr, b.len - hdr);
	e2e_wbuf_free(&b);
	struct e2e_reply *r = e2e_read(c);
	cr_assert_not_null(r, "no reply: %s", e2e_last_error());
	IS_ERR(r, "ERR Protocol error: request too large");
	size_t junk = 0;
	cr_assert(e2e_wait_eof(c, 3000, &junk) && junk == 0);
	PING_OK(other);
	e2e_close(c);
	e2e_close(other);
}
