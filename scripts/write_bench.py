#!/usr/bin/env python3
"""Writes the "performance" section of docs/results.md from scripts/bench_table.sh's outputs.

Usage: write_bench.py COMMAND BENCH_DIR
BENCH_DIR holds kernels.json (Google Benchmark), steps_K.json (bench/profit_step_bench),
ao_K.json (bench/torch_ao_step.py) and profile/*.trace.json. Numbers come only from those files.
"""
import json
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from write_results import machine, replace_section  # noqa: E402
from profile_ops import fastest, markdown as profile_markdown  # noqa: E402


def load_runs(d, prefix):
    paths = sorted(d.glob(f"{prefix}_*.json"), key=lambda p: int(p.stem.split("_")[-1]))
    return [json.load(open(p)) for p in paths]


def by_name(run):
    return {v["name"]: v for v in run["variants"]}


def kernel_rows(d):
    data = json.load(open(d / "kernels.json"))["benchmarks"]
    times = {b["name"]: b["real_time"] for b in data if b.get("run_type", "iteration") == "iteration"}
    rows = []
    labels = [("BM_QuantDuq", "weight:0", "DuQ, activation 64x144x16x16, per tensor"),
              ("BM_QuantDuq", "weight:1", "DuQ, weight 960x160, per channel"),
              ("BM_QuantLsq", "weight:0", "LSQ, activation 64x144x16x16, per tensor"),
              ("BM_QuantLsq", "weight:1", "LSQ, weight 960x160, per channel"),
              ("BM_QuantPactRelu", "", "PACT + fused ReLU, activation 64x144x16x16")]
    for bench, arg, label in labels:
        def find(fused):
            for n, t in times.items():
                if n.startswith(bench + "/") and f"fused:{fused}" in n and arg in n:
                    return t
            return None
        ref, fus = find(0), find(1)
        if ref and fus:
            rows.append(f"| {label} | {ref:.3f} | {fus:.3f} | {ref / fus:.2f}x |")
    return rows


def main():
    command, d = sys.argv[1], pathlib.Path(sys.argv[2])
    steps, aos = load_runs(d, "steps"), load_runs(d, "ao")
    # Within-program ratios: median over all rounds of both runs.
    def ratio(runs, name):
        return statistics.median(r for run in runs for r in by_name(run)[name]["ratio_samples"])
    def ms(runs, name):
        return statistics.median(t for run in runs for t in by_name(run)[name]["ms_samples"])
    ours = {n: (ms(steps, n), ratio(steps, n)) for n in by_name(steps[0])}
    theirs = {n: (ms(aos, n), ratio(aos, n)) for n in by_name(aos[0])}
    # Cross-program: each C++ run against the Python run right after it.
    def cross(name, ao_name):
        return statistics.median(by_name(s)[name]["ms_per_step"] / by_name(a)[ao_name]["ms_per_step"]
                                 for s, a in zip(steps, aos))
    s0 = steps[0]
    rows = [
        "## Performance: QAT step cost vs the full-precision floor and torch.ao",
        "",
        f"Command: `{command}`. MobileNetV2 width {s0['width']}, batch {s0['batch']}, "
        f"{s0['size']}x{s0['size']} RGB inputs, 10 classes, W{s0['bits']}A{s0['bits']}, "
        f"{s0['threads']} threads, one SGD step (forward, backward, update). Each program times "
        f"every variant against its own FP model in ABBA pairs (FP, variant, variant, FP; "
        f"{s0['steps']} step each, {s0['rounds']} rounds per run, medians over all rounds), which "
        f"cancels the slow speed drifts of this shared machine; the C++ and Python programs "
        f"alternate in {len(steps)} short runs each. torch.ao runs torchvision's MobileNetV2 on Debian's python3-torch "
        f"{aos[0]['torch']} (the LibTorch of the C++ build). 'x torch.ao QAT step' is the median "
        "over the alternations of our step time divided by torch.ao's from the Python run right "
        "after (sensitive to the machine's speed changes between processes); 'normalised' divides "
        "the two "
        "programs' ratios to their own FP steps instead (the two FP floors run the same "
        "LibTorch kernels; their measured ratio is in the FP row).",
        "",
        "### Training step (ms per step and ratio to the FP step of the same program)",
        "",
        "| variant | ms/step | x own FP step | x torch.ao QAT step | normalised |",
        "|---|---|---|---|---|",
    ]
    ao_q = theirs["torch.ao/fake_quantize"][0]
    ao_r = theirs["torch.ao/fake_quantize"][1]
    for n, (m, r) in ours.items():
        label = "profit FP (floor)" if n == "fp" else f"profit {n}"
        rows.append(f"| {label} | {m:.1f} | {r:.3f} | {cross(n, 'torch.ao/fake_quantize'):.3f} | "
                    f"{r / ao_r:.3f} |")
    for n, (m, r) in theirs.items():
        label = "torch.ao FP (torchvision)" if n == "fp" else n
        rows.append(f"| {label} | {m:.1f} | {r:.3f} | {m / ao_q:.3f} | {r / ao_r:.3f} |")
    # Goals.
    def status(ok):
        return "met" if ok else "**not met**"

    def both(direct, normalised):
        if direct == normalised:
            return status(direct)
        return "inconclusive (direct and normalised disagree)"
    duq, lsq = ours["duq/per_tensor"][1], ours["lsq/per_tensor"][1]
    duq_x, lsq_x = cross("duq/per_tensor", "torch.ao/fake_quantize"), cross("lsq/per_tensor", "torch.ao/fake_quantize")
    duq_n, lsq_n = duq / ao_r, lsq / ao_r
    # Ratios of FP-normalised step costs (drift-free).
    pc = max((ours[f"{m}/per_channel"][1] / ours[f"{m}/per_tensor"][1] - 1 for m in ("duq", "lsq")),
             key=abs)
    aiwq = ours["duq/per_tensor/aiwq"][1] / ours["duq/per_tensor"][1] - 1
    aiwq4 = ours["duq/per_tensor/aiwq_every4"][1] / ours["duq/per_tensor"][1] - 1
    all_ch = ours.get("duq/per_tensor/aiwq_all_channels")  # the full recomputation, for contrast
    all_note = (f" (changed channels only; recomputing all channels "
                f"{100 * (all_ch[1] / ours['duq/per_tensor'][1] - 1):+.1f} %)" if all_ch else "")
    rows += [
        "",
        "### Goals",
        "",
        "| goal | measured | status |",
        "|---|---|---|",
        f"| W4A4 DuQ and LSQ step <= 1.10x our FP step | DuQ {duq:.3f}x, LSQ {lsq:.3f}x | {status(max(duq, lsq) <= 1.10)} |",
        f"| <= 0.75x torch.ao's QAT step | direct: DuQ {duq_x:.3f}x, LSQ {lsq_x:.3f}x; normalised: DuQ {duq_n:.3f}x, LSQ {lsq_n:.3f}x | {both(max(duq_x, lsq_x) <= 0.75, max(duq_n, lsq_n) <= 0.75)} |",
        f"| per channel within 5 % of per tensor (DuQ, LSQ) | largest difference {100 * pc:+.1f} % | {status(abs(pc) <= 0.05)} |",
        f"| AIWQ sampling <= 10 % over a normal step | every iteration (the paper) {100 * aiwq:+.1f} %{all_note}; `aiwq_every: 4` {100 * aiwq4:+.1f} % | {status(aiwq <= 0.10)} (every iteration) |",
        "",
        "### Kernels: forward + backward of one quantizer (ms, Google Benchmark)",
        "",
        "| quantizer and tensor | reference (ATen composition) | fused kernel | speed-up |",
        "|---|---|---|---|",
    ] + kernel_rows(d)
    prof = d / "profile"
    base, var = fastest(prof, "fp"), fastest(prof, "duq.per_tensor")
    if base and var:
        out = profile_markdown(base, var, steps=3, top=10)
        rows += [
            "",
            "### Where the QAT step's extra time goes (autograd profiler, self time per operator)",
            "",
            "FP step vs W4A4 DuQ per-tensor step, 3 profiled steps each; each was profiled three "
            "times in alternating order and the run with the smallest total is shown (the machine's "
            "speed drifts between runs). The profiler adds its own "
            "overhead per operator; `CppNode<DuqFused>` is the fused backward, `profit::duq_fused` "
            "the fused forward). Negative rows are FP work the quantized step does not do (the "
            "ReLU6 of the FP model is absorbed by the quantizer's clamp).",
            "",
            out.rstrip(),
        ]
    rows += ["", f"Machine: {machine()}."]
    replace_section("performance", "\n".join(rows))


if __name__ == "__main__":
    main()
