#!/usr/bin/env bash
# OUTPUT_FORMAT=pcap: classic pcap with the nanosecond magic, for old tools;
# the same packets, read by tcpdump, tshark and capinfos.
. "$(dirname "$0")/lib.sh"
need tcpdump tshark capinfos curl ss

input=$DATA/sample-ether.pcap
pick_port; port=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= OUTPUT=$WORK/out.pcap \
    OUTPUT_FORMAT=pcap -- "$COLLECT"
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge1 \
    READ_FILE=$input -- "$CAPTURE"
expect_exit capture 60 0
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
magic=$(od -An -tx4 -N4 "$WORK/out.pcap" | tr -d ' ')
[ "$magic" = a1b23c4d ] || fail "magic $magic, expected a1b23c4d (nanosecond pcap)"
same_packets "$input" "$WORK/out.pcap"
readers_accept "$WORK/out.pcap" 800
capinfos -M "$WORK/out.pcap" | has "File timestamp precision: *nanoseconds" || fail "not nanoseconds"
log "ok"
