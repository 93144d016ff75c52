"""The files a run writes (docs/reliability.md, "Outputs"; QA17 report, environment sweep):

- modes as open(2) gives them (onnx.save, np.save): 0666 & ~umask for a new file, the old mode for a file replaced;
- an existing output this user may not write (chmod a-w) is refused before anything is written, the log too;
- another run's clean-up of a killed run's left-overs never takes a live run's temporary or candidate file (a run
  whose output folder is another run's export folder, or reaches it through a symbolic link);
- the output folder onnxquant names itself (experiments_outputs/<second>) is a new one for every run;
- an unusable TMPDIR is named in the error;
- every log line has its control characters escaped.
Each test fails against the binary before these fixes.
"""
import fcntl
import os
import re
import stat
import subprocess
import sys
import time

import numpy as np

from bad_inputs_util import BIN, CALIB_FLAT, MLP, base_config, copy_in, listing, sha, unprivileged, write, write_config
from oqtest import run_module_tests, tmpdir
from test_run_guard import default_config, error_line, full_auto_waiting, run

MODEL_OUT = "quantized_models/digits_mlp_quant_qdq_pc.onnx"


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def files_of(out):
    return {f: mode(os.path.join(out, f)) for f in listing(out) if os.path.isfile(os.path.join(out, f))}


def numpy_mode(d, umask):
    """The mode np.save gives a new file under `umask` (in a child: this process keeps its umask)."""
    p = os.path.join(d, f"ref_{umask:o}.npy")
    subprocess.run([sys.executable, "-c", f"import os, numpy as np; os.umask({umask}); np.save({p!r}, np.zeros(1))"],
                   check=True)
    m = mode(p)
    os.unlink(p)
    return m


def with_umask(u):
    return lambda: os.umask(u)


# ---------------------------------------------------------------------------------------------- modes
def test_new_files_follow_the_umask():
    """Under umask 077 every file is 0600, under 002 0664, as np.save makes them (the model, the reports and run's
    .npy files were 0644 whatever the umask; only the log followed it)."""
    for umask in (0o077, 0o002):
        d = tmpdir()
        out, run_out = os.path.join(d, "out"), os.path.join(d, "run_out")
        want = numpy_mode(d, umask)
        assert want == 0o666 & ~umask, oct(want)
        p = run(d, ["--config", default_config(d, mode="inspection"), "--output-dir", out], preexec_fn=with_umask(umask))
        assert p.returncode == 0, p.stderr[-3000:]
        got = files_of(out)
        assert set(got) == {"onnxquant.log", MODEL_OUT, "inspection.json", "inspection.csv", "inspection.html"}, got
        assert all(m == want for m in got.values()), (oct(want), {f: oct(m) for f, m in got.items()})
        x = os.path.join(d, "x.npy")
        np.save(x, np.zeros((2, 64), np.float32))
        p = run(d, ["run", os.path.join(d, "digits_mlp.onnx"), "--input", x, "--output-dir", run_out],
                preexec_fn=with_umask(umask))
        assert p.returncode == 0, p.stderr[-3000:]
        assert files_of(run_out) == {"logits.npy": want}, (oct(want), files_of(run_out))
        print(f"  umask {umask:03o}: every file {want:o}")


def test_replaced_output_keeps_its_mode():
    """A rerun replacing a 0600 model keeps 0600, as np.save / onnx.save (open with O_TRUNC) keep a file's mode; it
    used to be reset to 0644."""
    d = tmpdir()
    out = os.path.join(d, "out")
    cpath = default_config(d)
    assert run(d, ["--config", cpath, "--output-dir", out]).returncode == 0
    model = os.path.join(out, MODEL_OUT)
    os.chmod(model, 0o600)
    ref = os.path.join(d, "ref.npy")
    np.save(ref, np.zeros(1))
    os.chmod(ref, 0o600)
    np.save(ref, np.ones(1))  # the reference: the file keeps its mode
    assert mode(ref) == 0o600
    inode = os.stat(model).st_ino
    p = run(d, ["--config", cpath, "--output-dir", out], preexec_fn=with_umask(0o022))
    assert p.returncode == 0, p.stderr[-3000:]
    assert os.stat(model).st_ino != inode  # replaced (a new file renamed into place)
    assert mode(model) == 0o600, oct(mode(model))


# ---------------------------------------------------------------------------------------------- read-only outputs
def test_read_only_outputs_are_refused():
    """As a user to whom permissions apply: a model, a report or the log made read-only (chmod 444) after a run is
    refused by the next run, one error line naming it, and no output is replaced (the model and the reports used
    to be replaced silently by the rename, while the log failed with a bare 'Permission denied')."""
    d = tmpdir()
    out = os.path.join(d, "out")
    cpath = default_config(d, mode="inspection")
    drop = unprivileged(d)
    assert run(d, ["--config", cpath, "--output-dir", out], preexec_fn=drop).returncode == 0
    for rel in (MODEL_OUT, "inspection.html", "onnxquant.log"):
        path = os.path.join(out, rel)
        os.chmod(path, 0o444)
        before = {f: (sha(os.path.join(out, f)), os.stat(os.path.join(out, f)).st_ino) for f in files_of(out)}
        p = run(d, ["--config", cpath, "--output-dir", out], preexec_fn=drop)
        err = error_line(p, 1, [path, "may not write", "chmod u+w"])
        assert "Calibrated" not in p.stderr, "refused only after calibration"
        after = {f: (sha(os.path.join(out, f)), os.stat(os.path.join(out, f)).st_ino) for f in files_of(out)}
        if rel == "onnxquant.log":
            assert after == before, "the read-only log was written"
        else:
            assert {f: v for f, v in after.items() if f != "onnxquant.log"} == \
                {f: v for f, v in before.items() if f != "onnxquant.log"}, "an output was replaced"
            assert err[len("[error] "):] in open(os.path.join(out, "onnxquant.log")).read()
        os.chmod(path, 0o644)


def test_read_only_output_of_run_is_refused():
    """`onnxquant run` refuses a read-only .npy it would replace, before the model runs."""
    d = tmpdir()
    model = copy_in(d, MLP)
    x = os.path.join(d, "x.npy")
    np.save(x, np.zeros((2, 64), np.float32))
    out = os.path.join(d, "run_out")
    drop = unprivileged(d)
    assert run(d, ["run", model, "--input", x, "--output-dir", out], preexec_fn=drop).returncode == 0
    npy = os.path.join(out, "logits.npy")
    os.chmod(npy, 0o444)
    np.save(x, np.ones((2, 64), np.float32))  # other outputs than the first run's, if it wrote any
    before = (sha(npy), os.stat(npy).st_ino)
    p = run(d, ["run", model, "--input", x, "--output-dir", out], preexec_fn=drop)
    error_line(p, 1, [npy, "may not write"])
    assert (sha(npy), os.stat(npy).st_ino) == before and listing(out) == {"logits.npy"}, sorted(listing(out))


# ---------------------------------------------------------------------------------------------- left-overs
def test_cleanup_leaves_a_live_runs_temporaries():
    """A run whose output folder is another run's export folder cleans up the temporary files of killed runs there,
    but not one a live run holds (locked while it exists): it used to remove it, and the other run then failed
    with 'cannot rename'. Here the test holds the lock as a live run does."""
    d = tmpdir()
    exports = os.path.join(d, "out", "quantized_models")
    live = write(os.path.join(exports, "a_quant_qdq_pc.onnx.tmp-AbCdEf"), "being written")
    dead = write(os.path.join(exports, "b_quant_qdq_pc.onnx.tmp-ZyXwVu"), "left by a killed run")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        p = run(d, ["--config", default_config(d), "--output-dir", exports])
        assert p.returncode == 0, p.stderr[-3000:]
        assert os.path.exists(live), "the live temporary file was removed"
        assert not os.path.exists(dead), "the killed run's temporary file was kept"
        assert p.stderr.count("left by an earlier onnxquant run that was killed") == 1, p.stderr[-3000:]
    finally:
        os.close(fd)


def test_candidate_of_a_live_run_kept_through_a_linked_export_folder():
    """Run A (full_auto) waits in its evaluator command, its .candidate_float.onnx in its output folder. Run B's
    export folder is a symbolic link to A's output folder: B's clean-up used to remove A's candidate (named like a
    killed run's), and A's evaluator then found no model. Now B leaves it, and A completes."""
    d = tmpdir()
    out, out2 = os.path.join(d, "out"), os.path.join(d, "out2")
    a, go = full_auto_waiting(d, out, '[ -f "$1" ] || { echo "no model $1" >&2; exit 7; }\n')
    try:
        candidates = [f for f in os.listdir(out) if f.startswith(".candidate_")]
        assert candidates, sorted(os.listdir(out))
        os.makedirs(out2)
        os.symlink(out, os.path.join(out2, "quantized_models"))
        b_cfg = write_config(d, base_config(copy_in(d, MLP, "b_mlp.onnx"), copy_in(d, CALIB_FLAT)), "b.yaml")
        b = run(d, ["--config", b_cfg, "--output-dir", out2])
        assert b.returncode == 0, b.stderr[-3000:]
        assert "left by an earlier onnxquant run" not in b.stderr, b.stderr[-3000:]
        assert all(os.path.exists(os.path.join(out, c)) for c in candidates), sorted(os.listdir(out))
    finally:
        write(go, "")
    _, a_err = a.communicate(timeout=600)
    assert a.returncode == 0, a_err[-3000:]


# ---------------------------------------------------------------------------------------------- default folder
def outputs_in(p):
    assert p.returncode == 0, p.stderr[-3000:]
    return re.search(r"Outputs are in (\S+)", p.stderr).group(1)


def test_default_output_folder_is_new_for_each_run():
    """Without --output-dir and hydra.run.dir each run gets a folder of its own: experiments_outputs/<second> when
    free, else <second>_1, ... Folders of the coming minute are taken in advance (a user's file in each): the runs
    leave them alone (they used to write into them, and quick runs shared one folder, the last log and possibly
    model winning). Two runs started at once get two folders too."""
    d = tmpdir()
    cpath = default_config(d)
    now = time.time()
    taken = {time.strftime("%Y_%m_%d_%H_%M_%S", time.localtime(now + k)) for k in range(-1, 60)}
    for t in taken:
        write(os.path.join(d, "experiments_outputs", t, "notes.txt"), "the user's\n")
    folders = [outputs_in(run(d, ["--config", cpath])) for _ in range(3)]
    both = [subprocess.Popen([BIN, "--config", cpath], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    for p in both:
        p.stderr = p.communicate(timeout=300)[1]
        folders.append(outputs_in(p))
    assert len(set(folders)) == 5, folders
    for f in folders:
        m = re.fullmatch(r"experiments_outputs/(\d{4}(?:_\d\d){5})_\d+", f)
        assert m and m.group(1) in taken, f
        assert listing(os.path.join(d, f)) == {"onnxquant.log", "quantized_models", MODEL_OUT}, f
    for t in taken:
        assert listing(os.path.join(d, "experiments_outputs", t)) == {"notes.txt"}, t


# ---------------------------------------------------------------------------------------------- TMPDIR, log lines
def test_unusable_tmpdir_is_named():
    """A deflated .npz member and a Fortran-ordered .npy are rewritten into a temporary file: a TMPDIR where none can
    be made is named in the error (a relative one with the folder it means); it used to say only 'cannot create a
    temporary file in /nonexistent/tmp'. A usable relative TMPDIR works."""
    d = tmpdir()
    x = np.random.default_rng(0).standard_normal((20, 64)).astype(np.float32)
    deflated = os.path.join(d, "calib_z.npz")
    np.savez_compressed(deflated, x=x)
    fortran = os.path.join(d, "calib_f.npy")
    np.save(fortran, np.asfortranarray(x))
    assert np.load(fortran).flags.f_contiguous and np.array_equal(np.load(fortran), x)  # numpy reads it as it is
    os.makedirs(os.path.join(d, "tmp_ok"))
    for calib in (deflated, fortran):
        cpath = write_config(d, base_config(copy_in(d, MLP), calib))
        for tmp, shown in (("/nonexistent/tmp", "TMPDIR '/nonexistent/tmp'"), ("rel_tmp", os.path.join(d, "rel_tmp"))):
            p = subprocess.run([BIN, "--config", cpath, "--output-dir", os.path.join(d, "out")], cwd=d, text=True,
                               capture_output=True, env={**os.environ, "TMPDIR": tmp})
            error_line(p, 1, [os.path.basename(calib), shown, "TMPDIR"])
        p = subprocess.run([BIN, "--config", cpath, "--output-dir", os.path.join(d, "out")], cwd=d, text=True,
                           capture_output=True, env={**os.environ, "TMPDIR": "tmp_ok"})
        assert p.returncode == 0, p.stderr[-3000:]


def test_every_log_line_is_escaped():
    """An output folder named 'o<newline>fake line': every line of the log starts with its time stamp and every
    stderr line with its level (info lines used to be split, the second part posing as a line of its own)."""
    d = tmpdir()
    out = os.path.join(d, "o\nfake line")
    p = run(d, ["--config", default_config(d), "--output-dir", out])
    assert p.returncode == 0, p.stderr[-3000:]
    log = open(os.path.join(out, "onnxquant.log")).read()
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
    bad = [ln for ln in log.splitlines() if not stamp.match(ln)]
    assert not bad, bad
    assert "o\\nfake line" in log, log[:1000]
    bad = [ln for ln in p.stderr.splitlines() if not ln.startswith("[")]
    assert not bad, bad


if __name__ == "__main__":
    run_module_tests(globals())
