#!/usr/bin/env bash
# A real Prometheus server against a running pipeline of the compose lab's
# shape on loopback: capture-a and capture-b -> relay-site -> relay-core ->
# collect, scraped with deploy/prometheus/prometheus.yml (the compose names
# replaced by 127.0.0.1 ports, every second) and its rules. Through the HTTP
# API: every target up while the agents run; the rules loaded and evaluated
# without error, nothing firing, and the one alert a collector holding
# packets for EXPECT_SOURCES earns pending; once the agents have finished,
# a scrape later, tapmesh_collect_packets_total is exactly the packets sent
# (and per source, each agent's); an agent gone shows as TapmeshServiceDown
# pending; every dashboard expression runs on the server.
. "$(dirname "$0")/lib.sh"
need prometheus promtool jq curl ss

dir=$root/deploy/prometheus
dashboard=$root/deploy/grafana/dashboards/tapmesh.json
input=$DATA/sample-ether.pcap
sent=$(tcpdump -nn -r "$input" 2>/dev/null | wc -l)
[ "$sent" -gt 0 ] || fail "cannot count the packets of $input"

pick_port; data=$PORT
pick_port; core=$PORT
pick_port; site=$PORT
pick_port; m_collect=$PORT
pick_port; m_core=$PORT
pick_port; m_site=$PORT
pick_port; m_a=$PORT
pick_port; m_b=$PORT
pick_port; web=$PORT
api=http://127.0.0.1:$web/api/v1

# the deploy configuration, pointed at this pipeline
sed -e "s/\"capture-a:9710\"/\"127.0.0.1:$m_a\"/; s/\"capture-b:9710\"/\"127.0.0.1:$m_b\"/" \
    -e "s/\"relay-site:9711\"/\"127.0.0.1:$m_site\"/; s/\"relay-core:9711\"/\"127.0.0.1:$m_core\"/" \
    -e "s/\"collect:9712\"/\"127.0.0.1:$m_collect\"/" \
    -e 's/^\(  scrape_interval:\) 5s$/\1 1s/; s/^\(  scrape_timeout:\) 4s$/\1 1s/' \
    -e 's/^\(  evaluation_interval:\) 5s$/\1 1s/' \
    -e "s|^  - rules.yml\$|  - $dir/rules.yml|" "$dir/prometheus.yml" >"$WORK/prometheus.yml"
if grep -Eq 'capture-[ab]:|relay-(site|core):|collect:9712|interval: 5s|- rules.yml' "$WORK/prometheus.yml"; then
    fail "prometheus.yml changed shape; this test no longer maps it onto loopback: $(cat "$WORK/prometheus.yml")"
fi
out=$(promtool check config "$WORK/prometheus.yml" 2>&1) || fail "the mapped configuration: $out"

start prometheus -- prometheus --config.file="$WORK/prometheus.yml" \
    --storage.tsdb.path="$WORK/tsdb" --web.listen-address=127.0.0.1:$web --log.level=info
# wait_log NAME PATTERN: NAME's log has a line matching PATTERN (20 s)
wait_log() {
    local end=$((SECONDS + 20))
    until grep -q -- "$2" "$WORK/$1.log"; do
        [ $SECONDS -lt $end ] || fail "$1 did not log '$2' within 20 s"
        kill -0 "${PIDS[$1]}" 2>/dev/null || fail "$1 exited"
        sleep 0.05
    done
}
# Started from the agents up, each next hop once the sender before it is
# watching its connection: the next-hop gauges come from a socket monitor
# set up after the connect, which misses a handshake done before it, so a
# sender connecting to a next hop already listening can report it down.
for agent in capture-a capture-b; do
    port=$m_a
    [ "$agent" = capture-a ] || port=$m_b
    start "$agent" READ_FILE="$input" RELAY_ENDPOINT=tcp://127.0.0.1:$site ACK_TIMEOUT_MS=60000 \
        RETRY_TIMEOUT_S=120 METRICS_ADDRPORT=127.0.0.1:$port NODE_ID=$agent -- "$CAPTURE"
    wait_log "$agent" "towards tcp://127.0.0.1:$site"
done
# The relays wait as long as the test for acknowledgements (HOP_TIMEOUT_MS)
# before they count their next hop down: the collector writes nothing, so
# acknowledges nothing, until a third source (EXPECT_SOURCES) joins, and so
# the agents stay up, scraped, until the test starts that one.
start relay-site COLLECT_ENDPOINT=tcp://127.0.0.1:$site RELAY_ENDPOINT=tcp://127.0.0.1:$core \
    METRICS_ADDRPORT=127.0.0.1:$m_site NODE_ID=relay-site HOP_TIMEOUT_MS=120000 -- "$RELAY"
wait_log relay-site "sources on tcp://127.0.0.1:$site"
start relay-core COLLECT_ENDPOINT=tcp://127.0.0.1:$core RELAY_ENDPOINT=tcp://127.0.0.1:$data \
    METRICS_ADDRPORT=127.0.0.1:$m_core NODE_ID=relay-core HOP_TIMEOUT_MS=120000 -- "$RELAY"
wait_log relay-core "sources on tcp://127.0.0.1:$core"
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$data METRICS_ADDRPORT=127.0.0.1:$m_collect \
    OUTPUT=$WORK/out.pcapng EXPECT_SOURCES=capture-a,capture-b,latecomer STARTUP_WAIT_MS=120000 \
    -- "$COLLECT"
tcpdump --time-stamp-precision=nano -r "$input" -c 1 -w "$WORK/one.pcap" 2>/dev/null

# get PATH...: the API's answer (JSON), or fail
get() {
    local body
    body=$(curl -sS --max-time 5 -G "$api/$1" "${@:2}") || fail "GET $api/$1 failed"
    jq -e '.status == "success"' >/dev/null 2>&1 <<<"$body" || fail "GET $api/$1 ${*:2}: $body"
    printf '%s\n' "$body"
}
# query PROMQL: the result vector as "labels value" lines
query() {
    get query --data-urlencode "query=$1" |
        jq -r '.data.result[] | "\(.metric | to_entries | map("\(.key)=\(.value)") | join(",")) \(.value[1])"' |
        sort
}

end=$((SECONDS + 30))
until curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$web/-/ready" 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "Prometheus is not ready after 30 s"
    kill -0 "${PIDS[prometheus]}" 2>/dev/null || fail "Prometheus exited"
    sleep 0.2
done

# every target up, by job, while the agents run
want="tapmesh-capture 127.0.0.1:$m_a up
tapmesh-capture 127.0.0.1:$m_b up
tapmesh-collect 127.0.0.1:$m_collect up
tapmesh-relay 127.0.0.1:$m_core up
tapmesh-relay 127.0.0.1:$m_site up"
want=$(sort <<<"$want")
end=$((SECONDS + 20))
while :; do
    targets=$(get targets | jq -r '.data.activeTargets[] | "\(.labels.job) \(.labels.instance) \(.health)"' | sort)
    [ "$targets" = "$want" ] && break
    [ $SECONDS -lt $end ] || fail "targets are not all up after 20 s: $targets"
    sleep 0.5
done
log "all 5 targets up"
for p in $m_a $m_b; do wait_metric "$p" tapmesh_capture_packets_total "$sent" 20; done
for p in $m_a $m_b; do wait_metric "$p" tapmesh_capture_next_hop_up 1 20; done
wait_metric "$m_site" "tapmesh_relay_next_hop_up{hop=\"tcp://127.0.0.1:$core\"}" 1 20
wait_metric "$m_core" "tapmesh_relay_next_hop_up{hop=\"tcp://127.0.0.1:$data\"}" 1 20

# the rules: loaded, every one evaluated without error; nothing alerting
nrules=$(grep -c '^ *- alert:' "$dir/rules.yml")
end=$((SECONDS + 20))
while :; do
    rules=$(get rules | jq -r '.data.groups[].rules[] | "\(.type) \(.name) \(.health) \(.lastError // "")"')
    [ "$(grep -c '^alerting .* ok $' <<<"$rules")" = "$nrules" ] && break
    [ $SECONDS -lt $end ] || fail "the rules are not all loaded and evaluated without error: $rules"
    sleep 0.5
done
# alerts: "name instance state" lines. TapmeshSourcesLost is left out: a
# source reading a file ends (is no longer live) as soon as it has sent its
# last batch, so a scrape that saw it live may leave it pending.
alerts() {
    get alerts | jq -r '.data.alerts[] | "\(.labels.alertname) \(.labels.instance) \(.state)"' |
        grep -v '^TapmeshSourcesLost ' | sort || true
}
# nothing firing; the collector holds packets and writes nothing (it waits
# for the latecomer): TapmeshCollectorOutputStalled pending, and only that
want="TapmeshCollectorOutputStalled 127.0.0.1:$m_collect pending"
end=$((SECONDS + 20))
while :; do
    alerts=$(alerts)
    [ "$alerts" = "$want" ] && break
    [ $SECONDS -lt $end ] || fail "alerts while the collector waits for a source: '$alerts', expected '$want'"
    sleep 0.5
done
log "$nrules alerting rules loaded and evaluated; only the output stall pending while the collector waits"

# dashboard_runs WHEN: every dashboard expression runs on this server
jq -r '[.. | objects | select(has("expr")) | .expr] | .[]' "$dashboard" | sed 's/\$__rate_interval/1m/g' >"$WORK/exprs"
dashboard_runs() {
    local e
    while IFS= read -r e; do
        get query --data-urlencode "query=$e" >/dev/null
    done <"$WORK/exprs"
    log "$(wc -l <"$WORK/exprs") dashboard expressions run ($1)"
}
dashboard_runs "every target up"

# the latecomer joins with one packet: writing starts, the agents have all
# acknowledged and exit 0
start latecomer READ_FILE="$WORK/one.pcap" RELAY_ENDPOINT=tcp://127.0.0.1:$site METRICS_ADDRPORT= \
    NODE_ID=latecomer -- "$CAPTURE"
expect_exit latecomer 60 0
expect_exit capture-a 60 0
expect_exit capture-b 60 0
finished=$(date +%s.%N)

# a scrape of the collector after that: exactly what was sent
end=$((SECONDS + 20))
while :; do
    got=$(query 'timestamp(tapmesh_collect_packets_total)')
    awk -v t="${got##* }" -v f="$finished" 'BEGIN { exit !(t > f) }' && break
    [ $SECONDS -lt $end ] || fail "no scrape of the collector after the agents finished: $got"
    sleep 0.2
done
total=$(query tapmesh_collect_packets_total)
[ "${total##* }" = $((2 * sent + 1)) ] ||
    fail "Prometheus has tapmesh_collect_packets_total $total, sent $((2 * sent + 1))"
per_source=$(query 'sum by (source) (tapmesh_collect_source_packets_total)')
[ "$per_source" = "source=capture-a $sent
source=capture-b $sent
source=latecomer 1" ] || fail "per source: $per_source, sent $sent, $sent and 1"
[ "$(metric "$m_collect" tapmesh_collect_packets_total)" = $((2 * sent + 1)) ] ||
    fail "the collector itself says $(metric "$m_collect" tapmesh_collect_packets_total)"
log "tapmesh_collect_packets_total ${total##* } = packets sent, $sent + $sent + 1 per source"

# an agent gone is a target down: TapmeshServiceDown pending, for those two
end=$((SECONDS + 20))
want="TapmeshServiceDown 127.0.0.1:$m_a pending
TapmeshServiceDown 127.0.0.1:$m_b pending"
want=$(sort <<<"$want")
while :; do
    alerts=$(alerts)
    [ "$alerts" = "$want" ] && break
    [ $SECONDS -lt $end ] || fail "after the agents exited, alerts: '$alerts', expected: '$want'"
    sleep 0.5
done

# packets/s per source shows each source (once two scrapes have seen it)
end=$((SECONDS + 20))
while :; do
    rate=$(query 'sum by (source) (rate(tapmesh_collect_source_packets_total[1m]))' | cut -d' ' -f1)
    [ "$rate" = "source=capture-a
source=capture-b
source=latecomer" ] && break
    [ $SECONDS -lt $end ] || fail "packets/s per source shows: $rate"
    sleep 0.5
done
dashboard_runs "after the agents finished"

if grep -Ei 'level=(error|warn)' "$WORK/prometheus.log" | grep -v 'not ready' >"$WORK/prom-errors"; then
    fail "Prometheus logged: $(cat "$WORK/prom-errors")"
fi
for s in relay-site relay-core collect; do
    stop "$s"
    [ "$RC" = 0 ] || fail "$s exited $RC"
done
# and the file holds what Prometheus counted
n=$(tcpdump -nn -r "$WORK/out.pcapng" 2>/dev/null | wc -l)
[ "$n" = $((2 * sent + 1)) ] || fail "the output holds $n packets, Prometheus counted $((2 * sent + 1))"
log "ok"
