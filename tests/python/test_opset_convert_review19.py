"""Opset conversion and shape inference, white-box review of the nineteenth session (docs/conformance.md
"Old-opset models through default mode" and "Static shape inference"), each against onnxruntime:

- F1: a Resize / Upsample output extent from a scale is int64(float32(scale) * float32(in)) as onnxruntime's kernel
  computes it (0.7 on 10 gives 7, not floor(0.7 * 10) = 6 in double), in shape inference and in the executor; with
  keep_aspect_ratio_policy it is round(float32 scale * in). An opset-10 Softmax(axis=1) after such a Resize became a
  constant Reshape to the wrong shape and the written model did not run in onnxruntime.
- F2: Resize-10 nearest whose scales tf2onnx computes from Shape -> Slice -> Cast -> Div -> Concat of a tensor with a
  symbolic batch: the converter evaluates the scales from the static dims to choose the rounding (it was refused:
  "nearest mode with non-constant scales"); the chain stays, as quant_pre_process leaves it.
- F3: Resize-11 tf_half_pixel_for_nn with nearest_mode round_prefer_ceil / ceil (no opset-13 mode rounds that way)
  becomes one Gather per resized axis with the exact index map when the extents are static; refused otherwise, and
  with mode linear / cubic (it became half_pixel, half an input pixel off).
- F4: Loop / Scan outputs have the element types of their bodies' outputs, so an attribute-form Clip / Pad after one
  converts at target opset 13 / 14 (below 15 there is no CastLike to type its bounds).

Env: OQ_BIN, OQ_BUILD_DIR (tests/oq_preprocess_model), OQ_SOURCE_DIR.
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP, helper as h

from oqtest import BIN, run_module_tests, run_oq
from test_opset_convert_fixes import (TMP, TOOL, assert_refused, convert, ini, mk, quantize, save, sess, snr,
                                      vi)

F32 = np.float32
rng = np.random.default_rng(19)
Y4 = vi("y", ["d0", "d1", "d2", "d3"])  # declared with a shape: onnx.checker


def resize_model(op, opset, inputs, x_shape, inits, **attrs):
    node = h.make_node(op, ["x"] + inputs, ["y"], name="rs", **attrs)
    return mk([node], [vi("x", x_shape)], [Y4], inits, opset=opset)


def oq_run(path, x, tag):
    xin, out = os.path.join(TMP, tag + "_x.npy"), os.path.join(TMP, tag + "_run")
    np.save(xin, x)
    run_oq(["run", path, "--input", "x=" + xin, "--output-dir", out, "--threads", "1"])
    return np.load(os.path.join(out, "y.npy"))


def inferred_shape(path, name):
    out = run_oq(["info", path, "--shapes"]).stdout
    listed = out[out.index("inferred shapes"):].splitlines()[1:]
    shapes = {p[0]: (p[1], p[-1]) for p in (line.split() for line in listed) if len(p) >= 3}
    assert name in shapes, out
    return shapes[name]


# ---- F1: output extents from scales in float32, as onnxruntime ----

def scales_init(v):
    return ini("s", np.array(v, F32))


EXTENT_CASES = [  # tag, op, opset, extra inputs, x shape, initializers, attributes
    ("r10_07_09", "Resize", 10, ["s"], [1, 2, 10, 10], [scales_init([1, 1, 0.7, 0.9])], {}),
    ("r10_23_11", "Resize", 10, ["s"], [1, 2, 10, 10], [scales_init([1, 1, 2.3, 1.1])], {}),
    ("up9_23", "Upsample", 9, ["s"], [1, 2, 10, 10], [scales_init([1, 1, 2.3, 1.1])], {}),
    ("up7_23", "Upsample", 7, [], [1, 2, 10, 10], [], {"scales": [1.0, 1.0, 2.3, 1.1]}),
    ("r13_nearest", "Resize", 13, ["", "s"], [1, 2, 10, 10], [scales_init([1, 1, 0.7, 2.3])],
     {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
    ("r19_axes", "Resize", 19, ["", "s"], [1, 2, 10, 10], [scales_init([0.7, 0.9])],
     {"axes": [2, 3], "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
    ("r18_not_smaller", "Resize", 18, ["", "", "sz"], [1, 2, 6, 15], [ini("sz", np.array([25, 1], np.int64))],
     {"axes": [2, 3], "keep_aspect_ratio_policy": "not_smaller", "coordinate_transformation_mode": "asymmetric",
      "nearest_mode": "floor"}),
]


def test_extents_follow_onnxruntime():
    """Inferred shape (`info --shapes`), the executor's output (`run`) and onnxruntime's output agree."""
    float_product_cases = 0
    for tag, op, opset, inputs, xs, inits, attrs in EXTENT_CASES:
        p = save(resize_model(op, opset, inputs, xs, inits, **attrs), "ext_" + tag)
        x = rng.standard_normal(xs).astype(F32)
        want = sess(p).run(None, {"x": x})[0]
        got = oq_run(p, x, tag)
        assert got.shape == want.shape, f"{tag}: executor {got.shape}, onnxruntime {want.shape}"
        np.testing.assert_array_equal(got, want, err_msg=tag)
        assert inferred_shape(p, "y")[1] == "[" + ",".join(map(str, want.shape)) + "]", tag
        float_product_cases += tag != "r18_not_smaller"
    assert float_product_cases == 6
    # By hand: the float32 product against floor in double of the (float32) scale stored in the model.
    for s, d, ort_extent, double_extent in ((0.7, 10, 7, 6), (0.9, 10, 9, 8), (2.3, 10, 23, 22)):
        assert int(F32(s) * F32(d)) == ort_extent and int(np.floor(float(F32(s)) * d)) == double_extent


def test_softmax_after_resize_runs_in_onnxruntime():
    """Report r1: opset 10 Conv -> Resize 0.7 -> Softmax(axis=1); the Reshape target baked in is [1, 3, 7, 7]."""
    x = rng.standard_normal((1, 3, 10, 10)).astype(F32)
    m = mk([h.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            h.make_node("Resize", ["c", "s"], ["r"], name="rs", mode="nearest"),
            h.make_node("Softmax", ["r"], ["y"], name="sm", axis=1)],
           [vi("x", [1, 3, 10, 10])], [Y4],
           [ini("W", (rng.standard_normal((3, 3, 3, 3)) * 0.3).astype(F32)), scales_init([1, 1, 0.7, 0.7])],
           opset=10)
    src = save(m, "r1_softmax")
    want = sess(src).run(None, {"x": x})[0]
    assert want.shape == (1, 3, 7, 7)
    conv, _ = convert(src, 21)
    np.testing.assert_allclose(sess(conv).run(None, {"x": x})[0], want, atol=1e-6)
    q, _ = quantize("r1_softmax", src, x, 21)
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.log_severity_level = 4
        got = ort.InferenceSession(q, so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert got.shape == want.shape and snr(want, got) > 20, (level, got.shape, snr(want, got))


# ---- F2: tf2onnx scales from a Shape chain with a symbolic batch ----

def tf2onnx_scales_model(target_hw):
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             h.make_node("Shape", ["c"], ["sh"], name="shape"),
             h.make_node("Slice", ["sh", "b", "e"], ["hw"], name="slice"),
             h.make_node("Cast", ["hw"], ["hwf"], name="cast", to=TP.FLOAT),
             h.make_node("Div", ["tgt", "hwf"], ["sc2"], name="div"),
             h.make_node("Concat", ["one", "sc2"], ["sc"], name="concat", axis=0),
             h.make_node("Resize", ["c", "sc"], ["y"], name="rs", mode="nearest")]
    inits = [ini("W", (rng.standard_normal((3, 3, 3, 3)) * 0.3).astype(F32)), ini("tgt", np.array(target_hw, F32)),
             ini("one", np.array([1, 1], F32)), ini("b", np.array([2], np.int64)), ini("e", np.array([4], np.int64))]
    return mk(nodes, [vi("x", ["N", 3, 4, 6])], [Y4], inits, opset=10)


def test_tf2onnx_shape_chain_scales_symbolic_batch():
    for tag, hw in (("mixed", [8, 3]), ("mixed_b", [3, 9]), ("up", [10, 13]), ("down", [2, 3])):
        src = save(tf2onnx_scales_model(hw), "f2_" + tag)
        conv, _ = convert(src, 21, preprocess=True)
        ops = [n.op_type for n in onnx.load(conv).graph.node]
        # Mixed directions: two Resizes with constant scales (the Shape chain, no longer read, is removed).
        mixed = tag.startswith("mixed")
        assert ops.count("Resize") == (2 if mixed else 1) and ("Shape" in ops) != mixed, (tag, ops)
        for batch in (1, 2):
            x = rng.standard_normal((batch, 3, 4, 6)).astype(F32)
            want = sess(src).run(None, {"x": x})[0]
            got = sess(conv).run(None, {"x": x})[0]
            assert got.shape == want.shape, (tag, batch, got.shape, want.shape)
            np.testing.assert_array_equal(got, want, err_msg=f"{tag} batch {batch}")
    x = rng.standard_normal((2, 3, 4, 6)).astype(F32)
    for tag in ("mixed", "up"):
        src = os.path.join(TMP, f"f2_{tag}.onnx")
        q, _ = quantize(f"f2_{tag}", src, x, 21)
        for batch in (1, 2):
            want = sess(src).run(None, {"x": x[:batch]})[0]
            got = sess(q).run(None, {"x": x[:batch]})[0]
            assert got.shape == want.shape and snr(want, got) > 20, (tag, batch, got.shape, snr(want, got))


def test_shape_chain_left_as_quant_pre_process():
    """The pre-processing leaves the Shape -> Slice chain of a symbolic-batch tensor as quant_pre_process does (ORT
    1.32 folds a Shape only of a fully static tensor); the converter evaluates the scales instead."""
    from onnxruntime.quantization.shape_inference import quant_pre_process
    src = save(tf2onnx_scales_model([8, 3]), "f2_pp")
    ref = os.path.join(TMP, "f2_pp_ort.onnx")
    quant_pre_process(src, ref)
    ours, _ = convert(src, 10, preprocess=True)
    ops = lambda p: [n.op_type for n in onnx.load(p).graph.node]  # noqa: E731
    assert ops(ours) == ops(ref) and "Slice" in ops(ref), (ops(ours), ops(ref))


# ---- F3: tf_half_pixel_for_nn with round_prefer_ceil / ceil ----

def tf_half_pixel_model(x_shape, scales=None, sizes=None, nearest_mode="ceil"):
    inputs = ["c", "roi", "s"] + (["sz"] if sizes is not None else [])
    inits = [ini("W", (rng.standard_normal((3, 3, 3, 3)) * 0.3).astype(F32)), ini("roi", np.zeros(0, F32)),
             ini("s", np.array(scales if scales is not None else [], F32))]
    if sizes is not None:
        inits.append(ini("sz", np.array(sizes, np.int64)))
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             h.make_node("Resize", inputs, ["y"], name="rs", mode="nearest",
                         coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode=nearest_mode)]
    return mk(nodes, [vi("x", x_shape)],
              [Y4], inits, opset=11)


def test_tf_half_pixel_ceil_modes_as_gathers():
    cases = [("up2", ["N", 3, 5, 7], [1, 1, 2, 2], None), ("frac", ["N", 3, 5, 7], [1, 1, 0.6, 1.7], None),
             ("mixed", ["N", 3, 4, 6], [1, 1, 1.5, 0.5], None), ("odd", ["N", 3, 7, 3], [1, 1, 0.35, 2.9], None),
             ("sizes", [2, 3, 5, 7], None, [2, 3, 9, 4]),
             # (0 + 0.5) / float32(1/7) = 3.4999998: onnxruntime's 1e-6 tie window makes it 3.5 (index 4 with
             # round_prefer_ceil); a plain round gave 3 (the session's final review)
             ("tie", [2, 3, 7, 7], None, [2, 3, 1, 3])]
    for nm in ("round_prefer_ceil", "ceil"):
        for tag, xs, scales, sizes in cases:
            src = save(tf_half_pixel_model(xs, scales, sizes, nm), f"f3_{nm}_{tag}")
            for target in (13, 21):
                conv, _ = convert(src, target)
                m = onnx.load(conv)
                assert not any(n.op_type == "Resize" for n in m.graph.node), [n.op_type for n in m.graph.node]
                for batch in ((1, 2) if xs[0] == "N" else (xs[0],)):
                    x = rng.standard_normal([batch] + xs[1:]).astype(F32)
                    want = sess(src).run(None, {"x": x})[0]
                    got = sess(conv).run(None, {"x": x})[0]
                    assert got.shape == want.shape, (nm, tag, got.shape, want.shape)
                    np.testing.assert_array_equal(got, want, err_msg=f"{nm} {tag} -> {target}")
    # The index map by hand (round_prefer_ceil, scale 2 on 5): round((x + 0.5) / 2) clamped to [0, 4].
    idx = [min(int(np.floor((x + 0.5) / 2 + 0.5)), 4) for x in range(10)]
    assert idx == [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]
    m = onnx.load(convert(save(tf_half_pixel_model([1, 3, 5, 7], [1, 1, 2, 1], None, "round_prefer_ceil"),
                               "f3_byhand"), 21)[0])
    gathers = [n for n in m.graph.node if n.op_type == "Gather"]
    assert len(gathers) == 1 and gathers[0].name == "rs", [(n.op_type, n.name) for n in m.graph.node]
    maps = {i.name: onnx.numpy_helper.to_array(i).tolist() for i in m.graph.initializer}
    assert maps[gathers[0].input[1]] == idx


def test_tf_half_pixel_refusals():
    src = save(tf_half_pixel_model(["N", 3, "H", 7], [1, 1, 2, 2], None, "round_prefer_ceil"), "f3_dyn")
    written, p = quantize("f3_dyn", src, rng.standard_normal((1, 3, 5, 7)).astype(F32), 21, expect_ok=False)
    assert_refused(p, written, "'rs'", "tf_half_pixel_for_nn", "round_prefer_ceil", "axis 2", "no static extent")
    # Linear / cubic: it used to become half_pixel, which onnxruntime samples half an input pixel away.
    x = rng.standard_normal((1, 3, 5, 7)).astype(F32)
    for mode in ("linear", "cubic"):
        m = tf_half_pixel_model([1, 3, 5, 7], [1, 1, 2, 2])
        attrs = {a.name: a for a in m.graph.node[1].attribute}
        attrs["mode"].s = mode.encode()
        src = save(m, f"f3_{mode}")
        attrs["coordinate_transformation_mode"].s = b"half_pixel"
        half = m
        assert np.abs(sess(save(half, f"f3_{mode}_half")).run(None, {"x": x})[0] -
                      sess(src).run(None, {"x": x})[0]).max() > 0.1, mode
        written, p = quantize(f"f3_{mode}", src, x, 21, expect_ok=False)
        assert_refused(p, written, "'rs'", "tf_half_pixel_for_nn", f"mode '{mode}'")


# ---- F4: Loop / Scan output element types ----

def loop_model(after):
    body = h.make_graph([h.make_node("Add", ["xin", "one"], ["xout"]), h.make_node("Identity", ["cond"], ["co"])],
                        "body", [vi("i", [], TP.INT64), vi("cond", [], TP.BOOL), vi("xin", [2, 3])],
                        [vi("co", [], TP.BOOL), vi("xout", [2, 3])])
    return mk([h.make_node("Loop", ["n", "", "x"], ["l"], name="loop", body=body), after], [vi("x", [2, 3])],
              [vi("y", ["a", "b"])], [ini("n", np.array(2, np.int64)), ini("one", np.array(1.0, F32))], opset=9)


def scan_model():
    body = h.make_graph([h.make_node("Add", ["acc", "row"], ["acc2"]), h.make_node("Identity", ["acc2"], ["o"])],
                        "body", [vi("acc", [3]), vi("row", [3])], [vi("acc2", [3]), vi("o", [3])])
    return mk([h.make_node("Scan", ["a0", "x"], ["last", "l"], name="scan", body=body, num_scan_inputs=1),
               h.make_node("Clip", ["l"], ["y"], name="clip", min=0.5, max=2.0)],
              [vi("x", [2, 3])], [vi("y", [2, 3])], [ini("a0", np.zeros(3, F32))], opset=9)


def test_loop_scan_outputs_typed_for_attribute_bounds():
    x = rng.standard_normal((2, 3)).astype(F32)
    cases = {"loop_clip": loop_model(h.make_node("Clip", ["l"], ["y"], name="clip", min=0.5, max=2.0)),
             "loop_pad": loop_model(h.make_node("Pad", ["l"], ["y"], name="pad", pads=[0, 1, 0, 1], value=0.5)),
             "scan_clip": scan_model()}
    for tag, m in cases.items():
        src = save(m, tag)
        assert inferred_shape(src, "l")[0] == "FLOAT", tag
        want = sess(src).run(None, {"x": x})[0]
        for target in (13, 14):
            conv, _ = convert(src, target)
            np.testing.assert_array_equal(sess(conv).run(None, {"x": x})[0], want, err_msg=f"{tag} -> {target}")


def main():
    assert os.path.exists(TOOL), f"{TOOL} not built"
    assert os.path.exists(BIN), f"{BIN} not built"
    run_module_tests(globals())


if __name__ == "__main__":
    main()
