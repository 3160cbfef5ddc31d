/* srv_test.h - the Criterion half of the e2e harness: a per-test server
 * fixture and asserting RESP helpers, shared by the suites in tests/e2e
 * (test_cli.c, test_basic.c, ... one file and one ctest entry per suite).
 *
 * harness.h stays free of Criterion (processes and a plain RESP client);
 * this layer turns its failures into assertions that name the test's line.
 *
 * Fixture: every test starts its own server (`ringmq-server --port 0
 * --threads 2 [flags]`), talks to it on 127.0.0.1 and ends by stopping it
 * with SIGTERM and asserting exit status 0. When an assertion fails first,
 * teardown() SIGKILLs the server (by PID) and prints the tail of its stderr
 * log.
 *
 * Tests whose comment says "Regression test" each reproduced a server bug
 * when written; all are fixed.
 *
 * Memory: replies handed to the IS_* checks are freed by them; the rest
 * (RD, R) belong to the test, and teardown() frees what a failed test
 * left (e2e_release_all). Threads: one, the test's.
 */
#ifndef RINGMQ_E2E_SRV_TEST_H
#define RINGMQ_E2E_SRV_TEST_H

#include <criterion/criterion.h>

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"

/* --- fixture --- */

/* The server of the running test (one per test process). */
extern struct e2e_server g_srv;
/* Set by the test when its body ran to its end (no failed assertion):
 * teardown() prints the server's log otherwise. */
extern bool g_done;

/* Criterion .fini of every server test: prints the server's log tail if
 * the test failed, frees clients and replies, kills the server and any
 * other child (by PID). */
void teardown(void);

/* Starts the server with args (NULL-terminated, passed after --port 0);
 * asserts it started. */
void start_server(const char *const *args);

/* Sends sig to the server and asserts it exits with status 0. */
void stop_server_ok(int sig);

/* Defines a test that runs `body` against a fresh server started with
 * --threads 2 plus the given flags, then requires a clean SIGTERM exit. */
#define SRV_TEST(suite, name, ...)                                                            \
	static void suite##_##name##_body(void);                                              \
	Test(suite, name, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))                \
	{                                                                                     \
		start_server((const char *const[]){ "--threads", "2", ##__VA_ARGS__, NULL }); \
		suite##_##name##_body();                                                      \
		stop_server_ok(SIGTERM);                                                      \
		g_done = true;                                                                \
	}                                                                                     \
	static void suite##_##name##_body(void)

/* --- client helpers; the macros pass __LINE__ so failures point at the
 * test line, not at the helper --- */

struct e2e_client *x_conn(int line);
#define CONN() x_conn(__LINE__)

struct e2e_reply *x_read(int line, struct e2e_client *c);
#define RD(c) x_read(__LINE__, (c))

void x_send(int line, struct e2e_client *c, const void *p, size_t n);
#define SEND(c, p, n) x_send(__LINE__, (c), (p), (n))
#define SENDS(c, s) x_send(__LINE__, (c), (s), strlen(s))

void x_sendcmd(int line, struct e2e_client *c, const char *arg0, ...) __attribute__((sentinel));
/* Sends a command without reading its reply. */
#define SCMD(c, ...) x_sendcmd(__LINE__, (c), __VA_ARGS__, NULL)
/* Sends a command and returns its reply (asserted to arrive). */
#define R(c, ...) (x_sendcmd(__LINE__, (c), __VA_ARGS__, NULL), x_read(__LINE__, (c)))

void x_sendbin(int line, struct e2e_client *c, int argc, const char *const *argv,
	       const size_t *lens);
/* A request with binary-safe arguments. */
#define SBIN(c, argc, argv, lens) x_sendbin(__LINE__, (c), (argc), (argv), (lens))

/* The checks below free the reply they are given. */
void x_status(int line, struct e2e_reply *r, const char *s);
#define IS_STATUS(r, s) x_status(__LINE__, (r), (s))
#define IS_OK(r) x_status(__LINE__, (r), "OK")

void x_int(int line, struct e2e_reply *r, long long v);
#define IS_INT(r, v) x_int(__LINE__, (r), (v))

/* An error reply that starts with prefix (e.g. "NOTOPIC", "ERR wrong"). */
void x_err(int line, struct e2e_reply *r, const char *prefix);
#define IS_ERR(r, prefix) x_err(__LINE__, (r), (prefix))

/* An error reply containing sub. */
void x_err_has(int line, struct e2e_reply *r, const char *sub);
#define IS_ERR_HAS(r, sub) x_err_has(__LINE__, (r), (sub))

void x_bulk(int line, struct e2e_reply *r, const void *p, size_t n);
#define IS_BULK(r, p, n) x_bulk(__LINE__, (r), (p), (n))
#define IS_BULKSTR(r, s) x_bulk(__LINE__, (r), (s), strlen(s))

void x_nil(int line, struct e2e_reply *r);
#define IS_NIL(r) x_nil(__LINE__, (r))

void x_empty(int line, struct e2e_reply *r);
#define IS_EMPTY(r) x_empty(__LINE__, (r))

/* r is a bulk string holding exactly the n bytes at p (or the string s);
 * r is not freed. */
bool is_bulk(const struct e2e_reply *r, const void *p, size_t n);
bool is_bulkstr(const struct e2e_reply *r, const char *s);

/* [kind, topic, count], as Redis sends for (un)subscribe; topic NULL means
 * a nil topic. */
void x_push3(int line, struct e2e_reply *r, const char *kind, const char *topic, long long count);
#define IS_PUSH3(r, kind, topic, count) x_push3(__LINE__, (r), (kind), (topic), (count))

/* DSUBSCRIBE's reply for one topic, [[topic, start]]; returns start.
 * Frees r. */
long long x_dsub(int line, struct e2e_reply *r, const char *topic);
#define IS_DSUB(r, topic) x_dsub(__LINE__, (r), (topic))

/* ["message", topic, payload] */
void x_msg(int line, struct e2e_reply *r, const char *topic, const void *p, size_t n);
#define IS_MSG(r, topic, p, n) x_msg(__LINE__, (r), (topic), (p), (n))
#define IS_MSGSTR(r, topic, s) x_msg(__LINE__, (r), (topic), (s), strlen(s))

/* The reply is a PULL result: n pairs [seq, payload] with seq first,
 * first+1, ... and payloads fmt(seq). Frees r. */
void x_pulled(int line, struct e2e_reply *r, long long first, size_t n, const char *fmt);
#define IS_PULLED(r, first, n, fmt) x_pulled(__LINE__, (r), (first), (n), (fmt))

/* The worker serving c (CLIENT INFO's worker=N). */
int x_worker_of(int line, struct e2e_client *c);
#define WORKER_OF(c) x_worker_of(__LINE__, (c))

/* c's connection id (CLIENT ID). */
long long x_client_id(int line, struct e2e_client *c);
#define CLIENT_ID(c) x_client_id(__LINE__, (c))

void x_eof(int line, struct e2e_client *c, int timeout_ms);
/* The server closes c without sending anything more. */
#define IS_EOF(c) x_eof(__LINE__, (c), 3000)

void x_ping(int line, struct e2e_client *c);
#define PING_OK(c) x_ping(__LINE__, (c))

long long x_info(int line, struct e2e_client *c, const char *field);
#define INFO(c, field) x_info(__LINE__, (c), (field))

long long x_tinfo(int line, struct e2e_client *c, const char *topic, const char *key);
#define TINFO(c, topic, key) x_tinfo(__LINE__, (c), (topic), (key))

/* The INFO text (caller frees). */
char *info_text(struct e2e_client *c, const char *section);

/* Publishes count messages fmt(i) for i = first.. in one pipelined write
 * and checks that the replies are the sequence numbers seq0, seq0+1, ... */
void x_publish_n(int line, struct e2e_client *c, const char *topic, long long first, int count,
		 const char *fmt, long long seq0);
#define PUBLISH_N(c, topic, first, count, fmt, seq0) \
	x_publish_n(__LINE__, (c), (topic), (first), (count), (fmt), (seq0))

/* A connection registered as durable subscriber `name` and subscribed to
 * topic (count: the subscription count the reply must show). */
struct e2e_client *x_durable(int line, const char *name, const char *topic, long long count);
#define DURABLE(name, topic) x_durable(__LINE__, (name), (topic), 1)

/* Repeats a check until it holds or E2E_MS(timeout_ms) passes (for effects
 * of another connection's close, which the server handles asynchronously). */
#define EVENTUALLY(cond, timeout_ms)                                           \
	do {                                                                   \
		uint64_t until_ = e2e_now_ms() + (uint64_t)E2E_MS(timeout_ms); \
		while (!(cond) && e2e_now_ms() < until_)                       \
			e2e_sleep_ms(10);                                      \
	} while (0)

#endif
