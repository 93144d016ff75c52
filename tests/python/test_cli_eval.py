"""`onnxquant eval`: top-1 and agreement scores against onnxruntime / numpy on the testdata models, batch sizes that
do not divide the data, and its errors (one line naming the option or the file, non-zero exit). An image folder is
read with the main job's default preprocessing (rgb, scale 1, offset 0: the README), scored against numpy; a model
that preprocessing cannot feed gets an error naming the folder and what to do (it used to cite config keys that
eval does not have)."""
import os
import re
import sys

import numpy as np
import onnxruntime as ort
from onnx import TensorProto as TP, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bad_inputs_util import check_failure  # noqa: E402
from oqtest import TESTDATA, Runner, ort_top1, run_oq, save_graph, tmpdir  # noqa: E402
from test_data_preprocessing import png_bytes, save  # noqa: E402

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


def color_model(path):
    """input [N, 3, 4, 4] -> per-channel means (R, G, B) -> logits [R, B, 2]: a red image is class 0 and a blue one
    class 1 when pixels are fed as 0..255 in RGB order; scaled to [0, 1] the constant 2 (class 2) wins."""
    w = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0]], np.float32)
    g = helper.make_graph([helper.make_node("ReduceMean", ["input"], ["m"], axes=[2, 3], keepdims=0),
                           helper.make_node("MatMul", ["m", "w"], ["mw"]),
                           helper.make_node("Add", ["mw", "b"], ["logits"])], "color",
                          [helper.make_tensor_value_info("input", TP.FLOAT, ["N", 3, 4, 4])],
                          [helper.make_tensor_value_info("logits", TP.FLOAT, ["N", 3])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([0, 0, 2], np.float32), "b")])
    return save_graph(g, path)


def image_folder_defaults():
    d = tmpdir()
    model = color_model(os.path.join(d, "color.onnx"))
    rng = np.random.default_rng(5)
    images, labels = [], []
    for cls, (name, ch) in enumerate((("a_red", 0), ("b_blue", 2))):
        for k in range(4):
            img = rng.integers(0, 40, (4, 4, 3), dtype=np.uint8)
            img[:, :, ch] = rng.integers(100 + 30 * k, 256, (4, 4), dtype=np.uint8)
            if k == 3:  # one image per class the model gets wrong: the score is not all or nothing
                img[:, :, 2 - ch] = 255
            save(os.path.join(d, "imgs", name, f"{k}.png"), png_bytes(img))
            images.append(img)
            labels.append(cls)
    # numpy: pixels as they are (scale 1, offset 0), RGB, NCHW, no resize (the images have the model's size).
    x = np.stack(images).astype(np.float32).transpose(0, 3, 1, 2)
    m = x.mean(axis=(2, 3))
    want = 100.0 * float(np.mean(np.stack([m[:, 0], m[:, 2], np.full(len(m), 2.0)], 1).argmax(1) == labels))
    assert 0 < want < 100, want
    got = score([model, "--data", os.path.join(d, "imgs")])
    assert abs(got - want) < 1e-6, (got, want)


def image_folder_that_does_not_fit():
    d = tmpdir()
    for k in range(2):
        save(os.path.join(d, "imgs", "c", f"{k}.png"), png_bytes(np.full((8, 8, 3), 50 * k, np.uint8)))
    folder = os.path.join(d, "imgs")
    # The digits model takes 1 channel; eval's rgb gives 3.
    err = check_failure(d, ["eval", MODEL, "--data", folder], 1,
                        [f"image folder {folder}", "eval reads an image folder with the main job's default "
                         "preprocessing (color_mode rgb", ".npz of preprocessed samples", "operation_mode: evaluation"],
                        [MODEL])
    assert "preprocessing.color_mode /" not in err, err


if __name__ == "__main__":
    r = Runner()
    r.run("top1 vs onnxruntime, batch sizes 1 / 7 / 1000", top1_and_batches)
    r.run("agreement vs onnxruntime argmax", agreement)
    r.run("errors", errors)
    r.run("image folder: default preprocessing (rgb, scale 1) vs numpy", image_folder_defaults)
    r.run("image folder the model cannot take: the error names the folder and what to do", image_folder_that_does_not_fit)
    r.finish()
