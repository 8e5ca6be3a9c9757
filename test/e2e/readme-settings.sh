#!/usr/bin/env bash
# The README's tables of settings (README.md, "Configuration") are what the
# programs print from their own tables: under `tapmesh-capture`,
# `tapmesh-relay` and `tapmesh-collect`, exactly `--markdown`; under "Common
# to all three", `--markdown-shared`, the same for every program but for
# defaults that differ (shown "a / b / c (capture / relay / collect)"). A
# setting added, removed or changed without scripts/readme-settings.sh run
# fails here. That script rewrites a README whose tables drifted back to
# this one, touching nothing else.
. "$(dirname "$0")/lib.sh"
need awk diff
BUILD=$(dirname "$BIN")
README=$root/README.md
SCRIPT=$root/scripts/readme-settings.sh
programs=(capture relay collect)

for p in "${programs[@]}"; do
    bin=$BIN/$p/tapmesh-$p
    "$bin" --markdown >"$WORK/$p.md" || fail "tapmesh-$p --markdown failed"
    "$bin" --markdown-shared >"$WORK/$p.shared.md" || fail "tapmesh-$p --markdown-shared failed"
    [ "$(wc -l <"$WORK/$p.md")" -ge 7 ] || fail "tapmesh-$p --markdown: $(cat "$WORK/$p.md")"
    head -n 2 "$WORK/$p.md" | tr -d '\n' | has '^| variable | default | meaning ||---|---|---|$' ||
        fail "tapmesh-$p --markdown: no table header"
    grep -q '^| `NODE_ID` |' "$WORK/$p.shared.md" || fail "tapmesh-$p --markdown-shared lacks NODE_ID"
    ! grep -q '^| `NODE_ID` |' "$WORK/$p.md" || fail "tapmesh-$p --markdown lists the shared NODE_ID"
done

# table FILE HEADING: the table (lines starting with "|") after the first
# line matching the regular expression HEADING in the Configuration section
table() {
    awk -v h="$2" '
        /^### / { inconf = ($0 == "### Configuration") }
        inconf && !seen && $0 ~ h { seen = 1; next }
        seen && /^\|/ { print; intable = 1; next }
        intable { exit }' "$1"
}

# check_readme FILE: says what differs and fails, or succeeds quietly
check_readme() {
    local file=$1 p rc=0
    for p in "${programs[@]}"; do
        table "$file" "^\`tapmesh-$p\`" >"$WORK/readme.$p.md"
        if ! diff -u "$WORK/$p.md" "$WORK/readme.$p.md" >"$WORK/$p.diff"; then
            echo "the README's tapmesh-$p table is not tapmesh-$p --markdown (- program, + README):"
            cat "$WORK/$p.diff"
            rc=1
        fi
    done
    table "$file" '^Common to all three:' >"$WORK/readme.shared.md"
    # row by row: variable and meaning as every program has them; the
    # default too, merged where the programs' differ
    awk '
        FNR == 1 { f++ }
        { cells[f, FNR] = $0; n[f] = FNR }
        END {
            if (n[1] != n[4] || n[2] != n[4] || n[3] != n[4]) {
                print "shared table: " n[4] " lines in the README, " n[1] " from the programs"
                exit 1
            }
            bad = 0
            for (i = 1; i <= n[4]; i++) {
                if (cells[1, i] == cells[2, i] && cells[2, i] == cells[3, i]) {
                    if (cells[4, i] != cells[1, i]) {
                        print "README:   " cells[4, i] "\nprograms: " cells[1, i]
                        bad = 1
                    }
                    continue
                }
                for (k = 1; k <= 4; k++) {
                    line = cells[k, i]
                    at = index(line, " | ")
                    var[k] = substr(line, 1, at - 1)
                    line = substr(line, at + 3)
                    at = index(line, " | ")
                    def[k] = substr(line, 1, at - 1)
                    rest[k] = substr(line, at + 3)
                }
                want = def[1] " / " def[2] " / " def[3] " (capture / relay / collect)"
                if (var[1] != var[2] || var[2] != var[3] || rest[1] != rest[2] || rest[2] != rest[3]) {
                    print "the programs differ in more than a default: " cells[1, i]
                    bad = 1
                } else if (var[4] != var[1] || rest[4] != rest[1] || def[4] != want) {
                    print "README:   " cells[4, i] "\nprograms: " var[1] " | " want " | " rest[1]
                    bad = 1
                }
            }
            exit bad
        }' "$WORK/capture.shared.md" "$WORK/relay.shared.md" "$WORK/collect.shared.md" \
        "$WORK/readme.shared.md" || rc=1
    return $rc
}

# the README as it is
check_readme "$README" || fail "README.md's settings tables drifted from the programs: run scripts/readme-settings.sh"

# the check bites: a row missing, a default changed, a setting added
drifted() {
    cp "$README" "$WORK/README.$1.md"
    sed -i "$2" "$WORK/README.$1.md"
    ! cmp -s "$README" "$WORK/README.$1.md" || fail "could not make a drifted README ($1)"
    ! check_readme "$WORK/README.$1.md" >"$WORK/drift.$1.log" || fail "a README with $1 passed the check"
}
drifted row-missing '0,/^| `RELAY_ENDPOINT` |/{//d}'
drifted default-changed 's/^| `FANOUT` | `failover` |/| `FANOUT` | `duplicate` |/'
drifted shared-changed 's/^| `LOG_LEVEL` | `info` |/| `LOG_LEVEL` | `warn` |/'
drifted row-added '/^| `ANNOTATE` |/a | `NEW_SETTING` | `1` | not in any program |'
log "the check fails on four drifted READMEs"

# the script: --check agrees, and a rewrite of a drifted README gives this one back
"$SCRIPT" --check "$BUILD" >"$WORK/script.log" 2>&1 || fail "scripts/readme-settings.sh --check: $(cat "$WORK/script.log")"
for d in row-missing default-changed shared-changed row-added; do
    ! "$SCRIPT" --check --readme "$WORK/README.$d.md" "$BUILD" >"$WORK/script.$d.log" 2>&1 ||
        fail "scripts/readme-settings.sh --check passed a README with $d"
    "$SCRIPT" --readme "$WORK/README.$d.md" "$BUILD" >"$WORK/script.$d.log" 2>&1 ||
        fail "scripts/readme-settings.sh on a README with $d: $(cat "$WORK/script.$d.log")"
    cmp -s "$README" "$WORK/README.$d.md" ||
        fail "scripts/readme-settings.sh did not give the README back ($d): $(diff "$README" "$WORK/README.$d.md")"
done
log "ok"
