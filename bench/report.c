/* report.c - collecting figures and printing them (see report.h). */
#define _GNU_SOURCE
#include "report.h"
#include "ringmq_version.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"
#include "wire.h"

#define BENCH_VERSION RINGMQ_VERSION

void rb_report_init(struct rb_report *rep, int argc, char **argv)
{
	memset(rep, 0, sizeof(*rep));
	size_t off = 0;
	for (int i = 0; i < argc && off < sizeof(rep->command) - 4; i++) {
		int n = snprintf(rep->command + off, sizeof(rep->command) - off, "%s%s",
				 i ? " " : "", argv[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	if (off >= sizeof(rep->command))
		rep->command[sizeof(rep->command) - 1] = 0;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(rep->started, sizeof(rep->started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	rep->cores = rb_cores();
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(rep->kernel, sizeof(rep->kernel), "%s %s %s", u.sysname, u.release,
			 u.machine);
	gethostname(rep->host, sizeof(rep->host) - 1);
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[256];
		while (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "model name", 10)) {
				char *c = strchr(line, ':');
				if (c) {
					c++;
					while (*c == ' ')
						c++;
					c[strcspn(c, "\n")] = 0;
					snprintf(rep->cpu, sizeof(rep->cpu), "%s", c);
				}
				break;
			}
		}
		fclose(f);
	}
	snprintf(rep->bench_version, sizeof(rep->bench_version), "%s", BENCH_VERSION);
}

struct rb_row *rb_report_row(struct rb_report *rep, const char *scenario, const char *label,
			     const struct rb_server *srv, const struct rb_work *w)
{
	if (rep->n == rep->cap) {
		rep->cap = rep->cap ? rep->cap * 2 : 16;
		rep->rows = realloc(rep->rows, rep->cap * sizeof(*rep->rows));
		if (!rep->rows)
			abort();
	}
	struct rb_row *row = calloc(1, sizeof(*row));
	if (!row)
		abort();
	snprintf(row->scenario, sizeof(row->scenario), "%s", scenario);
	snprintf(row->label, sizeof(row->label), "%s", label);
	row->target = srv->target;
	snprintf(row->version, sizeof(row->version), "%s", srv->version);
	row->server_threads = srv->target == RB_RINGMQ ? srv->threads : -1;
	row->work = *w;
	row->work.label = NULL;
	row->checked = w->subs > 0 && w->frame == RB_FR_PUBLISH;
	rep->rows[rep->n++] = row;
	return row;
}

void rb_report_free(struct rb_report *rep)
{
	for (unsigned i = 0; i < rep->n; i++) {
		free(rep->rows[i]->lat);
		free(rep->rows[i]);
	}
	free(rep->rows);
	rep->rows = NULL;
	rep->n = rep->cap = 0;
}

void rb_row_add(struct rb_row *row, const char *key, const char *label, const char *unit,
		int better, double v)
{
	struct rb_metric *m = NULL;
	for (unsigned i = 0; i < row->nm; i++)
		if (!strcmp(row->m[i].key, key))
			m = &row->m[i];
	if (!m) {
		if (row->nm == RB_MAX_METRICS)
			return;
		m = &row->m[row->nm++];
		snprintf(m->key, sizeof(m->key), "%s", key);
		snprintf(m->label, sizeof(m->label), "%s", label);
		snprintf(m->unit, sizeof(m->unit), "%s", unit);
		m->better = better;
	}
	if (m->n < RB_MAX_REPEATS)
		m->v[m->n++] = v;
}

const struct rb_metric *rb_row_metric(const struct rb_row *row, const char *key)
{
	for (unsigned i = 0; i < row->nm; i++)
		if (!strcmp(row->m[i].key, key))
			return &row->m[i];
	return NULL;
}

static void add_pcts(struct rb_row *row, const struct rb_hist *h, const char *pfx, bool full)
{
	static const struct {
		double p;
		const char *k, *l;
		bool always;
	} ps[] = {
		{ 50, "p50", "p50", true },          { 90, "p90", "p90", false },
		{ 99, "p99", "p99", true },          { 99.9, "p999", "p99.9", true },
		{ 99.99, "p9999", "p99.99", false }, { 100, "max", "max", true },
	};
	if (!h->count)
		return;
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		if (!ps[i].always && !full)
			continue;
		char key[48], label[40];
		snprintf(key, sizeof(key), "%s_%s_us", pfx, ps[i].k);
		snprintf(label, sizeof(label), "%s %s", pfx, ps[i].l);
		rb_row_add(row, key, label, "us", -1,
			   (double)rb_hist_percentile(h, ps[i].p) / 1000.0);
	}
}

void rb_row_add_result(struct rb_row *row, const struct rb_result *r)
{
	row->runs++;
	row->batch_used = r->batch;
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
	const struct rb_hist *h = r->e2e.count ? &r->e2e : &r->ack;
	if (!row->lat) {
		row->lat = malloc(sizeof(*row->lat));
		if (!row->lat)
			abort();
		rb_hist_reset(row->lat);
	}
	rb_hist_merge(row->lat, h);

	const char *s = row->scenario;
	double secs = r->secs > 0 ? r->secs : 1;
	bool send = !strcmp(s, "send"), lat = !strcmp(s, "latency");
	bool deliver = !strcmp(s, "fanout") || !strcmp(s, "pull") || lat;
	double pub = (double)(row->work.replies ? r->acked : r->sent) / secs;
	double del = (double)r->delivered / secs;
	if (lat)
		rb_row_add(row, "achieved_rate_msgs_per_s", "achieved rate msg/s", "msg/s", 0,
			   (double)r->sent / secs);
	else
		rb_row_add(row, "published_msgs_per_s", "published msg/s", "msg/s", +1, pub);
	if (send)
		rb_row_add(row, "published_MB_per_s", "published MB/s", "MB/s", +1,
			   pub * (double)r->payload / 1e6);
	if (deliver) {
		rb_row_add(row, "delivered_msgs_per_s", "delivered msg/s", "msg/s", lat ? 0 : +1,
			   del);
		if (!lat) {
			rb_row_add(row, "delivered_MB_per_s", "delivered MB/s", "MB/s", +1,
				   del * (double)r->payload / 1e6);
			rb_row_add(row, "delivered_GB_per_s", "delivered GB/s", "GB/s", +1,
				   del * (double)r->payload / 1e9);
		}
		add_pcts(row, &r->e2e, "e2e", lat);
	}
	if (r->ack.count)
		add_pcts(row, &r->ack, "ack", false);
	if (r->send_lag.count) {
		/* the generator's own lateness, already inside the e2e figures */
		rb_row_add(row, "send_lag_p50_us", "generator send lag p50", "us", 0,
			   (double)rb_hist_percentile(&r->send_lag, 50) / 1000.0);
		rb_row_add(row, "send_lag_p99_us", "generator send lag p99", "us", 0,
			   (double)rb_hist_percentile(&r->send_lag, 99) / 1000.0);
	}
	if (!strcmp(s, "fanout") || !strcmp(s, "pull")) {
		/* bounded by --window under full load: informative, not a score */
		rb_row_add(row, "lag_avg_msgs", "lag avg msgs", "msgs", 0, r->lag_avg);
		rb_row_add(row, "lag_max_msgs", "lag max msgs", "msgs", 0, r->lag_max);
	}
	if (r->srv_cpu >= 0) {
		rb_row_add(row, "server_cpu_pct", "server CPU %", "%", 0,
			   100.0 * r->srv_cpu / secs);
		double per = deliver ? (double)r->delivered : pub * secs;
		if (per > 0)
			rb_row_add(row,
				   deliver ? "server_cpu_s_per_M_delivered"
					   : "server_cpu_s_per_M_published",
				   deliver ? "server CPU s/M delivered"
					   : "server CPU s/M published",
				   "s/M", -1, r->srv_cpu / (per / 1e6));
	}
	rb_row_add(row, "gen_cpu_max_pct", "generator busiest thr %", "%", 0,
		   100.0 * r->gen_cpu_max);
}

bool rb_row_bad(const struct rb_row *row)
{
	if (row->failed || row->runs == 0)
		return true;
	if (row->c.errors)
		return true;
	if (row->checked && (row->c.lost || row->c.dup || row->c.ooo || row->c.unexpected))
		return true;
	return false;
}

/* --- formatting --- */

void rb_fmt_num(char *b, size_t n, double v)
{
	double a = v < 0 ? -v : v;
	if (a >= 1e9)
		snprintf(b, n, "%.2fG", v / 1e9);
	else if (a >= 1e6)
		snprintf(b, n, "%.2fM", v / 1e6);
	else if (a >= 1e4)
		snprintf(b, n, "%.1fk", v / 1e3);
	else if (a >= 100)
		snprintf(b, n, "%.0f", v);
	else if (a >= 10)
		snprintf(b, n, "%.1f", v);
	else
		snprintf(b, n, "%.2f", v);
}

static void cell(char *b, size_t n, const struct rb_metric *m)
{
	if (!m || !m->n) {
		snprintf(b, n, "-");
		return;
	}
	struct rb_summary s;
	rb_stats_summary(m->v, m->n, &s);
	char a[24], lo[24], hi[24];
	rb_fmt_num(a, sizeof(a), s.median);
	if (m->n == 1) {
		snprintf(b, n, "%s", a);
		return;
	}
	rb_fmt_num(lo, sizeof(lo), s.min);
	rb_fmt_num(hi, sizeof(hi), s.max);
	snprintf(b, n, "%s [%s-%s]", a, lo, hi);
}

static double med(const struct rb_metric *m)
{
	return m && m->n ? rb_stats_median(m->v, m->n) : 0;
}

static void config_line(const struct rb_row *row, FILE *f)
{
	const struct rb_work *w = &row->work;
	if (!strcmp(row->scenario, "createTopic")) {
		fprintf(f, "   %u clients x %" PRIu64 " topics, depth %u, %u run(s)\n", w->pubs,
			w->count, w->depth, row->runs);
		return;
	}
	fprintf(f, "   %u pub -> %u %s on %u topic(s), payload %u B, %s", w->pubs, w->subs,
		w->durable ? "pullers" : "subs", w->topics, w->payload,
		w->replies ? "replies on" : "replies off");
	if (w->replies)
		fprintf(f, " (depth %u)", w->depth);
	if (w->mpublish > 1)
		fprintf(f, ", MPUBLISH x%u", w->mpublish);
	if (w->rate > 0)
		fprintf(f, ", rate %.0f msg/s", w->rate);
	if (w->window && w->subs)
		fprintf(f, ", window %" PRIu64, w->window);
	if (w->count)
		fprintf(f, ", %" PRIu64 " msgs/pub", w->count);
	else
		fprintf(f, ", %gs", w->duration);
	fprintf(f, " + %gs warm-up, %u run(s)\n", w->warmup, row->runs);
}

static void counts_line(const struct rb_row *row, FILE *f)
{
	if (row->failed)
		fprintf(f, "   %s: %u of %u run(s) FAILED: %s\n", rb_target_name(row->target),
			row->failed, row->runs, row->err);
	if (row->checked && row->runs > row->failed)
		fprintf(f,
			"   %s: sent %" PRIu64 ", expected %" PRIu64 " deliveries, got %" PRIu64
			": lost %" PRIu64 ", duplicated %" PRIu64 ", out of order %" PRIu64
			"%s%s\n",
			rb_target_name(row->target), row->c.total_sent, row->c.expected,
			row->c.received, row->c.lost, row->c.dup, row->c.ooo,
			row->c.unexpected ? ", UNEXPECTED messages" : "",
			row->c.lost || row->c.dup || row->c.ooo || row->c.unexpected ? "   <== FAIL"
										     : "  ok");
	if (row->c.errors)
		fprintf(f, "   %s: %" PRIu64 " error(s): %s   <== FAIL\n",
			rb_target_name(row->target), row->c.errors,
			row->err[0] ? row->err : "(see the server log)");
}

void rb_report_table(const struct rb_report *rep, FILE *f)
{
	bool *done = calloc(rep->n + 1, sizeof(*done));
	for (unsigned i = 0; i < rep->n; i++) {
		if (done[i] || rep->rows[i]->sweep)
			continue;
		/* this label's rows, one per target, in target order */
		const struct rb_row *cols[RB_NTARGETS] = { 0 };
		unsigned ncols = 0;
		for (unsigned j = i; j < rep->n; j++) {
			const struct rb_row *r = rep->rows[j];
			if (r->sweep || strcmp(r->label, rep->rows[i]->label) != 0)
				continue;
			done[j] = true;
			if (!cols[r->target]) {
				cols[r->target] = r;
				ncols++;
			}
		}
		const struct rb_row *first = rep->rows[i];
		fprintf(f, "\n== %s ==\n", first->label);
		config_line(first, f);
		const struct rb_row *ring = cols[RB_RINGMQ];
		fprintf(f, "   %-30s", "");
		for (int t = 0; t < RB_NTARGETS; t++) {
			if (!cols[t])
				continue;
			char h[96];
			snprintf(h, sizeof(h), "%s %s", rb_target_name(t), cols[t]->version);
			if (t == RB_RINGMQ && cols[t]->server_threads > 0)
				snprintf(h, sizeof(h), "ringmq %s (%d thr)", cols[t]->version,
					 cols[t]->server_threads);
			fprintf(f, " %-24s", h);
			if (t != RB_RINGMQ && ring)
				fprintf(f, " %-9s", "ringmq/x");
		}
		fputc('\n', f);
		/* metrics in the order of the first row that has them */
		const struct rb_row *mref = ring ? ring : first;
		for (int t = 0; t < RB_NTARGETS; t++)
			if (cols[t] && cols[t]->nm > mref->nm)
				mref = cols[t];
		for (unsigned k = 0; k < mref->nm; k++) {
			const char *key = mref->m[k].key;
			fprintf(f, "   %-30s", mref->m[k].label);
			const struct rb_metric *rm = ring ? rb_row_metric(ring, key) : NULL;
			for (int t = 0; t < RB_NTARGETS; t++) {
				if (!cols[t])
					continue;
				const struct rb_metric *m = rb_row_metric(cols[t], key);
				char c[96];
				cell(c, sizeof(c), m);
				fprintf(f, " %-24s", c);
				if (t != RB_RINGMQ && ring) {
					double a = med(rm), b = med(m);
					if (rm && m && a > 0 && b > 0 && mref->m[k].better) {
						double ratio = a / b;
						const char *mark = "";
						if (mref->m[k].better > 0)
							mark = ratio >= 1 ? " +" : " -";
						else if (mref->m[k].better < 0)
							mark = ratio <= 1 ? " +" : " -";
						char rs[24];
						snprintf(rs, sizeof(rs), "%.2fx%s", ratio, mark);
						fprintf(f, " %-9s", rs);
					} else {
						fprintf(f, " %-9s", "-");
					}
				}
			}
			fputc('\n', f);
		}
		for (int t = 0; t < RB_NTARGETS; t++)
			if (cols[t])
				counts_line(cols[t], f);
		for (int t = 0; t < RB_NTARGETS; t++) {
			const struct rb_metric *g =
				cols[t] ? rb_row_metric(cols[t], "gen_cpu_max_pct") : NULL;
			if (g && med(g) >= 90)
				fprintf(f,
					"   note: a %s generator thread was %.0f%% busy: the generator may be the "
					"limit (see bench/README.md)\n",
					rb_target_name(t), med(g));
		}
		if (ncols > 1 && ring)
			fprintf(f,
				"   ringmq/x: ratio of medians; + ringmq better, - ringmq behind\n");
	}
	free(done);
}

static const char *sweep_keys[] = {
	"published_msgs_per_s", "delivered_msgs_per_s", "achieved_rate_msgs_per_s",
	"delivered_GB_per_s",   "e2e_p50_us",           "e2e_p99_us",
	"e2e_p999_us",          "ack_p99_us",           "server_cpu_s_per_M_delivered",
	"server_cpu_pct",       "gen_cpu_max_pct"
};

void rb_report_sweep_table(const struct rb_report *rep, FILE *f)
{
	bool *done = calloc(rep->n + 1, sizeof(*done));
	for (unsigned i = 0; i < rep->n; i++) {
		if (done[i] || !rep->rows[i]->sweep)
			continue;
		const struct rb_row *first = rep->rows[i];
		fprintf(f, "\n== sweep: %s, ringmq-server --threads N ==\n", first->label);
		config_line(first, f);
		fprintf(f, "   %-8s", "threads");
		const char *keys[16];
		unsigned nk = 0;
		for (size_t k = 0; k < sizeof(sweep_keys) / sizeof(sweep_keys[0]); k++)
			if (rb_row_metric(first, sweep_keys[k])) {
				keys[nk++] = sweep_keys[k];
				fprintf(f, " %-24s", rb_row_metric(first, sweep_keys[k])->label);
			}
		fputc('\n', f);
		/* best thread count by what the case delivers, else publishes */
		/* latency at a fixed rate: the lowest e2e p99 */
		bool lowest =
			!strcmp(first->scenario, "latency") && rb_row_metric(first, "e2e_p99_us");
		const char *bkey =
			lowest                                         ? "e2e_p99_us"
			: rb_row_metric(first, "delivered_msgs_per_s") ? "delivered_msgs_per_s"
			: rb_row_metric(first, "published_msgs_per_s") ? "published_msgs_per_s"
								       : keys[0];
		double best = -1;
		int best_thr = -1;
		for (unsigned j = i; j < rep->n; j++) {
			const struct rb_row *r = rep->rows[j];
			if (!r->sweep || strcmp(r->label, first->label) != 0)
				continue;
			double v = med(rb_row_metric(r, bkey));
			if (lowest)
				v = v > 0 ? 1 / v : 0;
			if (v > best) {
				best = v;
				best_thr = r->server_threads;
			}
		}
		for (unsigned j = i; j < rep->n; j++) {
			const struct rb_row *r = rep->rows[j];
			if (!r->sweep || strcmp(r->label, first->label) != 0)
				continue;
			done[j] = true;
			char t[16];
			snprintf(t, sizeof(t), "%d%s", r->server_threads,
				 r->server_threads == best_thr ? " *" : "");
			fprintf(f, "   %-8s", t);
			for (unsigned k = 0; k < nk; k++) {
				char c[96];
				cell(c, sizeof(c), rb_row_metric(r, keys[k]));
				fprintf(f, " %-24s", c);
			}
			fputc('\n', f);
		}
		for (unsigned j = i; j < rep->n; j++) {
			const struct rb_row *r = rep->rows[j];
			if (r->sweep && !strcmp(r->label, first->label) && rb_row_bad(r)) {
				fprintf(f, "   threads %d:\n", r->server_threads);
				counts_line(r, f);
			}
		}
		fprintf(f, "   * best %s%s\n", lowest ? "(lowest) " : "",
			rb_row_metric(first, bkey)->label);
	}
	free(done);
}

/* --- CSV --- */

static void csv_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

int rb_report_csv(const struct rb_report *rep, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "ringmq-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f,
		"scenario,label,target,version,server_threads,sweep,publishers,subscribers,topics,"
		"payload,depth,batch,replies,mpublish,rate,window,duration_s,warmup_s,count,cores,"
		"metric,unit,median,min,max,mean,repeats,lost,duplicated,out_of_order,errors,failed_runs\n");
	for (unsigned i = 0; i < rep->n; i++) {
		const struct rb_row *r = rep->rows[i];
		const struct rb_work *w = &r->work;
		for (unsigned k = 0; k < r->nm; k++) {
			const struct rb_metric *m = &r->m[k];
			struct rb_summary s;
			rb_stats_summary(m->v, m->n, &s);
			csv_str(f, r->scenario);
			fputc(',', f);
			csv_str(f, r->label);
			fprintf(f, ",%s,", rb_target_name(r->target));
			csv_str(f, r->version);
			fprintf(f,
				",%d,%d,%u,%u,%u,%u,%u,%u,%d,%u,%.0f,%" PRIu64 ",%.3f,%.3f,%" PRIu64
				",%u,",
				r->server_threads, r->sweep, w->pubs, w->subs, w->topics,
				w->payload, w->depth, r->batch_used, w->replies, w->mpublish,
				w->rate, w->window, w->duration, w->warmup, w->count, rep->cores);
			csv_str(f, m->key);
			fprintf(f,
				",%s,%.6g,%.6g,%.6g,%.6g,%zu,%" PRIu64 ",%" PRIu64 ",%" PRIu64
				",%" PRIu64 ",%u\n",
				m->unit, s.median, s.min, s.max, s.mean, s.n, r->c.lost, r->c.dup,
				r->c.ooo, r->c.errors, r->failed);
		}
	}
	int rc = fclose(f) == 0 ? 0 : -1;
	return rc;
}

/* --- JSON --- */

static void js_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void js_num(FILE *f, double v)
{
	if (v != v || v > 1e300 || v < -1e300)
		fputs("null", f);
	else if (v == (double)(int64_t)v && v < 9e15 && v > -9e15)
		fprintf(f, "%" PRId64, (int64_t)v);
	else
		fprintf(f, "%.6g", v);
}

int rb_report_json(const struct rb_report *rep, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "ringmq-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "{\n  \"tool\": \"ringmq-bench\",\n  \"version\": ");
	js_str(f, rep->bench_version);
	fprintf(f, ",\n  \"started\": ");
	js_str(f, rep->started);
	fprintf(f, ",\n  \"command\": ");
	js_str(f, rep->command);
	fprintf(f, ",\n  \"machine\": {\"cores\": %u, \"cpu\": ", rep->cores);
	js_str(f, rep->cpu);
	fprintf(f, ", \"kernel\": ");
	js_str(f, rep->kernel);
	fprintf(f, ", \"host\": ");
	js_str(f, rep->host);
	fprintf(f, "},\n  \"results\": [");
	for (unsigned i = 0; i < rep->n; i++) {
		const struct rb_row *r = rep->rows[i];
		const struct rb_work *w = &r->work;
		fprintf(f, "%s\n    {\"scenario\": ", i ? "," : "");
		js_str(f, r->scenario);
		fprintf(f, ", \"label\": ");
		js_str(f, r->label);
		fprintf(f, ", \"target\": \"%s\", \"version\": ", rb_target_name(r->target));
		js_str(f, r->version);
		fprintf(f, ", \"server_threads\": ");
		if (r->server_threads > 0)
			fprintf(f, "%d", r->server_threads);
		else
			fputs("null", f);
		fprintf(f, ", \"sweep\": %s, \"ok\": %s,\n     \"config\": {",
			r->sweep ? "true" : "false", rb_row_bad(r) ? "false" : "true");
		fprintf(f,
			"\"publishers\": %u, \"subscribers\": %u, \"durable\": %s, \"topics\": %u, \"payload\": %u, "
			"\"depth\": %u, \"batch\": %u, \"replies\": %s, \"mpublish\": %u, \"rate\": ",
			w->pubs, w->subs, w->durable ? "true" : "false", w->topics, w->payload,
			w->depth, r->batch_used, w->replies ? "true" : "false", w->mpublish);
		js_num(f, w->rate);
		fprintf(f, ", \"window\": %" PRIu64 ", \"duration_s\": ", w->window);
		js_num(f, w->duration);
		fprintf(f, ", \"warmup_s\": ");
		js_num(f, w->warmup);
		fprintf(f,
			", \"count\": %" PRIu64 ", \"pub_threads\": %u, \"sub_threads\": %u, "
			"\"pull_count\": %u, \"capacity\": %" PRIu64 ", \"cores\": %u",
			w->count, w->pub_threads, w->sub_threads, w->pull_count, w->capacity,
			rep->cores);
		if (r->nlookup) {
			fprintf(f, ", \"lookup_sizes\": [");
			for (unsigned k = 0; k < r->nlookup; k++)
				fprintf(f, "%s%" PRIu64, k ? ", " : "", r->lookup_sizes[k]);
			fputc(']', f);
		}
		fprintf(f, "},\n     \"runs\": %u, \"failed_runs\": %u, \"error\": ", r->runs,
			r->failed);
		js_str(f, r->err);
		fprintf(f,
			",\n     \"counts\": {\"checked\": %s, \"sent\": %" PRIu64
			", \"expected\": %" PRIu64 ", \"delivered\": %" PRIu64
			", \"lost\": %" PRIu64 ", \"duplicated\": %" PRIu64
			", \"out_of_order\": %" PRIu64 ", \"unexpected\": %" PRIu64
			", \"errors\": %" PRIu64 "},\n"
			"     \"metrics\": {",
			r->checked ? "true" : "false", r->c.total_sent, r->c.expected,
			r->c.received, r->c.lost, r->c.dup, r->c.ooo, r->c.unexpected, r->c.errors);
		for (unsigned k = 0; k < r->nm; k++) {
			const struct rb_metric *m = &r->m[k];
			struct rb_summary s;
			rb_stats_summary(m->v, m->n, &s);
			fprintf(f, "%s\n       ", k ? "," : "");
			js_str(f, m->key);
			fprintf(f, ": {\"unit\": ");
			js_str(f, m->unit);
			fprintf(f, ", \"better\": \"%s\", \"median\": ",
				m->better > 0   ? "higher"
				: m->better < 0 ? "lower"
						: "n/a");
			js_num(f, s.median);
			fprintf(f, ", \"min\": ");
			js_num(f, s.min);
			fprintf(f, ", \"max\": ");
			js_num(f, s.max);
			fprintf(f, ", \"samples\": [");
			for (unsigned j = 0; j < m->n; j++) {
				if (j)
					fputs(", ", f);
				js_num(f, m->v[j]);
			}
			fputs("]}", f);
		}
		fputs("}", f);
		if (r->lat && r->lat->count) {
			static const double ps[] = { 50, 90, 99, 99.9, 99.99, 100 };
			fprintf(f,
				",\n     \"latency_all_runs_us\": {\"count\": %" PRIu64
				", \"mean\": ",
				r->lat->count);
			js_num(f, rb_hist_mean(r->lat) / 1000);
			for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
				fprintf(f, ", \"p%g\": ", ps[k]);
				js_num(f, (double)rb_hist_percentile(r->lat, ps[k]) / 1000);
			}
			fputc('}', f);
		}
		fputs("}", f);
	}
	fprintf(f, "\n  ]\n}\n");
	return fclose(f) == 0 ? 0 : -1;
}

/* --- plots --- */

static int run_gnuplot(const char *script)
{
	const char *gp = rb_find_exe("gnuplot");
	if (!gp) {
		fprintf(stderr,
			"ringmq-bench: --plot needs gnuplot (Debian: gnuplot-nox; scripts/setup.sh bench)\n");
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl(gp, "gnuplot", script, (char *)NULL);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "ringmq-bench: gnuplot %s failed\n", script);
		return -1;
	}
	return 0;
}

static void derived_path(char *out, size_t n, const char *path, const char *suffix)
{
	const char *dot = strrchr(path, '.');
	const char *slash = strrchr(path, '/');
	if (dot && (!slash || dot > slash))
		snprintf(out, n, "%.*s-%s%s", (int)(dot - path), path, suffix, dot);
	else
		snprintf(out, n, "%s-%s.png", path, suffix);
}

static int plot_sweep(const struct rb_report *rep, const char *png, const char *dir)
{
	char dat[512], gp[512];
	snprintf(dat, sizeof(dat), "%s/sweep.dat", dir);
	snprintf(gp, sizeof(gp), "%s/sweep.gp", dir);
	FILE *d = fopen(dat, "w"), *g = fopen(gp, "w");
	if (!d || !g) {
		if (d)
			fclose(d);
		if (g)
			fclose(g);
		return -1;
	}
	fprintf(g, "set terminal pngcairo size 1000,600 noenhanced\nset output '%s'\n", png);
	fprintf(g,
		"set title 'ringmq-server thread sweep (%u cores)'\nset xlabel 'server threads'\n"
		"set ylabel 'msgs/s'\nset grid\nset key top left\nset xtics 1\nset yrange [0:*]\nplot ",
		rep->cores);
	unsigned idx = 0;
	bool *done = calloc(rep->n + 1, sizeof(*done));
	for (unsigned i = 0; i < rep->n; i++) {
		if (done[i] || !rep->rows[i]->sweep)
			continue;
		static const char *keys[] = { "published_msgs_per_s", "delivered_msgs_per_s" };
		for (int k = 0; k < 2; k++) {
			if (!rb_row_metric(rep->rows[i], keys[k]))
				continue;
			for (unsigned j = i; j < rep->n; j++) {
				const struct rb_row *r = rep->rows[j];
				if (!r->sweep || strcmp(r->label, rep->rows[i]->label) != 0)
					continue;
				const struct rb_metric *m = rb_row_metric(r, keys[k]);
				struct rb_summary s;
				rb_stats_summary(m ? m->v : NULL, m ? m->n : 0, &s);
				fprintf(d, "%d %g %g %g\n", r->server_threads, s.median, s.min,
					s.max);
			}
			fprintf(d, "\n\n");
			fprintf(g, "%s'%s' index %u with yerrorlines lw 2 title '%s: %s'",
				idx ? ", " : "", dat, idx, rep->rows[i]->label,
				k ? "delivered" : "published");
			idx++;
		}
		for (unsigned j = i; j < rep->n; j++)
			if (rep->rows[j]->sweep &&
			    !strcmp(rep->rows[j]->label, rep->rows[i]->label))
				done[j] = true;
	}
	free(done);
	fputc('\n', g);
	fclose(d);
	fclose(g);
	return idx ? run_gnuplot(gp) : 0;
}

static int plot_latency(const struct rb_report *rep, const char *png, const char *dir)
{
	static const double ps[] = { 0,    50,    75,    90,     95,     99, 99.5,
				     99.9, 99.95, 99.99, 99.995, 99.999, 100 };
	char dat[512], gp[512];
	snprintf(dat, sizeof(dat), "%s/latency.dat", dir);
	snprintf(gp, sizeof(gp), "%s/latency.gp", dir);
	FILE *d = fopen(dat, "w"), *g = fopen(gp, "w");
	if (!d || !g) {
		if (d)
			fclose(d);
		if (g)
			fclose(g);
		return -1;
	}
	fprintf(g, "set terminal pngcairo size 1000,600 noenhanced\nset output '%s'\n", png);
	/* tic labels are gnuplot format strings too: "%%%%" ends up as one % */
	fprintf(g,
		"set title 'end-to-end latency by percentile (from intended send time)'\n"
		"set logscale x\nset logscale y\nset xlabel 'percentile'\nset ylabel 'latency (us)'\n"
		"set grid\nset key top left\n"
		"set xtics ('0%%%%' 1, '50%%%%' 2, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, "
		"'99.99%%%%' 10000, '99.999%%%%' 100000, 'max' 1000000)\nplot ");
	unsigned idx = 0;
	for (unsigned i = 0; i < rep->n; i++) {
		const struct rb_row *r = rep->rows[i];
		if (r->sweep || strcmp(r->scenario, "latency") != 0 || !r->lat || !r->lat->count)
			continue;
		for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
			double x = ps[k] >= 100 ? 1e6 : 1.0 / (1.0 - ps[k] / 100.0);
			double y = (double)rb_hist_percentile(r->lat, ps[k]) / 1000.0;
			fprintf(d, "%g %g\n", x, y > 0 ? y : 0.001);
		}
		fprintf(d, "\n\n");
		fprintf(g, "%s'%s' index %u with linespoints lw 2 title '%s %s'", idx ? ", " : "",
			dat, idx, rb_target_name(r->target), r->label);
		idx++;
	}
	fputc('\n', g);
	fclose(d);
	fclose(g);
	return idx ? run_gnuplot(gp) : 0;
}

static int plot_bars(const struct rb_report *rep, const char *png, const char *dir)
{
	char dat[512], gp[512];
	snprintf(dat, sizeof(dat), "%s/bars.dat", dir);
	snprintf(gp, sizeof(gp), "%s/bars.gp", dir);
	FILE *d = fopen(dat, "w"), *g = fopen(gp, "w");
	if (!d || !g) {
		if (d)
			fclose(d);
		if (g)
			fclose(g);
		return -1;
	}
	fprintf(d, "case ringmq redis nats\n");
	unsigned lines = 0;
	bool *done = calloc(rep->n + 1, sizeof(*done));
	for (unsigned i = 0; i < rep->n; i++) {
		const struct rb_row *r = rep->rows[i];
		if (done[i] || r->sweep || !strcmp(r->scenario, "latency") ||
		    !strcmp(r->scenario, "createTopic"))
			continue;
		double v[RB_NTARGETS] = { 0 };
		for (unsigned j = i; j < rep->n; j++) {
			const struct rb_row *q = rep->rows[j];
			if (q->sweep || strcmp(q->label, r->label) != 0)
				continue;
			done[j] = true;
			const struct rb_metric *m = rb_row_metric(q, "delivered_msgs_per_s");
			if (!m)
				m = rb_row_metric(q, "published_msgs_per_s");
			v[q->target] = med(m);
		}
		fprintf(d, "\"%s\" %g %g %g\n", r->label, v[0], v[1], v[2]);
		lines++;
	}
	free(done);
	fprintf(g, "set terminal pngcairo size 1000,600 noenhanced\nset output '%s'\n", png);
	fprintf(g,
		"set title 'throughput (delivered msgs/s, or published when nothing is delivered)'\n"
		"set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8\n"
		"set ylabel 'msgs/s'\nset grid ytics\nset yrange [0:*]\nset xtics rotate by -20\n"
		"plot '%s' using 2:xtic(1) title columnheader, '' using 3 title columnheader, "
		"'' using 4 title columnheader\n",
		dat);
	fclose(d);
	fclose(g);
	return lines ? run_gnuplot(gp) : 0;
}

int rb_report_plot(const struct rb_report *rep, const char *path)
{
	char dir[] = "/tmp/ringmq-bench-plot.XXXXXX";
	const char *tmp = getenv("TMPDIR");
	char dirbuf[512];
	snprintf(dirbuf, sizeof(dirbuf), "%s/ringmq-bench-plot.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	char *dp = mkdtemp(dirbuf);
	if (!dp)
		dp = mkdtemp(dir);
	if (!dp)
		return -1;
	bool has_sweep = false, has_lat = false, has_other = false;
	for (unsigned i = 0; i < rep->n; i++) {
		const struct rb_row *r = rep->rows[i];
		if (r->sweep)
			has_sweep = true;
		else if (!strcmp(r->scenario, "latency"))
			has_lat = true;
		else if (strcmp(r->scenario, "createTopic") != 0)
			has_other = true;
	}
	int rc = 0;
	char p2[1024];
	bool used = false;
	if (has_lat) {
		rc |= plot_latency(rep, path, dp);
		fprintf(stderr, "ringmq-bench: latency plot: %s\n", path);
		used = true;
	}
	if (has_sweep) {
		if (used)
			derived_path(p2, sizeof(p2), path, "sweep");
		else
			snprintf(p2, sizeof(p2), "%s", path);
		rc |= plot_sweep(rep, p2, dp);
		fprintf(stderr, "ringmq-bench: sweep plot: %s\n", p2);
		used = true;
	}
	if (has_other) {
		if (used)
			derived_path(p2, sizeof(p2), path, "throughput");
		else
			snprintf(p2, sizeof(p2), "%s", path);
		rc |= plot_bars(rep, p2, dp);
		fprintf(stderr, "ringmq-bench: throughput plot: %s\n", p2);
	}
	/* leave the data and scripts for whoever wants to restyle: say where */
	fprintf(stderr, "ringmq-bench: gnuplot data and scripts in %s\n", dp);
	return rc ? -1 : 0;
}
