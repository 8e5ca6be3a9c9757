#!/usr/bin/env bash
# deploy/grafana: the dashboard (Grafana itself is not packaged here, so it
# is checked statically). It is valid JSON with a Prometheus datasource
# variable that every panel and query uses; every PromQL expression in it
# parses (promtool check rules, each expression a recording rule's) and names
# only metrics a running pipeline exports: capture (live, on lo, so that the
# kernel's counters are there) -> relay -> collect on loopback, their three
# /metrics scraped. The alerting rules are held to the same names (plus
# Prometheus's own `up`). The checker is shown to catch a misspelt metric and
# an expression that does not parse. The provisioning files point where the
# compose lab mounts them.
. "$(dirname "$0")/lib.sh"
need promtool jq perl curl ss
[ "$(id -u)" = 0 ] || skip "live capture on lo needs root: the kernel-drop panels name metrics only a live agent exports"

dashboard=$root/deploy/grafana/dashboards/tapmesh.json
rules=$root/deploy/prometheus/rules.yml
provisioning=$root/deploy/grafana/provisioning
[ -f "$dashboard" ] || fail "$dashboard is missing"

# --- the pipeline, and the metric names it exports -----------------------
pick_port; data=$PORT
pick_port; hop=$PORT
pick_port; m_collect=$PORT
pick_port; m_relay=$PORT
pick_port; m_capture=$PORT
pick_port; udp=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$data METRICS_ADDRPORT=127.0.0.1:$m_collect \
    OUTPUT=$WORK/out.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
start relay COLLECT_ENDPOINT=tcp://127.0.0.1:$hop RELAY_ENDPOINT=tcp://127.0.0.1:$data \
    METRICS_ADDRPORT=127.0.0.1:$m_relay NODE_ID=dash-relay -- "$RELAY"
start capture DEVICE=lo FILTER="udp dst port $udp and dst host 127.0.0.1" \
    RELAY_ENDPOINT=tcp://127.0.0.1:$hop METRICS_ADDRPORT=127.0.0.1:$m_capture NODE_ID=dash-live \
    -- "$CAPTURE"
end=$((SECONDS + 20))
until grep -q "live capture on lo" "$WORK/capture.log"; do
    [ $SECONDS -lt $end ] || fail "the live agent did not start capturing on lo"
    kill -0 "${PIDS[capture]}" 2>/dev/null || fail "the live agent exited"
    sleep 0.05
done
wait_listening "$m_collect" 20
wait_listening "$m_relay" 20
wait_listening "$m_capture" 20
for i in 1 2 3 4 5; do
    printf 'tapmesh dashboard check %d' "$i" >"/dev/udp/127.0.0.1/$udp"
done
# every packet through to the output, per source, and acknowledged
wait_metric "$m_collect" 'tapmesh_collect_source_packets_total{source="dash-live"}' 5 20
wait_metric "$m_capture" tapmesh_capture_packets_total 5 20
for port in $m_capture $m_relay $m_collect; do
    metrics "$port" >"$WORK/metrics.$port"
done
# the sample names: a histogram's as _bucket, _sum and _count
cat "$WORK"/metrics.* | awk '!/^#/ && NF { sub(/[{ ].*/, "", $1); print $1 }' | sort -u >"$WORK/exported"
for name in tapmesh_capture_kernel_dropped_packets_total tapmesh_relay_hop_latency_seconds_bucket \
    tapmesh_collect_source_packets_total; do
    grep -qx "$name" "$WORK/exported" || fail "the pipeline does not export $name"
done
log "the pipeline exports $(wc -l <"$WORK/exported") metric names"

# --- the checker --------------------------------------------------------
# exprs DASHBOARD: its PromQL expressions, one a line, with Grafana's
# interval variables given a value as Grafana would
exprs() {
    jq -r '[.. | objects | select(has("expr")) | .expr] | .[]' "$1" |
        sed -e 's/\$__rate_interval/1m/g; s/\$__interval/15s/g; s/\$__range/1h/g'
}
# metric_names: the metric names in the expressions on stdin, one a line.
# Strings, label matchers, ranges, label lists and numbers are left out;
# a name followed by "(" is a function or an aggregation.
metric_names() {
    perl -ne '
        s/"(?:[^"\\]|\\.)*"|'"'"'(?:[^'"'"'\\]|\\.)*'"'"'|`[^`]*`//g;
        s/\{[^}]*\}//g;
        s/\[[^\]]*\]//g;
        s/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)//g;
        s/\b(?:group_left|group_right)\b//g;
        s/\boffset\s+-?[0-9a-z]+//g;
        s/@\s*(?:start\(\)|end\(\)|[0-9.]+)//g;
        s/(?<![A-Za-z0-9_:])(?:0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)//g;
        while (/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g) {
            next if defined $2;
            next if $1 =~ /^(?:and|or|unless|bool|inf|nan)$/i;
            print "$1\n";
        }' | sort -u
}
# check_dashboard FILE: 0, or 1 with the reason on stdout
check_dashboard() {
    local f=$1 out n names unknown
    jq -e . "$f" >/dev/null 2>&1 || { echo "not valid JSON"; return 1; }
    exprs "$f" >"$WORK/exprs"
    n=$(grep -c . "$WORK/exprs" || true)
    [ "$n" -gt 0 ] || { echo "no PromQL expression"; return 1; }
    if grep -n '\$' "$WORK/exprs" >"$WORK/vars"; then
        echo "expressions use variables this check does not know: $(cat "$WORK/vars")"
        return 1
    fi
    # each expression a recording rule: promtool parses them all
    {
        echo "groups:"
        echo "  - name: dashboard"
        echo "    rules:"
        awk '{ gsub(/'"'"'/, "'"''"'"); printf "      - record: dashboard_expr_%d\n        expr: '"'"'%s'"'"'\n", NR, $0 }' "$WORK/exprs"
    } >"$WORK/dashboard-rules.yml"
    if ! out=$(promtool check rules "$WORK/dashboard-rules.yml" 2>&1); then
        echo "an expression does not parse: $out"
        return 1
    fi
    printf '%s\n' "$out" | has "SUCCESS: $n rules found" || { echo "promtool: $out"; return 1; }
    names=$(metric_names <"$WORK/exprs")
    unknown=$(comm -23 <(printf '%s\n' "$names") "$WORK/exported")
    [ -z "$unknown" ] || { echo "names metrics the pipeline does not export: $unknown"; return 1; }
}

# --- the dashboard ------------------------------------------------------
if ! why=$(check_dashboard "$dashboard"); then
    fail "$dashboard: $why"
fi
names=$(exprs "$dashboard" | metric_names)
log "$(exprs "$dashboard" | wc -l) expressions parse and name $(grep -c . <<<"$names") metrics, all exported"
# what the panels must show
for name in tapmesh_collect_source_packets_total tapmesh_capture_kernel_dropped_packets_total \
    tapmesh_capture_batches_resent_total tapmesh_capture_batches_dead_lettered_total \
    tapmesh_collect_late_packets_total tapmesh_collect_merge_queued_packets \
    tapmesh_relay_hop_latency_seconds_bucket tapmesh_capture_next_hop_up tapmesh_relay_next_hop_up \
    tapmesh_collect_output_bytes_total tapmesh_relay_auth_failures_total \
    tapmesh_collect_auth_failures_total tapmesh_relay_sources_refused_total \
    tapmesh_collect_sources_refused_total; do
    grep -qx "$name" <<<"$names" || fail "no panel shows $name"
done
exprs "$dashboard" | grep -q '^histogram_quantile(0\.99, .*tapmesh_relay_hop_latency_seconds_bucket' ||
    fail "no panel shows a quantile of the hop latency"
grep -q 'sum by (source) (rate(tapmesh_collect_source_packets_total' <(exprs "$dashboard") ||
    fail "no panel shows packets/s per source"

# a Prometheus datasource variable, used by every panel and query
jq -e '[.templating.list[] | select(.name == "datasource" and .type == "datasource" and .query == "prometheus")] | length == 1' \
    "$dashboard" >/dev/null || fail "no Prometheus datasource variable named datasource"
bad=$(jq -r '.. | objects | select(has("targets")) | . as $p |
    ([$p.datasource] + [$p.targets[].datasource])[] | select(.uid != "${datasource}" or .type != "prometheus") |
    $p.title' "$dashboard" | sort -u)
[ -z "$bad" ] || fail "panels not on the \${datasource} variable: $bad"
empty=$(jq -r '.panels[] | select(.type != "row") | select((.targets // []) | map(select(.expr != "")) | length == 0) | .title' \
    "$dashboard")
[ -z "$empty" ] || fail "panels without a query: $empty"
dup=$(jq -r '[.. | objects | select(has("gridPos")) | .id] | group_by(.) | map(select(length > 1)[0]) | .[]' "$dashboard")
[ -z "$dup" ] || fail "panel ids used twice: $dup"
jq -e '.uid == "tapmesh" and .title == "tapmesh"' "$dashboard" >/dev/null || fail "the dashboard's uid or title changed"

# --- the alerting rules: the same names, and up ---------------------------
awk '
    skip && match($0, /^ */) && RLENGTH > indent { printf " %s", $0; next }
    skip { print ""; skip = 0 }
    match($0, /^ *expr:/) {
        indent = RLENGTH - 5; rest = substr($0, RLENGTH + 1)
        if (rest ~ /^ *[>|]-? *$/) { skip = 1 } else { print rest }
    }' "$rules" >"$WORK/rule-exprs"
[ "$(grep -c . "$WORK/rule-exprs")" = "$(grep -c '^ *- alert:' "$rules")" ] || fail "could not read every rule's expression"
unknown=$(metric_names <"$WORK/rule-exprs" | grep -vx up | comm -23 - "$WORK/exported")
[ -z "$unknown" ] || fail "rules.yml names metrics the pipeline does not export: $unknown"

# --- the checker catches what it is there for ------------------------------
jq '(.. | objects | select(has("expr")) | .expr) |= sub("tapmesh_collect_late_packets_total"; "tapmesh_collect_late_packet_total")' \
    "$dashboard" >"$WORK/misspelt.json"
why=$(check_dashboard "$WORK/misspelt.json") && fail "a misspelt metric name passes the check"
has tapmesh_collect_late_packet_total <<<"$why" || fail "a misspelt metric name: '$why'"
jq '(.. | objects | select(has("expr")) | .expr) |= sub("\\(tapmesh_relay_hop_latency"; "tapmesh_relay_hop_latency")' \
    "$dashboard" >"$WORK/unparsable.json"
why=$(check_dashboard "$WORK/unparsable.json") && fail "an expression that does not parse passes the check"
has "does not parse" <<<"$why" || fail "an unparsable expression: '$why'"
jq '(.. | objects | select(has("expr")) | .expr) |= sub("\\[\\$__rate_interval\\]"; "[$window]")' \
    "$dashboard" >"$WORK/variable.json"
why=$(check_dashboard "$WORK/variable.json") && fail "an unknown variable passes the check"
has 'variables this check does not know' <<<"$why" || fail "an unknown variable: '$why'"

# --- provisioning: where the compose lab mounts things ---------------------
ds=$provisioning/datasources/prometheus.yml
grep -Eq '^ +type: prometheus$' "$ds" || fail "$ds: no Prometheus datasource"
grep -Eq '^ +url: http://prometheus:9090$' "$ds" || fail "$ds: not http://prometheus:9090"
dp=$provisioning/dashboards/tapmesh.yml
grep -Eq '^ +type: file$' "$dp" || fail "$dp: not a file provider"
grep -Eq '^ +path: /var/lib/grafana/dashboards$' "$dp" || fail "$dp: not /var/lib/grafana/dashboards"

stop capture
[ "$RC" = 0 ] || fail "the live agent exited $RC"
log "ok"
