#!/usr/bin/python3
"""Make onnxquant's test assets: small real models trained on sklearn's digits data, and their data.

Run by hand (not in CI), from the repository root, with Debian's interpreter and packages:

    apt-get install -y python3-torch python3-sklearn python3-onnx
    /usr/bin/python3 scripts/make_test_models.py [--out testdata]

Then check them with onnxruntime (the test venv):

    .venv/bin/python scripts/check_test_models.py

Writes into --out (default testdata/):
  digits_mobilenet.onnx     MobileNetV2-style CNN, BatchNorm folded into Conv by the exporter, output `logits`
  digits_mobilenet_bn.onnx  the same trained network exported WITHOUT BN folding (BatchNormalization nodes)
  digits_resnet.onnx        ResNet-style CNN (two basic blocks, one with a strided 1x1 projection), output `probs`
  digits_mlp.onnx           MLP written as explicit MatMul + Add on flattened input [N,64], output `logits`
  digits_calib.npz / digits_test.npz            x float32 [N,1,8,8] in [0,1], y int64 [N]
  digits_calib_flat.npz / digits_test_flat.npz  x float32 [N,64], y int64 [N]
  digits_calib_x.npy                            calibration x only, float32 [200,1,8,8]
  digits16_mobilenet.onnx   MobileNetV2-style CNN (11 inverted residual blocks) on the harder digits16 task
  digits16_calib.npz / digits16_test.npz        x float32 [N,1,16,16] in [0,1] (multiples of 1/255), y int64 [N]

digits16 is a harder task derived from the same digits (no download): each 8x8 image is resampled to 16x16
under a random affine transform (rotation, shear, zoom, shift), its strokes thickened or thinned, overlaid
with random line strokes and an occluding patch, and given a random contrast, background and gaussian noise.
Calibration: the 200 calibration images once; test: the 360 test images 5 times (1800 samples); training:
fresh transforms of the 1237 training images every epoch. `--models digits8|digits16|all` picks what to make
(default all; digits8 = the first list above).

Everything is seeded (numpy, torch, one torch thread, deterministic algorithms); another machine or torch
build may still give slightly different weights. The committed files are the reference.
"""
import argparse
import collections
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

SEED = 0
N_CALIB = 200
N_TEST = 360
OPSET = 13
D16_SIZE = 16
D16_TEST_COPIES = 5  # 360 test images x 5 transforms = 1800 test samples (1 point = 18 images)
D16_CALIB_COPIES = 1


# ----------------------------------------------------------------------------------------------- data

def make_splits():
    """Digits scaled to [0,1] (x/16), split deterministically (seed 0) into train / calibration / test."""
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]  # [1797,1,8,8]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(SEED).permutation(len(y))
    test_idx = np.sort(perm[:N_TEST])
    calib_idx = np.sort(perm[N_TEST:N_TEST + N_CALIB])
    train_idx = np.sort(perm[N_TEST + N_CALIB:])
    return ((x[train_idx], y[train_idx]), (x[calib_idx], y[calib_idx]), (x[test_idx], y[test_idx]))


def save_data(out, calib, test):
    xc, yc = calib
    xt, yt = test
    np.savez(os.path.join(out, "digits_calib.npz"), x=xc, y=yc)
    np.savez(os.path.join(out, "digits_test.npz"), x=xt, y=yt)
    np.savez(os.path.join(out, "digits_calib_flat.npz"), x=xc.reshape(len(xc), 64), y=yc)
    np.savez(os.path.join(out, "digits_test_flat.npz"), x=xt.reshape(len(xt), 64), y=yt)
    np.save(os.path.join(out, "digits_calib_x.npy"), xc)


def digits16(src, copies, gen, size=D16_SIZE):
    """The digits16 transform: src float32 [N,1,8,8] in [0,1] -> [N*copies,1,size,size] float32 in [0,1] on the
    1/255 grid (each image repeated `copies` times, each copy with its own random draw from `gen`)."""
    x = torch.from_numpy(src).repeat_interleave(copies, 0)
    n = len(x)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=gen)  # noqa: E731
    # Random affine map (output -> input, normalized coordinates): rotation +-25 deg, shear +-0.25, the digit
    # covering 55-95 % of the canvas, shift +-10 % of the canvas; bilinear resampling, zero outside.
    ang = u(-25, 25) * math.pi / 180
    zoom = u(0.55, 0.95)
    shear = u(-0.25, 0.25)
    tx, ty = u(-0.2, 0.2), u(-0.2, 0.2)
    c, s = torch.cos(ang), torch.sin(ang)
    a = torch.stack([torch.stack([c, -s + shear * c], 1), torch.stack([s, c + shear * s], 1)], 1) / zoom[:, None, None]
    theta = torch.cat([a, torch.stack([tx, ty], 1)[:, :, None]], 2)
    grid = F.affine_grid(theta, (n, 1, size, size), align_corners=False)
    img = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Stroke thickness: blend towards the 3x3 dilation (lam > 0) or erosion (lam < 0).
    lam = u(-0.6, 0.8)[:, None, None, None]
    dil = F.max_pool2d(img, 3, 1, 1)
    ero = -F.max_pool2d(-img, 3, 1, 1)
    img = torch.where(lam > 0, img + lam * (dil - img), img + (-lam) * (ero - img))
    # Clutter: up to two anti-aliased line strokes (length 2-7 px) of random position, direction, intensity.
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    for k in range(2):
        on = (torch.rand(n, generator=gen) < (0.6 if k == 0 else 0.3)).float()
        p0 = torch.rand(n, 2, generator=gen) * size
        d = torch.rand(n, generator=gen) * 2 * math.pi
        ln = 2 + 5 * torch.rand(n, generator=gen)
        v = ln[:, None] * torch.stack([torch.cos(d), torch.sin(d)], 1)
        px = torch.stack([xx, yy], -1)[None] - p0[:, None, None, :]
        t = ((px * v[:, None, None, :]).sum(-1) / (v * v).sum(-1)[:, None, None]).clamp(0, 1)
        dist = (px - t[..., None] * v[:, None, None, :]).norm(dim=-1)
        stroke = (1.2 - dist).clamp(0, 1) * u(0.4, 1.0)[:, None, None]
        img = torch.maximum(img, (on[:, None, None] * stroke)[:, None])
    # Occlusion: with probability 0.3 a 3x3..5x5 patch is set to 0.
    occ = torch.rand(n, generator=gen) < 0.3
    ox = torch.randint(0, size - 4, (n,), generator=gen)
    oy = torch.randint(0, size - 4, (n,), generator=gen)
    ow = torch.randint(3, 6, (n,), generator=gen)
    mask = ((xx[None] >= ox[:, None, None]) & (xx[None] < (ox + ow)[:, None, None]) &
            (yy[None] >= oy[:, None, None]) & (yy[None] < (oy + ow)[:, None, None]) & occ[:, None, None])
    img = img.masked_fill(mask[:, None], 0.0)
    # Contrast 0.5-1, background 0-0.3, gaussian noise sigma 0.03-0.15; clipped to [0,1], rounded to 1/255.
    img = img * u(0.5, 1.0)[:, None, None, None] + u(0.0, 0.3)[:, None, None, None]
    img = img + u(0.03, 0.15)[:, None, None, None] * torch.randn(img.shape, generator=gen)
    img = (img.clamp(0, 1) * 255).round() / 255
    return img.numpy().astype(np.float32)


def make_digits16_data(out, calib, test):
    """digits16 calibration and test sets from the calibration and test source images (fixed generators)."""
    xc = digits16(calib[0], D16_CALIB_COPIES, torch.Generator().manual_seed(SEED + 1))
    yc = np.repeat(calib[1], D16_CALIB_COPIES)
    xt = digits16(test[0], D16_TEST_COPIES, torch.Generator().manual_seed(SEED + 2))
    yt = np.repeat(test[1], D16_TEST_COPIES)
    np.savez_compressed(os.path.join(out, "digits16_calib.npz"), x=xc, y=yc)
    np.savez_compressed(os.path.join(out, "digits16_test.npz"), x=xt, y=yt)
    return (xc, yc), (xt, yt)


# --------------------------------------------------------------------------------------------- models

class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 project + BN, residual."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.body(x)
        return x + y if self.use_res else y


class DigitsMobileNet(nn.Module):
    """8x8 input, stem 3x3 conv, six inverted residual blocks (8x8 -> 4x4 -> 2x2), 1x1 head conv, GAP, Linear."""

    def __init__(self):
        super().__init__()
        cfg = [  # cin, cout, stride, expand
            (16, 16, 1, 2),
            (16, 24, 2, 4),
            (24, 24, 1, 4),
            (24, 32, 2, 4),
            (32, 32, 1, 4),
            (32, 48, 1, 4),
        ]
        layers = [nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()]
        layers += [InvertedResidual(*c) for c in cfg]
        layers += [nn.Conv2d(48, 96, 1, bias=False), nn.BatchNorm2d(96), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(96, 10)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


class Digits16MobileNet(nn.Module):
    """MobileNetV2 layout at width ~0.5 for 16x16 input: stem 3x3 conv (1->16) + ReLU6, then stages
    (expansion t, channels c, repeats n, first stride s) = (1,8,1,1) (6,12,2,2) (6,16,3,2) (6,32,3,2) (6,40,2,1)
    of inverted residual blocks (16x16 -> 8x8 -> 4x4 -> 2x2), 1x1 head conv (40->192) + ReLU6, GAP, Linear."""

    STAGES = [(1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 3, 2), (6, 32, 3, 2), (6, 40, 2, 1)]
    HEAD = 192

    def __init__(self):
        super().__init__()
        layers = [nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()]
        cin = 16
        for t, c, n, s in self.STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, self.HEAD, 1, bias=False), nn.BatchNorm2d(self.HEAD), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.HEAD, 10)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 Conv + BN (+ Relu), identity or strided 1x1 Conv + BN projection shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + s)


class DigitsResNet(nn.Module):
    """Stem 3x3 conv (8x8), block 1 (identity), MaxPool 3x3/2 pad 1 (4x4), block 2 (stride 2, projection,
    2x2), GAP, Linear, Softmax (output `probs`)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 24, 3, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.block1 = BasicBlock(24, 24, 1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.block2 = BasicBlock(24, 48, 2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(48, 10)

    def logits(self, x):
        x = self.block2(self.pool(self.block1(self.stem(x))))
        return self.fc(torch.flatten(self.gap(x), 1))

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=1)


class DigitsMLP(nn.Module):
    """64 -> 128 -> 64 -> 10 with explicit weight matrices, so the export is MatMul + Add (not Gemm)."""

    def __init__(self, sizes=(64, 128, 64, 10)):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(a, b)
            nn.init.kaiming_uniform_(w.T, a=5 ** 0.5)  # same init as nn.Linear (fan_in = a)
            bound = 1.0 / a ** 0.5
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.empty(b).uniform_(-bound, bound)))

    def forward(self, x):
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.matmul(x, w) + b
            if i + 1 < n:
                x = torch.relu(x)
        return x


# ------------------------------------------------------------------------------------------- training

def train(model, train_xy, test_xy, epochs, lr, flat=False, use_logits=None, batch=64, weight_decay=1e-4):
    """Adam + cosine LR, light augmentation (random +-1 pixel shift) for the CNNs. Returns test top-1."""
    x, y = (torch.from_numpy(a) for a in train_xy)
    xt, yt = (torch.from_numpy(a) for a in test_xy)
    fwd = use_logits or model
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    g = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            xb, yb = x[idx], y[idx]
            if not flat:
                dx, dy = (int(v) for v in torch.randint(-1, 2, (2,), generator=g))
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            else:
                xb = xb.reshape(len(xb), 64)
            loss = F.cross_entropy(fwd(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        inp = xt.reshape(len(xt), 64) if flat else xt
        return (fwd(inp).argmax(1) == yt).float().mean().item()


def train_digits16(model, train_xy, test_xy, epochs, lr, copies=2, batch=64):
    """Adam (no weight decay) + cosine LR; every epoch draws `copies` fresh digits16 transforms of each
    training image. Returns test top-1."""
    x, y = train_xy
    xt, yt = (torch.from_numpy(a) for a in test_xy)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    g = torch.Generator().manual_seed(SEED + 3)
    for _ in range(epochs):
        model.train()
        xa = torch.from_numpy(digits16(x, copies, g))
        ya = torch.from_numpy(np.repeat(y, copies))
        perm = torch.randperm(len(ya), generator=g)
        for i in range(0, len(ya), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(xa[idx]), ya[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        return (model(xt).argmax(1) == yt).float().mean().item()


# --------------------------------------------------------------------------------------------- export

def export(model, path, example, output_name, training=torch.onnx.TrainingMode.EVAL, fold=True):
    model.eval()
    torch.onnx.export(
        model, example, path,
        opset_version=OPSET,
        input_names=["input"], output_names=[output_name],
        dynamic_axes={"input": {0: "batch"}, output_name: {0: "batch"}},
        training=training, do_constant_folding=fold,
    )


def op_histogram(path):
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return collections.Counter(n.op_type for n in m.graph.node)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="testdata", help="output directory (default: testdata)")
    ap.add_argument("--models", choices=("digits8", "digits16", "all"), default="all",
                    help="digits8: the 8x8 models and data; digits16: digits16_mobilenet.onnx and its data")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    train_xy, calib_xy, test_xy = make_splits()
    print(f"data: train {len(train_xy[1])}, calib {len(calib_xy[1])}, test {len(test_xy[1])}")
    if args.models in ("digits8", "all"):
        make_digits8(args, train_xy, calib_xy, test_xy)
    if args.models in ("digits16", "all"):
        make_digits16(args, train_xy, calib_xy, test_xy)


def make_digits16(args, train_xy, calib_xy, test_xy):
    p = lambda name: os.path.join(args.out, name)  # noqa: E731
    calib16, test16 = make_digits16_data(args.out, calib_xy, test_xy)
    print(f"digits16: calib {list(calib16[0].shape)}, test {list(test16[0].shape)}")
    t0 = time.time()
    torch.manual_seed(SEED)
    net = Digits16MobileNet()
    acc = train_digits16(net, train_xy, test16, epochs=60, lr=3e-3)
    print(f"digits16 mobilenet: torch test top-1 {acc:.4f} ({sum(q.numel() for q in net.parameters())} params, "
          f"{time.time() - t0:.0f}s)")
    export(net, p("digits16_mobilenet.onnx"), torch.zeros(1, 1, D16_SIZE, D16_SIZE), "logits")
    hist = op_histogram(p("digits16_mobilenet.onnx"))
    print(f"digits16_mobilenet.onnx: {dict(sorted(hist.items()))}")
    assert hist["BatchNormalization"] == 0


def make_digits8(args, train_xy, calib_xy, test_xy):
    save_data(args.out, calib_xy, test_xy)
    nchw = torch.zeros(1, 1, 8, 8)
    flat = torch.zeros(1, 64)
    p = lambda name: os.path.join(args.out, name)

    t0 = time.time()
    torch.manual_seed(SEED)
    mnet = DigitsMobileNet()
    acc = train(mnet, train_xy, test_xy, epochs=40, lr=3e-3)
    print(f"mobilenet: torch test top-1 {acc:.4f} ({sum(q.numel() for q in mnet.parameters())} params, "
          f"{time.time() - t0:.0f}s)")
    export(mnet, p("digits_mobilenet.onnx"), nchw, "logits")
    # PRESERVE with the model in eval mode skips the exporter's eval-mode Conv+BN fusion: BatchNormalization
    # nodes stay (inference form, running statistics), numerically the same network.
    export(mnet, p("digits_mobilenet_bn.onnx"), nchw, "logits", training=torch.onnx.TrainingMode.PRESERVE,
           fold=False)

    t0 = time.time()
    torch.manual_seed(SEED)
    rnet = DigitsResNet()
    acc = train(rnet, train_xy, test_xy, epochs=30, lr=3e-3, use_logits=rnet.logits)
    print(f"resnet: torch test top-1 {acc:.4f} ({sum(q.numel() for q in rnet.parameters())} params, "
          f"{time.time() - t0:.0f}s)")
    export(rnet, p("digits_resnet.onnx"), nchw, "probs")

    t0 = time.time()
    torch.manual_seed(SEED)
    mlp = DigitsMLP()
    acc = train(mlp, train_xy, test_xy, epochs=60, lr=3e-3, flat=True)
    print(f"mlp: torch test top-1 {acc:.4f} ({sum(q.numel() for q in mlp.parameters())} params, "
          f"{time.time() - t0:.0f}s)")
    export(mlp, p("digits_mlp.onnx"), flat, "logits")

    for name in ("digits_mobilenet.onnx", "digits_mobilenet_bn.onnx", "digits_resnet.onnx", "digits_mlp.onnx"):
        hist = op_histogram(p(name))
        print(f"{name}: {dict(sorted(hist.items()))}")
    bn = op_histogram(p("digits_mobilenet_bn.onnx"))["BatchNormalization"]
    assert bn > 0, "digits_mobilenet_bn.onnx has no BatchNormalization node"
    assert op_histogram(p("digits_mobilenet.onnx"))["BatchNormalization"] == 0
    assert op_histogram(p("digits_mlp.onnx"))["Gemm"] == 0


if __name__ == "__main__":
    main()
