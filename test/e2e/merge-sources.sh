#!/usr/bin/env bash
# Four capture agents with interleaved timestamps, all at full speed, into
# one collector: the output is exactly the union of the inputs in timestamp
# order — the same packets in the same order as mergecap writes them —
# with no packet late or forced out of order, and one IDB per source.
. "$(dirname "$0")/lib.sh"
need mergecap capinfos curl ss

for i in 1 2 3 4; do
    "$TOOLS/gen-sample" "$WORK/in$i.pcap" 1500 ether "$((i * 7919))"
done
mergecap -F pcapng -w "$WORK/expected.pcapng" "$WORK"/in{1,2,3,4}.pcap
pick_port; port=$PORT
pick_port; mport=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out.pcapng -- "$COLLECT"
wait_listening "$mport" 10
for i in 1 2 3 4; do
    start "agent$i" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=site$i \
        READ_FILE=$WORK/in$i.pcap BATCH_MAX_BYTES=65536 -- "$CAPTURE"
done
for i in 1 2 3 4; do
    expect_exit "agent$i" 60 0
done
wait_metric "$mport" tapmesh_collect_packets_total 6000 10
for i in 1 2 3 4; do
    wait_metric "$mport" "tapmesh_collect_source_packets_total{source=\"site$i\"}" 1500 1
done
wait_metric "$mport" tapmesh_collect_late_packets_total 0 1
wait_metric "$mport" tapmesh_collect_merge_forced_packets_total 0 1
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
same_packets "$WORK/expected.pcapng" "$WORK/out.pcapng"
readers_accept "$WORK/out.pcapng" 6000
capinfos -M "$WORK/out.pcapng" | has "Number of interfaces in file: 4" || fail "expected 4 IDBs"
log "ok: 4 x 1500 packets merged exactly as mergecap does"
