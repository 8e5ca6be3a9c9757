#!/usr/bin/env bash
# A next hop lost while the connection's send buffer is full is noticed.
# libzmq arms its heartbeat timeout only once a PING is encoded, and a PING
# waits behind the bytes the kernel will not take: a relay sending at full
# speed when its link to the collector went away kept the next hop "up" for
# as long as anyone watched (measured: over 20 s, where TCP itself would
# take about 15 min). TCP_USER_TIMEOUT (ZMQ_TCP_MAXRT, 10 s) gives such a
# connection up. The relay then reconnects when the link is back, and the
# output is the input, each packet once.
#
# agent and relay in one namespace (the agent reaches the relay on its
# loopback), the collector in another, one veth pair between them; the
# relay's namespace caps TCP send buffers at 16 KiB (net.ipv4.tcp_wmem), so
# that the buffer is full whenever data flows. Needs root; skipped otherwise.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, a veth pair)"
need ip curl sysctl

"$TOOLS/gen-sample" "$WORK/in.pcap" 40000 ether 3141

rns=tapmesh-hop-r-$$
cns=tapmesh-hop-c-$$
ip netns add "$rns" || skip "cannot create a network namespace here"
at_exit "ip netns del $rns"
ip netns add "$cns" || skip "cannot create a network namespace here"
at_exit "ip netns del $cns"
ip netns exec "$rns" sysctl -qw net.ipv4.tcp_wmem="4096 16384 16384" ||
    skip "net.ipv4.tcp_wmem is not per network namespace here"
ip -n "$rns" link add tm-hr type veth peer name tm-hc netns "$cns"
ip -n "$rns" addr add 10.78.0.1/24 dev tm-hr
ip -n "$cns" addr add 10.78.0.2/24 dev tm-hc
for dev in lo tm-hr; do ip -n "$rns" link set "$dev" up; done
for dev in lo tm-hc; do ip -n "$cns" link set "$dev" up; done

# metrics from inside a namespace: nsmetric NS PORT NAME
nsmetric() { METRICS_NS=$1 metric "$2" "$3"; }
hop='tapmesh_relay_next_hop_up{hop="tcp://10.78.0.2:5710"}'

start collect COLLECT_ENDPOINT=tcp://10.78.0.2:5710 METRICS_ADDRPORT=127.0.0.1:9712 \
    OUTPUT="$WORK/out.pcapng" STARTUP_WAIT_MS=0 -- ip netns exec "$cns" "$COLLECT"
start relay NODE_ID=relay COLLECT_ENDPOINT=tcp://127.0.0.1:5711 RELAY_ENDPOINT=tcp://10.78.0.2:5710 \
    METRICS_ADDRPORT=127.0.0.1:9711 -- ip netns exec "$rns" "$RELAY"
end=$((SECONDS + 10))
until [ "$(nsmetric "$rns" 9711 "$hop" 2>/dev/null)" = 1 ]; do
    [ $SECONDS -lt $end ] || fail "the relay did not connect to the collector"
    sleep 0.05
done
start agent RELAY_ENDPOINT=tcp://127.0.0.1:5711 METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE="$WORK/in.pcap" -- ip netns exec "$rns" "$CAPTURE"
end=$((SECONDS + 20))
until [ "$(nsmetric "$cns" 9712 tapmesh_collect_packets_total 2>/dev/null || echo 0)" -gt 2000 ]; do
    [ $SECONDS -lt $end ] || fail "nothing arrived"
    sleep 0.02
done
# mid-stream: the relay's socket to the collector holds unsent bytes
ip -n "$rns" link set tm-hr down
t0=$SECONDS
written=$(nsmetric "$cns" 9712 tapmesh_collect_packets_total)
[ "$written" -lt 40000 ] || fail "everything arrived before the link went down: the test proves nothing"
log "link down after $written of 40000 packets"
end=$((SECONDS + 20))
until [ "$(nsmetric "$rns" 9711 "$hop" 2>/dev/null)" = 0 ]; do
    [ $SECONDS -lt $end ] || fail "the relay still says its next hop is up $((SECONDS - t0)) s after the link went down"
    sleep 0.1
done
log "the relay reports its next hop down after $((SECONDS - t0)) s"
ip -n "$rns" link set tm-hr up
end=$((SECONDS + 20))
until [ "$(nsmetric "$rns" 9711 "$hop" 2>/dev/null)" = 1 ]; do
    [ $SECONDS -lt $end ] || fail "the relay did not reconnect once the link was back"
    sleep 0.1
done
expect_exit agent 60 0
stop relay
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/in.pcap" "$WORK/out.pcapng"
log "ok: the link back, every packet once and in order"
