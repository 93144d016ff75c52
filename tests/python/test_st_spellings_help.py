"""Session 20's docs audit (/tmp/s20/docs): ST's older `extra_options: calib_moving_average` spelling, the hint for
ST's older `general.model_path`, full_auto's log naming the threshold it used under `tolerance_mode: relative`
(the one full_auto.json records), and `onnxquant --help` listing the other commands.

References: the documented spelling's own model (`onnx_extra_options: {CalibMovingAverage: True}`, whose numbers
test_calib_vs_ort.py / test_quant_parity.py check against onnxruntime) and the default's, which must differ here
(moving average over single-sample batches); the threshold of full_auto.json recomputed by hand from its scores."""
import json
import os
import re
import shutil

import numpy as np
import onnx
from onnx import numpy_helper

import oqtest

DIGITS = os.path.join(oqtest.TESTDATA, "digits_mobilenet.onnx")
CALIB = os.path.join(oqtest.TESTDATA, "digits_calib.npz")
TEST = os.path.join(oqtest.TESTDATA, "digits_test.npz")


def _setup():
    d = oqtest.tmpdir("oq_st_spell_")
    for f in (DIGITS, CALIB, TEST):
        shutil.copy(f, d)
    return d


def _config(d, quant_lines, name="c.yaml", model_section="model:\n  model_path: digits_mobilenet.onnx\n"):
    text = (model_section + "dataset:\n  quantization_path: digits_calib.npz\n  test_path: digits_test.npz\n"
            "  quantization_split: 0.25\n"
            "quantization:\n  quantizer: onnx_quantizer\n  granularity: per_tensor\n" + quant_lines)
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def _scales(out_dir):
    qdir = os.path.join(out_dir, "quantized_models")
    (name,) = [f for f in os.listdir(qdir) if f.endswith(".onnx")]
    m = onnx.load(os.path.join(qdir, name))
    return {i.name: numpy_helper.to_array(i).copy() for i in m.graph.initializer if i.name.endswith("_scale")}


def _run(d, cfg, out, check=True):
    return oqtest.run_oq(["--config", cfg, "--output-dir", os.path.join(d, out)], check=check, cwd=d)


def test_extra_options_calib_moving_average_is_the_documented_option():
    d = _setup()
    _run(d, _config(d, "", "plain.yaml"), "plain")
    _run(d, _config(d, "  onnx_extra_options: {CalibMovingAverage: True}\n", "doc.yaml"), "doc")
    old = _run(d, _config(d, "  extra_options: calib_moving_average\n", "old.yaml"), "old")
    as_string = _run(d, _config(d, "  onnx_extra_options: calib_moving_average\n", "str.yaml"), "str")
    plain, doc = _scales(os.path.join(d, "plain")), _scales(os.path.join(d, "doc"))
    assert set(plain) == set(doc)
    assert any(not np.array_equal(plain[k], doc[k]) for k in plain), "moving average changed nothing: weak test"
    for run, out in ((old, "old"), (as_string, "str")):
        got = _scales(os.path.join(d, out))
        assert set(got) == set(doc)
        for k in doc:
            assert np.array_equal(got[k], doc[k]), f"{out}: scale {k} {got[k]} != {doc[k]}"
        assert "CalibMovingAverage: True" in run.stderr and "older spelling" in run.stderr, run.stderr[-2000:]


def test_extra_options_other_values_are_refused():
    d = _setup()
    cases = [
        ("  extra_options: {CalibMovingAverage: True}\n", "quantization.extra_options"),
        ("  extra_options: calib_strided\n", "quantization.extra_options"),
        ("  onnx_extra_options: calib_strided\n", "quantization.onnx_extra_options"),
        ("  extra_options: calib_moving_average\n  onnx_extra_options: {CalibMovingAverage: False}\n",
         "quantization.onnx_extra_options.CalibMovingAverage"),
    ]
    for i, (lines, key) in enumerate(cases):
        p = _run(d, _config(d, lines, f"bad{i}.yaml"), f"bad{i}", check=False)
        errors = [l for l in p.stderr.splitlines() if "[error]" in l]
        assert p.returncode == 2 and len(errors) == 1 and key in errors[0], (lines, p.returncode, p.stderr)
        assert not os.path.exists(os.path.join(d, f"bad{i}", "quantized_models")), lines


def test_ort_options_not_implemented_are_named():
    d = _setup()
    ok = _run(d, _config(d, "  onnx_extra_options: {BlockSize: 0}\n", "bs0.yaml"), "bs0")
    plain = _run(d, _config(d, "", "plain.yaml"), "plain")
    a, b = _scales(os.path.join(d, "bs0")), _scales(os.path.join(d, "plain"))
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a), "BlockSize: 0 changed the model"
    for i, (lines, key, word) in enumerate((("  onnx_extra_options: {BlockSize: 32}\n", "BlockSize", "block-wise"),
                                            ("  onnx_extra_options: {DefaultTensorType: 1}\n", "DefaultTensorType",
                                             "fallback type"))):
        p = _run(d, _config(d, lines, f"ort{i}.yaml"), f"ort{i}", check=False)
        errors = [l for l in p.stderr.splitlines() if "[error]" in l]
        assert p.returncode == 2 and len(errors) == 1, p.stderr
        assert f"quantization.onnx_extra_options.{key}" in errors[0] and word in errors[0], errors[0]
        assert "did you mean" not in errors[0], errors[0]


def test_general_model_path_gets_a_hint():
    d = _setup()
    cfg = _config(d, "", "g.yaml", model_section="general:\n  model_path: digits_mobilenet.onnx\n")
    p = _run(d, cfg, "g", check=False)
    assert p.returncode == 2, p.stderr
    assert "model.model_path" in p.stderr and "general.model_path" in p.stderr, p.stderr


def test_relative_tolerance_log_names_the_threshold_used():
    d = _setup()
    it = "quantization.iterative_quant_parameters"
    for tol_mode, tol in (("relative", "1"), ("absolute", "0.5")):
        out = os.path.join(d, "fa_" + tol_mode)
        p = oqtest.run_oq(["--config", _config(d, "", "fa.yaml"), "--output-dir", out,
                           "quantization.target_opset=21", "quantization.granularity=per_channel",
                           "quantization.operating_mode=full_auto", f"{it}.metric=output_snr",
                           f"{it}.tolerance_mode={tol_mode}", f"{it}.accuracy_tolerance={tol}"], cwd=d)
        rep = json.load(open(os.path.join(out, "full_auto.json")))
        ref = rep["scores"]["int8"]
        want = ref - abs(ref) * float(tol) / 100 if tol_mode == "relative" else ref - float(tol)
        assert abs(rep["threshold"] - want) < 1e-9, (rep["threshold"], want)
        lines = [l for l in p.stderr.splitlines() if "Answer:" in l or "No mixed-precision attempt" in l]
        assert len(lines) == 1, p.stderr[-3000:]
        m = re.search(r"threshold (-?[0-9.]+)", lines[0])
        assert m and abs(float(m.group(1)) - want) < 0.006, (lines[0], want)


def test_help_lists_the_other_commands():
    p = oqtest.run_oq(["--help"])
    for cmd in ("info MODEL", "run MODEL", "eval MODEL"):
        assert cmd in p.stdout, p.stdout
    assert "experiments_outputs" in p.stdout, p.stdout


if __name__ == "__main__":
    oqtest.run_module_tests(globals())
