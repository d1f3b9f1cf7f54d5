#!/usr/bin/env python3
"""Exports randomly initialised torchvision MobileNets for the C++ parity test.

For each model writes OUT/<arch>.safetensors (state dict), OUT/<arch>.pth (torch.save of the same
state dict) and OUT/<arch>_io.safetensors ({"input", "logits"} in eval mode).
BN statistics and affine parameters are randomised so that eval-mode BN is not an identity, and
linear layers get a 1/sqrt(fan_in) scale so logits are O(1).
The safetensors files are written by hand (the format is tiny) since Debian ships no safetensors.
"""
import json
import struct
import sys

import torch
import torchvision


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def randomise(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            elif isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / m.in_features ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def main(out):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    for arch in ["mobilenet_v2", "mobilenet_v3_large"]:
        model = getattr(torchvision.models, arch)(weights=None)
        randomise(model, gen)
        model.eval()
        x = torch.randn(2, 3, 224, 224, generator=gen)
        with torch.no_grad():
            logits = model(x)
        sd = model.state_dict()
        save_safetensors(f"{out}/{arch}.safetensors", sd)
        # A plain dict: LibTorch 1.13 cannot unpickle OrderedDict-with-_metadata (see io docs).
        torch.save(dict(sd), f"{out}/{arch}.pth")
        save_safetensors(f"{out}/{arch}_io.safetensors", {"input": x, "logits": logits})
        print(f"{arch}: {sum(p.numel() for p in model.parameters())} parameters, "
              f"logits std {logits.std().item():.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
