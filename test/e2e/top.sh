#!/usr/bin/env bash
# tapmesh-top against a running pipeline (an agent replaying a capture at
# its recorded pace, ~1000 packets/s → a relay → the collector) and an
# address where nothing listens:
#  - plain text (`-n 3 -i 1`, not a terminal): three blocks, each with the
#    source's row (named by its NODE_ID), the relay's and the collector's;
#    packet totals within what /metrics said before and after, growing from
#    block to block; rates near the replay's pace and not all the same; the
#    address where nothing listens shown down with the reason;
#  - once the agent is done, the totals are exactly the ones /metrics show
#    (packets captured, relayed, written, output bytes) and the rates 0;
#  - a relay stopped shows as down, and tapmesh-top goes on;
#  - in a terminal (tmux, 160x50): the table with the source's row, its
#    numbers changing from one second to the next.
. "$(dirname "$0")/lib.sh"
need curl ss
TOP=$BIN/top/tapmesh-top
[ -x "$TOP" ] || fail "$TOP is not built"

"$TOOLS/gen-sample" "$WORK/in.pcap" 8000 ether 5 # 8 s at the recorded pace
pick_port; cport=$PORT
pick_port; rport=$PORT
pick_port; cm=$PORT
pick_port; rm=$PORT
pick_port; am=$PORT
pick_port; dead=$PORT # nothing listens there
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$cm \
    OUTPUT=$WORK/out.pcapng -- "$COLLECT"
start relay COLLECT_ENDPOINT=tcp://127.0.0.1:$rport RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$rm -- "$RELAY"
wait_listening "$cm" 10
wait_listening "$rm" 10
start agent NODE_ID=edge7 READ_FILE=$WORK/in.pcap REPLAY_SPEED=1 \
    RELAY_ENDPOINT=tcp://127.0.0.1:$rport METRICS_ADDRPORT=127.0.0.1:$am -- "$CAPTURE"
wait_listening "$am" 10
for _ in $(seq 1 100); do
    v=$(metric "$cm" tapmesh_collect_packets_total || true)
    [ "${v:-0}" -gt 0 ] && break
    sleep 0.05
done
[ "${v:-0}" -gt 0 ] || fail "no packet written 5 s after the agent started"
targets=(127.0.0.1:$am "127.0.0.1:$rm" ":$cm" "127.0.0.1:$dead")

# ---- in a terminal -------------------------------------------------------------------
if command -v tmux >/dev/null; then
    sock=tapmesh-top-$$
    at_exit "tmux -L $sock kill-server"
    tmux -L "$sock" new-session -d -x 160 -y 50 "$TOP -i 0.5 ${targets[*]}" ||
        fail "tmux new-session failed"
    sleep 1.3
    tmux -L "$sock" capture-pane -p >"$WORK/pane1.txt"
    sleep 1
    tmux -L "$sock" capture-pane -p >"$WORK/pane2.txt"
    tmux -L "$sock" kill-server
    for f in pane1 pane2; do
        has '^SOURCE  *ADDRESS  *STATE  *PKT/S' <"$WORK/$f.txt" || fail "$f: no sources table: $(cat "$WORK/$f.txt")"
        has "^edge7  *127.0.0.1:$am  *up " <"$WORK/$f.txt" || fail "$f: no row for edge7: $(cat "$WORK/$f.txt")"
        has "^collect  *:$cm  *up " <"$WORK/$f.txt" || fail "$f: no row for the collector"
    done
    row1=$(grep '^edge7 ' "$WORK/pane1.txt")
    row2=$(grep '^edge7 ' "$WORK/pane2.txt")
    [ "$row1" != "$row2" ] || fail "the terminal's row did not change in 1 s: $row1"
    p1=$(awk '{print $6}' <<<"$row1")
    p2=$(awk '{print $6}' <<<"$row2")
    [ "$p2" -gt "$p1" ] || fail "packets in the terminal went from $p1 to $p2"
    pps=$(awk '{print $4}' <<<"$row2")
    awk -v r="$pps" 'BEGIN { exit !(r > 500 && r < 1500) }' || fail "terminal: $pps packets/s, replayed at ~1000"
    log "terminal: edge7 $p1 -> $p2 packets, $pps packets/s"
else
    log "tmux is not installed (scripts/install-deps.sh): the terminal view is not tested"
fi

# ---- plain text ----------------------------------------------------------------------
before=$(metric "$am" tapmesh_capture_packets_total)
timeout 15 "$TOP" -n 3 -i 1 "${targets[@]}" >"$WORK/top.txt" 2>"$WORK/top.err" ||
    fail "tapmesh-top -n 3 exited $?: $(cat "$WORK/top.err")"
after=$(metric "$am" tapmesh_capture_packets_total)
[ ! -s "$WORK/top.err" ] || fail "tapmesh-top wrote to stderr: $(cat "$WORK/top.err")"
n=$(grep -c '^tapmesh-top ' "$WORK/top.txt")
[ "$n" = 3 ] || fail "$n blocks for -n 3: $(cat "$WORK/top.txt")"
has '4 services, 1 down' <"$WORK/top.txt" || fail "no '4 services, 1 down': $(head -n 1 "$WORK/top.txt")"
mapfile -t src < <(grep '^edge7 ' "$WORK/top.txt")
mapfile -t rel < <(grep '^relay ' "$WORK/top.txt")
mapfile -t col < <(grep '^collect ' "$WORK/top.txt")
[ "${#src[@]}" = 3 ] && [ "${#rel[@]}" = 3 ] && [ "${#col[@]}" = 3 ] ||
    fail "expected a source, a relay and a collector row per block: $(cat "$WORK/top.txt")"
prev=0
rates=()
for i in 0 1 2; do
    read -r _ addr state pps mbps packets _ <<<"${src[$i]}"
    [ "$addr" = "127.0.0.1:$am" ] && [ "$state" = up ] || fail "block $i: ${src[$i]}"
    [ "$packets" -ge "$before" ] && [ "$packets" -le "$after" ] ||
        fail "block $i: $packets packets, /metrics said $before before and $after after"
    [ "$packets" -gt "$prev" ] || fail "block $i: packets $packets, not more than $prev"
    prev=$packets
    awk -v r="$pps" -v m="$mbps" 'BEGIN { exit !(r > 500 && r < 1500 && m > 0) }' ||
        fail "block $i: $pps packets/s, $mbps Mbit/s; replayed at ~1000 packets/s"
    rates+=("$pps")
    read -r _ _ state inpps outpps _ <<<"${rel[$i]}"
    [ "$state" = up ] && awk -v a="$inpps" -v b="$outpps" 'BEGIN { exit !(a > 0 && b > 0) }' ||
        fail "block $i: relay ${rel[$i]}"
    read -r _ _ state pps _ <<<"${col[$i]}"
    [ "$state" = up ] && awk -v a="$pps" 'BEGIN { exit !(a > 0) }' || fail "block $i: collector ${col[$i]}"
done
[ "${rates[0]}" != "${rates[1]}" ] || [ "${rates[1]}" != "${rates[2]}" ] ||
    fail "the same rate three times: ${rates[*]}"
has "^?  *127.0.0.1:$dead  *down  .*Couldn't connect" <"$WORK/top.txt" ||
    fail "127.0.0.1:$dead not shown as down: $(cat "$WORK/top.txt")"
log "plain: edge7 ${rates[*]} packets/s; nothing at 127.0.0.1:$dead shown down"

# ---- exact totals, once everything is written ------------------------------------------
expect_exit agent 30 0
wait_metric "$cm" tapmesh_collect_packets_total 8000 10
# an agent whose next hop is not there holds what it read, and stays: its
# total stands still (800 packets), its next hop is down
pick_port; am2=$PORT
start agent2 NODE_ID=edge8 READ_FILE=$DATA/sample-ether.pcap RELAY_ENDPOINT=tcp://127.0.0.1:$dead \
    METRICS_ADDRPORT=127.0.0.1:$am2 -- "$CAPTURE"
wait_listening "$am2" 10
wait_metric "$am2" tapmesh_capture_packets_total 800 10
targets=("127.0.0.1:$am2" "127.0.0.1:$rm" ":$cm")
# four refreshes half a second apart; the relay is stopped after the second
OUT_TO=$WORK/final.txt start top -- "$TOP" -n 4 -i 0.5 "${targets[@]}"
sleep 1.2
stop relay
expect_exit top 10 0
mapfile -t blocks < <(awk '/^tapmesh-top /{n++} {print > (dir "/block" n ".txt")} END {print n}' dir="$WORK" "$WORK/final.txt")
[ "$(tail -n 1 <<<"${blocks[*]}")" = 4 ] || fail "$(grep -c '^tapmesh-top ' "$WORK/final.txt") blocks for -n 4"
read -r _ addr state pps _ packets kdrops _ resent _ hop <<<"$(grep '^edge8 ' "$WORK/block1.txt")"
[ "$state" = up ] && [ "$packets" = 800 ] && [ "$pps" = 0.0 ] || fail "edge8: $(grep '^edge8 ' "$WORK/block1.txt")"
[ "$hop" = DOWN ] || fail "edge8's next hop is not there, shown as '$hop'"
[ "$kdrops" = - ] || fail "a file has no kernel drops, shown '$kdrops'"
# (resends go on while the next hop is missing: no more than /metrics says now)
[ "$resent" -le "$(metric "$am2" tapmesh_capture_batches_resent_total)" ] || fail "resent: $resent"
read -r _ _ state inpps outpps inp outp hops <<<"$(grep '^relay ' "$WORK/block1.txt")"
[ "$state" = up ] && [ "$inpps" = 0.0 ] && [ "$outpps" = 0.0 ] || fail "idle relay: $(grep '^relay ' "$WORK/block1.txt")"
[ "$inp" = 8000 ] && [ "$outp" = 8000 ] || fail "relay in $inp, out $outp; 8000 went through"
[ "$hops" = 1/1 ] || fail "relay hops up: $hops"
read -r _ _ state pps _ packets sources queued late obytes <<<"$(grep '^collect ' "$WORK/block1.txt")"
[ "$state" = up ] && [ "$pps" = 0.0 ] || fail "idle collector: $(grep '^collect ' "$WORK/block1.txt")"
[ "$packets" = 8000 ] || fail "collector packets $packets, /metrics 8000"
[ "$late" = "$(metric "$cm" tapmesh_collect_late_packets_total)" ] || fail "late: $late"
[ "$queued" = "$(metric "$cm" tapmesh_collect_merge_queued_packets)" ] || fail "queued: $queued"
[ "$obytes" = "$(metric "$cm" tapmesh_collect_output_bytes_total)" ] || fail "output bytes: $obytes"
# the stopped relay: down in its own table, the reason under it, its last numbers kept
has "^relay  *127.0.0.1:$rm  *down  *-  *-  *8000  *8000  *-\$" <"$WORK/block4.txt" ||
    fail "the stopped relay: $(cat "$WORK/block4.txt")"
has "^127.0.0.1:$rm: down: .*Couldn't connect" <"$WORK/block4.txt" || fail "no reason for the relay: $(cat "$WORK/block4.txt")"
has "3 services, 1 down" <"$WORK/block4.txt" || fail "$(head -n 1 "$WORK/block4.txt")"
stop agent2 KILL # holds its batches for RETRY_TIMEOUT_S otherwise
log "ok"
