/*
 * bytes — the one bounds-checked reader every decoder uses (wire codec,
 * packet decoder, journal): a position and an end, big-endian integers,
 * and a latched `bad` flag. A read past the end returns 0 and marks the
 * reader bad; every later read fails the same way, so a decoder can read a
 * whole structure and check once. Nothing is ever cast over a buffer.
 */
#ifndef TAPMESH_BYTES_H
#define TAPMESH_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const uint8_t *pos;
    const uint8_t *end;
    bool bad; /* a read went past the end */
} bytes_t;

static inline bytes_t bytes_view(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    return (bytes_t){.pos = p, .end = p ? p + len : p, .bad = false};
}

/* True when `n` more bytes are there; marks the reader bad otherwise. */
static inline bool bytes_need(bytes_t *b, size_t n)
{
    if (b->bad)
        return false;
    if ((size_t)(b->end - b->pos) < n) {
        b->bad = true;
        return false;
    }
    return true;
}

/* An unsigned big-endian integer of `n` (1..8) bytes, or 0. */
static inline uint64_t bytes_be(bytes_t *b, size_t n)
{
    if (!bytes_need(b, n))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | b->pos[i];
    b->pos += n;
    return v;
}

static inline uint8_t bytes_u8(bytes_t *b)
{
    return (uint8_t)bytes_be(b, 1);
}

static inline uint16_t bytes_u16(bytes_t *b)
{
    return (uint16_t)bytes_be(b, 2);
}

static inline uint32_t bytes_u32(bytes_t *b)
{
    return (uint32_t)bytes_be(b, 4);
}

static inline uint64_t bytes_u64(bytes_t *b)
{
    return bytes_be(b, 8);
}

static inline void bytes_skip(bytes_t *b, size_t n)
{
    if (bytes_need(b, n))
        b->pos += n;
}

/* Copies `n` bytes out (zeros when they are not there). */
static inline void bytes_copy(bytes_t *b, void *out, size_t n)
{
    if (!bytes_need(b, n)) {
        memset(out, 0, n);
        return;
    }
    memcpy(out, b->pos, n);
    b->pos += n;
}

static inline size_t bytes_left(const bytes_t *b)
{
    return (size_t)(b->end - b->pos);
}

#endif
