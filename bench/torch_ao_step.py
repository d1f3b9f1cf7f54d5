#!/usr/bin/env python3
"""torch.ao eager-mode QAT training-step timing, the Python side of scripts/bench_table.sh.

Times one SGD step (forward, backward, update) of torchvision's MobileNetV2 in full precision,
with torch.ao's default QAT (fused Conv-BN-ReLU modules, FakeQuantize with moving-average
min-max observers: the `get_default_qat_qconfig` recipe, here at the given bit width), and with
torch.ao's learnable fake quantize (_LearnableFakeQuantize, LSQ-style scales; per-tensor).
Each variant is timed against the FP model in ABBA pairs (FP, variant, variant, FP) as in
bench/profit_step_bench; the report is the median over rounds of each variant's time per step and
of its ratio to the FP steps of its own pairs. Runs on Debian's python3-torch (the same LibTorch as the C++ build).

Usage: /usr/bin/python3 bench/torch_ao_step.py --json out.json [--batch 64 --size 32
       --width 1.0 --bits 4 --rounds 12 --steps 3 --threads 2 --device cpu]
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.ao.quantization as tq
import torchvision
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize


def qat_qconfig(bits, learnable):
    """Activation (unsigned, per tensor) and weight (signed, symmetric) fake quantizers."""
    amax, wmin, wmax = 2**bits - 1, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if learnable:
        act = _LearnableFakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=amax,
            dtype=torch.quint8, use_grad_scaling=True)
        weight = _LearnableFakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver, quant_min=wmin, quant_max=wmax,
            dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, use_grad_scaling=True)
    else:
        # The default QAT qconfig ("fbgemm"), at `bits`: fused observer + fake quantize,
        # per-channel symmetric weights.
        act = tq.FusedMovingAvgObsFakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=amax,
            dtype=torch.quint8, reduce_range=False)
        weight = tq.FusedMovingAvgObsFakeQuantize.with_args(
            observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=wmin, quant_max=wmax,
            dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    return tq.QConfig(activation=act, weight=weight)


def make_model(variant, width, bits):
    torch.manual_seed(0)
    if variant == "fp":
        return torchvision.models.mobilenet_v2(num_classes=10, width_mult=width)
    m = torchvision.models.quantization.mobilenet_v2(num_classes=10, width_mult=width,
                                                     quantize=False)
    m.eval()
    m.fuse_model(is_qat=True)
    m.qconfig = qat_qconfig(bits, learnable=variant == "torch.ao/learnable")
    m.train()
    tq.prepare_qat(m, inplace=True)
    return m


class Runner:
    def __init__(self, variant, a):
        self.name = variant
        self.device = torch.device(a.device)
        self.model = make_model(variant, a.width, a.bits).to(self.device)
        torch.manual_seed(1)
        self.xs = [torch.randn(a.batch, 3, a.size, a.size).to(self.device) for _ in range(4)]
        self.ys = [torch.randint(0, 10, (a.batch,)).to(self.device) for _ in range(4)]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.loss = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
        self.k = 0
        self.model.train()

    def run(self, steps):
        t0 = time.perf_counter()
        for _ in range(steps):
            i = self.k % len(self.xs)
            self.k += 1
            loss = self.loss(self.model(self.xs[i]), self.ys[i])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    runners = [Runner(v, a) for v in ("fp", "torch.ao/fake_quantize", "torch.ao/learnable")]
    for r in runners:
        r.run(1)  # warm-up; the observers see a first batch
    # ABBA pairs against the FP model, as bench/profit_step_bench does.
    times = [[] for _ in runners]
    ratios = [[] for _ in runners]
    for k in range(a.rounds):
        for i in range(1, len(runners)):
            f1, v1 = runners[0].run(a.steps), runners[i].run(a.steps)
            v2, f2 = runners[i].run(a.steps), runners[0].run(a.steps)
            times[0].append(0.5 * (f1 + f2))
            times[i].append(0.5 * (v1 + v2))
            ratios[i].append((v1 + v2) / (f1 + f2))
            ratios[0].append(1.0)
        print(f"\rround {k + 1}/{a.rounds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    out = {"torch": torch.__version__, "torchvision": torchvision.__version__,
           "batch": a.batch, "size": a.size, "width": a.width, "bits": a.bits,
           "rounds": a.rounds, "steps": a.steps, "threads": torch.get_num_threads(),
           "device": a.device,
           "variants": []}
    print(f"{'variant':28s} {'ms/step':>10s} {'x FP':>10s}")
    for r, t, q in zip(runners, times, ratios):
        ms, ratio = 1e3 * statistics.median(t), statistics.median(q)
        print(f"{r.name:28s} {ms:10.1f} {ratio:10.3f}")
        out["variants"].append({"name": r.name, "ms_per_step": ms, "ratio_to_fp": ratio,
                                "ms_samples": [1e3 * v for v in t], "ratio_samples": q})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
