/* soak.c - bounded soak test of the real ringmq-server.
 *
 * One process, many threads, one server started with the e2e harness on
 * 127.0.0.1 --port 0. For --duration seconds (default 60, or
 * RINGMQ_SOAK_SECONDS) it runs at once:
 *
 *  - publishers: synchronous PUBLISH of checksummed payloads (publisher id,
 *    per-publisher-per-topic sequence number, length, FNV-1a checksum) to
 *    the main topics; -FULL (ONFULL reject) is waited out and the same
 *    message sent again, so every publisher's stream stays contiguous;
 *  - live subscribers: SUBSCRIBE a random subset of the main topics,
 *    disconnect themselves after a random while and come back;
 *  - durable subscribers: REGISTER SUBSCRIBER name + DSUBSCRIBE + PULL,
 *    disconnected at random (sometimes by another connection taking the
 *    name over) and resumed by name from the server-kept position;
 *  - churn: pairs of extra topics created, used by live, durable and
 *    blocked-PULL subscribers, and deleted under them, while a racer
 *    thread publishes to them;
 *  - hostile clients (issue 12): consumers that park in PULL ... BLOCK 0 on
 *    a quiet topic and exit without reading the answer (the server must
 *    close them: the fd check below fails otherwise), and live subscribers
 *    that never read yet keep sending PINGs (the server must stop reading
 *    them: each may get at most DEAF_MAX_SENT in before its sends block,
 *    or be disconnected as slow);
 *  - the main thread samples the server's RSS and fd count.
 *
 * Then it checks: every durable subscriber got every message of its
 * topics exactly once and in order; live subscribers saw each publisher's
 * stream in order, without duplicates and without gaps inside one
 * connection; subscribers of deleted topics were told; the server's
 * counters agree with what the clients saw; its fds and RSS came back to
 * baseline; it exits 0 on SIGTERM with no sanitizer report in its log.
 * Exit status 0 when all of that holds, 1 otherwise, 2 on bad usage.
 *
 * Baselines: fds and RSS are taken once the set-up (main topics created,
 * durable subscribers subscribed) is done and its connections closed.
 * After the load: the fd count must be back exactly; RSS may exceed the
 * baseline by what the main topics still retain (INFO bytes_retained: a
 * topic keeps up to its capacity by design) plus --rss-tolerance-kib
 * (4 MiB), and once the main topics are deleted too, by the tolerance
 * alone. Measured on the 2-core VM (plain build, 18 runs of 60 s and one
 * of 300 s): +0.4 to +2.5 MB after everything is deleted, with the
 * server's malloc_trim() once idle; without it glibc kept +6.1 to +15 MB
 * of freed memory. What remains are pages pinned by the ~230 KB of small
 * allocations still in use or cached (a second malloc_trim frees nothing
 * more), and it does not grow with the duration. RSS is not
 * checked against a sanitizer build: ASan's quarantine (256 MB) and TSan's
 * allocator keep freed memory by design.
 *
 * Clients: the project's own client library (client/ringmq.h, on hiredis),
 * one rmq_client per thread (the library's threading contract). The
 * harness (not thread-safe) is used only by the main thread: to start and
 * stop the server and for INFO/TOPICS at the end.
 *
 * Not Criterion: Criterion cannot start under TSan, and this test must
 * also run in the RINGMQ_SANITIZE=thread build.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"
#include "procstat.h"
#include "ringmq.h"

#ifndef RINGMQ_SOAK_SANITIZE
#define RINGMQ_SOAK_SANITIZE ""
#endif

#define MAX_PUBS 16
#define MAX_TOPICS 8
#define MAX_SUBS 32
#define CLIENT_TIMEOUT_MS 20000 /* bounds every reply; TSan servers are slow */
#define DRAIN_MS 90000          /* durable subscribers' catch-up after the load */
#define SETTLE_MS 20000         /* fds / RSS coming back after the clients left */
#define CHURN_NAMES 4           /* durable names reused by the churn (bounded registry) */
#define RACER_MAX 200           /* racer messages per churn topic */

#define PUB_CHURN 100 /* publisher ids of the churn thread and the racer */
#define PUB_RACER 101
#define CHURN_ID0 0x10000u       /* topic ids of churn topics: CHURN_ID0 + 2k (+1) */
#define QUIET_TOPIC "soak.quiet" /* never published to: hostile pullers park there */
#define GONE_NAMES 4             /* durable names of the pullers that vanish (reused) */
#define DEAF_MS 1500             /* one deaf subscriber's life */
#define DEAF_MAX_SENT \
	(32u << 20) /* what the server may take in from one: the
				   * bound is 64 KiB plus the kernel's buffers */

/* --- configuration and shared state --- */

static struct {
	int seconds, pubs, lives, durs, topics, threads;
	uint64_t seed;
	long rss_tol_kib;
	bool check_rss, keep_log;
	int hold;
} g_cfg = { 60, 4, 4, 4, 3, 2, 0, 4096, true, false, 0 };

static int g_port;
static char g_topic[MAX_TOPICS][32];
static const uint64_t g_capacity[MAX_TOPICS] = { 256 << 10, 8 << 20, 8 << 20, 8 << 20,
						 8 << 20,   8 << 20, 8 << 20, 8 << 20 };
static _Atomic int g_stop;                     /* load phase over */
static _Atomic int g_abort;                    /* a failure makes going on pointless */
static _Atomic int g_pubs_done;                /* g_final is complete (store-release) */
static uint64_t g_final[MAX_PUBS][MAX_TOPICS]; /* messages each publisher got in */
static _Atomic uint64_t g_churn_k;             /* current churn cycle, for the racer */

static _Atomic unsigned g_failures;
static pthread_mutex_t g_print = PTHREAD_MUTEX_INITIALIZER;

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
	unsigned n = atomic_fetch_add(&g_failures, 1) + 1;
	if (n > 40)
		return;
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&g_print);
	fputs("FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	if (n == 40)
		fputs("FAIL: (further failures are counted, not printed)\n", stderr);
	pthread_mutex_unlock(&g_print);
	va_end(ap);
}

/* An error after which this thread cannot go on: everyone stops. */
#define FATAL(...)                         \
	do {                               \
		failf(__VA_ARGS__);        \
		atomic_store(&g_abort, 1); \
	} while (0)

static bool running(void)
{
	return !atomic_load(&g_stop) && !atomic_load(&g_abort);
}

/* Counters: exactly one thread writes each (the load and store below are
 * not one atomic step; a thread that needs another's count adds it after
 * pthread_join). The main thread reads them for progress lines. */
static void cnt_add(_Atomic uint64_t *x, uint64_t n)
{
	atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static uint64_t cnt(const _Atomic uint64_t *x)
{
	return atomic_load_explicit(x, memory_order_relaxed);
}

/* xorshift64*: one state per thread. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd_seed(unsigned role, unsigned id)
{
	uint64_t s =
		g_cfg.seed ^ ((uint64_t)role << 40) ^ ((uint64_t)id << 20) ^ 0x9E3779B97F4A7C15ULL;
	return s ? s : 1;
}

/* A random pause before the next self-inflicted disconnect: 0.2 to 3 s. */
static uint64_t next_disconnect(uint64_t *rng)
{
	return e2e_now_ms() + 200 + rnd(rng) % 2800;
}

static struct rmq_client *dial(const char *who)
{
	int st;
	struct rmq_client *c = rmq_client_connect(E2E_HOST, g_port, CLIENT_TIMEOUT_MS, &st);
	if (st == RMQ_OK)
		return c;
	FATAL("%s: connect: %s", who, rmq_client_errstr(c));
	rmq_client_close(c);
	return NULL;
}

static int topic_index(const char *name)
{
	for (int t = 0; t < g_cfg.topics; t++)
		if (strcmp(name, g_topic[t]) == 0)
			return t;
	return -1;
}

/* --- payloads ---
 *
 *   0  u32 magic "SOAK"     16  u64 sequence number (per publisher, per topic, from 1)
 *   4  u32 topic id         24  u64 FNV-1a of bytes [0, 24) and [32, len)
 *   8  u32 publisher id     32  random filler
 *  12  u32 total length
 */
#define HDR_LEN 32
#define MAGIC 0x4b414f53u
#define PAYLOAD_MAX (HDR_LEN + (64u << 10))

struct hdr {
	uint32_t topic, pub, len;
	uint64_t seq;
};

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t payload_sum(const uint8_t *p, size_t len)
{
	return fnv(fnv(0xcbf29ce484222325ULL, p, 24), p + HDR_LEN, len - HDR_LEN);
}

/* Mostly small messages, some medium, a few big ones (up to 64 KiB) that
 * cross segment boundaries; small only when !big. */
static size_t pick_fill(uint64_t *rng, bool big)
{
	uint64_t r = rnd(rng);
	if (big && r % 512 == 0)
		return 16384 + (r >> 16) % (48u << 10);
	if (big && r % 8 == 0)
		return 128 + (r >> 16) % 1920;
	return (r >> 16) % 128;
}

/* Writes one message into buf (PAYLOAD_MAX bytes); returns its length. */
static size_t build_payload(uint8_t *buf, uint64_t *rng, uint32_t topic, uint32_t pub, uint64_t seq,
			    bool big)
{
	size_t len = HDR_LEN + pick_fill(rng, big);
	put32(buf, MAGIC);
	put32(buf + 4, topic);
	put32(buf + 8, pub);
	put32(buf + 12, (uint32_t)len);
	put64(buf + 16, seq);
	for (size_t i = HDR_LEN; i < len; i += 8) {
		uint64_t r = rnd(rng);
		memcpy(buf + i, &r, len - i < 8 ? len - i : 8);
	}
	put64(buf + 24, payload_sum(buf, len));
	return len;
}

/* Parses and verifies a payload. NULL, or why it is corrupt. */
static const char *parse_payload(const char *p, size_t len, struct hdr *h)
{
	const uint8_t *b = (const uint8_t *)p;
	if (len < HDR_LEN)
		return "shorter than the header";
	if (get32(b) != MAGIC)
		return "bad magic";
	h->topic = get32(b + 4);
	h->pub = get32(b + 8);
	h->len = get32(b + 12);
	h->seq = get64(b + 16);
	if (h->len != len)
		return "length differs from the length it was sent with";
	if (get64(b + 24) != payload_sum(b, len))
		return "checksum mismatch";
	if (h->seq == 0)
		return "sequence number 0";
	return NULL;
}

/* --- stream checks --- */

/* One publisher's stream on one topic, as one subscriber saw it. */
struct stream {
	uint64_t last;  /* last sequence number seen, 0: none */
	uint64_t epoch; /* connection it was seen on */
};

/* Live semantics: in order and without duplicates; contiguous within one
 * connection (epoch), gaps allowed only across reconnects. */
static void check_live(struct stream *s, uint64_t epoch, uint64_t seq, const char *who,
		       const char *topic, uint32_t pub)
{
	if (s->epoch == epoch && seq != s->last + 1)
		failf("%s: %s publisher %u: seq %" PRIu64 " after %" PRIu64
		      " on the same connection (%s)",
		      who, topic, pub, seq, s->last,
		      seq <= s->last ? "duplicate or reordered" : "gap");
	else if (s->epoch != epoch && seq <= s->last)
		failf("%s: %s publisher %u: seq %" PRIu64 " after %" PRIu64
		      " across a reconnect (duplicate or reordered)",
		      who, topic, pub, seq, s->last);
	s->last = seq;
	s->epoch = epoch;
}

/* Durable semantics: exactly the next one. */
static void check_exact(struct stream *s, uint64_t seq, const char *who, const char *topic,
			uint32_t pub)
{
	if (seq != s->last + 1)
		failf("%s: %s publisher %u: seq %" PRIu64 " after %" PRIu64 " (%s)", who, topic,
		      pub, seq, s->last,
		      seq <= s->last ? "duplicate or reordered" : "message lost");
	s->last = seq;
}

/* --- publishers --- */

struct pub {
	int id;
	char who[32], name[32];
	pthread_t th;
	uint64_t rng;
	uint64_t seq[MAX_TOPICS];
	_Atomic uint64_t sent, bytes, full, reconnects;
};

static void *pub_main(void *arg)
{
	struct pub *p = arg;
	uint8_t *buf = malloc(PAYLOAD_MAX);
	struct rmq_client *c = NULL;
	uint64_t tseq[MAX_TOPICS] = { 0 }, reconnect_at = 0;
	int t = -1; /* topic of the message in buf, not yet accepted */
	size_t len = 0;
	while (buf && running()) {
		if (!c) {
			if (!(c = dial(p->who)))
				break;
			if (rmq_register_publisher(c, p->name) != RMQ_OK) {
				FATAL("%s: REGISTER PUBLISHER: %s", p->who, rmq_client_errstr(c));
				break;
			}
			reconnect_at = next_disconnect(&p->rng) + 5000;
		}
		if (t < 0) {
			t = (int)(rnd(&p->rng) % (uint64_t)g_cfg.topics);
			len = build_payload(buf, &p->rng, (uint32_t)t, (uint32_t)p->id,
					    p->seq[t] + 1, true);
		}
		uint64_t seq;
		int rc = rmq_send(c, g_topic[t], buf, len, &seq);
		if (rc == RMQ_ERR_FULL) {
			/* durable subscribers lag (ONFULL reject): send it again */
			cnt_add(&p->full, 1);
			e2e_sleep_ms(2);
			continue;
		}
		if (rc != RMQ_OK) {
			FATAL("%s: PUBLISH %s: %s", p->who, g_topic[t], rmq_client_errstr(c));
			break;
		}
		if (seq <= tseq[t])
			failf("%s: %s: got topic seq %" PRIu64 " after %" PRIu64, p->who,
			      g_topic[t], seq, tseq[t]);
		tseq[t] = seq;
		p->seq[t]++;
		t = -1;
		cnt_add(&p->sent, 1);
		cnt_add(&p->bytes, len);
		if (e2e_now_ms() >= reconnect_at) { /* nothing in flight: a clean close */
			rmq_client_close(c);
			c = NULL;
			cnt_add(&p->reconnects, 1);
		}
	}
	rmq_client_close(c);
	free(buf);
	for (int i = 0; i < g_cfg.topics; i++)
		g_final[p->id][i] = p->seq[i]; /* read after pthread_join */
	return NULL;
}

/* --- live subscribers --- */

struct live {
	int id;
	char who[32];
	pthread_t th;
	uint64_t rng, epoch;
	struct stream st[MAX_TOPICS][MAX_PUBS];
	_Atomic uint64_t msgs, self_disc, server_disc;
};

/* One message pushed on a main topic. */
static void live_msg(struct live *l, const struct rmq_msg *m)
{
	int t = topic_index(m->topic);
	if (t < 0)
		return failf("%s: message on unexpected topic '%s'", l->who, m->topic);
	if (m->kind != RMQ_MSG_DATA)
		return failf("%s: told that main topic %s was deleted", l->who, m->topic);
	struct hdr h;
	const char *bad = parse_payload(m->payload, m->len, &h);
	if (bad)
		return failf("%s: %s: corrupt payload (%zu bytes): %s", l->who, m->topic, m->len,
			     bad);
	if (h.topic != (uint32_t)t || h.pub >= (uint32_t)g_cfg.pubs)
		return failf("%s: %s: message of topic %u publisher %u", l->who, m->topic, h.topic,
			     h.pub);
	check_live(&l->st[t][h.pub], l->epoch, h.seq, l->who, m->topic, h.pub);
	cnt_add(&l->msgs, 1);
}

static void *live_main(void *arg)
{
	struct live *l = arg;
	while (running()) {
		struct rmq_client *c = dial(l->who);
		if (!c)
			break;
		l->epoch++;
		uint64_t mask = 1 + rnd(&l->rng) % ((1u << g_cfg.topics) - 1);
		for (int t = 0; t < g_cfg.topics; t++)
			if ((mask >> t & 1) && rmq_subscribe_live(c, g_topic[t]) != RMQ_OK)
				FATAL("%s: SUBSCRIBE %s: %s", l->who, g_topic[t],
				      rmq_client_errstr(c));
		uint64_t until = next_disconnect(&l->rng);
		while (running()) {
			struct rmq_msg *m;
			int rc = rmq_next_message(c, 100, &m);
			if (rc == RMQ_OK) {
				live_msg(l, m);
				rmq_msg_free(m);
			} else if (rc == RMQ_ERR_CONN) {
				/* the server closed us: only a slow subscriber may be
				 * (checked against INFO at the end) */
				cnt_add(&l->server_disc, 1);
				break;
			} else if (rc != RMQ_ERR_TIMEOUT) {
				FATAL("%s: reading pushes: %s", l->who, rmq_client_errstr(c));
				break;
			}
			if (e2e_now_ms() >= until) {
				cnt_add(&l->self_disc, 1);
				break;
			}
		}
		rmq_client_close(c);
	}
	return NULL;
}

/* --- durable subscribers --- */

struct dur {
	int id;
	char who[32], name[32];
	pthread_t th;
	uint64_t rng;
	uint64_t mask;             /* main topics it is subscribed to */
	uint64_t tseq[MAX_TOPICS]; /* last topic sequence number pulled */
	struct stream st[MAX_TOPICS][MAX_PUBS];
	_Atomic uint64_t msgs, pulls, disc, takeovers, away_ms;
	uint64_t drain_ms;
};

/* Connects, resumes `name` and (re)subscribes, which keeps the position. */
static struct rmq_client *dur_attach(const char *who, const char *name, uint64_t mask)
{
	struct rmq_client *c = dial(who);
	if (!c)
		return NULL;
	if (rmq_register_subscriber(c, name) != RMQ_OK) {
		FATAL("%s: REGISTER SUBSCRIBER %s: %s", who, name, rmq_client_errstr(c));
		rmq_client_close(c);
		return NULL;
	}
	for (int t = 0; t < g_cfg.topics; t++) {
		if ((mask >> t & 1) && rmq_subscribe(c, g_topic[t]) != RMQ_OK) {
			FATAL("%s: SUBSCRIBE %s: %s", who, g_topic[t], rmq_client_errstr(c));
			rmq_client_close(c);
			return NULL;
		}
	}
	return c;
}

static void dur_batch(struct dur *d, int t, const struct rmq_msgs *b)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct rmq_msg *m = &b->msg[i];
		if (m->seq != d->tseq[t] + 1)
			failf("%s: %s: topic seq %" PRIu64 " after %" PRIu64, d->who, g_topic[t],
			      m->seq, d->tseq[t]);
		d->tseq[t] = m->seq;
		struct hdr h;
		const char *bad = parse_payload(m->payload, m->len, &h);
		if (bad) {
			failf("%s: %s #%" PRIu64 ": corrupt payload: %s", d->who, g_topic[t],
			      m->seq, bad);
			continue;
		}
		if (h.topic != (uint32_t)t || h.pub >= (uint32_t)g_cfg.pubs) {
			failf("%s: %s: message of topic %u publisher %u", d->who, g_topic[t],
			      h.topic, h.pub);
			continue;
		}
		check_exact(&d->st[t][h.pub], h.seq, d->who, g_topic[t], h.pub);
	}
	cnt_add(&d->msgs, b->n);
	cnt_add(&d->pulls, 1);
}

/* True once every publisher's last message on every topic of d arrived. */
static bool dur_complete(struct dur *d, bool report)
{
	bool ok = true;
	for (int t = 0; t < g_cfg.topics; t++)
		for (int p = 0; (d->mask >> t & 1) && p < g_cfg.pubs; p++)
			if (d->st[t][p].last != g_final[p][t]) {
				if (report)
					failf("%s: %s publisher %d: got up to %" PRIu64
					      " of %" PRIu64,
					      d->who, g_topic[t], p, d->st[t][p].last,
					      g_final[p][t]);
				ok = false;
			}
	return ok;
}

/* Disconnects d: either plainly, or by letting a new connection take the
 * name over (the old one must then be refused). Returns the new client. */
static struct rmq_client *dur_reconnect(struct dur *d, struct rmq_client *c)
{
	cnt_add(&d->disc, 1);
	uint64_t r = rnd(&d->rng);
	if (r % 4) {
		rmq_client_close(c); /* no request in flight: nothing is lost */
		if (r % 4 == 1 && !atomic_load(&g_pubs_done)) {
			/* away for a while: under ONFULL reject its topics fill up
			 * and publishers get -FULL */
			unsigned ms = 100 + (unsigned)(r >> 8) % 900;
			e2e_sleep_ms(ms);
			cnt_add(&d->away_ms, ms);
		}
		return dur_attach(d->who, d->name, d->mask);
	}
	struct rmq_client *nc = dur_attach(d->who, d->name, d->mask);
	if (nc) {
		int t = __builtin_ctzll(d->mask);
		struct rmq_msgs *b = NULL;
		int rc = rmq_pull(c, g_topic[t], 100, 0, &b);
		if (rc != RMQ_ERR_TAKENOVER)
			failf("%s: PULL on a taken-over connection: %s, %zu messages (want taken over)",
			      d->who, rmq_strerror(rc), b ? b->n : 0);
		rmq_msgs_free(b);
		cnt_add(&d->takeovers, 1);
	}
	rmq_client_close(c);
	return nc;
}

static void *dur_main(void *arg)
{
	struct dur *d = arg;
	struct rmq_client *c = dur_attach(d->who, d->name, d->mask);
	uint64_t until = next_disconnect(&d->rng), drain_from = 0;
	while (c && !atomic_load(&g_abort)) {
		if (atomic_load_explicit(&g_pubs_done, memory_order_acquire)) {
			uint64_t now = e2e_now_ms();
			if (!drain_from)
				drain_from = now;
			if (dur_complete(d, false)) {
				d->drain_ms = now - drain_from;
				break;
			}
			if (now - drain_from > DRAIN_MS) {
				dur_complete(d, true);
				FATAL("%s: not caught up %d s after the publishers stopped", d->who,
				      DRAIN_MS / 1000);
				break;
			}
		}
		for (int t = 0; t < g_cfg.topics && c; t++) {
			if (!(d->mask >> t & 1))
				continue;
			uint64_t r = rnd(&d->rng);
			size_t max = 1 + r % 1000;
			int wait = (r >> 20) % 4 ? 50 : 0;
			struct rmq_msgs *b;
			int rc = rmq_pull(c, g_topic[t], max, wait, &b);
			if (rc != RMQ_OK) {
				FATAL("%s: PULL %s: %s", d->who, g_topic[t], rmq_client_errstr(c));
				rmq_client_close(c);
				c = NULL;
				break;
			}
			dur_batch(d, t, b);
			rmq_msgs_free(b);
		}
		if (c && e2e_now_ms() >= until) {
			c = dur_reconnect(d, c);
			until = next_disconnect(&d->rng);
		}
	}
	/* Caught up: nothing more may come. */
	for (int t = 0; c && !atomic_load(&g_abort) && t < g_cfg.topics; t++) {
		struct rmq_msgs *b;
		if (!(d->mask >> t & 1))
			continue;
		if (rmq_pull(c, g_topic[t], 100, 0, &b) != RMQ_OK)
			failf("%s: last PULL %s: %s", d->who, g_topic[t], rmq_client_errstr(c));
		else if (b->n)
			failf("%s: %s: %zu messages after the last one published", d->who,
			      g_topic[t], b->n);
		rmq_msgs_free(b);
	}
	rmq_client_close(c);
	return NULL;
}

/* --- churn: topics created and deleted under their subscribers --- */

/* A subscriber's view of the current churn pair (topic a, topic b). */
struct cview {
	const char *who;
	const char *names[2];
	uint32_t ids[2];
	struct stream st[2][2]; /* [a|b][churn thread|racer] */
	uint64_t tseq[2];       /* durable: last topic sequence number */
	bool gone[2];           /* live: told the topic was deleted */
	uint64_t msgs;
};

static void cview_init(struct cview *v, const char *who, char names[2][48], uint64_t k)
{
	memset(v, 0, sizeof(*v));
	v->who = who;
	for (int i = 0; i < 2; i++) {
		v->names[i] = names[i];
		v->ids[i] = CHURN_ID0 + 2 * (uint32_t)k + (uint32_t)i;
	}
}

/* One churn message. Streams: the churn thread's must be exact (every
 * subscriber was there before it published); the racer's started
 * before the subscriber did, so only live rules apply to it. */
static void cview_msg(struct cview *v, int i, uint64_t seq, const char *payload, size_t len,
		      bool durable)
{
	if (durable) {
		if (v->tseq[i] && seq != v->tseq[i] + 1)
			failf("%s: %s: topic seq %" PRIu64 " after %" PRIu64, v->who, v->names[i],
			      seq, v->tseq[i]);
		v->tseq[i] = seq;
	}
	if (v->gone[i])
		failf("%s: %s: a message after the topic was reported deleted", v->who,
		      v->names[i]);
	struct hdr h;
	const char *bad = parse_payload(payload, len, &h);
	if (bad)
		return failf("%s: %s: corrupt payload: %s", v->who, v->names[i], bad);
	if (h.topic != v->ids[i] || (h.pub != PUB_CHURN && h.pub != PUB_RACER))
		return failf("%s: %s: message of topic %u publisher %u", v->who, v->names[i],
			     h.topic, h.pub);
	if (h.pub == PUB_CHURN)
		check_exact(&v->st[i][0], h.seq, v->who, v->names[i], h.pub);
	else
		check_live(&v->st[i][1], 1, h.seq, v->who, v->names[i], h.pub);
	v->msgs++;
}

/* Reads pushes on a live churn connection until topic i's churn stream
 * reached `seq` (0: any) and, if gone, i was reported deleted. */
static bool churn_live_until(struct rmq_client *c, struct cview *v, int i, uint64_t seq, bool gone)
{
	uint64_t deadline = e2e_now_ms() + CLIENT_TIMEOUT_MS;
	while (v->st[i][0].last < seq || (gone && !v->gone[i])) {
		struct rmq_msg *m;
		int rc = rmq_next_message(c, 100, &m);
		if (rc == RMQ_OK) {
			int k = strcmp(m->topic, v->names[0]) == 0   ? 0
				: strcmp(m->topic, v->names[1]) == 0 ? 1
								     : -1;
			if (k < 0)
				failf("%s: push for unexpected topic '%s'", v->who, m->topic);
			else if (m->kind == RMQ_MSG_TOPIC_GONE)
				v->gone[k] = true;
			else
				cview_msg(v, k, 0, m->payload, m->len, false);
			rmq_msg_free(m);
		} else if (rc != RMQ_ERR_TIMEOUT) {
			failf("%s: reading pushes: %s", v->who, rmq_client_errstr(c));
			return false;
		}
		if (e2e_now_ms() > deadline) {
			failf("%s: %s: waited %d s for seq %" PRIu64 "%s (have %" PRIu64
			      ", gone=%d)",
			      v->who, v->names[i], CLIENT_TIMEOUT_MS / 1000, seq,
			      gone ? " and the deletion" : "", v->st[i][0].last, v->gone[i]);
			return false;
		}
	}
	return true;
}

/* Pulls topic i until its churn stream reached seq. */
static bool churn_pull_until(struct rmq_client *c, struct cview *v, int i, uint64_t seq,
			     _Atomic uint64_t *pulled)
{
	uint64_t deadline = e2e_now_ms() + CLIENT_TIMEOUT_MS;
	while (v->st[i][0].last < seq) {
		struct rmq_msgs *b;
		if (rmq_pull(c, v->names[i], 100, 100, &b) != RMQ_OK) {
			failf("%s: PULL %s: %s", v->who, v->names[i], rmq_client_errstr(c));
			return false;
		}
		for (size_t k = 0; k < b->n; k++)
			cview_msg(v, i, b->msg[k].seq, b->msg[k].payload, b->msg[k].len, true);
		cnt_add(pulled, b->n);
		rmq_msgs_free(b);
		if (e2e_now_ms() > deadline) {
			failf("%s: %s: waited %d s to pull seq %" PRIu64 " (have %" PRIu64 ")",
			      v->who, v->names[i], CLIENT_TIMEOUT_MS / 1000, seq, v->st[i][0].last);
			return false;
		}
	}
	return true;
}

/* A durable subscriber parked in PULL ... BLOCK on topic a when it is
 * deleted: must be answered with NOTOPIC at once, not at its timeout. */
struct puller {
	pthread_t th;
	char who[32], name[32];
	struct cview v;
	_Atomic int ready;         /* 1 subscribed, -1 failed */
	_Atomic uint64_t progress; /* churn thread's messages pulled so far */
	uint64_t pulled;           /* read after pthread_join */
	int rc;                    /* how its last PULL ended */
	uint64_t end_ms;
};

#define PULLER_BLOCK_MS 15000

static void *puller_main(void *arg)
{
	struct puller *p = arg;
	struct rmq_client *c = dial(p->who);
	if (!c || rmq_register_subscriber(c, p->name) != RMQ_OK ||
	    rmq_subscribe(c, p->v.names[0]) != RMQ_OK) {
		failf("%s: setting up: %s", p->who, c ? rmq_client_errstr(c) : "no connection");
		atomic_store(&p->ready, -1);
		rmq_client_close(c);
		return NULL;
	}
	atomic_store(&p->ready, 1);
	for (;;) {
		struct rmq_msgs *b;
		p->rc = rmq_pull(c, p->v.names[0], 100, PULLER_BLOCK_MS, &b);
		if (p->rc != RMQ_OK)
			break;
		if (b->n == 0) { /* the BLOCK timeout ran out: nobody answered it */
			p->rc = RMQ_ERR_TIMEOUT;
			rmq_msgs_free(b);
			break;
		}
		for (size_t k = 0; k < b->n; k++)
			cview_msg(&p->v, 0, b->msg[k].seq, b->msg[k].payload, b->msg[k].len, true);
		p->pulled += b->n;
		atomic_store(&p->progress, p->v.st[0][0].last);
		rmq_msgs_free(b);
	}
	p->end_ms = e2e_now_ms();
	rmq_client_close(c);
	return NULL;
}

struct churn {
	pthread_t th;
	uint64_t rng;
	_Atomic uint64_t cycles, created, deleted, gone_live, notopic_pulls, sent, pulled,
		live_msgs;
	uint64_t max_unpark_ms;
};

static int churn_publish(struct rmq_client *adm, struct cview *pubv, int i, uint64_t n,
			 uint64_t *rng, _Atomic uint64_t *sent)
{
	uint8_t buf[HDR_LEN + 128];
	for (uint64_t s = 0; s < n; s++) {
		uint64_t seq = pubv->st[i][0].last + 1;
		size_t len = build_payload(buf, rng, pubv->ids[i], PUB_CHURN, seq, false);
		if (rmq_send(adm, pubv->names[i], buf, len, NULL) != RMQ_OK) {
			failf("churn: PUBLISH %s: %s", pubv->names[i], rmq_client_errstr(adm));
			return -1;
		}
		pubv->st[i][0].last = seq;
		cnt_add(sent, 1);
	}
	return 0;
}

/* One cycle: create a and b, subscribe (live, durable, a blocked puller),
 * publish, delete a, check everyone was told and b still works, delete b.
 * Returns false when the churn cannot go on. */
static bool churn_cycle(struct churn *ch, struct rmq_client *adm, uint64_t k)
{
	char names[2][48];
	for (int i = 0; i < 2; i++)
		snprintf(names[i], sizeof(names[i]), "soak.churn.%" PRIu64 ".%c", k, 'a' + i);
	struct rmq_topic_opts opts = { .capacity = 1 << 20, .onfull = RMQ_ONFULL_REJECT };
	for (int i = 0; i < 2; i++) {
		if (rmq_create_topic(adm, names[i], &opts) != RMQ_OK) {
			FATAL("churn: CREATE %s: %s", names[i], rmq_client_errstr(adm));
			return false;
		}
		cnt_add(&ch->created, 1);
	}
	atomic_store(&g_churn_k, k); /* the racer publishes to a from now on */

	bool ok = false;
	struct cview pubv, lv1, lv2, dv;
	cview_init(&pubv, "churn publisher", names, k);
	cview_init(&lv1, "churn live 1", names, k);
	cview_init(&lv2, "churn live 2", names, k);
	cview_init(&dv, "churn durable", names, k);
	struct rmq_client *l1 = NULL, *l2 = NULL, *dc = NULL;
	struct puller *pl = calloc(1, sizeof(*pl));
	bool puller_started = false;
	if (!pl)
		goto out;
	snprintf(pl->who, sizeof(pl->who), "churn blocked puller");
	snprintf(pl->name, sizeof(pl->name), "soak-churnpull-%" PRIu64, k % CHURN_NAMES);
	cview_init(&pl->v, pl->who, names, k);
	if (pthread_create(&pl->th, NULL, puller_main, pl) != 0) {
		failf("churn: pthread_create failed");
		goto out;
	}
	puller_started = true;
	char dname[32];
	snprintf(dname, sizeof(dname), "soak-churn-%" PRIu64, k % CHURN_NAMES);
	if (!(l1 = dial("churn live 1")) || !(l2 = dial("churn live 2")) ||
	    !(dc = dial("churn durable")))
		goto out;
	if (rmq_subscribe_live(l1, names[0]) != RMQ_OK ||
	    rmq_subscribe_live(l2, names[0]) != RMQ_OK ||
	    rmq_subscribe_live(l2, names[1]) != RMQ_OK ||
	    rmq_register_subscriber(dc, dname) != RMQ_OK || rmq_subscribe(dc, names[0]) != RMQ_OK ||
	    rmq_subscribe(dc, names[1]) != RMQ_OK) {
		failf("churn: subscribing to %s/%s failed", names[0], names[1]);
		goto out;
	}
	uint64_t until = e2e_now_ms() + CLIENT_TIMEOUT_MS;
	while (atomic_load(&pl->ready) == 0 && e2e_now_ms() < until)
		e2e_sleep_ms(1);
	if (atomic_load(&pl->ready) != 1) {
		failf("churn: the blocked puller did not subscribe");
		goto out;
	}

	uint64_t n = 1 + rnd(&ch->rng) % 200, m = 1 + rnd(&ch->rng) % 50;
	if (churn_publish(adm, &pubv, 0, n, &ch->rng, &ch->sent) ||
	    churn_publish(adm, &pubv, 1, m, &ch->rng, &ch->sent))
		goto out;
	if (!churn_pull_until(dc, &dv, 0, n, &ch->pulled) ||
	    !churn_pull_until(dc, &dv, 1, m, &ch->pulled))
		goto out;
	until = e2e_now_ms() + CLIENT_TIMEOUT_MS;
	while (atomic_load(&pl->progress) < n && e2e_now_ms() < until)
		e2e_sleep_ms(1);
	if (atomic_load(&pl->progress) != n) {
		failf("churn: blocked puller got %" PRIu64 " of %" PRIu64 " messages",
		      atomic_load(&pl->progress), n);
		goto out;
	}
	e2e_sleep_ms(5); /* let its next PULL park */

	uint64_t t0 = e2e_now_ms();
	if (rmq_delete_topic(adm, names[0]) != RMQ_OK) {
		failf("churn: DELETE %s: %s", names[0], rmq_client_errstr(adm));
		goto out;
	}
	cnt_add(&ch->deleted, 1);
	int rc = rmq_delete_topic(adm, names[0]);
	if (rc != RMQ_ERR_NOTOPIC)
		failf("churn: second DELETE %s: %s (want no such topic)", names[0],
		      rmq_strerror(rc));
	/* Live: everything published before the delete, then the notice. */
	if (!churn_live_until(l1, &lv1, 0, n, true) || !churn_live_until(l2, &lv2, 0, n, true) ||
	    !churn_live_until(l2, &lv2, 1, m, false))
		goto out;
	if (rmq_live_count(l1) != 0 || rmq_live_count(l2) != 1)
		failf("churn: live subscriptions left after deleting %s: %zu and %zu (want 0 and 1)",
		      names[0], rmq_live_count(l1), rmq_live_count(l2));
	cnt_add(&ch->gone_live, 2);
	struct rmq_msgs *b = NULL;
	if ((rc = rmq_pull(dc, names[0], 100, 0, &b)) != RMQ_ERR_NOTOPIC)
		failf("churn durable: PULL of deleted %s: %s (want no such topic)", names[0],
		      rmq_strerror(rc));
	rmq_msgs_free(b);
	cnt_add(&ch->notopic_pulls, 1);
	/* b is untouched by a's deletion. */
	if (churn_publish(adm, &pubv, 1, 1, &ch->rng, &ch->sent) ||
	    !churn_live_until(l2, &lv2, 1, m + 1, false) ||
	    !churn_pull_until(dc, &dv, 1, m + 1, &ch->pulled))
		goto out;
	if (rmq_delete_topic(adm, names[1]) != RMQ_OK) {
		failf("churn: DELETE %s: %s", names[1], rmq_client_errstr(adm));
		goto out;
	}
	cnt_add(&ch->deleted, 1);
	if (!churn_live_until(l2, &lv2, 1, m + 1, true))
		goto out;
	if (rmq_live_count(l2) != 0)
		failf("churn: %zu live subscriptions left after deleting both", rmq_live_count(l2));
	cnt_add(&ch->gone_live, 1);
	b = NULL;
	if ((rc = rmq_pull(dc, names[1], 100, 0, &b)) != RMQ_ERR_NOTOPIC)
		failf("churn durable: PULL of deleted %s: %s (want no such topic)", names[1],
		      rmq_strerror(rc));
	rmq_msgs_free(b);
	cnt_add(&ch->notopic_pulls, 1);
	uint8_t buf[HDR_LEN];
	put32(buf, 0);
	if ((rc = rmq_send(adm, names[0], buf, sizeof(buf), NULL)) != RMQ_ERR_NOTOPIC)
		failf("churn: PUBLISH to deleted %s: %s (want no such topic)", names[0],
		      rmq_strerror(rc));
	pthread_join(pl->th, NULL);
	puller_started = false;
	if (pl->rc != RMQ_ERR_NOTOPIC)
		failf("churn: blocked PULL on %s ended with '%s' (want no such topic)", names[0],
		      pl->rc == RMQ_ERR_TIMEOUT ? "no answer before its BLOCK timeout"
						: rmq_strerror(pl->rc));
	else if (pl->end_ms - t0 > ch->max_unpark_ms)
		ch->max_unpark_ms = pl->end_ms - t0;
	cnt_add(&ch->notopic_pulls, 1);
	cnt_add(&ch->live_msgs, lv1.msgs + lv2.msgs);
	ok = true;
out:
	if (puller_started) { /* failed midway: unblock it by deleting */
		rmq_delete_topic(adm, names[0]);
		pthread_join(pl->th, NULL);
	}
	if (pl) /* counters have one writer each: the puller's is added here */
		cnt_add(&ch->pulled, pl->pulled);
	free(pl);
	rmq_client_close(l1);
	rmq_client_close(l2);
	rmq_client_close(dc);
	if (!ok)
		atomic_store(&g_abort, 1);
	return ok;
}

static void *churn_main(void *arg)
{
	struct churn *ch = arg;
	struct rmq_client *adm = dial("churn");
	for (uint64_t k = 1; adm && running(); k++) {
		if (!churn_cycle(ch, adm, k))
			break;
		cnt_add(&ch->cycles, 1);
		e2e_sleep_ms((unsigned)(rnd(&ch->rng) % 50));
	}
	atomic_store(&g_churn_k, 0);
	rmq_client_close(adm);
	return NULL;
}

/* Publishes to the current churn topic a while it is deleted under it. */
struct racer {
	pthread_t th;
	uint64_t rng;
	_Atomic uint64_t sent, notopic, full;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	struct rmq_client *c = dial("racer");
	uint64_t cur = 0, seq = 0;
	char name[48];
	uint8_t buf[HDR_LEN + 128];
	while (c && running()) {
		uint64_t k = atomic_load(&g_churn_k);
		if (k != cur) {
			cur = k;
			seq = 0;
			snprintf(name, sizeof(name), "soak.churn.%" PRIu64 ".a", k);
		}
		if (k == 0 || seq >= RACER_MAX) {
			e2e_sleep_ms(1);
			continue;
		}
		size_t len = build_payload(buf, &r->rng, CHURN_ID0 + 2 * (uint32_t)k, PUB_RACER,
					   seq + 1, false);
		int rc = rmq_send(c, name, buf, len, NULL);
		if (rc == RMQ_OK) {
			seq++;
			cnt_add(&r->sent, 1);
		} else if (rc == RMQ_ERR_NOTOPIC) {
			cnt_add(&r->notopic, 1);
			e2e_sleep_ms(1);
		} else if (rc == RMQ_ERR_FULL) {
			cnt_add(&r->full, 1);
		} else {
			FATAL("racer: PUBLISH %s: %s", name, rmq_client_errstr(c));
		}
	}
	rmq_client_close(c);
	return NULL;
}

/* --- hostile clients (issue 12 items 1 and 2) --- */

struct hostile {
	pthread_t th;
	uint64_t rng;
	_Atomic uint64_t gone, deaf, deaf_closed, deaf_max_sent;
};

/* A raw, blocking TCP connection to the server (the client library waits
 * for replies; these clients must not). */
static int raw_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g_port) };
	inet_pton(AF_INET, E2E_HOST, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool raw_send(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Registers, subscribes the quiet topic, parks in PULL BLOCK 0, exits. */
static void hostile_gone_puller(struct hostile *h, uint64_t k)
{
	int fd = raw_connect();
	if (fd < 0)
		return failf("hostile: connect: %s", strerror(errno));
	char req[512], name[32];
	snprintf(name, sizeof(name), "soak-gone-%" PRIu64, k % GONE_NAMES);
	int n = snprintf(req, sizeof(req),
			 "*3\r\n$8\r\nREGISTER\r\n$10\r\nSUBSCRIBER\r\n$%zu\r\n%s\r\n"
			 "*2\r\n$10\r\nDSUBSCRIBE\r\n$%zu\r\n%s\r\n"
			 "*4\r\n$4\r\nPULL\r\n$%zu\r\n%s\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n",
			 strlen(name), name, strlen(QUIET_TOPIC), QUIET_TOPIC, strlen(QUIET_TOPIC),
			 QUIET_TOPIC);
	/* Read the REGISTER and DSUBSCRIBE replies, so that the close is a FIN
	 * (unread input would make it a reset, which the server always saw). */
	struct timeval tv = { .tv_sec = CLIENT_TIMEOUT_MS / 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char got[256] = "";
	size_t have = 0;
	static const char want[] = "+OK\r\n*1\r\n*2\r\n$10\r\n" QUIET_TOPIC "\r\n:1\r\n";
	if (raw_send(fd, req, (size_t)n)) {
		while (have < sizeof(want) - 1) {
			ssize_t r = recv(fd, got + have, sizeof(want) - 1 - have, 0);
			if (r <= 0)
				break;
			have += (size_t)r;
		}
	}
	if (have != sizeof(want) - 1 || memcmp(got, want, have) != 0)
		failf("hostile: %s: REGISTER + DSUBSCRIBE got %zu bytes '%.*s'", name, have,
		      (int)have, got);
	e2e_sleep_ms(20 + (unsigned)(rnd(&h->rng) % 30)); /* parked by now */
	close(fd);
	cnt_add(&h->gone, 1);
}

/* Subscribes a main topic and sends PINGs for DEAF_MS without reading
 * anything: the server must stop taking them in (or drop it as slow). */
static void hostile_deaf(struct hostile *h, uint64_t k)
{
	int fd = raw_connect();
	if (fd < 0)
		return failf("hostile: connect: %s", strerror(errno));
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	const char *t = g_topic[k % (uint64_t)g_cfg.topics];
	char req[128];
	int n = snprintf(req, sizeof(req), "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", strlen(t), t);
	static const char ping[] = "PING\r\nPING\r\nPING\r\nPING\r\n";
	static char pings[64 * (sizeof(ping) - 1)];
	for (size_t i = 0; i < sizeof(pings); i += sizeof(ping) - 1)
		memcpy(pings + i, ping, sizeof(ping) - 1);
	uint64_t sent = 0, until = e2e_now_ms() + DEAF_MS;
	bool closed = !raw_send(fd, req, (size_t)n);
	while (!closed && running() && e2e_now_ms() < until) {
		ssize_t w = send(fd, pings, sizeof(pings), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			sent += (uint64_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			e2e_sleep_ms(5); /* blocked: the server stopped reading us */
		} else {
			closed = true; /* disconnected as slow */
		}
	}
	close(fd);
	cnt_add(&h->deaf, 1);
	if (closed)
		cnt_add(&h->deaf_closed, 1);
	if (sent > cnt(&h->deaf_max_sent))
		atomic_store(&h->deaf_max_sent, sent);
	if (sent > DEAF_MAX_SENT)
		failf("hostile: the server took %" PRIu64
		      " bytes of PING from a subscriber that reads nothing",
		      sent);
}

static void *hostile_main(void *arg)
{
	struct hostile *h = arg;
	for (uint64_t k = 0; running(); k++) {
		if (k % 4 == 3)
			hostile_deaf(h, k);
		else
			hostile_gone_puller(h, k);
		e2e_sleep_ms((unsigned)(rnd(&h->rng) % 100));
	}
	return NULL;
}

/* --- the server process --- */

/* Open file descriptors of pid, -1 if unreadable. */
static int proc_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	/* cppcheck-suppress readdirCalled ; one thread reads this DIR, and readdir_r is deprecated */
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Waits (bounded) until the fd count is back to want. Returns the count. */
static int settle_fds(pid_t pid, int want)
{
	uint64_t until = e2e_now_ms() + SETTLE_MS;
	int n;
	while ((n = proc_fds(pid)) != want && e2e_now_ms() < until)
		e2e_sleep_ms(20);
	return n;
}

/* Waits until the fd count held still for half a second (bounded). */
static int steady_fds(pid_t pid)
{
	uint64_t until = e2e_now_ms() + SETTLE_MS, since = e2e_now_ms();
	int n = proc_fds(pid);
	while (e2e_now_ms() < until && e2e_now_ms() - since < 500) {
		e2e_sleep_ms(20);
		int v = proc_fds(pid);
		if (v != n) {
			n = v;
			since = e2e_now_ms();
		}
	}
	return n;
}

/* Waits until RSS stopped falling for 3 s (bounded); returns it. The
 * server gives freed memory back once a worker has been idle for 1 s. */
static long settle_rss(pid_t pid)
{
	uint64_t until = e2e_now_ms() + SETTLE_MS, stable_since = e2e_now_ms();
	long low = (long)rmq_proc_rss_kib(pid);
	while (e2e_now_ms() < until && e2e_now_ms() - stable_since < 3000) {
		e2e_sleep_ms(100);
		long v = (long)rmq_proc_rss_kib(pid);
		if (v < low) {
			low = v;
			stable_since = e2e_now_ms();
		}
	}
	return (long)rmq_proc_rss_kib(pid);
}

/* Reports a missing reply or an error reply; returns r for the caller to
 * free. */
static struct e2e_reply *checked(const char *what, struct e2e_reply *r)
{
	if (!r)
		failf("%s: no reply (%s)", what, e2e_last_error());
	else if (r->type == E2E_ERROR) /* a cleanup that did not happen */
		failf("%s: -%s", what, r->str);
	return r;
}

/* Scans the server's whole stderr log for sanitizer reports. */
static void check_server_log(const char *path)
{
	static const char *const bad[] = { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
					   "runtime error:", "WARNING: ThreadSanitizer",
					   "ThreadSanitizer: reported" };
	FILE *f = fopen(path, "re");
	if (!f)
		return failf("cannot read the server log %s", path);
	char line[1024];
	unsigned shown = 0, hits = 0;
	while (fgets(line, sizeof(line), f)) {
		bool hit = false;
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			hit |= strstr(line, bad[i]) != NULL;
		hits += hit;
		if ((hits && shown < 60) || hit) { /* the report's first lines */
			if (!shown)
				fprintf(stderr, "--- server log (sanitizer report) ---\n");
			fputs(line, stderr);
			shown++;
		}
	}
	fclose(f);
	if (hits)
		failf("the server's log has %u sanitizer report line(s)", hits);
}

/* --- main --- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: soak [--duration S] [--publishers N] [--live N] [--durable N] [--topics N]\n"
		"            [--server-threads N] [--seed N] [--rss-tolerance-kib N] [--no-rss-check]\n"
		"            [--hold S] [--keep-log]\n"
		"Runs the ringmq soak test against " RINGMQ_SERVER_BIN
		" for S seconds (default 60,\n"
		"or $RINGMQ_SOAK_SECONDS); exit 0 when every check passed, 1 otherwise.\n"
		"--hold S keeps the server running S seconds after the checks, before SIGTERM, to\n"
		"inspect it (gdb -p PID); --keep-log keeps its stderr log even when all passed.\n");
}

/* A whole decimal number from 0 to INT_MAX, or exit 2 with a message;
 * parse_args() checks each one's range. */
static int num_arg(const char *what, const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > INT_MAX) {
		fprintf(stderr, "soak: %s must be a whole number, not '%s'\n", what, s);
		exit(2);
	}
	return (int)v;
}

static int parse_args(int argc, char **argv)
{
	const char *env = getenv("RINGMQ_SOAK_SECONDS");
	if (env && *env)
		g_cfg.seconds = num_arg("RINGMQ_SOAK_SECONDS", env);
	g_cfg.seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ e2e_now_ms();
	if ((env = getenv("RINGMQ_SOAK_SEED")) && *env)
		g_cfg.seed = strtoull(env, NULL, 0);
	static const struct option opts[] = {
		{ "duration", required_argument, NULL, 'd' },
		{ "publishers", required_argument, NULL, 'p' },
		{ "live", required_argument, NULL, 'l' },
		{ "durable", required_argument, NULL, 'D' },
		{ "topics", required_argument, NULL, 't' },
		{ "server-threads", required_argument, NULL, 'T' },
		{ "seed", required_argument, NULL, 's' },
		{ "rss-tolerance-kib", required_argument, NULL, 'r' },
		{ "no-rss-check", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "hold", required_argument, NULL, 'H' },
		{ "keep-log", no_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': g_cfg.seconds = num_arg("--duration", optarg); break;
		case 'p': g_cfg.pubs = num_arg("--publishers", optarg); break;
		case 'l': g_cfg.lives = num_arg("--live", optarg); break;
		case 'D': g_cfg.durs = num_arg("--durable", optarg); break;
		case 't': g_cfg.topics = num_arg("--topics", optarg); break;
		case 'T': g_cfg.threads = num_arg("--server-threads", optarg); break;
		case 's': g_cfg.seed = strtoull(optarg, NULL, 0); break;
		case 'r': g_cfg.rss_tol_kib = num_arg("--rss-tolerance-kib", optarg); break;
		case 'n': g_cfg.check_rss = false; break;
		case 'H': g_cfg.hold = num_arg("--hold", optarg); break;
		case 'k': g_cfg.keep_log = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc || g_cfg.seconds < 1 || g_cfg.seconds > 3600 || g_cfg.pubs < 1 ||
	    g_cfg.pubs > MAX_PUBS || g_cfg.lives < 0 || g_cfg.lives > MAX_SUBS || g_cfg.durs < 1 ||
	    g_cfg.durs > MAX_SUBS || g_cfg.topics < 1 || g_cfg.topics > MAX_TOPICS ||
	    g_cfg.threads < 1 || g_cfg.threads > 64 || g_cfg.rss_tol_kib < 0 || g_cfg.hold < 0) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* --- the run --- */

static struct pub g_pubs[MAX_PUBS];
static struct live g_lives[MAX_SUBS];
static struct dur g_durs[MAX_SUBS];
static struct churn g_churn;
static struct racer g_racer;
static struct hostile g_hostile;

/* Everything the summary reports. */
struct totals {
	uint64_t load_ms, pub, pub_bytes, full, pub_reconn;
	uint64_t dur_msgs, dur_pulls, dur_disc, takeovers, away_ms, drain_ms, expected;
	uint64_t live_msgs, live_self, live_server, all_in;
	long long in, pulled, slow, conns, durs, retained;
	int fd0, fd_peak, fd1, fd2;
	long rss0, rss_peak, rss1, rss2;
	bool rss_checked;
	int stop_status;
	uint64_t stop_ms;
};

/* Creates the main topics and subscribes every durable subscriber before
 * anything is published (a new subscription starts at the topic's end). */
static bool setup(void)
{
	struct rmq_client *adm = dial("set-up");
	for (int t = 0; adm && t < g_cfg.topics; t++) {
		snprintf(g_topic[t], sizeof(g_topic[t]), "soak.main.%d", t);
		struct rmq_topic_opts o = { .capacity = g_capacity[t],
					    .onfull = RMQ_ONFULL_REJECT };
		if (rmq_create_topic(adm, g_topic[t], &o) != RMQ_OK)
			FATAL("CREATE %s: %s", g_topic[t], rmq_client_errstr(adm));
	}
	rmq_client_close(adm);
	for (int i = 0; i < g_cfg.durs; i++) {
		struct dur *d = &g_durs[i];
		d->id = i;
		snprintf(d->who, sizeof(d->who), "durable %d", i);
		snprintf(d->name, sizeof(d->name), "soak-dur-%d", i);
		d->rng = rnd_seed(3, (unsigned)i);
		/* two neighbouring topics each (one if there is one), so every
		 * topic has durable readers when durs >= topics */
		d->mask = (1ULL << (i % g_cfg.topics)) | (1ULL << ((i + 1) % g_cfg.topics));
		rmq_client_close(dur_attach(d->who, d->name, d->mask));
	}
	adm = dial("set-up");
	struct rmq_topic_opts q = { .capacity = 64 << 10, .onfull = RMQ_ONFULL_DROP_OLDEST };
	if (adm && rmq_create_topic(adm, QUIET_TOPIC, &q) != RMQ_OK)
		FATAL("CREATE %s: %s", QUIET_TOPIC, rmq_client_errstr(adm));
	rmq_client_close(adm);
	return !atomic_load(&g_abort);
}

static void start(pthread_t *th, void *(*fn)(void *), void *arg)
{
	if (pthread_create(th, NULL, fn, arg) != 0) {
		fprintf(stderr, "FAIL: pthread_create: %s\n", strerror(errno));
		exit(1); /* the server dies with us (PR_SET_PDEATHSIG) */
	}
}

static void start_threads(void)
{
	for (int i = 0; i < g_cfg.durs; i++)
		start(&g_durs[i].th, dur_main, &g_durs[i]);
	for (int i = 0; i < g_cfg.lives; i++) {
		struct live *l = &g_lives[i];
		l->id = i;
		snprintf(l->who, sizeof(l->who), "live %d", i);
		l->rng = rnd_seed(2, (unsigned)i);
		start(&l->th, live_main, l);
	}
	g_churn.rng = rnd_seed(4, 0);
	g_racer.rng = rnd_seed(5, 0);
	start(&g_churn.th, churn_main, &g_churn);
	start(&g_racer.th, racer_main, &g_racer);
	g_hostile.rng = rnd_seed(6, 0);
	start(&g_hostile.th, hostile_main, &g_hostile);
	for (int i = 0; i < g_cfg.pubs; i++) {
		struct pub *p = &g_pubs[i];
		p->id = i;
		snprintf(p->who, sizeof(p->who), "publisher %d", i);
		snprintf(p->name, sizeof(p->name), "soak-pub-%d", i);
		p->rng = rnd_seed(1, (unsigned)i);
		start(&p->th, pub_main, p);
	}
}

/* The load phase: samples the server's RSS and fds, prints progress. */
static void load_phase(pid_t pid, struct totals *tt)
{
	uint64_t t0 = e2e_now_ms(), end = t0 + (uint64_t)g_cfg.seconds * 1000, report = t0 + 10000;
	while (e2e_now_ms() < end && !atomic_load(&g_abort)) {
		e2e_sleep_ms(200);
		long r = (long)rmq_proc_rss_kib(pid);
		int f = proc_fds(pid);
		if (r < 0 || f < 0) {
			FATAL("the server (pid %d) is gone during the load", (int)pid);
			break;
		}
		tt->rss_peak = r > tt->rss_peak ? r : tt->rss_peak;
		tt->fd_peak = f > tt->fd_peak ? f : tt->fd_peak;
		if (e2e_now_ms() < report)
			continue;
		report += 10000;
		uint64_t sent = 0, live = 0, dmsgs = 0;
		for (int i = 0; i < g_cfg.pubs; i++)
			sent += cnt(&g_pubs[i].sent);
		for (int i = 0; i < g_cfg.lives; i++)
			live += cnt(&g_lives[i].msgs);
		for (int i = 0; i < g_cfg.durs; i++)
			dmsgs += cnt(&g_durs[i].msgs);
		printf("soak: %3" PRIu64 " s: published %" PRIu64 ", durable got %" PRIu64
		       ", live got %" PRIu64 ", churn cycles %" PRIu64
		       ", server RSS %ld KiB, %d fds\n",
		       (e2e_now_ms() - t0) / 1000, sent, dmsgs, live, cnt(&g_churn.cycles), r, f);
	}
	atomic_store(&g_stop, 1);
	tt->load_ms = e2e_now_ms() - t0;
}

/* Stops the publishers first, so that durable subscribers know what to
 * expect, then waits for everyone; checks the totals. */
static void join_all(struct totals *tt)
{
	for (int i = 0; i < g_cfg.pubs; i++) {
		struct pub *p = &g_pubs[i];
		pthread_join(p->th, NULL);
		tt->pub += cnt(&p->sent);
		tt->pub_bytes += cnt(&p->bytes);
		tt->full += cnt(&p->full);
		tt->pub_reconn += cnt(&p->reconnects);
	}
	atomic_store_explicit(&g_pubs_done, 1, memory_order_release);
	for (int i = 0; i < g_cfg.durs; i++) {
		struct dur *d = &g_durs[i];
		pthread_join(d->th, NULL);
		tt->dur_msgs += cnt(&d->msgs);
		tt->dur_pulls += cnt(&d->pulls);
		tt->dur_disc += cnt(&d->disc);
		tt->takeovers += cnt(&d->takeovers);
		tt->away_ms += cnt(&d->away_ms);
		tt->drain_ms = d->drain_ms > tt->drain_ms ? d->drain_ms : tt->drain_ms;
		for (int t = 0; t < g_cfg.topics; t++)
			for (int p = 0; (d->mask >> t & 1) && p < g_cfg.pubs; p++)
				tt->expected += g_final[p][t];
	}
	for (int i = 0; i < g_cfg.lives; i++) {
		struct live *l = &g_lives[i];
		pthread_join(l->th, NULL);
		tt->live_msgs += cnt(&l->msgs);
		tt->live_self += cnt(&l->self_disc);
		tt->live_server += cnt(&l->server_disc);
		if (!atomic_load(&g_abort) && cnt(&l->msgs) == 0)
			failf("live %d received nothing in %d s", i, g_cfg.seconds);
	}
	pthread_join(g_churn.th, NULL);
	pthread_join(g_racer.th, NULL);
	pthread_join(g_hostile.th, NULL);
	if (!atomic_load(&g_abort) && (cnt(&g_hostile.gone) == 0 || cnt(&g_hostile.deaf) == 0))
		failf("the hostile clients did not run (%" PRIu64 " gone pullers, %" PRIu64
		      " deaf subscribers)",
		      cnt(&g_hostile.gone), cnt(&g_hostile.deaf));
	tt->all_in = tt->pub + cnt(&g_churn.sent) + cnt(&g_racer.sent);
	if (atomic_load(&g_abort))
		return;
	if (tt->dur_msgs != tt->expected)
		failf("durable subscribers got %" PRIu64 " messages, want %" PRIu64, tt->dur_msgs,
		      tt->expected);
	if (cnt(&g_churn.cycles) == 0 || tt->pub == 0)
		failf("no churn cycle or no message completed (%" PRIu64 ", %" PRIu64 ")",
		      cnt(&g_churn.cycles), tt->pub);
}

/* The server's counters must agree with what the clients saw. */
static void check_info(int port, struct totals *tt)
{
	struct e2e_client *c = e2e_connect(port, CLIENT_TIMEOUT_MS);
	if (!c)
		return failf("connect for INFO: %s", e2e_last_error());
	tt->in = e2e_info_field(c, "messages_in");
	tt->pulled = e2e_info_field(c, "messages_pulled");
	tt->slow = e2e_info_field(c, "slow_subscribers_disconnected");
	tt->conns = e2e_info_field(c, "connected_clients");
	tt->durs = e2e_info_field(c, "durable_subscribers");
	tt->retained = e2e_info_field(c, "bytes_retained");
	long long topics = e2e_info_field(c, "topics");
	struct e2e_reply *r = checked("TOPICS", e2e_cmd(c, "TOPICS", NULL));
	if (r && (r->type != E2E_ARRAY || r->n != (size_t)g_cfg.topics + 1))
		failf("topics left after the churn: %s (want the %d main topics and " QUIET_TOPIC
		      ")",
		      e2e_reply_str(r), g_cfg.topics);
	e2e_reply_free(r);
	e2e_close(c);
	if (atomic_load(&g_abort))
		return;
	uint64_t cycles = cnt(&g_churn.cycles), pulled = tt->dur_msgs + cnt(&g_churn.pulled);
	/* churn names: CHURN_NAMES durable and as many puller names, reused */
	long long names =
		2 * (long long)(cycles + 1 < CHURN_NAMES ? cycles + 1 : CHURN_NAMES) + GONE_NAMES;
	if (tt->in != (long long)tt->all_in)
		failf("INFO messages_in %lld, clients had %" PRIu64 " accepted", tt->in,
		      tt->all_in);
	if (tt->pulled != (long long)pulled)
		failf("INFO messages_pulled %lld, durable clients received %" PRIu64, tt->pulled,
		      pulled);
	if (tt->slow < (long long)tt->live_server)
		failf("the server closed %" PRIu64 " live subscribers, INFO counts %lld slow ones",
		      tt->live_server, tt->slow);
	if (topics != g_cfg.topics + 1)
		failf("INFO topics %lld, want %d", topics, g_cfg.topics + 1);
	if (tt->durs < g_cfg.durs || tt->durs > g_cfg.durs + names)
		failf("INFO durable_subscribers %lld, want %d to %lld", tt->durs, g_cfg.durs,
		      g_cfg.durs + names);
}

/* Unsubscribes the durable subscribers (a subscription keeps a deleted
 * topic's memory until its subscriber pulls again) and deletes the main
 * topics. */
static void delete_main_topics(int port)
{
	for (int i = 0; i < g_cfg.durs; i++) {
		struct e2e_client *c = e2e_connect(port, CLIENT_TIMEOUT_MS);
		if (!c)
			return failf("connect: %s", e2e_last_error());
		e2e_reply_free(checked("REGISTER",
				       e2e_cmd(c, "REGISTER", "SUBSCRIBER", g_durs[i].name, NULL)));
		for (int t = 0; t < g_cfg.topics; t++) /* one reply per request */
			if (g_durs[i].mask >> t & 1)
				e2e_reply_free(checked("DUNSUBSCRIBE", e2e_cmd(c, "DUNSUBSCRIBE",
									       g_topic[t], NULL)));
		e2e_close(c);
	}
	for (int i = 0; i < GONE_NAMES; i++) { /* the vanished pullers' names */
		struct e2e_client *c = e2e_connect(port, CLIENT_TIMEOUT_MS);
		if (!c)
			return failf("connect: %s", e2e_last_error());
		char name[32];
		snprintf(name, sizeof(name), "soak-gone-%d", i);
		e2e_reply_free(
			checked("REGISTER", e2e_cmd(c, "REGISTER", "SUBSCRIBER", name, NULL)));
		e2e_reply_free(
			checked("DUNSUBSCRIBE", e2e_cmd(c, "DUNSUBSCRIBE", QUIET_TOPIC, NULL)));
		e2e_close(c);
	}
	struct e2e_client *c = e2e_connect(port, CLIENT_TIMEOUT_MS);
	if (!c)
		return failf("connect: %s", e2e_last_error());
	e2e_reply_free(checked("DELETE", e2e_cmd(c, "DELETE", QUIET_TOPIC, NULL)));
	for (int t = 0; t < g_cfg.topics; t++) {
		struct e2e_reply *r = checked("DELETE", e2e_cmd(c, "DELETE", g_topic[t], NULL));
		if (r && r->type != E2E_STATUS)
			failf("DELETE %s: %s", g_topic[t], e2e_reply_str(r));
		e2e_reply_free(r);
	}
	e2e_close(c);
}

/* fds and RSS back to baseline: once every client left and the churn
 * topics are gone (the main topics then still retain up to their
 * capacity, which INFO reports), and again once the main topics are
 * deleted too. */
static void check_baseline(const struct e2e_server *srv, struct totals *tt, bool sanitized)
{
	tt->fd1 = settle_fds(srv->pid, tt->fd0);
	tt->rss1 = settle_rss(srv->pid);
	if (tt->fd1 != tt->fd0)
		failf("server fds %d, baseline %d (%d s after the clients left)", tt->fd1, tt->fd0,
		      SETTLE_MS / 1000);
	tt->rss_checked = g_cfg.check_rss && !sanitized;
	long retained_kib = tt->retained > 0 ? (long)(tt->retained >> 10) : 0;
	if (tt->rss_checked && tt->rss1 - tt->rss0 > retained_kib + g_cfg.rss_tol_kib)
		failf("server RSS %ld KiB once the clients left, baseline %ld KiB: +%ld KiB > %ld KiB retained by the main topics + tolerance %ld KiB",
		      tt->rss1, tt->rss0, tt->rss1 - tt->rss0, retained_kib, g_cfg.rss_tol_kib);
	delete_main_topics(srv->port);
	tt->fd2 = settle_fds(srv->pid, tt->fd0);
	tt->rss2 = settle_rss(srv->pid);
	if (tt->fd2 != tt->fd0)
		failf("server fds %d after deleting the main topics, baseline %d", tt->fd2,
		      tt->fd0);
	if (tt->rss_checked && tt->rss2 - tt->rss0 > g_cfg.rss_tol_kib)
		failf("server RSS %ld KiB after everything was deleted, baseline %ld KiB: +%ld KiB > tolerance %ld KiB",
		      tt->rss2, tt->rss0, tt->rss2 - tt->rss0, g_cfg.rss_tol_kib);
}

/* SIGTERM: exit status 0 and no sanitizer report in the log. */
static void stop_server(struct e2e_server *srv, struct totals *tt)
{
	uint64_t t0 = e2e_now_ms();
	int st = e2e_server_stop(srv, SIGTERM, 60000);
	tt->stop_ms = e2e_now_ms() - t0;
	tt->stop_status = st;
	if (st < 0)
		failf("server did not exit on SIGTERM: %s", e2e_last_error());
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		failf("server exit on SIGTERM: %s %d (want exit status 0)",
		      WIFEXITED(st) ? "status" : "signal",
		      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	check_server_log(srv->log_path);
	if (atomic_load(&g_failures) == 0 && !g_cfg.keep_log)
		unlink(srv->log_path);
	else
		printf("soak: server log kept: %s\n", srv->log_path);
}

static void print_summary(const struct totals *tt, const char *kind)
{
	const struct churn *ch = &g_churn;
	const struct racer *ra = &g_racer;
	int st = tt->stop_status;
	printf("\n== soak summary (%s server, %d server threads, %.1f s of load, seed 0x%" PRIx64
	       ") ==\n",
	       kind, g_cfg.threads, (double)tt->load_ms / 1000.0, g_cfg.seed);
	printf("published   %" PRIu64
	       " messages by %d publishers to %d main topics (%.1f MB, %.0f msg/s); %" PRIu64
	       " -FULL retries; %" PRIu64 " publisher reconnects\n",
	       tt->pub, g_cfg.pubs, g_cfg.topics, (double)tt->pub_bytes / 1e6,
	       (double)tt->pub * 1000.0 / (double)(tt->load_ms ? tt->load_ms : 1), tt->full,
	       tt->pub_reconn);
	printf("durable     %" PRIu64
	       " messages to %d subscribers, each exactly once and in order (expected %" PRIu64
	       "), %" PRIu64 " pulls; %" PRIu64 " disconnects (%" PRIu64
	       " by takeover, %.1f s away in all); caught up %.1f s after the load\n",
	       tt->dur_msgs, g_cfg.durs, tt->expected, tt->dur_pulls, tt->dur_disc, tt->takeovers,
	       (double)tt->away_ms / 1000.0, (double)tt->drain_ms / 1000.0);
	printf("live        %" PRIu64 " messages to %d subscribers; %" PRIu64
	       " self disconnects, %" PRIu64
	       " closed by the server (INFO slow_subscribers_disconnected %lld)\n",
	       tt->live_msgs, g_cfg.lives, tt->live_self, tt->live_server, tt->slow);
	printf("churn       %" PRIu64 " cycles: %" PRIu64 " topics created, %" PRIu64
	       " deleted (+%d main topics at the end); %" PRIu64
	       " deletion notices to live subscribers, %" PRIu64
	       " NOTOPIC pulls, blocked PULL answered at most %" PRIu64 " ms after DELETE; %" PRIu64
	       " published + %" PRIu64 " by the racer (%" PRIu64 " NOTOPIC), %" PRIu64
	       " pulled, %" PRIu64 " pushed\n",
	       cnt(&ch->cycles), cnt(&ch->created), cnt(&ch->deleted), g_cfg.topics,
	       cnt(&ch->gone_live), cnt(&ch->notopic_pulls), ch->max_unpark_ms, cnt(&ch->sent),
	       cnt(&ra->sent), cnt(&ra->notopic), cnt(&ch->pulled), cnt(&ch->live_msgs));
	printf("hostile     %" PRIu64 " pullers parked in PULL BLOCK 0 and vanished; %" PRIu64
	       " subscribers that never read sent PINGs (%" PRIu64
	       " dropped as slow; the most the server took from one: %" PRIu64 " bytes)\n",
	       cnt(&g_hostile.gone), cnt(&g_hostile.deaf), cnt(&g_hostile.deaf_closed),
	       cnt(&g_hostile.deaf_max_sent));
	printf("server INFO messages_in %lld, messages_pulled %lld, durable_subscribers %lld, bytes_retained %lld (after the load)\n",
	       tt->in, tt->pulled, tt->durs, tt->retained);
	printf("server fds  baseline %d, peak %d, after the clients left %d, after deleting the main topics %d\n",
	       tt->fd0, tt->fd_peak, tt->fd1, tt->fd2);
	printf("server RSS  baseline %ld KiB, peak %ld, after the clients left %ld (%+ld), after deleting the main topics %ld (%+ld); tolerance %ld KiB%s\n",
	       tt->rss0, tt->rss_peak, tt->rss1, tt->rss1 - tt->rss0, tt->rss2, tt->rss2 - tt->rss0,
	       g_cfg.rss_tol_kib, tt->rss_checked ? "" : " (not checked)");
	printf("server stop SIGTERM -> %s %d after %" PRIu64 " ms\n",
	       st < 0          ? "no exit"
	       : WIFEXITED(st) ? "exit status"
			       : "signal",
	       st < 0          ? -1
	       : WIFEXITED(st) ? WEXITSTATUS(st)
			       : WTERMSIG(st),
	       tt->stop_ms);
	unsigned nf = atomic_load(&g_failures);
	printf("result      %s (%u failure%s)\n", nf ? "FAIL" : "PASS", nf, nf == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv) != 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	bool sanitized = RINGMQ_SOAK_SANITIZE[0] != 0;
	const char *kind = sanitized ? RINGMQ_SOAK_SANITIZE : "plain";

	struct e2e_server srv;
	char threads[16];
	snprintf(threads, sizeof(threads), "%d", g_cfg.threads);
	/* Memory topics: the fd and RSS baselines below assume topics hold no
	 * descriptors; a disk topic holds its directory and segment files
	 * (and the page cache is not RSS). The disk paths have their own
	 * suites (tests/e2e/test_persist.c, tests/crash). */
	const char *extra[] = { "--threads", threads, "--storage", "memory", NULL };
	if (e2e_server_start(&srv, extra, 30000) != 0) {
		fprintf(stderr, "FAIL: cannot start %s: %s\n", RINGMQ_SERVER_BIN, e2e_last_error());
		return 1;
	}
	g_port = srv.port;
	printf("soak: server pid %d port %d (%s build), %d s, seed 0x%" PRIx64
	       ", %d publishers, %d live, %d durable, %d topics\n",
	       (int)srv.pid, srv.port, kind, g_cfg.seconds, g_cfg.seed, g_cfg.pubs, g_cfg.lives,
	       g_cfg.durs, g_cfg.topics);
	if (!setup()) {
		e2e_server_kill(&srv);
		return 1;
	}
	struct totals tt = { 0 };
	tt.fd0 = steady_fds(srv.pid); /* the set-up connections are closed */
	tt.rss0 = settle_rss(srv.pid);
	tt.fd_peak = tt.fd0;
	tt.rss_peak = tt.rss0;
	printf("soak: baseline: RSS %ld KiB, %d fds\n", tt.rss0, tt.fd0);

	start_threads();
	load_phase(srv.pid, &tt);
	join_all(&tt);
	check_info(srv.port, &tt);
	check_baseline(&srv, &tt, sanitized);
	if (g_cfg.hold) {
		printf("soak: holding server pid %d for %d s (log %s)\n", (int)srv.pid, g_cfg.hold,
		       srv.log_path);
		e2e_sleep_ms((unsigned)g_cfg.hold * 1000);
	}
	stop_server(&srv, &tt);
	print_summary(&tt, kind);
	e2e_release_all();
	return atomic_load(&g_failures) ? 1 : 0;
}
