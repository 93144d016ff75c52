"""Default mode vs ONNX Runtime's quantize_static (QDQ) on small graphs that exercise ORT's per-op rules beyond the
CNN testdata models (tests/python/test_quant_parity.py): a bias shared by two Convs (ORT copies it as `<bias>0`),
Gather on a float constant table (the table is quantized and the output shares its parameters), Pad's constant
value (every float input of a Pad is quantized), LSTM/GRU/RNN between a MatMul and a Gemm (left float with their
weights, as ORT does; named in op_types_to_quantize, every input of theirs gets Q/DQ as in ORT). Both tools get the
model after ORT's quant_pre_process, the same .npz and settings; the written models must have the same op
histogram, the same Q/DQ wiring and tensor names, and equal scales and zero points (1e-6 relative). GridSample,
RoiAlign and NonMaxSuppression (no ORT quantizer: they stay float between quantized producers and consumers) are
checked the same way, and the written models must compute in onnxruntime what ORT's own quantized models compute.

Per-channel biases that do not have one entry per weight scale (a grouped ConvTranspose, a Gemm bias [1, N]) make
ORT 1.32's quantize_static raise; there the written model must run in onnxruntime, with bias scales equal to
input scale x weight scale laid along the bias (hand computation) and outputs close to the float model's.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, default_mode_config, run_oq, tmpdir  # noqa: E402

N = 20


class DictReader(CalibrationDataReader):
    def __init__(self, x):
        self.x, self.i, self.stop = x, 0, len(x)

    def __len__(self):  # CalibStridedMinMax needs the count and set_range
        return len(self.x)

    def set_range(self, start_index, end_index):
        self.i, self.stop = start_index, end_index

    def get_next(self):
        if self.i >= min(self.stop, len(self.x)):
            return None
        self.i += 1
        return {"input": self.x[self.i - 1:self.i]}


def init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def model(nodes, inits, in_shape, out_shape, in_type=TensorProto.FLOAT, opset=13, out_type=TensorProto.FLOAT):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", in_type, in_shape)],
                          [helper.make_tensor_value_info("y", out_type, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def conv(x, y, w, b, name):
    return helper.make_node("Conv", [x, w, b], [y], name=name, pads=[1, 1, 1, 1])


def rnd(seed, shape, s=0.3):
    return (np.random.default_rng(seed).standard_normal(shape) * s).astype(np.float32)


def quantize_both(m, x, per_channel=True, ort_must_work=True, extra=None, method="MinMax", act="Int8",
                  nodes_to_exclude=None, op_types=None, opset=13, oq_extra=None, pre_process=True):
    """`extra`: extra_options for both tools; `oq_extra` replaces keys of it in onnxquant's YAML only (where ORT
    needs Python objects, e.g. numpy values, and the YAML their text). `pre_process` False: both tools get the raw
    model (for models quant_pre_process cannot take)."""
    extra = dict(extra or {})
    work = tmpdir()
    raw, pre = os.path.join(work, "float.onnx"), os.path.join(work, "pre.onnx")
    onnx.save(m, raw)
    if pre_process:
        quant_pre_process(raw, pre)
    else:
        onnx.save(m, pre)
    np.savez(os.path.join(work, "calib.npz"), input=x)
    ort_out = os.path.join(work, "ort.onnx")
    try:
        quantize_static(pre, ort_out, DictReader(x), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        weight_type=QuantType.QInt8, activation_type=getattr(QuantType, "Q" + act),
                        calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=nodes_to_exclude,
                        op_types_to_quantize=op_types,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, **extra})
    except Exception:  # noqa: BLE001 - ORT 1.32 raises on some per-channel biases (see the module docstring)
        if ort_must_work:
            raise
        ort_out = None
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(pre, os.path.join(work, "calib.npz"), per_channel, opset, act, method,
                                    {"nodes_to_exclude": nodes_to_exclude, "op_types_to_quantize": op_types},
                                    {**extra, **(oq_extra or {})}))
    run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq"), "--threads", "1"])
    ours = os.path.join(work, "oq", "quantized_models", "pre_quant_qdq_" + ("pc" if per_channel else "pt") + ".onnx")
    onnx.checker.check_model(onnx.load(ours), full_check=True)
    return ort_out, ours, pre


def wiring(m):
    """Every node as (op, inputs, outputs), keyed by its outputs (node names may differ)."""
    return {tuple(n.output): (n.op_type, tuple(n.input)) for n in m.graph.node}


def same_as_ort(m, x, per_channel=True, extra=None, method="MinMax", act="Int8", op_types=None, opset=13):
    ort_out, ours, _ = quantize_both(m, x, per_channel, extra=extra, method=method, act=act, op_types=op_types,
                                     opset=opset)
    return compare_with_ort(ort_out, ours)


def own_range_outputs(m):
    """Graph outputs that are also the only input of a Relu / Clip: ORT gives them the activation's range (their
    negative values are lost), onnxquant their own (deliberate, docs/conformance.md)."""
    readers = {}
    for n in m.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n.op_type)
    return {o.name for o in m.graph.output if readers.get(o.name) in (["Relu"], ["Clip"])}


def compare_with_ort(ort_out, ours):
    a, b = onnx.load(ort_out), onnx.load(ours)
    own = {f"{o}_{s}" for o in own_range_outputs(b) for s in ("scale", "zero_point")}
    wa, wb = wiring(a), wiring(b)
    assert wa == wb, ("graphs differ:\n ORT only " + str(sorted(set(wa.items()) - set(wb.items())))
                      + "\n ours only " + str(sorted(set(wb.items()) - set(wa.items()))))
    ia = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
    ib = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
    assert set(ia) == set(ib), f"initializers: ORT only {set(ia) - set(ib)}, ours only {set(ib) - set(ia)}"
    for n, v in ia.items():
        if n in own:
            continue
        if n.endswith("_scale") or n.endswith("_zero_point"):
            assert np.allclose(v.astype(np.float64), ib[n].astype(np.float64), rtol=1e-6, atol=0), \
                f"{n}: ORT {v.ravel()[:4]} vs ours {ib[n].ravel()[:4]}"
        elif n.endswith("_quantized"):
            assert np.abs(v.astype(np.int64) - ib[n].astype(np.int64)).max() <= 1, f"{n}: quantized values differ"
    return a, b


def img(seed):
    return np.random.default_rng(seed).standard_normal((N, 3, 8, 8)).astype(np.float32)


def shared_bias():
    # One bias for two Convs (different weights): ORT gives the second its own copy `b0` with its own scale.
    m = model([conv("input", "c1", "W1", "b", "conv1"), helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
               conv("r1", "y", "W2", "b", "conv2")],
              [init("W1", rnd(1, (4, 3, 3, 3))), init("W2", rnd(2, (4, 4, 3, 3))), init("b", rnd(3, (4,), 0.1))],
              [1, 3, 8, 8], [1, 4, 8, 8])
    for pc in (True, False):
        _, b = same_as_ort(m, img(0), pc)
        names = {n.input[0] for n in b.graph.node if n.op_type == "DequantizeLinear"}
        assert {"b_quantized", "b0_quantized"} <= names, names
    # A tensor of the model already named `b0` (ORT looks at initializer names only and would reuse it): the copy
    # takes the next free name.
    m = model([conv("input", "b0", "W1", "b", "conv1"), helper.make_node("Relu", ["b0"], ["r1"], name="relu"),
               conv("r1", "y", "W2", "b", "conv2")],
              [init("W1", rnd(1, (4, 3, 3, 3))), init("W2", rnd(2, (4, 4, 3, 3))), init("b", rnd(3, (4,), 0.1))],
              [1, 3, 8, 8], [1, 4, 8, 8])
    _, ours, pre = quantize_both(m, img(0))
    q = onnx.load(ours)
    assert any(n.op_type == "DequantizeLinear" and n.input[0] == "b1_quantized" for n in q.graph.node)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    got = ort.InferenceSession(ours, so, providers=["CPUExecutionProvider"]).run(None, {"input": img(0)[:1]})[0]
    ref = ort.InferenceSession(pre, so, providers=["CPUExecutionProvider"]).run(None, {"input": img(0)[:1]})[0]
    assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max()


def node_named_like_a_scale():
    # Node names and tensor names are separate namespaces: nodes called `c1_scale` / `c1_zero_point` leave the
    # tensor c1's scale and zero point the names ORT gives them (not `c1_scale_1`).
    m = model([conv("input", "c1", "W1", "b1", "c1_scale"), helper.make_node("Sigmoid", ["c1"], ["m"], name="c1_zero_point"),
               helper.make_node("Sigmoid", ["m"], ["y"], name="m_scale")],
              [init("W1", rnd(8, (4, 3, 3, 3))), init("b1", rnd(9, (4,), 0.1))],
              [1, 3, 8, 8], [1, 4, 8, 8])
    a, b = same_as_ort(m, img(2), True)
    assert {"c1_scale", "c1_zero_point", "m_scale"} <= {t.name for t in b.graph.initializer}


def one_channel_bias():
    # Per-channel weights of a one-output-channel Conv: ORT writes the bias DequantizeLinear as per tensor (scale
    # [1], scalar zero point, no axis), since its bias scale has one value.
    m = model([conv("input", "c1", "W1", "b", "conv1"), helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
               conv("r1", "y", "W2", "b2", "conv2")],
              [init("W1", rnd(4, (1, 3, 3, 3))), init("b", rnd(5, (1,), 0.1)), init("W2", rnd(6, (4, 1, 3, 3))),
               init("b2", rnd(7, (4,), 0.1))], [1, 3, 8, 8], [1, 4, 8, 8])
    a, b = same_as_ort(m, img(1), True)

    def layout(q, bias):
        dims = {t.name: list(t.dims) for t in q.graph.initializer}
        dq = [n for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == bias + "_quantized"][0]
        return dims[dq.input[1]], dims[dq.input[2]], {x.name: x.i for x in dq.attribute}
    for bias in ("b", "b2"):
        assert layout(a, bias) == layout(b, bias), f"{bias}: ORT {layout(a, bias)} vs ours {layout(b, bias)}"
    assert layout(b, "b") == ([1], [], {}) and layout(b, "b2") == ([4], [4], {"axis": 0})


def gather_constant_table():
    # Embedding lookup: the float table is quantized (activation type, per tensor) and the Gather output shares
    # its scale; a Transpose after it is then quantized too.
    ids = np.random.default_rng(4).integers(0, 20, (N, 5)).astype(np.int64)
    m = model([helper.make_node("Gather", ["emb", "input"], ["e"], name="gather"),
               helper.make_node("MatMul", ["e", "Wq"], ["y"], name="mm")],
              [init("emb", rnd(5, (20, 16), 1.0)), init("Wq", rnd(6, (16, 16)))], [1, 5], [1, 5, 16],
              TensorProto.INT64)
    _, b = same_as_ort(m, ids)
    q = {n.input[0]: n.input[1] for n in b.graph.node if n.op_type == "QuantizeLinear"}
    assert q["e"] == "emb_scale", q
    m = model([conv("input", "c0", "W0", "b0", "conv0"),
               helper.make_node("ArgMax", ["c0"], ["am"], name="argmax", axis=1, keepdims=0),
               helper.make_node("Gather", ["tbl", "am"], ["g"], name="gather"),
               helper.make_node("Transpose", ["g"], ["y"], name="tr", perm=[0, 3, 1, 2])],
              [init("W0", rnd(7, (4, 3, 3, 3))), init("b0", rnd(8, (4,), 0.1)), init("tbl", rnd(9, (4, 5), 1.0))],
              [1, 3, 8, 8], [1, 5, 8, 8])
    same_as_ort(m, img(1))


def pad_value():
    # Pad's constant value is quantized like any float input: a constant (DQ of `cv_quantized`) or computed
    # (Q/DQ pair on the ReduceMin output).
    base = [init("W0", rnd(10, (4, 3, 3, 3))), init("b0", rnd(11, (4,), 0.1)), init("W1", rnd(12, (4, 4, 3, 3))),
            init("b1", rnd(13, (4,), 0.1)), init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))]
    m = model([conv("input", "c0", "W0", "b0", "conv0"),
               helper.make_node("Pad", ["c0", "pads", "cv"], ["p"], name="pad", mode="constant"),
               conv("p", "y", "W1", "b1", "conv1")], base + [init("cv", np.array(0.5, np.float32))],
              [1, 3, 8, 8], [1, 4, 10, 10])
    _, b = same_as_ort(m, img(2))
    assert any(n.op_type == "DequantizeLinear" and n.input[0] == "cv_quantized" for n in b.graph.node)
    m = model([conv("input", "c0", "W0", "b0", "conv0"),
               helper.make_node("ReduceMin", ["c0"], ["mn"], name="rmin", keepdims=0),
               helper.make_node("Pad", ["c0", "pads", "mn"], ["p"], name="pad", mode="constant"),
               conv("p", "y", "W1", "b1", "conv1")], base, [1, 3, 8, 8], [1, 4, 10, 10])
    same_as_ort(m, img(3))


def per_channel_bias_layout():
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

    def check(m, x, bias, weight, act):
        _, ours, pre = quantize_both(m, x, ort_must_work=False)
        b = onnx.load(ours)
        ib = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
        dq = next(n for n in b.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == bias + "_quantized")
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        bshape = ib[bias + "_quantized"].shape
        assert axis == len(bshape) - 1, (axis, bshape)
        ws = ib[weight + "_scale"].astype(np.float32)
        want = (ib[act + "_scale"].astype(np.float32) * np.resize(ws, bshape[-1])).astype(np.float32)
        assert np.allclose(ib[bias + "_quantized_scale"], want, rtol=1e-6, atol=0), (ib[bias + "_quantized_scale"], want)
        got = ort.InferenceSession(ours, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
        ref = ort.InferenceSession(pre, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
        assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max(), np.abs(got - ref).max()

    # ConvTranspose, group 2: weight [4, 3, 2, 2] has 3 per-channel scales (axis 1), the bias 6 output channels.
    m = model([helper.make_node("ConvTranspose", ["input", "Wt", "Bt"], ["y"], name="convT", strides=[2, 2],
                                kernel_shape=[2, 2], group=2)],
              [init("Wt", rnd(14, (4, 3, 2, 2))), init("Bt", rnd(15, (6,), 0.1))], [1, 4, 8, 8], [1, 6, 16, 16])
    check(m, np.random.default_rng(5).standard_normal((N, 4, 8, 8)).astype(np.float32), "Bt", "Wt", "input")
    # Depthwise ConvTranspose (group 4, weight [4, 1, 2, 2]): one weight channel on axis 1, so ORT's bias scale is
    # [1] (input scale x that weight scale), written per tensor: the same model as ORT's.
    m = model([helper.make_node("ConvTranspose", ["input", "Wd", "Bd"], ["y"], name="convT", strides=[2, 2],
                                kernel_shape=[2, 2], group=4)],
              [init("Wd", rnd(19, (4, 1, 2, 2))), init("Bd", rnd(20, (4,), 0.1))], [1, 4, 8, 8], [1, 4, 16, 16])
    a, b = same_as_ort(m, np.random.default_rng(8).standard_normal((N, 4, 8, 8)).astype(np.float32), True)
    dq = next(n for n in b.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "Bd_quantized")
    ib = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
    assert ib["Bd_quantized_scale"].shape == (1,) and ib["Bd_quantized_zero_point"].shape == () and not dq.attribute
    # A Gemm bias broadcast from one value cannot carry per-channel scales: it stays float, and the Gemm keeps
    # its beta (the annotator takes beta out to fold it into a quantized bias's scale).
    m = model([helper.make_node("Gemm", ["input", "W", "C"], ["y"], name="gemm", transB=1, beta=0.25)],
              [init("W", rnd(18, (10, 16))), init("C", np.array([3.0], np.float32))], [1, 16], [1, 10])
    x = np.random.default_rng(7).standard_normal((N, 16)).astype(np.float32)
    _, ours, pre = quantize_both(m, x, ort_must_work=False)
    g = next(n for n in onnx.load(ours).graph.node if n.op_type == "Gemm")
    assert any(a.name == "beta" and abs(a.f - 0.25) < 1e-7 for a in g.attribute), g
    got = ort.InferenceSession(ours, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
    ref = ort.InferenceSession(pre, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
    assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max(), (got, ref)
    # Gemm with a bias of shape [1, N]: the scales lie along axis 1.
    m = model([helper.make_node("Gemm", ["input", "W", "B"], ["y"], name="gemm", transB=1)],
              [init("W", rnd(16, (10, 16))), init("B", rnd(17, (1, 10), 0.1))], [1, 16], [1, 10])
    check(m, np.random.default_rng(6).standard_normal((N, 16)).astype(np.float32), "B", "W", "input")


def qdq_counts(m):
    """{op_type: (inputs fed by a DequantizeLinear, outputs read by a QuantizeLinear)} of the non-Q/DQ nodes."""
    dq_out = {o for n in m.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    q_in = {n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear"}
    r = {}
    for n in m.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            a, b = r.get(n.op_type, (0, 0))
            r[n.op_type] = (a + sum(i in dq_out for i in n.input), b + sum(o in q_in for o in n.output))
    return r


def detection_ops():
    # GridSample, NonMaxSuppression and RoiAlign are in none of ORT's registries: quantize_static leaves them
    # float. Their float inputs are the DequantizeLinear outputs of whatever quantized op produced them (a Conv,
    # a Transpose / Reshape sharing the Conv's parameters, a Sigmoid), the grid / rois / thresholds stay float
    # when their producer is not quantized, and an output gets a Q/DQ pair only when a quantized consumer (the
    # next Conv) asks for one. The written model must be ORT's (wiring, scales) and run in onnxruntime.
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

    def run(m, x):
        path = m if isinstance(m, str) else m.SerializeToString()
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]

    def case(m, x, opset, want_counts):
        ort_out, ours, pre = quantize_both(m, x, opset=opset)
        a, b = compare_with_ort(ort_out, ours)
        assert qdq_counts(a) == qdq_counts(b)
        for op, want in want_counts.items():
            assert qdq_counts(b)[op] == want, (op, qdq_counts(b)[op], want)
        # Ours runs in onnxruntime and computes what ORT's own quantized model computes.
        got, want, ref = run(ours, x[:1]), run(ort_out, x[:1]), run(pre, x[:1])
        assert got.shape == want.shape and got.dtype == want.dtype == ref.dtype, (got.shape, want.shape)
        if got.dtype == np.int64:
            assert np.array_equal(got, want), (got, want)
        else:
            assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max(), np.abs(got - want).max()
        return got, ref

    w = [init("W1", rnd(30, (4, 3, 3, 3))), init("b1", rnd(31, (4,), 0.1)), init("W2", rnd(32, (4, 4, 3, 3))),
         init("b2", rnd(33, (4,), 0.1))]
    # Conv -> GridSample -> Conv, the grid computed by Conv -> Transpose -> Tanh (Tanh is not quantized).
    m = model([conv("input", "c1", "W1", "b1", "conv1"), conv("input", "c3", "W3", "b3", "conv3"),
               helper.make_node("Transpose", ["c3"], ["t3"], name="tr", perm=[0, 2, 3, 1]),
               helper.make_node("Tanh", ["t3"], ["grid"], name="tanh"),
               helper.make_node("GridSample", ["c1", "grid"], ["g"], name="gs", mode="bilinear"),
               conv("g", "y", "W2", "b2", "conv2")],
              w + [init("W3", rnd(34, (2, 3, 3, 3))), init("b3", rnd(35, (2,), 0.1))], [1, 3, 8, 8], [1, 4, 8, 8],
              opset=16)
    case(m, img(10), 16, {"GridSample": (1, 1), "Tanh": (1, 0)})
    # Conv -> RoiAlign (constant rois) -> Conv.
    m = model([conv("input", "c1", "W1", "b1", "conv1"),
               helper.make_node("RoiAlign", ["c1", "rois", "bi"], ["ra"], name="roi", output_height=3, output_width=3,
                                sampling_ratio=2),
               conv("ra", "y", "W2", "b2", "conv2")],
              w + [init("rois", np.array([[0, 0, 4, 4], [2, 1, 7, 6], [1, 3, 5, 7.5]], np.float32)),
                   init("bi", np.zeros(3, np.int64))], [1, 3, 8, 8], [3, 4, 3, 3], opset=16)
    got, ref = case(m, img(11), 16, {"RoiAlign": (1, 1)})
    assert np.abs(got - ref).max() <= 0.1 * np.abs(ref).max(), np.abs(got - ref).max()
    # boxes = Conv -> Reshape -> Transpose, scores = Conv -> Reshape -> Sigmoid, then NonMaxSuppression (int64
    # output, constant thresholds).
    m = model([conv("input", "cb", "Wb", "bb", "convb"), helper.make_node("Reshape", ["cb", "s4"], ["rb"], name="rsb"),
               helper.make_node("Transpose", ["rb"], ["boxes"], name="trb", perm=[0, 2, 1]),
               conv("input", "cs", "Ws", "bs", "convs"), helper.make_node("Reshape", ["cs", "s2"], ["rs"], name="rss"),
               helper.make_node("Sigmoid", ["rs"], ["scores"], name="sig"),
               helper.make_node("NonMaxSuppression", ["boxes", "scores", "mx", "iou", "sth"], ["y"], name="nms")],
              [init("Wb", rnd(36, (4, 3, 3, 3), 1.0)), init("bb", rnd(37, (4,), 0.1)), init("Ws", rnd(38, (2, 3, 3, 3))),
               init("bs", rnd(39, (2,), 0.1)), init("s4", np.array([1, 4, 64], np.int64)),
               init("s2", np.array([1, 2, 64], np.int64)), init("mx", np.array([5], np.int64)),
               init("iou", np.array([0.5], np.float32)), init("sth", np.array([0.3], np.float32))],
              [1, 3, 8, 8], [None, 3], opset=13, out_type=TensorProto.INT64)
    got, _ = case(m, img(12), 13, {"NonMaxSuppression": (2, 0), "Sigmoid": (1, 1), "Transpose": (1, 1)})
    assert got.shape[1] == 3 and len(got) > 0, got


def conv_relu_conv():
    return model([conv("input", "c1", "W1", "b1", "conv1"), helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
                  conv("r1", "c2", "W2", "b2", "conv2"),
                  helper.make_node("Clip", ["c2", "lo", "hi"], ["y"], name="clip")],
                 [init("W1", rnd(20, (4, 3, 3, 3))), init("W2", rnd(21, (4, 4, 3, 3))), init("b1", rnd(22, (4,), 0.1)),
                  init("b2", rnd(23, (4,), 0.1)), init("lo", np.array(0.0, np.float32)),
                  init("hi", np.array(6.0, np.float32))], [1, 3, 8, 8], [1, 4, 8, 8])


def ort_options():
    # ONNX Runtime's extra_options that onnxquant implements, each against quantize_static with the same value.
    same_as_ort(conv_relu_conv(), img(4), extra={"QDQKeepRemovableActivations": True})
    same_as_ort(conv_relu_conv(), img(4), extra={"OpTypesToExcludeOutputQuantization": ["Conv"]})
    _, b = same_as_ort(conv_relu_conv(), img(4), extra={"OpTypesToExcludeOutputQuantization": ["Relu", "Clip"]})
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == "y" for n in b.graph.node)
    # Direct ops after an op that is not quantized (Sqrt): quantized only with ForceQuantizeNoInputCheck.
    m = model([helper.make_node("Abs", ["input"], ["a"], name="abs"), helper.make_node("Sqrt", ["a"], ["s"], name="sqrt"),
               helper.make_node("MaxPool", ["s"], ["p"], name="pool", kernel_shape=[2, 2]),
               helper.make_node("Transpose", ["p"], ["y"], name="tr", perm=[0, 1, 3, 2])], [], [1, 3, 8, 8], [1, 3, 7, 7])
    _, plain = same_as_ort(m, img(5))
    _, forced = same_as_ort(m, img(5), extra={"ForceQuantizeNoInputCheck": True})
    assert sum(n.op_type == "QuantizeLinear" for n in forced.graph.node) > sum(
        n.op_type == "QuantizeLinear" for n in plain.graph.node)
    # A bias too large for input scale x weight scale: ORT enlarges the weight scale unless told not to.
    m = model([conv("input", "y", "W", "B", "conv")], [init("W", rnd(24, (4, 3, 3, 3), 1e-4)),
                                                     init("B", np.array([3e4, -2e4, 1e3, 5.0], np.float32))],
              [1, 3, 8, 8], [1, 4, 8, 8])
    x = img(6) * 1e-3
    _, adj = same_as_ort(m, x)
    _, kept = same_as_ort(m, x, extra={"QDQDisableWeightAdjustForInt32Bias": True})
    sa = numpy_helper.to_array(next(t for t in adj.graph.initializer if t.name == "W_scale"))
    sk = numpy_helper.to_array(next(t for t in kept.graph.initializer if t.name == "W_scale"))
    assert (sa > sk).any(), (sa, sk)  # the adjustment happened by default and not with the option
    # Calibration options.
    same_as_ort(conv_relu_conv(), img(7), extra={"CalibTensorRangeSymmetric": True})
    # The moving average's constant: two samples, one collect_data() call each, so r = s1 + c (s2 - s1); onnxquant
    # reads the samples in its seeded order, which must be one of the two orders ORT can be fed.
    x2 = img(9)[:2]
    extra = {"CalibMovingAverage": True, "CalibMovingAverageConstant": 0.3, "CalibStridedMinMax": 1}
    _, ours, pre = quantize_both(conv_relu_conv(), x2, extra=extra)

    def scales(path):
        mm = onnx.load(path)
        c = {t.name: numpy_helper.to_array(t) for t in mm.graph.initializer}
        return {n.input[0]: float(c[n.input[1]]) for n in mm.graph.node if n.op_type == "QuantizeLinear"}

    def ort(order, constant):
        out = os.path.join(tmpdir(), "ort.onnx")
        quantize_static(pre, out, DictReader(x2[list(order)]), quant_format=QuantFormat.QDQ, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, **extra,
                                       "CalibMovingAverageConstant": constant})
        return scales(out)

    def same(a, b):
        return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-6 * abs(b[k]) for k in a)
    got = scales(ours)
    assert same(got, ort((0, 1), 0.3)) or same(got, ort((1, 0), 0.3)), got
    assert not same(ort((0, 1), 0.3), ort((0, 1), 0.01)) and not same(ort((1, 0), 0.3), ort((1, 0), 0.01))
    # No effect in QDQ format (ORT reads MatMulConstBOnly in its QOperator path only), nor on a model without
    # subgraphs (EnableSubgraph).
    same_as_ort(conv_relu_conv(), img(7), extra={"MatMulConstBOnly": True})
    same_as_ort(conv_relu_conv(), img(7), extra={"EnableSubgraph": True})
    # No effect here (statistics are streamed); ORT 1.32 drops the outputs it clears every N samples, so its
    # ranges come from the last partial group (or it fails with "No data is collected" when N divides the count).
    _, a, _ = quantize_both(conv_relu_conv(), img(7))
    _, b, _ = quantize_both(conv_relu_conv(), img(7), ort_must_work=False, extra={"CalibMaxIntermediateOutputs": 5})
    assert open(a, "rb").read() == open(b, "rb").read()


def activation_restricted_asymmetric():
    # UInt8 activations: zero points snapped to 0 (ranges with rmin = 0, e.g. after Relu) or 128, scales widened to
    # cover both ends; MinimumRealRange still floors the scale; Int8 activations are left alone (as ORT's).
    def act_zps(q):
        c = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
        return {int(c[n.input[2]]) for n in q.graph.node if n.op_type == "QuantizeLinear"}
    _, plain = same_as_ort(conv_relu_conv(), img(4), act="UInt8")
    _, snapped = same_as_ort(conv_relu_conv(), img(4), act="UInt8", extra={"ActivationRestrictedAsymmetric": True})
    assert act_zps(snapped) == {0, 128}, act_zps(snapped)
    assert act_zps(plain) != act_zps(snapped), act_zps(plain)
    _, floored = same_as_ort(conv_relu_conv(), img(4), act="UInt8",
                             extra={"ActivationRestrictedAsymmetric": True, "MinimumRealRange": 60.0})
    c = {t.name: numpy_helper.to_array(t) for t in floored.graph.initializer}
    assert all(float(c[n.input[1]]) >= np.float32(60.0 / 255) for n in floored.graph.node if n.op_type == "QuantizeLinear")
    _, int8 = same_as_ort(conv_relu_conv(), img(4), extra={"ActivationRestrictedAsymmetric": True})
    _, int8_plain = same_as_ort(conv_relu_conv(), img(4))
    assert act_zps(int8) == act_zps(int8_plain) and 0 not in act_zps(int8), act_zps(int8)


def per_channel_axis_option():
    # QDQOpTypePerChannelSupportToAxis: MatMul's constant and the normalization scale take the axis given for their op
    # type (here one that differs from the default: MatMul 0 instead of 1; a 1-D InstanceNormalization scale is per
    # channel only with axis 0, per tensor by default); Conv keeps its axis whatever is given for it, as in ORT.
    m = model([helper.make_node("MatMul", ["input", "W"], ["mm"], name="mm"),
               helper.make_node("InstanceNormalization", ["mm", "s", "b"], ["n"], name="inorm"),
               helper.make_node("Reshape", ["n", "shape"], ["r"], name="reshape"),
               conv("r", "y", "Wc", "bc", "conv")],
              [init("W", rnd(30, (8, 6))), init("s", rnd(31, (4,)) + 1), init("b", rnd(32, (4,), 0.1)),
               init("shape", np.array([1, 4, 2, 3], np.int64)), init("Wc", rnd(33, (5, 4, 3, 3))),
               init("bc", rnd(34, (5,), 0.1))], [1, 4, 8], [1, 5, 2, 3])
    x = np.random.default_rng(35).standard_normal((N, 4, 8)).astype(np.float32)

    def axes(q):
        return {n.input[0]: next((a.i for a in n.attribute if a.name == "axis"), None)
                for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0].endswith("_quantized")}
    _, plain = same_as_ort(m, x)
    extra = {"QDQOpTypePerChannelSupportToAxis": {"MatMul": 0, "InstanceNormalization": 0, "Conv": 1}}
    _, given = same_as_ort(m, x, extra=extra)
    assert axes(plain)["W_quantized"] == 1 and axes(given)["W_quantized"] == 0, (axes(plain), axes(given))
    assert axes(plain)["s_quantized"] is None and axes(given)["s_quantized"] == 0, (axes(plain), axes(given))
    assert axes(plain)["Wc_quantized"] == 0 and axes(given)["Wc_quantized"] == 0, axes(given)
    same_as_ort(m, x, extra={"QDQOpTypePerChannelSupportToAxis": {"MatMul": -1}})


def qdq_layout_options():
    # AddQDQPairToWeight: weights stay float with a Q -> DQ pair; DedicatedQDQPair: an activation read by several
    # quantized nodes gets one pair per reader (`_1`, `_2` suffixes), a node excluded from quantization keeps the
    # float tensor. Node wiring, scales and zero points as ORT's.
    _, ours = same_as_ort(conv_relu_conv(), img(10), extra={"AddQDQPairToWeight": True})
    ops = [n.op_type for n in ours.graph.node]
    assert ops.count("QuantizeLinear") == 5 and {"W1", "W2"} <= {i.name for i in ours.graph.initializer}, ops
    same_as_ort(conv_relu_conv(), img(10), per_channel=False, extra={"AddQDQPairToWeight": True})
    m = model([helper.make_node("Relu", ["input"], ["r"], name="relu"),
               conv("r", "c1", "W1", "b1", "conv1"), conv("r", "c2", "W2", "b2", "conv2"),
               helper.make_node("Sigmoid", ["r"], ["sg"], name="sig"),
               helper.make_node("Add", ["c1", "c2"], ["a"], name="add"),
               helper.make_node("Mul", ["a", "sg"], ["y"], name="mul")],
              [init("W1", rnd(40, (3, 3, 3, 3))), init("W2", rnd(41, (3, 3, 3, 3))), init("b1", rnd(42, (3,), 0.1)),
               init("b2", rnd(43, (3,), 0.1))], [1, 3, 8, 8], [1, 3, 8, 8])
    _, ours = same_as_ort(m, img(11), extra={"DedicatedQDQPair": True})
    outs = {o for n in ours.graph.node for o in n.output}
    assert {"r_DequantizeLinear_Output_1", "r_DequantizeLinear_Output_2"} <= outs, sorted(outs)
    _, ours = same_as_ort(m, img(11), extra={"DedicatedQDQPair": True, "AddQDQPairToWeight": True})
    # Excluded reader: only the quantized readers of `r` get pairs.
    work = tmpdir()
    for ex in (["sig"], ["sig", "conv2"]):
        ort_out, ours, pre = quantize_both(m, img(11), extra={"DedicatedQDQPair": True}, nodes_to_exclude=ex)
        a, b = onnx.load(ort_out), onnx.load(ours)
        assert wiring(a) == wiring(b), (ex, sorted(set(wiring(a).items()) ^ set(wiring(b).items())))
    del work


def contrib_qdq_ops():
    # UseQDQContribOps: every Q/DQ in com.microsoft (imported at version 1), Int8 and, below opset 21, UInt16
    # activations; the written model computes in onnxruntime what ORT's own does.
    for act in ("Int8", "UInt16"):
        ort_out, ours, _ = quantize_both(conv_relu_conv(), img(12), act=act, extra={"UseQDQContribOps": True})
        a, b = compare_with_ort(ort_out, ours)
        assert {n.domain for n in b.graph.node if n.op_type.endswith("QuantizeLinear")} == {"com.microsoft"}
        assert ("com.microsoft", 1) in {(o.domain, o.version) for o in b.opset_import}
        x = img(13)[:1]
        ya = ort.InferenceSession(ort_out).run(None, {"input": x})[0]
        yb = ort.InferenceSession(ours).run(None, {"input": x})[0]
        # Int8: the same values; UInt16: within one output step (6 / 65535: a weight one step apart, as
        # compare_with_ort allows, can move a 16-bit output across a rounding boundary).
        step = {"Int8": 1e-6, "UInt16": 6.0 / 65535 * 1.01}[act]
        assert np.abs(ya - yb).max() <= step, (act, np.abs(ya - yb).max())


def ort_options_not_implemented():
    work = tmpdir()
    m = os.path.join(work, "m.onnx")
    onnx.save(conv_relu_conv(), m)
    np.savez(os.path.join(work, "d.npz"), input=img(8))
    for key, value, ok in (("EnableSubgraph", "True", True), ("EnableSubgraph", "False", True),
                           ("EnableSubgraph", "maybe", False),
                           ("TensorQuantOverrides", "{y: [{scale: 0.1}]}", False), ("TensorQuantOverrides", "{}", True),
                           ("TensorQuantOverrides", "{'y': [{quant_type: QUInt8}]}", True),
                           ("OpTypesToExcludeOutputQuantization", "[conv]", False),
                           ("QDQOpTypePerChannelSupportToAxis", "{matmul: 0}", False),
                           ("QDQOpTypePerChannelSupportToAxis", "{MatMul: one}", False),
                           ("QDQOpTypePerChannelSupportToAxis", "[MatMul]", False)):
        p = run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", os.path.join(work, key + value[:5]),
                    f"model.model_path={m}", f"dataset.quantization_path={os.path.join(work, 'd.npz')}",
                    "quantization.operating_mode=default", "preprocessing.color_mode=rgb",
                    f"quantization.onnx_extra_options.{key}={value}"], check=False)
        if ok:
            assert p.returncode == 0, (key, value, p.stderr[-800:])
        else:
            assert p.returncode == 2 and f"onnx_extra_options.{key}" in p.stderr, (key, value, p.stderr[-800:])


def recurrent_left_float():
    # MatMul -> Transpose -> LSTM/GRU/RNN -> Reshape -> Gemm. The recurrent ops are in none of ORT's QDQ / QLinear
    # registries (LSTM only in IntegerOpsRegistry, dynamic quantization): ORT leaves the node and its W, R, B float;
    # it reads the DequantizeLinear of the quantized Transpose before it, and the Gemm after it is quantized as usual.
    for op, g in (("LSTM", 4), ("GRU", 3), ("RNN", 1)):
        hid = 4
        m = model([helper.make_node("MatMul", ["input", "W1"], ["m"], name="mm"),
                   helper.make_node("Transpose", ["m"], ["t"], perm=[1, 0, 2], name="tr"),
                   helper.make_node(op, ["t", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hid, name="rec"),
                   helper.make_node("Reshape", ["Y_h", "shp"], ["f"], name="rs"),
                   helper.make_node("Gemm", ["f", "W2", "b2"], ["y"], name="gemm")],
                  [init("W1", rnd(1, (6, 8))), init("W", rnd(2, (1, g * hid, 8))), init("R", rnd(3, (1, g * hid, hid))),
                   init("B", rnd(4, (1, 2 * g * hid), 0.1)), init("shp", np.array([-1, hid], np.int64)),
                   init("W2", rnd(5, (hid, 3))), init("b2", rnd(6, (3,), 0.1))],
                  [1, 5, 6], [1, 3])
        x = np.random.default_rng(9).standard_normal((N, 5, 6)).astype(np.float32)
        for pc in (True, False):
            a, b = same_as_ort(m, x, per_channel=pc)  # same wiring and parameters, so the same Q/DQ counts
            count = lambda mm, t: sum(n.op_type == t for n in mm.graph.node)  # noqa: E731
            for t in ("QuantizeLinear", "DequantizeLinear", op):
                assert count(a, t) == count(b, t), (op, pc, t, count(a, t), count(b, t))
            rec = [n for n in b.graph.node if n.op_type == op][0]
            assert rec.input[0] == "t_DequantizeLinear_Output" and list(rec.input[1:]) == ["W", "R", "B"], rec.input
            floats = {t.name for t in b.graph.initializer if t.data_type == TensorProto.FLOAT}
            assert {"W", "R", "B"} <= floats, f"{op}: W/R/B should stay float"
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            feeds = {"input": x[:1]}
            got = ort.InferenceSession(b.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
            want = ort.InferenceSession(a.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{op} pc={pc}")
        # Named in op_types_to_quantize, the node gets ORT's generic rule (QDQOperatorBase): every input, W, R
        # and B included, goes through Q/DQ with activation-style parameters.
        a, b = same_as_ort(m, x, per_channel=False, op_types=["MatMul", op, "Gemm"])
        rec = [n for n in b.graph.node if n.op_type == op][0]
        assert all(i.endswith("_DequantizeLinear_Output") for i in rec.input), rec.input


if __name__ == "__main__":
    r = Runner()
    r.run("bias shared by two Convs", shared_bias)
    r.run("one-channel Conv: bias written per tensor", one_channel_bias)
    r.run("a node named like a tensor's scale", node_named_like_a_scale)
    r.run("Gather on a constant table", gather_constant_table)
    r.run("Pad constant value", pad_value)
    r.run("per-channel bias layout (grouped ConvTranspose, Gemm [1,N] bias)", per_channel_bias_layout)
    r.run("GridSample / RoiAlign / NonMaxSuppression stay float between quantized ops", detection_ops)
    r.run("ONNX Runtime extra options onnxquant implements", ort_options)
    r.run("ActivationRestrictedAsymmetric (UInt8 activations)", activation_restricted_asymmetric)
    r.run("QDQOpTypePerChannelSupportToAxis", per_channel_axis_option)
    r.run("AddQDQPairToWeight, DedicatedQDQPair", qdq_layout_options)
    r.run("UseQDQContribOps (16-bit activations below opset 21)", contrib_qdq_ops)
    r.run("ONNX Runtime extra options: wrong values refused, right ones accepted", ort_options_not_implemented)
    r.run("LSTM/GRU/RNN: left float by default, every input Q/DQ when named in op_types_to_quantize", recurrent_left_float)
    r.finish()
