#!/usr/bin/env python3
"""Per-phase numbers of finished PROFIT runs, from their (archived) summary.json: each phase's
end on the evaluation subset in eval-mode BN, EMA and train-mode BN, the train-minus-eval gap,
and per run the final top-1 and the wall / training minutes. A run without summary.json (stopped
or still running) is read from its metrics.jsonl (or the archived metrics.jsonl.gz): the last
epoch record of each phase it reached, eval-mode and EMA top-1. With --count PHASES (comma list)
it also counts, over all given runs, the phase ends in PHASES where train-mode BN is above eval
mode (the AIWQ symptom, profit.md §3.1).
Usage: scripts/profit_phases.py RUN_DIR... [--count w4.sample,w4.ft1,w4.ft2,w4.ft3]"""
import argparse
import gzip
import json
import pathlib
import sys


def unfinished(run):
    plain, packed = run / "metrics.jsonl", run / "metrics.jsonl.gz"
    if plain.is_file():
        text = plain.read_text()
    elif packed.is_file():
        text = gzip.decompress(packed.read_bytes()).decode()
    else:
        sys.exit(f"{run}: neither summary.json nor metrics.jsonl(.gz)")
    last = {}  # phase -> its last epoch record, in the order the phases first appear
    for line in text.splitlines():
        r = json.loads(line)
        if r.get("kind") == "epoch":
            last[r["phase"]] = r
    steps = max((r["step"] for r in last.values()), default=0)
    print(f"{run}: unfinished (metrics.jsonl: {len(last)} phases, {steps} steps)")
    print("  phase        eval    EMA")
    for name, r in last.items():
        ema = r.get("test_ema", {}).get("top1")
        print(f"  {name:<11} {r['test']['top1']:6.2f} {'' if ema is None else f'{ema:6.2f}':>6}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--count", default="")
    a = ap.parse_args()
    counted = set(filter(None, a.count.split(",")))
    above = total = 0
    for run in a.runs:
        path = pathlib.Path(run) / "summary.json"
        if not path.is_file():
            unfinished(pathlib.Path(run))
            continue
        s = json.loads(path.read_text())
        print(f"{run}: final {s['final']['top1']:.2f}, {s['seconds'] / 60:.1f} min "
              f"({s['train_seconds'] / 60:.1f} min training)")
        print("  phase        eval    EMA  train-mode  gap")
        for p in s["phases"]:
            ev, ema = p["last"]["top1"], p["last_ema"]["top1"]
            tm = p.get("last_train_mode", {}).get("top1")
            gap = "" if tm is None else f"{tm - ev:+.2f}"
            print(f"  {p['name']:<11} {ev:6.2f} {ema:6.2f} {'' if tm is None else f'{tm:6.2f}':>11} {gap:>6}")
            if p["name"] in counted and tm is not None:
                total += 1
                above += tm > ev
    if counted:
        print(f"train-mode BN above eval mode at {above} of {total} ends of {sorted(counted)}")


if __name__ == "__main__":
    main()
