"""Which values the evaluator scores (`onnxquant eval`, `operation_mode: evaluation`, full_auto): the first output of
a batch of n samples holds n rows of numel / n values each, whatever its shape; the top-1 class is the argmax of a
row and the class count (the labels' bound) is the values per row. The oracle is numpy's
`out.reshape(n, -1).argmax(1)` over onnxruntime's outputs, never the tool's own:
- a fixed-batch-1 model ending in a Squeeze (output [C]): top1 and agreement equal numpy's (dim 0 used to be taken
  as the batch: C samples of one value, agreement always 100 %, top1 an internal error);
- a dynamic batch whose last batch of one is squeezed to [C]: the same scores for every --batch-size;
- [N,5,1,1] (a 1x1-Conv head) and [N,2,5] outputs: top1 with labels up to 4 / 9 (the bound used to be dim -1);
- full_auto (agreement, tolerance 0) on the fixed-batch-1 model: the answer's agreement with the float model,
  measured by onnxruntime, stays within the tolerance of the 8-bit model's;
- an output whose size is not a multiple of the batch's samples: one line naming the output and its shape."""
import json
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oqtest import ort_session, run_module_tests, run_oq, tmpdir  # noqa: E402

D = tmpdir()
RNG = np.random.default_rng(31)


def save(name, nodes, x_shape, out_shape, inits, opset=13):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    path = os.path.join(D, name + ".onnx")
    onnx.save(m, path)
    return path


def squeezed(name, w, batch):
    """x [batch, K] -> MatMul -> Squeeze (no axes): [C] for a batch of one, else [batch, C]."""
    return save(name, [helper.make_node("MatMul", ["x", "w"], ["l"]), helper.make_node("Squeeze", ["l"], ["out"])],
                [batch, w.shape[0]], [w.shape[1]] if batch == 1 else [batch, w.shape[1]], {"w": w})


def ort_rows(path, x, per_sample):
    """onnxruntime's first output as [n, values]: run per sample (a fixed batch of 1) or on the whole set."""
    s = ort_session(path)
    if per_sample:
        return np.stack([s.run(None, {"x": x[i:i + 1]})[0].reshape(-1) for i in range(len(x))])
    return s.run(None, {"x": x})[0].reshape(len(x), -1)


def score(args):
    p = run_oq(["eval", *args, "--threads", "2"])
    m = re.fullmatch(r"(top1|agreement): ([0-9.]+)", p.stdout.strip())
    assert m, (p.stdout, p.stderr[-500:])
    return float(m.group(2))


def pct(a, b):
    return round(100.0 * float(np.mean(a == b)), 2)


def labelled(name, x, rows, classes):
    """x and labels: the ORT argmax, every third moved to another class (top1 neither 0 nor 100)."""
    y = rows.argmax(1).astype(np.int64)
    y[::3] = (y[::3] + 1) % classes
    path = os.path.join(D, name + ".npz")
    np.savez(path, x=x, y=y)
    return path, y


def test_fixed_batch_one_squeezed():
    w = RNG.standard_normal((8, 5)).astype(np.float32)
    model, other = squeezed("sq_b1", w, 1), squeezed("sq_b1_other", w[:, [1, 2, 3, 4, 0]], 1)
    x = RNG.standard_normal((12, 8)).astype(np.float32)
    o, o2 = ort_rows(model, x, True), ort_rows(other, x, True)
    npz, y = labelled("sq_b1", x, o, 5)
    want = pct(o2.argmax(1), o.argmax(1))
    assert want < 50, want  # the other model disagrees on most samples (it used to score 100)
    assert score([other, "--data", npz, "--reference", model]) == want
    assert score([model, "--data", npz]) == pct(o.argmax(1), y)


def test_dynamic_batch_last_batch_of_one():
    w = RNG.standard_normal((8, 6)).astype(np.float32)
    model, other = squeezed("sq_dyn", w, "N"), squeezed("sq_dyn_other", w + 0.8 * RNG.standard_normal(w.shape)
                                                        .astype(np.float32), "N")
    x = RNG.standard_normal((9, 8)).astype(np.float32)
    o, o2 = ort_rows(model, x, False), ort_rows(other, x, False)
    npz, y = labelled("sq_dyn", x, o, 6)
    top1, agree = pct(o.argmax(1), y), pct(o2.argmax(1), o.argmax(1))
    assert agree < 100, agree
    for b in ("1", "2", "4", "8", "9"):  # 9 = 4 x 2 + 1 = 8 + 1: a last batch of one, squeezed to [6]
        assert score([model, "--data", npz, "--batch-size", b]) == top1, b
        assert score([other, "--data", npz, "--reference", model, "--batch-size", b]) == agree, b


def test_rows_of_several_dims():
    """[N,5,1,1] (a 1x1-Conv head, SqueezeNet style) and [N,2,5] (10 values per row, labels 5-9 included); the
    evaluation mode scores the same number as `eval`."""
    wc = (RNG.standard_normal((6, 3, 3, 3)) * 0.5).astype(np.float32)
    wh = (RNG.standard_normal((5, 6, 1, 1)) * 0.5).astype(np.float32)
    head = save("convhead", [helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1, 1, 1]),
                             helper.make_node("Relu", ["c"], ["r"]),
                             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
                             helper.make_node("Conv", ["g", "wh"], ["out"])],
                ["N", 3, 8, 8], ["N", 5, 1, 1], {"wc": wc, "wh": wh})
    x = RNG.standard_normal((20, 3, 8, 8)).astype(np.float32)
    o = ort_rows(head, x, False)
    npz, y = labelled("convhead", x, o, 5)
    assert 4 in y
    want = pct(o.argmax(1), y)
    for b in ("1", "7"):
        assert score([head, "--data", npz, "--batch-size", b]) == want, b
    cfg = os.path.join(D, "convhead_eval.yaml")
    with open(cfg, "w") as f:
        f.write(f"operation_mode: evaluation\nmodel: {{model_path: {head}}}\ndataset: {{test_path: {npz}}}\n")
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(D, "out_eval"), "--threads", "2"])
    m = re.search(r"top1: ([0-9.]+)", p.stderr)
    assert m and float(m.group(1)) == want, p.stderr[-500:]

    wm = RNG.standard_normal((8, 10)).astype(np.float32)
    grid = save("grid", [helper.make_node("MatMul", ["x", "wm"], ["l"]),
                         helper.make_node("Reshape", ["l", "s"], ["out"])],
                ["N", 8], ["N", 2, 5], {"wm": wm, "s": np.array([0, 2, 5], np.int64)})
    x = RNG.standard_normal((30, 8)).astype(np.float32)
    o = ort_rows(grid, x, False)
    npz, y = labelled("grid", x, o, 10)
    assert y.max() >= 5
    assert score([grid, "--data", npz, "--batch-size", "4"]) == pct(o.argmax(1), y)


def test_rank1_output_one_class_per_row():
    """A [N] output holds one value per sample: one class, whatever --batch-size (the bound used to be N)."""
    w = RNG.standard_normal((8, 1)).astype(np.float32)
    model = save("rank1", [helper.make_node("MatMul", ["x", "w"], ["l"]),
                           helper.make_node("Flatten", ["l"], ["f"], axis=0),  # [1, N]
                           helper.make_node("Squeeze", ["f", "ax"], ["out"])],
                 ["N", 8], ["N"], {"w": w, "ax": np.array([0], np.int64)})
    x = RNG.standard_normal((6, 8)).astype(np.float32)
    ok, bad = os.path.join(D, "rank1_ok.npz"), os.path.join(D, "rank1_bad.npz")
    np.savez(ok, x=x, y=np.zeros(6, np.int64))
    np.savez(bad, x=x, y=np.array([0, 0, 1, 0, 0, 0], np.int64))
    for b in ("1", "3", "6"):
        assert score([model, "--data", ok, "--batch-size", b]) == 100.0, b
        p = run_oq(["eval", model, "--data", bad, "--batch-size", b], check=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(lines) == 1 and "label 1 is outside the 1 classes" in lines[0], (b, lines)


def test_full_auto_fixed_batch_one():
    """bug_nobatch_fa: every attempt used to score 100 % agreement, so tolerance 0 took an all-Int4 model."""
    rng = np.random.default_rng(41)
    w1 = (rng.standard_normal((64, 64)) * 0.2).astype(np.float32)
    w2 = (rng.standard_normal((64, 10)) * 0.2).astype(np.float32)
    model = save("nb", [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
                        helper.make_node("Relu", ["h"], ["r"], name="relu"),
                        helper.make_node("MatMul", ["r", "w2"], ["l"], name="mm2"),
                        helper.make_node("Squeeze", ["l"], ["out"], name="sq")], [1, 64], [10], {"w1": w1, "w2": w2})
    x = rng.standard_normal((60, 64)).astype(np.float32)
    calib, test = os.path.join(D, "nb_calib.npz"), os.path.join(D, "nb_test.npz")
    np.savez(calib, x=x[:20])
    np.savez(test, x=x[20:])
    cfg, out = os.path.join(D, "nb_fa.yaml"), os.path.join(D, "out_nb_fa")
    with open(cfg, "w") as f:
        f.write(f"""model: {{model_path: {model}}}
dataset: {{quantization_path: {calib}, test_path: {test}}}
quantization:
  target_opset: 21
  operating_mode: full_auto
  granularity: per_tensor
  onnx_quant_parameters: {{weightType: Int8, activType: Int8, calibrate_method: MinMax}}
  iterative_quant_parameters: {{accuracy_tolerance: 0.0}}
""")
    run_oq(["--config", cfg, "--output-dir", out, "--threads", "2"])
    rep = json.load(open(os.path.join(out, "full_auto.json")))
    assert rep["metric"] == "agreement", rep["metric"]
    ref = ort_rows(model, x[20:], True).argmax(1)

    def agreement(path):
        return pct(ort_rows(path, x[20:], True).argmax(1), ref)

    int8 = agreement(rep["int8_model"])
    assert int8 == rep["scores"]["int8"], (int8, rep["scores"])
    for a in rep["attempts"]:
        if a["file"]:
            assert agreement(a["file"]) == a["score"], a
    ans = rep["answer"]["attempt"]
    chosen = rep["attempts"][ans]["file"] if ans is not None else rep["int8_model"]
    assert agreement(chosen) >= int8, (chosen, agreement(chosen), int8)
    assert any(a["score"] < 100 for a in rep["attempts"]), rep["attempts"]  # the Int4 attempts are scored


def test_output_not_a_multiple_of_the_samples():
    model = save("plus_row", [helper.make_node("Concat", ["x", "row"], ["out"], axis=0)], ["N", 3], ["M", 3],
                 {"row": np.ones((1, 3), np.float32)})
    npz = os.path.join(D, "plus_row.npz")
    np.savez(npz, x=RNG.standard_normal((4, 3)).astype(np.float32), y=np.zeros(4, np.int64))
    for args in (["--batch-size", "2"], ["--batch-size", "2", "--reference", model]):
        p = run_oq(["eval", model, "--data", npz, *args], check=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(lines) == 1, (p.returncode, lines)
        assert "output 'out' has shape [3,3]" in lines[0] and "2 samples" in lines[0], lines[0]


if __name__ == "__main__":
    run_module_tests(globals())
