#!/usr/bin/env python3
"""Compares the quantization parameters of two QDQ models (e.g. ONNX Runtime's and onnxquant's output of the
same benchmark run), so that a speed ratio is known to compare runs that computed the same thing.

    .venv/bin/python bench/compare_qparams.py ORT_MODEL.onnx OQ_MODEL.onnx

Prints, for the scale / zero-point initializers both models have (matched by name: onnxquant names them as
ORT does), the number compared, how many differ, and the largest relative scale difference and zero-point
difference; then the names only one model has. Exit code 0 always (a report, not a test).
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def qparams(path):
    m = onnx.load(path)
    return {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer
            if t.name.endswith("_scale") or t.name.endswith("_zero_point")}


def main():
    a, b = qparams(sys.argv[1]), qparams(sys.argv[2])
    common = sorted(set(a) & set(b))
    scales = [n for n in common if n.endswith("_scale")]
    worst_scale, worst_name, differ, worst_zp = 0.0, "", 0, 0.0
    for n in common:
        x, y = a[n], b[n]
        if x.shape != y.shape:
            print(f"{n}: shapes {x.shape} vs {y.shape}")
            differ += 1
            continue
        if n.endswith("_scale"):
            rel = float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-30)))
            if rel > worst_scale:
                worst_scale, worst_name = rel, n
            differ += rel > 0
        else:
            d = float(np.max(np.abs(x - y))) if x.size else 0.0
            worst_zp = max(worst_zp, d)
            differ += d > 0
    print(f"{len(common)} scale/zero-point initializers in both ({len(scales)} scales); {differ} differ; "
          f"largest relative scale difference {worst_scale:.3g} ({worst_name or '-'}), largest zero-point "
          f"difference {worst_zp:g}")
    for label, only in (("only in the first", sorted(set(a) - set(b))), ("only in the second", sorted(set(b) - set(a)))):
        if only:
            print(f"{len(only)} {label}: {', '.join(only[:6])}{' ...' if len(only) > 6 else ''}")


if __name__ == "__main__":
    main()
