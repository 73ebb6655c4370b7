#!/usr/bin/env python3
"""Write a VGG16 state_dict whose weights are all transposed views, the worst case of a
safetensors conversion (safetensors has no strides, so every weight must be gathered).

Each 2-D weight is stored as the transpose of a contiguous [in, out] tensor (strides (1, out)),
each 4-D conv weight channels-last (permuted); biases, being 1-D, stay contiguous.

Usage: make_transposed.py IN OUT
"""
import os
import sys

import torch


def main():
    src, out = sys.argv[1:]
    sd = torch.load(src, map_location="cpu")
    for k, t in sd.items():
        if t.dim() == 2:
            sd[k] = t.t().contiguous().t()
        elif t.dim() == 4:
            sd[k] = t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    tmp = out + ".tmp"
    torch.save(sd, tmp)
    os.replace(tmp, out)
    views = sum(1 for t in sd.values() if not t.is_contiguous())
    print(f"{out}: {len(sd)} tensors, {views} non-contiguous views")


if __name__ == "__main__":
    main()
