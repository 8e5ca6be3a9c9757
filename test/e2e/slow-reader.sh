#!/usr/bin/env bash
# A deliberately slow reader of the collector's standard output (12 MB/s
# for a 59 MB capture): the collector blocks on the pipe and stops
# acknowledging, the agent stops reading once BUFFER_MAX_MB is held — its
# memory stays under that bound plus a constant, far below the input — and
# in the end nothing is lost.
. "$(dirname "$0")/lib.sh"
need ss

"$TOOLS/gen-sample" "$WORK/big.pcap" 45000 ether 5
size_mb=$(($(stat -c %s "$WORK/big.pcap") >> 20))
pick_port; port=$PORT
mkfifo "$WORK/pipe"
IN_FROM=$WORK/pipe OUT_TO=$WORK/out.pcapng start reader -- "$TOOLS/slowcat" 12000000
OUT_TO=$WORK/pipe start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
    STARTUP_WAIT_MS=0 OUTPUT_BUFFER_KB=512 -- "$COLLECT"
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$WORK/big.pcap BUFFER_MAX_MB=4 -- "$CAPTURE"
pid=${PIDS[capture]}
peak=0
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 0.02
done
expect_exit capture 5 0
peak_mb=$((peak >> 10))
limit_mb=$((4 + 24)) # BUFFER_MAX_MB plus a constant: libraries, ZeroMQ, the read buffer
if [ -n "$SANITIZED" ]; then
    log "AddressSanitizer build: memory bound not checked (peak $peak_mb MiB)"
else
    [ "$peak_mb" -le "$limit_mb" ] ||
        fail "the agent's memory peaked at $peak_mb MiB (input $size_mb MiB, bound $limit_mb MiB)"
fi
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
expect_exit reader 30 0
same_packets "$WORK/big.pcap" "$WORK/out.pcapng"
log "ok: $size_mb MiB through a slow reader; the agent peaked at $peak_mb MiB; nothing lost"
