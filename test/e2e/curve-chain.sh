#!/usr/bin/env bash
# CurveZMQ on every hop: capture → relay1 → relay2 → collector, each hop
# with its own certificate (tapmesh-keygen), each receiver allowing only the
# hop before it (the agent for its node id, the relays as relays). Every
# packet arrives, byte for byte, and a tcpdump of loopback taken during the
# run (root only; that part is skipped otherwise) holds none of a string
# that is in every packet sent, though it carried all of their bytes.
. "$(dirname "$0")/lib.sh"
need curl ss
KEYGEN=$BIN/keygen/tapmesh-keygen
marker=TAPMESH-CURVE-MARKER-$$

"$TOOLS/gen-sample" "$WORK/in.pcap" 3000 ether 4242 "$marker"
n=$(grep -a -o "$marker" "$WORK/in.pcap" | wc -l)
[ "$n" = 3000 ] || fail "the marker is $n times in the input, expected 3000"

mkdir -p "$WORK/keys" "$WORK/allow-r1" "$WORK/allow-r2" "$WORK/allow-c"
k=$WORK/keys
"$KEYGEN" "$k/site-a" --node-id site-a >/dev/null 2>&1 || fail "tapmesh-keygen failed"
"$KEYGEN" "$k/relay1" --relay >/dev/null 2>&1
"$KEYGEN" "$k/relay2" --relay >/dev/null 2>&1
"$KEYGEN" "$k/collect" >/dev/null 2>&1
[ "$(stat -c %a "$k/site-a_secret")" = 600 ] || fail "secret certificate is not 0600"
cp "$k/site-a" "$WORK/allow-r1/"
cp "$k/relay1" "$WORK/allow-r2/"
cp "$k/relay2" "$WORK/allow-c/"

pick_port; cport=$PORT
pick_port; r1=$PORT
pick_port; r2=$PORT
pick_port; mc=$PORT
pick_port; m1=$PORT
pick_port; m2=$PORT

sniff=
if [ "$(id -u)" = 0 ] && command -v tcpdump >/dev/null; then
    start tcpdump -- tcpdump -i lo -B 32768 -U -w "$WORK/lo.pcap" "tcp port $cport or tcp port $r1 or tcp port $r2"
    end=$((SECONDS + 10))
    until grep -q "listening on lo" "$WORK/tcpdump.log"; do
        [ $SECONDS -lt $end ] || fail "tcpdump did not start: $(cat "$WORK/tcpdump.log")"
        sleep 0.05
    done
    sniff=yes
else
    log "not root or no tcpdump: the wire is not inspected"
fi

start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out.pcapng STARTUP_WAIT_MS=0 \
    CURVE_SECRET_KEY_FILE=$k/collect_secret CURVE_ALLOWED_KEYS_DIR=$WORK/allow-c -- "$COLLECT"
start relay2 NODE_ID=relay2 COLLECT_ENDPOINT=tcp://127.0.0.1:$r2 RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$m2 CURVE_SECRET_KEY_FILE=$k/relay2_secret \
    CURVE_SERVER_PUBLIC_KEY=$k/collect CURVE_ALLOWED_KEYS_DIR=$WORK/allow-r2 -- "$RELAY"
# a key may also be given as its Z85 text
start relay1 NODE_ID=relay1 COLLECT_ENDPOINT=tcp://127.0.0.1:$r1 RELAY_ENDPOINT=tcp://127.0.0.1:$r2 \
    METRICS_ADDRPORT=127.0.0.1:$m1 CURVE_SECRET_KEY_FILE=$k/relay1_secret \
    CURVE_SERVER_PUBLIC_KEY="$(awk -F'"' '/public-key/ {print $2}' "$k/relay2")" \
    CURVE_ALLOWED_KEYS_DIR=$WORK/allow-r1 -- "$RELAY"
wait_listening "$mc" 10
wait_listening "$m1" 10
wait_listening "$m2" 10
start agent NODE_ID=site-a RELAY_ENDPOINT=tcp://127.0.0.1:$r1 METRICS_ADDRPORT= READ_FILE=$WORK/in.pcap \
    CURVE_SECRET_KEY_FILE=$k/site-a_secret CURVE_SERVER_PUBLIC_KEY=$k/relay1 -- "$CAPTURE"
expect_exit agent 60 0
wait_metric "$mc" tapmesh_collect_packets_total 3000 15
for port in $mc $m1 $m2; do
    metrics "$port" >"$WORK/m.txt"
    if grep '_auth_failures_total{' "$WORK/m.txt" | grep -v ' 0$' >"$WORK/bad.txt"; then
        fail "refusals on port $port: $(cat "$WORK/bad.txt")"
    fi
    grep -q '_plaintext_endpoints 0$' "$WORK/m.txt" || fail "plaintext endpoints on port $port"
done
grep -q "CURVE on: 1 key(s) allowed" "$WORK/collect.log" || fail "the collector does not say CURVE is on"
stop relay1
stop relay2
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/in.pcap" "$WORK/out.pcapng"
if [ -n "$sniff" ]; then
    sleep 0.2
    stop tcpdump INT
    [ -s "$WORK/lo.pcap" ] || fail "tcpdump captured nothing"
    seen=$(grep -a -o "$marker" "$WORK/lo.pcap" | wc -l || true)
    [ "$seen" = 0 ] || fail "the marker is readable on the wire ($seen times)"
    # the capture did carry the packets (three hops of them), encrypted
    wire=$(stat -c %s "$WORK/lo.pcap")
    data=$(stat -c %s "$WORK/in.pcap")
    [ "$wire" -gt $((data * 2)) ] || fail "loopback capture of $wire bytes for $data bytes of input"
    log "ok: 3000 packets over three CURVE hops; loopback ($wire bytes) never shows the marker"
else
    log "ok: 3000 packets over three CURVE hops"
fi
