/*
 * output — the collector's sink. Every IDB carries WIRE_SNAPLEN_MAX, large
 * enough for any packet the protocol admits; a source's own snaplen goes
 * into the IDB description.
 *
 * A file appears whole: until its first flush, its bytes go to an
 * anonymous file (O_TMPFILE) in the target directory, which is linked under
 * its name once that first flush (the section header and at least one
 * interface block) is written. A process killed before then leaves nothing
 * behind; there is never an empty file or a section header alone. Where
 * the file system has no O_TMPFILE, the first flush goes to a hidden
 * temporary name that is linked the same way and removed.
 *
 * A file also ends whole: a flush hands whole blocks to the operating
 * system, and when one fails part-way (ENOSPC, EIO) output_abort cuts the
 * file back to where that flush began. Standard output redirected to a
 * regular file is cut the same way, from where the collector began writing
 * in it.
 */
#define _GNU_SOURCE /* O_TMPFILE, linkat */
#include "output.h"

#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define S_PATH_MAX 4096
/* Outputs hold captured packets: the owner writes, the group (analysts)
 * reads, nobody else; the umask may take more away, never adds. */
#define S_FILE_MODE 0640
/* an IDB: header, name, description, if_tsresol, end */
#define S_IDB_MAX (16 + 4 + 2 * WIRE_NAME_MAX + 4 + 2 * WIRE_TEXT_MAX + 128 + 8 + 8)
/* ... and its if_filter and if_os */
#define S_IDB_INFO_MAX (S_IDB_MAX + 2 * (8 + WIRE_TEXT_MAX))
#define S_LINKTYPE_ETHERNET 1

typedef struct {
    char name[WIRE_NAME_MAX * 2 + 2]; /* source/interface */
    uint16_t linktype;
} s_iface_t;

struct output_t {
    output_opts_t opts;
    char pattern[S_PATH_MAX];
    bool is_pattern;
    bool stream;           /* standard output, or a FIFO or device OUTPUT names: written in place */
    bool none;             /* OUTPUT=none: the writer's blocks go nowhere */
    char path[S_PATH_MAX]; /* the file being written, or about to be created */
    int fd;                /* the file, its anonymous file before, or -1 (no O_TMPFILE) */
    bool created;          /* `path` exists with what was flushed (stdout: written to) */
    unsigned index;        /* of the next file */
    unsigned files;        /* created so far */
    int64_t opened_ms;
    uint64_t offset;       /* bytes in the current file */
    uint64_t closed_bytes; /* the file the last rotation closed, all of it */
    bool cuttable;         /* a stream that is a regular file: cut back from `base` */
    uint64_t base;         /* where this output's bytes begin in it */
    bool aborted;          /* output_abort: nothing more reaches the operating system */
    uint64_t full_at;      /* output_full from this many bytes in the file on; UINT64_MAX: never */
    uint64_t bytes;
    pcapng_writer_t *writer;
    output_closing_fn closing; /* or NULL */
    void *closing_ctx;
    s_iface_t *ifaces;
    size_t nifaces, cap;
};

/* The directory of `path` into `dir`. */
static void s_dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, len, ".");
    else if (slash == path)
        snprintf(dir, len, "/");
    else
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

/* Digits for a hidden name nobody else picks: O_EXCL makes it ours. */
static uint32_t s_random32(void)
{
    static uint32_t tries;
    uint32_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
        return r;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)ts.tv_nsec ^ ++tries * 2654435761u;
}

/* Links `from` (a /proc/self/fd path or a temporary name) as the file's
 * name: never over an existing file for a pattern or keep_existing, else
 * in place of it, like tcpdump -w. */
static int s_link(output_t *self, const char *from)
{
    bool excl = self->is_pattern || self->opts.keep_existing;
    for (int tries = 0; tries < 2; tries++) {
        if (linkat(AT_FDCWD, from, AT_FDCWD, self->path, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST || excl)
            return -errno;
        if (unlink(self->path) < 0 && errno != ENOENT)
            return -errno;
    }
    return -EEXIST;
}

/* Writes the file's first bytes and gives it its name. */
static int s_create(output_t *self, const void *buf, size_t len)
{
    if (self->stream)
        return pcapng_sink_fd(&self->fd, buf, len);
    if (self->fd >= 0) {
        int rc = pcapng_sink_fd(&self->fd, buf, len);
        if (rc < 0)
            return rc;
        char from[64];
        snprintf(from, sizeof from, "/proc/self/fd/%d", self->fd);
        rc = s_link(self, from);
        if (rc == -ENOENT && access("/proc/self/fd", F_OK) < 0) /* no /proc */
            rc = linkat(self->fd, "", AT_FDCWD, self->path, AT_EMPTY_PATH) == 0 ? 0 : -errno;
        return rc;
    }
    /* no anonymous files here: a hidden name in the same directory */
    char tmp[2 * S_PATH_MAX + 16], dir[S_PATH_MAX];
    s_dir_of(self->path, dir, sizeof dir);
    const char *base = strrchr(self->path, '/');
    /* mkostemp would make it 0600, and widening it takes the umask's say
     * away: a name of our own, created with the output's mode */
    int fd = -1;
    for (unsigned tries = 0; fd < 0 && tries < 100; tries++) {
        int n = snprintf(tmp, sizeof tmp, "%s/.%s.%08" PRIx32, dir, base ? base + 1 : self->path,
                         s_random32());
        if (n < 0 || (size_t)n >= S_PATH_MAX)
            return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, S_FILE_MODE);
        if (fd < 0 && errno != EEXIST)
            return -errno;
    }
    if (fd < 0)
        return -EEXIST;
    int rc = pcapng_sink_fd(&fd, buf, len);
    if (rc == 0)
        rc = s_link(self, tmp);
    unlink(tmp);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    self->fd = fd;
    return 0;
}

static int s_sink(void *ctx, const void *buf, size_t len)
{
    output_t *self = ctx;
    if (self->aborted)
        return -ECANCELED; /* whatever flushes the writer: it writes nothing */
    if (self->none)
        return 0;
    int rc = self->created ? pcapng_sink_fd(&self->fd, buf, len) : s_create(self, buf, len);
    if (rc < 0)
        return rc;
    if (!self->created) {
        self->created = true;
        self->files++;
    }
    self->bytes += len;
    self->offset += len;
    return 0;
}

/* True when `pattern` has a %i conversion (not a literal "%%i"). */
static bool s_has_index(const char *pattern)
{
    for (const char *p = pattern; *p; p++) {
        if (*p != '%')
            continue;
        if (p[1] == 'i')
            return true;
        if (p[1])
            p++; /* skip the conversion character, "%%" included */
    }
    return false;
}

/* `pattern` with "-%i" before the extension of its last component. */
static void s_with_index(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot || dot == (slash ? slash + 1 : path))
        snprintf(out, len, "%s-%%i", path);
    else
        snprintf(out, len, "%.*s-%%i%s", (int)(dot - path), path, dot);
}

/* Expands %i (index) and then strftime conversions. */
static int s_expand(const output_t *self, unsigned index, char *out, size_t len)
{
    char step[S_PATH_MAX * 2];
    size_t o = 0;
    for (const char *p = self->pattern; *p && o + 16 < sizeof step; p++) {
        if (p[0] == '%' && p[1] == 'i') {
            o += (size_t)snprintf(step + o, sizeof step - o, "%04u", index);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            step[o++] = '%';
            step[o++] = '%';
            p++;
        } else {
            step[o++] = *p;
        }
    }
    step[o] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    /* the operator's pattern is the format: that is the point */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = strftime(out, len, step, &tm);
#pragma GCC diagnostic pop
    return n == 0 ? -ENAMETOOLONG : 0;
}

/* A stream that is a regular file (tapmesh-collect > file) can be cut back
 * after a failed write: from the position where its bytes begin (its end
 * when it is opened for appending). */
static void s_note_base(output_t *self)
{
    struct stat st;
    if (fstat(self->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    int flags = fcntl(self->fd, F_GETFL);
    off_t pos = flags >= 0 && (flags & O_APPEND) ? st.st_size : lseek(self->fd, 0, SEEK_CUR);
    if (flags < 0 || pos < 0)
        return;
    self->cuttable = true;
    self->base = (uint64_t)pos;
}

/* Begins the next file at `now_ms`: chooses its name (with a pattern, the
 * next index whose name is free) and opens its anonymous file in the target
 * directory; nothing is created under the name before the first flush. */
static int s_begin_file(output_t *self, int64_t now_ms, char *err, size_t errlen)
{
    if (self->none) {
        snprintf(self->path, sizeof self->path, "%s", OUTPUT_NONE);
        return 0;
    }
    if (self->stream) {
        self->fd = strcmp(self->pattern, "-") == 0 ? STDOUT_FILENO
                                                   : open(self->pattern, O_WRONLY | O_CLOEXEC);
        if (self->fd < 0) {
            snprintf(err, errlen, "%s: %s", self->pattern, strerror(errno));
            return -errno;
        }
        snprintf(self->path, sizeof self->path, "%s", self->pattern);
        s_note_base(self);
        return 0;
    }
    char path[S_PATH_MAX];
    for (int tries = 0;; tries++) {
        if (tries == 100000) {
            snprintf(err, errlen, "%s: no free file name", self->pattern);
            return -EEXIST;
        }
        if (!self->is_pattern) {
            snprintf(path, sizeof path, "%s", self->pattern);
            struct stat st;
            if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
                return -EISDIR;
            }
            break;
        }
        if (s_expand(self, self->index++, path, sizeof path) < 0) {
            snprintf(err, errlen, "%s: the name is too long", self->pattern);
            return -ENAMETOOLONG;
        }
        struct stat st;
        if (lstat(path, &st) < 0 && errno == ENOENT)
            break; /* free (a pattern never overwrites: else the next index) */
    }
    char dir[S_PATH_MAX];
    s_dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, S_FILE_MODE); /* linkat keeps it */
    int e = fd < 0 ? errno : 0;
    if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL) /* no anonymous files there: */
        e = access(dir, W_OK | X_OK) == 0 ? 0 : errno; /* a temporary name at the first flush */
    if (e) {
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    if (self->fd > STDERR_FILENO)
        close(self->fd);
    self->fd = fd;
    self->created = false;
    snprintf(self->path, sizeof self->path, "%s", path);
    self->offset = 0;
    self->opened_ms = now_ms;
    return 0;
}

output_t *output_open(const output_opts_t *opts, char *err, size_t errlen)
{
    output_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "%s: out of memory", opts->path);
        return NULL;
    }
    self->opts = *opts;
    self->fd = -1;
    bool rotating = opts->rotate_bytes || opts->rotate_ms;
    self->none = strcmp(opts->path, OUTPUT_NONE) == 0;
    if (self->none && (rotating || opts->keep_existing)) {
        snprintf(err, errlen, "%s: nothing to rotate or keep", opts->path);
        free(self);
        return NULL;
    }
    bool plain = !rotating && !strchr(opts->path, '%');
    struct stat st;
    self->stream =
        self->none || strcmp(opts->path, "-") == 0 ||
        (plain && stat(opts->path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode));
    /* a plain name stays plain unless rotating, or it exists and must be kept */
    self->is_pattern =
        !self->stream && (!plain || (opts->keep_existing && access(opts->path, F_OK) == 0));
    if (self->is_pattern && !s_has_index(opts->path))
        s_with_index(opts->path, self->pattern, sizeof self->pattern);
    else
        snprintf(self->pattern, sizeof self->pattern, "%s", opts->path);
    if (opts->format == PCAPNG_FORMAT_PCAP)
        self->opts.policy = OUTPUT_LINKTYPE_FIRST;
    self->full_at = self->is_pattern && opts->rotate_bytes ? opts->rotate_bytes : UINT64_MAX;
    if (s_begin_file(self, clock_mono_ms(), err, errlen) < 0) {
        free(self);
        return NULL;
    }
    struct utsname u;
    char os[2 * sizeof u.release + 2] = "";
    if (uname(&u) == 0)
        snprintf(os, sizeof os, "%.64s %.64s", u.sysname, u.release);
    self->writer =
        pcapng_writer_new_os(opts->format, WIRE_SNAPLEN_MAX, "tapmesh-collect " TAPMESH_VERSION, os,
                             opts->bufsize, s_sink, self);
    if (!self->writer) {
        snprintf(err, errlen, "%s: out of memory", self->path);
        output_close(&self);
        return NULL;
    }
    return self;
}

void output_close(output_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    output_t *self = *self_p;
    if (self->writer && !self->aborted)
        output_flush(self);
    pcapng_writer_destroy(&self->writer);
    if (self->fd > STDERR_FILENO)
        close(self->fd);
    free(self->ifaces);
    free(self);
    *self_p = NULL;
}

int output_interface(output_t *self, const char *source, const char *source_descr,
                     const wire_iface_t *iface, char *why, size_t whylen)
{
    return output_interface_info(self, source, source_descr, iface, NULL, NULL, why, whylen);
}

int output_interface_info(output_t *self, const char *source, const char *source_descr,
                          const wire_iface_t *iface, const char *filter, const char *os, char *why,
                          size_t whylen)
{
    char name[sizeof self->ifaces->name];
    snprintf(name, sizeof name, "%s/%s", source, iface->name);
    for (size_t i = 0; i < self->nifaces; i++)
        if (self->ifaces[i].linktype == iface->linktype && strcmp(self->ifaces[i].name, name) == 0)
            return (int)i;
    if (self->nifaces > 0 && self->opts.policy == OUTPUT_LINKTYPE_FIRST &&
        self->ifaces[0].linktype != iface->linktype) {
        if (self->opts.format == PCAPNG_FORMAT_PCAP)
            snprintf(why, whylen,
                     "%s has link type %u but this output has link type %u: OUTPUT_FORMAT=pcap "
                     "holds one link type",
                     name, iface->linktype, self->ifaces[0].linktype);
        else
            snprintf(why, whylen,
                     "%s has link type %u but this output has link type %u "
                     "(LINKTYPE_POLICY=first, so that tcpdump reads it; "
                     "LINKTYPE_POLICY=mixed allows both, for tshark and Wireshark)",
                     name, iface->linktype, self->ifaces[0].linktype);
        return -EPROTOTYPE;
    }
    if (self->nifaces == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        s_iface_t *f = realloc(self->ifaces, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        self->ifaces = f;
        self->cap = cap;
    }
    /* the IDB must not push buffered packets out behind the caller's back */
    if (pcapng_writer_room(self->writer) < S_IDB_INFO_MAX) {
        snprintf(why, whylen, "%s: the output buffer is full", name);
        return -ENOBUFS;
    }
    char descr[WIRE_TEXT_MAX * 2 + 128];
    snprintf(descr, sizeof descr, "%s%s%s; snaplen %u", iface->description,
             *source_descr ? "; " : "", source_descr, iface->snaplen);
    bool pcapng = self->opts.format == PCAPNG_FORMAT_PCAPNG;
    pcapng_iface_t idb = {.linktype = iface->linktype,
                          .name = name,
                          .description = descr,
                          .filter = pcapng ? filter : NULL,
                          .os = pcapng ? os : NULL};
    int id = pcapng_writer_add_interface_opts(self->writer, &idb);
    if (id < 0) {
        snprintf(why, whylen, "%s: %s", name, strerror(-id));
        return id;
    }
    s_iface_t *f = &self->ifaces[self->nifaces++];
    snprintf(f->name, sizeof f->name, "%s", name);
    f->linktype = iface->linktype;
    return id;
}

bool output_room(const output_t *self, uint32_t caplen, const char *comment)
{
    size_t need = pcapng_packet_size(self->opts.format, caplen);
    if (comment)
        need += 8 + strlen(comment) + 8;
    return need <= pcapng_writer_room(self->writer);
}

/* output_append for a rotating output: output_full first. Apart, so that
 * the common case is a plain jump to the writer. */
static __attribute__((noinline)) int s_append_rotating(output_t *self, uint32_t ifid,
                                                       const wire_packet_t *pkt)
{
    if (self->offset + pcapng_writer_buffered(self->writer) >= self->full_at)
        return -ENOBUFS; /* the commit rotates first */
    return pcapng_writer_append(self->writer, ifid, pkt->ts_ns, pkt->caplen, pkt->origlen,
                                pkt->data);
}

int output_append(output_t *self, uint32_t ifid, const wire_packet_t *pkt)
{
    if (self->full_at != UINT64_MAX)
        return s_append_rotating(self, ifid, pkt);
    return pcapng_writer_append(self->writer, ifid, pkt->ts_ns, pkt->caplen, pkt->origlen,
                                pkt->data);
}

int output_packet(output_t *self, uint32_t ifid, const wire_packet_t *pkt, const char *comment)
{
    return pcapng_writer_packet(self->writer, ifid, pkt->ts_ns, pkt->caplen, pkt->origlen,
                                pkt->data, comment);
}

/* Before the first interface the writer holds the section header alone,
 * which no reader can open: it is not for the operating system yet. */
size_t output_buffered(const output_t *self)
{
    return pcapng_writer_interfaces(self->writer) ? pcapng_writer_buffered(self->writer) : 0;
}

int output_flush(output_t *self)
{
    if (self->aborted)
        return -ECANCELED;
    if (!pcapng_writer_interfaces(self->writer))
        return 0;
    return pcapng_writer_flush(self->writer);
}

void output_on_closing(output_t *self, output_closing_fn fn, void *ctx)
{
    self->closing = fn;
    self->closing_ctx = ctx;
}

/* The file is about to be closed: its last blocks. */
static void s_closing(output_t *self)
{
    if (self->closing && self->opts.format == PCAPNG_FORMAT_PCAPNG &&
        pcapng_writer_interfaces(self->writer))
        self->closing(self->closing_ctx, self);
}

int output_stats(output_t *self, uint32_t ifid, const pcapng_stats_t *st)
{
    return pcapng_writer_stats(self->writer, ifid, st);
}

unsigned output_interfaces(const output_t *self)
{
    return pcapng_writer_interfaces(self->writer);
}

int output_end(output_t *self)
{
    if (!self->aborted)
        s_closing(self);
    if (self->stream && !self->none && !pcapng_writer_interfaces(self->writer)) {
        int rc = pcapng_writer_add_interface(self->writer, S_LINKTYPE_ETHERNET, "none",
                                             "tapmesh-collect: no source joined");
        if (rc < 0)
            return rc;
    }
    return output_flush(self);
}

int output_abort(output_t *self)
{
    self->aborted = true;
    /* a file not created yet is an anonymous one, gone when closed */
    if (!self->created || (self->stream && !self->cuttable))
        return 0;
    uint64_t end = (self->stream ? self->base : 0) + self->offset;
    struct stat st;
    if (fstat(self->fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size <= end)
        return 0;
    if (ftruncate(self->fd, (off_t)end) < 0)
        return -errno;
    return 1;
}

bool output_full(const output_t *self)
{
    return self->is_pattern && self->opts.rotate_bytes &&
           self->offset + output_buffered(self) >= self->opts.rotate_bytes;
}

int output_rotate_if_due(output_t *self, int64_t now_ms)
{
    if (self->aborted)
        return -ECANCELED;
    if (self->stream || !self->is_pattern || (!self->opts.rotate_bytes && !self->opts.rotate_ms))
        return 0;
    bool due = (self->opts.rotate_bytes && self->offset >= self->opts.rotate_bytes) ||
               (self->opts.rotate_ms && now_ms - self->opened_ms >= self->opts.rotate_ms);
    if (!due || self->offset == 0)
        return 0; /* nothing in the file yet (so not even created) */
    s_closing(self);
    int rc = pcapng_writer_flush(self->writer);
    if (rc < 0)
        return rc;
    self->closed_bytes = self->offset; /* its statistics blocks included */
    char err[S_PATH_MAX + 64];
    rc = s_begin_file(self, now_ms, err, sizeof err);
    if (rc < 0)
        return rc;
    rc = pcapng_writer_restart(self->writer);
    return rc < 0 ? rc : 1;
}

const char *output_path(const output_t *self)
{
    return self->path;
}

uint64_t output_offset(const output_t *self)
{
    return self->offset;
}

uint64_t output_closed_bytes(const output_t *self)
{
    return self->closed_bytes;
}

const char *output_name(const output_t *self)
{
    if (self->none)
        return "nowhere (OUTPUT=none)";
    return strcmp(self->path, "-") == 0 ? "standard output" : self->path;
}

uint64_t output_bytes(const output_t *self)
{
    return self->bytes;
}

unsigned output_files(const output_t *self)
{
    return self->files;
}
