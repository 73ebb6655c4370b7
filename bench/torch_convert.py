#!/usr/bin/env python3
"""The conversion the benchmark times pt2conv against, done with PyTorch.

Loads a VGG16 state_dict, views the classifier's three Linear weights in Conv2d form
(classifier.0 as 512x7x7, classifier.3 and classifier.6 as 1x1) and saves the result.
A view changes sizes and strides only, as pt2conv does; torch.save still writes every
storage anew.
"""
import argparse

import torch

HEAD = {
    "classifier.0.weight": (512, 7, 7),
    "classifier.3.weight": (4096, 1, 1),
    "classifier.6.weight": (4096, 1, 1),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    args = ap.parse_args()

    sd = torch.load(args.input, map_location="cpu")
    for key, chw in HEAD.items():
        w = sd[key]
        sd[key] = w.view(w.shape[0], *chw)
    torch.save(sd, args.output)


if __name__ == "__main__":
    main()
