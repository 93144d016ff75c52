"""Two range rules against ONNX Runtime 1.32's quantize_static (bit for bit) and numpy hand computations.

- `MinimumRealRange` with `WeightQuantizer: mse` / `gptq`: every clipping-ratio candidate takes the floor as the
  min/max parameters do (ORT's compute_data_quant_params(..., min_real_range)), so ratio 1 is ORT's min/max result.
  A weight far below the floor rounds to 0 on every candidate grid: the tie keeps ratio 1, i.e. ORT's scales. A
  weight the floor binds on gets scales of at least ORT's, and mse's ||W - Q(W)||^2 (numpy, from the written
  model) is never above that of ORT's min/max model. (mse and gptq used to ignore the floor: scales of ~1e-5.)
- `CalibMovingAverage`: ORT's range is np.nanmean of the per-batch float32 minima / maxima, numpy's float32
  pairwise sum divided by the count in float64 and rounded to float32, per collect_data() call, then the EMA over
  the calls. Graph-input ranges (no executor arithmetic in them) over 150-300 batches, ORT fed the samples in
  onnxquant's seeded order (dataset.seed 123): the same input scale and zero point, with one call, two calls
  (CalibStridedMinMax) and symmetric ranges. (onnxquant used to average in float64: the scale differed in some.)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, default_mode_config, run_oq, save_graph, tmpdir  # noqa: E402
from test_inspection import shuffled_permutation  # noqa: E402  (src/data's seeded order, in Python)
from test_op_parity import DictReader  # noqa: E402  (one sample a batch; input "input")

SEED = 123  # dataset.seed's default


def inits(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}


def run_both(graph, x, per_channel, extra, oq_extra=None, threads=1):
    """ORT's quantize_static fed x[perm] (onnxquant's order of the samples of x) and onnxquant's default mode on
    calib.npz = x; returns both models' initializers."""
    work = tmpdir()
    path = save_graph(graph, os.path.join(work, "m.onnx"))
    np.savez(os.path.join(work, "calib.npz"), input=x)
    ort_out = os.path.join(work, "ort.onnx")
    order = shuffled_permutation(len(x), SEED)
    quantize_static(path, ort_out, DictReader(x[order]), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, **extra})
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(path, os.path.join(work, "calib.npz"), per_channel,
                                    extra={**extra, **(oq_extra or {})}))
    run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq"), "--threads", str(threads)])
    ours = os.path.join(work, "oq", "quantized_models", "m_quant_qdq_" + ("pc" if per_channel else "pt") + ".onnx")
    return inits(ort_out), inits(ours)


# ---------------------------------------------------------------- MinimumRealRange with mse / gptq

def conv_graph(w):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return helper.make_graph([helper.make_node("Conv", ["input", "w"], ["y"], name="c")], "g", [x], [y],
                             [numpy_helper.from_array(w, "w")])


def conv_data(seed):
    return np.random.default_rng(seed).standard_normal((6, 2, 4, 4)).astype(np.float32)


def sq_error(w, q):
    """||W - DequantizeLinear(w_quantized)||^2 of a written model: (q - zp) * scale in float32, as the writer's."""
    scale, zp = q["w_scale"].astype(np.float32), q["w_zero_point"].astype(np.int64)
    shape = (-1,) + (1,) * (w.ndim - 1) if scale.ndim else ()
    deq = (q["w_quantized"].astype(np.int64) - zp.reshape(shape)).astype(np.float32) * scale.reshape(shape)
    return float(np.sum((w.astype(np.float64) - deq.astype(np.float64)) ** 2))


def test_floor_far_above_weight_gives_ort_scales():
    # |w| <= 2e-4, floor 0.1: ORT's symmetric scale ~ 0.1 / 127 = 7.9e-4, every candidate rounds w to 0.
    w = (np.random.default_rng(4).uniform(-2e-4, 2e-4, (3, 2, 1, 1))).astype(np.float32)
    for pc in (True, False):
        for wq in ("mse", "gptq"):
            ort_q, ours = run_both(conv_graph(w), conv_data(1), pc, {"MinimumRealRange": 0.1},
                                   {"WeightQuantizer": wq})
            assert np.all(ort_q["w_scale"] > 7e-4), ort_q["w_scale"]
            for k in ("w_scale", "w_zero_point"):
                assert ours[k].dtype == ort_q[k].dtype and np.array_equal(ours[k], ort_q[k]), \
                    f"{wq} per_channel {pc} {k}: ours {ours[k].tolist()} ORT {ort_q[k].tolist()}"
            assert np.array_equal(ours["w_quantized"], ort_q["w_quantized"]), (wq, pc)


def test_floor_binding_never_below_ort_and_mse_never_worse():
    # |w| up to ~2e-3 (values -3..3 on ORT's grid): every candidate's scale is floored, so none is finer than
    # ORT's; mse's squared error is at most min/max's (ratio 1 is among its candidates).
    for seed in (4, 5, 6):
        w = (np.random.default_rng(seed).standard_normal((3, 2, 1, 1)) * 1e-3).astype(np.float32)
        for pc in (True, False):
            floor = {"MinimumRealRange": 0.1}
            ort_q, mse = run_both(conv_graph(w), conv_data(seed), pc, floor, {"WeightQuantizer": "mse"})
            _, gptq = run_both(conv_graph(w), conv_data(seed), pc, floor, {"WeightQuantizer": "gptq"})
            for name, q in (("mse", mse), ("gptq", gptq)):
                assert np.all(q["w_scale"] >= ort_q["w_scale"]), \
                    f"seed {seed} pc {pc} {name}: {q['w_scale']} < ORT {ort_q['w_scale']}"
            e_mse, e_ort = sq_error(w, mse), sq_error(w, ort_q)
            assert e_mse <= e_ort * (1 + 1e-9), f"seed {seed} pc {pc}: mse error {e_mse} > min/max {e_ort}"


# ---------------------------------------------------------------- CalibMovingAverage

def matmul_graph():
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    return helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["y"], name="mm")], "g", [x], [y],
                             [numpy_helper.from_array(w, "w")])


def mean_f32_pairwise(v):
    """ORT's np.nanmean of float32 values: numpy's pairwise float32 sum / count in float64, as float32."""
    return np.float32(np.float64(np.sum(v, dtype=np.float32)) / len(v))


def mean_f64(v):
    return np.float32(np.sum(v.astype(np.float64)) / len(v))


def test_moving_average_is_orts_nanmean():
    differs = 0  # cases where a float64 mean of the minima / maxima is not ORT's: the test tells the two apart
    for seed in range(6):
        n = 150 + 30 * seed
        x = (np.random.default_rng(100 + seed).standard_normal((n, 8)) * (1 + seed)).astype(np.float32)
        xs = x[shuffled_permutation(n, SEED)]
        mins, maxs = xs.min(axis=1), xs.max(axis=1)
        differs += mean_f32_pairwise(mins) != mean_f64(mins) or mean_f32_pairwise(maxs) != mean_f64(maxs)
        cases = [{}, {"CalibTensorRangeSymmetric": True},
                 {"CalibStridedMinMax": n // 2, "CalibMovingAverageConstant": 0.3}]
        for extra in cases:
            extra = {"CalibMovingAverage": True, **extra}
            ort_q, ours = run_both(matmul_graph(), x, False, extra, threads=1 + seed % 2)
            for k in ("input_scale", "input_zero_point"):
                assert ours[k].dtype == ort_q[k].dtype and np.array_equal(ours[k], ort_q[k]), \
                    f"seed {seed} {extra} {k}: ours {ours[k].item()!r} ORT {ort_q[k].item()!r}"
    assert differs >= 3, differs


def main():
    r = Runner()
    r.run("mse / gptq: MinimumRealRange far above |w| gives ORT's scales",
          test_floor_far_above_weight_gives_ort_scales)
    r.run("mse / gptq: floored scales never below ORT's, mse error never above min/max's",
          test_floor_binding_never_below_ort_and_mse_never_worse)
    r.run("CalibMovingAverage: ORT's np.nanmean (float32 pairwise sum) bit for bit",
          test_moving_average_is_orts_nanmean)
    r.finish()


if __name__ == "__main__":
    main()
