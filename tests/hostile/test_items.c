/* test_items.c - one regression test per item of issue 12 ("bounded
 * resources and defects found by adversarial testing"), each against a
 * real ringmq-server on 127.0.0.1, each bounded to a few seconds.
 *
 * Every test reproduces its item the way the issue describes it and fails
 * for that reason on main 6dbacd3; all pass since both phases of the
 * hardening landed (core/: items 6, 9, 12; net/: the others). Those whose
 * checks are bounds on RSS, CPU or latency run only against a plain build
 * (tests/hostile/CMakeLists.txt).
 *
 * Run one: tests/hostile/test_hostile_items -j1 --filter 'hostile/item01_*'
 *
 * Limits are small on purpose (--max-clients 2, RLIMIT_AS on the server,
 * 10k-200k topics), so that each failure shows within seconds. Timings are
 * asserted only where the item is a stall (6, 7, 8, 9), with wide margins,
 * and on server CPU time where that is what the item is about.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "hostile.h"

/* --- fixture --- */

static struct e2e_server g_srv;
static bool g_done;

static void teardown(void)
{
	if (!g_done && g_srv.log_path[0]) {
		char tail[4096];
		if (e2e_server_log_tail(&g_srv, tail, sizeof(tail)))
			fprintf(stderr, "--- server stderr (tail) ---\n%s--- end ---\n", tail);
	}
	e2e_release_all();
	e2e_server_kill(&g_srv);
	e2e_kill_children();
	e2e_child_rlimits_clear();
}

static void start(const char *const *args)
{
	cr_assert(e2e_server_start(&g_srv, args, 5000) == 0, "server start: %s", e2e_last_error());
}

static void stop_ok(void)
{
	int st = e2e_server_stop(&g_srv, SIGTERM, 10000);
	cr_assert(st >= 0, "stop: %s", e2e_last_error());
	cr_assert(WIFEXITED(st), "server did not exit normally (wait status 0x%x%s%s)", st,
		  WIFSIGNALED(st) ? ", signal " : "",
		  WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "");
	cr_assert_eq(WEXITSTATUS(st), 0, "server exit status %d", WEXITSTATUS(st));
}

/* A test against a fresh server with --threads 2 plus the given flags,
 * which must then stop cleanly on SIGTERM. */
#define HTEST(name, ...)                                                               \
	static void name##_body(void);                                                 \
	Test(hostile, name, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(60.0))       \
	{                                                                              \
		start((const char *const[]){ "--threads", "2", ##__VA_ARGS__, NULL }); \
		name##_body();                                                         \
		stop_ok();                                                             \
		g_done = true;                                                         \
	}                                                                              \
	static void name##_body(void)

/* --- client helpers --- */

static struct e2e_client *conn(void)
{
	struct e2e_client *c = e2e_connect(g_srv.port, E2E_DEFAULT_TIMEOUT_MS);
	cr_assert_not_null(c, "connect: %s", e2e_last_error());
	return c;
}

static struct e2e_reply *cmdv(struct e2e_client *c, int argc, const char *const *argv)
{
	cr_assert_eq(e2e_send_cmdv(c, argc, argv, NULL), 0, "send: %s", e2e_last_error());
	struct e2e_reply *r = e2e_read(c);
	cr_assert_not_null(r, "%s: no reply: %s", argv[0], e2e_last_error());
	return r;
}
#define R(c, ...)                                                                        \
	cmdv((c), (int)(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *)), \
	     (const char *const[]){ __VA_ARGS__ })

static void expect_status(struct e2e_reply *r, const char *s)
{
	cr_assert(r->type == E2E_STATUS && strcmp(r->str, s) == 0, "expected +%s, got %s", s,
		  e2e_reply_str(r));
	e2e_reply_free(r);
}

static void expect_int(struct e2e_reply *r, long long v)
{
	cr_assert(r->type == E2E_INT && r->integer == v, "expected :%lld, got %s", v,
		  e2e_reply_str(r));
	e2e_reply_free(r);
}

static void expect_err(struct e2e_reply *r, const char *prefix)
{
	cr_assert(r->type == E2E_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0,
		  "expected -%s..., got %s", prefix, e2e_reply_str(r));
	e2e_reply_free(r);
}

/* DSUBSCRIBE's one reply for one topic, [[topic, start]]. */
static void expect_dsubscribed(struct e2e_reply *r, const char *topic)
{
	cr_assert(r->type == E2E_ARRAY && r->n == 1 && r->elem[0]->type == E2E_ARRAY &&
			  r->elem[0]->n == 2 && r->elem[0]->elem[0]->type == E2E_BULK &&
			  strcmp(r->elem[0]->elem[0]->str, topic) == 0,
		  "expected the DSUBSCRIBE reply for %s, got %s", topic, e2e_reply_str(r));
	e2e_reply_free(r);
}

static void ping_ok(struct e2e_client *c)
{
	expect_status(R(c, "PING"), "PONG");
}

static long long info(struct e2e_client *c, const char *field)
{
	long long v = e2e_info_field(c, field);
	cr_assert(v >= 0, "INFO %s: %s", field, e2e_last_error());
	return v;
}

static long long tinfo(struct e2e_client *c, const char *topic, const char *key)
{
	long long v = e2e_info_topic_field(c, topic, key);
	cr_assert(v >= 0, "INFO topic %s %s: %s", topic, key, e2e_last_error());
	return v;
}

static struct e2e_client *durable(const char *name, const char *topic)
{
	struct e2e_client *c = conn();
	expect_status(R(c, "REGISTER", "SUBSCRIBER", name), "OK");
	expect_dsubscribed(R(c, "DSUBSCRIBE", topic), topic);
	return c;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Pipelines the requests in b and reads (and frees) n replies, asserting
 * none is an error. */
static void pipeline(struct e2e_client *c, struct e2e_wbuf *b, size_t n)
{
	cr_assert_eq(e2e_send(c, b->p, b->len), 0, "send: %s", e2e_last_error());
	for (size_t i = 0; i < n; i++) {
		struct e2e_reply *r = e2e_read(c);
		cr_assert_not_null(r, "reply %zu of %zu: %s", i, n, e2e_last_error());
		cr_assert_neq(r->type, E2E_ERROR, "reply %zu: %s", i, e2e_reply_str(r));
		e2e_reply_free(r);
	}
	b->len = 0;
}

/* Creates topics prefix0 .. prefix(n-1) in pipelined batches. */
static void create_many(struct e2e_client *c, const char *prefix, int n, const char *cap)
{
	struct e2e_wbuf b = { 0 };
	char name[64];
	for (int i = 0; i < n;) {
		int k = 0;
		for (; k < 2000 && i < n; k++, i++) {
			snprintf(name, sizeof(name), "%s%d", prefix, i);
			const char *argv[] = { "CREATE", name, "CAPACITY", cap };
			h_cmd(&b, 4, argv);
		}
		pipeline(c, &b, (size_t)k);
	}
	e2e_wbuf_free(&b);
}

/* Server CPU (ms) spent while fn runs. */
static long long server_cpu_ms_of(void (*fn)(void *), void *arg)
{
	long long a = e2e_proc_cpu_ms(g_srv.pid);
	fn(arg);
	long long b = e2e_proc_cpu_ms(g_srv.pid);
	cr_assert(a >= 0 && b >= 0, "no /proc CPU time for the server");
	return b - a;
}

/* The same for the worker threads only: what requests cost, without the
 * background threads (persistence, acceptor) finishing earlier work. */
static long long worker_cpu_ms_of(void (*fn)(void *), void *arg)
{
	long long a = e2e_threads_cpu_ms(g_srv.pid, "rmq-worker");
	fn(arg);
	long long b = e2e_threads_cpu_ms(g_srv.pid, "rmq-worker");
	cr_assert(a >= 0 && b >= 0, "no /proc CPU time for the server's workers");
	return b - a;
}

/* ======================================================================
 * Lock-outs and crashes
 * ====================================================================== */

/* Item 1: consumers that park in PULL ... BLOCK 0 and exit must give their
 * --max-clients slots back: with 2 slots, both parked and gone, a new
 * client must get in (today: "-ERR max clients reached" forever). */
HTEST(item01_parked_pull_eof_frees_slot, "--max-clients", "2")
{
	struct e2e_client *a = conn();
	expect_status(R(a, "CREATE", "quiet"), "OK");
	expect_status(R(a, "REGISTER", "SUBSCRIBER", "ca"), "OK");
	expect_dsubscribed(R(a, "DSUBSCRIBE", "quiet"), "quiet");
	struct e2e_client *b = durable("cb", "quiet");
	cr_assert_eq(e2e_send_cmd(a, "PULL", "quiet", "BLOCK", "0", NULL), 0);
	cr_assert_eq(e2e_send_cmd(b, "PULL", "quiet", "BLOCK", "0", NULL), 0);
	cr_assert(!e2e_readable(a, 100), "PULL BLOCK 0 answered on a quiet topic");
	e2e_close(a);
	e2e_close(b);
	/* The server must notice both EOFs and free the slots. */
	struct e2e_reply *r = NULL;
	uint64_t until = e2e_now_ms() + (uint64_t)E2E_MS(3000);
	do {
		e2e_reply_free(r);
		r = NULL;
		struct e2e_client *c = e2e_connect(g_srv.port, 1000);
		if (c) {
			r = e2e_cmd(c, "PING", NULL);
			e2e_close(c);
		}
		if (r && r->type == E2E_STATUS)
			break;
		e2e_sleep_ms(50);
	} while (e2e_now_ms() < until);
	cr_assert(r && r->type == E2E_STATUS && strcmp(r->str, "PONG") == 0,
		  "after two parked consumers exited, a new client got %s",
		  r ? e2e_reply_str(r) : "nothing");
	e2e_reply_free(r);
	struct e2e_client *c = conn();
	/* the PING clients above closed too: their EOFs may still be on
	 * their way to the server */
	long long n = 0;
	for (uint64_t end = e2e_now_ms() + (uint64_t)E2E_MS(3000); e2e_now_ms() < end;
	     e2e_sleep_ms(20))
		if ((n = info(c, "connected_clients")) == 1)
			break;
	cr_assert_eq(n, 1);
	/* and their durable subscribers are detached (--subscriber-ttl can
	 * expire them) */
	struct e2e_reply *t = R(c, "INFO", "subscribers");
	cr_assert(t->type == E2E_BULK && strstr(t->str, "attached=yes") == NULL, "%s", t->str);
	e2e_reply_free(t);
}

/* Item 2: a live subscriber with unread messages that keeps sending
 * requests must not grow the server without limit: it sends up to 256 MiB
 * of PING while never reading; the server's peak RSS may grow by at most
 * 64 MiB (today it reads everything in: +256 MiB). */
HTEST(item02_deaf_subscriber_requests_bounded)
{
	struct e2e_client *p = conn();
	expect_status(R(p, "CREATE", "t", "CAPACITY", "64M"), "OK");
	int fd = h_raw_connect(g_srv.port, 4096);
	cr_assert_geq(fd, 0);
	static const char sub[] = "*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nt\r\n";
	cr_assert_eq(h_raw_send(fd, sub, sizeof(sub) - 1, 1000), sizeof(sub) - 1);
	e2e_sleep_ms(100);
	/* a backlog of unread messages: 8 MiB */
	static char pl[65536];
	memset(pl, 'm', sizeof(pl));
	struct e2e_wbuf b = { 0 };
	for (int i = 0; i < 128; i++) {
		const char *argv[] = { "PUBLISH", "t", pl };
		size_t lens[] = { 7, 1, sizeof(pl) };
		e2e_wbuf_cmdv(&b, 3, argv, lens);
	}
	pipeline(p, &b, 128);
	e2e_wbuf_free(&b);
	long long rss0 = h_proc_kib(g_srv.pid, "VmRSS");
	static char pings[1 << 20];
	for (size_t i = 0; i + 14 <= sizeof(pings); i += 14)
		memcpy(pings + i, "*1\r\n$4\r\nPING\r\n", 14);
	size_t sent = 0;
	uint64_t until = e2e_now_ms() + 4000;
	while (sent < (256u << 20) && e2e_now_ms() < until) {
		size_t n = h_raw_send(fd, pings, sizeof(pings) / 14 * 14, 300);
		sent += n;
		if (n < sizeof(pings) / 14 * 14)
			break; /* the server stopped reading: good */
	}
	long long hwm = h_proc_kib(g_srv.pid, "VmHWM");
	cr_log_info("sent %zu MiB of PING; RSS %lld KiB before, peak %lld KiB", sent >> 20, rss0,
		    hwm);
	cr_assert(
		hwm - rss0 < 64 * 1024,
		"server RSS grew from %lld to %lld KiB while a deaf subscriber sent %zu MiB of PING",
		rss0, hwm, sent >> 20);
	ping_ok(p);
	close(fd);
}

/* Item 3: PULL replies are streamed with the bounded output of live
 * delivery: 8 durable subscribers each PULL a 40 x 1 MB backlog with COUNT
 * 100000 and do not read; the server's peak RSS may grow by at most
 * 8 x 8 MiB (today each reply is built whole: about +32 MiB each). */
HTEST(item03_pull_reply_bounded_output)
{
	struct e2e_client *p = conn();
	expect_status(R(p, "CREATE", "backlog", "CAPACITY", "64M"), "OK");
	enum { NSUB = 8 };
	int fds[NSUB];
	for (int i = 0; i < NSUB; i++) {
		char name[16];
		snprintf(name, sizeof(name), "slow%d", i);
		e2e_close(durable(name, "backlog")); /* subscribed, detached */
	}
	static char pl[1000000];
	memset(pl, 'b', sizeof(pl));
	for (int i = 0; i < 40; i++) {
		const char *argv[] = { "PUBLISH", "backlog", pl };
		size_t lens[] = { 7, 7, sizeof(pl) };
		cr_assert_eq(e2e_send_cmdv(p, 3, argv, lens), 0);
		expect_int(e2e_read(p), i + 1);
	}
	long long rss0 = h_proc_kib(g_srv.pid, "VmRSS");
	for (int i = 0; i < NSUB; i++) {
		fds[i] = h_raw_connect(g_srv.port, 4096);
		cr_assert_geq(fds[i], 0);
		char req[256];
		int n = snprintf(
			req, sizeof(req),
			"*3\r\n$8\r\nREGISTER\r\n$10\r\nSUBSCRIBER\r\n$5\r\nslow%d\r\n"
			"*4\r\n$4\r\nPULL\r\n$7\r\nbacklog\r\n$5\r\nCOUNT\r\n$6\r\n100000\r\n",
			i);
		cr_assert_eq(h_raw_send(fds[i], req, (size_t)n, 1000), (size_t)n);
	}
	e2e_sleep_ms(500);
	ping_ok(p);
	long long hwm = h_proc_kib(g_srv.pid, "VmHWM");
	cr_log_info("RSS %lld KiB before the PULLs, peak %lld KiB", rss0, hwm);
	cr_assert(hwm - rss0 < NSUB * 8 * 1024,
		  "%d unread PULL replies grew the server from %lld to %lld KiB", NSUB, rss0, hwm);
	for (int i = 0; i < NSUB; i++)
		close(fds[i]);
}

/* Item 4a: a request half-sent behind a parked PULL is still subject to
 * --frame-timeout (today the parked connection is exempt and stays). */
HTEST(item04_half_request_behind_parked_pull_times_out, "--frame-timeout", "1")
{
	struct e2e_client *p = conn();
	expect_status(R(p, "CREATE", "quiet"), "OK");
	int fd = h_raw_connect(g_srv.port, 0);
	cr_assert_geq(fd, 0);
	static const char req[] = "*3\r\n$8\r\nREGISTER\r\n$10\r\nSUBSCRIBER\r\n$2\r\nhp\r\n"
				  "*2\r\n$10\r\nDSUBSCRIBE\r\n$5\r\nquiet\r\n"
				  "*4\r\n$4\r\nPULL\r\n$5\r\nquiet\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n"
				  "*3\r\n$7\r\nPUBLISH\r\n$5\r\nquiet\r\n$1000\r\nhalf";
	cr_assert_eq(h_raw_send(fd, req, sizeof(req) - 1, 1000), sizeof(req) - 1);
	cr_assert(h_raw_closed_within(fd, E2E_MS(4000)),
		  "a half-sent request behind a parked PULL outlived --frame-timeout 1 by 3 s");
	close(fd);
	ping_ok(p);
}

/* Item 4b: no server-wide bound on client buffers: 64 connections each
 * sending 15 MiB of an unfinished MPUBLISH within the frame timeout must
 * not take down a server limited to 1 GiB of address space (today it
 * aborts: "out of memory allocating ..."). The offenders may be shed with
 * an error; the server must live and answer. */
Test(hostile, item04_input_budget_sheds_not_dies, .fini = teardown,
     .timeout = E2E_TEST_TIMEOUT(60.0))
{
	e2e_child_rlimit(RLIMIT_AS, 1ULL << 30);
	start((const char *const[]){ "--threads", "2", "--frame-timeout", "20", NULL });
	enum { NC = 64 };
	static int fds[NC];
	static char chunk[1 << 20];
	memset(chunk, 'x', sizeof(chunk));
	/* "*20 MPUBLISH t" then 15 of its 18 payloads of 1,000,000 bytes */
	for (int i = 0; i < NC; i++) {
		fds[i] = h_raw_connect(g_srv.port, 0);
		cr_assert_geq(fds[i], 0, "connection %d", i);
		static const char hdr[] = "*20\r\n$8\r\nMPUBLISH\r\n$1\r\nt\r\n";
		h_raw_send(fds[i], hdr, sizeof(hdr) - 1, 1000);
	}
	size_t sent = 0;
	static bool stuck[NC]; /* a send that stalled: stop there, well-formed so far */
	for (int k = 0; k < 15; k++) {
		for (int i = 0; i < NC; i++) {
			static const char bh[] = "$1000000\r\n";
			if (stuck[i] ||
			    h_raw_send(fds[i], bh, sizeof(bh) - 1, 500) < sizeof(bh) - 1) {
				stuck[i] = true;
				continue;
			}
			size_t n = h_raw_send(fds[i], chunk, 1000000, 500);
			sent += n;
			if (n < 1000000 || h_raw_send(fds[i], "\r\n", 2, 500) < 2)
				stuck[i] = true;
		}
		siginfo_t si = { .si_pid = 0 };
		if (waitid(P_PID, (id_t)g_srv.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid)
			break; /* died: stop sending, report below */
	}
	cr_log_info("sent %zu MiB of unfinished MPUBLISH over %d connections", sent >> 20, NC);
	e2e_sleep_ms(300);
	int st;
	pid_t w = waitpid(g_srv.pid, &st, WNOHANG);
	char tail[2048] = "";
	e2e_server_log_tail(&g_srv, tail, sizeof(tail));
	cr_assert_eq(
		w, 0,
		"the server died (wait status 0x%x) under %d x 15 MiB of unfinished requests:\n%s",
		w > 0 ? st : 0, NC, tail);
	long long ms = h_ping_ms(g_srv.port, 3000);
	cr_assert(ms >= 0, "server alive but not answering: %s", e2e_last_error());
	for (int i = 0; i < NC; i++)
		close(fds[i]);
	stop_ok();
	g_done = true;
}

/* Item 5: a takeover is reported at once to the previous owner even while
 * it is parked in PULL BLOCK 0 on a quiet topic (today it hears nothing
 * until someone publishes). */
HTEST(item05_takeover_wakes_parked_owner)
{
	struct e2e_client *p = conn();
	expect_status(R(p, "CREATE", "quiet"), "OK");
	struct e2e_client *a = durable("owner", "quiet");
	cr_assert_eq(e2e_send_cmd(a, "PULL", "quiet", "BLOCK", "0", NULL), 0);
	cr_assert(!e2e_readable(a, 100), "PULL BLOCK 0 answered on a quiet topic");
	struct e2e_client *b = conn();
	expect_status(R(b, "REGISTER", "SUBSCRIBER", "owner"), "OK");
	cr_assert(e2e_readable(a, E2E_MS(2000)), "the parked owner was not told of the takeover");
	struct e2e_reply *r = e2e_read(a);
	cr_assert(r && r->type == E2E_ERROR && strstr(r->str, "taken over"), "got %s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
}

/* ======================================================================
 * Worker stalls
 * ====================================================================== */

/* Item 6: one connection subscribing 40,000 topics in one SUBSCRIBE must
 * not hold its worker: a PING sent on another connection of the same
 * worker (--threads 1) right after it is answered within 1 s (today the
 * live path took 3.6-5.8 s, a PING waited up to 6.4 s). Live (SUBSCRIBE,
 * one reply per topic) and durable (DSUBSCRIBE, one reply). */
static void subscribe_many_and_ping(bool durable_path)
{
	enum { N = 40000 };
	struct e2e_client *adm = conn();
	create_many(adm, "s.", N, "4K");
	struct e2e_client *s = conn();
	if (durable_path)
		expect_status(R(s, "REGISTER", "SUBSCRIBER", "wide"), "OK");
	const char **argv = malloc((N + 1) * sizeof(*argv));
	char(*names)[16] = malloc(N * sizeof(*names));
	argv[0] = durable_path ? "DSUBSCRIBE" : "SUBSCRIBE";
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "s.%d", i);
		argv[i + 1] = names[i];
	}
	struct e2e_wbuf b = { 0 };
	e2e_wbuf_cmdv(&b, N + 1, argv, NULL);
	cr_assert_eq(e2e_send(s, b.p, b.len), 0);
	e2e_wbuf_free(&b);
	e2e_sleep_ms(20); /* the SUBSCRIBE first, then the PING behind it */
	uint64_t t0 = now_us();
	ping_ok(adm);
	uint64_t ping_us = now_us() - t0;
	for (int i = 0; i < (durable_path ? 1 : N); i++) {
		struct e2e_reply *r = e2e_read(s);
		if (durable_path)
			cr_assert(r && r->type == E2E_ARRAY && r->n == N &&
					  r->elem[N - 1]->type == E2E_ARRAY &&
					  strcmp(r->elem[N - 1]->elem[0]->str, names[N - 1]) == 0,
				  "DSUBSCRIBE reply: %s", r ? "not one entry per topic" : "none");
		else
			cr_assert(r && r->type == E2E_ARRAY && r->n == 3 &&
					  r->elem[2]->integer == i + 1,
				  "subscribe reply %d: %s", i, e2e_reply_str(r));
		e2e_reply_free(r);
	}
	uint64_t all_us = now_us() - t0;
	cr_log_info("%s: PING behind SUBSCRIBE of %d topics: %.1f ms; all replies %.1f ms",
		    durable_path ? "durable" : "live", N, ping_us / 1e3, all_us / 1e3);
	cr_assert_lt(ping_us, (uint64_t)E2E_MS(1000) * 1000,
		     "a PING waited %.0f ms behind one SUBSCRIBE of %d topics", ping_us / 1e3, N);
	free(argv);
	free(names);
}

/* Memory topics: 40,000 disk topics would need a descriptor each (their
 * log directories) beyond this machine's 20,000; worker stalls are the
 * point here. The subscriber's file is still written (once). */
HTEST(item06_live_subscribe_many, "--threads", "1", "--storage", "memory")
{
	subscribe_many_and_ping(false);
}

HTEST(item06_durable_subscribe_many, "--threads", "1", "--storage", "memory")
{
	subscribe_many_and_ping(true);
}

/* Item 7: parked pullers must not tax unrelated requests: with 4,000
 * connections parked in PULL BLOCK on one worker (--threads 1), 4,000
 * PINGs may cost at most twice the worker CPU they cost without them
 * (today every loop iteration walks every parked connection: 80-150 us
 * per PING with 8,000 parked instead of 20). The worker threads are
 * measured, not the process: the persistence thread may still be creating
 * the 4,000 new subscribers' files, which costs the PINGs nothing. */
struct pings {
	struct e2e_client *c;
	int n;
};

static void run_pings(void *arg)
{
	struct pings *p = arg;
	for (int i = 0; i < p->n; i++)
		ping_ok(p->c);
}

HTEST(item07_parked_pullers_do_not_tax_requests, "--threads", "1")
{
	enum { NPARK = 4000, NPING = 4000 };
	struct e2e_client *c = conn();
	expect_status(R(c, "CREATE", "quiet"), "OK");
	struct pings pg = { c, NPING };
	long long base = worker_cpu_ms_of(run_pings, &pg);
	static int fds[NPARK];
	for (int i = 0; i < NPARK; i++) {
		fds[i] = h_raw_connect(g_srv.port, 0);
		cr_assert_geq(fds[i], 0, "connection %d: %s", i, strerror(errno));
		char req[256];
		int n = snprintf(req, sizeof(req),
				 "*3\r\n$8\r\nREGISTER\r\n$10\r\nSUBSCRIBER\r\n$6\r\np%05d\r\n"
				 "*2\r\n$10\r\nDSUBSCRIBE\r\n$5\r\nquiet\r\n"
				 "*4\r\n$4\r\nPULL\r\n$5\r\nquiet\r\n$5\r\nBLOCK\r\n$6\r\n%s\r\n",
				 i, i % 2 ? "000000" : "600000");
		cr_assert_eq(h_raw_send(fds[i], req, (size_t)n, 1000), (size_t)n);
	}
	/* all parked (each got its REGISTER and SUBSCRIBE replies) */
	e2e_sleep_ms(500);
	ping_ok(c);
	long long with = worker_cpu_ms_of(run_pings, &pg);
	cr_log_info("worker CPU for %d PINGs: %lld ms alone, %lld ms with %d parked pullers", NPING,
		    base, with, NPARK);
	cr_assert(with <= 2 * base + 20,
		  "%d PINGs cost %lld ms of worker CPU with %d parked pullers, %lld without", NPING,
		  with, NPARK, base);
	for (int i = 0; i < NPARK; i++)
		close(fds[i]);
}

/* Item 8: with 200,000 topics, INFO sections that show no topic answer in
 * milliseconds, and TOPICS pages like SCAN: TOPICS cursor [COUNT n]
 * [MATCH pattern] -> [next-cursor, [names]], the whole table in pages of
 * about n, every topic exactly once (today INFO walks every topic for
 * every section, 0.2-0.4 s at 500k, and TOPICS takes no arguments and
 * lists everything at once). */
static uint64_t timed_info_us(struct e2e_client *c, const char *section)
{
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < 3; i++) {
		uint64_t t0 = now_us();
		struct e2e_reply *r = R(c, "INFO", section);
		uint64_t d = now_us() - t0;
		cr_assert_eq(r->type, E2E_BULK, "INFO %s: %s", section, e2e_reply_str(r));
		e2e_reply_free(r);
		if (d < best)
			best = d;
	}
	return best;
}

/* Memory topics: this item is about paging, not storage. Disk topics no
 * longer hold descriptors, but each maps at least one segment file, and
 * 200,000 mappings exceed the default vm.max_map_count (65530); creating
 * them also runs at about 1,000-2,000 CREATE/s on this 2-core machine (a
 * file created, preallocated and mapped each: tests/e2e persist/
 * many_topics_few_fds covers 5,000 disk topics). */
HTEST(item08_info_and_topics_page, "--threads", "1", "--storage", "memory")
{
	enum { N = 200000 };
	struct e2e_client *c = conn();
	create_many(c, "p.", N, "4K");
	uint64_t clients = timed_info_us(c, "clients"), stats = timed_info_us(c, "stats");
	cr_log_info("with %d topics: INFO clients %.1f ms, INFO stats %.1f ms", N, clients / 1e3,
		    stats / 1e3);
	cr_assert_lt(clients, 20000u, "INFO clients took %.1f ms with %d topics", clients / 1e3, N);
	cr_assert_lt(stats, 20000u, "INFO stats took %.1f ms with %d topics", stats / 1e3, N);
	cr_assert_eq(info(c, "topics"), N);
	/* TOPICS pages */
	static unsigned char seen[N];
	char cursor[32] = "0";
	long long pages = 0, total = 0;
	do {
		struct e2e_reply *r = R(c, "TOPICS", cursor, "COUNT", "1000");
		cr_assert(r->type == E2E_ARRAY && r->n == 2 && r->elem[0]->type == E2E_BULK &&
				  r->elem[1]->type == E2E_ARRAY,
			  "TOPICS %s COUNT 1000: %s", cursor, e2e_reply_str(r));
		cr_assert_leq(r->elem[1]->n, 2000, "a page of %zu for COUNT 1000", r->elem[1]->n);
		for (size_t i = 0; i < r->elem[1]->n; i++) {
			long k = strtol(r->elem[1]->elem[i]->str + 2, NULL, 10);
			cr_assert(k >= 0 && k < N && !seen[k], "%s twice",
				  r->elem[1]->elem[i]->str);
			seen[k] = 1;
			total++;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->elem[0]->str);
		e2e_reply_free(r);
		cr_assert_lt(++pages, 100000);
	} while (strcmp(cursor, "0") != 0);
	cr_assert_eq(total, N, "TOPICS pages listed %lld of %d topics", total, N);
	/* MATCH */
	struct e2e_reply *r = R(c, "TOPICS", "0", "COUNT", "1000000", "MATCH", "p.1999*");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && r->elem[1]->type == E2E_ARRAY, "%s",
		  e2e_reply_str(r));
	/* p.1999, p.19990-p.19999, p.199900-p.199999 (N is 200,000) */
	cr_assert_eq(r->elem[1]->n, 111, "MATCH p.1999*: %s", e2e_reply_str(r));
	e2e_reply_free(r);
}

/* Item 9: hash flooding. 10,000 names crafted to have the same hash as
 * "orders" under the old, unkeyed hash (computed here) must not make
 * PUBLISH orders slower than PUBLISH to an ordinary topic: server CPU for
 * 5,000 PUBLISH orders at most 1.5 x that of 5,000 PUBLISH control (today:
 * every lookup of "orders" walks a chain of 10,000 nodes). */
static inline uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

#define FNV_P 0x100000001b3ULL
#define FNV_C 0xcbf29ce484222325ULL

static uint64_t old_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = FNV_C ^ n;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = (h ^ w) * FNV_P;
		h ^= h >> 29;
		s += 8;
		n -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * FNV_P;
	h = fmix64(h);
	return h ? h : 1;
}

/* n 16-byte names with the old hash of victim (<= 7 bytes): see
 * tests/test_hash.c for the derivation. */
static void craft(const char *victim, char (*names)[16], size_t n)
{
	size_t vn = strlen(victim);
	uint64_t vw = 0;
	memcpy(&vw, victim, vn);
	uint64_t pinv = FNV_P;
	for (int i = 0; i < 6; i++)
		pinv *= 2 - FNV_P * pinv;
	uint64_t x = ((FNV_C ^ vn ^ vw) * FNV_P) * pinv;
	uint64_t want = (x ^ (x >> 29) ^ (x >> 58)) * pinv;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	for (size_t made = 0; made < n;) {
		char w1[8];
		for (int i = 0; i < 8; i++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			w1[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[seed % 36];
		}
		uint64_t a;
		memcpy(&a, w1, 8);
		a = (FNV_C ^ 16 ^ a) * FNV_P;
		a ^= a >> 29;
		uint64_t w2 = a ^ want;
		unsigned char b[8];
		memcpy(b, &w2, 8);
		bool ok = true;
		for (int i = 0; i < 8; i++)
			ok = ok && b[i] > ' ' && b[i] != 0x7f;
		if (!ok)
			continue;
		memcpy(names[made], w1, 8);
		memcpy(names[made] + 8, b, 8);
		cr_assert_eq(old_hash(names[made], 16), old_hash(victim, vn));
		made++;
	}
}

struct pubs {
	struct e2e_client *c;
	const char *topic;
	int n;
};

static void run_publishes(void *arg)
{
	struct pubs *p = arg;
	for (int i = 0; i < p->n; i++) {
		struct e2e_reply *r = R(p->c, "PUBLISH", p->topic, "x");
		cr_assert_eq(r->type, E2E_INT, "%s", e2e_reply_str(r));
		e2e_reply_free(r);
	}
}

/* Memory topics: the measure is the server's CPU per PUBLISH, and with
 * 10,000 fresh disk topics the persistence thread's flushes of them land
 * in whichever half of the measurement they happen to fall. */
HTEST(item09_hash_flooding, "--threads", "1", "--storage", "memory")
{
	enum { NCRAFT = 10000, NPUB = 5000 };
	static char names[NCRAFT][16];
	craft("orders", names, NCRAFT);
	struct e2e_client *c = conn();
	expect_status(R(c, "CREATE", "orders", "CAPACITY", "1M", "ONFULL", "drop-oldest"), "OK");
	expect_status(R(c, "CREATE", "control", "CAPACITY", "1M", "ONFULL", "drop-oldest"), "OK");
	struct e2e_wbuf b = { 0 };
	for (int i = 0; i < NCRAFT; i++) {
		const char *argv[] = { "CREATE", names[i], "CAPACITY", "4K" };
		size_t lens[] = { 6, 16, 8, 2 };
		e2e_wbuf_cmdv(&b, 4, argv, lens);
	}
	pipeline(c, &b, NCRAFT);
	e2e_wbuf_free(&b);
	struct pubs victim = { c, "orders", NPUB }, control = { c, "control", NPUB };
	long long v = 0, k = 0;
	for (int round = 0; round < 2; round++) { /* interleaved: same load on both */
		k += server_cpu_ms_of(run_publishes, &control);
		v += server_cpu_ms_of(run_publishes, &victim);
	}
	cr_log_info("server CPU for %d PUBLISH: %lld ms to the victim, %lld ms to the control",
		    2 * NPUB, v, k);
	cr_assert(v <= k * 3 / 2 + 20,
		  "PUBLISH orders cost %lld ms of server CPU, PUBLISH control %lld ms", v, k);
}

/* ======================================================================
 * Wrong answers
 * ====================================================================== */

/* Item 10: MPUBLISH must not hide what it stored: either all of a request's
 * messages are stored and the reply is the last sequence number, or none
 * is and the reply is an error (today 100 x 1000 B into a 64 KiB ONFULL
 * reject topic stored 55 and replied only -FULL; a too-big message in the
 * middle left those before it stored). */
static void check_mpublish_reply(struct e2e_client *c, const char *topic, long long before,
				 struct e2e_reply *r)
{
	long long after = tinfo(c, topic, "msgs_in");
	if (r->type == E2E_INT)
		cr_assert_eq(r->integer, after,
			     "MPUBLISH replied %lld but the topic's last message is %lld",
			     r->integer, after);
	else
		cr_assert_eq(after, before, "MPUBLISH replied %s yet stored %lld message(s)",
			     e2e_reply_str(r), after - before);
	e2e_reply_free(r);
}

HTEST(item10_mpublish_all_or_nothing)
{
	struct e2e_client *c = conn();
	expect_status(R(c, "CREATE", "small", "CAPACITY", "64K", "ONFULL", "reject"), "OK");
	struct e2e_client *d = durable("holder", "small");
	static char pl[1000];
	memset(pl, 'z', sizeof(pl));
	const char *argv[102];
	size_t lens[102];
	argv[0] = "MPUBLISH";
	lens[0] = 8;
	argv[1] = "small";
	lens[1] = 5;
	for (int i = 2; i < 102; i++) {
		argv[i] = pl;
		lens[i] = sizeof(pl);
	}
	cr_assert_eq(e2e_send_cmdv(c, 102, argv, lens), 0);
	check_mpublish_reply(c, "small", 0, e2e_read(c));
	/* a message bigger than the capacity in the middle */
	expect_status(R(c, "CREATE", "mid", "CAPACITY", "4K"), "OK");
	static char big[8000];
	memset(big, 'B', sizeof(big));
	const char *a2[] = { "MPUBLISH", "mid", "one", "two", big, "four" };
	size_t l2[] = { 8, 3, 3, 3, sizeof(big), 4 };
	cr_assert_eq(e2e_send_cmdv(c, 6, a2, l2), 0);
	check_mpublish_reply(c, "mid", 0, e2e_read(c));
	e2e_close(d);
}

/* Item 11: --max-payload limits payloads, not command names or topic
 * names (today --max-payload 6 makes "PUBLISH" itself a protocol error,
 * and --max-payload 100 rejects 200-byte topic names). */
HTEST(item11_max_payload_is_for_payloads, "--max-payload", "6")
{
	struct e2e_client *c = conn();
	expect_status(R(c, "CREATE", "t"), "OK");
	expect_int(R(c, "PUBLISH", "t", "abc"), 1);
	expect_int(R(c, "MPUBLISH", "t", "de", "fghijk"), 3);
	char name[201];
	memset(name, 'n', 200);
	name[200] = '\0';
	expect_status(R(c, "CREATE", name), "OK");
	expect_int(R(c, "PUBLISH", name, "x"), 1);
	/* payloads are still limited */
	struct e2e_reply *r = R(c, "PUBLISH", "t", "1234567");
	cr_assert_eq(r->type, E2E_ERROR, "a 7-byte payload over --max-payload 6: %s",
		     e2e_reply_str(r));
	e2e_reply_free(r);
}

/* Item 12: small capacities are honoured: CAPACITY 1K retains at most
 * 1,024 bytes, 4K at most 4,096 (today both retained 8,192). */
HTEST(item12_small_capacity)
{
	struct e2e_client *c = conn();
	static const char *caps[][2] = { { "c1k", "1K" }, { "c4k", "4K" } };
	for (int k = 0; k < 2; k++) {
		expect_status(
			R(c, "CREATE", caps[k][0], "CAPACITY", caps[k][1], "ONFULL", "drop-oldest"),
			"OK");
		for (int i = 0; i < 200; i++) {
			struct e2e_reply *r =
				R(c, "PUBLISH", caps[k][0],
				  "fifty-bytes-of-payload-fifty-bytes-of-payload-50b");
			cr_assert_eq(r->type, E2E_INT, "%s", e2e_reply_str(r));
			e2e_reply_free(r);
		}
		long long cap = tinfo(c, caps[k][0], "capacity");
		long long ret = tinfo(c, caps[k][0], "retained_bytes");
		cr_assert_leq(ret, cap, "CAPACITY %s retains %lld bytes", caps[k][1], ret);
		cr_assert_gt(tinfo(c, caps[k][0], "depth"), 0);
	}
}

/* Item 13: SIGHUP and SIGUSR1 do not kill the broker (today: killed at
 * once, status 129 / 138, no log, no graceful close). */
HTEST(item13_sighup_sigusr1_survive)
{
	struct e2e_client *c = conn();
	cr_assert_eq(kill(g_srv.pid, SIGHUP), 0);
	e2e_sleep_ms(200);
	cr_assert_eq(kill(g_srv.pid, SIGUSR1), 0);
	e2e_sleep_ms(200);
	int st;
	cr_assert_eq(waitpid(g_srv.pid, &st, WNOHANG), 0,
		     "the server died of SIGHUP/SIGUSR1 (status 0x%x)", st);
	ping_ok(c);
}

/* Item 14: TCP keepalive on client connections, configurable: started
 * with --tcp-keepalive 7, the server's side of an idle connection runs the
 * keepalive timer (timer 2 in /proc/net/tcp) due within 7 s (today the
 * flag does not exist, and no keepalive is set). */

/* Fields of a /proc/net/tcp line: "sl: local rem st tx:rx tr:when ...",
 * addresses as HEX_IP:HEX_PORT, numbers in hex. */
static int keepalive_timer_of(int port, long long *when_ms)
{
	static const char *files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	for (int f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "r");
		if (!fp)
			continue;
		char line[512];
		while (fgets(line, sizeof(line), fp)) {
			char *save = NULL, *tok[6];
			int nt = 0;
			for (char *t = strtok_r(line, " \t\n", &save); t && nt < 6;
			     t = strtok_r(NULL, " \t\n", &save))
				tok[nt++] = t;
			if (nt < 6)
				continue;
			char *colon = strrchr(tok[1], ':'), *tcolon = strchr(tok[5], ':');
			if (!colon || !tcolon)
				continue;
			unsigned long lport = strtoul(colon + 1, NULL, 16),
				      st = strtoul(tok[3], NULL, 16);
			if ((int)lport != port || st != 1) /* the server's side, ESTABLISHED */
				continue;
			unsigned long tr = strtoul(tok[5], NULL, 16);
			unsigned long long when = strtoull(tcolon + 1, NULL, 16);
			fclose(fp);
			*when_ms =
				(long long)(when * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK));
			return (int)tr;
		}
		fclose(fp);
	}
	return -1;
}

HTEST(item14_tcp_keepalive, "--tcp-keepalive", "7")
{
	struct e2e_client *c = conn();
	ping_ok(c);
	long long when = -1;
	int tr = keepalive_timer_of(g_srv.port, &when);
	cr_assert_eq(tr, 2, "server side of an idle connection: timer %d (2 = keepalive)", tr);
	cr_assert(when > 0 && when <= 7000, "keepalive due in %lld ms, want <= 7000", when);
}

/* Item 15: CLIENT SETNAME (and HELLO ... SETNAME) refuse a name with a zero
 * byte, as Redis refuses spaces and newlines (today: OK, and the name is
 * silently truncated at the zero). */
HTEST(item15_setname_rejects_nul)
{
	struct e2e_client *c = conn();
	expect_status(R(c, "CLIENT", "SETNAME", "good"), "OK");
	const char *argv[] = { "CLIENT", "SETNAME", "a\0b" };
	size_t lens[] = { 6, 7, 3 };
	cr_assert_eq(e2e_send_cmdv(c, 3, argv, lens), 0);
	expect_err(e2e_read(c), "ERR");
	const char *hv[] = { "HELLO", "2", "SETNAME", "x\0y" };
	size_t hl[] = { 5, 1, 7, 3 };
	cr_assert_eq(e2e_send_cmdv(c, 4, hv, hl), 0);
	expect_err(e2e_read(c), "ERR");
	struct e2e_reply *r = R(c, "CLIENT", "GETNAME");
	cr_assert(r->type == E2E_BULK && r->len == 4 && memcmp(r->str, "good", 4) == 0,
		  "the name changed: %s", e2e_reply_str(r));
	e2e_reply_free(r);
}

/* Item 16: many connections sending without pause do not starve another
 * connection's requests: what a worker reads in one loop iteration is
 * bounded over all its readable connections (net/worker.c, ITER_READ, 8
 * MiB), not per connection (it read up to 1 MiB from each, so a PING
 * waited seconds behind 1,000 flooding publishers). Measured in work, not
 * time: a probe connection publishes to the flooded topic twice in a row;
 * the sequence numbers it gets back show how many flood messages the
 * server handled between its two requests, at most about two iterations'
 * worth. */
enum { FLOOD_CONNS = 64 };
struct flood {
	int fd[FLOOD_CONNS];
	_Atomic bool stop;
	char *buf;
	size_t len;
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	size_t off[FLOOD_CONNS] = { 0 };
	while (!atomic_load(&f->stop)) {
		struct pollfd pf[FLOOD_CONNS];
		for (int i = 0; i < FLOOD_CONNS; i++)
			pf[i] = (struct pollfd){ f->fd[i], POLLOUT, 0 };
		if (poll(pf, FLOOD_CONNS, 50) <= 0)
			continue;
		for (int i = 0; i < FLOOD_CONNS; i++) {
			if (!(pf[i].revents & POLLOUT))
				continue;
			ssize_t w = send(f->fd[i], f->buf + off[i], f->len - off[i],
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0)
				off[i] =
					(off[i] + (size_t)w) % f->len; /* whole frames, on and on */
		}
	}
	return NULL;
}

HTEST(item16_flood_does_not_starve_requests, "--threads", "1", "--storage", "memory")
{
	static const char frame[] =
		"*3\r\n$7\r\nPUBLISH\r\n$5\r\nflood\r\n$16\r\n0123456789abcdef\r\n";
	enum { FRAMES = 1 << 14, SAMPLES = 15 };
	const size_t flen = sizeof(frame) - 1;
	struct e2e_client *c = conn();
	expect_status(R(c, "CREATE", "flood", "ONFULL", "drop-oldest"), "OK");
	static struct flood f;
	f.len = flen * FRAMES;
	f.buf = malloc(f.len);
	cr_assert_not_null(f.buf);
	for (size_t i = 0; i < FRAMES; i++)
		memcpy(f.buf + i * flen, frame, flen);
	atomic_store(&f.stop, false);
	static const char off[] = "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n";
	for (int i = 0; i < FLOOD_CONNS; i++) {
		f.fd[i] = h_raw_connect(g_srv.port, 0);
		cr_assert_geq(f.fd[i], 0, "connection %d: %s", i, strerror(errno));
		cr_assert_eq(h_raw_send(f.fd[i], off, sizeof(off) - 1, 1000), sizeof(off) - 1);
	}
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, flood_main, &f), 0);
	e2e_sleep_ms(E2E_MS(500)); /* the sockets fill up */
	long long gaps[SAMPLES];
	for (int k = 0; k < SAMPLES; k++) {
		struct e2e_reply *r1 = R(c, "PUBLISH", "flood", "probe");
		struct e2e_reply *r2 = R(c, "PUBLISH", "flood", "probe");
		cr_assert(r1->type == E2E_INT && r2->type == E2E_INT, "%s %s", e2e_reply_str(r1),
			  e2e_reply_str(r2));
		gaps[k] = r2->integer - r1->integer - 1;
		e2e_reply_free(r1);
		e2e_reply_free(r2);
	}
	atomic_store(&f.stop, true);
	pthread_join(th, NULL);
	for (int i = 0; i < FLOOD_CONNS; i++)
		close(f.fd[i]);
	free(f.buf);
	/* median of the gaps */
	for (int i = 1; i < SAMPLES; i++)
		for (int j = i; j > 0 && gaps[j - 1] > gaps[j]; j--) {
			long long t = gaps[j];
			gaps[j] = gaps[j - 1];
			gaps[j - 1] = t;
		}
	long long median = gaps[SAMPLES / 2], bound = (long long)(3 * (8u << 20) / flen);
	cr_log_info("flood messages handled between two requests of another connection: median "
		    "%lld (min %lld, max %lld), bound %lld",
		    median, gaps[0], gaps[SAMPLES - 1], bound);
	cr_assert_gt(gaps[SAMPLES - 1], 0, "the flood did not run");
	cr_assert_leq(median, bound,
		      "%lld flood messages went between two requests of another connection "
		      "(median of %d; bound %lld: three iterations of 8 MiB)",
		      median, SAMPLES, bound);
}
