"""HardSwish, Mish and Swish: onnxquant's pre-processing expands them as ORT's quant_pre_process does, so that
default mode on the raw model writes the QDQ model that quant_pre_process + quantize_static write.

ORT gets the raw model through quant_pre_process (whose inliner expands the three function ops: HardSigmoid + Mul,
Softplus + Tanh + Mul, Cast(alpha) + Mul + Sigmoid + Mul); onnxquant gets the raw model itself. Checked: the same
wiring node by node (tensor names included: `_inlfunc_<Op>_...`, `_inlfunc_<Op>_token_<k>_...` for later
instances), scales and zero points equal (1e-6 relative), our model passes onnx.checker full_check and gives ORT's
outputs in onnxruntime. That the expanded float graph computes what the ops do: tests/unit/test_fusions.cc.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, default_mode_config, run_oq, tmpdir  # noqa: E402
from test_op_parity import DictReader, compare_with_ort, img, init, rnd  # noqa: E402


def conv_act_model(acts, opset):
    """Conv -> act[0] -> Conv -> act[1] -> ... (3 channels), one output."""
    nodes, inits, x = [], [], "input"
    for i, (op, attrs) in enumerate(acts):
        inits += [init(f"W{i}", rnd(60 + i, (3, 3, 3, 3))), init(f"b{i}", rnd(70 + i, (3,), 0.1))]
        nodes.append(helper.make_node("Conv", [x, f"W{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]))
        y = "y" if i == len(acts) - 1 else f"a{i}"
        nodes.append(helper.make_node(op, [f"c{i}"], [y], name=f"act{i}", **attrs))
        x = y
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = {14: 7, 18: 8, 21: 10, 24: 12}[opset]
    return m


def quantize_raw(m, x, opset, ort_model=None):
    """quant_pre_process + quantize_static and onnxquant's default mode on the raw model m (ORT gets ort_model
    instead when given: the same model in a form quantize_static can read)."""
    work = tmpdir()
    raw, pre = os.path.join(work, "float.onnx"), os.path.join(work, "pre.onnx")
    onnx.save(m, raw)
    ort_raw = raw
    if ort_model is not None:
        ort_raw = os.path.join(work, "ort_float.onnx")
        onnx.save(ort_model, ort_raw)
    quant_pre_process(ort_raw, pre)
    ort_out = os.path.join(work, "ort.onnx")
    quantize_static(pre, ort_out, DictReader(x), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    np.savez(os.path.join(work, "calib.npz"), input=x)
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(raw, os.path.join(work, "calib.npz"), True, opset))
    run_oq(["--config", cfg, "--output-dir", os.path.join(work, "oq"), "--threads", "1"])
    ours = os.path.join(work, "oq", "quantized_models", "float_quant_qdq_pc.onnx")
    onnx.checker.check_model(onnx.load(ours), full_check=True)
    return raw, pre, ort_out, ours


def check(acts, opset):
    m, x = conv_act_model(acts, opset), img(11)
    raw, pre, ort_out, ours = quantize_raw(m, x, opset)
    a, b = compare_with_ort(ort_out, ours)  # wiring node by node, scales and zero points
    ops = {n.op_type for n in b.graph.node}
    assert not ops & {"HardSwish", "Mish", "Swish"}, ops
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    run = lambda p: np.concatenate([ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])  # noqa: E731
                                    .run(None, {"input": x[i:i + 1]})[0] for i in range(4)])
    ya, yb = run(ort_out), run(ours)
    assert np.abs(ya - yb).max() <= np.abs(ya).max() / 100, np.abs(ya - yb).max()
    return a, b


def hardswish():
    for opset in (14, 21):
        check([("HardSwish", {})], opset)


def mish():
    check([("Mish", {})], 18)


def swish():
    _, b = check([("Swish", {"alpha": 1.5})], 24)
    alpha = [t for t in b.graph.initializer if t.name == "_inlfunc_Swish_Alpha"]
    assert alpha and onnx.numpy_helper.to_array(alpha[0]) == np.float32(1.5), alpha


def several_instances():
    # Later instances of an op type get ORT's `_token_<k>_` names (one counter over the graph, in node order).
    _, b = check([("HardSwish", {}), ("Mish", {}), ("HardSwish", {}), ("Mish", {})], 21)
    outs = {o for n in b.graph.node for o in n.output}
    assert {"_inlfunc_HardSwish_HS_X", "_inlfunc_HardSwish_token_0_HS_X", "_inlfunc_Mish_token_1_Softplus_X"} <= outs


if __name__ == "__main__":
    r = Runner()
    r.run("HardSwish (opsets 14, 21) as quant_pre_process + quantize_static", hardswish)
    r.run("Mish (opset 18)", mish)
    r.run("Swish (opset 24): Cast of the alpha constant, quantized like ORT", swish)
    r.run("several instances: ORT's token names", several_instances)
    r.finish()
