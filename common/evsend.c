/*
 * evsend — queue and socket of the event streams. The queue is one buffer
 * of whole lines, sent from its front and compacted when its end is
 * reached; nothing is allocated after evsend_new.
 */
#include "evsend.h"

#include "cfg.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_BACKOFF_MIN_MS 100
#define S_BACKOFF_MAX_MS 10000
#define S_STREAM_WRITE 65536 /* bytes per write on a stream */
#define S_SENDS_MAX 256      /* sends per pump: bounded work per pass */
#define S_LOG_EVERY_MS 10000 /* a failing send is logged at most this often */
#define S_STALL_MS 10        /* a full socket is tried again this much later */

typedef enum { S_STDOUT, S_UDP, S_TCP } s_kind_t;
typedef enum { S_DOWN, S_CONNECTING, S_UP } s_state_t;

enum { S_DROP_FULL, S_DROP_LONG, S_DROP_SEND, S_DROP_DISC, S_DROP_COUNT_ };
static const char *const s_drop_names[] = {"queue_full", "too_long", "send_error", "disconnected"};

struct evsend_t {
    evsend_opts_t opts;
    char to[256];
    s_kind_t kind;
    s_state_t state;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t retry_ms, backoff_ms;
    int64_t logged_ms; /* last failure logged */
    int64_t stall_ms;  /* the socket or pipe was full: not tried again before */
    char *q;           /* queue: bytes [head, tail) */
    size_t head, tail, cap;
    size_t lines;     /* whole lines queued (a line begun on a stream counts) */
    int64_t since_ms; /* when the oldest queued line came; -1 when empty */
    metrics_t *metrics;
    struct {
        metric_id_t sent, bytes, dropped[S_DROP_COUNT_], connected;
    } m;
};

size_t evsend_pack(const char *buf, size_t len, size_t max_bytes, unsigned max_lines,
                   unsigned *nlines)
{
    size_t used = 0;
    unsigned n = 0;
    while (n < max_lines && used < len) {
        const char *nl = memchr(buf + used, '\n', len - used);
        if (!nl)
            break;
        size_t end = (size_t)(nl - buf) + 1;
        if (end > max_bytes)
            break;
        used = end;
        n++;
    }
    *nlines = n;
    return used;
}

static void s_drop(evsend_t *self, int why, uint64_t lines)
{
    metrics_add(self->metrics, self->m.dropped[why], lines);
}

static void s_log_failure(evsend_t *self, int64_t now_ms, const char *what, int err)
{
    if (self->logged_ms >= 0 && now_ms - self->logged_ms < S_LOG_EVERY_MS)
        return;
    self->logged_ms = now_ms;
    log_warn("EVENTS_TO=%s: %s: %s", self->to, what, strerror(err));
}

static void s_close(evsend_t *self)
{
    if (self->fd >= 0 && self->kind != S_STDOUT)
        close(self->fd);
    self->fd = -1;
}

static int s_socket(evsend_t *self, int type)
{
    int fd = socket(self->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    self->fd = fd;
    return 0;
}

evsend_t *evsend_new(const evsend_opts_t *opts, metrics_t *metrics, const char *service, char *err,
                     size_t errlen)
{
    evsend_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->opts = *opts;
    self->fd = -1;
    self->since_ms = -1;
    self->logged_ms = -1;
    self->metrics = metrics;
    snprintf(self->to, sizeof self->to, "%s", opts->to);
    if (opts->batch < 1)
        self->opts.batch = 1;
    if (opts->interval_ms < 1)
        self->opts.interval_ms = 1;
    const char *to = opts->to;
    char why[512];
    if (strcmp(to, "-") == 0) {
        self->kind = S_STDOUT;
        self->fd = STDOUT_FILENO;
        self->state = S_UP;
    } else if (strncmp(to, "udp://", 6) == 0 || strncmp(to, "tcp://", 6) == 0) {
        self->kind = to[0] == 'u' ? S_UDP : S_TCP;
        const char *hp = to + 6;
        if (hp[0] == ':' || hp[0] == '*' || !hp[0]) {
            snprintf(err, errlen, "EVENTS_TO=%s: a host is needed (where the events go)", to);
            goto err;
        }
        if (cfg_addrport_parse(hp, &self->addr, &self->addrlen, why, sizeof why) < 0) {
            snprintf(err, errlen, "EVENTS_TO=%s: %s", to, why);
            goto err;
        }
        if (((struct sockaddr_in *)&self->addr)->sin_port == 0) {
            snprintf(err, errlen, "EVENTS_TO=%s: port 0", to);
            goto err;
        }
        if (self->kind == S_UDP) {
            int rc = s_socket(self, SOCK_DGRAM);
            if (rc == 0 && connect(self->fd, (struct sockaddr *)&self->addr, self->addrlen) < 0)
                rc = -errno;
            if (rc < 0) {
                snprintf(err, errlen, "EVENTS_TO=%s: %s", to, strerror(-rc));
                goto err;
            }
            self->state = S_UP;
        } else {
            self->state = S_DOWN; /* the first pump connects */
        }
    } else {
        snprintf(err, errlen,
                 "EVENTS_TO=%s: expected - (standard output), udp://HOST:PORT or "
                 "tcp://HOST:PORT",
                 to);
        goto err;
    }
    self->cap = opts->queue_bytes;
    self->q = malloc(self->cap);
    if (!self->q) {
        snprintf(err, errlen, "EVENTS_QUEUE_KB: out of memory");
        goto err;
    }
    char name[128];
    snprintf(name, sizeof name, "tapmesh_%s_events_sent_total", service);
    self->m.sent = metrics_counter(metrics, name, "Events sent (EVENTS_TO)", NULL);
    snprintf(name, sizeof name, "tapmesh_%s_events_sent_bytes_total", service);
    self->m.bytes = metrics_counter(metrics, name, "Bytes of events sent", NULL);
    snprintf(name, sizeof name, "tapmesh_%s_events_dropped_total", service);
    for (int i = 0; i < S_DROP_COUNT_; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", s_drop_names[i]);
        self->m.dropped[i] = metrics_counter(
            metrics, name,
            "Events not sent: the queue was full (EVENTS_QUEUE_KB), a line longer than a "
            "datagram, a send refused, a line cut by a lost connection",
            labels);
    }
    self->m.connected = -1;
    if (self->kind == S_TCP) {
        snprintf(name, sizeof name, "tapmesh_%s_events_connected", service);
        self->m.connected =
            metrics_gauge(metrics, name, "1 while the TCP connection of EVENTS_TO is up", NULL);
    }
    self->backoff_ms = S_BACKOFF_MIN_MS;
    return self;
err:
    evsend_destroy(&self);
    return NULL;
}

void evsend_destroy(evsend_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    evsend_t *self = *self_p;
    s_close(self);
    free(self->q);
    free(self);
    *self_p = NULL;
}

size_t evsend_queued(const evsend_t *self)
{
    return self->lines;
}

int evsend_line(evsend_t *self, const char *line, size_t len, int64_t now_ms)
{
    if (self->kind == S_UDP && len > self->opts.datagram_bytes) {
        s_drop(self, S_DROP_LONG, 1);
        return -EMSGSIZE;
    }
    if (self->tail + len > self->cap && self->head > 0) {
        memmove(self->q, self->q + self->head, self->tail - self->head);
        self->tail -= self->head;
        self->head = 0;
    }
    if (self->tail + len > self->cap) {
        s_drop(self, S_DROP_FULL, 1);
        return -ENOBUFS;
    }
    memcpy(self->q + self->tail, line, len);
    self->tail += len;
    if (self->lines++ == 0)
        self->since_ms = now_ms;
    return 0;
}

/* Removes `bytes` holding `lines` lines from the front of the queue. */
static void s_consume(evsend_t *self, size_t bytes, unsigned lines, int64_t now_ms)
{
    self->head += bytes;
    self->lines -= lines;
    if (self->head == self->tail) {
        self->head = self->tail = 0;
        self->lines = 0;
        self->since_ms = -1;
    } else if (lines) {
        self->since_ms = now_ms; /* what is left waits at most an interval more */
    }
}

static unsigned s_count_lines(const char *p, size_t n)
{
    unsigned c = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
        c++;
    return c;
}

static void s_tcp_down(evsend_t *self, int64_t now_ms, const char *what, int err)
{
    s_log_failure(self, now_ms, what, err);
    s_close(self);
    self->state = S_DOWN;
    self->retry_ms = now_ms + self->backoff_ms;
    self->backoff_ms =
        self->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : self->backoff_ms * 2;
    metrics_set(self->metrics, self->m.connected, 0);
    /* a line begun on the lost connection cannot be finished on the next */
    if (self->head > 0 && self->q[self->head - 1] != '\n') {
        const char *nl = memchr(self->q + self->head, '\n', self->tail - self->head);
        size_t rest = (size_t)(nl - (self->q + self->head)) + 1; /* queued lines are whole */
        s_consume(self, rest, 1, now_ms);
        s_drop(self, S_DROP_DISC, 1);
    }
}

/* Moves the TCP connection along; true when it is up. */
static bool s_tcp_ready(evsend_t *self, int64_t now_ms)
{
    if (self->state == S_DOWN) {
        if (now_ms < self->retry_ms)
            return false;
        int rc = s_socket(self, SOCK_STREAM);
        if (rc == 0 && connect(self->fd, (struct sockaddr *)&self->addr, self->addrlen) < 0 &&
            errno != EINPROGRESS)
            rc = -errno;
        if (rc < 0) {
            s_tcp_down(self, now_ms, "connect", -rc);
            return false;
        }
        self->state = S_CONNECTING;
    }
    if (self->state == S_CONNECTING) {
        struct pollfd p = {.fd = self->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) <= 0)
            return false;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(self->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            s_tcp_down(self, now_ms, "connect", soerr);
            return false;
        }
        self->state = S_UP;
        self->backoff_ms = S_BACKOFF_MIN_MS;
        metrics_set(self->metrics, self->m.connected, 1);
        log_info("EVENTS_TO=%s: connected", self->to);
    }
    return true;
}

/* One send from the front of the queue: a datagram, or a write on the
 * stream. Returns true when it moved something and more may go. */
static bool s_send_one(evsend_t *self, int64_t now_ms)
{
    const char *front = self->q + self->head;
    size_t avail = self->tail - self->head;
    if (self->kind == S_UDP) {
        unsigned n;
        size_t len = evsend_pack(front, avail, self->opts.datagram_bytes, self->opts.batch, &n);
        if (len == 0)
            return false; /* cannot happen: lines are checked when queued */
        ssize_t w = send(self->fd, front, len, MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            self->stall_ms = now_ms + S_STALL_MS;
            return false;
        }
        if (w < 0) {
            s_log_failure(self, now_ms, "send", errno);
            s_drop(self, S_DROP_SEND, n);
        } else {
            metrics_add(self->metrics, self->m.sent, n);
            metrics_add(self->metrics, self->m.bytes, len);
        }
        s_consume(self, len, n, now_ms);
        return true;
    }
    /* a stream: up to `batch` lines, the rest of a line begun included */
    unsigned n;
    size_t len = evsend_pack(front, avail, S_STREAM_WRITE, self->opts.batch, &n);
    if (len == 0) /* a line begun, or one longer than a write */
        len = avail < S_STREAM_WRITE ? avail : S_STREAM_WRITE;
    ssize_t w;
    if (self->kind == S_STDOUT) {
        struct pollfd p = {.fd = self->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLOUT)) {
            self->stall_ms = now_ms + S_STALL_MS;
            return false;
        }
        /* a pipe that polls writable takes PIPE_BUF bytes without blocking */
        if (len > 4096)
            len = 4096;
        w = write(self->fd, front, len);
    } else {
        w = send(self->fd, front, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        self->stall_ms = now_ms + S_STALL_MS;
        return false;
    }
    if (w < 0) {
        if (self->kind == S_TCP) {
            s_tcp_down(self, now_ms, "send", errno);
        } else {
            /* standard output went away: what is queued cannot go anywhere */
            s_log_failure(self, now_ms, "write", errno);
            s_drop(self, S_DROP_SEND, self->lines);
            s_consume(self, avail, (unsigned)self->lines, now_ms);
        }
        return false;
    }
    unsigned whole = s_count_lines(front, (size_t)w);
    metrics_add(self->metrics, self->m.sent, whole);
    metrics_add(self->metrics, self->m.bytes, (uint64_t)w);
    s_consume(self, (size_t)w, whole, now_ms);
    return true;
}

void evsend_pump(evsend_t *self, int64_t now_ms, bool flush)
{
    if (self->kind == S_TCP && !s_tcp_ready(self, now_ms))
        return;
    if (now_ms < self->stall_ms && !flush)
        return;
    bool due = flush || (self->lines && now_ms - self->since_ms >= self->opts.interval_ms);
    for (int i = 0; i < S_SENDS_MAX && self->tail > self->head; i++) {
        if (!due && self->lines < self->opts.batch)
            break;
        if (!s_send_one(self, now_ms))
            break;
    }
}

int64_t evsend_next_deadline(const evsend_t *self, int64_t now_ms)
{
    int64_t next = INT64_MAX;
    if (self->lines)
        next = self->lines >= self->opts.batch ? now_ms : self->since_ms + self->opts.interval_ms;
    if (self->kind == S_TCP && self->state == S_DOWN && self->retry_ms < next)
        next = self->retry_ms;
    if (self->kind == S_TCP && self->state == S_CONNECTING)
        next = now_ms + 10; /* the connection's outcome: checked by polling */
    return next < self->stall_ms ? self->stall_ms : next;
}
