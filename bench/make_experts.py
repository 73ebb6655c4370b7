#!/usr/bin/env python3
"""Write a state_dict of many small tensors, the scaling benchmark's input.

A mixture-of-experts shaped model: N/4 expert blocks, each a Linear(16, 16) named
"model.layers.L.experts.E.w1" and a LayerNorm(16) "model.layers.L.experts.E.norm", so the
state_dict holds N tensors (w1.weight, w1.bias, norm.weight, norm.bias per expert), every one
in its own storage. 100,000 tensors make a file of about 47 MB. Initialisation is seeded.
"""
import argparse
import os
import time

import torch
from torch import nn

FEATURES = 16
EXPERTS_PER_LAYER = 100


class Expert(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Linear(FEATURES, FEATURES)
        self.norm = nn.LayerNorm(FEATURES)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--tensors", type=int, default=100_000,
                    help="number of tensors, a multiple of 4")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.tensors <= 0 or args.tensors % 4:
        ap.error("--tensors must be a positive multiple of 4")

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    experts = args.tensors // 4
    # Building nn.Modules for 25,000 experts is slow; one module's state_dict keys and fresh
    # seeded tensors of its shapes give the same file.
    sd = {}
    template = Expert().state_dict()
    for i in range(experts):
        layer, expert = divmod(i, EXPERTS_PER_LAYER)
        prefix = f"model.layers.{layer}.experts.{expert}."
        for key, t in template.items():
            sd[prefix + key] = torch.randn(t.shape)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    torch.save(sd, tmp)
    os.replace(tmp, args.out)
    print(f"{args.out}: {len(sd)} tensors, {os.path.getsize(args.out)} bytes, "
          f"torch {torch.__version__}, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
