#!/usr/bin/env bash
# The collector is killed with SIGKILL in the middle of a recorded-speed
# replay and started again with the same STATE_DIR and a new OUTPUT: the two
# outputs together hold every input packet exactly once (compared packet by
# packet, merged by timestamp), and the first output, cut short by the
# crash, is repaired so that tcpdump reads it to its end. Then the same with
# two sources and a kill while a batch is only partly written.
. "$(dirname "$0")/lib.sh"
need tcpdump mergecap curl ss

"$TOOLS/gen-sample" "$WORK/in.pcap" 3000 ether # about 3 s of traffic
pick_port; port=$PORT
pick_port; m1=$PORT
start c1 COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$m1 \
    OUTPUT=$WORK/out1.pcapng STATE_DIR=$WORK/state MERGE_WINDOW_MS=100 STARTUP_WAIT_MS=0 -- "$COLLECT"
wait_listening "$m1" 10
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$WORK/in.pcap REPLAY_SPEED=1 ACK_TIMEOUT_MS=300 BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
# kill it once it has written a good part, but not all
end=$((SECONDS + 20))
until [ "$(metric "$m1" tapmesh_collect_packets_total)" -gt 1000 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "collector did not get going"
    sleep 0.05
done
stop c1 KILL
log "killed the collector after $(tcpdump -nn -r "$WORK/out1.pcapng" 2>/dev/null | wc -l) packets"
start c2 COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= OUTPUT=$WORK/out2.pcapng \
    STATE_DIR=$WORK/state MERGE_WINDOW_MS=100 -- "$COLLECT"
expect_exit capture 60 0
stop c2
[ "$RC" = 0 ] || fail "second collector exited $RC"
# out1 is whole again (a torn tail is cut off by the restart): tcpdump reads it without error
readers_accept "$WORK/out1.pcapng" "$(tcpdump -nn -r "$WORK/out1.pcapng" 2>/dev/null | wc -l)"
n1=$(tcpdump -nn -r "$WORK/out1.pcapng" 2>/dev/null | wc -l)
n2=$(tcpdump -nn -r "$WORK/out2.pcapng" 2>/dev/null | wc -l)
[ $((n1 + n2)) = 3000 ] || fail "out1 has $n1 and out2 $n2 packets: $((n1 + n2)), expected 3000"
[ "$n2" -gt 0 ] || fail "nothing after the restart"
mergecap -F pcapng -w "$WORK/both.pcapng" "$WORK/out1.pcapng" "$WORK/out2.pcapng"
same_packets "$WORK/in.pcap" "$WORK/both.pcapng"
log "recorded speed: $n1 + $n2 packets, each once"

# two sources, one at full speed in one big batch, one at recorded speed:
# the big batch is written bit by bit as the slow source's watermark passes,
# so the kill lands while it is only partly written; after the restart the
# resent batch must resume where the output stopped
"$TOOLS/gen-sample" "$WORK/a.pcap" 3000 ether 11
"$TOOLS/gen-sample" "$WORK/b.pcap" 3000 ether 22
rm -rf "$WORK/state"
pick_port; m3=$PORT
start c3 COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$m3 \
    OUTPUT=$WORK/out3.pcapng STATE_DIR=$WORK/state MERGE_WINDOW_MS=60000 STARTUP_WAIT_MS=2000 \
    OUTPUT_BUFFER_KB=512 -- "$COLLECT"
wait_listening "$m3" 10
# both join within the start-up wait; the slow one first, so that the fast
# one's batch is held from the start
start slow RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=slow \
    READ_FILE=$WORK/a.pcap REPLAY_SPEED=1 ACK_TIMEOUT_MS=300 BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
end=$((SECONDS + 10))
until grep -q "source slow .* joined" "$WORK/c3.log"; do
    [ $SECONDS -lt $end ] || fail "the slow source did not join"
    sleep 0.02
done
start fast RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=fast \
    READ_FILE=$WORK/b.pcap ACK_TIMEOUT_MS=300 BATCH_MAX_BYTES=16777216 BATCH_MAX_DELAY_MS=5000 -- "$CAPTURE"
end=$((SECONDS + 20))
until [ "$(metric "$m3" 'tapmesh_collect_source_packets_total{source="fast"}')" -gt 1000 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "collector did not get going"
    sleep 0.05
done
sleep 0.3 # counted when buffered: let some of it reach the file
stop c3 KILL
pick_port; m4=$PORT
start c4 COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$m4 \
    OUTPUT=$WORK/out4.pcapng STATE_DIR=$WORK/state MERGE_WINDOW_MS=60000 -- "$COLLECT"
expect_exit fast 120 0
expect_exit slow 120 0
skipped=$(metric "$m4" tapmesh_collect_restored_skipped_packets_total)
[ "$skipped" -gt 0 ] || fail "no partly written batch was resumed (skipped: '$skipped')"
stop c4
[ "$RC" = 0 ] || fail "fourth collector exited $RC"
readers_accept "$WORK/out3.pcapng" "$(tcpdump -nn -r "$WORK/out3.pcapng" 2>/dev/null | wc -l)"
n3=$(tcpdump -nn -r "$WORK/out3.pcapng" 2>/dev/null | wc -l)
n4=$(tcpdump -nn -r "$WORK/out4.pcapng" 2>/dev/null | wc -l)
[ $((n3 + n4)) = 6000 ] || fail "out3 has $n3 and out4 $n4 packets: $((n3 + n4)), expected 6000"
mergecap -F pcapng -w "$WORK/inputs.pcapng" "$WORK/a.pcap" "$WORK/b.pcap"
mergecap -F pcapng -w "$WORK/both2.pcapng" "$WORK/out3.pcapng" "$WORK/out4.pcapng"
same_packets "$WORK/inputs.pcapng" "$WORK/both2.pcapng"
log "ok: two sources: $n3 + $n4 packets, each once; $skipped packets of a half-written batch skipped"
