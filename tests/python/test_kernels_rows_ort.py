"""The executor's row paths (exec/kernels/row_stats.h) against onnxruntime 1.32 (graph optimizations disabled), at
the shapes of the executor QA findings and odd ones:

- MeanVarianceNormalization (default axes on [1, 64, 56, 56], and other axis sets) and LpNormalization (last and
  inner axes, p = 1 / 2): rtol / atol 1e-5 (ORT sums in float, ours in double);
- LayerNormalization with axis = 1 on NCHW (full-size scale and bias, used without a copy);
- ReduceSum / Mean / Max / Min / L1 / L2 / SumSquare / LogSumExp over the last axis of [4, 98, 98] and
  [8, 197, 192], over (2, 3) of NCHW with keepdims and over axis 3 without: rtol 1e-5 (Max / Min bit for bit);
- ReduceLogSumExp on values near 1000 and 1e30 (and near -1000), where exp overflows (underflows): ORT shifts by
  the maximum and stays finite, and so does the executor now, over the last axis and any other (it summed exp(x)
  in double before, giving +-inf: this check failed on the old binary);
- GlobalMaxPool [1, 256, 28, 28] bit for bit, and NaN in a plane giving NaN (numpy's max; ORT's MLAS result
  depends on where the NaN sits, so that case is checked against numpy);
- GlobalLpPool with p = 1, 2 (default), 3 on 3-D to 5-D inputs, opsets 13 (ORT and numpy) and 22
  (numpy: ORT 1.32 has no GlobalLpPool-22 kernel);
- NonZero [1, 64, 80, 80] at 10 % density and other dtypes / shapes, exactly.

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402
from test_exec_fixes_ort import model, run_oq, run_ort, same_specials  # noqa: E402


def compare(label, m, feeds, rtol=1e-5, atol=1e-5, exact=False):
    got, want = run_oq(label, m, feeds)[0], run_ort(m, feeds)[0]
    if exact:
        assert got.shape == want.shape and got.dtype == want.dtype, (label, got.shape, want.shape, got.dtype)
        assert np.array_equal(got, want), f"{label}: {np.sum(got != want)} values differ from ORT"
    else:
        same_specials(label, got, want, rtol=rtol, atol=atol)


def test_mean_variance_and_lp_norm():
    rng = np.random.default_rng(191)
    for shape, axes in [([1, 64, 56, 56], None), ([2, 3, 17, 19], [0, 2, 3]), ([2, 5, 7, 9], [1]),
                        ([3, 4, 11, 13], [2, 3]), ([3, 5, 7, 9], [0, 3])]:
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        attrs = {} if axes is None else {"axes": axes}
        m = model([helper.make_node("MeanVarianceNormalization", ["x"], ["y"], **attrs)], [("x", shape)], ["y"], [], 13)
        compare(f"mvn_{'x'.join(map(str, shape))}_{axes}", m, {"x": x})
    for shape, axis, p in [([8, 197, 192], -1, 2), ([8, 197, 192], 1, 1), ([3, 17, 29], 0, 2), ([5, 33], -1, 1)]:
        x = rng.standard_normal(shape).astype(np.float32)
        x[0, ..., 0] = 0  # a zero slice (norm 0 gives 0)
        m = model([helper.make_node("LpNormalization", ["x"], ["y"], axis=axis, p=p)], [("x", shape)], ["y"], [], 13)
        compare(f"lpnorm_{'x'.join(map(str, shape))}_a{axis}_p{p}", m, {"x": x})


def test_layer_norm_axis1_nchw():
    rng = np.random.default_rng(192)
    for shape in ([1, 96, 56, 56], [2, 7, 5, 3]):
        x = rng.standard_normal(shape).astype(np.float32)
        s = rng.standard_normal(shape[1:]).astype(np.float32)
        b = rng.standard_normal(shape[1:]).astype(np.float32)
        inits = [numpy_helper.from_array(s, "s"), numpy_helper.from_array(b, "b")]
        m = model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=1)], [("x", shape)], ["y"],
                  inits, 17)
        compare(f"layernorm_ax1_{'x'.join(map(str, shape))}", m, {"x": x}, rtol=1e-4, atol=1e-4)


def reduce_model(op, shape, axes, keepdims):
    ax = numpy_helper.from_array(np.array(axes, np.int64), "axes")
    return model([helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)], [("x", shape)], ["y"], [ax], 18)


def test_reductions_over_innermost_axes():
    rng = np.random.default_rng(193)
    ops = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceSumSquare",
           "ReduceLogSumExp"]
    for shape, axes, keep in [([4, 98, 98], [-1], 1), ([8, 197, 192], [-1], 1), ([1, 256, 28, 28], [2, 3], 1),
                              ([1, 256, 28, 28], [3], 0), ([1, 256, 28, 28], [0, 2, 3], 1), ([3, 5, 7], [2], 0)]:
        x = (rng.standard_normal(shape) * 3).astype(np.float32)
        # Sum / Mean cancel: ORT's float sums are off by ~1e-7 of the sum of |x| (ours sum in double).
        mag = np.sum(np.abs(x), axis=tuple(axes))
        for op in ops:
            label = f"{op}_{'x'.join(map(str, shape))}_{'_'.join(map(str, axes))}_k{keep}"
            atol = 1e-6 * float(np.max(mag / (x.size / mag.size if op == "ReduceMean" else 1))) + 1e-6
            compare(label, reduce_model(op, shape, axes, keep), {"x": x}, atol=atol,
                    exact=op in ("ReduceMax", "ReduceMin"))


def test_log_sum_exp_large_values():
    x = np.array([[1000.0, 999.0, 998.5, 990.0], [1e30, 1e30, -1e30, 0.0], [88.0, 89.0, 90.0, 91.0],
                  [-1000.0, -1001.0, -999.0, -1e30]], np.float32)
    m = reduce_model("ReduceLogSumExp", list(x.shape), [1], 0)
    got, want = run_oq("lse_large", m, {"x": x})[0], run_ort(m, {"x": x})[0]
    assert np.all(np.isfinite(got)), f"ReduceLogSumExp on large values: {got.tolist()} (ORT {want.tolist()})"
    np.testing.assert_allclose(got, want, rtol=1e-6, err_msg="ReduceLogSumExp on large values")
    # Over the first / middle axis (not the row path): shifted by the max as well.
    x3 = (np.random.default_rng(196).standard_normal((4, 5, 3)) * 3 + 1000).astype(np.float32)
    for axes in ([0], [1], [0, 2]):
        m = reduce_model("ReduceLogSumExp", list(x3.shape), axes, 1)
        got, want = run_oq(f"lse_large_{axes}", m, {"x": x3})[0], run_ort(m, {"x": x3})[0]
        assert np.all(np.isfinite(got)), f"ReduceLogSumExp axes {axes} on large values: {got.ravel()[:4]}"
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=f"ReduceLogSumExp axes {axes} on large values")


def test_global_max_pool():
    rng = np.random.default_rng(194)
    for shape in ([1, 256, 28, 28], [2, 5, 7, 9], [3, 4, 13]):
        x = rng.standard_normal(shape).astype(np.float32)
        m = model([helper.make_node("GlobalMaxPool", ["x"], ["y"])], [("x", shape)], ["y"], [], 13)
        compare(f"gmp_{'x'.join(map(str, shape))}", m, {"x": x}, exact=True)
    x = rng.standard_normal([1, 4, 5, 5]).astype(np.float32)
    x[0, 2, 3, 1] = np.nan
    m = model([helper.make_node("GlobalMaxPool", ["x"], ["y"])], [("x", list(x.shape))], ["y"], [], 13)
    got = run_oq("gmp_nan", m, {"x": x})[0]
    np.testing.assert_array_equal(got, np.max(x, axis=(2, 3), keepdims=True))


def test_global_lp_pool():
    """GlobalLpPool (opsets 2 and 22: LpPool over every spatial axis) had no kernel: a valid model was refused."""
    rng = np.random.default_rng(196)
    for shape, p, opset in (([1, 2, 3, 4], None, 13), ([2, 5, 7, 9], 1, 13), ([3, 4, 13], 3, 13),
                            ([1, 3, 2, 3, 4], 2, 13), ([2, 6, 5, 5], 3, 22)):
        x = rng.standard_normal(shape).astype(np.float32)
        attrs = {} if p is None else {"p": p}
        m = model([helper.make_node("GlobalLpPool", ["x"], ["y"], **attrs)], [("x", shape)], ["y"], [], opset)
        label = f"glp_p{p}_{opset}_{'x'.join(map(str, shape))}"
        got = run_oq(label, m, {"x": x})[0]
        want = np.sum(np.abs(x.astype(np.float64)) ** (p or 2), axis=tuple(range(2, len(shape))),
                      keepdims=True) ** (1 / (p or 2))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=label)
        if opset < 22:  # ORT 1.32 has no GlobalLpPool-22 kernel
            same_specials(label, got, run_ort(m, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_non_zero():
    rng = np.random.default_rng(195)
    cases = [((1, 64, 80, 80), np.float32, TensorProto.FLOAT), ((3, 5, 7), np.int64, TensorProto.INT64),
             ((4099,), np.float32, TensorProto.FLOAT), ((2, 9, 1, 5), np.bool_, TensorProto.BOOL),
             ((6, 11), np.int32, TensorProto.INT32), ((7, 3, 5), np.uint8, TensorProto.UINT8)]
    for shape, dt, tp in cases:
        x = (rng.uniform(0, 1, shape) > 0.9) * rng.integers(1, 5, shape)
        x = x.astype(dt)
        if dt == np.float32:
            x.reshape(-1)[:7] = [-0.0, np.nan, 0.0, -1.5, 0.0, -0.0, 2.0]
        g = helper.make_graph([helper.make_node("NonZero", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", tp, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        compare(f"nonzero_{np.dtype(dt).name}_{'x'.join(map(str, shape))}", m, {"x": x}, exact=True)


if __name__ == "__main__":
    oqtest.run_module_tests(globals())
