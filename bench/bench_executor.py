#!/usr/bin/env python3
"""Executor latency: onnxquant's engine vs ONNX Runtime (the peer), same machine, same run, same threads.

    .venv/bin/python bench/bench_executor.py [--bin build-bench/bench/oq_bench_executor] [--quick]

For every model x batch (1, 8) x threads (1, 2), rounds alternate between the engine (oq_bench_executor, a
separate process: warm-up runs, then timed runs) and ONNX Runtime in this process with (a) its default graph
optimizations (ORT_ENABLE_ALL, what users get) and (b) optimizations disabled. Interleaving the rounds spreads
the machine's background load over all three. The figure is the median of all timed runs; the ratio is
engine / ORT. Models: MobileNetV2-1.0 224 and ResNet-18 (bench/models/, exported on demand by
scripts/make_bench_models.py with Debian's python3) and every ../shared/models/*.onnx.
Writes a Markdown table to stdout and JSON to bench/results/executor.json.
"""
import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCH_MODELS = ["mobilenet_v2_1.0_224.onnx", "resnet18.onnx"]


def ensure_bench_models():
    missing = [m for m in BENCH_MODELS if not os.path.exists(os.path.join(HERE, "models", m))]
    if missing:
        print(f"exporting {missing} with scripts/make_bench_models.py", file=sys.stderr)
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "make_bench_models.py")], check=True)
    return [os.path.join(HERE, "models", m) for m in BENCH_MODELS]


def make_feeds(sess, batch):
    rng = np.random.default_rng(1234)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else (batch if k == 0 else 1) for k, d in enumerate(i.shape)]
        feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def ort_session(path, threads, optimize):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def time_ort(sess, feeds, warmup, runs):
    for _ in range(warmup):
        sess.run(None, feeds)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def time_engine(binary, path, batch, threads, warmup, runs, passive=False):
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("GOMP_SPINCOUNT", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env["GOMP_SPINCOUNT"] = "20000"  # what the onnxquant command sets for itself (tools/cli/main.cc)
    r = subprocess.run([binary, path, "--batch", str(batch), "--threads", str(threads), "--warmup", str(warmup),
                        "--runs", str(runs)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{binary} failed on {path}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "bench", "oq_bench_executor"))
    ap.add_argument("--quick", action="store_true", help="1 round of 5 runs, fewer configurations (a few minutes)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--models", nargs="+", help="model files (default: bench models + ../shared/models/*.onnx)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "executor.json"))
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.runs, a.warmup = 1, 5, 2
    models = a.models or ensure_bench_models() + sorted(glob.glob(os.path.join(ROOT, "..", "shared", "models", "*.onnx")))
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} load before: {os.getloadavg()} ort {ort.__version__} "
          f"python {platform.python_version()}", file=sys.stderr)
    rows = []
    for path in models:
        name = os.path.basename(path)
        for threads in a.threads:
            ort_opt = ort_session(path, threads, True)
            ort_raw = ort_session(path, threads, False)
            for batch in a.batches:
                feeds = make_feeds(ort_opt, batch)
                eng, engp, t_opt, t_raw, build = [], [], [], [], []
                for _ in range(a.rounds):
                    e = time_engine(a.bin, path, batch, threads, a.warmup, a.runs)
                    eng += e["times_ms"]
                    build.append(e["build_ms"] + e["first_ms"])
                    if threads > 1:
                        engp += time_engine(a.bin, path, batch, threads, a.warmup, a.runs, passive=True)["times_ms"]
                    t_opt += time_ort(ort_opt, feeds, a.warmup, a.runs)
                    t_raw += time_ort(ort_raw, feeds, a.warmup, a.runs)
                r = dict(model=name, threads=threads, batch=batch, engine_ms=float(np.median(eng)),
                         engine_passive_ms=float(np.median(engp)) if engp else None,
                         ort_ms=float(np.median(t_opt)), ort_noopt_ms=float(np.median(t_raw)),
                         engine_min_ms=min(eng), ort_min_ms=min(t_opt), ort_noopt_min_ms=min(t_raw),
                         engine_setup_ms=float(np.median(build)), load=os.getloadavg()[0])
                r["ratio"] = r["engine_ms"] / r["ort_ms"]
                r["ratio_noopt"] = r["engine_ms"] / r["ort_noopt_ms"]
                r["ratio_min"] = r["engine_min_ms"] / r["ort_min_ms"]
                r["ratio_passive"] = r["engine_passive_ms"] / r["ort_ms"] if engp else None
                rows.append(r)
                print(f"{name} t{threads} b{batch}: engine {r['engine_ms']:.2f} ms, ORT {r['ort_ms']:.2f} ms "
                      f"({r['ratio']:.2f}x), ORT no-opt {r['ort_noopt_ms']:.2f} ms ({r['ratio_noopt']:.2f}x), "
                      f"min-ratio {r['ratio_min']:.2f}x, passive {r['engine_passive_ms']}, load {r['load']:.1f}", file=sys.stderr)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(dict(rows=rows, args=vars(a), ort=ort.__version__, date=time.strftime("%Y-%m-%d %H:%M:%S")), f, indent=1)
    print("| model | threads | batch | engine ms | ORT ms | **engine/ORT** | ORT no-opt ms | engine/ORT no-opt "
          "| engine/ORT (min of runs) | engine, OMP_WAIT_POLICY=PASSIVE, ms | its ratio /ORT | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pas = (f"{r['engine_passive_ms']:.2f} | {r['ratio_passive']:.2f}" if r["engine_passive_ms"] is not None
               else "- | -")
        print(f"| {r['model']} | {r['threads']} | {r['batch']} | {r['engine_ms']:.2f} | {r['ort_ms']:.2f} | "
              f"**{r['ratio']:.2f}** | {r['ort_noopt_ms']:.2f} | {r['ratio_noopt']:.2f} | {r['ratio_min']:.2f} | "
              f"{pas} | {r['load']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
