"""Checks checkpoints with real PyTorch (works on torch 1.13 and 2.x).

Usage:
  torchcheck.py same ORIGINAL COPY [ORIGINAL COPY]...
                                     each COPY must hold what its ORIGINAL holds, exactly
  torchcheck.py describe FILE        one JSON line per file: loadability and every tensor

`same` loads ORIGINAL with weights_only=True if it can, and then COPY must load that way too;
otherwise both load with weights_only=False. It compares the two trees: Python types, key order,
plain values (floats by their bits), state_dict `_metadata`, and for tensors dtype, shape, stride,
storage offset, requires_grad and values bit for bit (so -0.0 is not 0.0, and NaN payloads are
compared), the size of each storage and every byte of it (also the bytes outside any view), and
which tensors share a storage. It prints a one-line JSON summary per pair and exits 0, or prints
the first difference and exits 1. Usage errors exit 2.
"""

import collections
import hashlib
import json
import struct
import sys
import warnings

import torch

warnings.filterwarnings("ignore")  # TypedStorage deprecation, protocol-4 notices


class Differ(Exception):
    pass


def load(path, weights_only):
    return torch.load(path, map_location="cpu", weights_only=weights_only)


def untyped_storage(t):
    if hasattr(t, "untyped_storage"):
        return t.untyped_storage()
    return t.storage()


def storage_id(t):
    s = untyped_storage(t)
    nbytes = s.nbytes() if hasattr(s, "nbytes") else s.size() * t.element_size()
    if nbytes == 0:
        return None  # empty storages have no address worth comparing
    return (s.data_ptr(), nbytes)


def bits(t):
    """The tensor's bytes as uint8, so that equality means equal bits (-0.0 is not +0.0, NaN
    payloads count) for every dtype, including those torch.equal does not support."""
    t = t.detach().contiguous()
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dtype == torch.bool:
        return t
    try:
        return t.view(torch.uint8)
    except RuntimeError:  # a dtype view cannot reinterpret: compare it as it is
        return t


def same_values(a, b):
    """Bit for bit: -0.0 and +0.0 differ, NaNs are compared by their payload."""
    return a.numel() == b.numel() and torch.equal(bits(a), bits(b))


def storage_nbytes(t):
    s = untyped_storage(t)
    return s.nbytes() if hasattr(s, "nbytes") else s.size() * t.element_size()


def storage_bytes(t):
    """The tensor's entire storage as uint8, bytes outside the view included, for any dtype
    (quantized ones too: torch 1.13 hands those out as typed storages)."""
    s = untyped_storage(t)
    if hasattr(s, "untyped"):  # a TypedStorage (torch 1.13)
        s = s.untyped()
    return torch.empty(0, dtype=torch.uint8).set_(s)


def describe_tensor(t):
    return "%s%s stride=%s offset=%d" % (
        str(t.dtype).replace("torch.", ""), list(t.shape), list(t.stride()), t.storage_offset())


class Comparer:
    def __init__(self):
        self.tensors = 0
        self.groups = ([], [])  # per file: storage ids in the order tensors are met
        self.paths = []
        self.storages_seen = set()

    def compare(self, a, b, path):
        where = path or "<root>"
        if type(a) is not type(b):
            raise Differ("%s: type %s vs %s" % (where, type(a).__name__, type(b).__name__))
        if isinstance(a, torch.Tensor):
            self.compare_tensors(a, b, where)
        elif isinstance(a, dict):
            ka, kb = list(a.keys()), list(b.keys())
            if ka != kb:
                raise Differ("%s: keys %s vs %s" % (where, short(ka), short(kb)))
            for k in ka:
                self.compare(a[k], b[k], join(path, k))
            ma, mb = getattr(a, "_metadata", None), getattr(b, "_metadata", None)
            if ma is not None or mb is not None:
                self.compare(ma, mb, join(path, "_metadata"))
        elif isinstance(a, (list, tuple)):
            if len(a) != len(b):
                raise Differ("%s: length %d vs %d" % (where, len(a), len(b)))
            for i, (x, y) in enumerate(zip(a, b)):
                self.compare(x, y, join(path, i))
        elif isinstance(a, float):
            if struct.pack("<d", a) != struct.pack("<d", b):
                raise Differ("%s: value %r vs %r (bits differ)" % (where, a, b))
        elif a != b:
            raise Differ("%s: value %s vs %s" % (where, short(a), short(b)))

    def compare_tensors(self, a, b, where):
        # Python attributes set on the tensor (w.note = ...), which torch saves with it.
        self.compare(dict(getattr(a, "__dict__", {})), dict(getattr(b, "__dict__", {})), join(where, "(attributes)"))
        if a.device != b.device:
            raise Differ("%s: device %s vs %s" % (where, a.device, b.device))
        if a.is_meta:  # a shape and a dtype, no data
            if (a.dtype, tuple(a.shape), a.stride(), a.storage_offset(), a.requires_grad) != (
                    b.dtype, tuple(b.shape), b.stride(), b.storage_offset(), b.requires_grad):
                raise Differ("%s: meta tensor %s vs %s" % (where, describe_tensor(a), describe_tensor(b)))
            return
        if a.is_nested != b.is_nested:
            raise Differ("%s: nested %s vs %s" % (where, a.is_nested, b.is_nested))
        if a.is_nested:
            return self.compare_nested(a, b, where)
        if (a.layout, a.is_quantized) != (b.layout, b.is_quantized):
            raise Differ("%s: layout %s%s vs %s%s" % (where, a.layout, " quantized" * a.is_quantized,
                                                      b.layout, " quantized" * b.is_quantized))
        if a.layout != torch.strided:
            return self.compare_sparse(a, b, where)
        if a.is_quantized:
            self.compare_quantizer(a, b, where)
        if (a.dtype, tuple(a.shape), a.stride(), a.storage_offset()) != (
                b.dtype, tuple(b.shape), b.stride(), b.storage_offset()):
            raise Differ("%s: tensor %s vs %s" % (where, describe_tensor(a), describe_tensor(b)))
        if a.requires_grad != b.requires_grad:
            raise Differ("%s: requires_grad %s vs %s" % (where, a.requires_grad, b.requires_grad))
        if not same_values(*(t.int_repr() if t.is_quantized else t for t in (a, b))):
            raise Differ("%s: tensor values differ" % where)
        if storage_nbytes(a) != storage_nbytes(b):
            raise Differ("%s: storage of %d bytes vs %d" % (where, storage_nbytes(a), storage_nbytes(b)))
        sid = storage_id(a)
        if sid is not None and sid not in self.storages_seen:
            self.storages_seen.add(sid)
            if not torch.equal(storage_bytes(a), storage_bytes(b)):
                raise Differ("%s: storage bytes outside the tensor's view differ" % where)
        self.tensors += 1
        self.paths.append(where)
        self.groups[0].append(storage_id(a))
        self.groups[1].append(storage_id(b))

    def compare_sparse(self, a, b, where):
        """Sparse tensors: dtype, shape and layout, then their index and value tensors as stored."""
        if (a.dtype, tuple(a.shape), a.requires_grad) != (b.dtype, tuple(b.shape), b.requires_grad):
            raise Differ("%s: sparse tensor %s%s vs %s%s" % (where, a.dtype, list(a.shape), b.dtype, list(b.shape)))
        if a.layout == torch.sparse_coo:
            if a.is_coalesced() != b.is_coalesced():
                raise Differ("%s: is_coalesced %s vs %s" % (where, a.is_coalesced(), b.is_coalesced()))
            parts = [("indices", lambda t: t._indices()), ("values", lambda t: t._values())]
        elif a.layout in (torch.sparse_csr, torch.sparse_bsr):
            parts = [("crow_indices", lambda t: t.crow_indices()), ("col_indices", lambda t: t.col_indices()),
                     ("values", lambda t: t.values())]
        else:
            parts = [("ccol_indices", lambda t: t.ccol_indices()), ("row_indices", lambda t: t.row_indices()),
                     ("values", lambda t: t.values())]
        for name, part in parts:
            self.compare_tensors(part(a), part(b), "%s/%s" % (where, name))

    def compare_nested(self, a, b, where):
        """Nested tensors: dtype, then the buffer and the sizes, strides and offsets of the parts."""
        if (a.dtype, a.requires_grad) != (b.dtype, b.requires_grad):
            raise Differ("%s: nested tensor %s vs %s" % (where, a.dtype, b.dtype))
        parts = [("sizes", lambda t: t._nested_tensor_size()), ("strides", lambda t: t._nested_tensor_strides()),
                 ("offsets", lambda t: t._nested_tensor_storage_offsets()), ("buffer", lambda t: t.values())]
        for name, part in parts:
            self.compare_tensors(part(a), part(b), "%s/%s" % (where, name))

    def compare_quantizer(self, a, b, where):
        if a.qscheme() != b.qscheme():
            raise Differ("%s: qscheme %s vs %s" % (where, a.qscheme(), b.qscheme()))
        if a.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            qa, qb = (a.q_scale(), a.q_zero_point()), (b.q_scale(), b.q_zero_point())
        else:
            qa = (a.q_per_channel_scales().tolist(), a.q_per_channel_zero_points().tolist(), a.q_per_channel_axis())
            qb = (b.q_per_channel_scales().tolist(), b.q_per_channel_zero_points().tolist(), b.q_per_channel_axis())
        if qa != qb:
            raise Differ("%s: quantizer %s vs %s" % (where, short(qa), short(qb)))

    def compare_sharing(self):
        pa, pb = partition(self.groups[0]), partition(self.groups[1])
        for i, (x, y) in enumerate(zip(pa, pb)):
            if x != y:
                raise Differ("%s: shares its storage with %s in the original but with %s in the copy"
                             % (self.paths[i], self.sharers(pa, i), self.sharers(pb, i)))

    def sharers(self, part, i):
        names = [self.paths[j] for j, g in enumerate(part) if g is not None and g == part[i] and j != i]
        return ", ".join(names) if names else "no other tensor"


def partition(ids):
    """For each tensor, the index of the first tensor with the same storage (None: no storage)."""
    first = {}
    out = []
    for i, sid in enumerate(ids):
        out.append(None if sid is None else first.setdefault(sid, i))
    return out


def join(path, key):
    return str(key) if not path else "%s/%s" % (path, key)


def short(v):
    s = repr(v)
    return s if len(s) <= 120 else s[:117] + "..."


def try_weights_only(path):
    try:
        return load(path, True), None
    except Exception as e:  # the error type differs between torch versions
        return None, e


def cmd_same(original, copy):
    a, err = try_weights_only(original)
    weights_only = err is None
    if weights_only:
        b, err = try_weights_only(copy)
        if err is not None:
            fail("%s loads with weights_only=True but %s does not: %s"
                 % (original, copy, one_line(err)))
    else:
        a, b = load(original, False), load(copy, False)
    c = Comparer()
    try:
        c.compare(a, b, "")
        c.compare_sharing()
    except Differ as e:
        fail("%s and %s differ at %s" % (original, copy, e))
    print(json.dumps({"same": True, "tensors": c.tensors, "weights_only": weights_only,
                      "torch": torch.__version__}))


def cmd_describe(path):
    obj, err = try_weights_only(path)
    weights_only = err is None
    if not weights_only:
        obj = load(path, False)
    tensors = []
    walk(obj, "", tensors)
    print(json.dumps({"file": path, "torch": torch.__version__, "weights_only": weights_only,
                      "tensors": tensors}))


def walk(obj, path, out):
    if isinstance(obj, torch.Tensor) and (obj.is_meta or obj.is_nested):
        return  # no data of their own to describe
    if isinstance(obj, torch.Tensor):
        t = obj.detach().contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        out.append({
            "key": path, "dtype": str(obj.dtype).replace("torch.", ""), "shape": list(obj.shape),
            "stride": list(obj.stride()), "storage_offset": obj.storage_offset(),
            "sha256": hashlib.sha256(t.numpy().tobytes()).hexdigest(),
        })
    elif isinstance(obj, dict):
        for k, v in obj.items():
            walk(v, join(path, k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            walk(v, join(path, i), out)


def one_line(err):
    lines = [l.strip() for l in str(err).splitlines() if l.strip()]
    detail = [l for l in lines if "Unpickler error" in l]  # the cause, in both torch versions
    return ((detail or lines or [type(err).__name__])[0])[:300]


def fail(msg):
    print("torchcheck: " + msg, file=sys.stderr)
    sys.exit(1)


def main(argv):
    if len(argv) >= 3 and argv[0] == "same" and len(argv) % 2 == 1:
        # Several pairs share one torch start-up, which takes seconds.
        for i in range(1, len(argv), 2):
            cmd_same(argv[i], argv[i + 1])
    elif len(argv) == 2 and argv[0] == "describe":
        cmd_describe(argv[1])
    else:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
