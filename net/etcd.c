/* etcd.c - etcd v3 over its JSON gateway (etcd.h).
 *
 * Every call is one POST of a JSON body to /v3/<service>/<method> on one
 * reused libcurl handle (keep-alive), the answer read with jansson. The
 * gateway writes 64-bit numbers as JSON strings and keys and values as
 * base64, hence the helpers below.
 */
#define _GNU_SOURCE
#include "etcd.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#define ETCD_MAX_URLS 8

struct rmq_etcd {
	CURL *curl;
	char *urls[ETCD_MAX_URLS];
	int nurls, cur; /* cur: the endpoint that answered last */
	int timeout_ms;
	struct curl_slist *headers;
	char *body; /* the answer being received */
	size_t len, cap;
};

void rmq_etcd_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- base64 (RFC 4648, with padding) --- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A malloc'd, NUL-terminated base64 text of len bytes at p. */
static char *b64_encode(const char *p, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1), *w = out;
	if (!out)
		return NULL;
	const unsigned char *s = (const unsigned char *)p;
	size_t i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*w++ = b64chars[v >> 18];
		*w++ = b64chars[(v >> 12) & 63];
		*w++ = b64chars[(v >> 6) & 63];
		*w++ = b64chars[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0);
		*w++ = b64chars[v >> 18];
		*w++ = b64chars[(v >> 12) & 63];
		*w++ = (char)(i + 1 < len ? b64chars[(v >> 6) & 63] : '=');
		*w++ = '=';
	}
	*w = '\0';
	return out;
}

static int b64_val(char ch)
{
	const char *q = ch ? strchr(b64chars, ch) : NULL;
	return q ? (int)(q - b64chars) : -1;
}

/* Decodes s into a malloc'd, NUL-terminated buffer (*len bytes before the
 * NUL); NULL on bad input or no memory. */
static char *b64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s);
	char *out = malloc(n / 4 * 3 + 4);
	if (!out)
		return NULL;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n && s[i] != '='; i++) {
		int v = b64_val(s[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* --- the handle --- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct rmq_etcd *e = arg;
	size_t k = size * n;
	if (e->len + k + 1 > e->cap) {
		size_t cap = (e->len + k + 1) * 2;
		char *b = realloc(e->body, cap);
		if (!b)
			return 0; /* curl fails the transfer */
		e->body = b;
		e->cap = cap;
	}
	memcpy(e->body + e->len, p, k);
	e->len += k;
	e->body[e->len] = '\0';
	return k;
}

struct rmq_etcd *rmq_etcd_new(const char *urls, int timeout_ms)
{
	struct rmq_etcd *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->timeout_ms = timeout_ms;
	const char *p = urls;
	while (*p && e->nurls < ETCD_MAX_URLS) {
		size_t n = strcspn(p, ",");
		if (n) {
			/* "host:port" without a scheme means http:// */
			bool scheme = memmem(p, n, "://", 3) != NULL;
			if (asprintf(&e->urls[e->nurls], "%s%.*s", scheme ? "" : "http://", (int)n,
				     p) < 0)
				goto fail;
			size_t l = strlen(e->urls[e->nurls]);
			if (l && e->urls[e->nurls][l - 1] == '/')
				e->urls[e->nurls][l - 1] = '\0';
			e->nurls++;
		}
		p += n + (p[n] == ',');
	}
	if (!e->nurls || *p)
		goto fail;
	e->curl = curl_easy_init();
	e->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!e->curl || !e->headers)
		goto fail;
	return e;
fail:
	rmq_etcd_free(e);
	return NULL;
}

void rmq_etcd_free(struct rmq_etcd *e)
{
	if (!e)
		return;
	if (e->curl)
		curl_easy_cleanup(e->curl);
	curl_slist_free_all(e->headers);
	for (int i = 0; i < e->nurls; i++)
		free(e->urls[i]);
	free(e->body);
	free(e);
}

/* POSTs req (consumed) to path on the first endpoint that answers with
 * HTTP 200 and JSON; *res gets the answer (the caller decrefs it). */
static int call(struct rmq_etcd *e, const char *path, json_t *req, json_t **res)
{
	*res = NULL;
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body)
		return -ENOMEM;
	int rc = -EIO;
	for (int k = 0; k < e->nurls && rc == -EIO; k++) {
		int i = (e->cur + k) % e->nurls;
		char url[512];
		snprintf(url, sizeof(url), "%s%s", e->urls[i], path);
		e->len = 0;
		curl_easy_reset(e->curl);
		curl_easy_setopt(e->curl, CURLOPT_URL, url);
		curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, e->headers);
		curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
		curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
		curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, e);
		long status = 0;
		if (curl_easy_perform(e->curl) != CURLE_OK ||
		    curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
		    status != 200 || !e->len)
			continue;
		*res = json_loadb(e->body, e->len, 0, NULL);
		if (*res) {
			e->cur = i;
			rc = 0;
		}
	}
	free(body);
	return rc;
}

/* A JSON string of a base64 key or value, or NULL on no memory. */
static json_t *b64_json(const char *p, size_t len)
{
	char *s = b64_encode(p, len);
	json_t *j = s ? json_string(s) : NULL;
	free(s);
	return j;
}

/* The gateway's int64 fields are strings ("7"), absent when 0. */
static int64_t int_field(const json_t *o, const char *name)
{
	const json_t *v = json_object_get(o, name);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	return 0;
}

static json_t *i64_json(int64_t v)
{
	char num[24];
	snprintf(num, sizeof(num), "%lld", (long long)v);
	return json_string(num);
}

static int read_kv(const json_t *o, struct rmq_etcd_kv *kv)
{
	memset(kv, 0, sizeof(*kv));
	const char *k = json_string_value(json_object_get(o, "key"));
	const char *v = json_string_value(json_object_get(o, "value"));
	size_t klen;
	kv->key = b64_decode(k ? k : "", &klen);
	kv->value = b64_decode(v ? v : "", &kv->value_len);
	kv->create_rev = int_field(o, "create_revision");
	kv->mod_rev = int_field(o, "mod_revision");
	kv->version = int_field(o, "version");
	kv->lease = int_field(o, "lease");
	if (!kv->key || !kv->value) {
		rmq_etcd_kv_free(kv);
		return -EIO;
	}
	return 0;
}

void rmq_etcd_kv_free(struct rmq_etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	kv->key = kv->value = NULL;
}

void rmq_etcd_range_free(struct rmq_etcd_range *r)
{
	for (size_t i = 0; i < r->n; i++)
		rmq_etcd_kv_free(&r->kvs[i]);
	free(r->kvs);
	r->kvs = NULL;
	r->n = 0;
}

static json_t *put_req(const char *key, const char *value, size_t len, int64_t lease)
{
	json_t *o = json_object();
	json_object_set_new(o, "key", b64_json(key, strlen(key)));
	json_object_set_new(o, "value", b64_json(value, len));
	if (lease)
		json_object_set_new(o, "lease", i64_json(lease));
	return o;
}

int rmq_etcd_put(struct rmq_etcd *e, const char *key, const char *value, size_t len, int64_t lease)
{
	json_t *res;
	int rc = call(e, "/v3/kv/put", put_req(key, value, len, lease), &res);
	/* an unknown lease is an error answer (HTTP 400): -EIO */
	json_decref(res);
	return rc;
}

/* The range of key .. range_end (NULL: key alone) into *r. */
static int range(struct rmq_etcd *e, const char *key, const char *range_end,
		 struct rmq_etcd_range *r)
{
	memset(r, 0, sizeof(*r));
	json_t *req = json_object(), *res;
	json_object_set_new(req, "key", b64_json(key, strlen(key)));
	if (range_end)
		json_object_set_new(req, "range_end", b64_json(range_end, strlen(range_end)));
	int rc = call(e, "/v3/kv/range", req, &res);
	if (rc)
		return rc;
	r->revision = int_field(json_object_get(res, "header"), "revision");
	json_t *kvs = json_object_get(res, "kvs");
	size_t n = json_array_size(kvs);
	if (n) {
		r->kvs = calloc(n, sizeof(*r->kvs));
		if (!r->kvs)
			rc = -ENOMEM;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = read_kv(json_array_get(kvs, i), &r->kvs[i]);
		if (rc == 0)
			r->n++;
	}
	json_decref(res);
	return rc;
}

int rmq_etcd_get(struct rmq_etcd *e, const char *key, struct rmq_etcd_kv *kv)
{
	struct rmq_etcd_range r;
	memset(kv, 0, sizeof(*kv));
	int rc = range(e, key, NULL, &r);
	if (rc == 0 && r.n == 0)
		rc = -ENOENT;
	if (rc == 0) {
		*kv = r.kvs[0];
		memset(&r.kvs[0], 0, sizeof(r.kvs[0]));
	}
	rmq_etcd_range_free(&r);
	return rc;
}

int rmq_etcd_range(struct rmq_etcd *e, const char *prefix, struct rmq_etcd_range *r)
{
	size_t n = strlen(prefix);
	char *end = strdup(prefix);
	if (!end || !n) {
		free(end);
		memset(r, 0, sizeof(*r));
		return end ? -EINVAL : -ENOMEM;
	}
	end[n - 1]++; /* the first key past every key with the prefix */
	int rc = range(e, prefix, end, r);
	free(end);
	return rc;
}

int rmq_etcd_delete(struct rmq_etcd *e, const char *key)
{
	json_t *req = json_object(), *res;
	json_object_set_new(req, "key", b64_json(key, strlen(key)));
	int rc = call(e, "/v3/kv/deleterange", req, &res);
	json_decref(res);
	return rc;
}

int rmq_etcd_put_if(struct rmq_etcd *e, const char *key, const char *value, size_t len,
		    int64_t lease, enum rmq_etcd_cmp cmp, int64_t want)
{
	json_t *c = json_object();
	json_object_set_new(c, "key", b64_json(key, strlen(key)));
	json_object_set_new(c, "result", json_string("EQUAL"));
	json_object_set_new(c, "target", json_string(cmp == RMQ_ETCD_CREATE ? "CREATE" : "MOD"));
	json_object_set_new(c, cmp == RMQ_ETCD_CREATE ? "create_revision" : "mod_revision",
			    i64_json(want));
	json_t *put = json_object();
	json_object_set_new(put, "request_put", put_req(key, value, len, lease));
	json_t *req = json_object(), *res;
	json_object_set_new(req, "compare", json_pack("[o]", c));
	json_object_set_new(req, "success", json_pack("[o]", put));
	int rc = call(e, "/v3/kv/txn", req, &res);
	if (rc)
		return rc;
	rc = json_is_true(json_object_get(res, "succeeded")) ? 1 : 0;
	json_decref(res);
	return rc;
}

int rmq_etcd_lease_grant(struct rmq_etcd *e, int ttl_s, int64_t *id)
{
	json_t *req = json_object(), *res;
	json_object_set_new(req, "TTL", i64_json(ttl_s));
	int rc = call(e, "/v3/lease/grant", req, &res);
	if (rc)
		return rc;
	*id = int_field(res, "ID");
	json_decref(res);
	return *id ? 0 : -EIO;
}

int rmq_etcd_lease_keepalive(struct rmq_etcd *e, int64_t id, int64_t *ttl_s)
{
	json_t *req = json_object(), *res;
	json_object_set_new(req, "ID", i64_json(id));
	int rc = call(e, "/v3/lease/keepalive", req, &res);
	if (rc)
		return rc;
	/* one message of the stream: {"result": {"ID": .., "TTL": ..}}, no
	 * TTL once the lease is gone */
	*ttl_s = int_field(json_object_get(res, "result"), "TTL");
	json_decref(res);
	return 0;
}

int rmq_etcd_lease_revoke(struct rmq_etcd *e, int64_t id)
{
	json_t *req = json_object(), *res;
	json_object_set_new(req, "ID", i64_json(id));
	int rc = call(e, "/v3/lease/revoke", req, &res);
	json_decref(res);
	return rc;
}
