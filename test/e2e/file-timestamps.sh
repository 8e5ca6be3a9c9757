#!/usr/bin/env bash
# Classic pcap timestamps are unsigned 32-bit fields. Capture files whose
# fraction field is 2^31 or more (tcpdump's timestamp_invalid_nano.pcap has
# 0x80000000 nanoseconds), or a microsecond field above 999999, go capture →
# collect as real processes, and the output carries the time the file says:
# seconds + fraction (× 1000 for microseconds), nothing wrapped, nothing
# 4.29 s early. Written byte by byte here, little- and big-endian.
. "$(dirname "$0")/lib.sh"
need tcpdump tshark curl ss

# u32 VALUE le|be: four bytes, as printf escapes
u32() {
    local v=$1 b0 b1 b2 b3
    b0=$(((v >> 24) & 255)) b1=$(((v >> 16) & 255)) b2=$(((v >> 8) & 255)) b3=$((v & 255))
    if [ "$2" = be ]; then
        printf '\\x%02x\\x%02x\\x%02x\\x%02x' $b0 $b1 $b2 $b3
    else
        printf '\\x%02x\\x%02x\\x%02x\\x%02x' $b3 $b2 $b1 $b0
    fi
}

# pcap FILE MAGIC le|be SEC:FRAC...: Ethernet, 60-byte frames
pcap() {
    local file=$1 magic=$2 order=$3 rec sec frac frame
    shift 3
    frame=$(printf '\\x%02x' $(seq 1 60))
    {
        printf "$(u32 "$magic" "$order")"
        if [ "$order" = be ]; then printf '\x00\x02\x00\x04'; else printf '\x02\x00\x04\x00'; fi
        printf "$(u32 0 "$order")$(u32 0 "$order")$(u32 65535 "$order")$(u32 1 "$order")"
        for rec in "$@"; do
            sec=${rec%:*} frac=${rec#*:}
            printf "$(u32 "$sec" "$order")$(u32 "$frac" "$order")$(u32 60 "$order")$(u32 60 "$order")"
            printf "$frame"
        done
    } >"$file"
}

# run NAME FILE EXPECTED_TIMESTAMP...: capture FILE into a collector; the
# output's timestamps, as tcpdump prints them in nanoseconds, are EXPECTED.
run() {
    local name=$1 file=$2
    shift 2
    pick_port
    local data_port=$PORT
    pick_port
    local mport=$PORT
    start "collect-$name" COLLECT_ENDPOINT=tcp://127.0.0.1:$data_port METRICS_ADDRPORT=127.0.0.1:$mport \
        OUTPUT="$WORK/$name.pcapng" NODE_ID=collector STARTUP_WAIT_MS=0 -- "$COLLECT"
    wait_listening "$mport" 10
    start "capture-$name" RELAY_ENDPOINT=tcp://127.0.0.1:$data_port METRICS_ADDRPORT= NODE_ID=edge \
        READ_FILE="$file" -- "$CAPTURE"
    expect_exit "capture-$name" 60 0
    stop "collect-$name"
    [ "$RC" = 0 ] || fail "collect exited $RC after SIGTERM"
    local got want
    want="$* "
    got=$(tshark -n -r "$WORK/$name.pcapng" -T fields -e frame.time_epoch 2>/dev/null | tr '\n' ' ')
    [ "$got" = "$want" ] || fail "$name: tshark reads the output's timestamps as '$got', expected '$want'"
    # tcpdump 4.99 prints no time from 2^31 s on ("[Error converting time]")
    want=$(printf '%s\n' "$@" | awk '$1 < 2147483648' | tr '\n' ' ')
    got=$(tcpdump --time-stamp-precision=nano -tt -nn -r "$WORK/$name.pcapng" 2>/dev/null |
        awk '/^[0-9]/ {print $1}' | tr '\n' ' ')
    [ "$got" = "$want" ] || fail "$name: tcpdump reads the output's timestamps as '$got', expected '$want'"
    log "$name: $*"
}

pcap "$WORK/nano-le.pcap" 0xa1b23c4d le 1000:0x80000000 1000:0xffffffff
run nano-le "$WORK/nano-le.pcap" 1002.147483648 1004.294967295
pcap "$WORK/nano-be.pcap" 0xa1b23c4d be 1000:0x80000000 0x80000000:999999999
run nano-be "$WORK/nano-be.pcap" 1002.147483648 2147483648.999999999
# microseconds: 1000000 is one second; 0xffffffff is 4294.967295 s
pcap "$WORK/micro-le.pcap" 0xa1b2c3d4 le 1000:999999 1000:1000000 1000:0xffffffff
run micro-le "$WORK/micro-le.pcap" 1000.999999000 1001.000000000 5294.967295000
pcap "$WORK/micro-be.pcap" 0xa1b2c3d4 be 1000:0x80000000
run micro-be "$WORK/micro-be.pcap" 3147.483648000
log "ok: the output carries the timestamps the files hold"
