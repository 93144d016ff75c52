"""Float16 models: default mode vs ONNX Runtime's quantize_static (QDQ), inspection and full_auto.

Small float16 graphs (Conv -> Relu -> Conv, Conv -> Flatten -> Gemm with biases, MatMul, an Add of two
activations, a float32 input Cast to float16 inside), per channel and per tensor, Int8 and UInt8 activations, are
quantized by ORT 1.32 (after quant_pre_process with skip_optimization: its graph optimizer would insert Casts to
float32 around every node, and ORT would then quantize a float32 model) and by onnxquant on the same data (float32
arrays in the .npz, which onnxquant rounds to the float16 input, as ORT's float16 feed is). The written models must
have the same node wiring and tensor names, float16 scales where ORT has them (equal within 2 float16 ulps: the
executor computes in float32 where ORT's CPU kernels round some intermediate values to float16), zero points
within 1, pass the full ONNX checker, and give outputs in onnxruntime close to ORT's quantized model's. Inspection
and full_auto run on a float16 version of the digits MobileNet; a weight's SNR is recomputed with numpy.
"""
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import TESTDATA, Runner, default_mode_config, run_oq, tmpdir  # noqa: E402

N = 16
F16 = TensorProto.FLOAT16
MEASURED = []  # (case, largest scale difference in float16 ulps, largest output difference in output steps)


class DictReader(CalibrationDataReader):
    def __init__(self, x):
        self.x, self.i = x, 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        self.i += 1
        return {"input": self.x[self.i - 1:self.i]}


def rnd(seed, shape, s=0.3, dtype=np.float16):
    return (np.random.default_rng(seed).standard_normal(shape) * s).astype(dtype)


def init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def model(nodes, inits, in_shape, out_shape, in_type=F16, out_type=F16):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", in_type, in_shape)],
                          [helper.make_tensor_value_info("y", out_type, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    return m


def conv(x, y, w, b, name):
    return helper.make_node("Conv", [x, w, b], [y], name=name, pads=[1, 1, 1, 1])


def conv_relu_conv():
    nodes = [conv("input", "c1", "W1", "B1", "conv1"), helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             conv("r1", "y", "W2", "B2", "conv2")]
    inits = [init("W1", rnd(1, (6, 3, 3, 3))), init("B1", rnd(2, (6,), 0.1)), init("W2", rnd(3, (4, 6, 3, 3), 0.2)),
             init("B2", rnd(4, (4,), 0.1))]
    return model(nodes, inits, [1, 3, 8, 8], [1, 4, 8, 8]), [1, 3, 8, 8]


def conv_hardswish_conv():
    """HardSwish stays one node in ORT's float16 flow (quant_pre_process with skip_optimization does not inline it);
    onnxquant keeps it whole for float16 models too."""
    nodes = [conv("input", "c1", "W1", "B1", "conv1"), helper.make_node("HardSwish", ["c1"], ["h1"], name="hs1"),
             conv("h1", "y", "W2", "B2", "conv2")]
    inits = [init("W1", rnd(11, (6, 3, 3, 3))), init("B1", rnd(12, (6,), 0.1)), init("W2", rnd(13, (4, 6, 3, 3), 0.2)),
             init("B2", rnd(14, (4,), 0.1))]
    return model(nodes, inits, [1, 3, 8, 8], [1, 4, 8, 8]), [1, 3, 8, 8]


def conv_flatten_gemm():
    nodes = [conv("input", "c", "W", "B", "conv"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "G", "C"], ["y"], name="gemm", transB=1)]
    inits = [init("W", rnd(5, (4, 3, 3, 3))), init("B", rnd(6, (4,), 0.1)), init("G", rnd(7, (10, 4 * 64), 0.05)),
             init("C", rnd(8, (10,), 0.1))]
    return model(nodes, inits, [1, 3, 8, 8], [1, 10]), [1, 3, 8, 8]


def matmul():
    nodes = [helper.make_node("MatMul", ["input", "M"], ["y"], name="mm")]
    return model(nodes, [init("M", rnd(9, (16, 8), 0.2))], [1, 16], [1, 8]), [1, 16]


def add_two():
    nodes = [conv("input", "a", "Wa", "Ba", "conva"), conv("input", "b", "Wb", "Bb", "convb"),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    inits = [init("Wa", rnd(10, (4, 3, 3, 3))), init("Ba", rnd(11, (4,), 0.1)), init("Wb", rnd(12, (4, 3, 3, 3))),
             init("Bb", rnd(13, (4,), 0.1))]
    return model(nodes, inits, [1, 3, 8, 8], [1, 4, 8, 8]), [1, 3, 8, 8]


def float_input_cast():
    """A float32 input cast to float16 inside; the float16 output cast back to float32."""
    nodes = [helper.make_node("Cast", ["input"], ["x16"], name="to16", to=F16), conv("x16", "c", "W", "B", "conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Cast", ["r"], ["y"], name="to32", to=TensorProto.FLOAT)]
    inits = [init("W", rnd(14, (4, 3, 3, 3))), init("B", rnd(15, (4,), 0.1))]
    return model(nodes, inits, [1, 3, 8, 8], [1, 4, 8, 8], TensorProto.FLOAT, TensorProto.FLOAT), [1, 3, 8, 8]


def quantize_both(m, in_shape, per_channel, act, extra=None):
    extra = dict(extra or {})
    work = tmpdir()
    raw, pre = os.path.join(work, "float.onnx"), os.path.join(work, "pre.onnx")
    onnx.save(m, raw)
    quant_pre_process(raw, pre, skip_optimization=True)
    x32 = rnd(100, [N] + in_shape[1:], 1.0, np.float32)
    half_input = m.graph.input[0].type.tensor_type.elem_type == F16
    x_ort = x32.astype(np.float16) if half_input else x32
    np.savez(os.path.join(work, "calib.npz"), input=x32)  # float32, what users have
    ort_out = os.path.join(work, "ort.onnx")
    quantize_static(pre, ort_out, DictReader(x_ort), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    weight_type=QuantType.QInt8, activation_type=getattr(QuantType, "Q" + act),
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, **extra})
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(pre, os.path.join(work, "calib.npz"), per_channel, 21, act, extra=extra))
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq"), "--threads", "1"])
    ours = os.path.join(work, "oq", "quantized_models", "pre_quant_qdq_" + ("pc" if per_channel else "pt") + ".onnx")
    onnx.checker.check_model(onnx.load(ours), full_check=True)
    return ort_out, ours, x_ort, p


def wiring(m):
    return {tuple(n.output): (n.op_type, tuple(n.input)) for n in m.graph.node}


def ulps16(a, b):
    """Distance of two float16 values in float16 steps (of the larger one's exponent)."""
    a, b = np.float16(a), np.float16(b)
    return float(abs(np.float64(a) - np.float64(b)) / np.float64(np.spacing(max(abs(a), abs(b)))))


def run_ort(path, x):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))]).astype(np.float64)


def same_as_ort(name, build, per_channel=True, act="Int8", extra=None):
    m, in_shape = build()
    ort_out, ours, x, log = quantize_both(m, in_shape, per_channel, act, extra)
    a, b = onnx.load(ort_out), onnx.load(ours)
    wa, wb = wiring(a), wiring(b)
    assert wa == wb, ("graphs differ:\n ORT only " + str(sorted(set(wa.items()) - set(wb.items())))
                      + "\n ours only " + str(sorted(set(wb.items()) - set(wa.items()))))
    hist = lambda g: sorted((n.op_type) for n in g.graph.node)  # noqa: E731
    assert hist(a) == hist(b)
    ta = {t.name: t for t in a.graph.initializer}
    tb = {t.name: t for t in b.graph.initializer}
    assert set(ta) == set(tb), f"initializers: ORT only {set(ta) - set(tb)}, ours only {set(tb) - set(ta)}"
    assert [(i.name, i.type.tensor_type.elem_type) for i in a.graph.input] == \
        [(i.name, i.type.tensor_type.elem_type) for i in b.graph.input]
    assert [(o.name, o.type.tensor_type.elem_type) for o in a.graph.output] == \
        [(o.name, o.type.tensor_type.elem_type) for o in b.graph.output]
    worst = 0.0
    n_half = 0
    for n, t in ta.items():
        u = tb[n]
        assert t.data_type == u.data_type, f"{n}: ORT type {t.data_type}, ours {u.data_type}"
        va, vb = numpy_helper.to_array(t), numpy_helper.to_array(u)
        if n.endswith("_scale"):
            n_half += t.data_type == F16
            d = max(ulps16(p, q) for p, q in zip(va.ravel(), vb.ravel())) if t.data_type == F16 else \
                float(np.max(np.abs(va - vb) / va))
            assert (d <= 2) if t.data_type == F16 else (d <= 1e-3), f"{n}: ORT {va.ravel()[:4]} vs ours {vb.ravel()[:4]}"
            worst = max(worst, d if t.data_type == F16 else 0)
        elif n.endswith("_zero_point"):
            assert np.abs(va.astype(np.int64) - vb.astype(np.int64)).max() <= 1, f"{n}: {va} vs {vb}"
        elif n.endswith("_quantized") and t.data_type != TensorProto.INT32:  # weights: from the same scale
            sa, sb = numpy_helper.to_array(ta[n[:-len('_quantized')] + "_scale"]), \
                numpy_helper.to_array(tb[n[:-len('_quantized')] + "_scale"])
            if np.array_equal(sa, sb):
                assert np.array_equal(va, vb), f"{n}: weights differ with equal scales"
        elif n.endswith("_quantized"):  # int32 biases: the same values once dequantized
            da = va * numpy_helper.to_array(ta[n + "_scale"]).astype(np.float64)
            db = vb * numpy_helper.to_array(tb[n + "_scale"]).astype(np.float64)
            assert np.allclose(da, db, rtol=2e-3, atol=1e-6), f"{n}: {da[:4]} vs {db[:4]}"
    assert n_half > 0, "no float16 scale"
    # The stored integers are the weights quantized with the STORED float16 scale (numpy, as ORT's quantize_nparray:
    # float32 division, round half to even, clip).
    fl = {t.name: numpy_helper.to_array(t) for t in onnx.load(os.path.join(os.path.dirname(ort_out), "pre.onnx")).graph.initializer}
    for n, u in tb.items():
        if not n.endswith("_quantized") or u.data_type == TensorProto.INT32:
            continue
        w = fl[n[:-len("_quantized")]].astype(np.float32)
        sc = numpy_helper.to_array(tb[n[:-len("_quantized")] + "_scale"]).astype(np.float32)
        zp = numpy_helper.to_array(tb[n[:-len("_quantized")] + "_zero_point"]).astype(np.float32)
        axis = next((a.i for nd in b.graph.node if nd.input and nd.input[0] == n for a in nd.attribute
                     if a.name == "axis"), None)
        shape = [1] * w.ndim
        if sc.size > 1:
            shape[axis] = sc.size
        want = np.clip(np.round(w / sc.reshape(shape)) + zp.reshape(shape), -128, 127)
        assert np.array_equal(numpy_helper.to_array(u).astype(np.float32), want), f"{n}: not quantized with its stored scale"
    for nd in b.graph.node:  # every Q/DQ of a float16 tensor takes a float16 scale
        if nd.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert tb[nd.input[1]].data_type == ta[nd.input[1]].data_type
    ya, yb = run_ort(ort_out, x), run_ort(ours, x)
    ys = [numpy_helper.to_array(t) for k, t in tb.items() if k in ("y_scale",)]
    step = float(ys[0]) if ys else float(np.abs(ya).max()) / 127
    diff = float(np.abs(ya - yb).max()) / step
    assert diff <= 3, f"outputs differ by {diff} output steps"
    MEASURED.append((name, worst, diff))
    return a, b


def cases():
    for build in (conv_relu_conv, conv_flatten_gemm, matmul, add_two, float_input_cast, conv_hardswish_conv):
        for pc in (True, False):
            for act in ("Int8", "UInt8"):
                name = f"{build.__name__} {'per_channel' if pc else 'per_tensor'} {act}"
                same_as_ort(name, build, pc, act)
    # ORT's layout options on a float16 model (float weights with float16 Q/DQ pairs, dedicated pairs, com.microsoft
    # Q/DQ).
    layout = {"AddQDQPairToWeight": True, "DedicatedQDQPair": True, "UseQDQContribOps": True}
    for build in (conv_relu_conv, add_two):
        same_as_ort(f"{build.__name__} with {', '.join(layout)}", build, True, "Int8", layout)
    for name, ulps, d in MEASURED:
        print(f"  {name}: scales within {ulps:.0f} float16 ulp(s), outputs within {d:.2f} output steps of ORT's")


def float_input_types():
    """The float32 input stays float32 (the Cast is not quantized), the tensors after the Cast get float16 scales."""
    _, b = same_as_ort("float_input_cast (types)", float_input_cast)
    t = {i.name: i.data_type for i in b.graph.initializer}
    assert "input_scale" not in t and t["x16_scale"] == F16 and t["W_scale"] == F16, t
    assert t["B_quantized_scale"] == F16 and t["W_quantized"] == TensorProto.INT8 and t["B_quantized"] == TensorProto.INT32


# ---- a float16 digits MobileNet: inspection and full_auto ----
def to_float16(src, dst):
    m = onnx.load(src)
    g = m.graph
    for i, t in enumerate(list(g.initializer)):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = F16
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = F16
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, dst)
    return dst


def digits16(d):
    path = to_float16(os.path.join(TESTDATA, "digits_mobilenet.onnx"), os.path.join(d, "digits16.onnx"))
    x = np.load(os.path.join(TESTDATA, "digits_test.npz"))["x"][:8]
    s32 = ort.InferenceSession(os.path.join(TESTDATA, "digits_mobilenet.onnx"), providers=["CPUExecutionProvider"])
    s16 = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    a = s32.run(None, {s32.get_inputs()[0].name: x})[0]
    b = s16.run(None, {s16.get_inputs()[0].name: x.astype(np.float16)})[0]
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max(), "the float16 conversion changed the model"
    return path


def snr_db(x, xh):
    x = np.asarray(x, np.float64).ravel()
    d = x - np.asarray(xh, np.float64).ravel()
    return 20.0 * math.log10(math.sqrt(float(x @ x)) / max(math.sqrt(float(d @ d)), np.finfo(np.float64).eps))


def inspection():
    d = tmpdir()
    path = digits16(d)
    out = os.path.join(d, "out")
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out, f"model.model_path={path}",
            "quantization.operating_mode=inspection", "--threads", "2"])
    rep = json.load(open(os.path.join(out, "inspection.json")))
    qpath = os.path.join(out, "quantized_models", "digits16_quant_qdq_pc.onnx")
    q = onnx.load(qpath)
    onnx.checker.check_model(q, full_check=True)
    qi = {t.name: t for t in q.graph.initializer}
    f = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    weights = [t for t in rep["tensors"] if t["kind"] == "weight"]
    assert weights, rep["tensors"][:3]
    for t in weights:
        name = t["name"]
        assert qi[name + "_scale"].data_type == F16, name
        w = f[name].astype(np.float64)
        qv = numpy_helper.to_array(qi[name + "_quantized"]).astype(np.float64)
        sc = numpy_helper.to_array(qi[name + "_scale"]).astype(np.float64)
        zp = numpy_helper.to_array(qi[name + "_zero_point"]).astype(np.float64)
        shape = [1] * w.ndim
        if sc.size > 1:
            axis = next(a.i for n in q.graph.node if n.input and n.input[0] == name + "_quantized"
                        for a in n.attribute if a.name == "axis")
            shape[axis] = sc.size
        xh = (qv - zp.reshape(shape)) * sc.reshape(shape)
        assert abs(snr_db(w, xh) - t["snr_db"]) < 0.01, (name, snr_db(w, xh), t["snr_db"])
    acts = [t for t in rep["tensors"] if t["kind"] == "activation"]
    # Local SNR above 300 dB: a tensor sharing its input's parameters (Flatten) is on the grid already: exact.
    bad = [(t["name"], t["snr_xmodel_db"], t["snr_local_db"]) for t in acts
           if not (10 < t["snr_xmodel_db"] < 80 and (10 < t["snr_local_db"] < 80 or t["snr_local_db"] > 300))]
    assert acts and not bad, bad
    print(f"  {len(weights)} weights (e.g. {weights[0]['name']}: {weights[0]['snr_db']:.2f} dB), {len(acts)} "
          f"activations ({min(t['snr_xmodel_db'] for t in acts):.1f} to {max(t['snr_xmodel_db'] for t in acts):.1f} dB)")


def full_auto():
    d = tmpdir()
    path = digits16(d)
    out = os.path.join(d, "out")
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out, f"model.model_path={path}",
            "--threads", "2"])
    rep = json.load(open(os.path.join(out, "full_auto.json")))
    t = np.load(os.path.join(TESTDATA, "digits_test.npz"))

    def top1(p):
        s = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
        o = s.run(None, {s.get_inputs()[0].name: t["x"].astype(np.float16)})[0]
        return 100.0 * float(np.mean(o.reshape(len(o), -1).argmax(1) == t["y"]))

    assert rep["scores"]["float"] > 80, rep["scores"]
    ref = top1(rep["int8_model"])
    assert abs(ref - rep["scores"]["int8"]) <= 0.3, (ref, rep["scores"]["int8"])
    written = [a for a in rep["attempts"] if a["file"]]
    for a in written:
        m = onnx.load(a["file"])
        onnx.checker.check_model(m, full_check=True)
        assert all(i.data_type == F16 for i in m.graph.initializer if i.name.endswith("_scale")), a["file"]
        assert abs(top1(a["file"]) - a["score"]) <= 0.3, (a["file"], a["score"])
    print(f"  float {rep['scores']['float']:.2f}, 8-bit {rep['scores']['int8']:.2f} (ORT {ref:.2f}), "
          f"{len(written)} attempts written, answer {rep['answer']}")


def refusals():
    d = tmpdir()
    m, _ = conv_relu_conv()
    path = os.path.join(d, "m.onnx")
    onnx.save(m, path)
    np.savez(os.path.join(d, "c.npz"), input=rnd(1, (4, 3, 8, 8), 1.0, np.float32))
    base = ["--config", "examples/digits/user_config.yaml", "--output-dir", os.path.join(d, "o"),
            f"model.model_path={path}", f"dataset.quantization_path={os.path.join(d, 'c.npz')}",
            "quantization.operating_mode=default", "preprocessing.color_mode=rgb"]
    for key in ("SmoothQuant=True", "CrossLayerEqualization=True", "BiasCorrection=True", "WeightQuantizer=gptq"):
        p = run_oq(base + ["quantization.onnx_extra_options." + key], check=False)
        k = key.split("=")[0]
        assert p.returncode == 2 and f"quantization.onnx_extra_options.{k}: not supported for float16 models" in p.stderr, \
            (key, p.returncode, p.stderr[-800:])
    m.opset_import[0].version = 17  # float16 Q/DQ scales need opset 19
    onnx.save(m, path)
    p = run_oq(base + ["quantization.target_opset=17"], check=False)
    assert p.returncode == 2 and "quantization.target_opset" in p.stderr and "19" in p.stderr, p.stderr[-800:]


def run_command():
    """`onnxquant run` on a float16 model: float16 outputs, equal to ORT's within float16 rounding of float32
    compute."""
    d = tmpdir()
    m, shape = conv_flatten_gemm()
    path = os.path.join(d, "m.onnx")
    onnx.save(m, path)
    x = rnd(3, shape, 1.0)
    np.save(os.path.join(d, "x.npy"), x)
    run_oq(["run", path, "--input", os.path.join(d, "x.npy"), "--output-dir", os.path.join(d, "o")])
    y = np.load(os.path.join(d, "o", "y.npy"))
    assert y.dtype == np.float16, y.dtype
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.allclose(y.astype(np.float32), want.astype(np.float32), rtol=4e-3, atol=4e-3), (y, want)


if __name__ == "__main__":
    r = Runner()
    r.run("float16 graphs vs ORT quantize_static (per channel / per tensor, Int8 / UInt8)", cases)
    r.run("float32 input cast to float16: scale types", float_input_types)
    r.run("run: float16 model", run_command)
    r.run("refusals: weight-rewriting options, opset below 19", refusals)
    r.run("inspection on a float16 digits MobileNet", inspection)
    r.run("full_auto on a float16 digits MobileNet", full_auto)
    r.finish()
