"""Default mode vs ONNX Runtime's quantize_static (QDQ) on the testdata models, same settings and data.

Checks: same Q/DQ node counts and op-type histogram, MinMax scales and zero points equal (1e-6 relative),
top-1 (computed by onnxruntime on both outputs; at opset 28 with their import lowered to 27, onnxruntime 1.32
having no Q/DQ kernel at 28) within 0.3 points, onnx.checker full_check on our output.
Entropy and Percentile with quantize_static's defaults (one collect_data() call over all the samples, which
onnxquant reproduces in two streamed passes): scales within 1e-3 relative (the KL search's logarithms may round
differently, tests/python/test_calib_vs_ort.py), zero points within 1.
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import TESTDATA, Runner, ort_top1, run_oq, tmpdir  # noqa: E402

QTYPES = {"Int8": QuantType.QInt8, "UInt8": QuantType.QUInt8, "Int16": QuantType.QInt16,
          "UInt16": QuantType.QUInt16, "Int4": QuantType.QInt4, "UInt4": QuantType.QUInt4}


class NpzReader(CalibrationDataReader):
    def __init__(self, path, input_name):
        self.x = np.load(path)["x"]
        self.name = input_name
        self.i = 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        self.i += 1
        return {self.name: self.x[self.i - 1:self.i]}


def histogram(m):
    h = {}
    for n in m.graph.node:
        h[n.op_type] = h.get(n.op_type, 0) + 1
    return h


def quantize_both(model, calib, per_channel, wtype, atype, opset, method="MinMax", oq_converts=False, ort_extra=None,
                  oq_args=()):
    """ORT gets the pre-processed model converted to `opset` by onnx's version_converter; onnxquant gets the same
    model, or with `oq_converts` the unconverted one, which target_opset makes it convert itself. `ort_extra` adds
    to quantize_static's extra_options, `oq_args` to onnxquant's command line (the same settings as dotted
    overrides)."""
    work = tmpdir()
    pre = os.path.join(work, "pre.onnx")
    quant_pre_process(os.path.join(TESTDATA, model), pre)
    m = onnx.load(pre)
    oq_in = pre
    if m.opset_import[0].version < opset:
        m = onnx.version_converter.convert_version(m, opset)
        if oq_converts:
            oq_in = os.path.join(work, "pre_unconverted.onnx")
            os.rename(pre, oq_in)
        onnx.save(m, pre)
    ort_out = os.path.join(work, "ort.onnx")
    input_name = m.graph.input[0].name
    quantize_static(pre, ort_out, NpzReader(os.path.join(TESTDATA, calib), input_name), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, weight_type=QTYPES[wtype], activation_type=QTYPES[atype],
                    calibrate_method=getattr(CalibrationMethod, method),
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, **(ort_extra or {})})
    outdir = os.path.join(work, "oq")
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", outdir,
            f"model.model_path={oq_in}", f"dataset.quantization_path=testdata/{calib}",
            "quantization.operating_mode=default", f"quantization.target_opset={opset}",
            f"quantization.granularity={'per_channel' if per_channel else 'per_tensor'}",
            f"quantization.onnx_quant_parameters.weightType={wtype}",
            f"quantization.onnx_quant_parameters.activType={atype}",
            f"quantization.onnx_quant_parameters.calibrate_method={method}", *oq_args])
    base = os.path.splitext(os.path.basename(oq_in))[0]
    ours = os.path.join(outdir, "quantized_models", base + "_quant_qdq_" + ("pc" if per_channel else "pt") + ".onnx")
    return ort_out, ours


# Ops with a kernel whose schema changed at 28 (docs/conformance.md "Opsets 22 to 28").
CHANGED_AT_28 = {"BitShift", "Cast", "Celu", "Compress", "DepthToSpace", "DequantizeLinear", "Einsum", "Mod",
                 "OneHot", "QuantizeLinear", "ReduceLogSum", "ReduceLogSumExp", "ReverseSequence", "SpaceToDepth",
                 "Unique"}


def top1(path, npz):
    """ort_top1; a model at opset 28 (quantize_static's output as ours) is run with its import lowered to 27:
    onnxruntime 1.32 has no QuantizeLinear / DequantizeLinear kernel at 28, and their only change at 28 is the
    float6 types, which these models do not use (nor any other op that changed at 28: checked)."""
    m = onnx.load(path)
    if [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] != [28]:
        return ort_top1(path, npz)
    ops = {n.op_type for n in m.graph.node}
    assert not (ops & CHANGED_AT_28 - {"QuantizeLinear", "DequantizeLinear"}), ops & CHANGED_AT_28
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 27
    m.ir_version = min(m.ir_version, 13)
    low = path[:-5] + "_as27.onnx"
    onnx.save(m, low)
    return ort_top1(low, npz)


def compare(model, calib, test, per_channel=True, wtype="Int8", atype="Int8", opset=21, method="MinMax",
            oq_converts=False, ort_extra=None, oq_args=()):
    ort_out, ours = quantize_both(model, calib, per_channel, wtype, atype, opset, method, oq_converts, ort_extra,
                                  oq_args)
    onnx.checker.check_model(onnx.load(ours), full_check=True)
    got = [o.version for o in onnx.load(ours).opset_import if o.domain in ("", "ai.onnx")]
    assert got == [opset], f"written opset {got}, expected {opset}"
    a, b = onnx.load(ort_out), onnx.load(ours)
    ha, hb = histogram(a), histogram(b)
    assert ha == hb, f"op histograms differ:\n ORT {sorted(ha.items())}\n oq  {sorted(hb.items())}"
    ia = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
    ib = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
    qp = [n for n in ia if n.endswith("_scale") or n.endswith("_zero_point")]
    assert qp, "ORT model has no scales"
    missing = [n for n in qp if n not in ib]
    assert not missing, f"scale/zero-point initializers missing in ours: {missing[:5]}"
    # parameters of constants (weights, biases: from their values whatever the calibration method)
    weights = {k[:-len("_quantized")] + suffix for k in ia if k.endswith("_quantized") for suffix in ("_scale", "_zero_point")}
    for n in qp:
        x, y = ia[n].astype(np.float64), ib[n].astype(np.float64)
        assert x.shape == y.shape, f"{n}: shape {x.shape} vs {y.shape}"
        if method == "MinMax" or n in weights:
            assert np.allclose(x, y, rtol=1e-6, atol=0), f"{n}: ORT {x.ravel()[:4]} vs ours {y.ravel()[:4]}"
        elif n.endswith("_scale"):
            assert np.allclose(x, y, rtol=1e-3, atol=0), f"{n}: ORT {x.ravel()[:4]} vs ours {y.ravel()[:4]}"
        else:
            assert np.abs(x - y).max() <= 1, f"{n}: ORT {x.ravel()[:4]} vs ours {y.ravel()[:4]}"
    for n, x in ia.items():  # quantized weights equal too (same scales, same rounding)
        if not (n.endswith("_quantized") and n in ib):
            continue
        if x.dtype == np.int32:  # int32 bias: a 1-ulp difference in the activation scale moves large values
            sa, sb = ia[n + "_scale"].astype(np.float64), ib[n + "_scale"].astype(np.float64)
            da, db = x.astype(np.float64) * sa.reshape(-1, *[1] * (x.ndim - 1)), ib[n].astype(np.float64) * sb.reshape(
                -1, *[1] * (x.ndim - 1))
            step = np.maximum(sa, sb).reshape(-1, *[1] * (x.ndim - 1))  # one quantization step
            err = (np.abs(da - db) - step).max() / max(np.abs(da).max(), 1e-30)
            assert err <= 1e-5, f"{n}: dequantized int32 bias differs by more than one step ({err:.2e} relative)"
        elif method == "MinMax" or n[:-len("_quantized")] + "_scale" in weights:
            diff = np.abs(x.astype(np.int64) - ib[n].astype(np.int64)).max()
            assert diff <= 1, f"{n}: quantized values differ by {diff}"
    ta, tb = top1(ort_out, os.path.join(TESTDATA, test)), top1(ours, os.path.join(TESTDATA, test))
    assert abs(ta - tb) <= 0.3, f"top-1 ORT {ta:.2f} vs ours {tb:.2f}"
    print(f"  {model} {wtype}/{atype} pc={per_channel} {method}: {sum(ha.values())} nodes, {len(qp)} qparams, "
          f"top1 ORT {ta:.2f} ours {tb:.2f}")
    return a, b


def entropy_strided_one():
    # CalibStridedMinMax: 1 = one collect_data() call per sample: the histogram grows sample by sample, so the
    # ranges depend on the order. onnxquant reads the calibration set in its seeded shuffled order: with two
    # samples it matches ORT fed them in one of the two orders, and the two orders (and the default single
    # call) give different ranges, so the option is really in effect.
    work = tmpdir()
    pre = os.path.join(work, "pre.onnx")
    quant_pre_process(os.path.join(TESTDATA, "digits_mobilenet.onnx"), pre)
    x = np.load(os.path.join(TESTDATA, "digits_calib.npz"))["x"][:2]
    calib = os.path.join(work, "two.npz")
    np.savez(calib, x=x)
    name = onnx.load(pre).graph.input[0].name

    def ort_scales(order, strided):
        out = os.path.join(work, f"ort_{order}_{strided}.onnx")
        np.savez(os.path.join(work, "ordered.npz"), x=x[list(order)])
        extra = {"WeightSymmetric": True, "ActivationSymmetric": False}
        if strided:
            extra["CalibStridedMinMax"] = 1
        quantize_static(pre, out, StridedNpzReader(os.path.join(work, "ordered.npz"), name),
                        quant_format=QuantFormat.QDQ, per_channel=True, calibrate_method=CalibrationMethod.Entropy,
                        extra_options=extra)
        return act_scales(out)

    outdir = os.path.join(work, "oq")
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", outdir, f"model.model_path={pre}",
            f"dataset.quantization_path={calib}", "quantization.operating_mode=default",
            "quantization.onnx_quant_parameters.calibrate_method=Entropy",
            "quantization.onnx_extra_options.CalibStridedMinMax=1"])
    ours = act_scales(os.path.join(outdir, "quantized_models", "pre_quant_qdq_pc.onnx"))
    refs = [ort_scales((0, 1), True), ort_scales((1, 0), True)]
    one_call = ort_scales((0, 1), False)

    def same(a, b):
        return a.keys() == b.keys() and all(np.allclose(a[k], b[k], rtol=1e-3, atol=0) for k in a)
    assert not same(refs[0], refs[1]) and not same(refs[0], one_call) and not same(refs[1], one_call)
    assert same(ours, refs[0]) or same(ours, refs[1]), "CalibStridedMinMax 1 matches neither ORT order"


class StridedNpzReader(NpzReader):
    # What quantize_static needs for CalibStridedMinMax: the sample count and a range to read.
    def __len__(self):
        return len(self.x)

    def set_range(self, start_index, end_index):
        self.stop = end_index
        self.i = start_index

    def get_next(self):
        if self.i >= getattr(self, "stop", len(self.x)):
            return None
        return super().get_next()


def exclude_fused_matmul():
    """nodes_to_exclude names a MatMul of the model as given, which pre-processing fuses with its Add into the Gemm
    '<MatMul>/MatMulAddFusion' (ORT's name): the filter applies to that Gemm, as ORT's quantize_static does when
    given the fused name on quant_pre_process's output."""
    work = tmpdir()
    pre = os.path.join(work, "pre.onnx")
    quant_pre_process(os.path.join(TESTDATA, "digits_mlp.onnx"), pre)
    fused = [n.name for n in onnx.load(pre).graph.node if n.name.endswith("/MatMulAddFusion")]
    target = "/MatMul_2"
    assert target + "/MatMulAddFusion" in fused, fused
    ort_out = os.path.join(work, "ort.onnx")
    quantize_static(pre, ort_out, NpzReader(os.path.join(TESTDATA, "digits_calib_flat.npz"), "input"),
                    quant_format=QuantFormat.QDQ, per_channel=True, nodes_to_exclude=[target + "/MatMulAddFusion"],
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    outdir = os.path.join(work, "oq")
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", outdir,
            f"model.model_path={os.path.join(TESTDATA, 'digits_mlp.onnx')}",
            "dataset.quantization_path=testdata/digits_calib_flat.npz", "quantization.operating_mode=default",
            "preprocessing.color_mode=grayscale", f"quantization.onnx_quant_parameters.nodes_to_exclude=[{target}]"])
    a, b = onnx.load(ort_out), onnx.load(os.path.join(outdir, "quantized_models", "digits_mlp_quant_qdq_pc.onnx"))
    assert histogram(a) == histogram(b), f"ORT {histogram(a)} vs ours {histogram(b)}"
    scales = lambda m: sorted(t.name for t in m.graph.initializer if t.name.endswith("_scale"))  # noqa: E731
    assert scales(a) == scales(b), f"ORT {scales(a)} vs ours {scales(b)}"
    gemm = [n for n in b.graph.node if n.name == target + "/MatMulAddFusion"]
    assert len(gemm) == 1 and not gemm[0].input[1].endswith("_DequantizeLinear_Output"), "excluded Gemm quantized"


def act_scales(path):
    m = onnx.load(path)
    consts = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return {n.input[1]: consts[n.input[1]] for n in m.graph.node if n.op_type == "QuantizeLinear"}


if __name__ == "__main__":
    r = Runner()
    r.run("mobilenet int8 per-channel", compare, "digits_mobilenet.onnx", "digits_calib.npz", "digits_test.npz")
    r.run("mobilenet int8 per-tensor", compare, "digits_mobilenet.onnx", "digits_calib.npz", "digits_test.npz", False)
    r.run("mobilenet_bn int8", compare, "digits_mobilenet_bn.onnx", "digits_calib.npz", "digits_test.npz")
    r.run("resnet int8", compare, "digits_resnet.onnx", "digits_calib.npz", "digits_test.npz")
    r.run("mlp int8", compare, "digits_mlp.onnx", "digits_calib_flat.npz", "digits_test_flat.npz")
    r.run("mobilenet int4 weights", compare, "digits_mobilenet.onnx", "digits_calib.npz", "digits_test.npz",
          True, "Int4", "Int8")
    r.run("resnet int16 weights", compare, "digits_resnet.onnx", "digits_calib.npz", "digits_test.npz",
          True, "Int16", "Int8")
    r.run("mobilenet uint16 activations", compare, "digits_mobilenet.onnx", "digits_calib.npz", "digits_test.npz",
          True, "Int8", "UInt16")
    r.run("mobilenet int8 Entropy", compare, "digits_mobilenet.onnx", "digits_calib.npz", "digits_test.npz",
          True, "Int8", "Int8", 21, "Entropy")
    r.run("resnet int8 Percentile", compare, "digits_resnet.onnx", "digits_calib.npz", "digits_test.npz",
          True, "Int8", "Int8", 21, "Percentile")
    # Opsets 22, 23, 27 and 28 (the model at that opset, as ORT gets it; at 23 and 28 also converted up from 13 by
    # onnxquant).
    r.run("mobilenet int8 opset 22", compare, "digits_mobilenet.onnx", "digits_calib.npz", "digits_test.npz",
          True, "Int8", "Int8", 22)
    r.run("resnet int4 weights opset 23", compare, "digits_resnet.onnx", "digits_calib.npz", "digits_test.npz",
          True, "Int4", "Int8", 23)
    r.run("mobilenet_bn int8 opset 27", compare, "digits_mobilenet_bn.onnx", "digits_calib.npz", "digits_test.npz",
          True, "Int8", "Int8", 27)
    r.run("mlp int8 per-tensor opset 23 converted by onnxquant", compare, "digits_mlp.onnx", "digits_calib_flat.npz",
          "digits_test_flat.npz", False, "Int8", "Int8", 23, "MinMax", True)
    # Opset 28: quantize_static writes opset-28 Q/DQ (which onnxruntime 1.32 cannot run: top1() above).
    r.run("mobilenet_bn int8 opset 28", compare, "digits_mobilenet_bn.onnx", "digits_calib.npz", "digits_test.npz",
          True, "Int8", "Int8", 28)
    r.run("resnet uint8 per-tensor opset 28", compare, "digits_resnet.onnx", "digits_calib.npz", "digits_test.npz",
          False, "Int8", "UInt8", 28)
    r.run("mlp int8 per-tensor opset 28 converted by onnxquant", compare, "digits_mlp.onnx", "digits_calib_flat.npz",
          "digits_test_flat.npz", False, "Int8", "Int8", 28, "MinMax", True)
    r.run("mobilenet Entropy CalibStridedMinMax 1", entropy_strided_one)
    r.run("mlp nodes_to_exclude of a fused MatMul", exclude_fused_matmul)
    r.finish()
