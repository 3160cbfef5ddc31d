/* topic_churn.h - many-threads churn validator for core/topic.c and
 * core/dsub.c (topic_churn.c, which says what it does and checks), shared
 * by test_topic.c (Criterion) and stress_topic.c (a plain executable that
 * also runs under TSan).
 *
 * Threads: one ch_run() at a time per process; it starts and joins its
 * own threads. Memory: the broker stays the caller's.
 */
#ifndef RMQ_TEST_TOPIC_CHURN_H
#define RMQ_TEST_TOPIC_CHURN_H

#include <stdint.h>
#include <stdio.h>

#include "topic.h"

#define CH_MAX_THREADS 4

/* Runs nthreads (1..CH_MAX_THREADS, at most b's shard count) churn threads
 * on b for secs seconds, then checks the table. Call from a thread that is
 * registered with urcu-qsbr and online; b stays the caller's. Returns the
 * number of errors (0: all good); ch_print() and ch_first_error() tell
 * more. */
uint64_t ch_run(struct rmq_broker *b, unsigned nthreads, double secs);

/* One line: the counts of the last ch_run(). */
void ch_print(FILE *f, const char *label);

/* The first error of the last ch_run() ("" if none); static storage,
 * valid until the next ch_run(). */
const char *ch_first_error(void);

#endif
