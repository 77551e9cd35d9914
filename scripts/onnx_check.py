#!/usr/bin/env python3
"""Runs an ONNX model that `nas` exported in onnxruntime and compares its output with
what `nas` computed for the same input.

    pip install onnxruntime numpy        # `onnx` too, for its model checker (optional)
    nas retrain RUN --onnx model.onnx --onnx-sample sample.safetensors
    python scripts/onnx_check.py model.onnx sample.safetensors

The sample file (safetensors) holds `input`, a batch of images, and `output`, what `nas`
computed for them. Exits non-zero when an output differs by more than --tol (1e-4).

With --json it compares nothing: it prints onnxruntime's output for the sample's input as
JSON ({"shape": [...], "data": [...]}) on one thread, which is how nas's own tests use it
(the same contract as the tract checker, nas-onnx/check).
"""

import argparse
import json
import struct
import sys

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    sys.exit(
        f"onnx_check.py needs numpy and onnxruntime ({e}): "
        "python3 -m pip install numpy onnxruntime"
    )


def read_safetensors(path):
    """The float32 tensors of a safetensors file, by name (the format is an 8-byte
    little-endian header length, a JSON header, then the raw data)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {info['dtype']}, expected F32")
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype="<f4").reshape(info["shape"])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="the .onnx file")
    p.add_argument("sample", help="the sample nas saved (--onnx-sample)")
    p.add_argument("--tol", type=float, default=1e-4, help="largest difference allowed")
    p.add_argument(
        "--json", action="store_true", help="print onnxruntime's output as JSON, compare nothing"
    )
    a = p.parse_args()
    if a.json:
        return print_output(a.model, a.sample)

    try:
        import onnx

        onnx.checker.check_model(onnx.load(a.model), full_check=True)
        print("onnx.checker: the model is valid")
    except ImportError:
        pass

    sample = read_safetensors(a.sample)
    x, want = sample["input"], sample["output"]
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    for k in sorted(meta):
        print(f"{k}: {meta[k]}")
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    if got.shape != want.shape:
        sys.exit(f"onnxruntime's output has shape {got.shape}, nas's {want.shape}")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    print(
        f"onnxruntime {ort.__version__}: batch {x.shape[0]}, output {list(got.shape)}, "
        f"largest difference from nas {diff:.3g} (tolerance {a.tol:g})"
    )
    if not np.isfinite(got).all() or diff > a.tol:
        sys.exit("FAIL: the outputs differ")
    print("OK")


def print_output(model, sample):
    """Prints onnxruntime's first output for the sample's input as JSON."""
    x = read_safetensors(sample)["input"]
    opts = ort.SessionOptions()
    # The tests run two at a time on small machines: one thread each.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    (y, *_) = sess.run(None, {sess.get_inputs()[0].name: x})
    print(json.dumps({"shape": list(y.shape), "data": y.reshape(-1).tolist()}))


if __name__ == "__main__":
    main()
