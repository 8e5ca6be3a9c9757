#!/usr/bin/env python3
"""events-check — checks JSON event lines (EVENTS=json) against what tshark
dissects from a pcapng of the same packets, for the event-stream tests.
Every line must parse as JSON. Exit status 1 with the first difference.

    events-check.py packets EVENTS PCAPNG COUNT
        the packet events, in order, are the file's packets, COUNT of them:
        time, lengths, source/interface, MACs, ethertype, VLAN, IPv4/IPv6
        addresses and protocol, ports; reason captured, severity info
    events-check.py flows EVENTS PCAPNG FLOWS LEFT EARLY
        the flow events' packet and byte sums per flow equal the file's
        (FLOWS distinct flows); every flow event beyond the LEFT sent at
        exit was one of the EARLY flushes
    events-check.py losses EVENTS
        prints each loss event: source iface reason severity count
"""
import collections
import json
import subprocess
import sys
from decimal import Decimal


def events(path):
    return [json.loads(l) for l in open(path, "rb").read().decode().splitlines()]


def tshark(pcapng, fields):
    cmd = ["tshark", "-r", pcapng, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    return [(r.split("\t") + [""] * len(fields))[:len(fields)]
            for r in out.stdout.decode().splitlines()]


def num(x):
    return int(x, 0) if x else None


def packets(path, pcapng, count):
    got = [e for e in events(path) if e["event"] == "packet"]
    rows = tshark(pcapng, ["frame.time_epoch", "frame.len", "frame.cap_len",
                           "frame.interface_name", "eth.src", "eth.dst", "eth.type", "vlan.id",
                           "vlan.etype", "ip.src", "ip.dst", "ip.proto", "ipv6.src", "ipv6.dst",
                           "ipv6.nxt", "tcp.srcport", "tcp.dstport", "udp.srcport",
                           "udp.dstport"])
    assert len(got) == len(rows) == count, (len(got), len(rows), count)
    for i, (e, r) in enumerate(zip(got, rows)):
        (t, flen, clen, ifname, esrc, edst, etype, vid, vetype, src4, dst4, p4, src6, dst6, p6,
         tsp, tdp, usp, udp) = r
        want = {
            "ts_ns": int(Decimal(t) * 10**9), "len": int(flen), "caplen": int(clen),
            "source/iface": ifname, "eth_src": esrc, "eth_dst": edst,
            "ethertype": num(vetype) if vid else num(etype), "vlan": num(vid),
            "ip_version": 4 if src4 else 6 if src6 else None,
            "ip_src": src4 or src6 or None, "ip_dst": dst4 or dst6 or None,
            "ip_proto": num(p4 or p6), "src_port": num(tsp or usp), "dst_port": num(tdp or udp),
        }
        have = dict(e, **{"source/iface": e["source"] + "/" + e["iface"]})
        for k, v in want.items():
            assert have.get(k) == v, "packet %d: %s is %r, tshark says %r" % (i + 1, k,
                                                                              have.get(k), v)
        assert e["reason"] == "captured" and e["severity"] == "info", e
    print("%d packet events equal tshark's dissection" % len(got))


def flows(path, pcapng, nflows, left, early):
    got_events = [e for e in events(path) if e["event"] == "flow"]
    want = collections.defaultdict(lambda: [0, 0])
    for (flen, ifname, esrc, edst, vid, s4, d4, s6, d6, tsp, usp) in tshark(
            pcapng, ["frame.len", "frame.interface_name", "eth.src", "eth.dst", "vlan.id",
                     "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "udp.srcport"]):
        k = (ifname, esrc, edst, vid, s4 or s6, d4 or d6, tsp or usp)
        want[k][0] += 1
        want[k][1] += int(flen)
    got = collections.defaultdict(lambda: [0, 0])
    for e in got_events:
        k = (e["source"] + "/" + e["iface"], e["eth_src"], e["eth_dst"], str(e.get("vlan", "")),
             e.get("ip_src", ""), e.get("ip_dst", ""), str(e.get("src_port", "")))
        got[k][0] += e["packets"]
        got[k][1] += e["bytes"]
        assert e["first_ns"] <= e["last_ns"] and e["ts_ns"] == e["first_ns"], e
    assert len(want) == nflows, (len(want), nflows)
    assert dict(got) == dict(want), (sorted(got.items())[:3], sorted(want.items())[:3])
    assert len(got_events) - left == early, (len(got_events), left, early)
    print("%d flow events, %d flushed early: sums equal the input's" % (len(got_events), early))


def losses(path):
    for e in events(path):
        if e["event"] == "loss":
            print(e["source"], e["iface"] or "-", e["reason"], e["severity"], e["count"])


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    if what == "packets":
        packets(args[0], args[1], int(args[2]))
    elif what == "flows":
        flows(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
    elif what == "losses":
        losses(args[0])
    else:
        sys.exit(__doc__)
