"""The vectorised math paths of the executor against onnxruntime 1.32 (graph optimizations disabled):

- Sigmoid, Tanh, Erf, Exp, Gelu (both forms), Elu, LeakyRelu, Softplus, Mish on odd shapes with NaN / +-inf / denormals / tails;
- Log and Sqrt (vectorised this session) with zeros, negatives, denormals, +-inf, NaN: Log against ORT and within
  one ulp of float64 numpy over random bit patterns, Sqrt bit for bit; Sin and Cos likewise (ORT at the QA shape,
  one ulp of float64 over random bit patterns, large arguments and specials);
- Softmax and LogSoftmax over the last axis at the shapes of the QA findings (rows of 16, 91, 98, 197, 1000, and
  short ones) and strided axes (the segmentation head's axis 1 of 1x21x128x128, axis 2 of 1x4x98x98);
- Where bit for bit at the QA shapes (attention mask broadcast, full operands) and odd broadcasts, 1-8 byte types;
- Pow by a constant 2 or 3 bit for bit (ORT computes x * x and x * x * x; std::pow, used before, rounded x^3
  differently on about 1 input in 10: this check failed on the old binary), 0.5 / 1 / -1 within one ulp;
- Cast float32 -> float16 bit for bit over a dense sweep of float bit patterns (F16C path);
- Shrink on int8 / uint8 / int16 / uint16 / int32 / int64 (ORT's float32 arithmetic), exactly;
- MaxPool with stride 1 and large kernels (YOLO SPPF / SPP: 5x5, 9x9, 13x13 with same padding; the separable
  path) and odd shapes with strides 2-3, ceil_mode and -inf, bit for bit (finite inputs: ORT's MLAS MaxPool and
  ours differ only on NaN, which ours ignores and MLAS propagates depending on its position in the window).

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402
from test_exec_fixes_ort import model, run_oq, run_ort, same_specials  # noqa: E402


def with_tails(rng, shape, scale):
    """Normal values times `scale`, with NaN, +-inf, denormals and large magnitudes sprinkled in."""
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    flat = x.reshape(-1)
    specials = np.array([np.nan, np.inf, -np.inf, 1e-40, -1e-40, 0.0, -0.0, 90.0, -90.0, 200.0, -200.0, 1e30, -1e30],
                        np.float32)
    idx = rng.choice(flat.size, size=specials.size * 3, replace=False)
    flat[idx] = np.tile(specials, 3)
    return x


def test_activations():
    rng = np.random.default_rng(171)
    cases = [("Sigmoid", {}, 13), ("Tanh", {}, 13), ("Erf", {}, 13), ("Exp", {}, 13), ("Elu", {"alpha": 0.7}, 13),
             ("LeakyRelu", {"alpha": 0.1}, 13), ("Softplus", {}, 13), ("Mish", {}, 18), ("Gelu", {}, 20),
             ("Gelu", {"approximate": "tanh"}, 20)]
    for op, attrs, opset in cases:
        for shape in ([2, 3, 37, 41], [8, 197, 77], [7, 13]):
            x = with_tails(rng, shape, 4.0)
            m = model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", shape)], ["y"], [], opset)
            label = f"{op}{attrs} {shape}"
            same_specials(label, run_oq(label.replace(" ", "_").replace("'", "")[:40], m, {"x": x})[0],
                          run_ort(m, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_softmax_last_axis_and_strided():
    rng = np.random.default_rng(172)
    for op, shape, axis in [("Softmax", [8, 3, 197, 197], -1), ("Softmax", [1, 6825, 91], -1),
                            ("Softmax", [1, 4, 8400, 16], -1), ("LogSoftmax", [8, 98, 1000], -1),
                            ("Softmax", [1, 4, 98, 98], -1), ("Softmax", [5, 9, 13], -1), ("LogSoftmax", [7, 3, 17], -1),
                            ("Softmax", [3, 17, 5], 1), ("LogSoftmax", [2, 33, 7], 1),
                            ("Softmax", [1, 21, 128, 128], 1), ("Softmax", [1, 4, 98, 98], 2),
                            ("LogSoftmax", [2, 5, 19, 3], 1)]:
        x = (rng.standard_normal(shape) * 8).astype(np.float32)
        m = model([helper.make_node(op, ["x"], ["y"], axis=axis)], [("x", shape)], ["y"], [], 13)
        label = f"{op}_{'x'.join(map(str, shape))}_{axis}"
        same_specials(label, run_oq(label, m, {"x": x})[0], run_ort(m, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_log_sqrt_specials_and_sweep():
    rng = np.random.default_rng(175)
    specials = np.array([0.0, -0.0, 1e-45, 1e-40, -1e-40, 1.1754944e-38, 1.0, -1.0, 0.5, 2.0, 3.4e38, np.inf, -np.inf,
                         np.nan, 0.70710677, 0.7071068, 1.4142135, 1.4142137], np.float32)
    for shape in ([8, 197, 768], [3, 37, 41], [7, 13]):
        x = np.abs(rng.standard_normal(shape) * 3).astype(np.float32)
        x.reshape(-1)[rng.choice(x.size, size=x.size // 7, replace=False)] *= -1
        x.reshape(-1)[:specials.size] = specials
        for op in ("Log", "Sqrt"):
            m = model([helper.make_node(op, ["x"], ["y"])], [("x", shape)], ["y"], [], 13)
            label = f"{op}_{'x'.join(map(str, shape))}"
            got, want = run_oq(label, m, {"x": x})[0], run_ort(m, {"x": x})[0]
            if op == "Sqrt":  # both correctly rounded
                same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
                assert same.all(), f"{label}: {np.sum(~same)} values differ from ORT, first x = {x[~same][0]!r}"
            else:
                same_specials(label, got, want, rtol=3e-7, atol=0)
    # Log within one ulp of the float64 result over random bit patterns (every exponent, denormals included).
    x = random_bits(rng, 200003).reshape(1, -1)
    m = model([helper.make_node("Log", ["x"], ["y"])], [("x", x.shape)], ["y"], [], 13)
    got = run_oq("log_bits", m, {"x": x})[0]
    with np.errstate(all="ignore"):
        want = np.log(x.astype(np.float64))
    ok = np.isfinite(want)
    assert np.array_equal(got[~ok], want[~ok].astype(np.float32), equal_nan=True)  # NaN, -inf for +-0, +inf
    ulp = np.spacing(np.abs(want[ok]).astype(np.float32)).astype(np.float64)
    err = np.abs(got[ok] - want[ok]) / ulp
    assert err.max() <= 1.0, f"log: {err.max():.2f} ulps at x = {x[ok][np.argmax(err)]!r}"


def test_sin_cos():
    rng = np.random.default_rng(177)
    for shape in ([8, 197, 768], [5, 33]):
        x = (rng.standard_normal(shape) * 50).astype(np.float32)
        x.reshape(-1)[:9] = [0.0, -0.0, np.inf, -np.inf, np.nan, 3e8, -5e8, 1e-40, 1e30]
        for op in ("Sin", "Cos"):
            m = model([helper.make_node(op, ["x"], ["y"])], [("x", shape)], ["y"], [], 13)
            label = f"{op}_{'x'.join(map(str, shape))}"
            same_specials(label, run_oq(label, m, {"x": x})[0], run_ort(m, {"x": x})[0], rtol=1e-5, atol=1e-6)
    # Within one ulp of the float64 result (ulp of the float result) over random bit patterns.
    x = random_bits(rng, 100003).reshape(1, -1)
    for op, f in (("Sin", np.sin), ("Cos", np.cos)):
        m = model([helper.make_node(op, ["x"], ["y"])], [("x", x.shape)], ["y"], [], 13)
        got = run_oq(f"{op}_bits", m, {"x": x})[0]
        with np.errstate(all="ignore"):
            want = f(x.astype(np.float64))
        ok = np.isfinite(want)
        assert np.array_equal(np.isnan(got), ~ok), op
        err = np.abs(got[ok] - want[ok]) / np.spacing(np.abs(want[ok]).astype(np.float32)).astype(np.float64)
        assert err.max() <= 1.0, f"{op}: {err.max():.2f} ulps at x = {x[ok][np.argmax(err)]!r}"


def test_where_bit_for_bit():
    rng = np.random.default_rng(176)
    cases = [([1, 1, 1, 98], [1, 4, 98, 98], []), ([1, 64, 80, 80], [1, 64, 80, 80], [1, 64, 80, 80]),
             ([3, 1, 5], [1, 4, 5], [3, 4, 1]), ([7, 1], [], [1, 9]), ([2, 3, 1, 6], [3, 5, 1], [6])]
    for dt in (np.float32, np.int64, np.uint8, np.float64):  # 4, 8, 1 byte (ORT has no float16 Where)
        for cs, xs, ys in cases:
            c = rng.uniform(0, 1, cs) > 0.4
            x, y = (rng.standard_normal(s) * 100 for s in (xs, ys))
            x, y = (v.astype(dt) for v in (x, y))
            ty = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
            g = helper.make_graph([helper.make_node("Where", ["c", "x", "y"], ["o"])], "g",
                                  [helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, cs),
                                   helper.make_tensor_value_info("x", ty, xs), helper.make_tensor_value_info("y", ty, ys)],
                                  [onnx.ValueInfoProto(name="o")])
            m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 16)])
            m.ir_version = 8
            feeds = {"c": c, "x": np.asarray(x), "y": np.asarray(y)}
            label = f"where_{np.dtype(dt).name}_{'x'.join(map(str, cs))}"
            got, want = run_oq(label, m, feeds)[0], run_ort(m, feeds)[0]
            assert got.shape == want.shape, (label, got.shape, want.shape)
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), f"{label}: differs from ORT"


def random_bits(rng, n):
    return rng.integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)


def test_pow_constant_exponents():
    rng = np.random.default_rng(173)
    x = np.concatenate([random_bits(rng, 100003), (rng.standard_normal(50000) * 3).astype(np.float32),
                        np.array([0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45], np.float32)]).reshape(1, -1)
    for e, dt in [(2.0, np.float32), (3.0, np.float32), (2, np.int64), (3, np.int64), (0.5, np.float32),
                  (1.0, np.float32), (-1.0, np.float32)]:
        m = model([helper.make_node("Pow", ["x", "e"], ["y"])], [("x", x.shape)], ["y"],
                  [numpy_helper.from_array(np.array(e, dt), "e")], 15)
        label = f"pow_{e}_{np.dtype(dt).name}"
        got, want = run_oq(label, m, {"x": x})[0], run_ort(m, {"x": x})[0]
        if e in (2, 3):  # bit for bit
            diff = (got.view(np.uint32) != want.view(np.uint32)) & ~(np.isnan(got) & np.isnan(want))
            assert not diff.any(), (f"{label}: {diff.sum()} of {diff.size} values differ from ORT, first x = "
                                    f"{x[diff][0]!r}: ours {got[diff][0]!r}, ORT {want[diff][0]!r}")
        else:
            same_specials(label, got, want, rtol=1.2e-7, atol=1e-45)


def test_cast_float16_bit_for_bit():
    bits = np.arange(0, 2 ** 32, 997, dtype=np.uint64).astype(np.uint32)
    ties = (np.arange(0, 2 ** 19, 3, dtype=np.uint32)[:, None] << 13 | np.array([0xfff, 0x1000, 0x1001], np.uint32))
    x = np.concatenate([bits, ties.reshape(-1)]).view(np.float32).reshape(1, -1)
    m = model([helper.make_node("Cast", ["x"], ["y"], to=10)], [("x", x.shape)], ["y"], [], 13)
    got, want = run_oq("cast_f16", m, {"x": x})[0], run_ort(m, {"x": x})[0]
    got = got.astype(np.float16)  # `run` may write float16 outputs widened to float32: exact both ways
    diff = (got.view(np.uint16) != want.view(np.uint16)) & ~(np.isnan(got) & np.isnan(want))
    assert not diff.any(), (f"cast: {diff.sum()} values differ from ORT, first x bits "
                            f"{x.view(np.uint32)[diff][0]:#x}: ours {got.view(np.uint16)[diff][0]:#x}, "
                            f"ORT {want.view(np.uint16)[diff][0]:#x}")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(x))


def test_maxpool_sppf_and_odd_shapes():
    rng = np.random.default_rng(174)
    cases = [([1, 128, 20, 20], 5, 1, 2, 0), ([1, 32, 40, 40], 9, 1, 4, 0), ([1, 16, 20, 20], 13, 1, 6, 0),
             ([2, 3, 17, 23], 7, 2, 3, 1), ([1, 5, 13, 11], 4, 3, 1, 1), ([1, 4, 9, 31], 3, 2, 0, 0)]
    for shape, k, s, p, ceil in cases:
        x = rng.standard_normal(shape).astype(np.float32)
        x.reshape(-1)[rng.choice(x.size, size=x.size // 20, replace=False)] = -np.inf
        node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p],
                                ceil_mode=ceil)
        m = model([node], [("x", shape)], ["y"], [], 12)
        label = f"maxpool_{k}x{k}_s{s}_p{p}_c{ceil}_{'x'.join(map(str, shape))}"
        got, want = run_oq(label, m, {"x": x})[0], run_ort(m, {"x": x})[0]
        assert got.shape == want.shape, (label, got.shape, want.shape)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (
            f"{label}: {np.sum(got != want)} values differ from ORT")


def test_shrink_integers():
    """Shrink-9 takes every numeric type; the executor refused integers ("unsupported dtype INT8"). ORT compares
    and shifts in float32 and converts back: int8 [-100 -2 0 2 100] with lambd 1.5, bias 1 gives [-99 -1 0 1 99]."""
    rng = np.random.default_rng(175)
    cases = [(np.int8, -100, 101, 1.5, 1.0), (np.uint8, 0, 256, 3.0, 2.0), (np.int32, -100000, 100000, 10.5, 7.0),
             (np.int16, -3000, 3000, 0.5, 0.0), (np.int64, -10 ** 6, 10 ** 6, 2.0, -3.0),
             (np.uint16, 0, 60000, 4.0, 4.0)]
    for dt, lo, hi, lambd, bias in cases:
        x = rng.integers(lo, hi, (3, 37)).astype(dt)
        x.reshape(-1)[:5] = np.array([-100, -2, 0, 2, 100] if lo < 0 else [0, 2, 3, 4, 200], dt)
        tp = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
        g = helper.make_graph([helper.make_node("Shrink", ["x"], ["y"], lambd=lambd, bias=bias)], "g",
                              [helper.make_tensor_value_info("x", tp, list(x.shape))],
                              [helper.make_tensor_value_info("y", tp, None)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        label = f"shrink_{np.dtype(dt).name}"
        got, want = run_oq(label, m, {"x": x})[0], run_ort(m, {"x": x})[0]
        assert got.dtype == want.dtype and np.array_equal(got, want), f"{label}: {got[0, :5]} vs ORT {want[0, :5]}"
        if dt == np.int8:
            assert want[0, :5].tolist() == [-99, -1, 0, 1, 99], want[0, :5]


if __name__ == "__main__":
    oqtest.run_module_tests(globals())
