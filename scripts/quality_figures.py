"""Figures of docs/quality.md (issue 8), each from onnxquant runs checked independently where possible.

  .venv/bin/python scripts/quality_figures.py snr  [models...]   # per-tensor W4 SNR table (inspection mode)
  .venv/bin/python scripts/quality_figures.py auto [models...]   # full_auto grid; every answer re-scored in ORT
  .venv/bin/python scripts/quality_figures.py one MODEL TOL RANKING QUANTIZER ALPHA|- SEARCH [KEY=VALUE...]  # one row
  .venv/bin/python scripts/quality_figures.py bcle [models...]  # BiasCorrection / CrossLayerEqualization table

Environment: OQ_BIN (default build/onnxquant), OUT (default /tmp/oq_quality), OQ_THREADS (onnxquant --threads;
default: all cores — on a loaded machine 1 avoids threads spinning for a descheduled peer). Run from the repository root."""
import json
import os
import re
import statistics
import subprocess
import sys

import numpy as np

BIN = os.environ.get("OQ_BIN", "build/onnxquant")
OUT = os.environ.get("OUT", "/tmp/oq_quality")
CFG = "examples/digits/user_config.yaml"
SHARED = os.environ.get("OQ_SHARED_DIR", "/work/shared")


def run(out, args):
    threads = ["--threads", os.environ["OQ_THREADS"]] if os.environ.get("OQ_THREADS") else []
    p = subprocess.run([BIN, "--config", CFG, "--output-dir", out, *threads, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"onnxquant failed ({p.returncode}): {' '.join(args)}\n{p.stderr[-2000:]}")
    return p


def test_npz(model):
    """The test set of a testdata model: digits16_* models use testdata/digits16_test.npz."""
    if os.path.basename(model).startswith("digits16_"):
        return "testdata/digits16_test.npz"
    return f"testdata/digits_test{'_flat' if 'mlp' in model else ''}.npz"


def model_args(model):
    if model.startswith("testdata/"):
        test = test_npz(model)
        return [f"model.model_path={model}", f"dataset.quantization_path={test.replace('_test', '_calib')}",
                f"dataset.test_path={test}"]
    # Shared models: 10 random uniform [0, 1) calibration samples (no quantization_path).
    return [f"model.model_path={model}", "dataset.quantization_path=", "dataset.test_path=",
            "preprocessing.color_mode=rgb"]


def snr_table(models):
    print("| model | quantizer | weight tensors | weight SNR min (dB) | weight SNR median (dB) | output SNR (dB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model in models:
        for wq in ("minmax", "mse", "gptq"):
            out = os.path.join(OUT, "snr_" + os.path.basename(model) + "_" + wq)
            run(out, [*model_args(model), "quantization.operating_mode=inspection",
                      "quantization.onnx_quant_parameters.weightType=Int4",
                      f"quantization.onnx_extra_options.WeightQuantizer={wq}"])
            r = json.load(open(os.path.join(out, "inspection.json")))
            w = [t["snr_db"] for t in r["tensors"] if t["kind"] == "weight" and t["quant_type"] == "Int4"]
            outs = [t for t in r["tensors"] if t["kind"] == "activation" and not t["consumers"]]
            o = min(t["snr_xmodel_db"] for t in outs) if outs else float("nan")
            print(f"| {os.path.basename(model)} | {wq} | {len(w)} | {min(w):.2f} | {statistics.median(w):.2f} | {o:.2f} |",
                  flush=True)


def ort_top1(path, npz):
    import onnxruntime as ort
    d = np.load(npz)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    out = s.run(None, {s.get_inputs()[0].name: d["x"]})[0]
    return 100.0 * float(np.mean(out.reshape(len(out), -1).argmax(1) == d["y"]))


SETTINGS = [(rk, wq, None, "bisection") for rk in ("static", "sensitivity") for wq in ("minmax", "mse", "gptq")] + [
    ("static", "minmax", 0.1, "bisection"), ("static", "gptq", 0.1, "bisection"), ("sensitivity", "gptq", None, "greedy")]


def auto_table(models, tolerances=("1.0", "0.3"), settings=None, extra_keys=()):
    print("| model | tolerance | ranking | quantizer | SmoothQuant α | search | 8-bit top-1 | answer top-1 | ORT top-1 | "
          "4-bit weight share | attempts |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in models:
        npz = test_npz(model)
        for tol in tolerances:
            for rk, wq, alpha, search in settings or SETTINGS:
                tag = f"{os.path.basename(model)}_{tol}_{rk}_{wq}_{alpha}_{search}" + "".join(
                    "_" + k.split(".")[-1] for k in extra_keys)
                wq_label = " + ".join([wq, *(k.split(".")[-1] for k in extra_keys)])
                out = os.path.join(OUT, "auto_" + tag)
                extra = [*extra_keys, f"quantization.iterative_quant_parameters.accuracy_tolerance={tol}",
                         f"quantization.iterative_quant_parameters.ranking={rk}",
                         f"quantization.iterative_quant_parameters.search={search}",
                         f"quantization.onnx_extra_options.WeightQuantizer={wq}"]
                if alpha is not None:
                    extra += ["quantization.onnx_extra_options.SmoothQuant=True",
                              f"quantization.onnx_extra_options.SmoothQuantAlpha={alpha}"]
                run(out, [*model_args(model), *extra])
                rep = json.load(open(os.path.join(out, "full_auto.json")))
                ans = rep["answer"]["attempt"]
                if ans is None:
                    print(f"| {os.path.basename(model)} | {tol} | {rk} | {wq_label} | {alpha or '-'} | {search} | "
                          f"{rep['scores']['int8']:.2f} | (8-bit) | - | 0.00% | {len(rep['attempts'])} |", flush=True)
                    continue
                a = rep["attempts"][ans]
                got = ort_top1(a["file"], npz)
                assert abs(got - a["score"]) <= 0.3, (a["file"], got, a["score"])
                print(f"| {os.path.basename(model)} | {tol} | {rk} | {wq_label} | {alpha or '-'} | {search} | "
                      f"{rep['scores']['int8']:.2f} | {a['score']:.2f} | {got:.2f} | {a['w4_percent']:.2f}% | "
                      f"{len(rep['attempts'])} |", flush=True)


def bcle_table(models):
    """All weights Int4 (per tensor and per channel), activations Int8, with/without CLE and bias correction:
    output SNR of the W4A8 model vs the float model (inspection, calibration data) and ORT top-1 on the test set."""
    print("| model | weights | CrossLayerEqualization | BiasCorrection | output SNR (dB) | ORT top-1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model in models:
        npz = test_npz(model)
        for gran in ("per_tensor", "per_channel"):
            # cle: False, True, or "relu6" (CLE with CrossLayerEqualizationReplaceRelu6)
            for cle, bc in ((False, False), (True, False), ("relu6", False), (False, True), (True, True),
                            ("relu6", True)):
                out = os.path.join(OUT, f"bcle_{os.path.basename(model)}_{gran}_{cle}_{bc}")
                run(out, [*model_args(model), "quantization.operating_mode=inspection",
                          f"quantization.granularity={gran}", "quantization.onnx_quant_parameters.weightType=Int4",
                          f"quantization.onnx_extra_options.CrossLayerEqualization={bool(cle)}",
                          f"quantization.onnx_extra_options.CrossLayerEqualizationReplaceRelu6={cle == 'relu6'}",
                          f"quantization.onnx_extra_options.BiasCorrection={bc}"])
                r = json.load(open(os.path.join(out, "inspection.json")))
                outs = [t for t in r["tensors"] if t["kind"] == "activation" and not t["consumers"]]
                o = min(t["snr_xmodel_db"] for t in outs) if outs else float("nan")
                suffix = "_quant_qdq_pt.onnx" if gran == "per_tensor" else "_quant_qdq_pc.onnx"
                qfile = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f.endswith(suffix)][0]
                top1 = ort_top1(qfile, npz)
                cle_label = "on, ReLU6 -> Relu" if cle == "relu6" else ("on" if cle else "-")
                print(f"| {os.path.basename(model)} | Int4 {gran.replace('_', ' ')} | {cle_label} | "
                      f"{'on' if bc else '-'} | {o:.2f} | {top1:.2f} |", flush=True)


if __name__ == "__main__":
    what = sys.argv[1]
    ms = sys.argv[2:]
    if what == "snr":
        snr_table(ms or ["testdata/digits_mobilenet.onnx", "testdata/digits_resnet.onnx", "testdata/digits_mlp.onnx"] +
                  sorted(os.path.join(SHARED, "models", f) for f in os.listdir(os.path.join(SHARED, "models"))
                         if f.endswith(".onnx")))
    elif what == "bcle":
        bcle_table(ms or ["testdata/digits_mobilenet.onnx", "testdata/digits_resnet.onnx", "testdata/digits_mlp.onnx"])
    elif what == "one":  # one setting: one <model> <tolerance> <ranking> <quantizer> <alpha|-> <search> [key=value...]
        m, tol, rk, wq, alpha, search = ms[:6]
        auto_table([m], (tol,), [(rk, wq, None if alpha == "-" else float(alpha), search)], ms[6:])
    else:
        auto_table(ms or ["testdata/digits_mobilenet.onnx", "testdata/digits_resnet.onnx"])
