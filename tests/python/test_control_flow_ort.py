"""If / Loop / Scan in the executor against onnxruntime: small random models run through `onnxquant run`, every
output compared with ORT (rtol/atol 1e-5; exact for integers and bools). Covered: If with a computed condition
(both branches taken across the feeds), branches reading outer-scope tensors, main-graph initializers and their own
initializers, If inside a Loop body (nested, reading the loop's values and the main graph's), If inside an If;
Loop with a trip count only, a condition only, both, loop-carried values, scan outputs, zero iterations (declared
and undeclared scan output shapes), a body condition computed from an outer input; Scan with several inputs,
axes (negative ones too) and directions, several states and outputs, Scan-8 with and without sequence_lens;
opsets 8, 9, 11, 13, 16 and 21; an If body reading a tensor inside a channel-blocked Conv chain, and that model in
float16. Then the errors:
a body reading an unknown outer name, If branches with different output counts, a sequence-valued body output.

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper
from onnx import numpy_helper as nh

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402

rng = np.random.default_rng(20261128)
TMP = oqtest.tmpdir()
F = T.FLOAT


def vi(name, elem=F, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def arr(name, *shape, scale=0.5):
    return nh.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def scalar(name, v, dtype=np.float32):
    return nh.from_array(np.array(v, dtype=dtype), name)


def model(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7 if opset < 15 else 8
    return m  # ORT checks it when it loads it (the checker wants shapes on every graph input)


def run_oq(name, m, feeds, check=True):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    onnx.save(m, path)
    args = ["run", path, "--output-dir", os.path.join(d, "out")]
    for n, a in feeds.items():
        np.save(os.path.join(d, n + ".npy"), a)
        args += ["--input", f"{n}={os.path.join(d, n + '.npy')}"]
    p = oqtest.run_oq(args, check=check)
    if not check:
        return p
    return [np.load(os.path.join(d, "out", o.name + ".npy")) for o in m.graph.output]


def check(name, m, feed_list):
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    for k, feeds in enumerate(feed_list):
        want = s.run(None, feeds)
        got = run_oq(f"{name}_{k}", m, feeds)
        assert len(got) == len(want)
        for o, (g, w) in enumerate(zip(got, want)):
            exact = not np.issubdtype(w.dtype, np.floating)
            oqtest.assert_same_output(f"{name} feed {k} output {o}", g, w, exact)


# ---- If -------------------------------------------------------------------------------------------------------

def if_model(opset):
    """X -> Conv -> A; cond = mean(X) > 0; then: Conv(A, W1 main init) -> Relu; else: Relu(A) * k (body init) + X-ish
    via Sigmoid(A); the If output goes through Mul with a main tensor."""
    then_g = helper.make_graph(
        [helper.make_node("Conv", ["A", "W1", "B1"], ["t1"]), helper.make_node("Relu", ["t1"], ["t_out"])],
        "then", [], [vi("t_out")])
    else_g = helper.make_graph(
        [helper.make_node("Relu", ["A"], ["e1"]), helper.make_node("Mul", ["e1", "k"], ["e2"]),
         helper.make_node("Sigmoid", ["A"], ["e3"]), helper.make_node("Add", ["e2", "e3"], ["e_out"])],
        "else", [], [vi("e_out")], [scalar("k", [0.75])])
    nodes = [helper.make_node("Conv", ["X", "W0", "B0"], ["A"], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["X"], ["m"], keepdims=0),
             helper.make_node("Greater", ["m", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["Y"], then_branch=then_g, else_branch=else_g, name="if0"),
             helper.make_node("Mul", ["Y", "A"], ["Z"])]
    return model(nodes, [vi("X", F, [1, 3, 6, 6])], [vi("Z"), vi("c", T.BOOL)],
                 [arr("W0", 4, 3, 3, 3), arr("B0", 4), arr("W1", 4, 4, 1, 1), arr("B1", 4), scalar("zero", 0.0)],
                 opset)


def if_feeds(n=4):
    return [{"X": (rng.standard_normal((1, 3, 6, 6)) + (1.5 if k % 2 else -1.5)).astype(np.float32)} for k in range(n)]


def test_if(opset):
    m = if_model(opset)
    feeds = if_feeds()
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    taken = {bool(s.run(None, f)[1]) for f in feeds}
    assert taken == {True, False}, f"feeds must take both branches, took {taken}"
    check(f"if_{opset}", m, feeds)


def test_if_nested_if():
    """An If inside the then-branch of an If, the inner branches reading the main graph's input and an outer
    branch's value; branch outputs that are outer names directly."""
    inner_then = helper.make_graph([helper.make_node("Add", ["u", "X"], ["it"])], "it", [], [vi("it")])
    inner_else = helper.make_graph([helper.make_node("Identity", ["X"], ["xi"])], "ie", [], [vi("xi")])
    outer_then = helper.make_graph(
        [helper.make_node("Mul", ["X", "two"], ["u"]),
         helper.make_node("If", ["c2"], ["v"], then_branch=inner_then, else_branch=inner_else)],
        "ot", [], [vi("v")], [scalar("two", 2.0)])
    outer_else = helper.make_graph([helper.make_node("Neg", ["X"], ["w"])], "oe", [], [vi("w")])
    nodes = [helper.make_node("ReduceSum", ["X"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["c"]),
             helper.make_node("ReduceMax", ["X"], ["mx"], keepdims=0),
             helper.make_node("Greater", ["mx", "one"], ["c2"]),
             helper.make_node("If", ["c"], ["Y"], then_branch=outer_then, else_branch=outer_else)]
    m = model(nodes, [vi("X", F, [5])], [vi("Y")], [scalar("zero", 0.0), scalar("one", 1.0)])
    feeds = [{"X": np.array(v, np.float32)} for v in
             ([0.1, 0.2, 0.3, 0.1, 0.1], [0.5, 2.0, 0.1, 0.3, 0.2], [-1, -2, 0.5, 0.1, 0.2])]
    check("if_nested", m, feeds)


# ---- Loop -----------------------------------------------------------------------------------------------------

def loop_body(n_scan=1, cond_from=None):
    """Body: (i, cond, x, acc) -> (cond', x' = x * a + i, acc' = acc + x', scans x' [, acc']) where `a` is a main
    graph initializer; cond' = i + 1 < limit (limit: an outer input) when cond_from is set, else true."""
    nodes = [helper.make_node("Cast", ["i"], ["fi"], to=F),
             helper.make_node("Mul", ["x", "a"], ["xa"]),
             helper.make_node("Add", ["xa", "fi"], ["x2"]),
             helper.make_node("Add", ["acc", "x2"], ["acc2"]),
             helper.make_node("Identity", ["x2"], ["s0"])]
    if cond_from:
        nodes += [helper.make_node("Add", ["i", "one64"], ["i1"]),
                  helper.make_node("Less", ["i1", cond_from], ["c2"])]
    else:
        nodes += [helper.make_node("Identity", ["c"], ["c2"])]
    outs = [vi("c2", T.BOOL, []), vi("x2"), vi("acc2"), vi("s0", F, [3])]
    if n_scan > 1:
        nodes.append(helper.make_node("Identity", ["acc2"], ["s1"]))
        outs.append(vi("s1", F, [3]))
    inits = [scalar("one64", 1, np.int64)] if cond_from else []
    return helper.make_graph(nodes, "body", [vi("i", T.INT64, []), vi("c", T.BOOL, []), vi("x"), vi("acc")], outs,
                             inits)


def test_loop(kind, opset=13):
    n_scan = 2
    lim = "limit" if kind in ("cond", "both") else None
    body = loop_body(n_scan, lim)
    m_in = "M" if kind in ("trip", "both", "zero") else ""
    c_in = "C" if kind in ("cond", "both") else ""
    nodes = [helper.make_node("Loop", [m_in, c_in, "X", "acc0"], ["xf", "accf", "sc0", "sc1"], body=body, name="loop"),
             helper.make_node("Mul", ["xf", "accf"], ["P"])]
    inputs = [vi("X", F, [3])]
    inits = [arr("a", 3), scalar("acc0", [0, 0, 0])]
    if m_in:
        inputs.append(vi("M", T.INT64, []))
    if c_in:
        inits.append(scalar("C", True, np.bool_))
    if lim:
        inputs.append(vi("limit", T.INT64, []))
    m = model(nodes, inputs, [vi("P"), vi("sc0"), vi("sc1"), vi("xf")], inits, opset)
    feeds = []
    for k in range(3):
        f = {"X": rng.standard_normal(3).astype(np.float32)}
        if m_in:
            f["M"] = np.array(0 if kind == "zero" else [4, 2, 6][k], np.int64)
        if lim:
            f["limit"] = np.array([3, 1, 9][k], np.int64)
        feeds.append(f)
    check(f"loop_{kind}_{opset}", m, feeds)


def test_loop_zero_undeclared():
    """Zero iterations, scan output without a declared shape: ORT gives shape [0]."""
    body = helper.make_graph([helper.make_node("Add", ["x", "x"], ["x2"]), helper.make_node("Identity", ["c"], ["c2"]),
                              helper.make_node("Identity", ["x2"], ["s"])],
                             "b", [vi("i", T.INT64, []), vi("c", T.BOOL, []), vi("x")],
                             [vi("c2", T.BOOL, []), vi("x2"), vi("s")])
    nodes = [helper.make_node("Loop", ["M", "", "X"], ["xf", "sc"], body=body)]
    m = model(nodes, [vi("X", F, [2]), vi("M", T.INT64, [])], [vi("xf"), vi("sc")])
    check("loop_zero_undeclared", m, [{"X": np.ones(2, np.float32), "M": np.array(0, np.int64)},
                                      {"X": np.ones(2, np.float32), "M": np.array(3, np.int64)}])


def test_if_in_loop():
    """A Loop whose body holds an If: the If's branches read the loop-carried value, the iteration number and a
    main-graph tensor (two scopes out)."""
    then_g = helper.make_graph([helper.make_node("Add", ["x", "G"], ["t"])], "t", [], [vi("t")])
    else_g = helper.make_graph([helper.make_node("Mul", ["x", "G"], ["e0"]), helper.make_node("Sub", ["e0", "x"], ["e"])],
                               "e", [], [vi("e")])
    body = helper.make_graph(
        [helper.make_node("Mod", ["i", "two"], ["r"]),
         helper.make_node("Equal", ["r", "zero64"], ["even"]),
         helper.make_node("If", ["even"], ["x2"], then_branch=then_g, else_branch=else_g, name="inner_if"),
         helper.make_node("Identity", ["c"], ["c2"]), helper.make_node("Identity", ["x2"], ["s"])],
        "body", [vi("i", T.INT64, []), vi("c", T.BOOL, []), vi("x")], [vi("c2", T.BOOL, []), vi("x2"), vi("s")],
        [scalar("two", 2, np.int64), scalar("zero64", 0, np.int64)])
    nodes = [helper.make_node("Sigmoid", ["X"], ["G"]),
             helper.make_node("Loop", ["M", "", "X"], ["xf", "sc"], body=body, name="outer_loop")]
    m = model(nodes, [vi("X", F, [4]), vi("M", T.INT64, [])], [vi("xf"), vi("sc")])
    check("if_in_loop", m, [{"X": rng.standard_normal(4).astype(np.float32), "M": np.array(v, np.int64)}
                            for v in (1, 4, 5)])


# ---- Scan -----------------------------------------------------------------------------------------------------

def test_scan(opset, in_axes, in_dirs, out_axes, out_dirs):
    """States s1 [2], s2 [2]; scan inputs A [L, 2] / [2, L] (by axis), B likewise; body: s1' = s1 + a * w (w: main
    initializer), s2' = s2 * 0.5 + b; scan outputs y1 = s1' * b, y2 = a - s2'."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["a", "w"], ["aw"]), helper.make_node("Add", ["s1", "aw"], ["s1n"]),
         helper.make_node("Mul", ["s2", "half"], ["s2h"]), helper.make_node("Add", ["s2h", "b"], ["s2n"]),
         helper.make_node("Mul", ["s1n", "b"], ["y1"]), helper.make_node("Sub", ["a", "s2n"], ["y2"])],
        "body", [vi("s1", F, [2]), vi("s2", F, [2]), vi("a", F, [2]), vi("b", F, [2])],
        [vi("s1n", F, [2]), vi("s2n", F, [2]), vi("y1", F, [2]), vi("y2", F, [2])], [scalar("half", 0.5)])
    attrs = {"num_scan_inputs": 2}
    if opset >= 11 or any(in_axes) or any(out_axes):
        attrs["scan_input_axes"] = list(in_axes)
        attrs["scan_output_axes"] = list(out_axes)
    attrs["scan_input_directions"] = list(in_dirs)
    attrs["scan_output_directions"] = list(out_dirs)
    nodes = [helper.make_node("Scan", ["S1", "S2", "A", "B"], ["f1", "f2", "Y1", "Y2"], body=body, name="scan", **attrs)]
    L = 5
    shp = lambda ax: [L, 2] if ax in (0, -2) else [2, L]  # noqa: E731
    m = model(nodes, [vi("S1", F, [2]), vi("S2", F, [2]), vi("A", F, shp(in_axes[0])), vi("B", F, shp(in_axes[1]))],
              [vi("f1"), vi("f2"), vi("Y1"), vi("Y2")], [arr("w", 2)], opset)
    feeds = [{"S1": rng.standard_normal(2).astype(np.float32), "S2": rng.standard_normal(2).astype(np.float32),
              "A": rng.standard_normal(shp(in_axes[0])).astype(np.float32),
              "B": rng.standard_normal(shp(in_axes[1])).astype(np.float32)} for _ in range(2)]
    check(f"scan_{opset}_{in_axes}_{in_dirs}_{out_axes}_{out_dirs}".replace(" ", ""), m, feeds)


def test_scan_3d():
    """One scan input [2, L, 3] on axis 1 reversed, output stacked on axis 2 of [3, 2, L]... (rank 3 slices)."""
    body = helper.make_graph([helper.make_node("Add", ["s", "x"], ["s2"]), helper.make_node("Relu", ["s2"], ["y"])],
                             "b", [vi("s", F, [2, 3]), vi("x", F, [2, 3])], [vi("s2", F, [2, 3]), vi("y", F, [2, 3])])
    nodes = [helper.make_node("Scan", ["S", "X"], ["sf", "Y"], body=body, num_scan_inputs=1, scan_input_axes=[1],
                              scan_input_directions=[1], scan_output_axes=[2], scan_output_directions=[0])]
    m = model(nodes, [vi("S", F, [2, 3]), vi("X", F, [2, 4, 3])], [vi("sf"), vi("Y")], opset=16)
    check("scan_3d", m, [{"S": rng.standard_normal((2, 3)).astype(np.float32),
                          "X": rng.standard_normal((2, 4, 3)).astype(np.float32)}])


def test_scan8(lens):
    """Scan-8: batch axis 0, sequence axis 1, directions, optional sequence_lens (outputs past a length are 0)."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "a"], ["s2"]), helper.make_node("Mul", ["s2", "b"], ["y"])],
        "b", [vi("s", F, [2]), vi("a", F, [2]), vi("b", F, [2])], [vi("s2", F, [2]), vi("y", F, [2])])
    ins = ["L" if lens else "", "S", "A", "B"]
    nodes = [helper.make_node("Scan", ins, ["sf", "Y"], body=body, num_scan_inputs=2, directions=[0, 1])]
    inputs = [vi("S", F, [3, 2]), vi("A", F, [3, 4, 2]), vi("B", F, [3, 4, 2])]
    if lens:
        inputs.insert(0, vi("L", T.INT64, [3]))
    m = model(nodes, inputs, [vi("sf"), vi("Y")], opset=8)
    f = {"S": rng.standard_normal((3, 2)).astype(np.float32), "A": rng.standard_normal((3, 4, 2)).astype(np.float32),
         "B": rng.standard_normal((3, 4, 2)).astype(np.float32)}
    if lens:
        f["L"] = np.array([4, 2, 3], np.int64)
    check(f"scan8_{lens}", m, [f])


def test_blocked_chain_and_float16():
    """Conv chains the executor runs in its channel-blocked layout, with an If body reading a tensor in the middle of
    the chain (it must see it in NCHW, by its name); then the same model in float16 (run in float32, bodies too)."""
    then_g = helper.make_graph([helper.make_node("Relu", ["C1"], ["t"])], "t", [], [vi("t")])
    else_g = helper.make_graph([helper.make_node("Sigmoid", ["C1"], ["e"])], "e", [], [vi("e")])
    nodes = [helper.make_node("Conv", ["X", "W0", "B0"], ["C0"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["C0"], ["R0"]),
             helper.make_node("Conv", ["R0", "W1", "B1"], ["C1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["C1"], ["R1"]),
             helper.make_node("Conv", ["R1", "W2", "B2"], ["C2"], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["X"], ["m"], keepdims=0),
             helper.make_node("Greater", ["m", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["Y"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Add", ["Y", "C2"], ["Z"])]
    inits = [arr("W0", 16, 8, 3, 3, scale=0.2), arr("B0", 16), arr("W1", 16, 16, 3, 3, scale=0.1), arr("B1", 16),
             arr("W2", 16, 16, 3, 3, scale=0.1), arr("B2", 16), scalar("zero", 0.0)]
    m = model(nodes, [vi("X", F, [1, 8, 7, 7])], [vi("Z")], inits, opset=13)
    feeds = [{"X": (rng.standard_normal((1, 8, 7, 7)) + s).astype(np.float32)} for s in (1.0, -1.0)]
    check("blocked_chain_if", m, feeds)
    # float16: every initializer and value in float16; ORT computes in float16, the executor in float32.
    m16 = onnx.ModelProto()
    m16.CopyFrom(m)
    for t in m16.graph.initializer:
        a = nh.to_array(t).astype(np.float16)
        t.CopyFrom(nh.from_array(a, t.name))
    for v in list(m16.graph.input) + list(m16.graph.output):
        v.type.tensor_type.elem_type = T.FLOAT16
    for n in m16.graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                for v in a.g.output:
                    v.type.tensor_type.elem_type = T.FLOAT16
    s16 = ort.InferenceSession(m16.SerializeToString(), providers=["CPUExecutionProvider"])
    for k, f in enumerate(feeds):
        f16 = {"X": f["X"].astype(np.float16)}
        want = s16.run(None, f16)[0]
        got = run_oq(f"blocked_chain_if_fp16_{k}", m16, f16)[0]
        assert got.dtype == np.float16 and got.shape == want.shape
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-2, atol=2e-2)


# ---- errors ---------------------------------------------------------------------------------------------------

def expect_error(name, m, feeds, *needles):
    p = run_oq(name, m, feeds, check=False)
    assert p.returncode != 0, f"{name}: onnxquant accepted the model"
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    msg = lines[-1]
    for n in needles:
        assert n in msg, f"{name}: '{n}' not in the error: {msg}"


def test_errors():
    # A body reading a name no scope defines.
    then_g = helper.make_graph([helper.make_node("Add", ["X", "nowhere"], ["t"])], "t", [], [vi("t")])
    else_g = helper.make_graph([helper.make_node("Neg", ["X"], ["e"])], "e", [], [vi("e")])
    nodes = [helper.make_node("ReduceSum", ["X"], ["s"], keepdims=0), helper.make_node("Greater", ["s", "z"], ["c"]),
             helper.make_node("If", ["c"], ["Y"], then_branch=then_g, else_branch=else_g, name="bad_if")]
    g = helper.make_graph(nodes, "g", [vi("X", F, [2])], [vi("Y")], [scalar("z", 0.0)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    expect_error("err_unknown_outer", m, {"X": np.ones(2, np.float32)}, "bad_if", "then_branch", "nowhere")
    # Branches with different output counts.
    else2 = helper.make_graph([helper.make_node("Neg", ["X"], ["e"]), helper.make_node("Abs", ["X"], ["e2"])], "e", [],
                              [vi("e"), vi("e2")])
    then1 = helper.make_graph([helper.make_node("Neg", ["X"], ["t"])], "t", [], [vi("t")])
    nodes[2] = helper.make_node("If", ["c"], ["Y"], then_branch=then1, else_branch=else2, name="uneven_if")
    g = helper.make_graph(nodes, "g", [vi("X", F, [2])], [vi("Y")], [scalar("z", 0.0)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    expect_error("err_uneven", m, {"X": np.ones(2, np.float32)}, "uneven_if", "else_branch")
    # A body output declared as a sequence (the executor holds tensors only).
    body = helper.make_graph([helper.make_node("Identity", ["c"], ["c2"]), helper.make_node("Identity", ["i"], ["sq2"])],
                             "b", [vi("i", T.INT64, []), vi("c", T.BOOL, [])],
                             [vi("c2", T.BOOL, []), helper.make_tensor_sequence_value_info("sq2", T.INT64, None)])
    nodes = [helper.make_node("Loop", ["M", ""], ["sf"], body=body, name="seq_loop")]
    g = helper.make_graph(nodes, "g", [vi("M", T.INT64, [])], [vi("sf", T.INT64, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    expect_error("err_sequence", m, {"M": np.array(2, np.int64)}, "seq_loop", "sq2", "not a tensor")


def main():
    r = oqtest.Runner()
    for opset in (11, 13, 16, 21):
        r.run(f"if opset {opset}", test_if, opset)
    r.run("if nested in if", test_if_nested_if)
    for kind in ("trip", "cond", "both", "zero"):
        r.run(f"loop {kind}", test_loop, kind)
    r.run("loop opset 11", test_loop, "both", 11)
    r.run("loop opset 21", test_loop, "trip", 21)
    r.run("loop zero iterations, undeclared shape", test_loop_zero_undeclared)
    r.run("if in loop", test_if_in_loop)
    r.run("scan opset 9", test_scan, 9, (0, 0), (0, 1), (0, 0), (1, 0))
    r.run("scan axes/directions", test_scan, 11, (1, 0), (1, 0), (1, 0), (0, 1))
    r.run("scan negative axes", test_scan, 16, (-1, -2), (0, 0), (-1, -2), (1, 1))
    r.run("scan rank 3", test_scan_3d)
    r.run("scan-8", test_scan8, False)
    r.run("scan-8 with sequence_lens", test_scan8, True)
    r.run("blocked conv chain read by an If body, float16", test_blocked_chain_and_float16)
    r.run("errors", test_errors)
    r.finish()


if __name__ == "__main__":
    main()
