"""Model-local functions (ModelProto.functions) and IR 10 metadata_props.

Local functions: onnxruntime inlines them when it loads a model, so quant_pre_process returns the bodies inlined
and quantize_static quantizes the pieces. onnxquant inlines them at load with ORT's inliner names
(`_inlfunc_<Op>_<name>`, `_inlfunc_<Op>_token_<k>_<name>` for later calls). Checked against quant_pre_process +
quantize_static on the raw model: the same wiring node by node (names included), scales and zero points
(1e-6 relative), onnx.checker full_check on ours, outputs in onnxruntime; simple, with attribute references (given
by the call and from the function's default), nested, called twice, unused (kept in ours; ORT drops it), an older opset
than the model's (converted), a newer one (refused, naming the function and the node). `onnxquant run` runs a model with a local function and
gives onnxruntime's outputs.

metadata_props (IR 10) on the graph, on nodes, on graph inputs and on initializers: kept as ORT keeps them (the Q/DQ nodes carry
none, as ORT's); on graph outputs kept (quant_pre_process drops them: its shape inference rewrites the outputs).
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, run_oq, tmpdir  # noqa: E402
from test_inline_functions import quantize_raw  # noqa: E402
from test_op_parity import compare_with_ort, img, init, rnd  # noqa: E402


def conv_model(mid, funcs, opset=17, ir=8, extra_opsets=(("my.dom", 1),)):
    """Conv -> mid nodes (reading c0, the last writes m) -> Conv -> y."""
    nodes = [helper.make_node("Conv", ["input", "W0", "b0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]), *mid,
             helper.make_node("Conv", ["m", "W1", "b1"], ["y"], name="conv1", pads=[1, 1, 1, 1])]
    inits = [init("W0", rnd(60, (3, 3, 3, 3))), init("b0", rnd(70, (3,), 0.1)),
             init("W1", rnd(61, (3, 3, 3, 3))), init("b1", rnd(71, (3,), 0.1))]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]
                          + [helper.make_opsetid(d, v) for d, v in extra_opsets])
    m.ir_version = ir
    m.functions.extend(funcs)
    return m


def my_act(opset=17):  # x * sigmoid(x), a named and an unnamed node
    return helper.make_function("my.dom", "MyAct", ["a"], ["b"],
                                [helper.make_node("Sigmoid", ["a"], ["s"]),
                                 helper.make_node("Mul", ["a", "s"], ["b"], name="mm")],
                                [helper.make_opsetid("", opset)])


def my_leaky():  # LeakyRelu(alpha = @alpha) then Mul by itself; alpha defaults to 0.3
    f = helper.make_function("my.dom", "MyLeaky", ["a"], ["b"],
                             [helper.make_node("LeakyRelu", ["a"], ["l"], name="lk"),
                              helper.make_node("Add", ["l", "a"], ["b"], name="add")],
                             [helper.make_opsetid("", 17)], attributes=[])
    ref = onnx.AttributeProto()
    ref.name, ref.ref_attr_name, ref.type = "alpha", "alpha", onnx.AttributeProto.FLOAT
    f.node[0].attribute.append(ref)
    f.attribute_proto.append(helper.make_attribute("alpha", 0.3))
    return f


def run_ort(path, x):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"input": x[i:i + 1]})[0] for i in range(4)])


def check(m, opset=17):
    x = img(5)
    raw, pre, ort_out, ours = quantize_raw(m, x, opset)
    a, b = compare_with_ort(ort_out, ours)
    assert not any(n.domain == "my.dom" for n in b.graph.node), [n.op_type for n in b.graph.node]
    assert sorted(n.op_type for n in a.graph.node) == sorted(n.op_type for n in b.graph.node)
    ya, yb = run_ort(ort_out, x), run_ort(ours, x)
    assert np.abs(ya - yb).max() <= np.abs(ya).max() / 100, np.abs(ya - yb).max()
    return a, b


def simple():
    _, b = check(conv_model([helper.make_node("MyAct", ["c0"], ["m"], name="call", domain="my.dom")], [my_act()]))
    assert {"_inlfunc_MyAct_s"} <= {o for n in b.graph.node for o in n.output}
    assert not b.functions


def used_twice():
    mid = [helper.make_node("MyAct", ["c0"], ["t"], name="call1", domain="my.dom"),
           helper.make_node("MyAct", ["t"], ["m"], name="call2", domain="my.dom")]
    _, b = check(conv_model(mid, [my_act()]))
    outs = {o for n in b.graph.node for o in n.output}
    assert {"_inlfunc_MyAct_s", "_inlfunc_MyAct_token_0_s"} <= outs, outs


def attribute_references():
    mid = [helper.make_node("MyLeaky", ["c0"], ["t"], name="given", domain="my.dom", alpha=0.05),
           helper.make_node("MyLeaky", ["t"], ["m"], name="default", domain="my.dom")]
    _, b = check(conv_model(mid, [my_leaky()]))
    alphas = sorted(round(n.attribute[0].f, 6) for n in b.graph.node if n.op_type == "LeakyRelu")
    assert alphas == [0.05, 0.3], alphas


def nested():
    outer = helper.make_function("my.dom", "Outer", ["p"], ["q"],
                                 [helper.make_node("MyAct", ["p"], ["u"], name="inner", domain="my.dom"),
                                  helper.make_node("Relu", ["u"], ["q"], name="r")],
                                 [helper.make_opsetid("", 17), helper.make_opsetid("my.dom", 1)])
    check(conv_model([helper.make_node("Outer", ["c0"], ["m"], name="call", domain="my.dom")], [outer, my_act()]))


def unused_kept():
    unused = helper.make_function("my.dom", "Unused", ["a"], ["b"], [helper.make_node("Neg", ["a"], ["b"])],
                                  [helper.make_opsetid("", 17)])
    _, b = check(conv_model([helper.make_node("MyAct", ["c0"], ["m"], name="call", domain="my.dom")],
                            [my_act(), unused]))
    assert [f.name for f in b.functions] == ["Unused"], [f.name for f in b.functions]


def older_opset():
    # A body at opset 13 in an opset-17 model: converted (Sigmoid and Mul do not change), inlined as ORT inlines it.
    check(conv_model([helper.make_node("MyAct", ["c0"], ["m"], name="call", domain="my.dom")], [my_act(13)]))


def newer_opset_refused():
    work = tmpdir()
    p = os.path.join(work, "m.onnx")
    onnx.save(conv_model([helper.make_node("MyAct", ["c0"], ["m"], name="call", domain="my.dom")], [my_act(21)]), p)
    np.save(os.path.join(work, "x.npy"), img(1)[:1])
    r = run_oq(["run", p, "--input", "input=" + os.path.join(work, "x.npy"), "--output-dir", os.path.join(work, "o")],
               check=False)
    err = r.stderr + r.stdout
    assert r.returncode != 0 and "function 'my.dom.MyAct' imports opset 21" in err and "'call'" in err, err


def run_command():
    work = tmpdir()
    p = os.path.join(work, "m.onnx")
    mid = [helper.make_node("MyLeaky", ["c0"], ["t"], name="given", domain="my.dom", alpha=0.05),
           helper.make_node("MyAct", ["t"], ["m"], name="call", domain="my.dom")]
    onnx.save(conv_model(mid, [my_leaky(), my_act()]), p)
    x = img(2)[:1]
    np.save(os.path.join(work, "x.npy"), x)
    out = os.path.join(work, "out")
    run_oq(["run", p, "--input", "input=" + os.path.join(work, "x.npy"), "--output-dir", out])
    got = np.load(os.path.join(out, "y.npy"))
    want = run_ort(p, np.repeat(x, 4, axis=0))[:1]
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5), np.abs(got - want).max()


def metadata_round_trip():
    m = conv_model([helper.make_node("Relu", ["c0"], ["m"], name="relu")], [], opset=21, ir=10, extra_opsets=())
    m.graph.metadata_props.add(key="gk", value="gv")
    for n in m.graph.node:
        n.metadata_props.add(key="pkg.torch.onnx.stack_trace", value=n.name)
    m.graph.input[0].metadata_props.add(key="ik", value="iv")
    m.graph.output[0].metadata_props.add(key="ok", value="ov")
    a, b = check(m, 21)
    md = lambda ps: [(p.key, p.value) for p in ps]  # noqa: E731
    assert md(b.graph.metadata_props) == md(a.graph.metadata_props) == [("gk", "gv")]
    assert md(b.graph.input[0].metadata_props) == md(a.graph.input[0].metadata_props) == [("ik", "iv")]
    assert md(b.graph.output[0].metadata_props) == [("ok", "ov")]  # ORT's pre-processing drops it
    na = {n.name: md(n.metadata_props) for n in a.graph.node}
    nb = {n.name: md(n.metadata_props) for n in b.graph.node}
    assert na == nb, (na, nb)
    assert nb["conv0"] == [("pkg.torch.onnx.stack_trace", "conv0")]


def initializer_metadata():
    # TensorProto.metadata_props of initializers: kept on those the quantization keeps (Slice / Pad constants), gone
    # with the quantized weights (ORT writes new tensors for those too).
    from onnx import numpy_helper
    m = conv_model([helper.make_node("Slice", ["c0", "st", "en", "ax"], ["m0"], name="sl"),
                    helper.make_node("Pad", ["m0", "pp"], ["m"], name="pd", mode="edge")], [], opset=21, ir=10,
                   extra_opsets=())
    m.graph.initializer.extend([numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                                (("st", [1]), ("en", [8]), ("ax", [3]), ("pp", [0, 0, 0, 1, 0, 0, 0, 0]))])
    for t in m.graph.initializer:
        t.metadata_props.add(key="tk", value=t.name)
    a, b = check(m, 21)
    md = lambda t: [(p.key, p.value) for p in t.metadata_props]  # noqa: E731
    ka = {t.name: md(t) for t in a.graph.initializer if t.metadata_props}
    kb = {t.name: md(t) for t in b.graph.initializer if t.metadata_props}
    assert ka == kb == {n: [("tk", n)] for n in ("st", "en", "ax", "pp")}, (ka, kb)


if __name__ == "__main__":
    r = Runner()
    r.run("local function: simple", simple)
    r.run("local function: called twice (token names)", used_twice)
    r.run("local function: attribute references (given, default)", attribute_references)
    r.run("local function: nested", nested)
    r.run("local function: an unused one kept", unused_kept)
    r.run("local function: an older opset converted", older_opset)
    r.run("local function: a newer opset refused, naming it", newer_opset_refused)
    r.run("local functions: onnxquant run", run_command)
    r.run("metadata_props (IR 10): graph, nodes, inputs, outputs", metadata_round_trip)
    r.run("metadata_props (IR 10): initializers", initializer_metadata)
    r.finish()
