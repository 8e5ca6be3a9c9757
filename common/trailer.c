/*
 * trailer — the Arista 7130 (Metamako) timestamp trailer (trailer.h). Read
 * from the end of the frame inwards, as Wireshark's dissector does, every
 * read bounded by what is left between the Ethernet header and the
 * position reached.
 */
#include "trailer.h"

#include <string.h>

#define S_ETH_HEADER 14
#define S_NS 1000000000ull
#define S_MAX_SKEW_S (30ull * 24 * 3600) /* Wireshark's heuristic: 30 days */

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool s_plausible(uint32_t sec, uint32_t nsec, uint64_t capture_ns)
{
    uint64_t cap_s = capture_ns / S_NS;
    if (sec <= 3600 || nsec >= S_NS)
        return false;
    return sec > cap_s ? sec - cap_s <= S_MAX_SKEW_S : cap_s - sec <= S_MAX_SKEW_S;
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
