#!/bin/sh
# peak_rss.sh -- peak resident memory of the W2 gradient and Hessian-vector
# product in libhessian beside PyTorch, on this machine.
#
#   bench/peak_rss.sh [BUILD_DIR]          (default <repo>/build/release)
#
# W2 = Linear(784,128) -> tanh -> Linear(128,10), cross-entropy (mean),
# batch 64, 101,770 float64 parameters (see /work/shared/peers/README.md).
#
# What runs.  hessian_bench is not used: its correctness checks (three
# gradients, one HVP and three extra n-vectors) set its peak whatever --op
# says.  Instead a small C program, compiled here from the heredoc below into
# a temporary directory against BUILD_DIR/libhessian.a, builds W2 in one
# context (4 parameters, x [64,784], y [64]) and then does REPS times:
# forward + hess_grad (or forward + hess_hvp), rewinding the context after
# each.  The PyTorch program (python3-torch, Debian 1.13) builds the model and
# data as peers/bench_torch.py make_workload("W2") does and runs REPS times
# bench_torch.py's op_grad (or op_hvp: grad with create_graph, sum g.v, grad).
#
# What is measured.  Each process runs under `/usr/bin/time -v` (GNU time;
# apt-get install time), pinned with taskset to one CPU, with
# OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=1; "Maximum resident set size" is its
# peak RSS.  The baseline is the same program with op "none": it does all the
# setup (library loading, `import torch`, model, data, direction v) and exits
# without any gradient or HVP work.  increment = peak(op) - peak(none).
# The last column is read inside the op process from /proc/self/status:
# VmHWM after the work minus VmRSS before it, less the growth of RssFile over
# the work -- i.e. the increment without the shared-library code pages that
# the first call of each kernel faults in (large for libtorch).  File pages only
# grow here, so this is a lower bound of the anonymous (data) memory at the
# moment of peak RSS.
#
# Environment: REPS (default 100), PEAK_CPU (default 1, or 0 on one CPU),
# PYTHON (default /usr/bin/python3 if present, else python3), CC (default cc).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${1:-$ROOT/build/release}
REPS=${REPS:-100}
CC=${CC:-cc}
if [ -z "${PYTHON:-}" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
PIN=
if command -v taskset >/dev/null 2>&1; then
    CPU=${PEAK_CPU:-1}
    taskset -c "$CPU" true 2>/dev/null || CPU=0
    PIN="taskset -c $CPU"
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

LIB=$BUILD/libhessian.a
[ -f "$LIB" ] || { echo "$0: no $LIB (build the library first)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "$0: needs GNU time: apt-get install -y time" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/peak_rss.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

cat >"$TMP/w2mem.c" <<'EOF'
/* W2 probe: build the model, then reps x (forward + hess_grad | hess_hvp). */
#include <hessian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long status_kb(const char *key) /* a kB field of /proc/self/status */
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    const size_t k = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0 && line[k] == ':')
            v = strtol(line + k + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static double urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) * (1.0 / 9007199254740992.0);
}

int main(int argc, char **argv)
{
    const char *op = argc > 1 ? argv[1] : "none"; /* none | grad | hvp */
    const int reps = argc > 2 ? atoi(argv[2]) : 100;
    enum { IN = 784, HID = 128, OUT = 10, B = 64 };
    const size_t n = (size_t)HID * IN + HID + (size_t)OUT * HID + OUT;
    double *theta = malloc(n * sizeof *theta), *v = malloc(n * sizeof *v);
    double *x = malloc((size_t)B * IN * sizeof *x), *y = malloc(B * sizeof *y);
    double *hv = malloc(n * sizeof *hv); /* untouched until hess_hvp writes it */
    if (!theta || !v || !x || !y || !hv)
        return 1;
    uint64_t s = 102; /* nn.Linear scales; only the shapes matter here */
    for (size_t i = 0; i < n; i++) {
        theta[i] = (i < (size_t)HID * (IN + 1) ? 0.0357 : 0.0884) * (2 * urand(&s) - 1);
        v[i] = 2 * urand(&s) - 1;
    }
    for (size_t i = 0; i < (size_t)B * IN; i++)
        x[i] = 2 * urand(&s) - 1;
    for (int i = 0; i < B; i++)
        y[i] = (double)(i % OUT);
    hess_context *ctx;
    if (hess_context_create(NULL, &ctx) != HESS_OK)
        return 1;
    const int64_t sh[4][2] = {{HID, IN}, {HID, 0}, {OUT, HID}, {OUT, 0}};
    hess_tensor *p[4];
    for (int i = 0, off = 0; i < 4; off += (int)hess_tensor_numel(p[i]), i++)
        p[i] = hess_param_new(ctx, sh[i][1] ? 2 : 1, sh[i], theta + off);
    const int64_t xs[2] = {B, IN}, ys[1] = {B};
    hess_tensor *xt = hess_tensor_new(ctx, 2, xs, x), *yt = hess_tensor_new(ctx, 1, ys, y);
    if (hess_context_status(ctx) != HESS_OK)
        return 1;
    const hess_mark mark = hess_context_mark(ctx);
    const long rss0 = status_kb("VmRSS"), file0 = status_kb("RssFile");
    double chk = 0.0;
    for (int r = 0; strcmp(op, "none") != 0 && r < reps; r++) {
        hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, xt, p[0], p[1]));
        hess_tensor *loss = hess_cross_entropy(ctx, hess_linear(ctx, h, p[2], p[3]), yt);
        hess_status st;
        if (strcmp(op, "grad") == 0) {
            hess_tensor *g[4];
            st = hess_grad(ctx, loss, 4, p, g, 0);
            if (st == HESS_OK)
                chk += hess_tensor_data(g[0])[0];
        } else {
            st = hess_hvp(ctx, loss, 4, p, v, hv);
            chk += hv[0];
        }
        if (st != HESS_OK || hess_context_status(ctx) != HESS_OK) {
            fprintf(stderr, "w2mem: %s: %s\n", op, hess_context_errmsg(ctx));
            return 1;
        }
        hess_context_rewind(ctx, mark);
    }
    printf("inproc %ld %ld %ld %ld chk %g\n", rss0, file0, status_kb("VmHWM"),
           status_kb("RssFile"), chk);
    hess_context_destroy(ctx);
    free(theta), free(v), free(x), free(y), free(hv);
    return 0;
}
EOF

cat >"$TMP/w2mem.py" <<'EOF'
import os, sys
for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[k] = "1"
import torch
import torch.nn as nn
import torch.nn.functional as F


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


op = sys.argv[1] if len(sys.argv) > 1 else "none"
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 100
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
torch.manual_seed(102)  # as peers/bench_torch.py make_workload("W2")
model = nn.Sequential(nn.Linear(784, 128), nn.Tanh(), nn.Linear(128, 10))
x = torch.randn(64, 784)
y = torch.randint(0, 10, (64,))
params = list(model.parameters())
numels = [p.numel() for p in params]
v = torch.randn(sum(numels), generator=torch.Generator().manual_seed(7))
vs = [t.view(p.shape) for t, p in zip(torch.split(v, numels), params)]


def op_grad():  # = bench_torch.py op_grad
    loss = F.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, params)


def op_hvp():  # = bench_torch.py op_hvp
    loss = F.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
    return torch.autograd.grad(dot, params)


fn = {"grad": op_grad, "hvp": op_hvp, "none": None}[op]
rss0, file0 = status_kb("VmRSS"), status_kb("RssFile")
chk = 0.0
for _ in range(reps if fn else 0):
    out = fn()
    chk += float(out[0].reshape(-1)[0])
    out = None
print("inproc %d %d %d %d chk %g" % (rss0, file0, status_kb("VmHWM"), status_kb("RssFile"), chk))
EOF

"$CC" -O2 -std=c11 -I"$ROOT/include" -o "$TMP/w2mem" "$TMP/w2mem.c" "$LIB" -lopenblas -lm

# measure NAME CMD...: runs CMD under GNU time; sets PEAK (kB, the process's
# max RSS) and DATA (kB, in-process peak increment less file-page growth).
measure() {
    name=$1
    shift
    # shellcheck disable=SC2086 # $PIN is a command prefix, possibly empty
    if ! /usr/bin/time -v -o "$TMP/time.txt" $PIN "$@" >"$TMP/out.txt" 2>"$TMP/err.txt"; then
        echo "$0: $name failed:" >&2
        cat "$TMP/err.txt" "$TMP/out.txt" >&2
        exit 1
    fi
    PEAK=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$TMP/time.txt")
    DATA=$(awk '$1 == "inproc" {print ($4 - $2) - ($5 - $3)}' "$TMP/out.txt")
}

mib() { awk -v k="$1" 'BEGIN {printf "%.2f MiB", k / 1024}'; }

ROWS=
row() { # runtime op base peak data
    ROWS="$ROWS| $1 | $2 | $(mib "$3") | $(mib "$4") | $(mib $(($4 - $3))) | $(mib "$5") |
"
}

run_runtime() { # label cmd...
    label=$1
    shift
    measure "$label none" "$@" none 0
    base=$PEAK
    for op in grad hvp; do
        measure "$label $op" "$@" "$op" "$REPS"
        row "$label" "$op" "$base" "$PEAK" "$DATA"
    done
}

run_runtime libhessian "$TMP/w2mem"
TORCH_NOTE=
if "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    TV=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null)
    run_runtime "PyTorch $TV" "$PYTHON" "$TMP/w2mem.py"
else
    TORCH_NOTE="# PyTorch skipped: '$PYTHON -c \"import torch\"' failed"
fi

echo "# W2 peak RSS: $REPS x (forward + op) per process, float64, 1 thread, ${PIN:-not pinned}"
echo "# library: $LIB ($(date -u -r "$LIB" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?'))"
[ -z "$TORCH_NOTE" ] || echo "$TORCH_NOTE"
echo
echo "| runtime | op | baseline peak RSS | peak RSS with the work | increment | increment less code pages |"
echo "|---|---|---|---|---|---|"
printf '%s' "$ROWS"
echo
echo "baseline: the same process doing only the setup (libraries, model, data, v), no op."
echo "last column: in-process VmHWM - VmRSS before the work - RssFile growth (lower bound on data)."
