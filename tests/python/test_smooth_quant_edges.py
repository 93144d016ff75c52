"""SmoothQuant edge cases (docs/config.md `SmoothQuant*`, docs/quality.md "SmoothQuant"), each against onnxruntime
or numpy:

* the node selection: a layer the user keeps in float (nodes_to_exclude, op_types_to_quantize) is neither smoothed
  nor given a division; with every node excluded the written model is the float model, bit for bit (ORT outputs
  identical, initializers unchanged);
* non-finite calibration values: max|X_j| leaves them out as the calibrated ranges do (one +inf): the smoothed float
  model computes the original's outputs (ORT, 1e-4), no written weight is infinite, and the scales equal numpy's
  from the finite values; a channel with no finite value is named in a warning;
* below opset 13 no Mul is inserted (its 1/s constant could only be quantized per tensor): one warning, and the
  output SNR against the float model is not below SmoothQuant off (ORT);
* the 1/s constant of an inserted Mul is quantized in the activation type (as ORT quantizes a Mul's constant);
* inspection's suggested override of an inserted `*_smoothN_out` tensor is accepted by the next run and applied;
  an unknown name is still refused before calibration.
Prints "N passed, N failed"."""
import os
import re
import html
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import FLOAT_VALUES_OPTS, Runner, run_oq, strip_qdq, tmpdir  # noqa: E402

CONFIG = "examples/digits/user_config.yaml"
SQ = "quantization.onnx_extra_options.SmoothQuant=True"


def run(model, x):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    s = ort.InferenceSession(model if isinstance(model, str) else model.SerializeToString(), so,
                             providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def make_model(nodes, inits, in_shape, opset=17):
    g = oh.make_graph(nodes, "t", [oh.make_tensor_value_info("x", TP.FLOAT, in_shape)],
                      [oh.make_tensor_value_info("y", TP.FLOAT, None)],
                      initializer=[nh.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def quantize(model, calib, extra, check=True):
    """Default mode; returns (written model path or None, CompletedProcess)."""
    d = tmpdir()
    mp, cp = os.path.join(d, "m.onnx"), os.path.join(d, "calib.npz")
    onnx.save(model, mp)
    np.savez(cp, x=calib)
    out = os.path.join(d, "out")
    p = run_oq(["--config", CONFIG, "--output-dir", out, f"model.model_path={mp}", f"dataset.quantization_path={cp}",
                "quantization.operating_mode=default", "--threads", "1", *extra], check=check)
    q = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs if f.endswith(".onnx")] if os.path.isdir(out) else []
    assert len(q) == (1 if p.returncode == 0 else 0), (p.returncode, q)
    return (q[0] if q else None), p


def inits(m):
    return {i.name: nh.to_array(i) for i in m.graph.initializer}


def snr(got, ref):
    return 10 * np.log10((ref.astype(np.float64) ** 2).sum() / ((got - ref).astype(np.float64) ** 2).sum())


def clip_model():
    """x -> conv1 -> relu6 (Clip 0, 6) -> head (Conv): head's input cannot be folded (Clip), x neither (graph input)."""
    rng = np.random.default_rng(14)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1], name="conv1"),
             oh.make_node("Clip", ["a", "lo", "hi"], ["c"], name="relu6"),
             oh.make_node("Conv", ["c", "w2", "b2"], ["y"], name="head")]
    m = make_model(nodes, {"w1": r(6, 3, 3, 3), "b1": r(6), "lo": np.float32(0), "hi": np.float32(6),
                           "w2": r(4, 6, 1, 1), "b2": r(4)}, [None, 3, 8, 8])
    calib = rng.uniform(-1, 1, (32, 3, 8, 8)).astype(np.float32)
    calib[:, 1] *= 8
    x = rng.uniform(-1, 1, (16, 3, 8, 8)).astype(np.float32)
    return m, calib, x


def test_selection_kept_in_float():
    m, calib, x = clip_model()
    ref = run(m, x)
    key = "quantization.onnx_quant_parameters"
    for sel in ([f"{key}.nodes_to_exclude=[conv1,relu6,head]"], [f"{key}.op_types_to_quantize=[Relu]"]):
        path, p = quantize(m, calib, [SQ] + sel)
        qm = onnx.load(path)
        assert [n.op_type for n in qm.graph.node] == ["Conv", "Clip", "Conv"], ([n.op_type for n in qm.graph.node], sel)
        got = inits(qm)
        for k, v in inits(m).items():
            assert np.array_equal(got[k], v), f"{sel}: {k} changed"
        out = run(path, x)
        assert np.array_equal(out, ref), f"{sel}: outputs differ by {np.abs(out - ref).max()}"
        assert "0 layers smoothed" in p.stderr, p.stderr[-1500:]
    # conv1 excluded: it reads x itself with its own weight (no division in front of it); head is smoothed.
    path, p = quantize(m, calib, [SQ, f"{key}.nodes_to_exclude=[conv1]"])
    qm = onnx.load(path)
    conv1 = next(n for n in qm.graph.node if n.name == "conv1")
    assert list(conv1.input[:2]) == ["x", "w1"], list(conv1.input)
    assert np.array_equal(inits(qm)["w1"], inits(m)["w1"])
    muls = [n for n in qm.graph.node if n.op_type == "Mul" and "_smooth" in n.name]
    assert len(muls) == 1 and muls[0].input[0].startswith("c"), [list(n.input) for n in muls]
    assert "1 layers smoothed" in p.stderr, p.stderr[-1500:]
    print(f"    all excluded: identical outputs; conv1 excluded: output SNR {snr(run(path, x), ref):.2f} dB")


def absmax_finite(v, axis):
    """Per-channel max|v| over the finite values (numpy); 0 where a channel has none."""
    a = np.where(np.isfinite(v), np.abs(v), 0.0).astype(np.float64)
    return a.max(axis=tuple(i for i in range(v.ndim) if i != axis))


def test_nonfinite_calibration_values():
    # Conv -> Relu -> Conv with one +inf in the calibration data (the reviewer's repro): s from the finite values.
    rng = np.random.default_rng(9)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    w1, b1, w2, b2 = r(4, 3, 3, 3), r(4), r(2, 4, 1, 1), r(2)
    m = make_model([oh.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]), oh.make_node("Relu", ["a"], ["h"]),
                    oh.make_node("Conv", ["h", "w2", "b2"], ["y"])],
                   {"w1": w1, "b1": b1, "w2": w2, "b2": b2}, [None, 3, 6, 6])
    calib = rng.uniform(-1, 1, (16, 3, 6, 6)).astype(np.float32)
    calib[3, 1, 2, 2] = np.inf
    x = rng.uniform(-1, 1, (8, 3, 6, 6)).astype(np.float32)
    path, p = quantize(m, calib, FLOAT_VALUES_OPTS + [SQ])
    sm = strip_qdq(path)
    got = inits(sm)
    assert all(np.all(np.isfinite(v)) for v in got.values()), {k: np.isfinite(v).all() for k, v in got.items()}
    ref, out = run(m, x), run(sm, x)
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert rel <= 1e-4, f"smoothed model off by {rel} (relative)"
    # numpy, downstream first: s_h from w2 and max|h| (ORT on the original model), then s_x from w1 / s_h.
    mh = onnx.ModelProto.FromString(m.SerializeToString())
    mh.graph.output[0].name = "h"
    mh.graph.node.pop()
    sh = absmax_finite(run(mh, calib), 1) ** 0.5 / np.abs(w2).max(axis=(0, 2, 3)).astype(np.float64) ** 0.5
    sx = absmax_finite(calib, 1) ** 0.5 / np.abs(w1 / sh[:, None, None, None]).max(axis=(0, 2, 3)) ** 0.5
    inv = [v for k, v in got.items() if k.endswith("_inv_scale")]
    assert len(inv) == 1, sorted(got)
    np.testing.assert_allclose(inv[0].reshape(-1), 1 / sx, rtol=1e-5)
    np.testing.assert_allclose(got["w2"], w2 * sh[None, :, None, None], rtol=1e-5, atol=1e-7)
    assert "SmoothQuant: tensor 'x' holds 1 NaN or infinite values" in p.stderr, p.stderr[-1500:]
    print(f"    one +inf: outputs within {rel:.1e}, 1/s of x {np.round(inv[0].reshape(-1), 4)}")

    # A channel that is +inf on every calibration sample: SmoothQuant keeps s = 1 there and says so (the numbers:
    # tests/unit/test_quality.cc SmoothQuant.NonFiniteValuesLeftOut); the target's output then has no finite value,
    # which calibration refuses with its own error naming it (not a SmoothQuant failure).
    m = make_model([oh.make_node("MatMul", ["x", "w"], ["y"])], {"w": r(8, 4)}, [None, 8])
    calib = rng.uniform(-1, 1, (32, 8)).astype(np.float32)
    calib[:, 5] = np.inf
    path, p = quantize(m, calib, [SQ], check=False)
    assert ("SmoothQuant: tensor 'x' holds 32 NaN or infinite values on the calibration data: its per-channel maxima "
            "leave them out, as the calibrated ranges do (1 of its 8 channels have no finite value and keep s = 1)"
            in p.stderr), p.stderr[-1500:]
    err = [ln for ln in p.stderr.splitlines() if "[error]" in ln]
    assert p.returncode != 0 and len(err) == 1 and "calibration: tensor 'y' has no finite value" in err[0], err


def test_opset12_no_inserted_mul():
    rng = np.random.default_rng(12)
    m = make_model([oh.make_node("MatMul", ["x", "w"], ["y"])], {"w": rng.standard_normal((16, 8))}, [None, 16], opset=12)
    spread = np.logspace(-2, 2, 16).astype(np.float32)  # channel magnitudes 0.01 .. 100 (activation outliers)
    calib = (rng.uniform(-1, 1, (64, 16)) * spread).astype(np.float32)
    x = (rng.uniform(-1, 1, (256, 16)) * spread).astype(np.float32)
    ref = run(m, x)
    res = {}
    for opset in (12, 13):
        for sq in ("False", "True"):
            path, p = quantize(m, calib, [f"quantization.onnx_extra_options.SmoothQuant={sq}",
                                          f"quantization.target_opset={opset}", "quantization.granularity=per_tensor"])
            qm = onnx.load(path)
            muls = [n for n in qm.graph.node if n.op_type == "Mul"]
            res[opset, sq] = (snr(run(path, x), ref), len(muls), p.stderr)
    s_off, _, _ = res[12, "False"]
    s_on, n_mul, log = res[12, "True"]
    assert s_on >= s_off - 1e-6, f"SmoothQuant at opset 12: {s_on:.2f} dB < {s_off:.2f} dB without it"
    assert n_mul == 0, "a Mul was inserted at opset 12"
    warn = [ln for ln in log.splitlines() if "[warning] SmoothQuant: opset 12 < 13" in ln]
    assert len(warn) == 1 and "1 inputs whose division could not be folded left unsmoothed" in warn[0], log[-1500:]
    assert res[13, "True"][1] == 1, "opset 13 still inserts the Mul"  # the case the rule leaves alone
    assert not any("SmoothQuant: opset" in ln for ln in res[13, "True"][2].splitlines())
    print(f"    opset 12: {s_off:.2f} dB off, {s_on:.2f} dB on; opset 13: {res[13, 'False'][0]:.2f} / "
          f"{res[13, 'True'][0]:.2f} dB")


def test_inv_scale_in_activation_type():
    rng = np.random.default_rng(11)
    m = make_model([oh.make_node("MatMul", ["x", "w"], ["y"])], {"w": rng.standard_normal((8, 4))}, [None, 8])
    calib = rng.uniform(-1, 1, (32, 8)).astype(np.float32)
    calib[:, 2] *= 30
    key = "quantization.onnx_quant_parameters"
    for wt, at, want in (("Int8", "UInt8", TP.UINT8), ("UInt8", "Int8", TP.INT8)):
        path, _ = quantize(m, calib, [SQ, f"{key}.weightType={wt}", f"{key}.activType={at}"])
        qm = onnx.load(path)
        raw = {i.name: i for i in qm.graph.initializer}
        dq = [n for n in qm.graph.node if n.op_type == "DequantizeLinear" and n.input[0].endswith("_inv_scale_quantized")]
        assert len(dq) == 1, [n.input[0] for n in qm.graph.node if n.op_type == "DequantizeLinear"]
        got = raw[dq[0].input[0]].data_type
        assert got == want, f"{wt}/{at}: 1/s stored as {TP.DataType.Name(got)}"
        assert [a.i for a in dq[0].attribute if a.name == "axis"] == [0]  # per channel
        wdq = next(n for n in qm.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith("w_"))
        assert raw[wdq.input[0]].data_type == (TP.INT8 if wt == "Int8" else TP.UINT8)


def test_inspection_suggestion_accepted():
    d = tmpdir()
    ex = "quantization.onnx_extra_options"
    insp = os.path.join(d, "insp")
    run_oq(["--config", CONFIG, "--output-dir", insp, "--threads", "2", "quantization.operating_mode=inspection", f"{ex}.SmoothQuant=True",
            "quantization.iterative_quant_parameters.snr_threshold=60"])
    h = html.unescape(open(os.path.join(insp, "inspection.html")).read())
    names = re.findall(r"- \['([^']*_smooth\d+_out)', \{quant_type: Int16\}\]", h)
    assert names, "no inserted tensor suggested"
    name = names[0]
    out = os.path.join(d, "apply")
    p = run_oq(["--config", CONFIG, "--output-dir", out, "--threads", "2", "quantization.operating_mode=default",
                f"{ex}.SmoothQuant=True", f"{ex}.activations_tensor_override=[['{name}',{{quant_type: Int16}}]]"])
    q = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs if f.endswith(".onnx")]
    qm = onnx.load(q[0])
    zp = {i.name: i.data_type for i in qm.graph.initializer}
    qs = [n for n in qm.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == name]
    assert qs and all(zp[n.input[2]] == TP.INT16 for n in qs), [(n.input[2], zp.get(n.input[2])) for n in qs]
    others = [n for n in qm.graph.node if n.op_type == "QuantizeLinear" and n.input[0] != name]
    assert others and all(zp[n.input[2]] == TP.INT8 for n in others)  # the rest keeps the config's Int8
    # A name that exists in neither graph: refused before SmoothQuant and calibration, rc 2, one line, nothing written.
    # A SmoothQuant-style name the rewrite does not create: refused right after it, before calibration.
    prefix = name[:name.rindex("_smooth")]
    for bad, before_sq in (("no_such_tensor", True), (f"{prefix}_smooth99_out", False)):
        out = os.path.join(d, "bad")
        p = run_oq(["--config", CONFIG, "--output-dir", out, "--threads", "2", "quantization.operating_mode=default",
                    f"{ex}.SmoothQuant=True", f"{ex}.activations_tensor_override=[['{bad}',{{quant_type: Int16}}]]"],
                   check=False)
        assert p.returncode == 2, (bad, p.returncode, p.stderr[-800:])
        err = [ln for ln in p.stderr.splitlines() if "[error]" in ln]
        assert len(err) == 1 and f"activations_tensor_override: the model has no activation tensor named '{bad}'" in err[0], err
        assert ("SmoothQuant (alpha" not in p.stderr) == before_sq, p.stderr[-1500:]
        assert "Calibrated" not in p.stderr
        assert not any(f.endswith(".onnx") for _, _, fs in os.walk(out) for f in fs)
    print(f"    {name}: accepted, written with an INT16 zero point")


if __name__ == "__main__":
    r = Runner()
    r.run("selection: a layer kept in float is not smoothed", test_selection_kept_in_float)
    r.run("non-finite calibration values left out of max|X|", test_nonfinite_calibration_values)
    r.run("opset 12: no inserted Mul, SNR not worse", test_opset12_no_inserted_mul)
    r.run("1/s constant in the activation type", test_inv_scale_in_activation_type)
    r.run("inspection: suggested *_smoothN_out override accepted", test_inspection_suggestion_accepted)
    r.finish()
