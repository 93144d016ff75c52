"""Executor kernels Attention (23, 24, 25), RotaryEmbedding (23), TensorScatter (24), CumProd and BitCast (26)
against onnxruntime 1.32: single-node models on random odd shapes (fixed seed) run through `onnxquant run`, every
output compared (float32: rtol = atol = 2e-5; float64 1e-12; integers and BitCast exact).

Every case is also compared with the other oracle (within 1e-5), so a disagreement between the two is seen. The
oracle is onnx.reference for: Attention masks ORT 1.32 refuses on 4-D inputs (a mask whose last dimension is
shorter than the key sequence, which the spec pads with -inf / false, or one broadcast over the queries), and
float64 Attention (ORT's is ~1e-7 relative off numpy, computed partly in float32; the reference matches onnxquant
to 1e-15).

Then quantization parity: a small transformer block (MatMul projections, Attention with GQA heads, RotaryEmbedding,
output projection, residual Add) quantized by onnxquant and quantize_static (after quant_pre_process): the same
wiring, Q/DQ per op type, scales (1e-6), outputs; Attention and RotaryEmbedding are not in ORT's QDQ registry, so
both tools leave them float between DequantizeLinear and QuantizeLinear. quant_pre_process fails on an ai.onnx
Attention (ORT's symbolic shape inference handles only com.microsoft's), so both tools get the raw model.

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402
from test_kernels_extra_ort import run_ours  # noqa: E402
from test_op_parity import compare_with_ort, init, qdq_counts, quantize_both, rnd  # noqa: E402

rng = np.random.default_rng(20261129)
F32, F64 = np.float32, np.float64
TOL = {F32: 2e-5, F64: 1e-12}


def node_model(node, inputs, opset):
    vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs]
    outs = [onnx.ValueInfoProto(name=o) for o in node.output if o]
    g = helper.make_graph([node], "g", vis, outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def ort_run(m, feeds):
    try:
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return s.run(None, feeds), None
    except Exception as e:  # noqa: BLE001 - ORT cannot run this case
        return None, str(e).splitlines()[0][-160:]


def close(got, want, tol, what):
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if tol == 0:
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=got.dtype.kind == "f"), \
            f"{what}: {got.ravel()[:8]} vs {want.ravel()[:8]}"
    else:
        np.testing.assert_allclose(got.astype(F64), want.astype(F64), rtol=tol, atol=tol, err_msg=what)


def check(name, node, inputs, opset, tol, oracle="ort"):
    """All outputs of node vs the oracle ("ort" or "reference") within tol, and vs the other one within
    max(tol, 1e-5) when it runs the case (ORT must run an "ort" case)."""
    m = node_model(node, inputs, opset)
    feeds = dict(inputs)
    want_o, why = ort_run(m, feeds)
    want_r = ReferenceEvaluator(m).run(None, feeds)
    outs = [o for o in node.output if o]
    got = run_ours(name, m, inputs, outs)
    got = got if len(outs) > 1 else [got]
    assert oracle == "reference" or want_o is not None, f"{name}: ORT cannot run it: {why}"
    loose = max(tol, 1e-5) if tol else 0
    for i, (o, g, r) in enumerate(zip(outs, got, want_r)):
        r = np.asarray(r).astype(g.dtype)
        close(g, r, tol if oracle == "reference" else loose, f"{name} output {o} vs onnx.reference")
        if want_o is not None:
            close(g, want_o[i], tol if oracle == "ort" else loose, f"{name} output {o} vs ORT")


# ------------------------------------------------------------------------------------------------------- Attention
def attention_cases():
    for it in range(40):
        opset = [23, 24, 25][it % 3]
        dt = F64 if it in (7, 19) else F32
        B, Sq = int(rng.integers(1, 3)), int(rng.integers(1, 6))
        Hkv = int(rng.integers(1, 3))
        Hq = Hkv * int(rng.choice([1, 1, 2, 3]))
        D, Dv = int(rng.integers(2, 7)), int(rng.integers(2, 7))
        past = it % 4 == 1
        P = int(rng.integers(1, 4)) if past else 0
        Sk = Sq if it % 5 else int(rng.integers(1, 7))
        Tk = P + Sk
        three_d = it % 6 == 2
        ref = it % 10 == 0 and Tk >= 2  # a mask ORT 1.32 refuses: onnx.reference is the oracle
        attrs = {}
        if three_d:
            attrs.update(q_num_heads=Hq, kv_num_heads=Hkv)
            q = rng.standard_normal((B, Sq, Hq * D))
            k = rng.standard_normal((B, Sk, Hkv * D))
            v = rng.standard_normal((B, Sk, Hkv * Dv))
        else:
            q = rng.standard_normal((B, Hq, Sq, D))
            k = rng.standard_normal((B, Hkv, Sk, D))
            v = rng.standard_normal((B, Hkv, Sk, Dv))
        ins = [("Q", q.astype(dt)), ("K", k.astype(dt)), ("V", v.astype(dt))]
        names = ["Q", "K", "V"]
        if it % 3 == 0:
            attrs["is_causal"] = 1
        if it % 7 == 3:
            attrs["scale"] = float(rng.uniform(0.1, 1.0))
        if it % 8 == 5:
            attrs["softcap"] = float(rng.uniform(1.0, 3.0))
        kind = it % 4
        if kind in (0, 2) and not (opset >= 24 and it % 9 == 4):
            r = int(rng.integers(2, 5))
            full = (B, Hq, Sq, Tk)
            mshape = [d if rng.random() < 0.6 else 1 for d in full[4 - r:]]
            mshape[-2:] = [Sq, Tk]  # ORT 1.32 broadcasts a mask over batch and heads only
            if ref:
                mshape[-2] = 1  # broadcast over queries too, and
                mshape[-1] = Tk - 1  # a short mask, padded with -inf / false (ORT: an error)
            if kind == 0:
                mask = rng.random(mshape) < 0.8
                mask[..., 0] = True  # keep most rows attendable (fully masked rows are cases of their own)
                if it % 11 == 0:
                    mask[...] = False  # fully masked rows: zeros, not NaN
            else:
                mask = (rng.standard_normal(mshape) * 2).astype(dt)
            ins.append(("M", mask))
            names.append("M")
        else:
            names.append("")
        if past:
            ins += [("PK", rng.standard_normal((B, Hkv, P, D)).astype(dt)),
                    ("PV", rng.standard_normal((B, Hkv, P, Dv)).astype(dt))]
            names += ["PK", "PV"]
        elif opset >= 24 and it % 9 == 4:
            names += ["", "", "NP"]
            ins.append(("NP", rng.integers(max(1, Sq - 1), Sk + 1, B).astype(np.int64)))
        if opset == 25 and it % 5 == 0:
            attrs["left_window_size"] = int(rng.integers(0, 3))
            if it % 2:
                attrs["right_window_size"] = int(rng.integers(0, 2))
                attrs.pop("is_causal", None)
        outs = ["y"]
        if it % 3 == 1:
            outs += ["pk", "pv", "qk"] if past else ["", "", "qk"]
            attrs["qk_matmul_output_mode"] = int(it % 4)
        elif past:
            outs += ["pk", "pv"]
        while names and names[-1] == "":
            names.pop()
        node = helper.make_node("Attention", names, outs, **attrs)
        # ORT computes float64 Attention partly in float32 (1e-7 off numpy): onnx.reference is its oracle.
        oracle = "reference" if (ref and "M" in names) or dt == F64 else "ort"
        yield f"attention_{it}_{opset}{'_3d' if three_d else ''}", node, ins, opset, TOL[dt], oracle
    for it, prec in enumerate((1, 11)):
        q, k, v = (rng.standard_normal((1, 2, 3, 4)).astype(F32) for _ in range(3))
        node = helper.make_node("Attention", ["Q", "K", "V"], ["y"], softmax_precision=prec, is_causal=it)
        yield f"attention_softmax_precision_{prec}", node, [("Q", q), ("K", k), ("V", v)], 23, 2e-5, "ort"


# ------------------------------------------------------------------------------------------- RotaryEmbedding
def rotary_cases():
    for it in range(12):
        B, S, H = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 4))
        D = 2 * int(rng.integers(1, 5))
        R = D if it % 3 == 0 else 2 * int(rng.integers(1, D // 2 + 1))
        attrs = {"interleaved": it % 2}
        if R != D or it % 4 == 3:
            attrs["rotary_embedding_dim"] = R
        x = (rng.standard_normal((B, S, H * D)) if it % 3 == 1 else rng.standard_normal((B, H, S, D))).astype(F32)
        if it % 3 == 1:
            attrs["num_heads"] = H
        ins = [("X", x)]
        if it % 2 == 0:
            maxp = S + 3
            ins += [("C", np.cos(rng.uniform(0, 6, (maxp, R // 2))).astype(F32)),
                    ("Sn", np.sin(rng.uniform(0, 6, (maxp, R // 2))).astype(F32)),
                    ("P", rng.integers(0, maxp, (B, S)).astype(np.int64))]
        else:
            ins += [("C", np.cos(rng.uniform(0, 6, (B, S, R // 2))).astype(F32)),
                    ("Sn", np.sin(rng.uniform(0, 6, (B, S, R // 2))).astype(F32))]
        node = helper.make_node("RotaryEmbedding", [n for n, _ in ins], ["y"], **attrs)
        yield f"rotary_{it}", node, ins, 23, 2e-5, "ort"


# -------------------------------------------------------------------------- TensorScatter, CumProd, BitCast
def tensor_scatter_cases():
    for it in range(10):
        r = int(rng.integers(3, 5))
        shp = [int(v) for v in rng.integers(1, 4, r)]
        axis = int(rng.integers(1, r))
        maxs = int(rng.integers(3, 7))
        shp[axis] = maxs
        seq = int(rng.integers(1, maxs + 1))
        ushp = list(shp)
        ushp[axis] = seq
        circular = it % 2 == 1
        attrs = {"axis": axis - r if it % 3 else axis}
        if circular or it % 4 == 2:
            attrs["mode"] = "circular" if circular else "linear"
        dt = [F32, np.int64, np.int8, F64][it % 4]
        ins = [("c", rng.integers(-50, 50, shp).astype(dt)), ("u", rng.integers(-50, 50, ushp).astype(dt))]
        if it % 5:
            hi = maxs if circular else maxs - seq + 1
            ins.append(("w", rng.integers(0, hi, shp[0]).astype(np.int64)))
        node = helper.make_node("TensorScatter", [n for n, _ in ins], ["y"], **attrs)
        yield f"tensor_scatter_{it}", node, ins, 24, 0, "ort"


def cumprod_cases():
    for it in range(12):
        dt = [F32, F64, np.int32, np.int64][it % 4]
        r = int(rng.integers(1, 4))
        shp = tuple(int(v) for v in rng.integers(1, 6, r))
        x = (rng.uniform(0.5, 1.5, shp) if dt in (F32, F64) else rng.integers(-3, 4, shp)).astype(dt)
        attrs = {}
        if it % 2:
            attrs["exclusive"] = 1
        if it % 3 == 1:
            attrs["reverse"] = 1
        ax = np.array(int(rng.integers(-r, r)), dtype=[np.int64, np.int32][it % 2])
        node = helper.make_node("CumProd", ["x", "axis"], ["y"], **attrs)
        yield f"cumprod_{it}_{np.dtype(dt).name}", node, [("x", x), ("axis", ax)], 26, \
            {F32: 1e-6, F64: 1e-12}.get(dt, 0), "ort"


def bitcast_cases():
    pairs = [(F32, np.int32), (np.int32, F32), (F64, np.int64), (np.uint16, np.int16), (np.float16, np.uint16),
             (np.int8, np.uint8), (np.uint32, F32), (np.int64, np.uint64)]
    for it, (a, b) in enumerate(pairs):
        shp = tuple(int(v) for v in rng.integers(1, 5, int(rng.integers(0, 3))))
        if np.dtype(a).kind == "f":
            x = rng.standard_normal(shp).astype(a)
        else:
            info = np.iinfo(a)
            x = rng.integers(info.min, info.max, shp, endpoint=True, dtype=a)
        node = helper.make_node("BitCast", ["x"], ["y"], to=helper.np_dtype_to_tensor_dtype(np.dtype(b)))
        yield f"bitcast_{it}_{np.dtype(a).name}_{np.dtype(b).name}", node, [("x", x)], 26, 0, "ort"


# ----------------------------------------------------------------------------------------- quantization parity
def transformer_block_parity():
    """x [1, S, 16] -> Q/K/V MatMul projections -> RotaryEmbedding on Q and K -> Attention (4 query heads, 2 kv
    heads, causal) -> MatMul output projection -> Add residual."""
    S, E, Hq, Hkv, D = 5, 16, 4, 2, 4
    pos = np.arange(S + 2)[:, None] * (1.0 / 10000 ** (np.arange(D // 2) / (D // 2)))[None, :]
    inits = [init("Wq", rnd(1, (E, Hq * D))), init("Wk", rnd(2, (E, Hkv * D))), init("Wv", rnd(3, (E, Hkv * D))),
             init("Wo", rnd(4, (Hq * D, E))), init("cos", np.cos(pos).astype(F32)), init("sin", np.sin(pos).astype(F32)),
             init("pid", np.arange(S, dtype=np.int64)[None, :])]
    nodes = [helper.make_node("MatMul", ["input", "Wq"], ["q"], name="mm_q"),
             helper.make_node("MatMul", ["input", "Wk"], ["k"], name="mm_k"),
             helper.make_node("MatMul", ["input", "Wv"], ["v"], name="mm_v"),
             helper.make_node("RotaryEmbedding", ["q", "cos", "sin", "pid"], ["qr"], name="rope_q", num_heads=Hq),
             helper.make_node("RotaryEmbedding", ["k", "cos", "sin", "pid"], ["kr"], name="rope_k", num_heads=Hkv),
             helper.make_node("Attention", ["qr", "kr", "v"], ["a"], name="attn", q_num_heads=Hq, kv_num_heads=Hkv,
                              is_causal=1),
             helper.make_node("MatMul", ["a", "Wo"], ["o"], name="mm_o"),
             helper.make_node("Add", ["o", "input"], ["y"], name="residual")]
    g = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, S, E])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, S, E])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 23)])
    m.ir_version = 10
    x = np.random.default_rng(7).standard_normal((16, S, E)).astype(F32)
    # quant_pre_process cannot take the model (ORT's symbolic shape inference knows only com.microsoft's
    # Attention: "assert len(shape_bias) == 1"): both tools quantize the raw model, as an ORT user has to.
    ort_out, ours, _ = quantize_both(m, x, opset=23, pre_process=False)
    a, b = compare_with_ort(ort_out, ours)
    ca, cb = qdq_counts(a), qdq_counts(b)
    assert ca == cb, (ca, cb)
    assert "Attention" in cb and "RotaryEmbedding" in cb, cb
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    got = ort.InferenceSession(ours, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
    want = ort.InferenceSession(ort_out, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
    assert np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max()), np.abs(got - want).max()
    # onnxquant's executor on its own QDQ model: the same outputs as ORT on it.
    mine = run_ours("block_qdq_run", onnx.load(ours), [("input", x[:1])])
    assert np.abs(mine - ort.InferenceSession(ours, so, providers=["CPUExecutionProvider"]).run(
        None, {"input": x[:1]})[0]).max() <= 1e-4
    print(f"  transformer block: parity ok, Q/DQ per op {cb}")


def main():
    r = oqtest.Runner()
    for gen in (attention_cases, rotary_cases, tensor_scatter_cases, cumprod_cases, bitcast_cases):
        for name, node, ins, opset, tol, oracle in gen():
            r.run(name, check, name, node, ins, opset, tol, oracle)
    r.run("transformer_block_parity", transformer_block_parity)
    r.finish()


if __name__ == "__main__":
    main()
