#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the Rust seed-network test.

Builds the "seed network" from the NNI tutorial, runs one training-mode
forward + backward pass (BatchNorm uses batch statistics), then one eval-mode
forward, and writes inputs, parameters, logits, loss, gradients and the
BatchNorm running statistics to safetensors files (all tensors F32).

The computation is done in float64 (the reference truth, cast to float32 on
save); a float32 run of the same model is done as well and its deviation from
the float64 result is printed for information.

Only torch and numpy are needed; the safetensors format is written by hand.

Usage:
    python scripts/make_torch_fixtures.py [--out DIR]

DIR defaults to tests/fixtures relative to the repository root.
"""

import argparse
import copy
import json
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent

PARAM_NAMES = [
    "conv1.weight", "conv1.bias",
    "conv2.weight", "conv2.bias",
    "conv3.weight", "conv3.bias",
    "bn.weight", "bn.bias",
    "fc1.weight", "fc1.bias",
    "fc2.weight", "fc2.bias",
    "fc3.weight", "fc3.bias",
]

# (file name, seed, in_ch, spatial size)
FIXTURES = [
    ("seed_net_c3_32.safetensors", 1234, 3, 32),
    ("seed_net_c1_28.safetensors", 5678, 1, 28),
]
BATCH = 8
NUM_CLASSES = 10


class SeedNet(nn.Module):
    def __init__(self, in_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5, padding=2)
        self.conv3 = nn.Conv2d(16, 16, 1)
        self.bn = nn.BatchNorm2d(16)
        self.gap = nn.AdaptiveAvgPool2d(4)
        self.fc1 = nn.Linear(256, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x0 = F.relu(self.conv2(x))
        x1 = F.relu(self.conv3(x0))
        x1 = x1 + x0
        x = self.pool(self.bn(x1))
        x = self.gap(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def write_safetensors(path: Path, tensors: dict) -> None:
    """Write a dict name -> numpy array as a safetensors file with F32 dtype."""
    header = {}
    chunks = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
        data = arr.tobytes(order="C")
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (-(8 + len(header_bytes))) % 8
    header_bytes += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for c in chunks:
            f.write(c)


def read_safetensors(path: Path) -> dict:
    """Minimal reader for F32 safetensors files (used for verification)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + a:base + b], dtype="<f4").reshape(info["shape"])
    return out


def run_model(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> dict:
    """One training forward + backward, then one eval forward. Returns tensors."""
    model.train()
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    res = {
        "logits": logits.detach(),
        "loss": loss.detach().reshape(1),
        "grad.input": x.grad.detach(),
        "bn.running_mean": model.bn.running_mean.detach().clone(),
        "bn.running_var": model.bn.running_var.detach().clone(),
    }
    params = dict(model.named_parameters())
    for name in PARAM_NAMES:
        res["grad." + name] = params[name].grad.detach()
    model.eval()
    with torch.no_grad():
        res["eval_logits"] = model(x.detach())
    return res


def make_fixture(out_dir: Path, fname: str, seed: int, in_ch: int, size: int) -> dict:
    torch.manual_seed(seed)
    model = SeedNet(in_ch)  # PyTorch default init
    with torch.no_grad():
        model.bn.weight.copy_(1.0 + 0.1 * torch.randn(16))
        model.bn.bias.copy_(0.1 * torch.randn(16))
    x = torch.randn(BATCH, in_ch, size, size)
    labels = torch.randint(0, NUM_CLASSES, (BATCH,))

    names = [n for n, _ in model.named_parameters()]
    assert names == PARAM_NAMES, names
    assert float(model.bn.momentum) == 0.1
    # Snapshot parameters before anything runs (running stats are 0 / 1 here).
    params = {n: p.detach().clone() for n, p in model.named_parameters()}

    model64 = copy.deepcopy(model).double()
    model32 = model  # float32 run, for information only

    res64 = run_model(model64, x.double(), labels)
    res32 = run_model(model32, x, labels)

    tensors = {
        "input": x,
        "labels": labels.to(torch.float32),
    }
    for n in PARAM_NAMES:
        tensors["param." + n] = params[n]
    tensors["logits"] = res64["logits"]
    tensors["loss"] = res64["loss"]
    for n in PARAM_NAMES:
        tensors["grad." + n] = res64["grad." + n]
    tensors["grad.input"] = res64["grad.input"]
    tensors["bn.running_mean"] = res64["bn.running_mean"]
    tensors["bn.running_var"] = res64["bn.running_var"]
    tensors["eval_logits"] = res64["eval_logits"]

    np_tensors = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in tensors.items()}
    path = out_dir / fname
    write_safetensors(path, np_tensors)

    # f32 vs f64 deviation (max relative to max abs of the reference).
    worst = 0.0
    worst_key = None
    for k, v64 in res64.items():
        v32 = res32[k].double()
        scale = v64.abs().max().item()
        err = (v32 - v64).abs().max().item() / (scale if scale > 0 else 1.0)
        if err > worst:
            worst, worst_key = err, k
    return {
        "path": path,
        "loss64": res64["loss"].item(),
        "loss32": res32["loss"].item(),
        "worst_f32_rel": worst,
        "worst_key": worst_key,
        "tensors": np_tensors,
    }


def verify(info: dict) -> None:
    path = info["path"]
    back = read_safetensors(path)
    orig = info["tensors"]
    assert list(back.keys()) == list(orig.keys())
    for k in orig:
        assert back[k].shape == orig[k].shape, k
        assert np.array_equal(back[k], orig[k]), k
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0
    # Spot checks.
    assert back["logits"].shape == (BATCH, NUM_CLASSES)
    assert back["loss"].shape == (1,)
    assert abs(float(back["loss"][0]) - info["loss64"]) < 1e-6
    lab = back["labels"]
    assert np.all(lab == np.round(lab)) and lab.min() >= 0 and lab.max() < NUM_CLASSES
    # Recompute the loss from the stored logits.
    lg = back["logits"].astype(np.float64)
    m = lg.max(axis=1, keepdims=True)
    lse = np.log(np.exp(lg - m).sum(axis=1)) + m[:, 0]
    ce = float(np.mean(lse - lg[np.arange(BATCH), lab.astype(np.int64)]))
    assert abs(ce - float(back["loss"][0])) < 1e-5, (ce, back["loss"])
    for k in ["param.", "grad."]:
        for n in PARAM_NAMES:
            assert back[k + n].shape == back["param." + n].shape, (k, n)
    assert back["grad.input"].shape == back["input"].shape


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures",
                    help="output directory (default: <repo>/tests/fixtures)")
    args = ap.parse_args()
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    for fname, seed, in_ch, size in FIXTURES:
        info = make_fixture(out_dir, fname, seed, in_ch, size)
        verify(info)
        size_b = info["path"].stat().st_size
        print(f"{fname}: seed={seed} input=[{BATCH},{in_ch},{size},{size}] "
              f"tensors={len(info['tensors'])} bytes={size_b}")
        print(f"  loss(f64)={info['loss64']:.8f} loss(f32)={info['loss32']:.8f} "
              f"worst f32-vs-f64 rel err={info['worst_f32_rel']:.2e} ({info['worst_key']})")
        print("  verified: read back with own parser, all tensors bit-identical")


if __name__ == "__main__":
    main()
