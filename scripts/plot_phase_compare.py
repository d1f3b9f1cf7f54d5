#!/usr/bin/env python3
"""Phase-end top-1 of several groups of PROFIT runs (e.g. one quantizer per group, one run per
seed) as one SVG, no plotting library needed. Every run of every group must have the same phase
list. For each group and phase: the mean over the group's runs of the phase's last evaluation
(`last.top1` in summary.json, profit.eval_images test images), drawn as a line with a marker,
and the lowest and highest run as a vertical bar when the group has several. Two panels: all
phases on the full range, and the same on a zoomed range (points below it sit on its bottom
edge, drawn hollow). The legend gives each group's final top-1 (10,000 images, mean ± std).
Usage: plot_phase_compare.py OUT.svg LABEL=RUN_DIR[,RUN_DIR...] ...
(scripts/results_profit.py draws the quantizer comparison with it when writing the table.)"""
import html
import json
import pathlib
import statistics
import sys

COLORS = ["#3969ac", "#e73f74", "#11a579", "#7f3c8d", "#e68310", "#222222"]


def phase_names(summary):
    return [p["name"] for p in summary["phases"]]


def phase_stats(summaries):
    """[(mean, lowest, highest)] of each phase's last top-1 over the runs, in phase order."""
    values = zip(*[[p["last"]["top1"] for p in s["phases"]] for s in summaries])
    return [(statistics.mean(v), min(v), max(v)) for v in values]


def final_label(label, summaries):
    finals = [s["final"]["top1"] for s in summaries]
    seeds = ", ".join(str(s["config"]["train"]["seed"]) for s in summaries)
    spread = f" ± {statistics.stdev(finals):.2f}" if len(finals) > 1 else ""
    plural = "s" if len(finals) > 1 else ""
    return f"{label} (seed{plural} {seeds}): final {statistics.mean(finals):.2f}{spread}"


def draw(groups, out, zoom_span=10.0):
    """groups: [(label, [summary dict, ...])]; writes the SVG to out. The zoomed panel spans
    zoom_span points up to the highest mean (rounded up to a whole point)."""
    groups = [(label, rs) for label, rs in groups if rs]
    if not groups:
        raise ValueError("no runs to draw")
    names = phase_names(groups[0][1][0])
    for label, rs in groups:
        for s in rs:
            if phase_names(s) != names:
                raise ValueError(f"{label}: phase list differs from {groups[0][0]}'s "
                                 f"({len(phase_names(s))} vs {len(names)} phases)")
    stats = [(label, rs, phase_stats(rs)) for label, rs in groups]
    lows = [lo for _, _, st in stats for _, lo, _ in st]
    full = (10.0 * int(min(lows) // 10), 100.0)
    top = float(int(max(m for _, _, st in stats for m, _, _ in st)) + 1)
    zoom = (top - zoom_span, top)

    W, left, right = 900, 60, 20
    step = (W - left - right) / len(names)
    sx = lambda i: left + step * (i + 0.5)
    svg_height = 640 + 16 * len(groups)
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{svg_height}' "
           "font-family='sans-serif' font-size='10'><rect width='100%' height='100%' fill='white'/>",
           "<text x='60' y='16' font-size='13'>phase-end test top-1 (mean over seeds; bar: "
           "lowest to highest seed)</text>"]
    for i in range(0, len(names), 2):
        svg.append(f"<rect x='{sx(i) - step / 2:.1f}' y='30' width='{step:.1f}' height='530' "
                   "fill='#f4f4f4'/>")

    def panel(y0, height, lo, hi, title):
        sy = lambda v: y0 + height - height * (min(max(v, lo), hi) - lo) / (hi - lo)
        parts = [f"<text x='8' y='{y0 + height / 2}' transform='rotate(-90 8 {y0 + height / 2})' "
                 f"text-anchor='middle'>{title}</text>"]
        v = lo
        while v <= hi + 1e-9:
            parts.append(f"<line x1='{left}' x2='{W - right}' y1='{sy(v):.1f}' y2='{sy(v):.1f}' "
                         f"stroke='#ddd'/><text x='{left - 4}' y='{sy(v) + 3:.1f}' "
                         f"text-anchor='end'>{v:g}</text>")
            v += 10 if hi - lo > 20 else 1
        for g, (label, rs, st) in enumerate(stats):
            color = COLORS[g % len(COLORS)]
            dx = (g - (len(stats) - 1) / 2) * min(4.0, step / (2 * len(stats)))
            pts = " ".join(f"{sx(i) + dx:.1f},{sy(m):.1f}" for i, (m, _, _) in enumerate(st))
            parts.append(f"<polyline points='{pts}' fill='none' stroke='{color}' "
                         "stroke-width='1.4'/>")
            for i, (m, a, b) in enumerate(st):
                x = sx(i) + dx
                if len(rs) > 1:
                    parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{sy(a):.1f}' "
                                 f"y2='{sy(b):.1f}' stroke='{color}' stroke-width='1'/>")
                fill = color if lo <= m <= hi else "white"
                parts.append(f"<circle cx='{x:.1f}' cy='{sy(m):.1f}' r='2.2' fill='{fill}' "
                             f"stroke='{color}'/>")
        return parts

    svg += panel(40, 220, full[0], full[1], "top-1 (%)")
    svg += panel(290, 220, zoom[0], zoom[1], f"top-1 (%), {zoom[0]:g}-{zoom[1]:g}")
    for i, name in enumerate(names):
        svg.append(f"<text transform='translate({sx(i) + 3:.1f},518) rotate(90)' "
                   f"font-size='9' fill='#333'>{html.escape(name)}</text>")
    for g, (label, rs, _) in enumerate(stats):
        y = 600 + 16 * g
        svg.append(f"<rect x='{left}' y='{y - 9}' width='10' height='10' "
                   f"fill='{COLORS[g % len(COLORS)]}'/><text x='{left + 14}' y='{y}'>"
                   f"{html.escape(final_label(label, rs))}</text>")
    svg.append("</svg>")
    pathlib.Path(out).write_text("\n".join(svg) + "\n")


def main(argv):
    if len(argv) < 2 or any("=" not in a for a in argv[1:]):
        sys.exit(__doc__)
    groups = []
    for arg in argv[1:]:
        label, dirs = arg.split("=", 1)
        rs = []
        for d in dirs.split(","):
            path = pathlib.Path(d) / "summary.json"
            if not path.is_file():
                sys.exit(f"{path}: missing (the run is not finished)")
            rs.append(json.loads(path.read_text()))
        groups.append((label, rs))
    try:
        draw(groups, argv[0])
    except ValueError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main(sys.argv[1:])
