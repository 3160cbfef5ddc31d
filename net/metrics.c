/* metrics.c - the Prometheus endpoint (--metrics-port): text exposition
 * format 0.0.4 at /metrics, and /healthz (200 "ok", 503 while the data
 * directory loads), served by http.c's thread, which also serves the
 * console (console.c: / and /api/v1/, asked first).
 *
 * A scrape reads the counters the way INFO does (relaxed loads of each
 * worker's single-writer counters, the broker's totals), on the HTTP
 * thread: the workers never wait for it. The thread is a registered
 * urcu-qsbr reader, online only while a scrape walks the topics; the walk
 * goes in chunks (rmq_broker_scan) with a quiescent state between them,
 * so a scrape of many topics does not hold up grace periods.
 *
 * Per-topic series: the first --metrics-max-topics topics in the table's
 * scan order (stable while the set of topics is) get their own label
 * value, the others are summed under topic="_other".
 *
 * Access: /metrics names topics and durable subscribers. Clients on this
 * host may always read it; while the default user is open (no password,
 * no ACL file) so may anyone who reaches --metrics-bind, unless protected
 * mode refuses them (rmq__acl_http_protected: a non-loopback
 * --metrics-bind with protected mode on, as on the protocol port); else a
 * client from another host must send HTTP Basic credentials of a user that
 * may run INFO (acl.c, rmq__acl_http_check). /healthz says only ok or
 * loading, and is open to all.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

#include "http.h"

struct metrics {
	struct rmq_http *http;
	struct server *srv;
	struct console *console;
	int port;
};

static void mf(struct rmq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mf(struct rmq_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *w = rmq_buf_reserve(b, 512);
	int n = vsnprintf(w, 512, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= 512) {
		w = rmq_buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(w, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* HELP and TYPE lines of a family. */
static void fam(struct rmq_buf *b, const char *name, const char *type, const char *help)
{
	mf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct rmq_buf *b, const char *name, const char *type, const char *help, double v)
{
	fam(b, name, type, help);
	mf(b, "%s %.17g\n", name, v);
}

/* A label value, escaped as the format wants (\\, \", \n). */
static void label(struct rmq_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			mf(b, "\\%c", *s);
		else if (*s == '\n')
			mf(b, "\\n");
		else
			rmq_buf_append(b, s, 1);
	}
}

/* --- per-topic figures --- */

struct tstat {
	char *name; /* NULL: the "_other" row */
	struct rmq_topic_stats st;
};

struct topic_walk {
	struct tstat *rows;
	size_t n, max;
	struct tstat other;
	bool has_other;
};

static void add_stats(struct rmq_topic_stats *a, const struct rmq_topic_stats *s)
{
	a->msgs_in += s->msgs_in;
	a->bytes_in += s->bytes_in;
	a->depth += s->depth;
	a->retained += s->retained;
	a->dropped += s->dropped;
	a->evicted += s->evicted;
	a->rejected += s->rejected;
	a->live_subs += s->live_subs;
	a->durable_subs += s->durable_subs;
	a->slow_disconnects += s->slow_disconnects;
}

static void walk_topic(struct rmq_topic *t, void *ctx)
{
	struct topic_walk *tw = ctx;
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	if (tw->n < tw->max) {
		char *name = strdup(t->name);
		if (name) {
			tw->rows[tw->n].name = name;
			tw->rows[tw->n].st = st;
			tw->n++;
			return;
		}
	}
	tw->has_other = true;
	add_stats(&tw->other.st, &st);
}

#define TOPIC_FAMILIES 8

static uint64_t topic_value(const struct rmq_topic_stats *s, int f)
{
	switch (f) {
	case 0: return s->msgs_in;
	case 1: return s->bytes_in;
	case 2: return s->depth;
	case 3: return s->retained;
	case 4: return s->dropped + s->evicted;
	case 5: return s->rejected;
	case 6: return s->slow_disconnects;
	default: return s->live_subs + s->durable_subs;
	}
}

static void topic_families(struct rmq_buf *b, const struct topic_walk *tw)
{
	static const char *const fams[TOPIC_FAMILIES][3] = {
		{ "ringmq_topic_published_messages_total", "counter",
		  "Messages published to the topic." },
		{ "ringmq_topic_published_bytes_total", "counter",
		  "Payload bytes published to the topic." },
		{ "ringmq_topic_retained_messages", "gauge", "Messages the topic retains." },
		{ "ringmq_topic_retained_bytes", "gauge",
		  "Bytes the topic's log retains (segments)." },
		{ "ringmq_topic_dropped_messages_total", "counter",
		  "Messages dropped by the topic to make room (ONFULL drop-oldest, age)." },
		{ "ringmq_topic_rejected_messages_total", "counter",
		  "Publishes refused with FULL by the topic." },
		{ "ringmq_topic_slow_subscriber_disconnects_total", "counter",
		  "Live subscribers of the topic disconnected for falling behind." },
		{ "ringmq_topic_subscribers", "gauge",
		  "Subscribers of the topic, live and durable." },
	};
	for (int f = 0; f < TOPIC_FAMILIES; f++) {
		fam(b, fams[f][0], fams[f][1], fams[f][2]);
		for (size_t i = 0; i < tw->n; i++) {
			mf(b, "%s{topic=\"", fams[f][0]);
			label(b, tw->rows[i].name);
			mf(b, "\"} %llu\n", (unsigned long long)topic_value(&tw->rows[i].st, f));
		}
		if (tw->has_other)
			mf(b, "%s{topic=\"_other\"} %llu\n", fams[f][0],
			   (unsigned long long)topic_value(&tw->other.st, f));
	}
}

/* --- durable subscribers --- */

struct sub_walk {
	struct rmq_buf *b;
	uint64_t n, max, other_lag, total_lag;
};

static void walk_sub(const struct rmq_dsub_info *d, struct rmq_dsub_subscription *s, uint64_t lag,
		     void *ctx)
{
	struct sub_walk *sw = ctx;
	sw->total_lag += lag;
	if (sw->n >= sw->max) {
		sw->other_lag += lag;
		return;
	}
	sw->n++;
	mf(sw->b, "ringmq_durable_subscriber_lag_messages{subscriber=\"");
	label(sw->b, d->name);
	mf(sw->b, "\",topic=\"");
	label(sw->b, s->topic->name);
	mf(sw->b, "\"} %llu\n", (unsigned long long)lag);
}

/* --- persistence, from its INFO section (persist.c keeps its figures) --- */

static uint64_t info_field(const struct rmq_buf *b, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), "\n%s:", key);
	const char *p = b->data ? memmem(b->data, b->len, k, strlen(k)) : NULL;
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

static void scrape(struct server *s, struct rmq_buf *b)
{
	uint64_t tot[17] = { 0 }, lat[RMQ_LAT_BUCKETS + 1] = { 0 }, lat_sum = 0, lat_n = 0;
	for (uint32_t i = 0; i < s->nworkers; i++) {
		struct worker_stats *st = &s->workers[i].stats;
		_Atomic uint64_t *c[] = { &st->conns_accepted,
					  &st->commands,
					  &st->published,
					  &st->delivered,
					  &st->pulled,
					  &st->bytes_read,
					  &st->bytes_written,
					  &st->slow_disconnects,
					  &st->protocol_errors,
					  &st->conns,
					  &st->frame_timeouts,
					  &st->alloc_failures,
					  &st->client_memory_closed,
					  &st->tls_handshakes,
					  &st->tls_hs_errors,
					  &st->tls_hs_timeouts,
					  &st->tls_on_plain };
		for (size_t k = 0; k < 17; k++)
			tot[k] += atomic_load_explicit(c[k], memory_order_relaxed);
		for (size_t k = 0; k <= RMQ_LAT_BUCKETS; k++)
			lat[k] += atomic_load_explicit(&st->pub_lat[k], memory_order_relaxed);
		lat_sum += atomic_load_explicit(&st->pub_lat_sum_ns, memory_order_relaxed);
		lat_n += atomic_load_explicit(&st->pub_lat_count, memory_order_relaxed);
	}
	struct rmq_broker_totals bt;
	rmq_broker_totals(s->broker, &bt);
	int64_t cm = atomic_load(&s->client_mem);
	uint64_t client_mem = cm > 0 ? (uint64_t)cm : 0;

	fam(b, "ringmq_build_info", "gauge", "The running version (always 1).");
	mf(b, "ringmq_build_info{version=\"%s\"} 1\n", RMQ_VERSION);
	one(b, "ringmq_uptime_seconds", "gauge", "Seconds since the server started.",
	    (double)(rmq_now_ms() - s->started_ms) / 1000.0);
	one(b, "ringmq_loading", "gauge", "1 while the data directory is recovered.",
	    atomic_load(&s->loading));
	one(b, "ringmq_connected_clients", "gauge", "Client connections open.", (double)tot[9]);
	one(b, "ringmq_connections_received_total", "counter", "Client connections accepted.",
	    (double)tot[0]);
	one(b, "ringmq_rejected_connections_total", "counter",
	    "Connections refused over --max-clients.", (double)atomic_load(&s->rejected_clients));
	one(b, "ringmq_commands_processed_total", "counter", "Requests run.", (double)tot[1]);
	one(b, "ringmq_published_messages_total", "counter", "Messages published (all topics).",
	    (double)tot[2]);
	fam(b, "ringmq_delivered_messages_total", "counter",
	    "Messages delivered to subscribers: pushed live, or pulled by durable subscribers.");
	mf(b, "ringmq_delivered_messages_total{mode=\"push\"} %llu\n", (unsigned long long)tot[3]);
	mf(b, "ringmq_delivered_messages_total{mode=\"pull\"} %llu\n", (unsigned long long)tot[4]);
	one(b, "ringmq_network_received_bytes_total", "counter", "Bytes read from clients.",
	    (double)tot[5]);
	one(b, "ringmq_network_sent_bytes_total", "counter", "Bytes written to clients.",
	    (double)tot[6]);
	one(b, "ringmq_slow_subscriber_disconnects_total", "counter",
	    "Live subscribers disconnected for falling behind the retained window.",
	    (double)tot[7]);
	one(b, "ringmq_dropped_messages_total", "counter",
	    "Messages dropped to make room before every durable subscriber read them.",
	    (double)bt.dropped);
	one(b, "ringmq_evicted_messages_total", "counter",
	    "Messages that left the logs by retention (capacity or age).", (double)bt.evicted);
	fam(b, "ringmq_refused_total", "counter",
	    "Requests refused, by reason: FULL (topic full, ONFULL reject), OOM (--maxmemory), "
	    "NOAUTH and NOPERM (access control).");
	mf(b, "ringmq_refused_total{reason=\"FULL\"} %llu\n", (unsigned long long)bt.rejected);
	mf(b, "ringmq_refused_total{reason=\"OOM\"} %llu\n",
	   (unsigned long long)atomic_load(&s->oom_refused));
	struct rmq_acl_counts ac;
	rmq__acl_counts(s, &ac);
	mf(b, "ringmq_refused_total{reason=\"NOAUTH\"} %llu\n", (unsigned long long)ac.noauth);
	mf(b, "ringmq_refused_total{reason=\"NOPERM\"} %llu\n", (unsigned long long)ac.noperm);
	one(b, "ringmq_auth_failures_total", "counter",
	    "Failed authentications (AUTH, HELLO AUTH, HTTP Basic on /metrics); INFO's "
	    "acl_access_denied_auth.",
	    (double)ac.auth_failures);
	one(b, "ringmq_protocol_errors_total", "counter", "Connections closed on a protocol error.",
	    (double)tot[8]);
	one(b, "ringmq_frame_timeouts_total", "counter",
	    "Connections closed for leaving a request half-sent (--frame-timeout).",
	    (double)tot[10]);
	one(b, "ringmq_allocation_failures_total", "counter", "Allocations that failed.",
	    (double)tot[11]);
	one(b, "ringmq_client_memory_closed_total", "counter",
	    "Clients closed over --max-client-memory.", (double)tot[12]);
	one(b, "ringmq_tls_handshakes_total", "counter", "TLS handshakes completed (--tls-port).",
	    (double)tot[13]);
	fam(b, "ringmq_tls_handshake_failures_total", "counter",
	    "TLS handshakes that failed, by reason: error (a protocol or certificate error, or "
	    "the client closed), timeout (not done within --frame-timeout).");
	mf(b, "ringmq_tls_handshake_failures_total{reason=\"error\"} %llu\n",
	   (unsigned long long)tot[14]);
	mf(b, "ringmq_tls_handshake_failures_total{reason=\"timeout\"} %llu\n",
	   (unsigned long long)tot[15]);
	one(b, "ringmq_tls_on_plain_port_total", "counter",
	    "Connections to the plain port closed for starting a TLS handshake.", (double)tot[16]);
	one(b, "ringmq_topics", "gauge", "Topics.", (double)bt.topics);
	one(b, "ringmq_retained_messages", "gauge", "Messages retained by all topics.",
	    (double)bt.messages_retained);
	one(b, "ringmq_retained_bytes", "gauge", "Bytes retained by all topics' logs.",
	    (double)bt.bytes_retained);
	one(b, "ringmq_client_buffers_bytes", "gauge", "Bytes of all clients' buffers.",
	    (double)client_mem);
	one(b, "ringmq_used_memory_bytes", "gauge",
	    "Bytes counted against --maxmemory: retained bytes plus client buffers.",
	    (double)(bt.bytes_retained + client_mem));
	one(b, "ringmq_maxmemory_bytes", "gauge", "--maxmemory (0: no limit).",
	    (double)atomic_load(&s->maxmemory));
	one(b, "ringmq_durable_subscribers", "gauge", "Durable subscribers registered.",
	    (double)rmq_dsub_registry_count(s->dsubs));

	/* publish-to-reply latency */
	fam(b, "ringmq_publish_latency_seconds", "histogram",
	    "From reading a batch of requests that published to queueing their replies.");
	uint64_t cum = 0;
	for (size_t k = 0; k < RMQ_LAT_BUCKETS; k++) {
		cum += lat[k];
		mf(b, "ringmq_publish_latency_seconds_bucket{le=\"%g\"} %llu\n",
		   rmq__ops_latency_bounds[k], (unsigned long long)cum);
	}
	cum += lat[RMQ_LAT_BUCKETS];
	/* _count is the buckets' sum: read one by one, the counters could
	 * otherwise disagree by an observation made meanwhile */
	(void)lat_n;
	mf(b, "ringmq_publish_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	mf(b, "ringmq_publish_latency_seconds_sum %.9f\n", (double)lat_sum / 1e9);
	mf(b, "ringmq_publish_latency_seconds_count %llu\n", (unsigned long long)cum);

	/* what needs RCU: topics, subscribers, persistence */
	urcu_qsbr_thread_online();
	struct rmq_buf pi = { 0 };
	rmq__persist_info(s, &pi);
	one(b, "ringmq_fsync_total", "counter", "fsync calls on disk topics' files.",
	    (double)info_field(&pi, "fsync_calls"));
	one(b, "ringmq_fsync_seconds_total", "counter", "Time spent in those fsync calls.",
	    (double)info_field(&pi, "fsync_time_ms") / 1000.0);
	one(b, "ringmq_fsync_last_latency_seconds", "gauge", "Duration of the last fsync round.",
	    (double)info_field(&pi, "last_fsync_latency_us") / 1e6);
	one(b, "ringmq_unsynced_oldest_age_seconds", "gauge",
	    "Age of the oldest append not yet synced to disk.",
	    (double)info_field(&pi, "oldest_unsynced_age_ms") / 1000.0);
	one(b, "ringmq_disk_errors_total", "counter", "Disk write errors.",
	    (double)info_field(&pi, "disk_errors"));
	rmq_buf_free(&pi);

	uint64_t max = atomic_load(&s->metrics_max_topics);
	struct topic_walk tw = { .max = max };
	tw.rows = calloc(max ? max : 1, sizeof(*tw.rows));
	if (!tw.rows)
		tw.max = 0;
	uint64_t cursor = 0;
	do {
		cursor = rmq_broker_scan(s->broker, cursor, 64, NULL, 0, walk_topic, &tw);
		urcu_qsbr_quiescent_state();
	} while (cursor != 0);
	topic_families(b, &tw);
	for (size_t i = 0; i < tw.n; i++)
		free(tw.rows[i].name);
	free(tw.rows);

	fam(b, "ringmq_durable_subscriber_lag_messages", "gauge",
	    "Messages a durable subscriber has yet to read (the first --metrics-max-topics).");
	struct sub_walk sw = { .b = b, .max = max };
	rmq_dsub_registry_foreach(s->dsubs, rmq_now_ms(), UINT64_MAX, walk_sub, &sw);
	urcu_qsbr_thread_offline();
	one(b, "ringmq_durable_lag_messages", "gauge",
	    "Messages all durable subscribers together have yet to read.", (double)sw.total_lag);
}

static int handler(void *ctx, const struct rmq_http_request *req, struct rmq_buf *body,
		   const char **ctype)
{
	struct metrics *m = ctx;
	const char *path = req->path;
	int st = rmq__console_handle(m->console, req, body, ctype);
	if (st)
		return st;
	if (!strcmp(req->method, "POST") &&
	    (!strcmp(path, "/metrics") || !strcmp(path, "/healthz"))) {
		rmq_buf_append(body, "method not allowed\n", 19);
		return 405;
	}
	if (!strcmp(path, "/metrics")) {
		/* per-topic names and figures: with auth configured, a client
		 * from another host must be a user that may run INFO (acl.c) */
		if (rmq__acl_http_protected(m->srv, req->peer_loopback)) {
			rmq_buf_append(body, rmq_acl_http_denied_msg,
				       strlen(rmq_acl_http_denied_msg));
			rmq_buf_append(body, "\n", 1);
			return 403;
		}
		int deny = rmq__acl_http_check(m->srv, req->peer_loopback, req->authorization,
					       req->peer);
		if (deny) {
			const char *msg = deny == 401 ? "authentication required\n"
						      : "forbidden: the user may not run INFO\n";
			rmq_buf_append(body, msg, strlen(msg));
			return deny;
		}
		*ctype = "text/plain; version=0.0.4; charset=utf-8";
		scrape(m->srv, body);
		return 200;
	}
	if (!strcmp(path, "/healthz")) {
		bool loading = atomic_load(&m->srv->loading);
		rmq_buf_append(body, loading ? "loading\n" : "ok\n", loading ? 8 : 3);
		return loading ? 503 : 200;
	}
	rmq_buf_append(body, "not found\n", 10);
	return 404;
}

static void thread_hook(void *ctx, int start)
{
	(void)ctx;
	if (start) {
		urcu_qsbr_register_thread();
		urcu_qsbr_thread_offline();
	} else {
		urcu_qsbr_unregister_thread();
	}
}

int rmq__metrics_start(struct server *srv)
{
	struct metrics *m = rmq_calloc(1, sizeof(*m));
	m->srv = srv;
	m->console = rmq__console_new(srv);
	char err[256];
	m->http = rmq_http_start(srv->cfg.metrics_bind, srv->cfg.metrics_port, handler, thread_hook,
				 m, &m->port, err, sizeof(err));
	if (!m->http) {
		fprintf(stderr, "ringmq-server: metrics endpoint: %s\n", err);
		rmq__console_free(m->console);
		free(m);
		return -1;
	}
	srv->metrics = m;
	rmq_diagf(RMQ_DIAG_INFO, "metrics on http://%s:%d/metrics", srv->cfg.metrics_bind, m->port);
	return 0;
}

void rmq__metrics_stop(struct server *srv)
{
	struct metrics *m = srv->metrics;
	if (!m)
		return;
	rmq_http_stop(m->http);
	rmq__console_free(m->console);
	free(m);
	srv->metrics = NULL;
}
