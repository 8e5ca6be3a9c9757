#!/usr/bin/env bash
# A shipped capture file (Ethernet, IPv4 and IPv6, 60 to 9018 bytes,
# nanosecond timestamps) goes capture → collect as real processes. The
# output holds the same packets in the same order with identical timestamps,
# lengths and bytes; tcpdump, tshark and capinfos read it without a warning;
# the collector's counters tell the truth.
. "$(dirname "$0")/lib.sh"
need tcpdump tshark capinfos curl ss

input=$DATA/sample-ether.pcap
pick_port; data_port=$PORT
pick_port; mport=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$data_port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out.pcapng NODE_ID=collector -- "$COLLECT"
wait_listening "$mport" 10
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$data_port METRICS_ADDRPORT= NODE_ID=edge1 \
    READ_FILE=$input -- "$CAPTURE"
expect_exit capture 60 0
grep -q "done: 800 packets sent and acknowledged" "$WORK/capture.log" ||
    fail "capture did not report 800 packets acknowledged"

wait_metric "$mport" tapmesh_collect_packets_total 800 5
wait_metric "$mport" 'tapmesh_collect_source_packets_total{source="edge1"}' 800 5
wait_metric "$mport" tapmesh_collect_bytes_total "$(capinfos -M -d "$input" | awk -F': *' '/Data size/ {print $2+0}')" 5
wait_metric "$mport" tapmesh_collect_duplicate_batches_total 0 1
promcheck "$mport"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC after SIGTERM"

same_packets "$input" "$WORK/out.pcapng"
readers_accept "$WORK/out.pcapng" 800
same_packets "$input" "$WORK/out.pcapng.tcpdump.pcap"
capinfos -M "$WORK/out.pcapng" | has "File encapsulation: *ether" || fail "not Ethernet"
capinfos -M "$WORK/out.pcapng" | has "Name = edge1/sample-ether.pcap" || fail "IDB name is not node/interface"
log "ok: 800 packets identical, readers accept the output"
