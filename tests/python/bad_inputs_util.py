"""Shared helpers of the bad-input catalogue (test_bad_inputs.py): base config, the failure check (exit code,
one error line, nothing left behind, inputs untouched) and the paths of the test inputs."""
import hashlib
import json
import os
import resource
import shutil

import oqtest
from oqtest import SRC, TESTDATA, run_oq

oqtest.BIN = BIN = os.path.abspath(oqtest.BIN)  # the cases run in their temp dirs

BAD_DIR = os.path.join(SRC, "tests", "bad_inputs")
MLP = os.path.join(TESTDATA, "digits_mlp.onnx")
MOBILENET = os.path.join(TESTDATA, "digits_mobilenet.onnx")
MOBILENET_BN = os.path.join(TESTDATA, "digits_mobilenet_bn.onnx")
CALIB_FLAT = os.path.join(TESTDATA, "digits_calib_flat.npz")
FORBIDDEN = ("terminate called", "Traceback", "AddressSanitizer", "LeakSanitizer", "runtime error:", "Aborted",
             "Segmentation fault", "core dumped", "what():", "#0 0x", "SUMMARY:")
LOG_PREFIXES = ("[info]", "[warning]", "[debug]", "[trace]")
UNUSED_UID = 54329  # no process runs as it: RLIMIT_NPROC counts the child alone


# ---------------------------------------------------------------------------------------------- helpers
def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def listing(root):
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def base_config(model, calib=CALIB_FLAT, mode="default", **quant):
    """A complete, valid config (JSON is YAML) for the MLP, to be broken by each case."""
    q = {
        "quantizer": "onnx_quantizer",
        "quantization_type": "PTQ",
        "granularity": "per_channel",
        "target_opset": 21,
        "export_dir": "quantized_models",
        "operating_mode": mode,
        "onnx_quant_parameters": {"weightType": "Int8", "activType": "Int8", "calibrate_method": "MinMax"},
        "onnx_extra_options": {"WeightSymmetric": True},
    }
    q.update(quant)
    return {
        "operation_mode": "quantization",
        "model": {"model_path": model},
        "dataset": {"quantization_path": calib},
        # color_mode is an image-folder setting (the digits models take one channel); with arrays it would be
        # named in a warning
        "preprocessing": {"rescaling": {"scale": 1, "offset": 0},
                          **({} if str(calib).lower().endswith((".npz", ".npy")) else {"color_mode": "grayscale"})},
        "quantization": q,
    }


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def write_config(d, cfg, name="user_config.yaml"):
    return write(os.path.join(d, name), cfg if isinstance(cfg, str) else json.dumps(cfg, indent=1))


def copy_in(d, src, name=None):
    dst = os.path.join(d, name or os.path.basename(src))
    shutil.copyfile(src, dst)
    return dst


def unprivileged(d, nproc=None):
    """preexec_fn running onnxquant as a user to whom file permissions apply (root ignores them, and RLIMIT_NPROC):
    as root, the unused uid, owning everything in d (call it once d is set up), running a copy of the binary put in
    d (a clone under /root is out of its reach; test_run_guard.run() takes it), with RLIMIT_NPROC = nproc when
    given. Not root: None (the child runs as this user, to whom permissions apply already)."""
    if os.geteuid() != 0:
        return None
    if not os.path.exists(os.path.join(d, "onnxquant")):
        shutil.copy2(BIN, os.path.join(d, "onnxquant"))
    for root, dirs, files in os.walk(d):
        for n in [root] + [os.path.join(root, f) for f in dirs + files]:
            os.chown(n, UNUSED_UID, UNUSED_UID, follow_symlinks=False)

    def drop():
        os.setgroups([])
        os.setgid(UNUSED_UID)
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        os.setuid(UNUSED_UID)
    return drop


def check_failure(d, args, code, words, inputs, out_dir=None, allowed_new=None, timeout=None):
    """Runs onnxquant in d and checks the exit code, the one-line error, the folder and the inputs."""
    before = listing(d)
    sums = {p: sha(p) for p in inputs}
    p = run_oq(args, check=False, cwd=d, timeout=timeout)
    err = p.stderr
    msg = f"onnxquant {' '.join(args)} -> rc {p.returncode}\nstderr:\n{err[-3000:]}\nstdout:\n{p.stdout[-1000:]}"
    assert p.returncode == code, f"expected exit code {code}: {msg}"
    for w in FORBIDDEN:
        assert w not in err and w not in p.stdout, f"'{w}' in the output: {msg}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("[error]")]
    assert len(errors) == 1, f"expected exactly one [error] line: {msg}"
    # Other lines are log lines ([info]/[warning]) or ST-layout report lines (inspection tables), never a second
    # error in another form.
    others = [ln for ln in lines if not ln.startswith("[error]") and not ln.startswith(LOG_PREFIXES)
              and any(w in ln.lower() for w in ("error", "exception", "abort", "fatal"))]
    assert not others, f"unexpected stderr lines {others}: {msg}"
    for w in words:
        assert w.lower() in errors[0].lower(), f"error line does not name '{w}': {errors[0]}"
    new = listing(d) - before
    allowed = set(allowed_new or ())
    if out_dir:
        rel = os.path.relpath(out_dir, d)
        allowed |= {rel, os.path.join(rel, "onnxquant.log")}
    assert new <= allowed, f"left behind after the error: {sorted(new - allowed)}"
    for f, h in sums.items():
        assert os.path.exists(f) and sha(f) == h, f"input {f} was modified"
    print(f"  rc {p.returncode}: {errors[0][:300]}")
    return errors[0]


def main_job(d, cfg, code, words, extra_inputs=(), extra_args=(), out_name="out", timeout=None):
    """Runs the main job on config cfg (a dict or raw YAML text) written in d."""
    cpath = write_config(d, cfg)
    out = os.path.join(d, out_name)
    inputs = [cpath] + [p for p in extra_inputs if os.path.isfile(p)]
    if isinstance(cfg, dict):
        for p in (cfg["model"].get("model_path"), cfg.get("dataset", {}).get("quantization_path")):
            if p and os.path.isfile(p):
                inputs.append(p)
    return check_failure(d, ["--config", cpath, "--output-dir", out] + list(extra_args), code, words, inputs, out,
                         timeout=timeout)

