/*
 * dlq — the dead-letter pcapng writer of the capture agent, on top of the
 * shared pcapng writer.
 */
#include "dlq.h"

#include "pcapng.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dlq_t {
    char path[4096];
    char dir[4096];
    char ifname[WIRE_NAME_MAX * 2 + 2];
    char description[600];
    uint16_t linktype;
    int fd;
    pcapng_writer_t *writer;
    char error[4200];
};

dlq_t *dlq_new(const char *dir, const char *node, uint64_t epoch, uint16_t linktype,
               const char *ifname, const char *description)
{
    dlq_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = -1;
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    snprintf(self->path, sizeof self->path, "%s/%s-%" PRIu64 ".pcapng", dir, node, epoch);
    snprintf(self->ifname, sizeof self->ifname, "%s/%s", node, ifname);
    snprintf(self->description, sizeof self->description, "dead letters of %s: %s", node,
             description);
    self->linktype = linktype;
    return self;
}

void dlq_destroy(dlq_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dlq_t *self = *self_p;
    pcapng_writer_destroy(&self->writer);
    if (self->fd >= 0)
        close(self->fd);
    free(self);
    *self_p = NULL;
}

static int s_fail(dlq_t *self, int rc, const char *what)
{
    snprintf(self->error, sizeof self->error, "DLQ_DIR: %s: %s: %s", self->path, what,
             strerror(-rc));
    return rc;
}

static int s_open(dlq_t *self)
{
    self->fd = open(self->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (self->fd < 0)
        return s_fail(self, -errno, "cannot create");
    self->writer = pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, WIRE_SNAPLEN_MAX,
                                     "tapmesh-capture " TAPMESH_VERSION " dead letters", 0,
                                     pcapng_sink_fd, &self->fd);
    if (!self->writer)
        return s_fail(self, -ENOMEM, "cannot write");
    int rc =
        pcapng_writer_add_interface(self->writer, self->linktype, self->ifname, self->description);
    return rc < 0 ? s_fail(self, rc, "cannot write") : 0;
}

int dlq_write(dlq_t *self, const batch_t *b)
{
    if (!self->writer) {
        int rc = s_open(self);
        if (rc < 0)
            return rc;
    }
    size_t off = 0;
    wire_packet_t p;
    while (wire_packets_next(b->buf, b->len, &off, &p)) {
        int rc = pcapng_writer_packet(self->writer, 0, p.ts_ns, p.caplen, p.origlen, p.data, NULL);
        if (rc < 0)
            return s_fail(self, rc, "cannot write");
    }
    int rc = pcapng_writer_flush(self->writer);
    if (rc < 0)
        return s_fail(self, rc, "cannot write");
    if (fsync(self->fd) < 0 && errno != EINVAL)
        return s_fail(self, -errno, "cannot sync");
    return 0;
}

const char *dlq_path(const dlq_t *self)
{
    return self->path;
}

const char *dlq_error(const dlq_t *self)
{
    return self->error;
}
