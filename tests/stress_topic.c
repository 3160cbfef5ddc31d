/* stress_topic.c - standalone topic-table / watch / durable-subscriber churn
 * validator (topic_churn.c).
 *
 * usage: stress_topic THREADS SECONDS
 *   THREADS  1..4 threads, each acting as one shard of a THREADS-shard broker
 *   SECONDS  how long the threads churn (a decimal number)
 *
 * Prints one summary line and exits 0 when every check passed, 1 on any
 * inconsistency, 2 on bad arguments. Unlike the Criterion tests it runs
 * under TSan (build with RINGMQ_SANITIZE=thread).
 */
#include <stdio.h>
#include <stdlib.h>

#include <urcu/urcu-qsbr.h>

#include "topic.h"
#include "topic_churn.h"

static void wake_noop(void *ctx, uint32_t shard) {}

int main(int argc, char **argv)
{
	char *end = NULL;
	long n = argc == 3 ? strtol(argv[1], &end, 10) : 0;
	if (argc != 3 || *end || n < 1 || n > CH_MAX_THREADS) {
		fprintf(stderr, "usage: %s THREADS(1..%d) SECONDS\n", argv[0], CH_MAX_THREADS);
		return 2;
	}
	double secs = strtod(argv[2], &end);
	if (*end || !(secs > 0 && secs <= 600)) {
		fprintf(stderr, "%s: SECONDS must be in (0, 600]\n", argv[0]);
		return 2;
	}
	urcu_qsbr_register_thread();
	struct rmq_broker *b = rmq_broker_new((uint32_t)n, wake_noop, NULL);
	uint64_t errors = ch_run(b, (unsigned)n, secs);
	ch_print(stdout, "stress_topic");
	rmq_broker_free(b);
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	urcu_qsbr_thread_online();
	urcu_qsbr_unregister_thread();
	return errors ? 1 : 0;
}
