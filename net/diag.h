/* diag.h - the server's diagnostic log (diag.c): timestamped lines on
 * stderr at or above a level. "diag", not "log": rmq_log_* is the message
 * log of a topic (core/log.h).
 *
 * Thread-safe: each call writes one line with one fprintf. The level is set
 * once, before the threads that log start.
 */
#ifndef RMQ_DIAG_H
#define RMQ_DIAG_H

#include "server.h"

/* Writes one line (at most 511 bytes of message) if lvl is enabled. */
void rmq_diagf(enum rmq_diag_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* rmq_server_run() sets it from its config; for in-process drivers. */
void rmq_diag_set_level(enum rmq_diag_level lvl);

#endif
