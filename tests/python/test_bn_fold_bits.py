"""BatchNormalization folding bit for bit against ORT's (session 20, e2e finding 1): quant_pre_process folds a BN
into a Conv / ConvTranspose (ConvBNFusion) or a MatMul (MatmulBNFusion) in float32, element by element
(v = var + eps; v = sqrt(v); s = scale / v; W' = W * s; B' = ((B - mean) * s) + bn_B, or bn_B - mean * s without a
bias). onnxquant folded in float64 with another association: ~40 % of the folded weights and biases were 1 ulp off,
a weight scale 1 ulp off, and quantized integers flipped at rounding ties.

Checks, on random float32 parameters (fixed seeds): onnxquant's pre-processed float model (tests/oq_preprocess_model)
has ORT's folded initializers bit for bit (Conv with and without a bias, depthwise, ConvTranspose grouped or not,
MatMul -> BN, and the BN nodes of mobilenet_v2_0.35_128_tfs_channel_first, unfolded in the file); Gemm -> BN, which
ORT leaves alone (onnxquant folds it, docs/conformance.md), against numpy's float32 version of the same formula with
beta * C as the bias. Each case first checks that the float64 formula differs somewhere, so the case can tell the
two apart. End to end (OQ_BIN, default mode): Int16 per-tensor weights of a folded Conv have quantize_static's scale
and integers exactly (the reviewer's repro: 5 integers and the scale differed).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import SHARED, Runner, run_oq, save_graph, tmpdir  # noqa: E402
from raw_parity import preprocess_both  # noqa: E402
from test_op_parity import DictReader  # noqa: E402

f32 = np.float32
mn = helper.make_node


def inits(m):
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def bits_equal(a, b):
    a, b = np.asarray(a, f32), np.asarray(b, f32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def bn_arrays(rng, c):
    return {"sc": rng.uniform(0.5, 2, c).astype(f32), "bb": rng.standard_normal(c).astype(f32),
            "mu": rng.standard_normal(c).astype(f32), "var": rng.uniform(0.1, 3, c).astype(f32)}


def s32(p, eps):
    v = p["var"] + f32(eps)
    return p["sc"] / np.sqrt(v)


def s64(p, eps):
    return p["sc"].astype(np.float64) / np.sqrt(p["var"].astype(np.float64) + float(f32(eps)))


def bn_model(op, w, b, p, in_shape, eps, opset=17, **attrs):
    names = ["input", "W"] + (["B"] if b is not None else [])
    arrays = [("W", w)] + ([("B", b)] if b is not None else []) + list(p.items())
    bn_kw = {} if eps is None else {"epsilon": eps}
    g = helper.make_graph([mn(op, names, ["c"], name="p", **attrs),
                           mn("BatchNormalization", ["c", "sc", "bb", "mu", "var"], ["y"], name="bn", **bn_kw)],
                          "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(a, n) for n, a in arrays])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def check_folded_like_ort(m, x, prefix, w64):
    """ORT folds (no BN left); every initializer named `prefix`* of ours equals ORT's bit for bit; ORT's folded
    weight differs from the float64 formula `w64` somewhere (the case can tell the two apart)."""
    p = preprocess_both(m, x, True)
    pm, om = inits(p.pm), inits(p.om)
    assert not any(n.op_type == "BatchNormalization" for n in p.pm.graph.node), "ORT did not fold"
    names = sorted(k for k in pm if k.startswith(prefix))
    assert names and names == sorted(k for k in om if k.startswith(prefix)), (names, sorted(om))
    wname = [k for k in names if "_W_" in k or "GemmB" in k][0]
    assert (pm[wname] != w64.astype(f32)).any(), "float64 folding gives ORT's weight: the case proves nothing"
    for k in names:
        diff = int((pm[k].view(np.uint32) != om[k].view(np.uint32)).sum()) if pm[k].shape == om[k].shape else -1
        assert bits_equal(pm[k], om[k]), f"{k}: {diff} of {pm[k].size} values differ from quant_pre_process's"


def conv_bn():
    rng = np.random.default_rng(20)
    x = rng.standard_normal((4, 8, 6, 6)).astype(f32)
    for bias, group, eps in ((True, 1, 1e-3), (False, 1, None), (True, 8, 1e-5), (False, 8, 1e-3)):
        cout = 16
        w = (rng.standard_normal((cout, 8 // group, 3, 3)) * 0.3).astype(f32)
        b = (rng.standard_normal(cout) * 0.1).astype(f32) if bias else None
        p = bn_arrays(rng, cout)
        m = bn_model("Conv", w, b, p, ["N", 8, 6, 6], eps, pads=[1, 1, 1, 1], group=group)
        w64 = w.astype(np.float64) * s64(p, 1e-5 if eps is None else eps)[:, None, None, None]
        check_folded_like_ort(m, x, "ConvBnFusion_", w64)


def conv_transpose_bn():
    rng = np.random.default_rng(21)
    cin, coutg = 8, 6
    x = rng.standard_normal((4, cin, 5, 5)).astype(f32)
    for bias, group in ((True, 1), (False, 1), (True, 2), (False, 2)):
        w = (rng.standard_normal((cin, coutg, 3, 3)) * 0.3).astype(f32)
        b = (rng.standard_normal(coutg * group) * 0.1).astype(f32) if bias else None
        p = bn_arrays(rng, coutg * group)
        m = bn_model("ConvTranspose", w, b, p, ["N", cin, 5, 5], 1e-3, group=group)
        oc = (np.arange(cin)[:, None] // (cin // group)) * coutg + np.arange(coutg)[None, :]
        check_folded_like_ort(m, x, "ConvBnFusion_", w.astype(np.float64) * s64(p, 1e-3)[oc][:, :, None, None])


def matmul_bn():
    # MatmulBNFusion (src/ir/passes/fuse_matmul_bn.cc) was already float32 in ORT's order: a guard for it.
    rng = np.random.default_rng(22)
    w = (rng.standard_normal((24, 32)) * 0.3).astype(f32)
    p = bn_arrays(rng, 32)
    m = bn_model("MatMul", w, None, p, ["N", 24], 1e-3, opset=13)
    check_folded_like_ort(m, rng.standard_normal((4, 24)).astype(f32), "MatMulBnFusion_",
                          w.astype(np.float64) * s64(p, 1e-3)[None, :])


def gemm_bn():
    """ORT keeps Gemm -> BN; onnxquant folds it with ConvBNFusion's float32 arithmetic (numpy's, here)."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal((4, 24)).astype(f32)
    cases = ((dict(transB=0), (32,)), (dict(transB=1, beta=0.75), (1, 32)), (dict(transB=0), None),
             (dict(transB=1, beta=2.0, alpha=0.5), (1, 1)))
    for attrs, cshape in cases:
        w = (rng.standard_normal((32, 24) if attrs["transB"] else (24, 32)) * 0.3).astype(f32)
        c = (rng.standard_normal(cshape) * 0.1).astype(f32) if cshape else None
        p = bn_arrays(rng, 32)
        m = bn_model("Gemm", w, c, p, ["N", 24], 1e-3, opset=13, **attrs)
        pre = preprocess_both(m, x, False)
        assert [n.op_type for n in pre.pm.graph.node] == ["Gemm", "BatchNormalization"], "ORT folded Gemm -> BN"
        assert [n.op_type for n in pre.om.graph.node] == ["Gemm"], [n.op_type for n in pre.om.graph.node]
        g = pre.om.graph.node[0]
        om = inits(pre.om)
        s = s32(p, 1e-3)
        want_w = w * (s[:, None] if attrs["transB"] else s[None, :])
        if c is None:
            want_c = p["bb"] - p["mu"] * s
        else:
            bc = f32(attrs.get("beta", 1.0)) * np.broadcast_to(c, (1, 32)).reshape(-1)
            want_c = ((bc - p["mu"]) * s) + p["bb"]
        w64 = w.astype(np.float64) * (s64(p, 1e-3)[:, None] if attrs["transB"] else s64(p, 1e-3)[None, :])
        assert (want_w != w64.astype(f32)).any(), "float64 folding gives the float32 weight: the case proves nothing"
        assert bits_equal(om[g.input[1]], want_w), f"{attrs}: folded B differs from float32 W * s"
        assert bits_equal(om[g.input[2]], want_c), f"{attrs} C {cshape}: folded C differs from float32's"
        beta = [a.f for a in g.attribute if a.name == "beta"]
        assert beta in ([], [1.0]), beta


def mobilenet_bn():
    """The 7 BN nodes of mobilenet_v2_0.35_128_tfs_channel_first (unfolded in the file): every folded weight and
    bias is quant_pre_process's, bit for bit (and so is every other initializer both models have)."""
    path = os.path.join(SHARED, "models", "mobilenet_v2_0.35_128_tfs_channel_first.onnx")
    raw = onnx.load(path)
    assert any(n.op_type == "BatchNormalization" for n in raw.graph.node), "the model's BNs are folded already"
    p = preprocess_both(raw, None, True)
    pm, om = inits(p.pm), inits(p.om)
    n_bn = sum(n.op_type == "BatchNormalization" for n in raw.graph.node)
    names = sorted(k for k in pm if k.startswith("ConvBnFusion_"))
    assert len(names) == 2 * n_bn and names == sorted(k for k in om if k.startswith("ConvBnFusion_")), names
    bad = [k for k in names if not bits_equal(pm[k], om[k])]
    assert not bad, f"{len(bad)} of {len(names)} folded initializers differ from quant_pre_process's: {bad[:5]}"
    common = [k for k in pm if k in om and pm[k].dtype == f32]
    assert len(common) > 2 * n_bn
    bad = [k for k in common if not bits_equal(pm[k], om[k])]
    assert not bad, f"{len(bad)} of {len(common)} initializers differ from quant_pre_process's: {bad[:5]}"


def int16_weights_end_to_end():
    """The reviewer's repro: Conv 32->64 3x3 + BN, Int16 per-tensor weights: quantize_static on quant_pre_process's
    model and onnxquant's default mode give the same weight scale and the same 18432 integers."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    d = tmpdir()
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 32, 3, 3)).astype(f32) * 0.3
    b = rng.standard_normal(64).astype(f32) * 0.1
    p = {"sc": rng.uniform(0.5, 2, 64).astype(f32), "bb": rng.standard_normal(64).astype(f32),
         "mu": rng.standard_normal(64).astype(f32), "var": rng.uniform(0.1, 3, 64).astype(f32)}
    m = bn_model("Conv", w, b, p, ["N", 32, 8, 8], 1e-3, opset=21, pads=[1, 1, 1, 1])
    m.ir_version = 10
    raw = os.path.join(d, "m.onnx")
    onnx.save(m, raw)
    x = rng.standard_normal((8, 32, 8, 8)).astype(f32)
    np.savez(os.path.join(d, "x.npz"), input=x)
    quant_pre_process(raw, os.path.join(d, "pre.onnx"))
    quantize_static(os.path.join(d, "pre.onnx"), os.path.join(d, "ort.onnx"), DictReader(x),
                    quant_format=QuantFormat.QDQ, per_channel=False, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt16, extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    with open(os.path.join(d, "cfg.yaml"), "w") as f:
        f.write(f"""model: {{model_path: {raw}}}
dataset: {{quantization_path: {d}/x.npz}}
quantization:
  granularity: per_tensor
  target_opset: 21
  onnx_quant_parameters: {{weightType: Int16, activType: Int8}}
hydra: {{run: {{dir: {d}/oq}}}}
""")
    run_oq(["--config", os.path.join(d, "cfg.yaml")])
    a = inits(onnx.load(os.path.join(d, "ort.onnx")))
    o = inits(onnx.load(os.path.join(d, "oq", "quantized_models", "m_quant_qdq_pt.onnx")))
    n = "ConvBnFusion_W_W"
    assert bits_equal(a[n + "_scale"], o[n + "_scale"]), f"weight scale {o[n + '_scale']} vs ORT {a[n + '_scale']}"
    qa, qo = a[n + "_quantized"].astype(np.int64), o[n + "_quantized"].astype(np.int64)
    assert np.array_equal(qa, qo), f"{int((qa != qo).sum())} of {qa.size} Int16 weights differ from ORT's"
    bn = "ConvBnFusion_BN_B_bb"
    assert np.array_equal(a[bn + "_quantized"], o[bn + "_quantized"]), "int32 bias differs from ORT's"


if __name__ == "__main__":
    r = Runner()
    r.run("Conv -> BN folded as ORT's ConvBNFusion, bit for bit (bias or not, depthwise, default epsilon)", conv_bn)
    r.run("ConvTranspose -> BN folded as ORT's, bit for bit (bias or not, grouped)", conv_transpose_bn)
    r.run("MatMul -> BN (MatmulBNFusion) as ORT's, bit for bit", matmul_bn)
    r.run("Gemm -> BN (onnxquant only) in float32: W * s, ((beta * C - mean) * s) + bn_B, bn_B - mean * s", gemm_bn)
    r.run("mobilenet_v2_0.35_128_tfs_channel_first: every folded BN as quant_pre_process's", mobilenet_bn)
    r.run("Int16 per-tensor weights of a folded Conv: quantize_static's scale and integers (OQ_BIN)",
          int16_weights_end_to_end)
    r.finish()
