"""An error thrown inside a kernel's parallel_for chunk on an OpenMP worker (core review, s19): a Softmax over
[2, 2, 4000000] (two outer rows: one chunk per thread, each allocating its 2 x 16 MB of row statistics) run with
two threads under address-space limits from 150 to 320 MB. Every limit ends in success or in one documented error
line (docs/reliability.md, "Resource limits") with nothing written: never `terminate called` / SIGABRT, which a
std::bad_alloc leaving the OpenMP region gave (exit 134 at 200-250 MB on the review's machine). Where the worker's
allocation is the one that fails, the line names the node and says "out of memory: an allocation failed".

Skipped for an ASan build of onnxquant (it cannot run under an address-space limit).
"""
import os
import resource
import subprocess
import sys

import numpy as np
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import BIN, run_module_tests, sanitized_binary, save_graph, tmpdir  # noqa: E402

DOCUMENTED = ("out of memory allocating ", "out of memory: an allocation failed (",
              "the process was ended by a library before the run finished", "cannot start ")


def limit(kb):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (kb << 10, kb << 10))


def test_worker_bad_alloc_is_an_error_line():
    if sanitized_binary():
        print("  skipped: an ASan build cannot run under RLIMIT_AS")
        return
    d = tmpdir("oq_worker_")
    model = save_graph(helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 4000000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2, 4000000])]), os.path.join(d, "smx.onnx"), 13)
    x = np.zeros((2, 2, 4000000), np.float32)
    x[:, 1, :] = np.log(3.0)  # softmax over axis 1: [0.25, 0.75] everywhere
    np.save(os.path.join(d, "x.npy"), x)
    seen = {}
    for kb in range(150_000, 320_001, 10_000):
        out = os.path.join(d, f"o{kb}")
        p = subprocess.run([BIN, "run", model, "--input", "x=" + os.path.join(d, "x.npy"), "--output-dir", out,
                            "--threads", "2"], capture_output=True, preexec_fn=limit(kb), timeout=120)
        err = p.stderr.decode("utf-8", "replace")
        assert p.returncode in (0, 1) and "terminate called" not in err, (kb, p.returncode, err[-2000:])
        if p.returncode == 0:
            y = np.load(os.path.join(out, "y.npy"), mmap_mode="r")
            assert y.shape == x.shape and np.allclose(y[:, :, ::100000], [[[0.25], [0.75]]], atol=1e-6), kb
            seen[kb] = "ok"
            continue
        errors = [line for line in err.splitlines() if line.startswith("[error]")]
        assert len(errors) == 1 and any(w in errors[0] for w in DOCUMENTED), (kb, err[-2000:])
        assert not os.path.exists(os.path.join(out, "y.npy")), kb
        seen[kb] = errors[0][8:90]
    print("  " + "\n  ".join(f"{kb} KB: {v}" for kb, v in seen.items()), flush=True)
    assert "ok" in seen.values(), "no limit was high enough to run the model"
    assert any("out of memory" in v for v in seen.values()), "no limit was low enough to fail an allocation"


if __name__ == "__main__":
    run_module_tests(globals())
