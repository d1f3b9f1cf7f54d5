"""The PROFIT section of docs/results.md (scripts/write_results.py profit): the summary table
grouped by recipe and settings, the goal verdicts, the paired with/without-PROFIT comparison, the
quantizer comparison, the BN train/eval gap, and each group's phase table and plots. Numbers come
only from the runs' summary files."""
import json
import pathlib
import re

from plot_phase_compare import draw as draw_phase_compare
from results_common import DOC, mean_std, table, write_section


def read_policy(summary_path):
    """The top-level `key: value` lines of the run's policy.yaml (written next to the summary)
    as a dict of strings; {} when the file is missing."""
    policy = pathlib.Path(summary_path).parent / "policy.yaml"
    if not policy.exists():
        return {}
    pairs = (line.split(":", 1) for line in policy.read_text().splitlines()
             if ":" in line and not line.startswith((" ", "-", "#")))
    return {k: v.strip() for k, v in pairs}


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
# start, only policy.method differs; the last row is DuQ with a different activation-clip start.
QUANTIZER_COMPARISON = [("profit_mobilenet_v3_large_fmnist_w3a3", "DuQ + negative padding"),
                        ("profit_mobilenet_v3_large_fmnist_w3a3_pact", "PACT (weights: SAWB)"),
                        ("profit_mobilenet_v3_large_fmnist_w3a3_lsq", "LSQ (weights: LSQ)"),
                        ("profit_mobilenet_v3_large_fmnist_w3a3_init999",
                         "DuQ + negative padding, activation clips from the 0.999 quantile"),
                        ("profit_mobilenet_v3_large_fmnist_w3a3_learnoffset",
                         "DuQ + negative padding, learned h-swish offsets (D8)"),
                        ("profit_mobilenet_v3_large_fmnist_w3a3_pact_shift",
                         "PACT (weights: SAWB), h-swish grid shifted to [-3/8, alpha - 3/8]"),
                        ("profit_mobilenet_v3_large_fmnist_w3a3_pact_decay",
                         "PACT (weights: SAWB), L2 penalty on alpha at the weight decay")]
# Its phase-end plot (scripts/plot_phase_compare.py), drawn whenever the table is written.
COMPARISON_IMG = "img/profit_v3_large_w3a3_quantizers.svg"


def recipe_groups(runs, recipes):
    """[(name, label, summaries)] for each (recipe, label) that has runs, in the given order."""
    groups = [(name, label, [r for p, r in runs if run_name(p) == name])
              for name, label in recipes]
    return [g for g in groups if g[2]]


def comparison_rows(runs, recipes):
    """One row per (recipe, label) with runs: seeds, final and EMA top-1, drop vs FP."""
    rows = []
    for name, label, rs in recipe_groups(runs, recipes):
        ema = [r["final_ema"]["top1"] for r in rs if "final_ema" in r]
        rows.append([f"`{name}`", label,
                     ", ".join(str(r["config"]["train"]["seed"]) for r in rs),
                     mean_std([r["final"]["top1"] for r in rs]), mean_std(ema) if ema else "-",
                     mean_std([r["fp"]["top1"] - r["final"]["top1"] for r in rs])])
    return rows


def schedule_label(policy, r):
    """The table's 'schedule' cell from the run's policy (read_policy) and summary: freezing or
    not, the recipe's departures from the spec's defaults, and the bit ladders."""
    c = r["config"]
    frozen = any(ph["kind"] == "sample" for ph in r["phases"])
    schedule = (f"PROFIT ({c['profit']['n_profit']} freezing phases, "
                f"{c['profit']['freeze_order']} order)" if frozen else "no freezing")
    if not any(ph["kind"] == "bn" for ph in r["phases"]):
        schedule += ", no BN-stabilize phases"
    quantile = policy.get("act_init_quantile")  # absent: the spec's 0.95
    if quantile is not None:
        schedule += f", activation clips start at the {float(quantile):g} quantile"
    if policy.get("keep_tail_relu6") == "true":
        schedule += ", ReLU6 before pooling (the spec: ReLU)"
    if policy.get("duq_learn_offset") == "true":
        schedule += ", h-swish offsets learned (profit.md D8)"
    if policy.get("pact_hswish_shift") == "true":
        schedule += ", PACT h-swish grid shifted to [-3/8, alpha - 3/8]"
    if policy.get("method") == "pact":  # runs saved before the key existed had no penalty
        decay = float(policy.get("pact_alpha_decay", 0))
        schedule += (f", L2 penalty {decay:g} on PACT's alpha" if decay
                     else ", no L2 penalty on PACT's alpha (§1.4 default: the weight decay)")
    if c["profit"].get("lr_update", "epoch") == "step":
        schedule += ", learning rate updated every step"
    quant_lr = c["profit"].get("quant_lr_scale", 0.01)
    if quant_lr != 0.01:
        schedule += f", quantizer parameters at {quant_lr:g} x lr (the paper: 0.01)"
    if c["profit"].get("w_refit", "keep") == "mse":
        schedule += ", weight clips refit (MSE) at each weight-width change"
    return schedule + "; " + ladders(r["phases"])


def group_runs(runs):
    """Runs that differ only in their seed share a group (one table row):
    {(device, arch, width, method, W bits, A bits, schedule, epochs): [(path, summary)]}."""
    groups = {}
    for p, r in runs:
        c = r["config"]
        policy = read_policy(p)  # read once: the quantizer and the schedule cell use it
        key = (r.get("device", "cpu"), c["model"]["arch"], c["model"]["width"],
               policy.get("method", "?"), r["phases"][-1]["weight_bits"],
               r["phases"][-1]["act_bits"], schedule_label(policy, r),
               sum(ph["epochs"] for ph in r["phases"]))
        groups.setdefault(key, []).append((p, r))
    return groups


def summary_table(groups):
    """The main table: one row per group, mean ± std over its seeds."""
    show_device = any(k[0] != "cpu" for k in groups)
    rows = []
    for (device, arch, width, method, wb, ab, schedule, total_epochs), rs in groups.items():
        fp = [r["fp"]["top1"] for _, r in rs]
        fin = [r["final"]["top1"] for _, r in rs]
        ema = [r["final_ema"]["top1"] for _, r in rs if "final_ema" in r]
        drop = [f - q for f, q in zip(fp, fin)]
        r0 = rs[0][1]
        seeds = ", ".join(str(r["config"]["train"]["seed"]) for _, r in rs)
        names = sorted({run_name(p) for p, _ in rs})
        rows.append(([device] if show_device else []) + [
            ", ".join(f"`{n}`" for n in names), f"{arch} w{width}", method, f"W{wb}A{ab}",
            schedule, total_epochs, seeds, mean_std(fp), mean_std(fin),
            mean_std(ema) if ema else "-", mean_std(drop),
            f"{r0['size_bytes'] / 1048576:.3f} (FP {r0['fp_size_bytes'] / 1048576:.3f})",
            f"{r0['bops'] / 1e9:.3f} (FP {r0['fp_bops'] / 1e9:.2f})",
            f"{sum(r['seconds'] for _, r in rs) / len(rs) / 60:.0f} min" + threads_note(rs)])
    return table((["device"] if show_device else []) +
                 ["recipe", "model", "quantizer", "W/A", "schedule", "epochs", "seeds",
                  "FP top-1", "final top-1", "EMA top-1", "drop vs FP (pt)", "size MiB", "GBOPS",
                  "train time"], rows)


def comparison_sections(runs):
    """The goal verdicts, the with/without-PROFIT pairs and the quantizer comparison, each only
    when it has runs."""
    lines = []
    goals = goal_rows(runs)
    if goals:
        lines += ["", "### Goals (MobileNetV2 with PROFIT, drop vs our FP model)", ""]
        lines += table(["recipe", "seeds", "final top-1", "drop (pt)", "goal (pt)", "verdict"],
                       goals)
    paired = paired_rows(runs, "profit_w3a3", "noprofit_w3a3")
    if paired:
        lines += [
            "",
            "### W3A3 with vs without PROFIT at equal total epochs",
            "",
            "`profit_w3a3`: the PROFIT schedule (AIWQ sampling, three progressive-freezing phases); "
            "`noprofit_w3a3`: the same phases up to W3 with the sampling and freezing phases "
            "replaced by one plain fine-tune phase of the same length, nothing frozen. Same seeds; "
            "the difference is taken per seed (PROFIT minus no PROFIT).",
            "",
        ]
        lines += table(["seeds", "epochs (PROFIT / no PROFIT)", "PROFIT top-1",
                        "no-PROFIT top-1", "difference (pt)"], paired)
    compared = comparison_rows(runs, QUANTIZER_COMPARISON)
    if compared:
        lines += [
            "",
            "### MobileNetV3-Large W3A3: DuQ + negative padding vs PACT vs LSQ",
            "",
            "The same FP start and teacher, the same PROFIT phase list; only `policy.method` "
            "differs (PACT quantizes the weights with SAWB, baselines.md), except in the "
            "`_init999` row: DuQ with its activation clips started at the 0.999 quantile "
            "instead of the spec's 0.95 (`policy.act_init_quantile`), the `_learnoffset` "
            "row: DuQ with learned h-swish offsets (`policy.duq_learn_offset`, profit.md D8), "
            "the `_pact_shift` row: PACT whose h-swish grid covers [-3/8, alpha - 3/8] "
            "instead of [0, alpha] (`policy.pact_hswish_shift`, baselines.md §1), and the "
            "`_pact_decay` row: PACT with the L2 penalty lambda * alpha^2 at lambda = the weight "
            "decay (`policy.pact_alpha_decay`, baselines.md §1.4's project default; the other "
            "PACT runs have none: they were made before the phase engine applied it, and their "
            "recipe pins `pact_alpha_decay: 0` so that they reproduce). "
            "At each width change "
            "DuQ and PACT keep their learned clips; LSQ's step is multiplied by "
            "sqrt(Q_P(old)/Q_P(new)), as its initialisation rule would set it (see the "
            "reading). Drop vs the FP MobileNetV3-Large.",
            "",
        ]
        lines += table(["recipe", "quantizer", "seeds", "final top-1", "EMA top-1", "drop (pt)"],
                       compared)
        groups = [(label, rs) for _, label, rs in recipe_groups(runs, QUANTIZER_COMPARISON)]
        draw_phase_compare(groups, DOC.parent / COMPARISON_IMG)
        images = sorted({r["config"]["profit"]["eval_images"] or 10000 for _, rs in groups
                         for r in rs})
        what = (f"Top-1 at each phase's end (first {'/'.join(f'{n:,}' for n in images)} test "
                "images; mean over seeds, bar from the lowest to the highest seed; lower panel "
                "zoomed)")
        lines += ["", f"{what}: ![Phase-end top-1 per quantizer]({COMPARISON_IMG})"]
    return lines


def bn_gap_section(runs):
    """Eval-mode vs train-mode BN top-1 after the last phase, for runs that measured both."""
    gap_runs = [(p, r) for p, r in runs if "final_train_mode" in r]
    if not gap_runs:
        return []
    lines = [
        "",
        "### BN train/eval gap (the AIWQ symptom, profit.md §3.1)",
        "",
        "Top-1 on the 10,000 test images after the last phase with BN in eval mode (running "
        "statistics, the deployed model) and in train mode (statistics of each 500-image "
        "evaluation batch; dropout off). A positive gap means the running statistics no longer "
        "match what the quantized weights produce.",
        "",
    ]
    return lines + table(
        ["run", "W/A", "BN-stabilize phases", "eval-mode top-1", "train-mode top-1", "gap (pt)"],
        [[f"`{pathlib.Path(p).parent}`",
          f"W{r['phases'][-1]['weight_bits']}A{r['phases'][-1]['act_bits']}",
          "yes" if any(ph["kind"] == "bn" for ph in r["phases"]) else "no",
          f"{r['final']['top1']:.2f}", f"{r['final_train_mode']['top1']:.2f}",
          f"{r['final_train_mode']['top1'] - r['final']['top1']:.2f}"] for p, r in gap_runs])


def phase_section(summary_path, r):
    """One run's phase table and its plots (when profit_table.sh has drawn them)."""
    c = r["config"]
    run_dir = pathlib.Path(summary_path).parent
    lines = [
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
    lines += table(
        ["phase", "kind", "A", "W", "epochs", "frozen weights", "last top-1", "last EMA top-1",
         "best"] + (["last train-mode BN top-1"] if train_mode else []),
        [[ph["name"], ph["kind"], bits(ph["act_bits"]), bits(ph["weight_bits"]), ph["epochs"],
          "all" if ph["kind"] == "bn" else ph["frozen_layers"] or "-",
          f"{ph['last']['top1']:.2f}", f"{ph['last_ema']['top1']:.2f}", f"{ph['best_top1']:.2f}"]
         + ([f"{ph['last_train_mode']['top1']:.2f}"] if train_mode else [])
         for ph in r["phases"]])
    for img, what in [("curves", "Training loss per phase and test top-1"),
                      ("aiwq", "AIWQ per conv layer")]:
        name = f"img/{image_stem(run_dir)}_{img}.svg"
        if (DOC.parent / name).exists():
            lines += ["", f"{what}: ![{what}]({name})"]
    return lines


def profit_section(command, paths):
    runs = [(p, json.load(open(p))) for p in paths]
    groups = group_runs(runs)
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
    rows += summary_table(groups)
    rows += comparison_sections(runs)
    rows += bn_gap_section(runs)
    # Phase tables and plots for one run per group (its lowest seed): the other seeds' are in
    # their run folders and docs/img.
    for rs in groups.values():
        rows += phase_section(*min(rs, key=lambda pr: pr[1]["config"]["train"]["seed"]))
    write_section("profit", rows)
