#!/usr/bin/env bash
# Bad input (proto/wire-v2.md §5): hostile peers (test/tools/badpeer) send
# garbage, messages without a delimiter or with extra frames, a wrong
# signature, version or type, cut or padded commands, batches from a source
# that never said HELLO, batches over MAX_BATCH_MB, a bad caplen, and a
# flood of 20000 garbage messages, while
# a good capture agent replays a file at recorded speed. The good agent's
# packets all arrive, identical; every message is counted by its reason
# (exactly); each (peer, reason) is logged once, not once per message; the
# unknown source is told REFUSE code 1; the collector stays up and /metrics
# passes promtool. Then: a subset through a relay; batches over
# MAX_BATCH_MB through a relay (the relay's link stays up); and more than
# 256 misbehaving peers (the log stays bounded).
. "$(dirname "$0")/lib.sh"
need promtool curl ss

BADPEER=$TOOLS/badpeer
input=$DATA/sample-ether.pcap
reasons="truncated trailing signature version type name text range caplen framing source oversize"

# bad NAME ENDPOINT KIND COUNT: a hostile peer in the background, "bp-NAME"
bad() {
    start "bp-$1" -- "$BADPEER" "$2" "$3" "$4"
}

# wait_positive PORT NAME TIMEOUT_S: until the sample is above 0
wait_positive() {
    local end=$((SECONDS + $3))
    until [ "$(metric "$1" "$2" 2>/dev/null || echo 0)" -gt 0 ] 2>/dev/null; do
        [ $SECONDS -lt $end ] || fail "metric $2 on port $1 still 0 after $3 s"
        sleep 0.02
    done
}

# expect_reasons PORT SERVICE REASON=N...: every malformed-message counter
# of SERVICE (collect, relay) is N, or 0 for the reasons not named
expect_reasons() {
    local port=$1 svc=$2 r kv want
    shift 2
    for r in $reasons; do
        want=0
        for kv in "$@"; do
            [ "${kv%%=*}" = "$r" ] && want=${kv#*=}
        done
        wait_metric "$port" "tapmesh_${svc}_malformed_messages_total{reason=\"$r\"}" "$want" 5
    done
}

# warn_lines LOG REASON: the collector's "dropped a message" lines for REASON
warn_lines() {
    grep -c "warn: dropped a message from peer [0-9a-f]*: $2\\b" "$1" || true
}

# ---- 1. hostile peers next to a good agent, straight into the collector ----
pick_port; cport=$PORT
pick_port; mport=$PORT
ep=tcp://127.0.0.1:$cport
start collect COLLECT_ENDPOINT=$ep METRICS_ADDRPORT=127.0.0.1:$mport OUTPUT=$WORK/out.pcapng \
    NODE_ID=collector MAX_BATCH_MB=1 STARTUP_WAIT_MS=0 -- "$COLLECT"
wait_listening "$mport" 10
start capture RELAY_ENDPOINT=$ep METRICS_ADDRPORT= NODE_ID=edge1 READ_FILE=$input \
    REPLAY_SPEED=1 BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
wait_positive "$mport" 'tapmesh_collect_source_packets_total{source="edge1"}' 10
# the replay has about 0.8 s to go: the hostile peers come now
bad garbage "$ep" garbage 5
bad nodelim "$ep" nodelim 5
bad badsig "$ep" badsig 5
bad badversion "$ep" badversion 5
bad badtype "$ep" badtype 5
bad truncated "$ep" truncated 5
bad trailing "$ep" trailing 5
bad unknown "$ep" unknown-source 3
bad oversize "$ep" oversize 2 # 2 MiB > MAX_BATCH_MB: the collector drops it
bad toolarge "$ep" oversize 3 # 3 MiB: also dropped alone, counted
bad badcaplen "$ep" badcaplen 5
bad extra "$ep" extra-frames 5
bad flood "$ep" flood 20000
for p in garbage nodelim badsig badversion badtype truncated trailing unknown oversize toolarge \
    badcaplen extra flood; do
    expect_exit "bp-$p" 30 0
done
if kill -0 "${PIDS[capture]}" 2>/dev/null; then
    log "every hostile peer was done while the good agent was still replaying"
else
    log "note: the good agent finished before the last hostile peer"
fi

expect_exit capture 60 0
grep -q "done: 800 packets sent and acknowledged" "$WORK/capture.log" ||
    fail "the good agent did not report 800 packets acknowledged"
wait_metric "$mport" tapmesh_collect_packets_total 800 5
wait_metric "$mport" 'tapmesh_collect_source_packets_total{source="edge1"}' 800 5
# nothing of the good agent was lost on the way: no resend, no reply lost
wait_metric "$mport" tapmesh_collect_duplicate_batches_total 0 1
wait_metric "$mport" tapmesh_collect_acks_unroutable_total 0 1
# framing: garbage 5 + nodelim 5 + extra-frames 5 + flood 20000; oversize:
# the 2 MiB and the 3 MiB batch
expect_reasons "$mport" collect truncated=5 trailing=5 signature=5 version=5 type=5 caplen=5 \
    framing=20015 source=3 oversize=2
[ "$(cat "$WORK/bp-unknown.out")" = "$(printf 'refused code 1\n%.0s' 1 2 3)" ] ||
    fail "the unknown source got: $(cat "$WORK/bp-unknown.out")"

# one line per (peer, reason): each hostile peer broke one rule
clog=$WORK/collect.log
for r in truncated trailing signature version type caplen source; do
    n=$(warn_lines "$clog" "$r")
    [ "$n" = 1 ] || fail "$n warn lines for reason $r, expected 1 (one peer)"
done
n=$(warn_lines "$clog" oversize)
[ "$n" = 2 ] || fail "$n warn lines for reason oversize (2 peers)"
n=$(warn_lines "$clog" framing)
[ "$n" = 4 ] || fail "$n warn lines for reason framing (20015 messages from 4 peers)"
n=$(grep -c "dropped a message" "$clog" || true)
[ "$n" -le 13 ] || fail "$n 'dropped a message' lines for 13 (peer, reason) pairs"
! grep -q " error: " "$clog" || fail "the collector logged an error: $(grep " error: " "$clog")"

kill -0 "${PIDS[collect]}" 2>/dev/null || fail "the collector is gone"
wait_listening "$mport" 5
promcheck "$mport"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC after SIGTERM"
same_packets "$input" "$WORK/out.pcapng"
log "ok: 800 good packets intact among 20050 bad messages from 13 peers, each counted"

# ---- 2. the same through a relay ----
pick_port; cport=$PORT
pick_port; mport=$PORT
pick_port; rport=$PORT
pick_port; mrelay=$PORT
rep=tcp://127.0.0.1:$rport
start collect2 COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out2.pcapng NODE_ID=collector MAX_BATCH_MB=1 STARTUP_WAIT_MS=0 -- "$COLLECT"
start relay COLLECT_ENDPOINT=$rep RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$mrelay NODE_ID=site-relay -- "$RELAY"
wait_listening "$mport" 10
wait_listening "$mrelay" 10
start capture2 RELAY_ENDPOINT=$rep METRICS_ADDRPORT= NODE_ID=edge2 READ_FILE=$input \
    REPLAY_SPEED=1 BATCH_MAX_DELAY_MS=20 -- "$CAPTURE"
wait_positive "$mport" 'tapmesh_collect_source_packets_total{source="edge2"}' 10
bad r-garbage "$rep" garbage 5
bad r-badversion "$rep" badversion 5
bad r-flood "$rep" flood 20000
bad r-extra "$rep" extra-frames 5
bad r-unknown "$rep" unknown-source 2 # checked by the collector, refused back through the relay
bad r-badcaplen "$rep" badcaplen 3    # the relay does not look into payloads; the collector does
for p in garbage badversion flood extra unknown badcaplen; do
    expect_exit "bp-r-$p" 30 0
done
expect_exit capture2 60 0
grep -q "done: 800 packets sent and acknowledged" "$WORK/capture2.log" ||
    fail "the good agent behind the relay did not report 800 packets acknowledged"
wait_metric "$mport" tapmesh_collect_packets_total 800 5
expect_reasons "$mrelay" relay framing=20010 version=5
expect_reasons "$mport" collect source=2 caplen=3
[ "$(cat "$WORK/bp-r-unknown.out")" = "$(printf 'refused code 1\n%.0s' 1 2)" ] ||
    fail "the unknown source behind the relay got: $(cat "$WORK/bp-r-unknown.out")"
[ "$(warn_lines "$WORK/collect2.log" source)" = 1 ] || fail "reason source not logged once"
[ "$(warn_lines "$WORK/collect2.log" caplen)" = 1 ] || fail "reason caplen not logged once"
# the flood did not crowd the good agent out of the relay's queue
wait_metric "$mrelay" tapmesh_relay_dropped_no_hop_total 0 1
rlog=$WORK/relay.log
n=$(wc -l <"$rlog")
[ "$n" -lt 50 ] || fail "the relay logged $n lines for 20015 bad messages"
# the relay names each misbehaving peer and the reason, once
for r in framing:3 version:1; do
    n=$(grep -c "warn: .*${r%:*}" "$rlog" || true)
    [ "$n" = "${r#*:}" ] || fail "the relay logged $n warn lines for reason ${r%:*} (${r#*:} peers)"
done
kill -0 "${PIDS[relay]}" 2>/dev/null || fail "the relay is gone"
promcheck "$mrelay"
promcheck "$mport"
stop relay
stop collect2
[ "$RC" = 0 ] || fail "collect2 exited $RC after SIGTERM"
same_packets "$input" "$WORK/out2.pcapng"
log "ok: through a relay, 800 good packets intact; the relay counted 20015 bad messages"

# ---- 3. batches over MAX_BATCH_MB, through a relay ----
# The relay forwards them (they are within the protocol's limit); the
# collector drops them alone, counted as "oversize": the relay's connection,
# which carries the good agent too, stays up.
"$TOOLS/gen-sample" "$WORK/long.pcap" 2000 ether # about 2 s of traffic
pick_port; cport=$PORT
pick_port; mport=$PORT
pick_port; rport=$PORT
pick_port; mrelay=$PORT
rep=tcp://127.0.0.1:$rport
start collect3 COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out3.pcapng NODE_ID=collector MAX_BATCH_MB=1 STARTUP_WAIT_MS=0 -- "$COLLECT"
start relay3 COLLECT_ENDPOINT=$rep RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$mrelay NODE_ID=site-relay -- "$RELAY"
wait_listening "$mport" 10
wait_listening "$mrelay" 10
start capture3 RELAY_ENDPOINT=$rep METRICS_ADDRPORT= NODE_ID=edge3 READ_FILE=$WORK/long.pcap \
    REPLAY_SPEED=1 BATCH_MAX_DELAY_MS=5 ACK_TIMEOUT_MS=500 -- "$CAPTURE"
wait_positive "$mport" 'tapmesh_collect_source_packets_total{source="edge3"}' 10
# the relay's connection to the collector: its local address
link() { ss -Htn state established "( dport = :$cport )" | awk '{print $3}' | sort | paste -sd' '; }
before=$(link)
for i in 1 2 3; do
    "$BADPEER" "$rep" oversize 3 || fail "oversize peer $i behind the relay failed"
done
after=$(link)
expect_exit capture3 60 0
grep -q "done: 2000 packets sent and acknowledged" "$WORK/capture3.log" ||
    fail "the good agent behind the relay did not report 2000 packets acknowledged"
wait_metric "$mport" tapmesh_collect_packets_total 2000 5
kill -0 "${PIDS[relay3]}" 2>/dev/null || fail "the relay is gone"
kill -0 "${PIDS[collect3]}" 2>/dev/null || fail "the collector is gone"
promcheck "$mport"
promcheck "$mrelay"
dups=$(metric "$mport" tapmesh_collect_duplicate_batches_total)
lost=$(metric "$mport" tapmesh_collect_acks_unroutable_total)
[ "$before" = "$after" ] ||
    fail "the collector dropped the relay's connection (from $before, now $after) for one peer's oversized batches"
[ "$dups" = 0 ] && [ "$lost" = 0 ] ||
    fail "the good agent behind the relay was disturbed: $dups batches resent, $lost replies unroutable"
wait_metric "$mport" 'tapmesh_collect_malformed_messages_total{reason="oversize"}' 3 5
stop relay3
stop collect3
[ "$RC" = 0 ] || fail "collect3 exited $RC after SIGTERM"
same_packets "$WORK/long.pcap" "$WORK/out3.pcapng"
log "ok: 2000 good packets intact behind a relay carrying 3 batches over MAX_BATCH_MB"

# ---- 4. more misbehaving peers than the collector remembers ----
pick_port; cport=$PORT
pick_port; mport=$PORT
ep=tcp://127.0.0.1:$cport
start collect4 COLLECT_ENDPOINT=$ep METRICS_ADDRPORT=127.0.0.1:$mport OUTPUT=$WORK/out4.pcapng \
    NODE_ID=collector STARTUP_WAIT_MS=0 -- "$COLLECT"
wait_listening "$mport" 10
seq 256 | xargs -P 4 -I{} "$BADPEER" "$ep" badtype 1 || fail "a badtype peer failed"
wait_metric "$mport" 'tapmesh_collect_malformed_messages_total{reason="type"}' 256 10
sleep 1.1 # a new second: the log budget is back
"$BADPEER" "$ep" badversion 1000 || fail "the badversion peer failed"
wait_metric "$mport" 'tapmesh_collect_malformed_messages_total{reason="version"}' 1000 10
clog=$WORK/collect4.log
# at most 20 lines a second, however many peers; the rest counted, and
# said so in the next line
n=$(warn_lines "$clog" type)
[ "$n" -ge 20 ] && [ "$n" -le 256 ] || fail "$n warn lines for 256 peers with reason type"
[ "$n" = 256 ] || grep -q "other drops not logged" "$clog" || fail "suppressed lines not mentioned"
n=$(warn_lines "$clog" version)
[ "$n" = 1 ] || fail "$n warn lines for 1000 messages of one peer (reason version)"
kill -0 "${PIDS[collect4]}" 2>/dev/null || fail "the collector is gone"
promcheck "$mport"
stop collect4
[ "$RC" = 0 ] || fail "collect4 exited $RC after SIGTERM"
log "ok: 257 misbehaving peers counted"
