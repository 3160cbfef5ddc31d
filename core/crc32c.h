/* crc32c.h - CRC-32C (Castagnoli), the checksum of log records on disk.
 *
 * rmq_crc32c uses the SSE4.2 crc32 instruction when the CPU has it
 * (detected once, at the first call) and a slicing-by-8 table otherwise;
 * both compute the same function (tests/test_segfile.c checks them against
 * each other and against the standard check value: "123456789" ->
 * 0xE3069283). Thread-safe, allocation-free.
 */
#ifndef RMQ_CRC32C_H
#define RMQ_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes at p, continuing from crc (0 for a fresh one): the
 * usual pre- and post-inversion are done inside, so
 * rmq_crc32c(rmq_crc32c(0, a, na), b, nb) == CRC of a then b. */
uint32_t rmq_crc32c(uint32_t crc, const void *p, size_t n);

/* rmq_crc32c(rmq_crc32c(0, h16, 16), p, n) in one call: 16 bytes of
 * fields, then a record. */
uint32_t rmq_crc32c_16(const void *h16, const void *p, size_t n);

/* The table implementation, always available (for tests). */
uint32_t rmq_crc32c_sw(uint32_t crc, const void *p, size_t n);

/* Whether rmq_crc32c uses the hardware instruction. */
bool rmq_crc32c_hw(void);

#endif
