/* tls.h - TLS for client connections (OpenSSL): the server's context,
 * built from the tls-* settings, and the transport of a connection
 * accepted on --tls-port.
 *
 * Plain connections never call in here. conn.c tests c->tls (NULL for
 * plain TCP) and keeps its read()/send() path, so TLS costs a plain client
 * one predictable branch per read and per write, nothing more.
 *
 * The transport is non-blocking and runs on the connection's worker, like
 * everything else of a connection:
 *  - rmq__tls_handshake() advances the handshake as far as the socket
 *    allows (SSL_do_handshake), the frame timeout bounding it (conn.c);
 *  - rmq__tls_read() and rmq__tls_write() behave as read() and send() on a
 *    non-blocking socket do: bytes, 0 for the end (read), or -1 with
 *    errno EAGAIN when the socket cannot go on, another errno when the
 *    connection failed. OpenSSL may need to write to go on reading (a key
 *    update's answer, session tickets) or to read to go on writing: they
 *    record that in c->tls_rd_wants_wr and c->tls_wr_wants_rd, and conn.c
 *    arms EPOLLOUT or EPOLLIN for it;
 *  - rmq__tls_pending(): OpenSSL holds input the socket will not signal
 *    again (decrypted bytes, or whole records read ahead), so the worker
 *    must read on without waiting for an event.
 *
 * Context: built at start (rmq__tls_init) and rebuilt by CONFIG SET of a
 * tls-* setting and by SIGHUP (rmq__tls_reload), which read the files
 * again: new connections get the new context, open ones keep theirs
 * (OpenSSL counts its references).
 *
 * Threads: rmq__tls_init and rmq__tls_fini on the main thread before the
 * workers start and after they stopped; rmq__tls_reload from any thread
 * (callers serialise it under srv->conf_lock); the connection functions
 * on the connection's worker only.
 */
#ifndef RMQ_TLS_H
#define RMQ_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "server.h"

struct server;
struct conn;

/* The largest plaintext record (TLS's limit): what one SSL_write sends. */
#define RMQ_TLS_RECORD (16u << 10)

/* Builds srv->tls from srv->cfg when cfg.tls_port is set (nothing
 * otherwise). Returns 0, or -1 with err set ("tls-cert-file: ..."). */
int rmq__tls_init(struct server *srv, char *err, size_t errlen);
/* Frees srv->tls (every connection is closed). */
void rmq__tls_fini(struct server *srv);
/* Builds a context from cfg's tls-* settings and, if that worked, makes it
 * the one new connections get. Returns 0, or -1 with err set (the old one
 * stays). A no-op returning 0 when TLS is off (no --tls-port). */
int rmq__tls_reload(struct server *srv, const struct rmq_server_config *cfg, char *err,
		    size_t errlen);

/* Makes c (accepted on the TLS port) a TLS connection waiting for its
 * handshake: c->tls set, c->tls_handshaking true. 0, or -ENOMEM. */
int rmq__tls_conn_new(struct conn *c);
/* Frees c->tls (after its socket was closed). */
void rmq__tls_conn_free(struct conn *c);
/* Sends a close_notify if the session is up and nothing failed: best
 * effort, never waits. */
void rmq__tls_conn_shutdown(struct conn *c);

/* Advances the handshake. Returns 1 when done, 0 when it waits for the
 * socket (c->tls_hs_wants_wr says for which event), -1 when it failed:
 * why (at least 128 bytes) gets the reason. */
int rmq__tls_handshake(struct conn *c, char *why, size_t whylen);
/* Reads up to n decrypted bytes (as read()). Loops over records until n
 * bytes or the socket has no more. */
ssize_t rmq__tls_read(struct conn *c, char *p, size_t n);
/* Writes up to n bytes (as send()), in records of RMQ_TLS_RECORD. After
 * -1/EAGAIN the next call must start at the same bytes (the output
 * buffer's unsent front) with at least as many: OpenSSL's retry rule,
 * which an output buffer that only consumes and appends keeps. */
ssize_t rmq__tls_write(struct conn *c, const char *p, size_t n);
/* OpenSSL holds input for c that no socket event will announce. */
bool rmq__tls_pending(const struct conn *c);
/* "TLSv1.3", or "no" for a plain connection (CLIENT INFO). */
const char *rmq__tls_version(const struct conn *c);

#endif
