"""Pairs of nodes that undo each other, removed by the pre-processing as quant_pre_process removes them (docs/
conformance.md, "ORT optimizer rewrites reproduced by the pre-processing"):

* Transpose(perm) -> chain of layout-agnostic unary ops (Relu; Sigmoid, LeakyRelu, Clip, Neg; HardSwish, Abs,
  Tanh) -> Transpose(inverse perm): ORT's transpose optimizer pushes the first through the chain and both go; the
  ops' outputs get ORT's names (`<node name>`, `<node name>_token_<n>`, `_token_<n>` for an unnamed node).
* Cast float32 -> float64 -> float32 (exact): both go.

Each case goes through quant_pre_process + quantize_static and through onnxquant (raw_parity.py): the pre-processed
float model has quant_pre_process's op histogram and computes the original's outputs exactly (bitwise, onnxruntime);
the quantized models have the same wiring node by node with ORT's names, Q/DQ counts, scales.
Left alone (the Transposes / Casts stay, outputs bitwise equal): a lossy float32 -> float16 -> float32 pair (as in
ORT), and — deliberately, where ORT's transpose optimizer rewrites — a first Transpose or a chain tensor with
another reader, non-inverse perms.
Prints "N passed, N failed"."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner  # noqa: E402
from raw_parity import op_counts, outputs, preprocess_both  # noqa: E402
from test_op_parity import img, init, rnd  # noqa: E402
from test_ort_basic_rewrites import check, make  # noqa: E402

mn = helper.make_node
NHWC, NCHW = [0, 2, 3, 1], [0, 3, 1, 2]


def t(x, y, perm, name):
    return mn("Transpose", [x], [y], name=name, perm=perm)


def exact(pre):
    """The pre-processed float model (onnxquant's) computes the original's outputs bitwise."""
    for a, b in zip(outputs(pre.raw, pre.x[:4]), outputs(pre.ours_pre, pre.x[:4])):
        assert np.array_equal(a, b), np.abs(a - b).max()


def rewritten(mid, inits=(), gone=("Transpose",), opset=13):
    pm = check(make(mid, list(inits), opset), opset)  # ORT's histogram, wiring, names, Q/DQ, outputs
    exact(preprocess_both(make(mid, list(inits), opset), img(11), True))
    for op in gone:
        assert op not in op_counts(pm), (op, op_counts(pm))
    return pm


def relu_between():
    pm = rewritten([t("c0", "t0", NHWC, "t1"), mn("Relu", ["t0"], ["r0"], name="relu_mid"),
                    t("r0", "m", NCHW, "t2")])
    assert [list(n.output) for n in pm.graph.node if n.name == "relu_mid"] == [["relu_mid"]]


def chain_with_token_names():
    # Node names that are taken tensor names get `_token_<n>`; ORT takes one more number per pushed node.
    rewritten([t("c0", "t0", NHWC, "t1"), mn("Sigmoid", ["t0"], ["fresh"], name="fresh"),
               mn("LeakyRelu", ["fresh"], ["s"], name="s", alpha=0.2),
               mn("Clip", ["s", "lo", "hi"], ["s2"], name="clip_mid"), mn("Neg", ["s2"], ["s3"], name="s3"),
               t("s3", "m", NCHW, "t2")], [init("lo", np.float32(-0.5)), init("hi", np.float32(0.7))])


def unnamed_chain():
    rewritten([t("c0", "t0", NHWC, "t1"), mn("HardSwish", ["t0"], ["h"]), mn("Abs", ["h"], ["a"]),
               mn("Tanh", ["a"], ["b"]), t("b", "m", NCHW, "t2")], opset=14)  # HardSwish: opset 14


def cast_f64_pair():
    pm = rewritten([mn("Cast", ["c0"], ["d"], name="c64", to=TensorProto.DOUBLE),
                    mn("Cast", ["d"], ["m"], name="c32", to=TensorProto.FLOAT)], gone=("Cast",))
    assert op_counts(pm)["Conv"] == 2


def left_alone(m, ort_rewrites):
    """Our pre-processing keeps every node of `m` (outputs bitwise equal); `ort_rewrites`: quant_pre_process changes
    the node count (a documented difference) or not."""
    pre = preprocess_both(m, img(11), ort_rewrites)
    raw = op_counts(m)
    for op in ("Transpose", "Cast"):
        assert op_counts(pre.om)[op] == raw[op], (op, op_counts(pre.om), raw)
    exact(pre)


def graph(nodes, inits, outs):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    return m


def not_rewritten():
    left_alone(make([mn("Cast", ["c0"], ["d"], name="c16", to=TensorProto.FLOAT16),
                     mn("Cast", ["d"], ["m"], name="c32", to=TensorProto.FLOAT)], []), False)
    w = [init("W0", rnd(1, (4, 3, 3, 3))), init("W2", rnd(5, (4, 4, 3, 3)))]
    conv0 = mn("Conv", ["input", "W0"], ["c0"], name="conv0", pads=[1, 1, 1, 1])
    conv2 = mn("Conv", ["u", "W2"], ["y"], name="conv2", pads=[1, 1, 1, 1])
    # The first Transpose's output is also read by a Sigmoid (ORT pushes anyway, keeping it for the Sigmoid).
    left_alone(graph([conv0, t("c0", "t0", NHWC, "t1"), mn("Relu", ["t0"], ["r0"], name="relu"),
                      t("r0", "u", NCHW, "t2"), conv2, mn("Sigmoid", ["t0"], ["z"], name="sig")], w, ["y", "z"]), True)
    # The Relu's output is also read by a Sigmoid.
    left_alone(graph([conv0, t("c0", "t0", NHWC, "t1"), mn("Relu", ["t0"], ["r0"], name="relu"),
                      t("r0", "u", NCHW, "t2"), conv2, mn("Sigmoid", ["r0"], ["z"], name="sig")], w, ["y", "z"]), True)
    # Perms that do not cancel (ORT merges them into one Transpose).
    left_alone(graph([conv0, t("c0", "t0", NHWC, "t1"), mn("Relu", ["t0"], ["r0"], name="relu"),
                      t("r0", "y", NHWC, "t2")], w[:1], ["y"]), True)


if __name__ == "__main__":
    r = Runner()
    r.run("Transpose -> Relu -> inverse Transpose", relu_between)
    r.run("Transpose -> Sigmoid -> LeakyRelu -> Clip -> Neg -> inverse Transpose (_token_ names)",
          chain_with_token_names)
    r.run("Transpose -> unnamed HardSwish -> Abs -> Tanh -> inverse Transpose", unnamed_chain)
    r.run("Cast float32 -> float64 -> float32", cast_f64_pair)
    r.run("left alone: lossy Cast pair, other readers, non-inverse perms", not_rewritten)
    r.finish()
