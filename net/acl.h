/* acl.h - authentication and authorization: users, their passwords,
 * command categories and topic patterns (Redis 7's ACL model, on ringmq's
 * commands and topics), the ACL log, and protected mode.
 *
 * Model: a user is an immutable snapshot (struct rmq_acl_user), shared by
 * reference between the registry and the connections authenticated as it.
 * ACL SETUSER/DELUSER/LOAD replace snapshots under the registry's mutex and
 * bump its epoch; a connection compares the epoch it last saw with the
 * registry's (one relaxed load per command) and re-fetches its user by
 * name when they differ, and each worker re-checks its own connections
 * (rmq__acl_worker_check) after being woken, closing those whose user is
 * gone or whose subscriptions are no longer allowed. A connection is only
 * ever touched by its own worker.
 *
 * Threads: every function may be called from any worker thread unless its
 * comment says otherwise. Memory: the registry owns the snapshots; a
 * connection owns one reference (c->acl.user), released by
 * rmq__acl_conn_fini().
 */
#ifndef RMQ_ACL_H
#define RMQ_ACL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Command categories (a command has one or more; net/cmd.c's table). */
#define RMQ_CAT_PUBLISH 0x01u    /* PUBLISH, MPUBLISH */
#define RMQ_CAT_SUBSCRIBE 0x02u  /* SUBSCRIBE, UNSUBSCRIBE, REGISTER, PULL, ACK */
#define RMQ_CAT_TOPICADMIN 0x04u /* CREATE, DELETE */
#define RMQ_CAT_ADMIN 0x08u      /* INFO, CONFIG, ACL, ... */
#define RMQ_CAT_CONNECTION 0x10u /* PING, HELLO, AUTH, QUIT, CLIENT, ... */
#define RMQ_CAT_READ 0x20u       /* TOPICS */
#define RMQ_CAT_ALL 0x3fu

/* Most commands a user's bitmap can hold (net/cmd.c's table is smaller;
 * a static assertion there checks it). */
#define RMQ_ACL_MAX_COMMANDS 64
/* ACL LOG keeps this many entries, newest first (as Redis's
 * acllog-max-len default). */
#define RMQ_ACL_LOG_MAX 128

struct rmq_acl_user;
struct rmq_acl;

/* A connection's authentication state (a member of struct conn). */
struct rmq_conn_acl {
	struct rmq_acl_user *user; /* one reference; NULL: not authenticated */
	uint64_t epoch;            /* the registry's epoch user was fetched at */
	bool authed;               /* was authenticated once (even implicitly as
				    * an open default user): a NULL user is then
				    * a revoked one */
	bool pub_ok;               /* publishing to the connection's cached
				    * topic (c->pub_topic) is allowed, as decided
				    * at epoch */
	bool all_topics;           /* user has allchannels (copied for the hot path) */
	uint64_t cmds;             /* user's allowed commands, by table index */
};

/* Makes the registry: a "default" user, on, with every command and topic,
 * and nopass unless requirepass (not NULL) sets its password; then, with
 * an aclfile, the users of that file (whose default user, if any, replaces
 * the built-in; without one, default is off). Returns NULL after writing
 * why into err (errlen bytes). */
struct rmq_acl *rmq_acl_new(const char *requirepass, const char *aclfile, char *err, size_t errlen);
void rmq_acl_free(struct rmq_acl *acl);

/* The first member of struct rmq_acl: what the hot path reads inline. */
struct rmq_acl_pub {
	_Atomic uint64_t epoch; /* bumped (release) after every change of a user */
};

/* The registry's epoch: changes with every change of any user. A relaxed
 * load: a reader that sees a new value takes the registry's lock before
 * reading the users (rmq__acl_refresh), which orders the rest. */
static inline uint64_t rmq_acl_epoch(const struct rmq_acl *acl)
{
	return atomic_load_explicit(&((const struct rmq_acl_pub *)(const void *)acl)->epoch,
				    memory_order_relaxed);
}

/* Keeps the owners of durable subscribers in dir (the data directory)'s
 * acl-owners file, loading what it has. dir NULL: in memory only. Called
 * once, before the workers start. */
void rmq_acl_set_dir(struct rmq_acl *acl, const char *dir);

/* Applies rules (space-separated, as in ACL SETUSER) to the user called
 * name, creating it (with no permissions, off) if needed. All or nothing:
 * returns 0, or -1 with err set. */
int rmq_acl_setuser(struct rmq_acl *acl, const char *name, size_t nlen, const char *const *rules,
		    const size_t *lens, size_t n, char *err, size_t errlen);

/* Checks a password in constant time (for its length). Returns true when
 * user exists, is on, and has nopass or the password's SHA-256 among its
 * hashes. */
bool rmq_acl_check_password(struct rmq_acl *acl, const char *user, size_t ulen, const char *pass,
			    size_t plen);

/* Whether Redis-style protected mode refuses a client connecting from
 * peer: protected mode is on, the server listens on a non-loopback
 * address, no ACL file is in use and the default user is open (on,
 * nopass), and the peer is not a loopback address. Pure: unit-tested. */
bool rmq_acl_protected_refuses(bool protected_mode, const char *bind, bool aclfile,
			       bool default_open, const struct sockaddr *peer, socklen_t peerlen);
/* Whether the default user is on with nopass (protected mode's question). */
bool rmq_acl_default_open(struct rmq_acl *acl);
/* Whether a user called name[0, n) exists (CLIENT KILL USER). Any thread. */
bool rmq_acl_user_exists(struct rmq_acl *acl, const char *name, size_t n);
/* The reply protected mode sends before closing (a RESP error line). */
extern const char rmq_acl_denied_msg[];

/* Whether pattern (a glob) matches the whole of name (rmq_glob_match). */
bool rmq_acl_glob(const char *pattern, size_t plen, const char *name, size_t nlen);

#endif
