"""Graph passes against onnxruntime: every model in OQ_SHARED_DIR/models and testdata/*.onnx is pre-processed
(constant folding, Identity/Dropout removal, BatchNormalization folding, Pad -> Conv and MatMul + Add -> Gemm
fusion) and converted to opset 21 by the test tool tests/oq_preprocess_model; onnxruntime (graph optimisations
disabled) must give the same outputs for the original, the pre-processed and the converted model on random
inputs, the converted model must pass onnx.checker.check_model(full_check=True), and foldable
BatchNormalization nodes must be gone. The fusions are checked against ONNX Runtime's own pre-processing
(onnxruntime.quantization.shape_inference.quant_pre_process, whose PadFusion / MatMulAddFusion they mirror): same
number of Pad, MatMul, Gemm and Add nodes, same Gemm node names, same Conv pads; hand-built models cover the
Pad forms (opset 7 attribute, opset 11 constant_value, opset 18 axes) and the patterns both leave alone.
Hand-built old-opset models (7..12) exercise each opset-conversion rewrite the same way.

Env: OQ_BUILD_DIR (built tree holding tests/oq_preprocess_model), OQ_SOURCE_DIR, OQ_SHARED_DIR.
"""
import glob
import os
import subprocess
import sys
import traceback

import numpy as np
import onnx
import onnxruntime as ort
import oqtest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.shape_inference import quant_pre_process

SRC = os.environ.get("OQ_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHARED = os.environ.get("OQ_SHARED_DIR", os.path.join(SRC, "..", "shared"))
BUILD = os.environ.get("OQ_BUILD_DIR", os.path.join(SRC, "build"))
TOOL = os.path.join(BUILD, "tests", "oq_preprocess_model")
TMP = oqtest.tmpdir("oq_preprocess_")
RTOL = 1e-4


def run_tool(src, dst, *args, expect_ok=True):
    r = subprocess.run([TOOL, src, dst, *args], capture_output=True, text=True)
    if expect_ok:
        assert r.returncode == 0, f"oq_preprocess_model {src} {args} failed: {r.stderr.strip()}"
    return r


def session(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


NP_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
            "tensor(int32)": np.int32, "tensor(float16)": np.float16}


def random_feeds(sess, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 2 for d in i.shape]
        dt = NP_TYPES[i.type]
        if np.issubdtype(dt, np.integer):
            feeds[i.name] = rng.integers(0, 4, size=shape).astype(dt)
        else:
            feeds[i.name] = rng.uniform(-1, 1, size=shape).astype(dt)
    return feeds


def run(path, feeds):
    s = session(path)
    return s.run(None, feeds), [o.name for o in s.get_outputs()]


def assert_close(ref, got, what):
    assert len(ref) == len(got), f"{what}: {len(ref)} vs {len(got)} outputs"
    for k, (a, b) in enumerate(zip(ref, got)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{what}: output {k} shape {a.shape} vs {b.shape}"
        if a.dtype.kind in "iub":
            assert np.array_equal(a, b), f"{what}: output {k} differs"
            continue
        scale = max(1.0, float(np.max(np.abs(a)))) if a.size else 1.0
        err = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        assert err <= RTOL * scale, f"{what}: output {k} max abs error {err:.3g} > {RTOL} * {scale:.3g}"


def count_ops(model, op):
    return sum(1 for n in model.graph.node if n.op_type == op)


def foldable_bn(model):
    """Independent count of BatchNormalization nodes foldable into a Conv/ConvTranspose/Gemm producer."""
    g = model.graph
    inits = {t.name for t in g.initializer} - {i.name for i in g.input}
    const = set(inits)
    for n in g.node:  # Constant nodes become initializers first
        if n.op_type == "Constant":
            const.update(n.output)
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in set(n.input):
            consumers[i] = consumers.get(i, 0) + 1
    outs = {o.name for o in g.output}
    count = 0
    for n in g.node:
        if n.op_type != "BatchNormalization" or not all(i in const for i in n.input[1:5]):
            continue
        p = producer.get(n.input[0])
        if p is None or p.op_type not in ("Conv", "ConvTranspose", "Gemm") or n.input[0] in outs:
            continue
        if consumers.get(n.input[0], 0) != 1 or p.input[1] not in const:
            continue
        if len(p.input) > 2 and p.input[2] and p.input[2] not in const:
            continue
        count += 1
    return count


# ----------------------------------------------------------------------- fusions vs ORT's quant_pre_process
FUSED_OPS = ("Pad", "MatMul", "Gemm", "Add")


def ort_preprocessed(path, symbolic_shapes=True):
    """The model as onnxruntime.quantization's quant_pre_process leaves it (symbolic shape inference, then the
    ORT_ENABLE_BASIC optimizer: PadFusion, MatMulAddFusion, ...)."""
    out = os.path.join(TMP, os.path.splitext(os.path.basename(path))[0] + ".ort_pre.onnx")
    quant_pre_process(path, out, skip_symbolic_shape=not symbolic_shapes)
    return onnx.load(out)


def conv_pads(model):
    res = {}
    for n in model.graph.node:
        if n.op_type == "Conv":
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            res[n.name] = list(a.get("pads", [])) or None  # absent == all zero
            if res[n.name] is not None and not any(res[n.name]):
                res[n.name] = None
    return res


def check_fusions_like_ort(name, orig_path, ours, symbolic_shapes=True):
    """Pad/MatMul/Gemm/Add counts, Gemm names and Conv pads of our pre-processed model equal ORT's."""
    ref = ort_preprocessed(orig_path, symbolic_shapes)
    got = {op: count_ops(ours, op) for op in FUSED_OPS}
    want = {op: count_ops(ref, op) for op in FUSED_OPS}
    assert got == want, f"{name}: node counts {got}, quant_pre_process gives {want}"
    gemms = lambda m: sorted(n.name for n in m.graph.node if n.op_type == "Gemm")  # noqa: E731
    assert gemms(ours) == gemms(ref), f"{name}: Gemm names {gemms(ours)} vs ORT {gemms(ref)}"
    # BatchNormalization folded into a Conv: ORT's ConvBNFusion names the new weight and bias
    # ConvBnFusion_W_<weight> / ConvBnFusion_BN_B_<BN bias>; ours are named the same.
    bn_named = lambda m: sorted(i.name for i in m.graph.initializer if i.name.startswith("ConvBnFusion_"))  # noqa: E731
    assert bn_named(ours) == bn_named(ref), f"{name}: folded initializers {bn_named(ours)} vs ORT {bn_named(ref)}"
    ours_pads, ref_pads = conv_pads(ours), conv_pads(ref)
    for conv, pads in ours_pads.items():
        if conv in ref_pads:  # ORT may fuse other things into a Conv (ConvAddFusion), never rename it
            assert pads == ref_pads[conv], f"{name}: Conv '{conv}' pads {pads} vs ORT {ref_pads[conv]}"
    return got


def check_real_model(path):
    name = os.path.splitext(os.path.basename(path))[0]
    pre = os.path.join(TMP, name + ".pre.onnx")
    o21 = os.path.join(TMP, name + ".o21.onnx")
    run_tool(path, pre)
    run_tool(path, o21, "--opset", "21")
    orig = onnx.load(path)
    m_pre, m21 = onnx.load(pre), onnx.load(o21)
    check_fusions_like_ort(name, path, m_pre)
    onnx.checker.check_model(m_pre, full_check=True)
    onnx.checker.check_model(m21, full_check=True)
    assert m21.ir_version == 10, f"{name}: ir_version {m21.ir_version}"
    assert [o.version for o in m21.opset_import if o.domain in ("", "ai.onnx")] == [21], f"{name}: opset"
    bn_expected = count_ops(orig, "BatchNormalization") - foldable_bn(orig)
    for m, tag in ((m_pre, "pre"), (m21, "o21")):
        assert count_ops(m, "BatchNormalization") == bn_expected, \
            f"{name} {tag}: {count_ops(m, 'BatchNormalization')} BN left, expected {bn_expected}"
        assert count_ops(m, "Identity") == 0 and count_ops(m, "Constant") == 0, f"{name} {tag}: Identity/Constant left"
        assert len(m.graph.node) <= len(orig.graph.node), f"{name} {tag}: more nodes than the original"
    feeds = random_feeds(session(path))
    ref, names = run(path, feeds)
    for p, tag in ((pre, "preprocessed"), (o21, "opset 21")):
        got, got_names = run(p, feeds)
        assert got_names == names, f"{name} {tag}: output names {got_names} vs {names}"
        assert_close(ref, got, f"{name} {tag}")


def check_fixed_batch(path):
    """Batch fixed to 2 and value_info filled by onnx shape inference: every Shape/Size becomes static and the
    shape sub-graphs (Shape/Gather/Slice/Concat/Cast/...) are folded by running our kernels on constants."""
    name = os.path.splitext(os.path.basename(path))[0]
    m = onnx.load(path)
    inits = {t.name for t in m.graph.initializer}
    for i in m.graph.input:
        if i.name in inits:
            continue
        for d in i.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.ClearField("dim_param")
                d.dim_value = 2
    del m.graph.value_info[:]
    m = onnx.shape_inference.infer_shapes(m)
    src = os.path.join(TMP, name + ".fixed.onnx")
    onnx.save(m, src)
    out = os.path.join(TMP, name + ".fixed.pre21.onnx")
    run_tool(src, out, "--opset", "21")
    got = onnx.load(out)
    onnx.checker.check_model(got, full_check=True)
    left = count_ops(got, "Shape") + count_ops(got, "Size")
    assert left == 0, f"{name}: {left} Shape/Size nodes left with static shapes"
    feeds = random_feeds(session(src), seed=5)
    assert_close(run(src, feeds)[0], run(out, feeds)[0], f"{name} fixed batch")


# ----------------------------------------------------------------------------------- hand-built old opsets
def f32(name, shape):
    if isinstance(shape, int):  # rank only
        shape = [f"{name}_d{i}" for i in range(shape)]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def old_model(opset, nodes, inputs, outputs, inits=(), value_info=()):
    ir = {7: 3, 8: 3, 9: 4, 10: 5, 11: 6, 12: 7}[opset]
    if ir < 4:  # IR 3: every initializer is also a graph input (and, per IR 3, not overridable)
        inputs = list(inputs) + [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    g = helper.make_graph(nodes, f"opset{opset}", inputs, outputs, list(inits), value_info=list(value_info))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)
    onnx.checker.check_model(m)
    return m


def synthetic_models():
    rng = np.random.default_rng(3)
    ms = {}
    # Opset 7: Upsample (scales attribute), BN with spatial, Dropout with ratio, Clip/Pad attributes, Softmax
    # across a coerced 2-D view, Slice attributes, Squeeze/Unsqueeze/ReduceMean/ReduceSum axes, Split attribute.
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], spatial=1, epsilon=1e-3),
        helper.make_node("Dropout", ["bn"], ["d", "mask"], ratio=0.3),
        helper.make_node("Clip", ["d"], ["cl"], min=-0.5, max=0.7),
        helper.make_node("Pad", ["cl"], ["pd"], pads=[0, 0, 1, 0, 0, 0, 0, 2], value=0.25),
        helper.make_node("Upsample", ["pd"], ["up"], scales=[1.0, 1.0, 2.0, 2.0], mode="nearest"),
        helper.make_node("Softmax", ["up"], ["sm"], axis=1),
        helper.make_node("LogSoftmax", ["up"], ["lsm"], axis=3),
        helper.make_node("Slice", ["sm"], ["sl"], starts=[1, 0], ends=[3, 100], axes=[1, 3]),
        helper.make_node("ReduceMean", ["sl"], ["rm"], axes=[2], keepdims=1),
        helper.make_node("Squeeze", ["rm"], ["sq"], axes=[2]),
        helper.make_node("Unsqueeze", ["sq"], ["us"], axes=[0]),
        helper.make_node("ReduceSum", ["us"], ["rs"], axes=[3], keepdims=0),
        helper.make_node("Split", ["lsm"], ["sp1", "sp2"], axis=1, split=[1, 3]),
        helper.make_node("Identity", ["sp2"], ["y3"]),
    ]
    inits = [init("w", w), init("s", rng.uniform(0.5, 1.5, 4).astype(np.float32)),
             init("b", rng.normal(size=4).astype(np.float32)), init("m", rng.normal(size=4).astype(np.float32)),
             init("v", rng.uniform(0.5, 2, 4).astype(np.float32))]
    vi = [f32("up", [2, 4, 14, 16]), f32("lsm", [2, 4, 14, 16])]
    ms["opset7_mix"] = old_model(7, nodes, [f32("x", [2, 3, 6, 6])],
                                 [f32("rs", 3), f32("sp1", 4), f32("y3", 4)], inits, vi)
    # Opset 9: Upsample with scales input (linear), TopK attribute, Softmax on an unknown-rank intermediate.
    nodes = [
        helper.make_node("Upsample", ["x", "sc"], ["up"], mode="linear"),
        helper.make_node("Relu", ["up"], ["r"]),
        helper.make_node("Softmax", ["r"], ["sm"], axis=2),
        helper.make_node("Hardmax", ["r"], ["hm"]),
        helper.make_node("TopK", ["sm"], ["tv", "ti"], k=3, axis=3),
        helper.make_node("Clip", ["tv"], ["tc"], max=0.2),
    ]
    ms["opset9_upsample_topk"] = old_model(
        9, nodes, [f32("x", [1, 2, 3, 4])],
        [f32("tc", 4), helper.make_tensor_value_info("ti", TensorProto.INT64, ["a", "b", "c", "d"]), f32("hm", 4)],
        [init("sc", np.array([1, 1, 2, 3], np.float32))])
    # Opset 10: Resize-10 nearest and linear, Dropout (ratio attribute), Softmax over the whole tensor.
    nodes = [
        helper.make_node("Resize", ["x", "sc"], ["rn"], mode="nearest"),
        helper.make_node("Resize", ["x", "sc"], ["rl"], mode="linear"),
        helper.make_node("Dropout", ["rl"], ["dl"], ratio=0.1),
        helper.make_node("Add", ["rn", "dl"], ["y"]),
        helper.make_node("Softmax", ["y"], ["z"], axis=0),  # axis 0 on rank 4: whole-tensor softmax
        # Resize-10 nearest rounds down when upsampling, up when downsampling: mixed scales need two nodes.
        helper.make_node("Resize", ["x", "sc_mixed"], ["rm"], mode="nearest"),
        helper.make_node("Resize", ["x", "sc_down"], ["rd"], mode="nearest"),
    ]
    ms["opset10_resize"] = old_model(
        10, nodes, [f32("x", [1, 2, 7, 9])], [f32("z", 4), f32("rm", 4), f32("rd", 4)],
        [init("sc", np.array([1, 1, 2, 1.5], np.float32)), init("sc_mixed", np.array([1, 1, 0.6, 1.7], np.float32)),
         init("sc_down", np.array([1, 1, 0.5, 0.7], np.float32))])
    # Opset 11: Resize with tf_half_pixel_for_nn (removed at 13), negative Softmax axis on unknown rank,
    # BN with an unused training output, Split without split.
    nodes = [
        helper.make_node("Resize", ["x", "roi", "sc"], ["r"], mode="nearest",
                         coordinate_transformation_mode="tf_half_pixel_for_nn"),
        helper.make_node("Abs", ["r"], ["a"]),
        helper.make_node("LogSoftmax", ["a"], ["ls"], axis=-2),
        helper.make_node("Split", ["ls"], ["s1", "s2"], axis=3),
        helper.make_node("ReduceMax", ["s1"], ["mx"], axes=[1, -1], keepdims=1),
        helper.make_node("Pad", ["mx", "pads"], ["p"], mode="reflect"),
    ]
    ms["opset11_resize_tf"] = old_model(
        11, nodes, [f32("x", [1, 2, 5, 6])], [f32("p", 4), f32("s2", 4)],
        [init("roi", np.zeros(0, np.float32)), init("sc", np.array([1, 1, 1.6, 2.0], np.float32)),
         init("pads", np.array([0, 0, 1, 0, 0, 0, 1, 0], np.int64))])
    return ms


def check_synthetic(name, model):
    src = os.path.join(TMP, name + ".onnx")
    onnx.save(model, src)
    o21 = os.path.join(TMP, name + ".o21.onnx")
    both = os.path.join(TMP, name + ".pre21.onnx")
    run_tool(src, o21, "--opset", "21", "--no-preprocess")
    run_tool(src, both, "--opset", "21")
    for p in (o21, both):
        m = onnx.load(p)
        onnx.checker.check_model(m, full_check=True)
        assert m.ir_version == 10 and m.opset_import[0].version == 21, f"{name}: ir/opset not updated"
        ops = {n.op_type for n in m.graph.node}
        assert "Upsample" not in ops, f"{name}: Upsample left"
        # Element types are all findable here, so Pad/Clip scalars are typed initializers, not CastLike nodes.
        assert "CastLike" not in ops, f"{name}: CastLike inserted"
        inits = {t.name for t in m.graph.initializer}
        assert not any(i.name in inits for i in m.graph.input), f"{name}: initializers left among the inputs"
        for n in m.graph.node:
            bad = {"Squeeze": "axes", "Unsqueeze": "axes", "ReduceMean": "axes", "ReduceSum": "axes",
                   "ReduceMax": "axes", "Split": "split", "Pad": "pads", "Clip": "min", "Slice": "starts",
                   "TopK": "k", "Dropout": "ratio", "BatchNormalization": "spatial"}.get(n.op_type)
            assert bad is None or bad not in {a.name for a in n.attribute}, f"{name}: {n.op_type} keeps '{bad}'"
    feeds = random_feeds(session(src), seed=7)
    ref, _ = run(src, feeds)
    assert_close(ref, run(o21, feeds)[0], f"{name} opset 21")
    assert_close(ref, run(both, feeds)[0], f"{name} preprocessed + opset 21")


def fusion_model(opset, nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, f"fusion{opset}", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8 if opset >= 18 else 7)
    onnx.checker.check_model(m, full_check=True)
    return m


def fusion_models():
    """(model, Pad fused, MatMul+Add fused) for hand-built patterns on which ORT's quant_pre_process and ours agree."""
    rng = np.random.default_rng(11)
    w = lambda *s: init(f"w{len(s)}_{rng.integers(1 << 30)}", rng.normal(size=s).astype(np.float32))  # noqa: E731
    x = f32("x", ["N", 2, 6, 7])
    ms = {}
    # Opset 7: pads attribute and explicit value 0, added to the Conv's own pads.
    w1 = w(3, 2, 3, 3)
    ms["pad_opset7_attribute"] = (fusion_model(7, [
        helper.make_node("Pad", ["x"], ["p"], "pad7", pads=[0, 0, 1, 2, 0, 0, 0, 1], value=0.0),
        helper.make_node("Conv", ["p", w1.name], ["y"], "conv7", pads=[1, 1, 1, 1])], [x], [f32("y", 4)], [w1]), 1, 0)
    # Opset 11: pads and constant_value 0 inputs; the Conv has no pads attribute.
    w1 = w(3, 2, 2, 2)
    ms["pad_opset11_constant_value"] = (fusion_model(11, [
        helper.make_node("Pad", ["x", "pads", "cv"], ["p"], "pad11"),
        helper.make_node("Conv", ["p", w1.name], ["y"], "conv11", strides=[2, 2])], [x], [f32("y", 4)],
        [w1, init("pads", np.array([0, 0, 2, 0, 0, 0, 1, 3], np.int64)), init("cv", np.array(0, np.float32))]), 1, 0)
    # Opset 13, left alone by both: value 0.5, a pad on C, reflect mode, a Pad read twice, a Pad output that is
    # a graph output; one plain zero Pad among them is fused.
    # (Each Pad has its own pads values: ORT would merge identical Pad nodes first.)
    nodes, outs, inits = [], [], [init("pc", np.array([0, 1, 1, 1, 0, 0, 1, 1], np.int64)),
                                  init("half", np.array(0.5, np.float32))]
    for k, (pad_in, mode, extra_out) in enumerate([(["x", "pz0", "half"], "constant", None),
                                                   (["x", "pc"], "constant", None), (["x", "pz2"], "reflect", None),
                                                   (["x", "pz3"], "constant", "relu"), (["x", "pz4"], "constant", "out"),
                                                   (["x", "pz5"], "constant", None)]):
        if pad_in[1] != "pc":
            inits.append(init(pad_in[1], np.array([0, 0, 1, k, 0, 0, 1, 1], np.int64)))
        wk = w(3, 3 if pad_in[1] == "pc" else 2, 3, 3)
        inits.append(wk)
        nodes += [helper.make_node("Pad", pad_in, [f"p{k}"], f"pad{k}", mode=mode),
                  helper.make_node("Conv", [f"p{k}", wk.name], [f"y{k}"], f"conv{k}")]
        outs.append(f32(f"y{k}", 4))
        if extra_out == "relu":
            nodes.append(helper.make_node("Relu", [f"p{k}"], [f"r{k}"]))
            outs.append(f32(f"r{k}", 4))
        elif extra_out == "out":
            outs.append(f32(f"p{k}", 4))
    ms["pad_opset13_mixed"] = (fusion_model(13, nodes, [x], outs, inits), 1, 0)
    # Opset 18: an axes input -> not fused (ORT's PadFusion refuses any Pad with axes).
    w1 = w(3, 2, 3, 3)
    ms["pad_opset18_axes"] = (fusion_model(18, [
        helper.make_node("Pad", ["x", "pads", "", "axes"], ["p"], "pad18"),
        helper.make_node("Conv", ["p", w1.name], ["y"], "conv18")], [x], [f32("y", 4)],
        [w1, init("pads", np.array([1, 1, 1, 1], np.int64)), init("axes", np.array([2, 3], np.int64))]), 0, 0)
    # MatMul + Add: an MLP (bias [1, N], bias as Add's first input, rank of A 2 through Add/Relu), plus a MatMul
    # whose output is also a graph output and a MatMul with a 3-D A of symbolic shape (both left alone).
    b1, b2, b3, b4 = w(8, 5), w(5, 3), w(8, 4), w(8, 2)
    c1, c2, c3, c4 = w(1, 5), w(3), w(4), w(2)
    ms["matmul_add_opset13"] = (fusion_model(13, [
        helper.make_node("MatMul", ["a", b1.name], ["m1"], "dense1/MatMul"),
        helper.make_node("Add", ["m1", c1.name], ["a1"], "dense1/BiasAdd"),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("MatMul", ["r1", b2.name], ["m2"], "dense2/MatMul"),
        helper.make_node("Add", [c2.name, "m2"], ["y"], "dense2/BiasAdd"),
        helper.make_node("MatMul", ["a", b3.name], ["m3"], "dense3/MatMul"),
        helper.make_node("Add", ["m3", c3.name], ["y3"], "dense3/BiasAdd"),
        helper.make_node("MatMul", ["t", b4.name], ["m4"], "dense4/MatMul"),
        helper.make_node("Add", ["m4", c4.name], ["y4"], "dense4/BiasAdd")],
        [f32("a", ["N", 8]), f32("t", ["N", "T", 8])], [f32("y", 2), f32("y3", 2), f32("m3", 2), f32("y4", 3)],
        [b1, b2, b3, b4, c1, c2, c3, c4]), 0, 2)
    return ms


def check_fusion_model(name, model, pads_fused, gemms_fused):
    src = os.path.join(TMP, name + ".onnx")
    onnx.save(model, src)
    out = os.path.join(TMP, name + ".pre.onnx")
    run_tool(src, out)
    got = onnx.load(out)
    onnx.checker.check_model(got, full_check=True)
    # ORT's symbolic shape inference asserts on a Pad with axes: its optimizer then runs on the model as is.
    counts = check_fusions_like_ort(name, src, got, symbolic_shapes="axes" not in name)
    # What this case is about (so that a model on which neither side fuses anything cannot pass unnoticed).
    assert count_ops(model, "Pad") - counts["Pad"] == pads_fused, f"{name}: {counts}"
    assert counts["Gemm"] == gemms_fused, f"{name}: {counts}"
    feeds = random_feeds(session(src), seed=13)
    assert_close(run(src, feeds)[0], run(out, feeds)[0], f"{name} fused")


def check_refusals():
    src = os.path.join(SRC, "testdata", "digits_mlp.onnx")  # opset 13
    r = run_tool(src, os.path.join(TMP, "down.onnx"), "--opset", "12", "--no-preprocess", expect_ok=False)
    assert r.returncode == 1 and "not supported" in r.stderr, f"downgrade: rc {r.returncode} {r.stderr!r}"
    # BN-7 spatial=0 takes statistics of shape X.shape[1:]: rank-1 ones on a 4-D input (onnxruntime refuses them)
    # are refused; the valid forms are converted (tests/python/test_opset_convert_fixes.py).
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=0, name="bn0")]
    inits = [init(n, np.ones((3,), np.float32)) for n in ("s", "b", "m", "v")]
    m = old_model(7, nodes, [f32("x", [1, 3, 2, 2])], [f32("y", 4)], inits)
    src = os.path.join(TMP, "spatial0.onnx")
    onnx.save(m, src)
    r = run_tool(src, os.path.join(TMP, "spatial0.o21.onnx"), "--opset", "21", "--no-preprocess", expect_ok=False)
    assert r.returncode == 1 and "'bn0'" in r.stderr and "spatial" in r.stderr, f"spatial=0: {r.stderr!r}"


def main():
    assert os.path.exists(TOOL), f"{TOOL} not built"
    cases = []
    models = sorted(glob.glob(os.path.join(SHARED, "models", "*.onnx")) +
                    glob.glob(os.path.join(SRC, "testdata", "*.onnx")))
    assert models, "no models found"
    for p in models:
        cases.append((os.path.basename(p), lambda p=p: check_real_model(p)))
        cases.append((os.path.basename(p) + " (fixed batch)", lambda p=p: check_fixed_batch(p)))
    for name, m in synthetic_models().items():
        cases.append((name, lambda name=name, m=m: check_synthetic(name, m)))
    for name, (m, pads_fused, gemms_fused) in fusion_models().items():
        cases.append((name, lambda name=name, m=m, p=pads_fused, g=gemms_fused: check_fusion_model(name, m, p, g)))
    cases.append(("refusals", check_refusals))
    passed = failed = 0
    for name, fn in cases:
        try:
            fn()
            passed += 1
            print(f"ok   {name}")
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    oqtest.exit_with(main())
