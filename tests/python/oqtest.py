"""Shared helpers for the Python oracle tests (run by ctest with the project's .venv)."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

SRC = os.environ.get("OQ_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("OQ_BIN", os.path.join(SRC, "build", "onnxquant"))
SHARED = os.environ.get("OQ_SHARED_DIR", os.path.join(SRC, "..", "shared"))
TESTDATA = os.path.join(SRC, "testdata")


def run_oq(args, check=True, cwd=None, timeout=None):
    """Runs the onnxquant binary; returns CompletedProcess (stdout/stderr as text). With `timeout` (seconds) a run
    that takes longer is killed and fails the test."""
    try:
        p = subprocess.run([BIN] + list(args), capture_output=True, text=True, cwd=cwd or SRC, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"onnxquant {' '.join(args)[:300]} did not finish within {timeout} s") from None
    if check and p.returncode != 0:
        raise AssertionError(f"onnxquant {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p


_TMPDIRS = []
_FAILED = []


def tmpdir(prefix="oqtest_"):
    """A fresh temporary directory, removed with everything in it when the test process exits — unless a test
    failed or OQ_KEEP_TMP=1 is set; then the kept directories are listed on stderr."""
    d = tempfile.mkdtemp(prefix=prefix)
    _TMPDIRS.append(d)
    return d


def _remove_tmpdirs():
    if not _TMPDIRS:
        return
    if _FAILED or os.environ.get("OQ_KEEP_TMP") == "1":
        print("kept temporary directories: " + " ".join(_TMPDIRS), file=sys.stderr)
        return
    for d in _TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_remove_tmpdirs)


def exit_with(rc):
    """sys.exit(rc) for test scripts with their own main loop; a non-zero rc keeps the temporary directories."""
    if rc:
        _FAILED.append("main")
    sys.exit(rc)


class Runner:
    """Collects test functions; prints 'N passed, N failed' and exits non-zero on any failure."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, *args):
        try:
            fn(*args)
            self.passed += 1
            print(f"PASS {name}", flush=True)
        except Exception:  # noqa: BLE001 - report every failure
            self.failed += 1
            _FAILED.append(name)
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed or self.passed == 0 else 0)


def run_module_tests(namespace):
    """Runs every callable named test_* of a module's globals() in name order, then exits as Runner.finish."""
    r = Runner()
    for name, fn in sorted(namespace.items()):
        if name.startswith("test_") and callable(fn):
            r.run(name, fn)
    r.finish()


def save_graph(graph, path, opset=13, ir_version=8):
    """Saves an onnx.helper graph as a model importing the default domain at `opset`; returns the path."""
    import onnx
    from onnx import helper
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir_version
    onnx.save(m, path)
    return path


def ort_session(path, optimize=False, log_level=3):
    """An onnxruntime CPU session; optimize False: graph optimizations disabled (the nodes run as written)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = log_level
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_top1(model_path, npz_path):
    """Top-1 (percent) of a model on an .npz (x, y), computed by onnxruntime with graph optimizations disabled
    (QDQ graphs then run as the ONNX spec defines them)."""
    import numpy as np
    import onnxruntime as ort
    d = np.load(npz_path)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    out = s.run(None, {s.get_inputs()[0].name: d["x"]})[0]
    return 100.0 * float(np.mean(out.reshape(len(out), -1).argmax(1) == d["y"]))


def yaml_value(v):
    """A Python value as YAML flow text (the configs the tests write)."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(yaml_value(i) for i in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(i)}" for k, i in v.items()) + "}"
    return str(v)


def default_mode_config(model, calib, per_channel=True, opset=13, act="Int8", method="MinMax", params=None,
                        extra=None):
    """A default-mode config (the settings the ORT parity tests give quantize_static): Int8 symmetric weights,
    asymmetric activations of type `act`; `params` adds onnx_quant_parameters keys, `extra` onnx_extra_options."""
    p = "".join(f", {k}: {yaml_value(v)}" for k, v in (params or {}).items() if v)
    e = "".join(f", {k}: {yaml_value(v)}" for k, v in (extra or {}).items())
    return f"""model: {{model_path: {model}}}
dataset: {{quantization_path: {calib}}}
preprocessing: {{rescaling: {{scale: 1, offset: 0}}}}
quantization:
  granularity: {'per_channel' if per_channel else 'per_tensor'}
  target_opset: {opset}
  operating_mode: default
  onnx_quant_parameters: {{weightType: Int8, activType: {act}, calibrate_method: {method}{p}}}
  onnx_extra_options: {{WeightSymmetric: True, ActivationSymmetric: False{e}}}
"""


def assert_same_output(name, got, want, exact, oracle="ORT"):
    """A kernel's output against the oracle's: same shape and dtype, equal (exact) or within 1e-5."""
    import numpy as np
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {oracle} {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {oracle} {want.dtype}"
    if exact:
        assert np.array_equal(got, want), f"{name}: differs from {oracle}\n{got.tolist()}\n{want.tolist()}"
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)


def sanitized_binary():
    """True when the onnxquant under test is an ASan build (`make test-sanitize`): it reserves terabytes of address
    space, so a test that limits RLIMIT_AS (ulimit -v) skips that part."""
    with open(BIN, "rb") as f:
        return b"__asan_init" in f.read()


# Options under which a QDQ model keeps every float value of the model it quantized: weights and the other quantized
# constants stay float, each followed by its own QuantizeLinear -> DequantizeLinear (AddQDQPairToWeight), biases stay
# float (QuantizeBias False) and Relu / Clip stay (QDQKeepRemovableActivations). strip_qdq then recovers that float
# model, e.g. the one SmoothQuant rewrote (the rewrite itself is not written anywhere).
FLOAT_VALUES_OPTS = ["quantization.onnx_extra_options.AddQDQPairToWeight=True",
                     "quantization.onnx_extra_options.QuantizeBias=False",
                     "quantization.onnx_extra_options.QDQKeepRemovableActivations=True"]


def strip_qdq(model):
    """The float model under a QDQ model (a path or an onnx.ModelProto, left as it is): each DequantizeLinear that
    reads a QuantizeLinear goes with it, its readers reading the QuantizeLinear's input instead (where it is a graph
    output, that input takes its name). With FLOAT_VALUES_OPTS that is the float model that was quantized, value for value, with its
    names; a DequantizeLinear of an integer constant is left as it is."""
    import onnx
    from onnx import helper
    m = onnx.load(model) if isinstance(model, str) else onnx.ModelProto.FromString(model.SerializeToString())
    q_in = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear"}
    alias = {n.output[0]: q_in[n.input[0]] for n in m.graph.node
             if n.op_type == "DequantizeLinear" and n.input[0] in q_in}
    graph_inputs = {i.name for i in m.graph.input}
    rename = {}  # a graph output's float tensor -> the output's name
    for o in m.graph.output:
        if o.name in alias and alias[o.name] not in graph_inputs:
            rename[alias.pop(o.name)] = o.name
    nodes = []
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear" or (n.op_type == "DequantizeLinear" and n.input[0] in q_in):
            if n.output[0] in alias and n.output[0] in {o.name for o in m.graph.output}:
                nodes.append(helper.make_node("Identity", [alias[n.output[0]]], [n.output[0]], name=n.name))
            continue
        for i, t in enumerate(n.input):
            n.input[i] = rename.get(alias.get(t, t), alias.get(t, t))
        for i, t in enumerate(n.output):
            n.output[i] = rename.get(t, t)
        nodes.append(n)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m


def mse_grid_scales(w, axis, qmin, qmax):
    """`WeightQuantizer: mse` recomputed with numpy (the tests' independent reference): per channel along `axis`,
    the symmetric scales of [min·r, max·r] for r = 1, 0.99, ..., 0.05 (ORT's compute_scale_zp in float32), keeping
    the first r with the smallest squared error of the weight, its integers clipped to [qmin, qmax]."""
    import numpy as np
    cols = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    out = []
    for c in cols:
        best, best_s = np.inf, None
        for step in range(96):
            r = 1.0 - 0.95 * step / 95
            lo, hi = min(float(np.float32(float(c.min()) * r)), 0.0), max(float(np.float32(float(c.max()) * r)), 0.0)
            s = np.float32(2 * max(-lo, hi) / (qmax - qmin))
            q = np.clip(np.rint(c / s), qmin, qmax)
            e = float(((c.astype(np.float64) - (q * s).astype(np.float32)) ** 2).sum())
            if e < best:
                best, best_s = e, s
        out.append(best_s)
    return np.array(out, np.float32)
