/* test_hash.c - the name hash (core/util.c): SipHash against the paper's
 * reference vectors, keyed per process, and the hash-flooding attack of
 * issue 12 item 9 replayed against it.
 *
 * The attack: the old hash (FNV-1a over 8-byte words, then murmur3's
 * finaliser, unkeyed) is invertible, so for any victim name a client can
 * compute as many other valid topic names as it likes with exactly the
 * same 64-bit hash; every one of them lands in the victim's bucket, and
 * every lookup of the victim walks them all. old_hash() below is that
 * function, kept here as the attack's reference. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"
#include "util.h"

/* SipHash-2-4, key 00 01 .. 0f, message 00 01 .. n-1 (the reference
 * implementation's vectors_sip64; n = 15 is the paper's worked example). */
static const uint64_t sip24_vectors[] = {
	0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
	0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
	0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
	0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL, 0xa129ca6149be45e5ULL,
	0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL,
};

#define REF_K0 0x0706050403020100ULL
#define REF_K1 0x0f0e0d0c0b0a0908ULL

Test(hash, siphash24_reference_vectors)
{
	unsigned char m[32];
	for (int i = 0; i < 32; i++)
		m[i] = (unsigned char)i;
	for (size_t n = 0; n < sizeof(sip24_vectors) / sizeof(sip24_vectors[0]); n++)
		cr_assert_eq(rmq_siphash24(REF_K0, REF_K1, m, n), sip24_vectors[n],
			     "SipHash-2-4 of %zu bytes: %016llx", n,
			     (unsigned long long)rmq_siphash24(REF_K0, REF_K1, m, n));
}

/* 1-3 shares the code of 2-4 with fewer rounds: it must differ from it
 * and depend on every byte and on the length. */
Test(hash, siphash13_depends_on_every_byte_and_the_length)
{
	unsigned char m[40] = { 0 };
	cr_assert_neq(rmq_siphash13(REF_K0, REF_K1, m, 15), rmq_siphash24(REF_K0, REF_K1, m, 15));
	for (size_t n = 1; n <= sizeof(m); n++) {
		uint64_t base = rmq_siphash13(REF_K0, REF_K1, m, n);
		cr_assert_neq(base, rmq_siphash13(REF_K0, REF_K1, m, n - 1), "length %zu", n);
		for (size_t i = 0; i < n; i++) {
			m[i] ^= 0x40;
			cr_assert_neq(rmq_siphash13(REF_K0, REF_K1, m, n), base, "byte %zu of %zu",
				      i, n);
			m[i] ^= 0x40;
		}
	}
}

Test(hash, same_name_hashes_differently_under_two_keys)
{
	static const char *names[] = { "orders", "a", "topic.1", "x.y.z.0123456789abcdef" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		uint64_t a = rmq_siphash13(1, 2, names[i], n), b = rmq_siphash13(3, 2, names[i], n);
		uint64_t c = rmq_siphash13(1, 4, names[i], n);
		cr_assert(a != b && a != c && b != c, "'%s' hashes alike under different keys",
			  names[i]);
	}
}

/* The process's key is not a constant: it is none of the obvious ones,
 * and the hash is stable within the process. */
Test(hash, process_key_is_random_and_stable)
{
	static const char name[] = "orders";
	uint64_t h = rmq_hash(name, 6);
	cr_assert_eq(rmq_hash(name, 6), h);
	cr_assert_neq(h, rmq_siphash13(0, 0, name, 6));
	cr_assert_neq(h, rmq_siphash13(REF_K0, REF_K1, name, 6));
	cr_assert_neq(rmq_hash("", 0), 0);
}

/* --- the attack --- */

static inline uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

#define FNV_P 0x100000001b3ULL
#define FNV_C 0xcbf29ce484222325ULL

/* The topic-name hash of main 6dbacd3, verbatim in behaviour. */
static uint64_t old_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = FNV_C ^ n;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = (h ^ w) * FNV_P;
		h ^= h >> 29;
		s += 8;
		n -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * FNV_P;
	h = fmix64(h);
	return h ? h : 1;
}

/* What the state must be before the final "(h ^ 0) * P" of a 16-byte name
 * so that its hash equals the victim's: the victim's pre-finaliser state
 * times P^-1 (fmix64 is a bijection, so equal outputs need equal inputs). */
static uint64_t inv_odd(uint64_t a)
{
	uint64_t x = a; /* Newton: each step doubles the correct low bits */
	for (int i = 0; i < 6; i++)
		x *= 2 - a * x;
	return x;
}

static uint64_t unxorshift29(uint64_t y)
{
	return y ^ (y >> 29) ^ (y >> 58);
}

static bool name_byte_ok(unsigned char c)
{
	return c > ' ' && c != 0x7f;
}

#define NCRAFT 40000
#define NAME_LEN 16

/* Fills names[NCRAFT][NAME_LEN] with distinct valid topic names whose old
 * hash equals that of victim (at most 7 bytes). */
static void craft(const char *victim, char (*names)[NAME_LEN])
{
	size_t vn = strlen(victim);
	uint64_t vw = 0;
	memcpy(&vw, victim, vn);
	uint64_t pre = (FNV_C ^ vn ^ vw) * FNV_P; /* victim, before fmix64 */
	uint64_t pinv = inv_odd(FNV_P);
	uint64_t x = pre * pinv;                /* state after our 2nd word */
	uint64_t want = unxorshift29(x) * pinv; /* = state after 1st ^ w2 */
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	size_t made = 0;
	while (made < NCRAFT) {
		char w1[8];
		for (int i = 0; i < 8; i++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			w1[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[seed % 36];
		}
		uint64_t a;
		memcpy(&a, w1, 8);
		a = (FNV_C ^ NAME_LEN ^ a) * FNV_P;
		a ^= a >> 29;
		uint64_t w2 = a ^ want;
		unsigned char b[8];
		memcpy(b, &w2, 8);
		bool ok = true;
		for (int i = 0; i < 8; i++)
			ok = ok && name_byte_ok(b[i]);
		if (!ok)
			continue;
		memcpy(names[made], w1, 8);
		memcpy(names[made] + 8, b, 8);
		made++;
	}
}

Test(hash, crafted_old_collisions_spread_under_siphash, .timeout = 60)
{
	static char names[NCRAFT][NAME_LEN];
	craft("orders", names);
	const uint64_t victim_old = old_hash("orders", 6);
	const uint64_t victim = rmq_hash("orders", 6);
	/* Buckets: the topic table starts at 2^18 (topic.c); count what falls
	 * into the victim's bucket and the fullest bucket of a 2^16 table. */
	enum { BITS = 16 };
	static uint16_t load[1u << BITS];
	unsigned with_victim = 0, same_full = 0, max_load = 0;
	for (size_t i = 0; i < NCRAFT; i++) {
		cr_assert(rmq_topic_name_valid(names[i], NAME_LEN), "crafted name %zu invalid", i);
		cr_assert_eq(old_hash(names[i], NAME_LEN), victim_old,
			     "crafted name %zu does not collide under the old hash", i);
		uint64_t h = rmq_hash(names[i], NAME_LEN);
		same_full += h == victim;
		with_victim += (h & ((1u << 18) - 1)) == (victim & ((1u << 18) - 1));
		unsigned l = ++load[h & ((1u << BITS) - 1)];
		if (l > max_load)
			max_load = l;
	}
	/* Under the old hash all 40,000 share the victim's hash. Under a keyed
	 * hash they are random names: 40000 / 2^18 = 0.15 expected in the
	 * victim's bucket, and a fullest bucket of 40000 / 2^16 = 0.6 on
	 * average is about 6 (the chance of 16 or more is below 1e-9). */
	cr_assert_eq(same_full, 0);
	cr_assert_leq(with_victim, 4, "%u crafted names in the victim's bucket", with_victim);
	cr_assert_lt(max_load, 16, "fullest bucket holds %u of the crafted names", max_load);
	cr_log_info("victim bucket: %u of %d crafted names; fullest of 2^%d buckets: %u",
		    with_victim, NCRAFT, BITS, max_load);
}

static void no_wake(void *ctx, uint32_t shard) {}

/* The same names in a real topic table: all created, all found, and the
 * victim too (the table works with them; which bucket they take is the
 * test above). */
Test(hash, crafted_names_in_the_topic_table, .timeout = 60)
{
	static char names[NCRAFT][NAME_LEN];
	craft("orders", names);
	urcu_qsbr_register_thread();
	struct rmq_broker *b = rmq_broker_new(2, no_wake, NULL);
	cr_assert_eq(rmq_topic_create(b, "orders", 6, 1 << 16, RMQ_ONFULL_DROP_OLDEST), 0);
	for (size_t i = 0; i < NCRAFT; i++) {
		cr_assert_eq(
			rmq_topic_create(b, names[i], NAME_LEN, 1 << 16, RMQ_ONFULL_DROP_OLDEST),
			0);
		if (i % 1024 == 0)
			urcu_qsbr_quiescent_state();
	}
	cr_assert_eq(rmq_broker_topic_count(b), NCRAFT + 1);
	struct rmq_topic *t = rmq_topic_lookup(b, "orders", 6);
	cr_assert_not_null(t);
	cr_assert_eq(t->name_len, 6);
	for (size_t i = 0; i < NCRAFT; i += 97)
		cr_assert_not_null(rmq_topic_lookup(b, names[i], NAME_LEN));
	rmq_broker_free(b);
	urcu_qsbr_unregister_thread();
}
