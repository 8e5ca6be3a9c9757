#!/usr/bin/env bash
# Dead letters keep their identity and are replayed exactly once. A relay
# is frozen (SIGSTOP) mid-stream: batches it had passed on are written by
# the collector but their acknowledgements never come back; batches sent
# into it never arrive. The agent dead-letters both kinds after
# RETRY_TIMEOUT_S and exits 1. Its dead-letter file, replayed into the
# collector (which keeps STATE_DIR), adds exactly what was missing: the
# output then holds every packet of the input once. What the collector
# never had comes after what it wrote meanwhile (its watermark did not wait
# for dead-lettered batches): written late, and counted as late, packet for
# packet. With DLQ_REPLAY=false
# the same file is read as an ordinary capture under a new identity.
. "$(dirname "$0")/lib.sh"
need mergecap reordercap tcpdump curl ss

"$TOOLS/gen-sample" "$WORK/in.pcap" 3000 ether 606
pick_port; cport=$PORT
pick_port; rport=$PORT
pick_port; mc=$PORT
# FLUSH_MS: what the collector holds when the relay freezes is written
# after, and its acknowledgements go into the frozen relay
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT="$WORK/out-%i.pcapng" STATE_DIR=$WORK/state STARTUP_WAIT_MS=0 FLUSH_MS=300 \
    -- "$COLLECT"
start relay NODE_ID=relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport \
    RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= -- "$RELAY"
wait_listening "$mc" 10
start agent RELAY_ENDPOINT=tcp://127.0.0.1:$rport METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$WORK/in.pcap REPLAY_SPEED=1 RETRY_TIMEOUT_S=2 ACK_TIMEOUT_MS=300 \
    BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
end=$((SECONDS + 20))
until [ "$(metric "$mc" tapmesh_collect_packets_total)" -gt 1000 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "nothing arrived"
    sleep 0.02
done
kill -STOP "${PIDS[relay]}"
expect_exit agent 30 1
kill -CONT "${PIDS[relay]}"
stop relay
files=("$DLQ_DIR"/edge-*.pcapng)
[ -f "${files[0]}" ] && [ ${#files[@]} = 1 ] || fail "expected one dead-letter file: ${files[*]}"
dlq=${files[0]}
written=$(metric "$mc" tapmesh_collect_packets_total)
dead=$(tcpdump -nn -r "$dlq" 2>/dev/null | wc -l)
both=$((written + dead - 3000))
log "$written packets written, $dead dead-lettered, $both in both"
[ "$both" -gt 0 ] || fail "no written packet lost its acknowledgement: the test proves nothing"

# the replay: straight to the collector, under the dead letters' identity
start replay RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=someone-else \
    READ_FILE="$dlq" -- "$CAPTURE"
expect_exit replay 30 0
grep -q "dead letters of source edge epoch" "$WORK/replay.log" || fail "not taken as dead letters"
wait_metric "$mc" tapmesh_collect_packets_total 3000 10
dups=$(metric "$mc" tapmesh_collect_duplicate_batches_total)
late=$(metric "$mc" tapmesh_collect_late_packets_total)
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
mergecap -F pcapng -w "$WORK/all.pcapng" "$WORK"/out-*.pcapng
same_packets_sorted "$WORK/in.pcap" "$WORK/all.pcapng"
disorder=$(out_of_order "$WORK/all.pcapng")
[ "$late" = "$disorder" ] || fail "$disorder packets out of order in the output, $late counted late"
log "replayed: output = input, each packet once ($dups batches were there already;" \
    "$late packets written late, all counted)"

# DLQ_REPLAY=false: an ordinary capture, a new source
pick_port; cport2=$PORT
start collect2 COLLECT_ENDPOINT=tcp://127.0.0.1:$cport2 METRICS_ADDRPORT= \
    OUTPUT=$WORK/plain.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
start plain RELAY_ENDPOINT=tcp://127.0.0.1:$cport2 METRICS_ADDRPORT= NODE_ID=plain \
    READ_FILE="$dlq" DLQ_REPLAY=false -- "$CAPTURE"
expect_exit plain 30 0
stop collect2
same_packets "$dlq" "$WORK/plain.pcapng"
tshark -r "$WORK/plain.pcapng" -T fields -e frame.interface_name 2>/dev/null | sort -u | has "plain/" ||
    fail "DLQ_REPLAY=false did not send under its own name"
log "ok"
