"""Valid but unusual models through default mode (a QA sweep of the eighth session), checked in onnxruntime.

Each case builds a small Conv -> Relu -> Flatten -> Gemm model with one quirk, quantizes it (MinMax, Int8,
per channel), and checks that the QDQ model passes onnx.checker (full_check), loads in onnxruntime and computes
the float model's outputs within 5 % of their range (a normal run is ~2 %):
- tensors or nodes named as onnxquant names its own (`w_scale` as a user constant where `w` is a weight,
  `b_quantized`, a node `r_QuantizeLinear`): fresh names, the user's tensors untouched (the scale used to
  overwrite `w_scale`: 99 % error);
- initializers also listed as graph inputs (older PyTorch exports, IR 7): constants once pre-processing is done
  (test_overridable_initializers.py checks that it folds none of them, as ORT's optimizer);
- a graph output that is a graph input;
- a graph output that a Relu also reads (its own range, not the Relu's: ORT's output there loses its negatives);
and refusals: the output file being the input model's external data (exit 2, the input still loads), an
already quantized model (exit 1); `run` with two outputs whose names clean up to one file name writes both.
"""
import hashlib
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, run_oq, tmpdir  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 3, 8, 8)).astype(np.float32)


def base_model(ir=8, opset=17):
    w = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    b = RNG.standard_normal(8).astype(np.float32) * 0.1
    gw = RNG.standard_normal((10, 8 * 64)).astype(np.float32) * 0.05
    gb = RNG.standard_normal(10).astype(np.float32) * 0.1
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], name="gemm", transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                          [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (gw, "gw"), (gb, "gb"))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def insert_after_relu(m, inits, nodes):
    """Inserts `nodes` between the Relu (output r) and the Flatten, which then reads the last node's output."""
    g = m.graph
    g.initializer.extend(inits)
    old = list(g.node)
    old[2].input[0] = nodes[-1].output[0]
    del g.node[:]
    g.node.extend(old[:2] + nodes + old[2:])
    return m


def quantize(d, model_path, code=0, out="out"):
    np.savez(os.path.join(d, "calib.npz"), x=X)
    return run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", os.path.join(d, out),
                   f"model.model_path={model_path}", f"dataset.quantization_path={os.path.join(d, 'calib.npz')}",
                   "quantization.operating_mode=default", "preprocessing.color_mode=rgb"], check=code == 0)


def outputs(path_or_model, feeds):
    m = path_or_model if isinstance(path_or_model, str) else path_or_model.SerializeToString()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m, so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def check_close(name, m):
    d = tmpdir()
    path = os.path.join(d, name + ".onnx")
    onnx.save(m, path)
    onnx.checker.check_model(m, full_check=True)
    quantize(d, path)
    q = os.path.join(d, "out", "quantized_models", name + "_quant_qdq_pc.onnx")
    onnx.checker.check_model(onnx.load(q), full_check=True)
    names = [n.name for n in onnx.load(q).graph.node]
    assert len(names) == len(set(names)), f"duplicate node names in {q}"
    feeds = {"x": X[:1]}
    for ref, got in zip(outputs(path, feeds), outputs(q, feeds)):
        err = np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-6)
        assert err < 0.05, f"{name}: relative error {err:.3f}"
    return onnx.load(q)


def own_names():
    k = numpy_helper.from_array(np.array([2.0], np.float32), "w_scale")
    check_close("w_scale_const", insert_after_relu(base_model(), [k], [helper.make_node("Mul", ["r", "w_scale"], ["m"],
                                                                                          name="mul")]))
    bq = numpy_helper.from_array(np.full([1], 0.5, np.float32), "b_quantized")
    q = check_close("b_quantized_const", insert_after_relu(base_model(), [bq], [
        helper.make_node("Add", ["r", "b_quantized"], ["m"], name="add")]))
    # The Conv bias' int32 tensor took a fresh name; the user's constant is quantized under its own.
    int32 = [i.name for i in q.graph.initializer if i.data_type == TensorProto.INT32 and i.name.startswith("b_")]
    assert int32 == ["b_quantized_1", "b_quantized_1_zero_point"], int32
    k = numpy_helper.from_array(np.array(2.0, np.float32), "k")
    check_close("node_named_like_ours", insert_after_relu(base_model(), [k], [
        helper.make_node("Mul", ["r", "k"], ["m"], name="r_QuantizeLinear")]))


def initializers_as_inputs():
    m = base_model(ir=7, opset=13)
    for t in m.graph.initializer:
        m.graph.input.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)))
    q = check_close("init_inputs", m)
    assert [i.name for i in q.graph.input] == ["x"], [i.name for i in q.graph.input]


def output_is_input():
    m = base_model()
    m.graph.output.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]))
    check_close("output_is_input", m)


def ai_onnx_domain():
    # The default domain spelled "ai.onnx" in the import and on a node: onnxruntime runs it, onnx.checker refuses
    # it. The output used to mix the spellings (Q/DQ nodes in "", the import "ai.onnx": refused by the checker).
    m = base_model()
    m.opset_import[0].domain = "ai.onnx"
    m.graph.node[0].domain = "ai.onnx"
    d = tmpdir()
    path = os.path.join(d, "aionnx.onnx")
    onnx.save(m, path)
    quantize(d, path)
    q = onnx.load(os.path.join(d, "out", "quantized_models", "aionnx_quant_qdq_pc.onnx"))
    onnx.checker.check_model(q, full_check=True)
    assert [(o.domain, o.version) for o in q.opset_import] == [("", 21)], q.opset_import
    assert all(n.domain == "" for n in q.graph.node), [n.domain for n in q.graph.node]
    ref = base_model()
    ref.graph.ClearField("initializer")
    ref.graph.initializer.extend(m.graph.initializer)
    feeds = {"x": X[:1]}
    for r, got in zip(outputs(ref, feeds), outputs(os.path.join(d, "out", "quantized_models",
                                                                "aionnx_quant_qdq_pc.onnx"), feeds)):
        err = np.abs(r - got).max() / max(np.abs(r).max(), 1e-6)
        assert err < 0.05, f"relative error {err:.3f}"
    # Both spellings imported at different opsets: refused naming them.
    m.opset_import.append(helper.make_opsetid("", 13))
    onnx.save(m, path)
    p = quantize(d, path, code=1, out="out2")
    assert p.returncode == 1 and "imports domain 'ai.onnx' twice, at opsets 17 and 13" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(d, "out2", "quantized_models")), os.listdir(os.path.join(d, "out2"))


def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def refusals():
    d = tmpdir()
    m = base_model()
    path = os.path.join(d, "m.onnx")
    os.makedirs(os.path.join(d, "quantized_models"))
    # The external data file sits where the quantized model would be written.
    onnx.save(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="quantized_models/m_quant_qdq_pc.onnx", size_threshold=0)
    data = os.path.join(d, "quantized_models", "m_quant_qdq_pc.onnx")
    before = sha(data)
    np.savez(os.path.join(d, "calib.npz"), x=X)
    p = run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", d, f"model.model_path={path}",
                f"dataset.quantization_path={os.path.join(d, 'calib.npz')}", "quantization.operating_mode=default",
                "preprocessing.color_mode=rgb"], check=False)
    assert p.returncode == 2 and "external data file of the input model" in p.stderr, p.stderr[-2000:]
    assert sha(data) == before
    onnx.checker.check_model(path, full_check=True)
    # An already quantized model.
    d2 = tmpdir()
    src = os.path.join(d2, "f.onnx")
    onnx.save(base_model(), src)
    quantize(d2, src)
    qdq = os.path.join(d2, "out", "quantized_models", "f_quant_qdq_pc.onnx")
    p = quantize(d2, qdq, code=1, out="again")
    assert p.returncode == 1 and "already quantized" in p.stderr and "f_quant_qdq_pc.onnx" in p.stderr, p.stderr
    # A model computing in bfloat16 (Cast to bfloat16, then the Flatten in bfloat16) is refused before calibration
    # with the tensor and node (float16 models are quantized: tests/python/test_float16.py); bfloat16 and float16
    # weights that are only Cast to float are accepted.
    d3 = tmpdir()
    m = insert_after_relu(base_model(), [], [helper.make_node("Cast", ["r"], ["r16"], name="to16", to=TensorProto.BFLOAT16),
                                            helper.make_node("Cast", ["r16"], ["r32"], name="to32", to=TensorProto.FLOAT)])
    m.graph.node[4].input[0] = "r16"  # the Flatten now reads the bfloat16 tensor
    half = os.path.join(d3, "half.onnx")
    onnx.save(m, half)
    p = quantize(d3, half, code=1)
    assert p.returncode == 1 and "'r16' is bfloat16" in p.stderr and "node 'flat'" in p.stderr, p.stderr[-1500:]
    assert sum(l.startswith("[error]") for l in p.stderr.splitlines()) == 1, p.stderr
    m = base_model()
    w = next(t for t in m.graph.initializer if t.name == "gw")
    w16 = numpy_helper.from_array(numpy_helper.to_array(w).astype(np.float16), "gw16")
    m.graph.initializer.remove(w)
    m.graph.initializer.append(w16)
    m.graph.node.insert(0, helper.make_node("Cast", ["gw16"], ["gw"], name="gw_to32", to=TensorProto.FLOAT))
    ok = os.path.join(d3, "weights16.onnx")
    onnx.save(m, ok)
    quantize(d3, ok, out="ok")


def output_read_by_relu():
    # The Conv output is a model output and the Relu's only input: ORT gives it the Relu's range [0, max] and the
    # model output loses its negative values; onnxquant keeps its own range (docs/conformance.md).
    m = base_model()
    m.graph.output.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 8, 8, 8]))
    q = check_close("out_relu_in", m)  # every output within 5 % of its range, "c" included
    types = [n.op_type for n in q.graph.node]
    assert "Relu" in types, types
    c_scale = numpy_helper.to_array(next(i for i in q.graph.initializer if i.name == "c_scale"))
    c_zp = numpy_helper.to_array(next(i for i in q.graph.initializer if i.name == "c_zero_point"))
    ref = np.stack([outputs(m, {"x": X[i:i + 1]})[1] for i in range(len(X))])  # "c" over the calibration data
    lo, hi = min(float(ref.min()), 0.0), max(float(ref.max()), 0.0)
    assert abs(float(c_scale) - (hi - lo) / 255) <= 1e-6 * float(c_scale), (c_scale, lo, hi)
    assert int(c_zp) == int(np.round(-128 - lo / ((hi - lo) / 255))), c_zp


def run_output_names():
    d = tmpdir()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    g = helper.make_graph([helper.make_node("Abs", ["x"], ["a/b"]), helper.make_node("Neg", ["x"], ["a_b"])], "g",
                          [x], [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("a/b", "a_b")])
    path = os.path.join(d, "m.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    np.save(os.path.join(d, "x.npy"), np.array([-1.5, 2.0], np.float32))
    run_oq(["run", path, "--input", "x=" + os.path.join(d, "x.npy"), "--output-dir", os.path.join(d, "o")])
    files = sorted(os.listdir(os.path.join(d, "o")))
    assert files == ["a_b.npy", "a_b_1.npy"], files
    got = sorted(np.load(os.path.join(d, "o", f)).tolist() for f in files)
    assert got == sorted([[1.5, 2.0], [1.5, -2.0]]), got


if __name__ == "__main__":
    r = Runner()
    r.run("tensors and nodes named as onnxquant names its own", own_names)
    r.run("initializers listed as graph inputs (IR 7)", initializers_as_inputs)
    r.run("a graph output that is a graph input", output_is_input)
    r.run("refusals: output over the input's external data, an already quantized model, bfloat16 compute", refusals)
    r.run("the default domain spelled 'ai.onnx'", ai_onnx_domain)
    r.run("run: output names that clean up to one file name", run_output_names)
    r.run("a graph output read by a Relu keeps its own range", output_read_by_relu)
    r.finish()
