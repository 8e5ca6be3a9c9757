#!/usr/bin/env bash
# EVENTS=influx into a real InfluxDB 1.x (Debian's influxdb) through its UDP
# listener, the real path: the collector's line protocol is parsed and
# stored by InfluxDB, then queried back over its HTTP API: packets per
# source and per flow (tags) and their bytes equal the input's. Then the
# same pipeline's lines, caught by a UDP listener of the test, go through
# InfluxDB's HTTP write API (/write, precision ns) into a second database,
# which answers the same.
. "$(dirname "$0")/lib.sh"
need python3 curl ss tshark
command -v influxd >/dev/null || skip "influxd is not installed (Debian package influxdb; scripts/install-deps.sh)"

gen=$root/test/tools/events-pcap.py
python3 "$gen" "$WORK/a.pcap" 400 12 3 1700000000000000000
python3 "$gen" "$WORK/b.pcap" 300 9 4 1700000000000000700

pick_port; http=$PORT
pick_port; rpc=$PORT
pick_port; udp=$PORT
mkdir -p "$WORK/influx"
cat >"$WORK/influx.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$WORK/influx/meta"
[data]
  dir = "$WORK/influx/data"
  wal-dir = "$WORK/influx/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:$http"
  log-enabled = false
[[udp]]
  enabled = true
  bind-address = "127.0.0.1:$udp"
  database = "tapmesh"
  precision = "n"
  batch-size = 100
  batch-timeout = "100ms"
  read-buffer = 4194304
CONF
start influxd -- influxd run -config "$WORK/influx.conf"
for i in $(seq 1 150); do
    curl -fsS -o /dev/null "http://127.0.0.1:$http/ping" 2>/dev/null && break
    [ "$i" -lt 150 ] || fail "influxd did not answer /ping within 15 s"
    sleep 0.1
done
curl -fsS -o /dev/null -XPOST "http://127.0.0.1:$http/query" --data-urlencode "q=CREATE DATABASE tapmesh"

# run EVENTS_TO: the two agents into a collector sending its events there
run() {
    pick_port; port=$PORT
    pick_port; mport=$PORT
    start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
        OUTPUT="$WORK/out.pcapng" EXPECT_SOURCES=site1,site2 EVENTS=influx \
        EVENTS_TO="$1" EVENTS_INTERVAL_MS=50 EVENTS_DATAGRAM_BYTES=8192 -- "$COLLECT"
    wait_listening "$mport" 10
    start a RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=site1 \
        READ_FILE="$WORK/a.pcap" -- "$CAPTURE"
    start b RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=site2 \
        READ_FILE="$WORK/b.pcap" -- "$CAPTURE"
    expect_exit a 30 0
    expect_exit b 30 0
    wait_metric "$mport" tapmesh_collect_packets_total 700 10
    wait_metric "$mport" tapmesh_collect_events_sent_total 700 10
    stop collect
    [ "$RC" = 0 ] || fail "collect exited $RC"
}
run "udp://127.0.0.1:$udp"

tshark -r "$WORK/out.pcapng" -T fields -E separator=/t -E occurrence=f \
    -e frame.len -e frame.interface_name -e vlan.id -e ip.src -e ip.dst -e ipv6.src \
    -e ipv6.dst -e tcp.srcport -e udp.srcport -e tcp.dstport -e udp.dstport \
    >"$WORK/in.tsv" 2>/dev/null
db=tapmesh
q() {
    curl -fsS -G "http://127.0.0.1:$http/query" --data-urlencode db=$db \
        --data-urlencode "epoch=ns" --data-urlencode "q=$1"
}
check() { # check WHAT: the database $db holds the input's counts
# InfluxDB writes the UDP listener's batches within its batch-timeout
for i in $(seq 1 50); do
    n=$(q "SELECT count(caplen) FROM tapmesh_packet" | python3 -c \
        'import json,sys; r=json.load(sys.stdin)["results"][0]; print(r["series"][0]["values"][0][1] if "series" in r else 0)')
    [ "$n" = 700 ] && break
    [ "$i" -lt 50 ] || fail "$1: InfluxDB holds $n packet points, expected 700"
    sleep 0.2
done
q "SELECT count(caplen), sum(len) FROM tapmesh_packet GROUP BY source" >"$WORK/by-source.json"
q "SELECT count(caplen), sum(len) FROM tapmesh_packet GROUP BY source,iface,vlan,ip_src,ip_dst,src_port,dst_port" \
    >"$WORK/by-flow.json"
python3 - "$WORK/in.tsv" "$WORK/by-source.json" "$WORK/by-flow.json" <<'PY' || fail "$1: InfluxDB's counts differ from the input's"
import collections, json, sys
src = collections.Counter(); src_b = collections.Counter()
flow = collections.Counter(); flow_b = collections.Counter()
for r in open(sys.argv[1]).read().splitlines():
    flen, ifname, vid, s4, d4, s6, d6, tsp, usp, tdp, udp = (r.split("\t") + [""] * 11)[:11]
    source, iface = ifname.split("/", 1)
    k = (source, iface, vid, s4 or s6, d4 or d6, tsp or usp, tdp or udp)
    src[source] += 1; src_b[source] += int(flen)
    flow[k] += 1; flow_b[k] += int(flen)
def series(path):
    for s in json.load(open(path))["results"][0]["series"]:
        yield s["tags"], s["values"][0][1], s["values"][0][2]
got = {t["source"]: (n, b) for t, n, b in series(sys.argv[2])}
assert got == {s: (src[s], src_b[s]) for s in src}, (got, src, src_b)
gotf = {}
for t, n, b in series(sys.argv[3]):
    k = tuple(t[x] for x in ("source", "iface", "vlan", "ip_src", "ip_dst", "src_port", "dst_port"))
    gotf[k] = (n, b)
assert gotf == {k: (flow[k], flow_b[k]) for k in flow}, (sorted(gotf.items())[:3], sorted(flow.items())[:3])
print("%d sources, %d flows: counts and bytes in InfluxDB equal the input's" % (len(got), len(gotf)))
PY
}
check "UDP listener"

# the same lines through the HTTP write API
pick_port; lport=$PORT
start listen -- python3 "$root/test/tools/udp-listen.py" "$lport" "$WORK/lines" 1 30
for i in $(seq 1 100); do [ -e "$WORK/lines.ready" ] && break; sleep 0.05; done
run "udp://127.0.0.1:$lport"
expect_exit listen 35 0
[ "$(grep -c '^tapmesh_packet,' "$WORK/lines")" = 700 ] || fail "the listener caught $(grep -c '^tapmesh_packet,' "$WORK/lines") packet lines, expected 700"
curl -fsS -o /dev/null -XPOST "http://127.0.0.1:$http/query" --data-urlencode "q=CREATE DATABASE tapmesh_http"
code=$(curl -sS -o "$WORK/write.out" -w '%{http_code}' -XPOST \
    "http://127.0.0.1:$http/write?db=tapmesh_http&precision=ns" --data-binary @"$WORK/lines")
[ "$code" = 204 ] || fail "InfluxDB's /write answered $code: $(cat "$WORK/write.out")"
db=tapmesh_http
check "HTTP write API"
log "ok: line protocol stored by InfluxDB (UDP listener and HTTP write API); counts per source and per flow equal the input's"
