#!/usr/bin/env bash
# The lab: the compose lab's topology (deploy/compose) for real, one network
# namespace per host, the real binaries, CURVE on every hop.
#
#   traffic-a ──┐ edge-a 10.91.1.0/24                 site↔core 10.91.3.0/30    core↔collect 10.91.4.0/30
#   capture-a ──┤ (bridge in relay-site)
#               ├── relay-site ───────────────────────────── relay-core ─────────────────── collect
#   capture-b ──┤ edge-b 10.91.2.0/24                                                       (pcapng, STATE_DIR)
#   traffic-b ──┘ (bridge in relay-site)
#
# Hosts and names are the compose lab's: agents edge-a and edge-b
# (certificates capture-a and capture-b), relay-site, relay-core, collect.
# One difference: there each agent shares its traffic generator's network
# namespace and captures what it sends; here the traffic generators are
# hosts of their own on the edge networks, and the agents capture what
# arrives from the network, as at a mirror port. Each edge network is a
# bridge in the site relay's namespace (as a docker network is a bridge on
# its host): the traffic host, the capture host and the site relay's
# address are on it. tcpreplay in the traffic host's namespace sends
# frames to MAC addresses nobody owns, so the bridge floods them to the
# capture host, whose agent captures them on its one interface
# (DEVICE=eth0, promiscuous) — the same interface that carries its own
# CURVE connection to the site relay, left out of the capture by default
# (CAPTURE_OWN_TRAFFIC=false). Nothing else crosses an edge link: IPv6 is
# off and the neighbours are static (no ARP), so a tcpdump beside each agent,
# with the filter the agent logs, sees exactly the frames tcpreplay sent;
# it is the reference for that agent.
#
# Round 1: both edges send at once; the collector's output, split by
# interface (edge-a/eth0, edge-b/eth0), holds each edge's frames once,
# byte for byte, with the timestamps the kernel gave them. Round 2: both
# edges stream, and the site relay ↔ core relay link goes down mid-stream
# for longer than the ZMTP heartbeat timeout (5 s), so that both relays
# drop the connection and what it carried; the site relay reports its next
# hop down, the agents resend, the collector drops the duplicates. The whole
# output, split by interface, is again each edge's frames of both rounds,
# each once and in order, none written late, no dead letter, no refusal.
#
# Settings: the agents' are the defaults (ACK_TIMEOUT_MS 2000, doubling:
# the batches the cut link took go out again within seconds of its return);
# the others are what an operator sets where a site uplink may be cut for
# several seconds:
#   collector  MERGE_WINDOW_MS=30000 longer than a cut plus the agents'
#                                    resend backoff: batches that pass the
#                                    mended link before the resends of the
#                                    lost ones are held, not written ahead
#                                    of them (the window costs nothing while
#                                    all flows). With the default 5 s, this
#                                    7 s cut had 6-9 packets written late,
#                                    out of timestamp order
#              SOURCE_IDLE_S=30      a source cut off that long is still
#                                    waited for
#              EXPECT_SOURCES=edge-a,edge-b
#                                    writing starts once both edges joined
#              STATE_DIR             (as in the compose lab)
#   relays     HOP_TIMEOUT_MS=40000  above the merge window, which may hold
#                                    acknowledgements that long
#
# Needs root (namespaces, veth, bridges, raw sockets); skipped otherwise.
# Everything is bounded by timeouts; namespaces and processes go at exit.
. "$(dirname "$0")/../e2e/lib.sh"
[ "$(id -u)" = 0 ] || skip "the lab needs root (network namespaces, veth pairs, bridges, live capture)"
need ip tcpreplay tcpdump tshark mergecap capinfos curl sysctl
KEYGEN=$BIN/keygen/tapmesh-keygen
# every wait below is bounded; this bounds them all (it takes ~20 s), so that
# the namespaces are always removed by this script, never left to ctest's kill
limit=200
trap 'fail "still running after $limit s"' USR1
start watchdog -- bash -c "trap 'kill \$t; exit' TERM; sleep $limit & t=\$!; wait \$t; kill -USR1 $$"

# ---------------------------------------------------------------- hosts
ns_prefix=tapmesh-lab-$$
hosts=(traffic-a capture-a traffic-b capture-b relay-site relay-core collect)
ns() { echo "$ns_prefix-$1"; }
in_ns() {
    local h=$1
    shift
    ip netns exec "$(ns "$h")" "$@"
}
for h in "${hosts[@]}"; do
    ip netns add "$(ns "$h")" || skip "cannot create a network namespace here"
    at_exit "ip netns del $(ns "$h")"
    # no IPv6 (its neighbour discovery would cross the edge links), no
    # IGMP reports for link-local groups
    in_ns "$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
        net.ipv4.igmp_link_local_mcast_reports=0
    ip -n "$(ns "$h")" link set lo up
done

# veth HOST_A IF_A MAC_A HOST_B IF_B MAC_B: a link between two hosts
veth() {
    ip -n "$(ns "$1")" link add "$2" address "$3" type veth \
        peer name "$5" address "$6" netns "$(ns "$4")"
}

# the edge networks: bridge br-X in relay-site, ports to traffic-X and
# capture-X; no multicast snooping (the bridge would join a group and report it)
declare -A net=([a]=1 [b]=2)
edge() {
    local x=$1 n=${net[$1]} site
    site=$(ns relay-site)
    ip -n "$site" link add "br-$x" address "02:91:0$n:00:00:01" type bridge stp_state 0 mcast_snooping 0
    veth relay-site "$x-gen" "02:91:0$n:00:01:03" "traffic-$x" eth0 "02:91:0$n:00:00:03"
    veth relay-site "$x-cap" "02:91:0$n:00:01:02" "capture-$x" eth0 "02:91:0$n:00:00:02"
    for dev in "$x-gen" "$x-cap"; do
        ip -n "$site" link set "$dev" master "br-$x" mtu 9100 up
    done
    ip -n "$site" link set "br-$x" mtu 9100 up
    ip -n "$site" addr add "10.91.$n.1/24" dev "br-$x"
    for h in "traffic-$x" "capture-$x"; do
        ip -n "$(ns "$h")" link set eth0 mtu 9100 up
    done
    ip -n "$(ns "capture-$x")" addr add "10.91.$n.2/24" dev eth0
    ip -n "$(ns "capture-$x")" route add default via "10.91.$n.1"
    # static neighbours: no ARP on the edge link
    ip -n "$(ns "capture-$x")" neigh replace "10.91.$n.1" lladdr "02:91:0$n:00:00:01" \
        dev eth0 nud permanent
    ip -n "$site" neigh replace "10.91.$n.2" lladdr "02:91:0$n:00:00:02" dev "br-$x" nud permanent
}
edge a
edge b
veth relay-site to-core 02:91:03:00:00:01 relay-core to-site 02:91:03:00:00:02
ip -n "$(ns relay-site)" addr add 10.91.3.1/30 dev to-core
ip -n "$(ns relay-core)" addr add 10.91.3.2/30 dev to-site
veth relay-core to-collect 02:91:04:00:00:01 collect to-core 02:91:04:00:00:02
ip -n "$(ns relay-core)" addr add 10.91.4.1/30 dev to-collect
ip -n "$(ns collect)" addr add 10.91.4.2/30 dev to-core
ip -n "$(ns relay-site)" link set to-core up
ip -n "$(ns relay-core)" link set to-site up
ip -n "$(ns relay-core)" link set to-collect up
ip -n "$(ns collect)" link set to-core up
for h in "${hosts[@]}"; do # "all" again: interfaces made since
    in_ns "$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done

# ---------------------------------------------------------------- keys
# as the compose lab's keygen service makes them: an agent's key speaks for
# its node id, the relays' for any source they let in; each receiver allows
# only the hop before it
k=$WORK/keys
mkdir -p "$k" "$WORK/allow-site" "$WORK/allow-core" "$WORK/allow-collect"
for x in a b; do
    "$KEYGEN" "$k/capture-$x" --node-id "edge-$x" >/dev/null 2>&1 || fail "tapmesh-keygen capture-$x"
    cp "$k/capture-$x" "$WORK/allow-site/"
done
"$KEYGEN" "$k/relay-site" --relay >/dev/null 2>&1 || fail "tapmesh-keygen relay-site"
"$KEYGEN" "$k/relay-core" --relay >/dev/null 2>&1 || fail "tapmesh-keygen relay-core"
"$KEYGEN" "$k/collect" >/dev/null 2>&1 || fail "tapmesh-keygen collect"
cp "$k/relay-site" "$WORK/allow-core/"
cp "$k/relay-core" "$WORK/allow-collect/"

# ---------------------------------------------------------------- services
# metrics NS_HOST PORT NAME: one sample, read inside the host's namespace
nsmetric() { METRICS_NS=$(ns "$1") metric "$2" "$3"; }
# nswait_metric HOST PORT NAME VALUE TIMEOUT_S
nswait_metric() { METRICS_NS=$(ns "$1") wait_metric "$2" "$3" "$4" "$5"; }
# wait_log NAME PATTERN TIMEOUT_S
wait_log() {
    local end=$((SECONDS + $3))
    until grep -q -- "$2" "$WORK/$1.log"; do
        [ $SECONDS -lt $end ] || fail "$1: no '$2' within $3 s: $(tail -n 5 "$WORK/$1.log")"
        sleep 0.05
    done
}

start collect NODE_ID=collect COLLECT_ENDPOINT='tcp://*:5710' OUTPUT="$WORK/out.pcapng" \
    STATE_DIR="$WORK/collect-state" EXPECT_SOURCES=edge-a,edge-b \
    MERGE_WINDOW_MS=30000 SOURCE_IDLE_S=30 \
    CURVE_SECRET_KEY_FILE="$k/collect_secret" CURVE_ALLOWED_KEYS_DIR="$WORK/allow-collect" \
    -- ip netns exec "$(ns collect)" "$COLLECT"
start relay-core NODE_ID=relay-core COLLECT_ENDPOINT='tcp://*:5711' \
    RELAY_ENDPOINT=tcp://10.91.4.2:5710 HOP_TIMEOUT_MS=40000 \
    CURVE_SECRET_KEY_FILE="$k/relay-core_secret" CURVE_SERVER_PUBLIC_KEY="$k/collect" \
    CURVE_ALLOWED_KEYS_DIR="$WORK/allow-core" -- ip netns exec "$(ns relay-core)" "$RELAY"
start relay-site NODE_ID=relay-site COLLECT_ENDPOINT='tcp://*:5711' \
    RELAY_ENDPOINT=tcp://10.91.3.2:5711 HOP_TIMEOUT_MS=40000 \
    CURVE_SECRET_KEY_FILE="$k/relay-site_secret" CURVE_SERVER_PUBLIC_KEY="$k/relay-core" \
    CURVE_ALLOWED_KEYS_DIR="$WORK/allow-site" -- ip netns exec "$(ns relay-site)" "$RELAY"
for x in a b; do
    start "capture-$x" NODE_ID="edge-$x" DEVICE=eth0 RELAY_ENDPOINT="tcp://10.91.${net[$x]}.1:5711" \
        CURVE_SECRET_KEY_FILE="$k/capture-${x}_secret" \
        CURVE_SERVER_PUBLIC_KEY="$k/relay-site" -- ip netns exec "$(ns "capture-$x")" "$CAPTURE"
done
declare -A filter=()
for x in a b; do
    wait_log "capture-$x" "collector accepted source edge-$x" 20
    # the agent leaves its own connection out; the reference does the same
    filter[$x]=$(sed -n 's/.*DEVICE=eth0: filter in force: //p' "$WORK/capture-$x.log")
    [ "${filter[$x]}" = "not (host 10.91.${net[$x]}.1 and tcp port 5711)" ] ||
        fail "capture-$x: filter in force '${filter[$x]}', expected its own connection left out"
done

# ---------------------------------------------------------------- rounds
# split OUT X: the output's packets of interface edge-X/eth0, as pcap
split() {
    tshark -r "$1" -Y "frame.interface_name == \"edge-$2/eth0\"" -F nsecpcap \
        -w "$WORK/split-$2.pcap" 2>"$WORK/tshark-split.txt" ||
        fail "tshark cannot split $1: $(cat "$WORK/tshark-split.txt")"
}

total=0
rounds=()
# round NAME COUNT PPS FLAP_AFTER_S FLAP_S: COUNT packets onto each edge at
# PPS; with FLAP_S > 0, relay-site's link to relay-core goes down
# FLAP_AFTER_S seconds into the stream, for FLAP_S seconds
round() {
    local r=$1 count=$2 pps=$3 after=$4 flap=$5 x seed=$((RANDOM + 1))
    rounds+=("$r")
    for x in a b; do
        "$TOOLS/gen-sample" "$WORK/in-$r-$x.pcap" "$count" ether $((seed + ${net[$x]}))
        # a kernel buffer as large as the agent's (PCAP_BUFFER_MB=32): on a busy
        # machine tcpdump's default 2 MiB drops, and the reference would be short
        start "ref-$r-$x" -- ip netns exec "$(ns "capture-$x")" tcpdump -i eth0 -U -nn --immediate-mode \
            -B 32768 --time-stamp-precision=nano -w "$WORK/ref-$r-$x.pcap" "${filter[$x]}"
    done
    for x in a b; do wait_log "ref-$r-$x" "listening on eth0" 10; done
    local t0=$SECONDS
    for x in a b; do
        start "traffic-$r-$x" -- ip netns exec "$(ns "traffic-$x")" \
            tcpreplay -q --pps="$pps" -i eth0 "$WORK/in-$r-$x.pcap"
    done
    if [ "$flap" -gt 0 ]; then
        sleep "$after"
        local n0
        n0=$(nsmetric collect 9712 tapmesh_collect_packets_total)
        ip -n "$(ns relay-site)" link set to-core down
        log "$r: relay-site ↔ relay-core down ($n0 packets written so far)"
        nswait_metric relay-site 9711 'tapmesh_relay_next_hop_up{hop="tcp://10.91.3.2:5711"}' 0 15
        log "$r: relay-site reports its next hop down after $((SECONDS - t0 - after)) s"
        sleep $((flap - (SECONDS - t0 - after) > 0 ? flap - (SECONDS - t0 - after) : 0))
        ip -n "$(ns relay-site)" link set to-core up
        log "$r: link up again after $((SECONDS - t0 - after)) s"
        nswait_metric relay-site 9711 'tapmesh_relay_next_hop_up{hop="tcp://10.91.3.2:5711"}' 1 15
    fi
    for x in a b; do
        expect_exit "traffic-$r-$x" 60 0
    done
    total=$((total + 2 * count))
    local end=$((SECONDS + 60)) n=
    until [ "$n" = "$total" ]; do
        [ $SECONDS -lt $end ] || fail "$r: $n packets written within 60 s, expected $total"
        sleep 0.1
        n=$(nsmetric collect 9712 tapmesh_collect_packets_total 2>/dev/null || true)
        [ "${n:-0}" -le "$total" ] || fail "$r: $n packets written, expected $total"
    done
    for x in a b; do
        nswait_metric "capture-$x" 9710 tapmesh_capture_unacked_batches 0 30
    done
    log "$r: $total packets written after $((SECONDS - t0)) s"
    sleep 0.5 # nothing else should come; give tcpdump the chance to see it
    for x in a b; do
        stop "ref-$r-$x" INT
        # nothing but what tcpreplay sent crossed the edge link
        "$PKTCMP" --ignore-ts "$WORK/in-$r-$x.pcap" "$WORK/ref-$r-$x.pcap" >"$WORK/pktcmp.txt" 2>&1 ||
            fail "$r: edge-$x carried other than what tcpreplay sent: $(cat "$WORK/pktcmp.txt")"
    done
    # the output so far, per interface: every round's frames once, in order
    for x in a b; do
        local refs=()
        for q in "${rounds[@]}"; do refs+=("$WORK/ref-$q-$x.pcap"); done
        mergecap -a -F nsecpcap -w "$WORK/expected-$x.pcap" "${refs[@]}"
        split "$WORK/out.pcapng" "$x"
        same_packets "$WORK/expected-$x.pcap" "$WORK/split-$x.pcap"
    done
    log "$r: each edge's $count packets in the output once, byte for byte"
}

round steady 1000 500 0 0
round flap 3000 300 2 7

# ---------------------------------------------------------------- the end
declare -A resent=()
for x in a b; do
    m=$(in_ns "capture-$x" curl -fsS --max-time 5 http://127.0.0.1:9710/metrics)
    grep -q '^tapmesh_capture_kernel_dropped_packets_total 0$' <<<"$m" ||
        fail "capture-$x: kernel drops: $(grep kernel_dropped <<<"$m")"
    grep -q '^tapmesh_capture_batches_dead_lettered_total 0$' <<<"$m" ||
        fail "capture-$x: dead letters: $(grep dead_lettered <<<"$m")"
    resent[$x]=$(awk '$1 == "tapmesh_capture_batches_resent_total" {print $2}' <<<"$m")
    # the cut took batches with it: otherwise the flap tested nothing
    [ "${resent[$x]:-0}" -gt 0 ] || fail "capture-$x resent nothing across the flap"
done
for hp in capture-a:9710 capture-b:9710 relay-site:9711 relay-core:9711 collect:9712; do
    m=$(in_ns "${hp%:*}" curl -fsS --max-time 5 "http://127.0.0.1:${hp#*:}/metrics")
    if grep '^tapmesh_[a-z]*_auth_failures_total{' <<<"$m" | grep -v ' 0$' >"$WORK/bad.txt"; then
        fail "${hp%:*}: refusals: $(cat "$WORK/bad.txt")"
    fi
    if grep '^tapmesh_[a-z]*_plaintext_endpoints ' <<<"$m" | grep -v ' 0$' >"$WORK/bad.txt"; then
        fail "${hp%:*}: plaintext: $(cat "$WORK/bad.txt")"
    fi
done
late=$(nsmetric collect 9712 tapmesh_collect_late_packets_total)
dups=$(nsmetric collect 9712 tapmesh_collect_duplicate_batches_total)
[ "$late" = 0 ] || fail "$late packets written late"
for x in a b; do
    stop "capture-$x"
    [ "$RC" = 0 ] || fail "capture-$x exited $RC (dead letters?)"
done
for s in relay-site relay-core collect; do
    stop "$s"
    [ "$RC" = 0 ] || fail "$s exited $RC"
done
[ -z "$(ls -A "$DLQ_DIR" 2>/dev/null)" ] || fail "dead letters: $(ls "$DLQ_DIR")"
readers_accept "$WORK/out.pcapng" "$total"
# both edges merged in timestamp order (fixed-width seconds.nanoseconds)
tshark -r "$WORK/out.pcapng" -T fields -e frame.time_epoch >"$WORK/times.txt" 2>/dev/null
[ "$(wc -l <"$WORK/times.txt")" = "$total" ] || fail "tshark read $(wc -l <"$WORK/times.txt") timestamps"
if grep -vx '[0-9]\{10\}\.[0-9]\{9\}' "$WORK/times.txt" >"$WORK/bad.txt"; then
    fail "timestamps not as seconds.nanoseconds: $(head -n 1 "$WORK/bad.txt")"
fi
LC_ALL=C sort -c "$WORK/times.txt" 2>"$WORK/sort.txt" || fail "output not in timestamp order: $(cat "$WORK/sort.txt")"
for x in a b; do
    split "$WORK/out.pcapng" "$x"
    same_packets "$WORK/expected-$x.pcap" "$WORK/split-$x.pcap"
done
log "ok: $total packets over two edges, three CURVE hops and a link flap: each once, in order" \
    "(resent by the agents: ${resent[a]} + ${resent[b]} batches; duplicates dropped: $dups)"
