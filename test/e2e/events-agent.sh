#!/usr/bin/env bash
# EVENTS from the capture agent (a single host): an agent reading a file
# with EVENTS=json to a UDP listener, a collector writing the file: one
# event per packet, in order, each saying what tshark dissects from the
# same packet of the collector's output (time, lengths, source/interface,
# MACs, ethertype, VLAN, addresses, protocol, ports). With EVENTS_UNIQUE_S
# and a flow table smaller than the flows: per-flow sums equal the input's,
# the early flushes as the agent's metric counts them. With no collector
# and RETRY_TIMEOUT_S=1: the dead letters are a dead_letter loss event (on
# standard output, EVENTS_TO=-) whose count is the agent's dead-letter
# metric. Bad EVENTS settings stop start-up.
. "$(dirname "$0")/lib.sh"
need tshark python3 curl ss

gen=$root/test/tools/events-pcap.py
listen=$root/test/tools/udp-listen.py
check=$root/test/tools/events-check.py
python3 "$gen" "$WORK/a.pcap" 700 30 5 1700000000000000000

# collector NAME: a collector writing $WORK/NAME.pcapng, on $cport
collector() {
    pick_port; cport=$PORT
    pick_port; local mport=$PORT
    start "collect-$1" COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mport \
        OUTPUT="$WORK/$1.pcapng" EXPECT_SOURCES=site1 -- "$COLLECT"
    wait_listening "$mport" 10
}

# listener NAME: datagrams on $uport into $WORK/NAME.events
listener() {
    pick_port; uport=$PORT
    start "listen-$1" -- python3 "$listen" "$uport" "$WORK/$1.events" 1 15
    for _ in $(seq 1 100); do [ -e "$WORK/$1.events.ready" ] && break; sleep 0.1; done
}

# ---- one event per packet, from READ_FILE
collector packet
listener packet
start a-packet RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=site1 \
    READ_FILE="$WORK/a.pcap" EVENTS=json EVENTS_TO=udp://127.0.0.1:$uport \
    EVENTS_INTERVAL_MS=50 EVENTS_BATCH=16 -- "$CAPTURE"
expect_exit a-packet 20 0
stop collect-packet
[ "$RC" = 0 ] || fail "collect exited $RC"
wait_exit listen-packet 20
python3 "$check" packets "$WORK/packet.events" "$WORK/packet.pcapng" 700 ||
    fail "the agent's events differ from tshark's dissection of the output"
[ -z "$(python3 "$check" losses "$WORK/packet.events")" ] || fail "a loss where none was"
log "ok: 700 packet events from the agent equal tshark's dissection of the collector's output"

# ---- one event per flow: 30 flows through a table of 8; the input on a
# pipe held open, so that the agent's metrics can be read before it exits
collector flow
listener flow
pick_port; amport=$PORT
mkfifo "$WORK/flow.pipe"
IN_FROM=$WORK/flow.pipe start a-flow RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$amport NODE_ID=site1 READ_FILE=- EVENTS=json \
    EVENTS_TO=udp://127.0.0.1:$uport EVENTS_INTERVAL_MS=50 EVENTS_UNIQUE_S=60 \
    EVENTS_FLOW_TABLE=8 -- "$CAPTURE"
exec 3>"$WORK/flow.pipe"
cat "$WORK/a.pcap" >&3
wait_metric "$amport" tapmesh_capture_packets_total 700 10
wait_metric "$amport" tapmesh_capture_events_flow_table_flows 8 5
early=$(metric "$amport" tapmesh_capture_events_flows_flushed_early_total)
[ "${early:-0}" -gt 0 ] || fail "no flow flushed early"
[ "$(metric "$amport" 'tapmesh_capture_events_total{event="flow"}')" = "$early" ] ||
    fail "flow events before exit are not the early flushes"
exec 3>&-
expect_exit a-flow 20 0
stop collect-flow
[ "$RC" = 0 ] || fail "collect exited $RC"
wait_exit listen-flow 20
python3 "$check" flows "$WORK/flow.events" "$WORK/flow.pcapng" 30 8 "$early" ||
    fail "the agent's flow sums differ from the input's"
log "ok: the agent's per-flow sums equal the input's, $early early flushes counted"

# ---- dead letters: no collector; the events on standard output
pick_port; nobody=$PORT
pick_port; dmport=$PORT
mkfifo "$WORK/dead.pipe"
IN_FROM=$WORK/dead.pipe start a-dead RELAY_ENDPOINT=tcp://127.0.0.1:$nobody \
    METRICS_ADDRPORT=127.0.0.1:$dmport NODE_ID=lonely READ_FILE=- RETRY_TIMEOUT_S=1 \
    ACK_TIMEOUT_MS=200 EVENTS=json EVENTS_TO=- EVENTS_INTERVAL_MS=100 -- "$CAPTURE"
exec 3>"$WORK/dead.pipe"
cat "$WORK/a.pcap" >&3
wait_metric "$dmport" tapmesh_capture_packets_total 700 10
wait_metric "$dmport" tapmesh_capture_packets_dead_lettered_total 700 10
dead=$(metric "$dmport" tapmesh_capture_packets_dead_lettered_total)
# the losses of one interval are one event: sum whatever came, until it is all there
sum=0
for _ in $(seq 1 50); do
    sum=$(python3 "$check" losses "$WORK/a-dead.out" | awk '$3 == "dead_letter" {s += $5} END {print s + 0}')
    [ "$sum" = "$dead" ] && break
    sleep 0.1
done
[ "$sum" = "$dead" ] || fail "dead_letter events count $sum packets, the metric $dead"
python3 "$check" losses "$WORK/a-dead.out" | awk '{print $1, $2, $3, $4}' | sort -u >"$WORK/dead.kinds"
[ "$(cat "$WORK/dead.kinds")" = "lonely stdin dead_letter error" ] ||
    fail "loss events: $(cat "$WORK/dead.kinds")"
exec 3>&-
expect_exit a-dead 20 1
log "ok: dead letters are a dead_letter loss event of $dead packets, as the metric says"

# ---- bad settings stop start-up, naming the setting
start bad1 READ_FILE="$WORK/a.pcap" METRICS_ADDRPORT= EVENTS=json -- "$CAPTURE"
expect_exit bad1 10 2
has "EVENTS=json needs EVENTS_TO" <"$WORK/bad1.log"
start bad2 READ_FILE="$WORK/a.pcap" METRICS_ADDRPORT= EVENTS=json EVENTS_TO=ftp://x -- "$CAPTURE"
expect_exit bad2 10 2
has "EVENTS_TO=ftp://x: expected" <"$WORK/bad2.log"
log "ok: EVENTS without EVENTS_TO, and a bad EVENTS_TO, refused at start-up"
