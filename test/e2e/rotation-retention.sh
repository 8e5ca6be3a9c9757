#!/usr/bin/env bash
# Retention of rotated files, like tcpdump -W. ROTATE_FILES=3 over a dozen
# rotations (ROTATE_MB=1): exactly three files remain, tcpdump reads each,
# and together they hold the input's last packets, contiguous and in order;
# the deletions are counted and the gauge of the bytes kept matches the
# files. Restarted with the same STATE_DIR, the collector counts the three
# files of the first run and deletes them by the same rule. ROTATE_MAX_GB
# (a fraction) deletes by size: what remains stays within the bound and is
# again the input's tail. Bad values stop start-up naming the setting.
. "$(dirname "$0")/lib.sh"
need tcpdump mergecap editcap ss curl

# $1: a directory; prints its capture files, oldest first (by index)
files_in() { ls "$1"/*.pcapng 2>/dev/null | sort; }

# tail_check IN N FILES...: tcpdump reads each file without a word, and
# the files together are the last packets of IN (N packets), contiguous
tail_check() {
    local in=$1 n=$2 got=0 err
    shift 2
    for f in "$@"; do
        err=$(tcpdump --time-stamp-precision=nano -nn -r "$f" 2>&1 >/dev/null |
            grep -v '^reading from file' || true)
        [ -z "$err" ] || fail "tcpdump -r $f: $err"
        got=$((got + $(tcpdump -nn -r "$f" 2>/dev/null | wc -l)))
    done
    [ "$got" -gt 0 ] && [ "$got" -lt "$n" ] || fail "the files kept hold $got of $n packets"
    editcap -F pcapng -r "$in" "$WORK/tail.pcapng" "$((n - got + 1))-$n"
    mergecap -F pcapng -w "$WORK/kept.pcapng" "$@"
    same_packets "$WORK/tail.pcapng" "$WORK/kept.pcapng"
    KEPT=$got
}

"$TOOLS/gen-sample" "$WORK/in.pcap" 10000 ether 41 # about 13 MB: a dozen files of 1 MiB
"$TOOLS/gen-sample" "$WORK/in2.pcap" 2000 ether 42 # about 2.6 MB
mkdir "$WORK/rot" "$WORK/size"

# ---- bad settings --------------------------------------------------------
start bad1 OUTPUT=$WORK/x.pcapng ROTATE_FILES=3 METRICS_ADDRPORT= -- "$COLLECT"
expect_exit bad1 10 2
grep -q "ROTATE_FILES deletes rotated files: it needs ROTATE_MB or ROTATE_S" "$WORK/bad1.log" ||
    fail "ROTATE_FILES without rotation: $(cat "$WORK/bad1.log")"
start bad2 OUTPUT=$WORK/x.pcapng ROTATE_MB=1 ROTATE_MAX_GB=1,5 METRICS_ADDRPORT= -- "$COLLECT"
expect_exit bad2 10 2
grep -q "ROTATE_MAX_GB: a number of GiB is expected" "$WORK/bad2.log" ||
    fail "ROTATE_MAX_GB=1,5: $(cat "$WORK/bad2.log")"

# ---- ROTATE_FILES=3, with STATE_DIR ----------------------------------------
pick_port; cport=$PORT
pick_port; m1=$PORT
settings=(COLLECT_ENDPOINT=tcp://127.0.0.1:$cport OUTPUT=$WORK/rot/cap.pcapng ROTATE_MB=1
    ROTATE_FILES=3 STATE_DIR=$WORK/state STARTUP_WAIT_MS=0)
start c1 "${settings[@]}" METRICS_ADDRPORT=127.0.0.1:$m1 -- "$COLLECT"
wait_listening "$m1" 10
start agent RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$WORK/in.pcap BATCH_MAX_BYTES=131072 -- "$CAPTURE"
expect_exit agent 60 0 # everything acknowledged
created=$(metric "$m1" tapmesh_collect_output_files_total)
deleted=$(metric "$m1" 'tapmesh_collect_output_files_deleted_total{reason="count"}')
retained=$(metric "$m1" tapmesh_collect_output_retained_bytes)
[ "$created" -ge 11 ] || fail "expected at least ten rotations, got $created files"
[ "$deleted" = $((created - 3)) ] || fail "$deleted files deleted of $created, expected $((created - 3))"
[ "$(metric "$m1" 'tapmesh_collect_output_files_deleted_total{reason="size"}')" = 0 ] ||
    fail "files deleted by size without ROTATE_MAX_GB"
mapfile -t kept < <(files_in "$WORK/rot")
[ ${#kept[@]} = 3 ] || fail "expected the 3 newest files, found: ${kept[*]}"
[ "$(basename "${kept[2]}")" = "cap-$(printf %04d $((created - 1))).pcapng" ] ||
    fail "the newest file is not among those kept: ${kept[*]}"
bytes=$(stat -c %s "${kept[@]}" | awk '{s += $1} END {print s}')
[ "$retained" = "$bytes" ] || fail "tapmesh_collect_output_retained_bytes is $retained, the files hold $bytes"
[ "$(grep -c 'output: deleted .*(ROTATE_FILES=3' "$WORK/c1.log")" = "$deleted" ] ||
    fail "not one log line per deletion"
stop c1
[ "$RC" = 0 ] || fail "the first collector exited $RC"
tail_check "$WORK/in.pcap" 10000 "${kept[@]}"
log "ROTATE_FILES=3: $created files written, the 3 newest kept ($KEPT packets, the input's last)"

# ---- restarted with the same STATE_DIR: the first run's files count -------
pick_port; m2=$PORT
start c2 "${settings[@]}" METRICS_ADDRPORT=127.0.0.1:$m2 -- "$COLLECT"
wait_listening "$m2" 10
start agent2 RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=edge2 \
    READ_FILE=$WORK/in2.pcap BATCH_MAX_BYTES=131072 -- "$CAPTURE"
expect_exit agent2 60 0
created2=$(metric "$m2" tapmesh_collect_output_files_total)
deleted2=$(metric "$m2" 'tapmesh_collect_output_files_deleted_total{reason="count"}')
stop c2
[ "$RC" = 0 ] || fail "the second collector exited $RC"
[ "$created2" -ge 2 ] || fail "expected the second run to rotate, got $created2 files"
# three old files and created2 new ones, three kept
[ "$deleted2" = "$created2" ] || fail "the second run deleted $deleted2 files, expected $created2"
mapfile -t now < <(files_in "$WORK/rot")
[ ${#now[@]} = 3 ] || fail "expected 3 files after the restart, found: ${now[*]}"
for f in "${kept[@]}"; do
    grep -q "output: deleted $f " "$WORK/c2.log" || [ -e "$f" ] ||
        fail "$f of the first run is gone without a log line"
done
grep -q "output: deleted ${kept[0]} " "$WORK/c2.log" ||
    fail "the restarted collector did not delete the first run's oldest file ${kept[0]}"
log "restart: the first run's files counted; $deleted2 deleted, 3 kept"

# ---- ROTATE_MAX_GB=0.002 (2147483 bytes), without STATE_DIR ----------------
pick_port; cport=$PORT
pick_port; m3=$PORT
start c3 COLLECT_ENDPOINT=tcp://127.0.0.1:$cport OUTPUT=$WORK/size/cap.pcapng ROTATE_MB=1 \
    ROTATE_MAX_GB=0.002 STARTUP_WAIT_MS=0 METRICS_ADDRPORT=127.0.0.1:$m3 -- "$COLLECT"
wait_listening "$m3" 10
start agent3 RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$WORK/in.pcap BATCH_MAX_BYTES=131072 -- "$CAPTURE"
expect_exit agent3 60 0
created3=$(metric "$m3" tapmesh_collect_output_files_total)
deleted3=$(metric "$m3" 'tapmesh_collect_output_files_deleted_total{reason="size"}')
retained3=$(metric "$m3" tapmesh_collect_output_retained_bytes)
mapfile -t kept3 < <(files_in "$WORK/size")
bytes=$(stat -c %s "${kept3[@]}" | awk '{s += $1} END {print s}')
[ "$retained3" = "$bytes" ] || fail "tapmesh_collect_output_retained_bytes is $retained3, the files hold $bytes"
# at exit the file being written gets its statistics blocks, and is kept
stop c3
[ "$RC" = 0 ] || fail "the third collector exited $RC"
bytes=$(stat -c %s "${kept3[@]}" | awk '{s += $1} END {print s}')
[ "$bytes" -le 2147483 ] || fail "the files kept hold $bytes bytes, more than ROTATE_MAX_GB=0.002"
[ "$deleted3" -ge 8 ] && [ "$deleted3" = $((created3 - ${#kept3[@]})) ] ||
    fail "$deleted3 files deleted by size of $created3, ${#kept3[@]} kept"
grep -q 'output: deleted .*(ROTATE_MAX_GB' "$WORK/c3.log" || fail "no log line for a deletion by size"
tail_check "$WORK/in.pcap" 10000 "${kept3[@]}"
log "ok: ROTATE_MAX_GB=0.002: ${#kept3[@]} files of $bytes bytes kept ($KEPT packets, the input's last)"
