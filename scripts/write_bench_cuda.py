#!/usr/bin/env python3
"""Writes the "performance-cuda" section of docs/results.md from scripts/device_check.sh's outputs.

Usage: write_bench_cuda.py DIR
DIR holds device_check.log, steps_cuda_B_S.json (bench/profit_step_bench --device cuda) and
ao_cuda_B_S.json (bench/torch_ao_step.py --device cuda). Numbers come only from those files.
"""
import json
import pathlib
import re
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from write_results import replace_section  # noqa: E402


def by_name(run):
    return {v["name"]: v for v in run["variants"]}


def log_facts(log):
    lines = log.read_text().splitlines()
    gpu, torch, nvcc = lines[0], lines[2], lines[3]
    cuda_tests = [l.strip() for l in lines if re.match(r"\[\s+OK \] FusedCuda\.", l)]
    ctest = next((l for l in lines if "tests passed" in l), "ctest summary missing")
    failed = [l.strip() for l in lines if re.match(r"\s+\d+ - .*\(Failed\)", l)]
    stages = [l for l in lines if re.match(r"=== \w+: rc \d+ in \d+ s", l)]
    return gpu, torch, nvcc, cuda_tests, ctest, failed, stages


def main():
    d = pathlib.Path(sys.argv[1])
    gpu, torch, nvcc, cuda_tests, ctest, failed, stages = log_facts(d / "device_check.log")
    rows = [
        "## Performance on a GPU: CUDA fused kernels (NVIDIA H200)",
        "",
        f"Commands: `bash scripts/fetch_device_deps.sh` (here), then on the GPU machine "
        f"`bash scripts/device_check.sh .devdeps {d} build,test,bench`; this section: "
        f"`python3 scripts/write_bench_cuda.py {d}`. The raw log and JSON files are in `{d}/`.",
        "",
        f"Machine: {gpu} (GPU, driver, memory), {torch}, nvcc {nvcc.split('/')[0].replace('Build ', '')}; "
        "profit built against that PyTorch's LibTorch with `-DPROFIT_CUDA=on "
        "-DPROFIT_WITH_OPENCV=OFF` (the Debian header/library packages carried unpacked; no OpenCV).",
        "",
        "### Tests on the GPU build",
        "",
        f"- `profit_tests --gtest_filter='FusedCuda*'`: {len(cuda_tests)} tests passed "
        "(fused CUDA kernels vs the reference ATen composition on the device: values and input "
        "gradients bit-identical, parameter gradients within 1e-4; vs the fused CPU kernels within "
        "1e-6 relative; parameter-gradient reduction deterministic run to run):",
    ]
    rows += [f"  `{t}`" + ("" if i == len(cuda_tests) - 1 else ";") for i, t in enumerate(cuda_tests)]
    rows += [f"- whole suite, `ctest -j 12`: {ctest.strip()}."]
    # Known causes of failures in a recorded log, by test name (fixed after that run).
    known = {"Loader.WorkerErrorsReachTheConsumer":
             "its expected message assumed an OpenCV build; the test now expects the no-OpenCV "
             "message in such builds"}
    for f in failed:
        cause = next((c for name, c in known.items() if name in f), "cause not established")
        rows += [f"  Failed: {f} ({cause})."]
    rows += ["- stages: " + "; ".join(s.replace("=== ", "") for s in stages) + "."]
    for steps_path in sorted(d.glob("steps_cuda_*.json")):
        tag = steps_path.stem[len("steps_"):]
        ao_path = d / f"ao_{tag}.json"
        if not ao_path.exists():
            continue
        ours, theirs = json.load(open(steps_path)), json.load(open(ao_path))
        o, t = by_name(ours), by_name(theirs)
        ao_ms, ao_r = t["torch.ao/fake_quantize"]["ms_per_step"], t["torch.ao/fake_quantize"]["ratio_to_fp"]
        rows += [
            "",
            f"### Training step on the GPU: MobileNetV2 width {ours['width']}, batch {ours['batch']}, "
            f"{ours['size']}x{ours['size']}, W{ours['bits']}A{ours['bits']}",
            "",
            f"One SGD step (forward, backward, update), each variant against its own FP model in "
            f"ABBA pairs ({ours['steps']} steps each, {ours['rounds']} rounds; the device is "
            "synchronised at the end of every timed run); medians. torch.ao: torchvision's "
            f"MobileNetV2 on the same GPU ({theirs['torch']}). 'x torch.ao' divides our step time "
            "by torch.ao's default QAT step (FusedMovingAvgObsFakeQuantize); 'normalised' divides "
            "the ratios to each program's own FP step.",
            "",
            "| variant | ms/step | x own FP step | x torch.ao QAT step | normalised |",
            "|---|---|---|---|---|",
        ]
        for n, v in o.items():
            label = "profit FP (floor)" if n == "fp" else f"profit {n}"
            rows.append(f"| {label} | {v['ms_per_step']:.1f} | {v['ratio_to_fp']:.3f} | "
                        f"{v['ms_per_step'] / ao_ms:.3f} | {v['ratio_to_fp'] / ao_r:.3f} |")
        for n, v in t.items():
            label = "torch.ao FP (torchvision)" if n == "fp" else n
            rows.append(f"| {label} | {v['ms_per_step']:.1f} | {v['ratio_to_fp']:.3f} | "
                        f"{v['ms_per_step'] / ao_ms:.3f} | {v['ratio_to_fp'] / ao_r:.3f} |")
        duq, lsq = o["duq/per_tensor"], o["lsq/per_tensor"]
        speedup = statistics.median(
            o[f"{m}/{l}/reference"]["ms_per_step"] / o[f"{m}/{l}"]["ms_per_step"]
            for m in ("duq", "lsq", "pact") for l in ("per_tensor", "per_channel")
            if f"{m}/{l}/reference" in o and f"{m}/{l}" in o)
        rows += [
            "",
            f"Goals on the GPU: DuQ {duq['ratio_to_fp']:.3f}x and LSQ {lsq['ratio_to_fp']:.3f}x our FP "
            "step (goal <= 1.10x: **not met**); "
            f"{duq['ms_per_step'] / ao_ms:.3f}x and {lsq['ms_per_step'] / ao_ms:.3f}x torch.ao's QAT "
            f"step (normalised {duq['ratio_to_fp'] / ao_r:.3f}x and {lsq['ratio_to_fp'] / ao_r:.3f}x; "
            "goal <= 0.75x: "
            + ("met" if max(duq["ms_per_step"], lsq["ms_per_step"]) / ao_ms <= 0.75 and
               max(duq["ratio_to_fp"], lsq["ratio_to_fp"]) / ao_r <= 0.75 else "**not met**")
            + f"). The fused kernels make the step {speedup:.2f}x faster than the reference "
            "composition (median over the DuQ/LSQ/PACT layouts measured).",
            "",
            "Why the GPU step is 2x the FP step when the CPU step is not: at this size the "
            "arithmetic is small (MobileNetV2 at 32x32 is roughly 6 MFLOP per image forward, about "
            "1.2 GFLOP per step with backward, well under a millisecond on this GPU), so the "
            f"{o['fp']['ms_per_step']:.1f} ms FP step is per-operator overhead (kernel launches, "
            "autograd, the optimizer's per-parameter updates), and every quantized site adds "
            "operators of its own (a forward kernel, a backward kernel and its reduction, the "
            "autograd node, the quantizer parameters' updates). Weights only and activations only "
            "each cost about half of the extra time, as the two rows show. The remaining levers "
            "there are fewer launches (fusing the quantizer into the preceding BN/activation "
            "kernels, CUDA graphs) rather than faster kernels. A larger configuration (batch 128, "
            "224x224) was started in the same call but did not finish inside the call's time "
            "limit (cause not established), so there is no large-input GPU figure yet.",
        ]
    replace_section("performance-cuda", "\n".join(rows))


if __name__ == "__main__":
    main()
