"""More of ORT's level-1 rewrites that quant_pre_process makes and onnxquant's pre-processing reproduces (a QA sweep
found them missing): ReshapeFusion (PyTorch's x.view(x.size(0), -1) with a symbolic batch), MatmulBNFusion (Keras
Dense(use_bias=False) -> BatchNormalization), PadFusion into an AveragePool, and ConvBNFusion's names on a
ConvTranspose. Same method as test_ort_basic_rewrites.py: the raw model goes through quant_pre_process +
quantize_static and through onnxquant's default mode (per channel and per tensor); same wiring node by node with
ORT's names, same initializer names, same Q/DQ counts per op type, scales and zero points within 1e-6, our model
passes onnx.checker full_check and gives ORT's outputs in onnxruntime; the pre-processed float model
(tests/oq_preprocess_model) has quant_pre_process's op histogram and the original's outputs. Each case first checks
what quant_pre_process did (rewrote or left alone), so a case cannot pass for the wrong reason. Patterns ORT leaves
alone (MaxPool, ceil_mode, Transpose between MatMul and BN, allowzero, two -1 ...) are checked the same way.
Hand-computed values: tests/unit/test_ort_fusions_more.cc.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, default_mode_config, run_oq, tmpdir  # noqa: E402
from raw_parity import op_counts, preprocess_both, quantize_both_raw  # noqa: E402
from test_op_parity import init, rnd  # noqa: E402

mn = helper.make_node
IMG = ["N", 3, 8, 8]


def model(nodes, inits, in_shape=IMG, out_names=("y",), opset=13, value_info=(), out_ranks=None, out_types=None):
    types = out_types or {}
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info(o, types.get(o, TensorProto.FLOAT), None) for o in out_names],
                          inits,
                          value_info=[helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in value_info])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7 if opset < 15 else 8 if opset < 21 else 10
    # Outputs typed by onnx's shape inference (full_check wants a shape on every graph output).
    inferred = {o.name: o for o in onnx.shape_inference.infer_shapes(m).graph.output}
    for o in m.graph.output:
        o.CopyFrom(inferred[o.name])
        if not o.type.tensor_type.HasField("shape"):  # after a Reshape by a computed shape: the rank we know
            o.CopyFrom(helper.make_tensor_value_info(o.name, o.type.tensor_type.elem_type,
                                                     [f"{o.name}_{i}" for i in range(out_ranks[o.name])]))
    onnx.checker.check_model(m, full_check=True)
    return m


def check(m, fused, x_shape=(3, 8, 8), opset=13, pcs=(True, False), extra=None):
    """Both flows on raw model `m` (raw_parity.py); `fused`: whether quant_pre_process removes nodes; our
    pre-processed model has its op histogram. Returns (ORT's pre-processed model, ours), loaded."""
    x = np.random.default_rng(11).standard_normal((20,) + tuple(x_shape)).astype(np.float32)
    p = preprocess_both(m, x, fused)
    assert op_counts(p.om) == op_counts(p.pm), (op_counts(p.om), op_counts(p.pm))
    quantize_both_raw(p, opset, pcs, extra)
    return p.pm, p.om


def const_of(m, name):
    return [numpy_helper.to_array(t) for t in m.graph.initializer if t.name == name]


def node_inputs(m, op):
    return [list(n.input) for n in m.graph.node if n.op_type == op]


# ---- ReshapeFusion ----
def conv_relu(opset):
    return ([mn("Conv", ["input", "W"], ["c1"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
             mn("Relu", ["c1"], ["p1"], name="relu")], [init("W", rnd(1, (8, 3, 3, 3)))])


def dim(i, idx, shape="shp", opset=13):
    """Gather(shape, idx) -> Unsqueeze(axes [0]) writing u<i> (axes as input from opset 13, attribute before)."""
    u = mn("Unsqueeze", [f"g{i}", "uax"], [f"u{i}"], name=f"unsq{i}") if opset >= 13 else \
        mn("Unsqueeze", [f"g{i}"], [f"u{i}"], name=f"unsq{i}", axes=[0])
    return [mn("Gather", [shape, idx], [f"g{i}"], axis=0, name=f"gather{i}"), u]


def view(pieces, cat, opset=13, shape_kw=None, reshape_kw=None, more_outputs=(), extra_inits=(), rank=2, shape_of="p1"):
    nodes, inits = conv_relu(opset)
    inits += [init("i0", np.array(0, np.int64)), init("i1", np.array(1, np.int64)), init("i2", np.array(2, np.int64)),
              init("i3", np.array(3, np.int64)), init("m1", np.array([-1], np.int64)),
              init("c8", np.array([8], np.int64))] + list(extra_inits)
    if opset >= 13:
        inits.append(init("uax", np.array([0], np.int64)))
    nodes += [mn("Shape", [shape_of], ["shp"], name="shape", **(shape_kw or {}))] + pieces + [
        mn("Concat", cat, ["ns"], axis=0, name="cat"), mn("Reshape", ["p1", "ns"], ["f"], name="view", **(reshape_kw or {})),
        mn("Relu", ["f"], ["y"], name="relu_out")]
    return model(nodes, inits, out_names=("y",) + tuple(more_outputs), opset=opset, out_ranks={"y": rank},
                 out_types={"ns": TensorProto.INT64})


def reshape_fusion():
    for opset in (11, 13, 21):
        pm, om = check(view(dim(0, "i0", opset=opset), ["u0", "m1"], opset), True, opset=opset,
                       pcs=(True, False) if opset >= 13 else (False,))
        for mm in (pm, om):
            assert {n.op_type for n in mm.graph.node}.isdisjoint({"Shape", "Gather", "Unsqueeze", "Concat"})
            assert node_inputs(mm, "Reshape") == [["p1", "ns"]] and list(const_of(mm, "ns")[0]) == [0, -1]


def reshape_fusion_variants():
    # x.view(B, C, -1) (one Shape read twice, or two Shapes), a constant inside, a one-element -1 piece (C*H*W).
    two = dim(0, "i0") + [mn("Shape", ["p1"], ["shp2"], name="shape2")] + dim(1, "i1", "shp2")
    prod = [mn("Gather", ["shp", "i1"], ["a"], axis=0, name="ga"), mn("Gather", ["shp", "i2"], ["b"], axis=0, name="gb"),
            mn("Gather", ["shp", "i3"], ["c"], axis=0, name="gc"), mn("Mul", ["a", "b"], ["ab"], name="mul1"),
            mn("Mul", ["ab", "c"], ["abc"], name="mul2"), mn("Unsqueeze", ["abc", "uax"], ["u1"], name="unsq1")]
    for pieces, cat, want in ((dim(0, "i0") + dim(1, "i1"), ["u0", "u1", "m1"], [0, 0, -1]),
                              (two, ["u0", "u1", "m1"], [0, 0, -1]), (dim(0, "i0"), ["u0", "c8", "m1"], [0, 8, -1]),
                              (dim(0, "i0") + prod, ["u0", "u1"], [0, -1])):
        pm, om = check(view(pieces, cat, rank=len(want)), True, pcs=(True,))
        for mm in (pm, om):
            assert list(const_of(mm, "ns")[0]) == want, (const_of(mm, "ns"), want)
            assert "Concat" not in {n.op_type for n in mm.graph.node}
    # The Shape of the Conv output c1 for the Reshape of p1 = Relu(c1): the same inferred shape, fused as ORT does.
    pm, om = check(view(dim(0, "i0"), ["u0", "m1"], shape_of="c1"), True, pcs=(True,))
    assert list(const_of(om, "ns")[0]) == [0, -1] and "Shape" not in {n.op_type for n in om.graph.node}
    # The Shape also read by another node stays (Gather / Unsqueeze go).
    m = view(dim(0, "i0") + [mn("Cast", ["shp"], ["shpf"], to=TensorProto.FLOAT, name="cast")], ["u0", "m1"],
             more_outputs=("shpf",))
    pm, om = check(m, True, pcs=(True,))
    assert op_counts(om)["Shape"] == 1 and list(const_of(om, "ns")[0]) == [0, -1]


def reshape_left_alone():
    check(view(dim(0, "i0", opset=14), ["u0", "m1"], 14, reshape_kw={"allowzero": 1}), False, opset=14, pcs=(True,))
    # Gather(1) at position 0 is a one-element piece (-1) with the constant -1: two -1.
    check(view(dim(0, "i1"), ["u0", "m1"]), False, pcs=(True,))
    check(view(dim(0, "i0"), ["u0", "m1"], more_outputs=("ns",)), False, pcs=(True,))
    # Shape with start: not the data's dims.
    check(view(dim(0, "i0"), ["u0", "m1"], 15, shape_kw={"start": 1}), False, opset=15, pcs=(True,))


def reshape_shape_of_other_rank():
    # timm / PyTorch attention: `B, N, C = x.shape; ... (attn @ v).transpose(1, 2).reshape(B, N, C)`: the Shape is
    # of x (rank 3), the Reshape's data of rank 4. ORT 1.32 compares the gathered dim only: the same size or symbol
    # -> 0, another -> -1 (`mid` [0, 8, 4, 16]: dim 1 is 8 against x's 16).
    for sym, mid, want in ((False, [0, 16, 4, 8], [0, 0, 32]), (True, [0, 0, 4, 8], [0, 0, 32]),
                           (False, [0, 8, 4, 16], [0, -1, 32])):
        inits = [init("mid", np.array(mid, np.int64)), init("i0", np.array(0, np.int64)),
                 init("i1", np.array(1, np.int64)), init("uax", np.array([0], np.int64)),
                 init("c32", np.array([32], np.int64)), init("W", rnd(1, (32, 8)))]
        nodes = [mn("Reshape", ["input", "mid"], ["t"], name="split_heads"), mn("Relu", ["t"], ["p1"], name="relu"),
                 mn("Shape", ["input"], ["shp"], name="shape")] + dim(0, "i0") + dim(1, "i1") + [
            mn("Concat", ["u0", "u1", "c32"], ["ns"], axis=0, name="cat"),
            mn("Reshape", ["p1", "ns"], ["f"], name="merge_heads"), mn("MatMul", ["f", "W"], ["y"], name="proj")]
        m = model(nodes, inits, ["N", "T" if sym else 16, 32], out_ranks={"y": 3})
        pm, om = check(m, True, (16, 32), pcs=(True,))
        for mm in (pm, om):
            assert list(const_of(mm, "ns")[0]) == want, (const_of(mm, "ns"), want)
            assert {n.op_type for n in mm.graph.node}.isdisjoint({"Shape", "Gather", "Unsqueeze", "Concat"})


# ---- MatmulBNFusion ----
def bn(x, y, c, seed, prefix, eps=True):
    r = np.random.default_rng(seed)
    inits = [init(prefix + "_s", r.uniform(0.5, 1.5, c).astype(np.float32)),
             init(prefix + "_b", (r.standard_normal(c) * 0.1).astype(np.float32)),
             init(prefix + "_m", (r.standard_normal(c) * 0.1).astype(np.float32)),
             init(prefix + "_v", r.uniform(0.5, 2, c).astype(np.float32))]
    return mn("BatchNormalization", [x] + [prefix + s for s in ("_s", "_b", "_m", "_v")], [y], name=prefix,
              **({"epsilon": 1e-3} if eps else {})), inits


def dense_bn(opset=13, mid=(), eps=True, in_shape=("N", 12), more_outputs=(), extra_nodes=()):
    nodes = [mn("Relu", ["input"], ["a"], name="relu0"), mn("MatMul", ["a", "W"], ["mm"], name="dense/MatMul")]
    x, inits = "mm", [init("W", rnd(1, (12, 6)))]
    for k, (op, ins, kw, more) in enumerate(mid):
        nodes.append(mn(op, [x] + ins, [f"mid{k}"], name=f"mid{k}", **kw))
        inits += more
        x = f"mid{k}"
    b, bi = bn(x, "b", 6, 3, "bn", eps)
    nodes += [b, mn("Relu", ["b"], ["y"], name="relu")] + list(extra_nodes)
    return model(nodes, inits + bi, list(in_shape), ("y",) + tuple(more_outputs), opset)


def matmul_bn():
    for opset, eps in ((13, True), (21, True), (13, False)):
        pm, om = check(dense_bn(opset, eps=eps), True, (12,), opset)
        for mm in (pm, om):
            gemm = [n for n in mm.graph.node if n.op_type == "Gemm"]
            assert [(g.name, list(g.input), list(g.output)) for g in gemm] == \
                [("MatMulBnFusion_Gemm", ["a", "MatMulBnFusion_GemmB_W", "MatMulBnFusion_GemmBias"], ["b"])], gemm
    # A Reshape between: the Gemm writes the MatMul's output, the Reshape the BN's.
    pm, om = check(dense_bn(mid=[("Reshape", ["rs"], {}, [init("rs", np.array([-1, 6], np.int64))])]), True, (12,))
    assert node_inputs(om, "Reshape") == [["mm", "rs"]] and [list(n.output) for n in om.graph.node if n.op_type == "Reshape"] == [["b"]]


def matmul_bn_names():
    # Three MatMul -> BN (two sharing W2): ORT's _token_<n> in its visiting order (siblings in reverse file order).
    nodes = [mn("MatMul", ["input", "W"], ["m1"], name="mm1")]
    inits = [init("W", rnd(1, (12, 6))), init("W2", rnd(2, (6, 6)))]
    for i, (x, w) in enumerate((("input", "W"), ("b1", "W2"), ("b1", "W2"))):
        if i:
            nodes.append(mn("MatMul", [x, w], [f"m{i + 1}"], name=f"mm{i + 1}"))
        b, bi = bn(f"m{i + 1}", f"b{i + 1}", 6, 10 + i, f"bn{i + 1}")
        nodes.append(b)
        inits += bi
    nodes.append(mn("Add", ["b2", "b3"], ["y"], name="add"))
    pm, om = check(model(nodes, inits, ["N", 12]), True, (12,))
    want = {(n.name, tuple(n.input), tuple(n.output)) for n in pm.graph.node if n.op_type == "Gemm"}
    assert {(n.name, tuple(n.input), tuple(n.output)) for n in om.graph.node if n.op_type == "Gemm"} == want, want
    assert ("MatMulBnFusion_Gemm_token_4", ("b1", "MatMulBnFusion_GemmB_W2_token_2", "MatMulBnFusion_GemmBias_token_3"),
            ("b2",)) in want, want


def matmul_bn_left_alone():
    tr = [("Transpose", [], {"perm": [1, 0]}, [])]
    for m, shape in ((dense_bn(in_shape=("N", 6, 12)), (6, 12)),  # A of rank 3
                     (dense_bn(more_outputs=("mm",)), (12,)),
                     (dense_bn(extra_nodes=[mn("Sigmoid", ["mm"], ["s"], name="sig")], more_outputs=("s",)), (12,)),
                     (dense_bn(mid=[("Relu", [], {}, [])]), (12,)), (dense_bn(mid=[("Flatten", [], {}, [])]), (12,))):
        check(m, False, shape, pcs=(True,))
    # Transpose between (A [6, 12], the BN on the transposed [6, 6]): ORT 1.32 keeps it.
    pm = pre_only(dense_bn(mid=tr, in_shape=(6, 12)))  # a fixed batch of 6: the pre-processing only
    assert "BatchNormalization" in {n.op_type for n in pm[0].graph.node}
    assert op_counts(pm[0]) == op_counts(pm[1])


def pre_only(m):
    p = preprocess_both(m, None)
    return p.pm, p.om


# ---- PadFusion into AveragePool ----
def pad_pool(pool="AveragePool", opset=13, pads=(0, 0, 1, 1, 0, 0, 1, 1), rank=2, legacy=False, cval=None,
             more_outputs=(), extra_nodes=(), pool_pads=None, **kw):
    """conv -> relu -> Pad(`pads`) -> `pool` (its own pads: `pool_pads`)."""
    if pool_pads is not None:
        kw["pads"] = pool_pads
    inits = [init("W", rnd(1, (4, 3) + (3,) * rank))]
    nodes = [mn("Conv", ["input", "W"], ["c"], name="conv", pads=[1] * (2 * rank)), mn("Relu", ["c"], ["r"], name="relu")]
    if legacy:
        nodes.append(mn("Pad", ["r"], ["pd"], mode="constant", pads=list(pads), name="pad"))
    else:
        inits.append(init("pads", np.array(pads, np.int64)))
        ins = ["r", "pads"]
        if cval is not None:
            inits.append(init("cv", np.float32(cval)))
            ins.append("cv")
        nodes.append(mn("Pad", ins, ["pd"], mode="constant", name="pad"))
    kw.setdefault("kernel_shape", [3] * rank)
    kw.setdefault("strides", [2] * rank)
    nodes += [mn(pool, ["pd"], ["y"], name="pool", **kw)] + list(extra_nodes)
    return model(nodes, inits, ["N", 3] + [8] * rank, ("y",) + tuple(more_outputs), opset)


def pad_avgpool():
    for opset, kw in ((13, {"count_include_pad": 0}), (13, {}), (21, {"count_include_pad": 1}),
                      (13, {"count_include_pad": 1, "pool_pads": [1, 0, 1, 0]}), (10, {}), (19, {"dilations": [2, 2]})):
        m = pad_pool(opset=opset, legacy=opset < 11, pads=(0, 0, 0, 2, 0, 0, 1, 1), **kw)
        pm, om = check(m, True, opset=opset, pcs=(True, False) if opset >= 13 else (False,))
        want = [a + b for a, b in zip(kw.get("pool_pads", [0, 0, 0, 0]), [0, 2, 1, 1])]
        for mm in (pm, om):
            pool = [n for n in mm.graph.node if n.op_type == "AveragePool"][0]
            at = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
            assert list(pool.input) == ["r"] and at["pads"] == want and at["count_include_pad"] == 1, at
    check(pad_pool(rank=1, pads=(0, 0, 1, 0, 0, 2)), True, (3, 8))
    check(pad_pool(rank=3, pads=(0, 0, 1, 1, 1, 0, 0, 1, 1, 1)), True, (3, 8, 8, 8), pcs=(True,))


def pad_pool_left_alone():
    for m in (pad_pool("MaxPool"), pad_pool("MaxPool", pool_pads=[0, 0, 0, 0]),
              pad_pool(ceil_mode=1, count_include_pad=1), pad_pool(auto_pad="VALID"),
              pad_pool(count_include_pad=0, pool_pads=[1, 0, 1, 0]),  # its own pads averaged without the zeros
              pad_pool(pads=(0, 0, 3, 0, 0, 0, 0, 0)), pad_pool(count_include_pad=1, pool_pads=[2, 0, 2, 0]),
              pad_pool(pads=(1, 0, 1, 1, 0, 0, 1, 1)), pad_pool(pads=(0, 0, 1, -1, 0, 0, 1, 1)),
              pad_pool(cval=-0.0), pad_pool(cval=0.5), pad_pool(more_outputs=("pd",)),
              pad_pool(extra_nodes=[mn("Sigmoid", ["pd"], ["s"], name="sig")], more_outputs=("s",))):
        check(m, False, pcs=(True,))


def pad_empty_constant_value():
    # Pad(x, pads, ""): ORT's PadFusion counts the inputs as written (constant_value present, not a constant), and
    # refuses a 4th input (opset 18 axes), even "": the Pad stays before an AveragePool and a Conv. Pad(x, pads) and
    # Pad(x, pads, 0) are fused.
    for opset in (13, 18):
        for consumer in ("AveragePool", "Conv"):
            cases = [(["r", "pads"], True), (["r", "pads", ""], False), (["r", "pads", "cv"], True)]
            if opset >= 18:
                cases += [(["r", "pads", "", ""], False), (["r", "pads", "cv", ""], False)]
            for ins, fused in cases:
                inits = [init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)), init("cv", np.float32(0))]
                if "cv" not in ins:
                    inits.pop()
                nodes = [mn("Relu", ["input"], ["r"], name="relu"), mn("Pad", ins, ["pd"], mode="constant", name="pad")]
                if consumer == "Conv":
                    inits.append(init("W", rnd(1, (4, 3, 3, 3))))
                    nodes.append(mn("Conv", ["pd", "W"], ["y"], name="conv"))
                else:
                    nodes.append(mn("AveragePool", ["pd"], ["y"], kernel_shape=[3, 3], name="pool"))
                pm, om = check(model(nodes, inits, opset=opset), fused, opset=opset, pcs=(True,))
                for mm in (pm, om):
                    assert ("Pad" in op_counts(mm)) != fused, (opset, consumer, ins, op_counts(mm))


def pad_conv_negative_zero():
    # ORT's PadFusion compares the constant's bytes: a -0.0 Pad stays before a Conv too (0.0 is fused).
    for cval, fused in ((-0.0, False), (0.0, True)):
        inits = [init("W", rnd(1, (4, 3, 3, 3))), init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
                 init("cv", np.float32(cval))]
        nodes = [mn("Relu", ["input"], ["r"], name="relu"), mn("Pad", ["r", "pads", "cv"], ["pd"], mode="constant", name="pad"),
                 mn("Conv", ["pd", "W"], ["y"], name="conv")]
        check(model(nodes, inits), fused, pcs=(True,))


# ---- ConvTranspose -> BatchNormalization: ConvBNFusion's names ----
def shared_weight_bn_names():
    # Two Convs / ConvTransposes on one input sharing their weight, each before its own BN: ORT visits the second
    # first (its topological sort pops a stack) and names the first's folded weight with its _token_ rule.
    for op in ("Conv", "ConvTranspose"):
        wshape = (6, 3, 3, 3) if op == "Conv" else (3, 6, 3, 3)
        b1, i1 = bn("c1", "b1", 6, 5, "bna")
        b2, i2 = bn("c2", "b2", 6, 9, "bnb")
        nodes = [mn("Relu", ["input"], ["r"], name="relu"), mn(op, ["r", "Wt"], ["c1"], name="c1"), b1,
                 mn(op, ["r", "Wt"], ["c2"], name="c2"), b2, mn("Add", ["b1", "b2"], ["y"], name="add")]
        pm, om = check(model(nodes, [init("Wt", rnd(1, wshape))] + i1 + i2), True, pcs=(True, False))
        for mm in (pm, om):
            got = {n.name: list(n.input[1:]) for n in mm.graph.node if n.op_type == op}
            assert got == {"c1": ["ConvBnFusion_W_Wt_token_0", "ConvBnFusion_BN_B_bna_b"],
                           "c2": ["ConvBnFusion_W_Wt", "ConvBnFusion_BN_B_bnb_b"]}, got



def deconv_bn():
    for bias, group in ((False, 1), (True, 1), (True, 2)):
        inits = [init("dW", rnd(1, (4, 3, 3, 3)))]
        ins = ["input", "dW"]
        if bias:
            inits.append(init("dB", rnd(2, (3 * group,), 0.1)))
            ins.append("dB")
        b, bi = bn("d", "bd", 3 * group, 5, "bnd")
        nodes = [mn("Relu", ["input"], ["r0"], name="relu0"),
                 mn("ConvTranspose", ["r0"] + ins[1:], ["d"], name="deconv", group=group, strides=[2, 2]), b,
                 mn("Relu", ["bd"], ["y"], name="relu")]
        # Per channel, quantize_static fails on a grouped ConvTranspose's bias (3 weight scales for 6 channels).
        pm, om = check(model(nodes, inits + bi, ["N", 4, 5, 5]), True, (4, 5, 5), pcs=(True, False) if group == 1 else (False,))
        for mm in (pm, om):
            assert node_inputs(mm, "ConvTranspose") == [["r0", "ConvBnFusion_W_dW", "ConvBnFusion_BN_B_bnd_b"]]
    # TensorQuantOverrides on ORT's names (docs/config.md): the same model as quantize_static's.
    check(model(nodes, inits + bi, ["N", 4, 5, 5]), True, (4, 5, 5), pcs=(False,),
          extra={"TensorQuantOverrides": {"ConvBnFusion_W_dW": [{"symmetric": False}]}})


def tqo_raw_name_hint():
    # An override on the raw MatMul weight of a MatMul -> BN: one line naming the folded name.
    work = tmpdir()
    raw = os.path.join(work, "float.onnx")
    onnx.save(dense_bn(), raw)
    np.savez(os.path.join(work, "calib.npz"), input=np.ones((2, 12), np.float32))
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(raw, os.path.join(work, "calib.npz"), extra={"TensorQuantOverrides": {"W": [{}]}}))
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq")], check=False)
    assert p.returncode == 2 and "did you mean 'MatMulBnFusion_GemmB_W'" in p.stderr, (p.returncode, p.stderr[-500:])


def gemm_bn_deliberate():
    # Gemm -> BatchNormalization: quant_pre_process keeps the BN (ConvBNFusion is Conv / ConvTranspose only);
    # onnxquant folds it into the Gemm, as the project's brief asks (docs/conformance.md lists the difference).
    b, bi = bn("fc", "y", 6, 7, "bn_dense")
    m = model([mn("Gemm", ["input", "fW", "fB"], ["fc"], name="fc"), b],
              [init("fW", rnd(1, (12, 6))), init("fB", rnd(2, (6,), 0.1))] + bi, ["N", 12])
    pm, om = pre_only(m)
    assert op_counts(pm) == {"Gemm": 1, "BatchNormalization": 1}
    assert op_counts(om) == {"Gemm": 1}
    # MatMul -> Add -> BN: MatMulAddFusion makes the Gemm after the rules ran; both keep the BN.
    b, bi = bn("ad", "y", 6, 7, "bn_dense")
    m = model([mn("MatMul", ["input", "fW"], ["mm"], name="mm"), mn("Add", ["mm", "fB"], ["ad"], name="add"), b],
              [init("fW", rnd(1, (12, 6))), init("fB", rnd(2, (6,), 0.1))] + bi, ["N", 12])
    check(m, True, (12,), pcs=(True,))
    pm, om = pre_only(m)
    for mm in (pm, om):
        assert op_counts(mm) == {"Gemm": 1, "BatchNormalization": 1}


if __name__ == "__main__":
    r = Runner()
    r.run("ReshapeFusion: x.view(x.size(0), -1), symbolic batch (opsets 11, 13, 21)", reshape_fusion)
    r.run("ReshapeFusion: view(B, C, -1), constants, a C*H*W piece, a Shape read elsewhere", reshape_fusion_variants)
    r.run("ReshapeFusion: the Shape of a tensor of another rank (timm attention; same dim 0, other -1)",
          reshape_shape_of_other_rank)
    r.run("ReshapeFusion: allowzero, two -1, Concat output a graph output, Shape(start=1) left alone", reshape_left_alone)
    r.run("MatmulBNFusion: MatMul -> BN (opsets 13, 21, no epsilon), MatMul -> Reshape -> BN", matmul_bn)
    r.run("MatmulBNFusion: ORT's _token_ names over three fusions", matmul_bn_names)
    r.run("MatmulBNFusion: rank-3 A, MatMul output read twice / a graph output, Relu / Flatten / Transpose between",
          matmul_bn_left_alone)
    r.run("PadFusion into AveragePool (count_include_pad 0 / 1 / absent, own pads, opsets 10-21, 1-D, 3-D)", pad_avgpool)
    r.run("PadFusion: MaxPool, ceil_mode, auto_pad, own pads without count_include_pad, pad >= kernel, -0.0, 0.5, "
          "Pad output read twice / a graph output: left alone", pad_pool_left_alone)
    r.run("PadFusion into Conv: a -0.0 constant stays, 0.0 goes", pad_conv_negative_zero)
    r.run("PadFusion: constant_value \"\" or a 4th input stays (AveragePool, Conv; opsets 13, 18)",
          pad_empty_constant_value)
    r.run("ConvTranspose -> BN: ConvBnFusion_W_<W> / ConvBnFusion_BN_B_<bn bias> (bias or not, grouped)", deconv_bn)
    r.run("ConvBNFusion: two Convs / ConvTransposes sharing a weight take ORT's order and _token_ names",
          shared_weight_bn_names)
    r.run("TensorQuantOverrides on a MatMul -> BN's raw weight name: the folded name suggested", tqo_raw_name_hint)
    r.run("Gemm -> BN: folded by onnxquant, kept by ORT (deliberate difference)", gemm_bn_deliberate)
    r.finish()
