/*
 * crc32 — the table-driven byte-at-a-time form; the table is a constant
 * computed once (pthread_once, so the HTTP thread may use it too).
 */
#include "crc32.h"

#include <pthread.h>

static uint32_t s_table[256];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        s_table[i] = c;
    }
}

uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    pthread_once(&s_once, s_init);
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = s_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}
