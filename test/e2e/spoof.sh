#!/usr/bin/env bash
# The spoofing attack, with CURVE on: while a real agent (site-a) streams a
# file at its recorded pace, a peer with an allowed key that belongs to
# another node (mallory) sends HELLO, 40 one-packet batches with seq 60-99
# (watermark 2^64-1) and END for site-a's source id and epoch (read from
# the agent's log). Each hop checks its direct peer's key against the node
# ids its certificate names: the spoofer's messages are refused and counted
# (reason "identity"), never answered, and the real file arrives whole and
# exactly once; first straight at the collector, then through a relay.
. "$(dirname "$0")/lib.sh"
need curl ss
KEYGEN=$BIN/keygen/tapmesh-keygen
BADPEER=$TOOLS/badpeer
k=$WORK/keys
mkdir -p "$k" "$WORK/allow-c" "$WORK/allow-r"
"$KEYGEN" "$k/collect" >/dev/null 2>&1 || fail "tapmesh-keygen failed"
"$KEYGEN" "$k/relay" --relay >/dev/null 2>&1
"$KEYGEN" "$k/site-a" --node-id site-a >/dev/null 2>&1
"$KEYGEN" "$k/mallory" --node-id mallory >/dev/null 2>&1
cp "$k/site-a" "$k/mallory" "$k/relay" "$WORK/allow-c/"
cp "$k/site-a" "$k/mallory" "$WORK/allow-r/"
"$TOOLS/gen-sample" "$WORK/in.pcap" 3000 ether 606

# epoch_of AGENT: site-a's epoch, from the agent's first lines
epoch_of() {
    local end=$((SECONDS + 10)) e=""
    while [ -z "$e" ]; do
        [ $SECONDS -lt $end ] || fail "$1 never said its epoch: $(cat "$WORK/$1.log")"
        e=$(sed -n 's/.*source site-a epoch \([0-9]*\):.*/\1/p' "$WORK/$1.log" | head -n 1)
        sleep 0.02
    done
    echo "$e"
}

# round NAME ENDPOINT_OF_AGENT_AND_SPOOFER SERVER_KEY METRICS_PORT_REFUSING
round() {
    local name=$1 ep=$2 server=$3 mport=$4
    start "agent-$name" NODE_ID=site-a RELAY_ENDPOINT=$ep METRICS_ADDRPORT= READ_FILE=$WORK/in.pcap \
        REPLAY_SPEED=1 BATCH_MAX_DELAY_MS=20 CURVE_SECRET_KEY_FILE=$k/site-a_secret \
        CURVE_SERVER_PUBLIC_KEY=$server -- "$CAPTURE"
    local epoch
    epoch=$(epoch_of "agent-$name")
    "$BADPEER" "$ep" spoof 40 --seq 60 --source site-a --epoch "$epoch" \
        --curve "$k/mallory_secret" "$server" >"$WORK/spoof-$name.out" 2>&1 ||
        fail "badpeer: $(cat "$WORK/spoof-$name.out")"
    grep -q "^replies: 0 welcome, 0 ack, 0 refuse$" "$WORK/spoof-$name.out" ||
        fail "the spoofer got answers: $(cat "$WORK/spoof-$name.out")"
    expect_exit "agent-$name" 60 0
    local n
    n=$(metric "$mport" "tapmesh_${5}_auth_failures_total{reason=\"identity\"}")
    [ "${n:-0}" = 42 ] || fail "$name: $n messages refused for identity, expected 42 (HELLO, 40 batches, END)"
    grep -q "warn: refused a message from peer [0-9a-f]*: key $(awk -F'"' '/public-key/ {print $2}' "$k/mallory" | sed 's/[][\.*^$/]/\\&/g') may not speak for source site-a (identity" \
        "$WORK/$6.log" || fail "$name: the refusal is not logged"
}

pick_port; cport=$PORT
pick_port; mc=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out1.pcapng STARTUP_WAIT_MS=0 CURVE_SECRET_KEY_FILE=$k/collect_secret \
    CURVE_ALLOWED_KEYS_DIR=$WORK/allow-c -- "$COLLECT"
wait_listening "$mc" 10
round direct "tcp://127.0.0.1:$cport" "$k/collect" "$mc" collect collect
wait_metric "$mc" tapmesh_collect_packets_total 3000 10
[ "$(metric "$mc" tapmesh_collect_duplicate_batches_total)" = 0 ] || fail "duplicates counted"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/in.pcap" "$WORK/out1.pcapng"
log "straight at the collector: the spoofer refused, the file whole and once"

# the same through a relay, which checks its own peers
pick_port; rport=$PORT
pick_port; mr=$PORT
start collect2 COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out2.pcapng STARTUP_WAIT_MS=0 CURVE_SECRET_KEY_FILE=$k/collect_secret \
    CURVE_ALLOWED_KEYS_DIR=$WORK/allow-c -- "$COLLECT"
start relay NODE_ID=relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$mr CURVE_SECRET_KEY_FILE=$k/relay_secret \
    CURVE_SERVER_PUBLIC_KEY=$k/collect CURVE_ALLOWED_KEYS_DIR=$WORK/allow-r -- "$RELAY"
wait_listening "$mc" 10
wait_listening "$mr" 10
round relayed "tcp://127.0.0.1:$rport" "$k/relay" "$mr" relay relay
wait_metric "$mc" tapmesh_collect_packets_total 3000 10
[ "$(metric "$mc" 'tapmesh_collect_auth_failures_total{reason="identity"}')" = 0 ] ||
    fail "the collector saw spoofed messages the relay should have refused"
stop relay
stop collect2
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/in.pcap" "$WORK/out2.pcapng"
log "ok: the spoofer refused and counted at the collector and at a relay; the file whole and once"
