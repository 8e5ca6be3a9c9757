/*
 * fuzz_dlq — libFuzzer target for the dead-letter file reader
 * (services/capture/dlq-read.c, proto/dead-letters-v1.md).
 *
 * The input is a whole file, read through a memory stream. Properties:
 * open gives 1, 0 or a negative errno, and a reader only with 1; the
 * identity holds to the wire's rules (a replay sends it in a HELLO);
 * every batch is one a sender may send: part < parts <= WIRE_PARTS_MAX,
 * state 1 or 2, a payload frame that wire_packets_check accepts with its
 * `packets` records on one interface, within WIRE_PAYLOAD_MAX; the
 * reader ends (each call consumes a block), and an end or an error is
 * returned again by the next call; whole and skipped packets together
 * are no more than the file has room for.
 * A broken property calls abort(), so the fuzzer and replay.c both see it.
 */
#include "dlq-read.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The smallest EPB: 32 bytes (a packet of 0 bytes, no options). */
#define S_EPB_MIN 32u

static void s_check_text(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)s[i] < 0x20 || (uint8_t)s[i] == 0x7f)
            abort();
}

static void s_check_info(const dlq_info_t *info)
{
    char clean[WIRE_NAME_MAX + 1];
    if (!wire_name_valid(info->source) || info->epoch == 0)
        abort();
    wire_ifname_sanitize(info->ifname, clean);
    if (!info->ifname[0] || strcmp(clean, info->ifname) != 0)
        abort();
    if (info->snaplen < 1 || info->snaplen > WIRE_SNAPLEN_MAX)
        abort();
    s_check_text(info->if_description, WIRE_TEXT_MAX);
    s_check_text(info->hello_description, WIRE_TEXT_MAX);
}

static void s_check_batch(const dlq_batch_t *b)
{
    if (b->parts < 1 || b->parts > WIRE_PARTS_MAX || b->part >= b->parts)
        abort();
    if (b->state != DLQ_UNACKED && b->state != DLQ_REFUSED)
        abort();
    if (b->packets < 1 || b->packets > WIRE_PACKETS_MAX || b->len > WIRE_PAYLOAD_MAX)
        abort();
    if (wire_packets_check(b->payload, b->len, b->packets, 1, NULL, NULL) != WIRE_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0; /* fmemopen wants at least a byte */
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f)
        return 0;
    dlq_reader_t *r = NULL;
    dlq_info_t info;
    char err[512];
    int rc = dlq_reader_fopen(f, "fuzz", &r, &info, err, sizeof err);
    if (rc < -4095 || rc > 1 || (rc == 1) != (r != NULL))
        abort();
    if (rc == 1) {
        s_check_info(&info);
        dlq_batch_t b;
        uint64_t packets = 0, calls = 0;
        while ((rc = dlq_reader_next(r, &b)) == 1) {
            s_check_batch(&b);
            packets += b.packets;
            if (++calls > size / S_EPB_MIN)
                abort(); /* more batches than the file has blocks */
        }
        if (rc > 0 || rc < -4095 || dlq_reader_next(r, &b) != rc)
            abort();
        if (rc < 0 && !strstr(dlq_reader_error(r), "fuzz: offset "))
            abort();
        if (packets + dlq_reader_skipped(r) > size / S_EPB_MIN)
            abort();
        dlq_reader_close(&r);
    } else if (rc < 0 && !strstr(err, "fuzz")) {
        abort();
    }
    fclose(f);
    return 0;
}
