"""5x5 and 7x7 depthwise Conv (MobileNetV3 / EfficientNet / ConvNeXt blocks) at the executor-speed QA's shapes
and on random odd ones, alone (NCHW: the hand kernel conv_depthwise.cc on wide planes, oneDNN's jit_dw on 16-
channel blocks with reorders on narrow ones, output width <= 32) and with a fused Relu / Clip, run by `onnxquant -v
run --threads 1` and compared with onnxruntime (rtol 1e-4, atol 1e-5); the Conv's debug line must name the path
conv.cc picks for the shape (depthwise_prefers_blocked). Also two-Conv chains the executor runs in nChw16c, and
NaN / inf inputs through the fused activation.

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import sys

import numpy as np
from onnx import helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402
from test_conv_paths_ort import assert_fast, conv_node, model, run_and_paths, weights  # noqa: E402

rng = np.random.default_rng(20261130)
JIT_DW, HAND = "oneDNN jit_dw", "depthwise on NCHW"


def dw_model(x_shape, k, act=None, chain=1, **attrs):
    """chain depthwise KxK Convs 'c0', 'c1'... (each + Relu / Clip 0..6 when act), x [N, C, H, W] -> y."""
    c = x_shape[1]
    nodes, inits, t = [], [], "x"
    for i in range(chain):
        inits += weights(f"c{i}", c, 1, (k, k))
        last = i == chain - 1 and not act
        y = "y" if last else f"c{i}_y"
        nodes.append(conv_node(f"c{i}", t, y, f"c{i}_W", f"c{i}_B", c, kernel_shape=[k, k],
                               **(attrs if i == 0 else dict(pads=[k // 2] * 4))))
        t = y
        if act:
            out = "y" if i == chain - 1 else f"c{i}_a"
            if act == "relu":
                nodes.append(helper.make_node("Relu", [t], [out]))
            else:
                lo, hi = f"lo{i}", f"hi{i}"
                inits += [helper.make_tensor(lo, 1, [], [0.0]), helper.make_tensor(hi, 1, [], [6.0])]
                nodes.append(helper.make_node("Clip", [t, lo, hi], [out]))
            t = out
    return model(nodes, inits, list(x_shape))


def check(name, x_shape, k, want, act=None, chain=1, nan=False, **attrs):
    x = (rng.standard_normal(x_shape) * 2).astype(np.float32)
    if nan:  # a NaN and an inf in the input: the outputs they reach must be ORT's (NaN, not a Relu / Clip bound)
        x[0, 3, 2, 4], x[0, 17, 5, 1] = np.nan, np.inf
    paths = run_and_paths(name, dw_model(x_shape, k, act, chain, **attrs), x)
    for i in range(chain):
        assert_fast(name, paths, f"c{i}", want)


P2, P3 = dict(pads=[2] * 4), dict(pads=[3] * 4)
# name: (x shape, kernel, act, attributes, expected path); QA shapes first, then odd ones.
CASES = {
    "dw5_c240_14": ((1, 240, 14, 14), 5, None, P2, JIT_DW),              # MobileNetV3-Large
    "dw5_c240_14_relu": ((1, 240, 14, 14), 5, "relu", P2, JIT_DW),
    "dw5_c672_7": ((1, 672, 7, 7), 5, None, P2, JIT_DW),
    "dw5_c672_7_clip": ((1, 672, 7, 7), 5, "clip", P2, JIT_DW),
    "dw5_s2_c672_14": ((1, 672, 14, 14), 5, None, dict(pads=[2] * 4, strides=[2, 2]), JIT_DW),
    "dw7_c192_28_clip": ((1, 192, 28, 28), 7, "clip", P3, JIT_DW),    # ConvNeXt-like
    "dw7_c768_7": ((1, 768, 7, 7), 7, None, P3, JIT_DW),
    "dw5_s2_c96_56_relu": ((1, 96, 56, 56), 5, "relu", dict(pads=[2] * 4, strides=[2, 2]), JIT_DW),
    "dw7_c96_56_relu": ((1, 96, 56, 56), 7, "relu", P3, HAND),          # wide: the NCHW kernel
    "dw5_c40_57": ((2, 40, 45, 57), 5, "clip", dict(pads=[1, 2, 3, 0]), HAND),
    # Odd shapes: padding on every side (unequal), strides 1 and 2, dilation, channels not a multiple of 16.
    "dw5_odd_c20_13x11": ((2, 20, 13, 11), 5, "relu", dict(pads=[1, 2, 2, 1]), JIT_DW),
    "dw7_odd_c33_9x15_s2": ((1, 33, 9, 15), 7, None, dict(pads=[3, 1, 2, 3], strides=[2, 2]), JIT_DW),
    "dw5_odd_c17_21_d2": ((1, 17, 21, 19), 5, "clip", dict(pads=[4, 3, 4, 5], dilations=[2, 2]), JIT_DW),
    "dw7_odd_c5_19x41": ((1, 5, 19, 41), 7, "relu", dict(pads=[3, 2, 1, 3]), HAND),   # < 16 channels
    "dw5_odd_c7_11x35_s2": ((3, 7, 11, 35), 5, None, dict(pads=[2, 0, 1, 2], strides=[2, 2]), HAND),
    "dw7_odd_c9_23x67": ((1, 9, 23, 67), 7, "clip", dict(pads=[2, 3, 4, 1]), HAND),
    "dw5_odd_c12_5x5": ((1, 12, 5, 5), 5, None, P2, HAND),
}


def make_case(name):
    x_shape, k, act, attrs, want = CASES[name]
    return lambda: check(name, x_shape, k, want, act, **attrs)


for _name in CASES:
    globals()["test_" + _name] = make_case(_name)


def test_blocked_chains():
    # Two depthwise Convs (+ Relu) in a row: the executor keeps them in nChw16c (the blocked Conv kernel).
    for name, x_shape, k, attrs in [("chain_dw5_c240_14", (1, 240, 14, 14), 5, P2),
                                    ("chain_dw7_c96_56_s2", (1, 96, 56, 56), 7, dict(pads=[3] * 4, strides=[2, 2]))]:
        check(name, x_shape, k, JIT_DW, "relu", chain=2, **attrs)


def test_non_finite_inputs_keep_ort_values():
    # oneDNN's Relu / Clip post-op turns NaN into a bound: the jit_dw path falls back to the primitive without it
    # (conv.cc, docs/conformance.md); the hand kernel applies the activation itself.
    check("nan_dw5_c240_14_relu", (1, 240, 14, 14), 5, JIT_DW, "relu", nan=True, **P2)
    check("nan_dw7_c20_9_clip", (1, 20, 9, 9), 7, JIT_DW, "clip", nan=True, **P3)
    check("nan_dw7_c24_40x41_relu", (1, 24, 40, 41), 7, HAND, "relu", nan=True, **P3)


if __name__ == "__main__":
    oqtest.run_module_tests(globals())
