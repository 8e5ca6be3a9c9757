/*
 * compress — PACKETS_ZSTD frames (proto/wire-v2.md §4.1) with libzstd's
 * one-shot calls: a whole payload frame in, a whole frame out, contexts
 * reused from batch to batch.
 */
#include "compress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct compress_t {
    int level;
    ZSTD_CCtx *cctx; /* NULL at level 0 */
    ZSTD_DCtx *dctx;
};

compress_t *compress_new(int level)
{
    compress_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->level = level;
    c->dctx = ZSTD_createDCtx();
    if (level > 0)
        c->cctx = ZSTD_createCCtx();
    if (!c->dctx || (level > 0 && !c->cctx)) {
        compress_destroy(&c);
        return NULL;
    }
    if (c->cctx)
        ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level);
    return c;
}

void compress_destroy(compress_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ZSTD_freeCCtx((*self_p)->cctx);
    ZSTD_freeDCtx((*self_p)->dctx);
    free(*self_p);
    *self_p = NULL;
}

int compress_parse(const char *text, int *level, char *why, size_t whylen)
{
    if (strcmp(text, "off") == 0 || *text == '\0') {
        *level = 0;
        return 0;
    }
    if (strcmp(text, "zstd") == 0) {
        *level = COMPRESS_LEVEL_DEFAULT;
        return 0;
    }
    if (strncmp(text, "zstd:", 5) == 0) {
        char *end;
        errno = 0;
        long n = strtol(text + 5, &end, 10);
        if (text[5] >= '0' && text[5] <= '9' && *end == '\0' && errno == 0 &&
            n >= COMPRESS_LEVEL_MIN && n <= COMPRESS_LEVEL_MAX) {
            *level = (int)n;
            return 0;
        }
    }
    snprintf(why, whylen, "'%s' is not off, zstd or zstd:LEVEL (LEVEL %d..%d)", text,
             COMPRESS_LEVEL_MIN, COMPRESS_LEVEL_MAX);
    return -EINVAL;
}

size_t compress_bound(size_t len)
{
    return WIRE_ZSTD_HDR + ZSTD_compressBound(len);
}

static void s_header(uint8_t *out, uint32_t plain_len)
{
    out[0] = (uint8_t)(WIRE_SIGNATURE >> 8);
    out[1] = (uint8_t)(WIRE_SIGNATURE & 0xff);
    out[2] = WIRE_VERSION;
    out[3] = WIRE_PACKETS_ZSTD;
    out[4] = (uint8_t)(plain_len >> 24);
    out[5] = (uint8_t)(plain_len >> 16);
    out[6] = (uint8_t)(plain_len >> 8);
    out[7] = (uint8_t)plain_len;
}

bool compress_is_packed(const uint8_t *frame, size_t len)
{
    return len >= WIRE_FRAME_HDR && wire_be16(frame) == WIRE_SIGNATURE &&
           frame[2] == WIRE_VERSION && frame[3] == WIRE_PACKETS_ZSTD;
}

size_t compress_pack(compress_t *self, const uint8_t *plain, size_t len, uint8_t *out, size_t cap)
{
    if (!self->cctx || cap <= WIRE_ZSTD_HDR || len > WIRE_PAYLOAD_MAX || len <= WIRE_ZSTD_HDR + 1)
        return 0;
    /* never larger than the plain frame: what does not compress goes plain */
    size_t room = cap - WIRE_ZSTD_HDR;
    if (room > len - WIRE_ZSTD_HDR - 1)
        room = len - WIRE_ZSTD_HDR - 1;
    size_t n = ZSTD_compress2(self->cctx, out + WIRE_ZSTD_HDR, room, plain, len);
    if (ZSTD_isError(n)) {
        ZSTD_CCtx_reset(self->cctx, ZSTD_reset_session_only);
        return 0; /* mostly "dstSize_tooSmall": it does not compress */
    }
    s_header(out, (uint32_t)len);
    return WIRE_ZSTD_HDR + n;
}

wire_err_t compress_peek(const uint8_t *frame, size_t len, uint32_t *plain_len)
{
    if (len < WIRE_FRAME_HDR)
        return WIRE_ERR_TRUNCATED;
    if (wire_be16(frame) != WIRE_SIGNATURE)
        return WIRE_ERR_SIGNATURE;
    if (frame[2] != WIRE_VERSION)
        return WIRE_ERR_VERSION;
    if (frame[3] != WIRE_PACKETS_ZSTD)
        return WIRE_ERR_TYPE;
    if (len < WIRE_ZSTD_HDR + 1)
        return WIRE_ERR_TRUNCATED;
    uint32_t n = wire_be32(frame + WIRE_FRAME_HDR);
    if (n < WIRE_FRAME_HDR || n > WIRE_PAYLOAD_MAX)
        return WIRE_ERR_RANGE;
    *plain_len = n;
    return WIRE_OK;
}

wire_err_t compress_unpack(compress_t *self, const uint8_t *frame, size_t len, uint8_t *out,
                           size_t cap)
{
    uint32_t n;
    wire_err_t err = compress_peek(frame, len, &n);
    if (err != WIRE_OK)
        return err;
    if (cap != n)
        return WIRE_ERR_OVERSIZE;
    size_t got =
        ZSTD_decompressDCtx(self->dctx, out, cap, frame + WIRE_ZSTD_HDR, len - WIRE_ZSTD_HDR);
    if (ZSTD_isError(got)) {
        ZSTD_DCtx_reset(self->dctx, ZSTD_reset_session_only);
        return WIRE_ERR_ZSTD;
    }
    return got == n ? WIRE_OK : WIRE_ERR_ZSTD;
}
