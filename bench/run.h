/* run.h - one measured run: connections, generator threads, counters.
 *
 * rb_run() connects P publisher connections and K subscriber connections
 * (live SUBSCRIBE pushes, or durable PULL loops), spreads them over a few
 * generator threads, runs a warm-up, then a measured window, stops the
 * publishers, waits until every subscriber has everything the publishers
 * sent (or stops making progress), and fills an rb_result.
 *
 * The generator is built not to be what it measures: each publisher batch
 * is one pre-encoded buffer written with one writev (only the 16-byte
 * stamps are patched), replies and pushes are parsed in place from 1 MiB
 * read buffers without allocation, every connection is non-blocking under
 * one epoll per thread, and shared counters are touched once per batch.
 *
 * Correctness: every message carries a stamp (wire.h); each subscriber
 * tracks each (publisher, topic) stream and counts messages lost,
 * duplicated and out of order over the whole run, warm-up included.
 *
 * Threads: rb_run() is called from one thread and starts and joins its own.
 */
#ifndef RB_RUN_H
#define RB_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "hist.h"
#include "proc.h"

enum rb_scen {
	RB_SC_CREATE,
	RB_SC_SEND,
	RB_SC_FANOUT,
	RB_SC_PULL,
	RB_SC_LATENCY,
	RB_SC_SWEEP,
	RB_SC_RECOVERY,
	RB_SC_CONNS,    /* many publishers, idle connections, accept rate */
	RB_SC_LOOPBACK, /* plain TCP sender -> receiver, no broker */
	RB_NSCEN
};

/* What each publisher frame is. */
enum rb_frame { RB_FR_PUBLISH, RB_FR_CREATE, RB_FR_DELETE };

struct rb_work {
	enum rb_scen scen;
	enum rb_frame frame;
	unsigned pubs, subs, topics;
	unsigned pub_threads, sub_threads; /* 0: min(connections, cores) */
	unsigned payload;                  /* bytes per message */
	unsigned depth;                    /* messages in flight per publisher (replies on) */
	unsigned batch;                    /* frames per write; 0: auto */
	bool replies;                      /* false: CLIENT REPLY OFF / no NATS PING per batch */
	unsigned mpublish;                 /* > 1: ringmq MPUBLISH with that many payloads */
	double rate;                       /* total messages/s; 0: as fast as possible */
	unsigned tick_us;                  /* with rate: sleep at least this long between
					      sends (messages due meanwhile go together,
					      stamped with their own intended times) */
	uint64_t window;                   /* max messages a publisher runs ahead of the slowest
					      subscriber, per stream; 0: no flow control */
	double warmup, duration;           /* seconds */
	uint64_t count;                    /* per publisher, measured phase; 0: by duration */
	double drain;                      /* give up when subscribers make no progress that long */
	bool durable;                      /* subscribers pull (REGISTER/SUBSCRIBE/PULL) */
	unsigned pull_count, pull_block_ms;
	uint64_t capacity;    /* CAPACITY of topics it creates on ringmq; 0: default */
	unsigned patterns;    /* PSUBSCRIBEd (by one idle connection) to this many
				 patterns that match none of the run's topics */
	uint64_t ctr_base;    /* CREATE/DELETE: first topic number */
	char name_prefix[64]; /* CREATE/DELETE: topic names "<prefix>.c<pub>.<n>" */
	bool progress;        /* live line on stderr */
	const char *label;    /* for the progress line */
};

struct rb_result {
	bool ok; /* false: the run could not be done (see err) */
	char err[256];
	double secs;         /* measured window */
	uint64_t sent;       /* messages written in the window */
	uint64_t acked;      /* messages acknowledged in the window (replies on) */
	uint64_t delivered;  /* messages received by subscribers in the window */
	uint64_t total_sent; /* whole run, warm-up included */
	uint64_t expected;   /* deliveries the publishers' total_sent implies */
	uint64_t received;   /* deliveries counted, duplicates excluded */
	uint64_t lost, dup, ooo, unexpected;
	uint64_t errors;         /* error replies, -ERR, unexpected disconnects */
	struct rb_hist ack;      /* publish -> acknowledgement, ns (replies on) */
	struct rb_hist e2e;      /* send stamp -> receipt, ns */
	struct rb_hist send_lag; /* with rate: actual - intended send time, ns */
	double lag_avg, lag_max; /* messages published but not yet delivered, sampled */
	double gen_cpu_max;      /* busiest generator thread, fraction of a core */
	double gen_cpu_sum;      /* all generator threads, cores */
	unsigned gen_threads;
	double srv_cpu;   /* server CPU seconds in the window; < 0 unknown */
	uint64_t srv_rss; /* server RSS after the run; 0 unknown */
	uint64_t payload; /* bytes per message */
	unsigned batch;   /* frames per write that were used */
};

/* Runs w against srv. The result is always filled; r->ok says whether the
 * run completed (a completed run may still count losses or errors). */
void rb_run(const struct rb_work *w, const struct rb_server *srv, struct rb_result *r);

/* Creates (or deletes) topics name_prefix.0 .. .n-1 on ringmq over one
 * control connection, pipelined. 0 or -1. */
int rb_topics_batch(const struct rb_server *srv, const char *prefix, unsigned n, bool create,
		    uint64_t capacity);

/* A fresh name prefix for a run's topics: "rb<pid>x<counter>". */
void rb_topic_prefix(char *buf, size_t cap);

const char *rb_scen_name(enum rb_scen s);
int rb_scen_parse(const char *s, enum rb_scen *out); /* case-insensitive; 0 or -1 */

/* Online cores. */
unsigned rb_cores(void);

/* Set from signal handlers: stop what is running as soon as possible. */
extern volatile int rb_interrupted;

#endif
