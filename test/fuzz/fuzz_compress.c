/*
 * fuzz_compress — libFuzzer target for PACKETS_ZSTD frames (common/
 * compress.c, proto/wire-v2.md §4.1) as a receiver meets them: the input is
 * a payload frame from the network. Properties: compress_peek and
 * compress_unpack agree on the header's reasons; a declared length outside
 * WIRE_FRAME_HDR..WIRE_PAYLOAD_MAX is refused before any buffer is sized
 * from it; unpack writes only inside the buffer of the declared length
 * (ASan sees the rest) and says WIRE_OK only with exactly that many bytes;
 * what it gives is then checked as any payload; and a plain frame packed
 * and unpacked again comes back byte for byte.
 * A broken property calls abort(), so the fuzzer and replay.c both see it.
 */
#include "compress.h"
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Declared lengths above this are not decompressed here (the fuzzer's
 * memory): still checked against the bound. */
#define S_FUZZ_PLAIN_MAX (4u << 20)

static compress_t *s_c;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_c && !(s_c = compress_new(1)))
        abort();
    uint32_t declared = 0;
    wire_err_t peek = compress_peek(data, size, &declared);
    if (peek == WIRE_OK && (declared < WIRE_FRAME_HDR || declared > WIRE_PAYLOAD_MAX))
        abort();
    if (peek != WIRE_OK) {
        uint8_t one[WIRE_FRAME_HDR];
        if (compress_unpack(s_c, data, size, one, sizeof one) != peek)
            abort();
    } else if (declared <= S_FUZZ_PLAIN_MAX) {
        uint8_t *out = malloc(declared);
        if (!out)
            abort();
        wire_err_t err = compress_unpack(s_c, data, size, out, declared);
        if (err != WIRE_OK && err != WIRE_ERR_ZSTD)
            abort();
        if (err == WIRE_OK) {
            /* the result is judged as any payload frame */
            (void)wire_packets_check(out, declared, 1, 1, NULL, NULL);
        }
        /* a buffer of another length is refused, never written past */
        if (declared > WIRE_FRAME_HDR &&
            compress_unpack(s_c, data, size, out, declared - 1) != WIRE_ERR_OVERSIZE)
            abort();
        free(out);
    }
    /* the input as a plain frame's records: packed and back, byte for byte */
    if (size <= S_FUZZ_PLAIN_MAX) {
        size_t len = WIRE_FRAME_HDR + size, cap = compress_bound(len);
        uint8_t *plain = malloc(len), *packed = malloc(cap), *back = malloc(len);
        if (!plain || !packed || !back)
            abort();
        size_t off;
        wire_packets_begin(plain, len, &off);
        memcpy(plain + off, data, size);
        size_t n = compress_pack(s_c, plain, len, packed, cap);
        if (n) {
            if (n >= len || !compress_is_packed(packed, n) ||
                compress_unpack(s_c, packed, n, back, len) != WIRE_OK ||
                memcmp(back, plain, len) != 0)
                abort();
        }
        free(plain);
        free(packed);
        free(back);
    }
    return 0;
}
