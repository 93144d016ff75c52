"""full_auto's bit widths and node filters, checked on the written files with onnx + numpy (fifteenth-session QA):

* nodes_to_quantize (it used to stop with exit 2 blaming weights_tensor_override, after scoring and writing the
  8-bit model), nodes_to_exclude, op_types_to_quantize: the candidates are exactly the Conv / Gemm weights of the
  quantized nodes (read from the folded model), the other nodes' weights stay float in every written file, and
  the shares (file name, full_auto.json) are those counted in the file, over its quantized constants only. A real
  weights_tensor_override with nodes_to_quantize is still refused: exit 2, nothing written.
* 16-bit overrides (one weight, one activation) and an Int4 activation override: the file names carry _w16_ /
  _a16_ / _a4_ shares equal to the count of the file (they were named _w8_ / a8_100%), the log's QInt8 line counts
  8-bit weights only, full_auto.json gives every width; with 4/8-bit weights and 8-bit activations only the name is
  ST's exactly.
* search: greedy when nothing can stay in 4 bits: the answer is the 8-bit reference (it used to write a _w4_0.00%
  copy of it), as the bisection's; the all-Int8 attempt's score is the reference's, recomputed with onnxruntime.
"""
import collections
import glob
import json
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import TESTDATA, Runner, ort_session, run_oq, tmpdir  # noqa: E402

BITS = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.INT8: 8, TensorProto.UINT8: 8,
        TensorProto.INT16: 16, TensorProto.UINT16: 16}


def count(path):
    """(weights, activations, quantized weight names): parameters per bit width of the quantized constants (the
    integer initializers DequantizeLinear reads, int32 biases excepted) and quantized activation tensors per bit
    width (distinct inputs of QuantizeLinear nodes, typed by their zero points), counted in the file."""
    m = onnx.load(path)
    inits = {i.name: i for i in m.graph.initializer}
    w, a, names, seen = collections.Counter(), collections.Counter(), {}, set()
    for n in m.graph.node:
        x = n.input[0]
        if n.op_type == "DequantizeLinear" and x in inits and inits[x].data_type in BITS and x not in names:
            names[x] = BITS[inits[x].data_type]
            w[names[x]] += int(np.prod(inits[x].dims))
        elif n.op_type == "QuantizeLinear" and x not in inits:
            b = BITS[inits[n.input[2]].data_type]
            if (x, b) not in seen:
                seen.add((x, b))
                a[b] += 1
    return w, a, names


def pct(n, total):
    return 100.0 * n / total if total else 0.0


def name_part(w, a):
    """The name's precision part from the counts: ST's exact spelling for 4/8-bit weights and 8-bit activations,
    else every width (w4, w8 and a8 always) in increasing bits (docs/config.md)."""
    tw, ta = sum(w.values()), sum(a.values())
    if set(w) <= {4, 8} and set(a) <= {8}:
        return f"_w4_{pct(w[4], tw):.2f}%_w8_{100 - pct(w[4], tw):.2f}%_a8_100%"
    s = f"_w4_{pct(w[4], tw):.2f}%_w8_{pct(w[8], tw):.2f}%"
    s += "".join(f"_w{b}_{pct(w[b], tw):.2f}%" for b in sorted(w) if b not in (4, 8))
    return s + "".join(f"_a{b}_{pct(a[b], ta):.2f}%" for b in sorted(set(a) | {8}))


def check_precision(js, w, a, where):
    """full_auto.json's precision block against the file's counts."""
    tw, ta = sum(w.values()), sum(a.values())
    assert {int(k): v["count"] for k, v in js["weight_bits"].items()} == dict(w), (where, js, w)
    assert {int(k): v["count"] for k, v in js["activation_bits"].items()} == dict(a), (where, js, a)
    for k, v in js["weight_bits"].items():
        assert abs(v["percent"] - pct(w[int(k)], tw)) < 1e-9, (where, k, v)
    for k, v in js["activation_bits"].items():
        assert abs(v["percent"] - pct(a[int(k)], ta)) < 1e-9, (where, k, v)


def full_auto(extra, model="digits_mobilenet.onnx", calib="digits_calib.npz", test="digits_test.npz", check=True):
    out = tmpdir()
    p = run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out,
                f"model.model_path=testdata/{model}", f"dataset.quantization_path=testdata/{calib}",
                f"dataset.test_path=testdata/{test}", *extra], check=check)
    return out, p


def check_run(out, tag="digits_mobilenet_qdq"):
    """Every written attempt and the 8-bit reference against their files; returns the report."""
    rep = json.load(open(os.path.join(out, "full_auto.json")))
    w, a, _ = count(rep["int8_model"])
    check_precision(rep["int8_precision"], w, a, "8-bit reference")
    assert rep["quantized_weights"] == sum(w.values()), (rep["quantized_weights"], w)
    written = [t for t in rep["attempts"] if t["file"]]
    for t in written:
        w, a, _ = count(t["file"])
        want = f"{tag}{name_part(w, a)}_acc_{t['score']:.2f}.onnx"
        assert os.path.basename(t["file"]) == want, (t["file"], want)
        check_precision(t["precision"], w, a, t["file"])
        assert abs(t["w4_percent"] - pct(w[4], sum(w.values()))) < 1e-9, (t["w4_percent"], w)
    files = sorted(os.path.basename(f) for f in glob.glob(os.path.join(out, "quantized_models", f"{tag}_w4_*.onnx")))
    assert files == sorted({os.path.basename(t["file"]) for t in written}), (files, written)
    return rep


def folded_weights(out, keep):
    """Conv / Gemm weight of each node of the folded model: {node name: weight name} for the nodes keep(node)."""
    m = onnx.load(os.path.join(out, "digits_mobilenet_folded.onnx"))
    return {n.name: n.input[1] for n in m.graph.node if n.op_type in ("Conv", "Gemm") and keep(n)}


def check_filtered(out, rep, quantized):
    """`quantized`: {node: weight} of the quantized Conv / Gemm nodes. The ranking is their weights; in every
    written file exactly those are stored quantized (every other Conv / Gemm reads its float weight)."""
    assert sorted(rep["ranking"]) == sorted(set(quantized.values())), (rep["ranking"], quantized)
    floats = folded_weights(out, lambda n: n.name not in quantized)
    for f in [rep["int8_model"]] + [t["file"] for t in rep["attempts"] if t["file"]]:
        m = onnx.load(f)
        inits = {i.name: i for i in m.graph.initializer}
        _, _, names = count(f)
        assert {n[: -len("_quantized")] for n in names} == set(quantized.values()), (f, names)
        for n in m.graph.node:
            if n.name in floats:
                assert inits[n.input[1]].data_type == TensorProto.FLOAT, (f, n.name, n.input[1])


def nodes_to_quantize():
    nodes = ["/fc/Gemm", "/features/features.8/body/body.6/Conv"]
    out, p = full_auto([f"quantization.onnx_quant_parameters.nodes_to_quantize=[{', '.join(nodes)}]"])
    rep = check_run(out)
    check_filtered(out, rep, folded_weights(out, lambda n: n.name in nodes))
    assert rep["ranked_tensors"] == 2 and any(t["file"] for t in rep["attempts"]), rep["attempts"]
    # fc.weight (10 x 96) and the 1x1 Conv (128 -> 48): the shares are of these 7104 parameters only.
    assert rep["quantized_weights"] == 960 + 6144, rep["quantized_weights"]
    # A real weights_tensor_override is still refused with nodes_to_quantize, before anything is written.
    bad, p = full_auto([f"quantization.onnx_quant_parameters.nodes_to_quantize=[{', '.join(nodes)}]",
                        "quantization.onnx_extra_options.weights_tensor_override=[[fc.weight, {quant_type: Int8}]]"],
                       check=False)
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 2 and "nodes_to_quantize" in last and "weights_tensor_override" in last, (p.returncode, last)
    assert not glob.glob(os.path.join(bad, "**", "*.onnx"), recursive=True), os.listdir(bad)


def nodes_to_exclude_and_op_types():
    excl = ["/fc/Gemm", "/features/features.0/Conv"]
    out, _ = full_auto([f"quantization.onnx_quant_parameters.nodes_to_exclude=[{', '.join(excl)}]"])
    rep = check_run(out)
    check_filtered(out, rep, folded_weights(out, lambda n: n.name not in excl))
    out, _ = full_auto(["quantization.onnx_quant_parameters.op_types_to_quantize=[Conv, Add, Clip]"])
    rep = check_run(out)
    check_filtered(out, rep, folded_weights(out, lambda n: n.op_type == "Conv"))
    # Only 4/8-bit weights and 8-bit activations: ST's name exactly (w8 = 100 - w4).
    for t in rep["attempts"]:
        if t["file"]:
            m = re.fullmatch(r"digits_mobilenet_qdq_w4_(\d+\.\d\d)%_w8_(\d+\.\d\d)%_a8_100%_acc_\d+\.\d\d\.onnx",
                             os.path.basename(t["file"]))
            assert m and f"{100 - float(m.group(1)):.2f}" == m.group(2), t["file"]


def sixteen_bit_overrides():
    out, p = full_auto(["quantization.onnx_extra_options.weights_tensor_override=[['onnx::Conv_266', {quant_type: Int16}]]",
                        "quantization.onnx_extra_options.activations_tensor_override="
                        "[['/features/features.2/Clip_output_0', {quant_type: Int16}]]"])
    rep = check_run(out)
    written = [t for t in rep["attempts"] if t["file"]]
    assert written
    for t in written:
        w, a, names = count(t["file"])
        # the overridden 1x1 Conv (48 x 128) is the only 16-bit weight; one activation of 27 is 16-bit
        assert [n for n, b in names.items() if b == 16] == ["onnx::Conv_266_quantized"] and w[16] == 6144, names
        assert a[16] == 1 and a[8] == 26 and set(a) == {8, 16}, a
        assert f"_w16_{pct(6144, sum(w.values())):.2f}%_a8_96.30%_a16_3.70%_acc_" in t["file"], t["file"]
    # The log: each attempt's QInt8 line counts its 8-bit weights (not the 16-bit one), then every width.
    log = open(os.path.join(out, "onnxquant.log")).read()
    lines = re.findall(r"bit-widths for (\d+) / \d+ selected weights.*\n.*we have (\d+) weights in QInt8 over a total "
                       r"of (\d+) weights.*\n(.*)", log)
    assert lines, log[-2000:]
    by_n = {t["n_int8"]: t for t in rep["attempts"]}
    checked = 0
    for n, w8, total, nxt in lines:
        t = by_n[int(n)]
        assert int(w8) == t["precision"]["weight_bits"]["8"]["count"] and int(total) == rep["quantized_weights"]
        assert "by bit width" in nxt and "6144 in 16 bits" in nxt, nxt
        if t["file"]:
            w, _, _ = count(t["file"])
            assert int(w8) == w[8], (n, w8, w)
            checked += 1
    assert checked, "no logged attempt was written"
    assert "8-bit reference bit widths:" in p.stderr and "Answer bit widths:" in p.stderr or rep["answer"]["attempt"] is None
    html = open(os.path.join(out, "full_auto.html")).read()
    assert "16: " in html and "activation tensors % by bits" in html


def int4_activation_override():
    out, _ = full_auto(["quantization.onnx_extra_options.activations_tensor_override="
                        "[['/features/features.2/Clip_output_0', {quant_type: Int4}]]",
                        "quantization.iterative_quant_parameters.accuracy_tolerance=100"])
    rep = check_run(out)
    w, a, _ = count(rep["int8_model"])
    assert a == {4: 1, 8: 26}, a
    t = rep["attempts"][rep["answer"]["attempt"]]
    assert "_a4_3.70%_a8_96.30%_acc_" in t["file"], t["file"]


def greedy_all_int8():
    """output_snr with tolerance 0: no attempt with a weight in Int4 reaches the 8-bit SNR. Both searches answer
    the 8-bit reference; greedy's all-Int8 attempt carries its score (the SNR of the written _qdq.onnx against the
    folded float model, recomputed in onnxruntime)."""
    x = np.load(os.path.join(TESTDATA, "digits_test_flat.npz"))["x"]
    for search in ("greedy", "bisection"):
        out, p = full_auto(["quantization.iterative_quant_parameters.metric=output_snr",
                            "quantization.iterative_quant_parameters.accuracy_tolerance=0",
                            f"quantization.iterative_quant_parameters.search={search}"],
                           model="digits_mlp.onnx", calib="digits_calib_flat.npz", test="digits_test_flat.npz")
        rep = check_run(out, tag="digits_mlp_qdq")
        assert rep["answer"]["attempt"] is None and rep["answer"]["file"] == rep["int8_model"], (search, rep["answer"])
        assert "answer is the 8-bit reference" in p.stderr, p.stderr[-1500:]
        assert not glob.glob(os.path.join(out, "quantized_models", "*_w4_*")), os.listdir(os.path.join(out, "quantized_models"))

        def outputs(path):
            s = ort_session(path)
            return s.run(None, {s.get_inputs()[0].name: x})[0].astype(np.float64)
        ref = outputs(os.path.join(out, "digits_mlp_folded.onnx"))
        y = outputs(rep["int8_model"])
        snr = 10.0 * np.log10(np.sum(ref ** 2) / np.sum((ref - y) ** 2))
        assert abs(rep["scores"]["int8"] - snr) < 0.05, (rep["scores"]["int8"], snr)
        all8 = [t for t in rep["attempts"] if t["n_int8"] == rep["ranked_tensors"]]
        assert all8 and all(t["score"] == rep["scores"]["int8"] and t["passed"] for t in all8), (search, all8)
        assert all(not t["passed"] for t in rep["attempts"] if t["n_int8"] < rep["ranked_tensors"]), rep["attempts"]


if __name__ == "__main__":
    r = Runner()
    r.run("full_auto + nodes_to_quantize (a real override still refused)", nodes_to_quantize)
    r.run("full_auto + nodes_to_exclude, op_types_to_quantize; ST names", nodes_to_exclude_and_op_types)
    r.run("16-bit weight and activation overrides: names, log, JSON", sixteen_bit_overrides)
    r.run("Int4 activation override named a4", int4_activation_override)
    r.run("greedy and bisection: nothing in 4 bits -> the 8-bit reference", greedy_all_int8)
    r.finish()
