"""Issue 8's 1.5x comparison on the harder MobileNetV2-style testdata model (testdata/digits16_mobilenet.onnx,
1800 test images): full_auto with the seed default (static ranking + minmax weights) and with gptq weights, at
tolerance 1 and 0.3 points. Every answer model is re-scored by onnxruntime (graph optimizations disabled) and must
match onnxquant's score (±0.3) and lie within the tolerance of the 8-bit reference (itself ORT-checked). Asserts
what docs/quality.md reports as measured: at tolerance 1 gptq puts no fewer parameters in 4 bits than the seed, and
the seed already keeps more than 2/3 of them in 4 bits, so 1.5x cannot be reached. At tolerance 0.3 both answers
are checked as above; the shares are printed, not compared: since gptq's symmetric Int8 weights stay in +-127
(twentieth session) its 8-bit reference scores 88.28 instead of 87.83, the band starts 0.45 points higher, and gptq
keeps 62.25 % in 4 bits against the seed's 78.07 % (it was 99.71 %, 1.28x; docs/quality.md)."""
import json
import os
import sys

import onnx

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import TESTDATA, Runner, ort_top1, run_oq, tmpdir  # noqa: E402

TEST = os.path.join(TESTDATA, "digits16_test.npz")


def full_auto(quantizer, tolerance):
    out = tmpdir()
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out,
            "model.model_path=testdata/digits16_mobilenet.onnx",
            "dataset.quantization_path=testdata/digits16_calib.npz", "dataset.test_path=testdata/digits16_test.npz",
            f"quantization.iterative_quant_parameters.accuracy_tolerance={tolerance}",
            f"quantization.onnx_extra_options.WeightQuantizer={quantizer}"])
    rep = json.load(open(os.path.join(out, "full_auto.json")))
    int8 = ort_top1(rep["int8_model"], TEST)
    assert abs(int8 - rep["scores"]["int8"]) <= 0.3, (int8, rep["scores"]["int8"])
    ans = rep["answer"]["attempt"]
    assert ans is not None, "no answer"
    a = rep["attempts"][ans]
    onnx.checker.check_model(onnx.load(a["file"]), full_check=True)
    got = ort_top1(a["file"], TEST)
    assert abs(got - a["score"]) <= 0.3, f"{a['file']}: ORT {got} vs reported {a['score']}"
    # Within the tolerance of the 8-bit reference, by onnxruntime's scores of both models (±1 image slack).
    assert got >= int8 - float(tolerance) - 100.0 / 1800 - 1e-9, (got, int8, tolerance)
    print(f"    {quantizer} tol {tolerance}: 8-bit {int8:.2f} (ORT), answer {got:.2f} (ORT), "
          f"{a['w4_percent']:.2f}% of weight parameters in 4 bits")
    return a["w4_percent"]


def ratio(tolerance):
    seed = full_auto("minmax", tolerance)
    best = full_auto("gptq", tolerance)
    print(f"    tolerance {tolerance}: gptq / seed default = {best:.2f} / {seed:.2f} = {best / seed:.3f}")
    return seed, best


def tolerance_1():
    seed, best = ratio("1.0")
    assert best >= seed, (best, seed)
    # 1.5x the seed's share would exceed 100 %: the seed alone keeps more than 2/3 of the parameters in 4 bits.
    assert seed > 100.0 / 1.5, seed


def tolerance_03():
    ratio("0.3")  # each answer ORT-checked inside its tolerance (full_auto); the shares: see the docstring


if __name__ == "__main__":
    r = Runner()
    r.run("digits16 full_auto tolerance 1: seed default vs gptq", tolerance_1)
    r.run("digits16 full_auto tolerance 0.3: seed default vs gptq", tolerance_03)
    r.finish()
