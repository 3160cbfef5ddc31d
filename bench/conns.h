/* conns.h - connection-count measurements (the conns scenario) and the
 * loopback reference (a plain TCP sender/receiver pair, no broker).
 *
 * Idle connections: rb_idle_open() opens n connections to a server and
 * makes each do one round trip (RESP PING / NATS CONNECT+PING), so the
 * server has accepted and set up every one of them; they then stay silent
 * until rb_idle_close(). The caller owns the returned set.
 *
 * Accept rate: rb_accept_rate() runs `threads` threads, each looping
 * connect + PING (NATS: INFO, CONNECT, PING) + PONG + close for `secs`
 * seconds. Connections are closed with SO_LINGER 0 (a reset), so no
 * TIME_WAIT socket holds a loopback ephemeral port.
 *
 * Loopback: rb_loopback() sends messages of `payload` bytes from one
 * thread to another over 127.0.0.1 TCP, each stamped with its number, and
 * checks every stamp on the receiving side: what the machine's loopback
 * carries with no broker in between.
 *
 * All functions are called from one thread; they start and join their own.
 */
#ifndef RB_CONNS_H
#define RB_CONNS_H

#include <stdint.h>

#include "proc.h"

struct rb_idle {
	int *fd;
	unsigned n;      /* opened and answered */
	uint64_t errors; /* connects or round trips that failed */
	char err[128];   /* the first failure */
};

/* Opens n idle connections (see above). Always fills *set; free it with
 * rb_idle_close(). */
void rb_idle_open(const struct rb_server *srv, unsigned n, struct rb_idle *set);
void rb_idle_close(struct rb_idle *set);

struct rb_accept_result {
	uint64_t conns;  /* connect + round trip + close completed in the window */
	uint64_t errors; /* failed connects or round trips */
	double secs;
	char err[128];
};

void rb_accept_rate(const struct rb_server *srv, unsigned threads, double warmup, double secs,
		    struct rb_accept_result *r);

struct rb_loop_result {
	int ok; /* 0: the pair could not be set up (err says why) */
	char err[128];
	double secs;
	uint64_t bytes;     /* received in the measured window */
	uint64_t sent_msgs; /* whole run */
	uint64_t recv_msgs; /* whole run, complete messages */
	uint64_t bad;       /* stamps out of sequence */
};

/* payload >= 8 bytes. */
void rb_loopback(unsigned payload, double warmup, double secs, struct rb_loop_result *r);

/* Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
uint64_t rb_raise_nofile(void);

#endif
