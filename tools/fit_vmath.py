#!/usr/bin/env python3
"""Fits the polynomial coefficients of src/exec/kernels/vmath.cc (least squares on Chebyshev nodes, in double,
against Python's math module) and prints them as float32. Run: .venv/bin/python tools/fit_vmath.py"""
import math

import numpy as np


def fit(f, a, b, deg, var=lambda x: x, weight=lambda x: 1.0, n=4000):
    k = np.arange(n)
    x = (a + b) / 2 + (b - a) / 2 * np.cos(np.pi * (k + 0.5) / n)
    y = np.array([f(v) for v in x])
    w = np.array([weight(v) for v in x])
    A = np.vander(var(x), deg + 1, increasing=True)
    c, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
    return [float(np.float32(v)) for v in c], float(np.max(np.abs((A @ c - y) * w)))


def main():
    h = math.log(2) / 2
    # exp(r) = 1 + r + r^2 P(r), |r| <= ln2 / 2
    print("exp", fit(lambda r: (math.exp(r) - 1 - r) / (r * r) if abs(r) > 1e-6 else 0.5 + r / 6, -h, h, 5,
                     weight=lambda r: r * r))
    # tanh(x) = x + x t P(t), t = x^2, |x| <= 0.625
    print("tanh", fit(lambda x: (math.tanh(x) - x) / x ** 3, 1e-4, 0.625, 4, var=lambda x: x * x,
                      weight=lambda x: x * x))
    # erf(x) = x + x P(t), t = x^2, |x| <= 0.921875
    print("erf_small", fit(lambda x: (math.erf(x) - x) / x, 1e-4, 0.921875, 6, var=lambda x: x * x))
    # erf(x) = 1 - exp(Q(x - 2.5)), 0.921875 <= x <= 3.925 (erf rounds to 1 in float32 above)
    print("erf_big", fit(lambda x: math.log(math.erfc(x)), 0.921875, 3.925, 8, var=lambda x: x - 2.5))


if __name__ == "__main__":
    main()
