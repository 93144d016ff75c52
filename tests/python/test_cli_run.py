"""`onnxquant run`: the type rules of the data sets (docs/config.md) for its --input files, and all-or-nothing outputs.

  - floating-point data for an integer input is refused (float32 token ids used to be rounded to the nearest id),
    a value that a narrower integer input cannot hold is refused (int64 2**32 + 1 for an int32 input used to wrap
    to 1), as `eval` refuses them: one error line naming the --input file and the model input, exit 1;
  - faithful conversions are made and said (an info line); float64 data for a float32 input is converted with the
    warning of the table (it used to be silent); the outputs match numpy / onnxruntime on the converted data;
  - a failed run leaves nothing new in the output folder and every file that was there as it was: an output path
    that is a folder is refused before anything is written (the first output's .npy used to stay), and a write that
    fails midway (a file size limit) removes the outputs already written and the folder the run created, while an
    older output file of the same name keeps its bytes.
"""
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto as TP, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bad_inputs_util import check_failure, listing, sha  # noqa: E402
from oqtest import BIN, TESTDATA, ort_session, run_module_tests, tmpdir  # noqa: E402

TABLE = np.arange(40, dtype=np.float32).reshape(10, 4)  # row i of the embedding is 4i .. 4i+3


def token_model(d, id_type):
    """ids [n, 3] of `id_type` -> Gather(TABLE) -> out [n, 3, 4]."""
    g = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["out"], axis=0)], "tok",
                          [helper.make_tensor_value_info("ids", id_type, ["n", 3])],
                          [helper.make_tensor_value_info("out", TP.FLOAT, ["n", 3, 4])],
                          [numpy_helper.from_array(TABLE, "table")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = os.path.join(d, f"tok{id_type}.onnx")
    onnx.save(m, path)
    return path


def two_output_model(d):
    """x [1, 4] -> small = Relu(x) [1, 4], big = Tile(x, [1, 1000]) [1, 4000]: the second .npy is 16 kB."""
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["small"]), helper.make_node("Tile", ["x", "reps"], ["big"])],
                          "two", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("small", TP.FLOAT, [1, 4]),
                           helper.make_tensor_value_info("big", TP.FLOAT, [1, 4000])],
                          [numpy_helper.from_array(np.array([1, 1000], np.int64), "reps")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = os.path.join(d, "two.onnx")
    onnx.save(m, path)
    return path


def save(d, name, a):
    path = os.path.join(d, name)
    np.save(path, a)
    return path


def run(args, cwd, preexec_fn=None):
    return subprocess.run([os.path.abspath(BIN), *args], capture_output=True, text=True, cwd=cwd,
                          preexec_fn=preexec_fn)


def test_float_ids_for_an_int64_input_are_refused():
    d = tmpdir()
    model = token_model(d, TP.INT64)
    ids = save(d, "fids.npy", np.array([[1.7, 2.2, 3.9]], np.float32))
    check_failure(d, ["run", model, "--input", ids, "--output-dir", os.path.join(d, "o")], 1,
                  [f"--input '{ids}'", "model input 'ids'", "float32", "int64", "not converted"], [model, ids])
    # Named, and whole-number floats too (the rule is the dtype's, as eval's)
    whole = save(d, "whole.npy", np.array([[1.0, 2.0, 3.0]], np.float64))
    check_failure(d, ["run", model, "--input", f"ids={whole}", "--output-dir", os.path.join(d, "o")], 1,
                  [f"--input 'ids={whole}'", "model input 'ids'", "float64"], [model, whole])


def test_int64_ids_for_an_int32_input_are_checked():
    d = tmpdir()
    model = token_model(d, TP.INT32)
    # In range: converted, said in an info line, and the rows are the table's (numpy and onnxruntime agree).
    ok = save(d, "ids.npy", np.array([[1, 2, 9], [0, 5, 3]], np.int64))
    out = os.path.join(d, "o")
    p = run(["run", model, "--input", ok, "--output-dir", out], d)
    assert p.returncode == 0, p.stderr
    assert "(int64) is converted to int32 for model input 'ids'; every value is checked to fit" in p.stderr, p.stderr
    got = np.load(os.path.join(out, "out.npy"))
    ids = np.load(ok)
    np.testing.assert_array_equal(got, TABLE[ids])
    ref = ort_session(model).run(None, {"ids": ids.astype(np.int32)})[0]
    np.testing.assert_array_equal(got, ref)
    # 2**32 + 1 does not fit int32 (it used to wrap to 1): refused naming the file, the value and the input.
    big = save(d, "bigids.npy", np.array([[2 ** 32 + 1, 2, 3]], np.int64))
    check_failure(d, ["run", model, "--input", big, "--output-dir", os.path.join(d, "o2")], 1,
                  [f"--input '{big}'", "4294967297", "model input 'ids' of type int32 cannot hold"], [model, big])


def test_float64_data_is_converted_with_a_warning():
    d = tmpdir()
    model = os.path.join(TESTDATA, "digits_mlp.onnx")
    x64 = np.load(os.path.join(TESTDATA, "digits_test_flat.npz"))["x"][:3].astype(np.float64) + 1e-9
    x = save(d, "x64.npy", x64)
    out = os.path.join(d, "o")
    p = run(["run", model, "--input", x, "--output-dir", out], d)
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("[warning]")]
    assert len(warnings) == 1, p.stderr
    for w in (f"--input '{x}'", "(float64) is converted to float32 for model input 'input'", "rounds"):
        assert w in warnings[0], (w, warnings[0])
    ref = ort_session(model).run(None, {"input": x64.astype(np.float32)})[0]
    np.testing.assert_allclose(np.load(os.path.join(out, "logits.npy")), ref, rtol=1e-4, atol=1e-4)
    assert sorted(os.listdir(out)) == ["logits.npy"], os.listdir(out)  # no staging folder left


def test_an_output_path_that_is_a_folder_writes_nothing():
    d = tmpdir()
    model = two_output_model(d)
    x = save(d, "x.npy", np.array([[1, -2, 3, -4]], np.float32))
    out = os.path.join(d, "o")
    os.makedirs(os.path.join(out, "big.npy"))  # where the second output goes
    old = save(out, "small.npy", np.zeros(2, np.int8))  # an older output of the same name: kept as it is
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("mine\n")
    before = listing(out)
    check_failure(d, ["run", model, "--input", x, "--output-dir", out], 2, [os.path.join(out, "big.npy"), "folder"],
                  [model, x, old, os.path.join(out, "notes.txt")])
    assert listing(out) == before, listing(out) ^ before


def no_big_files():
    """In the child: files above 4 kB cannot be written (EFBIG instead of SIGXFSZ)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_a_failed_write_rolls_back():
    d = tmpdir()
    model = two_output_model(d)
    xv = np.array([[1, -2, 3, -4]], np.float32)
    x = save(d, "x.npy", xv)
    # A folder that exists, with an older small.npy: after the failure it holds the same files, same bytes.
    out = os.path.join(d, "o")
    os.makedirs(out)
    old = save(out, "small.npy", np.full((1, 4), 7, np.float32))
    old_sha, before = sha(old), listing(out)
    p = run(["run", model, "--input", x, "--output-dir", out], d, preexec_fn=no_big_files)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
    assert p.returncode == 1 and len(errors) == 1 and "big.npy" in errors[0], (p.returncode, p.stderr)
    assert listing(out) == before, listing(out) ^ before
    assert sha(old) == old_sha, "the older small.npy was replaced by a failed run"
    assert p.stdout == "", p.stdout  # no "small -> ..." line for a file that is not there
    # A folder the run creates (two levels): gone again.
    new = os.path.join(d, "new", "sub")
    p = run(["run", model, "--input", x, "--output-dir", new], d, preexec_fn=no_big_files)
    assert p.returncode == 1, p.stderr
    assert not os.path.exists(os.path.join(d, "new")), listing(os.path.join(d, "new"))
    # Without the limit the same run writes both outputs (numpy's values), and nothing else.
    p = run(["run", model, "--input", x, "--output-dir", new], d)
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(new)) == ["big.npy", "small.npy"], os.listdir(new)
    np.testing.assert_array_equal(np.load(os.path.join(new, "small.npy")), np.maximum(xv, 0))
    np.testing.assert_array_equal(np.load(os.path.join(new, "big.npy")), np.tile(xv, (1, 1000)))


if __name__ == "__main__":
    run_module_tests(globals())
