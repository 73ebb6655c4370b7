"""Judges pt2conv's conversions with real PyTorch (torch 1.13 and 2.x).

Usage:
  converted.py make-f64 OUT          write a float64 Linear(12, 3) state_dict
  converted.py make-big OUT          write a 2.6 MB state_dict: conv (64x3x3x3), fc1 Linear(1024,
                                     640), fc2 Linear(640, 10)
  converted.py check CASES.json      check every case; print "ok N" or exit 1 naming the difference
  converted.py check-each CASES.json print one JSON line per case: null or the difference

A case is {"orig": path, "conv": path, "shapes": {key: new shape}, "seed": bool}. The converted
file must load wherever the original loads (weights_only=True included) and hold everything the
original holds: the same Python types, keys in the same order, every plain value bit for bit
(floats by their bits, so -0.0 is not 0.0), every state_dict's _metadata, every optimizer
hyper-parameter; every dtype and every tensor value bit for bit, the converted tensors reshaped
and all others unchanged down to their strides and storage sizes; the original's storage
sharing; and, for the seed example, relu(conv) = [14.9, 19.0].
"""

import collections
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F


def load(path):
    try:
        return torch.load(path, weights_only=True), True
    except Exception:
        return torch.load(path, weights_only=False), False


def tensors(obj, prefix=""):
    out = collections.OrderedDict()
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(tensors(v, "%s/%s" % (prefix, k) if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(tensors(v, "%s/%d" % (prefix, i) if prefix else str(i)))
    return out


def storage_key(t):
    s = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
    return s.data_ptr()


def sharing(ts):
    groups = collections.defaultdict(list)
    for k, t in ts.items():
        if t.numel():
            groups[storage_key(t)].append(k)
    return sorted(sorted(g) for g in groups.values())


def same_bits(a, b):
    if a.dtype.is_complex:
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    if a.dtype.is_floating_point:
        width = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        return torch.equal(a.contiguous().view(width), b.contiguous().view(width))
    return torch.equal(a, b)


class Differ(Exception):
    pass


def storage_nbytes(t):
    s = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
    return s.nbytes() if hasattr(s, "nbytes") else s.size() * t.element_size()


def join(path, key):
    return "%s/%s" % (path, key) if path else str(key)


def compare(a, b, path, shapes):
    """Walks both trees; every value must match, tensors as the case allows."""
    where = path or "<root>"
    if type(a) is not type(b):
        raise Differ("%s is a %s, was a %s" % (where, type(b).__name__, type(a).__name__))
    if isinstance(a, torch.Tensor):
        compare_tensors(a, b, path, shapes)
    elif isinstance(a, dict):
        if list(a.keys()) != list(b.keys()):
            raise Differ("%s: keys differ: %s vs %s" % (where, list(a.keys()), list(b.keys())))
        for k in a:
            compare(a[k], b[k], join(path, k), shapes)
        ma, mb = getattr(a, "_metadata", None), getattr(b, "_metadata", None)
        if ma is not None or mb is not None:
            compare(ma, mb, join(path, "_metadata"), shapes)
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b):
            raise Differ("%s: %d items, was %d" % (where, len(b), len(a)))
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, join(path, i), shapes)
    elif isinstance(a, float):
        if struct.pack("<d", a) != struct.pack("<d", b):
            raise Differ("%s is %r, was %r" % (where, b, a))
    elif a != b:
        raise Differ("%s is %r, was %r" % (where, b, a))


def compare_tensors(x, y, k, shapes):
    if x.dtype != y.dtype:
        raise Differ("%s is %s, was %s" % (k, y.dtype, x.dtype))
    if x.requires_grad != y.requires_grad:
        raise Differ("%s: requires_grad %s, was %s" % (k, y.requires_grad, x.requires_grad))
    if storage_nbytes(x) != storage_nbytes(y):
        raise Differ("%s: its storage holds %d bytes, was %d" % (k, storage_nbytes(y), storage_nbytes(x)))
    want = shapes.get(k)
    if want is not None:
        if list(y.shape) != want:
            raise Differ("%s has shape %s, want %s" % (k, list(y.shape), want))
        y = y.reshape(x.shape)
    elif y.shape != x.shape or y.stride() != x.stride() or y.storage_offset() != x.storage_offset():
        raise Differ("%s changed from %s/%s to %s/%s" % (k, list(x.shape), x.stride(), list(y.shape), y.stride()))
    if not same_bits(x, y):
        raise Differ("%s has other values" % k)


def check(case):
    a, a_safe = load(case["orig"])
    b, b_safe = load(case["conv"])
    name = case["conv"]
    if a_safe and not b_safe:
        return "%s: the original loads with weights_only=True, the conversion does not" % name
    try:
        compare(a, b, "", case["shapes"])
    except Differ as e:
        return "%s: %s" % (name, e)
    ta, tb = tensors(a), tensors(b)
    if sharing(ta) != sharing(tb):
        return "%s: storage sharing changed: %s vs %s" % (name, sharing(ta), sharing(tb))
    if case.get("seed"):
        img = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
        out = F.relu(F.conv2d(img, tb["fc.weight"], tb["fc.bias"])).flatten()
        if not torch.allclose(out, torch.tensor([14.9, 19.0])):
            return "%s: relu(conv) = %s, want [14.9, 19.0]" % (name, out.tolist())
    return None


def main(argv):
    # Debian's torch builds' oneDNN convolutions now and then return NaN for inputs they
    # handle fine on the next run; torch's native kernels are deterministic.
    torch.backends.mkldnn.enabled = False
    if len(argv) == 2 and argv[0] == "make-f64":
        torch.manual_seed(3)
        fc = torch.nn.Linear(12, 3).double()
        torch.save(collections.OrderedDict([("fc.weight", fc.weight.data), ("fc.bias", fc.bias.data)]), argv[1])
        return
    if len(argv) == 2 and argv[0] == "make-big":
        torch.manual_seed(4)
        conv = torch.nn.Conv2d(3, 64, 3)
        fc1, fc2 = torch.nn.Linear(64 * 4 * 4, 640), torch.nn.Linear(640, 10)
        sd = collections.OrderedDict()
        for name, m in (("conv", conv), ("fc1", fc1), ("fc2", fc2)):
            sd[name + ".weight"], sd[name + ".bias"] = m.weight.data, m.bias.data
        torch.save(sd, argv[1])
        return
    if len(argv) != 2 or argv[0] not in ("check", "check-each"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(argv[1]) as f:
        cases = json.load(f)
    if argv[0] == "check-each":
        for case in cases:
            print(json.dumps(check(case)))
        return
    for case in cases:
        err = check(case)
        if err:
            print("converted.py: torch %s: %s" % (torch.__version__, err), file=sys.stderr)
            sys.exit(1)
    print("ok %d torch %s" % (len(cases), torch.__version__))


if __name__ == "__main__":
    main(sys.argv[1:])
