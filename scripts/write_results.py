#!/usr/bin/env python3
"""Writes a generated section of docs/results.md from a run's summary JSON.

Usage: write_results.py fp SUMMARY_JSON RECIPE COMMAND
       write_results.py fp-candidates COMMAND SUMMARY_JSON...
       write_results.py fp-models COMMAND SUMMARY_JSON...
       write_results.py ptq COMMAND PTQ_JSON...
       write_results.py ptq-init COMMAND MODEL_q0.95.json MODEL_q0.999.json...
       write_results.py fat COMMAND FAT_SUMMARY_JSON...
       write_results.py profit COMMAND PROFIT_SUMMARY_JSON...
       write_results.py image-stem RUN_DIR     (the plot name stem profit_table.sh uses)

Sections are delimited by <!-- NAME:begin --> / <!-- NAME:end --> markers, so re-running a script
replaces only its own section. Numbers come only from the summary file: nothing is typed by hand.
"""
import json
import os
import statistics
import pathlib
import re
import platform
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
    # The machine's cores, not nproc's answer: nproc honours OMP_NUM_THREADS (a one-thread run
    # would report one core).
    cores = len(os.sched_getaffinity(0))
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


def table(header, rows):
    """Markdown table lines: a header row, the separator, one line per row (lists of cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def write_section(name, lines):
    """Writes a section body (list of lines), closed by the machine line."""
    replace_section(name, "\n".join(lines + ["", f"Machine: {machine()}."]))


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


def mean_std(values):
    n = len(values)
    m = sum(values) / n
    if n == 1:
        return f"{m:.2f}"
    sd = (sum((v - m) ** 2 for v in values) / (n - 1)) ** 0.5
    return f"{m:.2f} ± {sd:.2f}"


def policy_value(summary_path, key, default="?"):
    """A top-level value of the run's policy.yaml (written next to the summary)."""
    policy = pathlib.Path(summary_path).parent / "policy.yaml"
    if policy.exists():
        for line in policy.read_text().splitlines():
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return default


def policy_method(summary_path):
    """The quantizer named by the run's policy.yaml."""
    return policy_value(summary_path, "method")


def threads_note(rs):
    """' (1 thread)' when the runs recorded their intra-op threads (older summaries did not)."""
    counts = sorted({t for _, r in rs for t in r.get("threads", [])})
    if not counts:
        return ""
    text = "/".join(str(t) for t in counts)
    return f" ({text} thread{'s' if counts != [1] else ''})"


def ladders(phases):
    """'A 8→4, W 8→4': the bit widths the activations and the weights go through, in order."""
    def ladder(key):
        seen = []
        for ph in phases:
            if ph[key] and (not seen or seen[-1] != ph[key]):
                seen.append(ph[key])
        return "→".join(str(b) for b in seen) or "fp"
    return f"A {ladder('act_bits')}, W {ladder('weight_bits')}"


def run_name(summary_path):
    """The run's name without its seed: runs/profit_w3a3_s2/summary.json -> profit_w3a3."""
    return re.sub(r"_s\d+$", "", pathlib.Path(summary_path).parent.name)


def image_stem(run_dir):
    """The run's plot names in docs/img, as scripts/profit_table.sh writes them: runs/X and its
    archived copy docs/data/runs/X -> X; runs/cuda/X (GPU runs) -> cuda_X."""
    run_dir = pathlib.Path(run_dir)
    if run_dir.parent.name == "runs":
        return run_dir.name
    return f"{run_dir.parent.name}_{run_dir.name}"


# The goals for MobileNetV2 with PROFIT: drop vs our FP model at most this many points,
# per W/A; they hold for the spec's schedule and for each variant recipe named here (_refit: the
# same schedule with the weight-clip refit, beyond the paper).
PROFIT_GOALS = {"w4a4": 0.3, "w3a3": 1.0, "w2a2": 3.0}
GOAL_VARIANTS = ("", "_refit")


def goal_rows(runs):
    """One row per goal that has runs: seeds, final top-1 and drop (mean ± std), met or not."""
    rows = []
    goals = [(f"profit_{wa}{v}", g) for v in GOAL_VARIANTS for wa, g in PROFIT_GOALS.items()]
    for name, goal in goals:
        rs = [r for p, r in runs if run_name(p) == name and r["config"]["model"]["arch"] ==
              "mobilenet_v2"]
        if not rs:
            continue
        drop = [r["fp"]["top1"] - r["final"]["top1"] for r in rs]
        mean = sum(drop) / len(drop)
        verdict = "met" if round(mean, 2) <= goal else "not met"  # as the table shows it
        if len(rs) < 3:
            verdict += f" ({len(rs)} of 3 seeds)"
        rows.append([f"`{name}`", ", ".join(str(r["config"]["train"]["seed"]) for r in rs),
                     mean_std([r["final"]["top1"] for r in rs]), mean_std(drop), f"≤ {goal}",
                     verdict])
    return rows


def paired_rows(runs, with_name, without_name):
    """Runs of two recipes on the same seeds: each one's mean and the per-seed difference."""
    by_seed = lambda name: {r["config"]["train"]["seed"]: r for p, r in runs
                            if run_name(p) == name}
    a, b = by_seed(with_name), by_seed(without_name)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return []
    fa = [a[s]["final"]["top1"] for s in seeds]
    fb = [b[s]["final"]["top1"] for s in seeds]
    epochs = lambda r: sum(ph["epochs"] for ph in r["phases"])
    return [[", ".join(map(str, seeds)), f"{epochs(a[seeds[0]])} / {epochs(b[seeds[0]])}",
             mean_std(fa), mean_std(fb), mean_std([x - y for x, y in zip(fa, fb)])]]


# The quantizer comparison: MobileNetV3-Large W3A3, the same PROFIT schedule and FP
# start, only policy.method differs.
QUANTIZER_COMPARISON = [("profit_mobilenet_v3_large_fmnist_w3a3", "DuQ + negative padding"),
                        ("profit_mobilenet_v3_large_fmnist_w3a3_pact", "PACT (weights: SAWB)"),
                        ("profit_mobilenet_v3_large_fmnist_w3a3_lsq", "LSQ")]


def comparison_rows(runs, recipes):
    """One row per (recipe, label) with runs: seeds, final and EMA top-1, drop vs FP."""
    rows = []
    for name, label in recipes:
        rs = [r for p, r in runs if run_name(p) == name]
        if not rs:
            continue
        ema = [r["final_ema"]["top1"] for r in rs if "final_ema" in r]
        rows.append([f"`{name}`", label,
                     ", ".join(str(r["config"]["train"]["seed"]) for r in rs),
                     mean_std([r["final"]["top1"] for r in rs]), mean_std(ema) if ema else "-",
                     mean_std([r["fp"]["top1"] - r["final"]["top1"] for r in rs])])
    return rows


def profit_section(command, paths):
    runs = [(p, json.load(open(p))) for p in paths]
    groups = {}
    for p, r in runs:
        c = r["config"]
        frozen = any(ph["kind"] == "sample" for ph in r["phases"])
        schedule = (f"PROFIT ({c['profit']['n_profit']} freezing phases, "
                    f"{c['profit']['freeze_order']} order)" if frozen else "no freezing")
        if not any(ph["kind"] == "bn" for ph in r["phases"]):
            schedule += ", no BN-stabilize phases"
        quantile = policy_value(p, "act_init_quantile", None)  # absent: the spec's 0.95
        if quantile is not None:
            schedule += f", activation clips start at the {float(quantile):g} quantile"
        if c["profit"].get("lr_update", "epoch") == "step":
            schedule += ", learning rate updated every step"
        quant_lr = c["profit"].get("quant_lr_scale", 0.01)
        if quant_lr != 0.01:
            schedule += f", quantizer parameters at {quant_lr:g} x lr (the paper: 0.01)"
        if c["profit"].get("w_refit", "keep") == "mse":
            schedule += ", weight clips refit (MSE) at each weight-width change"
        schedule += "; " + ladders(r["phases"])
        key = (r.get("device", "cpu"), c["model"]["arch"], c["model"]["width"], policy_method(p),
               r["phases"][-1]["weight_bits"],
               r["phases"][-1]["act_bits"], schedule, sum(ph["epochs"] for ph in r["phases"]))
        groups.setdefault(key, []).append((p, r))
    rows = [
        "## PROFIT: progressive quantization on Fashion-MNIST",
        "",
        f"Command: `{command}`. Each run starts from its FP model (MobileNetV2: the reference; "
        "V1 / V3-Large: the FP table above), which is also the distillation teacher (CE + soft "
        "CE, T = 1), and follows its recipe's phase list (profit.md §5.1, phases scaled to 2 CPU "
        "cores: see the recipe header). One quantizer type per run ('quantizer'), per tensor, no "
        "first/last-layer exception, precision-highway residuals; MobileNetV3 keeps its SE "
        "module at 8 bit (the paper's supplement). "
        "Final = full 10,000-image test set after the last phase; mean ± sample std over seeds "
        "where there are several. Each run's summary, phase list, AIWQ table and step metrics "
        "are kept in `docs/data/runs/NAME_sSEED/` (the tables are written from those copies).",
        "",
    ]
    summary_rows = []
    show_device = any(k[0] != "cpu" for k in groups)
    for (device, arch, width, method, wb, ab, schedule, total_epochs), rs in groups.items():
        fp = [r["fp"]["top1"] for _, r in rs]
        fin = [r["final"]["top1"] for _, r in rs]
        ema = [r["final_ema"]["top1"] for _, r in rs if "final_ema" in r]
        drop = [f - q for f, q in zip(fp, fin)]
        r0 = rs[0][1]
        seeds = ", ".join(str(r["config"]["train"]["seed"]) for _, r in rs)
        names = sorted({run_name(p) for p, _ in rs})
        summary_rows.append(([device] if show_device else []) + [
            ", ".join(f"`{n}`" for n in names), f"{arch} w{width}", method, f"W{wb}A{ab}", schedule, total_epochs, seeds, mean_std(fp),
            mean_std(fin), mean_std(ema) if ema else "-", mean_std(drop),
            f"{r0['size_bytes'] / 1048576:.3f} (FP {r0['fp_size_bytes'] / 1048576:.3f})",
            f"{r0['bops'] / 1e9:.3f} (FP {r0['fp_bops'] / 1e9:.2f})",
            f"{sum(r['seconds'] for _, r in rs) / len(rs) / 60:.0f} min" + threads_note(rs)])
    rows += table((["device"] if show_device else []) + ["recipe", "model", "quantizer", "W/A", "schedule", "epochs", "seeds", "FP top-1", "final top-1",
                   "EMA top-1", "drop vs FP (pt)", "size MiB", "GBOPS", "train time"],
                  summary_rows)
    goals = goal_rows(runs)
    if goals:
        rows += ["", "### Goals (MobileNetV2 with PROFIT, drop vs our FP model)", ""]
        rows += table(["recipe", "seeds", "final top-1", "drop (pt)", "goal (pt)", "verdict"],
                      goals)
    paired = paired_rows(runs, "profit_w3a3", "noprofit_w3a3")
    if paired:
        rows += [
            "",
            "### W3A3 with vs without PROFIT at equal total epochs",
            "",
            "`profit_w3a3`: the PROFIT schedule (AIWQ sampling, three progressive-freezing phases); "
            "`noprofit_w3a3`: the same phases up to W3 with the sampling and freezing phases "
            "replaced by one plain fine-tune phase of the same length, nothing frozen. Same seeds; "
            "the difference is taken per seed (PROFIT minus no PROFIT).",
            "",
        ]
        rows += table(["seeds", "epochs (PROFIT / no PROFIT)", "PROFIT top-1",
                       "no-PROFIT top-1", "difference (pt)"], paired)
    compared = comparison_rows(runs, QUANTIZER_COMPARISON)
    if compared:
        rows += [
            "",
            "### MobileNetV3-Large W3A3: DuQ + negative padding vs PACT vs LSQ",
            "",
            "The same FP start and teacher, the same PROFIT phase list; only `policy.method` "
            "differs (PACT quantizes the weights with SAWB, baselines.md). Drop vs the FP "
            "MobileNetV3-Large.",
            "",
        ]
        rows += table(["recipe", "quantizer", "seeds", "final top-1", "EMA top-1", "drop (pt)"],
                      compared)
    gap_runs = [(p, r) for p, r in runs if "final_train_mode" in r]
    if gap_runs:
        rows += [
            "",
            "### BN train/eval gap (the AIWQ symptom, profit.md §3.1)",
            "",
            "Top-1 on the 10,000 test images after the last phase with BN in eval mode (running "
            "statistics, the deployed model) and in train mode (statistics of each 500-image "
            "evaluation batch; dropout off). A positive gap means the running statistics no longer "
            "match what the quantized weights produce.",
            "",
        ]
        rows += table(
            ["run", "W/A", "BN-stabilize phases", "eval-mode top-1", "train-mode top-1",
             "gap (pt)"],
            [[f"`{pathlib.Path(p).parent}`",
              f"W{r['phases'][-1]['weight_bits']}A{r['phases'][-1]['act_bits']}",
              "yes" if any(ph["kind"] == "bn" for ph in r["phases"]) else "no",
              f"{r['final']['top1']:.2f}", f"{r['final_train_mode']['top1']:.2f}",
              f"{r['final_train_mode']['top1'] - r['final']['top1']:.2f}"] for p, r in gap_runs])
    # Phase tables and plots for one run per group (its lowest seed): the other seeds' are in
    # their run folders and docs/img.
    shown = [min(rs, key=lambda pr: pr[1]["config"]["train"]["seed"]) for rs in groups.values()]
    for p, r in shown:
        c = r["config"]
        run_dir = pathlib.Path(p).parent
        rows += [
            "",
            f"### Phases of `{run_dir}` (seed {c['train']['seed']})",
            "",
            f"Per-epoch evaluation on the first {c['profit']['eval_images'] or 10000} test images; "
            "'best' is the maximum over the phase's epochs of max(model, EMA) (optimistic). "
            "Frozen weights: 'all' in BN-stabilize phases (only BN, biases and quantizer "
            "parameters train), else the number of PROFIT-frozen convs (AIWQ ranking).",
            "",
        ]
        bits = lambda b: str(b) if b else "fp"
        train_mode = all("last_train_mode" in ph for ph in r["phases"])
        rows += table(
            ["phase", "kind", "A", "W", "epochs", "frozen weights", "last top-1",
             "last EMA top-1", "best"] + (["last train-mode BN top-1"] if train_mode else []),
            [[ph["name"], ph["kind"], bits(ph["act_bits"]), bits(ph["weight_bits"]), ph["epochs"],
              "all" if ph["kind"] == "bn" else ph["frozen_layers"] or "-",
              f"{ph['last']['top1']:.2f}", f"{ph['last_ema']['top1']:.2f}",
              f"{ph['best_top1']:.2f}"]
             + ([f"{ph['last_train_mode']['top1']:.2f}"] if train_mode else [])
             for ph in r["phases"]])
        for img, what in [("curves", "Training loss per phase and test top-1"),
                          ("aiwq", "AIWQ per conv layer")]:
            name = f"img/{image_stem(run_dir)}_{img}.svg"
            if (DOC.parent / name).exists():
                rows += ["", f"{what}: ![{what}]({name})"]
    write_section("profit", rows)


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
    elif len(sys.argv) >= 4 and sys.argv[1] == "profit":
        profit_section(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "image-stem":
        print(image_stem(sys.argv[2]))  # profit_table.sh names its plots with this
    else:
        sys.exit(__doc__)
