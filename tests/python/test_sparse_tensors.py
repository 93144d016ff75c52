"""Sparse initializers (GraphProto.sparse_initializer) and Constant's sparse_value: made dense at load, as
onnxruntime's Graph makes them (onnxquant used to keep sparse initializers aside and then refuse their readers:
"input 'G' is not produced by any node, graph input or initializer").

Checked: `onnxquant run` on models with sparse tensors (indices [NNZ] positions and [NNZ, rank] coordinates, INT64
and INT32 indices, unsorted indices, a Constant's sparse_value) gives onnxruntime's outputs; default mode on the
sparse model writes the QDQ model that quant_pre_process + quantize_static write for the same model with dense
initializers (quantize_static itself cannot read the sparse one); the model written is valid (onnx.checker).
Malformed sparse tensors are refused by the bad-input catalogue (bad_inputs_models.py, model_sparse_*).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import Runner, ort_session, run_oq, tmpdir  # noqa: E402
from test_inline_functions import quantize_raw  # noqa: E402
from test_op_parity import compare_with_ort, img, rnd  # noqa: E402


def sparse(name, a, coords=False, idx_type=np.int64, order=None):
    """SparseTensorProto of array a (its non-zeros); indices as positions or coordinates, in `order` if given."""
    pos = np.flatnonzero(a)
    if order is not None:
        pos = pos[order(len(pos))]
    idx = np.stack(np.unravel_index(pos, a.shape), 1) if coords else pos
    return helper.make_sparse_tensor(numpy_helper.from_array(a.ravel()[pos], name),
                                     numpy_helper.from_array(idx.astype(idx_type), name + "_idx"), list(a.shape))


def thin(a, cut):
    a = a.copy()
    a[np.abs(a) < cut] = 0
    return a


def model(sparse_ones, idx_type=np.int64, order=None):
    """input -> Conv(W0, b0) -> Relu -> Conv(W1, b1) -> Sub(k) -> Mul(constant s) -> y; the tensors named in
    `sparse_ones` are sparse initializers (W1 with coordinates, the others with positions), the rest dense; s is a
    Constant whose value is sparse_value when "s" is named, else value."""
    dense = {"W0": rnd(1, (4, 3, 3, 3)), "b0": rnd(2, (4,), 0.1), "W1": thin(rnd(3, (4, 4, 3, 3)), 0.3),
             "b1": thin(rnd(4, (4,), 0.2), 0.1), "k": thin(rnd(5, (4, 1, 1), 1.0), 0.5)}
    s_val = np.array([[[0.0]], [[1.5]], [[0.0]], [[-0.5]]], np.float32)
    s_attr = ({"sparse_value": sparse("s_val", s_val, idx_type=idx_type)} if "s" in sparse_ones
              else {"value": numpy_helper.from_array(s_val, "s_val")})
    nodes = [helper.make_node("Conv", ["input", "W0", "b0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"], name="relu"),
             helper.make_node("Conv", ["r0", "W1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Sub", ["c1", "k"], ["d"], name="sub"),
             helper.make_node("Constant", [], ["s"], name="const_s", **s_attr),
             helper.make_node("Mul", ["d", "s"], ["y"], name="mul")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [numpy_helper.from_array(v, n) for n, v in dense.items() if n not in sparse_ones])
    g.sparse_initializer.extend(sparse(n, dense[n], coords=n == "W1", idx_type=idx_type, order=order)
                                for n in sparse_ones if n != "s")
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def run_both(m):
    """onnxquant run and onnxruntime on m, 4 samples: the outputs agree."""
    work = tmpdir()
    p = os.path.join(work, "m.onnx")
    onnx.save(m, p)
    x = img(7)[:4]
    sess = ort_session(p)
    for i in range(len(x)):
        want = sess.run(None, {"input": x[i:i + 1]})[0]
        np.save(os.path.join(work, "x.npy"), x[i:i + 1])
        out = os.path.join(work, f"o{i}")
        run_oq(["run", p, "--input", "input=" + os.path.join(work, "x.npy"), "--output-dir", out])
        got = np.load(os.path.join(out, "y.npy"))
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5), np.abs(got - want).max()


def run_matches_ort():
    run_both(model({"W1", "b1", "k", "s"}))


def sparse_value_constant():
    # A Constant's sparse_value on its own (the executor used to refuse it: "sparse_value is not supported").
    run_both(model({"s"}))


def int32_and_unsorted_indices():
    # INT32 indices and indices out of order: onnx.checker refuses both, onnxruntime reads them (as onnxquant).
    run_both(model({"W1", "b1", "k", "s"}, idx_type=np.int32, order=lambda n: np.arange(n)[::-1]))


def quantized_as_the_dense_model():
    x = img(8)
    _, _, ort_out, ours = quantize_raw(model({"W1", "b1", "k", "s"}), x, 17, ort_model=model(set()))
    b = onnx.load(ours)  # passes onnx.checker (quantize_raw)
    assert not b.graph.sparse_initializer
    compare_with_ort(ort_out, ours)  # wiring node by node, scales and zero points, quantized weights
    assert "W1_quantized" in {t.name for t in b.graph.initializer}
    ya = ort_session(ort_out).run(None, {"input": x[:1]})[0]
    yb = ort_session(ours).run(None, {"input": x[:1]})[0]
    assert np.abs(ya - yb).max() <= np.abs(ya).max() / 100, np.abs(ya - yb).max()

if __name__ == "__main__":
    r = Runner()
    r.run("sparse initializers and sparse_value: onnxquant run = onnxruntime", run_matches_ort)
    r.run("Constant sparse_value alone: onnxquant run = onnxruntime", sparse_value_constant)
    r.run("sparse tensors: INT32 and unsorted indices, as onnxruntime", int32_and_unsorted_indices)
    r.run("sparse initializers: quantized as quantize_static quantizes the dense model", quantized_as_the_dense_model)
    r.finish()
