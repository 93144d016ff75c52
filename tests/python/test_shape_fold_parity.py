"""Shape chains on a raw model with static input shapes and no value_info, folded as quant_pre_process folds them
(its shape inference + constant folding; onnxquant: src/ir/passes/infer_shapes*.cc + fold_constants): a
Shape -> Gather -> Unsqueeze -> Concat -> Reshape flatten chain (PyTorch's `x.view(x.size(0), -1)`) before a Gemm
and before a MatMul, and an If whose condition comes from a Shape chain (inlined, its branch quantized).

Each model goes through quant_pre_process + quantize_static and through onnxquant's default mode with the same
settings (test_ort_basic_rewrites.check): the same op histogram of the pre-processed float model, the same wiring
and initializer names, the same Q/DQ counts per op type, scales and zero points within 1e-6 relative, outputs
within 1 % of the range, per channel and per tensor."""
import os
import sys
from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner  # noqa: E402
from test_op_parity import init, rnd  # noqa: E402
from test_ort_basic_rewrites import check  # noqa: E402

mn = helper.make_node


def model(nodes, inits, out_shape, opset=13):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


def conv_flatten(last):
    """conv0 -> Relu -> x.view(x.size(0), -1) -> Gemm / MatMul + Add -> y [1, 10]."""
    nodes = [mn("Conv", ["input", "W0", "B0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
             mn("Relu", ["c0"], ["r0"], name="relu0"),
             mn("Shape", ["r0"], ["s"], name="shape"),
             mn("Gather", ["s", "zero"], ["b"], name="gather", axis=0),
             mn("Unsqueeze", ["b", "ax0"], ["bu"], name="unsqueeze"),
             mn("Concat", ["bu", "minus1"], ["ns"], name="concat", axis=0),
             mn("Reshape", ["r0", "ns"], ["flat"], name="reshape")]
    inits = [init("W0", rnd(1, (4, 3, 3, 3))), init("B0", rnd(2, (4,), 0.1)), init("zero", np.int64(0)),
             init("minus1", np.array([-1], np.int64)), init("ax0", np.array([0], np.int64)), init("Wd", rnd(3, (256, 10), 0.1)),
             init("Bd", rnd(4, (10,), 0.1))]
    if last == "Gemm":
        nodes.append(mn("Gemm", ["flat", "Wd", "Bd"], ["y"], name="dense"))
    else:
        nodes += [mn("MatMul", ["flat", "Wd"], ["mm"], name="dense"), mn("Add", ["mm", "Bd"], ["y"], name="bias")]
    return model(nodes, inits, [1, 10])


def flatten_chain():
    for last in ("Gemm", "MatMul"):
        m = conv_flatten(last)
        pm = check(m, fused=True)
        ops = Counter(n.op_type for n in pm.graph.node)
        # quant_pre_process folded the chain away (and fused MatMul + Add): Conv, Relu, Reshape, Gemm.
        assert ops == Counter({"Conv": 1, "Relu": 1, "Reshape": 1, "Gemm": 1}), ops


def if_on_shape():
    """If(Shape(c0)[0] == 1): then Relu, else Sigmoid; quant_pre_process inlines the then branch."""
    then_g = helper.make_graph([mn("Relu", ["c0"], ["t"], name="then_relu")], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    else_g = helper.make_graph([mn("Sigmoid", ["c0"], ["e"], name="else_sigmoid")], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [mn("Conv", ["input", "W0", "B0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
             mn("Shape", ["c0"], ["s"], name="shape"),
             mn("Gather", ["s", "zero"], ["b"], name="gather", axis=0),
             mn("Equal", ["b", "one"], ["cond"], name="equal"),
             mn("If", ["cond"], ["m"], name="if0", then_branch=then_g, else_branch=else_g),
             mn("Conv", ["m", "W2", "B2"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    inits = [init("W0", rnd(1, (4, 3, 3, 3))), init("B0", rnd(2, (4,), 0.1)), init("zero", np.int64(0)),
             init("one", np.int64(1)), init("W2", rnd(5, (4, 4, 3, 3))), init("B2", rnd(6, (4,), 0.1))]
    m = model(nodes, inits, [1, 4, 8, 8])
    pm = check(m, fused=True)
    ops = Counter(n.op_type for n in pm.graph.node)
    assert ops == Counter({"Conv": 2, "Relu": 1}), ops


def reduce_then_dense():
    """Keras GlobalAveragePooling2D -> Dense as tf2onnx writes it: ReduceMean(keepdims=0) -> MatMul -> Add. Its
    output's rank (2) follows from the inferred shapes: MatMul + Add becomes one Gemm as in quant_pre_process."""
    for opset in (13, 18):
        axes = {"axes": [2, 3]} if opset < 18 else {}
        nodes = [mn("Conv", ["input", "W0", "B0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
                 mn("Relu", ["c0"], ["r0"], name="relu0"),
                 mn("ReduceMean", ["r0"] + (["axes"] if opset >= 18 else []), ["p"], name="gap", keepdims=0, **axes),
                 mn("MatMul", ["p", "Wd"], ["d"], name="dense"),
                 mn("Add", ["d", "Bd"], ["y"], name="dense_bias")]
        inits = [init("W0", rnd(1, (4, 3, 3, 3))), init("B0", rnd(2, (4,), 0.1)), init("Wd", rnd(3, (4, 10))),
                 init("Bd", rnd(4, (10,), 0.1))] + ([init("axes", np.array([2, 3], np.int64))] if opset >= 18 else [])
        pm = check(model(nodes, inits, [1, 10], opset), opset=opset, fused=True)
        ops = Counter(n.op_type for n in pm.graph.node)
        assert ops == Counter({"Conv": 1, "Relu": 1, "ReduceMean": 1, "Gemm": 1}), ops


def range_of_one_element_tensors():
    """Range's start / limit / delta are scalars (the spec); onnxruntime refuses constant [1] ones on load ("Input to
    'Range' op should be scalars"): initializers always, a start sliced from a Shape (x.size(1) written as Slice,
    not Gather) once its default optimizations fold it. onnxquant refuses both on load, constant folding naming the
    node (it used to fold such a Range). A [1] known only at run time still runs, as in ORT's kernel (ONNX's
    AffineGrid function body relies on it: the backend tests test_affine_grid_*_expanded)."""
    import subprocess
    from oqtest import BIN, ort_session, tmpdir
    d = tmpdir()
    x = rnd(7, (1, 3, 8, 8))
    np.save(os.path.join(d, "x.npy"), x)
    for case in ("constants", "shape"):
        start = [mn("Shape", ["c0"], ["s"], name="shape"), mn("Slice", ["s", "one", "two"], ["st"], name="slice")] \
            if case == "shape" else []
        nodes = [mn("Conv", ["input", "W0", "B0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]), *start,
                 mn("Range", ["st" if start else "zero", "lim", "one"], ["rg"], name="range"),
                 mn("Cast", ["rg"], ["rgf"], name="cast", to=TensorProto.FLOAT),
                 mn("Mul", ["c0", "rgf"], ["y"], name="mul")]
        inits = [init("W0", rnd(1, (4, 3, 3, 3))), init("B0", rnd(2, (4,), 0.1)),
                 init("zero", np.array([0], np.int64)), init("one", np.array([1], np.int64)),
                 init("two", np.array([2], np.int64)),
                 init("lim", np.array([8 if case == "constants" else 12], np.int64))]
        path = os.path.join(d, case + ".onnx")
        onnx.save(model(nodes, inits, [1, 4, 8, 8]), path)
        refusal = ""
        try:
            ort_session(path, optimize=case == "shape")
        except Exception as e:  # noqa: BLE001 - ORT's exception types vary by version
            refusal = str(e)
        assert "should be scalars" in refusal, (case, refusal)
        p = subprocess.run([BIN, "run", path, "--input", os.path.join(d, "x.npy"), "--output-dir", d],
                           capture_output=True, text=True)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(lines) == 1, (case, p.returncode, lines)
        assert "node 'range' (Range): input" in lines[0] and "is a constant of shape [1]" in lines[0], lines[0]


if __name__ == "__main__":
    r = Runner()
    r.run("Shape -> Gather -> Unsqueeze -> Concat -> Reshape before Gemm / MatMul + Add", flatten_chain)
    r.run("If on a condition from a Shape chain: inlined", if_on_shape)
    r.run("ReduceMean(keepdims=0) -> MatMul + Add: one Gemm", reduce_then_dense)
    r.run("Range of [1] tensors: refused naming the node, as onnxruntime does", range_of_one_element_tensors)
    r.finish()
