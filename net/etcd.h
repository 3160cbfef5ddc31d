/* etcd.h - a small client of etcd's v3 API through its JSON gateway
 * (HTTP POST of JSON to /v3/..., keys and values base64 as the gateway
 * requires), for the cluster's membership and slot map (cluster.c) and the
 * ringmq-cluster tool. libcurl speaks HTTP, jansson reads and writes JSON.
 *
 * Calls block (each bounded by the handle's timeout): make them from a
 * thread of their own, never from a worker. A handle is used by one thread
 * at a time. Several endpoints may be given: a call that cannot reach one
 * tries the next, and the one that answered is used first from then on.
 *
 * No watch stream: a change is seen by reading again (rmq_etcd_range) and
 * comparing revisions; see cluster.c for why that is enough here.
 *
 * Errors: 0 (or a count) on success, -ENOENT for a missing key, -EIO when
 * no endpoint answered or an answer could not be read, -ENOMEM.
 */
#ifndef RMQ_ETCD_H
#define RMQ_ETCD_H

#include <stddef.h>
#include <stdint.h>

struct rmq_etcd;

/* A key and its value as etcd holds them. key and value are malloc'd,
 * NUL-terminated (value may hold zero bytes too: value_len); freed by
 * rmq_etcd_kv_free (or rmq_etcd_range_free for a range's). */
struct rmq_etcd_kv {
	char *key, *value;
	size_t value_len;
	int64_t create_rev, mod_rev, version, lease;
};

/* What rmq_etcd_range found: kvs[0..n) and the store's revision then. */
struct rmq_etcd_range {
	struct rmq_etcd_kv *kvs;
	size_t n;
	int64_t revision;
};

/* Must be called once before any thread uses libcurl (the process's main
 * thread, before it starts others): curl_global_init. */
void rmq_etcd_global_init(void);

/* A handle on the endpoints urls ("http://127.0.0.1:2379,http://..."),
 * each call bounded by timeout_ms. NULL on a malformed list or no memory.
 * The caller frees it with rmq_etcd_free. */
struct rmq_etcd *rmq_etcd_new(const char *urls, int timeout_ms);
void rmq_etcd_free(struct rmq_etcd *e);

/* Puts key = value (len bytes), bound to lease (0: none). */
int rmq_etcd_put(struct rmq_etcd *e, const char *key, const char *value, size_t len, int64_t lease);
/* Reads key into *kv (the caller frees it with rmq_etcd_kv_free). */
int rmq_etcd_get(struct rmq_etcd *e, const char *key, struct rmq_etcd_kv *kv);
void rmq_etcd_kv_free(struct rmq_etcd_kv *kv);
/* Every key starting with prefix, in key order, into *r (freed with
 * rmq_etcd_range_free, also after an error). */
int rmq_etcd_range(struct rmq_etcd *e, const char *prefix, struct rmq_etcd_range *r);
void rmq_etcd_range_free(struct rmq_etcd_range *r);
int rmq_etcd_delete(struct rmq_etcd *e, const char *key);

/* What rmq_etcd_put_if compares. */
enum rmq_etcd_cmp {
	RMQ_ETCD_CREATE, /* key's create revision: 0 means "key absent" */
	RMQ_ETCD_MOD,    /* key's last modification revision */
};
/* A transaction: puts key = value (bound to lease, 0: none) only if key's
 * revision of kind cmp equals want. Returns 1 when it did, 0 when the
 * comparison failed (nothing written), or a negative error. */
int rmq_etcd_put_if(struct rmq_etcd *e, const char *key, const char *value, size_t len,
		    int64_t lease, enum rmq_etcd_cmp cmp, int64_t want);

/* A lease of ttl_s seconds into *id. */
int rmq_etcd_lease_grant(struct rmq_etcd *e, int ttl_s, int64_t *id);
/* Renews lease id once; *ttl_s gets its remaining time, 0 when it expired
 * (then it is gone for good: grant another). */
int rmq_etcd_lease_keepalive(struct rmq_etcd *e, int64_t id, int64_t *ttl_s);
int rmq_etcd_lease_revoke(struct rmq_etcd *e, int64_t id);

#endif
