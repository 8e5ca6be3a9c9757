#!/usr/bin/env bash
# TUNNEL: a collector in one network namespace sends every packet it writes
# to a host in another, over a veth pair made by the test.
#   vxlan  into a real Linux vxlan device (VNI 42): tcpdump on that device
#          sees exactly the frames written, in order, byte for byte;
#   gre    (no key) and gretap (key): this kernel may have no GRE devices, so
#          tcpdump captures the outer packets on the underlay and tshark's
#          dissectors read them: protocol type, key, the inner frame (GRETAP)
#          or IP packet (GRE), compared byte for byte with what was written;
#          with TUNNEL_MTU 1500 the jumbo frames are cut so that the outer
#          packet fits, and counted.
# Needs root; skipped otherwise.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, a raw socket)"
need ip tcpdump tshark python3 curl

a=tmx-tu-$$-a
b=tmx-tu-$$-b
ip netns add "$a" || skip "cannot create a network namespace here"
at_exit "ip netns del $a"
ip netns add "$b" || skip "cannot create a second network namespace here"
at_exit "ip netns del $b"
for n in "$a" "$b"; do
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$n" link set lo up
done
ip -n "$a" link add tmx-ua type veth peer name tmx-ub netns "$b"
ip -n "$a" addr add 10.201.0.1/24 dev tmx-ua
ip -n "$b" addr add 10.201.0.2/24 dev tmx-ub
ip -n "$a" link set tmx-ua mtu 9100 up
ip -n "$b" link set tmx-ub mtu 9100 up
ip -n "$b" link add vx0 type vxlan id 42 dstport 4789 local 10.201.0.2 dev tmx-ub ||
    skip "no vxlan devices in this kernel"
ip -n "$b" link set vx0 mtu 9050 up

pick_port; port=$PORT
pick_port; mport=$PORT
nmetric() { METRICS_NS=$a metric "$mport" "$1"; }
wait_nmetric() { # NAME VALUE TIMEOUT_S
    local end=$((SECONDS + $3)) v=""
    while [ $SECONDS -lt $end ]; do
        v=$(nmetric "$1" 2>/dev/null || true)
        [ "$v" = "$2" ] && return 0
        sleep 0.1
    done
    fail "metric $1 is '$v', expected '$2' within $3 s"
}

# run NAME DEVICE FILTER SETTINGS...: tcpdump on DEVICE in $b, a collector
# in $a with SETTINGS, one agent reading the sample capture; leaves
# $WORK/NAME.pcapng (written), $WORK/NAME.peer.pcap (seen), NAME.metrics.txt
run() {
    local p=$1 dev=$2 filter=$3
    shift 3
    start "$p-tcpdump" -- ip netns exec "$b" tcpdump -i "$dev" -B 32768 -Q in -s 0 -U -nn \
        --time-stamp-precision=nano -w "$WORK/$p.peer.pcap" $filter
    local end=$((SECONDS + 10))
    until grep -q "listening on $dev" "$WORK/$p-tcpdump.log"; do
        [ $SECONDS -lt $end ] || fail "tcpdump did not start: $(cat "$WORK/$p-tcpdump.log")"
        sleep 0.05
    done
    start "$p-collect" COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
        OUTPUT="$WORK/$p.pcapng" EXPECT_SOURCES=edge-a STARTUP_WAIT_MS=10000 "$@" \
        -- ip netns exec "$a" "$COLLECT"
    end=$((SECONDS + 10))
    until nmetric tapmesh_collect_packets_total >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || fail "the collector did not start: $(cat "$WORK/$p-collect.log")"
        sleep 0.05
    done
    start "$p-agent" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge-a \
        READ_FILE="$DATA/sample-ether.pcap" -- ip netns exec "$a" "$CAPTURE"
    expect_exit "$p-agent" 60 0
    wait_nmetric tapmesh_collect_packets_total 800 20
    ip netns exec "$a" curl -fsS "http://127.0.0.1:$mport/metrics" >"$WORK/$p.metrics.txt"
    stop "$p-collect"
    [ "$RC" = 0 ] || fail "collect exited $RC"
    local n=-1 m same=0
    end=$((SECONDS + 20))
    while [ "$same" -lt 3 ] && [ $SECONDS -lt $end ]; do
        sleep 0.3
        m=$(tcpdump -nn -r "$WORK/$p.peer.pcap" 2>/dev/null | wc -l)
        if [ "$m" = "$n" ]; then same=$((same + 1)); else same=0; fi
        n=$m
    done
    stop "$p-tcpdump" INT
    tcpdump -r "$WORK/$p.pcapng" -w "$WORK/$p.written.pcap" 2>/dev/null
}

# check NAME MODE MAX: MODE plain (the frames themselves), gretap or gre (in
# outer IPv4+GRE packets); each sent frame (GRE: its IP packet) cut at MAX
check() {
    python3 - "$WORK/$1.written.pcap" "$WORK/$1.peer.pcap" "$2" "$3" <<'PY' || fail "$1: what was sent is not what was written"
import struct, sys
def frames(path):
    data = open(path, "rb").read()
    assert struct.unpack("<I", data[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D), path
    out, at = [], 24
    while at < len(data):
        caplen = struct.unpack("<I", data[at + 8:at + 12])[0]
        out.append(data[at + 16:at + 16 + caplen])
        at += 16 + caplen
    return out
written, seen, mode, cut = frames(sys.argv[1]), frames(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if len(written) != 800:
    sys.exit("written: %d packets, expected 800" % len(written))
if len(seen) != len(written):
    sys.exit("seen: %d, written: %d" % (len(seen), len(written)))
for i, (w, s) in enumerate(zip(written, seen)):
    if mode == "plain":
        inner = s
    else:
        ihl = (s[14] & 15) * 4
        assert s[14 + 9] == 47, "not GRE"
        total = struct.unpack(">H", s[16:18])[0]
        if total != len(s) - 14:
            sys.exit("packet %d: IPv4 length %d for %d bytes" % (i + 1, total, len(s) - 14))
        g = 14 + ihl
        flags = struct.unpack(">H", s[g:g + 2])[0]
        inner = s[g + (8 if flags & 0x2000 else 4):]
        if mode == "gre":
            w = w[14:]
    if inner != w[:cut]:
        sys.exit("packet %d: %d bytes sent, %d written, differ" % (i + 1, len(inner), len(w)))
PY
}

# VXLAN into a Linux vxlan device: exactly the frames written
run vxlan vx0 "" TUNNEL="vxlan://10.201.0.2?vni=42" TUNNEL_MTU=9100
check vxlan plain 100000
grep -q '^tapmesh_collect_tunnel_packets_total 800$' "$WORK/vxlan.metrics.txt" ||
    fail "vxlan: $(grep tunnel_ "$WORK/vxlan.metrics.txt")"
grep -q '^tapmesh_collect_tunnel_truncated_total 0$' "$WORK/vxlan.metrics.txt" || fail "vxlan: truncated"
log "ok: vxlan: the Linux vxlan device delivered the 800 frames written, byte for byte"

# GRETAP with a key, TUNNEL_MTU 1500: frames cut to 1500 - 20 - 8 = 1472
run gretap tmx-ub "ip proto 47" TUNNEL="gretap://10.201.0.2?key=305419896"
check gretap gretap 1472
big=$(tshark -r "$WORK/gretap.pcapng" -T fields -e frame.len | awk '$1 > 1472' | wc -l)
[ "$big" -gt 0 ] || fail "gretap: no frame to cut"
grep -q "^tapmesh_collect_tunnel_truncated_total $big\$" "$WORK/gretap.metrics.txt" ||
    fail "gretap: truncated $(grep truncated "$WORK/gretap.metrics.txt"), expected $big"
# tshark's dissectors: every packet GRE, protocol Transparent Ethernet bridging, key 0x12345678,
# outer packets at most 1500 bytes, and an inner Ethernet frame whose source is the written one's
tshark -r "$WORK/gretap.peer.pcap" -T fields -E separator=" " -E occurrence=f -e gre.proto -e gre.key -e ip.len \
    >"$WORK/gretap.fields"
[ "$(awk '$1 == "0x6558" && $2 == "0x12345678" && $3 <= 1500' "$WORK/gretap.fields" | wc -l)" = 800 ] ||
    fail "gretap: tshark reads $(sort "$WORK/gretap.fields" | uniq -c | head -3)"
tshark -r "$WORK/gretap.written.pcap" -T fields -e eth.src >"$WORK/gretap.src.want"
tshark -r "$WORK/gretap.peer.pcap" -T fields -e eth.src | cut -d, -f2 >"$WORK/gretap.src.got"
cmp -s "$WORK/gretap.src.want" "$WORK/gretap.src.got" || fail "gretap: inner Ethernet sources differ"
log "ok: gretap: 800 frames with key 0x12345678, $big cut to fit TUNNEL_MTU 1500 and counted"

# GRE without a key: the IP packets alone, whole (TUNNEL_MTU 9100)
run gre tmx-ub "ip proto 47" TUNNEL="gre://10.201.0.2" TUNNEL_MTU=9100
check gre gre 100000
tshark -r "$WORK/gre.peer.pcap" -T fields -E separator=' ' -e gre.proto -e gre.key >"$WORK/gre.fields"
tshark -r "$WORK/gre.written.pcap" -T fields -e eth.type >"$WORK/gre.types"
[ "$(awk '{print $1}' "$WORK/gre.fields" | sort | uniq -c | awk '{print $2, $1}')" = \
    "$(sort "$WORK/gre.types" | uniq -c | awk '{print $2, $1}')" ] ||
    fail "gre: protocol types $(sort "$WORK/gre.fields" | uniq -c) for $(sort "$WORK/gre.types" | uniq -c)"
awk 'NF > 1 {exit 1}' "$WORK/gre.fields" || fail "gre: a key was sent"
grep -q '^tapmesh_collect_tunnel_packets_total 800$' "$WORK/gre.metrics.txt" || fail "gre: not all sent"
log "ok: gre: 800 IP packets without their Ethernet header, protocol types as tshark reads them"

# a bad TUNNEL stops start-up, naming the setting
start bad TUNNEL=gre://10.201.0.2:47 OUTPUT=/dev/null METRICS_ADDRPORT= \
    COLLECT_ENDPOINT=tcp://127.0.0.1:$port -- ip netns exec "$a" "$COLLECT"
expect_exit bad 10 2
grep -q "^tapmesh-collect: TUNNEL=gre://10.201.0.2:47: GRE has no port" "$WORK/bad.log" ||
    fail "bad TUNNEL: $(cat "$WORK/bad.log")"
log "ok: a bad TUNNEL is refused, naming it"
