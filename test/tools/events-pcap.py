#!/usr/bin/env python3
"""events-pcap — writes a pcap (nanosecond timestamps) for the event-stream
tests: Ethernet frames of FLOWS flows, interleaved, over IPv4 and IPv6, UDP
and TCP, some 802.1Q-tagged, some ARP (no IP), of varied lengths.

    events-pcap.py OUT.pcap COUNT FLOWS SEED START_NS
"""
import random
import struct
import sys

out, count, flows, seed, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)


def flow_frame(f, size):
    mac_dst = bytes([0x02, 0, 0, 0, seed & 0xff, f & 0xff])
    mac_src = bytes([0x02, 1, 0, 0, seed & 0xff, f & 0xff])
    kind = f % 5  # 0 v4 udp, 1 v4 tcp, 2 v6 udp, 3 v4 udp in VLAN, 4 ARP
    sport, dport = 1024 + f, 53 if kind in (0, 3) else 443
    if kind == 4:
        body = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + mac_src + bytes([10, 0, 0, f & 0xff]) + bytes(6) + bytes([10, 0, 1, f & 0xff])
        return mac_dst + mac_src + b"\x08\x06" + body
    if kind == 2:
        l4 = struct.pack(">HHHH", sport, dport, 8 + size, 0) + bytes(size)
        ip = struct.pack(">IHBB", 0x60000000, len(l4), 17, 64) + b"\x20\x01\x0d\xb8" + bytes(10) + struct.pack(">H", f) + b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"
        return mac_dst + mac_src + b"\x86\xdd" + ip + l4
    if kind == 1:
        l4 = struct.pack(">HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x18, 8192, 0, 0) + bytes(size)
        proto = 6
    else:
        l4 = struct.pack(">HHHH", sport, dport, 8 + size, 0) + bytes(size)
        proto = 17
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
                     bytes([192, 0, 2, f & 0xff]), bytes([198, 51, 100, seed & 0xff]))
    eth = mac_dst + mac_src + (struct.pack(">HH", 0x8100, 0xa000 | (100 + f)) if kind == 3 else b"") + b"\x08\x00"
    return eth + ip + l4


with open(out, "wb") as w:
    w.write(struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 65535, 1))
    ts = start
    for i in range(count):
        f = rnd.randrange(flows)
        frame = flow_frame(f, rnd.randrange(0, 600))
        ts += rnd.randrange(1000, 100000)
        w.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), len(frame)))
        w.write(frame)
