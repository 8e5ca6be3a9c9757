#!/usr/bin/env bash
# No file the collector leaves behind makes a reader fail: an output file
# appears only with its section header and first interface block in it.
# The collector is killed (SIGKILL) at varied moments while starting, with
# and without STATE_DIR, with and without a source joining; with STATE_DIR
# it is started again and stopped cleanly. Every file left is either absent
# or read by tcpdump without an error. A collector that ran and received
# nothing leaves no file; on standard output it leaves a capture tcpdump
# reads (no packets).
. "$(dirname "$0")/lib.sh"
need tcpdump curl ss

"$TOOLS/gen-sample" "$WORK/in.pcap" 200 ether 41

# every file in $1 is read by tcpdump without error; prints how many
check_dir() {
    local n=0 f err
    for f in "$1"/*; do
        [ -f "$f" ] || continue
        err=$(tcpdump -nn -r "$f" 2>&1 >/dev/null | grep -v '^reading from file' || true)
        [ -z "$err" ] || fail "$2: tcpdump -r $f ($(stat -c %s "$f") bytes): $err"
        n=$((n + 1))
    done
    echo "$n"
}

rounds=10
for round in $(seq 0 $((rounds - 1))); do
    dir=$WORK/r$round
    mkdir "$dir"
    state=()
    [ $((round % 2)) = 1 ] && state=(STATE_DIR=$WORK/state$round)
    source_joins=$(((round / 2) % 2 == 0))
    delay_ms=$((round * 60)) # 0 to 540 ms after the start, inside STARTUP_WAIT_MS
    pick_port; port=$PORT
    what="round $round (kill after $delay_ms ms, ${state[*]:-no STATE_DIR}, source: $source_joins)"
    if [ "$source_joins" = 1 ]; then
        start agent RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
            READ_FILE=$WORK/in.pcap ACK_TIMEOUT_MS=200 -- "$CAPTURE"
    fi
    start c$round COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
        OUTPUT=$dir/out.pcapng "${state[@]}" -- "$COLLECT"
    sleep "$(printf '0.%03d' "$delay_ms")"
    stop c$round KILL
    n=$(check_dir "$dir" "$what, killed")
    if [ ${#state[@]} -gt 0 ]; then
        # started again with the same STATE_DIR, then stopped cleanly
        start d$round COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
            OUTPUT=$dir/out.pcapng STARTUP_WAIT_MS=100 "${state[@]}" -- "$COLLECT"
        sleep 1
        stop d$round
        [ "$RC" = 0 ] || fail "$what: the restarted collector exited $RC"
        n=$(check_dir "$dir" "$what, restarted")
    fi
    if [ "$source_joins" = 1 ]; then
        stop agent KILL
    fi
    log "$what: $n file(s), each read by tcpdump"
done

# ran and received nothing: no file, and a line that says so
pick_port; port=$PORT
pick_port; mport=$PORT
mkdir "$WORK/idle"
start idle COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/idle/out.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
wait_listening "$mport" 10
sleep 1.2
stop idle
[ "$RC" = 0 ] || fail "the idle collector exited $RC"
[ -z "$(ls -A "$WORK/idle")" ] || fail "a collector that received nothing left: $(ls -A "$WORK/idle")"
has "no source joined" <"$WORK/idle.log" || fail "no line says that nothing was written"

# the same on standard output: a capture without packets that tcpdump reads
pick_port; port=$PORT
OUT_TO=$WORK/idle-stdout.pcapng start idle2 COLLECT_ENDPOINT=tcp://127.0.0.1:$port \
    METRICS_ADDRPORT= STARTUP_WAIT_MS=0 -- "$COLLECT"
sleep 1
stop idle2
[ "$RC" = 0 ] || fail "the idle collector on standard output exited $RC"
err=$(tcpdump -nn -r "$WORK/idle-stdout.pcapng" 2>&1 >/dev/null | grep -v '^reading from file' || true)
[ -z "$err" ] || fail "tcpdump -r (standard output of an idle collector): $err"
[ "$(tcpdump -nn -r "$WORK/idle-stdout.pcapng" 2>/dev/null | wc -l)" = 0 ] || fail "packets from nowhere"
log "ok"
