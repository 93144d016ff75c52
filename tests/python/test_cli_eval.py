"""`onnxquant eval`: top-1 and agreement scores against onnxruntime / numpy on the testdata models, batch sizes that
do not divide the data, and its errors (one line naming the option or the file, non-zero exit)."""
import os
import re
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oqtest import TESTDATA, Runner, ort_top1, run_oq, tmpdir  # noqa: E402

MODEL = os.path.join(TESTDATA, "digits_mobilenet.onnx")
TEST = os.path.join(TESTDATA, "digits_test.npz")


def score(args):
    p = run_oq(["eval", *args])
    m = re.fullmatch(r"(top1|agreement): ([0-9.]+)", p.stdout.strip())
    assert m, p.stdout
    return float(m.group(2))


def qdq_model():
    out = tmpdir()
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out,
            "quantization.operating_mode=default", f"model.model_path={MODEL}",
            f"dataset.quantization_path={os.path.join(TESTDATA, 'digits_calib.npz')}"])
    d = os.path.join(out, "quantized_models")
    return os.path.join(d, [f for f in os.listdir(d) if f.endswith(".onnx")][0])


def top1_and_batches():
    want = ort_top1(MODEL, TEST)
    for b in ("1", "7", "1000"):
        got = score([MODEL, "--data", TEST, "--batch-size", b])
        assert abs(got - want) < 0.006, (b, got, want)


def agreement():
    q = qdq_model()
    x = np.load(TEST)["x"]

    def argmax(path):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        return s.run(None, {s.get_inputs()[0].name: x})[0].argmax(1)

    want = 100.0 * float(np.mean(argmax(q) == argmax(MODEL)))
    got = score([q, "--data", TEST, "--metric", "agreement", "--reference", MODEL, "--batch-size", "7"])
    assert abs(got - want) < 0.3, (got, want)  # a sample or two may flip on float rounding
    assert score([MODEL, "--data", TEST, "--metric", "agreement", "--reference", MODEL]) == 100.0


def errors():
    def err(args, code, *words):
        p = run_oq(["eval", *args], check=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == code and len(lines) == 1, (p.returncode, lines)
        for w in words:
            assert w in lines[0], (w, lines[0])

    err([MODEL, "--data", TEST, "--metric", "agreement"], 2, "--reference")
    # A reference whose input does not take the data: the error names the reference model.
    mlp = os.path.join(TESTDATA, "digits_mlp.onnx")
    err([MODEL, "--data", TEST, "--metric", "agreement", "--reference", mlp], 1, f"--reference '{mlp}'", "[batch,64]")
    err([MODEL, "--data", TEST, "--batch-size", "0"], 2, "batch")
    err([os.path.join(TESTDATA, "nope.onnx"), "--data", TEST], 1, "nope.onnx")


if __name__ == "__main__":
    r = Runner()
    r.run("top1 vs onnxruntime, batch sizes 1 / 7 / 1000", top1_and_batches)
    r.run("agreement vs onnxruntime argmax", agreement)
    r.run("errors", errors)
    r.finish()
