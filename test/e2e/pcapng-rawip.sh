#!/usr/bin/env bash
# The same path with a pcapng input of a non-Ethernet link type (raw IP,
# LINKTYPE_RAW 101): the output keeps the link type and every packet.
. "$(dirname "$0")/lib.sh"
need tcpdump tshark capinfos curl ss

input=$DATA/sample-rawip.pcapng
pick_port; data_port=$PORT
pick_port; mport=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$data_port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out.pcapng -- "$COLLECT"
wait_listening "$mport" 10
start capture RELAY_ENDPOINT=tcp://127.0.0.1:$data_port METRICS_ADDRPORT= NODE_ID=rawsite \
    READ_FILE=$input BATCH_MAX_BYTES=16384 -- "$CAPTURE"
expect_exit capture 60 0
wait_metric "$mport" tapmesh_collect_packets_total 400 5
promcheck "$mport"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC after SIGTERM"

same_packets "$input" "$WORK/out.pcapng"
readers_accept "$WORK/out.pcapng" 400
same_packets "$input" "$WORK/out.pcapng.tcpdump.pcap"
capinfos -M "$WORK/out.pcapng" | has "File encapsulation: *rawip" ||
    fail "link type not kept: $(capinfos -M "$WORK/out.pcapng" | grep encapsulation)"
log "ok: 400 raw-IP packets identical"
