/*
 * poip — the PCAP-over-IP server (poip.h): a listener, its clients, one
 * ring of framed records shared by all of them, and the classic pcap
 * framing.
 *
 * The ring holds bytes at absolute offsets: `head` is the offset of the
 * next byte written, and a client's `pos` the offset of the next byte it
 * is sent; every pos lies in [head - size, head]. A client joins at head,
 * which is always a record boundary, so its stream is the file header and
 * then whole records.
 */
#define _GNU_SOURCE /* accept4 */
#include "poip.h"

#include "clock.h"
#include "cfg.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Connections accepted per pass at most; the rest wait for the next. */
#define S_ACCEPT_MAX 16
/* Refused connections are logged at most this often. */
#define S_LOG_EVERY_MS 10000
#define S_NAME_MAX (NI_MAXHOST + NI_MAXSERV + 4)

typedef struct {
    int fd;
    uint64_t pos;      /* next ring byte to send */
    unsigned hdr_sent; /* bytes of the file header sent */
    char name[S_NAME_MAX];
} s_client_t;

struct poip_t {
    poip_opts_t opts;
    char listen[S_NAME_MAX];
    int lfd; /* the listener, or -1 */
    unsigned port;
    uint8_t *ring;
    size_t size;
    uint64_t head;
    bool have_linktype;
    uint16_t linktype;
    uint8_t header[POIP_HEADER_SIZE];
    s_client_t *clients;
    size_t nclients;
    int64_t refused_logged_ms;
    uint64_t refused_unlogged;
    metrics_t *metrics;
    struct {
        metric_id_t clients, total, cut, refused, packets, bytes, skipped;
    } m;
};

static inline void s_put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline void s_put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

void poip_header(uint8_t out[POIP_HEADER_SIZE], uint16_t linktype, uint32_t snaplen, bool micro)
{
    s_put32(out, micro ? POIP_MAGIC_US : POIP_MAGIC_NS);
    s_put16(out + 4, 2); /* version 2.4 */
    s_put16(out + 6, 4);
    s_put32(out + 8, 0);  /* thiszone */
    s_put32(out + 12, 0); /* sigfigs */
    s_put32(out + 16, snaplen);
    s_put32(out + 20, linktype);
}

void poip_record_header(uint8_t out[POIP_RECORD_HEADER_SIZE], const wire_packet_t *pkt, bool micro)
{
    uint32_t frac = (uint32_t)(pkt->ts_ns % 1000000000u);
    s_put32(out, (uint32_t)(pkt->ts_ns / 1000000000u));
    s_put32(out + 4, micro ? frac / 1000u : frac);
    s_put32(out + 8, pkt->caplen);
    s_put32(out + 12, pkt->origlen);
}

static void s_metrics(poip_t *self, metrics_t *r)
{
    self->metrics = r;
    self->m.clients = metrics_gauge(r, "tapmesh_collect_pcap_over_ip_clients",
                                    "PCAP-over-IP clients connected", NULL);
    self->m.total = metrics_counter(r, "tapmesh_collect_pcap_over_ip_clients_total",
                                    "PCAP-over-IP clients accepted", NULL);
    self->m.cut = metrics_counter(
        r, "tapmesh_collect_pcap_over_ip_clients_cut_total",
        "PCAP-over-IP clients cut off for falling more than PCAP_OVER_IP_BUFFER_MB behind", NULL);
    self->m.refused = metrics_counter(
        r, "tapmesh_collect_pcap_over_ip_clients_refused_total",
        "PCAP-over-IP connections closed at once: PCAP_OVER_IP_MAX_CLIENTS were connected", NULL);
    self->m.packets =
        metrics_counter(r, "tapmesh_collect_pcap_over_ip_packets_total",
                        "Packets queued for PCAP-over-IP clients, once per client", NULL);
    self->m.bytes =
        metrics_counter(r, "tapmesh_collect_pcap_over_ip_sent_bytes_total",
                        "Bytes written to PCAP-over-IP clients' sockets, headers included", NULL);
    self->m.skipped = metrics_counter(
        r, "tapmesh_collect_pcap_over_ip_linktype_skipped_packets_total",
        "Packets not sent to PCAP-over-IP clients: their link type is not the stream's", NULL);
}

/* "host:port" or "[v6]:port" of a socket address. */
static void s_addr_name(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, outlen, "?");
        return;
    }
    snprintf(out, outlen, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

static bool s_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

static int s_listen(poip_t *self, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char why[300];
    if (cfg_addrport_parse(self->opts.listen, &ss, &len, why, sizeof why) < 0) {
        snprintf(err, errlen, "PCAP_OVER_IP=%s: %s", self->opts.listen, why);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "PCAP_OVER_IP=%s: socket: %s", self->opts.listen, strerror(e));
        return -e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        snprintf(err, errlen, "PCAP_OVER_IP=%s: %s", self->opts.listen, strerror(e));
        close(fd);
        return -e;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0) {
        s_addr_name((struct sockaddr *)&bound, blen, self->listen, sizeof self->listen);
        self->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                       : ((struct sockaddr_in *)&bound)->sin_port);
    }
    if (!s_loopback(&ss))
        log_warn("PCAP_OVER_IP=%s: not a loopback address: anyone who can reach it reads every "
                 "packet (no authentication, no encryption)",
                 self->opts.listen);
    self->lfd = fd;
    return 0;
}

poip_t *poip_new(const poip_opts_t *opts, metrics_t *metrics, char *err, size_t errlen)
{
    poip_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "PCAP_OVER_IP: out of memory");
        return NULL;
    }
    self->opts = *opts;
    self->lfd = -1;
    self->refused_logged_ms = INT64_MIN;
    self->size = opts->buffer_bytes;
    /* the ring is touched only as far as clients need it: pages come as used */
    self->ring = malloc(self->size);
    self->clients = calloc(opts->max_clients ? opts->max_clients : 1, sizeof *self->clients);
    if (!self->ring || !self->clients) {
        snprintf(err, errlen, "PCAP_OVER_IP_BUFFER_MB: out of memory");
        poip_destroy(&self);
        return NULL;
    }
    s_metrics(self, metrics);
    if (opts->listen && *opts->listen && s_listen(self, err, errlen) < 0) {
        poip_destroy(&self);
        return NULL;
    }
    return self;
}

/* Closes client `i` and moves the last one into its place: loops over the
 * clients go backwards, so that the one moved was already seen. */
static void s_drop(poip_t *self, size_t i)
{
    close(self->clients[i].fd);
    self->clients[i] = self->clients[--self->nclients];
    metrics_set(self->metrics, self->m.clients, (double)self->nclients);
}

void poip_destroy(poip_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    poip_t *self = *self_p;
    while (self->nclients)
        s_drop(self, self->nclients - 1);
    if (self->lfd >= 0)
        close(self->lfd);
    free(self->clients);
    free(self->ring);
    free(self);
    *self_p = NULL;
}

unsigned poip_port(const poip_t *self)
{
    return self->port;
}

size_t poip_clients(const poip_t *self)
{
    return self->nclients;
}

static void s_refuse(poip_t *self, int fd, const char *name)
{
    close(fd);
    metrics_add(self->metrics, self->m.refused, 1);
    int64_t now = clock_mono_ms();
    if (self->refused_logged_ms != INT64_MIN && now - self->refused_logged_ms < S_LOG_EVERY_MS) {
        self->refused_unlogged++;
        return;
    }
    log_warn("PCAP_OVER_IP: %s refused: PCAP_OVER_IP_MAX_CLIENTS (%zu) are connected "
             "(%llu more refused since the last such line)",
             name, self->opts.max_clients, (unsigned long long)self->refused_unlogged);
    self->refused_logged_ms = now;
    self->refused_unlogged = 0;
}

int poip_adopt(poip_t *self, int fd, const char *name)
{
    if (self->nclients >= self->opts.max_clients) {
        s_refuse(self, fd, name);
        return -EBUSY;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    s_client_t *c = &self->clients[self->nclients++];
    c->fd = fd;
    c->pos = self->head;
    c->hdr_sent = 0;
    snprintf(c->name, sizeof c->name, "%s", name);
    metrics_add(self->metrics, self->m.total, 1);
    metrics_set(self->metrics, self->m.clients, (double)self->nclients);
    log_info("PCAP_OVER_IP: %s connected (%zu of at most %zu)%s", c->name, self->nclients,
             self->opts.max_clients,
             self->have_linktype ? "" : "; the stream begins with the first packet");
    return 0;
}

/* Bytes client `c` has to be sent (nothing before the header is known). */
static uint64_t s_pending(const poip_t *self, const s_client_t *c)
{
    if (!self->have_linktype)
        return 0;
    return (POIP_HEADER_SIZE - c->hdr_sent) + (self->head - c->pos);
}

/* Writes what client `i` has pending, as far as its socket takes it.
 * Returns 0, or -1 after dropping a client that went away. */
static int s_send(poip_t *self, size_t i)
{
    s_client_t *c = &self->clients[i];
    while (s_pending(self, c)) {
        struct iovec iov[3];
        int n = 0;
        if (c->hdr_sent < POIP_HEADER_SIZE)
            iov[n++] = (struct iovec){self->header + c->hdr_sent, POIP_HEADER_SIZE - c->hdr_sent};
        uint64_t left = self->head - c->pos;
        if (left) {
            size_t at = (size_t)(c->pos % self->size);
            size_t first = self->size - at < left ? self->size - at : (size_t)left;
            iov[n++] = (struct iovec){self->ring + at, first};
            if (first < left)
                iov[n++] = (struct iovec){self->ring, (size_t)left - first};
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            log_info("PCAP_OVER_IP: %s went away: %s", c->name, strerror(errno));
            s_drop(self, i);
            return -1;
        }
        metrics_add(self->metrics, self->m.bytes, (uint64_t)w);
        size_t h = POIP_HEADER_SIZE - c->hdr_sent;
        if ((size_t)w < h) {
            c->hdr_sent += (unsigned)w;
            continue;
        }
        c->hdr_sent = POIP_HEADER_SIZE;
        c->pos += (uint64_t)w - h;
    }
    return 0;
}

static void s_cut(poip_t *self, size_t i)
{
    s_client_t *c = &self->clients[i];
    log_warn("PCAP_OVER_IP: %s cut off: it fell more than PCAP_OVER_IP_BUFFER_MB (%zu KiB) "
             "behind; it missed what follows",
             c->name, self->size >> 10);
    metrics_add(self->metrics, self->m.cut, 1);
    s_drop(self, i);
}

void poip_packet(poip_t *self, uint16_t linktype, const wire_packet_t *pkt)
{
    if (!self->have_linktype) {
        self->have_linktype = true;
        self->linktype = linktype;
        poip_header(self->header, linktype, WIRE_SNAPLEN_MAX, self->opts.micro);
    } else if (linktype != self->linktype) {
        metrics_add(self->metrics, self->m.skipped, 1);
        return;
    }
    if (!self->nclients)
        return; /* nobody to send it to: nothing copied */
    uint64_t n = POIP_RECORD_HEADER_SIZE + (uint64_t)pkt->caplen;
    for (size_t i = self->nclients; i-- > 0;) {
        if (self->head + n - self->clients[i].pos <= self->size)
            continue;
        if (s_send(self, i) < 0)
            continue;
        if (self->head + n - self->clients[i].pos > self->size)
            s_cut(self, i);
    }
    if (!self->nclients || n > self->size)
        return;
    uint8_t rh[POIP_RECORD_HEADER_SIZE];
    poip_record_header(rh, pkt, self->opts.micro);
    const uint8_t *parts[2] = {rh, pkt->data};
    size_t lens[2] = {sizeof rh, pkt->caplen};
    for (int k = 0; k < 2; k++) {
        size_t at = (size_t)(self->head % self->size);
        size_t first = self->size - at < lens[k] ? self->size - at : lens[k];
        memcpy(self->ring + at, parts[k], first);
        memcpy(self->ring, parts[k] + first, lens[k] - first);
        self->head += lens[k];
    }
    metrics_add(self->metrics, self->m.packets, self->nclients);
}

size_t poip_pollitems(poip_t *self, zmq_pollitem_t *items, size_t max)
{
    size_t n = 0;
    if (self->lfd >= 0 && n < max)
        items[n++] = (zmq_pollitem_t){NULL, self->lfd, ZMQ_POLLIN, 0};
    for (size_t i = 0; i < self->nclients && n < max; i++) {
        s_client_t *c = &self->clients[i];
        short ev = ZMQ_POLLIN | (s_pending(self, c) ? ZMQ_POLLOUT : 0);
        items[n++] = (zmq_pollitem_t){NULL, c->fd, ev, 0};
    }
    return n;
}

static void s_accept(poip_t *self)
{
    for (int k = 0; k < S_ACCEPT_MAX; k++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(self->lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_warn("PCAP_OVER_IP=%s: accept: %s", self->opts.listen, strerror(errno));
            return;
        }
        char name[S_NAME_MAX];
        s_addr_name((struct sockaddr *)&ss, len, name, sizeof name);
        poip_adopt(self, fd, name);
    }
}

/* Reads and drops what client `i` sent. Returns -1 after dropping a
 * client that closed or failed. */
static int s_read(poip_t *self, size_t i)
{
    s_client_t *c = &self->clients[i];
    uint8_t junk[4096];
    for (int k = 0; k < 16; k++) {
        ssize_t r = recv(c->fd, junk, sizeof junk, MSG_DONTWAIT);
        if (r > 0)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (r == 0)
            log_info("PCAP_OVER_IP: %s disconnected", c->name);
        else
            log_info("PCAP_OVER_IP: %s went away: %s", c->name, strerror(errno));
        s_drop(self, i);
        return -1;
    }
    return 0;
}

void poip_handle(poip_t *self, const zmq_pollitem_t *items, size_t n)
{
    size_t at = 0;
    bool accept = false;
    if (self->lfd >= 0 && n > 0) {
        accept = items[0].revents & ZMQ_POLLIN;
        at = 1;
    }
    /* items[at + i] is client i as poip_pollitems saw it; backwards, so
     * that a drop moves only clients already handled */
    size_t seen = n - at < self->nclients ? n - at : self->nclients;
    for (size_t i = seen; i-- > 0;) {
        short ev = items[at + i].revents;
        if (items[at + i].fd != self->clients[i].fd)
            continue; /* not the same client: poll it next time */
        if ((ev & (ZMQ_POLLIN | ZMQ_POLLERR)) && s_read(self, i) < 0)
            continue;
        if (ev & ZMQ_POLLOUT)
            s_send(self, i);
    }
    if (accept)
        s_accept(self);
}

void poip_send(poip_t *self)
{
    for (size_t i = self->nclients; i-- > 0;)
        if (s_pending(self, &self->clients[i]))
            s_send(self, i);
}

void poip_finish(poip_t *self, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    struct pollfd pfd[64];
    for (;;) {
        poip_send(self);
        size_t n = 0;
        for (size_t i = 0; i < self->nclients && n < sizeof pfd / sizeof *pfd; i++)
            if (s_pending(self, &self->clients[i]))
                pfd[n++] = (struct pollfd){self->clients[i].fd, POLLOUT, 0};
        int64_t left = end - clock_mono_ms();
        if (n == 0 || left <= 0)
            break;
        poll(pfd, n, (int)(left > 100 ? 100 : left));
    }
    size_t behind = 0;
    for (size_t i = self->nclients; i-- > 0;) {
        behind += s_pending(self, &self->clients[i]) != 0;
        s_drop(self, i);
    }
    if (behind)
        log_warn("PCAP_OVER_IP: %zu client%s closed with packets not yet sent (%d ms at exit "
                 "were not enough)",
                 behind, behind == 1 ? "" : "s", timeout_ms);
}
