/*
 * badpeer — a hostile peer for the end-to-end tests: connects a ZeroMQ
 * DEALER to a receiver (collector or relay), sends COUNT messages that
 * break proto/wire-v2.md in one chosen way, and exits once they have left
 * (ZMQ_LINGER). Valid frames come from common/wire.h's encoder; the
 * malformed ones are those frames with bytes changed, cut or added.
 *
 *   badpeer ENDPOINT KIND COUNT [--curve SECRET SERVER] [--source ID]
 *           [--epoch N] [--seq N] [--rounds N] [--interval-ms N]
 *
 * KIND               sends (COUNT times)                         §5 reason
 * garbage            random bytes, one frame, no delimiter       framing
 * nodelim            a valid HELLO without the empty delimiter   framing
 * badsig             HELLO with signature 0x4D54                 signature
 * badversion         HELLO with version 1                        version
 * badtype            HELLO with type 99                          type
 * truncated          BATCH command cut in half (+ payload)       truncated
 * trailing           BATCH command + one byte (+ payload)        trailing
 * unknown-source     BATCH + payload, never a HELLO              source
 * oversize           HELLO, then one BATCH of exactly COUNT MiB  oversize
 * badcaplen          HELLO, then BATCHes with caplen > origlen   caplen
 * extra-frames       BATCH + two payload frames                  framing
 * flood              COUNT garbage messages, as fast as it can   framing
 * spoof              HELLO, then COUNT one-packet BATCHes with    (valid)
 *                    seq from --seq, watermark 2^64-1, and END,
 *                    for --source and --epoch (another's)
 * hello-flood        HELLOs for COUNT made-up sources             (valid)
 *                    --source-0 .. --source-(COUNT-1), each with
 *                    its own epoch, --rounds times, --interval-ms
 *                    apart
 *
 * unknown-source then waits up to 2 s for the replies, prints "refused
 * code N" for each REFUSE, and exits 0 only when COUNT REFUSEs with code 1
 * came. oversize and badcaplen wait for the WELCOME first (exit 1 without
 * one) and say END afterwards, so that the receiver's merge does not wait
 * for this source. spoof and hello-flood then wait 2 s and print what came
 * back ("replies: W welcome, A ack, R refuse"), exiting 0. Exit 2 on a
 * usage or set-up error.
 *
 * --curve SECRET SERVER: speak CurveZMQ, with the certificate in SECRET
 * (zcert, as tapmesh-keygen writes it) to the server whose key SERVER is
 * (Z85, or a certificate file). --source and --epoch: whose name and epoch
 * the messages carry (default: badpeer-KIND-PID, the time).
 */
#include "trust.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_LINGER_MS 10000
#define S_REPLY_MS 2000
#define S_MIB (1u << 20)
#define S_LINKTYPE_ETHERNET 1

static uint32_t s_rand = 2463534242u;
static char s_source[WIRE_NAME_MAX + 1];
static uint64_t s_epoch;
static wire_msg_t s_msg; /* large: not on the stack */
static uint8_t s_cmd[WIRE_COMMAND_MAX + 1];
static uint64_t s_first_seq;                 /* --seq */
static long s_rounds = 1, s_interval_ms = 0; /* --rounds, --interval-ms */

static uint32_t s_next(void)
{
    s_rand ^= s_rand << 13;
    s_rand ^= s_rand >> 17;
    s_rand ^= s_rand << 5;
    return s_rand;
}

static uint64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends `n` frames as one multipart message, blocking (the DEALER's high
 * water mark holds a flood back instead of dropping it). Returns 0 or -1
 * after printing why. */
static int s_send(void *sock, const void *const *data, const size_t *len, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (zmq_send(sock, data[i], len[i], i + 1 < n ? ZMQ_SNDMORE : 0) < 0) {
            fprintf(stderr, "badpeer: send: %s\n", zmq_strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* delimiter + command [+ payload] */
static int s_send_msg(void *sock, const uint8_t *cmd, size_t len, const uint8_t *payload,
                      size_t plen)
{
    const void *data[3] = {"", cmd, payload};
    size_t lens[3] = {0, len, plen};
    return s_send(sock, data, lens, payload ? 3 : 2);
}

/* Encodes a HELLO of this source (one Ethernet interface) into s_cmd;
 * returns its length. */
static size_t s_hello(void)
{
    memset(&s_msg, 0, sizeof s_msg);
    s_msg.type = WIRE_HELLO;
    snprintf(s_msg.source, sizeof s_msg.source, "%s", s_source);
    s_msg.epoch = s_epoch;
    snprintf(s_msg.hello.description, sizeof s_msg.hello.description, "hostile test peer");
    s_msg.hello.iface_count = 1;
    s_msg.hello.ifaces[0].linktype = S_LINKTYPE_ETHERNET;
    s_msg.hello.ifaces[0].snaplen = WIRE_SNAPLEN_MAX;
    snprintf(s_msg.hello.ifaces[0].name, sizeof s_msg.hello.ifaces[0].name, "bad0");
    return wire_encode(&s_msg, s_cmd, sizeof s_cmd);
}

/* Encodes a BATCH (no hops) into s_cmd; returns its length. */
static size_t s_batch(uint64_t seq, uint32_t packet_count, uint32_t payload_len)
{
    memset(&s_msg, 0, sizeof s_msg);
    s_msg.type = WIRE_BATCH;
    snprintf(s_msg.source, sizeof s_msg.source, "%s", s_source);
    s_msg.epoch = s_epoch;
    s_msg.batch.seq = seq;
    s_msg.batch.parts = 1;
    s_msg.batch.watermark = 0;
    s_msg.batch.packet_count = packet_count;
    s_msg.batch.payload_len = payload_len;
    return wire_encode(&s_msg, s_cmd, sizeof s_cmd);
}

/* Encodes an END that promises nothing more (next_seq 0: no batch of ours
 * was ever taken) into s_cmd; returns its length. */
static size_t s_end(void)
{
    memset(&s_msg, 0, sizeof s_msg);
    s_msg.type = WIRE_END;
    snprintf(s_msg.source, sizeof s_msg.source, "%s", s_source);
    s_msg.epoch = s_epoch;
    s_msg.progress.watermark = UINT64_MAX;
    s_msg.progress.next_seq = 0;
    return wire_encode(&s_msg, s_cmd, sizeof s_cmd);
}

/* A payload of one 60-byte packet with the given lengths (caplen bytes of
 * data follow the record). Returns its length, 0 when `cap` is too small. */
static size_t s_payload(uint8_t *buf, size_t cap, uint32_t caplen, uint32_t origlen)
{
    static const uint8_t data[256] = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 1, 1, 0x08, 0x00};
    size_t off;
    wire_packet_t pkt = {
        .ts_ns = s_now_ns(), .ifindex = 0, .caplen = caplen, .origlen = origlen, .data = data};
    if (caplen > sizeof data || !wire_packets_begin(buf, cap, &off) ||
        !wire_packets_put(buf, cap, &off, &pkt))
        return 0;
    return off;
}

/* Waits up to `ms` for one reply (delimiter + command) and decodes it into
 * s_msg. Returns 0, or -1 on timeout or a reply that does not decode. */
static int s_reply(void *sock, int64_t ms)
{
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, (long)ms) <= 0)
        return -1;
    static uint8_t parts[2][WIRE_COMMAND_MAX];
    size_t lens[2] = {0, 0}, n = 0;
    int more = 1;
    while (more) {
        int rc = zmq_recv(sock, parts[n < 2 ? n : 1], WIRE_COMMAND_MAX, 0);
        if (rc < 0)
            return -1;
        lens[n < 2 ? n : 1] = (size_t)rc;
        n++;
        size_t sz = sizeof more;
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    }
    if (n != 2 || lens[0] != 0 || lens[1] > WIRE_COMMAND_MAX) {
        fprintf(stderr, "badpeer: a reply of %zu frames, not delimiter + command\n", n);
        return -1;
    }
    wire_err_t err = wire_decode(parts[1], lens[1], &s_msg);
    if (err != WIRE_OK) {
        fprintf(stderr, "badpeer: a reply that does not decode: %s\n", wire_err_name(err));
        return -1;
    }
    return 0;
}

/* HELLO, then the WELCOME. Returns 0, or -1 after printing why. */
static int s_join(void *sock)
{
    size_t len = s_hello();
    if (s_send_msg(sock, s_cmd, len, NULL, 0) < 0)
        return -1;
    int64_t end = s_mono_ms() + S_REPLY_MS;
    int64_t left;
    while ((left = end - s_mono_ms()) > 0) {
        if (s_reply(sock, left) < 0)
            continue;
        if (s_msg.type == WIRE_WELCOME)
            return 0;
        if (s_msg.type == WIRE_REFUSE) {
            fprintf(stderr, "badpeer: HELLO refused, code %u: %s\n", s_msg.refuse.code,
                    s_msg.refuse.reason);
            return -1;
        }
    }
    fprintf(stderr, "badpeer: no WELCOME within %d ms\n", S_REPLY_MS);
    return -1;
}

static int s_garbage(void *sock, long count)
{
    uint8_t buf[256];
    for (long i = 0; i < count; i++) {
        size_t len = 1 + s_next() % sizeof buf; /* never empty: not a delimiter */
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)s_next();
        const void *data[1] = {buf};
        if (s_send(sock, data, &len, 1) < 0)
            return 1;
    }
    return 0;
}

static int s_nodelim(void *sock, long count)
{
    size_t len = s_hello();
    for (long i = 0; i < count; i++) {
        const void *data[1] = {s_cmd};
        if (s_send(sock, data, &len, 1) < 0)
            return 1;
    }
    return 0;
}

/* A HELLO with `n` header bytes from `at` replaced by `bytes`. */
static int s_bad_header(void *sock, long count, size_t at, const uint8_t *bytes, size_t n)
{
    size_t len = s_hello();
    memcpy(s_cmd + at, bytes, n);
    for (long i = 0; i < count; i++)
        if (s_send_msg(sock, s_cmd, len, NULL, 0) < 0)
            return 1;
    return 0;
}

/* A BATCH command of `delta` bytes more (or, negative, fewer) than valid,
 * with a valid payload. */
static int s_bad_length(void *sock, long count, long delta)
{
    uint8_t payload[512];
    size_t plen = s_payload(payload, sizeof payload, 60, 60);
    for (long i = 0; i < count; i++) {
        size_t len = s_batch((uint64_t)i, 1, (uint32_t)plen);
        if (delta > 0)
            memset(s_cmd + len, 0, (size_t)delta);
        len = delta < 0 ? len / 2 : len + (size_t)delta;
        if (s_send_msg(sock, s_cmd, len, payload, plen) < 0)
            return 1;
    }
    return 0;
}

static int s_unknown_source(void *sock, long count)
{
    uint8_t payload[512];
    size_t plen = s_payload(payload, sizeof payload, 60, 60);
    for (long i = 0; i < count; i++) {
        size_t len = s_batch((uint64_t)i, 1, (uint32_t)plen);
        if (s_send_msg(sock, s_cmd, len, payload, plen) < 0)
            return 1;
    }
    long refused = 0, other = 0;
    int64_t end = s_mono_ms() + S_REPLY_MS;
    int64_t left;
    while (refused + other < count && (left = end - s_mono_ms()) > 0) {
        if (s_reply(sock, left) < 0)
            continue;
        if (s_msg.type == WIRE_REFUSE) {
            printf("refused code %u\n", s_msg.refuse.code);
            fflush(stdout);
            if (s_msg.refuse.code == WIRE_REFUSE_UNKNOWN_SOURCE)
                refused++;
            else
                other++;
        } else {
            fprintf(stderr, "badpeer: reply of type %d, expected REFUSE\n", (int)s_msg.type);
            other++;
        }
    }
    if (refused != count)
        fprintf(stderr, "badpeer: %ld of %ld batches refused with code 1\n", refused, count);
    return refused == count ? 0 : 1;
}

/* HELLO, then one BATCH whose payload is exactly `mib` MiB of valid
 * records, then END. */
static int s_oversize(void *sock, long mib)
{
    if (mib < 1 || mib > 64) {
        fprintf(stderr, "badpeer: oversize: COUNT is the payload in MiB, 1..64\n");
        return 2;
    }
    size_t cap = (size_t)mib * S_MIB;
    uint8_t *payload = malloc(cap);
    if (!payload) {
        fprintf(stderr, "badpeer: out of memory\n");
        return 2;
    }
    static uint8_t data[65536];
    size_t off;
    uint32_t packets = 0;
    wire_packets_begin(payload, cap, &off);
    while (off < cap) {
        size_t left = cap - off; /* records fill the frame exactly */
        size_t caplen = left - WIRE_PKT_HDR < sizeof data ? left - WIRE_PKT_HDR : sizeof data;
        if (left - WIRE_PKT_HDR - caplen > 0 && left - WIRE_PKT_HDR - caplen < WIRE_PKT_HDR)
            caplen -= WIRE_PKT_HDR; /* leave room for a whole last record */
        wire_packet_t pkt = {.ts_ns = s_now_ns(),
                             .caplen = (uint32_t)caplen,
                             .origlen = (uint32_t)caplen,
                             .data = data};
        wire_packets_put(payload, cap, &off, &pkt);
        packets++;
    }
    int rc = 1;
    if (s_join(sock) == 0) {
        size_t len = s_batch(0, packets, (uint32_t)cap);
        if (len && s_send_msg(sock, s_cmd, len, payload, cap) == 0) {
            /* a receiver whose ZMQ_MAXMSGSIZE is smaller disconnects us;
             * the DEALER connects again and END goes on the new connection */
            usleep(300 * 1000);
            len = s_end();
            rc = s_send_msg(sock, s_cmd, len, NULL, 0) == 0 ? 0 : 1;
        }
    }
    free(payload);
    return rc;
}

static int s_badcaplen(void *sock, long count)
{
    if (s_join(sock) < 0)
        return 1;
    uint8_t payload[512];
    size_t plen = s_payload(payload, sizeof payload, 100, 60);
    for (long i = 0; i < count; i++) {
        size_t len = s_batch((uint64_t)i, 1, (uint32_t)plen);
        if (s_send_msg(sock, s_cmd, len, payload, plen) < 0)
            return 1;
    }
    size_t len = s_end();
    return s_send_msg(sock, s_cmd, len, NULL, 0) == 0 ? 0 : 1;
}

static int s_extra_frames(void *sock, long count)
{
    uint8_t payload[512];
    size_t plen = s_payload(payload, sizeof payload, 60, 60);
    for (long i = 0; i < count; i++) {
        size_t len = s_batch((uint64_t)i, 1, (uint32_t)plen);
        const void *data[4] = {"", s_cmd, payload, payload};
        size_t lens[4] = {0, len, plen, plen};
        if (s_send(sock, data, lens, 4) < 0)
            return 1;
    }
    return 0;
}

/* Waits S_REPLY_MS for replies and prints how many of each kind came. */
static void s_count_replies(void *sock)
{
    long welcome = 0, ack = 0, refuse = 0;
    int64_t end = s_mono_ms() + S_REPLY_MS;
    int64_t left;
    while ((left = end - s_mono_ms()) > 0) {
        if (s_reply(sock, left) < 0)
            continue;
        welcome += s_msg.type == WIRE_WELCOME;
        ack += s_msg.type == WIRE_ACK;
        refuse += s_msg.type == WIRE_REFUSE;
    }
    printf("replies: %ld welcome, %ld ack, %ld refuse\n", welcome, ack, refuse);
    fflush(stdout);
}

/* Another source's HELLO, batches (one packet each, stamped now, promising
 * everything: watermark 2^64-1) and END, without waiting for answers. */
static int s_spoof(void *sock, long count)
{
    size_t len = s_hello();
    if (s_send_msg(sock, s_cmd, len, NULL, 0) < 0)
        return 1;
    uint8_t payload[512];
    size_t plen = s_payload(payload, sizeof payload, 60, 60);
    for (long i = 0; i < count; i++) {
        len = s_batch(s_first_seq + (uint64_t)i, 1, (uint32_t)plen);
        s_msg.batch.watermark = UINT64_MAX;
        len = wire_encode(&s_msg, s_cmd, sizeof s_cmd);
        if (!len || s_send_msg(sock, s_cmd, len, payload, plen) < 0)
            return 1;
    }
    len = s_end();
    if (s_send_msg(sock, s_cmd, len, NULL, 0) < 0)
        return 1;
    s_count_replies(sock);
    return 0;
}

/* HELLOs for `count` made-up sources, --rounds times. */
static int s_hello_flood(void *sock, long count)
{
    char prefix[41];
    snprintf(prefix, sizeof prefix, "%.40s", s_source);
    uint64_t epoch = s_epoch;
    for (long r = 0; r < s_rounds; r++) {
        if (r > 0)
            usleep((useconds_t)s_interval_ms * 1000);
        for (long i = 0; i < count; i++) {
            snprintf(s_source, sizeof s_source, "%.40s-%ld", prefix, i);
            s_epoch = epoch + (uint64_t)i;
            size_t len = s_hello();
            if (s_send_msg(sock, s_cmd, len, NULL, 0) < 0)
                return 1;
        }
    }
    s_count_replies(sock);
    return 0;
}

/* --curve SECRET SERVER: the socket speaks CurveZMQ. 0, or -1 after
 * printing why. */
static int s_curve(void *sock, const char *secret, const char *server)
{
    static trust_cert_t cert;
    char why[256], key[TRUST_KEY_LEN + 1];
    if (trust_cert_read(secret, &cert, why, sizeof why) < 0 || !*cert.secret_key) {
        fprintf(stderr, "badpeer: --curve %s: %s\n", secret, *why ? why : "no secret key in it");
        return -1;
    }
    snprintf(key, sizeof key, "%s", server);
    if (strlen(server) != TRUST_KEY_LEN) {
        static trust_cert_t peer;
        if (trust_cert_read(server, &peer, why, sizeof why) < 0) {
            fprintf(stderr, "badpeer: --curve %s: %s\n", server, why);
            return -1;
        }
        snprintf(key, sizeof key, "%s", peer.public_key);
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, cert.public_key, TRUST_KEY_LEN) < 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, cert.secret_key, TRUST_KEY_LEN) < 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, key, TRUST_KEY_LEN) < 0) {
        fprintf(stderr, "badpeer: --curve: %s\n", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static int s_usage(void)
{
    fprintf(stderr, "usage: badpeer ENDPOINT KIND COUNT [--curve SECRET SERVER] [--source ID]\n"
                    "               [--epoch N] [--seq N] [--rounds N] [--interval-ms N]\n"
                    "KIND: garbage nodelim badsig badversion badtype truncated trailing\n"
                    "      unknown-source oversize (COUNT = MiB) badcaplen extra-frames flood\n"
                    "      spoof hello-flood\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return s_usage();
    const char *endpoint = argv[1], *kind = argv[2];
    char *end;
    long count = strtol(argv[3], &end, 10);
    if (*end || count < 1 || count > 100000000)
        return s_usage();

    s_epoch = s_now_ns();
    s_rand ^= (uint32_t)s_epoch ^ (uint32_t)getpid();
    if (!s_rand)
        s_rand = 1;
    snprintf(s_source, sizeof s_source, "badpeer-%.32s-%ld", kind, (long)getpid());
    const char *secret = NULL, *server = NULL;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--curve") == 0 && i + 2 < argc) {
            secret = argv[++i];
            server = argv[++i];
        } else if (strcmp(a, "--source") == 0 && i + 1 < argc) {
            snprintf(s_source, sizeof s_source, "%s", argv[++i]);
        } else if (strcmp(a, "--epoch") == 0 && i + 1 < argc) {
            s_epoch = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--seq") == 0 && i + 1 < argc) {
            s_first_seq = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--rounds") == 0 && i + 1 < argc) {
            s_rounds = strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--interval-ms") == 0 && i + 1 < argc) {
            s_interval_ms = strtol(argv[++i], NULL, 10);
        } else {
            return s_usage();
        }
    }

    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    int linger = S_LINGER_MS;
    if (sock && secret && s_curve(sock, secret, server) < 0)
        return 2;
    if (!sock || zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_connect(sock, endpoint) < 0) {
        fprintf(stderr, "badpeer: %s: %s\n", endpoint, zmq_strerror(errno));
        return 2;
    }

    int rc;
    if (strcmp(kind, "garbage") == 0 || strcmp(kind, "flood") == 0)
        rc = s_garbage(sock, count);
    else if (strcmp(kind, "nodelim") == 0)
        rc = s_nodelim(sock, count);
    else if (strcmp(kind, "badsig") == 0)
        rc = s_bad_header(sock, count, 0, (const uint8_t[]){0x4D, 0x54}, 2); /* swapped */
    else if (strcmp(kind, "badversion") == 0)
        rc = s_bad_header(sock, count, 2, (const uint8_t[]){1}, 1); /* before HELLO had settled */
    else if (strcmp(kind, "badtype") == 0)
        rc = s_bad_header(sock, count, 3, (const uint8_t[]){99}, 1);
    else if (strcmp(kind, "truncated") == 0)
        rc = s_bad_length(sock, count, -1);
    else if (strcmp(kind, "trailing") == 0)
        rc = s_bad_length(sock, count, 1);
    else if (strcmp(kind, "unknown-source") == 0)
        rc = s_unknown_source(sock, count);
    else if (strcmp(kind, "oversize") == 0)
        rc = s_oversize(sock, count);
    else if (strcmp(kind, "badcaplen") == 0)
        rc = s_badcaplen(sock, count);
    else if (strcmp(kind, "extra-frames") == 0)
        rc = s_extra_frames(sock, count);
    else if (strcmp(kind, "spoof") == 0)
        rc = s_spoof(sock, count);
    else if (strcmp(kind, "hello-flood") == 0)
        rc = s_hello_flood(sock, count);
    else
        rc = s_usage();

    zmq_close(sock); /* waits up to ZMQ_LINGER for what is queued */
    zmq_ctx_term(ctx);
    return rc;
}
