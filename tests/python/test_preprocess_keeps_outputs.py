"""Pre-processing rewrites that changed the float model's outputs (white-box review of src/ir/passes): each model
is run through tests/oq_preprocess_model and onnxruntime (optimisations off) must give the original model's outputs
(1e-5 relative) and shapes on the pre-processed one.

- BatchNormalization after a Gemm that reads one initializer as both B and C: the fold rewrote that initializer in
  place for B, then again for C, so B read the new C (fold_batchnorm.cc, store()).
- A decomposed LayerNorm whose eps has a higher rank than X ([1,1,1] on a 2-D X): the original's output is
  broadcast to [1, M, N], the fused LayerNormalization's is [M, N] (fuse_layer_norm_gelu.cc; ORT fuses it).
- An erf GELU of a scalar X with [1] constants: the original's output is [1], the fused Gelu's [] (ORT fuses it).
- An If on a constant condition whose branch tensor, prefixed, is the name of a tensor of the graph
  (`_if_then_branch_r1`): inlining made that tensor twice and pre-processing failed (inline_if.cc).

Env: OQ_BUILD_DIR (built tree holding tests/oq_preprocess_model), OQ_SOURCE_DIR.
"""
import os
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import oqtest
from onnx import TensorProto, helper, numpy_helper

SRC = os.environ.get("OQ_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("OQ_BUILD_DIR", os.path.join(SRC, "build"))
TOOL = os.path.join(BUILD, "tests", "oq_preprocess_model")
TMP = oqtest.tmpdir("oq_pp_keeps_")
mn = helper.make_node


def f32(seed, *shape):
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(np.float32)


def vi(name, shape=None):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def model(name, nodes, x_shape, inits, opset):
    g = helper.make_graph(nodes, name, [vi("x", x_shape)], [vi("y")],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def run(path, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)


def preprocess_and_compare(m, x_shape):
    """Pre-processes `m`, asserts the outputs are the original's; returns the op types left."""
    src, dst = os.path.join(TMP, m.graph.name + ".onnx"), os.path.join(TMP, m.graph.name + "_pp.onnx")
    onnx.save(m, src)
    r = subprocess.run([TOOL, src, dst], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    feeds = {"x": np.random.default_rng(7).uniform(-1, 1, x_shape).astype(np.float32)}
    for want, got in zip(run(src, feeds), run(dst, feeds)):
        assert want.shape == got.shape, f"{m.graph.name}: shape {want.shape} became {got.shape}"
        err = float(np.max(np.abs(want.astype(np.float64) - got)))
        assert err <= 1e-5 * max(1.0, float(np.max(np.abs(want)))), f"{m.graph.name}: max error {err}"
    return [n.op_type for n in onnx.load(dst).graph.node]


def test_gemm_bn_b_and_c_one_initializer():
    bn = {"s": f32(1, 3), "b": f32(2, 3), "m": f32(3, 3), "v": f32(4, 3)}
    for tb in (0, 1):
        m = model(f"gemm_bc_tb{tb}", [mn("Gemm", ["x", "w", "w"], ["t"], transB=tb, alpha=0.5, beta=2.0),
                                      mn("BatchNormalization", ["t", "s", "b", "m", "v"], ["y"])],
                  [3, 3], {"w": f32(5, 3, 3), **bn}, opset=13)
        ops = preprocess_and_compare(m, [3, 3])
        assert ops == ["Gemm"], ops  # still folded


def layer_norm(name, x_shape, eps_shape):
    nodes = [mn("ReduceMean", ["x"], ["mu"], axes=[-1]), mn("Sub", ["x", "mu"], ["d"]), mn("Pow", ["d", "two"], ["p"]),
             mn("ReduceMean", ["p"], ["var"], axes=[-1]), mn("Add", ["var", "eps"], ["ve"]), mn("Sqrt", ["ve"], ["sd"]),
             mn("Div", ["d", "sd"], ["n"]), mn("Mul", ["n", "g"], ["ng"]), mn("Add", ["ng", "b"], ["y"])]
    n = x_shape[-1]
    inits = {"two": np.array(2.0, np.float32), "eps": np.full(eps_shape, 1e-5, np.float32), "g": f32(1, n),
             "b": f32(2, n)}
    return model(name, nodes, x_shape, inits, opset=17)


def test_layer_norm_eps_of_higher_rank():
    ops = preprocess_and_compare(layer_norm("ln_eps3_x2", [2, 4], [1, 1, 1]), [2, 4])
    assert "LayerNormalization" not in ops, ops
    # eps rank at most X's: fused as before
    for x_shape, eps_shape in (([2, 3, 4], [1, 1, 1]), ([2, 4], [1, 1]), ([2, 4], [1]), ([2, 4], [])):
        ops = preprocess_and_compare(layer_norm(f"ln_eps{len(eps_shape)}_x{len(x_shape)}", x_shape, eps_shape),
                                     x_shape)
        assert ops == ["LayerNormalization"], (x_shape, eps_shape, ops)


def gelu(name, x_shape, c_shape):
    nodes = [mn("Relu", ["x"], ["r"]), mn("Div", ["r", "s2"], ["d"]), mn("Erf", ["d"], ["e"]),
             mn("Add", ["e", "one"], ["a"]), mn("Mul", ["r", "a"], ["m"]), mn("Mul", ["m", "half"], ["y"])]
    inits = {k: np.full(c_shape, v, np.float32) for k, v in (("s2", np.sqrt(2)), ("one", 1.0), ("half", 0.5))}
    return model(name, nodes, x_shape, inits, opset=20)


def test_gelu_scalar_x():
    ops = preprocess_and_compare(gelu("gelu_x0_c1", [], [1]), [])
    assert "Gelu" not in ops, ops
    for x_shape, c_shape in (([], []), ([3], [1]), ([2, 3], [1]), ([2, 3], [])):  # fused as before
        ops = preprocess_and_compare(gelu(f"gelu_x{len(x_shape)}_c{len(c_shape)}", x_shape, c_shape), x_shape)
        assert ops == ["Relu", "Gelu"], (x_shape, c_shape, ops)


def test_inlined_if_name_taken():
    for cond in (True, False):
        then_b = helper.make_graph([mn("Relu", ["x"], ["r1"]), mn("Neg", ["r1"], ["r"])], "then", [], [vi("r")])
        else_b = helper.make_graph([mn("Sigmoid", ["x"], ["r1"]), mn("Neg", ["r1"], ["r"])], "else", [], [vi("r")])
        taken = "_if_then_branch_r1" if cond else "_if_else_branch_r1"
        nodes = [mn("Tanh", ["x"], [taken]), mn("If", ["c"], ["o"], then_branch=then_b, else_branch=else_b),
                 mn("Add", ["o", taken], ["y"])]
        m = model(f"if_taken_{cond}", nodes, [2, 3], {"c": np.array(cond)}, opset=17)
        ops = preprocess_and_compare(m, [2, 3])
        assert "If" not in ops, ops  # still inlined


if __name__ == "__main__":
    oqtest.run_module_tests(globals())
