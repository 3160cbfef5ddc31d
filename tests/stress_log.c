/* stress_log.c - standalone multi-producer / multi-reader log validator.
 *
 * usage: stress_log PRODUCERS READERS COUNT CAPACITY [ONFULL [MAX_PAYLOAD [disk]]]
 *   COUNT       messages per producer
 *   CAPACITY    log capacity in bytes (K/M/G suffixes)
 *   ONFULL      drop (default) or reject (no durable reader: never refuses)
 *   MAX_PAYLOAD largest payload in bytes (default 200, at least 16)
 *   disk        a disk log in a fresh temporary directory (removed at the
 *               end), synced by the monitor while producers append, read
 *               only once synced, and recovered and reread at the end
 *
 * Prints one summary line and exits 0 when every check of log_stress.c
 * passed, 1 on any inconsistency, 2 on bad arguments. Unlike the Criterion
 * tests it runs under TSan (build with RINGMQ_SANITIZE=thread).
 */
#define _GNU_SOURCE /* nftw in disk_util.h */
#include <stdio.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

#include "disk_util.h"
#include "log_stress.h"
#include "util.h"

static int arg_u64(const char *s, int suffix, uint64_t *out)
{
	return rmq_parse_u64(s, strlen(s), suffix, out);
}

int main(int argc, char **argv)
{
	uint64_t prod, rd, count, cap, maxp = 200;
	enum rmq_onfull onfull = RMQ_ONFULL_DROP_OLDEST;
	int disk = argc > 7 && strcmp(argv[7], "disk") == 0;
	if (argc < 5 || argc > 8 || (argc > 7 && !disk) || arg_u64(argv[1], 0, &prod) ||
	    arg_u64(argv[2], 0, &rd) || arg_u64(argv[3], 1, &count) || arg_u64(argv[4], 1, &cap) ||
	    prod == 0 || prod > LS_MAX_THREADS || rd > LS_MAX_THREADS || cap == 0 ||
	    (argc > 6 &&
	     (arg_u64(argv[6], 1, &maxp) || maxp < LS_MIN_PAYLOAD || maxp > (1u << 24)))) {
		fprintf(stderr,
			"usage: %s PRODUCERS READERS COUNT CAPACITY [drop|reject [MAX_PAYLOAD [disk]]]\n",
			argv[0]);
		return 2;
	}
	if (argc > 5) {
		if (strcmp(argv[5], "reject") == 0) {
			onfull = RMQ_ONFULL_REJECT;
		} else if (strcmp(argv[5], "drop") != 0) {
			fprintf(stderr, "%s: ONFULL must be drop or reject\n", argv[0]);
			return 2;
		}
	}
	struct ls_params p = {
		.producers = (unsigned)prod,
		.readers = (unsigned)rd,
		.count = count,
		.capacity = cap,
		.onfull = onfull,
		.max_payload = (unsigned)maxp,
		/* Everything fits, with room for segment slack: demand no loss. */
		.expect_no_loss = cap / 2 > prod * count * (maxp + LS_HDR_LEN + 16),
		.monitor = 1,
	};
	char *dir = NULL;
	if (disk) {
		dir = du_mkdtemp("stress_log");
		if (!dir) {
			perror("mkdtemp");
			return 2;
		}
		p.disk_dir = dir;
	}
	static struct ls_result res;
	urcu_qsbr_register_thread();
	uint64_t errors = ls_run(&p, &res);
	urcu_qsbr_unregister_thread();
	ls_print(stdout, "stress_log", &p, &res);
	if (dir) {
		du_rmrf(dir);
		free(dir);
	}
	return errors ? 1 : 0;
}
