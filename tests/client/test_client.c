/* test_client.c - the client library (ringmq.h) against a live server.
 *
 * Every test gets its own ringmq-server (`--port 0`, started by the suite's
 * .init and stopped by PID with SIGTERM in .fini; it also dies with the
 * test process through PR_SET_PDEATHSIG). Only 127.0.0.1 is used. Suites:
 * connect, topics, send, pipeline, durable, live, errors, and tls (the
 * same calls through rmq_client_connect_tls to a server's TLS port, with
 * throw-away certificates from scripts/gen-test-certs.sh).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "ringmq.h"

#define HOST "127.0.0.1"

/* Bounds on waiting for something that must happen scale with the
 * server's slowness (E2E_MS, E2E_TEST_TIMEOUT: see harness.h). */
#define TMO E2E_MS(3000)

static pid_t g_srv;
static char g_dir[64]; /* the server's own data directory */
static int g_port;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Starts ringmq-server --port 0 [extra...] and reads its "Server started
 * on localhost:PORT" line (5 s at most). */
static void server_start_args(const char *const *extra)
{
	int p[2];
	cr_assert(pipe(p) == 0);
	cr_assert(e2e_tmpdir("client-data", g_dir) == 0, "%s", e2e_last_error());
	pid_t parent = getpid();
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		const char *argv[40] = { "ringmq-server", "--port", "0",     "--threads", "2",
					 "--log-level",   "warn",   "--dir", g_dir };
		int n = 9;
		for (int i = 0; extra && extra[i] && n < 39; i++)
			argv[n++] = extra[i];
		argv[n] = NULL;
		execv(RINGMQ_SERVER_BIN, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	g_srv = pid;
	char line[256] = "";
	size_t n = 0;
	uint64_t deadline = now_ms() + E2E_MS(5000);
	while (n < sizeof(line) - 1 && !memchr(line, '\n', n)) {
		struct pollfd pf = { p[0], POLLIN, 0 };
		uint64_t now = now_ms();
		cr_assert(now < deadline, "server did not start within 5 s");
		if (poll(&pf, 1, (int)(deadline - now)) <= 0)
			continue;
		ssize_t r = read(p[0], line + n, sizeof(line) - 1 - n);
		cr_assert(r > 0, "server exited before printing its port");
		n += (size_t)r;
	}
	line[n] = '\0';
	close(p[0]);
	/* NOLINTNEXTLINE(cert-err34-c): the server prints a port number, 1..65535 */
	cr_assert(sscanf(line, "Server started on localhost:%d", &g_port) == 1, "got '%s'", line);
}

static void server_start(void)
{
	server_start_args(NULL);
}

/* SIGTERM by PID, then wait (5 s at most, then SIGKILL). */
static int server_stop(void)
{
	if (g_srv <= 0)
		return -1;
	kill(g_srv, SIGTERM);
	int st = -1;
	uint64_t deadline = now_ms() + E2E_MS(5000);
	while (waitpid(g_srv, &st, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(g_srv, SIGKILL);
			waitpid(g_srv, &st, 0);
			break;
		}
		sleep_ms(10);
	}
	g_srv = 0;
	return st;
}

static void fini(void)
{
	server_stop();
	e2e_rmrf(g_dir);
}

TestSuite(connect, .init = server_start, .fini = fini, .timeout = E2E_TEST_TIMEOUT(30.0));
TestSuite(topics, .init = server_start, .fini = fini, .timeout = E2E_TEST_TIMEOUT(30.0));
TestSuite(send, .init = server_start, .fini = fini, .timeout = E2E_TEST_TIMEOUT(30.0));
TestSuite(pipeline, .init = server_start, .fini = fini, .timeout = E2E_TEST_TIMEOUT(60.0));
TestSuite(durable, .init = server_start, .fini = fini, .timeout = E2E_TEST_TIMEOUT(30.0));
TestSuite(live, .init = server_start, .fini = fini, .timeout = E2E_TEST_TIMEOUT(30.0));
TestSuite(errors, .init = server_start, .fini = fini, .timeout = E2E_TEST_TIMEOUT(30.0));

static struct rmq_client *conn(void)
{
	int st = -99;
	struct rmq_client *c = rmq_client_connect(HOST, g_port, TMO, &st);
	cr_assert_not_null(c);
	cr_assert_eq(st, RMQ_OK, "connect: %s", rmq_client_errstr(c));
	return c;
}

#define OK(call)                                                                              \
	do {                                                                                  \
		int rc_ = (call);                                                             \
		cr_assert_eq(rc_, RMQ_OK, "%s -> %d (%s): %s", #call, rc_, rmq_strerror(rc_), \
			     rmq_client_errstr(c));                                           \
	} while (0)

static void create(struct rmq_client *c, const char *t)
{
	OK(rmq_create_topic(c, t, NULL));
}

/* A port on 127.0.0.1 where nothing listens (it did a moment ago). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	socklen_t l = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

/* A listener that never accepts or answers: the kernel completes the
 * handshake (backlog), nobody ever replies. */
static int silent_listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(listen(fd, 16) == 0);
	socklen_t l = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &l);
	*port = ntohs(a.sin_port);
	return fd;
}

/* --- connect --- */

Test(connect, ok_and_close)
{
	struct rmq_client *c = conn();
	cr_assert_str_eq(rmq_client_errstr(c), "no error");
	OK(rmq_register_publisher(c, NULL));
	rmq_client_close(c);
	rmq_client_close(NULL);
}

Test(connect, refused)
{
	int port = free_port();
	int st = 0;
	uint64_t t0 = now_ms();
	struct rmq_client *c = rmq_client_connect(HOST, port, TMO, &st);
	cr_assert_not_null(c);
	cr_assert_eq(st, RMQ_ERR_CONN, "status %d: %s", st, rmq_client_errstr(c));
	cr_assert(strstr(rmq_client_errstr(c), "refused"), "%s", rmq_client_errstr(c));
	cr_assert_lt(now_ms() - t0, 1000);
	/* a failed client answers every call, and never crashes */
	uint64_t seq = 7;
	cr_assert_eq(rmq_send(c, "t", "x", 1, &seq), RMQ_ERR_CONN);
	cr_assert_eq(seq, 0);
	cr_assert_eq(rmq_create_topic(c, "t", NULL), RMQ_ERR_CONN);
	cr_assert(strstr(rmq_client_errstr(c), "not connected"), "%s", rmq_client_errstr(c));
	rmq_client_close(c);
}

Test(connect, bad_port)
{
	int st = 0;
	struct rmq_client *c = rmq_client_connect(HOST, 70000, TMO, &st);
	cr_assert_eq(st, RMQ_ERR_ARG);
	rmq_client_close(c);
	c = rmq_client_connect(HOST, -1, TMO, NULL); /* status is optional */
	cr_assert_not_null(c);
	cr_assert_eq(rmq_register_publisher(c, NULL), RMQ_ERR_CONN);
	rmq_client_close(c);
}

Test(connect, reply_timeout)
{
	int port;
	int lfd = silent_listener(&port);
	int st = 0;
	struct rmq_client *c = rmq_client_connect(HOST, port, 300, &st);
	cr_assert_eq(st, RMQ_OK, "%s", rmq_client_errstr(c));
	uint64_t t0 = now_ms();
	cr_assert_eq(rmq_create_topic(c, "t", NULL), RMQ_ERR_TIMEOUT, "%s", rmq_client_errstr(c));
	uint64_t took = now_ms() - t0;
	cr_assert(took >= 250 && took < 2000, "took %llu ms", (unsigned long long)took);
	cr_assert(strstr(rmq_client_errstr(c), "300 ms"), "%s", rmq_client_errstr(c));
	/* the reply is still owed: the connection was closed */
	cr_assert_eq(rmq_delete_topic(c, "t"), RMQ_ERR_CONN);
	rmq_client_close(c);
	close(lfd);
}

Test(connect, connect_timeout)
{
	/* A listener whose backlog is full drops further SYNs, so connect()
	 * hangs until our timeout. */
	int port;
	int lfd = silent_listener(&port);
	listen(lfd, 0);
	int filler[8];
	for (int i = 0; i < 8; i++) {
		filler[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		(void)connect(filler[i], (struct sockaddr *)&a, sizeof(a)); /* in progress */
	}
	sleep_ms(50);
	int st = 0;
	uint64_t t0 = now_ms();
	struct rmq_client *c = rmq_client_connect(HOST, port, 300, &st);
	uint64_t took = now_ms() - t0;
	if (st == RMQ_OK) { /* the kernel accepted it after all: nothing to test */
		rmq_client_close(c);
		for (int i = 0; i < 8; i++)
			close(filler[i]);
		close(lfd);
		cr_skip_test("the backlog did not fill up on this kernel");
	}
	cr_assert_eq(st, RMQ_ERR_TIMEOUT, "status %d: %s", st, rmq_client_errstr(c));
	cr_assert(took >= 250 && took < 2000, "took %llu ms", (unsigned long long)took);
	rmq_client_close(c);
	for (int i = 0; i < 8; i++)
		close(filler[i]);
	close(lfd);
}

Test(connect, hostname)
{
	int st = 0;
	struct rmq_client *c = rmq_client_connect("localhost", g_port, TMO, &st);
	cr_assert_eq(st, RMQ_OK, "%s", rmq_client_errstr(c));
	OK(rmq_register_publisher(c, "pub-1"));
	rmq_client_close(c);
}

/* --- topics --- */

Test(topics, create_delete_list)
{
	struct rmq_client *c = conn();
	OK(rmq_register_publisher(c, "admin"));
	create(c, "a");
	struct rmq_topic_opts o = { .capacity = 128 * 1024, .onfull = RMQ_FULL_DROP_OLDEST };
	OK(rmq_create_topic(c, "b", &o));
	o.onfull = RMQ_FULL_REJECT;
	OK(rmq_create_topic(c, "c", &o));
	char **names;
	size_t n;
	OK(rmq_list_topics(c, &names, &n));
	cr_assert_eq(n, 3);
	cr_assert_str_eq(names[0], "a");
	cr_assert_str_eq(names[1], "b");
	cr_assert_str_eq(names[2], "c");
	cr_assert_null(names[3]);
	free(names);
	OK(rmq_delete_topic(c, "b"));
	OK(rmq_list_topics(c, &names, NULL));
	cr_assert_str_eq(names[1], "c");
	cr_assert_null(names[2]);
	free(names);
	rmq_client_close(c);
}

Test(topics, exists)
{
	struct rmq_client *c = conn();
	create(c, "t");
	cr_assert_eq(rmq_create_topic(c, "t", NULL), RMQ_ERR_EXISTS);
	cr_assert_str_eq(rmq_client_errstr(c), "topic 't' already exists");
	/* the connection is fine after an error reply */
	OK(rmq_delete_topic(c, "t"));
	rmq_client_close(c);
}

Test(topics, delete_missing)
{
	struct rmq_client *c = conn();
	cr_assert_eq(rmq_delete_topic(c, "nope"), RMQ_ERR_NOTOPIC);
	cr_assert_str_eq(rmq_client_errstr(c), "no such topic 'nope'");
	rmq_client_close(c);
}

Test(topics, bad_arguments)
{
	struct rmq_client *c = conn();
	cr_assert_eq(rmq_create_topic(c, "", NULL), RMQ_ERR_ARG);
	cr_assert_eq(rmq_create_topic(c, NULL, NULL), RMQ_ERR_ARG);
	cr_assert_eq(rmq_create_topic(c, "has space", NULL), RMQ_ERR_ARG);
	cr_assert(strstr(rmq_client_errstr(c), "invalid topic name"), "%s", rmq_client_errstr(c));
	char longname[300];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	cr_assert_eq(rmq_create_topic(c, longname, NULL), RMQ_ERR_ARG);
	longname[255] = '\0';
	OK(rmq_create_topic(c, longname, NULL));
	/* the server's own checks map to RMQ_ERR_ARG too */
	struct rmq_topic_opts o = { .capacity = 10 };
	cr_assert_eq(rmq_create_topic(c, "small", &o), RMQ_ERR_ARG, "%s", rmq_client_errstr(c));
	cr_assert(strstr(rmq_client_errstr(c), "CAPACITY"), "%s", rmq_client_errstr(c));
	o = (struct rmq_topic_opts){ .onfull = (enum rmq_full_policy)9 };
	cr_assert_eq(rmq_create_topic(c, "p", &o), RMQ_ERR_ARG);
	cr_assert_eq(rmq_list_topics(c, NULL, NULL), RMQ_ERR_ARG);
	cr_assert_eq(rmq_create_topic(NULL, "t", NULL), RMQ_ERR_ARG);
	rmq_client_close(c);
}

/* --- send --- */

Test(send, sequence_numbers)
{
	struct rmq_client *c = conn();
	OK(rmq_register_publisher(c, NULL));
	create(c, "t");
	for (uint64_t i = 1; i <= 5; i++) {
		uint64_t seq = 0;
		OK(rmq_send(c, "t", "hello", 5, &seq));
		cr_assert_eq(seq, i);
	}
	OK(rmq_send(c, "t", "", 0, NULL)); /* empty message, seq not wanted */
	OK(rmq_send(c, "t", NULL, 0, NULL));
	rmq_client_close(c);
}

Test(send, no_such_topic)
{
	struct rmq_client *c = conn();
	uint64_t seq = 9;
	cr_assert_eq(rmq_send(c, "nope", "x", 1, &seq), RMQ_ERR_NOTOPIC);
	cr_assert_eq(seq, 0);
	cr_assert_str_eq(rmq_client_errstr(c), "no such topic 'nope'");
	cr_assert_eq(rmq_send(c, "t", NULL, 3, NULL), RMQ_ERR_ARG);
	rmq_client_close(c);
}

Test(send, binary_roundtrip)
{
	struct rmq_client *c = conn();
	create(c, "bin");
	struct rmq_client *s = conn();
	cr_assert_eq(rmq_register_subscriber(s, "reader"), RMQ_OK);
	cr_assert_eq(rmq_subscribe(s, "bin"), RMQ_OK);
	char payload[3000];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char)(i * 7);
	payload[0] = '\0';
	OK(rmq_send(c, "bin", payload, sizeof(payload), NULL));
	OK(rmq_send(c, "bin", "\r\n$-1\r\n", 7, NULL));
	struct rmq_msgs *m;
	cr_assert_eq(rmq_pull(s, "bin", 10, 0, &m), RMQ_OK, "%s", rmq_client_errstr(s));
	cr_assert_eq(m->n, 2);
	cr_assert_eq(m->msg[0].len, sizeof(payload));
	cr_assert(memcmp(m->msg[0].payload, payload, sizeof(payload)) == 0);
	cr_assert_eq(m->msg[1].len, 7);
	cr_assert(memcmp(m->msg[1].payload, "\r\n$-1\r\n", 7) == 0);
	cr_assert_str_eq(m->msg[1].topic, "bin");
	cr_assert_eq(m->msg[1].topic_len, 3);
	rmq_msgs_free(m);
	rmq_client_close(s);
	rmq_client_close(c);
}

/* CAPACITY 64K, ONFULL reject, and a durable subscriber that does not
 * pull: publishing fails with RMQ_ERR_FULL, and works again once it
 * pulls. */
Test(send, full)
{
	struct rmq_client *c = conn();
	struct rmq_topic_opts o = { .capacity = 64 * 1024, .onfull = RMQ_FULL_REJECT };
	OK(rmq_create_topic(c, "f", &o));
	struct rmq_client *s = conn();
	cr_assert_eq(rmq_register_subscriber(s, "slow"), RMQ_OK);
	cr_assert_eq(rmq_subscribe(s, "f"), RMQ_OK);
	char kb[1024];
	memset(kb, 'k', sizeof(kb));
	int rc = RMQ_OK, sent = 0;
	while (sent < 200 && (rc = rmq_send(c, "f", kb, sizeof(kb), NULL)) == RMQ_OK)
		sent++;
	cr_assert_eq(rc, RMQ_ERR_FULL, "after %d sends: %d %s", sent, rc, rmq_client_errstr(c));
	cr_assert(sent >= 32 && sent <= 64, "full after %d KiB", sent);
	cr_assert(strstr(rmq_client_errstr(c), "topic 'f' is full"), "%s", rmq_client_errstr(c));
	/* the pipeline reports it too, per message */
	for (int i = 0; i < 10; i++)
		OK(rmq_send_queue(c, "f", kb, sizeof(kb)));
	uint64_t seqs[10];
	size_t n;
	cr_assert_eq(rmq_send_flush(c, seqs, 10, &n), RMQ_ERR_FULL);
	cr_assert_eq(n, 10);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(seqs[i], 0);
	cr_assert(strstr(rmq_client_errstr(c), "message 1 of the batch"), "%s",
		  rmq_client_errstr(c));
	/* the subscriber catches up: room again (trimming is asynchronous) */
	size_t got = 0;
	struct rmq_msgs *m;
	do {
		cr_assert_eq(rmq_pull(s, "f", 1000, 0, &m), RMQ_OK);
		got += m->n;
		size_t k = m->n;
		rmq_msgs_free(m);
		if (!k)
			break;
	} while (1);
	cr_assert_eq(got, (size_t)sent);
	uint64_t deadline = now_ms() + E2E_MS(3000);
	while ((rc = rmq_send(c, "f", kb, sizeof(kb), NULL)) == RMQ_ERR_FULL && now_ms() < deadline)
		sleep_ms(20);
	cr_assert_eq(rc, RMQ_OK, "%s", rmq_client_errstr(c));
	rmq_client_close(s);
	rmq_client_close(c);
}

/* --- pipeline --- */

Test(pipeline, seqs_in_order)
{
	struct rmq_client *c = conn();
	OK(rmq_register_publisher(c, "bulk"));
	create(c, "p");
	OK(rmq_send(c, "p", "first", 5, NULL)); /* seq 1 */
	enum { N = 5000 };                      /* several windows */
	char buf[32];
	for (int i = 0; i < N; i++) {
		int len = snprintf(buf, sizeof(buf), "m%d", i);
		OK(rmq_send_queue(c, "p", buf, (size_t)len));
	}
	cr_assert_eq(rmq_send_queued(c), N);
	static uint64_t seqs[N];
	size_t n = 0;
	OK(rmq_send_flush(c, seqs, N, &n));
	cr_assert_eq(n, N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(seqs[i], (uint64_t)i + 2, "seqs[%d] = %llu", i,
			     (unsigned long long)seqs[i]);
	cr_assert_eq(rmq_send_queued(c), 0);
	/* an empty flush is fine */
	OK(rmq_send_flush(c, NULL, 0, &n));
	cr_assert_eq(n, 0);
	rmq_client_close(c);
}

Test(pipeline, big_messages)
{
	struct rmq_client *c = conn();
	struct rmq_topic_opts o = { .capacity = 256u << 20 };
	OK(rmq_create_topic(c, "big", &o));
	size_t len = 512 * 1024;
	char *p = malloc(len);
	memset(p, 'b', len);
	for (int i = 0; i < 40; i++)
		OK(rmq_send_queue(c, "big", p, len));
	uint64_t seqs[40];
	size_t n;
	OK(rmq_send_flush(c, seqs, 40, &n));
	cr_assert_eq(n, 40);
	cr_assert_eq(seqs[39], 40);
	free(p);
	rmq_client_close(c);
}

Test(pipeline, mixed_failures_and_other_calls)
{
	struct rmq_client *c = conn();
	create(c, "p");
	OK(rmq_send_queue(c, "p", "a", 1));
	OK(rmq_send_queue(c, "missing", "b", 1));
	OK(rmq_send_queue(c, "p", "c", 1));
	/* another call in between drains the pipeline; seqs are kept */
	uint64_t seq;
	OK(rmq_send(c, "p", "d", 1, &seq));
	cr_assert_eq(seq, 3);
	OK(rmq_send_queue(c, "p", "e", 1));
	uint64_t seqs[8] = { 0 };
	size_t n;
	cr_assert_eq(rmq_send_flush(c, seqs, 2, &n), RMQ_ERR_NOTOPIC); /* cap < n is fine */
	cr_assert_eq(n, 4);
	cr_assert_eq(seqs[0], 1);
	cr_assert_eq(seqs[1], 0);
	cr_assert_eq(seqs[2], 0); /* beyond cap: untouched */
	cr_assert(strstr(rmq_client_errstr(c), "message 2 of the batch: no such topic 'missing'"),
		  "%s", rmq_client_errstr(c));
	/* the next batch starts clean */
	OK(rmq_send_queue(c, "p", "f", 1));
	OK(rmq_send_flush(c, seqs, 8, &n));
	cr_assert_eq(n, 1);
	cr_assert_eq(seqs[0], 5);
	cr_assert_eq(rmq_send_queue(c, "bad topic", "x", 1), RMQ_ERR_ARG);
	rmq_client_close(c);
}

Test(pipeline, close_with_queued)
{
	struct rmq_client *c = conn();
	create(c, "p");
	for (int i = 0; i < 100; i++)
		OK(rmq_send_queue(c, "p", "x", 1));
	rmq_client_close(c); /* frees what is queued */
}

/* --- durable --- */

static struct rmq_client *subscriber(const char *name, const char *topic)
{
	struct rmq_client *c = conn();
	OK(rmq_register_subscriber(c, name));
	OK(rmq_subscribe(c, topic));
	return c;
}

static void publish(const char *topic, const char *msg)
{
	struct rmq_client *c = conn();
	OK(rmq_send(c, topic, msg, strlen(msg), NULL));
	rmq_client_close(c);
}

Test(durable, pull_batches)
{
	struct rmq_client *p = conn();
	create(p, "t");
	cr_assert_eq(rmq_send(p, "t", "before", 6, NULL),
		     RMQ_OK); /* before subscribing: not seen */
	struct rmq_client *c = subscriber("alice", "t");
	struct rmq_msgs *m;
	OK(rmq_pull(c, "t", 10, 0, &m));
	cr_assert_not_null(m);
	cr_assert_eq(m->n, 0);
	rmq_msgs_free(m);
	publish("t", "one");
	publish("t", "two");
	publish("t", "three");
	OK(rmq_pull(c, "t", 2, 0, &m));
	cr_assert_eq(m->n, 2);
	cr_assert_eq(m->msg[0].seq, 2);
	cr_assert_str_eq(m->msg[0].payload, "one");
	cr_assert_eq(m->msg[0].kind, RMQ_MSG_DATA);
	cr_assert_eq(m->msg[1].seq, 3);
	cr_assert_str_eq(m->msg[1].payload, "two");
	rmq_msgs_free(m);
	OK(rmq_pull(c, "t", 0, 0, &m)); /* max 0: default */
	cr_assert_eq(m->n, 1);
	cr_assert_eq(m->msg[0].seq, 4);
	cr_assert_str_eq(m->msg[0].payload, "three");
	rmq_msgs_free(m);
	rmq_msgs_free(NULL);
	cr_assert_eq(rmq_pull(c, "t", 100001, 0, &m), RMQ_ERR_ARG);
	cr_assert_null(m);
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(durable, pull_timeout)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = subscriber("alice", "t");
	struct rmq_msgs *m;
	uint64_t t0 = now_ms();
	OK(rmq_pull(c, "t", 10, 200, &m));
	uint64_t took = now_ms() - t0;
	cr_assert_eq(m->n, 0);
	cr_assert(took >= 190 && took < 2000, "took %llu ms", (unsigned long long)took);
	rmq_msgs_free(m);
	/* still usable */
	publish("t", "x");
	OK(rmq_pull(c, "t", 10, 200, &m));
	cr_assert_eq(m->n, 1);
	rmq_msgs_free(m);
	rmq_client_close(c);
	rmq_client_close(p);
}

static void *late_publisher(void *arg)
{
	(void)arg;
	sleep_ms(150);
	struct rmq_client *c = rmq_client_connect(HOST, g_port, TMO, NULL);
	rmq_send(c, "t", "late", 4, NULL);
	rmq_client_close(c);
	return NULL;
}

Test(durable, pull_wakes_on_publish)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = subscriber("alice", "t");
	pthread_t th;
	pthread_create(&th, NULL, late_publisher, NULL);
	uint64_t t0 = now_ms();
	struct rmq_msgs *m;
	OK(rmq_pull(c, "t", 10, -1, &m)); /* forever: the publish wakes it */
	uint64_t took = now_ms() - t0;
	pthread_join(th, NULL);
	cr_assert_eq(m->n, 1);
	cr_assert_str_eq(m->msg[0].payload, "late");
	cr_assert(took >= 100 && took < 2000, "took %llu ms", (unsigned long long)took);
	rmq_msgs_free(m);
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(durable, resume_on_new_connection)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = subscriber("alice", "t");
	publish("t", "a");
	publish("t", "b");
	struct rmq_msgs *m;
	OK(rmq_pull(c, "t", 1, 0, &m));
	cr_assert_str_eq(m->msg[0].payload, "a");
	rmq_msgs_free(m);
	rmq_client_close(c);
	publish("t", "c");            /* while alice is away */
	c = subscriber("alice", "t"); /* subscribe again: keeps the position */
	OK(rmq_pull(c, "t", 10, 0, &m));
	cr_assert_eq(m->n, 2);
	cr_assert_str_eq(m->msg[0].payload, "b");
	cr_assert_str_eq(m->msg[1].payload, "c");
	rmq_msgs_free(m);
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(durable, taken_over)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c1 = subscriber("alice", "t");
	struct rmq_client *c2 = subscriber("alice", "t");
	struct rmq_msgs *m;
	int rc = rmq_pull(c1, "t", 10, 0, &m);
	cr_assert_eq(rc, RMQ_ERR_TAKENOVER, "%d %s", rc, rmq_client_errstr(c1));
	cr_assert(strstr(rmq_client_errstr(c1), "taken over"), "%s", rmq_client_errstr(c1));
	cr_assert_eq(rmq_pull(c2, "t", 10, 0, &m), RMQ_OK, "%s", rmq_client_errstr(c2));
	rmq_msgs_free(m);
	rmq_client_close(c1);
	rmq_client_close(c2);
	rmq_client_close(p);
}

Test(durable, unsubscribe)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = subscriber("alice", "t");
	OK(rmq_unsubscribe(c, "t"));
	OK(rmq_unsubscribe(c, "t")); /* not subscribed: fine */
	struct rmq_msgs *m;
	cr_assert_eq(rmq_pull(c, "t", 10, 0, &m), RMQ_ERR_NOTSUB);
	cr_assert(strstr(rmq_client_errstr(c), "not subscribed to 't'"), "%s",
		  rmq_client_errstr(c));
	cr_assert_null(m);
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(durable, errors)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = conn();
	struct rmq_msgs *m;
	/* not registered */
	cr_assert_eq(rmq_subscribe(c, "t"), RMQ_ERR_STATE);
	cr_assert_eq(rmq_unsubscribe(c, "t"), RMQ_ERR_STATE);
	cr_assert_eq(rmq_pull(c, "t", 1, 0, &m), RMQ_ERR_STATE);
	cr_assert_eq(rmq_register_subscriber(c, "bad name"), RMQ_ERR_ARG);
	cr_assert_eq(rmq_register_subscriber(c, NULL), RMQ_ERR_ARG);
	OK(rmq_register_subscriber(c, "alice"));
	cr_assert_eq(rmq_subscribe(c, "nope"), RMQ_ERR_NOTOPIC);
	cr_assert_eq(rmq_pull(c, "t", 1, 0, &m), RMQ_ERR_NOTSUB);
	cr_assert_eq(rmq_pull(c, "t", 1, 0, NULL), RMQ_ERR_ARG);
	/* a subscriber connection cannot publish-register or go live */
	cr_assert_eq(rmq_register_publisher(c, NULL), RMQ_ERR_STATE, "%s", rmq_client_errstr(c));
	cr_assert_eq(rmq_subscribe_live(c, "t"), RMQ_ERR_STATE);
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(durable, topic_deleted)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = subscriber("alice", "t");
	OK(rmq_delete_topic(p, "t"));
	struct rmq_msgs *m;
	cr_assert_eq(rmq_pull(c, "t", 10, 0, &m), RMQ_ERR_NOTOPIC);
	cr_assert(strstr(rmq_client_errstr(c), "topic 't' was deleted"), "%s",
		  rmq_client_errstr(c));
	rmq_client_close(c);
	rmq_client_close(p);
}

/* --- durable: acknowledged mode and start positions --- */

static struct rmq_client *ack_subscriber(const char *name, const char *topic, uint32_t wait_ms)
{
	struct rmq_client *c = conn();
	struct rmq_subscriber_opts o = { .ack = 1, .ack_wait_ms = wait_ms };
	OK(rmq_register_subscriber_ex(c, name, &o));
	OK(rmq_subscribe(c, topic));
	return c;
}

/* A consumer receives a batch, "crashes" (closes without ACK), reconnects
 * and gets the same messages again, marked redelivered. */
Test(durable, ack_crash_redelivers)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = ack_subscriber("worker", "t", 0);
	publish("t", "a");
	publish("t", "b");
	publish("t", "c");
	struct rmq_msgs *m;
	OK(rmq_pull(c, "t", 2, 0, &m));
	cr_assert_eq(m->n, 2);
	cr_assert_eq(m->msg[0].redelivered, 0);
	cr_assert_eq(m->msg[1].redelivered, 0);
	OK(rmq_ack(c, "t", m->msg[0].seq)); /* "a" done, "b" in flight */
	rmq_msgs_free(m);
	rmq_client_close(c); /* crash */

	c = ack_subscriber("worker", "t", 0);
	OK(rmq_pull(c, "t", 10, 0, &m));
	cr_assert_eq(m->n, 2);
	cr_assert_str_eq(m->msg[0].payload, "b");
	cr_assert_eq(m->msg[0].seq, 2);
	cr_assert_eq(m->msg[0].redelivered, 1);
	cr_assert_str_eq(m->msg[1].payload, "c");
	cr_assert_eq(m->msg[1].redelivered, 0);
	OK(rmq_ack(c, "t", m->msg[1].seq));
	OK(rmq_ack(c, "t", 1)); /* below the floor: a no-op */
	rmq_msgs_free(m);
	rmq_client_close(c);

	c = ack_subscriber("worker", "t", 0);
	OK(rmq_pull(c, "t", 10, 0, &m));
	cr_assert_eq(m->n, 0, "acknowledged messages came again");
	rmq_msgs_free(m);
	cr_assert_eq(rmq_ack(c, "t", 4), RMQ_ERR_ARG, "ACK of an undelivered message");
	cr_assert_eq(rmq_ack(c, "t", 0), RMQ_ERR_ARG);
	cr_assert_eq(rmq_ack(c, "nope", 1), RMQ_ERR_NOTSUB, "%s", rmq_client_errstr(c));
	rmq_client_close(c);

	/* auto mode: ACK is refused, pulls carry no flag */
	c = subscriber("auto", "t");
	cr_assert_eq(rmq_ack(c, "t", 1), RMQ_ERR_STATE, "%s", rmq_client_errstr(c));
	struct rmq_client *bad = conn();
	struct rmq_subscriber_opts o = { .ack = 0, .ack_wait_ms = 5 };
	cr_assert_eq(rmq_register_subscriber_ex(bad, "x", &o), RMQ_ERR_ARG);
	cr_assert_eq(rmq_ack(bad, "t", 1), RMQ_ERR_STATE);
	rmq_client_close(bad);
	rmq_client_close(c);
	rmq_client_close(p);
}

/* Unacknowledged messages come again after the ack wait, also to a PULL
 * that waits forever. */
Test(durable, ack_wait_redelivers)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = ack_subscriber("worker", "t", 300);
	publish("t", "x");
	struct rmq_msgs *m;
	OK(rmq_pull(c, "t", 10, 0, &m));
	cr_assert_eq(m->n, 1);
	rmq_msgs_free(m);
	uint64_t t0 = now_ms();
	OK(rmq_pull(c, "t", 10, -1, &m));
	uint64_t took = now_ms() - t0;
	cr_assert_eq(m->n, 1);
	cr_assert_str_eq(m->msg[0].payload, "x");
	cr_assert_eq(m->msg[0].redelivered, 1);
	cr_assert(took >= 250 && took < (uint64_t)E2E_MS(3000), "took %llu ms",
		  (unsigned long long)took);
	OK(rmq_ack(c, "t", m->msg[0].seq));
	rmq_msgs_free(m);
	OK(rmq_pull(c, "t", 10, 400, &m));
	cr_assert_eq(m->n, 0, "redelivered after the ACK");
	rmq_msgs_free(m);
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(durable, subscribe_from)
{
	struct rmq_client *p = conn(), *c = p;
	struct rmq_topic_opts small = { .capacity = 4096, .onfull = RMQ_ONFULL_DROP_OLDEST };
	OK(rmq_create_topic(p, "t", &small));
	char msg[200];
	memset(msg, 'm', sizeof(msg));
	uint64_t last = 0;
	for (int i = 0; i < 100; i++)
		OK(rmq_send(p, "t", msg, sizeof(msg), &last));
	c = conn();
	OK(rmq_register_subscriber(c, "r"));
	uint64_t start = 99, first;
	OK(rmq_subscribe_from(c, "t", RMQ_FROM_FIRST, 0, &first));
	cr_assert_gt(first, 1, "a 4K topic kept all of 20K");
	cr_assert_leq(first, last);
	struct rmq_msgs *m;
	OK(rmq_pull(c, "t", 1000, 0, &m));
	cr_assert_eq(m->n, last - first + 1);
	cr_assert_eq(m->msg[0].seq, first);
	rmq_msgs_free(m);
	/* below the window: starts at the oldest retained, the gap shows */
	OK(rmq_subscribe_from(c, "t", RMQ_FROM_SEQ, 1, &start));
	cr_assert_eq(start, first);
	OK(rmq_subscribe_from(c, "t", RMQ_FROM_SEQ, last, &start));
	cr_assert_eq(start, last);
	OK(rmq_pull(c, "t", 10, 0, &m));
	cr_assert_eq(m->n, 1);
	cr_assert_eq(m->msg[0].seq, last);
	rmq_msgs_free(m);
	cr_assert_eq(rmq_subscribe_from(c, "t", RMQ_FROM_SEQ, last + 2, &start), RMQ_ERR_ARG);
	cr_assert(strstr(rmq_client_errstr(c), "past the end"), "%s", rmq_client_errstr(c));
	cr_assert_eq(rmq_subscribe_from(c, "t", RMQ_FROM_SEQ, 0, &start), RMQ_ERR_ARG);
	OK(rmq_subscribe_from(c, "t", RMQ_FROM_FIRST, 0, NULL));
	OK(rmq_subscribe_from(c, "t", RMQ_FROM_NEXT, 0, &start));
	cr_assert_eq(start, last + 1);
	OK(rmq_subscribe_from(c, "t", RMQ_FROM_DEFAULT, 0, &start));
	cr_assert_eq(start, 0);
	OK(rmq_pull(c, "t", 10, 0, &m));
	cr_assert_eq(m->n, 0);
	rmq_msgs_free(m);
	rmq_client_close(c);
	rmq_client_close(p);
}

/* --- live --- */

Test(live, receives_in_order)
{
	struct rmq_client *p = conn();
	create(p, "news");
	create(p, "other");
	struct rmq_client *c = conn();
	cr_assert_eq(rmq_subscribe_live(c, "news"), RMQ_OK, "%s", rmq_client_errstr(c));
	cr_assert_eq(rmq_subscribe_live(c, "other"), RMQ_OK, "%s", rmq_client_errstr(c));
	cr_assert_eq(rmq_live_count(c), 2);
	enum { N = 2000 };
	char buf[32];
	for (int i = 0; i < N; i++) {
		int len = snprintf(buf, sizeof(buf), "n%d", i);
		OK(rmq_send_queue(p, i % 2 ? "news" : "other", buf, (size_t)len));
	}
	OK(rmq_send_flush(p, NULL, 0, NULL));
	int next[2] = { 0, 1 };
	for (int i = 0; i < N; i++) {
		struct rmq_msg *m;
		cr_assert_eq(rmq_next_message(c, 3000, &m), RMQ_OK, "message %d: %s", i,
			     rmq_client_errstr(c));
		cr_assert_eq(m->kind, RMQ_MSG_DATA);
		cr_assert_eq(m->seq, 0);
		int which = !strcmp(m->topic, "news");
		snprintf(buf, sizeof(buf), "n%d", next[which]);
		cr_assert_str_eq(m->payload, buf);
		cr_assert_eq(m->len, strlen(buf));
		next[which] += 2;
		rmq_msg_free(m);
	}
	rmq_msg_free(NULL);
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(live, timeout_keeps_connection)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = conn();
	OK(rmq_subscribe_live(c, "t"));
	struct rmq_msg *m = (struct rmq_msg *)1;
	uint64_t t0 = now_ms();
	cr_assert_eq(rmq_next_message(c, 150, &m), RMQ_ERR_TIMEOUT);
	cr_assert_null(m);
	uint64_t took = now_ms() - t0;
	cr_assert(took >= 140 && took < 2000, "took %llu ms", (unsigned long long)took);
	cr_assert_eq(rmq_next_message(c, 0, &m), RMQ_ERR_TIMEOUT);
	OK(rmq_send(p, "t", "hi", 2, NULL));
	OK(rmq_next_message(c, 3000, &m));
	cr_assert_str_eq(m->payload, "hi");
	cr_assert_str_eq(m->topic, "t");
	rmq_msg_free(m);
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(live, unsubscribe_and_state)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = conn();
	OK(rmq_subscribe_live(c, "t"));
	/* publisher calls are refused while live */
	cr_assert_eq(rmq_send(c, "t", "x", 1, NULL), RMQ_ERR_STATE);
	cr_assert_eq(rmq_create_topic(c, "u", NULL), RMQ_ERR_STATE);
	cr_assert_eq(rmq_register_subscriber(c, "bob"), RMQ_ERR_STATE);
	cr_assert_eq(rmq_subscribe(c, "t"), RMQ_ERR_STATE);
	OK(rmq_send(p, "t", "kept", 4, NULL));
	sleep_ms(100); /* the push is on its way before the unsubscribe */
	OK(rmq_unsubscribe_live(c, "t"));
	OK(rmq_unsubscribe_live(c, "t")); /* no longer subscribed: fine */
	cr_assert_eq(rmq_live_count(c), 0);
	struct rmq_msg *m;
	OK(rmq_next_message(c, 1000, &m)); /* what arrived stays readable */
	cr_assert_str_eq(m->payload, "kept");
	rmq_msg_free(m);
	cr_assert_eq(rmq_next_message(c, 100, &m), RMQ_ERR_STATE);
	/* back to a plain connection */
	OK(rmq_send(c, "t", "x", 1, NULL));
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(live, missing_topic)
{
	struct rmq_client *c = conn();
	cr_assert_eq(rmq_subscribe_live(c, "nope"), RMQ_ERR_NOTOPIC);
	cr_assert_str_eq(rmq_client_errstr(c), "no such topic 'nope'");
	cr_assert_eq(rmq_live_count(c), 0);
	struct rmq_msg *m;
	cr_assert_eq(rmq_next_message(c, 0, &m), RMQ_ERR_STATE);
	cr_assert_eq(rmq_next_message(c, 0, NULL), RMQ_ERR_ARG);
	rmq_client_close(c);
}

Test(live, topic_deleted)
{
	struct rmq_client *p = conn();
	create(p, "a");
	create(p, "b");
	struct rmq_client *c = conn();
	OK(rmq_subscribe_live(c, "a"));
	OK(rmq_subscribe_live(c, "b"));
	OK(rmq_send(p, "a", "last", 4, NULL));
	OK(rmq_delete_topic(p, "a"));
	struct rmq_msg *m;
	OK(rmq_next_message(c, 3000, &m));
	cr_assert_eq(m->kind, RMQ_MSG_DATA);
	cr_assert_str_eq(m->payload, "last");
	rmq_msg_free(m);
	OK(rmq_next_message(c, 3000, &m));
	cr_assert_eq(m->kind, RMQ_MSG_TOPIC_GONE);
	cr_assert_str_eq(m->topic, "a");
	cr_assert_eq(m->len, 0);
	rmq_msg_free(m);
	cr_assert_eq(rmq_live_count(c), 1);
	/* b still works */
	OK(rmq_send(p, "b", "still", 5, NULL));
	OK(rmq_next_message(c, 3000, &m));
	cr_assert_str_eq(m->topic, "b");
	rmq_msg_free(m);
	rmq_client_close(c);
	rmq_client_close(p);
}

Test(live, pushes_queued_during_subscribe)
{
	/* Messages on "a" arrive while the client waits for the reply to
	 * SUBSCRIBE b: none may be lost or taken for the reply. */
	struct rmq_client *p = conn();
	create(p, "a");
	create(p, "b");
	struct rmq_client *c = conn();
	OK(rmq_subscribe_live(c, "a"));
	for (int i = 0; i < 500; i++)
		OK(rmq_send_queue(p, "a", "m", 1));
	OK(rmq_send_flush(p, NULL, 0, NULL));
	OK(rmq_subscribe_live(c, "b"));
	OK(rmq_send(p, "b", "b1", 2, NULL));
	int na = 0, nb = 0;
	struct rmq_msg *m;
	while (na + nb < 501 && rmq_next_message(c, 3000, &m) == RMQ_OK) {
		if (!strcmp(m->topic, "a"))
			na++;
		else
			nb++;
		rmq_msg_free(m);
	}
	cr_assert_eq(na, 500);
	cr_assert_eq(nb, 1);
	rmq_client_close(c); /* nothing left queued; also frees what would be */
	rmq_client_close(p);
}

/* --- errors --- */

Test(errors, strings)
{
	for (int s = 0; s >= RMQ_ERR_NOPERM; s--) {
		cr_assert_not_null(rmq_strerror(s));
		cr_assert_str_neq(rmq_strerror(s), "unknown status");
	}
	cr_assert_str_eq(rmq_strerror(42), "unknown status");
	cr_assert_str_eq(rmq_client_errstr(NULL), "out of memory");
	cr_assert_not_null(rmq_version());
	cr_assert(strchr(rmq_version(), '.'));
}

/* rmq_auth and the statuses of refused authentication and permissions,
 * against a user made with ACL SETUSER (over the harness's own client). */
Test(errors, auth_and_noperm)
{
	struct e2e_client *adm = e2e_connect(g_port, TMO);
	cr_assert_not_null(adm);
	struct e2e_reply *r = e2e_cmd(adm, "ACL", "SETUSER", "lib", "on", ">libpw", "&ok.*",
				      "+@publish", "+@connection", NULL);
	cr_assert(r && r->type == E2E_STATUS, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	r = e2e_cmd(adm, "CREATE", "ok.1", NULL);
	e2e_reply_free(r);
	e2e_close(adm);

	int st;
	struct rmq_client *c = rmq_client_connect(HOST, g_port, TMO, &st);
	cr_assert_eq(st, RMQ_OK);
	/* the default user has no password here: AUTH pass is an error */
	cr_assert_eq(rmq_auth(c, NULL, "x"), RMQ_ERR_SERVER);
	cr_assert_eq(rmq_auth(c, "lib", "wrong"), RMQ_ERR_AUTH);
	cr_assert(strstr(rmq_client_errstr(c), "invalid username-password pair"), "%s",
		  rmq_client_errstr(c));
	cr_assert_eq(rmq_auth(c, "lib", NULL), RMQ_ERR_ARG);
	cr_assert_eq(rmq_auth(c, "lib", "libpw"), RMQ_OK);
	uint64_t seq = 0;
	cr_assert_eq(rmq_send(c, "ok.1", "m", 1, &seq), RMQ_OK);
	cr_assert_eq(seq, 1);
	cr_assert_eq(rmq_create_topic(c, "ok.2", NULL), RMQ_ERR_NOPERM);
	cr_assert(strstr(rmq_client_errstr(c), "'create' command"), "%s", rmq_client_errstr(c));
	cr_assert_eq(rmq_send(c, "other", "m", 1, &seq), RMQ_ERR_NOPERM);
	/* the connection goes on */
	cr_assert_eq(rmq_send(c, "ok.1", "n", 1, &seq), RMQ_OK);
	cr_assert_eq(seq, 2);
	rmq_client_close(c);
}

Test(errors, server_gone)
{
	struct rmq_client *c = conn();
	create(c, "t");
	cr_assert_eq(WIFEXITED(server_stop()), 1);
	int rc = rmq_send(c, "t", "x", 1, NULL);
	cr_assert_eq(rc, RMQ_ERR_CONN, "%d %s", rc, rmq_client_errstr(c));
	cr_assert(strstr(rmq_client_errstr(c), "connection lost"), "%s", rmq_client_errstr(c));
	cr_assert_eq(rmq_send(c, "t", "x", 1, NULL), RMQ_ERR_CONN);
	rmq_client_close(c);
}

Test(errors, no_sigpipe)
{
	/* Writing megabytes to a server that went away must end in
	 * RMQ_ERR_CONN, not in SIGPIPE killing the test. */
	struct rmq_client *c = conn();
	create(c, "t");
	struct rmq_client *live = conn();
	OK(rmq_subscribe_live(live, "t"));
	server_stop();
	static char chunk[64 * 1024];
	int rc = RMQ_OK;
	for (int i = 0; i < 200 && rc == RMQ_OK; i++)
		rc = rmq_send_queue(c, "t", chunk, sizeof(chunk));
	if (rc == RMQ_OK)
		rc = rmq_send_flush(c, NULL, 0, NULL);
	cr_assert_eq(rc, RMQ_ERR_CONN, "%d %s", rc, rmq_client_errstr(c));
	size_t n;
	cr_assert_eq(rmq_send_flush(c, NULL, 0, &n), RMQ_ERR_CONN);
	struct rmq_msg *m;
	cr_assert_eq(rmq_next_message(live, 1000, &m), RMQ_ERR_CONN);
	cr_assert_eq(rmq_subscribe_live(live, "t"), RMQ_ERR_CONN);
	rmq_client_close(live);
	rmq_client_close(c);
}

Test(errors, pull_wait_server_gone)
{
	struct rmq_client *p = conn();
	create(p, "t");
	struct rmq_client *c = subscriber("alice", "t");
	rmq_client_close(p);
	pid_t srv = g_srv;
	/* stop the server while the pull waits: the server answers the
	 * parked PULL (empty) or closes; either way no hang */
	pid_t k = fork();
	if (k == 0) {
		sleep_ms(150);
		kill(srv, SIGTERM);
		_exit(0);
	}
	struct rmq_msgs *m = NULL;
	uint64_t t0 = now_ms();
	int rc = rmq_pull(c, "t", 10, 5000, &m);
	cr_assert(now_ms() - t0 < 4000);
	cr_assert(rc == RMQ_OK || rc == RMQ_ERR_CONN, "%d %s", rc, rmq_client_errstr(c));
	rmq_msgs_free(m);
	waitpid(k, NULL, 0);
	rmq_client_close(c);
}

/* A fake server: accepts one connection and answers each request it reads
 * with the next scripted reply (raw RESP bytes). */
struct fake {
	int lfd;
	const char *const *replies;
	size_t n;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char buf[4096];
	for (size_t i = 0; i < f->n; i++) {
		if (read(fd, buf, sizeof(buf)) <= 0)
			break;
		if (write(fd, f->replies[i], strlen(f->replies[i])) < 0)
			break;
	}
	sleep_ms(200);
	close(fd);
	return NULL;
}

Test(errors, unexpected_replies)
{
	static const char *const replies[] = {
		"-WRONGTYPE not what you think\r\n", /* CREATE: another error code */
		":5\r\n",                            /* CREATE: wrong type */
		"+OK\r\n",                           /* PUBLISH: wrong type */
	};
	int port;
	struct fake f = { .lfd = silent_listener(&port), .replies = replies, .n = 3 };
	pthread_t th;
	pthread_create(&th, NULL, fake_main, &f);
	int st;
	struct rmq_client *c = rmq_client_connect(HOST, port, TMO, &st);
	cr_assert_eq(st, RMQ_OK);
	cr_assert_eq(rmq_create_topic(c, "t", NULL), RMQ_ERR_SERVER);
	cr_assert_str_eq(rmq_client_errstr(c), "WRONGTYPE not what you think");
	cr_assert_eq(rmq_create_topic(c, "t", NULL), RMQ_ERR_PROTO);
	cr_assert_str_eq(rmq_client_errstr(c), "unexpected reply to CREATE (integer)");
	cr_assert_eq(rmq_send(c, "t", "x", 1, NULL), RMQ_ERR_PROTO);
	cr_assert_str_eq(rmq_client_errstr(c), "unexpected reply to PUBLISH (status)");
	rmq_client_close(c);
	pthread_join(th, NULL);
	close(f.lfd);
}

Test(errors, unparseable_reply)
{
	static const char *const replies[] = {
		"+OK\r\n",                       /* REGISTER SUBSCRIBER */
		"*1\r\n*2\r\n$1\r\nx\r\n:1\r\n", /* PULL: entry is [string, int] */
		"@@ not RESP\r\n",               /* unparseable */
	};
	int port;
	struct fake f = { .lfd = silent_listener(&port), .replies = replies, .n = 3 };
	pthread_t th;
	pthread_create(&th, NULL, fake_main, &f);
	int st;
	struct rmq_client *c = rmq_client_connect(HOST, port, TMO, &st);
	cr_assert_eq(st, RMQ_OK);
	OK(rmq_register_subscriber(c, "alice"));
	struct rmq_msgs *m = (struct rmq_msgs *)1;
	cr_assert_eq(rmq_pull(c, "t", 10, 0, &m), RMQ_ERR_PROTO);
	cr_assert_null(m);
	cr_assert_eq(rmq_send(c, "t", "x", 1, NULL), RMQ_ERR_PROTO);
	cr_assert(strstr(rmq_client_errstr(c), "cannot parse"), "%s", rmq_client_errstr(c));
	cr_assert_eq(rmq_send(c, "t", "x", 1, NULL), RMQ_ERR_CONN); /* closed after that */
	rmq_client_close(c);
	pthread_join(th, NULL);
	close(f.lfd);
}

/* --- tls: the library over TLS (rmq_client_connect_tls) --- */

static char g_certs[64]; /* scripts/gen-test-certs.sh's output */

static const char *cert(const char *name)
{
	static char paths[8][128];
	static int k;
	char *p = paths[k++ % 8];
	snprintf(p, sizeof(paths[0]), "%s/%s", g_certs, name);
	return p;
}

/* The certificates, then a server on a free TLS port only (--port 0 turns
 * the plain one off), client certificates optional. */
static void tls_start(void)
{
	cr_assert(e2e_tmpdir("client-tls", g_certs) == 0, "%s", e2e_last_error());
	struct e2e_output o;
	int st = e2e_run((const char *const[]){ "bash",
						RINGMQ_SOURCE_DIR "/scripts/gen-test-certs.sh",
						g_certs, NULL },
			 &o, 30000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "gen-test-certs.sh: %s", o.err);
	e2e_output_free(&o);
	char tp[16];
	int tport = free_port();
	snprintf(tp, sizeof(tp), "%d", tport);
	char crt[128], key[128], ca[128];
	snprintf(crt, sizeof(crt), "%s", cert("server.crt"));
	snprintf(key, sizeof(key), "%s", cert("server.key"));
	snprintf(ca, sizeof(ca), "%s", cert("ca.crt"));
	server_start_args((const char *const[]){ "--tls-port", tp, "--tls-cert-file", crt,
						 "--tls-key-file", key, "--tls-ca-cert-file", ca,
						 "--tls-auth-clients", "optional", "--max-payload",
						 "4M", NULL });
	cr_assert_eq(g_port, tport, "the startup line names the TLS port");
}

static void tls_fini(void)
{
	fini();
	e2e_rmrf(g_certs);
}

TestSuite(tls, .init = tls_start, .fini = tls_fini, .timeout = E2E_TEST_TIMEOUT(60.0));

/* A TLS client of the server verifying it with the test CA; cert/key:
 * the client certificate's files (NULL: none). */
static struct rmq_client *tls_conn(const char *crt, const char *key)
{
	struct rmq_tls_opts o = { .ca_file = cert("ca.crt"), .cert_file = crt, .key_file = key };
	int st = -99;
	struct rmq_client *c = rmq_client_connect_tls(HOST, g_port, TMO, &o, &st);
	cr_assert_not_null(c);
	cr_assert_eq(st, RMQ_OK, "TLS connect: %s", rmq_client_errstr(c));
	return c;
}

Test(tls, live_and_big)
{
	struct rmq_client *c = tls_conn(NULL, NULL);
	create(c, "t");
	struct rmq_client *live = tls_conn(cert("client.crt"), cert("client.key"));
	OK(rmq_subscribe_live(live, "t"));
	size_t big = 3u << 20;
	char *p = malloc(big);
	cr_assert_not_null(p);
	for (size_t i = 0; i < big; i++)
		p[i] = (char)(i * 7 + (i >> 12));
	for (int i = 0; i < 100; i++) {
		char m[32];
		int n = snprintf(m, sizeof(m), "m%d", i);
		uint64_t seq;
		OK(rmq_send(c, "t", m, (size_t)n, &seq));
		cr_assert_eq(seq, (uint64_t)i + 1);
	}
	OK(rmq_send(c, "t", p, big, NULL));
	for (int i = 0; i <= 100; i++) {
		struct rmq_msg *m;
		int rc = rmq_next_message(live, TMO, &m);
		cr_assert_eq(rc, RMQ_OK, "message %d: %s", i, rmq_client_errstr(live));
		if (i < 100) {
			char want[32];
			int n = snprintf(want, sizeof(want), "m%d", i);
			cr_assert(m->len == (size_t)n && !memcmp(m->payload, want, (size_t)n));
		} else {
			cr_assert(m->len == big && !memcmp(m->payload, p, big), "big message");
		}
		rmq_msg_free(m);
	}
	free(p);
	rmq_client_close(live);
	rmq_client_close(c);
}

Test(tls, pipeline_and_pull)
{
	struct rmq_client *c = tls_conn(NULL, NULL);
	create(c, "t");
	struct rmq_client *d = tls_conn(NULL, NULL);
	OK(rmq_register_subscriber(d, "tlsd"));
	OK(rmq_subscribe(d, "t"));
	enum { N = 20000 };
	static uint64_t seqs[N];
	char m[64];
	memset(m, 'x', sizeof(m));
	for (int i = 0; i < N; i++)
		OK(rmq_send_queue(c, "t", m, sizeof(m)));
	size_t n = 0;
	OK(rmq_send_flush(c, seqs, N, &n));
	cr_assert_eq(n, (size_t)N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(seqs[i], (uint64_t)i + 1);
	size_t got = 0;
	while (got < N) {
		struct rmq_msgs *b;
		OK(rmq_pull(d, "t", 1000, 0, &b));
		cr_assert_gt(b->n, 0);
		cr_assert_eq(b->msg[0].seq, (uint64_t)got + 1);
		got += b->n;
		rmq_msgs_free(b);
	}
	rmq_client_close(d);
	rmq_client_close(c);
}

Test(tls, verification)
{
	int st;
	/* the system's CAs do not know the test CA */
	struct rmq_client *c = rmq_client_connect_tls(HOST, g_port, TMO, NULL, &st);
	cr_assert_eq(st, RMQ_ERR_CONN);
	cr_assert(strstr(rmq_client_errstr(c), "certificate verify failed"), "%s",
		  rmq_client_errstr(c));
	cr_assert_eq(rmq_send(c, "t", "x", 1, NULL), RMQ_ERR_CONN);
	rmq_client_close(c);
	/* ... unless told not to verify */
	struct rmq_tls_opts o = { .insecure = 1 };
	c = rmq_client_connect_tls(HOST, g_port, TMO, &o, &st);
	cr_assert_eq(st, RMQ_OK, "%s", rmq_client_errstr(c));
	rmq_client_close(c);
	/* the name: the certificate has localhost and 127.0.0.1 */
	struct rmq_tls_opts n = { .ca_file = cert("ca.crt") };
	c = rmq_client_connect_tls("localhost", g_port, TMO, &n, &st);
	cr_assert_eq(st, RMQ_OK, "%s", rmq_client_errstr(c));
	rmq_client_close(c);
	n.server_name = "wrong.example";
	c = rmq_client_connect_tls(HOST, g_port, TMO, &n, &st);
	cr_assert_eq(st, RMQ_ERR_CONN);
	cr_assert(strstr(rmq_client_errstr(c), "hostname mismatch"), "%s", rmq_client_errstr(c));
	rmq_client_close(c);
	/* files that cannot be loaded */
	struct rmq_tls_opts bad = { .ca_file = "/nonexistent/ca.crt" };
	c = rmq_client_connect_tls(HOST, g_port, TMO, &bad, &st);
	cr_assert_eq(st, RMQ_ERR_ARG);
	cr_assert(strstr(rmq_client_errstr(c), "No such file"), "%s", rmq_client_errstr(c));
	rmq_client_close(c);
	struct rmq_tls_opts badkey = { .ca_file = cert("ca.crt"),
				       .cert_file = cert("client.crt"),
				       .key_file = cert("other.key") };
	c = rmq_client_connect_tls(HOST, g_port, TMO, &badkey, &st);
	cr_assert_eq(st, RMQ_ERR_ARG, "%s", rmq_client_errstr(c));
	rmq_client_close(c);
	/* a client certificate another CA signed: refused by the server (at
	 * the handshake, or, under TLS 1.3, at the first request) */
	struct rmq_tls_opts other = { .ca_file = cert("ca.crt"),
				      .cert_file = cert("other.crt"),
				      .key_file = cert("other.key") };
	c = rmq_client_connect_tls(HOST, g_port, TMO, &other, &st);
	if (st == RMQ_OK)
		st = rmq_create_topic(c, "never", NULL);
	cr_assert_eq(st, RMQ_ERR_CONN, "%s", rmq_client_errstr(c));
	rmq_client_close(c);
	/* a plain client on the TLS port: its first request fails at once */
	c = rmq_client_connect(HOST, g_port, TMO, &st);
	cr_assert_eq(st, RMQ_OK);
	uint64_t t0 = now_ms();
	cr_assert_eq(rmq_create_topic(c, "never", NULL), RMQ_ERR_CONN);
	cr_assert_lt(now_ms() - t0, (uint64_t)TMO);
	rmq_client_close(c);
}
