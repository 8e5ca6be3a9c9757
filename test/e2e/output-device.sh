#!/usr/bin/env bash
# OUTPUT_DEVICE with VLAN_TAGS: in a network namespace made by the test, a
# collector sends every packet it writes out of one end of a veth pair,
# while two capture agents (edge-a: the sample capture, jumbo frames
# included; edge-b: generated packets) feed it. tcpdump on the other end
# sees exactly the collector's own file output, in the same order, byte for
# byte once the tag is taken out, each frame with its source's tag (tshark
# reads the VLAN ids); with OUTPUT_DEVICE naming two interfaces (a tap
# replicated), each peer sees all of it. Then OUTPUT_SNAPLEN cuts what is sent, and a frame
# longer than the device's MTU is counted with a message that names the MTU
# and the offloads. Needs root; skipped otherwise.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (a network namespace, a veth pair, a packet socket)"
need ip tcpdump tshark python3 curl

ns=tmx-od-$$
ip netns add "$ns" || skip "cannot create a network namespace here"
at_exit "ip netns del $ns"
inns() { ip netns exec "$ns" "$@"; }
inns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$ns" link add tmx-out type veth peer name tmx-peer
ip -n "$ns" link add tmx-out2 type veth peer name tmx-peer2
for dev in tmx-out tmx-peer tmx-out2 tmx-peer2; do
    ip -n "$ns" link set "$dev" mtu 9100
    ip -n "$ns" link set "$dev" up
done
ip -n "$ns" link set lo up

"$TOOLS/gen-sample" "$WORK/b.pcap" 500 ether 4242
pick_port; port=$PORT
pick_port; mport=$PORT
nmetric() { inns curl -fsS --max-time 5 "http://127.0.0.1:$mport/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
wait_nmetric() { # NAME VALUE TIMEOUT_S
    local end=$((SECONDS + $3)) v=""
    while [ $SECONDS -lt $end ]; do
        v=$(nmetric "$1" 2>/dev/null || true)
        [ "$v" = "$2" ] && return 0
        sleep 0.1
    done
    fail "metric $1 is '$v', expected '$2' within $3 s"
}

# run PREFIX [SETTINGS...]: a collector sending out of tmx-out (unless the
# settings say otherwise) and both agents; tcpdump on tmx-peer writes
# $WORK/PREFIX.peer.pcap (on tmx-peer2: PREFIX.peer2.pcap), the collector
# $WORK/PREFIX.pcapng
run() {
    local p=$1
    shift
    start "$p-tcpdump" -- ip netns exec "$ns" tcpdump -i tmx-peer -B 32768 -Q in -s 0 -U -nn \
        --time-stamp-precision=nano -w "$WORK/$p.peer.pcap"
    start "$p-tcpdump2" -- ip netns exec "$ns" tcpdump -i tmx-peer2 -B 32768 -Q in -s 0 -U -nn \
        --time-stamp-precision=nano -w "$WORK/$p.peer2.pcap"
    local end=$((SECONDS + 10))
    until grep -q "listening on tmx-peer" "$WORK/$p-tcpdump.log" &&
        grep -q "listening on tmx-peer2" "$WORK/$p-tcpdump2.log"; do
        [ $SECONDS -lt $end ] || fail "tcpdump did not start: $(cat "$WORK/$p-tcpdump.log")"
        sleep 0.05
    done
    start "$p-collect" COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
        OUTPUT="$WORK/$p.pcapng" OUTPUT_DEVICE=tmx-out EXPECT_SOURCES=edge-a,edge-b \
        STARTUP_WAIT_MS=10000 "$@" -- ip netns exec "$ns" "$COLLECT"
    end=$((SECONDS + 10))
    until nmetric tapmesh_collect_packets_total >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || fail "the collector did not start: $(cat "$WORK/$p-collect.log")"
        sleep 0.05
    done
    start "$p-a" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge-a \
        READ_FILE="$DATA/sample-ether.pcap" -- ip netns exec "$ns" "$CAPTURE"
    start "$p-b" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge-b \
        READ_FILE="$WORK/b.pcap" -- ip netns exec "$ns" "$CAPTURE"
    expect_exit "$p-a" 60 0
    expect_exit "$p-b" 60 0
    wait_nmetric tapmesh_collect_packets_total 1300 20
}

# stop_run PREFIX: stops the collector, then tcpdump once it has everything
stop_run() {
    inns curl -fsS "http://127.0.0.1:$mport/metrics" >"$WORK/$1.metrics.txt"
    stop "$1-collect"
    [ "$RC" = 0 ] || fail "collect exited $RC"
    # tcpdump writes each packet (-U) as it reads it: wait until its file stops growing
    local n=-1 m same=0 end=$((SECONDS + 20))
    while [ "$same" -lt 3 ] && [ $SECONDS -lt $end ]; do
        sleep 0.3
        m=$(cat "$WORK/$1.peer.pcap" "$WORK/$1.peer2.pcap" 2>/dev/null | wc -c)
        if [ "$m" = "$n" ]; then same=$((same + 1)); else same=0; fi
        n=$m
    done
    stop "$1-tcpdump" INT
    stop "$1-tcpdump2" INT
}

# check PREFIX SNAPLEN [PEER]: the frames PEER (peer: tmx-peer, peer2:
# tmx-peer2) saw are the collector's file output, in order, each with its
# source's tag, cut at SNAPLEN (0: whole)
check() {
    local p=$1 snaplen=$2 peer=${3:-peer}
    tcpdump -r "$WORK/$p.pcapng" -w "$WORK/$p.written.pcap" 2>/dev/null
    tshark -r "$WORK/$p.pcapng" -T fields -e frame.interface_name >"$WORK/$p.sources.txt"
    python3 - "$WORK/$p.written.pcap" "$WORK/$p.sources.txt" "$WORK/$p.$peer.pcap" "$snaplen" <<'PY' || fail "$p: the frames sent out to $peer are not the frames written"
import struct, sys
def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), "not a little-endian pcap: %s" % path
    out, at = [], 24
    while at < len(data):
        _, _, caplen, _ = struct.unpack("<IIII", data[at:at + 16])
        out.append(data[at + 16:at + 16 + caplen])
        at += 16 + caplen
    return out
written, peer = frames(sys.argv[1]), frames(sys.argv[3])
sources = [l.split("/")[0] for l in open(sys.argv[2]).read().split("\n") if l]
snaplen = int(sys.argv[4])
tags = {"edge-a": 100, "edge-b": 200}
if len(written) != 1300 or len(sources) != 1300:
    sys.exit("written %d packets (%d sources), expected 1300" % (len(written), len(sources)))
if len(peer) != len(written):
    sys.exit("the peer saw %d frames, %d were written" % (len(peer), len(written)))
for i, (w, s, got) in enumerate(zip(written, sources, peer)):
    want = w[:12] + struct.pack(">HH", 0x8100, tags[s]) + w[12:]
    if snaplen:
        want = want[:snaplen]
    if got != want:
        sys.exit("frame %d (of %s, %d bytes written): sent %d bytes that differ" % (i + 1, s, len(w), len(got)))
PY
    # tshark's own reading of the tags, packet for packet
    awk -F/ '{print ($1 == "edge-a") ? 100 : 200}' "$WORK/$p.sources.txt" >"$WORK/$p.vids.want"
    tshark -r "$WORK/$p.$peer.pcap" -T fields -e vlan.id >"$WORK/$p.vids.got"
    cmp -s "$WORK/$p.vids.want" "$WORK/$p.vids.got" ||
        fail "$p: VLAN ids per packet differ: $(diff "$WORK/$p.vids.want" "$WORK/$p.vids.got" | head -5)"
    grep -qx 100 "$WORK/$p.vids.got" && grep -qx 200 "$WORK/$p.vids.got" || fail "$p: both tags expected"
}

run whole VLAN_TAGS=edge-a:100,edge-b:200 OUTPUT_DEVICE=tmx-out,tmx-out2
stop_run whole
check whole 0 peer
check whole 0 peer2
for dev in tmx-out tmx-out2; do
    grep -q "^tapmesh_collect_output_device_packets_total{device=\"$dev\"} 1300\$" "$WORK/whole.metrics.txt" ||
        fail "sent out of $dev: $(grep output_device "$WORK/whole.metrics.txt")"
    grep -q "^tapmesh_collect_output_device_errors_total{device=\"$dev\",reason=\"msgsize\"} 0\$" "$WORK/whole.metrics.txt" ||
        fail "errors: $(grep output_device_errors "$WORK/whole.metrics.txt")"
done
log "ok: 1300 packets sent out of two devices in merged order, each with its source's tag"

# OUTPUT_SNAPLEN cuts what is sent (not what is written)
run cut VLAN_TAGS=edge-a:100,edge-b:200 OUTPUT_SNAPLEN=100
stop_run cut
check cut 100
cut=$(tshark -r "$WORK/cut.pcapng" -T fields -e frame.len | awk '$1 + 4 > 100' | wc -l)
[ "$cut" -gt 0 ] || fail "no packet was long enough to be cut"
grep -q "^tapmesh_collect_output_device_truncated_total{device=\"tmx-out\"} $cut\$" "$WORK/cut.metrics.txt" ||
    fail "truncated: $(grep truncated "$WORK/cut.metrics.txt"), expected $cut"
log "ok: OUTPUT_SNAPLEN=100 cuts $cut frames sent, the file keeps them whole"

# frames longer than the MTU: counted, named, and the file output goes on
ip -n "$ns" link set tmx-out mtu 1500
run mtu VLAN_TAGS=edge-a:100,edge-b:200
stop_run mtu
big=$(tshark -r "$WORK/mtu.pcapng" -T fields -e frame.len | awk '$1 + 4 > 1518' | wc -l)
[ "$big" -gt 0 ] || fail "no frame above the MTU"
grep -q "^tapmesh_collect_output_device_errors_total{device=\"tmx-out\",reason=\"msgsize\"} $big\$" "$WORK/mtu.metrics.txt" ||
    fail "msgsize errors: $(grep output_device_errors "$WORK/mtu.metrics.txt"), expected $big"
grep -q "exceeds tmx-out's MTU 1500: raise the MTU (ip link set tmx-out mtu 9216) or set OUTPUT_SNAPLEN.*gro off" \
    "$WORK/mtu-collect.log" || fail "no message naming the MTU: $(grep -i mtu "$WORK/mtu-collect.log")"
n=$(grep -c "exceeds tmx-out's MTU" "$WORK/mtu-collect.log")
[ "$n" = 1 ] || fail "the MTU message was logged $n times (rate-limited: once)"
[ "$(tshark -r "$WORK/mtu.pcapng" | wc -l)" = 1300 ] || fail "the file output lost packets"
[ "$(tcpdump -nn -r "$WORK/mtu.peer.pcap" 2>/dev/null | wc -l)" = $((1300 - big)) ] || fail "the frames that fit were not all sent"
log "ok: $big frames above the MTU counted and named once, the rest sent, the file whole"

# a bad VLAN_TAGS stops start-up, naming the setting
expect_bad() { # NAME SETTINGS...: exit status 2, one line naming NAME
    local name=$1
    shift
    start bad "$@" OUTPUT=/dev/null METRICS_ADDRPORT= COLLECT_ENDPOINT=tcp://127.0.0.1:$port \
        -- ip netns exec "$ns" "$COLLECT"
    expect_exit bad 10 2
    grep -q "^tapmesh-collect: $name" "$WORK/bad.log" || fail "no message naming $name: $(cat "$WORK/bad.log")"
}
expect_bad VLAN_TAGS VLAN_TAGS=edge-a:5000 OUTPUT_DEVICE=tmx-out
grep -q "VLAN_TAGS: 'edge-a:5000': a VLAN id is 1..4094" "$WORK/bad.log" || fail "$(cat "$WORK/bad.log")"
expect_bad OUTPUT_DEVICE=tmx-nosuch OUTPUT_DEVICE=tmx-nosuch
expect_bad "OUTPUT_DEVICE=tmx-out,tmx-out: tmx-out is named twice" OUTPUT_DEVICE=tmx-out,tmx-out
expect_bad "OUTPUT_DEVICE=tmx-out,,tmx-out2: an empty name" OUTPUT_DEVICE=tmx-out,,tmx-out2
expect_bad "OUTPUT_DEVICE=a\"b: not an interface name" 'OUTPUT_DEVICE=tmx-out,a"b'
expect_bad VLAN_TAGS VLAN_TAGS=edge-a:5
log "ok: bad settings refused with a message naming them"
