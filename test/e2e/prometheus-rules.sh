#!/usr/bin/env bash
# deploy/prometheus: the scrape configuration and the alerting rules pass
# promtool (check config, check rules, test rules), every alert carries a
# severity and a summary and description, and rules_test.yml really tests
# every alert both ways: with each alert's expression made never to fire,
# the tests must fail for each alert where it should fire, and with each
# made always to fire, where it should stay silent.
. "$(dirname "$0")/lib.sh"
need promtool awk

dir=$root/deploy/prometheus
for f in prometheus.yml rules.yml rules_test.yml; do
    [ -f "$dir/$f" ] || fail "$dir/$f is missing"
done

out=$(promtool check config "$dir/prometheus.yml" 2>&1) || fail "promtool check config: $out"
out=$(promtool check rules "$dir/rules.yml" 2>&1) || fail "promtool check rules: $out"
alerts=$(awk '$1 == "-" && $2 == "alert:" {print $3}' "$dir/rules.yml")
nalerts=$(printf '%s\n' "$alerts" | grep -c .)
printf '%s\n' "$out" | has "SUCCESS: $nalerts rules found" ||
    fail "promtool check rules found other than the $nalerts alerts: $out"
out=$(promtool test rules "$dir/rules_test.yml" 2>&1) || fail "promtool test rules: $out"

# the compose lab's five services on their metrics ports, every 5 s, with the
# rules; job names the rules and the dashboard rely on
for target in capture-a:9710 capture-b:9710 relay-site:9711 relay-core:9711 collect:9712; do
    grep -q "\"$target\"" "$dir/prometheus.yml" || fail "prometheus.yml does not scrape $target"
done
for job in tapmesh-capture tapmesh-relay tapmesh-collect; do
    grep -q "job_name: $job\$" "$dir/prometheus.yml" || fail "prometheus.yml has no job $job"
done
grep -q '^  scrape_interval: 5s$' "$dir/prometheus.yml" || fail "prometheus.yml: scrape_interval is not 5s"

# each alert: a severity label, a summary and a description
for a in $alerts; do
    block=$(awk -v a="$a" '$1 == "-" && $2 == "alert:" {on = ($3 == a)} on' "$dir/rules.yml")
    for key in 'severity: (critical|warning|info)$' 'summary: ' 'description: '; do
        grep -Eq "^ +$key" <<<"$block" || fail "alert $a has no ${key%%:*}"
    done
done

# mutate EXPR: rules.yml with every alert's expression replaced by EXPR
mutate() {
    awk -v repl="$1" '
        skip && match($0, /^ */) && RLENGTH > indent { next }
        { skip = 0 }
        match($0, /^ *expr:/) {
            indent = RLENGTH - 5
            printf "%sexpr: %s\n", substr($0, 1, indent), repl
            skip = 1
            next
        }
        { print }' "$dir/rules.yml"
}
# failing_alerts KIND: the alerts promtool's output names in a failure whose
# expected alerts were none (KIND=silent) or some (KIND=firing)
failing_alerts() {
    awk -v kind="$1" '
        match($0, /alertname: [A-Za-z0-9_]+/) { name = substr($0, RSTART + 11, RLENGTH - 11) }
        /^ *exp:\[\], *$/ && name != "" { if (kind == "silent") print name; name = "" }
        /^ *exp:\[ *$/ && name != "" { if (kind == "firing") print name; name = "" }' | sort -u
}
mkdir "$WORK/mutant"
cp "$dir/rules_test.yml" "$WORK/mutant/"
for m in never:firing always:silent; do
    case ${m%%:*} in
    never) mutate 'vector(1) < 0' >"$WORK/mutant/rules.yml" ;;
    always) mutate 'vector(1)' >"$WORK/mutant/rules.yml" ;;
    esac
    [ "$(grep -c '^ *expr: ' "$WORK/mutant/rules.yml")" = "$nalerts" ] || fail "mutation lost an alert"
    out=$(cd "$WORK/mutant" && promtool check rules rules.yml 2>&1) || fail "mutated rules do not load: $out"
    if out=$(cd "$WORK/mutant" && promtool test rules rules_test.yml 2>&1); then
        fail "rules_test.yml passes with every alert's expression replaced by the '${m%%:*}' one"
    fi
    seen=$(failing_alerts "${m#*:}" <<<"$out")
    for a in $alerts; do
        grep -qx "$a" <<<"$seen" ||
            fail "rules_test.yml has no case where $a must be ${m#*:} that fails when it is ${m%%:*} firing"
    done
done
log "ok: $nalerts alerts, each tested firing and silent"
