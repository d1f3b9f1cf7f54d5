#!/usr/bin/python3
"""How much ReLU6 before MobileNetV2's global pooling clips, on an FP model of this project:
the share of positive pre-activation values above 6 at the last 1x1 conv (after BN), and the
test top-1 with ReLU6 (as trained) and with a plain ReLU there (profit.md §6.2's tail).
Runs on Debian's python3-torch/torchvision (torchvision's MobileNetV2 with this project's
small-input changes; parameter names are torchvision's, so the safetensors file loads by name).
Usage: scripts/tail_relu6_share.py [MODEL_DIR] (default models/fp_mobilenet_v2_fmnist)."""
import gzip
import json
import pathlib
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from profit_clips import read_safetensors  # noqa: E402

DATA = pathlib.Path("/usr/share/datasets/fashion-mnist")


def model_from(run):
    cfg = json.loads((run / "config.json").read_text())["model"]
    assert cfg["arch"] == "mobilenet_v2" and cfg["small_input"], cfg
    m = torchvision.models.mobilenet_v2(width_mult=cfg["width"], num_classes=cfg["num_classes"])
    stem_out = m.features[0][0].out_channels
    m.features[0][0] = torch.nn.Conv2d(cfg["in_channels"], stem_out, 3, 1, 1, bias=False)  # stride 1
    m.features[2].conv[1][0].stride = (1, 1)  # first downsampling removed
    # Every float tensor by name (the BN step counters are int64 and unused in eval).
    shapes = m.state_dict()
    floats = read_safetensors(run / "final.safetensors", lambda k: "num_batches_tracked" not in k)
    missing, unexpected = m.load_state_dict(
        {k: torch.tensor(v).view_as(shapes[k]) for k, v in floats.items()}, strict=False)
    assert not unexpected and all("num_batches_tracked" in k for k in missing), (missing, unexpected)
    return m.eval()


def main():
    run = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "models/fp_mobilenet_v2_fmnist")
    torch.set_num_threads(1)
    images = np.frombuffer(gzip.open(DATA / "t10k-images-idx3-ubyte.gz").read()[16:], np.uint8)
    labels = np.frombuffer(gzip.open(DATA / "t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
    x = (torch.from_numpy(images.reshape(-1, 1, 28, 28).astype(np.float32) / 255) - 0.2860) / 0.3530
    y = torch.from_numpy(labels.astype(np.int64))
    m = model_from(run)
    tail = m.features[18]
    correct = {"relu6": 0, "relu": 0}
    above, positive = 0, 0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            h = m.features[:18](x[i:i + 500])
            pre = tail[1](tail[0](h))
            positive += int((pre > 0).sum())
            above += int((pre > 6).sum())
            for name, act in (("relu6", lambda t: t.clamp(0, 6)), ("relu", torch.relu)):
                pooled = act(pre).mean((2, 3))
                correct[name] += int((m.classifier(pooled).argmax(1) == y[i:i + 500]).sum())
    print(f"model: {run}")
    print(f"positive tail values above 6: {100 * above / positive:.2f} %")
    print(f"test top-1, ReLU6 before pooling (as trained): {100 * correct['relu6'] / len(x):.2f}")
    print(f"test top-1, ReLU before pooling: {100 * correct['relu'] / len(x):.2f}")


if __name__ == "__main__":
    main()
