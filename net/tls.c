/* tls.c - TLS for client connections with OpenSSL (see tls.h): the
 * server's SSL_CTX from the tls-* settings, and the non-blocking transport
 * of a connection on --tls-port.
 *
 * OpenSSL is the one TLS library every distribution ships and keeps
 * patched (Debian's libssl3), and the one Redis builds with, so a
 * certificate setup that works for redis-server works here unchanged.
 *
 * The context asks for what a non-blocking server with its own output
 * buffer needs:
 *  - SSL_MODE_ENABLE_PARTIAL_WRITE: SSL_write returns after each record
 *    written, so a full socket costs at most the record in flight;
 *  - SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: a retried SSL_write may pass the
 *    same bytes at another address (the output buffer grows and compacts);
 *  - SSL_MODE_RELEASE_BUFFERS: an idle connection holds no record buffers
 *    (about 50 KiB each otherwise), as an idle plain one holds no input
 *    buffer;
 *  - read-ahead: one read() takes as many records as the socket has,
 *    instead of two per record (header, then body);
 *  - SSL_OP_IGNORE_UNEXPECTED_EOF: a client that closes without a
 *    close_notify (redis-cli, most clients) is an end of input, not an
 *    error: RESP frames its requests, so a cut one is seen as such;
 *  - no renegotiation, no compression, TLS 1.2 and 1.3 only.
 */
#define _GNU_SOURCE
#include "tls.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

struct rmq_tls {
	pthread_mutex_t lock; /* ctx: swapped by a reload, read by conn_new */
	SSL_CTX *ctx;
};

static bool is_set(const char *s)
{
	return s && *s;
}

/* The reason of this thread's last OpenSSL error ("no start line",
 * "key values mismatch"), or dflt; the queue is emptied. */
static const char *ssl_reason(const char *dflt)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	ERR_clear_error();
	return r ? r : dflt;
}

/* A file the context reads: say plainly when it cannot be read at all,
 * before OpenSSL reports it as a PEM error. */
static bool readable(const char *setting, const char *path, bool dir, char *err, size_t n)
{
	if (access(path, dir ? R_OK | X_OK : R_OK) == 0)
		return true;
	snprintf(err, n, "%s '%s': %s", setting, path, strerror(errno));
	return false;
}

static SSL_CTX *build_ctx(const struct rmq_server_config *cfg, char *err, size_t n)
{
	if (!is_set(cfg->tls_cert_file) || !is_set(cfg->tls_key_file)) {
		snprintf(err, n,
			 "tls-port needs tls-cert-file and tls-key-file (the server's certificate "
			 "and private key, PEM)");
		return NULL;
	}
	bool has_ca = is_set(cfg->tls_ca_cert_file) || is_set(cfg->tls_ca_cert_dir);
	if (cfg->tls_auth_clients != RMQ_TLS_AUTH_NO && !has_ca) {
		snprintf(err, n,
			 "tls-auth-clients %s needs tls-ca-cert-file or tls-ca-cert-dir (the CA "
			 "that signs client certificates); set tls-auth-clients no to accept "
			 "clients without one",
			 cfg->tls_auth_clients == RMQ_TLS_AUTH_YES ? "yes" : "optional");
		return NULL;
	}
	if (!readable("tls-cert-file", cfg->tls_cert_file, false, err, n) ||
	    !readable("tls-key-file", cfg->tls_key_file, false, err, n) ||
	    (is_set(cfg->tls_ca_cert_file) &&
	     !readable("tls-ca-cert-file", cfg->tls_ca_cert_file, false, err, n)) ||
	    (is_set(cfg->tls_ca_cert_dir) &&
	     !readable("tls-ca-cert-dir", cfg->tls_ca_cert_dir, true, err, n)))
		return NULL;
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(err, n, "cannot make a TLS context: %s", ssl_reason("out of memory"));
		return NULL;
	}
	unsigned p = cfg->tls_protocols ? cfg->tls_protocols : RMQ_TLS_V1_2 | RMQ_TLS_V1_3;
	SSL_CTX_set_min_proto_version(ctx, p & RMQ_TLS_V1_2 ? TLS1_2_VERSION : TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, p & RMQ_TLS_V1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
	uint64_t opts =
		SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF;
	if (cfg->tls_prefer_server_ciphers)
		opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
	SSL_CTX_set_options(ctx, opts);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1);
	/* resumed sessions of verified clients need a context id */
	static const unsigned char sid[] = "ringmq";
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	SSL_CTX_set_dh_auto(ctx, 1);

	const char *what = NULL, *arg = NULL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
		what = "tls-cert-file";
		arg = cfg->tls_cert_file;
	} else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1) {
		what = "tls-key-file";
		arg = cfg->tls_key_file;
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		what = "tls-key-file (does not match tls-cert-file)";
		arg = cfg->tls_key_file;
	} else if (is_set(cfg->tls_ciphers) &&
		   SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		what = "tls-ciphers";
		arg = cfg->tls_ciphers;
	} else if (is_set(cfg->tls_ciphersuites) &&
		   SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
		what = "tls-ciphersuites";
		arg = cfg->tls_ciphersuites;
	} else if (has_ca &&
		   SSL_CTX_load_verify_locations(
			   ctx, is_set(cfg->tls_ca_cert_file) ? cfg->tls_ca_cert_file : NULL,
			   is_set(cfg->tls_ca_cert_dir) ? cfg->tls_ca_cert_dir : NULL) != 1) {
		what = is_set(cfg->tls_ca_cert_file) ? "tls-ca-cert-file" : "tls-ca-cert-dir";
		arg = is_set(cfg->tls_ca_cert_file) ? cfg->tls_ca_cert_file : cfg->tls_ca_cert_dir;
	}
	if (what) {
		snprintf(err, n, "%s '%s': %s", what, arg, ssl_reason("invalid"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (is_set(cfg->tls_ca_cert_file)) {
		/* the CAs a client is told to pick its certificate by */
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_ca_cert_file);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
	}
	int mode = SSL_VERIFY_NONE;
	if (cfg->tls_auth_clients == RMQ_TLS_AUTH_YES)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	else if (cfg->tls_auth_clients == RMQ_TLS_AUTH_OPTIONAL)
		mode = SSL_VERIFY_PEER;
	SSL_CTX_set_verify(ctx, mode, NULL);
	ERR_clear_error();
	return ctx;
}

int rmq__tls_init(struct server *srv, char *err, size_t errlen)
{
	if (!srv->cfg.tls_port)
		return 0;
	SSL_CTX *ctx = build_ctx(&srv->cfg, err, errlen);
	if (!ctx)
		return -1;
	struct rmq_tls *t = calloc(1, sizeof(*t));
	if (!t) {
		SSL_CTX_free(ctx);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->ctx = ctx;
	srv->tls = t;
	return 0;
}

void rmq__tls_fini(struct server *srv)
{
	struct rmq_tls *t = srv->tls;
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	pthread_mutex_destroy(&t->lock);
	free(t);
	srv->tls = NULL;
}

int rmq__tls_reload(struct server *srv, const struct rmq_server_config *cfg, char *err,
		    size_t errlen)
{
	struct rmq_tls *t = srv->tls;
	if (!t)
		return 0;
	SSL_CTX *ctx = build_ctx(cfg, err, errlen);
	if (!ctx)
		return -1;
	pthread_mutex_lock(&t->lock);
	SSL_CTX *old = t->ctx;
	t->ctx = ctx;
	pthread_mutex_unlock(&t->lock);
	SSL_CTX_free(old); /* open connections hold their own references */
	return 0;
}

/* --- connections --- */

int rmq__tls_conn_new(struct conn *c)
{
	struct rmq_tls *t = c->worker->srv->tls;
	pthread_mutex_lock(&t->lock);
	SSL *ssl = SSL_new(t->ctx); /* takes a reference to the context */
	pthread_mutex_unlock(&t->lock);
	if (!ssl || SSL_set_fd(ssl, c->fd) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_accept_state(ssl);
	c->tls = ssl;
	c->tls_handshaking = true;
	return 0;
}

void rmq__tls_conn_free(struct conn *c)
{
	SSL_free(c->tls); /* the socket BIO does not close the descriptor */
	c->tls = NULL;
}

void rmq__tls_conn_shutdown(struct conn *c)
{
	if (!c->tls || c->tls_handshaking || c->tls_failed)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(c->tls);
	ERR_clear_error();
}

/* Why an operation failed with SSL error e (its return value r). */
static void describe(SSL *ssl, int e, char *why, size_t n)
{
	if (e == SSL_ERROR_ZERO_RETURN) {
		snprintf(why, n, "the client closed the connection");
	} else if (e == SSL_ERROR_SYSCALL) {
		snprintf(why, n, "%s",
			 errno ? strerror(errno) : "the client closed the connection");
	} else {
		long v = SSL_get_verify_result(ssl);
		const char *r = ssl_reason("protocol error");
		if (v != X509_V_OK)
			snprintf(why, n, "%s: %s", r, X509_verify_cert_error_string(v));
		else
			snprintf(why, n, "%s", r);
	}
	ERR_clear_error();
}

int rmq__tls_handshake(struct conn *c, char *why, size_t whylen)
{
	SSL *ssl = c->tls;
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(ssl);
	if (r == 1) {
		c->tls_handshaking = false;
		c->tls_hs_wants_wr = false;
		return 1;
	}
	int e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->tls_hs_wants_wr = e == SSL_ERROR_WANT_WRITE;
		return 0;
	}
	c->tls_failed = true;
	describe(ssl, e, why, whylen);
	return -1;
}

ssize_t rmq__tls_read(struct conn *c, char *p, size_t n)
{
	SSL *ssl = c->tls;
	size_t got = 0;
	c->tls_rd_wants_wr = false;
	while (got < n) {
		ERR_clear_error();
		errno = 0;
		size_t want = n - got > INT_MAX ? INT_MAX : n - got;
		int r = SSL_read(ssl, p + got, (int)want);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		int e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_WANT_READ) {
			/* OpenSSL read the socket dry: no whole record is left
			 * in it, the next one comes with a socket event */
			c->tls_more = false;
			break;
		}
		if (e == SSL_ERROR_WANT_WRITE) {
			/* it must write (a key update's answer) before reading
			 * on: EPOLLOUT resumes the read (conn.c) */
			c->tls_rd_wants_wr = true;
			break;
		}
		if (got)
			return (ssize_t)got; /* the end or the error again next call */
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0; /* close_notify, or a plain close (IGNORE_UNEXPECTED_EOF) */
		char why[160];
		int en = errno;
		c->tls_failed = true;
		describe(ssl, e, why, sizeof(why));
		rmq_diagf(RMQ_DIAG_DEBUG, CONN_LOG "TLS read failed: %s", CONN_ARGS(c), why);
		errno = en && e == SSL_ERROR_SYSCALL ? en : ECONNRESET;
		return -1;
	}
	if (got == n)
		c->tls_more = true; /* full: records may wait inside OpenSSL */
	if (got)
		return (ssize_t)got;
	errno = EAGAIN;
	return -1;
}

ssize_t rmq__tls_write(struct conn *c, const char *p, size_t n)
{
	SSL *ssl = c->tls;
	size_t done = 0;
	c->tls_wr_wants_rd = false;
	while (done < n) {
		size_t k = n - done > RMQ_TLS_RECORD ? RMQ_TLS_RECORD : n - done;
		ERR_clear_error();
		errno = 0;
		int r = SSL_write(ssl, p + done, (int)k);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		int e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_WANT_WRITE)
			break;
		if (e == SSL_ERROR_WANT_READ) {
			/* EPOLLIN resumes the write (conn.c) */
			c->tls_wr_wants_rd = true;
			break;
		}
		if (done)
			return (ssize_t)done;
		char why[160];
		int en = errno;
		c->tls_failed = true;
		describe(ssl, e, why, sizeof(why));
		rmq_diagf(RMQ_DIAG_DEBUG, CONN_LOG "TLS write failed: %s", CONN_ARGS(c), why);
		errno = en && e == SSL_ERROR_SYSCALL ? en : EPIPE;
		return -1;
	}
	if (done)
		return (ssize_t)done;
	errno = EAGAIN;
	return -1;
}

bool rmq__tls_pending(const struct conn *c)
{
	return SSL_pending(c->tls) > 0 || (c->tls_more && SSL_has_pending(c->tls));
}

const char *rmq__tls_version(const struct conn *c)
{
	if (!c->tls)
		return "no";
	return c->tls_handshaking ? "handshake" : SSL_get_version(c->tls);
}
