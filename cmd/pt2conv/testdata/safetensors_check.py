"""Judges pt2conv's safetensors and sharded outputs with real libraries.

Usage: safetensors_check.py CASES.json    print "ok N" or exit 1 naming the difference

Under torch 2.x with the safetensors library, safetensors files are read with both
safetensors.torch.load_file and safe_open (numpy for the unsigned dtypes torch's binding lacks).
Under torch 1.x, which has no safetensors library, only .pt outputs are judged: they load with
torch.load(weights_only=True) and are compared with the source, whose safetensors bytes the small
reader below decodes (torch.frombuffer on the header's spans).

A case is {"orig": path, "conv": path, "shapes": {name: shape}, "state_dict": key or null}; a
path may be a sharded checkpoint's index. The converted file must hold every tensor of the
original (or of its state_dict under key) under the same name, with the same dtype and bits;
the tensors in shapes must equal the original viewed with that shape (w[:, :, None, None] for a
1x1 conversion), every other tensor its original shape. An index must keep its weight_map's
names and say the total size of the tensors.
"""

import json
import os
import struct
import sys

import torch

try:
    import safetensors
    from safetensors import safe_open
    from safetensors.torch import load_file
    import numpy as np
    from safetensors.numpy import load_file as load_numpy
except ImportError:
    safetensors = None

UNSIGNED = {"U16", "U32", "U64"}


def header(path):
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        return json.loads(fh.read(n)), 8 + n


def is_safetensors(path):
    with open(path, "rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK")


def raw_safetensors(path):
    """Name -> (dtype name, shape, bytes), straight from the file."""
    h, start = header(path)
    out = {}
    with open(path, "rb") as fh:
        data = fh.read()[start:]
    for k, v in h.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = (v["dtype"], list(v["shape"]), data[b:e])
    return out


DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
          "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
          "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "U16": "uint16", "U32": "uint32",
          "U64": "uint64"}


def from_raw(dtype, shape, data):
    dt = getattr(torch, DTYPES[dtype], None)
    if dt is None:
        return None  # a dtype this torch lacks
    if not data:
        return torch.empty(shape, dtype=dt)
    return torch.frombuffer(bytearray(data), dtype=dt).reshape(shape)


def load_st(path):
    """Reads a safetensors file with the library's two entry points and checks they agree."""
    raw = raw_safetensors(path)
    if safetensors is None:
        return {k: from_raw(*v) for k, v in raw.items()}
    if any(v[0] in UNSIGNED for v in raw.values()):
        arrays = load_numpy(path)
        with safe_open(path, framework="np") as f:
            for k in f.keys():
                if not np.array_equal(f.get_tensor(k), arrays[k]):
                    raise SystemExit("%s: safe_open and load_file disagree on %s" % (path, k))
        return {k: ("numpy", a) for k, a in arrays.items()}
    ts = load_file(path)
    with safe_open(path, framework="pt") as f:
        if sorted(f.keys()) != sorted(ts):
            raise SystemExit("%s: safe_open lists other keys" % path)
        for k in f.keys():
            if not same_bits(f.get_tensor(k), ts[k]):
                raise SystemExit("%s: safe_open and load_file disagree on %s" % (path, k))
    return ts


def load_pt(path, key=None):
    obj = torch.load(path, weights_only=True)
    if key:
        for part in key.split("/"):
            obj = obj[part]
    return {k: v for k, v in obj.items()}


def load_any(path, key=None, judge=True):
    if path.endswith(".index.json"):
        with open(path) as fh:
            ix = json.load(fh)
        out = {}
        for shard in sorted(set(ix["weight_map"].values())):
            part = load_any(os.path.join(os.path.dirname(path), shard), judge=judge)
            for k in part:
                if ix["weight_map"].get(k) != shard:
                    raise SystemExit("%s: %s is in %s, the weight_map says %s" % (path, k, shard, ix["weight_map"].get(k)))
            out.update(part)
        if sorted(out) != sorted(ix["weight_map"]):
            raise SystemExit("%s: the weight_map names other tensors than the shards hold" % path)
        total = sum(nbytes(t) for t in out.values())
        if ix["metadata"]["total_size"] != total:
            raise SystemExit("%s: total_size %s, the tensors hold %d bytes" % (path, ix["metadata"]["total_size"], total))
        return out
    if is_safetensors(path):
        return load_st(path) if judge else {k: from_raw(*v) for k, v in raw_safetensors(path).items()}
    return load_pt(path, key)


def nbytes(t):
    if isinstance(t, tuple):
        return t[1].nbytes
    return t.numel() * t.element_size()


def as_bytes(t):
    if isinstance(t, tuple):
        return t[1].tobytes()
    t = t.contiguous()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else t.numpy().tobytes()


def same_bits(a, b):
    return a.dtype == b.dtype and list(a.shape) == list(b.shape) and as_bytes(a) == as_bytes(b)


def shape_of(t):
    return list(t[1].shape) if isinstance(t, tuple) else list(t.shape)


def check(case):
    conv_path = case["conv"]
    if safetensors is None and (is_safetensors_case(conv_path)):
        return False
    orig = load_any(case["orig"], case.get("state_dict"), judge=False)
    conv = load_any(conv_path)
    if sorted(orig) != sorted(conv):
        raise SystemExit("%s: names %s, want %s" % (conv_path, sorted(conv), sorted(orig)))
    shapes = case.get("shapes") or {}
    for k, o in orig.items():
        c = conv[k]
        if o is None:
            continue  # a dtype the judging torch lacks
        want = shapes.get(k, shape_of(o))
        if shape_of(c) != list(want):
            raise SystemExit("%s: %s has shape %s, want %s" % (conv_path, k, shape_of(c), want))
        if isinstance(o, tuple) or isinstance(c, tuple):
            if as_bytes(o) != as_bytes(c):
                raise SystemExit("%s: %s: bytes differ" % (conv_path, k))
            continue
        if o.dtype != c.dtype:
            raise SystemExit("%s: %s is %s, want %s" % (conv_path, k, c.dtype, o.dtype))
        if k in shapes and len(want) == 4 and want[2:] == [1, 1] and o.dim() == 2:
            ref = o[:, :, None, None]
        else:
            ref = o.reshape(want)
        if as_bytes(ref) != as_bytes(c):
            raise SystemExit("%s: %s: values differ from the original's" % (conv_path, k))
    return True


def is_safetensors_case(path):
    if path.endswith(".index.json"):
        return ".safetensors" in path
    return is_safetensors(path)


def main():
    with open(sys.argv[1]) as fh:
        cases = json.load(fh)
    n = sum(1 for c in cases if check(c))
    print("ok %d" % n)


if __name__ == "__main__":
    main()
