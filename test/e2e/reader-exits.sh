#!/usr/bin/env bash
# The output goes away (shared DESIGN): `tapmesh-collect | tcpdump -c 100`.
# When tcpdump has its 100 packets and exits, the collector's next write
# fails with EPIPE (SIGPIPE is ignored): it acknowledges nothing more, logs
# one line naming the output and the error, and exits non-zero within a
# second; the agent keeps what was not acknowledged (here: dead-letters it,
# so the packets tcpdump did not read are all in the dead-letter file).
. "$(dirname "$0")/lib.sh"
need tcpdump editcap ss

"$TOOLS/gen-sample" "$WORK/in.pcap" 3000 ether 77
pick_port; port=$PORT
mkfifo "$WORK/pipe"
IN_FROM=$WORK/pipe start tcpdump -- tcpdump -c 100 -nn -r -
OUT_TO=$WORK/pipe start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
    STARTUP_WAIT_MS=0 -- "$COLLECT"
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$WORK/in.pcap REPLAY_SPEED=2 BATCH_MAX_DELAY_MS=20 RETRY_TIMEOUT_S=2 -- "$CAPTURE"
expect_exit tcpdump 30 0
t0=$(date +%s%N)
wait_exit collect 10
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$RC" = 1 ] || fail "the collector exited $RC when its reader went away, expected 1"
[ "$ms" -le 1500 ] || fail "the collector took $ms ms to stop after its reader left"
n=$(grep -c " error: " "$WORK/collect.log" || true)
[ "$n" = 1 ] || fail "$n error lines: $(cat "$WORK/collect.log")"
grep -q "error: OUTPUT: standard output: Broken pipe" "$WORK/collect.log" ||
    fail "the error line does not name the output and the error: $(grep error "$WORK/collect.log")"
wait_exit capture 30
[ "$RC" = 1 ] || fail "the agent exited $RC, expected 1 (dead letters)"
# what the collector never acknowledged is in the dead-letter file: the
# batches after the last one it acknowledged, i.e. the end of the input
dead=$(tcpdump -nn -r "$DLQ_DIR"/edge-*.pcapng 2>/dev/null | wc -l)
said=$(grep -o "[0-9]* of 3000 packets" "$WORK/capture.log" | cut -d' ' -f1)
[ "$said" = "$dead" ] || fail "the agent says $said packets dead-lettered, the file holds $dead"
[ "$dead" -gt 0 ] || fail "nothing dead-lettered"
editcap -r "$WORK/in.pcap" "$WORK/tail.pcap" "$((3000 - dead + 1))-3000" >/dev/null
same_packets "$WORK/tail.pcap" "$DLQ_DIR"/edge-*.pcapng
log "ok: the collector stopped $ms ms after its reader; $dead packets kept by the agent"
