"""Reference checkpoints for the writer's tests, built with real torch.

    python3 checkpoint.py golden DIR          write DIR/state_dict.pkl and DIR/training.pkl,
                                              the data.pkl torch.save produces for each, and
                                              DIR/state_dict_torchN.pt, the whole file
                                              (run it with torch 1.x and 2.x)
    python3 checkpoint.py check NAME FILE MODE [NAME FILE MODE]...
                                              load each FILE with torch (MODE weights-only or
                                              full) and compare it with the case NAME

The Go tests build the same objects and compare their encoding with the golden pickles
byte for byte, then save whole checkpoints and let this script judge them.
"""
import collections
import io
import sys
import zipfile

import torch


def state_dict():
    sd = collections.OrderedDict()
    sd["a"] = torch.ones(3)
    sd["b"] = torch.zeros(2, 2, dtype=torch.float16)
    sd["c"] = sd["a"]
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("fc", {"version": 1})])
    return sd


def model():
    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    m = collections.OrderedDict()
    m["fc.weight"] = w
    m["fc.weight_t"] = w.t()
    m["fc.bias"] = w.view(-1)[4:8]
    m["half"] = torch.tensor([[1.5, -2.0, 3.25], [0.0, 65504.0, -0.5]], dtype=torch.float16)
    m["bf16"] = torch.tensor([1.0, -3.5, 1024.0], dtype=torch.bfloat16)
    m["idx"] = torch.tensor([-1, 2**40], dtype=torch.int64)
    m["scalar"] = torch.tensor(5.0)
    m._metadata = collections.OrderedDict([("", {"version": 1}), ("fc", {"version": 1})])
    return m


def training(plain_only):
    """A training checkpoint; plain_only leaves out floats and bytes, which torch 1.13's
    weights_only loader cannot read."""
    m = model()
    group = {"params": [0, 1], "nesterov": False, "dampening": 0, "big": 2**70,
             "neg": -129, "i32": -70000, "i16": 60000, "none": None,
             "t": (1, 2, 3, 4), "t1": ("x",)}
    ck = {
        "epoch": 7,
        "model": m,
        "optimizer": {
            "state": {0: {"momentum_buffer": torch.tensor([0.5, 0.25])}},
            "param_groups": [group],
        },
        "tied": m["fc.weight"],
        "true": True,
    }
    if not plain_only:
        group["lr"] = 0.1
        ck["bytes"] = b"\x00\xffab\x80"
        ck["empty"] = b""
    return ck


CASES = {
    "state_dict": state_dict,
    "training": lambda: training(False),
    "training_plain": lambda: training(True),
}


def golden(out):
    # A whole archive, whose records and layout differ between torch 1.x and 2.x.
    with open(f"{out}/state_dict_torch{torch.__version__[0]}.pt", "wb") as f:
        torch.save(state_dict(), f)
    for name in ("state_dict", "training"):
        buf = io.BytesIO()
        torch.save(CASES[name](), buf)
        with zipfile.ZipFile(buf) as z:
            data = z.read("archive/data.pkl")
        with open(f"{out}/{name}.pkl", "wb") as f:
            f.write(data)


def storage_ptr(t):
    if hasattr(t, "untyped_storage"):
        return t.untyped_storage().data_ptr()
    return t.storage().data_ptr()


def compare(path, got, want, ptrs):
    where = "/".join(path) or "<root>"
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{where}: got {type(got)}"
        for attr in ("dtype", "shape"):
            assert getattr(got, attr) == getattr(want, attr), \
                f"{where}: {attr} {getattr(got, attr)} != {getattr(want, attr)}"
        assert got.stride() == want.stride(), f"{where}: stride {got.stride()} != {want.stride()}"
        assert got.storage_offset() == want.storage_offset(), \
            f"{where}: offset {got.storage_offset()} != {want.storage_offset()}"
        assert torch.equal(got, want), f"{where}: values {got} != {want}"
        assert got.requires_grad == want.requires_grad, f"{where}: requires_grad"
        ptrs.setdefault(storage_ptr(want), set()).add(storage_ptr(got))
        return
    assert type(got) is type(want), f"{where}: type {type(got)} != {type(want)}"
    if isinstance(want, dict):
        assert list(got.keys()) == list(want.keys()), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            compare(path + [str(k)], got[k], want[k], ptrs)
        if hasattr(want, "_metadata"):
            assert getattr(got, "_metadata", None) == want._metadata, f"{where}: _metadata"
            assert type(got._metadata) is collections.OrderedDict, f"{where}: _metadata type"
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            compare(path + [str(i)], g, w, ptrs)
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def check(name, path, weights_only):
    got = torch.load(path, weights_only=weights_only)
    want = CASES[name]()
    ptrs = {}
    compare([], got, want, ptrs)
    # Tensors sharing a storage in the expected tree share one in the loaded tree, and
    # tensors with distinct storages do not.
    loaded = [p for group in ptrs.values() for p in group]
    for group in ptrs.values():
        assert len(group) == 1, f"shared storage split into {len(group)}"
    assert len(set(loaded)) == len(loaded), "distinct storages merged"
    if name != "state_dict":
        assert got["tied"] is got["model"]["fc.weight"], "tied tensor is not one object"
    print(f"ok {name} torch {torch.__version__} weights_only={weights_only} storages={len(ptrs)}")


def check_all(args):
    failed = 0
    for name, path, mode in zip(args[0::3], args[1::3], args[2::3]):
        try:
            check(name, path, mode == "weights-only")
        except Exception as e:  # report every file, then fail
            failed += 1
            print(f"FAIL {name} {path} torch {torch.__version__}: {type(e).__name__}: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1] == "golden":
        golden(sys.argv[2])
    elif sys.argv[1] == "check" and len(sys.argv) % 3 == 2:
        sys.exit(check_all(sys.argv[2:]))
    else:
        sys.exit(__doc__)
