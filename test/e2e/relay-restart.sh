#!/usr/bin/env bash
# A relay killed (SIGKILL, while it holds batches) and started again
# mid-stream, at recorded speed, with default settings, while another source
# keeps flowing straight to the collector: the agent behind the relay resends
# what the dead relay held as soon as its connection is back, inside the
# merge window, so the output holds every packet of both once and in
# timestamp order (mergecap's), and no packet is counted late.
. "$(dirname "$0")/lib.sh"
need mergecap curl ss

"$TOOLS/gen-sample" "$WORK/a.pcap" 5000 ether 303
"$TOOLS/gen-sample" "$WORK/b.pcap" 5000 ether 404
mergecap -F pcapng -w "$WORK/expected.pcapng" "$WORK/a.pcap" "$WORK/b.pcap"
pick_port; cport=$PORT
pick_port; rport=$PORT
pick_port; mc=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out.pcapng -- "$COLLECT"
start relay NODE_ID=relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport \
    RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= -- "$RELAY"
wait_listening "$mc" 10
start agenta RELAY_ENDPOINT=tcp://127.0.0.1:$rport METRICS_ADDRPORT= NODE_ID=behind-relay \
    READ_FILE=$WORK/a.pcap REPLAY_SPEED=1 -- "$CAPTURE"
start agentb RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=direct \
    READ_FILE=$WORK/b.pcap REPLAY_SPEED=1 -- "$CAPTURE"
end=$((SECONDS + 20))
until [ "$(metric "$mc" tapmesh_collect_packets_total)" -gt 2000 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "nothing came through"
    sleep 0.05
done
# frozen first, so that batches are surely inside it when it dies
kill -STOP "${PIDS[relay]}"
sleep 0.4
stop relay KILL
sleep 0.5
start relay2 NODE_ID=relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport \
    RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= -- "$RELAY"
expect_exit agenta 60 0
expect_exit agentb 60 0
grep -q "is back: sending [0-9]* unacknowledged batches again" "$WORK/agenta.log" ||
    fail "the agent did not resend when the relay came back: $(tail -3 "$WORK/agenta.log")"
wait_metric "$mc" tapmesh_collect_packets_total 10000 15
late=$(metric "$mc" tapmesh_collect_late_packets_total)
forced=$(metric "$mc" tapmesh_collect_merge_forced_packets_total)
[ "$late" = 0 ] || fail "$late packets late (forced: $forced)"
stop relay2
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/expected.pcapng" "$WORK/out.pcapng"
log "ok: relay killed and restarted: 10000 packets once, in order, none late"
