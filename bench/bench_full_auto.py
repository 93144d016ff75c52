#!/usr/bin/env python3
"""full_auto overhead: wall time of the whole search vs (3 + steps) x one evaluation pass.

    .venv/bin/python bench/bench_full_auto.py [--bin build-bench/onnxquant] [--samples 1000] [--quick]

Model: MobileNetV2-1.0 224 (bench/models/). Calibration: bench/data/calib_100.npz (100 synthetic samples, see
bench_quantize.py). Evaluation set: the first --samples rows of bench/data/calib_1000_x.npy (or a generated set)
stored with labels y = argmax of the float model (computed by ONNX Runtime), so the float model scores 100 %
top-1. With random weights the argmax hardly moves under quantization (even all-Int4 keeps 100 % top-1 and the
search ends at once), so the search uses `metric: output_snr` (dB against the float model, tolerance 1 dB), which
does separate the candidates and makes the bisection run all its steps.
One evaluation pass = `onnxquant eval --metric top1` of the 8-bit QDQ model that full_auto wrote (and, for reference, of the
float model) on the same data, same threads. The steps count is read from full_auto.json. The overhead is
full_auto wall / ((3 + steps) x eval pass) - 1. Every onnxquant child runs with OMP_WAIT_POLICY=PASSIVE (see
docs/benchmarks.md: libgomp's default spinning is pathological on a loaded machine) unless --omp-default.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_quantize as bq  # noqa: E402  (model/data helpers, child runner)


def ensure_eval(n):
    path = os.path.join(bq.DATA, f"eval_{n}.npz")
    if os.path.exists(path):
        return path
    import onnxruntime as ort
    src_n = 1000 if n <= 1000 else n
    npy, _ = bq.ensure_data(src_n)
    x = np.load(npy, mmap_mode="r")[:n]
    sess = ort.InferenceSession(bq.MODEL, providers=["CPUExecutionProvider"])
    y = np.concatenate([sess.run(None, {"input": np.ascontiguousarray(x[i:i + 16])})[0].argmax(1)
                        for i in range(0, n, 16)]).astype(np.int64)
    tmp_x = path + ".x.npy"
    xm = np.lib.format.open_memmap(tmp_x, mode="w+", dtype=np.float32, shape=x.shape)
    xm[:] = x
    xm.flush()
    del xm
    tmp_y = path + ".y.npy"
    np.save(tmp_y, y)
    with zipfile.ZipFile(path + ".tmp", "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        z.write(tmp_x, arcname="x.npy")
        z.write(tmp_y, arcname="y.npy")
    os.remove(tmp_x)
    os.remove(tmp_y)
    os.replace(path + ".tmp", path)
    return path


def config_yaml(calib, test, out_dir):
    return textwrap.dedent(f"""
        general: {{project_name: bench_full_auto, global_seed: 0}}
        operation_mode: quantization
        model: {{model_path: {bq.MODEL}}}
        dataset: {{quantization_path: {calib}, test_path: {test}}}
        preprocessing:
          rescaling: {{scale: 1, offset: 0}}
          color_mode: rgb
        quantization:
          quantizer: onnx_quantizer
          quantization_type: PTQ
          quantization_input_type: float
          quantization_output_type: float
          granularity: per_channel
          target_opset: 21
          export_dir: quantized_models
          operating_mode: full_auto
          onnx_quant_parameters: {{weightType: Int8, activType: Int8, calibrate_method: MinMax}}
          onnx_extra_options: {{WeightSymmetric: True, ActivationSymmetric: False, QuantizeBias: True}}
          iterative_quant_parameters: {{accuracy_tolerance: 1.0, metric: output_snr}}
        hydra: {{run: {{dir: {out_dir}}}}}
        """)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(bq.ROOT, "build-bench", "onnxquant"))
    ap.add_argument("--samples", type=int, default=1000, help="evaluation samples")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="50 evaluation samples")
    ap.add_argument("--omp-default", action="store_true", help="do not set OMP_WAIT_POLICY=PASSIVE")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "full_auto.json"))
    a = ap.parse_args()
    if a.quick:
        a.samples = 50
    bq.ensure_model()
    _, calib = bq.ensure_data(100)
    test = ensure_eval(a.samples)
    env = bq.oq_env(not a.omp_default)
    work = os.path.join(bq.DATA, "runs", f"full_auto_{a.samples}")
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "cfg.yaml")
    with open(cfg, "w") as f:
        f.write(config_yaml(calib, test, work))
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} load {os.getloadavg()}", file=sys.stderr)
    rc, fa_wall, fa_rss, err, fa_cpu = bq.run_child([a.bin, "--config", cfg, "--threads", str(a.threads)], env=env)
    if rc != 0:
        raise RuntimeError(f"full_auto failed ({rc}): {err}")
    with open(os.path.join(work, "full_auto.json")) as f:
        report = json.load(f)
    # full_auto.json lists the all-Int4 attempt (step 4, n = 0) first, then one entry per bisection step.
    steps = len(report["attempts"]) - 1
    qdq = [p for p in glob.glob(os.path.join(work, "quantized_models", "*_qdq.onnx"))]
    if not qdq:
        raise RuntimeError(f"no 8-bit reference model in {work}/quantized_models")
    evals = {}
    for label, model in (("qdq8", qdq[0]), ("float", bq.MODEL)):
        rc, wall, _, err, cpu = bq.run_child([a.bin, "eval", model, "--data", test, "--metric", "top1",
                                              "--threads", str(a.threads)], env=env)
        if rc != 0:
            raise RuntimeError(f"eval of {model} failed ({rc}): {err}")
        evals[label] = (wall, cpu)
    passes = 3 + steps
    r = dict(samples=a.samples, steps=steps, passes=passes, full_auto_s=fa_wall, full_auto_cpu_s=fa_cpu,
             full_auto_rss_mb=fa_rss, eval_qdq8_s=evals["qdq8"][0], eval_qdq8_cpu_s=evals["qdq8"][1],
             eval_float_s=evals["float"][0], eval_float_cpu_s=evals["float"][1], load=os.getloadavg()[0],
             omp_passive=not a.omp_default)
    r["overhead_wall"] = fa_wall / (passes * evals["qdq8"][0]) - 1
    r["overhead_cpu"] = fa_cpu / (passes * evals["qdq8"][1]) - 1
    r["overhead_cpu_vs_float_eval"] = fa_cpu / (passes * evals["float"][1]) - 1
    print(json.dumps(r), file=sys.stderr)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(dict(result=r, full_auto_report=report, date=time.strftime("%Y-%m-%d %H:%M:%S")), f, indent=1)
    print("| eval samples | steps | passes (3+steps) | full_auto wall s / CPU s | one eval pass (8-bit QDQ) wall s / CPU s "
          "| one eval pass (float) wall s / CPU s | **overhead, CPU** | overhead, wall | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {a.samples} | {steps} | {passes} | {fa_wall:.1f} / {fa_cpu:.1f} | {evals['qdq8'][0]:.1f} / "
          f"{evals['qdq8'][1]:.1f} | {evals['float'][0]:.1f} / {evals['float'][1]:.1f} | "
          f"**{100 * r['overhead_cpu']:+.0f} %** | {100 * r['overhead_wall']:+.0f} % | {r['load']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
