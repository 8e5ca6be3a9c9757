/*
 * source-poip — packets from a PCAP-over-IP server (READ_PCAP_OVER_IP): a
 * TCP connection carrying a classic pcap stream, as `tcpdump -w - | nc -l
 * PORT`, pcap-broker or another collector's PCAP_OVER_IP serve it. libpcap
 * reads the stream (pcap_fopen_offline_with_tstamp_precision, nanosecond
 * precision); this module connects, reconnects, and keeps the agent's loop
 * from ever blocking.
 *
 * Never blocking, one thread: libpcap's reader on a blocking FILE would
 * wait in the middle of a record that TCP delivered in part, and stop the
 * loop (no acknowledgements, no heartbeats). So the socket is non-blocking
 * and its bytes land in a buffer of ours (1 MiB, allocated once); the FILE
 * libpcap reads is an unbuffered cookie stream served from that buffer, and
 * libpcap is asked for a record only once all of it is there. The record
 * header (16 bytes, 24 in the "modified" format) says how long the record
 * is: its caplen field, in the stream's byte order, is all this module reads
 * of the format (with the magic number, which says the byte order and
 * whether fractions are micro- or nanoseconds); libpcap parses the rest.
 * The file header waits likewise until its 24 bytes are there. For the same
 * reason FILTER is not handed to libpcap's reader (it reads on past a record
 * the filter rejects, into one that may not be here yet): it is compiled
 * once and run here (pcap_offline_filter). A record that does not fit the
 * buffer, or one libpcap rejects, drops the connection (logged, counted).
 * The one call that may wait is the name lookup at each attempt (bounded by
 * the resolver's timeout; a numeric address never waits).
 *
 * Connections: non-blocking connect to each address of the host in turn,
 * the name looked up again at each attempt (a server that moved). A failed
 * attempt or a lost connection waits READ_PCAP_OVER_IP_RETRY_MS, doubled
 * each time up to 30 s, reset once a stream has delivered its header. One
 * log line when an outage starts (why, and when), one when a stream is back
 * (how long it lasted: what the server sent meanwhile was missed), and
 * counters: connects, connect failures, disconnects, gaps (a stream back
 * after one was lost), refused streams by reason. TCP keepalive notices a
 * server that vanished without closing.
 *
 * The interface is the first stream's: its link type and snaplen are
 * announced once (source_poip_wait_stream blocks at start-up until they are
 * known). A later stream with another link type is refused (logged,
 * counted, dropped, tried again); pcapng streams are refused: PCAP-over-IP
 * carries classic pcap.
 */
#define _GNU_SOURCE /* fopencookie */
#include "source-int.h"

#include "clock.h"
#include "linktype.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_BUFFER (1u << 20)
#define S_RETRY_MAX_MS 30000
#define S_CONNECT_TIMEOUT_MS 5000
#define S_CONNECT_POLL_NS 10000000u /* a connection under way is looked at this often */
#define S_FILE_HEADER 24
#define S_FILTERED_MAX 4096 /* records a filter may reject in one call */

#define S_MAGIC_US 0xa1b2c3d4u
#define S_MAGIC_US_MODIFIED 0xa1b2cd34u
#define S_MAGIC_NS 0xa1b23c4du
#define S_MAGIC_PCAPNG 0x0a0d0d0au

typedef enum {
    S_WAIT,       /* no connection; the next attempt at retry_at_ms */
    S_CONNECTING, /* a non-blocking connect under way */
    S_HEADER,     /* connected, waiting for the stream's file header */
    S_STREAM,     /* reading records */
} s_state_t;

typedef enum { S_REFUSED_FORMAT, S_REFUSED_LINKTYPE, S_REFUSED_RECORD, S_NREFUSED } s_refused_t;
static const char *const s_refused_names[S_NREFUSED] = {"format", "linktype", "record"};

typedef struct {
    char addr[300]; /* READ_PCAP_OVER_IP as given */
    char host[256], port[8];
    char *filter;
    uint32_t snaplen_max; /* SNAPLEN */
    int64_t retry_ms, backoff_ms;
    metrics_t *metrics;
    metric_id_t connects, connect_failures, disconnects, gaps, refused[S_NREFUSED], connected;

    s_state_t state;
    int fd;
    struct addrinfo *ais, *ai; /* the attempt's addresses; the one tried now */
    int64_t retry_at_ms, connect_deadline_ms;
    char last_error[300]; /* why the latest address failed */

    uint8_t *buf; /* what the socket gave, not yet read by libpcap: [head, tail) */
    size_t head, tail;
    bool big_endian;   /* the stream's byte order */
    size_t rec_header; /* bytes of a record header */

    bool have_iface; /* the first stream's link type and snaplen are known */
    int dlt;
    uint32_t snaplen;
    bool have_prog;
    struct bpf_program prog;

    bool outage;                     /* an outage is under way and was logged */
    bool refused_logged[S_NREFUSED]; /* during this outage */
    bool streamed;                   /* a stream delivered its header before: a return is a gap */
    uint64_t down_wall_ns;
    int64_t down_mono_ms;
} s_poip_t;

/* ---- READ_PCAP_OVER_IP ------------------------------------------------- */

int source_poip_addr_parse(const char *text, char *host, size_t hostlen, char *port, size_t portlen,
                           char *why, size_t whylen)
{
    const char *h, *colon;
    size_t hl;
    if (strstr(text, "://")) {
        snprintf(why, whylen, "expected HOST:PORT without a scheme (e.g. 192.0.2.7:57012)");
        return -EINVAL;
    }
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            snprintf(why, whylen, "expected [IPv6 ADDRESS]:PORT (e.g. [2001:db8::7]:57012)");
            return -EINVAL;
        }
        h = text + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            snprintf(why, whylen,
                     "expected HOST:PORT (e.g. 192.0.2.7:57012, or [2001:db8::7]:57012)");
            return -EINVAL;
        }
        h = text;
        hl = (size_t)(colon - text);
        if (memchr(h, ':', hl)) {
            snprintf(why, whylen, "an IPv6 address goes in brackets: [ADDRESS]:PORT");
            return -EINVAL;
        }
    }
    if (hl == 0) {
        snprintf(why, whylen, "no host before the port");
        return -EINVAL;
    }
    if (hl >= hostlen) {
        snprintf(why, whylen, "host longer than %zu bytes", hostlen - 1);
        return -EINVAL;
    }
    for (size_t i = 0; i < hl; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '/' || ch == '[' || ch == ']') {
            snprintf(why, whylen, "the host has a character that no host name or address has");
            return -EINVAL;
        }
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    unsigned long v = 0;
    bool digits = pl > 0 && pl <= 5;
    for (size_t i = 0; digits && i < pl; i++) {
        if (p[i] < '0' || p[i] > '9')
            digits = false;
        else
            v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (!digits || v == 0 || v > 65535 || pl >= portlen) {
        snprintf(why, whylen, "port '%s' is not 1..65535", p);
        return -EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, portlen, "%lu", v);
    return 0;
}

/* ---- the stream libpcap reads ------------------------------------------- */

/* libpcap's reads, served from the buffer: never more than is there (the
 * caller made sure the whole record is), never a wait. */
static ssize_t s_cookie_read(void *cookie, char *out, size_t size)
{
    s_poip_t *p = cookie;
    size_t n = p->tail - p->head;
    if (n > size)
        n = size;
    memcpy(out, p->buf + p->head, n);
    p->head += n;
    return (ssize_t)n;
}

static int s_cookie_close(void *cookie)
{
    (void)cookie; /* the socket and the buffer are the source's */
    return 0;
}

static uint32_t s_u32(const s_poip_t *p, const uint8_t *b)
{
    if (p->big_endian)
        return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}

/* "2025-01-02T03:04:05.123456789Z" */
static void s_utc(uint64_t ns, char *out, size_t len)
{
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%09uZ", (unsigned)(ns % 1000000000u));
}

/* ---- connection states --------------------------------------------------- */

static void s_free_ais(s_poip_t *p)
{
    if (p->ais)
        freeaddrinfo(p->ais);
    p->ais = p->ai = NULL;
}

/* The connection (or the attempt) is over: the socket closed, what was
 * buffered dropped, the next attempt after the backoff. The first of an
 * outage is logged with its wall-clock time; the others only at debug. */
static void s_down(source_t *self, const char *why)
{
    s_poip_t *p = self->impl;
    int64_t now = clock_mono_ms();
    bool was_connected = p->state == S_HEADER || p->state == S_STREAM;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = self->fd = -1;
    s_free_ais(p);
    size_t partial = p->tail - p->head;
    p->head = p->tail = 0;
    if (was_connected) {
        metrics_add(p->metrics, p->disconnects, 1);
        metrics_set(p->metrics, p->connected, 0);
    } else {
        metrics_add(p->metrics, p->connect_failures, 1);
    }
    if (!p->outage) {
        p->outage = true;
        p->down_wall_ns = clock_wall_ns();
        p->down_mono_ms = now;
        char when[64];
        s_utc(p->down_wall_ns, when, sizeof when);
        log_warn("READ_PCAP_OVER_IP=%s: %s%s at %s; connecting again in %" PRId64
                 " ms, then less and less often (up to every %d s)",
                 p->addr, why, partial ? " (a record cut short)" : "", when, p->backoff_ms,
                 S_RETRY_MAX_MS / 1000);
    } else {
        log_debug("READ_PCAP_OVER_IP=%s: %s", p->addr, why);
    }
    p->retry_at_ms = now + p->backoff_ms;
    p->backoff_ms = p->backoff_ms * 2 > S_RETRY_MAX_MS ? S_RETRY_MAX_MS : p->backoff_ms * 2;
    if (p->backoff_ms < p->retry_ms)
        p->backoff_ms = p->retry_ms;
    p->state = S_WAIT;
}

/* A stream or record refused: said once per outage and reason, even when
 * the outage was already logged for another reason (a server that comes
 * back with another link type is worth a line). */
static void s_refuse(source_t *self, s_refused_t reason, const char *why)
{
    s_poip_t *p = self->impl;
    metrics_add(p->metrics, p->refused[reason], 1);
    if (p->outage && !p->refused_logged[reason])
        log_warn("READ_PCAP_OVER_IP=%s: %s", p->addr, why);
    p->refused_logged[reason] = true;
    s_down(self, why);
}

static void s_connected(source_t *self)
{
    s_poip_t *p = self->impl;
    int one = 1, idle = 10, intvl = 5, cnt = 3;
    setsockopt(p->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(p->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(p->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(p->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    s_free_ais(p);
    p->head = p->tail = 0;
    p->state = S_HEADER;
    self->fd = p->fd;
    metrics_add(p->metrics, p->connects, 1);
    metrics_set(p->metrics, p->connected, 1);
    log_debug("READ_PCAP_OVER_IP=%s: connected", p->addr);
}

/* Tries the attempt's addresses from p->ai on; without one left, the
 * attempt failed. */
static void s_connect_next(source_t *self)
{
    s_poip_t *p = self->impl;
    for (; p->ai; p->ai = p->ai->ai_next) {
        int fd = socket(p->ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(p->last_error, sizeof p->last_error, "socket: %s", strerror(errno));
            continue;
        }
        int rc = connect(fd, p->ai->ai_addr, p->ai->ai_addrlen);
        if (rc == 0 || errno == EINPROGRESS) {
            p->fd = fd;
            if (rc == 0) {
                s_connected(self);
            } else {
                p->state = S_CONNECTING;
                p->connect_deadline_ms = clock_mono_ms() + S_CONNECT_TIMEOUT_MS;
            }
            return;
        }
        snprintf(p->last_error, sizeof p->last_error, "cannot connect: %s", strerror(errno));
        close(fd);
    }
    s_down(self, p->last_error);
}

static void s_connect_start(source_t *self)
{
    s_poip_t *p = self->impl;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    s_free_ais(p);
    int rc = getaddrinfo(p->host, p->port, &hints, &p->ais);
    if (rc != 0 || !p->ais) {
        char why[400];
        snprintf(why, sizeof why, "cannot resolve %s: %s", p->host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        p->ais = NULL;
        s_down(self, why);
        return;
    }
    p->ai = p->ais;
    s_connect_next(self);
}

static void s_connect_check(source_t *self)
{
    s_poip_t *p = self->impl;
    struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};
    int n = poll(&pfd, 1, 0);
    int err = 0;
    if (n == 0) {
        if (clock_mono_ms() < p->connect_deadline_ms)
            return;
        err = ETIMEDOUT;
    } else {
        socklen_t len = sizeof err;
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
    }
    if (err == 0) {
        s_connected(self);
        return;
    }
    snprintf(p->last_error, sizeof p->last_error, "cannot connect: %s", strerror(err));
    close(p->fd);
    p->fd = -1;
    p->ai = p->ai->ai_next;
    p->state = S_WAIT;
    s_connect_next(self);
}

/* Reads what the socket has, until `need` bytes are buffered. Returns 1
 * when they are, 0 when not yet, -1 when the connection went down. */
static int s_fill(source_t *self, size_t need)
{
    s_poip_t *p = self->impl;
    size_t have = p->tail - p->head;
    if (have >= need)
        return 1;
    if (S_BUFFER - p->tail < need - have || p->head >= S_BUFFER / 2) {
        memmove(p->buf, p->buf + p->head, have);
        p->head = 0;
        p->tail = have;
    }
    for (;;) {
        ssize_t n = recv(p->fd, p->buf + p->tail, S_BUFFER - p->tail, MSG_DONTWAIT);
        if (n > 0) {
            p->tail += (size_t)n;
            if (p->tail - p->head >= need)
                return 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        char why[300];
        if (n == 0)
            snprintf(why, sizeof why, "%s",
                     p->state == S_HEADER ? "the server closed the connection before a "
                                            "pcap header"
                                          : "the server closed the connection");
        else
            snprintf(why, sizeof why, "connection lost: %s", strerror(errno));
        s_down(self, why);
        return -1;
    }
}

/* The stream's file header: a classic pcap one, read by libpcap; the
 * first sets the interface, a later one must have its link type. */
static void s_header(source_t *self)
{
    s_poip_t *p = self->impl;
    if (s_fill(self, S_FILE_HEADER) <= 0)
        return;
    const uint8_t *h = p->buf + p->head;
    uint32_t le =
        (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    uint32_t be =
        (uint32_t)h[3] | (uint32_t)h[2] << 8 | (uint32_t)h[1] << 16 | (uint32_t)h[0] << 24;
    uint32_t magic = le == S_MAGIC_US || le == S_MAGIC_NS || le == S_MAGIC_US_MODIFIED ? le : be;
    if (magic != S_MAGIC_US && magic != S_MAGIC_NS && magic != S_MAGIC_US_MODIFIED) {
        char why[200];
        if (le == S_MAGIC_PCAPNG)
            snprintf(why, sizeof why,
                     "a pcapng stream, refused: PCAP-over-IP carries classic "
                     "pcap (`tcpdump -w -` writes it)");
        else
            snprintf(why, sizeof why, "not a pcap stream (it begins %02x %02x %02x %02x), refused",
                     h[0], h[1], h[2], h[3]);
        s_refuse(self, S_REFUSED_FORMAT, why);
        return;
    }
    p->big_endian = magic == be && magic != le;
    p->rec_header = magic == S_MAGIC_US_MODIFIED ? 24 : 16;
    cookie_io_functions_t io = {.read = s_cookie_read, .close = s_cookie_close};
    FILE *file = fopencookie(p, "rb", io);
    if (!file) {
        s_refuse(self, S_REFUSED_FORMAT, strerror(errno));
        return;
    }
    setvbuf(file, NULL, _IONBF, 0); /* every byte stays in p->buf until libpcap takes it */
    char perr[PCAP_ERRBUF_SIZE] = "";
    pcap_t *pcap = pcap_fopen_offline_with_tstamp_precision(file, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (!pcap) {
        fclose(file);
        char why[PCAP_ERRBUF_SIZE + 32];
        snprintf(why, sizeof why, "stream refused: %s", perr);
        s_refuse(self, S_REFUSED_FORMAT, why);
        return;
    }
    int dlt = pcap_datalink(pcap);
    if (p->have_iface && dlt != p->dlt) {
        char why[300];
        snprintf(why, sizeof why,
                 "stream refused: link type %s (%d), where the first stream had %s (%d): the "
                 "source's interface cannot change",
                 pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : "?",
                 linktype_from_dlt(dlt),
                 pcap_datalink_val_to_name(p->dlt) ? pcap_datalink_val_to_name(p->dlt) : "?",
                 linktype_from_dlt(p->dlt));
        pcap_close(pcap);
        s_refuse(self, S_REFUSED_LINKTYPE, why);
        return;
    }
    if (self->pcap)
        pcap_close(self->pcap); /* the previous stream's */
    self->pcap = pcap;
    self->ts = magic == S_MAGIC_NS ? SOURCE_TS_PCAP_NS : SOURCE_TS_PCAP_US;
    int snap = pcap_snapshot(pcap);
    uint32_t snaplen = snap > 0 ? (uint32_t)snap : 262144u;
    if (snaplen > p->snaplen_max)
        snaplen = p->snaplen_max;
    if (!p->have_iface) {
        p->have_iface = true;
        p->dlt = dlt;
        p->snaplen = snaplen;
    }
    p->state = S_STREAM;
    p->backoff_ms = p->retry_ms;
    char when[64];
    s_utc(clock_wall_ns(), when, sizeof when);
    if (p->streamed) {
        char since[64];
        s_utc(p->down_wall_ns, since, sizeof since);
        metrics_add(p->metrics, p->gaps, 1);
        log_warn("READ_PCAP_OVER_IP=%s: a stream again at %s, after %.3f s without one (since "
                 "%s): what the server sent in between was missed",
                 p->addr, when, (double)(clock_mono_ms() - p->down_mono_ms) / 1000.0, since);
    } else {
        log_info(
            "READ_PCAP_OVER_IP=%s: connected at %s: link type %s (%d), snaplen %d, %s", p->addr,
            when, pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : "?",
            linktype_from_dlt(dlt), snap, magic == S_MAGIC_NS ? "nanoseconds" : "microseconds");
    }
    p->outage = false;
    memset(p->refused_logged, 0, sizeof p->refused_logged);
    p->streamed = true;
}

/* Advances towards a stream as far as it can without waiting. */
static void s_pump(source_t *self)
{
    s_poip_t *p = self->impl;
    for (int i = 0; i < 8; i++) {
        s_state_t before = p->state;
        switch (p->state) {
        case S_WAIT:
            if (clock_mono_ms() < p->retry_at_ms)
                return;
            s_connect_start(self);
            break;
        case S_CONNECTING:
            s_connect_check(self);
            break;
        case S_HEADER:
            s_header(self);
            break;
        case S_STREAM:
            return;
        }
        if (p->state == before)
            return;
    }
}

/* A whole record in the buffer: its length, or 0 while it is not all
 * here. */
static size_t s_whole_record(const s_poip_t *p)
{
    size_t have = p->tail - p->head;
    if (have < p->rec_header)
        return 0;
    size_t len = p->rec_header + s_u32(p, p->buf + p->head + 8);
    return have >= len ? len : 0;
}

/* The next record the filter passes, once all of it is here. */
static source_result_t s_record(source_t *self, source_packet_t *pkt)
{
    s_poip_t *p = self->impl;
    for (int i = 0; i < S_FILTERED_MAX; i++) {
        if (s_fill(self, p->rec_header) <= 0)
            return SOURCE_IDLE;
        uint32_t caplen = s_u32(p, p->buf + p->head + 8);
        if (caplen > S_BUFFER - p->rec_header) {
            char why[200];
            snprintf(why, sizeof why,
                     "a record of %" PRIu32 " bytes, more than the %u a record may have here: "
                     "connection dropped",
                     caplen, S_BUFFER - (unsigned)p->rec_header);
            s_refuse(self, S_REFUSED_RECORD, why);
            return SOURCE_IDLE;
        }
        if (s_fill(self, p->rec_header + caplen) <= 0)
            return SOURCE_IDLE;
        source_result_t r = source_read_pcap(self, pkt);
        if (r != SOURCE_PACKET) {
            char why[sizeof self->error + 64];
            snprintf(why, sizeof why, "a record libpcap refused (%s): connection dropped",
                     r == SOURCE_ERROR ? self->error : "end of stream");
            s_refuse(self, S_REFUSED_RECORD, why);
            return SOURCE_IDLE;
        }
        if (p->have_prog) {
            struct pcap_pkthdr h = {.caplen = pkt->caplen, .len = pkt->origlen};
            if (!pcap_offline_filter(&p->prog, &h, pkt->data))
                continue;
        }
        if (pkt->caplen > p->snaplen_max)
            pkt->caplen = p->snaplen_max;
        return SOURCE_PACKET;
    }
    return SOURCE_IDLE; /* s_wait_ns says a record is here */
}

/* ---- ops ----------------------------------------------------------------- */

static source_result_t s_next(source_t *self, source_packet_t *pkt)
{
    s_poip_t *p = self->impl;
    if (p->state != S_STREAM)
        s_pump(self);
    if (p->state != S_STREAM)
        return SOURCE_IDLE;
    source_result_t r = s_record(self, pkt);
    if (r != SOURCE_PACKET && p->state != S_STREAM)
        s_pump(self); /* lost: the next attempt may be due at once */
    return r;
}

static uint64_t s_wait_ns(const source_t *self)
{
    const s_poip_t *p = self->impl;
    switch (p->state) {
    case S_WAIT: {
        int64_t now = clock_mono_ms();
        return p->retry_at_ms > now ? (uint64_t)(p->retry_at_ms - now) * 1000000u : 1;
    }
    case S_CONNECTING:
        return S_CONNECT_POLL_NS;
    case S_HEADER:
        return 0; /* the socket is polled */
    case S_STREAM:
        return s_whole_record(p) ? 1 : 0;
    }
    return 0;
}

static uint32_t s_snaplen(const source_t *self)
{
    const s_poip_t *p = self->impl;
    return p->snaplen;
}

static void s_close(source_t *self)
{
    s_poip_t *p = self->impl;
    if (self->pcap) {
        pcap_close(self->pcap); /* its stream reads p->buf */
        self->pcap = NULL;
    }
    if (p->fd >= 0)
        close(p->fd);
    s_free_ais(p);
    if (p->have_prog)
        pcap_freecode(&p->prog);
    free(p->buf);
    free(p->filter);
    free(p);
}

static const source_ops_t s_ops = {
    .next = s_next, .wait_ns = s_wait_ns, .snaplen = s_snaplen, .close = s_close};

static void s_metrics(s_poip_t *p)
{
    metrics_t *m = p->metrics;
    p->connects = metrics_counter(m, "tapmesh_capture_pcap_over_ip_connects_total",
                                  "Connections made to the PCAP-over-IP server "
                                  "(READ_PCAP_OVER_IP)",
                                  NULL);
    p->connect_failures =
        metrics_counter(m, "tapmesh_capture_pcap_over_ip_connect_failures_total",
                        "Attempts to connect to the PCAP-over-IP server that failed", NULL);
    p->disconnects = metrics_counter(m, "tapmesh_capture_pcap_over_ip_disconnects_total",
                                     "Connections to the PCAP-over-IP server that ended (closed "
                                     "by the server, lost, or dropped for a refused stream)",
                                     NULL);
    p->gaps = metrics_counter(m, "tapmesh_capture_pcap_over_ip_gaps_total",
                              "Streams from the PCAP-over-IP server that came back after one "
                              "was lost: what the server sent in between was missed",
                              NULL);
    for (int r = 0; r < S_NREFUSED; r++) {
        char label[64];
        snprintf(label, sizeof label, "reason=\"%s\"", s_refused_names[r]);
        p->refused[r] = metrics_counter(
            m, "tapmesh_capture_pcap_over_ip_refused_total",
            "Streams or records from the PCAP-over-IP server refused, the connection dropped, by "
            "reason: format (not classic pcap), linktype (not the first stream's), record (one "
            "libpcap refused, or longer than 1 MiB)",
            label);
    }
    p->connected = metrics_gauge(m, "tapmesh_capture_pcap_over_ip_connected",
                                 "1 while connected to the PCAP-over-IP server", NULL);
}

source_t *source_poip_open(const source_poip_opts_t *o, char *err, size_t errlen)
{
    s_poip_t *p = calloc(1, sizeof *p);
    source_t *self = p ? source_new(&s_ops, p) : NULL;
    if (!self) {
        free(p);
        snprintf(err, errlen, "READ_PCAP_OVER_IP=%s: out of memory", o->addr);
        return NULL;
    }
    p->fd = -1;
    char why[200];
    if (source_poip_addr_parse(o->addr, p->host, sizeof p->host, p->port, sizeof p->port, why,
                               sizeof why) < 0) {
        snprintf(err, errlen, "READ_PCAP_OVER_IP=%s: %s", o->addr, why);
        goto err;
    }
    snprintf(p->addr, sizeof p->addr, "%s", o->addr);
    p->filter = strdup(o->filter ? o->filter : "");
    p->buf = malloc(S_BUFFER);
    if (!p->filter || !p->buf) {
        snprintf(err, errlen, "READ_PCAP_OVER_IP=%s: out of memory", o->addr);
        goto err;
    }
    p->snaplen_max = o->snaplen ? o->snaplen : 262144u;
    p->retry_ms = p->backoff_ms = o->retry_ms ? o->retry_ms : 1;
    p->metrics = o->metrics;
    s_metrics(p);
    p->state = S_WAIT; /* due at once */
    snprintf(self->name, sizeof self->name, "poip:%s", o->addr);
    snprintf(self->description, sizeof self->description, "PCAP-over-IP from %s%s%s%s", o->addr,
             *p->filter ? " (filter: " : "", p->filter, *p->filter ? ")" : "");
    return self;
err:
    source_close(&self);
    return NULL;
}

int source_poip_wait_stream(source_t *self, volatile const sig_atomic_t *stop, char *err,
                            size_t errlen)
{
    s_poip_t *p = self->impl;
    bool said = false;
    while (!p->have_iface) {
        if (*stop)
            return 1;
        s_pump(self);
        if (p->have_iface)
            break;
        if (!said && p->outage) {
            log_info("READ_PCAP_OVER_IP=%s: waiting for the server's first stream (its link "
                     "type is the source's)",
                     p->addr);
            said = true;
        }
        metrics_alive(p->metrics);
        uint64_t ns = s_wait_ns(self);
        int timeout = 200;
        if (ns && ns / 1000000u < (uint64_t)timeout)
            timeout = (int)(ns / 1000000u) + 1;
        struct pollfd pfd = {.fd = self->fd, .events = POLLIN};
        poll(&pfd, self->fd >= 0 ? 1 : 0, timeout); /* a signal ends it early */
    }
    if (*p->filter) {
        if (pcap_compile(self->pcap, &p->prog, p->filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
            snprintf(err, errlen, "FILTER='%s': %s (for the link type of READ_PCAP_OVER_IP=%s)",
                     p->filter, pcap_geterr(self->pcap), p->addr);
            return -EINVAL;
        }
        p->have_prog = true;
    }
    log_info("READ_PCAP_OVER_IP=%s: filter in force: %s", p->addr, *p->filter ? p->filter : "none");
    return 0;
}
