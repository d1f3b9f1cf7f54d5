#!/usr/bin/env python3
"""How the DuQ weight clips of a PROFIT run sit on the weights: for every weight quantizer in
RUN/final.safetensors (or --weights FILE), the clip a = softplus(theta_a) relative to the
layer's weight standard deviation and to 0.9 max|W| (the spec's initial clip, §1.6, on these
weights), and the share of weights that the grid of each width in
--bits sends to the zero level with that clip (round(L * clamp(W / a, -1, 1)) = 0,
L = 2^(b-1) - 1, ties to even as in the quantizer). Then the median over the layers.

Why: the spec keeps the clip learned at the first weight width for the later ones; a clip sized
for 4 bit puts most weights at 0 on the 2-bit (ternary) grid, where the MSE-optimal clip is
about 1.2 sigma (baselines.md §2.2).
Usage: scripts/weight_grid.py RUN [--weights FILE] [--bits 4,3,2] [--layers]
Pure Python (no numpy / torch)."""
import argparse
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from profit_clips import read_safetensors, softplus  # noqa: E402


def zero_share(weights, clips, bits):
    """Share of `weights` quantized to 0 with clip clips[row] (one clip, or one per row)."""
    levels = (1 << (bits - 1)) - 1
    per_row = len(weights) // len(clips)
    zeros = 0
    for i, w in enumerate(weights):
        a = clips[i // per_row]
        if round(levels * max(-1.0, min(1.0, w / a))) == 0:
            zeros += 1
    return zeros / len(weights)


def layers(path):
    """[(layer, weights, clips)] of every DuQ weight quantizer, in file order."""
    suffix = ".weight_quant.theta_a"
    tensors = read_safetensors(path, lambda k: k.endswith(suffix) or k.endswith(".weight"))
    out = []
    for key, theta in tensors.items():
        if not key.endswith(suffix):
            continue
        layer = key[:-len(suffix)]
        if layer + ".weight" not in tensors:
            sys.exit(f"{path}: {key} has no {layer}.weight")
        out.append((layer, tensors[layer + ".weight"], [softplus(t) for t in theta]))
    if not out:
        sys.exit(f"{path}: no weight_quant.theta_a (not a DuQ run?)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--weights", help="weights file (default RUN/final.safetensors)")
    ap.add_argument("--bits", default="4,3,2", help="weight widths to evaluate, e.g. 4,3,2")
    ap.add_argument("--layers", action="store_true", help="also print every layer")
    args = ap.parse_args()
    try:
        widths = [int(b) for b in args.bits.split(",")]
    except ValueError:
        sys.exit(f"--bits: expected a comma-separated list of integers, got '{args.bits}'")
    if any(b < 2 or b > 8 for b in widths):
        sys.exit(f"--bits: widths must be in [2, 8], got '{args.bits}'")
    path = pathlib.Path(args.weights or pathlib.Path(args.run) / "final.safetensors")
    if not path.exists():
        sys.exit(f"{path}: missing (is the run finished?)")
    rows = []
    for layer, w, clips in layers(path):
        sigma = statistics.pstdev(w)
        a = statistics.fmean(clips)
        ratio = a / sigma if sigma > 0 else float("inf")
        start = a / (0.9 * max(abs(x) for x in w))
        rows.append((layer, ratio, start, [zero_share(w, clips, b) for b in widths]))
    cols = ["a / sigma", "a / (0.9 max abs W)"] + [f"zeros at {b} bit" for b in widths]
    row = lambda cells: "| " + " | ".join(cells) + " |"
    if args.layers:
        print(row(["layer"] + cols))
        print("|---" * (len(cols) + 1) + "|")
        for layer, ratio, start, shares in rows:
            print(f"| {layer} | {ratio:.2f} | {start:.2f} | " +
                  " | ".join(f"{s:.1%}" for s in shares) + " |")
        print()
    print(f"{path}: {len(rows)} weight quantizers, medians over the layers")
    print(row(cols))  # the median table has no layer column
    print("|---" * len(cols) + "|")
    print(f"| {statistics.median(r[1] for r in rows):.2f} | "
          f"{statistics.median(r[2] for r in rows):.2f} | " +
          " | ".join(f"{statistics.median(r[3][i] for r in rows):.1%}" for i in range(len(widths)))
          + " |")


if __name__ == "__main__":
    main()
