#!/bin/sh
# .ci/fuzz.sh -- builds the libFuzzer targets through CMake (the fuzz preset:
# clang, HESSIAN_FUZZ=ON, ASan and UBSan, into build/fuzz), replays their seed
# corpora once (ctest, label fuzz), then runs each target for a bounded time
# over a copy of its seeds.  The targets, their seeds, run times and options
# come from the one list in tests/fuzz/CMakeLists.txt, which CMake writes to
# build/fuzz/fuzz_targets.sh; nothing here names a target or a source file.
# Exits non-zero when the build or a replay fails, when a fuzzer finds a crash
# or a failed check (the reproducer, crash-*, oom-* or timeout-*, is left in
# the work directory, whose path is printed), or when an input is missing.
#
#   .ci/fuzz.sh                     60 s of fuzz_graph, 20 s of fuzz_npy, 1 job
#   FUZZ_TIME=600 .ci/fuzz.sh       longer fuzz_graph
#   FUZZ_NPY_TIME=300 .ci/fuzz.sh   longer fuzz_npy (0: no fuzzing run for it, said
#                                   loudly; its corpus is still replayed)
#   FUZZ_JOBS=2 .ci/fuzz.sh         parallel jobs (libFuzzer -fork)
#   FUZZ_CC=clang-15 .ci/fuzz.sh    another clang
#   FUZZ_DIR=/tmp/f .ci/fuzz.sh     work directory (default: a new one under /tmp)
#   FUZZ_KEEP_CORPUS=1              do not delete the grown corpus copies
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${FUZZ_JOBS:-1}
cc=${FUZZ_CC:-clang}
build=$root/build/fuzz # the fuzz preset's binaryDir
manifest=$build/fuzz_targets.sh

command -v "$cc" >/dev/null 2>&1 || { echo "fuzz.sh: $cc not found (libFuzzer needs clang)" >&2; exit 2; }

work=${FUZZ_DIR:-$(mktemp -d /tmp/hessian-fuzz.XXXXXX)}
mkdir -p "$work"

# Configure, build (target hessian_fuzzers) and replay every seed once.
cd "$root"
cmake --preset fuzz -DCMAKE_C_COMPILER="$cc" >"$work/configure.log" 2>&1 ||
    { cat "$work/configure.log" >&2; echo "fuzz.sh: configure failed" >&2; exit 1; }
cmake --build --preset fuzz
ctest --preset fuzz

[ -f "$manifest" ] || { echo "fuzz.sh: $manifest was not written (HESSIAN_FUZZ off?)" >&2; exit 1; }
cd "$work"

# fuzz_target NAME EXECUTABLE TIME_VARIABLE DEFAULT_SECONDS 'OPTIONS' SEED...:
# one line of the manifest.  Copies the seeds into NAME_corpus (the fuzzer
# adds to its corpus) and runs the target; fails the script on a finding.
n_targets=0
fuzz_target() {
    name=$1 exe=$2 var=$3 secs=$4 options=$5
    shift 5
    n_targets=$((n_targets + 1))
    eval "secs=\${$var:-$secs}"
    case $secs in
    '' | *[!0-9]*) echo "fuzz.sh: $var=$secs is not a number of seconds" >&2; exit 2 ;;
    esac
    [ -x "$exe" ] || { echo "fuzz.sh: $name: $exe was not built" >&2; exit 1; }
    [ "$#" -gt 0 ] || { echo "fuzz.sh: $name: no seeds in the manifest" >&2; exit 1; }
    if [ "$secs" -eq 0 ]; then
        echo "fuzz.sh: $name NOT fuzzed: $var=0 (its corpus was replayed above)"
        return 0
    fi
    corpus=${name}_corpus
    rm -rf "$corpus"
    mkdir "$corpus"
    cp "$@" "$corpus/"
    set --
    if [ "$jobs" -gt 1 ]; then
        set -- -fork="$jobs" -ignore_crashes=0
    fi
    echo "fuzz.sh: $name for ${secs}s, $jobs job(s), in $work"
    status=0
    # shellcheck disable=SC2086 # options: libFuzzer flags, split on blanks
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$exe" -max_total_time="$secs" \
        -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 $options "$@" "$corpus" \
        >"$name.log" 2>&1 || status=$?
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE|cov:' \
        "$name.log" | tail -4 || true
    if [ "$status" -ne 0 ] || ls crash-* oom-* timeout-* >/dev/null 2>&1; then
        echo "fuzz.sh: $name FAILED (status $status); log and reproducer in $work:" >&2
        ls "$work" >&2
        grep -E 'check failed|ERROR: |SUMMARY' "$name.log" | head -5 >&2 || true
        exit 1
    fi
    echo "fuzz.sh: $name: no crash in ${secs}s (corpus now $(find "$corpus" -type f | wc -l) inputs)"
    [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ] || rm -rf "$corpus"
}

# shellcheck source=/dev/null # written by CMake
. "$manifest"
[ "$n_targets" -gt 0 ] || { echo "fuzz.sh: $manifest lists no fuzz target" >&2; exit 1; }
echo "fuzz.sh: $n_targets fuzz target(s) passed"
exit 0
