#!/usr/bin/env python3
"""tunnel-pcap — wraps every frame of an Ethernet pcap in a tunnel, as a
switch's mirror session or a cloud's traffic mirror would send it, for the
decapsulation tests (this kernel has no GRE, GRETAP or ERSPAN devices).

  tunnel-pcap.py KIND IN.pcap OUT.pcap [options]

KIND: vxlan, gretap, gre (the inner frame's IP packet, its Ethernet header
removed), erspan1, erspan2, erspan3; or raw: no tunnel, the input's IPv4 and
IPv6 packets without their Ethernet header as LINKTYPE_RAW (what gre
carries, for comparison); or metamako: no tunnel, an Arista 7130 (Metamako)
timestamp trailer after each frame, its time the record's own (the next
switch's, with --stack, 1 us later each), flags "original FCS valid",
device 258, port 7; or arista7280: no tunnel, an Arista 7280 timestamp
header (EtherType 0xD28B) after each frame's addresses, its time the
record's own (see --versions, --tag-every, --move-to, --expect). The outer
frame of a tunnel is Ethernet / IPv4 (or
IPv6 with --ipv6) from 192.0.2.1 to 192.0.2.2; each record keeps the input's
timestamp, plus --shift-ns.

  --id N         VNI, GRE key (gretap/gre; none without --id) or session id
  --gra G        erspan3: timestamp granularity (default 2, IEEE 1588); the
                 header's timestamp is the input record's time (1588: its
                 nanoseconds, with the seconds in a platform id 3 sub-header)
  --shift-ns N   add N ns to each record's capture time (so that a switch
                 timestamp and the capture time differ)
  --noise        after every 10th frame, add one that passes the capture's
                 BPF filter but carries no tunnel of KIND (GRE version 1,
                 or VXLAN without the I flag)
  --stack N      metamako: N trailers, one per switch (default 1)
  --fcs          metamako: a new FCS after each trailer
  --corpus DIR   also write fuzz_decap inputs (kind byte, link type byte,
                 frame) for the first 8 frames into DIR (arista7280:
                 fuzz_trailer inputs, the capture time's seconds in 8 bytes
                 and the frame, for the first 12)
  --versions L   arista7280: the header versions given to the frames in
                 turn, comma-separated: 0010 (64-bit TAI), 0110 (64-bit
                 UTC), 0020 (48-bit TAI), 0120 (48-bit UTC), another hex
                 version (a header Wireshark reads no time from), or none
                 (no header); TAI is UTC + 37 s (default:
                 0010,0110,0020,0120,none,0030)
  --tag-every N  arista7280: every Nth frame first gets an 802.1Q tag (VLAN
                 100) after its addresses, the header after the tag
  --move-to NS   arista7280: the switch's times moved so that the first
                 frame's is NS (ns since the epoch), the gaps kept
  --expect FILE  arista7280: also write the frames as the switch received
                 them (tagged, without the header), each at the time the
                 capture agent should give it: the header's, or its capture
                 time for a frame without a readable one
"""
import argparse
import hashlib
import os
import struct
import sys
import zlib

KIND_BYTE = {"vxlan": 0, "gretap": 1, "gre": 2, "erspan1": 3, "erspan2": 3, "erspan3": 3}


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xA1B2C3D4:
        endian, nano = "<", False
    elif magic == 0xA1B23C4D:
        endian, nano = "<", True
    elif magic == 0xD4C3B2A1:
        endian, nano = ">", False
    elif magic == 0x4D3CB2A1:
        endian, nano = ">", True
    else:
        sys.exit(f"{path}: not a classic pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        sys.exit(f"{path}: link type {linktype}, expected Ethernet (1)")
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        ns = sec * 10**9 + (frac if nano else frac * 1000)
        out.append((ns, data[off:off + caplen]))
        off += caplen
    return out


def write_pcap(path, records, linktype=1):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype))
        for ns, frame in records:
            f.write(struct.pack("<IIII", ns // 10**9, ns % 10**9, len(frame), len(frame)))
            f.write(frame)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def outer(proto, payload, ipv6):
    eth = bytes.fromhex("020000000002" "020000000001")
    if ipv6:
        ip = struct.pack("!IHBB", 0x60000000, len(payload), proto, 64)
        ip += bytes.fromhex("20010db8000000000000000000000001")
        ip += bytes.fromhex("20010db8000000000000000000000002")
        return eth + b"\x86\xdd" + ip + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                      bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return eth + b"\x08\x00" + hdr + payload


def vxlan(inner, vni, flags=0x08):
    udp_len = 8 + 8 + len(inner)
    return struct.pack("!HHHH", 49152, 4789, udp_len, 0) + struct.pack("!BxxxI", flags,
                                                                       vni << 8) + inner


def gre(proto, inner, key=None, seq=None, version=0):
    flags = (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0) | version
    h = struct.pack("!HH", flags, proto)
    if key is not None:
        h += struct.pack("!I", key)
    if seq is not None:
        h += struct.pack("!I", seq)
    return h + inner


def wrap(kind, ns, frame, seq, args):
    sid = args.id if args.id is not None else 0
    if kind == "vxlan":
        return 17, vxlan(frame, sid)
    if kind == "gretap":
        return 47, gre(0x6558, frame, key=args.id)
    if kind == "gre":
        etype = struct.unpack("!H", frame[12:14])[0]
        if etype not in (0x0800, 0x86DD):
            return None
        return 47, gre(etype, frame[14:], key=args.id)
    if kind == "erspan1":
        return 47, gre(0x88BE, frame)
    if kind == "erspan2":
        hdr = struct.pack("!HHI", 1 << 12 | 10, sid & 0x3FF, 7)
        return 47, gre(0x88BE, hdr + frame, seq=seq)
    if kind == "erspan3":
        gra = args.gra
        if gra == 2:
            low, upper = ns % 10**9, ns // 10**9
        elif gra == 1:
            units = ns // 100
            low, upper = units & 0xFFFFFFFF, units >> 32
        else:
            units = ns // 100000
            low, upper = units & 0xFFFFFFFF, units >> 32
        hdr = struct.pack("!HHIHH", 2 << 12 | 10, sid & 0x3FF, low, 0, gra << 1 | 1)
        hdr += struct.pack("!II", 3 << 26 | 5, upper)
        return 47, gre(0x22EB, hdr + frame, seq=seq)
    sys.exit(f"unknown kind {kind}")


def metamako(frame, ns, fcs):
    b = frame + struct.pack("!I", zlib.crc32(frame))
    b += struct.pack("!III", ns // 10**9, ns % 10**9, 1 << 24 | 258 << 8 | 7)
    if fcs:
        b += struct.pack("!I", zlib.crc32(b))
    return b


TAI_UTC_S = 37


def arista7280(frame, ns, version):
    """The frame with a timestamp header of `version` (None: none) after its
    addresses and tag, the switch's time being `ns` (UTC); and whether the
    header carries a time the capture agent reads."""
    if version is None:
        return frame, False
    at = 16 if frame[12:14] == b"\x81\x00" else 12
    sec = ns // 10**9 + (TAI_UTC_S if version & 0xFF00 == 0 else 0)
    if version & 0x00F0 == 0x0010:
        ts = struct.pack("!II", sec & 0xFFFFFFFF, ns % 10**9)
    else:
        ts = struct.pack("!HI", sec & 0xFFFF, ns % 10**9)
    known = version in (0x0010, 0x0110, 0x0020, 0x0120)
    return frame[:at] + struct.pack("!HHH", 0xD28B, 1, version) + ts + frame[at:], known


def noise(kind, frame, ipv6):
    if kind == "vxlan":
        return outer(17, vxlan(frame, 1, flags=0), ipv6)
    return outer(47, gre(0x880B, frame, key=1, version=1), ipv6)  # PPTP's enhanced GRE


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--id", type=int)
    p.add_argument("--gra", type=int, default=2)
    p.add_argument("--shift-ns", type=int, default=0)
    p.add_argument("--ipv6", action="store_true")
    p.add_argument("--noise", action="store_true")
    p.add_argument("--stack", type=int, default=1)
    p.add_argument("--fcs", action="store_true")
    p.add_argument("--corpus")
    p.add_argument("--versions", default="0010,0110,0020,0120,none,0030")
    p.add_argument("--tag-every", type=int, default=0)
    p.add_argument("--move-to", type=int)
    p.add_argument("--expect")
    args = p.parse_args()
    records = []
    n = 0
    if args.kind == "raw":
        for ns, frame in read_pcap(args.input):
            if struct.unpack("!H", frame[12:14])[0] in (0x0800, 0x86DD):
                records.append((ns + args.shift_ns, frame[14:]))
        write_pcap(args.output, records, 101)
        return
    if args.kind == "metamako":
        for ns, frame in read_pcap(args.input):
            out = frame
            for i in range(args.stack):
                if i and args.fcs:
                    out = out[:-4]  # the switch before's FCS is this one's original FCS
                out = metamako(out, ns + i * 1000, args.fcs)
            records.append((ns + args.shift_ns, out))
        write_pcap(args.output, records)
        return
    if args.kind == "arista7280":
        versions = [None if v == "none" else int(v, 16) for v in args.versions.split(",")]
        expect = []
        first = None
        for i, (ns, frame) in enumerate(read_pcap(args.input)):
            first = ns if first is None else first
            if args.move_to is not None:
                ns = ns - first + args.move_to
            if args.tag_every and i % args.tag_every == args.tag_every - 1:
                frame = frame[:12] + struct.pack("!HH", 0x8100, 100) + frame[12:]
            out, known = arista7280(frame, ns, versions[i % len(versions)])
            cap = ns + args.shift_ns
            records.append((cap, out))
            expect.append((ns if known else cap, frame if known else out))
            if args.corpus and i < 12:
                blob = struct.pack("!Q", cap // 10**9) + out
                name = hashlib.sha1(blob).hexdigest()
                with open(os.path.join(args.corpus, name), "wb") as f:
                    f.write(blob)
        write_pcap(args.output, records)
        if args.expect:
            write_pcap(args.expect, expect)
        return
    for ns, frame in read_pcap(args.input):
        w = wrap(args.kind, ns, frame, n, args)
        if w is None:
            continue
        out = outer(w[0], w[1], args.ipv6)
        records.append((ns + args.shift_ns, out))
        if args.corpus and n < 8:
            blob = bytes([KIND_BYTE[args.kind], 0]) + out
            name = hashlib.sha1(blob).hexdigest()
            with open(os.path.join(args.corpus, name), "wb") as f:
                f.write(blob)
        n += 1
        if args.noise and n % 10 == 0:
            records.append((ns + args.shift_ns, noise(args.kind, frame, args.ipv6)))
    write_pcap(args.output, records)


if __name__ == "__main__":
    main()
