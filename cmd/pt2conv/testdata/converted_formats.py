"""Judges conversions of checkpoints that hold more than dense float tensors.

Usage: converted_formats.py SCRIPTS_DIR CASES.json

A case is {"orig": path, "conv": path, "shapes": {"key/path": new shape}}. Each converted tensor
must have its new shape, its dtype and its elements bit for bit (float8, uint16, NaN payloads
included). Seen back in its original shape over the same storage, the converted file must then
hold exactly what the original holds (scripts/torchcheck.py: quantized, sparse, meta, nested and
every other tensor untouched, Python attributes of the converted tensors too, key order, storage
sharing). Files this torch cannot load are reported as
skipped. Prints "ok N skipped M" or exits 1 naming the first difference.
"""

import json
import sys
import warnings

sys.path.insert(0, sys.argv[1])
import torch  # noqa: E402
import torchcheck  # noqa: E402

warnings.filterwarnings("ignore")


def load(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True), True
    except Exception:
        return torch.load(path, map_location="cpu", weights_only=False), False


def get(obj, path):
    for part in path.split("/"):
        obj = obj[part]
    return obj


def put(obj, path, value):
    parts = path.split("/")
    for part in parts[:-1]:
        obj = obj[part]
    obj[parts[-1]] = value


def raw(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def check(case):
    try:
        a, a_safe = load(case["orig"])
    except Exception:
        return "skip"
    b, b_safe = load(case["conv"])
    name = case["conv"]
    if a_safe and not b_safe:
        return "%s: the original loads with weights_only=True, the conversion does not" % name
    for key, shape in case["shapes"].items():
        x, y = get(a, key), get(b, key)
        if list(y.shape) != shape or y.dtype != x.dtype:
            return "%s: %s is %s%s, want %s%s" % (name, key, y.dtype, list(y.shape), x.dtype, shape)
        if not torch.equal(raw(x), raw(y)):
            return "%s: %s has other bits" % (name, key)
        back = torch.as_strided(y.detach(), x.shape, x.stride(), x.storage_offset())
        if isinstance(y, torch.nn.Parameter):
            back = torch.nn.Parameter(back, requires_grad=y.requires_grad)
        for attr, value in vars(y).items():  # Python attributes, compared with the original's below
            setattr(back, attr, value)
        put(b, key, back)
    c = torchcheck.Comparer()
    try:
        c.compare(a, b, "")
        c.compare_sharing()
    except torchcheck.Differ as e:
        return "%s: %s" % (name, e)
    return None


def main():
    with open(sys.argv[2]) as f:
        cases = json.load(f)
    skipped = 0
    for case in cases:
        err = check(case)
        if err == "skip":
            skipped += 1
        elif err:
            print("converted_formats.py: torch %s: %s" % (torch.__version__, err), file=sys.stderr)
            sys.exit(1)
    print("ok %d skipped %d torch %s" % (len(cases) - skipped, skipped, torch.__version__))


if __name__ == "__main__":
    main()
