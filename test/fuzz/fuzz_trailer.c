/*
 * fuzz_trailer — libFuzzer target for the Metamako trailer (trailer.h).
 * data[0..7] (big-endian) is the capture time in seconds, data[8..] the
 * frame, copied into a buffer of exactly its length so that a read past it
 * shows under ASan. A broken property calls abort():
 *   - a trailer found leaves the Ethernet header whole and lies inside the
 *     frame with its 16 bytes (20 with a new FCS);
 *   - its time is plausible: nanoseconds below 10^9, within 30 days of the
 *     capture time;
 *   - stacked trailers each begin before the one after them.
 * The same frame goes through the Arista 7280 header's reader:
 *   - a header found is a timestamp header (0xD28B, subtype 1) after the
 *     addresses or one 802.1Q tag, of one of the four versions, its length
 *     the version's, with the original EtherType after it in the frame;
 *   - its time lies within 30 days of the capture time.
 */
#include "trailer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8 || size - 8 > 65535)
        return 0;
    uint64_t sec = 0;
    for (int i = 0; i < 8; i++)
        sec = sec << 8 | data[i];
    uint64_t capture_ns = (sec % 4000000000ull) * 1000000000ull;
    uint32_t len = (uint32_t)(size - 8);
    uint8_t *frame = malloc(len ? len : 1);
    if (!frame)
        return 0;
    memcpy(frame, data + 8, len);
    trailer_t t[4];
    unsigned n = trailer_metamako_all(frame, len, capture_ns, t, 4);
    uint32_t end = len;
    for (unsigned i = 0; i < n; i++) {
        uint64_t s = t[i].ts_ns / 1000000000ull, cs = capture_ns / 1000000000ull;
        uint64_t skew = s > cs ? s - cs : cs - s;
        if (t[i].start < 14 || (uint64_t)t[i].start + 16 + (t[i].fcs ? 4 : 0) > end ||
            skew > 30ull * 86400 || s <= 3600)
            abort();
        end = t[i].start + 4;
    }
    trailer_avsp_t h;
    if (trailer_arista7280(frame, len, capture_ns, &h)) {
        uint64_t s = h.ts_ns / 1000000000ull, cs = capture_ns / 1000000000ull;
        uint64_t skew = s > cs ? s - cs : cs - s;
        bool wide = h.version == 0x0010 || h.version == 0x0110;
        bool narrow = h.version == 0x0020 || h.version == 0x0120;
        if ((h.start != 12 && h.start != 16) || (!wide && !narrow) || h.len != (wide ? 14u : 12u) ||
            (uint64_t)h.start + h.len + 2 > len || frame[h.start] != 0xd2 ||
            frame[h.start + 1] != 0x8b || frame[h.start + 2] != 0 || frame[h.start + 3] != 1 ||
            (h.start == 16 && (frame[12] != 0x81 || frame[13] != 0)) || skew > 30ull * 86400)
            abort();
    }
    free(frame);
    return 0;
}
