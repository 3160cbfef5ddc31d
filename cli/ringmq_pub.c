/* ringmq_pub.c - ringmq-pub: create and delete topics, publish messages
 * from arguments or from stdin (pipelined, one message per line).
 *
 * Actions run in the order given, and the first failure stops the run:
 *   ringmq-pub --create t --publish t "hello" --delete t
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_common.h"
#include "parse.h"

#define PROG "ringmq-pub"
#define STDIN_BATCH 4096       /* at most this many messages per rmq_send_flush */
#define STDIN_READ (64u << 10) /* bytes of stdin per read() */

/* SIGINT/SIGTERM while reading stdin: what was read is published, then
 * the process ends by that signal (status 130 or 143 in a shell). */
static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
	g_stop = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ringmq-pub [options] ACTION...\n"
		"\n"
		"Creates and deletes ringmq topics and publishes messages to them.\n"
		"\n"
		"Actions (run in the order given; the first failure stops):\n"
		"  -c, --create TOPIC        create TOPIC (registers as a publisher)\n"
		"      --capacity BYTES      with --create: bytes the topic retains (K, M, G\n"
		"                            suffixes; default: the server's, 64M)\n"
		"      --on-full POLICY      with --create: reject (default: refuse new messages\n"
		"                            while durable subscribers lag) or drop-oldest\n"
		"  -P, --publish TOPIC MESSAGE...\n"
		"                            publish each MESSAGE; prints its sequence number\n"
		"  -P, --publish TOPIC -     publish each line of stdin as one message\n"
		"                            (pipelined; prints a summary). Lines go out as\n"
		"                            soon as stdin has nothing more ready (so\n"
		"                            'tail -f log | ringmq-pub -P logs -' publishes\n"
		"                            as lines come), in batches under load; on\n"
		"                            Ctrl-C / SIGTERM what was read is published first\n"
		"  -d, --delete TOPIC        delete TOPIC (live subscribers are told)\n"
		"  -l, --list                list the topics\n"
		"\n"
		"Options:\n"
		"      --name NAME           publisher name reported to the server\n"
		"  -q, --quiet               print nothing on success\n"
		"  -f, --format text|json    output format (default text); json prints one\n"
		"                            object per line: {\"topic\":..,\"seq\":..} per message\n"
		"  -h, --help                show this help and exit\n"
		"  -V, --version             show the version and exit\n"
		"\n" CLI_CONN_HELP "\n" CLI_EXIT_HELP
		"  130 --publish TOPIC - stopped by Ctrl-C (SIGINT) after publishing what it\n"
		"      had read (143: SIGTERM)\n"
		"  141 killed by SIGPIPE: whatever read its output went away (e.g. | head)\n"
		"\n"
		"Examples:\n"
		"  ringmq-pub --create my_topic\n"
		"  ringmq-pub --publish my_topic \"Hello, world!\"\n"
		"  cat file.txt | ringmq-pub --publish my_topic -\n"
		"  ringmq-pub --delete my_topic\n");
}

enum act_kind { ACT_CREATE, ACT_PUBLISH, ACT_DELETE, ACT_LIST };

struct action {
	enum act_kind kind;
	const char *topic;
	char **msgs; /* ACT_PUBLISH: argv slice; "-" alone: stdin */
	int nmsgs;
	struct rmq_topic_opts opts;
};

struct pub {
	struct cli_conn cc;
	struct rmq_client *c;
	const char *name;
	bool registered;
};

static int ensure_publisher(struct pub *p)
{
	if (p->registered)
		return RMQ_OK;
	int rc = rmq_register_publisher(p->c, p->name);
	if (rc == RMQ_OK) {
		p->registered = true;
		p->cc.any_ok = true;
	}
	return rc;
}

static void print_topic_json(const char *topic)
{
	if (!json_string(stdout, topic, strlen(topic)))
		json_base64(stdout, topic, strlen(topic));
}

static int do_create(struct pub *p, const struct action *a)
{
	int rc = ensure_publisher(p);
	if (rc == RMQ_OK)
		rc = rmq_create_topic(p->c, a->topic, &a->opts);
	if (rc != RMQ_OK)
		return cli_fail(&p->cc, p->c, rc, "cannot create topic");
	if (p->cc.quiet)
		return CLI_EX_OK;
	if (p->cc.format == FMT_JSON) {
		fputs("{\"topic\":", stdout);
		print_topic_json(a->topic);
		fputs(",\"created\":true}\n", stdout);
	} else {
		printf("Created topic '%s'.\n", a->topic);
	}
	return CLI_EX_OK;
}

static int do_delete(struct pub *p, const struct action *a)
{
	int rc = rmq_delete_topic(p->c, a->topic);
	if (rc != RMQ_OK)
		return cli_fail(&p->cc, p->c, rc, "cannot delete topic");
	p->cc.any_ok = true;
	if (p->cc.quiet)
		return CLI_EX_OK;
	if (p->cc.format == FMT_JSON) {
		fputs("{\"topic\":", stdout);
		print_topic_json(a->topic);
		fputs(",\"deleted\":true}\n", stdout);
	} else {
		printf("Deleted topic '%s'.\n", a->topic);
	}
	return CLI_EX_OK;
}

static int do_list(struct pub *p)
{
	char **names;
	size_t n;
	int rc = rmq_list_topics(p->c, &names, &n);
	if (rc != RMQ_OK)
		return cli_fail(&p->cc, p->c, rc, "cannot list topics");
	p->cc.any_ok = true;
	for (size_t i = 0; i < n; i++) {
		if (p->cc.format == FMT_JSON) {
			fputs("{\"topic\":", stdout);
			print_topic_json(names[i]);
			fputs("}\n", stdout);
		} else {
			printf("%s\n", names[i]);
		}
	}
	free(names);
	return CLI_EX_OK;
}

static void print_published(struct pub *p, const char *topic, uint64_t seq)
{
	if (p->cc.quiet)
		return;
	if (p->cc.format == FMT_JSON) {
		fputs("{\"topic\":", stdout);
		print_topic_json(topic);
		printf(",\"seq\":%llu}\n", (unsigned long long)seq);
	} else {
		printf("Published message #%llu to '%s'.\n", (unsigned long long)seq, topic);
	}
}

/* Sends what is queued; prints each sequence number in json mode. */
static int flush_batch(struct pub *p, const char *topic, uint64_t *seqs, size_t *total,
		       uint64_t *first, uint64_t *last)
{
	size_t n;
	int rc = rmq_send_flush(p->c, seqs, STDIN_BATCH, &n);
	for (size_t i = 0; i < n && i < STDIN_BATCH; i++) {
		if (!seqs[i])
			continue;
		if (!*first)
			*first = seqs[i];
		*last = seqs[i];
		(*total)++;
		if (p->cc.format == FMT_JSON)
			print_published(p, topic, seqs[i]);
	}
	if (rc == RMQ_OK)
		p->cc.any_ok = true;
	return rc;
}

/* stdin as it is read: lines are split here (no stdio buffering, so that
 * poll() tells the truth about what is left to read). */
struct line_reader {
	char *buf;
	size_t len, cap;
};

/* Queues every complete line of r (and with all, the rest too: the last
 * line without its newline, as at EOF), flushing each STDIN_BATCH. */
static int queue_lines(struct pub *p, const char *topic, struct line_reader *r, bool all,
		       uint64_t *seqs, size_t *total, uint64_t *first, uint64_t *last)
{
	size_t off = 0;
	int rc = RMQ_OK;
	while (rc == RMQ_OK && off < r->len) {
		char *nl = memchr(r->buf + off, '\n', r->len - off);
		if (!nl && !all)
			break;
		size_t end = nl ? (size_t)(nl - r->buf) : r->len;
		rc = rmq_send_queue(p->c, topic, r->buf + off, end - off);
		off = nl ? end + 1 : end;
		if (rc == RMQ_OK && rmq_send_queued(p->c) >= STDIN_BATCH)
			rc = flush_batch(p, topic, seqs, total, first, last);
	}
	memmove(r->buf, r->buf + off, r->len - off);
	r->len -= off;
	return rc;
}

/* Publishes each line of stdin. What has been read goes out as soon as
 * stdin has nothing more ready (poll), so a slow writer (tail -f) sees its
 * lines published at once, while a fast one fills batches of up to
 * STDIN_BATCH; on SIGINT/SIGTERM what was read is published before the
 * process ends (g_stop). */
static int publish_stdin(struct pub *p, const char *topic)
{
	uint64_t *seqs = malloc(STDIN_BATCH * sizeof(*seqs));
	struct line_reader r = { malloc(STDIN_READ), 0, STDIN_READ };
	if (!seqs || !r.buf) {
		free(seqs);
		free(r.buf);
		fprintf(stderr, PROG ": out of memory\n");
		return CLI_EX_ERROR;
	}
	/* SIGINT and SIGTERM are taken only while waiting for stdin (ppoll),
	 * so one cannot slip in between the check of g_stop and the wait. */
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigset_t stops, waiting;
	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	sigprocmask(SIG_BLOCK, &stops, &waiting);
	sigdelset(&waiting, SIGINT);
	sigdelset(&waiting, SIGTERM);
	size_t total = 0;
	uint64_t first = 0, last = 0;
	int rc = RMQ_OK, read_errno = 0;
	bool eof = false;
	while (rc == RMQ_OK && !eof && !g_stop) {
		/* Something queued: send it unless more is ready already;
		 * nothing queued: wait for stdin (or a signal). */
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		const struct timespec now = { 0, 0 };
		int ready = ppoll(&pfd, 1, rmq_send_queued(p->c) ? &now : NULL, &waiting);
		if (ready < 0 && errno == EINTR)
			continue; /* g_stop, or another signal */
		if (ready < 0) {
			read_errno = errno;
			break;
		}
		if (ready == 0) {
			rc = flush_batch(p, topic, seqs, &total, &first, &last);
			continue;
		}
		if (r.cap - r.len < STDIN_READ / 2) { /* a long line: grow */
			char *nb = realloc(r.buf, r.cap * 2);
			if (!nb) {
				read_errno = ENOMEM;
				break;
			}
			r.buf = nb;
			r.cap *= 2;
		}
		ssize_t n = read(STDIN_FILENO, r.buf + r.len, r.cap - r.len);
		if (n < 0) {
			if (errno == EINTR)
				continue; /* g_stop, or another signal */
			read_errno = errno;
			break;
		}
		if (n == 0)
			eof = true;
		r.len += (size_t)n;
		rc = queue_lines(p, topic, &r, eof, seqs, &total, &first, &last);
	}
	/* Stopped by a signal or a read error: what was read goes out too,
	 * a last line without its newline included. */
	if (rc == RMQ_OK && !eof)
		rc = queue_lines(p, topic, &r, true, seqs, &total, &first, &last);
	if (rc == RMQ_OK)
		rc = flush_batch(p, topic, seqs, &total, &first, &last);
	else
		rmq_send_flush(p->c, NULL, 0, NULL); /* keep rc's message */
	free(r.buf);
	free(seqs);
	sigprocmask(SIG_UNBLOCK, &stops, NULL); /* (one pending sets g_stop now) */
	if (rc != RMQ_OK) {
		fprintf(stderr, PROG ": published %zu message%s to '%s' before failing\n", total,
			total == 1 ? "" : "s", topic);
		return cli_fail(&p->cc, p->c, rc, "cannot publish");
	}
	if (read_errno) {
		fprintf(stderr, PROG ": error reading stdin: %s\n", strerror(read_errno));
		return CLI_EX_ERROR;
	}
	if (!p->cc.quiet && p->cc.format == FMT_TEXT) {
		if (total)
			printf("Published %zu message%s to '%s' (seq %llu..%llu)%s.\n", total,
			       total == 1 ? "" : "s", topic, (unsigned long long)first,
			       (unsigned long long)last, g_stop ? ", then interrupted" : "");
		else
			printf("Published 0 messages to '%s' (stdin was empty%s).\n", topic,
			       g_stop ? ", then interrupted" : "");
	}
	return CLI_EX_OK;
}

static int do_publish(struct pub *p, const struct action *a)
{
	int rc = ensure_publisher(p);
	if (rc != RMQ_OK)
		return cli_fail(&p->cc, p->c, rc, "cannot register as a publisher");
	if (a->nmsgs == 1 && !strcmp(a->msgs[0], "-"))
		return publish_stdin(p, a->topic);
	for (int i = 0; i < a->nmsgs; i++) {
		uint64_t seq;
		rc = rmq_send(p->c, a->topic, a->msgs[i], strlen(a->msgs[i]), &seq);
		if (rc != RMQ_OK)
			return cli_fail(&p->cc, p->c, rc, "cannot publish");
		print_published(p, a->topic, seq);
	}
	return CLI_EX_OK;
}

static bool is_flag(const char *a, const char *l, const char *s)
{
	size_t n = strlen(l);
	return (s && !strcmp(a, s)) || (!strncmp(a, l, n) && (a[n] == '\0' || a[n] == '='));
}

int main(int argc, char **argv)
{
	struct pub p = { 0 };
	if (!cli_conn_init(&p.cc, PROG))
		return CLI_EX_BADUSAGE;
	struct action *acts = calloc((size_t)argc, sizeof(*acts));
	if (!acts)
		return CLI_EX_ERROR;
	int nacts = 0;
	struct action *last_create = NULL;
	bool end_of_opts = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		if (!end_of_opts && !strcmp(a, "--")) {
			/* "--publish t -- -5": what follows are messages */
			end_of_opts = true;
			if (nacts && acts[nacts - 1].kind == ACT_PUBLISH &&
			    acts[nacts - 1].nmsgs == 0 && acts[nacts - 1].msgs == &argv[i])
				acts[nacts - 1].msgs = &argv[i + 1];
			continue;
		}
		bool opt = !end_of_opts && a[0] == '-' && a[1] != '\0';
		if (!opt) {
			/* a message for the preceding --publish */
			if (nacts && acts[nacts - 1].kind == ACT_PUBLISH &&
			    acts[nacts - 1].msgs + acts[nacts - 1].nmsgs == &argv[i]) {
				acts[nacts - 1].nmsgs++;
				continue;
			}
			free(acts);
			return cli_usage_error(PROG, "unexpected argument '%s'", a);
		}
		int r = cli_conn_flag(&p.cc, argc, argv, &i);
		if (r < 0) {
			free(acts);
			return CLI_EX_BADUSAGE;
		}
		if (r > 0)
			continue;
		if (is_flag(a, "--help", "-h")) {
			usage(stdout);
			free(acts);
			return CLI_EX_OK;
		}
		if (is_flag(a, "--version", "-V")) {
			printf(PROG " %s\n", rmq_version());
			free(acts);
			return CLI_EX_OK;
		}
		struct action *act = &acts[nacts];
		if (is_flag(a, "--create", "-c") || is_flag(a, "--publish", "-P") ||
		    is_flag(a, "--delete", "-d")) {
			if (!(v = cli_flag_value(PROG, argc, argv, &i))) {
				free(acts);
				return CLI_EX_BADUSAGE;
			}
			act->topic = v;
			act->kind = is_flag(a, "--create", "-c")    ? ACT_CREATE
				    : is_flag(a, "--publish", "-P") ? ACT_PUBLISH
								    : ACT_DELETE;
			act->msgs = &argv[i + 1];
			if (act->kind == ACT_CREATE)
				last_create = act;
			nacts++;
			continue;
		}
		if (is_flag(a, "--list", "-l")) {
			act->kind = ACT_LIST;
			nacts++;
			continue;
		}
		if (is_flag(a, "--capacity", NULL) || is_flag(a, "--on-full", NULL)) {
			bool capacity = is_flag(a, "--capacity", NULL);
			if (!(v = cli_flag_value(PROG, argc, argv, &i))) {
				free(acts);
				return CLI_EX_BADUSAGE;
			}
			if (!last_create) {
				free(acts);
				return cli_usage_error(PROG, "%s goes after --create TOPIC",
						       capacity ? "--capacity" : "--on-full");
			}
			if (capacity &&
			    (rmq_parse_arg(v, RMQ_UNIT_BYTES, &last_create->opts.capacity) != 0 ||
			     last_create->opts.capacity < RMQ_CAPACITY_MIN)) {
				free(acts);
				return cli_usage_error(
					PROG,
					"invalid capacity '%s': bytes, at least 1024 (K, M, G suffixes)",
					v);
			}
			if (!capacity &&
			    !rmq_onfull_parse(v, strlen(v), &last_create->opts.onfull)) {
				free(acts);
				return cli_usage_error(
					PROG,
					"invalid --on-full '%s': expected reject or drop-oldest",
					v);
			}
			continue;
		}
		if (is_flag(a, "--name", NULL)) {
			if (!(p.name = cli_flag_value(PROG, argc, argv, &i))) {
				free(acts);
				return CLI_EX_BADUSAGE;
			}
			continue;
		}
		free(acts);
		return cli_usage_error(PROG, "unknown option '%s'", a);
	}
	if (nacts == 0) {
		free(acts);
		return cli_usage_error(
			PROG, "nothing to do: give --create, --publish, --delete or --list");
	}
	for (int k = 0; k < nacts; k++) {
		if (acts[k].kind != ACT_PUBLISH)
			continue;
		if (acts[k].nmsgs == 0) {
			int ex = cli_usage_error(
				PROG, "--publish %s needs a message (or '-' to read stdin)",
				acts[k].topic);
			free(acts);
			return ex;
		}
		for (int m = 0; m < acts[k].nmsgs && acts[k].nmsgs > 1; m++)
			if (!strcmp(acts[k].msgs[m], "-")) {
				free(acts);
				return cli_usage_error(
					PROG, "'-' (stdin) must be the only message of --publish");
			}
	}

	int ex = CLI_EX_OK;
	p.c = cli_connect(&p.cc, &ex);
	if (!p.c) {
		free(acts);
		return ex;
	}
	for (int k = 0; k < nacts && ex == CLI_EX_OK && !g_stop; k++) {
		switch (acts[k].kind) {
		case ACT_CREATE: ex = do_create(&p, &acts[k]); break;
		case ACT_PUBLISH: ex = do_publish(&p, &acts[k]); break;
		case ACT_DELETE: ex = do_delete(&p, &acts[k]); break;
		case ACT_LIST: ex = do_list(&p); break;
		}
	}
	rmq_client_close(p.c);
	free(acts);
	if (fflush(stdout) != 0 && ex == CLI_EX_OK) {
		fprintf(stderr, PROG ": error writing output: %s\n", strerror(errno));
		ex = CLI_EX_ERROR;
	}
	if (g_stop) { /* end by the signal, as the shell expects (130, 143) */
		int sig = g_stop;
		signal(sig, SIG_DFL);
		raise(sig);
	}
	return ex;
}
