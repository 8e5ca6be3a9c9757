#!/bin/sh
# The whole test suite, from a fresh clone on Debian 12: installs what is
# missing, builds with -Werror, runs every test (unit, fuzz corpus, end to
# end), then builds again with AddressSanitizer and UndefinedBehaviorSanitizer
# and runs every test again, and checks the formatting.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

scripts/install-deps.sh

echo "== build (WERROR)"
cmake -S . -B build -DWERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== tests"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== build (WERROR, ASAN, UBSAN)"
cmake -S . -B build-asan -DWERROR=ON -DASAN=ON -DUBSAN=ON >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"

if command -v clang-format >/dev/null; then
    echo "== formatting"
    bad=$(git ls-files '*.c' '*.h' | while read -r f; do
        clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"
    done)
    if [ -n "$bad" ]; then
        echo "not clang-formatted (run clang-format -i):" $bad >&2
        exit 1
    fi
fi
echo "== all tests passed"
