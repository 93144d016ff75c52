"""src/onnx review fixes (nineteenth session), each checked against onnxruntime / onnx / the input's sha256:

- a model's external data file is protected from the run's outputs wherever the tensor that names it sits: a
  Constant's `value` or `sparse_value`, an initializer of an If branch, training_info (only top-level initializers
  were listed, and the quantized model was written over the others, breaking the input model);
- `onnxquant run` refuses an output .npy that would replace an external data file of the model;
- FLOAT16 / BFLOAT16 int32_data entries outside 0..65535 are refused naming the tensor, as onnxruntime refuses
  them ("data overflow"), instead of being cut to 16 bits;
- an external data location such as 'w:1.bin' is a file name on POSIX (onnxruntime reads it), not a drive;
- the IR 11 ModelProto.configuration and NodeProto.device_configurations are written back, as quantize_static
  keeps them.
"""
import hashlib
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import default_mode_config, ort_session, run_oq, run_module_tests, tmpdir  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3)).astype(np.float32)
B = RNG.standard_normal(3).astype(np.float32)
X1 = np.ones((1, 4), np.float32)
OUT = os.path.join("quantized_models", "m_quant_qdq_pc.onnx")  # default export_dir, per-channel name


def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def external(arr, name, d, location):
    """A TensorProto of `arr` whose data is in d/location (written here), as onnx's external data writes it."""
    t = numpy_helper.from_array(arr, name)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in {"location": location, "offset": "0", "length": str(arr.nbytes)}.items():
        t.external_data.add(key=k, value=v)
    path = os.path.join(d, location)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(arr.tobytes())
    return t


def model(nodes, inits, ir=8, opset=17, out="y"):
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["mm"], name="mm")] + nodes, "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(W, "W")] + inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


def quantize_into(d, path, opset=17):
    """Quantizes `path` with --output-dir d (the quantized model goes to d/OUT)."""
    np.savez(os.path.join(d, "calib.npz"), x=RNG.random((16, 4)).astype(np.float32))
    cfg = os.path.join(d, "c.yaml")
    with open(cfg, "w") as f:
        f.write(default_mode_config(path, os.path.join(d, "calib.npz"), opset=opset))
    return run_oq(["--config", cfg, "--output-dir", d], check=False)


def assert_refused_and_intact(d, p, data_file, want):
    """Refused naming the data file (exit 2, one error line); its bytes and the input model's outputs unchanged."""
    errors = [ln for ln in p.stderr.splitlines() if "error" in ln]
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert len(errors) == 1 and data_file in errors[0] and "external data file" in errors[0], p.stderr[-2000:]
    got = ort_session(os.path.join(d, "m.onnx")).run(None, {"x": X1})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def check_protected(d, nodes, inits, data_file):
    path = os.path.join(d, "m.onnx")
    onnx.save(model(nodes, inits), path)
    before = sha(data_file)
    want = X1 @ W + B
    np.testing.assert_allclose(ort_session(path).run(None, {"x": X1})[0], want, rtol=1e-6)
    p = quantize_into(d, path)
    assert sha(data_file) == before, "the input model's external data file was overwritten"
    assert_refused_and_intact(d, p, data_file, want)


def test_constant_value_external_data_is_protected():
    d = tmpdir("oq_onnxio_")
    t = external(B, "bconst", d, OUT)
    check_protected(d, [helper.make_node("Constant", [], ["b"], name="cb", value=t),
                        helper.make_node("Add", ["mm", "b"], ["y"], name="add")], [], os.path.join(d, OUT))


def test_constant_sparse_value_external_data_is_protected():
    d = tmpdir("oq_onnxio_")
    vals = external(B, "bsp", d, OUT)
    sp = helper.make_sparse_tensor(vals, numpy_helper.from_array(np.arange(3, dtype=np.int64), "idx"), [3])
    check_protected(d, [helper.make_node("Constant", [], ["b"], name="cb", sparse_value=sp),
                        helper.make_node("Add", ["mm", "b"], ["y"], name="add")], [], os.path.join(d, OUT))


def test_subgraph_initializer_external_data_is_protected():
    d = tmpdir("oq_onnxio_")
    bt = external(B, "bt", d, OUT)
    y_info = helper.make_tensor_value_info("yb", TensorProto.FLOAT, None)
    then_g = helper.make_graph([helper.make_node("Add", ["mm", "bt"], ["yb"], name="then_add")], "then", [],
                               [y_info], [bt])
    else_g = helper.make_graph([helper.make_node("Sub", ["mm", "be"], ["yb"], name="else_sub")], "else", [],
                               [y_info], [numpy_helper.from_array(B, "be")])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["c"], name="gt"),
             helper.make_node("If", ["c"], ["y"], name="if", then_branch=then_g, else_branch=else_g)]
    check_protected(d, nodes, [numpy_helper.from_array(np.float32(0), "zero")], os.path.join(d, OUT))


def test_training_info_external_data_is_protected():
    # training_info is written back as read, not read: the file it names is still the input model's.
    d = tmpdir("oq_onnxio_")
    path = os.path.join(d, "m.onnx")
    m = model([helper.make_node("Add", ["mm", "b"], ["y"], name="add")], [numpy_helper.from_array(B, "b")])
    init = helper.make_graph([], "init", [], [], [external(B, "ti_b", d, OUT)])
    m.training_info.add().initialization.CopyFrom(init)
    onnx.save(m, path)
    data_file = os.path.join(d, OUT)
    before = sha(data_file)
    p = quantize_into(d, path)
    assert sha(data_file) == before, "the input model's external data file was overwritten"
    assert_refused_and_intact(d, p, data_file, X1 @ W + B)


def test_run_refuses_an_output_over_external_data():
    d = tmpdir("oq_onnxio_")
    w = external(W, "W", d, "y.npy")  # the output y would be written as d/y.npy
    m = model([helper.make_node("Add", ["mm", "b"], ["y"], name="add")], [numpy_helper.from_array(B, "b")])
    m.graph.initializer[0].CopyFrom(w)
    path = os.path.join(d, "m.onnx")
    onnx.save(m, path)
    np.save(os.path.join(d, "x.npy"), X1)
    before = sha(os.path.join(d, "y.npy"))
    p = run_oq(["run", path, "--input", "x=" + os.path.join(d, "x.npy"), "--output-dir", d], check=False)
    assert sha(os.path.join(d, "y.npy")) == before, "run wrote its output over the model's external data file"
    assert_refused_and_intact(d, p, os.path.join(d, "y.npy"), X1 @ W + B)


def float16_model(d, dtype, bits):
    t = TensorProto()
    t.name, t.data_type = "h", dtype
    t.dims.append(1)
    t.int32_data.extend([bits])
    g = helper.make_graph([helper.make_node("Cast", ["h"], ["o"], to=TensorProto.FLOAT),
                           helper.make_node("Add", ["x", "o"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [t])
    path = os.path.join(d, f"m{dtype}_{bits}.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def run_model(d, path, x):
    np.save(os.path.join(d, "x.npy"), x)
    out = os.path.join(d, "o_" + os.path.basename(path))
    p = run_oq(["run", path, "--input", "x=" + os.path.join(d, "x.npy"), "--output-dir", out], check=False)
    return p, (np.load(os.path.join(out, "y.npy")) if p.returncode == 0 else None)


def test_float16_int32_data_over_16_bits_refused():
    d = tmpdir("oq_onnxio_")
    x = np.zeros(1, np.float32)
    for dtype, label in ((TensorProto.FLOAT16, "FLOAT16"), (TensorProto.BFLOAT16, "BFLOAT16")):
        ok = float16_model(d, dtype, 0x3F80 if dtype == TensorProto.BFLOAT16 else 0x3C00)  # 1.0
        p, y = run_model(d, ok, x)
        assert p.returncode == 0, p.stderr[-2000:]
        np.testing.assert_array_equal(y, ort_session(ok).run(None, {"x": x})[0])
        for bits in (0x13C00, -1):
            bad = float16_model(d, dtype, bits)
            try:
                ort_session(bad)
                raise AssertionError("onnxruntime accepted the model")
            except Exception as e:  # onnxruntime: "data overflow"
                assert "overflow" in str(e), str(e)
            p, _ = run_model(d, bad, x)
            errors = [ln for ln in p.stderr.splitlines() if "error" in ln]
            assert p.returncode == 1 and len(errors) == 1, (p.returncode, p.stderr[-2000:])
            assert f"tensor 'h': {label} int32_data entry {bits} at element 0 does not fit 16 bits" in errors[0], \
                errors[0]


def test_location_with_colon_is_a_file_name():
    d = tmpdir("oq_onnxio_")
    m = model([helper.make_node("Add", ["mm", "b"], ["y"], name="add")], [numpy_helper.from_array(B, "b")])
    m.graph.initializer[0].CopyFrom(external(W, "W", d, "w:1.bin"))
    path = os.path.join(d, "m.onnx")
    onnx.save(m, path)
    p, y = run_model(d, path, X1)
    assert p.returncode == 0, p.stderr[-2000:]
    np.testing.assert_array_equal(y, ort_session(path).run(None, {"x": X1})[0])
    # Still refused: a real absolute path, a '..' escape.
    for loc in (os.path.join(d, "w:1.bin"), "../w:1.bin"):
        m.graph.initializer[0].external_data[0].value = loc
        onnx.save(m, path)
        p, _ = run_model(d, path, X1)
        assert p.returncode == 1 and ("absolute path" in p.stderr or "leaves the model's folder" in p.stderr), \
            p.stderr[-2000:]


def test_device_configurations_kept():
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    d = tmpdir("oq_onnxio_")
    m = model([helper.make_node("Add", ["mm", "b"], ["a"], name="add"),
               helper.make_node("Reshape", ["a", "shp"], ["y"], name="resh")],
              [numpy_helper.from_array(B, "b"), numpy_helper.from_array(np.array([-1, 3], np.int64), "shp")], ir=11,
              opset=21)
    c = m.configuration.add()
    c.name, c.num_devices = "cfg1", 2
    c.device.extend(["d0", "d1"])
    dc = m.graph.node[-1].device_configurations.add()
    dc.configuration_id, dc.pipeline_stage = "cfg1", 1
    s = dc.sharding_spec.add()
    s.tensor_name = "a"
    s.device.extend([0, 1])
    s.sharded_dim.add(axis=0).simple_sharding.add(dim_param="N", num_shards=2)
    path = os.path.join(d, "m.onnx")
    onnx.save(m, path)
    p = quantize_into(d, path, opset=21)
    assert p.returncode == 0, p.stderr[-2000:]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": RNG.random((1, 4)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(path, os.path.join(d, "ort.onnx"), Reader(), quant_format=QuantFormat.QDQ)
    ours, ref = onnx.load(os.path.join(d, OUT)), onnx.load(os.path.join(d, "ort.onnx"))

    def node_configs(mp):
        return [[c.SerializeToString() for c in n.device_configurations] for n in mp.graph.node if n.name == "resh"]

    assert [c.SerializeToString() for c in ref.configuration] == [c.SerializeToString() for c in m.configuration]
    assert [c.SerializeToString() for c in ours.configuration] == [c.SerializeToString() for c in ref.configuration]
    assert node_configs(ref) == node_configs(m) and len(node_configs(m)[0]) == 1
    assert node_configs(ours) == node_configs(ref)
    onnx.checker.check_model(os.path.join(d, OUT), full_check=True)


if __name__ == "__main__":
    run_module_tests(globals())
