"""Signals, limits and concurrent runs (docs/reliability.md, "Signals, limits, concurrent runs"; QA16 report):

- SIGINT / SIGTERM / SIGHUP roll the run back exactly as a failure does (only the log stays, with the error line
  in it), one `[error] interrupted by SIG...` line, exit 128 + signal; the evaluator_command child gets the signal;
- a closed stderr (`onnxquant ... 2>&1 | head -1`) does not stop the run (SIGPIPE ignored);
- a second run into a folder another run is writing is refused naming the folder and the other run's pid; a
  failed run removes only the files it created (not a file another process put in the folder meanwhile);
- temporary files of ours left by a killed run are removed by the next run into the folder;
- `ulimit -f`: the write fails with EFBIG through the error path (no SIGXFSZ death, no temp file left);
- a thread that cannot be started (RLIMIT_NPROC, as an unused uid when root; else RLIMIT_STACK + RLIMIT_AS) is
  one error line naming the thread, not SIGABRT.
Each test fails against the binary before these fixes (killed by the signal, files left, SIGABRT, ...).
"""
import fcntl
import os
import resource
import signal
import subprocess
import time

import numpy as np
from onnx import TensorProto as TP, helper, numpy_helper

from bad_inputs_util import BIN, CALIB_FLAT, FORBIDDEN, MLP, MOBILENET, base_config, copy_in, listing, sha, \
    unprivileged, write, write_config
from oqtest import TESTDATA, run_module_tests, save_graph, tmpdir

TEST_FLAT = os.path.join(TESTDATA, "digits_test_flat.npz")


def run(d, args, preexec_fn=None, timeout=120):
    """Runs onnxquant in `d`: the copy thread_limit() put there when there is one (the child then runs as another
    user, who may not reach the build folder: a clone under /root), else BIN."""
    exe = os.path.join(d, "onnxquant")
    p = subprocess.run([exe if os.path.exists(exe) else BIN] + args, capture_output=True, text=True, cwd=d,
                       preexec_fn=preexec_fn, timeout=timeout)
    return p


def error_line(p, code, words=()):
    """The one [error] line of a run that must end with `code`; no crash text."""
    msg = f"rc {p.returncode}\nstderr:\n{p.stderr[-3000:]}"
    assert p.returncode == code, f"expected exit code {code}: {msg}"
    for w in FORBIDDEN:
        assert w not in p.stderr, f"'{w}' in stderr: {msg}"
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("[error]")]
    assert len(errors) == 1, f"expected one [error] line: {msg}"
    for w in words:
        assert w.lower() in errors[0].lower(), f"error line does not name '{w}': {errors[0]}"
    print(f"  rc {p.returncode}: {errors[0][:250]}")
    return errors[0]


def full_auto_config(d, evaluator):
    """full_auto on the MLP scored by an evaluator_command: the command runs after the folded model is written."""
    cfg = base_config(copy_in(d, MLP), copy_in(d, CALIB_FLAT), mode="full_auto",
                      iterative_quant_parameters={"metric": "evaluator_command", "evaluator_command": evaluator})
    cfg["dataset"]["test_path"] = copy_in(d, TEST_FLAT)
    return write_config(d, cfg)


def default_config(d, model=MLP, calib=CALIB_FLAT, mode="default"):
    return write_config(d, base_config(copy_in(d, model), copy_in(d, calib), mode=mode))


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


# ---------------------------------------------------------------------------------------------- signals
def interrupted(sig):
    """The evaluator command signals onnxquant (pid from a file the test writes) while the folded model and the
    candidate model are in the folder, then sleeps: onnxquant rolls back, says so in one line (also in the log),
    exits 128 + sig, and the command is stopped with it."""
    d = tmpdir()
    out = os.path.join(d, "out")
    notes = write(os.path.join(out, "notes.txt"), "a file of the user's, kept\n")
    pidfile, childfile = os.path.join(d, "pid"), os.path.join(d, "child")
    script = write(os.path.join(d, "ev.sh"), f"echo $$ > {childfile}\n"
                   f"while [ ! -s {pidfile} ]; do sleep 0.01; done\n"
                   f"kill -{sig.name[3:]} $(cat {pidfile})\nsleep 30\necho 50\n")
    cpath = full_auto_config(d, f"sh {script} {{model}}")
    inputs = {p: sha(p) for p in (cpath, os.path.join(d, "digits_mlp.onnx"), notes)}
    t0 = time.time()
    p = subprocess.Popen([BIN, "--config", cpath, "--output-dir", out], cwd=d, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    write(pidfile, f"{p.pid}\n")
    stdout, stderr = p.communicate(timeout=120)
    p.stderr = stderr
    err = error_line(p, 128 + sig, [f"interrupted by {sig.name}", "nothing written", out, "onnxquant.log is kept"])
    assert time.time() - t0 < 25, "the run waited for the evaluator command"
    assert listing(out) == {"notes.txt", "onnxquant.log"}, sorted(listing(out))
    log = open(os.path.join(out, "onnxquant.log")).read()
    assert "Step 1" in log and err[len("[error] "):] in log, log[-2000:]  # flushed line by line, error line too
    assert all(sha(f) == h for f, h in inputs.items())
    child = int(open(childfile).read())
    for _ in range(100):
        if gone(child):
            break
        time.sleep(0.02)
    assert gone(child), f"the evaluator command ({child}) was not stopped with the run"


def test_sigint_rolls_back():
    interrupted(signal.SIGINT)


def test_sigterm_rolls_back():
    interrupted(signal.SIGTERM)


def test_sighup_rolls_back():
    interrupted(signal.SIGHUP)


def test_closed_stderr_does_not_stop_the_run():
    """`onnxquant ... 2>&1 | head -1`: the reader is gone before the first line; SIGPIPE used to kill the run."""
    d = tmpdir()
    out = os.path.join(d, "out")
    cpath = default_config(d)
    r, w = os.pipe()
    os.close(r)
    p = subprocess.Popen([BIN, "--config", cpath, "--output-dir", out], cwd=d, stdout=w, stderr=w)
    os.close(w)
    assert p.wait(timeout=120) == 0, f"rc {p.returncode}"
    assert "Outputs are in" in open(os.path.join(out, "onnxquant.log")).read()
    assert listing(out) == {"onnxquant.log", "quantized_models", "quantized_models/digits_mlp_quant_qdq_pc.onnx"}


# ---------------------------------------------------------------------------------------------- concurrent runs
def full_auto_waiting(d, out, check=""):
    """Starts run A, full_auto into `out` scored by an evaluator command that waits for the file `go`, then runs the
    shell lines `check` (its model is "$1") and prints 50. Returns (A, go) once A is in the command."""
    started, go = os.path.join(d, "started"), os.path.join(d, "go")
    script = write(os.path.join(d, "ev.sh"), f"touch {started}\nwhile [ ! -e {go} ]; do sleep 0.02; done\n{check}"
                   "echo 50\n")
    a = subprocess.Popen([BIN, "--config", full_auto_config(d, f"sh {script} {{model}}"), "--output-dir", out], cwd=d,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(3000):
        if os.path.exists(started) or a.poll() is not None:
            break
        time.sleep(0.02)
    if not os.path.exists(started):
        write(go, "")
        raise AssertionError(a.stderr.read() if a.poll() is not None else "A never reached its evaluator")
    return a, go


def test_second_run_into_the_folder_is_refused():
    """Run A (full_auto) waits in its evaluator command; run B into the same folder is refused naming the folder
    and A's pid, and changes nothing there (A's log is not truncated). A then completes; a third run works."""
    d = tmpdir()
    out = os.path.join(d, "out")
    a, go = full_auto_waiting(d, out)
    try:
        before = {f: sha(os.path.join(out, f)) for f in listing(out) if os.path.isfile(os.path.join(out, f))}
        b_cfg = write_config(d, base_config(os.path.join(d, "digits_mlp.onnx"), os.path.join(d, "digits_calib_flat.npz")),
                             "b.yaml")
        b = run(d, ["--config", b_cfg, "--output-dir", out])
        error_line(b, 1, [out, "in use by another onnxquant run", f"pid {a.pid}"])
        after = {f: sha(os.path.join(out, f)) for f in listing(out) if os.path.isfile(os.path.join(out, f))}
        assert after == before, (sorted(before), sorted(after))
    finally:
        write(go, "")
    _, a_err = a.communicate(timeout=300)
    assert a.returncode == 0, a_err[-3000:]
    assert ".onnxquant.lock" not in listing(out), sorted(listing(out))
    c = run(d, ["--config", os.path.join(d, "b.yaml"), "--output-dir", out])
    assert c.returncode == 0, c.stderr[-3000:]
    assert ".onnxquant.lock" not in listing(out)


def test_failed_run_removes_only_its_own_files():
    """While a full_auto run is in its evaluator command, another process puts a file in the output folder and
    replaces the run's folded model with its own; the command then fails. The rollback removes the run's files
    only: the other file and the replacement stay (the snapshot rollback used to remove everything new)."""
    d = tmpdir()
    out = os.path.join(d, "out")
    folded = os.path.join(out, "digits_mlp_folded.onnx")
    script = write(os.path.join(d, "ev.sh"), f"echo theirs > {out}/other.txt\n"
                   f"echo theirs > {folded}.new && mv {folded}.new {folded}\nexit 3\n")
    p = run(d, ["--config", full_auto_config(d, f"sh {script}"), "--output-dir", out])
    err = error_line(p, 1, ["evaluator_command", "exited with 3"])
    assert listing(out) == {"onnxquant.log", "other.txt", "digits_mlp_folded.onnx"}, sorted(listing(out))
    assert open(folded).read() == "theirs\n" and open(os.path.join(out, "other.txt")).read() == "theirs\n"
    assert "Removed " in p.stderr and ".candidate_float.onnx" in p.stderr, p.stderr[-2000:]
    assert err[len("[error] "):] in open(os.path.join(out, "onnxquant.log")).read()


def test_stale_temporaries_of_a_killed_run_removed():
    """NAME.tmp-XXXXXX files of onnxquant's outputs (and .candidate_*.onnx) left by a killed run are removed by the
    next run into the folder, which holds the folder lock; files that only look alike are kept."""
    d = tmpdir()
    out = os.path.join(d, "out")
    ours = ["digits_mlp_folded.onnx.tmp-Ab12Cd", "inspection.html.tmp-zzzzzz", ".onnxquant.tmp-a1B2c3",
            ".candidate_float.onnx", "quantized_models/digits_mlp_quant_qdq_pc.onnx.tmp-XyZ987",
            "quantized_models/m.onnx.data.tmp-000000"]
    theirs = ["data.bin.tmp-123456", "m.onnx.tmp-12345", "m.onnx.tmp-1234567", "notes.txt",
              "quantized_models/keep.onnx"]
    for f in ours + theirs:
        write(os.path.join(out, f), "x")
    p = run(d, ["--config", default_config(d), "--output-dir", out])
    assert p.returncode == 0, p.stderr[-3000:]
    left = listing(out)
    assert not [f for f in ours if f in left], sorted(left)
    assert all(f in left for f in theirs), sorted(left)
    assert p.stderr.count("left by an earlier onnxquant run that was killed") == len(ours), p.stderr[-3000:]


# ---------------------------------------------------------------------------------------------- ulimit -f
def file_size_limit(nbytes):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


def test_file_size_limit_model():
    """The quantized MobileNet (105 KB) over `ulimit -f` 32 KiB: EFBIG is an error line naming the file, the temp
    file is removed, the log (under the limit) holds the error line. SIGXFSZ used to kill the run (rc 153)."""
    d = tmpdir()
    out = os.path.join(d, "out")
    cpath = default_config(d, MOBILENET, os.path.join(TESTDATA, "digits_calib.npz"))
    p = run(d, ["--config", cpath, "--output-dir", out], preexec_fn=file_size_limit(32 << 10))
    err = error_line(p, 1, ["digits_mobilenet_quant_qdq_pc.onnx", "File too large"])
    assert listing(out) == {"onnxquant.log"}, sorted(listing(out))
    assert err[len("[error] "):] in open(os.path.join(out, "onnxquant.log")).read()


def chain_model(path, k=100):
    """k MatMuls by 1x1 weights: a small quantized model, long inspection reports (about 1 KB per layer)."""
    inits = [numpy_helper.from_array(np.array([[1 + 0.01 * i]], np.float32), f"w{i}") for i in range(k)]
    nodes = [helper.make_node("MatMul", ["input" if i == 0 else f"t{i - 1}", f"w{i}"],
                              ["output" if i == k - 1 else f"t{i}"], name=f"mm{i}") for i in range(k)]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("input", TP.FLOAT, ["N", 1])],
                          [helper.make_tensor_value_info("output", TP.FLOAT, ["N", 1])], inits)
    return save_graph(g, path)


def test_file_size_limit_inspection_reports():
    """Inspection: the model fits under the limit, a report does not: the model written before is removed."""
    d = tmpdir()
    out = os.path.join(d, "out")
    calib = os.path.join(d, "c.npz")
    np.savez(calib, x=np.random.default_rng(0).standard_normal((20, 1)).astype(np.float32))
    cpath = write_config(d, base_config(chain_model(os.path.join(d, "chain.onnx")), calib, mode="inspection"))
    ok = run(d, ["--config", cpath, "--output-dir", os.path.join(d, "sizes")])
    assert ok.returncode == 0, ok.stderr[-3000:]
    sizes = {f: os.path.getsize(os.path.join(d, "sizes", f)) for f in listing(os.path.join(d, "sizes"))
             if os.path.isfile(os.path.join(d, "sizes", f))}
    model = sizes["quantized_models/chain_quant_qdq_pc.onnx"]
    report = max(sizes[f] for f in ("inspection.json", "inspection.csv", "inspection.html"))
    assert report > model + 4096 and sizes["onnxquant.log"] < model, sizes
    p = run(d, ["--config", cpath, "--output-dir", out], preexec_fn=file_size_limit(model + 2048))
    error_line(p, 1, ["inspection.", "File too large"])
    assert listing(out) == {"onnxquant.log"}, sorted(listing(out))


def test_file_size_limit_compressed_npz():
    """A deflated .npz is inflated into an unlinked temporary file: over `ulimit -f` that write fails with EFBIG
    (an error naming the archive), not SIGXFSZ."""
    d = tmpdir()
    out = os.path.join(d, "out")
    calib = os.path.join(d, "calib_z.npz")
    np.savez_compressed(calib, x=np.zeros((2000, 64), np.float32))  # 512 KB inflated, ~1 KB deflated
    cfg = base_config(copy_in(d, MLP), calib)
    p = run(d, ["--config", write_config(d, cfg), "--output-dir", out], preexec_fn=file_size_limit(64 << 10))
    error_line(p, 1, ["calib_z.npz", "File too large"])
    assert listing(out) == {"onnxquant.log"}, sorted(listing(out))


# ---------------------------------------------------------------------------------------------- threads
def thread_limit(d, extra):
    """preexec_fn letting the child start `extra` threads at most (None: not possible here). As root: an unused
    uid with RLIMIT_NPROC = 1 + extra (root ignores RLIMIT_NPROC). Otherwise, extra == 0 only: RLIMIT_STACK 64 GiB
    (a thread's default stack) over RLIMIT_AS 32 GiB, so no thread with a default stack fits."""
    if os.geteuid() == 0:
        return unprivileged(d, nproc=1 + extra)
    if extra:
        return None

    def stacks():
        resource.setrlimit(resource.RLIMIT_STACK, (64 << 30, resource.RLIM_INFINITY))
        resource.setrlimit(resource.RLIMIT_AS, (32 << 30, 32 << 30))
    return stacks


def test_no_thread_can_be_started():
    """Not even the data loader's one thread: one error line naming it and the limit (it used to abort:
    std::terminate from the Loader's constructor, SIGABRT)."""
    d = tmpdir()
    out = os.path.join(d, "out")
    cpath = default_config(d)
    p = run(d, ["--config", cpath, "--output-dir", out, "--threads", "1"], preexec_fn=thread_limit(d, 0))
    err = error_line(p, 1, ["cannot start data loading thread 1 of 1"])
    assert "ulimit" in err and "--threads 1" not in err, err  # --threads 1 is what it runs with
    assert listing(out) == {"onnxquant.log"}, sorted(listing(out))


def test_thread_limits_from_1_to_8_threads():
    """With 2 threads, every limit from 1 to 8 threads ends in success or in one error line naming what could not be
    started (a data loading, calibration or OpenMP thread), with nothing left but the log: never a crash."""
    d = tmpdir()
    cpath = default_config(d)
    if thread_limit(d, 1) is None:
        print("  skipped: the per-count limits need root (the child runs as an unused uid)")
        return
    seen = []
    for extra in range(1, 9):
        out = os.path.join(d, f"out{extra}")
        p = run(d, ["--config", cpath, "--output-dir", out, "--threads", "2"], preexec_fn=thread_limit(d, extra))
        if p.returncode == 0:
            seen.append("ok")
            continue
        err = error_line(p, 1)
        assert "cannot start" in err or "Thread creation failed" in p.stderr, err
        assert listing(out) == {"onnxquant.log"}, sorted(listing(out))
        seen.append(err)
    print("  " + " | ".join(s[:90] for s in seen))
    assert seen[-1] == "ok", seen
    assert any("data loading thread" in s for s in seen) and any("calibration worker thread" in s for s in seen), seen


def test_openmp_thread_refused_is_one_error_line():
    """`run` splits its inference over 2 threads with OpenMP; libgomp ends the process with exit(1) when it cannot
    start one ("libgomp: Thread creation failed"). Outside onnxquant's code, but the exit still rolls back and
    ends with one error line saying what happened (it used to end with libgomp's line alone)."""
    d = tmpdir()
    model = copy_in(d, MOBILENET)
    np.save(os.path.join(d, "x.npy"), np.zeros((4, 1, 8, 8), np.float32))
    limit = thread_limit(d, 1) or thread_limit(d, 0)  # the signal thread only (its stack is small)
    p = run(d, ["run", model, "--input", os.path.join(d, "x.npy"), "--output-dir", os.path.join(d, "out"),
                "--threads", "2"], preexec_fn=limit)
    error_line(p, 1, ["ended by a library", "Thread creation failed", "try --threads 1"])
    assert "libgomp: Thread creation failed" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(d, "out"))


if __name__ == "__main__":
    run_module_tests(globals())
