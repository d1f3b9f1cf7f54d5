#!/usr/bin/env python3
"""Self CPU time per operator from Chrome traces of bench/profit_step_bench --profile.

Usage: scripts/profile_ops.py BASE.trace.json VARIANT.trace.json [--top N] [--steps S]
Prints, per operator, the self time (time not spent in nested operators) per step in the base
run (full precision) and the variant (a QAT run), and the difference, largest differences first:
where the QAT step spends the time that the FP step does not.
"""
import argparse
import collections
import json
import re


def self_times(path):
    with open(path) as f:
        events = [e for e in json.load(f) if e.get("ph") == "X"]
    by_thread = collections.defaultdict(list)
    for e in events:
        by_thread[e["tid"]].append(e)
    totals = collections.Counter()
    for evs in by_thread.values():
        # Sort by start, longer first at equal start, then walk the nesting with a stack.
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, name, child_time]
        for e in evs:
            start, end = e["ts"], e["ts"] + e["dur"]
            while stack and stack[-1][0] <= start:
                done = stack.pop()
                totals[done[1]] += done[3] - done[2]
            if stack:
                stack[-1][2] += e["dur"]
            stack.append([end, e["name"], 0.0, e["dur"]])
        while stack:
            done = stack.pop()
            totals[done[1]] += done[3] - done[2]
    return totals


def fastest(folder, stem):
    """The trace of `stem` (one of several profiled repetitions, <stem>.<rep>.trace.json, or a
    single <stem>.trace.json) with the smallest total self time."""
    rep = re.compile(re.escape(stem) + r"\.\d+\.trace\.json")
    paths = sorted(p for p in folder.iterdir() if rep.fullmatch(p.name))
    paths = paths or [folder / f"{stem}.trace.json"]
    paths = [p for p in paths if p.exists()]
    return min(paths, key=lambda p: sum(self_times(p).values())) if paths else None


def compare(base_path, variant_path, steps=1, top=15):
    """Rows (difference, name, base ms, variant ms) per step, the largest increases first, then
    the largest decreases (FP work the variant does not do); and the two totals."""
    base, var = self_times(base_path), self_times(variant_path)
    rows = []
    for name in set(base) | set(var):
        b, v = base[name] / steps / 1e3, var[name] / steps / 1e3  # ms per step
        rows.append((v - b, name, b, v))
    rows.sort(reverse=True)
    shown = rows[:top] + [r for r in rows[-3:] if r[0] < 0 and r not in rows[:top]]
    return shown, sum(base.values()) / steps / 1e3, sum(var.values()) / steps / 1e3


def markdown(base_path, variant_path, steps=1, top=15):
    shown, tb, tv = compare(base_path, variant_path, steps, top)
    lines = ["| operator | FP ms/step | QAT ms/step | difference |", "|---|---|---|---|"]
    lines += [f"| `{name[:70]}` | {b:.1f} | {v:.1f} | {d:+.1f} |" for d, name, b, v in shown]
    lines.append(f"| all operators (self time) | {tb:.1f} | {tv:.1f} | {tv - tb:+.1f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("variant")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--steps", type=int, default=1, help="steps recorded in each trace")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if a.markdown:
        print(markdown(a.base, a.variant, a.steps, a.top))
        return
    shown, tb, tv = compare(a.base, a.variant, a.steps, a.top)
    print(f"{'operator':60s} {'base':>9s} {'variant':>9s} {'diff':>9s}  (ms/step)")
    for d, name, b, v in shown:
        print(f"{name[:60]:60s} {b:9.2f} {v:9.2f} {d:+9.2f}")
    print(f"{'total self time':60s} {tb:9.2f} {tv:9.2f} {tv - tb:+9.2f}")


if __name__ == "__main__":
    main()
