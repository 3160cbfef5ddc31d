/* micro.h - shared bits of the perf/ micro-benchmarks (ringmq-micro).
 *
 * Each benchmark runs the real code from core/ and net/ (linked from the
 * ringmq_core and ringmq_net targets) in a tight loop for about
 * micro_secs seconds and reports nanoseconds per operation. Threads that
 * call into core/ register with urcu-qsbr, stay online while they work and
 * report a quiescent state every few thousand operations, as the server's
 * workers do once per event-loop iteration.
 */
#ifndef RMQ_MICRO_H
#define RMQ_MICRO_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

extern double micro_secs; /* time per measurement */
extern int micro_quick;   /* smaller sizes (tests, smoke runs) */

static inline uint64_t micro_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: cheap, deterministic key choice inside timed loops. */
static inline uint64_t micro_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* One line of the report. */
void micro_report(const char *name, uint64_t ops, uint64_t ns);

void micro_topic(void);
void micro_log(void);
void micro_resp(void);
void micro_disk(void);

#endif
