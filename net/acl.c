/* acl.c - users, passwords, permissions and their checks (see acl.h), the
 * AUTH and ACL commands, and protected mode.
 *
 * Locking: one mutex (acl->lock) guards the user list and the ACL log;
 * another (owners_lock) the owners of durable subscribers, which every
 * REGISTER SUBSCRIBER looks up (a hash table: O(1) whatever their number),
 * so that REGISTERs never wait for AUTH, ACL or each other's file writes
 * (persist.c writes the owners file, rmq__acl_owners_flush). User
 * snapshots are immutable once in the list; a change builds a new snapshot
 * from a copy, swaps it in and bumps the epoch (release), so a connection
 * that sees the new epoch and takes the lock finds the new snapshot. A
 * snapshot is freed when its last reference (the list's or a connection's)
 * goes.
 */
#define _GNU_SOURCE
#include "acl.h"

#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SHA_LEN 32
#define USER_NAME_MAX 128
#define OWNERS_FILE "acl-owners"
#define CLIENT_DESC_MAX 768 /* an ACL LOG entry's client-info */

struct rmq_acl_user {
	_Atomic unsigned long refs;
	char *name;
	bool on, nopass, all_topics;
	uint8_t (*hashes)[SHA_LEN];
	size_t nhash;
	char **topics; /* globs, NUL-terminated */
	size_t ntopics;
	char **crules; /* command rules in order, canonical ("+@publish", "-delete") */
	size_t ncrules;
	uint64_t cmds; /* what crules allow, by command table index */
};

struct acl_log_entry {
	uint64_t count, id, created_ms, updated_ms; /* wall clock */
	char reason[16];                            /* auth, command, channel */
	char object[128];
	char username[USER_NAME_MAX];
	char client[CLIENT_DESC_MAX];
};

/* A durable subscriber's owner: one slot of the owners' open-addressing
 * table (sub NULL: empty). Entries are never removed: a name, once
 * claimed, stays its user's (README, Security). */
struct owner {
	uint64_t hash; /* rmq_hash(sub) */
	char *sub;
	size_t sublen;
	char *user;
};

struct rmq_acl {
	struct rmq_acl_pub pub; /* first: rmq_acl_epoch() reads it */
	pthread_mutex_t lock;
	struct rmq_acl_user **users;
	size_t nusers, cap;
	char *aclfile;
	char *owners_path; /* NULL: ownership kept in memory only */
	int owners_fd;     /* owners_path, appending; -1: none */
	_Atomic int default_open;
	/* refusals: failed AUTH; NOPERM for a command, for a topic, pattern or
	 * subscriber; NOAUTH (a command before AUTH) */
	_Atomic uint64_t denied_auth, denied_cmd, denied_channel, denied_noauth;
	struct acl_log_entry log[RMQ_ACL_LOG_MAX]; /* log[(head - 1 - i) % MAX]: i-th newest */
	size_t log_n, log_head;
	uint64_t log_next_id;
	/* The owners of durable subscribers, under owners_lock (not lock:
	 * REGISTER does not wait for AUTH or ACL commands): a table of
	 * owners_cap slots (a power of two, at most half full), and the lines
	 * not yet appended to the owners file (owners_flush). owners_io
	 * serialises the appends, taken before owners_lock. */
	pthread_mutex_t owners_lock, owners_io;
	struct owner *owners;
	size_t nowners, owners_cap;
	struct rmq_buf owners_pending;
};

static const struct {
	const char *name;
	unsigned bit;
} cats[] = {
	{ "publish", RMQ_CAT_PUBLISH },
	{ "subscribe", RMQ_CAT_SUBSCRIBE },
	{ "topicadmin", RMQ_CAT_TOPICADMIN },
	{ "admin", RMQ_CAT_ADMIN },
	{ "connection", RMQ_CAT_CONNECTION },
	{ "read", RMQ_CAT_READ },
	{ "all", RMQ_CAT_ALL },
};
#define NCATS (sizeof(cats) / sizeof(cats[0]))

/* --- passwords --- */

static void sha256(const void *p, size_t n, uint8_t out[SHA_LEN])
{
	unsigned int len = SHA_LEN;
	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != SHA_LEN) {
		/* libcrypto's SHA-256 cannot fail short of memory: no password
		 * may then match by accident */
		rmq_diagf(RMQ_DIAG_ERROR, "acl: SHA-256 failed");
		abort();
	}
}

static void hex(const uint8_t *h, char out[2 * SHA_LEN + 1])
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < SHA_LEN; i++) {
		out[2 * i] = d[h[i] >> 4];
		out[2 * i + 1] = d[h[i] & 15];
	}
	out[2 * SHA_LEN] = '\0';
}

static int unhex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool unhex(const char *p, size_t n, uint8_t out[SHA_LEN])
{
	if (n != 2 * SHA_LEN)
		return false;
	for (size_t i = 0; i < SHA_LEN; i++) {
		int a = unhex_digit(p[2 * i]), b = unhex_digit(p[2 * i + 1]);
		if (a < 0 || b < 0)
			return false;
		out[i] = (uint8_t)(a << 4 | b);
	}
	return true;
}

/* --- user snapshots --- */

static void user_unref(struct rmq_acl_user *u)
{
	if (!u || atomic_fetch_sub_explicit(&u->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < u->ntopics; i++)
		free(u->topics[i]);
	for (size_t i = 0; i < u->ncrules; i++)
		free(u->crules[i]);
	free(u->topics);
	free(u->crules);
	free(u->hashes);
	free(u->name);
	free(u);
}

static struct rmq_acl_user *user_ref(struct rmq_acl_user *u)
{
	atomic_fetch_add_explicit(&u->refs, 1, memory_order_relaxed);
	return u;
}

/* A new user: off, no password (and not nopass: nobody can log in), no
 * topics, no commands (Redis 7's defaults, resetchannels included). */
static struct rmq_acl_user *user_new(const char *name, size_t len)
{
	struct rmq_acl_user *u = rmq_calloc(1, sizeof(*u));
	atomic_init(&u->refs, 1);
	u->name = rmq_memdup(name, len);
	return u;
}

static struct rmq_acl_user *user_copy(const struct rmq_acl_user *o)
{
	struct rmq_acl_user *u = user_new(o->name, strlen(o->name));
	u->on = o->on;
	u->nopass = o->nopass;
	u->all_topics = o->all_topics;
	u->cmds = o->cmds;
	if (o->nhash) {
		u->hashes = rmq_malloc(o->nhash * SHA_LEN);
		memcpy(u->hashes, o->hashes, o->nhash * SHA_LEN);
		u->nhash = o->nhash;
	}
	u->topics = rmq_malloc((o->ntopics + 1) * sizeof(char *));
	for (size_t i = 0; i < o->ntopics; i++)
		u->topics[i] = rmq_memdup(o->topics[i], strlen(o->topics[i]));
	u->ntopics = o->ntopics;
	u->crules = rmq_malloc((o->ncrules + 1) * sizeof(char *));
	for (size_t i = 0; i < o->ncrules; i++)
		u->crules[i] = rmq_memdup(o->crules[i], strlen(o->crules[i]));
	u->ncrules = o->ncrules;
	return u;
}

static void strv_clear(char ***v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*v)[i]);
	free(*v);
	*v = NULL;
	*n = 0;
}

static void strv_push(char ***v, size_t *n, const char *s, size_t len)
{
	*v = rmq_realloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = rmq_memdup(s, len);
}

static void hash_add(struct rmq_acl_user *u, const uint8_t h[SHA_LEN])
{
	for (size_t i = 0; i < u->nhash; i++)
		if (memcmp(u->hashes[i], h, SHA_LEN) == 0)
			return;
	u->hashes = rmq_realloc(u->hashes, (u->nhash + 1) * SHA_LEN);
	memcpy(u->hashes[u->nhash++], h, SHA_LEN);
	u->nopass = false;
}

static bool hash_del(struct rmq_acl_user *u, const uint8_t h[SHA_LEN])
{
	for (size_t i = 0; i < u->nhash; i++)
		if (memcmp(u->hashes[i], h, SHA_LEN) == 0) {
			memmove(u->hashes[i], u->hashes[i + 1], (u->nhash - i - 1) * SHA_LEN);
			u->nhash--;
			return true;
		}
	return false;
}

static int cat_find(const char *p, size_t n)
{
	for (size_t i = 0; i < NCATS; i++)
		if (strlen(cats[i].name) == n && strncasecmp(cats[i].name, p, n) == 0)
			return (int)i;
	return -1;
}

static int cmd_index(const char *p, size_t n)
{
	for (size_t i = 0; i < rmq__cmd_count(); i++) {
		const char *name = rmq__cmd_name(i);
		if (strlen(name) == n && strncasecmp(name, p, n) == 0)
			return (int)i;
	}
	return -1;
}

static uint64_t cat_mask(unsigned bit)
{
	uint64_t m = 0;
	for (size_t i = 0; i < rmq__cmd_count(); i++)
		if (rmq__cmd_cats(i) & bit)
			m |= 1ULL << i;
	return m;
}

/* Applies a command rule (already validated) to u->cmds. */
static void crule_apply(struct rmq_acl_user *u, const char *r)
{
	bool plus = r[0] == '+';
	uint64_t m;
	if (r[1] == '@')
		m = cat_mask(cats[cat_find(r + 2, strlen(r + 2))].bit);
	else
		m = 1ULL << cmd_index(r + 1, strlen(r + 1));
	u->cmds = plus ? u->cmds | m : u->cmds & ~m;
}

/* Records a command rule in its canonical form; +@all and -@all make the
 * rules before them moot, so the list stays short whatever is applied. */
static void crule_add(struct rmq_acl_user *u, bool plus, bool cat, const char *name, size_t n)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%c%s%.*s", plus ? '+' : '-', cat ? "@" : "", (int)n, name);
	for (char *p = buf + 1; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	if (cat && strcmp(buf + 2, "all") == 0)
		strv_clear(&u->crules, &u->ncrules);
	strv_push(&u->crules, &u->ncrules, buf, strlen(buf));
	crule_apply(u, buf);
}

static int set_err(char *err, size_t errlen, const char *fmt, const char *p, size_t n)
{
	snprintf(err, errlen, fmt, (int)(n > 64 ? 64 : n), p);
	return -1;
}

static bool word_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

/* Applies one rule to the draft u. Returns 0, or -1 with err set. */
static int user_rule(struct rmq_acl_user *u, const char *p, size_t n, char *err, size_t errlen)
{
	uint8_t h[SHA_LEN];
	if (n == 0)
		return set_err(err, errlen, "empty rule%.*s", "", 0);
	if (word_is(p, n, "on")) {
		u->on = true;
	} else if (word_is(p, n, "off")) {
		u->on = false;
	} else if (word_is(p, n, "nopass")) {
		free(u->hashes);
		u->hashes = NULL;
		u->nhash = 0;
		u->nopass = true;
	} else if (word_is(p, n, "resetpass")) {
		free(u->hashes);
		u->hashes = NULL;
		u->nhash = 0;
		u->nopass = false;
	} else if (p[0] == '>') {
		sha256(p + 1, n - 1, h);
		hash_add(u, h);
	} else if (p[0] == '<') {
		sha256(p + 1, n - 1, h);
		if (!hash_del(u, h))
			return set_err(err, errlen, "no such password to remove%.*s", "", 0);
	} else if (p[0] == '#') {
		if (!unhex(p + 1, n - 1, h))
			return set_err(
				err, errlen,
				"'%.*s': a password hash is # and 64 hexadecimal digits (SHA-256)",
				p, n);
		hash_add(u, h);
	} else if (p[0] == '!') {
		if (!unhex(p + 1, n - 1, h) || !hash_del(u, h))
			return set_err(err, errlen, "'%.*s': no such password hash to remove", p,
				       n);
	} else if (word_is(p, n, "allchannels") || word_is(p, n, "alltopics") ||
		   (n == 2 && p[0] == '&' && p[1] == '*')) {
		strv_clear(&u->topics, &u->ntopics);
		u->all_topics = true;
	} else if (word_is(p, n, "resetchannels") || word_is(p, n, "resettopics")) {
		strv_clear(&u->topics, &u->ntopics);
		u->all_topics = false;
	} else if (p[0] == '&') {
		/* as a topic name: so that ACL SAVE's line reads back */
		if (!rmq_topic_name_valid(p + 1, n - 1))
			return set_err(
				err, errlen,
				"'%.*s': a topic pattern has 1 to 255 bytes, no whitespace or control characters",
				p, n);
		if (u->all_topics)
			return set_err(
				err, errlen,
				"'%.*s': adding a pattern after allchannels (&*) has no effect: use resetchannels first",
				p, n);
		for (size_t i = 0; i < u->ntopics; i++)
			if (strlen(u->topics[i]) == n - 1 &&
			    memcmp(u->topics[i], p + 1, n - 1) == 0)
				return 0;
		strv_push(&u->topics, &u->ntopics, p + 1, n - 1);
	} else if (word_is(p, n, "allcommands")) {
		crule_add(u, true, true, "all", 3);
	} else if (word_is(p, n, "nocommands")) {
		crule_add(u, false, true, "all", 3);
	} else if ((p[0] == '+' || p[0] == '-') && n > 2 && p[1] == '@') {
		if (cat_find(p + 2, n - 2) < 0)
			return set_err(err, errlen, "'%.*s': unknown command category (ACL CAT)", p,
				       n);
		crule_add(u, p[0] == '+', true, p + 2, n - 2);
	} else if ((p[0] == '+' || p[0] == '-') && n > 1) {
		if (cmd_index(p + 1, n - 1) < 0)
			return set_err(err, errlen, "'%.*s': unknown command", p, n);
		crule_add(u, p[0] == '+', false, p + 1, n - 1);
	} else if (word_is(p, n, "reset")) {
		u->on = false;
		u->nopass = false;
		u->all_topics = false;
		free(u->hashes);
		u->hashes = NULL;
		u->nhash = 0;
		strv_clear(&u->topics, &u->ntopics);
		strv_clear(&u->crules, &u->ncrules);
		u->cmds = 0;
	} else if (word_is(p, n, "allkeys") || word_is(p, n, "resetkeys") || p[0] == '~' ||
		   p[0] == '%' || word_is(p, n, "sanitize-payload") ||
		   word_is(p, n, "skip-sanitize-payload")) {
		/* Redis key rules: ringmq has no keys. Accepted (client
		 * libraries' ACL helpers send them) and ignored. */
	} else {
		return set_err(err, errlen, "'%.*s': unknown rule", p, n);
	}
	return 0;
}

/* The user's rules as ACL LIST shows them and ACL SAVE writes them. */
static void user_describe(const struct rmq_acl_user *u, struct rmq_buf *b)
{
	char h[2 * SHA_LEN + 1];
	rmq_buf_append(b, "user ", 5);
	rmq_buf_append(b, u->name, strlen(u->name));
	rmq_buf_append(b, u->on ? " on" : " off", u->on ? 3 : 4);
	if (u->nopass)
		rmq_buf_append(b, " nopass", 7);
	for (size_t i = 0; i < u->nhash; i++) {
		hex(u->hashes[i], h);
		rmq_buf_append(b, " #", 2);
		rmq_buf_append(b, h, 2 * SHA_LEN);
	}
	if (u->all_topics)
		rmq_buf_append(b, " &*", 3);
	else if (u->ntopics == 0)
		rmq_buf_append(b, " resetchannels", 14);
	for (size_t i = 0; i < u->ntopics; i++) {
		rmq_buf_append(b, " &", 2);
		rmq_buf_append(b, u->topics[i], strlen(u->topics[i]));
	}
	if (u->ncrules == 0)
		rmq_buf_append(b, " -@all", 6);
	for (size_t i = 0; i < u->ncrules; i++) {
		rmq_buf_append(b, " ", 1);
		rmq_buf_append(b, u->crules[i], strlen(u->crules[i]));
	}
}

static bool user_topic_ok(const struct rmq_acl_user *u, const char *t, size_t n)
{
	if (u->all_topics)
		return true;
	for (size_t i = 0; i < u->ntopics; i++)
		if (rmq_glob_match(u->topics[i], strlen(u->topics[i]), t, n))
			return true;
	return false;
}

/* --- the registry --- */

/* Index of the user called name, or -1. Under acl->lock. */
static ssize_t user_find(const struct rmq_acl *acl, const char *name, size_t n)
{
	for (size_t i = 0; i < acl->nusers; i++)
		if (strlen(acl->users[i]->name) == n && memcmp(acl->users[i]->name, name, n) == 0)
			return (ssize_t)i;
	return -1;
}

static void users_free(struct rmq_acl_user **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		user_unref(v[i]);
	free(v);
}

/* Under acl->lock: the users changed. */
static void bump(struct rmq_acl *acl)
{
	ssize_t d = user_find(acl, "default", 7);
	bool open = d >= 0 && acl->users && acl->users[d]->on && acl->users[d]->nopass;
	atomic_store_explicit(&acl->default_open, open, memory_order_relaxed);
	atomic_fetch_add_explicit(&acl->pub.epoch, 1, memory_order_release);
}

static bool name_valid(const char *p, size_t n)
{
	if (n == 0 || n >= USER_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return false;
	return true;
}

/* Splits s at spaces and tabs into at most max words. */
static size_t split_words(char *s, char **w, size_t *lens, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(s, " \t\r", &save); t && n < max;
	     t = strtok_r(NULL, " \t\r", &save)) {
		w[n] = t;
		lens[n++] = strlen(t);
	}
	return n;
}

#define LINE_WORDS_MAX 1024

/* Parses an ACL file into a new user list (*out, *nout). Returns 0, or -1
 * with err naming the line. */
static int load_file(const char *path, struct rmq_acl_user ***out, size_t *nout, char *err,
		     size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open ACL file '%s': %s", path, strerror(errno));
		return -1;
	}
	struct rmq_acl_user **v = NULL;
	size_t n = 0, lineno = 0;
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;
	char **w = rmq_malloc(LINE_WORDS_MAX * sizeof(char *));
	size_t *lens = rmq_malloc(LINE_WORDS_MAX * sizeof(size_t));
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		char e[200];
		size_t nw = split_words(line, w, lens, LINE_WORDS_MAX);
		if (nw == 0 || w[0][0] == '#')
			continue;
		if (nw < 2 || strcmp(w[0], "user") != 0 || !name_valid(w[1], lens[1])) {
			snprintf(err, errlen, "%s:%zu: expected 'user NAME rules...'", path,
				 lineno);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i]->name, w[1]) == 0) {
				snprintf(err, errlen, "%s:%zu: user '%s' defined twice", path,
					 lineno, w[1]);
				rc = -1;
			}
		if (rc)
			break;
		struct rmq_acl_user *u = user_new(w[1], lens[1]);
		v = rmq_realloc(v, (n + 1) * sizeof(*v));
		v[n++] = u;
		for (size_t i = 2; i < nw && rc == 0; i++)
			if (user_rule(u, w[i], lens[i], e, sizeof(e)) != 0) {
				snprintf(err, errlen, "%s:%zu: %s", path, lineno, e);
				rc = -1;
			}
		if (rc)
			break;
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "error reading ACL file '%s'", path);
		rc = -1;
	}
	free(w);
	free(lens);
	free(line);
	fclose(f);
	if (rc) {
		users_free(v, n);
		return -1;
	}
	*out = v;
	*nout = n;
	return 0;
}

static struct rmq_acl_user *default_user(const char *requirepass)
{
	struct rmq_acl_user *u = user_new("default", 7);
	char e[64];
	(void)user_rule(u, "on", 2, e, sizeof(e));
	(void)user_rule(u, "allchannels", 11, e, sizeof(e));
	(void)user_rule(u, "allcommands", 11, e, sizeof(e));
	if (requirepass) {
		uint8_t h[SHA_LEN];
		sha256(requirepass, strlen(requirepass), h);
		hash_add(u, h);
	} else {
		u->nopass = true;
	}
	return u;
}

/* Installs a loaded list (adding an "off" default user if it has none).
 * Under acl->lock. */
static void install_users(struct rmq_acl *acl, struct rmq_acl_user **v, size_t n)
{
	users_free(acl->users, acl->nusers);
	acl->users = v;
	acl->nusers = acl->cap = n;
	if (user_find(acl, "default", 7) < 0) {
		struct rmq_acl_user *u = user_new("default", 7);
		acl->users = rmq_realloc(acl->users, (acl->nusers + 1) * sizeof(*acl->users));
		acl->users[acl->nusers++] = u;
		acl->cap = acl->nusers;
	}
	bump(acl);
}

static void owners_load(struct rmq_acl *acl);

struct rmq_acl *rmq_acl_new(const char *requirepass, const char *aclfile, char *err, size_t errlen)
{
	if (requirepass && !requirepass[0])
		requirepass = NULL; /* "": no password, as Redis */
	if (requirepass && aclfile) {
		snprintf(err, errlen,
			 "--requirepass and --aclfile do not go together: set the default user's "
			 "password in the ACL file (user default on >PASSWORD ...)");
		return NULL;
	}
	struct rmq_acl *acl = rmq_calloc(1, sizeof(*acl));
	pthread_mutex_init(&acl->lock, NULL);
	pthread_mutex_init(&acl->owners_lock, NULL);
	pthread_mutex_init(&acl->owners_io, NULL);
	atomic_init(&acl->pub.epoch, 1);
	acl->owners_fd = -1;
	if (aclfile) {
		struct rmq_acl_user **v;
		size_t n;
		if (load_file(aclfile, &v, &n, err, errlen) != 0) {
			rmq_acl_free(acl);
			return NULL;
		}
		acl->aclfile = rmq_memdup(aclfile, strlen(aclfile));
		install_users(acl, v, n);
	} else {
		struct rmq_acl_user **v = rmq_malloc(sizeof(*v));
		v[0] = default_user(requirepass);
		install_users(acl, v, 1);
	}
	return acl;
}

void rmq_acl_set_dir(struct rmq_acl *acl, const char *dir)
{
	if (!dir)
		return;
	size_t n = strlen(dir) + sizeof(OWNERS_FILE) + 2;
	acl->owners_path = rmq_malloc(n);
	snprintf(acl->owners_path, n, "%s/%s", dir, OWNERS_FILE);
	owners_load(acl);
	acl->owners_fd = open(acl->owners_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (acl->owners_fd < 0)
		rmq_diagf(RMQ_DIAG_ERROR,
			  "acl: cannot open %s: %s (subscriber owners kept in memory only)",
			  acl->owners_path, strerror(errno));
}

void rmq_acl_free(struct rmq_acl *acl)
{
	if (!acl)
		return;
	users_free(acl->users, acl->nusers);
	for (size_t i = 0; i < acl->owners_cap; i++) {
		free(acl->owners[i].sub);
		free(acl->owners[i].user);
	}
	free(acl->owners);
	rmq_buf_free(&acl->owners_pending);
	free(acl->aclfile);
	free(acl->owners_path);
	if (acl->owners_fd >= 0)
		close(acl->owners_fd);
	pthread_mutex_destroy(&acl->owners_io);
	pthread_mutex_destroy(&acl->owners_lock);
	pthread_mutex_destroy(&acl->lock);
	free(acl);
}

bool rmq_acl_default_open(struct rmq_acl *acl)
{
	return atomic_load_explicit(&acl->default_open, memory_order_relaxed);
}

bool rmq_acl_user_exists(struct rmq_acl *acl, const char *name, size_t n)
{
	pthread_mutex_lock(&acl->lock);
	bool found = user_find(acl, name, n) >= 0;
	pthread_mutex_unlock(&acl->lock);
	return found;
}

int rmq_acl_setuser(struct rmq_acl *acl, const char *name, size_t nlen, const char *const *rules,
		    const size_t *lens, size_t n, char *err, size_t errlen)
{
	if (!name_valid(name, nlen)) {
		snprintf(err, errlen,
			 "invalid user name: 1 to 127 printable characters, no spaces");
		return -1;
	}
	pthread_mutex_lock(&acl->lock);
	ssize_t i = user_find(acl, name, nlen);
	struct rmq_acl_user *u = i >= 0 ? user_copy(acl->users[i]) : user_new(name, nlen);
	for (size_t k = 0; k < n; k++)
		if (user_rule(u, rules[k], lens[k], err, errlen) != 0) {
			pthread_mutex_unlock(&acl->lock);
			user_unref(u);
			return -1;
		}
	if (i >= 0) {
		user_unref(acl->users[i]);
		acl->users[i] = u;
	} else {
		if (acl->nusers == acl->cap) {
			acl->cap = acl->cap ? 2 * acl->cap : 4;
			acl->users = rmq_realloc(acl->users, acl->cap * sizeof(*acl->users));
		}
		acl->users[acl->nusers++] = u;
	}
	bump(acl);
	pthread_mutex_unlock(&acl->lock);
	return 0;
}

bool rmq_acl_check_password(struct rmq_acl *acl, const char *user, size_t ulen, const char *pass,
			    size_t plen)
{
	uint8_t h[SHA_LEN];
	sha256(pass, plen, h);
	pthread_mutex_lock(&acl->lock);
	ssize_t i = user_find(acl, user, ulen);
	bool ok = false;
	if (i >= 0) {
		const struct rmq_acl_user *u = acl->users[i];
		/* every hash compared, each in constant time */
		int match = 0;
		for (size_t k = 0; k < u->nhash; k++)
			match |= CRYPTO_memcmp(h, u->hashes[k], SHA_LEN) == 0;
		ok = u->on && (u->nopass || match);
	}
	pthread_mutex_unlock(&acl->lock);
	return ok;
}

/* --- the ACL log --- */

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* CLIENT INFO's line for c (cmd.c), as Redis's ACL LOG has it: client
 * libraries parse its fields (redis-py's acl_log converts the numeric
 * ones). */
static void client_desc(struct conn *c, char *out, size_t n)
{
	struct rmq_buf b = { 0 };
	rmq__cmd_client_info(c, &b);
	size_t len = b.len && b.data[b.len - 1] == '\n' ? b.len - 1 : b.len;
	snprintf(out, n, "%.*s", (int)len, b.data ? b.data : "");
	rmq_buf_free(&b);
}

/* The i-th newest entry of the log. Under acl->lock. */
static struct acl_log_entry *log_at(struct rmq_acl *acl, size_t i)
{
	return &acl->log[(acl->log_head + RMQ_ACL_LOG_MAX - 1 - i) % RMQ_ACL_LOG_MAX];
}

/* Adds a denial to the log: like Redis, one entry per (reason, object,
 * user) seen again within a minute, with a count, moved to the front. */
static void log_add_client(struct rmq_acl *acl, const char *client, const char *reason,
			   const char *obj, size_t olen, const char *user, size_t ulen)
{
	char o[128], un[USER_NAME_MAX];
	snprintf(o, sizeof(o), "%.*s", (int)(olen > 127 ? 127 : olen), obj);
	snprintf(un, sizeof(un), "%.*s", (int)(ulen >= USER_NAME_MAX ? USER_NAME_MAX - 1 : ulen),
		 user);
	uint64_t now = wall_ms();
	pthread_mutex_lock(&acl->lock);
	for (size_t i = 0; i < acl->log_n; i++) {
		struct acl_log_entry *e = log_at(acl, i);
		if (now - e->updated_ms < 60000 && !strcmp(e->reason, reason) &&
		    !strcmp(e->object, o) && !strcmp(e->username, un)) {
			struct acl_log_entry moved = *e;
			for (size_t k = i; k > 0; k--) /* the newer ones one step older */
				*log_at(acl, k) = *log_at(acl, k - 1);
			moved.count++;
			moved.updated_ms = now;
			snprintf(moved.client, sizeof(moved.client), "%s", client);
			*log_at(acl, 0) = moved;
			pthread_mutex_unlock(&acl->lock);
			return;
		}
	}
	struct acl_log_entry *e = &acl->log[acl->log_head];
	acl->log_head = (acl->log_head + 1) % RMQ_ACL_LOG_MAX;
	if (acl->log_n < RMQ_ACL_LOG_MAX)
		acl->log_n++;
	e->count = 1;
	e->id = acl->log_next_id++;
	e->created_ms = e->updated_ms = now;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	snprintf(e->object, sizeof(e->object), "%s", o);
	snprintf(e->username, sizeof(e->username), "%s", un);
	snprintf(e->client, sizeof(e->client), "%s", client);
	pthread_mutex_unlock(&acl->lock);
}

/* log_add_client for a connection: its CLIENT INFO line. */
static void log_add(struct server *srv, struct conn *c, const char *reason, const char *obj,
		    size_t olen, const char *user, size_t ulen)
{
	char client[CLIENT_DESC_MAX];
	client_desc(c, client, sizeof(client));
	log_add_client(srv->acl, client, reason, obj, olen, user, ulen);
}

/* --- durable subscriber owners --- */

/* The slot of sub in the owners table: its entry, or the empty slot where
 * it would go. Linear probing over a table at most half full: O(1)
 * expected, whatever the number of subscribers. Under owners_lock. */
static struct owner *owner_slot(const struct rmq_acl *acl, uint64_t h, const char *sub, size_t n)
{
	size_t mask = acl->owners_cap - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		struct owner *o = &acl->owners[i];
		if (!o->sub || (o->hash == h && o->sublen == n && memcmp(o->sub, sub, n) == 0))
			return o;
	}
}

/* The entry of sub, or NULL. Under owners_lock. */
static const struct owner *owner_find(const struct rmq_acl *acl, uint64_t h, const char *sub,
				      size_t n)
{
	if (!acl->owners_cap)
		return NULL;
	const struct owner *o = owner_slot(acl, h, sub, n);
	return o->sub ? o : NULL;
}

/* Adds sub (not in the table) with its owner; the table doubles before it
 * would be more than half full. Under owners_lock. */
static const struct owner *owner_add(struct rmq_acl *acl, uint64_t h, const char *sub, size_t n,
				     const char *user, size_t ulen)
{
	if (2 * (acl->nowners + 1) > acl->owners_cap) {
		size_t old_cap = acl->owners_cap, cap = old_cap ? 2 * old_cap : 64;
		struct owner *old = acl->owners;
		acl->owners = rmq_calloc(cap, sizeof(*acl->owners));
		acl->owners_cap = cap;
		for (size_t i = 0; i < old_cap; i++)
			if (old[i].sub)
				*owner_slot(acl, old[i].hash, old[i].sub, old[i].sublen) = old[i];
		free(old);
	}
	struct owner *o = owner_slot(acl, h, sub, n);
	o->hash = h;
	o->sub = rmq_memdup(sub, n);
	o->sublen = n;
	o->user = rmq_memdup(user, ulen);
	acl->nowners++;
	return o;
}

/* The owners file: one "subscriber-name user-name" line each (neither has
 * spaces), appended when a subscriber gets its owner (owners never change,
 * so the first line for a name is the one that counts). The worker only
 * queues the line (owners_pending); rmq__acl_owners_flush writes it. */
static void owners_queue(struct rmq_acl *acl, const char *sub, size_t n, const char *user)
{
	if (acl->owners_fd < 0)
		return;
	size_t ulen = strlen(user);
	char *w = rmq_buf_reserve(&acl->owners_pending, n + ulen + 2);
	memcpy(w, sub, n);
	w[n] = ' ';
	memcpy(w + n + 1, user, ulen);
	w[n + 1 + ulen] = '\n';
	acl->owners_pending.len += n + ulen + 2;
}

void rmq__acl_owners_flush(struct server *srv, bool sync)
{
	struct rmq_acl *acl = srv->acl;
	/* owners_io held across the write: when this returns, every line
	 * queued before it was called is in the file, whoever wrote it */
	pthread_mutex_lock(&acl->owners_io);
	pthread_mutex_lock(&acl->owners_lock);
	struct rmq_buf b = acl->owners_pending;
	memset(&acl->owners_pending, 0, sizeof(acl->owners_pending));
	pthread_mutex_unlock(&acl->owners_lock);
	int err = 0;
	for (size_t off = b.off; off < b.len && !err;) {
		ssize_t r = write(acl->owners_fd, b.data + off, b.len - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			err = r < 0 ? errno : EIO;
		else
			off += (size_t)r;
	}
	if (!err && sync && b.len > b.off && fdatasync(acl->owners_fd) != 0)
		err = errno;
	pthread_mutex_unlock(&acl->owners_io);
	if (err)
		rmq_diagf(
			RMQ_DIAG_ERROR,
			"acl: cannot record the owners of %zu bytes of new durable subscribers in "
			"%s: %s (after a restart they belong to default)",
			b.len - b.off, acl->owners_path, strerror(err));
	rmq_buf_free(&b);
}

static void owners_load(struct rmq_acl *acl)
{
	FILE *f = fopen(acl->owners_path, "r");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	pthread_mutex_lock(&acl->owners_lock);
	while (getline(&line, &cap, f) >= 0) {
		char *w[2];
		size_t lens[2];
		if (split_words(line, w, lens, 2) == 2) {
			w[1][strcspn(w[1], "\n")] = '\0';
			lens[1] = strlen(w[1]);
			uint64_t h = rmq_hash(w[0], lens[0]);
			if (!owner_find(acl, h, w[0], lens[0]))
				owner_add(acl, h, w[0], lens[0], w[1], lens[1]);
		}
	}
	pthread_mutex_unlock(&acl->owners_lock);
	free(line);
	fclose(f);
}

/* Whether sub's recorded owner is user (true too when it has none). */
static bool owner_is(struct rmq_acl *acl, const char *sub, size_t n, const char *user)
{
	uint64_t h = rmq_hash(sub, n);
	pthread_mutex_lock(&acl->owners_lock);
	const struct owner *o = owner_find(acl, h, sub, n);
	bool mine = !o || strcmp(o->user, user) == 0;
	pthread_mutex_unlock(&acl->owners_lock);
	return mine;
}

static void no_subs(void *ctx, const char *name, size_t len,
		    struct rmq_dsub_subscription *const *subs, int n)
{
	(void)ctx, (void)name, (void)len, (void)subs, (void)n;
}

bool rmq__acl_claim_subscriber(struct conn *c, const char *sub, size_t n)
{
	struct server *srv = c->worker->srv;
	struct rmq_acl *acl = srv->acl;
	const char *me = c->acl.user ? c->acl.user->name : "default";
	uint64_t h = rmq_hash(sub, n);
	char owner[USER_NAME_MAX];
	pthread_mutex_lock(&acl->owners_lock);
	const struct owner *o = owner_find(acl, h, sub, n);
	if (!o) {
		/* A subscriber made before ringmq had owners (or restored from
		 * a data directory without an owners file) belongs to default.
		 * Asked without owners_lock (the registry has its own locks);
		 * the name is looked up again after. */
		pthread_mutex_unlock(&acl->owners_lock);
		bool exists = rmq_dsub_registry_snapshot(srv->dsubs, sub, n, no_subs, NULL) == 0;
		const char *who = exists ? "default" : me;
		pthread_mutex_lock(&acl->owners_lock);
		o = owner_find(acl, h, sub, n);
		if (!o) {
			o = owner_add(acl, h, sub, n, who, strlen(who));
			owners_queue(acl, sub, n, who);
		}
	}
	bool ok = strcmp(o->user, me) == 0;
	if (!ok)
		snprintf(owner, sizeof(owner), "%s", o->user);
	pthread_mutex_unlock(&acl->owners_lock);
	if (ok)
		return true;
	atomic_fetch_add_explicit(&acl->denied_channel, 1, memory_order_relaxed);
	log_add(srv, c, "subscriber", sub, n, me, strlen(me));
	rmq_resp_errorf(&c->out,
			"NOPERM User %s has no permissions to use durable subscriber '%.*s': it "
			"belongs to user %s",
			me, (int)(n > 255 ? 255 : n), sub, owner);
	return false;
}

bool rmq__acl_may_drop_subscriber(struct conn *c, const char *sub, size_t n)
{
	struct rmq_acl *acl = c->worker->srv->acl;
	if (c->acl.epoch != rmq_acl_epoch(acl))
		rmq__acl_refresh(c);
	const char *me = c->acl.user ? c->acl.user->name : "default";
	bool admin = c->acl.user != NULL;
	for (size_t i = 0; admin && i < rmq__cmd_count(); i++)
		if (rmq__cmd_cats(i) & RMQ_CAT_ADMIN)
			admin = (c->acl.cmds >> i & 1) != 0;
	if (admin)
		return true;
	/* a subscriber without a recorded owner is default's (as
	 * rmq__acl_claim_subscriber would record it); no subscriber at all:
	 * allowed, the drop then says there is none */
	struct server *srv = c->worker->srv;
	uint64_t h = rmq_hash(sub, n);
	char owner[USER_NAME_MAX] = "";
	pthread_mutex_lock(&acl->owners_lock);
	const struct owner *o = owner_find(acl, h, sub, n);
	if (o)
		snprintf(owner, sizeof(owner), "%s", o->user);
	pthread_mutex_unlock(&acl->owners_lock);
	if (!o && rmq_dsub_registry_snapshot(srv->dsubs, sub, n, no_subs, NULL) != 0)
		return true;
	if (!o)
		snprintf(owner, sizeof(owner), "default");
	if (strcmp(owner, me) == 0)
		return true;
	atomic_fetch_add_explicit(&acl->denied_channel, 1, memory_order_relaxed);
	log_add(srv, c, "subscriber", sub, n, me, strlen(me));
	rmq_resp_errorf(&c->out,
			"NOPERM User %s has no permissions to drop durable subscriber '%.*s': it "
			"belongs to user %s (dropping another user's needs @admin)",
			me, (int)(n > 255 ? 255 : n), sub, owner);
	return false;
}

/* --- connections --- */

static bool arg_eq(const struct rmq_arg *a, const char *s)
{
	size_t n = strlen(s);
	return a->len == n && strncasecmp(a->p, s, n) == 0;
}

/* Re-fetches c's user after a change of the registry. A connection that
 * never authenticated becomes the default user's when that is open. */
void rmq__acl_refresh(struct conn *c)
{
	struct rmq_acl *acl = c->worker->srv->acl;
	pthread_mutex_lock(&acl->lock);
	uint64_t e = atomic_load_explicit(&acl->pub.epoch, memory_order_relaxed);
	struct rmq_acl_user *old = c->acl.user, *u = NULL;
	if (c->acl.authed) {
		ssize_t i = old ? user_find(acl, old->name, strlen(old->name)) : -1;
		if (i >= 0 && acl->users[i]->on)
			u = user_ref(acl->users[i]);
	} else {
		ssize_t i = user_find(acl, "default", 7);
		if (i >= 0 && acl->users[i]->on && acl->users[i]->nopass) {
			u = user_ref(acl->users[i]);
			c->acl.authed = true;
		}
	}
	pthread_mutex_unlock(&acl->lock);
	user_unref(old);
	c->acl.user = u;
	c->acl.epoch = e;
	c->acl.pub_ok = false;
	c->acl.all_topics = u && u->all_topics;
	c->acl.cmds = u ? u->cmds : 0;
}

void rmq__acl_reset(struct conn *c)
{
	user_unref(c->acl.user);
	c->acl.user = NULL;
	c->acl.authed = false;
	c->acl.epoch = 0; /* never the registry's: the next command refreshes */
	c->acl.pub_ok = false;
	c->acl.all_topics = false;
	c->acl.cmds = 0;
}

void rmq__acl_conn_fini(struct conn *c)
{
	user_unref(c->acl.user);
	c->acl.user = NULL;
}

bool rmq__acl_permit_slow(struct conn *c, size_t idx, const char *name, bool noauth,
			  const struct rmq_arg *argv, size_t argc)
{
	if (c->acl.epoch != rmq_acl_epoch(c->worker->srv->acl))
		rmq__acl_refresh(c);
	if (noauth)
		return true;
	if (!c->acl.user) {
		atomic_fetch_add_explicit(&c->worker->srv->acl->denied_noauth, 1,
					  memory_order_relaxed);
		if (c->acl.authed) { /* deleted or disabled meanwhile */
			rmq_resp_error(&c->out,
				       "NOAUTH the connection's user was deleted or disabled");
			c->close_after_write = true;
			return false;
		}
		rmq_resp_error(&c->out, "NOAUTH Authentication required.");
		return false;
	}
	if (c->acl.cmds >> idx & 1)
		return true;
	if (!strcmp(name, "ACL") && argc == 2 && arg_eq(&argv[1], "WHOAMI"))
		return true;
	struct server *srv = c->worker->srv;
	atomic_fetch_add_explicit(&srv->acl->denied_cmd, 1, memory_order_relaxed);
	char lower[32];
	snprintf(lower, sizeof(lower), "%s", name);
	for (char *p = lower; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	log_add(srv, c, "command", lower, strlen(lower), c->acl.user->name,
		strlen(c->acl.user->name));
	rmq_resp_errorf(&c->out, "NOPERM User %s has no permissions to run the '%s' command",
			c->acl.user->name, lower);
	return false;
}

bool rmq__acl_admin(struct conn *c, const char *what)
{
	if (c->acl.epoch != rmq_acl_epoch(c->worker->srv->acl))
		rmq__acl_refresh(c);
	bool ok = c->acl.user != NULL;
	for (size_t i = 0; ok && i < rmq__cmd_count(); i++)
		if (rmq__cmd_cats(i) & RMQ_CAT_ADMIN)
			ok = (c->acl.cmds >> i & 1) != 0;
	if (ok)
		return true;
	struct server *srv = c->worker->srv;
	atomic_fetch_add_explicit(&srv->acl->denied_cmd, 1, memory_order_relaxed);
	const char *user = c->acl.user ? c->acl.user->name : "default";
	log_add(srv, c, "command", what, strlen(what), user, strlen(user));
	rmq_resp_errorf(&c->out, "NOPERM User %s has no permissions to run the '%s' command", user,
			what);
	return false;
}

bool rmq__acl_topic_slow(struct conn *c, const char *t, size_t n, bool reply)
{
	if (c->acl.user && user_topic_ok(c->acl.user, t, n))
		return true;
	if (!reply)
		return false;
	struct server *srv = c->worker->srv;
	const char *un = c->acl.user ? c->acl.user->name : "";
	atomic_fetch_add_explicit(&srv->acl->denied_channel, 1, memory_order_relaxed);
	log_add(srv, c, "channel", t, n, un, strlen(un));
	rmq_resp_errorf(&c->out, "NOPERM User %s has no permissions to access the '%.*s' topic", un,
			(int)(n > RMQ_TOPIC_MAX_LEN ? RMQ_TOPIC_MAX_LEN : n), t);
	return false;
}

bool rmq__acl_authenticated(struct conn *c)
{
	if (c->acl.user)
		return true;
	atomic_fetch_add_explicit(&c->worker->srv->acl->denied_noauth, 1, memory_order_relaxed);
	/* Redis's text, word for word */
	rmq_resp_error(&c->out,
		       "NOAUTH HELLO must be called with the client already authenticated, "
		       "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
		       "authenticate the client and select the RESP protocol version at the same "
		       "time");
	return false;
}

const char *rmq__acl_user_name(const struct conn *c)
{
	return c->acl.user ? c->acl.user->name : "default";
}

/* Whether some pattern of u covers the whole of pattern p (rmq_glob_covers). */
static bool user_pattern_ok(const struct rmq_acl_user *u, const char *p, size_t n)
{
	if (u->all_topics)
		return true;
	for (size_t i = 0; i < u->ntopics; i++)
		if (rmq_glob_covers(u->topics[i], strlen(u->topics[i]), p, n))
			return true;
	return false;
}

bool rmq__acl_pattern(struct conn *c, const char *p, size_t n)
{
	if (c->acl.user && user_pattern_ok(c->acl.user, p, n))
		return true;
	struct server *srv = c->worker->srv;
	const char *un = c->acl.user ? c->acl.user->name : "";
	atomic_fetch_add_explicit(&srv->acl->denied_channel, 1, memory_order_relaxed);
	log_add(srv, c, "channel", p, n, un, strlen(un));
	rmq_resp_errorf(&c->out,
			"NOPERM User %s has no permissions to subscribe to the pattern '%.*s': "
			"its topic patterns do not cover every topic it matches",
			un, (int)(n > RMQ_TOPIC_MAX_LEN ? RMQ_TOPIC_MAX_LEN : n), p);
	return false;
}

bool rmq__acl_publish_slow(struct conn *c, const char *t, size_t n)
{
	if (c->acl.epoch != rmq_acl_epoch(c->worker->srv->acl))
		rmq__acl_refresh(c);
	if (!rmq__acl_topic(c, t, n))
		return false;
	c->acl.pub_ok = true;
	return true;
}

/* --- revocation: each worker checks its own connections --- */

struct sub_check {
	struct conn *c;
	bool denied;
};

static void check_dsub(struct rmq_dsub_subscription *s, void *ctx)
{
	struct sub_check *k = ctx;
	if (!k->denied && !rmq__acl_topic_slow(k->c, s->topic->name, s->topic->name_len, false))
		k->denied = true;
}

/* Whether c's user may still hold what c holds: its live subscriptions'
 * topics, its durable subscriber (owned by it, every topic allowed). */
static bool conn_still_allowed(struct conn *c)
{
	if (c->acl.authed && !c->acl.user)
		return false;
	if (!c->acl.user || c->acl.all_topics) {
		if (!c->dsub)
			return true;
	}
	for (int i = 0; i < c->n_live_subs; i++) {
		const struct rmq_topic *t = c->live_subs[i]->watch->topic;
		if (!rmq__acl_topic_slow(c, t->name, t->name_len, false))
			return false;
	}
	const struct psub *ps;
	cds_list_for_each_entry(ps, &c->psubs, conn_link)
	{
		if (!c->acl.user || !user_pattern_ok(c->acl.user, ps->pat, ps->plen))
			return false;
	}
	if (c->dsub) {
		const char *name = rmq_dsub_name(c->dsub);
		/* "" is no user's name: an owned subscriber is nobody's here */
		if (!owner_is(c->worker->srv->acl, name, strlen(name),
			      c->acl.user ? c->acl.user->name : ""))
			return false;
		struct sub_check k = { c, false };
		rmq_dsub_foreach(c->dsub, check_dsub, &k);
		if (k.denied)
			return false;
	}
	return true;
}

void rmq__acl_worker_check(struct worker *w)
{
	struct rmq_acl *acl = w->srv->acl;
	uint64_t e = rmq_acl_epoch(acl);
	if (RMQ_LIKELY(w->acl_epoch == e))
		return;
	w->acl_epoch = e;
	struct conn *c, *tmp;
	cds_list_for_each_entry_safe(c, tmp, &w->conns, link)
	{
		if (c->closing || !c->acl.authed)
			continue;
		rmq__acl_refresh(c);
		if (!conn_still_allowed(c)) {
			rmq_diagf(RMQ_DIAG_INFO,
				  "acl: client %llu closed: its user's permissions no longer cover "
				  "what it subscribed to",
				  (unsigned long long)c->id);
			rmq__conn_close(c);
		}
	}
}

/* After a change: every worker re-checks its connections. */
static void changed(struct server *srv)
{
	for (uint32_t i = 0; i < srv->nworkers; i++)
		rmq__worker_wake(&srv->workers[i]);
}

/* --- AUTH and HELLO AUTH --- */

int rmq__acl_auth(struct conn *c, const struct rmq_arg *user, const struct rmq_arg *pass)
{
	struct server *srv = c->worker->srv;
	struct rmq_acl *acl = srv->acl;
	const char *un = user ? user->p : "default";
	size_t ulen = user ? user->len : 7;
	if (!pass)
		return -1;
	if (rmq_acl_check_password(acl, un, ulen, pass->p, pass->len)) {
		pthread_mutex_lock(&acl->lock);
		ssize_t i = user_find(acl, un, ulen);
		struct rmq_acl_user *u = i >= 0 ? user_ref(acl->users[i]) : NULL;
		uint64_t e = atomic_load_explicit(&acl->pub.epoch, memory_order_relaxed);
		pthread_mutex_unlock(&acl->lock);
		if (u) { /* deleted between the two looks: a failure */
			user_unref(c->acl.user);
			c->acl.user = u;
			c->acl.authed = true;
			c->acl.epoch = e;
			c->acl.pub_ok = false;
			c->acl.all_topics = u->all_topics;
			c->acl.cmds = u->cmds;
			return 0;
		}
	}
	atomic_fetch_add_explicit(&acl->denied_auth, 1, memory_order_relaxed);
	log_add(srv, c, "auth", "AUTH", 4, un, ulen);
	rmq_diagf(RMQ_DIAG_WARN, "acl: client %llu failed to authenticate as '%.*s'",
		  (unsigned long long)c->id, (int)(ulen > 64 ? 64 : ulen), un);
	return -1;
}

static const char wrongpass[] = "WRONGPASS invalid username-password pair or user is disabled.";

void rmq__cmd_auth(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc != 2 && argc != 3)
		return rmq_resp_error(&c->out, "ERR wrong number of arguments for 'auth' command");
	struct rmq_acl *acl = c->worker->srv->acl;
	if (argc == 2 && rmq_acl_default_open(acl))
		return rmq_resp_error(
			&c->out,
			"ERR AUTH <password> called without any password configured for the default "
			"user. Are you sure your configuration is correct?");
	if (rmq__acl_auth(c, argc == 3 ? &argv[1] : NULL, &argv[argc - 1]) != 0)
		return rmq_resp_error(&c->out, wrongpass);
	rmq_resp_simple(&c->out, "OK");
}

/* --- ACL --- */

/* Writes the users' lines to the ACL file: a temporary file renamed over
 * it. Returns 0 or -1 with err set. */
static int save_file(struct rmq_acl *acl, char *err, size_t errlen)
{
	struct rmq_buf b = { 0 };
	pthread_mutex_lock(&acl->lock);
	for (size_t i = 0; i < acl->nusers; i++) {
		user_describe(acl->users[i], &b);
		rmq_buf_append(&b, "\n", 1);
	}
	pthread_mutex_unlock(&acl->lock);
	size_t n = strlen(acl->aclfile) + 5;
	char *tmp = rmq_malloc(n);
	snprintf(tmp, n, "%s.tmp", acl->aclfile);
	int rc = 0;
	FILE *f = fopen(tmp, "w");
	if (!f || fwrite(b.data, 1, b.len, f) != b.len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
		rc = -1;
	}
	if (f && fclose(f) != 0 && rc == 0) {
		snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && rename(tmp, acl->aclfile) != 0) {
		snprintf(err, errlen, "cannot rename '%s': %s", tmp, strerror(errno));
		rc = -1;
	}
	if (rc)
		unlink(tmp);
	free(tmp);
	rmq_buf_free(&b);
	return rc;
}

int rmq__acl_reload(struct server *srv, char *err, size_t errlen)
{
	struct rmq_acl *acl = srv->acl;
	if (!acl->aclfile) {
		snprintf(err, errlen, "ringmq is not configured to use an ACL file (--aclfile)");
		return -1;
	}
	struct rmq_acl_user **v;
	size_t n;
	if (load_file(acl->aclfile, &v, &n, err, errlen) != 0)
		return -1;
	pthread_mutex_lock(&acl->lock);
	install_users(acl, v, n);
	pthread_mutex_unlock(&acl->lock);
	changed(srv);
	return 0;
}

static void reply_log(struct conn *c, struct rmq_acl *acl, size_t max)
{
	pthread_mutex_lock(&acl->lock);
	size_t n = acl->log_n < max ? acl->log_n : max;
	uint64_t now = wall_ms();
	rmq_resp_array(&c->out, n);
	for (size_t i = 0; i < n; i++) {
		const struct acl_log_entry *e = log_at(acl, i);
		char age[32];
		snprintf(age, sizeof(age), "%.3f", (double)(now - e->created_ms) / 1000.0);
		rmq_resp_array(&c->out, 20);
		rmq_resp_bulkstr(&c->out, "count");
		rmq_resp_int(&c->out, (int64_t)e->count);
		rmq_resp_bulkstr(&c->out, "reason");
		rmq_resp_bulkstr(&c->out, e->reason);
		rmq_resp_bulkstr(&c->out, "context");
		rmq_resp_bulkstr(&c->out, "toplevel");
		rmq_resp_bulkstr(&c->out, "object");
		rmq_resp_bulkstr(&c->out, e->object);
		rmq_resp_bulkstr(&c->out, "username");
		rmq_resp_bulkstr(&c->out, e->username);
		rmq_resp_bulkstr(&c->out, "age-seconds");
		rmq_resp_bulkstr(&c->out, age);
		rmq_resp_bulkstr(&c->out, "client-info");
		rmq_resp_bulkstr(&c->out, e->client);
		rmq_resp_bulkstr(&c->out, "entry-id");
		rmq_resp_int(&c->out, (int64_t)e->id);
		rmq_resp_bulkstr(&c->out, "timestamp-created");
		rmq_resp_int(&c->out, (int64_t)e->created_ms);
		rmq_resp_bulkstr(&c->out, "timestamp-last-updated");
		rmq_resp_int(&c->out, (int64_t)e->updated_ms);
	}
	pthread_mutex_unlock(&acl->lock);
}

/* v[0..n) each after prefix, joined by spaces; ifempty when n == 0.
 * The caller frees the result. */
static char *join(char *const *v, size_t n, const char *prefix, const char *ifempty)
{
	size_t total = strlen(ifempty) + 1;
	for (size_t i = 0; i < n; i++)
		total += strlen(prefix) + strlen(v[i]) + 1;
	char *s = rmq_malloc(total);
	size_t k = 0;
	if (n == 0) {
		memcpy(s, ifempty, strlen(ifempty));
		k = strlen(ifempty);
	}
	for (size_t i = 0; i < n; i++) {
		if (i)
			s[k++] = ' ';
		memcpy(s + k, prefix, strlen(prefix));
		k += strlen(prefix);
		memcpy(s + k, v[i], strlen(v[i]));
		k += strlen(v[i]);
	}
	s[k] = '\0';
	return s;
}

static void reply_getuser(struct conn *c, const struct rmq_acl_user *u)
{
	char h[2 * SHA_LEN + 1];
	rmq_resp_array(&c->out, 12);
	rmq_resp_bulkstr(&c->out, "flags");
	rmq_resp_array(&c->out, 1 + u->nopass + u->all_topics);
	rmq_resp_bulkstr(&c->out, u->on ? "on" : "off");
	if (u->nopass)
		rmq_resp_bulkstr(&c->out, "nopass");
	if (u->all_topics)
		rmq_resp_bulkstr(&c->out, "allchannels");
	rmq_resp_bulkstr(&c->out, "passwords");
	rmq_resp_array(&c->out, u->nhash);
	for (size_t i = 0; i < u->nhash; i++) {
		hex(u->hashes[i], h);
		rmq_resp_bulkstr(&c->out, h);
	}
	char *cmds = join(u->crules, u->ncrules, "", "-@all");
	char *topics = join(u->topics, u->ntopics, "&", u->all_topics ? "&*" : "");
	rmq_resp_bulkstr(&c->out, "commands");
	rmq_resp_bulkstr(&c->out, cmds);
	rmq_resp_bulkstr(&c->out, "keys");
	rmq_resp_bulkstr(&c->out, "");
	rmq_resp_bulkstr(&c->out, "channels");
	rmq_resp_bulkstr(&c->out, topics);
	rmq_resp_bulkstr(&c->out, "selectors");
	rmq_resp_array(&c->out, 0);
	free(cmds);
	free(topics);
}

static void acl_cat(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc == 2) {
		rmq_resp_array(&c->out, NCATS - 1);
		for (size_t i = 0; i + 1 < NCATS; i++)
			rmq_resp_bulkstr(&c->out, cats[i].name);
		return;
	}
	int k = cat_find(argv[2].p, argv[2].len);
	if (k < 0)
		return rmq_resp_errorf(&c->out, "ERR Unknown category '%.*s'",
				       (int)(argv[2].len > 64 ? 64 : argv[2].len), argv[2].p);
	size_t n = 0;
	for (size_t i = 0; i < rmq__cmd_count(); i++)
		n += (rmq__cmd_cats(i) & cats[k].bit) != 0;
	rmq_resp_array(&c->out, n);
	for (size_t i = 0; i < rmq__cmd_count(); i++)
		if (rmq__cmd_cats(i) & cats[k].bit) {
			char lower[32];
			snprintf(lower, sizeof(lower), "%s", rmq__cmd_name(i));
			for (char *p = lower; *p; p++)
				*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
			rmq_resp_bulkstr(&c->out, lower);
		}
}

#define SETUSER_RULES_MAX 1024

void rmq__cmd_acl(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	struct rmq_acl *acl = srv->acl;
	char err[256];
	if (argc < 2)
		return rmq_resp_error(&c->out, "ERR wrong number of arguments for 'acl' command");
	const struct rmq_arg *sub = &argv[1];
	if (arg_eq(sub, "WHOAMI") && argc == 2) {
		if (!c->acl.user)
			return rmq_resp_null(&c->out);
		return rmq_resp_bulkstr(&c->out, c->acl.user->name);
	}
	if (arg_eq(sub, "SETUSER") && argc >= 3) {
		size_t n = argc - 3;
		if (n > SETUSER_RULES_MAX)
			return rmq_resp_error(&c->out, "ERR too many rules in one ACL SETUSER");
		const char **rules = rmq_malloc((n + 1) * sizeof(char *));
		size_t *lens = rmq_malloc((n + 1) * sizeof(size_t));
		for (size_t i = 0; i < n; i++) {
			rules[i] = argv[3 + i].p;
			lens[i] = argv[3 + i].len;
		}
		int rc = rmq_acl_setuser(acl, argv[2].p, argv[2].len, rules, lens, n, err,
					 sizeof(err));
		free(rules);
		free(lens);
		if (rc != 0)
			return rmq_resp_errorf(&c->out, "ERR Error in ACL SETUSER modifier: %s",
					       err);
		changed(srv);
		return rmq_resp_simple(&c->out, "OK");
	}
	if (arg_eq(sub, "DELUSER") && argc >= 3) {
		for (size_t i = 2; i < argc; i++)
			if (arg_eq(&argv[i], "default"))
				return rmq_resp_error(&c->out,
						      "ERR The 'default' user cannot be removed");
		int64_t removed = 0;
		pthread_mutex_lock(&acl->lock);
		for (size_t i = 2; i < argc; i++) {
			ssize_t k = user_find(acl, argv[i].p, argv[i].len);
			if (k < 0)
				continue;
			user_unref(acl->users[k]);
			acl->users[k] = acl->users[--acl->nusers];
			removed++;
		}
		if (removed)
			bump(acl);
		pthread_mutex_unlock(&acl->lock);
		if (removed)
			changed(srv);
		return rmq_resp_int(&c->out, removed);
	}
	if ((arg_eq(sub, "LIST") || arg_eq(sub, "USERS")) && argc == 2) {
		bool list = arg_eq(sub, "LIST");
		struct rmq_buf b = { 0 };
		pthread_mutex_lock(&acl->lock);
		rmq_resp_array(&c->out, acl->nusers);
		for (size_t i = 0; i < acl->nusers; i++) {
			if (!list) {
				rmq_resp_bulkstr(&c->out, acl->users[i]->name);
				continue;
			}
			b.len = 0;
			user_describe(acl->users[i], &b);
			rmq_resp_bulk(&c->out, b.data, b.len);
		}
		pthread_mutex_unlock(&acl->lock);
		rmq_buf_free(&b);
		return;
	}
	if (arg_eq(sub, "GETUSER") && argc == 3) {
		pthread_mutex_lock(&acl->lock);
		ssize_t k = user_find(acl, argv[2].p, argv[2].len);
		if (k < 0)
			rmq_resp_null(&c->out);
		else
			reply_getuser(c, acl->users[k]);
		pthread_mutex_unlock(&acl->lock);
		return;
	}
	if (arg_eq(sub, "CAT") && argc <= 3)
		return acl_cat(c, argv, argc);
	if (arg_eq(sub, "LOG") && argc <= 3) {
		uint64_t max = 10;
		if (argc == 3 && arg_eq(&argv[2], "RESET")) {
			pthread_mutex_lock(&acl->lock);
			acl->log_n = 0;
			pthread_mutex_unlock(&acl->lock);
			return rmq_resp_simple(&c->out, "OK");
		}
		if (argc == 3 && rmq_parse_u64(argv[2].p, argv[2].len, 0, &max) != 0)
			return rmq_resp_error(&c->out,
					      "ERR value is out of range, must be positive");
		return reply_log(c, acl, (size_t)max);
	}
	if (arg_eq(sub, "SAVE") && argc == 2) {
		if (!acl->aclfile)
			return rmq_resp_error(
				&c->out,
				"ERR ringmq is not configured to use an ACL file: start it with --aclfile PATH");
		if (save_file(acl, err, sizeof(err)) != 0)
			return rmq_resp_errorf(
				&c->out, "ERR There was an error trying to save the ACLs: %s", err);
		return rmq_resp_simple(&c->out, "OK");
	}
	if (arg_eq(sub, "LOAD") && argc == 2) {
		if (rmq__acl_reload(srv, err, sizeof(err)) != 0)
			return rmq_resp_errorf(&c->out, "ERR %s", err);
		return rmq_resp_simple(&c->out, "OK");
	}
	rmq_resp_errorf(&c->out,
			"ERR unknown subcommand or wrong number of arguments for '%.*s'. Try ACL "
			"WHOAMI, SETUSER, DELUSER, LIST, USERS, GETUSER, CAT, LOG, SAVE or LOAD",
			(int)(sub->len > 32 ? 32 : sub->len), sub->p);
}

/* --- INFO --- */

void rmq__acl_info(struct server *srv, struct rmq_buf *b)
{
	struct rmq_acl *acl = srv->acl;
	char line[256];
	int n = snprintf(
		line, sizeof(line),
		"acl_access_denied_auth:%llu\r\nacl_access_denied_cmd:%llu\r\n"
		"acl_access_denied_key:0\r\nacl_access_denied_channel:%llu\r\n",
		(unsigned long long)atomic_load_explicit(&acl->denied_auth, memory_order_relaxed),
		(unsigned long long)atomic_load_explicit(&acl->denied_cmd, memory_order_relaxed),
		(unsigned long long)atomic_load_explicit(&acl->denied_channel,
							 memory_order_relaxed));
	rmq_buf_append(b, line, (size_t)n);
}

void rmq__acl_counts(struct server *srv, struct rmq_acl_counts *out)
{
	struct rmq_acl *acl = srv->acl;
	out->noauth = atomic_load_explicit(&acl->denied_noauth, memory_order_relaxed);
	out->noperm = atomic_load_explicit(&acl->denied_cmd, memory_order_relaxed) +
		      atomic_load_explicit(&acl->denied_channel, memory_order_relaxed);
	out->auth_failures = atomic_load_explicit(&acl->denied_auth, memory_order_relaxed);
}

/* --- CONFIG SET requirepass --- */

void rmq__acl_set_requirepass(struct server *srv, const char *pass)
{
	char err[128];
	const char *rules[2];
	size_t lens[2], n = 0;
	if (pass && pass[0]) {
		rules[n++] = "resetpass";
		rules[n++] = NULL; /* set below: ">" + pass */
	} else {
		rules[n++] = "nopass";
	}
	char *gt = NULL;
	if (n == 2) {
		size_t plen = strlen(pass);
		gt = rmq_malloc(plen + 2);
		gt[0] = '>';
		memcpy(gt + 1, pass, plen + 1);
		rules[1] = gt;
	}
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(rules[i]);
	/* these rules cannot fail on an existing user */
	if (rmq_acl_setuser(srv->acl, "default", 7, rules, lens, n, err, sizeof(err)) != 0)
		rmq_diagf(RMQ_DIAG_ERROR, "acl: cannot set the default user's password: %s", err);
	if (gt) {
		memset(gt, 0, strlen(gt)); /* no copy of the password left behind */
		free(gt);
	}
	changed(srv);
}

/* --- /metrics: HTTP Basic authentication --- */

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes base64 (RFC 4648, padded or not) into out; returns the length,
 * or -1 if malformed or longer than cap. */
static ssize_t b64_decode(const char *in, size_t n, char *out, size_t cap)
{
	while (n && in[n - 1] == '=')
		n--;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -1;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	return (ssize_t)o;
}

#define HTTP_CRED_MAX 1024

int rmq__acl_http_check(struct server *srv, bool loopback, const char *authorization,
			const char *peer)
{
	struct rmq_acl *acl = srv->acl;
	if (loopback || rmq_acl_default_open(acl))
		return 0;
	if (!authorization)
		return 401; /* a client's usual first ask: not a failure */
	char cred[HTTP_CRED_MAX];
	ssize_t n = -1;
	if (!strncasecmp(authorization, "Basic ", 6)) {
		const char *b = authorization + 6;
		while (*b == ' ')
			b++;
		n = b64_decode(b, strcspn(b, " \t\r\n"), cred, sizeof(cred));
	}
	const char *colon = n > 0 ? memchr(cred, ':', (size_t)n) : NULL;
	char un[USER_NAME_MAX] = "default";
	size_t ulen = colon ? (size_t)(colon - cred) : 0;
	if (ulen) /* ":password" is the default user's, as AUTH password */
		snprintf(un, sizeof(un), "%.*s",
			 (int)(ulen >= USER_NAME_MAX ? USER_NAME_MAX - 1 : ulen), cred);
	bool pass_ok = colon && ulen < USER_NAME_MAX &&
		       rmq_acl_check_password(acl, un, strlen(un), colon + 1, (size_t)n - ulen - 1);
	memset(cred, 0, sizeof(cred));
	char client[CLIENT_DESC_MAX];
	snprintf(client, sizeof(client), "http addr=%s path=/metrics", peer);
	if (!pass_ok) {
		atomic_fetch_add_explicit(&acl->denied_auth, 1, memory_order_relaxed);
		log_add_client(acl, client, "auth", "AUTH", 4, un, strlen(un));
		rmq_diagf(RMQ_DIAG_WARN, "acl: HTTP client %s failed to authenticate as '%.64s'",
			  peer, un);
		return 401;
	}
	/* the figures INFO shows: the user must be allowed to run INFO */
	bool ok = false;
	int k = cmd_index("INFO", 4);
	pthread_mutex_lock(&acl->lock);
	ssize_t i = user_find(acl, un, strlen(un));
	if (i >= 0 && k >= 0)
		ok = acl->users[i]->cmds >> k & 1;
	pthread_mutex_unlock(&acl->lock);
	if (ok)
		return 0;
	atomic_fetch_add_explicit(&acl->denied_cmd, 1, memory_order_relaxed);
	log_add_client(acl, client, "command", "info", 4, un, strlen(un));
	return 403;
}

/* The console (console.c): who sends this request. With an Authorization
 * header the credentials are checked (from any peer); without, a peer on
 * this host is the default user when that one is open, else anonymous
 * (user ""), and another peer must authenticate (401) unless the default
 * user is open. Every user must be allowed INFO (403 otherwise). user gets
 * the name, pass the password (for the console's own RESP connection;
 * the caller wipes it). Returns 0, 401 or 403. */
int rmq__acl_http_user(struct server *srv, bool loopback, const char *authorization,
		       const char *peer, char *user, size_t ulen, char *pass, size_t plen)
{
	struct rmq_acl *acl = srv->acl;
	user[0] = pass[0] = '\0';
	if (!authorization) {
		bool open = rmq_acl_default_open(acl);
		if (!loopback && !open)
			return 401;
		if (open)
			snprintf(user, ulen, "default");
		return 0;
	}
	char cred[HTTP_CRED_MAX];
	ssize_t n = -1;
	if (!strncasecmp(authorization, "Basic ", 6)) {
		const char *b = authorization + 6;
		while (*b == ' ')
			b++;
		n = b64_decode(b, strcspn(b, " \t\r\n"), cred, sizeof(cred) - 1);
	}
	const char *colon = n > 0 ? memchr(cred, ':', (size_t)n) : NULL;
	char un[USER_NAME_MAX] = "default";
	size_t ul = colon ? (size_t)(colon - cred) : 0;
	if (ul)
		snprintf(un, sizeof(un), "%.*s",
			 (int)(ul >= USER_NAME_MAX ? USER_NAME_MAX - 1 : ul), cred);
	size_t pl = colon ? (size_t)n - ul - 1 : 0;
	bool ok = colon && ul < USER_NAME_MAX && pl < plen &&
		  rmq_acl_check_password(acl, un, strlen(un), colon + 1, pl);
	if (ok) {
		memcpy(pass, colon + 1, pl);
		pass[pl] = '\0';
	}
	memset(cred, 0, sizeof(cred));
	char client[CLIENT_DESC_MAX];
	snprintf(client, sizeof(client), "http addr=%s path=console", peer);
	if (!ok) {
		atomic_fetch_add_explicit(&acl->denied_auth, 1, memory_order_relaxed);
		log_add_client(acl, client, "auth", "AUTH", 4, un, strlen(un));
		rmq_diagf(RMQ_DIAG_WARN, "acl: HTTP client %s failed to authenticate as '%.64s'",
			  peer, un);
		return 401;
	}
	snprintf(user, ulen, "%s", un);
	if (rmq__acl_user_may(srv, un, "INFO", NULL, 0))
		return 0;
	memset(pass, 0, plen);
	atomic_fetch_add_explicit(&acl->denied_cmd, 1, memory_order_relaxed);
	log_add_client(acl, client, "command", "info", 4, un, strlen(un));
	return 403;
}

bool rmq__acl_user_may(struct server *srv, const char *user, const char *cmd, const char *topic,
		       size_t tlen)
{
	struct rmq_acl *acl = srv->acl;
	int k = cmd_index(cmd, strlen(cmd));
	bool ok = false;
	pthread_mutex_lock(&acl->lock);
	ssize_t i = user[0] ? user_find(acl, user, strlen(user)) : -1;
	if (i >= 0 && k >= 0 && acl->users[i]->on) {
		ok = acl->users[i]->cmds >> k & 1;
		if (ok && topic)
			ok = user_topic_ok(acl->users[i], topic, tlen);
	}
	pthread_mutex_unlock(&acl->lock);
	return ok;
}

/* --- protected mode --- */

const char rmq_acl_denied_msg[] =
	"-DENIED ringmq is running in protected mode: it listens on a non-loopback address "
	"and no authentication is configured, so only clients on this host may connect. "
	"To serve other hosts: 1) set a password for the default user with --requirepass "
	"PASSWORD, or ACL SETUSER default on >PASSWORD from a client on this host; 2) or "
	"define users in an ACL file and start the server with --aclfile PATH; 3) or, if "
	"anyone who can reach this port may use it, start the server with --protected-mode "
	"no. Then connect again.\r\n";

static bool addr_loopback(const struct sockaddr *a, socklen_t len)
{
	if (a->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		uint32_t ip = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
		return (ip >> 24) == 127;
	}
	if (a->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct in6_addr *ip = &((const struct sockaddr_in6 *)a)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(ip))
			return true;
		return IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127;
	}
	return a->sa_family == AF_UNIX;
}

static bool bind_loopback(const char *bind)
{
	if (!bind)
		return false;
	if (!strcmp(bind, "localhost") || !strcmp(bind, "::1"))
		return true;
	struct in_addr a;
	return inet_pton(AF_INET, bind, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

bool rmq_acl_protected_refuses(bool protected_mode, const char *bind, bool aclfile,
			       bool default_open, const struct sockaddr *peer, socklen_t peerlen)
{
	if (!protected_mode || aclfile || !default_open || bind_loopback(bind))
		return false;
	return !addr_loopback(peer, peerlen);
}

bool rmq_acl_glob(const char *pattern, size_t plen, const char *name, size_t nlen)
{
	return rmq_glob_match(pattern, plen, name, nlen);
}

bool rmq__acl_http_protected(struct server *srv, bool loopback)
{
	if (loopback || !atomic_load(&srv->protected_mode) || rmq__acl_has_file(srv) ||
	    !rmq_acl_default_open(srv->acl))
		return false;
	return !bind_loopback(srv->cfg.metrics_bind);
}

const char rmq_acl_http_denied_msg[] =
	"protected mode: this server has no authentication configured, so its HTTP port "
	"serves clients on this host only. To serve other hosts: set a password for the "
	"default user (--requirepass), or define users (--aclfile), then use HTTP Basic "
	"credentials; or start the server with --protected-mode no.";

bool rmq__acl_has_file(const struct server *srv)
{
	return srv->acl->aclfile != NULL;
}
