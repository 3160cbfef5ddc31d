/* store.c - see store.h. */
#define _GNU_SOURCE /* O_DIRECTORY, renameat, dirfd */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "util.h"

#define POS_MAGIC 0x534f5052u /* "RPOS" */
#define POS_FILE "positions.log"
#define META_FILE "topic.meta"
#define FILE_MAX (4u << 20) /* largest definition file read */

struct posrec {
	uint32_t magic;
	uint32_t crc; /* CRC-32C of bytes [8, 40), then of magic */
	uint64_t id, pos, acked, stamp;
};
_Static_assert(sizeof(struct posrec) == 40, "position record is 40 bytes");

struct rmq_store {
	char *dir;
	int dirfd, topicsfd, subsfd, lockfd, posfd;
	pthread_mutex_t mu;
	uint64_t next_id, stamp;
	struct posrec *q; /* queued checkpoints */
	size_t nq, capq;
	uint64_t pos_bytes; /* size of positions.log */
	struct rmq_store_stats st;
	bool lazy;       /* rmq_store_set_lazy: small files not fsync'ed */
	bool meta_dirty; /* written lazily since the last rmq_store_sync_meta */
};

/* --- helpers --- */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	/* va_start is right above: clang-analyzer 14 false positive */
	/* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		buf[i] = c;
	}
	struct stat sb;
	if (stat(path, &sb) != 0)
		return -errno;
	return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync(fd), or (lazy store) a note for rmq_store_sync_meta. st->mu held. */
static int meta_fsync(struct rmq_store *st, int fd)
{
	if (st->lazy) {
		st->meta_dirty = true;
		return 0;
	}
	return fsync(fd) == 0 ? 0 : -errno;
}

/* name.tmp, write, fsync, rename over name, fsync the directory (the
 * fsyncs deferred in a lazy store, except for a durable write). */
static int write_atomic(struct rmq_store *st, bool durable, int dirfd, const char *name,
			const char *buf, size_t len)
{
	bool sync = durable || !st->lazy;
	char tmp[RMQ_STORE_ENC_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = write_all(fd, buf, len);
	if (rc == 0 && sync && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dirfd, tmp, dirfd, name) != 0)
		rc = -errno;
	if (rc != 0) {
		(void)unlinkat(dirfd, tmp, 0);
		return rc;
	}
	if (!sync) {
		st->meta_dirty = true;
		return 0;
	}
	return fsync(dirfd) == 0 ? 0 : -errno;
}

/* Reads a whole small file; returns a malloc'd NUL-terminated buffer. */
static char *read_small(int dirfd, const char *name, size_t *len, int *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || sb.st_size > (off_t)FILE_MAX) {
		*err = sb.st_size > (off_t)FILE_MAX ? -EFBIG : -errno;
		close(fd);
		return NULL;
	}
	char *buf = rmq_malloc((size_t)sb.st_size + 1);
	ssize_t r = pread(fd, buf, (size_t)sb.st_size, 0);
	close(fd);
	if (r != sb.st_size) {
		free(buf);
		*err = r < 0 ? -errno : -EIO;
		return NULL;
	}
	buf[r] = '\0';
	*len = (size_t)r;
	return buf;
}

static void hex_encode(const char *p, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[(unsigned char)p[i] >> 4];
		out[2 * i + 1] = hx[(unsigned char)p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes a hex name of 1..255 bytes into out (NUL-terminated). */
static int hex_decode(const char *h, size_t hn, char *out, uint32_t *len)
{
	if (hn == 0 || hn % 2 || hn / 2 > RMQ_STORE_NAME_MAX)
		return -1;
	for (size_t i = 0; i < hn / 2; i++) {
		int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);
		if (a < 0 || b < 0)
			return -1;
		out[i] = (char)(a << 4 | b);
	}
	out[hn / 2] = '\0';
	*len = (uint32_t)(hn / 2);
	return 0;
}

uint64_t rmq_store_topic_id(const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 0x100000001b3ULL;
	}
	return h ? h : 1;
}

size_t rmq_store_encode_name(const char *name, size_t len, char out[RMQ_STORE_ENC_MAX])
{
	static const char hx[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < len && o + 3 < RMQ_STORE_ENC_MAX; i++) {
		unsigned char c = (unsigned char)name[i];
		bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '_' || c == '-' || (c == '.' && i > 0);
		if (safe) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hx[c >> 4];
			out[o++] = hx[c & 15];
		}
		if (o > 200)
			break;
	}
	if (o > 200) {
		/* Too long for a file name: a prefix, then the hash. */
		o = 180;
		while (o > 0 && (out[o - 1] == '%' || (o > 1 && out[o - 2] == '%')))
			o--;
		o += (size_t)snprintf(out + o, RMQ_STORE_ENC_MAX - o, "~%016" PRIx64,
				      rmq_store_topic_id(name, len));
	}
	out[o] = '\0';
	return o;
}

/* A definition file's text ends with "crc XXXXXXXX\n" over what precedes
 * it. Returns the length of the body, or -1 if missing or wrong. */
static long check_crc(const char *buf, size_t len)
{
	if (len < 13 || buf[len - 1] != '\n')
		return -1;
	size_t start = len - 13;
	if (memcmp(buf + start, "crc ", 4) != 0 || (start > 0 && buf[start - 1] != '\n'))
		return -1;
	uint32_t want = 0;
	for (int i = 0; i < 8; i++) {
		int v = hexval(buf[start + 4 + i]);
		if (v < 0)
			return -1;
		want = want << 4 | (uint32_t)v;
	}
	return rmq_crc32c(0, buf, start) == want ? (long)start : -1;
}

static size_t add_crc(char *buf, size_t len, size_t cap)
{
	return len + (size_t)snprintf(buf + len, cap - len, "crc %08x\n", rmq_crc32c(0, buf, len));
}

/* Next line of [*p, end): returns its start and length, advances *p. */
static const char *next_line(const char **p, const char *end, size_t *n)
{
	if (*p >= end)
		return NULL;
	const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
	if (!nl)
		nl = end;
	*n = (size_t)(nl - s);
	*p = nl < end ? nl + 1 : end;
	return s;
}

/* "key value" with a u64 value. */
static int line_u64(const char *l, size_t n, const char *key, uint64_t *v)
{
	size_t k = strlen(key);
	if (n <= k + 1 || memcmp(l, key, k) != 0 || l[k] != ' ')
		return -1;
	return rmq_parse_u64(l + k + 1, n - k - 1, 0, v);
}

static int line_str(const char *l, size_t n, const char *key, const char **v, size_t *vn)
{
	size_t k = strlen(key);
	if (n <= k + 1 || memcmp(l, key, k) != 0 || l[k] != ' ')
		return -1;
	*v = l + k + 1;
	*vn = n - k - 1;
	return 0;
}

/* Removes leftover temp files of dirfd (a crash between write and
 * rename). */
static void remove_tmp(int dfd)
{
	int d2 = dup(dfd);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	if (!d) {
		if (d2 >= 0)
			close(d2);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0)
			(void)unlinkat(dfd, de->d_name, 0);
	}
	closedir(d);
}

/* --- open / close --- */

int rmq_store_open(const char *dir, struct rmq_store **out, char *err, size_t errlen)
{
	*out = NULL;
	int rc = mkdir_p(dir);
	if (rc < 0) {
		seterr(err, errlen, "data directory %s: %s", dir, strerror(-rc));
		return rc;
	}
	struct rmq_store *st = rmq_calloc(1, sizeof(*st));
	st->dirfd = st->topicsfd = st->subsfd = st->lockfd = st->posfd = -1;
	st->dir = rmq_memdup(dir, strlen(dir));
	pthread_mutex_init(&st->mu, NULL);
	const char *what = dir;
	st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0)
		goto fail;
	what = "LOCK";
	st->lockfd = openat(st->dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (st->lockfd < 0)
		goto fail;
	if (flock(st->lockfd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK) {
			seterr(err, errlen,
			       "data directory %s is in use by another ringmq-server (%s/LOCK is "
			       "locked)",
			       dir, dir);
			rmq_store_close(st);
			return -EBUSY;
		}
		goto fail;
	}
	char pid[32];
	int pl = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(st->lockfd, 0) != 0 || pwrite(st->lockfd, pid, (size_t)pl, 0) != pl)
		goto fail;
	what = "topics";
	if (mkdirat(st->dirfd, "topics", 0755) != 0 && errno != EEXIST)
		goto fail;
	st->topicsfd = openat(st->dirfd, "topics", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->topicsfd < 0)
		goto fail;
	what = "subs";
	if (mkdirat(st->dirfd, "subs", 0755) != 0 && errno != EEXIST)
		goto fail;
	st->subsfd = openat(st->dirfd, "subs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->subsfd < 0)
		goto fail;
	what = POS_FILE;
	st->posfd = openat(st->dirfd, POS_FILE, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (st->posfd < 0)
		goto fail;
	struct stat sb;
	if (fstat(st->posfd, &sb) != 0)
		goto fail;
	st->pos_bytes = (uint64_t)sb.st_size;
	st->next_id = 1;
	st->stamp = 1;
	(void)fsync(st->dirfd);
	*out = st;
	return 0;
fail:
	rc = -errno;
	seterr(err, errlen, "data directory %s: %s%s%s", dir, what == dir ? "" : what,
	       what == dir ? "" : ": ", strerror(errno));
	rmq_store_close(st);
	return rc;
}

void rmq_store_close(struct rmq_store *st)
{
	if (!st)
		return;
	int fds[] = { st->posfd, st->subsfd, st->topicsfd, st->lockfd, st->dirfd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]); /* closing lockfd releases the flock */
	pthread_mutex_destroy(&st->mu);
	free(st->q);
	free(st->dir);
	free(st);
}

const char *rmq_store_dir(const struct rmq_store *st)
{
	return st->dir;
}

/* --- topics --- */

int rmq_store_topic_save(struct rmq_store *st, const struct rmq_topic_def *d, char *logdir)
{
	if (d->name_len == 0 || d->name_len > RMQ_STORE_NAME_MAX)
		return -EINVAL;
	char enc[RMQ_STORE_ENC_MAX];
	rmq_store_encode_name(d->name, d->name_len, enc);
	char buf[1024], hex[2 * RMQ_STORE_NAME_MAX + 1];
	hex_encode(d->name, d->name_len, hex);
	size_t n = (size_t)snprintf(
		buf, sizeof(buf),
		"ringmq-topic 1\nname %s\ncapacity %" PRIu64 "\nonfull %s\n"
		"storage %s\nmaxage_ms %" PRIu64 "\n",
		hex, d->capacity, d->onfull == RMQ_ONFULL_REJECT ? "reject" : "drop",
		d->storage == RMQ_STORAGE_DISK ? "disk" : "memory", d->maxage_ms);
	n = add_crc(buf, n, sizeof(buf));
	pthread_mutex_lock(&st->mu);
	int rc = 0;
	if (mkdirat(st->topicsfd, enc, 0755) != 0 && errno != EEXIST)
		rc = -errno;
	int tfd = rc == 0 ? openat(st->topicsfd, enc, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (rc == 0 && tfd < 0)
		rc = -errno;
	if (rc == 0)
		rc = write_atomic(st, false, tfd, META_FILE, buf, n);
	if (rc == 0) /* the new directory's name */
		rc = meta_fsync(st, st->topicsfd);
	if (tfd >= 0)
		close(tfd);
	if (rc == 0)
		st->st.files_written++;
	pthread_mutex_unlock(&st->mu);
	if (logdir)
		snprintf(logdir, PATH_MAX, "%s/topics/%s", st->dir, enc);
	return rc;
}

int rmq_store_topic_remove(struct rmq_store *st, const char *name, size_t len)
{
	char enc[RMQ_STORE_ENC_MAX];
	rmq_store_encode_name(name, len, enc);
	pthread_mutex_lock(&st->mu);
	int rc = 0;
	int tfd = openat(st->topicsfd, enc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0) {
		rc = -errno;
		goto out;
	}
	if (unlinkat(tfd, META_FILE, 0) != 0 && errno != ENOENT) {
		rc = -errno;
		close(tfd);
		goto out;
	}
	(void)meta_fsync(st, tfd);
	int d2 = dup(tfd);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				(void)unlinkat(tfd, de->d_name, 0);
		closedir(d);
	} else if (d2 >= 0) {
		close(d2);
	}
	close(tfd);
	if (unlinkat(st->topicsfd, enc, AT_REMOVEDIR) != 0)
		rc = -errno;
	(void)meta_fsync(st, st->topicsfd);
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* Parses a topic.meta body. */
static const char *parse_topic(const char *buf, size_t len, struct rmq_topic_def *d)
{
	const char *p = buf, *end = buf + len, *l, *v;
	size_t n, vn;
	memset(d, 0, sizeof(*d));
	if (!(l = next_line(&p, end, &n)) || n != 14 || memcmp(l, "ringmq-topic 1", 14) != 0)
		return "not a version 1 topic definition";
	if (!(l = next_line(&p, end, &n)) || line_str(l, n, "name", &v, &vn) ||
	    hex_decode(v, vn, d->name, &d->name_len))
		return "bad name line";
	if (!(l = next_line(&p, end, &n)) || line_u64(l, n, "capacity", &d->capacity) ||
	    d->capacity == 0)
		return "bad capacity line";
	if (!(l = next_line(&p, end, &n)) || line_str(l, n, "onfull", &v, &vn))
		return "bad onfull line";
	if (vn == 6 && !memcmp(v, "reject", 6))
		d->onfull = RMQ_ONFULL_REJECT;
	else if (vn == 4 && !memcmp(v, "drop", 4))
		d->onfull = RMQ_ONFULL_DROP_OLDEST;
	else
		return "bad onfull value";
	if (!(l = next_line(&p, end, &n)) || line_str(l, n, "storage", &v, &vn))
		return "bad storage line";
	if (vn == 4 && !memcmp(v, "disk", 4))
		d->storage = RMQ_STORAGE_DISK;
	else if (vn == 6 && !memcmp(v, "memory", 6))
		d->storage = RMQ_STORAGE_MEMORY;
	else
		return "bad storage value";
	if (!(l = next_line(&p, end, &n)) || line_u64(l, n, "maxage_ms", &d->maxage_ms))
		return "bad maxage_ms line";
	return NULL;
}

int rmq_store_topic_load_all(struct rmq_store *st,
			     int (*fn)(const struct rmq_topic_def *d, const char *logdir,
				       void *ctx),
			     void (*bad)(const char *path, const char *why, void *ctx), void *ctx)
{
	int d2 = dup(st->topicsfd);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	if (!d) {
		int e = -errno;
		if (d2 >= 0)
			close(d2);
		return e;
	}
	/* readdir's order is the file system's; sort nothing, but rewind
	 * first (the descriptor is shared by dup). */
	rewinddir(d);
	int rc = 0;
	struct dirent *de;
	char path[PATH_MAX];
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/topics/%s", st->dir, de->d_name);
		int tfd = openat(st->topicsfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (tfd < 0) {
			if (bad)
				bad(path, strerror(errno), ctx);
			continue;
		}
		remove_tmp(tfd);
		size_t len;
		int e = 0;
		char *buf = read_small(tfd, META_FILE, &len, &e);
		close(tfd);
		if (!buf) {
			if (bad)
				bad(path, e == -ENOENT ? "no topic.meta" : strerror(-e), ctx);
			continue;
		}
		long body = check_crc(buf, len);
		struct rmq_topic_def def;
		const char *why = body < 0 ? "topic.meta checksum mismatch"
					   : parse_topic(buf, (size_t)body, &def);
		char enc[RMQ_STORE_ENC_MAX];
		if (!why) {
			rmq_store_encode_name(def.name, def.name_len, enc);
			if (strcmp(enc, de->d_name) != 0)
				why = "directory name does not match the topic name inside";
		}
		free(buf);
		if (why) {
			if (bad)
				bad(path, why, ctx);
			continue;
		}
		rc = fn(&def, path, ctx);
	}
	closedir(d);
	return rc;
}

/* --- subscribers --- */

uint64_t rmq_store_new_id(struct rmq_store *st)
{
	pthread_mutex_lock(&st->mu);
	uint64_t id = st->next_id++;
	pthread_mutex_unlock(&st->mu);
	return id;
}

int rmq_store_sub_save(struct rmq_store *st, const struct rmq_sub_def *d)
{
	if (d->name_len == 0 || d->name_len > RMQ_STORE_NAME_MAX || d->n > RMQ_SUB_TOPICS_MAX)
		return -EINVAL;
	size_t cap = 1024 + (size_t)d->n * (2 * RMQ_STORE_NAME_MAX + 96);
	char *buf = rmq_malloc(cap), hex[2 * RMQ_STORE_NAME_MAX + 1];
	char enc[RMQ_STORE_ENC_MAX], fname[RMQ_STORE_ENC_MAX + 8];
	rmq_store_encode_name(d->name, d->name_len, enc);
	snprintf(fname, sizeof(fname), "%s.sub", enc);
	pthread_mutex_lock(&st->mu);
	uint64_t stamp = st->stamp++;
	hex_encode(d->name, d->name_len, hex);
	size_t n =
		(size_t)snprintf(buf, cap, "ringmq-sub 1\nname %s\nflags %u\nstamp %" PRIu64 "\n",
				 hex, d->flags, stamp);
	int rc = 0;
	for (uint32_t i = 0; i < d->n && rc == 0; i++) {
		const struct rmq_sub_topic *t = &d->t[i];
		if (t->topic_len == 0 || t->topic_len > RMQ_STORE_NAME_MAX || t->id == 0) {
			rc = -EINVAL;
			break;
		}
		hex_encode(t->topic, t->topic_len, hex);
		n += (size_t)snprintf(buf + n, cap - n,
				      "topic %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n", t->id,
				      t->pos, t->acked, hex);
		if (t->id >= st->next_id)
			st->next_id = t->id + 1;
	}
	if (rc == 0) {
		n = add_crc(buf, n, cap);
		rc = write_atomic(st, false, st->subsfd, fname, buf, n);
		if (rc == 0)
			st->st.files_written++;
	}
	pthread_mutex_unlock(&st->mu);
	free(buf);
	return rc;
}

int rmq_store_sub_remove(struct rmq_store *st, const char *name, size_t len)
{
	char enc[RMQ_STORE_ENC_MAX], fname[RMQ_STORE_ENC_MAX + 8];
	rmq_store_encode_name(name, len, enc);
	snprintf(fname, sizeof(fname), "%s.sub", enc);
	pthread_mutex_lock(&st->mu);
	int rc = unlinkat(st->subsfd, fname, 0) == 0 ? 0 : -errno;
	if (rc == 0)
		rc = meta_fsync(st, st->subsfd);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* Parses a .sub body into d (d->t allocated) and its stamp. */
static const char *parse_sub(const char *buf, size_t len, struct rmq_sub_def *d, uint64_t *stamp)
{
	const char *p = buf, *end = buf + len, *l, *v;
	size_t n, vn;
	uint64_t flags;
	if (!(l = next_line(&p, end, &n)) || n != 12 || memcmp(l, "ringmq-sub 1", 12) != 0)
		return "not a version 1 subscriber file";
	if (!(l = next_line(&p, end, &n)) || line_str(l, n, "name", &v, &vn) ||
	    hex_decode(v, vn, d->name, &d->name_len))
		return "bad name line";
	if (!(l = next_line(&p, end, &n)) || line_u64(l, n, "flags", &flags) || flags > UINT32_MAX)
		return "bad flags line";
	d->flags = (uint32_t)flags;
	if (!(l = next_line(&p, end, &n)) || line_u64(l, n, "stamp", stamp))
		return "bad stamp line";
	while ((l = next_line(&p, end, &n)) != NULL) {
		if (d->n == RMQ_SUB_TOPICS_MAX)
			return "too many subscriptions";
		struct rmq_sub_topic *t = &d->t[d->n];
		const char *f[4];
		size_t fl[4], k = 0;
		const char *s = l, *e = l + n;
		if (n < 6 || memcmp(l, "topic ", 6) != 0)
			return "bad topic line";
		s += 6;
		while (k < 4 && s < e) {
			const char *sp = memchr(s, ' ', (size_t)(e - s));
			const char *fe = (k < 3 && sp) ? sp : e;
			f[k] = s;
			fl[k] = (size_t)(fe - s);
			k++;
			s = fe < e ? fe + 1 : e;
		}
		if (k != 4 || rmq_parse_u64(f[0], fl[0], 0, &t->id) || t->id == 0 ||
		    rmq_parse_u64(f[1], fl[1], 0, &t->pos) ||
		    rmq_parse_u64(f[2], fl[2], 0, &t->acked) ||
		    hex_decode(f[3], fl[3], t->topic, &t->topic_len))
			return "bad topic line";
		d->n++;
	}
	return NULL;
}

/* id -> latest journal position: open addressing, linear probing. */
struct posmap {
	struct posrec *v; /* id 0: empty */
	size_t cap;
};

static struct posrec *posmap_slot(struct posmap *m, uint64_t id)
{
	size_t i = (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 17) & (m->cap - 1);
	while (m->v[i].id != 0 && m->v[i].id != id)
		i = (i + 1) & (m->cap - 1);
	return &m->v[i];
}

static uint32_t posrec_crc(const struct posrec *r)
{
	return rmq_crc32c(rmq_crc32c(0, &r->id, 32), &r->magic, 4);
}

/* Reads positions.log into m; cuts a torn tail. Caller holds st->mu. */
static int journal_load(struct rmq_store *st, struct posmap *m)
{
	struct stat sb;
	if (fstat(st->posfd, &sb) != 0)
		return -errno;
	size_t nrec = (size_t)sb.st_size / sizeof(struct posrec);
	m->cap = 16;
	while (m->cap < 2 * nrec + 2)
		m->cap *= 2;
	m->v = rmq_calloc(m->cap, sizeof(*m->v));
	struct posrec buf[256];
	uint64_t off = 0, good = 0;
	bool torn = false;
	while (!torn) {
		ssize_t r = pread(st->posfd, buf, sizeof(buf), (off_t)off);
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		size_t k = (size_t)r / sizeof(struct posrec);
		if (k == 0)
			break; /* a partial record at the end: cut below */
		for (size_t i = 0; i < k; i++) {
			if (buf[i].magic != POS_MAGIC || buf[i].crc != posrec_crc(&buf[i]) ||
			    buf[i].id == 0) {
				torn = true;
				break;
			}
			struct posrec *s = posmap_slot(m, buf[i].id);
			if (s->id == 0 || buf[i].stamp >= s->stamp)
				*s = buf[i];
			if (buf[i].id >= st->next_id)
				st->next_id = buf[i].id + 1;
			if (buf[i].stamp >= st->stamp)
				st->stamp = buf[i].stamp + 1;
			good += sizeof(struct posrec);
		}
		off += k * sizeof(struct posrec);
	}
	if (good < (uint64_t)sb.st_size) {
		/* Only the last write can be torn (one appender, each batch
		 * synced or not before the next); cut it so appends go on from
		 * a record boundary. */
		st->st.pos_torn_bytes += (uint64_t)sb.st_size - good;
		if (ftruncate(st->posfd, (off_t)good) != 0 || fdatasync(st->posfd) != 0)
			return -errno;
	}
	st->pos_bytes = good;
	return 0;
}

int rmq_store_sub_load_all(struct rmq_store *st, int (*fn)(const struct rmq_sub_def *d, void *ctx),
			   void (*bad)(const char *path, const char *why, void *ctx), void *ctx)
{
	pthread_mutex_lock(&st->mu);
	struct posmap m = { 0 };
	int rc = journal_load(st, &m);
	remove_tmp(st->subsfd);
	int d2 = rc == 0 ? dup(st->subsfd) : -1;
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	if (rc == 0 && !d) {
		rc = -errno;
		if (d2 >= 0)
			close(d2);
	}
	pthread_mutex_unlock(&st->mu);
	if (rc != 0 || !d) {
		free(m.v);
		return rc ? rc : -EIO;
	}
	rewinddir(d);
	struct rmq_sub_def def;
	def.t = rmq_malloc(RMQ_SUB_TOPICS_MAX * sizeof(*def.t));
	struct dirent *de;
	char path[PATH_MAX];
	while (rc == 0 && (de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 5 || strcmp(de->d_name + l - 4, ".sub") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/subs/%s", st->dir, de->d_name);
		size_t len;
		int e = 0;
		char *buf = read_small(st->subsfd, de->d_name, &len, &e);
		if (!buf) {
			if (bad)
				bad(path, strerror(-e), ctx);
			continue;
		}
		long body = check_crc(buf, len);
		uint64_t stamp = 0;
		def.n = 0;
		const char *why =
			body < 0 ? "checksum mismatch" : parse_sub(buf, (size_t)body, &def, &stamp);
		free(buf);
		char enc[RMQ_STORE_ENC_MAX];
		if (!why) {
			rmq_store_encode_name(def.name, def.name_len, enc);
			if (strncmp(enc, de->d_name, l - 4) != 0 || enc[l - 4] != '\0')
				why = "file name does not match the subscriber name inside";
		}
		if (why) {
			if (bad)
				bad(path, why, ctx);
			continue;
		}
		pthread_mutex_lock(&st->mu);
		if (stamp >= st->stamp)
			st->stamp = stamp + 1;
		for (uint32_t i = 0; i < def.n; i++) {
			struct rmq_sub_topic *t = &def.t[i];
			if (t->id >= st->next_id)
				st->next_id = t->id + 1;
			const struct posrec *r = posmap_slot(&m, t->id);
			if (r->id == t->id && r->stamp > stamp) {
				t->pos = r->pos;
				t->acked = r->acked;
			}
		}
		pthread_mutex_unlock(&st->mu);
		rc = fn(&def, ctx);
	}
	closedir(d);
	free(def.t);
	free(m.v);
	return rc;
}

/* --- checkpoints --- */

void rmq_store_pos_put(struct rmq_store *st, uint64_t id, uint64_t pos, uint64_t acked)
{
	pthread_mutex_lock(&st->mu);
	if (st->nq == st->capq) {
		st->capq = st->capq ? st->capq * 2 : 64;
		st->q = rmq_realloc(st->q, st->capq * sizeof(*st->q));
	}
	struct posrec *r = &st->q[st->nq++];
	r->magic = POS_MAGIC;
	r->id = id;
	r->pos = pos;
	r->acked = acked;
	r->stamp = st->stamp++;
	r->crc = posrec_crc(r);
	pthread_mutex_unlock(&st->mu);
}

int rmq_store_pos_flush(struct rmq_store *st, bool sync)
{
	pthread_mutex_lock(&st->mu);
	if (st->nq == 0) {
		pthread_mutex_unlock(&st->mu);
		return 0;
	}
	size_t bytes = st->nq * sizeof(struct posrec);
	int rc = write_all(st->posfd, st->q, bytes);
	if (rc != 0) {
		/* No half record may stay in the middle of the journal. */
		(void)ftruncate(st->posfd, (off_t)st->pos_bytes);
	} else {
		st->pos_bytes += bytes;
		st->st.pos_flushes++;
		if (sync) {
			st->st.pos_syncs++;
			if (fdatasync(st->posfd) != 0)
				rc = -errno; /* keep them queued: appended again */
		}
	}
	if (rc == 0) {
		st->st.pos_records += st->nq;
		st->nq = 0;
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}

uint64_t rmq_store_pos_journal_bytes(struct rmq_store *st)
{
	pthread_mutex_lock(&st->mu);
	uint64_t n = st->pos_bytes;
	pthread_mutex_unlock(&st->mu);
	return n;
}

int rmq_store_pos_compact(struct rmq_store *st, const struct rmq_pos *all, size_t n)
{
	struct posrec *v = rmq_malloc((n ? n : 1) * sizeof(*v));
	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < n; i++) {
		v[i] = (struct posrec){ .magic = POS_MAGIC,
					.id = all[i].id,
					.pos = all[i].pos,
					.acked = all[i].acked,
					.stamp = st->stamp++ };
		v[i].crc = posrec_crc(&v[i]);
	}
	int rc = write_atomic(st, true, st->dirfd, POS_FILE, (const char *)v, n * sizeof(*v));
	if (rc == 0) {
		int fd = openat(st->dirfd, POS_FILE, O_RDWR | O_APPEND | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
		} else {
			close(st->posfd);
			st->posfd = fd;
			st->pos_bytes = n * sizeof(*v);
			st->st.pos_compactions++;
			st->st.files_written++;
		}
	}
	pthread_mutex_unlock(&st->mu);
	free(v);
	return rc;
}

void rmq_store_stats(struct rmq_store *st, struct rmq_store_stats *out)
{
	pthread_mutex_lock(&st->mu);
	*out = st->st;
	pthread_mutex_unlock(&st->mu);
}

void rmq_store_set_lazy(struct rmq_store *st, bool lazy)
{
	pthread_mutex_lock(&st->mu);
	st->lazy = lazy;
	pthread_mutex_unlock(&st->mu);
}

int rmq_store_sync_meta(struct rmq_store *st)
{
	pthread_mutex_lock(&st->mu);
	bool dirty = st->meta_dirty;
	st->meta_dirty = false;
	pthread_mutex_unlock(&st->mu);
	if (!dirty)
		return 0;
	/* New and renamed files, new directories, removals: the file
	 * system's metadata journal, in one call. */
	if (syncfs(st->dirfd) == 0)
		return 0;
	int rc = -errno;
	pthread_mutex_lock(&st->mu);
	st->meta_dirty = true;
	pthread_mutex_unlock(&st->mu);
	return rc;
}
