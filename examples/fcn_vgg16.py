"""VGG16 to FCN-32s with pt2conv: the PyTorch side.

Usage:
  fcn_vgg16.py make VGG.pth [--scale N]          write a VGG16 state_dict (random weights)
  fcn_vgg16.py check VGG.pth FCN.pth [--scale N] load FCN.pth into the FCN below (strict=True)
                                                 and check it against VGG.pth

`make` stands in for a pretrained checkpoint: torchvision's vgg16(...).state_dict() has the
same keys and shapes (torchvision is not needed here; the modules are defined below with
torchvision's layout, Dropout slots and all). `check` builds an FCN whose head is three
convolutions named fc6, fc7 and score, loads the weights pt2conv converted and renamed, and
checks that

  - on a 224x224 image it computes VGG16's logits (the 7x7 head sees the whole 7x7 feature
    map, so nothing pools or slides), and
  - on a 384x384 image it returns a 6x6 map of class scores (no adaptive pooling: the head
    slides over the 12x12 feature map), each position being VGG16's classifier applied to
    its 7x7 window of features.

--scale N divides every channel count and FC width by N (default 1: VGG16 itself, 138 M
parameters, 528 MiB); the tests use a smaller VGG16-shaped network so that they stay quick.
"""

import argparse
import sys

import torch
import torch.nn as nn

# Debian's torch builds: their oneDNN convolutions now and then return NaN; use torch's own.
torch.backends.mkldnn.enabled = False

# VGG16's configuration "D": output channels of each conv, "M" a 2x2 max pool.
CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def features(scale):
    """torchvision's vgg16().features: indices 0..30, convs at 0, 2, 5, ..., 28."""
    layers, cin = [], 3
    for v in CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, v // scale, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            cin = v // scale
    return nn.Sequential(*layers)


class VGG16(nn.Module):
    """torchvision.models.vgg16's modules and forward."""

    def __init__(self, scale=1, num_classes=1000):
        super().__init__()
        c, fc = 512 // scale, 4096 // scale
        self.features = features(scale)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(c * 7 * 7, fc), nn.ReLU(True), nn.Dropout(),
            nn.Linear(fc, fc), nn.ReLU(True), nn.Dropout(),
            nn.Linear(fc, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class FCN32s(nn.Module):
    """VGG16's features with its classifier as convolutions, named as FCN names them."""

    def __init__(self, scale=1, num_classes=1000):
        super().__init__()
        c, fc = 512 // scale, 4096 // scale
        self.features = features(scale)
        self.fc6 = nn.Conv2d(c, fc, kernel_size=7)
        self.fc7 = nn.Conv2d(fc, fc, kernel_size=1)
        self.score = nn.Conv2d(fc, num_classes, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout2d()

    def forward(self, x):
        x = self.drop(self.relu(self.fc6(self.features(x))))
        x = self.drop(self.relu(self.fc7(x)))
        return self.score(x)


def make(args):
    torch.manual_seed(0)
    model = VGG16(args.scale)
    torch.save(model.state_dict(), args.vgg)
    n = sum(p.numel() for p in model.parameters())
    print("wrote %s: VGG16 / %d, %d parameters" % (args.vgg, args.scale, n))


def close(got, want, what):
    err = (got - want).abs().max().item()
    scale = want.abs().max().item()
    if not err <= 1e-4 * max(scale, 1e-6):
        sys.exit("%s: max abs difference %.3g on values up to %.3g" % (what, err, scale))
    return err


def check(args):
    vgg = VGG16(args.scale)
    vgg.load_state_dict(torch.load(args.vgg, weights_only=True))
    fcn = FCN32s(args.scale)
    # strict=True: every key of the converted file has a module here, with its shape
    fcn.load_state_dict(torch.load(args.fcn, weights_only=True), strict=True)
    vgg.eval()
    fcn.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        x = torch.randn(2, 3, 224, 224)
        want = vgg(x)
        got = fcn(x)
        if got.shape[2:] != (1, 1):
            sys.exit("224x224: score map %s, want 1x1" % (tuple(got.shape),))
        err = close(got.flatten(1), want, "224x224 logits")
        print("224x224: logits %s match VGG16 (max abs difference %.2g)" % (tuple(want.shape), err))

        big = torch.randn(1, 3, 384, 384)
        scores = fcn(big)
        if scores.shape != (1, want.shape[1], 6, 6):
            sys.exit("384x384: score map %s, want (1, %d, 6, 6)" % (tuple(scores.shape), want.shape[1]))
        feats = vgg.features(big)
        for i, j in [(0, 0), (2, 3), (5, 5)]:
            window = torch.flatten(feats[:, :, i:i + 7, j:j + 7], 1)
            close(scores[:, :, i, j], vgg.classifier(window), "384x384 position (%d, %d)" % (i, j))
        top = scores[0].argmax(0)
        print("384x384: score map %s; each position is VGG16's classifier on its 7x7 window; "
              "top class at (0, 0): %d" % (tuple(scores.shape), top[0, 0].item()))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("vgg")
    c = sub.add_parser("check")
    c.add_argument("vgg")
    c.add_argument("fcn")
    for s in (m, c):
        s.add_argument("--scale", type=int, default=1)
    args = p.parse_args()
    make(args) if args.cmd == "make" else check(args)


if __name__ == "__main__":
    main()
