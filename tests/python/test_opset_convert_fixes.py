"""Opset conversion of old-opset models, QA sweep of the fourteenth session (docs/conformance.md "Old-opset models
through default mode"), each against an independent reference:

- BatchNormalization-7/9 with named outputs beyond Y is in training mode (onnxruntime computes batch statistics:
  checked here). onnxquant refuses it before any work, at every target and wherever it sits (after a Conv, alone,
  its running mean a graph output), naming the node; unnamed extra outputs are inference (folded, outputs as ORT's
  one-output model). training_mode=1 at opset 15 is refused the same way, before pre-processing.
- BatchNormalization-7 spatial=0 (per-element statistics of shape X.shape[1:]) is converted (Mul + Add, or the node
  with rank-1 statistics) and matches onnxruntime running the original opset-7 model; statistics whose rank does not
  fit X (onnxruntime refuses them) are refused naming the node.
- Pad-2 (attribute form) gets a constant_value input exactly where onnx.version_converter writes one (constant
  mode, value 0 included; none for reflect / edge), so default mode has as many DequantizeLinear feeding the Pad as
  version_converter + quant_pre_process + quantize_static.
- Softmax / LogSoftmax / Hardmax below 13 with a non-last axis: the Reshape back reads a constant shape when the
  input shape is fully static (no Shape node left, as after ORT's constant folding), a Shape node otherwise.
- An op used below the opset where it appears (Resize in an opset-9 model, which onnx.checker refuses) is refused
  on load, naming the node, the op and both opsets; the kernel registrations' first opsets (where onnxquant learns
  them) equal onnx's since-versions.

Env: OQ_BIN, OQ_BUILD_DIR (tests/oq_preprocess_model), OQ_SOURCE_DIR.
"""
import glob
import os
import re
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

from oqtest import BIN, SRC, Runner, default_mode_config, ort_session, run_oq, tmpdir

BUILD = os.environ.get("OQ_BUILD_DIR", os.path.join(SRC, "build"))
TOOL = os.path.join(BUILD, "tests", "oq_preprocess_model")
TMP = tmpdir()
F32 = np.float32
rng = np.random.default_rng(15)


def R(*shape, sc=0.3):
    return (rng.standard_normal(shape) * sc).astype(F32)


def ini(name, a):
    return nh.from_array(np.asarray(a), name)


def vi(name, shape, t=TP.FLOAT):
    return h.make_tensor_value_info(name, t, shape)


def mk(nodes, inputs, outputs, inits=(), opset=9):
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 4 if opset <= 9 else 7
    return m


def save(m, name):
    p = os.path.join(TMP, name + ".onnx")
    onnx.save(m, p)
    return p


def sess(path):
    return ort_session(path, log_level=4)


def convert(src, opset, preprocess=False, expect_ok=True):
    dst = src[:-5] + f".o{opset}{'p' if preprocess else ''}.onnx"
    args = [TOOL, src, dst, "--opset", str(opset)] + ([] if preprocess else ["--no-preprocess"])
    r = subprocess.run(args, capture_output=True, text=True)
    if expect_ok:
        assert r.returncode == 0, f"{src} -> {opset}: {r.stderr.strip()}"
        onnx.checker.check_model(onnx.load(dst), full_check=True)
    return dst, r


def quantize(name, model_path, x, opset, expect_ok=True):
    d = os.path.join(TMP, f"{name}_q{opset}")
    os.makedirs(d, exist_ok=True)
    data = os.path.join(d, "calib.npz")
    np.savez(data, x=x)
    cfg = os.path.join(d, "cfg.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(model_path, data, opset=opset))
    p = run_oq(["--config", cfg, "--output-dir", d, "--threads", "1"], check=False)
    written = glob.glob(os.path.join(d, "**", "*.onnx"), recursive=True)
    if expect_ok:
        assert p.returncode == 0, f"{name} -> {opset}: {p.stderr[-1500:]}"
        assert len(written) == 1, written
        return written[0], p
    return written, p


def error_lines(stderr):
    return [line for line in stderr.splitlines() if "[error]" in line or line.startswith("error")]


def assert_refused(p, written, *needles):
    assert p.returncode == 1, f"rc {p.returncode}: {p.stderr[-800:]}"
    assert not written, f"files written: {written}"
    errs = error_lines(p.stderr)
    assert len(errs) == 1, errs
    for s in needles:
        assert s in errs[0], f"{s!r} not in {errs[0]!r}"


def snr(ref, got):
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    return 10 * np.log10(np.sum(ref ** 2) / max(np.sum((ref - got) ** 2), 1e-30))


# ---- 1. BatchNormalization-7/9 with extra outputs: training mode ----

BN_INITS = [ini("s", rng.uniform(0.5, 1.5, 8).astype(F32)), ini("b", R(8)), ini("m", R(8, sc=0.1)),
            ini("v", rng.uniform(0.5, 2, 8).astype(F32))]
CONV_INITS = [ini("W", R(8, 3, 3, 3)), ini("B", R(8))]
X_BN = rng.standard_normal((4, 3, 8, 8)).astype(F32)


def bn_model(opset, outs, after_conv=True, rm_output=False):
    nodes = [h.make_node("BatchNormalization", ["c" if after_conv else "x", "s", "b", "m", "v"], outs, name="bn",
                         epsilon=1e-3)]
    if after_conv:
        nodes.insert(0, h.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]))
    c = 3 if after_conv else 8
    x_shape = [1, c, 8, 8]
    outputs = [vi("y", [1, 8, 8, 8])] + ([vi("rm", [8])] if rm_output else [])
    return mk(nodes, [vi("x", x_shape)], outputs, (CONV_INITS if after_conv else []) + BN_INITS, opset=opset)


def test_bn_training_is_what_ort_computes():
    # The oracle: ORT normalises with the batch's statistics (per-channel mean of Y = B), not the running ones.
    p = save(bn_model(9, ["y", "rm", "rv", "sm", "sv"]), "bn_train_ort")
    y = sess(p).run(None, {"x": X_BN[:1]})[0]
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), nh.to_array(BN_INITS[1]), atol=1e-4)


def test_bn_training_refused():
    cases = {"after_conv": {}, "alone": {"after_conv": False}, "rm_output": {"rm_output": True}}
    for opset in (7, 9):
        for tag, kw in cases.items():
            outs = ["y", "rm", "rv", "sm", "sv"]
            path = save(bn_model(opset, outs, **kw), f"bn_train{opset}_{tag}")
            x = X_BN if kw.get("after_conv", True) else rng.standard_normal((4, 8, 8, 8)).astype(F32)
            for target in (13, 14, 21):
                written, p = quantize(f"bn_train{opset}_{tag}", path, x, target, expect_ok=False)
                assert_refused(p, written, "'bn'", "BatchNormalization", "training mode", "output 2 'rm'")
    # `run` refuses it too (load check), and the converter names it for direct callers.
    path = os.path.join(TMP, "bn_train9_after_conv.onnx")
    np.save(os.path.join(TMP, "x1.npy"), X_BN[:1])
    p = run_oq(["run", path, "--input", os.path.join(TMP, "x1.npy"), "--output-dir", os.path.join(TMP, "run_out")],
               check=False)
    assert p.returncode == 1 and "training mode" in p.stderr and "'bn'" in p.stderr, p.stderr[-500:]
    _, r = convert(path, 21, expect_ok=False)
    assert r.returncode == 1 and "'bn'" in r.stderr and "training mode" in r.stderr, r.stderr


def test_bn_training_mode_15_refused_before_work():
    m = mk([h.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            h.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"], name="bn_t", training_mode=1)],
           [vi("x", [1, 3, 8, 8])], [vi("y", [1, 8, 8, 8])], CONV_INITS + BN_INITS, opset=15)
    path = save(m, "bn_training_mode15")
    written, p = quantize("bn_training_mode15", path, X_BN, 21, expect_ok=False)
    assert_refused(p, written, "'bn_t'", "training_mode=1", "inference only")
    assert "Pre-processing" not in p.stderr, "refused after pre-processing, not on load"


def test_bn_unnamed_extra_outputs_are_inference():
    ref = sess(save(bn_model(9, ["y"]), "bn_one_output")).run(None, {"x": X_BN[:1]})[0]
    path = save(bn_model(9, ["y", "", "", "", ""]), "bn_unnamed")
    for target in (13, 21):
        q, _ = quantize("bn_unnamed", path, X_BN, target)
        m = onnx.load(q)
        assert not any(n.op_type == "BatchNormalization" for n in m.graph.node), "BN not folded"
        assert snr(ref, sess(q).run(None, {"x": X_BN[:1]})[0]) > 25


# ---- 2. BatchNormalization-7 spatial=0 ----

def spatial0_model(x_shape, stat_shape, constant=True, name="bn_sp0"):
    stats = [rng.uniform(0.5, 1.5, stat_shape).astype(F32), R(*stat_shape), R(*stat_shape, sc=0.1),
             rng.uniform(0.5, 2, stat_shape).astype(F32)]
    names = ["s", "b", "m", "v"]
    nodes = [h.make_node("Relu", ["x"], ["r"], name="relu")]
    if not constant:  # statistics computed by nodes (Abs of an initializer): not constants for the converter
        nodes += [h.make_node("Abs", [k + "0"], [k], name="abs_" + k) for k in names]
        inits = [ini(k + "0", np.abs(a)) for k, a in zip(names, stats)]
    else:
        inits = [ini(k, a) for k, a in zip(names, stats)]
    nodes.append(h.make_node("BatchNormalization", ["r"] + names, ["y"], name=name, spatial=0, epsilon=1e-3))
    return mk(nodes, [vi("x", x_shape)], [vi("y", x_shape)], inits, opset=7)


def test_bn_spatial0_converted():
    for tag, xs, ss, const in (("4d", [2, 3, 4, 5], [3, 4, 5], True), ("3d", [2, 3, 4], [3, 4], True),
                               ("2d", [2, 6], [6], True), ("4d_nodes", [2, 3, 4, 5], [3, 4, 5], False),
                               ("4d_dynbatch", ["N", 3, 4, 5], [3, 4, 5], True)):
        src = save(spatial0_model(xs, ss, const), "sp0_" + tag)
        x = rng.standard_normal([2 if isinstance(d, str) else d for d in xs]).astype(F32)
        ref = sess(src).run(None, {"x": x})[0]
        # numpy reference of the spec's inference formula
        st = {k: nh.to_array(t) for k, t in ((t.name, t) for t in onnx.load(src).graph.initializer)}
        get = (lambda k: st[k]) if const else (lambda k: np.abs(st[k + "0"]))
        want = (np.maximum(x, 0) - get("m")) / np.sqrt(get("v") + 1e-3) * get("s") + get("b")
        np.testing.assert_allclose(ref, want, rtol=1e-5, atol=1e-5, err_msg=tag + " (ORT vs numpy)")
        for target in (13, 21):
            for pre in (False, True):
                dst, _ = convert(src, target, preprocess=pre)
                got = sess(dst).run(None, {"x": x})[0]
                np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=f"{tag} -> {target} pre={pre}")
                ops = [n.op_type for n in onnx.load(dst).graph.node]
                assert ("BatchNormalization" in ops) == (len(ss) == 1), f"{tag}: {ops}"
        if tag == "4d_dynbatch":
            q, _ = quantize("sp0_4d", src, rng.standard_normal([8] + xs[1:]).astype(F32), 21)
            assert snr(ref, sess(q).run(None, {"x": x})[0]) > 25


def test_bn_spatial0_refusals():
    # Rank-1 statistics on a 4-D input: onnxruntime refuses the original ("Invalid input scale"), so do we.
    src = save(spatial0_model([1, 3, 2, 2], [3], name="bn_bad"), "sp0_bad")
    try:
        sess(src).run(None, {"x": np.zeros((1, 3, 2, 2), F32)})
        raise AssertionError("ORT ran rank-1 statistics on a 4-D input")
    except ort.capi.onnxruntime_pybind11_state.InvalidArgument:
        pass
    _, r = convert(src, 21, expect_ok=False)
    assert r.returncode == 1 and "'bn_bad'" in r.stderr and "spatial=0" in r.stderr and "rank 1" in r.stderr, r.stderr


# ---- 3. Pad-2 constant_value as onnx.version_converter writes it ----

def pad_model(**kw):
    return mk([h.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
               h.make_node("Pad", ["c"], ["p"], name="pad", pads=[0, 0, 1, 1, 0, 0, 1, 1], **kw),
               h.make_node("MaxPool", ["p"], ["y"], name="mp", kernel_shape=[2, 2], strides=[2, 2])],
              [vi("x", [1, 3, 8, 8])], [vi("y", [1, 4, 5, 5])], [ini("W", R(4, 3, 3, 3))], opset=9)


def pad_inputs(model):
    (pad,) = [n for n in model.graph.node if n.op_type == "Pad"]
    consts = {t.name: nh.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = nh.to_array(n.attribute[0].t)
    cv = [float(consts[i]) for i in pad.input[2:] if i]
    return len(pad.input), cv


def dq_into(model, op):
    feeds = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return sum(i in feeds for n in model.graph.node if n.op_type == op for i in n.input)


def test_pad_constant_value():
    x = rng.standard_normal((8, 3, 8, 8)).astype(F32)
    cases = {"default": {}, "explicit0": {"value": 0.0}, "v025": {"value": 0.25},
             "constant_mode": {"mode": "constant"}, "reflect": {"mode": "reflect"}, "edge": {"mode": "edge", "value": 0.5}}
    for tag, kw in cases.items():
        m = pad_model(**kw)
        src = save(m, "pad_" + tag)
        ref_conv = onnx.version_converter.convert_version(m, 13)
        dst, _ = convert(src, 13)
        assert pad_inputs(onnx.load(dst)) == pad_inputs(ref_conv), \
            f"{tag}: ours {pad_inputs(onnx.load(dst))} onnx {pad_inputs(ref_conv)}"
        np.testing.assert_allclose(sess(dst).run(None, {"x": x[:1]})[0], sess(src).run(None, {"x": x[:1]})[0],
                                   rtol=1e-5, atol=1e-5)
        if tag in ("default", "v025", "reflect"):
            q, _ = quantize("pad_" + tag, src, x, 13)
            ref_q = reference_quantize(ref_conv, x, "pad_" + tag)
            assert dq_into(onnx.load(q), "Pad") == dq_into(ref_q, "Pad"), \
                f"{tag}: DQ into Pad {dq_into(onnx.load(q), 'Pad')} vs ORT {dq_into(ref_q, 'Pad')}"


def reference_quantize(model, x, name):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    d = os.path.join(TMP, name + "_ref")
    os.makedirs(d, exist_ok=True)
    src, pre, out = (os.path.join(d, f) for f in ("conv.onnx", "pre.onnx", "q.onnx"))
    onnx.save(model, src)
    quant_pre_process(src, pre)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.it, None)
    quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    return onnx.load(out)


# ---- 4. Softmax family below 13: constant shape when static ----

def test_softmax_static_shape():
    for op in ("Softmax", "LogSoftmax", "Hardmax"):
        for tag, shape in (("static", [1, 3, 4, 5]), ("dynamic", ["N", 3, 4, 5])):
            m = mk([h.make_node("Relu", ["x"], ["r"], name="relu"),
                    h.make_node(op, ["r"], ["y"], name="sm", axis=2)], [vi("x", shape)], [vi("y", shape)], opset=9)
            src = save(m, f"{op}_{tag}")
            dst, _ = convert(src, 13)
            c = onnx.load(dst)
            ops = [n.op_type for n in c.graph.node]
            assert ("Shape" in ops) == (tag == "dynamic"), f"{op} {tag}: {ops}"
            if tag == "static":
                (rs,) = [n for n in c.graph.node if n.op_type == "Reshape"]
                target = {t.name: nh.to_array(t) for t in c.graph.initializer}[rs.input[1]]
                assert target.tolist() == [1, 3, 4, 5], target
            x = rng.standard_normal((2 if tag == "dynamic" else 1, 3, 4, 5)).astype(F32)
            np.testing.assert_allclose(sess(dst).run(None, {"x": x})[0], sess(src).run(None, {"x": x})[0],
                                       rtol=1e-5, atol=1e-6, err_msg=f"{op} {tag}")


# ---- 5. An op below the opset where it appears ----

def test_op_before_its_opset():
    m = mk([h.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            h.make_node("Resize", ["c", "sc"], ["y"], name="rs_bad", mode="nearest")],
           [vi("x", [1, 3, 8, 8])], [vi("y", [1, 4, 16, 16])],
           [ini("W", R(4, 3, 3, 3)), ini("sc", np.array([1, 1, 2, 2], F32))], opset=9)
    try:  # the oracle: onnx's checker refuses it
        onnx.checker.check_model(m)
        raise AssertionError("onnx.checker accepted Resize at opset 9")
    except onnx.checker.ValidationError:
        pass
    src = save(m, "resize_at9")
    for target in (13, 21):
        written, p = quantize("resize_at9", src, rng.standard_normal((4, 3, 8, 8)).astype(F32), target,
                              expect_ok=False)
        assert_refused(p, written, "'rs_bad'", "Resize does not exist at opset 9", "appears at opset 10")
    xin = os.path.join(TMP, "x9.npy")
    np.save(xin, np.zeros((1, 3, 8, 8), F32))
    out = os.path.join(TMP, "run9")

    def run(path, *extra):
        return run_oq(["run", path, "--input", "x=" + xin, *extra, "--output-dir", out], check=False)
    p = run(src)
    assert p.returncode == 1 and "appears at opset 10" in p.stderr and not os.path.exists(out), p.stderr[-400:]
    # In a body too: an If branch using Resize at opset 9.
    then = h.make_graph([h.make_node("Resize", ["c", "sc"], ["t"], name="rs_body")], "then", [],
                        [vi("t", None)])
    other = h.make_graph([h.make_node("Identity", ["c"], ["e"], name="id")], "else", [], [vi("e", None)])
    mb = mk([h.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             h.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other)],
            [vi("x", [1, 3, 8, 8]), vi("cond", [], TP.BOOL)], [vi("y", None)],
            [ini("W", R(4, 3, 3, 3)), ini("sc", np.array([1, 1, 2, 2], F32))], opset=9)
    cond = os.path.join(TMP, "cond.npy")
    np.save(cond, np.array(True))
    p = run(save(mb, "resize_body_at9"), "--input", "cond=" + cond)
    assert p.returncode == 1 and "'rs_body'" in p.stderr and "appears at opset 10" in p.stderr, p.stderr[-400:]


def test_registry_since_versions():
    """Where onnxquant learns an op's first opset (its kernel registrations) equals onnx's since-version."""
    regs = {}
    for f in glob.glob(os.path.join(SRC, "src", "exec", "kernels", "*.cc")):
        for op, lo in re.findall(r"OQ_REGISTER_KERNEL\((\w+),\s*(\w+),", open(f).read()):
            lo = 7 if lo == "kMinOpset" else int(lo)
            regs[op] = min(regs.get(op, 99), lo)
    assert len(regs) > 150, len(regs)
    since = {}
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain == "":
            since[s.name] = min(since.get(s.name, 99), s.since_version)
    bad = []
    for op, lo in sorted(regs.items()):
        if op.startswith("_Oq"):
            continue
        first = since[op]
        if max(first, 7) != max(lo, 7):
            bad.append(f"{op}: registered from {lo}, onnx since {first}")
    assert not bad, bad


def main():
    assert os.path.exists(TOOL), f"{TOOL} not built"
    assert os.path.exists(BIN), f"{BIN} not built"
    r = Runner()
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            r.run(name, fn)
    r.finish()


if __name__ == "__main__":
    main()
