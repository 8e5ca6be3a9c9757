# lib.sh — helpers for the end-to-end tests: start the real binaries in the
# background, wait for them, read their /metrics, compare captures, clean up.
# Sourced by test/e2e/*.sh; ctest sets TAPMESH_BIN, TAPMESH_TOOLS and
# TAPMESH_DATA. Exit status 77 means "skipped".

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=${TAPMESH_BIN:-$root/build/services}
TOOLS=${TAPMESH_TOOLS:-$root/build/test}
DATA=${TAPMESH_DATA:-$root/test/data}
# ... and not passed on to the binaries, which would warn that TAPMESH_BIN
# and the others are no settings of theirs.
export -n TAPMESH_BIN TAPMESH_TOOLS TAPMESH_DATA
CAPTURE=$BIN/capture/tapmesh-capture
RELAY=$BIN/relay/tapmesh-relay
COLLECT=$BIN/collect/tapmesh-collect
PKTCMP=$TOOLS/pktcmp
# binaries built with AddressSanitizer use several times the memory
SANITIZED=$(ldd "$CAPTURE" 2>/dev/null | grep -c libasan || true) # not -q: ldd must not die of SIGPIPE
[ "$SANITIZED" != 0 ] || SANITIZED=

WORK=$(mktemp -d /tmp/tapmesh-e2e.XXXXXX)
export DLQ_DIR=$WORK/dlq # capture agents' dead letters stay in the test's directory
declare -A PIDS=()
TEST_NAME=$(basename "$0" .sh)

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }

dump_logs() {
    for f in "$WORK"/*.log; do
        [ -e "$f" ] || continue
        echo "----- $(basename "$f") (last 30 lines)"
        tail -n 30 "$f"
    done
}

# commands run at exit, after the processes are stopped (e.g. deleting a
# network namespace): at_exit "ip netns del x"
AT_EXIT=()
at_exit() { AT_EXIT+=("$*"); }

cleanup() {
    local rc=$?
    for name in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$name]}" 2>/dev/null || true
    done
    sleep 0.2
    for name in "${!PIDS[@]}"; do
        kill -KILL "${PIDS[$name]}" 2>/dev/null || true
    done
    for cmd in "${AT_EXIT[@]}"; do
        eval "$cmd" >/dev/null 2>&1 || true
    done
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        dump_logs
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT

# cmd | has PATTERN: grep -q on everything cmd writes. (A plain `| grep -q`
# exits at the first match; a writer that still has output then dies of
# SIGPIPE, and with pipefail the whole test fails at random.)
has() {
    local text
    text=$(cat)
    grep -q -- "$1" <<<"$text"
}

fail() {
    echo "[$TEST_NAME] FAIL: $*" >&2
    exit 1
}

skip() {
    echo "[$TEST_NAME] SKIP: $*"
    exit 77
}

need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || skip "$tool is not installed (run scripts/install-deps.sh)"
    done
}

# A TCP port nobody listens on, away from the ephemeral range, and not
# handed out before in this test (several are taken before anything binds).
# Each test draws from a band of its own (its place among the scripts), so
# that tests running side by side never pick the same port between one's
# check and its bind. Not in a $(...) subshell: the list of ports handed out
# must persist.
TAKEN_PORTS=" "
PORT=
PORT_BAND=$(find "$here" -maxdepth 1 -name '*.sh' ! -name lib.sh | sort | grep -n "/$TEST_NAME\.sh\$" | cut -d: -f1 || true)
PORT_BASE=$((20000 + (${PORT_BAND:-0} % 48) * 250))
PORT_SPAN=250
# a range of one's own on a shared machine: TAPMESH_PORTS=FIRST-LAST
if [[ ${TAPMESH_PORTS:-} =~ ^([0-9]+)-([0-9]+)$ ]]; then
    PORT_BASE=${BASH_REMATCH[1]}
    PORT_SPAN=$((BASH_REMATCH[2] - BASH_REMATCH[1] + 1))
fi
export -n TAPMESH_PORTS
pick_port() {
    for _ in $(seq 1 200); do
        PORT=$((PORT_BASE + RANDOM % PORT_SPAN))
        case "$TAKEN_PORTS" in *" $PORT "*) continue ;; esac
        if ! ss -Htan 2>/dev/null | awk '{print $4}' | has ":$PORT\$"; then
            TAKEN_PORTS="$TAKEN_PORTS$PORT "
            return
        fi
    done
    fail "no free port"
}

# free_port: the same, printed (for $(...)): the shell's RANDOM state is
# advanced here, so successive calls differ; the list guards within one
# shell only, so prefer pick_port where several ports are taken at once.
free_port() {
    pick_port
    echo "$PORT"
}

# start NAME VAR=value... -- COMMAND ARGS...
# stdout goes to $WORK/NAME.out, or to $OUT_TO when set (OUT_TO=FILE start ...);
# stdin comes from $IN_FROM when set, else /dev/null.
start() {
    local name=$1
    shift
    local envs=()
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    env "${envs[@]}" "$@" >"${OUT_TO:-$WORK/$name.out}" 2>"$WORK/$name.log" \
        <"${IN_FROM:-/dev/null}" &
    PIDS[$name]=$!
}

# wait_exit NAME TIMEOUT_S: waits for NAME to exit; its status goes to RC.
# (Not in a $(...) subshell: only this shell can wait for its children.)
RC=
wait_exit() {
    local name=$1 timeout=$2 pid=${PIDS[$1]}
    local end=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt $end ] || fail "$name still running after ${timeout}s"
        sleep 0.05
    done
    RC=0
    wait "$pid" || RC=$?
    unset "PIDS[$name]"
}

# expect_exit NAME TIMEOUT_S STATUS: waits, and fails unless NAME exits with STATUS.
expect_exit() {
    wait_exit "$1" "$2"
    [ "$RC" = "$3" ] || fail "$1 exited with status $RC, expected $3"
}

# stop NAME [SIGNAL]: signals NAME (TERM by default) and waits; status in RC.
stop() {
    kill -"${2:-TERM}" "${PIDS[$1]}" 2>/dev/null || true
    wait_exit "$1" 20
}

# metrics PORT: the /metrics text of the service on PORT; with METRICS_NS
# set (METRICS_NS=ns metric ...), of the one in network namespace ns.
metrics() {
    ${METRICS_NS:+ip netns exec "$METRICS_NS"} curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics"
}

# metric PORT NAME_WITH_LABELS: one sample's value ("" when absent).
metric() {
    metrics "$1" | awk -v n="$2" '$1 == n {print $2}'
}

# wait_metric PORT NAME VALUE TIMEOUT_S
wait_metric() {
    local end=$((SECONDS + $4)) v=""
    while [ $SECONDS -lt $end ]; do
        v=$(metric "$1" "$2" 2>/dev/null || true)
        [ "$v" = "$3" ] && return 0
        sleep 0.1
    done
    fail "metric $2 on port $1${METRICS_NS:+ in $METRICS_NS} is '$v', expected '$3' within $4 s"
}

# wait_listening PORT TIMEOUT_S
wait_listening() {
    local end=$((SECONDS + $2))
    until curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$1/metrics" 2>/dev/null; do
        [ $SECONDS -lt $end ] || fail "nothing answers /metrics on port $1"
        sleep 0.05
    done
}

# promcheck PORT: /metrics passes `promtool check metrics`.
promcheck() {
    local out
    if ! out=$(metrics "$1" | promtool check metrics 2>&1); then
        fail "promtool check metrics on port $1: $out"
    fi
}

# same_packets [--ignore-ts] EXPECTED ACTUAL: packet for packet, via libpcap.
same_packets() {
    "$PKTCMP" "$@" >"$WORK/pktcmp.txt" 2>&1 || fail "$(cat "$WORK/pktcmp.txt")"
}

# same_packets_sorted EXPECTED ACTUAL: the same packets, once each, in any
# order (ACTUAL is sorted by timestamp first: a dead-letter replay is
# written after the packets that followed it).
same_packets_sorted() {
    reordercap "$2" "$2.sorted" >/dev/null 2>&1 || fail "reordercap $2 failed"
    same_packets "$1" "$2.sorted"
}

# out_of_order FILE: how many packets of FILE come after a packet with a
# later timestamp (what tapmesh_collect_late_packets_total counts). The
# timestamps compare as strings: fixed width, and beyond a double's digits.
out_of_order() {
    { tcpdump --time-stamp-precision=nano -tt -nn -r "$1" 2>/dev/null || true; } |
        awk '{ t = $1 ""; if (t < max) n++; else max = t } END { print n + 0 }'
}

# readers_accept FILE COUNT: tcpdump, tshark and capinfos read FILE without
# a warning and see COUNT packets; tcpdump's view (what libpcap sees) is
# written to FILE.tcpdump.pcap for comparison.
readers_accept() {
    local f=$1 count=$2 err n
    err=$(tcpdump --time-stamp-precision=nano -r "$f" -w "$f.tcpdump.pcap" 2>&1 >/dev/null |
        grep -v '^reading from file' || true)
    [ -z "$err" ] || fail "tcpdump -r $f: $err"
    n=$(tcpdump -nn -r "$f.tcpdump.pcap" 2>/dev/null | wc -l)
    [ "$n" = "$count" ] || fail "tcpdump sees $n packets in $f, expected $count"
    err=$(tshark -n -r "$f" 2>&1 >"$WORK/tshark.txt" | grep -v 'Running as user "root"' || true)
    [ -z "$err" ] || fail "tshark -r $f: $err"
    n=$(wc -l <"$WORK/tshark.txt")
    [ "$n" = "$count" ] || fail "tshark sees $n packets in $f, expected $count"
    err=$(capinfos -M "$f" 2>&1 >"$WORK/capinfos.txt" || echo "capinfos failed")
    [ -z "$err" ] || fail "capinfos $f: $err"
    grep -q "Number of packets:[[:space:]]*$count\$" "$WORK/capinfos.txt" ||
        fail "capinfos $f: $(grep 'Number of packets' "$WORK/capinfos.txt")"
}
