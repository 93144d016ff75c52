"""int32 biases where ORT's quantize_static gets them wrong or silently clips them.

- A Gemm with beta != 1 and a quantized bias: ORT 1.32 takes beta into the bias scale (input x weight x beta),
  divides C by that scale and resets beta to 1, so its model adds C instead of beta x C. onnxquant stores
  round(beta x C / (input x weight)) with the scale input x weight, which onnxruntime's QGemm fusion assumes for an
  int32 bias (a scale that includes beta is ignored there): the same Q/DQ nodes and other scales as ORT, the float
  model's output in onnxruntime, fused or not.
- weights_tensor_override with quant_type / axis only: the weight scale is computed, and enlarged when the int32
  bias would overflow, as for a weight without override (an Int16 weight of digits_mlp with an Int16 input clipped
  its bias at -2^31 before). A scale the override fixes is kept, and the log counts the bias values it clips.
- Int4 / UInt4 weights (deliberate difference): ORT 1.20+ enlarges only Int8 / Int16 weight scales for the int32
  bias (_adjust_weight_quant_params_for_bias_tensors), so a near-zero weight channel (BN folding leaves them: ST's
  SSD) kept a 4-bit scale that stored bias 1.0 as 2^31 - 1 times 3e-34. onnxquant enlarges 4-bit scales too: the
  dequantized bias is the float one, the model computes the float model's output in onnxruntime; everything else is
  ORT's Int4 model, and Int8 is still exactly ORT's.
- QuantizeBias: False (deliberate difference): ORT 1.32 still enlarges weight scales for the biases it leaves in
  float (_adjust_weight_quant_params_for_bias_tensors runs whatever QuantizeBias says), which only costs the
  weight precision; onnxquant keeps the weights' own min/max scales there.
- A Gemm with beta != 1 whose bias needs the weight-scale enlargement: the enlargement is sized for |beta x C|, the
  values the bias holds (it was sized for |C|: with |beta| > 1 every value saturated int32, QA's repro 6 dB). With
  beta = 0 (C adds nothing) there is none: ORT sizes it for C, which can round every weight to 0 (its output all
  zeros); onnxquant keeps the plain weight scale and writes a bias of zeros.
"""
import os
import re
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static  # noqa: E402
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402
from oqtest import Runner, default_mode_config, ort_session, run_oq, tmpdir  # noqa: E402
from test_op_parity import DictReader, compare_with_ort, init, model, quantize_both, rnd  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "..", "testdata")


def run(path, x, optimize=True):
    s = ort_session(path, optimize)  # optimize False: no QDQ -> QGemm fusion, the nodes run as written
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def snr_db(ref, got):
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((ref - got).astype(np.float64) ** 2), 1e-30))


def inits(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}


def gemm_beta():
    x = rnd(1, (64, 24), 1.0)
    for beta in (1.0, 2.0, 0.5, -1.5):
        for per_channel in (True, False):
            m = model([helper.make_node("Gemm", ["input", "W", "C"], ["g"], name="gemm", transB=1, beta=beta),
                       helper.make_node("Relu", ["g"], ["y"], name="relu")],
                      [init("W", rnd(2, (16, 24))), init("C", rnd(3, (16,), 2.0))], [None, 24], [None, 16])
            ort_path, ours, pre = quantize_both(m, x, per_channel)
            a, b = inits(ort_path), inits(ours)
            # The same initializers and scales as ORT, except the bias scale: input x weight (ORT's x beta)...
            assert set(a) == set(b), (set(a) ^ set(b))
            q = next(n for n in b if n.startswith("C") and n.endswith("_quantized"))
            for n in a:
                if n.endswith("_scale") or n.endswith("_zero_point"):
                    want = a[n].astype(np.float64) / (beta if n == q + "_scale" else 1.0)
                    np.testing.assert_allclose(b[n].astype(np.float64), want, rtol=1e-6, err_msg=f"beta {beta}: {n}")
            scale = b[q + "_scale"].astype(np.float64)
            np.testing.assert_allclose(scale, float(b["input_scale"]) * b["W_scale"].astype(np.float64), rtol=1e-6)
            c = numpy_helper.to_array(next(t for t in onnx.load(pre).graph.initializer if t.name == "C"))
            # ... the bias integers of beta x C (a hand computation), and no beta left on the Gemm.
            want = np.round(c.astype(np.float64) * beta / scale).astype(np.int64)
            assert np.array_equal(b[q].astype(np.int64), want), (beta, b[q][:4], want[:4])
            g = next(n for n in onnx.load(ours).graph.node if n.op_type == "Gemm")
            assert all(att.name != "beta" or att.f == 1.0 for att in g.attribute), g
            ref = run(pre, x)
            s_ours, s_ort = snr_db(ref, run(ours, x)), snr_db(ref, run(ort_path, x))
            assert s_ours > 30, f"beta {beta}: onnxquant {s_ours:.1f} dB against the float model"
            s_plain = snr_db(ref, run(ours, x, optimize=False))
            assert s_plain > 30, f"beta {beta}: onnxquant {s_plain:.1f} dB without ORT's fusions"
            # onnxquant's own executor (evaluation, full_auto) on the written model
            work = tmpdir()
            np.save(os.path.join(work, "x.npy"), x)
            run_oq(["run", ours, "--input", "input=" + os.path.join(work, "x.npy"), "--output-dir", work])
            s_exec = snr_db(ref, np.load(os.path.join(work, "y.npy")))
            assert s_exec > 30, f"beta {beta}: onnxquant's executor {s_exec:.1f} dB"
            if beta == 1.0:
                assert abs(s_ours - s_ort) < 0.5, (s_ours, s_ort)
            print(f"  beta {beta:+.1f} {'pc' if per_channel else 'pt'}: onnxquant {s_ours:.1f} dB, "
                  f"ORT quantize_static {s_ort:.1f} dB")


def gemm_beta_inspection():
    # inspection's bias SNR compares the DequantizeLinear with beta x C, the value the Gemm adds (not with C).
    import json
    x = rnd(1, (64, 24), 1.0)
    beta = 2.0
    m = model([helper.make_node("Gemm", ["input", "W", "C"], ["y"], name="gemm", transB=1, beta=beta)],
              [init("W", rnd(2, (16, 24))), init("C", rnd(3, (16,), 2.0))], [None, 24], [None, 16])
    work = tmpdir()
    onnx.save(m, os.path.join(work, "m.onnx"))
    np.savez(os.path.join(work, "calib.npz"), input=x)
    cfg = os.path.join(work, "c.yaml")
    with open(cfg, "w") as f:
        f.write(f"""model: {{model_path: {work}/m.onnx}}
dataset: {{quantization_path: {work}/calib.npz}}
quantization:
  operating_mode: inspection
  onnx_quant_parameters: {{weightType: Int8, activType: Int8}}
""")
    run_oq(["--config", cfg, "--output-dir", os.path.join(work, "out")])
    with open(os.path.join(work, "out", "inspection.json")) as f:
        rep = {t["name"]: t for t in json.load(f)["tensors"]}
    b = inits(os.path.join(work, "out", "quantized_models", "m_quant_qdq_pc.onnx"))
    xhat = b["C_quantized"].astype(np.float64) * b["C_quantized_scale"].astype(np.float64)
    c = rnd(3, (16,), 2.0).astype(np.float64)
    want = snr_db(beta * c, xhat)
    assert want > 60, want
    assert abs(rep["C"]["snr_db"] - want) < 0.05, (rep["C"]["snr_db"], want)  # float32 beta x C: ~0.01 dB at 100 dB


MLP_CFG = """model: {{model_path: {model}}}
dataset: {{quantization_path: {calib}}}
quantization:
  granularity: per_channel
  target_opset: 21
  onnx_quant_parameters: {{weightType: Int8, activType: Int8, calibrate_method: MinMax}}
  onnx_extra_options:
    weights_tensor_override: [[weights.0, {override}]]
    activations_tensor_override: [[input, {{quant_type: Int16}}]]
"""


def mlp_run(override, tag):
    work = tmpdir()
    cfg = os.path.join(work, f"{tag}.yaml")
    with open(cfg, "w") as f:
        f.write(MLP_CFG.format(model=os.path.join(TESTDATA, "digits_mlp.onnx"),
                               calib=os.path.join(TESTDATA, "digits_calib_flat.npz"), override=override))
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(work, "out")])
    log = p.stdout + p.stderr
    out = os.path.join(work, "out", "quantized_models", "digits_mlp_quant_qdq_pc.onnx")
    return inits(out), log


def override_bias_fits():
    # Int16 weights per channel (axis 1 of the MatMul weight) reading an Int16 input: input scale x weight scale is
    # so small that the bias overflows int32 unless the weight scale is enlarged.
    b, log = mlp_run("{quant_type: Int16, axis: 1}", "computed")
    bias = numpy_helper.to_array(next(t for t in onnx.load(os.path.join(TESTDATA, "digits_mlp.onnx")).graph.initializer
                                      if t.name == "biases.0")).astype(np.float64)
    q = b["biases.0_quantized"].astype(np.int64)
    s = b["biases.0_quantized_scale"].astype(np.float64)
    assert q.min() > -2**31 and q.max() < 2**31 - 1, (q.min(), q.max())
    assert np.all(np.abs(q * s - bias) <= s / 2 * (1 + 1e-6)), np.abs(q * s - bias).max()
    w_scale = b["weights.0_scale"].astype(np.float64)
    in_scale = float(b["input_scale"])
    np.testing.assert_allclose(s, in_scale * w_scale, rtol=1e-6)
    assert "Increased the scale of weight 'weights.0'" in log, log
    assert "saturate int32" not in log


def override_fixed_scale_warns():
    n = 128
    scales = [1e-9] * n
    b, log = mlp_run("{quant_type: Int16, axis: 1, scale: %s, zero_point: %s}" % (scales, [0] * n), "fixed")
    np.testing.assert_allclose(b["weights.0_scale"].astype(np.float64), 1e-9, rtol=1e-6)  # kept as written
    bias = numpy_helper.to_array(next(t for t in onnx.load(os.path.join(TESTDATA, "digits_mlp.onnx")).graph.initializer
                                      if t.name == "biases.0")).astype(np.float64)
    s = b["biases.0_quantized_scale"].astype(np.float64)
    clipped = int(np.sum(np.abs(np.round(bias / s)) > 2**31 - 1))
    assert clipped > 0
    m = re.search(r"bias 'biases.0': (\d+) of (\d+) values saturate int32", log)
    assert m and int(m.group(1)) == clipped and int(m.group(2)) == bias.size, (clipped, log)
    assert "weights_tensor_override" in m.string[m.start():m.start() + 300]


def dead_channel_model():
    # QA's model (fifteenth session): channel 1 of the Conv weight is ~1e-30 (a "dead" BN-folded channel), its bias 1.
    w = rnd(30, (4, 3, 3, 3))
    w[1] *= 1e-30
    return model([helper.make_node("Conv", ["input", "W", "B"], ["c"], name="conv"),
                  helper.make_node("Relu", ["c"], ["r"], name="relu"),
                  helper.make_node("Flatten", ["r"], ["f"], name="flat"),
                  helper.make_node("Gemm", ["f", "W2"], ["y"], name="fc", transB=1)],
                 [init("W", w), init("B", np.array([0.1, 1.0, -0.2, 0.3], np.float32)),
                  init("W2", rnd(31, (5, 4 * 6 * 6), 0.2))], [None, 3, 8, 8], [None, 5])


def oq_default(path, x, wtype, per_channel, opset=21, extra=None):
    """onnxquant's default mode on the model at `path` (target `opset`, Int8 asymmetric activations, symmetric `wtype`
    weights, onnx_extra_options `extra`), its calibration data and config beside it: the written model and our log."""
    work = os.path.dirname(path)
    np.savez(os.path.join(work, "calib.npz"), input=x)
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(path, os.path.join(work, "calib.npz"), per_channel, opset, extra=extra).replace(
            "weightType: Int8", "weightType: " + wtype))
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq"), "--threads", "1"])
    stem = os.path.splitext(os.path.basename(path))[0]
    return (os.path.join(work, "oq", "quantized_models", f"{stem}_quant_qdq_{'pc' if per_channel else 'pt'}.onnx"),
            p.stdout + p.stderr)


def both_tools(m, x, wtype, per_channel, opset=21, extra=None):
    """quant_pre_process + quantize_static and default mode with `wtype` weights (target `opset`), both given the
    extra options `extra`; paths and our log."""
    work = tmpdir()
    raw, pre, ort_out = (os.path.join(work, n) for n in ("float.onnx", "pre.onnx", "ort.onnx"))
    onnx.save(m, raw)
    quant_pre_process(raw, pre)
    quantize_static(pre, ort_out, DictReader(x), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    weight_type=getattr(QuantType, "Q" + wtype), activation_type=QuantType.QInt8,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, **(extra or {})})
    ours, log = oq_default(pre, x, wtype, per_channel, opset, extra)
    return pre, ort_out, ours, log


def int4_weight_scale_enlarged():
    m = dead_channel_model()
    x = np.random.default_rng(32).uniform(0, 1, (32, 3, 8, 8)).astype(np.float32)
    bias = np.array([0.1, 1.0, -0.2, 0.3])
    qrange = float(2**31 - 1) - float(-2**31 + 1)
    for wtype in ("Int4", "UInt4"):
        for per_channel in (True, False):
            pre, ort_out, ours, log = both_tools(m, x, wtype, per_channel)
            tag = f"{wtype} per_channel={per_channel}"
            a, b = inits(ort_out), inits(ours)
            # Per tensor the scale of the whole weight is already large enough for the bias.
            assert ("Increased the scale of weight 'W'" in log) == per_channel and "saturate int32" not in log, (tag, log)
            q, s = b["B_quantized"].astype(np.float64), b["B_quantized_scale"].astype(np.float64)
            # The dequantized bias is the float one (within half a step), its scale input x (enlarged) weight scale,
            # large enough for the bias (ORT's bound: 1.0001 x 2 |b| / (2^32 - 2), per channel or over the tensor).
            assert np.all(np.abs(q * s - bias) <= s / 2 * (1 + 1e-6)), (tag, q * s)
            np.testing.assert_allclose(s, float(b["input_scale"]) * b["W_scale"].astype(np.float64), rtol=1e-6)
            need = 1.0001 * 2 * (np.abs(bias) if per_channel else np.abs(bias).max()) / qrange
            assert np.all(s >= need * (1 - 1e-6)), (tag, s, need)
            # ORT 1.32 leaves a 4-bit scale alone: its bias saturates (per channel; per tensor the tensor's range
            # already gives a scale large enough).
            if per_channel:
                assert abs(a["B_quantized"][1].astype(np.float64) * a["B_quantized_scale"][1] - 1.0) > 0.5, tag
            # Everything else is ORT's: the wiring, the activation scales, the other weight channels' scales.
            compare = {k for k in a if not k.startswith("B_") and k not in ("W_scale", "W_quantized")}
            for k in compare:
                np.testing.assert_allclose(b[k].astype(np.float64), a[k].astype(np.float64), rtol=1e-6, err_msg=tag + k)
            grown = b["W_scale"].astype(np.float64) != a["W_scale"].astype(np.float64)
            if per_channel:
                assert grown.tolist() == [False, True, False, False], (tag, grown)
            ref, got, theirs = (run(p, x, optimize=False) for p in (pre, ours, ort_out))
            print(f"  {tag}: onnxquant {snr_db(ref, got):.1f} dB, ORT quantize_static {snr_db(ref, theirs):.1f} dB")
            # 4-bit weights give ~17 dB here; ORT's per-channel model loses channel 1's bias (~4 dB).
            assert snr_db(ref, got) > 15 and (not per_channel or snr_db(ref, got) > snr_db(ref, theirs) + 10), tag
    # Int8: unchanged, exactly ORT's (the same enlargement of channel 1).
    for per_channel in (True, False):
        ort_path, ours, _ = quantize_both(m, x, per_channel)
        compare_with_ort(ort_path, ours)
        a, b = inits(ort_path), inits(ours)
        assert np.array_equal(a["W_scale"], b["W_scale"]) and np.array_equal(a["B_quantized"], b["B_quantized"])


def float_bias_keeps_weight_scale():
    m = dead_channel_model()
    x = np.random.default_rng(33).uniform(0, 1, (32, 3, 8, 8)).astype(np.float32)
    w = next(numpy_helper.to_array(t) for t in m.graph.initializer if t.name == "W").astype(np.float64)
    for per_channel in (True, False):
        _, ort_out, ours, log = both_tools(m, x, "Int8", per_channel, 13, {"QuantizeBias": False})
        a, b = inits(ort_out), inits(ours)
        tag = f"per_channel={per_channel}"
        assert "Increased the scale" not in log, tag
        # The bias stays float in both; the weight scale is max|w| / 127 (per output channel or over the tensor).
        assert "B" in a and "B" in b and "B_quantized" not in b, (tag, sorted(b))
        amax = np.abs(w).reshape(4, -1).max(axis=1) if per_channel else np.abs(w).max()
        np.testing.assert_allclose(b["W_scale"].astype(np.float64), amax / 127, rtol=1e-6, err_msg=tag)
        if per_channel:  # ORT enlarged the dead channel's scale for a bias it did not quantize: its weights are 0
            assert a["W_scale"][1] > 1e6 * b["W_scale"][1] and not a["W_quantized"][1].any(), (tag, a["W_scale"])
            assert b["W_quantized"][1].any(), tag
        for k in a:  # everything else is ORT's
            if k not in ("W_scale", "W_quantized"):
                np.testing.assert_allclose(b[k].astype(np.float64), a[k].astype(np.float64), rtol=1e-6, err_msg=tag + k)
QRANGE32 = float(2**31 - 1) - float(-2**31 + 1)
# Symmetric weights: the integer span of each type (Int8 / Int16 symmetric -127..127 / -32767..32767, Int4 -8..7).
WSPAN = {"Int8": 254.0, "Int16": 65534.0, "Int4": 15.0}


def beta_model(beta, trans_b, seed=11, c_scale=1e3):
    """QA's repro (fifteenth session): a Gemm whose tiny input x small weights make input x weight scale far too small
    for a bias of ~1e3 in int32, so the weight scale must be enlarged. Returns model, x, W, C (W as the node reads it)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, (8, 8)).astype(np.float32)  # [N, K] for transB 1, [K, N] for transB 0
    c = (rng.normal(0, 1, 8) * c_scale).astype(np.float32)
    x = rng.normal(0, 1e-6, (6, 8)).astype(np.float32)
    m = model([helper.make_node("Gemm", ["input", "W", "C"], ["y"], name="gemm", transB=trans_b, beta=beta)],
              [init("W", w), init("C", c)], [None, 8], [None, 8], opset=21)
    m.ir_version = 10
    return m, x, w, c


def hand_scales(x, w, c, beta, wtype, per_channel, trans_b):
    """numpy: the input scale (Int8 asymmetric, min/max), the plain weight scale (symmetric min/max, per output
    channel or per tensor) and that scale enlarged so input x weight scale >= 1.0001 x 2 |beta x C| / (2^32 - 2),
    per channel or over the tensor (ORT's formula with beta x C for C)."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    in_scale = float(np.float32((hi - lo) / 255.0))
    wn = w if trans_b else w.T  # [N, K]
    amax = np.abs(wn).max(axis=1).astype(np.float64) if per_channel else np.array([np.abs(wn).max()], np.float64)
    plain = (2.0 * amax / WSPAN[wtype]).astype(np.float32).astype(np.float64)
    bc = np.abs(beta * c.astype(np.float64))
    need = 1.0001 * 2.0 * (bc if per_channel else np.array([bc.max()])) / QRANGE32
    enlarged = np.where(in_scale * plain < need, need / in_scale, plain)
    return in_scale, plain, enlarged


def gemm_beta_enlargement_sized_for_beta_c():
    # Bug 1 (QA of the fifteenth session): sized for |C|, the enlargement left beta = 2 saturating all 8 values.
    worst = {}
    for wtype in ("Int8", "Int16", "Int4"):
        for beta in (2.0, -3.0, 0.5):
            for per_channel in (True, False):
                for trans_b in (1, 0):
                    tag = f"{wtype} beta {beta} {'pc' if per_channel else 'pt'} transB {trans_b}"
                    m, x, w, c = beta_model(beta, trans_b)
                    flt = os.path.join(tmpdir(), "float.onnx")
                    onnx.save(m, flt)
                    ours, log = oq_default(flt, x, wtype, per_channel)
                    onnx.checker.check_model(onnx.load(ours), full_check=True)
                    b = inits(ours)
                    in_scale, _, enlarged = hand_scales(x, w, c, beta, wtype, per_channel, trans_b)
                    np.testing.assert_allclose(float(b["input_scale"]), in_scale, rtol=1e-6, err_msg=tag)
                    ws = b["W_scale"].astype(np.float64).ravel()
                    np.testing.assert_allclose(ws, enlarged, rtol=1e-5, err_msg=tag)
                    # The bias: round(beta x C / (input scale x weight scale)), none saturated.
                    s = b["C_quantized_scale"].astype(np.float64)
                    np.testing.assert_allclose(s, in_scale * ws, rtol=1e-6, err_msg=tag)
                    q = b["C_quantized"].astype(np.int64)
                    want = np.round(beta * c.astype(np.float64) / s).astype(np.int64)
                    assert np.array_equal(q, want), (tag, q, want)
                    assert np.abs(q).max() < 2**31 - 1 and "saturate int32" not in log, (tag, q, log)
                    # The output: the float model's, as onnxruntime computes both (fused or not).
                    ref = run(flt, x)
                    for optimize in (False, True):
                        got = snr_db(ref, run(ours, x, optimize))
                        assert got > 40, f"{tag} optimize {optimize}: {got:.1f} dB against the float model"
                        worst[wtype] = min(worst.get(wtype, np.inf), got)
    print("  lowest SNR against the float model: " + ", ".join(f"{k} {v:.1f} dB" for k, v in worst.items()))


def gemm_beta_zero_no_enlargement():
    # Bug 2: beta 0, C contributes nothing; sizing the enlargement for C (ORT for Int8 / Int16) rounds every weight to
    # 0. onnxquant keeps the plain weight scale and writes zeros for the int32 bias.
    for wtype in ("Int8", "Int4"):
        for per_channel in (True, False):
            for trans_b in (1, 0):
                tag = f"{wtype} beta 0 {'pc' if per_channel else 'pt'} transB {trans_b}"
                m, x, w, c = beta_model(0.0, trans_b)
                pre, ort_out, ours, log = both_tools(m, x, wtype, per_channel)
                onnx.checker.check_model(onnx.load(ours), full_check=True)
                b = inits(ours)
                in_scale, plain, _ = hand_scales(x, w, c, 0.0, wtype, per_channel, trans_b)
                np.testing.assert_allclose(b["W_scale"].astype(np.float64).ravel(), plain, rtol=1e-6, err_msg=tag)
                assert "Increased the scale of weight" not in log, (tag, log)
                assert b["C_quantized"].dtype == np.int32 and not b["C_quantized"].any(), (tag, b["C_quantized"])
                np.testing.assert_allclose(b["C_quantized_scale"].astype(np.float64).ravel(),
                                           in_scale * plain, rtol=1e-6, err_msg=tag)
                ref = run(pre, x)
                ours_db = [snr_db(ref, run(ours, x, optimize)) for optimize in (False, True)]
                assert min(ours_db) > (30 if wtype == "Int8" else 15), (tag, ours_db)  # 39-42 dB, 20-24 dB
                ort_db = snr_db(ref, run(ort_out, x, False))
                if wtype == "Int8":  # ORT enlarges for C: every weight 0, output all zeros (0 dB); not for Int4
                    assert min(ours_db) > ort_db + 20, (tag, ours_db, ort_db)
                tag += f" (ORT quantize_static {ort_db:.1f} dB)"
                print(f"  {tag}: onnxquant {min(ours_db):.1f} dB")


if __name__ == "__main__":
    r = Runner()
    r.run("Gemm beta != 1: ORT's scales, the integers of beta x C, the float model's output", gemm_beta)
    r.run("inspection: a beta != 1 Gemm bias measured against beta x C", gemm_beta_inspection)
    r.run("weights_tensor_override without a scale: weight scale enlarged for the int32 bias", override_bias_fits)
    r.run("weights_tensor_override with a fixed scale: kept, clipped bias values counted in a warning",
          override_fixed_scale_warns)
    r.run("Int4 / UInt4 weights: scale enlarged for the int32 bias (deliberate), Int8 still ORT's",
          int4_weight_scale_enlarged)
    r.run("QuantizeBias False: weight scales not enlarged for float biases (deliberate)", float_bias_keeps_weight_scale)
    r.run("Gemm beta != 1: weight scale enlarged for |beta x C| (Int8 / Int16 / Int4, pc / pt, transB 0 / 1)",
          gemm_beta_enlargement_sized_for_beta_c)
    r.run("Gemm beta 0: no enlargement, plain weight scale, a bias of zeros (deliberate, ORT's output all zeros)",
          gemm_beta_zero_no_enlargement)
    r.finish()
