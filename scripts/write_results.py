#!/usr/bin/env python3
"""Writes a generated section of docs/results.md from a run's summary JSON.

Usage: write_results.py fp SUMMARY_JSON RECIPE COMMAND

Sections are delimited by <!-- NAME:begin --> / <!-- NAME:end --> markers, so re-running a script
replaces only its own section. Numbers come only from the summary file: nothing is typed by hand.
"""
import json
import pathlib
import platform
import subprocess
import sys

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results.md"
HEADER = """# Results

Every number in this file is written by a committed script (named next to each table) from a
fixed seed. Re-run the command to reproduce it.
"""


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {cores} cores, {platform.system()} {platform.release()}"


def replace_section(name, body):
    text = DOC.read_text() if DOC.exists() else HEADER
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        _, post = rest.split(end, 1)
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def fp_section(summary_path, recipe, command):
    s = json.load(open(summary_path))
    c = s["config"]
    m, t = c["model"], c["train"]
    rows = [
        "## Full-precision reference: MobileNetV2 on Fashion-MNIST",
        "",
        f"Command: `{command}` (recipe `{recipe}`).",
        "",
        "| model | params | epochs | test top-1 (final) | test top-5 | EMA top-1 (final) | best top-1 seen | train time |",
        "|---|---|---|---|---|---|---|---|",
        f"| {m['arch']} w{m['width']} small-input | {s['parameters']:,} | {t['epochs']} | "
        f"{s['top1']:.2f} | {s['top5']:.2f} | {s['ema_top1']:.2f} | "
        f"{max(s['best_top1'], s['best_ema_top1']):.2f} | {s['seconds'] / 60:.1f} min |",
        "",
        f"Seed {t['seed']}; SGD Nesterov lr {t['lr']}, batch {t['batch_size']}, cosine with "
        f"{t['warmup_epochs']} warm-up epoch(s), label smoothing {t['label_smoothing']}, "
        f"weight EMA {t['ema_decay']}. Final = after the last epoch (the number to quote); "
        "'best seen' is the maximum over per-epoch test evaluations and is optimistic.",
        "",
        f"Machine: {machine()}.",
    ]
    replace_section("fp-reference", "\n".join(rows))


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "fp":
        sys.exit(__doc__)
    fp_section(*sys.argv[2:])
