"""Constants read by several nodes with different quantization rules, against ORT 1.32's quantize_static (QDQ, after
quant_pre_process; both tools get ORT's pre-processed model, the same .npz and settings, per channel and per tensor):
the written models must have ORT's wiring and tensor names, and equal scales, zero points and quantized values
(test_op_parity.compare_with_ort).

- A weight two nodes read (QA of the fifteenth session): ORT registers a per-channel weight by overwriting any
  earlier registration of the tensor (quantize_weight_tensor_per_channel), a per-tensor one only when the tensor is
  new. So the LAST per-channel reader decides: MatMul (axis 1) then Gemm transB=1 (axis 0) gives axis 0, the
  reverse axis 1; Conv then ConvTranspose axis 1; an Add (per tensor, activation type) then a MatMul gives the
  MatMul's per-channel weight; a tied embedding (Gather, per tensor, then Gemm transB=1) per channel on axis 0.
  onnxquant used to keep the first reader's.
- A Conv / Gemm bias that another node also reads as an ordinary input (Add): ORT keeps biases in a dict of their
  own and writes a tensor that is also an ordinary input once, as an Int8 constant (`b_quantized` int8,
  `b_scale`), which every reader, the Conv included, reads — in either node order. onnxquant used to make it an
  int32 bias (`b_quantized` int32, DQ output `b`) when the Conv came first. A bias also shared by a second Conv is
  copied for it (`b0`, int32) as before.
- Two biases on one weight: ORT enlarges the weight's scale for every bias first (per channel with numpy float32
  arithmetic), then quantizes the biases with the final scale; onnxquant used to quantize the first bias before the
  second enlarged the scale (its int32 values then off by the enlargement ratio).
Deliberate differences, checked against the float model in onnxruntime instead: a Gemm whose bias became an
ordinary constant keeps its beta (ORT resets it to 1 and computes C instead of beta * C), and a Gather output whose
table a Gemm quantizes per channel gets its own scale (ORT gives it the table's per-channel scale without an axis:
a model onnxruntime refuses to run).
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
from test_op_parity import (DictReader, compare_with_ort, conv, init, model, quantize_both, rnd,  # noqa: E402
                            same_as_ort)

N = 20
mn = helper.make_node


def rows(seed, shape):
    return np.random.default_rng(seed).standard_normal((N,) + tuple(shape)).astype(np.float32)


def dq_of(m, t):
    """(scale shape, axis, quantized dtype) of the DequantizeLinear reading `t`_quantized."""
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == t + "_quantized"]
    assert len(dq) == 1, [n.input for n in m.graph.node if n.op_type == "DequantizeLinear"]
    axis = {a.name: a.i for a in dq[0].attribute}.get("axis")
    return inits[dq[0].input[1]].shape, axis, inits[t + "_quantized"].dtype


def both(m, x, pcs=(True, False)):
    """ORT's and our written models (per channel first), after checking they are the same."""
    return [same_as_ort(m, x, pc) for pc in pcs]


def shared_weight_last_per_channel_reader():
    w = init("Ws", rnd(1, (16, 16)))
    x = rows(2, (16,))
    cases = [  # (nodes, output shape, the per-channel axis ORT gives Ws)
        ([mn("MatMul", ["input", "Ws"], ["m"], name="mm"), mn("Gemm", ["m", "Ws"], ["y"], name="gemm", transB=1)],
         [1, 16], 0),
        ([mn("Gemm", ["input", "Ws"], ["m"], name="gemm", transB=1), mn("MatMul", ["m", "Ws"], ["y"], name="mm")],
         [1, 16], 1),
        ([mn("Add", ["input", "Ws"], ["a"], name="add"), mn("MatMul", ["a", "Ws"], ["y"], name="mm")], [16, 16], 1),
    ]
    for nodes, out_shape, axis in cases:
        (a, b), (_, bt) = both(model(nodes, [w], [1, 16], out_shape), x)
        assert dq_of(b, "Ws") == ((16,), axis, np.int8), dq_of(b, "Ws")
        assert dq_of(bt, "Ws") == ((), None, np.int8), dq_of(bt, "Ws")
    # Conv then ConvTranspose on one weight [4, 4, 3, 3]: the ConvTranspose's axis 1; the reverse: the Conv's 0.
    wc = init("Wc", rnd(3, (4, 4, 3, 3)))
    for first, second, axis in (("Conv", "ConvTranspose", 1), ("ConvTranspose", "Conv", 0)):
        m = model([mn(first, ["input", "Wc"], ["c"], name="first", pads=[1, 1, 1, 1]),
                   mn(second, ["c", "Wc"], ["y"], name="second", pads=[1, 1, 1, 1])], [wc], [1, 4, 8, 8], [1, 4, 8, 8])
        (a, b), _ = both(m, rows(4, (4, 8, 8)))
        assert dq_of(b, "Wc") == ((4,), axis, np.int8), (first, dq_of(b, "Wc"))


def tied_embedding():
    # Gather reads the table (ORT: an activation-type constant, per tensor), the output Gemm reads it as its weight
    # (transB=1: per channel, axis 0): the Gemm's registration wins, in either order. A Relu between the Gather and
    # the Gemm takes the Gather output's place (ORT folds it), so nothing shares the table's scale.
    ids = np.random.default_rng(5).integers(0, 20, (N, 5)).astype(np.int64)
    emb = init("emb", rnd(6, (20, 16), 1.0))
    look = [mn("Gather", ["emb", "input"], ["e"], name="gather"), mn("Relu", ["e"], ["r"], name="relu"),
            mn("Squeeze", ["r", "ax"], ["s"], name="sq")]
    m = model(look + [mn("Gemm", ["s", "emb"], ["y"], name="lm_head", transB=1)],
              [emb, init("ax", np.array([0], np.int64))], [1, 5], [5, 20], TensorProto.INT64)
    (a, b), (_, bt) = both(m, ids)
    assert dq_of(b, "emb") == ((20,), 0, np.int8), dq_of(b, "emb")
    assert dq_of(bt, "emb") == ((), None, np.int8), dq_of(bt, "emb")
    # The Gemm first (its input computed from the ids), the Gather after it.
    m = model([mn("Cast", ["input"], ["cf"], name="cast", to=TensorProto.FLOAT),
               mn("MatMul", ["cf", "P"], ["a"], name="mm"),
               mn("Gemm", ["a", "emb"], ["l"], name="lm_head", transB=1), mn("Relu", ["l"], ["lr"], name="relu0")]
              + look[:2] + [mn("Flatten", ["r"], ["rf"], name="flat"),
                            mn("Concat", ["lr", "rf"], ["y"], name="cat", axis=1)],
              [emb, init("P", rnd(7, (5, 16)))], [1, 5], [1, 100], TensorProto.INT64)
    (a, b), _ = both(m, ids)
    assert dq_of(b, "emb") == ((20,), 0, np.int8), dq_of(b, "emb")


def gather_output_of_per_channel_table():
    # Deliberate difference: Gather -> Gemm(e, emb) with no node between. ORT quantizes `e` with the table's
    # per-channel scale [20] and no axis (QuantizeLinear then applies it on axis 1, of size 16: onnxruntime refuses
    # the model). onnxquant gives `e` its own per-tensor scale from its calibrated range; everything else is ORT's.
    ids = np.random.default_rng(8).integers(0, 20, (N, 5)).astype(np.int64)
    m = model([mn("Gather", ["emb", "input"], ["e"], name="gather"),
               mn("Gemm", ["e", "emb"], ["y"], name="lm_head", transB=1)],
              [init("emb", rnd(9, (20, 16), 1.0))], [5], [5, 20], TensorProto.INT64)
    class Rows(DictReader):  # one [5] row of ids per sample (the model has no batch axis)
        def get_next(self):
            if self.i >= len(self.x):
                return None
            self.i += 1
            return {"input": self.x[self.i - 1]}

    work = tmpdir()
    raw, pre, ort_out = (os.path.join(work, n) for n in ("float.onnx", "pre.onnx", "ort.onnx"))
    onnx.save(m, raw)
    quant_pre_process(raw, pre)
    quantize_static(pre, ort_out, Rows(ids), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    np.savez(os.path.join(work, "calib.npz"), input=ids.reshape(-1))  # batches of 5 consecutive ids: ORT's rows
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(pre, os.path.join(work, "calib.npz"), True, 13).replace(
            "dataset: {", "dataset: {batch_size: 5, "))
    run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq"), "--threads", "1"])
    ours = os.path.join(work, "oq", "quantized_models", "pre_quant_qdq_pc.onnx")
    a, b = onnx.load(ort_out), onnx.load(ours)
    qa = {n.input[0]: n.input[1] for n in a.graph.node if n.op_type == "QuantizeLinear"}
    qb = {n.input[0]: n.input[1] for n in b.graph.node if n.op_type == "QuantizeLinear"}
    assert qa["e"] == "emb_scale" and qb["e"] == "e_scale", (qa, qb)
    ib = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
    assert ib["e_scale"].shape == () and dq_of(b, "emb") == ((20,), 0, np.int8)
    # e's range is the table's: its scale is the per-tensor one of the whole table (hand computation).
    table = numpy_helper.to_array(m.graph.initializer[0])
    lo, hi = min(table[ids].min(), 0.0), max(table[ids].max(), 0.0)
    assert np.isclose(ib["e_scale"], (hi - lo) / 255, rtol=1e-6), (ib["e_scale"], (hi - lo) / 255)
    got = ort_session(ours).run(None, {"input": ids[0]})[0]
    ref = ort_session(pre).run(None, {"input": ids[0]})[0]
    assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max(), np.abs(got - ref).max()


def bias_also_an_add_input():
    x = rows(10, (3, 8, 4))
    w1, b1 = init("W1", rnd(11, (4, 3, 3, 3))), init("b1", rnd(12, (4,), 0.5))
    after = model([conv("input", "c1", "W1", "b1", "conv1"), mn("Relu", ["c1"], ["r"], name="relu"),
                   mn("Add", ["r", "b1"], ["y"], name="add")], [w1, b1], [1, 3, 8, 4], [1, 4, 8, 4])
    before = model([mn("Add", ["input", "b1"], ["a"], name="add"), conv("a", "y", "W1", "b1", "conv1")],
                   [init("W1", rnd(11, (4, 4, 3, 3))), b1], [1, 4, 8, 4], [1, 4, 8, 4])
    for m, xin in ((after, x), (before, rows(10, (4, 8, 4)))):
        for a, b in both(m, xin):
            assert dq_of(b, "b1") == ((), None, np.int8), dq_of(b, "b1")
            readers = {n.name: list(n.input) for n in b.graph.node if "b1_DequantizeLinear_Output" in n.input}
            assert set(readers) == {"conv1", "add"}, readers
    # Gemm bias (per channel and per tensor), then a second Conv reading the same bias: that one gets a copy b10
    # (ORT's _dup_initializer), an int32 bias, while b1 stays the Int8 constant of conv1 and the Add.
    gemm = model([mn("Gemm", ["input", "W1", "b1"], ["g"], name="gemm", transB=1), mn("Relu", ["g"], ["r"], name="relu"),
                  mn("Add", ["r", "b1"], ["y"], name="add")],
                 [init("W1", rnd(13, (8, 16))), init("b1", rnd(14, (8,), 0.5))], [1, 16], [1, 8])
    for a, b in both(gemm, rows(15, (16,))):
        assert dq_of(b, "b1") == ((), None, np.int8)
    three = model([conv("input", "c1", "W1", "b1", "conv1"), mn("Relu", ["c1"], ["r"], name="relu"),
                   mn("Add", ["r", "b1"], ["a"], name="add"), conv("a", "y", "W2", "b1", "conv2")],
                  [w1, b1, init("W2", rnd(16, (4, 4, 3, 3)))], [1, 3, 8, 4], [1, 4, 8, 4])
    for a, b in both(three, x):
        assert dq_of(b, "b1")[2] == np.int8 and dq_of(b, "b10")[2] == np.int32, (dq_of(b, "b1"), dq_of(b, "b10"))


def gemm_beta_with_constant_bias():
    # Deliberate difference: Gemm(beta=2) whose bias an Add also reads. ORT quantizes C as an Int8 constant and sets
    # beta to 1 (its model adds C, not 2C); onnxquant keeps beta=2. Same wiring, names and values otherwise.
    m = model([mn("Gemm", ["input", "W1", "b1"], ["g"], name="gemm", transB=1, beta=2.0),
               mn("Relu", ["g"], ["r"], name="relu"), mn("Add", ["r", "b1"], ["y"], name="add")],
              [init("W1", rnd(17, (8, 16))), init("b1", rnd(18, (8,), 1.0))], [1, 16], [1, 8])
    x = rows(19, (16,))
    ort_out, ours, pre = quantize_both(m, x)
    a, b = compare_with_ort(ort_out, ours)
    beta = {n.name: {t.name: t.f for t in n.attribute}.get("beta") for n in b.graph.node if n.op_type == "Gemm"}
    assert beta == {"gemm": 2.0}, beta
    ref, got, theirs = (np.concatenate([ort_session(p).run(None, {"input": x[i:i + 1]})[0] for i in range(4)])
                        for p in (pre, ours, ort_out))
    err, err_ort = (np.abs(v - ref).max() / np.abs(ref).max() for v in (got, theirs))
    assert err < 0.05 < err_ort, (err, err_ort)


def one_weight_two_biases():
    # Two Convs on the same input share a tiny weight; the second's bias (500) needs a larger weight scale than the
    # first's (5): ORT enlarges it for both biases first, then quantizes both with the final scale.
    m = model([conv("input", "c1", "W1", "b1", "conv1"), conv("input", "c2", "W1", "b2", "conv2"),
               mn("Add", ["c1", "c2"], ["y"], name="add")],
              [init("W1", rnd(20, (4, 4, 3, 3), 1e-4)), init("b1", rnd(21, (4,), 5.0)),
               init("b2", rnd(22, (4,), 500.0))], [1, 4, 8, 4], [1, 4, 8, 4])
    for a, b in both(m, rows(23, (4, 8, 4))):
        ia = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
        ib = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
        for t in ("W1_scale", "b1_quantized", "b2_quantized", "b1_quantized_scale", "b2_quantized_scale"):
            assert np.array_equal(ia[t], ib[t]), (t, ia[t], ib[t])


if __name__ == "__main__":
    r = Runner()
    r.run("a weight two nodes read: the last per-channel reader's axis (MatMul/Gemm, Add/MatMul, Conv/ConvTranspose)",
          shared_weight_last_per_channel_reader)
    r.run("tied embedding: Gather then Gemm transB=1, and the reverse order: per channel, axis 0", tied_embedding)
    r.run("Gather output of a per-channel table: its own scale (deliberate, ORT's model does not run)",
          gather_output_of_per_channel_table)
    r.run("a Conv/Gemm bias an Add also reads: one Int8 constant, either order; a second Conv's copy int32",
          bias_also_an_add_input)
    r.run("Gemm beta 2 whose bias an Add reads: beta kept (deliberate, ORT's model adds C)", gemm_beta_with_constant_bias)
    r.run("one weight, two biases: enlarged for both before either bias is quantized", one_weight_two_biases)
    r.finish()
