/*
 * fuzz_prom — libFuzzer target for tapmesh-top's reader of the Prometheus
 * text format (services/top/prom.h) and what it takes from each sample
 * (snap.h). The text is copied into a buffer of exactly its length, so
 * that a read past it shows under ASan. A broken property calls abort():
 *   - samples and bad lines together are no more than the lines;
 *   - a sample's name and labels are NUL-terminated within their arrays,
 *     at most PROM_LABELS_MAX labels, and a name is never empty;
 *   - a first bad line is named exactly when there are bad lines.
 */
#include "prom.h"
#include "snap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(void *arg, const prom_sample_t *s)
{
    if (s->nlabels > PROM_LABELS_MAX || !memchr(s->name, '\0', sizeof s->name) || !s->name[0])
        abort();
    for (size_t i = 0; i < s->nlabels; i++)
        if (!memchr(s->labels[i].name, '\0', sizeof s->labels[i].name) ||
            !memchr(s->labels[i].value, '\0', sizeof s->labels[i].value))
            abort();
    snap_feed(arg, s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    lines += size && text[size - 1] != '\n';
    snap_t snap;
    snap_reset(&snap);
    prom_result_t res;
    prom_parse(text, size, s_check, &snap, &res);
    if (res.samples + res.bad_lines > lines || (res.bad_lines > 0) != (res.first_bad > 0) ||
        res.first_bad > lines)
        abort();
    free(text);
    return 0;
}
