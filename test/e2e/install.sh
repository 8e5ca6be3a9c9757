#!/usr/bin/env bash
# `cmake --install` puts the programs (and tapmesh-keygen, tapmesh-top) in <prefix>/bin, and they run.
. "$(dirname "$0")/lib.sh"
cmake --install "$(dirname "$BIN")" --prefix "$WORK/prefix" >"$WORK/install.log" ||
    fail "cmake --install: $(cat "$WORK/install.log")"
for p in tapmesh-capture tapmesh-relay tapmesh-collect tapmesh-keygen tapmesh-top; do
    [ -x "$WORK/prefix/bin/$p" ] || fail "$p not installed in <prefix>/bin"
    "$WORK/prefix/bin/$p" --version | has "^$p " || fail "$p --version"
done
log "ok"
