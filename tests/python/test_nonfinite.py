"""NaN and infinities during calibration, against ONNX Runtime and hand computation.

* A float model that itself produces infinities from finite data (1 / 0 inside the graph): ORT's quantize_static
  writes an infinite scale (MinMax) or stops (Entropy, Percentile); onnxquant ignores those values in the
  ranges, writes the model, and warns naming the tensors, for every method.
* NaN in one input of a two-input model: the warning names that input and counts its values.
* Relu keeps NaN (ONNX, ORT): with CalibMovingAverage an all-NaN sample is left out of the average as ORT's
  np.nanmean leaves it out, so the Relu output's scale equals ORT's (it used to be 5/6 of it: the sample's
  Relu output was 0 and counted as a [0, 0] range).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, run_oq, tmpdir  # noqa: E402


class Reader(CalibrationDataReader):
    def __init__(self, samples):
        self.s, self.i = list(samples), 0

    def get_next(self):
        if self.i >= len(self.s):
            return None
        self.i += 1
        return self.s[self.i - 1]


def save_model(path, nodes, inputs, inits, out_shape):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def quantize(work, model, data, method="MinMax", extra=""):
    cfg = os.path.join(work, f"cfg_{method}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""model: {{model_path: {model}}}
dataset: {{quantization_path: {data}}}
preprocessing: {{rescaling: {{scale: 1, offset: 0}}}}
quantization:
  target_opset: 17
  operating_mode: default
  onnx_quant_parameters: {{weightType: Int8, activType: Int8, calibrate_method: {method}}}
  onnx_extra_options: {{WeightSymmetric: True, ActivationSymmetric: False{extra}}}
""")
    out = os.path.join(work, "oq_" + method)
    p = run_oq(["--config", cfg, "--output-dir", out, "--threads", "2"])
    return p.stderr, os.path.join(out, "quantized_models", os.path.basename(model)[:-5] + "_quant_qdq_pc.onnx")


def act_scales(path):
    m = onnx.load(path)
    c = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return {n.input[0]: float(c[n.input[1]]) for n in m.graph.node if n.op_type == "QuantizeLinear"}


def infinities_inside():
    work = tmpdir()
    rng = np.random.default_rng(8)
    model = os.path.join(work, "div.onnx")
    save_model(model, [helper.make_node("Div", ["one", "x"], ["inv"], name="div"),
                       helper.make_node("MatMul", ["inv", "w"], ["out"], name="mm")],
               [("x", ["N", 16])], [numpy_helper.from_array(np.ones(1, np.float32), "one"),
                                    numpy_helper.from_array((rng.standard_normal((16, 4)) * 0.3).astype(np.float32), "w")],
               ["N", 4])
    x = rng.uniform(0.5, 2, (10, 16)).astype(np.float32)
    x[4, 3] = 0.0  # 1 / 0 = inf inside the model, the data itself is finite
    np.savez(os.path.join(work, "d.npz"), x=x)
    for method in ("MinMax", "Entropy", "Percentile"):
        err, out = quantize(work, model, os.path.join(work, "d.npz"), method)
        warn = [l for l in err.splitlines() if "produces NaN or infinite values" in l]
        assert len(warn) == 1 and "'inv'" in warn[0] and "'x'" not in warn[0], (method, err[-800:])
        assert all(np.isfinite(v) for v in act_scales(out).values()), act_scales(out)
    # MinMax: 'inv' is measured over its finite values: the largest is max over the finite samples of 1/x and
    # the other values of sample 4 (hand computation in float64 of float32 data)
    with np.errstate(divide="ignore"):
        inv = 1.0 / x.astype(np.float32)
    inv_max = float(np.max(inv[np.isfinite(inv)]))
    s = act_scales(os.path.join(work, "oq_MinMax", "quantized_models", "div_quant_qdq_pc.onnx"))["inv"]
    want = (inv_max - 0.0) / 255.0  # rmin is clamped to 0 (all values are positive)
    assert abs(s - want) <= 1e-6 * want, (s, want)
    # ORT on the same data writes an infinite scale (what the warning is there to avoid)
    ort_out = os.path.join(work, "ort.onnx")
    quantize_static(model, ort_out, Reader([{"x": x[i:i + 1]} for i in range(10)]), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    assert not np.isfinite(act_scales(ort_out)["inv"])


def nan_in_one_input():
    work = tmpdir()
    model = os.path.join(work, "two.onnx")
    save_model(model, [helper.make_node("Add", ["a", "b"], ["out"], name="add")], [("a", ["N", 8]), ("b", ["N", 8])],
               [], ["N", 8])
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((6, 8)).astype(np.float32), rng.standard_normal((6, 8)).astype(np.float32)
    b[2, :3] = np.nan
    np.savez(os.path.join(work, "d.npz"), a=a, b=b)
    err, _ = quantize(work, model, os.path.join(work, "d.npz"))
    lines = [l for l in err.splitlines() if "NaN or infinite values" in l]
    assert any("input 'b' has 3 NaN or infinite values" in l for l in lines), err[-800:]
    assert not any("input 'a'" in l for l in lines), lines


def relu_nan_moving_average():
    work = tmpdir()
    rng = np.random.default_rng(3)
    model = os.path.join(work, "relu.onnx")
    save_model(model, [helper.make_node("MatMul", ["x", "w"], ["mm"], name="mm"),
                       helper.make_node("Relu", ["mm"], ["out"], name="relu")], [("x", ["N", 16])],
               [numpy_helper.from_array((rng.standard_normal((16, 4)) * 0.3).astype(np.float32), "w")], ["N", 4])
    x = np.random.default_rng(8).standard_normal((6, 16)).astype(np.float32)
    x[2, :] = np.nan
    np.savez(os.path.join(work, "d.npz"), x=x)
    _, out = quantize(work, model, os.path.join(work, "d.npz"), extra=", CalibMovingAverage: True")
    ort_out = os.path.join(work, "ort.onnx")
    quantize_static(model, ort_out, Reader([{"x": x[i:i + 1]} for i in range(6)]), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"CalibMovingAverage": True, "WeightSymmetric": True, "ActivationSymmetric": False})
    ours, ref = act_scales(out), act_scales(ort_out)
    for k, v in ref.items():
        assert abs(ours[k] - v) <= 1e-6 * v, (k, ours[k], v)


if __name__ == "__main__":
    r = Runner()
    r.run("infinities produced inside the model are reported, not written", infinities_inside)
    r.run("NaN in one input of two is reported by name", nan_in_one_input)
    r.run("Relu keeps NaN: CalibMovingAverage equals ORT's", relu_nan_moving_average)
    r.finish()
