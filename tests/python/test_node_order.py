"""Node order of the pre-processed model against quant_pre_process's (docs/conformance.md, "Node order").

quant_pre_process saves the model ONNX Runtime optimized, its nodes in ORT's own topological order (GraphViewer's
reverse depth-first walk by node index), and quantize_static walks the nodes in that order: a Resize / MaxPool
quantizes its output only if its input is already marked when it is visited, and DedicatedQDQPair numbers the
readers of a tensor in it. onnxquant writes its pre-processed graph in that order (src/ir/passes/ort_graph_order.cc).

- test_order_<model>: every model of OQ_SHARED_DIR/models and testdata/: default mode with nothing to quantize
  (op_types_to_quantize [Hardmax], which none of them has) writes the pre-processed float model as it is; its node
  outputs, in order, are those of quant_pre_process's model.
- test_order_built_*: small models for the rules ORT's order follows: a graph ORT does not change keeps the file's
  order, one it changes is walked from the last leaf; Gemms fused on sibling branches and HardSwish bodies inlined
  on sibling branches are numbered as ORT creates them.
- test_ssd_conv_resize: st_ssd_mobilenet_v1_025_256 with op_types_to_quantize [Conv, Resize]: Q/DQ counts per op
  type and the Resize outputs quantized are quantize_static's after quant_pre_process (1 of 5; onnxquant quantized
  all 5 when it walked the file's order); test_resize_marked_later is the same on a small model.
- test_ssd_dedicated_pairs: DedicatedQDQPair on the same model: every reader reads the DequantizeLinear outputs
  (`..._1`, `..._2`) ORT gives it.

Env: OQ_BIN, OQ_SOURCE_DIR, OQ_SHARED_DIR.
"""
import glob
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from oqtest import SHARED, TESTDATA, default_mode_config, run_module_tests, run_oq, tmpdir
from test_op_parity import qdq_counts

WORK = tmpdir()
SSD = os.path.join(SHARED, "models", "st_ssd_mobilenet_v1_025_256.onnx")
_pre = {}


def ort_pre(path):
    """quant_pre_process's model for `path` (computed once per file)."""
    if path not in _pre:
        out = os.path.join(WORK, f"pre_{len(_pre)}_{os.path.basename(path)}")
        quant_pre_process(path, out)
        _pre[path] = out
    return _pre[path]


def opset(m):
    return next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))


def model_input(m):
    inits = {t.name for t in m.graph.initializer}
    return next(i for i in m.graph.input if i.name not in inits)


def calib(m, n=4, seed=0):
    """An .npz of n random rows for the model's input (batch dim 1 per row)."""
    i = model_input(m)
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim]
    x = np.random.default_rng(seed).uniform(-1, 1, size=[n] + shape[1:]).astype(np.float32)
    path = os.path.join(WORK, f"calib_{i.name.replace(':', '_')}_{'x'.join(map(str, shape[1:]))}.npz")
    np.savez(path, **{i.name: x})
    return path, i.name, x


class Rows(CalibrationDataReader):
    def __init__(self, name, x):
        self.name, self.rows = name, iter(x)

    def get_next(self):
        r = next(self.rows, None)
        return None if r is None else {self.name: r[None]}


def run_default(path, params, extra=None, tag="run"):
    """onnxquant's default mode on `path` at the model's own opset; returns the written model."""
    m = onnx.load(path)
    npz = calib(m)[0]
    cfg = os.path.join(WORK, f"{tag}.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(path, npz, True, opset(m), params=params, extra=extra))
    out = os.path.join(WORK, tag)
    run_oq(["--config", cfg, "--output-dir", out, "--threads", "2"], timeout=120)
    base = os.path.splitext(os.path.basename(path))[0]
    return onnx.load(os.path.join(out, "quantized_models", base + "_quant_qdq_pc.onnx"))


def run_ort(path, op_types=None, extra=None):
    """quantize_static (QDQ, per channel, Int8, MinMax) on quant_pre_process's model, fed the same rows."""
    pre = ort_pre(path)
    _, name, x = calib(onnx.load(path))
    out = pre + f".q_{'_'.join(op_types or ['all'])}_{'_'.join(extra or [])}.onnx"
    quantize_static(pre, out, Rows(name, x), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=op_types,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, **(extra or {})})
    return onnx.load(out)


def check_order(path, tag):
    """The pre-processed model onnxquant writes (nothing quantized) has quant_pre_process's node order."""
    ours = run_default(path, {"op_types_to_quantize": ["Hardmax"]}, tag=tag)
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in ours.graph.node)
    got = [n.output[0] for n in ours.graph.node]
    want = [n.output[0] for n in onnx.load(ort_pre(path)).graph.node]
    assert sorted(got) == sorted(want), f"different nodes: ORT only {set(want) - set(got)}, ours {set(got) - set(want)}"
    first = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), None)
    assert first is None, \
        f"{tag}: order differs from node {first}: ours {got[first:first + 4]}, ORT {want[first:first + 4]}"


def models():
    return sorted(glob.glob(os.path.join(SHARED, "models", "*.onnx")) + glob.glob(os.path.join(TESTDATA, "*.onnx")),
                  key=os.path.basename)


for _p in models():
    _name = os.path.splitext(os.path.basename(_p))[0]
    globals()[f"test_order_{_name}"] = (lambda p=_p, n=_name: check_order(p, n))


def save_built(nodes, inits, out_shape, name, opset_version=13, in_shape=(1, 3, 4, 4)):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset_version)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    path = os.path.join(WORK, name + ".onnx")
    onnx.save(m, path)
    return path


def w(*shape, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 0.3).astype(np.float32)


def two_branches(mid):
    """input -> Conv c1 -> Relu r1, input -> Conv c2 -> `mid` -> Relu r2, Add(r1, r2): siblings in file order."""
    return ([helper.make_node("Conv", ["input", "W1"], ["a"], name="c1"),
             helper.make_node("Relu", ["a"], ["ra"], name="r1"),
             helper.make_node("Conv", ["input", "W2"], ["b"], name="c2")] + mid +
            [helper.make_node("Relu", ["m"], ["rb"], name="r2"),
             helper.make_node("Add", ["ra", "rb"], ["y"], name="add")])


def test_order_built_unchanged_keeps_file_order():
    p = save_built(two_branches([helper.make_node("Sigmoid", ["b"], ["m"], name="s")]),
                   {"W1": w(4, 3, 1, 1), "W2": w(4, 3, 1, 1, seed=1)}, [1, 4, 4, 4], "unchanged")
    assert [n.name for n in onnx.load(ort_pre(p)).graph.node] == ["c1", "r1", "c2", "s", "r2", "add"]
    check_order(p, "unchanged")


def test_order_built_changed_walks_from_last_leaf():
    p = save_built(two_branches([helper.make_node("Identity", ["b"], ["m"], name="id")]),
                   {"W1": w(4, 3, 1, 1), "W2": w(4, 3, 1, 1, seed=1)}, [1, 4, 4, 4], "changed")
    assert [n.name for n in onnx.load(ort_pre(p)).graph.node] == ["c2", "r2", "c1", "r1", "add"]
    check_order(p, "changed")


def test_order_built_sibling_gemms():
    # Two Dense heads on one input, concatenated: ORT fuses MatMul + Add in its own order (the second head first).
    nodes = []
    for k in (1, 2):
        nodes += [helper.make_node("MatMul", ["input", f"B{k}"], [f"mm{k}"], name=f"mm{k}"),
                  helper.make_node("Add", [f"mm{k}", f"C{k}"], [f"h{k}"], name=f"add{k}")]
    nodes.append(helper.make_node("Concat", ["h1", "h2"], ["y"], name="cat", axis=1))
    p = save_built(nodes, {"B1": w(8, 4), "C1": w(4, seed=1), "B2": w(8, 4, seed=2), "C2": w(4, seed=3)}, ["N", 8],
                   "gemms", in_shape=("N", 8))
    assert [n.op_type for n in onnx.load(ort_pre(p)).graph.node] == ["Gemm", "Gemm", "Concat"]
    check_order(p, "gemms")


def test_order_built_sibling_hardswish():
    # HardSwish-14 on two branches read by one Add: ORT inlines the calls in node order, each body in its own order,
    # so the second body has the higher indices and is walked first.
    nodes = [helper.make_node("Conv", ["input", "W1"], ["a"], name="c1"),
             helper.make_node("HardSwish", ["a"], ["ha"], name="hs1"),
             helper.make_node("Conv", ["input", "W2"], ["b"], name="c2"),
             helper.make_node("HardSwish", ["b"], ["hb"], name="hs2"),
             helper.make_node("Add", ["ha", "hb"], ["y"], name="add")]
    p = save_built(nodes, {"W1": w(4, 3, 1, 1), "W2": w(4, 3, 1, 1, seed=1)}, [1, 4, 4, 4], "hardswish", 14)
    assert [n.output[0] for n in onnx.load(ort_pre(p)).graph.node][:3] == ["b", "_inlfunc_HardSwish_token_0_HS_X", "hb"]
    check_order(p, "hardswish")


def quantized_outputs(m, op_type):
    q_in = {n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear"}
    return sorted(o for n in m.graph.node if n.op_type == op_type for o in n.output if o in q_in)


def test_resize_marked_later():
    # The Resize reads an Add output that only a Conv marks. In the file the Conv comes first (the Resize would
    # quantize its output); ORT removes the Identity, and its order walks the Resize's branch first (its index is
    # the higher of the last Add's inputs): the Resize output stays float, as quantize_static leaves it.
    nodes = [helper.make_node("Conv", ["input", "W1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["input", "W3"], ["c1b"], name="conv1b", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c1", "c1b"], ["a"], name="add"),
             helper.make_node("Conv", ["a", "W2"], ["c2"], name="conv2"),
             helper.make_node("Identity", ["c2"], ["c2i"], name="id"),
             helper.make_node("Resize", ["c2i", "", "sc"], ["y2"], name="resize2", mode="nearest"),
             helper.make_node("Resize", ["a", "", "sc"], ["r"], name="resize", mode="nearest"),
             helper.make_node("Add", ["r", "y2"], ["y"], name="add2")]
    inits = {"W1": w(4, 3, 3, 3), "W2": w(4, 4, 1, 1, seed=1), "W3": w(4, 3, 3, 3, seed=2),
             "sc": np.array([1, 1, 2, 2], np.float32)}
    p = save_built(nodes, inits, ["N", 4, 8, 8], "resize", 17, in_shape=("N", 3, 4, 4))
    a, b = run_ort(p, ["Conv", "Resize"]), run_default(p, {"op_types_to_quantize": ["Conv", "Resize"]}, tag="rs")
    assert quantized_outputs(a, "Resize") == ["y2"], quantized_outputs(a, "Resize")  # the case
    assert qdq_counts(a) == qdq_counts(b), (qdq_counts(a), qdq_counts(b))
    assert quantized_outputs(b, "Resize") == ["y2"], quantized_outputs(b, "Resize")


def test_ssd_conv_resize():
    a = run_ort(SSD, ["Conv", "Resize"])
    b = run_default(SSD, {"op_types_to_quantize": ["Conv", "Resize"]}, tag="ssd_resize")
    assert qdq_counts(a) == qdq_counts(b), (qdq_counts(a), qdq_counts(b))
    resized = quantized_outputs(a, "Resize")
    assert len(resized) == 1, resized  # ORT 1.32: the others are visited before the Conv that marks their input
    assert quantized_outputs(b, "Resize") == resized, (quantized_outputs(b, "Resize"), resized)


def dq_reads(m):
    """{reader (name, else first output): its inputs that a DequantizeLinear writes} of the non-Q/DQ nodes."""
    dq_out = {o for n in m.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name or n.output[0]: [i for i in n.input if i in dq_out] for n in m.graph.node
            if n.op_type not in ("QuantizeLinear", "DequantizeLinear")}


def test_ssd_dedicated_pairs():
    extra = {"DedicatedQDQPair": True}
    a, b = run_ort(SSD, extra=extra), run_default(SSD, {}, extra=extra, tag="ssd_pairs")
    ra, rb = dq_reads(a), dq_reads(b)
    assert sum(i.endswith("_1") for v in ra.values() for i in v) >= 10  # the case: many tensors with several readers
    diff = {k: (ra.get(k), rb.get(k)) for k in set(ra) | set(rb) if ra.get(k) != rb.get(k)}
    assert not diff, f"{len(diff)} readers differ (ORT, ours): {sorted(diff.items())[:4]}"


if __name__ == "__main__":
    run_module_tests(globals())
