"""ONNX Runtime's TensorQuantOverrides extra option: default mode vs quantize_static with the same overrides.

Each case quantizes a small graph (Conv -> Relu -> Conv -> Clip, a MaxPool graph, two Convs reading one Relu) or a
testdata model with both tools and checks: the same wiring (so the same Q/DQ nodes per op type), every scale and zero point equal
(1e-6 relative), quantized values within 1, our model passes onnx.checker full_check and runs in onnxruntime with
the outputs of ORT's model. Every key is exercised: quant_type (16- and 4-bit at opset 21), scale / zero_point,
symmetric, reduce_range, rmin / rmax, axis (one dict for every channel, one dict per channel), convert (every
reader, recv_nodes, a graph output, its own parameters, its effect on biases, Relu folding and MaxPool sharing),
overrides on a bias, on a tensor a Relu folds away and on a MaxPool output (ORT ignores both), and ORT's
weight-scale adjustment for an int32 bias with an overridden weight, an overridden bias under QuantizeBias False
(quantized as a weight, as ORT does); an override on an int64 tensor warns that it is not a float tensor; full_auto
keeps a user's weight override.

The overrides go to ORT with numpy values where it needs them: an activation's scale / zero_point must be numpy
arrays and rmin / rmax numpy floats (ORT 1.32 raises AttributeError on Python numbers there, docs/conformance.md);
onnxquant reads YAML numbers with that meaning.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnxruntime.quantization import QuantType

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, default_mode_config, run_oq, tmpdir  # noqa: E402
from test_op_parity import compare_with_ort, conv, img, init, model, qdq_counts, quantize_both, rnd  # noqa: E402
from test_quant_parity import compare  # noqa: E402
from test_quant_parity import quantize_both as quantize_both_testdata  # noqa: E402

NP_TYPES = {"QInt8": np.int8, "QUInt8": np.uint8, "QInt16": np.int16, "QUInt16": np.uint16,
            "QInt4": np.int8, "QUInt4": np.uint8}


def for_ort(tqo, default="QInt8"):
    """The YAML-style overrides (type names, plain numbers) as quantize_static takes them."""
    def one(d):
        e = dict(d)
        qt = e.get("quant_type", default)
        if "quant_type" in e:
            e["quant_type"] = QuantType[qt]
        if "scale" in e:
            e["scale"] = np.array(e["scale"], np.float32)
            e["zero_point"] = np.array(e["zero_point"], NP_TYPES[qt])
        for k in ("rmin", "rmax"):
            if k in e:
                e[k] = np.float32(e[k])
        if "convert" in e:
            e["convert"] = one(e["convert"])
        if "recv_nodes" in e:  # ORT takes a set
            e["recv_nodes"] = set(e["recv_nodes"])
        return e
    return {name: [one(d) for d in dicts] for name, dicts in tqo.items()}


def graph(opset):
    m = model([conv("input", "c1", "W1", "b1", "conv1"), helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
               conv("r1", "c2", "W2", "b2", "conv2"), helper.make_node("Clip", ["c2", "lo", "hi"], ["y"], name="clip")],
              [init("W1", rnd(20, (4, 3, 3, 3))), init("W2", rnd(21, (4, 4, 3, 3))), init("b1", rnd(22, (4,), 0.1)),
               init("b2", rnd(23, (4,), 0.1)), init("lo", np.array(0.0, np.float32)),
               init("hi", np.array(6.0, np.float32))], [1, 3, 8, 8], [1, 4, 8, 8], opset=opset)
    if opset >= 21:
        m.ir_version = 10
    return m


def pool_graph():
    return model([conv("input", "c1", "W1", "b1", "conv1"),
                  helper.make_node("MaxPool", ["c1"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
                  conv("p", "y", "W2", "b2", "conv2")],
                 [init("W1", rnd(30, (4, 3, 3, 3))), init("W2", rnd(31, (4, 4, 3, 3))), init("b1", rnd(32, (4,), 0.1)),
                  init("b2", rnd(33, (4,), 0.1))], [1, 3, 8, 8], [1, 4, 4, 4])


def two_readers():
    """Conv -> Relu -> r1 read by two Convs, whose outputs an Add sums (opset 21)."""
    m = model([conv("input", "c1", "W1", "b1", "conv1"), helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
               conv("r1", "c2", "W2", "b2", "conv2"), conv("r1", "c3", "W3", "b3", "conv3"),
               helper.make_node("Add", ["c2", "c3"], ["y"], name="add")],
              [init("W1", rnd(40, (4, 3, 3, 3))), init("W2", rnd(41, (4, 4, 3, 3))), init("W3", rnd(42, (4, 4, 3, 3))),
               init("b1", rnd(43, (4,), 0.1)), init("b2", rnd(44, (4,), 0.1)), init("b3", rnd(45, (4,), 0.1))],
              [1, 3, 8, 8], [1, 4, 8, 8], opset=21)
    m.ir_version = 10
    return m


def both(m, x, tqo, per_channel=True, opset=13, extra=None, oq_extra=None, **filters):
    """quantize_static and onnxquant with the same TensorQuantOverrides (and node filters: nodes_to_exclude,
    op_types; `extra`: more extra_options for both, `oq_extra` replaces keys for onnxquant only); returns (ORT model,
    ours) after the checks of the module docstring."""
    ort_out, ours, _ = quantize_both(m, x, per_channel, extra={"TensorQuantOverrides": for_ort(tqo), **(extra or {})},
                                     opset=opset, **filters,
                                     oq_extra={"TensorQuantOverrides": json.dumps(tqo), **(oq_extra or {})})
    a, b = compare_with_ort(ort_out, ours)
    assert qdq_counts(a) == qdq_counts(b), (qdq_counts(a), qdq_counts(b))
    sa, sb = scales(a), scales(b)  # compare_with_ort skips the `_convert` ones
    assert set(sa) == set(sb), (set(sa) ^ set(sb))
    for n, v in sa.items():
        assert v.dtype == sb[n].dtype and np.allclose(v.astype(np.float64), sb[n].astype(np.float64), rtol=1e-6, atol=0), \
            (n, v, sb[n])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    def run(p):
        s = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
        return np.concatenate([s.run(None, {"input": x[i:i + 1]})[0] for i in range(4)])
    ya, yb = run(ort_out), run(ours)
    step = np.abs(ya).max() / 100  # a quantized weight may round one step apart
    assert np.abs(ya - yb).max() <= step, (tqo, np.abs(ya - yb).max())
    return a, b


def scales(m):
    return {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer
            if t.name.endswith(("_scale", "_zero_point", "_scale_convert", "_zero_point_convert"))}


def per_tensor_keys():
    m, x = graph(21), img(8)
    for tqo in ({"r1": [{"quant_type": "QUInt16"}]},
                {"r1": [{"quant_type": "QInt16", "symmetric": True}], "y": [{"quant_type": "QUInt4"}]},
                {"input": [{"symmetric": True}]},
                {"r1": [{"rmin": -1.0, "rmax": 2.5}], "input": [{"rmax": 10.0}]},
                {"r1": [{"scale": 0.01, "zero_point": 5}]},
                {"r1": [{"quant_type": "QUInt8", "scale": 0.02, "zero_point": 128}]},
                {"W1": [{"quant_type": "QInt4"}]},
                {"W1": [{"quant_type": "QUInt4", "symmetric": False}], "W2": [{"quant_type": "QInt16"}]},
                {"W1": [{"symmetric": False}]},
                {"W1": [{"reduce_range": True}], "W2": [{"reduce_range": True, "symmetric": False}]},
                {"W1": [{"rmin": -0.5, "rmax": 0.5}]},
                {"W2": [{"scale": 0.004, "zero_point": 0}]},
                {"W1": [{}]},  # an empty dict: the weight goes per tensor
                {"b1": [{"quant_type": "QInt8"}]}):  # a bias with overrides is quantized as a weight
        for pc in (True, False):
            a, b = both(m, x, tqo, per_channel=pc, opset=21)
    # The values themselves, by hand: a fixed scale is written as given, rmin / rmax give (rmax - rmin) / 255.
    a, b = both(m, x, {"r1": [{"scale": 0.01, "zero_point": 5}], "input": [{"rmin": -1.0, "rmax": 2.5}]}, opset=21)
    s = scales(b)
    assert s["r1_scale"] == np.float32(0.01) and s["r1_zero_point"] == 5, (s["r1_scale"], s["r1_zero_point"])
    assert np.isclose(s["input_scale"], 3.5 / 255, rtol=1e-6), s["input_scale"]


def per_channel_keys():
    m, x = graph(21), img(8)
    for tqo in ({"W1": [{"axis": 0, "quant_type": "QInt4"}]},
                {"W1": [{"axis": 0, "symmetric": False}]},
                {"W1": [{"axis": -4, "reduce_range": True}]},
                {"W1": [{"axis": 0, "rmin": -0.2, "rmax": 0.2}]},  # ORT: channel 0 only
                {"W2": [{"axis": 0, "rmin": -0.1 * (i + 1), "rmax": 0.1 * (i + 1)} for i in range(4)]},
                {"W2": [{"axis": 0, "scale": 0.001 * (i + 1), "zero_point": 0} for i in range(4)]},
                {"W2": [{"axis": 0, "quant_type": "QUInt8", "scale": 0.002, "zero_point": 100 + i} for i in range(4)]}):
        # (`{"W2": [{"axis": 1}]}`, the input channels of a Conv weight, is refused since the twentieth session: ORT
        # writes bias scales from the input channels' weight scales, and its QLinearConv fusion then computes with
        # them as output-channel scales; tests/python/test_bad_inputs.py, override_axis_not_conv_channel.)
        for pc in (True, False):  # a per-channel override makes the weight per channel whatever the granularity
            a, b = both(m, x, tqo, per_channel=pc, opset=21)
            w = [t for t in b.graph.initializer if t.name == list(tqo)[0] + "_scale"][0]
            assert list(w.dims) == [4], (tqo, w.dims)
    # ORT's quirk, checked by hand: one dict with an axis gives its rmin / rmax to channel 0 only.
    _, b = both(m, x, {"W1": [{"axis": 0, "rmin": -0.2, "rmax": 0.2}]}, opset=21)
    w1 = onnx.numpy_helper.to_array([t for t in m.graph.initializer if t.name == "W1"][0])
    s = scales(b)["W1_scale"]
    assert np.isclose(s[0], 0.2 / 127, rtol=1e-6), s
    assert np.isclose(s[1], np.abs(w1[1]).max() / 127, rtol=1e-6), s


def interactions():
    m, x = graph(13), img(8)
    # A Relu folds into its producer: an override on the producer's output (gone) has no effect, in ORT too.
    a, b = both(m, x, {"c1": [{"quant_type": "QUInt8"}]})
    assert "c1_scale" not in scales(b)
    # A weight override changes the bias scale (input scale x weight scale), and ORT enlarges an overridden
    # weight's scale when the int32 bias would overflow.
    a, b = both(m, x, {"W1": [{"scale": 1e-10, "zero_point": 0}]})
    s = scales(b)
    assert s["W1_scale"] > 1e-10 and np.isclose(s["b1_quantized_scale"], s["input_scale"] * s["W1_scale"], rtol=1e-6)
    a, b = both(m, x, {"W1": [{"symmetric": False}]}, per_channel=False)
    s = scales(b)
    assert s["W1_zero_point"] != 0 and np.isclose(s["b1_quantized_scale"], s["input_scale"] * s["W1_scale"], rtol=1e-6)
    # A MaxPool output takes its input's parameters: ORT ignores an override there.
    a, b = both(pool_graph(), x, {"p": [{"quant_type": "QUInt8"}], "c1": [{"rmin": -4.0, "rmax": 4.0}]})
    assert "p_scale" not in scales(b) and np.isclose(scales(b)["c1_scale"], 8 / 255, rtol=1e-6)


def bias_override_without_quantize_bias():
    # QuantizeBias: False and an override on a bias: ORT's quantize_bias_tensor looks at the overrides first and
    # quantizes that bias as a weight of the override (b2_quantized / b2_scale / b2_zero_point, a DequantizeLinear
    # into conv2), the other biases stay float. onnxquant used to leave it float and warn that a node filter or a
    # Relu / Clip fold made the override useless. The same through weights_tensor_override.
    m, x = graph(13), img(8)
    for pc in (True, False):
        for oq in (None, {"TensorQuantOverrides": "{}", "weights_tensor_override": '[["b2", {"quant_type": "Int8"}]]'}):
            a, b = both(m, x, {"b2": [{"quant_type": "QInt8"}]}, per_channel=pc, extra={"QuantizeBias": False},
                        oq_extra=oq)
            for q in (a, b):
                names = {t.name for t in q.graph.initializer}
                assert {"b2_quantized", "b2_scale", "b2_zero_point"} <= names and "b1" in names, sorted(names)
                dq = [n for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "b2_quantized"]
                assert len(dq) == 1 and [n for n in q.graph.node if dq[0].output[0] in n.input][0].op_type == "Conv"
    # The bias as a weight of the override: symmetric Int8 over its own range (|b2|max / 127), by hand.
    b2 = onnx.numpy_helper.to_array([t for t in m.graph.initializer if t.name == "b2"][0])
    assert np.isclose(scales(b)["b2_scale"], np.abs(b2).max() / 127, rtol=1e-6), (scales(b)["b2_scale"], b2)


def override_on_non_float_tensor():
    # An override on an int64 tensor (a Reshape's shape) has no effect: the warning says it is not a float tensor
    # (it used to blame node filters or a Relu / Clip fold, neither of which is involved here).
    m = model([conv("input", "c1", "W1", "b1", "conv1"), helper.make_node("Reshape", ["c1", "shp"], ["y"], name="rs")],
              [init("W1", rnd(50, (4, 3, 3, 3))), init("b1", rnd(51, (4,), 0.1)), init("shp", np.array([1, -1], np.int64))],
              [1, 3, 8, 8], [1, 256])
    d = tmpdir()
    onnx.save(m, os.path.join(d, "m.onnx"))
    np.savez(os.path.join(d, "calib.npz"), input=img(8))
    for key, value in (("weights_tensor_override", '[["shp", {"quant_type": "Int8"}]]'),
                       ("TensorQuantOverrides", '{"shp": [{"quant_type": "QInt8"}]}')):
        cfg = os.path.join(d, key + ".yaml")
        with open(cfg, "w") as f:
            f.write(default_mode_config(os.path.join(d, "m.onnx"), os.path.join(d, "calib.npz"), extra={key: value}))
        p = run_oq(["--config", cfg, "--output-dir", os.path.join(d, key)])
        warn = [line for line in p.stderr.splitlines() if "'shp'" in line and "[warning]" in line]
        assert len(warn) == 1 and "not a float tensor (INT64)" in warn[0] and "nodes_to_exclude" not in warn[0], warn


def convert():
    # ORT's Q(type A) -> DQ -> Q(type B) -> DQ chain: for every reader, for the receiving nodes only (a DQ clone feeds
    # the second Q), on a graph output, with the convert's own scale / zero point, symmetric, rmin / rmax.
    m, x = two_readers(), img(8)
    for tqo in ({"r1": [{"convert": {"quant_type": "QUInt16"}}]},
                {"r1": [{"quant_type": "QUInt8", "convert": {"quant_type": "QUInt16", "recv_nodes": ["conv3"]}}]},
                {"r1": [{"convert": {"quant_type": "QInt16", "recv_nodes": ["conv2", "conv3"]}}]},
                {"y": [{"convert": {"quant_type": "QInt16"}}]},
                {"c2": [{"convert": {"quant_type": "QInt16", "scale": 0.001, "zero_point": 3}}],
                 "c3": [{"quant_type": "QUInt8", "convert": {"quant_type": "QInt16", "symmetric": True}}]},
                {"c3": [{"quant_type": "QUInt8", "convert": {"quant_type": "QInt16", "rmin": -2.0, "rmax": 2.0}}]}):
        for pc in (True, False):
            a, b = both(m, x, tqo, per_channel=pc, opset=21)
    # Only conv3 receives the converted type: its DequantizeLinear is the converted one, conv2's the original, and
    # conv3's bias scale follows the converted scale (ORT's get_for_consumer).
    _, b = both(m, x, {"r1": [{"quant_type": "QUInt8", "convert": {"quant_type": "QUInt16", "recv_nodes": ["conv3"]}}]},
                opset=21)
    ins = {n.name: list(n.input) for n in b.graph.node}
    assert ins["conv3"][0] == "r1_convert_DequantizeLinear_Output" and ins["conv2"][0] == "r1_DequantizeLinear_Output"
    s = scales(b)
    assert s["r1_zero_point_convert"].dtype == np.uint16 and s["r1_zero_point"].dtype == np.uint8
    assert np.allclose(s["b3_quantized_scale"], s["r1_scale_convert"] * s["W3_scale"], rtol=1e-6)
    assert np.allclose(s["b2_quantized_scale"], s["r1_scale"] * s["W2_scale"], rtol=1e-6)
    # A converted Conv output keeps its Relu (ORT folds only unconverted tensors); a MaxPool output shares the
    # converted parameters of its input when the MaxPool receives them.
    both(graph(21), x, {"c1": [{"convert": {"quant_type": "QInt16"}}]}, opset=21)
    _, b = both(pool_graph(), x, {"c1": [{"convert": {"quant_type": "QUInt8", "recv_nodes": ["pool"]}}]})
    q = [n for n in b.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "p"][0]
    assert q.input[1] == "c1_scale_convert", q.input


def convert_with_unquantized_readers():
    # ORT rewires only the nodes that quantize the tensor (tensor_to_its_receiving_nodes): an excluded Conv, a
    # Shape and a Concat outside op_types_to_quantize keep reading the float tensor, and no DQ clone is added for
    # them. compare_with_ort (in both) checks the wiring node by node.
    w = lambda name, seed, shape: init(name, rnd(seed, shape))  # noqa: E731
    inits = [w("W1", 50, (4, 3, 3, 3)), w("W2", 51, (4, 4, 3, 3)), w("W3", 52, (4, 4, 3, 3)), w("b1", 53, (4,)),
             w("b2", 54, (4,)), w("b3", 55, (4,))]
    head = [conv("input", "c1", "W1", "b1", "conv1"), conv("c1", "c2", "W2", "b2", "conv2"),
            conv("c1", "c3", "W3", "b3", "conv3")]
    m = model(head + [helper.make_node("Shape", ["c1"], ["s"], name="shape"),
                      helper.make_node("Reshape", ["c3", "s"], ["c3r"], name="reshape"),
                      helper.make_node("Add", ["c2", "c3r"], ["y"], name="add")], inits, ["N", 3, 8, 8],
              ["N", 4, 8, 8], opset=21)  # a dynamic batch: the Shape stays
    m.ir_version = 10
    x = img(9)
    for tqo in ({"c1": [{"quant_type": "QInt16", "convert": {"quant_type": "QInt8"}}]},
                {"c1": [{"quant_type": "QInt16", "convert": {"quant_type": "QInt8", "recv_nodes": ["conv2"]}}]}):
        _, b = both(m, x, tqo, opset=21, nodes_to_exclude=["conv3"])
        ins = {n.name: list(n.input) for n in b.graph.node}
        assert ins["conv3"][0] == "c1" and ins["shape"][0] == "c1", (ins["conv3"], ins["shape"])
        assert ins["conv2"][0] == "c1_convert_DequantizeLinear_Output", ins["conv2"]
    m2 = model(head + [helper.make_node("Concat", ["c2", "c3", "c1"], ["y"], name="concat", axis=1)], inits,
               [1, 3, 8, 8], [1, 12, 8, 8], opset=21)
    m2.ir_version = 10
    _, b = both(m2, x, {"c2": [{"quant_type": "QInt16", "convert": {"quant_type": "QInt8"}}]}, opset=21,
                op_types=["Conv"])
    concat = [n for n in b.graph.node if n.name == "concat"][0]
    assert concat.input[0] == "c2", list(concat.input)


def bn_folded_weight():
    # Overrides name the tensors of the pre-processed model, as ORT's after quant_pre_process: the weight of a Conv
    # that a BatchNormalization folds into is ConvBnFusion_W_<w> (and its bias ConvBnFusion_BN_B_<b>).
    w = "ConvBnFusion_W_features.3.body.0.weight"
    tqo = {w: [{"quant_type": "QInt4"}]}
    arg = "quantization.onnx_extra_options.TensorQuantOverrides=" + json.dumps(tqo)
    compare("digits_mobilenet_bn.onnx", "digits_calib.npz", "digits_test.npz", opset=21,
            ort_extra={"TensorQuantOverrides": for_ort(tqo)}, oq_args=[arg])
    # onnxquant given the raw model (its own pre-processing folds the BatchNormalization): the same Int4 weight and
    # scales as quantize_static's on ORT's pre-processed model.
    ort_out, _ = quantize_both_testdata("digits_mobilenet_bn.onnx", "digits_calib.npz", True, "Int8", "Int8", 21,
                                        ort_extra={"TensorQuantOverrides": for_ort(tqo)}, oq_args=[arg])
    work = tmpdir()
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", work,
            "model.model_path=testdata/digits_mobilenet_bn.onnx", "dataset.quantization_path=testdata/digits_calib.npz",
            "quantization.operating_mode=default", "quantization.target_opset=21", arg])
    ours = onnx.load(os.path.join(work, "quantized_models", "digits_mobilenet_bn_quant_qdq_pc.onnx"))
    a = {t.name: t for t in onnx.load(ort_out).graph.initializer}
    b = {t.name: t for t in ours.graph.initializer}
    assert b[w + "_quantized"].data_type == onnx.TensorProto.INT4, b[w + "_quantized"].data_type
    for k in (w + "_scale", w + "_zero_point"):
        va, vb = onnx.numpy_helper.to_array(a[k]), onnx.numpy_helper.to_array(b[k])
        assert va.dtype == vb.dtype and np.allclose(va.astype(np.float64), vb.astype(np.float64), rtol=1e-6), (k, va, vb)


def testdata_model():
    tqo = {"onnx::Conv_215": [{"axis": 0, "quant_type": "QInt4"}],
           "onnx::Conv_218": [{"axis": 0, "rmin": -1 - i / 32, "rmax": 1 + i / 32} for i in range(32)],
           "/features/features.2/Clip_output_0": [{"quant_type": "QUInt16"}],
           "fc.weight": [{"quant_type": "QInt8", "symmetric": False}]}
    for pc in (True, False):
        compare("digits_mobilenet.onnx", "digits_calib.npz", "digits_test.npz", per_channel=pc, opset=21,
                ort_extra={"TensorQuantOverrides": for_ort(tqo)},
                oq_args=["quantization.onnx_extra_options.TensorQuantOverrides=" + json.dumps(tqo)])


def full_auto_keeps_user_weights():
    # full_auto's search leaves a weight of TensorQuantOverrides as the user set it, in every attempt.
    work = tmpdir()
    w = "weights.1"
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", work,
            "model.model_path=testdata/digits_mlp.onnx", "dataset.quantization_path=testdata/digits_calib_flat.npz",
            "dataset.test_path=testdata/digits_test_flat.npz",
            "quantization.operating_mode=full_auto", "quantization.target_opset=21",
            "quantization.onnx_extra_options.TensorQuantOverrides=" + json.dumps({w: [{"quant_type": "QInt16"}]})])
    models = [os.path.join(r, f) for r, _, fs in os.walk(work) for f in fs if "_qdq" in f and f.endswith(".onnx")]
    assert models, os.listdir(work)
    for p in models:
        t = [t for t in onnx.load(p).graph.initializer if t.name == w + "_quantized"]
        assert t and t[0].data_type == onnx.TensorProto.INT16, (p, t[0].data_type if t else None)


if __name__ == "__main__":
    r = Runner()
    r.run("per-tensor keys: quant_type (16/4-bit), scale/zero_point, symmetric, reduce_range, rmin/rmax", per_tensor_keys)
    r.run("per-channel keys: axis, one dict or one per channel, rmin/rmax, scale/zero_point", per_channel_keys)
    r.run("Relu folding, bias scale and int32 adjustment, MaxPool sharing", interactions)
    r.run("QuantizeBias False: an overridden bias is quantized as a weight, as in ORT", bias_override_without_quantize_bias)
    r.run("an override on an int64 tensor: the warning says it is not a float tensor", override_on_non_float_tensor)
    r.run("convert: all readers, recv_nodes, graph output, its own parameters, Relu and MaxPool", convert)
    r.run("convert leaves readers that are not quantized on the float tensor", convert_with_unquantized_readers)
    r.run("a BatchNormalization-folded Conv weight under its pre-processed name", bn_folded_weight)
    r.run("digits_mobilenet with overrides on weights and an activation", testdata_model)
    r.run("full_auto keeps a TensorQuantOverrides weight", full_auto_keeps_user_weights)
    r.finish()
