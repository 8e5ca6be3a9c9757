#!/usr/bin/env bash
# EXPECT_SOURCES=4: a collector and four capture agents with interleaved
# files, all started together. Nothing is written before the fourth has
# joined, and writing starts the moment it has: the first packets are
# written soon after the last HELLO (STARTUP_WAIT_MS is set far longer, so
# a fixed wait would show), and the output is exactly what mergecap makes
# of the four files, with no packet late or forced out of order. Then the
# same into a collector that has been running for longer than
# STARTUP_WAIT_MS before the agents start: the wait counts from the first
# source's arrival, so the first one does not run ahead of the others.
. "$(dirname "$0")/lib.sh"
need mergecap capinfos curl ss

for i in 1 2 3 4; do
    "$TOOLS/gen-sample" "$WORK/in$i.pcap" 1500 ether "$((i * 104729))"
done
mergecap -F pcapng -w "$WORK/expected.pcapng" "$WORK"/in{1,2,3,4}.pcap
pick_port; port=$PORT
pick_port; mport=$PORT
wait_ms=20000
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out.pcapng EXPECT_SOURCES=4 STARTUP_WAIT_MS=$wait_ms -- "$COLLECT"
for i in 1 2 3 4; do
    start "agent$i" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=site$i \
        READ_FILE=$WORK/in$i.pcap BATCH_MAX_BYTES=65536 -- "$CAPTURE"
done
for i in 1 2 3 4; do
    expect_exit "agent$i" 40 0
done
wait_metric "$mport" tapmesh_collect_packets_total 6000 10
wait_metric "$mport" tapmesh_collect_late_packets_total 0 1
wait_metric "$mport" tapmesh_collect_merge_forced_packets_total 0 1
wait_metric "$mport" tapmesh_collect_expected_sources_missing 0 1
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/expected.pcapng" "$WORK/out.pcapng"
capinfos -M "$WORK/out.pcapng" | has "Number of interfaces in file: 4" || fail "expected 4 IDBs"

# the log's times (milliseconds): the last source's HELLO, the release, the
# first packets written
ms_of() { date -d "$(cut -d' ' -f1 <<<"$1")" +%s%3N; }
joined=$(grep -E "source site[1-4] epoch [0-9]+ joined" "$WORK/collect.log" | tail -n 1)
[ -n "$joined" ] || fail "no source joined: $(cat "$WORK/collect.log")"
grep -q "EXPECT_SOURCES: all 4 expected sources have joined" "$WORK/collect.log" ||
    fail "no line saying that all 4 expected sources joined"
first=$(grep "output: the first packets are written" "$WORK/collect.log" | head -n 1)
[ -n "$first" ] || fail "no line saying when the first packets were written"
gap=$(($(ms_of "$first") - $(ms_of "$joined")))
[ "$gap" -ge 0 ] || fail "packets were written $((-gap)) ms before the last source joined"
[ "$gap" -lt 1000 ] ||
    fail "the first packets were written $gap ms after the last source joined (STARTUP_WAIT_MS=$wait_ms)"
log "started together: 4 x 1500 packets merged exactly as mergecap does; writing began $gap ms after the last source joined"

pick_port; mport=$PORT
start late COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/late.pcapng EXPECT_SOURCES=site1,site2,site3,site4 STARTUP_WAIT_MS=3000 \
    -- "$COLLECT"
wait_listening "$mport" 10
sleep 3.5 # longer than STARTUP_WAIT_MS
for i in 1 2 3 4; do
    start "agent$i" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=site$i \
        READ_FILE=$WORK/in$i.pcap BATCH_MAX_BYTES=65536 -- "$CAPTURE"
done
for i in 1 2 3 4; do
    expect_exit "agent$i" 40 0
done
wait_metric "$mport" tapmesh_collect_packets_total 6000 10
wait_metric "$mport" tapmesh_collect_late_packets_total 0 1
stop late
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/expected.pcapng" "$WORK/late.pcapng"
log "ok: and into a collector that was waiting already"
