#!/usr/bin/env bash
# Two capture agents → relay1 → relay2 → collector, at recorded speed. The
# second relay is killed with SIGKILL mid-stream and started again on the
# same endpoint: the output holds every packet of both agents exactly once,
# in timestamp order (identical to mergecap of the inputs). The collector
# counts packets per path of relays, and with ANNOTATE=hops every packet's
# comment names both relays.
. "$(dirname "$0")/lib.sh"
need mergecap tshark curl ss

"$TOOLS/gen-sample" "$WORK/a.pcap" 2500 ether 101
"$TOOLS/gen-sample" "$WORK/b.pcap" 2500 ether 202
mergecap -F pcapng -w "$WORK/expected.pcapng" "$WORK/a.pcap" "$WORK/b.pcap"
pick_port; cport=$PORT
pick_port; r1=$PORT
pick_port; r2=$PORT
pick_port; mc=$PORT
pick_port; m2=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out.pcapng ANNOTATE=hops -- "$COLLECT"
start relay2 NODE_ID=relay2 COLLECT_ENDPOINT=tcp://127.0.0.1:$r2 RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$m2 -- "$RELAY"
start relay1 NODE_ID=relay1 COLLECT_ENDPOINT=tcp://127.0.0.1:$r1 RELAY_ENDPOINT=tcp://127.0.0.1:$r2 \
    METRICS_ADDRPORT= -- "$RELAY"
wait_listening "$mc" 10
wait_listening "$m2" 10
for x in a b; do
    start "agent$x" RELAY_ENDPOINT=tcp://127.0.0.1:$r1 METRICS_ADDRPORT= NODE_ID=site-$x \
        READ_FILE=$WORK/$x.pcap REPLAY_SPEED=1 ACK_TIMEOUT_MS=500 BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
done
end=$((SECONDS + 20))
until [ "$(metric "$mc" tapmesh_collect_packets_total)" -gt 1500 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "nothing came through the chain"
    sleep 0.05
done
stop relay2 KILL
sleep 0.3
start relay2b NODE_ID=relay2 COLLECT_ENDPOINT=tcp://127.0.0.1:$r2 RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT= -- "$RELAY"
expect_exit agenta 60 0
expect_exit agentb 60 0
wait_metric "$mc" tapmesh_collect_packets_total 5000 10
path=$(metric "$mc" 'tapmesh_collect_path_packets_total{path="relay1>relay2"}')
[ "$path" -ge 5000 ] || fail "packets counted on path relay1>relay2: '$path'"
for r in relay1 relay2b; do
    stop "$r"
    [ "$RC" = 0 ] || fail "$r exited $RC after SIGTERM"
done
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/expected.pcapng" "$WORK/out.pcapng"
comments=$(tshark -r "$WORK/out.pcapng" -T fields -e frame.comment 2>/dev/null |
    grep -c '^hops: relay1@[0-9]* relay2@[0-9]*$' || true)
[ "$comments" = 5000 ] || fail "$comments packets carry the hops comment, expected 5000"
log "ok: 5000 packets through two relays, the second killed and restarted: each once, in order"
