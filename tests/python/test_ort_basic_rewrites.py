"""ORT optimizer rewrites of quant_pre_process that onnxquant's pre-processing reproduces, so that default mode on the
raw model writes what quant_pre_process + quantize_static write: a Conv followed by a Mul / Add with a constant
folded into the Conv's weight / bias (ConvMulFusion / ConvAddFusion), and no-op Add 0 / Sub 0 / Mul 1 / Div 1,
Cast to the same type, Expand to the same shape and cancelling Transpose pairs removed (NoopElimination,
CastElimination, ExpandElimination, transpose optimizer).

ORT gets the raw model through quant_pre_process, then quantize_static; onnxquant gets the raw model itself. Checked
per model, per channel and per tensor: the same wiring node by node (tensor names included: ORT's
`ConvMulFusion_W_<W>`, `ConvMulFusion_Mul_B_<k>`, `ConvAddFusion_B_<B>`, `ConvAddFusion_Add_B_<k>`, `_token_<n>`),
the same initializer names, the same Q/DQ counts per op type, scales and zero points within 1e-6 relative; our model
passes onnx.checker full_check and gives ORT's outputs in onnxruntime (within 1 % of the range, as the other parity
tests). The pre-processed float model (tests/oq_preprocess_model) computes the original's outputs (1e-4 relative)
and has the same op histogram as quant_pre_process's. The cases ORT leaves alone (constant on the left, scalar Add,
[1] constants, a Conv output read twice or also a graph output, ConvTranspose; 0 - x, zeros [C,1,1]) are checked
the same way: the nodes must stay in both. Hand-computed values of the passes: tests/unit/test_ort_basic_rewrites.cc.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, tmpdir  # noqa: E402
from raw_parity import TOOL, op_counts, preprocess_both, quantize_both_raw  # noqa: E402
from test_op_parity import img, init, rnd  # noqa: E402

mn = helper.make_node


def make(mid, extra_inits, opset=13, conv_bias=True, last="y", more_outputs=(), conv_op="Conv", value_info=()):
    """input [1,3,8,8] -> conv0 (4 channels) -> `mid` (reads c0, writes m) -> Relu -> conv2 -> y."""
    inits = [init("W0", rnd(1, (3, 4, 3, 3) if conv_op == "ConvTranspose" else (4, 3, 3, 3))),
             init("W2", rnd(5, (4, 4, 3, 3))), init("B2", rnd(6, (4,), 0.1))]
    ins = ["input", "W0"]
    if conv_bias:
        inits.append(init("B0", rnd(2, (4,), 0.1)))
        ins.append("B0")
    nodes = [mn(conv_op, ins, ["c0"], name="conv0", pads=[1, 1, 1, 1])] + mid + \
            [mn("Relu", ["m"], ["r"], name="relu"), mn("Conv", ["r", "W2", "B2"], [last], name="conv2", pads=[1, 1, 1, 1])]
    outs = [helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, 4, 8, 8])]
    outs += [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, 4, 8, 8]) for o in more_outputs]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          outs, inits + extra_inits,
                          value_info=[helper.make_tensor_value_info(v, TensorProto.FLOAT, [1, 4, 8, 8]) for v in value_info])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7 if opset < 15 else 8 if opset < 21 else 10
    return m


def bn(x, y, seed, prefix):
    r = np.random.default_rng(seed)
    inits = [init(prefix + "_s", r.uniform(0.5, 1.5, 4).astype(np.float32)),
             init(prefix + "_b", r.standard_normal(4).astype(np.float32) * 0.1),
             init(prefix + "_m", r.standard_normal(4).astype(np.float32) * 0.1),
             init(prefix + "_v", r.uniform(0.5, 2, 4).astype(np.float32))]
    return mn("BatchNormalization", [x] + [prefix + s for s in ("_s", "_b", "_m", "_v")], [y], name=prefix), inits


def check(m, opset=13, fused=True, per_channel_modes=(True, False)):
    """`fused`: whether quant_pre_process changes the model (folds or removes nodes) in this case. Runs both flows
    on raw model `m` (raw_parity.py); our pre-processed model has quant_pre_process's op histogram. Returns
    quant_pre_process's float model (loaded)."""
    p = preprocess_both(m, img(11), fused)
    assert op_counts(p.om) == op_counts(p.pm), (op_counts(p.om), op_counts(p.pm))
    quantize_both_raw(p, opset, per_channel_modes)
    return p.pm


def conv_inputs(pm):
    return [list(n.input) for n in pm.graph.node if n.op_type == "Conv" and n.name == "conv0"][0]


def mul_scalar():
    pm = check(make([mn("Mul", ["c0", "k"], ["m"], name="mul")], [init("k", np.float32(0.5))]))
    assert conv_inputs(pm) == ["input", "ConvMulFusion_W_W0", "ConvMulFusion_Mul_B_k"], conv_inputs(pm)


def mul_add_per_channel():
    for opset in (13, 21):
        pm = check(make([mn("Mul", ["c0", "k"], ["m0"], name="mul"), mn("Add", ["m0", "b"], ["m"], name="add")],
                        [init("k", rnd(7, (4, 1, 1), 1.0)), init("b", rnd(8, (1, 4, 1, 1), 0.2))], opset), opset)
        assert conv_inputs(pm) == ["input", "ConvMulFusion_W_W0", "ConvAddFusion_B_ConvMulFusion_Mul_B_k"]


def add_then_mul_no_bias():
    pm = check(make([mn("Add", ["c0", "b"], ["a0"], name="add"), mn("Mul", ["a0", "k"], ["m"], name="mul")],
                    [init("k", rnd(7, (1, 4, 1, 1), 1.0)), init("b", rnd(8, (4, 1, 1), 0.2))], conv_bias=False))
    assert conv_inputs(pm) == ["input", "ConvMulFusion_W_W0", "ConvMulFusion_Mul_B_k"], conv_inputs(pm)
    pm = check(make([mn("Add", ["c0", "b"], ["m"], name="add")], [init("b", rnd(8, (4, 1, 1), 0.2))],
                    conv_bias=False))
    assert conv_inputs(pm) == ["input", "W0", "ConvAddFusion_Add_B_b"], conv_inputs(pm)


def batchnorm_chains():
    n1, i1 = bn("c0", "n0", 3, "bn")
    pm = check(make([n1, mn("Mul", ["n0", "k"], ["m"], name="mul")], i1 + [init("k", rnd(7, (4, 1, 1), 1.0))]))
    assert conv_inputs(pm) == ["input", "ConvMulFusion_W_ConvBnFusion_W_W0", "ConvMulFusion_Mul_B_k"]
    n2, i2 = bn("m0", "n0", 4, "bn")
    pm = check(make([mn("Mul", ["c0", "k"], ["m0"], name="mul"), n2, mn("Add", ["n0", "b"], ["m"], name="add")],
                    i2 + [init("k", rnd(7, (4, 1, 1), 1.0)), init("b", rnd(8, (4, 1, 1), 0.2))], conv_bias=False))
    assert conv_inputs(pm) == ["input", "ConvBnFusion_W_ConvMulFusion_W_W0", "ConvAddFusion_B_ConvBnFusion_BN_B_bn_b"]


def repeated_constant_token():
    pm = check(make([mn("Mul", ["c0", "k"], ["m0"], name="mul"), mn("Mul", ["m0", "k"], ["m"], name="mul2")],
                    [init("k", rnd(7, (4, 1, 1), 1.0))]))
    assert conv_inputs(pm) == ["input", "ConvMulFusion_W_ConvMulFusion_W_W0", "ConvMulFusion_Mul_B_k_token_0"]


def siblings_token_order():
    # Three Convs on the input sharing W and k: ORT visits them in reverse file order and names W before the bias.
    nodes, inits = [], [init("W0", rnd(1, (4, 3, 3, 3))), init("k", rnd(7, (4, 1, 1), 1.0)),
                        init("W2", rnd(5, (4, 4, 3, 3))), init("B2", rnd(6, (4,), 0.1))]
    for i in range(3):
        inits.append(init(f"B{i}0", rnd(20 + i, (4,), 0.1)))
        nodes += [mn("Conv", ["input", "W0", f"B{i}0"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
                  mn("Mul", [f"c{i}", "k"], [f"m{i}"], name=f"mul{i}")]
    nodes += [mn("Sum", ["m0", "m1", "m2"], ["m"], name="sum"), mn("Relu", ["m"], ["r"], name="relu"),
              mn("Conv", ["r", "W2", "B2"], ["y"], name="conv2b", pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    pm = check(m)
    ins = {n.output[0]: list(n.input) for n in pm.graph.node if n.op_type == "Conv"}
    assert ins["m0"] == ["input", "ConvMulFusion_W_W0_token_2", "ConvMulFusion_Mul_B_k_token_3"], ins


def fused_output_is_graph_output():
    # The Mul writes a graph output: the Conv takes its name.
    m = make([mn("Mul", ["c0", "k"], ["m"], name="mul")], [init("k", rnd(7, (4, 1, 1), 1.0))], more_outputs=["m"])
    check(m)


def left_alone():
    k = init("k", rnd(7, (4, 1, 1), 1.0))
    check(make([mn("Mul", ["k", "c0"], ["m"], name="mul")], [k]), fused=False)
    check(make([mn("Add", ["c0", "s"], ["m"], name="add")], [init("s", np.float32(0.3))]), fused=False)
    check(make([mn("Mul", ["c0", "s"], ["m"], name="mul")], [init("s", np.array([0.3], np.float32))]), fused=False)
    check(make([mn("Mul", ["c0", "k"], ["m"], name="mul")], [k], more_outputs=["c0"]), fused=False)
    check(make([mn("Mul", ["c0", "k"], ["m0"], name="mul"), mn("Sigmoid", ["c0"], ["s0"], name="sig"),
                mn("Add", ["m0", "s0"], ["m"], name="add")], [k]), fused=False)
    check(make([mn("Mul", ["c0", "k"], ["m"], name="mul")], [k], conv_op="ConvTranspose"), fused=False)


def noops():
    # c0 -> Relu -> <no-op> -> m: the no-op goes in both (ORT's NoopElimination / CastElimination / ExpandElimination).
    relu = mn("Relu", ["c0"], ["r0"], name="relu0")
    for op, k, left in (("Add", np.float32(0), False), ("Add", np.zeros(1, np.float32), True),
                        ("Sub", np.float32(0), False), ("Mul", np.ones((1, 1), np.float32), True),
                        ("Div", np.float32(1), False)):
        ins = ["k", "r0"] if left else ["r0", "k"]
        # A constant of rank 2 needs the other input's rank in the model here (ORT infers it).
        pm = check(make([relu, mn(op, ins, ["m"], name="op")], [init("k", k)], value_info=["r0"] if k.ndim > 1 else ()))
        assert op not in {n.op_type for n in pm.graph.node}, op
    check(make([relu, mn("Cast", ["r0"], ["m"], name="cast", to=TensorProto.FLOAT)], []))
    # Expand needs the input's shape in the model here (value_info); ORT infers it.
    check(make([relu, mn("Expand", ["r0", "s"], ["m"], name="expand")], [init("s", np.array([4, 1, 1], np.int64))],
               value_info=["r0"]))
    # A Transpose pair that cancels (ORT's transpose optimizer), also right after the Conv: the Mul then folds.
    check(make([relu, mn("Transpose", ["r0"], ["t0"], name="t1", perm=[0, 2, 3, 1]),
                mn("Transpose", ["t0"], ["m"], name="t2", perm=[0, 3, 1, 2])], []))
    pm = check(make([mn("Transpose", ["c0"], ["t0"], name="t1", perm=[0, 2, 3, 1]),
                     mn("Transpose", ["t0"], ["t1"], name="t2", perm=[0, 3, 1, 2]),
                     mn("Mul", ["t1", "k"], ["m"], name="mul")], [init("k", rnd(7, (4, 1, 1), 1.0))]))
    assert conv_inputs(pm) == ["input", "ConvMulFusion_W_W0", "ConvMulFusion_Mul_B_k"], conv_inputs(pm)
    # A no-op between the Conv and a per-channel Mul goes, then the Mul folds; a Mul by 1 right after the Conv is a
    # ConvMulFusion (ORT tries the Conv's rules first).
    pm = check(make([mn("Add", ["c0", "z"], ["a0"], name="add"), mn("Mul", ["a0", "k"], ["m"], name="mul")],
                    [init("z", np.float32(0)), init("k", rnd(7, (4, 1, 1), 1.0))]))
    assert conv_inputs(pm) == ["input", "ConvMulFusion_W_W0", "ConvMulFusion_Mul_B_k"], conv_inputs(pm)
    pm = check(make([mn("Mul", ["c0", "one"], ["m"], name="mul")], [init("one", np.float32(1))]))
    assert conv_inputs(pm) == ["input", "ConvMulFusion_W_W0", "ConvMulFusion_Mul_B_one"], conv_inputs(pm)


def noops_left_alone():
    relu = mn("Relu", ["c0"], ["r0"], name="relu0")
    check(make([relu, mn("Sub", ["z", "r0"], ["m"], name="sub")], [init("z", np.float32(0))]), fused=False)
    check(make([relu, mn("Add", ["r0", "z"], ["m"], name="add")], [init("z", np.zeros((4, 1, 1), np.float32))]),
          fused=False)


def float16_left_alone():
    # ORT's float16 flow is quant_pre_process(skip_optimization=True): no fusion, no no-op removal; onnxquant's
    # pre-processing keeps them too (same op histogram as that flow's output).
    m = make([mn("Mul", ["c0", "k"], ["a0"], name="mul"), mn("Add", ["a0", "z"], ["m"], name="add")],
             [init("k", rnd(7, (4, 1, 1), 1.0)), init("z", np.float32(0))])
    for t in m.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.elem_type = TensorProto.FLOAT16
    work = tmpdir()
    raw, pre, ours = (os.path.join(work, f) for f in ("f16.onnx", "pre.onnx", "ours.onnx"))
    onnx.save(m, raw)
    quant_pre_process(raw, pre, skip_optimization=True)
    r = subprocess.run([TOOL, raw, ours], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    want = op_counts(onnx.load(pre))
    assert want["Mul"] == 1 and want["Add"] == 1, want
    assert op_counts(onnx.load(ours)) == want


if __name__ == "__main__":
    r = Runner()
    r.run("Conv -> Mul by a scalar", mul_scalar)
    r.run("Conv -> Mul [C,1,1] -> Add [1,C,1,1] (opsets 13, 21)", mul_add_per_channel)
    r.run("Conv without bias -> Add -> Mul; Conv without bias -> Add", add_then_mul_no_bias)
    r.run("BatchNormalization in the chain (Conv -> BN -> Mul, Conv -> Mul -> BN -> Add)", batchnorm_chains)
    r.run("one constant on two Muls of a chain: ORT's _token_0", repeated_constant_token)
    r.run("Mul output also a graph output", fused_output_is_graph_output)
    r.run("sibling Convs sharing W and k: ORT's order of _token_ names", siblings_token_order)
    r.run("patterns both leave alone", left_alone)
    r.run("no-op Add / Sub / Mul / Div, Cast to the same type, Expand to the same shape, Transpose pair", noops)
    r.run("no-ops both keep (0 - x, zeros [C,1,1])", noops_left_alone)
    r.run("float16 model: left alone as in ORT's float16 flow (skip_optimization)", float16_left_alone)
    r.finish()
