#!/usr/bin/env bash
# Who CurveZMQ keeps out, and how it says so. Against a collector with
# CURVE: a stranger's key, a peer without CURVE and a peer using another
# server key deliver nothing (their agents dead-letter everything), each
# refusal counted by reason (tapmesh_collect_auth_failures_total) and
# logged with the peer's address. The stranger's certificate added to
# CURVE_ALLOWED_KEYS_DIR and a SIGHUP let it in; a directory that no longer
# reads cleanly leaves the list as it was. Bad CURVE settings stop start-up
# with status 2 and one line naming the variable; a relay bound without
# CURVE beyond loopback warns and counts a plaintext endpoint. And
# tapmesh-keygen writes what it is asked for, and nothing else.
. "$(dirname "$0")/lib.sh"
need curl ss
KEYGEN=$BIN/keygen/tapmesh-keygen
k=$WORK/keys
mkdir -p "$k" "$WORK/allow"
for name in collect other-collect site-a stranger; do
    "$KEYGEN" "$k/$name" --node-id "$name" >/dev/null 2>&1 || fail "tapmesh-keygen $name failed"
done
cp "$k/site-a" "$WORK/allow/"
"$TOOLS/gen-sample" "$WORK/in.pcap" 200 ether 5

# tapmesh-keygen: the metadata asked for, the secret file 0600, the public
# key printed; never an existing file overwritten; bad node ids refused
pub=$("$KEYGEN" "$k/multi" --node-id edge1 --node-id 'site-*' 2>/dev/null) || fail "keygen --node-id twice"
grep -q '^    node-id = "edge1,site-\*"$' "$k/multi" || fail "keygen metadata: $(cat "$k/multi")"
grep -qF "public-key = \"$pub\"" "$k/multi" || fail "keygen printed another key than it wrote"
[ "$(stat -c %a "$k/multi_secret")" = 600 ] || fail "the secret certificate is not 0600"
"$KEYGEN" "$k/relayk" --relay >/dev/null 2>&1 && grep -q '^    role = "relay"$' "$k/relayk" ||
    fail "keygen --relay"
rc=0; "$KEYGEN" "$k/multi" >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "keygen over an existing certificate exited $rc"
rc=0; "$KEYGEN" "$k/bad" --node-id 'edge 1' >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] && [ ! -e "$k/bad" ] || fail "keygen with a bad node id exited $rc"
rc=0; "$KEYGEN" "$k/both" --node-id a --relay >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "keygen --node-id --relay exited $rc"

# expect_bad NAME BINARY PATTERN VAR=VALUE...: status 2, one line matching PATTERN
expect_bad() {
    local name=$1 bin=$2 pattern=$3 out rc=0
    shift 3
    out=$(env METRICS_ADDRPORT= "$@" "$bin" 2>&1 >/dev/null) || rc=$?
    [ "$rc" = 2 ] || fail "$name: exited $rc, expected 2 ($out)"
    [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "$name: more than one line: $out"
    [[ "$out" == *$pattern* ]] || fail "$name: '$out' does not match '$pattern'"
}
expect_bad "no own key" "$COLLECT" "CURVE_SECRET_KEY_FILE: not set" CURVE_ALLOWED_KEYS_DIR=$WORK/allow
expect_bad "no allow-list" "$COLLECT" "CURVE_ALLOWED_KEYS_DIR: not set" \
    CURVE_SECRET_KEY_FILE=$k/collect_secret
expect_bad "no server key" "$CAPTURE" "CURVE_SERVER_PUBLIC_KEY: not set" \
    READ_FILE=$WORK/in.pcap CURVE_SECRET_KEY_FILE=$k/site-a_secret
expect_bad "not a certificate" "$CAPTURE" "CURVE_SECRET_KEY_FILE='$WORK/in.pcap': not a certificate" \
    READ_FILE=$WORK/in.pcap CURVE_SECRET_KEY_FILE=$WORK/in.pcap CURVE_SERVER_PUBLIC_KEY=$k/collect
cp "$k/site-a" "$WORK/site-a-public-only"
expect_bad "no secret in it" "$CAPTURE" "no secret key" READ_FILE=$WORK/in.pcap \
    CURVE_SECRET_KEY_FILE=$WORK/site-a-public-only CURVE_SERVER_PUBLIC_KEY=$k/collect
expect_bad "missing file" "$CAPTURE" "CURVE_SECRET_KEY_FILE='/no/such/key_secret': No such file" \
    READ_FILE=$WORK/in.pcap CURVE_SECRET_KEY_FILE=/no/such/key_secret CURVE_SERVER_PUBLIC_KEY=$k/collect
expect_bad "bad server key" "$CAPTURE" "CURVE_SERVER_PUBLIC_KEY='not-a-key'" READ_FILE=$WORK/in.pcap \
    CURVE_SECRET_KEY_FILE=$k/site-a_secret CURVE_SERVER_PUBLIC_KEY=not-a-key
expect_bad "keys per hop" "$RELAY" "3 keys for 2 endpoints" \
    RELAY_ENDPOINT=tcp://127.0.0.1:1,tcp://127.0.0.1:2 CURVE_SECRET_KEY_FILE=$k/collect_secret \
    CURVE_SERVER_PUBLIC_KEY=$k/collect,$k/collect,$k/collect CURVE_ALLOWED_KEYS_DIR=$WORK/allow
mkdir "$WORK/junk-allow"
echo "not a certificate" >"$WORK/junk-allow/notes.txt"
expect_bad "junk in the allow-list" "$COLLECT" "notes.txt: not a certificate" \
    CURVE_SECRET_KEY_FILE=$k/collect_secret CURVE_ALLOWED_KEYS_DIR=$WORK/junk-allow

# a relay bound beyond loopback without CURVE warns and counts it
pick_port; rp=$PORT
pick_port; rm=$PORT
start openrelay COLLECT_ENDPOINT=tcp://0.0.0.0:$rp RELAY_ENDPOINT=tcp://127.0.0.1:1 \
    METRICS_ADDRPORT=127.0.0.1:$rm -- "$RELAY"
wait_listening "$rm" 10
[ "$(metric "$rm" tapmesh_relay_plaintext_endpoints)" = 1 ] || fail "the open relay counts no plaintext endpoint"
grep -q "warn: anyone who reaches tcp://0.0.0.0:$rp can send packets through this relay; set CURVE_SECRET_KEY_FILE and CURVE_ALLOWED_KEYS_DIR" \
    "$WORK/openrelay.log" || fail "no warning about the open relay: $(cat "$WORK/openrelay.log")"
stop openrelay
# so does a collector, and one bound to loopback does not
pick_port; op=$PORT
pick_port; om=$PORT
start opencollect COLLECT_ENDPOINT=tcp://0.0.0.0:$op METRICS_ADDRPORT=127.0.0.1:$om \
    OUTPUT=/dev/null -- "$COLLECT"
wait_listening "$om" 10
[ "$(metric "$om" tapmesh_collect_plaintext_endpoints)" = 1 ] || fail "the open collector counts no plaintext endpoint"
grep -q "warn: anyone who reaches tcp://0.0.0.0:$op can write into this output; set CURVE_SECRET_KEY_FILE and CURVE_ALLOWED_KEYS_DIR (or bind COLLECT_ENDPOINT to 127.0.0.1)" \
    "$WORK/opencollect.log" || fail "no warning about the open collector: $(cat "$WORK/opencollect.log")"
stop opencollect
pick_port; op=$PORT
pick_port; om=$PORT
start lococollect COLLECT_ENDPOINT=tcp://127.0.0.1:$op METRICS_ADDRPORT=127.0.0.1:$om \
    OUTPUT=/dev/null -- "$COLLECT"
wait_listening "$om" 10
[ "$(metric "$om" tapmesh_collect_plaintext_endpoints)" = 0 ] || fail "a loopback collector counts a plaintext endpoint"
stop lococollect
! grep -q "anyone who reaches" "$WORK/lococollect.log" || fail "a loopback plaintext collector warned"

pick_port; cport=$PORT
pick_port; mc=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out.pcapng STARTUP_WAIT_MS=0 CURVE_SECRET_KEY_FILE=$k/collect_secret \
    CURVE_ALLOWED_KEYS_DIR=$WORK/allow -- "$COLLECT"
wait_listening "$mc" 10
[ "$(metric "$mc" tapmesh_collect_plaintext_endpoints)" = 0 ] || fail "plaintext endpoint counted"
! grep -q "anyone who reaches" "$WORK/collect.log" || fail "a loopback CURVE endpoint warned"

# refused AGENT_NAME REASON ENV...: the agent delivers nothing (exit 1, all
# dead-lettered) and the collector counts a refusal for REASON
refused() {
    local name=$1 reason=$2
    shift 2
    start "$name" NODE_ID=site-a RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= \
        READ_FILE=$WORK/in.pcap ACK_TIMEOUT_MS=200 RETRY_TIMEOUT_S=2 DLQ_DIR=$WORK/dlq-$name "$@" -- "$CAPTURE"
    expect_exit "$name" 30 1
    ls "$WORK/dlq-$name"/*.pcapng >/dev/null 2>&1 || fail "$name: nothing dead-lettered"
    [ "$(metric "$mc" tapmesh_collect_packets_total)" = 0 ] || fail "$name: packets were written"
    local n
    n=$(metric "$mc" "tapmesh_collect_auth_failures_total{reason=\"$reason\"}")
    [ "${n:-0}" -ge 1 ] || fail "$name: no refusal counted for reason $reason"
}
refused stranger unknown_key CURVE_SECRET_KEY_FILE=$k/stranger_secret CURVE_SERVER_PUBLIC_KEY=$k/collect
grep -qF "warn: refused a connection from 127.0.0.1: its key $(awk -F'"' '/public-key/ {print $2}' "$k/stranger") is not in CURVE_ALLOWED_KEYS_DIR" \
    "$WORK/collect.log" || fail "the stranger's refusal is not logged: $(cat "$WORK/collect.log")"
# the stranger comes back: every try counted, one line logged for its address
refused stranger-again unknown_key CURVE_SECRET_KEY_FILE=$k/stranger_secret CURVE_SERVER_PUBLIC_KEY=$k/collect
tries=$(metric "$mc" 'tapmesh_collect_auth_failures_total{reason="unknown_key"}')
[ "$tries" -ge 2 ] || fail "the stranger tried twice, $tries refusals counted"
[ "$(grep -c 'refused a connection from 127.0.0.1: its key' "$WORK/collect.log")" = 1 ] ||
    fail "$tries refusals from one address logged $(grep -c 'refused a connection from 127.0.0.1: its key' "$WORK/collect.log") times, expected once"
refused wrongserver crypto CURVE_SECRET_KEY_FILE=$k/site-a_secret CURVE_SERVER_PUBLIC_KEY=$k/other-collect
# a peer without CURVE: refused in the handshake; libzmq reports a mechanism
# mismatch, or a peer that hung up first (it saw CURVE asked for)
start plain NODE_ID=site-a RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= \
    READ_FILE=$WORK/in.pcap ACK_TIMEOUT_MS=200 RETRY_TIMEOUT_S=2 DLQ_DIR=$WORK/dlq-plain -- "$CAPTURE"
expect_exit plain 30 1
[ "$(metric "$mc" tapmesh_collect_packets_total)" = 0 ] || fail "plain: packets were written"
p=$(metric "$mc" 'tapmesh_collect_auth_failures_total{reason="plaintext"}')
h=$(metric "$mc" 'tapmesh_collect_auth_failures_total{reason="handshake"}')
[ $((p + h)) -ge 1 ] || fail "the plaintext agent's refusal is not counted"
grep -q "warn: refused a connection from .*(\(plaintext\|handshake\);" "$WORK/collect.log" ||
    fail "the plaintext agent's refusal is not logged"

# the stranger's certificate joins the allow-list: a SIGHUP lets it in
cp "$k/stranger" "$WORK/allow/"
kill -HUP "${PIDS[collect]}"
end=$((SECONDS + 10))
until grep -q "read again: 2 key(s) allowed (1 before)" "$WORK/collect.log"; do
    [ $SECONDS -lt $end ] || fail "no reload after SIGHUP: $(tail -n 3 "$WORK/collect.log")"
    sleep 0.05
done
start stranger2 NODE_ID=stranger RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= \
    READ_FILE=$WORK/in.pcap CURVE_SECRET_KEY_FILE=$k/stranger_secret CURVE_SERVER_PUBLIC_KEY=$k/collect -- "$CAPTURE"
expect_exit stranger2 30 0
wait_metric "$mc" tapmesh_collect_packets_total 200 10
# a directory that no longer reads cleanly: logged, the list stays
echo "junk" >"$WORK/allow/junk"
kill -HUP "${PIDS[collect]}"
end=$((SECONDS + 10))
until grep -q "error: SIGHUP: CURVE_ALLOWED_KEYS_DIR=.*junk.*the 2 key(s) read before stay" "$WORK/collect.log"; do
    [ $SECONDS -lt $end ] || fail "no error for the bad directory: $(tail -n 3 "$WORK/collect.log")"
    sleep 0.05
done
start sitea NODE_ID=site-a RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= \
    READ_FILE=$WORK/in.pcap CURVE_SECRET_KEY_FILE=$k/site-a_secret CURVE_SERVER_PUBLIC_KEY=$k/collect -- "$CAPTURE"
expect_exit sitea 30 0
wait_metric "$mc" tapmesh_collect_packets_total 400 10
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
# the refused agent says why it got nowhere
grep -q "refused this service's CURVE key" "$WORK/stranger.log" || fail "the stranger does not say it was refused"
log "ok: stranger, plaintext and wrong server key refused and counted; SIGHUP reloads the allow-list"
