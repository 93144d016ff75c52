"""The bad-input catalogue (issue 9): every bad model, config, override, data set or output location ends in
one error line naming the culprit, exit code 2 (usage/config) or 1 (anything else), nothing new left behind but
the log, and the inputs untouched. Regression inputs found by fuzzing live in tests/bad_inputs/ (replayed here).

Each case builds its bad input in a fresh temp dir, runs `onnxquant --config ... --output-dir OUT` (or a
sub-command), and checks:
  - the exit code;
  - stderr: exactly one `[error]` line, containing the expected words; every other line is an ordinary log line
    (no stack trace, no `terminate called`, no sanitizer report);
  - the temp dir afterwards holds what it held before, plus at most OUT/ and OUT/onnxquant.log;
  - every input file has the same sha256 as before.
Run: OQ_BIN=build/onnxquant .venv/bin/python tests/python/test_bad_inputs.py [name-filter]
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx

from bad_inputs_cli import CLI_QA15_CASES
from bad_inputs_data import DATA_TYPE_CASES, OUTPUT_CASES
from bad_inputs_tqo import tqo_cases, tqo_model_cases
from bad_inputs_models import MODEL_CASES, case_model_is_directory, case_model_missing, model_case
from bad_inputs_util import (BAD_DIR, BIN, CALIB_FLAT, MLP, MOBILENET, MOBILENET_BN, base_config, check_failure,
                             copy_in, listing, main_job, sha, write, write_config)
from oqtest import TESTDATA, Runner, run_oq, tmpdir


# ---------------------------------------------------------------------------------------------- config
def config_case(mutate, words, code=2, model=MLP):
    def case():
        d = tmpdir()
        cfg = base_config(copy_in(d, model), copy_in(d, CALIB_FLAT))
        cfg = mutate(cfg, d) or cfg
        main_job(d, cfg, code, words)
    return case


def c_yaml_syntax(cfg, d):
    text = json.dumps(cfg, indent=1).splitlines()
    text.insert(3, '  "broken": [1, 2,')  # unterminated flow sequence on line 4
    text.insert(4, "  : : ]")
    return "\n".join(text) + "\n"


def c_yaml_tab(cfg, d):
    return "model:\n\tmodel_path: x.onnx\n"


def c_unknown_key(cfg, d):
    cfg["quantization"]["onnx_extra_options"]["WeightSymetric"] = True


def c_unknown_section_key(cfg, d):
    cfg["quantization"]["granularty"] = "per_tensor"


def c_wrong_type(cfg, d):
    cfg["dataset"]["batch_size"] = "many"


def c_wrong_type_bool(cfg, d):
    cfg["quantization"]["onnx_extra_options"]["WeightSymmetric"] = [1, 2]


def c_split0(cfg, d):
    cfg["dataset"]["quantization_split"] = 0


def c_split15(cfg, d):
    cfg["dataset"]["quantization_split"] = 1.5


def c_neg_tol(cfg, d):
    cfg["quantization"]["iterative_quant_parameters"] = {"accuracy_tolerance": -1}


def c_tflite(cfg, d):
    cfg["quantization"]["quantizer"] = "tflite_converter"


def c_int4_opset(cfg, d):
    cfg["quantization"]["target_opset"] = 19
    cfg["quantization"]["onnx_quant_parameters"]["weightType"] = "Int4"


def c_full_auto_int16(cfg, d):
    cfg["quantization"]["operating_mode"] = "full_auto"
    cfg["quantization"]["onnx_quant_parameters"]["activType"] = "Int16"


def c_bad_enum(cfg, d):
    cfg["quantization"]["granularity"] = "per_pixel"


def c_model_path_missing(cfg, d):
    del cfg["model"]["model_path"]


def c_config_not_map(cfg, d):
    return "- just\n- a list\n"


def c_misspelt_section(cfg, d):
    cfg["quantisation"] = {"granularity": "per_tensor"}


def c_swapped_letters_short_key(cfg, d):
    cfg["preprocessing"] = {"rescaling": {"sacle": 0.5, "offset": 0}}  # `scale` with two letters swapped


def c_swapped_letters_section(cfg, d):
    cfg["hyrda"] = {"run": {"dir": "elsewhere"}}


def c_repeated_key(cfg, d):
    text = json.dumps(cfg, indent=1).splitlines()
    text.insert(1, ' "operation_mode": "quantization",')  # the key again, on line 2
    return "\n".join(text) + "\n"


def c_export_dir_escapes(cfg, d):
    cfg["quantization"]["export_dir"] = "../elsewhere"


def c_target_opset_29(cfg, d):
    cfg["quantization"]["target_opset"] = 29


def c_node_to_exclude_unknown(cfg, d):
    cfg["quantization"]["onnx_quant_parameters"]["nodes_to_exclude"] = ["/matmul"]  # the node is /MatMul


def c_op_type_lowercase(cfg, d):
    cfg["quantization"]["onnx_quant_parameters"]["op_types_to_quantize"] = ["matmul"]


CONFIG_CASES = [
    ("config_yaml_syntax_error", c_yaml_syntax, ["user_config.yaml:6:3:", "syntax"]),
    ("config_yaml_tab", c_yaml_tab, ["user_config.yaml:2:12:"]),
    ("config_not_a_mapping", c_config_not_map, ["user_config.yaml"]),
    ("config_unknown_key", c_unknown_key, ["quantization.onnx_extra_options.WeightSymetric"]),
    ("config_unknown_key_in_quantization", c_unknown_section_key, ["quantization.granularty"]),
    ("config_wrong_type", c_wrong_type, ["dataset.batch_size"]),
    ("config_wrong_type_bool", c_wrong_type_bool, ["WeightSymmetric"]),
    ("config_split_zero", c_split0, ["dataset.quantization_split"]),
    ("config_split_1_5", c_split15, ["dataset.quantization_split", "1.5"]),
    ("config_negative_tolerance", c_neg_tol, ["accuracy_tolerance"]),
    ("config_tflite_converter", c_tflite, ["quantization.quantizer", "tflite_converter"]),
    ("config_int4_opset19", c_int4_opset, ["target_opset", "21"]),
    ("config_full_auto_int16", c_full_auto_int16, ["full_auto", "Int16"]),
    ("config_bad_enum", c_bad_enum, ["quantization.granularity", "per_pixel"]),
    ("config_model_path_missing", c_model_path_missing, ["model.model_path"]),
    ("config_misspelt_section", c_misspelt_section, ["quantisation", "did you mean 'quantization'"]),
    ("config_swapped_letters_short_key", c_swapped_letters_short_key,
     ["preprocessing.rescaling.sacle", "did you mean 'scale'"]),
    ("config_swapped_letters_section", c_swapped_letters_section, ["hyrda", "did you mean 'hydra'"]),
    ("config_repeated_key", c_repeated_key, ["operation_mode", "given twice"]),
    ("config_export_dir_escapes", c_export_dir_escapes, ["quantization.export_dir", "../elsewhere"]),
    ("config_target_opset_29", c_target_opset_29, ["quantization.target_opset", "29", "28"]),
    ("config_node_to_exclude_unknown", c_node_to_exclude_unknown,
     ["nodes_to_exclude", "'/matmul'", "did you mean '/MatMul'"]),
    ("config_op_type_lowercase", c_op_type_lowercase, ["op_types_to_quantize", "'matmul'", "did you mean 'MatMul'"]),
]


def case_config_missing():
    d = tmpdir()
    check_failure(d, ["--config", os.path.join(d, "nope.yaml")], 2, ["nope.yaml"], [])


def case_cli_bad_override():
    d = tmpdir()
    cfg = base_config(copy_in(d, MLP), copy_in(d, CALIB_FLAT))
    main_job(d, cfg, 2, ["dataset.batch_size"], extra_args=["dataset.batch_size=[1,"])


def case_cli_unknown_option():
    d = tmpdir()
    check_failure(d, ["--config", "x.yaml", "--frobnicate"], 2, ["frobnicate"], [])


# ---------------------------------------------------------------------------------------------- overrides
def override_case(weights=None, activations=None, words=(), code=2, model=MLP, **params):
    def mutate(cfg, d):
        ex = cfg["quantization"]["onnx_extra_options"]
        if weights is not None:
            ex["weights_tensor_override"] = weights
        if activations is not None:
            ex["activations_tensor_override"] = activations
        cfg["quantization"]["onnx_quant_parameters"].update(params)
    return config_case(mutate, list(words), code, model=model)


OVERRIDE_CASES = [
    ("override_unknown_tensor", override_case(weights=[["no_such_weight", {"quant_type": "Int8"}]],
                                              words=["no_such_weight"])),
    ("override_unknown_activation", override_case(activations=[["no_such_act", {"quant_type": "UInt8"}]],
                                                  words=["no_such_act"])),
    ("override_scale_without_zero_point", override_case(weights=[["weights.0", {"scale": 0.1}]],
                                                        words=["weights.0", "zero_point"])),
    ("override_channels_mismatch", override_case(
        weights=[["weights.0", {"axis": 1, "scale": [0.1] * 5, "zero_point": [0] * 5}]], words=["weights.0", "128"])),
    ("override_zero_point_range", override_case(
        weights=[["weights.2", {"quant_type": "Int8", "scale": 0.1, "zero_point": 300}]], words=["weights.2", "300"])),
    ("override_scale_zero", override_case(weights=[["weights.2", {"scale": 0.0, "zero_point": 0}]],
                                          words=["weights.2", "scale"])),
    ("override_scale_negative", override_case(activations=[["/Relu_output_0", {"scale": -0.5, "zero_point": 0}]],
                                              words=["/Relu_output_0", "scale"])),
    ("override_scale_float32_underflow", override_case(
        activations=[["/Relu_output_0", {"scale": 1e-50, "zero_point": 0}]], words=["/Relu_output_0", "float32"])),
    ("override_scale_float32_overflow", override_case(weights=[["weights.2", {"scale": 1e39, "zero_point": 0}]],
                                                      words=["weights.2", "float32"])),
    ("override_axis_invalid", override_case(weights=[["weights.1", {"axis": 5}]], words=["weights.1", "axis"])),
    # An axis other than the reading Conv's / Gemm's output-channel axis (ORT raises, or its QLinearConv refuses the
    # model; onnxquant used to repeat the weight scales along the bias with i % c).
    ("override_axis_not_conv_channel", override_case(
        weights=[["onnx::Conv_215", {"axis": 1}]], model=MOBILENET,
        words=["quantization.onnx_extra_options.weights_tensor_override 'onnx::Conv_215'", "axis 1",
               "Conv '/features/features.3/body/body.0/Conv'", "use axis 0"])),
    ("override_axis_not_gemm_channel", override_case(
        weights=[["fc.weight", {"axis": -1, "quant_type": "Int8"}]], model=MOBILENET,
        words=["weights_tensor_override 'fc.weight'", "axis -1", "Gemm '/fc/Gemm'", "use axis 0"])),
    ("override_per_channel_activation", override_case(
        activations=[["/Relu_output_0", {"axis": 1, "scale": [0.1] * 128, "zero_point": [0] * 128}]],
        words=["/Relu_output_0"])),
    ("override_nodes_to_quantize_with_weights", override_case(
        weights=[["weights.0", {"quant_type": "Int8"}]], nodes_to_quantize=["/MatMul"],
        words=["nodes_to_quantize", "weights_tensor_override"])),
    ("override_bad_quant_type", override_case(weights=[["weights.0", {"quant_type": "Int7"}]],
                                              words=["quant_type", "Int7"])),
]


# ---------------------------------------------------------------------------------------------- data
def data_case(make, words, code=1, model=MLP, extra=None):
    """make(d) -> data path used as quantization_path."""
    def case():
        d = tmpdir()
        path = make(d)
        cfg = base_config(copy_in(d, model), path)
        if extra:
            extra(cfg, d)
        inputs = [p for p in (path,) if os.path.isfile(p)]
        if os.path.isdir(path):
            inputs += [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs]
        main_job(d, cfg, code, words, extra_inputs=inputs)
    return case


def d_missing(d):
    return os.path.join(d, "no_such_data.npz")


def d_empty_folder(d):
    p = os.path.join(d, "images")
    os.makedirs(p)
    return p


def d_empty_classes(d):
    p = os.path.join(d, "images")
    for c in ("0", "1"):
        os.makedirs(os.path.join(p, c))
    return p


def d_corrupt_jpeg(d):
    p = os.path.join(d, "images")
    write(os.path.join(p, "0", "broken.jpg"), b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + np.random.default_rng(1).bytes(300))
    return p


def d_npy(arr):
    def make(d):
        p = os.path.join(d, "x.npy")
        np.save(p, arr)
        return p
    return make


def d_npz(**arrays):
    def make(d):
        p = os.path.join(d, "data.npz")
        np.savez(p, **arrays)
        return p
    return make


def d_npz_truncated(d):
    data = open(CALIB_FLAT, "rb").read()
    return write(os.path.join(d, "data.npz"), data[: len(data) // 2])


def d_npy_truncated(d):
    p = os.path.join(d, "x.npy")
    np.save(p, np.zeros((50, 64), np.float32))
    data = open(p, "rb").read()
    return write(p, data[:1000])


def d_npy_bad_header(d):
    return write(os.path.join(d, "x.npy"), b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'shape': (5, ,}  \n")


def d_top1_no_labels(d):
    p = os.path.join(d, "x.npy")
    np.save(p, np.zeros((10, 64), np.float32))
    return p


def eval_no_labels(cfg, d):
    cfg["operation_mode"] = "evaluation"
    cfg["dataset"]["test_path"] = cfg["dataset"]["quantization_path"]


X = np.zeros((20, 64), np.float32)
DATA_CASES = [
    ("data_missing_path", data_case(d_missing, ["no_such_data.npz"])),
    ("data_empty_folder", data_case(d_empty_folder, ["images"], model=MOBILENET)),
    ("data_empty_class_folders", data_case(d_empty_classes, ["images"], model=MOBILENET)),
    ("data_corrupt_jpeg", data_case(d_corrupt_jpeg, ["broken.jpg"], model=MOBILENET)),
    # Every image skipped as unreadable: the error says so when the folder is opened (was: "no finite value on any
    # of the 0 samples", then "no sample could be read").
    ("data_all_images_skipped", data_case(d_corrupt_jpeg, ["none of the 1 selected images can be decoded",
                                                           "broken.jpg", "skip_bad_files"], model=MOBILENET,
                                          extra=lambda cfg, d: cfg["dataset"].update(skip_bad_files=True))),
    ("data_npy_wrong_shape", data_case(d_npy(np.zeros((20, 63), np.float32)), ["x.npy", "63"])),
    ("data_npy_wrong_rank", data_case(d_npy(np.zeros((20, 8, 8), np.float32)), ["x.npy"])),
    ("data_npy_wrong_dtype", data_case(d_npy(np.zeros((20, 64), np.complex64)), ["x.npy"])),
    ("data_npy_string_dtype", data_case(d_npy(np.array([["a"] * 64] * 3)), ["x.npy"])),
    ("data_npy_object_dtype", data_case(d_npy(np.array([None] * 64, dtype=object).reshape(1, 64)), ["x.npy"])),
    ("data_npy_truncated", data_case(d_npy_truncated, ["x.npy"])),
    ("data_npy_bad_header", data_case(d_npy_bad_header, ["x.npy"])),
    ("data_npz_without_x", data_case(d_npz(a=X, y=np.zeros(20, np.int64)), ["data.npz", "x"])),
    ("data_npz_truncated", data_case(d_npz_truncated, ["data.npz"])),
    ("data_all_nan", data_case(d_npz(x=np.full((4, 64), np.nan, np.float32)), ["data.npz", "finite"])),
    ("data_labels_wrong_length", data_case(
        lambda d: d_npz(x=X, y=np.zeros(15, np.int64))(d), ["data.npz", "15"],
        extra=lambda cfg, d: eval_no_labels(cfg, d))),
    ("data_top1_without_labels", data_case(d_top1_no_labels, ["x.npy", "labels"], extra=eval_no_labels)),
    ("data_labels_beyond_model_classes", data_case(
        lambda d: d_npz(x=X, y=np.arange(20, dtype=np.int64) % 12)(d), ["data.npz", "label 10", "10 classes"],
        extra=lambda cfg, d: eval_no_labels(cfg, d))),
]


# ---------------------------------------------------------------------------------------------- output
def case_output_under_file():
    d = tmpdir()
    cfg = base_config(copy_in(d, MLP), copy_in(d, CALIB_FLAT))
    blocker = write(os.path.join(d, "somefile"), "a regular file\n")
    cpath = write_config(d, cfg)
    out = os.path.join(blocker, "sub")
    check_failure(d, ["--config", cpath, "--output-dir", out], 1, ["somefile"], [cpath, blocker, MLP])


def case_export_dir_is_file():
    """quantization.export_dir naming a file of the output folder (a user's file, the log, the lock file, or a file
    on the way to it) is refused before any work, exit 2, nothing written (it used to fail after calibration with
    exit 1, when the model was saved)."""
    d = tmpdir()
    cfg = base_config(copy_in(d, MLP), copy_in(d, CALIB_FLAT))
    out = os.path.join(d, "out")
    blocker = write(os.path.join(out, "quantized_models"), "a regular file\n")
    cpath = write_config(d, cfg)
    inputs = [cpath, blocker, cfg["model"]["model_path"]]
    check_failure(d, ["--config", cpath, "--output-dir", out], 2, ["quantization.export_dir", "quantized_models"],
                  inputs)
    check_failure(d, ["--config", cpath, "--output-dir", out, "quantization.export_dir=quantized_models/sub"], 2,
                  ["quantization.export_dir", "quantized_models/sub", "not a folder"], inputs)
    fresh = os.path.join(d, "fresh")  # the run's own files are reserved even before they exist
    for name in ("onnxquant.log", ".onnxquant.lock", "./onnxquant.log"):
        check_failure(d, ["--config", cpath, "--output-dir", fresh, f"quantization.export_dir={name}"], 2,
                      ["quantization.export_dir", "log or lock file"], inputs)


def case_output_is_input_model():
    """The output file name is a link to the input model: refused before anything is written through it."""
    d = tmpdir()
    out = os.path.join(d, "out")
    model = copy_in(d, MLP, "m.onnx")
    os.makedirs(os.path.join(out, "quantized_models"))
    os.symlink(model, os.path.join(out, "quantized_models", "m_quant_qdq_pc.onnx"))
    cfg = base_config(model, copy_in(d, CALIB_FLAT))
    cpath = write_config(d, cfg)
    check_failure(d, ["--config", cpath, "--output-dir", out], 2, ["m_quant_qdq_pc.onnx", "input model"],
                  [cpath, model], allowed_new={"out/onnxquant.log"})
    assert os.path.islink(os.path.join(out, "quantized_models", "m_quant_qdq_pc.onnx"))


def case_run_output_under_file():
    d = tmpdir()
    model = copy_in(d, MLP)
    x = os.path.join(d, "x.npy")
    np.save(x, np.zeros((2, 64), np.float32))
    blocker = write(os.path.join(d, "somefile"), "x")
    check_failure(d, ["run", model, "--input", x, "--output-dir", os.path.join(blocker, "o")], 1, ["somefile"],
                  [model, x, blocker])


def case_run_unknown_input_name():
    d = tmpdir()
    model = copy_in(d, MLP)
    x = os.path.join(d, "x.npy")
    np.save(x, np.zeros((2, 64), np.float32))
    check_failure(d, ["run", model, "--input", "nope=" + x, "--output-dir", os.path.join(d, "o")], 2,
                  ["nope", "no input named"], [model, x])


def case_run_wrong_input_shape():
    d = tmpdir()
    model = copy_in(d, MLP)
    x = os.path.join(d, "x.npy")
    np.save(x, np.zeros((2, 65), np.float32))
    out = os.path.join(d, "o")
    check_failure(d, ["run", model, "--input", x, "--output-dir", out], 1, ["input"], [model, x],
                  allowed_new={"o"})


def late_failure_case(operation_mode, mode, test_arrays, words, code=1, quant=None):
    """A failure after the job has already written models/reports (a label beyond the model's classes found at
    evaluation, a failing evaluator_command): the outputs written so far are removed again, only the log stays.
    With test data that is wrong as a whole (no labels, rows of the wrong shape) the run stops before calibration
    instead (the up-front cases below)."""
    def case():
        d = tmpdir()
        cfg = base_config(copy_in(d, MLP), copy_in(d, CALIB_FLAT), mode=mode, **(quant or {}))
        cfg["operation_mode"] = operation_mode
        test = os.path.join(d, "test.npz")
        np.savez(test, **test_arrays)
        cfg["dataset"]["test_path"] = test
        p = main_job(d, cfg, code, words, extra_inputs=[test])
        return p
    return case


X10 = np.zeros((10, 64), np.float32)
LATE_CASES = [
    ("late_failure_chain_qe_label_beyond_classes", late_failure_case(
        "chain_qe", "default", {"x": X10, "y": np.full(10, 12)}, ["test.npz", "label 12", "10 classes"])),
    ("late_failure_chain_qe_inspection", late_failure_case(
        "chain_qe", "inspection", {"x": X10, "y": np.full(10, 12)}, ["test.npz", "label 12"])),
    ("late_failure_full_auto_evaluator_command", late_failure_case(
        "quantization", "full_auto", {"x": X10, "y": np.zeros(10, np.int64)}, ["evaluator_command", "exited with 3"],
        quant={"iterative_quant_parameters": {"metric": "evaluator_command", "evaluator_command": "exit 3"}})),
    # Test data wrong as a whole: refused before calibration (it used to be found after the model was written).
    ("upfront_chain_qe_no_labels", late_failure_case("chain_qe", "default", {"x": X10}, ["test.npz", "labels"])),
    ("upfront_chain_qe_inspection_no_labels", late_failure_case("chain_qe", "inspection", {"x": X10}, ["test.npz"])),
    ("upfront_full_auto_bad_test_rows", late_failure_case(
        "quantization", "full_auto", {"x": np.zeros((10, 63), np.float32), "y": np.zeros(10, np.int64)},
        ["test.npz", "63"])),
]


# ---------------------------------------------------------------------------------------------- fuzz regressions
def replay_case(path):
    """A committed input under tests/bad_inputs/ (a fuzzer finding): its kind comes from the extension; models of
    the fuzz_session target (fuzz_session_*.onnx, input [batch, 64]) are quantized with the MLP's calibration data,
    and the one error line must name one of their nodes."""
    def case():
        d = tmpdir()
        name = os.path.basename(path)
        local = copy_in(d, path)
        if name.startswith("fuzz_session_"):  # loads; the executor (or a pass) refuses it: quantize it
            err = main_job(d, base_config(local), 1, ["node '"], extra_inputs=[local])
            nodes = [n.name for n in onnx.load(local).graph.node]
            assert any(f"node '{n}'" in err for n in nodes), f"error does not name a node of {nodes}: {err}"
        elif name.endswith(".onnx"):
            check_failure(d, ["info", local], 1, [name], [local])
        elif name.endswith(".yaml"):
            check_failure(d, ["--config", local, "--output-dir", os.path.join(d, "out")], 2, [name], [local],
                          out_dir=os.path.join(d, "out"))
        elif name.endswith((".npy", ".npz")):
            cfg = base_config(copy_in(d, MLP), local)
            main_job(d, cfg, 1, [name], extra_inputs=[local])
        else:  # images: one class folder holding the file
            img = os.path.join(d, "images", "0")
            os.makedirs(img)
            shutil.move(local, os.path.join(img, name))
            cfg = base_config(copy_in(d, MOBILENET), os.path.join(d, "images"))
            main_job(d, cfg, 1, [name], extra_inputs=[os.path.join(img, name)])
    return case


# ---------------------------------------------------------------------------------------------- determinism
def strip_times(obj):
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if "time" not in k.lower() and k not in ("date", "seconds")}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def deterministic_case(mode, model, calib, test=None, method="MinMax"):
    """The same job with --threads 1 and --threads 2 (each in its own folder, run from there with relative paths so
    that paths in the reports are equal): byte-identical models, equal JSON reports once timestamps are dropped."""
    def case():
        outs = []
        for t in (1, 2):
            d = tmpdir()
            cfg = base_config(os.path.basename(copy_in(d, model)), os.path.basename(copy_in(d, calib)), mode=mode)
            if test:
                cfg["dataset"]["test_path"] = os.path.basename(copy_in(d, test))
            cfg["quantization"]["onnx_quant_parameters"]["calibrate_method"] = method
            write_config(d, cfg)
            run_oq(["--config", "user_config.yaml", "--output-dir", "out", "--threads", str(t)], cwd=d)
            outs.append(os.path.join(d, "out"))
        files = sorted(f for f in listing(outs[0]) if f.endswith((".onnx", ".json", ".csv")))
        assert any(f.endswith(".onnx") for f in files), files
        assert mode == "default" or any(f.endswith(".json") for f in files), files
        assert files == sorted(f for f in listing(outs[1]) if f.endswith((".onnx", ".json", ".csv")))
        for f in files:
            a, b = (os.path.join(o, f) for o in outs)
            if f.endswith(".json"):
                assert strip_times(json.load(open(a))) == strip_times(json.load(open(b))), f"{f} differs"
            else:
                assert sha(a) == sha(b), f"{f} differs between --threads 1 and --threads 2"
        print(f"  {len(files)} files identical: {', '.join(files)}")
    return case


DETERMINISM_CASES = [
    ("deterministic_default_mobilenet_entropy", deterministic_case(
        "default", MOBILENET, os.path.join(TESTDATA, "digits_calib.npz"), method="Entropy")),
    ("deterministic_inspection_mlp", deterministic_case(
        "inspection", MLP, CALIB_FLAT, os.path.join(TESTDATA, "digits_test_flat.npz"))),
    ("deterministic_full_auto_mlp", deterministic_case(
        "full_auto", MLP, CALIB_FLAT, os.path.join(TESTDATA, "digits_test_flat.npz"))),
]


# ---------------------------------------------------------------------------------------------- main
def all_cases():
    cases = [(c[0], model_case(c[1], c[2], loader=c[3] if len(c) > 3 else True)) for c in MODEL_CASES]
    cases += [("model_missing_file", case_model_missing), ("model_is_directory", case_model_is_directory)]
    cases += [(n, config_case(f, w)) for n, f, w in CONFIG_CASES]
    cases += [("config_file_missing", case_config_missing), ("cli_bad_override_value", case_cli_bad_override),
              ("cli_unknown_option", case_cli_unknown_option)]
    cases += OVERRIDE_CASES + tqo_cases(config_case) + DATA_CASES + DATA_TYPE_CASES + LATE_CASES
    cases += tqo_model_cases(lambda mutate, words: config_case(mutate, words, model=MOBILENET_BN))
    cases += [("output_dir_under_a_file", case_output_under_file), ("export_dir_is_a_file", case_export_dir_is_file),
              ("output_is_the_input_model", case_output_is_input_model),
              ("run_output_dir_under_a_file", case_run_output_under_file),
              ("run_wrong_input_shape", case_run_wrong_input_shape),
              ("run_unknown_input_name", case_run_unknown_input_name)] + OUTPUT_CASES + CLI_QA15_CASES
    if os.path.isdir(BAD_DIR):
        for n in sorted(os.listdir(BAD_DIR)):
            if not n.endswith(".md"):
                cases.append((f"fuzz_{n}", replay_case(os.path.join(BAD_DIR, n))))
    if os.environ.get("OQ_BAD_INPUTS_SKIP_DETERMINISM") != "1":
        cases += DETERMINISM_CASES
    return cases


if __name__ == "__main__":
    assert os.path.exists(BIN), f"OQ_BIN {BIN} does not exist"
    flt = sys.argv[1] if len(sys.argv) > 1 else ""
    r = Runner()
    for name, fn in all_cases():
        if flt in name:
            r.run(name, fn)
    r.finish()
