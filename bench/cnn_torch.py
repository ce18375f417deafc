#!/usr/bin/python3
"""PyTorch peer of hessian_bench's W3 (bench/README.md): a LeNet-5-sized CNN.

    /usr/bin/python3 bench/cnn_torch.py --threads 1

W3: x [32,1,28,28] -> conv 1->6 5x5 -> relu -> max_pool 2 -> conv 6->16 5x5
-> relu -> max_pool 2 -> flatten 256 -> linear 120 -> relu -> linear 84 ->
relu -> linear 10 -> cross-entropy (mean); 44,426 parameters, float64, CPU.
The weights are PyTorch's default init under torch.manual_seed(103), the
inputs N(0,1), the classes uniform: only the timings are compared (the
values are checked in libhessian's tests against PyTorch, and the bench
checks its own against central differences).

Operations, timed end to end from the parameters as bench_torch.py in
/work/shared/peers times W0-W2 (median of repeats after 2 warm-up calls,
at least 5 repeats and 1.5 s, time.perf_counter):
  grad   loss + torch.autograd.grad(loss, params)
  hvp    loss + grad(create_graph=True) + grad(sum g.v, params)
Rows are printed in the peers' table format, so run_peers.sh puts them
beside libhessian's.
"""
import argparse
import os
import statistics
import sys
import time

# The BLAS that this torch calls must be held to the thread count before torch
# is imported (as in the peers' bench_torch.py).
_THREADS = 1
for _i, _a in enumerate(sys.argv):
    if _a == "--threads" and _i + 1 < len(sys.argv):
        _THREADS = int(sys.argv[_i + 1])
    elif _a.startswith("--threads="):
        _THREADS = int(_a.split("=", 1)[1])
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_k] = str(_THREADS)

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(256, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = x.reshape(x.shape[0], -1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def make():
    torch.manual_seed(103)
    model = LeNet()
    x = torch.randn(32, 1, 28, 28)
    y = torch.randint(0, 10, (32,))
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    v = torch.randn(n, generator=torch.Generator().manual_seed(7))
    vs = [t.view(p.shape) for t, p in zip(torch.split(v, [p.numel() for p in params]), params)]
    return dict(model=model, x=x, y=y, params=params, n=n, vs=vs)


def op_grad(W):
    loss = F.cross_entropy(W["model"](W["x"]), W["y"])
    return torch.autograd.grad(loss, W["params"])


def op_hvp(W):
    loss = F.cross_entropy(W["model"](W["x"]), W["y"])
    g = torch.autograd.grad(loss, W["params"], create_graph=True)
    dot = sum((gi * vi).sum() for gi, vi in zip(g, W["vs"]))
    return torch.autograd.grad(dot, W["params"])


def bench(fn, W, budget=1.5, min_reps=5, max_reps=2000, warmup=2):
    for _ in range(warmup):
        fn(W)
    ts = []
    t_start = time.perf_counter()
    while len(ts) < max_reps:
        t0 = time.perf_counter()
        fn(W)
        ts.append(time.perf_counter() - t0)
        if len(ts) >= min_reps and time.perf_counter() - t_start > budget:
            break
    return statistics.median(ts), min(ts), len(ts)


def fmt_t(s):
    if s < 1e-3:
        return "%.1f us" % (s * 1e6)
    if s < 1:
        return "%.2f ms" % (s * 1e3)
    return "%.2f s" % s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="short budgets, for a smoke run")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    W = make()
    print("# torch %s, threads=%d (torch intra-op + OPENBLAS_NUM_THREADS), float64, CPU; "
          "W3 LeNet-5 CNN, batch 32" % (torch.__version__, a.threads))
    print("| %-18s | t | W  | %6s | %-34s | %10s | %10s | %5s |" % (
        "peer", "n", "operation", "median", "min", "reps"))
    print("|---|---|---|---|---|---|---|---|")
    kw = dict(budget=0.2, min_reps=3, warmup=1) if a.quick else {}
    for name, fn in (("grad", op_grad), ("hvp", op_hvp)):
        med, mn, reps = bench(fn, W, **kw)
        print("| %-18s | %d | W3 | %6d | %-34s | %10s | %10s | %5d |" % (
            "torch", a.threads, W["n"], name, fmt_t(med), fmt_t(mn), reps), flush=True)


if __name__ == "__main__":
    main()
