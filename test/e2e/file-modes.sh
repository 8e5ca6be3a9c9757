#!/usr/bin/env bash
# Files hold captured packets, so they are not for everyone (issue
# "Security" 5): after a run with umask 022, the collector's output is 0640,
# its journal 0600, the agent's resume state and dead letters 0600, and
# every directory tapmesh created (STATE_DIR, DLQ_DIR and their missing
# parents) 0750. The packets are still all there.
. "$(dirname "$0")/lib.sh"
need curl ss

umask 022
input=$DATA/sample-ether.pcap
pick_port; port=$PORT
pick_port; mport=$PORT
pick_port; nowhere=$PORT # nobody listens: dead letters

start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out.pcapng STATE_DIR=$WORK/collect-state STARTUP_WAIT_MS=0 -- "$COLLECT"
wait_listening "$mport" 10
start sent RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=sent \
    READ_FILE=$input STATE_DIR=$WORK/agent/state DLQ_DIR=$WORK/agent/dlq -- "$CAPTURE"
expect_exit sent 60 0
wait_metric "$mport" 'tapmesh_collect_source_packets_total{source="sent"}' 800 10
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
start lost RELAY_ENDPOINT=tcp://127.0.0.1:$nowhere METRICS_ADDRPORT= NODE_ID=lost \
    READ_FILE=$input RETRY_TIMEOUT_S=1 ACK_TIMEOUT_MS=200 DLQ_DIR=$WORK/dead/letters -- "$CAPTURE"
expect_exit lost 30 1

dead=("$WORK"/dead/letters/lost-*.pcapng)
[ ${#dead[@]} = 1 ] && [ -f "${dead[0]}" ] || fail "expected one dead-letter file: ${dead[*]}"
same_packets "$input" "$WORK/out.pcapng"
same_packets "$input" "${dead[0]}"

# expect_mode MODE PATH...
expect_mode() {
    local want=$1 got p
    shift
    for p in "$@"; do
        [ -e "$p" ] || fail "$p does not exist"
        got=$(stat -c %a "$p")
        [ "$got" = "$want" ] || fail "$p has mode $got, expected $want"
    done
}
expect_mode 640 "$WORK/out.pcapng"
expect_mode 600 "$WORK/collect-state/journal" "$WORK/agent/state/sent.resume" "${dead[0]}"
expect_mode 750 "$WORK/collect-state" "$WORK/agent" "$WORK/agent/state" "$WORK/agent/dlq" \
    "$WORK/dead" "$WORK/dead/letters"
# nothing else in those directories is wider than its kind
for f in "$WORK"/collect-state/* "$WORK"/agent/state/* "$WORK"/dead/letters/*; do
    m=$(stat -c %a "$f")
    [ "$m" = 600 ] || fail "$f has mode $m"
done
log "ok: output 640, journal, resume state and dead letters 600, directories 750"
