/* store.h - the data directory: lock, topic definitions, durable
 * subscribers and their positions.
 *
 * Layout under the data directory (--dir):
 *
 *   LOCK                      flock()ed while a store has it open
 *   topics/<enc>/topic.meta   a topic's definition
 *   topics/<enc>/<base>.seg   a disk topic's segment files (segfile.h)
 *   subs/<enc>.sub            a durable subscriber: name, flags, and per
 *                             topic a subscription id and the positions
 *                             at the time the file was written
 *   positions.log             checkpoint journal: fixed 40-byte records
 *                             (subscription id, position, acked position,
 *                             stamp, CRC-32C), appended, compacted by
 *                             rewriting
 *
 * <enc> is the name percent-encoded: bytes outside [A-Za-z0-9_.-] and a
 * leading '.' become %XX, so any topic name (1..255 bytes, '/' included)
 * is one safe file name; an encoding over 200 bytes is cut to 180 and
 * suffixed with '~' and the 16 hex digits of a 64-bit hash of the name.
 * The real name is kept inside the file (hex), and the loaders use that.
 *
 * Small files (topic.meta, *.sub) are written as <file>.tmp, fsync,
 * rename, fsync of the directory: a reader sees the old or the new file,
 * never a mix; leftover .tmp files are ignored and removed by the loaders.
 * Each ends with a CRC-32C line; a file that fails it is reported, not
 * loaded.
 *
 * Positions: subscriber files change only when subscriptions do; the
 * frequent position checkpoints go to positions.log, a batch of changed
 * positions per write() and at most one fdatasync per flush, whatever the
 * number of subscribers. Every record and file carries a stamp from one
 * counter; the loader takes, for each subscription, the position with
 * the highest stamp (journal or file). A torn journal tail is cut.
 *
 * Threads: all functions are safe to call from any thread (one mutex per
 * store; calls that fsync hold it while they do: keep them off latency
 * sensitive threads or batch them). No RCU requirements.
 *
 * Errors: 0 or a negative errno; functions taking err/errlen also write a
 * sentence naming the file.
 *
 * Memory: rmq_store_open returns a store the caller frees with
 * rmq_store_close. Definitions passed to callbacks are valid during the
 * call only.
 */
#ifndef RMQ_STORE_H
#define RMQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define RMQ_STORE_NAME_MAX 255
#define RMQ_STORE_ENC_MAX 256 /* encoded name and its NUL */

enum rmq_storage {
	RMQ_STORAGE_MEMORY = 0,
	RMQ_STORAGE_DISK = 1,
};

struct rmq_store;

/* Opens the data directory dir (created with its parents if missing) and
 * takes its lock. Returns 0 and *out, -EBUSY when another process (or
 * another open store) holds the lock, or another negative errno; err says
 * which path and why. */
int rmq_store_open(const char *dir, struct rmq_store **out, char *err, size_t errlen);

/* Releases the lock and frees the store (flushing nothing: call
 * rmq_store_pos_flush first). */
void rmq_store_close(struct rmq_store *st);

const char *rmq_store_dir(const struct rmq_store *st);

/* The file-name form of a topic or subscriber name (see above); returns
 * its length. out has RMQ_STORE_ENC_MAX bytes. */
size_t rmq_store_encode_name(const char *name, size_t len, char out[RMQ_STORE_ENC_MAX]);

/* A stable 64-bit id of a topic name (FNV-1a, never 0): what segment
 * headers are stamped with. Unlike rmq_hash it does not change between
 * runs. */
uint64_t rmq_store_topic_id(const char *name, size_t len);

/* --- topics --- */

struct rmq_topic_def {
	char name[RMQ_STORE_NAME_MAX + 1]; /* NUL-terminated */
	uint32_t name_len;
	uint64_t capacity;
	enum rmq_onfull onfull;
	enum rmq_storage storage;
	uint64_t maxage_ms; /* 0: none */
};

/* Writes the topic's definition (creating its directory): atomically
 * replaces an existing one. Writes the directory's path, where a disk
 * topic's log lives, to logdir (PATH_MAX bytes) when not NULL. */
int rmq_store_topic_save(struct rmq_store *st, const struct rmq_topic_def *d, char *logdir);

/* Deletes the topic's directory: its definition first (then the topic is
 * gone for a loader even if a crash interrupts the rest), then its
 * segment files. -ENOENT if there is none. Call once the topic's log is
 * closed or at least no longer appended to (mapped segments stay valid). */
int rmq_store_topic_remove(struct rmq_store *st, const char *name, size_t len);

/* Calls fn for each topic definition found, with the directory of its log.
 * A directory whose definition is missing or damaged is passed to bad (may
 * be NULL) with the reason and skipped. Returns 0, or fn's first non-zero
 * return (which stops the walk), or a negative errno if topics/ cannot be
 * read. */
int rmq_store_topic_load_all(struct rmq_store *st,
			     int (*fn)(const struct rmq_topic_def *d, const char *logdir,
				       void *ctx),
			     void (*bad)(const char *path, const char *why, void *ctx), void *ctx);

/* --- durable subscribers --- */

struct rmq_sub_topic {
	char topic[RMQ_STORE_NAME_MAX + 1];
	uint32_t topic_len;
	uint64_t id;    /* subscription id (rmq_store_new_id) */
	uint64_t pos;   /* next sequence number to deliver */
	uint64_t acked; /* the floor (pos in auto-acknowledge mode; 0 read as pos) */
};

#define RMQ_SUB_TOPICS_MAX 4096

struct rmq_sub_def {
	char name[RMQ_STORE_NAME_MAX + 1];
	uint32_t name_len;
	uint32_t flags; /* the caller's (e.g. acknowledged mode) */
	uint32_t n;     /* subscriptions in t[] */
	struct rmq_sub_topic *t;
};

/* A fresh subscription id, unique in this data directory. */
uint64_t rmq_store_new_id(struct rmq_store *st);

/* Writes the subscriber's file (atomically replacing it), positions
 * included. Call when subscriptions are added or removed. */
int rmq_store_sub_save(struct rmq_store *st, const struct rmq_sub_def *d);

/* Deletes the subscriber's file. -ENOENT if there is none. */
int rmq_store_sub_remove(struct rmq_store *st, const char *name, size_t len);

/* Calls fn for each subscriber found, with each subscription's position
 * and acked position brought up to date from positions.log. Damaged
 * files go to bad. Same returns as rmq_store_topic_load_all. Also sets
 * the id and stamp counters past everything seen: call it once at start,
 * before rmq_store_new_id or checkpoints. */
int rmq_store_sub_load_all(struct rmq_store *st, int (*fn)(const struct rmq_sub_def *d, void *ctx),
			   void (*bad)(const char *path, const char *why, void *ctx), void *ctx);

/* --- position checkpoints --- */

/* Queues a checkpoint of subscription id (in memory, no system call). */
void rmq_store_pos_put(struct rmq_store *st, uint64_t id, uint64_t pos, uint64_t acked);

/* Writes the queued checkpoints with one write() and, if sync, one
 * fdatasync. Returns 0 (also when nothing was queued: no system call) or
 * a negative errno (the records stay queued and will be retried; after a
 * failed fdatasync the journal is reopened and rewritten by the next
 * rmq_store_pos_compact, as its pages may be lost). */
int rmq_store_pos_flush(struct rmq_store *st, bool sync);

/* Bytes in positions.log (to decide when to compact). */
uint64_t rmq_store_pos_journal_bytes(struct rmq_store *st);

/* Replaces positions.log by one holding only the n given positions (the
 * live subscriptions), written to a temp file, fsync'ed and renamed over
 * it. */
struct rmq_pos {
	uint64_t id, pos, acked;
};
int rmq_store_pos_compact(struct rmq_store *st, const struct rmq_pos *all, size_t n);

/* Lazy mode (--fsync everysec / no): topic and subscriber files are
 * still written as temp file + rename (a reader sees the old or the new
 * file), but without their fsyncs; rmq_store_sync_meta makes everything
 * written so far durable with one syncfs() of the directory's file system
 * (what a background flush calls). Compactions of positions.log are
 * always synced. Off by default. */
void rmq_store_set_lazy(struct rmq_store *st, bool lazy);
int rmq_store_sync_meta(struct rmq_store *st);

struct rmq_store_stats {
	uint64_t pos_records, pos_flushes, pos_syncs, pos_compactions;
	uint64_t pos_torn_bytes; /* cut from the journal's tail at load */
	uint64_t files_written;
};
void rmq_store_stats(struct rmq_store *st, struct rmq_store_stats *out);

#endif
