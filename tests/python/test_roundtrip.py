"""Round-trips ONNX models through onnxquant's I/O layer (tests/tools/oq_roundtrip) and compares the result
with the original using the onnx library: checker on the output, initializers equal as numpy arrays (raw_data
vs typed fields normalised), nodes / attributes / value infos / metadata / functions equal.

Env: OQ_BUILD_DIR (built tree holding tests/oq_roundtrip), OQ_SOURCE_DIR, OQ_SHARED_DIR.
"""
import glob
import os
import struct
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SRC = os.environ.get("OQ_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHARED = os.environ.get("OQ_SHARED_DIR", os.path.join(SRC, "..", "shared"))
BUILD = os.environ.get("OQ_BUILD_DIR", os.path.join(SRC, "build"))
TOOL = os.path.join(BUILD, "tests", "oq_roundtrip")


def roundtrip(src, dst, external=None):
    cmd = [TOOL, src, dst] + (["--external", str(external)] if external is not None else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"oq_roundtrip {src} failed: {r.stderr.strip()}"


def tensor_value(t, base_dir=None):
    if base_dir and t.data_location == TensorProto.EXTERNAL:
        t2 = TensorProto()
        t2.CopyFrom(t)
        onnx.external_data_helper.load_external_data_for_tensor(t2, base_dir)
        t = t2
    a = numpy_helper.to_array(t)
    if a.dtype == object:
        return ("strings", list(a.flatten()))
    # Compare bit patterns (NaNs and -0.0 included); 4-bit types hold one element per byte here.
    return (str(a.dtype), a.shape, np.ascontiguousarray(a).tobytes())


def eq_tensor(a, b, where, a_dir=None, b_dir=None):
    assert a.name == b.name, f"{where}: tensor name {a.name!r} vs {b.name!r}"
    assert a.doc_string == b.doc_string, f"{where}: tensor doc"
    assert a.data_type == b.data_type, f"{where}: data_type {a.data_type} vs {b.data_type}"
    assert list(a.dims) == list(b.dims), f"{where}: dims {list(a.dims)} vs {list(b.dims)}"
    assert tensor_value(a, a_dir) == tensor_value(b, b_dir), f"{where}: values differ"


def eq_attr(a, b, where, a_dir=None, b_dir=None):
    w = f"{where} attr {a.name}"
    assert a.name == b.name and a.type == b.type, f"{w}: name/type"
    assert a.doc_string == b.doc_string and a.ref_attr_name == b.ref_attr_name, f"{w}: doc/ref"
    T = onnx.AttributeProto
    if a.type == T.FLOAT:
        assert struct.pack("<f", a.f) == struct.pack("<f", b.f), f"{w}: f"
    elif a.type == T.INT:
        assert a.i == b.i, f"{w}: i"
    elif a.type == T.STRING:
        assert a.s == b.s, f"{w}: s"
    elif a.type == T.TENSOR:
        eq_tensor(a.t, b.t, w)
    elif a.type == T.GRAPH:
        eq_graph(a.g, b.g, w, a_dir, b_dir)
    elif a.type == T.FLOATS:
        assert struct.pack(f"<{len(a.floats)}f", *a.floats) == struct.pack(f"<{len(b.floats)}f", *b.floats), w
    elif a.type == T.INTS:
        assert list(a.ints) == list(b.ints), f"{w}: ints"
    elif a.type == T.STRINGS:
        assert list(a.strings) == list(b.strings), f"{w}: strings"
    elif a.type == T.TENSORS:
        assert len(a.tensors) == len(b.tensors), f"{w}: tensors"
        for x, y in zip(a.tensors, b.tensors):
            eq_tensor(x, y, w)
    elif a.type == T.GRAPHS:
        assert len(a.graphs) == len(b.graphs), f"{w}: graphs"
        for x, y in zip(a.graphs, b.graphs):
            eq_graph(x, y, w, a_dir, b_dir)
    else:
        assert a == b, f"{w}: kept attribute differs"


def eq_vi(a, b, where):
    assert a.name == b.name, f"{where}: value name {a.name} vs {b.name}"
    assert a.doc_string == b.doc_string, f"{where} {a.name}: doc"
    assert a.HasField("type") == b.HasField("type") and a.type == b.type, f"{where} {a.name}: type {a.type} vs {b.type}"


def eq_graph(a, b, where, a_dir=None, b_dir=None):
    w = f"{where} graph {a.name}"
    assert a.name == b.name and a.doc_string == b.doc_string, f"{w}: name/doc"
    assert len(a.node) == len(b.node), f"{w}: node count"
    for i, (x, y) in enumerate(zip(a.node, b.node)):
        nw = f"{w} node {i} {x.name}"
        for f in ("name", "op_type", "domain", "doc_string"):
            assert getattr(x, f) == getattr(y, f), f"{nw}: {f}"
        assert list(x.input) == list(y.input) and list(x.output) == list(y.output), f"{nw}: inputs/outputs"
        assert len(x.attribute) == len(y.attribute), f"{nw}: attribute count"
        for p, q in zip(x.attribute, y.attribute):
            eq_attr(p, q, nw, a_dir, b_dir)
    for f in ("input", "output", "value_info"):
        la, lb = getattr(a, f), getattr(b, f)
        assert len(la) == len(lb), f"{w}: {f} count"
        for x, y in zip(la, lb):
            eq_vi(x, y, f"{w} {f}")
    assert len(a.initializer) == len(b.initializer), f"{w}: initializer count"
    for x, y in zip(a.initializer, b.initializer):
        eq_tensor(x, y, f"{w} initializer {x.name}", a_dir, b_dir)
    assert list(a.sparse_initializer) == list(b.sparse_initializer), f"{w}: sparse initializers"
    assert list(a.quantization_annotation) == list(b.quantization_annotation), f"{w}: quantization annotation"


def eq_model(a, b, a_dir=None, b_dir=None):
    for f in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        assert getattr(a, f) == getattr(b, f), f"model {f}: {getattr(a, f)!r} vs {getattr(b, f)!r}"
    assert [(o.domain, o.version) for o in a.opset_import] == [(o.domain, o.version) for o in b.opset_import]
    assert [(p.key, p.value) for p in a.metadata_props] == [(p.key, p.value) for p in b.metadata_props]
    assert list(a.functions) == list(b.functions), "functions differ"
    assert list(a.training_info) == list(b.training_info), "training_info differs"
    eq_graph(a.graph, b.graph, "main", a_dir, b_dir)


def feature_model(path):
    """A model using metadata, doc strings, a custom-domain function, If subgraphs, symbolic dims and typed
    initializer fields (INT4/UINT4 of odd length among them)."""
    fn = helper.make_function(
        "com.example", "MyScale", ["x"], ["y"],
        [helper.make_node("Mul", ["x", "x"], ["y"])],
        [helper.make_opsetid("", 21)], doc_string="squares")
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["t_c"], ["t_out"], name="then_id")], "then_g", [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(np.ones((2, 3), np.float32), "t_c")], doc_string="then doc")
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["Y"], ["e_out"], name="else_neg")], "else_g", [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, ["N", 3])])
    custom = helper.make_node("MyScale", ["X"], ["Y"], name="custom0", domain="com.example", doc_string="node doc")
    iff = helper.make_node("If", ["cond"], ["Z"], name="if0", then_branch=then_g, else_branch=else_g)
    const = helper.make_node("Constant", [], ["C"], name="const0",
                             value=helper.make_tensor("cval", TensorProto.FLOAT16, [2], [1.0, -2.5]))
    const.attribute[0].doc_string = "attribute doc"
    cast = helper.make_node("Cast", ["C"], ["C32"], name="cast0", to=TensorProto.FLOAT)
    inits = [
        helper.make_tensor("i4_3", TensorProto.INT4, [3], [-8, 7, -1]),
        helper.make_tensor("i4_5", TensorProto.INT4, [5], [1, -2, 3, -4, 5]),
        helper.make_tensor("u4_7", TensorProto.UINT4, [7], [15, 14, 13, 12, 11, 10, 9]),
        helper.make_tensor("u4_3raw", TensorProto.UINT4, [3], bytes([0x21, 0x03]), raw=True),
        helper.make_tensor("f16", TensorProto.FLOAT16, [3], [0.5, -1.0, 65504.0]),
        helper.make_tensor("bf16", TensorProto.BFLOAT16, [2], [1.0, -3.0]),
        helper.make_tensor("b", TensorProto.BOOL, [3], [True, False, True]),
        helper.make_tensor("i8", TensorProto.INT8, [2], [-128, 127]),
        helper.make_tensor("u16", TensorProto.UINT16, [2], [0, 65535]),
        helper.make_tensor("u32", TensorProto.UINT32, [2], [4000000000, 1]),
        helper.make_tensor("u64", TensorProto.UINT64, [1], [2**63 + 5]),
        helper.make_tensor("f64", TensorProto.DOUBLE, [2], [0.1, -1e300]),
        helper.make_tensor("i64", TensorProto.INT64, [2], [-(2**62), 3]),
        helper.make_tensor("s", TensorProto.STRING, [2], [b"hello", b"\x00bin"]),
        helper.make_tensor("f32", TensorProto.FLOAT, [2, 2], [1.0, float("nan"), -0.0, 3.5]),
    ]
    inits[0].doc_string = "initializer doc"
    graph = helper.make_graph(
        [custom, iff, const, cast], "main",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3], doc_string="input doc"),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("Z", TensorProto.FLOAT, ["N", None]),
         helper.make_tensor_value_info("C32", TensorProto.FLOAT, [2])],
        initializer=inits, doc_string="graph doc",
        value_info=[helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3], doc_string="vi doc"),
                    helper.make_tensor_sequence_value_info("unused_seq", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.example", 1)],
                              functions=[fn], producer_name="oq-py-test", producer_version="0.1",
                              domain="org.example", model_version=42, doc_string="model doc")
    helper.set_model_props(model, {"author": "test", "purpose": "roundtrip"})
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return model


def check_file(src, tmp, external=None):
    orig = onnx.load(src)
    out = os.path.join(tmp, "out.onnx")
    roundtrip(src, out, external)
    back = onnx.load(out, load_external_data=False)
    onnx.checker.check_model(out)
    eq_model(orig, back, os.path.dirname(src), tmp)
    if external is None:
        # Idempotent: saving what we saved gives the same bytes.
        out2 = os.path.join(tmp, "out2.onnx")
        roundtrip(out, out2)
        with open(out, "rb") as f1, open(out2, "rb") as f2:
            assert f1.read() == f2.read(), "save(load(x)) is not a fixed point"
    else:
        assert any(t.data_location == TensorProto.EXTERNAL for t in back.graph.initializer), "no external tensor"


def test_int4_bytes(tmp):
    """The saved INT4/UINT4 raw_data is the packed form, low nibble first."""
    src = os.path.join(tmp, "feat.onnx")
    out = os.path.join(tmp, "feat_out.onnx")
    roundtrip(src, out)
    back = {t.name: t for t in onnx.load(out).graph.initializer}
    assert back["i4_3"].raw_data == bytes([0x78, 0x0F]), back["i4_3"].raw_data
    assert back["i4_5"].raw_data == bytes([0xE1, 0xC3, 0x05]), back["i4_5"].raw_data
    assert back["u4_7"].raw_data == bytes([0xEF, 0xCD, 0xAB, 0x09]), back["u4_7"].raw_data
    assert back["u4_3raw"].raw_data == bytes([0x21, 0x03]), back["u4_3raw"].raw_data
    assert list(back["s"].string_data) == [b"hello", b"\x00bin"]


def main():
    assert os.path.exists(TOOL), f"{TOOL} not built"
    passed = failed = 0
    models = sorted(glob.glob(os.path.join(SRC, "testdata", "*.onnx")))
    models += sorted(glob.glob(os.path.join(SHARED, "models", "*.onnx")))
    with tempfile.TemporaryDirectory() as tmp:
        feat = os.path.join(tmp, "feat.onnx")
        cases = [("build feature model", lambda d: feature_model(feat))]
        cases.append(("feature model", lambda d: check_file(feat, d)))
        cases.append(("feature model int4 bytes", lambda d: test_int4_bytes(tmp)))
        cases.append(("feature model, external data", lambda d: check_file(feat, d, external=0)))
        for m in models:
            cases.append((m, lambda d, m=m: check_file(m, d)))
        if models:
            cases.append((models[-1] + " external", lambda d, m=models[-1]: check_file(m, d, external=1024)))
        for name, fn in cases:
            with tempfile.TemporaryDirectory() as d:
                try:
                    fn(d)
                    passed += 1
                    print(f"PASS {name}")
                except Exception:
                    failed += 1
                    print(f"FAIL {name}")
                    traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or passed == 0 else 0)


if __name__ == "__main__":
    main()
