"""Initializers also listed as graph inputs (IR >= 4: values a caller may override, as older exporters write them):
ORT 1.32's quant_pre_process does not take them for constants (its optimizer warns "will not be treated as constant
value/weight"), so it leaves every rewrite that needs one undone, and quantize_static then quantizes them as the
initializers they are. onnxquant used to make them constants before its pre-processing and folded them (QA of the
fifteenth session: a Conv + Add / Mul / BatchNormalization whose constant is such an input became one Conv, where
ORT writes Conv + Add with `k_quantized`: 3 Q / 6 DQ against 2 / 4). Probed pass by pass on ORT 1.32, each case
with one initializer at a time listed as an input:
- not folded: Conv + Add / Mul (its constant, the Conv's weight or bias), Conv / ConvTranspose + BN (any BN
  parameter, the weight, the bias), MatMul + BN, Pad into Conv / AveragePool (pads, constant value), constant
  folding (an Add of two constants), no-op elimination (Add of 0), ReshapeFusion's Shape -> Gather index;
- rewritten all the same: MatMul + Add into Gemm (ORT fuses a non-constant B or C too), a ReshapeFusion constant
  piece (taken as a one-element tensor: -1), an Identity of one (removed, its readers read the input).
Same method as test_ort_fusions_more.py (raw_parity.py): the raw model through quant_pre_process + quantize_static
and through onnxquant's pre-processing and default mode, per channel and per tensor: quant_pre_process's op
histogram, ORT's wiring, names, scales and outputs. ORT's quantized model still lists the initializers that stay
float (a BN's mean, Pad's pads) among its graph inputs; onnxquant's only the real inputs (docs/conformance.md).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner  # noqa: E402
from raw_parity import op_counts, preprocess_both, quantize_both_raw  # noqa: E402
from test_op_parity import init, rnd  # noqa: E402

mn = helper.make_node
IMG = ["N", 3, 8, 8]


def model(nodes, inits, overridable=(), in_shape=IMG):
    """Input `input`, output `y`; the initializers named in `overridable` are also graph inputs (IR 8)."""
    ins = [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)]
    for t in inits:
        if t.name in overridable:
            ins.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    g = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    inferred = {o.name: o for o in onnx.shape_inference.infer_shapes(m).graph.output}
    m.graph.output[0].CopyFrom(inferred["y"])
    if not m.graph.output[0].type.tensor_type.HasField("shape"):  # a Reshape by a computed shape: rank 2
        m.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, ["y0", "y1"]))
    onnx.checker.check_model(m, full_check=True)
    return m


def check(m, folded, x_shape=(3, 8, 8)):
    """`folded`: whether quant_pre_process removes nodes (asserted first, so that a case is what it claims)."""
    x = np.random.default_rng(11).standard_normal((20,) + tuple(x_shape)).astype(np.float32)
    p = preprocess_both(m, x, folded)
    assert op_counts(p.om) == op_counts(p.pm), (op_counts(p.om), op_counts(p.pm))
    quantize_both_raw(p, 13, (True, False))
    for pc in (True, False):
        a = onnx.load(os.path.join(p.work, f"ort_{pc}.onnx"))
        b = onnx.load(os.path.join(p.work, f"oq_{pc}", "quantized_models", "float_quant_qdq_" + ("pc" if pc else "pt")
                                   + ".onnx"))
        # Ours lists the real input only; ORT's keeps the initializers that stay float (a BN's mean, Pad's pads)
        # among its graph inputs (docs/conformance.md).
        assert [i.name for i in b.graph.input] == ["input"], [i.name for i in b.graph.input]
        float_inits = {t.name for t in a.graph.initializer}
        assert all(i.name == "input" or i.name in float_inits for i in a.graph.input), a.graph.input
        p.quantized = (a, b)  # the last: per tensor
    return p


def conv(b=True):
    return mn("Conv", ["input", "W", "b"] if b else ["input", "W"], ["c"], name="conv", pads=[1, 1, 1, 1])


def base():
    return [init("W", rnd(1, (4, 3, 3, 3))), init("b", rnd(2, (4,), 0.1))]


def conv_add_mul():
    for op, k in (("Add", rnd(3, (4, 1, 1))), ("Mul", rnd(3, (4, 1, 1)) + 1.0)):
        nodes, inits = [conv(), mn(op, ["c", "k"], ["y"], name="op")], base() + [init("k", k)]
        check(model(nodes, inits), True)
        for t in ("k", "W", "b"):
            check(model(nodes, inits, [t]), False)
    check(model([conv(False), mn("Add", ["c", "k"], ["y"], name="op")], base()[:1] + [init("k", rnd(3, (4, 1, 1)))],
                ["k"]), False)


def conv_bn():
    bn = [init("s", rnd(4, (4,), 0.2) + 1), init("bb", rnd(5, (4,), 0.1)), init("bm", rnd(6, (4,), 0.1)),
          init("bv", np.abs(rnd(7, (4,), 0.2) + 1))]
    nodes = [conv(), mn("BatchNormalization", ["c", "s", "bb", "bm", "bv"], ["y"], name="bn")]
    check(model(nodes, base() + bn), True)
    for t in ("s", "bv", "W"):
        check(model(nodes, base() + bn, [t]), False)
    deconv = [mn("ConvTranspose", ["input", "Wt", "b"], ["c"], name="ct"),
              mn("BatchNormalization", ["c", "s", "bb", "bm", "bv"], ["y"], name="bn")]
    check(model(deconv, [init("Wt", rnd(8, (3, 4, 3, 3))), base()[1]] + bn, ["bm"]), False)


def matmul_fusions():
    x2 = ["N", 16]
    mm_add = [mn("MatMul", ["input", "B"], ["m"], name="mm"), mn("Add", ["m", "C"], ["y"], name="add")]
    for t in ("B", "C"):  # fused all the same, as ORT fuses a non-constant B or C
        check(model(mm_add, [init("B", rnd(9, (16, 8))), init("C", rnd(10, (8,), 0.1))], [t], x2), True, (16,))
    bn = [init("s", rnd(11, (8,), 0.2) + 1), init("bb", rnd(12, (8,), 0.1)), init("bm", rnd(13, (8,), 0.1)),
          init("bv", np.abs(rnd(14, (8,), 0.2) + 1))]
    mm_bn = [mn("MatMul", ["input", "B"], ["m"], name="mm"),
             mn("BatchNormalization", ["m", "s", "bb", "bm", "bv"], ["y"], name="bn")]
    for t in ("B", "bb"):
        check(model(mm_bn, [init("B", rnd(9, (16, 8)))] + bn, [t], x2), False, (16,))


def pad_fusions():
    pads = init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
    into_conv = [mn("Pad", ["input", "pads", "cv"], ["p"], name="pad"), mn("Conv", ["p", "W", "b"], ["y"], name="conv")]
    inits = base() + [pads, init("cv", np.array(0.0, np.float32))]
    for t in ("pads", "cv"):
        check(model(into_conv, inits, [t]), False)
    check(model(into_conv, inits, ["W"]), True)  # the Conv's own inputs do not matter to PadFusion
    check(model([mn("Pad", ["input", "pads"], ["p"], name="pad"),
                 mn("AveragePool", ["p"], ["y"], name="pool", kernel_shape=[3, 3])], [pads], ["pads"]), False)


def folding_and_noops():
    four = ["N", 4, 8, 8]
    fold = [mn("Add", ["k1", "k2"], ["s"], name="sum"), mn("Mul", ["input", "s"], ["y"], name="mul")]
    inits = [init("k1", rnd(15, (4, 1, 1))), init("k2", rnd(16, (4, 1, 1)))]
    check(model(fold, inits, ["k1"], four), False, (4, 8, 8))
    noop = [mn("Relu", ["input"], ["r"], name="relu"), mn("Add", ["r", "z"], ["y"], name="add")]
    check(model(noop, [init("z", np.zeros((1,), np.float32))], ["z"]), False)
    ident = [mn("Identity", ["k1"], ["t"], name="id"), mn("Add", ["input", "t"], ["y"], name="add")]
    check(model(ident, inits[:1], ["k1"], four), True, (4, 8, 8))


def reshape_fusion():
    # x.view(x.size(0), 192): for ORT 1.32's ReshapeFusion a graph-input piece is a one-element tensor (-1) whatever
    # its value: [0, -1] (ORT's; [0, 192] when the piece is a constant); an Unsqueeze whose axes are a graph input is
    # no longer the size(0) chain, but its one-element output still is a -1: [-1, 192].
    nodes = [mn("Shape", ["input"], ["sh"], name="shape"), mn("Gather", ["sh", "i0"], ["d0"], name="g0", axis=0),
             mn("Unsqueeze", ["d0", "ax"], ["u0"], name="unsq"), mn("Concat", ["u0", "m1"], ["ns"], name="cat", axis=0),
             mn("Reshape", ["input", "ns"], ["y"], name="rs")]
    inits = [init("i0", np.array(0, np.int64)), init("ax", np.array([0], np.int64)), init("m1", np.array([192], np.int64))]
    for ov, shape in (((), [0, 192]), (("m1",), [0, -1]), (("ax",), [-1, 192])):
        p = check(model(nodes, inits, ov), True)
        for p in (p.pm, p.om) + p.quantized:  # both pre-processed models, both quantized ones
            rs = next(n for n in p.graph.node if n.op_type == "Reshape")
            assert [list(numpy_helper.to_array(t)) for t in p.graph.initializer if t.name == rs.input[1]] == [shape]


if __name__ == "__main__":
    r = Runner()
    r.run("Conv + Add / Mul: not folded when the constant, the weight or the bias is a graph input", conv_add_mul)
    r.run("Conv / ConvTranspose + BatchNormalization: not folded when a parameter or the weight is a graph input",
          conv_bn)
    r.run("MatMul + Add fused all the same; MatMul + BatchNormalization not", matmul_fusions)
    r.run("Pad into Conv / AveragePool: not when pads or the constant value is a graph input", pad_fusions)
    r.run("constant folding, Add of 0: not on a graph input; its Identity removed", folding_and_noops)
    r.run("ReshapeFusion: a graph-input piece or Unsqueeze axes makes a -1", reshape_fusion)
    r.finish()
