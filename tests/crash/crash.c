/* crash.c - kill -9 test of the real ringmq-server's persistence (issue 13).
 *
 * Runs ringmq-server on a temporary data directory, publishes from several
 * connections (pipelined, replies on) to a few topics while a durable
 * subscriber ("audit") pulls, SIGKILLs the server at a random moment from
 * another thread, restarts it on the same directory, and checks:
 *
 *   - every acknowledged (topic, seq, payload) is there, once, at its seq,
 *     with its payload, in order (the audit subscriber reads every
 *     sequence number of every topic exactly once across the restarts);
 *   - anything else it finds is a payload some connection sent (in flight
 *     at the kill) and appears once, nowhere else;
 *   - per connection and topic, acknowledged sequence numbers increase;
 *   - --fsync always: nothing acknowledged is lost, and the audit
 *     subscriber resumes exactly after the last message it was given (no
 *     message twice, none skipped), except after a PULL whose reply the
 *     kill cut: PULL acknowledges automatically, and its position is on
 *     disk before its reply leaves (else a restart would give those
 *     messages twice), so a kill between the two costs that one reply
 *     (at most its COUNT, counted as skipped);
 *   - --fsync everysec: acknowledged messages may be lost only at the tail
 *     and only those acknowledged within --loss-window ms (default 2000:
 *     the one-second flush plus scheduling slack on a loaded machine) of
 *     the kill; the audit subscriber may get messages again after a
 *     restart (its checkpoint can be older), always the same ones.
 *
 *   crash --fsync always --cycles 20 [--seed N] [--conns 3] [--topics 2]
 *
 * Exits 0 when every check held, 1 with the first violation printed.
 * Bounded: --seconds (default 60) stops starting new cycles. Talks only to
 * 127.0.0.1; stops only the server it started (by PID); removes its
 * directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_CONNS 8
#define MAX_TOPICS 8
#define MAX_CYCLES 1000
#define BATCH 16   /* pipelined PUBLISHes per connection per round */
#define PAD_MOD 37 /* payload padding: i % PAD_MOD bytes of 'x' */

struct rec {
	char *payload; /* NULL: not known yet */
	bool acked;
	uint64_t ack_ms;
};

struct topic {
	char name[16];
	struct rec *v; /* by sequence number */
	size_t cap;
	uint64_t audit_next; /* next seq the audit subscriber must get */
	uint64_t last_ack[MAX_CONNS];
	uint64_t acked, lost;
	/* A PULL of the audit subscriber on this topic was cut by the kill:
	 * its reply may have been lost after the server checkpointed the
	 * position past it (auto-acknowledged PULL), so up to this many
	 * messages may be skipped at the next resume. */
	uint64_t may_skip;
};

static struct {
	const char *fsync;
	bool always;
	int cycles, conns, ntopics, seconds, loss_window;
	unsigned seed;
	char dir[64];
	struct topic t[MAX_TOPICS];
	uint32_t sent[MAX_CYCLES][MAX_CONNS];       /* payloads sent per cycle, conn */
	unsigned char *seen[MAX_CYCLES][MAX_CONNS]; /* payload i found in some log */
	uint64_t total_acked, total_lost, max_loss_ms, audited, redelivered, skipped;
	struct e2e_server srv;
	uint64_t rng;
} g;

/* xorshift64: the kill moments, reproducible from --seed. */
static uint64_t next_rand(void)
{
	g.rng ^= g.rng << 13;
	g.rng ^= g.rng >> 7;
	g.rng ^= g.rng << 17;
	return g.rng;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL (--fsync %s --seed %u): ", g.fsync, g.seed);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	char tail[4096];
	if (g.srv.pid > 0 && e2e_server_log_tail(&g.srv, tail, sizeof(tail)))
		fprintf(stderr, "--- server stderr (tail) ---\n%s--- end ---\n", tail);
	e2e_kill_children();
	if (getenv("RINGMQ_CRASH_KEEP"))
		fprintf(stderr, "data directory kept: %s\n", g.dir);
	else
		e2e_rmrf(g.dir);
	exit(1);
}

static struct rec *rec_at(struct topic *t, uint64_t seq)
{
	if (seq >= t->cap) {
		size_t n = t->cap ? t->cap : 1024;
		while (n <= seq)
			n *= 2;
		t->v = realloc(t->v, n * sizeof(*t->v));
		if (!t->v)
			abort();
		memset(t->v + t->cap, 0, (n - t->cap) * sizeof(*t->v));
		t->cap = n;
	}
	return &t->v[seq];
}

static void make_payload(char *buf, size_t cap, unsigned cycle, unsigned conn, uint32_t i)
{
	int n = snprintf(buf, cap, "c%u.k%u.i%u.", cycle, conn, i);
	int pad = (int)(i % PAD_MOD);
	memset(buf + n, 'x', (size_t)pad);
	buf[n + pad] = 0;
}

/* A payload found in a log that no acknowledgement told us about: it must
 * be one that was sent, and found nowhere else. */
static void check_unknown_payload(const char *p, size_t len, const char *topic, uint64_t seq)
{
	unsigned cy, k;
	uint32_t i;
	int n = 0;
	if (sscanf(p, "c%u.k%u.i%u.%n", &cy, &k, &i, &n) != 3 || n == 0) // NOLINT(cert-err34-c)
		fail("%s seq %llu: payload '%.*s' was never sent", topic, (unsigned long long)seq,
		     (int)len, p);
	char want[96];
	if (cy >= MAX_CYCLES || k >= MAX_CONNS || i >= g.sent[cy][k])
		fail("%s seq %llu: payload '%.*s' was never sent", topic, (unsigned long long)seq,
		     (int)len, p);
	make_payload(want, sizeof(want), cy, k, i);
	if (strlen(want) != len || memcmp(want, p, len) != 0)
		fail("%s seq %llu: payload '%.*s' is corrupt (expected '%s')", topic,
		     (unsigned long long)seq, (int)len, p, want);
	if (g.seen[cy][k][i])
		fail("%s seq %llu: payload '%s' is stored twice", topic, (unsigned long long)seq,
		     want);
	g.seen[cy][k][i] = 1;
}

/* The audit subscriber was given (seq, payload) of topic t. */
static void audit_one(struct topic *t, uint64_t seq, const char *p, size_t len)
{
	if (seq > t->audit_next && seq - t->audit_next <= t->may_skip) {
		g.skipped += seq - t->audit_next;
		t->audit_next = seq;
	}
	t->may_skip = 0;
	if (seq > t->audit_next)
		fail("%s: audit subscriber got seq %llu, expected %llu: messages skipped", t->name,
		     (unsigned long long)seq, (unsigned long long)t->audit_next);
	struct rec *r = rec_at(t, seq);
	if (seq < t->audit_next) {
		if (g.always)
			fail("%s: audit subscriber got seq %llu again (expected %llu) under --fsync always",
			     t->name, (unsigned long long)seq, (unsigned long long)t->audit_next);
		g.redelivered++;
	}
	if (r->payload) {
		if (strlen(r->payload) != len || memcmp(r->payload, p, len) != 0)
			fail("%s seq %llu: payload '%.*s', but '%s' was %s", t->name,
			     (unsigned long long)seq, (int)len, p, r->payload,
			     r->acked ? "acknowledged" : "read before");
	} else {
		check_unknown_payload(p, len, t->name, seq);
		r->payload = strndup(p, len);
	}
	if (seq == t->audit_next) {
		t->audit_next++;
		g.audited++;
	}
}

/* Pulls what the audit subscriber has on t (at most max messages; 0: all). */
static size_t audit_pull(struct e2e_client *a, struct topic *t, size_t max, bool *dead)
{
	size_t got = 0;
	for (;;) {
		struct e2e_reply *r = e2e_cmd(a, "PULL", t->name, "COUNT", "500", NULL);
		if (!r) {
			if (dead) {
				*dead = true;
				t->may_skip = 500;
				return got;
			}
			fail("PULL %s: no reply (%d): %s", t->name, (int)a->status,
			     e2e_last_error());
		}
		if (r->type != E2E_ARRAY)
			fail("PULL %s: %s", t->name, e2e_reply_str(r));
		size_t n = r->n;
		uint64_t prev = 0;
		for (size_t i = 0; i < n; i++) {
			struct e2e_reply *m = r->elem[i];
			if (m->type != E2E_ARRAY || m->n != 2 || m->elem[0]->type != E2E_INT ||
			    m->elem[1]->type != E2E_BULK)
				fail("PULL %s: bad message %s", t->name, e2e_reply_str(m));
			uint64_t seq = (uint64_t)m->elem[0]->integer;
			if (i && seq != prev + 1)
				fail("PULL %s: seq %llu after %llu", t->name,
				     (unsigned long long)seq, (unsigned long long)prev);
			prev = seq;
			audit_one(t, seq, m->elem[1]->str, m->elem[1]->len);
		}
		e2e_reply_free(r);
		got += n;
		if (n == 0 || (max && got >= max))
			return got;
	}
}

/* --- the killer thread --- */

struct killer {
	pid_t pid;
	unsigned delay_ms;
	uint64_t killed_ms;
	pthread_t th;
};

static void *killer_main(void *arg)
{
	struct killer *k = arg;
	e2e_sleep_ms(k->delay_ms);
	k->killed_ms = e2e_now_ms();
	kill(k->pid, SIGKILL);
	return NULL;
}

static void start(void)
{
	const char *args[] = { "--threads", "2",     "--log-level",    "warn", "--dir", g.dir,
			       "--fsync",   g.fsync, "--segment-size", "256K", NULL };
	if (e2e_server_start(&g.srv, args, 30000) != 0)
		fail("cannot start the server: %s", e2e_last_error());
}

static struct e2e_client *connect_ok(void)
{
	struct e2e_client *c = e2e_connect(g.srv.port, 10000);
	if (!c)
		fail("connect: %s", e2e_last_error());
	return c;
}

static void expect_ok(struct e2e_client *c, struct e2e_reply *r, const char *what)
{
	(void)c;
	if (!r || r->type == E2E_ERROR || r->type == E2E_BULK)
		fail("%s: %s", what, r ? e2e_reply_str(r) : e2e_last_error());
	e2e_reply_free(r);
}

static struct e2e_client *audit_conn(void)
{
	struct e2e_client *a = connect_ok();
	expect_ok(a, e2e_cmd(a, "REGISTER", "SUBSCRIBER", "audit", NULL), "REGISTER audit");
	return a;
}

/* After a restart: what was lost (everysec only), then the audit reads
 * everything up to the end. kill_ms: when the kill was sent. */
static void verify(uint64_t kill_ms)
{
	struct e2e_client *c = connect_ok();
	struct e2e_client *a = audit_conn();
	for (int ti = 0; ti < g.ntopics; ti++) {
		struct topic *t = &g.t[ti];
		long long next = e2e_info_topic_field(c, t->name, "next_seq");
		if (next < 1)
			fail("%s: no next_seq in INFO after the restart", t->name);
		for (uint64_t s = (uint64_t)next; s < t->cap; s++) {
			struct rec *r = &t->v[s];
			if (r->acked) {
				if (g.always)
					fail("%s seq %llu ('%s') was acknowledged and is lost under --fsync always",
					     t->name, (unsigned long long)s, r->payload);
				uint64_t age = kill_ms > r->ack_ms ? kill_ms - r->ack_ms : 0;
				if (age > (uint64_t)g.loss_window)
					fail("%s seq %llu ('%s') was acknowledged %llu ms before the kill and is lost "
					     "(allowed: %d ms)",
					     t->name, (unsigned long long)s, r->payload,
					     (unsigned long long)age, g.loss_window);
				if (age > g.max_loss_ms)
					g.max_loss_ms = age;
				t->lost++;
				g.total_lost++;
				t->acked--;
			}
			/* forget it: the sequence number will be reused */
			free(r->payload);
			memset(r, 0, sizeof(*r));
		}
		for (int k = 0; k < g.conns; k++)
			if (t->last_ack[k] >= (uint64_t)next)
				t->last_ack[k] = (uint64_t)next - 1;
		if (t->audit_next > (uint64_t)next) {
			if (g.always)
				fail("%s: audit subscriber was given seq %llu but the topic ends at %lld",
				     t->name, (unsigned long long)t->audit_next - 1, next - 1);
			t->audit_next = (uint64_t)next; /* the server clamps it */
		}
		audit_pull(a, t, 0, NULL);
		if (t->audit_next < (uint64_t)next &&
		    (uint64_t)next - t->audit_next <= t->may_skip) {
			g.skipped += (uint64_t)next - t->audit_next;
			t->audit_next = (uint64_t)next;
		}
		t->may_skip = 0;
		if (t->audit_next != (uint64_t)next)
			fail("%s: audit subscriber stopped at %llu, topic ends at %lld", t->name,
			     (unsigned long long)t->audit_next - 1, next - 1);
	}
	e2e_close(a);
	e2e_close(c);
}

/* One cycle: publish until the killer strikes. */
static void run_cycle(unsigned cycle)
{
	struct e2e_client *pc[MAX_CONNS];
	for (int k = 0; k < g.conns; k++) {
		pc[k] = connect_ok();
		if (!g.seen[cycle][k])
			g.seen[cycle][k] = calloc(1u << 20, 1);
	}
	struct e2e_client *a = audit_conn();
	struct killer kl = { .pid = g.srv.pid, .delay_ms = 150 + (unsigned)(next_rand() % 700) };
	pthread_create(&kl.th, NULL, killer_main, &kl);
	bool dead = false;
	struct e2e_wbuf wb = { 0 };
	uint32_t first[MAX_CONNS];
	int ti_of[MAX_CONNS][BATCH];
	unsigned round = 0;
	while (!dead) {
		for (int k = 0; k < g.conns && !dead; k++) {
			wb.len = 0;
			first[k] = g.sent[cycle][k];
			for (int j = 0; j < BATCH; j++) {
				char pl[96];
				uint32_t i = g.sent[cycle][k]++;
				if (i >= (1u << 20))
					fail("too many messages in one cycle");
				make_payload(pl, sizeof(pl), cycle, (unsigned)k, i);
				int ti = (int)((i + (uint32_t)k) % (uint32_t)g.ntopics);
				ti_of[k][j] = ti;
				const char *argv[] = { "PUBLISH", g.t[ti].name, pl };
				size_t lens[] = { 7, strlen(g.t[ti].name), strlen(pl) };
				e2e_wbuf_cmdv(&wb, 3, argv, lens);
			}
			if (e2e_send(pc[k], wb.p, wb.len) != 0)
				dead = true;
		}
		for (int k = 0; k < g.conns && !dead; k++) {
			for (int j = 0; j < BATCH; j++) {
				struct e2e_reply *r = e2e_read(pc[k]);
				if (!r) {
					dead = true;
					break;
				}
				if (r->type != E2E_INT)
					fail("PUBLISH: %s", e2e_reply_str(r));
				struct topic *t = &g.t[ti_of[k][j]];
				uint64_t seq = (uint64_t)r->integer;
				e2e_reply_free(r);
				char pl[96];
				make_payload(pl, sizeof(pl), cycle, (unsigned)k,
					     first[k] + (uint32_t)j);
				if (seq <= t->last_ack[k])
					fail("%s: connection %d got seq %llu after %llu", t->name,
					     k, (unsigned long long)seq,
					     (unsigned long long)t->last_ack[k]);
				t->last_ack[k] = seq;
				struct rec *rc = rec_at(t, seq);
				if (rc->payload && strcmp(rc->payload, pl) != 0)
					fail("%s seq %llu acknowledged for '%s' but holds '%s'",
					     t->name, (unsigned long long)seq, pl, rc->payload);
				if (!rc->payload) {
					check_unknown_payload(pl, strlen(pl), t->name, seq);
					rc->payload = strdup(pl);
				}
				rc->acked = true;
				rc->ack_ms = e2e_now_ms();
				t->acked++;
				g.total_acked++;
			}
		}
		if (!dead && ++round % 4 == 0) /* the audit subscriber reads as it goes */
			audit_pull(a, &g.t[round / 4 % (unsigned)g.ntopics], 200, &dead);
	}
	pthread_join(kl.th, NULL);
	e2e_wbuf_free(&wb);
	for (int k = 0; k < g.conns; k++)
		e2e_close(pc[k]);
	e2e_close(a);
	int st = e2e_server_stop(&g.srv, SIGKILL, 10000);
	if (st < 0 || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail("the server did not die of SIGKILL (wait status %d)", st);
	start();
	verify(kl.killed_ms);
}

int main(int argc, char **argv)
{
	g.fsync = "always";
	g.cycles = 20;
	g.conns = 3;
	g.ntopics = 2;
	g.seconds = 60;
	g.loss_window = 2000;
	g.seed = (unsigned)time(NULL);
	static const struct option opts[] = {
		{ "fsync", required_argument, NULL, 'f' },
		{ "cycles", required_argument, NULL, 'c' },
		{ "conns", required_argument, NULL, 'k' },
		{ "topics", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'r' },
		{ "loss-window", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'f': g.fsync = optarg; break;
		case 'c': g.cycles = atoi(optarg); break;  // NOLINT(cert-err34-c)
		case 'k': g.conns = atoi(optarg); break;   // NOLINT(cert-err34-c)
		case 't': g.ntopics = atoi(optarg); break; // NOLINT(cert-err34-c)
		case 's': g.seconds = atoi(optarg); break; // NOLINT(cert-err34-c)
		case 'r': g.seed = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'l': g.loss_window = atoi(optarg); break; // NOLINT(cert-err34-c)
		default:
			fprintf(stderr,
				"usage: crash [--fsync always|everysec] [--cycles N] [--conns N] "
				"[--topics N] [--seconds S] [--seed N] [--loss-window MS]\n");
			return 2;
		}
	}
	if (strcmp(g.fsync, "always") != 0 && strcmp(g.fsync, "everysec") != 0)
		return fprintf(stderr, "crash: --fsync always or everysec\n"), 2;
	if (g.cycles < 1 || g.cycles > MAX_CYCLES || g.conns < 1 || g.conns > MAX_CONNS ||
	    g.ntopics < 1 || g.ntopics > MAX_TOPICS)
		return fprintf(stderr, "crash: bad --cycles, --conns or --topics\n"), 2;
	g.always = strcmp(g.fsync, "always") == 0;
	g.rng = g.seed * 2654435761u + 1;
	signal(SIGPIPE, SIG_IGN);
	if (e2e_tmpdir("crash", g.dir) != 0)
		fail("%s", e2e_last_error());
	printf("crash: --fsync %s --cycles %d --conns %d --topics %d --seed %u, dir %s\n", g.fsync,
	       g.cycles, g.conns, g.ntopics, g.seed, g.dir);
	fflush(stdout);
	uint64_t t0 = e2e_now_ms();
	start();
	struct e2e_client *c = connect_ok();
	for (int i = 0; i < g.ntopics; i++) {
		struct topic *t = &g.t[i];
		snprintf(t->name, sizeof(t->name), "t%d", i);
		t->audit_next = 1;
		expect_ok(c, e2e_cmd(c, "CREATE", t->name, "CAPACITY", "1G", NULL), "CREATE");
	}
	struct e2e_client *a = audit_conn();
	for (int i = 0; i < g.ntopics; i++)
		expect_ok(a, e2e_cmd(a, "DSUBSCRIBE", g.t[i].name, NULL), "DSUBSCRIBE");
	e2e_close(a);
	e2e_close(c);
	/* Under everysec the subscriber's file is written within 100 ms, so a
	 * kill in the first cycle could take back the subscription itself
	 * (the audit then finds 'not subscribed'). A clean restart puts the
	 * set-up on disk under either policy before the kills begin. */
	int st = e2e_server_stop(&g.srv, SIGTERM, 20000);
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("the server did not stop cleanly after the set-up (wait status %d)", st);
	start();
	int cycle = 0;
	for (; cycle < g.cycles && e2e_now_ms() - t0 < (uint64_t)g.seconds * 1000; cycle++)
		run_cycle((unsigned)cycle);
	/* a clean stop at the end loses nothing under any policy */
	st = e2e_server_stop(&g.srv, SIGTERM, 20000);
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("the server did not stop cleanly (wait status %d)", st);
	start();
	verify(e2e_now_ms());
	st = e2e_server_stop(&g.srv, SIGTERM, 20000);
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("the server did not stop cleanly (wait status %d)", st);
	if (cycle < 3)
		fail("only %d kill cycles ran in %d s", cycle, g.seconds);
	printf("crash: ok: %d kill -9 cycles in %.1f s; %llu messages acknowledged, %llu of them lost "
	       "(oldest acknowledged %llu ms before its kill), %llu audited, %llu redelivered to the "
	       "audit subscriber, %llu skipped with a PULL reply the kill cut\n",
	       cycle, (double)(e2e_now_ms() - t0) / 1000.0, (unsigned long long)g.total_acked,
	       (unsigned long long)g.total_lost, (unsigned long long)g.max_loss_ms,
	       (unsigned long long)g.audited, (unsigned long long)g.redelivered,
	       (unsigned long long)g.skipped);
	e2e_rmrf(g.dir);
	return 0;
}
