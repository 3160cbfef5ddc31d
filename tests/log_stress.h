/* log_stress.h - multi-producer / multi-reader validator for core/log.c
 * (log_stress.c, which says what it checks), shared by test_log.c
 * (Criterion) and stress_log.c (a plain executable that also runs under
 * TSan).
 *
 * Memory: the caller owns params and result (a result is large: keep it
 * off the stack); ls_run() allocates and frees everything else.
 * Threads: one ls_run() at a time per process.
 */
#ifndef RMQ_TEST_LOG_STRESS_H
#define RMQ_TEST_LOG_STRESS_H

#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define LS_MAX_THREADS 64
#define LS_HDR "P:"
#define LS_HDR_LEN 2u
#define LS_MIN_PAYLOAD 16u

struct ls_params {
	unsigned producers, readers;
	uint64_t count;    /* messages per producer */
	uint64_t capacity; /* log capacity in bytes */
	enum rmq_onfull onfull;
	unsigned max_payload; /* payload sizes LS_MIN_PAYLOAD..max_payload */
	int expect_no_loss;   /* the log is big enough to keep everything */
	int monitor;          /* run the sampling / trimming thread */
	const char *disk_dir; /* a disk log in this (empty) directory: the
				* monitor also syncs (group commit), readers
				* see only synced records, and at the end the
				* log is reopened and every record rechecked */
};

struct ls_reader_result {
	uint64_t seen, lost, batches, lost_events;
};

struct ls_result {
	uint64_t total, next_seq, first_seq, evicted, dropped, rejected;
	uint64_t retained_end, retained_max, monitor_samples, monitor_trims, syncs;
	uint64_t errors;
	char first_error[512];
	double secs;
	struct ls_reader_result r[LS_MAX_THREADS];
};

/* Runs one validation. The calling thread must be registered with
 * urcu-qsbr (it goes offline while it waits). Returns res->errors. */
uint64_t ls_run(const struct ls_params *p, struct ls_result *res);

/* One summary line of a run (name: OK|FAIL and the figures) on f. */
void ls_print(FILE *f, const char *name, const struct ls_params *p, const struct ls_result *res);

#endif
