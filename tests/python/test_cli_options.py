"""Command-line and config behaviours of the fifteenth QA report that end in a result, not an error (the refused
cases are in the bad-input catalogue, tests/python/bad_inputs_cli.py):

  - `eval --reference R` without `--metric` scores agreement with R (labelled data or not), checked against the
    argmax of both models in onnxruntime;
  - `--threads` above the machine's cores is lowered to the core count with a warning, and the model is the one
    `--threads 1` writes (byte for byte);
  - a config holding a YAML alias bomb under an ignored key loads at once and quantizes as the same config without
    it;
  - an override of a key whose value the file shares through an alias changes that key only (checked on the
    calibration data the log names and on the evaluation score, against onnxruntime);
  - `-v` / `--verbose` before a subcommand (`onnxquant -v info M`) turns on debug lines; it used to fail with
    "--config is required".
"""
import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bad_inputs_cli import alias_bomb  # noqa: E402
from oqtest import BIN, TESTDATA, Runner, ort_session, ort_top1, run_oq, tmpdir  # noqa: E402

MLP = os.path.join(TESTDATA, "digits_mlp.onnx")
CALIB = os.path.join(TESTDATA, "digits_calib_flat.npz")
TEST = os.path.join(TESTDATA, "digits_test_flat.npz")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def ort_argmax(model, x):
    s = ort_session(model)
    return s.run(None, {s.get_inputs()[0].name: x})[0].argmax(1)


def perturbed_mlp(d):
    """The MLP with noise on its first weight: a second model of the same input whose argmax differs on some
    samples."""
    m = onnx.load(MLP)
    rng = np.random.default_rng(5)
    for init in m.graph.initializer:
        if init.name == "weights.0":
            w = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array((w + rng.standard_normal(w.shape) * 0.6 * w.std()).astype(w.dtype),
                                                  init.name))
    p = os.path.join(d, "noisy.onnx")
    onnx.save(m, p)
    return p


def eval_score(args):
    p = run_oq(["eval", *args])
    m = re.fullmatch(r"(top1|agreement): ([0-9.]+)", p.stdout.strip())
    assert m, p.stdout
    return m.group(1), float(m.group(2))


def eval_reference_means_agreement():
    d = tmpdir()
    noisy = perturbed_mlp(d)
    x = np.load(TEST)["x"]
    want = 100.0 * float(np.mean(ort_argmax(noisy, x) == ort_argmax(MLP, x)))
    assert 50 < want < 100, want  # the two models differ, so agreement is not top1 nor 100 by accident
    unlabelled = os.path.join(d, "x.npz")
    np.savez(unlabelled, x=x)
    for data in (TEST, unlabelled):  # labels present or not: the reference decides
        metric, got = eval_score([noisy, "--data", data, "--reference", MLP])
        assert metric == "agreement", (data, metric)
        assert abs(got - want) < 0.006, (data, got, want)
    # --metric top1 alone still scores against the labels.
    metric, got = eval_score([noisy, "--data", TEST])
    assert metric == "top1" and abs(got - ort_top1(noisy, TEST)) < 0.006, (metric, got)


def config(d, model=MLP, calib=CALIB, extra=""):
    p = os.path.join(d, "user_config.yaml")
    with open(p, "w") as f:
        f.write(extra + f"model: {{model_path: {model}}}\ndataset: {{quantization_path: {calib}}}\n"
                "quantization: {granularity: per_channel, target_opset: 21}\n")
    return p


def quantized(out):
    q = os.path.join(out, "quantized_models", "digits_mlp_quant_qdq_pc.onnx")
    assert os.path.exists(q), os.listdir(out)
    return q


def threads_capped():
    d = tmpdir()
    cfg = config(d)
    run_oq(["--config", cfg, "--output-dir", os.path.join(d, "one"), "--threads", "1"])
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(d, "many"), "--threads", "100000"])
    cores = usable_cores()
    note = (f"--threads 100000: more than the {cores} core{'' if cores == 1 else 's'} this process may use "
            f"(CPU affinity, cgroup quota); using {cores}")
    assert note in p.stderr, p.stderr[-2000:]
    assert note in open(os.path.join(d, "many", "onnxquant.log")).read()
    assert sha(quantized(os.path.join(d, "one"))) == sha(quantized(os.path.join(d, "many")))


def usable_cores():
    """The CPUs of this process's affinity mask, fewer under a cgroup v2 CPU quota (cpu.max, rounded up)."""
    n = len(os.sched_getaffinity(0))
    try:
        rel = [l[3:].strip() for l in open("/proc/self/cgroup") if l.startswith("0::")][0]
    except (OSError, IndexError):
        return n
    parts = [p for p in rel.split("/") if p]
    for k in range(len(parts), -1, -1):
        try:
            quota, period = open(os.path.join("/sys/fs/cgroup", *parts[:k], "cpu.max")).read().split()
        except (OSError, ValueError):
            continue
        if quota != "max":
            n = min(n, -(-int(quota) // int(period)))
    return n


def threads_follow_affinity():
    """Under a one-CPU affinity mask (taskset -c), --threads 2 is more than the process may use: lowered to 1 with
    the note (hardware_concurrency() counted every CPU of the machine), and the model is the same."""
    d = tmpdir()
    cfg = config(d)
    cpu = min(os.sched_getaffinity(0))
    p = subprocess.run([BIN, "--config", cfg, "--output-dir", os.path.join(d, "pinned"), "--threads", "2"],
                       capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    assert p.returncode == 0, p.stderr[-2000:]
    note = "--threads 2: more than the 1 core this process may use (CPU affinity, cgroup quota); using 1"
    assert note in p.stderr, p.stderr[-2000:]
    run_oq(["--config", cfg, "--output-dir", os.path.join(d, "one"), "--threads", "1"])
    assert sha(quantized(os.path.join(d, "one"))) == sha(quantized(os.path.join(d, "pinned")))


def alias_bomb_loads_at_once():
    """11 levels: 9^11 paths; walking them took about 80 minutes. The timeout is generous; the run takes a second."""
    d = tmpdir()
    plain = config(d)
    run_oq(["--config", plain, "--output-dir", os.path.join(d, "plain"), "--threads", "1"])
    bomb = config(d, extra=alias_bomb(11))
    p = run_oq(["--config", bomb, "--output-dir", os.path.join(d, "bomb"), "--threads", "1"], timeout=120)
    for lv in range(11):
        assert f"[warning] a{lv}: ignored by onnxquant" in p.stderr, p.stderr[-2000:]
    assert sha(quantized(os.path.join(d, "plain"))) == sha(quantized(os.path.join(d, "bomb")))


def override_through_alias():
    """quantization_path and test_path share one node; overriding test_path must leave the calibration data alone."""
    d = tmpdir()
    p = os.path.join(d, "user_config.yaml")
    with open(p, "w") as f:
        f.write(f"operation_mode: chain_qe\nmodel: {{model_path: {MLP}}}\n"
                f"dataset: {{quantization_path: &d {CALIB}, test_path: *d}}\n"
                "quantization: {granularity: per_channel, target_opset: 21}\n")
    out = os.path.join(d, "out")
    r = run_oq(["--config", p, "--output-dir", out, "--threads", "1", f"dataset.test_path={TEST}"])
    log = r.stderr
    assert re.search(r"Calibration data: [^\n]*digits_calib_flat\.npz", log), log[-3000:]
    m = re.search(r"Evaluation of (\S+) on [^\n]*digits_test_flat\.npz[^\n]*top1: ([0-9.]+)", log)
    assert m, log[-3000:]
    # The model calibrated on the calibration set: the same bytes as a run without aliases or overrides.
    ref_out = os.path.join(d, "ref")
    run_oq(["--config", config(d), "--output-dir", ref_out, "--threads", "1"])
    assert sha(m.group(1)) == sha(quantized(ref_out))
    assert abs(float(m.group(2)) - ort_top1(m.group(1), TEST)) < 0.006


def verbose_before_a_subcommand():
    """-v / --verbose before info / run / eval: debug lines (it used to be read as the main job's flag: "--config is
    required", exit 2); the subcommand's result is the same as without it."""
    d = tmpdir()
    x = os.path.join(d, "x.npy")
    np.save(x, np.load(TEST)["x"][:2])
    plain = run_oq(["info", MLP]).stdout
    p = run_oq(["-v", "info", MLP], check=False)
    assert p.returncode == 0 and p.stdout == plain, (p.returncode, p.stderr)
    for flag in ("-v", "--verbose"):
        p = run_oq([flag, "run", MLP, "--input", x, "--output-dir", os.path.join(d, flag)], check=False)
        assert p.returncode == 0 and "[debug]" in p.stderr, (flag, p.returncode, p.stderr)
        ref = ort_session(MLP).run(None, {"input": np.load(x)})[0]
        np.testing.assert_allclose(np.load(os.path.join(d, flag, "logits.npy")), ref, rtol=1e-4, atol=1e-4)
    p = run_oq(["-v", "eval", MLP, "--data", TEST], check=False)
    assert p.returncode == 0 and "[debug]" in p.stderr, (p.returncode, p.stderr)
    assert abs(float(p.stdout.split(":")[1]) - ort_top1(MLP, TEST)) < 0.006, p.stdout
    assert "[debug]" not in run_oq(["eval", MLP, "--data", TEST]).stderr


if __name__ == "__main__":
    r = Runner()
    r.run("eval --reference means agreement, labels or not (vs onnxruntime)", eval_reference_means_agreement)
    r.run("--threads above the cores is lowered, same model", threads_capped)
    r.run("--threads above the affinity mask's CPUs is lowered", threads_follow_affinity)
    r.run("alias bomb under an ignored key loads at once, same model", alias_bomb_loads_at_once)
    r.run("an override through an alias changes one key", override_through_alias)
    r.run("-v / --verbose before a subcommand", verbose_before_a_subcommand)
    r.finish()
