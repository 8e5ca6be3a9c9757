#!/usr/bin/env bash
# READ_FILE=- from a pipe that stays open (a capture still running upstream,
# as in `tcpdump -U -w - | tapmesh-capture`): packets already written reach
# the collector at once, while the writer is quiet, and the agent keeps
# heartbeating instead of sitting in a blocked read until the pipe closes.
. "$(dirname "$0")/lib.sh"
need curl ss python3

"$TOOLS/gen-sample" "$WORK/in.pcap" 200 ether 707
pick_port; cport=$PORT
pick_port; mc=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out.pcapng STARTUP_WAIT_MS=0 SOURCE_IDLE_S=2 -- "$COLLECT"
wait_listening "$mc" 10
# the header and the first 50 packets, then 4 s of silence, then the rest
cat >"$WORK/writer.py" <<'PY'
import struct, sys, time
data = open(sys.argv[1], 'rb').read()
swap = '<' if data[:4] in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1') else '>'
off, n = 24, 0
while n < 50:
    caplen = struct.unpack(swap + 'I', data[off + 8:off + 12])[0]
    off += 16 + caplen
    n += 1
out = sys.stdout.buffer
out.write(data[:off]); out.flush()
time.sleep(4)
out.write(data[off:]); out.flush()
PY
IN_FROM=<(python3 "$WORK/writer.py" "$WORK/in.pcap") \
    start agent RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=piped \
    READ_FILE=- -- "$CAPTURE"
end=$((SECONDS + 3))
until [ "$(metric "$mc" tapmesh_collect_packets_total)" = 50 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] ||
        fail "the first 50 packets did not arrive while the pipe was quiet: $(metric "$mc" tapmesh_collect_packets_total)"
    sleep 0.05
done
grep -q "silent for" "$WORK/collect.log" && fail "the agent went silent while its pipe was quiet"
expect_exit agent 20 0
wait_metric "$mc" tapmesh_collect_packets_total 200 5
stop collect
same_packets "$WORK/in.pcap" "$WORK/out.pcapng"
log "ok: packets written into an open pipe arrive at once; the agent stays heard"
