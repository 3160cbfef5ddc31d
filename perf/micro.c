/* micro.c - ringmq-micro: ns/op of the broker's hot pieces.
 *
 *   ringmq-micro [all|topic|log|resp|disk] [--quick] [--secs S]
 *
 * topic: rmq_topic_lookup with 1, 1k, 100k and 1M topics in the table
 * log:   rmq_log_append with 1 and 2 producer threads
 * resp:  rmq_resp_parse of pipelined PUBLISH / MPUBLISH / PING frames
 * disk:  disk log append vs memory, sync cost, recovery (not in "all":
 *        it writes ~2.5 GiB to $TMPDIR)
 */
#include <stdlib.h>
#include <string.h>

#include "micro.h"

double micro_secs = 1.0;
int micro_quick;

void micro_report(const char *name, uint64_t ops, uint64_t ns)
{
	double per = ops ? (double)ns / (double)ops : 0;
	printf("%-44s %12llu ops %10.1f ns/op %10.2f M ops/s\n", name, (unsigned long long)ops, per,
	       per > 0 ? 1e3 / per : 0);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *which = "all";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			micro_quick = 1;
			micro_secs = 0.2;
		} else if (!strcmp(argv[i], "--secs") && i + 1 < argc) {
			char *end;
			micro_secs = strtod(argv[++i], &end);
			if (*end || !(micro_secs > 0)) {
				fprintf(stderr,
					"%s: --secs needs a positive number of seconds, not '%s'\n",
					argv[0], argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: %s [all|topic|log|resp|disk] [--quick] [--secs S]\n",
			       argv[0]);
			return 0;
		} else if (argv[i][0] != '-') {
			which = argv[i];
		} else {
			fprintf(stderr, "%s: unknown option '%s'\n", argv[0], argv[i]);
			return 2;
		}
	}
	int all = !strcmp(which, "all");
	if (!all && strcmp(which, "topic") != 0 && strcmp(which, "log") != 0 &&
	    strcmp(which, "resp") != 0 && strcmp(which, "disk") != 0) {
		fprintf(stderr, "%s: unknown benchmark '%s' (all, topic, log, resp, disk)\n",
			argv[0], which);
		return 2;
	}
	if (all || !strcmp(which, "topic"))
		micro_topic();
	if (all || !strcmp(which, "log"))
		micro_log();
	if (all || !strcmp(which, "resp"))
		micro_resp();
	if (!strcmp(which, "disk"))
		micro_disk();
	return 0;
}
