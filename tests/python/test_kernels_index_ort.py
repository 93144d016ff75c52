"""Executor kernels CumSum, GatherND, ScatterND, ScatterElements, Trilu, OneHot, Einsum and NonZero against
onnxruntime: single-node models on random odd shapes (fixed seed) run through `onnxquant run`, outputs compared
with ORT (exact for integers, bools and data movement; rtol 1e-5 for float sums). Then a Conv -> CumSum -> MatMul
model quantized by onnxquant and by quantize_static (CumSum is in ORT's QDQ registry): same graph, same parameters.

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402

rng = np.random.default_rng(20261128)
TMP = oqtest.tmpdir()


def shape(rank, lo=1, hi=6):
    return tuple(int(v) for v in rng.integers(lo, hi, rank))


def check(name, node, inputs, opset, exact):
    """inputs: list of (name, array); every one a graph input (so nothing is folded)."""
    vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs]
    g = helper.make_graph([node], "g", vis, [onnx.ValueInfoProto(name="y")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 21 else 10
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, dict(inputs))[0]
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    args = ["run", os.path.join(d, "model.onnx"), "--output-dir", os.path.join(d, "out")]
    for n, a in inputs:
        np.save(os.path.join(d, n + ".npy"), a)
        args += ["--input", f"{n}={os.path.join(d, n + '.npy')}"]
    oqtest.run_oq(args)
    got = np.load(os.path.join(d, "out", "y.npy"))
    oqtest.assert_same_output(name, got, want, exact)


def cumsum_cases():
    for it in range(16):
        dt = [np.float32, np.int32, np.int64, np.float64][it % 4]
        x = (rng.standard_normal(shape(1 + it % 4)) * 10).astype(dt)
        axis = int(rng.integers(-x.ndim, x.ndim))
        ax = np.array(axis, [np.int64, np.int32][it % 2])
        node = helper.make_node("CumSum", ["x", "a"], ["y"], exclusive=it % 3 == 1, reverse=it % 5 > 2)
        yield f"cumsum_{it}_{np.dtype(dt).name}", node, [("x", x), ("a", ax)], [11, 14][it % 2], dt in (np.int32, np.int64)


def gathernd_cases():
    for it in range(16):
        r, b = int(rng.integers(1, 5)), 0
        if r > 1 and it % 3 == 0:
            b = int(rng.integers(1, r))
        data = rng.standard_normal(shape(r)).astype([np.float32, np.int64][it % 2])
        k = int(rng.integers(1, r - b + 1))
        q_extra = shape(int(rng.integers(0, 3)))
        ishape = data.shape[:b] + q_extra + (k,)
        cols = [rng.integers(-data.shape[b + m], data.shape[b + m], ishape[:-1]) for m in range(k)]
        ind = np.stack(cols, -1).astype(np.int64)
        node = helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=b)
        yield f"gathernd_{it}_b{b}_k{k}", node, [("x", data), ("i", ind)], [12, 13][it % 2], True


def scatternd_cases():
    reds = [None, "add", "mul", "max", "min"]
    for it in range(15):
        red = reds[it % 5]
        r = int(rng.integers(1, 5))
        data = (rng.standard_normal(shape(r)) * 4).astype([np.float32, np.int32, np.float64][it % 3])
        k = int(rng.integers(1, r + 1))
        lead = data.shape[:k]
        n, cells = int(rng.integers(1, 7)), int(np.prod(lead))
        if red is None:  # no duplicate targets without a reduction (the result would depend on the order)
            n = min(n, cells)
            flat = rng.choice(cells, n, replace=False)
        else:
            flat = rng.integers(0, cells, n)
        ind = np.stack(np.unravel_index(flat, lead), -1).astype(np.int64)
        ind = np.where(rng.random(ind.shape) < 0.3, ind - np.array(lead), ind)  # some negative
        upd = (rng.standard_normal((n,) + data.shape[k:]) * 4).astype(data.dtype)
        attrs = {"reduction": red} if red else {}
        node = helper.make_node("ScatterND", ["x", "i", "u"], ["y"], **attrs)
        opset = 18 if red in ("max", "min") else [13, 16][it % 2] if red is None else 16
        exact = data.dtype == np.int32 or red in (None, "max", "min")
        yield f"scatternd_{it}_{red}", node, [("x", data), ("i", ind), ("u", upd)], opset, exact


def scatter_elements_cases():
    reds = [None, "add", "mul", "max", "min"]
    for it in range(15):
        red = reds[it % 5]
        r = int(rng.integers(1, 5))
        data = (rng.standard_normal(shape(r)) * 4).astype([np.float32, np.int64][it % 2])
        axis = int(rng.integers(-r, r))
        ishape = tuple(int(rng.integers(1, s + 1)) for s in data.shape)
        ishape = ishape[:axis % r] + (int(rng.integers(1, 6)),) + ishape[axis % r + 1:] if red else ishape
        s = data.shape[axis]
        if red is None:  # no duplicate targets: a permutation prefix along the axis
            ishape = ishape[:axis % r] + (min(ishape[axis % r], s),) + ishape[axis % r + 1:]
            ind = np.argsort(rng.random(ishape[:axis % r] + (s,) + ishape[axis % r + 1:]), axis=axis % r)
            ind = np.take(ind, range(ishape[axis % r]), axis=axis % r)
        else:
            ind = rng.integers(0, s, ishape)
        ind = np.where(rng.random(ind.shape) < 0.3, ind - s, ind).astype([np.int64, np.int32][it % 3 == 0])
        upd = (rng.standard_normal(ind.shape) * 4).astype(data.dtype)
        attrs = {"reduction": red} if red else {}
        node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=axis, **attrs)
        opset = 18 if red in ("max", "min") else 16 if red else [11, 13][it % 2]
        yield f"scatter_elements_{it}_{red}", node, [("x", data), ("i", ind), ("u", upd)], opset, data.dtype == np.int64 or red in (None, "max", "min")


def trilu_cases():
    for it in range(12):
        x = rng.standard_normal(shape(2 + it % 3, 1, 8)).astype([np.float32, np.int64, np.bool_][it % 3])
        k = np.array(int(rng.integers(-9, 10)), np.int64)
        node = helper.make_node("Trilu", ["x", "k"] if it % 4 else ["x"], ["y"], upper=it % 2)
        yield f"trilu_{it}", node, [("x", x), ("k", k)] if it % 4 else [("x", x)], 14, True


def onehot_cases():
    # (indices, values, depth) dtypes: combinations ORT's CPU OneHot implements.
    combos = [(np.int64, np.float32, np.int64), (np.int64, np.int64, np.int64), (np.float32, np.float32, np.float32),
              (np.int32, np.float32, np.float32), (np.int64, np.int32, np.float32), (np.float32, np.int64, np.int64),
              (np.int32, np.float32, np.int32)]
    for it in range(14):
        ti, tv, td = combos[it % len(combos)]
        depth = int(rng.integers(1, 7))
        ind = rng.integers(-depth - 2, depth + 2, shape(int(rng.integers(1, 4)))).astype(ti)
        if ti == np.float32:
            ind += rng.uniform(-0.9, 0.9, ind.shape).astype(np.float32)  # truncated towards zero
        r = ind.ndim
        axis = int(rng.integers(-r - 1, r + 1))
        vals = np.array([rng.integers(-5, 5), rng.integers(5, 9)]).astype(tv)
        node = helper.make_node("OneHot", ["i", "d", "v"], ["y"], axis=axis)
        dd = np.array([depth] if it % 2 else depth, td)
        yield f"onehot_{it}", node, [("i", ind), ("d", dd), ("v", vals)], [9, 11][it % 2], True


def einsum_cases():
    eqs = [("bij,bjk->bik", "bij", "bjk"), ("bhqd,bhkd->bhqk", "bhqd", "bhkd"), ("ij->ji", "ij"), ("ii->i", "ii"),
           ("...ij,...jk->...ik", "xij", "xjk"), ("i,j->ij", "i", "j"), ("ijk->", "ijk"), ("ij,jk", "ij", "jk"),
           ("abc,cd->abd", "abc", "cd"), ("ij,jk,kl->il", "ij", "jk", "kl"), ("bii->b", "bii"), ("ij,ij->i", "ij", "ij"),
           ("ba", "ba"), ("...i,...i->...", "xyi", "xyi")]
    for it, (eq, *terms) in enumerate(eqs):
        sizes = {c: int(rng.integers(1, 7)) for c in "abcdefghijklmnopqrstuvwxyz"}
        dt = [np.float32, np.int64, np.int32][it % 3] if it % 2 else np.float32
        ins = []
        for n, t in enumerate(terms):
            a = rng.integers(-4, 5, tuple(sizes[c] for c in t)) if dt != np.float32 else rng.standard_normal(tuple(sizes[c] for c in t))
            ins.append((f"x{n}", a.astype(dt)))
        node = helper.make_node("Einsum", [n for n, _ in ins], ["y"], equation=eq)
        yield f"einsum_{it}_{np.dtype(dt).name}", node, ins, 12 + it % 2, dt != np.float32


def nonzero_cases():
    for it in range(6):
        s = shape(1 + it % 4)
        x = (rng.integers(-2, 3, s) * (it != 5)).astype([np.float32, np.int64, np.bool_][it % 3])  # 5: all zero
        yield f"nonzero_{it}", helper.make_node("NonZero", ["x"], ["y"]), [("x", x)], [9, 13][it % 2], True


def cumsum_quant_parity():
    w = numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "W")
    w2 = numpy_helper.from_array(rng.standard_normal((144, 10)).astype(np.float32), "W2")
    inits = [w, w2, numpy_helper.from_array(np.array(1, np.int64), "ax"),
             numpy_helper.from_array(np.array([-1, 144], np.int64), "shp")]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("CumSum", ["r", "ax"], ["cs"], reverse=1), helper.make_node("Reshape", ["cs", "shp"], ["f"]),
             helper.make_node("MatMul", ["f", "W2"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    d = os.path.join(TMP, "cumsum_quant")
    os.makedirs(d, exist_ok=True)
    src, ort_out = os.path.join(d, "cs.onnx"), os.path.join(d, "ort.onnx")
    onnx.save(m, src)
    calib = np.load(os.path.join(oqtest.TESTDATA, "digits_calib.npz"))["x"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(src, ort_out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    oqtest.run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", os.path.join(d, "oq"),
                   f"model.model_path={src}", "quantization.operating_mode=default",
                   "quantization.granularity=per_channel"])
    a, b = onnx.load(ort_out), onnx.load(os.path.join(d, "oq", "quantized_models", "cs_quant_qdq_pc.onnx"))
    sig = lambda mm: sorted((n.op_type, tuple(n.input), tuple(n.output)) for n in mm.graph.node)  # noqa: E731
    assert sig(a) == sig(b), f"graphs differ:\n ORT {sig(a)}\n oq  {sig(b)}"
    ia = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
    ib = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
    assert "cs_scale" in ia
    for n in ia:
        if n.endswith("_scale") or n.endswith("_zero_point"):
            assert np.allclose(ia[n], ib[n], rtol=1e-6, atol=0), f"{n}: ORT {ia[n]} vs ours {ib[n]}"


def main():
    r = oqtest.Runner()
    for gen in (cumsum_cases, gathernd_cases, scatternd_cases, scatter_elements_cases, trilu_cases, onehot_cases,
                einsum_cases, nonzero_cases):
        for name, node, inputs, opset, exact in gen():
            r.run(name, check, name, node, inputs, opset, exact)
    r.run("cumsum_quant_parity", cumsum_quant_parity)
    r.finish()


if __name__ == "__main__":
    main()
