"""Opset conversion against the ONNX backend node tests (/usr/share/libonnx-testdata/data/node, onnx 1.12):
every test model whose default-domain opset is in [7, 20] and that onnxruntime runs correctly as is
(outputs match the stored expected outputs) is converted to opset 21, 27 and 28 (the newest the converter
reaches: 21 -> 28 rewrites nothing, the schemas only gain types and defaulted attributes or define cases that were
invalid before; an integer ReduceLogSum / ReduceLogSumExp cannot cross 28 and is refused) by
tests/oq_preprocess_model, once alone and once after the pre-processing passes; each result must pass onnx.checker.check_model(full_check=True) and give the
expected outputs in onnxruntime (graph optimisations disabled). onnxruntime 1.32 has no kernel at 28 for some ops
(OneHot, QuantizeLinear, DequantizeLinear, Swish: LACKS_28): a model at 28 it refuses for that reason only is run
by onnx.reference instead (same comparison), or, where onnx.reference fails too, checked but not run (counted and
printed). A model the converter refuses must be one with a documented refusal
reason (listed below); any other refusal or mismatch fails.

Env: OQ_BUILD_DIR (built tree holding tests/oq_preprocess_model), OQ_SOURCE_DIR.
"""
import glob
import os
import subprocess
import sys
import traceback

import numpy as np
import onnx
import onnxruntime as ort
import oqtest
from onnx import numpy_helper

SRC = os.environ.get("OQ_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("OQ_BUILD_DIR", os.path.join(SRC, "build"))
TOOL = os.path.join(BUILD, "tests", "oq_preprocess_model")
NODE_DIR = "/usr/share/libonnx-testdata/data/node"
TMP = oqtest.tmpdir("oq_opset_backend_")
# Refusals that are expected (the converter names the node and the reason).
TARGETS = (21, 27, 28)
ALLOWED_REFUSALS = ("training", "spatial=0", "Scan-8", "non-constant scales", "experimental",
                    "version 28 takes float types only")
LACKS_28 = ("OneHot(28)", "QuantizeLinear(28)", "DequantizeLinear(28)", "Swish(")
not_run_28, by_reference_28 = [], []


def session(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def load_pbs(d, prefix):
    out = []
    for f in sorted(glob.glob(os.path.join(d, prefix + "_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3])):
        t = onnx.TensorProto()
        with open(f, "rb") as fh:
            t.ParseFromString(fh.read())
        out.append(numpy_helper.to_array(t))
    return out


def close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True)
    return np.array_equal(a, b)


def run_model(path, model, inputs):
    s = session(path)
    names = [i.name for i in s.get_inputs()]
    graph_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    feeds = {n: v for n, v in zip(graph_inputs, inputs) if n in names}
    return s.run(None, feeds)


def check(test_dir):
    """Returns 'skip:<why>', 'refused:<msg>' or 'ok'; raises AssertionError on a failure."""
    path = os.path.join(test_dir, "model.onnx")
    m = onnx.load(path)
    ops = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    if not ops or not 7 <= ops[0] <= 20:
        return "skip:opset"
    if any(not i.type.HasField("tensor_type") for i in list(m.graph.input) + list(m.graph.output)):
        return "skip:non-tensor"
    data = os.path.join(test_dir, "test_data_set_0")
    inputs, expected = load_pbs(data, "input"), load_pbs(data, "output")
    try:
        ref = run_model(path, m, inputs)
    except Exception:
        return "skip:ort-original"
    if len(ref) != len(expected) or not all(close(a, b) for a, b in zip(ref, expected)):
        return "skip:ort-mismatch"
    for target, tag, extra in ((t, tag, extra) for t in TARGETS
                               for tag, extra in (("converted", ["--no-preprocess"]), ("preprocessed+converted", []))):
        tag = f"{tag} to {target}"
        out = os.path.join(TMP, os.path.basename(test_dir) + "." + tag.replace(" ", "_") + ".onnx")
        r = subprocess.run([TOOL, path, out, "--opset", str(target), *extra], capture_output=True, text=True)
        if r.returncode != 0:
            msg = r.stderr.strip()
            assert "cannot convert" in msg and any(k in msg for k in ALLOWED_REFUSALS), f"{tag}: tool failed: {msg}"
            return "refused:" + msg
        conv = onnx.load(out)
        onnx.checker.check_model(conv, full_check=True)
        assert [o.version for o in conv.opset_import if o.domain in ("", "ai.onnx")] == [target], f"{tag}: opset"
        ir = max(m.ir_version, onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", target)]))
        assert conv.ir_version == ir, f"{tag}: IR version {conv.ir_version}, expected {ir}"
        try:
            got = run_model(out, conv, inputs)
        except Exception as e:
            if not (target == 28 and "Could not find an implementation" in str(e) and any(k in str(e) for k in LACKS_28)):
                raise
            try:  # onnx.reference instead
                from onnx.reference import ReferenceEvaluator
                ref = ReferenceEvaluator(conv)
                feeds = {i.name: v for i, v in zip([i for i in conv.graph.input
                                                    if i.name not in {t.name for t in conv.graph.initializer}], inputs)}
                got = ref.run(None, feeds)
                by_reference_28.append(f"{os.path.basename(test_dir)} ({tag})")
            except Exception as e2:
                not_run_28.append(f"{os.path.basename(test_dir)} ({tag}: {str(e2).splitlines()[0][:80]})")
                continue
        assert len(got) == len(expected), f"{tag}: {len(got)} outputs vs {len(expected)}"
        for k, (a, b) in enumerate(zip(got, expected)):
            assert close(a, b), f"{tag}: output {k} differs from the expected output"
    return "ok"


def main():
    assert os.path.exists(TOOL), f"{TOOL} not built"
    tests = sorted(d for d in glob.glob(os.path.join(NODE_DIR, "*")) if os.path.isdir(d))
    assert tests, f"no backend node tests under {NODE_DIR}"
    passed = failed = 0
    skipped = {}
    for d in tests:
        name = os.path.basename(d)
        try:
            res = check(d)
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(limit=1)
            continue
        if res.startswith("skip:"):
            skipped[res] = skipped.get(res, 0) + 1
            continue
        passed += 1
        if res.startswith("refused:"):
            print(f"ok   {name} (refused as expected: {res[8:]})")
    print(f"skipped: {skipped}")
    print(f"run by onnx.reference at 28 (onnxruntime 1.32 lacks a kernel at 28): {len(by_reference_28)}: "
          f"{', '.join(by_reference_28)}")
    print(f"not run at 28 (neither runs it): {len(not_run_28)}: {', '.join(not_run_28)}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    oqtest.exit_with(main())
