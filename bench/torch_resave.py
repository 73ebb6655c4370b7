#!/usr/bin/env python3
"""Load a checkpoint with torch.load and write it again with torch.save: the baseline for
what any tool that goes through torch pays to rewrite a checkpoint of many tensors."""
import sys

import torch


def main():
    src, dst = sys.argv[1:3]
    torch.save(torch.load(src), dst)


if __name__ == "__main__":
    main()
