#!/usr/bin/env bash
# Least privilege (issue "Security" 5): with RUN_AS_USER=nobody the capture
# agent opens its source as root and then runs as nobody, with no
# capability left. /proc/<pid>/task/*/status, for every thread (the metrics
# server's too): uid and gid of nobody, no supplementary group, CapInh,
# CapPrm, CapEff and CapAmb zero, NoNewPrivs 1.
#  - live: DEVICE=lo in a network namespace made by the test; UDP datagrams
#    with known payloads still arrive at the collector, byte for byte.
#  - READ_FILE: a file only root may read (so it is opened before the
#    drop); its dead letters are written as nobody into a DLQ_DIR that
#    tapmesh created as root and handed to nobody; then the same file is
#    delivered whole with a STATE_DIR that nobody uses.
# Without RUN_AS_USER, reading a file as root says so ("set RUN_AS_USER").
# A RUN_AS_USER that does not exist stops start-up (exit 2), and so does
# a DLQ_DIR the user cannot write, naming it.
# Needs root; skipped otherwise.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "dropping to another user needs root"
need ip tshark curl ss
getent passwd nobody >/dev/null || skip "no user nobody here"
uid=$(id -u nobody)
gid=$(id -g nobody)
chmod 0711 "$WORK" # nobody may pass through to what tapmesh hands it below

# dropped NAME: every thread of NAME runs as nobody without capabilities
dropped() {
    local pid=${PIDS[$1]} st n=0
    for st in /proc/"$pid"/task/*/status; do
        n=$((n + 1))
        awk -v uid="$uid" -v gid="$gid" -v f="$st" '
            $1 == "Uid:" { u = ($2 == uid && $3 == uid && $4 == uid && $5 == uid) }
            $1 == "Gid:" { g = ($2 == gid && $3 == gid && $4 == gid && $5 == gid) }
            $1 == "Groups:" { groups = NF - 1 }
            $1 ~ /^Cap(Inh|Prm|Eff|Amb):$/ { if ($2 != "0000000000000000") caps = caps " " $1 $2 }
            $1 == "NoNewPrivs:" { nnp = $2 }
            END {
                if (!u || !g || groups || caps != "" || nnp != 1) {
                    print f ": uid ok " u ", gid ok " g ", groups " groups ", caps" caps ", NoNewPrivs " nnp
                    exit 1
                }
            }' "$st" || fail "$1 did not drop its privileges: $(grep -E '^(Uid|Gid|Groups|Cap|NoNew)' "$st" | tr '\n' ' ')"
    done
    [ "$n" -ge 2 ] || fail "$1 has $n threads: the metrics server's is not there to check"
}

# wait_log NAME PATTERN TIMEOUT_S
wait_log() {
    local end=$((SECONDS + $3))
    until grep -q -- "$2" "$WORK/$1.log"; do
        [ $SECONDS -lt $end ] || fail "$1 did not log '$2': $(tail -5 "$WORK/$1.log")"
        sleep 0.05
    done
}

# ---- live, DEVICE=lo in a namespace of our own -----------------------------------
ns=tapmesh-priv-$$
ip netns add "$ns" || skip "cannot create a network namespace here"
at_exit "ip netns del $ns"
inns() { ip netns exec "$ns" "$@"; }
ip -n "$ns" link set lo up
pick_port; port=$PORT
pick_port; mport=$PORT
pick_port; udp=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= OUTPUT=$WORK/live.pcapng \
    STARTUP_WAIT_MS=0 -- ip netns exec "$ns" "$COLLECT"
start live RUN_AS_USER=nobody DEVICE=lo FILTER="udp port $udp" RELAY_ENDPOINT=tcp://127.0.0.1:$port \
    METRICS_ADDRPORT=127.0.0.1:$mport NODE_ID=live DLQ_DIR=$WORK/live-dlq -- ip netns exec "$ns" "$CAPTURE"
wait_log live "without capabilities" 10
dropped live
[ "$(stat -c %U "$WORK/live-dlq")" = nobody ] || fail "DLQ_DIR was not handed to nobody"
want=""
for i in $(seq 1 20); do
    payload="tapmesh-least-privilege-$i-$RANDOM"
    inns bash -c "printf %s '$payload' >/dev/udp/127.0.0.1/$udp"
    want+="$(printf %s "$payload" | od -An -tx1 | tr -d ' \n')"$'\n'
    sleep 0.02
done
end=$((SECONDS + 10))
until [ "$(inns curl -fsS --max-time 5 http://127.0.0.1:$mport/metrics | awk '$1 == "tapmesh_capture_packets_total" {print $2}')" = 20 ]; do
    [ $SECONDS -lt $end ] || fail "the agent did not capture 20 datagrams"
    sleep 0.1
done
dropped live # still, after capturing
stop live
[ "$RC" = 0 ] || fail "live capture as nobody exited $RC"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
got=$(tshark -r "$WORK/live.pcapng" -T fields -e data.data 2>/dev/null)
[ "$got"$'\n' = "$want" ] || fail "datagrams in the output differ: got $(echo "$got" | wc -l) of 20: $got"

# ---- READ_FILE -----------------------------------------------------------------------
input=$WORK/secret.pcap
cp "$DATA/sample-ether.pcap" "$input"
chmod 0600 "$input" # root's alone: only readable before the drop
pick_port; nowhere=$PORT
start file RUN_AS_USER=nobody READ_FILE=$input RELAY_ENDPOINT=tcp://127.0.0.1:$nowhere \
    METRICS_ADDRPORT=127.0.0.1:$mport NODE_ID=file RETRY_TIMEOUT_S=3 ACK_TIMEOUT_MS=200 \
    DLQ_DIR=$WORK/file/dlq -- "$CAPTURE"
wait_log file "without capabilities" 10
wait_listening "$mport" 10
dropped file
expect_exit file 30 1
dead=("$WORK"/file/dlq/file-*.pcapng)
[ ${#dead[@]} = 1 ] && [ -f "${dead[0]}" ] || fail "expected one dead-letter file: ${dead[*]}"
[ "$(stat -c %U:%a "${dead[0]}")" = nobody:600 ] ||
    fail "dead letters are $(stat -c %U:%a "${dead[0]}"), expected nobody:600"
[ "$(stat -c %U:%a "$WORK/file" "$WORK/file/dlq" | sort -u)" = nobody:750 ] ||
    fail "DLQ_DIR and its parent: $(stat -c '%n %U:%a' "$WORK/file" "$WORK/file/dlq")"
same_packets "$input" "${dead[0]}"

# delivered whole, keeping its progress in a STATE_DIR as nobody
pick_port; port=$PORT
pick_port; cmport=$PORT
start fcollect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$cmport \
    OUTPUT=$WORK/file.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
wait_listening "$cmport" 10
start file2 RUN_AS_USER=$uid READ_FILE=$input RELAY_ENDPOINT=tcp://127.0.0.1:$port \
    METRICS_ADDRPORT= NODE_ID=file2 STATE_DIR=$WORK/file/state DLQ_DIR=$WORK/file/dlq -- "$CAPTURE"
expect_exit file2 60 0
grep -q "without capabilities" "$WORK/file2.log" || fail "RUN_AS_USER=$uid: no drop logged"
wait_metric "$cmport" 'tapmesh_collect_source_packets_total{source="file2"}' 800 10
stop fcollect
same_packets "$input" "$WORK/file.pcapng"
[ "$(stat -c %U:%a "$WORK/file/state/file2.resume")" = nobody:600 ] ||
    fail "resume state: $(stat -c %U:%a "$WORK/file/state/file2.resume")"

# ---- as root, without RUN_AS_USER: a warning -------------------------------------
start asroot READ_FILE=$input RELAY_ENDPOINT=tcp://127.0.0.1:$nowhere METRICS_ADDRPORT= \
    NODE_ID=asroot RETRY_TIMEOUT_S=1 ACK_TIMEOUT_MS=200 -- "$CAPTURE"
expect_exit asroot 30 1
grep -q "warn: .*reading a file as root: set RUN_AS_USER" "$WORK/asroot.log" ||
    fail "no warning about reading a file as root: $(head -5 "$WORK/asroot.log")"

# ---- refused at start-up ----------------------------------------------------------------
start nouser RUN_AS_USER=tapmesh-no-such-user READ_FILE=$input METRICS_ADDRPORT= -- "$CAPTURE"
expect_exit nouser 10 2
grep -q "RUN_AS_USER=tapmesh-no-such-user" "$WORK/nouser.log" || fail "$(cat "$WORK/nouser.log")"
mkdir -m 0755 "$WORK/roots"
start notwritable RUN_AS_USER=nobody READ_FILE=$input METRICS_ADDRPORT= DLQ_DIR=$WORK/roots -- "$CAPTURE"
expect_exit notwritable 10 2
grep -q "DLQ_DIR='$WORK/roots'.*nobody" "$WORK/notwritable.log" || fail "$(cat "$WORK/notwritable.log")"
log "ok: live and file captures as nobody without capabilities; packets whole"
