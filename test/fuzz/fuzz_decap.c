/*
 * fuzz_decap — libFuzzer target for the tunnel decoder (decap.h).
 *
 * data[0] picks the kind asked for (vxlan, gretap, gre, erspan, auto),
 * data[1] the outer link type (every supported one plus one that is not),
 * data[2..] is the frame, copied into a buffer of exactly its length so
 * that a read past it shows under ASan. decap_frame runs on the whole frame
 * and on every prefix of it, and decap_erspan_ts on what it found. A broken
 * property calls abort(), so the fuzzer and replay.c both see it:
 *   - an inner frame lies inside the captured bytes, caplen <= origlen;
 *   - what is found is what was asked for (auto: any of them);
 *   - an inner IP packet says 4 or 6 in its first nibble, as its ethertype;
 *   - only ERSPAN has an ERSPAN type, a session id fits in 10 bits, a VNI in
 *     24;
 *   - a prefix that decodes decodes the same: the same inner start and id,
 *     its captured part cut at the prefix; once the whole frame decodes,
 *     every prefix that holds the headers does too, its inner frame cut at
 *     the prefix or where the outer headers end, whichever is first.
 */
#include "decap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int s_linktypes[] = {1, 101, 228, 229, 113, 276, 105};

#define S_NLINKTYPES (sizeof s_linktypes / sizeof s_linktypes[0])

static void s_check(decap_kind_t kind, const uint8_t *pkt, uint32_t caplen, decap_reason_t r,
                    const decap_t *d)
{
    if (r == DECAP_ID || (unsigned)r >= DECAP_NREASONS)
        abort();
    if (r != DECAP_OK) {
        if (d->data || d->caplen || d->has_id)
            abort();
        return;
    }
    if (d->data < pkt || d->data > pkt + caplen || d->caplen > (uint32_t)(pkt + caplen - d->data) ||
        d->caplen > d->origlen)
        abort();
    if (kind != DECAP_AUTO && d->found != kind)
        abort();
    if (d->found < DECAP_VXLAN || d->found > DECAP_ERSPAN)
        abort();
    if (d->inner_ip) {
        if (d->caplen < 1)
            abort();
        unsigned v = d->data[0] >> 4;
        if (!((v == 4 && d->ethertype == 0x0800) || (v == 6 && d->ethertype == 0x86dd)))
            abort();
        if (d->found != DECAP_GRE && d->found != DECAP_ERSPAN)
            abort();
    }
    if ((d->erspan_type != 0) != (d->found == DECAP_ERSPAN) || d->erspan_type > 3)
        abort();
    if (d->found == DECAP_ERSPAN && d->id > 0x3ff)
        abort();
    if (d->found == DECAP_VXLAN && (!d->has_id || d->id > 0xffffff))
        abort();
    uint64_t ts = 0;
    if (decap_erspan_ts(d, 1700000000123456789ull, &ts) && d->erspan_type != 3)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size - 2 > 65535)
        return 0;
    decap_kind_t kind = (decap_kind_t)(DECAP_VXLAN + data[0] % 5);
    int linktype = s_linktypes[data[1] % S_NLINKTYPES];
    uint32_t caplen = (uint32_t)(size - 2);
    uint8_t *pkt = malloc(caplen ? caplen : 1);
    if (!pkt)
        return 0;
    memcpy(pkt, data + 2, caplen);
    decap_t whole;
    decap_reason_t rw = decap_frame(kind, linktype, pkt, caplen, caplen, &whole);
    s_check(kind, pkt, caplen, rw, &whole);
    size_t start = rw == DECAP_OK ? (size_t)(whole.data - pkt) : 0;
    for (uint32_t len = 0; len < caplen; len++) {
        uint8_t *cut = malloc(len ? len : 1);
        if (!cut)
            break;
        memcpy(cut, pkt, len);
        decap_t d;
        decap_reason_t r = decap_frame(kind, linktype, cut, len, caplen, &d);
        s_check(kind, cut, len, r, &d);
        if (rw == DECAP_OK && len >= start + (whole.inner_ip ? 1 : 0) && r != DECAP_OK)
            abort();
        if (r == DECAP_OK &&
            (rw != DECAP_OK || (size_t)(d.data - cut) != start || d.id != whole.id ||
             d.found != whole.found || d.origlen != whole.origlen ||
             d.caplen != (len - start < whole.caplen ? len - start : whole.caplen)))
            abort();
        free(cut);
    }
    free(pkt);
    return 0;
}
