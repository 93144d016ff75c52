#!/usr/bin/env python3
"""Check onnxquant's digits test models with onnxruntime (the oracle), and print what testdata/README.md quotes.

Run from the repository root with the test venv:

    .venv/bin/python scripts/check_test_models.py [--dir testdata]

For each model: onnx.checker, opset, input/output names and the dynamic batch dimension, op histogram,
parameter count (elements of the float initializers, i.e. after the exporter's BN folding), weight tensor
count (Conv/Gemm/MatMul weights) and float top-1 accuracy on the test set computed by onnxruntime. Also
checks that digits_mobilenet_bn.onnx (BatchNormalization kept) computes the same as digits_mobilenet.onnx,
and that the data files have the documented shapes and dtypes. Exits non-zero on any failed check.
"""
import argparse
import collections
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

MODELS = [  # file, test data, output name
    ("digits_mobilenet.onnx", "digits_test.npz", "logits"),
    ("digits_mobilenet_bn.onnx", "digits_test.npz", "logits"),
    ("digits_resnet.onnx", "digits_test.npz", "probs"),
    ("digits_mlp.onnx", "digits_test_flat.npz", "logits"),
    ("digits16_mobilenet.onnx", "digits16_test.npz", "logits"),
]
MIN_TOP1 = {"digits16_mobilenet.onnx": 0.80}  # the harder digits16 task; the 8x8 models must reach 0.95

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print(f"FAIL: {msg}")


def weight_tensor_count(model):
    inits = {i.name for i in model.graph.initializer}
    n = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in inits:
            n += 1
    return n


def run(path, x, optimize=True):
    so = ort.SessionOptions()
    if not optimize:  # ORT would otherwise fuse Conv+BatchNormalization itself
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def check_data(d):
    shapes = {
        "digits_calib.npz": ((200, 1, 8, 8), (200,)),
        "digits_calib_flat.npz": ((200, 64), (200,)),
    }
    for name in ("digits_calib.npz", "digits_test.npz", "digits_calib_flat.npz", "digits_test_flat.npz"):
        z = np.load(os.path.join(d, name))
        x, y = z["x"], z["y"]
        check(x.dtype == np.float32 and y.dtype == np.int64, f"{name}: dtypes {x.dtype}/{y.dtype}")
        check(0.0 <= x.min() and x.max() <= 1.0, f"{name}: x outside [0,1]")
        check(len(x) == len(y), f"{name}: {len(x)} images vs {len(y)} labels")
        if name in shapes:
            check((x.shape, y.shape) == shapes[name], f"{name}: shapes {x.shape} {y.shape}")
        print(f"{name}: x {x.dtype} {list(x.shape)}, y {y.dtype} {list(y.shape)}, classes {np.bincount(y).tolist()}")
    for name, n in (("digits16_calib.npz", 200), ("digits16_test.npz", 1800)):
        z = np.load(os.path.join(d, name))
        x, y = z["x"], z["y"]
        check(x.dtype == np.float32 and y.dtype == np.int64, f"{name}: dtypes {x.dtype}/{y.dtype}")
        check(x.shape == (n, 1, 16, 16) and y.shape == (n,), f"{name}: shapes {x.shape} {y.shape}")
        check(0.0 <= x.min() and x.max() <= 1.0, f"{name}: x outside [0,1]")
        check(np.array_equal(np.round(x * 255) / 255, x), f"{name}: x not on the 1/255 grid")
        print(f"{name}: x {x.dtype} {list(x.shape)}, y {y.dtype} {list(y.shape)}, classes {np.bincount(y).tolist()}")
    # digits16 sources: calibration = the 200 calibration images, test = the 360 test images x 5
    yc8 = np.load(os.path.join(d, "digits_calib.npz"))["y"]
    yt8 = np.load(os.path.join(d, "digits_test.npz"))["y"]
    check(np.array_equal(np.load(os.path.join(d, "digits16_calib.npz"))["y"], yc8), "digits16_calib labels")
    check(np.array_equal(np.load(os.path.join(d, "digits16_test.npz"))["y"], np.repeat(yt8, 5)), "digits16_test labels")
    xn = np.load(os.path.join(d, "digits_calib_x.npy"))
    xc = np.load(os.path.join(d, "digits_calib.npz"))["x"]
    check(np.array_equal(xn, xc), "digits_calib_x.npy differs from digits_calib.npz x")
    xf = np.load(os.path.join(d, "digits_test_flat.npz"))["x"]
    xt = np.load(os.path.join(d, "digits_test.npz"))["x"]
    check(np.array_equal(xf, xt.reshape(len(xt), 64)), "digits_test_flat.npz is not digits_test.npz flattened")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="testdata")
    args = ap.parse_args()
    d = args.dir
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}\n")
    check_data(d)
    print()

    outputs = {}
    for fname, data, out_name in MODELS:
        path = os.path.join(d, fname)
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        opset = {o.domain: o.version for o in m.opset_import}.get("", None)
        check(opset == 13, f"{fname}: opset {opset}")
        check([i.name for i in m.graph.input] == ["input"], f"{fname}: inputs {[i.name for i in m.graph.input]}")
        check([o.name for o in m.graph.output] == [out_name], f"{fname}: outputs {[o.name for o in m.graph.output]}")
        dim0 = m.graph.input[0].type.tensor_type.shape.dim[0]
        check(dim0.dim_param == "batch", f"{fname}: input dim 0 is not the symbolic 'batch'")
        hist = collections.Counter(n.op_type for n in m.graph.node)
        params = sum(int(np.prod(numpy_helper.to_array(i).shape)) for i in m.graph.initializer
                     if numpy_helper.to_array(i).dtype == np.float32)
        z = np.load(os.path.join(d, data))
        x, y = z["x"], z["y"]
        out = run(path, x)
        outputs[fname] = out
        check(out.shape == (len(x), 10), f"{fname}: output shape {out.shape}")
        top1 = float((out.argmax(1) == y).mean())
        check(top1 >= MIN_TOP1.get(fname, 0.95), f"{fname}: top-1 {top1:.4f} < {MIN_TOP1.get(fname, 0.95)}")
        # the batch axis is dynamic: one image at a time gives the same answer
        single = np.concatenate([run(path, x[i:i + 1]) for i in range(5)])
        check(np.allclose(single, out[:5], rtol=1e-4, atol=1e-5), f"{fname}: batch 1 vs batch N outputs differ")
        size = os.path.getsize(path)
        print(f"{fname}: {size} bytes, input {list(x.shape[1:])} -> {out_name}, {params} params, "
              f"{weight_tensor_count(m)} weight tensors, test top-1 {top1:.4f} ({int(round(top1 * len(y)))}/{len(y)})")
        print(f"  ops ({sum(hist.values())} nodes): " + ", ".join(f"{k} {v}" for k, v in sorted(hist.items())))

    bn_path = os.path.join(d, "digits_mobilenet_bn.onnx")
    for node in onnx.load(bn_path).graph.node:
        if node.op_type == "BatchNormalization":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            check(len(node.output) == 1 and attrs.get("training_mode", 0) == 0,
                  f"digits_mobilenet_bn.onnx: {node.name} is not an inference-mode BatchNormalization")
    xt = np.load(os.path.join(d, "digits_test.npz"))["x"]
    a = outputs["digits_mobilenet.onnx"]
    b = run(bn_path, xt, optimize=False)
    diff = float(np.abs(a - b).max())
    check(diff < 1e-3, f"digits_mobilenet_bn.onnx differs from digits_mobilenet.onnx by {diff}")
    print(f"\ndigits_mobilenet_bn (ORT graph optimizations off) vs digits_mobilenet: max |logit difference| "
          f"{diff:.2e}, same argmax: {bool((a.argmax(1) == b.argmax(1)).all())}")
    p = outputs["digits_resnet.onnx"]
    check(np.allclose(p.sum(1), 1.0, atol=1e-5) and p.min() >= 0, "digits_resnet.onnx output is not a softmax")

    print("\nOK" if not failures else f"\n{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
