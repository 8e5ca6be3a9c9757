/*
 * inject — the collector's second kind of output: every packet written to
 * the file output is also sent on, in the same merged order, out of a
 * local interface (OUTPUT_DEVICE, libpcap's pcap_inject) or into a tunnel
 * to a remote host (TUNNEL: GRETAP, GRE or VXLAN over IPv4).
 *
 * A send is synchronous: it happens when the packet is written, before the
 * commit that acknowledges it, so an acknowledged packet has been handed to
 * every output. A failed send is counted and logged (rate-limited), never
 * stops the collector and never holds the file output back: a tap is a
 * copy, and a copy that cannot go out must not lose the recording.
 *
 * Both kinds share what is done to a frame on its way out: the source's
 * 802.1Q tag (VLAN_TAGS) and a length limit (OUTPUT_SNAPLEN); a tunnel
 * also cuts each frame so that the outer IPv4 packet fits TUNNEL_MTU.
 * The sender is a small ops struct (device or tunnel), chosen at creation.
 */
#ifndef TAPMESH_INJECT_H
#define TAPMESH_INJECT_H

#include <stddef.h>
#include <stdint.h>

#include "encap.h"
#include "metrics.h"
#include "wire.h"

typedef struct inject_t inject_t;

typedef struct {
    const encap_vlan_tag_t *tags; /* VLAN_TAGS: copied; sources not listed go untagged */
    size_t ntags;
    uint32_t snaplen; /* OUTPUT_SNAPLEN: longest frame sent (tag included); 0: no limit */
} inject_opts_t;

/* Opens `device` for sending (pcap_create, pcap_activate; its receive
 * side gets a filter that takes nothing) and refuses one whose link type is
 * not Ethernet. Registers tapmesh_collect_output_device_* metrics, with a
 * label device="NAME". Returns NULL with `err` naming the device. */
inject_t *inject_device_new(const char *device, const inject_opts_t *opts, metrics_t *metrics,
                            char *err, size_t errlen);

/* Resolves the tunnel's host (IPv4) and opens its socket: raw IPPROTO_GRE
 * for GRE and GRETAP (CAP_NET_RAW), UDP for VXLAN. `mtu` bounds the outer
 * IPv4 packet. Registers tapmesh_collect_tunnel_* metrics. Returns NULL
 * with `err` naming the tunnel. */
inject_t *inject_tunnel_new(const encap_tunnel_t *tunnel, unsigned mtu, const inject_opts_t *opts,
                            metrics_t *metrics, char *err, size_t errlen);

/* Closes and frees. Accepts NULL. */
void inject_destroy(inject_t **self_p);

/* Sends one packet of `source` whose interface has `linktype`: Ethernet
 * for the device, GRETAP and VXLAN; Ethernet or raw IP for GRE. Anything
 * else, and every failure, is counted (errors_total{reason=...}) and logged
 * at most every few seconds. Returns 0 when sent, or a negative errno. */
int inject_packet(inject_t *self, const char *source, uint16_t linktype, const wire_packet_t *pkt);

/* "OUTPUT_DEVICE=eth1" or "TUNNEL=gretap://10.0.0.9": for messages. */
const char *inject_name(const inject_t *self);

#endif
