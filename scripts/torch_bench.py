#!/usr/bin/env python3
"""PyTorch's figures for the rows of `nas bench`, on one device.

Times SGEMM 1024^3, the seed network's training step (batch 64, 3x32x32) and a DARTS
supernet weight step (C = 16, 5 cells of 4 nodes, the 8 DARTS ops on every edge, batch
32, 3x32x32), each as the median of at least five runs after two warm-up runs, and
prints one line per figure. `scripts/gpu-check.sh` runs it beside `nas bench --device
cuda` when PyTorch is installed.

Usage:
    python3 scripts/torch_bench.py [DEVICE] [--seconds S] [--threads N] [--no-darts]

DEVICE defaults to cuda when PyTorch sees a GPU, else cpu.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_torch_fixtures import SeedNet  # noqa: E402  (the seed network, as tested)


def bn(c):
    return nn.BatchNorm2d(c, affine=False)


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin, cout, k, stride, pad, dil=1, groups=1):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, k, stride, pad, dil, groups, bias=False), bn(cout))


class DilConv(nn.Sequential):
    """ReLU, depthwise k x k (dilated), pointwise 1x1, BN."""

    def __init__(self, cin, cout, k, stride, pad, dil):
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(cin, cin, k, stride, pad, dil, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            bn(cout),
        )


class SepConv(nn.Sequential):
    """Two undilated DilConvs, the first with the stride."""

    def __init__(self, cin, cout, k, stride, pad):
        super().__init__(DilConv(cin, cin, k, stride, pad, 1), DilConv(cin, cout, k, 1, pad, 1))


class FactorizedReduce(nn.Module):
    """Halves the size: two stride-2 1x1 convolutions, the second shifted by a pixel."""

    def __init__(self, cin, cout):
        super().__init__()
        self.a = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.b = nn.Conv2d(cin, cout - cout // 2, 1, 2, bias=False)
        self.bn = bn(cout)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.a(x), self.b(x[:, :, 1:, 1:])], dim=1))


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


def make_op(name, c, stride):
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), bn(c))
    if name == "avg_pool_3x3":
        return nn.Sequential(nn.AvgPool2d(3, stride, 1, count_include_pad=False), bn(c))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    kind, k = name.rsplit("_", 1)
    k = int(k[0])
    if kind == "sep_conv":
        return SepConv(c, c, k, stride, k // 2)
    return DilConv(c, c, k, stride, k - 1, 2)


OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
       "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


class MixedOp(nn.Module):
    def __init__(self, c, stride):
        super().__init__()
        self.ops = nn.ModuleList(make_op(n, c, stride) for n in OPS)

    def forward(self, x, w):
        return sum(wi * op(x) for wi, op in zip(w, self.ops))


class Cell(nn.Module):
    def __init__(self, nodes, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.nodes = nodes
        self.reduction = reduction
        self.edges = nn.ModuleList(
            MixedOp(c, 2 if reduction and i < 2 else 1) for j in range(nodes) for i in range(2 + j)
        )

    def forward(self, s0, s1, weights):
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for j in range(self.nodes):
            states.append(sum(self.edges[e + i](h, weights[e + i]) for i, h in enumerate(states)))
            e += len(states) - 1
        return torch.cat(states[2:], dim=1)


class DartsSupernet(nn.Module):
    def __init__(self, c=16, layers=5, nodes=4, classes=10, stem_multiplier=3):
        super().__init__()
        c_stem = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        self.cells = nn.ModuleList()
        for k in range(layers):
            reduction = k in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            self.cells.append(Cell(nodes, c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c
        self.classifier = nn.Linear(c_p, classes)
        edges = sum(2 + j for j in range(nodes))
        self.register_buffer("w_normal", torch.softmax(torch.randn(edges, len(OPS)), -1))
        self.register_buffer("w_reduce", torch.softmax(torch.randn(edges, len(OPS)), -1))

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w = self.w_reduce if cell.reduction else self.w_normal
            s0, s1 = s1, cell(s0, s1, w)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


def median_ms(f, sync, secs):
    f()
    f()
    sync()
    samples = []
    start = time.perf_counter()
    while time.perf_counter() - start < secs or len(samples) < 5:
        t = time.perf_counter()
        f()
        sync()
        samples.append((time.perf_counter() - t) * 1e3)
    samples.sort()
    return samples[len(samples) // 2]


def train_step_ms(model, batch, dev, sync, secs):
    model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=3e-4)
    x = torch.randn(batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return median_ms(step, sync, secs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("device", nargs="?", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's choice)")
    ap.add_argument("--no-darts", action="store_true", help="skip the DARTS supernet step")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    where = torch.cuda.get_device_name(dev) if cuda else f"cpu, {torch.get_num_threads()} threads"
    head = f"PyTorch {torch.__version__} on {where}:"
    torch.manual_seed(0)
    n = 1024
    p, q = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    ms = median_ms(lambda: p @ q, sync, a.seconds)
    print(f"{head} sgemm {n}^3 {2 * n**3 / (ms * 1e6):.1f} GFLOP/s", flush=True)
    ms = train_step_ms(SeedNet(3), 64, dev, sync, a.seconds)
    print(f"{head} seed net train step b64 3x32x32 {ms:.2f} ms", flush=True)
    if not a.no_darts:
        ms = train_step_ms(DartsSupernet(), 32, dev, sync, a.seconds)
        print(f"{head} DARTS supernet weight step C16 5 cells b32 {ms:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
