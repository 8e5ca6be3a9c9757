/*
 * compress — zstd payload frames (proto/wire-v2.md §4.1): a PACKETS frame
 * (§4) compressed as a whole into a PACKETS_ZSTD frame, and back.
 *
 * This owns the zstd contexts; callers own every buffer. Decoding is for
 * network input: the declared length is bounded before anything is sized
 * from it, zstd writes only into the caller's buffer of that length, and a
 * frame that does not give back exactly that many bytes is refused.
 */
#ifndef TAPMESH_COMPRESS_H
#define TAPMESH_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define COMPRESS_LEVEL_MIN 1
#define COMPRESS_LEVEL_MAX 19
#define COMPRESS_LEVEL_DEFAULT 3

typedef struct compress_t compress_t;

/* Contexts for compression at `level` (COMPRESS_LEVEL_MIN..MAX) and for
 * decompression; level 0: decompression only. NULL when out of memory. */
compress_t *compress_new(int level);
void compress_destroy(compress_t **self_p);

/* Parses a COMPRESS setting: "off" (*level = 0), "zstd" (the default
 * level) or "zstd:N". Returns 0, or -EINVAL with `why` saying what is
 * wrong (the caller names the setting). */
int compress_parse(const char *text, int *level, char *why, size_t whylen);

/* The largest PACKETS_ZSTD frame a PACKETS frame of `len` bytes can give. */
size_t compress_bound(size_t len);

/* True when `frame` is a PACKETS_ZSTD frame by its header (signature,
 * version and type; nothing else is checked). */
bool compress_is_packed(const uint8_t *frame, size_t len);

/* Compresses the PACKETS frame `plain` (len bytes) into `out` (cap bytes,
 * at least compress_bound(len) to be sure). Returns the PACKETS_ZSTD
 * frame's length, or 0 when it would not be smaller than `plain` (or zstd
 * failed, or a level-0 context): then `plain` goes as it is. */
size_t compress_pack(compress_t *self, const uint8_t *plain, size_t len, uint8_t *out, size_t cap);

/* The uncompressed length a PACKETS_ZSTD frame declares. Returns WIRE_OK,
 * or the reason it is malformed: truncated (shorter than WIRE_ZSTD_HDR + 1),
 * signature, version, type (not PACKETS_ZSTD), range (the length below
 * WIRE_FRAME_HDR or above WIRE_PAYLOAD_MAX). */
wire_err_t compress_peek(const uint8_t *frame, size_t len, uint32_t *plain_len);

/* Decompresses a PACKETS_ZSTD frame into `out`, which holds exactly the
 * length compress_peek gave (`cap`). Returns WIRE_OK, compress_peek's
 * reasons, WIRE_ERR_OVERSIZE when `cap` is not that length, or
 * WIRE_ERR_ZSTD when zstd fails or gives another length. The result is a
 * frame for wire_packets_check, not yet checked. */
wire_err_t compress_unpack(compress_t *self, const uint8_t *frame, size_t len, uint8_t *out,
                           size_t cap);

#endif
