"""GPTQ / mse weight quantizers (s20 review, area wq) against an independent numpy GPTQ, numpy grid searches and
onnxruntime (graph optimizations disabled):

- a weight shared by several layers of the same layout gets GPTQ on the sum of their Hessians,
  H = sum_i 2 X_i^T X_i (here X_1 = Relu(calib), X_2 = calib); the written integers equal a numpy GPTQ on that H,
  and every reader's output SNR (ORT) is at least mse's, within 0.1 dB (the first reader's H alone zeroed a row
  the second reader needs: 2.8 dB). Readers of different layouts (Gemm transB 1 + MatMul): mse for that weight,
  with an info line.
- NaN / infinite calibration values: the im2col rows holding one are left out of H (numpy: the same rows
  dropped, the second layer's input from ORT), with a warning naming the layer (the run used to stop with
  "not positive definite").
- symmetric Int8 weights stay in [-127, 127] with mse and gptq (as min/max and ORT's symmetric range); the
  integers equal a numpy grid search / numpy GPTQ clipped to +-127; Int4 keeps -8..7.
- GptqHessianBudget bounds the Hessians held at once: the peak RSS no longer grows by one H per layer (it grew by
  48 MiB from 3 to 9 layers), and digits_mobilenet.onnx (default mode) is written byte for byte the same whatever
  the budget.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
import oqtest  # noqa: E402
from oqtest import BIN, SRC, TESTDATA, Runner, default_mode_config, ort_session, run_oq, save_graph, tmpdir  # noqa: E402


# ---------------------------------------------------------------- independent references (numpy)

def gptq_ref(W, H, scale, zp, qmin, qmax, block=128, damp=0.01):
    """GPTQ (Frantar et al. 2022) on W [rows, k]: dead columns zeroed, 1 % mean-diagonal dampening, upper Cholesky
    factor of H^-1, lazy blocks of `block` columns; returns the integers (zero point included)."""
    W = W.astype(np.float64).copy()
    H = H.copy()
    k = W.shape[1]
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * np.mean(np.diag(H)) * np.eye(k)
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    Q = np.zeros_like(W)
    s = scale.reshape(-1, 1).astype(np.float64)
    z = zp.reshape(-1, 1)
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        Err = np.zeros((W.shape[0], i2 - i1))
        for i in range(i1, i2):
            w = W[:, i:i + 1]
            q = np.clip(np.round(w.astype(np.float32) / s.astype(np.float32)) + z, qmin, qmax) - z
            Q[:, i:i + 1] = q
            e = (w - q * s) / U[i, i]
            W[:, i:i2] -= e @ U[i:i + 1, i:i2]
            Err[:, i - i1:i - i1 + 1] = e
        W[:, i2:] -= Err @ U[i1:i2, i2:]
    return Q.astype(np.int64) + zp.reshape(-1, 1)


def im2col(x, KH, KW, pad):
    """Rows = output positions of a stride-1 Conv with symmetric padding `pad`, columns (c, a, b)."""
    N, C, IH, IW = x.shape
    xp = np.zeros((N, C, IH + 2 * pad, IW + 2 * pad), np.float64)
    xp[:, :, pad:pad + IH, pad:pad + IW] = x
    OH, OW = IH + 2 * pad - KH + 1, IW + 2 * pad - KW + 1
    cols = [xp[:, c, a:a + OH, b:b + OW].reshape(-1) for c in range(C) for a in range(KH) for b in range(KW)]
    return np.stack(cols, 1)


def snr(got, ref):
    return 10 * np.log10((ref.astype(np.float64) ** 2).sum() / ((got - ref).astype(np.float64) ** 2).sum())


def quantize(graph, calib, extra, per_channel=True, wtype="Int8", threads=1, opset=17):
    """onnxquant default mode (symmetric `wtype` weights, Int8 activations); returns (model path, stderr)."""
    d = tmpdir()
    path = save_graph(graph, os.path.join(d, "m.onnx"), opset=opset)
    np.savez(os.path.join(d, "calib.npz"), x=calib)
    cfg = os.path.join(d, "config.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(path, os.path.join(d, "calib.npz"), per_channel, opset=opset, extra=extra)
                .replace("weightType: Int8", f"weightType: {wtype}"))
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(d, "o"), "--threads", str(threads)])
    return os.path.join(d, "o", "quantized_models", "m_quant_qdq_" + ("pc" if per_channel else "pt") + ".onnx"), \
        p.stderr


def weight_dq(path, shape):
    """(integers, scales, zero points, axis) of the quantized constant of `shape` in a QDQ model."""
    m = onnx.load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].shape == tuple(shape):
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            return (inits[n.input[0]].astype(np.int64), inits[n.input[1]], inits[n.input[2]].astype(np.int64), axis)
    raise AssertionError(f"no quantized constant of shape {shape} in {path}")


def run(path, x, outputs=None):
    s = ort_session(path)
    return s.run(outputs, {"x": x})


# ---------------------------------------------------------------- 1. shared weights

def shared_graph(W, second="MatMul"):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["y1"], name="mm1")]
    if second == "MatMul":
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["y2"], name="mm2"))
    else:  # Gemm transB 1 reads w as [N, K]: another layout
        nodes.append(helper.make_node("Gemm", ["x", "w"], ["y2"], name="gemm2", transB=1))
    nodes.append(helper.make_node("Add", ["y1", "y2"], ["y"]))
    return helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, W.shape[0]])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "y1", "y2")],
        initializer=[numpy_helper.from_array(W, "w")])


def shared_data():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((8, 8)).astype(np.float32)
    calib = rng.uniform(-1, 1, (64, 8)).astype(np.float32)
    calib[:, 3] = -np.abs(calib[:, 3]) - 0.5  # input channel 3 < 0: dead for the Relu reader only
    x = rng.uniform(-1, 1, (256, 8)).astype(np.float32)
    x[:, 3] = -np.abs(x[:, 3]) - 0.5
    return W, calib, x


def test_shared_weight_sums_hessians():
    W, calib, x = shared_data()
    g = shared_graph(W)
    fpath = save_graph(g, os.path.join(tmpdir(), "f.onnx"), opset=17)
    ref = run(fpath, x)
    paths = {wq: quantize(g, calib, {"WeightQuantizer": wq})[0] for wq in ("mse", "gptq")}
    # H = 2 X1^T X1 + 2 X2^T X2 with X1 = Relu(calib) (ORT), X2 = calib.
    X1 = np.maximum(calib, 0).astype(np.float64)
    X2 = calib.astype(np.float64)
    H = 2 * X1.T @ X1 + 2 * X2.T @ X2
    q, s, z, axis = weight_dq(paths["gptq"], W.shape)
    assert axis == 1, axis  # MatMul weight [K, N]: per output column
    want = gptq_ref(W.T, H, s, z, -127, 127).T
    assert np.array_equal(q, want), f"{int((q != want).sum())} integers differ from numpy GPTQ on the summed H"
    assert np.any(q[3] != 0), "row 3 (dead for the Relu reader only) must not be zeroed"
    got = {wq: run(p, x) for wq, p in paths.items()}
    for i, name in enumerate(("y", "y1", "y2")):
        s_g, s_m = snr(got["gptq"][i], ref[i]), snr(got["mse"][i], ref[i])
        print(f"    {name}: gptq {s_g:.2f} dB, mse {s_m:.2f} dB")
        assert s_g >= s_m - 0.1, (name, s_g, s_m)


def test_shared_weight_of_two_layouts_takes_mse():
    W, calib, _ = shared_data()
    g = shared_graph(W, second="Gemm")
    pg, err = quantize(g, calib, {"WeightQuantizer": "gptq"})
    pm, _ = quantize(g, calib, {"WeightQuantizer": "mse"})
    assert "GPTQ: weight 'w' is read by 2 layers of different layouts: mse for it" in err, err[-2000:]
    a, b = weight_dq(pg, W.shape), weight_dq(pm, W.shape)
    for u, v in zip(a, b):
        assert np.array_equal(u, v), (u, v)


# ---------------------------------------------------------------- 2. non-finite calibration values

def conv_graph(w1, w2):
    return helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["a"], ["r"], name="relu"),
         helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])


def test_non_finite_rows_left_out_of_hessian():
    rng = np.random.default_rng(9)
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((2, 4, 1, 1)).astype(np.float32)
    g = conv_graph(w1, w2)
    d = tmpdir()
    g_r = conv_graph(w1, w2)
    g_r.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    rpath = save_graph(g_r, os.path.join(d, "r.onnx"), opset=17)
    for bad in (np.nan, np.inf):
        calib = rng.uniform(-1, 1, (16, 3, 6, 6)).astype(np.float32)
        calib[3, 1, 2, 2] = bad
        calib[7, 0, 5, 0] = -bad
        path, err = quantize(g, calib, {"WeightQuantizer": "gptq"})
        for layer, weight in (("conv1", "w1"), ("conv2", "w2")):
            assert f"of the input of layer '{layer}' (weight '{weight}') hold a NaN or infinite value" in err, \
                err[-3000:]
        r = run(rpath, calib, ["r"])[0]
        for w, x, pad in ((w1, calib, 1), (w2, r, 0)):
            X = im2col(x, w.shape[2], w.shape[3], pad)
            bad_rows = ~np.all(np.isfinite(X), axis=1)
            assert bad_rows.any()
            X = X[~bad_rows]
            q, s, z, axis = weight_dq(path, w.shape)
            want = gptq_ref(w.reshape(w.shape[0], -1), 2 * X.T @ X, s, z, -127, 127).reshape(w.shape)
            assert np.array_equal(q, want), f"{bad}: {int((q != want).sum())} integers differ from numpy GPTQ"
        print(f"    {bad}: both layers equal numpy GPTQ without the non-finite rows")


def test_group_without_finite_rows_is_rounded():
    """Depthwise Conv (group 4) whose input channel g is NaN on every calibration sample: group g has no im2col row
    left, so its H is empty. Its filter is rounded to nearest with the layer's (mse grid) scales - it used to have
    every column "dead" and be written as 0 (group g > 0), or the whole layer fell back to mse (g = 0); the other
    groups stay numpy GPTQ on their own rows."""
    rng = np.random.default_rng(11)
    W = rng.uniform(-1, 1, (4, 1, 3, 3)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="dw", group=4, pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(W, "w")])
    for dead in (1, 0):
        calib = rng.uniform(0, 1, (16, 4, 6, 6)).astype(np.float32)
        calib[:, dead] = np.nan
        path, err = quantize(g, calib, {"WeightQuantizer": "gptq"})
        assert "hold a NaN or infinite value" in err and "without GPTQ" in err, err[-3000:]
        q, s, z, axis = weight_dq(path, W.shape)
        assert axis == 0 and np.allclose(s, oqtest.mse_grid_scales(W, 0, -127, 127), rtol=1e-6), s
        for c in range(4):
            w = W[c].reshape(1, -1)
            if c == dead:
                want = np.clip(np.rint(w / s[c]), -127, 127).astype(np.int64)
                assert np.any(want != 0)
            else:
                X = im2col(calib[:, c:c + 1], 3, 3, 1)
                want = gptq_ref(w, 2 * X.T @ X, s[c:c + 1], z[c:c + 1], -127, 127)
            assert np.array_equal(q[c].reshape(1, -1), want), (dead, c, q[c].ravel().tolist(), want.ravel().tolist())
        print(f"    channel {dead} NaN: its filter rounded to nearest, the others numpy GPTQ")


# ---------------------------------------------------------------- 3. symmetric range

def gemm_graph(W):
    return helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, W.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(W, "w")])


def test_symmetric_int8_stays_in_127():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((16, 48)).astype(np.float32)
    W[:, 0] = -np.abs(W).max(axis=1) * 1.8  # an outlier at the negative end of every row: mse clips it
    calib = rng.uniform(-1, 1, (64, 48)).astype(np.float32)
    for wtype, qmin, qmax in (("Int8", -127, 127), ("Int4", -8, 7)):
        pm, _ = quantize(gemm_graph(W), calib, {"WeightQuantizer": "mse"}, wtype=wtype, opset=21)
        pg, _ = quantize(gemm_graph(W), calib, {"WeightQuantizer": "gptq"}, wtype=wtype, opset=21)
        q, s, z, _ = weight_dq(pm, W.shape)
        assert np.allclose(s, oqtest.mse_grid_scales(W, 0, qmin, qmax), rtol=1e-6), s
        eq = np.clip(np.round(W / s.reshape(-1, 1)), qmin, qmax).astype(np.int64)
        assert np.array_equal(q, eq), f"{wtype} mse: {int((q != eq).sum())} integers differ from numpy"
        qg, sg, zg, _ = weight_dq(pg, W.shape)
        X = calib.astype(np.float64)
        want = gptq_ref(W, 2 * X.T @ X, sg, zg, qmin, qmax)
        assert np.array_equal(qg, want), f"{wtype} gptq: {int((qg != want).sum())} integers differ from numpy"
        if wtype == "Int8":
            assert q.min() >= -127 and qg.min() >= -127, (q.min(), qg.min())
        else:
            assert q.min() == -8, q.min()  # 4-bit types keep their full range
        print(f"    {wtype}: mse min {q.min()}, gptq min {qg.min()}")


# ---------------------------------------------------------------- 4. memory

def peak_rss_mib(args):
    """Peak RSS of one onnxquant run, measured by /usr/bin/time (a child of this Python process would start its
    maximum at this process's own size: fork/vfork carry it over)."""
    assert os.path.exists("/usr/bin/time"), "this test needs /usr/bin/time (GNU time)"
    out = os.path.join(tmpdir(), "rss.txt")
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out, BIN] + args, capture_output=True, text=True, cwd=SRC)
    assert p.returncode == 0, p.stderr[-2000:]
    return int(open(out).read().split()[-1]) / 1024


def test_hessian_budget_bounds_memory():
    K = 1024  # one H: 8 MiB
    rng = np.random.default_rng(16)
    rss = {}
    for L in (3, 9):
        d = tmpdir()
        nodes, inits, cur = [], [], "x"
        for i in range(L):
            inits.append(numpy_helper.from_array((rng.standard_normal((K, K)) / np.sqrt(K)).astype(np.float32), f"w{i}"))
            nodes.append(helper.make_node("MatMul", [cur, f"w{i}"], [f"h{i}"]))
            cur = f"h{i}"
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, K])],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)], initializer=inits)
        path = save_graph(g, os.path.join(d, "m.onnx"), opset=17)
        np.savez(os.path.join(d, "calib.npz"), x=rng.uniform(-1, 1, (16, K)).astype(np.float32))
        base = ["--config", "examples/digits/user_config.yaml", f"model.model_path={path}",
                f"dataset.quantization_path={os.path.join(d, 'calib.npz')}", "quantization.operating_mode=default",
                "--threads", "2"]
        for wq in ("mse", "gptq"):
            extra = ["quantization.onnx_extra_options.GptqHessianBudget=8"] if wq == "gptq" else []
            rss[L, wq] = peak_rss_mib(base + ["--output-dir", os.path.join(d, wq),
                                              f"quantization.onnx_extra_options.WeightQuantizer={wq}", *extra])
    excess = (rss[9, "gptq"] - rss[9, "mse"]) - (rss[3, "gptq"] - rss[3, "mse"])
    print(f"    peak RSS MiB {rss}; gptq's excess over mse grows by {excess:.1f} MiB from 3 to 9 layers "
          f"(one H per layer held: 48 MiB)")
    assert excess < 24, excess


def test_budget_keeps_the_numbers():
    outs = []
    for budget in (1024, 0.05):
        d = tmpdir()
        p = run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", d,
                    "model.model_path=testdata/digits_mobilenet.onnx", "quantization.operating_mode=default",
                    "quantization.onnx_extra_options.WeightQuantizer=gptq",
                    f"quantization.onnx_extra_options.GptqHessianBudget={budget}"])
        if budget < 1:
            assert "(pass 2," in p.stderr, p.stderr[-2000:]
        files = [os.path.join(dp, f) for dp, _, fs in os.walk(d) for f in fs if f.endswith(".onnx")]
        assert len(files) == 1, files
        outs.append(open(files[0], "rb").read())
    assert outs[0] == outs[1], "the written model depends on GptqHessianBudget"


def main():
    r = Runner()
    r.run("gptq: a shared weight's H sums its readers' (numpy GPTQ; each reader's SNR >= mse's)",
          test_shared_weight_sums_hessians)
    r.run("gptq: readers of different layouts fall back to mse", test_shared_weight_of_two_layouts_takes_mse)
    r.run("gptq: non-finite im2col rows left out of H (numpy GPTQ)", test_non_finite_rows_left_out_of_hessian)
    r.run("gptq: a group without a finite im2col row is rounded to nearest (numpy)",
          test_group_without_finite_rows_is_rounded)
    r.run("mse / gptq: symmetric Int8 in [-127, 127], Int4 full range (numpy)", test_symmetric_int8_stays_in_127)
    r.run("gptq: GptqHessianBudget bounds the Hessians held (peak RSS)", test_hessian_budget_bounds_memory)
    r.run("gptq: the written model does not depend on GptqHessianBudget", test_budget_keeps_the_numbers)
    r.finish()


if __name__ == "__main__":
    main()
