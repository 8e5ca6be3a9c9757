#!/usr/bin/env bash
# TSTAMP_SOURCE=trailer:arista7130: test/tools/tunnel-pcap.py appends Arista
# 7130 (Metamako) trailers to the sample capture's frames, the first
# switch's time being each frame's own, the capture times 3.5 s later. With
# one trailer, the output's times are those tshark's Metamako dissector
# reads from the input, and TRAILER=keep sends the frames whole; with two
# stacked trailers and FCS, TRAILER=keep still sends every byte, and
# TRAILER=strip gives back the sample exactly, timestamps included (its
# jumbo frames of 9018 bytes pass whole, trailers and all). Frames
# without a trailer keep their capture time and are counted.
. "$(dirname "$0")/lib.sh"
need tshark tcpdump curl ss python3
export TZ=UTC

input=$DATA/sample-ether.pcap
tool=$root/test/tools/tunnel-pcap.py
n=$(tcpdump -nn -r "$input" 2>/dev/null | wc -l)

# run NAME CAPTURE_SETTINGS...: the agent reads a file into a collector of
# its own, which writes $WORK/NAME.pcapng
run() {
    local name=$1
    shift
    pick_port
    local port=$PORT
    start "collect-$name" COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
        OUTPUT=$WORK/$name.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
    start "capture-$name" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
        NODE_ID=$name "$@" -- "$CAPTURE"
    expect_exit "capture-$name" 60 0
    stop "collect-$name"
    [ "$RC" = 0 ] || fail "collect-$name exited $RC"
}

# one trailer: tshark's reading of it is the output's time
python3 "$tool" metamako "$input" "$WORK/one.pcap" --shift-ns 3500000000
tshark --enable-heuristic metamako_eth -r "$WORK/one.pcap" -T fields -e metamako.time \
    2>/dev/null >"$WORK/one.switch"
[ "$(grep -c UTC "$WORK/one.switch")" = "$n" ] || fail "tshark finds no Metamako trailers"
run one READ_FILE="$WORK/one.pcap" TSTAMP_SOURCE=trailer:arista7130
same_packets --ignore-ts "$WORK/one.pcap" "$WORK/one.pcapng"
tshark -r "$WORK/one.pcapng" -T fields -e frame.time 2>/dev/null >"$WORK/one.out"
cmp -s "$WORK/one.switch" "$WORK/one.out" ||
    fail "output times are not the trailers': $(diff "$WORK/one.switch" "$WORK/one.out" | head -4)"

# two stacked trailers with FCS: kept whole, or stripped back to the sample
python3 "$tool" metamako "$input" "$WORK/two.pcap" --stack 2 --fcs --shift-ns 3500000000
run twokeep READ_FILE="$WORK/two.pcap" TSTAMP_SOURCE=trailer:arista7130 TRAILER=keep
same_packets --ignore-ts "$WORK/two.pcap" "$WORK/twokeep.pcapng"
tshark -r "$input" -T fields -e frame.time_epoch 2>/dev/null >"$WORK/sample.times"
tshark -r "$WORK/twokeep.pcapng" -T fields -e frame.time_epoch 2>/dev/null >"$WORK/twokeep.times"
cmp -s "$WORK/sample.times" "$WORK/twokeep.times" || fail "stacked: not the first switch's times"
run twostrip READ_FILE="$WORK/two.pcap" TSTAMP_SOURCE=trailer:arista7130 TRAILER=strip
same_packets "$input" "$WORK/twostrip.pcapng"
readers_accept "$WORK/twostrip.pcapng" "$n"

# no trailer: capture times, counted
pick_port
cport=$PORT
pick_port
mport=$PORT
start collect-none COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= \
    OUTPUT=$WORK/none.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
mkfifo "$WORK/pipe"
IN_FROM=$WORK/pipe start capture-none RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$mport NODE_ID=none READ_FILE=- \
    TSTAMP_SOURCE=trailer:arista7130 TRAILER=strip -- "$CAPTURE"
exec 3>"$WORK/pipe"
cat "$input" >&3
wait_metric "$mport" tapmesh_capture_switch_timestamp_missing_total "$n" 20
exec 3>&-
expect_exit capture-none 60 0
stop collect-none
same_packets "$input" "$WORK/none.pcapng"

start bad READ_FILE="$input" TRAILER=strip METRICS_ADDRPORT= -- "$CAPTURE"
expect_exit bad 10 2
has "TRAILER=strip: needs TSTAMP_SOURCE=trailer:arista7130" <"$WORK/bad.log"
log "ok: Metamako trailer times as tshark reads them; stacked trailers kept or stripped"
