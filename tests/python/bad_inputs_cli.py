"""Bad-input catalogue (test_bad_inputs.py): the fifteenth QA report's config and command-line cases. Each ends in
one error line naming what it must, with the exit code the rules give (2 usage/config, 1 anything else), nothing
left behind but the output folder and its log, and every input (model, config, data) unchanged:

  - a rule between two keys cites the line of the value it names (the other value's line beside it), and no line
    for a value from a command-line override (was: the first line of the enclosing section);
  - values repeated in messages are quoted with escapes: a newline or a NUL neither breaks nor cuts the line; a
    path key holding a NUL is refused at load, naming the key (export_dir used to fail late, exit 1);
  - `run` given one input twice, `eval --metric top1 --reference`, `eval --reference` with a model that cannot
    take the data (it used to be ignored), `--threads` 0 or negative;
  - an input at `<output dir>/onnxquant.log` (model, config, data file, the model's external data file);
  - a YAML alias bomb (nested aliases, nine per level) that took minutes before its config error, and a recursive
    alias that crashed onnxquant (stack overflow).
"""
import os

import numpy as np
import onnx

from bad_inputs_util import CALIB_FLAT, MLP, base_config, check_failure, copy_in, main_job, write_config
from oqtest import TESTDATA, tmpdir

TEST_FLAT = os.path.join(TESTDATA, "digits_test_flat.npz")


def yaml_head(d):
    """Lines 1-5 of a config for the MLP (it and its calibration data copied in d); quantization keys follow from
    line 6. Returns the text and the two input files."""
    model, calib = copy_in(d, MLP), copy_in(d, CALIB_FLAT)
    return f"model:\n  model_path: {model}\ndataset:\n  quantization_path: {calib}\nquantization:\n", [model, calib]


def text_case(body, words, code=2, extra_args=(), absent=(), timeout=None):
    """A config written as YAML text (yaml_head + body): its lines are known; `absent`: words the error must not
    hold."""
    def case():
        d = tmpdir()
        head, inputs = yaml_head(d)
        err = main_job(d, head + body, code, words, extra_inputs=inputs, extra_args=list(extra_args), timeout=timeout)
        for w in absent:
            assert w not in err, f"error line names '{w}': {err}"
    return case


STRIDED = ("  onnx_quant_parameters:\n"         # 6
           "    weightType: Int8\n"             # 7
           "    calibrate_method: Entropy\n"    # 8
           "  onnx_extra_options:\n"            # 9
           "    WeightSymmetric: True\n"        # 10
           "    QuantizeBias: True\n"           # 11
           "    CalibStridedMinMax: 2\n")       # 12
EXTRA = "quantization.onnx_extra_options."

LINE_CASES = [
    ("config_cross_key_cites_the_named_value", text_case(
        STRIDED, [EXTRA + "CalibStridedMinMax:", "/user_config.yaml:12; quantization.onnx_quant_parameters."
                  "calibrate_method: ", "/user_config.yaml:8)"])),
    ("config_cross_key_both_from_overrides", text_case(
        STRIDED.replace("    CalibStridedMinMax: 2\n", ""),
        ["quantization.onnx_quant_parameters.nodes_to_quantize: cannot be combined"],
        extra_args=["quantization.onnx_quant_parameters.nodes_to_quantize=[/MatMul]",
                    EXTRA + "weights_tensor_override=[[weights.0, {}]]"], absent=["user_config.yaml"])),
    ("config_tqo_and_weight_override_from_overrides", text_case(
        STRIDED.replace("    CalibStridedMinMax: 2\n", ""),
        [EXTRA + "TensorQuantOverrides.weights.0: tensor 'weights.0' is also in"],
        extra_args=[EXTRA + "TensorQuantOverrides={weights.0: []}",
                    EXTRA + "weights_tensor_override=[[weights.0, {}]]"],
        absent=["user_config.yaml"])),
]

QUOTE_CASES = [
    # A block scalar keeps its newline: the message was two lines. A double-quoted "\0" is a NUL: it was cut there.
    ("config_value_with_newline_quoted", text_case(
        "  granularity: |\n    per_tensor\n", ["got 'per_tensor\\n' (", "/user_config.yaml:6)"])),
    ("config_value_with_nul_quoted", text_case(
        '  granularity: "per_tensor\\0x"\n', ["got 'per_tensor\\0x' (", "/user_config.yaml:6)"])),
    # A NUL in a path: the system would read the name up to it. Refused at load naming the key (exit 2); export_dir
    # used to pass the load and fail when the model was saved, exit 1, the message cut at the NUL.
    ("config_export_dir_with_nul", text_case(
        '  export_dir: "a\\0b"\n', ["quantization.export_dir: holds a NUL byte", "'a\\0b' (", "/user_config.yaml:6)"])),
    ("config_data_path_with_nul_override", text_case(
        "  granularity: per_tensor\n", ["dataset.quantization_path: holds a NUL byte", "'calib.npz\\0x'"],
        extra_args=['dataset.quantization_path="calib.npz\\0x"'])),
    ("config_model_path_with_nul_override", text_case(
        "  granularity: per_tensor\n", ["model.model_path: holds a NUL byte", "'m.onnx\\0.onnx'"],
        extra_args=['model.model_path="m.onnx\\0.onnx"'])),
]


# ---------------------------------------------------------------------------------------------- run / eval / threads
def run_case(inputs, words, code=2, names=("a.npy", "b.npy")):
    """`run` on the MLP with --input specs (`{a}` / `{b}`: the paths of two small arrays in the temp dir)."""
    def case():
        d = tmpdir()
        model = copy_in(d, MLP)
        x = np.load(TEST_FLAT)["x"]
        files = {}
        for i, n in enumerate(names):
            files[n[0]] = os.path.join(d, n)
            np.save(files[n[0]], x[i * 2:i * 2 + 2])
        args = ["run", model]
        for spec in inputs:
            args += ["--input", spec.format(**files)]
        check_failure(d, args + ["--output-dir", os.path.join(d, "o")], code, words, [model] + list(files.values()))
    return case


def eval_case(args, words, code=2):
    def case():
        d = tmpdir()
        model = copy_in(d, MLP)
        check_failure(d, ["eval", model] + list(args), code, words, [model])
    return case


def threads_case(command, value):
    def case():
        d = tmpdir()
        model = copy_in(d, MLP)
        if command == "main":
            cfg = base_config(model, copy_in(d, CALIB_FLAT))
            main_job(d, cfg, 2, ["--threads", f"at least 1, got {value}"], extra_args=["--threads", value])
        elif command == "run":
            x = os.path.join(d, "x.npy")
            np.save(x, np.zeros((2, 64), np.float32))
            check_failure(d, ["run", model, "--input", x, "--output-dir", os.path.join(d, "o"), "--threads", value], 2,
                          ["--threads", "at least 1"], [model, x])
        else:
            check_failure(d, ["eval", model, "--data", TEST_FLAT, "--threads", value], 2, ["--threads", "at least 1"],
                          [model])
    return case


CLI_CASES = [
    ("run_input_given_twice_by_name", run_case(
        ["input={a}", "input={b}"], ["--input 'input=", "b.npy': input 'input' is already given by --input 'input=",
                                     "a.npy'"])),
    # Unnamed, the first --input feeds the first input: the named one then gives it again.
    ("run_input_given_twice_by_position", run_case(["{a}", "input={b}"], ["input 'input' is already given", "a.npy"])),
    # The output logits.npy would replace the input file of that name.
    ("run_output_is_an_input", lambda: _run_output_is_input()),
    ("eval_top1_with_reference", eval_case(
        ["--data", TEST_FLAT, "--metric", "top1", "--reference", MLP], ["--metric top1", "--reference"])),
    # --reference alone means agreement: a reference that cannot take the data is now run, and refused (it was
    # never loaded, and top1 printed).
    ("eval_reference_implies_agreement", eval_case(
        ["--data", TEST_FLAT, "--reference", os.path.join(TESTDATA, "digits_resnet.onnx")],
        ["--reference", "digits_resnet.onnx"], code=1)),
    ("cli_threads_zero", threads_case("main", "0")),
    ("cli_threads_negative", threads_case("main", "-7")),
    ("run_threads_zero", threads_case("run", "0")),
    ("eval_threads_negative", threads_case("eval", "-3")),
]


def _run_output_is_input():
    d = tmpdir()
    model = copy_in(d, MLP)
    out = os.path.join(d, "o")
    os.makedirs(out)
    x = os.path.join(out, "logits.npy")  # the MLP's output is 'logits'
    np.save(x, np.load(TEST_FLAT)["x"][:2])
    check_failure(d, ["run", model, "--input", x, "--output-dir", out], 2, ["logits.npy", "--input"], [model, x])


# ---------------------------------------------------------------------------------------------- log on an input
def log_case(which):
    """An input of the run at <output dir>/onnxquant.log: refused before anything is opened for writing (the log used
    to truncate it first: the model or config was lost)."""
    def case():
        d = tmpdir()
        out = os.path.join(d, "out")
        os.makedirs(out)
        log = os.path.join(out, "onnxquant.log")
        model, calib = copy_in(d, MLP), copy_in(d, CALIB_FLAT)
        args, inputs, words = [], [], ["onnxquant.log"]
        if which == "model":
            model = copy_in(out, MLP, "onnxquant.log")
            words.append("model.model_path")
        elif which == "data":
            calib = copy_in(out, CALIB_FLAT, "onnxquant.log")
            words.append("dataset.quantization_path")
        elif which == "external_data":  # the model's weights in a file of that name, beside it in the output dir
            m = onnx.load(MLP)
            model = os.path.join(out, "ext.onnx")
            onnx.save_model(m, model, save_as_external_data=True, location="onnxquant.log", size_threshold=0)
            inputs.append(log)
            words.append("not an onnxquant log")
        cfg = base_config(model, calib)
        if which == "config":
            cpath = write_config(out, cfg, "onnxquant.log")
            words.append("config file")
        else:
            cpath = write_config(d, cfg)
        inputs += [cpath, model, calib]
        check_failure(d, ["--config", cpath, "--output-dir", out] + args, 2, words, inputs)
    return case


LOG_CASES = [(f"output_log_is_the_{w}", log_case(w)) for w in ("model", "config", "data", "external_data")]


# ---------------------------------------------------------------------------------------------- alias bomb
def alias_bomb(levels):
    """`levels` nested lists of nine aliases (under ignored top-level keys): 9^levels paths through 10·levels nodes,
    a few hundred bytes. Walking every path took 57 s at 9 levels (ninefold per level): 11 levels would take 80 min."""
    y = "a0: &a0 [" + ", ".join(["x"] * 9) + "]\n"
    for lv in range(1, levels):
        y += f"a{lv}: &a{lv} [" + ", ".join([f"*a{lv - 1}"] * 9) + "]\n"
    return y


def case_alias_bomb():
    d = tmpdir()
    head, inputs = yaml_head(d)
    cfg = head + "  granularty: per_tensor\n"  # a config error after the bomb: it must be reached
    main_job(d, alias_bomb(11) + cfg, 2, ["quantization.granularty: unknown key", "did you mean 'granularity'"],
             extra_inputs=inputs, timeout=120)


def case_alias_bomb_merge():
    """The same with a merge key in every leaf map: the merge resolution also visits each distinct map once."""
    d = tmpdir()
    head, inputs = yaml_head(d)
    bomb = alias_bomb(11).replace("[x, x", "[{<<: {k: 1}}, x", 1)
    main_job(d, bomb + head + "  granularty: per_tensor\n", 2, ["quantization.granularty"], extra_inputs=inputs,
             timeout=120)


def case_recursive_alias():
    """An alias inside the node it names: the walks over the tree recursed until the stack overflowed (SIGSEGV)."""
    d = tmpdir()
    head, inputs = yaml_head(d)
    main_job(d, "a: &a {b: *a}\n" + head + "  granularity: per_tensor\n", 2,
             ["user_config.yaml:1: a.b: an alias refers to a node that contains it"], extra_inputs=inputs, timeout=120)


BOMB_CASES = [("config_yaml_alias_bomb", case_alias_bomb), ("config_yaml_alias_bomb_merge_keys", case_alias_bomb_merge),
              ("config_yaml_recursive_alias", case_recursive_alias)]

CLI_QA15_CASES = LINE_CASES + QUOTE_CASES + CLI_CASES + LOG_CASES + BOMB_CASES
