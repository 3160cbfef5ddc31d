/* parse.h - whole numbers given on command lines and in commands, with
 * units, parsed one way everywhere.
 *
 * Used by the server (CREATE ... CAPACITY, PULL ... COUNT, its options,
 * through core/util.h's rmq_parse_u64) and by the tools (ringmq-pub,
 * ringmq-bench, the stress programs), so "64K" means the same to all.
 *
 * The grammar, for the whole input and nothing else:
 *
 *   DIGITS [UNIT]
 *
 * DIGITS is one or more of 0-9 (no sign, no blanks, no "0x"; leading zeros
 * are fine). UNIT depends on what the number counts:
 *
 *   RMQ_UNIT_NONE    no unit: "4096"
 *   RMQ_UNIT_BYTES   a size: K, M or G (any case) multiply by 2^10, 2^20,
 *                    2^30; a B may follow, or stand alone:
 *                    "64K" = "64kb" = 65536, "100B" = 100, "1G" = 2^30
 *   RMQ_UNIT_COUNT   a count of things (messages, topics): K, M or G (any
 *                    case) multiply by 10^3, 10^6, 10^9: "100k" = 100000
 *
 * A value that does not fit in 64 bits, before or after the unit, is an
 * error: it never wraps.
 *
 * Pure functions: no allocation, no global state, any thread.
 */
#ifndef RMQ_PARSE_H
#define RMQ_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum rmq_unit {
	RMQ_UNIT_NONE = 0,
	RMQ_UNIT_BYTES = 1,
	RMQ_UNIT_COUNT = 2,
};

/* Parses the n bytes at p (not necessarily NUL-terminated) as above.
 * Returns 0 with *out set, or -1 (empty, junk, a unit not allowed,
 * overflow) with *out untouched. */
int rmq_parse_uint(const char *p, size_t n, enum rmq_unit unit, uint64_t *out);

/* The same for a NUL-terminated string, such as a command-line argument. */
static inline int rmq_parse_arg(const char *s, enum rmq_unit unit, uint64_t *out)
{
	return rmq_parse_uint(s, strlen(s), unit, out);
}

#endif
