/*
 * crc32 — CRC-32 (IEEE 802.3, the same as zlib's crc32) for the state
 * files' records: a torn or damaged record is told from a whole one.
 */
#ifndef TAPMESH_CRC32_H
#define TAPMESH_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* The CRC of `n` bytes at `p` (crc32_ieee("", 0) == 0). Thread-safe. */
uint32_t crc32_ieee(const uint8_t *p, size_t n);

#endif
