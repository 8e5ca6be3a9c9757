#!/usr/bin/env bash
# Rewrites the tables of settings in README.md ("### Configuration") from
# the programs' own tables, so that the README says what --help and the
# manual pages say:
#   under "Common to all three:"  the rows every program has
#                                 (--markdown-shared; a default that differs
#                                 is shown "a / b / c (capture / relay /
#                                 collect)")
#   under "`tapmesh-capture`", "`tapmesh-relay`", "`tapmesh-collect`"
#                                 that program's own rows (--markdown)
# Nothing else in the README changes. With --check, changes nothing and
# fails, showing the difference, when the README is not up to date
# (test/e2e/readme-settings.sh checks the same).
#
#   scripts/readme-settings.sh [--check] [--readme FILE] [BUILD_DIR]
#
# BUILD_DIR (default: build) holds the built programs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
check=
readme=$root/README.md
build=$root/build
while [ $# -gt 0 ]; do
    case $1 in
    --check) check=1 ;;
    --readme)
        readme=$2
        shift
        ;;
    -h | --help)
        sed -n '2,17s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    -*)
        echo "readme-settings: unknown option $1" >&2
        exit 2
        ;;
    *) build=$1 ;;
    esac
    shift
done
die() {
    echo "readme-settings: $*" >&2
    exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
programs=(capture relay collect)
for p in "${programs[@]}"; do
    bin=$build/services/$p/tapmesh-$p
    [ -x "$bin" ] || die "$bin is not built (cmake --build $build)"
    "$bin" --markdown >"$tmp/$p.md" || die "tapmesh-$p --markdown failed"
    "$bin" --markdown-shared >"$tmp/$p.shared.md" || die "tapmesh-$p --markdown-shared failed"
done

# The shared rows, as every program has them; where only the defaults
# differ, all three side by side. Cells are split at " | " (a | inside a
# cell is written \|).
awk '
    FNR == 1 { f++ }
    { line[f, FNR] = $0; n[f] = FNR }
    function cells(s, k,    at) {
        at = index(s, " | "); var[k] = substr(s, 1, at - 1); s = substr(s, at + 3)
        at = index(s, " | "); def[k] = substr(s, 1, at - 1); rest[k] = substr(s, at + 3)
    }
    END {
        if (n[1] != n[2] || n[2] != n[3]) {
            print "the programs have different numbers of shared rows" > "/dev/stderr"
            exit 1
        }
        for (i = 1; i <= n[1]; i++) {
            if (line[1, i] == line[2, i] && line[2, i] == line[3, i]) {
                print line[1, i]
                continue
            }
            for (k = 1; k <= 3; k++)
                cells(line[k, i], k)
            if (var[1] != var[2] || var[2] != var[3] || rest[1] != rest[2] || rest[2] != rest[3]) {
                print "shared rows differ in more than a default: " line[1, i] > "/dev/stderr"
                exit 1
            }
            print var[1] " | " def[1] " / " def[2] " / " def[3] " (capture / relay / collect) | " rest[1]
        }
    }' "$tmp/capture.shared.md" "$tmp/relay.shared.md" "$tmp/collect.shared.md" >"$tmp/shared.md" ||
    die "cannot merge the shared rows"

# Each table (the lines starting with |) after its heading line in the
# Configuration section is replaced; every one must be found once.
awk -v dir="$tmp" '
    BEGIN {
        heading["^Common to all three:"] = "shared"
        heading["^`tapmesh-capture`"] = "capture"
        heading["^`tapmesh-relay`"] = "relay"
        heading["^`tapmesh-collect`"] = "collect"
    }
    /^### / { inconf = ($0 == "### Configuration") }
    skipping && /^\|/ { next }
    { skipping = 0 }
    pending != "" && /^\|/ {
        file = dir "/" pending ".md"
        while ((getline row < file) > 0)
            print row
        close(file)
        done[pending] = 1
        pending = ""
        skipping = 1
        next
    }
    inconf && pending == "" {
        for (h in heading)
            if ($0 ~ h && !(heading[h] in done))
                pending = heading[h]
    }
    { print }
    END {
        for (h in heading)
            if (!(heading[h] in done)) {
                print "no table under a line matching " h " in ### Configuration" > "/dev/stderr"
                exit 1
            }
    }' "$readme" >"$tmp/README.md" || die "$readme: cannot find every table"

if cmp -s "$readme" "$tmp/README.md"; then
    echo "readme-settings: $readme is up to date"
    exit 0
fi
if [ -n "$check" ]; then
    echo "readme-settings: $readme's tables differ from the programs' (- README, + programs):"
    diff -u "$readme" "$tmp/README.md" || true
    echo "readme-settings: run scripts/readme-settings.sh to rewrite them"
    exit 1
fi
cat "$tmp/README.md" >"$readme" # in place: the file keeps its mode and links
echo "readme-settings: rewrote the tables of settings in $readme"
