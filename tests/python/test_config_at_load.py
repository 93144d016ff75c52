"""Config checks of the sixteenth QA report: what needs only the config is refused when it is loaded, before the
output folder or the log exists, in one line naming the key path, the value and its file:line (a value from a
command-line override has no line):

  - an operator type onnxquant does not run (op_types_to_quantize, OpTypesToExcludeOutputQuantization);
  - a 4- or 16-bit type with target_opset below 21, per-channel quantization below 13; full_auto with target_opset
    below 21 (the documented default is 17), with other than Int8 types, or without an evaluation set;
    operation_mode evaluation without one;
  - booleans spelt y / n / Y / N (PyYAML and Hydra, which ST's flow uses, read them as strings) or quoted;
  - a weights/activations_tensor_override entry that is a name alone or a name with null, and a key given twice in
    an override's mapping set on the command line;
  - dataset.class_names listing a class twice, with .npz data too.

And what ends in a result: model.input_shape with array data is named in the "applies to image folders only"
warning (one key: "applies"), and the full_auto example of docs/config.md runs as written.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oqtest import SRC, TESTDATA, run_module_tests, run_oq, tmpdir  # noqa: E402

MLP = os.path.join(TESTDATA, "digits_mlp.onnx")
CALIB = os.path.join(TESTDATA, "digits_calib_flat.npz")
TEST = os.path.join(TESTDATA, "digits_test_flat.npz")
EXTRA = "quantization.onnx_extra_options."
PARAMS = "quantization.onnx_quant_parameters."


def head(test=False):
    """Lines 1-5 (6 with a test set) of a config for the MLP; the quantization section's keys follow."""
    return (f"model:\n  model_path: {MLP}\ndataset:\n  quantization_path: {CALIB}\n"
            + (f"  test_path: {TEST}\n" if test else "") + "quantization:\n")


def refused(yaml_text, words, args=(), absent=()):
    """Exit code 2, one error line naming every word, nothing written: the output folder does not exist."""
    d = tmpdir()
    cfg = os.path.join(d, "c.yaml")
    with open(cfg, "w") as f:
        f.write(yaml_text)
    out = os.path.join(d, "out")
    p = run_oq(["--config", cfg, "--output-dir", out, *args], check=False)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, f"rc {p.returncode}:\n{p.stderr[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("[error]"), f"expected one error line:\n{p.stderr[-2000:]}"
    for w in words:
        assert w.replace("@", cfg) in lines[0], f"'{w}' not in: {lines[0]}"
    for w in absent:
        assert w not in lines[0], f"'{w}' in: {lines[0]}"
    assert not os.path.exists(out), f"output folder created for a config error: {os.listdir(out)}"
    return lines[0]


def test_unknown_operator_types_cite_the_line():
    refused(head() + "  onnx_quant_parameters:\n    op_types_to_quantize: [Conv, Frob]\n",  # line 7
            [PARAMS + "op_types_to_quantize[1]: 'Frob' is not an ONNX operator onnxquant runs", "(@:7)"])
    refused(head() + "  onnx_extra_options:\n    OpTypesToExcludeOutputQuantization:\n      - gemm\n",  # line 8
            [EXTRA + "OpTypesToExcludeOutputQuantization[0]: 'gemm'", "did you mean 'Gemm'?", "(@:8)"])
    refused(head(), [EXTRA + "QDQOpTypePerChannelSupportToAxis.Matmul: 'Matmul'"],
            args=[EXTRA + "QDQOpTypePerChannelSupportToAxis={Matmul: 0}"], absent=["c.yaml"])


def test_types_against_target_opset():
    body = "  target_opset: 19\n  onnx_quant_parameters:\n    weightType: Int4\n"  # lines 6, 8
    refused(head() + body, ["quantization.target_opset: Int4 quantization (" + PARAMS + "weightType)", "got 19",
                            "(@:6; " + PARAMS + "weightType: @:8)"])
    # The default target_opset has no line: the type's is cited, and the message says the value is the default.
    refused(head() + "  onnx_quant_parameters: {activType: QUInt16}\n",
            ["got 17 (the default)", "UseQDQContribOps", "(" + PARAMS + "activType: @:6)"])
    refused(head() + "  target_opset: 20\n", [EXTRA + "weights_tensor_override[0].quant_type", "got 20"],
            args=[EXTRA + "weights_tensor_override=[[weights.0, {quant_type: Int16}]]"])
    refused(head() + "  target_opset: 12\n", ["quantization.target_opset: per-channel quantization", "got 12",
                                              "opset 13", "(@:6)"])
    # An override's axis is per channel under per_tensor too (with a model below opset 13 the written model failed
    # its schema check, exit 1, after calibration).
    refused(head() + "  target_opset: 12\n  granularity: per_tensor\n",
            ["per-channel quantization (" + EXTRA + "weights_tensor_override[0].axis)", "got 12", "(@:6)"],
            args=[EXTRA + "weights_tensor_override=[[weights.0, {axis: 1}]]"])


def test_full_auto_rules():
    refused(head(True) + "  target_opset: 19\n  operating_mode: full_auto\n",  # lines 7, 8
            ["quantization.target_opset: full_auto writes Int4 weights", "got 19",
             "(@:7; quantization.operating_mode: @:8)"])
    refused(head(True) + "  operating_mode: full_auto\n", ["got 17 (the default)", "quantization.operating_mode: @:7"])
    refused(head(True) + "  target_opset: 21\n  operating_mode: full_auto\n  onnx_quant_parameters:\n"
            "    weightType: Int16\n",
            [PARAMS + "weightType: full_auto needs weightType Int8 and activType Int8", "got Int16", "(@:10;"])
    refused(head() + "  target_opset: 21\n  operating_mode: full_auto\n",
            ["dataset.test_path: full_auto scores its attempts on an evaluation set",
             "quantization.operating_mode: @:7"])
    refused(head() + "  target_opset: 21\n", ["dataset.test_path: operation_mode 'evaluation'"],
            args=["operation_mode=evaluation"], absent=["c.yaml"])


def test_booleans_only_as_pyyaml_reads_them():
    for v in ("n", "Y"):
        refused(head() + f"  onnx_extra_options:\n    WeightSymmetric: {v}\n",
                [EXTRA + f"WeightSymmetric: expected a boolean, got '{v}'", "write true or false", "(@:7)"])
    refused(head(), [EXTRA + "ActivationSymmetric: expected a boolean, got 'y'", "write true or false"],
            args=[EXTRA + "ActivationSymmetric=y"], absent=["c.yaml"])
    refused(head() + "  optimize: 'false'\n", ["quantization.optimize: expected a boolean, got the quoted string "
                                               "'false'", "(@:6)"])


def test_override_entries_are_pairs_with_a_map():
    refused(head() + "  onnx_extra_options:\n    weights_tensor_override:\n      - [weights.0]\n",  # line 8
            [EXTRA + "weights_tensor_override[0]: the entry of tensor 'weights.0' gives no settings", "(@:8)"])
    refused(head() + "  onnx_extra_options:\n    activations_tensor_override: [[a, {}], [b, null]]\n",
            [EXTRA + "activations_tensor_override[1]: the entry of tensor 'b' gives null", "(@:7)"])
    refused(head(), [EXTRA + "weights_tensor_override[0][1].quant_type: key given twice"],
            args=[EXTRA + "weights_tensor_override=[[weights.0, {quant_type: Int8, quant_type: Int16}]]"],
            absent=["c.yaml"])


def test_class_names_listed_twice_with_arrays():
    refused(f"model:\n  model_path: {MLP}\ndataset:\n  quantization_path: {CALIB}\n  class_names: [a, b, a]\n"
            "quantization:\n",
            ["dataset.class_names[2]: class 'a' is listed twice", "(@:5; dataset.class_names[0]: @:5)"])


def warnings_of(overrides):
    d = tmpdir()
    cfg = os.path.join(d, "c.yaml")
    with open(cfg, "w") as f:
        f.write(head() + "  target_opset: 13\n")
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(d, "out"), *overrides])
    return [ln for ln in p.stderr.splitlines() if "image folders only" in ln and "rescaling" not in ln]


def test_input_shape_with_arrays_is_named():
    w = warnings_of(["model.input_shape=[8, 8, 1]"])
    assert len(w) == 1 and "model.input_shape applies to image folders only" in w[0], w
    w = warnings_of(["preprocessing.layout=NCHW"])
    assert len(w) == 1 and "preprocessing.layout applies to image folders only" in w[0], w
    w = warnings_of(["preprocessing.layout=NCHW", "model.input_shape=(8, 8, 1)"])
    assert len(w) == 1 and "preprocessing.layout, model.input_shape apply to image folders only" in w[0], w
    assert warnings_of([]) == []


def test_documented_full_auto_example_runs():
    """docs/config.md's full_auto example, run from the repository's root as written; without its target_opset
    line (the default, 17) it is refused at load."""
    doc = open(os.path.join(SRC, "docs", "config.md")).read()
    m = re.search(r"A minimal\s+full_auto config[^\n]*\n\n```yaml\n(.*?)```", doc, re.S)
    assert m, "docs/config.md: no full_auto example"
    example = m.group(1)
    assert "target_opset: 21" in example and "operating_mode: full_auto" in example, example
    d = tmpdir()
    cfg = os.path.join(d, "fa.yaml")
    with open(cfg, "w") as f:
        f.write(example)
    out = os.path.join(d, "out")
    run_oq(["--config", cfg, "--output-dir", out], cwd=SRC, timeout=600)
    assert os.path.exists(os.path.join(out, "full_auto.json")), os.listdir(out)
    refused(example.replace("  target_opset: 21\n", "").replace("testdata/", TESTDATA + "/"),
            ["quantization.target_opset: full_auto writes Int4 weights", "got 17 (the default)"])


if __name__ == "__main__":
    run_module_tests(globals())
