#!/usr/bin/env bash
# No lock-out by a flood, with CURVE on: a peer with an allowed key (its
# certificate names "flood-*") announces 5000 made-up sources, ten times a
# second apart, at a collector with room for 64 (MAX_SOURCES) and 8 per
# peer; a real agent joins during the flood and streams a file at its
# recorded pace (dead-lettering what waits 8 s unacknowledged). The real
# file arrives whole and exactly once; the flooder holds at most its 8
# sources, the rest is refused and counted (peer_limit, hello_rate), and a
# refused HELLO writes no interface block into the output. Then the same
# through a relay, which holds the flooder to its own limits.
. "$(dirname "$0")/lib.sh"
need curl ss capinfos
KEYGEN=$BIN/keygen/tapmesh-keygen
BADPEER=$TOOLS/badpeer
k=$WORK/keys
mkdir -p "$k" "$WORK/allow-c" "$WORK/allow-r"
"$KEYGEN" "$k/collect" >/dev/null 2>&1 || fail "tapmesh-keygen failed"
"$KEYGEN" "$k/relay" --relay >/dev/null 2>&1
"$KEYGEN" "$k/site-a" --node-id site-a >/dev/null 2>&1
"$KEYGEN" "$k/flooder" --node-id 'flood-*' >/dev/null 2>&1
cp "$k/site-a" "$k/flooder" "$k/relay" "$WORK/allow-c/"
cp "$k/site-a" "$k/flooder" "$WORK/allow-r/"
"$TOOLS/gen-sample" "$WORK/in.pcap" 3000 ether 909

# interfaces OUT: the names of the output's interface blocks, one a line
interfaces() {
    capinfos -I "$1" | sed -n 's/^ *Name = //p'
}

# round NAME ENDPOINT SERVER_KEY COLLECTOR_METRICS OUTPUT REFUSER_METRICS SERVICE
round() {
    local name=$1 ep=$2 server=$3 mc=$4 out=$5 mref=$6 svc=$7
    start "flood-$name" -- "$BADPEER" "$ep" hello-flood 5000 --source flood --rounds 10 \
        --interval-ms 1000 --curve "$k/flooder_secret" "$server"
    sleep 0.5 # the flood first: the agent joins while it goes on
    start "agent-$name" NODE_ID=site-a RELAY_ENDPOINT=$ep METRICS_ADDRPORT= READ_FILE=$WORK/in.pcap \
        REPLAY_SPEED=1 BATCH_MAX_DELAY_MS=20 RETRY_TIMEOUT_S=8 CURVE_SECRET_KEY_FILE=$k/site-a_secret \
        CURVE_SERVER_PUBLIC_KEY=$server -- "$CAPTURE"
    expect_exit "flood-$name" 40 0
    expect_exit "agent-$name" 60 0
    wait_metric "$mc" tapmesh_collect_packets_total 3000 10
    local limit rate
    limit=$(metric "$mref" "tapmesh_${svc}_sources_refused_total{reason=\"peer_limit\"}")
    rate=$(metric "$mref" "tapmesh_${svc}_sources_refused_total{reason=\"hello_rate\"}")
    [ $((limit + rate)) -ge $((9 * 4992)) ] || fail "$name: only $limit + $rate new sources refused"
    log "$name: refused $limit by the peer's limit and $rate by its rate"
}

pick_port; cport=$PORT
pick_port; mc=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out1.pcapng STARTUP_WAIT_MS=0 MAX_SOURCES=64 MAX_SOURCES_PER_PEER=8 \
    CURVE_SECRET_KEY_FILE=$k/collect_secret CURVE_ALLOWED_KEYS_DIR=$WORK/allow-c -- "$COLLECT"
wait_listening "$mc" 10
round direct "tcp://127.0.0.1:$cport" "$k/collect" "$mc" "$WORK/out1.pcapng" "$mc" collect
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/in.pcap" "$WORK/out1.pcapng"
interfaces "$WORK/out1.pcapng" >"$WORK/ifaces1.txt"
grep -qx "site-a/in.pcap" "$WORK/ifaces1.txt" || fail "no interface of site-a: $(cat "$WORK/ifaces1.txt")"
n=$(grep -c '^flood-' "$WORK/ifaces1.txt" || true)
[ "$n" -le 8 ] || fail "$n interface blocks of the flooder, at most 8 (MAX_SOURCES_PER_PEER) expected"
[ "$(wc -l <"$WORK/ifaces1.txt")" = $((n + 1)) ] || fail "other interfaces: $(cat "$WORK/ifaces1.txt")"
log "straight at the collector: the file whole and once, $n of the flooder's interfaces"

# through a relay: it holds the flooder to its limits before the collector sees it
pick_port; rport=$PORT
pick_port; mr=$PORT
start collect2 COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out2.pcapng STARTUP_WAIT_MS=0 MAX_SOURCES=64 MAX_SOURCES_PER_PEER=8 \
    CURVE_SECRET_KEY_FILE=$k/collect_secret CURVE_ALLOWED_KEYS_DIR=$WORK/allow-c -- "$COLLECT"
start relay NODE_ID=relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$mr MAX_SOURCES=64 MAX_SOURCES_PER_PEER=8 \
    CURVE_SECRET_KEY_FILE=$k/relay_secret CURVE_SERVER_PUBLIC_KEY=$k/collect \
    CURVE_ALLOWED_KEYS_DIR=$WORK/allow-r -- "$RELAY"
wait_listening "$mc" 10
wait_listening "$mr" 10
round relayed "tcp://127.0.0.1:$rport" "$k/relay" "$mc" "$WORK/out2.pcapng" "$mr" relay
stop relay
stop collect2
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/in.pcap" "$WORK/out2.pcapng"
interfaces "$WORK/out2.pcapng" >"$WORK/ifaces2.txt"
n=$(grep -c '^flood-' "$WORK/ifaces2.txt" || true)
[ "$n" -le 8 ] || fail "through the relay: $n interface blocks of the flooder"
log "ok: 5000 made-up sources ten times over, the real file whole and once, straight and through a relay"
