#!/usr/bin/env bash
# zstd on the wire: agent (COMPRESS=zstd) → relay1 → relay2 → collector.
# The output is the input, packet for packet; the payload bytes relay2
# receives (its metrics) are well under those of the same run without
# COMPRESS; the relays pass compressed batches through without
# decompressing them. Then relay1 with FILTER: it decompresses, filters
# (output = tcpdump's filter of the input) and, with its own COMPRESS,
# sends the rest on compressed again.
. "$(dirname "$0")/lib.sh"
need tcpdump editcap mergecap curl ss

# a compressible capture: the sample's first 128 bytes of each packet
# (headers; its payloads are random), four times over, a second apart:
# about 0.6 of its size once compressed
editcap -s 128 "$DATA/sample-ether.pcap" "$WORK/c0.pcapng" >/dev/null
for i in 1 2 3; do
    editcap -t "$i" "$WORK/c0.pcapng" "$WORK/c$i.pcapng" >/dev/null
done
mergecap -a -w "$WORK/input.pcapng" "$WORK"/c[0-3].pcapng
tcpdump --time-stamp-precision=nano -r "$WORK/input.pcapng" -w "$WORK/tcp.pcap" tcp 2>/dev/null
want_tcp=$(tcpdump -r "$WORK/tcp.pcap" 2>/dev/null | wc -l)

pick_port; cport=$PORT
pick_port; r1=$PORT
pick_port; r2=$PORT
pick_port; m1=$PORT
pick_port; m2=$PORT
pick_port; ma=$PORT

value() { awk -v n="$2" '$1 == n {print $2}' "$WORK/$1"; }

# run NAME AGENT_COMPRESS RELAY1_SETTINGS...: the pipeline over the input;
# leaves relay1's and relay2's /metrics in $WORK/NAME.r1 and NAME.r2, the
# agent's in NAME.agent, the output in NAME.pcapng
run() {
    local name=$1 compress=$2
    shift 2
    start "collect-$name" COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= \
        OUTPUT=$WORK/$name.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
    start "relay2-$name" NODE_ID=relay2 COLLECT_ENDPOINT=tcp://127.0.0.1:$r2 \
        RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$m2 -- "$RELAY"
    start "relay1-$name" NODE_ID=relay1 COLLECT_ENDPOINT=tcp://127.0.0.1:$r1 \
        RELAY_ENDPOINT=tcp://127.0.0.1:$r2 METRICS_ADDRPORT=127.0.0.1:$m1 "$@" -- "$RELAY"
    wait_listening "$m1" 10
    wait_listening "$m2" 10
    # the input through a pipe held open, so that the agent is still there
    # to be scraped once everything is acknowledged; INFLIGHT_BATCHES=1:
    # the answer to HELLO (FEATURES) comes before most batches go
    mkfifo "$WORK/$name.fifo"
    IN_FROM=$WORK/$name.fifo start "agent-$name" RELAY_ENDPOINT=tcp://127.0.0.1:$r1 \
        METRICS_ADDRPORT=127.0.0.1:$ma NODE_ID=edge READ_FILE=- BATCH_MAX_BYTES=16384 \
        COMPRESS="$compress" INFLIGHT_BATCHES=1 -- "$CAPTURE"
    exec 7>"$WORK/$name.fifo"
    cat "$WORK/input.pcapng" >&7
    wait_listening "$ma" 10
    wait_metric "$ma" tapmesh_capture_packets_total 3200 20
    wait_metric "$m1" tapmesh_relay_packets_in_total 3200 20 # every batch is sent
    local end=$((SECONDS + 20))
    until metrics "$ma" >"$WORK/$name.agent" &&
        [ "$(value "$name.agent" tapmesh_capture_unacked_batches)" = 0 ] &&
        [ "$(value "$name.agent" tapmesh_capture_batches_acked_total)" = \
            "$(value "$name.agent" tapmesh_capture_batches_sent_total)" ]; do
        [ $SECONDS -lt $end ] || fail "$name: batches still unacknowledged"
        sleep 0.05
    done
    exec 7>&-
    expect_exit "agent-$name" 20 0
    metrics "$m1" >"$WORK/$name.r1"
    metrics "$m2" >"$WORK/$name.r2"
    for p in "relay1-$name" "relay2-$name" "collect-$name"; do
        stop "$p"
        [ "$RC" = 0 ] || fail "$p exited $RC"
    done
}

run plain off
run zstd zstd
same_packets "$WORK/input.pcapng" "$WORK/plain.pcapng"
same_packets "$WORK/input.pcapng" "$WORK/zstd.pcapng"
plain=$(value plain.r2 tapmesh_relay_payload_bytes_in_total)
zstd=$(value zstd.r2 tapmesh_relay_payload_bytes_in_total)
[ -n "$plain" ] && [ -n "$zstd" ] || fail "no payload byte counts at relay2"
# (the sample's payloads are random: its headers are what compresses)
[ $((zstd * 4)) -lt $((plain * 3)) ] || fail "relay2 received $zstd bytes compressed, $plain plain: not under 3/4"
# relay1 passed them on as they came: the same bytes out as in, nothing decompressed
in1=$(value zstd.r1 tapmesh_relay_payload_bytes_in_total)
out1=$(value zstd.r1 'tapmesh_relay_payload_bytes_out_total{hop="tcp://127.0.0.1:'"$r2"'"}')
[ "$in1" = "$out1" ] && [ "$in1" = "$zstd" ] || fail "relay1: $in1 bytes in, $out1 out; relay2: $zstd in"
[ "$(value zstd.r1 tapmesh_relay_decompressed_batches_total)" = 0 ] || fail "relay1 decompressed batches"
# the agent's own count: before and after compression
before=$(value zstd.agent tapmesh_capture_uncompressed_bytes_total)
after=$(value zstd.agent tapmesh_capture_compressed_bytes_total)
[ "$after" = "$zstd" ] || fail "the agent sent $after compressed bytes, relay2 received $zstd"
[ $((after * 4)) -lt $((before * 3)) ] || fail "the agent: $before bytes before, $after after"
log "payload bytes at relay2: $plain plain, $zstd with COMPRESS=zstd ($before before at the agent)"

# FILTER at relay1: decompressed, filtered, compressed again for relay2
run filter zstd FILTER=tcp COMPRESS=zstd:1
same_packets "$WORK/tcp.pcap" "$WORK/filter.pcapng"
[ "$(value filter.r1 tapmesh_relay_decompressed_batches_total)" -gt 0 ] ||
    fail "relay1 with FILTER decompressed nothing"
[ "$(value filter.r1 'tapmesh_relay_malformed_messages_total{reason="zstd"}')" = 0 ] ||
    fail "relay1 counted zstd errors"
zin=$(value filter.r1 tapmesh_relay_uncompressed_bytes_total)
zout=$(value filter.r1 tapmesh_relay_compressed_bytes_total)
[ "$zout" -gt 0 ] && [ $((zout * 4)) -lt $((zin * 3)) ] || fail "relay1 compressed $zin bytes into $zout"
log "ok: output = input through two relays compressed; FILTER on compressed batches kept the $want_tcp tcp packets"
