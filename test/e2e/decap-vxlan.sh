#!/usr/bin/env bash
# DECAP=vxlan with real VXLAN: in one network namespace a Linux vxlan device
# (VNI 42, UDP 4789, as AWS VPC Traffic Mirroring sends) tunnels the sample
# capture, replayed onto it, over a veth pair into a second namespace, where
# tapmesh-capture listens on the underlay end with DECAP=vxlan DECAP_ID=42.
# The collector's output holds exactly the sample's frames, byte for byte and
# in order (jumbo frames too); nothing else the underlay carries reaches it
# (the kernel's ICMP port unreachable answers, another VNI's frames, IPv6
# chatter): the kernel filter keeps out what is not VXLAN, the other VNI is
# counted (reason "id"). tshark's dissector reads VNI 42 on the underlay,
# and the interface's description names it. Needs root; skipped otherwise.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, a vxlan device, a raw socket)"
need ip tcpreplay tcpdump tshark curl

a=tmy-vxa-$$
b=tmy-vxb-$$
ip netns add "$a" || skip "cannot create a network namespace here"
at_exit "ip netns del $a"
ip netns add "$b" || fail "cannot create a second network namespace"
at_exit "ip netns del $b"
ip -n "$a" link add tmy-va type veth peer name tmy-vb netns "$b"
ip -n "$a" link set tmy-va mtu 9300 up
ip -n "$b" link set tmy-vb mtu 9300 up
ip -n "$b" link set lo up
ip -n "$a" addr add 10.99.0.1/24 dev tmy-va
ip -n "$b" addr add 10.99.0.2/24 dev tmy-vb
# no ARP on the underlay: a frame queued behind one would be lost
mac_b=$(ip -n "$b" -br link show tmy-vb | awk '{print $3}')
ip -n "$a" neigh replace 10.99.0.2 lladdr "$mac_b" dev tmy-va nud permanent
# vxlan devices that send only what is replayed onto them: no address, no
# ARP, no IPv6 of their own
for vni in 42 43; do
    ip -n "$a" link add "tmy-vx$vni" type vxlan id "$vni" local 10.99.0.1 remote 10.99.0.2 \
        dstport 4789 dev tmy-va || skip "no vxlan devices here"
    ip netns exec "$a" sysctl -qw "net.ipv6.conf.tmy-vx$vni.disable_ipv6=1"
    ip -n "$a" link set "tmy-vx$vni" mtu 9100 arp off up
done

input=$DATA/sample-ether.pcap
n=$(tcpdump -nn -r "$input" 2>/dev/null | wc -l)
pick_port
port=$PORT
pick_port
mport=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= OUTPUT=$WORK/out.pcapng \
    STARTUP_WAIT_MS=0 -- ip netns exec "$b" "$COLLECT"
start capture DEVICE=tmy-vb DECAP=vxlan DECAP_ID=42 RELAY_ENDPOINT=tcp://127.0.0.1:$port \
    METRICS_ADDRPORT=127.0.0.1:$mport NODE_ID=mirror -- ip netns exec "$b" "$CAPTURE"
start underlay -- ip netns exec "$b" tcpdump -i tmy-vb -B 32768 --immediate-mode -U -w "$WORK/underlay.pcap" 'udp dst port 4789'
end=$((SECONDS + 10))
until grep -q "live capture on tmy-vb" "$WORK/capture.log" &&
    grep -q "listening on tmy-vb" "$WORK/underlay.log"; do
    [ $SECONDS -lt $end ] || fail "capture did not start: $(cat "$WORK/capture.log")"
    sleep 0.05
done
inb() { ip netns exec "$b" "$@"; }
m() { inb curl -fsS "http://127.0.0.1:$mport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

ip netns exec "$a" tcpreplay -q --pps=4000 -i tmy-vx42 "$input" >"$WORK/tcpreplay.txt" 2>&1 ||
    fail "tcpreplay: $(cat "$WORK/tcpreplay.txt")"
# another mirror session's frames: counted, not sent
ip netns exec "$a" tcpreplay -q --pps=4000 -L 50 -i tmy-vx43 "$input" >>"$WORK/tcpreplay.txt" 2>&1 ||
    fail "tcpreplay: $(cat "$WORK/tcpreplay.txt")"
end=$((SECONDS + 15))
until [ "$(m tapmesh_capture_packets_total)" = "$n" ] &&
    [ "$(m 'tapmesh_capture_decap_dropped_packets_total{reason="id"}')" = 50 ]; do
    [ $SECONDS -lt $end ] || fail "the agent sent $(m tapmesh_capture_packets_total) of $n" \
        "packets, $(m 'tapmesh_capture_decap_dropped_packets_total{reason="id"}') of 50 counted"
    sleep 0.1
done
inb curl -fsS "http://127.0.0.1:$mport/metrics" >"$WORK/metrics.txt"
grep -q '^tapmesh_capture_kernel_dropped_packets_total 0$' "$WORK/metrics.txt" ||
    fail "kernel drops: $(grep kernel_dropped "$WORK/metrics.txt")"
for reason in outer fragment other header; do
    grep -q "^tapmesh_capture_decap_dropped_packets_total{reason=\"$reason\"} 0\$" \
        "$WORK/metrics.txt" || fail "dropped as $reason: $(grep decap_dropped "$WORK/metrics.txt")"
done
stop capture
[ "$RC" = 0 ] || fail "capture exited $RC after SIGTERM"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
end=$((SECONDS + 10))
# packets tcpdump wrote so far (tshark counts: tcpdump prints two lines for each)
s_count() { tshark -r "$WORK/underlay.pcap" -T fields -e frame.number 2>/dev/null | wc -l; }
until [ "$(s_count)" = $((n + 50)) ]; do
    [ $SECONDS -lt $end ] || fail "tcpdump saw $(s_count) VXLAN packets on the underlay," \
        "expected $((n + 50))"
    sleep 0.1
done
stop underlay
same_packets --ignore-ts "$input" "$WORK/out.pcapng"
readers_accept "$WORK/out.pcapng" "$n"
tshark -r "$WORK/out.pcapng" -T fields -e frame.interface_description 2>/dev/null | sort -u |
    has "; decap vxlan vni 42;"
# the underlay, as tshark dissects it: VNI 42 for the sample, 43 for the others
tshark -r "$WORK/underlay.pcap" -T fields -e vxlan.vni 2>/dev/null | sort | uniq -c |
    awk '{print $2 ":" $1}' | tr '\n' ' ' >"$WORK/vnis.txt"
[ "$(cat "$WORK/vnis.txt")" = "42:$n 43:50 " ] || fail "underlay VNIs: $(cat "$WORK/vnis.txt")"
log "ok: $n frames from real VXLAN (VNI 42) delivered exactly; VNI 43 counted, not sent"
