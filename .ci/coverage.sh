#!/bin/sh
# .ci/coverage.sh -- line and branch coverage of src/ by the whole test suite.
# Configures a throwaway gcc build with --coverage (atomic counters, as some
# tests run threads) and the cmocka unit tests required, builds it, runs ctest
# (all tests but package_consumer, which installs and builds another project),
# and prints gcovr's per-file tables for lines and branches and its summary.
# Exits non-zero when the build fails, when a test fails, or when coverage of
# src/ is below COV_MIN_LINES % of lines (95) or COV_MIN_BRANCHES % of
# branches (88); the report is printed in every case.
#
#   .ci/coverage.sh                  build in ./build-coverage (removed first)
#   COV_DIR=/tmp/cov .ci/coverage.sh another build directory
#   COV_BLAS=off .ci/coverage.sh     CBLAS off, so the built-in matrix kernel
#                                    runs for every product (default: auto, as
#                                    the default build)
#   COV_JOBS=2 .ci/coverage.sh       parallel build and ctest
#   COV_MIN_LINES=95 COV_MIN_BRANCHES=88  the thresholds, in percent
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${COV_DIR:-$root/build-coverage}
blas=${COV_BLAS:-auto}
jobs=${COV_JOBS:-1}
min_lines=${COV_MIN_LINES:-95}
min_branches=${COV_MIN_BRANCHES:-88}
command -v gcovr >/dev/null 2>&1 || { echo "coverage.sh: gcovr not found (Debian: apt-get install gcovr)" >&2; exit 2; }

rm -rf "$build"
echo "coverage.sh: configuring $build (gcc --coverage, HESSIAN_BLAS=$blas)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=gcc \
    -DCMAKE_C_FLAGS="--coverage -O0 -fprofile-update=atomic" -DCMAKE_EXE_LINKER_FLAGS=--coverage \
    -DCMAKE_SHARED_LINKER_FLAGS=--coverage -DHESSIAN_BUILD_BENCH=OFF -DHESSIAN_BUILD_TESTS=ON \
    -DHESSIAN_BLAS="$blas" >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; exit 1; }
rm -f "$build.configure.log"
cmake --build "$build" -j "$jobs" >"$build/build.log" 2>&1 || { tail -30 "$build/build.log" >&2; exit 1; }

echo "coverage.sh: running ctest"
tests_ok=1
if ! (cd "$build" && ctest -j "$jobs" -E '^package_consumer$' --no-tests=error >ctest.log 2>&1); then
    tests_ok=0
    echo "coverage.sh: some tests failed (coverage is still reported, then the script fails):"
    grep -E 'tests passed|\*\*\*Failed|Failed  |Exception|No tests' "$build/ctest.log" || true
else
    grep -E 'tests passed' "$build/ctest.log"
fi

# The compiler-identification objects CMake made with --coverage are no part
# of the project; one gcov pass, then the reports from its tracefile.
find "$build/CMakeFiles" -path '*CompilerId*' -name '*.gcno' -exec rm -f {} +
gcovr --root "$root" --filter "$root/src/" --object-directory "$build" --json "$build/coverage.json"
echo
echo "== Lines, per file (src/) =="
gcovr --root "$root" --add-tracefile "$build/coverage.json" --txt
echo "== Branches, per file (src/) =="
gcovr --root "$root" --add-tracefile "$build/coverage.json" --txt --branches
echo "== Summary =="
# --txt to a file of our own: gcovr checks an output path by creating and
# then unlinking it, which as root would replace /dev/null with a plain file
gcovr --root "$root" --add-tracefile "$build/coverage.json" --print-summary \
    --json-summary "$build/summary.json" --txt "$build/summary.txt" |
    grep -E '^(lines|functions|branches):'
targets_ok=1
python3 - "$build/summary.json" "$min_lines" "$min_branches" <<'PY' || targets_ok=0
import json, sys
s = json.load(open(sys.argv[1]))
min_line, min_branch = float(sys.argv[2]), float(sys.argv[3])
if s["line_total"] == 0 or s["branch_total"] == 0:
    sys.exit("coverage.sh: gcovr found no lines or no branches of src/")
# from the counts: gcovr's *_percent are rounded to 0.1
line = 100.0 * s["line_covered"] / s["line_total"]
branch = 100.0 * s["branch_covered"] / s["branch_total"]
print("line   %.2f%% %s %g%%" % (line, ">=" if line >= min_line else "<", min_line))
print("branch %.2f%% %s %g%%" % (branch, ">=" if branch >= min_branch else "<", min_branch))
met = line >= min_line and branch >= min_branch
print("targets (line >= %g%%, branch >= %g%%): %s" % (min_line, min_branch, "met" if met else "NOT met"))
sys.exit(0 if met else 1)
PY
if [ "$tests_ok" = 0 ]; then
    echo "coverage.sh: FAILED: tests failed (see $build/ctest.log)" >&2
    exit 1
fi
if [ "$targets_ok" = 0 ]; then
    echo "coverage.sh: FAILED: coverage of src/ below line $min_lines% / branch $min_branches%" >&2
    exit 1
fi
exit 0
