"""Image folders as docs/config.md describes them (QA report of the fifteenth session, data pipeline): the values
fed to the model are read back from a probe model's calibrated ranges (probe_data.py) and compared with numpy's
own computation from the pixels written:
- a top-down BMP (negative height) decodes, rows in order;
- integer model inputs get the preprocessed values only when they are whole numbers the type holds (scale 1,
  offset 0: the pixels), else an error naming the input and preprocessing.rescaling; bool inputs are refused;
- layout auto picks the layout whose channel dim equals color_mode's channel count; an ambiguous shape names
  preprocessing.layout;
- a dangling symbolic link named like an image is an error naming it; a PNG cut before IEND has a reason;
- nested sub-folders of class folders and empty class folders are reported as warnings (Keras reads the former
  and keeps the label of the latter); a class listed twice names dataset.class_names.
Run: OQ_BIN=build/onnxquant .venv/bin/python tests/python/test_data_inputs.py
"""
import os
import sys

import numpy as np
from onnx import TensorProto as TP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oqtest import tmpdir, run_module_tests  # noqa: E402
from probe_data import bmp_bytes, config, errors, fed, png_bytes, probe_model, run, save  # noqa: E402

IDENTITY = {"rescaling": {"scale": 1, "offset": 0}}


def rgb_image(h, w, seed):
    return np.random.default_rng(seed).integers(1, 256, (h, w, 3), dtype=np.uint8)


def test_top_down_bmp_decodes_rows_in_order():
    d = tmpdir()
    h, w = 6, 8
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w)[None] * 30 + 5
    img[..., 1] = np.arange(h)[:, None] * 40 + 3
    img[..., 2] = 128
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 3, h, w])
    want = img.transpose(2, 0, 1).ravel().astype(np.float64)  # NCHW, scale 1
    for name, top_down in (("bottom_up", False), ("top_down", True)):
        save(os.path.join(d, name, "c", "b.bmp"), bmp_bytes(img, top_down))
        code, err, out = run(d, config(m, os.path.join(d, name), IDENTITY), name)
        assert code == 0, err[-2000:]
        np.testing.assert_allclose(fed(out, want.size), want, rtol=1e-5, err_msg=name)


def integer_model(d, dtype, name):
    return probe_model(os.path.join(d, name + ".onnx"), ["N", 3, 5, 6], dtype)


def test_integer_inputs_take_whole_values_only():
    d = tmpdir()
    img = rgb_image(5, 6, 9)
    save(os.path.join(d, "imgs", "c", "a.png"), png_bytes(img))
    pix = img.transpose(2, 0, 1).ravel().astype(np.float64)
    folder = os.path.join(d, "imgs")
    # scale 1, offset 0 into uint8: the pixels as they are; offset -128 into int8: pixel - 128 (all in range).
    for dt, tag, pre, want in ((TP.UINT8, "u8", IDENTITY, pix),
                               (TP.INT8, "i8", {"rescaling": {"scale": 1, "offset": -128}}, pix - 128),
                               (TP.INT32, "i32", {"rescaling": {"scale": 2, "offset": -7}}, pix * 2 - 7)):
        code, err, out = run(d, config(integer_model(d, dt, tag), folder, pre), tag)
        assert code == 0, err[-2000:]
        np.testing.assert_allclose(fed(out, pix.size), want, rtol=1e-5, atol=1e-6, err_msg=tag)
    # Values that are not whole numbers (x / 127.5 - 1), or outside the type (pixels above 127 into int8): an
    # error naming the image, the input and the key, also with skip_bad_files (the image is not bad).
    for dt, tag, pre, ds, words in (
            (TP.UINT8, "u8_frac", {"rescaling": {"scale": "1/127.5", "offset": -1}}, {}, ["type uint8", "[0, 255]"]),
            (TP.UINT8, "u8_frac_skip", {"rescaling": {"scale": "1/127.5", "offset": -1}}, {"skip_bad_files": True},
             ["type uint8"]),
            (TP.INT8, "i8_range", IDENTITY, {}, ["type int8", "[-128, 127]"])):
        code, err, out = run(d, config(integer_model(d, dt, tag), folder, pre, ds), tag)
        e = errors(err)
        assert code == 1 and len(e) == 1, err[-2000:]
        for word in ["a.png", "model input 'input'", "preprocessing.rescaling"] + words:
            assert word in e[0], (word, e[0])
        assert not os.path.exists(os.path.join(out, "q")), tag
    # bool: refused whatever the values.
    code, err, _ = run(d, config(integer_model(d, TP.BOOL, "b"), folder, IDENTITY), "bool")
    e = errors(err)
    assert code == 1 and len(e) == 1 and "model input 'input' is bool" in e[0], err[-2000:]


def test_layout_auto_uses_color_mode_channels():
    d = tmpdir()
    rgb = {**IDENTITY, "color_mode": "rgb"}
    for shape, (h, w), layout in ((["N", 3, 4, 4], (4, 4), "nchw"), (["N", 4, 6, 3], (4, 6), "nhwc"),
                                  (["N", 1, 4, 4], (4, 4), "gray")):
        img = rgb_image(h, w, h * 10 + w)
        folder = os.path.join(d, f"imgs_{layout}")
        save(os.path.join(folder, "c", "a.png"), png_bytes(img))
        m = probe_model(os.path.join(d, f"{layout}.onnx"), shape)
        pre = rgb
        if layout == "gray":  # [N,1,4,4] for grayscale: dim 1; libpng's luma (9797 R + 19234 G + 3737 B) >> 15
            pre = {**IDENTITY, "color_mode": "grayscale"}
            i = img.astype(np.int64)
            want = ((i[..., 0] * 9797 + i[..., 1] * 19234 + i[..., 2] * 3737) >> 15).ravel()  # no gray pixel here
        else:
            want = (img.transpose(2, 0, 1) if layout == "nchw" else img).ravel()
        code, err, out = run(d, config(m, folder, pre), layout)
        assert code == 0, err[-2000:]
        np.testing.assert_allclose(fed(out, want.size), want.astype(np.float64), rtol=1e-5, err_msg=layout)
    # Both dims 1 and 3 hold 3: a config error (exit 2) naming the key path.
    m = probe_model(os.path.join(d, "amb.onnx"), ["N", 3, 5, 3])
    code, err, _ = run(d, config(m, os.path.join(d, "imgs_nchw"), rgb), "amb")
    e = errors(err)
    assert code == 2 and len(e) == 1 and "preprocessing.layout" in e[0] and "'input'" in e[0], err[-2000:]


def two_class_folder(d):
    root = os.path.join(d, "imgs")
    for c in "ab":
        for i in range(2):
            save(os.path.join(root, c, f"{i}.png"), png_bytes(np.full((5, 6, 3), 40 * i + 10, np.uint8)))
    return root


def test_dangling_symlink_is_an_error_naming_it():
    d = tmpdir()
    root = two_class_folder(d)
    link = os.path.join(root, "a", "2.png")
    os.symlink("/nonexistent/moved_away.png", link)
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 3, 5, 6])
    for skip in (False, True):
        code, err, out = run(d, config(m, root, IDENTITY, {"skip_bad_files": skip}), f"skip{skip}")
        e = errors(err)
        assert code == 1 and len(e) == 1, err[-2000:]
        assert link in e[0] and "symbolic link" in e[0] and "/nonexistent/moved_away.png" in e[0], e[0]
        assert not os.path.exists(os.path.join(out, "q"))


def test_png_cut_before_iend_has_a_reason():
    d = tmpdir()
    root = os.path.join(d, "imgs")
    good = rgb_image(5, 6, 3)
    save(os.path.join(root, "a", "good.png"), png_bytes(good))
    bad = save(os.path.join(root, "a", "noiend.png"), png_bytes(rgb_image(8, 8, 0))[:-12])  # no IEND chunk
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 3, 5, 6])
    code, err, _ = run(d, config(m, root, IDENTITY), "fail")
    e = errors(err)
    assert code == 1 and len(e) == 1 and e[0].endswith(f"cannot decode image {bad}: corrupt or truncated image"), e
    code, err, out = run(d, config(m, root, IDENTITY, {"skip_bad_files": True}), "skip")
    assert code == 0, err[-2000:]
    w = [ln for ln in errors(err, "warning") if "noiend.png" in ln]
    assert len(w) == 1 and "noiend.png: corrupt or truncated image" in w[0], w
    np.testing.assert_allclose(fed(out, good.size), good.transpose(2, 0, 1).ravel().astype(np.float64), rtol=1e-5)


def test_nested_folders_warned_and_not_read():
    d = tmpdir()
    root = two_class_folder(d)
    for k in range(3):
        save(os.path.join(root, "b", "extra", f"n{k}.png"), png_bytes(np.full((5, 6, 3), 250, np.uint8)))
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 3, 5, 6])
    code, err, out = run(d, config(m, root, IDENTITY), "nested")
    assert code == 0, err[-2000:]
    w = [ln for ln in errors(err, "warning") if "sub-folder" in ln]
    assert len(w) == 1 and "3 image(s) in 1 sub-folder(s)" in w[0] and os.path.join(root, "b", "extra") in w[0], w
    assert "(4 of 4 images" in err, err[-2000:]
    # The nested images (pixel 250) are not fed: the largest value is 50.
    np.testing.assert_allclose(fed(out, 90), np.full(90, 50.0), rtol=1e-5)


def test_empty_class_folder_keeps_its_label():
    """Classes a, b (empty), c: Keras labels the images of c 2. The model outputs, per sample, a score per class
    that is highest for the class whose constant image the sample equals (a: pixel 10, c: pixel 200), so top-1
    is 100 % only when c's images carry label 2."""
    import onnx
    from onnx import helper, numpy_helper
    d = tmpdir()
    root = os.path.join(d, "test")
    for c, v in (("a", 10), ("c", 200)):
        save(os.path.join(root, c, "x.png"), png_bytes(np.full((2, 2, 3), v, np.uint8)))
    os.makedirs(os.path.join(root, "b"))
    # score_k = -(mean(x) - t_k)^2 with t = (10, 1000, 200)
    g = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=0),
         helper.make_node("Unsqueeze", ["m", "ax"], ["mu"]), helper.make_node("Sub", ["mu", "t"], ["df"]),
         helper.make_node("Mul", ["df", "df"], ["sq"]), helper.make_node("Neg", ["sq"], ["out"])],
        "cls", [helper.make_tensor_value_info("input", TP.FLOAT, ["N", 3, 2, 2])],
        [helper.make_tensor_value_info("out", TP.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.array([1], np.int64), "ax"),
         numpy_helper.from_array(np.array([10, 1000, 200], np.float32), "t")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, os.path.join(d, "cls.onnx"))
    cfg = {"operation_mode": "evaluation", "model": {"model_path": os.path.join(d, "cls.onnx")},
           "dataset": {"test_path": root}, "preprocessing": IDENTITY}
    code, err, _ = run(d, cfg, "eval")
    assert code == 0, err[-2000:]
    assert "top1: 100.00" in err, err[-2000:]
    w = [ln for ln in errors(err, "warning") if "hold no images" in ln]
    assert len(w) == 1 and "'b'" in w[0], err[-2000:]


def test_class_listed_twice_names_the_key():
    d = tmpdir()
    root = two_class_folder(d)
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 3, 5, 6])
    code, err, _ = run(d, config(m, root, IDENTITY, {"class_names": ["a", "b", "a"]}), "dup")
    e = errors(err)
    assert code == 2 and len(e) == 1 and "dataset.class_names[2]: class 'a' is listed twice" in e[0], err[-2000:]


if __name__ == "__main__":
    run_module_tests(globals())
