/* ringmq_proto.h - what the server, the client library and the tools must
 * agree on: the limits, defaults and words of the ringmq protocol.
 *
 * The server (core/, net/), the client library (client/) and the tools
 * (cli/, bench/) take these from here and define none of them again. It is
 * installed beside ringmq.h, which includes it, so a program using the
 * client library sees the same limits the server checks.
 *
 * Header only: constants and small inline functions, no state, nothing to
 * link. Valid C99 and C++.
 */
#ifndef RINGMQ_PROTO_H
#define RINGMQ_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* RMQ_STR(RMQ_DEFAULT_PORT) is "5555": for usage texts. */
#define RMQ_STR_(x) #x
#define RMQ_STR(x) RMQ_STR_(x)

/* The TCP port the server listens on, and clients connect to, by default. */
#define RMQ_DEFAULT_PORT 5555

/* Topic, subscriber and publisher names: 1 to RMQ_TOPIC_MAX_LEN bytes, no
 * byte a control character, blank or DEL (bytes >= 0x80 are allowed, so
 * UTF-8 names work). rmq_name_valid() checks one. */
#define RMQ_TOPIC_MAX_LEN 255

/* PULL topic [COUNT n]: n is 1 to RMQ_PULL_MAX_COUNT messages; without
 * COUNT, RMQ_PULL_DEFAULT_COUNT. */
#define RMQ_PULL_DEFAULT_COUNT 100
#define RMQ_PULL_MAX_COUNT 100000

/* CREATE topic [CAPACITY bytes]: the bytes a topic retains, from
 * RMQ_CAPACITY_MIN to RMQ_CAPACITY_MAX. Without CAPACITY the server's
 * --default-capacity applies, RMQ_DEFAULT_CAPACITY unless set. */
#define RMQ_CAPACITY_MIN 1024ULL
#define RMQ_CAPACITY_MAX (1ULL << 40)
#define RMQ_DEFAULT_CAPACITY (64ULL << 20)

/* CREATE topic [ONFULL reject|drop-oldest]: what a full topic does with a
 * new message. The values are part of the client library's ABI
 * (struct rmq_topic_opts); the words are the protocol's. */
enum rmq_onfull {
	RMQ_ONFULL_DEFAULT = 0,     /* not given: the server's default, reject */
	RMQ_ONFULL_REJECT = 1,      /* refuse new messages while durable subscribers lag */
	RMQ_ONFULL_DROP_OLDEST = 2, /* always accept; evict the oldest messages */
};

#define RMQ_ONFULL_REJECT_WORD "reject"
#define RMQ_ONFULL_DROP_OLDEST_WORD "drop-oldest"

/* The word CREATE takes for policy p and INFO shows; RMQ_ONFULL_DEFAULT
 * is the server's default, "reject". NULL for a value that is no policy. */
static inline const char *rmq_onfull_word(enum rmq_onfull p)
{
	switch (p) {
	case RMQ_ONFULL_DEFAULT:
	case RMQ_ONFULL_REJECT: return RMQ_ONFULL_REJECT_WORD;
	case RMQ_ONFULL_DROP_OLDEST: return RMQ_ONFULL_DROP_OLDEST_WORD;
	}
	return NULL;
}

/* The policy the n bytes at s name, in any case ("reject", "DROP-OLDEST"),
 * in *out; false, *out untouched, when they name none. */
static inline bool rmq_onfull_parse(const char *s, size_t n, enum rmq_onfull *out)
{
	static const struct {
		const char *word;
		enum rmq_onfull policy;
	} words[] = {
		{ RMQ_ONFULL_REJECT_WORD, RMQ_ONFULL_REJECT },
		{ RMQ_ONFULL_DROP_OLDEST_WORD, RMQ_ONFULL_DROP_OLDEST },
	};
	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		const char *word = words[w].word;
		size_t i = 0;
		for (; i < n && word[i]; i++) {
			char c = s[i];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (c != word[i])
				break;
		}
		if (i == n && !word[i]) {
			*out = words[w].policy;
			return true;
		}
	}
	return false;
}

/* True when the len bytes at name are a valid topic, subscriber or
 * publisher name (see RMQ_TOPIC_MAX_LEN). name need not be NUL-terminated;
 * a NUL byte in it makes it invalid. */
static inline bool rmq_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > RMQ_TOPIC_MAX_LEN)
		return false;
	/* Eight bytes at a time: a byte below 0x21 (control or blank) or equal
	 * to 0x7f. "(x - 0x21..) & ~x & 0x80.." is nonzero exactly when some
	 * byte of x is below 0x21 (bytes >= 0x80 are allowed and never set
	 * it); xor with 0x7f.. turns a 0x7f byte into a zero byte. */
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t x, d;
		memcpy(&x, name + i, 8);
		d = x ^ (0x7f * ones);
		if (((x - 0x21 * ones) & ~x & high) | ((d - ones) & ~d & high))
			return false;
	}
	for (; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}

#endif
