#!/usr/bin/env python3
"""src/data against independent numpy implementations.

Writes small PNG/BMP (own encoders: zlib + struct) and JPEG (via the tool's stb_image_write) image trees and
.npz/.npy files written by numpy, runs src/data through the test-only tool tests/tools/oq_preprocess_dump, and
compares the dumped batches with a numpy re-implementation of the documented preprocessing (src/data/
preprocess.h) and of the selection (pure-Python mt19937_64 + Fisher-Yates). Prints "N passed, N failed".
"""
import os
import struct
import subprocess
import sys
import tempfile
import traceback
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("OQ_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get("OQ_BUILD_DIR", os.path.join(SRC, "build"))
TOOL = os.environ.get("OQ_PREPROCESS_DUMP", os.path.join(BUILD, "tests", "oq_preprocess_dump"))

# ------------------------------------------------------------------------------------------ selection (reference)
M64 = (1 << 64) - 1


class MT19937_64:
    """The C++ standard's std::mt19937_64, written out from its definition."""

    def __init__(self, seed):
        self.mt = [seed & M64]
        for i in range(1, 312):
            prev = self.mt[-1]
            self.mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & M64)
        self.idx = 312

    def next(self):
        if self.idx >= 312:
            mt = self.mt
            for i in range(312):
                x = (mt[i] & 0xFFFFFFFF80000000) | (mt[(i + 1) % 312] & 0x7FFFFFFF)
                xa = x >> 1
                if x & 1:
                    xa ^= 0xB5026F5AA96619E9
                mt[i] = mt[(i + 156) % 312] ^ xa
            self.idx = 0
        y = self.mt[self.idx]
        self.idx += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & M64


def permutation(n, seed):
    p = list(range(n))
    rng = MT19937_64(seed)
    for i in range(n - 1, 0, -1):
        bound = i + 1
        threshold = (2**64 - bound) % bound
        while True:
            r = rng.next()
            if r >= threshold:
                break
        j = r % bound
        p[i], p[j] = p[j], p[i]
    return p


def selection(n, seed=123, split=1.0, shuffle=True):
    p = permutation(n, seed) if shuffle else list(range(n))
    keep = min(max(int(np.floor(n * split)), 1), n)
    return p[:keep]


# ------------------------------------------------------------------------------------------ image writers
def png_bytes(a):
    a = np.ascontiguousarray(a, dtype=np.uint8)
    h, w = a.shape[:2]
    ctype = {1: 0, 3: 2, 4: 6}[1 if a.ndim == 2 else a.shape[2]]

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def bmp_bytes(a):  # 24-bit, bottom-up rows of BGR padded to 4 bytes
    h, w = a.shape[:2]
    stride = (w * 3 + 3) // 4 * 4
    rows = b"".join(a[y, :, ::-1].tobytes() + b"\x00" * (stride - w * 3) for y in range(h - 1, -1, -1))
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(rows), 0, 0, 54) + info + rows


def save(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ------------------------------------------------------------------------------------------ preprocessing (reference)
def to_color(src, color, png=True):
    """stb_image's channel conversion of an 8-bit image (H,W) / (H,W,3) / (H,W,4) to the requested mode; grayscale of
    a colour PNG is libpng's as TensorFlow sets it up (coefficients 9797, 19234, 3737 of 32768, truncated; gray
    kept), of other formats stb's."""
    src = src.astype(np.int64)
    if src.ndim == 2:
        src = src[:, :, None]
    n = src.shape[2]
    if color == "grayscale":
        if n == 1:
            return src
        r, g, b = src[:, :, 0], src[:, :, 1], src[:, :, 2]
        if png:
            return np.where((r == g) & (g == b), r, (9797 * r + 19234 * g + 3737 * b) >> 15)[:, :, None]
        return ((r * 77 + g * 150 + b * 29) >> 8)[:, :, None]
    rgb = np.repeat(src, 3, axis=2) if n == 1 else src[:, :, :3]
    if color == "rgb":
        return rgb
    if color == "bgr":
        return rgb[:, :, ::-1]
    alpha = src[:, :, 3:4] if n == 4 else np.full(rgb.shape[:2] + (1,), 255)
    return np.concatenate([rgb, alpha], axis=2)


def cubic(x, a=-0.5):
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def weights(n_in, n_out, interp):
    m = np.zeros((n_out, n_in))
    for d in range(n_out):
        c = (d + 0.5) * n_in / n_out
        if interp == "nearest":  # float32, as TF's resize_nearest_neighbor
            cf = (np.float32(d) + np.float32(0.5)) * (np.float32(n_in) / np.float32(n_out))
            m[d, min(int(np.floor(cf)), n_in - 1)] = 1
        elif interp == "bilinear":
            s = min(max(c - 0.5, 0.0), n_in - 1.0)
            i = int(np.floor(s))
            f = s - i
            m[d, i] += 1 - f
            m[d, min(i + 1, n_in - 1)] += f
        elif interp == "bicubic":  # TF resize_bicubic, half-pixel: taps outside the image dropped, renormalised
            s = c - 0.5
            i = int(np.floor(s))
            t = s - i
            taps = [(i + k, cubic(t - k)) for k in range(-1, 3) if 0 <= i + k < n_in]
            total = sum(wt for _, wt in taps)
            for j, wt in taps:
                m[d, j] += wt / total
        else:  # area
            b, e = d * n_in / n_out, (d + 1) * n_in / n_out
            for k in range(n_in):
                ov = min(e, k + 1) - max(b, k)
                if ov > 0:
                    m[d, k] += ov * n_out / n_in
    return m


def resize(img, h, w, interp):
    return np.einsum("oh,hwc,pw->opc", weights(img.shape[0], h, interp), img, weights(img.shape[1], w, interp))


def reference(pixels, H, W, interp, aspect, scale, offset, layout):
    img = pixels.astype(np.float64)
    hi, wi = img.shape[:2]
    oy = ox = 0
    f32 = np.float32
    if aspect == "crop":  # keras.src.utils.image_utils.smart_resize: float32 sizes and offsets, truncated
        ch = min(max(int(f32(wi * H) / f32(W)), 1), hi)
        cw = min(max(int(f32(hi * W) / f32(H)), 1), wi)
        y0, x0 = int(f32(hi - ch) / f32(2)), int(f32(wi - cw) / f32(2))
        img = img[y0:y0 + ch, x0:x0 + cw]
    if aspect == "padding":  # tf.image.resize_with_pad: floor of the float32 size, offset floor((T - size) / 2)
        ratio = max(f32(wi) / f32(W), f32(hi) / f32(H))
        fh, fw = f32(hi) / ratio, f32(wi) / ratio
        nh, nw = min(max(int(np.floor(fh)), 1), H), min(max(int(np.floor(fw)), 1), W)
        oy = min(max(int(np.floor((f32(H) - fh) / f32(2))), 0), H - nh)
        ox = min(max(int(np.floor((f32(W) - fw) / f32(2))), 0), W - nw)
    else:
        nh, nw = H, W
    content = resize(img, nh, nw, interp)
    out = np.full((H, W, img.shape[2]), offset, dtype=np.float64)  # padding: black (pixel 0), rescaled
    out[oy:oy + nh, ox:ox + nw] = content * scale + offset
    return out.transpose(2, 0, 1)[None] if layout == "nchw" else out[None]


# ------------------------------------------------------------------------------------------ tool driver
def run_tool(*args, ok=True):
    p = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise AssertionError(f"tool failed ({p.returncode}): {' '.join(map(str, args))}\n{p.stderr}")
    return p


def dump(out, *args):
    os.makedirs(out, exist_ok=True)
    run_tool("dump", "--out", out, *args)
    names = open(os.path.join(out, "names.txt")).read().split("\n")[:-1]
    info = dict((line.split(" ", 1) + [""])[:2] for line in open(os.path.join(out, "info.txt")).read().splitlines())
    return names, info


def batches(out, name="input"):
    files = []
    k = 0
    while os.path.exists(os.path.join(out, f"{name}_{k}.npy")):
        files.append(np.load(os.path.join(out, f"{name}_{k}.npy")))
        k += 1
    return files


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ------------------------------------------------------------------------------------------ tests
@test
def permutation_matches_python_mt19937_64(tmp):
    assert permutation(10, 123) == [9, 2, 1, 7, 8, 6, 0, 5, 3, 4]  # as hard-coded in tests/unit/test_data.cc
    for n, seed in [(1000, 123), (57, 0), (300, 2**63 + 5)]:
        got = [int(v) for v in run_tool("perm", n, seed).stdout.split()]
        assert got == permutation(n, seed), (n, seed)


def make_tree(root, rng):
    """root/<class>/ with PNG (gray, RGB, RGBA), BMP and upper-case extensions; returns {path: uint8 pixels}."""
    pix = {}
    specs = {"zebra": [("a.png", 3), ("B.PNG", 1), ("c.bmp", 3)],
             "ant": [("x.png", 4), ("y.png", 3)],
             "Mole": [("m1.png", 3), ("m2.png", 1), ("m3.Png", 3), ("m4.bmp", 3)]}
    for cls, files in specs.items():
        for fname, ch in files:
            h, w = int(rng.integers(5, 24)), int(rng.integers(5, 24))
            a = rng.integers(0, 256, size=(h, w) if ch == 1 else (h, w, ch), dtype=np.uint8)
            path = os.path.join(root, cls, fname)
            save(path, bmp_bytes(a) if fname.endswith(".bmp") else png_bytes(a))
            pix[path] = a
    with open(os.path.join(root, "ant", "readme.txt"), "w") as f:
        f.write("ignored")
    return pix


@test
def image_tree_matches_numpy_reference(tmp):
    rng = np.random.default_rng(5)
    root = os.path.join(tmp, "tree")
    pix = make_tree(root, rng)
    classes = sorted(["zebra", "ant", "Mole"])
    ordered = [p for c in classes for p in sorted(q for q in pix if os.path.basename(os.path.dirname(q)) == c)]
    expect_names = [ordered[i] for i in selection(len(ordered))]
    H, W, scale, offset = 8, 11, 1 / 255, -0.5
    tol = {"nearest": 1e-6, "bilinear": 1e-3, "bicubic": 1e-3, "area": 1e-3}
    combos = 0
    for interp in ["nearest", "bilinear", "bicubic", "area"]:
        for aspect in ["fit", "crop", "padding"]:
            for color in ["grayscale", "rgb", "bgr", "rgba"]:
                for layout in ["nchw", "nhwc"]:
                    c = {"grayscale": 1, "rgba": 4}.get(color, 3)
                    shape = f"-1,{c},{H},{W}" if layout == "nchw" else f"-1,{H},{W},{c}"
                    out = os.path.join(tmp, f"o_{interp}_{aspect}_{color}_{layout}")
                    names, info = dump(out, "--data", root, "--input", f"input:float:{shape}", "--interp", interp,
                                       "--aspect", aspect, "--color", color, "--scale", repr(scale), "--offset",
                                       repr(offset), "--batch", 3, "--threads", 2)
                    assert names == expect_names, (names, expect_names)
                    assert info["classes"].split() == classes
                    got = np.concatenate(batches(out), axis=0)
                    assert got.dtype == np.float32 and got.shape[0] == len(names)
                    for i, name in enumerate(names):
                        src = to_color(pix[name], color, png=not name.lower().endswith(".bmp"))
                        ref = reference(src, H, W, interp, aspect, scale, offset, layout)
                        assert got[i:i + 1].shape == ref.shape, (got.shape, ref.shape)
                        err = float(np.max(np.abs(got[i:i + 1] - ref)))
                        assert err <= tol[interp], f"{interp}/{aspect}/{color}/{layout} {name}: max diff {err}"
                    labels = np.load(os.path.join(out, "labels.npy"))
                    assert labels.tolist() == [classes.index(os.path.basename(os.path.dirname(n))) for n in names]
                    combos += 1
    assert combos == 96


@test
def split_seed_class_names_and_first_n(tmp):
    rng = np.random.default_rng(9)
    root = os.path.join(tmp, "tree2")
    pix = make_tree(root, rng)
    order = ["zebra", "Mole", "ant"]  # given unsorted: labels follow sorted(class_names), as ST's loader numbers them
    ordered = [p for c in sorted(order) for p in sorted(q for q in pix if os.path.basename(os.path.dirname(q)) == c)]
    out = os.path.join(tmp, "split")
    names, info = dump(out, "--data", root, "--input", "input:float:1,3,6,6", "--split", 0.5, "--seed", 7,
                       "--class-names", ",".join(order), "--threads", 3)
    assert names == [ordered[i] for i in selection(len(ordered), seed=7, split=0.5)], names
    assert len(names) == len(ordered) // 2
    assert np.load(os.path.join(out, "labels.npy")).tolist() == [
        sorted(order).index(os.path.basename(os.path.dirname(n))) for n in names]
    names, _ = dump(os.path.join(tmp, "first"), "--data", root, "--input", "input:float:1,3,6,6", "--first-n", 2)
    by_name = [p for c in sorted(order) for p in sorted(q for q in pix if os.path.basename(os.path.dirname(q)) == c)]
    assert names == [by_name[i] for i in selection(len(by_name))[:2]], names
    # A subset of the sub-folders: only those classes, numbered in sorted order (ST); a warning names the rest.
    out = os.path.join(tmp, "subset")
    names, info = dump(out, "--data", root, "--input", "input:float:1,3,6,6", "--class-names", "zebra,Mole",
                       "--no-shuffle")
    subset = [p for c in ["Mole", "zebra"] for p in sorted(q for q in pix if os.path.basename(os.path.dirname(q)) == c)]
    assert names == subset, names
    assert np.load(os.path.join(out, "labels.npy")).tolist() == [
        ["Mole", "zebra"].index(os.path.basename(os.path.dirname(n))) for n in names]
    # A listed class without a folder: an error naming it.
    p = run_tool("dump", "--out", tmp, "--data", root, "--input", "input:float:1,3,6,6", "--class-names",
                 "zebra,Mole,ant,owl", ok=False)
    assert p.returncode == 1 and "'owl'" in p.stderr, p.stderr


@test
def jpeg_and_flat_folder(tmp):
    flat = os.path.join(tmp, "flat")
    os.makedirs(flat)
    yy, xx = np.mgrid[0:21, 0:30]
    smooth = np.stack([xx * 8, yy * 12, (xx + yy) * 4], axis=2).clip(0, 255).astype(np.uint8)
    np.save(os.path.join(tmp, "smooth.npy"), smooth)
    run_tool("write-jpg", os.path.join(tmp, "smooth.npy"), os.path.join(flat, "s.JPG"), 95)
    run_tool("write-jpg", os.path.join(tmp, "smooth.npy"), os.path.join(flat, "t.jpeg"), 60)
    save(os.path.join(flat, "u.png"), png_bytes(smooth[::-1]))
    for color in ["rgb", "bgr", "grayscale"]:
        c = 1 if color == "grayscale" else 3
        out = os.path.join(tmp, "flat_" + color)
        names, info = dump(out, "--data", flat, "--input", f"input:float:-1,12,9,{c}", "--color", color,
                           "--interp", "bilinear", "--aspect", "crop", "--no-shuffle")
        assert [os.path.basename(n) for n in names] == ["s.JPG", "t.jpeg", "u.png"]
        assert not os.path.exists(os.path.join(out, "labels.npy")) and info["classes"] == ""
        got = np.concatenate(batches(out), axis=0)
        for i, name in enumerate(names):
            dec = os.path.join(tmp, "dec.npy")
            run_tool("decode", name, color, dec)
            decoded = np.load(dec)
            if name.endswith(".png"):
                assert np.array_equal(decoded, to_color(smooth[::-1], color)), "png decode"
            else:  # JPEG: stb's decoder, close to the encoded smooth image
                assert np.mean(np.abs(decoded.astype(float) - to_color(smooth, color, png=False))) < 6, "jpeg decode"
            ref = reference(decoded, 12, 9, "bilinear", "crop", 1 / 255, 0.0, "nhwc")
            assert float(np.max(np.abs(got[i:i + 1] - ref))) <= 1e-3


@test
def npz_written_by_numpy(tmp):
    rng = np.random.default_rng(3)
    x_f = rng.standard_normal((11, 2, 3)).astype(np.float32)
    y = rng.integers(0, 5, size=11)
    cases = {"float32": x_f, "float64": x_f.astype(np.float64) * 1.5,
             "uint8": rng.integers(0, 256, (11, 2, 3)).astype(np.uint8),
             "int8": rng.integers(-128, 128, (11, 2, 3)).astype(np.int8)}
    for kind, x in cases.items():
        for compressed in [False, True]:
            path = os.path.join(tmp, f"{kind}_{int(compressed)}.npz")
            (np.savez_compressed if compressed else np.savez)(path, x=x, y=y)
            for model_dtype, npdt in [("float", np.float32), ("double", np.float64)]:
                out = os.path.join(tmp, f"npz_{kind}_{int(compressed)}_{model_dtype}")
                names, _ = dump(out, "--data", path, "--input", f"input:{model_dtype}:-1,2,3", "--batch", 4)
                sel = selection(11)
                got = np.concatenate(batches(out), axis=0)
                assert got.dtype == npdt
                assert np.array_equal(got, x[sel].astype(npdt)), (kind, compressed)
                assert np.load(os.path.join(out, "labels.npy")).tolist() == y[sel].tolist()
                assert names == [f"{path} row {i}" for i in sel]
    # Multi-input model: arrays named after its inputs; plain .npy; no-shuffle order.
    a, b = rng.standard_normal((6, 4)).astype(np.float32), np.arange(6, dtype=np.int64) * 3
    np.savez_compressed(os.path.join(tmp, "multi.npz"), a=a, b=b)
    out = os.path.join(tmp, "multi")
    dump(out, "--data", os.path.join(tmp, "multi.npz"), "--input", "a:float:-1,4", "--input", "b:int64:-1",
         "--no-shuffle", "--batch", 4)
    assert np.array_equal(np.concatenate(batches(out, "a")), a)
    assert np.array_equal(np.concatenate(batches(out, "b")), b)
    np.save(os.path.join(tmp, "plain.npy"), a)
    out = os.path.join(tmp, "plain")
    dump(out, "--data", os.path.join(tmp, "plain.npy"), "--input", "input:float:1,4", "--split", 0.5)
    assert np.array_equal(np.concatenate(batches(out)), a[selection(6, split=0.5)])


@test
def npz_errors_name_the_file(tmp):
    x = np.zeros((4, 3, 8, 8), np.float32)
    np.savez(os.path.join(tmp, "nox.npz"), inputs=x, labels=np.zeros(4, np.int64))
    p = run_tool("dump", "--out", tmp, "--data", os.path.join(tmp, "nox.npz"), "--input", "img:float:-1,3,8,8",
                 ok=False)
    assert p.returncode == 1 and "nox.npz" in p.stderr and "inputs, labels" in p.stderr, p.stderr
    np.savez(os.path.join(tmp, "shape.npz"), x=x)
    p = run_tool("dump", "--out", tmp, "--data", os.path.join(tmp, "shape.npz"), "--input", "img:float:1,3,16,16",
                 ok=False)
    assert p.returncode == 1 and "shape.npz" in p.stderr and "[4,3,8,8]" in p.stderr and "[1,3,16,16]" in p.stderr
    np.savez(os.path.join(tmp, "lab.npz"), x=x, y=np.zeros(5, np.int64))
    p = run_tool("dump", "--out", tmp, "--data", os.path.join(tmp, "lab.npz"), "--input", "img:float:-1,3,8,8",
                 ok=False)
    assert p.returncode == 1 and "lab.npz" in p.stderr and "5 entries" in p.stderr, p.stderr


@test
def npy_written_by_cpp_reads_in_numpy(tmp):
    # The tool's outputs are .npy files written by src/data/npy.cc; check numpy's view of a few dtypes.
    for dt in [np.float32, np.float64, np.uint8, np.int8, np.int16, np.int32, np.int64, np.bool_]:
        a = (np.arange(24).reshape(2, 3, 4) % 3).astype(dt)
        np.savez(os.path.join(tmp, "rt.npz"), x=a)
        model = {np.float64: "double", np.uint8: "uint8", np.int8: "int8", np.int16: "int16", np.int32: "int32",
                 np.int64: "int64"}.get(dt, "float")
        out = os.path.join(tmp, "rt_" + np.dtype(dt).name)
        dump(out, "--data", os.path.join(tmp, "rt.npz"), "--input", f"input:{model}:-1,3,4", "--no-shuffle",
             "--batch", 2)
        got = np.load(os.path.join(out, "input_0.npy"))
        assert got.flags["C_CONTIGUOUS"] and np.array_equal(got, a.astype(got.dtype)), dt


@test
def random_data_without_a_path(tmp):
    out = os.path.join(tmp, "rand")
    names, info = dump(out, "--input", "input:float:-1,3,5,5", "--batch", 4)
    got = np.concatenate(batches(out))
    assert got.shape == (10, 3, 5, 5) and info["random"] == "1"
    assert got.min() >= 0 and got.max() < 1 and abs(got.mean() - 0.5) < 0.05
    out2 = os.path.join(tmp, "rand2")
    dump(out2, "--input", "input:float:-1,3,5,5", "--batch", 3, "--threads", 1)
    assert np.array_equal(np.concatenate(batches(out2)), got)


@test
def input_shape_sizes_images_for_a_dynamic_model(tmp):
    """model.input_shape gives the image size when the model's H/W are dynamic: the calibrated range of the input
    equals that of the numpy reference preprocessing at that size (the input's QuantizeLinear scale)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])
    w = numpy_helper.from_array(np.array([[[[1.0]]], [[[-0.5]]]], np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                           helper.make_node("GlobalAveragePool", ["c"], ["p"], name="gap"),
                           helper.make_node("Flatten", ["p"], ["y"], name="flat")], "dyn", [x], [y], [w])
    model = os.path.join(tmp, "dyn.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    pixels = (np.arange(10 * 12).reshape(10, 12) * 2).astype(np.uint8)  # every pixel distinct
    # The brightest pixel where the 8x8 nearest grid does not sample: the range then depends on the size used.
    row = int(np.flatnonzero(weights(10, 8, "nearest").sum(axis=0) == 0)[0])
    pixels[row, 0] = 250
    save(os.path.join(tmp, "imgs", "a", "0.png"), png_bytes(pixels))
    want = reference(pixels[:, :, None], 8, 8, "nearest", "fit", 1 / 255, 0, "nchw")
    want_scale = (max(want.max(), 0) - min(want.min(), 0)) / 255
    assert want.max() < 250 / 255
    binary = os.path.join(BUILD, "onnxquant")

    def quantize(tag, *overrides):
        cfg = os.path.join(tmp, "cfg.yaml")
        with open(cfg, "w") as f:
            f.write(f"model: {{model_path: {model}}}\ndataset: {{quantization_path: {os.path.join(tmp, 'imgs')}}}\n"
                    "preprocessing: {rescaling: {scale: 1/255, offset: 0}, color_mode: grayscale}\n"
                    "quantization: {target_opset: 13}\n")
        return subprocess.run([binary, "--config", cfg, "--output-dir", os.path.join(tmp, tag), "--threads", "1",
                               *overrides], capture_output=True, text=True)

    for tag, shape in (("hwc", "(8, 8, 1)"), ("chw", "[1, 8, 8]"), ("hw", "[8, 8]")):
        p = quantize(tag, f"model.input_shape={shape}")
        assert p.returncode == 0, p.stderr
        assert "1 images, 1 classes, 8x8)" in p.stderr, p.stderr
        q = onnx.load(os.path.join(tmp, tag, "quantized_models", "dyn_quant_qdq_pc.onnx"))
        scale = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}["x_scale"]
        assert abs(float(scale) - want_scale) <= 1e-6 * want_scale, (tag, float(scale), want_scale)
    p = quantize("none")
    assert p.returncode == 1 and "model.input_shape" in p.stderr, p.stderr


@test
def rescaling_with_array_data_is_warned_about(tmp):
    """Arrays are fed as they are: a non-identity preprocessing.rescaling with .npz data says so (the `eval`
    sub-command, which has no rescaling option, does not)."""
    binary = os.path.join(BUILD, "onnxquant")
    model = os.path.join(SRC, "testdata", "digits_mlp.onnx")
    calib = os.path.join(SRC, "testdata", "digits_calib_flat.npz")
    cfg = os.path.join(tmp, "cfg.yaml")
    with open(cfg, "w") as f:
        f.write(f"model: {{model_path: {model}}}\ndataset: {{quantization_path: {calib}}}\n"
                "quantization: {target_opset: 13}\n")
    def stderr(*extra):
        p = subprocess.run([binary, *extra], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return p.stderr
    warning = "applies to image folders only"
    assert warning in stderr("--config", cfg, "--output-dir", os.path.join(tmp, "a"), "preprocessing.rescaling.scale=1/255")
    assert warning not in stderr("--config", cfg, "--output-dir", os.path.join(tmp, "b"))
    assert warning not in stderr("eval", model, "--data", os.path.join(SRC, "testdata", "digits_test_flat.npz"))


def main():
    passed = failed = 0
    if not os.path.exists(TOOL):
        print(f"FAIL: {TOOL} not built (cmake --build <dir> --target oq_preprocess_dump)")
        print("0 passed, 1 failed")
        return 1
    for fn in TESTS:
        with tempfile.TemporaryDirectory(prefix="oq-data-py-") as tmp:
            try:
                fn(tmp)
                passed += 1
                print(f"PASS {fn.__name__}")
            except Exception:
                failed += 1
                print(f"FAIL {fn.__name__}")
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
