"""Models importing ai.onnx opsets 22 to 27 against onnxruntime (opset 28, the newest the executor supports:
test_opset_28.py, which reuses the helpers here).

- `onnxquant run` on small graphs at each of those opsets (convolution, pools, Pad, Transpose, Flatten, Gemm,
  Squeeze / Unsqueeze, Softmax, Shape, Size, Cast, ConstantOfShape, Identity), on QuantizeLinear /
  DequantizeLinear with opset 23's `precision` and `output_dtype`, Cast with opset 24's `round_mode`, and on the new
  ops Swish-24 and RMSNormalization-23 (Swish at 24 only: onnxruntime 1.32 has no Swish kernel for models at
  25+), Range with opset 27's `stash_type`: outputs equal to onnxruntime's (graph optimizations disabled) within 1e-5,
  integers exactly.
- Attribute values the executor does not implement (QuantizeLinear precision FLOAT16, DequantizeLinear output_dtype
  INT32, an invalid round_mode, Range stash_type FLOAT16) and new ops it has no kernel for (LinearAttention-27,
  CausalConvWithState-27) are refused with one line naming
  the node and the attribute or op.
- The main job on an opset-23 model: inspection writes an opset-23 model that passes onnx.checker's full check and
  runs in onnxruntime; full_auto likewise, with the scores it reports matching onnxruntime's; a target_opset lower
  than the model's keeps the model's opset (as quantize_static, which never converts down) and says so in the log;
  target_opset 24 and 27 on an opset-13 model convert it (IR versions 12 and 13, as onnx.helper.VERSION_TABLE
  gives).
Default-mode parity with quantize_static at opsets 22, 23 and 27 is in tests/python/test_quant_parity.py.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import TESTDATA, Runner, assert_same_output, ort_top1, run_oq, tmpdir  # noqa: E402

RNG = np.random.default_rng(2024)


def init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def make_model(nodes, inits, inputs, outputs, opset, check=True):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = helper.find_min_ir_version_for(m.opset_import)
    if check:
        onnx.checker.check_model(m, full_check=True)
    return m


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def ort_run(path, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def oq_run(path, feeds, d):
    args = ["run", path, "--output-dir", os.path.join(d, "out")]
    for k, v in feeds.items():
        f = os.path.join(d, k + ".npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    run_oq(args)
    return {n: np.load(os.path.join(d, "out", n + ".npy")) for n in os.listdir(os.path.join(d, "out"))
            for n in [n[:-4]]}


def compare_run(m, feeds):
    d = tmpdir()
    path = os.path.join(d, "m.onnx")
    onnx.save(m, path)
    want, got = ort_run(path, feeds), oq_run(path, feeds, d)
    assert sorted(got) == sorted(want), f"outputs {sorted(got)} vs ORT {sorted(want)}"
    for k in want:
        assert_same_output(k, got[k], want[k], exact=want[k].dtype.kind != "f")


def cnn(opset):
    """Conv -> HardSwish -> MaxPool (ceil) -> AveragePool (pads) -> Pad (reflect) -> Transpose -> Flatten -> Gemm ->
    Unsqueeze -> Squeeze -> Softmax -> Identity; Shape -> Cast, Size, ConstantOfShape on the side."""
    cast = {"round_mode": "up"} if opset >= 24 else {}  # opset 24's attribute, default value
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("HardSwish", ["c"], ["h"]),
        helper.make_node("MaxPool", ["h"], ["p"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0),
        helper.make_node("Pad", ["a", "pads"], ["pd"], mode="reflect"),
        helper.make_node("Transpose", ["pd"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Flatten", ["t"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["g"], transB=1),
        helper.make_node("Unsqueeze", ["g", "ax"], ["u"]),
        helper.make_node("Squeeze", ["u", "ax"], ["sq"]),
        helper.make_node("Softmax", ["sq"], ["sm"]),
        helper.make_node("Identity", ["sm"], ["y"]),
        helper.make_node("Shape", ["pd"], ["shp"]),
        helper.make_node("Cast", ["shp"], ["shape_f"], to=TensorProto.FLOAT, **cast),
        helper.make_node("Size", ["pd"], ["size"]),
        helper.make_node("ConstantOfShape", ["shp"], ["ones"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.5])),
        helper.make_node("ReduceSum", ["ones"], ["ones_sum"], keepdims=0),
    ]
    inits = [init("w", RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)),
             init("b", RNG.standard_normal(4).astype(np.float32)),
             init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
             init("wg", RNG.standard_normal((10, 4 * 7 * 7)).astype(np.float32) * 0.1),
             init("bg", RNG.standard_normal(10).astype(np.float32)),
             init("ax", np.array([1], np.int64))]
    outs = [vi("y", TensorProto.FLOAT, [2, 10]), vi("shape_f", TensorProto.FLOAT, [4]), vi("size", TensorProto.INT64, []),
            vi("ones_sum", TensorProto.FLOAT, [])]
    m = make_model(nodes, inits, [vi("x", TensorProto.FLOAT, [2, 3, 9, 9])], outs, opset)
    compare_run(m, {"x": RNG.standard_normal((2, 3, 9, 9)).astype(np.float32)})


def qdq(opset):
    """QuantizeLinear with precision FLOAT (23+) and DequantizeLinear with output_dtype FLOAT from a float16 scale
    (the output is float32 where without the attribute it would be float16), per tensor and per axis."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], precision=TensorProto.FLOAT),
             helper.make_node("DequantizeLinear", ["q", "s16", "z"], ["y"], output_dtype=TensorProto.FLOAT),
             helper.make_node("QuantizeLinear", ["x", "sa"], ["qa"], axis=1, output_dtype=TensorProto.INT8),
             helper.make_node("DequantizeLinear", ["qa", "sa"], ["ya"], axis=1),
             helper.make_node("DequantizeLinear", ["qa", "sa16"], ["ya16"], axis=1)]
    inits = [init("s", np.array(0.037, np.float32)), init("s16", np.array(0.037, np.float16)),
             init("z", np.array(3, np.int8)), init("sa", np.array([0.01, 0.02, 0.05, 0.1], np.float32)),
             init("sa16", np.array([0.01, 0.02, 0.05, 0.1], np.float16))]
    outs = [vi("q", TensorProto.INT8, [3, 4]), vi("y", TensorProto.FLOAT, [3, 4]), vi("ya", TensorProto.FLOAT, [3, 4]),
            vi("ya16", TensorProto.FLOAT16, [3, 4])]
    m = make_model(nodes, inits, [vi("x", TensorProto.FLOAT, [3, 4])], outs, opset)
    compare_run(m, {"x": np.linspace(-6, 6, 12).astype(np.float32).reshape(3, 4)})


def swish_rms(opset):
    nodes = [helper.make_node("Swish", ["x"], ["sw"], alpha=1.7) if opset == 24 else
             helper.make_node("Sigmoid", ["x"], ["sw"]),
             helper.make_node("RMSNormalization", ["x", "scale"], ["rms"], epsilon=1e-3),
             helper.make_node("RMSNormalization", ["x", "scale2"], ["rms2"], axis=1)]
    inits = [init("scale", RNG.standard_normal(7).astype(np.float32)),
             init("scale2", RNG.standard_normal((5, 1)).astype(np.float32))]
    outs = [vi(n, TensorProto.FLOAT, [3, 5, 7]) for n in ("sw", "rms", "rms2")]
    m = make_model(nodes, inits, [vi("x", TensorProto.FLOAT, [3, 5, 7])], outs, opset)
    compare_run(m, {"x": (RNG.standard_normal((3, 5, 7)) * 4).astype(np.float32)})


def range_stash(opset):
    """Range (float and int64) with stash_type 1, the default made explicit (the attribute exists from 27)."""
    attrs = {"stash_type": 1} if opset >= 27 else {}
    nodes = [helper.make_node("Range", ["s", "l", "d"], ["r"], **attrs),
             helper.make_node("Range", ["si", "li", "di"], ["ri"], **attrs)]
    inits = [init("s", np.array(1.0, np.float32)), init("l", np.array(2.0, np.float32)),
             init("si", np.array(10, np.int64)), init("li", np.array(-4, np.int64)), init("di", np.array(-3, np.int64))]
    m = make_model(nodes, inits, [vi("d", TensorProto.FLOAT, [])],
                   [vi("r", TensorProto.FLOAT, ["n"]), vi("ri", TensorProto.INT64, ["m"])], opset)
    compare_run(m, {"d": np.array(0.07, np.float32)})


def refusals():
    """Non-default attribute values the executor does not implement, and a new op without a kernel."""
    x = vi("x", TensorProto.FLOAT, [2, 3])
    cases = [
        (23, helper.make_node("QuantizeLinear", ["x", "s"], ["y"], name="q16", precision=TensorProto.FLOAT16),
         [init("s", np.array(0.1, np.float16))], TensorProto.UINT8, ["q16", "precision=10"]),
        (23, helper.make_node("DequantizeLinear", ["x8", "s"], ["y"], name="dq_i32", output_dtype=TensorProto.INT32),
         [init("s", np.array(0.1, np.float32))], TensorProto.INT32, ["dq_i32", "output_dtype=6"]),
        (24, helper.make_node("Cast", ["x"], ["y"], name="cast_rm", to=TensorProto.INT32, round_mode="sideways"),
         [], TensorProto.INT32, ["cast_rm", "round_mode='sideways'"]),
        (27, helper.make_node("Range", ["s", "s", "s"], ["y"], name="range16", stash_type=TensorProto.FLOAT16),
         [init("s", np.array(1, np.int64))], TensorProto.INT64, ["range16", "stash_type=10"]),
        (27, helper.make_node("LinearAttention", ["x", "x", "x"], ["y", "st"], name="lin_attn",
                                   q_num_heads=1, kv_num_heads=1), [], TensorProto.FLOAT,
         ["lin_attn", "LinearAttention", "not supported"]),
        (27, helper.make_node("CausalConvWithState", ["x", "w"], ["y", "st"], name="ccs"),
         [init("w", np.ones((3, 1, 2), np.float32))], TensorProto.FLOAT, ["ccs", "CausalConvWithState", "not supported"]),
    ]
    for opset, node, inits, out_t, words in cases:
        d = tmpdir()
        inp = vi("x8", TensorProto.INT8, [2, 3]) if node.input[0] == "x8" else x
        m = make_model([node], inits, [inp], [vi("y", out_t, None)], opset, check=False)
        path = os.path.join(d, "m.onnx")
        onnx.save(m, path)
        f = os.path.join(d, "x.npy")
        np.save(f, np.ones((2, 3), np.int8 if node.input[0] == "x8" else np.float32))
        p = run_oq(["run", path, "--input", f, "--output-dir", os.path.join(d, "o")], check=False)
        err = p.stderr.strip()
        assert p.returncode == 1, f"{node.name}: exit {p.returncode}: {err}"
        assert len(err.splitlines()) == 1, f"{node.name}: not one line:\n{err}"
        for w in words:
            assert w in err, f"{node.name}: '{w}' not in: {err}"


def digits_at(opset, d):
    m = onnx.version_converter.convert_version(onnx.load(os.path.join(TESTDATA, "digits_mobilenet.onnx")), opset)
    path = os.path.join(d, f"digits_op{opset}.onnx")
    onnx.save(m, path)
    return path


def check_written(path, opset):
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    got = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    assert got == [opset], f"{path}: opset {got}, expected {opset}"
    ir = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    assert m.ir_version == ir, f"{path}: IR version {m.ir_version}, expected {ir}"
    assert any(n.op_type == "QuantizeLinear" for n in m.graph.node), f"{path}: no QuantizeLinear"


def main_job(model, out, overrides):
    return run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out, f"model.model_path={model}",
                   *overrides])


def inspection_opset23():
    d = tmpdir()
    model = digits_at(23, d)
    out = os.path.join(d, "out")
    main_job(model, out, ["quantization.operating_mode=inspection", "quantization.target_opset=23"])
    q = os.path.join(out, "quantized_models", "digits_op23_quant_qdq_pc.onnx")
    check_written(q, 23)
    rep = json.load(open(os.path.join(out, "inspection.json")))
    assert rep, "empty inspection report"
    top1 = ort_top1(q, os.path.join(TESTDATA, "digits_test.npz"))
    assert top1 > 80, f"quantized opset-23 model scores {top1} in onnxruntime"


def full_auto_opset23():
    d = tmpdir()
    model = digits_at(23, d)
    out = os.path.join(d, "out")
    main_job(model, out, ["quantization.target_opset=23"])
    rep = json.load(open(os.path.join(out, "full_auto.json")))
    npz = os.path.join(TESTDATA, "digits_test.npz")
    check_written(rep["int8_model"], 23)
    assert abs(ort_top1(rep["int8_model"], npz) - rep["scores"]["int8"]) <= 0.2
    written = [a for a in rep["attempts"] if a["file"]]
    assert written, "full_auto wrote no attempt"
    for a in written:
        check_written(a["file"], 23)
        got = ort_top1(a["file"], npz)
        assert abs(got - a["score"]) <= 0.2, f"{a['file']}: ORT {got} vs reported {a['score']}"


def target_below_model_opset():
    """The model is at 23, target_opset 21: the model keeps opset 23 (nothing is converted down) and the log says so."""
    d = tmpdir()
    model = digits_at(23, d)
    out = os.path.join(d, "out")
    p = main_job(model, out, ["quantization.operating_mode=default", "quantization.target_opset=21"])
    check_written(os.path.join(out, "quantized_models", "digits_op23_quant_qdq_pc.onnx"), 23)
    log = p.stderr + open(os.path.join(out, "onnxquant.log")).read()
    assert "keeping opset 23" in log and "target_opset 21" in log, log[-2000:]


def target_converts(opset):
    """An opset-13 model with target_opset 24 / 27 is converted up: that opset, its IR version, runs in onnxruntime."""
    d = tmpdir()
    out = os.path.join(d, "out")
    main_job(os.path.join(TESTDATA, "digits_resnet.onnx"), out,
             ["quantization.operating_mode=default", f"quantization.target_opset={opset}"])
    q = os.path.join(out, "quantized_models", "digits_resnet_quant_qdq_pc.onnx")
    check_written(q, opset)
    assert ort_top1(q, os.path.join(TESTDATA, "digits_test.npz")) > 80


if __name__ == "__main__":
    r = Runner()
    for v in range(22, 28):
        r.run(f"cnn opset {v}", cnn, v)
    for v in range(23, 28):
        r.run(f"qdq precision / output_dtype opset {v}", qdq, v)
        r.run(f"swish / RMSNormalization opset {v}", swish_rms, v)
    for v in (26, 27):
        r.run(f"range opset {v}", range_stash, v)
    r.run("refusals", refusals)
    r.run("inspection opset 23", inspection_opset23)
    r.run("full_auto opset 23", full_auto_opset23)
    r.run("target_opset below the model's", target_below_model_opset)
    r.run("target_opset 24 converts", target_converts, 24)
    r.run("target_opset 27 converts", target_converts, 27)
    r.finish()
