#!/usr/bin/env python3
"""FAT vs full QAT: time to the same accuracy, into docs/results.md (section fat-vs-qat).

Usage: fat_vs_qat.py COMMAND FAT_SUMMARY_JSON QAT_RUN_DIR

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


def main(command, fat_path, qat_dir):
    fat = json.load(open(fat_path))
    target = fat["after"]["top1"]
    epochs = [json.loads(l) for l in open(pathlib.Path(qat_dir) / "metrics.jsonl")]
    epochs = [r for r in epochs if r["kind"] == "epoch"]
    qat_summary = pathlib.Path(qat_dir) / "summary.json"
    reached = next((r for r in epochs if r["test"]["top1"] >= target), None)
    f = fat["config"]["fat"]
    rows = [
        "## FAT vs full QAT: time to the same accuracy (reference MobileNetV2, Fashion-MNIST)",
        "",
        f"Command: `{command}`. FAT: W{f['w_bits']}A{f['a_bits']}, "
        f"{'per-filter' if f['per_filter'] else 'per-tensor'} {f['weight_form']} weights, only the "
        "threshold scales train. Full QAT: `recipes/qat_lsq_w8a8_fmnist.yaml` (LSQ W8A8, weights "
        "per channel, every weight trained with CE + soft CE against the FP model), test set "
        "evaluated after every 100 steps; its time counts training steps only.",
        "",
        "| run | test top-1 | training time | whole run |",
        "|---|---|---|---|",
        f"| FAT | {target:.2f} | {fat['train_seconds']:.0f} s | {fat['seconds']:.0f} s |",
    ]
    for r in epochs:
        rows.append(f"| full QAT after {r['step']} steps | {r['test']['top1']:.2f} | "
                    f"{r['train_seconds']:.0f} s | {r['elapsed_seconds']:.0f} s |")
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
    if not qat_summary.exists():
        rows.append("The QAT run had not finished when this was written.")
    rows += ["", f"Machine: {machine()}."]
    replace_section("fat-vs-qat", "\n".join(rows))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
