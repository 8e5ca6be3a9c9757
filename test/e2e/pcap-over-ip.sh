#!/usr/bin/env bash
# PCAP_OVER_IP: four agents replay their files at recorded speed into a
# collector writing a file; two PCAP-over-IP clients attach while they
# stream. Each reads a classic pcap that tcpdump reads without a word,
# holding exactly the file's packets (timestamps, lengths, bytes) from the
# first one it received on: a contiguous suffix of the file.
. "$(dirname "$0")/lib.sh"
need tcpdump editcap curl ss python3

client=$root/test/tools/poip-client.py
for i in 1 2 3 4; do
    "$TOOLS/gen-sample" "$WORK/in$i.pcap" 2500 ether "$((i * 7919))"
done
pick_port; port=$PORT
pick_port; mport=$PORT
pick_port; pport=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
    OUTPUT=$WORK/out.pcapng EXPECT_SOURCES=4 PCAP_OVER_IP=127.0.0.1:$pport -- "$COLLECT"
wait_listening "$mport" 10
for i in 1 2 3 4; do
    start "agent$i" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= NODE_ID=site$i \
        READ_FILE=$WORK/in$i.pcap REPLAY_SPEED=1 -- "$CAPTURE"
done
# the clients join mid-stream, one after the other
for c in 1 2; do
    end=$((SECONDS + 10))
    until [ "$(metric "$mport" tapmesh_collect_packets_total)" -ge $((c * 2000)) ] 2>/dev/null; do
        [ $SECONDS -lt $end ] || fail "the collector wrote too little before client $c"
        sleep 0.05
    done
    start "client$c" -- python3 "$client" "127.0.0.1:$pport" "$WORK/client$c.pcap"
done
wait_metric "$mport" tapmesh_collect_pcap_over_ip_clients 2 20
for i in 1 2 3 4; do
    expect_exit "agent$i" 30 0
done
wait_metric "$mport" tapmesh_collect_packets_total 10000 10
sent=$(metric "$mport" tapmesh_collect_pcap_over_ip_packets_total)
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
for c in 1 2; do
    expect_exit "client$c" 10 0
done

tcpdump --time-stamp-precision=nano -r "$WORK/out.pcapng" -w "$WORK/ref.pcap" 2>/dev/null
tcpdump --time-stamp-precision=nano -tt -nn -r "$WORK/ref.pcap" 2>/dev/null | awk '{print $1}' \
    >"$WORK/ref.ts"
total=$(wc -l <"$WORK/ref.ts")
[ "$total" = 10000 ] || fail "the file holds $total packets, expected 10000"
got_all=0
for c in 1 2; do
    f=$WORK/client$c.pcap
    err=$(tcpdump --time-stamp-precision=nano -r "$f" -w "$f.tcpdump.pcap" 2>&1 >/dev/null |
        grep -v '^reading from file' || true)
    [ -z "$err" ] || fail "tcpdump -r client$c.pcap: $err"
    n=$(tcpdump -nn -r "$f.tcpdump.pcap" 2>/dev/null | wc -l)
    [ "$n" -gt 0 ] && [ "$n" -lt "$total" ] || fail "client $c got $n of $total packets: not mid-stream"
    got_all=$((got_all + n))
    first=$(tcpdump --time-stamp-precision=nano -tt -nn -c 1 -r "$f" 2>/dev/null | awk '{print $1}')
    # where the client's first packet is in the file (a timestamp may repeat: try each)
    ok=
    for k in $(grep -n -x -F "$first" "$WORK/ref.ts" | cut -d: -f1 | head -5); do
        [ $((total - k + 1)) = "$n" ] || continue
        editcap -r "$WORK/ref.pcap" "$WORK/suffix$c.pcap" "$k-$total"
        if "$PKTCMP" "$WORK/suffix$c.pcap" "$f" >"$WORK/pktcmp$c.txt" 2>&1; then
            ok=$k
            break
        fi
    done
    [ -n "$ok" ] || fail "client $c's $n packets are not the file's last $n: $(cat "$WORK/pktcmp$c.txt" 2>/dev/null)"
    log "client $c: packets $ok..$total of the file, the same"
done
[ "$sent" = "$got_all" ] || fail "tapmesh_collect_pcap_over_ip_packets_total was $sent, the clients got $got_all"
log "ok: two clients joined mid-stream, each got the file's packets from then on"
