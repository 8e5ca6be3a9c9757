#!/usr/bin/env bash
# The HTTP side of a service (the collector here; all three share it):
# GET /healthz, the standard process metrics, and a scrape answered within
# 2 s while 3000 idle connections stay open, the service's own sockets
# unharmed. The collector runs with a soft limit of 1024 descriptors (what
# systemd gives a service), so an HTTP server that takes one descriptor per
# idle connection would leave its ZeroMQ socket none.
. "$(dirname "$0")/lib.sh"
need curl ss

IDLE=3000
ulimit -Sn 4096 2>/dev/null || skip "cannot raise the open files limit to 4096 (hard limit $(ulimit -Hn))"

input=$DATA/sample-ether.pcap
pick_port; data_port=$PORT
pick_port; http_port=$PORT
url=http://127.0.0.1:$http_port
started=$(date +%s)
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$data_port METRICS_ADDRPORT=127.0.0.1:$http_port \
    OUTPUT=$WORK/out.pcapng -- bash -c 'ulimit -Sn 1024 && exec "$@"' limit "$COLLECT"
wait_listening "$http_port" 20
pid=${PIDS[collect]}

# /healthz: a service whose loop has not stalled answers 200 "ok"
body=$(curl -fsS --max-time 2 "$url/healthz") || fail "/healthz did not answer 200"
[ "$body" = ok ] || fail "/healthz said '$body'"
status=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$url/nothing-here")
[ "$status" = 404 ] || fail "GET /nothing-here: $status, expected 404"

# the standard process metrics, unprefixed, typed, and this process's own
text=$(metrics "$http_port")
for family in process_cpu_seconds_total:counter process_resident_memory_bytes:gauge \
    process_virtual_memory_bytes:gauge process_open_fds:gauge process_max_fds:gauge \
    process_start_time_seconds:gauge; do
    printf '%s\n' "$text" | has "^# TYPE ${family%:*} ${family#*:}\$" || fail "no TYPE line for $family"
done
printf '%s\n' "$text" | has "process_start_time_seconds" || fail "no start time"
if printf '%s\n' "$text" | grep -q '^tapmesh_collect_process_'; then
    fail "the old prefixed process metrics are still there"
fi
value() { printf '%s\n' "$text" | awk -v n="$1" '$1 == n {print $2}'; }
[ "$(value process_max_fds)" = 1024 ] || fail "process_max_fds $(value process_max_fds), expected 1024"
fds=$(ls "/proc/$pid/fd" | wc -l)
open_fds=$(value process_open_fds)
[ "$((open_fds - fds))" -le 2 ] && [ "$((fds - open_fds))" -le 2 ] ||
    fail "process_open_fds $open_fds, /proc/$pid/fd holds $fds"
[ "$(value process_resident_memory_bytes)" -gt 0 ] 2>/dev/null ||
    fail "process_resident_memory_bytes '$(value process_resident_memory_bytes)'"
start_s=$(value process_start_time_seconds)
awk -v s="$start_s" -v a="$started" -v b="$(date +%s)" 'BEGIN { exit !(s >= a - 1 && s <= b + 1) }' ||
    fail "process_start_time_seconds $start_s, started between $started and $(date +%s)"
if command -v promtool >/dev/null; then promcheck "$http_port"; fi

# 3000 connections that never send a request
log "opening $IDLE idle connections"
idle=()
for _ in $(seq 1 "$IDLE"); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$http_port" || fail "connection ${#idle[@]} refused"
    idle+=("$fd")
done

# while they stay open: a scrape and a probe, each within 2 s
begin=$(date +%s%N)
scrape=$(curl -fsS --max-time 2 "$url/metrics") ||
    fail "no /metrics within 2 s while $IDLE idle connections are open"
log "scrape answered in $((($(date +%s%N) - begin) / 1000000)) ms"
printf '%s\n' "$scrape" | has '^tapmesh_collect_build_info{' || fail "the scrape lacks build_info"
body=$(curl -fsS --max-time 2 "$url/healthz") ||
    fail "no /healthz within 2 s while $IDLE idle connections are open"
[ "$body" = ok ] || fail "/healthz said '$body'"

# the HTTP server holds a share of the descriptors, not all of them
fds=$(ls "/proc/$pid/fd" | wc -l)
log "the collector holds $fds descriptors with $IDLE idle connections open"
[ "$fds" -le 320 ] || fail "the collector holds $fds of its 1024 descriptors"

# and the collector still does its work: a capture agent joins, sends a
# file and has every batch acknowledged, while the idle connections stay
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$data_port METRICS_ADDRPORT= NODE_ID=edge1 \
    READ_FILE=$input -- "$CAPTURE"
expect_exit capture 60 0
curl -fsS --max-time 2 -o /dev/null "$url/metrics" || fail "no /metrics after the capture"
for fd in "${idle[@]}"; do exec {fd}>&-; done
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$input" "$WORK/out.pcapng"
log "ok"
