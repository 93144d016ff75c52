#!/usr/bin/env python3
"""Export the benchmark models: torchvision MobileNetV2-1.0 (224x224) and ResNet-18, random weights.

Run with Debian's python3 (python3-torch + python3-torchvision):
    /usr/bin/python3 scripts/make_bench_models.py [--out bench/models]

Outputs (not committed, bench/models/ is git-ignored; the bench scripts call this on demand):
    mobilenet_v2_1.0_224.onnx  (~14 MB)   resnet18.onnx (~45 MB)
Both have a symbolic batch dimension ("N"), opset 13, input "input" [N,3,224,224] float32, output "logits".
Weights are random (fixed seed) but BatchNormalization statistics are set to non-trivial values so that the
graphs exercise the same code as a trained model; the speed of a convolution does not depend on its values.
"""
import argparse
import os
import sys

MODELS = {
    "mobilenet_v2_1.0_224.onnx": "mobilenet_v2",
    "resnet18.onnx": "resnet18",
}


def export(name, arch, out_dir, opset):
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None)
    # Give BatchNorm non-identity statistics (random init leaves mean 0 / var 1).
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    model.eval()
    x = torch.randn(1, 3, 224, 224)
    path = os.path.join(out_dir, name)
    tmp = path + ".tmp"
    torch.onnx.export(model, x, tmp, opset_version=opset, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True)
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "models"))
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--only", choices=sorted(MODELS), action="append", help="export only this file (repeatable)")
    ap.add_argument("--force", action="store_true", help="overwrite existing files")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name, arch in MODELS.items():
        if a.only and name not in a.only:
            continue
        if os.path.exists(os.path.join(a.out, name)) and not a.force:
            print(f"{name}: exists, kept (use --force to re-export)")
            continue
        export(name, arch, a.out, a.opset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
