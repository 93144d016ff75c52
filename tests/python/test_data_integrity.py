"""Corrupt or ambiguous data files are refused or read as the reference reads them (s19 review of src/data):
- a PNG whose critical chunk (IDAT, IHDR) no longer matches its CRC-32 is an error naming the file and the chunk
  (zlib and libpng refuse it; stb decoded it to wrong pixels), and dataset.skip_bad_files leaves it out;
- a stored .npz member (np.savez) whose bytes do not match the zip directory's CRC-32 is an error naming the file
  and the member, as numpy's BadZipFile (it was fed: 0.75 for 0.5); also when the damage lies megabytes in;
- duplicate or ambiguous member names read the member numpy reads (exact name, then NAME.npy; the last of several),
  with a warning;
- an .npy header whose byte count overflows 64 bits is an error naming the file, as numpy's "array is too big" (it
  wrapped to 0 bytes: a hang in calibration, a bogus output from `run`);
- grayscale of a colour PNG is libpng's rgb_to_gray as TensorFlow sets it up, computed here by hand.
Values fed are read back from a probe model's calibrated ranges (probe_data.py).
Run: OQ_BIN=build/onnxquant .venv/bin/python tests/python/test_data_integrity.py
"""
import io
import os
import struct
import sys
import warnings
import zipfile
import zlib

import numpy as np
from onnx import TensorProto as TP, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oqtest import run_module_tests, run_oq, save_graph, tmpdir  # noqa: E402
from probe_data import config, errors, fed, png_bytes, probe_model, run, save  # noqa: E402

IDENTITY = {"rescaling": {"scale": 1, "offset": 0}}


def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def stored_png(img):
    """An RGB PNG whose IDAT is a level-0 (stored) deflate stream: the pixel bytes appear verbatim in the file."""
    h, w = img.shape[:2]
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b""))


def crc_ok(png, at):
    """Whether the chunk at byte `at` matches its CRC-32 (zlib's)."""
    n = struct.unpack(">I", png[at:at + 4])[0]
    return zlib.crc32(png[at + 4:at + 8 + n]) == struct.unpack(">I", png[at + 8 + n:at + 12 + n])[0]


def test_png_with_a_stale_chunk_crc_is_refused_and_skipped():
    d = tmpdir("oq_integrity_")
    good_img = np.full((4, 4, 3), 100, np.uint8)
    good = stored_png(good_img)
    bad = bytearray(good)
    bad[good.find(bytes([100] * 12)) + 4] = 200  # pixel (0,1) G: 100 -> 200, CRC and Adler-32 left stale
    idat = good.find(b"IDAT") - 4
    assert crc_ok(good, idat) and not crc_ok(bytes(bad), idat)
    try:  # the reference: zlib refuses the stream (incorrect data check)
        zlib.decompress(bytes(bad[idat + 8:good.find(b"IEND") - 8]))
        raise AssertionError("zlib accepted the damaged IDAT")
    except zlib.error:
        pass
    ihdr_bad = bytearray(good)
    ihdr_bad[29] ^= 1  # a CRC byte of IHDR
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 4, 4, 3])
    for tag, data, chunk_name, at in (("idat", bad, "IDAT", idat), ("ihdr", ihdr_bad, "IHDR", 8)):
        save(os.path.join(d, tag, "c", "a.png"), bytes(data))
        code, err, out = run(d, config(m, os.path.join(d, tag), IDENTITY), tag)
        e = errors(err)
        assert code == 1 and len(e) == 1, (tag, code, err[-2000:])
        assert "a.png" in e[0] and f"CRC mismatch in {chunk_name} chunk at byte {at}" in e[0], e[0]
        assert not os.path.exists(os.path.join(out, "q")), tag
    # skip_bad_files: the damaged file is left out, named in a warning; the good one is fed as it is.
    save(os.path.join(d, "mixed", "c", "a_bad.png"), bytes(bad))
    save(os.path.join(d, "mixed", "c", "b_good.png"), good)
    code, err, out = run(d, config(m, os.path.join(d, "mixed"), IDENTITY, {"skip_bad_files": True}), "skip")
    assert code == 0, err[-2000:]
    w = errors(err, "warning")
    assert any("a_bad.png" in ln and "CRC mismatch in IDAT" in ln for ln in w), w
    np.testing.assert_allclose(fed(out, 48), good_img.ravel(), rtol=1e-5)
    # A damaged ancillary chunk is no error (libpng warns and drops it by default): the image decodes.
    text = chunk(b"tEXt", b"k\x00v")
    text = text[:-1] + bytes([text[-1] ^ 1])
    save(os.path.join(d, "anc", "c", "a.png"), good[:33] + text + good[33:])
    code, err, out = run(d, config(m, os.path.join(d, "anc"), IDENTITY), "anc")
    assert code == 0, err[-2000:]
    np.testing.assert_allclose(fed(out, 48), good_img.ravel(), rtol=1e-5)


def damaged_npz_is_refused(d, model, good, needle, at, mask):
    """Flips `mask` in byte `at` of the first occurrence of `needle` in the archive `good`: numpy refuses the copy
    (BadZipFile, the reference), and so must onnxquant, naming the file and the member, writing nothing."""
    raw = bytearray(open(good, "rb").read())
    raw[raw.find(needle) + at] ^= mask
    bad = save(os.path.join(d, "bad_" + os.path.basename(good)), bytes(raw))
    try:
        np.load(bad)["x"]
        raise AssertionError("numpy read the damaged member")
    except zipfile.BadZipFile:
        pass
    code, err, out = run(d, config(model, bad), "bad")
    e = errors(err)
    assert code == 1 and len(e) == 1 and f"bad_{os.path.basename(good)}:x: CRC-32 mismatch" in e[0], err[-2000:]
    assert not os.path.exists(os.path.join(out, "q"))


def test_stored_npz_member_with_a_bad_crc_is_refused():
    d = tmpdir("oq_integrity_")
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 3])
    x = np.array([[0.5, -1.0, 2.0]], np.float32)
    good = os.path.join(d, "good.npz")
    np.savez(good, x=x)
    code, err, out = run(d, config(m, good), "good")
    assert code == 0, err[-2000:]
    np.testing.assert_allclose(fed(out, 3), x.ravel(), rtol=1e-6)
    damaged_npz_is_refused(d, m, good, x.tobytes(), 2, 0x40)  # a mantissa bit of x[0,0]: 0.5 -> 0.75


def test_stored_npz_crc_covers_every_chunk():
    """A 6 MiB member is summed 2 MiB at a time: damage in its third chunk is found; the intact one is fed."""
    d = tmpdir("oq_integrity_")
    n = 1 << 19
    x = np.random.default_rng(0).random((3, n), dtype=np.float32)  # 3 samples of 2 MiB
    x[2, -1] = 7.0
    g = helper.make_graph([helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0)], "g",
                          [helper.make_tensor_value_info("x", TP.FLOAT, ["N", n])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, ["N"])])
    model = save_graph(g, os.path.join(d, "max.onnx"))
    good = os.path.join(d, "big.npz")
    np.savez(good, x=x)
    code, err, out = run(d, config(model, good), "big")
    assert code == 0, err[-2000:]
    damaged_npz_is_refused(d, model, good, x[2, -1:].tobytes(), 3, 0x01)  # an exponent bit of 7.0 (-> 28.0), 6 MiB in


def npz_with_members(path, members):
    """A zip of .npy members written in order (duplicate names allowed, as ZipFile(..., 'a').writestr makes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "w") as z:
            for name, a in members:
                b = io.BytesIO()
                np.save(b, a)
                z.writestr(name, b.getvalue())
    return path


def test_duplicate_and_ambiguous_members_read_what_numpy_reads():
    d = tmpdir("oq_integrity_")
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 3])
    a = np.array([[0.5, -1.0, 2.0]], np.float32)
    cases = {
        "appended": ([("x.npy", a), ("x.npy", 10 * a)], "2 members are named 'x.npy'"),
        "three": ([("x.npy", a), ("x.npy", 3 * a), ("x.npy", -2 * a)], "3 members are named 'x.npy'"),
        "npy_then_bare": ([("x.npy", a), ("x", 7 * a)], "members 'x' and 'x.npy' both hold array 'x'"),
        "bare_then_npy": ([("x", 5 * a), ("x.npy", a)], "members 'x' and 'x.npy' both hold array 'x'"),
    }
    for tag, (members, warning) in cases.items():
        path = npz_with_members(os.path.join(d, tag + ".npz"), members)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = np.load(path)["x"]  # the reference: numpy's choice
        code, err, out = run(d, config(m, path), tag)
        assert code == 0, (tag, err[-2000:])
        np.testing.assert_allclose(fed(out, 3), want.ravel(), rtol=1e-6, err_msg=tag)
        assert any(warning in ln for ln in errors(err, "warning")), (tag, err[-2000:])


def identity_model(path, rank):
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TP.FLOAT, [f"d{i}" for i in range(rank)])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [f"d{i}" for i in range(rank)])])
    return save_graph(g, path)


def test_npy_whose_size_overflows_64_bits_is_refused():
    d = tmpdir("oq_integrity_")
    for tag, shape, words in (("bytes", (2**31, 2**31), "needs more than 2^63 bytes"),
                              ("elements", (2**31, 2**31, 2**31, 8), "more elements than fit in 64 bits")):
        path = os.path.join(d, tag + ".npy")
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
            f.write(b"\0" * 64)
        try:
            np.load(path)
            raise AssertionError("numpy read it")
        except ValueError as e:  # the reference ("array is too big"; 2^96 elements wrap in numpy: "cannot reshape")
            assert "too big" in str(e) or tag == "elements", e
        model = identity_model(os.path.join(d, f"id{len(shape)}.onnx"), len(shape))
        out = os.path.join(d, "out_" + tag)
        p = run_oq(["run", model, "--input", "x=" + path, "--output-dir", out], check=False, timeout=60)
        e = errors(p.stderr)
        assert p.returncode == 1 and len(e) == 1, (tag, p.returncode, p.stderr[-2000:])
        assert f"{tag}.npy: bad .npy header" in e[0] and words in e[0], e[0]
        assert not os.path.exists(os.path.join(out, "y.npy")), tag


def rgb_png(a, depth=8):
    """An RGB PNG of uint8 (depth 8) or uint16 (depth 16, stored big-endian) pixels [H, W, 3]."""
    h, w = a.shape[:2]
    a = a.astype(">u2" if depth == 16 else np.uint8)
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_grayscale_of_colour_png_is_libpngs():
    """libpng's rgb_to_gray as TF's png_io.cc sets it up (png_set_rgb_to_gray(png, 1, 0.299, 0.587)), by hand:
    coefficients floor(29900 * 32768 / 100000) = 9797, floor(58700 * 32768 / 100000) = 19234 and
    32768 - 9797 - 19234 = 3737; R = G = B kept; else the sum >> 15, truncated for 8-bit pixels, rounded (+16384)
    for 16-bit ones, whose high byte is kept (png_set_strip_16 acts after the conversion)."""
    d = tmpdir("oq_integrity_")
    rc, gc = 29900 * 32768 // 100000, 58700 * 32768 // 100000
    bc = 32768 - rc - gc
    assert (rc, gc, bc) == (9797, 19234, 3737)
    rng = np.random.default_rng(3)
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 16, 16, 1])
    for depth in (8, 16):
        top = 255 if depth == 8 else 65535
        rgb = rng.integers(0, top + 1, (256, 3)).astype(np.int64)
        rgb[:4] = [[1, 2, 3], [5, 0, 0], [9, 9, 9], [top, top - 1, top]]
        R, G, B = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        want = np.where((R == G) & (G == B), R, (rc * R + gc * G + bc * B + (16384 if depth == 16 else 0)) >> 15)
        if depth == 16:
            want >>= 8
            R, G, B = R >> 8, G >> 8, B >> 8
        stb = (77 * R + 150 * G + 29 * B) >> 8  # what onnxquant fed before
        assert (want != stb).sum() >= 20, depth  # the colours tell the two apart
        save(os.path.join(d, f"g{depth}", "c", "a.png"), rgb_png(rgb.reshape(16, 16, 3), depth))
        pre = {**IDENTITY, "color_mode": "grayscale"}
        code, err, out = run(d, config(m, os.path.join(d, f"g{depth}"), pre), f"g{depth}")
        assert code == 0, err[-2000:]
        got = fed(out, 256)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{depth}-bit")


if __name__ == "__main__":
    run_module_tests(globals())
