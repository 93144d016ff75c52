"""The data a run uses, counted and checked as docs/config.md says (QA report of the fourteenth session):
- dataset.skip_bad_files: undecodable images are left out when the folder is opened, named in a warning, and
  every report (log, inspection.json / .html, evaluation) counts the samples actually used;
- a fixed batch dimension that the inspected subset or the evaluation set does not fill is refused before
  calibration, naming the key and a value that works (which then works);
- NaN rows in evaluation data are named in one warning and scored as numpy's argmax scores them;
- labels: integers of shape [N] or [N,1]; bool, float and other shapes are refused naming the file and 'y'.
Each expectation is computed independently (onnxruntime / numpy, or by hand).
Run: OQ_BIN=build/onnxquant .venv/bin/python tests/python/test_data_checks.py
"""
import json
import os
import re
import struct
import sys
import zlib

import numpy as np
import onnxruntime as ort
from onnx import TensorProto as TP, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bad_inputs_data import fixed_batch_model  # noqa: E402
from bad_inputs_util import MOBILENET, base_config, copy_in, listing, write_config  # noqa: E402
from oqtest import TESTDATA, Runner, run_oq, tmpdir  # noqa: E402

TEST = os.path.join(TESTDATA, "digits_test.npz")
SCALE = 240  # pixel p is fed as p / 240


def png_gray(a):
    a = np.ascontiguousarray(a, dtype=np.uint8)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(a.shape[0]))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", a.shape[1], a.shape[0], 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def image_folder(d):
    """20 decodable 8x8 digit PNGs (2 per class folder 0..9) and one undecodable 'broken.png' in folder 3.
    Returns (folder, pixels [20, 8, 8] uint8, labels [20])."""
    t = np.load(TEST)
    root = os.path.join(d, "imgs")
    pix, lab = [], []
    for c in range(10):
        os.makedirs(os.path.join(root, str(c)))
        for k, i in enumerate(np.flatnonzero(t["y"] == c)[:2]):
            p = np.round(t["x"][i, 0] * 16).astype(np.uint8) * 15  # 0..240
            with open(os.path.join(root, str(c), f"img_{k}.png"), "wb") as f:
                f.write(png_gray(p))
            pix.append(p)
            lab.append(c)
    with open(os.path.join(root, "3", "broken.png"), "wb") as f:
        f.write(b"this is not an image")
    return root, np.stack(pix), np.array(lab)


def ort_top1_pixels(model, pix, labels):
    x = (pix.astype(np.float32) * np.float32(1 / SCALE))[:, None]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    out = s.run(None, {s.get_inputs()[0].name: x})[0]
    return 100.0 * float(np.mean(out.argmax(1) == labels))


def image_config(model, folder, **quant):
    cfg = base_config(model, folder, **quant)
    cfg["dataset"].update(test_path=folder, skip_bad_files=True, seed=0)
    cfg["preprocessing"]["rescaling"] = {"scale": f"1/{SCALE}", "offset": 0}
    return cfg


def run_job(d, cfg, out="out", check=True, extra=()):
    cpath = write_config(d, cfg, out + ".yaml")
    return run_oq(["--config", cpath, "--output-dir", os.path.join(d, out), "--threads", "2", *extra], check=check,
                  cwd=d)


def lines(p, word):
    return [ln for ln in p.stderr.splitlines() if word in ln]


# ------------------------------------------------------------------------------------------ 1. skip_bad_files
def test_skip_bad_files_counts():
    d = tmpdir()
    model = copy_in(d, MOBILENET)
    folder, pix, labels = image_folder(d)
    cfg = image_config(model, folder, mode="inspection", iterative_quant_parameters={"inspection_split": 0.5})
    cfg["operation_mode"] = "chain_qe"
    p = run_job(d, cfg)
    err = p.stderr
    # Named once per data set opened (calibration, then the test set), with the reason.
    warn = lines(p, "broken.png")
    assert len(warn) == 2 and all(w.startswith("[warning]") and "1 of the 21 selected images" in w
                                  and "skip_bad_files" in w for w in warn), err
    assert "(20 of 21 images, 1 undecodable skipped, 10 classes, 8x8)" in lines(p, "Calibration data:")[0], err
    assert re.search(r"Calibrated \d+ tensors on 20 samples", err), err
    assert "activations on the first 10 of 20 calibration samples" in err, err
    rep = json.load(open(os.path.join(d, "out", "inspection.json")))["settings"]
    assert (rep["calibration_samples"], rep["inspected_samples"]) == (20, 10), (rep["calibration_samples"],
                                                                                rep["inspected_samples"])
    html = open(os.path.join(d, "out", "inspection.html")).read()
    assert "Activations measured on 10 of 20 calibration samples" in html
    # The score is over the 20 images that decode: ONNX Runtime on the quantized model, the same 20 images.
    q = os.path.join(d, "out", "quantized_models", "digits_mobilenet_quant_qdq_pc.onnx")
    ev = lines(p, "Evaluation of")
    assert len(ev) == 1 and "(20 of 21 images, 1 undecodable skipped" in ev[0], err
    assert ev[0].endswith(f"top1: {ort_top1_pixels(q, pix, labels):.2f}"), (ev[0], ort_top1_pixels(q, pix, labels))
    # The float model, evaluated alone: ONNX Runtime's top-1 over the 20.
    cfg["operation_mode"] = "evaluation"
    p = run_job(d, cfg, "out_eval")
    ev = lines(p, "Evaluation of")
    assert ev[0].endswith(f"top1: {ort_top1_pixels(model, pix, labels):.2f}"), ev


def test_skip_bad_files_all_broken():
    d = tmpdir()
    model = copy_in(d, MOBILENET)
    root = os.path.join(d, "imgs", "0")
    os.makedirs(root)
    for k in range(2):
        open(os.path.join(root, f"b{k}.png"), "wb").write(b"garbage")
    p = run_job(d, image_config(model, os.path.join(d, "imgs")), check=False)
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
    assert p.returncode == 1 and len(err) == 1, p.stderr
    assert "none of the 2 selected images can be decoded" in err[0] and "b0.png" in err[0], err


# ------------------------------------------------------------------------------------------ 2. fixed batch
def fixed_batch_data(d, rows, labels=False, name="data.npz"):
    a = {"x": np.random.default_rng(rows).standard_normal((rows, 3, 10, 6)).astype(np.float32)}
    if labels:
        a["y"] = np.zeros(rows, np.int64)
    path = os.path.join(d, name)
    np.savez(path, **a)
    return path


def assert_refused_before_calibration(d, p, words):
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
    assert p.returncode == 2 and len(errors) == 1, p.stderr
    for w in words:
        assert w in errors[0], f"'{w}' not in {errors[0]}"
    for w in ("Calibrated", "Step 1", "model written", "Removed "):
        assert not [ln for ln in p.stderr.splitlines() if w in ln and not ln.startswith("[error]")], p.stderr
    assert listing(os.path.join(d, "out")) == {"onnxquant.log"}, listing(os.path.join(d, "out"))
    return errors[0]


def test_fixed_batch_inspection_split():
    """200 calibration samples, batch 4, inspection_split 0.33: 66 samples, the last batch would hold 2. Refused
    before calibration with a split that works; that split then inspects 64 samples."""
    d = tmpdir()
    model = fixed_batch_model(d, 4)
    cfg = base_config(model, fixed_batch_data(d, 200), mode="inspection",
                      iterative_quant_parameters={"inspection_split": 0.33})
    cfg["dataset"]["batch_size"] = 4
    p = run_job(d, cfg, check=False)
    err = assert_refused_before_calibration(d, p, [
        "first 66 of", "data.npz", "fixed batch dimension of 4", "66 samples",
        "set quantization.iterative_quant_parameters.inspection_split: 0.32 (64 of the 200 calibration samples)"])
    split = float(re.search(r"inspection_split: ([0-9.]+)", err).group(1))
    cfg["quantization"]["iterative_quant_parameters"]["inspection_split"] = split
    run_job(d, cfg, "out_ok")
    rep = json.load(open(os.path.join(d, "out_ok", "inspection.json")))["settings"]
    assert rep["inspected_samples"] == 64 == int(np.floor(200 * split)), rep["inspected_samples"]


def test_fixed_batch_test_set_chain_qe():
    """chain_qe with a 358-row test set and batch 4: refused before calibration, naming dataset.test_path and
    the counts that work."""
    d = tmpdir()
    model = fixed_batch_model(d, 4)
    cfg = base_config(model, fixed_batch_data(d, 200))
    cfg["operation_mode"] = "chain_qe"
    cfg["dataset"].update(batch_size=4, test_path=fixed_batch_data(d, 358, labels=True, name="test.npz"))
    p = run_job(d, cfg, check=False)
    assert_refused_before_calibration(d, p, ["test.npz (358 of 358 rows, labelled)", "fixed batch dimension of 4",
                                             "dataset.test_path needs a multiple of 4 samples (356 or 360)"])
    # Test data without labels: refused up front too.
    cfg["dataset"]["test_path"] = fixed_batch_data(d, 360, name="nolabels.npz")
    import shutil
    shutil.rmtree(os.path.join(d, "out"))
    p = run_job(d, cfg, check=False)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
    assert p.returncode == 1 and len(errors) == 1 and "nolabels.npz" in errors[0] and "labels" in errors[0], p.stderr
    assert not lines(p, "Calibrated"), p.stderr


def test_fixed_batch_test_set_full_auto():
    d = tmpdir()
    model = fixed_batch_model(d, 4)
    cfg = base_config(model, fixed_batch_data(d, 200), mode="full_auto")
    cfg["dataset"].update(batch_size=4, test_path=fixed_batch_data(d, 358, labels=True, name="test.npz"))
    p = run_job(d, cfg, check=False)
    assert_refused_before_calibration(d, p, ["test.npz", "dataset.test_path needs a multiple of 4 samples"])


# ------------------------------------------------------------------------------------------ 3. NaN rows
def double_model(d):
    """x [N, 4] -> Mul by 2 -> out [N, 4]: a NaN stays in its own column."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["out"], name="mul")], "double",
                          [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("out", TP.FLOAT, ["N", 4])], [two])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = os.path.join(d, "double.onnx")
    open(path, "wb").write(m.SerializeToString())
    return path


def test_eval_nan_rows_warned_and_scored_as_numpy():
    d = tmpdir()
    model = double_model(d)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 4)).astype(np.float32)
    y = rng.integers(0, 4, 12)
    x[2] = [5, 1, np.nan, 3]   # numpy's argmax: 2 (the NaN); label 2
    y[2] = 2
    x[7, 0] = np.inf           # argmax 0; label 0
    y[7] = 0
    x[9] = [np.nan] * 4        # argmax 0; label 1
    y[9] = 1
    data = os.path.join(d, "nan.npz")
    np.savez(data, x=x, y=y)
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    want = 100.0 * float(np.mean(s.run(None, {"x": x})[0].argmax(1) == y))
    cfg = {"operation_mode": "evaluation", "model": {"model_path": model}, "dataset": {"test_path": data}}
    p = run_job(d, cfg)
    warn = lines(p, "NaN or infinite")
    assert len(warn) == 1 and warn[0].startswith("[warning]"), p.stderr
    assert "nan.npz rows 2, 7, 9 (3 of 12 samples)" in warn[0] and "input 'x'" in warn[0], warn
    ev = lines(p, "Evaluation of")
    assert ev[0].endswith(f"top1: {want:.2f}"), (ev, want)
    # The eval command, with the agreement metric (two passes over the data): one warning too.
    p = run_oq(["eval", model, "--data", data, "--metric", "agreement", "--reference", model], cwd=d)
    assert len(lines(p, "NaN or infinite")) == 1, p.stderr
    assert p.stdout.strip() == "agreement: 100.00", p.stdout


# ------------------------------------------------------------------------------------------ 4. labels
def eval_labels(d, y, tag):
    data = os.path.join(d, f"{tag}.npz")
    np.savez(data, x=np.load(TEST)["x"], y=y)
    cfg = {"operation_mode": "evaluation", "model": {"model_path": MOBILENET}, "dataset": {"test_path": data}}
    return run_job(d, cfg, "out_" + tag, check=False)


def test_labels_n_by_1_read_as_n():
    d = tmpdir()
    y = np.load(TEST)["y"]
    s = ort.InferenceSession(MOBILENET, providers=["CPUExecutionProvider"])
    want = 100.0 * float(np.mean(s.run(None, {"input": np.load(TEST)["x"]})[0].argmax(1) == y))
    for tag, labels in (("n", y), ("n1", y.reshape(-1, 1)), ("n1_int32", y.reshape(-1, 1).astype(np.int32))):
        p = eval_labels(d, labels, tag)
        assert p.returncode == 0, p.stderr
        ev = lines(p, "Evaluation of")
        assert ev[0].endswith(f"top1: {want:.2f}"), (tag, ev, want)


def test_labels_refused():
    d = tmpdir()
    y = np.load(TEST)["y"]
    cases = {"bool": (y % 2).astype(bool), "float": y.astype(np.float32), "onehot": np.eye(10, dtype=np.int64)[y],
             "n2": np.stack([y, y], 1), "n11": y.reshape(-1, 1, 1)}
    for tag, labels in cases.items():
        p = eval_labels(d, labels, tag)
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
        assert p.returncode == 1 and len(errors) == 1, (tag, p.stderr)
        want = f"{tag}.npz: labels 'y' must be an integer array of shape [N] or [N,1]"
        assert want in errors[0], (tag, errors[0])
        assert f"of shape {list(labels.shape)}".replace(" ", "") in errors[0].replace(" ", ""), (tag, errors[0])


if __name__ == "__main__":
    r = Runner()
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            r.run(name, fn)
    r.finish()
