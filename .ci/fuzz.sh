#!/bin/sh
# .ci/fuzz.sh -- builds the libFuzzer targets with clang (ASan, UBSan) and
# runs each for a bounded time: tests/fuzz/fuzz_graph over a copy of
# tests/fuzz/corpus, then tests/fuzz/fuzz_npy (the .npy and reference-format
# readers) over a copy of tests/fuzz/corpus_npy and tests/data/*.ref.
# Exits non-zero when a fuzzer finds a crash or a failed check; the
# reproducer (crash-*, oom-*, timeout-*) is left in the work directory,
# whose path is printed.
#
#   .ci/fuzz.sh                     60 s of fuzz_graph, 20 s of fuzz_npy, 1 job
#   FUZZ_TIME=600 .ci/fuzz.sh       longer fuzz_graph
#   FUZZ_NPY_TIME=300 .ci/fuzz.sh   longer fuzz_npy (0: skip it)
#   FUZZ_JOBS=2 .ci/fuzz.sh         parallel jobs (libFuzzer -fork)
#   FUZZ_DIR=/tmp/f .ci/fuzz.sh     work directory (default: a new one under /tmp)
#   FUZZ_KEEP_CORPUS=1              do not delete the grown corpus copies
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
time_s=${FUZZ_TIME:-60}
npy_time=${FUZZ_NPY_TIME:-20}
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

for target in fuzz_graph fuzz_npy; do
    echo "fuzz.sh: building $work/$target"
    "$cc" -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -fno-omit-frame-pointer \
        -I"$root/include" -I"$root/src" "$root/tests/fuzz/$target.c" "$@" -lm \
        -o "$work/$target"
done

rm -rf "$work/corpus" "$work/corpus_npy"
cp -r "$root/tests/fuzz/corpus" "$work/corpus"
cp -r "$root/tests/fuzz/corpus_npy" "$work/corpus_npy"
cp "$root"/tests/data/*.ref "$work/corpus_npy/"

# run TARGET SECONDS CORPUS [libFuzzer options]: fails the script on a finding
run() {
    target=$1 secs=$2 corpus=$3
    shift 3
    echo "fuzz.sh: $target for ${secs}s, $jobs job(s), in $work"
    status=0
    if [ "$jobs" -gt 1 ]; then
        set -- "$@" -fork="$jobs" -ignore_crashes=0
    fi
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "./$target" -max_total_time="$secs" \
        -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 "$@" "$corpus" \
        >"$target.log" 2>&1 || status=$?
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE|cov:' \
        "$target.log" | tail -4 || true
    if [ "$status" -ne 0 ] || ls crash-* oom-* timeout-* >/dev/null 2>&1; then
        echo "fuzz.sh: $target FAILED (status $status); log and reproducer in $work:" >&2
        ls "$work" >&2
        grep -E 'check failed|ERROR: |SUMMARY' "$target.log" | head -5 >&2 || true
        exit 1
    fi
    echo "fuzz.sh: $target: no crash in ${secs}s (corpus now $(find "$corpus" -type f | wc -l) inputs)"
}

cd "$work"
run fuzz_graph "$time_s" corpus
[ "$npy_time" -gt 0 ] && run fuzz_npy "$npy_time" corpus_npy -max_len=4096
[ "${FUZZ_KEEP_CORPUS:-0}" = 1 ] || rm -rf "$work/corpus" "$work/corpus_npy"
exit 0
