"""Helpers for tests that check which values onnxquant feeds a model (tests/python/test_data_inputs.py,
test_data_arrays.py): a "probe" model sends each input element through its own Gather -> Mul, so the
calibrated (MinMax, Int8) scale and zero point of Gather output k reveal element k of the fed data; images
and arrays are written with numpy-made bytes (no imaging library).
"""
import glob
import json
import os
import struct

import numpy as np
import onnx
from onnx import TensorProto as TP, helper, numpy_helper

from oqtest import run_oq
from test_data_preprocessing import png_bytes  # noqa: F401 (the one PNG writer of the tests)


def probe_model(path, shape, dtype=TP.FLOAT):
    """Input 'input' of `shape` ('N' for the batch); element k -> Gather -> Mul(2) -> output o<k>. An integer
    input is Cast to float first (the Cast output is what the probe reads)."""
    k_n = int(np.prod(shape[1:]))
    src = "input"
    nodes, inits = [], [numpy_helper.from_array(np.array([-1, k_n], np.int64), "shp"),
                        numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    if dtype != TP.FLOAT:
        nodes.append(helper.make_node("Cast", ["input"], ["input_f"], to=TP.FLOAT))
        src = "input_f"
    nodes.append(helper.make_node("Reshape", [src, "shp"], ["flat"]))
    outs = []
    for k in range(k_n):
        inits.append(numpy_helper.from_array(np.array(k, np.int64), f"i{k}"))
        nodes.append(helper.make_node("Gather", ["flat", f"i{k}"], [f"g{k}"], axis=1))
        nodes.append(helper.make_node("Mul", [f"g{k}", "two"], [f"o{k}"]))
        outs.append(helper.make_tensor_value_info(f"o{k}", TP.FLOAT, [shape[0]]))
    g = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("input", dtype, shape)], outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def config(model, data, preprocessing=None, dataset=None):
    cfg = {
        "model": {"model_path": model},
        "dataset": {"quantization_path": data, **(dataset or {})},
        "quantization": {"quantizer": "onnx_quantizer", "export_dir": "q", "target_opset": 17,
                         "operating_mode": "default",
                         "onnx_quant_parameters": {"activType": "Int8", "calibrate_method": "MinMax"}},
    }
    if preprocessing:
        cfg["preprocessing"] = preprocessing
    return cfg


def run(d, cfg, tag="run"):
    """Runs onnxquant on `cfg` (a dict) in d; returns (exit code, stderr, output folder)."""
    cpath = os.path.join(d, tag + ".yaml")
    with open(cpath, "w") as f:
        json.dump(cfg, f)
    out = os.path.join(d, "out_" + tag)
    p = run_oq(["--config", cpath, "--output-dir", out, "--threads", "1"], check=False, cwd=d)
    return p.returncode, p.stderr, out


def fed(out, n):
    """Element k of the (single-sample, or one nonzero sample per element) calibration data, from Gather output
    k's Int8 scale s and zero point z: MinMax includes 0, so the range is [v, 0] or [0, v] and v is its end
    farther from 0: (-128 - z) * s or (127 - z) * s (a range [0, 0] gives s = 1, z = 0)."""
    q = glob.glob(os.path.join(out, "q", "*.onnx"))
    assert len(q) == 1, q
    init = {i.name: numpy_helper.to_array(i) for i in onnx.load(q[0]).graph.initializer}
    v = np.zeros(n)
    for k in range(n):
        s, z = float(init[f"g{k}_scale"]), int(init[f"g{k}_zero_point"])
        lo, hi = (-128 - z) * s, (127 - z) * s
        v[k] = 0.0 if (s == 1.0 and z == 0) else (lo if abs(lo) > abs(hi) else hi)
    return v


def errors(stderr, level="error"):
    return [ln for ln in stderr.splitlines() if ln.startswith(f"[{level}]")]


# ------------------------------------------------------------------------------------------ image writers


def bmp_bytes(a, top_down=False):
    """24-bit BMP of an RGB uint8 [H, W, 3] array: rows of BGR padded to 4 bytes, stored bottom row first, or
    top row first with a negative height (BITMAPINFOHEADER biHeight < 0) when top_down."""
    h, w = a.shape[:2]
    stride = (w * 3 + 3) // 4 * 4
    order = range(h) if top_down else range(h - 1, -1, -1)
    rows = b"".join(a[y, :, ::-1].tobytes() + b"\x00" * (stride - w * 3) for y in order)
    info = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(rows), 0, 0, 54) + info + rows


def save(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path
