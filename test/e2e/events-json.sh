#!/usr/bin/env bash
# EVENTS=json to a UDP listener: two agents into one collector, one event
# per packet, in the output's order; every line parses as JSON and says
# what tshark dissects from the same packet of the collector's output
# (time, lengths, interface, MACs, ethertype, VLAN, IPv4/IPv6 addresses and
# protocol, ports); datagrams hold whole lines within EVENTS_DATAGRAM_BYTES.
# A raw-IP source refused at HELLO is an event (refused_linktype, error).
# Then EVENTS_UNIQUE_S with a flow table smaller than the flows: per-flow
# packet and byte sums equal the input's, the early flushes counted.
. "$(dirname "$0")/lib.sh"
need tshark python3 curl ss

gen=$root/test/tools/events-pcap.py
listen=$root/test/tools/udp-listen.py
python3 "$gen" "$WORK/a.pcap" 700 30 1 1700000000000000000
python3 "$gen" "$WORK/b.pcap" 500 20 2 1700000000000000500

# run NAME EXTRA_SETTINGS...: the collector with EVENTS=json to a listener,
# both agents through it, the raw-IP one last; the listener's bytes in
# $WORK/NAME.events
run() {
    local name=$1
    shift
    pick_port; local port=$PORT
    pick_port; mport=$PORT
    pick_port; local uport=$PORT
    start "listen-$name" -- python3 "$listen" "$uport" "$WORK/$name.events" 3 20
    for _ in $(seq 1 100); do [ -e "$WORK/$name.events.ready" ] && break; sleep 0.1; done
    start "collect-$name" COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
        OUTPUT="$WORK/$name.pcapng" EXPECT_SOURCES=site1,site2 EVENTS=json \
        EVENTS_TO=udp://127.0.0.1:$uport EVENTS_INTERVAL_MS=50 EVENTS_BATCH=16 \
        EVENTS_DATAGRAM_BYTES=2048 "$@" -- "$COLLECT"
    wait_listening "$mport" 10
    start "a-$name" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=site1 \
        READ_FILE="$WORK/a.pcap" -- "$CAPTURE"
    start "b-$name" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=site2 \
        READ_FILE="$WORK/b.pcap" -- "$CAPTURE"
    expect_exit "a-$name" 30 0
    expect_exit "b-$name" 30 0
    wait_metric "$mport" tapmesh_collect_packets_total 1200 10
    start "raw-$name" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=raw \
        READ_FILE="$DATA/sample-rawip.pcapng" RETRY_TIMEOUT_S=1 -- "$CAPTURE"
    wait_exit "raw-$name" 30
    [ "$RC" != 0 ] || fail "the raw-IP agent was not refused"
}

# ---- one event per packet
run packet
wait_metric "$mport" tapmesh_collect_events_sent_total 1201 10
wait_metric "$mport" 'tapmesh_collect_events_dropped_total{reason="queue_full"}' 0 1
stop collect-packet
[ "$RC" = 0 ] || fail "collect exited $RC"
wait_exit listen-packet 20
tshark -r "$WORK/packet.pcapng" -T fields -E separator=/t -E occurrence=f \
    -e frame.time_epoch -e frame.len -e frame.cap_len -e frame.interface_name \
    -e eth.src -e eth.dst -e eth.type -e vlan.id -e vlan.etype \
    -e ip.src -e ip.dst -e ip.proto -e ipv6.src -e ipv6.dst -e ipv6.nxt \
    -e tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport \
    >"$WORK/tshark.tsv" 2>/dev/null
python3 - "$WORK/packet.events" "$WORK/tshark.tsv" <<'PY' || fail "events differ from tshark's dissection"
import json, sys
from decimal import Decimal
lines = open(sys.argv[1], "rb").read().decode().splitlines()
events = [json.loads(l) for l in lines]  # every line is JSON
packets = [e for e in events if e["event"] == "packet"]
losses = [e for e in events if e["event"] == "loss"]
rows = [r.split("\t") for r in open(sys.argv[2]).read().splitlines()]
assert len(packets) == len(rows) == 1200, (len(packets), len(rows))
def num(x):
    return int(x, 0) if x else None
for i, (e, r) in enumerate(zip(packets, rows)):
    (t, flen, clen, ifname, esrc, edst, etype, vid, vetype, src4, dst4, p4, src6, dst6, p6,
     tsp, tdp, usp, udp) = (r + [""] * 19)[:19]
    want = {
        "ts_ns": int(Decimal(t) * 10**9), "len": int(flen), "caplen": int(clen),
        "source/iface": ifname, "eth_src": esrc, "eth_dst": edst,
        "ethertype": num(vetype) if vid else num(etype), "vlan": num(vid),
        "ip_version": 4 if src4 else 6 if src6 else None,
        "ip_src": src4 or src6 or None, "ip_dst": dst4 or dst6 or None,
        "ip_proto": num(p4 or p6), "src_port": num(tsp or usp), "dst_port": num(tdp or udp),
    }
    got = dict(e, **{"source/iface": e["source"] + "/" + e["iface"]})
    for k, v in want.items():
        assert got.get(k) == v, "packet %d: %s is %r, tshark says %r" % (i + 1, k, got.get(k), v)
    assert e["reason"] == "captured" and e["severity"] == "info", e
assert [(l["source"], l["iface"], l["reason"], l["severity"], l["count"]) for l in losses] == \
    [("raw", "sample-rawip.pcapng", "refused_linktype", "error", 1)], losses
print("%d packet events equal tshark's dissection" % len(packets))
PY
# datagrams: whole lines, within the bound
awk '$1 > 2048 {bad = 1} END {exit bad}' "$WORK/packet.events.sizes" || fail "a datagram over 2048 bytes"
python3 - "$WORK/packet.events" "$WORK/packet.events.sizes" <<'PY' || fail "a datagram cut a line"
import sys
data = open(sys.argv[1], "rb").read()
at = 0
for n in map(int, open(sys.argv[2]).read().split()):
    assert data[at + n - 1:at + n] == b"\n", at
    at += n
PY
log "ok: 1200 JSON packet events equal tshark's dissection, refused source as an event"

# ---- one event per flow: 50 flows through a table of 8
run flow EVENTS_UNIQUE_S=60 EVENTS_FLOW_TABLE=8
wait_metric "$mport" tapmesh_collect_events_flow_table_flows 8 10
early=$(metric "$mport" tapmesh_collect_events_flows_flushed_early_total)
[ "${early:-0}" -gt 0 ] || fail "no flow flushed early"
stop collect-flow
[ "$RC" = 0 ] || fail "collect exited $RC"
wait_exit listen-flow 20
tshark -r "$WORK/flow.pcapng" -T fields -E separator=/t -E occurrence=f \
    -e frame.len -e frame.interface_name -e eth.src -e eth.dst -e vlan.id \
    -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e tcp.srcport -e udp.srcport \
    >"$WORK/flow.tsv" 2>/dev/null
python3 - "$WORK/flow.events" "$WORK/flow.tsv" "$early" <<'PY' || fail "flow sums differ from the input's"
import collections, json, sys
events = [json.loads(l) for l in open(sys.argv[1], "rb").read().decode().splitlines()]
flows = [e for e in events if e["event"] == "flow"]
want = collections.defaultdict(lambda: [0, 0])
for r in open(sys.argv[2]).read().splitlines():
    flen, ifname, esrc, edst, vid, s4, d4, s6, d6, tsp, usp = (r.split("\t") + [""] * 11)[:11]
    k = (ifname, esrc, edst, vid, s4 or s6, d4 or d6, tsp or usp)
    want[k][0] += 1
    want[k][1] += int(flen)
got = collections.defaultdict(lambda: [0, 0])
for e in flows:
    k = (e["source"] + "/" + e["iface"], e["eth_src"], e["eth_dst"], str(e.get("vlan", "")),
         e.get("ip_src", ""), e.get("ip_dst", ""), str(e.get("src_port", "")))
    got[k][0] += e["packets"]
    got[k][1] += e["bytes"]
    assert e["first_ns"] <= e["last_ns"] and e["ts_ns"] == e["first_ns"], e
assert len(want) == 50, len(want)
assert dict(got) == dict(want), (sorted(got.items())[:3], sorted(want.items())[:3])
# every event beyond the 8 flows left at exit was an early flush
assert len(flows) - 8 == int(sys.argv[3]), (len(flows), sys.argv[3])
print("%d flow events, %s flushed early: sums equal the input's" % (len(flows), sys.argv[3]))
PY
log "ok: per-flow packet and byte sums equal the input's, $early early flushes counted"
