#!/usr/bin/env python3
"""The verification the benchmark times pt2conv against, done with PyTorch.

Loads the original and the converted VGG16 state_dicts and runs the classifier head both
ways on one random 512xSxS input (S = 14 by default): the Linear form (F.linear) on each of
the (S-6)x(S-6) flattened 512x7x7 windows, and the Conv2d form (F.conv2d: fc6 as a 7x7
convolution, fc7 and fc8 as 1x1) on the whole input, ReLU between layers. Every output
position of the conv form must equal the Linear form on its window. Prints one line of
timings and the largest difference; exits 1 if the forms disagree beyond float32 rounding.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

HEAD = ["classifier.0", "classifier.3", "classifier.6"]
KERNEL = 7


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("original")
    ap.add_argument("converted")
    ap.add_argument("--size", type=int, default=14, help="input height and width")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    # Some builds default to one thread; the Go side uses every core.
    torch.set_num_threads(os.cpu_count())
    start = time.perf_counter()
    orig = torch.load(args.original, map_location="cpu")
    conv = torch.load(args.converted, map_location="cpu")
    loaded = time.perf_counter()

    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(1, 512, args.size, args.size, generator=gen)
    with torch.no_grad():
        t0 = time.perf_counter()
        y_conv = x
        for i, name in enumerate(HEAD):
            if i:
                y_conv = F.relu(y_conv)
            y_conv = F.conv2d(y_conv, conv[name + ".weight"], conv[name + ".bias"])
        t1 = time.perf_counter()

        positions = args.size - KERNEL + 1
        windows = torch.stack([
            x[0, :, i:i + KERNEL, j:j + KERNEL].reshape(-1)
            for i in range(positions) for j in range(positions)])
        y_lin = windows
        for i, name in enumerate(HEAD):
            if i:
                y_lin = F.relu(y_lin)
            y_lin = F.linear(y_lin, orig[name + ".weight"], orig[name + ".bias"])
    computed = time.perf_counter()

    # Row (i*positions + j) of y_lin is output position (i, j) of y_conv.
    got = y_conv[0].reshape(y_conv.shape[1], -1).t()
    diff = (got - y_lin).abs().max().item()
    scale = y_lin.abs().max().item()
    # Summation-order rounding stays far below this; a layout error (a weight flattened
    # channels-last, H and W swapped) gives differences of the order of the values.
    tol = 1e-4 * max(scale, 1.0)
    ok = diff <= tol
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads): {positions}x{positions} windows, "
          f"load {loaded - start:.3f} s, compute {computed - loaded:.3f} s "
          f"(conv {t1 - t0:.3f} s, linear {computed - t1:.3f} s), "
          f"max abs diff {diff:.3g} (tol {tol:.3g}) {'ok' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
