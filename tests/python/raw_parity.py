"""The raw-model parity check shared by the tests of ORT's optimizer rewrites (test_ort_basic_rewrites.py,
test_ort_fusions_ln_gelu.py, test_ort_fusions_more.py, test_shape_fold_parity.py): a raw float model goes through
quant_pre_process + quantize_static and through onnxquant (its pre-processing alone, tests/oq_preprocess_model, and
its default mode), with the same settings.

  pre = preprocess_both(m, x)      # both pre-processed float models; ours computes the original's outputs
  ...                              # the caller's assertions on pre.pm (ORT's) and pre.om (onnxquant's)
  quantize_both_raw(pre, opset)    # per channel and per tensor: ORT's wiring, names, Q/DQ, scales, outputs
"""
import os
import subprocess
from collections import Counter
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from oqtest import default_mode_config, run_oq, tmpdir
from test_op_parity import DictReader, compare_with_ort, own_range_outputs, qdq_counts

SRC = os.environ.get("OQ_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("OQ_BUILD_DIR", os.path.join(SRC, "build"))
TOOL = os.path.join(BUILD, "tests", "oq_preprocess_model")


def session(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def outputs(path, x):
    """Every output of the model at `path` on the rows of x (one run per row, input named "input")."""
    s = session(path)
    return [np.concatenate(o) for o in zip(*[s.run(None, {"input": x[i:i + 1]}) for i in range(len(x))])]


def op_counts(m):
    return Counter(n.op_type for n in m.graph.node)


def preprocess_both(m, x, fused=None):
    """Saves raw model m, runs quant_pre_process and onnxquant's pre-processing on it, and checks that ours
    computes the original's outputs (1e-4 relative; x None: not run). `fused` (bool): asserts that quant_pre_process removes nodes
    (True) or leaves their number (False), so that a case is what it claims. Returns the paths and both loaded
    pre-processed models (pm: ORT's, om: onnxquant's)."""
    work = tmpdir()
    p = SimpleNamespace(work=work, x=x, raw=os.path.join(work, "float.onnx"), pre=os.path.join(work, "pre.onnx"),
                        ours_pre=os.path.join(work, "ours_pre.onnx"))
    onnx.save(m, p.raw)
    quant_pre_process(p.raw, p.pre)
    p.pm = onnx.load(p.pre)
    if fused is not None:
        raw_ops, pre_ops = op_counts(m), op_counts(p.pm)
        assert (sum(pre_ops.values()) < sum(raw_ops.values())) == fused, (raw_ops, pre_ops)
    r = subprocess.run([TOOL, p.raw, p.ours_pre], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p.om = onnx.load(p.ours_pre)
    for a, b in zip(*(outputs(f, x[:4]) for f in (p.raw, p.ours_pre))) if x is not None else ():
        assert np.abs(a - b).max() <= 1e-4 * max(1.0, np.abs(a).max()), np.abs(a - b).max()
    return p


def quantize_both_raw(p, opset=13, pcs=(True, False), extra=None):
    """quantize_static on quant_pre_process's model and onnxquant's default mode on the raw model, per channel /
    per tensor (`pcs`): the same wiring and initializer names, scales and zero points (1e-6), Q/DQ counts per op
    type; ours passes onnx.checker's full check; outputs in onnxruntime within 1 % of the range or one quantization
    step of the output (scales equal within 1e-6 can round one element differently)."""
    x = p.x
    np.savez(os.path.join(p.work, "calib.npz"), input=x)
    for pc in pcs:
        ort_out = os.path.join(p.work, f"ort_{pc}.onnx")
        quantize_static(p.pre, ort_out, DictReader(x), quant_format=QuantFormat.QDQ, per_channel=pc,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, **(extra or {})})
        cfg = os.path.join(p.work, f"config_{pc}.yaml")
        with open(cfg, "w") as f:
            f.write(default_mode_config(p.raw, os.path.join(p.work, "calib.npz"), pc, opset, extra=extra))
        out_dir = os.path.join(p.work, f"oq_{pc}")
        run_oq(["--config", cfg, "--output-dir", out_dir, "--threads", "1"])
        ours = os.path.join(out_dir, "quantized_models", "float_quant_qdq_" + ("pc" if pc else "pt") + ".onnx")
        onnx.checker.check_model(onnx.load(ours), full_check=True)
        a, b = compare_with_ort(ort_out, ours)
        assert qdq_counts(a) == qdq_counts(b), (qdq_counts(a), qdq_counts(b))
        scales = {n.output[0]: numpy_helper.to_array(next(t for t in b.graph.initializer if t.name == n.input[1]))
                  for n in b.graph.node if n.op_type == "DequantizeLinear"}
        own = own_range_outputs(b)  # ORT narrows these to the Relu's range, cutting the output (docs/conformance.md)
        for o, u, v, f in zip(b.graph.output, outputs(ort_out, x[:4]), outputs(ours, x[:4]), outputs(p.raw, x[:4])):
            step = float(np.max(scales[o.name])) * 1.01 if o.name in scales else 0.0
            if own:  # ORT's model differs upstream (deliberately): the float model's values within 5 % of their range
                u, step = f, max(step, np.abs(f).max() / 20)
            assert np.abs(u - v).max() <= max(np.abs(u).max() / 100, step), (o.name, np.abs(u - v).max())
