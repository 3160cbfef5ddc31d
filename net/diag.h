/* diag.h - the server's diagnostic log (diag.c): timestamped lines on
 * stderr at or above a level. "diag", not "log": rmq_log_* is the message
 * log of a topic (core/log.h).
 *
 * Thread-safe: each call writes one line with one fprintf. The level may
 * change at any time (CONFIG SET log-level).
 */
#ifndef RMQ_DIAG_H
#define RMQ_DIAG_H

#include "server.h"

/* Writes one line (at most 511 bytes of message) if lvl is enabled. */
void rmq_diagf(enum rmq_diag_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* rmq_server_run() sets it from its config; for in-process drivers. */
void rmq_diag_set_level(enum rmq_diag_level lvl);
/* Sends the log to path (appended; NULL or "": stderr stays) and, with
 * use_syslog, to syslog too. Called before the threads start. Returns 0
 * or -errno (the file cannot be opened). */
int rmq_diag_open(const char *path, bool use_syslog);
/* Opens the log file again (SIGHUP, after a rotation); 0 or -errno (the
 * old file stays in use). No-op without a log file. */
int rmq_diag_reopen(void);

#endif
