"""Executor kernels GroupNormalization, LRN, MeanVarianceNormalization, LpNormalization, Hardmax, LpPool, MaxUnpool,
BitwiseAnd/Or/Xor/Not, BitShift, Compress, ReverseSequence, CenterCropPad and Unique against onnxruntime: single-node models on random odd shapes (fixed seed) run
through `onnxquant run`; outputs compared with ORT 1.32 (exact for integers and Hardmax / MaxUnpool, rtol/atol 1e-5
for float32 unless noted, 1e-12 for float64, 2e-3 relative for float16 / bfloat16).

Where ORT lacks the case or disagrees with the spec, the oracle is named in the case:
  - onnx.reference: float64 Hardmax, LpPool, MaxUnpool, Det (no ORT float64 kernel), Col2Im on 1-D / 3-D images
    (ORT: 2-D only), DFT with inverse + onesided (IRFFT, which ORT 1.32 does not implement) and float64 inverse DFT
    (ORT's is ~1e-8 relative off numpy's FFT), shifts by the element width or more
    (undefined in ORT's C++ shift; numpy and the reference give 0, as BitShift-28 now specifies).
  - numpy (the formula written out here, checked against ORT on the odd-size float32 cases): LRN with an even
    `size` (ORT refuses it), on 3-D / 5-D input (ORT takes 4-D only), in float64 (no ORT kernel; onnx.reference's
    LRN sums over the wrong axis, the batch one), and
    MeanVarianceNormalization in float64 / float16 (the function body adds a float epsilon to a T tensor: ORT and
    the reference both fail with a type error), and a constant MeanVarianceNormalization slice (ORT's kernel gives
    NaN; the spec's body (x - mean) / (std + 1e-9) gives 0).
  - Unique with NaN (ORT's comparator merges a NaN into a number; numpy / the reference: one NaN, sorted last) and on
    bool (no ORT kernel): onnx.reference. CenterCropPad with an int32 `shape` (ORT's function body fails): reference.
  - AffineGrid with align_corners=1 on a size-1 axis: onnx.reference (ORT: +1, reference: -1).
  - Hardmax before opset 13: ORT (the reference applies the opset-13 rule to every version).
  - MaxUnpool with output_shape larger than the default: ORT (the reference indexes the default shape).
  - LpPool with auto_pad SAME and dilations is not compared: ORT 1.32 computes a smaller output than ONNX's shape
    inference (its pads ignore the dilation) and onnx.reference ignores LpPool's dilations altogether.
  - strings (Compress, ReverseSequence, CenterCropPad, Unique take them): `onnxquant run` cannot write a string
    output as .npy, so they are covered by tests/unit/test_kernels_extra.cc only.
  - float16 models: `onnxquant run` computes them in float32 (the float16 execution copy), so these cases check
    that path; the kernels' own float16 path is covered by tests/unit/test_kernels_extra.cc and the node tests.
Then quantization parity: Conv -> X -> Conv graphs for the ops ORT keeps whole (none of them is in ORT's QDQ
registry) quantized by onnxquant and quantize_static (after quant_pre_process): same wiring, Q/DQ per op type,
scales; written models run in ORT. GroupNormalization: quant_pre_process expands it into its function body
(ORT has no CPU kernel) and so does onnxquant's pre-processing: parity on the raw model, node by node; on the file
quant_pre_process wrote, the documented constant-folding difference. CenterCropPad (also expanded by ORT) stays
whole in onnxquant (documented in docs/conformance.md).

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402
from test_op_parity import compare_with_ort, conv, img, init, model, qdq_counts, quantize_both, rnd  # noqa: E402

rng = np.random.default_rng(20261128)
TMP = oqtest.tmpdir()
F16, F32, F64 = np.float16, np.float32, np.float64


def shape(rank, lo=1, hi=6):
    return tuple(int(v) for v in rng.integers(lo, hi, rank))


def make_model(node, inputs, opset):
    vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs]
    g = helper.make_graph([node], "g", vis, [onnx.ValueInfoProto(name="y")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 21 else 10
    return m


def run_ours(name, m, inputs, outputs=("y",)):
    """`onnxquant run` on model m with the (name, array) inputs; the named outputs (one array for a single name)."""
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    args = ["run", os.path.join(d, "model.onnx"), "--output-dir", os.path.join(d, "out")]
    for n, a in inputs:
        np.save(os.path.join(d, n + ".npy"), np.array(a, order="C"))
        args += ["--input", f"{n}={os.path.join(d, n + '.npy')}"]
    oqtest.run_oq(args)
    got = [np.load(os.path.join(d, "out", o + ".npy"), allow_pickle=True) for o in outputs]
    return got[0] if len(got) == 1 else got


def tol_for(dt):
    return {F16: 2e-3, F32: 1e-5, F64: 1e-12}.get(dt, 0)


def check(name, node, inputs, opset, tol, oracle="ort"):
    """tol: 0 = exact; else rtol = atol = tol (scaled by the largest |value| for float16). oracle: "ort",
    "reference" (onnx.reference) or a function of the inputs returning the expected array."""
    m = make_model(node, inputs, opset)
    feeds = dict(inputs)
    if oracle == "ort":
        want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    elif oracle == "reference":
        want = ReferenceEvaluator(m).run(None, feeds)[0]
    else:
        want = oracle(*[a for _, a in inputs])
    got = run_ours(name, m, inputs)
    if want.dtype == F16 and got.dtype == F32:
        got = got.astype(F16)  # `onnxquant run` computes a float16 model in float32 and writes float32 outputs
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {oracle} {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {oracle} {want.dtype}"
    if tol == 0:
        assert np.array_equal(got, want) if want.dtype != object else got.tolist() == want.tolist(), f"{name}: differs from {oracle}\n{got.tolist()}\n{want.tolist()}"
    else:
        scale = max(1.0, float(np.abs(want.astype(F64)).max(initial=0))) if got.dtype == F16 else 1.0
        np.testing.assert_allclose(got.astype(F64), want.astype(F64), rtol=tol, atol=tol * scale, err_msg=name)


# ---------------------------------------------------------------------------------------------- GroupNormalization
def group_norm_cases():
    for it in range(18):
        opset = [18, 21][it % 2]
        dt = [F32, F32, F64, F16][it % 4] if it < 16 else F64
        g, cpg = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        x = (rng.standard_normal((int(rng.integers(1, 4)), g * cpg) + shape(it % 4, 1, 7)) * 3 + 1).astype(dt)
        n_aff = g if opset == 18 else g * cpg
        s, b = rng.standard_normal(n_aff).astype(dt), rng.standard_normal(n_aff).astype(dt)
        attrs = {"num_groups": g}
        if it % 3 == 0:
            attrs["epsilon"] = float([1e-3, 0.5][it % 2])
        if opset == 21 and dt == F64:
            attrs["stash_type"] = [1, 11][it // 2 % 2]
        node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], **attrs)
        # ORT runs the function body (E[x^2] - E[x]^2 in the stash type): float32 within 1e-4.
        tol = {F32: 1e-4, F64: 1e-4 if attrs.get("stash_type") == 1 else 1e-10, F16: 1e-2}[dt]
        yield f"groupnorm_{it}_{opset}_{np.dtype(dt).name}", node, [("x", x), ("s", s), ("b", b)], opset, tol, "ort"


# ---------------------------------------------------------------------------------------------- LRN
def lrn_numpy(size, alpha, beta, bias):
    alpha, beta, bias = (float(np.float32(v)) for v in (alpha, beta, bias))  # the model's float attributes

    def f(x):
        x64, c = x.astype(F64), x.shape[1]
        sq = np.zeros_like(x64)
        lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
        for ch in range(c):
            sq[:, ch] = (x64[:, max(0, ch - lo):min(c, ch + hi + 1)] ** 2).sum(1)
        return (x64 / (bias + alpha / size * sq) ** beta).astype(x.dtype)
    return f


def lrn_cases():
    for it in range(16):
        size = [1, 3, 5, 7][it % 4] if it < 12 else [2, 4][it % 2]
        dt = [F32, F16, F32][it % 3] if it < 12 else F32
        rank = 4 if it < 14 else [3, 5][it % 2]
        x = (rng.standard_normal(shape(rank, 1, 7)) * 2).astype(dt)
        attrs = dict(size=size)
        if it % 2:
            attrs.update(alpha=float(rng.uniform(1e-4, 0.5)), beta=float(rng.uniform(0.3, 1.2)),
                         bias=float(rng.uniform(0.5, 3)))
        node = helper.make_node("LRN", ["x"], ["y"], **attrs)
        fn = lrn_numpy(size, attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), attrs.get("bias", 1.0))
        if size % 2 and rank == 4 and dt == F32:  # the numpy oracle of the other cases, itself checked against ORT
            want = ort.InferenceSession(make_model(node, [("x", x)], 13).SerializeToString(),
                                        providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            np.testing.assert_allclose(fn(x), want, rtol=1e-5, atol=1e-5)
        oracle = "ort" if size % 2 and rank == 4 else fn
        yield f"lrn_{it}_s{size}_r{rank}_{np.dtype(dt).name}", node, [("x", x)], [7, 13][it % 2], tol_for(dt), oracle
    x = rng.standard_normal((2, 5, 3, 4))
    yield "lrn_f64_numpy", helper.make_node("LRN", ["x"], ["y"], size=3, alpha=0.3), [("x", x)], 13, 1e-12, \
        lrn_numpy(3, 0.3, 0.75, 1.0)


# ---------------------------------------------------------------------------------------------- MVN
def mvn_numpy(axes):
    def f(x):
        x64 = x.astype(F64)
        m = x64.mean(axis=tuple(axes), keepdims=True)
        sd = np.sqrt(((x64 - m) ** 2).mean(axis=tuple(axes), keepdims=True))
        return ((x64 - m) / (sd + 1e-9)).astype(x.dtype)
    return f


def mvn_cases():
    for it in range(14):
        r = int(rng.integers(2, 5)) if it % 3 else 4
        x = (rng.standard_normal(shape(r, 2, 6)) * 3 + 2).astype(F32)
        axes = None if r == 4 and it % 3 == 0 else sorted(set(int(a) for a in rng.integers(0, r, int(rng.integers(1, r + 1)))))
        if axes and it % 2:
            axes = [a - r for a in axes]  # negative spelling
        attrs = {} if axes is None else {"axes": axes}
        node = helper.make_node("MeanVarianceNormalization", ["x"], ["y"], **attrs)
        yield f"mvn_{it}_r{r}", node, [("x", x)], [9, 13][it % 2], 1e-4, "ort"
    for it, dt in enumerate([F64, F16, F64]):
        x = (rng.standard_normal((2, 3, 4, 3)) * 3).astype(dt)
        axes = [[0, 2, 3], [1, 3], [-1]][it]
        node = helper.make_node("MeanVarianceNormalization", ["x"], ["y"], axes=axes)
        yield f"mvn_numpy_{it}_{np.dtype(dt).name}", node, [("x", x)], 13, tol_for(dt) * 10, mvn_numpy(axes)
    x = np.repeat(rng.standard_normal((2, 1, 3)).astype(F32), 4, axis=1)  # constant along axis 1
    yield "mvn_constant_slice", helper.make_node("MeanVarianceNormalization", ["x"], ["y"], axes=[1]), [("x", x)], 13, \
        1e-6, mvn_numpy([1])


# ---------------------------------------------------------------------------------------------- LpNormalization
def lp_norm_cases():
    for it in range(14):
        dt = [F32, F64, F16][it % 3]
        r = int(rng.integers(1, 5))
        x = (rng.standard_normal(shape(r, 1, 7)) * 2).astype(dt)
        if it % 4 == 0:
            x[(0,) * r] = 0  # some all-zero slice when that axis has length 1
        attrs = {"p": 1 + it % 2, "axis": int(rng.integers(-r, r))}
        if it % 5 == 0:
            del attrs["axis"]
        node = helper.make_node("LpNormalization", ["x"], ["y"], **attrs)
        yield f"lpnorm_{it}_{np.dtype(dt).name}", node, [("x", x)], [13, 22][it % 2], tol_for(dt), "ort"
    x = np.zeros((3, 4), F32)
    x[1] = [3, -4, 0, 0]
    yield "lpnorm_zero_rows", helper.make_node("LpNormalization", ["x"], ["y"], axis=1), [("x", x)], 13, 1e-6, "ort"


# ---------------------------------------------------------------------------------------------- Hardmax
def hardmax_cases():
    for it in range(15):
        opset = [7, 11, 13][it % 3]
        dt = [F32, F16][it % 2]
        r = int(rng.integers(1, 5))
        x = rng.integers(-3, 4, shape(r, 1, 6)).astype(dt)  # small integers: many ties (the first wins)
        lo = 0 if opset < 11 else -r
        attrs = {} if it % 4 == 0 else {"axis": int(rng.integers(lo, r))}
        node = helper.make_node("Hardmax", ["x"], ["y"], **attrs)
        yield f"hardmax_{it}_{opset}_{np.dtype(dt).name}", node, [("x", x)], opset, 0, "ort"
    x = rng.standard_normal((3, 4, 5))
    yield "hardmax_f64_reference", helper.make_node("Hardmax", ["x"], ["y"], axis=1), [("x", x)], 13, 0, "reference"


# ---------------------------------------------------------------------------------------------- LpPool
def lp_pool_cases():
    for it in range(20):
        opset = [11, 18, 22, 18][it % 4]
        sp = 1 + it % 3
        dt = F16 if it % 5 == 4 else F32
        x = rng.standard_normal((int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape(sp, 4, 9)).astype(dt)
        k = [int(v) for v in rng.integers(1, 4, sp)]
        attrs = {"kernel_shape": k, "strides": [int(v) for v in rng.integers(1, 3, sp)]}
        if it % 3 == 0:
            attrs["p"] = int(rng.integers(1, 4))
        if it % 6 == 1:
            attrs["auto_pad"] = ["SAME_UPPER", "SAME_LOWER", "VALID"][it % 3]
        else:
            attrs["pads"] = [int(rng.integers(0, kk)) for kk in k] * 2
        if opset >= 18 and it % 2 and "pads" in attrs:  # (ORT: SAME + dilations, see docs/conformance.md)
            attrs["dilations"] = [int(v) for v in rng.integers(1, 3, sp)]
            attrs["ceil_mode"] = it % 4 == 1
        node = helper.make_node("LpPool", ["x"], ["y"], **attrs)
        yield f"lppool_{it}_{opset}_{sp}d_{np.dtype(dt).name}", node, [("x", x)], opset, tol_for(dt), "ort"
    x = rng.standard_normal((1, 2, 6, 5))
    node = helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], p=3)
    yield "lppool_f64_reference", node, [("x", x)], 18, 1e-12, "reference"


# ---------------------------------------------------------------------------------------------- MaxUnpool
def max_unpool_cases():
    for it in range(10):
        sp = 1 + it % 3
        dt = [F32, F16][it % 2]
        k = [int(v) for v in rng.integers(1, 4, sp)]
        s = [int(v) for v in rng.integers(1, 3, sp)]
        pads = [int(rng.integers(0, kk)) for kk in k] * 2 if it % 3 == 0 else None
        xin = rng.standard_normal((int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape(sp, 4, 8)).astype(dt)
        pool_attrs = {"kernel_shape": k, "strides": s, **({"pads": pads} if pads else {})}
        pool = helper.make_node("MaxPool", ["x"], ["p", "i"], **pool_attrs)
        pm = helper.make_model(helper.make_graph(
            [pool], "g", [helper.make_tensor_value_info("x", helper.np_dtype_to_tensor_dtype(xin.dtype), xin.shape)],
            [onnx.ValueInfoProto(name="p"), onnx.ValueInfoProto(name="i")]), opset_imports=[helper.make_opsetid("", 12)])
        pm.ir_version = 8
        pv, iv = ort.InferenceSession(pm.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": xin})
        inputs = [("x", pv), ("i", iv)]
        names = ["x", "i"]
        default = [pv.shape[2 + a] * 0 + (pv.shape[2 + a] - 1) * s[a] + k[a] - (2 * pads[a] if pads else 0)
                   for a in range(sp)]
        if it % 2 or iv.max() >= np.prod(pv.shape[:2]) * np.prod(default):
            # the pooled input's shape (needed when pooling dropped a border: the indices exceed the default
            # output), or a larger one (the flat indices then land elsewhere)
            grow = it % 4 == 3
            inputs.append(("s", np.array(xin.shape, np.int64) + (np.array([0, 0] + [1] * sp) if grow else 0)))
            names.append("s")
        node = helper.make_node("MaxUnpool", names, ["y"], **pool_attrs)
        yield f"maxunpool_{it}_{sp}d_{np.dtype(dt).name}", node, inputs, [11, 22][it % 2], 0, "ort"
    x = rng.standard_normal((1, 2, 2, 3))
    idx = np.array([[[[0, 3, 4], [9, 10, 23]], [[24, 26, 29], [42, 44, 47]]]], np.int64)
    node = helper.make_node("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    yield "maxunpool_f64_reference", node, [("x", x), ("i", idx)], 11, 0, "reference"


# ---------------------------------------------------------------------------------------------- bitwise
INT_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def bitwise_cases():
    for it in range(24):
        op = ["BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"][it % 4]
        dt = INT_TYPES[it % 8]
        info = np.iinfo(dt)
        r = int(rng.integers(1, 5))
        sa = shape(r, 1, 6)
        sb = tuple(1 if rng.random() < 0.3 else d for d in sa)[int(rng.integers(0, r)):]
        a = rng.integers(info.min, info.max, sa, dtype=dt, endpoint=True)
        b = rng.integers(info.min, info.max, sb, dtype=dt, endpoint=True)
        inputs = [("a", a)] if op == "BitwiseNot" else [("a", a), ("b", b)]
        node = helper.make_node(op, [n for n, _ in inputs], ["y"])
        yield f"{op}_{it}_{np.dtype(dt).name}", node, inputs, 18, 0, "ort"
    for it in range(12):
        dt = INT_TYPES[4 + it % 4]
        bits = np.iinfo(dt).bits
        r = int(rng.integers(1, 4))
        sa = shape(r, 1, 6)
        a = rng.integers(0, np.iinfo(dt).max, sa, dtype=dt, endpoint=True)
        wide = it >= 8  # shift counts up to 2x the width: reference only
        b = rng.integers(0, 2 * bits if wide else bits, sa[int(rng.integers(0, r)):], dtype=dt)
        node = helper.make_node("BitShift", ["a", "b"], ["y"], direction=["LEFT", "RIGHT"][it % 2])
        yield f"bitshift_{it}_{np.dtype(dt).name}", node, [("a", a), ("b", b)], [11, 18][it % 2], 0, \
            "reference" if wide else "ort"


# ---------------------------------------------------------------------------------------------- Compress etc.
MOVE_TYPES = [np.float32, np.int64, np.int32, np.uint8, np.int8, np.float64, np.bool_, np.float16, np.uint16]


def rand_of(dt, shp):
    if dt == np.bool_:
        return rng.random(shp) < 0.5
    if dt == object:
        return np.array([f"s{int(v)}" for v in rng.integers(0, 6, int(np.prod(shp)))], object).reshape(shp)
    return (rng.standard_normal(shp) * 4).astype(dt) if np.issubdtype(dt, np.floating) else \
        rng.integers(0, 9, shp).astype(dt)


def compress_cases():
    for it in range(14):
        dt = MOVE_TYPES[it % 9]
        r = int(rng.integers(1, 4))
        x = rand_of(dt, shape(r, 1, 6))
        axis = int(rng.integers(-r, r)) if it % 4 else None
        n = x.size if axis is None else x.shape[axis]
        c = rng.random(max(1, n + int(rng.integers(-2, 3)))) < 0.6  # shorter, equal or longer (ignored tail)
        node = helper.make_node("Compress", ["x", "c"], ["y"], **({} if axis is None else {"axis": axis}))
        yield f"compress_{it}_{np.dtype(dt).name}", node, [("x", x), ("c", c)], [9, 11][it % 2] if (axis or 0) >= 0 \
            else 11, 0, "ort"


def reverse_sequence_cases():
    for it in range(9):
        dt = MOVE_TYPES[it]
        ba = it % 2
        shp = shape(int(rng.integers(2, 5)), 1, 6)
        x = rand_of(dt, shp)
        lens = rng.integers(0, shp[1 - ba] + 1, shp[ba]).astype(np.int64)
        node = helper.make_node("ReverseSequence", ["x", "l"], ["y"], batch_axis=ba, time_axis=1 - ba)
        yield f"reverse_sequence_{it}_{np.dtype(dt).name}", node, [("x", x), ("l", lens)], 10, 0, "ort"


def center_crop_pad_cases():
    for it in range(10):
        dt = [np.float32, np.int64, np.int32, np.uint8, np.int8, np.float64, np.bool_, np.float16, np.uint32, F32][it]
        r = int(rng.integers(1, 5))
        x = rand_of(dt, shape(r, 1, 7))
        axes = sorted(set(int(a) for a in rng.integers(0, r, int(rng.integers(1, r + 1))))) if it % 3 else None
        tgt = np.array([int(rng.integers(1, 9)) for _ in (axes or range(r))], np.int64)
        node = helper.make_node("CenterCropPad", ["x", "s"], ["y"], **({"axes": axes} if axes else {}))
        # ORT runs the function body (float / int / bool / strings alike); int32 `shape` fails there (a Max of an
        # int64 and an int32 tensor): onnx.reference for that case.
        if it == 9:
            yield f"center_crop_pad_{it}_int32_shape", node, [("x", x), ("s", tgt.astype(np.int32))], 18, 0, "reference"
        else:
            yield f"center_crop_pad_{it}_{np.dtype(dt).name}", node, [("x", x), ("s", tgt)], 18, 0, "ort"


def check_multi(name, node, inputs, opset, oracle="ort"):
    """All outputs of a multi-output node (Unique), exact."""
    vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs]
    g = helper.make_graph([node], "g", vis, [onnx.ValueInfoProto(name=o) for o in node.output])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    if oracle == "ort":
        want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, dict(inputs))
    else:
        want = ReferenceEvaluator(m).run(None, dict(inputs))
    outs = run_ours(name, m, inputs, list(node.output))
    for o, w, got in zip(node.output, want, outs if len(node.output) > 1 else [outs]):
        w = np.asarray(w)
        if w.dtype == F16 and got.dtype == F32:
            got = got.astype(F16)
        assert got.shape == w.shape and np.array_equal(got, w.astype(got.dtype), equal_nan=got.dtype.kind == "f"), \
            f"{name} output {o}: {got.tolist()} vs {oracle} {w.tolist()}"


def unique_cases():
    for it in range(14):
        dt = [np.float32, np.int64, np.float64, np.int8][it % 4]  # ORT's Unique types (no int32 / uint8 kernel)
        r = int(rng.integers(1, 4))
        shp = shape(r, 1, 6)
        x = rng.integers(-2, 3, shp).astype(dt)  # many duplicates
        attrs = {"sorted": it % 2}
        if it % 3 and r > 1:
            attrs["axis"] = int(rng.integers(-r, r))
        node = helper.make_node("Unique", ["x"], ["y", "i", "v", "c"], **attrs)
        # onnx.reference returns the input unchanged along an axis with sorted=0; ORT is right there.
        yield f"unique_{it}_{np.dtype(dt).name}", node, [("x", x)], 11, "ort"
    x = np.array([2, np.nan, 1, np.nan, 2], np.float32)  # NaN: numpy / the reference (ORT merges it into a number)
    yield "unique_nan_reference", helper.make_node("Unique", ["x"], ["y", "i", "v", "c"]), [("x", x)], 11, "reference"
    x = rng.random(7) < 0.5  # bool: no ORT kernel
    yield "unique_bool_reference", helper.make_node("Unique", ["x"], ["y", "i", "v", "c"]), [("x", x)], 11, "reference"


# ---------------------------------------------------------------------------------------------- Det / Col2Im / AffineGrid
def det_cases():
    for it in range(8):
        dt = [F32, F64][it % 2]
        m = int(rng.integers(1, 6))
        x = rng.standard_normal(shape(it % 3, 1, 4) + (m, m)).astype(dt)
        if it == 6:
            x[..., 1, :] = x[..., 0, :] * 2 if m > 1 else 0  # singular
        # ORT has no float64 Det: onnx.reference (numpy.linalg.det) there.
        yield f"det_{it}_m{m}_{np.dtype(dt).name}", helper.make_node("Det", ["x"], ["y"]), [("x", x)], [11, 22][it % 2], \
            1e-4 if dt == F32 else 1e-10, "ort" if dt == F32 else "reference"


def col2im_cases():
    for it in range(10):
        sp = 2 if it < 7 else [1, 3, 3][it - 7]  # ORT: 2-D only; 1-D / 3-D against onnx.reference
        image = [int(v) for v in rng.integers(3, 8, sp)]
        block = [int(v) for v in rng.integers(1, 4, sp)]
        strides = [int(v) for v in rng.integers(1, 3, sp)]
        dil = [int(v) for v in rng.integers(1, 3, sp)]
        pads = [int(v) for v in rng.integers(0, 2, 2 * sp)]
        nb = [(image[a] + pads[a] + pads[a + sp] - (dil[a] * (block[a] - 1) + 1)) // strides[a] + 1 for a in range(sp)]
        if min(nb) < 1:
            pads = [2] * (2 * sp)
            nb = [(image[a] + 4 - (dil[a] * (block[a] - 1) + 1)) // strides[a] + 1 for a in range(sp)]
        c = int(rng.integers(1, 4))
        x = rng.standard_normal((int(rng.integers(1, 3)), c * int(np.prod(block)), int(np.prod(nb)))).astype(F32)
        node = helper.make_node("Col2Im", ["x", "i", "b"], ["y"], strides=strides, dilations=dil, pads=pads)
        yield f"col2im_{it}_{sp}d", node, [("x", x), ("i", np.array(image, np.int64)), ("b", np.array(block, np.int64))], \
            18, 1e-5, "ort" if sp == 2 else "reference"


def affine_grid_cases():
    for it in range(8):
        three = it % 2
        n = int(rng.integers(1, 3))
        size = [n, 2] + [int(v) for v in rng.integers(2 if it >= 4 else 1, 6, 3 if three else 2)]
        theta = rng.standard_normal((n, 3, 4) if three else (n, 2, 3)).astype([F32, F64][it // 2 % 2])
        node = helper.make_node("AffineGrid", ["t", "s"], ["y"], align_corners=it // 4)
        yield f"affine_grid_{it}_{'3d' if three else '2d'}", node, [("t", theta), ("s", np.array(size, np.int64))], 20, \
            1e-5 if theta.dtype == F32 else 1e-12, "ort"
    # align_corners=1 on an axis of size 1: ORT 1.32 puts the sample at +1, PyTorch at 0, onnx.reference (numpy's
    # linspace(-1, 1, 1)) at -1, which onnxquant follows.
    node = helper.make_node("AffineGrid", ["t", "s"], ["y"], align_corners=1)
    theta = rng.standard_normal((2, 2, 3)).astype(F32)
    yield "affine_grid_size1_reference", node, [("t", theta), ("s", np.array([2, 1, 1, 4], np.int64))], 20, 1e-5, \
        "reference"


# ---------------------------------------------------------------------------------------------- signal
def dft_cases():
    for it in range(22):
        opset = [17, 20][it % 2]
        dt = [F32, F64][it // 2 % 2]
        r = int(rng.integers(3, 5))
        shp = list(shape(r - 1, 1, 7))
        a = int(rng.integers(0, r - 1)) if opset == 20 or it % 4 else 1
        if a >= r - 1:
            a = 1
        shp[a] = [8, 16, 5, 7, 12, 6][it % 6]  # powers of two (the FFT path) and others
        inverse, onesided = it % 3 == 1, it % 5 == 2
        cplx = 2 if inverse or not onesided and it % 2 else 1
        x = rng.standard_normal(shp + [cplx]).astype(dt)
        ins, names = [("x", x)], ["x"]
        if it % 4 == 3:
            ins.append(("n", np.array(int(rng.integers(3, 20)), [np.int64, np.int32][it % 2])))
            names.append("n")
        attrs = {"inverse": int(inverse), "onesided": int(onesided)}
        if opset == 20:
            if len(names) == 1:
                names.append("")
            ins.append(("a", np.array(a - r if it % 3 else a, np.int64)))
            names.append("a")
        else:
            attrs["axis"] = a
        node = helper.make_node("DFT", names, ["y"], **attrs)
        # ORT 1.32 implements no IRFFT (inverse + onesided): onnx.reference there.
        # float64 inverse: ORT 1.32 is ~1e-8 off (float twiddles?): numpy's FFT (onnx.reference) there.
        oracle = "reference" if inverse and (onesided or dt == F64) else "ort"
        yield f"dft_{it}_{opset}_{np.dtype(dt).name}_inv{int(inverse)}_one{int(onesided)}", node, \
            [i for i in ins if i[0]], opset, 1e-4 if dt == F32 else 1e-9, oracle
    x = rng.standard_normal((2, 5, 2)).astype(F32)
    node = helper.make_node("DFT", ["x", "n"], ["y"], inverse=1, onesided=1, axis=1)
    yield "dft_irfft_len9", node, [("x", x), ("n", np.array(9, np.int64))], 17, 1e-5, "reference"


def stft_cases():
    for it in range(10):
        dt = [F32, F64][it % 2]
        length = int(rng.integers(16, 60))
        fl = [8, 16, 10, 7][it % 4]
        step = int(rng.integers(1, 6))
        x = rng.standard_normal((int(rng.integers(1, 3)), length, 1)).astype(dt)
        ins = [("x", x), ("s", np.array(step, np.int64))]
        names = ["x", "s"]
        if it % 3 != 2:
            ins.append(("w", (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(fl) / fl)).astype(dt)))
            names.append("w")
        else:
            names.append("")
        if it % 3 != 0:
            ins.append(("l", np.array(fl, np.int64)))
            names.append("l")
        node = helper.make_node("STFT", names, ["y"], onesided=int(it % 4 != 1))
        yield f"stft_{it}_{np.dtype(dt).name}_fl{fl}", node, ins, 17, 1e-4 if dt == F32 else 1e-9, "ort"


def window_cases():
    for it in range(18):
        op = ["HannWindow", "HammingWindow", "BlackmanWindow"][it % 3]
        size = np.array(int(rng.integers(2, 40)), [np.int64, np.int32][it % 2])
        odt = [1, 11, 10, 7, 6, 2][it // 3]  # float, double, float16, int64, int32, uint8
        node = helper.make_node(op, ["n"], ["y"], periodic=it % 2, output_datatype=odt)
        yield f"{op}_{it}_dt{odt}", node, [("n", size)], 17, 0 if odt in (7, 6, 2) else 1e-6, "ort"


def mel_cases():
    for it in range(8):
        rate = [16000, 8000, 22050, 44100][it % 4]
        n = [256, 512, 400, 1024][it // 2 % 4]
        mel = int(rng.integers(4, 40))
        lo, hi = float(rng.uniform(0, 300)), float(rng.uniform(2000, rate / 2 - 1))
        ins = [("m", np.array(mel, np.int64)), ("n", np.array(n, np.int64)), ("r", np.array(rate, np.int64)),
               ("lo", np.array(lo, F32)), ("hi", np.array(hi, F32))]
        node = helper.make_node("MelWeightMatrix", ["m", "n", "r", "lo", "hi"], ["y"], output_datatype=[1, 11][it % 2])
        yield f"mel_{it}_{rate}_{n}", node, ins, 17, 1e-6, "ort"


# ---------------------------------------------------------------------------------------------- quantization
def quant_parity():
    """Conv -> op -> Conv (and Gemm) quantized by both tools from the quant_pre_process'ed model."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

    def run(path, x):
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]

    w = [init("W1", rnd(40, (6, 3, 3, 3))), init("b1", rnd(41, (6,), 0.1)), init("W2", rnd(42, (4, 6, 3, 3))),
         init("b2", rnd(43, (4,), 0.1))]
    cases = {
        "LRN": ([helper.make_node("LRN", ["c1"], ["m"], name="lrn", size=3, alpha=0.2)], [], 13),
        "LpNormalization": ([helper.make_node("LpNormalization", ["c1"], ["m"], name="lpn", axis=1)], [], 13),
        # axes given: ORT's quant_pre_process fails (symbolic shape inference) on a MeanVarianceNormalization without.
        "MeanVarianceNormalization": ([helper.make_node("MeanVarianceNormalization", ["c1"], ["m"], name="mvn",
                                                                axes=[0, 2, 3])], [], 13),
        "Hardmax": ([helper.make_node("Hardmax", ["c1"], ["m"], name="hm", axis=1)], [], 13),
        "LpPool": ([helper.make_node("LpPool", ["c1"], ["m"], name="lpp", kernel_shape=[3, 3], pads=[1, 1, 1, 1])], [], 18),
        "GroupNormalization": ([helper.make_node("GroupNormalization", ["c1", "gs", "gb"], ["m"], name="gn",
                                                 num_groups=3)],
                               [init("gs", rnd(44, (6,), 1.0)), init("gb", rnd(45, (6,), 0.1))], 21),
        "MaxUnpool": ([helper.make_node("MaxPool", ["c1"], ["mp", "mi"], name="mp", kernel_shape=[2, 2], strides=[2, 2]),
                       helper.make_node("Relu", ["mp"], ["mr"], name="relu"),
                       helper.make_node("MaxUnpool", ["mr", "mi"], ["m"], name="mu", kernel_shape=[2, 2], strides=[2, 2])],
                      [], 13),
    }
    for op, (mid, extra_inits, opset) in cases.items():
        m = model([conv("input", "c1", "W1", "b1", "conv1")] + mid + [conv("m", "y", "W2", "b2", "conv2")],
                  w + extra_inits, [1, 3, 8, 8], [1, 4, 8, 8], opset=opset)
        x = img(50)
        ort_out, ours, pre = quantize_both(m, x, opset=opset)
        pre_ops = [n.op_type for n in onnx.load(pre).graph.node]
        if op == "GroupNormalization":
            # quant_pre_process expands it (ORT has no CPU kernel): both tools quantize the body's pieces. On that
            # expanded file onnxquant folds the constant chains Cast -> Reshape of scale / bias and the Cast of
            # epsilon (and the Shape nodes of a static shape) into initializers, quantized as constants where ORT
            # quantizes them as activations (the documented constant-folding difference): every other Q/DQ
            # parameter must be ORT's, and the models must compute the same.
            assert op not in pre_ops and "ReduceMean" in pre_ops, pre_ops
            a, b = onnx.load(ort_out), onnx.load(ours)
            ia = {t.name: onnx.numpy_helper.to_array(t) for t in a.graph.initializer}
            ib = {t.name: onnx.numpy_helper.to_array(t) for t in b.graph.initializer}
            folded = {f"_inlfunc_GroupNormalization_{n}_scale" for n in ("ScaleReshaped", "BiasReshaped", "Epsilon")}
            common = [n for n in ia if n.endswith("_scale") and n in ib and n not in folded]
            assert len(common) >= 8, common
            for n in common:
                assert np.allclose(ia[n], ib[n], rtol=1e-6, atol=0), (n, ia[n], ib[n])
            for op2 in ("ReduceMean", "Sub", "Div", "Sqrt"):
                assert qdq_counts(a)[op2] == qdq_counts(b)[op2], (op2, qdq_counts(a), qdq_counts(b))
            got, want = run(ours, x[:1]), run(ort_out, x[:1])
            assert np.abs(got - want).max() <= 0.05 * max(1.0, np.abs(want).max()), np.abs(got - want).max()
            print(f"  {op}: expanded by quant_pre_process; {len(common)} scales equal, outputs within "
                  f"{np.abs(got - want).max():.3g}")
            continue
        a, b = compare_with_ort(ort_out, ours)
        ca, cb = qdq_counts(a), qdq_counts(b)
        assert ca == cb, (op, ca, cb)
        if True:
            assert op in pre_ops, pre_ops
            # Left float: its float input is conv1's DequantizeLinear output, its output quantized for conv2.
            assert cb[op] == (1, 1), (op, cb[op])
        got, want = run(ours, x[:1]), run(ort_out, x[:1])
        assert np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max()), (op, np.abs(got - want).max())
        print(f"  {op}: parity ok, Q/DQ per op {cb}")
    # Conv -> LpNormalization -> Flatten -> Gemm.
    m = model([conv("input", "c1", "W1", "b1", "conv1"),
               helper.make_node("LpNormalization", ["c1"], ["n"], name="lpn", axis=1, p=1),
               helper.make_node("Flatten", ["n"], ["f"], name="flat"),
               helper.make_node("Gemm", ["f", "Wg", "bg"], ["y"], name="gemm", transB=1)],
              w[:2] + [init("Wg", rnd(46, (5, 384))), init("bg", rnd(47, (5,), 0.1))], [1, 3, 8, 8], [1, 5], opset=13)
    x = img(51)
    ort_out, ours, _ = quantize_both(m, x, opset=13)
    a, b = compare_with_ort(ort_out, ours)
    assert qdq_counts(a) == qdq_counts(b) and qdq_counts(b)["LpNormalization"] == (1, 0), qdq_counts(b)  # Flatten quantizes for Gemm
    got, want = run(ours, x[:1]), run(ort_out, x[:1])
    assert np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max())


def raw_group_norm_parity():
    """GroupNormalization (18 and 21, one and two instances) on a raw model: onnxquant's pre-processing expands it as
    ORT's quant_pre_process does, so default mode writes what quant_pre_process + quantize_static write: same wiring
    and tensor names (`_inlfunc_GroupNormalization_...`, `..._token_0_...`), scales and zero points (1e-6), and our
    model computes ORT's outputs in onnxruntime."""
    from test_inline_functions import quantize_raw
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for opset, n_aff, two in [(21, 6, False), (18, 3, False), (21, 6, True)]:
        w = [init("W1", rnd(40, (6, 3, 3, 3))), init("b1", rnd(41, (6,), 0.1)), init("W2", rnd(42, (4, 6, 3, 3))),
             init("b2", rnd(43, (4,), 0.1)), init("gs", rnd(44, (n_aff,), 1.0)), init("gb", rnd(45, (n_aff,), 0.1))]
        nodes = [conv("input", "c1", "W1", "b1", "conv1"),
                 helper.make_node("GroupNormalization", ["c1", "gs", "gb"], ["m"], name="gn", num_groups=3,
                                  epsilon=1e-3)]
        if two:
            nodes += [helper.make_node("Relu", ["m"], ["r"], name="relu"),
                      helper.make_node("GroupNormalization", ["r", "gs", "gb"], ["m2"], name="gn2", num_groups=3)]
        nodes.append(conv("m2" if two else "m", "y", "W2", "b2", "conv2"))
        m = model(nodes, w, [1, 3, 8, 8], [1, 4, 8, 8], opset=opset)
        m.ir_version = {18: 8, 21: 10}[opset]
        x = img(50)
        _, _, ort_out, ours = quantize_raw(m, x, opset)
        a, b = compare_with_ort(ort_out, ours)
        assert qdq_counts(a) == qdq_counts(b) and "GroupNormalization" not in qdq_counts(b), qdq_counts(b)
        assert qdq_counts(b)["ReduceMean"][0] == (4 if two else 2), qdq_counts(b)
        got = ort.InferenceSession(ours, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
        want = ort.InferenceSession(ort_out, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
        assert np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max()), np.abs(got - want).max()
        print(f"  GroupNormalization-{opset}{' x2' if two else ''} raw model: parity ok")


def raw_center_crop_pad_stays_whole():
    """CenterCropPad on a raw model: onnxquant keeps it as one float node between quantized Convs (ORT's
    quant_pre_process would expand it into Shape / Max / Sub / Div / Pad / Slice, see docs/conformance.md); the
    written model passes the checker, runs in ORT and stays close to the float model."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    w = [init("W1", rnd(60, (6, 3, 3, 3))), init("b1", rnd(61, (6,), 0.1)), init("W2", rnd(62, (4, 6, 3, 3))),
         init("b2", rnd(63, (4,), 0.1)), init("cs", np.array([6, 9], np.int64))]
    m = model([conv("input", "c1", "W1", "b1", "conv1"),
               helper.make_node("CenterCropPad", ["c1", "cs"], ["m"], name="ccp", axes=[2, 3]),
               conv("m", "y", "W2", "b2", "conv2")], w, [1, 3, 8, 8], [1, 4, 6, 9], opset=21)
    m.ir_version = 10
    x = img(70)
    work = oqtest.tmpdir()
    src = os.path.join(work, "raw.onnx")
    onnx.save(m, src)
    np.savez(os.path.join(work, "calib.npz"), input=x)
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(oqtest.default_mode_config(src, os.path.join(work, "calib.npz"), True, 21))
    oqtest.run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq"), "--threads", "1"])
    path = os.path.join(work, "oq", "quantized_models", "raw_quant_qdq_pc.onnx")
    q = onnx.load(path)
    onnx.checker.check_model(q, full_check=True)
    assert [n.op_type for n in q.graph.node].count("CenterCropPad") == 1, [n.op_type for n in q.graph.node]
    assert qdq_counts(q)["CenterCropPad"] == (1, 1) and qdq_counts(q)["Conv"][0] == 6, qdq_counts(q)
    got = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
    ref = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]
    assert np.abs(got - ref).max() <= 0.1 * np.abs(ref).max(), (np.abs(got - ref).max(), np.abs(ref).max())


def main():
    r = oqtest.Runner()
    for gen in (group_norm_cases, lrn_cases, mvn_cases, lp_norm_cases, hardmax_cases, lp_pool_cases,
                max_unpool_cases, bitwise_cases, compress_cases, reverse_sequence_cases, center_crop_pad_cases,
                det_cases, col2im_cases, affine_grid_cases, dft_cases, stft_cases, window_cases, mel_cases):
        for name, node, inputs, opset, tol, oracle in gen():
            r.run(name, check, name, node, inputs, opset, tol, oracle)
    for name, node, inputs, opset, oracle in unique_cases():
        r.run(name, check_multi, name, node, inputs, opset, oracle)
    r.run("quant_parity", quant_parity)
    r.run("raw_group_norm_parity", raw_group_norm_parity)
    r.run("raw_center_crop_pad_stays_whole", raw_center_crop_pad_stays_whole)
    r.finish()


if __name__ == "__main__":
    main()
