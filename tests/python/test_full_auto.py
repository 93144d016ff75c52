"""full_auto on the testdata models: onnxruntime independently evaluates every written model; its top-1 equals
the score onnxquant reported (±0.2 points) and the answer is within the tolerance of the 8-bit reference.
ORT runs with graph optimizations disabled: the QDQ graph is evaluated as the ONNX spec defines it."""
import json
import os
import re
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import TESTDATA, Runner, ort_top1, run_oq, tmpdir  # noqa: E402


def steps(n):
    """The issue's schedule, computed independently: round_half_even(N / 2^(i+1)) for i < round_half_even(log2 N),
    then 1s until the sum reaches N."""
    out = [int(np.round(n / 2 ** (i + 1))) for i in range(int(np.round(np.log2(n))))] if n > 0 else []
    while sum(out) < n:
        out.append(1)
    return out


def w4_share(path):
    """Percent of the quantized constants' values (every `<t>_quantized` initializer except int32 biases) that are
    stored in 4 bits, counted from the model file."""
    from onnx import TensorProto
    m = onnx.load(path)
    n4 = n = 0
    for t in m.graph.initializer:
        if not t.name.endswith("_quantized") or t.data_type == TensorProto.INT32:
            continue
        k = int(np.prod(t.dims)) if len(t.dims) else 1
        n += k
        n4 += k if t.data_type in (TensorProto.INT4, TensorProto.UINT4) else 0
    return 100.0 * n4 / n


def check(model, calib, test, tolerance="1.0", extra=()):
    out = tmpdir()
    p = run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out,
                f"model.model_path=testdata/{model}", f"dataset.quantization_path=testdata/{calib}",
                f"dataset.test_path=testdata/{test}",
                f"quantization.iterative_quant_parameters.accuracy_tolerance={tolerance}", *extra])
    rep = json.load(open(os.path.join(out, "full_auto.json")))
    npz = os.path.join(TESTDATA, test)
    base = os.path.splitext(model)[0]
    assert os.path.exists(os.path.join(out, base + "_folded.onnx"))
    ref = ort_top1(rep["int8_model"], npz)
    assert abs(ref - rep["scores"]["int8"]) <= 0.2, f"8-bit: ORT {ref} vs reported {rep['scores']['int8']}"
    written = [a for a in rep["attempts"] if a["file"]]
    for a in written:
        onnx.checker.check_model(onnx.load(a["file"]), full_check=True)
        got = ort_top1(a["file"], npz)
        assert abs(got - a["score"]) <= 0.2, f"{a['file']}: ORT {got} vs reported {a['score']}"
        m = re.search(r"_acc_([0-9.]+)\.onnx$", a["file"])
        assert m and abs(float(m.group(1)) - a["score"]) < 0.006, a["file"]
        assert a["passed"] and a["score"] >= rep["threshold"] - 1e-9
        assert abs(w4_share(a["file"]) - a["w4_percent"]) < 0.01, (a["file"], w4_share(a["file"]))
    for i, a in enumerate(rep["attempts"]):  # a configuration the walk comes back to says which attempt it repeats
        if "repeat_of" in a:
            b = rep["attempts"][a["repeat_of"]]
            assert a["repeat_of"] < i and b["int8_tensors"] == a["int8_tensors"] and b["score"] == a["score"], a
        else:
            assert all(b["int8_tensors"] != a["int8_tensors"] for b in rep["attempts"][:i]), a
    # Total passes = 3 + steps: float, 8-bit, the all-4-bit attempt, then one attempt per bisection step.
    assert len(rep["attempts"]) == 1 + len(steps(rep["ranked_tensors"])), (len(rep["attempts"]), rep["ranked_tensors"])
    if rep["answer"]["attempt"] is not None:
        ans = rep["attempts"][rep["answer"]["attempt"]]
        assert ans["file"], "the answer was not written"
        assert ans["score"] >= rep["scores"]["int8"] - float(tolerance) - 1e-9
        assert all(ans["n_int8"] <= a["n_int8"] for a in rep["attempts"] if a["passed"])
        assert "Answer:" in p.stderr
    else:
        assert "answer is the 8-bit reference" in p.stderr
    assert os.path.getsize(os.path.join(out, "full_auto.html")) > 1000
    log = open(os.path.join(out, "onnxquant.log")).read()
    assert "Model layers scores (layer name, layer type, number of weights, number of weights per output scale):" in log
    assert "New quantization with updated bit-widths for" in log or rep["answer"]["n_int8"] == 0
    print(f"  {model}: 8-bit {rep['scores']['int8']:.2f}, answer {rep['answer']}")


def embedding_share():
    """A token model (Gather on a float embedding table -> MatMul -> ReduceMean -> Gemm): the table is quantized
    too (ORT's QDQGather) but is no 4-bit candidate; the reported share counts it in the denominator, as the
    written file does."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    d = tmpdir()
    inits = [numpy_helper.from_array(rng.standard_normal((200, 32)).astype(np.float32), "emb"),
             numpy_helper.from_array((rng.standard_normal((32, 32)) * 0.2).astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal((4, 32)) * 0.2).astype(np.float32), "wc"),
             numpy_helper.from_array(np.zeros(4, np.float32), "bc"),
             numpy_helper.from_array(np.array([1], np.int64), "ax")]
    nodes = [helper.make_node("Gather", ["emb", "x"], ["e"], name="gather"),
             helper.make_node("MatMul", ["e", "w1"], ["h"], name="mm"),
             helper.make_node("ReduceMean", ["h", "ax"], ["p"], name="pool", keepdims=0),
             helper.make_node("Gemm", ["p", "wc", "bc"], ["y"], name="cls", transB=1)]
    g = helper.make_graph(nodes, "tok", [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    onnx.save(m, os.path.join(d, "tok.onnx"))
    ids = rng.integers(0, 200, (40, 6)).astype(np.int64)
    np.savez(os.path.join(d, "calib.npz"), x=ids[:20])
    np.savez(os.path.join(d, "test.npz"), x=ids[20:], y=np.zeros(20, np.int64))
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", os.path.join(d, "out"),
            f"model.model_path={d}/tok.onnx", f"dataset.quantization_path={d}/calib.npz",
            f"dataset.test_path={d}/test.npz", "quantization.target_opset=21",
            "quantization.iterative_quant_parameters.metric=agreement",
            "quantization.iterative_quant_parameters.accuracy_tolerance=5"])
    rep = json.load(open(os.path.join(d, "out", "full_auto.json")))
    written = [a for a in rep["attempts"] if a["file"]]
    assert written
    for a in written:
        assert abs(w4_share(a["file"]) - a["w4_percent"]) < 0.01, (a["file"], a["w4_percent"], w4_share(a["file"]))
    # the table (6400 values) stays in 8 bits: at most (1024 + 128) / (6400 + 1024 + 128) in 4 bits
    assert max(a["w4_percent"] for a in written) < 16, [a["w4_percent"] for a in written]
    # The log's 8-bit ratio of each attempt is over the same denominator: it and the 4-bit share add up to 100 %
    # (the table, outside the ranking, is counted in Int8).
    log = open(os.path.join(d, "out", "onnxquant.log")).read()
    ratios = re.findall(r"bit-widths for (\d+) / \d+ selected weights.*\n.*we have (\d+) weights in QInt8 over a "
                        r"total of (\d+) weights so a ratio of ([0-9.]+) %", log)
    assert ratios, log[-2000:]
    for n, w8, total, ratio in ratios:
        a = next(a for a in rep["attempts"] if a["n_int8"] == int(n))
        assert int(total) == rep["quantized_weights"] and int(w8) >= 6400, (w8, total)
        assert abs(float(ratio) + a["w4_percent"] - 100) < 0.011, (n, ratio, a["w4_percent"])
    ans = rep["answer"]["attempt"]
    if ans is not None:
        html = open(os.path.join(d, "out", "full_auto.html")).read()
        assert f"{rep['attempts'][ans]['w4_percent']:.2f}% of the quantized weight parameters in 4 bits" in html


def check_metrics():
    """evaluator_command (scores must be exactly what the external command printed), agreement + relative
    tolerance (scores are percentages of samples agreeing with the float model). The output directory's name has a
    space and a quote: {model} must reach the command as one word."""
    out = os.path.join(tmpdir(), "o it's")
    cmd = f"{sys.executable} tests/python/eval_top1.py {{model}} testdata/digits_test_flat.npz"
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out,
            "model.model_path=testdata/digits_mlp.onnx", "dataset.quantization_path=testdata/digits_calib_flat.npz",
            "dataset.test_path=testdata/digits_test_flat.npz",
            "quantization.iterative_quant_parameters.metric=evaluator_command",
            f"quantization.iterative_quant_parameters.evaluator_command={json.dumps(cmd)}"])
    rep = json.load(open(os.path.join(out, "full_auto.json")))
    assert rep["metric"] == "evaluator_command"
    npz = os.path.join(TESTDATA, "digits_test_flat.npz")
    assert abs(rep["scores"]["int8"] - round(ort_top1(rep["int8_model"], npz), 4)) < 1e-9
    for a in rep["attempts"]:
        if a["file"]:
            assert abs(a["score"] - round(ort_top1(a["file"], npz), 4)) < 1e-9, a
    # A failing command: its exit code (not the raw wait status) in a one-line error.
    bad = tmpdir()
    p = run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", bad,
                "model.model_path=testdata/digits_mlp.onnx", "dataset.quantization_path=testdata/digits_calib_flat.npz",
                "dataset.test_path=testdata/digits_test_flat.npz",
                "quantization.iterative_quant_parameters.metric=evaluator_command",
                "quantization.iterative_quant_parameters.evaluator_command=sh -c 'exit 3'"], check=False)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and "evaluator_command exited with 3: sh -c 'exit 3'" in err[-1], (p.returncode, err[-3:])
    out2 = tmpdir()
    run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out2,
            "model.model_path=testdata/digits_mlp.onnx", "dataset.quantization_path=testdata/digits_calib_flat.npz",
            "dataset.test_path=testdata/digits_test_flat.npz", "quantization.iterative_quant_parameters.metric=agreement",
            "quantization.iterative_quant_parameters.tolerance_mode=relative",
            "quantization.iterative_quant_parameters.accuracy_tolerance=2"])
    rep = json.load(open(os.path.join(out2, "full_auto.json")))
    assert rep["metric"] == "agreement"
    assert abs(rep["threshold"] - rep["scores"]["int8"] * 0.98) < 1e-9, rep["threshold"]
    float_model = os.path.join(out2, "digits_mlp_folded.onnx")
    x = np.load(npz)["x"]
    def argmax(path):
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return s.run(None, {s.get_inputs()[0].name: x})[0].argmax(1)
    want = 100.0 * float(np.mean(argmax(rep["int8_model"]) == argmax(float_model)))
    assert abs(rep["scores"]["int8"] - want) < 0.2, (rep["scores"]["int8"], want)

    # output_snr: the float model is the reference (no float score: null, not 0); each score is the SNR in dB
    # of all outputs against the float model's, recomputed here from onnxruntime's outputs.
    out3 = tmpdir()
    p = run_oq(["--config", "examples/digits/user_config.yaml", "--output-dir", out3,
                "model.model_path=testdata/digits_mlp.onnx", "dataset.quantization_path=testdata/digits_calib_flat.npz",
                "dataset.test_path=testdata/digits_test_flat.npz",
                "quantization.iterative_quant_parameters.metric=output_snr",
                "quantization.iterative_quant_parameters.accuracy_tolerance=3"])
    rep = json.load(open(os.path.join(out3, "full_auto.json")))
    assert rep["metric"] == "output_snr" and rep["unit"].strip() == "dB", rep["unit"]
    assert rep["scores"]["float"] is None, rep["scores"]
    assert "Step 2: float model outputs on 360 samples computed: the reference of output_snr" in p.stderr
    html = open(os.path.join(out3, "full_auto.html")).read()
    assert "float (the reference)" in html and "float 0.00" not in html
    def outputs(path):
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return s.run(None, {s.get_inputs()[0].name: x})[0].astype(np.float64)
    ref = outputs(os.path.join(out3, "digits_mlp_folded.onnx"))
    for path, score in [(rep["int8_model"], rep["scores"]["int8"])] + [(a["file"], a["score"]) for a in rep["attempts"] if a["file"]]:
        y = outputs(path)
        want = 10.0 * np.log10(np.sum(ref ** 2) / np.sum((ref - y) ** 2))
        assert abs(score - want) < 0.05, (path, score, want)


if __name__ == "__main__":
    r = Runner()
    r.run("schedule examples", lambda: (steps(28) == [14, 7, 4, 2, 1] and steps(5) == [2, 1, 1, 1]) or 1 / 0)
    r.run("mobilenet tolerance 1", check, "digits_mobilenet.onnx", "digits_calib.npz", "digits_test.npz")
    r.run("resnet tolerance 0.5", check, "digits_resnet.onnx", "digits_calib.npz", "digits_test.npz", "0.5")
    r.run("metrics: evaluator_command, agreement + relative, output_snr", check_metrics)
    r.run("4-bit share counts every quantized constant (embedding table)", embedding_share)
    r.run("mlp tolerance 0", check, "digits_mlp.onnx", "digits_calib_flat.npz", "digits_test_flat.npz", "0")
    r.finish()
