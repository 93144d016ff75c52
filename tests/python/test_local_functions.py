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


def oq_run(p, x):
    """`onnxquant run` of the model at p on the one sample x: its output y."""
    work = os.path.dirname(p)
    np.save(os.path.join(work, "x.npy"), x)
    out = os.path.join(work, "out")
    run_oq(["run", p, "--input", "input=" + os.path.join(work, "x.npy"), "--output-dir", out])
    return np.load(os.path.join(out, "y.npy"))


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


def conv2out():  # y = Sigmoid(pre), pre = Conv(x, w, b): the second output is the Conv's own (not fused away)
    return helper.make_function("my.dom", "Conv2out", ["x", "w", "b"], ["y", "pre"],
                                [helper.make_node("Conv", ["x", "w", "b"], ["pre"], pads=[1, 1, 1, 1]),
                                 helper.make_node("Sigmoid", ["pre"], ["y"])], [helper.make_opsetid("", 17)])


def conv2out_model(outs):
    m = conv_model([helper.make_node("Conv2out", ["c0", "W2", "b2"], outs, name="call", domain="my.dom")],
                   [conv2out()])
    m.graph.initializer.extend([init("W2", rnd(62, (3, 3, 3, 3))), init("b2", rnd(72, (3,), 0.1))])
    return m


def omitted_output():
    # A call giving "" for an output whose body node (Conv's Y) must have a name: the formal gets the fresh name
    # "<prefix>_<formal>", as ORT's inliner gives it (onnxquant used to bind it to "" and refuse the Conv).
    _, b = check(conv2out_model(["m", ""]))
    assert "_inlfunc_Conv2out_pre" in {o for n in b.graph.node for o in n.output}


def trailing_output_omitted():
    # The call leaves the second output off the end: inlined as "" is (onnx.checker and ORT's function type
    # inference refuse this call; ORT's inliner binds it as onnxquant does). Its outputs are ORT's for the "" call.
    work = tmpdir()
    p, ref = os.path.join(work, "m.onnx"), os.path.join(work, "ref.onnx")
    onnx.save(conv2out_model(["m"]), p)
    onnx.save(conv2out_model(["m", ""]), ref)
    x = img(3)[:1]
    got, want = oq_run(p, x), run_ort(ref, np.repeat(x, 4, axis=0))[:1]
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5), np.abs(got - want).max()


def ref(name, attr_type, ref_name=None):
    a = onnx.AttributeProto()
    a.name, a.ref_attr_name, a.type = name, ref_name or name, attr_type
    return a


def tensor_attribute_reference():
    # Constant(value=@bias_t): the reference has a type and no tensor; the loader used to parse the missing tensor
    # ("tensor '': unsupported data type 0"). Quantized as ORT quantizes it, the call's tensor in the Constant.
    const = helper.make_node("Constant", [], ["k"])
    const.attribute.append(ref("value", onnx.AttributeProto.TENSOR, "bias_t"))
    f = helper.make_function("my.dom", "AddConst", ["a"], ["b"], [const, helper.make_node("Add", ["a", "k"], ["b"])],
                             [helper.make_opsetid("", 17)], attributes=["bias_t"])
    call = helper.make_node("AddConst", ["c0"], ["m"], name="call", domain="my.dom",
                            bias_t=helper.make_tensor("bt", TensorProto.FLOAT, [1, 3, 1, 1], [0.5, -1.0, 2.0]))
    _, b = check(conv_model([call], [f]))
    assert not b.functions


def references_of_every_type_load():
    # A function nothing calls, with references of every attribute type (TENSOR, TENSORS, GRAPH, GRAPHS,
    # SPARSE_TENSOR, TYPE_PROTO, ...): none has a value to parse; the model runs as ORT runs it and the function is
    # written back unchanged.
    T = onnx.AttributeProto
    body = helper.make_node("Custom", ["a"], ["b"], domain="other.dom")
    body.attribute.extend(ref(f"r{t}", t) for t in (T.TENSOR, T.TENSORS, T.GRAPH, T.GRAPHS, T.SPARSE_TENSOR,
                                                      T.SPARSE_TENSORS, T.TYPE_PROTO, T.TYPE_PROTOS, T.FLOAT))
    f = helper.make_function("my.dom", "Unused", ["a"], ["b"], [body],
                             [helper.make_opsetid("", 17), helper.make_opsetid("other.dom", 1)],
                             attributes=[a.ref_attr_name for a in body.attribute])
    work = tmpdir()
    p = os.path.join(work, "m.onnx")
    onnx.save(conv_model([helper.make_node("Relu", ["c0"], ["m"], name="relu")], [f]), p)
    x = img(4)[:1]
    got, want = oq_run(p, x), run_ort(p, np.repeat(x, 4, axis=0))[:1]
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5), np.abs(got - want).max()
    _, b = check(onnx.load(p))
    assert list(b.functions) == [f], b.functions


def run_command():
    work = tmpdir()
    p = os.path.join(work, "m.onnx")
    mid = [helper.make_node("MyLeaky", ["c0"], ["t"], name="given", domain="my.dom", alpha=0.05),
           helper.make_node("MyAct", ["t"], ["m"], name="call", domain="my.dom")]
    onnx.save(conv_model(mid, [my_leaky(), my_act()]), p)
    x = img(2)[:1]
    got = oq_run(p, x)
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
    r.run("local function: an output given as \"\" gets a fresh name, as ORT's", omitted_output)
    r.run("local function: an output left off the end, as \"\"", trailing_output_omitted)
    r.run("local function: a TENSOR attribute reference", tensor_attribute_reference)
    r.run("local function: references of every attribute type load", references_of_every_type_load)
    r.run("metadata_props (IR 10): graph, nodes, inputs, outputs", metadata_round_trip)
    r.run("metadata_props (IR 10): initializers", initializer_metadata)
    r.finish()
