#!/usr/bin/env python3
"""Per-FedAvg with the exact Hessian-vector product in PyTorch (float64, one
thread): the algorithm of examples/per_fedavg.c (--algo hvp) on the same data,
model, initial parameters, client split, client picks and minibatches -- the
random streams of examples/per_fedavg_lib.c are reproduced here bit for bit --
so that the two runs follow the same trajectory up to rounding, and their
seconds per round compare like for like.

    /usr/bin/python3 bench/per_fedavg_torch.py [--rounds 20] [--ours build/release/examples/per_fedavg]

With --ours PATH it then runs libhessian's program with the same options (one
thread: OPENBLAS_NUM_THREADS=1) and prints both seconds per round, their
ratio, and how far apart the two accuracy curves are.  The timed part of a
round is its arithmetic: local steps, averaging, personalised evaluation; the
pure-Python random draws of a round (index bookkeeping, a few milliseconds
here, negligible in C) are made before its clock starts.  See bench/README.md.
"""
import argparse
import gzip
import math
import os
import re
import resource
import struct
import subprocess
import sys
import time

# One thread for the BLAS too, as bench/run_peers.sh does: PyTorch's
# set_num_threads does not reach OpenBLAS's own thread pool, which starts when
# the library loads (before numpy and torch are imported, then).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

M64 = (1 << 64) - 1
STREAM_INIT, STREAM_SPLIT, STREAM_SELECT, STREAM_LOCAL, STREAM_EVAL = 1, 2, 3, 4, 5


# --------------------------------------------------------------------------
# The keyed streams of per_fedavg_lib.c (splitmix64 keys, xoshiro256**)
# --------------------------------------------------------------------------

def _splitmix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    def __init__(self, seed, a, b, purpose):
        x, h = _splitmix(seed & M64)
        x, h = _splitmix(h ^ a)
        x, h = _splitmix(h ^ b)
        x = h ^ purpose
        self.s = []
        for _ in range(4):
            x, z = _splitmix(x)
            self.s.append(z)

    def next(self):
        s = self.s
        out = (_rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return out

    def uniform(self):
        return (self.next() >> 11) * 2.0**-53

    def below(self, n):
        lim = M64 - M64 % n
        while True:
            v = self.next()
            if v < lim:
                return v % n

    def sample(self, n, k):
        out = []
        for j in range(n - k, n):
            t = self.below(j + 1)
            out.append(j if t in out else t)
        return out


# --------------------------------------------------------------------------
# Data, split, initial parameters (as per_fedavg_lib.c)
# --------------------------------------------------------------------------

def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        sys.exit("%s: not an IDX file of unsigned bytes" % path)
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def split(ytrain, ytest, n, k, seed, classes=10):
    perm = list(range(classes))
    r = Rng(seed, 0, 0, STREAM_SPLIT)
    for i in range(classes, 1, -1):
        j = r.below(i)
        perm[i - 1], perm[j] = perm[j], perm[i - 1]
    shares = []
    for part, y in enumerate((ytrain, ytest)):
        lists = [[] for _ in range(n)]
        for c in range(classes):
            holders = [(i, j) for i in range(n) for j in range(k) if perm[(i * k + j) % classes] == c]
            if not holders:
                continue
            rc = Rng(seed, c, part, STREAM_SPLIT)
            idx = [int(i) for i in np.flatnonzero(y == c)]
            for i in range(len(idx), 1, -1):
                j = rc.below(i)
                idx[i - 1], idx[j] = idx[j], idx[i - 1]
            m, h = len(idx), len(holders)
            for q, (i, _) in enumerate(holders):
                lists[i].extend(idx[m * q // h:m * (q + 1) // h])
        shares.append(lists)
    return shares[0], shares[1]


LAYERS = [(784, 80), (80, 60), (60, 10)]


def init_params(seed):
    r = Rng(seed, 0, 0, STREAM_INIT)
    w = []
    for fan_in, fan_out in LAYERS:
        bound = 1.0 / math.sqrt(fan_in)
        w.extend(bound * (2.0 * r.uniform() - 1.0) for _ in range(fan_out * (fan_in + 1)))
    return torch.tensor(w, dtype=torch.float64)


# --------------------------------------------------------------------------
# The model on a flat parameter vector, as torch.nn.utils.parameters_to_vector
# lays out nn.Sequential(Linear(784, 80), ELU(), Linear(80, 60), ELU(), Linear(60, 10))
# --------------------------------------------------------------------------

def logits(w, x):
    at, h = 0, x
    for layer, (fan_in, fan_out) in enumerate(LAYERS):
        W = w[at:at + fan_out * fan_in].view(fan_out, fan_in)
        at += fan_out * fan_in
        b = w[at:at + fan_out]
        at += fan_out
        h = F.linear(h, W, b)
        if layer < 2:
            h = F.elu(h)
    return h


def grad(w, x, y):
    w = w.detach().requires_grad_(True)
    loss = F.cross_entropy(logits(w, x), y)
    g, = torch.autograd.grad(loss, w)
    return g, loss.detach()


def hvp(w, x, y, v):
    """H v by double backward, the exact Hessian-vector product."""
    w = w.detach().requires_grad_(True)
    g, = torch.autograd.grad(F.cross_entropy(logits(w, x), y), w, create_graph=True)
    hv, = torch.autograd.grad(g @ v, w)
    return hv


def local_step(w, a, b, batches):
    """Per-FedAvg (HVP): w - beta (g - alpha H(w, D'') g), g = grad f(w - alpha grad f(w, D), D')."""
    (x, y), (x1, y1), (x2, y2) = batches
    g1, loss = grad(w, x, y)
    g2, _ = grad(w - a * g1, x1, y1)
    h = hvp(w, x2, y2, g2)
    return w - b * (g2 - a * h), loss


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--classes-per-client", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--local-steps", type=int, default=10)
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--beta", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--csv", help="write the curve as per_fedavg --csv does")
    ap.add_argument("--ours", help="libhessian's per_fedavg program, run after with the same options")
    o = ap.parse_args()
    torch.set_num_threads(o.threads)
    torch.set_default_dtype(torch.float64)

    d = o.data
    xtr = load_idx(os.path.join(d, "train-images-idx3-ubyte.gz")).reshape(-1, 784)
    ytr = load_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"))
    xte = load_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz")).reshape(-1, 784)
    yte = load_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
    train_idx, test_idx = split(ytr, yte, o.clients, o.classes_per_client, o.seed)
    # each client's samples as float64 tensors, scaled as libhessian scales them
    cx = [torch.from_numpy(xtr[i].astype(np.float64)) / 255.0 for i in train_idx]
    cy = [torch.from_numpy(ytr[i].astype(np.int64)) for i in train_idx]
    tx = [torch.from_numpy(xte[i].astype(np.float64)) / 255.0 for i in test_idx]
    ty = [torch.from_numpy(yte[i].astype(np.int64)) for i in test_idx]
    m = max(1, int(math.floor(o.fraction * o.clients + 0.5)))
    a, b, B = o.alpha, o.beta, o.batch
    print("per_fedavg_torch: PyTorch %s, %d thread(s) (OPENBLAS_NUM_THREADS=%s), float64; Fashion-MNIST, %d clients with %d "
          "classes each, %d per round, %d rounds of %d local steps, batch %d, alpha %g, beta %g, seed %d"
          % (torch.__version__, torch.get_num_threads(), os.environ["OPENBLAS_NUM_THREADS"], o.clients, o.classes_per_client, m,
             o.rounds, o.local_steps, B, a, b, o.seed), flush=True)

    def evaluate(w, rnd):
        picks = [Rng(o.seed, rnd, i, STREAM_EVAL).sample(len(train_idx[i]), B) for i in range(o.clients)]
        t0, c0 = time.perf_counter(), time.process_time()
        accs = []
        for i in range(o.clients):
            g, _ = grad(w, cx[i][picks[i]], cy[i][picks[i]])
            with torch.no_grad():
                pred = logits(w - a * g, tx[i]).argmax(dim=1)
            accs.append((pred == ty[i]).sum().item() / len(ty[i]))
        cpu[0] += time.process_time() - c0
        return sum(accs) / o.clients, time.perf_counter() - t0

    w = init_params(o.seed)
    cpu = [0.0]  # CPU seconds of the timed parts of rounds 1.., once round 0 is done  # (round, loss, accuracy, seconds, seconds of the evaluation)
    acc, secs = evaluate(w, 0)
    curve = [(0, float("nan"), acc, secs, secs)]
    cpu[0] = 0.0
    print("hvp    round %4d  loss          -  personalized accuracy %.4f  %7.3f s (evaluation %.3f s)"
          % (0, acc, secs, secs), flush=True)
    for rnd in range(1, o.rounds + 1):
        # the round's random draws (pure Python), before its clock starts
        chosen = sorted(Rng(o.seed, rnd, 0, STREAM_SELECT).sample(o.clients, m))
        draws = {}
        for i in chosen:
            r = Rng(o.seed, rnd, i, STREAM_LOCAL)
            draws[i] = [[r.sample(len(train_idx[i]), B) for _ in range(3)] for _ in range(o.local_steps)]
        t0, c0 = time.perf_counter(), time.process_time()
        total, loss_sum = torch.zeros_like(w), 0.0
        for i in chosen:
            wi, li = w.clone(), 0.0
            for step in draws[i]:
                wi, loss = local_step(wi, a, b, [(cx[i][p], cy[i][p]) for p in step])
                li += loss.item()
            total += wi
            loss_sum += li / o.local_steps
        w = total / m
        train_secs = time.perf_counter() - t0
        cpu[0] += time.process_time() - c0
        acc, eval_secs = evaluate(w, rnd)
        curve.append((rnd, loss_sum / m, acc, train_secs + eval_secs, eval_secs))
        print("hvp    round %4d  loss %10.6f  personalized accuracy %.4f  %7.3f s (evaluation %.3f s)"
              % (rnd, loss_sum / m, acc, train_secs + eval_secs, eval_secs), flush=True)
    torch_spr = sum(c[3] for c in curve[1:]) / o.rounds
    print("final personalized accuracy: %.4f" % curve[-1][2])
    if o.csv:
        with open(o.csv, "w") as f:
            f.write("algorithm,round,train_loss,personalized_accuracy\n")
            for rnd, loss, acc, _, _ in curve:
                f.write("hvp,%d,%.17g,%.17g\n" % (rnd, loss, acc))
    if not o.ours:
        return
    args = [o.ours, "--algo", "hvp", "--data", o.data, "--clients", str(o.clients),
            "--classes-per-client", str(o.classes_per_client), "--rounds", str(o.rounds),
            "--local-steps", str(o.local_steps), "--fraction", repr(o.fraction), "--alpha", repr(a),
            "--beta", repr(b), "--batch", str(B), "--seed", str(o.seed)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")

    def child_cpu(argv):
        """stdout of the program, and the CPU seconds it used (user + system)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        text = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return text, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    print("\n# libhessian: " + " ".join(args), flush=True)
    out, cpu_all = child_cpu(args)
    sys.stdout.write(out)
    # the same run stopped after round 1: what is left is the CPU time of rounds 2..R
    short = list(args)
    short[short.index("--rounds") + 1] = "1"
    _, cpu_setup = child_cpu(short)
    ours = {}
    for line in out.splitlines():
        mt = re.match(r"hvp +round +(\d+) +loss +\S+ +personalized accuracy ([0-9.]+) +([0-9.]+) s "
                      r"\(evaluation ([0-9.]+) s\)", line)
        if mt:
            ours[int(mt.group(1))] = tuple(float(mt.group(k)) for k in (2, 3, 4))
    rounds = range(1, o.rounds + 1)
    ours_spr = sum(ours[r][1] for r in rounds) / o.rounds
    ours_eval = sum(ours[r][2] for r in rounds) / o.rounds
    torch_eval = sum(curve[r][4] for r in rounds) / o.rounds
    gap = max(abs(ours[r][0] - curve[r][2]) for r in range(o.rounds + 1))
    torch_cpu = cpu[0] / o.rounds
    ours_cpu = (cpu_all - cpu_setup) / (o.rounds - 1) if o.rounds > 1 else float("nan")
    print("\nseconds per round, one thread: wall clock, mean of rounds 1..%d: PyTorch %.4f, "
          "libhessian %.4f (%.2fx); CPU time, mean of rounds %s: PyTorch %.4f, libhessian %.4f "
          "(%.2fx)" % (o.rounds, torch_spr, ours_spr, torch_spr / ours_spr,
                       "1..%d and 2..%d" % (o.rounds, o.rounds), torch_cpu, ours_cpu,
                       torch_cpu / ours_cpu))
    print("  the local steps and the averaging: PyTorch %.4f, libhessian %.4f (%.2fx)"
          % (torch_spr - torch_eval, ours_spr - ours_eval,
             (torch_spr - torch_eval) / (ours_spr - ours_eval)))
    print("  the personalised evaluation of the %d clients: PyTorch %.4f, libhessian %.4f (%.2fx)"
          % (o.clients, torch_eval, ours_eval, torch_eval / ours_eval))
    print("personalized accuracy after round %d: PyTorch %.4f, libhessian %.4f; largest difference "
          "over the rounds %.4f" % (o.rounds, curve[-1][2], ours[o.rounds][0], gap))


if __name__ == "__main__":
    main()
