/*
 * linktype — libpcap hands out and takes DLT_ values; files and the wire
 * carry LINKTYPE_ values. They are equal except for a few historical DLTs
 * (libpcap's pcap-common.c, dlt_to_linktype / linktype_to_dlt, which it
 * does not export). Linux values.
 */
#ifndef TAPMESH_LINKTYPE_H
#define TAPMESH_LINKTYPE_H

static inline int linktype_from_dlt(int dlt)
{
    switch (dlt) {
    case 11: /* DLT_ATM_RFC1483 */
        return 100;
    case 12: /* DLT_RAW (most systems) */
    case 14: /* DLT_RAW (OpenBSD) */
        return 101;
    case 15: /* DLT_SLIP_BSDOS */
        return 102;
    case 16: /* DLT_PPP_BSDOS */
        return 103;
    case 17: /* DLT_OLD_PFLOG */
        return 117;
    default:
        return dlt;
    }
}

static inline int linktype_to_dlt(int linktype)
{
    switch (linktype) {
    case 100:
        return 11;
    case 101:
        return 12;
    case 102:
        return 15;
    case 103:
        return 16;
    default:
        return linktype;
    }
}

#endif
