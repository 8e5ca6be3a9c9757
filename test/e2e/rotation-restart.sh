#!/usr/bin/env bash
# A rotation by age while the collector is idle is recorded like any other
# (STATE_DIR): source a's batch goes into the first file, the collector
# idles past ROTATE_S and starts the second file, source b's bigger batch
# goes into it but its acknowledgement is lost (the relay in between is
# killed while the collector holds the write for FLUSH_MS). The collector is
# stopped cleanly and started again with the same STATE_DIR; b resends
# through a new relay. Every file is intact (tcpdump reads each), b's resend
# is a duplicate, and the files together hold a and b exactly once.
. "$(dirname "$0")/lib.sh"
need tcpdump mergecap curl ss

"$TOOLS/gen-sample" "$WORK/a.pcap" 20 ether 31
"$TOOLS/gen-sample" "$WORK/b.pcap" 300 ether 32 # larger than the first file
mergecap -F pcapng -w "$WORK/expected.pcapng" "$WORK/a.pcap" "$WORK/b.pcap"
mkdir "$WORK/rot"
pick_port; cport=$PORT
pick_port; rport=$PORT
pick_port; m1=$PORT
pick_port; m2=$PORT
settings=(COLLECT_ENDPOINT=tcp://127.0.0.1:$cport OUTPUT=$WORK/rot/out.pcapng STATE_DIR=$WORK/state
    ROTATE_S=6 FLUSH_MS=2000 STARTUP_WAIT_MS=0 MERGE_WINDOW_MS=100)
start c1 "${settings[@]}" METRICS_ADDRPORT=127.0.0.1:$m1 -- "$COLLECT"
started=$SECONDS
wait_listening "$m1" 10
start agenta RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=a \
    READ_FILE=$WORK/a.pcap -- "$CAPTURE"
expect_exit agenta 30 0
# idle until the first file is older than ROTATE_S and a pass has seen it
# (a pass at least every second)
while [ $((SECONDS - started)) -lt 8 ]; do sleep 0.1; done
start relay NODE_ID=relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport \
    RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= -- "$RELAY"
start agentb RELAY_ENDPOINT=tcp://127.0.0.1:$rport METRICS_ADDRPORT= NODE_ID=b \
    READ_FILE=$WORK/b.pcap ACK_TIMEOUT_MS=500 RETRY_TIMEOUT_S=120 BATCH_MAX_BYTES=16777216 \
    BATCH_MAX_DELAY_MS=5000 -- "$CAPTURE"
# b's batch is written into the buffer, which waits FLUSH_MS: the relay dies
# meanwhile, so that the acknowledgement after the flush finds no way back
end=$((SECONDS + 20))
until [ "$(metric "$m1" 'tapmesh_collect_source_packets_total{source="b"}')" = 300 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "b's batch did not arrive"
    sleep 0.02
done
stop relay KILL
wait_metric "$m1" tapmesh_collect_acks_unroutable_total 1 10
stop c1
[ "$RC" = 0 ] || fail "the first collector exited $RC"
mapfile -t before < <(ls "$WORK/rot")
[ ${#before[@]} = 2 ] || fail "expected two files before the restart, got: ${before[*]}"

start c2 "${settings[@]}" METRICS_ADDRPORT=127.0.0.1:$m2 -- "$COLLECT"
wait_listening "$m2" 10
start relay2 NODE_ID=relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport \
    RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= -- "$RELAY"
expect_exit agentb 90 0
[ "$(metric "$m2" tapmesh_collect_duplicate_batches_total)" = 1 ] ||
    fail "b's resend was not taken for a duplicate"
stop c2
[ "$RC" = 0 ] || fail "the second collector exited $RC"
stop relay2
if grep -q "cut short" "$WORK/c2.log"; then
    fail "the restart cut a file: $(grep "cut short" "$WORK/c2.log")"
fi
files=()
for f in "$WORK"/rot/*; do
    err=$(tcpdump -nn -r "$f" 2>&1 >/dev/null | grep -v '^reading from file' || true)
    [ -z "$err" ] || fail "tcpdump -r $f: $err"
    files+=("$f")
done
[ "$(tcpdump -nn -r "${files[0]}" 2>/dev/null | wc -l)" = 20 ] ||
    fail "the first file holds $(tcpdump -nn -r "${files[0]}" 2>/dev/null | wc -l) packets, not a's 20"
mergecap -F pcapng -w "$WORK/all.pcapng" "${files[@]}"
same_packets "$WORK/expected.pcapng" "$WORK/all.pcapng"
log "ok: ${#files[@]} files, each read by tcpdump; b's resend a duplicate; 320 packets once each"
