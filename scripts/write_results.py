#!/usr/bin/env python3
"""Writes a generated section of docs/results.md from a run's summary JSON.

Usage: write_results.py fp SUMMARY_JSON RECIPE COMMAND
       write_results.py fp-candidates COMMAND SUMMARY_JSON...
       write_results.py fp-models COMMAND SUMMARY_JSON...
       write_results.py ptq COMMAND PTQ_JSON...
       write_results.py ptq-init COMMAND MODEL_q0.95.json MODEL_q0.999.json...
       write_results.py fat COMMAND FAT_SUMMARY_JSON...
       write_results.py fat-factors COMMAND FAT_SUMMARY_JSON...   (runs with fat.weight_factors)
       write_results.py profit COMMAND PROFIT_SUMMARY_JSON...
       write_results.py image-stem RUN_DIR     (the plot name stem profit_table.sh uses)

Sections are delimited by <!-- NAME:begin --> / <!-- NAME:end --> markers, so re-running a script
replaces only its own section. Numbers come only from the summary file: nothing is typed by hand.
"""
import json
import pathlib
import re
import statistics
import sys

from results_common import table, write_section
from results_profit import image_stem, profit_section


def fp_section(summary_path, recipe, command):
    s = json.load(open(summary_path))
    c = s["config"]
    m, t = c["model"], c["train"]
    rows = [
        "## Full-precision reference: MobileNetV2 on Fashion-MNIST",
        "",
        f"Command: `{command}` (recipe `{recipe}`).",
        "",
        *table(["model", "params", "epochs", "test top-1 (final)", "test top-5",
                "EMA top-1 (final)", "best top-1 seen", "train time"],
               [[f"{m['arch']} w{m['width']} small-input", f"{s['parameters']:,}", t["epochs"],
                 f"{s['top1']:.2f}", f"{s['top5']:.2f}", f"{s['ema_top1']:.2f}",
                 f"{max(s['best_top1'], s['best_ema_top1']):.2f}",
                 f"{s['seconds'] / 60:.1f} min"]]),
        "",
        f"Seed {t['seed']}; SGD Nesterov lr {t['lr']}, batch {t['batch_size']}, cosine with "
        f"{t['warmup_epochs']} warm-up epoch(s), weight decay {t['weight_decay']}, label "
        f"smoothing {t['label_smoothing']}, dropout {m.get('dropout', 0.0)}, random crop "
        f"(padding {c['data'].get('crop_padding', 0)}) + flip, random erasing "
        f"{c['data'].get('random_erasing', 0.0)}, weight EMA {t['ema_decay']}. Final = after the "
        "last epoch (the number to quote; the committed teacher is this model, not the EMA); "
        "'best seen' is the maximum over per-epoch test evaluations and is optimistic.",
        "",
        f"Why this configuration: width {m['width']} with the small-input stem (no stride in the "
        "first conv, for 28 px images) keeps the committed teacher under 5 MB and an epoch at a "
        "few minutes on 2 CPU cores; the shorter schedules below fit the training set but "
        "stayed under 94 % on the test set, so the reference trains longer from scratch with more "
        "regularisation (random erasing and a larger weight decay).",
    ]
    write_section("fp-reference", rows)


def fp_candidates_section(command, paths):
    """Other schedules tried for the MobileNetV2 reference, with what each reached."""
    rows = [
        "### Other schedules tried for the reference",
        "",
        f"Command: `{command}`. Same model (MobileNetV2 w0.5, small-input stem) and data; 'start' "
        "is the initial weights (the warm restart starts from the 18-epoch run). Final = after "
        "the last epoch, the number that would be quoted.",
        "",
    ]

    def row(p):
        s = json.load(open(p))
        c = s["config"]
        t, d = c["train"], c["data"]
        return [f"`{pathlib.Path(p).parent}`", t["epochs"], t["init_weights"] or "scratch",
                t["lr"], t["weight_decay"], d.get("random_erasing", 0.0), t["seed"],
                f"{s['top1']:.2f}", f"{s['ema_top1']:.2f}"]

    rows += table(["run", "epochs", "start", "peak lr", "weight decay", "random erasing", "seed",
                   "test top-1 (final)", "EMA top-1 (final)"], [row(p) for p in paths])
    write_section("fp-candidates", rows)


def fp_models_section(command, paths):
    """FP models other than the reference (the starts and teachers of PROFIT on V1 / V3)."""
    rows = [
        "## Full-precision MobileNetV1 and MobileNetV3-Large on Fashion-MNIST",
        "",
        f"Command: `{command}`. The FP starts and distillation teachers of the PROFIT runs on the "
        "paper's other two models; trained like the 18-epoch MobileNetV2 recipe (width 0.5, "
        "small-input stem, SGD Nesterov, cosine, label smoothing 0.1, weight EMA). "
        "MobileNetV3-Large in PROFIT's form: SE before the activation, -3/8 negative padding of "
        "h-swish inputs (profit.md §2, §6.3).",
        "",
    ]

    def row(p):
        s = json.load(open(p))
        m, t = s["config"]["model"], s["config"]["train"]
        form = [f"w{m['width']}"] + (["small-input"] if m.get("small_input") else [])
        if m["arch"].startswith("mobilenet_v3"):
            form += [f"SE {m['se_position']}"] + (["neg. padding"] if m["negative_padding"] else [])
        return [m["arch"], " ".join(form), f"{s['parameters']:,}", t["epochs"], f"{s['top1']:.2f}",
                f"{s['ema_top1']:.2f}", f"{s['seconds'] / 60:.1f} min",
                f"`{pathlib.Path(p).parent}`"]

    rows += table(["model", "form", "params", "epochs", "test top-1 (final)", "EMA top-1 (final)",
                   "train time", "run"], [row(p) for p in paths])
    write_section("fp-models", rows)


def ptq_section(command, paths):
    runs = [json.load(open(p)) for p in paths]
    fp = runs[0]["fp"]
    rows = [
        "## Post-training quantization (calibration only): reference MobileNetV2, Fashion-MNIST",
        "",
        f"Command: `{command}`. Each quantizer is calibrated on {runs[0]['calib_images']} training "
        "images (evaluation transform, seed 1) and evaluated on the 10,000 test images; no "
        "training. 'weights' names the weight quantizer (PACT pairs with SAWB), per tensor "
        "unless marked per channel. The rows after the first two blocks mix quantizers to "
        "show which initialisation (activations or weights) costs DuQ and DSQ their accuracy. "
        "Size counts quantized weights at their bit width and everything else at 32 bits; "
        "BOPS = MACs x weight bits x input bits per layer (image input 8 bit).",
        "",
        f"Full precision: top-1 {fp['top1']:.2f} %, top-5 {fp['top5']:.2f} %, "
        f"size {runs[0]['fp_cost']['size_bits'] / 8 / 1048576:.3f} MiB, "
        f"{runs[0]['fp_cost']['bops'] / 1e9:.2f} GBOPS.",
        "",
    ]
    rows += table(
        ["method", "weights", "W/A bits", "top-1", "drop vs FP (pt)", "size MiB", "GBOPS"],
        [[r["method"], r["weight_method"] + (" per channel" if r.get("per_channel") else ""),
          f"W{r['weight_bits']}A{r['act_bits']}", f"{r['quantized']['top1']:.2f}",
          f"{fp['top1'] - r['quantized']['top1']:.2f}",
          f"{r['cost']['size_bits'] / 8 / 1048576:.3f}", f"{r['cost']['bops'] / 1e9:.3f}"]
         for r in runs])
    write_section("ptq", rows)


def ptq_init_section(command, paths):
    """DuQ W8A8 PTQ per FP model at two activation-clip starts: the JSONs of
    scripts/ptq_init_quantile.sh, named MODEL_q0.95.json and MODEL_q0.999.json."""
    results = {}
    for p in paths:
        model, q = re.fullmatch(r"(.+)_q([0-9.]+)\.json", pathlib.Path(p).name).groups()
        results.setdefault(model, {})[q] = json.load(open(p))
    rows = [[m, f"{r['0.95']['fp']['top1']:.2f}", f"{r['0.95']['quantized']['top1']:.2f}",
             f"{r['0.999']['quantized']['top1']:.2f}"] for m, r in results.items()]
    write_section("ptq-init", [
        "### DuQ's activation-clip start on the FP models (W8A8, calibration only)",
        "",
        f"Command: `{command}`. DuQ at W8A8 with its activation clips started at the 0.95 "
        "quantile of the positive calibration values (the spec's start, profit.md §1.6) or at "
        "the 0.999 quantile; 256 calibration images, seed 1, no training; 10,000 test images. "
        "This is where the first 8-bit activation phase of a PROFIT run starts.",
        "",
    ] + table(["model", "FP top-1", "DuQ W8A8, clips at the 0.95 quantile",
               "at the 0.999 quantile"], rows))


def fat_section(command, paths):
    runs = [json.load(open(p)) for p in paths]
    fp = runs[0]["fp"]
    c0 = runs[0]["config"]
    rows = [
        "## FAT: threshold-only training of the reference MobileNetV2, Fashion-MNIST",
        "",
        f"Command: `{command}` (recipe `recipes/fat_mobilenet_v2_fashion_mnist.yaml`). BN folded; "
        f"thresholds calibrated on {runs[0]['calib_images']} training images; then "
        f"{c0['train']['epochs']} epochs of Adam on the bounded scales only (every weight frozen) "
        f"with the RMSE between student and FP logits on {runs[0]['train_images']} unlabeled "
        f"training images; the scales with the lowest loss on {runs[0]['holdout_images']} held-out "
        "images are kept (the test set is never used for selection). Activations per tensor.",
        "",
        f"FP (BN folded): top-1 {fp['top1']:.2f} %.",
        "",
    ]

    def row(r):
        f = r["config"]["fat"]
        return [f"W{f['w_bits']}A{f['a_bits']}",
                ("per-filter " if f["per_filter"] else "per-tensor ") + f["weight_form"],
                "yes" if r["rescaled"] else "no", f"{r['before']['top1']:.2f}",
                f"{r['after']['top1']:.2f}", f"{fp['top1'] - r['after']['top1']:.2f}",
                f"{r['train_seconds'] / 60:.1f} min",
                f"{r.get('int_bias_layers', '-')} ({r.get('int_bias_clipped', '-')})"]

    rows += table(["W/A bits", "weights", "rescaled", "calibrated top-1", "after training top-1",
                   "drop vs FP (pt)", "train time", "int32 biases (clipped)"],
                  [row(r) for r in runs])
    for p, r in zip(paths, runs):
        rescale = pathlib.Path(p).parent / "rescale.json"
        if r["rescaled"] and rescale.exists():
            rows += rescale_rows(pathlib.Path(p).parent, json.load(open(rescale)))
    write_section("fat", rows)


def fat_factors_section(command, paths):
    runs = [json.load(open(p)) for p in paths]
    fp = runs[0]["fp"]
    rows = [
        "## FAT with per-weight factors (fat.md §8), reference MobileNetV2, Fashion-MNIST",
        "",
        f"Command: `{command}` (recipe `recipes/fat_mobilenet_v2_fashion_mnist.yaml`, "
        "`--fat-weight-factors true`). Stage 0 is the threshold training of the FAT table; "
        f"stage 1 then runs the same {runs[0]['config']['train']['epochs']} epochs (same data, "
        "loss, Adam and learning-rate curve) on one factor f per weight and bias, "
        "W = W0 * clip(f, 0.75, 1.25), with the thresholds fixed. The model with the lowest "
        "held-out loss over both stages is kept. 'changed' and 'at a bound' count the kept "
        "factors with clip(f) != 1 and clip(f) in {0.75, 1.25}.",
        "",
        f"FP (BN folded): top-1 {fp['top1']:.2f} %.",
        "",
    ]

    def row(r):
        f, w = r["config"]["fat"], r["weight_factors"]
        n = w["factors"]
        return [f"W{f['w_bits']}A{f['a_bits']}",
                ("per-filter " if f["per_filter"] else "per-tensor ") + f["weight_form"],
                "yes" if r["rescaled"] else "no", f"{r['before']['top1']:.2f}",
                f"{w['thresholds_only']['top1']:.2f}", f"{r['after']['top1']:.2f}",
                f"{fp['top1'] - r['after']['top1']:.2f}",
                "yes" if w["improved_holdout"] else "no (factors 1)",
                f"{n:,}", f"{100 * w['changed'] / n:.1f} %", f"{100 * w['at_bound'] / n:.1f} %",
                f"{r['train_seconds'] / 60:.1f} min"]

    rows += table(["W/A bits", "weights", "rescaled", "calibrated top-1", "thresholds only top-1",
                   "with factors top-1", "drop vs FP (pt)", "stage 1 lowered held-out loss",
                   "factors", "changed", "at a bound", "train time (both stages)"],
                  [row(r) for r in runs])
    write_section("fat-factors", rows)


def rescale_rows(run_dir, report):
    """Depthwise->pointwise rescaling (fat.md §6): per pair, how far the depthwise filters'
    per-channel weight ranges (max |w| per channel) spread before and after, from rescale.json."""
    def spread(t):
        return max(t) / statistics.median(t)
    rows = [
        "",
        f"### Depthwise rescaling report (`{run_dir}/rescale.json`)",
        "",
        "Per depthwise conv: channels; 'locked' = ReLU6 channels whose largest pre-activation on the "
        "calibration images reaches 5.9, near the 6.0 clip (kept at scale 1, fat.md §6.2); "
        "'capped' = scales limited so that no pre-activation is pushed past the clip; "
        "spread = largest / median per-channel weight range, before and after rescaling. A "
        "per-tensor weight grid is set by the largest channel, so a smaller spread gives the "
        "median channel more quantization levels. FP logits are unchanged by the rescaling "
        "(test FatRescale).",
        "",
    ]
    rows += table(["depthwise conv", "channels", "locked", "capped", "spread before",
                   "spread after"],
                  [[f"`{q['depthwise']}`", q["channels"], q["locked"], q["capped"],
                    f"{spread(q['t_before']):.2f}", f"{spread(q['t_after']):.2f}"]
                   for q in report["pairs"]])
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "fp":
        fp_section(*sys.argv[2:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "fp-candidates":
        fp_candidates_section(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "fp-models":
        fp_models_section(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "ptq":
        ptq_section(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "ptq-init":
        ptq_init_section(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "fat":
        fat_section(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "fat-factors":
        fat_factors_section(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "profit":
        profit_section(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "image-stem":
        print(image_stem(sys.argv[2]))  # profit_table.sh names its plots with this
    else:
        sys.exit(__doc__)
