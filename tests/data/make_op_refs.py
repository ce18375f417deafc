#!/usr/bin/python3
"""Writes the op reference cases tests/data/ops/<case>.ref (PyTorch, float64).

One file per case: the inputs of one libhessian call (or of a small composite
model), its output, and for the scalar head L = sum(out * w) the gradient,
the Hessian diagonal, one Hessian-vector product and, for small cases, the
full Hessian, with respect to the differentiated inputs.  The format and the
mini-syntax of the `model` line are described in tests/data/README.md,
section "Op reference cases".

The model line is the single source of truth: this script parses it and
evaluates it with PyTorch through the table OPS below, which maps every
libhessian op name to the PyTorch function whose values and derivatives the
case pins.  Run from anywhere:

    /usr/bin/python3 tests/data/make_op_refs.py            # (re)writes tests/data/ops/
    /usr/bin/python3 tests/data/make_op_refs.py --markdown # the case list for the README

Deterministic: inputs, head weights and directions come from
numpy.random.RandomState seeded with the CRC-32 of the case name (so a case
does not change when others are added); float64 throughout; one thread.
Running it twice gives byte-identical files.  Before writing, every case is
checked: the Hessian is symmetric, H v equals the HVP, its diagonal is hdiag,
and (for cases away from kinks and ties) central finite differences of L and
of the gradient along v agree with the gradient and the HVP.
"""
import argparse
import math
import os
import re
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "ops")
HEADER = "# libhessian reference case v1\n"
FULL_HESS_MAX = 24           # full Hessian written for op cases with N <= this
FULL_HESS_MAX_COMPOSITE = 200
MODEL_MAX = 500              # hess_load_ref's limit on the model line

# --------------------------------------------------------------------------
# The model-line mini-syntax: tokenizer, parser, evaluator
# --------------------------------------------------------------------------

TOKEN = re.compile(r"""\s*(?:
    (?P<num>-?inf\b|-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<p>[()\[\]{},=;])
)""", re.X)


def tokenize(s):
    toks, pos = [], 0
    s = s.rstrip()
    while pos < len(s):
        m = TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise SyntaxError("bad token at %d in %r" % (pos, s))
        pos = m.end()
        kind = m.lastgroup
        toks.append((kind, m.group(kind)))
    return toks


class Parser:
    """model := { NAME '=' expr ';' } expr
    expr  := call | NAME | number | list | opts
    call  := NAME '(' 'ctx' { ',' expr } ')'
    list  := '[' [ expr { ',' expr } ] ']'
    opts  := '{' [ NAME '=' expr { ',' NAME '=' expr } ] '}'"""

    def __init__(self, text):
        self.t = tokenize(text)
        self.i = 0

    def peek(self, k=0):
        j = self.i + k
        return self.t[j] if j < len(self.t) else (None, None)

    def take(self, kind=None, val=None):
        tk = self.peek()
        if tk[0] is None or (kind and tk[0] != kind) or (val and tk[1] != val):
            raise SyntaxError("expected %s %s, got %r" % (kind, val, tk))
        self.i += 1
        return tk[1]

    def model(self):
        stmts = []
        while self.peek()[0] == "id" and self.peek(1) == ("p", "="):
            name = self.take("id")
            if not re.fullmatch(r"t\d+", name):
                raise SyntaxError("temporaries are named t0, t1, ...: %r" % name)
            self.take("p", "=")
            stmts.append((name, self.expr()))
            self.take("p", ";")
        final = self.expr()
        if self.peek()[0] is not None:
            raise SyntaxError("trailing tokens: %r" % (self.t[self.i:],))
        return stmts, final

    def seq(self, close, item):
        out = []
        if self.peek() == ("p", close):
            self.take()
            return out
        while True:
            out.append(item())
            if self.peek() == ("p", close):
                self.take()
                return out
            self.take("p", ",")

    def expr(self):
        kind, val = self.peek()
        if kind == "num":
            self.take()
            if re.fullmatch(r"-?\d+", val):
                return ("int", int(val))
            return ("float", float(val))
        if kind == "p" and val == "[":
            self.take()
            return ("list", self.seq("]", self.expr))
        if kind == "p" and val == "{":
            self.take()

            def field():
                k = self.take("id")
                self.take("p", "=")
                return (k, self.expr())
            fields = self.seq("}", field)
            keys = [k for k, _ in fields]
            if len(set(keys)) != len(keys):
                raise SyntaxError("repeated option")
            return ("opts", fields)
        if kind == "id":
            self.take()
            if self.peek() == ("p", "("):
                self.take()
                if self.take("id") != "ctx":
                    raise SyntaxError("a call's first argument is ctx")
                args = []
                while self.peek() == ("p", ","):
                    self.take()
                    args.append(self.expr())
                self.take("p", ")")
                return ("call", val, args)
            return ("name", val)
        raise SyntaxError("unexpected %r" % ((kind, val),))


def evaluate(model, env):
    """Evaluates a model line with PyTorch; env maps in0, in1, ... to tensors."""
    stmts, final = Parser(model).model()
    env = dict(env)

    def ev(node):
        kind = node[0]
        if kind in ("int", "float"):
            return node[1]
        if kind == "list":
            return [ev(x) for x in node[1]]
        if kind == "opts":
            return {k: ev(v) for k, v in node[1]}
        if kind == "name":
            n = node[1]
            if n == "NULL":
                return None
            if re.fullmatch(r"(in|t)\d+", n):
                return env[n]
            if n in ("mean", "sum", "none"):
                return n
            raise NameError(n)
        if kind == "call":
            fn = OPS[node[1]]
            return fn(*[ev(a) for a in node[2]])
        raise AssertionError(node)

    for name, e in stmts:
        if name in env:
            raise SyntaxError("temporary %s assigned twice" % name)
        env[name] = ev(e)
    return ev(final)


def called_ops(model):
    """The hess_* names called in a model line, outermost call first."""
    names = []
    stmts, final = Parser(model).model()

    def walk(node):
        if node[0] == "call":
            names.append(node[1])
            for a in node[2]:
                walk(a)
        elif node[0] == "list":
            for a in node[1]:
                walk(a)
        elif node[0] == "opts":
            for _, a in node[1]:
                walk(a)
    walk(final)
    for _, e in stmts:
        walk(e)
    return names

# --------------------------------------------------------------------------
# The ops: libhessian name and argument order -> PyTorch
# --------------------------------------------------------------------------


def _t(x):
    assert torch.is_tensor(x), "expected a tensor, got %r" % (x,)
    return x


def _ints(lst, n=None):
    """A C array of ints: [a, b, ...], or NULL for an empty one (n = 0)."""
    if lst is None and n == 0:
        return []
    assert isinstance(lst, list) and all(isinstance(v, int) for v in lst), lst
    if n is not None:
        assert len(lst) == n, (lst, n)
    return lst


def _axes(a, naxes, axes):
    """(naxes, axes) of the reductions: naxes = 0 with NULL means all axes."""
    assert isinstance(naxes, int)
    if naxes == 0:
        assert axes is None
        return tuple(range(a.dim()))
    return tuple(_ints(axes, naxes))


def _flag(k):
    assert k in (0, 1), k
    return bool(k)


def _sum_to(a, ndim, shape):
    shape = _ints(shape, ndim)
    lead = a.dim() - ndim
    assert lead >= 0
    out = a.sum(dim=tuple(range(lead))) if lead else a
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and out.shape[i] != 1)
    if dims:
        out = out.sum(dim=dims, keepdim=True)
    assert tuple(out.shape) == tuple(shape), (out.shape, shape)
    return out


def _reshape(a, ndim, shape):
    shape = _ints(shape, ndim)
    assert shape.count(-1) <= 1 and all(s >= 1 or s == -1 for s in shape)
    return a.reshape(shape)


def _slice(a, axis, start, stop, step):
    assert all(isinstance(v, int) for v in (axis, start, stop, step)) and step >= 1
    ix = [slice(None)] * a.dim()
    ix[axis] = slice(start, stop, step)
    out = a[tuple(ix)]
    assert out.numel() > 0, "the format cannot hold an empty result"
    return out


def _squeeze(a, axis):
    assert a.shape[axis] == 1, "hess_squeeze is given a dimension of size 1"
    return a.squeeze(axis)


LOSS_DEFAULTS = dict(reduction="mean", weight=None, use_ignore_index=0,
                     ignore_index=0, label_smoothing=0.0, delta=1.0)


def _loss_opts(opts, allowed):
    """A hess_loss_opts written as {...} (or NULL for the defaults)."""
    o = dict(LOSS_DEFAULTS)
    if opts is None:
        return o
    for k, v in opts.items():
        assert k in allowed, "option %s not taken by this loss" % k
        o[k] = v
    assert o["reduction"] in ("mean", "sum", "none")
    assert o["use_ignore_index"] in (0, 1)
    if "ignore_index" in opts:
        assert opts.get("use_ignore_index") == 1, "ignore_index is written with use_ignore_index=1"
    if o["weight"] is not None:
        _t(o["weight"])
    return o


def _ignore(o):
    return o["ignore_index"] if o["use_ignore_index"] else -100


def cross_entropy_ex(z, t, opts):
    o = _loss_opts(opts, ("reduction", "weight", "use_ignore_index", "ignore_index",
                          "label_smoothing"))
    return F.cross_entropy(z, t.long(), weight=o["weight"], ignore_index=_ignore(o),
                           reduction=o["reduction"], label_smoothing=float(o["label_smoothing"]))


def nll_loss(x, t, opts):
    o = _loss_opts(opts, ("reduction", "weight", "use_ignore_index", "ignore_index"))
    return F.nll_loss(x, t.long(), weight=o["weight"], ignore_index=_ignore(o),
                      reduction=o["reduction"])


def _simple_loss(fn, extra=()):
    def f(p, t, opts):
        o = _loss_opts(opts, ("reduction",) + extra)
        kw = {"reduction": o["reduction"]}
        if "delta" in extra:
            kw["delta"] = float(o["delta"])
        if "weight" in extra:
            kw["weight"] = o["weight"]
        return fn(_t(p), _t(t), **kw)
    return f


def conv2d(x, w, b, opts):
    o = dict(stride=[1, 1], padding=[0, 0], dilation=[1, 1], groups=1)
    for k, v in (opts or {}).items():
        assert k in o, k
        o[k] = v
    for k in ("stride", "padding", "dilation"):
        _ints(o[k], 2)
    return F.conv2d(_t(x), _t(w), b, stride=tuple(o["stride"]), padding=tuple(o["padding"]),
                    dilation=tuple(o["dilation"]), groups=o["groups"])


def _cat(fn):
    def f(n, ts, axis):
        assert isinstance(ts, list) and len(ts) == n and n >= 1
        return fn([_t(x) for x in ts], axis)
    return f


def _norm(a, p):
    assert p in (1, 2, math.inf), p
    return torch.linalg.vector_norm(a, ord=p)


OPS = {
    # ---- the ops of include/hessian.h today
    "hess_scalar": lambda v: torch.tensor(float(v)),
    "hess_add": lambda a, b: a + b,
    "hess_sub": lambda a, b: a - b,
    "hess_mul": lambda a, b: a * b,
    "hess_div": lambda a, b: a / b,
    "hess_neg": lambda a: -a,
    "hess_scale": lambda a, alpha: a * float(alpha),
    "hess_matmul": lambda a, b: torch.matmul(a, b),
    "hess_transpose": lambda a: a.transpose(-1, -2),
    "hess_reshape": _reshape,
    "hess_sum": lambda a: a.sum(),
    "hess_sum_axis": lambda a, axis: a.sum(dim=axis),
    "hess_mean": lambda a: a.mean(),
    "hess_mean_axis": lambda a, axis: a.mean(dim=axis),
    "hess_sum_to": _sum_to,
    "hess_broadcast_to": lambda a, ndim, shape: torch.broadcast_to(a, _ints(shape, ndim)),
    "hess_exp": torch.exp,
    "hess_log": torch.log,
    "hess_tanh": torch.tanh,
    "hess_sigmoid": torch.sigmoid,
    "hess_relu": torch.relu,
    "hess_softplus": F.softplus,
    "hess_square": torch.square,
    "hess_sqrt": torch.sqrt,
    "hess_pow": lambda a, p: torch.pow(a, float(p)),
    "hess_detach": lambda a: a.detach(),
    "hess_log_softmax": lambda a, axis: F.log_softmax(a, dim=axis),
    "hess_softmax": lambda a, axis: F.softmax(a, dim=axis),
    "hess_linear": lambda x, W, b: F.linear(x, W, b),
    "hess_mse_loss": lambda p, t: F.mse_loss(p, t),
    "hess_cross_entropy": lambda z, t: F.cross_entropy(z, t.long()),
    "hess_bce_with_logits": lambda z, t: F.binary_cross_entropy_with_logits(z, t),
    # ---- elementwise ops of the next issue
    "hess_abs": torch.abs,
    "hess_sin": torch.sin,
    "hess_cos": torch.cos,
    "hess_log1p": torch.log1p,
    "hess_expm1": torch.expm1,
    "hess_reciprocal": torch.reciprocal,
    "hess_rsqrt": torch.rsqrt,
    "hess_erf": torch.erf,
    "hess_silu": F.silu,
    "hess_gelu": lambda a: F.gelu(a),
    "hess_gelu_tanh": lambda a: F.gelu(a, approximate="tanh"),
    "hess_elu": lambda a, alpha: F.elu(a, alpha=float(alpha)),
    "hess_leaky_relu": lambda a, slope: F.leaky_relu(a, negative_slope=float(slope)),
    "hess_clamp": lambda a, lo, hi: torch.clamp(a, min=float(lo), max=float(hi)),
    "hess_maximum": torch.maximum,
    "hess_minimum": torch.minimum,
    "hess_where": lambda c, a, b: torch.where(_t(c) != 0, a, b),
    "hess_pow_t": lambda a, b: torch.pow(_t(a), _t(b)),
    # ---- reductions
    "hess_sum_axes": lambda a, n, ax, k: torch.sum(a, dim=_axes(a, n, ax), keepdim=_flag(k)),
    "hess_mean_axes": lambda a, n, ax, k: torch.mean(a, dim=_axes(a, n, ax), keepdim=_flag(k)),
    "hess_amax": lambda a, n, ax, k: torch.amax(a, dim=_axes(a, n, ax), keepdim=_flag(k)),
    "hess_amin": lambda a, n, ax, k: torch.amin(a, dim=_axes(a, n, ax), keepdim=_flag(k)),
    "hess_logsumexp": lambda a, n, ax, k: torch.logsumexp(a, dim=_axes(a, n, ax),
                                                          keepdim=_flag(k)),
    "hess_var": lambda a, n, ax, c, k: torch.var(a, dim=_axes(a, n, ax), correction=c,
                                                 keepdim=_flag(k)),
    "hess_std": lambda a, n, ax, c, k: torch.std(a, dim=_axes(a, n, ax), correction=c,
                                                 keepdim=_flag(k)),
    "hess_norm": _norm,
    # ---- shapes and indexing
    "hess_permute": lambda a, perm: a.permute(_ints(perm, a.dim())),
    "hess_squeeze": _squeeze,
    "hess_unsqueeze": lambda a, axis: a.unsqueeze(axis),
    "hess_cat": _cat(torch.cat),
    "hess_stack": _cat(torch.stack),
    "hess_slice": _slice,
    "hess_index_select": lambda a, axis, n, idx: torch.index_select(
        a, axis, torch.tensor(_ints(idx, n), dtype=torch.long)),
    "hess_gather": lambda a, axis, index: torch.gather(a, axis, _t(index).long()),
    # ---- losses
    "hess_mse_loss_ex": _simple_loss(F.mse_loss),
    "hess_cross_entropy_ex": cross_entropy_ex,
    "hess_nll_loss": nll_loss,
    "hess_l1_loss": _simple_loss(F.l1_loss),
    "hess_huber_loss": _simple_loss(F.huber_loss, ("delta",)),
    "hess_bce": _simple_loss(F.binary_cross_entropy, ("weight",)),
    "hess_bce_with_logits_ex": _simple_loss(F.binary_cross_entropy_with_logits, ("weight",)),
    # ---- convolution and pooling, NCHW
    "hess_conv2d": conv2d,
    "hess_avg_pool2d": lambda x, kh, kw, sh, sw: F.avg_pool2d(x, (kh, kw), (sh, sw)),
    "hess_max_pool2d": lambda x, kh, kw, sh, sw: F.max_pool2d(x, (kh, kw), (sh, sw)),
}

# --------------------------------------------------------------------------
# Random inputs (numpy's RandomState: a stream that never changes)
# --------------------------------------------------------------------------


class Rand:
    def __init__(self, seed):
        self.rs = np.random.RandomState(seed)

    def n(self, *shape, s=1.0):
        """Standard normal times s."""
        return np.asarray(self.rs.standard_normal(shape) * s, dtype=np.float64)

    def u(self, shape, lo, hi):
        return np.asarray(self.rs.uniform(lo, hi, size=shape), dtype=np.float64)

    def away(self, shape, points=(0.0,), margin=0.2, lo=-1.5, hi=1.5):
        """Uniform in [lo, hi], at least margin from every kink in points."""
        out = np.empty(shape, dtype=np.float64)
        for ix in np.ndindex(*shape):
            while True:
                x = self.rs.uniform(lo, hi)
                if all(abs(x - p) >= margin for p in points):
                    out[ix] = x
                    break
        return out

    def pos(self, shape, lo=0.3, hi=2.0):
        return self.u(shape, lo, hi)

    def prob(self, shape, lo=0.1, hi=0.9):
        return self.u(shape, lo, hi)

    def ints(self, shape, n):
        return np.asarray(self.rs.randint(0, n, size=shape), dtype=np.float64)

    def distinct(self, shape, gap=0.1, signs=False):
        """Values whose pairwise distances (of magnitudes when signs) exceed gap."""
        m = int(np.prod(shape)) if shape else 1
        base = (self.rs.permutation(m) + self.rs.uniform(0.3, 0.7, size=m)) * gap * 2.5
        vals = base - (base.mean() if not signs else 0.0)
        if signs:
            vals = (vals + 0.2) * self.rs.choice([-1.0, 1.0], size=m)
        return vals.reshape(shape)


class In:
    """One input of a case: its values and whether it is differentiated."""

    def __init__(self, data, param):
        self.data = np.asarray(data, dtype=np.float64)
        self.param = param


def P(data):
    return In(data, True)


def K(data):
    return In(data, False)


def A(rows):
    """An explicit array (kink and tie cases)."""
    return np.asarray(rows, dtype=np.float64)

# --------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------


CASES = []


def case(name, model, make, kink=False, composite=False, note="", op=None):
    """name: file stem; model: the model line; make(rng) -> [In, ...] for in0, in1, ...;
    kink: the point sits on a kink or tie on purpose (no finite-difference check);
    composite: a whole model (full Hessian up to N = 200)."""
    assert re.fullmatch(r"[a-z0-9_]+", name) and name not in [c["name"] for c in CASES], name
    CASES.append(dict(name=name, model=model, make=make, kink=kink, composite=composite,
                      note=note, op=op or ("composite models" if composite
                                           else called_ops(model)[0])))


def unary(name, fn, make, shape=(2, 3), kink=False, note="", extra=""):
    case(name, "%s(ctx, in0%s)" % (fn, extra), lambda r: [P(make(r, shape))], kink=kink,
         note=note)


# ---- existing binary ops, broadcasting
for op, gen_b in (("add", None), ("sub", None), ("mul", None), ("div", "pos")):
    def mk(shape_a, shape_b, gen_b=gen_b):
        def f(r):
            b = r.pos(shape_b, 0.5, 2.0) if gen_b else r.n(*shape_b)
            if gen_b:
                b = b * r.rs.choice([-1.0, 1.0], size=shape_b)
            return [P(r.n(*shape_a)), P(b)]
        return f
    case(op, "hess_%s(ctx, in0, in1)" % op, mk((2, 3), (2, 3)))
    case(op + "_bcast_row", "hess_%s(ctx, in0, in1)" % op, mk((2, 3), (3,)))
    case(op + "_bcast_both", "hess_%s(ctx, in0, in1)" % op, mk((2, 1, 3), (4, 1)))
    case(op + "_scalar", "hess_%s(ctx, in0, in1)" % op, mk((2, 3), ()))
case("mul_self", "hess_mul(ctx, in0, in0)", lambda r: [P(r.n(2, 3))],
     note="the same tensor twice")
case("div_const_denominator", "hess_div(ctx, in0, in1)",
     lambda r: [P(r.n(2, 3)), K(r.pos((2, 1), 0.5, 2.0))])
case("neg", "hess_neg(ctx, in0)", lambda r: [P(r.n(2, 3))])
case("scale", "hess_scale(ctx, in0, -1.5)", lambda r: [P(r.n(2, 3))])

# ---- matmul in all its forms
for name, sa, sb in (("mm", (2, 3), (3, 4)), ("mv", (3, 4), (4,)), ("vm", (3,), (3, 2)),
                     ("dot", (4,), (4,)), ("batched", (2, 2, 3), (2, 3, 2)),
                     ("batched_mat", (2, 2, 3), (3, 2)), ("mat_batched", (2, 3), (2, 3, 2)),
                     ("vec_batched", (3,), (2, 3, 2)), ("batched_vec", (2, 2, 3), (3,)),
                     ("batched_bcast", (2, 1, 2, 2), (3, 2, 2))):
    case("matmul_" + name, "hess_matmul(ctx, in0, in1)",
         lambda r, sa=sa, sb=sb: [P(r.n(*sa)), P(r.n(*sb))])
case("matmul_const_left", "hess_matmul(ctx, in0, in1)",
     lambda r: [K(r.n(3, 4)), P(r.n(4, 2))])

# ---- shapes
case("transpose", "hess_transpose(ctx, in0)", lambda r: [P(r.n(2, 3))])
case("transpose_batched", "hess_transpose(ctx, in0)", lambda r: [P(r.n(2, 3, 4))])
case("reshape", "hess_reshape(ctx, in0, 2, [3, 2])", lambda r: [P(r.n(2, 3))])
case("reshape_rank", "hess_reshape(ctx, in0, 3, [2, 1, 6])", lambda r: [P(r.n(3, 4))])
case("reshape_infer_first", "hess_reshape(ctx, in0, 2, [-1, 4])", lambda r: [P(r.n(2, 3, 2))])
case("reshape_infer_middle", "hess_reshape(ctx, in0, 3, [2, -1, 3])", lambda r: [P(r.n(4, 3))])
case("reshape_infer_flat", "hess_reshape(ctx, in0, 1, [-1])", lambda r: [P(r.n(2, 3))])
case("permute", "hess_permute(ctx, in0, [2, 0, 1])", lambda r: [P(r.n(2, 3, 4))])
case("permute_4d", "hess_permute(ctx, in0, [3, 1, 0, 2])", lambda r: [P(r.n(1, 2, 3, 2))])
case("squeeze", "hess_squeeze(ctx, in0, 1)", lambda r: [P(r.n(2, 1, 3))])
case("squeeze_neg", "hess_squeeze(ctx, in0, -1)", lambda r: [P(r.n(3, 1))])
case("unsqueeze_front", "hess_unsqueeze(ctx, in0, 0)", lambda r: [P(r.n(2, 3))])
case("unsqueeze_middle", "hess_unsqueeze(ctx, in0, 1)", lambda r: [P(r.n(2, 3))])
case("unsqueeze_neg", "hess_unsqueeze(ctx, in0, -1)", lambda r: [P(r.n(2, 3))],
     note="-1 appends an axis at the end; axis range [-ndim-1, ndim]")
case("cat_axis0", "hess_cat(ctx, 2, [in0, in1], 0)", lambda r: [P(r.n(1, 3)), P(r.n(2, 3))])
case("cat_neg_axis", "hess_cat(ctx, 3, [in0, in1, in2], -1)",
     lambda r: [P(r.n(2, 1)), P(r.n(2, 3)), P(r.n(2, 2))])
case("cat_one", "hess_cat(ctx, 1, [in0], 0)", lambda r: [P(r.n(2, 3))])
case("cat_same_twice", "hess_cat(ctx, 2, [in0, in0], 1)", lambda r: [P(r.n(2, 2))])
case("stack_axis0", "hess_stack(ctx, 2, [in0, in1], 0)", lambda r: [P(r.n(2, 3)), P(r.n(2, 3))])
case("stack_axis1", "hess_stack(ctx, 3, [in0, in1, in2], 1)",
     lambda r: [P(r.n(2, 2)), P(r.n(2, 2)), P(r.n(2, 2))])
case("stack_neg_axis", "hess_stack(ctx, 2, [in0, in1], -1)",
     lambda r: [P(r.n(3, 2)), P(r.n(3, 2))], note="-1 is a new last axis")
case("slice_basic", "hess_slice(ctx, in0, 1, 1, 4, 1)", lambda r: [P(r.n(2, 5))])
case("slice_step", "hess_slice(ctx, in0, 0, 0, 5, 2)", lambda r: [P(r.n(5, 2))])
case("slice_negative", "hess_slice(ctx, in0, -1, -4, -1, 1)", lambda r: [P(r.n(2, 5))],
     note="a[:, -4:-1]")
case("slice_out_of_range", "hess_slice(ctx, in0, 1, -10, 100, 2)", lambda r: [P(r.n(2, 5))],
     note="a[:, -10:100:2] = a[:, 0:5:2]")
case("slice_step_past_end", "hess_slice(ctx, in0, 0, 1, 7, 3)", lambda r: [P(r.n(6, 2))],
     note="a[1:7:3] = rows 1 and 4")
case("index_select", "hess_index_select(ctx, in0, 0, 3, [2, 0, 2])", lambda r: [P(r.n(3, 4))],
     note="a repeated index accumulates")
case("index_select_neg_axis", "hess_index_select(ctx, in0, -1, 4, [1, 1, 3, 0])",
     lambda r: [P(r.n(2, 4))])
case("gather_axis1", "hess_gather(ctx, in0, 1, in1)",
     lambda r: [P(r.n(3, 4)), K(A([[0, 3], [2, 2], [1, 0]]))], note="repeated indices accumulate")
case("gather_axis0", "hess_gather(ctx, in0, 0, in1)",
     lambda r: [P(r.n(3, 4)), K(A([[2, 0, 1, 1], [0, 0, 2, 1]]))])
case("gather_smaller_index", "hess_gather(ctx, in0, -1, in1)",
     lambda r: [P(r.n(3, 4)), K(A([[3], [0]]))],
     note="index [2,1] smaller than a [3,4] in the other axis too")

# ---- reductions of today
case("sum", "hess_sum(ctx, in0)", lambda r: [P(r.n(2, 3))])
case("sum_axis0", "hess_sum_axis(ctx, in0, 0)", lambda r: [P(r.n(2, 3, 2))])
case("sum_axis_neg", "hess_sum_axis(ctx, in0, -1)", lambda r: [P(r.n(2, 3, 2))])
case("mean", "hess_mean(ctx, in0)", lambda r: [P(r.n(2, 3))])
case("mean_axis1", "hess_mean_axis(ctx, in0, 1)", lambda r: [P(r.n(2, 3, 2))])
case("mean_axis_neg", "hess_mean_axis(ctx, in0, -2)", lambda r: [P(r.n(2, 3, 2))])
case("sum_to_lead", "hess_sum_to(ctx, in0, 2, [3, 1])", lambda r: [P(r.n(2, 3, 4))])
case("sum_to_row", "hess_sum_to(ctx, in0, 2, [1, 3])", lambda r: [P(r.n(2, 3))])
case("sum_to_scalar", "hess_sum_to(ctx, in0, 0, NULL)", lambda r: [P(r.n(2, 3))],
     note="ndim 0: a scalar")
case("broadcast_to_row", "hess_broadcast_to(ctx, in0, 2, [2, 3])", lambda r: [P(r.n(3))])
case("broadcast_to_lead", "hess_broadcast_to(ctx, in0, 3, [4, 2, 3])", lambda r: [P(r.n(2, 1))])
case("broadcast_to_scalar", "hess_broadcast_to(ctx, in0, 2, [2, 3])", lambda r: [P(r.n())])

# ---- existing unary ops
unary("exp", "hess_exp", lambda r, s: r.n(*s))
unary("log", "hess_log", lambda r, s: r.pos(s))
unary("tanh", "hess_tanh", lambda r, s: r.n(*s, s=1.5))
unary("sigmoid", "hess_sigmoid", lambda r, s: r.n(*s, s=2.0))
unary("relu", "hess_relu", lambda r, s: r.away(s))
unary("relu_kink", "hess_relu", lambda r, s: A([[0.0, -0.0, 0.7], [-0.4, 0.0, 1.3]]), kink=True,
      note="relu'(0) = relu'(-0) = 0; relu(-0) is -0 in torch")
unary("softplus", "hess_softplus", lambda r, s: r.u(s, -5.0, 5.0),
      note="|a| < 20: torch's softplus returns a itself above its threshold 20")
unary("square", "hess_square", lambda r, s: r.n(*s))
unary("sqrt", "hess_sqrt", lambda r, s: r.pos(s))
for nm, p, gen in (("3", "3", "n"), ("2", "2", "n"), ("half", "0.5", "pos"),
                   ("neg_frac", "-1.5", "pos"), ("neg_int", "-2", "away")):
    unary("pow_" + nm, "hess_pow", (lambda r, s: r.n(*s)) if gen == "n" else
          (lambda r, s: r.pos(s)) if gen == "pos" else (lambda r, s: r.away(s, margin=0.4)),
          extra=", " + p)
unary("pow_zero_exponent", "hess_pow", lambda r, s: A([[0.0, 1.5, -2.0], [0.5, -0.0, 3.0]]),
      extra=", 0", kink=True, note="p = 0: out 1, derivatives 0 everywhere, also at a = 0")
unary("pow_2_at_zero", "hess_pow", lambda r, s: A([[0.0, 1.5, -2.0], [0.5, -0.0, 3.0]]),
      extra=", 2", note="a = 0 is smooth for p = 2")
case("log_softmax_last", "hess_log_softmax(ctx, in0, -1)", lambda r: [P(r.n(2, 3, s=2.0))])
case("log_softmax_axis0", "hess_log_softmax(ctx, in0, 0)", lambda r: [P(r.n(3, 2, 2, s=2.0))])
case("log_softmax_large", "hess_log_softmax(ctx, in0, 1)",
     lambda r: [P(A([[800.0, 801.5, -900.0], [-1000.0, -1001.0, -998.5]]))],
     note="large logits: shifted by the row maximum")
case("softmax_last", "hess_softmax(ctx, in0, -1)", lambda r: [P(r.n(2, 3, s=2.0))])
case("softmax_axis1", "hess_softmax(ctx, in0, 1)", lambda r: [P(r.n(2, 3, 2, s=2.0))])
case("linear", "hess_linear(ctx, in0, in1, in2)",
     lambda r: [K(r.n(2, 3)), P(r.n(4, 3)), P(r.n(4))])
case("linear_all_params", "hess_linear(ctx, in0, in1, in2)",
     lambda r: [P(r.n(2, 3)), P(r.n(2, 3)), P(r.n(2))])
case("linear_vec", "hess_linear(ctx, in0, in1, in2)",
     lambda r: [P(r.n(3)), P(r.n(2, 3)), P(r.n(2))])
case("linear_no_bias", "hess_linear(ctx, in0, in1, NULL)", lambda r: [P(r.n(2, 3)), P(r.n(2, 3))])
case("mse_loss", "hess_mse_loss(ctx, in0, in1)", lambda r: [P(r.n(2, 3)), P(r.n(2, 3))])
case("cross_entropy", "hess_cross_entropy(ctx, in0, in1)",
     lambda r: [P(r.n(3, 4, s=1.5)), K(r.ints((3,), 4))])
case("cross_entropy_vec", "hess_cross_entropy(ctx, in0, in1)",
     lambda r: [P(r.n(5, s=1.5)), K(A(3))], note="logits [C] with a scalar target")
case("bce_with_logits", "hess_bce_with_logits(ctx, in0, in1)",
     lambda r: [P(r.n(2, 3, s=2.0)), P(r.prob((2, 3)))], note="targets differentiated too")
case("detach_square", "hess_mul(ctx, hess_detach(ctx, hess_exp(ctx, in0)), hess_exp(ctx, in0))",
     lambda r: [P(r.n(2, 3))], op="hess_detach",
     note="d/da = w exp(a)^2, H = diag(w exp(a)^2): half of exp(2a)'s")
case("detach_cross", "hess_add(ctx, hess_square(ctx, in0), hess_mul(ctx, hess_detach(ctx, in0), in1))",
     lambda r: [P(r.n(2, 2)), P(r.n(2, 2))], op="hess_detach",
     note="no in0-in1 block: it goes through the detach")

# ---- new elementwise ops
unary("abs", "hess_abs", lambda r, s: r.away(s))
unary("abs_kink", "hess_abs", lambda r, s: A([[0.0, -0.0, 0.5], [-1.25, 0.0, 2.0]]), kink=True,
      note="abs'(0) = sign(0) = 0 (also at -0)")
unary("sin", "hess_sin", lambda r, s: r.u(s, -3.0, 3.0))
unary("cos", "hess_cos", lambda r, s: r.u(s, -3.0, 3.0))
unary("log1p", "hess_log1p", lambda r, s: r.u(s, -0.7, 2.0))
unary("expm1", "hess_expm1", lambda r, s: r.n(*s))
unary("expm1_small", "hess_expm1", lambda r, s: r.n(*s, s=1e-9),
      note="tiny inputs: expm1 keeps full relative precision")
unary("reciprocal", "hess_reciprocal", lambda r, s: r.away(s, margin=0.4, lo=-2.0, hi=2.0))
unary("rsqrt", "hess_rsqrt", lambda r, s: r.pos(s))
unary("erf", "hess_erf", lambda r, s: r.n(*s))
unary("silu", "hess_silu", lambda r, s: r.u(s, -4.0, 4.0))
unary("gelu", "hess_gelu", lambda r, s: r.u(s, -3.0, 3.0))
unary("gelu_tanh", "hess_gelu_tanh", lambda r, s: r.u(s, -3.0, 3.0))
unary("elu", "hess_elu", lambda r, s: r.away(s, lo=-3.0), extra=", 0.7")
unary("elu_alpha1", "hess_elu", lambda r, s: r.away(s, lo=-3.0), extra=", 1")
unary("elu_kink", "hess_elu", lambda r, s: A([[0.0, -0.0, 0.5], [-1.0, 0.0, 2.0]]),
      extra=", 0.5", kink=True,
      note="at 0: first derivative alpha (the a <= 0 branch), second derivative 0 (a < 0 mask)")
unary("leaky_relu", "hess_leaky_relu", lambda r, s: r.away(s), extra=", 0.1")
unary("leaky_relu_kink", "hess_leaky_relu", lambda r, s: A([[0.0, -0.0, 0.5], [-1.0, 0.0, 2.0]]),
      extra=", 0.2", kink=True, note="derivative at 0 (and -0) is the slope")
case("clamp", "hess_clamp(ctx, in0, -0.5, 0.5)",
     lambda r: [P(r.away((3, 3), points=(-0.5, 0.5), margin=0.1))])
case("clamp_kink", "hess_clamp(ctx, in0, -0.5, 0.5)",
     lambda r: [P(A([[-0.5, 0.5, 0.0], [-0.75, 0.75, -0.5]]))], kink=True,
     note="a = lo or a = hi passes the gradient: closed interval [lo, hi]")
case("clamp_lo_only", "hess_clamp(ctx, in0, -0.5, inf)",
     lambda r: [P(r.away((2, 3), points=(-0.5,), margin=0.1))])
case("clamp_hi_only", "hess_clamp(ctx, in0, -inf, 0.25)",
     lambda r: [P(r.away((2, 3), points=(0.25,), margin=0.1))])
case("clamp_lo_only_kink", "hess_clamp(ctx, in0, -0.5, inf)",
     lambda r: [P(A([[-0.5, 3.0, -1.0]]))], kink=True, note="a = lo passes the gradient")


def apart(r, shape, gap=0.1):
    a = r.n(*shape)
    return a, a + r.away(shape, margin=gap) * 1.0


for op in ("maximum", "minimum"):
    case(op, "hess_%s(ctx, in0, in1)" % op, lambda r: [P(x) for x in apart(r, (2, 3))])
    case(op + "_bcast", "hess_%s(ctx, in0, in1)" % op,
         lambda r: (lambda v: [P(v[:6].reshape(2, 1, 3)), P(v[6:].reshape(4, 1))])(
             r.distinct((10,))))
    case(op + "_tie", "hess_%s(ctx, in0, in1)" % op,
         lambda r: [P(A([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])),
                    P(A([[1.0, -2.5, 0.5], [0.0, 2.0, -0.5]]))], kink=True,
         note="a == b: torch gives half the gradient to each")
case("maximum_tie_bcast", "hess_maximum(ctx, in0, in1)",
     lambda r: [P(A([[1.0, 2.0, 3.0], [0.5, 2.0, -1.0]])), P(A([2.0]))], kink=True,
     note="ties against a broadcast scalar-like [1]: b collects half of each tie")
case("where", "hess_where(ctx, in0, in1, in2)",
     lambda r: [K(A([[1, 0, -2.5], [0, 3, 0]])), P(r.n(2, 3)), P(r.n(2, 3))],
     note="non-zero cond (also -2.5, 3) is true")
case("where_bcast", "hess_where(ctx, in0, in1, in2)",
     lambda r: [K(A([[1], [0]])), P(r.n(2, 3)), P(r.n(3))],
     note="cond [2,1], a [2,3], b [3]")
case("where_bcast_cond", "hess_where(ctx, in0, in1, in2)",
     lambda r: [K(A([0, 1, 1])), P(r.n(2, 1)), P(r.n())],
     note="cond [3], a [2,1], b [] -> out [2,3]")
case("pow_t", "hess_pow_t(ctx, in0, in1)", lambda r: [P(r.pos((2, 3))), P(r.n(2, 3))])
case("pow_t_bcast", "hess_pow_t(ctx, in0, in1)", lambda r: [P(r.pos((2, 3))), P(r.n(3))])
case("pow_t_scalar_exp", "hess_pow_t(ctx, in0, in1)", lambda r: [P(r.pos((2, 3))), P(r.n())])
case("pow_t_const_exp", "hess_pow_t(ctx, in0, in1)", lambda r: [P(r.pos((2, 3))), K(r.n(2, 3))])

# ---- new reductions
for op in ("sum_axes", "mean_axes", "logsumexp"):
    case(op + "_two", "hess_%s(ctx, in0, 2, [0, 2], 0)" % op, lambda r: [P(r.n(2, 3, 2))])
    case(op + "_neg_keep", "hess_%s(ctx, in0, 1, [-1], 1)" % op, lambda r: [P(r.n(2, 3, 2))])
    case(op + "_all", "hess_%s(ctx, in0, 0, NULL, 0)" % op, lambda r: [P(r.n(2, 3))])
    case(op + "_all_keep", "hess_%s(ctx, in0, 0, NULL, 1)" % op, lambda r: [P(r.n(2, 3))])
case("logsumexp_large", "hess_logsumexp(ctx, in0, 1, [1], 0)",
     lambda r: [P(A([[800.0, 801.5, -900.0], [-1000.0, -1001.0, -998.5]]))],
     note="large values: shifted by the maximum")
for op in ("amax", "amin"):
    case(op + "_axis", "hess_%s(ctx, in0, 1, [1], 0)" % op, lambda r: [P(r.distinct((3, 4)))])
    case(op + "_two_keep", "hess_%s(ctx, in0, 2, [0, -1], 1)" % op,
         lambda r: [P(r.distinct((2, 3, 2)))])
    case(op + "_all", "hess_%s(ctx, in0, 0, NULL, 0)" % op, lambda r: [P(r.distinct((2, 3)))])
amax_tie = A([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, -1.0], [0.5, -2.0, 0.25, 0.75]])
case("amax_tie", "hess_amax(ctx, in0, 1, [1], 0)", lambda r: [P(amax_tie)], kink=True,
     note="ties share the gradient evenly: 1/2, 1/2 and 1/3 each of three")
case("amin_tie", "hess_amin(ctx, in0, 1, [-1], 1)", lambda r: [P(-amax_tie)], kink=True,
     note="ties share the gradient evenly")
case("amax_all_tie", "hess_amax(ctx, in0, 0, NULL, 0)",
     lambda r: [P(A([[2.0, -1.0, 2.0], [0.5, 2.0, 1.0]]))], kink=True,
     note="three-way tie over all elements: 1/3 each")
for op in ("var", "std"):
    case(op + "_last", "hess_%s(ctx, in0, 1, [-1], 1, 0)" % op, lambda r: [P(r.n(2, 4))],
         note="correction 1 (unbiased)")
    case(op + "_biased_keep", "hess_%s(ctx, in0, 1, [1], 0, 1)" % op, lambda r: [P(r.n(2, 3, 2))],
         note="correction 0 (biased)")
    case(op + "_two_axes", "hess_%s(ctx, in0, 2, [0, 2], 1, 0)" % op, lambda r: [P(r.n(2, 3, 2))])
    case(op + "_all", "hess_%s(ctx, in0, 0, NULL, 1, 0)" % op, lambda r: [P(r.n(2, 3))])
    case(op + "_all_corr2_keep", "hess_%s(ctx, in0, 0, NULL, 2, 1)" % op, lambda r: [P(r.n(2, 3))])
case("norm_1", "hess_norm(ctx, in0, 1)", lambda r: [P(r.away((2, 3)))])
case("norm_2", "hess_norm(ctx, in0, 2)", lambda r: [P(r.n(2, 3))])
case("norm_inf", "hess_norm(ctx, in0, inf)", lambda r: [P(r.distinct((2, 3), signs=True))])
case("norm_1_kink", "hess_norm(ctx, in0, 1)",
     lambda r: [P(A([[0.0, -1.5, 2.0], [-0.0, 0.5, -0.25]]))], kink=True,
     note="sign(0) = 0: zero gradient at zero elements")
case("norm_inf_tie", "hess_norm(ctx, in0, inf)",
     lambda r: [P(A([[2.0, -1.0, -2.0], [0.5, 1.5, 2.0]]))], kink=True,
     note="|a| ties share the gradient evenly, with the element's sign: +-1/3")

# ---- new losses
case("mse_loss_ex_default", "hess_mse_loss_ex(ctx, in0, in1, NULL)",
     lambda r: [P(r.n(2, 3)), K(r.n(2, 3))])
case("mse_loss_ex_sum", "hess_mse_loss_ex(ctx, in0, in1, {reduction=sum})",
     lambda r: [P(r.n(2, 3)), P(r.n(2, 3))])
case("mse_loss_ex_none", "hess_mse_loss_ex(ctx, in0, in1, {reduction=none})",
     lambda r: [P(r.n(2, 3)), P(r.n(2, 3))])
case("mse_loss_ex_mean", "hess_mse_loss_ex(ctx, in0, in1, {reduction=mean})",
     lambda r: [P(r.n(3, 2)), K(r.n(3, 2))])


def ce_inputs(B=4, C=3, weight=False, ignore=None, vec=False):
    def f(r):
        if vec:
            ins = [P(r.n(C, s=1.5)), K(A(r.rs.randint(0, C)))]
        else:
            t = r.ints((B,), C)
            if ignore is not None:
                t[1] = ignore   # at least one ignored row, at least one kept
                t[0] = (ignore + 1) % C
            ins = [P(r.n(B, C, s=1.5)), K(t)]
        if weight:
            ins.append(K(r.u((C,), 0.3, 2.0)))
        return ins
    return f


CE = "hess_cross_entropy_ex(ctx, in0, in1, %s)"
case("cross_entropy_ex_default", CE % "NULL", ce_inputs())
case("cross_entropy_ex_sum", CE % "{reduction=sum}", ce_inputs())
case("cross_entropy_ex_none", CE % "{reduction=none}", ce_inputs())
case("cross_entropy_ex_weight", CE % "{weight=in2}", ce_inputs(weight=True),
     note="mean = sum_i w[t_i] l_i / sum_i w[t_i]")
case("cross_entropy_ex_weight_sum", CE % "{reduction=sum, weight=in2}", ce_inputs(weight=True))
case("cross_entropy_ex_weight_none", CE % "{reduction=none, weight=in2}", ce_inputs(weight=True))
case("cross_entropy_ex_ignore", CE % "{use_ignore_index=1, ignore_index=1}",
     ce_inputs(B=5, ignore=1), note="mean over the rows kept")
case("cross_entropy_ex_ignore_none", CE % "{reduction=none, use_ignore_index=1, ignore_index=2}",
     ce_inputs(ignore=2), note="ignored rows give 0")
case("cross_entropy_ex_smoothing", CE % "{label_smoothing=0.1}", ce_inputs())
case("cross_entropy_ex_smoothing_sum", CE % "{reduction=sum, label_smoothing=0.25}", ce_inputs())
case("cross_entropy_ex_weight_smoothing", CE % "{weight=in2, label_smoothing=0.2}",
     ce_inputs(weight=True))
case("cross_entropy_ex_all_options",
     CE % "{weight=in2, use_ignore_index=1, ignore_index=0, label_smoothing=0.15}",
     ce_inputs(B=5, weight=True, ignore=0))
case("cross_entropy_ex_all_options_sum",
     CE % "{reduction=sum, weight=in2, use_ignore_index=1, ignore_index=2, label_smoothing=0.1}",
     ce_inputs(B=5, weight=True, ignore=2))
case("cross_entropy_ex_all_options_none",
     CE % "{reduction=none, weight=in2, use_ignore_index=1, ignore_index=1, label_smoothing=0.3}",
     ce_inputs(B=4, weight=True, ignore=1))
case("cross_entropy_ex_vec_smoothing", CE % "{label_smoothing=0.1}", ce_inputs(C=5, vec=True),
     note="logits [C] with a scalar target")
case("cross_entropy_ex_vec_weight", CE % "{weight=in2}", ce_inputs(C=4, vec=True, weight=True),
     note="unbatched, weighted mean: w[t] l / w[t] = l")

NLL = "hess_nll_loss(ctx, in0, in1, %s)"
nll_in = (lambda **kw: (lambda r: [P(r.u((4, 3), -3.0, -0.1))] + ce_inputs(**kw)(r)[1:]))
case("nll_loss_default", NLL % "NULL", nll_in())
case("nll_loss_sum", NLL % "{reduction=sum}", nll_in())
case("nll_loss_none", NLL % "{reduction=none}", nll_in())
case("nll_loss_weight", NLL % "{weight=in2}", nll_in(weight=True),
     note="mean = sum_i w[t_i] l_i / sum_i w[t_i]")
case("nll_loss_ignore", NLL % "{use_ignore_index=1, ignore_index=0}", nll_in(ignore=0))
case("nll_loss_weight_ignore_none", NLL % "{reduction=none, weight=in2, use_ignore_index=1, ignore_index=2}",
     nll_in(weight=True, ignore=2))

case("l1_loss_default", "hess_l1_loss(ctx, in0, in1, NULL)",
     lambda r: [P(r.n(2, 3)), K(r.n(2, 3))])
case("l1_loss", "hess_l1_loss(ctx, in0, in1, {reduction=mean})",
     lambda r: (lambda t: [P(t + r.away((2, 3), margin=0.1)), P(t)])(r.n(2, 3)))
case("l1_loss_sum", "hess_l1_loss(ctx, in0, in1, {reduction=sum})",
     lambda r: [P(r.n(2, 3)), P(r.n(2, 3))])
case("l1_loss_none", "hess_l1_loss(ctx, in0, in1, {reduction=none})",
     lambda r: [P(r.n(2, 3)), K(r.n(2, 3))])
case("l1_loss_kink", "hess_l1_loss(ctx, in0, in1, {reduction=sum})",
     lambda r: [P(A([[0.5, -1.0, 2.0], [0.25, 0.0, -3.0]])), P(A([[0.5, -1.5, 2.0], [1.0, 0.0, -3.0]]))],
     kink=True, note="pred == target: gradient sign(0) = 0")


def huber_in(delta, param_t=False, shape=(2, 3)):
    def f(r):
        t = r.n(*shape)
        d = r.away(shape, points=(-delta, 0.0, delta), margin=0.1, lo=-3 * delta, hi=3 * delta)
        return [P(t + d), (P if param_t else K)(t)]
    return f


case("huber_loss_default", "hess_huber_loss(ctx, in0, in1, NULL)", huber_in(1.0),
     note="NULL options: delta 1, mean")
case("huber_loss_delta", "hess_huber_loss(ctx, in0, in1, {delta=0.5})", huber_in(0.5, True))
case("huber_loss_sum", "hess_huber_loss(ctx, in0, in1, {reduction=sum, delta=2})", huber_in(2.0))
case("huber_loss_none", "hess_huber_loss(ctx, in0, in1, {reduction=none, delta=1})",
     huber_in(1.0, True))
case("huber_loss_kink", "hess_huber_loss(ctx, in0, in1, {reduction=sum, delta=0.5})",
     lambda r: [P(A([[0.75, -0.25, 0.25], [1.0, 0.0, 2.5]])), K(A([[0.25, 0.25, -0.25], [1.0, 0.5, 0.0]]))],
     kink=True,
     note="|pred - target| == delta: gradient +-delta, second derivative 0 (quadratic "
     "region taken open); at 0 it is 1")

BCE = "hess_bce(ctx, in0, in1, %s)"
case("bce_default", BCE % "NULL", lambda r: [P(r.prob((2, 3))), K(r.prob((2, 3), 0.0, 1.0))])
case("bce_sum", BCE % "{reduction=sum}", lambda r: [P(r.prob((2, 3))), K(r.prob((2, 3), 0.0, 1.0))])
case("bce_none", BCE % "{reduction=none}", lambda r: [P(r.prob((2, 3))), K(r.prob((2, 3)))])
case("bce_weight", BCE % "{weight=in2}",
     lambda r: [P(r.prob((2, 3))), K(r.prob((2, 3))), K(r.u((3,), 0.3, 2.0))],
     note="weight [3] broadcast over [2,3]; mean divides by numel, not by the weights")
case("bce_target_param", BCE % "{reduction=sum}", lambda r: [P(r.prob((2, 3))), P(r.prob((2, 3)))],
     note="targets differentiated too")
case("bce_binary_targets", BCE % "NULL", lambda r: [P(r.prob((2, 3), 0.05, 0.95)), K(r.ints((2, 3), 2))])
BCEL = "hess_bce_with_logits_ex(ctx, in0, in1, %s)"
case("bce_with_logits_ex_default", BCEL % "NULL",
     lambda r: [P(r.n(2, 3, s=2.0)), P(r.prob((2, 3), 0.0, 1.0))])
case("bce_with_logits_ex_sum", BCEL % "{reduction=sum}",
     lambda r: [P(r.n(2, 3, s=2.0)), K(r.prob((2, 3), 0.0, 1.0))])
case("bce_with_logits_ex_none", BCEL % "{reduction=none}",
     lambda r: [P(r.n(2, 3, s=2.0)), P(r.prob((2, 3), 0.0, 1.0))])
case("bce_with_logits_ex_weight", BCEL % "{weight=in2}",
     lambda r: [P(r.n(2, 3, s=2.0)), K(r.prob((2, 3), 0.0, 1.0)), K(r.u((3,), 0.3, 2.0))],
     note="weight [3] broadcast over [2,3]; mean divides by numel, not by the weights")
case("bce_with_logits_ex_weight_sum", BCEL % "{reduction=sum, weight=in2}",
     lambda r: [P(r.n(2, 3, s=2.0)), P(r.prob((2, 3), 0.0, 1.0)), K(r.u((2, 1), 0.3, 2.0))],
     note="weight [2,1]")
case("bce_with_logits_ex_large", BCEL % "{reduction=none}",
     lambda r: [P(A([[40.0, -40.0, 0.5], [-3.0, 700.0, -700.0]])), K(A([[0.0, 1.0, 0.3], [1.0, 0.2, 0.9]]))],
     note="large logits: softplus(x) - x y without overflow")

# ---- convolution and pooling
CONV = "hess_conv2d(ctx, in0, in1, %s, {stride=[%d, %d], padding=[%d, %d], dilation=[%d, %d], groups=%d})"


def conv(name, xs, ws, bias=True, s=(1, 1), p=(0, 0), d=(1, 1), g=1, x_param=True, note=""):
    def f(r):
        ins = [(P if x_param else K)(r.n(*xs)), P(r.n(*ws, s=0.5))]
        if bias:
            ins.append(P(r.n(ws[0], s=0.5)))
        return ins
    case(name, CONV % (("in2" if bias else "NULL",) + s + p + d + (g,)), f, note=note)


conv("conv2d_small", (1, 1, 3, 3), (1, 1, 2, 2))
conv("conv2d_no_bias", (1, 1, 3, 3), (2, 1, 2, 2), bias=False, note="b NULL")
conv("conv2d_channels", (2, 2, 3, 3), (3, 2, 2, 2))
conv("conv2d_stride_pad", (1, 1, 4, 4), (2, 1, 3, 3), s=(2, 2), p=(1, 1))
conv("conv2d_dilation", (1, 1, 5, 5), (1, 1, 2, 2), d=(2, 2))
conv("conv2d_dilation_pad", (1, 2, 4, 4), (2, 2, 2, 2), p=(1, 1), d=(2, 2))
conv("conv2d_groups", (1, 4, 3, 3), (4, 2, 2, 2), g=2, note="groups 2: 4 -> 4 channels")
conv("conv2d_depthwise", (1, 3, 3, 3), (3, 1, 2, 2), g=3, note="groups = channels")
conv("conv2d_asym", (2, 2, 4, 5), (3, 2, 2, 3), s=(2, 1), p=(0, 1), d=(1, 2),
     note="different stride, padding and dilation per axis")
conv("conv2d_stride_drop", (1, 1, 5, 5), (1, 1, 2, 2), s=(2, 2),
     note="stride leaves the last row and column out")
conv("conv2d_weights_only", (2, 1, 4, 4), (2, 1, 3, 3), x_param=False, p=(1, 1),
     note="x a constant")
case("avg_pool2d", "hess_avg_pool2d(ctx, in0, 2, 2, 2, 2)", lambda r: [P(r.n(1, 1, 4, 4))])
case("avg_pool2d_channels", "hess_avg_pool2d(ctx, in0, 2, 2, 2, 2)",
     lambda r: [P(r.n(2, 2, 5, 5))], note="odd size: the last row and column are left out")
case("avg_pool2d_overlap", "hess_avg_pool2d(ctx, in0, 3, 2, 1, 2)", lambda r: [P(r.n(1, 2, 4, 5))],
     note="kernel 3x2, stride 1x2")
case("max_pool2d", "hess_max_pool2d(ctx, in0, 2, 2, 2, 2)", lambda r: [P(r.distinct((1, 1, 4, 4)))])
case("max_pool2d_channels", "hess_max_pool2d(ctx, in0, 2, 2, 2, 2)",
     lambda r: [P(r.distinct((2, 2, 5, 5)))], note="odd size: the last row and column are left out")
case("max_pool2d_overlap", "hess_max_pool2d(ctx, in0, 3, 2, 1, 2)",
     lambda r: [P(r.distinct((1, 2, 4, 5)))], note="kernel 3x2, stride 1x2: windows share elements")
case("max_pool2d_tie", "hess_max_pool2d(ctx, in0, 2, 2, 2, 2)",
     lambda r: [P(A([[[[1, 3, 2, 2], [3, 0, 2, 2], [-1, -1, 4, 0], [-1, -2, 1, 4]]]]))], kink=True,
     note="ties: the whole gradient goes to the first maximum in row-major window order")
case("max_pool2d_tie_overlap", "hess_max_pool2d(ctx, in0, 2, 2, 1, 1)",
     lambda r: [P(A([[[[1, 2, 2], [2, 2, 0], [2, 0, 2]]]]))], kink=True,
     note="overlapping windows with ties: each window picks its first maximum")

# ---- composite models
case("model_cnn_ce",
     "t0 = hess_max_pool2d(ctx, hess_relu(ctx, hess_conv2d(ctx, in0, in1, in2, {stride=[2, 2], "
     "padding=[1, 1], dilation=[1, 1], groups=1})), 2, 2, 1, 1); t1 = hess_conv2d(ctx, t0, in3, "
     "in4, {stride=[1, 1], padding=[1, 1], dilation=[1, 1], groups=1}); hess_cross_entropy_ex("
     "ctx, hess_linear(ctx, hess_reshape(ctx, t1, 2, [2, -1]), in5, in6), in7, "
     "{label_smoothing=0.1})",
     lambda r: [K(r.n(2, 1, 6, 6)), P(r.n(2, 1, 3, 3, s=0.5)), P(r.n(2, s=0.1)),
                P(r.n(3, 2, 2, 2, s=0.5)), P(r.n(3, s=0.1)), P(r.n(3, 27, s=0.3)),
                P(r.n(3, s=0.1)), K(A([2, 0]))],
     composite=True,
     note="x [2,1,6,6] -> conv 3x3 stride 2 pad 1 (2 ch) -> relu -> max_pool 2x2 stride 1 -> "
     "conv 2x2 pad 1 (3 ch) -> flatten 27 -> linear 3 -> cross-entropy, label smoothing 0.1")


def gather_model(r):
    ins = [K(r.n(4, 3)), P(r.n(4, 3, s=0.7)), P(r.n(4, s=0.2)), P(r.n(5, 4, s=0.7)),
           P(r.n(5, s=0.2)), K(r.ints((4, 2), 5))]
    env = {"in%d" % i: torch.tensor(x.data) for i, x in enumerate(ins)}
    pred = evaluate(GATHER_PRED, env).numpy()
    # residuals pred - target in both regions of the Huber loss, away from +-delta
    d = r.away(pred.shape, points=(-0.5, 0.0, 0.5), margin=0.1, lo=-1.2, hi=1.2)
    ins.append(K(pred - d))
    return ins


GATHER_PRED = ("t0 = hess_linear(ctx, hess_tanh(ctx, hess_linear(ctx, in0, in1, in2)), in3, in4); "
               "hess_sub(ctx, hess_gather(ctx, t0, 1, in5), hess_logsumexp(ctx, t0, 1, [-1], 1))")
case("model_gather_lse_huber",
     "t0 = hess_linear(ctx, hess_tanh(ctx, hess_linear(ctx, in0, in1, in2)), in3, in4); "
     "t1 = hess_sub(ctx, hess_gather(ctx, t0, 1, in5), hess_logsumexp(ctx, t0, 1, [-1], 1)); "
     "hess_huber_loss(ctx, t1, in6, {delta=0.5})",
     gather_model, composite=True,
     note="x [4,3] -> linear 4 -> tanh -> linear 5 = h; log-probabilities of 2 gathered classes "
     "per row, gather(h) - logsumexp(h); Huber (delta 0.5, mean) against targets in both regions")
case("model_layernorm_mse",
     "t0 = hess_linear(ctx, in0, in1, in2); t1 = hess_sub(ctx, t0, hess_mean_axes(ctx, t0, 1, "
     "[-1], 1)); t2 = hess_sqrt(ctx, hess_add(ctx, hess_var(ctx, t0, 1, [-1], 0, 1), "
     "hess_scalar(ctx, 1e-05))); t3 = hess_add(ctx, hess_mul(ctx, hess_div(ctx, t1, t2), in3), "
     "in4); hess_mse_loss(ctx, hess_linear(ctx, t3, in5, in6), in7)",
     lambda r: [K(r.n(4, 3)), P(r.n(5, 3, s=0.7)), P(r.n(5, s=0.2)), P(1.0 + r.n(5, s=0.2)),
                P(r.n(5, s=0.2)), P(r.n(2, 5, s=0.5)), P(r.n(2, s=0.2)), K(r.n(4, 2))],
     composite=True,
     note="x [4,3] -> linear 5 -> layer norm over the 5 features (biased var, eps 1e-5 inside "
     "the sqrt, gain in3 and bias in4) -> linear 2 -> MSE")

# --------------------------------------------------------------------------
# Derivatives, checks, output
# --------------------------------------------------------------------------


def fmt(x):
    x = float(x)
    if math.isnan(x):
        bits = struct.unpack("<Q", struct.pack("<d", x))[0]
        if bits == 0x7FF8000000000000:
            return "nan"
        if bits == 0xFFF8000000000000:
            return "-nan"
        return "nan:0x%016x" % bits
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return "%.17g" % x


def tensor_text(name, arr):
    arr = np.asarray(arr, dtype=np.float64)
    assert len(name) <= 63 and arr.ndim <= 6 and all(d >= 1 for d in arr.shape), (name, arr.shape)
    lines = ["tensor %s %d%s" % (name, arr.ndim, "".join(" %d" % d for d in arr.shape))]
    if arr.ndim == 0:
        lines.append(fmt(arr))
    else:
        for row in arr.reshape(-1, arr.shape[-1]):
            lines.append(" ".join(fmt(v) for v in row))
    return "\n".join(lines) + "\n"


def _dense(x, like):
    """An autograd result as an ordinary tensor: None, and the storage-less
    zero tensors PyTorch 1.13 returns for some zero derivatives (e.g. the HVP
    of hess_norm with p = 1 or inf), are zeros like `like`.  (.numpy() of such
    a zero tensor reads whatever memory it finds, not zeros.)"""
    if x is None or x._is_zerotensor():
        return torch.zeros_like(like)
    return x


def run(c):
    seed = zlib.crc32(c["name"].encode())
    r = Rand(seed)
    ins = c["make"](r)
    model = c["model"]
    assert len(model) <= MODEL_MAX and "\n" not in model, c["name"]
    # every inK the model names exists, and every input is used
    used = set(re.findall(r"\bin(\d+)\b", model))
    assert used == {str(i) for i in range(len(ins))}, (c["name"], used, len(ins))
    pidx = [i for i, x in enumerate(ins) if x.param]
    assert pidx, c["name"]

    def forward(vals):
        env = {"in%d" % i: vals[i] for i in range(len(ins))}
        return evaluate(model, env)

    base = [torch.tensor(x.data) for x in ins]
    out0 = forward(base).detach()
    w = torch.ones(()) if out0.dim() == 0 else torch.tensor(r.n(*out0.shape))
    vs = [torch.tensor(r.n(*ins[i].data.shape)) for i in pidx]

    def L_and_grads(vals_p, create_graph):
        vals = list(base)
        ps = []
        for k, i in enumerate(pidx):
            t = vals_p[k].clone().requires_grad_(True)
            ps.append(t)
            vals[i] = t
        out = forward(vals)
        L = (out * w).sum()
        gs = torch.autograd.grad(L, ps, create_graph=create_graph, allow_unused=True)
        gs = [_dense(g, p) for g, p in zip(gs, ps)]
        return out, L, ps, gs

    p0 = [base[i] for i in pidx]
    out, L, ps, gs = L_and_grads(p0, True)
    N = sum(p.numel() for p in ps)
    flat = torch.cat([g.reshape(-1) for g in gs])

    def second(outputs, grad_outputs):
        live = [(o, go) for o, go in zip(outputs, grad_outputs) if o.requires_grad]
        if not live:
            return [torch.zeros_like(p) for p in ps]
        res = torch.autograd.grad([o for o, _ in live], ps, grad_outputs=[go for _, go in live],
                                  retain_graph=True, allow_unused=True)
        return [_dense(x, p) for x, p in zip(res, ps)]

    hv = second(gs, vs)
    H = torch.zeros(N, N)
    for i in range(N):
        row = second([flat[i]], [torch.ones(())])
        H[i] = torch.cat([x.reshape(-1) for x in row])
    H = H.detach()
    hv = [x.detach() for x in hv]
    gs = [g.detach() for g in gs]
    vflat = torch.cat([v.reshape(-1) for v in vs])
    hvflat = torch.cat([x.reshape(-1) for x in hv])

    # ---- consistency checks
    scale = float(H.abs().max()) + 1e-300
    assert float((H - H.T).abs().max()) <= 1e-12 * scale + 1e-300, (c["name"], "symmetry")
    err = float((H @ vflat - hvflat).abs().max())
    assert err <= 1e-12 * (float((H.abs() @ vflat.abs()).max()) + 1e-300), (c["name"], "Hv", err)
    # finite differences: not across a kink, and not through a detach (its
    # derivatives are not those of the values on purpose)
    if not c["kink"] and "hess_detach" not in model:
        h = 1e-6
        gflat = torch.cat([g.reshape(-1) for g in gs])
        with torch.no_grad():
            def Lat(t):
                vals = list(base)
                for k, i in enumerate(pidx):
                    vals[i] = base[i] + t * vs[k]
                return float((forward(vals) * w).sum())
            fd1 = (Lat(h) - Lat(-h)) / (2 * h)
        an1 = float(gflat @ vflat)
        assert abs(fd1 - an1) <= 1e-6 * (abs(an1) + float(gflat.abs() @ vflat.abs()) + 1e-3), \
            (c["name"], "FD gradient", fd1, an1)
        gp = L_and_grads([p + h * v for p, v in zip(p0, vs)], False)[3]
        gm = L_and_grads([p - h * v for p, v in zip(p0, vs)], False)[3]
        fd2 = torch.cat([(a - b).reshape(-1) for a, b in zip(gp, gm)]) / (2 * h)
        tol = 1e-6 * (float(hvflat.abs().max()) + float(gflat.abs().max()) + 1e-3)
        assert float((fd2 - hvflat).abs().max()) <= tol, (c["name"], "FD HVP",
                                                           float((fd2 - hvflat).abs().max()))

    # ---- the file
    parts = [HEADER, "case %s\n" % c["name"], "model %s\n" % model]
    for i, x in enumerate(ins):
        parts.append(tensor_text(("param:in%d" if x.param else "input:in%d") % i, x.data))
    parts.append(tensor_text("out", out0.numpy()))
    parts.append(tensor_text("w", w.numpy()))
    parts.append(tensor_text("L", np.asarray(float(L.detach()))))
    names = ["in%d" % i for i in pidx]
    diag = torch.diagonal(H)
    off = 0
    blocks = {}
    for nm, p in zip(names, ps):
        blocks[nm] = diag[off:off + p.numel()].reshape(p.shape)
        off += p.numel()
    for nm, g in zip(names, gs):
        parts.append(tensor_text("grad:" + nm, g.numpy()))
    for nm in names:
        parts.append(tensor_text("hdiag:" + nm, blocks[nm].numpy()))
    for nm, v in zip(names, vs):
        parts.append(tensor_text("v:" + nm, v.numpy()))
    for nm, x in zip(names, hv):
        parts.append(tensor_text("hvp:" + nm, x.numpy()))
    limit = FULL_HESS_MAX_COMPOSITE if c["composite"] else FULL_HESS_MAX
    if N <= limit:
        parts.append(tensor_text("hess", H.numpy()))
    return "".join(parts), N, N <= limit


def self_test():
    """The PyTorch conventions the README states, checked on the torch at hand."""
    def grad(f, *xs):
        xs = [torch.tensor(x, requires_grad=True) for x in xs]
        return [g.tolist() for g in torch.autograd.grad(f(*xs).sum(), xs)]
    assert grad(torch.abs, [0.0, -0.0]) == [[0.0, 0.0]]
    assert grad(torch.maximum, [1.0], [1.0]) == [[0.5], [0.5]]
    assert grad(torch.minimum, [1.0], [1.0]) == [[0.5], [0.5]]
    assert grad(lambda a: torch.amax(a), [3.0, 1.0, 3.0]) == [[0.5, 0.0, 0.5]]
    assert grad(lambda a: torch.clamp(a, -1.0, 1.0), [-1.0, 1.0]) == [[1.0, 1.0]]
    assert grad(lambda a: F.elu(a, 0.5), [0.0]) == [[0.5]]
    assert grad(lambda a: F.leaky_relu(a, 0.2), [0.0]) == [[0.2]]
    assert grad(lambda a: F.max_pool2d(a, 2, 2), [[[[1.0, 1.0], [1.0, 1.0]]]]) == \
        [[[[[1.0, 0.0], [0.0, 0.0]]]]]
    # second derivatives at the kinks
    from torch.autograd.functional import hessian
    assert float(hessian(lambda a: F.elu(a, 0.5).sum(), torch.tensor([0.0]))[0, 0]) == 0.0
    hh = hessian(lambda a: F.huber_loss(a, torch.zeros(2), delta=0.5, reduction="sum"),
                 torch.tensor([0.5, 0.0]))
    assert hh.tolist() == [[0.0, 0.0], [0.0, 1.0]]
    # the cross-entropy formula the README gives, with weights, ignore_index and smoothing
    r = Rand(1)
    z = torch.tensor(r.n(6, 4))
    t = torch.tensor([0, 2, 1, 2, 3, 1])
    wt = torch.tensor(r.u((4,), 0.3, 2.0))
    for red in ("mean", "sum", "none"):
        for ls in (0.0, 0.2):
            for ii in (-100, 2):
                ref = F.cross_entropy(z, t, weight=wt, ignore_index=ii, label_smoothing=ls,
                                      reduction=red)
                lp = F.log_softmax(z, 1)
                keep = (t != ii).double()
                tc = torch.where(t == ii, torch.zeros_like(t), t)
                wy = wt[tc] * keep
                per = (1 - ls) * (-lp.gather(1, tc[:, None])[:, 0] * wy) + \
                    ls / 4 * (-(lp * wt).sum(1) * keep)
                man = per if red == "none" else per.sum() if red == "sum" else per.sum() / wy.sum()
                assert float((ref - man).abs().max()) <= 1e-14, (red, ls, ii)
    # the layer norm of model_layernorm_mse is torch's layer_norm
    x = torch.tensor(r.n(4, 5))
    g, b = torch.tensor(r.n(5)), torch.tensor(r.n(5))
    ln = (x - x.mean(-1, keepdim=True)) / torch.sqrt(torch.var(x, -1, correction=0, keepdim=True)
                                                     + 1e-5) * g + b
    assert float((ln - F.layer_norm(x, (5,), g, b, eps=1e-5)).abs().max()) < 1e-14


def markdown():
    """The case list of the README, grouped by the outermost op."""
    groups = {}
    for c in CASES:
        key = c["op"]
        groups.setdefault(key, []).append(c)
    lines = ["| op | cases |", "|---|---|"]
    for key, cs in groups.items():
        items = []
        for c in cs:
            s = "`%s`" % c["name"]
            if c["composite"]:
                pass
            elif c["kink"]:
                s += " (**edge**%s)" % (": " + c["note"] if c["note"] else "")
            elif c["note"]:
                s += " (%s)" % c["note"]
            items.append(s)
        label = "`%s`" % key if key.startswith("hess_") else key
        lines.append("| %s | %s |" % (label, "; ".join(items)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markdown", action="store_true", help="print the README's case list")
    ap.add_argument("--out", default=OUT_DIR, help="directory to write (default tests/data/ops)")
    ap.add_argument("--only", nargs="*", help="only these cases (no stale-file cleanup)")
    a = ap.parse_args()
    if a.markdown:
        print(markdown())
        return 0
    self_test()
    os.makedirs(a.out, exist_ok=True)
    todo = [c for c in CASES if not a.only or c["name"] in a.only]
    total = 0
    per_op = {}
    for c in todo:
        text, N, full = run(c)
        path = os.path.join(a.out, c["name"] + ".ref")
        data = text.encode("ascii")
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
        key = c["op"]
        per_op[key] = per_op.get(key, 0) + 1
        print("wrote %s  N=%d%s%s  %d bytes" % (os.path.relpath(path), N,
                                                 "  full Hessian" if full else "",
                                                 "  kink/tie" if c["kink"] else "", len(data)))
    if not a.only:
        keep = {c["name"] + ".ref" for c in CASES}
        for fn in sorted(os.listdir(a.out)):
            if fn.endswith(".ref") and fn not in keep:
                os.remove(os.path.join(a.out, fn))
                print("removed stale %s" % fn)
    print("%d cases, %d bytes in %s" % (len(todo), total, os.path.relpath(a.out)))
    print("cases per outermost op: " + ", ".join("%s %d" % kv for kv in sorted(per_op.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
