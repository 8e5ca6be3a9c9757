#!/usr/bin/env bash
# A relay with two next hops (two collectors), in each FANOUT mode:
# - failover: the first collector is killed mid-stream; the second gets the
#   rest; together nothing is lost (duplicates across the two are allowed:
#   what the first wrote but could not acknowledge is sent again);
# - duplicate: each output equals the input; then one collector dies and the
#   agent still finishes (the lagging hop's loss is counted);
# - flowhash: the union of the outputs equals the input, no packet twice,
#   both outputs non-empty, every conversation (both directions) wholly in one.
. "$(dirname "$0")/lib.sh"
need mergecap editcap tshark curl ss

input=$WORK/in.pcap
"$TOOLS/gen-sample" "$input" 2500 ether 303

# two collectors and a relay before them
two_collectors() { # $1: tag
    pick_port; c1=$PORT
    pick_port; c2=$PORT
    pick_port; m1=$PORT
    pick_port; m2=$PORT
    start "c1$1" COLLECT_ENDPOINT=tcp://127.0.0.1:$c1 METRICS_ADDRPORT=127.0.0.1:$m1 \
        OUTPUT=$WORK/$1-1.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
    start "c2$1" COLLECT_ENDPOINT=tcp://127.0.0.1:$c2 METRICS_ADDRPORT=127.0.0.1:$m2 \
        OUTPUT=$WORK/$1-2.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
    wait_listening "$m1" 10
    wait_listening "$m2" 10
}
relay() { # $1: tag, $2: fanout, more VAR=value
    pick_port; rp=$PORT
    pick_port; mr=$PORT
    local tag=$1 fanout=$2
    shift 2
    start "relay$tag" NODE_ID=relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rp \
        RELAY_ENDPOINT=tcp://127.0.0.1:$c1,tcp://127.0.0.1:$c2 FANOUT="$fanout" \
        METRICS_ADDRPORT=127.0.0.1:$mr "$@" -- "$RELAY"
    wait_listening "$mr" 10
    local end=$((SECONDS + 10))
    until [ "$(metric "$mr" "tapmesh_relay_next_hop_up{hop=\"tcp://127.0.0.1:$c2\"}")" = 1 ]; do
        [ $SECONDS -lt $end ] || fail "the relay did not connect to both collectors"
        sleep 0.05
    done
}
count() { tcpdump -nn -r "$1" 2>/dev/null | wc -l; }

# ---- failover ----
two_collectors fo
relay fo failover HOP_TIMEOUT_MS=1000
start agentfo RELAY_ENDPOINT=tcp://127.0.0.1:$rp METRICS_ADDRPORT= NODE_ID=edge READ_FILE=$input \
    REPLAY_SPEED=1 ACK_TIMEOUT_MS=500 BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
end=$((SECONDS + 20))
until [ "$(metric "$m1" tapmesh_collect_packets_total)" -gt 800 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "the first collector got nothing"
    sleep 0.05
done
stop c1fo KILL
end=$((SECONDS + 10))
until [ "$(metric "$m2" tapmesh_collect_packets_total)" -gt 0 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "the second collector got nothing after the first died"
    sleep 0.05
done
[ "$(metric "$mr" "tapmesh_relay_next_hop_up{hop=\"tcp://127.0.0.1:$c1\"}")" = 0 ] ||
    fail "the dead collector is not reported down"
# ... and back: the first collector returns (a new output), and takes over again
pick_port; m1=$PORT
start c1fob COLLECT_ENDPOINT=tcp://127.0.0.1:$c1 METRICS_ADDRPORT=127.0.0.1:$m1 \
    OUTPUT=$WORK/fo-1b.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
expect_exit agentfo 60 0
stop c2fo
stop c1fob
n1=$(count "$WORK/fo-1.pcapng")
n2=$(count "$WORK/fo-2.pcapng")
n3=$(count "$WORK/fo-1b.pcapng")
[ "$n3" -gt 0 ] || fail "the relay did not go back to the first collector when it returned"
# together: every input packet (duplicates removed: they are identical and adjacent once merged)
mergecap -F pcapng -w "$WORK/fo-all.pcapng" "$WORK/fo-1.pcapng" "$WORK/fo-2.pcapng" "$WORK/fo-1b.pcapng"
editcap -D 10000 "$WORK/fo-all.pcapng" "$WORK/fo-union.pcapng" >/dev/null 2>&1
same_packets "$input" "$WORK/fo-union.pcapng"
log "failover: $n1 packets before the kill, $n2 on the second collector, $n3 back on the first; nothing lost"

# ---- duplicate ----
two_collectors du
relay du duplicate RETRY_TIMEOUT_S=2
start agentdu RELAY_ENDPOINT=tcp://127.0.0.1:$rp METRICS_ADDRPORT= NODE_ID=edge READ_FILE=$input \
    BATCH_MAX_BYTES=65536 -- "$CAPTURE"
expect_exit agentdu 60 0
stop c1du
stop c2du
same_packets "$input" "$WORK/du-1.pcapng"
same_packets "$input" "$WORK/du-2.pcapng"
# a dead tool does not stall the other: kill one collector mid-stream
two_collectors dk
relay dk duplicate RETRY_TIMEOUT_S=2 HOP_TIMEOUT_MS=1000
start agentdk RELAY_ENDPOINT=tcp://127.0.0.1:$rp METRICS_ADDRPORT= NODE_ID=edge READ_FILE=$input \
    REPLAY_SPEED=1 ACK_TIMEOUT_MS=500 BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
end=$((SECONDS + 20))
until [ "$(metric "$m2" tapmesh_collect_packets_total)" -gt 800 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "the second collector got nothing"
    sleep 0.05
done
stop c2dk KILL
expect_exit agentdk 60 0
[ "$(metric "$mr" "tapmesh_relay_next_hop_up{hop=\"tcp://127.0.0.1:$c2\"}")" = 0 ] ||
    fail "the dead collector is not reported down"
[ "$(metric "$mr" tapmesh_relay_pending_batches)" = 0 ] || fail "batches still pending at the relay"
stop c1dk
same_packets "$input" "$WORK/dk-1.pcapng"
log "duplicate: both outputs equal the input; with one collector killed, the other still got everything"

# ---- flowhash ----
two_collectors fh
relay fh flowhash
start agentfh RELAY_ENDPOINT=tcp://127.0.0.1:$rp METRICS_ADDRPORT= NODE_ID=edge READ_FILE=$input \
    BATCH_MAX_BYTES=65536 -- "$CAPTURE"
expect_exit agentfh 60 0
stop c1fh
stop c2fh
n1=$(count "$WORK/fh-1.pcapng")
n2=$(count "$WORK/fh-2.pcapng")
[ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] || fail "flowhash: $n1 and $n2 packets: one output is empty"
[ $((n1 + n2)) = 2500 ] || fail "flowhash: $n1 + $n2 packets, expected 2500 (none twice)"
mergecap -F pcapng -w "$WORK/fh-both.pcapng" "$WORK/fh-1.pcapng" "$WORK/fh-2.pcapng"
same_packets "$input" "$WORK/fh-both.pcapng"
# conversations: both directions the same key; no key in both outputs
convs() {
    tshark -n -r "$1" -T fields -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst \
        -e tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport 2>/dev/null |
        awk -F'\t' '{a = $1 $3 "." $5 $7; b = $2 $4 "." $6 $8; print (a < b ? a " " b : b " " a)}' |
        sort -u
}
convs "$WORK/fh-1.pcapng" >"$WORK/conv1"
convs "$WORK/fh-2.pcapng" >"$WORK/conv2"
both=$(comm -12 "$WORK/conv1" "$WORK/conv2" | wc -l)
[ "$both" = 0 ] || fail "$both conversations were split across the two outputs"
log "ok: flowhash: $n1 + $n2 packets, $(wc -l <"$WORK/conv1") + $(wc -l <"$WORK/conv2") conversations, none split"
