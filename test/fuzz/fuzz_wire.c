/*
 * fuzz_wire — libFuzzer target for the wire v2 decoders (proto/wire-v2.md).
 *
 * The first byte picks the decoder:
 *   even: data[1..] is a command frame for wire_decode; one that decodes
 *         must encode back to exactly the same bytes (the codec is
 *         canonical, wire.h); a HELLO's interface descriptions also go
 *         through wire_iface_tags_split. STATS (type 9) has seeds.
 *   odd:  data[1..4] is packet_count (big-endian, at most S_COUNT_MAX),
 *         data[5] % 65 is iface_count, data[6..] is a payload frame for
 *         wire_packets_check; one that passes must walk to exactly
 *         packet_count records, each inside the frame and within §4's
 *         rules, with the timestamps the check reported.
 * A broken property calls abort(), so the fuzzer and replay.c both see it.
 */
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_COUNT_MAX 100000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wire_msg_t s_msg;
static uint8_t s_out[WIRE_COMMAND_MAX];
static char s_plain[WIRE_TEXT_MAX + 1], s_os[WIRE_TEXT_MAX + 1], s_filter[WIRE_TEXT_MAX + 1];

static void s_command(const uint8_t *buf, size_t len)
{
    wire_err_t err = wire_decode(buf, len, &s_msg);
    if (err >= WIRE_ERR_COUNT_)
        abort();
    if (err != WIRE_OK)
        return;
    size_t out = wire_encode(&s_msg, s_out, sizeof s_out);
    if (out != len || memcmp(s_out, buf, len) != 0)
        abort();
    /* §3.1's tags: any description splits into parts no longer than itself */
    for (unsigned i = 0; s_msg.type == WIRE_HELLO && i < s_msg.hello.iface_count; i++) {
        const char *d = s_msg.hello.ifaces[i].description;
        wire_iface_tags_split(d, s_plain, s_os, s_filter);
        if (strlen(s_plain) + strlen(s_os) + strlen(s_filter) > strlen(d))
            abort();
    }
}

static void s_payload(const uint8_t *buf, size_t len, uint32_t count, unsigned ifaces)
{
    uint64_t lo = 0, hi = 0;
    wire_err_t err = wire_packets_check(buf, len, count, ifaces, &lo, &hi);
    if (err >= WIRE_ERR_COUNT_)
        abort();
    if (err != WIRE_OK)
        return;
    uint64_t wlo = UINT64_MAX, whi = 0; /* what an empty frame reports too */
    uint32_t n = 0;
    size_t off = 0;
    wire_packet_t p;
    while (wire_packets_next(buf, len, &off, &p)) {
        if (++n > count)
            abort();
        if (p.data < buf + WIRE_FRAME_HDR + WIRE_PKT_HDR || p.caplen > len ||
            (size_t)(p.data - buf) > len - p.caplen)
            abort();
        if (p.caplen > p.origlen || p.caplen > WIRE_SNAPLEN_MAX || p.ifindex >= ifaces ||
            p.ifindex >= WIRE_IFACES_MAX)
            abort();
        if (off != (size_t)(p.data - buf) + p.caplen)
            abort();
        wlo = p.ts_ns < wlo ? p.ts_ns : wlo;
        whi = p.ts_ns > whi ? p.ts_ns : whi;
    }
    if (n != count || off != len || wlo != lo || whi != hi)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if ((data[0] & 1) == 0) {
        s_command(data + 1, size - 1);
        return 0;
    }
    if (size < 6)
        return 0;
    uint32_t count =
        (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
    s_payload(data + 6, size - 6, count % (S_COUNT_MAX + 1), data[5] % (WIRE_IFACES_MAX + 1));
    return 0;
}
