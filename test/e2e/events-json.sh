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
check=$root/test/tools/events-check.py
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
python3 "$check" packets "$WORK/packet.events" "$WORK/packet.pcapng" 1200 ||
    fail "events differ from tshark's dissection"
[ "$(python3 "$check" losses "$WORK/packet.events")" = "raw sample-rawip.pcapng refused_linktype error 1" ] ||
    fail "losses: $(python3 "$check" losses "$WORK/packet.events")"
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
python3 "$check" flows "$WORK/flow.events" "$WORK/flow.pcapng" 50 8 "$early" ||
    fail "flow sums differ from the input's"
log "ok: per-flow packet and byte sums equal the input's, $early early flushes counted"
