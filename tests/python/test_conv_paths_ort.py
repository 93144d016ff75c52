"""Conv at the executor-speed QA's shapes (oneDNN 2.6 used to run them with its reference loops, 150-3600x slower
than ONNX Runtime with one thread): grouped convolutions whose channels per group are not a multiple of 16,
depthwise with a channel multiplier, 1-D depthwise (MatchboxNet / QuartzNet / Conformer), 1-D and 2-D kernels
with a large extent (dilation 29-32, k33), 5x5 / 7x7 depthwise (more in test_conv_dw_kxk_ort.py). Each is a single-Conv model (fixed seed) run by
`onnxquant -v run --threads 1`; outputs compared with onnxruntime (rtol 1e-4, atol 1e-5: the sums run in another
order), and the Conv's debug line (the path the kernel chose) must name a fast path, not a reference: oneDNN's
`ref:` implementation or onnxquant's naive conv_ref.cc. (No timing: the path is the observable property.)
Also two small chains (Conv -> Relu -> Conv) that the executor runs in the channel-blocked layout, one with a
3x3 dilation-29 Conv (oneDNN's blocked kernels stop at such extents: it runs in oneDNN's own layout, reordered).

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402

TMP = oqtest.tmpdir()
rng = np.random.default_rng(20261129)


def conv_node(name, x, y, w, b, group=1, **attrs):
    return helper.make_node("Conv", [x, w, b], [y], name=name, group=group, **attrs)


def model(nodes, inits, x_shape):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [onnx.ValueInfoProto(name="y")], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def weights(prefix, cout, cin_per_group, kernel):
    w = rng.standard_normal((cout, cin_per_group, *kernel)) / np.sqrt(cin_per_group * np.prod(kernel))
    w = w.astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) * 0.1
    return [numpy_helper.from_array(w, prefix + "_W"), numpy_helper.from_array(b, prefix + "_B")]


def single(x_shape, cout, group, kernel, **attrs):
    """A model of one Conv 'conv' from x [N, C, ...] to y."""
    inits = weights("c", cout, x_shape[1] // group, kernel)
    return model([conv_node("conv", "x", "y", "c_W", "c_B", group, kernel_shape=list(kernel), **attrs)], inits, x_shape)


def run_and_paths(name, m, x):
    """onnxquant -v run (1 thread) against ORT; returns {node name: path} from the Conv debug lines."""
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    onnx.save(m, path)
    np.save(os.path.join(d, "x.npy"), x)
    p = oqtest.run_oq(["-v", "run", path, "--input", os.path.join(d, "x.npy"), "--output-dir", os.path.join(d, "out"),
                       "--threads", "1"])
    got = np.load(os.path.join(d, "out", "y.npy"))
    want = oqtest.ort_session(path).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)
    paths = {}
    for line in (p.stdout + p.stderr).splitlines():
        hit = re.search(r"Conv '([^']*)'.*?: X \S+ W \S+ group \d+: (.*)$", line)
        if hit:
            paths[hit.group(1)] = hit.group(2)
    return paths


def assert_fast(name, paths, node, want_prefix):
    assert node in paths, f"{name}: no debug line names the path of Conv '{node}' (got {paths})"
    p = paths[node]
    assert "ref:" not in p and "reference" not in p, f"{name}: Conv '{node}' runs a reference: {p}"
    assert p.startswith(want_prefix), f"{name}: Conv '{node}' path {p!r}, expected {want_prefix!r}..."


ONEDNN, DEPTHWISE = "oneDNN ", "depthwise on NCHW"

# name: (x shape, output channels, group, kernel, attributes, expected path)
CASES = {
    "conv_g8_3x3_c64_56": ((1, 64, 56, 56), 64, 8, (3, 3), dict(pads=[1, 1, 1, 1]), ONEDNN),
    "conv_g16_3x3_c64_56": ((1, 64, 56, 56), 64, 16, (3, 3), dict(pads=[1, 1, 1, 1]), ONEDNN),
    "conv_g32_3x3_c64_56": ((1, 64, 56, 56), 64, 32, (3, 3), dict(pads=[1, 1, 1, 1]), ONEDNN),
    "conv_g4_3x3_c32_32": ((1, 32, 32, 32), 32, 4, (3, 3), dict(pads=[1, 1, 1, 1]), ONEDNN),
    "regnet_gw24_s2": ((2, 48, 28, 28), 48, 2, (3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2]), ONEDNN),
    "conv1d_k3_d32_c64_t101": ((1, 64, 101), 64, 1, (3,), dict(pads=[32, 32], dilations=[32]), ONEDNN),
    "conv1d_k3_d32_causal_c64_t101": ((1, 64, 101), 64, 1, (3,), dict(pads=[64, 0], dilations=[32]), ONEDNN),
    "conv1d_k33_c64_t101": ((1, 64, 101), 64, 1, (33,), dict(pads=[16, 16]), ONEDNN),
    "conv2d_1x3_d1x32_c64_40x101": ((1, 64, 40, 101), 64, 1, (1, 3), dict(pads=[0, 32, 0, 32], dilations=[1, 32]),
                                    ONEDNN),
    "conv2d_3x3_d29_c64_28": ((1, 64, 28, 28), 64, 1, (3, 3), dict(pads=[29] * 4, dilations=[29, 29]), ONEDNN),
    "conv_dw_chmult2_c32_56": ((1, 32, 56, 56), 64, 32, (3, 3), dict(pads=[1, 1, 1, 1]), DEPTHWISE),
    "conv1d_k3_dw_c128_t200": ((1, 128, 200), 128, 128, (3,), dict(pads=[1, 1]), DEPTHWISE),
    "conv1d_dw_k9_c128_t500": ((1, 128, 500), 128, 128, (9,), dict(pads=[4, 4]), DEPTHWISE),
    "conv1d_k31_dw_c144_t100": ((2, 144, 100), 144, 144, (31,), dict(pads=[15, 15]), DEPTHWISE),
    "conv1d_dw_k5_s2_d2_mult2": ((1, 24, 77), 48, 24, (5,), dict(pads=[3, 4], strides=[2], dilations=[2]), DEPTHWISE),
    "conv_dw_7x7_c192_28": ((1, 192, 28, 28), 192, 192, (7, 7), dict(pads=[3, 3, 3, 3]), ONEDNN),  # narrow: jit_dw
    "conv_dw_7x7_c96_56": ((1, 96, 56, 56), 96, 96, (7, 7), dict(pads=[3, 3, 3, 3]), DEPTHWISE),
    "conv_dw_5x5_s2_c96_56": ((1, 96, 56, 56), 96, 96, (5, 5), dict(pads=[2, 2, 2, 2], strides=[2, 2]), ONEDNN),
    "conv_dw_5x5_s2_odd": ((1, 20, 31, 45), 20, 20, (5, 5), dict(pads=[1, 2, 2, 1], strides=[2, 2]), ONEDNN),
}


def make_case(name):
    x_shape, cout, group, kernel, attrs, want = CASES[name]

    def test():
        x = rng.standard_normal(x_shape).astype(np.float32)
        assert_fast(name, run_and_paths(name, single(x_shape, cout, group, kernel, **attrs), x), "conv", want)
    return test


for _name in CASES:
    globals()["test_" + _name] = make_case(_name)


def test_blocked_chain_with_large_dilation():
    # Conv 3x3 -> Relu -> Conv 3x3 dilation 29 -> Relu -> Conv 1x1: a chain the executor runs in nChw16c / nChw8c.
    inits = weights("a", 32, 16, (3, 3)) + weights("b", 32, 32, (3, 3)) + weights("c", 24, 32, (1, 1))
    nodes = [conv_node("a", "x", "a_y", "a_W", "a_B", pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a_y"], ["a_r"]),
             conv_node("b", "a_r", "b_y", "b_W", "b_B", pads=[29] * 4, dilations=[29, 29]),
             helper.make_node("Relu", ["b_y"], ["b_r"]), conv_node("c", "b_r", "y", "c_W", "c_B")]
    x = rng.standard_normal((1, 16, 30, 33)).astype(np.float32)
    paths = run_and_paths("blocked_dilated", model(nodes, inits, x.shape), x)
    for n in "abc":
        assert_fast("blocked_dilated", paths, n, ONEDNN)
    assert paths["b"].endswith("(reordered)"), paths  # the blocked Conv kernel, in oneDNN's own layouts


if __name__ == "__main__":
    oqtest.run_module_tests(globals())
