#!/usr/bin/env python3
"""End-to-end models for pt2conv's Linear -> Conv2d conversion, judged by real PyTorch.

    e2e_models.py make DIR [--reference]
        Builds small Linear models (VGG-like, AlexNet-like, MLP, BatchNorm between Linear
        layers), trains each for two optimizer steps, and saves DIR/<name>.pt: a checkpoint as
        training code writes it (nested under 'model' with an optimizer, a bare state_dict, or
        a DataParallel 'module.' state_dict under 'state_dict'). DIR/manifest.json lists, per
        model, the input file, the file the converted checkpoint is expected at, the layer
        specs and the optimizer key to convert with. With --reference it also writes the
        expected converted checkpoints itself (weights reshaped with Tensor.view), which
        checks this script without the converter.

    e2e_models.py check DIR...
        For each DIR, loads every <name>.pt and its converted checkpoint with torch.load(weights_only=True),
        loads them with strict=True into the Linear model and the matching Conv2d model, and
        checks: equal outputs (relative 1e-5); the fully convolutional property (on a larger
        input every output position of the Conv2d model equals the Linear model applied to
        that window); and, when the checkpoint holds an optimizer, that one more SGD-momentum
        or Adam step taken from the converted checkpoint gives the same weights as from the
        original. Prints one line per check and exits 1 if any fails.

Both modes are deterministic (fixed seeds); files from one torch version may be checked with
another.
"""

import json
import os
import sys

import torch
import torch.nn as nn

RTOL = 1e-5

# The oneDNN (mkldnn) convolution kernels of Debian's torch builds now and then return NaN or a
# different rounding (seen: the weight gradient of the first conv of the VGG-like model, in one
# run of eight on the same files, which training then spreads into the weights). Making the
# checkpoints and judging them both use torch's own native kernels, which give the same
# numbers every run.
torch.backends.mkldnn.enabled = False


# ---- models: each Linear model has a Conv2d twin with the same state_dict keys ----


class VGGLike(nn.Module):
    """Two conv blocks to 8x3x3 features on a 3x12x12 input, then Linear 72-32-32-10."""

    def __init__(self, conv_head):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.conv_head = conv_head
        if conv_head:
            self.classifier = nn.Sequential(
                nn.Conv2d(8, 32, 3), nn.ReLU(), nn.Dropout(),
                nn.Conv2d(32, 32, 1), nn.ReLU(), nn.Dropout(),
                nn.Conv2d(32, 10, 1))
        else:
            self.classifier = nn.Sequential(
                nn.Linear(72, 32), nn.ReLU(), nn.Dropout(),
                nn.Linear(32, 32), nn.ReLU(), nn.Dropout(),
                nn.Linear(32, 10))

    def forward(self, x):
        x = self.features(x)
        if self.conv_head:
            return self.classifier(x)
        return self.classifier(torch.flatten(x, 1))


class AlexNetLike(nn.Module):
    """Features to 6x2x2 on a 3x16x16 input; classifier Dropout, Linear at 1, 4, 6."""

    def __init__(self, conv_head):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.conv_head = conv_head
        if conv_head:
            self.classifier = nn.Sequential(
                nn.Dropout(), nn.Conv2d(6, 20, 2), nn.ReLU(),
                nn.Dropout(), nn.Conv2d(20, 20, 1), nn.ReLU(), nn.Conv2d(20, 5, 1))
        else:
            self.classifier = nn.Sequential(
                nn.Dropout(), nn.Linear(24, 20), nn.ReLU(),
                nn.Dropout(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 5))

    def forward(self, x):
        x = self.features(x)
        if self.conv_head:
            return self.classifier(x)
        return self.classifier(torch.flatten(x, 1))


class MLP(nn.Module):
    """Linear 16-32-32-10 on a flattened 1x4x4 image: keys layers.0, layers.2, layers.4."""

    def __init__(self, conv_head):
        super().__init__()
        self.conv_head = conv_head
        if conv_head:
            self.layers = nn.Sequential(nn.Conv2d(1, 32, 4), nn.ReLU(), nn.Conv2d(32, 32, 1), nn.ReLU(),
                                        nn.Conv2d(32, 10, 1))
        else:
            self.layers = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                                        nn.Linear(32, 10))

    def forward(self, x):
        return self.layers(x if self.conv_head else torch.flatten(x, 1))


def bn_between(conv_head):
    """Linear 12-16-16-4 with BatchNorm between the layers; input 12 values (12x1x1)."""
    if conv_head:
        return nn.Sequential(nn.Conv2d(12, 16, 1), nn.BatchNorm2d(16), nn.ReLU(),
                             nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16), nn.ReLU(),
                             nn.Conv2d(16, 4, 1))
    return nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Linear(16, 4))


class BNWrap(nn.Module):
    def __init__(self, conv_head):
        super().__init__()
        self.conv_head = conv_head
        self.net = bn_between(conv_head)

    def forward(self, x):
        return self.net(x if self.conv_head else torch.flatten(x, 1))


# make: the model class (its argument selects the Conv2d form); input: C, H, W of one sample;
# big: a larger input the Conv2d form slides over; window: the H, W the first head layer
# sees; layout: how the checkpoint wraps the state_dict; specs: what to convert with.
MODELS = {
    "vgg": dict(make=VGGLike, input=(3, 12, 12), big=(3, 20, 20), window=(3, 3),
                layout="nested", optimizer="sgd",
                specs=["classifier.0=auto", "classifier.3=auto", "classifier.6=auto"]),
    "alexnet": dict(make=AlexNetLike, input=(3, 16, 16), big=(3, 32, 32), window=(2, 2),
                    layout="bare", optimizer=None,
                    specs=["classifier.1=6x2x2", "classifier.4", "classifier.6"]),
    "mlp": dict(make=MLP, input=(1, 4, 4), big=(1, 7, 6), window=(4, 4),
                layout="nested", optimizer="adam", specs=["layers.0=1x4x4", "layers.2=auto", "layers.4=auto"]),
    "bn": dict(make=BNWrap, input=(12, 1, 1), big=(12, 3, 2), window=(1, 1),
               layout="module", optimizer="sgd", specs=["module.*"]),
}


def make_optimizer(kind, params):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)
    return torch.optim.Adam(params, lr=1e-3)


def batch(spec, seed, shape=None):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((4,) + tuple(shape or spec["input"]), generator=g)


def train_step(model, opt, x):
    opt.zero_grad()
    out = model(x).reshape(x.shape[0], -1)
    loss = (out ** 2).mean()
    loss.backward()
    opt.step()


def features_of(model, x):
    """The input the head sees: what the features produce, or the model input."""
    if hasattr(model, "features"):
        return model.features(x)
    return x


def head_of(model):
    if hasattr(model, "classifier"):
        return model.classifier
    return model


# ---- make ----


def make(outdir, reference):
    os.makedirs(outdir, exist_ok=True)
    manifest = []
    for name, spec in MODELS.items():
        torch.manual_seed(1234)
        model = spec["make"](False)
        checkpoint_opt = None
        if spec["optimizer"]:
            opt = make_optimizer(spec["optimizer"], model.parameters())
            model.train()
            for step in range(2):
                train_step(model, opt, batch(spec, 10 + step))
            checkpoint_opt = opt.state_dict()
        elif any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
            model.train()
            model(batch(spec, 9))
        model.eval()
        sd = model.state_dict()
        if spec["layout"] == "nested":
            obj = {"epoch": 2, "model": sd, "optimizer": checkpoint_opt}
            opt_key = "optimizer" if checkpoint_opt else None
        elif spec["layout"] == "module":
            # a DataParallel checkpoint: keys prefixed "module.", under "state_dict"
            prefixed = type(sd)((("module." + k), v) for k, v in sd.items())
            prefixed._metadata = type(sd)(("module." + k if k else "module", v)
                                          for k, v in sd._metadata.items())
            obj = {"state_dict": prefixed, "optimizer": checkpoint_opt}
            opt_key = "optimizer" if checkpoint_opt else None
        else:
            obj = sd
            opt_key = None
        path = os.path.join(outdir, name + ".pt")
        torch.save(obj, path)
        manifest.append({"name": name, "input": name + ".pt", "converted": name + ".conv.pt",
                         "specs": spec["specs"], "optimizer_key": opt_key})
        if reference:
            torch.save(reference_convert(name, obj), os.path.join(outdir, name + ".conv.pt"))
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("made %d checkpoints in %s with torch %s" % (len(manifest), outdir, torch.__version__))


def reference_convert(name, obj):
    """The conversion done by torch itself: every Linear weight of the model viewed as its
    twin's Conv2d weight, optimizer state alike."""
    spec = MODELS[name]
    conv_shapes = {k: v.shape for k, v in spec["make"](True).state_dict().items()}

    def convert_sd(sd, prefix):
        out = type(sd)()
        for k, v in sd.items():
            shape = conv_shapes[k[len(prefix):]]
            out[k] = v.view(shape) if v.shape != shape else v
        out._metadata = sd._metadata
        return out

    if spec["layout"] == "bare":
        return convert_sd(obj, "")
    key = "model" if spec["layout"] == "nested" else "state_dict"
    prefix = "" if spec["layout"] == "nested" else "module."
    sd = obj[key]
    out = dict(obj)
    out[key] = convert_sd(sd, prefix)
    if obj.get("optimizer"):
        params = list(k for k in sd.keys()
                      if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        opt = {"state": {}, "param_groups": obj["optimizer"]["param_groups"]}
        for idx, st in obj["optimizer"]["state"].items():
            shape = conv_shapes[params[idx][len(prefix):]]
            opt["state"][idx] = {n: (t.view(shape) if torch.is_tensor(t) and t.dim() > 0 else t)
                                 for n, t in st.items()}
        out["optimizer"] = opt
    return out


# ---- check ----


class Checker:
    def __init__(self):
        self.failed = 0

    def close(self, what, got, want):
        scale = max(1.0, want.abs().max().item())
        err = (got - want).abs().max().item()
        ok = err <= RTOL * scale
        self.failed += not ok
        print("%s %s: max abs diff %.3g (scale %.3g)" % ("ok  " if ok else "FAIL", what, err, scale))


def load(path):
    """Loads with weights_only=True when torch can; says whether it could. torch 1.13's
    weights-only unpickler lacks some opcodes (BINFLOAT: any float, as in an optimizer's
    param_groups), so files with floats load there only with weights_only=False."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True), True
    except Exception as e:  # noqa: BLE001 - torch raises several types here
        return torch.load(path, map_location="cpu"), False


def unwrap(name, obj):
    layout = MODELS[name]["layout"]
    if layout == "bare":
        return obj, None
    if layout == "nested":
        return obj["model"], obj.get("optimizer")
    sd = obj["state_dict"]
    stripped = type(sd)((k[len("module."):], v) for k, v in sd.items())
    return stripped, obj.get("optimizer")


def check(outdirs):
    c = Checker()
    print("torch", torch.__version__)
    for outdir in outdirs:
        with open(os.path.join(outdir, "manifest.json")) as f:
            manifest = json.load(f)
        print("-- %s" % outdir)
        for entry in manifest:
            try:
                check_model(c, outdir, entry)
            except Exception as e:  # noqa: BLE001 - report every model, then fail
                c.failed += 1
                print("FAIL %s: %s: %s" % (entry["name"], type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
    if c.failed:
        print("%d checks failed" % c.failed)
        sys.exit(1)
    print("all checks passed")


def check_model(c, outdir, entry):
    name = entry["name"]
    spec = MODELS[name]
    lin_obj, lin_safe = load(os.path.join(outdir, entry["input"]))
    conv_obj, conv_safe = load(os.path.join(outdir, entry["converted"]))
    if lin_safe and not conv_safe:
        c.failed += 1
        print("FAIL %s: the input loads with weights_only=True, the converted file does not" % name)
    else:
        print("ok   %s: weights_only=True load %s" % (name, "works" if conv_safe else "fails for the input too"))
    lin_sd, lin_opt = unwrap(name, lin_obj)
    conv_sd, conv_opt = unwrap(name, conv_obj)
    lin, conv = spec["make"](False), spec["make"](True)
    lin.load_state_dict(lin_sd, strict=True)
    conv.load_state_dict(conv_sd, strict=True)
    print("ok   %s: load_state_dict(strict=True) into the Conv2d model" % name)
    lin.eval()
    conv.eval()
    with torch.no_grad():
        x = batch(spec, 99)
        c.close(name + ": outputs", conv(x).flatten(1), lin(x))
        check_sliding(c, name, spec, lin, conv)
    if lin_opt is not None:
        check_resume(c, name, spec, lin, conv, lin_opt, conv_opt)


def check_sliding(c, name, spec, lin, conv):
    """On a larger input the Conv2d head slides: position (i, j) is the Linear head applied
    to the flattened window of its input at (i, j)."""
    x = batch(spec, 7, spec["big"])
    out = conv(x)
    feats = features_of(lin, x)
    wh, ww = spec["window"]
    n, _, oh, ow = out.shape
    worst = []
    for i in range(oh):
        for j in range(ow):
            window = feats[:, :, i:i + wh, j:j + ww]
            if hasattr(lin, "classifier"):
                want = head_of(lin)(torch.flatten(window, 1))
            else:
                want = lin(window)
            worst.append((out[:, :, i, j], want))
    got = torch.stack([g for g, _ in worst])
    want = torch.stack([w for _, w in worst])
    c.close("%s: fully convolutional on %s (%dx%d positions)" % (name, "x".join(map(str, spec["big"])), oh, ow),
            got, want)


def check_resume(c, name, spec, lin, conv, lin_opt_sd, conv_opt_sd):
    """One more step from each checkpoint's optimizer state gives the same weights."""
    kind = spec["optimizer"]
    lin_opt = make_optimizer(kind, lin.parameters())
    conv_opt = make_optimizer(kind, conv.parameters())
    lin_opt.load_state_dict(lin_opt_sd)
    conv_opt.load_state_dict(conv_opt_sd)
    lin.train()
    conv.train()
    torch.manual_seed(5)  # dropout masks differ between the forms; compare with it off
    for m in list(lin.modules()) + list(conv.modules()):
        if isinstance(m, nn.Dropout):
            m.eval()
    x = batch(spec, 42)
    train_step(lin, lin_opt, x)
    train_step(conv, conv_opt, x)
    got = torch.cat([p.detach().reshape(-1) for p in conv.parameters()])
    want = torch.cat([p.detach().reshape(-1) for p in lin.parameters()])
    c.close("%s: one %s step resumed from the converted optimizer state" % (name, kind), got, want)
    states = [(conv_opt.state[p], lin_opt.state[q]) for p, q in zip(conv.parameters(), lin.parameters())]
    for (cs, ls) in states:
        for k, v in ls.items():
            if torch.is_tensor(v) and v.dim() > 0 and cs[k].shape == v.shape:
                continue
            if torch.is_tensor(v) and v.dim() > 0:
                cs_flat = cs[k].reshape(v.shape)
                err = (cs_flat - v).abs().max().item()
                if err > RTOL * max(1.0, v.abs().max().item()):
                    c.failed += 1
                    print("FAIL %s: optimizer state %s differs after the step by %.3g" % (name, k, err))


def main(argv):
    if len(argv) >= 2 and argv[0] == "make":
        make(argv[1], "--reference" in argv[2:])
    elif len(argv) >= 2 and argv[0] == "check":
        check(argv[1:])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
