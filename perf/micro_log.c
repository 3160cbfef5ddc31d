/* micro_log.c - rmq_log_append with 1 and 2 producer threads.
 *
 * Each record is what PUBLISH appends for a 16-byte payload: the topic's
 * push prefix, "$16\r\n", the payload and "\r\n" as four iovecs. The log
 * drops its oldest segments when full (64 MiB), so the loop also pays for
 * segment allocation and trimming, as the server does. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

#include "log.h"
#include "micro.h"

struct prod {
	pthread_t th;
	struct rmq_log *log;
	_Atomic int *go;
	uint64_t ops, ns;
};

static void *producer(void *arg)
{
	struct prod *p = arg;
	urcu_qsbr_register_thread();
	static const char prefix[] = "*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n";
	char payload[16];
	memset(payload, 'x', sizeof(payload));
	struct iovec iov[4] = {
		{ (void *)prefix, sizeof(prefix) - 1 },
		{ "$16\r\n", 5 },
		{ payload, sizeof(payload) },
		{ "\r\n", 2 },
	};
	uint32_t poff = (uint32_t)(sizeof(prefix) - 1 + 5);
	while (!atomic_load(p->go))
		;
	uint64_t end = micro_now_ns() + (uint64_t)(micro_secs * 1e9);
	uint64_t t0 = micro_now_ns(), ops = 0;
	do {
		for (int k = 0; k < 4096; k++)
			if (rmq_log_append(p->log, iov, 4, poff, 16) <= 0)
				abort();
		ops += 4096;
		urcu_qsbr_quiescent_state(); /* lets trimmed segments be freed */
	} while (micro_now_ns() < end);
	p->ns = micro_now_ns() - t0;
	p->ops = ops;
	urcu_qsbr_unregister_thread();
	return NULL;
}

static void bench_producers(int n)
{
	struct rmq_log log;
	rmq_log_init(&log, 64u << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	_Atomic int go = 0;
	struct prod p[8];
	for (int i = 0; i < n; i++) {
		p[i] = (struct prod){ .log = &log, .go = &go };
		pthread_create(&p[i].th, NULL, producer, &p[i]);
	}
	atomic_store(&go, 1);
	uint64_t ops = 0, ns = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(p[i].th, NULL);
		ops += p[i].ops;
		if (p[i].ns > ns)
			ns = p[i].ns;
	}
	char label[64];
	snprintf(label, sizeof(label), "log append, %d producer%s (all threads)", n,
		 n > 1 ? "s" : "");
	micro_report(label, ops, ns);
	if (n > 1) {
		snprintf(label, sizeof(label), "log append, %d producers (per thread)", n);
		micro_report(label, ops / (uint64_t)n, ns);
	}
	urcu_qsbr_barrier(); /* trimmed segments freed before the log goes */
	rmq_log_fini(&log);
}

void micro_log(void)
{
	bench_producers(1);
	bench_producers(2);
}
