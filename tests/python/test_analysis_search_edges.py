"""Edge cases of inspection's SNRs and full_auto's sensitivity ranking, against numpy / onnxruntime / hand values
(the eighteenth-session white-box review of src/analysis and src/search):
- a float16 Gemm with beta != 1: its bias SNR is measured against beta x C (as for float32), computed here in numpy
  from the written model's int32 bias and scale;
- `ranking: sensitivity` with a weight whose 4-bit image makes an output NaN (Sqrt of a value the rounding pushes
  below 0): that weight ranks lowest and the others stay in key order (weights x 10^(SNR/10), the SNRs recomputed
  here with onnxruntime and numpy's 4-bit weights);
- two passing bisection attempts whose ST file names coincide (shares rounded to 2 decimals): every file an attempt
  names in full_auto.json holds that attempt's Int8 tensors, and the answer's file the answer;
- full_auto's 4-bit weights take the 8-bit reference's axis: a 1-D MatMul weight per tensor, a MatMul weight under
  QDQOpTypePerChannelSupportToAxis {MatMul: 0} per row (numpy's symmetric Int4 image)."""
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import ort_session, run_module_tests, run_oq, save_graph, tmpdir  # noqa: E402


def snr_db(x, y):
    """ORT qdq_loss_debug's compute_signal_to_quantization_noice_ratio, in float64."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    eps = np.finfo(float).eps
    return 20 * math.log10(max(np.linalg.norm(x), eps) / max(np.linalg.norm(x - y), eps))


def write_config(work, model, mode, data, granularity=None, iterative=None):
    """A config at <work>/c.yaml: Int8 weights and activations at opset 21, `data` the dataset keys (flow text),
    `iterative` the iterative_quant_parameters (a dict of YAML flow values)."""
    lines = [f"model: {{model_path: {model}}}", f"dataset: {{{data}}}", "quantization:", f"  operating_mode: {mode}",
             "  target_opset: 21", "  onnx_quant_parameters: {weightType: Int8, activType: Int8}"]
    if granularity:
        lines.append(f"  granularity: {granularity}")
    if iterative:
        lines.append("  iterative_quant_parameters: {" + ", ".join(f"{k}: {v}" for k, v in iterative.items()) + "}")
    cfg = os.path.join(work, "c.yaml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    return cfg


def test_float16_gemm_beta_bias_snr():
    """beta = 2, float16 model: the written bias DequantizeLinear holds beta x C (conformance.md), so its SNR is
    ~88 dB against beta x C; it read 0.00 dB (C unscaled against 2C: noise as strong as the signal)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 24)).astype(np.float16)
    c = (rng.normal(size=(16,)) * 2).astype(np.float16)
    beta = 2.0
    g = helper.make_graph([helper.make_node("Gemm", ["input", "W", "C"], ["y"], name="gemm", transB=1, beta=beta)], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT16, [None, 24])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [None, 16])],
                          [numpy_helper.from_array(w, "W"), numpy_helper.from_array(c, "C")])
    work = tmpdir()
    model = save_graph(g, os.path.join(work, "m.onnx"))
    np.savez(os.path.join(work, "calib.npz"), input=rng.normal(size=(64, 24)).astype(np.float32))
    cfg = write_config(work, model, "inspection", f"quantization_path: {work}/calib.npz")
    out = os.path.join(work, "out")
    run_oq(["--config", cfg, "--output-dir", out])
    with open(os.path.join(out, "inspection.json")) as f:
        rep = {t["name"]: t for t in json.load(f)["tensors"]}
    qdir = os.path.join(out, "quantized_models")
    q = onnx.load(os.path.join(qdir, os.listdir(qdir)[0]))
    b = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    assert b["C_quantized"].dtype == np.int32, b["C_quantized"].dtype
    xhat = b["C_quantized"].astype(np.float64) * b["C_quantized_scale"].astype(np.float64)
    want = snr_db(beta * c.astype(np.float64), xhat)
    assert want > 60, want
    assert abs(rep["C"]["snr_db"] - want) < 0.05, (rep["C"]["snr_db"], want)
    w_scale = b["W_scale"].astype(np.float64).reshape(-1, 1)  # per channel: axis 0 of the transB weight
    assert abs(rep["W"]["snr_db"] - snr_db(w, b["W_quantized"].astype(np.float64) * w_scale)) < 0.05


def int4_image(w):
    """quantize_static's symmetric per-tensor Int4 image: scale = 2 max|w| / 15, q = clip(round(w / s), -8, 7)."""
    s = np.float32(2 * np.abs(w).max() / 15)
    return (np.clip(np.round(w / s), -8, 7) * s).astype(np.float32)


def test_sensitivity_ranking_with_a_nan_snr():
    """Three MatMul weights A (32 weights), N (16), C (8). A's 4-bit image loses everything but an outlier (~0.3 dB),
    C's is close (~40 dB), N's turns Sqrt(x N - 0.09) negative: NaN outputs. Keys: A 32 x 10^0.03 ~ 34, C 8 x 10^4
    ~ 8e4, N none: the ranking must be C, A, N (N in Int8 first). With the NaN compared as a number it stayed
    A, N, C (stable_sort with an order that is not one)."""
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 1.5, size=(4, 8)).astype(np.float32)
    a[3, :] = 100.0
    n = np.full((4, 4), 0.05, np.float32)
    n[0, 0] = 1.0
    c = rng.uniform(-1, 1, size=(4, 2)).astype(np.float32)
    sub = np.array([0, 0.09, 0.09, 0.09], np.float32)
    nodes = [helper.make_node("MatMul", ["x", "A"], ["yA"], name="mA"),
             helper.make_node("MatMul", ["x", "N"], ["hN"], name="mN"),
             helper.make_node("Sub", ["hN", "sub"], ["sN"], name="sub"),
             helper.make_node("Sqrt", ["sN"], ["yN"], name="sq"),
             helper.make_node("MatMul", ["x", "C"], ["yC"], name="mC")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None, d])
                           for o, d in [("yA", 8), ("yN", 4), ("yC", 2)]],
                          [numpy_helper.from_array(v, k) for k, v in [("A", a), ("N", n), ("sub", sub), ("C", c)]])
    work = tmpdir()
    model = save_graph(g, os.path.join(work, "m.onnx"))
    x = rng.uniform(1, 2, size=(16, 4)).astype(np.float32)
    x[:, 3] = 1e-3
    np.savez(os.path.join(work, "calib.npz"), x=x)
    np.savez(os.path.join(work, "test.npz"), x=x)
    data = f"quantization_path: {work}/calib.npz, test_path: {work}/test.npz"
    cfg = write_config(work, model, "full_auto", data, "per_tensor",
                       {"accuracy_tolerance": 1, "ranking": "sensitivity", "metric": "evaluator_command",
                        "evaluator_command": '"echo 100 # {model}"'})
    out = os.path.join(work, "out")
    run_oq(["--config", cfg, "--output-dir", out])
    with open(os.path.join(out, "full_auto.json")) as f:
        rep = json.load(f)
    # The SNRs by onnxruntime (every row: the 16 samples are all below the 64 the ranking reads).
    ref = ort_session(model).run(None, {"x": x})
    got = {}
    for name, w in [("A", a), ("N", n), ("C", c)]:
        m = onnx.load(model)
        for t in m.graph.initializer:
            if t.name == name:
                t.CopyFrom(numpy_helper.from_array(int4_image(w), name))
        p = os.path.join(work, f"w4_{name}.onnx")
        onnx.save(m, p)
        y = ort_session(p).run(None, {"x": x})
        sig = sum(float(np.sum(r.astype(np.float64) ** 2)) for r in ref)
        noise = sum(float(np.sum((r.astype(np.float64) - o) ** 2)) for r, o in zip(ref, y))
        got[name] = 10 * math.log10(sig / noise) if not math.isnan(noise) else None
    snr = rep["sensitivity"]["snr_db"]
    assert got["N"] is None and snr["N"] is None, (got, snr)
    for name in ("A", "C"):
        assert abs(snr[name] - got[name]) < 0.02, (name, snr[name], got[name])
    assert 32 * 10 ** (got["A"] / 10) < 8 * 10 ** (got["C"] / 10), got
    assert rep["ranking"] == ["C", "A", "N"], rep["ranking"]


EVALUATOR = """import sys, onnx
m = onnx.load(sys.argv[1])
int8 = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
print(100 if int8 else 50)
"""


def test_attempts_sharing_a_file_name():
    """W0 (524288 weights) and two 8-weight tensors W1, W2; the score is 100 with any 2-D weight in Int8, else 50.
    The bisection (N = 3: steps 2, 1) passes at n = 2 and n = 1: w4 = 99.99695 % and 99.99847 %, both
    `_w4_100.00%_w8_0.00%` with score 100.00. The n = 1 answer must own the file; n = 2's entry must not name a
    file holding another model (it named the n = 1 model, which had overwritten it)."""
    rng = np.random.default_rng(0)
    shapes = [("W0", (8, 65536)), ("W1", (8, 1)), ("W2", (8, 1))]
    g = helper.make_graph([helper.make_node("MatMul", ["x", w], [f"h{i}"], name=f"m{i}")
                           for i, (w, _) in enumerate(shapes)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                          [helper.make_tensor_value_info(f"h{i}", TensorProto.FLOAT, [None, s[1]])
                           for i, (_, s) in enumerate(shapes)],
                          [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), w) for w, s in shapes])
    work = tmpdir()
    model = save_graph(g, os.path.join(work, "m.onnx"))
    np.savez(os.path.join(work, "calib.npz"), x=rng.normal(size=(8, 8)).astype(np.float32))
    np.savez(os.path.join(work, "test.npz"), x=rng.normal(size=(8, 8)).astype(np.float32))
    with open(os.path.join(work, "ev.py"), "w") as f:
        f.write(EVALUATOR)
    data = f"quantization_path: {work}/calib.npz, test_path: {work}/test.npz"
    cfg = write_config(work, model, "full_auto", data, None,
                       {"accuracy_tolerance": 1, "metric": "evaluator_command",
                        "evaluator_command": f'"{sys.executable} {work}/ev.py {{model}}"'})
    out = os.path.join(work, "out")
    p = run_oq(["--config", cfg, "--output-dir", out])
    with open(os.path.join(out, "full_auto.json")) as f:
        rep = json.load(f)
    att = [(a["n_int8"], a["passed"], round(a["w4_percent"], 5)) for a in rep["attempts"]]
    assert att == [(0, False, 100.0), (2, True, round(100 * 524288 / 524304, 5)),
                   (1, True, round(100 * 524296 / 524304, 5))], att
    names = {os.path.basename(a["file"]) for a in rep["attempts"] if a["file"]}
    assert names == {"m_qdq_w4_100.00%_w8_0.00%_a8_100%_acc_100.00.onnx"}, names
    for a in rep["attempts"]:
        if a["file"]:
            m = onnx.load(a["file"])
            int8 = {t.name[: -len("_quantized")] for t in m.graph.initializer
                    if t.data_type == TensorProto.INT8 and len(t.dims) == 2}
            assert int8 == set(a["int8_tensors"]), (a["n_int8"], a["int8_tensors"], int8)
    assert rep["answer"]["n_int8"] == 1 and rep["answer"]["file"] == rep["attempts"][2]["file"], rep["answer"]
    assert rep["attempts"][1]["file"] == "", rep["attempts"][1]
    assert "have the same file name" in p.stderr + p.stdout, (p.stderr + p.stdout)[-2000:]


def test_int4_axis_follows_the_8bit_reference():
    """x [N, 8] @ W0 [8, 6] @ w1 [6], per channel. Default axes: the 8-bit reference has W0 per column (6 scales)
    and w1 per tensor (a 1-D weight has no axis 1); with QDQOpTypePerChannelSupportToAxis {MatMul: 0}, W0 per row
    (8 scales) and w1 per element (6). The all-Int4 attempt (it passes: tolerance 100 dB) must have the same axes
    and numpy's symmetric Int4 image on them; it had W0 per column under {MatMul: 0}, and w1 one scale per element
    by default (exact: no 4-bit rounding at all)."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(8, 6)).astype(np.float32)
    w1 = rng.normal(size=(6,)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W0"], ["h"], name="m0"),
                           helper.make_node("MatMul", ["h", "w1"], ["y"], name="m1")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
                          [numpy_helper.from_array(w0, "W0"), numpy_helper.from_array(w1, "w1")])
    work = tmpdir()
    model = save_graph(g, os.path.join(work, "m.onnx"))
    for f in ("calib", "test"):
        np.savez(os.path.join(work, f + ".npz"), x=rng.normal(size=(8, 8)).astype(np.float32))
    data = f"quantization_path: {work}/calib.npz, test_path: {work}/test.npz"

    def inits(path):
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}

    # (extra option, W0's reduced axis and scale shape, w1's)
    for extra, want in [("", {"W0": (0, (6,)), "w1": (None, ())}),
                        ("{QDQOpTypePerChannelSupportToAxis: {MatMul: 0}}", {"W0": (1, (8,)), "w1": ((), (6,))})]:
        cfg = write_config(work, model, "full_auto", data, "per_channel",
                           {"accuracy_tolerance": 100, "metric": "output_snr"})
        if extra:
            with open(cfg, "a") as f:
                f.write(f"  onnx_extra_options: {extra}\n")
        out = os.path.join(work, "out" + str(len(extra)))
        run_oq(["--config", cfg, "--output-dir", out])
        with open(os.path.join(out, "full_auto.json")) as f:
            rep = json.load(f)
        assert rep["answer"]["n_int8"] == 0, rep["answer"]
        ref, ans = inits(rep["int8_model"]), inits(rep["answer"]["file"])
        for name, w in [("W0", w0), ("w1", w1)]:
            reduce, shape = want[name]
            assert ref[name + "_scale"].shape == shape, (extra, name, ref[name + "_scale"].shape)
            q, scale = ans[name + "_quantized"], ans[name + "_scale"]
            assert scale.shape == shape, (extra, name, scale.shape, shape)
            m = np.abs(w).max(axis=reduce, keepdims=True) if reduce != () else np.abs(w)
            want_scale = (2 * m.astype(np.float64) / 15).astype(np.float32)
            assert np.allclose(scale.ravel(), want_scale.ravel(), rtol=1e-6), (extra, name, scale, want_scale)
            want_q = np.clip(np.round(w / want_scale), -8, 7)
            assert np.array_equal(q.astype(np.int64), want_q.astype(np.int64)), (extra, name, q, want_q)

if __name__ == "__main__":
    run_module_tests(globals())
