#!/usr/bin/env bash
# File input as operators use it: from a pipe (tcpdump -w - | tapmesh-capture
# with READ_FILE=-), with a BPF FILTER, and paced with REPLAY_SPEED.
. "$(dirname "$0")/lib.sh"
need tcpdump curl ss

input=$DATA/sample-ether.pcap
pick_port; port=$PORT
pick_port; mport=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out.pcapng -- "$COLLECT"
wait_listening "$mport" 10

# standard input
tcpdump --time-stamp-precision=nano -r "$input" -w "$WORK/piped.pcap" 2>/dev/null
IN_FROM=$WORK/piped.pcap start stdin RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
    NODE_ID=piped READ_FILE=- -- "$CAPTURE"
expect_exit stdin 60 0
wait_metric "$mport" 'tapmesh_collect_source_packets_total{source="piped"}' 800 5

# a filter: only the IPv6 packets
tcpdump --time-stamp-precision=nano -r "$input" -w "$WORK/ip6.pcap" ip6 2>/dev/null
n6=$(tcpdump -nn -r "$WORK/ip6.pcap" 2>/dev/null | wc -l)
start filtered RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=v6only \
    READ_FILE=$input FILTER=ip6 -- "$CAPTURE"
expect_exit filtered 60 0
wait_metric "$mport" 'tapmesh_collect_source_packets_total{source="v6only"}' "$n6" 5

# REPLAY_SPEED=2: the 0.81 s of the sample take about 0.4 s; =1 about 0.8 s
for speed in 1 2; do
    t0=$(date +%s%N)
    start "speed$speed" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
        NODE_ID=speed$speed READ_FILE=$input REPLAY_SPEED=$speed BATCH_MAX_DELAY_MS=10 -- "$CAPTURE"
    expect_exit "speed$speed" 60 0
    ms=$((($(date +%s%N) - t0) / 1000000))
    want=$((809 / speed))
    [ "$ms" -ge "$want" ] && [ "$ms" -le $((want + 700)) ] ||
        fail "REPLAY_SPEED=$speed took $ms ms, expected about $want"
done
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"

# every source's packets, in the output, as sent: split the output by IDB
for src in piped v6only speed1; do
    tshark -r "$WORK/out.pcapng" -Y "frame.interface_name == \"$src/$([ $src = piped ] && echo stdin || echo sample-ether.pcap)\"" \
        -w "$WORK/$src.pcapng" -F pcapng 2>/dev/null
done
same_packets "$input" "$WORK/piped.pcapng"
same_packets "$WORK/ip6.pcap" "$WORK/v6only.pcapng"
same_packets "$input" "$WORK/speed1.pcapng"
log "ok"
