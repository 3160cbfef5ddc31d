/* test_cluster_client.c - the C client library against a 3-node cluster
 * (issue 17): a local etcd on free loopback ports in a temporary data dir
 * and three ringmq-server nodes, each with its own temporary --dir, all
 * stopped by PID and removed at the end.
 *
 * Checks that a plain client (rmq_client_connect to one node) follows
 * -MOVED for every call about a topic and turns into a cluster client,
 * that rmq_client_connect_cluster reads the slot map and routes directly,
 * and that publishing (one at a time and pipelined over several nodes),
 * durable subscriptions (DSUBSCRIBE, PULL, ACK at each topic's owner under
 * one name) and live subscriptions on several nodes work through it.
 *
 * Exits 77 (skipped) only when there is no etcd binary.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd_spawn.h"
#include "harness.h"
#include "ringmq.h"
#include "slot.h"

#define NODES 3
#define NTOPICS 24

static struct e2e_server node[NODES];
static pid_t etcd_pid;
static char etcd_dir[64];
static int failures;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			failures++;                                          \
			return;                                              \
		}                                                            \
	} while (0)

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

static bool etcd_found(void)
{
	const char *path = getenv("PATH");
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char f[4200];
		snprintf(f, sizeof(f), "%s/etcd", d);
		if (access(f, X_OK) == 0)
			return true;
	}
	return false;
}

/* Starts etcd; returns its client URL in url, or -1. */
static int start_etcd(char *url, size_t cap)
{
	if (e2e_tmpdir("etcd", etcd_dir) != 0)
		return -1;
	int cport = free_port(), pport = free_port();
	if (cport < 0 || pport < 0)
		return -1;
	pid_t pid = rmq_etcd_spawn("etcd", etcd_dir, cport, pport);
	if (pid < 0)
		return -1;
	etcd_pid = pid;
	snprintf(url, cap, "http://127.0.0.1:%d", cport);
	return 0;
}

static void stop_all(void)
{
	for (int i = 0; i < NODES; i++)
		if (node[i].pid)
			e2e_server_stop(&node[i], SIGTERM, 10000);
	if (etcd_pid) {
		kill(etcd_pid, SIGTERM);
		for (int i = 0; i < 100; i++) {
			if (waitpid(etcd_pid, NULL, WNOHANG) == etcd_pid) {
				etcd_pid = 0;
				break;
			}
			e2e_sleep_ms(100);
		}
		if (etcd_pid) {
			kill(etcd_pid, SIGKILL);
			waitpid(etcd_pid, NULL, 0);
			etcd_pid = 0;
		}
	}
	if (etcd_dir[0])
		e2e_rmrf(etcd_dir);
}

static void topic_name(int i, char *buf, size_t cap)
{
	snprintf(buf, cap, "ct-%d", i);
}

/* A plain client on node 0 creates every topic: those of other nodes'
 * slots come back as -MOVED, which it follows. */
static void test_moved_followed(void)
{
	int st;
	struct rmq_client *c = rmq_client_connect("127.0.0.1", node[0].port, E2E_MS(5000), &st);
	CHECK(st == RMQ_OK, "connect: %s", rmq_client_errstr(c));
	CHECK(rmq_cluster_nodes(c) == 0, "a plain client starts in single-node mode");
	/* the first slot map may take a moment: CLUSTERDOWN until then */
	uint64_t until = e2e_now_ms() + (uint64_t)E2E_MS(15000);
	char t[32];
	topic_name(0, t, sizeof(t));
	while ((st = rmq_create_topic(c, t, NULL)) == RMQ_ERR_CLUSTER && e2e_now_ms() < until)
		e2e_sleep_ms(100);
	CHECK(st == RMQ_OK, "create %s: %d %s", t, st, rmq_client_errstr(c));
	for (int i = 1; i < NTOPICS; i++) {
		topic_name(i, t, sizeof(t));
		st = rmq_create_topic(c, t, NULL);
		CHECK(st == RMQ_OK, "create %s: %s", t, rmq_client_errstr(c));
	}
	CHECK(rmq_cluster_nodes(c) == NODES, "after -MOVED the client knows %d nodes, not %zu",
	      NODES, rmq_cluster_nodes(c));
	for (int i = 0; i < NTOPICS; i++) {
		topic_name(i, t, sizeof(t));
		uint64_t seq = 0;
		st = rmq_send(c, t, "m1", 2, &seq);
		CHECK(st == RMQ_OK && seq == 1, "send %s: %s (seq %llu)", t, rmq_client_errstr(c),
		      (unsigned long long)seq);
	}
	CHECK(rmq_create_topic(c, "ct-0", NULL) == RMQ_ERR_EXISTS, "create again at the owner");
	rmq_client_close(c);
	fprintf(stderr, "PASS moved_followed\n");
}

/* rmq_client_connect_cluster from node 2: pipelined sends over every
 * node's topics, then a durable subscriber reads and acknowledges them at
 * each owner. */
static void test_cluster_client(void)
{
	int st;
	struct rmq_client *c =
		rmq_client_connect_cluster("127.0.0.1", node[2].port, E2E_MS(5000), &st);
	CHECK(st == RMQ_OK, "connect_cluster: %s", rmq_client_errstr(c));
	CHECK(rmq_cluster_nodes(c) == NODES, "slot map names %zu nodes", rmq_cluster_nodes(c));
	char t[32];
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < NTOPICS; i++) {
			topic_name(i, t, sizeof(t));
			CHECK(rmq_send_queue(c, t, "m2", 2) == RMQ_OK, "queue: %s",
			      rmq_client_errstr(c));
		}
	uint64_t seqs[3 * NTOPICS];
	size_t n = 0;
	st = rmq_send_flush(c, seqs, 3 * NTOPICS, &n);
	CHECK(st == RMQ_OK && n == 3 * NTOPICS, "flush: %s (%zu)", rmq_client_errstr(c), n);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < NTOPICS; i++)
			CHECK(seqs[round * NTOPICS + i] == (uint64_t)(2 + round),
			      "topic %d round %d got seq %llu", i, round,
			      (unsigned long long)seqs[round * NTOPICS + i]);
	rmq_client_close(c);

	struct rmq_client *d =
		rmq_client_connect_cluster("127.0.0.1", node[1].port, E2E_MS(5000), &st);
	CHECK(st == RMQ_OK, "connect_cluster: %s", rmq_client_errstr(d));
	struct rmq_subscriber_opts o = { .ack = 1 };
	CHECK(rmq_register_subscriber_ex(d, "csub", &o) == RMQ_OK, "register: %s",
	      rmq_client_errstr(d));
	for (int i = 0; i < NTOPICS; i++) {
		topic_name(i, t, sizeof(t));
		uint64_t start = 0;
		st = rmq_subscribe_from(d, t, RMQ_FROM_FIRST, 0, &start);
		CHECK(st == RMQ_OK && start == 1, "dsubscribe %s: %s", t, rmq_client_errstr(d));
		struct rmq_msgs *m = NULL;
		st = rmq_pull(d, t, 10, 1000, &m);
		CHECK(st == RMQ_OK && m->n == 4, "pull %s: %s (%zu)", t, rmq_client_errstr(d),
		      m ? m->n : 0);
		CHECK(m->msg[0].seq == 1 && m->msg[3].seq == 4 && m->msg[3].len == 2,
		      "pulled seqs of %s", t);
		rmq_msgs_free(m);
		CHECK(rmq_ack(d, t, 4) == RMQ_OK, "ack %s: %s", t, rmq_client_errstr(d));
	}
	rmq_client_close(d);
	fprintf(stderr, "PASS cluster_client\n");
}

/* A live subscriber on every topic (so on every node) receives what a
 * publisher sends through another node. */
static void test_live(void)
{
	int st;
	struct rmq_client *s = rmq_client_connect("127.0.0.1", node[1].port, E2E_MS(5000), &st);
	CHECK(st == RMQ_OK, "connect: %s", rmq_client_errstr(s));
	char t[32];
	for (int i = 0; i < NTOPICS; i++) {
		topic_name(i, t, sizeof(t));
		CHECK(rmq_subscribe_live(s, t) == RMQ_OK, "subscribe %s: %s", t,
		      rmq_client_errstr(s));
	}
	CHECK(rmq_live_count(s) == NTOPICS, "live count %zu", rmq_live_count(s));
	CHECK(rmq_cluster_nodes(s) == NODES, "subscriber knows %zu nodes", rmq_cluster_nodes(s));
	struct rmq_client *p = rmq_client_connect("127.0.0.1", node[0].port, E2E_MS(5000), &st);
	CHECK(st == RMQ_OK, "connect: %s", rmq_client_errstr(p));
	for (int i = 0; i < NTOPICS; i++) {
		topic_name(i, t, sizeof(t));
		char body[32];
		int len = snprintf(body, sizeof(body), "live-%d", i);
		CHECK(rmq_send(p, t, body, (size_t)len, NULL) == RMQ_OK, "send: %s",
		      rmq_client_errstr(p));
	}
	bool seen[NTOPICS] = { false };
	for (int k = 0; k < NTOPICS; k++) {
		struct rmq_msg *m = NULL;
		st = rmq_next_message(s, E2E_MS(5000), &m);
		CHECK(st == RMQ_OK, "message %d: %s", k, rmq_client_errstr(s));
		char *end = NULL;
		long i = strncmp(m->topic, "ct-", 3) == 0 ? strtol(m->topic + 3, &end, 10) : -1;
		CHECK(end && end != m->topic + 3 && i >= 0 && i < NTOPICS && !seen[i],
		      "unexpected %s", m->topic);
		char body[32];
		snprintf(body, sizeof(body), "live-%ld", i);
		CHECK(m->len == strlen(body) && memcmp(m->payload, body, m->len) == 0,
		      "payload of %s", m->topic);
		seen[i] = true;
		rmq_msg_free(m);
	}
	struct rmq_msg *m = NULL;
	CHECK(rmq_next_message(s, 200, &m) == RMQ_ERR_TIMEOUT, "nothing more");
	topic_name(5, t, sizeof(t));
	CHECK(rmq_unsubscribe_live(s, t) == RMQ_OK, "unsubscribe: %s", rmq_client_errstr(s));
	CHECK(rmq_live_count(s) == NTOPICS - 1, "live count after unsubscribe");
	rmq_client_close(p);
	rmq_client_close(s);
	fprintf(stderr, "PASS live\n");
}

/* ringmq-pub and ringmq-sub with --cluster, and without it (the first
 * -MOVED turns it on): topics of every node created, published to and
 * pulled from through one node's port. */
static const char pub_bin[] = RINGMQ_BIN_DIR "/ringmq-pub";
static const char sub_bin[] = RINGMQ_BIN_DIR "/ringmq-sub";

static void test_cli(void)
{
	char port[16], port2[16];
	snprintf(port, sizeof(port), "%d", node[0].port);
	snprintf(port2, sizeof(port2), "%d", node[2].port);
	const char *pub[] = { pub_bin, "--cluster", "-H",    "127.0.0.1", "-p",    port,    "-q",
			      "-c",    "cli-0",     "-c",    "cli-1",     "-c",    "cli-2", "-c",
			      "cli-3", "-P",        "cli-0", "a0",        "-P",    "cli-1", "a1",
			      "-P",    "cli-2",     "a2",    "-P",        "cli-3", "a3",    NULL };
	struct e2e_output o;
	int ws = e2e_run(pub, &o, E2E_MS(10000));
	CHECK(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "ringmq-pub --cluster: %s",
	      o.err ? o.err : "");
	e2e_output_free(&o);
	const char *pub2[] = { pub_bin, "-H", "127.0.0.1", "-p",    port2, "-P",
			       "cli-0", "b0", "-P",        "cli-3", "b3",  NULL };
	ws = e2e_run(pub2, &o, E2E_MS(10000));
	CHECK(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && o.out &&
		      strstr(o.out, "#2 to 'cli-0'") && strstr(o.out, "#2 to 'cli-3'"),
	      "ringmq-pub without --cluster: %s / %s", o.out ? o.out : "", o.err ? o.err : "");
	e2e_output_free(&o);
	const char *sub[] = { sub_bin,     "-H",     "127.0.0.1", "-p",     port2,
			      "--cluster", "--name", "clisub",    "--from", "first",
			      "--pull",    "cli-0",  "--pull",    "cli-1",  "--pull",
			      "cli-2",     "--pull", "cli-3",     NULL };
	ws = e2e_run(sub, &o, E2E_MS(10000));
	CHECK(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && o.out, "ringmq-sub --cluster: %s",
	      o.err ? o.err : "");
	const char *want[] = { "a0", "b0", "a1", "a2", "a3", "b3" };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CHECK(strstr(o.out, want[i]), "ringmq-sub printed no %s: %s", want[i], o.out);
	e2e_output_free(&o);
	fprintf(stderr, "PASS cli\n");
}

/* --- fake nodes: -ASK and the redirection bound, which the real nodes do
 * not produce on demand --- */

enum fake_kind { FAKE_ASK, FAKE_TARGET, FAKE_LOOP, FAKE_SUB_OLD, FAKE_SUB_NEW, FAKE_SUB_DROP };

struct fake {
	enum fake_kind kind;
	int lfd, port;
	int other_port; /* FAKE_ASK: where it sends the client */
	pthread_t th;
	_Atomic int publishes, asked_publishes, askings, subscribes;
};

static void send_str(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) < 0)
		return; /* the client went away: its test says so */
}

/* A live subscription's confirmation or end, or a message. */
static void send_push(int fd, const char *kind, const char *topic, const char *last)
{
	char out[256];
	snprintf(out, sizeof(out), "*3\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n%s", strlen(kind), kind,
		 strlen(topic), topic, last);
	send_str(fd, out);
}

/* Reads one RESP array of bulk strings from fd into argv (NUL-terminated
 * copies in buf). Returns argc, or -1 at EOF or on anything else. */
static int read_cmd(int fd, char *buf, size_t cap, char **argv, int max)
{
	size_t len = 0;
	for (;;) {
		/* complete? */
		size_t i = 0;
		int argc = -1, n = 0;
		char *nl;
		if (len && buf[0] == '*' && (nl = memchr(buf, '\n', len))) {
			argc = (int)strtol(buf + 1, NULL, 10);
			i = (size_t)(nl - buf) + 1;
			for (n = 0; n < argc && n < max; n++) {
				char *l = memchr(buf + i, '\n', len - i);
				if (!l || buf[i] != '$')
					break;
				size_t bl = (size_t)strtoul(buf + i + 1, NULL, 10);
				size_t start = (size_t)(l - buf) + 1;
				if (start + bl + 2 > len)
					break;
				argv[n] = buf + start;
				i = start + bl + 2;
			}
			if (n == argc) {
				for (int k = 0; k < n; k++) /* the \r after each */
					*strchr(argv[k], '\r') = '\0';
				return argc;
			}
		}
		if (len == cap)
			return -1;
		ssize_t r = read(fd, buf + len, cap - len);
		if (r <= 0)
			return -1;
		len += (size_t)r;
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	for (;;) {
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		bool asking = false;
		char buf[4096], *argv[8], out[128];
		int argc;
		while ((argc = read_cmd(fd, buf, sizeof(buf) - 1, argv, 8)) > 0) {
			const char *reply = "-ERR unknown\r\n";
			if (!strcasecmp(argv[0], "CLUSTER") &&
			    (f->kind == FAKE_ASK || f->kind == FAKE_SUB_DROP)) {
				/* every slot is this node's */
				snprintf(
					out, sizeof(out),
					"*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n",
					f->port);
				reply = out;
			} else if (!strcasecmp(argv[0], "CLUSTER")) {
				reply = "*0\r\n";
			} else if (!strcasecmp(argv[0], "SUBSCRIBE") && argc == 2) {
				/* the old owner: takes it once, then ends it as a
				 * moved slot does and redirects the next one */
				int k = f->subscribes++;
				if (f->kind == FAKE_SUB_OLD && k > 0) {
					snprintf(out, sizeof(out), "-MOVED %u 127.0.0.1:%d\r\n",
						 (unsigned)rmq_slot(argv[1], strlen(argv[1])),
						 f->other_port);
					reply = out;
				} else {
					send_push(fd, "subscribe", argv[1], ":1\r\n");
					if (f->kind == FAKE_SUB_DROP && k == 0) {
						/* the first connection is lost */
						e2e_sleep_ms(100);
						break;
					}
					if (f->kind == FAKE_SUB_OLD) {
						e2e_sleep_ms(100);
						send_push(fd, "sunsubscribe", argv[1], ":0\r\n");
					} else {
						send_push(fd, "smessage", argv[1],
							  "$5\r\nhello\r\n");
					}
					continue;
				}
			} else if (!strcasecmp(argv[0], "ASKING")) {
				f->askings++;
				asking = true;
				reply = "+OK\r\n";
			} else if (!strcasecmp(argv[0], "PUBLISH")) {
				f->publishes++;
				if (f->kind == FAKE_ASK) {
					snprintf(out, sizeof(out), "-ASK 100 127.0.0.1:%d\r\n",
						 f->other_port);
					reply = out;
				} else if (f->kind == FAKE_LOOP) {
					snprintf(out, sizeof(out), "-MOVED 100 127.0.0.1:%d\r\n",
						 f->port);
					reply = out;
				} else if (asking) {
					f->asked_publishes++;
					reply = ":7\r\n";
				} else {
					reply = "-ERR PUBLISH without ASKING\r\n";
				}
				asking = false;
			}
			if (write(fd, reply, strlen(reply)) < 0)
				break;
		}
		close(fd);
	}
}

static int fake_start(struct fake *f, enum fake_kind kind)
{
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(f->lfd, 8) != 0 || getsockname(f->lfd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	f->port = ntohs(a.sin_port);
	return pthread_create(&f->th, NULL, fake_main, f);
}

static void fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	close(f->lfd);
	pthread_join(f->th, NULL);
}

/* -ASK: ASKING then the command at the target, once per -ASK (the slot
 * map is not changed by it); -MOVED in a loop: RMQ_ERR_CLUSTER after 5. */
static void test_ask_and_bound(void)
{
	struct fake a, b, loop;
	CHECK(fake_start(&b, FAKE_TARGET) == 0, "fake target");
	CHECK(fake_start(&a, FAKE_ASK) == 0, "fake asker");
	a.other_port = b.port;
	CHECK(fake_start(&loop, FAKE_LOOP) == 0, "fake loop");
	int st;
	struct rmq_client *c = rmq_client_connect("127.0.0.1", a.port, 5000, &st);
	uint64_t seq = 0;
	int r1 = st == RMQ_OK ? rmq_send(c, "t", "x", 1, &seq) : st;
	uint64_t seq2 = 0;
	int r2 = r1 == RMQ_OK ? rmq_send(c, "t", "y", 1, &seq2) : r1;
	char err1[256];
	snprintf(err1, sizeof(err1), "%s", rmq_client_errstr(c));
	rmq_client_close(c);
	c = rmq_client_connect("127.0.0.1", loop.port, 5000, &st);
	int r3 = st == RMQ_OK ? rmq_send(c, "t", "x", 1, NULL) : st;
	char err3[256];
	snprintf(err3, sizeof(err3), "%s", rmq_client_errstr(c));
	rmq_client_close(c);
	fake_stop(&a);
	fake_stop(&b);
	fake_stop(&loop);
	CHECK(r1 == RMQ_OK && r2 == RMQ_OK && seq == 7 && seq2 == 7, "sends through -ASK: %d %d %s",
	      r1, r2, err1);
	CHECK(a.publishes == 2 && b.askings == 2 && b.asked_publishes == 2,
	      "each -ASK: one ASKING and one PUBLISH at the target (%d %d %d)", a.publishes,
	      b.askings, b.asked_publishes);
	CHECK(r3 == RMQ_ERR_CLUSTER && strstr(err3, "too many cluster redirections"),
	      "a -MOVED loop: %d %s", r3, err3);
	CHECK(loop.publishes == 6, "the first try and 5 redirections, not %d", loop.publishes);
	fprintf(stderr, "PASS ask_and_bound\n");
}

/* A node ends a live subscription unasked (its slot moved): the library
 * subscribes again, is redirected to the new owner and gets its
 * messages from there. */
static void test_resubscribe(void)
{
	struct fake old, neu;
	CHECK(fake_start(&neu, FAKE_SUB_NEW) == 0, "fake new owner");
	CHECK(fake_start(&old, FAKE_SUB_OLD) == 0, "fake old owner");
	old.other_port = neu.port;
	int st;
	struct rmq_client *c = rmq_client_connect("127.0.0.1", old.port, 5000, &st);
	int r1 = st == RMQ_OK ? rmq_subscribe_live(c, "moving") : st;
	struct rmq_msg *m = NULL;
	int r2 = r1 == RMQ_OK ? rmq_next_message(c, 5000, &m) : r1;
	char err[256];
	snprintf(err, sizeof(err), "%s", rmq_client_errstr(c));
	bool got = m && m->kind == RMQ_MSG_DATA && m->len == 5 && !memcmp(m->payload, "hello", 5) &&
		   m->topic_len == 6 && !memcmp(m->topic, "moving", 6);
	size_t nodes = rmq_cluster_nodes(c), live = rmq_live_count(c);
	rmq_msg_free(m);
	rmq_client_close(c);
	fake_stop(&old);
	fake_stop(&neu);
	CHECK(r1 == RMQ_OK && r2 == RMQ_OK && got, "message from the new owner: %d %d %s", r1, r2,
	      err);
	CHECK(old.subscribes == 2 && neu.subscribes == 1,
	      "subscribed at the old owner twice (the second redirected), the new once: %d %d",
	      old.subscribes, neu.subscribes);
	CHECK(nodes == 2 && live == 1, "nodes %zu, live %zu", nodes, live);
	fprintf(stderr, "PASS resubscribe\n");
}

/* Cluster mode: a lost node connection fails one rmq_next_message with
 * RMQ_ERR_CONN; the next ones connect again and take the live
 * subscriptions it held again. */
static void test_reconnect_live(void)
{
	struct fake f;
	CHECK(fake_start(&f, FAKE_SUB_DROP) == 0, "fake node");
	int st;
	struct rmq_client *c = rmq_client_connect_cluster("127.0.0.1", f.port, 5000, &st);
	int r1 = st == RMQ_OK ? rmq_subscribe_live(c, "moving") : st;
	struct rmq_msg *m = NULL;
	int r2 = r1 == RMQ_OK ? rmq_next_message(c, 5000, &m) : r1;
	int r3 = r2 == RMQ_ERR_CONN ? rmq_next_message(c, 5000, &m) : r2;
	char err[256];
	snprintf(err, sizeof(err), "%s", rmq_client_errstr(c));
	bool got = m && m->len == 5 && !memcmp(m->payload, "hello", 5);
	rmq_msg_free(m);
	rmq_client_close(c);
	fake_stop(&f);
	CHECK(st == RMQ_OK && r1 == RMQ_OK && r2 == RMQ_ERR_CONN && r3 == RMQ_OK && got,
	      "lost, then subscribed again: %d %d %d %d %s", st, r1, r2, r3, err);
	CHECK(f.subscribes == 2, "SUBSCRIBE twice, not %d", f.subscribes);
	fprintf(stderr, "PASS reconnect_live\n");
}

/* Every node has applied a slot map that covers all slots. */
static int wait_ready(void)
{
	uint64_t until = e2e_now_ms() + (uint64_t)E2E_MS(20000);
	for (int i = 0; i < NODES; i++) {
		struct e2e_client *c = e2e_connect(node[i].port, 5000);
		if (!c)
			return -1;
		bool ok = false;
		while (!ok && e2e_now_ms() < until) {
			struct e2e_reply *r = e2e_cmd(c, "CLUSTER", "INFO", NULL);
			ok = r && r->str && strstr(r->str, "cluster_state:ok");
			e2e_reply_free(r);
			if (!ok)
				e2e_sleep_ms(100);
		}
		e2e_close(c);
		if (!ok)
			return -1;
	}
	return 0;
}

int main(void)
{
	if (!etcd_found()) {
		fprintf(stderr, "SKIP: no etcd binary in PATH\n");
		return 77;
	}
	char url[64];
	if (start_etcd(url, sizeof(url)) != 0) {
		fprintf(stderr, "FAIL: cannot start etcd\n");
		stop_all();
		return 1;
	}
	e2e_sleep_ms(500); /* the nodes retry etcd anyway */
	const char *extra[] = { "--threads",
				"1",
				"--cluster-etcd",
				url,
				"--cluster-name",
				"cclient",
				"--cluster-expect",
				"3",
				NULL };
	for (int i = 0; i < NODES; i++)
		if (e2e_server_start(&node[i], extra, 30000) != 0) {
			fprintf(stderr, "FAIL: node %d: %s\n", i, e2e_last_error());
			stop_all();
			return 1;
		}
	if (wait_ready() != 0) {
		fprintf(stderr, "FAIL: the cluster did not become ready\n");
		stop_all();
		return 1;
	}
	test_moved_followed();
	if (!failures)
		test_cluster_client();
	if (!failures)
		test_live();
	if (!failures)
		test_cli();
	if (!failures)
		test_ask_and_bound();
	if (!failures)
		test_resubscribe();
	if (!failures)
		test_reconnect_live();
	stop_all();
	fprintf(stderr, "cluster client: %s\n", failures ? "FAILED" : "all passed");
	return failures ? 1 : 0;
}
