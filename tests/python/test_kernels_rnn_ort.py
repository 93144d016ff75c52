"""Executor kernels RNN, GRU and LSTM against onnxruntime: single-node models on random odd shapes (fixed seed)
run through `onnxquant run`, every output (Y, Y_h, Y_c) compared with ORT (rtol/atol 1e-5). Covered: all
directions, sequence_lens shorter than the sequence, initial_h/initial_c, peepholes, clip, input_forget,
linear_before_reset 0 and 1, activation lists with alpha/beta (RNN with Relu among them), float64 (ORT's CPU
GRU/LSTM take no double: compared with its float32 result on the same values).
ORT's CPU kernels refuse layout=1, so a layout-1 model is checked against ORT running the same node in layout 0
on the transposed inputs (the spec defines layout 1 as that transpose), and against onnx.reference.
Then the executor-speed QA's shapes (T 100-500, hidden 37-128, batch 1-9: the packed recurrence, named by the
kernel's debug line) against ORT (rtol/atol 1e-4).
Then the onnx wheel's own node tests of these ops (opset 22, newer than the executor; the ops did not change
since 14 but for bfloat16) run with the opset set to 21, compared with their stored outputs.

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402

rng = np.random.default_rng(20261129)
TMP = oqtest.tmpdir()
IN_NAMES = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
N_ACTS = {"RNN": 1, "GRU": 2, "LSTM": 3}
N_OUT = {"RNN": 2, "GRU": 2, "LSTM": 3}
TAKES_ALPHA = {"Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu"}
TAKES_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}
ACTS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu",
        "Softsign", "Softplus"]


def make_model(op, feeds, attrs, opset, outputs=None):
    """feeds: list aligned with IN_NAMES (None = omitted). Every given input is a graph input."""
    ins, vis = [], []
    for n, a in zip(IN_NAMES, feeds):
        if a is None:
            ins.append("")
            continue
        ins.append(n)
        vis.append(helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape))
    while ins and ins[-1] == "":
        ins.pop()
    outs = outputs or ["Y", "Y_h", "Y_c"][:N_OUT[op]]
    node = helper.make_node(op, ins, outs, **attrs)
    g = helper.make_graph([node], "g", vis, [onnx.ValueInfoProto(name=o) for o in outs if o])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def run_ort(m, feeds):
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {n: a for n, a in zip(IN_NAMES, feeds) if a is not None})


def run_oq(name, m, feeds):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    args = ["run", os.path.join(d, "model.onnx"), "--output-dir", os.path.join(d, "out")]
    for n, a in zip(IN_NAMES, feeds):
        if a is not None:
            np.save(os.path.join(d, n + ".npy"), a)
            args += ["--input", f"{n}={os.path.join(d, n + '.npy')}"]
    oqtest.run_oq(args)
    return [np.load(os.path.join(d, "out", o.name + ".npy")) for o in m.graph.output]


def compare(name, got, want, tol=1e-5):
    assert len(got) == len(want), f"{name}: {len(got)} outputs, expected {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{name} output {k}: shape {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"{name} output {k}: dtype {g.dtype} != {w.dtype}"
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"{name} output {k}")


def random_case(op, direction, seq, batch, hidden, dtype=np.float32, lens=False, init=True, peep=False, bias=True,
                layout=0):
    nd, g, inp = (2 if direction == "bidirectional" else 1), GATES[op], 5
    r = lambda *s, sc=1.0: (rng.uniform(-sc, sc, s)).astype(dtype)  # noqa: E731
    x = r(batch, seq, inp, sc=1.5) if layout else r(seq, batch, inp, sc=1.5)
    st = (batch, nd, hidden) if layout else (nd, batch, hidden)
    feeds = [x, r(nd, g * hidden, inp, sc=0.8), r(nd, g * hidden, hidden, sc=0.8),
             r(nd, 2 * g * hidden, sc=0.5) if bias else None,
             rng.integers(1, seq + 1, batch).astype(np.int32) if lens else None,
             r(*st) if init else None]
    if op == "LSTM":
        feeds += [r(*st) if init else None, r(nd, 3 * hidden, sc=0.7) if peep else None]
    return feeds


def check_vs_ort(name, op, feeds, attrs, opset=14, tol=1e-5):
    m = make_model(op, feeds, attrs, opset)
    if feeds[0].dtype == np.float64:
        # ORT's CPU GRU/LSTM take no double: its float32 result on the same values (rounded), widened.
        f32 = [a.astype(np.float32) if a is not None and a.dtype == np.float64 else a for a in feeds]
        want = [w.astype(np.float64) for w in run_ort(make_model(op, f32, attrs, opset), f32)]
    else:
        want = run_ort(m, feeds)
    compare(name, run_oq(name, m, feeds), want, tol)


def activation_attrs(op, nd, names):
    """activations + an alpha for every activation taking one and a beta likewise (ORT's defaults for Affine,
    ThresholdedRelu and ScaledTanh are 0, the ONNX operators' are not: both given explicitly)."""
    al = [float(rng.uniform(0.1, 1.5)) for n in names if n in TAKES_ALPHA]
    be = [float(rng.uniform(-0.5, 0.5)) for n in names if n in TAKES_BETA]
    a = {"activations": names}
    if al:
        a["activation_alpha"] = al
    if be:
        a["activation_beta"] = be
    return a


def cases():
    # The named combinations first.
    yield "lstm_bidir_lens_peepholes", "LSTM", random_case("LSTM", "bidirectional", 7, 3, 7, lens=True, peep=True), \
        {"hidden_size": 7, "direction": "bidirectional"}
    yield "lstm_reverse_lens_peepholes_clip", "LSTM", random_case("LSTM", "reverse", 5, 3, 3, lens=True, peep=True), \
        {"hidden_size": 3, "direction": "reverse", "clip": 0.7}
    yield "lstm_input_forget", "LSTM", random_case("LSTM", "forward", 4, 2, 3, peep=True), \
        {"hidden_size": 3, "input_forget": 1}
    for lbr in (0, 1):
        for d in ("forward", "reverse", "bidirectional"):
            yield f"gru_lbr{lbr}_{d}", "GRU", random_case("GRU", d, 6, 3, 7, lens=d != "forward"), \
                {"hidden_size": 7, "direction": d, "linear_before_reset": lbr}
    yield "gru_lbr1_clip_no_bias", "GRU", random_case("GRU", "forward", 3, 2, 3, bias=False), \
        {"hidden_size": 3, "linear_before_reset": 1, "clip": 0.5}
    yield "rnn_relu", "RNN", random_case("RNN", "forward", 7, 3, 3), {"hidden_size": 3, "activations": ["Relu"]}
    yield "rnn_relu_bidir_lens", "RNN", random_case("RNN", "bidirectional", 5, 2, 7, lens=True), \
        {"hidden_size": 7, "direction": "bidirectional", "activations": ["Relu", "Relu"]}
    yield "lstm_float64", "LSTM", random_case("LSTM", "bidirectional", 3, 2, 3, dtype=np.float64, lens=True, peep=True), \
        {"hidden_size": 3, "direction": "bidirectional"}
    yield "gru_float64", "GRU", random_case("GRU", "reverse", 4, 3, 3, dtype=np.float64), \
        {"hidden_size": 3, "direction": "reverse", "linear_before_reset": 1}
    # Then random ones, activations included.
    for it in range(24):
        op = ["RNN", "GRU", "LSTM"][it % 3]
        d = ["forward", "reverse", "bidirectional"][int(rng.integers(0, 3))]
        nd = 2 if d == "bidirectional" else 1
        seq, batch, hidden = int(rng.integers(1, 8)), int(rng.integers(1, 4)), [3, 7][int(rng.integers(0, 2))]
        attrs = {"hidden_size": hidden, "direction": d}
        if it % 2:
            attrs.update(activation_attrs(op, nd, [ACTS[int(rng.integers(0, len(ACTS)))] for _ in range(N_ACTS[op] * nd)]))
        if it % 4 == 3:
            attrs["clip"] = float(rng.uniform(0.3, 1.5))
        if op == "GRU":
            attrs["linear_before_reset"] = int(rng.integers(0, 2))
        feeds = random_case(op, d, seq, batch, hidden, lens=bool(rng.integers(0, 2)), init=bool(rng.integers(0, 2)),
                            peep=bool(rng.integers(0, 2)), bias=bool(rng.integers(0, 4)))
        yield f"random_{it}_{op}_{d}", op, feeds, attrs


def layout1(op):
    """layout=1 node vs ORT on the layout-0 node with transposed inputs and outputs, and vs onnx.reference."""
    d = "bidirectional" if op != "GRU" else "reverse"
    hidden = 3
    feeds1 = random_case(op, d, 5, 3, hidden, peep=op == "LSTM", layout=1)
    attrs = {"hidden_size": hidden, "direction": d}
    m1 = make_model(op, feeds1, dict(attrs, layout=1), 14)
    got = run_oq(f"layout1_{op}", m1, feeds1)
    feeds0 = list(feeds1)
    feeds0[0] = np.ascontiguousarray(feeds1[0].transpose(1, 0, 2))
    for k in (5, 6):
        if k < len(feeds0) and feeds0[k] is not None:
            feeds0[k] = np.ascontiguousarray(feeds1[k].transpose(1, 0, 2))
    want0 = run_ort(make_model(op, feeds0, attrs, 14), feeds0)
    want = [want0[0].transpose(2, 0, 1, 3)] + [w.transpose(1, 0, 2) for w in want0[1:]]
    compare(f"layout1_{op}", got, want)
    ref = ReferenceEvaluator(m1).run(None, {n: a for n, a in zip(IN_NAMES, feeds1) if a is not None})
    compare(f"layout1_{op}_reference", got, ref, 1e-5)


# The executor-speed QA's shapes (audio models: 40 mel bands, hidden 64-256, 100-500 frames) and odd ones around
# them: the float recurrence runs over R packed once (rnn_gemm.cc; 4-row blocks, row tails, 64-column panels),
# which the kernel's debug line names.
QA_SHAPES = [  # op, seq, batch, input, hidden, direction, extra attributes, peepholes
    ("LSTM", 100, 1, 40, 128, "forward", {}, False),
    ("LSTM", 100, 8, 40, 128, "forward", {}, False),
    ("LSTM", 100, 1, 40, 128, "bidirectional", {}, False),
    ("LSTM", 500, 1, 64, 64, "forward", {}, False),
    ("LSTM", 30, 5, 23, 37, "reverse", {"clip": 2.0}, True),
    ("LSTM", 20, 9, 11, 67, "bidirectional", {"input_forget": 1}, True),
    ("GRU", 100, 8, 40, 128, "forward", {}, False),
    ("GRU", 100, 1, 40, 128, "bidirectional", {}, False),
    ("GRU", 25, 6, 13, 45, "forward", {"linear_before_reset": 1}, False),
    ("GRU", 25, 7, 13, 45, "reverse", {"clip": 1.5}, False),
    ("RNN", 100, 8, 40, 128, "forward", {}, False),
    ("RNN", 40, 3, 17, 70, "bidirectional", {}, False),
]


def qa_shape(op, seq, batch, inp, hidden, direction, extra, peep):
    name = f"qa_{op}_T{seq}_B{batch}_{inp}_{hidden}_{direction}"
    nd, g = (2 if direction == "bidirectional" else 1), GATES[op]
    r = lambda *s, sc: rng.uniform(-sc, sc, s).astype(np.float32)  # noqa: E731
    feeds = [r(seq, batch, inp, sc=1.0), r(nd, g * hidden, inp, sc=1 / np.sqrt(inp)),
             r(nd, g * hidden, hidden, sc=1 / np.sqrt(hidden)), r(nd, 2 * g * hidden, sc=0.1), None,
             r(nd, batch, hidden, sc=0.5)]
    if op == "LSTM":
        feeds += [r(nd, batch, hidden, sc=0.5), r(nd, 3 * hidden, sc=0.3) if peep else None]
    m = make_model(op, feeds, dict(hidden_size=hidden, direction=direction, **extra), 14)
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    args = ["-v", "run", os.path.join(d, "model.onnx"), "--output-dir", os.path.join(d, "out"), "--threads", "1"]
    for n, a in zip(IN_NAMES, feeds):
        if a is not None:
            np.save(os.path.join(d, n + ".npy"), a)
            args += ["--input", f"{n}={os.path.join(d, n + '.npy')}"]
    p = oqtest.run_oq(args)
    got = [np.load(os.path.join(d, "out", o.name + ".npy")) for o in m.graph.output]
    compare(name, got, run_ort(m, feeds), 1e-4)
    assert f"{op} '" in p.stderr + p.stdout and "recurrence over R packed once" in p.stderr + p.stdout, \
        f"{name}: no debug line names the packed recurrence"


def optional_outputs():
    feeds = random_case("LSTM", "forward", 4, 2, 3, lens=True)
    m = make_model("LSTM", feeds, {"hidden_size": 3}, 14, outputs=["", "", "Y_c"])
    compare("lstm_only_Y_c", run_oq("lstm_only_Y_c", m, feeds), run_ort(m, feeds))


def onnx_node_tests():
    """The .venv onnx wheel's node tests of RNN/GRU/LSTM (opset 22) with the opset set to 21."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy overflow warnings of other ops' case generators
        import onnx.backend.test.case.node as node_cases
        all_cases = node_cases.collect_testcases()
    n = 0
    for c in all_cases:
        if not any(k in c.name for k in ("lstm", "gru", "rnn")):
            continue
        m = onnx.ModelProto()
        m.CopyFrom(c.model)
        assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0] >= 14, c.name
        for o in m.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = 21
        m.ir_version = 10
        for inputs, outputs in c.data_sets:
            feeds = {}
            d = os.path.join(TMP, c.name)
            os.makedirs(d, exist_ok=True)
            onnx.save(m, os.path.join(d, "model.onnx"))
            args = ["run", os.path.join(d, "model.onnx"), "--output-dir", os.path.join(d, "out")]
            for vi, a in zip(m.graph.input, inputs):
                np.save(os.path.join(d, vi.name + ".npy"), a)
                args += ["--input", f"{vi.name}={os.path.join(d, vi.name + '.npy')}"]
                feeds[vi.name] = a
            oqtest.run_oq(args)
            got = [np.load(os.path.join(d, "out", o.name + ".npy")) for o in m.graph.output]
            compare(c.name, got, outputs, 1e-5)
        n += 1
    assert n >= 18, f"only {n} RNN/GRU/LSTM node tests found"


def main():
    r = oqtest.Runner()
    for name, op, feeds, attrs in cases():
        r.run(name, check_vs_ort, name, op, feeds, attrs, [7, 14][len(name) % 2])
    for op in ("RNN", "GRU", "LSTM"):
        r.run(f"layout1_{op}", layout1, op)
    for shape in QA_SHAPES:
        r.run(f"qa_{shape[0]}_T{shape[1]}_B{shape[2]}_{shape[4]}_{shape[5]}", qa_shape, *shape)
    r.run("optional_outputs", optional_outputs)
    r.run("onnx_node_tests", onnx_node_tests)
    r.finish()


if __name__ == "__main__":
    main()
