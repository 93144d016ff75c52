#!/usr/bin/env python3
"""A/B of two onnxquant binaries on one config: runs interleaved (A B, B A, ...), each a child process.

    .venv/bin/python bench/ab_runs.py CONFIG.yaml RUNS BIN_A BIN_B [--threads 2]

Prints, per binary, the median and minimum wall time, the median CPU time (user + sys from wait4), the median
number of minor page faults and the largest peak RSS. OMP_WAIT_POLICY=PASSIVE for both (docs/benchmarks.md,
finding 1). Interleaving puts both binaries under the same drift of the VM's speed; the minimum is the least
disturbed run.
"""
import argparse
import os
import statistics
import subprocess
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("runs", type=int)
    ap.add_argument("bins", nargs=2)
    ap.add_argument("--threads", default="2")
    a = ap.parse_args()
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    res = {b: [] for b in a.bins}
    for i in range(a.runs):
        for b in (a.bins if i % 2 == 0 else a.bins[::-1]):
            t0 = time.perf_counter()
            p = subprocess.Popen([b, "--config", a.config, "--threads", a.threads], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"{b} failed on {a.config}")
            res[b].append((wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, ru.ru_minflt))
    for b in a.bins:
        r = res[b]
        print(f"{b}: wall median {statistics.median(x[0] for x in r) * 1e3:.1f} ms, min {min(x[0] for x in r) * 1e3:.1f} ms; "
              f"CPU median {statistics.median(x[1] for x in r) * 1e3:.1f} ms; minor faults median "
              f"{statistics.median(x[3] for x in r):.0f}; peak RSS max {max(x[2] for x in r):.1f} MB")


if __name__ == "__main__":
    main()
