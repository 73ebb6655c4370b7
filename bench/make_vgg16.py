#!/usr/bin/env python3
"""Write the state_dict of a VGG16-shaped model, the benchmark's input.

The model is built here, not taken from torchvision, with the same module names
(features.N, classifier.0/3/6) and parameter shapes as torchvision's vgg16: 13 conv layers
and a classifier head Linear(25088, 4096), Linear(4096, 4096), Linear(4096, 1000),
138,357,544 float32 parameters (about 553 MB). Initialisation is seeded, so the file's
contents are the same on every run with the same torch version.

--target-gb N appends extra Linear(8192, 8192) layers ("extra.N") until the file holds at
least N GB, to show that converting a larger file does not need more memory.
"""
import argparse
import os
import time

import torch
from torch import nn

# Output channels of the 3x3 convolutions; "M" is a 2x2 max-pool.
VGG16_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                512, 512, 512, "M", 512, 512, 512, "M"]
EXTRA_FEATURES = 8192


class VGG16(nn.Module):
    def __init__(self, extra_layers=0):
        super().__init__()
        layers, channels = [], 3
        for v in VGG16_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
                channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 1000),
        )
        if extra_layers:
            self.extra = nn.Sequential(
                *[nn.Linear(EXTRA_FEATURES, EXTRA_FEATURES) for _ in range(extra_layers)])

    def forward(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


def vgg16_parameters():
    n, channels = 0, 3
    for v in VGG16_CONFIG:
        if v != "M":
            n += v * channels * 9 + v
            channels = v
    for i, o in [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]:
        n += i * o + o
    return n


def extra_layers_for(target_bytes):
    base = vgg16_parameters() * 4
    per_layer = (EXTRA_FEATURES * EXTRA_FEATURES + EXTRA_FEATURES) * 4
    n = 0
    while base + n * per_layer < target_bytes:
        n += 1
    return n


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(here, "out", "vgg16.pt"))
    ap.add_argument("--target-gb", type=float, default=0,
                    help="add Linear(8192, 8192) layers until the file holds this many GB")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    extra = extra_layers_for(args.target_gb * 1e9) if args.target_gb > 0 else 0
    model = VGG16(extra)
    sd = model.state_dict()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    torch.save(sd, tmp)
    os.replace(tmp, args.out)
    params = sum(t.numel() for t in sd.values())
    print(f"{args.out}: {len(sd)} tensors, {params} parameters, "
          f"{os.path.getsize(args.out)} bytes, {extra} extra layers, "
          f"torch {torch.__version__}, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
