#!/usr/bin/env bash
# A full disk (shared DESIGN "Delivery", "The output goes away"). First the
# OUTPUT's file system fills up (a 2 MB tmpfs), with whole batches in every
# flush, then with batches larger than the output buffer (partly written
# when the disk fills up); then STATE_DIR's file system fills up. Each
# time the collector stops acknowledging and exits 1 with one line naming
# what failed; the output ends with its last whole block, so tcpdump reads
# it to the end; the agent dead-letters what was not acknowledged. Space
# freed, a collector started with the same STATE_DIR (output elsewhere)
# takes the dead letters replayed (`tapmesh-capture READ_FILE=<dead-letter
# file>`): the first output and the replay's output together hold every
# input packet exactly once (timestamp, lengths, bytes).
. "$(dirname "$0")/lib.sh"
need tcpdump tshark capinfos mergecap curl ss
[ "$(id -u)" = 0 ] || skip "mounting a small tmpfs needs root"

"$TOOLS/gen-sample" "$WORK/in.pcap" 3000 ether 5 # 3.8 MB
pick_port; port=$PORT

# packets FILE: how many packets tcpdump reads from FILE (up to an error)
packets() {
    { tcpdump -nn -r "$1" 2>/dev/null || true; } | wc -l
}

# small_fs DIR: a 2 MB tmpfs on DIR, unmounted at exit
small_fs() {
    mkdir -p "$1"
    mount -t tmpfs -o size=2m tmpfs "$1" || skip "cannot mount a tmpfs on $1"
    at_exit "umount -l '$1'"
}

# kept FIRST_OUTPUT DLQ_DIR: every input packet is either in the output or
# dead-lettered, never both: the output holds exactly what was
# acknowledged. (Where every flush holds whole batches: an output buffer
# that holds the whole input. A batch partly written before the failure is
# in both, until the replay settles it.)
# With "partly", only says how many are in both.
kept() {
    local n dead
    n=$(packets "$1")
    dead=$(cat "$2"/edge-*.pcapng | { tcpdump -nn -r - 2>/dev/null || true; } | wc -l)
    log "$n packets written, $dead dead-lettered, $((n + dead - 3000)) more than the input"
    [ "${3:-}" != partly ] || return 0
    mergecap -F nsecpcap -w "$WORK/kept.pcap" "$1" "$2"/edge-*.pcapng
    same_packets "$WORK/in.pcap" "$WORK/kept.pcap"
}

# replay_settles STATE_DIR FIRST_OUTPUT DLQ_DIR: the dead letters replayed
# into a collector with STATE_DIR make FIRST_OUTPUT + the replay's output =
# the input, each packet once
replay_settles() {
    local state=$1 first=$2 dlq=$3 out=$WORK/replay-$RANDOM.pcapng files
    files=("$dlq"/edge-*.pcapng)
    [ -f "${files[0]}" ] || fail "no dead-letter file in $dlq"
    start again COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= OUTPUT=$out \
        STATE_DIR=$state STARTUP_WAIT_MS=0 MERGE_WINDOW_MS=200 SOURCE_IDLE_S=2 -- "$COLLECT"
    for f in "${files[@]}"; do
        start replay RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
            READ_FILE=$f DLQ_DIR=$WORK/dlq-replay RETRY_TIMEOUT_S=5 -- "$CAPTURE"
        expect_exit replay 30 0
    done
    stop again
    [ "$RC" = 0 ] || fail "the collector taking the replay exited $RC"
    mergecap -F pcapng -w "$WORK/union.pcapng" "$first" "$out"
    same_packets "$WORK/in.pcap" "$WORK/union.pcapng"
    log "replayed dead letters: $(packets "$first") +" \
        "$(packets "$out") packets, each once"
}

# output_fills N BUFFER_KB BATCH_BYTES: the output's file system fills up
# under collector cN (a copy of what it wrote: $WORK/outN.pcapng)
output_fills() {
    local n=$1
    small_fs "$WORK/disk$n"
    start "c$n" COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
        OUTPUT=$WORK/disk$n/out.pcapng STATE_DIR=$WORK/state$n STARTUP_WAIT_MS=0 \
        OUTPUT_BUFFER_KB="$2" -- "$COLLECT"
    start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
        READ_FILE=$WORK/in.pcap BATCH_MAX_BYTES="$3" ACK_TIMEOUT_MS=300 RETRY_TIMEOUT_S=2 \
        DLQ_DIR=$WORK/dlq$n -- "$CAPTURE"
    wait_exit "c$n" 30
    [ "$RC" = 1 ] || fail "the collector exited $RC on a full disk, expected 1"
    grep -q "error: OUTPUT: $WORK/disk$n/out.pcapng: No space left on device" "$WORK/c$n.log" ||
        fail "no error line naming the output and ENOSPC: $(grep error "$WORK/c$n.log")"
    wait_exit capture 30
    [ "$RC" = 1 ] || fail "the agent exited $RC, expected 1 (dead letters)"
    # read a copy where there is room for the readers' own files; the file
    # itself stays where the journal knows it
    cp "$WORK/disk$n/out.pcapng" "$WORK/out$n.pcapng"
    local got
    got=$(packets "$WORK/out$n.pcapng")
    [ "$got" -gt 0 ] && [ "$got" -lt 3000 ] || fail "the full output holds $got packets"
    readers_accept "$WORK/out$n.pcapng" "$got"
    log "OUTPUT full: $got packets in a whole file"
}

# --- the output's file system fills up; every flush holds whole batches
output_fills 1 65536 65536
kept "$WORK/out1.pcapng" "$WORK/dlq1"
replay_settles "$WORK/state1" "$WORK/out1.pcapng" "$WORK/dlq1"

# --- the same with batches four times the output buffer: the disk fills
# up in the middle of a batch, partly written (the journal says how far), so
# its first packets are both in the output and dead-lettered; the replay
# writes the rest of it, once
output_fills 2 512 2097152
kept "$WORK/out2.pcapng" "$WORK/dlq2" partly
replay_settles "$WORK/state2" "$WORK/out2.pcapng" "$WORK/dlq2"

# --- STATE_DIR fills up: a few KiB are left on its file system
small_fs "$WORK/state3"
dd if=/dev/zero of="$WORK/state3/filler" bs=64k 2>/dev/null || true
truncate -s -8K "$WORK/state3/filler"
start c3 COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= OUTPUT=$WORK/out3.pcapng \
    STATE_DIR=$WORK/state3 STARTUP_WAIT_MS=0 OUTPUT_BUFFER_KB=65536 -- "$COLLECT"
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$WORK/in.pcap BATCH_MAX_BYTES=4096 ACK_TIMEOUT_MS=300 RETRY_TIMEOUT_S=2 \
    DLQ_DIR=$WORK/dlq3 -- "$CAPTURE"
wait_exit c3 30
[ "$RC" = 1 ] || fail "the collector exited $RC on a full STATE_DIR, expected 1"
grep -q "error: STATE_DIR: $WORK/state3/journal: No space left on device" \
    "$WORK/c3.log" || fail "no error line naming the journal and ENOSPC: $(grep error "$WORK/c3.log")"
wait_exit capture 30
[ "$RC" = 1 ] || fail "the agent exited $RC, expected 1 (dead letters)"
n3=$(packets "$WORK/out3.pcapng")
[ "$n3" -gt 0 ] && [ "$n3" -lt 3000 ] || fail "the output holds $n3 packets"
readers_accept "$WORK/out3.pcapng" "$n3"
log "STATE_DIR full: $n3 packets in a whole file"
kept "$WORK/out3.pcapng" "$WORK/dlq3"
rm -f "$WORK/state3/filler" # space freed
replay_settles "$WORK/state3" "$WORK/out3.pcapng" "$WORK/dlq3"
log "ok"
