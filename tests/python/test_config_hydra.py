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
  - `~` is never expanded and --output-dir is taken literally (as documented; unchanged behaviour).
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
    p = run_oq(["--config", cfg, "--output-dir", os.path.join(d, "o2"), "model.model_path=~/m.onnx"], cwd=d,
               check=False)
    assert p.returncode != 0 and "'~/m.onnx'" in p.stderr.splitlines()[-1], p.stderr[-1000:]


if __name__ == "__main__":
    run_module_tests(globals())
