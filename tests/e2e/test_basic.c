/* test_basic.c - e2e suite basic: PING/ECHO/QUIT, inline commands,
 * pipelining, byte-at-a-time input, half-closed clients, CLIENT, HELLO,
 * CONFIG, COMMAND, SELECT, INFO sections and STATS.
 *
 * Every test starts its own server and ends by stopping it with SIGTERM
 * and asserting exit status 0 (srv_test.h: SRV_TEST and the checks).
 *
 * Run one test: tests/e2e/test_basic -j1 --filter 'basic/ping_echo'
 */
#include <stdio.h>
#include <stdlib.h>

#include "srv_test.h"

SRV_TEST(basic, ping_echo)
{
	struct e2e_client *c = CONN();
	IS_STATUS(R(c, "PING"), "PONG");
	IS_BULKSTR(R(c, "PING", "hello world"), "hello world");
	IS_ERR(R(c, "PING", "a", "b"), "ERR wrong number of arguments");
	IS_BULKSTR(R(c, "ECHO", "x"), "x");
	IS_BULKSTR(R(c, "ECHO", ""), "");
	IS_ERR(R(c, "ECHO"), "ERR wrong number of arguments");
	IS_ERR(R(c, "ECHO", "a", "b"), "ERR wrong number of arguments");
	/* names are case-insensitive */
	IS_STATUS(R(c, "ping"), "PONG");
	IS_STATUS(R(c, "PiNg"), "PONG");
	IS_BULKSTR(R(c, "eChO", "y"), "y");
	IS_ERR(R(c, "pUbLiSh", "no-such", "x"), "NOTOPIC");
	IS_PUSH3(R(c, "uNsUbScRiBe"), "unsubscribe", NULL, 0);
	e2e_close(c);
}

SRV_TEST(basic, unknown_command)
{
	struct e2e_client *c = CONN();
	IS_ERR(R(c, "FLUSHALL"), "ERR unknown command 'FLUSHALL'");
	IS_ERR(R(c, "GET", "k"), "ERR unknown command 'GET'");
	/* prefixes, extensions and non-letters next to a name are no match */
	IS_ERR(R(c, "PIN"), "ERR unknown command 'PIN'");
	IS_ERR(R(c, "PINGG"), "ERR unknown command 'PINGG'");
	IS_ERR(R(c, "P@NG"), "ERR unknown command 'P@NG'");
	IS_ERR(R(c, "PUBLISH1", "t", "x"), "ERR unknown command 'PUBLISH1'");
	/* the connection stays usable */
	PING_OK(c);
	e2e_close(c);
}

SRV_TEST(basic, quit)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "QUIT"));
	IS_EOF(c);
	e2e_close(c);
	/* the server is fine */
	c = CONN();
	PING_OK(c);
	e2e_close(c);
}

/* Redis stops reading a client after QUIT: what follows it in the same
 * write is not executed.
 * Regression test (a server bug this test found, since fixed): ringmq runs
 * and answers the requests pipelined after QUIT (+PONG arrives before the
 * close). */
SRV_TEST(basic, quit_ignores_pipelined_rest)
{
	struct e2e_client *c = CONN();
	SENDS(c, "QUIT\r\nPING\r\n");
	IS_OK(RD(c));
	IS_EOF(c);
	e2e_close(c);
}

SRV_TEST(basic, inline_commands)
{
	struct e2e_client *c = CONN();
	SENDS(c, "PING\r\n");
	IS_STATUS(RD(c), "PONG");
	SENDS(c, "PING\n"); /* bare LF, as redis-cli -x / telnet users send */
	IS_STATUS(RD(c), "PONG");
	SENDS(c, "  ping   \r\n");
	IS_STATUS(RD(c), "PONG");
	SENDS(c, "\r\n\r\nPING\r\n"); /* empty lines are ignored */
	IS_STATUS(RD(c), "PONG");
	SENDS(c, "ECHO \"a b\\x41\\n\\t\\\"q\\\"\"\r\n");
	IS_BULKSTR(RD(c), "a bA\n\t\"q\"");
	SENDS(c, "ECHO 'it\\'s'\r\n");
	IS_BULKSTR(RD(c), "it's");
	SENDS(c, "ECHO \"\"\r\n");
	IS_BULKSTR(RD(c), "");
	SENDS(c, "CREATE inl\r\nPUBLISH inl \"x y\"\r\npublish inl z\r\n");
	IS_OK(RD(c));
	IS_INT(RD(c), 1);
	IS_INT(RD(c), 2);
	SENDS(c, "ECHO a b\r\n");
	IS_ERR(RD(c), "ERR wrong number of arguments");
	PING_OK(c);
	e2e_close(c);
}

/* Every request arrives one byte per segment; no reply may come before a
 * request is complete. */
SRV_TEST(basic, one_byte_at_a_time)
{
	struct e2e_client *c = CONN();
	static const struct {
		const char *wire;
		size_t len;
	} reqs[] = {
#define REQ(s) { s, sizeof(s) - 1 }
		REQ("*2\r\n$6\r\nCREATE\r\n$2\r\nbt\r\n"),
		REQ("*3\r\n$7\r\nPUBLISH\r\n$2\r\nbt\r\n$7\r\nA\r\nB\0C\n\r\n"),
		REQ("PING\r\n"),
		REQ("*2\r\n$4\r\nECHO\r\n$3\r\n\r\n\r\r\n"),
#undef REQ
	};
	for (size_t k = 0; k < sizeof(reqs) / sizeof(reqs[0]); k++) {
		for (size_t i = 0; i < reqs[k].len; i++) {
			SEND(c, reqs[k].wire + i, 1);
			if (i + 1 < reqs[k].len)
				cr_assert(!e2e_readable(c, 1),
					  "request %zu: a reply arrived after byte %zu of %zu", k,
					  i + 1, reqs[k].len);
		}
		switch (k) {
		case 0: IS_OK(RD(c)); break;
		case 1: IS_INT(RD(c), 1); break;
		case 2: IS_STATUS(RD(c), "PONG"); break;
		case 3: IS_BULK(RD(c), "\r\n\r", 3); break;
		}
	}
	/* and the payload with CR/LF/NUL went in intact */
	struct e2e_client *s = DURABLE("bt-reader", "bt");
	IS_EMPTY(R(s, "PULL", "bt")); /* subscriptions start at the end */
	static const char *inline_pub = "PUBLISH bt \"A\\r\\nB\\x00C\\n\"\r\n";
	for (const char *p = inline_pub; *p; p++)
		SEND(c, p, 1);
	IS_INT(RD(c), 2);
	struct e2e_reply *r = R(s, "PULL", "bt");
	cr_assert(r->type == E2E_ARRAY && r->n == 1 && r->elem[0]->n == 2 &&
			  is_bulk(r->elem[0]->elem[1], "A\r\nB\0C\n", 7),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	e2e_close(s);
	e2e_close(c);
}

SRV_TEST(basic, pipelining_10000_publish)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "pipe"));
	/* 10,000 requests in one write; replies must be 1..10000 in order */
	PUBLISH_N(c, "pipe", 0, 10000, "payload-%06lld", 1);
	cr_assert_eq(TINFO(c, "pipe", "msgs_in"), 10000);
	cr_assert_eq(INFO(c, "messages_in"), 10000);
	/* mixed pipeline: every kind of reply, in request order */
	SENDS(c,
	      "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*1\r\n$4\r\nNOPE\r\n"
	      "*3\r\n$7\r\nPUBLISH\r\n$4\r\npipe\r\n$1\r\nx\r\n*3\r\n$7\r\nPUBLISH\r\n$2\r\nno\r\n$1\r\nx\r\n"
	      "*2\r\n$6\r\nCLIENT\r\n$7\r\nGETNAME\r\nPING\r\n");
	IS_STATUS(RD(c), "PONG");
	IS_BULKSTR(RD(c), "hi");
	IS_ERR(RD(c), "ERR unknown command");
	IS_INT(RD(c), 10001);
	IS_ERR(RD(c), "NOTOPIC");
	IS_NIL(RD(c));
	IS_STATUS(RD(c), "PONG");
	cr_assert(!e2e_readable(c, 50), "unexpected extra reply");
	e2e_close(c);
}

/* A client that pipelines far more than it reads is paused, not dropped,
 * and gets every reply once it reads. */
SRV_TEST(basic, pipelining_big_backlog)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "big"));
	/* ~1 MB of replies (ECHO of 1000 bytes x 1000) sent without reading
	 * first; the harness's send keeps draining, so nothing deadlocks */
	static char payload[1000];
	memset(payload, 'e', sizeof(payload));
	struct e2e_wbuf b = { 0 };
	for (int i = 0; i < 1000; i++) {
		const char *argv[] = { "ECHO", payload };
		size_t lens[] = { 4, sizeof(payload) };
		e2e_wbuf_cmdv(&b, 2, argv, lens);
	}
	SEND(c, b.p, b.len);
	e2e_wbuf_free(&b);
	for (int i = 0; i < 1000; i++)
		IS_BULK(RD(c), payload, sizeof(payload));
	PING_OK(c);
	e2e_close(c);
}

/* A client that half-closes after sending still gets every reply, then
 * the server closes. */
SRV_TEST(basic, half_close)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "t"));
	struct e2e_wbuf b = { 0 };
	for (int i = 0; i < 100; i++) {
		const char *argv[] = { "PUBLISH", "t", "x" };
		e2e_wbuf_cmdv(&b, 3, argv, NULL);
	}
	SEND(c, b.p, b.len);
	e2e_wbuf_free(&b);
	cr_assert_eq(e2e_shutdown_write(c), 0, "%s", e2e_last_error());
	for (int i = 1; i <= 100; i++)
		IS_INT(RD(c), i);
	IS_EOF(c);
	e2e_close(c);
}

/* The same with megabytes of replies the client does not read yet: the
 * server waits for the socket to drain without burning CPU meanwhile, and
 * the client gets every reply once it reads.
 * Regression test (a server bug this test found, since fixed): once the
 * client's FIN has arrived while output is still pending (paused
 * connection, or output the socket cannot take), EPOLLIN|EPOLLRDHUP stay
 * level-triggered and conn_read() does nothing (paused) or re-reads EOF,
 * so the worker spins at ~100% CPU until the client reads. */
SRV_TEST(basic, half_close_with_backlog_no_spin)
{
	enum { N = 8000 };
	struct e2e_client *c = e2e_connect_rcvbuf(g_srv.port, E2E_DEFAULT_TIMEOUT_MS, 4096);
	cr_assert_not_null(c, "%s", e2e_last_error());
	static char pl[1000];
	memset(pl, 'e', sizeof(pl));
	struct e2e_wbuf b = { 0 };
	for (int i = 0; i < N; i++) {
		const char *argv[] = { "ECHO", pl };
		size_t lens[] = { 4, sizeof(pl) };
		e2e_wbuf_cmdv(&b, 2, argv, lens);
	}
	/* the harness reads (buffers) replies while the socket is full */
	SEND(c, b.p, b.len);
	e2e_wbuf_free(&b);
	cr_assert_eq(e2e_shutdown_write(c), 0, "%s", e2e_last_error());
	long long cpu0 = e2e_proc_cpu_ms(g_srv.pid);
	cr_assert(cpu0 >= 0, "cannot read the server's CPU time");
	e2e_sleep_ms(1000);
	long long used = e2e_proc_cpu_ms(g_srv.pid) - cpu0;
	/* all replies arrive, then EOF */
	for (int i = 0; i < N; i++)
		IS_BULK(RD(c), pl, sizeof(pl));
	IS_EOF(c);
	e2e_close(c);
	cr_assert(
		used < 300,
		"the idle server used %lld ms of CPU in 1 s while a half-closed client had unread replies",
		used);
}

SRV_TEST(basic, client_commands)
{
	struct e2e_client *c = CONN(), *d = CONN();
	IS_NIL(R(c, "CLIENT", "GETNAME"));
	IS_OK(R(c, "CLIENT", "SETNAME", "alice"));
	IS_BULKSTR(R(c, "CLIENT", "GETNAME"), "alice");
	IS_NIL(R(d, "CLIENT", "GETNAME")); /* names are per connection */
	struct e2e_reply *r1 = R(c, "CLIENT", "ID"), *r2 = R(d, "CLIENT", "ID");
	cr_assert(r1->type == E2E_INT && r1->integer > 0, "%s", e2e_reply_str(r1));
	cr_assert(r2->type == E2E_INT && r2->integer > 0, "%s", e2e_reply_str(r2));
	cr_assert_neq(r1->integer, r2->integer, "two connections share id %lld", r1->integer);
	long long id = r1->integer;
	e2e_reply_free(r1);
	e2e_reply_free(r2);
	IS_INT(R(c, "client", "id"), id); /* stable, case-insensitive */
	IS_ERR(R(c, "CLIENT"), "ERR wrong number of arguments");
	IS_ERR(R(c, "CLIENT", "KILL", "x"), "ERR");
	IS_ERR(R(c, "CLIENT", "REPLY", "MAYBE"), "ERR");
	IS_OK(R(c, "CLIENT", "SETINFO", "lib-name", "e2e"));
	struct e2e_reply *r = R(c, "CLIENT", "INFO");
	cr_assert(r->type == E2E_BULK && strstr(r->str, "name=alice"), "%s", e2e_reply_str(r));
	/* Redis 7's fields, each once (redis-py's client_info() indexes them) */
	static const char *fields[] = { "id=",
					" addr=127.0.0.1:",
					" laddr=127.0.0.1:",
					" fd=",
					" age=",
					" idle=",
					" flags=N ",
					" db=0 ",
					" sub=0 ",
					" psub=0 ",
					" ssub=0 ",
					" multi=-1 ",
					" qbuf=",
					" qbuf-free=",
					" argv-mem=",
					" multi-mem=",
					" obl=",
					" oll=",
					" omem=",
					" tot-mem=",
					" events=",
					" cmd=client ",
					" user=default ",
					" redir=-1 ",
					" resp=2" };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		cr_assert(strstr(r->str, fields[i]), "CLIENT INFO lacks '%s': %s", fields[i],
			  r->str);
	e2e_reply_free(r);
	e2e_close(c);
	e2e_close(d);
}

SRV_TEST(basic, client_reply)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "cr"));
	/* OFF: no reply to it nor to anything after, errors included */
	SCMD(c, "CLIENT", "REPLY", "OFF");
	SCMD(c, "PUBLISH", "cr", "a");
	SCMD(c, "PING");
	SCMD(c, "PUBLISH", "nope", "x");
	cr_assert(!e2e_readable(c, 200), "a reply arrived while CLIENT REPLY OFF");
	/* ON replies +OK, and that must be the very next reply */
	IS_OK(R(c, "CLIENT", "REPLY", "ON"));
	IS_INT(R(c, "PUBLISH", "cr", "b"), 2); /* "a" was published as 1 */
	/* SKIP: no reply to SKIP itself nor to the next command only */
	SCMD(c, "CLIENT", "REPLY", "SKIP");
	SCMD(c, "PUBLISH", "cr", "c");
	IS_INT(R(c, "PUBLISH", "cr", "d"), 4);
	IS_STATUS(R(c, "PING"), "PONG");
	cr_assert_eq(TINFO(c, "cr", "msgs_in"), 4);
	e2e_close(c);
}

/* CLIENT REPLY OFF covers a PULL that blocks, too: its answer, when it
 * comes, is not sent (Redis: no reply to any command while OFF).
 * Regression test (a server bug this test found, since fixed): the parked
 * PULL's late answer bypasses CLIENT REPLY OFF - the client reads "*0"
 * before the +OK of CLIENT REPLY ON (cmd_dispatch skips the suppression
 * when c->blocked, and pull_parked() writes the answer later). */
SRV_TEST(basic, client_reply_off_blocked_pull)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = DURABLE("quiet", "t");
	SCMD(s, "CLIENT", "REPLY", "OFF");
	SCMD(s, "PULL", "t", "BLOCK", "200"); /* times out: an empty array, suppressed */
	SCMD(s, "CLIENT", "REPLY", "ON");
	IS_OK(RD(s));
	IS_STATUS(R(s, "PING"), "PONG");
	e2e_close(s);
	e2e_close(p);
}

/* The same with CLIENT REPLY SKIP: the skipped command is the blocking one.
 * Regression test (same cause as above, fixed): the woken PULL's answer is sent. */
SRV_TEST(basic, client_reply_skip_blocked_pull)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = DURABLE("quiet", "t");
	SCMD(s, "CLIENT", "REPLY", "SKIP");
	SCMD(s, "PULL", "t", "BLOCK", "5000");
	e2e_sleep_ms(150); /* let it park (nothing to read: its reply is skipped) */
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1); /* wakes it: the reply is skipped */
	IS_STATUS(R(s, "PING"), "PONG");
	IS_EMPTY(R(s, "PULL", "t")); /* m1 was consumed by the skipped PULL */
	e2e_close(s);
	e2e_close(p);
}

/* Empty multibulk requests are ignored, as Redis does. */
SRV_TEST(basic, empty_requests)
{
	struct e2e_client *c = CONN();
	SENDS(c, "*0\r\n*-1\r\nPING\r\n*0\r\n");
	IS_STATUS(RD(c), "PONG");
	SENDS(c, "*1\r\n$4\r\nPING\r\n");
	IS_STATUS(RD(c), "PONG");
	cr_assert(!e2e_readable(c, 50), "a reply to an empty request");
	e2e_close(c);
}

SRV_TEST(basic, hello)
{
	struct e2e_client *c = CONN();
	struct e2e_reply *r = R(c, "HELLO", "2");
	cr_assert(r->type == E2E_ARRAY && r->n == 14, "%s", e2e_reply_str(r));
	bool server = false, proto = false;
	for (size_t i = 0; i + 1 < r->n; i += 2) {
		if (is_bulkstr(r->elem[i], "server"))
			server = is_bulkstr(r->elem[i + 1], "ringmq");
		if (is_bulkstr(r->elem[i], "proto"))
			proto = r->elem[i + 1]->type == E2E_INT && r->elem[i + 1]->integer == 2;
	}
	cr_assert(server && proto, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	r = R(c, "HELLO");
	cr_assert(r->type == E2E_ARRAY && r->n == 14, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	IS_ERR(R(c, "HELLO", "4"), "NOPROTO");
	IS_ERR(R(c, "HELLO", "x"), "ERR");
	/* as Redis: AUTH is checked (e2e acl for passwords), and a refused
	 * HELLO changes nothing */
	IS_ERR(R(c, "HELLO", "3", "AUTH", "nobody", "secret"),
	       "WRONGPASS invalid username-password pair");
	r = R(c, "HELLO", "2", "SETNAME", "bob");
	cr_assert(r->type == E2E_ARRAY, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	IS_BULKSTR(R(c, "CLIENT", "GETNAME"), "bob");
	/* still RESP2 after a refused HELLO */
	IS_STATUS(R(c, "PING"), "PONG");
	e2e_close(c);
}

/* HELLO 3 (node-redis 5+ sends it on connect): a RESP3 map of Redis 7's
 * fields, then RESP3 replies and '>' pushes for the messages the log
 * stores pre-encoded, across workers; RESP2 connections are untouched. */
SRV_TEST(basic, hello3_resp3_pushes)
{
	struct e2e_client *c = CONN(), *p = CONN(), *two = CONN();
	struct e2e_reply *r = R(c, "HELLO", "3");
	cr_assert(r->type == E2E_ARRAY && r->map && r->n == 14, "%s", e2e_reply_str(r));
	static const char *keys[] = {
		"server", "version", "proto", "id", "mode", "role", "modules"
	};
	for (size_t i = 0; i < 7; i++)
		cr_assert(is_bulkstr(r->elem[2 * i], keys[i]), "key %zu: %s", i, e2e_reply_str(r));
	cr_assert(r->elem[5]->type == E2E_INT && r->elem[5]->integer == 3);
	e2e_reply_free(r);
	IS_OK(R(p, "CREATE", "t3"));
	r = R(c, "SUBSCRIBE", "t3");
	cr_assert(r->push && r->n == 3 && is_bulkstr(r->elem[0], "subscribe"), "%s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
	IS_PUSH3(R(two, "SUBSCRIBE", "t3"), "subscribe", "t3", 1);
	PUBLISH_N(p, "t3", 1, 300, "m%lld", 1);
	for (int i = 1; i <= 300; i++) {
		char want[16];
		snprintf(want, sizeof(want), "m%d", i);
		r = RD(c);
		cr_assert(r->push, "message %d not a push: %s", i, e2e_reply_str(r));
		IS_MSGSTR(r, "t3", want);
		r = RD(two);
		cr_assert(!r->push, "a RESP2 subscriber got a push frame");
		IS_MSGSTR(r, "t3", want);
	}
	/* under RESP3 any command while subscribed; INFO is verbatim */
	IS_STATUS(R(c, "PING"), "PONG");
	cr_assert_eq(INFO(c, "messages_in"), 300);
	e2e_close(two);
	e2e_close(p);
	e2e_close(c);
}

SRV_TEST(basic, redis_housekeeping_commands)
{
	struct e2e_client *c = CONN();
	struct e2e_reply *r = R(c, "CONFIG", "GET", "save");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[0], "save") &&
			  is_bulkstr(r->elem[1], ""),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	r = R(c, "CONFIG", "GET", "appendonly");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[1], "no"), "%s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
	IS_EMPTY(R(c, "CONFIG", "GET", "no-such-parameter"));
	IS_ERR(R(c, "CONFIG", "SET", "save", ""), "ERR");
	IS_EMPTY(R(c, "COMMAND", "DOCS"));
	IS_EMPTY(R(c, "COMMAND", "DOCS", "PUBLISH"));
	IS_OK(R(c, "SELECT", "0"));
	IS_ERR(R(c, "SELECT", "1"), "ERR");
	IS_STATUS(R(c, "RESET"), "RESET");
	e2e_close(c);
}

SRV_TEST(basic, info_sections)
{
	struct e2e_client *c = CONN(), *d = CONN();
	PING_OK(d);
	char *txt = info_text(c, NULL);
	static const char *must[] = { "# Server\r\n",
				      "# Clients\r\n",
				      "# Stats\r\n",
				      "# Memory\r\n",
				      "# Keyspace\r\n",
				      "\r\nused_memory:",
				      "\r\nused_memory_human:",
				      "\r\nblocked_clients:",
				      "\r\ntotal_commands_processed:",
				      "\r\ninstantaneous_ops_per_sec:",
				      "\r\nloading:",
				      "\r\nrejected_connections:",
				      "\r\npubsub_channels:",
				      "\r\npubsub_patterns:",
				      "\r\nredis_version:",
				      "\r\nconnected_clients:",
				      "\r\nmessages_in:",
				      "\r\nmessages_out:",
				      "\r\nslow_subscribers_disconnected:",
				      "\r\nmessages_dropped:",
				      "\r\npublish_rejected_full:",
				      "\r\nprotocol_errors:" };
	for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
		cr_expect(strstr(txt, must[i]), "INFO lacks '%s'", must[i]);
	free(txt);
	cr_assert_eq(INFO(c, "connected_clients"), 2);
	cr_assert_eq(INFO(c, "process_id"), g_srv.pid);
	/* STATS is INFO; a section argument selects */
	struct e2e_reply *r = R(c, "STATS");
	cr_assert(r->type == E2E_BULK && strstr(r->str, "# Stats\r\n") &&
			  strstr(r->str, "# Server\r\n"),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	txt = info_text(c, "stats");
	cr_assert(strstr(txt, "# Stats\r\n") && !strstr(txt, "# Server") &&
			  !strstr(txt, "# Clients"),
		  "INFO stats: %s", txt);
	free(txt);
	/* topic lines */
	IS_OK(R(c, "CREATE", "inf", "CAPACITY", "64K", "ONFULL", "drop-oldest"));
	IS_INT(R(c, "MPUBLISH", "inf", "a", "bb", "ccc"), 3);
	txt = info_text(c, NULL);
	cr_assert(!strstr(txt, "topic_") && !strstr(txt, "# Topics"),
		  "default INFO lists topics: %s", txt);
	free(txt);
	txt = info_text(c, "topics");
	char *line = strstr(txt, "\r\ntopic_inf:");
	cr_assert(line, "no topic line: %s", txt);
	cr_assert(strstr(line, ":msgs_in=3,") && strstr(line, ",bytes_in=6,") &&
			  strstr(line, ",depth=3,") && strstr(line, ",capacity=65536,") &&
			  strstr(line, ",onfull=drop-oldest,") && strstr(line, ",dropped=0,"),
		  "topic line: %.300s", line);
	free(txt);
	cr_assert_eq(INFO(c, "topics"), 1);
	cr_assert_eq(INFO(c, "messages_in"), 3);
	e2e_close(d);
	EVENTUALLY(e2e_info_field(c, "connected_clients") == 1, 2000);
	cr_assert_eq(INFO(c, "connected_clients"), 1);
	e2e_close(c);
}
