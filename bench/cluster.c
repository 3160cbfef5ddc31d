/* cluster.c - ringmq-bench --cluster (issue 17): what a cluster of ringmq
 * nodes costs and carries, measured through the C client library in its
 * cluster mode (client/ringmq.h), against servers and an etcd started
 * here on free 127.0.0.1 ports (each server in a temporary --dir of its
 * own; everything stopped by PID and removed at the end).
 *
 *   1. aggregate publish over 1, 2, 3 nodes (--nodes): one pipelined
 *      publisher per node, each on a topic that node owns, sending through
 *      a cluster client (so every PUBLISH is routed by the client);
 *   2. aggregate fan-out over the same nodes: a publisher and --subscribers
 *      live subscribers per node's topic, delivered messages per second;
 *   3. the cost of a redirection: a fresh plain client's first PUBLISH to a
 *      node that does not own the topic (-MOVED, CLUSTER SLOTS, connection
 *      to the owner, the PUBLISH again), one PUBLISH answered -MOVED, and a
 *      routed PUBLISH of a cluster client against a plain client talking to
 *      the owner directly (round trips, one at a time);
 *   4. the routing overhead: a single node against a one-node cluster that
 *      owns every slot (each PUBLISH pays the slot check), alternated,
 *      msgs/s and the server's CPU per message.
 *
 * On a machine with fewer cores than nodes the aggregate cannot grow with
 * the nodes: the figures say what one machine's cores give. Nothing here
 * asserts a timing; medians are printed with min-max over --repeats.
 */
#define _GNU_SOURCE
#include "cluster.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "etcd_spawn.h"
#include "proc.h"
#include "procstat.h"
#include "ringmq.h"
#include "slot.h"

#define MAX_NODES 8
#define MAX_REPEATS 50
#define FANOUT_WINDOW 20000

struct copts {
	unsigned nodes[MAX_NODES];
	unsigned nnodes;
	double duration;
	unsigned repeats;
	unsigned payload;
	unsigned subs;
	unsigned samples;
	int threads;
	const char *server;
	const char *storage;
};

static pid_t etcd_pid;
static char etcd_dir[256];
static int etcd_port;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void etcd_stop(void)
{
	if (etcd_pid > 0) {
		kill(etcd_pid, SIGTERM);
		for (int i = 0; i < 100 && waitpid(etcd_pid, NULL, WNOHANG) == 0; i++)
			usleep(100000);
		if (kill(etcd_pid, 0) == 0) {
			kill(etcd_pid, SIGKILL);
			waitpid(etcd_pid, NULL, 0);
		}
		etcd_pid = 0;
	}
	if (etcd_dir[0]) {
		if (nftw(etcd_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
			fprintf(stderr, "ringmq-bench: could not remove %s\n", etcd_dir);
		etcd_dir[0] = '\0';
	}
}

static int etcd_start(void)
{
	const char *etcd = rb_find_exe("etcd");
	if (!etcd) {
		fprintf(stderr,
			"ringmq-bench: --cluster needs etcd (apt-get install etcd-server)\n");
		return -1;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(etcd_dir, sizeof(etcd_dir), "%s/ringmq-bench-etcd-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(etcd_dir)) {
		etcd_dir[0] = '\0';
		return -1;
	}
	int cport = free_port(), pport = free_port();
	pid_t pid = rmq_etcd_spawn(etcd, etcd_dir, cport, pport);
	if (pid < 0)
		return -1;
	etcd_pid = pid;
	etcd_port = cport;
	/* ready when its client port accepts */
	for (int i = 0; i < 100; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)cport),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		if (fd >= 0)
			close(fd);
		if (ok)
			return 0;
		usleep(100000);
	}
	fprintf(stderr, "ringmq-bench: etcd did not start\n");
	return -1;
}

/* --- a cluster of n nodes --- */

struct ccluster {
	struct rb_server node[MAX_NODES];
	unsigned n;
	char topic[MAX_NODES][32]; /* a topic node i owns */
};

static void cluster_stop(struct ccluster *cl)
{
	for (unsigned i = 0; i < cl->n; i++)
		rb_server_stop(&cl->node[i]);
	cl->n = 0;
}

/* CLUSTER INFO says ok on port. */
static bool node_ok(int port)
{
	struct timeval tv = { 2, 0 };
	redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
	bool ok = false;
	if (rc && !rc->err) {
		redisReply *r = redisCommand(rc, "CLUSTER INFO");
		ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
		freeReplyObject(r);
	}
	redisFree(rc);
	return ok;
}

/* slot -> port of its owner, from CLUSTER SLOTS on port. */
static int owners(int port, int *owner)
{
	struct timeval tv = { 2, 0 };
	redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
	int ret = -1;
	if (rc && !rc->err) {
		redisReply *r = redisCommand(rc, "CLUSTER SLOTS");
		if (r && r->type == REDIS_REPLY_ARRAY) {
			for (size_t k = 0; k < r->elements; k++) {
				redisReply *e = r->element[k];
				if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
				    e->element[2]->type != REDIS_REPLY_ARRAY ||
				    e->element[2]->elements < 2)
					continue;
				for (long long s = e->element[0]->integer;
				     s <= e->element[1]->integer && s < RMQ_SLOTS; s++)
					owner[s] = (int)e->element[2]->element[1]->integer;
			}
			ret = 0;
		}
		freeReplyObject(r);
	}
	redisFree(rc);
	return ret;
}

/* Starts n nodes (a fresh cluster name); n == 0: one plain server. */
static int cluster_start(struct ccluster *cl, unsigned n, const struct copts *o, const char *tag)
{
	memset(cl, 0, sizeof(*cl));
	char args[512];
	bool single = n == 0;
	if (single)
		snprintf(args, sizeof(args), "--storage %s", o->storage);
	else
		snprintf(args, sizeof(args),
			 "--storage %s --cluster-etcd http://127.0.0.1:%d --cluster-name b%d-%s "
			 "--cluster-expect %u",
			 o->storage, etcd_port, (int)getpid(), tag, n);
	unsigned count = single ? 1 : n;
	for (unsigned i = 0; i < count; i++) {
		if (rb_server_start(&cl->node[i], RB_RINGMQ, o->server, o->threads, args) != 0) {
			cluster_stop(cl);
			return -1;
		}
		cl->n = i + 1;
	}
	if (single) {
		snprintf(cl->topic[0], sizeof(cl->topic[0]), "bench-0");
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		double until = now_s() + 20;
		while (!node_ok(cl->node[i].port) && now_s() < until)
			usleep(100000);
		if (!node_ok(cl->node[i].port)) {
			fprintf(stderr, "ringmq-bench: cluster node %u did not become ready\n", i);
			cluster_stop(cl);
			return -1;
		}
	}
	static int owner[RMQ_SLOTS];
	if (owners(cl->node[0].port, owner) != 0) {
		cluster_stop(cl);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		for (int k = 0;; k++) {
			char t[32];
			snprintf(t, sizeof(t), "bench-%d", k);
			if (owner[rmq_slot(t, strlen(t))] == cl->node[i].port) {
				memcpy(cl->topic[i], t, sizeof(t));
				break;
			}
		}
	}
	return 0;
}

/* --- load --- */

struct worker {
	pthread_t th;
	int port;
	bool cluster;
	const char *topic;
	unsigned payload;
	double duration;
	_Atomic bool *stop;
	_Atomic uint64_t count; /* published (acknowledged) or delivered */
	struct worker *subs;    /* publisher: its topic's subscribers */
	unsigned nsubs;
	int err;
	char errstr[200];
};

static struct rmq_client *connect_client(struct worker *w)
{
	int st;
	struct rmq_client *c = w->cluster
				       ? rmq_client_connect_cluster("127.0.0.1", w->port, 5000, &st)
				       : rmq_client_connect("127.0.0.1", w->port, 5000, &st);
	if (st != RMQ_OK) {
		w->err = st;
		snprintf(w->errstr, sizeof(w->errstr), "%s", rmq_client_errstr(c));
		rmq_client_close(c);
		return NULL;
	}
	return c;
}

static void *pub_main(void *arg)
{
	struct worker *w = arg;
	struct rmq_client *c = connect_client(w);
	if (!c)
		return NULL;
	char *body = calloc(1, w->payload + 1);
	memset(body, 'x', w->payload);
	while (!atomic_load(w->stop)) {
		/* fan-out: at most FANOUT_WINDOW ahead of the slowest
		 * subscriber, so that none is cut off for a full buffer */
		uint64_t slowest = UINT64_MAX;
		for (unsigned k = 0; k < w->nsubs; k++)
			if (atomic_load(&w->subs[k].count) < slowest)
				slowest = atomic_load(&w->subs[k].count);
		if (w->nsubs && atomic_load(&w->count) > slowest + FANOUT_WINDOW) {
			usleep(200);
			continue;
		}
		for (int i = 0; i < 1000; i++)
			if (rmq_send_queue(c, w->topic, body, w->payload) != RMQ_OK)
				break;
		size_t n = 0;
		int st = rmq_send_flush(c, NULL, 0, &n);
		if (st != RMQ_OK) {
			w->err = st;
			snprintf(w->errstr, sizeof(w->errstr), "%s", rmq_client_errstr(c));
			break;
		}
		w->count += n;
	}
	free(body);
	rmq_client_close(c);
	return NULL;
}

static void *sub_main(void *arg)
{
	struct worker *w = arg;
	struct rmq_client *c = connect_client(w);
	if (!c)
		return NULL;
	int st = rmq_subscribe_live(c, w->topic);
	if (st != RMQ_OK) {
		w->err = st;
		snprintf(w->errstr, sizeof(w->errstr), "%s", rmq_client_errstr(c));
		rmq_client_close(c);
		return NULL;
	}
	/* until stopped and then quiet for half a second */
	for (;;) {
		struct rmq_msg *m = NULL;
		st = rmq_next_message(c, 500, &m);
		if (st == RMQ_OK) {
			w->count++;
			rmq_msg_free(m);
			continue;
		}
		if (st == RMQ_ERR_TIMEOUT && !atomic_load(w->stop))
			continue;
		if (st != RMQ_ERR_TIMEOUT) {
			w->err = st;
			snprintf(w->errstr, sizeof(w->errstr), "%s", rmq_client_errstr(c));
		}
		break;
	}
	rmq_client_close(c);
	return NULL;
}

static int create_topics(const struct ccluster *cl, unsigned n)
{
	int st;
	struct rmq_client *c = rmq_client_connect("127.0.0.1", cl->node[0].port, 5000, &st);
	for (unsigned i = 0; st == RMQ_OK && i < n; i++) {
		st = rmq_create_topic(c, cl->topic[i], NULL);
		if (st == RMQ_ERR_EXISTS)
			st = RMQ_OK;
	}
	if (st != RMQ_OK)
		fprintf(stderr, "ringmq-bench: create: %s\n", rmq_client_errstr(c));
	rmq_client_close(c);
	return st;
}

/* Runs publishers (one per topic) and subs subscribers per topic for the
 * duration; *pub_rate and *del_rate get msgs/s. *cpu_s: the servers' CPU
 * seconds over the run. */
static int run_load(const struct ccluster *cl, unsigned ntopics, bool cluster, unsigned subs,
		    const struct copts *o, double *pub_rate, double *del_rate, double *cpu_s)
{
	struct worker w[MAX_NODES * 17];
	unsigned nw = 0;
	_Atomic bool stop = false;
	for (unsigned i = 0; i < ntopics; i++)
		for (unsigned k = 0; k < subs && k < 16; k++)
			w[nw++] = (struct worker){ .port = cl->node[i].port,
						   .cluster = cluster,
						   .topic = cl->topic[i],
						   .stop = &stop };
	unsigned first_pub = nw, per = subs < 16 ? subs : 16;
	for (unsigned i = 0; i < ntopics; i++)
		w[nw++] = (struct worker){ .port = cl->node[0].port,
					   .cluster = cluster,
					   .topic = cl->topic[i],
					   .payload = o->payload,
					   .subs = per ? &w[i * per] : NULL,
					   .nsubs = per,
					   .stop = &stop };
	for (unsigned i = 0; i < first_pub; i++)
		pthread_create(&w[i].th, NULL, sub_main, &w[i]);
	if (first_pub)
		usleep(300000); /* subscribed before the first message */
	double cpu0 = 0;
	for (unsigned i = 0; i < cl->n; i++)
		cpu0 += rmq_proc_cpu_seconds(cl->node[i].pid);
	double t0 = now_s();
	for (unsigned i = first_pub; i < nw; i++)
		pthread_create(&w[i].th, NULL, pub_main, &w[i]);
	usleep((useconds_t)(o->duration * 1e6));
	atomic_store(&stop, true);
	for (unsigned i = first_pub; i < nw; i++)
		pthread_join(w[i].th, NULL);
	double dt = now_s() - t0;
	double cpu1 = 0;
	for (unsigned i = 0; i < cl->n; i++)
		cpu1 += rmq_proc_cpu_seconds(cl->node[i].pid);
	for (unsigned i = 0; i < first_pub; i++)
		pthread_join(w[i].th, NULL);
	uint64_t pub = 0, del = 0;
	int err = 0;
	for (unsigned i = 0; i < nw; i++) {
		if (w[i].err && !err) {
			err = w[i].err;
			fprintf(stderr, "ringmq-bench: %s: %s\n",
				i < first_pub ? "subscriber" : "publisher", w[i].errstr);
		}
		if (i < first_pub)
			del += w[i].count;
		else
			pub += w[i].count;
	}
	*pub_rate = (double)pub / dt;
	*del_rate = (double)del / dt;
	*cpu_s = pub ? (cpu1 - cpu0) / (double)pub : 0; /* seconds per message */
	return err;
}

/* --- statistics --- */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct stat3 {
	double med, min, max;
};

static struct stat3 stat_of(double *v, unsigned n)
{
	struct stat3 s = { 0, 0, 0 };
	if (!n)
		return s;
	qsort(v, n, sizeof(*v), cmp_d);
	s.min = v[0];
	s.max = v[n - 1];
	s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

/* --- the redirection's cost --- */

static double elapsed_us(double t0)
{
	return (now_s() - t0) * 1e6;
}

static void moved_cost(const struct ccluster *cl, const struct copts *o)
{
	unsigned n = o->samples;
	double *first = calloc(n, sizeof(double)), *moved = calloc(n, sizeof(double));
	double *routed = calloc(n, sizeof(double)), *direct = calloc(n, sizeof(double));
	/* topic of node 1, asked at node 0 */
	const char *t = cl->topic[1];
	int wrong = cl->node[0].port, right = cl->node[1].port, st;
	unsigned k1 = 0, k2 = 0, k3 = 0, k4 = 0;
	for (unsigned i = 0; i < n; i++) {
		struct rmq_client *c = rmq_client_connect("127.0.0.1", wrong, 5000, &st);
		if (st == RMQ_OK) {
			double t0 = now_s();
			if (rmq_send(c, t, "m", 1, NULL) == RMQ_OK)
				first[k1++] = elapsed_us(t0);
		}
		rmq_client_close(c);
	}
	struct timeval tv = { 5, 0 };
	redisContext *rc = redisConnectWithTimeout("127.0.0.1", wrong, tv);
	for (unsigned i = 0; rc && !rc->err && i < n; i++) {
		double t0 = now_s();
		redisReply *r = redisCommand(rc, "PUBLISH %s m", t);
		if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "MOVED ", 6))
			moved[k2++] = elapsed_us(t0);
		freeReplyObject(r);
	}
	redisFree(rc);
	struct rmq_client *c = rmq_client_connect_cluster("127.0.0.1", wrong, 5000, &st);
	struct rmq_client *d = rmq_client_connect("127.0.0.1", right, 5000, &st);
	/* alternated, so that both see the same moments of the machine */
	for (unsigned i = 0; i < n; i++) {
		double t0 = now_s();
		if (rmq_send(c, t, "m", 1, NULL) == RMQ_OK)
			routed[k3++] = elapsed_us(t0);
		t0 = now_s();
		if (rmq_send(d, t, "m", 1, NULL) == RMQ_OK)
			direct[k4++] = elapsed_us(t0);
	}
	rmq_client_close(c);
	rmq_client_close(d);
	struct stat3 a = stat_of(first, k1), b = stat_of(moved, k2), e = stat_of(routed, k3),
		     f = stat_of(direct, k4);
	printf("\nRedirection cost (%u nodes, %u samples each, one request at a time, us: median "
	       "[min-max])\n",
	       cl->n, n);
	printf("  first PUBLISH of a plain client at a non-owner (-MOVED, CLUSTER SLOTS,\n"
	       "    connect to the owner, PUBLISH again)       %9.1f [%.1f-%.1f]\n",
	       a.med, a.min, a.max);
	printf("  one PUBLISH answered -MOVED (hiredis)          %9.1f [%.1f-%.1f]\n", b.med, b.min,
	       b.max);
	printf("  routed PUBLISH of a cluster client             %9.1f [%.1f-%.1f]\n", e.med, e.min,
	       e.max);
	printf("  plain client at the owner (no routing)         %9.1f [%.1f-%.1f]\n", f.med, f.min,
	       f.max);
	free(first);
	free(moved);
	free(routed);
	free(direct);
}

/* --- options --- */

static int usage(void)
{
	fprintf(stderr,
		"Usage: ringmq-bench --cluster [--nodes LIST] [--duration S] [--repeats N]\n"
		"                    [--payload BYTES] [--subscribers K] [--samples N]\n"
		"                    [--server PATH] [--server-threads N] [--storage memory|disk]\n"
		"Starts etcd and clusters of 1, 2, 3 nodes (--nodes) on free 127.0.0.1 ports and\n"
		"reports aggregate publish and fan-out, the cost of a -MOVED against routed\n"
		"requests, and a single node against a one-node cluster (routing overhead).\n"
		"Defaults: --nodes 1,2,3 --duration 3 --repeats 3 --payload 16 --subscribers 1\n"
		"--samples 300 --server-threads 1 --storage memory.\n");
	return 2;
}

static int parse(int argc, char **argv, struct copts *o)
{
	*o = (struct copts){ .nodes = { 1, 2, 3 },
			     .nnodes = 3,
			     .duration = 3,
			     .repeats = 3,
			     .payload = 16,
			     .subs = 1,
			     .samples = 300,
			     .threads = 1,
			     .storage = "memory" };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--cluster") || !strcmp(a, "cluster"))
			continue;
		if (!v)
			return usage();
		if (!strcmp(a, "--nodes")) {
			o->nnodes = 0;
			char buf[128];
			snprintf(buf, sizeof(buf), "%s", v);
			for (char *s = NULL, *p = strtok_r(buf, ",", &s);
			     p && o->nnodes < MAX_NODES; p = strtok_r(NULL, ",", &s)) {
				unsigned long x = strtoul(p, NULL, 10);
				if (x < 1 || x > MAX_NODES)
					return usage();
				o->nodes[o->nnodes++] = (unsigned)x;
			}
		} else if (!strcmp(a, "--duration")) {
			o->duration = strtod(v, NULL);
		} else if (!strcmp(a, "--repeats")) {
			o->repeats = (unsigned)strtoul(v, NULL, 10);
		} else if (!strcmp(a, "--payload")) {
			o->payload = (unsigned)strtoul(v, NULL, 10);
		} else if (!strcmp(a, "--subscribers") || !strcmp(a, "-s")) {
			o->subs = (unsigned)strtoul(v, NULL, 10);
		} else if (!strcmp(a, "--samples")) {
			o->samples = (unsigned)strtoul(v, NULL, 10);
		} else if (!strcmp(a, "--server")) {
			o->server = v;
		} else if (!strcmp(a, "--server-threads")) {
			o->threads = (int)strtol(v, NULL, 10);
		} else if (!strcmp(a, "--storage")) {
			o->storage = v;
		} else {
			return usage();
		}
		i++;
	}
	if (o->duration <= 0 || o->repeats < 1 || o->repeats > MAX_REPEATS || o->subs > 16 ||
	    o->samples < 1 || o->payload > (1u << 20) || o->threads < 1 || !o->nnodes)
		return usage();
	static char server[4096]; /* rb_find_exe's buffer is reused */
	const char *found = o->server ? o->server : rb_find_exe("ringmq-server");
	if (found) {
		snprintf(server, sizeof(server), "%s", found);
		o->server = server;
	}
	if (!found) {
		fprintf(stderr, "ringmq-bench: ringmq-server not found (--server)\n");
		return 2;
	}
	return 0;
}

int rb_cluster_main(int argc, char **argv)
{
	struct copts o;
	int rc = parse(argc, argv, &o);
	if (rc)
		return rc;
	if (etcd_start() != 0) {
		etcd_stop();
		return 1;
	}
	printf("ringmq-bench --cluster: %u repeats of %.1f s, payload %u B, %u subscriber(s) "
	       "per topic, server --threads %d --storage %s, %ld CPUs online\n",
	       o.repeats, o.duration, o.payload, o.subs, o.threads, o.storage,
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("\nAggregate over N nodes (one publisher per node, pipelined; msgs/s: median "
	       "[min-max])\n");
	printf("  %-5s %-32s %-32s %-32s\n", "nodes", "publish (no subscribers)",
	       "fan-out: published", "fan-out: delivered");
	int err = 0;
	struct ccluster cl;
	unsigned biggest = 0;
	for (unsigned k = 0; k < o.nnodes && !err; k++) {
		unsigned n = o.nodes[k];
		char tag[16];
		snprintf(tag, sizeof(tag), "n%u", n);
		if (cluster_start(&cl, n, &o, tag) != 0 || create_topics(&cl, n) != RMQ_OK) {
			cluster_stop(&cl);
			err = 1;
			break;
		}
		double pub[MAX_REPEATS], fp[MAX_REPEATS], fd[MAX_REPEATS], d0, cpu;
		unsigned done = 0;
		for (unsigned r = 0; r < o.repeats && !err; r++) {
			err |= run_load(&cl, n, true, 0, &o, &pub[r], &d0, &cpu);
			err |= run_load(&cl, n, true, o.subs, &o, &fp[r], &fd[r], &cpu);
			done += !err;
		}
		struct stat3 a = stat_of(pub, done), b = stat_of(fp, done), c = stat_of(fd, done);
		char s1[64], s2[64], s3[64];
		snprintf(s1, sizeof(s1), "%.0f [%.0f-%.0f]", a.med, a.min, a.max);
		snprintf(s2, sizeof(s2), "%.0f [%.0f-%.0f]", b.med, b.min, b.max);
		snprintf(s3, sizeof(s3), "%.0f [%.0f-%.0f]", c.med, c.min, c.max);
		printf("  %-5u %-32s %-32s %-32s\n", n, s1, s2, s3);
		printf("  %-5s per node: publish %.0f, delivered %.0f\n", "", a.med / n, c.med / n);
		fflush(stdout);
		if (n >= 2 && n >= biggest) {
			biggest = n;
			moved_cost(&cl, &o);
			printf("\n");
		}
		cluster_stop(&cl);
	}
	if (!err) {
		/* routing overhead: a plain node against a one-node cluster,
		 * alternated, both started once */
		struct ccluster single, one;
		if (cluster_start(&single, 0, &o, "single") != 0) {
			err = 1;
		} else if (cluster_start(&one, 1, &o, "one") != 0) {
			cluster_stop(&single);
			err = 1;
		} else {
			snprintf(one.topic[0], sizeof(one.topic[0]), "bench-0");
			if (create_topics(&single, 1) || create_topics(&one, 1))
				err = 1;
			double rs[MAX_REPEATS], rc1[MAX_REPEATS], cs[MAX_REPEATS], cc[MAX_REPEATS],
				d0;
			/* a first run of each, not counted: both warm */
			err |= run_load(&single, 1, false, 0, &o, &rs[0], &d0, &cs[0]);
			err |= run_load(&one, 1, false, 0, &o, &rc1[0], &d0, &cc[0]);
			for (unsigned r = 0; r < o.repeats && !err; r++) {
				err |= run_load(&single, 1, false, 0, &o, &rs[r], &d0, &cs[r]);
				err |= run_load(&one, 1, false, 0, &o, &rc1[r], &d0, &cc[r]);
				cs[r] *= 1e9;
				cc[r] *= 1e9;
			}
			if (!err) {
				struct stat3 a = stat_of(rs, o.repeats),
					     b = stat_of(rc1, o.repeats),
					     c = stat_of(cs, o.repeats), d = stat_of(cc, o.repeats);
				printf("Routing overhead: single node vs one-node cluster (PUBLISH "
				       "pipelined, one publisher, alternated; median [min-max])\n");
				char x[4][64];
				snprintf(x[0], sizeof(x[0]), "%.0f [%.0f-%.0f]", a.med, a.min,
					 a.max);
				snprintf(x[1], sizeof(x[1]), "%.0f [%.0f-%.0f]", b.med, b.min,
					 b.max);
				snprintf(x[2], sizeof(x[2]), "%.1f [%.1f-%.1f]", c.med, c.min,
					 c.max);
				snprintf(x[3], sizeof(x[3]), "%.1f [%.1f-%.1f]", d.med, d.min,
					 d.max);
				printf("  %-18s %-28s %-28s %s\n", "", "single node",
				       "cluster (routed)", "medians");
				printf("  %-18s %-28s %-28s %+.1f %%\n", "msgs/s", x[0], x[1],
				       (b.med / a.med - 1) * 100);
				printf("  %-18s %-28s %-28s %+.1f %%\n", "server CPU ns/msg", x[2],
				       x[3], (d.med / c.med - 1) * 100);
			}
			cluster_stop(&single);
			cluster_stop(&one);
		}
	}
	etcd_stop();
	return err ? 1 : 0;
}
