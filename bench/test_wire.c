/* test_wire.c - the generator's parsers: RESP replies, "message" pushes,
 * reply counting, NATS operations; every prefix of a frame must say
 * "incomplete", never misparse. */
#include <criterion/criterion.h>
#include <string.h>

#include "wire.h"

static const char *frames[] = {
	"+OK\r\n",
	"-ERR boom\r\n",
	":12345\r\n",
	":-1\r\n",
	"$5\r\nhello\r\n",
	"$-1\r\n",
	"*-1\r\n",
	"*0\r\n",
	"*2\r\n*2\r\n:1\r\n$3\r\nabc\r\n*2\r\n:2\r\n$0\r\n\r\n",
	"*3\r\n$7\r\nmessage\r\n$3\r\nfoo\r\n$4\r\nb\r\nr\r\n",
};

Test(wire, resp_value_every_prefix_is_incomplete)
{
	for (size_t f = 0; f < sizeof(frames) / sizeof(frames[0]); f++) {
		size_t n = strlen(frames[f]);
		struct rb_rval v;
		for (size_t k = 0; k < n; k++)
			cr_assert_eq(rb_resp_value(frames[f], k, &v), 0, "frame %zu prefix %zu", f,
				     k);
		cr_assert_eq(rb_resp_value(frames[f], n, &v), (ssize_t)n, "frame %zu", f);
	}
}

Test(wire, resp_value_fields)
{
	struct rb_rval v;
	cr_assert_eq(rb_resp_value(":-42\r\n", 6, &v), 6);
	cr_assert_eq(v.type, ':');
	cr_assert_eq(v.i, -42);
	cr_assert_eq(rb_resp_value("$3\r\nabc\r\n", 9, &v), 9);
	cr_assert_eq(v.len, 3);
	cr_assert(!memcmp(v.p, "abc", 3));
	cr_assert_eq(rb_resp_value("$-1\r\n", 5, &v), 5);
	cr_assert(v.null);
	cr_assert_eq(rb_resp_value("-ERR x\r\n", 8, &v), 8);
	cr_assert_eq(v.type, '-');
	cr_assert_eq(v.len, 5);
}

Test(wire, resp_value_malformed)
{
	struct rb_rval v;
	cr_assert_eq(rb_resp_value("?\r\n", 3, &v), -1);
	cr_assert_eq(rb_resp_value(":12a\r\n", 6, &v), -1);
	cr_assert_eq(rb_resp_value("$3\r\nabcd\r\n", 10, &v), -1);
	cr_assert_eq(rb_resp_value("$-2\r\n", 5, &v), -1);
	cr_assert_eq(rb_resp_value("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
				   40, &v),
		     -1);
}

Test(wire, message_push_fast_path)
{
	const char *m = "*3\r\n$7\r\nmessage\r\n$3\r\nfoo\r\n$4\r\nb\r\nr\r\n";
	size_t n = strlen(m);
	struct rb_view t, p;
	for (size_t k = 0; k < n; k++)
		cr_assert_eq(rb_resp_message(m, k, &t, &p), 0, "prefix %zu", k);
	cr_assert_eq(rb_resp_message(m, n, &t, &p), (ssize_t)n);
	cr_assert_eq(t.len, 3);
	cr_assert(!memcmp(t.p, "foo", 3));
	cr_assert_eq(p.len, 4);
	cr_assert(!memcmp(p.p, "b\r\nr", 4));
	const char *sub = "*3\r\n$9\r\nsubscribe\r\n$3\r\nfoo\r\n:1\r\n";
	cr_assert_eq(rb_resp_message(sub, strlen(sub), &t, &p), -1);
	cr_assert_eq(rb_resp_message(":1\r\n", 4, &t, &p), -1);
}

Test(wire, resp_count_keeps_partial_tail)
{
	const char *s = ":1\r\n:2\r\n-ERR x\r\n+OK\r\n$3\r\nabc\r\n:4";
	uint64_t nr, ne;
	ssize_t used = rb_resp_count(s, strlen(s), &nr, &ne);
	cr_assert_eq(nr, 5);
	cr_assert_eq(ne, 1);
	cr_assert_eq(used, (ssize_t)strlen(s) - 2);
	cr_assert_eq(rb_resp_count("?x\r\n", 4, &nr, &ne), -1);
}

Test(wire, nats_ops)
{
	struct rb_nats op;
	const char *m = "MSG foo.bar 7 5\r\nhe\r\no\r\n";
	size_t n = strlen(m);
	for (size_t k = 0; k < n; k++)
		cr_assert_eq(rb_nats_parse(m, k, &op), 0, "prefix %zu", k);
	cr_assert_eq(rb_nats_parse(m, n, &op), (ssize_t)n);
	cr_assert_eq(op.op, RB_NATS_MSG);
	cr_assert_eq(op.subject.len, 7);
	cr_assert_eq(op.payload.len, 5);
	cr_assert(!memcmp(op.payload.p, "he\r\no", 5));
	const char *r = "MSG a 1 reply.to 2\r\nxy\r\n";
	cr_assert_eq(rb_nats_parse(r, strlen(r), &op), (ssize_t)strlen(r));
	cr_assert_eq(op.payload.len, 2);
	cr_assert_eq(rb_nats_parse("PING\r\n", 6, &op), 6);
	cr_assert_eq(op.op, RB_NATS_PING);
	cr_assert_eq(rb_nats_parse("PONG\r\n", 6, &op), 6);
	cr_assert_eq(op.op, RB_NATS_PONG);
	cr_assert_eq(rb_nats_parse("+OK\r\n", 5, &op), 5);
	cr_assert_eq(op.op, RB_NATS_OK);
	cr_assert_eq(rb_nats_parse("-ERR 'x'\r\n", 10, &op), 10);
	cr_assert_eq(op.op, RB_NATS_ERR);
	cr_assert_eq(op.payload.len, 3);
	cr_assert_eq(rb_nats_parse("INFO {\"a\":1}\r\n", 14, &op), 14);
	cr_assert_eq(op.op, RB_NATS_INFO);
	cr_assert_eq(rb_nats_parse("WHAT\r\n", 6, &op), -1);
	cr_assert_eq(rb_nats_parse("MSG a 1 x\r\n", 11, &op), -1);
}

Test(wire, stamp_roundtrip_and_fixed_dec)
{
	char b[RB_STAMP_LEN];
	rb_stamp_put(b, 513, 7, 0xdeadbeef, 0x0123456789abcdefULL);
	struct rb_stamp s;
	rb_stamp_get(b, &s);
	cr_assert_eq(s.pub, 513);
	cr_assert_eq(s.topic, 7);
	cr_assert_eq(s.seq, 0xdeadbeef);
	cr_assert_eq(s.ts, 0x0123456789abcdefULL);
	char d[11] = { 0 };
	rb_put_fixed_dec(d, 10, 42);
	cr_assert_str_eq(d, "0000000042");
}
