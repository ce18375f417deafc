#!/bin/sh
# .ci/fuzz.sh -- builds tests/fuzz/fuzz_graph with clang (libFuzzer, ASan,
# UBSan) and runs it for a bounded time over a copy of tests/fuzz/corpus.
# Exits non-zero when the fuzzer finds a crash or a failed check; the
# reproducer (crash-*, oom-*, timeout-*) is left in the work directory,
# whose path is printed.
#
#   .ci/fuzz.sh                 60 seconds, 1 job
#   FUZZ_TIME=600 .ci/fuzz.sh   longer
#   FUZZ_JOBS=2 .ci/fuzz.sh     parallel jobs (libFuzzer -fork)
#   FUZZ_DIR=/tmp/f .ci/fuzz.sh work directory (default: a new one under /tmp)
#   FUZZ_KEEP_CORPUS=1          do not delete the grown corpus copy
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
time_s=${FUZZ_TIME:-60}
jobs=${FUZZ_JOBS:-1}
cc=${FUZZ_CC:-clang}
work=${FUZZ_DIR:-$(mktemp -d /tmp/hessian-fuzz.XXXXXX)}
mkdir -p "$work"

command -v "$cc" >/dev/null 2>&1 || { echo "fuzz.sh: $cc not found (libFuzzer needs clang)" >&2; exit 2; }

# The library's sources, as the top-level CMakeLists.txt lists them.
srcs=$(sed -n '/set(HESSIAN_SOURCES/,/)/p' "$root/CMakeLists.txt" | grep -o 'src/[A-Za-z0-9_]*\.c' || true)
[ -n "$srcs" ] || srcs=$(cd "$root" && ls src/*.c)
set --
for s in $srcs; do set -- "$@" "$root/$s"; done

echo "fuzz.sh: building $work/fuzz_graph"
"$cc" -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer \
    -I"$root/include" -I"$root/src" "$root/tests/fuzz/fuzz_graph.c" "$@" -lm \
    -o "$work/fuzz_graph"

rm -rf "$work/corpus"
cp -r "$root/tests/fuzz/corpus" "$work/corpus"

echo "fuzz.sh: running for ${time_s}s, $jobs job(s), in $work"
cd "$work"
status=0
if [ "$jobs" -gt 1 ]; then
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} ./fuzz_graph -max_total_time="$time_s" \
        -fork="$jobs" -ignore_crashes=0 -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        corpus >fuzz.log 2>&1 || status=$?
else
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} ./fuzz_graph -max_total_time="$time_s" \
        -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 corpus >fuzz.log 2>&1 || status=$?
fi
grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE|cov:' fuzz.log | tail -4 || true
if [ "$status" -ne 0 ] || ls crash-* oom-* timeout-* >/dev/null 2>&1; then
    echo "fuzz.sh: FAILED (status $status); log and reproducer in $work:" >&2
    ls "$work" >&2
    grep -E 'fuzz_graph: check failed|ERROR: |SUMMARY' fuzz.log | head -5 >&2 || true
    exit 1
fi
echo "fuzz.sh: no crash in ${time_s}s (corpus now $(find corpus -type f | wc -l) inputs)"
[ "${FUZZ_KEEP_CORPUS:-0}" = 1 ] || rm -rf "$work/corpus"
exit 0
