"""Calibration arrays that onnxquant accepts but that differ from what ONNX Runtime would take (docs/config.md,
"Which arrays are used, and their types"): each run succeeds and says once what it did — an info line for an
exact conversion, a warning for a rounding one and for arrays it ignores — and the model equals the one made
from the arrays saved with the right type / without the extra arrays.
Run: OQ_BIN=build/onnxquant .venv/bin/python tests/python/test_data_messages.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bad_inputs_data import ids, tok_model  # noqa: E402
from bad_inputs_util import CALIB_FLAT, MLP, base_config, copy_in, sha, write_config  # noqa: E402
from oqtest import run_oq, tmpdir, run_module_tests  # noqa: E402


def quantize(d, model, arrays, tag):
    """Runs the default mode on `arrays` (an .npz); returns (stderr lines, path of the written model)."""
    data = os.path.join(d, f"{tag}.npz")
    np.savez(data, **arrays)
    cpath = write_config(d, base_config(model, data), f"{tag}.yaml")
    out = os.path.join(d, f"out_{tag}")
    p = run_oq(["--config", cpath, "--output-dir", out, "--threads", "1"], cwd=d)
    base = os.path.splitext(os.path.basename(model))[0]
    q = os.path.join(out, "quantized_models", base + "_quant_qdq_pc.onnx")
    assert os.path.exists(q), p.stderr[-2000:]
    return p.stderr.splitlines(), q


def lines_with(lines, level, *words):
    return [ln for ln in lines if ln.startswith(f"[{level}]") and all(w in ln for w in words)]


def same_model_as(d, model, arrays, q):
    _, ref = quantize(d, model, arrays, "reference")
    assert sha(q) == sha(ref), "the model differs from the one made from the arrays as ONNX Runtime takes them"


def test_int32_ids_for_int64_input():
    d = tmpdir()
    m = tok_model(d)
    a = ids()
    lines, q = quantize(d, m, {"ids": a.astype(np.int32)}, "i32")
    hit = lines_with(lines, "info", "i32.npz", "array 'ids' (int32) is converted to int64", "model input 'ids'")
    assert len(hit) == 1, "\n".join(lines)
    assert not lines_with(lines, "warning"), "\n".join(lines)
    same_model_as(d, m, {"ids": a}, q)


def test_float64_for_float_input_warns():
    d = tmpdir()
    m = copy_in(d, MLP)
    x = np.load(CALIB_FLAT)["x"]
    lines, q = quantize(d, m, {"x": x.astype(np.float64)}, "f64")
    hit = lines_with(lines, "warning", "f64.npz", "array 'x' (float64) is converted to float32",
                     "model input 'input'", "round")
    assert len(hit) == 1, "\n".join(lines)
    same_model_as(d, m, {"x": x}, q)


def test_uint8_for_float_input_is_exact():
    d = tmpdir()
    m = copy_in(d, MLP)
    x = (np.load(CALIB_FLAT)["x"] * 16).clip(0, 255).astype(np.uint8)
    lines, q = quantize(d, m, {"x": x}, "u8")
    assert len(lines_with(lines, "info", "array 'x' (uint8) is converted to float32", "exactly")) == 1, "\n".join(lines)
    assert not lines_with(lines, "warning"), "\n".join(lines)
    same_model_as(d, m, {"x": x.astype(np.float32)}, q)


def test_extra_arrays_and_x_next_to_named_arrays_are_named():
    """`x` next to an array named after the (single) input, plus an unrelated array: the named array is used,
    `x` and the other one are named in one warning."""
    d = tmpdir()
    m = copy_in(d, MLP)
    x = np.load(CALIB_FLAT)["x"]
    lines, q = quantize(d, m, {"input": x, "x": x * 100, "unused": np.ones((200, 3), np.float32),
                               "y": np.zeros(200, np.int64)}, "extra")
    hit = lines_with(lines, "warning", "extra.npz", "ignoring array(s) 'x', 'unused'", "inputs: input",
                     "'x' is used only")
    assert len(hit) == 1, "\n".join(lines)
    same_model_as(d, m, {"x": x}, q)


def test_extra_array_next_to_x():
    d = tmpdir()
    m = copy_in(d, MLP)
    x = np.load(CALIB_FLAT)["x"]
    lines, _ = quantize(d, m, {"x": x, "x_test": x}, "extra_x")
    hit = lines_with(lines, "warning", "extra_x.npz", "ignoring array(s) 'x_test'")
    assert len(hit) == 1 and "'x' is used only" not in hit[0], "\n".join(lines)


if __name__ == "__main__":
    run_module_tests(globals())
