#!/usr/bin/env bash
# LINKTYPE_POLICY=first (the default): once an Ethernet source has joined,
# a raw-IP source is refused at HELLO; the agent logs the collector's
# reason (both link types and the setting) and exits non-zero; the output
# still holds exactly the Ethernet packets, readable by tcpdump. With
# LINKTYPE_POLICY=mixed both are taken.
. "$(dirname "$0")/lib.sh"
need tcpdump curl ss

pick_port; port=$PORT
pick_port; mport=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out.pcapng -- "$COLLECT"
wait_listening "$mport" 10
start eth RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=eth \
    READ_FILE=$DATA/sample-ether.pcap -- "$CAPTURE"
expect_exit eth 60 0
start raw RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=raw \
    READ_FILE=$DATA/sample-rawip.pcapng -- "$CAPTURE"
wait_exit raw 30
[ "$RC" != 0 ] || fail "the refused agent exited 0"
grep -q "refused this source: raw/sample-rawip.pcapng has link type 101 but this output has link type 1 (LINKTYPE_POLICY=first" \
    "$WORK/raw.log" || fail "agent did not log the reason: $(cat "$WORK/raw.log")"
# the agent kept what it had read, in its dead-letter file: the start of its input
dead=("$DLQ_DIR"/raw-*.pcapng)
[ -f "${dead[0]}" ] || fail "the refused agent wrote no dead-letter file"
n=$(tcpdump -nn -r "${dead[0]}" 2>/dev/null | wc -l)
[ "$n" -gt 0 ] || fail "the dead-letter file is empty"
tcpdump --time-stamp-precision=nano -r "$DATA/sample-rawip.pcapng" -c "$n" -w "$WORK/head.pcap" 2>/dev/null
same_packets "$WORK/head.pcap" "${dead[0]}"
grep -q "$n of $n packets .* dead-letter file" "$WORK/raw.log" || fail "no dead-letter summary"
wait_metric "$mport" 'tapmesh_collect_sources_refused_total{reason="linktype"}' 1 5
wait_metric "$mport" tapmesh_collect_packets_total 800 5
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
readers_accept "$WORK/out.pcapng" 800
same_packets "$DATA/sample-ether.pcap" "$WORK/out.pcapng"

# mixed: both link types in one pcapng (tshark and capinfos read it)
pick_port; port=$PORT
start mixed COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= OUTPUT=$WORK/mixed.pcapng \
    LINKTYPE_POLICY=mixed -- "$COLLECT"
start eth2 RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=eth \
    READ_FILE=$DATA/sample-ether.pcap -- "$CAPTURE"
expect_exit eth2 60 0
start raw2 RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=raw \
    READ_FILE=$DATA/sample-rawip.pcapng -- "$CAPTURE"
expect_exit raw2 60 0
stop mixed
[ "$RC" = 0 ] || fail "mixed collect exited $RC"
n=$(tshark -n -r "$WORK/mixed.pcapng" 2>/dev/null | wc -l)
[ "$n" = 1200 ] || fail "tshark sees $n packets in the mixed output, expected 1200"
capinfos -M "$WORK/mixed.pcapng" | has "Number of interfaces in file: 2" || fail "expected 2 IDBs"
log "ok"
