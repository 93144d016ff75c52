"""quantization.operating_mode: inspection vs an independent numpy + onnxruntime computation of the same SNRs.

For the digits models: weights/biases from the written QDQ model's quantized initializers ((q - zp) * scale)
against the float model's initializers (within 0.01 dB); activations by running the float model and the QDQ
model in onnxruntime (graph optimizations off) with every tensor exposed as an output, over the same first
floor(N * inspection_split) samples of the shuffled calibration set (within 0.1 dB, xmodel and local). The log
holds ST's layout, JSON and CSV agree. A model with a deliberately bad weight shows it first, and the HTML's
suggested overrides, pasted into the config, raise its SNR. The HTML is rendered in headless Chromium.
"""
import csv
import html
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import SRC, TESTDATA, Runner, run_oq, tmpdir  # noqa: E402

EXAMPLE = os.path.join(SRC, "examples", "digits", "user_config.yaml")
M64 = (1 << 64) - 1


# ---- the data selection of src/data (std::mt19937_64, Fisher-Yates), written from the C++ standard's spec ----
class MT19937_64:
    def __init__(self, seed):
        self.mt = [0] * 312
        self.mt[0] = seed & M64
        for i in range(1, 312):
            prev = self.mt[i - 1]
            self.mt[i] = (6364136223846793005 * (prev ^ (prev >> 62)) + i) & M64
        self.idx = 312

    def _twist(self):
        upper, lower = 0xFFFFFFFF80000000, 0x7FFFFFFF
        for i in range(312):
            x = (self.mt[i] & upper) | (self.mt[(i + 1) % 312] & lower)
            xa = x >> 1
            if x & 1:
                xa ^= 0xB5026F5AA96619E9
            self.mt[i] = self.mt[(i + 156) % 312] ^ xa
        self.idx = 0

    def __call__(self):
        if self.idx >= 312:
            self._twist()
        y = self.mt[self.idx]
        self.idx += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & M64


def shuffled_permutation(n, seed):
    p = list(range(n))
    rng = MT19937_64(seed)
    for i in range(n - 1, 0, -1):
        bound = i + 1
        threshold = (1 << 64) % bound
        while True:
            r = rng()
            if r >= threshold:
                break
        j = r % bound
        p[i], p[j] = p[j], p[i]
    return p


def test_mt19937_64():
    g = MT19937_64(5489)
    for _ in range(9999):
        g()
    assert g() == 9981545732273789042  # [rand.predef] in the C++ standard
    assert shuffled_permutation(10, 123) == [9, 2, 1, 7, 8, 6, 0, 5, 3, 4]  # as in tests/unit/test_data.cc


# ---- reference SNRs ----
def snr_db(x, xh):
    x = np.asarray(x, np.float64).ravel()
    d = x - np.asarray(xh, np.float64).ravel()
    eps = np.finfo(np.float64).eps
    noise = math.sqrt(float(d @ d))
    floor = 1.0 if noise == 0 else eps  # exact: at least a unit signal's 20·log10(1/eps) (docs/config.md)
    return 20.0 * math.log10(max(math.sqrt(float(x @ x)), floor) / max(noise, eps))


def constants(m):
    c = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    c[n.output[0]] = numpy_helper.to_array(a.t)
    return c


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def reference_weights(qm, float_consts):
    """(name -> SNR) of every quantized initializer, and names with no float counterpart."""
    inits = {i.name: numpy_helper.to_array(i) for i in qm.graph.initializer}
    out, missing = {}, []
    for n in qm.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits:
            continue
        qname = n.input[0]
        assert qname.endswith("_quantized"), qname
        name = qname[: -len("_quantized")]
        q = inits[qname].astype(np.int64)
        s = inits[n.input[1]].astype(np.float32)
        zp = inits[n.input[2]].astype(np.int64) if len(n.input) > 2 and n.input[2] else np.zeros_like(s, np.int64)
        if s.size > 1:
            axis = attr(n, "axis", 1) % q.ndim
            shape = [1] * q.ndim
            shape[axis] = -1
            s, zp = s.reshape(shape), zp.reshape(shape)
        xh = (q - zp).astype(np.float32) * s
        if name not in float_consts:
            missing.append(name)
            continue
        out[name] = snr_db(float_consts[name], xh)
    return out, missing


def quantized_activations(qm):
    """name -> (tensor before QuantizeLinear, tensor after DequantizeLinear) for non-constant Q/DQ pairs."""
    inits = {i.name for i in qm.graph.initializer}
    dq_of = {n.input[0]: n for n in qm.graph.node if n.op_type == "DequantizeLinear"}
    acts = {}
    for n in qm.graph.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in inits:
            continue
        pre, post = n.input[0], dq_of[n.output[0]].output[0]
        if post.endswith("_DequantizeLinear_Output"):
            name = post[: -len("_DequantizeLinear_Output")]
            assert name == pre, (pre, post)
        else:
            assert pre == post + "_QuantizeLinear_Input", (pre, post)
            name = post
        acts[name] = (pre, post)
    return acts


def run_exposed(m, names, feeds):
    m = onnx.ModelProto.FromString(m.SerializeToString())
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=n))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip(names, s.run(list(names), feeds)))


def folded_chain(fm, qm, name, pre):
    """Relu/Clip nodes of the float model that the QDQ model folded into the producer of `name`."""
    fprod = {o: n for n in fm.graph.node for o in n.output}
    qprod = {o: n for n in qm.graph.node for o in n.output}
    if pre in qprod and qprod[pre].op_type in ("Relu", "Clip"):
        return []
    chain, cur = [], name
    while cur in fprod and fprod[cur].op_type in ("Relu", "Clip"):
        chain.insert(0, fprod[cur])
        cur = fprod[cur].input[0]
    return chain


def apply_chain(fm, chain, x):
    c = constants(fm)
    for n in chain:
        if n.op_type == "Relu":
            x = np.maximum(x, 0)
        else:
            lo = c[n.input[1]] if len(n.input) > 1 and n.input[1] else attr(n, "min", -np.inf)
            hi = c[n.input[2]] if len(n.input) > 2 and n.input[2] else attr(n, "max", np.inf)
            x = np.minimum(np.maximum(x, np.float32(lo)), np.float32(hi))
    return x


def reference_activations(fm, qm, x, input_name):
    acts = quantized_activations(qm)
    graph_inputs = {i.name for i in fm.graph.input}
    fnames = [a for a in acts if a not in graph_inputs]
    fvals = run_exposed(fm, fnames, {input_name: x})
    for a in acts:
        if a in graph_inputs:
            fvals[a] = x
    qnames = sorted({t for p in acts.values() for t in p if t not in graph_inputs})
    qvals = run_exposed(qm, qnames, {input_name: x})
    for a in graph_inputs:
        qvals[a] = x
    out = {}
    for a, (pre, post) in acts.items():
        before = apply_chain(fm, folded_chain(fm, qm, a, pre), qvals[pre])
        out[a] = (snr_db(fvals[a], qvals[post]), snr_db(before, qvals[post]))
    return out


# ---- the run and its outputs ----
LOG_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \[\w+\] ?")


def log_lines(outdir):
    with open(os.path.join(outdir, "onnxquant.log")) as f:
        return [LOG_PREFIX.sub("", line.rstrip("\n")) for line in f]


def inspect(outdir, overrides, config=EXAMPLE):
    run_oq(["--config", config, "--output-dir", outdir, "quantization.operating_mode=inspection"] + overrides)
    with open(os.path.join(outdir, "inspection.json")) as f:
        return json.load(f)


def check_st_log(outdir, report):
    lines = log_lines(outdir)
    h = lines.index("Baseline quantization with parameters specified in config file:")
    assert lines[h - 1] == "", lines[h - 1]
    assert lines[h + 1].startswith("Quantization granularity: "), lines[h + 1]
    assert lines[h + 2].startswith("Quantization parameters: {"), lines[h + 2]
    assert lines[h + 3].startswith("Quantization extra options: {"), lines[h + 3]
    s = lines.index("Baseline quantized model (config file parameters), SNR analysis (dB):")
    assert s > h and lines[s - 1] == ""
    assert lines[s + 1] == "Weights tensors SNR:"
    a = lines.index("Activations tensors SNR:", s)
    tensors = report["tensors"]
    weights = [t for t in tensors if t["kind"] != "activation"]
    acts = [t for t in tensors if t["kind"] == "activation"]
    wl, al = lines[s + 2:a], lines[a + 1:a + 1 + len(acts)]
    assert len(wl) == len(weights), (len(wl), len(weights))
    want_w = sorted(weights, key=lambda t: (t["snr_db"], t["name"]))
    want_a = sorted(acts, key=lambda t: (t["snr_xmodel_db"], t["name"]))
    assert wl == [f"{t['name']}: {t['snr_db']:.3f}" for t in want_w], (wl[:3], want_w[:3])
    assert al == [f"{t['name']}: {t['snr_xmodel_db']:.3f}" for t in want_a], (al[:3], want_a[:3])
    return wl, al


def check_csv(outdir, report):
    with open(os.path.join(outdir, "inspection.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(report["tensors"])
    for r, t in zip(rows, report["tensors"]):
        assert r["name"] == t["name"] and r["kind"] == t["kind"] and int(r["exec_index"]) == t["exec_index"]
        assert r["quant_type"] == t["quant_type"] and r["granularity"] == t["granularity"]
        for k in ("snr_db", "snr_xmodel_db", "snr_local_db"):
            if t.get(k) is None:
                assert r[k] == "", (t["name"], k, r[k])
            else:
                assert abs(float(r[k]) - t[k]) < 1e-5, (t["name"], k, r[k], t[k])
        if t["producer"]:
            assert r["producer_op"] == t["producer"]["op_type"]
        assert r["consumer_ops"].split(";") == [c["op_type"] for c in t["consumers"]] or not t["consumers"]


def check_model(model, calib, split, extra=(), kinds=("weight", "bias", "activation")):
    outdir = tmpdir()
    rep = inspect(outdir, [f"model.model_path=testdata/{model}", f"dataset.quantization_path=testdata/{calib}",
                           f"quantization.iterative_quant_parameters.inspection_split={split}"] + list(extra))
    st = rep["settings"]
    x_all = np.load(os.path.join(TESTDATA, calib))["x"]
    n = len(x_all)
    k = max(1, math.floor(n * split))
    assert st["calibration_samples"] == n and st["inspected_samples"] == k, st
    rows = shuffled_permutation(n, 0)[:k]  # dataset.seed 0, quantization_split null (1.0), first k kept
    x = x_all[rows]

    fm = onnx.load(os.path.join(TESTDATA, model))
    qm = onnx.load(st["quantized_model"])
    by_name = {t["name"]: t for t in rep["tensors"]}
    # Weights and biases.
    ref_w, missing = reference_weights(qm, constants(fm))
    ours_w = {t["name"]: t["snr_db"] for t in rep["tensors"] if t["kind"] != "activation"}
    assert set(ref_w) | set(missing) == set(ours_w), (sorted(ref_w), missing, sorted(ours_w))
    assert len(missing) <= len(ours_w) // 4, missing  # nearly all compared against the file's own initializers
    worst = max(abs(ref_w[w] - ours_w[w]) for w in ref_w)
    assert worst < 0.01, [(w, ref_w[w], ours_w[w]) for w in ref_w if abs(ref_w[w] - ours_w[w]) >= 0.01]
    assert set(kinds) == {t["kind"] for t in rep["tensors"]}, kinds
    # Activations.
    ref_a = reference_activations(fm, qm, x, fm.graph.input[0].name)
    ours_a = {t["name"] for t in rep["tensors"] if t["kind"] == "activation"}
    assert set(ref_a) == ours_a, (sorted(ref_a), sorted(ours_a))
    bad, worst_a = [], 0.0
    for a, (rx, rl) in ref_a.items():
        t = by_name[a]
        worst_a = max(worst_a, abs(rx - t["snr_xmodel_db"]), abs(rl - t["snr_local_db"]))
        if abs(rx - t["snr_xmodel_db"]) >= 0.1 or abs(rl - t["snr_local_db"]) >= 0.1:
            bad.append((a, rx, t["snr_xmodel_db"], rl, t["snr_local_db"]))
    assert not bad, bad
    folded = [t["name"] for t in rep["tensors"] if t.get("folded_into_producer")]
    check_st_log(outdir, rep)
    check_csv(outdir, rep)
    for f in ("inspection.html", "inspection.csv", "inspection.json"):
        assert os.path.getsize(os.path.join(outdir, f)) > 0
    print(f"  {model}: {len(ref_w)} initializers (max diff {worst:.2e} dB), {len(ref_a)} activations "
          f"(max diff {worst_a:.2e} dB; {len(folded)} with folded Relu/Clip) on {k} samples; "
          f"{len(missing)} initializers not in the file (made by pre-processing)", flush=True)
    return outdir


def test_qdq_layout_options():
    """AddQDQPairToWeight, DedicatedQDQPair and UseQDQContribOps change where (and in which domain) Q/DQ nodes go, not
    a value: inspection reads the written names (float weights with a QuantizeLinear, `_1`/`_2` pairs), the executor
    runs com.microsoft Q/DQ, and the SNRs are those of the plain layout."""
    base = ["model.model_path=testdata/digits_mobilenet.onnx", "dataset.quantization_path=testdata/digits_calib.npz",
            "quantization.iterative_quant_parameters.inspection_split=0.2"]
    plain = inspect(tmpdir(), base)
    outdir = tmpdir()
    laid = inspect(outdir, base + ["quantization.onnx_extra_options.AddQDQPairToWeight=True",
                                   "quantization.onnx_extra_options.DedicatedQDQPair=True",
                                   "quantization.onnx_extra_options.UseQDQContribOps=True"])
    qm = onnx.load(laid["settings"]["quantized_model"])
    outs = {o for n in qm.graph.node for o in n.output}
    assert any(o.endswith("_DequantizeLinear_Output_2") for o in outs), "no dedicated pair in the model"
    assert {n.domain for n in qm.graph.node if n.op_type.endswith("QuantizeLinear")} == {"com.microsoft"}
    assert not any(i.name.endswith("_quantized") and i.data_type == onnx.TensorProto.INT8 for i in qm.graph.initializer)
    a = {t["name"]: t for t in plain["tensors"]}
    b = {t["name"]: t for t in laid["tensors"]}
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    for k in ("snr_db", "snr_xmodel_db", "snr_local_db"):
        diff = [(n, a[n].get(k), b[n].get(k)) for n in a if a[n].get(k) != b[n].get(k)]
        assert not diff, diff[:5]
    print(f"  {len(a)} tensors, same SNRs; {sum(o.endswith('_DequantizeLinear_Output_2') for o in outs)} dedicated pairs")


# ---- a model with a deliberately bad weight ----
def make_bad_model(path, data_path):
    rng = np.random.default_rng(7)
    w1 = rng.standard_normal((1024, 4, 3, 3)).astype(np.float32) * 0.1
    w1[0] *= 100.0  # one outlier output channel: the per-tensor scale crushes the 1023 others
    b1 = rng.standard_normal(1024).astype(np.float32) * 0.01
    w2 = rng.standard_normal((16, 1024, 1, 1)).astype(np.float32) * 0.05
    nodes = [helper.make_node("Conv", ["input", "W1", "B1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "W2"], ["c2"], name="conv2"),
             helper.make_node("GlobalAveragePool", ["c2"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["logits"], name="flatten")]
    g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, 6, 6])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 16])],
                          [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(b1, "B1"),
                           numpy_helper.from_array(w2, "W2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m)
    onnx.save(m, path)
    np.savez(data_path, x=rng.random((24, 4, 6, 6)).astype(np.float32))


def test_shared_bias():
    """One bias read by two Convs: the QDQ model copies it for the second (ORT's `<bias>0`); inspection reports
    both, each with its own consumer and the SNR of its own int32 image against the float bias."""
    from onnx import TensorProto, helper
    d = tmpdir()
    r = np.random.default_rng(0)
    inits = [numpy_helper.from_array((r.standard_normal(s) * k).astype(np.float32), n)
             for n, s, k in (("W1", (4, 3, 3, 3), 0.3), ("W2", (4, 4, 3, 3), 0.3), ("b", (4,), 0.1))]
    nodes = [helper.make_node("Conv", ["input", "W1", "b"], ["c1"], name="conv1", pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
             helper.make_node("Conv", ["r1", "W2", "b"], ["y"], name="conv2", pads=[1] * 4)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, os.path.join(d, "m.onnx"))
    np.savez(os.path.join(d, "d.npz"), input=r.standard_normal((10, 3, 8, 8)).astype(np.float32))
    rep = inspect(os.path.join(d, "out"), [f"model.model_path={d}/m.onnx", f"dataset.quantization_path={d}/d.npz",
                                           "preprocessing.color_mode=rgb"])
    t = {x["name"]: x for x in rep["tensors"]}
    assert [c["name"] for c in t["b"]["consumers"]] == ["conv1"], t["b"]
    assert [c["name"] for c in t["b0"]["consumers"]] == ["conv2"], t["b0"]
    qm = onnx.load(os.path.join(d, "out", "quantized_models", "m_quant_qdq_pc.onnx"))
    c = constants(qm)
    b = numpy_helper.to_array(inits[2])
    for name in ("b", "b0"):
        xh = c[name + "_quantized"].astype(np.float32) * c[name + "_quantized_scale"]  # DequantizeLinear: float32
        assert abs(snr_db(b, xh) - t[name]["snr_db"]) < 1e-6, (name, snr_db(b, xh), t[name]["snr_db"])
    assert not np.allclose(c["b_quantized_scale"], c["b0_quantized_scale"])  # each its own input x weight scale


def test_masked_attention():
    """Attention scores plus a -10 000 padding mask: the Int8 scale of the masked scores (~40) rounds every real
    score to 0, while their own SNR stays high (the mask values dominate it). The tensors after the Softmax are
    flagged; the zeroed fraction (recomputed here in ORT from the QDQ model's value before QuantizeLinear and its
    DequantizeLinear output) puts the masked scores first in the suggestions, and 16 bits there repairs the
    Softmax."""
    from onnx import TensorProto, helper
    d = tmpdir()
    r = np.random.default_rng(3)
    mask = np.zeros((1, 1, 8), np.float32)
    mask[..., 5:] = -1e4
    inits = [numpy_helper.from_array((r.standard_normal((16, 16)) * 0.4).astype(np.float32), "wq"),
             numpy_helper.from_array((r.standard_normal((16, 16)) * 0.4).astype(np.float32), "wk"),
             numpy_helper.from_array(mask, "mask")]
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"),
             helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
             helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
             helper.make_node("Add", ["s", "mask"], ["m"], name="masked"),
             helper.make_node("Softmax", ["m"], ["p"], name="softmax", axis=-1),
             helper.make_node("MatMul", ["p", "x"], ["y"], name="pv")]
    g = helper.make_graph(nodes, "att", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, os.path.join(d, "att.onnx"))
    x = r.standard_normal((12, 1, 8, 16)).astype(np.float32)[:, 0]
    np.savez(os.path.join(d, "d.npz"), x=x)
    common = [f"model.model_path={d}/att.onnx", f"dataset.quantization_path={d}/d.npz", "preprocessing.color_mode=rgb",
              "quantization.iterative_quant_parameters.inspection_split=1"]
    rep = inspect(os.path.join(d, "run1"), common)
    t = {e["name"]: e for e in rep["tensors"]}
    qm = onnx.load(os.path.join(d, "run1", "quantized_models", "att_quant_qdq_pc.onnx"))
    nz = z = 0
    for i in range(len(x)):
        v = run_exposed(qm, ["m", "m_DequantizeLinear_Output"], {"x": x[i:i + 1]})
        nz += int((v["m"] != 0).sum())
        z += int(((v["m"] != 0) & (v["m_DequantizeLinear_Output"] == 0)).sum())
    assert abs(t["m"]["zeroed_fraction"] - z / nz) < 1e-12, (t["m"]["zeroed_fraction"], z / nz)
    assert t["m"]["zeroed_fraction"] >= 0.5 and t["m"]["snr_xmodel_db"] > 20 and t["p"]["snr_xmodel_db"] < 20, t
    snippet = snippet_from_html(os.path.join(d, "run1", "inspection.html"))
    acts = [line.strip() for line in snippet.splitlines() if line.strip().startswith("- [")]
    assert acts and acts[0].startswith("- ['m', {quant_type: Int16"), snippet  # the masked scores come first
    over = ["quantization.onnx_extra_options.activations_tensor_override=[['m', {quant_type: Int16}]]",
            "quantization.target_opset=21"]
    rep2 = inspect(os.path.join(d, "run2"), common + over)
    p2 = next(e for e in rep2["tensors"] if e["name"] == "p")
    assert p2["snr_xmodel_db"] > 20, (t["p"]["snr_xmodel_db"], p2["snr_xmodel_db"])


def snippet_from_html(path):
    with open(path) as f:
        page = f.read()
    m = re.search(r'<pre id="overrides-yaml">(.*?)</pre>', page, re.S)
    assert m, "no YAML snippet in the page"
    return html.unescape(m.group(1))


def test_bad_tensor_and_suggestion():
    work = tmpdir()
    model, data = os.path.join(work, "bad.onnx"), os.path.join(work, "bad.npz")
    make_bad_model(model, data)
    common = [f"model.model_path={model}", f"dataset.quantization_path={data}", "quantization.granularity=per_tensor",
              "quantization.iterative_quant_parameters.inspection_split=1.0"]
    out1 = os.path.join(work, "run1")
    rep1 = inspect(out1, common)
    wl, _ = check_st_log(out1, rep1)
    assert wl[0].startswith("W1: "), wl
    w1 = next(t for t in rep1["tensors"] if t["name"] == "W1")
    assert w1["granularity"] == "per_tensor" and w1["snr_db"] < 20.0, w1
    others = [t["snr_db"] for t in rep1["tensors"] if t["kind"] == "weight" and t["name"] != "W1"]
    assert min(others) > w1["snr_db"] + 10, others
    snippet = snippet_from_html(os.path.join(out1, "inspection.html"))
    assert "- ['W1', {quant_type: Int8, axis: 0}]" in snippet, snippet
    # Paste the snippet into the config under onnx_extra_options, in place of both (empty) keys.
    with open(EXAMPLE) as f:
        text = f.read()
    old = "    weights_tensor_override:\n    activations_tensor_override:\n"
    assert old in text
    pasted = "".join("    " + line + "\n" for line in snippet.rstrip("\n").split("\n"))
    cfg = os.path.join(work, "fixed.yaml")
    with open(cfg, "w") as f:
        f.write(text.replace(old, pasted))
    out2 = os.path.join(work, "run2")
    rep2 = inspect(out2, common, config=cfg)
    w1b = next(t for t in rep2["tensors"] if t["name"] == "W1")
    assert w1b["granularity"] == "per_channel" and w1b["axis"] == 0, w1b
    assert w1b["snr_db"] > w1["snr_db"] + 15, (w1["snr_db"], w1b["snr_db"])
    assert w1b["snr_db"] > 20.0
    print(f"  W1: {w1['snr_db']:.2f} dB per tensor -> {w1b['snr_db']:.2f} dB with the suggested override", flush=True)
    return out1


# ---- the page in headless Chromium ----
def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * bpp)
    img = np.zeros((h, w * bpp), np.int32)
    prev = np.zeros(w * bpp, np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        cur = np.zeros_like(line)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        elif f in (1, 3, 4):
            for i in range(len(line)):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) >> 1
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (line[i] + pred) & 255
        else:
            raise AssertionError(f"bad PNG filter {f}")
        img[y] = cur
        prev = cur
    return img.reshape(h, w, bpp)[:, :, :3]


def test_html_in_chromium(outdir):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        print("  SKIP: chromium is not installed (scripts/setup.sh installs Debian's chromium)", flush=True)
        return
    page = os.path.join(outdir, "inspection.html")
    with open(page) as f:
        text = f.read()
    assert re.search(r"(src|href)=\"(https?:)?//", text) is None, "the page loads something from the network"
    work = tmpdir()
    png = os.path.join(work, "shot.png")
    p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={work}/profile",
                        f"--screenshot={png}", "--window-size=1200,900", "file://" + os.path.abspath(page)],
                       capture_output=True, text=True, timeout=180, env=dict(os.environ, HOME=work))
    assert os.path.exists(png), f"no screenshot ({p.returncode}): {p.stderr[-2000:]}"
    img = read_png(png)
    assert img.shape[:2] == (900, 1200), img.shape
    assert float(img.std()) > 10.0, img.std()
    colours = {tuple(c) for c in img.reshape(-1, 3)[::7]}
    assert len(colours) > 20, len(colours)
    # Bars of the Int8 colour (#1f77b4) are drawn.
    blue = np.all(np.abs(img - np.array([31, 119, 180])) <= 40, axis=2) | \
        np.all(np.abs(img - np.array([165, 201, 225])) <= 40, axis=2)
    assert blue.sum() > 200, blue.sum()
    print(f"  screenshot: std {img.std():.1f}, {len(colours)} colours, {int(blue.sum())} bar pixels", flush=True)


def main():
    r = Runner()
    r.run("mt19937_64 matches the C++ standard", test_mt19937_64)
    outs = {}
    r.run("mobilenet (example config)", lambda: outs.setdefault("m", check_model("digits_mobilenet.onnx",
                                                                                 "digits_calib.npz", 0.5)))
    r.run("resnet, batches of 8", lambda: check_model("digits_resnet.onnx", "digits_calib.npz", 0.3,
                                                      ["dataset.batch_size=8"]))
    # (pre-processing fuses the MLP's MatMul + Add into Gemm, as ORT's quant_pre_process: int32 biases)
    r.run("mlp, per-tensor", lambda: check_model("digits_mlp.onnx", "digits_calib_flat.npz", 0.25,
                                                 ["quantization.granularity=per_tensor"]))
    r.run("bad tensor first; suggested override raises it", lambda: outs.setdefault("bad", test_bad_tensor_and_suggestion()))
    r.run("a bias shared by two Convs (copied as b0)", test_shared_bias)
    r.run("masked attention: the zeroed scores are suggested first", test_masked_attention)
    r.run("AddQDQPairToWeight / DedicatedQDQPair / UseQDQContribOps layouts: same SNRs", test_qdq_layout_options)
    r.run("HTML renders in headless Chromium", lambda: test_html_in_chromium(outs.get("m") or outs["bad"]))
    r.finish()


if __name__ == "__main__":
    main()
