#!/usr/bin/env bash
# The next hop is down: the agent says so once a batch has waited
# ACK_TIMEOUT_MS ("no connection to ...: holding N batches, dead-lettering
# after RETRY_TIMEOUT_S"), says when it is back, and delivers everything.
# While it waits to stop, a second SIGTERM dead-letters at once (the first
# says that it would), and the dead letters are the input, whole.
. "$(dirname "$0")/lib.sh"
need ss curl

input=$DATA/sample-ether.pcap
pick_port; port=$PORT
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=waiting \
    READ_FILE=$input RETRY_TIMEOUT_S=30 ACK_TIMEOUT_MS=300 -- "$CAPTURE"
end=$((SECONDS + 5))
until grep -q "warn: no connection to tcp://127.0.0.1:$port: holding [0-9]* batches, dead-lettering after RETRY_TIMEOUT_S (30 s)" "$WORK/capture.log"; do
    [ $SECONDS -lt $end ] || fail "no warning about the missing connection: $(tail -3 "$WORK/capture.log")"
    sleep 0.1
done
[ "$(grep -c "no connection to" "$WORK/capture.log")" = 1 ] || fail "the warning is repeated"
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port OUTPUT="$WORK/out.pcapng" \
    METRICS_ADDRPORT= STARTUP_WAIT_MS=0 -- "$COLLECT"
expect_exit capture 20 0
grep -q "info: connection to tcp://127.0.0.1:$port is back" "$WORK/capture.log" ||
    fail "no line saying the connection is back: $(tail -3 "$WORK/capture.log")"
stop collect
same_packets "$input" "$WORK/out.pcapng"

# Two stop requests while nothing acknowledges: dead letters at once.
pick_port; port=$PORT
start stopping RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=stopping \
    READ_FILE=$input RETRY_TIMEOUT_S=60 ACK_TIMEOUT_MS=300 -- "$CAPTURE"
sleep 0.5
kill -TERM "${PIDS[stopping]}"
end=$((SECONDS + 5))
until grep -q "a second SIGTERM or SIGINT dead-letters them at once" "$WORK/stopping.log"; do
    [ $SECONDS -lt $end ] || fail "the first stop request does not say what a second does"
    sleep 0.05
done
kill -0 "${PIDS[stopping]}" || fail "the agent did not wait for acknowledgements"
t0=$(date +%s%N)
stop stopping
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$RC" = 1 ] || fail "agent exited $RC after the second signal, expected 1"
[ "$ms" -le 2000 ] || fail "the second signal took $ms ms"
files=("$DLQ_DIR"/stopping-*.pcapng)
[ -f "${files[0]}" ] || fail "no dead-letter file"
same_packets "$input" "${files[0]}"
log "ok"
