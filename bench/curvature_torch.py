#!/usr/bin/python3
"""PyTorch peer of `hessian_bench --curvature` (bench/curvature.c), issue #15.

    /usr/bin/python3 bench/curvature_torch.py [--workload W1|W2|all] [--quick]
        [--peers /work/shared/peers] [--workloads bench/workloads]

float64, one thread (OMP/OPENBLAS/MKL_NUM_THREADS=1 before torch is imported,
torch.set_num_threads(1)).  The workloads are the peers': make_workload() of
peers/bench_torch.py, W1 with its parameters, inputs and targets read from
bench/workloads/W1.ref (the file hessian_bench reads; the script says whether
it matches make_workload("W1") bit for bit), W2 generated as the peer does
(torch.manual_seed(102): the same shapes and scales as hessian_bench's W2, not
the same numbers).  What a PyTorch 1.13 user would write, each timed end to end
from the parameters like bench_torch.py's operations (forward and the
create_graph gradient included); an HVP reuses that graph
(autograd.grad(g, theta, v, retain_graph=True)), batched HVPs use
is_grads_batched=True:

  W1  hessian  functorch.hessian(f)(theta), the reference of the checks
      diag     the per-element loop (bench_torch.op_diag_loop), the diagonal of
               functorch.hessian, and of one batched HVP of the identity
      eigs     scipy.sparse.linalg.eigsh(LinearOperator of HVPs, k=5, which LA
               and LM, tol 1e-10), checked against numpy.linalg.eigvalsh (LAPACK)
      hutchinson  120 Rademacher probes: a loop of HVPs, and one batched call
      cg       (H + (|lambda_min|+1) I) x = g to 1e-10: scipy.sparse.linalg.cg
               and a hand-written CG on torch tensors
  W2  grad     bench_torch.op_grad, the reference of diag/grad
      diag     the per-element loop over 200 elements and one batched HVP of
               100 unit vectors, each extrapolated to n (the graph's build
               counted once), checked against each other
      eigs     eigsh top 5 (LA), checked by its residuals

Rows have hessian_bench's columns; the op's first word is the key run_peers.sh
matches.  A failed check exits 1.
"""
import argparse
import os
import sys
import time

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_k] = "1"

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--workload", default="all", choices=["all", "W1", "W2"])
ap.add_argument("--peers", default=os.environ.get("PEERS_DIR", "/work/shared/peers"))
ap.add_argument("--workloads", default=os.path.join(HERE, "workloads"))
ap.add_argument("--quick", action="store_true")
ARGS = ap.parse_args()

sys.argv = sys.argv[:1]  # bench_torch reads --threads from argv at import: one thread
sys.path.insert(0, ARGS.peers)
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse.linalg as sla  # noqa: E402
import torch  # noqa: E402
import functorch  # noqa: E402
import bench_torch as peer  # noqa: E402

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

N_PRODUCTS = 120
N_EIGS = 5
EIG_TOL = 1e-8
SOLVE_TOL = 1e-10
TRUE_TOL = 1e-9
SLOW = dict(budget=0.5 if ARGS.quick else 3.0, min_reps=1 if ARGS.quick else 3, warmup=1)
FAST = dict(budget=0.2 if ARGS.quick else 1.5, min_reps=3 if ARGS.quick else 5, warmup=1)


def fail(w, msg):
    print("curvature_torch: %s: %s; no timing reported" % (w, msg), file=sys.stderr)
    sys.exit(1)


def row(W, op, t, text):
    med, mn, reps = t
    print("| %-10s | 1 | %-3s | %6d | %-34s | %10s | %10s | %5d | %s |" % (
        "torch", W["name"], W["n"], op, peer.fmt_t(med), peer.fmt_t(mn), reps, text), flush=True)


def timed(fn, kw):
    return peer.bench(lambda _: fn(), None, **kw)


# ------------------------------------------------------------------ data
def read_ref(path):
    """The reference format (tests/data/README.md): 'tensor NAME NDIM D0 ...'
    lines, each followed by its values."""
    out, toks = {}, open(path).read().split()
    i = 0
    while i < len(toks):
        if toks[i] != "tensor":
            i += 1
            continue
        name, nd = toks[i + 1], int(toks[i + 2])
        shape = [int(s) for s in toks[i + 3:i + 3 + nd]]
        cnt = int(np.prod(shape)) if nd else 1
        vals = [float(s) for s in toks[i + 3 + nd:i + 3 + nd + cnt]]
        out[name] = torch.tensor(vals).reshape(shape)
        i += 3 + nd + cnt
    return out


def load_w1():
    """make_workload("W1") with the parameters and data of W1.ref."""
    W = peer.make_workload("W1")
    ref = read_ref(os.path.join(ARGS.workloads, "W1.ref"))
    diff = 0.0
    with torch.no_grad():
        for p, nm in zip(W["params"], ["W1", "b1", "W2", "b2"]):
            diff = max(diff, (p - ref["param:" + nm]).abs().max().item())
            p.copy_(ref["param:" + nm])
        for nm in ("x", "y"):
            diff = max(diff, (W[nm] - ref["input:" + nm]).abs().max().item())
            W[nm].copy_(ref["input:" + nm])
    W["theta0"] = torch.cat([p.detach().reshape(-1) for p in W["params"]])
    print("# W1 from %s (max |difference| from make_workload('W1'): %.1e)" % (
        os.path.join(ARGS.workloads, "W1.ref"), diff))
    return W


def graph(W):
    """theta as a leaf, and its gradient with create_graph: the graph every
    HVP below reuses."""
    th = W["theta0"].clone().requires_grad_(True)
    g = torch.autograd.grad(W["f"](th), th, create_graph=True)[0]
    return th, g


def hvp(th, g, v):
    return torch.autograd.grad(g, th, grad_outputs=v, retain_graph=True)[0]


def hvp_batch(th, g, V):
    return torch.autograd.grad(g, th, grad_outputs=V, retain_graph=True, is_grads_batched=True)[0]


def operator(th, g, n, shift=0.0, count=None):
    """A scipy LinearOperator of (H + shift I) by PyTorch HVPs."""
    def mv(v):
        if count is not None:
            count[0] += 1
        x = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        return (hvp(th, g, x) + shift * x).numpy()
    return sla.LinearOperator((n, n), matvec=mv, dtype=np.float64)


# ------------------------------------------------------------------ W1
def w1():
    W = load_w1()
    n = W["n"]
    # the full Hessian: the reference of every check (against bench_torch's row loop)
    H = functorch.hessian(W["f"])(W["theta0"])
    Hn = H.numpy()
    evals = np.linalg.eigvalsh(Hn)  # LAPACK (syevd), ascending
    tr, fro = float(np.trace(Hn)), float(np.linalg.norm(Hn))
    print("# W1 numpy.linalg.eigvalsh: lambda_min %.10g, lambda_max %.10g; trace %.10g" % (
        evals[0], evals[-1], tr))
    th_h = timed(lambda: functorch.hessian(W["f"])(W["theta0"]), SLOW)
    row(W, "hessian [functorch]", th_h, "functorch.hessian (jacfwd(jacrev)), the reference")

    # the exact diagonal, three ways
    d = torch.diagonal(H)

    def diag_functorch():
        return torch.diagonal(functorch.hessian(W["f"])(W["theta0"]))

    def diag_batched():
        th, g = graph(W)
        return torch.diagonal(hvp_batch(th, g, torch.eye(n)))

    def diag_loop():
        return torch.cat([t.reshape(-1) for t in peer.op_diag_loop(W)])

    for name, fn in (("diag [diag_loop]", diag_loop), ("diag [functorch.hessian]", diag_functorch),
                     ("diag [batched hvp of I]", diag_batched)):
        err = (fn() - d).abs().max().item() / d.abs().max().item()
        if not err <= 1e-10:
            fail("W1", "%s differs from the Hessian's diagonal by %.2e" % (name, err))
        t = timed(fn, SLOW)
        row(W, name, t, "hessian/diag %.2fx; err %.1e" % (th_h[0] / t[0], err))

    # top 5 eigenvalues by eigsh over HVPs
    for which, key in (("LA", "eigs-largest"), ("LM", "eigs-magnitude")):
        count = [0]

        def eigs():
            th, g = graph(W)
            return sla.eigsh(operator(th, g, n, count=count), k=N_EIGS, which=which, tol=1e-10,
                             return_eigenvectors=False)
        got = np.array(sorted(eigs(), key=lambda x: -x if which == "LA" else -abs(x)))
        want = evals[::-1][:N_EIGS] if which == "LA" else \
            np.array(sorted(evals, key=lambda x: -abs(x))[:N_EIGS])
        err = float(np.max(np.abs(got - want) / np.abs(want)))
        if not err <= EIG_TOL:
            fail("W1", "eigsh %s: relative error %.2e against LAPACK" % (which, err))
        products = count[0]
        t = timed(eigs, SLOW)
        row(W, "%s [eigsh]" % key, t, "%s; %d products; max rel err vs LAPACK %.1e; "
            "eigs/hessian %.3f" % (" ".join("%.10g" % x for x in got), products, err,
                                   t[0] / th_h[0]))

    # Hutchinson with 120 Rademacher probes
    gen = torch.Generator().manual_seed(15)
    Z = (torch.randint(0, 2, (N_PRODUCTS, n), generator=gen) * 2 - 1).to(torch.float64)

    def hutch_loop():
        th, g = graph(W)
        return sum(float(z @ hvp(th, g, z)) for z in Z) / N_PRODUCTS

    def hutch_batched():
        th, g = graph(W)
        return float((Z * hvp_batch(th, g, Z)).sum()) / N_PRODUCTS

    for name, fn in (("hutchinson [hvp loop]", hutch_loop),
                     ("hutchinson [is_grads_batched]", hutch_batched)):
        est = fn()
        ref = float((Z * (Z @ H)).sum()) / N_PRODUCTS  # the same probes through the dense H
        if not abs(est - ref) <= 1e-10 * abs(ref):
            fail("W1", "%s: %.12g against %.12g from the dense Hessian" % (name, est, ref))
        t = timed(fn, FAST)
        row(W, name, t, "%d products: estimate %.10g, exact %.10g; error %.2e (rel %.1e, "
            "%.2e ||H||_F)" % (N_PRODUCTS, est, tr, abs(est - tr), abs(est - tr) / abs(tr),
                               abs(est - tr) / fro))

    # CG on (H + (|lambda_min| + 1) I) x = g
    damping = abs(evals[0]) + 1.0
    th0 = W["theta0"].clone().requires_grad_(True)
    b = torch.autograd.grad(W["f"](th0), th0)[0].numpy()
    iters = [0]

    def cg_scipy():
        th, g = graph(W)
        iters[0] = 0

        def cb(_):
            iters[0] += 1
        x, info = sla.cg(operator(th, g, n, shift=damping), b, tol=SOLVE_TOL, atol=0.0,
                         maxiter=2 * n, callback=cb)
        return x, info == 0

    def cg_torch():
        th, g = graph(W)
        bt = torch.from_numpy(b)
        x = torch.zeros(n)
        r = bt.clone()
        p = r.clone()
        rr, bb = float(r @ r), float(bt @ bt)
        k = 0
        while rr > SOLVE_TOL ** 2 * bb and k < 2 * n:
            Ap = hvp(th, g, p) + damping * p
            a = rr / float(p @ Ap)
            x += a * p
            r -= a * Ap
            rr_new = float(r @ r)
            p = r + (rr_new / rr) * p
            rr = rr_new
            k += 1
        iters[0] = k
        return x.numpy(), rr <= SOLVE_TOL ** 2 * bb

    for name, fn in (("cg [scipy.sparse.linalg.cg]", cg_scipy), ("cg [torch loop]", cg_torch)):
        x, ok = fn()
        res = float(np.linalg.norm(Hn @ x + damping * x - b) / np.linalg.norm(b))
        if not (ok and res <= TRUE_TOL):
            fail("W1", "%s: converged %s, residual %.2e" % (name, ok, res))
        k = iters[0]
        t = timed(fn, FAST)
        row(W, name, t, "damping |lambda_min|+1 = %.10g; %d iterations; residual %.1e "
            "recomputed from H (tol %.0e)" % (damping, k, res, SOLVE_TOL))


# ------------------------------------------------------------------ W2
def w2():
    W = peer.make_workload("W2")
    n = W["n"]
    tg = timed(lambda: peer.op_grad(W), FAST)
    row(W, "grad", tg, "bench_torch.op_grad, the reference of diag/grad")

    # the exact diagonal: a part, extrapolated to n with the graph's build once
    m_loop, m_batch = (50, 20) if ARGS.quick else (200, 100)

    def part_loop(m):
        th, g = graph(W)
        return torch.stack([torch.autograd.grad(g[i], th, retain_graph=True)[0][i]
                            for i in range(m)])

    def part_batched(m):
        th, g = graph(W)
        return torch.diagonal(hvp_batch(th, g, torch.eye(m, n)))

    a, b = part_loop(m_loop), part_batched(m_batch)
    k = min(m_loop, m_batch)
    err = (a[:k] - b[:k]).abs().max().item() / max(b[:k].abs().max().item(), 1e-300)
    if not err <= 1e-10:
        fail("W2", "the loop's and the batched diagonal differ by %.2e" % err)
    t_build = timed(lambda: graph(W), FAST)
    for name, fn, m in (("diag [diag_loop, extrapolated]", part_loop, m_loop),
                        ("diag [batched hvp, extrapolated]", part_batched, m_batch)):
        t = timed(lambda: fn(m), SLOW)
        ext = tuple(t_build[q] + (t[q] - t_build[q]) * n / m for q in range(2)) + (t[2],)
        row(W, name, ext, "%d of %d entries in %s, graph build %s; diag/grad %.0fx; "
            "loop vs batched %.1e" % (m, n, peer.fmt_t(t[0]), peer.fmt_t(t_build[0]),
                                      ext[0] / tg[0], err))

    # top 5 eigenvalues
    count = [0]

    def eigs():
        th, g = graph(W)
        return sla.eigsh(operator(th, g, n, count=count), k=N_EIGS, which="LA", tol=1e-10)
    vals, vecs = eigs()
    products = count[0]
    th, g = graph(W)
    res = max(float(torch.linalg.norm(hvp(th, g, torch.from_numpy(vecs[:, q].copy())) -
                                      vals[q] * torch.from_numpy(vecs[:, q].copy())))
              for q in range(N_EIGS))
    if not res <= EIG_TOL * abs(vals).max():
        fail("W2", "eigsh LA: residual %.2e" % res)
    t = timed(eigs, SLOW)
    row(W, "eigs-largest [eigsh]", t, "%s; %d products; residual %.1e (hvp)" % (
        " ".join("%.10g" % x for x in sorted(vals, reverse=True)), products, res))


def main():
    print("# torch %s, functorch %s, scipy %s, numpy %s; 1 thread, float64; peers from %s" % (
        torch.__version__, functorch.__version__, scipy.__version__, np.__version__, ARGS.peers))
    print("| %-10s | t | W   | %6s | %-34s | %10s | %10s | %5s | %s |" % (
        "impl", "n", "op", "median", "min", "reps", "result"))
    print("|---|---|---|---|---|---|---|---|---|")
    if ARGS.workload in ("all", "W1"):
        w1()
    if ARGS.workload in ("all", "W2"):
        w2()


if __name__ == "__main__":
    main()
