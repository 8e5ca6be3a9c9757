#!/usr/bin/env bash
# Standard output on a terminal: the collector refuses to write pcapng onto
# it (exit 2, before it binds anything) with a line saying to pipe it into
# tcpdump -r - or to set OUTPUT. With OUTPUT set, a terminal is no matter.
# Run on a pseudo-terminal made by script(1).
. "$(dirname "$0")/lib.sh"
need script curl ss

pick_port; port=$PORT
rc=0
timeout 10 script -qec "env COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= '$COLLECT'" \
    "$WORK/tty.txt" </dev/null >"$WORK/tty.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "on a terminal the collector exited $rc, expected 2: $(cat "$WORK/tty.out")"
has "tcpdump -r -" <"$WORK/tty.out" || fail "no hint to pipe into tcpdump -r -: $(cat "$WORK/tty.out")"
has "OUTPUT" <"$WORK/tty.out" || fail "no hint to set OUTPUT: $(cat "$WORK/tty.out")"
size=$(stat -c %s "$WORK/tty.out")
[ "$size" -lt 400 ] || fail "$size bytes on the terminal: $(head -c 400 "$WORK/tty.out" | od -c | head)"
if ss -Htln 2>/dev/null | awk '{print $4}' | has ":$port\$"; then
    fail "something still listens on $port"
fi

# OUTPUT set: runs on a terminal, stops cleanly on SIGTERM
rc=0
timeout 20 script -qec "env COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= OUTPUT='$WORK/out.pcapng' \
    '$COLLECT' & pid=\$!; sleep 1; kill -TERM \$pid; wait \$pid" \
    "$WORK/tty2.txt" </dev/null >"$WORK/tty2.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "with OUTPUT set, on a terminal, the collector exited $rc: $(cat "$WORK/tty2.out")"
log "ok"
