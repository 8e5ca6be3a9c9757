#!/usr/bin/env bash
# The README's demo command (scripts/demo.sh) works: through a relay into
# tcpdump, it prints one line per packet of the sample and exits 0.
. "$(dirname "$0")/lib.sh"
need tcpdump ss

out=$WORK/demo.txt
pick_port
cport=$PORT
pick_port
DEMO_NO_SETUP=1 DEMO_NO_METRICS=1 BUILD_DIR=$(dirname "$BIN") DEMO_COLLECT_PORT=$cport \
    DEMO_RELAY_PORT=$PORT "$root/scripts/demo.sh" >"$out" 2>"$WORK/demo.log" ||
    fail "demo exited non-zero: $(cat "$WORK/demo.log")"
n=$(wc -l <"$out")
[ "$n" = 800 ] || fail "demo printed $n packet lines, expected 800"
tcpdump -nn -r "$DATA/sample-ether.pcap" 2>/dev/null | diff -q - "$out" >/dev/null ||
    fail "demo output differs from tcpdump -nn -r on the sample itself"
grep -q "done: 800 packets sent and acknowledged" "$WORK/demo.log" || fail "no summary line"
log "ok"
