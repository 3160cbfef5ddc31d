/* slot.h - Redis Cluster's hash slots, for topics: slot = CRC16(name) mod
 * 16384, where CRC16 is the XMODEM variant Redis uses (polynomial 0x1021,
 * initial value 0) and only the part between the first '{' and the next
 * '}' is hashed when that part is not empty ("{user1000}.following" and
 * "{user1000}.followers" share a slot). The same numbers as Redis's
 * CLUSTER KEYSLOT, so Redis Cluster clients route topics as keys.
 *
 * Pure functions: no state, any thread.
 */
#ifndef RMQ_SLOT_H
#define RMQ_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define RMQ_SLOTS 16384

/* CRC16/XMODEM of len bytes at p. */
uint16_t rmq_crc16(const char *p, size_t len);

/* The hash slot (0..16383) of a key or topic name of len bytes. */
uint16_t rmq_slot(const char *key, size_t len);

#endif
