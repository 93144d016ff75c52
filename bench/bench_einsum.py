#!/usr/bin/env python3
"""Einsum on attention-sized equations: onnxquant's Einsum kernel (sgemm path), its direct loop and its MatMul
kernel (oq_bench_einsum, Google Benchmark, one thread) against ONNX Runtime running the same single-node Einsum
model (one intra-op thread, default optimizations), in the same run.

    .venv/bin/python bench/bench_einsum.py [--bin build/bench/oq_bench_einsum]

Prints a Markdown table (milliseconds per run; ORT: median of 20 timed runs after 3 warm-ups).
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
# Same cases as bench_einsum.cc (kCases).
CASES = [("bhqd,bhkd->bhqk", (4, 4, 256, 64), (4, 4, 256, 64)),
         ("bhqk,bhkd->bhqd", (4, 4, 256, 256), (4, 4, 256, 64)),
         ("bnd,dh->bnh", (4, 256, 256), (256, 256))]


def ort_ms(eq, sa, sb, runs=20):
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation=eq)
    g = helper.make_graph([node], "einsum", [helper.make_tensor_value_info("a", TensorProto.FLOAT, sa),
                                               helper.make_tensor_value_info("b", TensorProto.FLOAT, sb)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "einsum.onnx")
        onnx.save(m, path)
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    feeds = {"a": rng.uniform(-1, 1, sa).astype(np.float32), "b": rng.uniform(-1, 1, sb).astype(np.float32)}
    for _ in range(3):
        sess.run(None, feeds)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        t.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(HERE), "build", "bench", "oq_bench_einsum"))
    args = ap.parse_args()
    cmd = [args.bin, "--benchmark_format=json", "--benchmark_filter=^BM_Einsum/"]
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    oq = {}
    for b in res["benchmarks"]:
        case, variant = (int(x) for x in b["name"].split("/")[1:3])
        oq[(case, variant)] = b["real_time"]  # milliseconds (Unit(kMillisecond))
    print(f"load average: {os.getloadavg()[0]:.1f}")
    print("| equation | shapes | loop ms | sgemm path ms | MatMul ms | ORT Einsum ms | loop / sgemm | sgemm / ORT |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for i, (eq, sa, sb) in enumerate(CASES):
        o = ort_ms(eq, sa, sb)
        fast, loop, mm = oq[(i, 0)], oq[(i, 1)], oq[(i, 2)]
        shapes = f"{list(sa)} × {list(sb)}".replace(" ", "")
        print(f"| `{eq}` | {shapes} | {loop:.1f} | {fast:.2f} | {mm:.2f} | {o:.2f} | {loop / fast:.0f}× | "
              f"{fast / o:.2f} |")


if __name__ == "__main__":
    main()
