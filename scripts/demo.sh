#!/bin/sh
# The demo, from a fresh clone on Debian 12: installs what is missing,
# builds, then replays the sample capture shipped in test/data through
#   tapmesh-capture → tapmesh-relay → tapmesh-collect | tcpdump -r - -nn
# on this machine's loopback, and exits once everything is acknowledged.
#
#   scripts/demo.sh [CAPTURE_FILE]
#
# DEMO_NO_SETUP=1 skips the install and build (BUILD_DIR: where the
# binaries are, default build).
set -eu
cd "$(dirname "$0")/.."
input=${1:-test/data/sample-ether.pcap}
build=${BUILD_DIR:-build}

if [ -z "${DEMO_NO_SETUP:-}" ]; then
    scripts/install-deps.sh
    cmake -S . -B "$build" >/dev/null
    cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
bin=$build/services
collect_port=${DEMO_COLLECT_PORT:-5710}
relay_port=${DEMO_RELAY_PORT:-5711}
logs=$(mktemp -d /tmp/tapmesh-demo.XXXXXX)
m_capture=127.0.0.1:9710 m_relay=127.0.0.1:9711 m_collect=127.0.0.1:9712
[ -z "${DEMO_NO_METRICS:-}" ] || m_capture="" m_relay="" m_collect=""

echo "demo: $input → capture → relay (:$relay_port) → collect (:$collect_port) | tcpdump -r - -nn" >&2
echo "demo: service logs in $logs" >&2

# the collector writes pcapng on its standard output, straight into tcpdump
# (through a named pipe, so that the collector's own pid is at hand)
mkfifo "$logs/pipe"
tcpdump -r - -nn <"$logs/pipe" &
reader=$!
COLLECT_ENDPOINT=tcp://127.0.0.1:$collect_port METRICS_ADDRPORT=$m_collect NODE_ID=collector \
    "$bin/collect/tapmesh-collect" 2>"$logs/collect.log" >"$logs/pipe" &
collect=$!
COLLECT_ENDPOINT=tcp://127.0.0.1:$relay_port RELAY_ENDPOINT=tcp://127.0.0.1:$collect_port \
    METRICS_ADDRPORT=$m_relay NODE_ID=relay "$bin/relay/tapmesh-relay" 2>"$logs/relay.log" &
relay=$!

status=0
RELAY_ENDPOINT=tcp://127.0.0.1:$relay_port METRICS_ADDRPORT=$m_capture NODE_ID=demo-edge \
    READ_FILE=$input DLQ_DIR=$logs/dlq "$bin/capture/tapmesh-capture" 2>"$logs/capture.log" || status=$?

# everything is acknowledged, so in the output: stop the relay and the collector
kill -TERM "$relay" "$collect" 2>/dev/null || true
wait "$relay" "$collect" 2>/dev/null || true
wait "$reader" || true
if [ "$status" != 0 ]; then
    echo "demo: tapmesh-capture exited with status $status:" >&2
    cat "$logs/capture.log" >&2
    exit 1
fi
echo "demo: $(grep -o 'done: .*' "$logs/capture.log")" >&2
rm -rf "$logs"
