#!/usr/bin/env bash
# The manual pages the build makes from the programs' own tables
# (<build>/man: tapmesh-capture.8, tapmesh-relay.8, tapmesh-collect.8,
# tapmesh-keygen.1, tapmesh-top.1): groff reads each without a warning, `man -l` renders
# it within 80 columns, each lists every setting that the program's --help
# lists (with its flag and default) and the sections an operator looks for,
# each is what the installed program prints with --man (the build is not
# stale), and `cmake --install` puts them where man finds them.
. "$(dirname "$0")/lib.sh"
need groff man
BUILD=$(dirname "$BIN")
MANDIR=$BUILD/man
KEYGEN=$BIN/keygen/tapmesh-keygen
TOP=$BIN/top/tapmesh-top

# render PAGE: the page as `man -l` shows it on an 80-column terminal;
# fails on anything man or groff says on standard error
render() {
    local page=$1 name out err
    name=$(basename "$1")
    out=$WORK/$name.txt
    err=$WORK/$name.err
    MANWIDTH=80 man --warnings -l "$page" >"$out" 2>"$err" || fail "man -l $page failed: $(cat "$err")"
    [ ! -s "$err" ] || fail "man -l $page: $(cat "$err")"
    [ -s "$out" ] || fail "man -l $page rendered nothing"
    cat "$out"
}

# check_page PAGE PROGRAM SECTIONS...: groff -ww has no warning, the
# rendering fits 80 columns, has every section named, and the page is what
# PROGRAM --man prints
check_page() {
    local page=$1 bin=$2 name
    shift 2
    name=$(basename "$page")
    [ -s "$page" ] || fail "$page was not made by the build"
    local warnings
    warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1) || fail "groff failed on $name: $warnings"
    [ -z "$warnings" ] || fail "groff -ww on $name: $warnings"
    "$bin" --man >"$WORK/$name.now" || fail "$bin --man failed"
    cmp -s "$page" "$WORK/$name.now" || fail "$page differs from $(basename "$bin") --man"
    render "$page" >"$WORK/$name.rendered"
    local wide
    wide=$(awk 'length($0) > 80' "$WORK/$name.rendered")
    [ -z "$wide" ] || fail "$name is wider than 80 columns: $wide"
    for section in "$@"; do
        grep -qx -- "$section" "$WORK/$name.rendered" || fail "$name has no section $section"
    done
    grep -q -- "^ *${name%.*} - [a-z]" "$WORK/$name.rendered" || fail "$name: NAME line missing"
}

sections=(NAME SYNOPSIS DESCRIPTION OPTIONS ENVIRONMENT "EXIT STATUS" SIGNALS FILES EXAMPLES "SEE ALSO")
for p in capture relay collect; do
    bin=$BIN/$p/tapmesh-$p
    page=$MANDIR/tapmesh-$p.8
    check_page "$page" "$bin" "${sections[@]}"
    text=$WORK/tapmesh-$p.8.rendered
    "$bin" --help >"$WORK/$p.help" || fail "tapmesh-$p --help failed"
    # every setting of --help: its variable, flag and default
    n=0
    while read -r var flag; do
        n=$((n + 1))
        grep -Eq -- "^ +$var, $flag( |\$)" "$text" || fail "tapmesh-$p.8 lacks $var, $flag"
        def=$(awk -v v="  $var, $flag " 'index($0, v) == 1 { on = 1; next }
            on && /^      default: / { sub(/^      default: /, ""); sub(/; range .*/, ""); print; exit }' "$WORK/$p.help")
        [ -n "$def" ] || fail "tapmesh-$p --help gives no default for $var"
        # the entry, as rendered, names the same default
        awk -v v="$var, $flag" -v d="$def" '
            !on && index($0, v) { on = 1; next }
            on && /^ +[A-Z][A-Z0-9_]*, --/ { exit }
            on && index($0, "Default: " d ".") { found = 1; exit }
            END { exit !found }' "$text" || fail "tapmesh-$p.8: $var's default is not $def"
    done < <(sed -n 's/^  \([A-Z][A-Z0-9_]*\), \(--[a-z0-9-]*\) .*/\1 \2/p' "$WORK/$p.help")
    [ "$n" -ge 10 ] || fail "tapmesh-$p --help listed only $n settings"
    # the other programs are named under SEE ALSO
    for other in capture relay collect; do
        [ "$other" = "$p" ] && continue
        sed -n '/^SEE ALSO$/,$p' "$text" | has "tapmesh-$other(8)" || fail "tapmesh-$p.8: SEE ALSO lacks tapmesh-$other(8)"
    done
    sed -n '/^SEE ALSO$/,$p' "$text" | has "tapmesh-keygen(1)" || fail "tapmesh-$p.8: SEE ALSO lacks tapmesh-keygen(1)"
    # signals the service handles, files it keeps
    sed -n '/^SIGNALS$/,/^FILES$/p' "$text" | has "SIGTERM" || fail "tapmesh-$p.8: SIGNALS lacks SIGTERM"
    sed -n '/^SIGNALS$/,/^FILES$/p' "$text" | has "SIGHUP" || fail "tapmesh-$p.8: SIGNALS lacks SIGHUP"
    log "tapmesh-$p.8: $n settings"
done
sed -n '/^FILES$/,/^EXAMPLES$/p' "$WORK/tapmesh-capture.8.rendered" | has "DLQ_DIR" || fail "tapmesh-capture.8: FILES lacks DLQ_DIR"
sed -n '/^FILES$/,/^EXAMPLES$/p' "$WORK/tapmesh-capture.8.rendered" | has "STATE_DIR" || fail "tapmesh-capture.8: FILES lacks STATE_DIR"
sed -n '/^FILES$/,/^EXAMPLES$/p' "$WORK/tapmesh-collect.8.rendered" | has "STATE_DIR" || fail "tapmesh-collect.8: FILES lacks STATE_DIR"

check_page "$MANDIR/tapmesh-keygen.1" "$KEYGEN" NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" FILES EXAMPLES "SEE ALSO"
for opt in --node-id --relay; do
    grep -Eq -- "^ +$opt( |\$)" "$WORK/tapmesh-keygen.1.rendered" || fail "tapmesh-keygen.1 lacks $opt"
done

check_page "$MANDIR/tapmesh-top.1" "$TOP" NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES "SEE ALSO"
for opt in "-i, --interval SECONDS" "-n, --count COUNT" --plain; do
    grep -Eq -- "^ +$opt( |\$)" "$WORK/tapmesh-top.1.rendered" || fail "tapmesh-top.1 lacks $opt"
    "$TOP" --help | has "^  $opt\$" || fail "tapmesh-top --help lacks $opt"
done

# installed where man looks for them
cmake --install "$BUILD" --prefix "$WORK/prefix" >"$WORK/install.log" ||
    fail "cmake --install: $(cat "$WORK/install.log")"
for page in man8/tapmesh-capture.8 man8/tapmesh-relay.8 man8/tapmesh-collect.8 man1/tapmesh-keygen.1 man1/tapmesh-top.1; do
    [ -s "$WORK/prefix/share/man/$page" ] || fail "cmake --install did not put share/man/$page"
done
found=$(MANPATH=$WORK/prefix/share/man man -w tapmesh-relay 2>&1) || fail "man -w tapmesh-relay: $found"
[ "$found" = "$WORK/prefix/share/man/man8/tapmesh-relay.8" ] || fail "man -w tapmesh-relay found $found"
log "ok"
