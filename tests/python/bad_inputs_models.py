"""Bad models of the bad-input catalogue (test_bad_inputs.py): each builds a broken ONNX file in a temp dir."""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

from bad_inputs_util import MLP, base_config, check_failure, main_job, write
from oqtest import tmpdir

# ---------------------------------------------------------------------------------------------- models
def tiny_model(nodes, inits=(), inputs=None, outputs=None, opset=13):
    inputs = inputs or [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])]
    g = helper.make_graph(nodes, "bad", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def save(d, m, name="model.onnx"):
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.write(m.SerializeToString())
    return p


def model_case(make, words, code=1, loader=True):
    """make(d) -> model path; the main job must refuse it (and `info` too when the loader refuses it)."""
    def case():
        d = tmpdir()
        path = make(d)
        main_job(d, base_config(path), code, words, extra_inputs=[path])
        if loader:
            check_failure(d, ["info", path], code, words, [path])
    return case


def m_empty(d):
    return write(os.path.join(d, "model.onnx"), b"")


def m_truncated(d):
    data = open(MLP, "rb").read()
    return write(os.path.join(d, "model.onnx"), data[: len(data) // 3])


def m_garbage(d):
    return write(os.path.join(d, "model.onnx"), np.random.default_rng(9).bytes(4096))


def m_text(d):
    return write(os.path.join(d, "model.onnx"), "this is not a model\n" * 20)


def m_cycle(d):
    nodes = [helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Add", ["input", "a"], ["b"], name="add"),
             helper.make_node("Relu", ["b"], ["y"], name="r2")]
    return save(d, tiny_model(nodes))


def m_dangling(d):
    nodes = [helper.make_node("Add", ["input", "nobody_makes_me"], ["y"], name="add_dangling")]
    return save(d, tiny_model(nodes))


def m_missing_init(d):
    m = onnx.load(MLP)
    keep = [t for t in m.graph.initializer if t.name != "weights.1"]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    return save(d, m)


def m_dup_outputs(d):
    nodes = [helper.make_node("Relu", ["input"], ["t"], name="first"), helper.make_node("Neg", ["input"], ["t"], name="second"),
             helper.make_node("Relu", ["t"], ["y"], name="r")]
    return save(d, tiny_model(nodes))


def m_dup_graph_outputs(d):
    nodes = [helper.make_node("Relu", ["input"], ["y"], name="r")]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])
    return save(d, tiny_model(nodes, outputs=[y, y]))


def m_opset_new(d):
    m = onnx.load(MLP)
    m.opset_import[0].version = 99
    return save(d, m)


def m_opset_29(d):
    # The first opset past the newest supported (28, onnx 1.23's newest): refused, naming the file and both opsets.
    m = onnx.load(MLP)
    m.opset_import[0].version = 29
    return save(d, m)


def m_unsupported_op(d):
    nodes = [helper.make_node("FrobnicateTensor", ["input"], ["y"], name="frob")]
    return save(d, tiny_model(nodes))


def m_raw_short(d):
    w = TensorProto(name="w_short", data_type=TensorProto.FLOAT, dims=[64], raw_data=b"\0" * 100)
    nodes = [helper.make_node("Add", ["input", "w_short"], ["y"], name="add")]
    return save(d, tiny_model(nodes, [w]))


def m_overflow(d):
    w = TensorProto(name="w_huge", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40, 1 << 20])
    w.raw_data = b"\0" * 16
    nodes = [helper.make_node("Add", ["input", "w_huge"], ["y"], name="add")]
    return save(d, tiny_model(nodes, [w]))


def m_negative_dim(d):
    w = TensorProto(name="w_neg", data_type=TensorProto.FLOAT, dims=[-4, 16])
    nodes = [helper.make_node("Add", ["input", "w_neg"], ["y"], name="add")]
    return save(d, tiny_model(nodes, [w]))


def external_model(d, location, nbytes=64 * 4, write_data=True, length=None):
    w = TensorProto(name="w_ext", data_type=TensorProto.FLOAT, dims=[64])
    w.data_location = TensorProto.EXTERNAL
    e = w.external_data.add()
    e.key, e.value = "location", location
    if length is not None:
        e = w.external_data.add()
        e.key, e.value = "length", str(length)
    if write_data:
        write(os.path.join(d, "w.bin"), b"\0" * nbytes)
    nodes = [helper.make_node("Add", ["input", "w_ext"], ["y"], name="add")]
    return save(d, tiny_model(nodes, [w]))


def m_ext_missing(d):
    return external_model(d, "missing.bin", write_data=False)


def m_ext_short(d):
    return external_model(d, "w.bin", nbytes=100)


def m_ext_length_short(d):
    return external_model(d, "w.bin", length=128)


def m_ext_parent(d):
    sub = os.path.join(d, "models")
    os.makedirs(sub)
    write(os.path.join(d, "secret.bin"), b"\0" * 256)
    return external_model(sub, "../secret.bin", write_data=False)


def m_ext_absolute(d):
    write(os.path.join(d, "abs.bin"), b"\0" * 256)
    return external_model(d, os.path.join(d, "abs.bin"), write_data=False)


def m_no_graph_input_data(d):
    """A model whose only initializer has float_data of the wrong count."""
    w = TensorProto(name="w_count", data_type=TensorProto.FLOAT, dims=[64], float_data=[1.0] * 10)
    nodes = [helper.make_node("Add", ["input", "w_count"], ["y"], name="add")]
    return save(d, tiny_model(nodes, [w]))


def if_model(then_nodes, then_outs, else_nodes, else_outs, name):
    """input -> If(mean(input) > 0) -> y, the branches as given (control flow, docs/conformance.md)."""
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, None)  # noqa: E731
    then_g = helper.make_graph(then_nodes, "then", [], [vi(o) for o in then_outs])
    else_g = helper.make_graph(else_nodes, "else", [], [vi(o) for o in else_outs])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0, name="mean"),
             helper.make_node("Greater", ["m", "zero"], ["c"], name="gt"),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g, name=name)]
    return tiny_model(nodes, [zero])


def m_body_unknown_outer(d):
    # The then-branch reads a name no scope defines: refused at load, naming the If and the branch.
    return save(d, if_model([helper.make_node("Add", ["input", "nowhere"], ["t"])], ["t"],
                            [helper.make_node("Neg", ["input"], ["e"])], ["e"], "if_bad"))


def m_if_uneven_branches(d):
    # Branches with 1 and 2 outputs for an If of 1 output: refused when the executor is built.
    return save(d, if_model([helper.make_node("Neg", ["input"], ["t"])], ["t"],
                            [helper.make_node("Neg", ["input"], ["e"]), helper.make_node("Abs", ["input"], ["e2"])],
                            ["e", "e2"], "if_uneven"))


def m_if_branch_types(d):
    # then_branch gives a float, else_branch an int64 (its Shape): refused when the executor is built, naming the If.
    m = if_model([helper.make_node("Neg", ["input"], ["t"])], ["t"],
                 [helper.make_node("Shape", ["input"], ["e"])], ["e"], "if_types")
    else_g = [a.g for a in m.graph.node[2].attribute if a.name == "else_branch"][0]
    else_g.output[0].type.tensor_type.elem_type = TensorProto.INT64
    return save(d, m)


def m_loop_sequence(d):
    # A Loop body output declared as a sequence: the executor holds tensors only.
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c2"]), helper.make_node("Identity", ["x"], ["x2"]),
         helper.make_node("Identity", ["x"], ["sq"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("c2", TensorProto.BOOL, []), helper.make_tensor_value_info("x2", TensorProto.FLOAT, None),
         helper.make_tensor_sequence_value_info("sq", TensorProto.FLOAT, None)])
    m_ = helper.make_tensor("M", TensorProto.INT64, [], [2])
    nodes = [helper.make_node("Loop", ["M", "", "input"], ["y", "seq"], body=body, name="seq_loop")]
    return save(d, tiny_model(nodes, [m_]))


def m_group_norm(opset, groups, n_affine):
    """input [batch, 64] -> GroupNormalization 'gn_node': default mode expands it (as quant_pre_process does), so a
    broken one must be refused before, naming it, not as a broadcast error of an unnamed inner node."""
    def make(d):
        sc = helper.make_tensor("gs", TensorProto.FLOAT, [n_affine], [1.0] * n_affine)
        bi = helper.make_tensor("gb", TensorProto.FLOAT, [n_affine], [0.0] * n_affine)
        nodes = [helper.make_node("GroupNormalization", ["input", "gs", "gb"], ["y"], num_groups=groups, name="gn_node")]
        return save(d, tiny_model(nodes, [sc, bi], opset=opset))
    return make


def m_dup_node_names(d):
    # Two nodes named "blk" (empty names are not duplicates): onnxruntime refuses the model, so does the loader.
    nodes = [helper.make_node("Relu", ["input"], ["a"], name="blk"), helper.make_node("Neg", ["a"], ["b"]),
             helper.make_node("Abs", ["b"], ["c"]), helper.make_node("Neg", ["c"], ["y"], name="blk")]
    return save(d, tiny_model(nodes))


def m_dup_node_names_in_body(d):
    # Within one If branch (ORT checks each graph on its own; a body reusing an outer name is fine: "mean").
    return save(d, if_model([helper.make_node("Neg", ["input"], ["t0"], name="mean"),
                             helper.make_node("Neg", ["t0"], ["t1"], name="twice"),
                             helper.make_node("Abs", ["t1"], ["t"], name="twice")], ["t"],
                            [helper.make_node("Neg", ["input"], ["e"], name="mean")], ["e"], "if_dup"))


def m_dup_node_names_in_function(d):
    # A function body with two nodes named "n": inlined, both are "_inlfunc_F_n" (ORT refuses that too).
    f = helper.make_function("loc", "F", ["a"], ["b"], [helper.make_node("Neg", ["a"], ["t"], name="n"),
                                                       helper.make_node("Neg", ["t"], ["b"], name="n")],
                             [helper.make_opsetid("", 13)])
    m = tiny_model([helper.make_node("F", ["input"], ["y"], name="call", domain="loc")])
    m.opset_import.append(helper.make_opsetid("loc", 1))
    m.functions.append(f)
    return save(d, m)


def m_ref_outside_function(d):
    # Constant(value=@bias_t) in the main graph: a reference has no value, and there is no call to give one.
    c = helper.make_node("Constant", [], ["k"], name="const_ref")
    ref = c.attribute.add()
    ref.name, ref.ref_attr_name, ref.type = "value", "bias_t", onnx.AttributeProto.TENSOR
    return save(d, tiny_model([c, helper.make_node("Add", ["input", "k"], ["y"], name="add")]))


def m_other_domain(op, domain, **attrs):
    """input -> op (of domain) -> y: onnxquant's executor runs ai.onnx ops only."""
    def make(d):
        w = helper.make_tensor("w64", TensorProto.FLOAT, [64, 64], [0.01] * 64 * 64)
        ins = ["input", "w64"] if op == "FusedMatMul" else ["input"]
        m = tiny_model([helper.make_node("Relu", ["input"], ["r"], name="relu"),
                        helper.make_node(op, ["r"] + ins[1:], ["y"], name="foreign", domain=domain, **attrs)],
                       [w] if len(ins) > 1 else [])
        m.opset_import.append(helper.make_opsetid(domain, 1))
        return save(d, m)
    return make


def m_sparse(mutate):
    """input + k -> y, k a sparse initializer [64] (3 non-zeros) that `mutate` breaks."""
    def make(d):
        sp = helper.make_sparse_tensor(helper.make_tensor("k_sparse", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0]),
                                       helper.make_tensor("k_idx", TensorProto.INT64, [3], [1, 5, 9]), [64])
        mutate(sp)
        m = tiny_model([helper.make_node("Add", ["input", "k_sparse"], ["y"], name="add")])
        m.graph.sparse_initializer.append(sp)
        return save(d, m)
    return make


def sp_index_out_of_range(sp):
    sp.indices.int64_data[2] = 64


def sp_count(sp):
    sp.indices.CopyFrom(helper.make_tensor("k_idx", TensorProto.INT64, [2], [1, 5]))


def sp_values_rank2(sp):
    sp.values.dims[:] = [3, 1]


def sp_float_indices(sp):
    sp.indices.CopyFrom(helper.make_tensor("k_idx", TensorProto.FLOAT, [3], [1, 5, 9]))


def sp_coordinates_rank(sp):
    sp.indices.CopyFrom(helper.make_tensor("k_idx", TensorProto.INT64, [3, 2], [0, 1, 0, 5, 0, 9]))


def sp_no_name(sp):
    sp.values.name = ""


MODEL_CASES = [
    ("model_empty_file", m_empty, ["model.onnx", "empty"]),
    ("model_truncated", m_truncated, ["model.onnx"]),
    ("model_garbage", m_garbage, ["model.onnx"]),
    ("model_text", m_text, ["model.onnx"]),
    ("model_cycle", m_cycle, ["model.onnx", "cycle"]),
    ("model_dangling_input", m_dangling, ["model.onnx", "nobody_makes_me"]),
    ("model_missing_initializer", m_missing_init, ["model.onnx", "weights.1"]),
    ("model_duplicate_node_outputs", m_dup_outputs, ["model.onnx", "'t'"]),
    ("model_duplicate_graph_outputs", m_dup_graph_outputs, ["model.onnx", "'y'"]),
    ("model_opset_too_new", m_opset_new, ["model.onnx", "99"], False),
    ("model_opset_29", m_opset_29, ["model.onnx", "opset 29", "newest supported (28)"], False),
    ("model_unsupported_op", m_unsupported_op, ["frob", "FrobnicateTensor"], False),
    ("model_raw_data_short", m_raw_short, ["model.onnx", "w_short"]),
    ("model_value_count_wrong", m_no_graph_input_data, ["model.onnx", "w_count"]),
    ("model_shape_overflow", m_overflow, ["model.onnx", "w_huge"]),
    ("model_negative_dim", m_negative_dim, ["model.onnx", "w_neg"]),
    ("model_external_missing", m_ext_missing, ["w_ext", "missing.bin"]),
    ("model_external_too_short", m_ext_short, ["w_ext", "w.bin"]),
    ("model_external_length_short", m_ext_length_short, ["w_ext", "length"]),
    ("model_external_parent_dir", m_ext_parent, ["w_ext", "../secret.bin"]),
    ("model_external_absolute", m_ext_absolute, ["w_ext", "absolute"]),
    ("model_body_unknown_outer_name", m_body_unknown_outer, ["model.onnx", "if_bad", "then_branch", "nowhere"]),
    ("model_if_branch_output_counts", m_if_uneven_branches, ["if_uneven", "else_branch"], False),
    ("model_if_branch_output_types", m_if_branch_types, ["if_types", "FLOAT in then_branch", "INT64 in else_branch"], False),
    ("model_loop_sequence_value", m_loop_sequence, ["seq_loop", "'sq'", "not a tensor"], False),
    ("model_group_norm_18_per_channel_scale", m_group_norm(18, 4, 64), ["gn_node", "[4]", "per group"], False),
    ("model_group_norm_21_per_group_scale", m_group_norm(21, 4, 4), ["gn_node", "[64]", "per channel"], False),
    ("model_group_norm_groups_not_dividing", m_group_norm(21, 5, 64), ["gn_node", "num_groups=5"], False),
    ("model_duplicate_node_names", m_dup_node_names, ["model.onnx", "two nodes are named 'blk'"]),
    ("model_duplicate_node_names_in_body", m_dup_node_names_in_body, ["model.onnx", "if_dup", "then_branch", "'twice'"]),
    ("model_duplicate_node_names_in_function", m_dup_node_names_in_function,
     ["model.onnx", "inlining", "'_inlfunc_F_n'"], False),
    ("model_attribute_reference_outside_function", m_ref_outside_function,
     ["model.onnx", "const_ref", "'bias_t' outside a function body"], False),
    ("model_contrib_op", m_other_domain("FusedMatMul", "com.microsoft", alpha=1.0),
     ["model.onnx", "foreign", "FusedMatMul", "domain 'com.microsoft'", "only ai.onnx", "EXTENDED"], False),
    ("model_ml_op", m_other_domain("Normalizer", "ai.onnx.ml", norm="L2"),
     ["model.onnx", "foreign", "Normalizer", "domain 'ai.onnx.ml'", "only ai.onnx"], False),
    ("model_sparse_index_out_of_range", m_sparse(sp_index_out_of_range), ["model.onnx", "'k_sparse'", "index 64"]),
    ("model_sparse_index_count", m_sparse(sp_count), ["model.onnx", "'k_sparse'", "2 indices for 3 values"]),
    ("model_sparse_values_rank_2", m_sparse(sp_values_rank2), ["model.onnx", "'k_sparse'", "rank 1"]),
    ("model_sparse_float_indices", m_sparse(sp_float_indices), ["model.onnx", "'k_sparse'", "FLOAT"]),
    ("model_sparse_coordinates_rank", m_sparse(sp_coordinates_rank), ["model.onnx", "'k_sparse'", "rank 1"]),
    ("model_sparse_without_name", m_sparse(sp_no_name), ["model.onnx", "sparse tensor without a name"]),
]


def case_model_missing():
    d = tmpdir()
    main_job(d, base_config(os.path.join(d, "nope.onnx")), 1, ["nope.onnx"])


def case_model_is_directory():
    d = tmpdir()
    os.makedirs(os.path.join(d, "dir.onnx"))
    main_job(d, base_config(os.path.join(d, "dir.onnx")), 1, ["dir.onnx", "directory"])

