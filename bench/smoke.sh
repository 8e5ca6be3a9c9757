#!/usr/bin/env bash
# bench/smoke.sh SERVICES_DIR — ctest's smoke run of the benchmark (label
# bench): bench/run --quick on the fast rows, with the build's services. It
# checks that the table prints a line for every row and that the JSON holds
# a number for every row that ran (not skipped for a missing tool). It
# asserts nothing about speed: the figures of a quick run mean little.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${1:?usage: smoke.sh SERVICES_DIR}
rows=${BENCH_SMOKE_ROWS:-pipeline,merge,relay-bytes,imix,curve,ipc,rss}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tapmesh-bench-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() {
    echo "bench smoke: FAIL: $*" >&2
    exit 1
}

"$here/run" --quick --only "$rows" --bin "$bin" --out "$tmp/out" --work "$tmp/work" \
    --port-base "${BENCH_PORT_BASE:-41500}" >"$tmp/stdout" 2>"$tmp/stderr" || {
    tail -30 "$tmp/stderr" >&2
    fail "bench/run exited non-zero"
}
cat "$tmp/stdout"

grep -q '^row  *| ours  *| reference  *| ratio  *| target' "$tmp/stdout" || fail "no table header"
json=$(ls "$tmp"/out/*.json 2>/dev/null | head -1)
[ -n "$json" ] || fail "no JSON written"
[ -s "${json%.json}.md" ] || fail "no Markdown table written"
if command -v jq >/dev/null; then
    jq empty "$json" || fail "$json is not valid JSON"
elif command -v python3 >/dev/null; then
    python3 -m json.tool "$json" >/dev/null || fail "$json is not valid JSON"
fi
for row in ${rows//,/ }; do
    grep -q "^$row  *|" "$tmp/stdout" || fail "the table has no line for $row"
    line=$(grep "{\"name\": \"$row\"," "$json") || fail "the JSON has no row $row"
    case $line in *'"skipped": true'*) echo "bench smoke: $row skipped (a tool is missing)"; continue ;; esac
    # the headline value, and for a comparison both sides' medians, are numbers
    grep -qE "\"value\": -?[0-9][0-9.e+-]*," <<<"$line" || fail "$row: no number in \"value\": $line"
    case $row in rss | latency | fanin | callgrind) ;; *)
        grep -qE "\"ours\": \{\"median\": [0-9][0-9.e+-]*," <<<"$line" || fail "$row: no median of ours: $line"
        grep -qE "\"reference\": \{\"median\": [0-9][0-9.e+-]*," <<<"$line" || fail "$row: no median of the reference: $line"
        ;;
    esac
    case $line in *'"valid": false'*) fail "$row is marked invalid: $line" ;; esac
done
echo "bench smoke: ok"
