"""Resumes training from a Lightning-layout checkpoint that pt2conv converted to conv form.

Usage: lightning_resume.py ORIGINAL CONVERTED

ORIGINAL is fixtures/lightning.pt: {"state_dict": {"model.features...", "model.classifier.0/3/6"
Linear}, "optimizer_states": [Adam], ...}. CONVERTED has the classifier as Conv2d weights and,
when pt2conv was given --optimizer-key optimizer_states/0, Adam's moments reshaped with them.
Both are loaded with strict=True into a Linear and a conv model, their optimizers restored,
and one identical training step is taken: the conv model must compute the same loss and end
with the same (reshaped) weights. Prints "ok" or exits 1.
"""

import sys

import torch
import torch.nn as nn

# Debian torch's oneDNN convolutions now and then return NaN for a layer nothing touched.
torch.backends.mkldnn.enabled = False


class VGGTiny(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.conv = conv
        if conv:  # the same module names, so the converted keys load as they are
            fc = [nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 1), nn.Conv2d(16, 5, 1)]
        else:
            fc = [nn.Linear(72, 16), nn.Linear(16, 16), nn.Linear(16, 5)]
        self.classifier = nn.Sequential(
            fc[0], nn.ReLU(True), nn.Dropout(), fc[1], nn.ReLU(True), nn.Dropout(), fc[2])

    def forward(self, x):
        x = self.avgpool(self.features(x))
        if not self.conv:
            x = torch.flatten(x, 1)
        return torch.flatten(self.classifier(x), 1)


class Lit(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.model = VGGTiny(conv)

    def forward(self, x):
        return self.model(x)


def restore(path, conv):
    ckpt = torch.load(path, weights_only=False)
    lit = Lit(conv)
    lit.load_state_dict(ckpt["state_dict"], strict=True)
    opt = torch.optim.Adam(lit.parameters(), lr=1e-3)
    opt.load_state_dict(ckpt["optimizer_states"][0])
    lit.eval()  # no dropout: both models take the same step
    return lit, opt


def step(lit, opt, x):
    opt.zero_grad()
    loss = lit(x).pow(2).sum()
    loss.backward()
    opt.step()
    return loss.item()


def main():
    orig, conv = sys.argv[1:]
    a, opt_a = restore(orig, False)
    b, opt_b = restore(conv, True)
    torch.manual_seed(5)
    x = torch.randn(2, 3, 12, 12)
    la, lb = step(a, opt_a, x), step(b, opt_b, x)
    if abs(la - lb) > 1e-4 * max(1.0, abs(la)):
        sys.exit("loss differs: linear %r, conv %r" % (la, lb))
    pa, pb = a.state_dict(), b.state_dict()
    for k, v in pa.items():
        w = pb[k]
        if w.shape != v.shape:
            if w.dim() != 4 or v.dim() != 2:
                sys.exit("%s: %s in the linear model, %s in the conv model" % (k, tuple(v.shape), tuple(w.shape)))
            w = w.reshape(v.shape)
        if not torch.allclose(v, w, atol=1e-6, rtol=1e-5):
            sys.exit("%s differs after one step: max %g" % (k, (v - w).abs().max().item()))
    for idx, state in opt_b.state_dict()["state"].items():
        ref = opt_a.state_dict()["state"][idx]
        for name, t in state.items():
            if torch.is_tensor(t) and t.dim() > 0 and t.numel() != ref[name].numel():
                sys.exit("optimizer state %s/%s has %d elements, want %d" % (idx, name, t.numel(), ref[name].numel()))
    print("ok")


if __name__ == "__main__":
    main()
