/* migrate.c - moving a slot's topics live from this node to another
 * (issue 17): retained messages with their sequence numbers, topic
 * settings and durable subscribers' positions, then the owner in etcd.
 *
 * Driven by the source node: SLOTMIGRATE slot target-id [AUTH user pass]
 * (ringmq-cluster move, rebalance and drain send it to each slot's owner)
 * starts one migration on this node's migration thread and returns;
 * SLOTMIGRATE STATUS says how it went. The thread talks to the target over
 * an ordinary RESP connection with SLOTIMPORT commands (ACL category
 * @admin on both sides: the operator's credentials are passed on):
 *
 *   1. bulk copy, the source serving as usual: per topic SLOTIMPORT TOPIC
 *      (settings, and the sequence number its log starts at: the target's
 *      log starts there too), then SLOTIMPORT MSGS batches of payloads,
 *      each stating the sequence number of its first message (the target
 *      checks it: the copy's numbers are the source's)
 *   2. freeze: the slot answers -TRYAGAIN on this node; once every worker
 *      has passed a quiescent state (urcu_qsbr_synchronize_rcu) no command
 *      that saw the slot open is still running, so nothing changes any
 *      more. The tail is copied (disk topics synced first under --fsync
 *      always, where readers see only synced records), then the durable
 *      subscribers' positions (SLOTIMPORT DSUB), then SLOTIMPORT DONE: the
 *      target serves the slot to clients that send ASKING.
 *   3. the slot map's owner is changed in etcd by compare-and-set (the
 *      commit point). Then this node answers -ASK slot target for it until
 *      its cluster thread applies the new map (then -MOVED), and deletes its
 *      copies: live subscribers of them get a sunsubscribe push (Redis 7's
 *      way of telling cluster clients to subscribe again, at the new owner).
 *
 * Any failure before the commit point (target gone, a refused import, the
 * compare-and-set refused) sends SLOTIMPORT ABORT to the target, opens the
 * slot again and leaves this node's data as it was. Publishes are held
 * only for step 2 (-TRYAGAIN), whose length SLOTMIGRATE STATUS reports.
 *
 * Threads: the migration thread is a registered urcu-qsbr thread, offline
 * while it waits on the network (it holds references on the topics it
 * copies, and reads their logs with a cursor as a live subscriber does).
 * One migration at a time per node (mig->mu). The per-slot state
 * (srv->slot_mig) is written by that thread and the cluster thread, read
 * by workers with acquire loads.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "etcd.h"
#include "slot.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIG_IO_TIMEOUT_S 10
#define MIG_BATCH_RECS 512
#define MIG_BATCH_BYTES (1u << 20)
#define MIG_RESTARTS 8        /* a topic's copy started again (its head evicted) */
#define MIG_FLIP_WAIT_MS 5000 /* for the cluster thread to apply the new map */

struct mtopic {
	struct rmq_topic *t; /* a reference */
	struct rmq_cursor cur;
	bool sent; /* its SLOTIMPORT TOPIC went */
	bool dropped;
	unsigned restarts;
};

struct mdsub {
	char *name, *topic;
	size_t nlen, tlen;
	uint64_t pos, acked;
};

struct migrate {
	struct server *srv;
	pthread_mutex_t mu;
	pthread_t th;
	bool running, joinable;
	_Atomic bool stop;
	/* the job (under mu while starting, then the thread's) */
	unsigned slot;
	char to_id[CL_ID_LEN + 1];
	char to_host[CL_HOST_MAX];
	int to_port;
	char *user, *pass;
	/* the thread's */
	int fd;
	struct rmq_buf out;
	char *in;
	size_t in_len, in_cap;
	struct mtopic *tp;
	size_t ntp, captp;
	uint64_t msgs;
	/* the outcome (under mu) */
	char status[512];
};

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void set_status(struct migrate *mg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_status(struct migrate *mg, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&mg->mu);
	va_start(ap, fmt);
	vsnprintf(mg->status, sizeof(mg->status), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&mg->mu);
}

/* --- the connection to the target (blocking, offline while it waits) --- */

static void out_arg(struct migrate *mg, const void *p, size_t len)
{
	char h[32];
	int k = snprintf(h, sizeof(h), "$%zu\r\n", len);
	rmq_buf_append(&mg->out, h, (size_t)k);
	rmq_buf_append(&mg->out, p, len);
	rmq_buf_append(&mg->out, "\r\n", 2);
}

static void out_str(struct migrate *mg, const char *s)
{
	out_arg(mg, s, strlen(s));
}

static void out_u64(struct migrate *mg, uint64_t v)
{
	char b[24];
	int k = snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	out_arg(mg, b, (size_t)k);
}

static void out_cmd(struct migrate *mg, size_t argc)
{
	char h[32];
	int k = snprintf(h, sizeof(h), "*%zu\r\n", argc);
	rmq_buf_append(&mg->out, h, (size_t)k);
}

static int mconnect(struct migrate *mg, char *err, size_t errlen)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", mg->to_port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int rc = getaddrinfo(mg->to_host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", mg->to_host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		struct timeval tv = { MIG_IO_TIMEOUT_S, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s:%d: %s", mg->to_host, mg->to_port,
			 strerror(errno));
		return -1;
	}
	mg->fd = fd;
	return 0;
}

/* One reply line (+, -, :) from the input, into line; -1 on I/O error. A
 * bulk or array reply is refused (SLOTIMPORT and AUTH never send one). */
static int read_line(struct migrate *mg, char *line, size_t cap)
{
	for (;;) {
		char *nl = mg->in_len ? memchr(mg->in, '\n', mg->in_len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - mg->in) + 1;
			size_t k = n - 1;
			if (k && mg->in[k - 1] == '\r')
				k--;
			if (k >= cap)
				k = cap - 1;
			memcpy(line, mg->in, k);
			line[k] = '\0';
			memmove(mg->in, mg->in + n, mg->in_len - n);
			mg->in_len -= n;
			return 0;
		}
		if (mg->in_len == mg->in_cap) {
			if (mg->in_cap >= 65536)
				return -1;
			mg->in_cap = mg->in_cap ? 2 * mg->in_cap : 1024;
			mg->in = rmq_realloc(mg->in, mg->in_cap);
		}
		ssize_t r = recv(mg->fd, mg->in + mg->in_len, mg->in_cap - mg->in_len, 0);
		if (r <= 0)
			return -1;
		mg->in_len += (size_t)r;
	}
}

/* Sends what is queued and reads n replies; offline meanwhile. 0, or -1
 * with err set (an error reply or the connection lost). */
static int exchange(struct migrate *mg, unsigned n, char *err, size_t errlen)
{
	int rc = 0;
	urcu_qsbr_thread_offline();
	const char *p = mg->out.data + mg->out.off;
	size_t left = mg->out.len - mg->out.off;
	while (left) {
		ssize_t w = send(mg->fd, p, left, MSG_NOSIGNAL);
		if (w <= 0) {
			snprintf(err, errlen, "sending to %s:%d: %s", mg->to_host, mg->to_port,
				 w < 0 ? strerror(errno) : "closed");
			rc = -1;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	mg->out.off = mg->out.len = 0;
	for (unsigned i = 0; rc == 0 && i < n; i++) {
		char line[400];
		if (read_line(mg, line, sizeof(line)) != 0) {
			snprintf(err, errlen, "no answer from %s:%d", mg->to_host, mg->to_port);
			rc = -1;
		} else if (line[0] != '+' && line[0] != ':') {
			snprintf(err, errlen, "%s:%d: %.200s", mg->to_host, mg->to_port,
				 line[0] == '-' ? line + 1 : "unexpected reply");
			rc = -1;
		}
	}
	urcu_qsbr_thread_online();
	return rc;
}

/* --- the slot's topics and durable subscribers on this node --- */

struct collect {
	struct migrate *mg;
	unsigned slot;
};

static struct mtopic *mt_find(struct migrate *mg, const struct rmq_topic *t)
{
	for (size_t i = 0; i < mg->ntp; i++)
		if (mg->tp[i].t == t)
			return &mg->tp[i];
	return NULL;
}

static void collect_topic(struct rmq_topic *t, void *arg)
{
	struct collect *co = arg;
	struct migrate *mg = co->mg;
	if (rmq_slot(t->name, t->name_len) != co->slot || rmq_topic_deleted(t) || mt_find(mg, t))
		return;
	if (!rmq_topic_get(t))
		return;
	if (mg->ntp == mg->captp) {
		mg->captp = mg->captp ? 2 * mg->captp : 16;
		mg->tp = rmq_realloc(mg->tp, mg->captp * sizeof(*mg->tp));
	}
	memset(&mg->tp[mg->ntp], 0, sizeof(mg->tp[0]));
	mg->tp[mg->ntp++].t = t;
}

static void collect_topics(struct migrate *mg)
{
	struct collect co = { mg, mg->slot };
	rmq_broker_foreach(mg->srv->broker, collect_topic, &co);
}

struct dcollect {
	unsigned slot;
	struct mdsub *v;
	size_t n, cap;
};

static void collect_dsub(const struct rmq_dsub_info *d, struct rmq_dsub_subscription *s,
			 uint64_t lag, void *arg)
{
	struct dcollect *dc = arg;
	(void)lag;
	struct rmq_topic *t = s->topic;
	if (rmq_slot(t->name, t->name_len) != dc->slot || rmq_topic_deleted(t))
		return;
	if (dc->n == dc->cap) {
		dc->cap = dc->cap ? 2 * dc->cap : 16;
		dc->v = rmq_realloc(dc->v, dc->cap * sizeof(*dc->v));
	}
	struct mdsub *m = &dc->v[dc->n++];
	m->nlen = strlen(d->name);
	m->name = rmq_malloc(m->nlen + 1);
	memcpy(m->name, d->name, m->nlen + 1);
	m->tlen = t->name_len;
	m->topic = rmq_malloc(m->tlen + 1);
	memcpy(m->topic, t->name, m->tlen + 1);
	rmq_dsub_positions(s, &m->pos, &m->acked);
}

/* --- copying --- */

static void send_topic_def(struct migrate *mg, struct mtopic *m)
{
	struct rmq_topic *t = m->t;
	uint64_t first = rmq_log_first_seq(&t->log);
	rmq_log_cursor_seek(&t->log, &m->cur, first);
	/* the cursor may have had to skip: start where it is */
	first = m->cur.seq;
	out_cmd(mg, 8);
	out_str(mg, "SLOTIMPORT");
	out_str(mg, "TOPIC");
	out_arg(mg, t->name, t->name_len);
	out_u64(mg, t->log.capacity);
	out_str(mg, t->log.onfull == RMQ_ONFULL_DROP_OLDEST ? "drop-oldest" : "reject");
	out_str(mg, rmq_log_is_disk(&t->log) ? "disk" : "memory");
	out_u64(mg, t->log.maxage_ms);
	out_u64(mg, first);
	m->sent = true;
}

/* Copies what t's log holds past m's cursor (everything, when frozen).
 * 0, or -1 with err set. */
static int copy_topic(struct migrate *mg, struct mtopic *m, char *err, size_t errlen)
{
	struct rmq_topic *t = m->t;
	for (;;) {
		if (atomic_load(&mg->stop)) {
			snprintf(err, errlen, "the server is stopping");
			return -1;
		}
		unsigned replies = 0;
		if (!m->sent) {
			send_topic_def(mg, m);
			replies++;
		}
		struct rmq_batch b;
		uint32_t n = rmq_log_peek(&t->log, &m->cur, &b, MIG_BATCH_RECS, MIG_BATCH_BYTES);
		if (b.lost) {
			/* its head was evicted under the copy: the target's copy
			 * would have a gap, so it starts again from the new head */
			if (++m->restarts > MIG_RESTARTS) {
				snprintf(err, errlen,
					 "topic '%s' evicts faster than it can be copied", t->name);
				return -1;
			}
			m->sent = false;
			if (replies && exchange(mg, replies, err, errlen) != 0)
				return -1;
			continue;
		}
		if (n) {
			out_cmd(mg, 4 + n);
			out_str(mg, "SLOTIMPORT");
			out_str(mg, "MSGS");
			out_arg(mg, t->name, t->name_len);
			out_u64(mg, b.seq);
			for (uint32_t i = 0; i < n; i++) {
				const char *p;
				uint32_t len;
				rmq_batch_payload(&b, i, &p, &len);
				out_arg(mg, p, len);
			}
			rmq_log_consume(&m->cur, &b, n);
			mg->msgs += n;
			replies++;
		}
		if (replies && exchange(mg, replies, err, errlen) != 0)
			return -1;
		if (!n)
			return 0;
	}
}

static void mt_release(struct migrate *mg)
{
	for (size_t i = 0; i < mg->ntp; i++)
		rmq_topic_put(mg->tp[i].t);
	free(mg->tp);
	mg->tp = NULL;
	mg->ntp = mg->captp = 0;
}

static void open_slot(struct server *srv, unsigned slot)
{
	atomic_store_explicit(&srv->slot_mig[slot], MIG_NONE, memory_order_release);
}

static void sleep_offline(unsigned ms)
{
	urcu_qsbr_thread_offline();
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	urcu_qsbr_thread_online();
}

/* The whole migration; 0 or -1 with err set (the slot open again, the
 * target told to drop its copy, this node's data unchanged). */
static int run(struct migrate *mg, char *err, size_t errlen)
{
	struct server *srv = mg->srv;
	const unsigned slot = mg->slot;
	uint64_t t0 = mono_us();
	if (mconnect(mg, err, errlen) != 0)
		return -1;
	if (mg->user) {
		out_cmd(mg, 3);
		out_str(mg, "AUTH");
		out_str(mg, mg->user);
		out_str(mg, mg->pass);
		if (exchange(mg, 1, err, errlen) != 0)
			return -1;
	}
	/* 1. bulk copy, serving meanwhile. The slot's CREATE count is read
	 * before the walk: a topic the walk misses was counted after it */
	uint32_t gen = atomic_load_explicit(&srv->slot_gen[slot], memory_order_relaxed);
	collect_topics(mg);
	for (size_t i = 0; i < mg->ntp; i++)
		if (copy_topic(mg, &mg->tp[i], err, errlen) != 0)
			goto abort;
	urcu_qsbr_quiescent_state();

	/* 2. freeze: -TRYAGAIN from here; once every worker went through a
	 * quiescent state, no command that saw the slot open still runs */
	uint64_t f0 = mono_us();
	atomic_store_explicit(&srv->slot_mig[slot], MIG_FROZEN, memory_order_release);
	urcu_qsbr_thread_offline();
	urcu_qsbr_synchronize_rcu();
	urcu_qsbr_thread_online();
	uint64_t f1 = mono_us();
	/* created meanwhile (a walk of the whole table: only then) */
	if (atomic_load_explicit(&srv->slot_gen[slot], memory_order_relaxed) != gen)
		collect_topics(mg);
	unsigned dsubs = 0;
	for (size_t i = 0; i < mg->ntp; i++) {
		struct mtopic *m = &mg->tp[i];
		if (rmq_topic_deleted(m->t)) { /* deleted meanwhile */
			m->dropped = true;
			if (m->sent) {
				out_cmd(mg, 3);
				out_str(mg, "SLOTIMPORT");
				out_str(mg, "DROP");
				out_arg(mg, m->t->name, m->t->name_len);
				if (exchange(mg, 1, err, errlen) != 0)
					goto abort;
			}
			continue;
		}
		/* under --fsync always readers see synced records only */
		if (srv->cfg.fsync == RMQ_FSYNC_ALWAYS && rmq_log_is_disk(&m->t->log) &&
		    rmq_log_sync(&m->t->log, true) != 0) {
			snprintf(err, errlen, "topic '%s': its log cannot be synced", m->t->name);
			goto abort;
		}
		if (copy_topic(mg, m, err, errlen) != 0)
			goto abort;
	}
	struct dcollect dc = { .slot = slot };
	rmq_dsub_registry_foreach(srv->dsubs, rmq_now_ms(), UINT64_MAX, collect_dsub, &dc);
	for (size_t i = 0; i < dc.n; i++) {
		out_cmd(mg, 6);
		out_str(mg, "SLOTIMPORT");
		out_str(mg, "DSUB");
		out_arg(mg, dc.v[i].topic, dc.v[i].tlen);
		out_arg(mg, dc.v[i].name, dc.v[i].nlen);
		out_u64(mg, dc.v[i].pos);
		out_u64(mg, dc.v[i].acked);
	}
	dsubs = (unsigned)dc.n;
	for (size_t i = 0; i < dc.n; i++) {
		free(dc.v[i].name);
		free(dc.v[i].topic);
	}
	free(dc.v);
	out_cmd(mg, 3);
	out_str(mg, "SLOTIMPORT");
	out_str(mg, "DONE");
	out_u64(mg, slot);
	if (exchange(mg, dsubs + 1, err, errlen) != 0)
		goto abort;

	/* 3. the commit point: the owner in etcd */
	char addr[CL_HOST_MAX + 8];
	snprintf(addr, sizeof(addr), "%s:%d", mg->to_host, mg->to_port);
	unsigned ai = 0; /* addr's entry for -ASK (added once, never changed) */
	while (ai < srv->n_mig_addrs && strcmp(srv->mig_addrs[ai], addr) != 0)
		ai++;
	if (ai == CL_MAX_NODES) {
		snprintf(err, errlen, "too many different targets since this node started");
		goto abort;
	}
	if (ai == srv->n_mig_addrs) {
		memcpy(srv->mig_addrs[ai], addr, sizeof(addr));
		srv->n_mig_addrs++;
	}
	uint64_t f2 = mono_us();
	urcu_qsbr_thread_offline();
	int rc = rmq__cluster_give_slot(srv, slot, mg->to_id, addr, &mg->stop, err, errlen);
	urcu_qsbr_thread_online();
	if (rc == -2) { /* stopping, the outcome unknown: the slot stays frozen */
		snprintf(err + strlen(err), errlen - strlen(err),
			 " (stopped before etcd answered: slot %u left frozen)", slot);
		return -1;
	}
	if (rc != 0)
		goto abort;
	atomic_store_explicit(&srv->slot_ask[slot], (uint8_t)ai, memory_order_relaxed);
	atomic_store_explicit(&srv->slot_mig[slot], MIG_ASK, memory_order_release);
	uint64_t frozen_us = mono_us() - f0;
	size_t moved = 0;
	for (size_t i = 0; i < mg->ntp; i++) {
		struct mtopic *m = &mg->tp[i];
		if (m->dropped)
			continue;
		/* its live subscribers are told (sunsubscribe) as the delete
		 * reaches their workers (pubsub.c) */
		(void)rmq__persist_delete(srv, m->t->name, m->t->name_len);
		moved++;
		urcu_qsbr_quiescent_state();
	}
	/* -ASK until the cluster thread applies the new map, -MOVED then */
	for (unsigned w = 0; w < MIG_FLIP_WAIT_MS / 10; w++) {
		const struct cl_map *cm = atomic_load_explicit(&srv->cmap, memory_order_acquire);
		if ((int)cm->owner[slot] != cm->self)
			break;
		sleep_offline(10);
	}
	uint8_t ask = MIG_ASK;
	atomic_compare_exchange_strong(&srv->slot_mig[slot], &ask, MIG_NONE);
	uint64_t total_us = mono_us() - t0;
	set_status(mg,
		   "ok slot %u to %s topics %zu messages %llu durable %u ms %llu frozen_us %llu "
		   "(quiesce %llu, tail %llu, etcd %llu)",
		   slot, addr, moved, (unsigned long long)mg->msgs, dsubs,
		   (unsigned long long)(total_us / 1000), (unsigned long long)frozen_us,
		   (unsigned long long)(f1 - f0), (unsigned long long)(f2 - f1),
		   (unsigned long long)(frozen_us - (f2 - f0)));
	rmq_diagf(RMQ_DIAG_INFO,
		  "cluster: slot %u moved to %s: %zu topics, %llu messages, %u durable "
		  "subscriptions in %llu ms (publishes held %llu us)",
		  slot, addr, moved, (unsigned long long)mg->msgs, dsubs,
		  (unsigned long long)(total_us / 1000), (unsigned long long)frozen_us);
	return 0;

abort:
	/* best effort: the target drops its copy (it does not own the slot) */
	if (mg->fd >= 0) {
		char e2[64];
		mg->out.off = mg->out.len = 0;
		out_cmd(mg, 3);
		out_str(mg, "SLOTIMPORT");
		out_str(mg, "ABORT");
		out_u64(mg, slot);
		(void)exchange(mg, 1, e2, sizeof(e2));
	}
	open_slot(srv, slot);
	return -1;
}

static void *migrate_main(void *arg)
{
	struct migrate *mg = arg;
	pthread_setname_np(pthread_self(), "rmq-migrate");
	urcu_qsbr_register_thread();
	char err[300] = "";
	mg->fd = -1;
	mg->msgs = 0;
	if (run(mg, err, sizeof(err)) != 0) {
		set_status(mg, "err slot %u: %s", mg->slot, err);
		rmq_diagf(RMQ_DIAG_WARN, "cluster: moving slot %u to %s:%d failed: %s", mg->slot,
			  mg->to_host, mg->to_port, err);
	}
	mt_release(mg);
	if (mg->fd >= 0)
		close(mg->fd);
	mg->fd = -1;
	rmq_buf_free(&mg->out);
	free(mg->in);
	mg->in = NULL;
	mg->in_len = mg->in_cap = 0;
	urcu_qsbr_unregister_thread();
	pthread_mutex_lock(&mg->mu);
	mg->running = false;
	pthread_mutex_unlock(&mg->mu);
	return NULL;
}

/* --- commands --- */

static struct migrate *mig_of(struct server *srv)
{
	return srv->migrate;
}

void rmq__migrate_init(struct server *srv)
{
	struct migrate *mg = rmq_calloc(1, sizeof(*mg));
	mg->srv = srv;
	mg->fd = -1;
	pthread_mutex_init(&mg->mu, NULL);
	snprintf(mg->status, sizeof(mg->status), "idle");
	srv->migrate = mg;
}

void rmq__migrate_stop(struct server *srv)
{
	struct migrate *mg = mig_of(srv);
	if (!mg)
		return;
	atomic_store(&mg->stop, true);
	if (mg->joinable)
		pthread_join(mg->th, NULL);
	free(mg->user);
	free(mg->pass);
	pthread_mutex_destroy(&mg->mu);
	free(mg);
	srv->migrate = NULL;
}

static char *dup_arg(const struct rmq_arg *a)
{
	char *s = rmq_malloc(a->len + 1);
	memcpy(s, a->p, a->len);
	s[a->len] = '\0';
	return s;
}

static bool is(const struct rmq_arg *a, const char *s)
{
	return a->len == strlen(s) && !strncasecmp(a->p, s, a->len);
}

/* SLOTMIGRATE slot target-id [AUTH user pass] | SLOTMIGRATE STATUS */
void rmq__cmd_slotmigrate(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	struct migrate *mg = mig_of(srv);
	if (!srv->cluster || !mg)
		return rmq_resp_error(&c->out, "ERR This instance has cluster support disabled");
	if (argc == 2 && is(&argv[1], "STATUS")) {
		pthread_mutex_lock(&mg->mu);
		char st[sizeof(mg->status)];
		snprintf(st, sizeof(st), "%s", mg->running ? "running" : mg->status);
		pthread_mutex_unlock(&mg->mu);
		return rmq_resp_bulkstr(&c->out, st);
	}
	if (argc != 3 && !(argc == 6 && is(&argv[3], "AUTH")))
		return rmq_resp_error(
			&c->out,
			"ERR usage: SLOTMIGRATE slot target-node-id [AUTH user pass] | SLOTMIGRATE STATUS");
	uint64_t slot;
	if (rmq_parse_u64(argv[1].p, argv[1].len, 0, &slot) != 0 || slot >= RMQ_SLOTS)
		return rmq_resp_error(&c->out, "ERR Invalid slot");
	const struct cl_map *m = atomic_load_explicit(&srv->cmap, memory_order_acquire);
	if (m->self < 0 || (int)m->owner[slot] != m->self || m->fenced)
		return rmq_resp_errorf(&c->out, "ERR slot %llu is not served by this node",
				       (unsigned long long)slot);
	int to = -1;
	for (unsigned i = 0; i < m->nnodes; i++)
		if (argv[2].len == CL_ID_LEN && !memcmp(m->nodes[i].id, argv[2].p, CL_ID_LEN))
			to = (int)i;
	if (to < 0 || m->nodes[to].failed || to == m->self)
		return rmq_resp_error(&c->out, "ERR the target is not another live node");
	pthread_mutex_lock(&mg->mu);
	if (mg->running) {
		pthread_mutex_unlock(&mg->mu);
		return rmq_resp_error(&c->out, "BUSY a slot migration is running on this node");
	}
	if (mg->joinable) /* the last one has finished (running false) */
		pthread_join(mg->th, NULL);
	mg->joinable = false;
	mg->slot = (unsigned)slot;
	memcpy(mg->to_id, m->nodes[to].id, CL_ID_LEN + 1);
	memcpy(mg->to_host, m->nodes[to].host, sizeof(mg->to_host));
	mg->to_port = m->nodes[to].port;
	free(mg->user);
	free(mg->pass);
	mg->user = argc == 6 ? dup_arg(&argv[4]) : NULL;
	mg->pass = argc == 6 ? dup_arg(&argv[5]) : NULL;
	mg->running = true;
	int rc = pthread_create(&mg->th, NULL, migrate_main, mg);
	if (rc != 0)
		mg->running = false;
	else
		mg->joinable = true;
	pthread_mutex_unlock(&mg->mu);
	if (rc != 0)
		return rmq_resp_errorf(&c->out, "ERR cannot start the migration: %s", strerror(rc));
	rmq_resp_simple(&c->out, "OK");
}

/* --- the target's side: SLOTIMPORT --- */

static bool owned_here(struct server *srv, unsigned slot)
{
	const struct cl_map *m = atomic_load_explicit(&srv->cmap, memory_order_acquire);
	return m->self >= 0 && (int)m->owner[slot] == m->self;
}

struct drop_slot {
	unsigned slot;
	struct rmq_arg *names;
	size_t n, cap;
};

static void collect_name(struct rmq_topic *t, void *arg)
{
	struct drop_slot *d = arg;
	if (rmq_slot(t->name, t->name_len) != d->slot || rmq_topic_deleted(t))
		return;
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 16;
		d->names = rmq_realloc(d->names, d->cap * sizeof(*d->names));
	}
	d->names[d->n].p = rmq_malloc(t->name_len);
	memcpy((char *)d->names[d->n].p, t->name, t->name_len);
	d->names[d->n++].len = t->name_len;
}

/* The topics this node holds in slot: names (malloc'd), for a walk that
 * then syncs or deletes them. */
static void slot_names(struct server *srv, unsigned slot, struct drop_slot *d)
{
	memset(d, 0, sizeof(*d));
	d->slot = slot;
	rmq_broker_foreach(srv->broker, collect_name, d);
}

static void slot_names_free(struct drop_slot *d)
{
	for (size_t i = 0; i < d->n; i++)
		free((void *)d->names[i].p);
	free(d->names);
}

static void import_topic(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	if (argc != 8)
		return rmq_resp_error(&c->out,
				      "ERR wrong number of arguments for SLOTIMPORT TOPIC");
	const struct rmq_arg *name = &argv[2];
	if (!rmq_topic_name_valid(name->p, name->len))
		return rmq_resp_error(&c->out, "ERR SLOTIMPORT TOPIC: invalid topic name");
	unsigned slot = rmq_slot(name->p, name->len);
	uint64_t cap, maxage, start;
	if (rmq_parse_u64(argv[3].p, argv[3].len, 0, &cap) != 0 ||
	    rmq_parse_u64(argv[6].p, argv[6].len, 0, &maxage) != 0 ||
	    rmq_parse_u64(argv[7].p, argv[7].len, 0, &start) != 0 || !cap || !start)
		return rmq_resp_error(&c->out, "ERR SLOTIMPORT TOPIC: bad number");
	if (owned_here(srv, slot))
		return rmq_resp_errorf(&c->out, "ERR slot %u is already served by this node", slot);
	enum rmq_onfull onfull =
		is(&argv[4], "drop-oldest") ? RMQ_ONFULL_DROP_OLDEST : RMQ_ONFULL_REJECT;
	bool disk = is(&argv[5], "disk");
	atomic_store_explicit(&srv->slot_mig[slot], MIG_NONE, memory_order_release);
	/* a copy left by an earlier attempt (or an old owner's) is stale */
	(void)rmq__persist_delete(srv, name->p, name->len);
	char err[256];
	int rc = rmq__persist_create_at(srv, name->p, name->len, cap, onfull, disk, maxage, start,
					err, sizeof(err));
	if (rc == -EEXIST) { /* the old one is still being freed: once more */
		(void)rmq__persist_delete(srv, name->p, name->len);
		rc = rmq__persist_create_at(srv, name->p, name->len, cap, onfull, disk, maxage,
					    start, err, sizeof(err));
	}
	if (rc != 0)
		return rmq_resp_errorf(&c->out, "ERR SLOTIMPORT TOPIC: %s",
				       err[0] ? err : strerror(-rc));
	rmq_resp_simple(&c->out, "OK");
}

static void import_msgs(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	uint64_t first;
	if (argc < 5 || rmq_parse_u64(argv[3].p, argv[3].len, 0, &first) != 0)
		return rmq_resp_error(&c->out, "ERR wrong arguments for SLOTIMPORT MSGS");
	struct rmq_topic *t = rmq_topic_lookup(srv->broker, argv[2].p, argv[2].len);
	if (!t)
		return rmq_resp_error(&c->out, "ERR SLOTIMPORT MSGS: no such topic");
	if (owned_here(srv, rmq_slot(argv[2].p, argv[2].len)))
		return rmq_resp_error(&c->out, "ERR SLOTIMPORT MSGS: the slot is served here");
	uint64_t next = rmq_log_next_seq(&t->log);
	if (next != first)
		return rmq_resp_errorf(&c->out,
				       "ERR SLOTIMPORT MSGS: sequence %llu expected, %llu sent",
				       (unsigned long long)next, (unsigned long long)first);
	uint64_t bytes = 0;
	unsigned n = 0;
	for (size_t i = 4; i < argc; i++) {
		int64_t seq = rmq_topic_append(t, argv[i].p, (uint32_t)argv[i].len);
		if (seq != (int64_t)(first + n)) {
			if (n)
				rmq__worker_published(c, t, n, bytes);
			return rmq_resp_errorf(&c->out, "ERR SLOTIMPORT MSGS: append %llu: %s",
					       (unsigned long long)first + n,
					       seq < 0 ? strerror((int)-seq) : "out of sequence");
		}
		bytes += argv[i].len;
		n++;
	}
	rmq__worker_published(c, t, n, bytes);
	rmq_resp_int(&c->out, (int64_t)n);
}

static void import_dsub(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	uint64_t pos, acked;
	if (argc != 6 || rmq_parse_u64(argv[4].p, argv[4].len, 0, &pos) != 0 ||
	    rmq_parse_u64(argv[5].p, argv[5].len, 0, &acked) != 0)
		return rmq_resp_error(&c->out, "ERR wrong arguments for SLOTIMPORT DSUB");
	struct rmq_topic *t = rmq_topic_lookup(srv->broker, argv[2].p, argv[2].len);
	if (!t)
		return rmq_resp_error(&c->out, "ERR SLOTIMPORT DSUB: no such topic");
	int rc = rmq_dsub_restore(srv->dsubs, argv[3].p, argv[3].len, t, rmq__persist_new_id(srv),
				  pos, acked);
	if (rc != 0 && rc != -EEXIST)
		return rmq_resp_errorf(&c->out, "ERR SLOTIMPORT DSUB: %s", strerror(-rc));
	(void)rmq_dsub_registry_touch(srv->dsubs, argv[3].p, argv[3].len); /* its file */
	rmq_resp_simple(&c->out, "OK");
}

/* SLOTIMPORT TOPIC name capacity onfull storage maxage-ms start-seq
 * SLOTIMPORT MSGS name first-seq payload [payload ...]
 * SLOTIMPORT DSUB topic subscriber delivered acked
 * SLOTIMPORT DROP name | DONE slot | ABORT slot
 * Node to node (migrate.c's thread on the source), ACL @admin. */
void rmq__cmd_slotimport(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	if (!srv->cluster)
		return rmq_resp_error(&c->out, "ERR This instance has cluster support disabled");
	if (argc >= 3 && is(&argv[1], "MSGS"))
		return import_msgs(c, argv, argc);
	if (argc >= 3 && is(&argv[1], "TOPIC"))
		return import_topic(c, argv, argc);
	if (argc >= 3 && is(&argv[1], "DSUB"))
		return import_dsub(c, argv, argc);
	if (argc == 3 && is(&argv[1], "DROP")) {
		if (owned_here(srv, rmq_slot(argv[2].p, argv[2].len)))
			return rmq_resp_error(&c->out,
					      "ERR SLOTIMPORT DROP: the slot is served here");
		(void)rmq__persist_delete(srv, argv[2].p, argv[2].len);
		return rmq_resp_simple(&c->out, "OK");
	}
	uint64_t slot;
	if (argc != 3 || rmq_parse_u64(argv[2].p, argv[2].len, 0, &slot) != 0 || slot >= RMQ_SLOTS)
		return rmq_resp_error(&c->out,
				      "ERR usage: SLOTIMPORT TOPIC|MSGS|DSUB|DROP|DONE|ABORT ...");
	if (is(&argv[1], "DONE")) {
		/* under --fsync always, what the source acknowledged is on this
		 * node's disk too before the move is committed */
		struct drop_slot d = { 0 };
		if (srv->cfg.fsync == RMQ_FSYNC_ALWAYS)
			slot_names(srv, (unsigned)slot, &d);
		for (size_t i = 0; i < d.n; i++) {
			struct rmq_topic *t =
				rmq_topic_lookup(srv->broker, d.names[i].p, d.names[i].len);
			if (t && rmq_log_is_disk(&t->log))
				(void)rmq_log_sync(&t->log, false);
		}
		slot_names_free(&d);
		atomic_store_explicit(&srv->slot_mig[slot], MIG_IMPORTED, memory_order_release);
		return rmq_resp_simple(&c->out, "OK");
	}
	if (is(&argv[1], "ABORT")) {
		atomic_store_explicit(&srv->slot_mig[slot], MIG_NONE, memory_order_release);
		if (!owned_here(srv, (unsigned)slot)) {
			struct drop_slot d;
			slot_names(srv, (unsigned)slot, &d);
			for (size_t i = 0; i < d.n; i++)
				(void)rmq__persist_delete(srv, d.names[i].p, d.names[i].len);
			slot_names_free(&d);
		}
		return rmq_resp_simple(&c->out, "OK");
	}
	rmq_resp_error(&c->out, "ERR usage: SLOTIMPORT TOPIC|MSGS|DSUB|DROP|DONE|ABORT ...");
}
