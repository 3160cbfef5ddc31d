/* test_ops.c - e2e suite ops: the config file, CONFIG GET/SET/REWRITE/
 * RESETSTAT, SHUTDOWN, SIGHUP and --log-file, client log lines,
 * --maxmemory, and the metrics endpoint (--metrics-port).
 *
 * Every test starts its own server (srv_test.h) with its own temporary
 * data directory and files under /tmp it removes.
 *
 * Run one test: tests/e2e/test_ops -j1 --filter 'ops/config_file'
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srv_test.h"

/* A file in a fresh temporary directory (removed by rm_tmp). */
struct tmpfile {
	char dir[64], path[128];
};

static void tmp_write(struct tmpfile *t, const char *name, const char *text)
{
	if (!t->dir[0])
		cr_assert_eq(e2e_tmpdir("ops", t->dir), 0);
	snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, name);
	FILE *f = fopen(t->path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* CONFIG GET name: the value (caller frees). */
static char *config_get(struct e2e_client *c, const char *name)
{
	struct e2e_reply *r = R(c, "CONFIG", "GET", name);
	cr_assert_eq(r->type, E2E_ARRAY);
	cr_assert_eq(r->n, 2, "CONFIG GET %s: %zu elements", name, r->n);
	char *v = strdup(r->elem[1]->str);
	e2e_reply_free(r);
	return v;
}

/* The config file sets what it names; the command line wins over it. */
Test(ops, config_file, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(30.0))
{
	struct tmpfile t = { 0 };
	tmp_write(&t, "ringmq.conf",
		  "# a comment\n"
		  "max-payload 2K\n"
		  "   # indented comment\n"
		  "\n"
		  "log-level \"debug\"   # trailing comment\n"
		  "metrics-max-topics '7'\n"
		  "default-capacity 128K\n");
	start_server((const char *const[]){ t.path, "--default-capacity", "256K", NULL });
	struct e2e_client *c = CONN();
	char *v = config_get(c, "max-payload");
	cr_expect_str_eq(v, "2048");
	free(v);
	v = config_get(c, "log-level");
	cr_expect_str_eq(v, "debug");
	free(v);
	v = config_get(c, "metrics-max-topics");
	cr_expect_str_eq(v, "7");
	free(v);
	v = config_get(c, "default-capacity"); /* the command line won */
	cr_expect_str_eq(v, "262144");
	free(v);
	/* and it took effect: a 3K payload is over --max-payload */
	IS_OK(R(c, "CREATE", "t"));
	static char big[3001]; /* 3000 bytes and the NUL R() needs */
	memset(big, 'x', sizeof(big) - 1);
	IS_ERR_HAS(R(c, "PUBLISH", "t", big), "--max-payload");
	stop_server_ok(SIGTERM);
	e2e_rmrf(t.dir);
	g_done = true;
}

struct bad_conf {
	char text[96];
	char why[64]; /* what stderr must mention, after "FILE:" */
};

ParameterizedTestParameters(ops, config_file_error)
{
	static struct bad_conf p[] = {
		{ "port 1\nbogus 3\n", ":2: unknown setting 'bogus'" },
		{ "# c\n\nthreads 99\n", ":3: invalid value '99' for threads: expected 1..64" },
		{ "bind \"127.0.0.1\n", ":1: unterminated quoted value" },
		{ "dir a b\n", ":1: a value with blanks must be quoted" },
		{ "port\n", ":1: 'port' needs a value" },
		{ "fsync \"always\" x\n", ":1: text after the closing quote" },
	};
	return cr_make_param_array(struct bad_conf, p, sizeof(p) / sizeof(p[0]));
}

/* A bad line stops the server before it starts, naming file and line. */
ParameterizedTest(struct bad_conf *b, ops, config_file_error, .fini = teardown,
		  .timeout = E2E_TEST_TIMEOUT(20.0))
{
	struct tmpfile t = { 0 };
	tmp_write(&t, "bad.conf", b->text);
	const char *argv[] = { RINGMQ_SERVER_BIN, t.path, "--port", "0", NULL };
	struct e2e_output o;
	int st = e2e_run(argv, &o, 5000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
	char want[256];
	snprintf(want, sizeof(want), "%s%s", t.path, b->why);
	cr_expect(strstr(o.err, want), "stderr lacks '%s': %s", want, o.err);
	e2e_output_free(&o);
	e2e_rmrf(t.dir);
	g_done = true;
}

/* No such file: exit 2 with the reason. */
Test(ops, config_file_missing, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(20.0))
{
	const char *argv[] = { RINGMQ_SERVER_BIN, "/nonexistent/ringmq.conf", NULL };
	struct e2e_output o;
	int st = e2e_run(argv, &o, 5000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
	cr_expect(strstr(o.err, "cannot open config file '/nonexistent/ringmq.conf'"), "%s", o.err);
	e2e_output_free(&o);
	g_done = true;
}

/* CONFIG GET globs over the names; SET changes the runtime settings (all
 * or none) and refuses the others with a reason. */
SRV_TEST(ops, config_get_set)
{
	struct e2e_client *c = CONN();
	struct e2e_reply *r = R(c, "CONFIG", "GET", "metrics-*");
	cr_assert_eq(r->type, E2E_ARRAY);
	cr_assert_eq(r->n, 6, "%zu", r->n);
	cr_expect_str_eq(r->elem[0]->str, "metrics-port");
	cr_expect_str_eq(r->elem[2]->str, "metrics-bind");
	cr_expect_str_eq(r->elem[4]->str, "metrics-max-topics");
	e2e_reply_free(r);
	r = R(c, "CONFIG", "GET", "*");
	cr_expect_gt(r->n, 40);
	e2e_reply_free(r);
	r = R(c, "CONFIG", "GET", "nothing-matches-*");
	cr_expect_eq(r->n, 0);
	e2e_reply_free(r);
	/* what redis-benchmark asks for still answers */
	r = R(c, "CONFIG", "GET", "appendonly");
	cr_expect_eq(r->n, 2);
	e2e_reply_free(r);

	IS_OK(R(c, "CONFIG", "SET", "maxmemory", "10M", "log-level", "warn"));
	char *v = config_get(c, "maxmemory");
	cr_expect_str_eq(v, "10485760");
	free(v);
	v = config_get(c, "log-level");
	cr_expect_str_eq(v, "warn");
	free(v);
	cr_expect_eq(INFO(c, "maxmemory"), 10485760);
	/* all or none: the bad second pair leaves maxmemory as it was */
	IS_ERR_HAS(R(c, "CONFIG", "SET", "maxmemory", "1M", "log-level", "loud"),
		   "expected error, warn, info or debug");
	v = config_get(c, "maxmemory");
	cr_expect_str_eq(v, "10485760");
	free(v);
	IS_ERR_HAS(R(c, "CONFIG", "SET", "port", "1234"), "can't set immutable config");
	IS_ERR_HAS(R(c, "CONFIG", "SET", "no-such", "1"), "Unknown option");
	IS_ERR(R(c, "CONFIG", "SET", "maxmemory"), "ERR wrong number of arguments");
	IS_ERR(R(c, "CONFIG", "FROB"), "ERR unknown subcommand");
	IS_ERR_HAS(R(c, "CONFIG", "REWRITE"), "without a config file");
}

/* CONFIG REWRITE keeps comments, blank lines and order, replaces the
 * settings in place, drops repeats and appends what differs from the
 * defaults; the server restarts from the rewritten file. */
Test(ops, config_rewrite, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(30.0))
{
	struct tmpfile t = { 0 };
	tmp_write(&t, "ringmq.conf",
		  "# top comment\n"
		  "maxmemory 1M\n"
		  "\n"
		  "# about the log\n"
		  "log-level info\n"
		  "maxmemory 2M\n"
		  "unix-like-comment-free-line-below\n");
	/* (the last line would be an error: check the server refuses it) */
	const char *argv[] = { RINGMQ_SERVER_BIN, t.path, NULL };
	struct e2e_output o;
	int st = e2e_run(argv, &o, 5000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
	e2e_output_free(&o);
	tmp_write(&t, "ringmq.conf",
		  "# top comment\n"
		  "maxmemory 1M\n"
		  "\n"
		  "# about the log\n"
		  "log-level info\n"
		  "maxmemory 2M\n");
	start_server((const char *const[]){ t.path, "--metrics-max-topics", "5", NULL });
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CONFIG", "SET", "maxmemory", "5M", "log-level", "debug"));
	IS_OK(R(c, "CONFIG", "REWRITE"));
	char *text = slurp(t.path);
	cr_assert_not_null(text);
	const char *want = "# top comment\n"
			   "maxmemory 5242880\n"
			   "\n"
			   "# about the log\n"
			   "log-level debug\n"
			   "# Generated by CONFIG REWRITE\n";
	cr_expect(strncmp(text, want, strlen(want)) == 0, "rewritten:\n%s", text);
	cr_expect(strstr(text, "\nmetrics-max-topics 5\n"), "rewritten:\n%s", text);
	cr_expect(!strstr(text, "2M"), "the repeat stayed:\n%s", text);
	/* twice: one marker, same text */
	IS_OK(R(c, "CONFIG", "REWRITE"));
	char *again = slurp(t.path);
	cr_expect_str_eq(again, text);
	free(again);
	free(text);
	stop_server_ok(SIGTERM);
	/* the server starts again from it */
	start_server((const char *const[]){ t.path, NULL });
	c = CONN();
	char *v = config_get(c, "maxmemory");
	cr_expect_str_eq(v, "5242880");
	free(v);
	stop_server_ok(SIGTERM);
	e2e_rmrf(t.dir);
	g_done = true;
}

/* CONFIG RESETSTAT zeroes the counters of every worker. */
SRV_TEST(ops, resetstat)
{
	struct e2e_client *c = CONN(), *d = CONN();
	IS_OK(R(c, "CREATE", "t", "STORAGE", "memory"));
	for (int i = 1; i <= 5; i++)
		IS_INT(R(c, "PUBLISH", "t", "m"), i);
	IS_INT(R(d, "PUBLISH", "t", "m"), 6);
	cr_expect_eq(INFO(c, "messages_in"), 6);
	IS_OK(R(c, "CONFIG", "RESETSTAT"));
	/* the other worker resets at its next turn */
	EVENTUALLY(INFO(c, "messages_in") == 0, 3000);
	cr_expect_lt(INFO(c, "total_commands_processed"), 10);
	IS_INT(R(d, "PUBLISH", "t", "m"), 7);
	EVENTUALLY(INFO(c, "messages_in") == 1, 3000);
	cr_expect_eq(INFO(c, "connected_clients"), 2); /* a gauge: not reset */
}

/* SHUTDOWN stops the server as SIGTERM does: exit 0, disk data synced. */
Test(ops, shutdown_command, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(30.0))
{
	char dir[64];
	cr_assert_eq(e2e_tmpdir("ops-shut", dir), 0);
	start_server((const char *const[]){ "--threads", "2", "--dir", dir, NULL });
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "d", "STORAGE", "disk"));
	IS_INT(R(c, "PUBLISH", "d", "kept"), 1);
	IS_ERR(R(c, "SHUTDOWN", "NOW"), "ERR syntax error");
	SCMD(c, "SHUTDOWN", "NOSAVE");
	cr_expect_eq(e2e_wait_eof(c, 5000, NULL), 1, "connection not closed");
	int st = e2e_server_stop(&g_srv, 0, 5000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	e2e_close(c);
	start_server((const char *const[]){ "--threads", "2", "--dir", dir, NULL });
	c = CONN();
	cr_expect_eq(TINFO(c, "d", "next_seq"), 2);
	stop_server_ok(SIGTERM);
	e2e_rmrf(dir);
	g_done = true;
}

/* SIGHUP never stops the server; with --log-file it reopens the file, so
 * a rotation (rename, then SIGHUP) moves the log to a new file. */
Test(ops, sighup_reopens_log, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(30.0))
{
	struct tmpfile t = { 0 };
	tmp_write(&t, "x", "");
	char log[160], rotated[160];
	snprintf(log, sizeof(log), "%s/ringmq.log", t.dir);
	snprintf(rotated, sizeof(rotated), "%s/ringmq.log.1", t.dir);
	start_server((const char *const[]){ "--threads", "2", "--log-file", log, NULL });
	struct e2e_client *c = CONN();
	IS_STATUS(R(c, "PING"), "PONG");
	cr_assert_eq(rename(log, rotated), 0);
	cr_assert_eq(kill(g_srv.pid, SIGHUP), 0);
	EVENTUALLY(access(log, F_OK) == 0, 3000);
	IS_STATUS(R(c, "PING"), "PONG");
	char *old = slurp(rotated), *cur = slurp(log);
	cr_expect(strstr(old, "worker threads"), "rotated log: %s", old);
	cr_expect(strstr(cur, "received SIGHUP: log file"), "new log: %s", cur);
	free(old);
	free(cur);
	/* twice more: still alive */
	kill(g_srv.pid, SIGHUP);
	kill(g_srv.pid, SIGHUP);
	IS_STATUS(R(c, "PING"), "PONG");
	stop_server_ok(SIGTERM);
	cur = slurp(log);
	cr_expect(strstr(cur, "bye"), "%s", cur);
	free(cur);
	e2e_rmrf(t.dir);
	g_done = true;
}

/* Without --log-file, SIGHUP is logged and the server goes on. */
SRV_TEST(ops, sighup_without_log_file)
{
	struct e2e_client *c = CONN();
	cr_assert_eq(kill(g_srv.pid, SIGHUP), 0);
	e2e_sleep_ms(200);
	IS_STATUS(R(c, "PING"), "PONG");
	char tail[4096];
	e2e_server_log_tail(&g_srv, tail, sizeof(tail));
	cr_expect(strstr(tail, "received SIGHUP"), "%s", tail);
}

/* Client-related log lines name the peer address and the client name. */
SRV_TEST(ops, client_log_lines, "--log-level", "debug")
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CLIENT", "SETNAME", "alice"));
	SENDS(c, "*1\r\n$x\r\n"); /* a protocol error: logged, closed */
	e2e_wait_eof(c, 3000, NULL);
	char tail[8192];
	EVENTUALLY((e2e_server_log_tail(&g_srv, tail, sizeof(tail)),
		    strstr(tail, "name=alice: protocol error")),
		   3000);
	cr_expect(strstr(tail, "addr=127.0.0.1:"), "%s", tail);
	cr_expect(strstr(tail, "name=-: connected"), "%s", tail);
}

/* --maxmemory: PUBLISH, MPUBLISH and CREATE get Redis's -OOM once
 * retained bytes + client buffers would exceed it; INFO shows the figures;
 * raising the limit at run time lets publishing resume. */
SRV_TEST(ops, maxmemory, "--maxmemory", "2M", "--storage", "memory")
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "t", "CAPACITY", "64M"));
	static char pl[64 * 1024 + 1]; /* a C string: R() takes strlen */
	memset(pl, 'm', sizeof(pl) - 1);
	int ok = 0;
	struct e2e_reply *r = NULL;
	for (int i = 0; i < 200; i++) {
		r = R(c, "PUBLISH", "t", pl);
		if (r->type != E2E_INT)
			break;
		ok++;
		e2e_reply_free(r);
		r = NULL;
	}
	cr_assert_not_null(r, "200 x 64K published under --maxmemory 2M");
	cr_expect(ok >= 10, "only %d published", ok);
	IS_ERR(r, "OOM command not allowed when used memory > 'maxmemory'.");
	IS_ERR(R(c, "MPUBLISH", "t", pl, pl), "OOM");
	IS_ERR(R(c, "CREATE", "u"), "OOM");
	cr_expect_eq(INFO(c, "maxmemory"), 2 * 1024 * 1024);
	cr_expect_eq(INFO(c, "oom_rejected"), 3);
	long long used = INFO(c, "used_memory");
	cr_expect(used > 1024 * 1024, "used_memory %lld", used);
	char *info = NULL;
	struct e2e_reply *ir = R(c, "INFO", "memory");
	info = ir->str;
	cr_expect(strstr(info, "maxmemory_human:2.00M\r\n"), "%s", info);
	cr_expect(strstr(info, "used_memory_human:"), "%s", info);
	e2e_reply_free(ir);
	/* reads still work */
	IS_OK(R(c, "CONFIG", "SET", "maxmemory", "0"));
	IS_INT(R(c, "PUBLISH", "t", "small"), ok + 1);
	IS_OK(R(c, "CREATE", "u"));
}

/* --- metrics --- */

/* A port that was free a moment ago. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

/* Sends req to 127.0.0.1:port and returns the whole response (caller
 * frees), read until the server closes. */
static char *http(int port, const char *req, size_t reqlen)
{
	struct e2e_client *c = e2e_connect(port, 3000);
	cr_assert_not_null(c, "%s", e2e_last_error());
	/* (a server that answers before the whole request is sent, 431, may
	 * fail the rest of the send: what it answered is read all the same) */
	e2e_send(c, req, reqlen);
	int fd = c->fd;
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	/* what e2e_send read meanwhile */
	len = c->len - c->off < cap - 1 ? c->len - c->off : cap - 1;
	if (len)
		memcpy(buf, c->buf + c->off, len);
	uint64_t end = e2e_now_ms() + 5000;
	while (len + 1 < cap && e2e_now_ms() < end) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n > 0)
			len += (size_t)n;
		else if (n < 0 && (errno == EAGAIN || errno == EINTR))
			e2e_sleep_ms(5);
		else
			break; /* EOF or a real error */
	}
	buf[len] = '\0';
	e2e_close(c);
	return buf;
}

static char *get(int port, const char *path)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	return http(port, req, (size_t)n);
}

/* The value of the sample line that starts with `series ` (-1: none). */
static double sample(const char *text, const char *series)
{
	char k[256];
	snprintf(k, sizeof(k), "\n%s ", series);
	const char *p = strstr(text, k);
	return p ? strtod(p + strlen(k), NULL) : -1;
}

Test(ops, metrics, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))
{
	int mport = free_port();
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", mport);
	start_server((const char *const[]){ "--threads", "2", "--metrics-port", ps,
					    "--metrics-max-topics", "2", "--storage", "memory",
					    NULL });
	struct e2e_client *c = CONN();
	char *r = get(mport, "/healthz");
	cr_expect(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", r);
	cr_expect(strstr(r, "\r\n\r\nok\n"), "%s", r);
	free(r);
	r = get(mport, "/metrics");
	cr_assert(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", r);
	cr_expect(strstr(r, "Content-Type: text/plain; version=0.0.4"), "%s", r);
	cr_expect(strstr(r, "# TYPE ringmq_published_messages_total counter\n"));
	cr_expect(strstr(r, "# TYPE ringmq_publish_latency_seconds histogram\n"));
	cr_expect_eq(sample(r, "ringmq_published_messages_total"), 0);
	cr_expect_eq(sample(r, "ringmq_refused_total{reason=\"NOPERM\"}"), 0);
	free(r);

	IS_OK(R(c, "CREATE", "a"));
	IS_OK(R(c, "CREATE", "b"));
	IS_OK(R(c, "CREATE", "c"));
	IS_OK(R(c, "CREATE", "f", "CAPACITY", "1K", "ONFULL", "reject"));
	for (int i = 1; i <= 3; i++)
		IS_INT(R(c, "PUBLISH", "a", "hello"), i);
	IS_INT(R(c, "MPUBLISH", "b", "x", "y"), 2);
	struct e2e_client *d = DURABLE("dur", "a");
	(void)d;
	struct e2e_client *fd = DURABLE("fdur", "f"); /* holds f's messages */
	(void)fd;
	static char pl[301]; /* a C string: R() takes strlen */
	memset(pl, 'f', sizeof(pl) - 1);
	int fulls = 0, stored = 0;
	for (int i = 0; i < 20 && !fulls; i++) {
		struct e2e_reply *fr = R(c, "PUBLISH", "f", pl);
		if (fr->type == E2E_INT)
			stored++;
		else if (fr->type == E2E_ERROR && !strncmp(fr->str, "FULL", 4))
			fulls++;
		e2e_reply_free(fr);
	}
	cr_assert_eq(fulls, 1, "no FULL");

	r = get(mport, "/metrics");
	cr_expect_eq(sample(r, "ringmq_published_messages_total"), 5 + stored, "%s", r);
	cr_expect_eq(sample(r, "ringmq_topics"), 4);
	cr_expect_eq(sample(r, "ringmq_refused_total{reason=\"FULL\"}"), 1);
	cr_expect_eq(sample(r, "ringmq_connected_clients"), 3);
	/* 4 topics, 2 with their own label, 2 summed as _other */
	double sum = 0;
	int labelled = 0;
	for (const char *p = r; (p = strstr(p, "\nringmq_topic_published_messages_total{topic=\""));
	     p++) {
		const char *v = strchr(p + 1, ' ');
		sum += strtod(v + 1, NULL);
		labelled++;
	}
	cr_expect_eq(labelled, 3, "%s", r);
	cr_expect_eq(sum, 5 + stored);
	cr_expect_geq(sample(r, "ringmq_topic_published_messages_total{topic=\"_other\"}"), 1);
	cr_expect_eq(
		sample(r, "ringmq_durable_subscriber_lag_messages{subscriber=\"dur\",topic=\"a\"}"),
		0);
	double n = sample(r, "ringmq_publish_latency_seconds_count");
	cr_expect_geq(n, 1, "%s", r);
	cr_expect_eq(sample(r, "ringmq_publish_latency_seconds_bucket{le=\"+Inf\"}"), n);
	free(r);
	/* the durable subscriber's lag follows what it has not read */
	IS_INT(R(c, "PUBLISH", "a", "more"), 4);
	r = get(mport, "/metrics");
	cr_expect_eq(
		sample(r, "ringmq_durable_subscriber_lag_messages{subscriber=\"dur\",topic=\"a\"}"),
		1, "%s", r);
	free(r);

	/* what else the endpoint answers */
	r = get(mport, "/nope");
	cr_expect(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "%s", r);
	free(r);
	static const char post[] = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
	r = http(mport, post, sizeof(post) - 1);
	cr_expect(strncmp(r, "HTTP/1.1 405 ", 13) == 0, "%s", r);
	cr_expect(strstr(r, "Allow: GET, HEAD\r\n"), "%s", r);
	free(r);
	static const char head[] = "HEAD /metrics HTTP/1.1\r\n\r\n";
	r = http(mport, head, sizeof(head) - 1);
	cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0 && strstr(r, "\r\n\r\n")[4] == '\0', "%s",
		  r);
	free(r);
	static const char junk[] = "hello\r\n\r\n";
	r = http(mport, junk, sizeof(junk) - 1);
	cr_expect(strncmp(r, "HTTP/1.1 400 ", 13) == 0, "%s", r);
	free(r);
	/* a head that never ends is cut at 8 KiB */
	char *big = malloc(20000);
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	memset(big + 26, 'a', 20000 - 26);
	r = http(mport, big, 20000);
	cr_expect(strncmp(r, "HTTP/1.1 431 ", 13) == 0, "%.200s", r);
	free(r);
	free(big);
	/* a client that sends half a head and stays does not hold others up */
	struct e2e_client *slow = e2e_connect(mport, 3000);
	SENDS(slow, "GET /met");
	r = get(mport, "/healthz");
	cr_expect(strstr(r, "\r\n\r\nok\n"), "%s", r);
	free(r);
	e2e_close(slow);
	/* CONFIG RESETSTAT reaches the metrics too */
	IS_OK(R(c, "CONFIG", "RESETSTAT"));
	EVENTUALLY((r = get(mport, "/metrics"), sample(r, "ringmq_published_messages_total") == 0
							? (free(r), 1)
							: (free(r), 0)),
		   3000);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* Metrics on a port already taken: the server says so and does not start. */
Test(ops, metrics_port_taken, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(20.0))
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	getsockname(fd, (struct sockaddr *)&a, &l);
	char ps[16], dir[64];
	snprintf(ps, sizeof(ps), "%d", ntohs(a.sin_port));
	cr_assert_eq(e2e_tmpdir("ops-mp", dir), 0);
	const char *argv[] = { RINGMQ_SERVER_BIN, "--port", "0", "--dir", dir,
			       "--metrics-port",  ps,       NULL };
	struct e2e_output o;
	int st = e2e_run(argv, &o, 10000);
	cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
	cr_expect(strstr(o.err, "metrics endpoint: cannot listen"), "%s", o.err);
	e2e_output_free(&o);
	close(fd);
	e2e_rmrf(dir);
	g_done = true;
}
