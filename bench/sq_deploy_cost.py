#!/usr/bin/env python3
"""Deployment cost of SmoothQuant's unfoldable divisions (docs/quality.md, "SmoothQuant deployment cost").

Run from the repository root with the test venv and a built build/onnxquant (OQ_BIN to use another):

    nice .venv/bin/python bench/sq_deploy_cost.py MODEL.onnx CALIB.npz|--synthetic N [--act Int8|UInt8] [--runs 200]

Quantizes MODEL in default mode (per channel, Int8 weights, the given activation type, target_opset 13 or the
model's opset if higher) without SmoothQuant and with SmoothQuant (alpha 0.5) in each SmoothQuantUnfolded mode
(mul, conv, skip). For each model: the file size; the op histogram of onnxruntime's EXTENDED-optimised graph
(QLinearConv, float Conv / Mul left, Q, DQ); the output SNR against the float model on the calibration data
(ORT_DISABLE_ALL); the median latency in onnxruntime (EXTENDED, 1 thread, batch 1, the models run interleaved).
--synthetic N: N low-frequency random images in [-1, 1] of the model's NCHW input shape (seed 0) instead of an .npz
(for models without data, such as ST's model-zoo files: the SNR then compares the modes only).
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("OQ_BIN", os.path.join(ROOT, "build", "onnxquant"))
ort.set_default_logger_severity(3)


def options(level, path=None):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    if path:
        so.optimized_model_filepath = path
    return so


def quantize(model, calib, act, extra, out, opset):
    cfg = os.path.join(out, "user_config.yaml")
    ex = "".join(f"\n    {k}: {v}" for k, v in extra.items())
    with open(cfg, "w") as f:
        f.write(f"""model: {{model_path: {os.path.abspath(model)}}}
dataset: {{quantization_path: {os.path.abspath(calib)}}}
preprocessing: {{rescaling: {{scale: 1, offset: 0}}}}
quantization:
  granularity: per_channel
  target_opset: {opset}
  export_dir: qm
  operating_mode: default
  onnx_quant_parameters: {{weightType: Int8, activType: {act}, calibrate_method: MinMax}}
  onnx_extra_options:
    WeightSymmetric: True
    ActivationSymmetric: False{ex}
""")
    run_dir = os.path.join(out, "run")
    subprocess.run([BIN, "--config", cfg, "--output-dir", run_dir, "--threads", "1"], check=True,
                   capture_output=True, text=True)
    qd = os.path.join(run_dir, "qm")
    return os.path.join(qd, next(f for f in os.listdir(qd) if f.endswith(".onnx")))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("calib", nargs="?")
    p.add_argument("--synthetic", type=int, default=0)
    p.add_argument("--act", default="Int8")
    p.add_argument("--runs", type=int, default=200)
    a = p.parse_args()
    m = onnx.load(a.model)
    opset = max(13, next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")))
    work = tempfile.mkdtemp(prefix="sq_deploy_")
    try:
        run(a, m, opset, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def synthetic(model, n, path):
    """n images [3, H, W] in [-1, 1]: 16x16 noise upsampled (blocks) plus a little pixel noise, clipped."""
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    c, h, w = dims[1], dims[2], dims[3]
    rng = np.random.default_rng(0)
    small = rng.uniform(-1, 1, (n, c, 16, 16))
    x = np.repeat(np.repeat(small, -(-h // 16), axis=2), -(-w // 16), axis=3)[:, :, :h, :w]
    x = np.clip(x + rng.normal(0, 0.15, x.shape), -1, 1).astype(np.float32)
    np.savez(path, x=x)
    return path


def run(a, m, opset, work):
    if a.synthetic:
        a.calib = synthetic(m, a.synthetic, os.path.join(work, "calib.npz"))
    variants = {"no SmoothQuant": {}}
    for mode in ("mul", "conv", "skip"):
        variants[mode] = {"SmoothQuant": True, "SmoothQuantUnfolded": mode}
    paths = {}
    for name, extra in variants.items():
        d = os.path.join(work, name.replace(" ", "_"))
        os.makedirs(d)
        paths[name] = quantize(a.model, a.calib, a.act, extra, d, opset)
    x = np.load(a.calib)["x"].astype(np.float32)
    plain = options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    ref = ort.InferenceSession(a.model, plain, providers=["CPUExecutionProvider"])
    feed = ref.get_inputs()[0].name
    y = ref.run(None, {feed: x})[0].astype(np.float64)
    sessions = {}
    print(f"{os.path.basename(a.model)}, {a.act} activations, per channel Int8 weights; {BIN}")
    for name, path in paths.items():
        opt = os.path.join(work, "opt.onnx")
        ext = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.InferenceSession(path, options(ext, opt), providers=["CPUExecutionProvider"])
        h = collections.Counter(n.op_type for n in onnx.load(opt).graph.node)
        q = ort.InferenceSession(path, plain, providers=["CPUExecutionProvider"]).run(None, {feed: x})[0]
        snr = 10 * np.log10((y ** 2).sum() / ((y - q) ** 2).sum())
        sessions[name] = ort.InferenceSession(path, options(ext), providers=["CPUExecutionProvider"])
        fused = {k: h.get(k, 0) for k in ("QLinearConv", "Conv", "Mul", "QuantizeLinear", "DequantizeLinear")}
        print(f"  {name:15s} size {os.path.getsize(path):8d} B  SNR {snr:6.2f} dB  EXTENDED: {fused}")
    one = {feed: x[:1]}
    times = {k: [] for k in sessions}
    for r in range(a.runs):
        order = list(sessions) if r % 2 else list(reversed(sessions))
        for k in order:
            t = time.perf_counter()
            sessions[k].run(None, one)
            times[k].append(time.perf_counter() - t)
    base = np.median(times["no SmoothQuant"])
    for k, v in times.items():
        print(f"  {k:15s} median {1e6 * np.median(v):8.1f} us  ({np.median(v) / base:.2f} x no SmoothQuant)")


if __name__ == "__main__":
    sys.exit(main())
