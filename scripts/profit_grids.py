#!/usr/bin/env python3
"""Learned activation clips of finished PROFIT runs of any quantizer, side by side.

For each RUN it runs `profit grids --run RUN --json ...` (the top level of every activation and
input site's grid: DuQ's c, PACT's alpha, LSQ's s * Q_P, ...), then prints per site kind (U:
ReLU sites, S: signed, H: h-swish) the number of sites, the median top and, against the first
run, the median / min / max of the per-site ratio top / top of the first run.
Usage: scripts/profit_grids.py [--profit build/profit] RUN [RUN...]"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile


def site_tops(profit, run):
    """{site: (kind, top)} for the activation and input sites of the run."""
    with tempfile.TemporaryDirectory() as d:
        out = pathlib.Path(d) / "grids.json"
        done = subprocess.run([profit, "grids", "--run", str(run), "--json", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"{run}: profit grids failed: {done.stderr.strip()}")
        return tops_from_json(json.loads(out.read_text()))


def tops_from_json(report):
    return {s["site"]: (s["kind"], s["top"]) for s in report["sites"] if "top" in s}


def comparison_rows(names, tops):
    """One row per (kind, run): kind, run, sites, median top, ratio to run 0: median, min, max."""
    rows = []
    for kind in ("U", "S", "H"):
        common = [s for s, (k, _) in tops[0].items()
                  if k == kind and all(s in t for t in tops[1:])]
        if not common:
            continue
        for name, t in zip(names, tops):
            ratios = [t[s][1] / tops[0][s][1] for s in common if tops[0][s][1] != 0]
            rows.append([kind, name, len(common), f"{statistics.median(t[s][1] for s in common):.3f}",
                         f"{statistics.median(ratios):.2f}", f"{min(ratios):.2f}",
                         f"{max(ratios):.2f}"])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profit", default="build/profit")
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    tops = [site_tops(args.profit, r) for r in args.runs]
    names = [pathlib.Path(r).name for r in args.runs]
    print(f"| kind | run | sites | median top | top / top of {names[0]}: median | min | max |")
    print("|---|---|---|---|---|---|---|")
    for row in comparison_rows(names, tops):
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
