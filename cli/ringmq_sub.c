/* ringmq_sub.c - ringmq-sub: print the messages of one or more topics.
 *
 * Without --name the subscription is live (pushed by the server, Redis
 * SUBSCRIBE semantics) and ends with the process. With --name it is
 * durable: the server keeps the subscriber's position, and the tool reads
 * with PULL ... BLOCK, so a later run under the same name resumes where
 * the previous one stopped.
 *
 * Messages go to stdout; status lines ("Subscribed to ...") and errors go
 * to stderr, so stdout can be piped as is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_common.h"

#define PROG "ringmq-sub"
#define PULL_BATCH 1000
#define LIVE_WAIT_MS 200      /* how often the live loop checks for Ctrl-C */
#define DURABLE_WAIT_MS 500   /* PULL BLOCK with one topic */
#define DURABLE_ROTATE_MS 100 /* PULL BLOCK per topic with several */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ringmq-sub [options] --subscribe TOPIC [--subscribe TOPIC]...\n"
		"       ringmq-sub [options] --name NAME --subscribe TOPIC...\n"
		"       ringmq-sub [options] --name NAME --pull TOPIC... [--follow]\n"
		"       ringmq-sub [options] --name NAME --unsubscribe TOPIC...\n"
		"\n"
		"Prints the messages published to ringmq topics, one per line, until\n"
		"Ctrl-C (SIGINT) or SIGTERM, then exits with status 0.\n"
		"\n"
		"Modes:\n"
		"  -s, --subscribe TOPIC     print messages as they arrive. Without --name the\n"
		"                            subscription is live: it starts now and ends with\n"
		"                            the process. With --name it is durable: the server\n"
		"                            keeps NAME's position, and a later run with the\n"
		"                            same NAME resumes where this one stopped (messages\n"
		"                            published in between are printed too).\n"
		"      --pull TOPIC          (needs --name) print the messages NAME has not\n"
		"                            seen yet, then exit. The first --pull or\n"
		"                            --subscribe of a NAME starts its subscription at\n"
		"                            the topic's end.\n"
		"      --follow              with --pull: keep waiting for new messages\n"
		"      --unsubscribe TOPIC   (needs --name) end NAME's durable subscription, so\n"
		"                            the topic no longer keeps messages for it\n"
		"\n"
		"Options:\n"
		"  -N, --name NAME           durable subscriber name (1..255 bytes, no spaces)\n"
		"  -n, --count N             exit after printing N messages\n"
		"  -q, --quiet               no status lines on stderr (messages and errors only)\n"
		"  -f, --format text|json    output format (default text):\n"
		"                              text: [TOPIC] PAYLOAD        (live)\n"
		"                                    [TOPIC #SEQ] PAYLOAD   (durable)\n"
		"                              json: one object per line,\n"
		"                                {\"topic\":\"t\",\"seq\":7,\"payload\":\"...\"}\n"
		"                                seq is null for live messages (live pushes\n"
		"                                carry no sequence number); a payload that is\n"
		"                                not UTF-8 comes as \"payload\":null plus\n"
		"                                \"payload_base64\"\n"
		"  -h, --help                show this help and exit\n"
		"  -V, --version             show the version and exit\n"
		"\n" CLI_CONN_HELP "\n" CLI_EXIT_HELP "\n"
		"Messages go to stdout; status lines and errors go to stderr.\n"
		"\n"
		"Examples:\n"
		"  ringmq-sub --subscribe my_topic\n"
		"  ringmq-sub --name alice --subscribe my_topic\n"
		"  ringmq-sub --name alice --pull my_topic\n"
		"  ringmq-sub --name alice --unsubscribe my_topic\n");
}

enum mode { M_NONE, M_SUBSCRIBE, M_PULL, M_UNSUBSCRIBE };

struct sub {
	struct cli_conn cc;
	struct rmq_client *c;
	const char *name;
	enum mode mode;
	bool follow;
	const char **topics;
	int ntopics;
	uint64_t limit; /* --count; 0: none */
	uint64_t printed;
};

static void status_line(const struct sub *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void status_line(const struct sub *s, const char *fmt, ...)
{
	if (s->cc.quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void print_msg(struct sub *s, const struct rmq_msg *m)
{
	if (s->cc.format == FMT_JSON) {
		json_message(stdout, m->topic, m->topic_len, m->seq, m->payload, m->len);
	} else {
		if (m->seq)
			printf("[%.*s #%llu] ", (int)m->topic_len, m->topic,
			       (unsigned long long)m->seq);
		else
			printf("[%.*s] ", (int)m->topic_len, m->topic);
		fwrite(m->payload, 1, m->len, stdout);
		putchar('\n');
	}
	s->printed++;
}

static bool done(const struct sub *s)
{
	return g_stop || (s->limit && s->printed >= s->limit);
}

static int finish(struct sub *s, int ex)
{
	if (fflush(stdout) != 0 && ex == CLI_EX_OK) {
		fprintf(stderr, PROG ": error writing output: %s\n", strerror(errno));
		ex = CLI_EX_ERROR;
	}
	return ex;
}

static void topics_join(const struct sub *s, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < s->ntopics && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s'%s'", i ? ", " : "", s->topics[i]);
}

/* --- live --- */

static int run_live(struct sub *s)
{
	for (int i = 0; i < s->ntopics; i++) {
		int rc = rmq_subscribe_live(s->c, s->topics[i]);
		if (rc != RMQ_OK)
			return cli_fail(&s->cc, s->c, rc, "cannot subscribe");
		s->cc.any_ok = true;
	}
	char names[1024];
	topics_join(s, names, sizeof(names));
	status_line(s, "Subscribed to %s (live). Waiting for messages; Ctrl-C to stop.", names);
	while (!done(s)) {
		struct rmq_msg *m;
		int rc = rmq_next_message(s->c, 0, &m);
		if (rc == RMQ_ERR_TIMEOUT) {
			fflush(stdout); /* idle: show what we have */
			rc = rmq_next_message(s->c, LIVE_WAIT_MS, &m);
			if (rc == RMQ_ERR_TIMEOUT)
				continue;
		}
		if (rc != RMQ_OK)
			return finish(s, cli_fail(&s->cc, s->c, rc, "cannot receive"));
		if (m->kind == RMQ_MSG_TOPIC_GONE) {
			fprintf(stderr, PROG ": topic '%.*s' was deleted\n", (int)m->topic_len,
				m->topic);
			rmq_msg_free(m);
			if (rmq_live_count(s->c) == 0)
				return finish(s, CLI_EX_NOTOPIC);
			continue;
		}
		print_msg(s, m);
		rmq_msg_free(m);
	}
	return finish(s, CLI_EX_OK);
}

/* --- durable --- */

static int register_and_subscribe(struct sub *s)
{
	int rc = rmq_register_subscriber(s->c, s->name);
	if (rc != RMQ_OK)
		return cli_fail(&s->cc, s->c, rc, "cannot register the subscriber");
	s->cc.any_ok = true;
	for (int i = 0; i < s->ntopics; i++) {
		rc = rmq_subscribe(s->c, s->topics[i]);
		if (rc != RMQ_OK)
			return cli_fail(&s->cc, s->c, rc, "cannot subscribe");
	}
	return CLI_EX_OK;
}

static void drop_topic(struct sub *s, int i)
{
	s->topics[i] = s->topics[--s->ntopics];
}

/* One PULL on topic i, printing what it returns. Returns the number of
 * messages, or -1 with *ex set when the run must stop. A deleted topic is
 * dropped from the list (*ex = CLI_EX_NOTOPIC only when none are left). */
static long pull_one(struct sub *s, int i, int wait_ms, int *ex)
{
	size_t want = PULL_BATCH;
	if (s->limit && s->limit - s->printed < want)
		want = (size_t)(s->limit - s->printed); /* never take more than we print */
	struct rmq_msgs *b;
	int rc = rmq_pull(s->c, s->topics[i], want, wait_ms, &b);
	if (rc == RMQ_ERR_NOTOPIC) {
		fprintf(stderr, PROG ": topic '%s' was deleted\n", s->topics[i]);
		drop_topic(s, i);
		if (s->ntopics == 0) {
			*ex = CLI_EX_NOTOPIC;
			return -1;
		}
		return 0;
	}
	if (rc == RMQ_ERR_TAKENOVER) {
		fprintf(stderr, PROG ": another connection registered as '%s'; stopping\n",
			s->name);
		*ex = CLI_EX_ERROR;
		return -1;
	}
	if (rc != RMQ_OK) {
		*ex = cli_fail(&s->cc, s->c, rc, "cannot pull");
		return -1;
	}
	for (size_t k = 0; k < b->n; k++)
		print_msg(s, &b->msg[k]);
	long n = (long)b->n;
	rmq_msgs_free(b);
	return n;
}

static int run_durable_follow(struct sub *s)
{
	int ex = register_and_subscribe(s);
	if (ex != CLI_EX_OK)
		return ex;
	char names[1024];
	topics_join(s, names, sizeof(names));
	status_line(s, "Subscribed to %s as '%s' (durable). Waiting for messages; Ctrl-C to stop.",
		    names, s->name);
	int next = 0;
	while (!done(s)) {
		/* Sweep every topic without waiting, then wait on one. */
		long got = 0;
		for (int i = 0; i < s->ntopics && !done(s);) {
			int before = s->ntopics;
			long n = pull_one(s, i, 0, &ex);
			if (n < 0)
				return finish(s, ex);
			got += n;
			if (s->ntopics == before)
				i++;
		}
		if (got || done(s))
			continue;
		fflush(stdout);
		next %= s->ntopics;
		int wait = s->ntopics == 1 ? DURABLE_WAIT_MS : DURABLE_ROTATE_MS;
		int before = s->ntopics;
		if (pull_one(s, next, wait, &ex) < 0)
			return finish(s, ex);
		if (s->ntopics == before)
			next++;
	}
	return finish(s, CLI_EX_OK);
}

static int run_pull(struct sub *s)
{
	int ex = register_and_subscribe(s);
	if (ex != CLI_EX_OK)
		return ex;
	for (int i = 0; i < s->ntopics && !done(s);) {
		uint64_t before = s->printed;
		int nt = s->ntopics;
		long n;
		do {
			n = pull_one(s, i, 0, &ex);
			if (n < 0)
				return finish(s, ex);
		} while (n == PULL_BATCH && !done(s) && s->ntopics == nt);
		if (s->ntopics != nt)
			continue; /* deleted: the next topic moved into slot i */
		if (s->printed == before)
			status_line(s, "No new messages for '%s' on '%s'.", s->name, s->topics[i]);
		i++;
	}
	return finish(s, CLI_EX_OK);
}

static int run_unsubscribe(struct sub *s)
{
	int rc = rmq_register_subscriber(s->c, s->name);
	if (rc != RMQ_OK)
		return cli_fail(&s->cc, s->c, rc, "cannot register the subscriber");
	s->cc.any_ok = true;
	for (int i = 0; i < s->ntopics; i++) {
		rc = rmq_unsubscribe(s->c, s->topics[i]);
		if (rc != RMQ_OK)
			return cli_fail(&s->cc, s->c, rc, "cannot unsubscribe");
		status_line(s, "Unsubscribed '%s' from '%s'.", s->name, s->topics[i]);
	}
	return CLI_EX_OK;
}

/* --- main --- */

static bool is_flag(const char *a, const char *l, const char *sh)
{
	size_t n = strlen(l);
	return (sh && !strcmp(a, sh)) || (!strncmp(a, l, n) && (a[n] == '\0' || a[n] == '='));
}

static int set_mode(struct sub *s, enum mode m, const char *flag)
{
	if (s->mode != M_NONE && s->mode != m)
		return cli_usage_error(PROG,
				       "%s cannot be combined with the other mode flags "
				       "(--subscribe, --pull, --unsubscribe)",
				       flag);
	s->mode = m;
	return CLI_EX_OK;
}

static int parse(struct sub *s, int argc, char **argv, bool *exit_now)
{
	*exit_now = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		int r = cli_conn_flag(&s->cc, argc, argv, &i);
		if (r < 0)
			return CLI_EX_BADUSAGE;
		if (r > 0)
			continue;
		if (is_flag(a, "--help", "-h")) {
			usage(stdout);
			*exit_now = true;
			return CLI_EX_OK;
		}
		if (is_flag(a, "--version", "-V")) {
			printf(PROG " %s\n", rmq_version());
			*exit_now = true;
			return CLI_EX_OK;
		}
		enum mode m = is_flag(a, "--subscribe", "-s")     ? M_SUBSCRIBE
			      : is_flag(a, "--pull", NULL)        ? M_PULL
			      : is_flag(a, "--unsubscribe", NULL) ? M_UNSUBSCRIBE
								  : M_NONE;
		if (m != M_NONE) {
			if (set_mode(s, m, a) != CLI_EX_OK)
				return CLI_EX_BADUSAGE;
			if (!(v = cli_flag_value(PROG, argc, argv, &i)))
				return CLI_EX_BADUSAGE;
			s->topics[s->ntopics++] = v;
			continue;
		}
		if (is_flag(a, "--name", "-N")) {
			if (!(s->name = cli_flag_value(PROG, argc, argv, &i)))
				return CLI_EX_BADUSAGE;
			continue;
		}
		if (!strcmp(a, "--follow")) {
			s->follow = true;
			continue;
		}
		if (is_flag(a, "--count", "-n")) {
			if (!(v = cli_flag_value(PROG, argc, argv, &i)))
				return CLI_EX_BADUSAGE;
			char *end;
			errno = 0;
			unsigned long long n = strtoull(v, &end, 10);
			if (errno || end == v || *end || n == 0 || v[0] == '-')
				return cli_usage_error(
					PROG, "invalid --count '%s': expected a positive number",
					v);
			s->limit = n;
			continue;
		}
		if (a[0] == '-' && a[1])
			return cli_usage_error(PROG, "unknown option '%s'", a);
		return cli_usage_error(
			PROG,
			"unexpected argument '%s' (topics go after --subscribe, --pull or --unsubscribe)",
			a);
	}
	if (s->mode == M_NONE)
		return cli_usage_error(
			PROG,
			"nothing to do: give --subscribe TOPIC (or --pull / --unsubscribe with --name)");
	if ((s->mode == M_PULL || s->mode == M_UNSUBSCRIBE) && !s->name)
		return cli_usage_error(PROG, "%s needs --name NAME (a durable subscriber)",
				       s->mode == M_PULL ? "--pull" : "--unsubscribe");
	if (s->follow && s->mode != M_PULL)
		return cli_usage_error(PROG, "--follow goes with --pull");
	if (s->limit && s->mode == M_UNSUBSCRIBE)
		return cli_usage_error(PROG, "--count goes with --subscribe or --pull");
	for (int i = 0; i < s->ntopics; i++)
		for (int k = 0; k < i; k++)
			/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): parse() set them */
			if (!strcmp(s->topics[i], s->topics[k]))
				return cli_usage_error(PROG, "topic '%s' given twice",
						       s->topics[i]);
	return CLI_EX_OK;
}

int main(int argc, char **argv)
{
	struct sub s = { 0 };
	if (!cli_conn_init(&s.cc, PROG))
		return CLI_EX_BADUSAGE;
	s.topics = calloc((size_t)argc, sizeof(*s.topics));
	if (!s.topics)
		return CLI_EX_ERROR;
	bool exit_now;
	int ex = parse(&s, argc, argv, &exit_now);
	if (ex != CLI_EX_OK || exit_now) {
		free(s.topics);
		return ex;
	}

	/* No SA_RESTART: waits return early, and the loops check g_stop. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	s.c = cli_connect(&s.cc, &ex);
	if (s.c) {
		switch (s.mode) {
		case M_SUBSCRIBE: ex = s.name ? run_durable_follow(&s) : run_live(&s); break;
		case M_PULL: ex = s.follow ? run_durable_follow(&s) : run_pull(&s); break;
		case M_UNSUBSCRIBE: ex = run_unsubscribe(&s); break;
		case M_NONE: break;
		}
		rmq_client_close(s.c);
	}
	free(s.topics);
	return finish(&s, ex);
}
