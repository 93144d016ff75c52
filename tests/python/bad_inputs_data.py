"""Data cases of the bad-input catalogue (test_bad_inputs.py) about the types of calibration arrays, the data
behind a failing inference, fixed batch dimensions and the output location: each builds its model and data in a
temp dir; the run must end in one error line naming what it must (docs/config.md, "Which arrays are used").
"""
import fcntl
import os
import resource
import subprocess

import numpy as np
from onnx import TensorProto as TP, helper, numpy_helper

from bad_inputs_models import save
from bad_inputs_util import (BIN, CALIB_FLAT, FORBIDDEN, MLP, base_config, check_failure, copy_in, listing, main_job,
                             sha, write_config)
from oqtest import tmpdir

VOCAB, T = 50, 7


def tok_model(d, dtype=TP.INT64, name="tok.onnx"):
    """ids [N, 7] (int64 by default) -> Gather over a 50 x 16 embedding (node 'gather') -> MatMul."""
    rng = np.random.default_rng(1)
    emb = numpy_helper.from_array((rng.standard_normal((VOCAB, 16)) * 0.5).astype(np.float32), "emb")
    wm = numpy_helper.from_array((rng.standard_normal((16, 8)) * 0.3).astype(np.float32), "wm")
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"], name="gather"),
             helper.make_node("MatMul", ["e", "wm"], ["out"], name="mm")]
    g = helper.make_graph(nodes, "tok", [helper.make_tensor_value_info("ids", dtype, ["N", T])],
                          [helper.make_tensor_value_info("out", TP.FLOAT, ["N", T, 8])], [emb, wm])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return save(d, m, name)


def fixed_batch_model(d, batch):
    """x [batch, 3, 10, 6] (a fixed batch dimension) -> Conv -> Relu."""
    w = numpy_helper.from_array((np.random.default_rng(4).standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["out"], name="relu")]
    g = helper.make_graph(nodes, "fixed", [helper.make_tensor_value_info("x", TP.FLOAT, [batch, 3, 10, 6])],
                          [helper.make_tensor_value_info("out", TP.FLOAT, None)], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return save(d, m, f"fixed{batch}.onnx")


def ids(rows=12):
    return np.random.default_rng(2).integers(0, VOCAB, (rows, T))


def npz(d, name="data.npz", **arrays):
    p = os.path.join(d, name)
    np.savez(p, **arrays)
    return p


def job_case(model, arrays, words, code=1, batch_size=None):
    """model(d) -> model path; arrays: the .npz members; the main job must fail with `words` in its error."""
    def case():
        d = tmpdir()
        m = model(d)
        data = npz(d, **arrays)
        cfg = base_config(m, data)
        if batch_size:
            cfg["dataset"]["batch_size"] = batch_size
        return main_job(d, cfg, code, words, extra_inputs=[data])
    return case


def oob_ids():
    a = ids()
    a[3, 2] = 55  # row 3 holds an id beyond the vocabulary of 50
    return a


def ids_over_int32():
    a = ids().astype(np.int64)
    a[5, 0] = 1 << 40
    return a


def case_output_long_file_name():
    """A model file name of 240 bytes: the output <name>_quant_qdq_pc.onnx (258 bytes) is over the file system's
    limit; the error is onnxquant's, naming the path and the limit, not a raw std::filesystem message."""
    d = tmpdir()
    model = copy_in(d, MLP, "m" * 240 + ".onnx")
    cfg = base_config(model, copy_in(d, CALIB_FLAT))
    err = main_job(d, cfg, 1, ["m" * 240 + "_quant_qdq_pc.onnx", "258 bytes", "255", "shorter name"])
    assert "filesystem error" not in err, err


def case_output_log_is_a_directory():
    """The log file cannot be opened (a directory holds its name): the error gives the OS reason."""
    d = tmpdir()
    cfg = base_config(copy_in(d, MLP), copy_in(d, CALIB_FLAT))
    cpath = write_config(d, cfg)
    out = os.path.join(d, "out")
    os.makedirs(os.path.join(out, "onnxquant.log"))
    check_failure(d, ["--config", cpath, "--output-dir", out], 1, ["onnxquant.log", "Is a directory"],
                  [cpath, cfg["model"]["model_path"]])


def case_output_read_only():
    """A read-only output folder: the error names the log file and gives the OS reason. Root ignores directory
    permissions, so as root onnxquant runs as nobody (uid 65534), as the QA report did."""
    d = tmpdir()
    os.chmod(d, 0o755)
    cfg = base_config(copy_in(d, MLP), copy_in(d, CALIB_FLAT))
    cpath = write_config(d, cfg)
    out = os.path.join(d, "out")
    os.makedirs(out)
    os.chmod(out, 0o555)
    as_nobody = os.geteuid() == 0
    def drop():
        if as_nobody:
            os.setgid(65534)
            os.setuid(65534)
    before = listing(d)
    sums = {p: sha(p) for p in (cpath, cfg["model"]["model_path"])}
    p = subprocess.run([BIN, "--config", cpath, "--output-dir", out], capture_output=True, text=True, cwd=d,
                       preexec_fn=drop)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
    assert p.returncode == 1, f"rc {p.returncode}: {p.stderr[-2000:]}"
    assert len(errors) == 1, p.stderr[-2000:]
    for w in ("onnxquant.log", "Permission denied"):
        assert w in errors[0], f"error line does not name '{w}': {errors[0]}"
    for w in FORBIDDEN:
        assert w not in p.stderr, p.stderr[-2000:]
    assert listing(d) == before, sorted(listing(d) - before)
    assert all(sha(f) == h for f, h in sums.items())
    print(f"  rc {p.returncode}: {errors[0][:300]}")


DATA_TYPE_CASES = [
    # F4: floating-point ids for an int64 input (ONNX Runtime refuses the feed), whole numbers or not.
    ("data_float_ids_for_int64_input", job_case(tok_model, {"ids": ids().astype(np.float32) + 0.3},
                                                ["data.npz", "array 'ids'", "float32", "model input 'ids'", "int64"])),
    ("data_whole_float_ids_for_int64_input", job_case(tok_model, {"ids": ids().astype(np.float64)},
                                                      ["data.npz", "'ids'", "float64", "int64"])),
    # int64 (numpy's default) for an int32 input converts, value by value: a value over int32 is an error.
    ("data_int64_ids_over_int32_input", job_case(lambda d: tok_model(d, TP.INT32), {"ids": ids_over_int32()},
                                                 ["data.npz", "'ids'", "row 5", "1099511627776", "int32"])),
    # F6: an id beyond the vocabulary: the Gather's error names the data file and the row(s) fed.
    ("data_gather_index_out_of_range_names_row", job_case(tok_model, {"ids": oob_ids()},
                                                          ["node 'gather'", "55", "data.npz row 3"])),
    ("data_gather_index_out_of_range_batched", job_case(tok_model, {"ids": oob_ids()},
                                                        ["node 'gather'", "data.npz rows", "3"], batch_size=4)),
    # F6: fixed batch dimensions and dataset.batch_size.
    ("data_fixed_batch1_batch_size4", job_case(
        lambda d: fixed_batch_model(d, 1), {"x": np.ones((12, 3, 10, 6), np.float32)},
        ["data.npz", "fixed batch dimension of 1", "dataset.batch_size is 4", "set dataset.batch_size: 1"], code=2,
        batch_size=4)),
    ("data_fixed_batch2_default_batch_size", job_case(
        lambda d: fixed_batch_model(d, 2), {"x": np.ones((12, 3, 10, 6), np.float32)},
        ["data.npz", "fixed batch dimension of 2", "dataset.batch_size is 1", "set dataset.batch_size: 2"], code=2)),
    ("data_fixed_batch2_odd_sample_count", job_case(
        lambda d: fixed_batch_model(d, 2), {"x": np.ones((11, 3, 10, 6), np.float32)},
        ["data.npz", "fixed batch dimension of 2", "11 samples", "multiple of 2"], code=2, batch_size=2)),
]

def case_fixed_batch_inspection_split():
    """Batch 4, 200 calibration samples, inspection_split 0.33 (66 samples): refused before calibration, naming
    the key and a split that works."""
    d = tmpdir()
    cfg = base_config(fixed_batch_model(d, 4), npz(d, x=np.ones((200, 3, 10, 6), np.float32)), mode="inspection",
                      iterative_quant_parameters={"inspection_split": 0.33})
    cfg["dataset"]["batch_size"] = 4
    main_job(d, cfg, 2, ["data.npz", "fixed batch dimension of 4", "66 samples",
                         "quantization.iterative_quant_parameters.inspection_split: 0.32"])


def case_fixed_batch_chain_qe_test_set():
    d = tmpdir()
    cfg = base_config(fixed_batch_model(d, 4), npz(d, x=np.ones((200, 3, 10, 6), np.float32)))
    cfg["operation_mode"] = "chain_qe"
    test = npz(d, "test.npz", x=np.ones((358, 3, 10, 6), np.float32), y=np.zeros(358, np.int64))
    cfg["dataset"].update(batch_size=4, test_path=test)
    main_job(d, cfg, 2, ["test.npz", "fixed batch dimension of 4", "dataset.test_path", "356 or 360"],
             extra_inputs=[test])


def mlp(d):
    return copy_in(d, MLP)


X20 = np.zeros((20, 64), np.float32)
LABEL_WORDS = ["data.npz", "labels 'y'", "integer array of shape [N] or [N,1]"]
def case_npz_stored_member_bad_crc():
    """np.savez's member with one byte changed after writing: numpy's BadZipFile; it was calibrated on."""
    d = tmpdir()
    x = np.full((20, 64), 0.5, np.float32)
    p = npz(d, x=x)
    raw = bytearray(open(p, "rb").read())
    raw[raw.find(x[:1].tobytes()) + 2] ^= 0x40
    with open(p, "wb") as f:
        f.write(raw)
    return main_job(d, base_config(copy_in(d, MLP), p), 1, ["data.npz:x", "CRC-32 mismatch"])


def case_npy_size_overflows():
    """A header of shape (2^31, 2^31) float32: 2^64 bytes wrapped to 0 and hung calibration."""
    d = tmpdir()
    p = os.path.join(d, "huge.npy")
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2**31, 2**31)})
    return main_job(d, base_config(copy_in(d, MLP), p), 1, ["huge.npy", "bad .npy header", "2^63 bytes"],
                    timeout=120)


DATA_TYPE_CASES += [
    # Labels: integers of shape [N] or [N, 1]; bool (was taken as 0/1 classes), float and one-hot are refused.
    ("data_labels_bool", job_case(mlp, {"x": X20, "y": np.zeros(20, bool)}, LABEL_WORDS + ["bool"])),
    ("data_labels_float", job_case(mlp, {"x": X20, "y": np.zeros(20, np.float32)}, LABEL_WORDS + ["float32"])),
    ("data_labels_one_hot", job_case(mlp, {"x": X20, "y": np.eye(10, dtype=np.int64)[np.arange(20) % 10]},
                                     LABEL_WORDS + ["[20,10]"])),
    # Fixed batch dimensions of the inspected subset and the test set: refused before calibration.
    ("data_fixed_batch_inspection_split", case_fixed_batch_inspection_split),
    ("data_fixed_batch_chain_qe_test_set", case_fixed_batch_chain_qe_test_set),
    # Corrupt array files (s19 review): refused naming the file (and member), as numpy refuses them.
    ("data_npz_stored_member_bad_crc", case_npz_stored_member_bad_crc),
    ("data_npy_size_overflows_64_bits", case_npy_size_overflows),
]

def case_output_folder_in_use():
    """Another run holds the output folder's lock (here the test, with flock on its lock file and a pid in it, as
    a run does): refused before the log is opened, naming the folder and the pid; nothing in the folder changes."""
    d = tmpdir()
    cfg = base_config(copy_in(d, MLP), copy_in(d, CALIB_FLAT))
    cpath = write_config(d, cfg)
    out = os.path.join(d, "out")
    os.makedirs(out)
    with open(os.path.join(out, ".onnxquant.lock"), "w") as lock:
        lock.write("4242\n")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        check_failure(d, ["--config", cpath, "--output-dir", out], 1, [out, "in use by another onnxquant run",
                                                                        "pid 4242"], [cpath, cfg["model"]["model_path"]])
    assert not os.path.exists(os.path.join(out, "onnxquant.log"))


def case_output_file_size_limit():
    """`ulimit -f` below the quantized model's size: the write fails with EFBIG (SIGXFSZ is ignored; it used to
    kill the run, rc 153, leaving NAME.tmp-XXXXXX and an empty log), one error line, only the log left."""
    d = tmpdir()
    cfg = base_config(copy_in(d, MLP), copy_in(d, CALIB_FLAT))
    cpath = write_config(d, cfg)
    out = os.path.join(d, "out")
    before = listing(d)
    p = subprocess.run([BIN, "--config", cpath, "--output-dir", out], capture_output=True, text=True, cwd=d,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10)))
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
    assert p.returncode == 1 and len(errors) == 1, f"rc {p.returncode}: {p.stderr[-2000:]}"
    for w in ("digits_mlp_quant_qdq_pc.onnx", "File too large"):
        assert w in errors[0], f"error line does not name '{w}': {errors[0]}"
    for w in FORBIDDEN:
        assert w not in p.stderr, p.stderr[-2000:]
    assert listing(d) - before == {"out", "out/onnxquant.log"}, sorted(listing(d) - before)
    print(f"  rc {p.returncode}: {errors[0][:300]}")


OUTPUT_CASES = [
    ("output_file_name_too_long", case_output_long_file_name),
    ("output_log_is_a_directory", case_output_log_is_a_directory),
    ("output_folder_read_only", case_output_read_only),
    ("output_folder_in_use", case_output_folder_in_use),
    ("output_file_size_limit", case_output_file_size_limit),
]
