""".npy / .npz calibration arrays as numpy writes them (QA report of the fifteenth session, data pipeline): Fortran
order (np.save of a transposed array) and big-endian dtypes are read as np.load reads them, in .npy files and in
stored and deflated .npz members; image-only preprocessing keys given with array data are named in a warning.
The values fed are read back from a probe model's calibrated ranges (probe_data.py) and compared with the array.
Run: OQ_BIN=build/onnxquant .venv/bin/python tests/python/test_data_arrays.py
"""
import os
import sys

import numpy as np
from onnx import TensorProto as TP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oqtest import tmpdir, run_module_tests  # noqa: E402
from probe_data import config, errors, fed, probe_model, run  # noqa: E402


def one_nonzero_row_per_element(shape, seed):
    """[N, ...] values in which every element k is nonzero in exactly one row, so that the calibrated range of
    element k is [0, v] or [v, 0] and v is that value (rows are not told apart, positions are)."""
    rng = np.random.default_rng(seed)
    n, k = shape[0], int(np.prod(shape[1:]))
    x = np.zeros((n, k))
    vals = rng.permutation(np.arange(1, k + 1)) * np.where(rng.random(k) < 0.5, -1.0, 1.0) * 0.5
    x[rng.integers(0, n, k), np.arange(k)] = vals
    return x.reshape(shape), x.sum(0)


def test_fortran_order_and_big_endian_npy_and_npz():
    d = tmpdir()
    shape = (3, 2, 4, 5)
    x, want = one_nonzero_row_per_element(shape, 1)
    m = probe_model(os.path.join(d, "p.onnx"), ["N", *shape[1:]])
    m64 = probe_model(os.path.join(d, "p64.onnx"), ["N", *shape[1:]], TP.INT64)
    variants = {
        "c.npy": (m, x.astype(np.float32)),
        "fortran.npy": (m, np.asfortranarray(x.astype(np.float32))),
        "transposed.npy": (m, x.astype(np.float32).T.copy().T),  # Fortran order, as np.save(y.T) of a C array
        "be_f4.npy": (m, x.astype(">f4")),
        "be_fortran_f8.npy": (m, np.asfortranarray(x.astype(">f8"))),  # float64 -> float32: exact here
        "be_f2.npy": (m, x.astype(">f2")),
        "be_i8.npy": (m64, (x * 2).astype(">i8")),
        "fortran.npz": (m, {"x": np.asfortranarray(x.astype(np.float32))}),
        "be.npz": (m, {"x": x.astype(">f4")}),
        "fortran_be_deflated.npz": (m, {"x": np.asfortranarray(x.astype(">f4")), "deflate": True}),
    }
    for name, (model, a) in variants.items():
        path = os.path.join(d, name)
        if name.endswith(".npz"):
            (np.savez_compressed if a.pop("deflate", False) else np.savez)(path, **a)
            ref = np.load(path)["x"]
        else:
            np.save(path, a)
            ref = np.load(path)
        assert np.array_equal(ref, x * (2 if "i8" in name else 1)), name  # numpy reads back the values
        code, err, out = run(d, config(model, path), name.replace(".", "_"))
        assert code == 0, (name, err[-2000:])
        assert not errors(err, "error"), err
        np.testing.assert_allclose(fed(out, want.size), want * (2 if "i8" in name else 1), rtol=1e-5, err_msg=name)


def test_image_keys_with_arrays_are_named():
    d = tmpdir()
    x, want = one_nonzero_row_per_element((2, 3, 2, 2), 2)
    path = os.path.join(d, "x.npy")
    np.save(path, x.astype(np.float32))
    m = probe_model(os.path.join(d, "p.onnx"), ["N", 3, 2, 2])
    pre = {"color_mode": "bgr", "resizing": {"interpolation": "bilinear", "aspect_ratio": "crop"}, "layout": "NHWC"}
    code, err, out = run(d, config(m, path, pre), "keys")
    assert code == 0, err[-2000:]
    w = [ln for ln in errors(err, "warning") if "image folders only" in ln]
    assert len(w) == 1, err[-2000:]
    for key in ("preprocessing.color_mode", "preprocessing.resizing.interpolation",
                "preprocessing.resizing.aspect_ratio", "preprocessing.layout", path):
        assert key in w[0], (key, w[0])
    np.testing.assert_allclose(fed(out, want.size), want, rtol=1e-5)  # fed as it is
    # The defaults (rgb, nearest, fit, auto) say nothing.
    code, err, _ = run(d, config(m, path, {"color_mode": "rgb", "resizing": {"interpolation": "nearest"}}), "dflt")
    assert code == 0 and not [ln for ln in errors(err, "warning") if "image folders only" in ln], err[-2000:]


if __name__ == "__main__":
    run_module_tests(globals())
