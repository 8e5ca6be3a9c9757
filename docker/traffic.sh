#!/bin/sh
# tapmesh-traffic — the compose lab's traffic generator (image
# tapmesh-traffic): replays one capture file on one interface with
# tcpreplay, then pauses, again and again. Every round is the same packets
# in the same order at the same rate, so what the lab's collector writes is
# known: TRAFFIC_FILE's packets once per round and per edge network. The
# capture agent shares this container's network namespace and captures on
# the same interface: a packet socket sees what tcpreplay sends there.
#
#   TRAFFIC_FILE       capture file to replay (default: the sample in the image)
#   TRAFFIC_INTERFACE  interface to send on (default eth0)
#   TRAFFIC_PPS        packets per second (default 200)
#   TRAFFIC_PAUSE_S    pause between rounds (default 10)
#   TRAFFIC_LOOPS      rounds, then exit 0 (default 0: until stopped)
#
# Needs CAP_NET_RAW (tcpreplay writes to a packet socket). The sample has
# jumbo frames: the interface's MTU must be at least 9004 (the lab sets
# 9100 on the edge networks), or tcpreplay counts them as failed.
set -eu

file=${TRAFFIC_FILE:-/usr/share/tapmesh/sample-ether.pcap}
dev=${TRAFFIC_INTERFACE:-eth0}
pps=${TRAFFIC_PPS:-200}
pause=${TRAFFIC_PAUSE_S:-10}
loops=${TRAFFIC_LOOPS:-0}

for v in "$pps" "$pause" "$loops"; do
    case $v in
    '' | *[!0-9]*)
        echo "tapmesh-traffic: '$v' is not a number (TRAFFIC_PPS, TRAFFIC_PAUSE_S, TRAFFIC_LOOPS)" >&2
        exit 2
        ;;
    esac
done
[ "$pps" -ge 1 ] || {
    echo "tapmesh-traffic: TRAFFIC_PPS=$pps: at least 1" >&2
    exit 2
}
[ -r "$file" ] || {
    echo "tapmesh-traffic: TRAFFIC_FILE=$file: cannot read it" >&2
    exit 2
}

# process 1 of a container: on TERM (docker stop) stop within the round
# in progress (a few seconds), not after the pause
child=
trap '[ -z "$child" ] || kill "$child" 2>/dev/null; exit 0' TERM INT

round=0
while [ "$loops" = 0 ] || [ "$round" -lt "$loops" ]; do
    round=$((round + 1))
    rc=0
    out=$(tcpreplay --intf1="$dev" --pps="$pps" "$file" 2>&1) || rc=$?
    sent=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*Successful packets:[[:space:]]*//p')
    failed=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*Failed packets:[[:space:]]*//p')
    if [ "$rc" = 0 ]; then
        echo "tapmesh-traffic: round $round: $file on $dev: ${sent:-?} packets sent, ${failed:-?} failed"
    else
        echo "tapmesh-traffic: round $round: tcpreplay exited $rc: $(printf '%s\n' "$out" | tail -n 3 | tr '\n' ' ')" >&2
    fi
    if [ "$loops" = 0 ] || [ "$round" -lt "$loops" ]; then
        sleep "$pause" &
        child=$!
        wait "$child" || true
        child=
    fi
done
