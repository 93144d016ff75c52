"""SmoothQuantUnfolded (docs/config.md, docs/quality.md "SmoothQuant"): what SmoothQuant writes where the division
by s cannot be folded into the producer (a graph input, a Clip output, a Flatten output).

* Each mode (mul, conv, skip): the smoothed float model computes the original's outputs (onnxruntime, <= 1e-4
  relative); mul inserts Muls, conv a depthwise 1x1 Conv (group C, weight 1/s as [C,1,1,1], no bias) for every 4-D
  input and a Mul for the others, skip inserts nothing and leaves those inputs' layers as they were (numpy
  comparison of the weights); the log counts them.
* conv on quantized models: onnxruntime's EXTENDED optimisation (optimized_model_filepath) fuses the Conv into a
  QLinearConv where mul mode leaves DQ -> float Mul -> Q (op histograms of the optimised graphs); the outputs equal
  mul mode's within 2 quantization steps of the output (both optimised and not; measured: identical); every
  model passes onnx.checker full_check and runs in onnxruntime.
* A bad value is a config error naming the key; skip with SmoothQuantFolding False is a warning.
Prints "N passed, N failed"."""
import collections
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

CONFIG = "examples/digits/user_config.yaml"
KEY = "quantization.onnx_extra_options.SmoothQuantUnfolded"


def session(model, optimize=False, path=None):
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    if path:
        so.optimized_model_filepath = path
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def run(model, x, optimize=False):
    s = session(model, optimize)
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def optimized_histogram(model):
    """Op histogram of onnxruntime's EXTENDED-optimised graph of `model` (what its QDQ fusion made of it)."""
    path = os.path.join(tmpdir(), "optimized.onnx")
    session(model, True, path)
    return collections.Counter(n.op_type for n in onnx.load(path).graph.node)


def test_model(with_gemm):
    """x (graph input) -> Conv A -> Clip(0, 6) -> Conv B -> Relu -> Conv C [-> GlobalAveragePool -> Flatten -> Gemm].
    Unfoldable: x (4-D), the Clip output (4-D), the Flatten output (2-D); Conv C's input folds into Conv B."""
    rng = np.random.default_rng(11)
    inits = {"wa": rng.standard_normal((6, 3, 3, 3)), "ba": rng.standard_normal(6), "wb": rng.standard_normal((5, 6, 1, 1)),
             "bb": rng.standard_normal(5), "wc": rng.standard_normal((4, 5, 1, 1)), "lo": 0.0, "hi": 6.0}
    inits["wa"][:, 1] *= 0.2  # an input channel with a large range (x[:, 1] is scaled by 8 below) and small weights
    nodes = [oh.make_node("Conv", ["x", "wa", "ba"], ["a"], pads=[1, 1, 1, 1], name="convA"),
             oh.make_node("Clip", ["a", "lo", "hi"], ["c"], name="clip"),
             oh.make_node("Conv", ["c", "wb", "bb"], ["b"], name="convB"),
             oh.make_node("Relu", ["b"], ["r"], name="relu"),
             oh.make_node("Conv", ["r", "wc"], ["y1"], name="convC")]
    out = ("y1", [None, 4, 8, 8])
    if with_gemm:
        inits["wg"] = rng.standard_normal((4, 3))
        nodes += [oh.make_node("GlobalAveragePool", ["y1"], ["p"], name="gap"),
                  oh.make_node("Flatten", ["p"], ["f"], name="flat"),
                  oh.make_node("Gemm", ["f", "wg"], ["y"], name="gemm")]
        out = ("y", [None, 3])
    g = oh.make_graph(nodes, "t", [oh.make_tensor_value_info("x", TP.FLOAT, [None, 3, 8, 8])],
                      [oh.make_tensor_value_info(out[0], TP.FLOAT, out[1])],
                      initializer=[nh.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def data(n, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 3, 8, 8)).astype(np.float32)
    x[:, 1] *= 8
    return x


def quantize(model, mode, extra=(), calib=None):
    """Default mode with SmoothQuant and SmoothQuantUnfolded=mode, calibrated on `calib` (default: data(32, 1));
    returns (written model path, stderr)."""
    d = tmpdir()
    mp, cp = os.path.join(d, "m.onnx"), os.path.join(d, "calib.npz")
    onnx.save(model, mp)
    np.savez(cp, x=data(32, 1) if calib is None else calib)
    out = os.path.join(d, "out")
    p = run_oq(["--config", CONFIG, "--output-dir", out, f"model.model_path={mp}", f"dataset.quantization_path={cp}",
                "quantization.operating_mode=default", "--threads", "1",
                "quantization.onnx_extra_options.SmoothQuant=True", f"{KEY}={mode}", *extra])
    q = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs if f.endswith(".onnx")]
    assert len(q) == 1, q
    onnx.checker.check_model(onnx.load(q[0]), full_check=True)
    return q[0], p.stderr


def smooth_nodes(m, op):
    return [n for n in m.graph.node if n.op_type == op and "_smooth" in n.name]


def float_model_each_mode():
    m = test_model(True)
    x = data(8, 2)
    ref = run(m.SerializeToString(), x)
    orig = {i.name: nh.to_array(i) for i in m.graph.initializer}
    for mode in ("mul", "conv", "skip"):
        # Float values kept (FLOAT_VALUES_OPTS) and the Q/DQ pairs stripped: the smoothed float model. (Quantizing
        # nothing, op_types_to_quantize [Softmax], no longer gives it: SmoothQuant smooths only quantized layers.)
        path, log = quantize(m, mode, FLOAT_VALUES_OPTS)
        sm = strip_qdq(path)
        assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in sm.graph.node)
        got = run(sm.SerializeToString(), x)
        rel = float(np.abs(got - ref).max() / np.abs(ref).max())
        assert rel <= 1e-4, f"{mode}: smoothed model off by {rel} (relative)"
        w = {i.name: nh.to_array(i) for i in sm.graph.initializer}
        muls, convs = smooth_nodes(sm, "Mul"), smooth_nodes(sm, "Conv")
        assert not np.array_equal(w["wc"], orig["wc"]), f"{mode}: the foldable input was not smoothed"
        if mode == "mul":
            assert (len(muls), len(convs)) == (3, 0), (mode, len(muls), len(convs))
        elif mode == "conv":
            assert (len(muls), len(convs)) == (1, 2), (mode, len(muls), len(convs))
            assert "2 divisions written as depthwise 1x1 Conv nodes, 1 inputs not 4-D kept their Mul" in log, log
            assert w[muls[0].input[1]].shape == (4,), "the 2-D input's Mul constant"  # [C] on the last axis
            for n in convs:
                k = w[n.input[1]]
                c = k.shape[0]
                attrs = {a.name: oh.get_attribute_value(a) for a in n.attribute}
                assert k.shape == (c, 1, 1, 1) and attrs["group"] == c and len(n.input) == 2, (k.shape, attrs)
                assert np.all(k > 0)
        else:
            assert not muls and not convs and len(sm.graph.node) == len(m.graph.node)
            assert "2 inputs whose division could not be folded left unsmoothed" not in log  # three: x, c, f
            assert "3 inputs whose division could not be folded left unsmoothed" in log, log
            for k in ("wa", "wg"):  # the layers of the skipped inputs keep their weights
                assert np.array_equal(w[k], orig[k]), k
            assert not np.array_equal(w["wb"], orig["wb"])  # Conv C's 1/s folded into Conv B's output rows
        print(f"    {mode}: {len(muls)} Mul, {len(convs)} Conv inserted; outputs within {rel:.1e}")


def output_step(path):
    """The scale of the Q/DQ pair on the model's output (one quantization step of it)."""
    m = onnx.load(path)
    inits = {i.name: nh.to_array(i) for i in m.graph.initializer}
    outs = {o.name for o in m.graph.output}
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.output[0] in outs)
    return float(inits[dq.input[1]].max())


def compare_modes(model, x, n_4d, n_other, calib=None):
    """Quantizes `model` (UInt8 activations, per channel) with mul and conv; checks the fused histograms and that
    the outputs agree. n_4d / n_other: inputs whose division is inserted, 4-D / of another rank."""
    act = ["quantization.onnx_quant_parameters.activType=UInt8"]
    paths = {mode: quantize(model, mode, act, calib)[0] for mode in ("mul", "conv")}
    h = {mode: optimized_histogram(p) for mode, p in paths.items()}
    mc = onnx.load(paths["conv"])
    assert len(smooth_nodes(mc, "Conv")) == n_4d and len(smooth_nodes(mc, "Mul")) == n_other
    assert h["mul"]["Mul"] == n_4d + n_other, h["mul"]
    assert h["conv"]["Mul"] == n_other, h["conv"]  # no float Mul left for the 4-D inputs
    assert h["conv"]["QLinearConv"] == h["mul"]["QLinearConv"] + n_4d, (h["mul"], h["conv"])
    assert h["conv"].get("Conv", 0) == h["mul"].get("Conv", 0) == 0, (h["mul"], h["conv"])
    step = output_step(paths["mul"])
    worst = 0.0
    for optimize in (False, True):
        a, b = run(paths["mul"], x, optimize), run(paths["conv"], x, optimize)
        worst = max(worst, float(np.abs(a - b).max()))
        assert np.abs(a - b).max() <= 2 * step, (optimize, np.abs(a - b).max(), step)
    print(f"    fused: mul {dict(h['mul'])}\n           conv {dict(h['conv'])}\n"
          f"    max |conv - mul| {worst} (output step {step:.3g})")


def conv_mode_fuses_small():
    compare_modes(test_model(False), data(8, 3), 2, 0)


def conv_mode_fuses_digits():
    # digits_mobilenet: 13 unfoldable 4-D inputs (ReLU6 outputs, the graph input), and the Gemm's 2-D input.
    m = onnx.load(os.path.join(TESTDATA, "digits_mobilenet.onnx"))
    x = np.load(os.path.join(TESTDATA, "digits_test.npz"))["x"][:64]
    compare_modes(m, x, 13, 1, np.load(os.path.join(TESTDATA, "digits_calib.npz"))["x"])


def skip_inserts_nothing_quantized():
    path, log = quantize(test_model(True), "skip")
    m = onnx.load(path)
    assert not smooth_nodes(m, "Mul") and not smooth_nodes(m, "Conv")
    assert not any(i.name.endswith("_inv_scale") for i in m.graph.initializer)
    run(path, data(4, 5))


def bad_value_is_config_error():
    p = run_oq(["--config", CONFIG, "--output-dir", os.path.join(tmpdir(), "o"), "quantization.operating_mode=default",
                "quantization.onnx_extra_options.SmoothQuant=True", f"{KEY}=depthwise"], check=False)
    assert p.returncode == 2, (p.returncode, p.stderr[-500:])
    err = [ln for ln in p.stderr.splitlines() if "error" in ln.lower()]
    assert len(err) == 1 and KEY in err[0] and "mul, conv, skip" in err[0] and "depthwise" in err[0], p.stderr[-800:]
    # skip without folding smooths nothing: a warning naming the key, and no layer smoothed.
    p = run_oq(["--config", CONFIG, "--output-dir", os.path.join(tmpdir(), "o"), "quantization.operating_mode=default",
                "quantization.onnx_extra_options.SmoothQuant=True",
                "quantization.onnx_extra_options.SmoothQuantFolding=False", f"{KEY}=Skip"])
    assert f"[warning] {KEY}: skip with SmoothQuantFolding: False smooths no layer" in p.stderr, p.stderr[-800:]
    assert "0 layers smoothed" in p.stderr and "15 inputs whose division could not be folded" in p.stderr


if __name__ == "__main__":
    r = Runner()
    r.run("each mode keeps the float outputs", float_model_each_mode)
    r.run("conv: QLinearConv instead of DQ -> Mul -> Q (small model)", conv_mode_fuses_small)
    r.run("conv: QLinearConv instead of DQ -> Mul -> Q (digits_mobilenet)", conv_mode_fuses_digits)
    r.run("skip: nothing inserted in the quantized model", skip_inserts_nothing_quantized)
    r.run("bad SmoothQuantUnfolded value", bad_value_is_config_error)
    r.finish()
