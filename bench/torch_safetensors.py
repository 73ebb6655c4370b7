#!/usr/bin/env python3
"""The usual pickle -> safetensors conversion, the benchmark's Python baseline:
safetensors.torch.save_file(torch.load(IN), OUT). Views are made contiguous first, since
save_file refuses non-contiguous tensors.

Usage: torch_safetensors.py IN OUT
"""
import sys

import torch
from safetensors.torch import save_file


def main():
    src, out = sys.argv[1:]
    sd = torch.load(src, map_location="cpu", weights_only=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, out, metadata={"format": "pt"})


if __name__ == "__main__":
    main()
