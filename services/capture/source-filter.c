/*
 * source-filter — the BPF program of a live capture. An agent capturing on
 * the interface that carries its own connection to its next hop (DEVICE=lo
 * with the next hop on loopback, or the uplink) would capture every batch
 * it sends and send it again, without end. Like rpcapd, the program leaves
 * that connection out: "not (host H and tcp port P)" for every address of
 * every next hop, after the user's filter. Host names are resolved here
 * (getaddrinfo), not left to pcap_compile: every address a name has is left
 * out, and a name that does not resolve is an error at start-up, not a
 * silent capture of our own traffic.
 */
#include "source.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Appends to out; false when it does not fit. */
static bool s_append(char *out, size_t outlen, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool s_append(char *out, size_t outlen, size_t *used, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *used, outlen - *used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen - *used)
        return false;
    *used += (size_t)n;
    return true;
}

/* Host and port of the peer of a tcp:// endpoint: "tcp://H:P", "tcp://[A]:P"
 * or ZeroMQ's "tcp://SOURCE;H:P" (the connection's far end is after the ';').
 * `numeric` is set for a bracketed address. */
static int s_split(const char *endpoint, char *host, size_t hostlen, unsigned *port, bool *numeric,
                   char *err, size_t errlen)
{
    const char *peer = endpoint + strlen("tcp://");
    const char *semi = strrchr(peer, ';');
    if (semi)
        peer = semi + 1;
    const char *colon = strrchr(peer, ':');
    const char *h = peer, *hend = colon;
    *numeric = false;
    if (colon && peer[0] == '[' && colon > peer && colon[-1] == ']') {
        h = peer + 1;
        hend = colon - 1;
        *numeric = true;
    }
    char *end = NULL;
    unsigned long p = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (!colon || hend <= h || (size_t)(hend - h) >= hostlen || colon[1] < '0' || colon[1] > '9' ||
        *end || p == 0 || p > 65535) {
        snprintf(err, errlen, "RELAY_ENDPOINT=%s: expected tcp://HOST:PORT", endpoint);
        return -EINVAL;
    }
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    *port = (unsigned)p;
    return 0;
}

/* Appends "not (host A and tcp port P)" for every address of one tcp://
 * endpoint. */
static int s_exclude_tcp(const char *endpoint, char *out, size_t outlen, size_t *used, char *err,
                         size_t errlen)
{
    char host[256];
    unsigned port;
    bool numeric;
    int rc = s_split(endpoint, host, sizeof host, &port, &numeric, err, errlen);
    if (rc < 0)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = numeric ? AI_NUMERICHOST : 0};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen,
                 "RELAY_ENDPOINT=%s: cannot resolve %s: %s (needed to leave the agent's own "
                 "connection out of the capture; CAPTURE_OWN_TRAFFIC=true keeps it)",
                 endpoint, host, gai_strerror(gai));
        return -EINVAL;
    }
    char seen[16][INET6_ADDRSTRLEN + 1];
    size_t nseen = 0;
    rc = 0;
    for (struct addrinfo *ai = res; ai && rc == 0; ai = ai->ai_next) {
        char addr[NI_MAXHOST];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST))
            continue;
        addr[strcspn(addr, "%")] = '\0'; /* an IPv6 scope: not BPF syntax */
        bool dup = false;
        for (size_t i = 0; i < nseen && !dup; i++)
            dup = strcmp(seen[i], addr) == 0;
        if (dup)
            continue;
        size_t alen = strlen(addr);
        if (nseen < sizeof seen / sizeof *seen && alen < sizeof seen[0])
            memcpy(seen[nseen++], addr, alen + 1);
        if (!s_append(out, outlen, used, "%snot (host %s and tcp port %u)", *used ? " and " : "",
                      addr, port)) {
            snprintf(err, errlen, "RELAY_ENDPOINT=%s: the capture filter is too long", endpoint);
            rc = -ENOSPC;
        }
    }
    freeaddrinfo(res);
    return rc;
}

int source_filter_build(const char *filter, const char *next_hops, char *out, size_t outlen,
                        char *err, size_t errlen)
{
    if (!filter)
        filter = "";
    /* the exclusions first, into `out` after room for "(FILTER) and " */
    size_t lead = *filter ? strlen(filter) + strlen("() and ") : 0;
    if (lead >= outlen) {
        snprintf(err, errlen, "FILTER: too long");
        return -ENOSPC;
    }
    char *ex = out + lead;
    size_t exlen = outlen - lead, used = 0;
    ex[0] = '\0';
    const char *p = next_hops ? next_hops : "";
    while (*p) {
        char one[1024];
        size_t len = strcspn(p, ",");
        if (len >= sizeof one) {
            snprintf(err, errlen, "RELAY_ENDPOINT=%.64s...: too long", p);
            return -EINVAL;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        p += len + (p[len] == ',');
        /* ipc:// and inproc:// never cross a network interface: nothing to
         * leave out */
        int rc = 0;
        if (strncmp(one, "tcp://", 6) == 0)
            rc = s_exclude_tcp(one, ex, exlen, &used, err, errlen);
        else if (len && strncmp(one, "ipc://", 6) != 0 && strncmp(one, "inproc://", 9) != 0) {
            snprintf(err, errlen,
                     "RELAY_ENDPOINT=%s: cannot tell which packets are the agent's own "
                     "(CAPTURE_OWN_TRAFFIC=true captures them)",
                     one);
            rc = -EINVAL;
        }
        if (rc < 0)
            return rc;
    }
    if (!*filter) {
        memmove(out, ex, used + 1);
        return 0;
    }
    if (used == 0) {
        snprintf(out, outlen, "%s", filter); /* fits: shorter than lead */
        return 0;
    }
    /* "(FILTER) and " fills exactly the room left before the exclusions */
    size_t flen = strlen(filter);
    out[0] = '(';
    memcpy(out + 1, filter, flen);
    memcpy(out + 1 + flen, ") and ", strlen(") and "));
    return 0;
}
