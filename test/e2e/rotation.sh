#!/usr/bin/env bash
# Rotating output files, like tcpdump -C / -G: by size (ROTATE_MB) the
# files are named from the OUTPUT pattern (strftime and %i), each starts
# with its own header blocks and every interface, tcpdump reads each on its
# own, and together they hold the input exactly; by age (ROTATE_S) a new
# file starts while a slow replay runs. Existing files are never overwritten.
. "$(dirname "$0")/lib.sh"
need tcpdump mergecap ss

"$TOOLS/gen-sample" "$WORK/in.pcap" 6000 ether 3 # about 7.8 MB
mkdir "$WORK/size" "$WORK/age"
echo "keep me" >"$WORK/size/cap-$(date +%Y)-0001.pcapng" # an existing file in the way
pick_port; port=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
    OUTPUT="$WORK/size/cap-%Y-%i.pcapng" ROTATE_MB=1 STARTUP_WAIT_MS=0 -- "$COLLECT"
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$WORK/in.pcap BATCH_MAX_BYTES=131072 -- "$CAPTURE"
expect_exit capture 60 0
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
[ "$(cat "$WORK/size/cap-$(date +%Y)-0001.pcapng")" = "keep me" ] || fail "an existing file was overwritten"
mapfile -t files < <(ls "$WORK/size"/cap-*.pcapng | grep -v -- "-0001.pcapng")
[ ${#files[@]} -ge 7 ] || fail "expected at least 7 files of about 1 MiB, got ${#files[@]}"
total=0
for f in "${files[@]}"; do
    size=$(stat -c %s "$f")
    [ "$size" -lt $((1024 * 1024 + 16384)) ] || fail "$f is $size bytes, rotation at 1 MiB"
    n=$(tcpdump -nn -r "$f" 2>&1 >/dev/null | grep -v '^reading from file' || true)
    [ -z "$n" ] || fail "tcpdump -r $f: $n"
    total=$((total + $(tcpdump -nn -r "$f" 2>/dev/null | wc -l)))
done
[ "$total" = 6000 ] || fail "the files hold $total packets, expected 6000"
mergecap -F pcapng -w "$WORK/all.pcapng" "${files[@]}"
same_packets "$WORK/in.pcap" "$WORK/all.pcapng"

# by age: a 2.5 s replay, a new file every second
pick_port; port=$PORT
start collect2 COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
    OUTPUT="$WORK/age/out.pcapng" ROTATE_S=1 STARTUP_WAIT_MS=0 -- "$COLLECT"
"$TOOLS/gen-sample" "$WORK/slow.pcap" 2500 ether 4
start slow RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=slow \
    READ_FILE=$WORK/slow.pcap REPLAY_SPEED=1 BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
expect_exit slow 60 0
stop collect2
[ "$RC" = 0 ] || fail "collect exited $RC"
mapfile -t files < <(ls "$WORK/age"/out-*.pcapng)
[ ${#files[@]} -ge 3 ] || fail "expected at least 3 files from ROTATE_S=1, got: ${files[*]}"
[ "$(basename "${files[0]}")" = out-0000.pcapng ] || fail "first file is ${files[0]}"
mergecap -F pcapng -w "$WORK/all2.pcapng" "${files[@]}"
same_packets "$WORK/slow.pcap" "$WORK/all2.pcapng"
log "ok"
