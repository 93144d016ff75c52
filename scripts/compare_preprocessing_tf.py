#!/usr/bin/env python3
"""onnxquant's image preprocessing against Keras / TensorFlow (what ST's model zoo loads image folders with).

    python3 scripts/compare_preprocessing_tf.py [BUILD_DIR]      (default build)

Creates its own venv in build/tf-venv or $OQ_TF_VENV (tensorflow-cpu, pillow; not the project's test venv: TensorFlow is large
and only this check needs it), writes PNG images of awkward sizes and aspect ratios into a temp folder (3 class
sub-folders), and compares, for every interpolation x aspect ratio x target size, the tensors onnxquant feeds
(tests/oq_preprocess_dump) with keras.utils.image_dataset_from_directory(crop_to_aspect_ratio / pad_to_aspect_ratio)
followed by the same rescaling. Prints the largest difference per combination in 0..255 pixel levels; exit code 1
when one exceeds 0.5 levels (RGB; grayscale differs by up to 1 level: stb's luma rounding vs TF's).
The results of a run are in docs/conformance.md ("Image preprocessing vs Keras").
"""
import itertools
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build"))
VENV = os.environ.get("OQ_TF_VENV", os.path.join(BUILD, "tf-venv"))
DUMP = os.path.join(BUILD, "tests", "oq_preprocess_dump")
SCALE, OFFSET = 1 / 127.5, -1.0
SIZES = [("cats", 37, 53), ("cats", 200, 120), ("cats", 128, 128), ("cats", 7, 300), ("dogs", 500, 333),
         ("dogs", 161, 97), ("dogs", 33, 200), ("birds", 160, 96), ("birds", 255, 131)]  # (class, width, height)


def in_venv():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "tensorflow-cpu", "pillow", "numpy"], check=True)
    os.execv(py, [py, os.path.abspath(__file__), BUILD, "--in-venv"])


def main():
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import keras
    from PIL import Image

    work = tempfile.mkdtemp(prefix="oq_tf_pre_")
    root = os.path.join(work, "images")
    rng = np.random.default_rng(1234)
    for k, (cls, w, h) in enumerate(SIZES):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        chans = [127 + 90 * np.sin(x / (3 + c * 2.1) + y / (5.3 + c)) * np.cos(y / (7.1 + c)) + rng.normal(0, 25, (h, w))
                 for c in range(3)]
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        Image.fromarray(np.clip(np.stack(chans, -1), 0, 255).round().astype(np.uint8)).save(
            os.path.join(root, cls, f"{k}_{w}x{h}.png"))
    worst = 0.0
    for (H, W), interp, aspect in itertools.product([(128, 128), (96, 160)], ["nearest", "bilinear", "bicubic", "area"],
                                                    ["fit", "crop", "padding"]):
        out = os.path.join(work, "out")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        subprocess.run([DUMP, "dump", "--data", root, "--out", out, "--input", f"input:float:-1,3,{H},{W}", "--interp",
                        interp, "--aspect", aspect, "--color", "rgb", "--layout", "nchw", "--scale", repr(SCALE),
                        "--offset", repr(OFFSET), "--no-shuffle", "--batch", "1", "--threads", "1"],
                       check=True, capture_output=True)
        names = open(os.path.join(out, "names.txt")).read().split("\n")[:-1]
        ours = [np.load(os.path.join(out, f"input_{k}.npy"))[0] for k in range(len(names))]
        ds = keras.utils.image_dataset_from_directory(
            root, image_size=(H, W), interpolation=interp, crop_to_aspect_ratio=aspect == "crop",
            pad_to_aspect_ratio=aspect == "padding", shuffle=False, batch_size=None, verbose=False)
        assert [os.path.relpath(p, root) for p in ds.file_paths] == [os.path.relpath(p, root) for p in names]
        diff = 0.0
        for o, (x, _) in zip(ours, ds):
            ref = np.transpose(x.numpy().astype(np.float32) * np.float32(SCALE) + np.float32(OFFSET), (2, 0, 1))
            diff = max(diff, float(np.abs(o.astype(np.float64) - ref).max() / SCALE))
        worst = max(worst, diff)
        print(f"{H}x{W} {interp:8s} {aspect:7s} max |onnxquant - keras| = {diff:.3f} levels", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"largest difference: {worst:.3f} levels")
    return 0 if worst <= 0.5 else 1


if __name__ == "__main__":
    if "--in-venv" not in sys.argv:
        in_venv()
    sys.exit(main())
