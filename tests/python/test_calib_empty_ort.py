"""Calibration of tensors that are empty (0 elements) on some or all samples, and the advice of the
CalibStridedMinMax rule, against ONNX Runtime's quantize_static (QDQ) fed the same samples in onnxquant's seeded
order (dataset.seed 123). Every *_scale / *_zero_point initializer is compared by name: scales within 1e-6
relative, zero points exactly.

* A Compress that keeps no row on any sample (detection / post-processing heads on data where nothing passes the
  threshold): its output and what follows are [0, C]. ORT quantizes them with the range [0, 0] (scale 1, zero
  point 0) for MinMax, Entropy and Percentile; onnxquant stopped with "has no finite value ... check the data for
  NaN / infinite values". It now quantizes as ORT does and warns naming the tensors. A tensor that has values but
  none finite (a Sqrt of negative numbers) still stops the run, naming the tensor, with no model written.
* The same tensor empty on the first sample only, with CalibStridedMinMax: 1 (histograms grown sample by sample):
  ORT's first |x| histogram (Percentile) of an empty batch spans [0, 1] and grows from there; onnxquant skipped
  the batch (kept_scale 1.1e-4 relative off). Entropy's x histogram at threshold 0 is replaced by the next batch
  in both.
* CalibStridedMinMax: k > 1 with Entropy / Percentile is refused, with advice: ORT's call then holds k batches of
  dataset.batch_size b samples, so the same histograms come from batch_size k * b with CalibStridedMinMax: 1 (the
  message said k). Following the advice gives ORT's scales.
"""
import contextlib
import io
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, run_oq, tmpdir  # noqa: E402
from test_inspection import shuffled_permutation  # noqa: E402  (src/data's seeded order)

METHODS = {"MinMax": CalibrationMethod.MinMax, "Entropy": CalibrationMethod.Entropy,
           "Percentile": CalibrationMethod.Percentile}


class BatchReader(CalibrationDataReader):
    """Batches of `bs` samples of x in the given order; set_range for CalibStridedMinMax."""

    def __init__(self, x, bs):
        self.x, self.bs = x, bs
        self.n = (len(x) + bs - 1) // bs
        self.i, self.stop = 0, self.n

    def __len__(self):
        return self.n

    def set_range(self, start_index, end_index):
        self.i, self.stop = start_index, end_index

    def get_next(self):
        if self.i >= min(self.stop, self.n):
            return None
        self.i += 1
        return {"input": self.x[(self.i - 1) * self.bs:self.i * self.bs]}


def save(path, nodes, inits, outputs):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 8])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None, 4]) for o in outputs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path


def init(name, a):
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def qparams(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer
            if t.name.endswith("_scale") or t.name.endswith("_zero_point")}


def run_ours(work, tag, model, x, method, extra="", bs=1, check=True):
    np.savez(os.path.join(work, f"{tag}.npz"), input=x)
    cfg = os.path.join(work, f"{tag}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""model: {{model_path: {model}}}
dataset: {{quantization_path: {os.path.join(work, tag + '.npz')}, batch_size: {bs}, seed: 123}}
preprocessing: {{rescaling: {{scale: 1, offset: 0}}}}
quantization:
  granularity: per_tensor
  target_opset: 13
  operating_mode: default
  onnx_quant_parameters: {{weightType: Int8, activType: Int8, calibrate_method: {method}}}
  onnx_extra_options: {{WeightSymmetric: True, ActivationSymmetric: False{extra}}}
""")
    out = os.path.join(work, "oq_" + tag)
    p = run_oq(["--config", cfg, "--output-dir", out, "--threads", "2"], check=check)
    qm = os.path.join(out, "quantized_models", os.path.basename(model)[:-5] + "_quant_qdq_pt.onnx")
    return p, qm


def run_ort(work, tag, model, x, method, extra=None, bs=1):
    """ORT fed the samples in onnxquant's seeded order."""
    out = os.path.join(work, f"ort_{tag}.onnx")
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(model, out, BatchReader(x[shuffled_permutation(len(x), 123)], bs),
                        quant_format=QuantFormat.QDQ, per_channel=False, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QInt8, calibrate_method=METHODS[method],
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, **(extra or {})})
    return out


def assert_same(ours, ref, what):
    a, b = qparams(ref), qparams(ours)
    assert a.keys() == b.keys(), (what, sorted(a.keys() ^ b.keys()))
    for k, v in a.items():
        w = b[k]
        assert v.dtype == w.dtype and v.shape == w.shape, (what, k, v, w)
        if k.endswith("_scale"):
            assert np.allclose(w.astype(np.float64), v.astype(np.float64), rtol=1e-6, atol=0), (what, k, w, v)
        else:
            assert np.array_equal(w, v), (what, k, w, v)


def compress_model(path, thr, with_logits):
    """MatMul -> ReduceMax -> Greater(score, thr) -> Compress(axis 0) -> MatMul: 'kept' and 'boxes' hold the rows
    whose largest value exceeds thr."""
    r = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["m1"], name="mm1"),
             helper.make_node("ReduceMax", ["m1"], ["score"], name="rmax", axes=[1], keepdims=0),
             helper.make_node("Greater", ["score", "thr"], ["keep"], name="gt"),
             helper.make_node("Compress", ["m1", "keep"], ["kept"], name="compress", axis=0),
             helper.make_node("MatMul", ["kept", "w2"], ["boxes"], name="mm2")]
    inits = [init("w1", r.standard_normal((8, 8))), init("w2", r.standard_normal((8, 4))), init("thr", thr)]
    outputs = ["boxes"]
    if with_logits:
        nodes.append(helper.make_node("MatMul", ["m1", "w3"], ["logits"], name="mm3"))
        inits.append(init("w3", r.standard_normal((8, 4))))
        outputs.append("logits")
    return save(path, nodes, inits, outputs)


def empty_on_every_sample():
    work = tmpdir()
    model = compress_model(os.path.join(work, "empty.onnx"), 1e6, True)  # no row passes: 'kept', 'boxes' are [0, C]
    x = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
    for method in METHODS:
        p, ours = run_ours(work, "all_" + method, model, x, method)
        ref = run_ort(work, "all_" + method, model, x, method)
        assert_same(ours, ref, method)
        q = qparams(ours)  # ORT's [0, 0]: scale 1, zero point 0 (and the other tensors really calibrated)
        assert q["kept_scale"] == 1 and q["boxes_scale"] == 1 and q["kept_zero_point"] == 0, method
        assert q["logits_scale"] != 1 and q["input_scale"] != 1, method
        warn = [l for l in p.stderr.splitlines() if "empty (0 elements)" in l]
        assert len(warn) == 1 and "'boxes'" in warn[0] and "'kept'" in warn[0] and "'logits'" not in warn[0], (
            method, p.stderr[-800:])
    values_but_none_finite_still_fail(work)


def values_but_none_finite_still_fail(work):
    """The error is kept for tensors that had values, none finite (with no model written)."""
    r = np.random.default_rng(1)
    model = save(os.path.join(work, "sqrt.onnx"),
                 [helper.make_node("Sqrt", ["input"], ["root"], name="sqrt"),
                  helper.make_node("MatMul", ["root", "w"], ["out"], name="mm")],
                 [init("w", r.standard_normal((8, 4)))], ["out"])
    x = -r.uniform(1, 2, (6, 8)).astype(np.float32)  # finite data, NaN in 'root' on every sample
    for method in METHODS:
        p, ours = run_ours(work, "nan_" + method, model, x, method, check=False)
        assert p.returncode != 0 and not os.path.exists(ours), (method, p.returncode)
        err = [l for l in p.stderr.splitlines() if "[error]" in l]
        # 'root' and the MatMul's output 'out' are NaN on every sample: the first in name order is named
        assert len(err) == 1 and "tensor 'out' has no finite value on any of the 6" in err[0], (method, p.stderr[-800:])
        assert "NaN / infinite" in err[0] and "empty" not in p.stderr, (method, p.stderr[-800:])


def empty_on_the_first_sample():
    work = tmpdir()
    r = np.random.default_rng(0)
    model = save(os.path.join(work, "first.onnx"),
                 [helper.make_node("ReduceMax", ["input"], ["score"], name="rmax", axes=[1], keepdims=0),
                  helper.make_node("Greater", ["score", "thr"], ["keep"], name="gt"),
                  helper.make_node("Compress", ["input", "keep"], ["kept"], name="compress", axis=0),
                  helper.make_node("MatMul", ["kept", "w2"], ["out"], name="mm2")],
                 [init("w2", r.standard_normal((8, 4))), init("thr", 1.0)], ["out"])
    x = r.uniform(-5, 5, (10, 8)).astype(np.float32)
    x[shuffled_permutation(10, 123)[0]] = r.uniform(-0.9, 0.9, 8)  # max <= 1: 'kept' is empty on the first sample fed
    for method in ("Percentile", "Entropy"):
        _, ours = run_ours(work, "first_" + method, model, x, method, extra=", CalibStridedMinMax: 1")
        ref = run_ort(work, "first_" + method, model, x, method, extra={"CalibStridedMinMax": 1})
        assert_same(ours, ref, method)


def strided_advice():
    """ORT: batch 4 with CalibStridedMinMax 2 (8 samples per collect_data call). onnxquant refuses it for the
    histogram methods and advises a batch size; following the advice gives ORT's scales."""
    work = tmpdir()
    r = np.random.default_rng(31)
    model = os.path.join(work, "mm.onnx")
    g = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["y"], name="mm")], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])],
                          [init("w", np.eye(16))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, model)
    spread = np.array([0.2, 0.3, 1, 0.5, 3, 1, 8, 2, 0.4, 20, 1, 2, 5, 1, 40, 3], np.float32)
    x = (r.standard_normal((16, 16)) * spread[:, None]).astype(np.float32)
    for method in ("Entropy", "Percentile"):
        p, _ = run_ours(work, "refused_" + method, model, x, method, extra=", CalibStridedMinMax: 2", bs=4,
                        check=False)
        err = [l for l in p.stderr.splitlines() if "[error]" in l]
        assert p.returncode != 0 and len(err) == 1 and "CalibStridedMinMax: 2 batches per call" in err[0], p.stderr
        advised = re.search(r"set dataset\.batch_size to (\d+)", err[0])
        assert advised and int(advised.group(1)) == 8, err[0]
        _, ours = run_ours(work, "advised_" + method, model, x, method, extra=", CalibStridedMinMax: 1",
                           bs=int(advised.group(1)))
        ref = run_ort(work, "strided_" + method, model, x, method, extra={"CalibStridedMinMax": 2}, bs=4)
        assert_same(ours, ref, method)


if __name__ == "__main__":
    r = Runner()
    r.run("a tensor empty on every sample gets ORT's range [0, 0] (MinMax, Entropy, Percentile); one with values "
          "but none finite still stops the run", empty_on_every_sample)
    r.run("empty on the first sample, CalibStridedMinMax 1: ORT's histograms", empty_on_the_first_sample)
    r.run("CalibStridedMinMax k > 1 advice: batch_size k x batch_size gives ORT's scales", strided_advice)
    r.finish()
