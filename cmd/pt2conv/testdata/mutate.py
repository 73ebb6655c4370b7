"""Plants one change in a converted training checkpoint, the way a careless script would.

Usage:
  mutate.py IN OUTDIR KIND...   for each KIND: load IN, apply KIND, torch.save to OUTDIR/KIND.pt

KIND is one of: resave (no change), f16, bf16, noise, bias, tensor, buffer, plain, lr,
momentum, metadata. IN is a conversion of fixtures/train_sgd.pt (classifier.0 is 4-D).
"""

import sys
import warnings

import torch

warnings.filterwarnings("ignore")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    src, outdir = argv[:2]
    for kind in argv[2:]:
        mutate(src, "%s/%s.pt" % (outdir, kind), kind)


def mutate(src, dst, kind):
    ckpt = torch.load(src, weights_only=False)
    model, opt = ckpt["model"], ckpt["optimizer"]
    w, b = model["classifier.0.weight"], model["classifier.0.bias"]
    torch.manual_seed(0)
    with torch.no_grad():
        if kind == "resave":
            pass
        elif kind == "f16":
            w.copy_(w.half().float())
        elif kind == "bf16":
            w.copy_(w.bfloat16().float())
        elif kind == "noise":
            w.mul_(1 + 1e-3 * torch.randn_like(w))
        elif kind == "bias":
            b.add_(1e-4)
        elif kind == "tensor":
            model["features.0.weight"].mul_(2)
        elif kind == "buffer":
            del model["features.1.running_var"]
        elif kind == "plain":
            ckpt["epoch"] = 999
        elif kind == "lr":
            opt["param_groups"][0]["lr"] = 0.02
        elif kind == "momentum":
            opt["state"][0]["momentum_buffer"].add_(1e-3)
        elif kind == "metadata":
            del model._metadata
        else:
            sys.exit("mutate.py: unknown kind " + kind)
    torch.save(ckpt, dst)


if __name__ == "__main__":
    main(sys.argv[1:])
