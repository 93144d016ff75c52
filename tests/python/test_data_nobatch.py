"""Model inputs without a batch axis (s19 review of src/data, F4): a scalar input, or a fixed shape [3,4] with no
batch dim. ONNX Runtime's quantize_static takes such inputs from a data reader one sample at a time, as they are;
onnxquant refused every spelling of the data. An array with exactly one more axis than the input, its trailing
dims equal ([N] for a scalar, [N,3,4] for [3,4]), now gives N samples fed one by one: the calibrated scales equal
quantize_static's with a reader feeding row i. A batch size above 1 is refused naming the input and the key.
Run: OQ_BIN=build/onnxquant .venv/bin/python tests/python/test_data_nobatch.py
"""
import glob
import logging
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as TP, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oqtest import default_mode_config, run_module_tests, run_oq, save_graph, tmpdir  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)  # quantize_static's "consider pre-processing" advice


class Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def scales(path):
    """Every *_scale / *_zero_point initializer of a QDQ model, by name."""
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer
            if i.name.endswith("_scale") or i.name.endswith("_zero_point")}


def ours(d, model, calib, tag, batch_size=None):
    cfg = default_mode_config(model, calib, per_channel=False)
    if batch_size:
        cfg = cfg.replace("dataset: {quantization_path: " + calib + "}",
                          "dataset: {quantization_path: " + calib + ", batch_size: " + str(batch_size) + "}")
    cpath = os.path.join(d, tag + ".yaml")
    with open(cpath, "w") as f:
        f.write(cfg)
    out = os.path.join(d, "out_" + tag)
    p = run_oq(["--config", cpath, "--output-dir", out, "--threads", "1"], check=False)
    q = glob.glob(os.path.join(out, "**", "*.onnx"), recursive=True)
    return p, (q[0] if q else None)


def same_scales(ort_path, oq_path):
    want, got = scales(ort_path), scales(oq_path)
    assert want, "ORT wrote no scales"
    assert set(want) == set(got), (sorted(want), sorted(got))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, err_msg=k)


def test_fixed_input_without_batch_axis_matches_quantize_static():
    d = tmpdir("oq_nobatch_")
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
                          "g", [helper.make_tensor_value_info("x", TP.FLOAT, [3, 4])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [3, 2])], [w])
    model = save_graph(g, os.path.join(d, "fixed.onnx"))
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    x[3] *= 4  # the ranges depend on every sample
    np.savez(os.path.join(d, "x.npz"), x=x)
    ort_out = os.path.join(d, "ort.onnx")
    quantize_static(model, ort_out, Reader([{"x": x[i]} for i in range(5)]), quant_format=QuantFormat.QDQ,
                    per_channel=False, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    p, q = ours(d, model, os.path.join(d, "x.npz"), "fixed")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "the 5 rows of array 'x' [5,3,4] are fed one by one" in p.stderr, p.stderr[-2000:]
    same_scales(ort_out, q)


def scalar_model(d):
    g = helper.make_graph([helper.make_node("Mul", ["x", "t"], ["m"]), helper.make_node("Relu", ["m"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 3]),
                           helper.make_tensor_value_info("t", TP.FLOAT, [])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, ["N", 3])])
    return save_graph(g, os.path.join(d, "scal.onnx"))


def test_scalar_input_matches_quantize_static():
    d = tmpdir("oq_nobatch_")
    model = scalar_model(d)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    t = np.array([2.0, -1.0, 3.5, 0.5], np.float32)
    calib = os.path.join(d, "xt.npz")
    np.savez(calib, x=x, t=t)
    ort_out = os.path.join(d, "ort.onnx")
    quantize_static(model, ort_out, Reader([{"x": x[i:i + 1], "t": np.array(t[i])} for i in range(4)]),
                    quant_format=QuantFormat.QDQ, per_channel=False, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    p, q = ours(d, model, calib, "scalar")
    assert p.returncode == 0, p.stderr[-2000:]
    same_scales(ort_out, q)
    # Batches cannot hold two samples of a scalar: refused naming the input and the key, nothing written.
    p, q = ours(d, model, calib, "batch2", batch_size=2)
    errs = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
    assert p.returncode == 2 and len(errs) == 1 and q is None, p.stderr[-2000:]
    assert "model input 't' has no batch axis" in errs[0] and "dataset.batch_size: 1" in errs[0], errs[0]
    # A 0-d array: one line naming the file once and the input.
    np.savez(os.path.join(d, "t0.npz"), x=x, t=np.float32(2))
    p, q = ours(d, model, os.path.join(d, "t0.npz"), "t0")
    errs = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
    assert p.returncode == 1 and len(errs) == 1, p.stderr[-2000:]
    assert errs[0].count("t0.npz") == 1 and "array 't' is a scalar" in errs[0] and "shape [N]" in errs[0], errs[0]


if __name__ == "__main__":
    run_module_tests(globals())
