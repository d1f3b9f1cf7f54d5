#!/usr/bin/env python3
"""Activation clips of finished PROFIT runs, side by side: for every DuQ activation quantizer in
RUN/final.safetensors, its input interval a = softplus(theta_a) (per-channel sites: the mean),
then per run the median a and, against the first run, the median / min / max ratio per site.

Two runs that differ only in how the clips start (e.g. profit_w4a4 at the 0.95 quantile,
profit_w4a4_init999 at 0.999) show whether training moves the clips to a common value or leaves
each near its start.
With --offsets: for runs with learned h-swish offsets (policy duq_learn_offset, profit.md D8),
the median / min / max of the learned input offset beta and output offset beta_prime over the
H sites (both fixed at +3/8 and -3/8 otherwise).
Usage: scripts/profit_clips.py RUN [RUN...] [--sites] [--offsets]
       (--sites: also the per-site table)
Pure Python (no numpy / torch): reads the safetensors header and the float32 tensors it needs."""
import argparse
import array
import json
import math
import pathlib
import statistics
import struct
import sys


def read_safetensors(path, keep):
    """{name: list of floats} for the F32 tensors whose name passes keep(name)."""
    data = pathlib.Path(path).read_bytes()
    if len(data) < 8:
        sys.exit(f"{path}: truncated (no header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        sys.exit(f"{path}: truncated header")
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if 8 + n + end > len(data):  # checked for every tensor: a truncated file is an error
            sys.exit(f"{path}: {name} runs past the end of the file")
        if not keep(name):
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {info['dtype']}, expected F32")
        values = array.array("f")
        values.frombytes(data[8 + n + start:8 + n + end])
        if sys.byteorder != "little":
            values.byteswap()
        out[name] = list(values)
    return out


def softplus(x):
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def activation_clips(run):
    """{site: a} of the DuQ activation quantizers (weight quantizers left out)."""
    path = pathlib.Path(run) / "final.safetensors"
    if not path.exists():
        sys.exit(f"{path}: missing (is the run finished?)")
    suffix = ".theta_a"
    tensors = read_safetensors(path, lambda k: k.endswith(suffix) and "weight_quant" not in k)
    if not tensors:
        sys.exit(f"{path}: no activation theta_a (not a DuQ run?)")
    return {k[:-len(suffix)]: statistics.fmean(softplus(v) for v in vals)
            for k, vals in tensors.items()}


def learned_offsets(run):
    """{"beta": [...], "beta_prime": [...]}: one value per H site with learned offsets."""
    path = pathlib.Path(run) / "final.safetensors"
    if not path.exists():
        sys.exit(f"{path}: missing (is the run finished?)")
    tensors = read_safetensors(path, lambda k: k.endswith((".beta", ".beta_prime")))
    out = {"beta": [], "beta_prime": []}
    for name, values in sorted(tensors.items()):
        out["beta_prime" if name.endswith(".beta_prime") else "beta"] += values
    return out


def print_offsets(runs):
    print("| run | H sites | beta: median | min | max | beta_prime: median | min | max |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        off = learned_offsets(run)
        cells = [f"{len(off['beta'])}"]
        for key in ("beta", "beta_prime"):
            v = off[key]
            cells += ([f"{statistics.median(v):.4f}", f"{min(v):.4f}", f"{max(v):.4f}"] if v
                      else ["-", "-", "-"])
        print(f"| {pathlib.Path(run).name} | " + " | ".join(cells) + " |")
    print("(fixed offsets: beta = 0.375, beta_prime = -0.375)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--sites", action="store_true", help="also print every site's clip")
    ap.add_argument("--offsets", action="store_true",
                    help="print the learned h-swish offsets instead of the clips")
    args = ap.parse_args()
    if args.offsets:
        print_offsets(args.runs)
        return
    clips = [activation_clips(r) for r in args.runs]
    sites = sorted(set(clips[0]).intersection(*clips[1:]))
    if not sites:
        sys.exit("the runs share no activation quantizer")
    names = [pathlib.Path(r).name for r in args.runs]
    if args.sites:
        print("| site | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for s in sites:
            print(f"| {s} | " + " | ".join(f"{c[s]:.3f}" for c in clips) + " |")
        print()
    print(f"{len(sites)} activation quantizers")
    print("| run | median a | a / a of " + names[0] + ": median | min | max |")
    print("|---|---|---|---|---|")
    for name, c in zip(names, clips):
        ratios = [c[s] / clips[0][s] for s in sites]
        print(f"| {name} | {statistics.median(c[s] for s in sites):.3f} | "
              f"{statistics.median(ratios):.2f} | {min(ratios):.2f} | {max(ratios):.2f} |")


if __name__ == "__main__":
    main()
