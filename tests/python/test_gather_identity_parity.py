"""Gather and Identity cases of the default mode against ORT 1.32's quantize_static (QDQ, after quant_pre_process),
from the QA of the fifteenth session (docs/conformance.md, "Gather outputs and Identity names"):

- TensorQuantOverrides `{emb: [{axis: 0}]}` on a Gather's table (Int8, QInt4, axis 1; per channel and per tensor):
  ORT quantizes the table per row and gives the Gather output the table's per-row scale without an axis (its model
  fails in onnxruntime: "scale must be 1D tensor with size 8"); onnxquant used to write the same. Deliberate: the
  output gets its own per-tensor scale (hand-computed from the gathered values' range), in the table's type; the
  table itself is ORT's; the model runs with outputs close to the float model's.
- `OpTypesToExcludeOutputQuantization: [Gather]` / `[GatherElements]`: ORT's QDQGather never reads the flag, so the
  output keeps sharing the input's parameters (`emb_scale`, or `x_scale` with ForceQuantizeNoInputCheck); onnxquant
  gave it its own. Every other op quantizer of ORT's QDQ registry honours the flag (a MatMul still loses its output
  Q/DQ).
- An Identity reading a constant (initializer or Constant node) in front of an Add / Mul / Conv weight: ORT's
  pre-processing removes it and keeps the constant's name (`k1_quantized`); onnxquant's own pre-processing folded it
  into `t_quantized`. When the Identity's output is a graph output, ORT folds it into an initializer of that name
  (kept float for the output, `t_quantized` for the Add). Here ORT gets its pre-processed model, onnxquant the raw one.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, default_mode_config, ort_session, run_oq, tmpdir  # noqa: E402
from test_op_parity import DictReader, compare_with_ort, init, model, quantize_both, rnd, same_as_ort  # noqa: E402

N = 16
S, D, V = 8, 16, 50
mn = helper.make_node


def inits_of(m):
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def q_params(m, t):
    """The scale / zero point names of the QuantizeLinear of `t`."""
    q = [n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == t]
    assert len(q) == 1, [n.input for n in m.graph.node if n.op_type == "QuantizeLinear"]
    return q[0].input[1], q[0].input[2]


def run_all(path, x):
    return np.concatenate([ort_session(path).run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


def tqo_axis_on_gather_table():
    table = rnd(1, (V, D), 1.0)
    m = model([mn("Gather", ["emb", "input"], ["g"], name="gather"), mn("MatMul", ["g", "W"], ["y"], name="mm")],
              [init("emb", table), init("W", rnd(2, (D, 4)))], [1, S], [1, S, 4], TensorProto.INT64, opset=21)
    ids = np.random.default_rng(0).integers(0, V, (N, S)).astype(np.int64)
    g = table[ids]
    lo, hi = min(g.min(), 0.0), max(g.max(), 0.0)
    for ov, qt, levels, tol in (({"axis": 0}, TensorProto.INT8, 255, 0.03), ({"axis": 1}, TensorProto.INT8, 255, 0.03),
                                ({"axis": 0, "quant_type": "QInt4"}, TensorProto.INT4, 15, 0.2)):
        ort_ov = dict(ov, **({"quant_type": QuantType.QInt4} if "quant_type" in ov else {}))
        for pc in (True, False):
            ort_out, ours, pre = quantize_both(m, ids, pc, extra={"TensorQuantOverrides": {"emb": [ort_ov]}},
                                               oq_extra={"TensorQuantOverrides": {"emb": [ov]}}, opset=21)
            a, b = onnx.load(ort_out), onnx.load(ours)
            ia, ib = inits_of(a), inits_of(b)
            # The table: ORT's per-channel quantization (scale per row / column, values within 1).
            assert np.allclose(ia["emb_scale"], ib["emb_scale"], rtol=1e-6) and ib["emb_scale"].shape == (
                table.shape[ov["axis"]],), ib["emb_scale"].shape
            assert np.abs(ia["emb_quantized"].astype(np.int64) - ib["emb_quantized"].astype(np.int64)).max() <= 1
            # The Gather output: ORT reuses the per-channel table scale (no axis); ours its own per-tensor scale.
            assert q_params(a, "g") == ("emb_scale", "emb_zero_point"), q_params(a, "g")
            assert q_params(b, "g") == ("g_scale", "g_zero_point"), q_params(b, "g")
            assert ib["g_scale"].shape == () and np.isclose(ib["g_scale"], (hi - lo) / levels, rtol=1e-5), \
                (ib["g_scale"], (hi - lo) / levels)
            zp_type = [t for t in b.graph.initializer if t.name == "g_zero_point"][0].data_type
            assert zp_type == qt, (zp_type, qt)  # the table's type
            ref, got = run_all(pre, ids), run_all(ours, ids)
            err = np.abs(got - ref).max() / np.abs(ref).max()
            assert err < tol, (ov, pc, err)


def exclude_output_gather():
    table = rnd(1, (V, D), 1.0)
    m = model([mn("Gather", ["emb", "input"], ["g"], name="gather"), mn("MatMul", ["g", "W"], ["y"], name="mm")],
              [init("emb", table), init("W", rnd(2, (D, 4)))], [1, S], [1, S, 4], TensorProto.INT64)
    ids = np.random.default_rng(0).integers(0, V, (N, S)).astype(np.int64)
    for pc in (True, False):
        _, b = same_as_ort(m, ids, pc, extra={"OpTypesToExcludeOutputQuantization": ["Gather"]})
        assert q_params(b, "g") == ("emb_scale", "emb_zero_point"), q_params(b, "g")
        # A MatMul in the list still loses its output Q/DQ (ORT's QDQMatMul reads the flag), the Gather's stays.
        _, b = same_as_ort(m, ids, pc, extra={"OpTypesToExcludeOutputQuantization": ["Gather", "MatMul"]})
        assert q_params(b, "g") == ("emb_scale", "emb_zero_point")
        assert not [n for n in b.graph.node if n.op_type == "QuantizeLinear" and n.input[0].startswith("y")]
    # An activation Gather / GatherElements with ForceQuantizeNoInputCheck: the output shares the input's x_scale.
    x = rnd(3, (N, 6, D), 1.0)
    for op, idx in (("Gather", np.array([0, 2, 1, 3], np.int64)),
                    ("GatherElements", np.random.default_rng(4).integers(0, 6, (1, 4, D)).astype(np.int64))):
        mm = model([mn(op, ["input", "idx"], ["g"], name="gather", axis=1), mn("MatMul", ["g", "W"], ["y"], name="mm")],
                   [init("idx", idx), init("W", rnd(2, (D, 4)))], [1, 6, D], [1, 4, 4])
        _, b = same_as_ort(mm, x, False, extra={"OpTypesToExcludeOutputQuantization": [op],
                                                "ForceQuantizeNoInputCheck": True})
        assert q_params(b, "g") == ("input_scale", "input_zero_point"), (op, q_params(b, "g"))


def identity_cases():
    k1 = init("k1", rnd(1, (1, 4, 8), 1.0))
    x8 = rnd(3, (N, 4, 8), 1.0)
    const = mn("Constant", [], ["k1"], name="c", value=numpy_helper.from_array(rnd(1, (1, 4, 8), 1.0), "k1"))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])
    t_out = helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4, 8])
    neg = [mn("Neg", ["k1"], ["n"], name="neg"), mn("Identity", ["n"], ["t"], name="id")]
    return [  # (nodes, initializers, input shape, outputs, calibration data, the constant's name in both models)
        ([mn("Identity", ["k1"], ["t"], name="id"), mn("Add", ["input", "t"], ["y"], name="add")], [k1],
         [1, 4, 8], [y], x8, "k1"),
        ([const, mn("Identity", ["k1"], ["t"], name="id"), mn("Mul", ["input", "t"], ["y"], name="mul")], [],
         [1, 4, 8], [y], x8, "k1"),
        (neg + [mn("Add", ["input", "t"], ["y"], name="add")], [k1], [1, 4, 8], [y], x8, "n"),
        ([mn("Identity", ["w"], ["t"], name="id"), mn("Conv", ["input", "t"], ["y"], name="conv")],
         [init("w", rnd(2, (3, 4, 1, 1)))], [1, 4, 5, 5],
         [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 5])], rnd(3, (N, 4, 5, 5), 1.0), "w"),
        ([mn("Identity", ["k1"], ["t"], name="id"), mn("Add", ["input", "t"], ["y"], name="add")], [k1],
         [1, 4, 8], [y, t_out], x8, "t"),
    ]


def identity_of_constant_keeps_name():
    for nodes, inits, in_shape, outputs, x, name in identity_cases():
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                              outputs, inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        work = tmpdir()
        raw, pre, ort_out = (os.path.join(work, n) for n in ("float.onnx", "pre.onnx", "ort.onnx"))
        onnx.save(m, raw)
        quant_pre_process(raw, pre)
        quantize_static(pre, ort_out, DictReader(x), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        np.savez(os.path.join(work, "calib.npz"), input=x)
        cfg = os.path.join(work, "config.yaml")
        with open(cfg, "w") as f:
            f.write(default_mode_config(raw, os.path.join(work, "calib.npz"), True, 13))
        run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq"), "--threads", "1"])
        ours = os.path.join(work, "oq", "quantized_models", "float_quant_qdq_pc.onnx")
        onnx.checker.check_model(onnx.load(ours), full_check=True)
        a, b = compare_with_ort(ort_out, ours)
        ib = inits_of(b)
        assert name + "_quantized" in ib and "Identity" not in {n.op_type for n in b.graph.node}, sorted(ib)
        if name == "t":  # the graph output: a float initializer of that name, as ORT's
            assert np.array_equal(ib["t"], inits_of(onnx.load(pre))["t"])
        for o in range(len(outputs)):
            ra = np.concatenate([ort_session(ort_out).run(None, {"input": x[i:i + 1]})[o] for i in range(4)])
            rb = np.concatenate([ort_session(ours).run(None, {"input": x[i:i + 1]})[o] for i in range(4)])
            assert np.abs(ra - rb).max() <= 1e-6 + 0.01 * np.abs(ra).max(), (name, o, np.abs(ra - rb).max())


if __name__ == "__main__":
    r = Runner()
    r.run("TensorQuantOverrides axis on a Gather table: the output's own per-tensor scale, runs (deliberate)",
          tqo_axis_on_gather_table)
    r.run("OpTypesToExcludeOutputQuantization [Gather] / [GatherElements]: output shares the input's (ORT)",
          exclude_output_gather)
    r.run("Identity of a constant: the constant's name (k1_quantized), a graph output folded as ORT",
          identity_of_constant_keeps_name)
    r.finish()
