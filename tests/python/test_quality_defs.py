"""The documented formulas of three quality tools, recomputed independently (numpy, onnxruntime) from what
onnxquant writes:

* BiasCorrection on Gemms with alpha != 1: the written int32 bias (beta folded in) equals
  beta·C + alpha·(W − Q(W))·E[x], Q(W) the written weight, E[x] the numpy mean of the calibration inputs;
  also without C and with beta 0 (docs/quality.md, "Bias correction").
* SmoothQuant on a chain of two smoothed layers: the scales are the formula on the numpy maxima of the float
  activations (onnxruntime) and the weights as quantized (downstream layer first, its 1/s folded into the
  upstream weight before the upstream s), the same whatever the intermediate tensor is called, and
  the smoothed float model computes the original's outputs (docs/quality.md, "SmoothQuant").
* ranking: sensitivity: the SNRs in full_auto.json recomputed in onnxruntime (float model with only that weight
  replaced by its numpy Int4 fake-quantized values, on the samples the report lists, which are the first 64 of
  the seeded shuffled calibration selection) (docs/quality.md, ranking: sensitivity).
Prints "N passed, N failed"."""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import FLOAT_VALUES_OPTS, TESTDATA, Runner, run_oq, strip_qdq, tmpdir  # noqa: E402
from test_inspection import shuffled_permutation  # noqa: E402  (std::mt19937_64 + Fisher-Yates in Python)

CONFIG = "examples/digits/user_config.yaml"


def ort_run(model, feeds, outputs=None):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    data = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(outputs, feeds)


def make_model(nodes, inits, inp, outs, opset=17):
    g = oh.make_graph(nodes, "t", [oh.make_tensor_value_info(inp[0], TP.FLOAT, inp[1])],
                      [oh.make_tensor_value_info(n, TP.FLOAT, s) for n, s in outs],
                      initializer=[nh.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def quantize(model, x, extra):
    d = tmpdir()
    mp, cp = os.path.join(d, "m.onnx"), os.path.join(d, "calib.npz")
    onnx.save(model, mp)
    np.savez(cp, x=x)
    out = os.path.join(d, "out")
    run_oq(["--config", CONFIG, "--output-dir", out, f"model.model_path={mp}", f"dataset.quantization_path={cp}",
            "quantization.operating_mode=default", "--threads", "1", *extra])
    q = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs if f.endswith(".onnx")]
    assert len(q) == 1, q
    return onnx.load(q[0]), mp


def dequantized(qm, name):
    """The float value of `name` when a DequantizeLinear of constants produces it."""
    inits = {i.name: nh.to_array(i) for i in qm.graph.initializer}
    dq = next(n for n in qm.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == name)
    q = inits[dq.input[0]].astype(np.float64)
    s = inits[dq.input[1]].astype(np.float64)
    z = inits[dq.input[2]].astype(np.float64) if len(dq.input) > 2 and dq.input[2] else np.zeros_like(s)
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if s.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        s, z = s.reshape(shape), z.reshape(shape)
    return (q - z) * s, float(s.max())


def bias_correction_gemm_alpha():
    rng = np.random.default_rng(5)
    x = (rng.uniform(0, 1, (48, 12)) + 0.5 * rng.standard_normal((48, 12))).astype(np.float32)
    cases = {  # name: (alpha, beta, transB, with C)
        "alpha0.5_beta3": (0.5, 3.0, 1, True),
        "alpha2_noC": (2.0, 1.0, 0, False),
        "alpha0.5_beta0": (0.5, 0.0, 1, True),
    }
    for name, (alpha, beta, tb, with_c) in cases.items():
        w = rng.standard_normal((6, 12) if tb else (12, 6)).astype(np.float32)
        c = rng.standard_normal(6).astype(np.float32)
        inits = {"w": w, **({"c": c} if with_c else {})}
        node = oh.make_node("Gemm", ["x", "w"] + (["c"] if with_c else []), ["y"], alpha=alpha, beta=beta, transB=tb)
        m = make_model([node], inits, ("x", [None, 12]), [("y", [None, 6])])
        qm, _ = quantize(m, x, ["quantization.onnx_quant_parameters.weightType=Int4",
                                "quantization.granularity=per_tensor",
                                "quantization.onnx_extra_options.BiasCorrection=True"])
        g = next(n for n in qm.graph.node if n.op_type == "Gemm")
        attrs = {a.name: oh.get_attribute_value(a) for a in g.attribute}
        assert abs(attrs.get("alpha", 1.0) - alpha) < 1e-7 and attrs.get("beta", 1.0) == 1.0, (name, attrs)
        assert len(g.input) == 3 and g.input[2], f"{name}: no bias written"
        wq, _ = dequantized(qm, g.input[1])
        wt = (w if tb else w.T).astype(np.float64)  # [out, in]
        wqt = wq if tb else wq.T
        shift = alpha * (wt - wqt) @ x.astype(np.float64).mean(0)  # E[alpha·W·x] − E[alpha·Q(W)·x]
        expected = (beta * c if with_c else 0.0) + shift
        got, step = dequantized(qm, g.input[2])  # written int32 bias: beta·C_corrected
        err = np.abs(got.reshape(-1) - expected).max()
        assert np.abs(shift).max() > 20 * step, f"{name}: correction {np.abs(shift).max()} too small to test"
        assert err <= 0.51 * step + 1e-7, f"{name}: |written − expected| {err} (step {step}, shift {shift})"
        print(f"    {name}: correction up to {np.abs(shift).max():.4f}, written within {err:.2e} (step {step:.2e})")


def smooth_quant_chain_names():
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (16, 3, 8, 8)).astype(np.float32)
    x[:, 1] *= 8  # an outlier channel
    w1 = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    w1[2] *= 10  # makes the output channel 2 of h an outlier
    b1 = rng.standard_normal(6).astype(np.float32)
    w2 = rng.standard_normal((5, 6, 1, 1)).astype(np.float32)
    b2 = rng.standard_normal(5).astype(np.float32)
    alpha = 0.5
    results = {}
    for h in ("h", "zh"):  # "h" sorts before the graph input "x", "zh" after
        m = make_model([oh.make_node("Conv", ["x", "w1", "b1"], [h], pads=[1, 1, 1, 1]),
                        oh.make_node("Conv", [h, "w2", "b2"], ["y"])],
                       {"w1": w1, "b1": b1, "w2": w2, "b2": b2}, ("x", [None, 3, 8, 8]), [("y", [None, 5, 8, 8])])
        # The smoothed float model: float values kept in the QDQ model, its Q/DQ pairs stripped (oqtest.strip_qdq).
        qm, mp = quantize(m, x, FLOAT_VALUES_OPTS + ["quantization.onnx_extra_options.SmoothQuant=True",
                                                     f"quantization.onnx_extra_options.SmoothQuantAlpha={alpha}"])
        qm = strip_qdq(qm)
        # numpy: s_j = max|X_j|^a / max|W_j|^(1−a), X measured in onnxruntime on the original model, downstream
        # first: s_h from the original w2, then s_x from w1 with 1/s_h folded into its output channels
        mh = onnx.load(mp)
        mh.graph.output.append(oh.make_tensor_value_info(h, TP.FLOAT, None))
        hv = ort_run(mh, {"x": x})[1]
        ax_ = np.abs(x).max(axis=(0, 2, 3)).astype(np.float64)
        ah = np.abs(hv).max(axis=(0, 2, 3)).astype(np.float64)
        sh = ah ** alpha / np.abs(w2).max(axis=(0, 2, 3)).astype(np.float64) ** (1 - alpha)
        sx = ax_ ** alpha / np.abs(w1 / sh[:, None, None, None]).max(axis=(0, 2, 3)) ** (1 - alpha)
        got = {i.name: nh.to_array(i) for i in qm.graph.initializer}
        inv = [v for k, v in got.items() if k.endswith("_inv_scale")]
        assert len(inv) == 1, sorted(got)
        np.testing.assert_allclose(inv[0].reshape(-1), 1 / sx, rtol=1e-5, err_msg=f"1/s of x ({h})")
        np.testing.assert_allclose(got["w1"], w1 * sx[None, :, None, None] / sh[:, None, None, None], rtol=1e-5,
                                   atol=1e-7, err_msg=f"w1 ({h})")
        np.testing.assert_allclose(got["b1"], b1 / sh, rtol=1e-5, err_msg=f"b1 ({h})")
        np.testing.assert_allclose(got["w2"], w2 * sh[None, :, None, None], rtol=1e-5, atol=1e-7, err_msg=f"w2 ({h})")
        # The smoothed float model computes the original's outputs (onnxruntime, both models).
        xt = rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)
        ref, out = ort_run(m, {"x": xt})[0], ort_run(qm, {"x": xt})[0]
        rel = np.abs(ref - out).max() / np.abs(ref).max()
        assert rel <= 1e-4, f"{h}: smoothed model off by {rel} (relative)"
        results[h] = (inv[0].reshape(-1), got["w1"], got["w2"])
        print(f"    {h}: 1/s of x {np.round(inv[0].reshape(-1), 4)}, outputs within {rel:.1e}")
    for a, b in zip(results["h"], results["zh"]):
        assert np.array_equal(a, b), "renaming the intermediate tensor changed the smoothed model"


def sensitivity_snrs_recomputed():
    out = tmpdir()
    # A tolerance every attempt passes: the greedy search stops at the all-Int4 model (the ranking is the point).
    run_oq(["--config", CONFIG, "--output-dir", out, "--threads", "1",
            "quantization.iterative_quant_parameters.ranking=sensitivity",
            "quantization.iterative_quant_parameters.search=greedy",
            "quantization.iterative_quant_parameters.accuracy_tolerance=100"])
    rep = json.load(open(os.path.join(out, "full_auto.json")))
    sens = rep["sensitivity"]
    calib = np.load(os.path.join(TESTDATA, "digits_calib.npz"))["x"]
    rows = [int(s.rsplit(" row ", 1)[1]) for s in sens["samples"]]
    # The first 64 samples of the calibration selection: dataset.seed 0's shuffled order (batch size 1).
    assert rows == shuffled_permutation(len(calib), 0)[:64], rows
    assert set(sens["snr_db"]) == set(rep["ranking"])
    x = calib[rows]
    path = os.path.join(TESTDATA, "digits_mobilenet.onnx")
    fm = onnx.load(path)
    ref = ort_run(fm, {"input": x})[0].astype(np.float64)
    weights = {i.name: nh.to_array(i) for i in fm.graph.initializer}
    # Conv_212: the stem Conv, Conv_236: a depthwise Conv, Conv_266: a 1x1 Conv, fc.weight: the Gemm (transB 1);
    # the first three were 1-2 dB off when compared on the file's first 64 rows.
    worst = 0.0
    for name in ("onnx::Conv_212", "onnx::Conv_236", "onnx::Conv_266", "fc.weight"):
        w = weights[name]
        amax = np.abs(w).reshape(w.shape[0], -1).max(1)  # per output channel (axis 0), symmetric Int4
        s = (amax / 7.5).astype(np.float32).reshape([-1] + [1] * (w.ndim - 1))
        wq = (np.clip(np.round(w / s), -8, 7) * s).astype(np.float32)
        m = onnx.load(path)
        next(i for i in m.graph.initializer if i.name == name).CopyFrom(nh.from_array(wq, name))
        y = ort_run(m, {"input": x})[0].astype(np.float64)
        snr = 10 * np.log10((ref ** 2).sum() / ((ref - y) ** 2).sum())
        worst = max(worst, abs(snr - sens["snr_db"][name]))
        assert abs(snr - sens["snr_db"][name]) < 0.02, (name, snr, sens["snr_db"][name])
    print(f"    4 sensitivity SNRs within {worst:.4f} dB of onnxruntime")


if __name__ == "__main__":
    r = Runner()
    r.run("BiasCorrection: Gemm alpha/beta, no C, beta 0", bias_correction_gemm_alpha)
    r.run("SmoothQuant: two-layer chain, downstream first, name independent", smooth_quant_chain_names)
    r.run("sensitivity SNRs recomputed in onnxruntime", sensitivity_snrs_recomputed)
    r.finish()
