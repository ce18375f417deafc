#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_graph (tests/fuzz/corpus/seed_*.bin).

Each seed is a small program in fuzz_graph's input format (see the comment
at the top of fuzz_graph.c): byte 0 context flags, byte 1 allocation to
fail, then instructions.  Run from anywhere: python3 make_corpus.py
"""
import os

NOEXT = 0xFF  # extreme-value byte >= 64: no extreme element


def dim(n):  # a dimension 1..4
    return n - 1


def leaf(param, dims, seed=0x1234, ext=NOEXT):
    return [0 if param else 1, len(dims)] + [dim(d) for d in dims] + \
        [seed >> 8 & 0xFF, seed & 0xFF, ext]


UN = {n: i for i, n in enumerate(
    "neg exp log tanh sigmoid relu softplus square sqrt pow scale sum mean "
    "transpose log_softmax softmax sum_axis mean_axis reshape sum_to broadcast_to".split())}
BIN = {n: i for i, n in enumerate(
    "add sub mul div matmul mse_loss bce_with_logits cross_entropy linear linear_b".split())}


def un(op, s, pb=0):
    return [2, UN[op], s, pb]


def bi(op, a, b, c=None):
    return [3, BIN[op], a, b] + ([c] if c is not None else [])


def ctl(sub):  # 0 mark, 1 rewind, 2 clear_error, 3 foreign mark
    return [4, sub]


SEEDS = {
    # x [4,3], W1 [2,3], b1 [2], W2 [1,2], b2 [1], y [4,1]: Linear-tanh-Linear, MSE
    "mlp_tanh_mse": [0, 0] + leaf(0, [4, 3], 1) + leaf(1, [2, 3], 2) + leaf(1, [2], 3) +
    leaf(1, [1, 2], 4) + leaf(1, [1], 5) + leaf(0, [4, 1], 6) +
    bi("linear_b", 0, 1, 2) + un("tanh", 6) + bi("linear_b", 7, 3, 4) + bi("mse_loss", 8, 5),
    # w [3], x [5,3]: logistic regression with BCE on logits
    "logistic_bce": [0, 0] + leaf(1, [3], 7) + leaf(0, [4, 3], 8) + bi("matmul", 1, 0) +
    leaf(0, [4], 9) + un("sigmoid", 3) + bi("bce_with_logits", 2, 4),
    # logits [3] (a parameter) with the scalar target 0: cross-entropy, softmax
    "softmax_ce": [0, 0] + leaf(1, [3], 10) + [1, 0, 0x12, 0x34, 0] +
    bi("cross_entropy", 0, 1) + un("softmax", 0, 3) + un("sum", 3) + bi("add", 2, 4),
    # a chain of smooth unary ops and a quadratic form
    "unary_chain": [0, 0] + leaf(1, [2, 2], 11) + un("sigmoid", 0) + un("softplus", 1) +
    un("square", 2) + un("exp", 3) + bi("matmul", 4, 0) + un("transpose", 5) +
    bi("mul", 6, 5) + un("mean", 7),
    # shape errors, NULL operands, clear_error, then a valid loss
    "errors": [0, 0] + leaf(1, [2, 3], 12) + leaf(0, [4, 2], 13) + bi("matmul", 0, 1) +
    un("exp", 2) + bi("add", 0, 1) + ctl(2) + un("log_softmax", 0, 6) + ctl(2) +
    un("square", 0) + un("sum", 6),
    # extremes in a HESS_CHECK_FINITE context: 1e300, NaN, log of a negative
    "extremes_checked": [1, 0] + leaf(1, [3], 14, ext=0x11) + un("exp", 0) +
    leaf(1, [2], 15, ext=0x25) + un("log", 2) + leaf(1, [3], 16, ext=0x08) + un("log", 4) +
    un("sum", 5),
    # mark, build, rewind, then use a freed tensor and rebuild
    "mark_rewind": [0, 0] + leaf(1, [3], 17) + ctl(0) + un("square", 0) + un("sum", 1) +
    ctl(1) + un("exp", 2) + un("tanh", 0) + un("sum", 4) + ctl(3) + ctl(2) + un("sum", 0),
    # the 3rd allocation (the tape's node table) fails
    "oom_kth": [4, 2] + leaf(1, [4, 4], 18) + leaf(0, [4, 4], 19) + bi("matmul", 0, 1) +
    un("tanh", 2) + bi("matmul", 3, 0) + un("sum", 4),
    # a 256 KiB byte limit and a big broadcast
    "byte_limit": [2, 0] + leaf(1, [4, 4], 20) + un("broadcast_to", 0, 0xF3) +
    un("broadcast_to", 1, 0x03) + un("sum", 2) + un("mean", 0) + bi("add", 3, 4),
    # axis ops, reshape, sum_to on a rank-3 parameter
    "axes": [0, 0] + leaf(1, [2, 3, 2], 21) + un("sum_axis", 0, 4) + un("mean_axis", 0, 2) +
    un("log_softmax", 0, 5) + un("reshape", 3, 0x02) + un("sum_to", 0, 0x05) + un("sum", 1) +
    un("sum", 2) + bi("add", 6, 7) + un("sum", 3) + bi("sub", 8, 9),
    # pow, sqrt, div near and away from 0
    "domains": [0, 0] + leaf(1, [3], 22) + un("square", 0) + un("scale", 1, 0) +
    un("sqrt", 2) + un("pow", 3, 0) + bi("div", 4, 2) + un("pow", 2, 4) + un("sum", 5) +
    un("sum", 6) + bi("add", 7, 8),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, prog in SEEDS.items():
        with open(os.path.join(out, "seed_" + name + ".bin"), "wb") as f:
            f.write(bytes(b & 0xFF for b in prog))
    print("wrote %d seeds to %s" % (len(SEEDS), out))


if __name__ == "__main__":
    main()
