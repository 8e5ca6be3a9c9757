/*
 * fuzz_frames — libFuzzer target for the frames layer (common/frames.c):
 * a multipart message as any peer may send it, received with frames_recv,
 * taken apart with frames_command, frames_payload and frames_route, and
 * sent back along the route with frames_send.
 *
 * The input is the message's parts, each a length and its bytes: one byte
 * 0..254 is the length, 255 is followed by a 2-byte big-endian length;
 * the last part takes what is left when the input ends early. It goes
 * through an inproc PAIR (ZeroMQ itself, as a ROUTER's socket hands it on).
 * Properties: every part is counted, at most FRAMES_MAX kept; framed
 * exactly when the message has the shape of proto/wire-v2.md §1 (an
 * envelope of at most FRAMES_ENVELOPE_MAX frames, the empty delimiter, a
 * command, at most one payload, and no more parts than FRAMES_MAX); the
 * command and the payload are the parts after the delimiter, byte for
 * byte; the route is the envelope (each frame cut to FRAMES_IDENTITY_MAX);
 * and route + command + payload sent back with frames_send arrive as the
 * same message, framed.
 * A broken property calls abort(), so the fuzzer and replay.c both see it.
 */
#include "frames.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parts sent at most: enough to go past FRAMES_MAX. */
#define S_PARTS_MAX (FRAMES_MAX + 8)

static void *s_ctx, *s_a, *s_b;

static void s_cleanup(void)
{
    zmq_close(s_a);
    zmq_close(s_b);
    zmq_ctx_term(s_ctx);
}

static void s_init(void)
{
    s_ctx = zmq_ctx_new();
    s_a = zmq_socket(s_ctx, ZMQ_PAIR);
    s_b = zmq_socket(s_ctx, ZMQ_PAIR);
    int zero = 0, big = 1 << 20;
    if (!s_ctx || !s_a || !s_b)
        abort();
    zmq_setsockopt(s_a, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s_b, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s_a, ZMQ_SNDHWM, &big, sizeof big);
    zmq_setsockopt(s_b, ZMQ_SNDHWM, &big, sizeof big);
    if (zmq_bind(s_a, "inproc://fuzz_frames") < 0 || zmq_connect(s_b, "inproc://fuzz_frames") < 0)
        abort();
    atexit(s_cleanup);
}

typedef struct {
    const uint8_t *data;
    size_t len;
} s_part_t;

/* The message's shape as proto/wire-v2.md §1 has it: where its delimiter
 * is, or -1 when it is not framed. */
static long s_delimiter(const s_part_t *parts, size_t n)
{
    if (n > FRAMES_MAX)
        return -1;
    size_t d = 0;
    while (d < n && parts[d].len != 0)
        d++;
    if (d == n || d > FRAMES_ENVELOPE_MAX || (n - d != 2 && n - d != 3))
        return -1;
    return (long)d;
}

static bool s_same(zmq_msg_t *m, const s_part_t *p)
{
    return zmq_msg_size(m) == p->len &&
           (p->len == 0 || memcmp(zmq_msg_data(m), p->data, p->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_ctx)
        s_init();
    s_part_t parts[S_PARTS_MAX];
    size_t n = 0, off = 0;
    while (off < size && n < S_PARTS_MAX) {
        size_t len = data[off++];
        if (len == 255) {
            len = off + 2 <= size ? (size_t)data[off] << 8 | data[off + 1] : 0;
            off += off + 2 <= size ? 2 : size - off;
        }
        if (len > size - off)
            len = size - off;
        parts[n++] = (s_part_t){data + off, len};
        off += len;
    }
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (zmq_send(s_b, parts[i].data, parts[i].len, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            abort();

    frames_t f;
    if (frames_recv(&f, s_a, ZMQ_DONTWAIT) != 0)
        abort(); /* a whole message is there */
    if (f.total != n || f.count != (n < FRAMES_MAX ? n : FRAMES_MAX))
        abort();
    for (size_t i = 0; i < f.count && i < n && n <= FRAMES_MAX; i++)
        if (!s_same(&f.part[i], &parts[i]))
            abort();
    long d = s_delimiter(parts, n);
    size_t clen = 7;
    const uint8_t *cmd = frames_command(&f, &clen);
    zmq_msg_t *payload = frames_payload(&f);
    route_t route;
    frames_route(&f, &route);
    if (d < 0) {
        if (f.framed || cmd || clen != 0 || payload || route.count != 0)
            abort();
        frames_close(&f);
        return 0;
    }
    size_t e = (size_t)d;
    if (!f.framed || f.envelope != e || route.count != e)
        abort();
    if (!cmd || clen != parts[e + 1].len || (clen && memcmp(cmd, parts[e + 1].data, clen) != 0))
        abort();
    if ((payload != NULL) != (n == e + 3) || (payload && !s_same(payload, &parts[e + 2])))
        abort();
    for (size_t i = 0; i < e; i++) {
        size_t want = parts[i].len < FRAMES_IDENTITY_MAX ? parts[i].len : FRAMES_IDENTITY_MAX;
        if (route.len[i] != want || memcmp(route.id[i], parts[i].data, want) != 0)
            abort();
    }

    /* back along the route: the same message, as far as the route keeps it */
    zmq_msg_t copy;
    if (payload) {
        zmq_msg_init(&copy);
        if (zmq_msg_copy(&copy, payload) < 0)
            abort();
    }
    uint8_t cmdbuf[1 << 16];
    memcpy(cmdbuf, cmd, clen);
    frames_close(&f);
    if (frames_send(s_a, &route, cmdbuf, clen, payload ? &copy : NULL, ZMQ_DONTWAIT) != 0)
        abort();
    frames_t back;
    if (frames_recv(&back, s_b, ZMQ_DONTWAIT) != 0)
        abort();
    if (!back.framed || back.envelope != e || back.total != n)
        abort();
    for (size_t i = 0; i < e; i++) {
        s_part_t cut = {parts[i].data,
                        parts[i].len < FRAMES_IDENTITY_MAX ? parts[i].len : FRAMES_IDENTITY_MAX};
        if (!s_same(&back.part[i], &cut))
            abort();
    }
    for (size_t i = e; i < n; i++)
        if (!s_same(&back.part[i], &parts[i]))
            abort();
    frames_close(&back);
    return 0;
}
