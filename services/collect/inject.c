/*
 * inject — sends the merged stream on: out of an interface or into a
 * tunnel (inject.h). One frame is built at a time, in a buffer sized once;
 * nothing is allocated per packet. Failures are counted by reason and
 * logged at most once per S_LOG_EVERY_MS, with how many were not logged.
 */
#include "inject.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define S_LOG_EVERY_MS 10000
#define S_LINKTYPE_ETHERNET 1
#define S_LINKTYPE_RAW 101
/* The largest frame sent: an IPv4 packet's largest size and a tag more
 * than any link's MTU allows; longer captured frames are cut to it. */
#define S_FRAME_MAX 65536

typedef enum { S_LINKTYPE, S_SHORT, S_NOTIP, S_MSGSIZE, S_SEND, S_NREASONS } s_reason_t;
static const char *const s_reason_names[S_NREASONS] = {"linktype", "short", "notip", "msgsize",
                                                       "send"};

typedef struct {
    /* Sends `n` pieces making one frame (device) or one tunnel payload
     * preceded by its header. Returns 0 or a negative errno. */
    int (*send)(inject_t *self, const struct iovec *iov, int n, size_t len);
    void (*close)(inject_t *self);
} s_ops_t;

struct inject_t {
    const s_ops_t *ops;
    char name[300];
    encap_vlan_tag_t *tags;
    size_t ntags;
    uint32_t snaplen;
    uint8_t *buf; /* a tagged frame, built for sending */
    metrics_t *metrics;
    /* device */
    pcap_t *pcap;
    char device[IF_NAMESIZE + 1];
    /* tunnel */
    int fd;
    encap_tunnel_t tunnel;
    unsigned mtu;
    size_t payload_max;
    struct {
        metric_id_t packets, bytes, truncated, errors[S_NREASONS];
    } m;
    int64_t logged_ms; /* the last failure logged, or INT64_MIN */
    uint64_t unlogged; /* failures since, not logged */
};

/* A socket filter that takes nothing: the sockets here only send, and
 * what arrives for them must not pile up in their receive buffers. */
static struct sock_filter s_nothing[] = {BPF_STMT(BPF_RET | BPF_K, 0)};

static inject_t *s_new(const inject_opts_t *opts)
{
    inject_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = -1;
    self->logged_ms = INT64_MIN;
    self->snaplen = opts->snaplen;
    self->buf = malloc(S_FRAME_MAX + ENCAP_VLAN_LEN);
    if (opts->ntags) {
        self->tags = calloc(opts->ntags, sizeof *self->tags);
        if (self->tags)
            memcpy(self->tags, opts->tags, opts->ntags * sizeof *self->tags);
        self->ntags = opts->ntags;
    }
    if (!self->buf || (opts->ntags && !self->tags)) {
        free(self->buf);
        free(self->tags);
        free(self);
        return NULL;
    }
    return self;
}

/* Registers the sender's counters; `label` (device="eth1", or NULL) tells
 * apart the devices of one OUTPUT_DEVICE list. */
static void s_metrics(inject_t *self, metrics_t *metrics, const char *prefix, const char *what,
                      const char *label)
{
    char name[128], help[256];
    snprintf(name, sizeof name, "%s_packets_total", prefix);
    snprintf(help, sizeof help, "Packets sent %s.", what);
    self->m.packets = metrics_counter(metrics, name, help, label);
    snprintf(name, sizeof name, "%s_bytes_total", prefix);
    snprintf(help, sizeof help,
             "Bytes of the frames sent %s (as sent: tags in, tunnel headers out).", what);
    self->m.bytes = metrics_counter(metrics, name, help, label);
    snprintf(name, sizeof name, "%s_truncated_total", prefix);
    snprintf(help, sizeof help,
             "Packets sent %s cut short (OUTPUT_SNAPLEN, or TUNNEL_MTU for a tunnel).", what);
    self->m.truncated = metrics_counter(metrics, name, help, label);
    snprintf(name, sizeof name, "%s_errors_total", prefix);
    snprintf(help, sizeof help,
             "Packets not sent %s, by reason: linktype (not Ethernet), short, notip (GRE: not "
             "IP), msgsize (longer than the MTU), send (another send failure).",
             what);
    for (int r = 0; r < S_NREASONS; r++) {
        char labels[128];
        snprintf(labels, sizeof labels, "%s%sreason=\"%s\"", label ? label : "", label ? "," : "",
                 s_reason_names[r]);
        self->m.errors[r] = metrics_counter(metrics, name, help, labels);
    }
}

/* Called for every failure: counts it, and logs `fmt` unless a failure was
 * logged less than S_LOG_EVERY_MS ago. Returns -EMSGSIZE or -EIO. */
__attribute__((format(printf, 3, 4))) static int s_failed(inject_t *self, s_reason_t reason,
                                                          const char *fmt, ...);

static int s_failed(inject_t *self, s_reason_t reason, const char *fmt, ...)
{
    metrics_add(self->metrics, self->m.errors[reason], 1);
    int64_t now = clock_mono_ms();
    if (self->logged_ms != INT64_MIN && now - self->logged_ms < S_LOG_EVERY_MS) {
        self->unlogged++;
        return reason == S_MSGSIZE ? -EMSGSIZE : -EIO;
    }
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (self->unlogged)
        log_warn("%s: %s (and %llu more failed sends since the last message; see "
                 "*_errors_total)",
                 self->name, text, (unsigned long long)self->unlogged);
    else
        log_warn("%s: %s", self->name, text);
    self->logged_ms = now;
    self->unlogged = 0;
    return reason == S_MSGSIZE ? -EMSGSIZE : -EIO;
}

/* ---- device ---- */

static int s_device_mtu(const char *device)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    size_t n = strnlen(device, sizeof ifr.ifr_name - 1);
    memcpy(ifr.ifr_name, device, n);
    int mtu = ioctl(fd, SIOCGIFMTU, &ifr) < 0 ? -1 : ifr.ifr_mtu;
    close(fd);
    return mtu;
}

static int s_device_send(inject_t *self, const struct iovec *iov, int n, size_t len)
{
    (void)n; /* a device is sent the frame alone: no header */
    errno = 0;
    if (pcap_inject(self->pcap, iov[0].iov_base, len) >= 0)
        return 0;
    int e = errno;
    const char *why = pcap_geterr(self->pcap);
    if (e == EMSGSIZE || strstr(why, strerror(EMSGSIZE))) {
        int mtu = s_device_mtu(self->device);
        return s_failed(self, S_MSGSIZE,
                        "frame of %zu bytes exceeds %s's MTU %d: raise the MTU (ip link set %s "
                        "mtu 9216) or set OUTPUT_SNAPLEN; a frame captured with GRO/TSO "
                        "offloads on can exceed the MTU: ethtool -K <capture device> gro off "
                        "gso off tso off",
                        len, self->device, mtu, self->device);
    }
    return s_failed(self, S_SEND, "%s", why);
}

static void s_device_close(inject_t *self)
{
    if (self->pcap)
        pcap_close(self->pcap);
    self->pcap = NULL;
}

static const s_ops_t s_device_ops = {s_device_send, s_device_close};

inject_t *inject_device_new(const char *device, const inject_opts_t *opts, metrics_t *metrics,
                            char *err, size_t errlen)
{
    inject_t *self = s_new(opts);
    if (!self) {
        snprintf(err, errlen, "OUTPUT_DEVICE=%s: out of memory", device);
        return NULL;
    }
    self->ops = &s_device_ops;
    snprintf(self->name, sizeof self->name, "OUTPUT_DEVICE=%s", device);
    size_t dlen = strlen(device);
    if (dlen == 0 || dlen >= IF_NAMESIZE || strpbrk(device, "\"\\,/ \t\n")) {
        snprintf(err, errlen, "%s: not an interface name", self->name);
        goto err;
    }
    snprintf(self->device, sizeof self->device, "%s", device);
    char perr[PCAP_ERRBUF_SIZE] = "";
    self->pcap = pcap_create(device, perr);
    if (!self->pcap) {
        snprintf(err, errlen, "%s: %s", self->name, perr);
        goto err;
    }
    /* nothing is read: the smallest ring libpcap and the kernel accept */
    pcap_set_snaplen(self->pcap, 64);
    pcap_set_buffer_size(self->pcap, 64 << 10);
    pcap_set_timeout(self->pcap, 1000);
    int rc = pcap_activate(self->pcap);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s%s", self->name, pcap_statustostr(rc),
                 rc == PCAP_ERROR_PERM_DENIED ? " (sending needs CAP_NET_RAW)" : "");
        if (rc == PCAP_ERROR)
            snprintf(err, errlen, "%s: %s", self->name, pcap_geterr(self->pcap));
        goto err;
    }
    if (pcap_datalink(self->pcap) != DLT_EN10MB) {
        snprintf(err, errlen, "%s: link type %s, not Ethernet: only Ethernet frames are sent",
                 self->name, pcap_datalink_val_to_name(pcap_datalink(self->pcap)));
        goto err;
    }
    struct bpf_program nothing = {1, (struct bpf_insn *)s_nothing};
    if (pcap_setfilter(self->pcap, &nothing) < 0)
        log_debug("%s: no filter for the receive side: %s", self->name, pcap_geterr(self->pcap));
    self->metrics = metrics;
    char label[64];
    snprintf(label, sizeof label, "device=\"%s\"", self->device);
    s_metrics(self, metrics, "tapmesh_collect_output_device", "out of an OUTPUT_DEVICE", label);
    return self;
err:
    inject_destroy(&self);
    return NULL;
}

/* ---- tunnel ---- */

static int s_tunnel_send(inject_t *self, const struct iovec *iov, int n, size_t len)
{
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)n;
    if (sendmsg(self->fd, &msg, MSG_NOSIGNAL) >= 0)
        return 0;
    int e = errno;
    if (e == EMSGSIZE)
        return s_failed(self, S_MSGSIZE,
                        "an outer packet of %zu bytes exceeds the path MTU to %s: lower "
                        "TUNNEL_MTU (now %u)",
                        len + ENCAP_IPV4_LEN + (self->tunnel.kind == ENCAP_VXLAN ? 8 : 0),
                        self->tunnel.host, self->mtu);
    return s_failed(self, S_SEND, "%s", strerror(e));
}

static void s_tunnel_close(inject_t *self)
{
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
}

static const s_ops_t s_tunnel_ops = {s_tunnel_send, s_tunnel_close};

inject_t *inject_tunnel_new(const encap_tunnel_t *tunnel, unsigned mtu, const inject_opts_t *opts,
                            metrics_t *metrics, char *err, size_t errlen)
{
    inject_t *self = s_new(opts);
    if (!self) {
        snprintf(err, errlen, "TUNNEL: out of memory");
        return NULL;
    }
    self->ops = &s_tunnel_ops;
    self->tunnel = *tunnel;
    self->mtu = mtu;
    self->payload_max = encap_payload_max(tunnel, mtu);
    snprintf(self->name, sizeof self->name, "TUNNEL=%s://%s", encap_kind_name(tunnel->kind),
             tunnel->host);
    if (self->payload_max < ENCAP_ETHER_LEN + ENCAP_VLAN_LEN) {
        snprintf(err, errlen, "%s: TUNNEL_MTU %u leaves no room for a frame", self->name, mtu);
        goto err;
    }
    struct addrinfo hints = {.ai_family = AF_INET}, *ai = NULL;
    hints.ai_socktype = tunnel->kind == ENCAP_VXLAN ? SOCK_DGRAM : SOCK_RAW;
    int gai = getaddrinfo(tunnel->host, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "%s: %s", self->name,
                 gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        goto err;
    }
    struct sockaddr_in to;
    memcpy(&to, ai->ai_addr, sizeof to);
    freeaddrinfo(ai);
    if (tunnel->kind == ENCAP_VXLAN) {
        to.sin_port = htons(tunnel->port);
        self->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    } else {
        to.sin_port = 0;
        self->fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_GRE);
    }
    if (self->fd < 0) {
        snprintf(err, errlen, "%s: %s%s", self->name, strerror(errno),
                 errno == EPERM ? " (GRE needs a raw socket: CAP_NET_RAW)" : "");
        goto err;
    }
    /* never fragmented: TUNNEL_MTU is what the frames are cut to fit, and a
     * path narrower than it shows as EMSGSIZE, counted and named */
    int pmtu = IP_PMTUDISC_DO;
    setsockopt(self->fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    struct sock_fprog nothing = {1, s_nothing};
    setsockopt(self->fd, SOL_SOCKET, SO_ATTACH_FILTER, &nothing, sizeof nothing);
    if (connect(self->fd, (struct sockaddr *)&to, sizeof to) < 0) {
        snprintf(err, errlen, "%s: %s", self->name, strerror(errno));
        goto err;
    }
    self->metrics = metrics;
    s_metrics(self, metrics, "tapmesh_collect_tunnel", "into TUNNEL", NULL);
    return self;
err:
    inject_destroy(&self);
    return NULL;
}

void inject_destroy(inject_t **self_p)
{
    inject_t *self = *self_p;
    if (!self)
        return;
    if (self->ops)
        self->ops->close(self);
    free(self->buf);
    free(self->tags);
    free(self);
    *self_p = NULL;
}

const char *inject_name(const inject_t *self)
{
    return self->name;
}

static int s_vid(const inject_t *self, const char *source)
{
    for (size_t i = 0; i < self->ntags; i++)
        if (strcmp(self->tags[i].source, source) == 0)
            return self->tags[i].vid;
    return 0;
}

int inject_packet(inject_t *self, const char *source, uint16_t linktype, const wire_packet_t *pkt)
{
    bool tunnel = self->ops == &s_tunnel_ops;
    bool gre = tunnel && self->tunnel.kind == ENCAP_GRE;
    size_t max = S_FRAME_MAX;
    if (self->snaplen && self->snaplen < max)
        max = self->snaplen;
    if (tunnel && self->payload_max < max)
        max = self->payload_max;
    const uint8_t *data = pkt->data;
    size_t len = pkt->caplen;
    size_t whole; /* what would be sent without a cut */
    uint16_t proto = ENCAP_ETH_BRIDGE;
    struct iovec iov[2];
    uint8_t hdr[ENCAP_HDR_MAX];
    if (gre) {
        /* GRE carries the IP packet: the Ethernet header (and tags) go */
        if (linktype == S_LINKTYPE_ETHERNET) {
            size_t off;
            int rc = encap_ip_payload(data, len, &off, &proto);
            if (rc == -EPROTONOSUPPORT)
                return s_failed(self, S_NOTIP,
                                "a frame of %s carries neither IPv4 nor IPv6: GRE cannot carry "
                                "it (gretap:// carries any frame)",
                                source);
            if (rc < 0)
                return s_failed(self, S_SHORT, "a frame of %s is too short (%zu bytes)", source,
                                len);
            data += off;
            len -= off;
        } else if (linktype == S_LINKTYPE_RAW) {
            proto = encap_raw_proto(data, len);
            if (!proto)
                return s_failed(self, S_NOTIP,
                                "a packet of %s is neither IPv4 nor IPv6: GRE cannot carry it",
                                source);
        } else {
            return s_failed(self, S_LINKTYPE,
                            "%s's link type is %u: GRE carries Ethernet frames (their IP "
                            "packets) and raw IP only",
                            source, linktype);
        }
        whole = len;
        if (len > max)
            len = max;
    } else {
        if (linktype != S_LINKTYPE_ETHERNET)
            return s_failed(self, S_LINKTYPE,
                            "%s's link type is %u, not Ethernet (1): only Ethernet frames are "
                            "sent",
                            source, linktype);
        int vid = self->ntags ? s_vid(self, source) : 0;
        if (vid) {
            long n = encap_vlan_insert(self->buf, S_FRAME_MAX + ENCAP_VLAN_LEN, data, len,
                                       (uint16_t)vid, max);
            if (n < 0)
                return s_failed(self, S_SHORT, "a frame of %s is too short to tag (%zu bytes)",
                                source, len);
            whole = len + ENCAP_VLAN_LEN;
            data = self->buf;
            len = (size_t)n;
        } else {
            whole = len;
            if (len > max)
                len = max;
        }
    }
    int n = 0;
    size_t total = len;
    if (tunnel) {
        size_t hlen = encap_header(&self->tunnel, proto, hdr);
        iov[n++] = (struct iovec){hdr, hlen};
        total += hlen;
    }
    iov[n++] = (struct iovec){(void *)data, len};
    int rc = self->ops->send(self, iov, n, total);
    if (rc < 0)
        return rc;
    metrics_add(self->metrics, self->m.packets, 1);
    metrics_add(self->metrics, self->m.bytes, len);
    if (len < whole)
        metrics_add(self->metrics, self->m.truncated, 1);
    return 0;
}
