/* cluster.c - several ringmq nodes as one (issue 17, phase 1), coordinated
 * by etcd, routed the way Redis Cluster clients expect.
 *
 * etcd holds, under /ringmq/<cluster-name>/:
 *   nodes/<id>   "host:port" of each live node, bound to the node's lease
 *                (TTL CL_LEASE_TTL_S, renewed every second): a node whose
 *                lease expired is gone from here, and is failed
 *   controller   the id of the controller, bound to its lease and created
 *                only when absent (a transaction on create_revision 0)
 *   slotmap      JSON {"epoch":E,"nodes":{id:"host:port"},"slots":[[first,
 *                last,id],...]}, written only by compare-and-set on its
 *                mod_revision (or create_revision 0 for the first one)
 * etcd never sees a message: only membership and slot map changes.
 *
 * One thread per node (cluster_main) does all the talking to etcd; workers
 * never wait on it. It reads the whole prefix every CL_POLL_MS (one range
 * request: a poll rather than a watch stream, because the gateway's watch
 * is a chunked HTTP stream that would need its own connection, a parser of
 * partial JSON and reconnection logic, while a poll of a handful of keys
 * costs etcd nothing at this rate and bounds the delay to CL_POLL_MS), and
 * when the revision moved builds a new struct cl_map and publishes it with
 * a release store; workers read it with an acquire load and no lock
 * (they are urcu-qsbr readers), the old one is freed after a grace period.
 *
 * First start: when the controller finds no slot map, it spreads the
 * 16384 slots evenly over the live nodes (sorted by id) once
 * --cluster-expect nodes are live, or CL_SETTLE_MS after it became
 * controller, whichever comes first. Nodes that join later own nothing
 * until ringmq-cluster moves slots to them.
 *
 * Fencing: a node that could not renew its lease for CL_FENCE_MS (1 s less
 * than the TTL, measured from the last renewal it saw answered, so before
 * etcd can expire it) stops serving its slots (-CLUSTERDOWN) until it has
 * a lease and its key again.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "etcd.h"
#include "slot.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CL_LEASE_TTL_S 5
#define CL_FENCE_MS ((CL_LEASE_TTL_S - 1) * 1000)
#define CL_KEEPALIVE_MS 1000
#define CL_POLL_MS 200
#define CL_SETTLE_MS 3000
#define CL_ETCD_TIMEOUT_MS 1000
#define CL_ID_FILE "cluster-node-id"

struct cluster {
	struct server *srv;
	struct rmq_etcd *etcd;
	pthread_t th;
	int stop_pipe[2]; /* written to stop the thread */
	char id[CL_ID_LEN + 1];
	char host[CL_HOST_MAX];
	int port;
	char prefix[256]; /* /ringmq/<name>/ */
	unsigned expect;
	/* cluster thread only */
	int64_t lease;
	uint64_t last_renew_ms; /* last answered keepalive (or grant) */
	uint64_t next_keepalive_ms;
	uint64_t controller_since_ms;
	int64_t seen_rev; /* revision of the last map built */
	bool fenced;
	/* Workers serve this node's slots only before this time (CLOCK_
	 * MONOTONIC ms): CL_FENCE_MS after the start of the last answered
	 * grant or renewal, 0 without a lease. Checked on every routed
	 * request, so the fence holds even while the cluster thread is
	 * blocked on an etcd that does not answer (the map's fenced flag
	 * follows at its next look). */
	_Atomic uint64_t serve_until_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- the node's id: 40 hex digits, kept in --dir --- */

static int load_id(struct cluster *cl, const char *dir)
{
	char path[4096];
	if (dir) {
		snprintf(path, sizeof(path), "%s/" CL_ID_FILE, dir);
		FILE *f = fopen(path, "r");
		if (f) {
			char buf[64] = { 0 };
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
				buf[--n] = '\0';
			if (n == CL_ID_LEN && strspn(buf, "0123456789abcdef") == CL_ID_LEN) {
				memcpy(cl->id, buf, CL_ID_LEN + 1);
				return 0;
			}
			rmq_diagf(RMQ_DIAG_ERROR, "cluster: %s is not a node id (40 hex digits)",
				  path);
			return -EINVAL;
		}
	}
	unsigned char raw[CL_ID_LEN / 2];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, raw, sizeof(raw)) != (ssize_t)sizeof(raw)) {
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	close(fd);
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(cl->id + 2 * i, 3, "%02x", raw[i]);
	if (!dir)
		return 0;
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%s\n", cl->id) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		if (f)
			fclose(f);
		rmq_diagf(RMQ_DIAG_ERROR, "cluster: cannot write %s: %s", tmp, strerror(errno));
		return -EIO;
	}
	fclose(f);
	if (rename(tmp, path) != 0)
		return -errno;
	return 0;
}

/* --- the published map --- */

/* "host:port" into node n; false when malformed. */
static bool parse_addr(const char *s, struct cl_node *n)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(n->host))
		return false;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return false;
	memcpy(n->host, s, (size_t)(colon - s));
	n->host[colon - s] = '\0';
	n->port = (int)port;
	return true;
}

static int node_find(const struct cl_map *m, const char *id)
{
	for (unsigned i = 0; i < m->nnodes; i++)
		if (!strcmp(m->nodes[i].id, id))
			return (int)i;
	return -1;
}

/* Adds (or finds) node id at addr; -1 when the table is full or addr bad. */
static int node_add(struct cl_map *m, const char *id, const char *addr)
{
	int i = node_find(m, id);
	if (i >= 0)
		return i;
	if (m->nnodes == CL_MAX_NODES || strlen(id) != CL_ID_LEN)
		return -1;
	struct cl_node *n = &m->nodes[m->nnodes];
	memset(n, 0, sizeof(*n));
	memcpy(n->id, id, CL_ID_LEN + 1);
	if (!parse_addr(addr, n))
		return -1;
	n->failed = true; /* until its key is seen */
	return (int)m->nnodes++;
}

/* Reads the slot map's JSON into m (nodes and owners); false if malformed. */
bool rmq__cluster_map_parse(const char *text, size_t len, struct cl_map *m)
{
	json_t *j = json_loadb(text, len, 0, NULL);
	if (!j)
		return false;
	bool ok = true;
	m->epoch = (uint64_t)json_integer_value(json_object_get(j, "epoch"));
	const char *id;
	json_t *v;
	json_object_foreach(json_object_get(j, "nodes"), id, v)
	{
		if (!json_is_string(v) || node_add(m, id, json_string_value(v)) < 0)
			ok = false;
	}
	size_t i;
	json_array_foreach(json_object_get(j, "slots"), i, v)
	{
		json_int_t a = json_integer_value(json_array_get(v, 0));
		json_int_t b = json_integer_value(json_array_get(v, 1));
		const char *owner = json_string_value(json_array_get(v, 2));
		int k = owner ? node_find(m, owner) : -1;
		if (k < 0 || a < 0 || b >= RMQ_SLOTS || a > b) {
			ok = false;
			continue;
		}
		for (json_int_t s = a; s <= b; s++)
			m->owner[s] = (uint16_t)k;
	}
	json_decref(j);
	return ok;
}

/* The JSON text of map m (malloc'd), as rmq__cluster_map_parse reads it. */
char *rmq__cluster_map_json(const struct cl_map *m)
{
	json_t *j = json_object(), *nodes = json_object(), *slots = json_array();
	json_object_set_new(j, "epoch", json_integer((json_int_t)m->epoch));
	bool used[CL_MAX_NODES] = { false };
	for (int s = 0; s < RMQ_SLOTS;) {
		int e = s;
		while (e + 1 < RMQ_SLOTS && m->owner[e + 1] == m->owner[s])
			e++;
		if (m->owner[s] != CL_NONE) {
			used[m->owner[s]] = true;
			json_array_append_new(slots,
					      json_pack("[iis]", s, e, m->nodes[m->owner[s]].id));
		}
		s = e + 1;
	}
	for (unsigned i = 0; i < m->nnodes; i++) {
		if (!used[i])
			continue;
		char addr[CL_HOST_MAX + 8];
		snprintf(addr, sizeof(addr), "%s:%d", m->nodes[i].host, m->nodes[i].port);
		json_object_set_new(nodes, m->nodes[i].id, json_string(addr));
	}
	json_object_set_new(j, "nodes", nodes);
	json_object_set_new(j, "slots", slots);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return text;
}

struct cl_map *rmq__cluster_map_new(void)
{
	struct cl_map *m = rmq_calloc(1, sizeof(*m));
	for (int s = 0; s < RMQ_SLOTS; s++)
		m->owner[s] = CL_NONE;
	m->self = -1;
	return m;
}

/* Frees a replaced map once a grace period has passed. Its own function
 * (never inlined) so that tests/tsan.supp can name it: TSan cannot see the
 * grace period (liburcu is not instrumented), so the free looks like it
 * races with the workers' reads made before it. */
__attribute__((noinline)) static void map_free_after_grace(struct cl_map *old)
{
	free(old);
}

static void publish(struct cluster *cl, struct cl_map *m)
{
	struct server *srv = cl->srv;
	struct cl_map *old = atomic_load_explicit(&srv->cmap, memory_order_relaxed);
	/* release: the map's contents before the pointer; pairs with the
	 * acquire loads of map_of (workers). A C11 atomic rather than
	 * rcu_assign_pointer/rcu_dereference so that TSan sees the pairing;
	 * on x86 both are plain moves. */
	atomic_store_explicit(&srv->cmap, m, memory_order_release);
	/* a move is over once the map says so (migrate.c): the old owner's
	 * -ASK gives way to the map's -MOVED, the new owner serves without
	 * ASKING */
	for (int s = 0; m->self >= 0 && s < RMQ_SLOTS; s++) {
		uint8_t st = atomic_load_explicit(&srv->slot_mig[s], memory_order_relaxed);
		bool mine = (int)m->owner[s] == m->self;
		if ((st == MIG_ASK && !mine) || (st == MIG_IMPORTED && mine))
			atomic_compare_exchange_strong(&srv->slot_mig[s], &st, MIG_NONE);
	}
	/* this thread is not an RCU reader: waits for every worker's
	 * quiescent state, then nobody can still hold old */
	urcu_qsbr_synchronize_rcu();
	map_free_after_grace(old);
}

/* --- the cluster thread --- */

static void key_of(const struct cluster *cl, char *buf, size_t cap, const char *what)
{
	snprintf(buf, cap, "%s%s", cl->prefix, what);
}

/* Gets a lease and puts this node's key under it. */
static void join(struct cluster *cl)
{
	int64_t lease;
	uint64_t t = now_ms(); /* etcd starts the TTL after this */
	if (rmq_etcd_lease_grant(cl->etcd, CL_LEASE_TTL_S, &lease) != 0)
		return;
	char key[512], addr[CL_HOST_MAX + 8];
	snprintf(key, sizeof(key), "%snodes/%s", cl->prefix, cl->id);
	snprintf(addr, sizeof(addr), "%s:%d", cl->host, cl->port);
	if (rmq_etcd_put(cl->etcd, key, addr, strlen(addr), lease) != 0) {
		(void)rmq_etcd_lease_revoke(cl->etcd, lease);
		return;
	}
	cl->lease = lease;
	atomic_store_explicit(&cl->serve_until_ms, t + CL_FENCE_MS, memory_order_release);
	cl->last_renew_ms = now_ms();
	cl->next_keepalive_ms = cl->last_renew_ms + CL_KEEPALIVE_MS;
	rmq_diagf(RMQ_DIAG_INFO, "cluster: node %s joined as %s (lease %llx)", cl->id, addr,
		  (unsigned long long)lease);
}

static void keepalive(struct cluster *cl)
{
	uint64_t t = now_ms();
	if (!cl->lease || t < cl->next_keepalive_ms)
		return;
	int64_t ttl = 0;
	int rc = rmq_etcd_lease_keepalive(cl->etcd, cl->lease, &ttl);
	cl->next_keepalive_ms = now_ms() + (rc == 0 ? CL_KEEPALIVE_MS : 200);
	if (rc == 0 && ttl > 0) {
		cl->last_renew_ms = t; /* the renewal happened after t */
		atomic_store_explicit(&cl->serve_until_ms, t + CL_FENCE_MS, memory_order_release);
		return;
	}
	if (rc == 0) { /* expired: gone for good */
		rmq_diagf(RMQ_DIAG_WARN, "cluster: lease expired; joining again");
		cl->lease = 0;
		atomic_store_explicit(&cl->serve_until_ms, 0, memory_order_release);
	}
}

/* Spreads every slot over the live nodes, ranges in id order. */
static void initial_map(struct cluster *cl, const struct cl_map *live)
{
	struct cl_map *m = rmq__cluster_map_new();
	int order[CL_MAX_NODES], n = 0;
	for (unsigned i = 0; i < live->nnodes; i++)
		if (!live->nodes[i].failed)
			order[n++] = (int)i;
	if (!n) {
		free(m);
		return;
	}
	for (int i = 1; i < n; i++) /* insertion sort by id */
		for (int k = i;
		     k > 0 && strcmp(live->nodes[order[k - 1]].id, live->nodes[order[k]].id) > 0;
		     k--) {
			int x = order[k];
			order[k] = order[k - 1];
			order[k - 1] = x;
		}
	for (int i = 0; i < n; i++)
		m->nodes[i] = live->nodes[order[i]];
	m->nnodes = (unsigned)n;
	for (int s = 0; s < RMQ_SLOTS; s++)
		m->owner[s] = (uint16_t)((long)s * n / RMQ_SLOTS);
	m->epoch = 1;
	char *text = rmq__cluster_map_json(m);
	char key[512];
	key_of(cl, key, sizeof(key), "slotmap");
	if (text && rmq_etcd_put_if(cl->etcd, key, text, strlen(text), 0, RMQ_ETCD_CREATE, 0) == 1)
		rmq_diagf(RMQ_DIAG_INFO, "cluster: first slot map: 16384 slots over %d nodes", n);
	free(text);
	free(m);
}

/* etcd cannot be read (nor, then, the lease renewed): once the lease may
 * be about to expire, the map last read is published again with this
 * node fenced, so that CLUSTER INFO and the others' view agree with what
 * the workers already refuse (serve_until_ms). */
static void fence_unreachable(struct cluster *cl)
{
	if (cl->fenced || (cl->lease && now_ms() - cl->last_renew_ms < CL_FENCE_MS))
		return;
	const struct cl_map *cur = atomic_load_explicit(&cl->srv->cmap, memory_order_relaxed);
	struct cl_map *m = rmq__cluster_map_new();
	if (cur)
		memcpy(m, cur, sizeof(*m));
	m->fenced = true;
	cl->fenced = true;
	rmq_diagf(RMQ_DIAG_WARN, "cluster: no lease for %d ms: this node stops serving its slots",
		  CL_FENCE_MS);
	publish(cl, m);
}

/* One look at etcd: membership, controller, slot map. */
static void poll_once(struct cluster *cl)
{
	struct rmq_etcd_range r;
	if (rmq_etcd_range(cl->etcd, cl->prefix, &r) != 0) {
		rmq_etcd_range_free(&r);
		fence_unreachable(cl);
		return;
	}
	size_t plen = strlen(cl->prefix);
	const struct rmq_etcd_kv *map_kv = NULL, *ctl_kv = NULL;
	for (size_t i = 0; i < r.n; i++) {
		const char *k = r.kvs[i].key + plen;
		if (!strcmp(k, "slotmap"))
			map_kv = &r.kvs[i];
		else if (!strcmp(k, "controller"))
			ctl_kv = &r.kvs[i];
	}
	/* the controller: ours if nobody has it */
	if (!ctl_kv && cl->lease) {
		char key[512];
		key_of(cl, key, sizeof(key), "controller");
		if (rmq_etcd_put_if(cl->etcd, key, cl->id, CL_ID_LEN, cl->lease, RMQ_ETCD_CREATE,
				    0) == 1) {
			cl->controller_since_ms = now_ms();
			rmq_diagf(RMQ_DIAG_INFO, "cluster: this node is the controller");
		}
	}
	bool controller = ctl_kv && ctl_kv->value_len == CL_ID_LEN &&
			  !memcmp(ctl_kv->value, cl->id, CL_ID_LEN);
	if (controller && !cl->controller_since_ms)
		cl->controller_since_ms = now_ms();
	if (!controller && ctl_kv)
		cl->controller_since_ms = 0;

	struct cl_map *m = rmq__cluster_map_new();
	if (map_kv && !rmq__cluster_map_parse(map_kv->value, map_kv->value_len, m))
		rmq_diagf(RMQ_DIAG_WARN,
			  "cluster: the slot map in etcd is malformed (parts ignored)");
	m->map_rev = map_kv ? map_kv->mod_rev : 0;
	unsigned live = 0;
	for (size_t i = 0; i < r.n; i++) {
		const char *k = r.kvs[i].key + plen;
		if (strncmp(k, "nodes/", 6) != 0)
			continue;
		int n = node_add(m, k + 6, r.kvs[i].value);
		if (n >= 0) {
			m->nodes[n].failed = false;
			/* the live key has the address now in use */
			(void)parse_addr(r.kvs[i].value, &m->nodes[n]);
			live++;
		}
	}
	m->self = node_find(m, cl->id);
	bool fenced = !cl->lease || now_ms() - cl->last_renew_ms >= CL_FENCE_MS;
	if (fenced != cl->fenced)
		rmq_diagf(fenced ? RMQ_DIAG_WARN : RMQ_DIAG_INFO,
			  fenced ? "cluster: no lease for %d ms: this node stops serving its slots"
				 : "cluster: lease back: serving again",
			  CL_FENCE_MS);
	cl->fenced = fenced;
	m->fenced = fenced;
	if (controller && !map_kv &&
	    ((cl->expect && live >= cl->expect) ||
	     now_ms() - cl->controller_since_ms >= CL_SETTLE_MS))
		initial_map(cl, m);

	/* only this thread stores it */
	const struct cl_map *cur = atomic_load_explicit(&cl->srv->cmap, memory_order_relaxed);
	bool same = cur && cur->map_rev == m->map_rev && cur->fenced == m->fenced &&
		    cur->nnodes == m->nnodes && cur->self == m->self;
	for (unsigned i = 0; same && i < m->nnodes; i++)
		same = !strcmp(cur->nodes[i].id, m->nodes[i].id) &&
		       cur->nodes[i].failed == m->nodes[i].failed &&
		       cur->nodes[i].port == m->nodes[i].port &&
		       !strcmp(cur->nodes[i].host, m->nodes[i].host);
	if (same)
		free(m);
	else
		publish(cl, m);
	rmq_etcd_range_free(&r);
}

static void *cluster_main(void *arg)
{
	struct cluster *cl = arg;
	pthread_setname_np(pthread_self(), "rmq-cluster");
	for (;;) {
		if (!cl->lease)
			join(cl);
		keepalive(cl);
		poll_once(cl);
		struct pollfd p = { .fd = cl->stop_pipe[0], .events = POLLIN };
		if (poll(&p, 1, CL_POLL_MS) > 0)
			break;
	}
	/* leave at once rather than after the TTL: slots of a node stopped
	 * on purpose go down now, and come back when it restarts */
	if (cl->lease)
		(void)rmq_etcd_lease_revoke(cl->etcd, cl->lease);
	return NULL;
}

int rmq__cluster_start(struct server *srv)
{
	const struct rmq_server_config *cfg = &srv->cfg;
	struct cluster *cl = rmq_calloc(1, sizeof(*cl));
	cl->srv = srv;
	cl->stop_pipe[0] = cl->stop_pipe[1] = -1;
	cl->expect = cfg->cluster_expect;
	snprintf(cl->prefix, sizeof(cl->prefix), "/ringmq/%s/",
		 cfg->cluster_name && *cfg->cluster_name ? cfg->cluster_name : "ringmq");
	const char *ann = cfg->announce && *cfg->announce ? cfg->announce : NULL;
	struct cl_node n;
	if (ann) {
		if (!parse_addr(ann, &n)) {
			fprintf(stderr, "ringmq-server: --announce %s: expected HOST:PORT\n", ann);
			free(cl);
			return -EINVAL;
		}
	} else {
		const char *b = cfg->bind;
		snprintf(n.host, sizeof(n.host), "%s",
			 !strcmp(b, "0.0.0.0") || !strcmp(b, "::") || !strcmp(b, "localhost")
				 ? "127.0.0.1"
				 : b);
		n.port = srv->port;
	}
	memcpy(cl->host, n.host, sizeof(cl->host));
	cl->port = n.port;
	int rc = load_id(cl, cfg->dir);
	if (rc == 0 && pipe2(cl->stop_pipe, O_CLOEXEC) != 0)
		rc = -errno;
	if (rc == 0) {
		rmq_etcd_global_init();
		cl->etcd = rmq_etcd_new(cfg->cluster_etcd, CL_ETCD_TIMEOUT_MS);
		if (!cl->etcd) {
			fprintf(stderr, "ringmq-server: --cluster-etcd %s: expected URL[,URL...]\n",
				cfg->cluster_etcd);
			rc = -EINVAL;
		}
	}
	if (rc == 0) {
		/* an empty map until etcd answers: every slot -CLUSTERDOWN */
		struct cl_map *m = rmq__cluster_map_new();
		m->fenced = true;
		atomic_store_explicit(&srv->cmap, m, memory_order_relaxed); /* before the workers */
		srv->cluster = cl;
		rmq__migrate_init(srv);
		rc = -pthread_create(&cl->th, NULL, cluster_main, cl);
		if (rc) {
			rmq__migrate_stop(srv);
			srv->cluster = NULL;
			free(m);
			atomic_store_explicit(&srv->cmap, NULL, memory_order_relaxed);
		}
	}
	if (rc) {
		rmq_etcd_free(cl->etcd);
		if (cl->stop_pipe[0] >= 0) {
			close(cl->stop_pipe[0]);
			close(cl->stop_pipe[1]);
		}
		free(cl);
		return rc;
	}
	rmq_diagf(RMQ_DIAG_INFO, "cluster: node %s, announced as %s:%d, etcd %s, prefix %s", cl->id,
		  cl->host, cl->port, cfg->cluster_etcd, cl->prefix);
	return 0;
}

void rmq__cluster_stop(struct server *srv)
{
	struct cluster *cl = srv->cluster;
	if (!cl)
		return;
	rmq__migrate_stop(srv);
	char one = 1;
	if (write(cl->stop_pipe[1], &one, 1) != 1)
		rmq_diagf(RMQ_DIAG_WARN, "cluster: cannot signal the cluster thread");
	pthread_join(cl->th, NULL);
	close(cl->stop_pipe[0]);
	close(cl->stop_pipe[1]);
	rmq_etcd_free(cl->etcd);
	free(cl);
	srv->cluster = NULL;
}

void rmq__cluster_fini(struct server *srv)
{
	free(atomic_load_explicit(&srv->cmap, memory_order_relaxed));
	atomic_store_explicit(&srv->cmap, NULL, memory_order_relaxed);
}

const char *rmq__cluster_id(const struct server *srv)
{
	return srv->cluster ? srv->cluster->id : NULL;
}

/* --- routing (workers) --- */

/* The map workers apply: valid until the caller's next quiescent state
 * (the cluster thread frees a replaced one after a grace period). */
static const struct cl_map *map_of(struct server *srv)
{
	return atomic_load_explicit(&srv->cmap, memory_order_acquire);
}

/* This node may serve its own slots under map m: not fenced, and its
 * lease renewed less than CL_FENCE_MS ago (serve_until_ms). */
static bool lease_valid(struct server *srv, const struct cl_map *m)
{
	return !m->fenced &&
	       now_ms() < atomic_load_explicit(&srv->cluster->serve_until_ms, memory_order_acquire);
}

/* Writes the redirection or refusal for slot under map m, or returns false
 * when this node serves it. */
static bool redirect(struct conn *c, const struct cl_map *m, unsigned slot)
{
	struct server *srv = c->worker->srv;
	unsigned o = m->owner[slot];
	uint8_t st = atomic_load_explicit(&srv->slot_mig[slot], memory_order_acquire);
	/* moved here, the map not applied yet: for ASKING clients (Redis) */
	if (st == MIG_IMPORTED && c->asking && (int)o != m->self)
		return false;
	if (o == CL_NONE || m->nodes[o].failed || ((int)o == m->self && !lease_valid(srv, m))) {
		rmq_resp_errorf(&c->out, "CLUSTERDOWN Hash slot %u not served", slot);
		return true;
	}
	if ((int)o == m->self) {
		if (st == MIG_FROZEN) {
			rmq_resp_errorf(&c->out, "TRYAGAIN Slot %u is being moved, try again",
					slot);
			return true;
		}
		if (st == MIG_ASK) {
			rmq_resp_errorf(&c->out, "ASK %u %s", slot,
					srv->mig_addrs[atomic_load_explicit(&srv->slot_ask[slot],
									    memory_order_relaxed)]);
			return true;
		}
		return false;
	}
	rmq_resp_errorf(&c->out, "MOVED %u %s:%d", slot, m->nodes[o].host, m->nodes[o].port);
	return true;
}

bool rmq__cluster_redirect(struct conn *c, const struct rmq_arg *keys, size_t n)
{
	if (!n)
		return false;
	unsigned slot = rmq_slot(keys[0].p, keys[0].len);
	for (size_t i = 1; i < n; i++)
		if (rmq_slot(keys[i].p, keys[i].len) != slot) {
			rmq_resp_error(&c->out,
				       "CROSSSLOT Keys in request don't hash to the same slot");
			return true;
		}
	const struct cl_map *m = map_of(c->worker->srv);
	return redirect(c, m, slot);
}

bool rmq__cluster_serves(struct server *srv, const char *topic, size_t len)
{
	const struct cl_map *m = map_of(srv);
	unsigned slot = rmq_slot(topic, len);
	unsigned o = m->owner[slot];
	return (int)o == m->self && o != CL_NONE && lease_valid(srv, m) &&
	       atomic_load_explicit(&srv->slot_mig[slot], memory_order_acquire) == MIG_NONE;
}

void rmq__cluster_created(struct server *srv, const char *topic, size_t len)
{
	atomic_fetch_add_explicit(&srv->slot_gen[rmq_slot(topic, len)], 1, memory_order_relaxed);
}

bool rmq__cluster_moved_away(struct server *srv, const char *topic, size_t len)
{
	if (!srv->cluster)
		return false;
	const struct cl_map *m = map_of(srv);
	unsigned slot = rmq_slot(topic, len);
	return atomic_load_explicit(&srv->slot_mig[slot], memory_order_acquire) == MIG_ASK ||
	       (m->self >= 0 && m->owner[slot] != CL_NONE && (int)m->owner[slot] != m->self);
}

int rmq__cluster_give_slot(struct server *srv, unsigned slot, const char *to_id,
			   const char *to_addr, const _Atomic bool *stop, char *err, size_t errlen)
{
	struct cluster *cl = srv->cluster;
	struct rmq_etcd *e = rmq_etcd_new(srv->cfg.cluster_etcd, CL_ETCD_TIMEOUT_MS * 2);
	if (!e) {
		snprintf(err, errlen, "no etcd handle");
		return -1;
	}
	char key[512];
	key_of(cl, key, sizeof(key), "slotmap");
	/* ambiguous: a compare-and-set got no answer, so it may still be
	 * applied. Only a later successful one on the same revision (the
	 * fence below) or a map showing another revision settles it: until
	 * then the slot stays frozen, however long etcd takes to answer. */
	bool ambiguous = false;
	int res = -1, refused = 0;
	snprintf(err, errlen, "the slot map kept changing");
	while (!atomic_load(stop)) {
		if (ambiguous) {
			struct timespec ts = { 0, 200 * 1000000L };
			nanosleep(&ts, NULL);
		}
		struct rmq_etcd_kv kv;
		memset(&kv, 0, sizeof(kv));
		int rc = rmq_etcd_get(e, key, &kv);
		struct cl_map *m = rmq__cluster_map_new();
		bool parsed =
			rc == 0 && kv.value && rmq__cluster_map_parse(kv.value, kv.value_len, m);
		int64_t rev = kv.mod_rev;
		if (!parsed) {
			snprintf(err, errlen, "cannot read the slot map from etcd%s",
				 rc ? "" : " (malformed)");
			rmq_etcd_kv_free(&kv);
			free(m);
			if (!ambiguous && (rc == 0 || ++refused >= 8))
				break;
			continue;
		}
		int self = node_find(m, cl->id), to = node_find(m, to_id);
		if (to >= 0 && m->owner[slot] == to) {
			res = 0; /* ours, whose answer was lost, or nobody else's */
			ambiguous = false;
		} else if (self < 0 || m->owner[slot] != self) {
			/* a newer revision: a lost compare-and-set can no longer apply */
			snprintf(err, errlen, "slot %u is not this node's in etcd any more", slot);
			ambiguous = false;
		} else if (ambiguous) {
			/* the fence: the same map again on its revision; once it is
			 * in, the lost one can never apply */
			rc = rmq_etcd_put_if(e, key, kv.value, kv.value_len, 0, RMQ_ETCD_MOD, rev);
			if (rc == 1) {
				ambiguous = false;
				snprintf(err, errlen,
					 "etcd did not answer in time: move cancelled");
			}
			rmq_etcd_kv_free(&kv);
			free(m);
			if (rc == 1)
				break;
			continue;
		} else {
			if (to < 0)
				to = node_add(m, to_id, to_addr);
			if (to < 0) {
				snprintf(err, errlen, "cannot add the target to the slot map");
			} else {
				m->owner[slot] = (uint16_t)to;
				m->epoch++;
				char *text = rmq__cluster_map_json(m);
				rc = text ? rmq_etcd_put_if(e, key, text, strlen(text), 0,
							    RMQ_ETCD_MOD, rev)
					  : -ENOMEM;
				free(text);
				rmq_etcd_kv_free(&kv);
				free(m);
				if (rc == 1) {
					res = 0;
					break;
				}
				if (rc < 0) {
					snprintf(err, errlen, "etcd: %s", strerror(-rc));
					ambiguous = true;
				} else if (++refused >= 8) {
					break;
				}
				continue;
			}
		}
		rmq_etcd_kv_free(&kv);
		free(m);
		break;
	}
	rmq_etcd_free(e);
	return ambiguous ? -2 : res;
}

/* --- CLUSTER --- */

static void err_disabled(struct conn *c)
{
	rmq_resp_error(&c->out, "ERR This instance has cluster support disabled");
}

static bool sub_is(const struct rmq_arg *a, const char *s)
{
	return a->len == strlen(s) && !strncasecmp(a->p, s, a->len);
}

/* The owner of slot first (CL_NONE: nobody) and, in *last, the end of the
 * run of slots from first that have that owner. */
static int range_at(const struct cl_map *m, int first, int *last)
{
	int o = m->owner[first], e = first;
	while (e + 1 < RMQ_SLOTS && m->owner[e + 1] == o)
		e++;
	*last = e;
	return o;
}

static size_t count_ranges(const struct cl_map *m, int node)
{
	size_t n = 0;
	for (int a = 0, b = 0; a < RMQ_SLOTS; a = b + 1) {
		int o = range_at(m, a, &b);
		if (o != (int)CL_NONE && (node < 0 || o == node))
			n++;
	}
	return n;
}

static void node_entry(struct conn *c, const struct cl_map *m, int o)
{
	rmq_resp_array(&c->out, 3);
	rmq_resp_bulkstr(&c->out, m->nodes[o].host);
	rmq_resp_int(&c->out, m->nodes[o].port);
	rmq_resp_bulkstr(&c->out, m->nodes[o].id);
}

static void cluster_slots(struct conn *c, const struct cl_map *m)
{
	rmq_resp_array(&c->out, count_ranges(m, -1));
	for (int a = 0, b = 0; a < RMQ_SLOTS; a = b + 1) {
		int o = range_at(m, a, &b);
		if (o == (int)CL_NONE)
			continue;
		rmq_resp_array(&c->out, 3);
		rmq_resp_int(&c->out, a);
		rmq_resp_int(&c->out, b);
		node_entry(c, m, o);
	}
}

static void cluster_shards(struct conn *c, const struct cl_map *m)
{
	rmq_resp_array(&c->out, m->nnodes);
	for (unsigned i = 0; i < m->nnodes; i++) {
		const struct cl_node *n = &m->nodes[i];
		reply_map(c, 2);
		rmq_resp_bulkstr(&c->out, "slots");
		rmq_resp_array(&c->out, 2 * count_ranges(m, (int)i));
		for (int a = 0, b = 0; a < RMQ_SLOTS; a = b + 1) {
			if (range_at(m, a, &b) != (int)i)
				continue;
			rmq_resp_int(&c->out, a);
			rmq_resp_int(&c->out, b);
		}
		rmq_resp_bulkstr(&c->out, "nodes");
		rmq_resp_array(&c->out, 1);
		reply_map(c, 8);
		rmq_resp_bulkstr(&c->out, "id");
		rmq_resp_bulkstr(&c->out, n->id);
		rmq_resp_bulkstr(&c->out, "port");
		rmq_resp_int(&c->out, n->port);
		rmq_resp_bulkstr(&c->out, "ip");
		rmq_resp_bulkstr(&c->out, n->host);
		rmq_resp_bulkstr(&c->out, "endpoint");
		rmq_resp_bulkstr(&c->out, n->host);
		rmq_resp_bulkstr(&c->out, "role");
		rmq_resp_bulkstr(&c->out, "master");
		rmq_resp_bulkstr(&c->out, "replication-offset");
		rmq_resp_int(&c->out, 0);
		rmq_resp_bulkstr(&c->out, "health");
		rmq_resp_bulkstr(&c->out, n->failed ? "fail" : "online");
		rmq_resp_bulkstr(&c->out, "hostname");
		rmq_resp_bulkstr(&c->out, "");
	}
}

static void cluster_nodes(struct conn *c, const struct cl_map *m)
{
	struct rmq_buf b = { 0 };
	rmq_buf_reserve(&b, 256); /* data is never NULL, even with no node */
	for (unsigned i = 0; i < m->nnodes; i++) {
		const struct cl_node *n = &m->nodes[i];
		char line[256];
		int k = snprintf(line, sizeof(line), "%s %s:%d@%d %s%s%s - 0 0 %llu connected",
				 n->id, n->host, n->port, n->port + 10000,
				 (int)i == m->self ? "myself," : "", "master",
				 n->failed ? ",fail" : "", (unsigned long long)m->epoch);
		rmq_buf_append(&b, line, (size_t)k);
		for (int a = 0, e = 0; a < RMQ_SLOTS; a = e + 1) {
			if (range_at(m, a, &e) != (int)i)
				continue;
			k = a == e ? snprintf(line, sizeof(line), " %d", a)
				   : snprintf(line, sizeof(line), " %d-%d", a, e);
			rmq_buf_append(&b, line, (size_t)k);
		}
		rmq_buf_append(&b, "\n", 1);
	}
	rmq_resp_bulk(&c->out, b.data + b.off, b.len - b.off);
	rmq_buf_free(&b);
}

static void cluster_info(struct conn *c, const struct cl_map *m)
{
	unsigned assigned = 0, ok = 0, fail = 0;
	for (int s = 0; s < RMQ_SLOTS; s++) {
		unsigned o = m->owner[s];
		if (o == CL_NONE)
			continue;
		assigned++;
		if (m->nodes[o].failed || ((int)o == m->self && m->fenced))
			fail++;
		else
			ok++;
	}
	unsigned size = 0;
	for (unsigned i = 0; i < m->nnodes; i++)
		size += count_ranges(m, (int)i) > 0;
	char text[1024];
	int k = snprintf(text, sizeof(text),
			 "cluster_enabled:1\r\n"
			 "cluster_state:%s\r\n"
			 "cluster_slots_assigned:%u\r\n"
			 "cluster_slots_ok:%u\r\n"
			 "cluster_slots_pfail:0\r\n"
			 "cluster_slots_fail:%u\r\n"
			 "cluster_known_nodes:%u\r\n"
			 "cluster_size:%u\r\n"
			 "cluster_current_epoch:%llu\r\n"
			 "cluster_my_epoch:%llu\r\n",
			 ok == RMQ_SLOTS ? "ok" : "fail", assigned, ok, fail, m->nnodes, size,
			 (unsigned long long)m->epoch, (unsigned long long)m->epoch);
	rmq_resp_bulk(&c->out, text, (size_t)k);
}

/* Topics of this node in a slot (rmq_broker_foreach's walk). */
struct slot_count {
	unsigned slot;
	uint64_t n;
};

static void count_topic(struct rmq_topic *t, void *arg)
{
	struct slot_count *sc = arg;
	if (rmq_slot(t->name, t->name_len) == sc->slot)
		sc->n++;
}

static void count_slots(struct rmq_topic *t, void *arg)
{
	uint32_t *n = arg;
	n[rmq_slot(t->name, t->name_len)]++;
}

/* CLUSTER SLOT-STATS SLOTSRANGE first last (Redis 8's form, key-count
 * only): [slot, {key-count: n}] for each slot in the range that this node
 * owns or holds topics in (whoever owns it: a topic left behind by a
 * change of owner shows too). One walk of the topics for the range, which
 * is what ringmq-cluster asks before it moves slots. */
static void slot_stats(struct conn *c, struct server *srv, const struct cl_map *m,
		       const struct rmq_arg *fa, const struct rmq_arg *la)
{
	uint64_t first, last;
	if (rmq_parse_u64(fa->p, fa->len, 0, &first) != 0 ||
	    rmq_parse_u64(la->p, la->len, 0, &last) != 0 || first > last || last >= RMQ_SLOTS)
		return rmq_resp_error(&c->out, "ERR Invalid slot range");
	uint32_t *n = rmq_calloc(RMQ_SLOTS, sizeof(*n));
	rmq_broker_foreach(srv->broker, count_slots, n);
	size_t k = 0;
	for (uint64_t s = first; s <= last; s++)
		k += n[s] || (int)m->owner[s] == m->self;
	rmq_resp_array(&c->out, k);
	for (uint64_t s = first; s <= last; s++) {
		if (!n[s] && (int)m->owner[s] != m->self)
			continue;
		rmq_resp_array(&c->out, 2);
		rmq_resp_int(&c->out, (int64_t)s);
		reply_map(c, 1);
		rmq_resp_bulkstr(&c->out, "key-count");
		rmq_resp_int(&c->out, n[s]);
	}
	free(n);
}

void rmq__cmd_cluster(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	const struct rmq_arg *sub = &argv[1];
	if (sub_is(sub, "KEYSLOT")) {
		if (argc != 3)
			return rmq_resp_error(
				&c->out,
				"ERR wrong number of arguments for 'cluster|keyslot' command");
		return rmq_resp_int(&c->out, rmq_slot(argv[2].p, argv[2].len));
	}
	if (!srv->cluster)
		return err_disabled(c);
	const struct cl_map *m = map_of(srv);
	if (sub_is(sub, "MYID") && argc == 2)
		return rmq_resp_bulkstr(&c->out, srv->cluster->id);
	if (sub_is(sub, "SLOTS") && argc == 2)
		return cluster_slots(c, m);
	if (sub_is(sub, "SHARDS") && argc == 2)
		return cluster_shards(c, m);
	if (sub_is(sub, "NODES") && argc == 2)
		return cluster_nodes(c, m);
	if (sub_is(sub, "INFO") && argc == 2)
		return cluster_info(c, m);
	if (sub_is(sub, "SLOT-STATS") && argc == 5 && sub_is(&argv[2], "SLOTSRANGE"))
		return slot_stats(c, srv, m, &argv[3], &argv[4]);
	if (sub_is(sub, "COUNTKEYSINSLOT") && argc == 3) {
		uint64_t slot;
		if (rmq_parse_u64(argv[2].p, argv[2].len, 0, &slot) != 0 || slot >= RMQ_SLOTS)
			return rmq_resp_error(&c->out, "ERR Invalid slot");
		struct slot_count sc = { (unsigned)slot, 0 };
		rmq_broker_foreach(srv->broker, count_topic, &sc);
		return rmq_resp_int(&c->out, (int64_t)sc.n);
	}
	rmq_resp_errorf(
		&c->out,
		"ERR unknown subcommand or wrong number of arguments for '%.*s'. Try KEYSLOT, MYID, SLOTS, SHARDS, NODES, INFO, COUNTKEYSINSLOT, SLOT-STATS.",
		(int)(sub->len > 64 ? 64 : sub->len), sub->p);
}

void rmq__cmd_readonly(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (!c->worker->srv->cluster)
		return err_disabled(c);
	rmq_resp_simple(&c->out, "OK"); /* no replicas yet: reads go to owners */
}
