"""Peak memory of calibration on a deflated .npz (QA16 report, rss.sh): a member written by np.savez_compressed is
inflated into an unlinked temporary file; the pages of the archive zlib reads used to stay resident, so the peak RSS
grew with the archive (1000 MobileNet samples: 574 MB deflated, 87 MB stored). They are released as the stored path
releases its pages (every 2 MiB), so 1000 samples peak about where 100 do.

The archives are written here (random float32 does not deflate: ~94 MB for 1000 samples of 3x96x96), and the peak
is the ru_maxrss of onnxquant alone: it is started from a small launcher, because a forked child's ru_maxrss starts
at its parent's resident set (this test's numpy arrays).
"""
import os
import subprocess
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto as TP, helper, numpy_helper

from bad_inputs_util import BIN, base_config, write_config
from oqtest import run_module_tests, tmpdir

SIDE = 96
LAUNCH = """import os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), ru.ru_maxrss)
"""


def peak_rss_mb(args):
    """Exit code and peak RSS (MB) of onnxquant ARGS."""
    out = subprocess.run([sys.executable, "-S", "-c", LAUNCH, BIN] + args, capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1]) / 1024


def conv_model(path):
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["c"], name="conv"),
                           helper.make_node("GlobalAveragePool", ["c"], ["p"], name="gap"),
                           helper.make_node("Flatten", ["p"], ["output"], name="flat")], "g",
                          [helper.make_tensor_value_info("input", TP.FLOAT, ["N", 3, SIDE, SIDE])],
                          [helper.make_tensor_value_info("output", TP.FLOAT, ["N", 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def deflated_npz(path, n, rng):
    """x: n random samples, deflated (level 1: as large as stored, written fast), 50 samples at a time."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (n, 3, SIDE, SIDE)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            for i in range(0, n, 50):
                f.write(rng.random((min(50, n - i), 3, SIDE, SIDE), dtype=np.float32).tobytes())
    return path


def test_deflated_npz_peak_rss_does_not_grow_with_the_archive():
    d = tmpdir()
    model = conv_model(os.path.join(d, "m.onnx"))
    rng = np.random.default_rng(0)
    peaks = {}
    for n in (100, 1000):
        calib = deflated_npz(os.path.join(d, f"c{n}.npz"), n, rng)
        cpath = write_config(d, base_config(model, calib), f"c{n}.yaml")
        rc, peaks[n] = peak_rss_mb(["--config", cpath, "--output-dir", os.path.join(d, f"out{n}")])
        assert rc == 0, f"rc {rc}: {open(os.path.join(d, f'out{n}', 'onnxquant.log')).read()[-2000:]}"
        os.remove(calib)
    grew = peaks[1000] - peaks[100]
    print(f"  peak RSS: 100 samples {peaks[100]:.0f} MB, 1000 samples {peaks[1000]:.0f} MB (archive of 1000: "
          f"{1000 * 3 * SIDE * SIDE * 4 / 2**20:.0f} MB)")
    # Without the release, 1000 samples peaked ~80 MB above 100 (the 85 MB more of deflated bytes read).
    assert grew < 15, f"peak RSS grew by {grew:.0f} MB from 100 to 1000 samples: {peaks}"


if __name__ == "__main__":
    run_module_tests(globals())
