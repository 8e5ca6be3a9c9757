#!/usr/bin/env bash
# A capture agent reading a file with STATE_DIR, killed (SIGKILL) mid-file
# and started again with the same NODE_ID, READ_FILE and STATE_DIR,
# continues its epoch where it stopped: the output holds every packet of the
# file exactly once, in order, and the agent exits 0. Started a third time,
# it says the file went through and sends nothing.
. "$(dirname "$0")/lib.sh"
need curl ss

"$TOOLS/gen-sample" "$WORK/in.pcap" 3000 ether 505
pick_port; cport=$PORT
pick_port; mc=$PORT
# FLUSH_MS holds acknowledgements back: the agent dies with batches the
# collector has, unacknowledged; built again from the file under their seq,
# they are dropped as duplicates
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out.pcapng STARTUP_WAIT_MS=0 FLUSH_MS=400 -- "$COLLECT"
wait_listening "$mc" 10
agent() { # NAME: the same agent, started again
    start "$1" RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=edge \
        READ_FILE=$WORK/in.pcap REPLAY_SPEED=1 STATE_DIR=$WORK/state BATCH_MAX_DELAY_MS=20 \
        -- "$CAPTURE"
}
agent first
end=$((SECONDS + 20))
until [ "$(metric "$mc" tapmesh_collect_packets_total)" -gt 1200 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "nothing arrived"
    sleep 0.02
done
stop first KILL
agent second
expect_exit second 30 0
grep -q "continuing epoch [0-9]* from batch [0-9]*" "$WORK/second.log" ||
    fail "the restarted agent did not continue its epoch: $(head -5 "$WORK/second.log")"
wait_metric "$mc" tapmesh_collect_packets_total 3000 10
dups=$(metric "$mc" tapmesh_collect_duplicate_batches_total)
[ "$dups" -gt 0 ] || fail "no batch was sent again after the restart: the test proves nothing"
agent third
expect_exit third 10 0
grep -q "went through before" "$WORK/third.log" || fail "the third start sent again: $(tail -2 "$WORK/third.log")"
sleep 0.3
[ "$(metric "$mc" tapmesh_collect_packets_total)" = 3000 ] || fail "packets written after the third start"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/in.pcap" "$WORK/out.pcapng"
log "ok: killed mid-file and restarted: 3000 packets once, in order ($dups duplicate batches dropped)"
