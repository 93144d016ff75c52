"""Writes the tiny hand-made seed models of the fuzz_session target into fuzz/seeds/session/ (one op family
each, symbolic batch, a few hundred bytes): .venv/bin/python fuzz/seeds/make_session_seeds.py"""
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "session")
F = TensorProto.FLOAT
rng = np.random.default_rng(0)


def w(name, *shape, dtype=np.float32):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(dtype), name)


def c(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.array(values, dtype), name)


def save(name, nodes, inits, ins, outs, opset=13):
    g = helper.make_graph(nodes, name, ins, outs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7 if opset < 15 else 8
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(m.SerializeToString())


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


N = helper.make_node
X4 = [vi("x", ["N", 3, 6, 6])]
Y = [vi("y", None)]

# Conv chain: Pad -> Conv+Relu -> BN -> Conv+Clip -> depthwise Conv (fusions, blocked layout, BN folding)
save("conv_chain", [
    N("Pad", ["x", "pads"], ["p"], mode="constant"),
    N("Conv", ["p", "w1", "b1"], ["c1"], kernel_shape=[3, 3]),
    N("Relu", ["c1"], ["r1"]),
    N("BatchNormalization", ["r1", "s", "bb", "m", "v"], ["n1"]),
    N("Conv", ["n1", "w2"], ["c2"], kernel_shape=[1, 1]),
    N("Clip", ["c2", "lo", "hi"], ["r2"]),
    N("Conv", ["r2", "w3"], ["y"], kernel_shape=[3, 3], group=8, pads=[1, 1, 1, 1], strides=[2, 2])],
    [c("pads", [0, 0, 1, 1, 0, 0, 1, 1]), w("w1", 8, 3, 3, 3), w("b1", 8), w("s", 8), w("bb", 8), w("m", 8),
     numpy_helper.from_array(np.ones(8, np.float32), "v"), w("w2", 8, 8, 1, 1), c("lo", 0.0, np.float32),
     c("hi", 6.0, np.float32), w("w3", 8, 1, 3, 3)], X4, Y)
# Pooling, ConvTranspose, Resize, global pooling, flatten, Gemm, Softmax
save("pool_head", [
    N("MaxPool", ["x"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
    N("ConvTranspose", ["p1", "wt"], ["t"], kernel_shape=[2, 2], strides=[2, 2]),
    N("Resize", ["t", "", "sc"], ["r"], mode="linear"),
    N("AveragePool", ["r"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0),
    N("GlobalAveragePool", ["a"], ["g"]),
    N("Flatten", ["g"], ["f"]),
    N("Gemm", ["f", "wg", "bg"], ["h"], transB=1),
    N("Softmax", ["h"], ["y"], axis=-1)],
    [w("wt", 3, 4, 2, 2), c("sc", [1, 1, 0.5, 0.5], np.float32), w("wg", 5, 4), w("bg", 5)], X4, Y)
# Shape ops: Shape/Gather/Concat/Reshape/Transpose/Slice/Split/Unsqueeze/Expand/Tile
save("shape_ops", [
    N("Shape", ["x"], ["s"]),
    N("Gather", ["s", "i0"], ["n"], axis=0),
    N("Unsqueeze", ["n", "ax0"], ["n1"]),
    N("Concat", ["n1", "rest"], ["ns"], axis=0),
    N("Reshape", ["x", "ns"], ["r"]),
    N("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
    N("Slice", ["t", "st", "en", "ax", "stp"], ["sl"]),
    N("Split", ["sl", "spl"], ["a", "b"], axis=2),
    N("Mul", ["a", "b"], ["m"]),
    N("Tile", ["m", "reps"], ["ti"]),
    N("Expand", ["ti", "esh"], ["y"])],
    [c("i0", 0), c("ax0", [0]), c("rest", [3, 36]), c("st", [0, 1]), c("en", [36, 3]), c("ax", [1, 2]),
     c("stp", [2, 1]), c("spl", [1, 1]), c("reps", [1, 2, 1]), c("esh", [2, 1, 1, 1])], X4, Y)
# MatMul / elementwise / reductions / norms
save("matmul_norm", [
    N("MatMul", ["x", "wm"], ["mm"]),
    N("Add", ["mm", "bm"], ["a"]),
    N("LayerNormalization", ["a", "g", "be"], ["ln"], axis=-1),
    N("Sigmoid", ["ln"], ["sg"]),
    N("Mul", ["ln", "sg"], ["sw"]),
    N("ReduceMean", ["sw"], ["rm"], axes=[2], keepdims=1),
    N("Sub", ["sw", "rm"], ["d"]),
    N("Pow", ["d", "two"], ["pw"]),
    N("Sqrt", ["pw"], ["sq"]),
    N("Where", ["cond", "sq", "d"], ["wh"]),
    N("ReduceSum", ["wh", "axes"], ["y"], keepdims=0)],
    [w("wm", 6, 6), w("bm", 6), w("g", 6), w("be", 6), c("two", 2.0, np.float32),
     numpy_helper.from_array(np.array([True, False, True, False, True, False]), "cond"), c("axes", [1])],
    X4, Y, opset=17)
# QDQ: QuantizeLinear/DequantizeLinear per tensor and per channel around a Conv
save("qdq_conv", [
    N("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
    N("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
    N("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
    N("Conv", ["xd", "wd"], ["cv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    N("QuantizeLinear", ["cv", "ys", "yz"], ["yq"]),
    N("DequantizeLinear", ["yq", "ys", "yz"], ["y"])],
    [c("xs", 0.05, np.float32), c("xz", 3, np.uint8), c("wq", rng.integers(-100, 100, (4, 3, 3, 3)), np.int8),
     c("ws", [0.01, 0.02, 0.03, 0.04], np.float32), c("wz", [0, 0, 0, 0], np.int8), c("ys", 0.1, np.float32),
     c("yz", 0, np.int8)], X4, Y)
# Integer / cast / comparison / ArgMax / TopK / OneHot-free index ops
save("int_ops", [
    N("Cast", ["x"], ["xi"], to=TensorProto.INT64),
    N("Cast", ["xi"], ["xf"], to=TensorProto.FLOAT),
    N("Greater", ["x", "xf"], ["gt"]),
    N("Not", ["gt"], ["ng"]),
    N("Cast", ["ng"], ["nf"], to=TensorProto.FLOAT),
    N("ArgMax", ["nf"], ["am"], axis=1, keepdims=0),
    N("TopK", ["x", "k"], ["tv", "ti"], axis=-1),
    N("GatherElements", ["x", "ti"], ["ge"], axis=3),
    N("Min", ["ge", "tv"], ["mn"]),
    N("Neg", ["mn"], ["ng2"]),
    N("Abs", ["ng2"], ["y"])],
    [c("k", [2])], X4, Y)
# Int8 inputs straight into DequantizeLinear, int64 index input into Gather
save("typed_inputs", [
    N("DequantizeLinear", ["q", "s", "z"], ["d"]),
    N("Gather", ["d", "idx"], ["g"], axis=1),
    N("ReduceMax", ["g"], ["y"], keepdims=1)],
    [c("s", 0.5, np.float32), c("z", -3, np.int8)],
    [vi("q", ["N", 5], TensorProto.INT8), vi("idx", [3], TensorProto.INT64)], Y)
# Old opset (Upsample, BatchNormalization with spatial, Dropout) for the opset conversion
save("old_opset", [
    N("Dropout", ["x"], ["d"], ratio=0.3),
    N("Upsample", ["d", "sc"], ["u"], mode="nearest"),
    N("Conv", ["u", "wc"], ["cv"], kernel_shape=[1, 1]),
    N("BatchNormalization", ["cv", "s", "b", "m", "v"], ["bn"]),
    N("Identity", ["bn"], ["id"]),
    N("LeakyRelu", ["id"], ["y"], alpha=0.2)],
    [c("sc", [1, 1, 2, 2], np.float32), w("wc", 4, 3, 1, 1), w("s", 4), w("b", 4), w("m", 4),
     numpy_helper.from_array(np.ones(4, np.float32), "v")], X4, Y, opset=9)
print("wrote", sorted(os.listdir(OUT)))
