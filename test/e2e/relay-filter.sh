#!/usr/bin/env bash
# A relay with FILTER forwards only the packets that match (so a site can
# send on only what the core may see): the collector's output is exactly
# the matching packets of the input, timestamps included; the capture agent
# still exits 0 (filtered packets count as delivered); the relay counts
# what it kept back.
. "$(dirname "$0")/lib.sh"
need tcpdump curl ss

input=$DATA/sample-ether.pcap
tcpdump --time-stamp-precision=nano -r "$input" -w "$WORK/expected.pcap" 'ip6 or (udp and port 9999)' 2>/dev/null
want=$(tcpdump -nn -r "$WORK/expected.pcap" 2>/dev/null | wc -l)
pick_port; cport=$PORT
pick_port; rport=$PORT
pick_port; mr=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= OUTPUT=$WORK/out.pcapng \
    -- "$COLLECT"
start relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$mr FILTER='ip6 or (udp and port 9999)' -- "$RELAY"
wait_listening "$mr" 10
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$rport METRICS_ADDRPORT= NODE_ID=site \
    READ_FILE=$input BATCH_MAX_BYTES=16384 -- "$CAPTURE"
expect_exit capture 60 0
wait_metric "$mr" tapmesh_relay_filtered_packets_total $((800 - want)) 5
stop relay
[ "$RC" = 0 ] || fail "relay exited $RC after SIGTERM"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/expected.pcap" "$WORK/out.pcapng"
log "ok: $want of 800 packets passed the relay's filter, exactly"
