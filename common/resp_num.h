/* resp_num.h - the number line of RESP, parsed one way by the server's
 * request parser (net/resp.c) and the tools' reply parsers (bench/wire.c).
 *
 * In RESP a '*' (array), '$' (bulk string) or ':' (integer) is followed by
 * a decimal number and CRLF. Header only and inline: the server calls it
 * for every bulk length of three or more digits.
 */
#ifndef RMQ_RESP_NUM_H
#define RMQ_RESP_NUM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The most digits a number line may have: 18 keeps every value, and its
 * negation, inside int64_t without an overflow check per digit. */
#define RMQ_RESP_NUM_MAX_DIGITS 18

/* Parses "[-]DIGITS\r\n" at p[0, len) (1 to RMQ_RESP_NUM_MAX_DIGITS
 * digits, after the type byte). Returns the bytes it spans, CRLF
 * included, with *out set; 0 when p[0, len) is a prefix of such a line
 * (read more); -1 when it cannot be one (no digit, too many, anything but
 * a digit before the CR, CR without LF). Reads nothing past len. */
static inline ssize_t rmq_resp_parse_num(const char *p, size_t len, int64_t *out)
{
	size_t i = 0;
	int neg = 0;
	uint64_t v = 0;
	if (len == 0)
		return 0;
	if (p[0] == '-') {
		neg = 1;
		i = 1;
	}
	size_t digits = 0;
	for (; i < len; i++) {
		char c = p[i];
		if (c >= '0' && c <= '9') {
			if (++digits > RMQ_RESP_NUM_MAX_DIGITS)
				return -1;
			v = v * 10 + (uint64_t)(c - '0');
			continue;
		}
		if (c != '\r' || digits == 0)
			return -1;
		if (i + 1 >= len)
			return 0;
		if (p[i + 1] != '\n')
			return -1;
		*out = neg ? -(int64_t)v : (int64_t)v;
		return (ssize_t)(i + 2);
	}
	/* Only digits so far (at most 18, so len <= 19): more may come. */
	return 0;
}

#endif
