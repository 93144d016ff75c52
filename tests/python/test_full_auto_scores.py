"""full_auto's inputs to the search, against independent references: the score an `evaluator_command` prints
(a plain decimal number, read whatever the locale; anything else refused, naming the line and the command) and
`ranking: sensitivity` (exactly the first 64 calibration samples at any batch size, each SNR recomputed here with
onnxruntime and numpy's 4-bit weights)."""
import json
import os
import shlex
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import TESTDATA, ort_session, run_module_tests, run_oq, tmpdir  # noqa: E402

CONFIG = "examples/digits/user_config.yaml"
MLP = ["model.model_path=testdata/digits_mlp.onnx", "dataset.quantization_path=testdata/digits_calib_flat.npz",
       "dataset.test_path=testdata/digits_test_flat.npz"]


def full_auto_with_evaluator(out, command, check=True):
    return run_oq(["--config", CONFIG, "--output-dir", out, *MLP,
                   "quantization.iterative_quant_parameters.metric=evaluator_command",
                   f"quantization.iterative_quant_parameters.evaluator_command={json.dumps(command)}"], check=check)


def printing(*lines):
    """A command printing `lines` (and reading nothing: {model} is in a comment)."""
    return "printf '%s\\n' " + " ".join(shlex.quote(line) for line in lines) + " # {model}"


def test_evaluator_reads_plain_decimals():
    """The last non-blank line, surrounding white space allowed, is the score: every attempt gets exactly the
    printed value (hand-computed: ' +9.75e1 ' is 97.5), with other lines and blank lines before and after it."""
    for line, want in [("  +9.75e1\t", 97.5), ("96.", 96.0), ("-.5", -0.5), ("97", 97.0)]:
        out = tmpdir()
        full_auto_with_evaluator(out, printing("evaluating the model...", "accuracy:", line, "", " "))
        rep = json.load(open(os.path.join(out, "full_auto.json")))
        scores = [rep["scores"]["float"], rep["scores"]["int8"]] + [a["score"] for a in rep["attempts"]]
        assert all(s == want for s in scores), (line, scores)


def test_evaluator_refuses_anything_else():
    """A decimal comma (what a de_DE / fr_FR locale prints: the score would lose its fraction), trailing text,
    hexadecimal, nan and infinities, a percent sign, an overflowing exponent: exit 1, one error line quoting the line
    and the command, and no model or report left (the run is rolled back)."""
    for line, words in [("99,44", ["decimal comma", "LC_NUMERIC=C"]), ("12abc", ["not a plain decimal number"]),
                        ("0x1A", ["not a plain decimal number"]), ("nan", ["not a plain decimal number"]),
                        ("-inf", ["not a plain decimal number"]), ("inf", ["not a plain decimal number"]),
                        ("99.44%", ["not a plain decimal number"]), ("1e999", ["not a finite number"]),
                        ("97.5 (top1)", ["not a plain decimal number"])]:
        out = tmpdir()
        cmd = printing("accuracy:", line)
        p = full_auto_with_evaluator(out, cmd, check=False)
        errors = [e for e in p.stderr.splitlines() if e.startswith("[error]")]
        assert p.returncode == 1 and len(errors) == 1, (line, p.returncode, p.stderr[-1500:])
        shown = line.replace("\\", "\\\\").replace("'", "\\'")
        assert f"evaluator_command printed '{shown}' as its last line, not a score" in errors[0], errors[0]
        assert cmd.split("{model}")[0] in errors[0] and all(w in errors[0] for w in words), errors[0]
        left = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
        assert left == ["onnxquant.log"], (line, left)


def int4_weight(w, axis):
    """numpy's 4-bit image of a weight as quantize_static computes it (symmetric Int4, per channel on `axis`):
    scale = 2 * max|w| / 15, q = clip(round(w / scale), -8, 7)."""
    red = tuple(i for i in range(w.ndim) if i != axis)
    absmax = np.abs(w).max(axis=red, keepdims=True).astype(np.float32)
    scale = (absmax * np.float32(2) / np.float32(15)).astype(np.float32)
    scale[scale == 0] = 1
    return (np.clip(np.round(w / scale), -8, 7) * scale).astype(np.float32)


def weight_axes(model):
    """The per-channel axis of every Conv / Gemm / MatMul weight (ORT's: 0 for Conv and Gemm with transB, else 1)."""
    axes = {}
    for n in model.graph.node:
        if n.op_type == "Conv":
            axes[n.input[1]] = 0
        elif n.op_type in ("Gemm", "MatMul"):
            tb = any(a.name == "transB" and a.i for a in n.attribute)
            axes[n.input[1]] = 0 if tb else 1
    return axes


def sensitivity_run(model, calib, test, batch, extra=()):
    out = tmpdir()
    run_oq(["--config", CONFIG, "--output-dir", out, f"model.model_path={model}", f"dataset.quantization_path={calib}",
            f"dataset.test_path={test}", "quantization.iterative_quant_parameters.ranking=sensitivity",
            f"dataset.batch_size={batch}", *extra])
    return out, json.load(open(os.path.join(out, "full_auto.json")))["sensitivity"]


def ort_snrs(folded, calib, samples):
    """Each weight's SNR (dB, all outputs of the listed samples) with that weight alone in 4 bits, by onnxruntime."""
    m = onnx.load(folded)
    x = np.load(calib)["x"]
    rows = [int(s.rsplit(" row ", 1)[1]) for s in samples]
    feed = x[rows]
    ref = ort_session(folded).run(None, {m.graph.input[0].name: feed})
    inits = {t.name: t for t in m.graph.initializer}
    axes, snr = weight_axes(m), {}
    for name, axis in axes.items():
        if name not in inits:
            continue
        w = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array(int4_weight(w, axis), name))
        path = os.path.join(tmpdir(), "w4.onnx")
        onnx.save(m, path)
        got = ort_session(path).run(None, {m.graph.input[0].name: feed})
        inits[name].CopyFrom(numpy_helper.from_array(w, name))
        sig = sum(float(np.sum(r.astype(np.float64) ** 2)) for r in ref)
        noise = sum(float(np.sum((r.astype(np.float64) - g) ** 2)) for r, g in zip(ref, got))
        snr[name] = 10 * np.log10(sig / noise)
    return snr


def test_sensitivity_uses_exactly_64_samples():
    """64 samples listed at batch sizes 1, 5 and 7 (the last batch cut short: 65 and 70 were used before), the same
    samples, and each SNR equal to onnxruntime's on those samples (±0.01 dB; between batch sizes within 1e-4 dB:
    Gemm's summation order may change with the row count, docs/config.md)."""
    calib = os.path.join(TESTDATA, "digits_calib.npz")
    runs = {b: sensitivity_run("testdata/digits_mobilenet.onnx", "testdata/digits_calib.npz",
                               "testdata/digits_test.npz", b) for b in (1, 5, 7)}
    first = runs[1][1]
    want = ort_snrs(os.path.join(runs[1][0], "digits_mobilenet_folded.onnx"), calib, first["samples"])
    assert set(want) == set(first["snr_db"]), (sorted(want), sorted(first["snr_db"]))
    for b, (_, s) in runs.items():
        assert len(s["samples"]) == 64 and s["samples"] == first["samples"], (b, len(s["samples"]))
        for name, v in s["snr_db"].items():
            assert abs(v - want[name]) < 0.01, (b, name, v, want[name])
            assert abs(v - first["snr_db"][name]) < 1e-4, (b, name, v, first["snr_db"][name])


def test_sensitivity_fixed_batch():
    """A model whose batch dimension is fixed at 5: the largest multiple of 5 up to 64, 60 samples (65 before)."""
    d = tmpdir()
    m = onnx.load(os.path.join(TESTDATA, "digits_mobilenet.onnx"))
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = 5
    path = os.path.join(d, "b5.onnx")
    onnx.save(m, path)
    _, s = sensitivity_run(path, "testdata/digits_calib.npz", "testdata/digits_test.npz", 5)
    assert len(s["samples"]) == 60, len(s["samples"])


if __name__ == "__main__":
    run_module_tests(globals())
