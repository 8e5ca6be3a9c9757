#!/usr/bin/env bash
# A capture agent on the interface that carries its own connection to its
# next hop (DEVICE=lo, next hop on 127.0.0.1) leaves that connection out of
# the capture: otherwise every batch it sends is captured and sent again,
# and the bytes captured grow without bound. In a network namespace made by
# the test: a collector on 127.0.0.1, an agent on lo, a few UDP datagrams.
# By default the bytes captured stay bounded, the datagrams arrive, and not
# one packet of the agent's connection is in the output; with
# CAPTURE_OWN_TRAFFIC=true the capture feeds on itself (so this test can
# tell the two apart). Needs root; skipped otherwise.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "live capture needs root (a network namespace and a raw socket)"
need ip tcpdump curl

ns=tapmesh-own-$$
ip netns add "$ns" || skip "cannot create a network namespace here"
at_exit "ip netns del $ns"
inns() { ip netns exec "$ns" "$@"; }
ip -n "$ns" link set lo up

# captured bytes so far, from the agent's /metrics inside the namespace
bytes() {
    inns curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" |
        awk '$1 == "tapmesh_capture_bytes_total" {print $2}'
}

# phase NAME OWN_TRAFFIC: collector and agent for ~6 s; sets GROWTH (bytes
# captured between the 2nd and the 6th second) and PORT_DATA
phase() {
    local name=$1 own=$2 mport cport
    pick_port
    PORT_DATA=$PORT
    pick_port
    cport=$PORT
    pick_port
    mport=$PORT
    start "collect-$name" COLLECT_ENDPOINT=tcp://127.0.0.1:$PORT_DATA METRICS_ADDRPORT=127.0.0.1:$cport \
        OUTPUT="$WORK/$name.pcapng" STARTUP_WAIT_MS=0 -- ip netns exec "$ns" "$COLLECT"
    start "capture-$name" DEVICE=lo RELAY_ENDPOINT=tcp://127.0.0.1:$PORT_DATA CAPTURE_OWN_TRAFFIC="$own" \
        METRICS_ADDRPORT=127.0.0.1:$mport NODE_ID=lo-agent -- ip netns exec "$ns" "$CAPTURE"
    local end=$((SECONDS + 10))
    until grep -q "collector accepted source" "$WORK/capture-$name.log"; do
        [ $SECONDS -lt $end ] || fail "$name: the agent did not join: $(cat "$WORK/capture-$name.log")"
        sleep 0.05
    done
    local t0=$SECONDS
    # a little traffic of our own: 20 datagrams in one second
    inns bash -c 'for i in $(seq 1 20); do echo "datagram $i" >/dev/udp/127.0.0.1/9999; sleep 0.05; done'
    sleep 1
    local b0 b1
    b0=$(bytes "$mport")
    sleep 4
    b1=$(bytes "$mport")
    [ -n "$b0" ] && [ -n "$b1" ] || fail "$name: no tapmesh_capture_bytes_total"
    GROWTH=$((${b1%.*} - ${b0%.*}))
    log "$name: $b0 bytes captured after $((SECONDS - t0 - 4)) s, $b1 four seconds later"
    stop "capture-$name"
    [ "$RC" = 0 ] || fail "$name: capture exited $RC after SIGTERM"
    stop "collect-$name"
    [ "$RC" = 0 ] || fail "$name: collect exited $RC"
}

# what the output holds: packets of the agent's connection, and our datagrams
count() {
    tcpdump -nn -r "$WORK/$1.pcapng" "$2" 2>/dev/null | wc -l
}

# Between the two readings only one /metrics request (a few KiB) is new to
# the capture; a capture of its own sends grows by far more than this.
bound=$((64 * 1024))

phase default false
[ "$GROWTH" -lt "$bound" ] ||
    fail "default: the bytes captured grew by $GROWTH in 4 s (the agent captures its own traffic)"
own=$(count default "tcp port $PORT_DATA")
[ "$own" = 0 ] || fail "default: $own packets of the agent's connection to port $PORT_DATA are in the output"
n=$(count default "udp port 9999")
[ "$n" = 20 ] || fail "default: $n of 20 datagrams in the output"
grep -q "filter in force: not (host 127.0.0.1 and tcp port $PORT_DATA)\$" "$WORK/capture-default.log" ||
    fail "default: no 'filter in force' line naming the exclusion: $(grep -i filter "$WORK/capture-default.log")"

phase own true
[ "$GROWTH" -ge "$bound" ] ||
    fail "CAPTURE_OWN_TRAFFIC=true: the bytes captured grew by only $GROWTH in 4 s"
own=$(count own "tcp port $PORT_DATA")
[ "$own" -gt 0 ] || fail "CAPTURE_OWN_TRAFFIC=true: no packet of the agent's connection in the output"
grep -q "filter in force: none" "$WORK/capture-own.log" ||
    fail "CAPTURE_OWN_TRAFFIC=true: no 'filter in force: none': $(grep -i filter "$WORK/capture-own.log")"
log "ok: the agent leaves its own connection out (and captures it when asked)"
