"""ConvTranspose at the executor-speed QA's shapes (UNet decoders' k2s2 upsampling with few channels, 1-D
transposed convolutions of audio decoders, grouped / depthwise k3s2 / k4s2p1; oneDNN 2.6's deconvolution was
1.3-7x slower than ONNX Runtime there), plus odd shapes of the same paths. Each is a single-ConvTranspose model
(fixed seed) run by `onnxquant -v run --threads 1`; outputs compared with onnxruntime (rtol 1e-4, atol 1e-5),
and the kernel's debug line must name the path: the GEMM path (conv_transpose_gemm.cc; kernel == stride stores
each input pixel's block, the others add through col2im), or oneDNN's JIT for many channels per group.
`output_shape` with `pads` (ignored, as the spec and ORT say) on both paths, SAME_* with output_shape, and in a
Conv chain (blocked and plain layouts).
(No timing: the path is the observable property; docs/benchmarks.md has the figures.)

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

EXACT, COL2IM, ONEDNN = "GEMM, kernel == stride", "GEMM + col2im", "oneDNN jit"


def deconv_model(x_shape, m_per_group, group, kernel, bias, attrs):
    c = x_shape[1]
    w = (rng.standard_normal((c, m_per_group, *kernel)) / np.sqrt(c // group * np.prod(kernel))).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W")]
    inputs = ["x", "W"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(m_per_group * group).astype(np.float32), "B"))
        inputs.append("B")
    node = helper.make_node("ConvTranspose", inputs, ["y"], name="up", group=group, kernel_shape=list(kernel), **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [onnx.ValueInfoProto(name="y")], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


# name: (x shape, output channels per group, group, kernel, bias, attributes, expected path)
CASES = {
    # the QA's shapes
    "tconv_k2s2_c16to8_128": ((1, 16, 128, 128), 8, 1, (2, 2), True, dict(strides=[2, 2]), EXACT),
    "tconv_k2s2_c64to32_64": ((1, 64, 64, 64), 32, 1, (2, 2), True, dict(strides=[2, 2]), EXACT),
    "tconv_k2s2_c128to64_16": ((1, 128, 16, 16), 64, 1, (2, 2), True, dict(strides=[2, 2]), EXACT),
    "tconv1d_k16s8p4_c128to64_t200": ((1, 128, 200), 64, 1, (16,), True, dict(strides=[8], pads=[4, 4]), COL2IM),
    "tconv1d_k4s2p1_c64to32_t500": ((1, 64, 500), 32, 1, (4,), True, dict(strides=[2], pads=[1, 1]), COL2IM),
    "tconv_k3s2p1op1_c64to32_32": ((1, 64, 32, 32), 32, 1, (3, 3), True,
                                   dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]), COL2IM),
    "tconv_k4s2p1_c32to16_64": ((1, 32, 64, 64), 16, 1, (4, 4), True, dict(strides=[2, 2], pads=[1, 1, 1, 1]), COL2IM),
    "tconv_k3s2_g4_c64_32": ((1, 64, 32, 32), 16, 4, (3, 3), True,
                             dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]), COL2IM),
    "tconv_k4s2p1_dw_c64_32": ((1, 64, 32, 32), 1, 64, (4, 4), True, dict(strides=[2, 2], pads=[1, 1, 1, 1]), COL2IM),
    "tconv_k4s2p1_c256to128_16": ((1, 256, 16, 16), 128, 1, (4, 4), True, dict(strides=[2, 2], pads=[1, 1, 1, 1]),
                                  ONEDNN),
    # odd shapes
    "k2s2_odd_batch2_nobias": ((2, 5, 13, 9), 3, 1, (2, 2), False, dict(strides=[2, 2]), EXACT),
    "k3x2s3x2_groups_crop": ((1, 6, 7, 11), 2, 3, (3, 2), True, dict(strides=[3, 2], pads=[0, 0, 2, 1]), EXACT),
    "k2s2_output_padding": ((1, 7, 9, 10), 5, 1, (2, 2), True, dict(strides=[2, 2], output_padding=[1, 1]), COL2IM),
    "k2s2_begin_pads": ((1, 7, 9, 10), 5, 1, (2, 2), True, dict(strides=[2, 2], pads=[1, 0, 1, 1]), COL2IM),
    "k3s2_dilated_same_upper": ((1, 5, 8, 7), 3, 1, (3, 3), True,
                                dict(strides=[2, 2], dilations=[2, 1], auto_pad="SAME_UPPER"), COL2IM),
    "k5s3_1d_output_shape": ((2, 9, 17), 4, 1, (5,), True, dict(strides=[3], output_shape=[52]), COL2IM),
    "k4s4_1d": ((1, 10, 33), 6, 1, (4,), True, dict(strides=[4]), EXACT),
    # output_shape with pads: the pads are ignored and the total padding is split with the larger half first
    # (spec, ORT). The executor used the given pads (output shifted by a column; with all-zero pads every value
    # differed). GEMM path (13 channels) and oneDNN (80 x 64).
    "os_pads_1001": ((1, 2, 4, 3), 3, 1, (3, 3), True, dict(strides=[2, 2], pads=[1, 0, 0, 1], output_shape=[8, 6]),
                     COL2IM),
    "os_zero_pads": ((1, 2, 4, 4), 3, 1, (3, 3), False, dict(strides=[2, 2], pads=[0, 0, 0, 0], output_shape=[8, 8]),
                     COL2IM),
    "os_pads_c13": ((1, 13, 9, 10), 13, 1, (3, 3), True,
                    dict(strides=[2, 2], pads=[1, 0, 0, 1], output_shape=[16, 20]), COL2IM),
    "os_zero_pads_c16": ((1, 16, 9, 10), 16, 1, (3, 3), True,
                         dict(strides=[2, 2], pads=[0, 0, 0, 0], output_shape=[18, 20]), COL2IM),
    "os_pads_onednn": ((1, 80, 5, 6), 64, 1, (3, 3), True,
                       dict(strides=[2, 2], pads=[0, 1, 1, 0], output_shape=[10, 12]), ONEDNN),
    "os_same_upper": ((1, 3, 5, 4), 2, 1, (3, 3), True, dict(strides=[2, 2], auto_pad="SAME_UPPER",
                                                             output_shape=[10, 7]), COL2IM),
    "os_same_lower": ((1, 3, 5, 4), 2, 1, (3, 3), True, dict(strides=[2, 2], auto_pad="SAME_LOWER",
                                                             output_shape=[10, 7]), COL2IM),
}


def make_case(name):
    x_shape, mg, group, kernel, bias, attrs, want = CASES[name]

    def test():
        d = os.path.join(TMP, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        onnx.save(deconv_model(x_shape, mg, group, kernel, bias, attrs), path)
        x = rng.standard_normal(x_shape).astype(np.float32)
        np.save(os.path.join(d, "x.npy"), x)
        p = oqtest.run_oq(["-v", "run", path, "--input", os.path.join(d, "x.npy"), "--output-dir",
                           os.path.join(d, "out"), "--threads", "1"])
        got = np.load(os.path.join(d, "out", "y.npy"))
        ref = oqtest.ort_session(path).run(None, {"x": x})[0]
        assert got.shape == ref.shape, (name, got.shape, ref.shape)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5, err_msg=name)
        hits = re.findall(r"ConvTranspose 'up': X \S+ W \S+ group \d+: (.*)$", p.stdout + p.stderr, re.M)
        assert hits, f"{name}: no debug line names the ConvTranspose path"
        assert hits[0].startswith(want), f"{name}: path {hits[0]!r}, expected {want!r}..."
    return test


for _name in CASES:
    globals()["test_" + _name] = make_case(_name)


def test_chain_output_shape_pads():
    """Conv -> Relu -> ConvTranspose (pads [1, 0, 0, 1] and output_shape) -> Conv with 16 channels (the executor's
    channel-blocked layout around the ConvTranspose) and 13 (plain layout): the review's chains, where the given
    pads shifted the ConvTranspose's output (max |diff| 12.1 and 6.9 against ORT)."""
    for c in (16, 13):
        w1 = (rng.standard_normal((c, c, 3, 3)) * 0.2).astype(np.float32)
        wt = (rng.standard_normal((c, c, 3, 3)) * 0.2).astype(np.float32)
        w2 = (rng.standard_normal((c, c, 1, 1)) * 0.2).astype(np.float32)
        nodes = [helper.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c1"], ["r1"]),
                 helper.make_node("ConvTranspose", ["r1", "WT"], ["t"], strides=[2, 2], pads=[1, 0, 0, 1],
                                  output_shape=[16, 20]),
                 helper.make_node("Conv", ["t", "W2"], ["y"])]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 9, 10])],
                              [onnx.ValueInfoProto(name="y")],
                              [numpy_helper.from_array(a, n) for n, a in (("W1", w1), ("WT", wt), ("W2", w2))])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        d = os.path.join(TMP, f"chain_{c}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        onnx.save(m, path)
        x = rng.standard_normal((1, c, 9, 10)).astype(np.float32)
        np.save(os.path.join(d, "x.npy"), x)
        oqtest.run_oq(["run", path, "--input", os.path.join(d, "x.npy"), "--output-dir", os.path.join(d, "out")])
        got = np.load(os.path.join(d, "out", "y.npy"))
        ref = oqtest.ort_session(path).run(None, {"x": x})[0]
        assert got.shape == ref.shape, (c, got.shape, ref.shape)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4, err_msg=f"chain with {c} channels")


if __name__ == "__main__":
    oqtest.run_module_tests(globals())
