#!/usr/bin/env bash
# No collector at all, RETRY_TIMEOUT_S=2: the agent exits non-zero within
# seconds, naming the dead-letter file, which holds exactly the input
# (timestamps, lengths, bytes), readable by tcpdump. The same on SIGTERM:
# a stopping agent waits RETRY_TIMEOUT_S, then dead-letters what is left.
. "$(dirname "$0")/lib.sh"
need tcpdump tshark capinfos ss

input=$DATA/sample-ether.pcap
pick_port; port=$PORT # nobody listens
t0=$SECONDS
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=lonely \
    READ_FILE=$input RETRY_TIMEOUT_S=2 ACK_TIMEOUT_MS=200 BATCH_MAX_BYTES=65536 -- "$CAPTURE"
wait_exit capture 20
[ "$RC" = 1 ] || fail "agent exited $RC, expected 1"
[ $((SECONDS - t0)) -le 8 ] || fail "agent took $((SECONDS - t0)) s"
files=("$DLQ_DIR"/lonely-*.pcapng)
[ ${#files[@]} = 1 ] && [ -f "${files[0]}" ] || fail "expected one dead-letter file, found: ${files[*]}"
grep -q "800 of 800 packets .* dead-letter file ${files[0]}" "$WORK/capture.log" ||
    fail "no summary naming the file: $(tail -3 "$WORK/capture.log")"
same_packets "$input" "${files[0]}"
readers_accept "${files[0]}" 800

# SIGTERM while nothing acknowledges: wait RETRY_TIMEOUT_S, dead-letter, exit 1
rm -f "$DLQ_DIR"/*
start paced RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=paced \
    READ_FILE=$input REPLAY_SPEED=1 RETRY_TIMEOUT_S=2 -- "$CAPTURE"
sleep 0.4
t0=$SECONDS
stop paced
[ "$RC" = 1 ] || fail "stopped agent exited $RC, expected 1"
[ $((SECONDS - t0)) -le 5 ] || fail "stopping took $((SECONDS - t0)) s"
grep -q "stopping: no more capturing" "$WORK/paced.log" || fail "no stop message"
files=("$DLQ_DIR"/paced-*.pcapng)
n=$(tcpdump -nn -r "${files[0]}" 2>/dev/null | wc -l)
[ "$n" -gt 0 ] && [ "$n" -lt 800 ] || fail "dead letters after SIGTERM: $n packets"
# what was dead-lettered is the beginning of the input, packet for packet
tcpdump --time-stamp-precision=nano -r "$input" -c "$n" -w "$WORK/head.pcap" 2>/dev/null
same_packets "$WORK/head.pcap" "${files[0]}"
log "ok"
