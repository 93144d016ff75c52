"""Default mode vs ONNX Runtime 1.32's quantize_static (QDQ, after quant_pre_process) on models with If / Loop /
Scan: Conv -> If (branches with Conv / Relu reading the main graph's Conv output and a main-graph weight) -> Conv,
Conv -> Loop (body: Conv with main-graph weights on the loop-carried value, scan outputs) -> Conv, MatMul -> Scan ->
MatMul, each with EnableSubgraph False and True (ORT's QDQ quantizer ignores the option: same model). ORT
calibrates and quantizes only main-graph tensors and leaves the bodies as they are, reading the float names of
main-graph tensors that get Q/DQ. Checked: onnx.checker full_check, same wiring and tensor names as ORT's model,
same Q/DQ counts per op type, scales / zero points within 1e-6 relative, bodies identical to the float model's
(nodes, inputs, outputs, initializers), and both quantized models computing the same in onnxruntime.

The raw model of such a graph also goes through onnxquant's own pre-processing (BatchNormalization folding,
Identity / Dropout removal, constant folding, dead-code removal next to names a body reads) and is compared with
quant_pre_process + quantize_static the same way, and an opset-11 Loop model quantized at target_opset 13 must get
its body converted with the main graph; a float16 If model against ORT's float16 flow (float16 scales for the If
output); CrossLayerEqualization / SmoothQuant / BiasCorrection must leave what a body reads alone.

One deliberate difference: a Relu / Clip whose input or output a body reads is kept (ORT removes it counting only
main-graph readers, and writes a model whose body reads a tensor that no longer exists or the un-activated values).

Then inspection and full_auto on the If model run to completion; the inspection SNR of the If output is checked
against numpy on ORT's outputs of the float and written models.

Env: OQ_BIN, OQ_SOURCE_DIR.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oqtest import Runner, default_mode_config, run_oq, tmpdir  # noqa: E402
from test_op_parity import compare_with_ort, qdq_counts, quantize_both  # noqa: E402

F = TensorProto.FLOAT
N = 16


def vi(name, elem=F, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def w(name, shape, seed, s=0.3):
    return numpy_helper.from_array((np.random.default_rng(seed).standard_normal(shape) * s).astype(np.float32), name)


def c(name, v, dtype=np.float32):
    return numpy_helper.from_array(np.array(v, dtype=dtype), name)


def model(nodes, inits, in_shape, opset=13, out_shape=None):
    g = helper.make_graph(nodes, "g", [vi("input", F, in_shape)], [vi("y", F, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m  # quant_pre_process infers the shapes the checker wants; the written models get full_check


def images(seed, shape=(N, 3, 8, 8)):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    x[::2] += 1.0  # half of the samples with a positive mean: both branches of a computed If are taken
    x[1::2] -= 1.0
    return x


def if_model():
    # The then-branch also reads W2, the weight of a main-graph Conv: quantized there, kept in float for the body.
    then_g = helper.make_graph([helper.make_node("Conv", ["A", "W1", "B1"], ["t1"], pads=[0, 0, 0, 0]),
                                helper.make_node("Relu", ["t1"], ["t2"]),
                                helper.make_node("Conv", ["t2", "W2"], ["t_out"], pads=[1, 1, 1, 1])],
                               "then", [], [vi("t_out", F, [1, 4, 8, 8])])
    else_g = helper.make_graph([helper.make_node("Relu", ["A"], ["e1"]), helper.make_node("Mul", ["e1", "k"], ["e_out"])],
                               "else", [], [vi("e_out", F, [1, 4, 8, 8])], [c("k", [0.5])])
    nodes = [helper.make_node("Conv", ["input", "W0", "B0"], ["A"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0, name="mean"),
             helper.make_node("Greater", ["m", "zero"], ["cond"], name="gt"),
             helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g, name="if0"),
             helper.make_node("Conv", ["Y", "W2", "B2"], ["P"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["P", "A"], ["y"], name="add")]
    return model(nodes, [w("W0", (4, 3, 3, 3), 1), w("B0", (4,), 2), w("W1", (4, 4, 1, 1), 3), w("B1", (4,), 4),
                         w("W2", (4, 4, 3, 3), 5), w("B2", (4,), 6), c("zero", 0.0)], [1, 3, 8, 8], out_shape=[1, 4, 8, 8])


def loop_model():
    body = helper.make_graph(
        [helper.make_node("Conv", ["x", "WL", "BL"], ["x1"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["x1"], ["x2"]), helper.make_node("Add", ["x2", "A"], ["x3"]),
         helper.make_node("Identity", ["c"], ["c2"]), helper.make_node("ReduceMean", ["x3"], ["s"], axes=[2, 3], keepdims=0)],
        "body", [vi("i", TensorProto.INT64, []), vi("c", TensorProto.BOOL, []), vi("x")],
        [vi("c2", TensorProto.BOOL, []), vi("x3"), vi("s")])
    nodes = [helper.make_node("Conv", ["input", "W0", "B0"], ["A"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("Loop", ["M", "T", "A"], ["L", "S"], body=body, name="loop"),
             helper.make_node("Conv", ["L", "W2", "B2"], ["P"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("ReduceMean", ["S"], ["ss"], axes=[0], keepdims=0, name="rs"),
             helper.make_node("Unsqueeze", ["ss", "ax23"], ["ss4"], name="unsq"),
             helper.make_node("Mul", ["P", "ss4"], ["y"], name="mul")]
    return model(nodes, [w("W0", (4, 3, 3, 3), 11), w("B0", (4,), 12), w("WL", (4, 4, 3, 3), 13), w("BL", (4,), 14),
                         w("W2", (4, 4, 3, 3), 15), w("B2", (4,), 16), c("M", 3, np.int64), c("T", True, np.bool_),
                         c("ax23", [2, 3], np.int64)], [1, 3, 8, 8])


def scan_model():
    body = helper.make_graph(
        [helper.make_node("MatMul", ["row", "WS"], ["r1"]), helper.make_node("Add", ["h", "r1"], ["h2"]),
         helper.make_node("Tanh", ["h2"], ["h3"]), helper.make_node("Identity", ["h3"], ["o"])],
        "body", [vi("h", F, [1, 6]), vi("row", F, [1, 6])], [vi("h3", F, [1, 6]), vi("o", F, [1, 6])])
    nodes = [helper.make_node("MatMul", ["input", "W0"], ["A"], name="mm0"),
             helper.make_node("Scan", ["h0", "A"], ["H", "O"], body=body, num_scan_inputs=1, name="scan",
                              scan_input_directions=[1], scan_input_axes=[1], scan_output_axes=[1]),
             helper.make_node("MatMul", ["O", "W2"], ["P"], name="mm2"),
             helper.make_node("Add", ["P", "H"], ["y"], name="add")]
    return model(nodes, [w("W0", (5, 6), 21), w("WS", (6, 6), 22), w("W2", (6, 6), 23), c("h0", np.zeros((1, 6)))],
                 [1, 4, 5])


def body_graphs(m):
    """{(node outputs, attribute): body as (nodes, initializers)} of every control-flow node, recursively."""
    r = {}

    def walk(g, prefix):
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    key = prefix + (tuple(n.output), a.name)
                    r[key] = ([(x.op_type, tuple(x.input), tuple(x.output)) for x in a.g.node],
                              {t.name: numpy_helper.to_array(t).tobytes() for t in a.g.initializer})
                    walk(a.g, key)
    walk(m.graph, ())
    return r


def run_ort(path, x, key="input"):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {key: x[i:i + 1]})[0] for i in range(len(x))])


def parity(make, x, enable_subgraph):
    m = make()
    ort_out, ours, pre = quantize_both(m, x, per_channel=True, extra={"EnableSubgraph": enable_subgraph})
    a, b = compare_with_ort(ort_out, ours)
    assert qdq_counts(a) == qdq_counts(b), f"Q/DQ per op type: ORT {qdq_counts(a)} vs ours {qdq_counts(b)}"
    qa = sum(n.op_type == "QuantizeLinear" for n in a.graph.node)
    assert qa > 0 and qa == sum(n.op_type == "QuantizeLinear" for n in b.graph.node)
    bodies_float, bodies_a, bodies_b = body_graphs(onnx.load(pre)), body_graphs(a), body_graphs(b)
    assert bodies_float and bodies_a == bodies_float, "ORT changed a body (test premise)"
    assert bodies_b == bodies_float, "onnxquant changed a body"
    # Every name a body reads from the main graph still exists there, as the float tensor (not a Q/DQ output).
    produced = {o for n in b.graph.node for o in n.output} | {t.name for t in b.graph.initializer} | \
        {i.name for i in b.graph.input}
    for n in b.graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                inner = {o for bn in a.g.node for o in bn.output} | {t.name for t in a.g.initializer} | \
                    {i.name for i in a.g.input}
                for bn in a.g.node:
                    for i in bn.input:
                        assert not i or i in inner or i in produced, f"body of {n.name} reads missing '{i}'"
    got, want = run_ort(ours, x), run_ort(ort_out, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    ref = run_ort(pre, x)
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max() + 1e-3, "quantized model far from the float one"
    return a, b


def quantize_oq(m, x, name="raw", **config):
    """The raw model `m` through onnxquant's default mode (its own pre-processing), calibrated on `x`; `config`
    goes to default_mode_config. Returns (written model path, raw model path); the written model passed full_check."""
    work = tmpdir()
    raw = os.path.join(work, name + ".onnx")
    onnx.save(m, raw)
    np.savez(os.path.join(work, "calib.npz"), input=x)
    cfg = os.path.join(work, "c.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(raw, os.path.join(work, "calib.npz"), **config))
    run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq"), "--threads", "1"])
    ours = os.path.join(work, "oq", "quantized_models", name + "_quant_qdq_pc.onnx")
    onnx.checker.check_model(onnx.load(ours), full_check=True)
    return ours, raw


def raw_model_preprocessing():
    """The raw model through onnxquant's own pre-processing (ORT's model: quant_pre_process + quantize_static) with
    the patterns its passes rewrite next to names a body reads: Conv -> BatchNormalization (folded) -> Identity
    (removed) -> Dropout (removed), a Constant node and an initializer read only by the body (kept), the body
    reading the BatchNormalization, Identity and Dropout outputs (ORT keeps those nodes too: it cannot rename a
    name a body reads). Same wiring, initializers, scales, bodies and outputs."""
    then_g = helper.make_graph(
        [helper.make_node("Add", ["Bn", "I"], ["t1"]), helper.make_node("Mul", ["t1", "kc"], ["t2"]),
         helper.make_node("Add", ["t2", "D"], ["t3"]), helper.make_node("Add", ["t3", "WB"], ["t_out"])],
        "then", [], [vi("t_out", F, [1, 4, 8, 8])])
    else_g = helper.make_graph([helper.make_node("Neg", ["I"], ["e_out"])], "else", [], [vi("e_out", F, [1, 4, 8, 8])])
    nodes = [helper.make_node("Conv", ["input", "W0", "B0"], ["A"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("BatchNormalization", ["A", "g", "b", "mu", "var"], ["Bn"], name="bn"),
             helper.make_node("Identity", ["Bn"], ["I"], name="ident"),
             helper.make_node("Dropout", ["I"], ["D"], name="drop"),
             helper.make_node("Constant", [], ["kc"], name="kconst", value=c("kv", [0.5])),
             helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0, name="mean"),
             helper.make_node("Greater", ["m", "zero"], ["cond"], name="gt"),
             helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g, name="if0"),
             helper.make_node("Conv", ["Y", "W2", "B2"], ["P"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["P", "D"], ["y"], name="add")]
    rng = np.random.default_rng(41)
    m = model(nodes, [w("W0", (4, 3, 3, 3), 42), w("B0", (4,), 43), c("g", rng.uniform(0.5, 1.5, 4)),
                      c("b", rng.uniform(-0.2, 0.2, 4)), c("mu", rng.uniform(-0.2, 0.2, 4)),
                      c("var", rng.uniform(0.5, 1.5, 4)), w("WB", (1, 4, 1, 1), 44), w("W2", (4, 4, 3, 3), 45),
                      w("B2", (4,), 46), c("zero", 0.0)], [1, 3, 8, 8], out_shape=[1, 4, 8, 8])
    x = images(47)
    ort_out, _, _ = quantize_both(m, x)  # ORT: quant_pre_process + quantize_static
    ours, raw = quantize_oq(m, x)
    a, b = compare_with_ort(ort_out, ours)  # wiring, initializer names, scales / zero points
    assert qdq_counts(a) == qdq_counts(b), f"Q/DQ per op type: ORT {qdq_counts(a)} vs ours {qdq_counts(b)}"
    assert body_graphs(a) == body_graphs(b), "bodies differ from ORT's"
    got, want, ref = run_ort(ours, x), run_ort(ort_out, x), run_ort(raw, x)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max() + 1e-3
    return a, b


def old_opset_bodies_converted():
    """An opset-11 Loop whose body uses ReduceSum / Unsqueeze with `axes` attributes (inputs from opset 13), quantized
    with target_opset 13: the body is converted with the main graph; the model passes full_check, keeps opset 13
    in its bodies' nodes and computes close to the float model in onnxruntime."""
    body = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], axes=[2, 3], keepdims=0),
         helper.make_node("Unsqueeze", ["s"], ["u"], axes=[2, 3]),
         helper.make_node("Mul", ["u", "k"], ["uk"]), helper.make_node("Add", ["x", "uk"], ["x2"]),
         helper.make_node("Identity", ["c"], ["c2"])],
        "body", [vi("i", TensorProto.INT64, []), vi("c", TensorProto.BOOL, []), vi("x", F, [1, 4, 8, 8])],
        [vi("c2", TensorProto.BOOL, []), vi("x2", F, [1, 4, 8, 8])], [c("k", [0.01])])
    nodes = [helper.make_node("Conv", ["input", "W0", "B0"], ["A"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("Loop", ["M", "T", "A"], ["L"], body=body, name="loop"),
             helper.make_node("Conv", ["L", "W2", "B2"], ["y"], pads=[1, 1, 1, 1], name="conv2")]
    m = model(nodes, [w("W0", (4, 3, 3, 3), 51), w("B0", (4,), 52), w("W2", (4, 4, 3, 3), 53), w("B2", (4,), 54),
                      c("M", 2, np.int64), c("T", True, np.bool_)], [1, 3, 8, 8], opset=11, out_shape=[1, 4, 8, 8])
    m.ir_version = 6
    x = images(55)
    ours, raw = quantize_oq(m, x, name="old", opset=13)
    q = onnx.load(ours)
    assert [o.version for o in q.opset_import if o.domain in ("", "ai.onnx")] == [13]
    loop = [n for n in q.graph.node if n.op_type == "Loop"][0]
    bnodes = {n.op_type: n for n in loop.attribute[0].g.node}
    assert len(bnodes["ReduceSum"].input) == 2 and len(bnodes["Unsqueeze"].input) == 2, "body not converted"
    assert not any(a.name == "axes" for n in bnodes.values() for a in n.attribute)
    got, ref = run_ort(ours, x), run_ort(raw, x)
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max() + 1e-3


def bodies_converted_with_outer_types():
    """Body rewrites that need what the enclosing graph knows: an opset-9 attribute-form Clip in an If branch reading
    the main graph's Conv output (its min / max become inputs typed like that output) converted to 13, and a
    GroupNormalization-18 in a branch on a 6-channel Conv output with the main graph's per-group scale / bias
    (repeated per channel at 21) converted to 21. Both quantized models pass full_check and compute close to the
    float model in onnxruntime (which runs the original opsets), on samples taking both branches."""
    mn = helper.make_node
    cases = [(9, 13, 4, mn("Clip", ["A"], ["t_out"], min=0.0, max=3.0)),
             (18, 21, 6, mn("GroupNormalization", ["A", "gs", "gb"], ["t_out"], num_groups=3))]
    for opset, target, ch, body_node in cases:
        tb = helper.make_graph([body_node], "then", [], [vi("t_out", F, [1, ch, 8, 8])])
        eb = helper.make_graph([mn("Neg", ["A"], ["e_out"])], "else", [], [vi("e_out", F, [1, ch, 8, 8])])
        nodes = [mn("Conv", ["input", "W0", "B0"], ["A"], pads=[1, 1, 1, 1], name="conv0"),
                 mn("ReduceMean", ["input"], ["m"], keepdims=0, name="mean"),
                 mn("Greater", ["m", "zero"], ["cond"], name="gt"),
                 mn("If", ["cond"], ["Y"], then_branch=tb, else_branch=eb, name="if0"),
                 mn("Conv", ["Y", "W2", "B2"], ["y"], pads=[1, 1, 1, 1], name="conv2")]
        m = model(nodes, [w("W0", (ch, 3, 3, 3), 91), w("B0", (ch,), 92), w("W2", (4, ch, 3, 3), 93), w("B2", (4,), 94),
                          numpy_helper.from_array(np.linspace(0.5, 1.5, 3).astype(np.float32), "gs"),
                          numpy_helper.from_array(np.linspace(-0.2, 0.2, 3).astype(np.float32), "gb"),
                          c("zero", 0.0)], [1, 3, 8, 8], opset=opset, out_shape=[1, 4, 8, 8])
        if opset < 10:
            m.ir_version = 4
        x = images(95) + np.where(np.arange(N) % 2, 1.0, -1.0).astype(np.float32)[:, None, None, None]
        ours, raw = quantize_oq(m, x, name=f"cv{opset}", opset=target)
        q = onnx.load(ours)
        assert [o.version for o in q.opset_import if o.domain in ("", "ai.onnx")] == [target]
        body = [a.g for n in q.graph.node if n.op_type == "If" for a in n.attribute if a.name == "then_branch"][0]
        if opset == 9:
            assert len(body.node[0].input) == 3 and not body.node[0].attribute, "Clip not converted to inputs"
        else:
            scale = {t.name: t for t in body.initializer}[body.node[0].input[1]]
            assert list(scale.dims) == [6], "GroupNormalization scale not per channel"
        got, ref = run_ort(ours, x), run_ort(raw, x)
        assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max() + 1e-3, f"opset {opset} -> {target}: far from float"


def float_rewrites_leave_body_values():
    """CrossLayerEqualization, SmoothQuant and BiasCorrection rescale weights and activations of the float model;
    an activation or weight an If body reads must be left alone (the body would read scaled values). Conv1 (channel
    ranges 1000x apart: equalization would scale them strongly) -> Relu R -> Conv2 (W2), the body reading R and W2."""
    then_g = helper.make_graph([helper.make_node("Conv", ["R", "W2"], ["t_out"], pads=[1, 1, 1, 1])], "then", [],
                               [vi("t_out", F, [1, 4, 8, 8])])
    else_g = helper.make_graph([helper.make_node("Mul", ["R", "k"], ["e_out"])], "else", [],
                               [vi("e_out", F, [1, 4, 8, 8])], [c("k", [0.5])])
    nodes = [helper.make_node("Conv", ["input", "W1", "B1"], ["A"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["A"], ["R"], name="relu"),
             helper.make_node("Conv", ["R", "W2", "B2"], ["P"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0, name="mean"),
             helper.make_node("Greater", ["m", "zero"], ["cond"], name="gt"),
             helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g, name="if0"),
             helper.make_node("Add", ["P", "Y"], ["y"], name="add")]
    w1 = np.random.default_rng(61).standard_normal((4, 3, 3, 3)).astype(np.float32)
    w1 *= np.array([30.0, 0.03, 1.0, 3.0], np.float32)[:, None, None, None]
    m = model(nodes, [numpy_helper.from_array(w1, "W1"), w("B1", (4,), 62), w("W2", (4, 4, 3, 3), 63),
                      w("B2", (4,), 64), c("zero", 0.0)], [1, 3, 8, 8], out_shape=[1, 4, 8, 8])
    x = images(65)
    ours, raw = quantize_oq(m, x, name="rw", act="Int16", opset=21,
                            extra={"CrossLayerEqualization": True, "SmoothQuant": True, "BiasCorrection": True})
    got, ref = run_ort(ours, x), run_ort(raw, x)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < 0.02, f"written model off by {err:.3f} of the output range (a body read rescaled values?)"


def float16_if():
    """A float16 Conv -> If -> Conv model against ORT's float16 flow (quant_pre_process(skip_optimization) +
    quantize_static): the If output is a float16 tensor, its Q/DQ take float16 scales (test_float16's checks)."""
    import test_float16 as t16
    H = TensorProto.FLOAT16

    def build():
        then_g = helper.make_graph([helper.make_node("Conv", ["A", "W1", "B1"], ["t1"]),
                                    helper.make_node("Relu", ["t1"], ["t_out"])], "then", [],
                                   [helper.make_tensor_value_info("t_out", H, [1, 4, 8, 8])])
        else_g = helper.make_graph([helper.make_node("Relu", ["A"], ["e_out"])], "else", [],
                                   [helper.make_tensor_value_info("e_out", H, [1, 4, 8, 8])])
        nodes = [t16.conv("input", "A", "W0", "B0", "conv0"),
                 helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0, name="mean"),
                 helper.make_node("Greater", ["m", "zero"], ["cond"], name="gt"),
                 helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g, name="if0"),
                 t16.conv("Y", "y", "W2", "B2", "conv2")]
        inits = [t16.init("W0", t16.rnd(1, (4, 3, 3, 3))), t16.init("B0", t16.rnd(2, (4,))),
                 t16.init("W1", t16.rnd(3, (4, 4, 1, 1))), t16.init("B1", t16.rnd(4, (4,))),
                 t16.init("W2", t16.rnd(5, (4, 4, 3, 3))), t16.init("B2", t16.rnd(6, (4,))),
                 t16.init("zero", np.array(0, np.float16))]
        return t16.model(nodes, inits, [1, 3, 8, 8], [1, 4, 8, 8]), [1, 3, 8, 8]
    a, b = t16.same_as_ort("float16 If", build)
    y_scale = {t.name: t for t in b.graph.initializer}["Y_scale"]
    assert y_scale.data_type == H, "the If output's scale must be float16"


def constant_condition_inlined():
    """quant_pre_process inlines an If whose condition is constant (ORT's constant folding): here one on a True
    initializer and one on Shape(input)[3] < 5 (False once the Shape is folded: width 8), the taken branches with Conv / Relu /
    Mul nodes and their own initializers. onnxquant's pre-processing does the same with ORT's names; default mode on
    the raw model must give quantize_static's model on the pre-processed one (same wiring, names, scales)."""
    then1 = helper.make_graph([helper.make_node("Conv", ["A", "W1", "B1"], ["t1"]),
                               helper.make_node("Relu", ["t1"], ["t2"]), helper.make_node("Mul", ["t2", "k"], ["t_out"])],
                              "then", [], [vi("t_out", F, [1, 4, 8, 8])], [c("k", [0.5])])
    else1 = helper.make_graph([helper.make_node("Neg", ["A"], ["e_out"])], "else", [], [vi("e_out", F, [1, 4, 8, 8])])
    then2 = helper.make_graph([helper.make_node("Sigmoid", ["Y1"], ["s_out"])], "then", [], [vi("s_out", F, [1, 4, 8, 8])])
    else2 = helper.make_graph([helper.make_node("Conv", ["Y1", "W3"], ["u1"], pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["u1"], ["u_out"])], "else", [], [vi("u_out", F, [1, 4, 8, 8])])
    nodes = [helper.make_node("Conv", ["input", "W0", "B0"], ["A"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("If", ["T"], ["Y1"], then_branch=then1, else_branch=else1, name="if_true"),
             helper.make_node("Shape", ["input"], ["shp"], name="shape"),
             helper.make_node("Gather", ["shp", "three"], ["n"], name="gather"),
             helper.make_node("Less", ["n", "hundred"], ["small"], name="less"),
             helper.make_node("If", ["small"], ["Y2"], then_branch=then2, else_branch=else2, name="if_size"),
             helper.make_node("Conv", ["Y2", "W2", "B2"], ["y"], pads=[1, 1, 1, 1], name="conv2")]
    m = model(nodes, [w("W0", (4, 3, 3, 3), 71), w("B0", (4,), 72), w("W1", (4, 4, 1, 1), 73), w("B1", (4,), 74),
                      w("W2", (4, 4, 3, 3), 75), w("B2", (4,), 76), w("W3", (4, 4, 3, 3), 77),
                      c("T", True, np.bool_), c("hundred", 5, np.int64),
                      c("three", 3, np.int64)], [1, 3, 8, 8], out_shape=[1, 4, 8, 8])
    x = images(78)
    ort_out, _, pre = quantize_both(m, x)
    assert not any(n.op_type == "If" for n in onnx.load(pre).graph.node), "ORT no longer inlines (test premise)"
    ours, raw = quantize_oq(m, x)
    a, b = compare_with_ort(ort_out, ours)
    assert qdq_counts(a) == qdq_counts(b) and "Conv" in qdq_counts(b)
    assert not any(n.op_type == "If" for n in b.graph.node)
    np.testing.assert_allclose(run_ort(ours, x), run_ort(ort_out, x), rtol=1e-4, atol=1e-4)


def nested_constant_ifs_inlined():
    """An If on a constant condition whose taken branch holds another If on a constant condition, once a branch
    initializer and once the main graph's initializer: ORT's optimizer inlines the inner If inside the branch first
    (names `_if_then_branch_...` there), then the outer one (prefixed again); the inner branch's Conv is then a
    main-graph node that quantize_static quantizes. Same wiring, names, Q/DQ and scales as ORT's model."""
    mn = helper.make_node
    for cond in ("bT", "T"):
        it = helper.make_graph([mn("Conv", ["t1", "W1"], ["it_out"], pads=[1, 1, 1, 1]), mn("Relu", ["it_out"], ["it2"])],
                               "it", [], [vi("it2", F, [1, 4, 8, 8])])
        ie = helper.make_graph([mn("Neg", ["t1"], ["ie_out"])], "ie", [], [vi("ie_out", F, [1, 4, 8, 8])])
        tb = helper.make_graph([mn("Sigmoid", ["A"], ["t1"]), mn("If", [cond], ["t_out"], then_branch=it, else_branch=ie)],
                               "then", [], [vi("t_out", F, [1, 4, 8, 8])], [c("bT", True, np.bool_)])
        eb = helper.make_graph([mn("Neg", ["A"], ["e_out"])], "else", [], [vi("e_out", F, [1, 4, 8, 8])])
        nodes = [mn("Conv", ["input", "W0", "B0"], ["A"], pads=[1, 1, 1, 1], name="conv0"),
                 mn("If", ["T"], ["Y"], then_branch=tb, else_branch=eb, name="outer_if"),
                 mn("Conv", ["Y", "W2", "B2"], ["y"], pads=[1, 1, 1, 1], name="conv2")]
        m = model(nodes, [w("W0", (4, 3, 3, 3), 81), w("B0", (4,), 82), w("W1", (4, 4, 3, 3), 83),
                          w("W2", (4, 4, 3, 3), 85), w("B2", (4,), 86), c("T", True, np.bool_)], [1, 3, 8, 8],
                  out_shape=[1, 4, 8, 8])
        x = images(87)
        ort_out, _, pre = quantize_both(m, x)
        assert not any(n.op_type == "If" for n in onnx.load(pre).graph.node), "ORT no longer inlines (test premise)"
        ours, raw = quantize_oq(m, x)
        a, b = compare_with_ort(ort_out, ours)
        assert qdq_counts(a) == qdq_counts(b), f"Q/DQ per op type: ORT {qdq_counts(a)} vs ours {qdq_counts(b)}"
        assert sum(n.op_type == "Conv" for n in b.graph.node) == 3 and not any(n.op_type == "If" for n in b.graph.node)
        node_names = [sorted(n.name for n in q.graph.node if "Linear" not in n.op_type) for q in (a, b)]
        assert node_names[0] == node_names[1], f"node names: ORT {node_names[0]} vs ours {node_names[1]}"
        np.testing.assert_allclose(run_ort(ours, x), run_ort(ort_out, x), rtol=1e-4, atol=1e-4)


def noop_read_by_body():
    """An Identity / Add of 0 / same-type Cast whose output I the If's branches read: ORT's optimizer removes the node
    and renames the branches' reads to the node's input A, unless a branch of that If already reads (or has) a value
    named A (then the node stays). Both cases against quant_pre_process + quantize_static: wiring, Q/DQ, scales, the
    bodies as ORT writes them. The If's threshold is 0.01, not 0: ORT would share an equal constant with z0."""
    mn = helper.make_node
    noops = {"Identity": (mn("Identity", ["A"], ["I"], name="noop"), []),
             "Add 0": (mn("Add", ["A", "z0"], ["I"], name="noop"), [c("z0", 0.0)]),
             "Cast": (mn("Cast", ["A"], ["I"], to=TensorProto.FLOAT, name="noop"), [])}
    for label, (noop, extra) in noops.items():
        for reads in (["I"], ["A"], ["A", "I"]):
            body = mn("Add", reads, ["t_out"]) if len(reads) == 2 else mn("Neg", reads, ["t_out"])
            tb = helper.make_graph([body], "then", [], [vi("t_out", F, [1, 4, 8, 8])])
            eb = helper.make_graph([mn("Neg", ["I"], ["e_out"])], "else", [], [vi("e_out", F, [1, 4, 8, 8])])
            nodes = [mn("Conv", ["input", "W0", "B0"], ["A0"], pads=[1, 1, 1, 1], name="conv0"),
                     mn("Sigmoid", ["A0"], ["A"], name="sig"), noop,
                     mn("ReduceMean", ["input"], ["m"], keepdims=0, name="mean"),
                     mn("Greater", ["m", "zero"], ["cond"], name="gt"),
                     mn("If", ["cond"], ["Y"], then_branch=tb, else_branch=eb, name="if0"),
                     mn("Conv", ["I", "W2", "B2"], ["P"], pads=[1, 1, 1, 1], name="conv2"),
                     mn("Add", ["P", "Y"], ["y"], name="add")]
            m = model(nodes, [w("W0", (4, 3, 3, 3), 101), w("B0", (4,), 102), w("W2", (4, 4, 3, 3), 103),
                              w("B2", (4,), 104), c("zero", 0.01)] + extra, [1, 3, 8, 8], out_shape=[1, 4, 8, 8])
            x = images(105)
            ort_out, _, pre = quantize_both(m, x)
            ours, raw = quantize_oq(m, x)
            a, b = compare_with_ort(ort_out, ours)
            tag = f"{label}, branch reads {reads}"
            assert qdq_counts(a) == qdq_counts(b), f"{tag}: Q/DQ ORT {qdq_counts(a)} vs ours {qdq_counts(b)}"
            assert body_graphs(a) == body_graphs(b), f"{tag}: bodies differ from ORT's"
            kept = any(n.name == "noop" for n in onnx.load(pre).graph.node)
            assert kept == ("A" in reads), f"{tag}: ORT {'kept' if kept else 'removed'} the node (premise)"
            np.testing.assert_allclose(run_ort(ours, x), run_ort(ort_out, x), rtol=1e-4, atol=1e-4)


def relu_read_by_body():
    """Conv -> Relu -> Conv where an If body reads the Relu's output: onnxquant keeps the Relu (ORT drops it and its
    body then reads the Conv's raw output)."""
    then_g = helper.make_graph([helper.make_node("Mul", ["R", "k2"], ["t_out"])], "then", [], [vi("t_out")],
                               [c("k2", [2.0])])
    else_g = helper.make_graph([helper.make_node("Neg", ["R"], ["e_out"])], "else", [], [vi("e_out")])
    nodes = [helper.make_node("Conv", ["input", "W0", "B0"], ["A"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("Relu", ["A"], ["R"], name="relu"),
             helper.make_node("Conv", ["R", "W2", "B2"], ["Z"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0, name="mean"),
             helper.make_node("Greater", ["m", "zero"], ["cond"], name="gt"),
             helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g, name="if0"),
             helper.make_node("Add", ["Y", "Z"], ["y"], name="add")]
    m = model(nodes, [w("W0", (4, 3, 3, 3), 31), w("B0", (4,), 32), w("W2", (4, 4, 3, 3), 33), w("B2", (4,), 34),
                      c("zero", 0.0)], [1, 3, 8, 8])
    x = images(7)
    ort_out, ours, pre = quantize_both(m, x)
    a, b = onnx.load(ort_out), onnx.load(ours)
    assert not any(n.op_type == "Relu" for n in a.graph.node), "ORT 1.32 keeps the Relu now: revisit the difference"
    relu = [n for n in b.graph.node if n.op_type == "Relu"]
    assert len(relu) == 1 and relu[0].output[0] == "R", "the Relu read by the body must stay, writing 'R'"
    assert relu[0].input[0].endswith("_DequantizeLinear_Output")
    got, ref = run_ort(ours, x), run_ort(pre, x)
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max() + 1e-3
    bad = run_ort(ort_out, x)  # ORT's model: the body sees negative values of the Conv output
    assert np.abs(bad - ref).max() > np.abs(got - ref).max(), "ORT's model should be the worse one"


def inspection_and_full_auto():
    work = tmpdir()
    path = os.path.join(work, "ifm.onnx")
    onnx.checker.check_model(if_model(), full_check=True)
    onnx.save(if_model(), path)
    x = images(9)
    np.savez(os.path.join(work, "calib.npz"), x=x, y=np.arange(N) % 4)
    cfg = os.path.join(work, "insp.yaml")
    with open(cfg, "w") as f:
        f.write(f"""model: {{model_path: {path}}}
dataset: {{quantization_path: {work}/calib.npz, test_path: {work}/calib.npz}}
preprocessing: {{rescaling: {{scale: 1, offset: 0}}}}
quantization:
  granularity: per_tensor
  operating_mode: inspection
  onnx_quant_parameters: {{weightType: Int8, activType: Int8, calibrate_method: MinMax}}
  onnx_extra_options: {{WeightSymmetric: True, ActivationSymmetric: False}}
""")
    run_oq(["--config", cfg, "--output-dir", os.path.join(work, "insp"), "--threads", "1"])
    rep = json.load(open(os.path.join(work, "insp", "inspection.json")))
    entry = [t for t in rep["tensors"] if t["name"] == "Y"]
    assert entry, "inspection should report the If output Y"
    qm = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(work, "insp")) for f in fs
          if f.endswith("_quant_qdq_pt.onnx")]
    assert qm, "inspection wrote no model"

    # SNR of Y: the float model's Y against the written model's dequantized Y, both run by ORT.
    def with_output(p, name):
        m = onnx.load(p)
        m.graph.output.append(helper.make_tensor_value_info(name, F, None))
        return m.SerializeToString()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    fs = ort.InferenceSession(with_output(path, "Y"), so, providers=["CPUExecutionProvider"])
    qs = ort.InferenceSession(with_output(qm[0], "Y_DequantizeLinear_Output"), so, providers=["CPUExecutionProvider"])
    ref = np.concatenate([fs.run(["Y"], {"input": x[i:i + 1]})[0].ravel() for i in range(N)]).astype(np.float64)
    q = np.concatenate([qs.run(["Y_DequantizeLinear_Output"], {"input": x[i:i + 1]})[0].ravel()
                        for i in range(N)]).astype(np.float64)
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - q) ** 2))
    assert abs(entry[0]["snr_xmodel_db"] - snr) < 0.1, f"inspection SNR {entry[0]['snr_xmodel_db']} vs numpy {snr:.3f} dB"

    cfg2 = os.path.join(work, "fa.yaml")
    with open(cfg2, "w") as f:
        f.write(open(cfg).read().replace("operating_mode: inspection", "operating_mode: full_auto\n  target_opset: 21"))
    p = run_oq(["--config", cfg2, "--output-dir", os.path.join(work, "fa"), "--threads", "1"], check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    written = [os.path.join(dp, f) for dp, _, fs2 in os.walk(os.path.join(work, "fa")) for f in fs2
               if f.endswith(".onnx") and "_qdq" in f]
    assert written, "full_auto wrote no QDQ model"
    for pth in written:
        onnx.checker.check_model(onnx.load(pth), full_check=True)
        out = run_ort(pth, x)
        ref = run_ort(path, x)
        assert np.abs(out - ref).max() < 0.25 * np.abs(ref).max() + 1e-3, f"{pth}: far from the float model"


if __name__ == "__main__":
    r = Runner()
    for es in (False, True):
        r.run(f"Conv -> If -> Conv (EnableSubgraph {es})", parity, if_model, images(1), es)
        r.run(f"Conv -> Loop -> Conv (EnableSubgraph {es})", parity, loop_model, images(2), es)
        r.run(f"MatMul -> Scan -> MatMul (EnableSubgraph {es})", parity, scan_model,
              np.random.default_rng(3).standard_normal((N, 4, 5)).astype(np.float32), es)
    r.run("raw model through onnxquant's pre-processing", raw_model_preprocessing)
    r.run("opset-11 bodies converted to 13 with the model", old_opset_bodies_converted)
    r.run("body conversion sees the enclosing graph's types and constants", bodies_converted_with_outer_types)
    r.run("CLE / SmoothQuant / BiasCorrection leave what bodies read", float_rewrites_leave_body_values)
    r.run("float16 If model", float16_if)
    r.run("If on a constant condition inlined as quant_pre_process does", constant_condition_inlined)
    r.run("constant-condition If nested in a taken branch inlined too", nested_constant_ifs_inlined)
    r.run("Relu read by a body is kept", relu_read_by_body)
    r.run("no-op read by a body removed and the body renamed as ORT", noop_read_by_body)
    r.run("inspection and full_auto on an If model", inspection_and_full_auto)
    r.finish()
