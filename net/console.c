/* console.c - the web console on --metrics-port: a JSON API under /api/v1/
 * and the page at / (net/console/index.html, compiled in by CMake), both
 * served on http.c's thread through metrics.c's handler.
 *
 * Rates: a sampler thread of its own reads the workers' counters once a
 * second (a ring of CONSOLE_HISTORY samples: the overview's charts) and,
 * while someone used the API in the last CONSOLE_IDLE_MS, sweeps the topic
 * table with rmq_broker_scan, in chunks with a quiescent state between
 * them, keeping each topic's published counters in an open-addressing map
 * keyed by the topic's name hash: the next sweep's deltas are its rates.
 * The map holds at most CONSOLE_RATE_MAX topics (the rest have no rate:
 * null in the API), and a sweep that took T ms waits at least 10 T before
 * the next, so a table of a million topics costs the sampler a bounded
 * share of a core. Neither thread ever takes a lock a worker takes or
 * makes a worker wait: both read relaxed counters and walk the table as
 * paged TOPICS does.
 *
 * Pages: /api/v1/topics walks the table (in chunks, as above) and keeps
 * the best offset+limit rows for the sort in a bounded heap (at most
 * CONSOLE_WINDOW_MAX rows): one response never holds every topic.
 *
 * Clients: connections belong to their workers, so the console asks as a
 * client would: it connects to the plain port on this host as the HTTP
 * user (AUTH with the Basic credentials) and sends CLIENT LIST or CLIENT
 * KILL, DELETE for a topic and UNREGISTER for a durable subscriber, so
 * the broker's ACL decides as for any
 * client. That blocks the HTTP thread, not a worker, for at most
 * CONSOLE_RESP_TIMEOUT_MS.
 *
 * Access: every path needs a user as /metrics does (acl.c,
 * rmq__acl_http_user): a peer from another host must authenticate unless
 * the default user is open. The last messages of a topic are shown only to
 * users that may SUBSCRIBE to it; admin actions need the command (DELETE,
 * CLIENT, UNREGISTER: its owner or @admin) and a POST with X-Ringmq-Confirm set to the object's name or id
 * (a header a cross-site form cannot send).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <urcu/urcu-qsbr.h>

#include "http.h"

#define RMQ_TOPIC_NAME_MAX 255    /* rmq_topic_name_valid */
#define CONSOLE_HISTORY 300       /* seconds of overview samples */
#define CONSOLE_IDLE_MS 60000     /* sweep topics while the API was used this recently */
#define CONSOLE_RATE_MAX 262144   /* topics whose rates are tracked */
#define CONSOLE_WINDOW_MAX 100000 /* offset + limit of a sorted page */
#define CONSOLE_LIMIT_MAX 1000    /* rows per page */
#define CONSOLE_TOP 10
#define CONSOLE_SCAN_CHUNK 4096
#define CONSOLE_MSGS_MAX 50
#define CONSOLE_PAYLOAD_TEXT 256 /* bytes of a payload shown as text */
#define CONSOLE_PAYLOAD_HEX 64   /* bytes of a payload shown as hex */
#define CONSOLE_RESP_TIMEOUT_MS 3000
#define CONSOLE_RESP_MAX (64u << 20) /* a CLIENT LIST reply, at most */

/* Generated from net/console/index.html (cmake/embed.cmake). */
extern const unsigned char rmq_console_index_html[];
extern const size_t rmq_console_index_html_len;

struct rate_ent {
	uint64_t key; /* 0: empty */
	uint64_t msgs, bytes;
	float rm, rb; /* per second; < 0: not known yet */
};

struct rate_map {
	struct rate_ent *v;
	size_t mask, n;
};

struct sample {
	uint64_t t_ms;
	double mi, mo, bi, bo; /* messages in, out, network bytes in, out per second */
};

struct top_ent {
	char name[RMQ_TOPIC_NAME_MAX + 1];
	double rm, rb;
};

struct console {
	struct server *srv;
	pthread_t th;
	bool started;
	pthread_mutex_t lock; /* the fields below; never taken by a worker */
	pthread_cond_t cond;
	bool stop;
	struct rate_map map;
	bool map_full; /* the last sweep met more than CONSOLE_RATE_MAX topics */
	uint64_t sweep_ms, sweep_at;
	struct sample hist[CONSOLE_HISTORY];
	size_t nhist, hist_pos;
	struct top_ent top[CONSOLE_TOP];
	size_t ntop;
	_Atomic uint64_t used_ms; /* last API request */
};

/* --- small helpers --- */

static void jf(struct rmq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jf(struct rmq_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *w = rmq_buf_reserve(b, 256);
	int n = vsnprintf(w, 256, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= 256) {
		w = rmq_buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(w, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* A JSON string: quotes, \" \\ and control characters escaped, bytes that
 * are not UTF-8 as U+FFFD (topic names are checked, payloads are not). */
static void jstr(struct rmq_buf *b, const char *s, size_t n)
{
	rmq_buf_append(b, "\"", 1);
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		unsigned char ch = p[i];
		if (ch == '"' || ch == '\\') {
			char e[2] = { '\\', (char)ch };
			rmq_buf_append(b, e, 2);
			i++;
		} else if (ch < 0x20 || ch == 0x7f) {
			jf(b, "\\u%04x", ch);
			i++;
		} else if (ch < 0x80) {
			rmq_buf_append(b, s + i, 1);
			i++;
		} else {
			size_t len = ch >= 0xf0 && ch < 0xf5 ? 4
				     : ch >= 0xe0            ? 3
				     : ch >= 0xc2            ? 2
							     : 0;
			bool ok = len && i + len <= n;
			for (size_t k = 1; ok && k < len; k++)
				ok = (p[i + k] & 0xc0) == 0x80;
			if (ok) {
				rmq_buf_append(b, s + i, len);
				i += len;
			} else {
				rmq_buf_append(b, "\\ufffd", 6);
				i++;
			}
		}
	}
	rmq_buf_append(b, "\"", 1);
}

static void jcstr(struct rmq_buf *b, const char *s)
{
	jstr(b, s, strlen(s));
}

/* A rate, or null when not known. */
static void jrate(struct rmq_buf *b, double r)
{
	if (r < 0)
		rmq_buf_append(b, "null", 4);
	else
		jf(b, "%.2f", r);
}

static int jerr(struct rmq_buf *b, const char **ctype, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int jerr(struct rmq_buf *b, const char **ctype, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	b->len = 0;
	rmq_buf_append(b, "{\"error\":", 9);
	jcstr(b, msg);
	jf(b, ",\"status\":%d}\n", status);
	*ctype = "application/json";
	return status;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The value of key in a query string, %-decoded into out (cap bytes, NUL
 * terminated). Returns its length, -1 when absent, -2 when malformed (a
 * bad %-escape, a NUL) or longer than cap - 1. */
static ssize_t qget(const char *q, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	for (const char *p = q; *p;) {
		const char *e = strchr(p, '&');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len >= kl && !memcmp(p, key, kl) && (len == kl || p[kl] == '=')) {
			const char *v = p + kl + (len > kl), *end = p + len;
			size_t n = 0;
			while (v < end) {
				int c = (unsigned char)*v;
				if (c == '%') {
					int h = end - v >= 3 ? hexval(v[1]) : -1;
					int l = end - v >= 3 ? hexval(v[2]) : -1;
					if (h < 0 || l < 0 || (h == 0 && l == 0))
						return -2;
					c = h * 16 + l;
					v += 3;
				} else {
					if (c == '+')
						c = ' ';
					v++;
				}
				if (n + 1 >= cap)
					return -2;
				out[n++] = (char)c;
			}
			out[n] = '\0';
			return (ssize_t)n;
		}
		p = e ? e + 1 : p + len;
	}
	return -1;
}

/* An unsigned query parameter in [min, max], def when absent. Returns 0,
 * or -1 with the error response written. */
static int qnum(const char *q, const char *key, uint64_t def, uint64_t min, uint64_t max,
		uint64_t *v, struct rmq_buf *b, const char **ctype, int *status)
{
	char s[32];
	ssize_t n = qget(q, key, s, sizeof(s));
	if (n == -1) {
		*v = def;
		return 0;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long x = n > 0 && s[0] >= '0' && s[0] <= '9' ? strtoull(s, &end, 10) : 0;
	if (n <= 0 || errno || !end || *end || x < min || x > max) {
		*status = jerr(b, ctype, 400, "%s must be an integer from %llu to %llu", key,
			       (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*v = x;
	return 0;
}

/* --- rates --- */

static struct rate_ent *map_slot(const struct rate_map *m, uint64_t key)
{
	if (!m->v)
		return NULL;
	for (size_t i = key & m->mask;; i = (i + 1) & m->mask)
		if (m->v[i].key == key || m->v[i].key == 0)
			return &m->v[i];
}

static const struct rate_ent *map_find(const struct rate_map *m, uint64_t key)
{
	const struct rate_ent *e = map_slot(m, key);
	return e && e->key == key ? e : NULL;
}

static uint64_t topic_key(const struct rmq_topic *t)
{
	return t->hash ? t->hash : 1;
}

struct sweep {
	struct console *con;
	const struct rate_map *old;
	struct rate_map m;
	double dt;
	bool full;
	struct top_ent top[CONSOLE_TOP];
	size_t ntop;
};

static void sweep_topic(struct rmq_topic *t, void *ctx)
{
	struct sweep *sw = ctx;
	if (sw->m.n >= CONSOLE_RATE_MAX || sw->m.n * 2 >= sw->m.mask) {
		sw->full = true;
		return;
	}
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	uint64_t key = topic_key(t);
	struct rate_ent *e = map_slot(&sw->m, key);
	if (e->key == key)
		return; /* two topics with one hash: the first one keeps it */
	const struct rate_ent *o = map_find(sw->old, key);
	e->key = key;
	e->msgs = st.msgs_in;
	e->bytes = st.bytes_in;
	e->rm = e->rb = -1;
	if (o && sw->dt > 0 && st.msgs_in >= o->msgs && st.bytes_in >= o->bytes) {
		e->rm = (float)((double)(st.msgs_in - o->msgs) / sw->dt);
		e->rb = (float)((double)(st.bytes_in - o->bytes) / sw->dt);
	}
	sw->m.n++;
	if (e->rm <= 0)
		return;
	/* the busiest CONSOLE_TOP, highest first */
	size_t i = sw->ntop < CONSOLE_TOP ? sw->ntop++ : CONSOLE_TOP;
	if (i == CONSOLE_TOP) {
		if (e->rm <= sw->top[CONSOLE_TOP - 1].rm)
			return;
		i = CONSOLE_TOP - 1;
	}
	while (i > 0 && sw->top[i - 1].rm < e->rm) {
		sw->top[i] = sw->top[i - 1];
		i--;
	}
	snprintf(sw->top[i].name, sizeof(sw->top[i].name), "%s", t->name);
	sw->top[i].rm = e->rm;
	sw->top[i].rb = e->rb;
}

/* One sweep of the topic table (the sampler thread, registered, offline). */
static void sweep_topics(struct console *con)
{
	struct server *srv = con->srv;
	uint64_t n = rmq_broker_topic_count(srv->broker) + 64;
	if (n > CONSOLE_RATE_MAX)
		n = CONSOLE_RATE_MAX;
	size_t cap = 64;
	while (cap < n * 2 + 2)
		cap *= 2;
	struct sweep sw = { .con = con };
	sw.m.v = calloc(cap, sizeof(*sw.m.v));
	if (!sw.m.v)
		return;
	sw.m.mask = cap - 1;
	uint64_t t0 = rmq_now_ms();
	pthread_mutex_lock(&con->lock);
	/* the old map is only replaced by this thread: read it unlocked */
	sw.old = &con->map;
	sw.dt = con->sweep_at ? (double)(t0 - con->sweep_at) / 1000.0 : 0;
	pthread_mutex_unlock(&con->lock);
	uint64_t cursor = 0;
	urcu_qsbr_thread_online();
	do {
		cursor = rmq_broker_scan(srv->broker, cursor, CONSOLE_SCAN_CHUNK, NULL, 0,
					 sweep_topic, &sw);
		urcu_qsbr_quiescent_state();
	} while (cursor != 0);
	urcu_qsbr_thread_offline();
	uint64_t t1 = rmq_now_ms();
	pthread_mutex_lock(&con->lock);
	struct rate_ent *old = con->map.v;
	con->map = sw.m;
	con->map_full = sw.full;
	con->sweep_at = t0;
	con->sweep_ms = t1 - t0;
	memcpy(con->top, sw.top, sizeof(sw.top));
	con->ntop = sw.ntop;
	pthread_mutex_unlock(&con->lock);
	free(old);
}

static void totals(struct server *s, uint64_t v[4])
{
	v[0] = v[1] = v[2] = v[3] = 0;
	for (uint32_t i = 0; i < s->nworkers; i++) {
		struct worker_stats *st = &s->workers[i].stats;
		v[0] += atomic_load_explicit(&st->published, memory_order_relaxed);
		v[1] += atomic_load_explicit(&st->delivered, memory_order_relaxed) +
			atomic_load_explicit(&st->pulled, memory_order_relaxed);
		v[2] += atomic_load_explicit(&st->bytes_read, memory_order_relaxed);
		v[3] += atomic_load_explicit(&st->bytes_written, memory_order_relaxed);
	}
}

static void thread_hook_qsbr(int start)
{
	if (start) {
		urcu_qsbr_register_thread();
		urcu_qsbr_thread_offline();
	} else {
		urcu_qsbr_unregister_thread();
	}
}

static void *sampler_main(void *arg)
{
	struct console *con = arg;
	thread_hook_qsbr(1);
	uint64_t prev[4], prev_ms = rmq_now_ms();
	totals(con->srv, prev);
	pthread_mutex_lock(&con->lock);
	while (!con->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&con->cond, &con->lock, &ts);
		if (con->stop)
			break;
		uint64_t now = rmq_now_ms(), cur[4];
		totals(con->srv, cur);
		double dt = (double)(now - prev_ms) / 1000.0;
		if (dt <= 0)
			continue;
		struct sample *s = &con->hist[con->hist_pos];
		s->t_ms = (uint64_t)time(NULL) * 1000;
		double *r[4] = { &s->mi, &s->mo, &s->bi, &s->bo };
		for (int k = 0; k < 4; k++)
			*r[k] = cur[k] >= prev[k] ? (double)(cur[k] - prev[k]) / dt : 0;
		con->hist_pos = (con->hist_pos + 1) % CONSOLE_HISTORY;
		if (con->nhist < CONSOLE_HISTORY)
			con->nhist++;
		memcpy(prev, cur, sizeof(prev));
		prev_ms = now;
		uint64_t used = atomic_load_explicit(&con->used_ms, memory_order_relaxed);
		bool due = now - con->sweep_at >= 1000 && now - con->sweep_at >= 10 * con->sweep_ms;
		if (used && now - used < CONSOLE_IDLE_MS && due) {
			pthread_mutex_unlock(&con->lock);
			sweep_topics(con);
			pthread_mutex_lock(&con->lock);
		}
	}
	pthread_mutex_unlock(&con->lock);
	thread_hook_qsbr(0);
	return NULL;
}

struct console *rmq__console_new(struct server *srv)
{
	struct console *con = rmq_calloc(1, sizeof(*con));
	con->srv = srv;
	pthread_mutex_init(&con->lock, NULL);
	pthread_cond_init(&con->cond, NULL);
	con->started = pthread_create(&con->th, NULL, sampler_main, con) == 0;
	if (!con->started)
		rmq_diagf(RMQ_DIAG_WARN, "console: cannot start its sampler thread: no rates");
	return con;
}

void rmq__console_free(struct console *con)
{
	if (!con)
		return;
	pthread_mutex_lock(&con->lock);
	con->stop = true;
	pthread_cond_signal(&con->cond);
	pthread_mutex_unlock(&con->lock);
	if (con->started)
		pthread_join(con->th, NULL);
	pthread_cond_destroy(&con->cond);
	pthread_mutex_destroy(&con->lock);
	free(con->map.v);
	free(con);
}

/* A topic's rates (under con->lock). */
static void rate_of(struct console *con, const struct rmq_topic *t, double *rm, double *rb)
{
	const struct rate_ent *e = map_find(&con->map, topic_key(t));
	*rm = e ? e->rm : -1;
	*rb = e ? e->rb : -1;
}

/* --- the request's user --- */

struct who {
	char user[128];
	char pass[512];
};

/* --- a RESP conversation with the broker itself --- */

struct resp_conn {
	int fd;
	uint64_t deadline;
	char *in;
	size_t len, cap, off;
};

static int resp_open(struct console *con, struct resp_conn *rc)
{
	struct server *srv = con->srv;
	memset(rc, 0, sizeof(*rc));
	rc->fd = -1;
	if (!srv->port)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* a server bound to one IPv4 address is reached there, else on 127.0.0.1 */
	const char *bind = srv->cfg.bind;
	bool any = !bind || strcmp(bind, "0.0.0.0") == 0 || strcmp(bind, "*") == 0 ||
		   strcmp(bind, "::") == 0;
	struct in_addr ip;
	if (!any && inet_pton(AF_INET, bind, &ip) == 1)
		a.sin_addr = ip;
	rc->deadline = rmq_now_ms() + CONSOLE_RESP_TIMEOUT_MS;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	rc->fd = fd;
	return 0;
}

static void resp_close(struct resp_conn *rc)
{
	if (rc->fd >= 0)
		close(rc->fd);
	free(rc->in);
	rc->fd = -1;
	rc->in = NULL;
}

static int resp_wait(struct resp_conn *rc, short ev)
{
	uint64_t now = rmq_now_ms();
	if (now >= rc->deadline)
		return -1;
	struct pollfd p = { .fd = rc->fd, .events = ev };
	int r = poll(&p, 1, (int)(rc->deadline - now));
	return r > 0 ? 0 : -1;
}

/* Sends a command of argc arguments. */
static int resp_send(struct resp_conn *rc, int argc, const char *const *argv)
{
	struct rmq_buf b = { 0 };
	jf(&b, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		jf(&b, "$%zu\r\n", strlen(argv[i]));
		rmq_buf_append(&b, argv[i], strlen(argv[i]));
		rmq_buf_append(&b, "\r\n", 2);
	}
	size_t off = 0;
	int rcode = 0;
	while (off < b.len) {
		ssize_t n = send(rc->fd, b.data + off, b.len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == ENOTCONN)) {
			if (resp_wait(rc, POLLOUT)) {
				rcode = -1;
				break;
			}
		} else {
			rcode = -1;
			break;
		}
	}
	memset(b.data, 0, b.len); /* may hold a password */
	rmq_buf_free(&b);
	return rcode;
}

static int resp_fill(struct resp_conn *rc)
{
	if (rc->len - rc->off > CONSOLE_RESP_MAX)
		return -1;
	if (!rc->in || rc->cap - rc->len < 65536) {
		size_t cap = rc->cap ? rc->cap * 2 : 131072;
		char *p = realloc(rc->in, cap + 1);
		if (!p)
			return -1;
		rc->in = p;
		rc->cap = cap;
	}
	for (;;) {
		ssize_t n = recv(rc->fd, rc->in + rc->len, rc->cap - rc->len, 0);
		if (n > 0) {
			rc->len += (size_t)n;
			rc->in[rc->len] = '\0';
			return 0;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return -1;
		if (resp_wait(rc, POLLIN))
			return -1;
	}
}

/* Reads one reply: *type ('+', '-', ':', '$'), its text (valid until the
 * next read; bulk strings NUL-terminated). Arrays are not expected. */
static int resp_read(struct resp_conn *rc, char *type, const char **s, size_t *n)
{
	for (;;) {
		char *start = rc->in ? rc->in + rc->off : NULL;
		char *eol = start ? memmem(start, rc->len - rc->off, "\r\n", 2) : NULL;
		if (eol) {
			*type = start[0];
			if (*type != '$') {
				*eol = '\0';
				*s = start + 1;
				*n = (size_t)(eol - start - 1);
				rc->off = (size_t)(eol + 2 - rc->in);
				return 0;
			}
			long long bl = strtoll(start + 1, NULL, 10);
			if (bl < 0) {
				*s = "";
				*n = 0;
				*type = '_';
				rc->off = (size_t)(eol + 2 - rc->in);
				return 0;
			}
			size_t need = (size_t)(eol + 2 - rc->in) + (size_t)bl + 2;
			if (rc->len >= need) {
				*s = eol + 2;
				*n = (size_t)bl;
				eol[2 + bl] = '\0';
				rc->off = need;
				return 0;
			}
		}
		if (resp_fill(rc))
			return -1;
	}
}

/* Opens the conversation as the request's user; 0, or an error status
 * written to b. */
static int resp_login(struct console *con, struct resp_conn *rc, const struct who *w,
		      struct rmq_buf *b, const char **ctype)
{
	if (resp_open(con, rc))
		return jerr(b, ctype, 503, "cannot reach the broker's plain port from the console");
	char type;
	const char *s;
	size_t n;
	if (w->pass[0]) {
		const char *auth[] = { "AUTH", w->user, w->pass };
		if (resp_send(rc, 3, auth) || resp_read(rc, &type, &s, &n)) {
			resp_close(rc);
			return jerr(b, ctype, 504, "the broker did not answer AUTH in time");
		}
		if (type != '+') {
			resp_close(rc);
			return jerr(b, ctype, 401, "AUTH refused: %.200s", s);
		}
	}
	const char *name[] = { "CLIENT", "SETNAME", "ringmq-console" };
	if (resp_send(rc, 3, name) || resp_read(rc, &type, &s, &n)) {
		resp_close(rc);
		return jerr(b, ctype, 504, "the broker did not answer in time");
	}
	if (type == '-' && strstr(s, "NOAUTH")) {
		resp_close(rc);
		return jerr(b, ctype, 401, "authentication required");
	}
	return 0;
}

/* --- endpoints --- */

static uint64_t info_num(const struct rmq_buf *b, const char *key, bool *found)
{
	char k[64];
	snprintf(k, sizeof(k), "\n%s:", key);
	const char *p = b->data ? memmem(b->data, b->len, k, strlen(k)) : NULL;
	if (found)
		*found = p != NULL;
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

static void info_str(const struct rmq_buf *b, const char *key, char *out, size_t cap)
{
	char k[64];
	snprintf(k, sizeof(k), "\n%s:", key);
	const char *p = b->data ? memmem(b->data, b->len, k, strlen(k)) : NULL;
	out[0] = '\0';
	if (!p)
		return;
	p += strlen(k);
	size_t n = strcspn(p, "\r\n");
	snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

static int api_overview(struct console *con, struct rmq_buf *b)
{
	struct server *s = con->srv;
	uint64_t clients = 0;
	for (uint32_t i = 0; i < s->nworkers; i++)
		clients += atomic_load_explicit(&s->workers[i].stats.conns, memory_order_relaxed);
	struct rmq_broker_totals bt;
	rmq_broker_totals(s->broker, &bt);
	jf(b, "{\"version\":");
	jcstr(b, RMQ_VERSION);
	jf(b,
	   ",\"uptime_s\":%llu,\"threads\":%u,\"clients\":%llu,\"topics\":%llu,"
	   "\"durable_subscribers\":%llu,\"retained_messages\":%llu,",
	   (unsigned long long)((rmq_now_ms() - s->started_ms) / 1000), s->nworkers,
	   (unsigned long long)clients, (unsigned long long)bt.topics,
	   (unsigned long long)rmq_dsub_registry_count(s->dsubs),
	   (unsigned long long)bt.messages_retained);
	jf(b, "\"memory\":{\"used\":%llu,\"retained_bytes\":%llu,\"maxmemory\":%llu},",
	   (unsigned long long)rmq__ops_used_memory(s), (unsigned long long)bt.bytes_retained,
	   (unsigned long long)atomic_load(&s->maxmemory));
	struct rmq_buf pi = { 0 };
	urcu_qsbr_thread_online();
	rmq__persist_info(s, &pi);
	urcu_qsbr_thread_offline();
	char fsync[64];
	info_str(&pi, "fsync", fsync, sizeof(fsync));
	bool has_lat = false, has_unsynced = false;
	uint64_t lat = info_num(&pi, "last_fsync_latency_us", &has_lat);
	uint64_t unsynced = info_num(&pi, "unsynced_bytes", &has_unsynced);
	jf(b, "\"persistence\":{\"enabled\":%s,\"fsync\":", s->cfg.dir ? "true" : "false");
	if (fsync[0])
		jcstr(b, fsync);
	else
		jf(b, "null");
	jf(b, ",\"disk_topics\":%llu,\"unsynced_bytes\":",
	   (unsigned long long)info_num(&pi, "disk_topics", NULL));
	if (has_unsynced)
		jf(b, "%llu", (unsigned long long)unsynced);
	else
		jf(b, "null");
	jf(b, ",\"last_fsync_latency_us\":");
	if (has_lat)
		jf(b, "%llu", (unsigned long long)lat);
	else
		jf(b, "null");
	jf(b, ",\"disk_errors\":%llu},", (unsigned long long)info_num(&pi, "disk_errors", NULL));
	rmq_buf_free(&pi);

	pthread_mutex_lock(&con->lock);
	const struct sample *last =
		con->nhist ? &con->hist[(con->hist_pos + CONSOLE_HISTORY - 1) % CONSOLE_HISTORY]
			   : NULL;
	jf(b,
	   "\"rates\":{\"msgs_in\":%.2f,\"msgs_out\":%.2f,\"bytes_in\":%.2f,\"bytes_out\":%.2f},",
	   last ? last->mi : 0, last ? last->mo : 0, last ? last->bi : 0, last ? last->bo : 0);
	jf(b, "\"history\":[");
	for (size_t i = 0; i < con->nhist; i++) {
		const struct sample *h =
			&con->hist[(con->hist_pos + CONSOLE_HISTORY - con->nhist + i) %
				   CONSOLE_HISTORY];
		jf(b, "%s[%llu,%.2f,%.2f,%.2f,%.2f]", i ? "," : "", (unsigned long long)h->t_ms,
		   h->mi, h->mo, h->bi, h->bo);
	}
	jf(b, "],\"top_topics\":[");
	for (size_t i = 0; i < con->ntop; i++) {
		jf(b, "%s{\"name\":", i ? "," : "");
		jcstr(b, con->top[i].name);
		jf(b, ",\"rate\":%.2f,\"bytes_rate\":%.2f}", con->top[i].rm, con->top[i].rb);
	}
	jf(b, "],\"rates_sampled_ms_ago\":");
	if (con->sweep_at)
		jf(b, "%llu", (unsigned long long)(rmq_now_ms() - con->sweep_at));
	else
		jf(b, "null");
	jf(b, ",\"rate_sweep_ms\":%llu,\"rates_cover_all_topics\":%s}\n",
	   (unsigned long long)con->sweep_ms, con->map_full ? "false" : "true");
	pthread_mutex_unlock(&con->lock);
	return 200;
}

enum sort_key { SORT_NAME, SORT_RATE, SORT_RETAINED, SORT_DEPTH, SORT_SUBS, SORT_DROPPED };
static const char *const sort_names[] = { "name", "rate", "retained", "depth", "subs", "dropped" };

struct row {
	char *name; /* owned once kept; during the walk, the topic's */
	/* the durable subscriber furthest behind (NULL: none) and its lag;
	 * owned as name is */
	char *slowest;
	uint64_t slowest_lag;
	struct rmq_topic_stats st;
	double rm, rb;
	bool disk;
};

struct page {
	struct console *con;
	enum sort_key key;
	bool desc;
	const char *filter;
	size_t flen;
	struct row *heap; /* the best `window` rows so far; root: the worst of them */
	size_t n, window;
	uint64_t matched;
	bool oom;
};

static double row_num(const struct row *r, enum sort_key k)
{
	switch (k) {
	case SORT_RATE: return r->rm;
	case SORT_RETAINED: return (double)r->st.retained;
	case SORT_DEPTH: return (double)r->st.depth;
	case SORT_SUBS: return (double)(r->st.live_subs + r->st.durable_subs);
	case SORT_DROPPED: return (double)(r->st.dropped + r->st.evicted);
	default: return 0;
	}
}

/* <0: a comes before b in the page's order. */
static int row_cmp(const struct page *pg, const struct row *a, const struct row *b)
{
	int c = 0;
	if (pg->key != SORT_NAME) {
		double x = row_num(a, pg->key), y = row_num(b, pg->key);
		c = (x > y) - (x < y);
	}
	if (!c)
		c = strcmp(a->name, b->name);
	else if (pg->desc)
		c = -c;
	return pg->key == SORT_NAME && pg->desc ? -c : c;
}

static void heap_down(struct page *pg, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < pg->n && row_cmp(pg, &pg->heap[l], &pg->heap[m]) > 0)
			m = l;
		if (r < pg->n && row_cmp(pg, &pg->heap[r], &pg->heap[m]) > 0)
			m = r;
		if (m == i)
			return;
		struct row t = pg->heap[i];
		pg->heap[i] = pg->heap[m];
		pg->heap[m] = t;
		i = m;
	}
}

static void heap_up(struct page *pg, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (row_cmp(pg, &pg->heap[i], &pg->heap[p]) <= 0)
			return;
		struct row t = pg->heap[i];
		pg->heap[i] = pg->heap[p];
		pg->heap[p] = t;
		i = p;
	}
}

static void page_topic(struct rmq_topic *t, void *ctx)
{
	struct page *pg = ctx;
	if (pg->flen && !memmem(t->name, t->name_len, pg->filter, pg->flen))
		return;
	pg->matched++;
	struct row r = { .name = t->name, .disk = t->log.disk != NULL };
	rmq_topic_stats(t, &r.st);
	rate_of(pg->con, t, &r.rm, &r.rb);
	if (pg->n == pg->window && row_cmp(pg, &r, &pg->heap[0]) >= 0)
		return;
	char *name = strdup(t->name);
	const char *slow = rmq_topic_slowest_durable(t, &r.slowest_lag);
	char *slowest = slow ? strdup(slow) : NULL;
	if (!name || (slow && !slowest)) {
		free(name);
		free(slowest);
		pg->oom = true;
		return;
	}
	r.name = name;
	r.slowest = slowest;
	if (pg->n < pg->window) {
		pg->heap[pg->n++] = r;
		heap_up(pg, pg->n - 1);
	} else {
		free(pg->heap[0].name);
		free(pg->heap[0].slowest);
		pg->heap[0] = r;
		heap_down(pg, 0);
	}
}

static struct page *cmp_page; /* qsort's context: the HTTP thread only */
static int row_qcmp(const void *a, const void *b)
{
	return row_cmp(cmp_page, a, b);
}

static void row_json(struct rmq_buf *b, const struct row *r)
{
	jf(b, "{\"name\":");
	jcstr(b, r->name);
	jf(b,
	   ",\"storage\":\"%s\",\"capacity\":%llu,\"retained_bytes\":%llu,\"depth\":%llu,"
	   "\"first_seq\":%llu,\"last_seq\":%llu,\"published\":%llu,\"rate\":",
	   r->disk ? "disk" : "memory", (unsigned long long)r->st.capacity,
	   (unsigned long long)r->st.retained, (unsigned long long)r->st.depth,
	   (unsigned long long)r->st.first_seq,
	   (unsigned long long)(r->st.next_seq ? r->st.next_seq - 1 : 0),
	   (unsigned long long)r->st.msgs_in);
	jrate(b, r->rm);
	jf(b, ",\"bytes_rate\":");
	jrate(b, r->rb);
	jf(b,
	   ",\"live_subscribers\":%llu,\"durable_subscribers\":%llu,\"dropped\":%llu,"
	   "\"evicted\":%llu,\"rejected\":%llu,\"slow_disconnects\":%llu,\"onfull\":\"%s\"",
	   (unsigned long long)r->st.live_subs, (unsigned long long)r->st.durable_subs,
	   (unsigned long long)r->st.dropped, (unsigned long long)r->st.evicted,
	   (unsigned long long)r->st.rejected, (unsigned long long)r->st.slow_disconnects,
	   r->st.onfull == RMQ_ONFULL_DROP_OLDEST ? "drop-oldest" : "reject");
	jf(b, ",\"slowest_durable\":");
	if (r->slowest)
		jcstr(b, r->slowest);
	else
		jf(b, "null");
	jf(b, ",\"slowest_lag\":%llu}", (unsigned long long)r->slowest_lag);
}

static int api_topics(struct console *con, const char *q, struct rmq_buf *b, const char **ctype)
{
	int status = 0;
	uint64_t offset, limit;
	if (qnum(q, "offset", 0, 0, CONSOLE_WINDOW_MAX, &offset, b, ctype, &status) ||
	    qnum(q, "limit", 50, 1, CONSOLE_LIMIT_MAX, &limit, b, ctype, &status))
		return status;
	if (offset + limit > CONSOLE_WINDOW_MAX)
		return jerr(b, ctype, 400,
			    "offset + limit over %d: narrow the list with filter, or reverse "
			    "the order",
			    CONSOLE_WINDOW_MAX);
	char sort[16] = "name", order[8] = "", filter[RMQ_TOPIC_NAME_MAX + 1] = "";
	if (qget(q, "sort", sort, sizeof(sort)) == -2 ||
	    qget(q, "order", order, sizeof(order)) == -2)
		return jerr(b, ctype, 400, "bad sort or order");
	ssize_t fl = qget(q, "filter", filter, sizeof(filter));
	if (fl == -2)
		return jerr(b, ctype, 400, "filter: malformed or over %d bytes",
			    RMQ_TOPIC_NAME_MAX);
	struct page pg = { .con = con, .filter = filter, .flen = fl > 0 ? (size_t)fl : 0 };
	size_t k = 0;
	while (k < sizeof(sort_names) / sizeof(sort_names[0]) && strcmp(sort, sort_names[k]) != 0)
		k++;
	if (k == sizeof(sort_names) / sizeof(sort_names[0]))
		return jerr(b, ctype, 400,
			    "sort must be one of name, rate, retained, depth, subs, dropped");
	pg.key = (enum sort_key)k;
	if (!order[0])
		pg.desc = pg.key != SORT_NAME;
	else if (!strcmp(order, "asc") || !strcmp(order, "desc"))
		pg.desc = !strcmp(order, "desc");
	else
		return jerr(b, ctype, 400, "order must be asc or desc");
	pg.window = (size_t)(offset + limit);
	pg.heap = calloc(pg.window, sizeof(*pg.heap));
	if (!pg.heap)
		return jerr(b, ctype, 503, "out of memory");
	uint64_t t0 = rmq__ops_now_ns();
	struct rmq_broker *br = con->srv->broker;
	uint64_t cursor = 0;
	pthread_mutex_lock(&con->lock); /* the rates; the sampler waits offline */
	urcu_qsbr_thread_online();
	do {
		cursor = rmq_broker_scan(br, cursor, CONSOLE_SCAN_CHUNK, NULL, 0, page_topic, &pg);
		urcu_qsbr_quiescent_state();
	} while (cursor != 0 && !pg.oom);
	urcu_qsbr_thread_offline();
	pthread_mutex_unlock(&con->lock);
	cmp_page = &pg;
	qsort(pg.heap, pg.n, sizeof(*pg.heap), row_qcmp);
	double ms = (double)(rmq__ops_now_ns() - t0) / 1e6;
	int st = 200;
	if (pg.oom) {
		st = jerr(b, ctype, 503, "out of memory");
	} else {
		jf(b,
		   "{\"total\":%llu,\"topics\":%llu,\"offset\":%llu,\"limit\":%llu,\"sort\":\"%s\","
		   "\"order\":\"%s\",\"filter\":",
		   (unsigned long long)pg.matched, (unsigned long long)rmq_broker_topic_count(br),
		   (unsigned long long)offset, (unsigned long long)limit, sort_names[pg.key],
		   pg.desc ? "desc" : "asc");
		jcstr(b, filter);
		jf(b, ",\"elapsed_ms\":%.3f,\"items\":[", ms);
		for (size_t i = (size_t)offset; i < pg.n; i++) {
			if (i > offset)
				rmq_buf_append(b, ",", 1);
			row_json(b, &pg.heap[i]);
		}
		jf(b, "]}\n");
	}
	for (size_t i = 0; i < pg.n; i++) {
		free(pg.heap[i].name);
		free(pg.heap[i].slowest);
	}
	free(pg.heap);
	return st;
}

/* --- durable subscribers --- */

struct dsub_walk {
	struct rmq_buf *b;
	const struct rmq_topic *topic; /* only this topic's; NULL: all */
	const char *filter;
	size_t flen;
	uint64_t offset, limit, matched, listed;
};

static void dsub_row(const struct rmq_dsub_info *d, struct rmq_dsub_subscription *s, uint64_t lag,
		     void *ctx)
{
	struct dsub_walk *w = ctx;
	if (w->topic && s->topic != w->topic)
		return;
	if (w->flen && !strstr(d->name, w->filter) &&
	    !memmem(s->topic->name, s->topic->name_len, w->filter, w->flen))
		return;
	if (w->matched++ < w->offset || w->listed >= w->limit)
		return;
	uint64_t delivered, acked;
	rmq_dsub_positions(s, &delivered, &acked);
	jf(w->b, "%s{\"name\":", w->listed++ ? "," : "");
	jcstr(w->b, d->name);
	jf(w->b, ",\"topic\":");
	jcstr(w->b, s->topic->name);
	jf(w->b,
	   ",\"lag\":%llu,\"delivered\":%llu,\"acked\":%llu,\"attached\":%s,\"idle_ms\":%llu,"
	   "\"ack_mode\":%s,\"lost\":%llu}",
	   (unsigned long long)lag, (unsigned long long)delivered, (unsigned long long)acked,
	   d->attached ? "true" : "false", (unsigned long long)d->idle_ms,
	   d->ack ? "true" : "false", (unsigned long long)s->lost);
}

static int api_subscribers(struct console *con, const char *q, struct rmq_buf *b,
			   const char **ctype)
{
	int status = 0;
	uint64_t offset, limit;
	if (qnum(q, "offset", 0, 0, UINT32_MAX, &offset, b, ctype, &status) ||
	    qnum(q, "limit", 50, 1, CONSOLE_LIMIT_MAX, &limit, b, ctype, &status))
		return status;
	char filter[RMQ_TOPIC_NAME_MAX + 1] = "";
	ssize_t fl = qget(q, "filter", filter, sizeof(filter));
	if (fl == -2)
		return jerr(b, ctype, 400, "filter: malformed or over %d bytes",
			    RMQ_TOPIC_NAME_MAX);
	struct dsub_walk w = { .b = b,
			       .filter = filter,
			       .flen = fl > 0 ? (size_t)fl : 0,
			       .offset = offset,
			       .limit = limit };
	jf(b, "{\"offset\":%llu,\"limit\":%llu,\"items\":[", (unsigned long long)offset,
	   (unsigned long long)limit);
	urcu_qsbr_thread_online();
	rmq_dsub_registry_foreach(con->srv->dsubs, rmq_now_ms(), UINT64_MAX, dsub_row, &w);
	urcu_qsbr_thread_offline();
	jf(b, "],\"total\":%llu,\"subscribers\":%llu}\n", (unsigned long long)w.matched,
	   (unsigned long long)rmq_dsub_registry_count(con->srv->dsubs));
	return 200;
}

/* --- one topic --- */

static void payload_json(struct rmq_buf *b, const char *p, uint32_t len)
{
	bool text = true;
	for (uint32_t i = 0; i < len && text; i++) {
		unsigned char ch = (unsigned char)p[i];
		text = ch >= 0x20 || ch == '\n' || ch == '\r' || ch == '\t';
	}
	/* text that is not UTF-8 shows as hex too */
	for (uint32_t i = 0; i < len && text;) {
		unsigned char ch = (unsigned char)p[i];
		size_t l = ch < 0x80                 ? 1
			   : ch >= 0xf0 && ch < 0xf5 ? 4
			   : ch >= 0xe0              ? 3
			   : ch >= 0xc2              ? 2
						     : 0;
		if (!l || i + l > len) {
			/* a character cut by the truncation is fine */
			text = l && i + l > len && i >= CONSOLE_PAYLOAD_TEXT;
			break;
		}
		for (size_t k = 1; k < l && text; k++)
			text = ((unsigned char)p[i + k] & 0xc0) == 0x80;
		i += (uint32_t)l;
	}
	if (text) {
		uint32_t n = len < CONSOLE_PAYLOAD_TEXT ? len : CONSOLE_PAYLOAD_TEXT;
		while (n < len && n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
			n--; /* do not cut a character */
		jf(b, "\"encoding\":\"text\",\"data\":");
		jstr(b, p, n);
		jf(b, ",\"truncated\":%s", n < len ? "true" : "false");
	} else {
		uint32_t n = len < CONSOLE_PAYLOAD_HEX ? len : CONSOLE_PAYLOAD_HEX;
		jf(b, "\"encoding\":\"hex\",\"data\":\"");
		for (uint32_t i = 0; i < n; i++)
			jf(b, "%02x", (unsigned char)p[i]);
		jf(b, "\",\"truncated\":%s", n < len ? "true" : "false");
	}
}

static int api_topic(struct console *con, const struct who *w, const char *q, struct rmq_buf *b,
		     const char **ctype)
{
	char name[RMQ_TOPIC_NAME_MAX + 1];
	ssize_t nl = qget(q, "name", name, sizeof(name));
	if (nl < 0 || !rmq_topic_name_valid(name, (size_t)nl))
		return jerr(b, ctype, 400, "name: a topic name is required");
	int status = 0;
	uint64_t nmsg;
	if (qnum(q, "messages", 10, 0, CONSOLE_MSGS_MAX, &nmsg, b, ctype, &status))
		return status;
	bool may_read = rmq__acl_user_may(con->srv, w->user, "SUBSCRIBE", name, (size_t)nl);
	urcu_qsbr_thread_online();
	struct rmq_topic *t = rmq_topic_lookup(con->srv->broker, name, (size_t)nl);
	if (!t) {
		urcu_qsbr_thread_offline();
		return jerr(b, ctype, 404, "no such topic: %s", name);
	}
	struct row r = { .name = t->name, .disk = t->log.disk != NULL };
	rmq_topic_stats(t, &r.st);
	/* not owned here: the topic's and its subscriber's, while online */
	r.slowest = (char *)rmq_topic_slowest_durable(t, &r.slowest_lag);
	pthread_mutex_lock(&con->lock);
	rate_of(con, t, &r.rm, &r.rb);
	pthread_mutex_unlock(&con->lock);
	jf(b, "{\"topic\":");
	row_json(b, &r);
	jf(b, ",\"may_read\":%s,\"messages\":", may_read ? "true" : "false");
	if (!may_read || !nmsg) {
		jf(b, "null");
	} else {
		jf(b, "[");
		uint64_t next = rmq_log_next_seq(&t->log), first = rmq_log_first_seq(&t->log);
		uint64_t from = next > first + nmsg ? next - nmsg : first;
		struct rmq_cursor cur = { 0 };
		rmq_log_cursor_seek(&t->log, &cur, from);
		uint64_t shown = 0;
		while (shown < nmsg) {
			struct rmq_batch bt;
			uint32_t n = rmq_log_peek(&t->log, &cur, &bt, (uint32_t)(nmsg - shown),
						  1u << 20);
			if (!n)
				break;
			for (uint32_t i = 0; i < n; i++) {
				const char *p;
				uint32_t len;
				rmq_batch_payload(&bt, i, &p, &len);
				jf(b, "%s{\"seq\":%llu,\"size\":%u,", shown++ ? "," : "",
				   (unsigned long long)bt.seq + i, len);
				payload_json(b, p, len);
				rmq_buf_append(b, "}", 1);
			}
			rmq_log_consume(&cur, &bt, n);
		}
		jf(b, "]");
	}
	/* its durable subscribers, the first 100 */
	jf(b, ",\"durable\":[");
	struct dsub_walk dw = { .b = b, .topic = t, .limit = 100 };
	rmq_dsub_registry_foreach(con->srv->dsubs, rmq_now_ms(), UINT64_MAX, dsub_row, &dw);
	urcu_qsbr_thread_offline();
	jf(b, "],\"durable_total\":%llu}\n", (unsigned long long)dw.matched);
	return 200;
}

/* --- clients (through the broker's own CLIENT LIST) --- */

static int api_clients(struct console *con, const struct who *w, const char *q, struct rmq_buf *b,
		       const char **ctype)
{
	int status = 0;
	uint64_t offset, limit;
	if (qnum(q, "offset", 0, 0, UINT32_MAX, &offset, b, ctype, &status) ||
	    qnum(q, "limit", 50, 1, CONSOLE_LIMIT_MAX, &limit, b, ctype, &status))
		return status;
	char filter[256] = "";
	if (qget(q, "filter", filter, sizeof(filter)) == -2)
		return jerr(b, ctype, 400, "filter: malformed or over 255 bytes");
	struct resp_conn rc;
	if ((status = resp_login(con, &rc, w, b, ctype)))
		return status;
	const char *cmd[] = { "CLIENT", "LIST" };
	char type;
	const char *s;
	size_t n;
	if (resp_send(&rc, 2, cmd) || resp_read(&rc, &type, &s, &n)) {
		resp_close(&rc);
		return jerr(b, ctype, 504, "the broker did not answer CLIENT LIST in time");
	}
	if (type != '$') {
		status = jerr(b, ctype, type == '-' && strstr(s, "NOPERM") ? 403 : 502,
			      "CLIENT LIST: %.200s", s);
		resp_close(&rc);
		return status;
	}
	jf(b, "{\"offset\":%llu,\"limit\":%llu,\"items\":[", (unsigned long long)offset,
	   (unsigned long long)limit);
	uint64_t matched = 0, listed = 0;
	for (const char *line = s; *line;) {
		const char *e = strchr(line, '\n');
		size_t len = e ? (size_t)(e - line) : strlen(line);
		if (len && line[len - 1] == '\r')
			len--;
		bool self = memmem(line, len, " name=ringmq-console ", 21) != NULL;
		bool hit =
			!self && len && (!filter[0] || memmem(line, len, filter, strlen(filter)));
		if (hit && matched++ >= offset && listed < limit) {
			jf(b, "%s{", listed++ ? "," : "");
			/* key=value pairs; values have no spaces */
			bool first = true;
			for (const char *p = line; p < line + len;) {
				const char *sp = memchr(p, ' ', (size_t)(line + len - p));
				const char *end = sp ? sp : line + len;
				const char *eq = memchr(p, '=', (size_t)(end - p));
				if (eq) {
					if (!first)
						rmq_buf_append(b, ",", 1);
					first = false;
					jstr(b, p, (size_t)(eq - p));
					rmq_buf_append(b, ":", 1);
					jstr(b, eq + 1, (size_t)(end - eq - 1));
				}
				p = end + 1;
			}
			rmq_buf_append(b, "}", 1);
		}
		line = e ? e + 1 : line + len;
		if (!e)
			break;
	}
	jf(b, "],\"total\":%llu}\n", (unsigned long long)matched);
	resp_close(&rc);
	return 200;
}

/* --- admin actions --- */

/* The admin actions: POST /api/v1/<path>?<param>=<arg>, confirmed by
 * X-Ringmq-Confirm: <arg>, run as the broker command `cmd ... arg`. */
enum admin_kind { ADMIN_DELETE, ADMIN_KILL, ADMIN_DROP };
static const struct admin_action {
	const char *path, *param, *cmd, *missing, *denied, *done;
} admin_actions[] = {
	[ADMIN_DELETE] = { "topics/delete", "name", "DELETE", "name: a topic name is required",
			   "delete this topic", "deleted" },
	[ADMIN_KILL] = { "clients/kill", "id", "CLIENT", "id: a client id is required",
			 "kill clients", "killed" },
	[ADMIN_DROP] = { "subscribers/drop", "name", "UNREGISTER",
			 "name: a durable subscriber name is required", "drop durable subscribers",
			 "dropped" },
};

static int admin_kind(const char *path)
{
	for (size_t i = 0; i < sizeof(admin_actions) / sizeof(admin_actions[0]); i++)
		if (!strcmp(path, admin_actions[i].path))
			return (int)i;
	return -1;
}

static int api_admin(struct console *con, const struct who *w, int kind,
		     const struct rmq_http_request *req, struct rmq_buf *b, const char **ctype)
{
	const struct admin_action *a = &admin_actions[kind];
	char arg[RMQ_TOPIC_NAME_MAX + 1];
	ssize_t al = qget(req->query, a->param, arg, sizeof(arg));
	if (al <= 0)
		return jerr(b, ctype, 400, "%s", a->missing);
	if (kind == ADMIN_KILL && strspn(arg, "0123456789") != (size_t)al)
		return jerr(b, ctype, 400, "id must be a client id (a number)");
	if (kind != ADMIN_KILL && !rmq_topic_name_valid(arg, (size_t)al))
		return jerr(b, ctype, 400, "%s: not a valid name", a->param);
	if (!req->confirm || strcmp(req->confirm, arg) != 0)
		return jerr(b, ctype, 409,
			    "not confirmed: send the header X-Ringmq-Confirm: %s to go ahead", arg);
	/* the broker decides (a subscriber's owner: its ACL); this spares it
	 * a login for users without the command at all */
	if (!rmq__acl_user_may(con->srv, w->user, a->cmd, kind == ADMIN_DELETE ? arg : NULL,
			       (size_t)al))
		return jerr(b, ctype, 403, "user '%s' may not %s", w->user[0] ? w->user : "(none)",
			    a->denied);
	struct resp_conn rc;
	int status = resp_login(con, &rc, w, b, ctype);
	if (status)
		return status;
	const char *argv[] = { a->cmd, "KILL", "ID", arg };
	int argc = 4;
	if (kind != ADMIN_KILL) {
		argv[1] = arg;
		argc = 2;
	}
	char type;
	const char *s;
	size_t n;
	if (resp_send(&rc, argc, argv) || resp_read(&rc, &type, &s, &n)) {
		resp_close(&rc);
		return jerr(b, ctype, 504, "the broker did not answer in time");
	}
	if (type == '-') {
		status = jerr(b, ctype,
			      strstr(s, "NOPERM") ? 403
			      : strstr(s, "NOTOPIC") || strstr(s, "No such") ||
					      strstr(s, "no durable subscriber")
				      ? 404
				      : 400,
			      "%.300s", s);
	} else if (kind == ADMIN_KILL && type == ':' && strtoll(s, NULL, 10) == 0) {
		status = jerr(b, ctype, 404, "no client with id %s", arg);
	} else {
		jf(b, "{\"ok\":true,\"%s\":", a->done);
		jcstr(b, arg);
		jf(b, "}\n");
		status = 200;
	}
	resp_close(&rc);
	return status;
}

static void api_whoami(struct console *con, const struct who *w, struct rmq_buf *b)
{
	struct server *s = con->srv;
	jf(b, "{\"user\":");
	if (w->user[0])
		jcstr(b, w->user);
	else
		jf(b, "null");
	bool del = w->user[0] && rmq__acl_user_may(s, w->user, "DELETE", NULL, 0);
	bool kill = w->user[0] && rmq__acl_user_may(s, w->user, "CLIENT", NULL, 0);
	bool drop = w->user[0] && rmq__acl_user_may(s, w->user, "UNREGISTER", NULL, 0);
	jf(b, ",\"can\":{\"delete_topic\":%s,\"kill_client\":%s,\"drop_subscriber\":%s}}\n",
	   del ? "true" : "false", kill ? "true" : "false", drop ? "true" : "false");
}

int rmq__console_handle(struct console *con, const struct rmq_http_request *req,
			struct rmq_buf *body, const char **ctype)
{
	const char *path = req->path;
	bool page = !strcmp(path, "/") || !strcmp(path, "/index.html");
	bool api = !strncmp(path, "/api/v1/", 8);
	if (!con || (!page && !api))
		return 0;
	if (rmq__acl_http_protected(con->srv, req->peer_loopback))
		return jerr(body, ctype, 403, "%s", rmq_acl_http_denied_msg);
	struct who w;
	int deny = rmq__acl_http_user(con->srv, req->peer_loopback, req->authorization, req->peer,
				      w.user, sizeof(w.user), w.pass, sizeof(w.pass));
	if (deny) {
		memset(&w, 0, sizeof(w));
		return jerr(body, ctype, deny,
			    deny == 401 ? "authentication required (HTTP Basic: a broker user)"
					: "forbidden: the user may not run INFO");
	}
	bool post = !strcmp(req->method, "POST");
	int st;
	if (page) {
		if (post) {
			st = jerr(body, ctype, 405, "the page is read with GET");
		} else {
			*ctype = "text/html; charset=utf-8";
			rmq_buf_append(body, rmq_console_index_html, rmq_console_index_html_len);
			st = 200;
		}
		memset(&w, 0, sizeof(w));
		return st;
	}
	atomic_store_explicit(&con->used_ms, rmq_now_ms(), memory_order_relaxed);
	const char *ep = path + 8;
	*ctype = "application/json";
	int kind = admin_kind(ep);
	bool admin = kind >= 0;
	if (admin != post &&
	    (admin || !strcmp(ep, "overview") || !strcmp(ep, "topics") || !strcmp(ep, "topic") ||
	     !strcmp(ep, "subscribers") || !strcmp(ep, "clients") || !strcmp(ep, "whoami")))
		st = jerr(body, ctype, 405, admin ? "use POST" : "use GET");
	else if (admin)
		st = api_admin(con, &w, kind, req, body, ctype);
	else if (!strcmp(ep, "overview"))
		st = api_overview(con, body);
	else if (!strcmp(ep, "topics"))
		st = api_topics(con, req->query, body, ctype);
	else if (!strcmp(ep, "topic"))
		st = api_topic(con, &w, req->query, body, ctype);
	else if (!strcmp(ep, "subscribers"))
		st = api_subscribers(con, req->query, body, ctype);
	else if (!strcmp(ep, "clients"))
		st = api_clients(con, &w, req->query, body, ctype);
	else if (!strcmp(ep, "whoami")) {
		api_whoami(con, &w, body);
		st = 200;
	} else
		st = jerr(body, ctype, 404, "no such endpoint: %s", path);
	memset(&w, 0, sizeof(w));
	return st;
}
