/*
 * trailer — the Arista 7130 (Metamako) timestamp trailer and the Arista
 * 7280 timestamp header (trailer.h). The trailer is read from the end of
 * the frame inwards, as Wireshark's dissector does, every read bounded by
 * what is left between the Ethernet header and the position reached; the
 * header through a bounded reader from the frame's start.
 */
#include "trailer.h"

#include "bytes.h"
#include "clock.h"

#include <string.h>

#define S_ETH_HEADER 14
#define S_NS 1000000000ull
#define S_MAX_SKEW_S (30ull * 24 * 3600) /* Wireshark's heuristic: 30 days */

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* `ts_ns` lies within Wireshark's 30 days of `capture_ns`. */
static bool s_near(uint64_t ts_ns, uint64_t capture_ns)
{
    uint64_t s = ts_ns / S_NS, cap_s = capture_ns / S_NS;
    return s > cap_s ? s - cap_s <= S_MAX_SKEW_S : cap_s - s <= S_MAX_SKEW_S;
}

static bool s_plausible(uint32_t sec, uint32_t nsec, uint64_t capture_ns)
{
    if (sec <= 3600 || nsec >= S_NS)
        return false;
    return s_near((uint64_t)sec * S_NS, capture_ns);
}

/* One attempt with the trailer ending at `end`. */
static bool s_try(const uint8_t *frame, uint32_t end, uint64_t capture_ns, trailer_t *out)
{
    if (end < S_ETH_HEADER + 16)
        return false;
    const uint8_t *meta = frame + end - 4;
    uint32_t sec = s_be32(frame + end - 12), nsec = s_be32(frame + end - 8);
    if (!s_plausible(sec, nsec, capture_ns))
        return false;
    uint32_t pos = end - 12; /* before the seconds */
    uint8_t flags = meta[0];
    if (flags & 2) {
        /* TLV extensions, read backwards: each word names its length in
         * words, the one with the "last" bit ends them */
        for (;;) {
            if (pos < S_ETH_HEADER + 4 + 4)
                return false;
            uint32_t word = s_be32(frame + pos - 4);
            pos -= 4;
            uint32_t words = (word >> 6) & 3;
            if ((word & 0x1f) == 0x1f)
                words = ((word >> 6) & 0x3ff) + 1;
            if ((uint64_t)words * 4 > pos - S_ETH_HEADER - 4)
                return false;
            pos -= words * 4;
            if ((word >> 5) & 1)
                break;
        }
    }
    if (pos < S_ETH_HEADER + 4)
        return false;
    out->start = pos - 4;
    out->ts_ns = (uint64_t)sec * S_NS + nsec;
    out->flags = flags;
    out->device = (uint16_t)(meta[1] << 8 | meta[2]);
    out->port = meta[3];
    return true;
}

bool trailer_metamako(const uint8_t *frame, uint32_t len, uint64_t capture_ns, trailer_t *out)
{
    memset(out, 0, sizeof *out);
    if (!frame)
        return false;
    if (s_try(frame, len, capture_ns, out))
        return true;
    if (len >= 4 && s_try(frame, len - 4, capture_ns, out)) {
        out->fcs = true;
        return true;
    }
    memset(out, 0, sizeof *out);
    return false;
}

unsigned trailer_metamako_all(const uint8_t *frame, uint32_t len, uint64_t capture_ns,
                              trailer_t *out, unsigned max)
{
    unsigned n = 0;
    while (n < max && trailer_metamako(frame, len, capture_ns, &out[n])) {
        /* the switch before saw the frame up to here, its own FCS included
         * (now this trailer's original FCS) */
        len = out[n].start + 4;
        n++;
    }
    return n;
}

/* ---- Arista 7280 header ------------------------------------------------ */

#define S_ETH_ADDRS 12
#define S_TPID_8021Q 0x8100
#define S_AVSP_TIMESTAMP 0x0001
#define S_TAI_UTC_NS ((uint64_t)TRAILER_TAI_UTC_S * S_NS)
#define S_48_WRAP_NS (65536ull * S_NS) /* the 48-bit form's seconds wrap */

bool trailer_arista7280(const uint8_t *frame, uint32_t caplen, uint64_t capture_ns,
                        trailer_avsp_t *out)
{
    memset(out, 0, sizeof *out);
    bytes_t b = bytes_view(frame, frame ? caplen : 0);
    bytes_skip(&b, S_ETH_ADDRS);
    uint32_t start = S_ETH_ADDRS;
    uint16_t etype = bytes_u16(&b);
    if (etype == S_TPID_8021Q) {
        bytes_skip(&b, 2); /* TCI */
        start += 4;
        etype = bytes_u16(&b);
    }
    if (etype != TRAILER_AVSP_ETHERTYPE || bytes_u16(&b) != S_AVSP_TIMESTAMP)
        return false;
    uint16_t version = bytes_u16(&b);
    uint64_t sec;
    switch (version) {
    case 0x0010:
    case 0x0110:
        sec = bytes_u32(&b);
        break;
    case 0x0020:
    case 0x0120:
        sec = bytes_u16(&b);
        break;
    default:
        return false;
    }
    uint32_t nsec = bytes_u32(&b);
    bytes_skip(&b, 2); /* the original EtherType: a frame follows */
    if (b.bad || nsec >= S_NS)
        return false;
    bool tai = (version & 0xff00) == 0;
    uint64_t ts = sec * S_NS + nsec;
    if ((version & 0x00f0) == 0x0020) {
        /* full seconds nearest the capture time, on the switch's timescale */
        uint64_t near = capture_ns + (tai ? S_TAI_UTC_NS : 0);
        if (near < capture_ns || near > UINT64_MAX - S_48_WRAP_NS)
            return false;
        ts = clock_nearest(ts, S_48_WRAP_NS, near);
    }
    if (tai) {
        if (ts < S_TAI_UTC_NS)
            return false;
        ts -= S_TAI_UTC_NS;
    }
    if (!s_near(ts, capture_ns))
        return false;
    out->start = start;
    out->len = (uint32_t)(b.pos - frame) - 2 - start;
    out->version = version;
    out->ts_ns = ts;
    return true;
}
