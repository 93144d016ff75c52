"""Executor kernels NonMaxSuppression, GridSample and RoiAlign against onnxruntime: single-node models on random
odd shapes (fixed seed) run through `onnxquant run`, outputs compared with ORT (NMS indices exactly, floats with
rtol/atol 1e-5).

Where ORT is undefined or knowingly differs, the case is compared with something else and says so:
  - GridSample cubic on 5-D input (ORT: "Only support GridSample Cubic mode in 4-D cases") and on 3-D input (ORT
    supports 4-D and 5-D only): onnx.reference, with zeros / reflection padding (for cubic + border the reference
    clamps the sampling location, ORT and PyTorch only the taps; we follow ORT — checked against ORT on 4-D).
  - RoiAlign opset 10: ORT (output_half_pixel; onnx.reference wrongly applies half_pixel there).
  - NonMaxSuppression with empty iou_threshold / score_threshold tensors: onnx.reference (they count as absent;
    ORT reads the value an empty tensor does not have).

Env: OQ_BIN (built onnxquant), OQ_SOURCE_DIR.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oqtest  # noqa: E402

rng = np.random.default_rng(20261128)
TMP = oqtest.tmpdir()


def make_model(node, inputs, opset):
    vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs if n]
    g = helper.make_graph([node], "g", vis, [onnx.ValueInfoProto(name="y")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 21 else 10
    return m


def run_ours(name, m, inputs, output="y"):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    args = ["run", os.path.join(d, "model.onnx"), "--output-dir", os.path.join(d, "out")]
    for n, a in inputs:
        np.save(os.path.join(d, n + ".npy"), np.array(a, order="C"))  # C order, 0-d kept
        args += ["--input", f"{n}={os.path.join(d, n + '.npy')}"]
    oqtest.run_oq(args)
    return np.load(os.path.join(d, "out", output + ".npy"))


def check(name, node, inputs, opset, exact, oracle="ort"):
    """inputs: list of (name, array); every one a graph input (so nothing is folded)."""
    m = make_model(node, inputs, opset)
    feeds = {n: a for n, a in inputs if n}
    if oracle == "ort":
        want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    else:
        want = ReferenceEvaluator(m).run(None, feeds)[0]
    got = run_ours(name, m, [(n, a) for n, a in inputs if n])
    oqtest.assert_same_output(name, got, want, exact, oracle)
    return want


# --------------------------------------------------------------------------------------------- NonMaxSuppression
def nms_boxes(b, n, center):
    c = rng.uniform(0, 12, (b, n, 2))
    s = rng.uniform(0.3, 4, (b, n, 2))
    if center:
        boxes = np.concatenate([c, s], -1)  # [x_c, y_c, w, h]
    else:
        boxes = np.concatenate([c - s / 2, c + s / 2], -1)[..., [1, 0, 3, 2]]  # [y1, x1, y2, x2]
        flip = rng.random((b, n)) < 0.3  # some boxes with their corners swapped
        boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]
    return boxes.astype(np.float32)


def nms_cases():
    for it in range(24):
        b, k, n = int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(5, 90))
        center = it % 2
        boxes = nms_boxes(b, n, center)
        scores = (rng.integers(0, 25, (b, k, n)) / 25).astype(np.float32)  # many ties
        ins = [("boxes", boxes), ("scores", scores)]
        variant = it % 6
        mx = np.array([int(rng.integers(1, 12)) if it % 5 else 1000], np.int64)
        if it % 7 == 3 and variant != 5:
            mx = mx.reshape(())  # a true scalar (onnx.reference indexes it, so not in its cases)
        iou = np.array([rng.choice([0.0, 0.2, 0.45, 0.7, 1.0])], np.float32)
        sth = np.array([rng.uniform(0.1, 0.8)], np.float32)
        if variant == 0:
            pass  # no optional input: nothing selected
        elif variant == 1:
            ins += [("m", mx)]
        elif variant == 2:
            ins += [("m", mx), ("i", iou)]
        elif variant == 3:
            ins += [("m", mx), ("i", iou), ("s", sth)]
        elif variant == 4:
            ins += [("m", mx), ("", None), ("s", sth)]  # iou_threshold omitted by an empty name
        else:  # empty = absent (onnx.reference; ORT reads the value an empty tensor does not have)
            ins += [("m", mx), ("i", np.zeros(0, np.float32)), ("s", np.zeros(0, np.float32))]
        node = helper.make_node("NonMaxSuppression", [nm for nm, _ in ins], ["y"], center_point_box=center)
        yield f"nms_{it}_b{b}k{k}n{n}_v{variant}", node, [(nm, a) for nm, a in ins], [10, 11][it % 2], True, \
            "reference" if variant == 5 else "ort"


# ---------------------------------------------------------------------------------------------------- GridSample
def grid_values(shape, lim):
    g = rng.uniform(-lim, lim, shape)
    snap = rng.random(shape) < 0.15  # exact corners / centre / pixel centres
    g[snap] = rng.choice([-1.0, 0.0, 1.0, 0.5, -0.5], int(snap.sum()))
    return g


def gridsample_cases():
    pads = ["zeros", "border", "reflection"]
    it = 0
    for opset in (16, 20):
        modes = ["bilinear", "nearest", "bicubic"] if opset == 16 else ["linear", "nearest", "cubic"]
        for mode in modes:
            for pad in pads:
                for ac in (0, 1):
                    it += 1
                    dt = np.float64 if it % 4 == 0 and opset >= 20 else np.float32  # ORT: double from opset 20
                    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 4))
                    hmin = 2 if (pad == "reflection" and ac) else 1  # a 1-pixel axis there reads out of bounds in ORT
                    h, w = int(rng.integers(hmin, 8)), int(rng.integers(hmin, 8))
                    ho, wo = int(rng.integers(1, 7)), int(rng.integers(1, 7))
                    x = rng.standard_normal((n, c, h, w)).astype(dt)
                    g = grid_values((n, ho, wo, 2), [1.2, 2.5, 4.0][it % 3]).astype(dt)
                    node = helper.make_node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=pad,
                                            align_corners=ac)
                    yield f"gridsample_{opset}_{mode}_{pad}_ac{ac}_{np.dtype(dt).name}", node, [("x", x), ("g", g)], \
                        opset, False, "ort"
    # 5-D (volumetric): linear / nearest against ORT, cubic against onnx.reference; 3-D against onnx.reference.
    for mode in ("linear", "nearest", "cubic"):
        for pad in pads:
            for ac in (0, 1):
                if mode == "cubic" and pad == "border":
                    continue  # the reference and ORT disagree there (module docstring)
                n, c = int(rng.integers(1, 3)), int(rng.integers(1, 3))
                dims = tuple(int(v) for v in rng.integers(2, 5, 3))
                outs = tuple(int(v) for v in rng.integers(1, 4, 3))
                x = rng.standard_normal((n, c) + dims).astype(np.float32)
                g = grid_values((n,) + outs + (3,), 1.6).astype(np.float32)
                node = helper.make_node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=pad, align_corners=ac)
                yield f"gridsample_5d_{mode}_{pad}_ac{ac}", node, [("x", x), ("g", g)], 20, False, \
                    "reference" if mode == "cubic" else "ort"
    for mode in ("linear", "nearest", "cubic"):
        for pad in ("zeros", "reflection"):
            x = rng.standard_normal((2, 3, 6)).astype(np.float32)
            g = grid_values((2, 5, 1), 1.8).astype(np.float32)
            node = helper.make_node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=pad, align_corners=0)
            yield f"gridsample_3d_{mode}_{pad}", node, [("x", x), ("g", g)], 20, False, "reference"


# ------------------------------------------------------------------------------------------------------ RoiAlign
def roialign_cases():
    it = 0
    for opset in (10, 16):
        for mode in ("avg", "max"):
            for ctm in (["output_half_pixel", "half_pixel"] if opset == 16 else [None]):
                for sr in (0, 1, 2, 3):
                    it += 1
                    dt = np.float64 if it % 4 == 0 else np.float32
                    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 4))
                    h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
                    scale = float(rng.choice([1.0, 0.5, 0.25, 0.8]))
                    nr = int(rng.integers(1, 9))
                    start = rng.uniform(-2, max(h, w) / scale, (nr, 2))
                    size = rng.uniform(0.2, 7 / scale, (nr, 2))  # some ROIs reach past the image
                    rois = np.concatenate([start, start + size], 1).astype(dt)
                    if ctm != "half_pixel" and it % 3 == 0:
                        rois[0, [0, 2]] = rois[0, [2, 0]]  # malformed: forced to 1x1 with output_half_pixel
                    bi = rng.integers(0, n, nr).astype(np.int64)
                    x = rng.standard_normal((n, c, h, w)).astype(dt)
                    attrs = dict(mode=mode, output_height=int(rng.integers(1, 5)), output_width=int(rng.integers(1, 5)),
                                 sampling_ratio=sr, spatial_scale=scale)
                    if ctm:
                        attrs["coordinate_transformation_mode"] = ctm
                    node = helper.make_node("RoiAlign", ["x", "r", "b"], ["y"], **attrs)
                    yield f"roialign_{opset}_{mode}_{ctm}_sr{sr}_{np.dtype(dt).name}", node, \
                        [("x", x), ("r", rois), ("b", bi)], opset, False, "ort"


def roialign_max_matches_reference():
    # ORT's max mode (max over the bin of max_i w_i x_i) is also onnx.reference's: both oracles agree with us.
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    rois = np.array([[0.5, 1.0, 5.5, 6.0], [2.0, 0.0, 6.5, 8.0], [1.0, 1.0, 3.0, 2.5]], np.float32)
    bi = np.array([0, 1, 1], np.int64)
    node = helper.make_node("RoiAlign", ["x", "r", "b"], ["y"], mode="max", output_height=3, output_width=2,
                            sampling_ratio=2, coordinate_transformation_mode="half_pixel")
    ins = [("x", x), ("r", rois), ("b", bi)]
    a = check("roialign_max_ort", node, ins, 16, False, "ort")
    b = check("roialign_max_ref", node, ins, 16, False, "reference")
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def nms_order_is_orts():
    # Ties broken by the lower box index, classes and batches in order: a hand-made case asserted against ORT.
    boxes = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [5, 5, 6, 6]]] * 2, np.float32)
    scores = np.array([[[0.5, 0.9, 0.5, 0.9], [0.2, 0.2, 0.2, 0.2]], [[0.1, 0.1, 0.3, 0.3], [0.7, 0.6, 0.7, 0.6]]],
                      np.float32)
    node = helper.make_node("NonMaxSuppression", ["b", "s", "m", "i"], ["y"])
    ins = [("b", boxes), ("s", scores), ("m", np.array([10], np.int64)), ("i", np.array([1.0], np.float32))]
    want = check("nms_order", node, ins, 11, True)
    assert want.tolist() == [[0, 0, 1], [0, 0, 3], [0, 0, 0], [0, 0, 2], [0, 1, 0], [0, 1, 1], [0, 1, 2], [0, 1, 3],
                             [1, 0, 2], [1, 0, 3], [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 2], [1, 1, 1], [1, 1, 3]]


def backend_cases_below_opset_22():
    """The onnx wheel's GridSample / RoiAlign node tests import opset 22, newer than the executor (so they are
    comments in tests/onnx_backend/manifest.txt). Opset 22 only adds bfloat16 to both ops: the same models at
    opset 20 (GridSample) / 16 (RoiAlign) must give the tests' expected outputs (onnx.reference's), at the tests'
    tolerances."""
    import onnx.backend.test.case.node as node_cases
    # The first collection imports every case module (their exports run once, at import): GridSample's cases;
    # then RoiAlign's exports are called again by hand into the emptied module-level list.
    cases = [(c, 20) for c in list(node_cases.collect_testcases("GridSample"))]
    node_cases._NodeTestCases.clear()  # noqa: SLF001
    node_cases._existing_names.clear()  # noqa: SLF001
    node_cases._TargetOpType = "RoiAlign"  # noqa: SLF001
    from onnx.backend.test.case.node.roialign import RoiAlign
    for name in dir(RoiAlign):
        if name.startswith("export"):
            getattr(RoiAlign, name)()
    cases += [(c, 16) for c in node_cases._NodeTestCases]  # noqa: SLF001
    assert len(cases) >= 21, [c.name for c, _ in cases]
    for c, opset in cases:
        m = onnx.ModelProto()
        m.CopyFrom(c.model)
        del m.opset_import[:]
        m.opset_import.append(helper.make_opsetid("", opset))
        m.ir_version = 8
        for inputs, outputs in c.data_sets:
            names = [i.name for i in m.graph.input]
            got = run_ours(c.name, m, list(zip(names, inputs)), m.graph.output[0].name)
            np.testing.assert_allclose(got, outputs[0], rtol=c.rtol, atol=c.atol, err_msg=c.name)


def main():
    r = oqtest.Runner()
    for gen in (nms_cases, gridsample_cases, roialign_cases):
        for name, node, inputs, opset, exact, oracle in gen():
            r.run(name, check, name, node, inputs, opset, exact, oracle)
    r.run("roialign_max_matches_reference", roialign_max_matches_reference)
    r.run("nms_order_is_orts", nms_order_is_orts)
    r.run("backend_cases_below_opset_22", backend_cases_below_opset_22)
    r.finish()


if __name__ == "__main__":
    main()
