/* cluster_main.c - ringmq-cluster: looks at and changes a ringmq cluster's
 * slot map in etcd (README "Cluster").
 *
 *   ringmq-cluster [--etcd URL[,URL]] [--name NAME] status
 *   ringmq-cluster ... move FIRST[-LAST] NODE      NODE: its id or HOST:PORT
 *   ringmq-cluster ... rebalance                   even spread over live nodes
 *
 *   ringmq-cluster ... drain NODE                  its slots to the other live nodes
 *
 * Before a change it asks every node (CLUSTER SLOT-STATS) which slots hold
 * topics. Those are moved live, one at a time, by their owner
 * (SLOTMIGRATE, net/migrate.c: data, positions, then the map); it refuses,
 * naming the slots, if an owner cannot be asked (failed): nothing is ever
 * dropped silently. Slots without topics change owner with one
 * compare-and-set of
 * the map on its etcd revision (a concurrent change makes it fail, and it
 * is retried from the new map). Right after it, the old owners are asked
 * again: a topic created in a moved slot in the meantime (before the old
 * owner applied the new map) makes the tool give those slots back, so the
 * topic stays served where its data is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "etcd.h"
#include "internal.h"
#include "slot.h"

#define CAS_TRIES 5

static const char *etcd_urls = "http://127.0.0.1:2379";
static const char *auth_user, *auth_pass; /* --user/--pass: for SLOTMIGRATE */
static bool live_moves = true;            /* --empty-only: false (drain: always) */
static const char *cluster_name = "ringmq";
static char prefix[256];

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ringmq-cluster [--etcd URL[,URL...]] [--name NAME] COMMAND\n"
		"\n"
		"Commands:\n"
		"  status                 nodes (live or failed), their slots, the map's epoch\n"
		"  move FIRST[-LAST] NODE give slots FIRST..LAST to NODE (its id or HOST:PORT);\n"
		"                         slots with topics move live, with their data\n"
		"  rebalance              spread the slots evenly over the live nodes\n"
		"  drain NODE             move all of NODE's slots to the other live nodes\n"
		"\n"
		"Options:\n"
		"  --etcd URLS            etcd endpoints (default http://127.0.0.1:2379)\n"
		"  --name NAME            the cluster's --cluster-name (default ringmq)\n"
		"  --empty-only           move and rebalance refuse slots that hold topics\n"
		"                         (by default they move them live, with their data;\n"
		"                         drain always does); --live: the default\n"
		"  --user U --pass P      ACL user (@admin) for the nodes, when they have ACLs\n");
}

/* The map (nodes of the map, then live ones; failed set by liveness) and
 * its etcd revision. */
struct state {
	struct cl_map *m;
	int64_t rev;
	char controller[CL_ID_LEN + 1];
};

static int load(struct rmq_etcd *e, struct state *st)
{
	struct rmq_etcd_range r;
	int rc = rmq_etcd_range(e, prefix, &r);
	if (rc) {
		fprintf(stderr, "ringmq-cluster: cannot read etcd at %s: %s\n", etcd_urls,
			strerror(-rc));
		rmq_etcd_range_free(&r);
		return rc;
	}
	st->m = rmq__cluster_map_new();
	st->rev = 0;
	st->controller[0] = '\0';
	size_t plen = strlen(prefix);
	for (size_t i = 0; i < r.n; i++) {
		const char *k = r.kvs[i].key + plen;
		if (!strcmp(k, "slotmap")) {
			if (!rmq__cluster_map_parse(r.kvs[i].value, r.kvs[i].value_len, st->m))
				fprintf(stderr,
					"ringmq-cluster: warning: the slot map is malformed\n");
			st->rev = r.kvs[i].mod_rev;
		} else if (!strcmp(k, "controller")) {
			snprintf(st->controller, sizeof(st->controller), "%s", r.kvs[i].value);
		}
	}
	for (size_t i = 0; i < r.n; i++) {
		const char *k = r.kvs[i].key + plen;
		if (strncmp(k, "nodes/", 6) != 0)
			continue;
		struct cl_map *m = st->m;
		int n = -1;
		for (unsigned j = 0; j < m->nnodes; j++)
			if (!strcmp(m->nodes[j].id, k + 6))
				n = (int)j;
		if (n < 0 && m->nnodes < CL_MAX_NODES && strlen(k + 6) == CL_ID_LEN) {
			n = (int)m->nnodes++;
			memcpy(m->nodes[n].id, k + 6, CL_ID_LEN + 1);
		}
		if (n < 0)
			continue;
		const char *colon = strrchr(r.kvs[i].value, ':');
		if (colon && (size_t)(colon - r.kvs[i].value) < CL_HOST_MAX) {
			memcpy(m->nodes[n].host, r.kvs[i].value, (size_t)(colon - r.kvs[i].value));
			m->nodes[n].host[colon - r.kvs[i].value] = '\0';
			m->nodes[n].port = (int)strtol(colon + 1, NULL, 10);
		}
		m->nodes[n].failed = false;
	}
	rmq_etcd_range_free(&r);
	return 0;
}

static unsigned slots_of(const struct cl_map *m, unsigned node)
{
	unsigned n = 0;
	for (int s = 0; s < RMQ_SLOTS; s++)
		n += m->owner[s] == node;
	return n;
}

static int cmd_status(struct state *st)
{
	const struct cl_map *m = st->m;
	printf("cluster %s: epoch %llu, %u nodes, controller %s\n", cluster_name,
	       (unsigned long long)m->epoch, m->nnodes,
	       st->controller[0] ? st->controller : "none");
	if (!st->rev)
		printf("no slot map yet (the controller writes the first once the nodes are up)\n");
	unsigned unassigned = 0;
	for (int s = 0; s < RMQ_SLOTS; s++)
		unassigned += m->owner[s] == CL_NONE;
	for (unsigned i = 0; i < m->nnodes; i++) {
		const struct cl_node *n = &m->nodes[i];
		printf("%s %s:%d %-6s %5u slots", n->id, n->host, n->port,
		       n->failed ? "FAILED" : "live", slots_of(m, i));
		for (int a = 0; a < RMQ_SLOTS;) {
			int b = a;
			while (b + 1 < RMQ_SLOTS && m->owner[b + 1] == m->owner[a])
				b++;
			if (m->owner[a] == i)
				printf(a == b ? " %d" : " %d-%d", a, b);
			a = b + 1;
		}
		printf("\n");
	}
	if (unassigned)
		printf("%u slots unassigned\n", unassigned);
	return 0;
}

static redisContext *node_connect(const struct cl_node *n)
{
	struct timeval tv = { 10, 0 };
	redisContext *c = redisConnectWithTimeout(n->host, n->port, tv);
	if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
		fprintf(stderr, "ringmq-cluster: %s:%d: %s\n", n->host, n->port,
			c ? c->errstr : "cannot connect");
		if (c)
			redisFree(c);
		return NULL;
	}
	if (auth_user) {
		redisReply *r = redisCommand(c, "AUTH %s %s", auth_user, auth_pass);
		bool ok = r && r->type == REDIS_REPLY_STATUS;
		if (!ok)
			fprintf(stderr, "ringmq-cluster: %s:%d: AUTH: %s\n", n->host, n->port,
				r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
		if (r)
			freeReplyObject(r);
		if (!ok) {
			redisFree(c);
			return NULL;
		}
	}
	return c;
}

/* Topics in each slot marked in want[] on its owner into count[] (one
 * CLUSTER SLOT-STATS SLOTSRANGE 0 16383 per node: one walk of its
 * topics); -1 for a slot whose owner cannot be asked. Every node that can
 * be reached is asked, owner or not (a topic it holds counts), unless
 * owners_only: then only what each slot's owner in m holds counts. */
static void count_topics(const struct cl_map *m, const bool *want, long long *count,
			 bool owners_only)
{
	for (int s = 0; s < RMQ_SLOTS; s++)
		count[s] = want[s] ? 0 : count[s];
	for (unsigned i = 0; i < m->nnodes; i++) {
		const struct cl_node *n = &m->nodes[i];
		redisContext *c = n->failed ? NULL : node_connect(n);
		redisReply *r = NULL;
		if (c)
			r = redisCommand(c, "CLUSTER SLOT-STATS SLOTSRANGE 0 16383");
		if (!r || r->type != REDIS_REPLY_ARRAY) {
			for (int s = 0; s < RMQ_SLOTS; s++)
				if (want[s] && m->owner[s] == i)
					count[s] = -1;
			if (c) /* (node_connect said why it could not) */
				fprintf(stderr, "ringmq-cluster: %s:%d: %s\n", n->host, n->port,
					r ? (r->type == REDIS_REPLY_ERROR ? r->str : "bad reply")
					  : "no answer");
		}
		for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
			const redisReply *e = r->element[k];
			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
			    e->element[0]->type != REDIS_REPLY_INTEGER ||
			    e->element[1]->elements != 2 ||
			    e->element[1]->element[1]->type != REDIS_REPLY_INTEGER)
				continue;
			long long s = e->element[0]->integer,
				  v = e->element[1]->element[1]->integer;
			if (s >= 0 && s < RMQ_SLOTS && want[s] && count[s] >= 0 &&
			    (!owners_only || m->owner[s] == i))
				count[s] += v;
		}
		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
	}
}

static int find_node(const struct cl_map *m, const char *what);

/* Moves slot s live from its owner in m to node `to` (SLOTMIGRATE on the
 * owner, then its status polled until it is done). 0 or 1. */
static int migrate_slot(const struct cl_map *m, int s, unsigned to)
{
	const struct cl_node *from = &m->nodes[m->owner[s]], *dst = &m->nodes[to];
	redisContext *c = node_connect(from);
	if (!c)
		return 1;
	redisReply *r = auth_user ? redisCommand(c, "SLOTMIGRATE %d %s AUTH %s %s", s, dst->id,
						 auth_user, auth_pass)
				  : redisCommand(c, "SLOTMIGRATE %d %s", s, dst->id);
	int rc = 1;
	if (!r || r->type != REDIS_REPLY_STATUS) {
		fprintf(stderr, "ringmq-cluster: slot %d: %s:%d: %s\n", s, from->host, from->port,
			r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
		goto out;
	}
	for (int i = 0; i < 60000; i++) { /* 10 ms apart: 10 minutes at most */
		freeReplyObject(r);
		r = redisCommand(c, "SLOTMIGRATE STATUS");
		if (!r || r->type != REDIS_REPLY_STRING)
			break;
		if (!strncmp(r->str, "ok ", 3)) {
			printf("slot %d: %s:%d -> %s:%d: %s\n", s, from->host, from->port,
			       dst->host, dst->port, r->str + 3);
			rc = 0;
			goto out;
		}
		if (!strncmp(r->str, "err ", 4)) {
			fprintf(stderr, "ringmq-cluster: %s (nothing changed)\n", r->str + 4);
			goto out;
		}
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "ringmq-cluster: slot %d: lost track of the move on %s:%d\n", s, from->host,
		from->port);
out:
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return rc;
}

/* Applies new owners (target[s]: an index in ref's nodes, CL_NONE:
 * unchanged) to the current map: slots with topics moved live by their
 * owners, then the others by one compare-and-set. */
static int apply(struct rmq_etcd *e, const struct cl_map *ref, const uint16_t *target)
{
	unsigned migrations = 0, migrated = 0;
	for (int attempt = 0; attempt < CAS_TRIES; attempt++) {
		struct state st;
		if (load(e, &st) != 0)
			return 1;
		struct cl_map *m = st.m;
		if (!st.rev) {
			fprintf(stderr, "ringmq-cluster: no slot map yet\n");
			free(m);
			return 1;
		}
		static bool want[RMQ_SLOTS];
		static long long count[RMQ_SLOTS];
		unsigned moving = 0;
		int idx[CL_MAX_NODES];
		for (unsigned i = 0; i < CL_MAX_NODES; i++)
			idx[i] = i < ref->nnodes ? find_node(m, ref->nodes[i].id) : -1;
		static uint16_t to[RMQ_SLOTS];
		for (int s = 0; s < RMQ_SLOTS; s++) {
			to[s] = target[s] == CL_NONE || idx[target[s]] < 0
					? CL_NONE
					: (uint16_t)idx[target[s]];
			want[s] = to[s] != CL_NONE && m->owner[s] != to[s];
			count[s] = 0;
			moving += want[s];
		}
		if (!moving) {
			if (!migrated)
				printf("nothing to move\n");
			free(m);
			return 0;
		}
		count_topics(m, want, count, false);
		unsigned busy = 0, unknown = 0;
		for (int s = 0; s < RMQ_SLOTS; s++) {
			if (!want[s] || m->owner[s] == CL_NONE)
				continue;
			if (count[s] > 0 && busy++ < 20 && !live_moves)
				fprintf(stderr, "  slot %d holds %lld topics on %s:%d\n", s,
					count[s], m->nodes[m->owner[s]].host,
					m->nodes[m->owner[s]].port);
			if (count[s] < 0 && unknown++ < 20)
				fprintf(stderr, "  slot %d: its owner %s:%d cannot be asked (%s)\n",
					s, m->nodes[m->owner[s]].host, m->nodes[m->owner[s]].port,
					m->nodes[m->owner[s]].failed ? "failed" : "no answer");
		}
		if (unknown) {
			fprintf(stderr,
				"ringmq-cluster: refused: %u slots cannot be checked (their owner "
				"cannot be asked), nothing was changed\n",
				unknown);
			free(m);
			return 1;
		}
		if (busy && !live_moves) {
			fprintf(stderr,
				"ringmq-cluster: refused: %u slots hold topics (--empty-only), nothing "
				"was changed\n",
				busy);
			free(m);
			return 1;
		}
		if (busy) {
			/* with their data, one at a time; then the map is read again
			 * for the rest */
			if (++migrations > 3) {
				fprintf(stderr,
					"ringmq-cluster: topics keep appearing in moved slots\n");
				free(m);
				return 1;
			}
			for (int s = 0; s < RMQ_SLOTS; s++) {
				if (!want[s] || m->owner[s] == CL_NONE || count[s] <= 0)
					continue;
				if (migrate_slot(m, s, to[s]) != 0) {
					free(m);
					return 1;
				}
				migrated++;
			}
			free(m);
			attempt--;
			continue;
		}
		uint16_t *old = malloc(sizeof(m->owner));
		if (!old) {
			free(m);
			return 1;
		}
		memcpy(old, m->owner, sizeof(m->owner));
		for (int s = 0; s < RMQ_SLOTS; s++)
			if (want[s])
				m->owner[s] = to[s];
		m->epoch++;
		char *text = rmq__cluster_map_json(m);
		char key[512];
		snprintf(key, sizeof(key), "%sslotmap", prefix);
		int rc = text ? rmq_etcd_put_if(e, key, text, strlen(text), 0, RMQ_ETCD_MOD, st.rev)
			      : -ENOMEM;
		free(text);
		if (rc == 1) {
			/* a topic created in a moved slot before its old owner saw
			 * the new map: give that slot back (its data is there). A
			 * node that cannot be asked now is not taken for one. */
			struct cl_map *o = rmq__cluster_map_new();
			memcpy(o, m, sizeof(*o));
			memcpy(o->owner, old, sizeof(o->owner));
			count_topics(o, want, count, true);
			unsigned late = 0;
			static uint16_t back[RMQ_SLOTS];
			for (int s = 0; s < RMQ_SLOTS; s++) {
				back[s] = CL_NONE;
				if (want[s] && count[s] > 0) {
					back[s] = old[s];
					late++;
				}
			}
			printf("moved %u slots (epoch %llu)\n", moving,
			       (unsigned long long)m->epoch);
			int res = 0;
			if (late) {
				fprintf(stderr,
					"ringmq-cluster: %u slots got topics during the move: giving them back\n",
					late);
				(void)apply(e, o, back);
				res = 1;
			}
			free(o);
			free(old);
			free(m);
			return res;
		}
		free(old);
		free(m);
		if (rc < 0) {
			fprintf(stderr, "ringmq-cluster: cannot write the map: %s\n",
				strerror(-rc));
			return 1;
		}
		/* rc 0: someone changed the map meanwhile: read it again */
	}
	fprintf(stderr, "ringmq-cluster: the map kept changing; try again\n");
	return 1;
}

static int find_node(const struct cl_map *m, const char *what)
{
	for (unsigned i = 0; i < m->nnodes; i++) {
		char addr[CL_HOST_MAX + 8];
		snprintf(addr, sizeof(addr), "%s:%d", m->nodes[i].host, m->nodes[i].port);
		if (!strcmp(m->nodes[i].id, what) || !strcmp(addr, what))
			return (int)i;
	}
	return -1;
}

static int cmd_move(struct rmq_etcd *e, struct state *st, const char *range, const char *node)
{
	char *end;
	long a = strtol(range, &end, 10), b = a;
	if (*end == '-')
		b = strtol(end + 1, &end, 10);
	if (*end || end == range || a < 0 || b >= RMQ_SLOTS || a > b) {
		fprintf(stderr, "ringmq-cluster: %s: expected a slot or FIRST-LAST in 0..16383\n",
			range);
		return 2;
	}
	int n = find_node(st->m, node);
	if (n < 0 || st->m->nodes[n].failed) {
		fprintf(stderr, "ringmq-cluster: %s is not a live node of cluster %s\n", node,
			cluster_name);
		return 1;
	}
	static uint16_t target[RMQ_SLOTS];
	for (int s = 0; s < RMQ_SLOTS; s++)
		target[s] = s >= a && s <= b ? (uint16_t)n : CL_NONE;
	return apply(e, st->m, target);
}

static int cmd_drain(struct rmq_etcd *e, struct state *st, const char *node)
{
	struct cl_map *m = st->m;
	int n = find_node(m, node);
	if (n < 0) {
		fprintf(stderr, "ringmq-cluster: %s is not a node of cluster %s\n", node,
			cluster_name);
		return 1;
	}
	unsigned live[CL_MAX_NODES], nlive = 0;
	for (unsigned i = 0; i < m->nnodes; i++)
		if (!m->nodes[i].failed && (int)i != n)
			live[nlive++] = i;
	if (!nlive) {
		fprintf(stderr, "ringmq-cluster: no other live node to drain %s to\n", node);
		return 1;
	}
	/* to the others, evenly, the least loaded first */
	unsigned have[CL_MAX_NODES] = { 0 };
	for (int s = 0; s < RMQ_SLOTS; s++)
		if (m->owner[s] != CL_NONE)
			have[m->owner[s]]++;
	static uint16_t target[RMQ_SLOTS];
	for (int s = 0; s < RMQ_SLOTS; s++) {
		target[s] = CL_NONE;
		if (m->owner[s] != (unsigned)n)
			continue;
		unsigned best = live[0];
		for (unsigned k = 1; k < nlive; k++)
			if (have[live[k]] < have[best])
				best = live[k];
		target[s] = (uint16_t)best;
		have[best]++;
	}
	return apply(e, m, target);
}

static int cmd_rebalance(struct rmq_etcd *e, struct state *st)
{
	struct cl_map *m = st->m;
	unsigned live[CL_MAX_NODES], nlive = 0;
	for (unsigned i = 0; i < m->nnodes; i++)
		if (!m->nodes[i].failed)
			live[nlive++] = i;
	if (!nlive) {
		fprintf(stderr, "ringmq-cluster: no live node\n");
		return 1;
	}
	/* each live node's share; slots move from those over it (their
	 * highest first) or from failed/unassigned ones, to those under it */
	unsigned want[CL_MAX_NODES] = { 0 }, have[CL_MAX_NODES] = { 0 };
	for (unsigned k = 0; k < nlive; k++)
		want[live[k]] = RMQ_SLOTS / nlive + (k < RMQ_SLOTS % nlive);
	for (int s = 0; s < RMQ_SLOTS; s++)
		if (m->owner[s] != CL_NONE)
			have[m->owner[s]]++;
	static uint16_t target[RMQ_SLOTS];
	unsigned k = 0;
	for (int s = RMQ_SLOTS - 1; s >= 0; s--) {
		target[s] = CL_NONE;
		unsigned o = m->owner[s];
		bool give = o == CL_NONE || m->nodes[o].failed || have[o] > want[o];
		if (!give)
			continue;
		while (k < nlive && have[live[k]] >= want[live[k]])
			k++;
		if (k == nlive)
			break;
		target[s] = (uint16_t)live[k];
		have[live[k]]++;
		if (o != CL_NONE)
			have[o]--;
	}
	return apply(e, m, target);
}

int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if (i + 1 < argc && !strcmp(argv[i], "--etcd")) {
			etcd_urls = argv[++i];
		} else if (i + 1 < argc && !strcmp(argv[i], "--name")) {
			cluster_name = argv[++i];
		} else if (!strcmp(argv[i], "--live")) {
			live_moves = true;
		} else if (!strcmp(argv[i], "--empty-only")) {
			live_moves = false;
		} else if (i + 1 < argc && !strcmp(argv[i], "--user")) {
			auth_user = argv[++i];
		} else if (i + 1 < argc && !strcmp(argv[i], "--pass")) {
			auth_pass = argv[++i];
		} else {
			fprintf(stderr, "ringmq-cluster: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	snprintf(prefix, sizeof(prefix), "/ringmq/%s/", cluster_name);
	if (auth_user && !auth_pass)
		auth_pass = "";
	rmq_etcd_global_init();
	struct rmq_etcd *e = rmq_etcd_new(etcd_urls, 2000);
	if (!e) {
		fprintf(stderr, "ringmq-cluster: --etcd %s: expected URL[,URL...]\n", etcd_urls);
		return 2;
	}
	struct state st;
	int rc = load(e, &st) == 0 ? 0 : 1;
	const char *cmd = argv[i];
	if (rc == 0) {
		if (!strcmp(cmd, "status") && i + 1 == argc)
			rc = cmd_status(&st);
		else if (!strcmp(cmd, "move") && i + 3 == argc)
			rc = cmd_move(e, &st, argv[i + 1], argv[i + 2]);
		else if (!strcmp(cmd, "rebalance") && i + 1 == argc)
			rc = cmd_rebalance(e, &st);
		else if (!strcmp(cmd, "drain") && i + 2 == argc) {
			live_moves = true;
			rc = cmd_drain(e, &st, argv[i + 1]);
		} else {
			usage(stderr);
			rc = 2;
		}
		free(st.m);
	}
	rmq_etcd_free(e);
	return rc;
}
