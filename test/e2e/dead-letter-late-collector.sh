#!/usr/bin/env bash
# The collector comes up after the agent dead-lettered: an agent reads a
# file at recorded speed (4000 packets, ~4 s) with no collector; once it
# has dead-lettered some batches, the collector starts. What the agent gave
# up is in its dead-letter file and NOT also in the output (no copy queued
# in the socket reaches the collector later), every other packet is in the
# output, in order, within seconds (DEAD: the collector's watermark does
# not wait for the dead-lettered batches, so nothing waits for
# MERGE_WINDOW_MS). The dead-letter file, replayed into the same collector,
# then completes the output: each input packet exactly once, the replayed
# ones after the newer packets, each counted late.
. "$(dirname "$0")/lib.sh"
need tcpdump python3 curl ss

"$TOOLS/gen-sample" "$WORK/in.pcap" 4000 ether 4711
pick_port; cport=$PORT
pick_port; ma=$PORT
pick_port; mc=$PORT
start agent RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$ma NODE_ID=edge \
    READ_FILE=$WORK/in.pcap REPLAY_SPEED=1 RETRY_TIMEOUT_S=2 ACK_TIMEOUT_MS=200 -- "$CAPTURE"
wait_listening "$ma" 10
end=$((SECONDS + 10))
until [ "$(metric "$ma" tapmesh_capture_packets_dead_lettered_total)" -gt 0 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "nothing dead-lettered"
    sleep 0.05
done
t0=$SECONDS
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
expect_exit agent 20 1
took=$((SECONDS - t0))
files=("$DLQ_DIR"/edge-*.pcapng)
[ -f "${files[0]}" ] && [ ${#files[@]} = 1 ] || fail "expected one dead-letter file: ${files[*]}"
dlq=${files[0]}
dead=$(sed -n 's/.* \([0-9][0-9]*\) of 4000 packets .* dead-letter file .*/\1/p' "$WORK/agent.log")
[ -n "$dead" ] && [ "$dead" -gt 0 ] && [ "$dead" -lt 4000 ] ||
    fail "no summary \"N of 4000 packets ... dead-letter file\": $(tail -3 "$WORK/agent.log")"
# everything acknowledged is written: the agent's exit says the collector has it all
written=$(metric "$mc" tapmesh_collect_packets_total)
log "$dead dead-lettered, $written written; the agent was done $took s after the collector started"
[ "$written" = $((4000 - dead)) ] || fail "written $written, expected 4000 - $dead"
[ "$took" -le 6 ] || fail "the agent took $took s after the collector started (waited for the merge window?)"
forced=$(metric "$mc" tapmesh_collect_merge_forced_packets_total)
[ "$forced" = 0 ] || fail "$forced packets forced out by the merge window"

# by content: input = output + dead letters, no packet in both; output in order
tcpdump --time-stamp-precision=nano -r "$WORK/in.pcap" -w "$WORK/in.nano.pcap" 2>/dev/null
tcpdump --time-stamp-precision=nano -r "$dlq" -w "$WORK/dlq.pcap" 2>/dev/null
tcpdump --time-stamp-precision=nano -r "$WORK/out.pcapng" -w "$WORK/out1.pcap" 2>/dev/null
cat >"$WORK/cmp.py" <<'EOF'
import collections, struct, sys

def packets(path):
    """(ts_ns, wire length, bytes) of a nanosecond pcap, in file order."""
    with open(path, 'rb') as f:
        data = f.read()
    magic = struct.unpack('<I', data[:4])[0]
    assert magic == 0xa1b23c4d, f'{path}: not a nanosecond pcap ({magic:#x})'
    out, off = [], 24
    while off < len(data):
        sec, nsec, caplen, wirelen = struct.unpack('<IIII', data[off:off + 16])
        out.append((sec * 10**9 + nsec, wirelen, data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return out

mode, inp, *rest = sys.argv[1:]
want = collections.Counter(packets(inp))
if mode == 'split':
    out, dlq = packets(rest[0]), packets(rest[1])
    got_out, got_dlq = collections.Counter(out), collections.Counter(dlq)
    both = sum((got_out & got_dlq).values())
    assert both == 0, f'{both} packets both written and dead-lettered'
    assert got_out + got_dlq == want, (
        f'output {len(out)} + dead letters {len(dlq)} != input {sum(want.values())}; '
        f'missing {sum((want - got_out - got_dlq).values())}, '
        f'extra {sum(((got_out + got_dlq) - want).values())}')
    assert all(a[0] <= b[0] for a, b in zip(out, out[1:])), 'output not in timestamp order'
else:
    out = packets(rest[0])
    got = collections.Counter(out)
    assert got == want, (f'output {len(out)} != input {sum(want.values())}: '
                         f'missing {sum((want - got).values())}, extra {sum((got - want).values())}')
EOF
python3 "$WORK/cmp.py" split "$WORK/in.nano.pcap" "$WORK/out1.pcap" "$WORK/dlq.pcap" ||
    fail "output and dead letters do not split the input"

# the dead letters, replayed into the same collector: each packet once
start replay RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= READ_FILE="$dlq" -- "$CAPTURE"
expect_exit replay 20 0
wait_metric "$mc" tapmesh_collect_packets_total 4000 10
late=$(metric "$mc" tapmesh_collect_late_packets_total)
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
tcpdump --time-stamp-precision=nano -r "$WORK/out.pcapng" -w "$WORK/out2.pcap" 2>/dev/null
python3 "$WORK/cmp.py" all "$WORK/in.nano.pcap" "$WORK/out2.pcap" ||
    fail "after the replay, the output is not the input once"
# the dead letters are the oldest packets: the replay writes each of them
# after newer ones, and each is counted late
disorder=$(out_of_order "$WORK/out.pcapng")
[ "$late" = "$dead" ] && [ "$disorder" = "$dead" ] ||
    fail "the replay of $dead dead letters: $disorder packets out of order, $late counted late"
log "ok: the replay wrote the $dead dead letters late, each counted"
