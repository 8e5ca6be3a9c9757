#!/usr/bin/env bash
# capture → relay → collect | tcpdump -r -, as an operator runs it: the
# collector streams pcapng on its standard output into tcpdump, which reads
# every packet intact. While the replay runs, all three services answer
# /metrics in a format promtool accepts, and their counters agree.
. "$(dirname "$0")/lib.sh"
need tcpdump promtool curl ss

input=$DATA/sample-ether.pcap
pick_port; cport=$PORT
pick_port; rport=$PORT
pick_port; m_collect=$PORT
pick_port; m_relay=$PORT
pick_port; m_capture=$PORT
mkfifo "$WORK/pipe"
start tcpdump -- tcpdump --time-stamp-precision=nano -r "$WORK/pipe" -w "$WORK/ref.pcap"
OUT_TO=$WORK/pipe start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$m_collect NODE_ID=core -- "$COLLECT"
start relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$m_relay NODE_ID=site-relay -- "$RELAY"
wait_listening "$m_collect" 10
wait_listening "$m_relay" 10
# at recorded speed the 800 packets take 0.8 s: time to read the agent's metrics
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$rport METRICS_ADDRPORT=127.0.0.1:$m_capture \
    NODE_ID=edge1 READ_FILE=$input REPLAY_SPEED=1 BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
wait_listening "$m_capture" 10
promcheck "$m_capture"
promcheck "$m_relay"
promcheck "$m_collect"
expect_exit capture 60 0

wait_metric "$m_collect" tapmesh_collect_packets_total 800 5
promcheck "$m_relay"
promcheck "$m_collect"
batches_in=$(metric "$m_relay" tapmesh_relay_batches_in_total)
batches_out=$(metric "$m_relay" "tapmesh_relay_batches_out_total{hop=\"tcp://127.0.0.1:$cport\"}")
batches=$(metric "$m_collect" tapmesh_collect_batches_total)
[ "$batches_in" -gt 1 ] || fail "relay saw $batches_in batches"
[ "$batches_in" = "$batches_out" ] || fail "relay: $batches_in in, $batches_out out"
[ "$batches_out" = "$batches" ] || fail "relay forwarded $batches_out, collector took $batches"
acks=$(metric "$m_relay" tapmesh_relay_acks_routed_total)
[ "$acks" = "$batches" ] || fail "relay routed $acks acknowledgements for $batches batches"
[ "$(metric "$m_relay" "tapmesh_relay_next_hop_up{hop=\"tcp://127.0.0.1:$cport\"}")" = 1 ] ||
    fail "the next hop is not reported up"
[ "$(metric "$m_relay" tapmesh_relay_pending_batches)" = 0 ] || fail "batches still pending"

stop collect
[ "$RC" = 0 ] || fail "collect exited $RC after SIGTERM"
expect_exit tcpdump 10 0
same_packets "$input" "$WORK/ref.pcap"
log "ok: 800 packets through a relay into tcpdump -r -, identical"
