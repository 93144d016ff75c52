"""Calibration ranges of onnxquant (src/calib, via tests/tools/oq_calib_dump) against ONNX Runtime's own
calibrators (onnxruntime.quantization.calibrate) run on the same batches through a one-node Identity model.

ORT's calibrators are fed one batch per collect_data() call (what quantize_static does with
extra_options CalibStridedMinMax=1), and all batches in one call (quantize_static's default): MinMax and
moving-average MinMax in one pass, the histogram methods with the Calibrator's two_pass_histogram option.

Tolerances:
  MinMax                1e-6 relative (ORT averages in float32, we sum in double: ~1 ulp).
  Entropy, Percentile   1e-3 of the range magnitude max(|rmin|, |rmax|). The histograms themselves are
                        compared bin for bin (counts exactly, edges exactly): they are built with numpy's
                        float32 arithmetic in both. The threshold search is exact for Percentile; for Entropy
                        the KL divergence is computed in float32 like numpy, but np.log (SIMD, a few ulp) and
                        our log may round differently, which can only move the minimum between windows whose
                        divergences agree to ~1e-6. That holds here because both tools see bit-identical
                        values (graph inputs through Identity). On a real model the executor's values differ
                        from onnxruntime's by a few ulps, and Entropy with CalibStridedMinMax=1 is not stable
                        under them: a last-ulp change of a batch's max |x| changes how the histogram grows, and
                        the KL minimum can land on another window (4.1 % on an SSD tensor, docs/conformance.md).
Exits non-zero on failure; prints "N passed, N failed".
"""
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator

SRC = Path(os.environ.get("OQ_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("OQ_BUILD_DIR", SRC / "build"))
TOOL = Path(os.environ.get("OQ_CALIB_DUMP", BUILD / "tests" / "oq_calib_dump"))

passed = 0
failed = 0
skipped = 0
last_passes = 0  # passes the last oq_calib_dump run took
tails_decided = 0  # Percentile configurations that the first pass's extreme values decided (one pass)
# ORT's KL search is pure Python, O(bins^2): skip Entropy where the merged histogram grew beyond this.
MAX_ENTROPY_BINS = 2500


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {detail}", flush=True)


class Reader(CalibrationDataReader):
    def __init__(self, batches):
        self.it = iter([{"X": b} for b in batches])

    def get_next(self):
        return next(self.it, None)


def identity_model(path):
    node = helper.make_node("Identity", ["X"], ["Y"])
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["n"])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def ort_calibrate(tmp, method, batches, extra, per_batch=True):
    """Returns (rmin, rmax, histogram or None) from ORT's calibrator."""
    model = os.path.join(tmp, "m.onnx")
    if not os.path.exists(model):
        identity_model(model)
    with contextlib.redirect_stdout(io.StringIO()):
        cal = create_calibrator(
            Path(model),
            augmented_model_path=os.path.join(tmp, "aug.onnx"),
            calibrate_method=method,
            extra_options=extra,
        )
        if per_batch:
            for b in batches:
                cal.collect_data(Reader([b]))
        else:
            cal.collect_data(Reader(batches))
        data = cal.compute_data()
    lo, hi = data["X"].range_value
    hist = None
    if getattr(cal, "collector", None) is not None:
        hist = cal.collector.histogram_dict["X"]
    return float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0]), hist


def ours(files, args, want_hist=False):
    cmd = [str(TOOL), *args, *(["--hist"] if want_hist else []), *files]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    lines = r.stdout.strip().split("\n")
    _, lo, hi = lines[0].split()
    global last_passes
    last_passes = int(lines[1].split()[1])
    hist = None
    if want_hist:
        edges = np.array(lines[3].split(), dtype=np.float32)
        counts = np.array(lines[4].split(), dtype=np.int64)
        hist = (counts, edges)
    return float(lo), float(hi), hist


def make_cases(rng):
    n = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    cases = {}
    cases["normal"] = [n(3000) for _ in range(5)]
    cases["relu"] = [np.maximum(n(2500) * 2 + 0.3, 0) for _ in range(4)]
    out = []
    for i in range(5):
        b = n(4000)
        b[rng.integers(0, 4000, 3)] *= 4 * (i + 1)  # outliers, growing
        out.append(b)
    cases["outliers_growing"] = out
    cases["laplace_shifted"] = [rng.laplace(0.7, 1.3, 3333).astype(np.float32) for _ in range(4)]
    cases["narrow_then_wide"] = [n(2000) * s for s in (0.5, 1.0, 3.0, 1.0, 4.0)]
    cases["zeros_first"] = [np.zeros(100, np.float32), n(1500), n(1500) * 2]
    cases["negative_only"] = [-np.abs(n(2000)) - 0.5 for _ in range(3)]
    t = rng.standard_t(3, (4, 3000)).astype(np.float32)
    big = np.abs(t).max() * 1.01
    t[0, :3] = (0.0, big, -big)  # the first batch spans every later one: streaming == ORT's single call
    cases["student_t_first_spans"] = list(t)
    cases["uniform_odd_sizes"] = [rng.uniform(-3, 5, sz).astype(np.float32) for sz in (17, 999, 4097)]
    return cases


def rel_ok(a, b, tol, scale=None):
    s = scale if scale is not None else max(abs(b), 1e-30)
    return abs(a - b) <= tol * s


def main():
    global skipped, tails_decided
    if not TOOL.exists():
        print(f"FAIL: {TOOL} not built (set OQ_BUILD_DIR or OQ_CALIB_DUMP)")
        print("0 passed, 1 failed")
        return 1
    rng = np.random.default_rng(1234)
    cases = make_cases(rng)
    with tempfile.TemporaryDirectory() as tmp:
        for cname, batches in cases.items():
            print(f"case {cname}", flush=True)
            files = []
            for i, b in enumerate(batches):
                f = os.path.join(tmp, f"{cname}_{i}.npy")
                np.save(f, b)
                files.append(f)

            # ---- MinMax
            mm_configs = [
                ("plain", {}, [], True),
                ("plain_one_call", {}, [], False),
                ("symmetric", {"symmetric": True}, ["--symmetric", "1"], True),
                ("ma_one_call", {"moving_average": True}, ["--moving-average"], False),
                ("ma_per_batch", {"moving_average": True, "averaging_constant": 0.3},
                 ["--moving-average", "--averaging-constant", "0.3", "--chunk", "1"], True),
                ("ma_sym_per_batch", {"moving_average": True, "symmetric": True},
                 ["--moving-average", "--symmetric", "1", "--chunk", "1"], True),
            ]
            for tag, extra, args, per_batch in mm_configs:
                name = f"{cname}/minmax/{tag}"
                rlo, rhi, _ = ort_calibrate(tmp, CalibrationMethod.MinMax, batches, extra, per_batch)
                lo, hi, _ = ours(files, ["--method", "minmax", *args])
                check(name, rel_ok(lo, rlo, 1e-6) and rel_ok(hi, rhi, 1e-6), f"ours ({lo}, {hi}) ort ({rlo}, {rhi})")

            # ---- Histogram methods
            h_configs = [
                ("entropy_default", CalibrationMethod.Entropy, {}, ["--method", "entropy"]),
                ("entropy_512", CalibrationMethod.Entropy, {"num_bins": 512, "num_quantized_bins": 128},
                 ["--method", "entropy", "--num-bins", "512", "--num-quantized-bins", "128"]),
                ("entropy_1001_q255", CalibrationMethod.Entropy, {"num_bins": 1001, "num_quantized_bins": 255},
                 ["--method", "entropy", "--num-bins", "1001", "--num-quantized-bins", "255"]),
                ("percentile_default", CalibrationMethod.Percentile, {}, ["--method", "percentile"]),
                ("percentile_99.9", CalibrationMethod.Percentile, {"percentile": 99.9},
                 ["--method", "percentile", "--percentile", "99.9"]),
                ("percentile_99_nonsym", CalibrationMethod.Percentile, {"percentile": 99.0, "symmetric": False},
                 ["--method", "percentile", "--percentile", "99", "--symmetric", "0"]),
            ]
            for tag, method, extra, args in h_configs:
                name = f"{cname}/{tag}"
                # two passes == ORT's default single collect_data() call over all batches. (ORT stacks a
                # call's batches with np.asarray, which needs equal sizes; its flattened stack is the
                # concatenation, so it gets that as the one batch of the one call.)
                lo, hi, h = ours(files, [*args, "--two-pass"], want_hist=True)
                rlo, rhi, rh = ort_calibrate(tmp, method, [np.concatenate(batches)], extra, False)
                ok = len(h[0]) == len(rh[0]) and np.array_equal(h[0], rh[0])
                ok = ok and np.array_equal(h[1], np.asarray(rh[1], np.float32))
                check(name + "/two_pass_hist", ok, "histogram differs from ORT's single-call histogram")
                scale = max(abs(rlo), abs(rhi), 1e-30)
                check(name + "/two_pass_range", rel_ok(lo, rlo, 1e-3, scale) and rel_ok(hi, rhi, 1e-3, scale),
                      f"ours ({lo}, {hi}) ort single call ({rlo}, {rhi})")
                if method == CalibrationMethod.Percentile:
                    # the same without the histogram when the extremes of the first pass decide it: exactly
                    # the histogram route's range (tails on is the default; --no-tails forces the histogram)
                    hlo, hhi, _ = ours(files, [*args, "--two-pass", "--no-tails"])
                    check(name + "/tails_equal_histogram", (lo, hi) == (hlo, hhi),
                          f"tails ({lo}, {hi}) histogram ({hlo}, {hhi})")
                    ours(files, [*args, "--two-pass"])
                    tails_decided += last_passes == 1
                    if last_passes != 1:
                        print(f"  {name}: two passes (the extremes kept did not decide it)", flush=True)
                one_call = (rlo, rhi)

                # one pass, histogram grown batch by batch == ORT fed one batch per collect_data() call
                lo, hi, h = ours(files, args, want_hist=True)
                if method == CalibrationMethod.Entropy and len(h[0]) > MAX_ENTROPY_BINS:
                    skipped += 1
                    print(f"skip {name} (streaming): {len(h[0])} bins", flush=True)
                    continue
                rlo, rhi, rh = ort_calibrate(tmp, method, batches, extra, True)
                if cname.endswith("first_spans"):
                    check(name + "/one_call", one_call == (rlo, rhi), f"ORT single call {one_call} vs ({rlo}, {rhi})")
                same_bins = len(h[0]) == len(rh[0])
                check(name + "/hist_counts", same_bins and np.array_equal(h[0], rh[0]),
                      f"bins {len(h[0])} vs {len(rh[0])}" if not same_bins else
                      f"{int(np.abs(h[0] - rh[0]).sum())} counts differ")
                check(name + "/hist_edges", same_bins and np.array_equal(h[1], np.asarray(rh[1], np.float32)),
                      "edges differ" if same_bins else "bin count differs")
                scale = max(abs(rlo), abs(rhi), 1e-30)
                check(name + "/range", rel_ok(lo, rlo, 1e-3, scale) and rel_ok(hi, rhi, 1e-3, scale),
                      f"ours ({lo}, {hi}) ort ({rlo}, {rhi})")

    print(f"({skipped} Entropy configurations skipped: histogram too large for ORT's Python search)")
    # One pass for all of these small cases: the extremes decide, or, where (1 - p) * total is a whole number
    # (numpy's float64 CDF may then round either way), the stashed values of these small tensors give the
    # histogram after the first pass (tests/unit/test_calib_tails.cc covers the second-pass fallback).
    check("tails_used", tails_decided == 27, f"only {tails_decided} Percentile configurations took one pass")
    print(f"({tails_decided} Percentile configurations decided in the first pass)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
