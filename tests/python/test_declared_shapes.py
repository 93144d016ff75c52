"""Declared shapes and constant graph outputs, against quant_pre_process + quantize_static and onnxruntime.

- Stale value_info: a static batch-1 model put through onnx.shape_inference (value_info at batch 1), then graph
  input / output dim 0 set to 'N' (the usual "make the batch dynamic" recipe; a valid model that onnxruntime runs at
  any batch). quant_pre_process's symbolic shape inference ignores value_info; onnxquant's inference used to let a
  declared batch-1 dim replace the inferred 'N', constant folding then made Shape(c1) a constant and the Reshape
  shape [1, -1]: the quantized model failed at batch 4 (Gemm dimension mismatch) or returned (1, 4) instead of
  (4, 4), as did `onnxquant run` on the float model. Checked: pre-processing as quant_pre_process (op histogram),
  quantize_static's wiring / names / scales (raw_parity.quantize_both_raw), the quantized model at batch 1 and 4
  in onnxruntime (optimizations off and on: its optimizer trusts value_info, so the written ones must not say
  batch 1) against ORT's quantized model, and `onnxquant run` of the float model at batch 4 against onnxruntime.
- Constant expressions writing graph outputs (detection priors Mul(const, const), a grid Concat(const, const), a
  norm / Abs / Mul of a weight, a bare Constant, a Constant-node weight also listed as an output): folded into
  initializers as quant_pre_process does, so they stay exact float (they used to get 8-bit Q/DQ, and the weight
  readers read the weight's DequantizeLinear output).
- A graph output declared without a shape: written with the inferred one, as quant_pre_process writes it (the
  full onnx.checker check requires the field).
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import BIN, run_module_tests  # noqa: E402
from raw_parity import op_counts, preprocess_both, quantize_both_raw  # noqa: E402
from test_op_parity import init, rnd  # noqa: E402

mn = helper.make_node


def vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def img(seed, n=16, hw=8):
    return np.random.default_rng(seed).standard_normal((n, 3, hw, hw)).astype(np.float32)


def made_dynamic(nodes, inits, out_shape, opset):
    """The recipe: built with batch 1, onnx.shape_inference fills value_info (batch 1), then dim 0 of the graph
    input and output becomes 'N'. onnx.checker's full check accepts it."""
    g = helper.make_graph(nodes, "g", [vi("input", [1, 3, 8, 8])], [vi("y", [1] + out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    assert any(v.type.tensor_type.shape.dim[0].dim_value == 1 for v in m.graph.value_info)
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.shape.dim[0].Clear()
        v.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.checker.check_model(m, full_check=True)
    return m


def flatten_to_gemm():
    """Conv -> Relu -> Conv -> x.view(x.size(0), -1) -> Gemm: ORT's ReshapeFusion makes the shape [0, -1]."""
    nodes = [mn("Conv", ["input", "W0", "b0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
             mn("Relu", ["c0"], ["r0"], name="relu0"),
             mn("Conv", ["r0", "W1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             mn("Shape", ["c1"], ["s"], name="shape"),
             mn("Gather", ["s", "i0"], ["n"], name="gather", axis=0),
             mn("Unsqueeze", ["n", "ax0"], ["nu"], name="unsq"),
             mn("Concat", ["nu", "m1"], ["ns"], name="concat", axis=0),
             mn("Reshape", ["c1", "ns"], ["f"], name="reshape"),
             mn("Gemm", ["f", "G", "g"], ["y"], name="gemm", transB=1)]
    inits = [init("W0", rnd(1, (4, 3, 3, 3))), init("b0", rnd(2, (4,), 0.1)), init("W1", rnd(3, (4, 4, 3, 3))),
             init("b1", rnd(4, (4,), 0.1)), init("G", rnd(5, (5, 256), 0.1)), init("g", rnd(6, (5,), 0.1)),
             init("i0", np.array(0, np.int64)), init("m1", np.array([-1], np.int64)),
             init("ax0", np.array([0], np.int64))]
    return made_dynamic(nodes, inits, [5], 17)


def slice_to_reduce():
    """Conv -> Relu -> Reshape(r0, Concat(Shape(r0)[0:-2], [-1])) -> ReduceMean(axis 2): no ORT fusion applies, the
    Shape chain stays (a batch-1 constant shape [1, 4, -1] mixed the samples of a batch of 4 into one row). The
    int64 constants differ from each other: ORT's ConstantSharing would merge equal ones (not reproduced)."""
    nodes = [mn("Conv", ["input", "W0", "b0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
             mn("Relu", ["c0"], ["r0"], name="relu"),
             mn("Shape", ["r0"], ["s"], name="shape"), mn("Slice", ["s", "st", "en"], ["nc"], name="slice"),
             mn("Concat", ["nc", "m1"], ["ns"], name="cat", axis=0),
             mn("Reshape", ["r0", "ns"], ["f"], name="reshape"),
             mn("ReduceMean", ["f", "ax"], ["y"], name="gap", keepdims=0)]
    inits = [init("W0", rnd(1, (4, 3, 3, 3))), init("b0", rnd(2, (4,), 0.1)), init("st", np.array([0], np.int64)),
             init("en", np.array([-2], np.int64)), init("m1", np.array([-1], np.int64)),
             init("ax", np.array([2], np.int64))]
    return made_dynamic(nodes, inits, [4], 18)


def session(path, optimize):
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def batch_run(path, x, optimize=False):
    return session(path, optimize).run(None, {"input": x})[0]


def check_dynamic_batch(m, opset, fused, out_shape):
    p = preprocess_both(m, img(11), fused)
    assert op_counts(p.om) == op_counts(p.pm), (op_counts(p.om), op_counts(p.pm))
    quantize_both_raw(p, opset)
    x4 = img(12, 4)
    ref = batch_run(p.raw, x4)
    assert ref.shape == (4, *out_shape), ref.shape
    for pc in ("pc", "pt"):
        ort_q = os.path.join(p.work, f"ort_{pc == 'pc'}.onnx")
        ours = os.path.join(p.work, f"oq_{pc == 'pc'}", "quantized_models", f"float_quant_qdq_{pc}.onnx")
        want = batch_run(ort_q, x4)
        for optimize in (False, True):
            one = np.concatenate([batch_run(ours, x4[i:i + 1], optimize) for i in range(4)])
            got = batch_run(ours, x4, optimize)
            assert got.shape == one.shape == (4, *out_shape), (pc, optimize, got.shape, one.shape)
            assert np.abs(got - want).max() <= np.abs(want).max() / 50, (pc, optimize, np.abs(got - want).max())
            # Sample by sample: a batch of 4 computes what four batches of 1 do (no samples mixed).
            np.testing.assert_allclose(got, one, rtol=1e-5, atol=1e-5 * np.abs(one).max())
    # `onnxquant run` on the float model at batch 4: onnxruntime's values.
    xin = os.path.join(p.work, "x4.npy")
    np.save(xin, x4)
    out = os.path.join(p.work, "run4")
    import subprocess
    r = subprocess.run([BIN, "run", p.raw, "--input", xin, "--output-dir", out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = np.load(os.path.join(out, "y.npy"))
    assert got.shape == ref.shape, (got.shape, ref.shape)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    return p


def test_stale_value_info_flatten_gemm():
    p = check_dynamic_batch(flatten_to_gemm(), 17, True, (5,))
    ns = {t.name: numpy_helper.to_array(t) for t in p.om.graph.initializer}.get("ns")
    assert ns is not None and ns.tolist() == [0, -1], ns  # ORT's ReshapeFusion shape, batch kept
    # The written value_info say what was inferred: c1 is [N, 4, 8, 8], not the declared [1, 4, 8, 8].
    c1 = next(v for v in p.om.graph.value_info if v.name == "c1")
    assert [d.dim_param or d.dim_value for d in c1.type.tensor_type.shape.dim] == ["N", 4, 8, 8], c1


def test_stale_value_info_shape_chain_kept():
    p = check_dynamic_batch(slice_to_reduce(), 18, False, (4,))
    assert op_counts(p.om)["Shape"] == 1, op_counts(p.om)


def with_outputs(extra_nodes, extra_inits, outputs):
    """conv0 -> Relu -> conv1 -> Flatten -> Gemm -> y [N, 5], plus side outputs."""
    nodes = [mn("Conv", ["input", "W0", "b0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
             mn("Relu", ["c0"], ["r0"], name="relu0"),
             mn("Conv", ["r0", "W1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             mn("Flatten", ["c1"], ["f"], name="flat"),
             mn("Gemm", ["f", "G", "g"], ["y"], name="gemm", transB=1)] + extra_nodes
    inits = [init("W0", rnd(1, (4, 3, 3, 3))), init("b0", rnd(2, (4,), 0.1)), init("W1", rnd(3, (4, 4, 3, 3))),
             init("b1", rnd(4, (4,), 0.1)), init("G", rnd(5, (5, 256), 0.1)), init("g", rnd(6, (5,), 0.1))]
    inits = [i for i in inits if i.name not in {n.output[0] for n in extra_nodes}] + extra_inits
    g = helper.make_graph(nodes, "g", [vi("input", ["N", 3, 8, 8])], [vi("y", ["N", 5])] + outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def same(got, want, what):
    """float32 `want`: the same values exactly; float64 (a sum worked out in double): within 1e-6 relative."""
    assert got.shape == want.shape and got.dtype == np.float32, (what, got.shape, got.dtype)
    if want.dtype == np.float32:
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0, err_msg=what)


def check_constant_outputs(m, want):
    """Both tools on raw model m; `want`: {output: exact float value}. The output is an initializer of that value
    in both pre-processed and both quantized models, and what onnxruntime returns for it from ours."""
    p = preprocess_both(m, img(11), True)
    assert op_counts(p.om) == op_counts(p.pm), (op_counts(p.om), op_counts(p.pm))
    quantize_both_raw(p, 17)
    for pc in ("pc", "pt"):
        ours = os.path.join(p.work, f"oq_{pc == 'pc'}", "quantized_models", f"float_quant_qdq_{pc}.onnx")
        ort_q = os.path.join(p.work, f"ort_{pc == 'pc'}.onnx")
        s = session(ours, False)
        got = dict(zip([o.name for o in s.get_outputs()], s.run(None, {"input": img(12, 2)})))
        for path in (ours, ort_q, p.pre, p.ours_pre):
            q = onnx.load(path)
            ini = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
            produced = {o for n in q.graph.node for o in n.output}
            for name, v in want.items():
                assert name not in produced and name in ini, (path, name)
                same(ini[name], v, f"{path}: {name}")
        for name, v in want.items():
            same(got[name], v, name)
    return p


def test_constant_expression_outputs():
    pri, ga, gb = np.abs(rnd(30, (20, 4), 50.0)), rnd(31, (3, 2), 1.0), rnd(32, (3, 2), 100.0)
    m = with_outputs([mn("Mul", ["pri", "stride"], ["priors"], name="pmul"),
                      mn("Concat", ["ga", "gb"], ["grid"], name="gcat", axis=0)],
                     [init("pri", pri), init("stride", np.array(8.0, np.float32)), init("ga", ga), init("gb", gb)],
                     [vi("priors", [20, 4]), vi("grid", [6, 2])])
    check_constant_outputs(m, {"priors": pri * np.float32(8), "grid": np.concatenate([ga, gb])})


def test_weight_read_by_float_output_ops():
    """W1 also read by a ReduceL2 and a Mul, G by an Abs, each writing an output: folded from the float weights
    (they used to read W1_DequantizeLinear_Output / G_DequantizeLinear_Output, and Mul got Q/DQ)."""
    m = with_outputs([mn("ReduceL2", ["W1"], ["w1norm"], name="wnorm", keepdims=1),
                      mn("Abs", ["G"], ["gabs"], name="gabs"),
                      mn("Mul", ["W1", "two"], ["w1x2"], name="wmul")],
                     [init("two", np.array(2.0, np.float32))],
                     [vi("w1norm", [1, 1, 1, 1]), vi("gabs", [5, 256]), vi("w1x2", [4, 4, 3, 3])])
    w1, g = rnd(3, (4, 4, 3, 3)), rnd(5, (5, 256), 0.1)
    norm = np.sqrt(np.sum(w1.astype(np.float64) ** 2)).reshape(1, 1, 1, 1)  # float32 sums: within 1e-6 of it
    check_constant_outputs(m, {"w1norm": norm, "gabs": np.abs(g), "w1x2": w1 * np.float32(2)})


def test_constant_node_outputs():
    """A bare Constant -> graph output, and a Constant-node weight (G) that is also a graph output: initializers,
    G still quantized as the Gemm's weight (as an initializer output already was) and exact as an output."""
    anchors, g = rnd(9, (10, 4), 30.0), rnd(5, (5, 256), 0.1)
    m = with_outputs([mn("Constant", [], ["anchors"], value=numpy_helper.from_array(anchors, "av"), name="canch"),
                      mn("Constant", [], ["G"], value=numpy_helper.from_array(g, "gv"), name="cG")], [],
                     [vi("anchors", [10, 4]), vi("G", [5, 256])])
    m.graph.node.insert(0, m.graph.node.pop())  # the Constant nodes before their readers
    m.graph.node.insert(0, m.graph.node.pop())
    p = check_constant_outputs(m, {"anchors": anchors, "G": g})
    q = onnx.load(os.path.join(p.work, "oq_True", "quantized_models", "float_quant_qdq_pc.onnx"))
    gemm = next(n for n in q.graph.node if n.op_type == "Gemm")
    assert gemm.input[1] == "G_DequantizeLinear_Output", gemm.input


def test_output_without_shape():
    m = with_outputs([], [], [])
    m.graph.output[0].type.tensor_type.ClearField("shape")
    p = preprocess_both(m, img(11))
    quantize_both_raw(p, 17)  # ours passes onnx.checker's full check
    for path in (os.path.join(p.work, f"oq_{pc}", "quantized_models", f"float_quant_qdq_{s}.onnx")
                 for pc, s in ((True, "pc"), (False, "pt"))):
        ours, theirs = onnx.load(path).graph.output[0], onnx.load(p.pre).graph.output[0]
        assert ours.type == theirs.type, (ours.type, theirs.type)  # float [N, 5]


if __name__ == "__main__":
    run_module_tests(globals())
