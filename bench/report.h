/* report.h - figures collected over repeats, and the ways they are shown:
 * a table on stdout, CSV, JSON, and gnuplot PNGs.
 *
 * A row is one case (a scenario with its parameters) against one target,
 * or, in a sweep, at one server thread count. Each metric keeps every
 * repeat's sample; reports show median and min-max, JSON adds the samples.
 */
#ifndef RB_REPORT_H
#define RB_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "hist.h"
#include "proc.h"
#include "run.h"

#define RB_MAX_REPEATS 64
#define RB_MAX_METRICS 40

struct rb_metric {
	char key[48];   /* JSON/CSV name, e.g. "delivered_msgs_per_s" */
	char label[40]; /* table name, e.g. "delivered msg/s" */
	char unit[12];  /* "msg/s", "MB/s", "us", "%", "msgs", "s/M", "MiB", "topics/s" */
	int better;     /* +1 higher is better, -1 lower is better, 0 neither */
	unsigned n;
	double v[RB_MAX_REPEATS];
};

struct rb_counts {
	uint64_t total_sent, expected, received, lost, dup, ooo, unexpected, errors;
};

struct rb_row {
	char scenario[16]; /* createTopic, send, fanout, pull, latency */
	char label[80];    /* e.g. "fanout 1->10" */
	enum rb_target target;
	char version[64];
	int server_threads;  /* ringmq workers; -1 unknown / not applicable */
	bool sweep;          /* a point of a thread sweep */
	struct rb_work work; /* configuration */
	unsigned batch_used;
	bool checked; /* lost/dup/ooo are meaningful (messages were checked) */
	struct rb_metric m[RB_MAX_METRICS];
	unsigned nm;
	struct rb_counts c;
	struct rb_hist *lat; /* e2e (or ack) latencies of all repeats, for plots */
	unsigned runs, failed;
	char err[256];
	/* createTopic */
	uint64_t lookup_sizes[8];
	unsigned nlookup;
};

struct rb_report {
	struct rb_row **rows;
	unsigned n, cap;
	char command[2048];
	char started[64];
	unsigned cores;
	char cpu[128], kernel[256], host[64];
	char bench_version[32];
	double duration, warmup;
	unsigned repeats;
};

void rb_report_init(struct rb_report *rep, int argc, char **argv);
struct rb_row *rb_report_row(struct rb_report *rep, const char *scenario, const char *label,
			     const struct rb_server *srv, const struct rb_work *w);
void rb_report_free(struct rb_report *rep);

/* Adds one sample of a metric (creating it on first use). */
void rb_row_add(struct rb_row *row, const char *key, const char *label, const char *unit,
		int better, double v);
const struct rb_metric *rb_row_metric(const struct rb_row *row, const char *key);

/* Folds one run's result into row: its figures for row->scenario, counts,
 * and latency histogram. */
void rb_row_add_result(struct rb_row *row, const struct rb_result *r);

/* True when the row must fail the process: a run failed, or messages were
 * lost, duplicated, reordered, or errors were counted. */
bool rb_row_bad(const struct rb_row *row);

/* Table of rows with the same label side by side (one column per target),
 * ratios to ringmq when several targets are present. */
void rb_report_table(const struct rb_report *rep, FILE *f);
/* Table of sweep rows: one line per thread count. */
void rb_report_sweep_table(const struct rb_report *rep, FILE *f);

int rb_report_csv(const struct rb_report *rep, const char *path);
int rb_report_json(const struct rb_report *rep, const char *path);
/* Sweep rows: throughput vs threads; latency rows: percentile curves.
 * Returns 0, or -1 (gnuplot missing or failed; the reason on stderr). */
int rb_report_plot(const struct rb_report *rep, const char *path);

/* Number formatting for tables: 1.23M, 456k, 12.3 */
void rb_fmt_num(char *b, size_t n, double v);

#endif
