#!/usr/bin/env bash
# OUTPUT=none: no file, the packets go to the network readers only. With
# PCAP_OVER_IP, a client connected before the agent gets every packet
# (timestamps, lengths, bytes), the agent's batches are acknowledged, and
# nothing is created. OUTPUT=none with no network reader, and PCAP_OVER_IP
# with LINKTYPE_POLICY=mixed, are refused at start-up (status 2, a line
# naming the setting).
. "$(dirname "$0")/lib.sh"
need tcpdump curl ss python3

client=$root/test/tools/poip-client.py
cd "$WORK"
start refused OUTPUT=none METRICS_ADDRPORT= COLLECT_ENDPOINT=tcp://127.0.0.1:1 -- "$COLLECT"
expect_exit refused 10 2
grep -q "OUTPUT=none: nothing would get the packets; set PCAP_OVER_IP, OUTPUT_DEVICE or TUNNEL" \
    "$WORK/refused.log" || fail "OUTPUT=none alone: $(cat "$WORK/refused.log")"
start mixed OUTPUT=none PCAP_OVER_IP=127.0.0.1:1 LINKTYPE_POLICY=mixed METRICS_ADDRPORT= \
    COLLECT_ENDPOINT=tcp://127.0.0.1:1 -- "$COLLECT"
expect_exit mixed 10 2
grep -q "PCAP_OVER_IP=127.0.0.1:1: a pcap stream has one link type.*LINKTYPE_POLICY" \
    "$WORK/mixed.log" || fail "PCAP_OVER_IP with LINKTYPE_POLICY=mixed: $(cat "$WORK/mixed.log")"

"$TOOLS/gen-sample" "$WORK/in.pcap" 3000 ether 11
pick_port; port=$PORT
pick_port; mport=$PORT
pick_port; pport=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=none STARTUP_WAIT_MS=0 PCAP_OVER_IP=127.0.0.1:$pport -- "$COLLECT"
wait_listening "$mport" 10
start client -- python3 "$client" "127.0.0.1:$pport" "$WORK/client.pcap"
wait_metric "$mport" tapmesh_collect_pcap_over_ip_clients 1 20
start agent RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$WORK/in.pcap -- "$CAPTURE"
expect_exit agent 30 0
grep -q "done: 3000 packets sent and acknowledged" "$WORK/agent.log" ||
    fail "agent: no 'done: 3000 packets sent and acknowledged'"
wait_metric "$mport" tapmesh_collect_packets_total 3000 10
wait_metric "$mport" tapmesh_collect_output_bytes_total 0 1
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
expect_exit client 10 0
err=$(tcpdump -nn --time-stamp-precision=nano -r "$WORK/client.pcap" 2>&1 >/dev/null |
    grep -v '^reading from file' || true)
[ -z "$err" ] || fail "tcpdump -r client.pcap: $err"
same_packets "$WORK/in.pcap" "$WORK/client.pcap"
[ ! -e "$WORK/none" ] || fail "OUTPUT=none created a file"
grep -q "writing pcapng to nowhere (OUTPUT=none)" "$WORK/collect.log" || fail "no start-up line"
log "ok: OUTPUT=none: 3000 packets to a PCAP-over-IP client, acknowledged, no file; refused alone"
