/* test_common.c - unit tests of common/: number parsing (parse.h), the
 * /proc readers (procstat.h), RESP number lines (resp_num.h) and the
 * protocol's shared checks (ringmq_proto.h), hash slots (slot.h). */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "parse.h"
#include "procstat.h"
#include "resp_num.h"
#include "ringmq_proto.h"
#include "slot.h"

#define SENTINEL 0xdeadbeefULL

/* Parses s (as a whole) under unit; asserts success and the value. */
static void ok(const char *s, enum rmq_unit unit, uint64_t want)
{
	uint64_t v = SENTINEL;
	cr_assert_eq(rmq_parse_arg(s, unit, &v), 0, "'%s' (unit %d) rejected", s, (int)unit);
	cr_assert_eq(v, want, "'%s' (unit %d): %llu, want %llu", s, (int)unit,
		     (unsigned long long)v, (unsigned long long)want);
}

/* Asserts s is rejected under unit and *out left alone. */
static void bad(const char *s, enum rmq_unit unit)
{
	uint64_t v = SENTINEL;
	cr_assert_eq(rmq_parse_arg(s, unit, &v), -1, "'%s' (unit %d) accepted as %llu", s,
		     (int)unit, (unsigned long long)v);
	cr_assert_eq(v, SENTINEL, "'%s': out written on failure", s);
}

static const enum rmq_unit all_units[] = { RMQ_UNIT_NONE, RMQ_UNIT_BYTES, RMQ_UNIT_COUNT };

Test(parse, plain_digits_in_every_unit)
{
	for (size_t u = 0; u < 3; u++) {
		ok("0", all_units[u], 0);
		ok("7", all_units[u], 7);
		ok("4096", all_units[u], 4096);
		ok("000000000000000000000000042", all_units[u], 42); /* leading zeros, > 20 chars */
		ok("18446744073709551615", all_units[u], UINT64_MAX);
	}
}

Test(parse, overflow_is_an_error)
{
	for (size_t u = 0; u < 3; u++) {
		bad("18446744073709551616", all_units[u]); /* UINT64_MAX + 1 */
		bad("18446744073709551620", all_units[u]);
		bad("99999999999999999999", all_units[u]);
		bad("184467440737095516150", all_units[u]);
	}
	/* after the unit: 2^34 G = 2^64 */
	ok("17179869183G", RMQ_UNIT_BYTES, 17179869183ULL << 30);
	bad("17179869184G", RMQ_UNIT_BYTES);
	bad("17179869184GB", RMQ_UNIT_BYTES);
	ok("18014398509481983K", RMQ_UNIT_BYTES, 18014398509481983ULL << 10);
	bad("18014398509481984K", RMQ_UNIT_BYTES);
	ok("18446744073709551K", RMQ_UNIT_COUNT, 18446744073709551000ULL);
	bad("18446744073709552K", RMQ_UNIT_COUNT);
	bad("18446744074G", RMQ_UNIT_COUNT);
	bad("18446744073709551615K", RMQ_UNIT_COUNT);
}

Test(parse, junk_is_an_error)
{
	static const char *const junk[] = {
		"",     "-1",    "+1",    " 1",  "1 ",  "\t1",  "1\n",   "0x10", "1.5",
		"1e3",  "1,000", "1_000", "abc", "1a",  "a1",   "K",     "M",    "G",
		"KB",   "B",     "b",     "1KK", "1BK", "1BB",  "1KBB",  "1T",   "1P",
		"1KiB", "1Ki",   "-0",    "1-",  "--1", "\xff", "1\x7f",
	};
	for (size_t u = 0; u < 3; u++)
		for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
			bad(junk[i], all_units[u]);
}

Test(parse, bytes_units_are_powers_of_1024)
{
	ok("1K", RMQ_UNIT_BYTES, 1024);
	ok("64K", RMQ_UNIT_BYTES, 65536);
	ok("64k", RMQ_UNIT_BYTES, 65536);
	ok("64KB", RMQ_UNIT_BYTES, 65536);
	ok("64kb", RMQ_UNIT_BYTES, 65536);
	ok("64Kb", RMQ_UNIT_BYTES, 65536);
	ok("2M", RMQ_UNIT_BYTES, 2ULL << 20);
	ok("2mB", RMQ_UNIT_BYTES, 2ULL << 20);
	ok("1G", RMQ_UNIT_BYTES, 1ULL << 30);
	ok("1g", RMQ_UNIT_BYTES, 1ULL << 30);
	ok("1024G", RMQ_UNIT_BYTES, 1ULL << 40);
	ok("100B", RMQ_UNIT_BYTES, 100);
	ok("100b", RMQ_UNIT_BYTES, 100);
	ok("0K", RMQ_UNIT_BYTES, 0);
}

Test(parse, count_units_are_powers_of_1000)
{
	ok("1k", RMQ_UNIT_COUNT, 1000);
	ok("100K", RMQ_UNIT_COUNT, 100000);
	ok("1M", RMQ_UNIT_COUNT, 1000000);
	ok("2m", RMQ_UNIT_COUNT, 2000000);
	ok("3G", RMQ_UNIT_COUNT, 3000000000ULL);
	bad("1B", RMQ_UNIT_COUNT); /* B is for bytes only */
	bad("1KB", RMQ_UNIT_COUNT);
}

Test(parse, none_takes_no_unit)
{
	bad("1K", RMQ_UNIT_NONE);
	bad("1k", RMQ_UNIT_NONE);
	bad("1M", RMQ_UNIT_NONE);
	bad("1G", RMQ_UNIT_NONE);
	bad("1B", RMQ_UNIT_NONE);
}

Test(parse, exactly_n_bytes)
{
	/* the server parses arguments in place: not NUL-terminated */
	uint64_t v = SENTINEL;
	cr_assert_eq(rmq_parse_uint("64Kxyz", 3, RMQ_UNIT_BYTES, &v), 0);
	cr_assert_eq(v, 65536);
	cr_assert_eq(rmq_parse_uint("123456", 2, RMQ_UNIT_NONE, &v), 0);
	cr_assert_eq(v, 12);
	v = SENTINEL;
	cr_assert_eq(rmq_parse_uint("123", 0, RMQ_UNIT_NONE, &v), -1);
	cr_assert_eq(rmq_parse_uint("12\0"
				    "3",
				    4, RMQ_UNIT_NONE, &v),
		     -1); /* a NUL inside */
	cr_assert_eq(rmq_parse_uint("1K\0", 3, RMQ_UNIT_BYTES, &v), -1);
	cr_assert_eq(v, SENTINEL);
}

Test(proto, name_rule)
{
	char name[RMQ_TOPIC_MAX_LEN + 2];
	memset(name, 'a', sizeof(name));
	cr_assert(rmq_name_valid(name, 1));
	cr_assert(rmq_name_valid(name, RMQ_TOPIC_MAX_LEN));
	cr_assert_not(rmq_name_valid(name, RMQ_TOPIC_MAX_LEN + 1));
	cr_assert_not(rmq_name_valid(name, 0));
	cr_assert(rmq_name_valid("orders.eu-west/1:x", 18));
	cr_assert(rmq_name_valid("caf\xc3\xa9", 5)); /* UTF-8: bytes >= 0x80 */
	cr_assert(rmq_name_valid("\x80\xff", 2));
	cr_assert(rmq_name_valid("!~", 2));
	/* every refused byte, at every offset of a 17-byte name (both the
	 * 8-byte and the byte-at-a-time loop) */
	for (int c = 0; c < 256; c++) {
		bool refused = c <= ' ' || c == 0x7f;
		for (size_t at = 0; at < 17; at++) {
			memset(name, 'x', 17);
			name[at] = (char)c;
			cr_assert_eq(rmq_name_valid(name, 17), !refused, "byte 0x%02x at %zu", c,
				     at);
		}
	}
}

Test(proto, onfull_words)
{
	enum rmq_onfull p = RMQ_ONFULL_DEFAULT;
	cr_assert(rmq_onfull_parse("reject", 6, &p));
	cr_assert_eq(p, RMQ_ONFULL_REJECT);
	cr_assert(rmq_onfull_parse("DROP-OLDEST", 11, &p));
	cr_assert_eq(p, RMQ_ONFULL_DROP_OLDEST);
	cr_assert(rmq_onfull_parse("Reject", 6, &p));
	cr_assert_eq(p, RMQ_ONFULL_REJECT);
	static const char *const no[] = { "",        "rejec",  "rejects", "drop", "drop_oldest",
					  "default", " reject" };
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		p = RMQ_ONFULL_DEFAULT;
		cr_assert_not(rmq_onfull_parse(no[i], strlen(no[i]), &p), "'%s' accepted", no[i]);
		cr_assert_eq(p, RMQ_ONFULL_DEFAULT);
	}
	cr_assert_not(rmq_onfull_parse("rejectX", 6 + 1, &p));
	cr_assert(rmq_onfull_parse("rejectX", 6, &p)); /* exactly n bytes */
	cr_assert_str_eq(rmq_onfull_word(RMQ_ONFULL_REJECT), "reject");
	cr_assert_str_eq(rmq_onfull_word(RMQ_ONFULL_DEFAULT), "reject");
	cr_assert_str_eq(rmq_onfull_word(RMQ_ONFULL_DROP_OLDEST), "drop-oldest");
	cr_assert_null(rmq_onfull_word((enum rmq_onfull)7));
	/* the client library's ABI */
	cr_assert_eq(RMQ_ONFULL_DEFAULT, 0);
	cr_assert_eq(RMQ_ONFULL_REJECT, 1);
	cr_assert_eq(RMQ_ONFULL_DROP_OLDEST, 2);
}

/* --- /proc --- */

/* A real /proc/PID/stat line (52 fields) with utime ut and stime st and
 * the given comm. */
static void stat_line(char *buf, size_t cap, const char *comm, const char *ut, const char *st)
{
	snprintf(buf, cap,
		 "4242 (%s) S 1 4242 4242 0 -1 4194560 1234 0 5 0 %s %s 0 0 20 0 9 0 "
		 "123456 987654321 2345 18446744073709551615 1 1 0 0 0 0 0 4096 17416 0 0 0 "
		 "17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		 comm, ut, st);
}

Test(procstat, parse_cpu)
{
	char buf[1024];
	uint64_t ut = SENTINEL, st = SENTINEL;
	stat_line(buf, sizeof(buf), "ringmq-server", "1500", "250");
	cr_assert_eq(rmq_procstat_parse_cpu(buf, &ut, &st), 0);
	cr_assert_eq(ut, 1500);
	cr_assert_eq(st, 250);
	/* comm may hold blanks and parentheses: fields count from the last ')' */
	stat_line(buf, sizeof(buf), "a) 1 2 (b c", "7", "8");
	cr_assert_eq(rmq_procstat_parse_cpu(buf, &ut, &st), 0);
	cr_assert_eq(ut, 7);
	cr_assert_eq(st, 8);
	stat_line(buf, sizeof(buf), "x", "18446744073709551615", "0");
	cr_assert_eq(rmq_procstat_parse_cpu(buf, &ut, &st), 0);
	cr_assert_eq(ut, UINT64_MAX);
	/* stime is last and the text ends there */
	cr_assert_eq(rmq_procstat_parse_cpu("1 (x) R 1 1 1 0 -1 0 0 0 0 0 3 4", &ut, &st), 0);
	cr_assert_eq(ut, 3);
	cr_assert_eq(st, 4);
}

Test(procstat, parse_cpu_junk)
{
	static const char *const junk[] = {
		"",
		"garbage",
		"1 (x",                                                /* no ')' */
		"1 (x) R 1 1 1 0 -1 0 0 0 0 0",                        /* ends before utime */
		"1 (x) R 1 1 1 0 -1 0 0 0 0 0 3",                      /* ends before stime */
		"1 (x) R 1 1 1 0 -1 0 0 0 0 0 3 ",                     /* stime empty */
		"1 (x) R 1 1 1 0 -1 0 0 0 0 0 -3 4",                   /* negative */
		"1 (x) R 1 1 1 0 -1 0 0 0 0 0 3x 4",                   /* junk in utime */
		"1 (x) R 1 1 1 0 -1 0 0 0 0 0 3 4.5",                  /* junk in stime */
		"1 (x) R 1 1 1 0 -1 0 0 0 0 0 18446744073709551616 4", /* overflow */
		"1 (x)R 1 1 1 0 -1 0 0 0 0 0 3 4",                     /* no blank after ')' */
	};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		uint64_t ut = SENTINEL, st = SENTINEL;
		cr_assert_eq(rmq_procstat_parse_cpu(junk[i], &ut, &st), -1, "accepted '%s'",
			     junk[i]);
		cr_assert(ut == SENTINEL && st == SENTINEL, "'%s': written on failure", junk[i]);
	}
}

Test(procstat, parse_status_field)
{
	const char *status = "Name:\tringmq-server\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\n"
			     "VmRSSx:\t1 kB\nThreads:\t9\n";
	cr_assert_eq(rmq_procstatus_parse_field(status, "VmRSS"), 12345);
	cr_assert_eq(rmq_procstatus_parse_field(status, "VmPeak"), 200000);
	cr_assert_eq(rmq_procstatus_parse_field(status, "Threads"), 9);
	cr_assert_eq(rmq_procstatus_parse_field(status, "VmSwap"), -1); /* missing */
	cr_assert_eq(rmq_procstatus_parse_field(status, "Name"), -1);   /* no number */
	cr_assert_eq(rmq_procstatus_parse_field(status, "VmRS"), -1);   /* a prefix only */
	cr_assert_eq(rmq_procstatus_parse_field("", "VmRSS"), -1);
	cr_assert_eq(rmq_procstatus_parse_field("VmRSS:", "VmRSS"), -1);
	cr_assert_eq(rmq_procstatus_parse_field("VmRSS:\t-5 kB\n", "VmRSS"), -1);
	cr_assert_eq(rmq_procstatus_parse_field("VmRSS:\t99999999999999999999 kB\n", "VmRSS"), -1);
	cr_assert_eq(rmq_procstatus_parse_field("VmRSS:\t9223372036854775808 kB\n", "VmRSS"), -1);
	cr_assert_eq(rmq_procstatus_parse_field("VmRSS: 7", "VmRSS"),
		     7); /* last line, no newline */
}

static double process_cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(procstat, reads_this_process)
{
	/* burn 200 ms of CPU: /proc counts in ticks of 10 ms */
	volatile uint64_t x = 1;
	double t0 = process_cpu_seconds();
	while (process_cpu_seconds() - t0 < 0.2)
		for (int i = 0; i < 100000; i++)
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	double want = process_cpu_seconds(), got = rmq_proc_cpu_seconds(getpid());
	cr_assert_geq(got, 0.15, "CPU %.3f s after burning 0.2 s", got);
	cr_assert_leq(got, want + 0.05, "CPU %.3f s, the process says %.3f s", got, want);
	int64_t rss = rmq_proc_rss_kib(getpid());
	cr_assert_gt(rss, 0);
	cr_assert_lt(rss, 16 << 20, "RSS %lld KiB", (long long)rss);
}

Test(procstat, unknown_process)
{
	cr_assert_eq(rmq_proc_cpu_seconds(0), -1);
	cr_assert_eq(rmq_proc_cpu_seconds(-1), -1);
	cr_assert_eq(rmq_proc_rss_kib(0), -1);
	/* a child that has exited and been reaped */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(0);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert_eq(rmq_proc_cpu_seconds(pid), -1);
	cr_assert_eq(rmq_proc_rss_kib(pid), -1);
}

/* --- RESP number lines --- */

static void num_ok(const char *line, int64_t want)
{
	size_t len = strlen(line);
	int64_t v = -7;
	cr_assert_eq(rmq_resp_parse_num(line, len, &v), (ssize_t)len, "'%s'", line);
	cr_assert_eq(v, want, "'%s': %lld", line, (long long)v);
	/* every proper prefix is incomplete, and leaves *out alone */
	for (size_t n = 0; n < len; n++) {
		v = -7;
		cr_assert_eq(rmq_resp_parse_num(line, n, &v), 0, "'%s' cut at %zu", line, n);
		cr_assert_eq(v, -7);
	}
}

Test(resp_num, values)
{
	num_ok("0\r\n", 0);
	num_ok("7\r\n", 7);
	num_ok("1234\r\n", 1234);
	num_ok("-1\r\n", -1);
	num_ok("999999999999999999\r\n", 999999999999999999LL); /* 18 digits */
	num_ok("-999999999999999999\r\n", -999999999999999999LL);
	num_ok("000000000000000042\r\n", 42);
	/* the bytes after the line are not its business */
	int64_t v;
	cr_assert_eq(rmq_resp_parse_num("12\r\n$3\r\n", 9, &v), 4);
	cr_assert_eq(v, 12);
}

Test(resp_num, malformed)
{
	static const char *const bad_lines[] = {
		"\r\n",
		"-\r\n",
		"--1\r\n",
		"+1\r\n",
		" 1\r\n",
		"1 \r\n",
		"1x\r\n",
		"1\rx",
		"1\n",
		"1\r\r",
		"0x1\r\n",
		"1000000000000000000\r\n", /* 19 digits */
		"-1000000000000000000\r\n",
		"1234567890123456789", /* 19 digits, no CR yet: already too long */
	};
	for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		int64_t v = -7;
		cr_assert_eq(rmq_resp_parse_num(bad_lines[i], strlen(bad_lines[i]), &v), -1, "'%s'",
			     bad_lines[i]);
		cr_assert_eq(v, -7);
	}
}

/* --- slot.h: the numbers Redis's CLUSTER KEYSLOT gives --- */

static uint16_t slot_of(const char *s)
{
	return rmq_slot(s, strlen(s));
}

Test(slot, crc16_check_value)
{
	/* CRC-16/XMODEM's published check value */
	cr_assert_eq(rmq_crc16("123456789", 9), 0x31c3);
	cr_assert_eq(rmq_crc16("", 0), 0);
}

Test(slot, redis_keyslot_values)
{
	cr_assert_eq(slot_of("foo"), 12182);
	cr_assert_eq(slot_of("bar"), 5061);
	cr_assert_eq(slot_of("hello"), 866);
	cr_assert_eq(slot_of(""), 0);
	cr_assert_eq(slot_of("123456789"), 12739);
}

Test(slot, hash_tags)
{
	cr_assert_eq(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
	cr_assert_eq(slot_of("{user1000}.following"), slot_of("user1000"));
	/* Redis's documented cases: the first '{' and the next '}' */
	cr_assert_eq(slot_of("foo{bar}{zap}"), slot_of("bar"));
	cr_assert_eq(slot_of("foo{{bar}}zap"), slot_of("{bar"));
	/* an empty tag or no '}': the whole name */
	cr_assert_eq(slot_of("foo{}{bar}"), rmq_crc16("foo{}{bar}", 10) & 16383);
	cr_assert_eq(slot_of("foo{bar"), rmq_crc16("foo{bar", 7) & 16383);
}
