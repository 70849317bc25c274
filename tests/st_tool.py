"""Tiny safetensors reader with numpy alone (no safetensors package), for the tests.

usage: st_tool.py equal A.safetensors B.safetensors   exit 0 when every tensor is bitwise equal
       st_tool.py finite A.safetensors                 exit 0 when every float tensor is finite
       st_tool.py list A.safetensors                   print each tensor's name, dtype and shape
       st_tool.py close A B TOL [REGEX TOL2]           exit 0 when every float tensor agrees:
                                                       max |a − b| <= TOL · max(1, max |a|),
                                                       and every integer tensor is equal; the
                                                       tensors whose names match REGEX are held
                                                       to TOL2 instead
"""
import json
import re
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8,
          "BF16": np.uint16}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        arr = np.frombuffer(raw[base + b:base + e], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        tensors[name] = arr
    return tensors, meta


def main():
    cmd = sys.argv[1]
    if cmd == "equal":
        a, _ = read(sys.argv[2])
        b, _ = read(sys.argv[3])
        if sorted(a) != sorted(b):
            print("tensor names differ:", sorted(a), sorted(b))
            return 1
        bad = [k for k in a if a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes()]
        for k in bad:
            diff = np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))
            print(f"tensor {k} differs (max abs diff {diff:.3g})")
        return 1 if bad else 0
    if cmd == "finite":
        a, _ = read(sys.argv[2])
        bad = [k for k, v in a.items() if v.dtype.kind == "f" and not np.all(np.isfinite(v))]
        for k in bad:
            print(f"tensor {k} has non-finite values")
        return 1 if bad else 0
    if cmd == "close":
        a, _ = read(sys.argv[2])
        b, _ = read(sys.argv[3])
        tol = float(sys.argv[4])
        loose = re.compile(sys.argv[5]) if len(sys.argv) > 6 else None
        loose_tol = float(sys.argv[6]) if loose else tol
        if sorted(a) != sorted(b):
            print("tensor names differ:", sorted(a), sorted(b))
            return 1
        worst = 0.0
        for k in sorted(a):
            if a[k].shape != b[k].shape:
                print(f"tensor {k}: shapes {a[k].shape} and {b[k].shape}")
                return 1
            if a[k].dtype.kind != "f":  # integer state (dead-latent clocks): exact
                if a[k].tobytes() != b[k].tobytes():
                    print(f"{k}: integer tensor differs in {int(np.sum(a[k] != b[k]))} places")
                    return 1
                continue
            x, y = a[k].astype(np.float64), b[k].astype(np.float64)
            rel = np.max(np.abs(x - y)) / max(1.0, np.max(np.abs(x))) if x.size else 0.0
            limit = loose_tol if loose and loose.search(k) else tol
            print(f"{k}: max relative difference {rel:.3g}" + (" (tolerance %g)" % limit if loose else ""))
            worst = max(worst, rel / limit)
        return 0 if worst <= 1 else 1
    if cmd == "list":
        a, _ = read(sys.argv[2])
        for k, v in a.items():
            print(k, v.dtype, list(v.shape))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
