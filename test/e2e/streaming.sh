#!/usr/bin/env bash
# `tapmesh-collect | tcpdump -r -` is a live view: during a recorded-speed
# replay, every packet is printed by tcpdump within a second of its
# capture (the moment the replay reaches it), never only at exit.
. "$(dirname "$0")/lib.sh"
need tcpdump curl ss

input=$DATA/sample-ether.pcap
pick_port; port=$PORT
pick_port; mport=$PORT
mkfifo "$WORK/pipe" "$WORK/lines"
IN_FROM=$WORK/lines start stamp -- "$TOOLS/linestamp"
OUT_TO=$WORK/lines start tcpdump -- tcpdump -l -nn -r "$WORK/pipe"
OUT_TO=$WORK/pipe start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port \
    METRICS_ADDRPORT=127.0.0.1:$mport -- "$COLLECT"
wait_listening "$mport" 10
sleep 1.2 # past the collector's start-up wait (STARTUP_WAIT_MS), as for a collector already running
t0=$(date +%s%N)
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=edge \
    READ_FILE=$input REPLAY_SPEED=1 -- "$CAPTURE"
expect_exit capture 30 0
sleep 0.2
n=$(wc -l <"$WORK/stamp.out")
[ "$n" = 800 ] || fail "tcpdump printed $n lines while the collector runs, expected 800"
# when each packet was due: t0 + its offset in the capture
tcpdump --time-stamp-precision=nano -tt -nn -r "$input" 2>/dev/null | awk '{print $1}' |
    tr -d . >"$WORK/ts.txt"
paste -d' ' "$WORK/ts.txt" <(awk '{print $1}' "$WORK/stamp.out") |
    awk -v t0="$t0" 'NR == 1 {first = $1}
        { late = ($2 - t0) - ($1 - first); if (late > worst) worst = late }
        END { printf "%d\n", worst / 1000000 }' >"$WORK/worst.txt"
worst=$(cat "$WORK/worst.txt")
[ "$worst" -lt 1000 ] || fail "a packet was printed $worst ms after its capture"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
log "ok: every packet printed by tcpdump at most $worst ms after its capture"
