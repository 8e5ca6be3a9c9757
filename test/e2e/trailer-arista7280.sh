#!/usr/bin/env bash
# TSTAMP_SOURCE=header:arista7280: test/tools/tunnel-pcap.py inserts Arista
# 7280 timestamp headers into the sample capture's frames in turn: 64-bit
# TAI, 64-bit UTC, 48-bit TAI, 48-bit UTC, none, one of an unknown version;
# every 7th frame has an 802.1Q tag before the header. The switch's times
# are the sample's, moved so that they cross a wrap of the 48-bit form's
# seconds (UTC in one file, TAI in the other); the capture times are 3.5 s
# later. The output's times are those tshark's avsp dissector reads from
# the input (TAI less 37 s, the 48-bit seconds nearest the capture time),
# or the capture time where it reads none, and these frames are counted;
# TRAILER=keep sends every byte, TRAILER=strip gives back the frames as the
# switch received them, each at the time the tool gave it.
. "$(dirname "$0")/lib.sh"
need tshark tcpdump capinfos curl ss python3
export TZ=UTC

input=$DATA/sample-ether.pcap
tool=$root/test/tools/tunnel-pcap.py
n=$(tcpdump -nn -r "$input" 2>/dev/null | wc -l)
shift_ns=3500000000
wrap=$(((1700000000 / 65536 + 1) * 65536)) # the 48-bit seconds read 0 here
tai=37

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

# switch_times FILE: per frame, in ns, the time tshark's avsp dissector
# reads (TAI taken back to UTC, the 48-bit seconds nearest the capture
# time), or the capture time where it reads none; checks that it read each
# of the four versions
switch_times() {
    tshark -r "$1" -T fields -E separator=/t -e frame.time_epoch -e avsp.ver -e avsp.64sec \
        -e avsp.64ns -e avsp.48sec -e avsp.48ns 2>/dev/null | python3 -c '
import sys
def ns(s):
    whole, _, frac = s.partition(".")
    return int(whole) * 10**9 + int((frac + "0" * 9)[:9])
seen = set()
for line in sys.stdin:
    cap, ver, s64, n64, s48, n48 = line.rstrip("\n").split("\t")
    cap = ns(cap)
    off = '"$tai"' * 10**9 if ver in ("0x0010", "0x0020") else 0
    if s64:
        t = int(s64) * 10**9 + int(n64) - off
    elif s48:
        low, mod, near = int(s48) * 10**9 + int(n48), 65536 * 10**9, cap + off
        base = near - near % mod + low
        t = min((base - mod, base, base + mod), key=lambda v: abs(v - near)) - off
    else:
        t = cap
    if s64 or s48:
        seen.add(ver)
    print(t)
if seen != {"0x0010", "0x0110", "0x0020", "0x0120"}:
    sys.exit("tshark reads the times of versions %s only" % sorted(seen))
'
}

# out_times FILE: per packet, in ns, the time in the output
out_times() {
    tshark -r "$1" -T fields -e frame.time_epoch 2>/dev/null | tr -d . | sed 's/^0*//'
}

# same_times NAME INPUT OUTPUT
same_times() {
    switch_times "$2" >"$WORK/$1.switch" || fail "$1: tshark's avsp dissector: see above"
    [ "$(wc -l <"$WORK/$1.switch")" = "$n" ] || fail "$1: tshark reads $(wc -l <"$WORK/$1.switch") frames"
    out_times "$3" >"$WORK/$1.out"
    cmp -s "$WORK/$1.switch" "$WORK/$1.out" ||
        fail "$1: output times are not the headers': $(diff "$WORK/$1.switch" "$WORK/$1.out" | head -4)"
}

# switch times from 0.4 s before the 48-bit form's wrap in UTC, across it
python3 "$tool" arista7280 "$input" "$WORK/utc.pcap" --shift-ns $shift_ns --tag-every 7 \
    --move-to $((wrap * 1000000000 - 400000000)) --expect "$WORK/utc.expect.pcap"
# ... and in TAI (UTC + 37 s)
python3 "$tool" arista7280 "$input" "$WORK/tai.pcap" --shift-ns $shift_ns --tag-every 7 \
    --move-to $(((wrap - tai) * 1000000000 - 400000000)) --expect "$WORK/tai.expect.pcap"
tshark -r "$WORK/utc.pcap" -T fields -e avsp.48sec 2>/dev/null | grep -qx 65535 &&
    tshark -r "$WORK/utc.pcap" -T fields -e avsp.48sec 2>/dev/null | grep -qx 0 ||
    fail "utc.pcap: the 48-bit UTC seconds do not cross the wrap"
[ "$(tshark -r "$WORK/utc.pcap" -Y avsp 2>/dev/null | wc -l)" -gt $((n / 2)) ] ||
    fail "tshark finds no Arista 7280 headers"
# frames whose time the agent cannot read: no header, or an unknown version
missing=$(tshark -r "$WORK/utc.pcap" -Y '!avsp.64sec && !avsp.48sec' 2>/dev/null | wc -l)
[ "$missing" -gt 0 ] && [ "$missing" -lt "$n" ] || fail "$missing frames without a header time"

# TRAILER=keep, from a pipe: every byte sent, the headers' times, the
# others counted
pick_port
cport=$PORT
pick_port
mport=$PORT
start collect-keep COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= \
    OUTPUT=$WORK/keep.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
mkfifo "$WORK/pipe"
IN_FROM=$WORK/pipe start capture-keep RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$mport NODE_ID=keep READ_FILE=- \
    TSTAMP_SOURCE=header:arista7280 TRAILER=keep -- "$CAPTURE"
exec 3>"$WORK/pipe"
cat "$WORK/utc.pcap" >&3
wait_metric "$mport" tapmesh_capture_switch_timestamp_missing_total "$missing" 20
exec 3>&-
expect_exit capture-keep 60 0
stop collect-keep
[ "$RC" = 0 ] || fail "collect-keep exited $RC"
same_packets --ignore-ts "$WORK/utc.pcap" "$WORK/keep.pcapng"
same_times keep "$WORK/utc.pcap" "$WORK/keep.pcapng"

# TRAILER=strip: the frames as the switch received them, at the tool's times
run strip READ_FILE="$WORK/utc.pcap" TSTAMP_SOURCE=header:arista7280 TRAILER=strip
same_packets "$WORK/utc.expect.pcap" "$WORK/strip.pcapng"
same_times strip "$WORK/utc.pcap" "$WORK/strip.pcapng"
# (not readers_accept: tcpdump prints the frames of an unknown version on
# several lines)
err=$(tcpdump -r "$WORK/strip.pcapng" -w /dev/null 2>&1 | grep -v '^reading from file' || true)
[ -z "$err" ] || fail "tcpdump -r strip.pcapng: $err"
capinfos -M "$WORK/strip.pcapng" 2>&1 | grep -q "Number of packets:[[:space:]]*$n\$" ||
    fail "capinfos strip.pcapng: $(capinfos -M "$WORK/strip.pcapng" 2>&1 | grep packets)"
run tai READ_FILE="$WORK/tai.pcap" TSTAMP_SOURCE=header:arista7280 TRAILER=strip
same_packets "$WORK/tai.expect.pcap" "$WORK/tai.pcapng"
same_times tai "$WORK/tai.pcap" "$WORK/tai.pcapng"

start bad READ_FILE="$input" TRAILER=strip METRICS_ADDRPORT= -- "$CAPTURE"
expect_exit bad 10 2
has "TRAILER=strip: needs TSTAMP_SOURCE=trailer:arista7130 or header:arista7280" <"$WORK/bad.log"
log "ok: Arista 7280 header times as tshark reads them (64/48-bit, TAI/UTC, across the wrap); headers kept or stripped"
