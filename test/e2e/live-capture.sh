#!/usr/bin/env bash
# Live capture: in a network namespace made by the test, a veth pair (MTU
# 9100, so jumbo frames pass); tcpreplay sends the sample capture into one
# end; tapmesh-capture listens on the other with a BPF filter. Exactly the
# packets the filter selects reach the output, byte for byte, and nothing
# else does (not the namespace's own IPv6 chatter, not the TCP packets).
# Needs root; skipped otherwise.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "live capture needs root (a network namespace and a raw socket)"
need ip tcpreplay tcpdump

ns=tapmesh-live-$$
ip netns add "$ns" || skip "cannot create a network namespace here"
at_exit "ip netns del $ns"
inns() { ip netns exec "$ns" "$@"; }
ip -n "$ns" link add tm-tx type veth peer name tm-rx
for dev in tm-tx tm-rx lo; do
    ip -n "$ns" link set "$dev" mtu 9100 2>/dev/null || true
    ip -n "$ns" link set "$dev" up
done

input=$DATA/sample-ether.pcap
tcpdump --time-stamp-precision=nano -r "$input" -w "$WORK/expected.pcap" 'udp port 9999' 2>/dev/null
want=$(tcpdump -nn -r "$WORK/expected.pcap" 2>/dev/null | wc -l)
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:5710 METRICS_ADDRPORT= OUTPUT=$WORK/out.pcapng \
    STARTUP_WAIT_MS=0 -- ip netns exec "$ns" "$COLLECT"
start capture DEVICE=tm-rx FILTER='udp port 9999' RELAY_ENDPOINT=tcp://127.0.0.1:5710 \
    METRICS_ADDRPORT=127.0.0.1:9710 NODE_ID=live -- ip netns exec "$ns" "$CAPTURE"
end=$((SECONDS + 10))
until grep -q "live capture on tm-rx" "$WORK/capture.log"; do
    [ $SECONDS -lt $end ] || fail "capture did not start: $(cat "$WORK/capture.log")"
    sleep 0.05
done
inns tcpreplay -q -i tm-tx "$input" >"$WORK/tcpreplay.txt" 2>&1 || fail "tcpreplay: $(cat "$WORK/tcpreplay.txt")"
# the agent's counters, from inside the namespace
end=$((SECONDS + 10))
until [ "$(inns curl -fsS http://127.0.0.1:9710/metrics | awk '$1 == "tapmesh_capture_packets_total" {print $2}')" = "$want" ]; do
    [ $SECONDS -lt $end ] || fail "the agent did not capture $want packets"
    sleep 0.1
done
inns curl -fsS http://127.0.0.1:9710/metrics >"$WORK/metrics.txt"
grep -q '^tapmesh_capture_kernel_dropped_packets_total 0$' "$WORK/metrics.txt" ||
    fail "kernel drops: $(grep kernel_dropped "$WORK/metrics.txt")"
grep -q 'tapmesh_capture_packet_size_bytes_count{family="ipv4"} [1-9]' "$WORK/metrics.txt" ||
    fail "no IPv4 packets in the size histogram"
stop capture
[ "$RC" = 0 ] || fail "capture exited $RC after SIGTERM"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets --ignore-ts "$WORK/expected.pcap" "$WORK/out.pcapng"
readers_accept "$WORK/out.pcapng" "$want"
log "ok: $want packets captured live through the filter, nothing else"
