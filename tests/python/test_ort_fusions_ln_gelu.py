"""ORT's LayerNormFusion and GeluFusion, which quant_pre_process applies (its optimizer at the basic level makes the
ONNX ops when the model's opset has them: LayerNormalization from 17, Gelu from 20), reproduced by onnxquant's
pre-processing (src/ir/passes/fuse_layer_norm_gelu.cc), so that default mode on the raw model writes what
quant_pre_process + quantize_static write.

Each model goes through both flows, per channel and per tensor: the same wiring node by node with ORT's names (the
fused LayerNormalization `<Mul name>/LayerNormFusion/`, Gelu `Gelu` / `Gelu_token_0`), the same initializer names,
the same Q/DQ counts per op type, scales and zero points within 1e-6 relative; our model passes onnx.checker
full_check and gives ORT's outputs in onnxruntime (within 1 % of the range). The pre-processed float model
(tests/oq_preprocess_model) has quant_pre_process's op histogram, the fused nodes' names, inputs, outputs and
epsilon, and the original's outputs (1e-4 relative). The patterns ORT leaves alone (opset 13 / 17, axes not last,
eps not constant, an intermediate read twice or a graph output, Mul(d, d) instead of Pow, Mul by 1/sqrt 2, the
tanh GELU, wrong constants) are checked the same way: the nodes must stay in both. The patterns ORT fuses although
they compute something else (Pow 4, Sub(mean, X), keepdims 0) are left alone by onnxquant (docs/conformance.md):
checked as such, with the original's outputs. Hand-built graphs: tests/unit/test_fuse_ln_gelu.cc.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner  # noqa: E402
from raw_parity import op_counts, preprocess_both, quantize_both_raw  # noqa: E402
from test_op_parity import init, rnd  # noqa: E402

mn = helper.make_node
FUSED = ("LayerNormalization", "Gelu")


def make(nodes, inits, in_shape, out_shape, opset, more_outputs=()):
    """`more_outputs`: intermediate values also made graph outputs (their types from onnx's shape inference)."""
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 21 else 10
    if more_outputs:
        vis = {v.name: v for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
        m.graph.output.extend([vis[o] for o in more_outputs])
    onnx.checker.check_model(m, full_check=True)
    return m


def ln_nodes(x, y, p, opset, axes=(-1,), eps="eps", pow_op=True, sub_swap=False, keepdims=None, gamma_left=False,
             consts=True):
    """Decomposed LayerNorm of `x` into `y`, node / tensor names prefixed `p`; returns (nodes, initializers).
    The scalar constants (exponent, eps, axes) are one initializer each, `consts` False: left to another pattern
    (ORT's ConstantSharing would merge equal scalars of two patterns, a rewrite onnxquant does not reproduce)."""
    D = 16
    inits = [init(p + "g", 1 + rnd(1, (D,), 0.1)), init(p + "b", rnd(2, (D,), 0.1))]
    if consts and pow_op:
        inits.append(init("two", np.float32(2.0 if pow_op is True else pow_op)))
    if consts and opset >= 18:
        inits.append(init("axes", np.array(axes, np.int64)))
    if eps == "eps":
        if consts:
            inits.append(init("eps", np.float32(1e-3)))
    kd = {} if keepdims is None else {"keepdims": keepdims}

    def rmean(a, b, name):
        if opset >= 18:
            return mn("ReduceMean", [a, "axes"], [b], name=name, **kd)
        return mn("ReduceMean", [a], [b], axes=list(axes), name=name, **kd)
    nodes = [rmean(x, p + "mu", p + "rm1"),
             mn("Sub", [p + "mu", x] if sub_swap else [x, p + "mu"], [p + "d"], name=p + "sub"),
             mn("Pow", [p + "d", "two"], [p + "sq"], name=p + "pow") if pow_op else
             mn("Mul", [p + "d", p + "d"], [p + "sq"], name=p + "sqmul"),
             rmean(p + "sq", p + "var", p + "rm2"), mn("Add", [p + "var", eps], [p + "ve"], name=p + "addeps"),
             mn("Sqrt", [p + "ve"], [p + "sd"], name=p + "sqrt"), mn("Div", [p + "d", p + "sd"], [p + "n"], name=p + "div"),
             mn("Mul", [p + "g", p + "n"] if gamma_left else [p + "n", p + "g"], [p + "ng"], name=p + "mulg"),
             mn("Add", [p + "ng", p + "b"], [y], name=p + "addb")]
    return nodes, inits


def gelu_nodes(x, y, p, pattern=1, swap=False, k=None, one=1.0, half=0.5, div=True, consts=True):
    """erf GELU of `x` into `y`: pattern 1 (x * 0.5) * (1 + erf(x / sqrt 2)), pattern 2 (x * (1 + erf)) * 0.5;
    `swap` puts every constant and Mul operand in the other order; `consts` as in ln_nodes."""
    k = (np.sqrt(2) if div else 1 / np.sqrt(2)) if k is None else k
    inits = [init("k", np.float32(k)), init("one", np.float32(one)), init("half", np.float32(half))] if consts else []
    o = (lambda a, b: [b, a]) if swap else (lambda a, b: [a, b])
    nodes = [mn("Div" if div else "Mul", [x, "k"], [p + "xd"], name=p + "div"),
             mn("Erf", [p + "xd"], [p + "e"], name=p + "erf"), mn("Add", o(p + "e", "one"), [p + "e1"], name=p + "add")]
    if pattern == 1:
        nodes += [mn("Mul", o(x, "half"), [p + "xh"], name=p + "mulhalf"),
                  mn("Mul", o(p + "xh", p + "e1"), [y], name=p + "mul")]
    else:
        nodes += [mn("Mul", o(x, p + "e1"), [p + "m"], name=p + "mul"),
                  mn("Mul", o(p + "m", "half"), [y], name=p + "mulhalf")]
    return nodes, inits


def ln_model(opset, shape=("N", 10, 16), more=(), more_outputs=(), first=(), on_input=False, **kw):
    """input -> MatMul -> decomposed LayerNorm -> MatMul -> y (`first` nodes before the pattern, `more` after;
    `on_input`: the LayerNorm reads the graph input, whose rank the model declares)."""
    x = "input" if on_input else "x"
    nodes, inits = ln_nodes(x, "ln", "", opset, **kw)
    inits += [init("W0", rnd(3, (16, 16))), init("W1", rnd(4, (16, 8)))]
    nodes = ([] if on_input else [mn("MatMul", ["input", "W0"], ["x"], name="mm0")]) + list(first) + nodes + \
        [mn("MatMul", ["ln", "W1"], ["y"], name="mm1")] + list(more)
    if on_input:
        inits = [i for i in inits if i.name != "W0"]
    return make(nodes, inits, list(shape), list(shape[:-1]) + [8], opset, more_outputs)


def gelu_model(opset, more=(), more_outputs=(), **kw):
    """input [N,16] -> MatMul -> erf GELU -> MatMul -> y."""
    nodes, inits = gelu_nodes("h", "ge", "", **kw)
    inits += [init("W0", rnd(3, (16, 32))), init("W1", rnd(4, (32, 8)))]
    nodes = [mn("MatMul", ["input", "W0"], ["h"], name="mm0")] + nodes + \
            [mn("MatMul", ["ge", "W1"], ["y"], name="mm1")] + list(more)
    return make(nodes, inits, ["N", 16], ["N", 8], opset, more_outputs)


def block_model(opset):
    """Transformer-like block on [N, 10, 16]: LN -> MatMul + bias -> GELU -> MatMul + bias -> residual Add -> LN
    -> y; the second pattern's Muls unnamed, two GELUs (the second on the residual branch)."""
    n1, i1 = ln_nodes("input", "ln1", "a_", opset)
    n2, i2 = ln_nodes("res", "y", "b_", opset, consts=False)
    for n in n2:
        if n.op_type == "Mul":
            n.name = ""
    g1, j1 = gelu_nodes("f1", "ge1", "g_", pattern=1)
    g2, j2 = gelu_nodes("f2", "ge2", "h_", pattern=2, swap=True, consts=False)
    inits = i1 + i2 + j1 + j2 + [init("W1", rnd(5, (16, 32))), init("B1", rnd(6, (32,), 0.1)),
                                 init("W2", rnd(7, (32, 16))), init("B2", rnd(8, (16,), 0.1))]
    nodes = n1 + [mn("MatMul", ["ln1", "W1"], ["f1m"], name="fc1"), mn("Add", ["f1m", "B1"], ["f1"], name="fc1_add")] + \
        g1 + [mn("MatMul", ["ge1", "W2"], ["f2m"], name="fc2"), mn("Add", ["f2m", "B2"], ["f2"], name="fc2_add")] + \
        g2 + [mn("Add", ["ge2", "input"], ["res"], name="residual")] + n2
    return make(nodes, inits, ["N", 10, 16], ["N", 10, 16], opset)


def fused_nodes(m):
    out = []
    for n in m.graph.node:
        if n.op_type in FUSED:
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            out.append((n.op_type, n.name, n.domain or "", tuple(n.input), tuple(n.output),
                        round(float(a.get("epsilon", 0)), 12), a.get("axis"), a.get("approximate")))
    return sorted(out)


def check(m, x, fused, ours_fuses=None):
    """`fused`: {op: count} of LayerNormalization / Gelu that quant_pre_process makes of `m` (asserted, so that each
    case is what it claims); `ours_fuses` False: onnxquant deliberately leaves the pattern (then only the float
    outputs are compared). Both flows through raw_parity.py. Returns quant_pre_process's model."""
    p = preprocess_both(m, x)
    got = {k: v for k, v in op_counts(p.pm).items() if k in FUSED}
    assert got == fused, (got, fused)
    if ours_fuses is False:
        assert not fused_nodes(p.om), fused_nodes(p.om)
        return p.pm
    assert op_counts(p.om) == op_counts(p.pm), (op_counts(p.om), op_counts(p.pm))
    assert fused_nodes(p.om) == fused_nodes(p.pm), (fused_nodes(p.om), fused_nodes(p.pm))
    quantize_both_raw(p, [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0])
    return p.pm


def xs(shape=(10, 16), n=16, seed=0):
    return (np.random.default_rng(seed).standard_normal((n,) + tuple(shape)) * 2 + 0.5).astype(np.float32)


def ln_fused():
    for opset in (17, 18, 21):  # 18+: the axes as a constant input
        pm = check(ln_model(opset), xs(), {"LayerNormalization": 1})
        ln = [n for n in pm.graph.node if n.op_type == "LayerNormalization"][0]
        assert ln.name == "mulg/LayerNormFusion/" and list(ln.input) == ["x", "g", "b"], ln
    check(ln_model(17, axes=(2,), on_input=True), xs(), {"LayerNormalization": 1})  # rank known: the last axis
    check(ln_model(18, axes=(2,), on_input=True), xs(), {"LayerNormalization": 1})
    check(ln_model(21, gamma_left=True), xs(), {"LayerNormalization": 1})
    check(ln_model(17, shape=("N", 16)), xs((16,)), {"LayerNormalization": 1})  # 2-D


def ln_eps_left_and_shape():
    # eps on the left of the Add, and eps of shape [1, 1, 1]: ORT reads it all the same.
    m = ln_model(17)
    add = [n for n in m.graph.node if n.name == "addeps"][0]
    add.input[:] = ["eps", "var"]
    [t for t in m.graph.initializer if t.name == "eps"][0].CopyFrom(init("eps", np.full((1, 1, 1), 2e-3, np.float32)))
    pm = check(m, xs(), {"LayerNormalization": 1})
    eps = [a.f for n in pm.graph.node if n.op_type == "LayerNormalization" for a in n.attribute if a.name == "epsilon"]
    assert np.isclose(eps[0], 2e-3), eps


def ln_two_subs():
    # Older PyTorch exports: one Sub for the Pow, another for the Div.
    m = ln_model(17)
    nodes = list(m.graph.node)
    i = [k for k, n in enumerate(nodes) if n.name == "sub"][0]
    nodes.insert(i + 1, mn("Sub", ["x", "mu"], ["d2"], name="sub2"))
    [n for n in nodes if n.name == "div"][0].input[0] = "d2"
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    check(m, xs(), {"LayerNormalization": 1})


def ln_left_alone():
    x = xs()
    check(ln_model(13), x, {})  # no ONNX LayerNormalization before 17
    check(ln_model(17, pow_op=False), x, {})  # Mul(d, d): neither fuses
    check(ln_model(17, axes=(-2,)), x, {})  # not the last axis
    check(ln_model(18, axes=(1,)), x, {})
    check(ln_model(17, axes=(-2, -1)), x, {})  # two axes (ORT's inference build: one)
    # eps not a constant (computed from the input)
    more = [mn("Abs", ["input"], ["ab"], name="abs"), mn("ReduceMin", ["ab"], ["eps_t"], keepdims=0, name="rmin")]
    m = ln_model(17, eps="eps_t", first=more)
    check(m, x, {})
    # an intermediate also a graph output, or read by another node
    for t in ("mu", "sq", "var", "sd", "n", "ng"):
        check(ln_model(17, more_outputs=[t]), x, {})
    check(ln_model(17, more=[mn("Relu", ["d"], ["dr"], name="extra")], more_outputs=["dr"]), x, {})
    # gamma of rank 2 ([1, 16]) is not the 1-D scale ORT wants
    m = ln_model(17)
    [t for t in m.graph.initializer if t.name == "g"][0].CopyFrom(init("g", 1 + rnd(1, (1, 16), 0.1)))
    check(m, x, {})


def ln_output_also_graph_output():
    check(ln_model(17, more_outputs=["ln"]), xs(), {"LayerNormalization": 1})


def ln_ort_only():
    # ORT fuses these although they compute something else; onnxquant keeps the float graph's function.
    x = xs((16, 16))
    check(ln_model(17, pow_op=4.0), xs(), {"LayerNormalization": 1}, ours_fuses=False)
    check(ln_model(17, sub_swap=True), xs(), {"LayerNormalization": 1}, ours_fuses=False)
    check(ln_model(17, shape=("N", 16, 16), keepdims=0), x, {"LayerNormalization": 1}, ours_fuses=False)


def with_exponent(m, value):
    [t for t in m.graph.initializer if t.name == "two"][0].CopyFrom(init("two", value))
    return m


def ln_exponent_types():
    # Pow's exponent type may differ from X's: ORT fuses a double or float16 2 as a float one (an integer one not).
    # A float16 exponent does not make the float32 model a float16 model (quantize_static decides per tensor; at
    # opset 17 onnxquant used to refuse it, wanting float16 scales from opset 19, and at 21 skipped the fusion).
    for opset in (17, 21):
        for dt in (np.float64, np.float16):
            check(with_exponent(ln_model(opset), np.array(2.0, dt)), xs(), {"LayerNormalization": 1})
    check(with_exponent(ln_model(17), np.array(2, np.int64)), xs(), {})
    # ORT fuses a double 4 too (any value of a float type); onnxquant keeps it, as a float 4.
    check(with_exponent(ln_model(17), np.array(4.0, np.float64)), xs(), {"LayerNormalization": 1}, ours_fuses=False)


def gelu_fused():
    x = xs((16,))
    for opset in (20, 21):
        for pattern in (1, 2):
            for swap in (False, True):
                pm = check(gelu_model(opset, pattern=pattern, swap=swap), x, {"Gelu": 1})
                ge = [n for n in pm.graph.node if n.op_type == "Gelu"][0]
                assert ge.name == "Gelu" and list(ge.input) == ["h"] and list(ge.output) == ["ge"], ge
    # ORT's tolerance (1e-5 relative) and BERT's sqrt 2 approximation
    check(gelu_model(20, k=1.4142), x, {"Gelu": 1})
    check(gelu_model(20, k=1.4142099618911743), x, {"Gelu": 1})
    check(gelu_model(20, half=0.500001), x, {"Gelu": 1})
    check(gelu_model(20, more_outputs=["ge"]), x, {"Gelu": 1})


def gelu_left_alone():
    x = xs((16,))
    check(gelu_model(17), x, {})  # no ONNX Gelu before 20
    check(gelu_model(18, pattern=2), x, {})
    check(gelu_model(20, div=False), x, {})  # Mul by 1/sqrt 2: not at the basic level
    check(gelu_model(20, k=1.414), x, {})
    check(gelu_model(20, one=1.0001), x, {})
    check(gelu_model(20, half=0.5001), x, {})
    for t in ("xd", "e", "e1", "xh"):
        check(gelu_model(20, more_outputs=[t]), x, {})
    check(gelu_model(20, pattern=2, more_outputs=["m"]), x, {})
    # Pattern 2 on an X made by a Mul: ORT takes that Mul for the X * 0.5 branch and gives up.
    m = gelu_model(20, pattern=2)
    m.graph.node[0].output[0] = "h0"
    m.graph.node.insert(1, mn("Mul", ["h0", "h0"], ["h"], name="square"))
    check(m, x, {})
    # tanh approximation: neither fuses (FastGeluFusion is not a basic-level rule)
    t_inits = [init("p3", np.float32(3)), init("c1", np.float32(0.044715)), init("c2", np.float32(np.sqrt(2 / np.pi))),
               init("one", np.float32(1)), init("half", np.float32(0.5)), init("W0", rnd(3, (16, 32))),
               init("W1", rnd(4, (32, 8)))]
    t_nodes = [mn("MatMul", ["input", "W0"], ["h"], name="mm0"), mn("Pow", ["h", "p3"], ["h3"], name="pow"),
               mn("Mul", ["h3", "c1"], ["h3c"], name="mc1"), mn("Add", ["h", "h3c"], ["s"], name="adds"),
               mn("Mul", ["s", "c2"], ["sc"], name="mc2"), mn("Tanh", ["sc"], ["t"], name="tanh"),
               mn("Add", ["t", "one"], ["t1"], name="add1"), mn("Mul", ["h", "half"], ["hh"], name="mh"),
               mn("Mul", ["hh", "t1"], ["ge"], name="mo"), mn("MatMul", ["ge", "W1"], ["y"], name="mm1")]
    check(make(t_nodes, t_inits, ["N", 16], ["N", 8], 21), x, {})


def block():
    # A transformer-like block: both LayerNorms (the second named `/LayerNormFusion/`: unnamed Mul) and both GELUs
    # (`Gelu`, `Gelu_token_0`) at 21; LayerNorms only at 17; nothing at 13.
    x = xs()
    pm = check(block_model(21), x, {"LayerNormalization": 2, "Gelu": 2})
    names = sorted(n.name for n in pm.graph.node if n.op_type in FUSED)
    assert names == ["/LayerNormFusion/", "Gelu", "Gelu_token_0", "a_mulg/LayerNormFusion/"], names
    check(block_model(17), x, {"LayerNormalization": 2})
    check(block_model(13), x, {})


if __name__ == "__main__":
    r = Runner()
    r.run("LayerNorm at opsets 17, 18, 21 (symbolic batch), positive axis, gamma on the left, 2-D", ln_fused)
    r.run("LayerNorm with eps on the left, eps of shape [1,1,1]", ln_eps_left_and_shape)
    r.run("LayerNorm with two Subs (older PyTorch exports)", ln_two_subs)
    r.run("LayerNorm patterns both leave alone", ln_left_alone)
    r.run("LayerNorm whose output is also a graph output", ln_output_also_graph_output)
    r.run("LayerNorm-like patterns only ORT fuses (Pow 4, Sub(mean, X), keepdims 0)", ln_ort_only)
    r.run("LayerNorm with a double / float16 exponent (opsets 17, 21), int64 left, double 4 ORT only",
          ln_exponent_types)
    r.run("Gelu at opsets 20, 21: both patterns, both operand orders, ORT's tolerances", gelu_fused)
    r.run("GELU patterns both leave alone (opset 17 / 18, Mul 1/sqrt2, constants, readers, tanh)", gelu_left_alone)
    r.run("transformer-like block at opsets 21, 17, 13", block)
    r.finish()
