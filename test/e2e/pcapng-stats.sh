#!/usr/bin/env bash
# Statistics inside the pcapng: in a network namespace made by the test, a
# live agent on a veth pair (PCAP_BUFFER_MB=1, FILTER) first dead-letters
# what it captures while no collector runs (RETRY_TIMEOUT_S=1), then, with
# the collector up (ROTATE_S=1), captures tcpreplay --topspeed; a file
# agent sends through a relay. Every file of the rotation ends with an ISB
# per interface; isb_usrdeliv is the interface's packets in that file;
# the last file's ISB of the live interface carries the agent's own
# counters, read from its /metrics: isb_ifrecv = kernel received, isb_ifdrop
# = kernel + interface drops, isb_osdrop = kernel drops, and the comment's
# dead-lettered count = its dead-letter metric. The file agent's counters
# crossed the relay (STATS forwarded). IDBs carry if_filter = FILTER and
# if_os, the SHB shb_os and shb_userappl. tcpdump, tshark and capinfos read
# every file without a warning, every packet. Kernel drops are not forced
# reliably here (the veth may keep up): the equality is checked whatever
# their number, and the log says how many there were. Needs root.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "live capture needs root (a network namespace and a raw socket)"
need ip tcpreplay tcpdump tshark capinfos python3 curl

ns=tapmesh-isb-$$
ip netns add "$ns" || skip "cannot create a network namespace here"
at_exit "ip netns del $ns"
inns() { ip netns exec "$ns" "$@"; }
ip -n "$ns" link add tm-tx type veth peer name tm-rx
for dev in tm-tx tm-rx lo; do
    ip -n "$ns" link set "$dev" mtu 9100 2>/dev/null || true
    ip -n "$ns" link set "$dev" up
done

input=$DATA/sample-ether.pcap
filter='udp port 9999'
pick_port; cport=$PORT
pick_port; rport=$PORT
pick_port; mport=$PORT
mkdir -p "$WORK/out"

# 1. no collector yet: what the live agent captures is dead-lettered
start live DEVICE=tm-rx "FILTER=$filter" PCAP_BUFFER_MB=1 RETRY_TIMEOUT_S=1 ACK_TIMEOUT_MS=200 \
    RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mport NODE_ID=live \
    -- ip netns exec "$ns" "$CAPTURE"
end=$((SECONDS + 10))
until grep -q "live capture on tm-rx" "$WORK/live.log"; do
    [ $SECONDS -lt $end ] || fail "capture did not start: $(cat "$WORK/live.log")"
    sleep 0.05
done
lmetric() { inns curl -fsS --max-time 5 "http://127.0.0.1:$mport/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
inns tcpreplay -q -i tm-tx "$input" >"$WORK/tcpreplay.txt" 2>&1 || fail "tcpreplay: $(cat "$WORK/tcpreplay.txt")"
want_dead=$(tcpdump -nn -r "$input" "$filter" 2>/dev/null | wc -l)
end=$((SECONDS + 10))
until [ "$(lmetric tapmesh_capture_packets_dead_lettered_total)" = "$want_dead" ]; do
    [ $SECONDS -lt $end ] || fail "the agent did not dead-letter $want_dead packets: $(lmetric tapmesh_capture_packets_dead_lettered_total)"
    sleep 0.1
done

# 2. the collector, a relay, a file agent behind it; the live agent joins
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= OUTPUT=$WORK/out/o.pcapng \
    ROTATE_S=1 MERGE_WINDOW_MS=300 STARTUP_WAIT_MS=0 -- ip netns exec "$ns" "$COLLECT"
start relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT= NODE_ID=r1 -- ip netns exec "$ns" "$RELAY"
end=$((SECONDS + 10))
until grep -q "collector accepted source live" "$WORK/live.log"; do
    [ $SECONDS -lt $end ] || fail "the live agent was not welcomed: $(tail -3 "$WORK/live.log")"
    sleep 0.05
done
inns tcpreplay -q --topspeed --loop=10 -i tm-tx "$input" >"$WORK/tcpreplay.txt" 2>&1 ||
    fail "tcpreplay: $(cat "$WORK/tcpreplay.txt")"
# the file agent after the first rotation, at recorded speed (0.8 s): its
# packets land in later files than the live agent's
end=$((SECONDS + 10))
until grep -q "now writing .*o-0001" "$WORK/collect.log"; do
    [ $SECONDS -lt $end ] || fail "no rotation: $(tail -3 "$WORK/collect.log")"
    sleep 0.05
done
start file READ_FILE=$input REPLAY_SPEED=1 FILTER=udp RELAY_ENDPOINT=tcp://127.0.0.1:$rport \
    METRICS_ADDRPORT= NODE_ID=file -- ip netns exec "$ns" "$CAPTURE"
expect_exit file 20 0
sleep 1.5 # the kernel counters are read every second
for m in kernel_received_packets kernel_dropped_packets interface_dropped_packets \
    packets_dead_lettered packets; do
    v=$(lmetric "tapmesh_capture_${m}_total")
    [ -n "$v" ] || fail "no tapmesh_capture_${m}_total"
    eval "m_$m=$v"
done
stop live
stop relay
sleep 1.1 # one more rotation while idle: a file with interfaces and no packets
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
log "live agent: $m_packets packets, $m_kernel_received_packets received by the kernel," \
    "$m_kernel_dropped_packets kernel drops, $m_interface_dropped_packets interface drops," \
    "$m_packets_dead_lettered dead-lettered"

files=("$WORK"/out/o-*.pcapng)
[ ${#files[@]} -ge 3 ] || fail "expected at least 3 files (ROTATE_S=1), found ${#files[@]}"
python3 "$here/pcapng-blocks.py" "${files[@]}" >"$WORK/blocks.json"
want_os="$(uname -s) $(uname -r)"
# one line per file: its packet count (for the readers), or a failure
python3 - "$WORK/blocks.json" "$filter" "$want_os" "$m_kernel_received_packets" \
    "$m_kernel_dropped_packets" "$m_interface_dropped_packets" "$m_packets_dead_lettered" \
    "$(tcpdump -nn -r "$input" udp 2>/dev/null | wc -l)" >"$WORK/counts.txt" <<'EOF' || fail "$(cat "$WORK/counts.txt")"
import json, re, sys
files = json.load(open(sys.argv[1]))
flt, os_, recv, kdrop, idrop, dead, file_sent = sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])
def die(msg):
    print(msg); sys.exit(1)
last = {}
joined = False
for f in files:
    name = f["file"]
    if f["shb"].get("os") != os_ or not re.fullmatch(r"tapmesh-collect \d+\.\d+\.\d+", f["shb"].get("userappl", "")):
        die(f"{name}: SHB {f['shb']}")
    ids = {i["name"]: n for n, i in enumerate(f["idbs"])}
    # the file agent joins after the first rotation: from its file on, every file has it
    joined = joined or "file/sample-ether.pcap" in ids
    want_ids = ["live/tm-rx"] + (["file/sample-ether.pcap"] if joined else [])
    if sorted(ids) != sorted(want_ids) or (f is files[0] and joined):
        die(f"{name}: interfaces {sorted(ids)}")
    live = f["idbs"][ids["live/tm-rx"]]
    fil = f["idbs"][ids["file/sample-ether.pcap"]] if len(ids) > 1 else {"filter": {"kind": 0, "text": "udp"}}
    if live.get("filter") != {"kind": 0, "text": flt} or fil.get("filter") != {"kind": 0, "text": "udp"}:
        die(f"{name}: if_filter {live.get('filter')} {fil.get('filter')}")
    if live.get("os") != os_ or "if_os=" in live.get("description", "") or "if_filter=" in live.get("description", ""):
        die(f"{name}: if_os {live.get('os')!r}, description {live.get('description')!r}")
    # the ISBs close the file: one per interface, after every packet
    n = len(f["idbs"])
    if f["order"][-n:] != ["isb"] * n or len(f["isbs"]) != n or sorted(i["ifid"] for i in f["isbs"]) != list(range(n)):
        die(f"{name}: blocks end {f['order'][-n-1:]}, {len(f['isbs'])} ISBs for {n} interfaces")
    for isb in f["isbs"]:
        i = isb["ifid"]
        if isb["usrdeliv"] != f["packets"][i]:
            die(f"{name}: interface {i}: isb_usrdeliv {isb['usrdeliv']} but {f['packets'][i]} packets")
        if isb["endtime"] != isb["ts"] or isb["starttime"] > isb["endtime"]:
            die(f"{name}: interface {i}: times {isb}")
        if not re.search(rf"this file: {f['packets'][i]} written, \d+ late, \d+ forced$", isb.get("comment", "")):
            die(f"{name}: interface {i}: comment {isb.get('comment')!r}")
        last[f["idbs"][i]["name"]] = isb
    print(sum(f["packets"]))
isb = last["live/tm-rx"]
want = {"ifrecv": recv, "ifdrop": kdrop + idrop, "osdrop": kdrop}
got = {k: isb.get(k) for k in want}
if got != want:
    die(f"live ISB {got}, agent metrics {want}")
m = re.search(r"since it began\): (\d+) received, (\d+) dropped by the kernel, (\d+) dropped by the interface, (\d+) sent, (\d+) dead-lettered;", isb["comment"])
if not m or list(map(int, m.groups()[:3])) + [int(m.group(5))] != [recv, kdrop, idrop, dead]:
    die(f"live ISB comment {isb['comment']!r}, metrics {recv} {kdrop} {idrop} dead {dead}")
isb = last["file/sample-ether.pcap"]
if "ifrecv" in isb or "ifdrop" in isb or not re.search(rf"since it began\): {file_sent} sent, 0 dead-lettered;", isb["comment"]):
    die(f"file ISB {isb}")
EOF
total=0
i=0
while read -r n; do
    readers_accept "${files[$i]}" "$n"
    err=$(tshark -r "${files[$i]}" -q -z io,stat,0 2>&1 >/dev/null | grep -v 'Running as user "root"' || true)
    [ -z "$err" ] || fail "tshark -z io,stat,0 ${files[$i]}: $err"
    total=$((total + n))
    i=$((i + 1))
done <"$WORK/counts.txt"
[ "$i" = ${#files[@]} ] || fail "counted $i of ${#files[@]} files"
# every packet the agents sent is in the files, none twice, and none the
# live agent dead-lettered (nothing waits in its socket for a collector
# to come: ZMQ_IMMEDIATE)
nfile=$(tcpdump -nn -r "$input" udp 2>/dev/null | wc -l)
want=$((nfile + m_packets - m_packets_dead_lettered))
[ "$total" = "$want" ] ||
    fail "the files hold $total packets, the agents sent $want (and $m_packets_dead_lettered dead-lettered)"
log "ok: ${#files[@]} files, $total packets, an ISB per interface in each"

