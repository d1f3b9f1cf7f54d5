#!/usr/bin/env python3
"""Training curves of a `profit quantize` run as an SVG (no plotting library needed).

Usage: plot_profit.py RUN_DIR OUT.svg

Top panel: the training loss of every logged step, one colour per phase kind, with the phase
names along the top (like PROFIT's supplementary Fig. 1). Bottom panel: test top-1 after every
epoch for the model and its EMA (on profit.eval_images test images).
"""
import json
import pathlib
import sys

KIND_COLOR = {"fp": "#7f7f7f", "bn": "#3969ac", "ft": "#11a579", "sample": "#e73f74"}


def load(run):
    steps, epochs = [], []
    for line in open(pathlib.Path(run) / "metrics.jsonl"):
        r = json.loads(line)
        (steps if r["kind"] == "step" else epochs if r["kind"] == "epoch" else []).append(r)
    phases = json.load(open(pathlib.Path(run) / "phases.json"))
    return steps, epochs, phases


def polyline(points, color, width=1.2):
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f"<polyline points='{pts}' fill='none' stroke='{color}' stroke-width='{width}'/>"


def main(run, out):
    steps, epochs, phases = load(run)
    kind = {p["name"]: p["kind"] for p in phases}
    last_step = max([r["step"] for r in steps + epochs] + [1])
    W, left, right = 900, 60, 20
    plot_w = W - left - right
    sx = lambda s: left + plot_w * s / last_step
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='560' "
           "font-family='sans-serif' font-size='10'><rect width='100%' height='100%' fill='white'/>",
           f"<text x='{left}' y='16' font-size='13'>profit quantize: {run}</text>"]

    # Phase boundaries from the epoch records (the step at the end of each phase's last epoch).
    ends = {}
    for r in epochs:
        ends[r["phase"]] = r["step"]
    prev = 0
    for i, p in enumerate(phases):
        if p["name"] not in ends:
            continue
        x0, x1 = sx(prev), sx(ends[p["name"]])
        fill = "#f4f4f4" if i % 2 else "#ffffff"
        svg.append(f"<rect x='{x0:.1f}' y='30' width='{x1 - x0:.1f}' height='500' fill='{fill}'/>")
        svg.append(f"<text transform='translate({(x0 + x1) / 2 + 3:.1f},34) rotate(90)' "
                   f"font-size='8' fill='#555'>{p['name']}</text>")
        prev = ends[p["name"]]

    def panel(top, height, series, label, lo, hi):
        sy = lambda v: top + height - height * (v - lo) / (hi - lo if hi > lo else 1)
        parts = [f"<text x='8' y='{top + height / 2}' transform='rotate(-90 8 {top + height / 2})' "
                 f"text-anchor='middle'>{label}</text>"]
        for t in range(5):
            v = lo + (hi - lo) * t / 4
            parts.append(f"<line x1='{left}' x2='{W - right}' y1='{sy(v):.1f}' y2='{sy(v):.1f}' "
                         f"stroke='#ddd'/><text x='{left - 4}' y='{sy(v) + 3:.1f}' "
                         f"text-anchor='end'>{v:.3g}</text>")
        for pts, color, width in series:
            if pts:
                parts.append(polyline([(sx(s), sy(v)) for s, v in pts], color, width))
        return parts

    # Loss panel: one polyline per phase, coloured by its kind.
    losses = [r["loss"] for r in steps] or [0, 1]
    series = []
    for p in phases:
        pts = [(r["step"], r["loss"]) for r in steps if r["phase"] == p["name"]]
        series.append((pts, KIND_COLOR.get(kind[p["name"]], "black"), 1.2))
    svg += panel(110, 190, series, "training loss", min(losses), max(losses))

    acc = ([r["test"]["top1"] for r in epochs] +
           [r["test_ema"]["top1"] for r in epochs if "test_ema" in r] +
           [r["test_train_mode"]["top1"] for r in epochs if "test_train_mode" in r])
    lo = min(acc) if acc else 0
    hi = max(acc) if acc else 100
    model_pts = [(r["step"], r["test"]["top1"]) for r in epochs]
    ema_pts = [(r["step"], r["test_ema"]["top1"]) for r in epochs if "test_ema" in r]
    tm_pts = [(r["step"], r["test_train_mode"]["top1"]) for r in epochs if "test_train_mode" in r]
    svg += panel(330, 190, [(model_pts, "#222", 1.6), (ema_pts, "#e68310", 1.6),
                            (tm_pts, "#11a579", 1.0)],
                 "test top-1 (%)", lo - 0.5, hi + 0.5)
    for x, y in [(sx(s), 0) for s, _ in model_pts]:
        svg.append(f"<circle cx='{x:.1f}' cy='{330 + 190 + 6}' r='1.5' fill='#222'/>")

    legend = [("fp phase", KIND_COLOR["fp"]), ("bn-stabilize", KIND_COLOR["bn"]),
              ("fine-tune", KIND_COLOR["ft"]), ("AIWQ sampling", KIND_COLOR["sample"]),
              ("test top-1 model", "#222"), ("test top-1 EMA", "#e68310")]
    if tm_pts:
        legend.append(("train-mode BN", "#11a579"))
    for i, (name, color) in enumerate(legend):
        x = left + 120 * i
        svg.append(f"<rect x='{x}' y='540' width='10' height='10' fill='{color}'/>"
                   f"<text x='{x + 14}' y='549'>{name}</text>")
    svg.append(f"<text x='{W - right}' y='535' text-anchor='end'>step</text></svg>")
    pathlib.Path(out).write_text("\n".join(svg) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
