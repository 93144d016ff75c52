"""The engine against onnxruntime (the oracle) on real models.

Float models (testdata/ and ../shared/models/): outputs agree within 1e-4 relative.
QDQ models (written by onnxquant and by ORT's quantize_static; ORT run with graph optimizations disabled, i.e.
QDQ simulated in float as the spec defines it): outputs within 1e-5, and every QuantizeLinear output (an
integer tensor, exposed as a graph output) exactly equal.
"""
import glob
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import SHARED, TESTDATA, Runner, run_oq, tmpdir  # noqa: E402


def ort_run(path, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return [o.name for o in s.get_outputs()], s.run(None, feeds)


def random_feeds(model, batch, rng):
    feeds = {}
    inits = {i.name for i in model.graph.initializer}
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value if d.dim_value > 0 else batch for d in i.type.tensor_type.shape.dim]
        feeds[i.name] = rng.uniform(-1, 1, size=dims).astype(np.float32)
    return feeds


def engine_run(path, feeds, names):
    work = tmpdir()
    args = ["run", path, "--output-dir", os.path.join(work, "out")]
    for k, v in feeds.items():
        f = os.path.join(work, k.replace("/", "_").replace(":", "_") + ".npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    run_oq(args)
    safe = lambda n: "".join(c if (c.isalnum() or c in "._-") else "_" for c in n)  # noqa: E731
    return [np.load(os.path.join(work, "out", safe(n) + ".npy")) for n in names]


def check_float(path):
    rng = np.random.default_rng(0)
    m = onnx.load(path)
    feeds = random_feeds(m, 2, rng)
    names, want = ort_run(path, feeds)
    got = engine_run(path, feeds, names)
    for n, a, b in zip(names, want, got):
        assert a.shape == b.shape, f"{n}: shape {b.shape} vs ORT {a.shape}"
        if a.dtype.kind == "f":
            err = np.abs(a.astype(np.float64) - b).max() / max(np.abs(a).max(), 1e-6)
            assert err <= 1e-4, f"{n}: max relative error {err:.2e}"
        else:
            assert np.array_equal(a, b), f"{n}: integer output differs"


def expose_quantized(path, out_path):
    """Adds every QuantizeLinear output (integer) as a graph output."""
    m = onnx.load(path)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear" and n.output[0] not in have:
            m.graph.output.append(helper.make_empty_tensor_value_info(n.output[0]))
    onnx.save(m, out_path)


def check_qdq(path, npz, int_slack=0, float_tol=1e-5):
    """int_slack/float_tol: 16-bit activations resolve float differences of ~1e-7 (oneDNN vs MLAS summation
    order) into different rounding at 1/65535 steps, so there a few steps of slack (errors compound layer after layer) are allowed."""
    work = tmpdir()
    exposed = os.path.join(work, "exposed.onnx")
    expose_quantized(path, exposed)
    x = np.load(npz)["x"][:8]
    m = onnx.load(exposed)
    feeds = {m.graph.input[0].name: x}
    names, want = ort_run(exposed, feeds)
    got = engine_run(exposed, feeds, names)
    n_int = 0
    for n, a, b in zip(names, want, got):
        assert a.shape == b.shape, f"{n}: shape {b.shape} vs ORT {a.shape}"
        if a.dtype.kind == "f":
            err = np.abs(a.astype(np.float64) - b).max() / max(np.abs(a).max(), 1e-6)
            assert err <= float_tol, f"{n}: max relative error {err:.2e}"
        else:
            n_int += 1
            assert a.dtype == b.dtype, f"{n}: dtype {b.dtype} vs ORT {a.dtype}"
            d = np.abs(a.astype(np.int64) - b.astype(np.int64))
            assert d.max() <= int_slack, f"{n}: {int((d > int_slack).sum())} integer values differ (max {d.max()})"
    assert n_int > 0


def our_qdq(model, calib, wtype="Int8", atype="Int8"):
    out = tmpdir()
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out,
            f"model.model_path=testdata/{model}", f"dataset.quantization_path=testdata/{calib}",
            "quantization.operating_mode=default", f"quantization.onnx_quant_parameters.weightType={wtype}",
            f"quantization.onnx_quant_parameters.activType={atype}"])
    return glob.glob(os.path.join(out, "quantized_models", "*.onnx"))[0]


if __name__ == "__main__":
    r = Runner()
    models = sorted(glob.glob(os.path.join(TESTDATA, "*.onnx"))) + sorted(glob.glob(os.path.join(SHARED, "models", "*.onnx")))
    assert len(models) >= 8, models
    for p in models:
        r.run(f"float {os.path.basename(p)}", check_float, p)
    for model, calib, w, a in [("digits_mobilenet.onnx", "digits_calib.npz", "Int8", "Int8"),
                               ("digits_resnet.onnx", "digits_calib.npz", "Int8", "UInt8"),
                               ("digits_mlp.onnx", "digits_calib_flat.npz", "Int8", "Int8"),
                               ("digits_mobilenet.onnx", "digits_calib.npz", "Int4", "Int8"),
                               ("digits_resnet.onnx", "digits_calib.npz", "Int16", "UInt16")]:
        slack, tol = (4, 8.0 / 65535) if a == "UInt16" else (0, 1e-5)
        r.run(f"qdq {model} {w}/{a}", lambda m=model, c=calib, w=w, a=a, s=slack, t=tol: check_qdq(
            our_qdq(m, c, w, a), os.path.join(TESTDATA, c), s, t))
    r.finish()
