"""Models importing ai.onnx opset 28 (onnx 1.23's newest, the newest the executor supports).

Every op with a kernel whose schema changed at 28 (onnx.defs, docs/conformance.md "Opsets 22 to 28"), run by
`onnxquant run` at opset 28 and compared with onnxruntime 1.32 (graph optimizations disabled; 1e-5, integers
exactly, and the sign of float zeros for Mod), or with onnx.reference where onnxruntime 1.32 has no kernel at 28
(OneHot-28, SwiGLU-28: its function body calls Swish, which onnxruntime lacks):
- Mod with fmod = 0 on float / float16 / double (opset 28 defines it: floor quotient, zero with the divisor's
  sign, the infinity rules) and fmod = 1 on integers;
- BitShift on int8..int64 (arithmetic right shift, left shift past the sign bit, counts negative or >= the width);
- SpaceToDepth's `mode` (DCR and CRD), DepthToSpace, Celu on double, ReduceLogSum / ReduceLogSumExp, Compress,
  Unique, ReverseSequence, Einsum, Cast, OneHot, the new SwiGLU;
- refusals, one line naming the node: ReduceLogSum on int32 at 28, a Cast to float6e2m3, BitShift on int8 and
  SpaceToDepth's `mode` at 27, Optional-28 (no kernel); a model at opset 29 is refused naming its opset;
- the graphs of test_opsets_22_27.py's cnn at 28;
- target_opset 28 on an opset-13 model converts it (IR version 14 as onnx.helper.VERSION_TABLE gives), the
  written model passes onnx.checker's full check. onnxruntime 1.32 has no QuantizeLinear / DequantizeLinear
  kernel at 28, so the written model is run in onnxruntime with its import lowered to 27 (none of its ops changed
  at 28) and by onnxquant's `run` at 28: both top-1 scores agree.
- inspection on an opset-28 model (scored by onnxquant at 28 and by onnxruntime at 27 alike);
- a SwiGLU model through default mode (which quantize_static cannot do): SwiGLU left in float between Q/DQ.
Default-mode parity with quantize_static at 28 is in tests/python/test_quant_parity.py.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import TESTDATA, Runner, assert_same_output, ort_top1, run_oq, tmpdir  # noqa: E402
from test_opsets_22_27 import cnn, digits_at, init, make_model, main_job, oq_run, ort_run, vi  # noqa: E402

RNG = np.random.default_rng(28)
CHANGED_AT_28 = {"BitShift", "Cast", "Celu", "Compress", "DepthToSpace", "DequantizeLinear", "Einsum", "Mod",
                 "OneHot", "QuantizeLinear", "ReduceLogSum", "ReduceLogSumExp", "ReverseSequence", "SpaceToDepth",
                 "Unique"}
NP2ONNX = {np.dtype(k): v for k, v in [(np.float32, TensorProto.FLOAT), (np.float64, TensorProto.DOUBLE),
                                       (np.float16, TensorProto.FLOAT16), (np.int8, TensorProto.INT8),
                                       (np.int16, TensorProto.INT16), (np.int32, TensorProto.INT32),
                                       (np.int64, TensorProto.INT64), (np.uint8, TensorProto.UINT8),
                                       (np.uint32, TensorProto.UINT32), (np.bool_, TensorProto.BOOL)]}


def one_node(op, feeds, outs=1, opset=28, inits=(), check=True, **attrs):
    node = helper.make_node(op, list(feeds) + [i.name for i in inits], [f"y{k}" for k in range(outs)], name="n",
                            **attrs)
    ins = [vi(k, NP2ONNX[v.dtype], list(v.shape)) for k, v in feeds.items()]
    m = make_model([node], list(inits), ins, [onnx.ValueInfoProto(name=f"y{k}") for k in range(outs)], opset,
                   check=False)
    if check:  # declare the outputs with onnx's inferred types, then the full check
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        types = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)
                 if v.type.HasField("tensor_type")}
        for o in m.graph.output:
            o.CopyFrom(types[o.name])
        onnx.checker.check_model(m, full_check=True)
    return m


def compare(m, feeds, oracle="ORT", signed_zero=False):
    d = tmpdir()
    path = os.path.join(d, "m.onnx")
    onnx.save(m, path)
    if oracle == "ORT":
        want = ort_run(path, feeds)
    else:
        ref = ReferenceEvaluator(m)
        want = dict(zip(ref.output_names, ref.run(None, feeds)))
    got = oq_run(path, feeds, d)
    assert sorted(got) == sorted(want), f"outputs {sorted(got)} vs {oracle} {sorted(want)}"
    for k in want:
        assert_same_output(k, got[k], want[k], exact=want[k].dtype.kind != "f", oracle=oracle)
        if signed_zero:
            z = want[k] == 0
            assert np.array_equal(np.signbit(got[k][z]), np.signbit(want[k][z])), \
                f"{k}: signs of zeros differ from {oracle}: {got[k].tolist()} vs {want[k].tolist()}"


def mod():
    a = np.array([-4, -3.5, -0.0, 0.0, 3.5, np.inf, 1, -1, 5, -5, np.nan, 7.25, -0.0, 2], np.float32)
    b = np.array([2, 2, 3, -3, -2, 2, np.inf, np.inf, -np.inf, 0, 1, 0.5, -np.inf, np.nan], np.float32)
    for t in (np.float32, np.float64, np.float16):
        compare(one_node("Mod", {"a": a.astype(t), "b": b.astype(t)}), {"a": a.astype(t), "b": b.astype(t)},
                signed_zero=True)
    x = (RNG.standard_normal((3, 5)) * 10).astype(np.float32)
    y = np.array([1.5, -2.25, 3, -0.75, 7], np.float32)  # broadcast over rows
    compare(one_node("Mod", {"a": x, "b": y}), {"a": x, "b": y}, signed_zero=True)
    compare(one_node("Mod", {"a": x, "b": y}, fmod=1), {"a": x, "b": y}, signed_zero=True)
    for t in (np.int8, np.int32, np.int64):
        ai = np.array([-7, 7, -7, 7, 0, -128 if t == np.int8 else -1000], t)
        bi = np.array([2, -2, -2, 3, 5, 3], t)
        compare(one_node("Mod", {"a": ai, "b": bi}, fmod=1), {"a": ai, "b": bi})
        compare(one_node("Mod", {"a": ai, "b": bi}), {"a": ai, "b": bi})


def bitshift():
    for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32):
        bits = np.dtype(t).itemsize * 8
        lo, hi = np.iinfo(t).min, np.iinfo(t).max
        x = np.array([lo, hi, -1 if lo < 0 else 1, 5, 8, lo, hi, 3, 100 % hi], t)
        s = np.array([1, bits - 1, bits, bits + 1, 3, 0, 1, bits - 2, 2], t)
        if lo < 0:
            s = np.concatenate([s, np.array([-1, -bits], t)])
            x = np.concatenate([x, np.array([lo + 3, -9], t)])
        for d in ("LEFT", "RIGHT"):
            compare(one_node("BitShift", {"x": x, "s": s}, direction=d), {"x": x, "s": s})
    x = RNG.integers(-1000, 1000, (4, 6)).astype(np.int32)  # broadcast count over columns
    s = np.array([0, 1, 4, 9, 31, 32], np.int32)
    for d in ("LEFT", "RIGHT"):
        compare(one_node("BitShift", {"x": x, "s": s}, direction=d), {"x": x, "s": s})


def space_depth():
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    for mode in ("DCR", "CRD"):
        compare(one_node("SpaceToDepth", {"x": x}, blocksize=2, mode=mode), {"x": x})
        y = np.arange(1 * 8 * 2 * 3, dtype=np.int64).reshape(1, 8, 2, 3)
        compare(one_node("DepthToSpace", {"x": y}, blocksize=2, mode=mode), {"x": y})
    compare(one_node("SpaceToDepth", {"x": x}, blocksize=2), {"x": x})  # mode omitted: DCR
    # SpaceToDepth CRD then DepthToSpace CRD is the identity.
    m = make_model([helper.make_node("SpaceToDepth", ["x"], ["s"], blocksize=2, mode="CRD"),
                    helper.make_node("DepthToSpace", ["s"], ["y"], blocksize=2, mode="CRD")], [],
                   [vi("x", TensorProto.FLOAT, [2, 3, 4, 6])], [vi("y", TensorProto.FLOAT, [2, 3, 4, 6])], 28)
    d = tmpdir()
    onnx.save(m, os.path.join(d, "m.onnx"))
    assert np.array_equal(oq_run(os.path.join(d, "m.onnx"), {"x": x}, d)["y"], x)


def others():
    x = (RNG.standard_normal((3, 4, 5)) * 3).astype(np.float32)
    compare(one_node("Celu", {"x": x}, alpha=0.7), {"x": x})
    compare(one_node("Celu", {"x": x.astype(np.float64)}, alpha=1.3), {"x": x.astype(np.float64)})
    p = np.abs(x) + 0.1
    for op in ("ReduceLogSum", "ReduceLogSumExp"):
        compare(one_node(op, {"x": p}, inits=[init("ax", np.array([1], np.int64))], keepdims=0), {"x": p})
        compare(one_node(op, {"x": p}), {"x": p})
    c = np.array([True, False, True, True])
    compare(one_node("Compress", {"x": x, "c": c}, axis=1), {"x": x, "c": c})
    compare(one_node("Compress", {"x": x, "c": c}), {"x": x, "c": c})
    u = np.array([[3, 1, 3], [2, 1, 3], [3, 1, 3]], np.float32)
    compare(one_node("Unique", {"x": u}, outs=4, sorted=1, axis=0), {"x": u})
    compare(one_node("Unique", {"x": u}, outs=4, sorted=0), {"x": u})
    lens = np.array([1, 4, 2], np.int64)
    r = x.transpose(1, 0, 2).copy()  # [time 4, batch 3, 5]
    compare(one_node("ReverseSequence", {"x": r, "l": lens}, batch_axis=1, time_axis=0), {"x": r, "l": lens})
    a, b = x[0], (RNG.standard_normal((5, 6))).astype(np.float32)
    compare(one_node("Einsum", {"a": a, "b": b}, equation="ij,jk->ik"), {"a": a, "b": b})
    compare(one_node("Einsum", {"a": x}, equation="bij->bji"), {"a": x})
    ai = RNG.integers(-5, 5, (3, 4)).astype(np.int32)
    compare(one_node("Einsum", {"a": ai, "b": ai}, equation="ij,ij->i"), {"a": ai, "b": ai})
    compare(one_node("Cast", {"x": x}, to=TensorProto.INT32), {"x": x})
    compare(one_node("Cast", {"x": x}, to=TensorProto.FLOAT16), {"x": x})
    idx = np.array([[1, -1, 0], [3, 2, -4]], np.int64)
    for axis in (-1, 0):
        compare(one_node("OneHot", {"i": idx}, inits=[init("d", np.array(4, np.int64)),
                                                     init("v", np.array([0, 5], np.int32))], axis=axis),
                {"i": idx}, oracle="onnx.reference")
    g, v = x, (RNG.standard_normal(x.shape)).astype(np.float32)
    for alpha in (1.0, 1.702):
        compare(one_node("SwiGLU", {"a": g, "b": v}, alpha=alpha), {"a": g, "b": v}, oracle="onnx.reference")


def refusals():
    x32 = np.ones((2, 3), np.int32)
    cases = [
        (28, "ReduceLogSum", {"x": x32}, {}, ["'n'", "ReduceLogSum", "INT32", "opset 28"]),
        (28, "Cast", {"x": np.ones((2, 3), np.float32)}, {"to": TensorProto.FLOAT6E2M3}, ["'n'", "Cast", "to=27"]),
        (27, "BitShift", {"x": np.ones(3, np.int8), "s": np.ones(3, np.int8)}, {"direction": "LEFT"},
         ["'n'", "BitShift", "int8", "before opset 28"]),
        (27, "SpaceToDepth", {"x": np.ones((1, 1, 2, 2), np.float32)}, {"blocksize": 2, "mode": "CRD"},
         ["'n'", "SpaceToDepth", "mode", "opset 28"]),
        (28, "OptionalHasElement", {"x": np.ones(3, np.float32)}, {}, ["'n'", "OptionalHasElement", "not supported"]),
        (28, "SwiGLU", {"a": np.ones(3, np.float32), "b": np.ones((2, 3), np.float32)}, {},
         ["'n'", "SwiGLU", "same shape"]),
    ]
    for opset, op, feeds, attrs, words in cases:
        d = tmpdir()
        m = one_node(op, feeds, opset=opset, check=False, **attrs)
        path = os.path.join(d, "m.onnx")
        onnx.save(m, path)
        args = ["run", path, "--output-dir", os.path.join(d, "o")]
        for k, v in feeds.items():
            np.save(os.path.join(d, k + ".npy"), v)
            args += ["--input", f"{k}={os.path.join(d, k + '.npy')}"]
        p = run_oq(args, check=False)
        err = p.stderr.strip()
        assert p.returncode == 1, f"{op}-{opset}: exit {p.returncode}: {err}"
        assert len(err.splitlines()) == 1, f"{op}-{opset}: not one line:\n{err}"
        for w in words:
            assert w in err, f"{op}-{opset}: '{w}' not in: {err}"


def opset_29_refused():
    d = tmpdir()
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], [], [vi("x", TensorProto.FLOAT, [2])],
                   [vi("y", TensorProto.FLOAT, [2])], 28)
    m.opset_import[0].version = 29
    path = os.path.join(d, "m29.onnx")
    onnx.save(m, path)
    np.save(os.path.join(d, "x.npy"), np.ones(2, np.float32))
    p = run_oq(["run", path, "--input", f"x={os.path.join(d, 'x.npy')}", "--output-dir", os.path.join(d, "o")],
               check=False)
    err = p.stderr.strip()
    assert p.returncode == 1 and len(err.splitlines()) == 1, f"exit {p.returncode}: {err}"
    assert "opset 29, newer than the newest supported (28)" in err and "m29.onnx" in err, err


def target_converts_28():
    d = tmpdir()
    out = os.path.join(d, "out")
    main_job(os.path.join(TESTDATA, "digits_resnet.onnx"), out,
             ["quantization.operating_mode=default", "quantization.target_opset=28"])
    q = os.path.join(out, "quantized_models", "digits_resnet_quant_qdq_pc.onnx")
    m = onnx.load(q)
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [28]
    assert m.ir_version == 14 == helper.find_min_ir_version_for([helper.make_opsetid("", 28)]), m.ir_version
    ops = {n.op_type for n in m.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops, ops
    # The log warns that onnxruntime cannot run it; the premise checked against the installed onnxruntime.
    log = open(os.path.join(out, "onnxquant.log")).read()
    assert "no QuantizeLinear / DequantizeLinear kernels at opset 28" in log, "missing opset-28 warning"
    import onnxruntime as ort
    try:
        ort.InferenceSession(q, providers=["CPUExecutionProvider"])
        ort_refused = ""
    except Exception as e:  # onnxruntime's NotImplemented
        ort_refused = str(e)
    assert "QuantizeLinear(28)" in ort_refused, \
        f"onnxruntime's answer changed ({ort_refused!r}): update the opset-28 warning in tools/cli/job.cc"
    npz = os.path.join(TESTDATA, "digits_test.npz")
    # onnxruntime 1.32 has no QuantizeLinear / DequantizeLinear kernel at 28: run the same graph imported at 27
    # (the ops of the model did not change meaning at 28 except by new types it does not use).
    assert not (ops & CHANGED_AT_28 - {"QuantizeLinear", "DequantizeLinear", "Cast"}), ops & CHANGED_AT_28
    m.opset_import[0].version = 27
    m.ir_version = 13
    q27 = os.path.join(d, "q27.onnx")
    onnx.save(m, q27)
    ort_score = ort_top1(q27, npz)
    assert ort_score > 80, ort_score
    data = np.load(npz)
    got = oq_run(q, {m.graph.input[0].name: data["x"]}, tmpdir())[m.graph.output[0].name]
    oq_score = 100.0 * float(np.mean(got.reshape(len(got), -1).argmax(1) == data["y"]))
    assert abs(oq_score - ort_score) <= 0.2, f"onnxquant at 28: {oq_score}, ORT at 27: {ort_score}"

def inspection_opset28():
    """Inspection on the digits MobileNet at 28: an opset-28 model (IR 14, full_check), a non-empty report, and the
    written model scored by onnxquant's `run` at 28 and by onnxruntime on the same graph imported at 27 alike."""
    d = tmpdir()
    model = digits_at(28, d)
    out = os.path.join(d, "out")
    main_job(model, out, ["quantization.operating_mode=inspection", "quantization.target_opset=28"])
    q = os.path.join(out, "quantized_models", "digits_op28_quant_qdq_pc.onnx")
    m = onnx.load(q)
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [28] and m.ir_version == 14
    assert json.load(open(os.path.join(out, "inspection.json"))), "empty inspection report"
    ops = {n.op_type for n in m.graph.node}
    assert not (ops & CHANGED_AT_28 - {"QuantizeLinear", "DequantizeLinear", "Cast"}), ops & CHANGED_AT_28
    npz = os.path.join(TESTDATA, "digits_test.npz")
    data = np.load(npz)
    y = oq_run(q, {m.graph.input[0].name: data["x"]}, tmpdir())[m.graph.output[0].name]
    ours = 100.0 * float(np.mean(y.reshape(len(y), -1).argmax(1) == data["y"]))
    m.opset_import[0].version = 27
    m.ir_version = 13
    q27 = os.path.join(d, "q27.onnx")
    onnx.save(m, q27)
    theirs = ort_top1(q27, npz)
    assert ours > 80 and abs(ours - theirs) <= 0.2, (ours, theirs)


def swiglu_default_mode():
    """An opset-28 MLP with a SwiGLU after its first Relu through default mode: onnxruntime cannot quantize it (its
    SwiGLU body calls Swish, which it lacks); onnxquant writes an opset-28 model (full_check) with SwiGLU left in
    float, reading dequantized values and quantized after, and its `run` of the written model agrees with its
    `run` of the float model on top-1 within 5 points (8-bit per-tensor)."""
    d = tmpdir()
    m = onnx.version_converter.convert_version(onnx.load(os.path.join(TESTDATA, "digits_mlp.onnx")), 28)
    m.ir_version = 14
    g = m.graph
    relu = next(n for n in g.node if n.op_type == "Relu")
    for n in g.node:
        for i, x in enumerate(n.input):
            if x == relu.output[0]:
                n.input[i] = "swi"
    g.node.insert(list(g.node).index(relu) + 1,
                  helper.make_node("SwiGLU", [relu.output[0], relu.output[0]], ["swi"], name="swiglu", alpha=1.5))
    onnx.checker.check_model(m, full_check=True)
    src = os.path.join(d, "mlp_swiglu.onnx")
    onnx.save(m, src)
    out = os.path.join(d, "out")
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out, f"model.model_path={src}",
            "dataset.quantization_path=testdata/digits_calib_flat.npz", "quantization.operating_mode=default",
            "quantization.target_opset=28", "quantization.granularity=per_tensor"])
    q = os.path.join(out, "quantized_models", "mlp_swiglu_quant_qdq_pt.onnx")
    qm = onnx.load(q)
    onnx.checker.check_model(qm, full_check=True)
    assert [o.version for o in qm.opset_import if o.domain in ("", "ai.onnx")] == [28]
    producer = {o: n.op_type for n in qm.graph.node for o in n.output}
    sw = [n for n in qm.graph.node if n.op_type == "SwiGLU"]
    assert len(sw) == 1 and all(producer.get(i) == "DequantizeLinear" for i in sw[0].input), sw
    readers = [n.op_type for n in qm.graph.node if sw[0].output[0] in n.input]
    assert readers == ["QuantizeLinear"], readers
    data = np.load(os.path.join(TESTDATA, "digits_test_flat.npz"))
    feeds = {m.graph.input[0].name: data["x"]}
    name = m.graph.output[0].name
    top = {}
    for k, path in (("float", src), ("int8", q)):
        y = oq_run(path, feeds, tmpdir())[name]
        top[k] = 100.0 * float(np.mean(y.reshape(len(y), -1).argmax(1) == data["y"]))
    assert top["float"] > 50 and abs(top["float"] - top["int8"]) <= 5, top
    print(f"  top-1 float {top['float']:.2f}, int8 {top['int8']:.2f}")


if __name__ == "__main__":
    r = Runner()
    r.run("cnn opset 28", cnn, 28)
    r.run("Mod-28", mod)
    r.run("BitShift-28 signed", bitshift)
    r.run("SpaceToDepth-28 mode / DepthToSpace-28", space_depth)
    r.run("Celu, ReduceLogSum(Exp), Compress, Unique, ReverseSequence, Einsum, Cast, OneHot, SwiGLU at 28", others)
    r.run("refusals at 27 / 28", refusals)
    r.run("opset 29 refused", opset_29_refused)
    r.run("target_opset 28 converts", target_converts_28)
    r.run("inspection opset 28", inspection_opset28)
    r.run("SwiGLU model through default mode", swiglu_default_mode)
    r.finish()
