/* main.c - ringmq-bench: flags, scenarios, --compare, sweeps, reports.
 *
 * A "case" is a scenario with its parameters (e.g. fanout 1->10, 16-byte
 * payload). rb_case_once() runs one repeat of a case against one server
 * and folds its figures into that (case, server) row of the report;
 * --compare and sweeps only decide which servers run which cases in which
 * order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "conns.h"
#include "net.h"
#include "ringmq_version.h"
#include "parse.h"
#include "proc.h"
#include "report.h"
#include "run.h"
#include "wire.h"

struct rb_case {
	char label[80];
	struct rb_work w;
	/* createTopic */
	uint64_t lookup[8];
	unsigned nlookup;
	double lookup_secs;
	unsigned lookup_topics;
	/* conns */
	unsigned conns_pubs, idle, active, accept_threads;
};

#define MAX_CASES 64
#define MAX_LIST 16

struct opts {
	enum rb_scen scen;
	bool scen_given;
	enum rb_target target;
	char host[64];
	int port;
	bool start_server;
	const char *server_bin;
	int server_threads;
	const char *server_args;
	pid_t server_pid;
	const char *redis_bin, *nats_bin;
	bool tls, insecure;              /* --tls, --insecure */
	const char *cacert, *cert, *key; /* TLS files */
	unsigned repeats;
	bool compare, no_sweep;
	unsigned targets; /* bit mask for --compare */
	enum rb_scen sweep_scen[4];
	unsigned nsweep_scen;
	int threads[32];
	unsigned nthreads;
	const char *csv, *json, *plot;
	bool quiet;
	int progress; /* -1 auto */
	/* workload; "given" flags say what the user set */
	struct rb_work w;
	bool g_pubs, g_subs, g_topics, g_depth, g_replies, g_rate, g_window, g_count, g_batch;
	unsigned ct_clients;
	uint64_t ct_topics;
	uint64_t lookup[8];
	unsigned nlookup;
	bool g_lookup;
	double lookup_secs;
	unsigned lookup_topics;
	/* lists: one case per element (--rates, --payloads, --subs) */
	double rates[MAX_LIST];
	unsigned nrates;
	uint64_t payloads[MAX_LIST];
	unsigned npayloads;
	uint64_t subsl[MAX_LIST];
	unsigned nsubsl;
	bool efficiency; /* --compare: the issue-16 cases too */
	unsigned conns_pubs, idle, active, accept_threads;
	uint64_t recovery_bytes; /* recovery: log bytes to fill */
	bool recovery_cold;      /* recovery: drop the segments from the page cache */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ringmq-bench SCENARIO [options]\n"
		"       ringmq-bench --compare [SCENARIO] [options]\n"
		"       ringmq-bench sweep [--scenario S[,S...]] [options]\n"
		"       ringmq-bench --cluster [--nodes 1,2,3] [options]   (--cluster --help)\n"
		"\n"
		"Load generator and benchmark harness for ringmq, side by side with Redis and NATS.\n"
		"\n"
		"Scenarios:\n"
		"  createTopic  K clients create M unique topics each, then delete them (topics/s,\n"
		"               latency); then publish throughput with 1, 10k, 1M topics in the table\n"
		"  send         P publishers, no subscribers: msgs/s, MB/s, ack latency\n"
		"  fanout       P publishers -> K live subscribers (SUBSCRIBE) on T topics: published\n"
		"               and delivered msgs/s, end-to-end latency, lost/duplicated/reordered\n"
		"  pull         P publishers -> K durable subscribers pulling with COUNT (ringmq only)\n"
		"  latency      open loop at --rate: latency from each message's intended send time,\n"
		"               p50 p90 p99 p99.9 p99.99 max\n"
		"  sweep        starts ringmq-server with --threads 1..N, runs --scenario at each\n"
		"  recovery     fills --recovery-bytes of a disk topic, kill -9, restart on the same\n"
		"               --dir: time until INFO says loading:0, GB/s (ringmq only)\n"
		"  conns        many connections: --conns-pubs publishers on a topic each vs 10,\n"
		"               --active connections with and without --idle idle ones (server RSS\n"
		"               per idle connection), accept rate (connect+PING+close)\n"
		"  loopback     no broker: a plain 127.0.0.1 TCP sender -> receiver pair, GB/s at\n"
		"               --payload(s): the machine's loopback limit\n"
		"\n"
		"Server:\n"
		"  --target ringmq|redis|nats   what to run against (default ringmq)\n"
		"  --host H, --port N           where it listens (default 127.0.0.1 and 5555/6379/4222)\n"
		"  --start-server               start the target on a free 127.0.0.1 port instead\n"
		"  --server PATH                ringmq-server binary (default: next to ringmq-bench, then PATH)\n"
		"  --server-threads N           ringmq-server --threads N when started here\n"
		"  --server-args \"ARGS\"         more ringmq-server flags when started here\n"
		"  --server-pid PID             PID of an already running server, to measure its CPU\n"
		"  --redis-server PATH, --nats-server PATH   peer binaries (default: PATH)\n"
		"  --storage disk|memory        ringmq-server --storage, when started here\n"
		"  --fsync always|everysec|no   ringmq-server --fsync, when started here; with it the\n"
		"                               peers persist too: redis-server --appendonly yes\n"
		"                               --appendfsync F publishing XADD <topic> * f <payload>,\n"
		"                               nats-server -js with a file stream, acked publishes\n"
		"  --tls                        every connection over TLS; servers started here\n"
		"                               (ringmq, redis; not nats) serve TLS only, with\n"
		"                               throw-away certificates made by the openssl tool\n"
		"  --cacert FILE                CA to verify the server with (default: the one\n"
		"                               made here, or the system's)\n"
		"  --cert FILE, --key FILE      client certificate and key (mutual TLS)\n"
		"  --insecure                   do not verify the server's certificate\n"
		"\n"
		"Workload (defaults depend on the scenario):\n"
		"  -p, --publishers P     publisher connections (default 1)\n"
		"  -s, --subscribers K    subscriber connections (fanout/pull/latency: 1)\n"
		"  -t, --topics T         topics; publishers and subscribers are spread over them (1)\n"
		"      --payload BYTES    message size (16; at least 16 when subscribers check messages)\n"
		"  -d, --depth D          messages in flight per publisher with replies on (1000)\n"
		"      --batch B          frames per write (auto: min(depth,256), or 64 KiB without replies)\n"
		"      --replies | --no-replies   wait for PUBLISH replies (send: on; others: off, which\n"
		"                         sends CLIENT REPLY OFF; NATS: replies = PING per batch)\n"
		"      --mpublish M       ringmq: M payloads per MPUBLISH instead of PUBLISH\n"
		"  -r, --rate R           total msgs/s, open loop (latency: 100000; others: unthrottled)\n"
		"      --tick-us T        with --rate: wake at most every T us and send what is due, each\n"
		"                         message stamped with its own intended time (20; 0 = per message)\n"
		"      --window W         flow control: a publisher stays at most W messages ahead of the\n"
		"                         slowest subscriber of a stream (default 200000 or 16 MiB; 0 off)\n"
		"      --duration S       measured seconds (5)       --warmup S   warm-up seconds (1)\n"
		"      --count N          instead of --duration: N messages per publisher after warm-up\n"
		"      --repeats N        runs of each case (1; --compare: 3); median and min-max\n"
		"      --drain S          wait for subscribers up to S s without progress (5)\n"
		"      --pub-threads N, --sub-threads N   generator threads (min(connections, cores))\n"
		"      --pull-count N     PULL COUNT (1000)      --pull-block MS   PULL BLOCK (100)\n"
		"      --capacity BYTES   CAPACITY of topics created on ringmq (server default)\n"
		"      --patterns N       one more connection PSUBSCRIBEs N patterns matching none of\n"
		"                         the topics: PUBLISH's cost with N patterns (Redis, ringmq)\n"
		"  Lists (one case per element; with --compare and in sweeps too):\n"
		"      --rates LIST       latency: each rate, e.g. 10k,100k,1M\n"
		"      --payloads LIST    fanout (and loopback): each size, e.g. 16,4K,64K,1M; with\n"
		"                         --compare the loopback limit is a column of its own\n"
		"      --subs LIST        latency, fanout: each subscriber count, e.g. 1,10\n"
		"  conns:\n"
		"      --conns-pubs N     publishers, one topic each (1000), against 10\n"
		"      --idle N           idle connections (10000)   --active N   active ones (100)\n"
		"      --accept-threads N connect+PING+close loops (4)\n"
		"  recovery:\n"
		"      --recovery-bytes B payload bytes to fill before the kill -9 (1G)\n"
		"      --recovery-cold    drop the segment files from the page cache before the restart\n"
		"  createTopic:\n"
		"      --clients K        connections (4)        --topics-per-client M   (25000)\n"
		"      --lookup-sizes LIST  table sizes for the publish check (1,10000,1000000; '' skips)\n"
		"      --lookup-duration S  publish seconds at each size (2)\n"
		"      --lookup-topics T  the publisher spreads its messages over T topics of its own,\n"
		"                         round-robin (1; at most 65535)\n"
		"\n"
		"Compare and sweep:\n"
		"  --compare              run against ringmq, redis-server and nats-server (started here on\n"
		"                         free ports when installed), alternating, median of --repeats.\n"
		"                         Without a scenario: send, fanout 1->1 and 1->10, latency, and a\n"
		"                         ringmq thread sweep\n"
		"  --targets LIST         subset for --compare, e.g. ringmq,nats\n"
		"  --no-sweep             --compare without the thread sweep\n"
		"  --efficiency           --compare: also latency at 10k,100k,1M msg/s (1->1, 1->10),\n"
		"                         fan-out 1->10 at 16,4K,64K,1M with the loopback limit, and\n"
		"                         conns (each list unless given)\n"
		"  --scenario S[,S]       what a sweep runs (send)\n"
		"  --threads-list 1,2,4   sweep points (default 1..cores)   --max-threads N   1..N\n"
		"\n"
		"Output:\n"
		"  --csv FILE, --json FILE   every figure with the full configuration\n"
		"  --plot FILE.png        gnuplot: latency curves, throughput vs threads, throughput bars\n"
		"  --progress / --quiet   live progress line on stderr (default: when stderr is a tty)\n"
		"\n"
		"  -h, --help             show this help and exit\n"
		"  -V, --version          show the version and exit\n"
		"\n"
		"Exit status: 0 all good; 1 a run failed, or messages were lost, duplicated or\n"
		"reordered, or errors were counted; 2 bad usage.\n");
}

static int die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "ringmq-bench: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'ringmq-bench --help'.\n");
	return 2;
}

/* Counts: K, M, G are powers of 1000 ("--count 1M"); sizes: powers of
 * 1024, with an optional B ("--payload 4K"). See common/parse.h. */
static int parse_u64(const char *s, uint64_t *out)
{
	return rmq_parse_arg(s, RMQ_UNIT_COUNT, out);
}

static int parse_bytes(const char *s, uint64_t *out)
{
	return rmq_parse_arg(s, RMQ_UNIT_BYTES, out);
}

static int parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	if (*end == 'k' || *end == 'K')
		v *= 1e3, end++;
	else if (*end == 'm' || *end == 'M')
		v *= 1e6, end++;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

/* "10k,100k,1M": rates in msgs/s. 0 or -1. */
static int parse_rates(const char *s, double *out, unsigned cap, unsigned *n)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n == cap || parse_double(t, &out[*n]) != 0 || out[*n] <= 0)
			return -1;
		(*n)++;
	}
	return *n ? 0 : -1;
}

/* "16,4K,64K,1M": sizes in bytes (powers of 1024). 0 or -1. */
static int parse_sizes(const char *s, uint64_t *out, unsigned cap, unsigned *n)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n == cap || parse_bytes(t, &out[*n]) != 0 || out[*n] < 1 ||
		    out[*n] > (64u << 20))
			return -1;
		(*n)++;
	}
	return *n ? 0 : -1;
}

static int parse_list(const char *s, uint64_t *out, unsigned cap, unsigned *n)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n == cap || parse_u64(t, &out[*n]) != 0)
			return -1;
		(*n)++;
	}
	return 0;
}

/* --- cases --- */

static void apply_defaults(const struct opts *o, struct rb_work *w, enum rb_scen s)
{
	w->scen = s;
	w->frame = RB_FR_PUBLISH;
	w->durable = s == RB_SC_PULL;
	if (!o->g_pubs)
		w->pubs = 1;
	if (!o->g_subs)
		w->subs = 1;
	if (s == RB_SC_SEND)
		w->subs = 0; /* by definition; -s in a multi-scenario sweep is for the others */
	if (!o->g_replies)
		w->replies = s == RB_SC_SEND;
	if (!o->g_rate)
		w->rate = s == RB_SC_LATENCY ? 100000 : 0;
	if (!o->g_window) {
		uint64_t cap = (16u << 20) / ((uint64_t)w->payload + 64);
		w->window = cap < 200000 ? cap : 200000;
	}
}

static void case_label(struct rb_case *c)
{
	const struct rb_work *w = &c->w;
	struct rb_buf b = { 0 };
	switch (w->scen) {
	case RB_SC_CREATE:
		rb_buf_printf(&b, "createTopic %ux%" PRIu64, w->pubs, w->count);
		if (c->lookup_topics > 1)
			rb_buf_printf(&b, ", publish over %u topics", c->lookup_topics);
		break;
	case RB_SC_SEND:
		rb_buf_printf(&b, "send %u pub%s, replies %s%s", w->pubs, w->pubs == 1 ? "" : "s",
			      w->replies ? "on" : "off", w->mpublish > 1 ? ", MPUBLISH" : "");
		break;
	case RB_SC_FANOUT: rb_buf_printf(&b, "fanout %u->%u", w->pubs, w->subs); break;
	case RB_SC_PULL:
		rb_buf_printf(&b, "pull %u->%u COUNT %u", w->pubs, w->subs, w->pull_count);
		break;
	case RB_SC_LATENCY:
		rb_buf_printf(&b, "latency %u->%u @ %.0f msg/s", w->pubs, w->subs, w->rate);
		break;
	case RB_SC_CONNS:
		rb_buf_printf(&b, "conns: %u pubs x 1 topic, %u idle + %u active, accept",
			      c->conns_pubs, c->idle, c->active);
		break;
	case RB_SC_LOOPBACK: rb_buf_printf(&b, "loopback"); break;
	default: rb_buf_printf(&b, "%s", rb_scen_name(w->scen));
	}
	if (w->topics > 1 && w->scen != RB_SC_CREATE && w->scen != RB_SC_CONNS)
		rb_buf_printf(&b, " on %u topics", w->topics);
	if (w->payload != 16)
		rb_buf_printf(&b, ", %u B", w->payload);
	snprintf(c->label, sizeof(c->label), "%.*s", (int)sizeof(c->label) - 1, b.p ? b.p : "");
	rb_buf_free(&b);
}

static void make_case(const struct opts *o, enum rb_scen s, struct rb_case *c)
{
	memset(c, 0, sizeof(*c));
	c->w = o->w;
	apply_defaults(o, &c->w, s);
	if (s == RB_SC_CREATE) {
		c->w.pubs = o->ct_clients;
		c->w.count = o->ct_topics;
		c->w.subs = 0;
		c->w.replies = true;
		memcpy(c->lookup, o->lookup, sizeof(c->lookup));
		c->nlookup = o->nlookup;
		c->lookup_secs = o->lookup_secs;
		c->lookup_topics = o->lookup_topics;
	}
	if (s == RB_SC_CONNS) {
		c->conns_pubs = o->conns_pubs;
		c->idle = o->idle;
		c->active = o->active;
		c->accept_threads = o->accept_threads;
		c->w.pubs = o->conns_pubs;
		c->w.subs = 10; /* the fan-out runs' subscribers: messages are checked */
		c->w.topics = o->conns_pubs;
		c->w.replies = false;
	}
	if (s == RB_SC_LOOPBACK) {
		c->w.pubs = c->w.subs = 1;
		c->w.topics = 1;
	}
	case_label(c);
}

/* The cases of one scenario with the lists expanded: latency at each
 * --rates for each --subs, fanout at each --payloads for each --subs.
 * Without lists, one case. Returns how many were written (at most cap). */
static unsigned make_cases(const struct opts *o, enum rb_scen s, struct rb_case *cases,
			   unsigned cap)
{
	unsigned n = 0;
	struct opts so = *o;
	unsigned ns = o->nsubsl ? o->nsubsl : 1;
	bool lat = s == RB_SC_LATENCY, fan = s == RB_SC_FANOUT || s == RB_SC_LOOPBACK;
	unsigned nv = lat && o->nrates ? o->nrates : fan && o->npayloads ? o->npayloads : 1;
	if ((!lat && !fan && s != RB_SC_PULL) || s == RB_SC_LOOPBACK)
		ns = 1; /* one pair, whatever the subscribers */
	for (unsigned v = 0; v < nv; v++)
		for (unsigned k = 0; k < ns && n < cap; k++) {
			if (lat && o->nrates) {
				so.w.rate = o->rates[v];
				so.g_rate = true;
			}
			if (fan && o->npayloads) {
				so.w.payload = (unsigned)o->payloads[v];
				so.g_window = o->g_window; /* the window follows the payload */
			}
			if (o->nsubsl && ns > 1) {
				so.w.subs = (unsigned)o->subsl[k];
				so.g_subs = true;
			} else if (o->nsubsl) {
				so.w.subs = (unsigned)o->subsl[0];
				so.g_subs = true;
			}
			make_case(&so, s, &cases[n]);
			if (fan && o->npayloads && so.w.payload == 16) {
				/* apart from the plain 16-byte case of the suite */
				size_t l = strlen(cases[n].label);
				snprintf(cases[n].label + l, sizeof(cases[n].label) - l, ", 16 B");
			}
			n++;
		}
	return n;
}

static int run_interrupted(void)
{
	return rb_interrupted;
}

/* createTopic: create and delete rates, then publish rate at each table size. */
static void create_once(const struct rb_case *c, const struct rb_server *srv, struct rb_row *row)
{
	row->runs++;
	if (srv->target != RB_RINGMQ) {
		row->failed++;
		snprintf(row->err, sizeof(row->err),
			 "createTopic is ringmq-only (Redis and NATS have no topics to create)");
		return;
	}
	struct rb_work w = c->w;
	w.frame = RB_FR_CREATE;
	w.warmup = 0;
	w.subs = 0;
	w.replies = true;
	w.label = "createTopic";
	rb_topic_prefix(w.name_prefix, sizeof(w.name_prefix));
	struct rb_result *r = malloc(sizeof(*r));
	if (!r)
		abort();
	bool ok = true;
	for (int pass = 0; pass < 2 && ok; pass++) {
		w.frame = pass ? RB_FR_DELETE : RB_FR_CREATE;
		rb_run(&w, srv, r);
		row->c.errors += r->errors;
		if (r->err[0] && !row->err[0])
			snprintf(row->err, sizeof(row->err), "%s", r->err);
		if (!r->ok) {
			ok = false;
			break;
		}
		double secs = r->secs > 0 ? r->secs : 1;
		const char *what = pass ? "delete" : "create";
		char key[48], label[40];
		snprintf(key, sizeof(key), "%s_topics_per_s", what);
		snprintf(label, sizeof(label), "%s topics/s", what);
		rb_row_add(row, key, label, "topics/s", +1, (double)r->acked / secs);
		static const struct {
			double p;
			const char *k;
		} ps[] = { { 50, "p50" }, { 99, "p99" }, { 100, "max" } };
		for (size_t i = 0; i < 3; i++) {
			snprintf(key, sizeof(key), "%s_ack_%s_us", what, ps[i].k);
			snprintf(label, sizeof(label), "%s ack %s", what, ps[i].k);
			rb_row_add(row, key, label, "us", -1,
				   (double)rb_hist_percentile(&r->ack, ps[i].p) / 1000);
		}
		if (!pass && srv->pid > 0)
			rb_row_add(row, "server_rss_MiB_after_create",
				   "server RSS after create MiB", "MiB", -1,
				   (double)r->srv_rss / 1048576.0);
	}
	/* publish rate with growing tables */
	struct {
		unsigned pubs;
		uint64_t per, base;
	} rounds[24];
	unsigned nr = 0;
	uint64_t existing = 0;
	double first = 0, last = 0;
	struct rb_work lw = w;
	rb_topic_prefix(lw.name_prefix, sizeof(lw.name_prefix));
	for (unsigned i = 0; i < c->nlookup && ok && !run_interrupted(); i++) {
		uint64_t want = c->lookup[i];
		uint64_t built = 0;
		double build_secs = 0;
		while (want > existing && ok) {
			/* equal shares per client, then the remainder, one each */
			uint64_t need = want - existing;
			unsigned pubs = need < c->w.pubs ? (unsigned)need : c->w.pubs;
			uint64_t per = need / pubs;
			lw.frame = RB_FR_CREATE;
			lw.pubs = pubs;
			lw.count = per;
			lw.ctr_base = existing;
			lw.progress = false;
			rb_run(&lw, srv, r);
			if (!r->ok || r->errors) {
				ok = false;
				row->c.errors += r->errors ? r->errors : 1;
				snprintf(row->err, sizeof(row->err),
					 "creating the lookup tables: %.200s", r->err);
				break;
			}
			if (nr < sizeof(rounds) / sizeof(rounds[0])) {
				rounds[nr].pubs = pubs;
				rounds[nr].per = per;
				rounds[nr].base = existing;
				nr++;
			}
			existing += (uint64_t)pubs * per;
			built += (uint64_t)pubs * per;
			build_secs += r->secs;
		}
		if (!ok)
			break;
		if (built >= 1000 && build_secs > 0) {
			/* creating into an ever larger table: does it slow down? */
			char k2[64], l2[48], n2[24];
			if (existing < 10000)
				snprintf(n2, sizeof(n2), "%" PRIu64, existing);
			else
				rb_fmt_num(n2, sizeof(n2), (double)existing);
			snprintf(k2, sizeof(k2), "create_topics_per_s_up_to_%" PRIu64, existing);
			snprintf(l2, sizeof(l2), "create topics/s up to %.12s", n2);
			rb_row_add(row, k2, l2, "topics/s", +1, (double)built / build_secs);
		}
		struct rb_work pw = c->w;
		pw.scen = RB_SC_SEND;
		pw.frame = RB_FR_PUBLISH;
		pw.pubs = 1;
		pw.subs = 0;
		pw.topics = c->lookup_topics;
		pw.count = 0;
		pw.warmup = c->w.warmup > 0 ? c->w.warmup : 1;
		pw.duration = c->lookup_secs;
		pw.label = "createTopic publish";
		rb_run(&pw, srv, r);
		if (!r->ok) {
			ok = false;
			snprintf(row->err, sizeof(row->err),
				 "publish with %" PRIu64 " topics: %.200s", existing, r->err);
			break;
		}
		row->c.errors += r->errors;
		double rate =
			(double)(pw.replies ? r->acked : r->sent) / (r->secs > 0 ? r->secs : 1);
		char key[48], label[40], n[24];
		if (existing < 10000)
			snprintf(n, sizeof(n), "%" PRIu64, existing);
		else
			rb_fmt_num(n, sizeof(n), (double)existing);
		snprintf(key, sizeof(key), "publish_msgs_per_s_at_%" PRIu64 "_topics", existing);
		snprintf(label, sizeof(label), "publish msg/s @%.12s topics", n);
		rb_row_add(row, key, label, "msg/s", +1, rate);
		if (srv->pid > 0) {
			snprintf(key, sizeof(key), "server_rss_MiB_at_%" PRIu64 "_topics",
				 existing);
			snprintf(label, sizeof(label), "server RSS MiB @%.12s topics", n);
			rb_row_add(row, key, label, "MiB", -1,
				   (double)rb_proc_rss(srv->pid) / 1048576.0);
		}
		if (i == 0)
			first = rate;
		last = rate;
		if (row->nlookup < 8)
			row->lookup_sizes[row->nlookup++] = existing;
	}
	if (c->nlookup > 1 && first > 0 && ok)
		rb_row_add(row, "publish_largest_vs_smallest_table_pct",
			   "publish @largest/@smallest %", "%", +1, 100.0 * last / first);
	for (unsigned i = 0; i < nr; i++) {
		lw.frame = RB_FR_DELETE;
		lw.pubs = rounds[i].pubs;
		lw.count = rounds[i].per;
		lw.ctr_base = rounds[i].base;
		rb_run(&lw, srv, r);
		if (!r->ok || r->errors) {
			ok = false;
			row->c.errors += r->errors;
		}
	}
	if (!ok)
		row->failed++;
	free(r);
}

/* Folds the counts of one helper run into a row that reports figures of
 * its own (conns). */
static void fold_counts(struct rb_row *row, const struct rb_result *r)
{
	if (r->err[0] && !row->err[0])
		snprintf(row->err, sizeof(row->err), "%s", r->err);
	if (!r->ok) {
		row->failed++;
		return;
	}
	row->c.total_sent += r->total_sent;
	row->c.expected += r->expected;
	row->c.received += r->received;
	row->c.lost += r->lost;
	row->c.dup += r->dup;
	row->c.ooo += r->ooo;
	row->c.unexpected += r->unexpected;
	row->c.errors += r->errors;
}

static double delivered_rate(const struct rb_result *r)
{
	return r->ok && r->secs > 0 ? (double)r->delivered / r->secs : 0;
}

/* The server's RSS once it stops moving (freed topics and buffers of the
 * run before go back at their own pace): read every 100 ms until two
 * readings are within 64 KiB, for at most 2 s. 0 unknown. */
static uint64_t settled_rss(pid_t pid)
{
	if (pid <= 0)
		return 0;
	uint64_t prev = rb_proc_rss(pid);
	for (int i = 0; i < 20 && !rb_interrupted; i++) {
		struct timespec ts = { 0, 100000000 };
		nanosleep(&ts, NULL);
		uint64_t now = rb_proc_rss(pid);
		uint64_t d = now > prev ? now - prev : prev - now;
		prev = now;
		if (d < (64u << 10))
			break;
	}
	return prev;
}

/* conns: (a) many publishers, one topic each, against 10 publishers on 10
 * topics; (b) `active` connections with and without `idle` idle ones, and
 * the server's RSS per idle connection; (c) the accept rate. */
static void conns_once(const struct rb_case *c, const struct rb_server *srv, struct rb_row *row)
{
	row->runs++;
	struct rb_result *r = malloc(sizeof(*r));
	if (!r)
		abort();
	char key[48], label[40];
	/* (a) */
	struct rb_work w = c->w;
	w.scen = RB_SC_FANOUT;
	w.replies = false;
	w.subs = 10;
	if (!w.batch)
		w.batch = 64; /* the same for both: 1,000 connections' buffers stay small */
	w.label = "conns: few publishers";
	unsigned few = c->conns_pubs < 10 ? c->conns_pubs : 10;
	/* the window is per stream: split one run's worth over the streams, so
	 * both runs keep the same number of messages in flight */
	uint64_t total_window = w.window;
	w.pubs = w.topics = few;
	w.window = total_window ? (total_window / few > 256 ? total_window / few : 256) : 0;
	rb_run(&w, srv, r);
	fold_counts(row, r);
	double vfew = delivered_rate(r);
	w.pubs = w.topics = c->conns_pubs;
	w.window = total_window ? (total_window / c->conns_pubs > 256 ? total_window / c->conns_pubs
								      : 256)
				: 0;
	w.label = "conns: many publishers";
	rb_run(&w, srv, r);
	fold_counts(row, r);
	double vmany = delivered_rate(r);
	snprintf(key, sizeof(key), "pubs_%u_delivered_msgs_per_s", few);
	snprintf(label, sizeof(label), "%u pubs: delivered msg/s", few);
	rb_row_add(row, key, label, "msg/s", +1, vfew);
	snprintf(key, sizeof(key), "pubs_%u_delivered_msgs_per_s", c->conns_pubs);
	snprintf(label, sizeof(label), "%u pubs: delivered msg/s", c->conns_pubs);
	rb_row_add(row, key, label, "msg/s", +1, vmany);
	if (r->ok && r->srv_cpu >= 0 && r->delivered)
		rb_row_add(row, "many_pubs_server_cpu_s_per_M", "many pubs: server CPU s/M", "s/M",
			   -1, r->srv_cpu / ((double)r->delivered / 1e6));
	if (r->ok)
		rb_row_add(row, "many_pubs_gen_cpu_max_pct", "many pubs: generator busiest %", "%",
			   0, 100.0 * r->gen_cpu_max);
	if (vfew > 0)
		rb_row_add(row, "many_vs_few_pubs_pct", "many pubs / few pubs %", "%", +1,
			   100.0 * vmany / vfew);
	/* (b) */
	if (!rb_interrupted && c->active >= 2) {
		w = c->w;
		w.scen = RB_SC_FANOUT;
		w.replies = false;
		w.pubs = c->active / 2;
		w.subs = c->active - w.pubs;
		w.topics = w.pubs;
		/* idle ones first: the RSS they cost, then the active run with
		 * them, then without them */
		/* a tenth first: the server frees what earlier runs left once
		 * it has work again, which must not count against the rest */
		struct rb_idle pre, set;
		rb_idle_open(srv, c->idle / 10, &pre);
		uint64_t rss0 = settled_rss(srv->pid);
		rb_idle_open(srv, c->idle - c->idle / 10, &set);
		uint64_t rss1 = settled_rss(srv->pid);
		set.errors += pre.errors;
		if (!set.err[0])
			snprintf(set.err, sizeof(set.err), "%s", pre.err);
		row->c.errors += set.errors;
		if (set.errors && !row->err[0])
			snprintf(row->err, sizeof(row->err), "%u of %u idle connections: %s",
				 c->idle - set.n - pre.n, c->idle, set.err);
		w.label = "conns: active with idle";
		rb_run(&w, srv, r);
		fold_counts(row, r);
		double with = delivered_rate(r);
		/* every idle connection still there and answering */
		unsigned alive = 0;
		/* (TLS: the server may have sent session tickets; not checked) */
		for (unsigned i = 0; i < set.n && !rb_tls_enabled(); i++) {
			char b[256];
			ssize_t n = recv(set.fd[i], b, sizeof(b), MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				alive++;
			} else if (n > 0 && srv->target == RB_NATS && !memcmp(b, "PING", 4)) {
				/* nats-server pings a new client early on: answered, alive */
				alive += rb_write_all(set.fd[i], "PONG\r\n", 6) == 0;
			}
		}
		if (alive < set.n && !rb_tls_enabled()) {
			row->c.errors += set.n - alive;
			if (!row->err[0])
				snprintf(
					row->err, sizeof(row->err),
					"%u idle connections were closed or sent something unexpected",
					set.n - alive);
		}
		unsigned opened = set.n;
		rb_idle_close(&set);
		rb_idle_close(&pre);
		w.label = "conns: active";
		rb_run(&w, srv, r);
		fold_counts(row, r);
		double base = delivered_rate(r);
		snprintf(label, sizeof(label), "%u active: delivered msg/s", c->active);
		rb_row_add(row, "active_delivered_msgs_per_s", label, "msg/s", +1, base);
		snprintf(label, sizeof(label), "+%u idle: delivered msg/s", c->idle);
		rb_row_add(row, "active_with_idle_delivered_msgs_per_s", label, "msg/s", +1, with);
		if (base > 0)
			rb_row_add(row, "with_vs_without_idle_pct", "with idle / without %", "%",
				   +1, 100.0 * with / base);
		if (rss0 && rss1 && opened) {
			rb_row_add(row, "server_rss_MiB_with_idle", "server RSS MiB with idle",
				   "MiB", -1, (double)rss1 / 1048576.0);
			rb_row_add(row, "server_rss_bytes_per_idle_conn",
				   "server RSS B per idle conn", "B", -1,
				   ((double)rss1 - (double)rss0) / opened);
		}
	}
	/* (c) */
	if (!rb_interrupted && c->accept_threads) {
		struct rb_accept_result a;
		rb_accept_rate(srv, c->accept_threads, c->w.warmup > 0.2 ? 0.2 : c->w.warmup,
			       c->w.duration, &a);
		row->c.errors += a.errors;
		if (a.errors && !row->err[0])
			snprintf(row->err, sizeof(row->err), "accept: %s", a.err);
		rb_row_add(row, "accept_conns_per_s", "accept: conns/s", "conn/s", +1,
			   a.secs > 0 ? (double)a.conns / a.secs : 0);
	}
	free(r);
}

/* The loopback reference: one plain TCP sender -> receiver pair over
 * 127.0.0.1, the case's payload, no broker. */
static void loopback_once(const struct rb_case *c, struct rb_row *row)
{
	row->runs++;
	struct rb_loop_result lr;
	rb_loopback(c->w.payload, c->w.warmup, c->w.duration, &lr);
	if (!lr.ok) {
		row->failed++;
		snprintf(row->err, sizeof(row->err), "%s", lr.err);
		return;
	}
	row->c.total_sent += lr.sent_msgs;
	row->c.expected += lr.sent_msgs;
	row->c.received += lr.recv_msgs;
	row->c.lost += lr.sent_msgs > lr.recv_msgs ? lr.sent_msgs - lr.recv_msgs : 0;
	row->c.unexpected += lr.recv_msgs > lr.sent_msgs ? lr.recv_msgs - lr.sent_msgs : 0;
	row->c.ooo += lr.bad;
	double secs = lr.secs > 0 ? lr.secs : 1, bytes = (double)lr.bytes;
	rb_row_add(row, "delivered_msgs_per_s", "delivered msg/s", "msg/s", +1,
		   bytes / c->w.payload / secs);
	rb_row_add(row, "delivered_MB_per_s", "delivered MB/s", "MB/s", +1, bytes / secs / 1e6);
	rb_row_add(row, "delivered_GB_per_s", "delivered GB/s", "GB/s", +1, bytes / secs / 1e9);
}

static void rb_case_once(const struct rb_case *c, const struct rb_server *srv, struct rb_row *row)
{
	if (c->w.scen == RB_SC_CREATE) {
		create_once(c, srv, row);
		return;
	}
	if (c->w.scen == RB_SC_CONNS) {
		conns_once(c, srv, row);
		return;
	}
	if (c->w.scen == RB_SC_LOOPBACK) {
		loopback_once(c, row);
		return;
	}
	struct rb_work w = c->w;
	w.label = c->label;
	struct rb_result *r = malloc(sizeof(*r));
	if (!r)
		abort();
	rb_run(&w, srv, r);
	rb_row_add_result(row, r);
	free(r);
}

/* --- servers --- */

static int connect_server(const struct opts *o, enum rb_target t, struct rb_server *s)
{
	memset(s, 0, sizeof(*s));
	s->target = t;
	s->out_fd = -1;
	s->threads = -1;
	snprintf(s->host, sizeof(s->host), "%s", o->host);
	s->port = o->port ? o->port : rb_target_default_port(t);
	s->pid = o->server_pid;
	if (rb_server_probe(s) != 0) {
		fprintf(stderr,
			"ringmq-bench: cannot reach %s at %s:%d (start it, or use --start-server)\n",
			rb_target_name(t), s->host, s->port);
		return -1;
	}
	return 0;
}

static int start_target(const struct opts *o, enum rb_target t, int threads, struct rb_server *s)
{
	const char *name = t == RB_RINGMQ  ? (o->server_bin ? o->server_bin : "ringmq-server")
			   : t == RB_REDIS ? (o->redis_bin ? o->redis_bin : "redis-server")
					   : (o->nats_bin ? o->nats_bin : "nats-server");
	const char *bin = rb_find_exe(name);
	if (!bin) {
		fprintf(stderr, "ringmq-bench: %s not found%s\n", name,
			t == RB_RINGMQ
				? " (build it, or pass --server PATH)"
				: " (Debian: scripts/setup.sh bench installs redis-server and nats-server)");
		return -1;
	}
	char binbuf[4096];
	snprintf(binbuf, sizeof(binbuf), "%s", bin); /* rb_find_exe's buffer is reused */
	if (rb_server_start(s, t, binbuf, threads, t == RB_RINGMQ ? o->server_args : NULL) != 0)
		return -1;
	if (!o->quiet) {
		char thr[32] = "";
		if (t == RB_RINGMQ && s->threads > 0)
			snprintf(thr, sizeof(thr), ", %d threads", s->threads);
		fprintf(stderr, "ringmq-bench: started %s %s on 127.0.0.1:%d (pid %d%s, log %s)\n",
			rb_target_name(t), s->version, s->port, (int)s->pid, thr, s->log);
	}
	return 0;
}

/* --- signals --- */

static void on_signal(int sig)
{
	if (rb_interrupted) {
		rb_proc_cleanup();
		_exit(130);
	}
	rb_interrupted = 1;
}

static void at_exit(void)
{
	rb_proc_cleanup();
}

/* --- option parsing --- */

enum {
	O_TARGET = 256,
	O_HOST,
	O_PORT,
	O_START,
	O_SERVER,
	O_SRV_THREADS,
	O_SRV_ARGS,
	O_STORAGE,
	O_FSYNC_POL,
	O_REC_BYTES,
	O_REC_COLD,
	O_SRV_PID,
	O_REDIS,
	O_NATS,
	O_PAYLOAD,
	O_BATCH,
	O_REPLIES,
	O_NOREPLIES,
	O_MPUB,
	O_WINDOW,
	O_DURATION,
	O_WARMUP,
	O_COUNT,
	O_REPEATS,
	O_DRAIN,
	O_PUBTHR,
	O_SUBTHR,
	O_PULLCNT,
	O_PULLBLK,
	O_CAPACITY,
	O_PATTERNS,
	O_CLIENTS,
	O_TPC,
	O_LOOKUP,
	O_LOOKUPDUR,
	O_LOOKUPTOPICS,
	O_COMPARE,
	O_TARGETS,
	O_NOSWEEP,
	O_SCENARIO,
	O_THRLIST,
	O_MAXTHR,
	O_CSV,
	O_JSON,
	O_PLOT,
	O_PROGRESS,
	O_QUIET,
	O_TICK,
	O_TLS,
	O_CACERT,
	O_CERT,
	O_KEY,
	O_INSECURE,
	O_RATES,
	O_PAYLOADS,
	O_SUBSL,
	O_EFFICIENCY,
	O_CONNS_PUBS,
	O_IDLE,
	O_ACTIVE,
	O_ACCEPT_THR,
};

static const struct option long_opts[] = {
	{ "target", required_argument, NULL, O_TARGET },
	{ "host", required_argument, NULL, O_HOST },
	{ "port", required_argument, NULL, O_PORT },
	{ "start-server", no_argument, NULL, O_START },
	{ "server", required_argument, NULL, O_SERVER },
	{ "server-threads", required_argument, NULL, O_SRV_THREADS },
	{ "server-args", required_argument, NULL, O_SRV_ARGS },
	{ "storage", required_argument, NULL, O_STORAGE },
	{ "fsync", required_argument, NULL, O_FSYNC_POL },
	{ "recovery-bytes", required_argument, NULL, O_REC_BYTES },
	{ "recovery-cold", no_argument, NULL, O_REC_COLD },
	{ "server-pid", required_argument, NULL, O_SRV_PID },
	{ "redis-server", required_argument, NULL, O_REDIS },
	{ "tls", no_argument, NULL, O_TLS },
	{ "cacert", required_argument, NULL, O_CACERT },
	{ "cert", required_argument, NULL, O_CERT },
	{ "key", required_argument, NULL, O_KEY },
	{ "insecure", no_argument, NULL, O_INSECURE },
	{ "rates", required_argument, NULL, O_RATES },
	{ "payloads", required_argument, NULL, O_PAYLOADS },
	{ "subs", required_argument, NULL, O_SUBSL },
	{ "efficiency", no_argument, NULL, O_EFFICIENCY },
	{ "conns-pubs", required_argument, NULL, O_CONNS_PUBS },
	{ "idle", required_argument, NULL, O_IDLE },
	{ "active", required_argument, NULL, O_ACTIVE },
	{ "accept-threads", required_argument, NULL, O_ACCEPT_THR },
	{ "nats-server", required_argument, NULL, O_NATS },
	{ "publishers", required_argument, NULL, 'p' },
	{ "subscribers", required_argument, NULL, 's' },
	{ "topics", required_argument, NULL, 't' },
	{ "payload", required_argument, NULL, O_PAYLOAD },
	{ "depth", required_argument, NULL, 'd' },
	{ "batch", required_argument, NULL, O_BATCH },
	{ "replies", no_argument, NULL, O_REPLIES },
	{ "no-replies", no_argument, NULL, O_NOREPLIES },
	{ "mpublish", required_argument, NULL, O_MPUB },
	{ "rate", required_argument, NULL, 'r' },
	{ "window", required_argument, NULL, O_WINDOW },
	{ "tick-us", required_argument, NULL, O_TICK },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "warmup", required_argument, NULL, O_WARMUP },
	{ "count", required_argument, NULL, O_COUNT },
	{ "repeats", required_argument, NULL, O_REPEATS },
	{ "drain", required_argument, NULL, O_DRAIN },
	{ "pub-threads", required_argument, NULL, O_PUBTHR },
	{ "sub-threads", required_argument, NULL, O_SUBTHR },
	{ "pull-count", required_argument, NULL, O_PULLCNT },
	{ "pull-block", required_argument, NULL, O_PULLBLK },
	{ "capacity", required_argument, NULL, O_CAPACITY },
	{ "patterns", required_argument, NULL, O_PATTERNS },
	{ "clients", required_argument, NULL, O_CLIENTS },
	{ "topics-per-client", required_argument, NULL, O_TPC },
	{ "lookup-sizes", required_argument, NULL, O_LOOKUP },
	{ "lookup-duration", required_argument, NULL, O_LOOKUPDUR },
	{ "lookup-topics", required_argument, NULL, O_LOOKUPTOPICS },
	{ "compare", no_argument, NULL, O_COMPARE },
	{ "targets", required_argument, NULL, O_TARGETS },
	{ "no-sweep", no_argument, NULL, O_NOSWEEP },
	{ "scenario", required_argument, NULL, O_SCENARIO },
	{ "threads-list", required_argument, NULL, O_THRLIST },
	{ "max-threads", required_argument, NULL, O_MAXTHR },
	{ "csv", required_argument, NULL, O_CSV },
	{ "json", required_argument, NULL, O_JSON },
	{ "plot", required_argument, NULL, O_PLOT },
	{ "progress", no_argument, NULL, O_PROGRESS },
	{ "quiet", no_argument, NULL, O_QUIET },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->scen = RB_SC_SEND;
	o->target = RB_RINGMQ;
	snprintf(o->host, sizeof(o->host), "127.0.0.1");
	o->progress = -1;
	o->targets = 7;
	o->ct_clients = 4;
	o->ct_topics = 25000;
	o->lookup[0] = 1;
	o->lookup[1] = 10000;
	o->lookup[2] = 1000000;
	o->nlookup = 3;
	o->lookup_secs = 2;
	o->lookup_topics = 1;
	o->recovery_bytes = 1u << 30;
	o->conns_pubs = 1000;
	o->idle = 10000;
	o->active = 100;
	o->accept_threads = 4;
	struct rb_work *w = &o->w;
	w->pubs = 1;
	w->topics = 1;
	w->payload = 16;
	w->depth = 1000;
	w->warmup = 1;
	w->duration = 5;
	w->drain = 5;
	w->pull_count = 1000;
	w->pull_block_ms = 100;
	w->mpublish = 1;
	w->tick_us = 20;
	int c;
	uint64_t u;
	double d;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hVp:s:t:d:r:", long_opts, NULL)) != -1) {
		switch (c) {
		case O_TARGET:
			if (rb_target_parse(optarg, &o->target) != 0)
				return die_usage("--target must be ringmq, redis or nats, not '%s'",
						 optarg);
			break;
		case O_HOST: snprintf(o->host, sizeof(o->host), "%s", optarg); break;
		case O_PORT:
			if (parse_u64(optarg, &u) || u < 1 || u > 65535)
				return die_usage("--port: expected 1..65535, got '%s'", optarg);
			o->port = (int)u;
			break;
		case O_START: o->start_server = true; break;
		case O_SERVER: o->server_bin = optarg; break;
		case O_SRV_THREADS:
			if (parse_u64(optarg, &u) || u < 1 || u > 64)
				return die_usage("--server-threads: expected 1..64, got '%s'",
						 optarg);
			o->server_threads = (int)u;
			break;
		case O_SRV_ARGS: o->server_args = optarg; break;
		case O_STORAGE:
			if (strcmp(optarg, "disk") != 0 && strcmp(optarg, "memory") != 0)
				return die_usage("--storage must be disk or memory, not '%s'",
						 optarg);
			rb_durable.storage = optarg;
			break;
		case O_FSYNC_POL:
			if (strcmp(optarg, "always") != 0 && strcmp(optarg, "everysec") != 0 &&
			    strcmp(optarg, "no") != 0)
				return die_usage("--fsync must be always, everysec or no, not '%s'",
						 optarg);
			rb_durable.fsync = optarg;
			break;
		case O_REC_BYTES:
			if (parse_bytes(optarg, &u) || u < 1)
				return die_usage(
					"--recovery-bytes: expected a byte count, got '%s'",
					optarg);
			o->recovery_bytes = u;
			break;
		case O_REC_COLD: o->recovery_cold = true; break;
		case O_SRV_PID:
			if (parse_u64(optarg, &u) || u < 1)
				return die_usage("--server-pid: expected a PID, got '%s'", optarg);
			o->server_pid = (pid_t)u;
			break;
		case O_REDIS: o->redis_bin = optarg; break;
		case O_NATS: o->nats_bin = optarg; break;
		case O_TLS: o->tls = true; break;
		case O_CACERT: o->cacert = optarg; break;
		case O_CERT: o->cert = optarg; break;
		case O_KEY: o->key = optarg; break;
		case O_INSECURE: o->insecure = true; break;
		case O_RATES:
			if (parse_rates(optarg, o->rates, MAX_LIST, &o->nrates) != 0)
				return die_usage(
					"--rates: expected up to 16 rates like 10k,100k,1M, "
					"got '%s'",
					optarg);
			break;
		case O_PAYLOADS:
			if (parse_sizes(optarg, o->payloads, MAX_LIST, &o->npayloads) != 0)
				return die_usage("--payloads: expected up to 16 sizes like "
						 "16,4K,64K,1M (at most 64M), got '%s'",
						 optarg);
			break;
		case O_SUBSL:
			if (parse_list(optarg, o->subsl, MAX_LIST, &o->nsubsl) != 0 ||
			    o->nsubsl == 0)
				return die_usage(
					"--subs: expected subscriber counts like 1,10, got '%s'",
					optarg);
			for (unsigned i = 0; i < o->nsubsl; i++)
				if (o->subsl[i] < 1 || o->subsl[i] > 10000)
					return die_usage("--subs: counts must be 1..10000 ('%s')",
							 optarg);
			break;
		case O_EFFICIENCY: o->efficiency = true; break;
		case O_CONNS_PUBS:
		case O_IDLE:
		case O_ACTIVE:
		case O_ACCEPT_THR:
			if (parse_u64(optarg, &u) || u > (c == O_ACCEPT_THR ? 64 : 15000) ||
			    (c != O_IDLE && u < 1))
				return die_usage("%s: out of range (conns-pubs, active 1..15000; "
						 "idle 0..15000; accept-threads 1..64)",
						 argv[optind - 1]);
			if (c == O_CONNS_PUBS)
				o->conns_pubs = (unsigned)u;
			else if (c == O_IDLE)
				o->idle = (unsigned)u;
			else if (c == O_ACTIVE)
				o->active = (unsigned)u;
			else
				o->accept_threads = (unsigned)u;
			break;
		case 'p':
			if (parse_u64(optarg, &u) || u < 1 || u > 10000)
				return die_usage("--publishers: expected 1..10000, got '%s'",
						 optarg);
			w->pubs = (unsigned)u;
			o->g_pubs = true;
			break;
		case 's':
			if (parse_u64(optarg, &u) || u > 10000)
				return die_usage("--subscribers: expected 0..10000, got '%s'",
						 optarg);
			w->subs = (unsigned)u;
			o->g_subs = true;
			break;
		case 't':
			if (parse_u64(optarg, &u) || u < 1 || u > 65535)
				return die_usage("--topics: expected 1..65535, got '%s'", optarg);
			w->topics = (unsigned)u;
			o->g_topics = true;
			break;
		case O_PAYLOAD:
			if (parse_bytes(optarg, &u) || u < 1 || u > (64u << 20))
				return die_usage("--payload: expected 1 byte to 64M, got '%s'",
						 optarg);
			w->payload = (unsigned)u;
			break;
		case 'd':
			if (parse_u64(optarg, &u) || u < 1 || u > 1000000)
				return die_usage("--depth: expected 1..1000000, got '%s'", optarg);
			w->depth = (unsigned)u;
			o->g_depth = true;
			break;
		case O_BATCH:
			if (parse_u64(optarg, &u) || u < 1 || u > 1000000)
				return die_usage("--batch: expected 1..1000000, got '%s'", optarg);
			w->batch = (unsigned)u;
			o->g_batch = true;
			break;
		case O_REPLIES:
		case O_NOREPLIES:
			w->replies = c == O_REPLIES;
			o->g_replies = true;
			break;
		case O_MPUB:
			if (parse_u64(optarg, &u) || u < 1 || u > 100000)
				return die_usage("--mpublish: expected 1..100000, got '%s'",
						 optarg);
			w->mpublish = (unsigned)u;
			break;
		case 'r':
			if (parse_double(optarg, &d))
				return die_usage("--rate: expected msgs/s, got '%s'", optarg);
			w->rate = d;
			o->g_rate = true;
			break;
		case O_WINDOW:
			if (parse_u64(optarg, &u))
				return die_usage("--window: expected a message count, got '%s'",
						 optarg);
			w->window = u;
			o->g_window = true;
			break;
		case O_TICK:
			if (parse_u64(optarg, &u) || u > 100000)
				return die_usage(
					"--tick-us: expected 0..100000 microseconds, got '%s'",
					optarg);
			w->tick_us = (unsigned)u;
			break;
		case O_DURATION:
			if (parse_double(optarg, &d) || d <= 0)
				return die_usage("--duration: expected seconds > 0, got '%s'",
						 optarg);
			w->duration = d;
			break;
		case O_WARMUP:
			if (parse_double(optarg, &d))
				return die_usage("--warmup: expected seconds, got '%s'", optarg);
			w->warmup = d;
			break;
		case O_COUNT:
			if (parse_u64(optarg, &u) || u < 1)
				return die_usage("--count: expected messages >= 1, got '%s'",
						 optarg);
			w->count = u;
			o->g_count = true;
			break;
		case O_REPEATS:
			if (parse_u64(optarg, &u) || u < 1 || u > RB_MAX_REPEATS)
				return die_usage("--repeats: expected 1..64, got '%s'", optarg);
			o->repeats = (unsigned)u;
			break;
		case O_DRAIN:
			if (parse_double(optarg, &d) || d <= 0)
				return die_usage("--drain: expected seconds > 0, got '%s'", optarg);
			w->drain = d;
			break;
		case O_PUBTHR:
		case O_SUBTHR:
			if (parse_u64(optarg, &u) || u < 1 || u > 256)
				return die_usage("threads: expected 1..256, got '%s'", optarg);
			if (c == O_PUBTHR)
				w->pub_threads = (unsigned)u;
			else
				w->sub_threads = (unsigned)u;
			break;
		case O_PULLCNT:
			if (parse_u64(optarg, &u) || u < 1 || u > 100000)
				return die_usage("--pull-count: expected 1..100000, got '%s'",
						 optarg);
			w->pull_count = (unsigned)u;
			break;
		case O_PULLBLK:
			if (parse_u64(optarg, &u) || u > 60000)
				return die_usage("--pull-block: expected 0..60000 ms, got '%s'",
						 optarg);
			w->pull_block_ms = (unsigned)u;
			break;
		case O_CAPACITY:
			if (parse_bytes(optarg, &u) || u < 1024)
				return die_usage(
					"--capacity: expected bytes >= 1024 (K, M, G), got '%s'",
					optarg);
			w->capacity = u;
			break;
		case O_PATTERNS:
			if (parse_u64(optarg, &u) || u > 1000000)
				return die_usage("--patterns: expected 0..1000000, got '%s'",
						 optarg);
			w->patterns = (unsigned)u;
			break;
		case O_CLIENTS:
			if (parse_u64(optarg, &u) || u < 1 || u > 10000)
				return die_usage("--clients: expected 1..10000, got '%s'", optarg);
			o->ct_clients = (unsigned)u;
			break;
		case O_TPC:
			if (parse_u64(optarg, &u) || u < 1)
				return die_usage("--topics-per-client: expected >= 1, got '%s'",
						 optarg);
			o->ct_topics = u;
			break;
		case O_LOOKUP:
			if (!*optarg)
				o->nlookup = 0;
			else if (parse_list(optarg, o->lookup, 8, &o->nlookup) != 0)
				return die_usage(
					"--lookup-sizes: expected up to 8 counts like 1,10000,1000000, got '%s'",
					optarg);
			break;
		case O_LOOKUPTOPICS:
			if (parse_u64(optarg, &u) || u < 1 || u > 65535)
				return die_usage("--lookup-topics: expected 1..65535, got '%s'",
						 optarg);
			o->lookup_topics = (unsigned)u;
			break;
		case O_LOOKUPDUR:
			if (parse_double(optarg, &d) || d <= 0)
				return die_usage("--lookup-duration: expected seconds, got '%s'",
						 optarg);
			o->lookup_secs = d;
			break;
		case O_COMPARE: o->compare = true; break;
		case O_TARGETS: {
			char buf[128];
			snprintf(buf, sizeof(buf), "%s", optarg);
			o->targets = 0;
			char *save = NULL;
			for (char *t = strtok_r(buf, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				enum rb_target tg;
				if (rb_target_parse(t, &tg) != 0)
					return die_usage("--targets: unknown target '%s'", t);
				o->targets |= 1u << tg;
			}
			break;
		}
		case O_NOSWEEP: o->no_sweep = true; break;
		case O_SCENARIO: {
			char buf[128];
			snprintf(buf, sizeof(buf), "%s", optarg);
			o->nsweep_scen = 0;
			char *save = NULL;
			for (char *t = strtok_r(buf, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				enum rb_scen s;
				if (rb_scen_parse(t, &s) != 0 || s == RB_SC_SWEEP ||
				    o->nsweep_scen == 4)
					return die_usage(
						"--scenario: unknown or too many scenarios at '%s'",
						t);
				o->sweep_scen[o->nsweep_scen++] = s;
			}
			break;
		}
		case O_THRLIST: {
			uint64_t v[32];
			unsigned n;
			if (parse_list(optarg, v, 32, &n) != 0 || n == 0)
				return die_usage(
					"--threads-list: expected counts like 1,2,4, got '%s'",
					optarg);
			for (unsigned i = 0; i < n; i++) {
				if (v[i] < 1 || v[i] > 64)
					return die_usage(
						"--threads-list: counts must be 1..64 ('%s')",
						optarg);
				o->threads[i] = (int)v[i];
			}
			o->nthreads = n;
			break;
		}
		case O_MAXTHR:
			if (parse_u64(optarg, &u) || u < 1 || u > 32)
				return die_usage("--max-threads: expected 1..32, got '%s'", optarg);
			for (unsigned i = 0; i < u; i++)
				o->threads[i] = (int)i + 1;
			o->nthreads = (unsigned)u;
			break;
		case O_CSV: o->csv = optarg; break;
		case O_JSON: o->json = optarg; break;
		case O_PLOT: o->plot = optarg; break;
		case O_PROGRESS: o->progress = 1; break;
		case O_QUIET:
			o->quiet = true;
			o->progress = 0;
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("ringmq-bench %s\n", RINGMQ_VERSION); exit(0);
		case ':': return die_usage("option '%s' needs a value", argv[optind - 1]);
		default: return die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc) {
		if (rb_scen_parse(argv[optind], &o->scen) != 0)
			return die_usage(
				"unknown scenario '%s' (createTopic, send, fanout, pull, latency, sweep, recovery, "
				"conns, loopback)",
				argv[optind]);
		o->scen_given = true;
		optind++;
	}
	if (optind < argc)
		return die_usage("unexpected argument '%s'", argv[optind]);
	if (!o->scen_given && !o->compare)
		return die_usage("%s", "a scenario is needed (or --compare)");
	if (o->scen == RB_SC_RECOVERY && (o->compare || o->target != RB_RINGMQ))
		return die_usage("%s", "recovery is ringmq-only (and not part of --compare)");
	if (o->scen == RB_SC_SWEEP && o->compare)
		return die_usage(
			"%s",
			"sweep and --compare are separate commands (--compare runs a sweep at the end)");
	if (!o->tls && (o->cacert || o->cert || o->key || o->insecure))
		return die_usage("%s", "--cacert, --cert, --key and --insecure go with --tls");
	if (o->tls && o->target == RB_NATS && !o->compare)
		return die_usage("%s", "--tls: not with nats (ringmq and redis only)");
	if (!o->repeats)
		o->repeats = o->compare ? 3 : 1;
	if (!o->nthreads) {
		unsigned n = rb_cores();
		for (unsigned i = 0; i < n && i < 32; i++)
			o->threads[i] = (int)i + 1;
		o->nthreads = n < 32 ? n : 32;
	}
	if (!o->nsweep_scen)
		o->sweep_scen[o->nsweep_scen++] = RB_SC_SEND;
	if (o->efficiency && (!o->compare || o->scen_given))
		return die_usage("%s", "--efficiency goes with --compare (without a scenario)");
	if (o->efficiency) { /* issue 16's cases, unless given otherwise */
		static const double rates[] = { 1e4, 1e5, 1e6 };
		static const uint64_t pays[] = { 16, 4096, 65536, 1048576 };
		if (!o->nrates) {
			memcpy(o->rates, rates, sizeof(rates));
			o->nrates = 3;
		}
		if (!o->nsubsl) {
			o->subsl[0] = 1;
			o->subsl[1] = 10;
			o->nsubsl = 2;
		}
		if (!o->npayloads) {
			memcpy(o->payloads, pays, sizeof(pays));
			o->npayloads = 4;
		}
	}
	if (o->scen == RB_SC_LOOPBACK && o->compare)
		o->targets = 0; /* only the loopback column */
	if (o->progress < 0)
		o->progress = isatty(2);
	w->progress = o->progress;
	if (!o->g_topics)
		w->topics = 1;
	return 0;
}

/* --- commands --- */

static int finish(struct rb_report *rep, const struct opts *o)
{
	rb_report_table(rep, stdout);
	rb_report_sweep_table(rep, stdout);
	fflush(stdout);
	int rc = 0;
	for (unsigned i = 0; i < rep->n; i++)
		if (rb_row_bad(rep->rows[i]))
			rc = 1;
	if (o->csv && rb_report_csv(rep, o->csv) != 0)
		rc = 1;
	if (o->json && rb_report_json(rep, o->json) != 0)
		rc = 1;
	if (o->plot && rb_report_plot(rep, o->plot) != 0)
		rc = 1;
	bool any_bad = false;
	for (unsigned i = 0; i < rep->n; i++)
		if (rb_row_bad(rep->rows[i]))
			any_bad = true;
	if (any_bad && !rb_interrupted) {
		fprintf(stderr, "\nringmq-bench: FAILED:");
		for (unsigned i = 0; i < rep->n; i++) {
			const struct rb_row *r = rep->rows[i];
			if (!rb_row_bad(r))
				continue;
			fprintf(stderr, "\n  %s [%s%s]: ", r->label, rb_target_name(r->target),
				r->sweep ? " sweep" : "");
			if (r->failed)
				fprintf(stderr, "%u of %u run(s) failed (%s)", r->failed, r->runs,
					r->err);
			else if (r->c.lost || r->c.dup || r->c.ooo || r->c.unexpected)
				fprintf(stderr,
					"lost %" PRIu64 ", duplicated %" PRIu64
					", out of order %" PRIu64 ", unexpected %" PRIu64,
					r->c.lost, r->c.dup, r->c.ooo, r->c.unexpected);
			else if (r->c.errors)
				fprintf(stderr, "%" PRIu64 " errors (%s)", r->c.errors, r->err);
		}
		fprintf(stderr, "\n");
	}
	if (rb_interrupted) {
		fprintf(stderr, "ringmq-bench: interrupted\n");
		rc = 130;
	}
	return rc;
}

static int cmd_single(struct opts *o, struct rb_report *rep)
{
	struct rb_server srv;
	if (o->scen == RB_SC_LOOPBACK) { /* no server at all */
		memset(&srv, 0, sizeof(srv));
		srv.target = RB_LOOPBACK;
		srv.threads = -1;
		srv.out_fd = -1;
		snprintf(srv.version, sizeof(srv.version), "limit");
	} else if (o->start_server) {
		if (start_target(o, o->target, o->server_threads, &srv) != 0)
			return 1;
	} else if (connect_server(o, o->target, &srv) != 0) {
		return 1;
	}
	static struct rb_case cases[MAX_CASES];
	unsigned n = make_cases(o, o->scen, cases, MAX_CASES);
	struct rb_row *rows[MAX_CASES];
	for (unsigned k = 0; k < n; k++)
		rows[k] = rb_report_row(rep, rb_scen_name(o->scen), cases[k].label, &srv,
					&cases[k].w);
	/* repeats alternate over the cases, as in --compare */
	for (unsigned i = 0; i < o->repeats && !rb_interrupted; i++)
		for (unsigned k = 0; k < n && !rb_interrupted; k++) {
			if ((o->repeats > 1 || n > 1) && !o->quiet)
				fprintf(stderr, "ringmq-bench: %s on %s, run %u/%u\n",
					cases[k].label, rb_target_name(srv.target), i + 1,
					o->repeats);
			rb_case_once(&cases[k], &srv, rows[k]);
		}
	if (srv.target != RB_LOOPBACK)
		rb_server_stop(&srv);
	return finish(rep, o);
}

static void sweep_cases(struct opts *o, struct rb_report *rep, const struct rb_case *cases,
			unsigned ncases)
{
	for (unsigned ti = 0; ti < o->nthreads && !rb_interrupted; ti++) {
		struct rb_server srv;
		if (start_target(o, RB_RINGMQ, o->threads[ti], &srv) != 0) {
			fprintf(stderr,
				"ringmq-bench: sweep: cannot start ringmq-server --threads %d\n",
				o->threads[ti]);
			struct rb_server fake = { .target = RB_RINGMQ, .threads = o->threads[ti] };
			for (unsigned k = 0; k < ncases; k++) {
				struct rb_row *row =
					rb_report_row(rep, rb_scen_name(cases[k].w.scen),
						      cases[k].label, &fake, &cases[k].w);
				row->sweep = true;
				row->runs = row->failed = 1;
				snprintf(row->err, sizeof(row->err), "server did not start");
			}
			continue;
		}
		for (unsigned k = 0; k < ncases && !rb_interrupted; k++) {
			struct rb_row *row = rb_report_row(rep, rb_scen_name(cases[k].w.scen),
							   cases[k].label, &srv, &cases[k].w);
			row->sweep = true;
			row->server_threads = srv.threads > 0 ? srv.threads : o->threads[ti];
			for (unsigned i = 0; i < o->repeats && !rb_interrupted; i++) {
				if (!o->quiet)
					fprintf(stderr,
						"ringmq-bench: sweep %s, --threads %d, run %u/%u\n",
						cases[k].label, o->threads[ti], i + 1, o->repeats);
				rb_case_once(&cases[k], &srv, row);
			}
		}
		rb_server_stop(&srv);
	}
}

static int cmd_sweep(struct opts *o, struct rb_report *rep)
{
	static struct rb_case cases[MAX_CASES];
	unsigned n = 0;
	for (unsigned k = 0; k < o->nsweep_scen; k++)
		if (o->sweep_scen[k] != RB_SC_LOOPBACK) /* no server to sweep */
			n += make_cases(o, o->sweep_scen[k], cases + n, MAX_CASES - n);
	sweep_cases(o, rep, cases, n);
	return finish(rep, o);
}

/* The --compare suite: what the README's performance targets are measured on. */
/* *nbase: how many of the cases are the base suite (the rest are issue
 * 16's, swept as well). */
static unsigned suite_cases(struct opts *o, struct rb_case *cases, unsigned *nbase)
{
	unsigned n = 0;
	struct opts so = *o;
	/* send: one connection, no replies (ingest) */
	so.g_pubs = so.g_subs = so.g_replies = so.g_depth = true;
	so.w.pubs = 1;
	so.w.subs = 0;
	so.w.replies = false;
	make_case(&so, RB_SC_SEND, &cases[n++]);
	/* send with replies: 50 connections, pipeline 64 (as redis-benchmark -c 50 -P 64) */
	so.w.pubs = 50;
	so.w.replies = true;
	so.w.depth = 64;
	make_case(&so, RB_SC_SEND, &cases[n++]);
	/* fan-out 1->1 and 1->10 */
	so = *o;
	so.g_pubs = so.g_subs = true;
	so.w.pubs = 1;
	so.w.subs = 1;
	make_case(&so, RB_SC_FANOUT, &cases[n++]);
	so.w.subs = 10;
	make_case(&so, RB_SC_FANOUT, &cases[n++]);
	/* latency at a fixed rate, 1->1 (with --rates: at each of them, below) */
	so.w.subs = 1;
	if (!o->nrates)
		make_case(&so, RB_SC_LATENCY, &cases[n++]);
	*nbase = n;
	/* issue 16: latency at each rate (1->1, 1->10), fan-out 1->10 at each
	 * payload, many connections */
	if (o->nrates)
		n += make_cases(o, RB_SC_LATENCY, cases + n, MAX_CASES - n);
	if (o->npayloads) {
		so = *o; /* fan-out 1->10 */
		so.nsubsl = 1;
		so.subsl[0] = 10;
		n += make_cases(&so, RB_SC_FANOUT, cases + n, MAX_CASES - n);
	}
	if (o->efficiency && n < MAX_CASES)
		make_case(o, RB_SC_CONNS, &cases[n++]);
	return n;
}

static int cmd_compare(struct opts *o, struct rb_report *rep)
{
	static struct rb_case cases[MAX_CASES];
	unsigned ncases, nbase = 0;
	if (o->scen_given) {
		ncases = make_cases(o, o->scen, cases, MAX_CASES);
	} else {
		ncases = suite_cases(o, cases, &nbase);
	}
	struct rb_server srv[RB_NTARGETS];
	bool have[RB_NTARGETS] = { false };
	/* the loopback column: no server */
	memset(&srv[RB_LOOPBACK], 0, sizeof(srv[RB_LOOPBACK]));
	srv[RB_LOOPBACK].target = RB_LOOPBACK;
	srv[RB_LOOPBACK].threads = -1;
	srv[RB_LOOPBACK].out_fd = -1;
	snprintf(srv[RB_LOOPBACK].version, sizeof(srv[RB_LOOPBACK].version), "limit");
	for (int t = 0; t < RB_NTARGETS; t++) {
		if (t == RB_LOOPBACK || !(o->targets & (1u << t)))
			continue;
		if (t == RB_RINGMQ && o->port && !o->start_server)
			have[t] = connect_server(o, RB_RINGMQ, &srv[t]) == 0;
		else
			have[t] =
				start_target(o, (enum rb_target)t,
					     t == RB_RINGMQ ? o->server_threads : 0, &srv[t]) == 0;
		if (!have[t] && t != RB_RINGMQ)
			fprintf(stderr,
				"ringmq-bench: %s skipped: not installed or did not start\n",
				rb_target_name(t));
	}
	if (!have[RB_RINGMQ] && (o->targets & 1u)) {
		fprintf(stderr, "ringmq-bench: no ringmq server to compare\n");
		return 1;
	}
	static struct rb_row *rows[MAX_CASES][RB_NTARGETS];
	memset(rows, 0, sizeof(rows));
	for (unsigned k = 0; k < ncases; k++)
		for (int t = 0; t < RB_NTARGETS; t++) {
			if (t == RB_LOOPBACK) {
				/* fan-out at each --payloads: the loopback limit too */
				bool want = cases[k].w.scen == RB_SC_LOOPBACK ||
					    (cases[k].w.scen == RB_SC_FANOUT && o->npayloads);
				if (want)
					rows[k][t] = rb_report_row(rep, "loopback", cases[k].label,
								   &srv[t], &cases[k].w);
				continue;
			}
			if (!have[t] || cases[k].w.scen == RB_SC_LOOPBACK)
				continue;
			if (t != RB_RINGMQ &&
			    (cases[k].w.scen == RB_SC_PULL || cases[k].w.scen == RB_SC_CREATE))
				continue; /* ringmq-only */
			if (t != RB_RINGMQ && rb_durable.fsync && cases[k].w.scen == RB_SC_CONNS)
				continue; /* AOF / JetStream publishing is not what conns measures */
			rows[k][t] = rb_report_row(rep, rb_scen_name(cases[k].w.scen),
						   cases[k].label, &srv[t], &cases[k].w);
		}
	/* alternate: every repeat runs each case on every target, the order of
	 * targets rotating, so drift on a shared machine hits all alike */
	for (unsigned i = 0; i < o->repeats && !rb_interrupted; i++) {
		for (unsigned k = 0; k < ncases && !rb_interrupted; k++) {
			for (int j = 0; j < RB_NTARGETS && !rb_interrupted; j++) {
				int t = (int)((i + (unsigned)j) % RB_NTARGETS);
				if (!rows[k][t])
					continue;
				if (!o->quiet)
					fprintf(stderr, "ringmq-bench: [%u/%u] %s on %s\n", i + 1,
						o->repeats, cases[k].label, rb_target_name(t));
				if (t == RB_LOOPBACK)
					loopback_once(&cases[k], rows[k][t]);
				else
					rb_case_once(&cases[k], &srv[t], rows[k][t]);
			}
		}
	}
	for (int t = 0; t < RB_NTARGETS; t++)
		if (have[t])
			rb_server_stop(&srv[t]);
	if (!o->scen_given && !o->no_sweep && !rb_interrupted && (o->targets & 1u)) {
		/* the thread sweep: ingest and fan-out 1->10 */
		struct rb_case sc[2] = { cases[0], cases[3] };
		sweep_cases(o, rep, sc, 2);
		/* and the issue-16 cases: latency at each rate, fan-out at each payload */
		if (ncases > nbase)
			sweep_cases(o, rep, cases + nbase, ncases - nbase);
	}
	return finish(rep, o);
}

/* --- recovery: kill -9 and restart on a filled data directory --- */

/* "key:value" of INFO text, as a number; -1 when absent. */
static double info_num(const struct rb_rval *v, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), "\n%s:", key);
	const char *p = memmem(v->p, v->len, k, strlen(k));
	return p ? strtod(p + strlen(k), NULL) : -1;
}

/* One INFO persistence; 0, or -1 (I/O, or an error reply). */
static int info_persist(const struct rb_server *s, struct rb_ctl *c, double *loading, double *bytes,
			double *msgs, double *ms)
{
	if (c->fd < 0)
		c->fd = rb_connect(s->host, s->port);
	struct rb_rval v;
	if (c->fd < 0 || rb_ctl_call(c, &v, "INFO", "persistence", NULL) != 0 || v.type != '$')
		return -1;
	*loading = info_num(&v, "loading");
	*bytes = info_num(&v, "recovered_bytes");
	*msgs = info_num(&v, "recovered_messages");
	*ms = info_num(&v, "recovery_time_ms");
	return 0;
}

/* Fills topic with at least `bytes` of payload: one connection, replies
 * off, MPUBLISH frames of 256 payloads in 1 MiB writes; CLIENT REPLY ON
 * at the end waits until all is processed. 0 or -1. */
static int recovery_fill(const struct rb_server *s, const char *topic, unsigned payload,
			 uint64_t bytes)
{
	struct rb_ctl c = { .fd = rb_connect(s->host, s->port) };
	if (c.fd < 0)
		return -1;
	struct rb_buf b = { 0 };
	const unsigned per = 256;
	unsigned frames = (unsigned)((1u << 20) / ((uint64_t)per * (payload + 16)) + 1);
	rb_buf_printf(&b, "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n");
	size_t hdr = b.len;
	for (unsigned f = 0; f < frames; f++) {
		rb_buf_printf(&b, "*%u\r\n$8\r\nMPUBLISH\r\n$%zu\r\n%s\r\n", per + 2, strlen(topic),
			      topic);
		for (unsigned i = 0; i < per; i++) {
			rb_buf_printf(&b, "$%u\r\n", payload);
			rb_buf_reserve(&b, payload + 2);
			for (unsigned j = 0; j < payload; j++)
				b.p[b.len + j] = (char)('a' + (i + j) % 26);
			b.len += payload;
			rb_buf_add(&b, "\r\n", 2);
		}
	}
	uint64_t per_write = (uint64_t)frames * per * payload, done = 0;
	int rc = rb_write_all(c.fd, b.p, hdr);
	while (rc == 0 && done < bytes && !rb_interrupted) {
		rc = rb_write_all(c.fd, b.p + hdr, b.len - hdr);
		done += per_write;
	}
	rb_buf_free(&b);
	struct rb_rval v;
	const char *on = "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n";
	if (rc == 0 &&
	    (rb_write_all(c.fd, on, strlen(on)) != 0 || rb_ctl_read(&c, &v) != 0 || v.type == '-'))
		rc = -1;
	rb_ctl_close(&c);
	return rc;
}

/* --recovery-cold: each segment file's pages out of the page cache
 * (synced first: only clean pages can be dropped), as after a reboot,
 * without root. */
static int drop_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	size_t n = strlen(p);
	if (flag != FTW_F || n < 4 || strcmp(p + n - 4, ".seg") != 0)
		return 0;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fdatasync(fd);
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	return 0;
}

static void recovery_once(struct opts *o, const char *bin, struct rb_row *row)
{
	row->runs++;
	struct rb_server s;
	if (start_target(o, RB_RINGMQ, o->server_threads, &s) != 0) {
		row->failed++;
		snprintf(row->err, sizeof(row->err), "ringmq-server did not start");
		return;
	}
	if (!row->version[0]) { /* the row was made before any server ran */
		snprintf(row->version, sizeof(row->version), "%s", s.version);
		row->server_threads = s.threads;
	}
	char topic[96], cap[32];
	rb_topic_prefix(topic, sizeof(topic));
	/* room for every record with its overhead: nothing trimmed */
	snprintf(cap, sizeof(cap), "%" PRIu64, o->recovery_bytes * 3 + (64u << 20));
	struct rb_ctl c = { .fd = rb_connect(s.host, s.port) };
	struct rb_rval v;
	const char *why = NULL;
	if (c.fd < 0 ||
	    rb_ctl_call(&c, &v, "CREATE", topic, "CAPACITY", cap, "STORAGE", "disk", NULL) != 0 ||
	    v.type == '-')
		why = "CREATE of the disk topic failed";
	rb_ctl_close(&c);
	uint64_t f0 = rb_now_ms();
	if (!why && recovery_fill(&s, topic, o->w.payload, o->recovery_bytes) != 0)
		why = "filling the topic failed";
	uint64_t fill_ms = rb_now_ms() - f0;
	if (!why && o->recovery_cold)
		(void)nftw(s.dir, drop_one, 16, FTW_PHYS);
	double loading = 1, bytes = 0, msgs = 0, ms = 0;
	uint64_t t0 = rb_now_ns(), t1 = 0;
	if (!why && rb_server_crash_restart(&s, bin, o->server_threads, o->server_args) != 0)
		why = "restart after kill -9 failed";
	c = (struct rb_ctl){ .fd = -1 };
	while (!why && !rb_interrupted) {
		if (info_persist(&s, &c, &loading, &bytes, &msgs, &ms) != 0) {
			why = "INFO persistence failed after the restart";
		} else if (loading == 0) {
			t1 = rb_now_ns();
			break;
		} else {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
		if (rb_now_ns() - t0 > 600ull * 1000000000ull)
			why = "still loading after 600 s";
	}
	rb_ctl_close(&c);
	rb_server_stop(&s);
	if (why || !t1) {
		row->failed++;
		snprintf(row->err, sizeof(row->err), "%s", why ? why : "interrupted");
		return;
	}
	double secs = (double)(t1 - t0) / 1e9;
	rb_row_add(row, "restart_to_loaded_s", "kill -9 -> loading:0 s", "s", -1, secs);
	rb_row_add(row, "recovery_time_ms", "server recovery_time_ms", "ms", -1, ms);
	rb_row_add(row, "recovered_gb_per_s", "recovered GB/s", "GB/s", 1, bytes / secs / 1e9);
	rb_row_add(row, "recovered_mib", "recovered MiB", "MiB", 0, bytes / 1048576.0);
	rb_row_add(row, "recovered_msgs", "recovered msgs", "msgs", 0, msgs);
	rb_row_add(row, "fill_s", "fill s", "s", 0, (double)fill_ms / 1000);
	if (!o->quiet)
		fprintf(stderr,
			"ringmq-bench: recovered %.0f MiB (%.0f msgs) in %.3f s (server: %.0f ms), "
			"%.2f GB/s\n",
			bytes / 1048576.0, msgs, secs, ms, bytes / secs / 1e9);
}

static int cmd_recovery(struct opts *o, struct rb_report *rep)
{
	const char *name = o->server_bin ? o->server_bin : "ringmq-server";
	const char *found = rb_find_exe(name);
	if (!found) {
		fprintf(stderr, "ringmq-bench: %s not found (build it, or pass --server PATH)\n",
			name);
		return 1;
	}
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", found);
	struct rb_case c;
	make_case(o, RB_SC_SEND, &c);
	c.w.scen = RB_SC_RECOVERY;
	c.w.pubs = 1;
	c.w.subs = 0;
	snprintf(c.label, sizeof(c.label), "recovery of %.0f MiB%s, %u B payloads",
		 (double)o->recovery_bytes / 1048576.0, o->recovery_cold ? " (cold)" : " (warm)",
		 c.w.payload);
	struct rb_server info = { .target = RB_RINGMQ, .threads = -1 };
	struct rb_row *row = rb_report_row(rep, "recovery", c.label, &info, &c.w);
	for (unsigned i = 0; i < o->repeats && !rb_interrupted; i++) {
		if (!o->quiet)
			fprintf(stderr, "ringmq-bench: %s, run %u/%u\n", c.label, i + 1,
				o->repeats);
		recovery_once(o, bin, row);
	}
	return finish(rep, o);
}

/* --tls: certificates for the servers started here (unless a CA was
 * given: then the servers are the user's), and the client side. */
static int tls_setup(struct opts *o)
{
	if (!o->tls)
		return 0;
	bool starts = o->compare || o->start_server || o->scen == RB_SC_SWEEP;
	const char *ca = o->cacert;
	if (starts) {
		const char *made = rb_tls_servers();
		if (!made)
			return 1;
		if (!ca)
			ca = made;
		if (o->compare && (o->targets & (1u << RB_NATS))) {
			o->targets &= ~(1u << RB_NATS);
			fprintf(stderr, "ringmq-bench: --tls: nats skipped (not run over TLS)\n");
		}
	}
	struct rb_tls_opts t = {
		.ca = ca, .cert = o->cert, .key = o->key, .insecure = o->insecure
	};
	return rb_tls_init(&t) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--cluster") || (i == 1 && !strcmp(argv[i], "cluster")))
			return rb_cluster_main(argc, argv);
	struct opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc;
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(at_exit);
	if (tls_setup(&o) != 0)
		return 1;
	/* the conns scenario holds 10,000+ connections: room for them here and
	 * in the servers started here (they inherit the limit) */
	uint64_t nofile = rb_raise_nofile();
	bool conns = o.scen == RB_SC_CONNS || o.efficiency;
	for (unsigned i = 0; i < o.nsweep_scen; i++)
		conns |= o.scen == RB_SC_SWEEP && o.sweep_scen[i] == RB_SC_CONNS;
	if (conns) {
		rb_server_max_clients = o.idle + o.active + o.conns_pubs + 1000;
		if (nofile && nofile < (uint64_t)o.idle + o.active + 64)
			fprintf(stderr,
				"ringmq-bench: warning: RLIMIT_NOFILE is %" PRIu64
				", too few for %u idle + %u active connections (raise the hard "
				"limit: ulimit -Hn)\n",
				nofile, o.idle, o.active);
	}
	struct rb_report rep;
	rb_report_init(&rep, argc, argv);
	rep.repeats = o.repeats;
	if (o.compare)
		rc = cmd_compare(&o, &rep);
	else if (o.scen == RB_SC_SWEEP)
		rc = cmd_sweep(&o, &rep);
	else if (o.scen == RB_SC_RECOVERY)
		rc = cmd_recovery(&o, &rep);
	else
		rc = cmd_single(&o, &rep);
	rb_report_free(&rep);
	return rc;
}
