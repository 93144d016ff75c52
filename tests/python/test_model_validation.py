"""Models that break their operator's schema are refused on load (src/ir/validate_schema.cc), as onnx.checker does.

A QA sweep (eighteenth session) found invalid models quantized with exit 0 into broken or silently altered models: a
Relu with 2 inputs, an attribute given twice, an unknown attribute, a Clip at opset 13 carrying Clip-6's min / max
attributes (ignored: the clamp was lost), an opset-11 Squeeze with an axes input, IR version 99, two initializers of
one name. Each case here builds such a model with onnx.helper, asserts that onnx.checker (full_check, the
reference) refuses it, and that onnxquant exits 1 with one `[error]` line naming the file and the node (or
tensor) and writes no model. Valid models with unusual but allowed forms (omitted optional inputs and outputs,
Clip-6 attributes at opset 6, attributes of other types, an explicit "ai.onnx" domain) still quantize, and the
quantized model passes onnx.checker and runs in onnxruntime. Also: the committed schema table is what
scripts/gen_op_schemas.py generates from the .venv's onnx.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import SRC, Runner, tmpdir  # noqa: E402
from test_model_edges import X, base_model, insert_after_relu, quantize  # noqa: E402


def refused_by_checker(m):
    try:
        onnx.checker.check_model(m, full_check=True)
    except Exception as e:  # noqa: BLE001 - any checker error is a refusal
        return str(e).splitlines()[0]
    raise AssertionError("onnx.checker accepts the model: not an invalid case")


def expect_refused(name, m, *parts):
    why = refused_by_checker(m)
    d = tmpdir()
    path = os.path.join(d, name + ".onnx")
    with open(path, "wb") as f:  # onnx.save would run no check, but be explicit: the bytes as built
        f.write(m.SerializeToString())
    p = quantize(d, path, code=1)
    errors = [line for line in p.stderr.splitlines() if "[error]" in line]
    assert p.returncode == 1, f"{name}: exit {p.returncode} (checker: {why})\n{p.stderr[-2000:]}"
    assert len(errors) == 1, f"{name}: {errors}"
    for part in (f"model '{path}'",) + parts:
        assert part in errors[0], f"{name}: {part!r} not in {errors[0]!r}"
    written = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(d, "out")) for f in fs
               if f.endswith(".onnx")]
    assert not written, f"{name}: wrote {written}"


def relu_two_inputs():
    m = base_model()
    m.graph.node[1].input.append("c")
    expect_refused("relu2", m, "node 'relu' (Relu)", "Relu-14 takes 1 input(s), the node has 2")


def duplicated_attribute():
    m = base_model()
    m.graph.node[0].attribute.append(helper.make_attribute("pads", [0, 0, 0, 0]))
    expect_refused("dup_attr", m, "node 'conv' (Conv)", "attribute 'pads' is given twice")


def unknown_attribute():
    m = base_model()
    m.graph.node[1].attribute.append(helper.make_attribute("alpha", 0.1))
    expect_refused("unknown_attr", m, "node 'relu' (Relu)", "Relu-14 (the version at opset 17) has no attribute 'alpha'")


def clip6_attributes_at_13():
    m = insert_after_relu(base_model(opset=13), [], [helper.make_node("Clip", ["r"], ["cl"], name="clip_old",
                                                                      min=0.0, max=1.0)])
    expect_refused("clip_attrs", m, "node 'clip_old' (Clip)", "Clip-13 (the version at opset 13) has no attribute",
                   "(Clip-6 had it", "give '")


def squeeze_axes_input_at_11():
    ax = numpy_helper.from_array(np.array([0], np.int64), "ax")
    m = insert_after_relu(base_model(opset=11), [ax], [helper.make_node("Squeeze", ["r", "ax"], ["sq"],
                                                                        name="squeeze_new")])
    expect_refused("squeeze11", m, "node 'squeeze_new' (Squeeze)", "Squeeze-11 takes 1 input(s), the node has 2",
                   "Squeeze-13 takes 'axes' as an input")


def required_attribute_and_type():
    m = insert_after_relu(base_model(), [], [helper.make_node("Cast", ["r"], ["rc"], name="cast_no_to")])
    expect_refused("cast_no_to", m, "node 'cast_no_to' (Cast)", "required attribute 'to' of Cast-13 is missing")
    m = base_model()
    m.graph.node[2].attribute.append(helper.make_attribute("axis", 1.0))
    expect_refused("flatten_float_axis", m, "node 'flat' (Flatten)", "attribute 'axis' is FLOAT, Flatten-13 wants INT")


def empty_required_input():
    m = base_model()
    m.graph.node[0].input[1] = ""  # Conv's W
    m.graph.initializer.remove(next(t for t in m.graph.initializer if t.name == "w"))
    expect_refused("conv_no_w", m, "node 'conv' (Conv)", "input 2 ('W') is required but has an empty name")


def body_node():
    cond = numpy_helper.from_array(np.array(True), "cond")
    out = [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)]
    then_g = helper.make_graph([helper.make_node("Relu", ["r", "r"], ["t"], name="bad_inner")], "then", [], out)
    else_g = helper.make_graph([helper.make_node("Identity", ["r"], ["t"], name="ok_inner")], "else", [], out)
    m = insert_after_relu(base_model(), [cond], [helper.make_node("If", ["cond"], ["ri"], name="the_if",
                                                                  then_branch=then_g, else_branch=else_g)])
    expect_refused("if_body", m, "node 'bad_inner' (Relu)", "Relu-14 takes 1 input(s)")


def ir_version_99():
    expect_refused("ir99", base_model(ir=99), "IR version 99 is newer than the newest supported (14")


def duplicated_initializer():
    m = base_model()
    m.graph.initializer.append(numpy_helper.from_array(np.zeros(8, np.float32), "b"))
    expect_refused("dup_init", m, "initializer 'b' is given twice")


def outputs(path_or_model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path_or_model, so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def expect_quantized(name, m):
    onnx.checker.check_model(m, full_check=True)
    d = tmpdir()
    path = os.path.join(d, name + ".onnx")
    onnx.save(m, path)
    quantize(d, path)
    q = os.path.join(d, "out", "quantized_models", name + "_quant_qdq_pc.onnx")
    onnx.checker.check_model(onnx.load(q), full_check=True)
    feeds = {"x": X[:1]}
    for ref, got in zip(outputs(path, feeds), outputs(q, feeds)):
        err = np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-6)
        assert err < 0.05, f"{name}: relative error {err:.3f}"


def valid_edges():
    # Clip with its min input omitted (""), max given.
    hi = numpy_helper.from_array(np.array(1.5, np.float32), "hi")
    expect_quantized("clip_no_min", insert_after_relu(base_model(), [hi], [
        helper.make_node("Clip", ["r", "", "hi"], ["cl"], name="clip")]))
    # Clip-6 with its attributes at opset 10 (converted by onnxquant to the target opset, 13).
    expect_quantized("clip6", insert_after_relu(base_model(opset=10, ir=5), [], [
        helper.make_node("Clip", ["r"], ["cl"], name="clip", min=0.0, max=1.5)]))
    # A double Constant cast to float, a LeakyRelu with its float attribute, a Dropout whose mask output is "".
    expect_quantized("typed_attrs", insert_after_relu(base_model(), [], [
        helper.make_node("Constant", [], ["k64"], name="k", value=numpy_helper.from_array(np.array(0.5), "k64")),
        helper.make_node("Cast", ["k64"], ["k32"], name="kc", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["r", "k32"], ["m"], name="mul"),
        helper.make_node("LeakyRelu", ["m"], ["lr"], name="lrelu", alpha=0.2),
        helper.make_node("Dropout", ["lr"], ["dr", ""], name="drop")]))
    # Initializers also listed as graph inputs (IR 4): not initializers given twice.
    m = base_model(ir=4, opset=9)
    for t in m.graph.initializer:
        m.graph.input.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)))
    expect_quantized("init_inputs", m)
    # The default domain spelled "ai.onnx".
    m = base_model()
    for n in m.graph.node:
        n.domain = "ai.onnx"
    d = tmpdir()
    path = os.path.join(d, "spelled.onnx")
    onnx.save(m, path)
    quantize(d, path)


def table_is_generated():
    got = subprocess.run([sys.executable, os.path.join(SRC, "scripts", "gen_op_schemas.py")], capture_output=True,
                         text=True, check=True).stdout
    with open(os.path.join(SRC, "src", "ir", "op_schemas_table.inc")) as f:
        want = f.read()
    assert got == want, "src/ir/op_schemas_table.inc is not what scripts/gen_op_schemas.py generates: regenerate it"


if __name__ == "__main__":
    r = Runner()
    r.run("a Relu with 2 inputs", relu_two_inputs)
    r.run("an attribute given twice", duplicated_attribute)
    r.run("an unknown attribute", unknown_attribute)
    r.run("Clip-6 min/max attributes at opset 13", clip6_attributes_at_13)
    r.run("an opset-11 Squeeze with an axes input", squeeze_axes_input_at_11)
    r.run("a required attribute missing, an attribute of the wrong type", required_attribute_and_type)
    r.run("a required input with an empty name", empty_required_input)
    r.run("a bad node inside an If body", body_node)
    r.run("IR version 99", ir_version_99)
    r.run("two initializers of one name", duplicated_initializer)
    r.run("valid edge models still quantize", valid_edges)
    r.run("the schema table is generated", table_is_generated)
    r.finish()
