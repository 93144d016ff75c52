#!/usr/bin/env python3
"""Quantization speed and memory: onnxquant default mode vs ONNX Runtime quantize_static, same run.

    .venv/bin/python bench/bench_quantize.py [--bin build-bench/onnxquant] [--quick]

Model: MobileNetV2-1.0 224 (bench/models/, exported on demand). Calibration data: synthetic images, float32
[N,3,224,224] (smooth random colour fields + noise, already in the model's input range), written once to
bench/data/calib_<N>.npz as an UNCOMPRESSED npz (members stored, so onnxquant maps it) and, for ORT's data
reader, to bench/data/calib_<N>_x.npy which the reader memory-maps and streams one sample per get_next().
Both tools: per-channel symmetric Int8 weights, asymmetric Int8 activations, QDQ, bias quantized, the float
model as given (already BN-folded by the exporter). Each run is a separate child process; wall time from the
parent, peak RSS from wait4()'s ru_maxrss of that child. ORT runs under an address-space limit (--ort-mem-gb)
because its calibrators keep every intermediate tensor of every sample in memory (Entropy/Percentile always,
MinMax unless CalibMaxIntermediateOutputs is set): at 1000 samples that is tens of GB on this model. A run that
hits the limit is reported as such, with its time to failure.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = os.path.join(HERE, "models", "mobilenet_v2_1.0_224.onnx")
DATA = os.path.join(HERE, "data")
PY = sys.executable


def ensure_model():
    if not os.path.exists(MODEL):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "make_bench_models.py"),
                        "--only", os.path.basename(MODEL)], check=True)


def ensure_data(n):
    """calib_<n>_x.npy (memmap-written) and calib_<n>.npz (same bytes, stored uncompressed)."""
    os.makedirs(DATA, exist_ok=True)
    npy = os.path.join(DATA, f"calib_{n}_x.npy")
    npz = os.path.join(DATA, f"calib_{n}.npz")
    if not os.path.exists(npy):
        rng = np.random.default_rng(n)
        x = np.lib.format.open_memmap(npy + ".tmp", mode="w+", dtype=np.float32, shape=(n, 3, 224, 224))
        for i in range(n):
            base = rng.uniform(-1.0, 1.0, size=(3, 28, 28)).astype(np.float32)
            img = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)
            img += 0.25 * rng.standard_normal((3, 224, 224), dtype=np.float32)
            x[i] = np.clip(img, -2.5, 2.5)
        x.flush()
        del x
        os.replace(npy + ".tmp", npy)
    if not os.path.exists(npz):
        with zipfile.ZipFile(npz + ".tmp", "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
            z.write(npy, arcname="x.npy")
        os.replace(npz + ".tmp", npz)
    return npy, npz


ORT_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, onnxruntime as ort
    from onnxruntime.quantization import (quantize_static, CalibrationDataReader, QuantFormat, QuantType,
                                          CalibrationMethod)
    model, npy, out, method, threads = sys.argv[1:6]
    class Reader(CalibrationDataReader):
        def __init__(self):
            self.x = np.load(npy, mmap_mode="r"); self.i = 0
        def get_next(self):
            if self.i >= len(self.x): return None
            self.i += 1
            return {"input": np.ascontiguousarray(self.x[self.i - 1:self.i])}
    quantize_static(model, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method),
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                                   "IntraOpNumThreads": int(threads)} )
""")


def config_yaml(npz, method, out_dir):
    return textwrap.dedent(f"""
        general: {{project_name: bench, global_seed: 0}}
        operation_mode: quantization
        model: {{model_path: {MODEL}}}
        dataset: {{quantization_path: {npz}}}
        preprocessing:
          rescaling: {{scale: 1, offset: 0}}
          color_mode: rgb
        quantization:
          quantizer: onnx_quantizer
          quantization_type: PTQ
          quantization_input_type: float
          quantization_output_type: float
          granularity: per_channel
          target_opset: 13
          export_dir: quantized_models
          operating_mode: default
          onnx_quant_parameters: {{weightType: Int8, activType: Int8, calibrate_method: {method}}}
          onnx_extra_options: {{WeightSymmetric: True, ActivationSymmetric: False, QuantizeBias: True}}
        hydra: {{run: {{dir: {out_dir}}}}}
        """)


def run_child(cmd, mem_limit_bytes=None, env=None):
    """Runs cmd, returns (rc, wall_s, peak_rss_mb, stderr tail, cpu_s)."""
    def limit():
        if mem_limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit_bytes, mem_limit_bytes))
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=limit, env=env)
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    return rc, wall, ru.ru_maxrss / 1024.0, err.strip().splitlines()[-3:], ru.ru_utime + ru.ru_stime


def oq_env(passive):
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "onnxquant"))
    ap.add_argument("--quick", action="store_true", help="100 samples, MinMax and Percentile, onnxquant with OMP_WAIT_POLICY=PASSIVE only")
    ap.add_argument("--samples", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--methods", nargs="+", default=["MinMax", "Entropy", "Percentile"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="onnxquant runs per configuration (median)")
    ap.add_argument("--ort-repeat", type=int, default=1,
                    help="ORT runs per configuration (median), interleaved with onnxquant's: round r runs onnxquant "
                         "then, while r < ort-repeat, ORT (the VM's speed drifts over minutes; interleaving keeps "
                         "both tools under the same conditions)")
    ap.add_argument("--ort-mem-gb", type=float, default=10.0, help="address-space limit of each ORT child")
    ap.add_argument("--skip-ort", action="store_true")
    ap.add_argument("--passive-only", action="store_true",
                    help="run onnxquant only with OMP_WAIT_POLICY=PASSIVE (the default-policy column shows '-')")
    ap.add_argument("--ort-max-samples", type=int, default=1000, help="run ORT only up to this many samples")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "quantize.json"))
    a = ap.parse_args()
    if a.quick:
        a.samples, a.methods, a.repeat, a.passive_only = [100], ["MinMax", "Percentile"], 1, True
    ensure_model()
    work = os.path.join(DATA, "runs")
    os.makedirs(work, exist_ok=True)
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} load {os.getloadavg()}", file=sys.stderr)
    rows = []
    for n in a.samples:
        npy, npz = ensure_data(n)
        for method in a.methods:
            cfg = os.path.join(work, f"cfg_{method}_{n}.yaml")
            out_dir = os.path.join(work, f"oq_{method}_{n}")
            with open(cfg, "w") as f:
                f.write(config_yaml(npz, method, out_dir))
            r = dict(samples=n, method=method)
            tags = (("oqp", True),) if a.passive_only else (("oq", False), ("oqp", True))
            runs = {tag: [] for tag, _ in tags}
            ort_runs = []
            do_ort = not a.skip_ort and n <= a.ort_max_samples
            for rnd in range(max(a.repeat, a.ort_repeat if do_ort else 0)):
                if rnd < a.repeat:
                    for tag, passive in tags:
                        rc, wall, rss, err, cpu = run_child([a.bin, "--config", cfg, "--threads", str(a.threads)],
                                                            env=oq_env(passive))
                        if rc != 0:
                            raise RuntimeError(f"onnxquant failed ({rc}): {err}")
                        runs[tag].append((wall, rss, cpu))
                if do_ort and rnd < a.ort_repeat:
                    ort_out = os.path.join(work, f"ort_{method}_{n}.onnx")
                    ort_runs.append(run_child([PY, "-c", ORT_SCRIPT, MODEL, npy, ort_out, method, str(a.threads)],
                                              mem_limit_bytes=int(a.ort_mem_gb * (1 << 30))))
            for tag, _ in tags:
                oq = runs[tag]
                r[f"{tag}_s"] = float(np.median([o[0] for o in oq]))
                r[f"{tag}_cpu_s"] = float(np.median([o[2] for o in oq]))
                r[f"{tag}_rss_mb"] = max(o[1] for o in oq)
                r[f"{tag}_all_s"] = [o[0] for o in oq]
            if do_ort:
                ok = all(o[0] == 0 for o in ort_runs)
                wall = float(np.median([o[1] for o in ort_runs]))
                rss = max(o[2] for o in ort_runs)
                cpu = float(np.median([o[4] for o in ort_runs]))
                err = next((o[3] for o in ort_runs if o[0] != 0), [])
                r.update(ort_s=wall, ort_cpu_s=cpu, ort_rss_mb=rss, ort_ok=ok, ort_err=" | ".join(err) if not ok else "",
                         ort_all_s=[o[1] for o in ort_runs])
                r["speedup"] = wall / r["oq_s"] if "oq_s" in r else float("nan")
                r["speedup_passive"] = wall / r["oqp_s"]
                # Round by round (the two tools back to back, under the same drift of the VM's speed): the
                # median of ORT's wall over onnxquant's (passive) in each round where both ran.
                pairs = [o[1] / q[0] for o, q in zip(ort_runs, runs["oqp"])]
                r["speedup_rounds"] = pairs
                r["speedup_round_median"] = float(np.median(pairs))
                r["speedup_cpu"] = cpu / r["oqp_cpu_s"]
                r["rss_ratio"] = r["oqp_rss_mb"] / rss
            r["load"] = os.getloadavg()[0]
            rows.append(r)
            print(json.dumps(r), file=sys.stderr)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(dict(rows=rows, args=vars(a), date=time.strftime("%Y-%m-%d %H:%M:%S")), f, indent=1)
    print("| method | samples | onnxquant wall s | onnxquant wall s, OMP passive | ORT wall s | **ORT/onnxquant wall** "
          "(default / passive) | median of per-round ratios (passive) | CPU s onnxquant (passive) / ORT | "
          "ORT/onnxquant CPU | onnxquant peak RSS MB | ORT peak RSS MB | **onnxquant/ORT RSS** | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = f"{r['oq_s']:.1f}" if "oq_s" in r else "-"
        head = f"| {r['method']} | {r['samples']} | {d} | {r['oqp_s']:.1f} |"
        if "ort_s" not in r:
            print(f"{head} not run | - | - | {r['oqp_cpu_s']:.1f} / - | - | {r['oqp_rss_mb']:.0f} | - | - | {r['load']:.1f} |")
            continue
        fail = "" if r["ort_ok"] else f" (failed at the {a.ort_mem_gb:g} GB limit)"
        ge = "" if r["ort_ok"] else "≥ "
        dflt = f"{ge}{r['speedup']:.1f}×" if "oq_s" in r else "-"
        print(f"{head} {r['ort_s']:.1f}{fail} | **{dflt} / {ge}{r['speedup_passive']:.1f}×** | "
              f"{ge}{r['speedup_round_median']:.1f}× ({len(r['speedup_rounds'])} rounds) | "
              f"{r['oqp_cpu_s']:.1f} / {r['ort_cpu_s']:.1f} | {ge}{r['speedup_cpu']:.1f}× | {r['oqp_rss_mb']:.0f} | "
              f"{r['ort_rss_mb']:.0f}{fail} | **{ge if False else ''}{r['rss_ratio']:.3f}** | {r['load']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
