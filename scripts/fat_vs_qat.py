#!/usr/bin/env python3
"""FAT vs full QAT: time to the same accuracy, into docs/results.md (section fat-vs-qat).

Usage: fat_vs_qat.py COMMAND FAT_SUMMARY_JSON QAT_RUN_DIR [FAT_SUMMARY_JSON QAT_RUN_DIR ...]

FAT's time is its threshold-training loop (train_seconds) and, separately, its whole run
(seconds: BN folding, calibration, evaluations included). The full QAT run (profit quantize,
every weight trained) evaluates the whole test set after each epoch; its time to FAT's accuracy is
the training time (train_seconds, evaluations excluded) at the first epoch whose test top-1 is at
least FAT's final test top-1.
"""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from write_results import machine, replace_section  # noqa: E402


def pair_rows(fat_path, qat_dir):
    fat = json.load(open(fat_path))
    target = fat["after"]["top1"]
    epochs = [json.loads(l) for l in open(pathlib.Path(qat_dir) / "metrics.jsonl")]
    epochs = [r for r in epochs if r["kind"] == "epoch"]
    # The run's policy.yaml: flat "key: value" lines (profit writes it with policy_to_yaml).
    pol = {}
    for line in open(pathlib.Path(qat_dir) / "policy.yaml"):
        if ":" in line and not line.startswith(" "):
            k, v = line.split(":", 1)
            pol[k.strip()] = v.strip()
    reached = next((r for r in epochs if r["test"]["top1"] >= target), None)
    f = fat["config"]["fat"]
    # Images seen by the training loops (FAT's per-epoch held-out evaluation is in its time).
    fat_images = fat["steps"] * fat["config"]["train"]["batch_size"]
    qat_batch = json.load(open(pathlib.Path(qat_dir) / "config.json"))["train"]["batch_size"]
    rows = [
        f"### W{f['w_bits']}A{f['a_bits']}",
        "",
        f"FAT: {'per-filter' if f['per_filter'] else 'per-tensor'} {f['weight_form']} weights, "
        f"only the threshold scales train (`{fat_path}`). Full QAT: {pol.get('method', '?')} "
        f"W{pol.get('weight_bits', '?')}A{pol.get('act_bits', '?')}, weights "
        f"{'per channel' if pol.get('per_channel') == 'true' else 'per tensor'}, every weight trained with "
        f"CE + soft CE against the FP model (`{qat_dir}`), test set evaluated after every 100 "
        "steps; its time counts training steps only.",
        "",
        "| run | test top-1 | training images | training time | ms per training image | "
        "whole run |",
        "|---|---|---|---|---|---|",
        f"| FAT | {target:.2f} | {fat_images:,} | {fat['train_seconds']:.0f} s | "
        f"{1000 * fat['train_seconds'] / fat_images:.1f} | {fat['seconds']:.0f} s |",
    ]
    for r in epochs:
        images = r["step"] * qat_batch
        rows.append(f"| full QAT after {r['step']} steps | {r['test']['top1']:.2f} | {images:,} | "
                    f"{r['train_seconds']:.0f} s | {1000 * r['train_seconds'] / images:.1f} | "
                    f"{r['elapsed_seconds']:.0f} s |")
    rows.append("")
    if reached:
        rows.append(f"Full QAT first reaches FAT's accuracy after {reached['step']} steps: "
                    f"{reached['train_seconds'] / fat['train_seconds']:.1f}x FAT's training time "
                    "(goal: FAT at least 5x faster).")
    else:
        last = epochs[-1] if epochs else None
        rows.append("Full QAT did not reach FAT's accuracy in this run" +
                    (f" ({last['step']} steps, {last['train_seconds']:.0f} s of training, "
                     f"{last['train_seconds'] / fat['train_seconds']:.1f}x FAT's training time)"
                     if last else "") + ".")
    if not (pathlib.Path(qat_dir) / "summary.json").exists():
        rows.append("The QAT run had not finished when this was written.")
    return rows + [""]


def main(command, *pairs):
    command = command.strip()  # "scripts/fat_vs_qat.sh " when it ran without arguments
    rows = [
        "## FAT vs full QAT: time to the same accuracy (reference MobileNetV2, Fashion-MNIST)",
        "",
        f"Command: `{command}`. Each FAT run and its full-QAT counterpart ran back to back on the "
        "same machine.",
        "",
    ]
    for i in range(0, len(pairs), 2):
        rows += pair_rows(pairs[i], pairs[i + 1])
    rows += [f"Machine: {machine()}."]
    replace_section("fat-vs-qat", "\n".join(rows))


if __name__ == "__main__":
    if len(sys.argv) < 4 or len(sys.argv) % 2:
        sys.exit(__doc__)
    main(*sys.argv[1:])
