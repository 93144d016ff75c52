"""Hydra-isms of an ST user_config.yaml, against OmegaConf's grammar (OmegaConfGrammarLexer.g4 and
grammar_visitor.py of OmegaConf 2.1+, which Hydra 1.1+ uses; expected values computed by hand from its rules) and
Hydra's defaults list:

  - `\\${` is a literal `${`, `\\\\${` a backslash then an interpolation (the seventeenth QA report: `exp/\\${now:%Y}`
    made `exp/\\2026`); other backslashes are literal;
  - nested interpolations are resolved inside out (`${now:${now:%Y}}`), and an unsupported inner one is an error
    naming the key (`${now:${general.project_name}}` made a folder of that literal name);
  - an interpolation error cites the value's file:line (none for a command-line override);
  - a defaults-list entry that composes another config (`- dataset: flowers`) is refused naming it and its line;
    `_self_` and hydra/ groups are ignored with a warning;
  - `~` is never expanded and --output-dir is taken literally (as documented); unquoted in an override it is
    refused, as Hydra's override grammar refuses it;
  - scalars typed as ST's flow types them (the nineteenth session's config review): YAML 1.1 integers in the file
    (`010` octal, `0x11`, `1:30`), Hydra's types in overrides (`off` a string, `010` a string, `1_7` an int), `#`
    refused and `%x` a string in an override, several `<<` merge keys in one map, and the overrides in the log.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oqtest import run_module_tests, run_oq, tmpdir  # noqa: E402
from test_config_at_load import head, refused  # noqa: E402

MODEL_FILE = "quantized_models/digits_mlp_quant_qdq_pc.onnx"


def output_folder(hydra_dir_yaml, extra=""):
    """Runs the MLP config with `hydra.run.dir` written as `hydra_dir_yaml` (under a fresh folder, written $D) and no
    --output-dir; returns (that folder, the folder the quantized model went to, relative to it)."""
    d = tmpdir()
    cfg = os.path.join(d, "c.yaml")
    with open(cfg, "w") as f:
        f.write(extra + head() + "  target_opset: 13\nhydra:\n  run:\n    dir: " + hydra_dir_yaml.replace("$D", d) + "\n")
    run_oq(["--config", cfg])
    found = [os.path.relpath(r, d) for r, _, fs in os.walk(d) if "onnxquant.log" in fs]
    assert len(found) == 1 and os.path.exists(os.path.join(d, found[0], MODEL_FILE)), found
    return d, found[0]


def test_escaped_interpolations():
    year = time.strftime("%Y")  # the run starts within the test's year (a run across New Year's midnight aside)
    assert output_folder("$D/exp/\\${now:%Y}")[1] == "exp/${now:%Y}"
    assert output_folder('"$D/exp/\\\\${now:%Y}"')[1] == "exp/${now:%Y}"  # the same string, YAML-quoted
    assert output_folder("$D/exp/\\\\${now:%Y}")[1] == "exp/\\" + year
    assert output_folder("$D/exp/\\\\\\${x}")[1] == "exp/\\${x}"
    assert output_folder("$D/a\\b\\\\c/${now:%Y}")[1] == "a\\b\\\\c/" + year  # not before ${: literal


def test_nested_interpolations():
    year = time.strftime("%Y")
    assert output_folder("$D/exp/${now:${now:%Y}}_${now:x}")[1] == f"exp/{year}_x"
    refused(head() + "hydra:\n  run:\n    dir: exp/${now:${general.project_name}}\n",  # line 8
            ["hydra.run.dir: interpolation '${general.project_name}' is not supported by onnxquant",
             "in '${now:${general.project_name}}'", "(@:8)"])


def test_interpolation_errors_cite_the_line():
    refused(head() + "hydra:\n  run:\n    dir: exp/${general.project_name}\n",
            ["hydra.run.dir: interpolation '${general.project_name}' is not supported", "(@:8)"])
    refused(head() + "hydra:\n  run:\n    dir: exp/${now:%Y\n", ["hydra.run.dir: unterminated interpolation", "(@:8)"])
    refused(f"model:\n  model_path: ${{oc.env:HOME}}/m.onnx\nquantization:\n",
            ["model.model_path: interpolation '${oc.env:HOME}' is not supported", "(@:2)"])
    refused(head(), ["hydra.run.dir: interpolation '${oc.env:HOME}' is not supported"],
            args=["hydra.run.dir=x/${oc.env:HOME}"], absent=["c.yaml"])


def test_defaults_list():
    refused("defaults:\n  - _self_\n  - dataset: flowers\n" + head(),  # line 3
            ["defaults[1]: Hydra would compose config group 'dataset' ('dataset: flowers')", "(@:3)"])
    refused("defaults:\n  - base_config\n" + head(), ["defaults[0]: Hydra would compose config 'base_config'", "(@:2)"])
    refused("defaults:\n  - override model: big\n" + head(), ["defaults[0]", "config group 'model'", "(@:2)"])
    refused("defaults: {dataset: flowers}\n" + head(), ["defaults: expected Hydra's defaults list", "(@:1)"])
    # Hydra's own groups, _self_ and a group set to null change no key onnxquant reads.
    d = tmpdir()
    cfg = os.path.join(d, "c.yaml")
    with open(cfg, "w") as f:
        f.write("defaults:\n  - _self_\n  - override hydra/job_logging: disabled\n  - /hydra/help: default\n"
                "  - optional dataset: null\n" + head() + "  target_opset: 13\n")
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(d, "out")])
    assert "[warning] defaults: ignored by onnxquant" in p.stderr, p.stderr[-2000:]
    assert os.path.exists(os.path.join(d, "out", MODEL_FILE))


def test_paths_taken_literally():
    """As Python and Hydra: no `~` expansion anywhere, and --output-dir is not interpolated (docs/config.md)."""
    d = tmpdir()
    cfg = os.path.join(d, "c.yaml")
    with open(cfg, "w") as f:
        f.write(head() + "  target_opset: 13\n")
    out = os.path.join(d, "~", "x_${now:%Y}")
    run_oq(["--config", cfg, "--output-dir", out], cwd=d)
    assert os.path.exists(os.path.join(out, MODEL_FILE)), os.listdir(d)
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(d, "o2"), "model.model_path='~/m.onnx'"], cwd=d,
               check=False)
    assert p.returncode != 0 and "'~/m.onnx'" in p.stderr.splitlines()[-1], p.stderr[-1000:]
    # Unquoted, Hydra's override grammar refuses '~' ("token recognition error at: '~'", hydra-core 1.3.8).
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(d, "o2"), "model.model_path=~/m.onnx"], cwd=d,
               check=False)
    assert p.returncode == 2 and "override 'model.model_path=~/m.onnx'" in p.stderr.splitlines()[-1] \
        and "not accept '~'" in p.stderr, p.stderr[-1000:]


# ---- Scalars as ST's flow types them: PyYAML 1.1 + OmegaConf 2.3 in the file, Hydra 1.3's override grammar on the
# command line. Every expected value below was printed by OmegaConf 2.3.1 (`OmegaConf.create("k: " + v).k`) or
# hydra-core 1.3.8 (`OverridesParser.create().parse_override("k=" + v).value()`).

def quantize(tail, args=()):
    """Quantizes the MLP with head() + tail and `args`; returns the written model (the only .onnx of the folder)
    as (its path in the output folder, the model); the run's log is left in quantize.log."""
    import onnx
    d = tmpdir()
    cfg = os.path.join(d, "c.yaml")
    with open(cfg, "w") as f:
        f.write(head() + tail)
    out = os.path.join(d, "out")
    run_oq(["--config", cfg, "--output-dir", out, *args])
    found = [os.path.join(r, n) for r, _, fs in os.walk(out) for n in fs if n.endswith(".onnx")]
    assert len(found) == 1, found
    with open(os.path.join(out, "onnxquant.log")) as f:
        quantize.log = f.read()
    return os.path.relpath(found[0], out), onnx.load(found[0])


def opset_and_input_qparams(model):
    import onnx.numpy_helper as nh
    init = {i.name: nh.to_array(i) for i in model.graph.initializer}
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0]
    return opset, float(init["input_scale"]), int(init["input_zero_point"])


def input_override(zero_point, scale="0.07"):
    return ("  onnx_quant_parameters: {activType: UInt8}\n  onnx_extra_options:\n    activations_tensor_override: "
            f"[[input, {{quant_type: UInt8, scale: {scale}, zero_point: {zero_point}}}]]\n")


def test_yaml11_integers_in_the_file():
    """OmegaConf: 0x11 -> 17, 021 -> 17 (octal), 010 -> 8, 1:30 -> 90 (sexagesimal), 1_0.5e-2 -> 0.105; 08 -> the
    string '08', 0b_ -> ValueError. onnxquant read 010 as 10 and 021 as 21, and refused 0x11, 1:30 and 1_0.5e-2."""
    _, m = quantize("  target_opset: 0x11\n" + input_override("010"))
    assert opset_and_input_qparams(m) == (17, 0.07000000029802322, 8), opset_and_input_qparams(m)
    _, m = quantize("  target_opset: 021\n" + input_override("1:30", "1_0.5e-2"))
    opset, scale, zp = opset_and_input_qparams(m)
    assert (opset, zp) == (17, 90) and abs(scale - 0.105) < 1e-8, (opset, scale, zp)
    refused(head() + "  target_opset: 17\n" + input_override("08"),
            ["activations_tensor_override[0].zero_point: expected an integer, got '08'", "leading zero", "(@:9)"])
    refused(head() + "  target_opset: 0b_\n", ["quantization.target_opset: expected an integer, got '0b_'",
                                               "PyYAML (ST's flow) cannot read it as an integer", "(@:6)"])


def test_override_scalars_as_hydra_types_them():
    """Hydra: off / yes / On / n are strings (true in ST's flow: ORT's extra_options take a non-empty string as
    true), fALSE is False; 021 and 0x11 are strings, 1_7 is the int 17."""
    for v in ("off", "yes", "On", "n"):
        refused(head(), [f"quantization.onnx_extra_options.WeightSymmetric: expected a boolean, got '{v}'"],
                args=[f"quantization.onnx_extra_options.WeightSymmetric={v}"], absent=["c.yaml"])
    refused(head(), ["Hydra reads 'off' in a command-line override as a string", "write false"],
            args=["quantization.onnx_extra_options.WeightSymmetric=off"])
    # fALSE is Hydra's False: asymmetric per-tensor Int8 weights, so some weight zero point is not 0 (ORT 1.32 gave
    # this MLP 0, -18, 15 with WeightSymmetric false, all 0 with true: the s19 config review).
    import onnx.numpy_helper as nh
    _, m = quantize("  granularity: per_tensor\n", ["quantization.onnx_extra_options.WeightSymmetric=fALSE",
                                               "quantization.target_opset=1_7"])
    zps = [nh.to_array(i) for i in m.graph.initializer if i.name.endswith("_zero_point") and "weight" in i.name]
    assert zps and any((z != 0).any() for z in zps), zps
    assert opset_and_input_qparams(m)[0] == 17
    for v in ("021", "0x11"):
        refused(head(), [f"quantization.target_opset: expected an integer, got '{v}'"],
                args=[f"quantization.target_opset={v}"])
    refused(head(), ["leading zero"], args=["quantization.target_opset=021"])


def test_override_comments_and_directives():
    """Hydra refuses '#' anywhere unquoted (token recognition error) and takes %x and 'a: b' as strings; yaml-cpp
    made #x and %x null (the default export_dir), cut 'x #y' to x and made 'a: b' a map."""
    for v in ("#x", "x #y", "x#y"):
        refused(head(), [f"override 'quantization.export_dir={v}'", "does not accept '#' outside quotes"],
                args=[f"quantization.export_dir={v}"])
    assert quantize("", ["quantization.export_dir=%x"])[0] == "%x/digits_mlp_quant_qdq_pc.onnx"
    assert quantize("", ["quantization.export_dir=a: b"])[0] == "a: b/digits_mlp_quant_qdq_pc.onnx"
    assert "Command-line overrides: 'quantization.export_dir=a: b'\n" in quantize.log, quantize.log[:2000]
    assert quantize("", ["quantization.export_dir='#x'"])[0] == "#x/digits_mlp_quant_qdq_pc.onnx"


def test_two_merge_keys_in_one_map():
    """OmegaConf.load of MERGE2 gives quantization {granularity: per_tensor, export_dir: qb, target_opset: 13}: every
    `<<` merges, the later one's keys win over the earlier's, the map's own keys over both (onnxquant refused a
    second `<<` as a key given twice)."""
    import onnx
    d = tmpdir()
    cfg = os.path.join(d, "c.yaml")
    with open(cfg, "w") as f:
        f.write(MERGE2 + head() + "  <<: *a\n  <<: *b\n  target_opset: 13\n")
    run_oq(["--config", cfg, "--output-dir", os.path.join(d, "out")])
    assert os.listdir(os.path.join(d, "out", "qb")) == ["digits_mlp_quant_qdq_pt.onnx"]
    m = onnx.load(os.path.join(d, "out", "qb", "digits_mlp_quant_qdq_pt.onnx"))
    assert opset_and_input_qparams(m)[0] == 13


MERGE2 = ("xa: &a {granularity: per_tensor, export_dir: qa, target_opset: 21}\n"
          "xb: &b {export_dir: qb, target_opset: 17}\n")


if __name__ == "__main__":
    run_module_tests(globals())
