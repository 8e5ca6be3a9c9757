#!/usr/bin/env bash
# A PCAP-over-IP client that connects and never reads is cut off once it is
# more than PCAP_OVER_IP_BUFFER_MB (1) behind: closed, counted, logged once
# with its address. Nothing else waits for it: the agents finish ("sent and
# acknowledged"), the file holds every input packet, and a client that
# reads gets them all.
. "$(dirname "$0")/lib.sh"
need mergecap curl ss python3

client=$root/test/tools/poip-client.py
for i in 1 2; do
    "$TOOLS/gen-sample" "$WORK/in$i.pcap" 4000 ether "$((i * 104729))"
done
mergecap -F pcapng -w "$WORK/expected.pcapng" "$WORK"/in{1,2}.pcap
pick_port; port=$PORT
pick_port; mport=$PORT
pick_port; pport=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out.pcapng EXPECT_SOURCES=2 PCAP_OVER_IP=127.0.0.1:$pport \
    PCAP_OVER_IP_BUFFER_MB=1 -- "$COLLECT"
wait_listening "$mport" 10
start stalled -- python3 "$client" "127.0.0.1:$pport" "$WORK/stalled.pcap" --stall
start reader -- python3 "$client" "127.0.0.1:$pport" "$WORK/reader.pcap"
wait_metric "$mport" tapmesh_collect_pcap_over_ip_clients 2 20
for i in 1 2; do
    start "agent$i" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=site$i \
        READ_FILE=$WORK/in$i.pcap -- "$CAPTURE"
done
for i in 1 2; do
    expect_exit "agent$i" 30 0
    grep -q "done: 4000 packets sent and acknowledged" "$WORK/agent$i.log" ||
        fail "agent$i: no 'done: 4000 packets sent and acknowledged'"
done
wait_metric "$mport" tapmesh_collect_packets_total 8000 10
wait_metric "$mport" tapmesh_collect_pcap_over_ip_clients_cut_total 1 5
wait_metric "$mport" tapmesh_collect_pcap_over_ip_clients 1 5
grep -q "PCAP_OVER_IP: 127.0.0.1:[0-9]* cut off: it fell more than PCAP_OVER_IP_BUFFER_MB" \
    "$WORK/collect.log" || fail "no log line for the cut client"
[ "$(grep -c 'cut off' "$WORK/collect.log")" = 1 ] || fail "the cut was logged more than once"
# the stalled client finds its connection closed once it reads
kill -USR1 "${PIDS[stalled]}"
expect_exit stalled 10 0
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
expect_exit reader 10 0
same_packets "$WORK/expected.pcapng" "$WORK/out.pcapng"
same_packets "$WORK/expected.pcapng" "$WORK/reader.pcap"
log "ok: the stalled client was cut off ($(grep -o '127.0.0.1:[0-9]* cut off' "$WORK/collect.log")); nothing else waited; nothing lost"
