#!/usr/bin/env bash
# Lossy links (shared DESIGN "Delivery": exactly once "on a lossy link (after
# dead letters are replayed)"). capture agent → relay → collector, the relay
# in a network namespace of its own, its two links (towards the agent,
# towards the collector) veth pairs that lose frames at random in both
# directions: an nftables rule in the relay's namespace, `numgen random mod
# 100 < N drop` (this kernel has no netem), on frames of at most one TCP
# segment each. Two rounds, 10 % and 30 % loss, each with a fresh collector
# and 3000 packets (0.8 MB) sent at their recorded pace (3 s).
#
# TCP over such links crawls and stalls for seconds, ZeroMQ's heartbeats
# give connections up, batches and acknowledgements die with them. At 10 %
# the input gets through in the end; at 30 % only part of it does. What the
# agent still holds after RETRY_TIMEOUT_S goes to its dead-letter file (some
# of it written, its acknowledgement lost; some not) and the agent exits 1.
# The dead letters are then replayed straight into the collector
# (`tapmesh-capture READ_FILE=<dead-letter file>`), which writes those it
# never wrote and drops those it did. Each round: the output is the input,
# every packet once (pktcmp: timestamps, lengths, bytes), in order up to the
# replay (no packet counted late), and the agent exits 0 or, with dead
# letters, 1. A dead-lettered batch that never reached the collector is
# not waited for (the agent says DEAD), so the replay writes it after the
# packets that followed it: late, and counted as late packet for packet.
#
# Settings, as an operator would choose them for a WAN that loses this much:
#   agent      RETRY_TIMEOUT_S=15     gives a batch up (to the dead-letter
#                                     file, replayed later) after 15 s, not
#                                     60: a link this slow never catches up,
#                                     holding longer only grows the backlog
#                                     (and keeps the test short)
#   collector  MERGE_WINDOW_MS=60000  far above RETRY_TIMEOUT_S: a batch the
#                                     agent still resends over the stalled
#                                     links is waited for rather than
#                                     overtaken; the window costs nothing
#                                     while batches arrive in order
#              SOURCE_IDLE_S=60       as long as the window: a source cut off
#                                     by a stalled link would otherwise stop
#                                     being waited for, and its later
#                                     batches be written past the gap
#              STATE_DIR              the replay writes exactly what is
#                                     missing
#   relay      HOP_TIMEOUT_MS=70000   above the window, which may hold
#                                     acknowledgements that long (with one
#                                     next hop, as here, it changes nothing)
# Needs root; skipped otherwise.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "lossy links need root (network namespaces, veth pairs, nftables)"
need ip nft tcpdump editcap reordercap curl

# packets of 60 to 9018 bytes captured to 256, as with a snaplen: 0.8 MB,
# of which a link that loses 30 % passes some in 15 s (not all, nor none)
count=3000
"$TOOLS/gen-sample" "$WORK/full.pcap" $count ether 707
editcap -F nsecpcap -s 256 "$WORK/full.pcap" "$WORK/in.pcap"

# agent and collector in one namespace, the relay in another, joined by two
# veth pairs: agent → 10.77.1.2 (relay) → 10.77.2.1 (collector)
ens=tapmesh-lossy-e-$$
rns=tapmesh-lossy-r-$$
ip netns add "$ens" || skip "cannot create a network namespace here"
at_exit "ip netns del $ens"
ip netns add "$rns" || skip "cannot create a network namespace here"
at_exit "ip netns del $rns"
ip -n "$ens" link add tm-ea type veth peer name tm-ra netns "$rns"
ip -n "$ens" link add tm-ec type veth peer name tm-rc netns "$rns"
ip -n "$ens" addr add 10.77.1.1/24 dev tm-ea
ip -n "$rns" addr add 10.77.1.2/24 dev tm-ra
ip -n "$ens" addr add 10.77.2.1/24 dev tm-ec
ip -n "$rns" addr add 10.77.2.2/24 dev tm-rc
for dev in lo tm-ea tm-ec; do ip -n "$ens" link set "$dev" up; done
for dev in lo tm-ra tm-rc; do ip -n "$rns" link set "$dev" up; done
# one TCP segment per frame, as on a real link: otherwise TCP hands veth
# segments of up to 64 KiB and the rule drops those whole
for dev in tm-ea tm-ec; do ip -n "$ens" link set "$dev" gso_max_segs 1; done
for dev in tm-ra tm-rc; do ip -n "$rns" link set "$dev" gso_max_segs 1; done
ein() { ip netns exec "$ens" "$@"; }

# the relay's links lose PERCENT of the frames they carry, each way
lossy() {
    ip netns exec "$rns" nft -f - <<EOF || skip "nftables refused the loss rules"
flush ruleset
table inet lossy {
    counter seen {}
    counter dropped {}
    chain in {
        type filter hook input priority 0; policy accept;
        iifname { "tm-ra", "tm-rc" } counter name "seen"
        iifname { "tm-ra", "tm-rc" } numgen random mod 100 < $1 counter name "dropped" drop
    }
    chain out {
        type filter hook output priority 0; policy accept;
        oifname { "tm-ra", "tm-rc" } counter name "seen"
        oifname { "tm-ra", "tm-rc" } numgen random mod 100 < $1 counter name "dropped" drop
    }
}
EOF
}

# frames NAME: the count of nftables counter NAME ("seen" or "dropped")
frames() {
    ip netns exec "$rns" nft list counter inet lossy "$1" |
        awk '$1 == "packets" {print $2}'
}

# the collector's metrics, from inside its namespace
emetric() { METRICS_NS=$ens metric 9712 "$1"; }
ewait_metric() { METRICS_NS=$ens wait_metric 9712 "$1" "$2" "$3"; }

packets() {
    { tcpdump -nn -r "$1" 2>/dev/null || true; } | wc -l
}

# round PERCENT
round() {
    local pct=$1 t0=$SECONDS dir=$WORK/r$1
    mkdir -p "$dir"
    export DLQ_DIR=$dir/dlq
    lossy "$pct"
    start collect COLLECT_ENDPOINT=tcp://10.77.2.1:5710 METRICS_ADDRPORT=127.0.0.1:9712 \
        OUTPUT="$dir/out.pcapng" STATE_DIR="$dir/state" STARTUP_WAIT_MS=0 \
        MERGE_WINDOW_MS=60000 SOURCE_IDLE_S=60 -- ip netns exec "$ens" "$COLLECT"
    start relay NODE_ID=relay COLLECT_ENDPOINT=tcp://10.77.1.2:5711 \
        RELAY_ENDPOINT=tcp://10.77.2.1:5710 HOP_TIMEOUT_MS=70000 METRICS_ADDRPORT= \
        -- ip netns exec "$rns" "$RELAY"
    start agent RELAY_ENDPOINT=tcp://10.77.1.2:5711 METRICS_ADDRPORT= NODE_ID=edge \
        READ_FILE="$WORK/in.pcap" REPLAY_SPEED=1 RETRY_TIMEOUT_S=15 -- ip netns exec "$ens" "$CAPTURE"
    wait_exit agent 60
    local status=$RC t1=$SECONDS written dead=0 files
    stop relay # what it still carried is in (or lost): the count below is final
    [ "$RC" = 0 ] || fail "$pct %: relay exited $RC"
    written=$(emetric tapmesh_collect_packets_total)
    local seen lost
    seen=$(frames seen)
    lost=$(frames dropped)
    [ "$lost" -gt 0 ] || fail "$pct %: no frame was dropped: the test proves nothing"
    log "$pct % loss: the relay's links dropped $lost of $seen frames" \
        "($((lost * 100 / seen)) %)"
    files=("$DLQ_DIR"/edge-*.pcapng)
    if [ -f "${files[0]}" ]; then
        [ ${#files[@]} = 1 ] || fail "$pct %: more than one dead-letter file: ${files[*]}"
        [ "$status" = 1 ] || fail "$pct %: the agent wrote dead letters and exited $status, expected 1"
        dead=$(packets "${files[0]}")
        grep -q "error: $dead of $count packets .* in the dead-letter file ${files[0]}\$" \
            "$WORK/agent.log" || fail "$pct %: the agent's log does not say $dead packets were dead-lettered"
    else
        [ "$status" = 0 ] || fail "$pct %: the agent exited $status without dead letters, expected 0"
    fi
    log "$pct % loss: agent done after $((t1 - t0)) s (exit $status): $written packets" \
        "written, $dead dead-lettered, $((written + dead - count)) of them in both"
    local dups=0 late
    late=$(emetric tapmesh_collect_late_packets_total)
    [ "$late" = 0 ] || fail "$pct %: $late packets written late before any replay"
    if [ "$dead" -gt 0 ]; then
        dups=$(emetric tapmesh_collect_duplicate_batches_total)
        # the replay: straight to the collector (this link loses nothing),
        # under the dead letters' own identity
        start replay RELAY_ENDPOINT=tcp://10.77.2.1:5710 METRICS_ADDRPORT= NODE_ID=replay \
            READ_FILE="${files[0]}" DLQ_DIR="$dir/dlq-replay" -- ip netns exec "$ens" "$CAPTURE"
        expect_exit replay 30 0
        grep -q "dead letters of source edge epoch" "$WORK/replay.log" ||
            fail "$pct %: the dead-letter file was not taken as dead letters"
        dups=$(($(emetric tapmesh_collect_duplicate_batches_total) - dups))
    fi
    ewait_metric tapmesh_collect_packets_total $count 10
    late=$(emetric tapmesh_collect_late_packets_total)
    stop collect
    [ "$RC" = 0 ] || fail "$pct %: collect exited $RC"
    same_packets_sorted "$WORK/in.pcap" "$dir/out.pcapng"
    local disorder
    disorder=$(out_of_order "$dir/out.pcapng")
    [ "$late" = "$disorder" ] ||
        fail "$pct %: $disorder packets out of order in the output, $late counted late"
    log "$pct % loss: every packet once after $((SECONDS - t0)) s, in order but for the" \
        "$late the replay wrote late ($dead dead-lettered and replayed; $dups replayed" \
        "batches had come through already)"
}

round 10
round 30
log "ok"
